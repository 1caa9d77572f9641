//! Interval algebra over half-open time intervals `[start, end)`: merging, subtracting, the gaps between.
//!
//! One implementation serves the planner (what to fetch), retention (what to prune), `status` (coverage and
//! gaps) and `verify` (gaps). All pure, table-tested.

use crate::time::{self, Timestamp};

/// A half-open time interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    /// First instant inside the interval.
    pub start: Timestamp,
    /// First instant after the interval.
    pub end: Timestamp,
}

impl Interval {
    /// Builds an interval; `start` must not be after `end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Self {
        debug_assert!(start <= end, "interval start after end");
        Interval { start, end }
    }

    /// Builds an interval if `start` is not after `end`.
    pub fn checked(start: Timestamp, end: Timestamp) -> Option<Self> {
        (start <= end).then_some(Interval { start, end })
    }

    /// Parses an interval from two times in the archive's stored form; `None` if either does not parse or
    /// the start is after the end (a damaged row, which `verify` reports by other means).
    pub fn from_stored(start: &str, end: &str) -> Option<Self> {
        Self::checked(time::from_stored(start)?, time::from_stored(end)?)
    }

    /// Whether the interval holds no instant.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// Whether `t` lies inside.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// Whether `other` lies wholly inside.
    pub fn encloses(&self, other: &Interval) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the two share an instant.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}, {})",
            time::to_api(self.start),
            time::to_api(self.end)
        )
    }
}

/// Merges intervals into a sorted list of disjoint ones; touching intervals are joined.
pub fn merge_intervals(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.retain(|i| !i.is_empty());
    intervals.sort();
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for i in intervals {
        match merged.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => merged.push(i),
        }
    }
    merged
}

/// The holes between sorted, disjoint intervals.
pub fn gaps_between(merged: &[Interval]) -> Vec<Interval> {
    merged
        .windows(2)
        .map(|w| Interval::new(w[0].end, w[1].start))
        .collect()
}

/// The parts of `range` not inside any of the sorted, disjoint `covered` intervals.
pub fn subtract(range: Interval, covered: &[Interval]) -> Vec<Interval> {
    let mut parts = Vec::new();
    let mut cursor = range.start;
    for c in covered {
        if c.end <= cursor || c.start >= range.end {
            continue;
        }
        if c.start > cursor {
            parts.push(Interval::new(cursor, c.start));
        }
        cursor = cursor.max(c.end);
        if cursor >= range.end {
            break;
        }
    }
    if cursor < range.end {
        parts.push(Interval::new(cursor, range.end));
    }
    parts
}

/// Removes the sorted, disjoint `removed` intervals from each of `intervals`.
pub fn subtract_all(intervals: Vec<Interval>, removed: &[Interval]) -> Vec<Interval> {
    if removed.is_empty() {
        return intervals;
    }
    intervals
        .into_iter()
        .flat_map(|w| subtract(w, removed))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(a: i64, b: i64) -> Interval {
        let t = |h: i64| chrono::DateTime::from_timestamp(h * 3600, 0).unwrap();
        Interval::new(t(a), t(b))
    }

    #[test]
    fn merging() {
        let cases = [
            (vec![], vec![]),
            (vec![iv(0, 1)], vec![iv(0, 1)]),
            (vec![iv(2, 3), iv(0, 1)], vec![iv(0, 1), iv(2, 3)]),
            (vec![iv(0, 1), iv(1, 2)], vec![iv(0, 2)]),
            (vec![iv(0, 5), iv(1, 2), iv(4, 7)], vec![iv(0, 7)]),
            (vec![iv(3, 3), iv(0, 1)], vec![iv(0, 1)]),
        ];
        for (input, want) in cases {
            assert_eq!(merge_intervals(input.clone()), want, "{input:?}");
        }
        assert_eq!(
            gaps_between(&[iv(0, 1), iv(2, 3), iv(5, 6)]),
            vec![iv(1, 2), iv(3, 5)]
        );
    }

    #[test]
    fn subtracting() {
        let cases = [
            ("nothing removed", iv(0, 5), vec![], vec![iv(0, 5)]),
            ("all removed", iv(1, 2), vec![iv(0, 5)], vec![]),
            ("a hole", iv(0, 5), vec![iv(1, 2)], vec![iv(0, 1), iv(2, 5)]),
            (
                "edges",
                iv(1, 9),
                vec![iv(0, 2), iv(4, 5), iv(8, 10)],
                vec![iv(2, 4), iv(5, 8)],
            ),
            (
                "disjoint",
                iv(3, 4),
                vec![iv(0, 1), iv(6, 7)],
                vec![iv(3, 4)],
            ),
        ];
        for (name, range, removed, want) in cases {
            assert_eq!(subtract(range, &removed), want, "{name}");
        }
        assert_eq!(
            subtract_all(vec![iv(0, 2), iv(3, 6)], &[iv(1, 4)]),
            vec![iv(0, 1), iv(4, 6)]
        );
        assert_eq!(subtract_all(vec![iv(0, 2)], &[]), vec![iv(0, 2)]);
    }

    #[test]
    fn predicates() {
        assert!(iv(0, 2).contains(iv(1, 1).start));
        assert!(!iv(0, 2).contains(iv(2, 2).start));
        assert!(iv(0, 4).encloses(&iv(1, 4)));
        assert!(!iv(0, 4).encloses(&iv(1, 5)));
        assert!(iv(0, 2).overlaps(&iv(1, 3)));
        assert!(!iv(0, 2).overlaps(&iv(2, 3)));
        assert_eq!(Interval::checked(iv(2, 2).start, iv(1, 1).start), None);
        assert_eq!(
            Interval::from_stored("2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z")
                .map(|i| i.end - i.start),
            Some(chrono::TimeDelta::days(1))
        );
        assert_eq!(Interval::from_stored("x", "2024-01-02T00:00:00.000Z"), None);
    }
}
