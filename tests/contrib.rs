//! `contrib/`: the systemd units and the cron line run the real binary with the command lines they hold, the
//! units pass `systemd-analyze verify` (where it is installed), and Datasette, started on a synced archive
//! with the shipped metadata, offers full-text search on `events` and answers every canned query.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(contrib(path)).unwrap()
}

/// Whether a tool is installed; in CI it must be (`.ci/run` installs it).
fn installed(tool: &str, install: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var("CI").is_err(),
        "{tool} is required in CI ({install})"
    );
    if !found {
        eprintln!("{tool} is not installed here ({install}); this check is skipped");
    }
    found
}

/// The value of `key=` in a unit file (the last one).
fn directive<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// A private password file (mode 0400, as systemd hands a credential over) in the sandbox.
fn password_file(sb: &Sandbox) -> PathBuf {
    let dir = sb.dir.path().join("credentials");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("elevate-password");
    std::fs::write(&path, "demo\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    path
}

/// Runs `args` (a scheduled command line, program first) as the binary against the simulator, as a plain
/// sync after a first backfill.
fn run_scheduled(sb: &Sandbox, served: &Served, args: &[String], env: &[(&str, &str)]) {
    assert!(args[0].ends_with("/elevate-archive"), "{args:?}");
    let mut cmd = sb.command();
    cmd.args(&args[1..])
        .env("ELEVATE_BASE_URL", &served.base)
        .env("ELEVATE_NOW", "2024-01-03T12:00:00Z");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = Run::of(&mut cmd);
    run.expect(0);
    assert_eq!(run.stdout, "", "--quiet prints nothing on success");
}

#[test]
fn the_systemd_units_are_hardened_valid_and_run_the_binary() {
    let service = read("systemd/elevate-archive.service");
    let timer = read("systemd/elevate-archive.timer");
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        (
            "ReadWritePaths",
            "/var/lib/elevate-archive -/var/lib/prometheus/node-exporter",
        ),
        (
            "Environment",
            "ELEVATE_DB=/var/lib/elevate-archive/archive.db",
        ),
        (
            "LoadCredential",
            "elevate-password:/etc/elevate-archive/password",
        ),
        ("UMask", "0077"),
    ] {
        assert_eq!(directive(&service, key), Some(want), "{key}");
    }
    assert!(
        !service.contains("ELEVATE_PASSWORD="),
        "no password in the unit"
    );
    assert_eq!(directive(&timer, "Persistent"), Some("true"));
    assert_eq!(directive(&timer, "Unit"), Some("elevate-archive.service"));

    // The service's command line, credential directory and all, syncs for real.
    let (served, sb, _) = synced(2_000, "2024-01-01", "2024-01-03");
    let password = password_file(&sb);
    let metrics = sb.dir.path().join("elevate_archive.prom");
    let exec = directive(&service, "ExecStart")
        .unwrap()
        .replace(
            "${CREDENTIALS_DIRECTORY}",
            password.parent().unwrap().to_str().unwrap(),
        )
        .replace(
            "/var/lib/prometheus/node-exporter/elevate_archive.prom",
            metrics.to_str().unwrap(),
        );
    let args: Vec<String> = exec.split_whitespace().map(String::from).collect();
    run_scheduled(&sb, &served, &args, &[("ELEVATE_USERNAME", "demo")]);
    assert!(
        std::fs::read_to_string(&metrics)
            .unwrap()
            .contains("elevate_archive_last_run_success{")
    );
    // The weekly verification's command line records what it found.
    let verify = read("systemd/elevate-archive-verify.service");
    let exec = directive(&verify, "ExecStart").unwrap();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args, ["verify", "--record"]);
    sb.run(&args).expect(0);
    assert!(
        sb.run(&["status", "--format", "json"])
            .stdout
            .contains("\"last_verification\": {")
    );

    if !installed("systemd-analyze", "apt-get install systemd") {
        return;
    }
    // Verified as installed, with the binary where ExecStart says it is.
    let analyze = |service: &str| {
        let dir = tempfile::tempdir().unwrap();
        let binary = env!("CARGO_BIN_EXE_elevate-archive");
        let service = service
            .replace("/usr/local/bin/elevate-archive", binary)
            .replace("EnvironmentFile=/etc", "EnvironmentFile=-/etc");
        let verify = read("systemd/elevate-archive-verify.service")
            .replace("/usr/local/bin/elevate-archive", binary);
        let units = [
            ("elevate-archive.service", service),
            ("elevate-archive.timer", timer.clone()),
            ("elevate-archive-verify.service", verify),
            (
                "elevate-archive-verify.timer",
                read("systemd/elevate-archive-verify.timer"),
            ),
        ];
        for (name, text) in &units {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(units.iter().map(|(name, _)| dir.path().join(name)))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, diagnostics) = analyze(&service);
    assert!(ok && diagnostics.is_empty(), "{diagnostics}");
    // The check is real: a misspelt directive is reported.
    let (_, diagnostics) = analyze(&service.replace("ProtectHome=yes", "ProtectHome=sometimes"));
    assert!(
        diagnostics.contains("ProtectHome") || diagnostics.contains("protect home"),
        "{diagnostics}"
    );
}

#[test]
fn the_cron_line_runs_the_binary() {
    let cron = read("cron/elevate-archive");
    let line = cron
        .lines()
        .find(|l| l.starts_with("*/15 "))
        .expect("a schedule line");
    // minute hour day month weekday user command...
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[5], "elevate-archive", "runs as its own user");
    let (served, sb, _) = synced(2_000, "2024-01-01", "2024-01-03");
    let password = password_file(&sb);
    let args: Vec<String> = fields[6..]
        .iter()
        .map(|a| a.replace("/etc/elevate-archive/password", password.to_str().unwrap()))
        .collect();
    let env: Vec<(&str, &str)> = cron
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("ELEVATE_") && *k != "ELEVATE_DB")
        .map(|(k, _)| (k, if k == "ELEVATE_USERNAME" { "demo" } else { "x" }))
        .collect();
    assert!(cron.contains("ELEVATE_DB=/var/lib/elevate-archive/archive.db"));
    run_scheduled(&sb, &served, &args, &env);
    sb.run(&["verify"]).expect(0);
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on the local server: (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// A Datasette process, stopped when dropped.
struct Datasette(Child);

impl Drop for Datasette {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Datasette on `db` with the shipped metadata and waits until it answers.
fn datasette(db: &Path, port: u16) -> Datasette {
    let child = Command::new("datasette")
        .arg("serve")
        .arg(db)
        .arg("--metadata")
        .arg(contrib("datasette/metadata.json"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("datasette starts");
    let server = Datasette(child);
    let deadline = Instant::now() + HANG_GUARD;
    while get(port, "/-/versions.json").is_none() {
        assert!(Instant::now() < deadline, "Datasette never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn json_rows(port: u16, path: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(port, path).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{path}: {body}"))
}

#[test]
fn datasette_searches_events_and_answers_every_canned_query() {
    if !installed("datasette", "pip install datasette") {
        return;
    }
    let (_served, sb, _) = synced(3_000, "2024-01-01", "2024-01-08");
    let port = free_port();
    let _server = datasette(&sb.db, port);

    // Datasette found the full-text index of `events` by itself (the metadata names none) and offers its
    // search box there.
    let (_, page) = get(port, "/archive/events").unwrap();
    assert!(
        page.contains(r#"name="_search""#),
        "no search box on events"
    );
    let (_, body) = get(port, "/archive/events.json?_search=alice&_size=1").unwrap();
    assert!(body.contains(r#"where search matches \"alice\""#), "{body}");
    let found = json_rows(
        port,
        "/archive/events.json?_search=invalid%20password&_shape=array&_size=max",
    );
    let want =
        sb.count("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'invalid password'");
    assert!(want > 0);
    assert_eq!(found.len() as i64, want.min(1000));
    assert!(found.iter().all(|e| e["action"] == "user-login-failure"));

    let metadata: serde_json::Value =
        serde_json::from_str(&read("datasette/metadata.json")).unwrap();
    let queries = metadata["databases"]["archive"]["queries"]
        .as_object()
        .unwrap();
    assert_eq!(queries.len(), 4);
    for (name, query) in queries {
        let sql = query["sql"].as_str().unwrap();
        let params: String = [("since", ""), ("until", ""), ("username", "")]
            .iter()
            .filter(|(p, _)| sql.contains(&format!(":{p}")))
            .map(|(p, v)| format!("&{p}={v}"))
            .collect();
        let rows = json_rows(port, &format!("/archive/{name}.json?_shape=array{params}"));
        assert!(!rows.is_empty(), "{name} answers");
    }
    // The answers are the archive's: failed logins by IP add up to the failed logins held.
    let by_ip = json_rows(
        port,
        "/archive/failed_logins_by_ip.json?_shape=array&since=&until=",
    );
    let total: i64 = by_ip.iter().map(|r| r["failures"].as_i64().unwrap()).sum();
    assert_eq!(
        total,
        sb.count("SELECT count(*) FROM events WHERE action IN ('user-login-failure', 'mfa-challenge-failed', 'user-locked-out')")
    );
    let since = json_rows(
        port,
        "/archive/permission_and_role_changes.json?_shape=array&username=&since=2024-01-05",
    );
    assert!(!since.is_empty());
    assert!(
        since
            .iter()
            .all(|r| r["timestamp"].as_str().unwrap() >= "2024-01-05")
    );
}
