//! A hostile reviewer's tests of the Merkle log, signed checkpoints and evidence bundles: an attacker who can
//! write the archive file (and the shipped checkpoint or a bundle), but does not hold the signing key.
//! Tests marked `#[ignore = "breaks: ..."]` show a broken promise; the others show one that holds.

mod common;

use common::signed::*;
use common::*;
use elevate_archive::store::tlog::{LogAppender, decode_run};
use elevate_archive::tlog::LeafKind;
use elevate_archive::tlog::bundle::Bundle;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn checkpoint_size(cp: &Path) -> i64 {
    let text = std::fs::read_to_string(cp).unwrap();
    text.lines().nth(1).unwrap().parse().unwrap()
}

fn checkpoint_wal(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
}

/// Appends a forged removal leaf (the attacker computes the stored hashes: no key is needed).
fn append_removal(db: &Path, removed_idx: u64, kind: LeafKind, row: i64, prune_id: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut app = LogAppender::load(&conn).unwrap();
    app.append_removal(removed_idx, kind, row, prune_id);
    app.flush(&conn).unwrap();
    drop(conn);
    checkpoint_wal(db);
}

/// The `n`th event leaf: (leaf index, event id), through the runs of event leaves.
fn event_leaf(sb: &Sandbox, n: i64) -> (u64, i64) {
    let conn = sb.conn();
    let mut stmt = conn
        .prepare("SELECT idx, ref, count, refs FROM tlog_leaves WHERE kind = 'event' ORDER BY idx")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut seen = 0i64;
    while let Some(r) = rows.next().unwrap() {
        let (idx, first, count): (i64, i64, i64) =
            (r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap());
        let refs: Option<Vec<u8>> = r.get(3).unwrap();
        let ids = decode_run(first, count as u64, refs.as_deref()).unwrap();
        if n < seen + ids.len() as i64 {
            let k = (n - seen) as usize;
            return (idx as u64 + k as u64, ids[k]);
        }
        seen += ids.len() as i64;
    }
    panic!("fewer than {n} event leaves")
}

/// The `n`th row of `tlog_leaves` standing for events: (its first leaf, its first event id, its leaves).
fn event_row(sb: &Sandbox, n: i64) -> (u64, i64, i64) {
    sb.conn()
        .query_row(
            &format!(
                "SELECT idx, ref, count FROM tlog_leaves WHERE kind = 'event' ORDER BY idx LIMIT 1 OFFSET {n}"
            ),
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

// ---------------------------------------------------------------------------------------------------------
// Log tampering
// ---------------------------------------------------------------------------------------------------------

/// A forged bare removal leaf (no prune, no prune seal) appended after the shipped checkpoint, and the event
/// row it names deleted. README: `deleted` is "a row is gone and no prune removed it"; `--log-only` "every
/// row's leaf is still recomputed, so an edited, deleted or rewritten row is still caught".
#[test]
fn a_forged_removal_leaf_hides_a_deleted_event_from_the_log_check() {
    let (_served, sb, _key, vkey, cp) = signed_archive(1_500);
    let (idx, id) = event_leaf(&sb, 10);
    let forged = tampered_copy(
        &sb,
        "removal",
        &format!("DELETE FROM events WHERE id = {id}"),
    );
    append_removal(&forged, idx, LeafKind::Event, id, 424242);
    let (run, report) = verify_cp(&sb, &forged, &cp, &[&vkey], &["--log-only"]);
    assert!(
        run.code == 7 || log_finding_kinds(&report).contains(&"deleted".to_string()),
        "event {id} deleted, no prune 424242 exists, yet --log-only exit {}: {report}\nstderr: {}",
        run.code,
        run.stderr
    );
}

/// The same forgery under the full `verify --checkpoint`: the seals still catch the deletion.
#[test]
fn a_forged_removal_leaf_does_not_hide_a_deleted_event_from_the_full_verify() {
    let (_served, sb, _key, vkey, cp) = signed_archive(1_500);
    let (idx, id) = event_leaf(&sb, 10);
    let forged = tampered_copy(
        &sb,
        "removal",
        &format!("DELETE FROM events WHERE id = {id}"),
    );
    append_removal(&forged, idx, LeafKind::Event, id, 424242);
    verify_cp(&sb, &forged, &cp, &[&vkey], &[]).0.expect(7);
    verify_cp(
        &sb,
        &forged,
        &cp,
        &[&vkey],
        &["--log-only", "--require-signed"],
    )
    .0
    .expect(7);
}

/// An unsigned sync appended by the attacker (their own server, events of their choosing), then hidden from the
/// log: the signed run's row is set aside so the attacker's sync gets its id (the window seals cover `run_id`),
/// the sync's leaves and unsigned checkpoint are cut, and the signed run's row is put back. Its events,
/// window fetches and seals stay in the archive, sealed in the chain, with no leaf standing for them.
/// The brief: "insert a row without a leaf (plain `verify` should catch it)"; issue 11: "Anything appended
/// after the newest checkpoint signed by a trusted key is reported as an unsigned tail".
#[test]
fn an_appended_sync_whose_leaves_are_cut_is_neither_tampering_nor_an_unsigned_tail() {
    let (served, sb, _key, vkey, cp) = signed_archive_to(1_500, "2024-01-04");
    let size = checkpoint_size(&cp);
    assert_eq!(sb.count("SELECT count(*) FROM runs"), 1);
    let events_before = sb.count("SELECT count(*) FROM events");
    let forged = tampered_copy(
        &sb,
        "appended",
        "CREATE TABLE saved_run AS SELECT * FROM runs WHERE id = 1; DELETE FROM runs WHERE id = 1;",
    );
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &forged).envs(SIM_CREDS).args([
        "sync",
        "--base-url",
        &served.base,
        "--from",
        "2024-01-04",
        "--to",
        TO,
    ]);
    Run::of(&mut cmd).expect(0);
    let conn = rusqlite::Connection::open(&forged).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF;
         DELETE FROM runs WHERE id = 1; INSERT INTO runs SELECT * FROM saved_run; DROP TABLE saved_run;
         DELETE FROM tlog_leaves WHERE idx >= {size};
         DELETE FROM checkpoints WHERE signed_by IS NULL;
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .unwrap();
    let added: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    assert!(added > events_before, "the attacker's sync added events");
    let (run, report) = verify_cp(&sb, &forged, &cp, &[&vkey], &["--require-signed"]);
    assert_eq!(
        run.code,
        7,
        "{} events with no leaf, yet exit {}: {report}\nstderr: {}",
        added - events_before,
        run.code,
        run.stderr
    );
}

/// A forged prune made with the tool in the unsigned tail, then its prune-seal leaf (and the run's) cut from
/// the tail: the removals stay (so the rows are "accounted for"), the prune is no longer named.
#[test]
fn a_forged_prune_without_its_seal_leaf_is_not_named_in_the_unsigned_tail() {
    let (_served, sb, _key, vkey, cp) = signed_archive(1_500);
    let forged = sb.dir.path().join("prune.db");
    std::fs::copy(&sb.db, &forged).unwrap();
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &forged)
        .args(["prune", "--before", "2024-01-03"]);
    Run::of(&mut cmd).expect(0);
    let conn = rusqlite::Connection::open(&forged).unwrap();
    // The prune's non-removal leaves are the last ones (its seal, maybe a run): cut everything after the
    // last removal, and the unsigned checkpoint that covered them.
    conn.execute_batch(
        "DELETE FROM tlog_leaves WHERE idx > (SELECT max(idx) FROM tlog_leaves WHERE kind = 'removal');
         DELETE FROM checkpoints WHERE signed_by IS NULL;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    let kinds_before_removals: i64 = conn
        .query_row(
            &format!(
                "SELECT count(*) FROM tlog_leaves WHERE idx >= {} AND kind NOT IN ('removal')",
                checkpoint_size(&cp)
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let (run, report) = verify_cp(&sb, &forged, &cp, &[&vkey], &[]);
    let tail = &report["log"]["unsigned_tail"];
    assert!(
        run.code == 7
            || (tail["prunes"] == serde_json::json!([1]) && run.stderr.contains("prune(s) 1")),
        "prune 1 is in the archive, its removals in the tail ({kinds_before_removals} other leaves), \
         exit {}: tail {tail}\nfindings {:?}\nstderr: {}",
        run.code,
        log_finding_kinds(&report),
        run.stderr
    );
}

/// Events filed under a window fetch recorded as still running (as a crashed sync, or a backup taken during one,
/// leaves it), with no leaf in the log: a real sync appends each page's events to the log in the page's
/// transaction, so a running window's events always have leaves. Nothing looks for rows without a leaf.
#[test]
fn events_under_a_forged_running_window_without_leaves_pass() {
    let (_served, sb, _key, vkey, cp) = signed_archive(800);
    let (_, a) = event_leaf(&sb, 3);
    let raw: String = sb
        .conn()
        .query_row("SELECT raw FROM events WHERE id = ?1", [a], |r| r.get(0))
        .unwrap();
    let new_id = a + 7_000_000;
    let pattern = format!("\"id\":{a}");
    assert!(raw.contains(&pattern), "{raw}");
    let new_raw = raw.replacen(&pattern, &format!("\"id\":{new_id}"), 1);
    let digest = elevate_archive::digest::sha256_hex(new_raw.as_bytes());
    let db = tampered_copy(
        &sb,
        "running",
        &format!(
            "CREATE TEMP TABLE w AS SELECT * FROM windows WHERE id = (SELECT max(id) FROM windows);
             UPDATE w SET id = id + 1000, status = 'running', completed_at = NULL;
             INSERT INTO windows SELECT * FROM w;
             CREATE TEMP TABLE t AS SELECT * FROM events WHERE id = {a};
             UPDATE t SET id = {new_id}, raw = '{}', digest = '{digest}',
                          window_id = (SELECT id FROM w);
             INSERT INTO events SELECT * FROM t;",
            new_raw.replace('\'', "''")
        ),
    );
    assert_eq!(
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM events WHERE id = ?1", [new_id], |r| r
                .get::<_, i64>(0))
            .unwrap(),
        1
    );
    let (run, report) = verify_cp(&sb, &db, &cp, &[&vkey], &["--require-signed"]);
    assert_eq!(
        run.code, 7,
        "event {new_id} inserted with no leaf: exit {}: {report}\nstderr: {}",
        run.code, run.stderr
    );
}

/// A forged prune appended without the key (listed as the unsigned tail), then the next scheduled signed sync:
/// it signs the log as it finds it, the forged prune included, and the tail warning is gone for good.
#[test]
fn a_forged_prune_is_laundered_by_the_next_signed_sync() {
    let (served, sb, key, vkey, _cp) = signed_archive(1_500);
    // The attacker prunes in place, with the tool, without the key.
    sb.run(&["prune", "--before", "2024-01-03"]).expect(0);
    let shipped = sb.dir.path().join("next.checkpoint");
    let run = signed_sync(
        &sb,
        &served.base,
        "2024-01-06",
        TO,
        &key,
        &shipped,
        &["--refetch"],
    );
    run.expect(0);
    // The signing run names the prune it signs over, and so does its checkpoint (an extension line).
    assert!(
        run.stderr.contains("made without the signing key"),
        "{}",
        run.stderr
    );
    let text = std::fs::read_to_string(&shipped).unwrap();
    assert!(
        text.contains("\nelevate-archive/unsigned-prunes 1\n"),
        "{text}"
    );
    let (v, report) = verify_cp(&sb, &sb.db, &shipped, &[&vkey], &["--require-signed"]);
    assert_eq!(v.code, 7, "{report}");
    assert_eq!(
        report["log"]["signed_over_unsigned_prunes"],
        serde_json::json!([1])
    );
    assert!(
        v.stderr.contains("signed over prune(s) [1]"),
        "{}",
        v.stderr
    );
    // Without --require-signed it is a warning, as an unsigned tail is.
    let (v, _) = verify_cp(&sb, &sb.db, &shipped, &[&vkey], &[]);
    assert_eq!(v.code, 0);
    // A prune made with the key is not named.
    let run = sb.run(&[
        "prune",
        "--before",
        "2024-01-04",
        "--signing-key",
        key.to_str().unwrap(),
        "--format",
        "json",
    ]);
    run.expect(0);
    let cp = serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()["checkpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!cp.contains("unsigned-prunes"), "{cp}");
}

/// Tampering cases the log or `verify` must catch against the shipped checkpoint: exit 7, with and without
/// `--log-only` where the log alone can see it.
#[test]
fn row_and_log_edits_are_caught_against_the_shipped_checkpoint() {
    let (_served, sb, _key, vkey, cp) = signed_archive(1_500);
    // Two rows of event leaves (runs: a sync logs a page's new events in one row).
    let (a_idx, a, a_count) = event_row(&sb, 0);
    let (b_idx, b, _) = event_row(&sb, 1);
    assert!(a_count > 1, "a sync's events are logged in runs");
    // A leaf inside a run, and its event.
    let (in_idx, in_id) = event_leaf(&sb, 1);
    assert_eq!(in_idx, a_idx + 1);
    let size = checkpoint_size(&cp);
    // (name, sql, caught by --log-only too)
    let cases: Vec<(&str, String, bool)> = vec![
        (
            "swap two leaves",
            format!(
                "UPDATE tlog_leaves SET ref = CASE idx WHEN {a_idx} THEN {b} ELSE {a} END WHERE idx IN ({a_idx}, {b_idx})"
            ),
            true,
        ),
        (
            "leaf kind event -> revision",
            // The CHECK constraints say a run is of events: the attacker turns them off.
            format!("PRAGMA ignore_check_constraints = ON; UPDATE tlog_leaves SET kind = 'revision' WHERE idx = {a_idx}"),
            true,
        ),
        (
            "leaf turned into a removal of an earlier leaf",
            format!("PRAGMA ignore_check_constraints = ON; UPDATE tlog_leaves SET kind = 'removal', ref = 0, prune_id = 1 WHERE idx = {b_idx}"),
            true,
        ),
        (
            "a run's list of events edited",
            // The first step made another (2, or 3 where it was 2).
            format!(
                "UPDATE tlog_leaves SET refs = CAST(CASE WHEN substr(refs, 1, 1) = X'02' THEN X'03' ELSE X'02' END
                 || substr(refs, 2) AS BLOB) WHERE idx = {a_idx}"
            ),
            true,
        ),
        (
            "a run made one leaf shorter",
            format!("UPDATE tlog_leaves SET count = count - 1, refs = substr(refs, 1, length(refs) - 1) WHERE idx = {a_idx}"),
            true,
        ),
        (
            "a run's list of events cut",
            format!("UPDATE tlog_leaves SET refs = substr(refs, 1, 1) WHERE idx = {a_idx}"),
            true,
        ),
        (
            "an event inside a run deleted",
            format!("DELETE FROM events WHERE id = {in_id}"),
            true,
        ),
        ("origin changed", "UPDATE tlog_state SET origin = origin || '0'".into(), true),
        (
            "a leaf deleted (hole)",
            format!("DELETE FROM tlog_leaves WHERE idx = {a_idx}"),
            true,
        ),
        ("last leaf deleted", format!("DELETE FROM tlog_leaves WHERE idx = {}", size - 1), true),
        ("stored hashes gone", "DELETE FROM tlog_hashes".into(), true),
        (
            "stored hashes chunk cut short",
            "UPDATE tlog_hashes SET hashes = substr(hashes, 1, 64) WHERE chunk = 0".into(),
            true,
        ),
        (
            "a stored hash flipped",
            "UPDATE tlog_hashes SET hashes = CAST(zeroblob(32) || substr(hashes, 33) AS BLOB) WHERE chunk = 0".into(),
            true,
        ),
        (
            "the event and its leaf deleted",
            format!("DELETE FROM events WHERE id = {a}; DELETE FROM tlog_leaves WHERE idx = {a_idx}"),
            true,
        ),
        (
            "a window seal deleted",
            "DELETE FROM seals WHERE id = (SELECT max(id) FROM seals WHERE window_id IS NOT NULL)".into(),
            true,
        ),
        (
            "a run row edited",
            "UPDATE runs SET range_to = range_from WHERE id = (SELECT min(id) FROM runs)".into(),
            true,
        ),
        (
            "an event copied under a new id without a leaf",
            format!(
                "CREATE TEMP TABLE t AS SELECT * FROM events WHERE id = {a}; UPDATE t SET id = id + 900000000;
                 INSERT INTO events SELECT * FROM t;"
            ),
            false,
        ),
        (
            "the stored checkpoint's text with CRLF",
            "UPDATE checkpoints SET text = replace(text, char(10), char(13) || char(10))".into(),
            true,
        ),
        (
            "the stored checkpoint's size edited",
            "UPDATE checkpoints SET text = replace(text, char(10) || tree_size || char(10), char(10) || (tree_size - 1) || char(10))"
                .into(),
            true,
        ),
    ];
    let mut missed = Vec::new();
    for (i, (name, sql, log_only)) in cases.iter().enumerate() {
        let db = match std::panic::catch_unwind(|| tampered_copy(&sb, &format!("case{i}"), sql)) {
            Ok(db) => db,
            Err(_) => {
                missed.push(format!("{name}: the SQL failed (schema?)"));
                continue;
            }
        };
        let mut modes: Vec<&[&str]> = vec![&[]];
        if *log_only {
            modes.push(&["--log-only"]);
        }
        for extra in modes {
            let (run, report) = verify_cp(&sb, &db, &cp, &[&vkey], extra);
            if run.code != 7 {
                missed.push(format!(
                    "{name} {extra:?}: exit {} {:?} {}",
                    run.code,
                    log_finding_kinds(&report),
                    run.stderr.trim()
                ));
            }
        }
    }
    assert!(missed.is_empty(), "not caught:\n{}", missed.join("\n"));
}

/// The log's tail truncated and re-appended with other leaves (the attacker computes the hashes): the log is
/// as long as the shipped checkpoint, but another tree: `inconsistent`.
#[test]
fn a_truncated_and_reappended_log_is_inconsistent() {
    let (_served, sb, _key, vkey, cp) = signed_archive(1_500);
    let size = checkpoint_size(&cp) as u64;
    let (idx, id) = event_leaf(&sb, 2);
    let db = tampered_copy(
        &sb,
        "truncated",
        &format!(
            "DELETE FROM events WHERE id = {id}; DELETE FROM tlog_leaves WHERE idx >= {}",
            size - 3
        ),
    );
    // Three leaves replaced, one of them a removal that "accounts for" the deleted event.
    append_removal(&db, idx, LeafKind::Event, id, 1);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut app = LogAppender::load(&conn).unwrap();
    let (_, other) = event_leaf(&sb, 5);
    let raw: String = conn
        .query_row("SELECT raw FROM events WHERE id = ?1", [other], |r| {
            r.get(0)
        })
        .unwrap();
    app.append(LeafKind::Event, other, raw.as_bytes());
    app.append(LeafKind::Event, other, raw.as_bytes());
    app.flush(&conn).unwrap();
    drop(conn);
    checkpoint_wal(&db);
    for extra in [&[][..], &["--log-only"][..]] {
        let (run, report) = verify_cp(&sb, &db, &cp, &[&vkey], extra);
        run.expect(7);
        let kinds = log_finding_kinds(&report);
        assert!(
            kinds.contains(&"inconsistent".to_string()) || kinds.contains(&"edited".to_string()),
            "{kinds:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoints and keys
// ---------------------------------------------------------------------------------------------------------

/// Signs `body` with a fresh key named `name`: the signature line (`— NAME BASE64`).
fn foreign_signature(name: &str, body: &str) -> String {
    let other = Sandbox::new();
    let (key, _) = keygen(&other, name);
    let signed = elevate_archive::tlog::note::read_signing_key(&key)
        .unwrap()
        .sign(body);
    signed.rsplit_once("\n\n").unwrap().1.trim_end().to_string()
}

fn body_of(note: &str) -> String {
    format!("{}\n", note.split_once("\n\n").unwrap().0)
}

/// The shipped checkpoint altered: each must not verify (exit 7, or 2 for text that is no checkpoint), and
/// the independent checker must not accept what `verify` refuses.
#[test]
fn altered_shipped_checkpoints_are_refused_and_the_checkers_agree() {
    let (_served, sb, _key, vkey, cp) = signed_archive(800);
    let text = std::fs::read_to_string(&cp).unwrap();
    let body = body_of(&text);
    let same_name = foreign_signature("auditor-test", &body);
    let stranger = foreign_signature("stranger", &body);
    let variants: Vec<(&str, String)> = vec![
        ("CRLF", text.replace('\n', "\r\n")),
        ("trailing blank line", format!("{text}\n")),
        ("leading space", format!(" {text}")),
        ("extra body line", text.replacen("\n\n", "\nextra\n\n", 1)),
        (
            "signature only by same name, other key",
            format!("{body}\n{same_name}\n"),
        ),
        (
            "signature only by a stranger",
            format!("{body}\n{stranger}\n"),
        ),
        ("unsigned body", body.clone()),
    ];
    let mut bad = Vec::new();
    for (name, v) in &variants {
        let f = sb.dir.path().join("variant.checkpoint");
        std::fs::write(&f, v).unwrap();
        let (run, _) = verify_cp(&sb, &sb.db, &f, &[&vkey], &[]);
        let py = python_check("checkpoint", &f, &vkey);
        if run.code == 0 {
            bad.push(format!("{name}: verify accepted it"));
        }
        // CRLF: see the_independent_checker_accepts_a_crlf_checkpoint.
        if py.code == 0 && *name != "CRLF" {
            bad.push(format!("{name}: the Python checker accepted it"));
        }
    }
    // Extra signature lines by untrusted keys do not matter to either.
    let f = sb.dir.path().join("stranger.checkpoint");
    std::fs::write(&f, format!("{text}{stranger}\n")).unwrap();
    if verify_cp(&sb, &sb.db, &f, &[&vkey], &[]).0.code != 0 {
        bad.push("a stranger's extra signature: verify refused".into());
    }
    if python_check("checkpoint", &f, &vkey).code != 0 {
        bad.push("a stranger's extra signature: Python refused".into());
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The shipped checkpoint with CRLF line ends (a mail, a Windows share): `verify` refuses it, the independent
/// checker (which reads the file in text mode: universal newlines) accepts it.
#[test]
fn the_independent_checker_accepts_a_crlf_checkpoint() {
    let (_served, sb, _key, vkey, cp) = signed_archive(800);
    let text = std::fs::read_to_string(&cp).unwrap();
    let f = sb.dir.path().join("crlf.checkpoint");
    std::fs::write(&f, text.replace('\n', "\r\n")).unwrap();
    let rust = verify_cp(&sb, &sb.db, &f, &[&vkey], &[]).0;
    let py = python_check("checkpoint", &f, &vkey);
    assert_eq!(
        rust.code == 0,
        py.code == 0,
        "verify exit {} ({}), Python exit {}",
        rust.code,
        rust.stderr.trim(),
        py.code
    );
}

/// Stored hashes rewritten with another SQLite storage class (TEXT instead of BLOB): that is damage or
/// tampering (exit 7, `stored-hashes`), not an archive error that stops the check.
#[test]
fn stored_hashes_of_another_storage_class_are_a_finding() {
    let (_served, sb, _key, vkey, cp) = signed_archive(800);
    let db = tampered_copy(
        &sb,
        "text-hashes",
        "UPDATE tlog_hashes SET hashes = CAST(zeroblob(32) || substr(hashes, 33) AS TEXT) WHERE chunk = 0",
    );
    for extra in [&[][..], &["--log-only"][..]] {
        let (run, report) = verify_cp(&sb, &db, &cp, &[&vkey], extra);
        assert_eq!(run.code, 7, "{extra:?}: {report} {}", run.stderr.trim());
    }
}

/// A genuine signed checkpoint, plus a second signature line by another key under the trusted name (or the
/// trusted signature line twice): the Rust verifier and the independent checker must agree.
#[test]
fn checkers_agree_on_extra_signature_lines_under_the_trusted_name() {
    let (_served, sb, _key, vkey, cp) = signed_archive(800);
    let text = std::fs::read_to_string(&cp).unwrap();
    let same_name = foreign_signature("auditor-test", &body_of(&text));
    let own_line = text.rsplit_once("\n\n").unwrap().1.to_string();
    let mut disagree = Vec::new();
    for (name, v) in [
        (
            "another key's line under the trusted name",
            format!("{text}{same_name}\n"),
        ),
        ("the trusted line twice", format!("{text}{own_line}")),
    ] {
        let f = sb.dir.path().join("two.checkpoint");
        std::fs::write(&f, &v).unwrap();
        let rust = verify_cp(&sb, &sb.db, &f, &[&vkey], &[]).0;
        let py = python_check("checkpoint", &f, &vkey);
        if (rust.code == 0) != (py.code == 0) {
            disagree.push(format!(
                "{name}: verify exit {}, Python exit {}",
                rust.code, py.code
            ));
        }
    }
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}

#[test]
fn verifier_and_signing_key_files_are_handled_safely() {
    let (_served, sb, key, vkey, cp) = signed_archive(800);
    // A verifier key with the wrong key hash is malformed (exit 2), never trusted.
    let parts: Vec<&str> = vkey.splitn(3, '+').collect();
    let wrong_hash = format!("{}+{}+{}", parts[0], "00000000", parts[2]);
    verify_cp(&sb, &sb.db, &cp, &[&wrong_hash], &[]).0.expect(2);
    // Another name for the same public key: its hash differs and the signature's name is not trusted.
    let other = Sandbox::new();
    let (_, stranger_vkey) = keygen(&other, "auditor-test");
    verify_cp(&sb, &sb.db, &cp, &[&stranger_vkey], &[])
        .0
        .expect(7);
    // --key as a file holding the key, and through a symlink.
    let kf = sb.dir.path().join("verifier");
    std::fs::write(&kf, format!("{vkey}\n")).unwrap();
    verify_cp(&sb, &sb.db, &cp, &[kf.to_str().unwrap()], &[])
        .0
        .expect(0);
    let link = sb.dir.path().join("verifier-link");
    std::os::unix::fs::symlink(&kf, &link).unwrap();
    verify_cp(&sb, &sb.db, &cp, &[link.to_str().unwrap()], &[])
        .0
        .expect(0);
    // A file holding the attacker's key instead is not the trusted key.
    let ak = sb.dir.path().join("attacker-verifier");
    std::fs::write(&ak, &stranger_vkey).unwrap();
    verify_cp(&sb, &sb.db, &cp, &[ak.to_str().unwrap()], &[])
        .0
        .expect(7);
    // A signing key reached through a symlink to a file others can read is refused; group-writable too.
    let open = sb.dir.path().join("open.key");
    std::fs::copy(&key, &open).unwrap();
    for mode in [0o644, 0o620, 0o604, 0o700 | 0o060] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        let slink = sb.dir.path().join(format!("slink{mode:o}"));
        std::os::unix::fs::symlink(&open, &slink).unwrap();
        for p in [&open, &slink] {
            let run = sb.run(&["prove", "1", "--signing-key", p.to_str().unwrap()]);
            run.expect(2);
            assert!(run.stderr.contains("chmod 600"), "{mode:o} {}", run.stderr);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------------------------------------

fn prove(sb: &Sandbox, id: i64, name: &str) -> (PathBuf, Vec<u8>) {
    let out = sb.dir.path().join(format!("{name}.json"));
    sb.run(&["prove", &id.to_string(), "--out", out.to_str().unwrap()])
        .expect(0);
    let bytes = std::fs::read(&out).unwrap();
    (out, bytes)
}

/// (verify-proof exit, Python exit) for `bytes`.
fn both_verdicts(sb: &Sandbox, bytes: &[u8], vkey: &str) -> (i32, i32) {
    let f = sb.dir.path().join("crafted.json");
    std::fs::write(&f, bytes).unwrap();
    let rust = sb
        .run(&["verify-proof", f.to_str().unwrap(), "--key", vkey])
        .code;
    let py = python_check("bundle", &f, vkey).code;
    (rust, py)
}

fn canonical(b: &Bundle) -> Vec<u8> {
    b.to_text().into_bytes()
}

/// Single-byte edits the Rust verifier refuses (non-canonical) but the independent checker accepts. Issue 11:
/// "editing any byte of the bundle fails; the independent implementation agrees on every bundle".
#[test]
fn the_independent_checker_accepts_single_byte_edits_that_verify_proof_refuses() {
    let (_served, sb, _key, vkey, _cp) = signed_archive(800);
    let id = sb.count("SELECT max(id) FROM events");
    let (_, bytes) = prove(&sb, id, "live");
    let text = String::from_utf8(bytes.clone()).unwrap();
    let mut edits: Vec<(String, Vec<u8>)> = Vec::new();
    let mut nl = bytes.clone();
    *nl.last_mut().unwrap() = b' ';
    edits.push(("final newline -> space".into(), nl));
    let mut cr = bytes.clone();
    *cr.last_mut().unwrap() = b'\r';
    edits.push(("final newline -> CR".into(), cr));
    // The last base64 digit of the first proof hash carries 2 padding bits: flip one.
    let at = text.find("\"proof\":[\"").unwrap() + 10 + 42;
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = B64.iter().position(|&c| c == bytes[at]).unwrap();
    let mut pad = bytes.clone();
    pad[at] = B64[sextet ^ 0x01];
    edits.push((
        format!(
            "proof hash digit {:?} -> {:?}",
            bytes[at] as char, pad[at] as char
        ),
        pad,
    ));
    let mut disagree = Vec::new();
    for (name, e) in &edits {
        let (rust, py) = both_verdicts(&sb, e, &vkey);
        if rust == 0 || py == 0 {
            disagree.push(format!(
                "{name}: verify-proof exit {rust}, Python exit {py}"
            ));
        }
    }
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}

/// Other spellings of a genuine bundle (extra fields, other key order, a float id, `true` for 1, an archived
/// bundle that also carries a removal): verify-proof refuses all; the independent checker must too.
#[test]
fn the_checkers_agree_on_other_spellings_of_a_bundle() {
    let (_served, sb, _key, vkey, _cp) = signed_archive(800);
    let id = sb.count("SELECT max(id) FROM events");
    let (_, bytes) = prove(&sb, id, "live");
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let mut variants: Vec<(&str, String)> = vec![
        (
            "pretty",
            serde_json::to_string_pretty(&value).unwrap() + "\n",
        ),
        (
            "unknown field",
            text.replacen("{\"format\"", "{\"note\":\"x\",\"format\"", 1),
        ),
        (
            "id as float",
            text.replacen(
                &format!("\"event_id\":{id},"),
                &format!("\"event_id\":{id}.0,"),
                1,
            ),
        ),
        (
            "duplicate key",
            text.replacen("{\"format\"", "{\"status\":\"removed\",\"format\"", 1),
        ),
        ("no final newline", text.trim_end().to_string()),
    ];
    // An archived bundle that also carries a (made-up) removal.
    let mut v2 = value.clone();
    v2["removal"] = serde_json::json!({"leaf_index": 0, "data": "x", "proof": []});
    variants.push((
        "archived with a removal",
        serde_json::to_string(&v2).unwrap() + "\n",
    ));
    let mut disagree = Vec::new();
    for (name, v) in &variants {
        let (rust, py) = both_verdicts(&sb, v.as_bytes(), &vkey);
        if (rust == 0) != (py == 0) {
            disagree.push(format!(
                "{name}: verify-proof exit {rust}, Python exit {py}"
            ));
        }
    }
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}

/// A genuine bundle whose checkpoint carries an extra signature line by another key under the trusted name.
#[test]
fn the_checkers_agree_on_a_bundle_with_a_same_name_signature_added() {
    let (_served, sb, _key, vkey, _cp) = signed_archive(800);
    let id = sb.count("SELECT max(id) FROM events");
    let (_, bytes) = prove(&sb, id, "live");
    let mut b: Bundle = serde_json::from_slice(&bytes).unwrap();
    let line = foreign_signature("auditor-test", &body_of(&b.checkpoint));
    b.checkpoint = format!("{}{line}\n", b.checkpoint);
    let (rust, py) = both_verdicts(&sb, &canonical(&b), &vkey);
    assert_eq!(
        rust == 0,
        py == 0,
        "verify-proof exit {rust}, Python exit {py}"
    );
}

/// Crafted bundles that must fail in both checkers: another event's raw under this id, a proof presented at
/// another index, a proof against another tree, a checkpoint re-signed by an attacker under the trusted name,
/// huge numbers, a removed bundle turned into an archived one without raw.
#[test]
fn crafted_bundles_fail_in_both_checkers() {
    let (_served, sb, key, vkey, _cp) = signed_archive(1_500);
    let pruned_id =
        sb.count("SELECT min(id) FROM events WHERE timestamp < '2024-01-02T00:00:00.000Z'");
    let a = sb.count("SELECT max(id) FROM events");
    let b_id = sb.count(&format!("SELECT max(id) FROM events WHERE id < {a}"));
    let (_, before_a) = prove(&sb, a, "a-before");
    sb.run(&[
        "prune",
        "--before",
        "2024-01-03",
        "--signing-key",
        key.to_str().unwrap(),
    ])
    .expect(0);
    let (_, a_bytes) = prove(&sb, a, "a");
    let (_, b_bytes) = prove(&sb, b_id, "b");
    let (_, r_bytes) = prove(&sb, pruned_id, "removed");
    let a0: Bundle = serde_json::from_slice(&a_bytes).unwrap();
    let b0: Bundle = serde_json::from_slice(&b_bytes).unwrap();
    let r0: Bundle = serde_json::from_slice(&r_bytes).unwrap();
    let old: Bundle = serde_json::from_slice(&before_a).unwrap();
    assert_eq!(both_verdicts(&sb, &a_bytes, &vkey), (0, 0));
    assert_eq!(both_verdicts(&sb, &r_bytes, &vkey), (0, 0));
    let mut crafted: Vec<(&str, Bundle)> = Vec::new();
    let mut x = a0.clone();
    x.event.raw = b0.event.raw.clone();
    crafted.push(("b's raw under a's id and proof", x));
    let mut x = b0.clone();
    x.event_id = a;
    crafted.push(("b's raw and proof under a's id", x));
    let mut x = a0.clone();
    x.event.leaf_index = b0.event.leaf_index;
    crafted.push(("a's proof at b's index", x));
    let mut x = a0.clone();
    x.event.leaf_index += 1 << 40;
    crafted.push(("a's index + 2^40", x));
    let mut x = a0.clone();
    x.event.leaf_index = u64::MAX;
    crafted.push(("index u64::MAX", x));
    let mut x = a0.clone();
    x.checkpoint = old.checkpoint.clone();
    crafted.push(("a's proof against the older tree", x));
    let mut x = old.clone();
    x.checkpoint = a0.checkpoint.clone();
    crafted.push(("the older proof against the newer tree", x));
    let mut x = a0.clone();
    x.event.proof.pop();
    crafted.push(("proof shortened", x));
    let mut x = a0.clone();
    x.event.proof.push(x.event.proof[0].clone());
    crafted.push(("proof lengthened", x));
    let mut x = a0.clone();
    x.event.proof.clear();
    crafted.push(("proof empty", x));
    let mut x = a0.clone();
    x.event_id = i64::MAX;
    crafted.push(("id i64::MAX", x));
    // Re-signed under the trusted name with the attacker's key (size/root of the real tree).
    let mut x = a0.clone();
    let line = foreign_signature("auditor-test", &body_of(&a0.checkpoint));
    x.checkpoint = format!("{}\n{line}\n", body_of(&a0.checkpoint));
    crafted.push((
        "checkpoint re-signed by another key named like the trusted one",
        x,
    ));
    // A removed event claimed under another id, or its removal moved to another leaf.
    let mut x = r0.clone();
    x.event_id = a;
    crafted.push(("removal claimed for a live event's id", x));
    let mut x = r0.clone();
    x.event.leaf_index = a0.event.leaf_index;
    crafted.push(("removal with the event leaf index of a live event", x));
    // A live event claimed removed: a's leaf, r's removal.
    let mut x = r0.clone();
    x.event_id = a;
    x.event.leaf_index = a0.event.leaf_index;
    x.event.proof = a0.event.proof.clone();
    crafted.push(("live event claimed removed with another's removal", x));
    let mut disagree = Vec::new();
    for (name, b) in &crafted {
        let (rust, py) = both_verdicts(&sb, &canonical(b), &vkey);
        if rust != 7 || py != 1 {
            disagree.push(format!(
                "{name}: verify-proof exit {rust}, Python exit {py}"
            ));
        }
    }
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}

/// A pruned event's raw JSON (kept from before the prune: an old bundle, a backup) with its leaf's inclusion
/// proof in a tree signed after the prune, presented as `archived`. As the README says, an `archived` bundle
/// proves the event was archived exactly as fetched, by the checkpoint's tree (its leaf is in it), which is
/// true; it does not say no later prune removed it (a `removed` bundle proves that). Both checkers agree.
#[test]
fn an_archived_proof_proves_the_event_was_archived_not_that_it_is_still_held() {
    let (_served, sb, key, vkey, _cp) = signed_archive(1_500);
    let pruned_id =
        sb.count("SELECT min(id) FROM events WHERE timestamp < '2024-01-02T00:00:00.000Z'");
    let pruned_raw: String = sb
        .conn()
        .query_row("SELECT raw FROM events WHERE id = ?1", [pruned_id], |r| {
            r.get(0)
        })
        .unwrap();
    sb.run(&[
        "prune",
        "--before",
        "2024-01-03",
        "--signing-key",
        key.to_str().unwrap(),
    ])
    .expect(0);
    let (_, r_bytes) = prove(&sb, pruned_id, "removed");
    let mut x: Bundle = serde_json::from_slice(&r_bytes).unwrap();
    x.status = elevate_archive::tlog::bundle::ProofStatus::Archived;
    x.event.raw = Some(pruned_raw);
    x.event.leaf_hash = None;
    x.removal = None;
    let (rust, py) = both_verdicts(&sb, &canonical(&x), &vkey);
    assert_eq!(
        (rust, py),
        (0, 0),
        "event {pruned_id}: both prove it was archived"
    );
    // Another event's raw under this leaf is refused by both.
    x.event.raw = Some(x.event.raw.unwrap().replacen('1', "2", 1));
    let (rust, py) = both_verdicts(&sb, &canonical(&x), &vkey);
    assert!(rust != 0 && py != 0, "{rust} {py}");
}

/// A checkpoint of another archive signed by the same (trusted) key: `origin`, exit 7.
#[test]
fn a_checkpoint_of_another_archive_signed_by_the_trusted_key_is_an_origin_finding() {
    let (served, sb, key, vkey, cp) = signed_archive(800);
    let other_db = sb.dir.path().join("other.db");
    let other_cp = sb.dir.path().join("other.checkpoint");
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &other_db).envs(SIM_CREDS).args([
        "sync",
        "--base-url",
        &served.base,
        "--from",
        FROM,
        "--to",
        TO,
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoint-out",
        other_cp.to_str().unwrap(),
    ]);
    Run::of(&mut cmd).expect(0);
    let (run, report) = verify_cp(&sb, &sb.db, &other_cp, &[&vkey], &[]);
    run.expect(7);
    assert!(
        log_finding_kinds(&report).contains(&"origin".to_string()),
        "{report}"
    );
    // And stored into this archive's checkpoints table, it is named too.
    let text = std::fs::read_to_string(&other_cp).unwrap();
    let db = tampered_copy(
        &sb,
        "foreign-stored",
        &format!(
            "INSERT INTO checkpoints (created_at, tree_size, root, text, signed_by)
             SELECT created_at, tree_size, root, '{}', signed_by FROM checkpoints LIMIT 1",
            text.replace('\'', "''")
        ),
    );
    let (run, report) = verify_cp(&sb, &db, &cp, &[&vkey], &[]);
    run.expect(7);
    assert!(
        log_finding_kinds(&report).contains(&"origin".to_string()),
        "{report}"
    );
}
