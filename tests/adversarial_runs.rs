//! A hostile reviewer's tests of the runs of event leaves (schema version 14): a `tlog_leaves` row standing for
//! `count` consecutive leaves from `idx`, a page's new events as one row whose `ref` is the first event's id and
//! whose `refs` lists the others as LEB128 steps. The attacker can write the archive file but does not hold the
//! signing key; each test tampers with a copy and runs `verify --checkpoint`, `prove` or `prune`.
//! Tests marked `#[ignore = "breaks: ..."]` show a broken promise; the others show one that holds.

mod common;

use common::signed::*;
use common::*;
use elevate_archive::store::tlog::{LogAppender, decode_run};
use elevate_archive::tlog::LeafKind;
use elevate_archive::tlog::bundle::{Bundle, ProofStatus};
use httpmock::MockServer;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------------------------------------
// Reading the log's rows
// ---------------------------------------------------------------------------------------------------------

/// One row of `tlog_leaves`.
#[derive(Debug, Clone)]
struct Row {
    idx: u64,
    kind: String,
    reference: i64,
    prune_id: Option<i64>,
    count: i64,
    refs: Option<Vec<u8>>,
}

impl Row {
    /// The event ids a row of event leaves stands for, in leaf order.
    fn ids(&self) -> Vec<i64> {
        decode_run(self.reference, self.count as u64, self.refs.as_deref()).unwrap()
    }
}

fn rows(db: &Path) -> Vec<Row> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare("SELECT idx, kind, ref, prune_id, count, refs FROM tlog_leaves ORDER BY idx")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            idx: r.get::<_, i64>(0)? as u64,
            kind: r.get(1)?,
            reference: r.get(2)?,
            prune_id: r.get(3)?,
            count: r.get(4)?,
            refs: r.get(5)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Every event leaf in log order: (leaf index, event id).
fn event_leaves(db: &Path) -> Vec<(u64, i64)> {
    rows(db)
        .into_iter()
        .filter(|r| r.kind == "event")
        .flat_map(|r| {
            let idx = r.idx;
            r.ids()
                .into_iter()
                .enumerate()
                .map(move |(k, id)| (idx + k as u64, id))
        })
        .collect()
}

/// The rows of event leaves that are runs (more than one leaf), by their first event's id (windows are fetched
/// side by side, so the log's order of runs varies from one sync to the next; their ids' order does not).
fn runs(db: &Path) -> Vec<Row> {
    let mut runs: Vec<Row> = rows(db)
        .into_iter()
        .filter(|r| r.kind == "event" && r.count > 1)
        .collect();
    runs.sort_by_key(|r| r.reference);
    runs
}

/// The row of event leaves listing event `id`.
fn row_of(db: &Path, id: i64) -> Row {
    rows(db)
        .into_iter()
        .find(|r| r.kind == "event" && r.ids().contains(&id))
        .unwrap_or_else(|| panic!("no row lists event {id}"))
}

/// LEB128 of each step.
fn leb128(steps: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for &step in steps {
        let mut v = step;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The `refs` of a run of `ids` (rising): each id's step from the one before.
fn refs_of(ids: &[i64]) -> Vec<u8> {
    let steps: Vec<u64> = ids.windows(2).map(|w| (w[1] - w[0]) as u64).collect();
    leb128(&steps)
}

/// A BLOB literal for SQL.
fn blob(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("X'{hex}'")
}

/// SQL that copies event `from` as a new row `id` (no leaf: written behind the archive's back).
fn insert_copy(from: i64, id: i64) -> String {
    format!(
        "CREATE TEMP TABLE IF NOT EXISTS copy AS SELECT * FROM events WHERE 0;
         DELETE FROM copy;
         INSERT INTO copy SELECT * FROM events WHERE id = {from};
         UPDATE copy SET id = {id};
         INSERT INTO events SELECT * FROM copy;"
    )
}

fn checkpoint_wal(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
}

/// The details of the log's findings.
fn log_details(report: &serde_json::Value) -> Vec<String> {
    report["log"]["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    format!(
                        "{}: {}",
                        f["kind"].as_str().unwrap(),
                        f["detail"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------
// prove and verify-proof
// ---------------------------------------------------------------------------------------------------------

/// `prove ID --out FILE` on `db`: the run and the bundle written (when exit 0).
fn prove_on(sb: &Sandbox, db: &Path, id: i64) -> (Run, Option<(PathBuf, Bundle)>) {
    let out = sb.dir.path().join(format!(
        "proof-{id}-{}.json",
        db.file_stem().unwrap().to_str().unwrap()
    ));
    let _ = std::fs::remove_file(&out);
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", db)
        .args(["prove", &id.to_string(), "--out", out.to_str().unwrap()]);
    let run = Run::of(&mut cmd);
    let bundle = (run.code == 0).then(|| {
        let b: Bundle = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        (out, b)
    });
    (run, bundle)
}

/// (verify-proof exit, independent checker exit) on a bundle file.
fn check_bundle(sb: &Sandbox, file: &Path, vkey: &str) -> (i32, i32) {
    let rust = sb
        .run(&["verify-proof", file.to_str().unwrap(), "--key", vkey])
        .code;
    let py = python_check("bundle", file, vkey).code;
    (rust, py)
}

// ---------------------------------------------------------------------------------------------------------
// An archive whose kept window holds events of the pruned range (the one-second overlap)
// ---------------------------------------------------------------------------------------------------------

/// Window W1 is 2024-01-01; W2 is 2024-01-02 and, read first, files the events of W1's last second (its request
/// reaches one second back): 102 and 104. A prune before 2024-01-02 removes W1 whole, and 102 and 104 from W2.
fn overlap_dataset() -> Vec<Ev> {
    vec![
        ev(1, "2024-01-01T06:00:00Z"),
        ev(2, "2024-01-01T12:00:00Z"),
        ev(100, "2024-01-02T01:00:00Z"),
        ev(101, "2024-01-02T02:00:00Z"),
        ev(102, "2024-01-01T23:59:59.500Z"),
        ev(103, "2024-01-02T03:00:00Z"),
        ev(104, "2024-01-01T23:59:59.700Z"),
        ev(105, "2024-01-02T04:00:00Z"),
    ]
}

/// The overlap archive, synced with pages of `page_size` (W2 first, then W1), and pruned before 2024-01-02, all
/// signed: (sandbox, verifier key, the prune's checkpoint). The server is dropped: nothing fetches again.
fn pruned_overlap_archive(page_size: &str) -> (Sandbox, String, PathBuf) {
    let server = MockServer::start();
    serve_dataset(
        &server,
        Arc::new(Mutex::new(overlap_dataset())),
        Reading::Inclusive,
        Seen::default(),
    );
    let sb = Sandbox::new();
    let (key, vkey) = keygen(&sb, "auditor-test");
    for (from, to) in [("2024-01-02", "2024-01-03"), ("2024-01-01", "2024-01-02")] {
        sb.run(&[
            "sync",
            "--base-url",
            &base(&server),
            "--from",
            from,
            "--to",
            to,
            "--page-size",
            page_size,
            "--concurrency",
            "1",
            "--signing-key",
            key.to_str().unwrap(),
        ])
        .expect(0);
    }
    assert_eq!(sb.ids(), vec![1, 2, 100, 101, 102, 103, 104, 105]);
    let cp = sb.dir.path().join("prune.checkpoint");
    sb.run(&[
        "prune",
        "--before",
        "2024-01-02",
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoint-out",
        cp.to_str().unwrap(),
    ])
    .expect(0);
    assert_eq!(
        sb.ids(),
        vec![100, 101, 103, 105],
        "the prune took W1 and 102, 104"
    );
    (sb, vkey, cp)
}

/// The removal leaves: (removed leaf index, prune id).
fn removals(db: &Path) -> Vec<(u64, i64)> {
    rows(db)
        .into_iter()
        .filter(|r| r.kind == "removal")
        .map(|r| (r.reference as u64, r.prune_id.unwrap()))
        .collect()
}

/// A prune takes part of a run (events in its middle and at its start): each removal names the right leaf
/// inside the run, the log verifies, `prove` proves the removed events' removals and the kept events' leaves
/// inside the same run, and deleting a kept event between two removed ones is still `deleted`. A second prune
/// takes the rest of the run.
#[test]
fn a_prune_of_part_of_a_run_names_the_right_leaves_and_proves_both_sides() {
    let (sb, vkey, cp) = pruned_overlap_archive("1000");
    // W2's one page: one run of six events, 100..105 in id order.
    let run = row_of(&sb.db, 100);
    assert_eq!(run.ids(), vec![100, 101, 102, 103, 104, 105]);
    let r = run.idx;
    let w1 = row_of(&sb.db, 1);
    let mut named: Vec<u64> = removals(&sb.db).into_iter().map(|(leaf, _)| leaf).collect();
    named.sort_unstable();
    let mut want = vec![w1.idx, w1.idx + 1, r + 2, r + 4];
    want.sort_unstable();
    assert_eq!(
        named, want,
        "removals name W1's two leaves and the leaves of 102 and 104 inside W2's run"
    );
    let (v, report) = verify_cp(&sb, &sb.db, &cp, &[&vkey], &["--require-signed"]);
    assert_eq!(v.code, 0, "{report}\n{}", v.stderr);
    // Proofs on both sides of the run.
    for (id, leaf, status) in [
        (100, r, ProofStatus::Archived),
        (102, r + 2, ProofStatus::Removed),
        (103, r + 3, ProofStatus::Archived),
        (104, r + 4, ProofStatus::Removed),
        (105, r + 5, ProofStatus::Archived),
    ] {
        let (run, bundle) = prove_on(&sb, &sb.db, id);
        run.expect(0);
        let (file, b) = bundle.unwrap();
        assert_eq!((b.event.leaf_index, b.status), (leaf, status), "event {id}");
        assert_eq!(check_bundle(&sb, &file, &vkey), (0, 0), "event {id}");
    }
    // A kept event between two removed ones, deleted: named, under both checks.
    let db = tampered_copy(&sb, "kept-deleted", "DELETE FROM events WHERE id = 103");
    for extra in [&["--log-only"][..], &[][..]] {
        let (v, report) = verify_cp(&sb, &db, &cp, &[&vkey], extra);
        assert_eq!(v.code, 7, "{extra:?}: {report}");
    }
    let (_, report) = verify_cp(&sb, &db, &cp, &[&vkey], &["--log-only"]);
    assert!(
        log_details(&report)
            .iter()
            .any(|d| d.starts_with("deleted") && d.contains(&format!("leaf {}: event 103", r + 3))),
        "{:?}",
        log_details(&report)
    );
    let (run, _) = prove_on(&sb, &db, 103);
    assert_eq!(run.code, 7, "prove of a deleted event: {}", run.stderr);
    // The rest of the run goes with the next prune; the removals name the leaves left.
    let key = sb.dir.path().join("auditor-test.key");
    let cp2 = sb.dir.path().join("prune2.checkpoint");
    sb.run(&[
        "prune",
        "--before",
        "2024-01-03",
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoint-out",
        cp2.to_str().unwrap(),
    ])
    .expect(0);
    let mut second: Vec<u64> = removals(&sb.db)
        .into_iter()
        .filter(|(_, p)| *p == 2)
        .map(|(leaf, _)| leaf)
        .collect();
    second.sort_unstable();
    assert_eq!(second, vec![r, r + 1, r + 3, r + 5]);
    let (v, report) = verify_cp(&sb, &sb.db, &cp2, &[&vkey], &["--require-signed"]);
    assert_eq!(v.code, 0, "{report}\n{}", v.stderr);
    let (run, bundle) = prove_on(&sb, &sb.db, 101);
    run.expect(0);
    let (file, b) = bundle.unwrap();
    assert_eq!(
        (b.event.leaf_index, b.status),
        (r + 1, ProofStatus::Removed)
    );
    assert_eq!(check_bundle(&sb, &file, &vkey), (0, 0));
}

/// A run's `idx` moved by one into the span it already covers (leaf indexes are a run's start, and a run leaves
/// the next `count - 1` indexes unused): the leaves are read in the same order, the same count, so nothing the
/// scan compares changes; but every event of the run now resolves to the next leaf. Before version 14 a moved
/// `idx` left a hole in the indexes and was `deleted`. Here the deletion of the run's last event hides behind
/// the genuine removal of the next run's first event (102, pruned): `--log-only` (which README promises still
/// catches a deleted row) passes.
#[test]
fn a_deleted_event_hides_behind_the_next_runs_removal_when_its_run_is_moved_by_one() {
    let (sb, vkey, cp) = pruned_overlap_archive("2");
    // W2's pages: A = [100, 101] (kept), B = [102, 103] (102 pruned), C = [104, 105] (104 pruned).
    let a = row_of(&sb.db, 100);
    let b = row_of(&sb.db, 102);
    assert_eq!((a.ids(), b.ids()), (vec![100, 101], vec![102, 103]));
    assert_eq!(b.idx, a.idx + 2, "B follows A");
    assert!(removals(&sb.db).iter().any(|(leaf, _)| *leaf == b.idx));
    let (v, _) = verify_cp(
        &sb,
        &sb.db,
        &cp,
        &[&vkey],
        &["--log-only", "--require-signed"],
    );
    v.expect(0);
    let db = tampered_copy(
        &sb,
        "moved-run",
        &format!(
            "UPDATE tlog_leaves SET idx = idx + 1 WHERE idx = {};
             DELETE FROM events WHERE id = 101;",
            a.idx
        ),
    );
    // The full verify sees it through the seals (the prune recorded what W2 kept).
    let (full, _) = verify_cp(&sb, &db, &cp, &[&vkey], &["--require-signed"]);
    let (log_only, report) =
        verify_cp(&sb, &db, &cp, &[&vkey], &["--log-only", "--require-signed"]);
    assert_eq!(
        (full.code, log_only.code),
        (7, 7),
        "event 101 deleted and its run moved by one leaf: --log-only exit {}: {:?}",
        log_only.code,
        log_details(&report)
    );
}

/// A run moved by one leaf, nothing else: the log check must name it (it did before version 14: a hole), else
/// `prove` of any event of the run hands out a bundle for the next leaf, which `verify-proof` refuses, while
/// `verify` says the archive holds.
#[test]
fn a_run_moved_to_another_leaf_index_is_caught() {
    let (_served, sb, _key, vkey, cp) = signed_archive(1_500);
    let all = runs(&sb.db);
    assert!(all.len() >= 3, "{} runs", all.len());
    let run = &all[1];
    let first = run.ids()[0];
    let db = tampered_copy(
        &sb,
        "moved",
        &format!(
            "UPDATE tlog_leaves SET idx = idx + 1 WHERE idx = {}",
            run.idx
        ),
    );
    let mut wrong = Vec::new();
    for extra in [&["--log-only"][..], &[][..]] {
        let (v, report) = verify_cp(&sb, &db, &cp, &[&vkey], extra);
        if v.code != 7 {
            wrong.push(format!(
                "verify {extra:?}: exit {} {:?}",
                v.code,
                log_details(&report)
            ));
        }
    }
    let (p, bundle) = prove_on(&sb, &db, first);
    if let Some((file, b)) = bundle {
        let verdicts = check_bundle(&sb, &file, &vkey);
        if verdicts != (0, 0) {
            wrong.push(format!(
                "prove {first}: a bundle for leaf {} (the event's is {}) that the checkers refuse: {verdicts:?}",
                b.event.leaf_index, run.idx
            ));
        }
    } else {
        assert_ne!(p.code, 0);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------
// Tampering inside runs
// ---------------------------------------------------------------------------------------------------------

/// Edits of events whose leaves are in runs, and of the runs themselves (each kept consistent where it can be:
/// `count` and `refs` rewritten together, the CHECK constraints switched off as an attacker with the file
/// can): each is caught against the shipped checkpoint, by the full verify and by `--log-only` (with the
/// finding kind the README names).
#[test]
fn edits_of_runs_and_of_the_events_in_them_are_caught() {
    let (_served, sb, _key, vkey, cp) = signed_archive(1_500);
    let all = runs(&sb.db);
    assert!(all.len() >= 3, "{} runs", all.len());
    let (before, run, after) = (&all[0], &all[1], &all[2]);
    let ids = run.ids();
    assert!(ids.len() >= 4, "{ids:?}");
    let (first, mid, last) = (ids[0], ids[ids.len() / 2], *ids.last().unwrap());
    let gap = ids
        .windows(2)
        .find(|w| w[1] - w[0] > 1)
        .map(|w| w[0] + 1)
        .expect("simulated ids have gaps");
    let idx = run.idx;
    let seal = rows(&sb.db)
        .into_iter()
        .find(|r| r.kind == "window-seal")
        .unwrap();
    let without_mid: Vec<i64> = ids.iter().copied().filter(|i| *i != mid).collect();
    let with_next = [ids.clone(), vec![after.ids()[0]]].concat();
    let mut stolen = ids.clone();
    stolen[0] = *before.ids().last().unwrap();
    let mut zero_step: Vec<u64> = ids.windows(2).map(|w| (w[1] - w[0]) as u64).collect();
    zero_step[1] = 0;
    let off = "PRAGMA ignore_check_constraints = ON;";
    // (name, sql, the kind --log-only must name)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "an event in the middle of a run edited",
            format!("UPDATE events SET raw = raw || ' ' WHERE id = {mid}"),
            "edited",
        ),
        (
            "the first event of a run deleted",
            format!("DELETE FROM events WHERE id = {first}"),
            "deleted",
        ),
        (
            "the last event of a run deleted",
            format!("DELETE FROM events WHERE id = {last}"),
            "deleted",
        ),
        (
            "an event of a run moved to another id (inside the run's range)",
            format!("UPDATE events SET id = {gap} WHERE id = {mid}"),
            "deleted",
        ),
        (
            "two events of a run swap their raw JSON",
            format!(
                "CREATE TEMP TABLE s AS SELECT id, raw FROM events WHERE id IN ({mid}, {last});
                 UPDATE events SET raw = (SELECT raw FROM s WHERE s.id = CASE events.id WHEN {mid} THEN {last} ELSE {mid} END)
                 WHERE id IN ({mid}, {last});"
            ),
            "edited",
        ),
        (
            "an event dropped from its run (count and refs rewritten to match)",
            format!(
                "UPDATE tlog_leaves SET count = {}, refs = {} WHERE idx = {idx}",
                without_mid.len(),
                blob(&refs_of(&without_mid))
            ),
            "edited",
        ),
        (
            "the next run's first event added to this run (two runs claim it)",
            format!(
                "UPDATE tlog_leaves SET count = {}, refs = {} WHERE idx = {idx}",
                with_next.len(),
                blob(&refs_of(&with_next))
            ),
            "edited",
        ),
        (
            "the run's first event replaced by the previous run's last (two runs claim it)",
            format!(
                "UPDATE tlog_leaves SET ref = {}, refs = {} WHERE idx = {idx}",
                stolen[0],
                blob(&refs_of(&stolen))
            ),
            "edited",
        ),
        (
            "the run's ref moved (every id of the run shifts)",
            format!("UPDATE tlog_leaves SET ref = ref + 1 WHERE idx = {idx}"),
            "edited",
        ),
        (
            "the run's kind changed to revision",
            format!("PRAGMA ignore_check_constraints = ON; UPDATE tlog_leaves SET kind = 'revision' WHERE idx = {idx}"),
            "edited",
        ),
        (
            "the run's kind changed to removal",
            format!("PRAGMA ignore_check_constraints = ON; UPDATE tlog_leaves SET kind = 'removal', prune_id = 1 WHERE idx = {idx}"),
            "edited",
        ),
        (
            "the run's count raised by one, refs unchanged",
            format!("UPDATE tlog_leaves SET count = count + 1 WHERE idx = {idx}"),
            "edited",
        ),
        (
            "a zero step in the run's list",
            format!("UPDATE tlog_leaves SET refs = {} WHERE idx = {idx}", blob(&leb128(&zero_step))),
            "edited",
        ),
        (
            "the run's list ends mid-number",
            format!("UPDATE tlog_leaves SET refs = CAST(refs || X'80' AS BLOB) WHERE idx = {idx}"),
            "edited",
        ),
        (
            "the run's refs stored as TEXT",
            format!("UPDATE tlog_leaves SET refs = CAST(refs AS TEXT) WHERE idx = {idx}"),
            "edited",
        ),
        (
            "the run's count set to 0 (CHECK off)",
            format!("{off} UPDATE tlog_leaves SET count = 0 WHERE idx = {idx}"),
            "edited",
        ),
        (
            "the run's refs cut to NULL (CHECK off)",
            format!("{off} UPDATE tlog_leaves SET refs = NULL WHERE idx = {idx}"),
            "edited",
        ),
        (
            "a row of one leaf (a window seal) given refs (CHECK off)",
            format!("{off} UPDATE tlog_leaves SET refs = X'01' WHERE idx = {}", seal.idx),
            "edited",
        ),
        (
            "the run's row deleted",
            format!("DELETE FROM tlog_leaves WHERE idx = {idx}"),
            "deleted",
        ),
        (
            "the run's row and its events deleted",
            format!(
                "DELETE FROM tlog_leaves WHERE idx = {idx}; DELETE FROM events WHERE id IN ({});",
                ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            ),
            "deleted",
        ),
        (
            "an event inserted between two ids of a run",
            insert_copy(mid, gap),
            "unlogged",
        ),
    ];
    let mut missed = Vec::new();
    for (i, (name, sql, kind)) in cases.iter().enumerate() {
        let db = match std::panic::catch_unwind(|| tampered_copy(&sb, &format!("case{i}"), sql)) {
            Ok(db) => db,
            Err(_) => {
                missed.push(format!("{name}: the SQL failed"));
                continue;
            }
        };
        let (full, _) = verify_cp(&sb, &db, &cp, &[&vkey], &[]);
        if full.code != 7 {
            missed.push(format!(
                "{name}: full verify exit {} {}",
                full.code,
                full.stderr.trim()
            ));
        }
        let (v, report) = verify_cp(&sb, &db, &cp, &[&vkey], &["--log-only"]);
        let kinds = log_finding_kinds(&report);
        if v.code != 7 || !kinds.iter().any(|k| k == kind) {
            missed.push(format!(
                "{name}: --log-only exit {} {:?} (want {kind}) {}",
                v.code,
                log_details(&report),
                v.stderr.trim()
            ));
        }
    }
    assert!(missed.is_empty(), "not caught:\n{}", missed.join("\n"));
}

/// README: "`verify` reads every run back and names one whose list is damaged": the finding names the row's
/// leaves, and a damaged run is one `edited` finding, not one per leaf after it (its events, which the list no
/// longer yields, are also counted as `unlogged`).
#[test]
fn a_damaged_run_is_named_by_its_leaves() {
    let (_served, sb, _key, vkey, cp) = signed_archive(800);
    let run = runs(&sb.db)[1].clone();
    let db = tampered_copy(
        &sb,
        "damaged",
        &format!(
            "UPDATE tlog_leaves SET refs = CAST(refs || X'80' AS BLOB) WHERE idx = {}",
            run.idx
        ),
    );
    let (v, report) = verify_cp(&sb, &db, &cp, &[&vkey], &["--log-only"]);
    v.expect(7);
    let details = log_details(&report);
    let want = format!(
        "edited: the log's row for leaves {} to {}:",
        run.idx,
        run.idx + run.count as u64 - 1
    );
    assert!(
        details.iter().any(|d| d.starts_with(&want)),
        "want {want:?} in {details:?}"
    );
    let kinds = log_finding_kinds(&report);
    assert_eq!(
        kinds.iter().filter(|k| *k == "edited").count(),
        1,
        "{details:?}"
    );
    assert!(
        kinds.iter().all(|k| k == "edited" || k == "unlogged"),
        "{details:?}"
    );
}

/// A run whose `count` is set enormous (its `refs` kept, so the CHECK constraints hold: no pragma needed) is a
/// damaged row. `verify` must name it and stop; it pushes one stored hash per leaf the row claims instead.
#[test]
fn a_run_claiming_an_enormous_count_is_named_not_walked() {
    let (_served, sb, _key, vkey, cp) = signed_archive(800);
    let run = runs(&sb.db)[1].clone();
    let db = tampered_copy(
        &sb,
        "enormous",
        &format!(
            "UPDATE tlog_leaves SET count = {} WHERE idx = {}",
            1u64 << 40,
            run.idx
        ),
    );
    // Run::of fails the test as hung after HANG_GUARD: a hang guard, not a timing assertion.
    let (v, report) = verify_cp(&sb, &db, &cp, &[&vkey], &["--log-only"]);
    assert_eq!(v.code, 7, "{report}");
}

// ---------------------------------------------------------------------------------------------------------
// Rows without leaves, prove
// ---------------------------------------------------------------------------------------------------------

/// Event rows written behind the archive's back with ids below every run, between two ids of a run, between two
/// runs and above every run: all four counted (`unlogged` under `--log-only`, `inserted` under the full
/// verify), with their ids; none is provable.
#[test]
fn events_without_a_leaf_are_counted_through_the_runs() {
    let (_served, sb, _key, vkey, cp) = signed_archive(1_500);
    let all = runs(&sb.db);
    let ids = all[1].ids();
    let inside = ids
        .windows(2)
        .find(|w| w[1] - w[0] > 1)
        .map(|w| w[0] + 1)
        .unwrap();
    let between = all
        .windows(2)
        .map(|w| (*w[0].ids().last().unwrap(), w[1].ids()[0]))
        .find(|(a, b)| b - a > 1)
        .map(|(a, _)| a + 1)
        .expect("a gap between two runs");
    let logged = event_leaves(&sb.db);
    let min = logged.iter().map(|(_, id)| *id).min().unwrap();
    let max = logged.iter().map(|(_, id)| *id).max().unwrap();
    let below = min - 1;
    let above = max + 1_000;
    let mut want = vec![below, inside, between, above];
    want.sort_unstable();
    for id in &want {
        assert!(!logged.iter().any(|(_, i)| i == id), "{id} is logged");
    }
    let sql: String = want.iter().map(|id| insert_copy(ids[0], *id)).collect();
    let db = tampered_copy(&sb, "unlogged", &sql);
    let (v, report) = verify_cp(&sb, &db, &cp, &[&vkey], &["--log-only"]);
    v.expect(7);
    let details = log_details(&report);
    let wanted = format!("unlogged: 4 row(s) have no event leaf in the log (ids {want:?})");
    assert!(
        details.iter().any(|d| d.starts_with(&wanted)),
        "want {wanted:?} in {details:?}"
    );
    let (v, report) = verify_cp(&sb, &db, &cp, &[&vkey], &[]);
    v.expect(7);
    let inserted: Vec<_> = detailed_findings(&report)
        .into_iter()
        .filter(|(k, _, ids, detail)| {
            k == "inserted" && ids == &want && detail.contains("without their event leaf")
        })
        .collect();
    assert_eq!(inserted.len(), 1, "{}", report["findings"]);
    for id in want {
        let (run, _) = prove_on(&sb, &db, id);
        assert_eq!(run.code, 2, "prove {id}: {}", run.stderr);
    }
}

/// `prove` of the first, a middle and the last event of a run proves the leaf at the run's start plus the
/// event's place; an id between two ids of a run, or between two runs, is "never archived" (exit 2); an event
/// whose run's list is damaged is refused, never proved as some other leaf.
#[test]
fn prove_finds_an_events_leaf_inside_a_run_and_nothing_between() {
    let (_served, sb, _key, vkey, _cp) = signed_archive(1_500);
    let all = runs(&sb.db);
    let run = &all[1];
    let ids = run.ids();
    for k in [0, 1, ids.len() / 2, ids.len() - 1] {
        let (p, bundle) = prove_on(&sb, &sb.db, ids[k]);
        p.expect(0);
        let (file, b) = bundle.unwrap();
        assert_eq!(b.event.leaf_index, run.idx + k as u64, "event {}", ids[k]);
        assert_eq!(b.status, ProofStatus::Archived);
        assert_eq!(check_bundle(&sb, &file, &vkey), (0, 0), "event {}", ids[k]);
    }
    let inside = ids.windows(2).find(|w| w[1] - w[0] > 1).unwrap()[0] + 1;
    let between = ids.last().unwrap() + 1;
    for id in [inside, between] {
        let (p, _) = prove_on(&sb, &sb.db, id);
        assert_eq!(p.code, 2, "prove {id}: {}", p.stderr);
        assert!(p.stderr.contains("never archived"), "{}", p.stderr);
    }
    // The run's list damaged: its events are not proved.
    let db = tampered_copy(
        &sb,
        "damaged",
        &format!(
            "UPDATE tlog_leaves SET refs = CAST(refs || X'80' AS BLOB) WHERE idx = {}",
            run.idx
        ),
    );
    for id in [ids[0], ids[1], *ids.last().unwrap()] {
        let (p, bundle) = prove_on(&sb, &db, id);
        assert!(
            bundle.is_none() && p.code != 0 && p.code != 1,
            "prove {id} through a damaged run: exit {} {}",
            p.code,
            p.stderr
        );
    }
}

/// An attacker without the key appends a second leaf for an event already logged in a run (the right hash: the
/// event's id and raw JSON): an unsigned tail of one event leaf, exit 0 with a warning. The event's own leaf is
/// still in the signed tree, so `prove` must still prove it (README: against the newest signed checkpoint
/// "whose tree holds the event's leaves"). Before version 14 `prove` took the event's first leaf.
#[test]
fn a_second_leaf_appended_for_an_event_does_not_take_its_proof_away() {
    let (_served, sb, _key, vkey, cp) = signed_archive(800);
    let run = runs(&sb.db)[1].clone();
    let k = run.ids().len() / 2;
    let id = run.ids()[k];
    let db = tampered_copy(&sb, "duplicate", "CREATE TEMP TABLE noop (x)");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let raw: String = conn
            .query_row("SELECT raw FROM events WHERE id = ?1", [id], |r| r.get(0))
            .unwrap();
        let mut log = LogAppender::load(&conn).unwrap();
        log.append(LeafKind::Event, id, raw.as_bytes());
        log.flush(&conn).unwrap();
    }
    checkpoint_wal(&db);
    let (v, report) = verify_cp(&sb, &db, &cp, &[&vkey], &[]);
    assert_eq!(v.code, 0, "an unsigned tail: {report}");
    assert_eq!(
        report["log"]["unsigned_tail"]["by_kind"],
        serde_json::json!({"event": 1})
    );
    let (p, bundle) = prove_on(&sb, &db, id);
    assert_eq!(
        p.code,
        0,
        "prove {id} (leaf {} in the signed tree): {}",
        run.idx + k as u64,
        p.stderr
    );
    let (file, b) = bundle.unwrap();
    assert_eq!(b.event.leaf_index, run.idx + k as u64);
    assert_eq!(check_bundle(&sb, &file, &vkey), (0, 0));
}

// ---------------------------------------------------------------------------------------------------------
// The unsigned tail
// ---------------------------------------------------------------------------------------------------------

/// The leaves of each kind with index in `[from, to)`, from the rows (runs expanded).
fn kinds_in(db: &Path, from: u64) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for r in rows(db) {
        let n = (r.idx..r.idx + r.count as u64)
            .filter(|i| *i >= from)
            .count() as u64;
        if n > 0 {
            *out.entry(r.kind.clone()).or_insert(0) += n;
        }
    }
    out
}

/// An unsigned sync after the signed one: the unsigned tail counts each run's leaves (not its rows), by kind.
/// And a checkpoint signed at a size inside a run (a monitor can sign any size it saw): the tail counts only
/// the run's leaves from that size on.
#[test]
fn the_unsigned_tail_counts_the_leaves_of_runs_by_kind() {
    let (served, sb, key, vkey, cp) = signed_archive_to(1_500, "2024-01-04");
    let signed = std::fs::read_to_string(&cp)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap();
    sb.run_env(
        &[
            "sync",
            "--base-url",
            &served.base,
            "--from",
            "2024-01-04",
            "--to",
            TO,
        ],
        &SIM_CREDS,
    )
    .expect(0);
    let (v, report) = verify_cp(&sb, &sb.db, &cp, &[&vkey], &[]);
    v.expect(0);
    let tail = &report["log"]["unsigned_tail"];
    assert_eq!(tail["from"], signed);
    let want = kinds_in(&sb.db, signed);
    assert!(want["event"] > 100, "{want:?}");
    assert_eq!(
        tail["by_kind"],
        serde_json::to_value(&want).unwrap(),
        "{tail}"
    );
    // A checkpoint signed at a size inside a run of the tail.
    let run = runs(&sb.db)
        .into_iter()
        .find(|r| r.idx > signed && r.count >= 3)
        .unwrap();
    let size = run.idx + 2;
    let conn =
        rusqlite::Connection::open_with_flags(&sb.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let root = tlog_tiles::tree_hash(size, &elevate_archive::store::tlog::ChunkReader::new(&conn))
        .unwrap();
    let origin = elevate_archive::store::tlog::origin(&conn).unwrap();
    drop(conn);
    let text = elevate_archive::tlog::note::read_signing_key(&key)
        .unwrap()
        .sign(&elevate_archive::tlog::note::checkpoint_body(
            &origin, size, root,
        ));
    let mid = sb.dir.path().join("mid.checkpoint");
    std::fs::write(&mid, text).unwrap();
    // Only that checkpoint is trusted: the archive's stored ones are signed by the same key, so move them aside.
    let db = tampered_copy(&sb, "mid", "DELETE FROM checkpoints");
    let (v, report) = verify_cp(&sb, &db, &mid, &[&vkey], &[]);
    assert_eq!(v.code, 0, "{report}\n{}", v.stderr);
    let tail = &report["log"]["unsigned_tail"];
    assert_eq!(tail["from"], size);
    assert_eq!(
        tail["by_kind"],
        serde_json::to_value(kinds_in(&db, size)).unwrap(),
        "{tail}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Rows of one leaf and runs side by side
// ---------------------------------------------------------------------------------------------------------

/// An archive written before version 14 (every leaf a row of its own, no `count`, no `refs`), upgraded by the
/// next sync, which logs its pages as runs: the old and the new checkpoints verify, old and new events prove,
/// a prune across both appends removals naming the right leaves, and deletions on either side are caught.
#[test]
fn an_archive_from_before_version_14_mixes_rows_of_one_leaf_and_runs() {
    let (served, sb, key, vkey, cp1) = signed_archive_to(1_500, "2024-01-04");
    let leaves_before = event_leaves(&sb.db);
    // As version 13 left it: one row per leaf, the two columns gone, version 14 not applied.
    {
        let mut conn = rusqlite::Connection::open(&sb.db).unwrap();
        let tx = conn.transaction().unwrap();
        for r in runs(&sb.db) {
            tx.execute("DELETE FROM tlog_leaves WHERE idx = ?1", [r.idx as i64])
                .unwrap();
            for (k, id) in r.ids().into_iter().enumerate() {
                tx.execute(
                    "INSERT INTO tlog_leaves (idx, kind, ref) VALUES (?1, 'event', ?2)",
                    [(r.idx + k as u64) as i64, id],
                )
                .unwrap();
            }
        }
        tx.execute_batch(
            "DROP INDEX tlog_leaves_runs;
             ALTER TABLE tlog_leaves DROP COLUMN last;
             ALTER TABLE tlog_leaves DROP COLUMN refs;
             ALTER TABLE tlog_leaves DROP COLUMN count;
             DELETE FROM refinery_schema_history WHERE version = 14;",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    checkpoint_wal(&sb.db);
    let cp2 = sb.dir.path().join("second.checkpoint");
    signed_sync(&sb, &served.base, "2024-01-04", TO, &key, &cp2, &[]).expect(0);
    let all = rows(&sb.db);
    let singles = all
        .iter()
        .filter(|r| r.kind == "event" && r.count == 1)
        .count();
    let new_runs = runs(&sb.db);
    assert_eq!(
        singles,
        leaves_before.len(),
        "the old leaves stay rows of one"
    );
    assert!(!new_runs.is_empty(), "the new pages are runs");
    assert_eq!(
        &event_leaves(&sb.db)[..leaves_before.len()],
        &leaves_before[..]
    );
    for cp in [&cp1, &cp2] {
        let (v, report) = verify_cp(&sb, &sb.db, cp, &[&vkey], &["--require-signed"]);
        assert_eq!(v.code, 0, "{report}\n{}", v.stderr);
    }
    let old = leaves_before[leaves_before.len() / 2];
    let new_run = &new_runs[0]; // the lowest ids: the window of 2024-01-04
    let new = (new_run.idx + 1, new_run.ids()[1]);
    for (leaf, id) in [old, new] {
        let (p, bundle) = prove_on(&sb, &sb.db, id);
        p.expect(0);
        let (file, b) = bundle.unwrap();
        assert_eq!(b.event.leaf_index, leaf, "event {id}");
        assert_eq!(check_bundle(&sb, &file, &vkey), (0, 0), "event {id}");
    }
    // Deleting an old event and a new one: both named.
    let db = tampered_copy(
        &sb,
        "mixed-deleted",
        &format!("DELETE FROM events WHERE id IN ({}, {})", old.1, new.1),
    );
    let (v, report) = verify_cp(&sb, &db, &cp2, &[&vkey], &["--log-only"]);
    v.expect(7);
    let details = log_details(&report);
    for (leaf, id) in [old, new] {
        assert!(
            details
                .iter()
                .any(|d| d.starts_with(&format!("deleted: leaf {leaf}: event {id} "))),
            "{details:?}"
        );
    }
    // Events written without a leaf, one among the old rows of one leaf, one inside a new run: both counted.
    let old_ids: Vec<i64> = leaves_before.iter().map(|(_, id)| *id).collect();
    let old_gap = old_ids.windows(2).find(|w| w[1] - w[0] > 1).unwrap()[0] + 1;
    let new_ids = new_run.ids();
    let new_gap = new_ids.windows(2).find(|w| w[1] - w[0] > 1).unwrap()[0] + 1;
    let db = tampered_copy(
        &sb,
        "mixed-unlogged",
        &(insert_copy(old.1, old_gap) + &insert_copy(new.1, new_gap)),
    );
    let (v, report) = verify_cp(&sb, &db, &cp2, &[&vkey], &["--log-only"]);
    v.expect(7);
    let want =
        format!("unlogged: 2 row(s) have no event leaf in the log (ids [{old_gap}, {new_gap}])");
    assert!(
        log_details(&report).iter().any(|d| d.starts_with(&want)),
        "{want:?} in {:?}",
        log_details(&report)
    );
    // A prune over the old rows and into the runs (the runs of 2024-01-04 and -05).
    let cp3 = sb.dir.path().join("third.checkpoint");
    sb.run(&[
        "prune",
        "--before",
        "2024-01-06",
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoint-out",
        cp3.to_str().unwrap(),
    ])
    .expect(0);
    let kept: std::collections::HashSet<i64> = sb.ids().into_iter().collect();
    let gone: Vec<(u64, i64)> = event_leaves(&sb.db)
        .into_iter()
        .filter(|(_, id)| !kept.contains(id))
        .collect();
    let mut named: Vec<u64> = removals(&sb.db).into_iter().map(|(leaf, _)| leaf).collect();
    named.sort_unstable();
    let mut want: Vec<u64> = gone.iter().map(|(leaf, _)| *leaf).collect();
    want.sort_unstable();
    assert_eq!(
        named, want,
        "one removal per removed event, naming its leaf"
    );
    assert!(
        gone.iter().any(|(leaf, _)| *leaf >= new_run.idx),
        "the prune reached the runs"
    );
    let (v, report) = verify_cp(&sb, &sb.db, &cp3, &[&vkey], &["--require-signed"]);
    assert_eq!(v.code, 0, "{report}\n{}", v.stderr);
    for (leaf, id) in [old, new] {
        let (p, bundle) = prove_on(&sb, &sb.db, id);
        p.expect(0);
        let (file, b) = bundle.unwrap();
        assert_eq!(
            (b.event.leaf_index, b.status),
            (leaf, ProofStatus::Removed),
            "event {id}"
        );
        assert_eq!(check_bundle(&sb, &file, &vkey), (0, 0), "event {id}");
    }
}

/// An archive made before the log (version 7), whose one window holds more events than a run may: the log
/// built on upgrade caps its runs at 4,096 leaves, and events on both sides of the cap prove.
#[test]
fn the_log_built_on_upgrade_caps_runs_at_4096_leaves() {
    let (served, sb, _run) = synced(5_000, "2024-01-01", "2024-01-02");
    let conn = rusqlite::Connection::open(&sb.db).unwrap();
    conn.execute_batch(common::UNDO_AFTER_VERSION_7).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    let (key, vkey) = keygen(&sb, "upgrade");
    let cp = sb.dir.path().join("cp");
    signed_sync(
        &sb,
        &served.base,
        "2024-01-02",
        "2024-01-03",
        &key,
        &cp,
        &[],
    )
    .expect(0);
    let all = runs(&sb.db);
    let counts: Vec<i64> = all.iter().map(|r| r.count).collect();
    assert_eq!(counts, vec![4096, 5_000 - 4096], "{counts:?}");
    let (v, report) = verify_cp(
        &sb,
        &sb.db,
        &cp,
        &[&vkey],
        &["--require-signed", "--log-only"],
    );
    assert_eq!(v.code, 0, "{report}");
    for (run, k) in [(&all[0], 4095usize), (&all[1], 0)] {
        let id = run.ids()[k];
        let (p, bundle) = prove_on(&sb, &sb.db, id);
        p.expect(0);
        let (file, b) = bundle.unwrap();
        assert_eq!(b.event.leaf_index, run.idx + k as u64);
        assert_eq!(check_bundle(&sb, &file, &vkey), (0, 0));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Ids that fall within a page
// ---------------------------------------------------------------------------------------------------------

/// A source that ignores `sort=id` within a page: a falling id starts a new row, the leaves keep the page's
/// order, every event is found at its own leaf, and tampering with any of them is caught.
#[test]
fn falling_ids_within_a_page_start_new_rows_and_each_event_keeps_its_leaf() {
    let order = [50i64, 20, 30, 10, 60, 40];
    let page: Vec<String> = order
        .iter()
        .enumerate()
        .map(|(k, id)| ev(*id, &format!("2024-01-01T0{k}:00:00Z")).raw)
        .collect();
    let body = format!("[{}]", page.join(","));
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method("GET")
            .path("/v1/events")
            .query_param("page", "1");
        then.status(200)
            .header("content-type", "application/json")
            .body(body.clone());
    });
    server.mock(|when, then| {
        when.method("GET")
            .path("/v1/events")
            .query_param("page", "2");
        then.status(200)
            .header("content-type", "application/json")
            .body("[]");
    });
    let sb = Sandbox::new();
    let (key, vkey) = keygen(&sb, "auditor-test");
    let cp = sb.dir.path().join("cp");
    sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--signing-key",
        key.to_str().unwrap(),
        "--checkpoint-out",
        cp.to_str().unwrap(),
    ])
    .expect(0);
    let leaves = event_leaves(&sb.db);
    assert_eq!(
        leaves.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        order.to_vec(),
        "leaves in the page's order"
    );
    let shapes: Vec<Vec<i64>> = rows(&sb.db)
        .into_iter()
        .filter(|r| r.kind == "event")
        .map(|r| r.ids())
        .collect();
    assert_eq!(shapes, vec![vec![50], vec![20, 30], vec![10, 60], vec![40]]);
    let (v, report) = verify_cp(&sb, &sb.db, &cp, &[&vkey], &["--require-signed"]);
    assert_eq!(v.code, 0, "{report}\n{}", v.stderr);
    for (leaf, id) in &leaves {
        let (p, bundle) = prove_on(&sb, &sb.db, *id);
        p.expect(0);
        let (file, b) = bundle.unwrap();
        assert_eq!(b.event.leaf_index, *leaf, "event {id}");
        assert_eq!(check_bundle(&sb, &file, &vkey), (0, 0), "event {id}");
    }
    for (name, sql, kind) in [
        (
            "deleted-30",
            "DELETE FROM events WHERE id = 30".to_string(),
            "deleted",
        ),
        (
            "deleted-40",
            "DELETE FROM events WHERE id = 40".to_string(),
            "deleted",
        ),
        (
            "edited-60",
            "UPDATE events SET raw = replace(raw, 'has logged', 'has  logged') WHERE id = 60"
                .to_string(),
            "edited",
        ),
        ("inserted-25", insert_copy(20, 25), "unlogged"),
    ] {
        let db = tampered_copy(&sb, name, &sql);
        let (v, report) = verify_cp(&sb, &db, &cp, &[&vkey], &["--log-only"]);
        assert_eq!(v.code, 7, "{name}: {report}");
        assert!(
            log_finding_kinds(&report).contains(&kind.to_string()),
            "{name}: {report}"
        );
    }
}
