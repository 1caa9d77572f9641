//! The `status` report: what the archive holds, what it covers, what is missing, and what happened lately.

use super::{SqlContext, StoreError};
use crate::model::{
    ChangeKind, Filters, Interval, RunKind, RunStatus, WindowStatus, gaps_between, merge_intervals,
};
use crate::time::{self, Timestamp};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// How many recent runs `status` lists.
pub const STATUS_RUNS: usize = 10;
/// How many reject reasons `status` lists.
const STATUS_REJECT_REASONS: usize = 10;

/// A covered range as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Range {
    /// Start (stored form).
    pub from: String,
    /// End (stored form).
    pub to: String,
}

impl From<&Interval> for Range {
    fn from(i: &Interval) -> Self {
        Range {
            from: time::to_stored(i.start),
            to: time::to_stored(i.end),
        }
    }
}

/// Coverage for one set of filters.
#[derive(Debug, Serialize)]
pub struct Coverage {
    /// `category` filter ("" for none).
    pub category_filter: String,
    /// `action` filter ("" for none).
    pub action_filter: String,
    /// Covered ranges, sorted and disjoint.
    pub ranges: Vec<Range>,
    /// Holes between them.
    pub gaps: Vec<Range>,
}

/// A run as `status` reports it.
#[derive(Debug, Serialize)]
pub struct RunRow {
    /// Run id.
    pub id: i64,
    /// When it started.
    pub started_at: String,
    /// When it finished (none if it is running or was killed).
    pub finished_at: Option<String>,
    /// sync or reconcile.
    pub kind: RunKind,
    /// ok, partial, failed, interrupted or running.
    pub status: RunStatus,
    /// Requested range start.
    pub range_from: String,
    /// Requested range end.
    pub range_to: String,
    /// Windows completed of those planned.
    pub windows_completed: i64,
    /// Windows planned.
    pub windows_planned: i64,
    /// Events new to the archive.
    pub events_new: i64,
    /// Items received.
    pub events_received: i64,
    /// Revisions kept.
    pub revisions: i64,
    /// Items rejected.
    pub rejects: i64,
    /// Events outside their window's requested bounds.
    pub out_of_window: i64,
    /// The error that stopped it, if any.
    pub error: Option<String>,
}

/// A (category, action) pair in the catalogue.
#[derive(Debug, Serialize)]
pub struct EventType {
    /// Category.
    pub category: String,
    /// Action.
    pub action: String,
    /// Events archived.
    pub events: i64,
    /// Timestamp of its earliest event.
    pub first_event_at: String,
    /// Timestamp of its latest event.
    pub last_event_at: String,
    /// When the archiver first stored one.
    pub first_archived_at: String,
}

/// Rejected items grouped by reason.
#[derive(Debug, Serialize)]
pub struct RejectReason {
    /// Why they were rejected.
    pub reason: String,
    /// How many distinct items.
    pub count: i64,
}

/// Counts of what `reconcile` found at the source.
#[derive(Debug, Default, Serialize)]
pub struct SourceChanges {
    /// Events that arrived after their window was archived.
    pub late: i64,
    /// Events changed at the source (kept as revisions).
    pub changed: i64,
    /// Events deleted at the source (kept in the archive).
    pub deleted: i64,
}

/// Everything `status` shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// Events held.
    pub events: i64,
    /// Earliest event timestamp.
    pub first_event_at: Option<String>,
    /// Latest event timestamp.
    pub last_event_at: Option<String>,
    /// Unfiltered coverage (what a plain `sync` keeps up to date).
    pub coverage: Coverage,
    /// Coverage of filtered syncs, if any were run.
    pub filtered_coverage: Vec<Coverage>,
    /// End of the unfiltered coverage.
    pub covered_until: Option<String>,
    /// Seconds between the end of coverage and now.
    pub freshness_seconds: Option<i64>,
    /// Windows that failed or were interrupted and are not covered by a later fetch.
    pub incomplete_windows: i64,
    /// Revisions kept.
    pub revisions: i64,
    /// Rejected items held.
    pub rejects: i64,
    /// Rejected items by reason.
    pub reject_reasons: Vec<RejectReason>,
    /// Ranges emptied by `prune` (still covered: never fetched again).
    pub pruned: Vec<Range>,
    /// Legal holds in force.
    pub holds: Vec<super::retention::Hold>,
    /// What `reconcile` found changed at the source, by kind.
    pub source_changes: SourceChanges,
    /// Recent runs, newest first.
    pub runs: Vec<RunRow>,
    /// The event-type catalogue, newest first appearance first.
    pub event_types: Vec<EventType>,
}

/// A window fetch as the ledger records it, for coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWindow {
    /// The range it is responsible for.
    pub interval: Interval,
    /// The filters it was fetched with.
    pub filters: Filters,
    /// Where it stands.
    pub status: WindowStatus,
}

/// Everything `status` reads, before anything is decided.
#[derive(Debug, Default)]
pub struct StatusInputs {
    /// Events held, and the earliest and latest timestamps.
    pub events: (i64, Option<String>, Option<String>),
    /// Every window fetch of the ledger.
    pub windows: Vec<LedgerWindow>,
    /// Revisions held.
    pub revisions: i64,
    /// Rejects held.
    pub rejects: i64,
    /// The most frequent reject reasons.
    pub reject_reasons: Vec<RejectReason>,
    /// `source_changes` counted by kind.
    pub source_changes: Vec<(ChangeKind, i64)>,
    /// The pruned ranges, merged.
    pub pruned: Vec<Interval>,
    /// Holds in force.
    pub holds: Vec<super::retention::Hold>,
    /// Recent runs, newest first.
    pub runs: Vec<RunRow>,
    /// The event-type catalogue.
    pub event_types: Vec<EventType>,
}

/// Builds the status report: loads, then assembles.
pub fn status(conn: &Connection, now: Timestamp) -> Result<StatusReport, StoreError> {
    Ok(assemble(load(conn)?, now))
}

/// Reads what `status` needs.
fn load(conn: &Connection) -> Result<StatusInputs, StoreError> {
    let ctx = || "cannot read the archive's status".to_string();
    let events = conn
        .query_row(
            "SELECT count(*), min(timestamp), max(timestamp) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .context(ctx)?;
    let count = |sql: &str| -> Result<i64, StoreError> {
        conn.query_row(sql, [], |r| r.get(0)).context(ctx)
    };
    Ok(StatusInputs {
        events,
        windows: ledger_windows(conn)?,
        revisions: count("SELECT count(*) FROM event_revisions")?,
        rejects: count("SELECT count(*) FROM rejects")?,
        reject_reasons: collect(
            conn,
            &format!(
                "SELECT reason, count(*) FROM rejects GROUP BY reason ORDER BY count(*) DESC, reason
                 LIMIT {STATUS_REJECT_REASONS}"
            ),
            |r| {
                Ok(RejectReason {
                    reason: r.get(0)?,
                    count: r.get(1)?,
                })
            },
        )?,
        source_changes: collect(
            conn,
            "SELECT kind, count(*) FROM source_changes GROUP BY kind",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?,
        pruned: super::retention::pruned_ranges(conn)?,
        holds: super::retention::holds(conn, false)?,
        runs: recent_runs(conn)?,
        event_types: collect(
            conn,
            "SELECT category, action, events, first_event_at, last_event_at, first_archived_at FROM event_types
             ORDER BY first_archived_at DESC, first_event_at DESC, category, action",
            |r| {
                Ok(EventType {
                    category: r.get(0)?,
                    action: r.get(1)?,
                    events: r.get(2)?,
                    first_event_at: r.get(3)?,
                    last_event_at: r.get(4)?,
                    first_archived_at: r.get(5)?,
                })
            },
        )?,
    })
}

/// Every window fetch of the ledger whose range and filters read back (others are `verify`'s business).
pub(super) fn ledger_windows(conn: &Connection) -> Result<Vec<LedgerWindow>, StoreError> {
    let rows: Vec<(String, String, String, String, WindowStatus)> = collect(
        conn,
        "SELECT window_start, window_end, category_filter, action_filter, status FROM windows ORDER BY id",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(start, end, category, action, status)| {
            Some(LedgerWindow {
                interval: Interval::from_stored(&start, &end)?,
                filters: Filters::from_ledger(&category, &action)?,
                status,
            })
        })
        .collect())
}

fn recent_runs(conn: &Connection) -> Result<Vec<RunRow>, StoreError> {
    collect(
        conn,
        &format!(
            "SELECT id, started_at, finished_at, status, range_from, range_to, windows_completed, windows_planned,
                    events_new, events_received, revisions, rejects, out_of_window, error, kind
             FROM runs ORDER BY id DESC LIMIT {STATUS_RUNS}"
        ),
        |r| {
            Ok(RunRow {
                id: r.get(0)?,
                started_at: r.get(1)?,
                finished_at: r.get(2)?,
                status: r.get(3)?,
                range_from: r.get(4)?,
                range_to: r.get(5)?,
                windows_completed: r.get(6)?,
                windows_planned: r.get(7)?,
                events_new: r.get(8)?,
                events_received: r.get(9)?,
                revisions: r.get(10)?,
                rejects: r.get(11)?,
                out_of_window: r.get(12)?,
                error: r.get(13)?,
                kind: r.get(14)?,
            })
        },
    )
}

/// The intervals covered for `filters` by the complete fetches among `windows`: those made with the same
/// filters, or with none (an unfiltered fetch holds every event). Sorted, disjoint.
pub fn covered_for(windows: &[LedgerWindow], filters: &Filters) -> Vec<Interval> {
    merge_intervals(
        windows
            .iter()
            .filter(|w| w.status == WindowStatus::Complete)
            .filter(|w| w.filters.is_none() || w.filters == *filters)
            .map(|w| w.interval)
            .collect(),
    )
}

/// Window fetches that ended without their last page and whose range no later fetch (with their filters)
/// covers: what a plain `sync` still has to fill.
pub fn incomplete_windows(windows: &[LedgerWindow]) -> i64 {
    let mut coverage: HashMap<&Filters, Vec<Interval>> = HashMap::new();
    let mut incomplete = 0;
    for w in windows.iter().filter(|w| w.status.is_incomplete()) {
        let cover = coverage
            .entry(&w.filters)
            .or_insert_with(|| covered_for(windows, &w.filters));
        if !cover.iter().any(|c| c.encloses(&w.interval)) {
            incomplete += 1;
        }
    }
    incomplete
}

/// Counts of `source_changes` by kind.
pub fn count_changes(counts: &[(ChangeKind, i64)]) -> SourceChanges {
    let mut changes = SourceChanges::default();
    for &(kind, n) in counts {
        match kind {
            ChangeKind::Late => changes.late += n,
            ChangeKind::Changed => changes.changed += n,
            ChangeKind::Deleted => changes.deleted += n,
        }
    }
    changes
}

/// Builds the report from what was read (pure).
pub fn assemble(inputs: StatusInputs, now: Timestamp) -> StatusReport {
    let unfiltered = covered_for(&inputs.windows, &Filters::default());
    let covered_until = unfiltered.last().map(|i| i.end);
    let filter_sets: BTreeSet<(String, String)> = inputs
        .windows
        .iter()
        .filter(|w| w.status == WindowStatus::Complete && !w.filters.is_none())
        .map(|w| w.filters.to_ledger())
        .collect();
    let filtered_coverage = filter_sets
        .iter()
        .filter_map(|(c, a)| Filters::from_ledger(c, a))
        .map(|f| coverage(&f, &covered_for(&inputs.windows, &f)))
        .collect();
    let (events, first_event_at, last_event_at) = inputs.events;
    StatusReport {
        events,
        first_event_at,
        last_event_at,
        coverage: coverage(&Filters::default(), &unfiltered),
        filtered_coverage,
        covered_until: covered_until.map(time::to_stored),
        freshness_seconds: covered_until.map(|end| (now - end).num_seconds()),
        incomplete_windows: incomplete_windows(&inputs.windows),
        revisions: inputs.revisions,
        rejects: inputs.rejects,
        reject_reasons: inputs.reject_reasons,
        pruned: inputs.pruned.iter().map(Range::from).collect(),
        holds: inputs.holds,
        source_changes: count_changes(&inputs.source_changes),
        runs: inputs.runs,
        event_types: inputs.event_types,
    }
}

fn coverage(filters: &Filters, ranges: &[Interval]) -> Coverage {
    let (category_filter, action_filter) = filters.to_ledger();
    Coverage {
        category_filter,
        action_filter,
        ranges: ranges.iter().map(Range::from).collect(),
        gaps: gaps_between(ranges).iter().map(Range::from).collect(),
    }
}

fn collect<T>(
    conn: &Connection,
    sql: &str,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let ctx = || "cannot read the archive's status".to_string();
    let mut stmt = conn.prepare(sql).context(ctx)?;
    let rows = stmt
        .query_map([], map)
        .context(ctx)?
        .collect::<Result<Vec<T>, _>>()
        .context(ctx)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Filter;

    fn t(text: &str) -> Timestamp {
        time::parse_time_arg(text).unwrap()
    }

    fn w(from: &str, to: &str, category: Option<&str>, status: WindowStatus) -> LedgerWindow {
        LedgerWindow {
            interval: Interval::new(t(from), t(to)),
            filters: Filters {
                category: category.map(|c| Filter::parse(c).unwrap()),
                action: None,
            },
            status,
        }
    }

    use WindowStatus::{Complete, Failed, Interrupted, Running};

    #[test]
    fn incomplete_windows_are_those_no_later_fetch_covers() {
        let cases = [
            (
                "nothing failed",
                vec![w("2024-01-01", "2024-01-02", None, Complete)],
                0,
            ),
            (
                "a failed day, never fetched again",
                vec![
                    w("2024-01-01", "2024-01-02", None, Complete),
                    w("2024-01-02", "2024-01-03", None, Failed),
                ],
                1,
            ),
            (
                "a failed day fetched again later",
                vec![
                    w("2024-01-02", "2024-01-03", None, Interrupted),
                    w("2024-01-02", "2024-01-03", None, Complete),
                ],
                0,
            ),
            (
                "a filtered fetch does not cover an unfiltered failure",
                vec![
                    w("2024-01-02", "2024-01-03", None, Failed),
                    w("2024-01-02", "2024-01-03", Some("billing"), Complete),
                ],
                1,
            ),
            (
                "an unfiltered fetch covers a filtered failure",
                vec![
                    w("2024-01-02", "2024-01-03", Some("billing"), Running),
                    w("2024-01-01", "2024-01-04", None, Complete),
                ],
                0,
            ),
            (
                "partly covered is still incomplete",
                vec![
                    w("2024-01-02", "2024-01-04", None, Failed),
                    w("2024-01-02", "2024-01-03", None, Complete),
                ],
                1,
            ),
        ];
        for (name, windows, want) in cases {
            assert_eq!(incomplete_windows(&windows), want, "{name}");
        }
    }

    #[test]
    fn coverage_counts_complete_fetches_with_the_same_filters_or_none() {
        let windows = vec![
            w("2024-01-01", "2024-01-02", None, Complete),
            w("2024-01-02", "2024-01-03", Some("billing"), Complete),
            w("2024-01-03", "2024-01-04", Some("in:a,b"), Complete),
            w("2024-01-04", "2024-01-05", None, Failed),
        ];
        let billing = Filters {
            category: Some(Filter::Eq("billing".into())),
            action: None,
        };
        assert_eq!(
            covered_for(&windows, &Filters::default()),
            vec![Interval::new(t("2024-01-01"), t("2024-01-02"))]
        );
        assert_eq!(
            covered_for(&windows, &billing),
            vec![Interval::new(t("2024-01-01"), t("2024-01-03"))]
        );
    }

    #[test]
    fn the_report_is_assembled_from_what_was_read() {
        let inputs = StatusInputs {
            events: (3, Some("a".into()), Some("b".into())),
            windows: vec![
                w("2024-01-01", "2024-01-02", None, Complete),
                w("2024-01-03", "2024-01-04", None, Complete),
                w("2024-01-04", "2024-01-05", None, Failed),
                w("2024-01-01", "2024-01-05", Some("billing"), Complete),
            ],
            source_changes: vec![(ChangeKind::Late, 2), (ChangeKind::Deleted, 5)],
            ..StatusInputs::default()
        };
        let report = assemble(inputs, t("2024-01-05"));
        assert_eq!(report.events, 3);
        assert_eq!(report.coverage.ranges.len(), 2);
        assert_eq!(report.coverage.gaps.len(), 1, "the 2nd is a gap");
        assert_eq!(
            report.covered_until.as_deref(),
            Some("2024-01-04T00:00:00.000Z")
        );
        assert_eq!(report.freshness_seconds, Some(86_400));
        assert_eq!(report.incomplete_windows, 1);
        assert_eq!(report.filtered_coverage.len(), 1);
        assert_eq!(report.filtered_coverage[0].category_filter, "billing");
        assert_eq!(
            (
                report.source_changes.late,
                report.source_changes.changed,
                report.source_changes.deleted
            ),
            (2, 0, 5)
        );
    }
}
