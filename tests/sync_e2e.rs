//! End-to-end runs of the real binary: kill -9 at points of its progress and resume, `status` and `query` in every
//! format on the archive a sync made, secret hygiene, and refusal of unsafe or foreign inputs.

mod common;

use common::*;
use httpmock::MockServer;
use rand::{Rng, SeedableRng};
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 6,000 events over two days, some on hour boundaries, with fractions and offsets.
fn two_days() -> Vec<Ev> {
    (1..=6000)
        .map(|i: i64| {
            let secs = (i * 28) % (2 * 86_400);
            let t = chrono::DateTime::from_timestamp(
                1_704_067_200 + secs,
                ((i % 3) * 250_000_000) as u32,
            )
            .unwrap();
            ev(i, &t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        })
        .collect()
}

#[test]
fn kill_9_at_points_of_progress_then_resume_loses_nothing_and_doubles_nothing() {
    let server = MockServer::start();
    let data = two_days();
    let seen: Seen = Arc::default();
    // The last window is held back until the end, so no run can finish before its kill.
    let end = chrono::DateTime::parse_from_rfc3339("2024-01-03T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let hold = serve_dataset_holding(
        &server,
        Arc::new(Mutex::new(data.clone())),
        Reading::Exclusive,
        seen,
        Duration::ZERO,
        end,
    );
    let sb = Sandbox::new();
    let base = base(&server);
    let args = [
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-03",
        "--window",
        "1h",
        "--page-size",
        "20",
        "--concurrency",
        "4",
        "--quiet",
    ];
    let source: Vec<(i64, i64)> = data
        .iter()
        .map(|e| (e.id, e.at.timestamp_millis()))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xE1E7);
    // Kill points: events stored, spread over nine tenths of the source (the held window is 1/48 of it).
    let mut targets: Vec<i64> = (0..8)
        .map(|_| rng.random_range(1..data.len() as i64 * 9 / 10))
        .collect();
    targets.sort_unstable();
    // The first kill lands right after the spawn (start-up, opening the archive); the others once the run
    // has stored a page and the archive holds the target's events.
    let mut mid_way = 0;
    for (n, target) in std::iter::once(None)
        .chain(targets.into_iter().map(Some))
        .enumerate()
    {
        let after = sb.last_run();
        let mut child = sb
            .command()
            .env("ELEVATE_TOKEN", TOKEN)
            .args(args)
            .spawn()
            .unwrap();
        if let Some(target) = target {
            let seen = sb.wait_for(
                &mut child,
                after,
                &format!("a stored page and {target} events"),
                |p| p.pages >= 1 && p.events >= target,
            );
            assert_eq!(seen.status, "running");
            mid_way += 1;
        }
        child.kill().unwrap();
        let status = wait_or_hang(&mut child, "a killed sync");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "kill {n} did not land in a running sync"
        );
        assert_crash_invariants(&sb, &source);
    }
    hold.release();
    sb.run(&args).expect(0);
    eprintln!("{mid_way} runs killed mid-way before one finished");
    assert!(mid_way >= 5, "only {mid_way} runs were killed mid-way");
    assert_crash_invariants(&sb, &source);
    // Whatever the killed runs left out of the search index, the run that ended added.
    assert_search_index_complete(&sb);
    let want: Vec<i64> = data.iter().map(|e| e.id).collect();
    assert_eq!(sb.ids(), want, "the archive equals the source");
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'running'"),
        0,
        "killed windows are closed by the next run"
    );
    // A kill before the run was recorded leaves no run behind; every other one is marked interrupted.
    assert!(sb.count("SELECT count(*) FROM runs WHERE status = 'interrupted'") >= mid_way);
    assert_eq!(
        sb.count("SELECT count(*) FROM runs WHERE status = 'running'"),
        0
    );
    let integrity: String = sb
        .conn()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

/// An archive with events, a revision and a reject, made by real syncs.
fn archive_with_everything() -> Sandbox {
    let server = MockServer::start();
    let data = Arc::new(Mutex::new(vec![
        ev(1, "2024-01-01T01:00:00Z"),
        ev(2, "2024-01-01T02:00:00Z"),
        ev(3, "2024-01-02T03:00:00.250Z"),
    ]));
    serve_dataset(&server, data.clone(), Reading::Inclusive, Seen::default());
    let sb = Sandbox::new();
    let args = [
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-03",
        "--refetch",
    ];
    sb.run(&args).expect(0);
    let mut source = data.lock().unwrap();
    source[0].raw = source[0].raw.replace("logged in", "logged in again");
    source.push(Ev {
        id: 0,
        at: chrono::DateTime::parse_from_rfc3339("2024-01-01T05:00:00Z")
            .unwrap()
            .into(),
        raw: r#"{"oops":true}"#.into(),
    });
    drop(source);
    sb.run(&args).expect(3);
    sb
}

#[test]
fn status_reports_what_the_archive_holds_in_both_formats() {
    let sb = archive_with_everything();
    let text = sb.run(&["status"]);
    text.expect(0);
    for want in [
        "Events       3  (2024-01-01T01:00:00.000Z .. 2024-01-02T03:00:00.250Z)",
        "Coverage     2024-01-01T00:00:00.000Z .. 2024-01-03T00:00:00.000Z",
        "Gaps         none",
        "Freshness    covered until 2024-01-03T00:00:00.000Z",
        "Revisions    1",
        "Rejects      1",
        "no id",
        "partial",
        "authentication/user-login-success",
    ] {
        assert!(
            text.stdout.contains(want),
            "missing {want:?} in\n{}",
            text.stdout
        );
    }
    let json = sb.run(&["status", "--format", "json"]);
    json.expect(0);
    let s: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(s["events"], 3);
    assert_eq!(
        s["coverage"]["ranges"][0]["from"],
        "2024-01-01T00:00:00.000Z"
    );
    assert_eq!(s["coverage"]["gaps"], serde_json::json!([]));
    assert_eq!(s["freshness_seconds"], 58 * 86_400);
    assert_eq!(s["revisions"], 1);
    assert_eq!(s["rejects"], 1);
    assert_eq!(s["runs"][0]["status"], "partial");
    assert_eq!(s["runs"][1]["status"], "ok");
    assert_eq!(s["event_types"][0]["category"], "authentication");
    assert_eq!(s["event_types"][0]["events"], 3);
    assert_eq!(
        s["event_types"][0]["first_event_at"],
        "2024-01-01T01:00:00.000Z"
    );
}

#[test]
fn status_shows_gaps_between_covered_ranges() {
    let server = MockServer::start();
    serve_dataset(
        &server,
        Arc::new(Mutex::new(vec![ev(1, "2024-01-01T01:00:00Z")])),
        Reading::Inclusive,
        Seen::default(),
    );
    let sb = Sandbox::new();
    for (from, to) in [("2024-01-01", "2024-01-02"), ("2024-01-05", "2024-01-06")] {
        sb.run(&[
            "sync",
            "--base-url",
            &base(&server),
            "--from",
            from,
            "--to",
            to,
        ])
        .expect(0);
    }
    let s: serde_json::Value =
        serde_json::from_str(&sb.run(&["status", "--format", "json"]).stdout).unwrap();
    assert_eq!(
        s["coverage"]["gaps"],
        serde_json::json!([{"from": "2024-01-02T00:00:00.000Z", "to": "2024-01-05T00:00:00.000Z"}])
    );
}

#[test]
fn query_answers_in_every_format() {
    let sb = archive_with_everything();
    let sql = "SELECT id, timestamp, username, description FROM events ORDER BY id";
    let csv = sb.run(&["query", sql, "--format", "csv"]);
    csv.expect(0);
    assert_eq!(
        csv.stdout,
        "id,timestamp,username,description\n\
         1,2024-01-01T01:00:00.000Z,u1,User u1 has logged in\n\
         2,2024-01-01T02:00:00.000Z,u2,User u2 has logged in\n\
         3,2024-01-02T03:00:00.250Z,u3,User u3 has logged in\n"
    );
    let json = sb.run(&["query", sql, "--format", "json"]);
    json.expect(0);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        rows[2],
        serde_json::json!({"id": 3, "timestamp": "2024-01-02T03:00:00.250Z", "username": "u3", "description": "User u3 has logged in"})
    );
    let nd = sb.run(&["query", sql, "--format", "ndjson"]);
    nd.expect(0);
    let lines: Vec<serde_json::Value> = nd
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["username"], "u1");
    let table = sb.run(&[
        "query",
        "SELECT category, count(*) AS n FROM events GROUP BY category",
    ]);
    table.expect(0);
    assert!(
        table.stdout.contains("authentication") && table.stdout.contains("(1 row)"),
        "{}",
        table.stdout
    );
    let raw = sb.run(&[
        "query",
        "SELECT json_extract(raw, '$.username') AS u FROM events WHERE id = 2",
        "--format",
        "csv",
    ]);
    assert_eq!(raw.stdout, "u\nu2\n");
    let plan = sb.run(&[
        "query",
        "EXPLAIN QUERY PLAN SELECT * FROM events WHERE timestamp >= '2024-01-02'",
        "--format",
        "csv",
    ]);
    plan.expect(0);
    // On three rows, with planner statistics, a scan is the right plan; the benchmark shows the indexes at scale.
    assert!(
        plan.stdout.starts_with("id,parent,notused,detail\n") && plan.stdout.contains("events"),
        "{}",
        plan.stdout
    );
    let bad = sb.run(&["query", "SELECT nope FROM events"]);
    bad.expect(2);
    assert!(
        bad.stderr.contains("no such column: nope"),
        "{}",
        bad.stderr
    );
}

#[test]
fn secrets_never_appear_in_output_the_archive_or_help() {
    let canary_token = "canary-token-7f3c1e9a";
    let canary_password = "canary-password-c0ffee";
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(httpmock::Method::POST).path("/v1/authenticate");
        then.status(200)
            .body(format!(r#"{{"token":"{canary_token}"}}"#));
    });
    serve_dataset(
        &server,
        Arc::new(Mutex::new(vec![ev(1, "2024-01-01T01:00:00Z")])),
        Reading::Inclusive,
        Seen::default(),
    );
    let sb = Sandbox::new();
    let creds = [
        ("ELEVATE_USERNAME", "api"),
        ("ELEVATE_PASSWORD", canary_password),
        ("RUST_LOG", "trace"),
    ];
    // The server refuses the issued token (it expects another), so errors, retries and renewals all get logged.
    let run = sb.run_env(
        &[
            "sync",
            "--base-url",
            &base(&server),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "-vvv",
        ],
        &creds,
    );
    run.expect(4);
    let token_run = sb.run_env(
        &[
            "sync",
            "--base-url",
            &base(&server),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "-vvv",
        ],
        &[("ELEVATE_TOKEN", canary_token), ("RUST_LOG", "trace")],
    );
    token_run.expect(4);
    let help = sb.run_env(
        &["sync", "--help"],
        &[
            ("ELEVATE_TOKEN", canary_token),
            ("ELEVATE_PASSWORD", canary_password),
        ],
    );
    help.expect(0);
    let mut everything = format!(
        "{}{}{}{}{}{}",
        run.stdout, run.stderr, token_run.stdout, token_run.stderr, help.stdout, help.stderr
    );
    for entry in std::fs::read_dir(sb.dir.path()).unwrap() {
        everything.push_str(&String::from_utf8_lossy(
            &std::fs::read(entry.unwrap().path()).unwrap(),
        ));
    }
    for secret in [canary_token, canary_password] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(
        run.stderr.contains("credentials were refused"),
        "{}",
        run.stderr
    );
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let sb = Sandbox::new();
    let run = sb.run(&[
        "sync",
        "--base-url",
        "http://rest.elevatebilling.com/v1",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
    ]);
    run.expect(2);
    assert!(
        run.stderr.contains("refusing plain http://"),
        "{}",
        run.stderr
    );
    assert!(!sb.db.exists());
}

#[test]
fn a_file_that_is_not_an_archive_is_refused_and_left_untouched() {
    let sb = Sandbox::new();
    std::fs::write(&sb.db, "id,timestamp\n1,2024-01-01\n".repeat(100)).unwrap();
    let before = std::fs::read(&sb.db).unwrap();
    for args in [
        vec![
            "sync",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
        ],
        vec!["status"],
        vec!["query", "SELECT 1"],
    ] {
        let run = sb.run(&args);
        run.expect(5);
        assert!(
            run.stderr.contains("is not an elevate-archive archive"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read(&sb.db).unwrap(), before);
    let missing = Sandbox::new();
    let run = missing.run(&["status"]);
    run.expect(5);
    assert!(run.stderr.contains("no archive at"), "{}", run.stderr);
}
