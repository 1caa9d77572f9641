//! Domain types shared by the sync engine and the store: what an archived event, a rejected item and a page
//! of them are, independent of how the API spells them on the wire.

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

    /// Whether the interval holds no instant.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
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

/// The server-side filters a sync was run with; the empty string means "no filter".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters {
    /// The `category` filter as passed to the API (`xyz`, `in:x,y`, `like:xyz`).
    pub category: String,
    /// The `action` filter as passed to the API.
    pub action: String,
}

impl Filters {
    /// Whether no filter is set (the run reads every event).
    pub fn is_none(&self) -> bool {
        self.category.is_empty() && self.action.is_empty()
    }
}

/// An event ready to be archived.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The API's event id, the archive's primary key.
    pub id: i64,
    /// The timestamp normalised to `YYYY-MM-DDTHH:MM:SS.sssZ`.
    pub timestamp: String,
    /// The category (empty when the server sent none).
    pub category: String,
    /// The action (empty when the server sent none).
    pub action: String,
    /// The description, if any.
    pub description: Option<String>,
    /// The username, if any.
    pub username: Option<String>,
    /// The IP address, if any, as sent.
    pub ip_address: Option<String>,
    /// The item's JSON exactly as received.
    pub raw: String,
    /// Hex SHA-256 of `raw`.
    pub digest: String,
    /// Whether the timestamp lies outside the bounds the window asked the server for.
    pub out_of_window: bool,
}

/// An item that cannot be archived as an event, kept as received with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// The item's text exactly as received.
    pub raw: String,
    /// Why it could not be archived.
    pub reason: String,
}

/// One item of a page, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An archivable event.
    Event(Event),
    /// An item for the rejects table.
    Reject(Reject),
}

/// A window of a sync run as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// The interval the window is responsible for.
    pub interval: Interval,
    /// The filters it was fetched with.
    pub filters: Filters,
    /// `createdFrom` exactly as sent.
    pub created_from: String,
    /// `createdTo` exactly as sent.
    pub created_to: String,
}

/// One fetched page on its way to the archive: committed, with its bookkeeping, in one transaction.
#[derive(Debug)]
pub struct PageBatch {
    /// The window's position in the run's plan (the writer maps it to a ledger row).
    pub window_seq: usize,
    /// The window being paged.
    pub window: std::sync::Arc<WindowSpec>,
    /// 1-based page number.
    pub page: u32,
    /// The page's items in server order.
    pub items: Vec<Item>,
    /// Whether this is the window's last page: its commit marks the window complete.
    pub last: bool,
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
}
