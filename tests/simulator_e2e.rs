//! The real binary against the bundled simulator: the archive equals the source exactly under every reading
//! of the undocumented behaviour, under faults, across token expiry, with malformed items, late arrivals,
//! edits and deletions at the source.

mod common;

use common::{Sandbox, Served, archived, assert_exact, serve};
use elevate_archive::simulator::query::Bounds;
use elevate_archive::simulator::{DefaultOrder, PastEnd, SimConfig};
use elevate_archive::time::parse_time_arg;
use std::time::Duration;

/// 20,000 events over 10 days of January 2024.
fn config() -> SimConfig {
    SimConfig::new(
        20_000,
        parse_time_arg("2024-01-01").unwrap(),
        parse_time_arg("2024-01-11").unwrap(),
    )
}

const FROM: &str = "2024-01-01";
const TO: &str = "2024-01-11";

fn sync(sb: &Sandbox, served: &Served, extra: &[&str]) -> common::Run {
    let mut args = vec![
        "sync",
        "--base-url",
        &served.base,
        "--from",
        FROM,
        "--to",
        TO,
        "--page-size",
        "250",
        "--retry-delay",
        "10ms",
    ];
    args.extend_from_slice(extra);
    sb.run_env(
        &args,
        &[("ELEVATE_USERNAME", "demo"), ("ELEVATE_PASSWORD", "demo")],
    )
}

/// The archive's `(id, raw)` rows by id.

#[test]
fn the_archive_equals_the_source_under_every_reading_of_the_undocumented() {
    for bounds in [Bounds::Inclusive, Bounds::Exclusive] {
        for default_order in [DefaultOrder::Id, DefaultOrder::NewestFirst] {
            for past_end in [PastEnd::Empty, PastEnd::NotFound] {
                let served = serve(SimConfig {
                    bounds,
                    default_order,
                    past_end,
                    ..config()
                });
                let sb = Sandbox::new();
                sync(&sb, &served, &["--window", "6h"]).expect(0);
                assert_exact(&sb, &served);
            }
        }
    }
}

#[test]
fn the_archive_is_exact_under_throttling_server_errors_and_broken_connections() {
    let faults = ["429:10%", "5xx:10%", "drop:3%", "truncate:3%"]
        .map(|f| f.parse().unwrap())
        .to_vec();
    let served = serve(SimConfig {
        faults,
        retry_after_secs: 1,
        ..config()
    });
    let sb = Sandbox::new();
    let run = sync(&sb, &served, &["--json", "--max-attempts", "12"]);
    run.expect(0);
    assert_exact(&sb, &served);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert!(
        summary["throttled"].as_u64().unwrap() > 0 && summary["retries"].as_u64().unwrap() > 5,
        "{summary}"
    );
}

#[test]
fn the_archive_is_exact_across_token_expiry() {
    let served = serve(SimConfig {
        token_ttl: Duration::from_secs(2),
        latency: Duration::from_millis(40),
        ..config()
    });
    let sb = Sandbox::new();
    let run = sync(
        &sb,
        &served,
        &["--concurrency", "2", "--window", "12h", "--json"],
    );
    run.expect(0);
    assert_exact(&sb, &served);
    let issued = served
        .sim
        .stats()
        .tokens_issued
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        issued >= 2,
        "a run of several seconds with 2-second tokens renewed only {issued} time(s)"
    );
}

#[test]
fn malformed_items_land_in_rejects_and_the_rest_is_exact() {
    let served = serve(SimConfig {
        malformed_ppm: 5_000,
        ..config()
    });
    let sb = Sandbox::new();
    let run = sync(&sb, &served, &[]);
    run.expect(3);
    assert_exact(&sb, &served);
    let malformed = served.sim.malformed_ids().len() as i64;
    assert!(malformed > 50);
    assert_eq!(sb.count("SELECT count(*) FROM rejects"), malformed);
}

#[test]
fn late_arrivals_are_picked_up_by_a_later_run() {
    // The source ends at the pinned "now" (2024-03-01), as a live tenant does.
    let served = serve(SimConfig::new(
        5_000,
        parse_time_arg("2024-02-20").unwrap(),
        parse_time_arg("2024-03-01").unwrap(),
    ));
    let sb = Sandbox::new();
    let creds = [("ELEVATE_USERNAME", "demo"), ("ELEVATE_PASSWORD", "demo")];
    let base = served.base.clone();
    sb.run_env(
        &["sync", "--base-url", &base, "--from", "2024-02-20"],
        &creds,
    )
    .expect(0);
    let end_ms = parse_time_arg("2024-02-29T23:58:00Z")
        .unwrap()
        .timestamp_millis();
    // Late arrivals inside the lookback of the next run, and some far older.
    let recent = served
        .sim
        .insert_late_events_between(5, end_ms - 3_000_000, end_ms);
    let old = served.sim.insert_late_events_between(
        5,
        parse_time_arg("2024-02-21").unwrap().timestamp_millis(),
        parse_time_arg("2024-02-22").unwrap().timestamp_millis(),
    );
    sb.run_env(&["sync", "--base-url", &base], &creds).expect(0);
    let ids = sb.ids();
    assert!(
        recent.iter().all(|id| ids.contains(id)),
        "late arrivals within the lookback are picked up by a plain run"
    );
    assert!(
        old.iter().all(|id| !ids.contains(id)),
        "older windows are complete and not read again without --refetch"
    );
    sb.run_env(
        &[
            "sync",
            "--base-url",
            &base,
            "--from",
            "2024-02-20",
            "--refetch",
        ],
        &creds,
    )
    .expect(0);
    // The source now ends 2 minutes after the archive (now minus lag): compare what the archive covers.
    let want: Vec<(i64, String)> = served
        .sim
        .expected()
        .into_iter()
        .filter(|(id, raw)| {
            let v: serde_json::Value = serde_json::from_str(raw).unwrap();
            let ts =
                elevate_archive::time::parse_server_timestamp(v["timestamp"].as_str().unwrap())
                    .unwrap();
            let _ = id;
            ts.timestamp_millis() < end_ms
        })
        .collect();
    assert_eq!(archived(&sb), want);
}

#[test]
fn edits_become_revisions_and_deletions_at_the_source_delete_nothing() {
    let served = serve(config());
    let sb = Sandbox::new();
    sync(&sb, &served, &[]).expect(0);
    let before = archived(&sb);
    let edited = served.sim.edit_events(20);
    let deleted = served.sim.delete_events(20);
    let run = sync(&sb, &served, &["--refetch", "--json"]);
    run.expect(0);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    // Each event edited (once or more) and still at the source gives exactly one revision.
    let deleted: std::collections::BTreeSet<i64> = deleted.into_iter().collect();
    let revised: std::collections::BTreeSet<i64> = edited
        .into_iter()
        .filter(|id| !deleted.contains(id))
        .collect();
    assert_eq!(summary["revisions"].as_u64().unwrap(), revised.len() as u64);
    assert_eq!(
        sb.count("SELECT count(DISTINCT event_id) FROM event_revisions"),
        revised.len() as i64
    );
    assert_eq!(
        archived(&sb),
        before,
        "first versions are kept and nothing deleted at the source is removed"
    );
}
