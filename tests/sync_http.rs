//! `sync` against httpmock: the exact requests, both boundary readings of the server, how paging stops,
//! retries, token renewal, refusals, rejects, revisions, idempotent re-runs, the lock and the read-only query.

mod common;

use common::*;
use httpmock::{HttpMockRequest, Method::GET, Method::POST, MockServer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn dataset(events: Vec<Ev>) -> Arc<Mutex<Vec<Ev>>> {
    Arc::new(Mutex::new(events))
}

#[test]
fn sends_the_documented_parameters_date_format_and_bearer_header() {
    let server = MockServer::start();
    let page = server.mock(|when, then| {
        when.method(GET)
            .path("/v1/events")
            .query_param("page", "1")
            .query_param("pageSize", "1000")
            .query_param("sort", "id")
            .query_param("createdFrom", "2023-12-31T23:59:59Z")
            .query_param("createdTo", "2024-01-01T06:00:00Z")
            .query_param("category", "in:authentication,authorisation")
            .query_param_missing("action")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("accept", "application/json");
        then.status(200)
            .header("content-type", "application/json")
            .body(format!("[{}]", ev(1, "2024-01-01T01:00:00Z").raw));
    });
    let sb = Sandbox::new();
    let run = sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-01T06:00:00+00:00",
        "--category",
        "in:authentication,authorisation",
    ]);
    run.expect(0);
    page.assert_calls(1);
    assert_eq!(sb.ids(), vec![1]);
    assert!(
        run.stdout.starts_with("sync ok: 1 windows of 1 completed"),
        "{}",
        run.stdout
    );
}

/// Events on and around window boundaries, with and without fractions.
fn boundary_events() -> Vec<Ev> {
    let stamps = [
        "2024-01-01T00:00:00Z",     // exactly the range start
        "2024-01-01T00:00:00.001Z", // just after it
        "2024-01-01T00:59:59.999Z", // just before a window boundary
        "2024-01-01T01:00:00Z",     // exactly on a window boundary
        "2024-01-01T01:00:00.5Z",
        "2024-01-01T01:59:59Z",
        "2024-01-01T02:00:00Z", // on a boundary
        "2024-01-01T02:00:00Z", // twice, with another id
        "2024-01-01T02:30:00+01:00",
        "2024-01-01T03:59:59.999Z", // just before the range end
        "2024-01-01T04:00:00Z",     // exactly the range end: belongs to the next run
        "2023-12-31T23:59:59.5Z",   // before the range: belongs to the previous run
    ];
    stamps
        .iter()
        .enumerate()
        .map(|(i, ts)| ev(i as i64 + 1, ts))
        .collect()
}

fn sync_boundaries(reading: Reading, page_size: &str) -> (Sandbox, Vec<(u32, String, String)>) {
    let server = MockServer::start();
    let seen: Seen = Arc::default();
    serve_dataset(&server, dataset(boundary_events()), reading, seen.clone());
    let sb = Sandbox::new();
    sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01T00:00:00Z",
        "--to",
        "2024-01-01T04:00:00Z",
        "--window",
        "1h",
        "--page-size",
        page_size,
    ])
    .expect(0);
    let seen = seen.lock().unwrap().clone();
    (sb, seen)
}

#[test]
fn every_event_is_archived_once_under_both_boundary_readings() {
    for reading in [Reading::Inclusive, Reading::Exclusive] {
        for page_size in ["1", "2", "1000"] {
            let (sb, _) = sync_boundaries(reading, page_size);
            // Ids 1..=10 lie in [00:00, 04:00); 11 is on the end, 12 before the start. Overlapping requests may
            // also bring 11 or 12 in: never twice, never lost.
            let ids = sb.ids();
            for id in 1..=10 {
                assert!(
                    ids.contains(&id),
                    "{reading:?} pageSize={page_size}: id {id} missing from {ids:?}"
                );
            }
            assert_eq!(
                sb.count("SELECT count(*) FROM events"),
                sb.count("SELECT count(DISTINCT id) FROM events")
            );
            assert_eq!(
                sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
                4
            );
        }
    }
}

#[test]
fn windows_overlap_the_previous_by_one_second_and_end_on_the_next_start() {
    let (_, seen) = sync_boundaries(Reading::Exclusive, "1000");
    let mut bounds: Vec<(String, String)> = seen.into_iter().map(|(_, f, t)| (f, t)).collect();
    bounds.sort();
    // Each window asks for page 1, then page 2 to confirm its short page was the last.
    bounds.dedup();
    assert_eq!(
        bounds,
        [
            ("2023-12-31T23:59:59Z", "2024-01-01T01:00:00Z"),
            ("2024-01-01T00:59:59Z", "2024-01-01T02:00:00Z"),
            ("2024-01-01T01:59:59Z", "2024-01-01T03:00:00Z"),
            ("2024-01-01T02:59:59Z", "2024-01-01T04:00:00Z"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

/// A server answering each page number with a fixed body; unlisted pages must never be requested.
fn pages_server(pages: Vec<(u32, u16, String)>) -> MockServer {
    let server = MockServer::start();
    for (page, status, body) in &pages {
        server.mock(|when, then| {
            when.method(GET)
                .path("/v1/events")
                .query_param("page", page.to_string());
            then.status(*status)
                .header("content-type", "application/json")
                .body(body);
        });
    }
    server
}

fn page_of(ids: std::ops::RangeInclusive<i64>) -> String {
    let items: Vec<String> = ids.map(|i| ev(i, "2024-01-01T01:00:00Z").raw).collect();
    format!("[{}]", items.join(","))
}

fn sync_one_window(server: &MockServer, page_size: &str, extra: &[&str]) -> (Sandbox, Run) {
    let sb = Sandbox::new();
    let base = base(server);
    let mut args = vec![
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--page-size",
        page_size,
    ];
    args.extend_from_slice(extra);
    let run = sb.run(&args);
    (sb, run)
}

#[test]
fn a_short_page_is_confirmed_by_the_next_one_and_paging_stops_at_an_empty_page() {
    let server = pages_server(vec![
        (1, 200, page_of(1..=3)),
        (2, 200, page_of(4..=5)),
        (3, 200, "[]".into()),
    ]);
    let never = server.mock(|when, then| {
        when.path("/v1/events").query_param("page", "4");
        then.status(500);
    });
    // One page at a time: with more, pages past the end may be asked for ahead (and their answers dropped).
    let (sb, run) = sync_one_window(&server, "3", &["--concurrency", "1"]);
    run.expect(0);
    never.assert_calls(0);
    assert_eq!(sb.ids(), vec![1, 2, 3, 4, 5]);
    assert_eq!(sb.count("SELECT pages FROM windows"), 3);
}

#[test]
fn pages_asked_for_ahead_past_the_end_are_dropped_whatever_they_answer() {
    // One window, four requests at once: pages past the empty page that ends the window may be asked for
    // ahead; a server error, a refusal or a repeated page there neither fails the window nor is stored.
    let server = pages_server(vec![
        (1, 200, page_of(1..=3)),
        (2, 200, page_of(4..=5)),
        (3, 200, "[]".into()),
        (4, 500, r#"{"error":"boom"}"#.into()),
        (5, 400, r#"{"error":"too deep"}"#.into()),
        (6, 200, page_of(1..=3)),
    ]);
    let (sb, run) = sync_one_window(&server, "3", &["--concurrency", "4", "--json"]);
    run.expect(0);
    assert_eq!(sb.ids(), vec![1, 2, 3, 4, 5]);
    assert_eq!(sb.count("SELECT pages FROM windows"), 3);
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
        1
    );
    sb.run(&["verify"]).expect(0);
}

#[test]
fn paging_stops_at_an_empty_page_or_a_404_past_the_end() {
    for (status, body) in [
        (200, "[]".to_string()),
        (
            404,
            r#"{"error":"Not Found","message":"no such page"}"#.to_string(),
        ),
    ] {
        let server = pages_server(vec![
            (1, 200, page_of(1..=3)),
            (2, 200, page_of(4..=6)),
            (3, status, body),
        ]);
        let never = server.mock(|when, then| {
            when.path("/v1/events").query_param("page", "4");
            then.status(500);
        });
        // One page at a time: with more, pages past the end may be asked for ahead (answers dropped).
        let (sb, run) = sync_one_window(&server, "3", &["--concurrency", "1"]);
        run.expect(0);
        never.assert_calls(0);
        assert_eq!(sb.ids(), (1..=6).collect::<Vec<_>>());
        assert_eq!(
            sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
            1
        );
    }
}

#[test]
fn a_server_repeating_the_same_page_stops_the_window_instead_of_looping() {
    let server = MockServer::start();
    let pages = server.mock(|when, then| {
        when.method(GET).path("/v1/events");
        then.status(200).body(page_of(1..=3));
    });
    // One request at a time: the two pages compared are asked for, and the next one at most (a page that
    // comes back full makes way for the next request before it is compared with the one before).
    let (sb, run) = sync_one_window(&server, "3", &["--concurrency", "1"]);
    run.expect(4);
    assert!(
        run.stderr.contains("same content for page 2 as for page 1"),
        "{}",
        run.stderr
    );
    assert!(
        (2..=3).contains(&pages.calls()),
        "{} requests",
        pages.calls()
    );
    assert_eq!(sb.ids(), vec![1, 2, 3], "the first page is kept");
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
        0
    );
    assert_eq!(
        sb.count("SELECT count(*) FROM runs WHERE status = 'failed'"),
        1
    );
}

/// A responder failing the first `failures` calls for page 1 with `status` (and headers), then serving one
/// short page; every later page is empty. Returns the count of calls for page 1.
fn flaky(
    server: &MockServer,
    failures: usize,
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    server.mock(move |when, then| {
        when.method(GET).path("/v1/events");
        then.respond_with(move |req: &HttpMockRequest| {
            let page_1 = req
                .query_params()
                .iter()
                .any(|(k, v)| k == "page" && v == "1");
            if !page_1 {
                // The page that confirms the short first page was the last.
                return json_response(200, "[]");
            }
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < failures {
                let mut r = httpmock::HttpMockResponse::builder().status(status);
                for (k, v) in &headers {
                    r = r.header(*k, *v);
                }
                return r.body(r#"{"error":"busy","message":"try later"}"#).build();
            }
            json_response(200, &page_of(1..=2))
        });
    });
    calls
}

#[test]
fn throttling_is_retried_after_the_servers_retry_after() {
    let server = MockServer::start();
    let calls = flaky(&server, 1, 429, vec![("retry-after", "2")]);
    let started = Instant::now();
    let (sb, run) = sync_one_window(&server, "3", &["--retry-delay", "10ms", "--json"]);
    run.expect(0);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 2 was not honoured"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(sb.ids(), vec![1, 2]);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["throttled"], 1);
    assert_eq!(summary["retries"], 1);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    for status in [500, 502, 503, 504] {
        let server = MockServer::start();
        let calls = flaky(&server, 3, status, vec![]);
        let (sb, run) = sync_one_window(&server, "3", &["--retry-delay", "10ms"]);
        run.expect(0);
        assert_eq!(calls.load(Ordering::SeqCst), 4, "status {status}");
        assert_eq!(sb.ids(), vec![1, 2]);
    }
}

#[test]
fn retries_are_bounded_and_completed_windows_stay() {
    let server = MockServer::start();
    // The first day's window works; the second day's always fails.
    server.mock(|when, then| {
        when.method(GET)
            .path("/v1/events")
            .query_param("createdFrom", "2023-12-31T23:59:59Z")
            .query_param("page", "1");
        then.status(200).body(page_of(1..=2));
    });
    server.mock(|when, then| {
        when.method(GET)
            .path("/v1/events")
            .query_param("createdFrom", "2023-12-31T23:59:59Z")
            .query_param("page", "2");
        then.status(200).body("[]");
    });
    let failing = server.mock(|when, then| {
        when.method(GET)
            .path("/v1/events")
            .query_param("createdFrom", "2024-01-01T23:59:59Z");
        then.status(503).body("<html>Service Unavailable</html>");
    });
    let sb = Sandbox::new();
    let run = sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-03",
        "--retry-delay",
        "10ms",
        "--max-attempts",
        "3",
        "--concurrency",
        "1",
    ]);
    // The failing day does not stop the other: the run is partial (exit 9) and names it.
    run.expect(9);
    failing.assert_calls(3);
    assert!(
        run.stderr.contains("gave up") && run.stderr.contains("after 3 attempts"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("HTTP 503"), "{}", run.stderr);
    assert_eq!(sb.ids(), vec![1, 2]);
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
        1
    );
    // The next run fetches only the missing day (and, failing on every window it has, exits 4).
    let again = sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-03",
        "--retry-delay",
        "10ms",
        "--max-attempts",
        "1",
        "--concurrency",
        "1",
    ]);
    again.expect(4);
    failing.assert_calls(4);
}

#[test]
fn a_dropped_connection_is_retried() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = page_of(1..=2);
    let server = std::thread::spawn(move || {
        for (i, stream) in listener.incoming().take(4).enumerate() {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            match i {
                0 => drop(stream), // closed without an answer
                1 => {
                    // Headers promise more than is sent, then the connection closes mid-body.
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n[{\"id\":1");
                }
                _ => {
                    // The page, then the empty page that confirms it was the last.
                    let body = if i == 2 { body.as_str() } else { "[]" };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    stream.write_all(response.as_bytes()).unwrap();
                }
            }
        }
    });
    let sb = Sandbox::new();
    let run = sb.run(&[
        "sync",
        "--base-url",
        &format!("http://{addr}/v1"),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--page-size",
        "3",
        "--retry-delay",
        "10ms",
        // One page at a time: this server answers its connections in a fixed order.
        "--concurrency",
        "1",
    ]);
    run.expect(0);
    server.join().unwrap();
    assert_eq!(sb.ids(), vec![1, 2]);
}

/// A JWT-shaped token with the given `exp` (seconds since the epoch) and a serial number.
fn jwt(exp: u64, serial: usize) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(format!(r#"{{"exp":{exp},"n":{serial}}}"#)),
        b64.encode("sig")
    )
}

fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `exp` claim of a bearer header, if it is one of our JWTs.
fn bearer_exp(req: &HttpMockRequest) -> Option<u64> {
    use base64::Engine;
    let header = req
        .headers_vec()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?
        .1
        .clone();
    let payload = header
        .strip_prefix("Bearer ")?
        .split('.')
        .nth(1)?
        .to_string();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?,
    )
    .ok()?;
    claims["exp"].as_u64()
}

#[test]
fn tokens_are_renewed_before_they_expire() {
    let server = MockServer::start();
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    let auth = server.mock(move |when, then| {
        when.method(POST).path("/v1/authenticate").json_body(
            serde_json::json!({"username": "api-user", "password": "s3cret", "brand": "acme"}),
        );
        then.respond_with(move |_: &HttpMockRequest| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            json_response(
                200,
                &format!(
                    r#"{{"token":"{}","username":"api-user"}}"#,
                    jwt(epoch_now() + 3, n)
                ),
            )
        });
    });
    // A request whose token has expired when it arrives is refused, as the real API does. Tokens are checked
    // on arrival (a matcher), not after the page's delay, so the client's renewal margin (a quarter of a
    // token's life: over half a second here) is all slack between its check and the server's.
    let expired = |req: &HttpMockRequest| bearer_exp(req).is_none_or(|exp| exp <= epoch_now());
    server.mock(|when, then| {
        when.method(GET).path("/v1/events").is_true(expired);
        then.respond_with(|_: &HttpMockRequest| {
            json_response(401, r#"{"error":"Unauthorized","message":"token expired"}"#)
        });
    });
    // Every page takes a while, so that time passes and tokens must be renewed.
    server.mock(|when, then| {
        when.method(GET).path("/v1/events").is_false(expired);
        then.delay(Duration::from_millis(400))
            .respond_with(|_: &HttpMockRequest| json_response(200, "[]"));
    });
    let sb = Sandbox::new();
    let run = sb.run_env(
        &[
            "sync",
            "--base-url",
            &base(&server),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-01T12:00:00Z",
            "--window",
            "40m",
            "--concurrency",
            "1",
            "--json",
        ],
        &[
            ("ELEVATE_USERNAME", "api-user"),
            ("ELEVATE_PASSWORD", "s3cret"),
            ("ELEVATE_BRAND", "acme"),
        ],
    );
    run.expect(0);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["windows_completed"], 18);
    // A token lives at most 3 s and is renewed a quarter of its life before it ends, so it is used for
    // requests sent within 2.25 s: at most 6 of these requests, which are sent at least 0.4 s apart. Two
    // tokens serve at most 12 of the 18, however fast or slow the machine.
    assert!(
        auth.calls() >= 3,
        "18 pages of at least 0.4 s with 3-second tokens need renewals, got {}",
        auth.calls()
    );
    assert_eq!(
        summary["retries"], 0,
        "no request should have been refused for an expired token"
    );
}

#[test]
fn a_401_renews_the_token_once_and_retries() {
    let server = MockServer::start();
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    let auth = server.mock(move |when, then| {
        when.method(POST).path("/v1/authenticate");
        then.respond_with(move |_: &HttpMockRequest| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            json_response(200, &format!(r#"{{"token":"opaque-{n}"}}"#))
        });
    });
    let events = server.mock(|when, then| {
        when.method(GET).path("/v1/events");
        then.respond_with(|req: &HttpMockRequest| {
            let revoked = req
                .headers_vec()
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v == "Bearer opaque-0");
            let page_1 = req
                .query_params()
                .iter()
                .any(|(k, v)| k == "page" && v == "1");
            if revoked {
                json_response(401, r#"{"error":"Unauthorized"}"#)
            } else if page_1 {
                json_response(200, &page_of(1..=1))
            } else {
                json_response(200, "[]")
            }
        });
    });
    let sb = Sandbox::new();
    let run = sb.run_env(
        &[
            "sync",
            "--base-url",
            &base(&server),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            // One page at a time, so that the requests counted are exactly these.
            "--concurrency",
            "1",
        ],
        &[
            ("ELEVATE_USERNAME", "api-user"),
            ("ELEVATE_PASSWORD", "s3cret"),
        ],
    );
    run.expect(0);
    auth.assert_calls(2);
    // Refused, retried with the new token, then the empty page confirming the end.
    events.assert_calls(3);
    assert_eq!(sb.ids(), vec![1]);
}

#[test]
fn refused_credentials_and_missing_permission_stop_with_a_clear_message() {
    type Vars<'a> = &'a [(&'a str, &'a str)];
    let cases: [(u16, Vars, &str); 3] = [
        (
            401,
            &[("ELEVATE_TOKEN", TOKEN)],
            "the token in ELEVATE_TOKEN was refused",
        ),
        (
            401,
            &[("ELEVATE_USERNAME", "u"), ("ELEVATE_PASSWORD", "p")],
            "the credentials were refused",
        ),
        (
            403,
            &[("ELEVATE_TOKEN", TOKEN)],
            "lacks permission to read events",
        ),
    ];
    for (status, env, want) in cases {
        let server = MockServer::start();
        server.mock(|when, then| {
            when.method(POST).path("/v1/authenticate");
            then.status(200).body(r#"{"token":"t"}"#);
        });
        let events = server.mock(|when, then| {
            when.method(GET).path("/v1/events");
            then.status(status)
                .body(r#"{"error":"Denied","message":"user disabled"}"#);
        });
        let sb = Sandbox::new();
        let run = sb.run_env(
            &[
                "sync",
                "--base-url",
                &base(&server),
                "--from",
                "2024-01-01",
                "--to",
                "2024-01-02",
                // One page at a time, so that the requests counted are one page's.
                "--concurrency",
                "1",
            ],
            env,
        );
        run.expect(4);
        assert!(run.stderr.contains(want), "{status}: {}", run.stderr);
        assert!(
            run.stderr.contains("user disabled"),
            "the server's message is quoted: {}",
            run.stderr
        );
        assert!(events.calls() <= 2, "no retry loop on {status}");
    }
    // The authentication endpoint itself refusing.
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(POST).path("/v1/authenticate");
        then.status(401)
            .body(r#"{"error":"Unauthorized","message":"invalid username or password"}"#);
    });
    let sb = Sandbox::new();
    let run = sb.run_env(
        &[
            "sync",
            "--base-url",
            &base(&server),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
        ],
        &[
            ("ELEVATE_USERNAME", "u"),
            ("ELEVATE_PASSWORD", "wrong-password"),
        ],
    );
    run.expect(4);
    assert!(
        run.stderr.contains("credentials were refused") && run.stderr.contains("invalid username"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_items_go_to_rejects_and_the_rest_is_archived() {
    let server = MockServer::start();
    let body = format!(
        "[{},42,{},{},{},{}]",
        ev(1, "2024-01-01T01:00:00Z").raw,
        r#"{"timestamp":"2024-01-01T02:00:00Z","category":"authentication","action":"x"}"#,
        r#"{"id":3,"timestamp":"not a time","category":"authentication","action":"x"}"#,
        r#"{"id":4,"timestamp":"2024-01-01T03:00:00Z","category":"authentication","action":"user-login-failure","ipAddress":"2001:db8::7","description":"ÄÖÜ","surprise":{"new":"field"}}"#,
        r#"{"id":5,"timestamp":"2025-06-01T00:00:00Z","category":"billing","action":"bill-run-closed"}"#,
    );
    server.mock(|when, then| {
        when.method(GET).path("/v1/events").query_param("page", "1");
        then.status(200).body(&body);
    });
    server.mock(|when, then| {
        when.method(GET).path("/v1/events").query_param("page", "2");
        then.status(200).body("[]");
    });
    let (sb, run) = sync_one_window(&server, "1000", &["--json"]);
    run.expect(3);
    assert!(
        run.stderr.contains("3 item(s) could not be archived"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.ids(), vec![1, 4, 5]);
    let reasons: Vec<String> = {
        let conn = sb.conn();
        let mut stmt = conn
            .prepare("SELECT reason FROM rejects ORDER BY reason")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        reasons,
        [
            "no id",
            "not a JSON object (it is a number)",
            "unparseable timestamp: \"not a time\""
        ]
    );
    let raw: String = sb
        .conn()
        .query_row("SELECT raw FROM events WHERE id = 4", [], |r| r.get(0))
        .unwrap();
    assert!(raw.contains(r#""surprise":{"new":"field"}"#) && raw.contains("2001:db8::7"));
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["status"], "partial");
    assert_eq!(
        summary["out_of_window"], 1,
        "event 5 lies outside the window, kept and reported"
    );
    assert_eq!(
        sb.count("SELECT count(*) FROM runs WHERE status = 'partial'"),
        1
    );
}

#[test]
fn changed_events_are_kept_as_revisions_and_identical_copies_ignored() {
    let server = MockServer::start();
    let data = dataset(vec![
        ev(1, "2024-01-01T01:00:00Z"),
        ev(2, "2024-01-01T02:00:00Z"),
    ]);
    serve_dataset(&server, data.clone(), Reading::Inclusive, Seen::default());
    let sb = Sandbox::new();
    let args = [
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--refetch",
    ];
    sb.run(&args).expect(0);
    sb.run(&args).expect(0);
    assert_eq!(
        sb.count("SELECT count(*) FROM event_revisions"),
        0,
        "identical copies are ignored"
    );
    let edited = data.lock().unwrap()[1]
        .raw
        .replace("has logged in", "has logged in (edited)");
    data.lock().unwrap()[1].raw = edited.clone();
    let run = sb.run(&[&args[..], &["--json"]].concat());
    run.expect(0);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["revisions"], 1);
    sb.run(&args).expect(0);
    assert_eq!(
        sb.count("SELECT count(*) FROM event_revisions"),
        1,
        "the same revision is kept once"
    );
    let (first, revision): (String, String) = sb
        .conn()
        .query_row(
            "SELECT e.raw, r.raw FROM events e JOIN event_revisions r ON r.event_id = e.id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        first.ends_with("has logged in\",\"username\":\"u2\",\"ipAddress\":\"10.0.0.2\"}"),
        "{first}"
    );
    assert_eq!(revision, edited);
}

#[test]
fn re_runs_are_idempotent_and_complete_windows_are_not_fetched_again() {
    let server = MockServer::start();
    let events: Vec<Ev> = (1..=50)
        .map(|i| ev(i, &format!("2024-01-0{}T{:02}:00:00Z", 1 + i % 3, i % 24)))
        .collect();
    let seen: Seen = Arc::default();
    serve_dataset(&server, dataset(events), Reading::Inclusive, seen.clone());
    let sb = Sandbox::new();
    let args = [
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-04",
        "--page-size",
        "7",
    ];
    sb.run(&args).expect(0);
    let requests = seen.lock().unwrap().len();
    assert_eq!(sb.ids(), (1..=50).collect::<Vec<_>>());
    let again = sb.run(&args);
    again.expect(0);
    assert!(
        again.stdout.contains("nothing to fetch"),
        "{}",
        again.stdout
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        requests,
        "complete windows are not fetched again"
    );
    let refetch = sb.run(&[&args[..], &["--refetch", "--json"]].concat());
    refetch.expect(0);
    let summary: serde_json::Value = serde_json::from_str(refetch.stdout.trim()).unwrap();
    assert_eq!(summary["events_new"], 0);
    assert_eq!(summary["events_unchanged"], 50);
    assert_eq!(sb.ids(), (1..=50).collect::<Vec<_>>());
}

#[test]
fn a_continuing_sync_starts_at_the_coverage_end_minus_the_lookback() {
    let server = MockServer::start();
    let seen: Seen = Arc::default();
    serve_dataset(
        &server,
        dataset(vec![ev(1, "2024-02-29T10:00:00Z")]),
        Reading::Inclusive,
        seen.clone(),
    );
    let sb = Sandbox::new();
    sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-02-28",
        "--to",
        "2024-02-29T12:00:00Z",
    ])
    .expect(0);
    seen.lock().unwrap().clear();
    // Now is 2024-03-01T00:00:00Z (pinned); the default lag is 2 minutes and the lookback 1 hour.
    sb.run(&["sync", "--base-url", &base(&server), "--lookback", "1h"])
        .expect(0);
    let mut bounds: Vec<(String, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, f, t)| (f.clone(), t.clone()))
        .collect();
    // The one window's pages (asked for ahead, several may be) share its bounds.
    bounds.dedup();
    // Covered until 12:00; re-read from 11:00 (one second earlier for the boundary) up to now minus 2 minutes.
    assert_eq!(
        bounds,
        [(
            "2024-02-29T10:59:59Z".to_string(),
            "2024-02-29T23:58:00Z".to_string()
        )]
    );
}

#[test]
fn an_empty_archive_without_from_says_what_to_pass() {
    let sb = Sandbox::new();
    let run = sb.run(&["sync"]);
    run.expect(2);
    assert!(run.stderr.contains("pass --from"), "{}", run.stderr);
    assert!(
        !sb.db.exists(),
        "no archive is created for a run that cannot start"
    );
}

#[test]
fn a_second_sync_on_the_same_archive_is_refused_at_once() {
    let server = MockServer::start();
    serve_dataset(
        &server,
        dataset(vec![ev(1, "2024-01-01T01:00:00Z")]),
        Reading::Inclusive,
        Seen::default(),
    );
    let sb = Sandbox::new();
    let args = [
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
    ];
    sb.run(&args).expect(0);
    let holder = std::fs::File::open(&sb.db).unwrap();
    holder.lock().unwrap();
    // The lock is held until the end of the test: a run that waited for it would never end (the hang guard).
    let run = sb.run(&[&args[..], &["--refetch"]].concat());
    run.expect(6);
    assert!(
        run.stderr.contains("another sync is already running"),
        "{}",
        run.stderr
    );
    drop(holder);
    assert_eq!(sb.ids(), vec![1]);
    assert_eq!(
        sb.count("SELECT count(*) FROM runs"),
        1,
        "the refused run recorded nothing"
    );
}

#[test]
fn query_can_never_change_the_archive() {
    let server = MockServer::start();
    serve_dataset(
        &server,
        dataset(vec![ev(1, "2024-01-01T01:00:00Z")]),
        Reading::Inclusive,
        Seen::default(),
    );
    let sb = Sandbox::new();
    sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
    ])
    .expect(0);
    let before = std::fs::read(&sb.db).unwrap();
    for sql in [
        "DELETE FROM events",
        "UPDATE events SET action = 'x'",
        "INSERT INTO rejects (raw, reason, window_id, page, received_at) VALUES ('a', 'b', 1, 1, 'c')",
        "DROP TABLE events",
        "CREATE TABLE t (x)",
        "PRAGMA journal_mode = DELETE",
        "ATTACH DATABASE 'other.db' AS other",
        "VACUUM",
        "SELECT 1; DELETE FROM events",
    ] {
        let run = sb.run(&["query", sql]);
        assert_ne!(run.code, 0, "{sql} was accepted: {}", run.stdout);
        assert!(run.stderr.contains("query failed"), "{sql}: {}", run.stderr);
    }
    assert_eq!(sb.ids(), vec![1]);
    assert_eq!(
        std::fs::read(&sb.db).unwrap(),
        before,
        "the file is byte-for-byte unchanged"
    );
    assert!(!sb.dir.path().join("other.db").exists());
}

#[test]
fn max_rps_caps_the_request_rate() {
    let server = MockServer::start();
    let seen: Seen = Arc::default();
    serve_dataset(&server, dataset(vec![]), Reading::Inclusive, seen.clone());
    let sb = Sandbox::new();
    let started = Instant::now();
    // Twelve one-hour windows, each one request; at most 4 requests per second after the first burst of 4.
    let run = sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-01T12:00:00Z",
        "--window",
        "1h",
        "--max-rps",
        "4",
        "--concurrency",
        "8",
    ]);
    run.expect(0);
    assert_eq!(seen.lock().unwrap().len(), 12);
    assert!(
        started.elapsed() >= Duration::from_millis(1_900),
        "12 requests at 4/s took only {:?}",
        started.elapsed()
    );
}

#[test]
fn no_progress_bar_or_noise_on_stderr_without_a_terminal() {
    let server = MockServer::start();
    serve_dataset(
        &server,
        dataset(vec![ev(1, "2024-01-01T01:00:00Z")]),
        Reading::Inclusive,
        Seen::default(),
    );
    let sb = Sandbox::new();
    let run = sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-03",
    ]);
    run.expect(0);
    assert_eq!(
        run.stderr, "",
        "stderr of a clean run without a terminal is empty"
    );
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "one summary line: {}",
        run.stdout
    );
    let quiet = sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-03",
        "--refetch",
        "--quiet",
    ]);
    quiet.expect(0);
    assert_eq!((quiet.stdout.as_str(), quiet.stderr.as_str()), ("", ""));
}
