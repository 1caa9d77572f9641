//! Pages of one window asked for ahead, in parallel, against the simulator: a dense window archives exactly
//! the source on every kind of server (capped pages, 404 or an empty page past the end), a page failing in
//! the middle of a window fails only that window, a SIGKILL while pages of a window are in flight leaves an
//! archive the next plain sync completes, deletions while a window is paged ahead skip nothing with
//! `--check-paging`, and the requests in flight never exceed `--concurrency`.
//!
//! Parallel paging is shown, not timed: the simulator holds a window's requests
//! ([`Simulator::hold_covering`]) until as many as `--concurrency` are waiting at once, which only pages asked
//! for ahead can be; and it counts the requests it answers at once (`max_in_flight`).

mod common;

use common::paging::{at, config, start, sync_args, wait_on_sim};
use common::{
    HANG_GUARD, POLL, SIM_CREDS, Sandbox, Served, assert_crash_invariants, assert_exact, serve,
    signal, wait_or_hang,
};
use elevate_archive::simulator::{FailingPage, PastEnd, SimConfig};
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Waits, while `child` runs, until the simulator holds at least `n` requests at once; fails if the child
/// exits first, and after the hang guard.
fn wait_until_held(served: &Served, child: &mut Child, n: u64) {
    wait_on_sim(served, child, &format!("{n} requests held"), |s| {
        s.sim.stats().in_flight.load(Ordering::SeqCst) >= n
            && s.sim.stats().held.load(Ordering::SeqCst) >= n
    });
}

/// Waits for `child` to exit and asserts its exit code, showing its stderr if it differs.
fn expect_exit(child: &mut Child, code: i32) {
    let status = wait_or_hang(child, "the sync");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    assert_eq!(status.code(), Some(code), "{stderr}");
}

/// Syncs up to `to` with pages of 100 and `concurrency` requests at once, while the simulator holds
/// requests: once `concurrency` are held at once it releases them, and the sync must end well (exit 0,
/// the archive exactly the source).
fn sync_while_held(sb: &Sandbox, served: &Served, to: &str, concurrency: u64) {
    let concurrency_arg = concurrency.to_string();
    let extra = ["--page-size", "100", "--concurrency", &concurrency_arg];
    let mut child = start(sb, &sync_args(served, to, &extra));
    wait_until_held(served, &mut child, concurrency);
    served.sim.release();
    expect_exit(&mut child, 0);
    assert_exact(sb, served);
}

fn max_in_flight(served: &Served) -> u64 {
    served.sim.stats().max_in_flight.load(Ordering::SeqCst)
}

#[test]
fn a_dense_window_paged_ahead_archives_exactly_the_source_on_every_server() {
    let cases = [
        (
            "a normal server (an empty page past the end)",
            config(5_000, 1),
        ),
        (
            "a server capping its pages at 40",
            SimConfig {
                page_cap: Some(40),
                ..config(5_000, 1)
            },
        ),
        (
            "a server answering 404 past the end",
            SimConfig {
                past_end: PastEnd::NotFound,
                ..config(5_000, 1)
            },
        ),
        (
            "a capped server answering 404 past the end",
            SimConfig {
                page_cap: Some(40),
                past_end: PastEnd::NotFound,
                ..config(5_000, 1)
            },
        ),
    ];
    for (name, config) in cases {
        let served = serve(config);
        // The one window's first requests are held: only pages asked for ahead can make eight at once.
        served.sim.hold_covering(at("2024-01-01T12:00:00Z"));
        let sb = Sandbox::new();
        sync_while_held(&sb, &served, "2024-01-02", 8);
        assert_eq!(
            sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
            1,
            "{name}"
        );
        assert!(
            max_in_flight(&served) <= 8,
            "{name}: {}",
            max_in_flight(&served)
        );
        sb.run(&["verify"]).expect(0);
    }
}

#[test]
fn a_page_held_up_does_not_hold_up_the_requests_for_the_pages_after_it() {
    // One dense day, pages of 100, two requests at once; page 1 is held. Pages that come back full free
    // their request for the next page before page 1 is taken: pages 2, 3 and 4 are asked for (page 1
    // waiting, twice the window's two requests in all), which paging taken in page order alone, at most
    // two pages asked for, never reaches.
    let served = serve(config(2_000, 1));
    served.sim.hold_covering_page(at("2024-01-01T12:00:00Z"), 1);
    let sb = Sandbox::new();
    // The held request must not time out (and be asked again) before the hang guard.
    let extra = [
        "--page-size",
        "100",
        "--concurrency",
        "2",
        "--timeout",
        "10m",
    ];
    let mut child = start(&sb, &sync_args(&served, "2024-01-02", &extra));
    let stats = served.sim.stats();
    let deadline = Instant::now() + HANG_GUARD;
    while stats.held.load(Ordering::SeqCst) < 1 || stats.event_requests.load(Ordering::SeqCst) < 4 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sync exited ({status}) with page 1 held");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "hung: {} requests with page 1 held",
                stats.event_requests.load(Ordering::SeqCst)
            );
        }
        std::thread::sleep(POLL);
    }
    assert_eq!(sb_pages(&sb), 0, "nothing is stored before page 1");
    served.sim.release();
    expect_exit(&mut child, 0);
    assert_exact(&sb, &served);
    assert!(max_in_flight(&served) <= 2, "{}", max_in_flight(&served));
}

/// Pages the archive holds, if it exists yet.
fn sb_pages(sb: &Sandbox) -> i64 {
    if !sb.db.exists() {
        return 0;
    }
    sb.conn()
        .query_row("SELECT coalesce(sum(pages), 0) FROM windows", [], |r| {
            r.get(0)
        })
        .unwrap_or(0)
}

#[test]
fn the_requests_in_flight_never_exceed_the_concurrency_whatever_the_range_shape() {
    // Four days, the second dense (5,000 late arrivals there), the others sparse; three requests at once.
    let served = serve(config(600, 4));
    let day2 = at("2024-01-02").timestamp_millis();
    served
        .sim
        .insert_late_events_between(5_000, day2, day2 + 86_400_000);
    // The dense day's pages after the first are held: once its first page shows it dense and the sparse
    // days are done, it alone asks for three pages at once.
    served
        .sim
        .hold_covering_from_page(at("2024-01-02T12:00:00Z"), 2);
    let sb = Sandbox::new();
    sync_while_held(&sb, &served, "2024-01-05", 3);
    assert!(max_in_flight(&served) <= 3, "{}", max_in_flight(&served));
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
        4
    );
}

#[test]
fn a_page_failing_in_the_middle_of_a_window_paged_ahead_fails_only_that_window() {
    // Three days of 30 pages each; page 7 of the second day fails its first two requests, so with two
    // attempts the first run loses that window only, keeping its first six pages and none after them.
    let served = serve(SimConfig {
        failing_pages: vec![FailingPage {
            at: at("2024-01-02T12:00:00Z"),
            page: 7,
            times: Some(2),
        }],
        ..config(9_000, 3)
    });
    let sb = Sandbox::new();
    let extra = [
        "--page-size",
        "100",
        "--concurrency",
        "8",
        "--max-attempts",
        "2",
        "--json",
    ];
    let mut args = sync_args(&served, "2024-01-04", &extra);
    args.retain(|a| *a != "--quiet");
    let run = sb.run_env(&args, &SIM_CREDS);
    run.expect(9);
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let failed = report["failed_windows"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert_eq!(failed[0]["from"], "2024-01-02T00:00:00.000Z");
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
        2
    );
    assert_eq!(
        sb.count("SELECT pages FROM windows WHERE status <> 'complete'"),
        6,
        "the pages before the failing one, and none after it"
    );
    let day2 = at("2024-01-02").timestamp_millis();
    let source = served.sim.expected_times();
    let first_six_pages: Vec<i64> = source
        .iter()
        .filter(|(_, ms)| (day2..day2 + 86_400_000).contains(ms))
        .take(600)
        .map(|(id, _)| *id)
        .collect();
    let held = sb.ids();
    assert!(first_six_pages.iter().all(|id| held.contains(id)));
    assert_crash_invariants(&sb, &source);
    // The next plain sync fetches the failed window again, exactly.
    let run = sb.run_env(
        &["sync", "--base-url", &served.base, "--retry-delay", "1ms"],
        &SIM_CREDS,
    );
    run.expect(0);
    assert_exact(&sb, &served);
    sb.run(&["verify"]).expect(0);
}

#[test]
fn sigkill_while_pages_of_one_window_are_in_flight_then_a_plain_sync_completes_it() {
    // One day of 30 pages; pages from the 11th on are held, so the sync stores ten pages and waits with four
    // later pages of the same window in flight when it is killed.
    let served = serve(config(3_000, 1));
    served
        .sim
        .hold_covering_from_page(at("2024-01-01T12:00:00Z"), 11);
    let sb = Sandbox::new();
    let args = sync_args(
        &served,
        "2024-01-02",
        &["--page-size", "100", "--concurrency", "4"],
    );
    let mut child = start(&sb, &args);
    sb.wait_for(&mut child, 0, "ten pages stored", |p| p.pages >= 10);
    wait_until_held(&served, &mut child, 4);
    signal(&child, libc::SIGKILL);
    wait_or_hang(&mut child, "the killed sync");
    served.sim.release();
    let source = served.sim.expected_times();
    assert_crash_invariants(&sb, &source);
    assert_eq!(sb.ids().len(), 1_000, "exactly the ten pages stored");
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
        0
    );
    // A plain sync: no --from. It fetches the window again and completes it, exactly.
    let run = sb.run_env(
        &["sync", "--base-url", &served.base, "--retry-delay", "1ms"],
        &SIM_CREDS,
    );
    run.expect(0);
    assert_exact(&sb, &served);
    sb.run(&["verify"]).expect(0);
}

#[test]
fn deletions_while_windows_are_paged_ahead_skip_nothing_with_check_paging() {
    // Each window loses an event of its first page right after serving it; pages asked for ahead may have
    // been served before or after that: either way, nothing is skipped.
    let served = serve(SimConfig {
        delete_while_paging: true,
        ..config(6_000, 3)
    });
    let sb = Sandbox::new();
    let mut args = sync_args(
        &served,
        "2024-01-04",
        &["--concurrency", "8", "--check-paging", "--json"],
    );
    args.retain(|a| *a != "--quiet");
    let run = sb.run_env(&args, &SIM_CREDS);
    run.expect(0);
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert!(
        report["paging_shifts"].as_u64().unwrap_or(0) <= 3,
        "{}",
        run.stdout
    );
    let held = sb.ids();
    let source: Vec<i64> = served.sim.expected().iter().map(|(id, _)| *id).collect();
    assert!(source.iter().all(|id| held.contains(id)), "nothing skipped");
    assert_eq!(held.len(), source.len() + 3, "the deleted events stay");
}
