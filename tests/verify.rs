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
    let victim: i64 = conn
        .query_row(
            "SELECT id FROM events ORDER BY id LIMIT 1 OFFSET 100",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    // The forger edits an event, fixes its digest, then recomputes every seal from the rows, consistently.
    let forged = r#"{"id":1,"forged":true}"#;
    let db = tampered_copy(
        &sb,
        "rewritten",
        &format!(
            "UPDATE events SET raw = '{forged}', digest = '{}' WHERE id = {victim}",
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
        let content = seal::window_content(&conn, window).unwrap();
        let hash = seal::chain_hash(&previous, &content.content);
        conn.execute(
            "UPDATE seals SET members = ?2, content = ?3, previous = ?4, hash = ?5 WHERE id = ?1",
            rusqlite::params![id, content.members, content.content, previous, hash],
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
    // The copy is a consistent snapshot: intact, with the windows then in flight shown as in progress.
    let (run, report) = verify_json(&sb, &copy, None);
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(report["windows_in_progress"].as_u64().unwrap() > 0 || run.code == 0);
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
