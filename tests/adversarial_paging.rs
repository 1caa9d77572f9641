//! Pages of one window asked for ahead, against a server that changes, fails and answers out of order while
//! they are in flight: events appended while a page is held, deletions before a held page after the pages
//! behind it came back, an event inserted in the middle of the list before a held page after the page behind
//! it came back, the first page failing after later ones came back, pages past the end failing for
//! good, a server repeating a page, SIGKILL of a dense day paged ahead at several depths (then `prune` and
//! `reconcile`), and seals made from the lines the writer gathers checked against the rows.
//!
//! As in `paging.rs`, nothing is timed: the simulator holds chosen pages until the test has changed the
//! source, and the test waits for what the simulator and the archive show.

mod common;

use common::paging::{at, config, range_args, start, sync_args, wait_on_sim};
use common::{
    SIM_CREDS, Sandbox, Served, assert_crash_invariants, assert_exact, assert_search_index_exact,
    authorized, base, json_response, query_param, serve, signal, wait_or_hang,
};
use elevate_archive::simulator::{FailingPage, PastEnd, SimConfig};
use elevate_archive::time::Timestamp;
use httpmock::{HttpMockRequest, MockServer};
use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// 2024-01-01T00:00:00Z in ms, and a day in ms.
const DAY1: i64 = 1_704_067_200_000;
const DAY_MS: i64 = 86_400_000;

/// Requests the simulator has received, held, and is answering now.
fn requests(served: &Served) -> (u64, u64, u64) {
    let stats = served.sim.stats();
    (
        stats.event_requests.load(Ordering::SeqCst),
        stats.held.load(Ordering::SeqCst),
        stats.in_flight.load(Ordering::SeqCst),
    )
}

/// Waits for `child` to exit; returns its exit code, stdout and stderr.
fn finish(child: &mut Child) -> (Option<i32>, String, String) {
    let status = wait_or_hang(child, "the sync");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut pipe) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stdout);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status.code(), stdout, stderr)
}

/// The ids of the source's events of 1 January, by id (the order a window's list is paged in).
fn day1_ids(served: &Served) -> Vec<i64> {
    served
        .sim
        .expected_times()
        .into_iter()
        .filter(|(_, ms)| (DAY1..DAY1 + DAY_MS).contains(ms))
        .map(|(id, _)| id)
        .collect()
}

/// A plain sync (no `--from`) against `served`: it fetches whatever is not complete yet.
fn plain_sync(sb: &Sandbox, served: &Served) -> common::Run {
    sb.run_env(
        &["sync", "--base-url", &served.base, "--retry-delay", "1ms"],
        &SIM_CREDS,
    )
}

#[test]
fn an_empty_page_answered_before_the_full_page_in_front_of_it_does_not_confirm_the_end() {
    // One day of 250 events, pages of 100: pages 1 and 2 full, page 3 short, page 4 empty. Page 3 is held;
    // meanwhile the pages after it are answered (with four requests at once, page 4 is asked for ahead and
    // comes back empty). Then 60 events arrive for that day (with ids after all others, so at the end of its
    // list), and page 3 is let go: it now comes back full. One page at a time, page 4 would be asked for only
    // now and hold the last 10 events; an empty page 4 answered before page 3 says nothing of the list as page
    // 3 showed it, and must not end the window.
    // Each case: (name, --concurrency, --page-size, the simulator). The same on a server answering 404 past
    // the end (its 404 is always asked again, after page 3), and on one capping its pages at 100 whatever
    // `pageSize` asks (page 3 is full at the cap, once the cap is known).
    let cases = [
        ("one page at a time", "1", "100", config(250, 1)),
        ("four pages at once", "4", "100", config(250, 1)),
        (
            "four pages at once, 404 past the end",
            "4",
            "100",
            SimConfig {
                past_end: PastEnd::NotFound,
                ..config(250, 1)
            },
        ),
        (
            "four pages at once, pages capped at 100",
            "4",
            "1000",
            SimConfig {
                page_cap: Some(100),
                ..config(250, 1)
            },
        ),
    ];
    for (name, concurrency, page_size, config) in cases {
        let served = serve(config);
        served.sim.hold_covering_page(at("2024-01-01T12:00:00Z"), 3);
        let sb = Sandbox::new();
        let extra = [
            "--page-size",
            page_size,
            "--concurrency",
            concurrency,
            "--timeout",
            "10m",
        ];
        let mut child = start(&sb, &sync_args(&served, "2024-01-02", &extra));
        let asked = if concurrency == "1" { 3 } else { 4 };
        wait_on_sim(
            &served,
            &mut child,
            "page 3 held, the others answered",
            |s| {
                let (received, held, in_flight) = requests(s);
                received >= asked && held >= 1 && in_flight == 1
            },
        );
        served
            .sim
            .insert_late_events_between(60, DAY1, DAY1 + DAY_MS);
        served.sim.release();
        let (code, _, stderr) = finish(&mut child);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        assert_eq!(
            sb.ids().len(),
            310,
            "{name}: the events page 3 had behind it when it was served"
        );
        assert_exact(&sb, &served);
        sb.run(&["verify"]).expect(0);
    }
}

#[test]
fn deletions_before_a_held_page_after_the_pages_behind_it_came_back_skip_nothing_with_check_paging()
{
    // One day of 1,000 events, pages of 100, four requests at once; page 5 is held, so pages 1 to 4 are
    // stored and the pages after 5 come back (unshifted) while it waits. Then three events of page 2 are
    // deleted at the source: page 5, served now, shifts back by three, and the first three events of the old
    // page 5 move into page 4, served before. `--check-paging` must see the shift at the boundary of pages 4
    // and 5, although page 6 came back before the deletion and page 5 after it.
    deletions_before_a_held_page_skip_nothing(150..153);
}

#[test]
fn more_deletions_than_a_page_holds_before_a_held_page_skip_nothing_with_check_paging() {
    // The same with 150 events of pages 2 and 3 deleted, more than a page holds: the old page 5 moves back
    // across pages 4 and 3, so reading page 4 again is not enough; the pages before it are read again until
    // one reaches back to the event that ended page 4.
    deletions_before_a_held_page_skip_nothing(150..300);
}

fn deletions_before_a_held_page_skip_nothing(deleted: std::ops::Range<usize>) {
    let served = serve(config(1_000, 1));
    served.sim.hold_covering_page(at("2024-01-01T12:00:00Z"), 5);
    let sb = Sandbox::new();
    let extra = [
        "--page-size",
        "100",
        "--concurrency",
        "4",
        "--timeout",
        "10m",
        "--check-paging",
        "--json",
    ];
    let mut args = sync_args(&served, "2024-01-02", &extra);
    args.retain(|a| *a != "--quiet");
    let before = day1_ids(&served);
    let mut child = start(&sb, &args);
    sb.wait_for(&mut child, 0, "four pages stored", |p| p.pages >= 4);
    wait_on_sim(
        &served,
        &mut child,
        "page 5 held, the others answered",
        |s| {
            let (received, held, in_flight) = requests(s);
            // Pages 1 to 12 (twice the window's four requests wait their turn) and the checks of the
            // boundaries after pages 1, 2 and 3.
            received >= 15 && held >= 1 && in_flight == 1
        },
    );
    let count = deleted.len();
    assert_eq!(served.sim.delete_event_ids(&before[deleted]), count);
    served.sim.release();
    let (code, stdout, stderr) = finish(&mut child);
    assert_eq!(code, Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        report["paging_shifts"].as_u64().unwrap_or(0) >= 1,
        "the shift was seen: {stdout}"
    );
    let held = sb.ids();
    let missing: Vec<i64> = before
        .iter()
        .filter(|id| held.binary_search(id).is_err())
        .copied()
        .collect();
    assert!(missing.is_empty(), "skipped: {missing:?}");
    assert_eq!(held.len(), before.len(), "the deleted events stay archived");
    sb.run(&["verify"]).expect(0);
}

/// Inserts `n` events at the source in the middle of 1 January's list: each right after one of the events of
/// `before` (the day's ids, by id) from position `from` on whose next id is free; returns their ids.
fn insert_mid_list(served: &Served, before: &[i64], from: usize, n: usize) -> Vec<i64> {
    let times: std::collections::HashMap<i64, i64> =
        served.sim.expected_times().into_iter().collect();
    let inserted: Vec<i64> = before[from..]
        .iter()
        .map(|id| (id + 1, times[id]))
        .filter(|&(id, ms)| {
            served
                .sim
                .insert_event(id, Timestamp::from_timestamp_millis(ms).unwrap())
        })
        .map(|(id, _)| id)
        .take(n)
        .collect();
    assert_eq!(inserted.len(), n, "free ids between events of the day");
    inserted
}

#[test]
fn an_event_inserted_mid_list_while_a_page_is_held_after_the_next_came_back_skips_nothing_with_check_paging()
 {
    // One day, pages of 100, four requests at once: page 3 is held, so pages 1 and 2 are stored and the pages
    // after it come back while it waits. Then one event is inserted at the source with an id among those of
    // page 1 (the API does not promise that ids follow creation), and page 3 is let go: served now, it holds
    // the old list's items 200 to 298, and the event that ended it before the insertion (item 299, Y) moves
    // to item 300, the first of page 4, which was served before the insertion and did not hold it. One page
    // at a time, page 4 would be served after page 3 and show Y again (harmless).
    //
    // A plain sync loses Y (exit 0, `verify` 0): it cannot see this, and `reconcile` catches it later.
    // `--check-paging`: page 4 was asked for before page 3 was answered (it may have been served first), so
    // the boundary is also checked from page 4's side (the item after page 3's end, compared with page 4's
    // first): it differs, page 4 is read again, and nothing is skipped. With 350 events page 4 is the last,
    // short page, so no later boundary is checked: before this check, Y was lost with `--check-paging` too.
    // With 1,000 events page 4 is full, and the check of the boundary after it (page 4 as served, against
    // the list as it is now) already saw the shift. With 150 events inserted (more than a page holds), from
    // the first of page 1 on, 150 events are pushed past page 3: page 4 and the page after it are read again.
    // Each case: (events, events inserted, pages asked for while page 3 is held, --check-paging).
    let cases = [
        (350, 1, 6, false),
        (350, 1, 6, true),
        (1_000, 1, 10, false),
        (1_000, 1, 10, true),
        (350, 150, 6, true),
    ];
    for (events, inserts, asked, check_paging) in cases {
        let name = format!("{events} events, {inserts} inserted, --check-paging {check_paging}");
        let served = serve(config(events, 1));
        served.sim.hold_covering_page(at("2024-01-01T12:00:00Z"), 3);
        let sb = Sandbox::new();
        let mut extra = vec![
            "--page-size",
            "100",
            "--concurrency",
            "4",
            "--timeout",
            "10m",
            "--json",
        ];
        if check_paging {
            extra.push("--check-paging");
        }
        let mut args = sync_args(&served, "2024-01-02", &extra);
        args.retain(|a| *a != "--quiet");
        let before = day1_ids(&served);
        assert_eq!(before.len() as u64, events);
        let mut child = start(&sb, &args);
        sb.wait_for(&mut child, 0, "two pages stored", |p| p.pages >= 2);
        wait_on_sim(
            &served,
            &mut child,
            "page 3 held, the pages after it answered",
            |s| {
                let (received, held, in_flight) = requests(s);
                // Pages 1 to 6 (page 4 short, page 5 empty) or 1 to 10 (twice the window's four requests
                // wait their turn: pages 3 to 10).
                received >= asked && held >= 1 && in_flight == 1
            },
        );
        let inserted: Vec<i64> = if inserts == 1 {
            insert_mid_list(&served, &before, 50, 1)
        } else {
            insert_mid_list(&served, &before, 0, inserts)
        };
        assert!(
            inserted.iter().all(|id| *id < before[299]),
            "{name}: in front of page 3's end"
        );
        served.sim.release();
        let (code, stdout, stderr) = finish(&mut child);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let held = sb.ids();
        let missing: Vec<i64> = before
            .iter()
            .filter(|id| held.binary_search(id).is_err())
            .copied()
            .collect();
        if check_paging {
            assert!(missing.is_empty(), "{name}: skipped {missing:?}");
            assert!(
                report["paging_shifts"].as_u64().unwrap_or(0) >= 1,
                "{name}: the shift was seen: {stdout}"
            );
        } else {
            assert_eq!(
                missing,
                [before[299]],
                "{name}: the event that ended page 3 before the insertion is lost"
            );
        }
        if inserts == 1 {
            assert!(
                held.binary_search(&inserted[0]).is_err(),
                "{name}: the event inserted among page 1's, after page 1 was read, arrived after its window was paged"
            );
        }
        sb.run(&["verify"]).expect(0);
        // `reconcile` finds what the sync could not: the inserted event, and the one a plain sync skipped.
        sb.run_env(
            &range_args("reconcile", &served, "2024-01-02", &[]),
            &SIM_CREDS,
        )
        .expect(8);
        assert_exact(&sb, &served);
        sb.run(&["verify"]).expect(0);
    }
}

#[test]
fn the_first_page_failing_after_the_pages_behind_it_came_back_stores_nothing_and_a_plain_sync_completes()
 {
    // One day, pages of 100, four requests at once: page 1 fails three times (with 200 ms between attempts)
    // while pages 2 to 4 come back at once. The window fails with nothing stored (no page before page 1),
    // the run fails (its only window failed), and the next plain sync completes it exactly.
    let served = serve(SimConfig {
        failing_pages: vec![FailingPage {
            at: at("2024-01-01T12:00:00Z"),
            page: 1,
            times: Some(3),
        }],
        ..config(2_000, 1)
    });
    let sb = Sandbox::new();
    let run = sb.run_env(
        &[
            "sync",
            "--quiet",
            "--base-url",
            &served.base,
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "--page-size",
            "100",
            "--concurrency",
            "4",
            "--max-attempts",
            "3",
            "--retry-delay",
            "200ms",
        ],
        &SIM_CREDS,
    );
    run.expect(4);
    let (received, _, _) = requests(&served);
    assert!(
        received >= 6,
        "pages after page 1 were asked for: {received}"
    );
    assert_eq!(sb.ids().len(), 0, "nothing stored before page 1");
    assert_eq!(
        sb.count("SELECT count(*) FROM windows WHERE status = 'failed' AND pages = 0"),
        1
    );
    assert_eq!(
        sb.count("SELECT count(*) FROM windows w JOIN seals s ON s.window_id = w.id"),
        1,
        "the failed window is sealed"
    );
    sb.run(&["verify"]).expect(9);
    plain_sync(&sb, &served).expect(0);
    assert_exact(&sb, &served);
    sb.run(&["verify"]).expect(0);
}

#[test]
fn pages_asked_for_past_the_end_that_fail_for_good_are_dropped() {
    // One day of 250 events, pages of 100, eight requests at once: pages 1 to 8 are asked for before the
    // first is answered. Pages 5 to 8, past the page that confirms the end (4), fail on every request (and
    // on a 404 server, pages 6 to 8 past the two 404s). Their failures must not fail the window.
    for past_end in [PastEnd::Empty, PastEnd::NotFound] {
        let failing_pages = (5..=8)
            .map(|page| FailingPage {
                at: at("2024-01-01T12:00:00Z"),
                page,
                times: None,
            })
            .collect();
        let served = serve(SimConfig {
            failing_pages,
            past_end,
            ..config(250, 1)
        });
        let sb = Sandbox::new();
        let run = sb.run_env(
            &sync_args(
                &served,
                "2024-01-02",
                &[
                    "--page-size",
                    "100",
                    "--concurrency",
                    "8",
                    "--max-attempts",
                    "2",
                ],
            ),
            &SIM_CREDS,
        );
        run.expect(0);
        assert_exact(&sb, &served);
        assert_eq!(
            sb.count("SELECT count(*) FROM windows WHERE status = 'complete'"),
            1,
            "{past_end:?}"
        );
        sb.run(&["verify"]).expect(0);
    }
}

/// An httpmock server for 1 January that serves `pages[n - 1]` for page n (ids as given, in the order given)
/// and an empty page after the last, whatever `pageSize` asks.
fn serve_pages(server: &MockServer, pages: Arc<Mutex<Vec<Vec<String>>>>) {
    server.mock(|when, then| {
        when.method("GET").path("/v1/events");
        then.respond_with(move |req: &HttpMockRequest| {
            if !authorized(req) {
                return json_response(401, r#"{"error":"Unauthorized","message":"bad token"}"#);
            }
            let page: usize = query_param(req, "page").unwrap().parse().unwrap();
            let pages = pages.lock().unwrap();
            let items = pages.get(page - 1).cloned().unwrap_or_default();
            json_response(200, &format!("[{}]", items.join(",")))
        });
    });
}

/// An event of 1 January, with `note` in its description (a different note is a changed event).
fn raw(id: i64, note: &str) -> String {
    let minute = id % 60;
    format!(
        r#"{{"id":{id},"timestamp":"2024-01-01T10:{minute:02}:00Z","category":"authentication","action":"user-login-success","description":"User u{id} logged in {note}","username":"u{id}","ipAddress":"10.0.0.1"}}"#
    )
}

#[test]
fn a_repeated_page_ahead_fails_the_window_after_the_pages_before_it() {
    // A server that ignores `page` from page 3 on (it serves page 2 again): the pages asked for ahead all
    // come back as page 2. The window keeps pages 1 and 2, fails as a loop, and stores nothing after them.
    let server = MockServer::start();
    let page = |ids: std::ops::Range<i64>| ids.map(|id| raw(id, "")).collect::<Vec<_>>();
    let second = page(6..11);
    let mut pages = vec![page(1..6)];
    pages.extend(std::iter::repeat_n(second, 40));
    serve_pages(&server, Arc::new(Mutex::new(pages)));
    let sb = Sandbox::new();
    let run = sb.run(&[
        "sync",
        "--quiet",
        "--base-url",
        &base(&server),
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--page-size",
        "5",
        "--concurrency",
        "8",
        "--retry-delay",
        "1ms",
    ]);
    run.expect(4);
    assert!(
        run.stderr
            .contains("the same content for page 3 as for page 2"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.ids(), (1..11).collect::<Vec<i64>>());
    assert_eq!(
        sb.count("SELECT pages FROM windows WHERE status = 'failed'"),
        2
    );
    sb.run(&["verify"]).expect(9);
}

#[test]
fn seals_made_from_the_lines_the_writer_gathers_are_the_seals_of_the_rows() {
    // One window, pages of 5 asked for ahead, whose items test every way the writer's gathered lines could
    // stop describing the rows: revisions of events of earlier pages (filed as revisions, not events), an
    // event repeated unchanged, a reject, an event of another day; then a second fetch (`--refetch`) after
    // the source changed, adding events and revisions to a window split across runs; then a fetch whose
    // pages are out of id order (the lines given up mid-window). `verify` recomputes every seal from the
    // rows: each must match.
    let server = MockServer::start();
    let ids = |r: std::ops::Range<i64>| r.map(|id| raw(id, "")).collect::<Vec<_>>();
    let mut first = vec![ids(1..6), ids(6..11), ids(11..16)];
    // Page 4: a revision of event 3, event 7 again unchanged, a reject, two new events.
    first.push(vec![
        raw(3, "(edited)"),
        raw(7, ""),
        r#"{"timestamp":"2024-01-01T10:00:00Z","category":"x","action":"y"}"#.to_string(),
        raw(16, ""),
        raw(17, ""),
    ]);
    // Page 5: an event of 2 January (outside the window), two new events, a second revision of event 3.
    first.push(vec![
        raw(18, ""),
        r#"{"id":19,"timestamp":"2024-01-02T10:00:00Z","category":"authentication","action":"user-logout","description":"d","username":"u","ipAddress":"10.0.0.2"}"#.to_string(),
        raw(20, ""),
        raw(3, "(edited twice)"),
        raw(21, ""),
    ]);
    first.push(ids(22..27));
    first.push(ids(27..29));
    let pages = Arc::new(Mutex::new(first));
    serve_pages(&server, Arc::clone(&pages));
    let sb = Sandbox::new();
    let args = |extra: &[&'static str]| {
        let mut args = vec![
            "sync".to_string(),
            "--quiet".into(),
            "--base-url".into(),
            base(&server),
            "--from".into(),
            "2024-01-01".into(),
            "--to".into(),
            "2024-01-02".into(),
            "--page-size".into(),
            "5".into(),
            "--concurrency".into(),
            "8".into(),
            "--retry-delay".into(),
            "1ms".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let run_args = |extra: &[&'static str]| {
        let args = args(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sb.run(&refs)
    };
    // The reject makes the run partial (exit 3).
    run_args(&[]).expect(3);
    assert_eq!(sb.ids(), (1..29).collect::<Vec<i64>>());
    assert_eq!(sb.count("SELECT count(*) FROM event_revisions"), 2);
    sb.run(&["verify"]).expect(0);

    // The source changes: event 12 edited, events 29 to 33 added; fetched again.
    {
        let mut pages = pages.lock().unwrap();
        pages[2][1] = raw(12, "(changed at the source)");
        pages[6].extend([29, 30, 31].map(|id| raw(id, "")));
        pages.push(ids(32..34));
    }
    run_args(&["--refetch"]).expect(3);
    assert_eq!(sb.ids(), (1..34).collect::<Vec<i64>>());
    assert_eq!(sb.count("SELECT count(*) FROM event_revisions"), 3);
    sb.run(&["verify"]).expect(0);

    // Fetched again, the later pages now out of id order, with new events among them.
    {
        let mut pages = pages.lock().unwrap();
        pages[7] = vec![raw(40, ""), raw(35, ""), raw(32, ""), raw(34, "")];
        pages.push(vec![raw(36, ""), raw(33, "")]);
    }
    run_args(&["--refetch"]).expect(3);
    let mut want: Vec<i64> = (1..37).collect();
    want.push(40);
    assert_eq!(sb.ids(), want);
    sb.run(&["verify"]).expect(0);
    assert_eq!(
        sb.count("SELECT count(*) FROM seals"),
        sb.count("SELECT count(*) FROM windows"),
        "every window fetch sealed"
    );
}

/// Starts a sync of 2024-01-01 to `to` with pages of 20 and eight requests at once, waits until the run
/// started after `after` has stored `pages` pages, and kills it.
fn kill_after_pages(sb: &Sandbox, served: &Served, to: &str, after: i64, pages: i64) {
    let args = sync_args(
        served,
        to,
        &[
            "--page-size",
            "20",
            "--concurrency",
            "8",
            "--timeout",
            "10m",
        ],
    );
    let mut child = start(sb, &args);
    sb.wait_for(&mut child, after, "pages stored", |p| p.pages >= pages);
    signal(&child, libc::SIGKILL);
    wait_or_hang(&mut child, "the killed sync");
}

/// After a kill: no duplicate, nothing foreign, complete windows whole, the search index exactly the events
/// of the window fetches up to its watermark; `verify` finds nothing tampered (exit 0 or 9, never 7).
/// Returns how many archived events were not indexed yet.
fn check_after_kill(sb: &Sandbox, source: &[(i64, i64)]) -> i64 {
    assert_crash_invariants(sb, source);
    let unindexed = assert_search_index_exact(sb);
    let verify = sb.run(&["verify"]);
    assert!(
        [0, 9].contains(&verify.code),
        "verify after a kill: {}\n{}",
        verify.stdout,
        verify.stderr
    );
    unindexed
}

#[test]
fn sigkill_at_three_depths_of_a_dense_day_paged_ahead_then_a_plain_sync_completes_it() {
    // One dense day of 8,000 events in 400 pages of 20, its pages from the 300th on held so the sync cannot
    // end; killed three times at growing depths (each run fetches the window again from its first page).
    let served = serve(config(8_000, 1));
    served
        .sim
        .hold_covering_from_page(at("2024-01-01T12:00:00Z"), 300);
    let sb = Sandbox::new();
    let source = served.sim.expected_times();
    let mut unindexed = Vec::new();
    for pages in [40, 150, 280] {
        let after = sb.last_run();
        kill_after_pages(&sb, &served, "2024-01-02", after, pages);
        unindexed.push(check_after_kill(&sb, &source));
    }
    served.sim.release();
    plain_sync(&sb, &served).expect(0);
    assert_exact(&sb, &served);
    sb.run(&["verify"]).expect(0);
    eprintln!("events not indexed yet at each kill: {unindexed:?}");
}

#[test]
fn prune_and_reconcile_after_a_sigkill_of_a_day_paged_ahead_keep_the_search_index_exact() {
    // Three days: the first two synced whole; then the third, dense, killed while paged ahead. `prune`
    // refuses while the killed run's window is open; a `reconcile` of the covered days closes it (and
    // indexes what it left); then the first day is pruned, and a plain sync completes the third. The search
    // index is exactly its events after every step.
    let day3 = at("2024-01-03").timestamp_millis();
    let served = serve(config(300, 2));
    served
        .sim
        .insert_late_events_between(6_000, day3, day3 + DAY_MS);
    served
        .sim
        .hold_covering_from_page(at("2024-01-03T12:00:00Z"), 250);
    let sb = Sandbox::new();
    sb.run_env(
        &sync_args(&served, "2024-01-03", &["--page-size", "20"]),
        &SIM_CREDS,
    )
    .expect(0);
    let first = sb.last_run();
    let source = served.sim.expected_times();
    let args = [
        "sync",
        "--quiet",
        "--base-url",
        &served.base,
        "--from",
        "2024-01-03",
        "--to",
        "2024-01-04",
        "--retry-delay",
        "1ms",
        "--page-size",
        "20",
        "--concurrency",
        "8",
        "--timeout",
        "10m",
    ];
    let mut child = start(&sb, &args);
    sb.wait_for(&mut child, first, "pages stored", |p| p.pages >= 120);
    signal(&child, libc::SIGKILL);
    wait_or_hang(&mut child, "the killed sync");
    check_after_kill(&sb, &source);

    sb.run(&["prune", "--before", "2024-01-02"]).expect(6);
    assert_search_index_exact(&sb);
    sb.run_env(
        &range_args("reconcile", &served, "2024-01-03", &[]),
        &SIM_CREDS,
    )
    .expect(0);
    assert_eq!(
        assert_search_index_exact(&sb),
        0,
        "the reconcile indexed what the killed run left"
    );
    sb.run(&["prune", "--before", "2024-01-02"]).expect(0);
    assert_eq!(assert_search_index_exact(&sb), 0);
    served.sim.release();
    plain_sync(&sb, &served).expect(0);
    assert_eq!(assert_search_index_exact(&sb), 0);
    let want: Vec<i64> = served
        .sim
        .expected_times()
        .into_iter()
        .filter(|(_, ms)| *ms >= DAY1 + DAY_MS)
        .map(|(id, _)| id)
        .collect::<std::collections::BTreeSet<i64>>()
        .into_iter()
        .collect();
    assert_eq!(sb.ids(), want, "the first day pruned, the others whole");
    sb.run(&["verify"]).expect(0);
}
