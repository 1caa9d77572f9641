//! No silent loss against the simulator (every behaviour switchable by `simulate` flags too): a capped server,
//! a window that keeps failing, `+0000` offsets, deletions while a window is paged, and a SIGKILL during the
//! first backfill followed by a plain sync. The archive is compared with the source after each.

mod common;

use common::{SIM_CREDS, Sandbox, assert_exact, serve, signal, wait_or_hang};
use elevate_archive::simulator::{FailingWindow, SimConfig};
use elevate_archive::time::parse_time_arg;
use std::process::Stdio;

fn config(events: u64, days: i64) -> SimConfig {
    let from = parse_time_arg("2024-01-01").unwrap();
    SimConfig::new(events, from, from + chrono::TimeDelta::days(days))
}

fn sync(sb: &Sandbox, base: &str, extra: &[&str]) -> common::Run {
    let mut args = vec![
        "sync",
        "--base-url",
        base,
        "--retry-delay",
        "1ms",
        "--max-attempts",
        "2",
    ];
    args.extend_from_slice(extra);
    sb.run_env(&args, &SIM_CREDS)
}

const FOUR_DAYS: [&str; 4] = ["--from", "2024-01-01", "--to", "2024-01-05"];

#[test]
fn a_capped_simulator_loses_nothing() {
    let served = serve(SimConfig {
        page_cap: Some(250),
        ..config(8_000, 4)
    });
    let sb = Sandbox::new();
    let run = sync(&sb, &served.base, &FOUR_DAYS);
    run.expect(0);
    assert!(run.stderr.contains("served 250 items"), "{}", run.stderr);
    assert_exact(&sb, &served);
    sb.run(&["verify"]).expect(0);
}

#[test]
fn a_window_failing_on_the_simulator_is_named_then_filled_by_a_plain_sync() {
    // The second day fails its first two requests: with two attempts, the first run loses that window only.
    let served = serve(SimConfig {
        failing: vec![FailingWindow {
            at: parse_time_arg("2024-01-02T12:00:00Z").unwrap(),
            times: Some(2),
        }],
        ..config(4_000, 4)
    });
    let sb = Sandbox::new();
    let mut args = FOUR_DAYS.to_vec();
    args.extend(["--concurrency", "4"]);
    sync(&sb, &served.base, &args).expect(9);
    sb.run(&["verify"]).expect(9);
    sync(&sb, &served.base, &[]).expect(0);
    assert_exact(&sb, &served);
    sb.run(&["verify"]).expect(0);
}

#[test]
fn compact_offsets_from_the_simulator_are_archived_exactly() {
    let served = serve(SimConfig {
        compact_offsets: true,
        ..config(2_000, 2)
    });
    let sb = Sandbox::new();
    sync(
        &sb,
        &served.base,
        &["--from", "2024-01-01", "--to", "2024-01-03"],
    )
    .expect(0);
    assert_eq!(sb.count("SELECT count(*) FROM rejects"), 0);
    assert_exact(&sb, &served);
}

#[test]
fn deletions_while_windows_are_paged_skip_nothing_with_check_paging() {
    let served = serve(SimConfig {
        delete_while_paging: true,
        ..config(6_000, 3)
    });
    let sb = Sandbox::new();
    let run = sync(
        &sb,
        &served.base,
        &[
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-04",
            "--check-paging",
            "--json",
            // One page at a time: each window's page 2 is then served after the deletion that follows its
            // page 1, so each shifts (pages asked for ahead: tests/paging.rs).
            "--concurrency",
            "1",
        ],
    );
    run.expect(0);
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        report["paging_shifts"], 3,
        "one shift per window: {}",
        run.stdout
    );
    // Every event the source still has is archived; the three deleted while paged were served before
    // their deletion and stay archived (reconcile records them as deleted at the source).
    let held = sb.ids();
    let source: Vec<i64> = served.sim.expected().iter().map(|(id, _)| *id).collect();
    assert!(source.iter().all(|id| held.contains(id)), "nothing skipped");
    assert_eq!(held.len(), source.len() + 3);
    let mut reconcile = vec!["reconcile", "--base-url", served.base.as_str()];
    reconcile.extend(["--from", "2024-01-01", "--to", "2024-01-04"]);
    let run = sb.run_env(&reconcile, &SIM_CREDS);
    run.expect(8);
    assert!(
        run.stdout.contains("deleted at the source         3"),
        "{}",
        run.stdout
    );
}

#[test]
fn sigkill_during_the_first_backfill_then_a_plain_sync_archives_everything() {
    // The first day is held and windows go one at a time: the backfill is killed before any page is stored,
    // with nothing archived but the run's record of what it was asked to fetch.
    let served = serve(config(6_000, 6));
    served
        .sim
        .hold_covering(parse_time_arg("2024-01-01T12:00:00Z").unwrap());
    let sb = Sandbox::new();
    let mut child = sb
        .command()
        .envs(SIM_CREDS)
        .args(["sync", "--quiet", "--base-url", &served.base])
        .args([
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-07",
            "--concurrency",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sb.wait_for(&mut child, 0, "a window stored", |p| {
        p.windows_completed >= 1
    });
    signal(&child, libc::SIGKILL);
    wait_or_hang(&mut child, "the killed sync");
    served.sim.release();
    // A plain sync: no --from. It must resume the whole range the first backfill was asked for.
    let run = sync(&sb, &served.base, &[]);
    run.expect(0);
    assert_exact(&sb, &served);
    sb.run(&["verify"]).expect(0);
}
