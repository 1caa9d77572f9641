//! The reliability suite: crashes, faults, a full disk, bad answers from the server, bad input from the user,
//! concurrent runs, signals, clock skew and damaged archives. Every scenario ends with the archive checked
//! against the source: nothing lost, nothing doubled, no window marked complete that is not.
//!
//! Longer soaks are `#[ignore]`d: `cargo test --release --test reliability -- --ignored`.

mod common;

use common::*;
use elevate_archive::simulator::SimConfig;
use elevate_archive::time::parse_time_arg;
use httpmock::{Method::GET, MockServer};
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn config(events: u64, days: i64) -> SimConfig {
    let from = parse_time_arg("2024-01-01").unwrap();
    SimConfig::new(events, from, from + chrono::TimeDelta::days(days))
}

fn range_args(days: i64) -> [String; 4] {
    let to = parse_time_arg("2024-01-01").unwrap() + chrono::TimeDelta::days(days);
    [
        "--from".into(),
        "2024-01-01".into(),
        "--to".into(),
        elevate_archive::time::to_api(to),
    ]
}

fn spawn_sync(sb: &Sandbox, served: &Served, args: &[String]) -> Child {
    sb.command()
        .envs(SIM_CREDS)
        .args(["sync", "--quiet", "--base-url", &served.base])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The instant that ends the range of `days` days from 2024-01-01.
fn range_end(days: i64) -> chrono::DateTime<chrono::Utc> {
    parse_time_arg("2024-01-01").unwrap() + chrono::TimeDelta::days(days)
}

/// Where a kill lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAt {
    /// Right after the spawn: during start-up, the archive's opening or the recovery of the last kill.
    Spawn,
    /// As soon as the archive records the run, before it has stored a page.
    RunStart,
    /// Once the run has stored a page and the archive holds at least this many events.
    Events(i64),
}

/// Kills a sync `kills` times, at points of its progress drawn from a seeded RNG, checking the crash
/// invariants after each, then lets one finish. One kill in ten lands right after the spawn and one in ten
/// as the run starts; the rest once the archive holds a number of events spread over the whole sync. The
/// simulator holds the range's last window back until the end, so no run can finish before its kill
/// however fast the machine: every kill lands in a running process, and the test says so.
fn crash_and_resume(events: u64, days: i64, kills: usize) {
    let served = serve(config(events, days));
    let source = served.sim.expected_times();
    let sb = Sandbox::new();
    let mut args: Vec<String> = range_args(days).to_vec();
    args.extend(["--window", "6h", "--page-size", "500", "--concurrency", "4"].map(String::from));
    served
        .sim
        .hold_covering(range_end(days) - chrono::TimeDelta::milliseconds(1));
    let mut rng = rand::rngs::StdRng::seed_from_u64(events ^ kills as u64);
    // Targets spread over nine tenths of the source; the held last window is a small part of the rest.
    let mut targets: Vec<i64> = (0..kills)
        .map(|_| rng.random_range(1..source.len() as i64 * 9 / 10))
        .collect();
    targets.sort_unstable();
    let mut landed = Vec::with_capacity(kills);
    for (n, target) in targets.into_iter().enumerate() {
        let at = match n % 10 {
            0 => KillAt::Spawn,
            5 => KillAt::RunStart,
            _ => KillAt::Events(target),
        };
        let after = sb.last_run();
        let mut child = spawn_sync(&sb, &served, &args);
        let seen = match at {
            KillAt::Spawn => None,
            KillAt::RunStart => Some(sb.wait_for(&mut child, after, "the run's start", |_| true)),
            KillAt::Events(target) => Some(sb.wait_for(
                &mut child,
                after,
                &format!("a stored page and {target} events"),
                |p| p.pages >= 1 && p.events >= target,
            )),
        };
        child.kill().unwrap();
        let status = wait_or_hang(&mut child, "a killed sync");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "kill {n} ({at:?}) did not land in a running sync"
        );
        if let Some(seen) = &seen {
            assert_eq!(seen.status, "running", "kill {n} ({at:?})");
        }
        landed.push(seen);
        assert_crash_invariants(&sb, &source);
    }
    served.sim.release();
    let run = sb.run_env(
        &[
            &["sync", "--base-url", &served.base][..],
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
        &SIM_CREDS,
    );
    run.expect(0);
    // Kills seen to land mid-run: the archive showed the run going, with pages stored.
    let mid_run = landed
        .iter()
        .flatten()
        .filter(|p| p.status == "running" && p.pages >= 1)
        .count();
    eprintln!(
        "{} kills during a sync of {events} events ({mid_run} mid-run); events stored at each: {:?}",
        landed.len(),
        landed
            .iter()
            .map(|seen| seen.as_ref().map(|p| p.events))
            .collect::<Vec<_>>()
    );
    assert_eq!(landed.len(), kills);
    assert!(mid_run >= kills * 3 / 4, "only {mid_run} kills mid-run");
    assert_crash_invariants(&sb, &source);
    assert_exact(&sb, &served);
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'running'"),
        0
    );
    let integrity: String = sb
        .conn()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

#[test]
fn kill_9_at_25_points_of_a_200k_event_sync_then_resume_exactly() {
    crash_and_resume(200_000, 20, 25);
}

#[test]
#[ignore = "soak: several minutes; run with --ignored"]
fn soak_kill_9_at_100_points_of_a_1m_event_sync() {
    crash_and_resume(1_000_000, 60, 100);
}

#[test]
fn every_fault_alone_and_all_together_leave_the_archive_exact() {
    let rule = |r: &str| r.parse().unwrap();
    let scenarios: Vec<(&str, SimConfig)> = vec![
        (
            "429 with Retry-After",
            SimConfig {
                faults: vec![rule("429:10%")],
                ..config(10_000, 5)
            },
        ),
        (
            "500",
            SimConfig {
                faults: vec![rule("500:10%")],
                ..config(10_000, 5)
            },
        ),
        (
            "502",
            SimConfig {
                faults: vec![rule("502:10%")],
                ..config(10_000, 5)
            },
        ),
        (
            "503",
            SimConfig {
                faults: vec![rule("503:10%")],
                ..config(10_000, 5)
            },
        ),
        (
            "dropped connections",
            SimConfig {
                faults: vec![rule("drop:10%")],
                ..config(10_000, 5)
            },
        ),
        (
            "truncated bodies",
            SimConfig {
                faults: vec![rule("truncate:10%")],
                ..config(10_000, 5)
            },
        ),
        (
            "added latency",
            SimConfig {
                latency: Duration::from_millis(30),
                ..config(10_000, 5)
            },
        ),
        (
            "token expiry",
            SimConfig {
                token_ttl: Duration::from_secs(1),
                latency: Duration::from_millis(30),
                ..config(10_000, 5)
            },
        ),
        (
            "all together",
            SimConfig {
                faults: ["429:10%", "5xx:10%", "drop:10%", "truncate:10%"]
                    .map(rule)
                    .to_vec(),
                latency: Duration::from_millis(10),
                token_ttl: Duration::from_secs(1),
                ..config(10_000, 5)
            },
        ),
    ];
    for (name, sim) in scenarios {
        let served = serve(sim);
        let sb = Sandbox::new();
        let mut args = vec![
            "sync",
            "--base-url",
            &served.base,
            "--page-size",
            "200",
            "--window",
            "12h",
            "--retry-delay",
            "10ms",
            "--max-attempts",
            "15",
            "--json",
        ];
        let range = range_args(5);
        args.extend(range.iter().map(String::as_str));
        let run = sb.run_env(&args, &SIM_CREDS);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_exact(&sb, &served);
        eprintln!("{name}: {}", run.stdout.trim());
    }
}

/// Runs the binary with its file size limited, as on a full disk (SIGXFSZ ignored, so writes fail with EFBIG).
fn sync_with_file_limit(sb: &Sandbox, served: &Served, limit_bytes: u64, args: &[&str]) -> Run {
    let mut cmd = Command::new("sh");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ELEVATE_NOW", NOW)
        .env("ELEVATE_DB", &sb.db)
        .envs(SIM_CREDS)
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; exec prlimit --fsize={limit_bytes} \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_elevate-archive"))
        .args(["sync", "--base-url", &served.base])
        .args(args);
    Run::from(cmd.output().unwrap())
}

#[test]
fn a_full_disk_stops_the_run_cleanly_and_a_resume_completes_exactly() {
    let served = serve(config(30_000, 10));
    let source = served.sim.expected_times();
    let sb = Sandbox::new();
    let range = range_args(10);
    let mut args: Vec<&str> = range.iter().map(String::as_str).collect();
    args.extend(["--page-size", "500", "--window", "1d"]);
    let full = sync_with_file_limit(&sb, &served, 4_000_000, &args);
    full.expect(5);
    assert!(full.stderr.contains("disk may be full"), "{}", full.stderr);
    assert!(full.stdout.starts_with("sync failed:"), "{}", full.stdout);
    let integrity: String = sb
        .conn()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    assert_crash_invariants(&sb, &source);
    let stored = sb.count("SELECT count(*) FROM events");
    assert!(
        stored > 0 && stored < 30_000,
        "{stored} events stored before the disk filled"
    );
    // Room is made: the next run completes, exactly.
    sb.run_env(
        &[&["sync", "--base-url", &served.base][..], &args].concat(),
        &SIM_CREDS,
    )
    .expect(0);
    assert_exact(&sb, &served);
}

/// A one-window sync against a mock answering every page with `status`, `content_type` and `body`.
fn sync_against(status: u16, content_type: &str, body: &str, extra: &[&str]) -> (Sandbox, Run) {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(GET).path("/v1/events").query_param("page", "1");
        then.status(status)
            .header("content-type", content_type)
            .body(body);
    });
    // A short first page is confirmed by asking for the next one: the end is an empty page.
    server.mock(|when, then| {
        when.method(GET).path("/v1/events").query_param("page", "2");
        then.status(200)
            .header("content-type", "application/json")
            .body("[]");
    });
    let sb = Sandbox::new();
    let base = base(&server);
    let mut args = vec![
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--retry-delay",
        "10ms",
        "--max-attempts",
        "3",
    ];
    args.extend_from_slice(extra);
    let run = sb.run(&args);
    (sb, run)
}

#[test]
fn bad_answers_from_the_server_get_a_clear_error_and_lose_nothing() {
    let item = ev(1, "2024-01-01T01:00:00Z").raw;
    let cases: [(&str, u16, &str, String, &str); 5] = [
        (
            "a body that is not JSON",
            200,
            "application/json",
            "Internal error, please retry".into(),
            "not valid JSON",
        ),
        (
            "an HTML page with status 200",
            200,
            "text/html",
            "<!DOCTYPE html><html><body>Maintenance</body></html>".into(),
            "looks like HTML",
        ),
        (
            "an object instead of an array",
            200,
            "application/json",
            r#"{"events":[]}"#.into(),
            "a JSON object, not an array",
        ),
        (
            "a truncated array",
            200,
            "application/json",
            format!("[{item},{item}"),
            "ends early",
        ),
        (
            "an error status with an HTML body",
            502,
            "text/html",
            "<html><h1>502 Bad Gateway</h1></html>".into(),
            "HTTP 502",
        ),
    ];
    for (name, status, content_type, body, want) in cases {
        let (sb, run) = sync_against(status, content_type, &body, &[]);
        assert_eq!(run.code, 4, "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(want) && run.stderr.contains("gave up"),
            "{name}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"));
        assert_eq!(
            sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
            0,
            "{name}"
        );
        assert_eq!(
            sb.count("SELECT count(*) FROM runs WHERE status = 'failed'"),
            1,
            "{name}"
        );
    }
    // A wrong content type on a good page is no reason to lose it.
    let (sb, run) = sync_against(200, "text/plain", &format!("[{item}]"), &[]);
    run.expect(0);
    assert_eq!(sb.ids(), vec![1]);
}

#[test]
fn more_items_than_page_size_are_all_kept_and_paging_goes_on() {
    let server = MockServer::start();
    let items = |ids: std::ops::RangeInclusive<i64>| {
        format!(
            "[{}]",
            ids.map(|i| ev(i, "2024-01-01T01:00:00Z").raw)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    server.mock(|when, then| {
        when.path("/v1/events").query_param("page", "1");
        then.status(200).body(items(1..=5));
    });
    server.mock(|when, then| {
        when.path("/v1/events").query_param("page", "2");
        then.status(200).body(items(6..=6));
    });
    let sb = Sandbox::new();
    let run = sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--page-size",
        "3",
    ]);
    run.expect(0);
    assert!(
        run.stderr.contains("5 items for pageSize 3"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.ids(), (1..=6).collect::<Vec<_>>());
}

/// A server on a raw socket that answers every connection with `head` then `body`, then closes, or stalls:
/// holds the connection open, sending nothing more, until the client hangs up.
fn raw_server(head: String, body: Vec<u8>, stall: bool) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (head, body) = (head.clone(), body.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                while stall && matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    format!("http://{addr}/v1")
}

#[test]
fn a_body_far_larger_than_a_page_is_refused_without_reading_it_all() {
    let base = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500000000\r\n\r\n"
            .into(),
        b"[".to_vec(),
        true,
    );
    let sb = Sandbox::new();
    // The body never comes: a client that waited for it would time out again and again, far beyond the hang
    // guard, and never see the size.
    let run = sb.run(&[
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
    ]);
    run.expect(4);
    assert!(run.stderr.contains("larger than 64 MiB"), "{}", run.stderr);
    assert!(!run.stderr.contains("timed out"), "{}", run.stderr);
}

#[test]
fn a_response_that_never_finishes_times_out_and_the_run_ends() {
    let base = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n".into(),
        b"[{\"id\":1,".to_vec(),
        true,
    );
    let sb = Sandbox::new();
    // The server holds the connection until the client hangs up: the run ends only by timing out.
    let run = sb.run(&[
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--timeout",
        "1s",
        "--max-attempts",
        "2",
        "--retry-delay",
        "10ms",
    ]);
    run.expect(4);
    assert!(
        run.stderr.contains("after 2 attempts") && run.stderr.contains("timed out"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_input_from_the_user_gets_a_clear_error_and_touches_nothing() {
    let sb = Sandbox::new();
    let cases: [(&[&str], &str); 12] = [
        (&["sync", "--from", "yesterday"], "is not a time"),
        (&["sync", "--from", "2024-02-30"], "is not a time"),
        (
            &["sync", "--from", "2024-01-01", "--window", "a while"],
            "is not a duration",
        ),
        (
            &["sync", "--from", "2024-01-01", "--window", "0s"],
            "is zero",
        ),
        (
            &["sync", "--from", "2024-01-01", "--to", "2024-01-01"],
            "the range is empty",
        ),
        (
            &["sync", "--from", "2024-02-01", "--to", "2024-01-01"],
            "the range is empty",
        ),
        (
            &["sync", "--from", "2024-01-01", "--to", "2030-01-01"],
            "is in the future",
        ),
        (
            &["sync", "--from", "2024-01-01", "--page-size", "0"],
            "--page-size",
        ),
        (
            &["sync", "--from", "2024-01-01", "--concurrency", "0"],
            "1 to 64",
        ),
        (
            &["sync", "--from", "2024-01-01", "--category", ""],
            "--category is empty",
        ),
        (
            &["sync", "--from", "2024-01-01", "--token", "abc"],
            "unexpected argument '--token'",
        ),
        (&["status", "--format", "xml"], "invalid value 'xml'"),
    ];
    for (args, want) in cases {
        let run = sb.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
    assert!(
        !sb.db.exists(),
        "no archive was created by refused commands"
    );
}

#[test]
fn an_archive_from_a_newer_version_is_refused_by_every_command_and_left_untouched() {
    let served = serve(config(500, 1));
    let sb = Sandbox::new();
    sb.run_env(
        &[
            "sync",
            "--base-url",
            &served.base,
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
        ],
        &SIM_CREDS,
    )
    .expect(0);
    {
        let conn = rusqlite::Connection::open(&sb.db).unwrap();
        conn.execute("INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', '', '0')", []).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let before = std::fs::read(&sb.db).unwrap();
    for args in [
        vec![
            "sync",
            "--base-url",
            served.base.as_str(),
            "--refetch",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
        ],
        vec!["status"],
        vec!["query", "SELECT 1"],
    ] {
        let run = sb.run_env(&args, &SIM_CREDS);
        assert_eq!(run.code, 5, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("newer than this elevate-archive understands"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read(&sb.db).unwrap(), before);
}

#[test]
fn two_syncs_started_together_one_runs_the_other_is_refused_at_once() {
    let served = serve(config(20_000, 5));
    let sb = Sandbox::new();
    let mut args: Vec<String> = range_args(5).to_vec();
    args.extend(["--page-size", "500"].map(String::from));
    // Create the archive first, so both processes race for the lock rather than for creating the file.
    sb.run_env(
        &[
            "sync",
            "--base-url",
            &served.base,
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-01T00:00:01Z",
        ],
        &SIM_CREDS,
    )
    .expect(0);
    // The last window is held: the sync that gets the lock cannot finish until the other has been refused.
    served
        .sim
        .hold_covering(range_end(5) - chrono::TimeDelta::milliseconds(1));
    let mut both = [
        spawn_sync(&sb, &served, &args),
        spawn_sync(&sb, &served, &args),
    ];
    let deadline = Instant::now() + HANG_GUARD;
    let (refused, status) = loop {
        if let Some((i, status)) = (0..2).find_map(|i| Some((i, both[i].try_wait().unwrap()?))) {
            break (i, status);
        }
        if Instant::now() > deadline {
            both.iter_mut().for_each(|c| drop(c.kill()));
            panic!("hung: neither sync ended after {HANG_GUARD:?}");
        }
        std::thread::sleep(POLL);
    };
    let runner = 1 - refused;
    let mut stderr = String::new();
    both[refused]
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("another sync is already running"),
        "{stderr}"
    );
    assert!(
        both[runner].try_wait().unwrap().is_none(),
        "the refusal did not wait for the running sync"
    );
    served.sim.release();
    let status = wait_or_hang(&mut both[runner], "the running sync");
    assert_eq!(status.code(), Some(0));
    assert_exact(&sb, &served);
}

/// Signals a sync mid-run: once it has stored pages while a request of its first window is held unanswered,
/// so the signal lands in a running sync and the sync cannot end by finishing its work instead.
fn signal_mid_run(signal: i32, name: &str) {
    let served = serve(config(20_000, 5));
    let sb = Sandbox::new();
    let mut args: Vec<String> = range_args(5).to_vec();
    args.extend(["--page-size", "200", "--window", "6h"].map(String::from));
    served
        .sim
        .hold_covering(parse_time_arg("2024-01-01").unwrap());
    let mut child = spawn_sync(&sb, &served, &args);
    let held = || served.sim.stats().held.load(Ordering::Relaxed);
    let seen = sb.wait_for(&mut child, 0, "stored pages with a request held", |p| {
        p.pages >= 3 && held() >= 1
    });
    assert_eq!(seen.status, "running");
    let sent = Instant::now();
    common::signal(&child, signal);
    let status = wait_or_hang(&mut child, &format!("a sync sent SIG{name}"));
    // A figure for the README, not an assertion.
    eprintln!("SIG{name}: exited {:?} after the signal", sent.elapsed());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(130), "SIG{name}: {stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        sb.count("SELECT count(*) FROM runs WHERE status = 'interrupted'"),
        1
    );
    assert_crash_invariants(&sb, &served.sim.expected_times());
    served.sim.release();
    let resume: Vec<&str> = [
        &["sync", "--base-url", &served.base][..],
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ]
    .concat();
    sb.run_env(&resume, &SIM_CREDS).expect(0);
    assert_exact(&sb, &served);
}

#[test]
fn sigterm_mid_run_ends_with_exit_130_without_waiting_for_a_held_request_and_resumes_exactly() {
    signal_mid_run(libc::SIGTERM, "TERM");
}

#[test]
fn sigint_mid_run_ends_with_exit_130_without_waiting_for_a_held_request_and_resumes_exactly() {
    signal_mid_run(libc::SIGINT, "INT");
}

#[test]
fn a_client_clock_minutes_ahead_of_the_server_loses_nothing_at_the_live_edge() {
    // The server's "now" is 2024-03-01T00:00:00Z: its data ends there. The client's clock runs 5 minutes ahead.
    let server_now = parse_time_arg(NOW).unwrap();
    let served = serve(SimConfig::new(
        5_000,
        server_now - chrono::TimeDelta::days(2),
        server_now,
    ));
    let sb = Sandbox::new();
    let ahead = |minutes: i64| {
        elevate_archive::time::to_api(server_now + chrono::TimeDelta::minutes(minutes))
    };
    let first = sb
        .command()
        .envs(SIM_CREDS)
        .env("ELEVATE_NOW", ahead(5))
        .args(["sync", "--base-url", &served.base, "--from", "2024-02-28"])
        .output()
        .unwrap();
    assert!(first.status.success());
    // The client believes it covered up to server time +3 minutes; events then arrive there on the server.
    let arrivals = served.sim.insert_late_events_between(
        20,
        server_now.timestamp_millis(),
        (server_now + chrono::TimeDelta::minutes(3)).timestamp_millis(),
    );
    let second = sb
        .command()
        .envs(SIM_CREDS)
        .env("ELEVATE_NOW", ahead(65))
        .args(["sync", "--base-url", &served.base])
        .output()
        .unwrap();
    assert!(second.status.success());
    let ids = sb.ids();
    assert!(
        arrivals.iter().all(|id| ids.contains(id)),
        "the lookback re-read the skewed edge"
    );
    assert_exact(&sb, &served);
}

/// Flips bytes of a copy of `original` at the given offsets.
fn damaged_copy(
    original: &[u8],
    dir: &std::path::Path,
    name: &str,
    offsets: &[usize],
) -> std::path::PathBuf {
    let mut bytes = original.to_vec();
    let len = bytes.len();
    for &o in offsets {
        bytes[o % len] ^= 0xA5;
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn damaged_archives_fail_with_a_clear_error_never_panic_and_are_never_written_by_readers() {
    let served = serve(config(3_000, 3));
    let sb = Sandbox::new();
    sb.run_env(
        &[
            "sync",
            "--base-url",
            &served.base,
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-04",
        ],
        &SIM_CREDS,
    )
    .expect(0);
    let original = std::fs::read(&sb.db).unwrap();
    let page_size = 4096;
    let dir = tempfile::tempdir().unwrap();
    let readers: [&[&str]; 3] = [
        &["status"],
        &["query", "SELECT count(*), sum(length(raw)) FROM events"],
        &["query", "SELECT * FROM windows"],
    ];
    let run = |db: &std::path::Path, args: &[&str]| {
        let mut cmd = sb.command();
        cmd.env("ELEVATE_DB", db).envs(SIM_CREDS).args(args);
        Run::from(cmd.output().unwrap())
    };
    // Structural damage every command reads: the header and the schema page.
    let structural: [(&str, Vec<usize>); 3] = [
        ("magic", vec![0, 5]),
        ("page size", vec![16, 17]),
        ("schema page", (100..page_size).step_by(37).collect()),
    ];
    for (name, offsets) in structural {
        let db = damaged_copy(&original, dir.path(), &format!("{name}.db"), &offsets);
        let before = std::fs::read(&db).unwrap();
        for args in readers.iter().copied().chain([&[
            "sync",
            "--base-url",
            served.base.as_str(),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-05",
        ][..]])
        {
            let r = run(&db, args);
            assert_eq!(r.code, 5, "{name} {args:?}: {}{}", r.stdout, r.stderr);
            assert!(
                r.stderr.contains("not an elevate-archive archive") || r.stderr.contains("damaged"),
                "{name}: {}",
                r.stderr
            );
            assert!(!r.stderr.contains("panicked"));
            assert_eq!(
                std::fs::read(&db).unwrap(),
                before,
                "{name}: {args:?} wrote to a damaged archive"
            );
        }
    }
    // Random damage anywhere: never a panic, and read-only commands never write.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for n in 0..30 {
        let offsets: Vec<usize> = (0..16)
            .map(|_| rng.random_range(0..original.len()))
            .collect();
        let db = damaged_copy(&original, dir.path(), &format!("random-{n}.db"), &offsets);
        let before = std::fs::read(&db).unwrap();
        for args in readers {
            let r = run(&db, args);
            assert!(
                r.code == 0 || r.code == 5 || r.code == 2,
                "copy {n} {args:?}: exit {}: {}",
                r.code,
                r.stderr
            );
            assert!(
                !r.stderr.contains("panicked"),
                "copy {n} {args:?}: {}",
                r.stderr
            );
            assert_eq!(
                std::fs::read(&db).unwrap(),
                before,
                "copy {n}: {args:?} wrote to the archive"
            );
        }
    }
}

#[test]
fn a_column_name_that_is_not_utf8_is_reported_as_damage_not_a_panic() {
    // Found by the random-damage test: a flipped byte in a table's CREATE text made rusqlite panic on the
    // column name. Damage the `windows` table's definition the same way, deterministically.
    let served = serve(config(300, 1));
    let sb = Sandbox::new();
    sb.run_env(
        &[
            "sync",
            "--base-url",
            &served.base,
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
        ],
        &SIM_CREDS,
    )
    .expect(0);
    let db = sb.dir.path().join("damaged.db");
    std::fs::copy(&sb.db, &db).unwrap();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, 'pages ', 'pa' || CAST(X'FF' AS TEXT) || 'ges ')
             WHERE name = 'windows';
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
    }
    let bytes = std::fs::read(&db).unwrap();
    for args in [
        vec!["query", "SELECT * FROM windows"],
        vec!["status"],
        vec!["verify"],
        vec!["export", "--format", "ndjson"],
    ] {
        let mut cmd = sb.command();
        cmd.env("ELEVATE_DB", &db).args(&args);
        let run = Run::from(cmd.output().unwrap());
        assert_eq!(run.code, 5, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("is damaged") && !run.stderr.contains("panicked"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "nothing was written");
}
