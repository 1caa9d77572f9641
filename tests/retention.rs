//! Retention: `prune` and legal holds. A prune removes whole sealed window fetches and records the removal
//! in the chain; `verify` passes afterwards and shows pruned ranges as pruned; held ranges survive; a dry run
//! changes nothing; pruned ranges are never fetched again; and tampering with prune records is caught.

mod common;

use common::*;

const FROM: &str = "2024-01-01";
const TO: &str = "2024-01-07";

fn events_before(sb: &Sandbox, day: &str) -> i64 {
    sb.count(&format!(
        "SELECT count(*) FROM events WHERE timestamp < '{day}T00:00:00.000Z'"
    ))
}

fn events_of_window_starting(sb: &Sandbox, day: &str) -> i64 {
    sb.count(&format!(
        "SELECT count(*) FROM events WHERE window_id IN (SELECT id FROM windows WHERE window_start = '{day}T00:00:00.000Z')"
    ))
}

fn events_on(sb: &Sandbox, day: &str) -> i64 {
    sb.count(&format!(
        "SELECT count(*) FROM events WHERE substr(timestamp, 1, 10) = '{day}'"
    ))
}

fn timestamps(sb: &Sandbox) -> std::collections::HashSet<(i64, String)> {
    let conn = sb.conn();
    let mut stmt = conn.prepare("SELECT id, timestamp FROM events").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn ranges(value: &serde_json::Value) -> Vec<(String, String)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap()[..10].to_string(),
                r["to"].as_str().unwrap()[..10].to_string(),
            )
        })
        .collect()
}

#[test]
fn prune_removes_whole_old_windows_keeps_held_ones_and_verify_shows_them_pruned() {
    let (served, sb, run) = synced(6_000, FROM, TO);
    let anchor = json(&run)["chain_head"].as_str().unwrap().to_string();
    let total = sb.count("SELECT count(*) FROM events");
    let jan2 = events_of_window_starting(&sb, "2024-01-02");
    assert!(events_before(&sb, "2024-01-04") > 2_000 && jan2 > 0);

    // A dry run says what would go and changes nothing.
    let before = std::fs::read(&sb.db).unwrap();
    let dry = sb.run(&[
        "prune",
        "--before",
        "2024-01-04",
        "--dry-run",
        "--format",
        "json",
    ]);
    dry.expect(0);
    let plan = json(&dry);
    assert_eq!(plan["windows"].as_array().unwrap().len(), 3);
    assert_eq!(plan["events"], events_before(&sb, "2024-01-04"));
    assert!(plan["prune_id"].is_null());
    assert_eq!(
        std::fs::read(&sb.db).unwrap(),
        before,
        "a dry run wrote to the archive"
    );

    // A hold on the morning of 2 January keeps that day's window.
    sb.run(&[
        "hold",
        "add",
        "--from",
        "2024-01-02T06:00:00Z",
        "--to",
        "2024-01-02T12:00:00Z",
        "--reason",
        "case 42",
    ])
    .expect(0);
    let list = sb.run(&["hold", "list", "--format", "json"]);
    list.expect(0);
    assert!(list.stdout.contains("case 42"), "{}", list.stdout);

    let cutoff = "2024-01-04T00:00:00.000Z";
    let ts_before = timestamps(&sb);
    let pruned = sb.run(&["prune", "--before", "2024-01-04", "--format", "json"]);
    pruned.expect(0);
    let plan = json(&pruned);
    assert_eq!(plan["kept"]["held"], 1);
    assert_eq!(events_on(&sb, "2024-01-01"), 0, "1 January is pruned");
    assert_eq!(
        events_of_window_starting(&sb, "2024-01-02"),
        jan2,
        "the held day's window is whole"
    );
    assert_eq!(
        sb.count("SELECT count(*) FROM events"),
        total - plan["events"].as_i64().unwrap()
    );
    // Nothing at or after the cutoff was removed; what was removed was before it.
    let ts_after = timestamps(&sb);
    let removed: Vec<&(i64, String)> = ts_before.iter().filter(|e| !ts_after.contains(e)).collect();
    assert_eq!(removed.len() as i64, plan["events"].as_i64().unwrap());
    assert!(removed.iter().all(|(_, ts)| ts.as_str() < cutoff));
    assert!(
        ts_before
            .iter()
            .filter(|(_, ts)| ts.as_str() >= cutoff)
            .all(|e| ts_after.contains(e))
    );
    // Pruned ranges are whole window fetches that ended at or before the cutoff.
    let pruned_ranges = ranges(&plan["ranges"]);
    assert_eq!(pruned_ranges[0], ("2024-01-01".into(), "2024-01-02".into()));
    assert!(
        pruned_ranges
            .iter()
            .all(|(_, to)| to.as_str() <= "2024-01-04")
    );

    // verify passes, shows the pruned ranges as pruned (not gaps), and the anchor taken before still holds.
    let (run, report) = verify_json(&sb, &sb.db, Some(&anchor));
    run.expect(0);
    assert_eq!(report["gaps"].as_array().unwrap().len(), 0);
    assert_eq!(ranges(&report["pruned"]), ranges(&plan["ranges"]));
    assert_eq!(report["prunes"][0]["events"], plan["events"]);
    let text = sb.run(&["verify"]);
    text.expect(0);
    assert!(
        text.stdout.contains("pruned    2024-01-01"),
        "{}",
        text.stdout
    );
    let status = sb.run(&["status"]);
    assert!(
        status.stdout.contains("Pruned       2024-01-01"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("case 42"), "{}", status.stdout);

    // The search index lost the removed events too.
    let copy = sb.dir.path().join("fts-check.db");
    std::fs::copy(&sb.db, &copy).unwrap();
    rusqlite::Connection::open(&copy)
        .unwrap()
        .execute_batch("INSERT INTO events_fts (events_fts) VALUES ('integrity-check')")
        .unwrap();

    // Pruned ranges are never fetched again, even by a refetch of the whole range.
    let left_before_cutoff = events_before(&sb, "2024-01-04");
    sb.run_env(
        &[
            "sync",
            "--base-url",
            &served.base,
            "--from",
            FROM,
            "--to",
            TO,
            "--refetch",
            "-q",
        ],
        &SIM_CREDS,
    )
    .expect(0);
    assert_eq!(events_on(&sb, "2024-01-01"), 0);
    assert_eq!(events_before(&sb, "2024-01-04"), left_before_cutoff);

    // Lifting the hold lets the next prune take the day (both of its fetches), and verify still passes.
    sb.run(&["hold", "remove", "1"]).expect(0);
    assert!(!sb.run(&["hold", "list"]).stdout.contains("case 42"));
    assert!(
        sb.run(&["hold", "list", "--all"])
            .stdout
            .contains("case 42")
    );
    let again = sb.run(&["prune", "--before", "2024-01-05", "--format", "json"]);
    again.expect(0);
    assert!(json(&again)["windows"].as_array().unwrap().len() >= 2);
    assert_eq!(events_before(&sb, "2024-01-04"), 0);
    let (run, report) = verify_json(&sb, &sb.db, Some(&anchor));
    run.expect(0);
    let pruned_ranges = ranges(&report["pruned"]);
    assert_eq!(pruned_ranges[0].0, "2024-01-01");
    assert!(
        pruned_ranges[0].1.as_str() >= "2024-01-04",
        "{pruned_ranges:?}"
    );
    // Nothing left to prune: says so, exit 0.
    let none = sb.run(&["prune", "--before", "2024-01-01"]);
    none.expect(0);
    assert!(none.stdout.contains("nothing to remove"), "{}", none.stdout);
}

#[test]
fn tampering_with_prune_records_is_caught() {
    let (_served, sb, _run) = synced(3_000, FROM, "2024-01-04");
    sb.run(&["prune", "--before", "2024-01-03"]).expect(0);
    let pruned_window = sb.count("SELECT min(window_id) FROM pruned_windows");
    let (kept_window, kept_event) = {
        let conn = sb.conn();
        conn.query_row(
            "SELECT window_id, id FROM events ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .unwrap()
    };
    let cases: Vec<(&str, String, &str, Option<i64>)> = vec![
        (
            "a forged prune hides a deletion",
            format!(
                "DELETE FROM events WHERE window_id = {kept_window};
                 INSERT INTO prunes (pruned_at, cutoff, windows, events, revisions, rejects, ranges)
                 VALUES ('2024-02-01T00:00:00.000Z', '2024-01-04T00:00:00.000Z', 1, 1, 0, 0, '[]');
                 INSERT INTO pruned_windows (window_id, prune_id, seal_hash, events, revisions, rejects, kept)
                 SELECT {kept_window}, last_insert_rowid(), hash, events, revisions, 0, 0 FROM seals WHERE window_id = {kept_window};"
            ),
            "unsealed",
            Some(kept_window),
        ),
        (
            "the prune record edited",
            "UPDATE prunes SET events = events - 1".into(),
            "ledger",
            None,
        ),
        (
            "a pruned window's record deleted",
            format!("DELETE FROM pruned_windows WHERE window_id = {pruned_window}"),
            "ledger",
            None,
        ),
        (
            "an event filed under a pruned window",
            format!("UPDATE events SET window_id = {pruned_window} WHERE id = {kept_event}"),
            "inserted",
            Some(pruned_window),
        ),
    ];
    for (name, sql, kind, window) in cases {
        let db = tampered_copy(&sb, &name.replace(' ', "-"), &sql);
        let (run, report) = verify_json(&sb, &db, None);
        run.expect(7);
        let found = findings(&report);
        assert!(
            found
                .iter()
                .any(|(k, w, _)| k == kind && (window.is_none() || *w == window)),
            "{name}: {found:?}"
        );
    }
}

#[test]
fn prune_refuses_a_window_that_no_longer_matches_its_seal_and_changes_nothing() {
    let (_served, sb, _run) = synced(2_000, FROM, "2024-01-03");
    let victim = sb.count("SELECT min(id) FROM events");
    {
        let conn = rusqlite::Connection::open(&sb.db).unwrap();
        conn.execute(
            "UPDATE events SET raw = replace(raw, '\"id\"', '\"id\" ') WHERE id = ?1",
            [victim],
        )
        .unwrap();
    }
    let total = sb.count("SELECT count(*) FROM events");
    let run = sb.run(&["prune", "--before", "2024-01-03"]);
    run.expect(7);
    assert!(
        run.stderr.contains("no longer matches its seal"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.count("SELECT count(*) FROM events"), total);
    assert_eq!(sb.count("SELECT count(*) FROM prunes"), 0);
}

#[test]
fn bad_retention_input_is_refused_with_a_way_forward() {
    let (_served, sb, _run) = synced(500, FROM, "2024-01-02");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["prune", "--before", "2030-01-01"], 2, "in the future"),
        (vec!["prune"], 2, "--before"),
        (vec!["prune", "--before", "soon"], 2, "soon"),
        (
            vec![
                "hold",
                "add",
                "--from",
                "2024-01-02",
                "--to",
                "2024-01-01",
                "--reason",
                "x",
            ],
            2,
            "empty",
        ),
        (
            vec![
                "hold",
                "add",
                "--from",
                "2024-01-01",
                "--to",
                "2024-01-02",
                "--reason",
                " ",
            ],
            2,
            "--reason",
        ),
        (vec!["hold", "remove", "7"], 2, "hold list"),
        (vec!["hold", "remove", "seven"], 2, "seven"),
    ];
    for (args, code, words) in cases {
        let run = sb.run(&args);
        run.expect(code);
        assert!(run.stderr.contains(words), "{args:?}: {}", run.stderr);
    }
    let missing = sb.dir.path().join("missing.db");
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &missing)
        .args(["prune", "--before", "2024-01-01"]);
    Run::from(cmd.output().unwrap()).expect(5);
    assert!(!missing.exists(), "prune created an archive");
}
