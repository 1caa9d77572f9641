//! Signed checkpoints and portable proofs: keygen, checkpoints shipped by `sync`/`prune`, `verify --checkpoint`
//! against an attacker who can write the file (a forged prune after the last signed checkpoint, a cut tail, a
//! rewritten log, a log re-signed with another key), `prove` and `verify-proof` for a live and a pruned event,
//! and an independent checker (`tests/independent/tlog_check.py`, Python) that must agree on every checkpoint
//! and bundle produced here.

mod common;

use common::signed::*;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[test]
fn keygen_writes_a_private_key_prints_only_the_verifier_key_and_wider_key_files_are_refused() {
    let sb = Sandbox::new();
    let path = sb.dir.path().join("signing.key");
    let run = sb.run(&["keygen", "--out", path.to_str().unwrap()]);
    run.expect(0);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&path).unwrap();
    assert!(
        secret.starts_with("PRIVATE+KEY+elevate-archive+"),
        "{secret}"
    );
    let vkey = run.stdout.trim();
    assert!(
        vkey.starts_with("elevate-archive+") && vkey.splitn(3, '+').nth(2).unwrap().len() == 44,
        "{vkey}"
    );
    let secret_b64 = secret.trim().splitn(5, '+').nth(4).unwrap();
    assert!(!run.stdout.contains(secret_b64) && !run.stderr.contains(secret_b64));
    // Never overwritten.
    sb.run(&["keygen", "--out", path.to_str().unwrap()])
        .expect(2);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);
    // A key file others can read is refused, with the fix, before anything is fetched; the key is not shown.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let shown = path.display().to_string();
    for run in [
        sb.run(&["sync", "--from", FROM, "--to", TO, "--signing-key", &shown]),
        sb.run_env(
            &["sync", "--from", FROM, "--to", TO],
            &[
                ("ELEVATE_TOKEN", TOKEN),
                ("ELEVATE_SIGNING_KEY_FILE", &shown),
            ],
        ),
    ] {
        run.expect(2);
        assert!(
            run.stderr.contains(&format!("chmod 600 {shown}")),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains(secret_b64) && !run.stdout.contains(secret_b64));
    }
    assert!(!sb.db.exists(), "nothing was fetched");
    // A file that is not a key is a usage error too, and its text is not repeated.
    std::fs::write(&path, "PRIVATE+KEY+x+00000000+c2VjcmV0LWJ1dC1ub3Qta2V5\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = sb.run(&["sync", "--from", FROM, "--to", TO, "--signing-key", &shown]);
    run.expect(2);
    assert!(!run.stderr.contains("c2VjcmV0"), "{}", run.stderr);
}

#[test]
fn a_signed_sync_ships_a_checkpoint_that_verifies_here_and_in_the_independent_checker() {
    let (_served, sb, key, vkey, cp) = signed_archive(3_000);
    let mode = std::fs::metadata(&cp).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&cp).unwrap();
    assert!(text.starts_with("elevate-archive/"), "{text}");
    assert!(text.contains("\n\n\u{2014} auditor-test "), "{text}");
    let py = python_check("checkpoint", &cp, &vkey);
    py.expect(0);
    let py: serde_json::Value = serde_json::from_str(&py.stdout).unwrap();
    let leaves = sb.count("SELECT sum(count) FROM tlog_leaves");
    assert_eq!(py["size"].as_i64().unwrap(), leaves);
    // Every event, every window fetch's seal and the run's intent is a leaf.
    assert_eq!(
        leaves,
        sb.count("SELECT count(*) FROM events")
            + sb.count("SELECT count(*) FROM seals")
            + sb.count("SELECT count(*) FROM runs")
    );
    let (run, report) = verify_cp(&sb, &sb.db, &cp, &[&vkey], &["--require-signed"]);
    run.expect(0);
    assert!(report["log"]["unsigned_tail"].is_null(), "{report}");
    assert_eq!(report["log"]["size"].as_i64().unwrap(), leaves);
    // A run that does not change the log makes no checkpoint and leaves the shipped file alone.
    let before = std::fs::read(&cp).unwrap();
    let run = sb.run_env(
        &[
            "prune",
            "--before",
            "2023-06-01",
            "--format",
            "json",
            "--signing-key",
            key.to_str().unwrap(),
            "--checkpoint-out",
            cp.to_str().unwrap(),
            "-vvv",
        ],
        &[("ELEVATE_TOKEN", TOKEN), ("RUST_LOG", "trace")],
    );
    run.expect(0);
    // The key's secret is nowhere: not in the output at trace level, not in the archive or its WAL.
    let secret = std::fs::read_to_string(&key).unwrap();
    let secret = secret.trim().splitn(5, '+').nth(4).unwrap();
    assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    for file in [sb.db.clone(), sb.db.with_extension("db-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "{}",
            file.display()
        );
    }
    assert!(json(&run)["checkpoint"].is_null(), "{}", run.stdout);
    assert_eq!(std::fs::read(&cp).unwrap(), before);
    assert_eq!(sb.count("SELECT count(*) FROM checkpoints"), 1);
    // The wrong key is no proof of anything.
    let (_, stranger) = keygen(&sb, "stranger");
    verify_cp(&sb, &sb.db, &cp, &[&stranger], &[]).0.expect(7);
    python_check("checkpoint", &cp, &stranger).expect(1);
    // Text that is not a checkpoint is a usage error.
    let junk = sb.dir.path().join("junk");
    std::fs::write(&junk, "not\n\na checkpoint\n").unwrap();
    verify_cp(&sb, &sb.db, &junk, &[&vkey], &[]).0.expect(2);
}

#[test]
fn a_prune_after_the_last_signed_checkpoint_is_reported_as_the_unsigned_tail() {
    let (_served, sb, _key, vkey, cp) = signed_archive(3_000);
    // An attacker (or a legitimate run without the key) appends a well-formed prune with the tool itself.
    let forged = sb.dir.path().join("forged.db");
    std::fs::copy(&sb.db, &forged).unwrap();
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &forged)
        .args(["prune", "--before", "2024-01-03"]);
    Run::of(&mut cmd).expect(0);
    let (run, report) = verify_cp(&sb, &forged, &cp, &[&vkey], &[]);
    run.expect(0);
    assert!(log_finding_kinds(&report).is_empty(), "{report}");
    let tail = &report["log"]["unsigned_tail"];
    assert_eq!(tail["prunes"], serde_json::json!([1]), "{report}");
    assert_eq!(tail["by_kind"]["prune-seal"], 1, "{report}");
    assert!(tail["by_kind"]["removal"].as_i64().unwrap() > 0, "{report}");
    assert!(
        run.stderr.contains("warning: unsigned tail") && run.stderr.contains("prune(s) 1"),
        "{}",
        run.stderr
    );
    // Where every run is signed, an unsigned tail is tampering.
    verify_cp(&sb, &forged, &cp, &[&vkey], &["--require-signed"])
        .0
        .expect(7);
    // A forged prune written with SQL, without the log's removals: the events' rows are gone unaccounted for.
    let crude = tampered_copy(
        &sb,
        "crude",
        "INSERT INTO prunes (pruned_at, cutoff, windows, events, revisions, rejects, ranges)
             VALUES ('2024-03-01T00:00:00.000Z', '2024-01-02T00:00:00.000Z', 1, 0, 0, 0, '[]');
         DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT 3);",
    );
    let (run, report) = verify_cp(&sb, &crude, &cp, &[&vkey], &[]);
    run.expect(7);
    assert!(
        log_finding_kinds(&report).contains(&"deleted".to_string()),
        "{report}"
    );
}

#[test]
fn a_cut_tail_is_a_log_shorter_than_the_shipped_checkpoint() {
    let (served, sb, key, vkey, _cp) = signed_archive(3_000);
    // The tail cut: the archive as it was before a later signed sync, against that sync's checkpoint.
    let older = sb.dir.path().join("older.db");
    std::fs::copy(&sb.db, &older).unwrap();
    let later = sb.dir.path().join("later.checkpoint");
    signed_sync(
        &sb,
        &served.base,
        "2024-01-05",
        TO,
        &key,
        &later,
        &["--refetch"],
    )
    .expect(0);
    let (run, report) = verify_cp(&sb, &older, &later, &[&vkey], &[]);
    run.expect(7);
    assert!(
        log_finding_kinds(&report).contains(&"shorter".to_string()),
        "{report}"
    );
    verify_cp(&sb, &sb.db, &later, &[&vkey], &[]).0.expect(0);
}

#[test]
fn an_edited_event_a_rewritten_log_and_a_log_re_signed_with_another_key_are_tampering() {
    let (_served, sb, _key, vkey, cp) = signed_archive(3_000);
    // An event edited in place, its log left alone: the row no longer gives its leaf.
    let edited = tampered_copy(
        &sb,
        "edited",
        "UPDATE events SET raw = replace(raw, '\"id\"', '\"id\" ') WHERE id = (SELECT min(id) FROM events)",
    );
    let (run, report) = verify_cp(&sb, &edited, &cp, &[&vkey], &[]);
    run.expect(7);
    assert!(
        log_finding_kinds(&report).contains(&"edited".to_string()),
        "{report}"
    );
    // The log alone catches it too.
    let (run, report) = verify_cp(&sb, &edited, &cp, &[&vkey], &["--log-only"]);
    run.expect(7);
    assert!(report.get("findings").is_none(), "{report}");
    assert!(
        log_finding_kinds(&report).contains(&"edited".to_string()),
        "{report}"
    );
    verify_cp(&sb, &sb.db, &cp, &[&vkey], &["--log-only"])
        .0
        .expect(0);
    // The whole log rewritten around an edit (the tool itself rebuilds a consistent log from the rows), then
    // re-signed with the attacker's own key under the same name.
    let rewritten = tampered_copy(
        &sb,
        "rewritten",
        "UPDATE events SET raw = replace(raw, '\"id\"', '\"id\" ') WHERE id = (SELECT min(id) FROM events);
         DELETE FROM tlog_leaves; DELETE FROM tlog_hashes; DELETE FROM checkpoints;",
    );
    let attacker = Sandbox::new();
    let (attacker_key, attacker_vkey) = keygen(&attacker, "auditor-test");
    let resigned = sb.dir.path().join("resigned.checkpoint");
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &rewritten).args([
        "prune",
        "--before",
        "2023-06-01",
        "--signing-key",
        attacker_key.to_str().unwrap(),
        "--checkpoint-out",
        resigned.to_str().unwrap(),
    ]);
    Run::of(&mut cmd).expect(0);
    // The attacker's log is self-consistent: their own checkpoint and key accept it (the rows' digests and
    // seals, which this attacker did not bother to redo, are `verify`'s other checks).
    let (_, report) = verify_cp(&sb, &rewritten, &resigned, &[&attacker_vkey], &[]);
    assert!(log_finding_kinds(&report).is_empty(), "{report}");
    assert!(
        report["log"]["checkpoints"][0]["holds"].as_bool().unwrap(),
        "{report}"
    );
    python_check("checkpoint", &resigned, &attacker_vkey).expect(0);
    // Against the shipped checkpoint and the real key, it is a rewrite.
    let (run, report) = verify_cp(&sb, &rewritten, &cp, &[&vkey], &[]);
    run.expect(7);
    assert!(
        log_finding_kinds(&report).contains(&"inconsistent".to_string()),
        "{report}"
    );
    assert!(
        !report["log"]["checkpoints"][1]["trusted"]
            .as_bool()
            .unwrap(),
        "{report}"
    );
    // The re-signed checkpoint carries the trusted name but not the trusted key.
    let (run, _) = verify_cp(&sb, &rewritten, &resigned, &[&vkey], &[]);
    run.expect(7);
    assert!(run.stderr.contains("does not verify"), "{}", run.stderr);
    python_check("checkpoint", &resigned, &vkey).expect(1);
}

/// Every single-byte edit of `bundle` fails the check.
fn every_byte_edit_fails(bundle: &[u8], vkey: &str) {
    let keys = elevate_archive::tlog::note::TrustedKeys::parse(&[vkey.to_string()]).unwrap();
    elevate_archive::tlog::bundle::verify_bundle(bundle, &keys).unwrap();
    for i in 0..bundle.len() {
        for flip in [0x01u8, 0x20] {
            let mut edited = bundle.to_vec();
            edited[i] ^= flip;
            assert!(
                elevate_archive::tlog::bundle::verify_bundle(&edited, &keys).is_err(),
                "editing byte {i} ({:?}) went unnoticed",
                bundle[i] as char
            );
        }
    }
}

/// The bundle at `out` holds for `verify-proof` and the independent checker, and no edit of it does.
fn bundle_holds_and_no_edit_does(sb: &Sandbox, out: &Path, vkey: &str, id: i64, status: &str) {
    let bytes = std::fs::read(out).unwrap();
    let run = sb.run(&[
        "verify-proof",
        out.to_str().unwrap(),
        "--key",
        vkey,
        "--format",
        "json",
    ]);
    run.expect(0);
    assert_eq!(json(&run)["event_id"], id);
    let py = python_check("bundle", out, vkey);
    py.expect(0);
    assert!(
        py.stdout.contains(&format!("event {id} {status}")),
        "{}",
        py.stdout
    );
    every_byte_edit_fails(&bytes, vkey);
    // Through the binary and the independent checker too, for a byte of the proof.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let at = text.find("\"proof\":[\"").unwrap() + 10;
    let mut edited = bytes;
    edited[at] = if edited[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(out, &edited).unwrap();
    sb.run(&["verify-proof", out.to_str().unwrap(), "--key", vkey])
        .expect(7);
    python_check("bundle", out, vkey).expect(1);
}

#[test]
fn prove_and_verify_proof_round_trip_for_a_live_and_a_pruned_event() {
    let (_served, sb, key, vkey, _cp) = signed_archive(2_000);
    let pruned_id =
        sb.count("SELECT min(id) FROM events WHERE timestamp < '2024-01-02T00:00:00.000Z'");
    let live_id = sb.count("SELECT max(id) FROM events");
    let raw: String = sb
        .conn()
        .query_row("SELECT raw FROM events WHERE id = ?1", [live_id], |r| {
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
    assert_eq!(
        sb.count(&format!(
            "SELECT count(*) FROM events WHERE id = {pruned_id}"
        )),
        0
    );
    for (id, status) in [(live_id, "archived"), (pruned_id, "removed")] {
        let out = sb.dir.path().join(format!("{id}.proof.json"));
        sb.run(&["prove", &id.to_string(), "--out", out.to_str().unwrap()])
            .expect(0);
        let bundle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(bundle["status"], status);
        if status == "archived" {
            assert_eq!(
                bundle["event"]["raw"].as_str().unwrap(),
                raw,
                "the raw JSON as fetched"
            );
        }
        bundle_holds_and_no_edit_does(&sb, &out, &vkey, id, status);
    }
    // An event never archived, and a bundle checked with another key.
    sb.run(&["prove", "999999999"]).expect(2);
    let stdout_bundle = sb.run(&["prove", &live_id.to_string()]);
    stdout_bundle.expect(0);
    let file = sb.dir.path().join("stdout.proof.json");
    std::fs::write(&file, &stdout_bundle.stdout).unwrap();
    let (_, stranger) = keygen(&sb, "stranger");
    sb.run(&["verify-proof", file.to_str().unwrap(), "--key", &stranger])
        .expect(7);
    sb.run(&[
        "verify-proof",
        file.to_str().unwrap(),
        "--key",
        &stranger,
        "--key",
        &vkey,
    ])
    .expect(0);
}

#[test]
fn prove_needs_a_signed_checkpoint_and_says_so() {
    let (_served, sb, _run) = synced(500, FROM, "2024-01-02");
    let id = sb.count("SELECT min(id) FROM events");
    let run = sb.run(&["prove", &id.to_string()]);
    run.expect(2);
    assert!(
        run.stderr.contains("unsigned") && run.stderr.contains("--signing-key"),
        "{}",
        run.stderr
    );
    let (key, vkey) = keygen(&sb, "late-signer");
    let out = sb.dir.path().join("p.json");
    sb.run(&[
        "prove",
        &id.to_string(),
        "--signing-key",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .expect(0);
    sb.run(&["verify-proof", out.to_str().unwrap(), "--key", &vkey])
        .expect(0);
    python_check("bundle", &out, &vkey).expect(0);
}

#[test]
fn an_archive_made_before_the_log_gets_one_on_upgrade_and_verifies() {
    let (served, sb, _run) = synced(1_500, FROM, "2024-01-04");
    // Turn it into an archive as the previous version left it: no log, schema version 7.
    let conn = rusqlite::Connection::open(&sb.db).unwrap();
    conn.execute_batch(common::UNDO_AFTER_VERSION_7).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    let events = sb.count("SELECT count(*) FROM events");
    let (key, vkey) = keygen(&sb, "upgrade");
    let cp = sb.dir.path().join("cp");
    signed_sync(
        &sb,
        &served.base,
        "2024-01-03",
        "2024-01-04",
        &key,
        &cp,
        &[],
    )
    .expect(0);
    assert_eq!(
        sb.count("SELECT sum(count) FROM tlog_leaves WHERE kind = 'event'"),
        events,
        "every existing event logged"
    );
    let (run, report) = verify_cp(&sb, &sb.db, &cp, &[&vkey], &["--require-signed"]);
    run.expect(0);
    assert!(
        report["log"]["findings"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let first = sb.count("SELECT min(id) FROM events");
    let out = sb.dir.path().join("old.proof.json");
    sb.run(&["prove", &first.to_string(), "--out", out.to_str().unwrap()])
        .expect(0);
    sb.run(&["verify-proof", out.to_str().unwrap(), "--key", &vkey])
        .expect(0);
    python_check("bundle", &out, &vkey).expect(0);
}
