//! The newcomer's commands as a person runs them: `demo`, and `simulate` with the printed token used by `sync`.

mod common;

use common::Sandbox;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[test]
fn demo_runs_the_whole_job_into_demo_db() {
    let sb = Sandbox::new();
    let mut cmd = sb.command();
    cmd.env_remove("ELEVATE_DB")
        .current_dir(sb.dir.path())
        .arg("demo");
    let run = common::Run::from(cmd.output().unwrap());
    run.expect(0);
    let db = sb.dir.path().join("demo.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 100_000);
    for want in [
        "sync ok: 30 windows of 30 completed",
        "Events       100,000",
        "Gaps         none",
        "Logins per day",
        "Failed logins by user",
        "(10 rows)",
    ] {
        assert!(
            run.stdout.contains(want),
            "missing {want:?} in\n{}",
            run.stdout
        );
    }
    assert!(
        run.stderr
            .contains("Simulated Elevate API at http://127.0.0.1:"),
        "{}",
        run.stderr
    );
    // Running it again is harmless: the archive is already complete.
    let mut again = sb.command();
    again
        .env_remove("ELEVATE_DB")
        .current_dir(sb.dir.path())
        .arg("demo");
    let again = common::Run::from(again.output().unwrap());
    again.expect(0);
    assert!(
        again.stdout.contains("nothing to fetch"),
        "{}",
        again.stdout
    );
}

#[test]
fn simulate_prints_a_base_url_and_token_that_sync_can_use() {
    let sb = Sandbox::new();
    let mut child = sb
        .command()
        .args([
            "simulate",
            "--port",
            "0",
            "--events",
            "2000",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-03",
            "--bounds",
            "exclusive",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut token) = (String::new(), String::new());
    while base.is_empty() || token.is_empty() {
        let line = lines
            .next()
            .expect("simulate printed its base URL and token")
            .unwrap();
        if let Some(v) = line.strip_prefix("ELEVATE_BASE_URL=") {
            base = v.to_string();
        }
        if let Some(v) = line.strip_prefix("ELEVATE_TOKEN=") {
            token = v.to_string();
        }
    }
    let run = sb.run_env(
        &[
            "sync",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-03",
            "--json",
        ],
        &[("ELEVATE_BASE_URL", &base), ("ELEVATE_TOKEN", &token)],
    );
    run.expect(0);
    assert_eq!(sb.count("SELECT count(*) FROM events"), 2000);
    // A systemd stop: SIGTERM ends the simulator cleanly.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}
