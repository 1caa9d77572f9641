//! Coverage: what the archive was asked to fetch, what it holds, and what is still missing, per source.
//!
//! Terms:
//! - a **source** is an API base URL with a set of filters: windows fetched against a sandbox never count as
//!   covered for production, and a filtered window holds only the events its filters select;
//! - an **intent** is what a sync run was asked to fetch: its range, recorded with its source in the same
//!   transaction that starts the run, before any request (the `runs` row of a `sync`);
//! - a range is **covered** for a source by the complete window fetches of that source made with the same
//!   filters or with none (an unfiltered fetch holds every event);
//! - a range is **missing** (not yet fetched) when an intent of the source holds it and it is neither covered
//!   nor pruned. A plain `sync` fetches every missing range, wherever it lies; `status` names them and `verify`
//!   fails until they are filled.
//!
//! The loaders read the ledger and the intents; everything else here is pure and table-tested.

use super::{SqlContext, StoreError};
use crate::model::{Filters, Interval, RunKind, WindowStatus, merge_intervals, subtract_all};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::BTreeMap;

/// A window fetch as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWindow {
    /// The range it is responsible for.
    pub interval: Interval,
    /// The API base URL of its run.
    pub base_url: String,
    /// The filters it was fetched with.
    pub filters: Filters,
    /// Where it stands.
    pub status: WindowStatus,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What a sync run was asked to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The range asked for.
    pub range: Interval,
    /// The API base URL.
    pub base_url: String,
    /// The filters.
    pub filters: Filters,
}

/// A range asked for and not fetched yet, as `status` and `verify` report it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MissingRange {
    /// The API base URL it was asked of.
    pub base_url: String,
    /// `category` filter ("" for none).
    pub category_filter: String,
    /// `action` filter ("" for none).
    pub action_filter: String,
    /// Start (stored form).
    pub from: String,
    /// End (stored form).
    pub to: String,
}

/// Every window fetch of the ledger whose range and filters read back (others are `verify`'s business).
pub fn ledger_windows(conn: &Connection) -> Result<Vec<LedgerWindow>, StoreError> {
    let ctx = || "cannot read the ledger".to_string();
    let mut stmt = conn
        .prepare_cached(
            "SELECT w.window_start, w.window_end, w.category_filter, w.action_filter, w.status, r.base_url, w.error
             FROM windows w JOIN runs r ON r.id = w.run_id ORDER BY w.id",
        )
        .context(ctx)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, WindowStatus>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .context(ctx)?;
    let mut windows = Vec::new();
    for row in rows {
        let (start, end, category, action, status, base_url, error) = row.context(ctx)?;
        if let (Some(interval), Some(filters)) = (
            Interval::from_stored(&start, &end),
            Filters::from_ledger(&category, &action),
        ) {
            windows.push(LedgerWindow {
                interval,
                base_url,
                filters,
                status,
                error,
            });
        }
    }
    Ok(windows)
}

/// What every sync run was asked to fetch, oldest first.
pub fn intents(conn: &Connection) -> Result<Vec<Intent>, StoreError> {
    let ctx = || "cannot read what the runs were asked to fetch".to_string();
    let mut stmt = conn
        .prepare_cached(
            "SELECT range_from, range_to, category_filter, action_filter, base_url FROM runs
             WHERE kind = ?1 ORDER BY id",
        )
        .context(ctx)?;
    let rows = stmt
        .query_map([RunKind::Sync], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .context(ctx)?;
    let mut intents = Vec::new();
    for row in rows {
        let (from, to, category, action, base_url) = row.context(ctx)?;
        if let (Some(range), Some(filters)) = (
            Interval::from_stored(&from, &to),
            Filters::from_ledger(&category, &action),
        ) {
            intents.push(Intent {
                range,
                base_url,
                filters,
            });
        }
    }
    Ok(intents)
}

/// The source a plain `sync` keeps up to date: the base URL of the latest sync, if any sync was run.
pub fn primary_source(intents: &[Intent]) -> Option<&str> {
    intents.last().map(|i| i.base_url.as_str())
}

/// The intervals covered for a source by the complete fetches among `windows`: those of the same base URL
/// made with the same filters, or with none. Sorted, disjoint.
pub fn covered_for(windows: &[LedgerWindow], base_url: &str, filters: &Filters) -> Vec<Interval> {
    merge_intervals(
        windows
            .iter()
            .filter(|w| w.status == WindowStatus::Complete && w.base_url == base_url)
            .filter(|w| w.filters.is_none() || w.filters == *filters)
            .map(|w| w.interval)
            .collect(),
    )
}

/// The ranges the sync runs of a source were asked to fetch. Sorted, disjoint.
pub fn wanted_for(intents: &[Intent], base_url: &str, filters: &Filters) -> Vec<Interval> {
    merge_intervals(
        intents
            .iter()
            .filter(|i| i.base_url == base_url && i.filters == *filters)
            .map(|i| i.range)
            .collect(),
    )
}

/// What was asked for and is neither covered nor pruned.
pub fn unfetched(wanted: &[Interval], covered: &[Interval], pruned: &[Interval]) -> Vec<Interval> {
    let done = merge_intervals(covered.iter().chain(pruned).copied().collect());
    subtract_all(wanted.to_vec(), &done)
}

/// Every source some sync run was asked about, in a stable order (base URL, then filters).
pub fn sources(intents: &[Intent]) -> Vec<(String, Filters)> {
    let mut seen: BTreeMap<(String, String, String), Filters> = BTreeMap::new();
    for i in intents {
        let (c, a) = i.filters.to_ledger();
        seen.entry((i.base_url.clone(), c, a))
            .or_insert_with(|| i.filters.clone());
    }
    seen.into_iter()
        .map(|((base, _, _), f)| (base, f))
        .collect()
}

/// Every range asked for and not yet fetched, for every source.
pub fn missing(
    windows: &[LedgerWindow],
    intents: &[Intent],
    pruned: &[Interval],
) -> Vec<MissingRange> {
    let mut out = Vec::new();
    for (base_url, filters) in sources(intents) {
        let wanted = wanted_for(intents, &base_url, &filters);
        let covered = covered_for(windows, &base_url, &filters);
        let (category_filter, action_filter) = filters.to_ledger();
        for gap in unfetched(&wanted, &covered, pruned) {
            out.push(MissingRange {
                base_url: base_url.clone(),
                category_filter: category_filter.clone(),
                action_filter: action_filter.clone(),
                from: crate::time::to_stored(gap.start),
                to: crate::time::to_stored(gap.end),
            });
        }
    }
    out
}

/// Window fetches that ended without their last page and whose range no complete fetch of their source
/// covers: what the next plain `sync` fetches again.
pub fn incomplete<'a>(windows: &'a [LedgerWindow], pruned: &[Interval]) -> Vec<&'a LedgerWindow> {
    let mut coverage: BTreeMap<(String, String, String), Vec<Interval>> = BTreeMap::new();
    let mut out = Vec::new();
    for w in windows.iter().filter(|w| w.status.is_incomplete()) {
        let (c, a) = w.filters.to_ledger();
        let cover = coverage
            .entry((w.base_url.clone(), c, a))
            .or_insert_with(|| {
                let mut done = covered_for(windows, &w.base_url, &w.filters);
                done.extend_from_slice(pruned);
                merge_intervals(done)
            });
        if !cover.iter().any(|c| c.encloses(&w.interval)) {
            out.push(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Filter;
    use crate::time::{self, Timestamp};
    use WindowStatus::{Complete, Failed, Interrupted, Running};

    const PROD: &str = "https://rest.elevatebilling.com/v1";
    const SANDBOX: &str = "https://sandbox.example/v1";

    fn t(text: &str) -> Timestamp {
        time::parse_time_arg(text).unwrap()
    }

    fn iv(a: &str, b: &str) -> Interval {
        Interval::new(t(a), t(b))
    }

    fn filters(category: Option<&str>) -> Filters {
        Filters {
            category: category.map(|c| Filter::parse(c).unwrap()),
            action: None,
        }
    }

    fn w(from: &str, to: &str, category: Option<&str>, status: WindowStatus) -> LedgerWindow {
        LedgerWindow {
            interval: iv(from, to),
            base_url: PROD.into(),
            filters: filters(category),
            status,
            error: None,
        }
    }

    fn intent(from: &str, to: &str, base_url: &str) -> Intent {
        Intent {
            range: iv(from, to),
            base_url: base_url.into(),
            filters: Filters::default(),
        }
    }

    #[test]
    fn incomplete_windows_are_those_no_later_fetch_covers() {
        let cases = [
            (
                "nothing failed",
                vec![w("2024-01-01", "2024-01-02", None, Complete)],
                vec![],
                0,
            ),
            (
                "a failed day, never fetched again",
                vec![
                    w("2024-01-01", "2024-01-02", None, Complete),
                    w("2024-01-02", "2024-01-03", None, Failed),
                ],
                vec![],
                1,
            ),
            (
                "a failed day fetched again later",
                vec![
                    w("2024-01-02", "2024-01-03", None, Interrupted),
                    w("2024-01-02", "2024-01-03", None, Complete),
                ],
                vec![],
                0,
            ),
            (
                "a filtered fetch does not cover an unfiltered failure",
                vec![
                    w("2024-01-02", "2024-01-03", None, Failed),
                    w("2024-01-02", "2024-01-03", Some("billing"), Complete),
                ],
                vec![],
                1,
            ),
            (
                "an unfiltered fetch covers a filtered failure",
                vec![
                    w("2024-01-02", "2024-01-03", Some("billing"), Running),
                    w("2024-01-01", "2024-01-04", None, Complete),
                ],
                vec![],
                0,
            ),
            (
                "partly covered is still incomplete",
                vec![
                    w("2024-01-02", "2024-01-04", None, Failed),
                    w("2024-01-02", "2024-01-03", None, Complete),
                ],
                vec![],
                1,
            ),
            (
                "a failed window that was pruned since is not incomplete",
                vec![w("2024-01-02", "2024-01-03", None, Failed)],
                vec![iv("2024-01-01", "2024-01-05")],
                0,
            ),
        ];
        for (name, windows, pruned, want) in cases {
            assert_eq!(incomplete(&windows, &pruned).len(), want, "{name}");
        }
    }

    #[test]
    fn coverage_is_per_base_url_and_counts_unfiltered_fetches_for_any_filter() {
        let mut sandbox = w("2024-01-05", "2024-01-06", None, Complete);
        sandbox.base_url = SANDBOX.into();
        let windows = vec![
            w("2024-01-01", "2024-01-02", None, Complete),
            w("2024-01-02", "2024-01-03", Some("billing"), Complete),
            w("2024-01-03", "2024-01-04", Some("in:a,b"), Complete),
            w("2024-01-04", "2024-01-05", None, Failed),
            sandbox,
        ];
        assert_eq!(
            covered_for(&windows, PROD, &Filters::default()),
            vec![iv("2024-01-01", "2024-01-02")]
        );
        assert_eq!(
            covered_for(&windows, PROD, &filters(Some("billing"))),
            vec![iv("2024-01-01", "2024-01-03")]
        );
        assert_eq!(
            covered_for(&windows, SANDBOX, &Filters::default()),
            vec![iv("2024-01-05", "2024-01-06")]
        );
        assert_eq!(
            covered_for(&windows, "https://other/v1", &Filters::default()),
            vec![]
        );
    }

    #[test]
    fn missing_is_what_was_asked_for_and_is_neither_covered_nor_pruned() {
        /// (name, intents, ledger, pruned, missing expected).
        type Case = (
            &'static str,
            Vec<Intent>,
            Vec<LedgerWindow>,
            Vec<Interval>,
            Vec<Interval>,
        );
        let cases: Vec<Case> = vec![
            (
                "a first backfill killed before any page",
                vec![intent("2024-01-01", "2024-01-10", PROD)],
                vec![],
                vec![],
                vec![iv("2024-01-01", "2024-01-10")],
            ),
            (
                "a window that failed before its first page, before the first covered one",
                vec![
                    intent("2024-01-02", "2024-01-04", PROD),
                    intent("2024-01-01", "2024-01-02", PROD),
                ],
                vec![
                    w("2024-01-02", "2024-01-03", None, Complete),
                    w("2024-01-03", "2024-01-04", None, Complete),
                    w("2024-01-01", "2024-01-02", None, Failed),
                ],
                vec![],
                vec![iv("2024-01-01", "2024-01-02")],
            ),
            (
                "a gap nobody asked for is not missing",
                vec![
                    intent("2024-01-01", "2024-01-02", PROD),
                    intent("2024-01-05", "2024-01-06", PROD),
                ],
                vec![
                    w("2024-01-01", "2024-01-02", None, Complete),
                    w("2024-01-05", "2024-01-06", None, Complete),
                ],
                vec![],
                vec![],
            ),
            (
                "pruned ranges are neither missing nor fetched again",
                vec![intent("2024-01-01", "2024-01-03", PROD)],
                vec![w("2024-01-02", "2024-01-03", None, Complete)],
                vec![iv("2024-01-01", "2024-01-02")],
                vec![],
            ),
            (
                "a sandbox's coverage does not fill production",
                vec![intent("2024-01-01", "2024-01-02", PROD)],
                vec![LedgerWindow {
                    base_url: SANDBOX.into(),
                    ..w("2024-01-01", "2024-01-02", None, Complete)
                }],
                vec![],
                vec![iv("2024-01-01", "2024-01-02")],
            ),
        ];
        for (name, intents, windows, pruned, want) in cases {
            let got: Vec<Interval> = missing(&windows, &intents, &pruned)
                .iter()
                .map(|m| Interval::from_stored(&m.from, &m.to).unwrap())
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
