//! Shared helpers for the integration tests: the real binary in a sealed environment, an httpmock responder
//! serving a dataset the way the Elevate API does (under either boundary reading), and archive inspection.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

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
        Run::from(cmd.output().unwrap())
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
    server.mock(|when, then| {
        when.method("GET").path("/v1/events");
        then.delay(delay)
            .respond_with(move |req: &HttpMockRequest| {
                if !authorized(req) {
                    return json_response(401, r#"{"error":"Unauthorized","message":"bad token"}"#);
                }
                let q = |name: &str| {
                    req.query_params()
                        .into_iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v)
                };
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
            });
    })
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
