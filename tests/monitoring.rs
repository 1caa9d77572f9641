//! Monitoring: `status --check` in the monitoring-plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)
//! on archives made stale, left with a failed window, tampered with, never verified; and the metrics file of
//! `sync --metrics-file`, parsed by the Prometheus project's own Python parser.

mod common;

use common::*;
use elevate_archive::simulator::{FailingWindow, SimConfig};
use elevate_archive::time::parse_time_arg;

/// `status --check` at `now`: (exit code, output).
fn check(sb: &Sandbox, now: &str, extra: &[&str]) -> (i32, String) {
    let mut cmd = sb.command();
    cmd.env("ELEVATE_NOW", now)
        .args(["status", "--check"])
        .args(extra);
    let run = Run::of(&mut cmd);
    (run.code, run.stdout)
}

/// Ten days of events up to `NOW` (2024-03-01), synced.
fn synced_to_now(failing: Vec<FailingWindow>, extra: &[&str]) -> (Served, Sandbox, Run) {
    let config = SimConfig {
        failing,
        ..SimConfig::new(
            3_000,
            parse_time_arg("2024-02-20").unwrap(),
            parse_time_arg(NOW).unwrap(),
        )
    };
    let mut args = vec!["--retry-delay", "1ms", "--max-attempts", "2"];
    args.extend(extra);
    served_and_synced(config, "2024-02-20", NOW, &args)
}

#[test]
fn status_check_says_ok_warning_critical_or_unknown_as_monitoring_plugins_do() {
    let (_served, sb, run) = synced_to_now(vec![], &[]);
    run.expect(0);
    // Fresh, but never verified: a warning, summary line first.
    let (code, out) = check(&sb, NOW, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("ELEVATE-ARCHIVE WARNING - never verified"),
        "{out}"
    );
    assert!(
        out.lines().next().unwrap().contains("| events=3000 "),
        "{out}"
    );

    sb.run(&["verify", "--record"]).expect(0);
    let (code, out) = check(&sb, NOW, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ELEVATE-ARCHIVE OK - 3000 events"), "{out}");
    assert_eq!(out.lines().count(), 1);
    let status = serde_json::from_str::<serde_json::Value>(
        &sb.run(&["status", "--format", "json"]).expect(0).stdout,
    )
    .unwrap();
    assert_eq!(status["last_verification"]["intact"], true);

    // Stale: 1h 30m behind warns, 3 hours behind is critical; the limit is the operator's.
    let (code, out) = check(&sb, "2024-03-01T01:32:00Z", &[]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = check(&sb, "2024-03-01T03:00:00Z", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("ELEVATE-ARCHIVE CRITICAL - coverage ends 3h"),
        "{out}"
    );
    let (code, out) = check(&sb, "2024-03-01T03:00:00Z", &["--max-age", "8h"]);
    assert_eq!(code, 0, "{out}");
    // A verification older than --max-verify-age warns again.
    let (code, out) = check(
        &sb,
        "2024-03-01T03:00:00Z",
        &["--max-age", "8h", "--max-verify-age", "1h"],
    );
    assert_eq!(code, 1, "{out}");

    // Tampering found by the last recorded verification is critical.
    let tampered = tampered_copy(
        &sb,
        "edited",
        "UPDATE events SET username = 'mallory' WHERE id = (SELECT min(id) FROM events)",
    );
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &tampered)
        .args(["verify", "--record"]);
    Run::of(&mut cmd).expect(7);
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &tampered).args(["status", "--check"]);
    let run = Run::of(&mut cmd);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stdout.contains("tampering or damage"), "{}", run.stdout);

    // Not an archive: unknown, with why.
    let bogus = sb.dir.path().join("not-an-archive.db");
    std::fs::write(&bogus, "hello").unwrap();
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", &bogus).args(["status", "--check"]);
    let run = Run::of(&mut cmd);
    assert_eq!(run.code, 3, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("ELEVATE-ARCHIVE UNKNOWN - "),
        "{}",
        run.stdout
    );
}

#[test]
fn a_failed_window_is_a_warning_until_a_plain_sync_fills_it() {
    let failing = vec![FailingWindow {
        at: parse_time_arg("2024-02-25T12:00:00Z").unwrap(),
        // The first two requests: both attempts of the first sync.
        times: Some(2),
    }];
    let (served, sb, run) = synced_to_now(failing, &[]);
    run.expect(9);
    sb.run(&["verify", "--record"]).expect(9);
    let (code, out) = check(&sb, NOW, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not fetched yet"), "{out}");
    sb.run_env(&["sync", "--base-url", &served.base], &SIM_CREDS)
        .expect(0);
    sb.run(&["verify", "--record"]).expect(0);
    let (code, out) = check(&sb, NOW, &[]);
    assert_eq!(code, 0, "{out}");
}

/// The metrics file parsed by `prometheus_client.parser` (the Prometheus project's Python client): each
/// sample as (name, labels, value).
fn parse_metrics(path: &std::path::Path) -> Option<Vec<(String, serde_json::Value, f64)>> {
    let script = "import json, sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = []\n\
        for family in text_string_to_metric_families(open(sys.argv[1]).read()):\n\
        \x20   assert family.type == 'gauge', family\n\
        \x20   for s in family.samples:\n\
        \x20       out.append([s.name, s.labels, s.value if s.value == s.value else None])\n\
        print(json.dumps(out))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("No module named 'prometheus_client'") && std::env::var("CI").is_err(),
            "the metrics file does not parse (or prometheus_client is missing in CI): {stderr}"
        );
        eprintln!(
            "prometheus_client is not installed here (pip install prometheus_client); skipped"
        );
        return None;
    }
    let samples: Vec<(String, serde_json::Value, Option<f64>)> =
        serde_json::from_slice(&out.stdout).unwrap();
    Some(
        samples
            .into_iter()
            .map(|(n, l, v)| (n, l, v.unwrap_or(f64::NAN)))
            .collect(),
    )
}

fn value(samples: &[(String, serde_json::Value, f64)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .2
}

#[test]
fn the_metrics_file_parses_as_prometheus_text_and_says_what_happened() {
    let sb = Sandbox::new();
    let metrics = sb.dir.path().join("elevate_archive.prom");
    let failing = vec![FailingWindow {
        at: parse_time_arg("2024-02-25T12:00:00Z").unwrap(),
        // The first two requests: both attempts of the first sync.
        times: Some(2),
    }];
    let served = serve(SimConfig {
        failing,
        ..SimConfig::new(
            3_000,
            parse_time_arg("2024-02-20").unwrap(),
            parse_time_arg(NOW).unwrap(),
        )
    });
    let args = [
        "sync",
        "--base-url",
        &served.base,
        "--from",
        "2024-02-20",
        "--retry-delay",
        "1ms",
        "--max-attempts",
        "2",
        "--metrics-file",
        metrics.to_str().unwrap(),
    ];
    sb.run_env(&args, &SIM_CREDS).expect(9);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&metrics).unwrap().permissions().mode() & 0o777,
        0o644,
        "readable by the collector"
    );
    let Some(samples) = parse_metrics(&metrics) else {
        return;
    };
    assert_eq!(samples.len(), 24);
    for (name, labels, _) in &samples {
        assert!(name.starts_with("elevate_archive_"), "{name}");
        assert_eq!(labels["archive"], sb.db.to_str().unwrap(), "{name}");
    }
    assert_eq!(value(&samples, "elevate_archive_last_run_exit_code"), 9.0);
    assert_eq!(value(&samples, "elevate_archive_last_run_success"), 0.0);
    assert_eq!(
        value(&samples, "elevate_archive_last_run_windows_failed"),
        1.0
    );
    assert_eq!(value(&samples, "elevate_archive_missing_ranges"), 1.0);
    assert!(value(&samples, "elevate_archive_last_verify_timestamp_seconds").is_nan());
    let held = sb.count("SELECT count(*) FROM events") as f64;
    assert_eq!(value(&samples, "elevate_archive_events"), held);

    sb.run(&["verify", "--record"]).expect(9);
    let mut plain: Vec<&str> = vec!["sync", "--base-url", &served.base];
    plain.extend(["--metrics-file", metrics.to_str().unwrap()]);
    sb.run_env(&plain, &SIM_CREDS).expect(0);
    let samples = parse_metrics(&metrics).unwrap();
    assert_eq!(value(&samples, "elevate_archive_last_run_success"), 1.0);
    assert_eq!(value(&samples, "elevate_archive_missing_ranges"), 0.0);
    assert_eq!(value(&samples, "elevate_archive_events"), 3_000.0);
    assert_eq!(value(&samples, "elevate_archive_last_verify_intact"), 1.0);
    assert_eq!(
        value(&samples, "elevate_archive_covered_until_timestamp_seconds"),
        parse_time_arg("2024-02-29T23:58:00Z").unwrap().timestamp() as f64
    );
}

/// A mock Events API over `data` (id, timestamp), inclusive bounds, sorted by id, pages by number.
fn serve_events(
    server: &httpmock::MockServer,
    data: std::sync::Arc<std::sync::Mutex<Vec<(i64, &'static str)>>>,
) {
    use chrono::{DateTime, Utc};
    server.mock(|when, then| {
        when.method("GET").path("/v1/events");
        then.respond_with(move |req: &httpmock::HttpMockRequest| {
            assert!(authorized(req));
            let q = |name: &str| query_param(req, name).unwrap();
            let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
            let (page, size): (usize, usize) = (q("page").parse().unwrap(), q("pageSize").parse().unwrap());
            let (from, to) = (at(&q("createdFrom")), at(&q("createdTo")));
            let mut hits: Vec<(i64, &str)> = data
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, ts)| at(ts) >= from && at(ts) <= to)
                .copied()
                .collect();
            hits.sort();
            let body: Vec<String> = hits
                .iter()
                .skip((page - 1) * size)
                .take(size)
                .map(|(id, ts)| {
                    format!(r#"{{"id":{id},"timestamp":"{ts}","category":"authentication","action":"user-logout"}}"#)
                })
                .collect();
            json_response(200, &format!("[{}]", body.join(",")))
        });
    });
}

#[test]
fn events_later_than_the_lookback_are_measured_warned_about_and_reached_by_auto_lookback() {
    let server = httpmock::MockServer::start();
    let data = std::sync::Arc::new(std::sync::Mutex::new(vec![
        (1, "2024-02-29T10:00:00Z"),
        (2, "2024-02-29T20:00:00Z"),
    ]));
    serve_events(&server, data.clone());
    let sb = Sandbox::new();
    let base = base(&server);
    let at = |now: &str, args: &[&str]| {
        let mut cmd = sb.command();
        cmd.env("ELEVATE_NOW", now)
            .env("ELEVATE_TOKEN", TOKEN)
            .args(args);
        Run::of(&mut cmd)
    };
    let (first, later) = ("2024-03-01T00:00:00Z", "2024-03-01T05:00:00Z");
    at(
        first,
        &["sync", "--base-url", &base, "--from", "2024-02-29"],
    )
    .expect(0);
    // An event of 20:30 appears at the source after that sync; five hours later a plain sync re-reads only its
    // lookback (the last hour of the coverage) and misses it; a reconcile finds it.
    data.lock().unwrap().push((3, "2024-02-29T20:30:00Z"));
    at(later, &["sync", "--base-url", &base]).expect(0);
    assert_eq!(sb.ids(), vec![1, 2]);
    at(
        later,
        &[
            "reconcile",
            "--base-url",
            &base,
            "--from",
            "2024-02-29",
            "--to",
            "2024-03-01",
        ],
    )
    .expect(8);
    assert_eq!(sb.ids(), vec![1, 2, 3]);

    let status: serde_json::Value =
        serde_json::from_str(&at(later, &["status", "--format", "json"]).expect(0).stdout).unwrap();
    let lateness = &status["lateness"];
    assert_eq!(lateness["found_later"]["events"], 1, "{lateness}");
    assert_eq!(
        lateness["found_later"]["max_seconds"],
        5 * 3600,
        "{lateness}"
    );
    assert_eq!(lateness["lookback_seconds"], 3600);
    assert_eq!(lateness["beyond_lookback"], 1);
    assert_eq!(lateness["arrival"]["events"], 3, "{lateness}");
    // Event 1: 10:00, first archived at midnight; event 3: 20:30, archived at 05:00.
    assert_eq!(lateness["arrival"]["max_seconds"], 14 * 3600);
    assert_eq!(lateness["arrival"]["p50_seconds"], 8 * 3600 + 30 * 60);
    let text = at(later, &["status"]).expect(0).stdout.clone();
    assert!(
        text.contains("arrived later than the lookback (1h)"),
        "{text}"
    );
    let run = at(later, &["status", "--check", "--max-verify-age", "1000d"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("arrived later than the lookback"),
        "{}",
        run.stdout
    );

    // --lookback auto re-reads one and a half times the latest find: 7h 30m before the end of the coverage.
    let run = at(
        later,
        &["sync", "--base-url", &base, "--lookback", "auto", "--json"],
    );
    run.expect(0);
    let reread: String = sb
        .conn()
        .query_row(
            "SELECT min(window_start) FROM windows WHERE run_id = (SELECT max(id) FROM runs)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reread, "2024-02-29T21:28:00.000Z", "{}", run.stdout);
    let status: serde_json::Value =
        serde_json::from_str(&at(later, &["status", "--format", "json"]).expect(0).stdout).unwrap();
    assert_eq!(status["lateness"]["lookback_seconds"], 27_000);
    assert_eq!(status["lateness"]["beyond_lookback"], 0);
}

#[test]
fn a_failed_run_writes_its_metrics_too() {
    let sb = Sandbox::new();
    let metrics = sb.dir.path().join("elevate_archive.prom");
    // The one window of the run always fails: the run fails (exit 4), and says so in its metrics.
    let served = serve(SimConfig {
        failing: vec![FailingWindow {
            at: parse_time_arg("2024-02-28T12:00:00Z").unwrap(),
            times: None,
        }],
        ..SimConfig::new(
            500,
            parse_time_arg("2024-02-28").unwrap(),
            parse_time_arg("2024-02-29").unwrap(),
        )
    });
    let args = [
        "sync",
        "--base-url",
        &served.base,
        "--from",
        "2024-02-28",
        "--to",
        "2024-02-29",
        "--retry-delay",
        "1ms",
        "--max-attempts",
        "2",
        "--metrics-file",
        metrics.to_str().unwrap(),
    ];
    sb.run_env(&args, &SIM_CREDS).expect(4);
    let Some(samples) = parse_metrics(&metrics) else {
        return;
    };
    assert_eq!(value(&samples, "elevate_archive_last_run_exit_code"), 4.0);
    assert_eq!(value(&samples, "elevate_archive_last_run_success"), 0.0);
    assert_eq!(
        value(&samples, "elevate_archive_last_run_windows_failed"),
        1.0
    );
}
