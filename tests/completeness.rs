//! No silent loss: servers the API reference does not rule out (pages capped below `pageSize`, a window that
//! keeps failing, a passing 404, offsets written `+0000`) and what the archive, `status` and `verify` then say.
//! Each test is named after the failure it pins.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Sandbox, authorized, base, json_response, query_param};
use httpmock::{HttpMockRequest, MockServer};
use std::sync::{Arc, Mutex};

/// How the test server misbehaves; tests change it between runs.
#[derive(Default)]
struct Knobs {
    /// Serve at most this many items per page, whatever `pageSize` says.
    cap: Option<usize>,
    /// Answer 500 to every request whose window starts at this `createdFrom`.
    failing_from: Option<String>,
    /// Answer 404 this many times to the first request for page 2 of any window.
    not_found_on_page_2: usize,
    /// Refuse this page of the window whose request starts at this `createdFrom` with this status.
    refuse: Option<(String, usize, u16)>,
    /// After serving this page (asked with more than one item per page), delete this event at the source.
    delete_after_page: Option<(usize, i64)>,
    /// Requests seen: (page, createdFrom).
    seen: Vec<(usize, String)>,
}

/// One event: id, instant, and the timestamp text the server writes.
#[derive(Clone)]
struct Item {
    id: i64,
    at: DateTime<Utc>,
    raw: String,
}

fn item(id: i64, at: DateTime<Utc>, timestamp: &str) -> Item {
    Item {
        id,
        at,
        raw: format!(
            r#"{{"id":{id},"timestamp":"{timestamp}","category":"authentication","action":"user-login-success","username":"u{}"}}"#,
            id % 13
        ),
    }
}

/// `n` events spread over `[from, from + days)`, timestamps in `Z` form.
fn spread(n: i64, from: &str, days: i64) -> Vec<Item> {
    let start = DateTime::parse_from_rfc3339(from)
        .unwrap()
        .with_timezone(&Utc);
    let step = days * 86_400_000 / n;
    (0..n)
        .map(|i| {
            let at = start + TimeDelta::milliseconds(i * step);
            item(
                1000 + i * 3,
                at,
                &at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
        })
        .collect()
}

/// A mock Events API over `data`, inclusive bounds, sorted by id, misbehaving as `knobs` say.
fn serve(server: &MockServer, data: Vec<Item>, knobs: Arc<Mutex<Knobs>>) {
    serve_shared(server, Arc::new(Mutex::new(data)), knobs);
}

/// [`serve`] over data the test may change between runs.
fn serve_shared(server: &MockServer, data: Arc<Mutex<Vec<Item>>>, knobs: Arc<Mutex<Knobs>>) {
    server.mock(|when, then| {
        when.method("GET").path("/v1/events");
        then.respond_with(move |req: &HttpMockRequest| {
            if !authorized(req) {
                return json_response(401, r#"{"error":"Unauthorized","message":"bad token"}"#);
            }
            let q = |name: &str| query_param(req, name).unwrap();
            let page: usize = q("page").parse().unwrap();
            let size: usize = q("pageSize").parse().unwrap();
            let (from_text, to_text) = (q("createdFrom"), q("createdTo"));
            let mut k = knobs.lock().unwrap();
            k.seen.push((page, from_text.clone()));
            if k.failing_from.as_deref() == Some(from_text.as_str()) {
                return json_response(500, r#"{"error":"Internal","message":"boom"}"#);
            }
            if let Some((from, refused, status)) = &k.refuse
                && *from == from_text
                && *refused == page
            {
                let body = r#"{"error":"Bad Request","message":"page too deep"}"#;
                return json_response(*status, body);
            }
            if page == 2 && k.not_found_on_page_2 > 0 {
                k.not_found_on_page_2 -= 1;
                return json_response(404, r#"{"error":"Not Found","message":"try again"}"#);
            }
            let parse = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
            let (from, to) = (parse(&from_text), parse(&to_text));
            // `action=like:prefix%` or `action=value`, compared case-sensitively, as a server may.
            let action = query_param(req, "action");
            let matches = |e: &Item| match action.as_deref() {
                None => true,
                Some(f) => match f.strip_prefix("like:") {
                    Some(p) => e
                        .raw
                        .contains(&format!("\"action\":\"{}", p.trim_end_matches('%'))),
                    None => e.raw.contains(&format!("\"action\":\"{f}\"")),
                },
            };
            let mut data = data.lock().unwrap();
            let mut hits: Vec<&Item> = data
                .iter()
                .filter(|e| e.at >= from && e.at <= to && matches(e))
                .collect();
            hits.sort_by_key(|e| e.id);
            let served = k.cap.map_or(size, |c| c.min(size));
            let body: Vec<&str> = hits
                .iter()
                .skip((page - 1) * served)
                .take(served)
                .map(|e| e.raw.as_str())
                .collect();
            let response = json_response(200, &format!("[{}]", body.join(",")));
            if let Some((after, id)) = k.delete_after_page
                && after == page
                && size > 1
            {
                data.retain(|e| e.id != id);
                k.delete_after_page = None;
            }
            response
        });
    });
}

fn archived_ids(sb: &Sandbox) -> Vec<i64> {
    sb.ids()
}

fn ids_of(data: &[Item]) -> Vec<i64> {
    let mut ids: Vec<i64> = data.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_server_that_caps_its_pages_loses_nothing() {
    let server = MockServer::start();
    let data = spread(6_000, "2024-01-01T00:00:00Z", 1);
    let knobs = Arc::new(Mutex::new(Knobs {
        cap: Some(250),
        ..Knobs::default()
    }));
    serve(&server, data.clone(), knobs.clone());
    let sb = Sandbox::new();
    let run = sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--json",
        // One page at a time, so that the requests counted are exactly those paging needs (with more, pages
        // past the end may be asked for ahead).
        "--concurrency",
        "1",
    ]);
    run.expect(0);
    assert_eq!(
        archived_ids(&sb),
        ids_of(&data),
        "all 6,000, not the first 250"
    );
    assert_eq!(
        run.stderr.matches("served 250 items").count(),
        1,
        "warned once: {}",
        run.stderr
    );
    assert_eq!(json(&run.stdout)["served_fewer"], 250);
    assert_eq!(
        sb.count("SELECT served_fewer FROM runs"),
        250,
        "recorded on the run"
    );
    // 24 pages of 250 and the empty page that confirms the end.
    assert_eq!(knobs.lock().unwrap().seen.len(), 25);
}

#[test]
fn a_short_last_page_is_confirmed_by_an_empty_one() {
    let server = MockServer::start();
    let data = spread(30, "2024-01-01T00:00:00Z", 1);
    let knobs = Arc::new(Mutex::new(Knobs::default()));
    serve(&server, data.clone(), knobs.clone());
    let sb = Sandbox::new();
    sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--page-size",
        "20",
        // One page at a time, so that the pages asked for are exactly those paging needs.
        "--concurrency",
        "1",
    ])
    .expect(0);
    assert_eq!(archived_ids(&sb), ids_of(&data));
    let pages: Vec<usize> = knobs.lock().unwrap().seen.iter().map(|s| s.0).collect();
    assert_eq!(
        pages,
        vec![1, 2, 3],
        "page 2 is short (10 of 20): page 3 confirms the end"
    );
    assert_eq!(
        sb.count("SELECT count(*) FROM runs WHERE served_fewer IS NULL"),
        1
    );
}

#[test]
fn a_gateways_passing_404_after_a_full_page_does_not_cut_the_window() {
    let server = MockServer::start();
    let data = spread(30, "2024-01-01T00:00:00Z", 1);
    let knobs = Arc::new(Mutex::new(Knobs {
        not_found_on_page_2: 1,
        ..Knobs::default()
    }));
    serve(&server, data.clone(), knobs.clone());
    let sb = Sandbox::new();
    sb.run(&[
        "sync",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--page-size",
        "10",
    ])
    .expect(0);
    assert_eq!(
        archived_ids(&sb),
        ids_of(&data),
        "the 404 on page 2 was asked again"
    );
}

/// A sync of `2024-01-01 .. 2024-01-05` in day windows, 4 at once, whose second day always fails.
fn four_days_with_a_failing_second() -> (MockServer, Vec<Item>, Arc<Mutex<Knobs>>) {
    let server = MockServer::start();
    let data = spread(400, "2024-01-01T00:00:00Z", 4);
    let knobs = Arc::new(Mutex::new(Knobs {
        failing_from: Some("2024-01-01T23:59:59Z".into()),
        ..Knobs::default()
    }));
    serve(&server, data.clone(), knobs.clone());
    (server, data, knobs)
}

const FAST_RETRIES: [&str; 4] = ["--max-attempts", "2", "--retry-delay", "1ms"];

#[test]
fn one_failing_window_does_not_stop_the_others_and_a_plain_sync_fills_it() {
    let (server, data, knobs) = four_days_with_a_failing_second();
    let sb = Sandbox::new();
    let base = base(&server);
    let mut args = vec![
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-05",
        "--concurrency",
        "4",
        "--json",
    ];
    args.extend(FAST_RETRIES);
    let run = sb.run(&args);
    run.expect(9);
    let report = json(&run.stdout);
    assert_eq!(report["status"], "partial");
    assert_eq!(
        report["windows_completed"], 3,
        "the other three windows completed"
    );
    let failed = report["failed_windows"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["from"], "2024-01-02T00:00:00.000Z");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("gave up"),
        "{failed:?}"
    );
    assert!(run.stderr.contains("1 window(s) failed"), "{}", run.stderr);
    // Day 2's events are missing, but for the one exactly at its start, which day 1's window also asked for
    // (`createdTo` read inclusively).
    let day2: Vec<i64> = ids_of(&data[101..200]);
    let held = archived_ids(&sb);
    assert!(day2.iter().all(|id| !held.contains(id)));
    assert_eq!(held.len(), 301);

    // status names what is missing and why; verify is incomplete (exit 9), not tampered (exit 7).
    let status = json(&sb.run(&["status", "--format", "json"]).expect(0).stdout);
    assert_eq!(status["incomplete_windows"], 1);
    assert!(
        status["failed_windows"][0]["error"]
            .as_str()
            .unwrap()
            .contains("gave up")
    );
    assert_eq!(status["missing"][0]["from"], "2024-01-02T00:00:00.000Z");
    assert_eq!(status["missing"][0]["to"], "2024-01-03T00:00:00.000Z");
    let verify = sb.run(&["verify"]);
    verify.expect(9);
    assert!(
        verify
            .stdout
            .contains("not yet fetched  2024-01-02T00:00:00.000Z .. 2024-01-03T00:00:00.000Z"),
        "{}",
        verify.stdout
    );

    // The server heals; a plain sync fetches the failed day, and only then is verify green.
    knobs.lock().unwrap().failing_from = None;
    let mut plain = vec!["sync", "--base-url", &base];
    plain.extend(FAST_RETRIES);
    sb.run(&plain).expect(0);
    assert_eq!(archived_ids(&sb), ids_of(&data));
    sb.run(&["verify"]).expect(0);
    let status = json(&sb.run(&["status", "--format", "json"]).expect(0).stdout);
    assert_eq!(status["incomplete_windows"], 0);
    assert_eq!(status["missing"], serde_json::json!([]));
}

#[test]
fn a_window_that_fails_before_its_first_page_leaves_a_trace_and_is_fetched_by_a_plain_sync() {
    // Sync from D2 works; a sync of D1 fails on D1; a plain sync must still fetch D1, which lies before the
    // first covered window.
    let (server, data, knobs) = four_days_with_a_failing_second();
    let sb = Sandbox::new();
    let base = base(&server);
    let mut later = vec![
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-03",
        "--to",
        "2024-01-05",
    ];
    later.extend(FAST_RETRIES);
    sb.run(&later).expect(0);
    let mut earlier = vec![
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-03",
    ];
    earlier.extend(FAST_RETRIES);
    let run = sb.run(&earlier);
    run.expect(4);
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'failed' AND pages = 0"),
        1,
        "the failure left a ledger row"
    );
    let status = json(&sb.run(&["status", "--format", "json"]).expect(0).stdout);
    assert_eq!(status["incomplete_windows"], 1);
    assert_eq!(status["missing"][0]["from"], "2024-01-02T00:00:00.000Z");
    sb.run(&["verify"]).expect(9);

    knobs.lock().unwrap().failing_from = None;
    let mut plain = vec!["sync", "--base-url", &base];
    plain.extend(FAST_RETRIES);
    sb.run(&plain).expect(0);
    assert_eq!(
        archived_ids(&sb),
        ids_of(&data[100..]),
        "D2 onwards, D2 included"
    );
    sb.run(&["verify"]).expect(0);
}

#[test]
fn windows_synced_against_another_base_url_are_not_coverage_for_this_one() {
    let (sandbox_server, _, sandbox_knobs) = four_days_with_a_failing_second();
    sandbox_knobs.lock().unwrap().failing_from = None;
    let (prod_server, prod_data, prod_knobs) = four_days_with_a_failing_second();
    prod_knobs.lock().unwrap().failing_from = None;
    let sb = Sandbox::new();
    let range = ["--from", "2024-01-01", "--to", "2024-01-05"];
    let sandbox = base(&sandbox_server);
    let mut first = vec!["sync", "--base-url", &sandbox];
    first.extend(range);
    sb.run(&first).expect(0);
    let prod = base(&prod_server);
    let mut second = vec!["sync", "--base-url", &prod];
    second.extend(range);
    sb.run(&second).expect(0);
    let prod_requests = prod_knobs.lock().unwrap().seen.len();
    assert!(
        prod_requests >= 4,
        "production was read, not skipped as covered ({prod_requests} requests)"
    );
    assert_eq!(archived_ids(&sb), ids_of(&prod_data));
}

#[test]
fn offsets_as_java_dotnet_go_and_python_write_them_are_archived_not_rejected() {
    let server = MockServer::start();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let data = vec![
        item(1, at("2024-01-01T10:00:00Z"), "2024-01-01T10:00:00+0000"),
        item(2, at("2024-01-01T10:00:01Z"), "2024-01-01T15:30:01+0530"),
        item(3, at("2024-01-01T10:00:02Z"), "2024-01-01T15:30:02.5+05:30"),
        item(
            4,
            at("2024-01-01T10:00:03Z"),
            "2024-01-01T10:00:03.123456789-0000",
        ),
        item(5, at("2024-01-01T10:00:04Z"), "2024-01-01T05:00:04-05"),
    ];
    serve(&server, data, Arc::new(Mutex::new(Knobs::default())));
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
    assert_eq!(sb.count("SELECT count(*) FROM rejects"), 0);
    let stored: Vec<String> = sb
        .conn()
        .prepare("SELECT timestamp FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        stored,
        [
            "2024-01-01T10:00:00.000Z",
            "2024-01-01T10:00:01.000Z",
            "2024-01-01T10:00:02.500Z",
            "2024-01-01T10:00:03.123Z",
            "2024-01-01T10:00:04.000Z",
        ]
    );
}

#[test]
fn the_overlap_second_never_brings_pruned_events_back() {
    let server = MockServer::start();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let data = vec![
        item(1, at("2024-01-01T10:00:00Z"), "2024-01-01T10:00:00Z"),
        // In the last second of day 1: day 2's window asks from 23:59:59 and gets it too.
        item(
            2,
            at("2024-01-01T23:59:59.500Z"),
            "2024-01-01T23:59:59.500Z",
        ),
        item(3, at("2024-01-02T10:00:00Z"), "2024-01-02T10:00:00Z"),
    ];
    serve(&server, data, Arc::new(Mutex::new(Knobs::default())));
    let sb = Sandbox::new();
    let base = base(&server);
    let range = ["--from", "2024-01-01", "--to", "2024-01-03"];
    // One window at a time, so day 1's window files event 2 (the prune takes what day 1's fetch filed).
    let mut sync = vec!["sync", "--base-url", &base, "--concurrency", "1"];
    sync.extend(range);
    sb.run(&sync).expect(0);
    sb.run(&["prune", "--before", "2024-01-02"]).expect(0);
    assert_eq!(archived_ids(&sb), vec![3]);

    let mut refetch = sync.clone();
    refetch.extend(["--refetch", "--json"]);
    let run = sb.run(&refetch);
    run.expect(0);
    assert_eq!(archived_ids(&sb), vec![3], "the pruned event stays pruned");
    assert_eq!(json(&run.stdout)["pruned_skipped"], 1);

    let mut reconcile = vec!["reconcile", "--base-url", &base];
    reconcile.extend(range);
    let run = sb.run(&reconcile);
    run.expect(0);
    assert!(run.stdout.contains("the source agrees"), "{}", run.stdout);
    sb.run(&["verify"]).expect(0);
}

#[test]
fn reconcile_records_a_deletion_only_when_the_source_confirms_it() {
    let server = MockServer::start();
    let data = Arc::new(Mutex::new(spread(40, "2024-01-01T00:00:00Z", 2)));
    serve_shared(
        &server,
        data.clone(),
        Arc::new(Mutex::new(Knobs::default())),
    );
    let sb = Sandbox::new();
    let base = base(&server);
    let range = ["--from", "2024-01-01", "--to", "2024-01-03"];
    let mut sync = vec!["sync", "--base-url", &base];
    sync.extend(range);
    sb.run(&sync).expect(0);

    // The archive's filter (SQLite's LIKE ignores case) matches every event; this server's matches none.
    // Nothing was deleted: the unfiltered read of each instant finds every event.
    let mut filtered = vec![
        "reconcile",
        "--base-url",
        &base,
        "--action",
        "like:USER-LOGIN-%",
        "--json",
    ];
    filtered.extend(range);
    let run = sb.run(&filtered);
    run.expect(0);
    assert_eq!(json(&run.stdout)["deleted"], 0, "{}", run.stdout);
    assert_eq!(sb.count("SELECT count(*) FROM source_changes"), 0);

    // A real deletion is still found and recorded, once.
    let gone = data.lock().unwrap().remove(7).id;
    let mut plain = vec!["reconcile", "--base-url", &base, "--json"];
    plain.extend(range);
    let run = sb.run(&plain);
    run.expect(8);
    let report = json(&run.stdout);
    assert_eq!(report["deleted"], 1);
    assert_eq!(report["ids"]["deleted"], serde_json::json!([gone]));
    assert_eq!(
        sb.count(&format!(
            "SELECT count(*) FROM source_changes WHERE kind = 'deleted' AND event_id = {gone}"
        )),
        1
    );
    assert!(archived_ids(&sb).contains(&gone), "kept in the archive");
}

#[test]
fn a_deletion_at_the_source_while_a_window_is_paged_is_caught_with_check_paging() {
    // 30 events, pages of 10. After page 1 is served, an event of page 1 is deleted at the source: page 2
    // then starts one event later, and the event that moved back onto page 1 is never served.
    let run_with = |check: bool| {
        let server = MockServer::start();
        let data = spread(30, "2024-01-01T00:00:00Z", 1);
        let knobs = Arc::new(Mutex::new(Knobs {
            delete_after_page: Some((1, data[3].id)),
            ..Knobs::default()
        }));
        serve(&server, data.clone(), knobs);
        let sb = Sandbox::new();
        let mut args = vec![
            "sync".to_string(),
            "--base-url".into(),
            base(&server),
            "--from".into(),
            "2024-01-01".into(),
            "--to".into(),
            "2024-01-02".into(),
            "--page-size".into(),
            "10".into(),
            "--json".into(),
            // One page at a time: page 2 is then served after the deletion that follows page 1 (pages asked
            // for ahead may be served before it, and skip nothing; tests/paging.rs covers that).
            "--concurrency".into(),
            "1".into(),
        ];
        if check {
            args.push("--check-paging".into());
        }
        let run = sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        run.expect(0);
        (archived_ids(&sb), json(&run.stdout), data)
    };
    let (held, _, data) = run_with(false);
    let skipped = data[10].id;
    assert!(
        !held.contains(&skipped),
        "without the check, the shifted event is skipped (what reconcile catches)"
    );
    let (held, report, data) = run_with(true);
    assert_eq!(
        held,
        ids_of(&data),
        "with the check, nothing is skipped (the deleted event stays archived)"
    );
    assert_eq!(report["paging_shifts"], 1);
}

/// Day windows over four days with an event exactly at each day's start (a server reading `createdTo`
/// inclusively returns it with the day before too), synced one window at a time.
fn boundary_days(sb: &Sandbox) -> (MockServer, String) {
    let server = MockServer::start();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let mut data = Vec::new();
    for (i, day) in ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
        .iter()
        .enumerate()
    {
        let start = format!("{day}T00:00:00Z");
        let noon = format!("{day}T12:00:00Z");
        data.push(item(10 * i as i64 + 1, at(&start), &start));
        data.push(item(10 * i as i64 + 2, at(&noon), &noon));
    }
    serve(&server, data, Arc::new(Mutex::new(Knobs::default())));
    let base = base(&server);
    sb.run(&[
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-05",
        "--concurrency",
        "1",
    ])
    .expect(0);
    (server, base)
}

#[test]
fn pruning_a_failed_window_leaves_nothing_to_fetch_and_verify_green() {
    let (server, _, knobs) = four_days_with_a_failing_second();
    let sb = Sandbox::new();
    let base = base(&server);
    let mut args = vec![
        "sync",
        "--base-url",
        &base,
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-05",
    ];
    args.extend(FAST_RETRIES);
    sb.run(&args).expect(9);
    sb.run(&["verify"]).expect(9);
    // The failed day is pruned: a gap that will never be filled, on purpose, is neither missing nor a fault.
    sb.run(&["prune", "--before", "2024-01-03"]).expect(0);
    sb.run(&["verify"]).expect(0);
    let status = json(&sb.run(&["status", "--format", "json"]).expect(0).stdout);
    assert_eq!(status["missing"], serde_json::json!([]));
    {
        let mut k = knobs.lock().unwrap();
        k.failing_from = None;
        k.seen.clear();
    }
    let mut plain = vec!["sync", "--base-url", &base];
    plain.extend(FAST_RETRIES);
    sb.run(&plain).expect(0);
    assert!(
        knobs
            .lock()
            .unwrap()
            .seen
            .iter()
            .all(|(_, from)| from != "2024-01-01T23:59:59Z"),
        "the pruned day is never fetched again"
    );
}

#[test]
fn two_prunes_around_a_hold_keep_verify_green() {
    let sb = Sandbox::new();
    let _server = boundary_days(&sb);
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
    sb.run(&["prune", "--before", "2024-01-02"]).expect(0);
    sb.run(&["verify"]).expect(0);
    sb.run(&["prune", "--before", "2024-01-04"]).expect(0);
    sb.run(&["verify"]).expect(0);
    let held: Vec<i64> = archived_ids(&sb);
    assert!(
        held.contains(&11) && held.contains(&12),
        "the held day stays: {held:?}"
    );
    sb.run(&["hold", "remove", "1"]).expect(0);
    sb.run(&["prune", "--before", "2024-01-04"]).expect(0);
    sb.run(&["verify"]).expect(0);
    assert_eq!(archived_ids(&sb), vec![31, 32], "only the last day is left");
}

#[test]
fn a_prune_keeps_the_revisions_of_the_events_it_keeps() {
    let server = MockServer::start();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let data = Arc::new(Mutex::new(vec![
        item(1, at("2024-01-01T10:00:00Z"), "2024-01-01T10:00:00Z"),
        // Exactly on day 1's end: a server reading `createdTo` inclusively returns it with day 1.
        item(2, at("2024-01-02T00:00:00Z"), "2024-01-02T00:00:00Z"),
        item(3, at("2024-01-02T10:00:00Z"), "2024-01-02T10:00:00Z"),
    ]));
    serve_shared(
        &server,
        data.clone(),
        Arc::new(Mutex::new(Knobs::default())),
    );
    let sb = Sandbox::new();
    let base = base(&server);
    let sync = |from: &str, to: &str, refetch: bool| {
        let mut args = vec!["sync", "--base-url", &base, "--from", from, "--to", to];
        args.extend(["--concurrency", "1"]);
        if refetch {
            args.push("--refetch");
        }
        sb.run(&args).expect(0);
    };
    sync("2024-01-01", "2024-01-03", false);
    // Event 2 changes at the source; reading day 1 again files the new version under day 1's second fetch.
    {
        let mut data = data.lock().unwrap();
        data[1].raw = data[1].raw.replace("\"u2\"", "\"u2-renamed\"");
    }
    sync("2024-01-01", "2024-01-02", true);
    assert_eq!(
        sb.count("SELECT count(*) FROM event_revisions WHERE event_id = 2"),
        1
    );
    sb.run(&[
        "hold",
        "add",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-03",
        "--reason",
        "case 9",
    ])
    .expect(0);

    sb.run(&["prune", "--before", "2024-01-02"]).expect(0);
    assert_eq!(archived_ids(&sb), vec![2, 3], "the held events stay");
    assert_eq!(
        sb.count("SELECT count(*) FROM event_revisions WHERE event_id = 2"),
        1,
        "a kept event keeps its revision, whichever window fetch filed it"
    );
    sb.run(&["verify"]).expect(0);
    // What the prune left of day 1's second fetch, the revision, is vouched for by the prune's record.
    let db = common::tampered_copy(
        &sb,
        "edited",
        "UPDATE event_revisions SET fetched_at = '2030-01-01T00:00:00.000Z'",
    );
    let (run, report) = common::verify_json(&sb, &db, None);
    run.expect(7);
    let found = common::detailed_findings(&report);
    assert!(
        found
            .iter()
            .any(|(_, _, ids, detail)| ids == &vec![2] && detail.contains("fetched_at")),
        "{found:?}"
    );

    // With the hold lifted, the revision goes with its event.
    sb.run(&["hold", "remove", "1"]).expect(0);
    sb.run(&["prune", "--before", "2024-01-03"]).expect(0);
    assert_eq!(archived_ids(&sb), Vec::<i64>::new());
    assert_eq!(sb.count("SELECT count(*) FROM event_revisions"), 0);
    sb.run(&["verify"]).expect(0);
}

#[test]
fn a_prune_removes_events_of_its_range_that_a_kept_window_filed() {
    let server = MockServer::start();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let data = vec![
        item(1, at("2024-01-01T10:00:00Z"), "2024-01-01T10:00:00Z"),
        // In day 1's last second: day 2's window asks from 23:59:59 and files it when day 2 is synced first.
        item(
            2,
            at("2024-01-01T23:59:59.500Z"),
            "2024-01-01T23:59:59.500Z",
        ),
        item(3, at("2024-01-02T10:00:00Z"), "2024-01-02T10:00:00Z"),
    ];
    serve(&server, data, Arc::new(Mutex::new(Knobs::default())));
    let sb = Sandbox::new();
    let base = base(&server);
    for (from, to) in [("2024-01-02", "2024-01-03"), ("2024-01-01", "2024-01-02")] {
        sb.run(&["sync", "--base-url", &base, "--from", from, "--to", to])
            .expect(0);
    }
    assert_eq!(archived_ids(&sb), vec![1, 2, 3]);
    let day2 = "(SELECT id FROM windows WHERE window_start = '2024-01-02T00:00:00.000Z')";
    assert_eq!(
        sb.count(&format!(
            "SELECT window_id = {day2} FROM events WHERE id = 2"
        )),
        1,
        "day 2's fetch filed the event of day 1"
    );

    let run = sb.run(&["prune", "--before", "2024-01-02", "--format", "json"]);
    run.expect(0);
    assert_eq!(json(&run.stdout)["events"], 2);
    assert_eq!(
        archived_ids(&sb),
        vec![3],
        "every event of the pruned day is gone"
    );
    sb.run(&["verify"]).expect(0);
    // Day 2's fetch lost an event to the prune; what is left of it is what the prune recorded.
    let db = common::tampered_copy(
        &sb,
        "edited",
        "UPDATE events SET fetched_at = '2030-01-01T00:00:00.000Z' WHERE id = 3",
    );
    let (run, report) = common::verify_json(&sb, &db, None);
    run.expect(7);
    let found = common::detailed_findings(&report);
    assert!(
        found
            .iter()
            .any(|(_, _, ids, detail)| ids == &vec![3] && detail.contains("fetched_at")),
        "{found:?}"
    );
}

#[test]
fn a_page_refused_past_the_first_fails_only_its_window() {
    for status in [400, 422] {
        let server = MockServer::start();
        let data = spread(400, "2024-01-01T00:00:00Z", 4);
        let knobs = Arc::new(Mutex::new(Knobs {
            refuse: Some(("2024-01-01T23:59:59Z".into(), 2, status)),
            ..Knobs::default()
        }));
        serve(&server, data.clone(), knobs.clone());
        let sb = Sandbox::new();
        let base = base(&server);
        let mut args = vec!["sync", "--base-url", &base, "--from", "2024-01-01"];
        args.extend(["--to", "2024-01-05", "--page-size", "40", "--json"]);
        let run = sb.run(&args);
        run.expect(9);
        let report = json(&run.stdout);
        assert_eq!(
            report["windows_completed"], 3,
            "{status}: the others complete"
        );
        let failed = report["failed_windows"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{status}");
        assert_eq!(failed[0]["from"], "2024-01-02T00:00:00.000Z");
        let error = failed[0]["error"].as_str().unwrap();
        assert!(
            error.contains("refused page 2") && error.contains(&format!("HTTP {status}")),
            "{error}"
        );
        // Page 1 of the refused window is committed; the rest of it is missing until a plain sync.
        sb.run(&["verify"]).expect(9);

        knobs.lock().unwrap().refuse = None;
        sb.run(&["sync", "--base-url", &base]).expect(0);
        assert_eq!(archived_ids(&sb), ids_of(&data), "{status}");
        sb.run(&["verify"]).expect(0);
    }
}
