//! Adversarial review of the retention, integrity and completeness promises: prune sequences around holds,
//! refetches and reconciles; tampering after such prunes; hostile servers. A test marked `#[ignore =
//! "breaks: ..."]` pins a promise that does not hold today.

mod common;

use chrono::{DateTime, Utc};
use common::{Sandbox, authorized, base, detailed_findings, json_response, query_param};
use common::{tampered_copy, verify_json};
use httpmock::{HttpMockRequest, MockServer};
use std::sync::{Arc, Mutex};

/// How the test server misbehaves.
#[derive(Default)]
struct Knobs {
    /// Serve at most this many items per page, whatever `pageSize` says.
    cap: Option<usize>,
    /// Answer 500 to every request whose `createdFrom` is this.
    failing_from: Option<String>,
    /// Answer 404 this many times to a request for page 2.
    not_found_on_page_2: usize,
    /// Answer 404 once to the first request for this page.
    not_found_on_page: Option<usize>,
    /// Hold back the request for this page of the window whose request starts at this `createdFrom` until
    /// [`Knobs::released`] is set.
    stall: Option<(String, usize)>,
    /// Lets stalled requests through.
    released: Arc<std::sync::atomic::AtomicBool>,
    /// Items added to page 1 of every window whatever its bounds (a server that ignores them).
    stray: Vec<Item>,
    /// Refuse this page of the window whose request starts at this `createdFrom` with this status.
    refuse: Option<(String, usize, u16)>,
    /// After serving this page (asked with more than one item per page), delete this event at the source.
    delete_after_page: Option<(usize, i64)>,
}

#[derive(Clone)]
struct Item {
    id: i64,
    at: DateTime<Utc>,
    raw: String,
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn item(id: i64, ts: &str) -> Item {
    Item {
        id,
        at: at(ts),
        raw: format!(
            r#"{{"id":{id},"timestamp":"{ts}","category":"authentication","action":"user-login-success","username":"u{id}"}}"#
        ),
    }
}

type Data = Arc<Mutex<Vec<Item>>>;

/// A mock Events API over `data`: inclusive bounds, sorted by id, misbehaving as `knobs` say.
fn serve(server: &MockServer, data: Data, knobs: Arc<Mutex<Knobs>>) {
    server.mock(|when, then| {
        when.method("GET").path("/v1/events");
        then.respond_with(move |req: &HttpMockRequest| {
            if !authorized(req) {
                return json_response(401, r#"{"error":"Unauthorized","message":"bad token"}"#);
            }
            let q = |name: &str| query_param(req, name).unwrap();
            let page: usize = q("page").parse().unwrap();
            let size: usize = q("pageSize").parse().unwrap();
            let (from, to) = (at(&q("createdFrom")), at(&q("createdTo")));
            let mut k = knobs.lock().unwrap();
            if k.failing_from.as_deref() == Some(q("createdFrom").as_str()) {
                return json_response(500, r#"{"error":"Internal","message":"boom"}"#);
            }
            if let Some((from, stalled)) = &k.stall
                && *from == q("createdFrom")
                && *stalled == page
            {
                let released = k.released.clone();
                drop(k);
                let deadline = std::time::Instant::now() + common::HANG_GUARD;
                while !released.load(std::sync::atomic::Ordering::SeqCst)
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                return json_response(503, r#"{"error":"Unavailable","message":"stalled"}"#);
            }
            if let Some((from, refused, status)) = &k.refuse
                && *from == q("createdFrom")
                && *refused == page
            {
                return json_response(
                    *status,
                    r#"{"error":"Bad Request","message":"page too deep"}"#,
                );
            }
            if k.not_found_on_page == Some(page) {
                k.not_found_on_page = None;
                return json_response(404, r#"{"error":"Not Found","message":"try again"}"#);
            }
            if page == 2 && k.not_found_on_page_2 > 0 {
                k.not_found_on_page_2 -= 1;
                return json_response(404, r#"{"error":"Not Found","message":"try again"}"#);
            }
            let mut data = data.lock().unwrap();
            let mut hits: Vec<&Item> = data.iter().filter(|e| e.at >= from && e.at <= to).collect();
            hits.sort_by_key(|e| e.id);
            let served = k.cap.map_or(size, |c| c.min(size));
            let mut body: Vec<&str> = hits
                .iter()
                .skip((page - 1) * served)
                .take(served)
                .map(|e| e.raw.as_str())
                .collect();
            if page == 1 {
                body.extend(k.stray.iter().map(|e| e.raw.as_str()));
            }
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

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

struct Env {
    _server: MockServer,
    base: String,
    sb: Sandbox,
    data: Data,
    knobs: Arc<Mutex<Knobs>>,
}

fn env(items: Vec<Item>) -> Env {
    let server = MockServer::start();
    let data = Arc::new(Mutex::new(items));
    let knobs = Arc::new(Mutex::new(Knobs::default()));
    serve(&server, data.clone(), knobs.clone());
    let base = base(&server);
    Env {
        _server: server,
        base,
        sb: Sandbox::new(),
        data,
        knobs,
    }
}

impl Env {
    fn sync(&self, from: &str, to: &str, extra: &[&str]) -> common::Run {
        let mut args = vec!["sync", "--base-url", &self.base, "--from", from, "--to", to];
        args.extend([
            "--concurrency",
            "1",
            "--max-attempts",
            "2",
            "--retry-delay",
            "1ms",
        ]);
        args.extend(extra);
        self.sb.run(&args)
    }

    fn reconcile(&self, from: &str, to: &str) -> common::Run {
        let args = [
            "reconcile",
            "--base-url",
            &self.base,
            "--from",
            from,
            "--to",
            to,
            "--concurrency",
            "1",
            "--json",
        ];
        self.sb.run(&args)
    }

    fn change(&self, id: i64, tag: &str) {
        let mut data = self.data.lock().unwrap();
        let e = data.iter_mut().find(|e| e.id == id).unwrap();
        e.raw = e.raw.replace("\"}", &format!("{tag}\"}}"));
    }

    fn hold(&self, from: &str, to: &str) {
        self.sb
            .run(&[
                "hold", "add", "--from", from, "--to", to, "--reason", "case",
            ])
            .expect(0);
    }

    /// `prune --dry-run` then `prune`, both as JSON; asserts the dry run said what the prune did.
    fn prune(&self, before: &str) -> serde_json::Value {
        let dry = self
            .sb
            .run(&["prune", "--before", before, "--dry-run", "--format", "json"]);
        dry.expect(0);
        let real = self
            .sb
            .run(&["prune", "--before", before, "--format", "json"]);
        real.expect(0);
        let (mut dry, real) = (json(&dry.stdout), json(&real.stdout));
        let mut cmp = real.clone();
        for v in [&mut dry, &mut cmp] {
            v.as_object_mut().unwrap().remove("prune_id");
            v.as_object_mut().unwrap().remove("chain_head");
            v.as_object_mut().unwrap().remove("checkpoint");
        }
        assert_eq!(dry, cmp, "the dry run differs from the prune");
        real
    }

    fn verify_ok(&self) {
        let (run, report) = verify_json(&self.sb, &self.sb.db, None);
        assert_eq!(run.code, 0, "verify: {}\n{}", run.stdout, run.stderr);
        assert!(report["findings"].as_array().unwrap().is_empty());
    }

    fn ids(&self) -> Vec<i64> {
        self.sb.ids()
    }

    fn revisions_of(&self, id: i64) -> i64 {
        self.sb.count(&format!(
            "SELECT count(*) FROM event_revisions WHERE event_id = {id}"
        ))
    }

    /// No event left inside a pruned range (by the prunes' own records).
    fn nothing_inside_pruned(&self) {
        let conn = self.sb.conn();
        let mut stmt = conn.prepare("SELECT ranges FROM prunes").unwrap();
        let ranges: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for text in ranges {
            let pairs: Vec<(String, String)> = serde_json::from_str(&text).unwrap();
            for (a, b) in pairs {
                let n = self.sb.count(&format!(
                    "SELECT count(*) FROM events WHERE timestamp >= '{a}' AND timestamp < '{b}'"
                ));
                assert_eq!(n, 0, "events left inside pruned range {a} .. {b}");
            }
        }
    }

    /// Verify on a tampered copy must exit 7 and name something.
    fn tamper_caught(&self, name: &str, sql: &str) -> Vec<(String, Option<i64>, Vec<i64>, String)> {
        let db = tampered_copy(&self.sb, name, sql);
        let (run, report) = verify_json(&self.sb, &db, None);
        assert_eq!(
            run.code, 7,
            "{name}: `{sql}` not caught: {}\n{}",
            run.stdout, run.stderr
        );
        let found = detailed_findings(&report);
        assert!(!found.is_empty(), "{name}");
        found
    }
}

const D1: &str = "2024-01-01";
const D2: &str = "2024-01-02";
const D3: &str = "2024-01-03";
const D4: &str = "2024-01-04";
const D5: &str = "2024-01-05";

/// Four days; an event exactly at each day's start (filed with the day before, `createdTo` inclusive), one at
/// noon, one in the last second of the day (filed by the next day's overlap second when synced later).
fn four_days() -> Vec<Item> {
    let mut v = Vec::new();
    for (i, d) in [D1, D2, D3, D4].iter().enumerate() {
        let i = i as i64;
        v.push(item(10 * i + 1, &format!("{d}T00:00:00Z")));
        v.push(item(10 * i + 2, &format!("{d}T12:00:00Z")));
        v.push(item(10 * i + 3, &format!("{d}T23:59:59.500Z")));
    }
    v
}

#[test]
fn a_boundary_event_revised_by_two_fetches_survives_a_held_prune_then_goes_with_both_revisions() {
    let e = env(four_days());
    e.sync(D1, D5, &[]).expect(0);
    // Event 11 (2 Jan 00:00) is filed by day 1's fetch; revised, then read again by a refetch of day 1
    // (revision filed by day 1's second fetch) and of day 2 (by day 2's second fetch).
    e.change(11, "-a");
    e.sync(D1, D2, &["--refetch"]).expect(0);
    e.change(11, "-b");
    e.sync(D2, D3, &["--refetch"]).expect(0);
    assert_eq!(e.revisions_of(11), 2);
    e.hold("2024-01-02T00:00:00Z", "2024-01-02T01:00:00Z");

    let plan = e.prune(D3);
    assert_eq!(plan["kept"]["held"], 2, "{plan}");
    e.nothing_inside_pruned();
    assert_eq!(e.ids(), vec![11, 12, 13, 21, 22, 23, 31, 32, 33]);
    assert_eq!(e.revisions_of(11), 2, "a held event keeps every revision");
    e.verify_ok();

    // Tampering with what the prune left under a window it pruned whole, or under a kept one, is caught.
    let day1_second = "(SELECT id FROM windows WHERE window_start = '2024-01-01T00:00:00.000Z' ORDER BY id DESC LIMIT 1)";
    for (name, sql) in [
        (
            "revision-deleted",
            format!("DELETE FROM event_revisions WHERE window_id = {day1_second}"),
        ),
        (
            "revision-edited",
            format!(
                "UPDATE event_revisions SET raw = replace(raw, 'u11', 'mallory'), digest = NULL WHERE window_id = {day1_second}"
            ),
        ),
        (
            "revision-fetched-at",
            format!(
                "UPDATE event_revisions SET fetched_at = '2030-01-01T00:00:00.000Z' WHERE window_id = {day1_second}"
            ),
        ),
        ("event-deleted", "DELETE FROM events WHERE id = 11".into()),
        (
            "event-moved",
            "UPDATE events SET window_id = window_id + 1 WHERE id = 21".into(),
        ),
        ("prune-deleted", "DELETE FROM pruned_windows".into()),
        (
            "kept-lines-edited",
            "UPDATE pruned_windows SET kept = kept + 1".into(),
        ),
        (
            "ranges-widened",
            "UPDATE prunes SET ranges = '[[\"2024-01-01T00:00:00.000Z\",\"2024-01-04T00:00:00.000Z\"]]'; DELETE FROM events WHERE id IN (31, 32)".into(),
        ),
    ] {
        e.tamper_caught(name, &sql);
    }

    // The hold lifted, the next prune takes the held day with both revisions; the last day stays.
    e.sb.run(&["hold", "remove", "1"]).expect(0);
    let plan = e.prune(D3);
    assert_eq!(
        (plan["events"].as_i64(), plan["revisions"].as_i64()),
        (Some(3), Some(2)),
        "{plan}"
    );
    e.nothing_inside_pruned();
    assert_eq!(
        e.ids(),
        vec![21, 22, 23, 31, 32, 33],
        "nothing at or after the cutoff goes"
    );
    assert_eq!(e.sb.count("SELECT count(*) FROM event_revisions"), 0);
    e.verify_ok();
    let plan = e.prune(D4);
    assert_eq!(e.ids(), vec![31, 32, 33], "{plan}");
    e.verify_ok();
    e.nothing_inside_pruned();
}

#[test]
fn reconcile_records_of_a_range_later_pruned_go_with_their_events_and_the_rest_stay_sealed() {
    let e = env(four_days());
    e.sync(D1, D5, &[]).expect(0);
    // At the source: 12 changes, 22 is deleted, a late event arrives in day 1's last second and on day 3.
    e.change(12, "-x");
    e.change(11, "-y");
    e.data.lock().unwrap().retain(|i| i.id != 22);
    e.data.lock().unwrap().extend([
        item(5, "2024-01-01T23:59:59.900Z"),
        item(35, "2024-01-03T06:00:00Z"),
    ]);
    let run = e.reconcile(D1, D5);
    run.expect(8);
    let report = json(&run.stdout);
    assert_eq!(report["late"], 2, "{report}");
    assert_eq!(report["deleted"], 1, "{report}");
    let changes = e.sb.count("SELECT count(*) FROM source_changes");
    assert!(changes >= 5, "{changes}");
    e.verify_ok();
    // A hold over day 2's morning keeps its windows (sync and reconcile).
    e.hold("2024-01-02T06:00:00Z", "2024-01-02T07:00:00Z");
    e.prune(D3);
    e.nothing_inside_pruned();
    assert_eq!(e.ids(), vec![11, 12, 13, 21, 22, 23, 31, 32, 33, 35]);
    assert_eq!(
        e.revisions_of(11),
        1,
        "the boundary event keeps its revision"
    );
    assert_eq!(e.revisions_of(12), 1);
    assert_eq!(
        e.sb.count("SELECT count(*) FROM source_changes WHERE event_id = 5"),
        0
    );
    assert!(
        e.sb.count("SELECT count(*) FROM source_changes WHERE event_id IN (11, 12, 22, 35)") >= 4
    );
    e.verify_ok();
    for (name, sql) in [
        (
            "change-deleted",
            "DELETE FROM source_changes WHERE event_id = 22",
        ),
        (
            "change-edited",
            "UPDATE source_changes SET kind = 'late' WHERE event_id = 22",
        ),
        (
            "change-moved",
            "UPDATE source_changes SET detected_at = '2020-01-01T00:00:00.000Z' WHERE event_id = 11",
        ),
        (
            "change-inserted",
            "INSERT INTO source_changes (window_id, event_id, kind, detected_at) SELECT window_id, 21, 'deleted', detected_at FROM source_changes WHERE event_id = 11",
        ),
    ] {
        e.tamper_caught(name, sql);
    }
    e.sb.run(&["hold", "remove", "1"]).expect(0);
    e.prune(D4);
    e.nothing_inside_pruned();
    assert_eq!(e.ids(), vec![31, 32, 33]);
    assert_eq!(e.sb.count("SELECT count(*) FROM source_changes"), 0);
    e.verify_ok();
    // Neither reconcile nor a refetch brings anything pruned back.
    e.reconcile(D1, D5).expect(0);
    e.sync(D1, D5, &["--refetch"]).expect(0);
    assert_eq!(e.ids(), vec![31, 32, 33]);
    e.verify_ok();
}

#[test]
fn several_prunes_with_holds_placed_and_lifted_between_keep_verify_green_and_lose_nothing_held() {
    let e = env(four_days());
    // Day 2 first, so its overlap second files event 3 (day 1's last second); then the rest.
    e.sync(D2, D3, &[]).expect(0);
    e.sync(D1, D2, &[]).expect(0);
    e.sync(D3, D5, &[]).expect(0);
    // Event 13 (2 Jan 23:59:59.5) changes; day 3's refetch files its revision (overlap second).
    e.change(13, "-z");
    e.sync(D3, D4, &["--refetch"]).expect(0);
    assert_eq!(e.revisions_of(13), 1);
    e.hold("2024-01-02T23:59:59.400Z", "2024-01-02T23:59:59.600Z");
    e.prune(D2);
    e.nothing_inside_pruned();
    e.verify_ok();
    assert_eq!(
        e.ids()[0],
        11,
        "day 1 is gone, event 3 (filed by day 2) too"
    );
    e.hold("2024-01-01T12:00:00Z", "2024-01-01T13:00:00Z"); // inside a range already pruned
    e.prune(D3);
    e.nothing_inside_pruned();
    e.verify_ok();
    e.prune(D4);
    e.nothing_inside_pruned();
    e.verify_ok();
    // Day 3's fetches went whole; the held event keeps the revision day 3's refetch filed.
    assert_eq!(e.ids(), vec![11, 12, 13, 31, 32, 33]);
    assert_eq!(e.revisions_of(13), 1);
    e.tamper_caught(
        "held-revision-deleted",
        "DELETE FROM event_revisions WHERE event_id = 13",
    );
    e.tamper_caught(
        "held-revision-edited",
        "UPDATE event_revisions SET fetched_at = '2030-01-01T00:00:00.000Z' WHERE event_id = 13",
    );
    e.sb.run(&["hold", "remove", "1"]).expect(0);
    e.prune(D4);
    e.nothing_inside_pruned();
    e.verify_ok();
    assert_eq!(e.ids(), vec![31, 32, 33]);
    assert_eq!(e.sb.count("SELECT count(*) FROM event_revisions"), 0);
    e.tamper_caught(
        "left-edited",
        "UPDATE events SET fetched_at = '2030-01-01T00:00:00.000Z' WHERE id = 31",
    );
    e.tamper_caught("left-deleted", "DELETE FROM events WHERE id = 31");
}

#[test]
fn a_capped_server_with_a_passing_404_on_page_2_loses_nothing() {
    // Pages capped at 250 (so page 1 is short), and a gateway's passing 404 on page 2.
    let items: Vec<Item> = (0..1000)
        .map(|i| {
            let t = at("2024-01-01T00:00:00Z") + chrono::TimeDelta::seconds(i * 60);
            item(
                1000 + i,
                &t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
        })
        .collect();
    let e = env(items);
    {
        let mut k = e.knobs.lock().unwrap();
        k.cap = Some(250);
        k.not_found_on_page_2 = 1;
    }
    let run = e.sync(D1, D2, &["--json"]);
    let archived = e.ids().len();
    let (verify, _) = verify_json(&e.sb, &e.sb.db, None);
    assert!(
        archived == 1000 || (run.code != 0 && verify.code != 0),
        "{archived} of 1000 archived, sync exit {}, verify exit {}: {}",
        run.code,
        verify.code,
        run.stdout
    );
}

#[test]
fn a_server_that_serves_fewer_than_asked_and_then_a_404_is_not_a_confirmed_end() {
    // Capped server the run has already recognised as such: a 404 after that must not be an end.
    let items: Vec<Item> = (0..600)
        .map(|i| {
            let t = at("2024-01-01T00:00:00Z") + chrono::TimeDelta::seconds(i * 60);
            item(
                1000 + i,
                &t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
        })
        .collect();
    let e = env(items);
    {
        let mut k = e.knobs.lock().unwrap();
        k.cap = Some(100);
        // Page 2 (100 more items) tells the pager the server serves fewer than asked; then page 3 is a 404.
        k.not_found_on_page = Some(3);
    }
    let run = e.sync(D1, D2, &["--page-size", "200", "--json"]);
    let archived = e.ids().len();
    assert!(
        archived == 600 || run.code != 0,
        "{archived} of 600 archived with exit {}: {}",
        run.code,
        run.stdout
    );
}

#[test]
fn a_failed_window_hidden_by_editing_the_intent_ledger_is_caught() {
    let e = env(four_days());
    e.knobs.lock().unwrap().failing_from = Some("2024-01-01T23:59:59Z".into());
    e.sync(D1, D5, &[]).expect(9);
    let (run, _) = verify_json(&e.sb, &e.sb.db, None);
    run.expect(9);
    // The run's asked-for range is cut to end before the failed day, and the failed window's ledger row is
    // left as sealed: verify must not turn green.
    for (name, sql) in [
        (
            "intent-cut",
            "UPDATE runs SET range_to = '2024-01-02T00:00:00.000Z'",
        ),
        ("intent-deleted", "DELETE FROM runs"),
    ] {
        let db = tampered_copy(&e.sb, name, sql);
        let (run, report) = verify_json(&e.sb, &db, None);
        assert_ne!(run.code, 0, "{name}: verify green after `{sql}`: {report}");
    }
}

#[test]
fn a_lifted_or_deleted_hold_is_not_evidence_verify_checks() {
    let e = env(four_days());
    e.sync(D1, D5, &[]).expect(0);
    e.hold("2024-01-01T06:00:00Z", "2024-01-01T18:00:00Z");
    for (name, sql) in [
        ("hold-deleted", "DELETE FROM holds"),
        (
            "hold-lifted",
            "UPDATE holds SET removed_at = '2024-02-01T00:00:00.000Z'",
        ),
        (
            "hold-narrowed",
            "UPDATE holds SET range_to = '2024-01-01T06:00:01.000Z'",
        ),
    ] {
        let db = tampered_copy(&e.sb, name, sql);
        let (run, report) = verify_json(&e.sb, &db, None);
        assert_eq!(run.code, 7, "{name}: hold tampering unseen: {report}");
    }
}

/// Day 1 synced; then event 3 (1 Jan 23:59:59.5) changes at the source, and a sync of day 2 reads it first
/// on its page 1 (the overlap second) and files the new version as a revision; page 2 is held back and the
/// sync is SIGKILLed. Day 2's window fetch is left `running`, its revision of event 3 committed.
fn killed_with_a_revision_of_day_1() -> Env {
    killed_while_day_2_files_event_3(false)
}

/// As [`killed_with_a_revision_of_day_1`]; with `late`, event 3 is not at the source when day 1 is synced
/// and arrives before day 2's sync, which files it as a new event (under its running window fetch).
fn killed_while_day_2_files_event_3(late: bool) -> Env {
    let mut items = four_days();
    let third = items.iter().position(|i| i.id == 3).unwrap();
    let event_3 = items.remove(third);
    if !late {
        items.push(event_3.clone());
    }
    let e = env(items);
    e.sync(D1, D2, &[]).expect(0);
    if late {
        e.data.lock().unwrap().push(event_3);
    } else {
        e.change(3, "-changed");
    }
    e.knobs.lock().unwrap().stall = Some(("2024-01-01T23:59:59Z".into(), 2));
    let mut child =
        e.sb.command()
            .args([
                "sync",
                "--base-url",
                &e.base,
                "--from",
                D2,
                "--to",
                D3,
                "--page-size",
                "2",
                "--concurrency",
                "1",
                "-q",
            ])
            .env("ELEVATE_TOKEN", common::TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let deadline = std::time::Instant::now() + common::HANG_GUARD;
    loop {
        let filed = rusqlite::Connection::open_with_flags(
            &e.sb.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()
        .and_then(|c| {
            c.busy_timeout(std::time::Duration::from_secs(1)).ok()?;
            c.query_row(
                "SELECT (SELECT count(*) FROM event_revisions WHERE event_id = 3)
                      + (SELECT count(*) FROM events WHERE id = 3 AND window_id > 1)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .ok()
        });
        if filed == Some(1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "hung");
        assert!(child.try_wait().unwrap().is_none(), "the sync ended early");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut k = e.knobs.lock().unwrap();
    k.released.store(true, std::sync::atomic::Ordering::SeqCst);
    k.stall = None;
    drop(k);
    e
}

fn orphan_revisions(e: &Env) -> i64 {
    e.sb.count(
        "SELECT count(*) FROM event_revisions x WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = x.event_id)",
    )
}

#[test]
fn a_prune_right_after_a_killed_sync_refuses_as_its_dry_run_does_until_a_sync_closes_the_window() {
    let e = killed_with_a_revision_of_day_1();
    // Day 2's fetch is left running (no sync has run since the kill): its rows are not sealed, so neither the
    // dry run nor the prune plans around them; both say what to do, and nothing changes.
    let before = e.sb.count("SELECT count(*) FROM events");
    for args in [
        vec!["prune", "--before", D2, "--dry-run"],
        vec!["prune", "--before", D2],
    ] {
        let run = e.sb.run(&args);
        run.expect(6);
        assert!(
            run.stderr.contains("still open") && run.stderr.contains("elevate-archive sync"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(e.sb.count("SELECT count(*) FROM events"), before);
    e.sb.run(&["sync", "--base-url", &e.base]).expect(0);
    let dry =
        e.sb.run(&["prune", "--before", D2, "--dry-run", "--format", "json"]);
    dry.expect(0);
    let real = e.sb.run(&["prune", "--before", D2, "--format", "json"]);
    real.expect(0);
    for key in ["events", "revisions", "rejects", "ranges"] {
        assert_eq!(json(&dry.stdout)[key], json(&real.stdout)[key], "{key}");
    }
    e.nothing_inside_pruned();
    assert_eq!(orphan_revisions(&e), 0);
    e.verify_ok();
}

#[test]
fn a_prune_after_a_killed_sync_and_its_recovery_leaves_nothing_of_the_pruned_day() {
    let e = killed_with_a_revision_of_day_1();
    e.sb.run(&["sync", "--base-url", &e.base]).expect(0);
    e.verify_ok();
    e.prune(D2);
    e.nothing_inside_pruned();
    assert!(!e.ids().contains(&3));
    assert_eq!(orphan_revisions(&e), 0);
    assert_eq!(e.revisions_of(3), 0);
    e.verify_ok();
    e.sync(D1, D5, &["--refetch"]).expect(0);
    assert!(!e.ids().contains(&3));
    assert_eq!(e.revisions_of(3), 0);
    e.verify_ok();
}

#[test]
fn events_a_server_returns_far_outside_the_window_inside_a_pruned_range_are_not_archived_again() {
    let e = env(four_days());
    e.sync(D1, D5, &[]).expect(0);
    e.prune(D3);
    e.verify_ok();
    // The server now adds to every window's first page an old event of 1 January, and an edited copy of
    // event 2 (pruned): neither may come back.
    {
        let mut k = e.knobs.lock().unwrap();
        let mut edited = item(2, "2024-01-01T12:00:00Z");
        edited.raw = edited.raw.replace("u2", "u2-edited");
        k.stray = vec![item(7, "2024-01-01T10:00:00Z"), edited];
    }
    let run = e.sync(D3, D5, &["--refetch", "--json"]);
    run.expect(0);
    e.nothing_inside_pruned();
    assert!(
        !e.ids().contains(&7) && !e.ids().contains(&2),
        "{:?}",
        e.ids()
    );
    assert_eq!(e.sb.count("SELECT count(*) FROM event_revisions"), 0);
    let run = e.reconcile(D3, D5);
    assert!(
        run.code == 0 || run.code == 8,
        "{}{}",
        run.stdout,
        run.stderr
    );
    e.nothing_inside_pruned();
    assert!(
        !e.ids().contains(&7) && !e.ids().contains(&2),
        "{:?}",
        e.ids()
    );
    e.verify_ok();
}

#[test]
fn an_event_inside_a_hold_with_a_sub_millisecond_end_is_never_pruned() {
    let e = env(vec![
        item(1, "2024-01-01T11:30:00Z"),
        item(2, "2024-01-01T12:00:00.0005Z"),
        item(3, "2024-01-01T13:30:00Z"),
    ]);
    e.sync(D1, D2, &["--window", "1h"]).expect(0);
    assert_eq!(e.ids(), vec![1, 2, 3]);
    // Event 2 (12:00:00.0005) lies inside [11:00, 12:00:00.0009).
    e.hold("2024-01-01T11:00:00Z", "2024-01-01T12:00:00.0009Z");
    e.prune(D2);
    assert!(
        e.ids().contains(&2),
        "the held event 2 was pruned: {:?}",
        e.ids()
    );
}

#[test]
fn a_page_refused_past_a_short_first_page_fails_its_window_not_silently() {
    let items: Vec<Item> = (0..600)
        .map(|i| {
            let t = at("2024-01-01T00:00:00Z") + chrono::TimeDelta::seconds(i * 60);
            item(
                1000 + i,
                &t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
        })
        .collect();
    for status in [400, 422] {
        let e = env(items.clone());
        {
            let mut k = e.knobs.lock().unwrap();
            k.cap = Some(100);
            k.refuse = Some(("2023-12-31T23:59:59Z".into(), 2, status));
        }
        // The only window failed: the run fails (exit 4), and nothing says the day is complete.
        let run = e.sync(D1, D2, &["--page-size", "200", "--json"]);
        run.expect(4);
        let (verify, _) = verify_json(&e.sb, &e.sb.db, None);
        verify.expect(9);
        e.knobs.lock().unwrap().refuse = None;
        e.sb.run(&["sync", "--base-url", &e.base, "--page-size", "200"])
            .expect(0);
        assert_eq!(e.ids().len(), 600);
        e.verify_ok();
    }
}

#[test]
fn every_edit_after_prunes_around_a_hold_and_a_reconcile_is_caught() {
    let e = env(four_days());
    // Day 2 first, so its overlap second files event 3 of day 1 (a kept neighbour that loses it).
    e.sync(D2, D3, &[]).expect(0);
    e.sync(D1, D2, &[]).expect(0);
    e.sync(D3, D5, &[]).expect(0);
    e.change(11, "-r");
    e.change(21, "-r");
    e.data.lock().unwrap().retain(|i| i.id != 12);
    e.reconcile(D1, D5).expect(8);
    e.hold("2024-01-03T06:00:00Z", "2024-01-03T07:00:00Z");
    e.prune(D2);
    e.prune(D4);
    e.nothing_inside_pruned();
    e.verify_ok();
    let cases: &[(&str, &str)] = &[
        ("ev-del-kept", "DELETE FROM events WHERE id = 22"),
        (
            "ev-edit-user",
            "UPDATE events SET username = 'mallory' WHERE id = 21",
        ),
        (
            "ev-edit-raw",
            "UPDATE events SET raw = replace(raw, 'u31', 'u99') WHERE id = 31",
        ),
        (
            "ev-insert-pruned-range",
            "INSERT INTO events (id, window_id, timestamp, category, action, description, username, ip_address, raw, digest, fetched_at) SELECT 999, window_id, '2024-01-01T05:00:00.000Z', category, action, description, username, ip_address, replace(raw, '\"id\":31', '\"id\":999'), digest, fetched_at FROM events WHERE id = 31",
        ),
        ("rev-del", "DELETE FROM event_revisions WHERE event_id = 21"),
        (
            "rev-move",
            "UPDATE event_revisions SET window_id = (SELECT min(id) FROM windows) WHERE event_id = 21",
        ),
        ("sc-del", "DELETE FROM source_changes WHERE event_id = 21"),
        (
            "sc-move",
            "UPDATE source_changes SET window_id = (SELECT min(id) FROM windows)",
        ),
        (
            "win-end",
            "UPDATE windows SET window_end = '2024-01-09T00:00:00.000Z' WHERE id = (SELECT min(id) FROM windows)",
        ),
        (
            "win-status",
            "UPDATE windows SET status = 'failed' WHERE id = (SELECT min(id) FROM windows)",
        ),
        (
            "win-del",
            "DELETE FROM windows WHERE id = (SELECT min(id) FROM windows)",
        ),
        (
            "win-del-kept",
            "DELETE FROM windows WHERE id = (SELECT max(id) FROM windows)",
        ),
        (
            "prune-cutoff",
            "UPDATE prunes SET cutoff = '2024-01-05T00:00:00.000Z'",
        ),
        ("prune-narrow", "UPDATE prunes SET ranges = '[]'"),
        ("prune-counts", "UPDATE prunes SET events = events + 1"),
        (
            "pw-del-one",
            "DELETE FROM pruned_windows WHERE (prune_id, window_id) = (SELECT prune_id, max(window_id) FROM pruned_windows WHERE prune_id = (SELECT max(prune_id) FROM pruned_windows))",
        ),
        (
            "pw-kept-lines",
            "UPDATE pruned_windows SET kept_lines = '' WHERE kept_lines <> ''",
        ),
        ("pw-ledger", "UPDATE pruned_windows SET ledger = NULL"),
        (
            "pw-forged",
            "INSERT INTO pruned_windows (prune_id, window_id, seal_hash, events, revisions, rejects, kept, ledger, kept_lines) SELECT prune_id, (SELECT max(id) FROM windows), seal_hash, events, revisions, rejects, kept, ledger, kept_lines FROM pruned_windows LIMIT 1",
        ),
        (
            "prune-del",
            "DELETE FROM prunes WHERE id = (SELECT max(id) FROM prunes); DELETE FROM pruned_windows WHERE prune_id NOT IN (SELECT id FROM prunes)",
        ),
        (
            "seal-del-last",
            "DELETE FROM seals WHERE id = (SELECT max(id) FROM seals)",
        ),
        (
            "reject-insert",
            "INSERT INTO rejects (window_id, page, reason, raw, received_at) SELECT min(id), 1, 'not_an_object', '1', '2024-01-01T00:00:00.000Z' FROM windows",
        ),
    ];
    let mut unseen = Vec::new();
    for (name, sql) in cases {
        let db = tampered_copy(&e.sb, name, sql);
        let (run, report) = verify_json(&e.sb, &db, None);
        if run.code != 7 {
            unseen.push(format!("{name}: exit {} {report}", run.code));
        }
    }
    assert!(unseen.is_empty(), "{unseen:#?}");
}

#[test]
fn relabelling_a_sandbox_run_as_production_is_caught() {
    let sandbox = env(four_days());
    let production = MockServer::start();
    let prod_knobs = Arc::new(Mutex::new(Knobs {
        failing_from: Some("2023-12-31T23:59:59Z".into()),
        ..Knobs::default()
    }));
    serve(&production, Arc::new(Mutex::new(four_days())), prod_knobs);
    let prod = base(&production);
    sandbox.sync(D1, D2, &[]).expect(0);
    // Production is asked for the same day and fails: verify says it is not yet fetched.
    let args = [
        "sync",
        "--base-url",
        &prod,
        "--from",
        D1,
        "--to",
        D2,
        "--max-attempts",
        "2",
        "--retry-delay",
        "1ms",
    ];
    sandbox.sb.run(&args).expect(4);
    let (run, _) = verify_json(&sandbox.sb, &sandbox.sb.db, None);
    run.expect(9);
    let sql = format!("UPDATE runs SET base_url = '{prod}'");
    let db = tampered_copy(&sandbox.sb, "relabelled", &sql);
    let (run, report) = verify_json(&sandbox.sb, &db, None);
    assert_ne!(run.code, 0, "verify green after `{sql}`: {report}");
}

#[test]
fn check_paging_catches_a_shift_on_a_server_that_caps_its_pages() {
    let items: Vec<Item> = (0..60)
        .map(|i| {
            let t = at("2024-01-01T00:00:00Z") + chrono::TimeDelta::seconds(i * 600);
            item(
                1000 + i,
                &t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
        })
        .collect();
    let e = env(items.clone());
    {
        let mut k = e.knobs.lock().unwrap();
        k.cap = Some(10);
        // After page 1 is served, an event of page 1 is deleted: page 2 starts one later, one event is never served.
        k.delete_after_page = Some((1, 1003));
    }
    let run = e.sync(D1, D2, &["--page-size", "20", "--check-paging", "--json"]);
    let held = e.ids();
    let missing: Vec<i64> = items
        .iter()
        .map(|i| i.id)
        .filter(|id| !held.contains(id))
        .collect();
    assert!(
        missing.is_empty() || run.code != 0,
        "skipped {missing:?} with exit {}: {}",
        run.code,
        run.stdout
    );
}

#[test]
fn a_reject_of_the_retained_range_survives_the_prune_of_the_window_that_filed_it() {
    let mut items = four_days();
    // An item without an id exactly at 3 January 00:00: day 2's window (createdTo inclusive) and day 3's
    // both receive it; it cannot be archived and is kept in `rejects`, once.
    items.push(Item {
        id: 0,
        at: at("2024-01-03T00:00:00Z"),
        raw: r#"{"timestamp":"2024-01-03T00:00:00Z","category":"authentication","action":"user-login-success"}"#
            .into(),
    });
    let e = env(items);
    e.sync(D1, D5, &[]).expect(3);
    let rejects = || {
        e.sb.count("SELECT count(*) FROM rejects WHERE raw LIKE '%2024-01-03T00:00:00Z%'")
    };
    assert_eq!(rejects(), 1);
    e.prune(D3);
    e.verify_ok();
    assert_eq!(
        rejects(),
        1,
        "the item served for 3 January, a retained day, is no longer recorded anywhere"
    );
}

#[test]
fn a_reject_at_a_held_instant_is_never_pruned() {
    let mut items = four_days();
    items.push(Item {
        id: 0,
        at: at("2024-01-03T00:00:00Z"),
        raw: r#"{"timestamp":"2024-01-03T00:00:00Z","category":"authentication","action":"user-login-success"}"#
            .into(),
    });
    let e = env(items);
    e.sync(D1, D5, &[]).expect(3);
    e.hold("2024-01-03T00:00:00Z", "2024-01-03T01:00:00Z");
    e.prune(D3);
    e.verify_ok();
    assert!(e.ids().contains(&21), "the held event stays");
    assert_eq!(
        e.sb.count("SELECT count(*) FROM rejects WHERE raw LIKE '%2024-01-03T00:00:00Z%'"),
        1,
        "the item served at the held instant is gone"
    );
}

#[test]
fn pruned_events_leave_the_search_index_whichever_fetch_filed_them() {
    let e = env(four_days());
    // Day 2 first: its overlap second files event 3 (day 1); a reconcile files a late event 5 of day 1.
    e.sync(D2, D3, &[]).expect(0);
    e.sync(D1, D2, &[]).expect(0);
    e.sync(D3, D5, &[]).expect(0);
    e.data
        .lock()
        .unwrap()
        .push(item(5, "2024-01-01T23:59:59.900Z"));
    e.reconcile(D1, D3).expect(8);
    e.sync(D3, D4, &[]).expect(0);
    for id in [2, 3, 5, 12] {
        let run = e.sb.run(&["search", &format!("u{id}"), "--format", "json"]);
        run.expect(0);
        assert!(
            run.stdout.contains(&format!("\"u{id}\"")),
            "u{id} indexed: {}",
            run.stdout
        );
    }
    e.prune(D2);
    for id in [2, 3, 5] {
        let run = e.sb.run(&["search", &format!("u{id}"), "--format", "json"]);
        run.expect(0);
        assert!(
            !run.stdout.contains(&format!("\"u{id}\"")),
            "u{id} still found: {}",
            run.stdout
        );
    }
    let run = e.sb.run(&["search", "u12", "--format", "json"]);
    assert!(run.stdout.contains("\"u12\""), "{}", run.stdout);
    let copy = e.sb.dir.path().join("fts.db");
    std::fs::copy(&e.sb.db, &copy).unwrap();
    rusqlite::Connection::open(&copy)
        .unwrap()
        .execute_batch("INSERT INTO events_fts (events_fts) VALUES ('integrity-check')")
        .unwrap();
    e.verify_ok();
}

#[test]
fn an_event_a_killed_window_filed_inside_the_range_then_pruned_does_not_outlive_the_prune() {
    let e = killed_while_day_2_files_event_3(true);
    assert!(e.ids().contains(&3));
    // Refused while day 2's fetch is open; once a sync has closed it, the prune takes event 3.
    e.sb.run(&["prune", "--before", D2]).expect(6);
    e.sb.run(&["sync", "--base-url", &e.base]).expect(0);
    e.prune(D2);
    e.verify_ok();
    assert!(
        !e.ids().contains(&3),
        "event 3 (1 Jan 23:59:59.5) lies inside the pruned range [1 Jan, 2 Jan) and is still archived"
    );
}
