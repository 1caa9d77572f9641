//! Shared helpers for the integration tests: the real binary in a sealed environment, an httpmock responder
//! serving a dataset the way the Elevate API does (under either boundary reading), and archive inspection.
//!
//! No test here depends on the machine's speed: a test that signals a running sync waits for the archive to
//! show the progress it wants ([`Sandbox::wait_for`]), never for a span of time, and holds back a request
//! the sync cannot finish without, so that the sync is still running when the signal lands. The only clock is
//! the [`HANG_GUARD`], which turns a hang into a failure.
#![allow(dead_code)]

pub mod paging;
pub mod signed;

use chrono::{DateTime, Utc};
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A hang guard, not a timing assertion: how long a test waits for a child process, or for the archive to
/// show a state, before it calls the wait a hang, kills the child and fails. It bounds each wait on its own,
/// and the longest (a run of `demo`) takes under half a minute with two copies of the suite on two cores, so
/// only a hang trips it.
pub const HANG_GUARD: Duration = Duration::from_secs(300);

/// How often a waiting test looks again: a polling cadence, never asserted on.
pub const POLL: Duration = Duration::from_millis(5);

/// "Now" for every test run, so windows are deterministic.
pub const NOW: &str = "2024-03-01T00:00:00Z";
/// The bearer token the mocks expect.
pub const TOKEN: &str = "test-token-5f2b9c";

/// A temporary folder with an archive path in it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("archive.db");
        Sandbox { dir, db }
    }

    /// The binary with a sealed environment: nothing inherited but PATH, HOME in the sandbox, now pinned.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_elevate-archive"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("ELEVATE_NOW", NOW)
            .env("ELEVATE_DB", &self.db)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the binary with a token and the given arguments.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[("ELEVATE_TOKEN", TOKEN)])
    }

    /// Runs the binary with the given environment and arguments.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::of(&mut cmd)
    }

    /// What the archive shows now, read through a short-lived read-only connection that waits out the
    /// writer's brief locks; `None` while the archive, its schema or its first run does not exist yet.
    pub fn progress(&self) -> Option<Progress> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        conn.busy_timeout(Duration::from_secs(1)).ok()?;
        conn.query_row(
            "SELECT id, status, pages, windows_completed, (SELECT sum(events_new) FROM runs)
             FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| {
                Ok(Progress {
                    run: r.get(0)?,
                    status: r.get(1)?,
                    pages: r.get(2)?,
                    windows_completed: r.get(3)?,
                    events: r.get(4)?,
                })
            },
        )
        .ok()
    }

    /// The id of the newest run the archive records, 0 if none: a child started next records a later one.
    pub fn last_run(&self) -> i64 {
        self.progress().map_or(0, |p| p.run)
    }

    /// Waits, while `child` runs, until the archive shows a run begun after run `after` and `ready` holds for
    /// what it shows; returns that. Fails if the child exits first (showing its stderr if piped), and after
    /// the [`HANG_GUARD`].
    pub fn wait_for(
        &self,
        child: &mut Child,
        after: i64,
        what: &str,
        ready: impl Fn(&Progress) -> bool,
    ) -> Progress {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            if let Some(progress) = self.progress()
                && progress.run > after
                && ready(&progress)
            {
                return progress;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                panic!("the sync exited ({status}) before {what}: {stderr}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("hung: no {what} after {HANG_GUARD:?}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Opens the archive for inspection.
    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
    }

    /// One integer from the archive.
    pub fn count(&self, sql: &str) -> i64 {
        self.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The archived event ids, ascending.
    pub fn ids(&self) -> Vec<i64> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM events ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

/// What an archive shows of a sync, as the writer last committed it (see [`Sandbox::progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The newest run's id.
    pub run: i64,
    /// Its status (`running` until it ends, or until the next run finds it left over by a killed process).
    pub status: String,
    /// Pages it has committed.
    pub pages: i64,
    /// Windows it has completed.
    pub windows_completed: i64,
    /// Events the archive holds, over all runs.
    pub events: i64,
}

/// Waits for `child` to exit and returns how; kills it and fails after the [`HANG_GUARD`].
pub fn wait_or_hang(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hung: {what} still running after {HANG_GUARD:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// Sends `signal` (a `libc::SIG*`) to `child`.
pub fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the id of a child this test spawned and has not yet reaped.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Runs `cmd` to the end and collects its output; kills it and fails after the [`HANG_GUARD`].
    pub fn of(cmd: &mut Command) -> Run {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        match rx.recv_timeout(HANG_GUARD) {
            Ok(output) => Run::from(output.unwrap()),
            Err(_) => {
                // SAFETY: kill(2) on a child this test spawned; it has not exited, so it is not yet reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("hung: {cmd:?} still running after {HANG_GUARD:?}");
            }
        }
    }

    /// Asserts the exit code, showing the output if it differs.
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// One event of a test dataset.
#[derive(Debug, Clone)]
pub struct Ev {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub raw: String,
}

/// Builds an event with the documented fields.
pub fn ev(id: i64, ts: &str) -> Ev {
    let at = DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .with_timezone(&Utc);
    let raw = format!(
        r#"{{"id":{id},"timestamp":"{ts}","category":"authentication","action":"user-login-success","description":"User u{id} has logged in","username":"u{}","ipAddress":"10.0.0.{}"}}"#,
        id % 7,
        id % 250
    );
    Ev { id, at, raw }
}

/// How the fake server reads a plain `createdFrom`/`createdTo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Inclusive,
    Exclusive,
}

/// Requests the dataset responder has seen: (page, createdFrom, createdTo).
pub type Seen = Arc<Mutex<Vec<(u32, String, String)>>>;

/// Serves `data` on `GET /v1/events` as the API does: bearer check, bounds under `reading`, sort by id, pages.
pub fn serve_dataset<'a>(
    server: &'a MockServer,
    data: Arc<Mutex<Vec<Ev>>>,
    reading: Reading,
    seen: Seen,
) -> httpmock::Mock<'a> {
    serve_dataset_slowly(server, data, reading, seen, std::time::Duration::ZERO)
}

/// [`serve_dataset`], taking `delay` to answer each request.
pub fn serve_dataset_slowly<'a>(
    server: &'a MockServer,
    data: Arc<Mutex<Vec<Ev>>>,
    reading: Reading,
    seen: Seen,
    delay: std::time::Duration,
) -> httpmock::Mock<'a> {
    serve_dataset_except(server, data, reading, seen, delay, |_| false)
}

/// How long [`hold_windows_ending`] holds a request back: past the [`HANG_GUARD`], so that a test is over
/// (or has failed as hung) before the held answer could come.
pub const HOLD: Duration = Duration::from_secs(2 * HANG_GUARD.as_secs());

/// The `createdTo` of a request, if it has a valid one.
pub fn created_to(req: &HttpMockRequest) -> Option<DateTime<Utc>> {
    let (_, v) = req
        .query_params()
        .into_iter()
        .find(|(k, _)| k == "createdTo")?;
    Some(DateTime::parse_from_rfc3339(&v).ok()?.with_timezone(&Utc))
}

/// [`serve_dataset_slowly`], holding back every request for a window that ends at `end` or later until
/// [`MockHold::release`]: held requests are answered (with the dataset) only after [`HOLD`]. A sync of a range
/// ending at `end` then cannot finish while the hold is in place, so a test can kill it at a point of its
/// progress without racing its end.
pub fn serve_dataset_holding(
    server: &MockServer,
    data: Arc<Mutex<Vec<Ev>>>,
    reading: Reading,
    seen: Seen,
    delay: std::time::Duration,
    end: DateTime<Utc>,
) -> MockHold {
    let holding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let held = {
        let holding = holding.clone();
        move |req: &HttpMockRequest| {
            holding.load(std::sync::atomic::Ordering::SeqCst)
                && created_to(req).is_some_and(|to| to >= end)
        }
    };
    serve_dataset_except(
        server,
        data.clone(),
        reading,
        seen.clone(),
        delay,
        held.clone(),
    );
    server.mock(|when, then| {
        when.method("GET").path("/v1/events").is_true(held);
        then.delay(HOLD)
            .respond_with(dataset_responder(data, reading, seen));
    });
    MockHold(holding)
}

/// The hold of [`serve_dataset_holding`].
pub struct MockHold(Arc<std::sync::atomic::AtomicBool>);

impl MockHold {
    /// Serves the held windows again, at once, from the next request on.
    pub fn release(&self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// [`serve_dataset_slowly`] for every request but those `except` picks out, which it leaves to other mocks.
fn serve_dataset_except<'a>(
    server: &'a MockServer,
    data: Arc<Mutex<Vec<Ev>>>,
    reading: Reading,
    seen: Seen,
    delay: std::time::Duration,
    except: impl Fn(&HttpMockRequest) -> bool + Send + Sync + 'static,
) -> httpmock::Mock<'a> {
    server.mock(|when, then| {
        when.method("GET").path("/v1/events").is_false(except);
        then.delay(delay)
            .respond_with(dataset_responder(data, reading, seen));
    })
}

/// Answers `GET /v1/events` from `data` as the API does: bearer check, bounds under `reading`, sort by id,
/// pages.
fn dataset_responder(
    data: Arc<Mutex<Vec<Ev>>>,
    reading: Reading,
    seen: Seen,
) -> impl Fn(&HttpMockRequest) -> HttpMockResponse + Send + Sync + 'static {
    move |req: &HttpMockRequest| {
        if !authorized(req) {
            return json_response(401, r#"{"error":"Unauthorized","message":"bad token"}"#);
        }
        let q = |name: &str| query_param(req, name);
        let page: usize = q("page").unwrap().parse().unwrap();
        let size: usize = q("pageSize").unwrap().parse().unwrap();
        let from_text = q("createdFrom").unwrap();
        let to_text = q("createdTo").unwrap();
        seen.lock()
            .unwrap()
            .push((page as u32, from_text.clone(), to_text.clone()));
        let from = DateTime::parse_from_rfc3339(&from_text)
            .unwrap()
            .with_timezone(&Utc);
        let to = DateTime::parse_from_rfc3339(&to_text)
            .unwrap()
            .with_timezone(&Utc);
        let data = data.lock().unwrap();
        let mut hits: Vec<&Ev> = data
            .iter()
            .filter(|e| match reading {
                Reading::Inclusive => e.at >= from && e.at <= to,
                Reading::Exclusive => e.at > from && e.at < to,
            })
            .collect();
        hits.sort_by_key(|e| e.id);
        let page_items: Vec<&str> = hits
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|e| e.raw.as_str())
            .collect();
        json_response(200, &format!("[{}]", page_items.join(",")))
    }
}

/// A query parameter of a request, if present.
pub fn query_param(req: &HttpMockRequest, name: &str) -> Option<String> {
    req.query_params()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Whether the request carries the expected bearer token.
pub fn authorized(req: &HttpMockRequest) -> bool {
    req.headers_vec()
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v == &format!("Bearer {TOKEN}"))
}

/// A JSON response.
pub fn json_response(status: u16, body: &str) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

/// The base URL of a mock server.
pub fn base(server: &MockServer) -> String {
    format!("{}/v1", server.base_url())
}

/// Whether a path exists.
pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A simulator serving on a runtime of its own, next to the binary under test.
pub struct Served {
    pub sim: elevate_archive::simulator::Simulator,
    pub base: String,
    _running: elevate_archive::simulator::Running,
    _rt: tokio::runtime::Runtime,
}

/// Starts a simulator on a free loopback port.
pub fn serve(config: elevate_archive::simulator::SimConfig) -> Served {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = elevate_archive::simulator::Simulator::new(config);
    let running = rt.block_on(sim.serve(([127, 0, 0, 1], 0).into())).unwrap();
    Served {
        base: running.base_url(),
        sim,
        _running: running,
        _rt: rt,
    }
}

/// Credentials of the simulated API user.
pub const SIM_CREDS: [(&str, &str); 2] =
    [("ELEVATE_USERNAME", "demo"), ("ELEVATE_PASSWORD", "demo")];

/// The archive's `(id, raw)` rows by id.
pub fn archived(sb: &Sandbox) -> Vec<(i64, String)> {
    let conn = sb.conn();
    let mut stmt = conn
        .prepare("SELECT id, raw FROM events ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Asserts the archive holds exactly the source's events, byte for byte, all of them in the search index (the
/// run that stored them ended).
pub fn assert_exact(sb: &Sandbox, served: &Served) {
    let want = served.sim.expected();
    let got = archived(sb);
    assert_eq!(got.len(), want.len(), "event count");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "archive differs from the source");
    }
    assert_search_index_complete(sb);
}

/// The invariants that must hold after any crash: no duplicate, nothing the source does not have, and every
/// window marked complete holds every source event of its interval. `source` is `(id, ms)` by id.
pub fn assert_crash_invariants(sb: &Sandbox, source: &[(i64, i64)]) {
    if !sb.db.exists() || std::fs::metadata(&sb.db).unwrap().len() == 0 {
        return;
    }
    let conn = sb.conn();
    let Ok(dup) = conn.query_row(
        "SELECT count(*) - count(DISTINCT id) FROM events",
        [],
        |r| r.get::<_, i64>(0),
    ) else {
        return; // killed before the schema existed
    };
    assert_eq!(dup, 0, "duplicate events");
    drop(conn);
    assert_search_index_exact(sb);
    let conn = sb.conn();
    let ids: std::collections::HashSet<i64> = sb.ids().into_iter().collect();
    let known: std::collections::HashSet<i64> = source.iter().map(|(id, _)| *id).collect();
    assert!(
        ids.iter().all(|id| known.contains(id)),
        "an archived event is not in the source"
    );
    let mut by_time: Vec<(i64, i64)> = source.iter().map(|(id, ms)| (*ms, *id)).collect();
    by_time.sort();
    let mut stmt = conn
        .prepare("SELECT window_start, window_end FROM windows WHERE status = 'complete'")
        .unwrap();
    let complete: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (start, end) in complete {
        let start = DateTime::parse_from_rfc3339(&start)
            .unwrap()
            .timestamp_millis();
        let end = DateTime::parse_from_rfc3339(&end)
            .unwrap()
            .timestamp_millis();
        let first = by_time.partition_point(|(ms, _)| *ms < start);
        for (ms, id) in by_time[first..].iter().take_while(|(ms, _)| *ms < end) {
            assert!(
                ids.contains(id),
                "window [{start}, {end}) is complete but event {id} at {ms} is missing"
            );
        }
    }
}

/// The search index is consistent with the archive, whenever it is looked at (after a kill too): FTS5's own
/// check passes, and it holds the same words of the same events as an index built now from the events of the
/// window fetches up to `search_state.indexed_window_id` (none missing there, none extra anywhere: what
/// `prune` relies on). Returns how many archived events lie after that watermark, not indexed yet (the end of
/// a run, or the next run's start, adds them). It runs on a copy (the write-ahead log included), since the
/// checks write.
pub fn assert_search_index_exact(sb: &Sandbox) -> i64 {
    let copy = sb.dir.path().join("search-check.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
    for suffix in ["", "-wal"] {
        let from = format!("{}{suffix}", sb.db.display());
        if std::path::Path::new(&from).exists() {
            std::fs::copy(&from, format!("{}{suffix}", copy.display())).unwrap();
        }
    }
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.execute_batch("INSERT INTO events_fts (events_fts) VALUES ('integrity-check')")
        .expect("the search index is consistent");
    conn.execute_batch(
        r#"CREATE VIRTUAL TABLE wanted_fts USING fts5(description, username, columnsize=0,
                                                   tokenize="unicode61 remove_diacritics 2");
           INSERT INTO wanted_fts (rowid, description, username)
               SELECT id, description, username FROM events
               WHERE window_id <= (SELECT indexed_window_id FROM search_state);
           CREATE VIRTUAL TABLE temp.held USING fts5vocab(main, events_fts, instance);
           CREATE VIRTUAL TABLE temp.wanted USING fts5vocab(main, wanted_fts, instance);"#,
    )
    .unwrap();
    let differ = |a: &str, b: &str| -> i64 {
        conn.query_row(
            &format!(
                "SELECT count(*) FROM (SELECT term, doc, col, offset FROM {a}
                                      EXCEPT SELECT term, doc, col, offset FROM {b})"
            ),
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(
        differ("wanted", "held"),
        0,
        "events up to the watermark missing from the search index"
    );
    assert_eq!(
        differ("held", "wanted"),
        0,
        "the search index holds what the events up to the watermark do not"
    );
    let unindexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE window_id > (SELECT indexed_window_id FROM search_state)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
    unindexed
}

/// [`assert_search_index_exact`], and every archived event is indexed (after a run that ended).
pub fn assert_search_index_complete(sb: &Sandbox) {
    assert_eq!(
        assert_search_index_exact(sb),
        0,
        "archived events are not in the search index after the run ended"
    );
}

/// `events` simulated events over `[from, to)` (dates or RFC 3339), synced into a fresh archive with `--json`:
/// the simulator, the sandbox, and the sync's run (its stdout is the JSON summary).
pub fn synced(events: u64, from: &str, to: &str) -> (Served, Sandbox, Run) {
    let config = elevate_archive::simulator::SimConfig::new(
        events,
        elevate_archive::time::parse_time_arg(from).unwrap(),
        elevate_archive::time::parse_time_arg(to).unwrap(),
    );
    let (served, sb, run) = served_and_synced(config, from, to, &["--json"]);
    run.expect(0);
    (served, sb, run)
}

/// A simulator serving `config`, and a fresh archive synced from it over `[from, to)` with `extra` arguments:
/// the simulator, the sandbox, and the sync's run (whose exit code is the caller's to check).
pub fn served_and_synced(
    config: elevate_archive::simulator::SimConfig,
    from: &str,
    to: &str,
    extra: &[&str],
) -> (Served, Sandbox, Run) {
    let served = serve(config);
    let sb = Sandbox::new();
    let args = [
        "sync",
        "--base-url",
        &served.base,
        "--from",
        from,
        "--to",
        to,
    ];
    let run = sb.run_env(&[&args[..], extra].concat(), &SIM_CREDS);
    (served, sb, run)
}

/// A copy of the archive, tampered with by `sql` (run with the seal triggers dropped and foreign keys off, as
/// an attacker with write access to the file would).
pub fn tampered_copy(sb: &Sandbox, name: &str, sql: &str) -> PathBuf {
    let path = sb.dir.path().join(format!("{name}.db"));
    std::fs::copy(&sb.db, &path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF; DROP TRIGGER seals_append_only_update; DROP TRIGGER seals_append_only_delete;").unwrap();
    conn.execute_batch(sql).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    path
}

/// Runs `verify --format json` on `db` (with an anchor if given): the run and its parsed report.
pub fn verify_json(sb: &Sandbox, db: &Path, anchor: Option<&str>) -> (Run, serde_json::Value) {
    let mut args = vec!["verify", "--format", "json"];
    if let Some(a) = anchor {
        args.extend(["--anchor", a]);
    }
    let mut cmd = sb.command();
    cmd.env("ELEVATE_DB", db).args(&args);
    let run = Run::of(&mut cmd);
    let report = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run, report)
}

/// The findings of a `verify` report as (kind, window, ids).
pub fn findings(report: &serde_json::Value) -> Vec<(String, Option<i64>, Vec<i64>)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["window_id"].as_i64(),
                f["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_i64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// The findings of a `verify` report as (kind, window, ids, detail).
pub fn detailed_findings(
    report: &serde_json::Value,
) -> Vec<(String, Option<i64>, Vec<i64>, String)> {
    findings(report)
        .into_iter()
        .zip(report["findings"].as_array().unwrap())
        .map(|((kind, window, ids), f)| {
            let detail = f["detail"].as_str().unwrap().to_string();
            (kind, window, ids, detail)
        })
        .collect()
}

/// SQL that undoes the migrations after version 7 (the Merkle log, the search index as Datasette reads it,
/// verifications, the runs' lookback), leaving an archive as version 7 left it.
pub const UNDO_AFTER_VERSION_7: &str = "
    DROP TABLE tlog_state; DROP TABLE tlog_leaves; DROP TABLE tlog_hashes; DROP TABLE checkpoints;
    DROP TABLE verifications;
    DROP TABLE export_objects; DROP TABLE export_runs; DROP TABLE export_destinations;
    ALTER TABLE runs DROP COLUMN lookback_seconds;
    DROP TABLE events_fts;
    CREATE VIRTUAL TABLE events_fts USING fts5(description, username, content = 'events',
        content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');
    INSERT INTO events_fts (events_fts) VALUES ('rebuild');
    DELETE FROM refinery_schema_history WHERE version > 7;";
