//! The window planner: which windows a run fetches.
//!
//! Inputs: the run's range, the intervals the ledger already covers, an optional point from which everything
//! is read again regardless (the lookback of a continuing sync, or the start of a `--refetch`), and the window
//! size. Output: windows that tile exactly the part of the range that needs reading, cut at multiples of the
//! window size since the Unix epoch, so that repeated runs cut the same windows.
//!
//! Boundaries: the API does not say whether `createdFrom`/`createdTo` are inclusive. A window `[s, e)` asks for
//! `createdFrom = s - BOUNDARY_OVERLAP`, `createdTo = e`. Under the exclusive reading the server returns
//! `(s - 1s, e)`, under the inclusive one `[s - 1s, e]`: both hold all of `[s, e)`. An event exactly on `e` is
//! also the next window's (`[e, ...)`), which asks from `e - 1s`. Events fetched twice are absorbed by the
//! primary key; so every event is archived exactly once whichever reading the server follows.

use crate::model::{Interval, merge_intervals, subtract, subtract_all};
use crate::time::Timestamp;
use chrono::TimeDelta;

/// How far before its start a window asks the server to begin (see the module docs).
pub const BOUNDARY_OVERLAP: TimeDelta = TimeDelta::seconds(1);

/// Plans the windows of a run.
pub fn plan(
    range: Interval,
    covered: &[Interval],
    force_from: Option<Timestamp>,
    window: TimeDelta,
) -> Vec<Interval> {
    assert!(
        window >= TimeDelta::seconds(1),
        "windows are at least one second"
    );
    if range.is_empty() {
        return Vec::new();
    }
    let mut needed = subtract(range, &merge_intervals(covered.to_vec()));
    if let Some(from) = force_from {
        let from = from.clamp(range.start, range.end);
        needed.push(Interval::new(from, range.end));
    }
    merge_intervals(needed)
        .into_iter()
        .flat_map(|i| split(i, window))
        .collect()
}

/// Where a sync starts reading, and from where it reads everything again even if covered: `(start,
/// force_from)`. With `--from`, there (and, with `--refetch`, everything from there). Without, from the earliest
/// of what any sync of this source was asked for and what it covers, so a range a killed or failed run left
/// unfetched is fetched wherever it lies, re-reading the last `lookback` of the coverage (late arrivals), or
/// all of it with `--refetch`. `None` when the archive has neither coverage nor intents for the source.
pub fn start(
    from: Option<Timestamp>,
    covered: &[Interval],
    wanted: &[Interval],
    refetch: bool,
    lookback: TimeDelta,
) -> Option<(Timestamp, Option<Timestamp>)> {
    if let Some(from) = from {
        return Some((from, refetch.then_some(from)));
    }
    let earliest = [covered.first(), wanted.first()]
        .into_iter()
        .flatten()
        .map(|i| i.start)
        .min()?;
    let force = match covered.last() {
        _ if refetch => Some(earliest),
        Some(last) => Some(last.end - lookback),
        None => None,
    };
    Some((earliest, force))
}

/// Plans the windows of a `reconcile`: the covered parts of `range`, cut like a sync's windows, so that
/// reading them again compares like with like.
pub fn plan_reconcile(range: Interval, covered: &[Interval], window: TimeDelta) -> Vec<Interval> {
    let uncovered = subtract(range, &merge_intervals(covered.to_vec()));
    subtract_all(vec![range], &uncovered)
        .into_iter()
        .flat_map(|i| split(i, window))
        .collect()
}

/// Cuts an interval at multiples of `window` since the epoch.
fn split(interval: Interval, window: TimeDelta) -> Vec<Interval> {
    let step = window.num_seconds();
    let mut out = Vec::new();
    let mut start = interval.start;
    while start < interval.end {
        let next_boundary = (start.timestamp().div_euclid(step) + 1) * step;
        let boundary = chrono::DateTime::from_timestamp(next_boundary, 0).unwrap_or(interval.end);
        let end = boundary.min(interval.end);
        out.push(Interval::new(start, end));
        start = end;
    }
    out
}

/// The bounds a window asks the server for: `(createdFrom, createdTo)`.
pub fn request_bounds(window: Interval) -> (Timestamp, Timestamp) {
    (window.start - BOUNDARY_OVERLAP, window.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_time_arg;

    fn t(text: &str) -> Timestamp {
        parse_time_arg(text).unwrap()
    }

    fn iv(a: &str, b: &str) -> Interval {
        Interval::new(t(a), t(b))
    }

    const DAY: TimeDelta = TimeDelta::days(1);
    const HOUR: TimeDelta = TimeDelta::hours(1);

    /// (what it shows, range, covered, forced re-read from, window size, the windows planned)
    type Case = (
        &'static str,
        Interval,
        Vec<Interval>,
        Option<Timestamp>,
        TimeDelta,
        Vec<Interval>,
    );

    fn check(cases: Vec<Case>) {
        for (name, range, covered, force, window, want) in cases {
            assert_eq!(plan(range, &covered, force, window), want, "{name}");
        }
    }

    #[test]
    fn plans_cut_what_is_not_covered() {
        check(vec![
            (
                "empty archive: the range cut on day boundaries",
                iv("2024-01-01T12:00:00Z", "2024-01-03T06:00:00Z"),
                vec![],
                None,
                DAY,
                vec![
                    iv("2024-01-01T12:00:00Z", "2024-01-02"),
                    iv("2024-01-02", "2024-01-03"),
                    iv("2024-01-03", "2024-01-03T06:00:00Z"),
                ],
            ),
            (
                "covered windows are skipped",
                iv("2024-01-01", "2024-01-04"),
                vec![iv("2024-01-02", "2024-01-03")],
                None,
                DAY,
                vec![
                    iv("2024-01-01", "2024-01-02"),
                    iv("2024-01-03", "2024-01-04"),
                ],
            ),
            (
                "fully covered: nothing to do",
                iv("2024-01-01", "2024-01-02"),
                vec![iv("2023-12-01", "2024-02-01")],
                None,
                DAY,
                vec![],
            ),
            (
                "empty range",
                iv("2024-01-01", "2024-01-01"),
                vec![],
                None,
                HOUR,
                vec![],
            ),
        ]);
    }

    #[test]
    fn plans_fill_gaps_and_odd_edges() {
        check(vec![
            (
                "a gap inside the coverage is filled",
                iv("2024-01-01", "2024-01-01T03:00:00Z"),
                vec![
                    iv("2024-01-01", "2024-01-01T01:00:00Z"),
                    iv("2024-01-01T02:00:00Z", "2024-01-01T03:00:00Z"),
                ],
                None,
                HOUR,
                vec![iv("2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z")],
            ),
            (
                "odd covered edges leave odd slivers",
                iv("2024-01-01", "2024-01-01T02:00:00Z"),
                vec![iv("2024-01-01T00:00:00Z", "2024-01-01T00:59:58Z")],
                None,
                HOUR,
                vec![
                    iv("2024-01-01T00:59:58Z", "2024-01-01T01:00:00Z"),
                    iv("2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"),
                ],
            ),
        ]);
    }

    #[test]
    fn plans_read_again_what_is_forced() {
        check(vec![
            (
                "lookback is read again although covered",
                iv("2024-01-01", "2024-01-01T05:00:00Z"),
                vec![iv("2024-01-01", "2024-01-01T04:00:00Z")],
                Some(t("2024-01-01T03:00:00Z")),
                HOUR,
                vec![
                    iv("2024-01-01T03:00:00Z", "2024-01-01T04:00:00Z"),
                    iv("2024-01-01T04:00:00Z", "2024-01-01T05:00:00Z"),
                ],
            ),
            (
                "refetch from the start reads everything",
                iv("2024-01-01", "2024-01-01T02:00:00Z"),
                vec![iv("2024-01-01", "2024-01-01T02:00:00Z")],
                Some(t("2024-01-01")),
                HOUR,
                vec![
                    iv("2024-01-01", "2024-01-01T01:00:00Z"),
                    iv("2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"),
                ],
            ),
        ]);
    }

    #[test]
    fn where_a_sync_starts() {
        let lookback = HOUR;
        let cases = [
            (
                "an empty archive with no intent: nowhere to start",
                None,
                vec![],
                vec![],
                false,
                None,
            ),
            (
                "--from wins",
                Some(t("2024-03-01")),
                vec![iv("2024-01-01", "2024-02-01")],
                vec![],
                false,
                Some((t("2024-03-01"), None)),
            ),
            (
                "--from with --refetch reads everything from there",
                Some(t("2024-03-01")),
                vec![],
                vec![],
                true,
                Some((t("2024-03-01"), Some(t("2024-03-01")))),
            ),
            (
                "a plain sync continues with the lookback",
                None,
                vec![iv("2024-01-01", "2024-02-01")],
                vec![iv("2024-01-01", "2024-02-01")],
                false,
                Some((t("2024-01-01"), Some(t("2024-01-31T23:00:00Z")))),
            ),
            (
                "a first backfill killed before any page is resumed",
                None,
                vec![],
                vec![iv("2023-01-01", "2024-01-01")],
                false,
                Some((t("2023-01-01"), None)),
            ),
            (
                "an earlier range that failed before its first page is fetched",
                None,
                vec![iv("2024-01-02", "2024-02-01")],
                vec![iv("2024-01-01", "2024-02-01")],
                false,
                Some((t("2024-01-01"), Some(t("2024-01-31T23:00:00Z")))),
            ),
            (
                "--refetch without --from reads everything asked for",
                None,
                vec![iv("2024-01-02", "2024-02-01")],
                vec![iv("2024-01-01", "2024-02-01")],
                true,
                Some((t("2024-01-01"), Some(t("2024-01-01")))),
            ),
        ];
        for (name, from, covered, wanted, refetch, want) in cases {
            assert_eq!(
                start(from, &covered, &wanted, refetch, lookback),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn retired_ranges_are_never_planned() {
        let retired = [iv("2024-01-02", "2024-01-04")];
        let cases = [
            (
                vec![
                    iv("2024-01-01", "2024-01-02"),
                    iv("2024-01-02", "2024-01-03"),
                ],
                vec![iv("2024-01-01", "2024-01-02")],
            ),
            (
                vec![iv("2024-01-03T12:00:00Z", "2024-01-05")],
                vec![iv("2024-01-04", "2024-01-05")],
            ),
            (
                vec![iv("2024-01-01", "2024-01-06")],
                vec![
                    iv("2024-01-01", "2024-01-02"),
                    iv("2024-01-04", "2024-01-06"),
                ],
            ),
        ];
        for (windows, want) in cases {
            assert_eq!(subtract_all(windows.clone(), &retired), want, "{windows:?}");
        }
        assert_eq!(
            subtract_all(vec![iv("2024-01-01", "2024-01-02")], &[]).len(),
            1
        );
    }

    #[test]
    fn reconcile_reads_only_covered_parts_on_the_grid() {
        let cases = [
            (
                "covered days inside the range",
                iv("2024-01-01", "2024-01-05"),
                vec![
                    iv("2024-01-01", "2024-01-02"),
                    iv("2024-01-03", "2024-01-04"),
                ],
                vec![
                    iv("2024-01-01", "2024-01-02"),
                    iv("2024-01-03", "2024-01-04"),
                ],
            ),
            (
                "the range cuts a covered stretch",
                iv("2024-01-01T12:00:00Z", "2024-01-03"),
                vec![iv("2023-12-01", "2024-02-01")],
                vec![
                    iv("2024-01-01T12:00:00Z", "2024-01-02"),
                    iv("2024-01-02", "2024-01-03"),
                ],
            ),
            (
                "nothing covered",
                iv("2024-01-01", "2024-01-03"),
                vec![],
                vec![],
            ),
        ];
        for (name, range, covered, want) in cases {
            assert_eq!(plan_reconcile(range, &covered, DAY), want, "{name}");
        }
    }

    #[test]
    fn request_bounds_overlap_the_previous_window_by_one_second() {
        let (from, to) = request_bounds(iv("2024-01-02", "2024-01-03"));
        assert_eq!(crate::time::to_api(from), "2024-01-01T23:59:59Z");
        assert_eq!(crate::time::to_api(to), "2024-01-03T00:00:00Z");
    }
}
