//! `verify` and `backup`: the tampering matrix (each edit, deletion or insertion caught and named; a whole
//! rewritten chain caught only with an anchor), a backup taken while a sync runs, and an archive upgraded from
//! before seals.

mod common;

use common::*;
use elevate_archive::simulator::SimConfig;
use elevate_archive::store::seal;
use elevate_archive::time::parse_time_arg;
use rusqlite::Connection;
use std::os::unix::process::ExitStatusExt;

fn archive() -> (Served, Sandbox, String) {
    let (served, sb, run) = synced(3_000, "2024-01-01", "2024-01-04");
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let head = summary["chain_head"].as_str().unwrap().to_string();
    (served, sb, head)
}

#[test]
fn an_untouched_archive_verifies_and_its_head_matches_the_sync_summary() {
    let (_served, sb, head) = archive();
    let (run, report) = verify_json(&sb, &sb.db, Some(&head));
    run.expect(0);
    assert_eq!(report["head"], head.as_str());
    assert_eq!(report["events"], 3000);
    assert!(report["seals"].as_u64().unwrap() >= 3);
    let text = sb.run(&["verify"]);
    text.expect(0);
    assert!(
        text.stdout.starts_with("verify ok: 3,000 events"),
        "{}",
        text.stdout
    );
}

#[test]
fn every_kind_of_tampering_is_caught_and_named() {
    let (_served, sb, head) = archive();
    let conn = sb.conn();
    let (victim, window): (i64, i64) = conn
        .query_row(
            "SELECT id, window_id FROM events ORDER BY id LIMIT 1 OFFSET 1500",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(conn);
    let new_digest = seal::sha256_hex(br#"{"id":1,"forged":true}"#);
    /// (name, tampering SQL, expected finding kind, window, ids).
    type Case = (&'static str, String, &'static str, Option<i64>, Vec<i64>);
    let cases: Vec<Case> = vec![
        (
            "edit a field",
            format!("UPDATE events SET raw = replace(raw, 'logged', 'LOGGED') WHERE id = {victim}"),
            "edited",
            Some(window),
            vec![victim],
        ),
        (
            "edit a field and its digest",
            format!(
                "UPDATE events SET raw = '{{\"id\":1,\"forged\":true}}', digest = '{new_digest}' WHERE id = {victim}"
            ),
            "edited",
            Some(window),
            vec![victim],
        ),
        (
            "delete a row",
            format!("DELETE FROM events WHERE id = {victim}"),
            "deleted",
            Some(window),
            vec![victim],
        ),
        (
            "insert a row under a sealed window",
            format!(
                "INSERT INTO events (id, timestamp, category, action, raw, fetched_at, window_id, digest) VALUES (7, '2024-01-02T00:00:00.000Z', 'authentication', 'user-login-success', '{{\"id\":7,\"forged\":true}}', 'x', {window}, '{}')",
                seal::sha256_hex(br#"{"id":7,"forged":true}"#)
            ),
            "inserted",
            Some(window),
            vec![7],
        ),
        (
            "insert a row under no window",
            format!(
                "INSERT INTO events (id, timestamp, category, action, raw, fetched_at, window_id, digest) VALUES (8, '2024-01-02T00:00:00.000Z', 'a', 'b', 'x', 'x', 9999, '{}')",
                seal::sha256_hex(b"x")
            ),
            "inserted",
            None,
            vec![8],
        ),
        (
            "edit the ledger",
            format!("UPDATE windows SET events_new = events_new + 1 WHERE id = {window}"),
            "ledger",
            Some(window),
            vec![],
        ),
        (
            "delete a seal",
            format!("DELETE FROM seals WHERE window_id = {window}"),
            "unsealed",
            Some(window),
            vec![],
        ),
        (
            "edit a seal",
            format!("UPDATE seals SET content = '{new_digest}' WHERE window_id = {window}"),
            "chain",
            Some(window),
            vec![],
        ),
        (
            "a seal's members replaced by text",
            format!("UPDATE seals SET members = 'forged' WHERE window_id = {window}"),
            "chain",
            Some(window),
            vec![],
        ),
    ];
    for (name, sql, kind, want_window, want_ids) in cases {
        let db = tampered_copy(&sb, &name.replace(' ', "-"), &sql);
        let (run, report) = verify_json(&sb, &db, None);
        assert_eq!(run.code, 7, "{name}: {}", run.stdout);
        let found = findings(&report);
        assert!(
            found.iter().any(|(k, w, ids)| k == kind
                && *w == want_window
                && want_ids.iter().all(|id| ids.contains(id))),
            "{name}: expected a {kind} finding for window {want_window:?} naming {want_ids:?}, got {found:?}"
        );
        let (with_anchor, _) = verify_json(&sb, &db, Some(&head));
        assert_eq!(with_anchor.code, 7, "{name} with the anchor");
    }
}

#[test]
fn a_whole_rewritten_chain_is_caught_only_with_an_anchor() {
    let (_served, sb, head) = archive();
    let conn = sb.conn();
    let (victim, raw): (i64, String) = conn
        .query_row(
            "SELECT id, raw FROM events ORDER BY id LIMIT 1 OFFSET 100",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(conn);
    // The forger edits an event (its raw, the column raw derives, the digest), then recomputes every seal from
    // the rows, consistently.
    let mut forged: serde_json::Value = serde_json::from_str(&raw).unwrap();
    forged["username"] = "mallory".into();
    let forged = forged.to_string();
    let db = tampered_copy(
        &sb,
        "rewritten",
        &format!(
            "UPDATE events SET raw = '{forged}', digest = '{}', username = 'mallory' WHERE id = {victim}",
            seal::sha256_hex(forged.as_bytes())
        ),
    );
    let conn = Connection::open(&db).unwrap();
    let seals: Vec<(i64, i64)> = conn
        .prepare("SELECT id, window_id FROM seals ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut previous = seal::GENESIS.to_string();
    for (id, window) in seals {
        let content = seal::window_content(&conn, window, seal::SealFormat::CURRENT).unwrap();
        let hash = seal::chain_hash(&previous, &content.content);
        conn.execute(
            "UPDATE seals SET members = ?2, content = ?3, previous = ?4, hash = ?5, lines = ?6 WHERE id = ?1",
            rusqlite::params![
                id,
                content.members,
                content.content,
                previous,
                hash,
                content.lines
            ],
        )
        .unwrap();
        previous = hash;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    let (without, report) = verify_json(&sb, &db, None);
    assert_eq!(
        without.code, 0,
        "a consistent rewrite cannot be seen from inside the file: {}",
        without.stdout
    );
    assert_ne!(report["head"], head.as_str());
    let (with, report) = verify_json(&sb, &db, Some(&head));
    assert_eq!(with.code, 7);
    assert!(
        findings(&report).iter().any(|(k, _, _)| k == "anchor"),
        "{report}"
    );
}

/// 20,000 simulated events over 2024-01-01 to 2024-01-06, with the range's last window held back until
/// [`elevate_archive::simulator::Simulator::release`]: a sync of the range cannot finish before then.
fn held_at_the_end() -> Served {
    let from = parse_time_arg("2024-01-01").unwrap();
    let to = parse_time_arg("2024-01-06").unwrap();
    let served = serve(SimConfig::new(20_000, from, to));
    served
        .sim
        .hold_covering(to - chrono::TimeDelta::milliseconds(1));
    served
}

#[test]
fn a_backup_taken_while_a_sync_runs_verifies() {
    let served = held_at_the_end();
    let sb = Sandbox::new();
    let mut child = sb
        .command()
        .envs(SIM_CREDS)
        .args([
            "sync",
            "--quiet",
            "--base-url",
            &served.base,
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-06",
            "--page-size",
            "200",
            "--window",
            "6h",
        ])
        .spawn()
        .unwrap();
    sb.wait_for(&mut child, 0, "two complete windows", |p| {
        p.windows_completed >= 2
    });
    let copy = sb.dir.path().join("copy.db");
    let backup = sb.run(&["backup", "--out", copy.to_str().unwrap()]);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sync finished before the backup"
    );
    backup.expect(0);
    assert!(backup.stdout.contains("chain head"), "{}", backup.stdout);
    served.sim.release();
    assert!(wait_or_hang(&mut child, "the sync").success());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&copy).unwrap().permissions())
            & 0o777;
    assert_eq!(mode, 0o600);
    // The copy is a consistent snapshot: intact, and at most incomplete (exit 9) for the ranges the sync had
    // not fetched yet. (Whether a window was in flight at that instant depends on where the backup fell: between
    // two windows, none is.)
    let (run, report) = verify_json(&sb, &copy, None);
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(
        run.code == 0 || (run.code == 9 && !report["unfetched"].as_array().unwrap().is_empty()),
        "exit {}: {report}",
        run.code
    );
    let events = report["events"].as_u64().unwrap();
    assert!(
        events > 0 && events < 20_000,
        "{events} events in the snapshot"
    );
    verify_json(&sb, &sb.db, None).0.expect(0);
    let again = sb.run(&["backup", "--out", copy.to_str().unwrap()]);
    again.expect(2);
    assert!(again.stderr.contains("already exists"));
}

#[test]
fn killed_and_resumed_syncs_still_verify() {
    let served = held_at_the_end();
    let sb = Sandbox::new();
    let args = [
        "sync",
        "--quiet",
        "--base-url",
        &served.base,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-06",
        "--page-size",
        "250",
        "--window",
        "6h",
    ];
    // Killed once the archive holds a tenth, four tenths and seven tenths of the events.
    for target in [2_000, 8_000, 14_000] {
        let after = sb.last_run();
        let mut child = sb.command().envs(SIM_CREDS).args(args).spawn().unwrap();
        sb.wait_for(
            &mut child,
            after,
            &format!("a stored page and {target} events"),
            |p| p.pages >= 1 && p.events >= target,
        );
        child.kill().unwrap();
        let status = wait_or_hang(&mut child, "a killed sync");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
    served.sim.release();
    sb.run_env(&args, &SIM_CREDS).expect(0);
    assert_exact(&sb, &served);
    let (run, report) = verify_json(&sb, &sb.db, None);
    assert_eq!(run.code, 0, "{report}");
}

/// A tampering case: what it is, the SQL that does it, and the finding `verify` must make: its kind, window,
/// an id it names (if it concerns an event), and words of its detail (the column).
struct Tampering {
    name: String,
    sql: String,
    kind: &'static str,
    window: Option<i64>,
    id: Option<i64>,
    words: String,
}

fn tampering(
    name: impl Into<String>,
    sql: impl Into<String>,
    (kind, window, id): (&'static str, Option<i64>, Option<i64>),
    words: impl Into<String>,
) -> Tampering {
    Tampering {
        name: name.into(),
        sql: sql.into(),
        kind,
        window,
        id,
        words: words.into(),
    }
}

/// Runs each case on its own copy of the archive: `verify --anchor` must exit 7 with the finding named.
fn assert_each_caught(sb: &Sandbox, anchor: &str, cases: &[Tampering]) {
    for (n, c) in cases.iter().enumerate() {
        let db = tampered_copy(sb, &format!("case-{n}"), &c.sql);
        let (run, report) = verify_json(sb, &db, Some(anchor));
        assert_eq!(run.code, 7, "{}: {}", c.name, run.stdout);
        let found = detailed_findings(&report);
        assert!(
            found
                .iter()
                .any(|(kind, window, ids, detail)| kind == c.kind
                    && *window == c.window
                    && c.id.is_none_or(|id| ids.contains(&id))
                    && detail.contains(&c.words)),
            "{}: expected a {} finding for window {:?} naming {:?} and saying '{}', got {found:#?}",
            c.name,
            c.kind,
            c.window,
            c.id,
            c.words
        );
    }
}

#[test]
fn an_edit_of_a_column_raw_derives_is_caught_and_named_with_the_event() {
    let (_served, sb, head) = archive();
    let (victim, window): (i64, i64) = sb
        .conn()
        .query_row(
            "SELECT id, window_id FROM events ORDER BY id LIMIT 1 OFFSET 1500",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let edit = |set: &str| format!("UPDATE events SET {set} WHERE id = {victim}");
    let named = |columns: &str| format!("{columns} changed (not what raw says)");
    let edited = ("edited", Some(window), Some(victim));
    let cases = vec![
        tampering(
            "the user and the action",
            edit("username = 'mallory', action = 'user-logout'"),
            edited,
            named("action, username"),
        ),
        tampering(
            "timestamp",
            edit("timestamp = '1999-01-01T00:00:00.000Z'"),
            edited,
            named("timestamp"),
        ),
        tampering(
            "category",
            edit("category = 'billing'"),
            edited,
            named("category"),
        ),
        tampering(
            "action",
            edit("action = 'user-logout'"),
            edited,
            named("action"),
        ),
        tampering(
            "description",
            edit("description = 'nothing happened'"),
            edited,
            named("description"),
        ),
        tampering(
            "username",
            edit("username = 'mallory'"),
            edited,
            named("username"),
        ),
        tampering(
            "ip_address",
            edit("ip_address = '10.9.9.9'"),
            edited,
            named("ip_address"),
        ),
        tampering(
            "ip_address removed",
            edit("ip_address = NULL"),
            edited,
            named("ip_address"),
        ),
        tampering(
            "username as a blob",
            edit("username = CAST(username AS BLOB)"),
            edited,
            named("username"),
        ),
        tampering(
            "id",
            edit("id = 99999999"),
            ("edited", Some(window), Some(99_999_999)),
            named("id"),
        ),
    ];
    assert_each_caught(&sb, &head, &cases);
}

/// 3,000 events with a few malformed items (rejects), synced, then read again by a reconcile after edits and
/// deletions at the source (revisions, reconcile records): the chain head after both.
fn archive_with_every_kind_of_row() -> (Served, Sandbox, String) {
    let config = SimConfig {
        malformed_ppm: 5_000,
        ..SimConfig::new(
            3_000,
            parse_time_arg("2024-01-01").unwrap(),
            parse_time_arg("2024-01-04").unwrap(),
        )
    };
    let (served, sb, run) = served_and_synced(config, "2024-01-01", "2024-01-04", &["--quiet"]);
    run.expect(3);
    served.sim.edit_events(5);
    served.sim.delete_events(2);
    sb.run_env(
        &["reconcile", "--quiet", "--base-url", &served.base],
        &SIM_CREDS,
    )
    .expect(8);
    let (run, report) = verify_json(&sb, &sb.db, None);
    run.expect(0);
    let head = report["head"].as_str().unwrap().to_string();
    (served, sb, head)
}

/// Ids of a row: (row id, its event id or 0, its window).
fn first_row(sb: &Sandbox, table: &str, event: &str) -> (i64, i64, i64) {
    sb.conn()
        .query_row(
            &format!("SELECT id, {event}, window_id FROM {table} ORDER BY id LIMIT 1"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap_or_else(|e| panic!("no row in {table}: {e}"))
}

/// Each column of an event that raw does not derive, edited; `other` is another sealed window fetch.
fn event_column_cases(event: i64, window: i64, other: i64) -> Vec<Tampering> {
    let mut cases = Vec::new();
    let digest = seal::sha256_hex(b"x");
    let (e, w) = (Some(event), Some(window));
    for (column, set, kind, words) in [
        (
            "fetched_at",
            "'2030-01-01T00:00:00.000Z'",
            "edited",
            "fetched_at",
        ),
        ("digest", &*format!("'{digest}'"), "edited", "digest"),
        ("raw", "raw || ' '", "edited", "raw or digest changed"),
        ("window_id", &*other.to_string(), "deleted", "are gone"),
    ] {
        cases.push(tampering(
            format!("events.{column}"),
            format!("UPDATE events SET {column} = {set} WHERE id = {event}"),
            (kind, w, e),
            words,
        ));
    }
    cases
}

/// Each column of a revision, edited.
fn revision_column_cases(sb: &Sandbox, digest: &str, other: i64) -> Vec<Tampering> {
    let mut cases = Vec::new();
    let (revision, revised, w) = first_row(sb, "event_revisions", "event_id");
    for (column, set, kind, words) in [
        (
            "event_id",
            "event_id + 1",
            "edited",
            "revision(s) sealed in this window changed after it was sealed: event_id",
        ),
        ("raw", "raw || ' '", "edited", "raw or digest changed"),
        (
            "fetched_at",
            "'2030-01-01T00:00:00.000Z'",
            "edited",
            "fetched_at",
        ),
        (
            "window_id",
            &*other.to_string(),
            "deleted",
            "revision(s) sealed in this window are gone",
        ),
        (
            "digest",
            &*format!("'{digest}'"),
            "edited",
            "changed after it was sealed: digest",
        ),
        (
            "id",
            "id + 1000",
            "deleted",
            "revision(s) sealed in this window are gone",
        ),
    ] {
        cases.push(tampering(
            format!("event_revisions.{column}"),
            format!("UPDATE event_revisions SET {column} = {set} WHERE id = {revision}"),
            (kind, Some(w), Some(revised)),
            words,
        ));
    }
    cases
}

/// Each column of a reject, edited.
fn reject_column_cases(sb: &Sandbox, other: i64) -> Vec<Tampering> {
    let mut cases = Vec::new();
    let (reject, _, w) = first_row(sb, "rejects", "0");
    for (column, set, kind, words) in [
        (
            "raw",
            "raw || ' '",
            "edited",
            "changed after it was sealed: raw",
        ),
        (
            "reason",
            "'forged'",
            "edited",
            "changed after it was sealed: reason",
        ),
        (
            "window_id",
            &*other.to_string(),
            "deleted",
            "reject(s) sealed in this window are gone",
        ),
        (
            "page",
            "page + 1",
            "edited",
            "changed after it was sealed: page",
        ),
        (
            "received_at",
            "'2030-01-01T00:00:00.000Z'",
            "edited",
            "changed after it was sealed: received_at",
        ),
        (
            "id",
            "id + 1000",
            "deleted",
            "reject(s) sealed in this window are gone",
        ),
    ] {
        cases.push(tampering(
            format!("rejects.{column}"),
            format!("UPDATE rejects SET {column} = {set} WHERE id = {reject}"),
            (kind, Some(w), None),
            format!("{words} (row ids {reject}"),
        ));
    }
    cases
}

/// Each column of a reconcile record, edited.
fn source_column_cases(sb: &Sandbox, other: i64) -> Vec<Tampering> {
    let mut cases = Vec::new();
    let (change, changed, w) = first_row(sb, "source_changes", "event_id");
    for (column, set, kind, words) in [
        ("window_id", &*other.to_string(), "deleted", "are gone"),
        (
            "event_id",
            "event_id + 1",
            "ledger",
            "changed after it was sealed: event_id",
        ),
        (
            "kind",
            "CASE kind WHEN 'late' THEN 'changed' ELSE 'late' END",
            "ledger",
            "changed after it was sealed: kind",
        ),
        (
            "detected_at",
            "'2030-01-01T00:00:00.000Z'",
            "ledger",
            "changed after it was sealed: detected_at",
        ),
        ("id", "id + 1000", "deleted", "are gone"),
    ] {
        cases.push(tampering(
            format!("source_changes.{column}"),
            format!("UPDATE source_changes SET {column} = {set} WHERE id = {change}"),
            (kind, Some(w), Some(changed)),
            words,
        ));
    }
    cases
}

/// Each column of window fetch `window`'s ledger row, edited (`id`: the row then seems deleted).
fn window_column_cases(window: i64, event: i64) -> Vec<Tampering> {
    let mut cases = Vec::new();
    let text = "'2030-01-01T00:00:00.000Z'";
    for (column, set) in [
        ("run_id", "run_id + 1"),
        ("window_start", text),
        ("window_end", text),
        ("category_filter", "'billing'"),
        ("action_filter", "'user-logout'"),
        ("created_from", text),
        ("created_to", text),
        ("status", "'failed'"),
        ("pages", "pages + 1"),
        ("events_received", "events_received + 1"),
        ("events_new", "events_new + 1"),
        ("revisions", "revisions + 1"),
        ("rejects", "rejects + 1"),
        ("out_of_window", "out_of_window + 1"),
        ("started_at", text),
        ("completed_at", text),
        ("error", "'forged'"),
    ] {
        cases.push(tampering(
            format!("windows.{column}"),
            format!("UPDATE windows SET {column} = {set} WHERE id = {window}"),
            ("ledger", Some(window), None),
            format!("the window's ledger row changed after it was sealed: {column}"),
        ));
    }
    cases.push(tampering(
        "windows.id",
        format!("UPDATE windows SET id = 99999 WHERE id = {window}"),
        ("ledger", Some(window), Some(event)),
        "the ledger row of this sealed window was deleted",
    ));
    cases
}

#[test]
fn an_edit_of_any_other_column_of_a_sealed_row_is_caught_and_named() {
    let (_served, sb, head) = archive_with_every_kind_of_row();
    let (event, _, window) = first_row(&sb, "events", "id");
    let other = sb.count(&format!(
        "SELECT max(window_id) FROM seals WHERE window_id <> {window}"
    ));
    let digest = seal::sha256_hex(b"x");
    let cases = [
        event_column_cases(event, window, other),
        revision_column_cases(&sb, &digest, other),
        reject_column_cases(&sb, other),
        source_column_cases(&sb, other),
        window_column_cases(window, event),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    assert_each_caught(&sb, &head, &cases);
}

#[test]
fn rows_filed_under_a_window_fetch_with_no_seal_are_caught() {
    let (_served, sb, head) = archive_with_every_kind_of_row();
    let event = sb.count("SELECT min(id) FROM events");
    let orphan = ("inserted", None, Some(event));
    let cases = vec![
        tampering(
            "a revision",
            format!(
                "INSERT INTO event_revisions (event_id, raw, fetched_at, window_id, digest)
                 SELECT id, raw, fetched_at, 9999, digest FROM events WHERE id = {event}"
            ),
            orphan,
            "row(s) of event_revisions belong to no sealed window fetch",
        ),
        tampering(
            "a reject",
            "INSERT INTO rejects (raw, reason, window_id, page, received_at)
             VALUES ('42', 'forged', 9999, 1, '2024-02-01T00:00:00.000Z')",
            ("inserted", None, None),
            "reject(s) belong to no sealed window fetch",
        ),
        tampering(
            "a reconcile record",
            format!(
                "INSERT INTO source_changes (window_id, event_id, kind, detected_at)
                 VALUES (9999, {event}, 'deleted', '2024-02-01T00:00:00.000Z')"
            ),
            orphan,
            "row(s) of source_changes belong to no sealed window fetch",
        ),
    ];
    assert_each_caught(&sb, &head, &cases);
}

/// A sync in 12-hour windows over 1-5 January, a reconcile of 2 January in one day-long window (which blocks
/// the range of the 12-hour window fetch of 2 January's morning), and a prune before 2 January noon: that
/// fetch is pruned with nothing removed and everything kept. Returns the archive, the chain head, and that
/// window fetch.
fn pruned_with_events_left() -> (Served, Sandbox, String, i64) {
    let config = SimConfig::new(
        4_000,
        parse_time_arg("2024-01-01").unwrap(),
        parse_time_arg("2024-01-05").unwrap(),
    );
    let (served, sb, run) = served_and_synced(
        config,
        "2024-01-01",
        "2024-01-05",
        &["--quiet", "--window", "12h"],
    );
    run.expect(0);
    let api = ["--quiet", "--base-url", &served.base];
    let reconcile = [
        "reconcile",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-03",
        "--window",
        "1d",
    ];
    sb.run_env(&[&reconcile[..], &api].concat(), &SIM_CREDS)
        .expect(0);
    sb.run(&["prune", "--before", "2024-01-02T12:00:00Z"])
        .expect(0);
    let window = sb.count("SELECT window_id FROM pruned_windows WHERE events = 0 AND kept > 0");
    let (run, report) = verify_json(&sb, &sb.db, None);
    run.expect(0);
    let head = report["head"].as_str().unwrap().to_string();
    (served, sb, head, window)
}

/// A copy of `sb`'s archive in which one event left under pruned window fetch `window` is edited consistently
/// (raw, the column it derives, the digest), and so is its member in the window's seal: the copy and the event.
fn a_kept_event_edited_with_its_member(sb: &Sandbox, window: i64) -> (std::path::PathBuf, i64) {
    let (victim, raw): (i64, String) = sb
        .conn()
        .query_row(
            "SELECT id, raw FROM events WHERE window_id = ?1 ORDER BY id LIMIT 1 OFFSET 10",
            [window],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // The event is edited consistently (raw, the column it derives, the digest), and so is its member.
    let mut forged: serde_json::Value = serde_json::from_str(&raw).unwrap();
    forged["username"] = "mallory".into();
    let forged = forged.to_string();
    let digest = seal::sha256_hex(forged.as_bytes());
    let db = tampered_copy(
        sb,
        "kept-event-edited",
        &format!(
            "UPDATE events SET raw = '{forged}', digest = '{digest}', username = 'mallory' WHERE id = {victim}"
        ),
    );
    let conn = Connection::open(&db).unwrap();
    let (seal_id, mut members, format): (i64, Vec<u8>, i64) = conn
        .query_row(
            "SELECT id, members, format FROM seals WHERE window_id = ?1",
            [window],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let width = seal::SealFormat::from_number(format)
        .unwrap()
        .member_bytes();
    let at = members
        .chunks_exact(width)
        .position(|m| m[..8] == victim.to_be_bytes())
        .unwrap()
        * width;
    members[at + 8..at + 16].copy_from_slice(&seal::digest_prefix(&digest));
    conn.execute(
        "UPDATE seals SET members = ?2 WHERE id = ?1",
        rusqlite::params![seal_id, members],
    )
    .unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    (db, victim)
}

#[test]
fn what_a_prune_left_is_vouched_for_by_the_chain_even_if_the_seals_members_are_patched() {
    let (_served, sb, head, window) = pruned_with_events_left();
    let (db, victim) = a_kept_event_edited_with_its_member(&sb, window);
    let (run, report) = verify_json(&sb, &db, Some(&head));
    assert_eq!(run.code, 7, "{report}");
    let found = detailed_findings(&report);
    assert!(
        found.iter().any(|(kind, w, ids, detail)| kind == "edited"
            && *w == Some(window)
            && ids.contains(&victim)
            && detail.ends_with("recorded them: digest")),
        "{found:#?}"
    );
}

#[test]
fn a_second_prune_refuses_to_bury_an_edit_of_what_the_first_left() {
    let (_served, sb, _head, window) = pruned_with_events_left();
    let (db, _) = a_kept_event_edited_with_its_member(&sb, window);
    let events = |db: &std::path::Path| -> i64 {
        Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap()
    };
    let before = events(&db);
    // The reconcile's window fetch that kept the first prune from this window's range has ended by now.
    let mut prune = sb.command();
    prune
        .env("ELEVATE_DB", &db)
        .args(["prune", "--before", "2024-01-03T12:00:00Z"]);
    let run = Run::from(prune.output().unwrap());
    run.expect(7);
    assert!(
        run.stderr
            .contains(&format!("window fetch {window} no longer matches its seal")),
        "{}",
        run.stderr
    );
    assert_eq!(events(&db), before, "nothing was pruned");
}

#[test]
fn the_ledger_row_of_a_pruned_window_is_checked_against_what_its_prune_recorded() {
    let (_served, sb, head, window) = pruned_with_events_left();
    let cases = vec![
        tampering(
            "its end moved",
            format!(
                "UPDATE windows SET window_end = '2024-01-09T00:00:00.000Z' WHERE id = {window}"
            ),
            ("ledger", Some(window), None),
            "the window's ledger row changed after prune 1 recorded it: window_end",
        ),
        tampering(
            "its error set",
            format!("UPDATE windows SET error = 'forged' WHERE id = {window}"),
            ("ledger", Some(window), None),
            "recorded it: error",
        ),
    ];
    assert_each_caught(&sb, &head, &cases);
}

/// Re-seals the archive at `db` as the previous release did (every seal in format 1, no lines, prune records
/// without lines), then takes it back to that release's schema (version 6).
fn as_sealed_by_the_previous_release(db: &std::path::Path) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER seals_append_only_update; DROP TRIGGER seals_append_only_delete;
         UPDATE pruned_windows SET ledger = NULL, kept_lines = NULL;",
    )
    .unwrap();
    let seals: Vec<(i64, Option<i64>, Option<i64>)> = conn
        .prepare("SELECT id, window_id, prune_id FROM seals ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let v1 = seal::SealFormat::V1;
    let mut previous = seal::GENESIS.to_string();
    for (id, window, prune) in seals {
        let (content, members) = match (window, prune) {
            (Some(w), _) => {
                let c = seal::window_content(&conn, w, v1).unwrap();
                (c.content, c.members)
            }
            (None, Some(p)) => (seal::prune_content(&conn, p, v1).unwrap(), Vec::new()),
            (None, None) => unreachable!(),
        };
        let hash = seal::chain_hash(&previous, &content);
        // A prune names the hash of each window fetch's seal: re-sealing the fetch changes it.
        conn.execute(
            "UPDATE pruned_windows SET seal_hash = ?2 WHERE seal_hash = (SELECT hash FROM seals WHERE id = ?1)",
            rusqlite::params![id, hash],
        )
        .unwrap();
        conn.execute(
            "UPDATE seals SET members = ?2, content = ?3, previous = ?4, hash = ?5, format = 1, lines = NULL
             WHERE id = ?1",
            rusqlite::params![id, members, content, previous, hash],
        )
        .unwrap();
        previous = hash;
    }
    conn.execute_batch(
        "ALTER TABLE seals DROP COLUMN lines; ALTER TABLE seals DROP COLUMN format;
         ALTER TABLE pruned_windows DROP COLUMN ledger; ALTER TABLE pruned_windows DROP COLUMN kept_lines;
         CREATE TRIGGER seals_append_only_update BEFORE UPDATE ON seals
         BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;
         CREATE TRIGGER seals_append_only_delete BEFORE DELETE ON seals
         BEGIN SELECT RAISE(ABORT, 'seals are append-only'); END;
         DELETE FROM refinery_schema_history WHERE version = 7;",
    )
    .unwrap();
    conn.execute_batch(UNDO_AFTER_VERSION_7).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

/// How many seals the archive has in each format, by format.
fn seal_formats(sb: &Sandbox) -> Vec<(i64, i64)> {
    sb.conn()
        .prepare("SELECT format, count(*) FROM seals GROUP BY format ORDER BY format")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Edits that version 1 seals (or the typed columns' derivation) catch, on the newest event and its window.
fn version_1_cases(sb: &Sandbox) -> Vec<Tampering> {
    let (event, window) = sb
        .conn()
        .query_row(
            "SELECT id, window_id FROM events ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .unwrap();
    vec![
        tampering(
            "an event's digest",
            format!(
                "UPDATE events SET digest = '{}' WHERE id = {event}",
                seal::sha256_hex(b"x")
            ),
            ("edited", Some(window), Some(event)),
            "digest",
        ),
        tampering(
            "an event's username",
            format!("UPDATE events SET username = 'mallory' WHERE id = {event}"),
            ("edited", Some(window), Some(event)),
            "username changed (not what raw says)",
        ),
        tampering(
            "the ledger",
            format!(
                "UPDATE windows SET window_end = '2024-01-09T00:00:00.000Z' WHERE id = {window}"
            ),
            ("ledger", Some(window), None),
            "ledger row",
        ),
    ]
}

#[test]
fn an_archive_sealed_with_version_1_still_verifies_after_the_upgrade_and_keeps_its_evidence() {
    let (served, sb, _head) = archive_with_every_kind_of_row();
    sb.run(&["prune", "--before", "2024-01-02"]).expect(0);
    as_sealed_by_the_previous_release(&sb.db);
    // A writing command upgrades the archive in place; its seals stay version 1.
    sb.run(&[
        "hold",
        "add",
        "--from",
        "2024-01-03",
        "--to",
        "2024-01-04",
        "--reason",
        "upgrade",
    ])
    .expect(0);
    let before = seal_formats(&sb);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].0, 1);
    let (run, report) = verify_json(&sb, &sb.db, None);
    assert_eq!(run.code, 0, "{report}");
    let head = report["head"].as_str().unwrap().to_string();
    // What version 1 covers is still caught.
    let cases = version_1_cases(&sb);
    assert_each_caught(&sb, &head, &cases);
    // New windows are sealed in the current format, after the old seals, and the whole chain verifies.
    let refetch = [
        "sync",
        "--quiet",
        "--base-url",
        &served.base,
        "--from",
        "2024-01-03",
        "--to",
        "2024-01-04",
        "--refetch",
    ];
    sb.run_env(&refetch, &SIM_CREDS).expect(3);
    // A prune now (version 2) of window fetches sealed in version 1 checks them in version 1 and records them.
    sb.run(&["prune", "--before", "2024-01-03"]).expect(0);
    assert!(sb.count("SELECT count(*) FROM pruned_windows WHERE kept_lines IS NOT NULL") > 0);
    let after = seal_formats(&sb);
    assert_eq!((after[0], after[1].0), (before[0], 2), "{after:?}");
    let (run, report) = verify_json(&sb, &sb.db, Some(&head));
    assert_eq!(run.code, 0, "{report}");
}

#[test]
fn an_index_that_no_longer_matches_its_table_is_caught_by_the_integrity_check() {
    // An index whose entries no longer match its table (its definition rewritten: queries that use it miss
    // events) while every row is untouched: only SQLite's integrity check, which verify runs on its own
    // connection, sees it.
    let (_served, sb, _head) = archive();
    {
        let conn = Connection::open(&sb.db).unwrap();
        conn.execute_batch(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX events_username ON events (action, timestamp)'
              WHERE name = 'events_username';
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
    }
    let run = sb.run(&["verify"]);
    run.expect(7);
    assert!(
        run.stdout.contains("SQLite's integrity check failed"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}
