//! `reconcile` against the simulator: late arrivals archived, edits kept as revisions, deletions at the source
//! kept and recorded, each named, sealed, and reported with exit 8; an unchanged source agrees (exit 0);
//! pruned ranges are not read again.

mod common;

use common::*;
use std::collections::{BTreeSet, HashMap};

const FROM: &str = "2024-01-01";
const TO: &str = "2024-01-06";

fn reconcile(sb: &Sandbox, served: &Served, extra: &[&str]) -> (Run, serde_json::Value) {
    let mut args = vec!["reconcile", "--base-url", &served.base, "--json"];
    args.extend(extra);
    let run = sb.run_env(&args, &SIM_CREDS);
    let report = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run, report)
}

fn ids(report: &serde_json::Value, kind: &str) -> BTreeSet<i64> {
    report["ids"][kind]
        .as_array()
        .map(|a| a.iter().map(|i| i.as_i64().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn late_changed_and_deleted_events_are_found_kept_recorded_and_sealed() {
    let (served, sb, run) = synced(5_000, FROM, TO);
    let anchor = serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()["chain_head"]
        .as_str()
        .unwrap()
        .to_string();
    let before = archived(&sb);

    let deleted: BTreeSet<i64> = served.sim.delete_events(5).into_iter().collect();
    let changed: BTreeSet<i64> = served
        .sim
        .edit_events(3)
        .into_iter()
        .filter(|id| !deleted.contains(id))
        .collect();
    let late: BTreeSet<i64> = served.sim.insert_late_events(4).into_iter().collect();
    assert_eq!((deleted.len(), late.len()), (5, 4));
    assert!(!changed.is_empty());

    let (run, report) = reconcile(&sb, &served, &[]);
    run.expect(8);
    assert_eq!(report["agrees"], false);
    assert_eq!(report["late"], 4);
    assert_eq!(report["changed"], changed.len());
    assert_eq!(report["deleted"], 5);
    assert_eq!(report["deleted_newly_recorded"], 5);
    assert_eq!(ids(&report, "late"), late);
    assert_eq!(ids(&report, "changed"), changed);
    assert_eq!(ids(&report, "deleted"), deleted);

    // Nothing archived was changed or removed; late events are archived; changes are revisions.
    let now: HashMap<i64, String> = archived(&sb).into_iter().collect();
    for (id, raw) in &before {
        assert_eq!(now.get(id), Some(raw), "event {id} changed in the archive");
    }
    assert!(late.iter().all(|id| now.contains_key(id)));
    let source: HashMap<i64, String> = served.sim.expected().into_iter().collect();
    let conn = sb.conn();
    for id in &changed {
        let revision: String = conn
            .query_row(
                "SELECT raw FROM event_revisions WHERE event_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(Some(&revision), source.get(id), "revision of {id}");
    }
    let recorded: i64 = conn
        .query_row("SELECT count(*) FROM source_changes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded as usize, 4 + changed.len() + 5);
    drop(conn);

    // The findings are sealed with the fetches that observed them: the archive verifies, the old anchor holds.
    let (run, _) = verify_json(&sb, &sb.db, Some(&anchor));
    run.expect(0);
    let altered = tampered_copy(
        &sb,
        "altered-finding",
        "UPDATE source_changes SET kind = 'late' WHERE kind = 'deleted'",
    );
    let (run, report) = verify_json(&sb, &altered, None);
    run.expect(7);
    assert!(findings(&report).iter().any(|(k, _, _)| k == "ledger"));

    // Read again: deletions are still disagreements but no longer new; nothing else is.
    let (run, again) = reconcile(&sb, &served, &[]);
    run.expect(8);
    assert_eq!(
        (
            &again["late"],
            &again["changed"],
            &again["deleted"],
            &again["deleted_newly_recorded"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::json!(5),
            &serde_json::json!(0)
        )
    );
    let status = sb.run(&["status"]);
    assert!(
        status
            .stdout
            .contains(&format!("4 late, {} changed, 5 deleted", changed.len())),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("reconcile ok"), "{}", status.stdout);
}

#[test]
fn an_unchanged_source_agrees_and_a_narrower_range_reads_fewer_windows() {
    let (served, sb, _run) = synced(2_000, FROM, TO);
    let (run, report) = reconcile(&sb, &served, &[]);
    run.expect(0);
    assert_eq!(report["agrees"], true);
    assert_eq!(report["run"]["windows_planned"], 5);
    assert!(report["run"]["events_received"].as_u64().unwrap() >= 2_000);
    let (run, report) = reconcile(
        &sb,
        &served,
        &["--from", "2024-01-02", "--to", "2024-01-04"],
    );
    run.expect(0);
    assert_eq!(report["run"]["windows_planned"], 2);
    let text = sb.run_env(
        &[
            "reconcile",
            "--base-url",
            &served.base,
            "--from",
            "2024-01-05",
        ],
        &SIM_CREDS,
    );
    text.expect(0);
    assert!(text.stdout.contains("the source agrees"), "{}", text.stdout);
    assert_eq!(sb.count("SELECT count(*) FROM source_changes"), 0);
}

#[test]
fn pruned_ranges_are_not_read_again() {
    let (served, sb, _run) = synced(2_000, FROM, TO);
    sb.run(&["prune", "--before", "2024-01-03"]).expect(0);
    let left = sb.count("SELECT count(*) FROM events WHERE timestamp < '2024-01-03'");
    served
        .sim
        .insert_late_events_between(3, 1_704_067_200_000, 1_704_153_600_000); // 1 January
    let (run, report) = reconcile(&sb, &served, &[]);
    run.expect(0);
    assert_eq!(report["run"]["windows_planned"], 3);
    assert_eq!(report["late"], 0);
    assert_eq!(
        sb.count("SELECT count(*) FROM events WHERE timestamp < '2024-01-03'"),
        left
    );
}

#[test]
fn bad_reconcile_input_is_refused_with_a_way_forward() {
    let (served, sb, _run) = synced(300, FROM, "2024-01-02");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--from", "2024-02-01", "--to", "2024-02-02"],
            2,
            "covers nothing",
        ),
        (
            vec!["--from", "2024-01-02", "--to", "2024-01-01"],
            2,
            "empty",
        ),
        (vec!["--window", "0s"], 2, "zero"),
        (vec!["--category", ""], 2, "--category"),
    ];
    for (extra, code, words) in cases {
        let mut args = vec!["reconcile", "--base-url", &served.base];
        args.extend(&extra);
        let run = sb.run_env(&args, &SIM_CREDS);
        run.expect(code);
        assert!(run.stderr.contains(words), "{extra:?}: {}", run.stderr);
    }
    let no_creds = sb.run_env(&["reconcile", "--base-url", &served.base], &[]);
    no_creds.expect(2);
    let missing = sb.dir.path().join("missing.db");
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &missing)
        .envs(SIM_CREDS)
        .args(["reconcile", "--base-url", &served.base]);
    Run::from(cmd.output().unwrap()).expect(5);
    assert!(!missing.exists());
}
