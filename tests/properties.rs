//! Property tests: the window planner tiles exactly what needs reading, and the timestamp normaliser keeps
//! every instant and sorts as time.

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use elevate_archive::model::{Interval, merge_intervals};
use elevate_archive::sync::planner::{BOUNDARY_OVERLAP, plan, request_bounds};
use elevate_archive::time::{parse_server_timestamp, to_stored};
use proptest::prelude::*;

const BASE: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(BASE + secs, 0).unwrap()
}

/// An interval of whole seconds within a few days of BASE.
fn interval() -> impl Strategy<Value = Interval> {
    (0i64..400_000, 1i64..200_000)
        .prop_map(|(start, len)| Interval::new(at(start), at(start + len)))
}

fn covers(intervals: &[Interval], t: DateTime<Utc>) -> bool {
    intervals.iter().any(|i| i.start <= t && t < i.end)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn windows_tile_the_range_without_gap_or_overlap(
        range in interval(),
        covered in prop::collection::vec(interval(), 0..6),
        force in prop::option::of(0i64..600_000),
        window_secs in prop::sample::select(vec![59i64, 60, 900, 3_600, 21_600, 86_400, 100_000]),
    ) {
        let window = TimeDelta::seconds(window_secs);
        let force_from = force.map(at);
        let windows = plan(range, &covered, force_from, window);
        let merged = merge_intervals(covered.clone());
        for w in &windows {
            // Inside the range, non-empty, no longer than a window, cut on the grid or on an edge.
            prop_assert!(range.start <= w.start && w.end <= range.end && w.start < w.end);
            prop_assert!(w.end - w.start <= window);
            let on_grid = |t: DateTime<Utc>| t.timestamp() % window_secs == 0;
            let on_edge = |t: DateTime<Utc>| t == range.start || t == range.end || Some(t) == force_from
                || merged.iter().any(|c| c.start == t || c.end == t);
            prop_assert!(on_grid(w.end) || on_edge(w.end), "window end {} is neither on the grid nor an edge", w.end);
        }
        // Sorted, and no two windows overlap.
        for pair in windows.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start);
        }
        // No gap: every second of the range is covered by the archive or by a planned window, and everything
        // from the forced point on is planned.
        let mut t = range.start;
        let step = TimeDelta::seconds(((range.end - range.start).num_seconds() / 500).max(1));
        while t < range.end {
            prop_assert!(covers(&windows, t) || covers(&merged, t), "gap at {t}");
            if force_from.is_some_and(|f| t >= f) {
                prop_assert!(covers(&windows, t), "{t} is after the forced start but not planned");
            }
            t += step;
        }
        // Nothing covered is planned again unless forced.
        for w in &windows {
            if force_from.is_none_or(|f| w.start < f) {
                let inside_covered = merged.iter().any(|c| c.start <= w.start && w.end <= c.end);
                prop_assert!(!inside_covered || force_from.is_some_and(|f| w.end > f));
            }
        }
        // The deliberate overlap: each window asks from one second before its start, up to its end.
        for w in &windows {
            let (from, to) = request_bounds(*w);
            prop_assert_eq!(w.start - from, BOUNDARY_OVERLAP);
            prop_assert_eq!(to, w.end);
        }
    }

    #[test]
    fn normalised_timestamps_keep_the_instant_and_sort_as_time(
        secs in -2_000_000_000i64..4_000_000_000,
        millis in 0i64..1000,
        offset_minutes in -14 * 60i32..=14 * 60,
        style in 0u8..4,
        later_by_ms in 0i64..100_000_000,
    ) {
        let t = DateTime::from_timestamp_millis(secs * 1000 + millis).unwrap();
        let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
        let local = t.with_timezone(&offset);
        let text = match style {
            0 => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            1 => local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
            2 => local.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string(),
            _ => t.format("%Y-%m-%d %H:%M:%S%.9fZ").to_string(),
        };
        let parsed = parse_server_timestamp(&text);
        prop_assert_eq!(parsed, Some(t), "{}", text);
        let stored = to_stored(t);
        prop_assert_eq!(stored.len(), 24);
        let later = to_stored(t + TimeDelta::milliseconds(later_by_ms));
        prop_assert!(stored <= later, "{} sorts after {}", stored, later);
        prop_assert_eq!(parse_server_timestamp(&stored), Some(t));
    }
}
