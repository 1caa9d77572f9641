//! `search`: full-text results agree with SQL, the index follows each sync, filters and formats work.

mod common;

use common::*;
use elevate_archive::simulator::SimConfig;
use elevate_archive::time::parse_time_arg;

fn ids_of_json(text: &str) -> Vec<i64> {
    let rows: serde_json::Value = serde_json::from_str(text).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn search_finds_what_sql_finds_and_follows_each_sync() {
    let served = serve(SimConfig::new(
        4_000,
        parse_time_arg("2024-02-20").unwrap(),
        parse_time_arg("2024-03-01").unwrap(),
    ));
    let sb = Sandbox::new();
    sb.run_env(
        &["sync", "--base-url", &served.base, "--from", "2024-02-20"],
        &SIM_CREDS,
    )
    .expect(0);
    // Every lock-out, by word, newest first.
    let run = sb.run(&[
        "search",
        "locked out",
        "--limit",
        "100000",
        "--format",
        "json",
    ]);
    run.expect(0);
    let found = ids_of_json(&run.stdout);
    let conn = sb.conn();
    let want: Vec<i64> = conn
        .prepare("SELECT id FROM events WHERE description LIKE '%locked out%' ORDER BY timestamp DESC, id DESC")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(want.len() > 20);
    assert_eq!(found, want);
    // A user, by name with punctuation and accents folded; restricted in time and by action.
    let user: String = conn
        .query_row(
            "SELECT username FROM events WHERE username LIKE '%.müller' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let folded = user.replace('ü', "u");
    let run = sb.run(&[
        "search",
        &folded,
        "--from",
        "2024-02-25",
        "--to",
        "2024-03-01",
        "--action",
        "user-login-failure",
        "--format",
        "ndjson",
        "--limit",
        "100000",
    ]);
    run.expect(0);
    let found: Vec<i64> = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let want: Vec<i64> = conn
        .prepare(
            "SELECT id FROM events WHERE username = ?1 AND action = 'user-login-failure'
             AND timestamp >= '2024-02-25T00:00:00.000Z' AND timestamp < '2024-03-01T00:00:00.000Z'
             ORDER BY timestamp DESC, id DESC",
        )
        .unwrap()
        .query_map([&user], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(found, want, "{user}");
    drop(conn);
    // Late arrivals archived by the next run are searchable after it.
    let end = parse_time_arg("2024-02-29T23:00:00Z")
        .unwrap()
        .timestamp_millis();
    let late = served
        .sim
        .insert_late_events_between(5, end, end + 1_800_000);
    sb.run_env(&["sync", "--base-url", &served.base], &SIM_CREDS)
        .expect(0);
    let all = ids_of_json(
        &sb.run(&["search", "user*", "--limit", "1000000", "--format", "json"])
            .stdout,
    );
    let descriptions_with_user = sb.count(
        "SELECT count(*) FROM events WHERE description LIKE '%user%' OR username LIKE 'user%'",
    );
    assert_eq!(all.len() as i64, descriptions_with_user);
    let searchable: i64 = sb.count(&format!(
        "SELECT count(*) FROM events_fts WHERE rowid IN ({})",
        late.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ));
    assert_eq!(searchable, late.len() as i64);
}

#[test]
fn search_refuses_empty_text_and_handles_fts_syntax_as_words() {
    let (_served, sb, _) = synced(200, "2024-01-01", "2024-01-02");
    let empty = sb.run(&["search", "   "]);
    empty.expect(2);
    for text in ["AND", "\"unbalanced", "NEAR(a b)", "o'brien", "a:b", "-x"] {
        let run = sb.run(&["search", "--format", "csv", "--", text]);
        run.expect(0);
    }
}
