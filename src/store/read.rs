//! The `status` report: what the archive holds, what it covers, what is missing, and what happened lately.

use super::coverage::{self, Intent, LedgerWindow, MissingRange};
use super::{SqlContext, StoreError};
use crate::model::{ChangeKind, Filters, Interval, RunKind, RunStatus, WindowStatus, gaps_between};
use crate::time::{self, Timestamp};
use rusqlite::Connection;
use serde::Serialize;

/// How many recent runs `status` lists.
pub const STATUS_RUNS: usize = 10;
/// How many reject reasons `status` lists.
const STATUS_REJECT_REASONS: usize = 10;
/// How many incomplete windows `status` lists.
pub const STATUS_WINDOWS: usize = 20;

/// A window fetch that ended without its last page, as `status` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IncompleteWindow {
    /// The API base URL.
    pub base_url: String,
    /// `category` filter ("" for none).
    pub category_filter: String,
    /// `action` filter ("" for none).
    pub action_filter: String,
    /// Start (stored form).
    pub from: String,
    /// End (stored form).
    pub to: String,
    /// failed, interrupted or running.
    pub status: WindowStatus,
    /// Why it ended, if recorded.
    pub error: Option<String>,
}

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

/// Coverage for one source (a base URL and a set of filters).
#[derive(Debug, Serialize)]
pub struct Coverage {
    /// The API base URL.
    pub base_url: String,
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
    /// The API base URL of the latest sync: the source the coverage below is for.
    pub base_url: Option<String>,
    /// Unfiltered coverage of that source (what a plain `sync` keeps up to date).
    pub coverage: Coverage,
    /// Coverage of filtered syncs of that source, if any were run.
    pub filtered_coverage: Vec<Coverage>,
    /// Coverage of other sources (other base URLs), if any were synced.
    pub other_coverage: Vec<Coverage>,
    /// Ranges some sync was asked to fetch that are neither covered nor pruned: not yet fetched. The next
    /// plain `sync` of that source fetches them.
    pub missing: Vec<MissingRange>,
    /// End of the unfiltered coverage.
    pub covered_until: Option<String>,
    /// Seconds between the end of coverage and now.
    pub freshness_seconds: Option<i64>,
    /// Windows that failed or were interrupted and are not covered by a later fetch.
    pub incomplete_windows: i64,
    /// Those windows (at most [`STATUS_WINDOWS`]), with why each ended.
    pub failed_windows: Vec<IncompleteWindow>,
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
    /// What the last `verify --record` found, if one was recorded.
    pub last_verification: Option<Verification>,
    /// How late events arrive (see `store::lateness`).
    pub lateness: super::lateness::Lateness,
}

/// What one `verify --record` found (`verifications`): for monitoring, not evidence.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    /// When it ran.
    pub verified_at: String,
    /// No tampering or damage found.
    pub intact: bool,
    /// Nothing asked for is still unfetched.
    pub complete: bool,
    /// How many findings.
    pub findings: i64,
    /// The chain head it saw.
    pub chain_head: Option<String>,
}

/// Everything `status` reads, before anything is decided.
#[derive(Debug, Default)]
pub struct StatusInputs {
    /// Events held, and the earliest and latest timestamps.
    pub events: (i64, Option<String>, Option<String>),
    /// Every window fetch of the ledger.
    pub windows: Vec<LedgerWindow>,
    /// What every sync run was asked to fetch.
    pub intents: Vec<Intent>,
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
    /// The last recorded verification.
    pub last_verification: Option<Verification>,
    /// How late events arrive.
    pub lateness: super::lateness::Lateness,
}

/// Builds the status report: loads, then assembles.
pub fn status(conn: &Connection, now: Timestamp) -> Result<StatusReport, StoreError> {
    Ok(assemble(load(conn, now)?, now))
}

/// Reads what `status` needs at `now`.
fn load(conn: &Connection, now: Timestamp) -> Result<StatusInputs, StoreError> {
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
        windows: coverage::ledger_windows(conn)?,
        intents: coverage::intents(conn)?,
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
        last_verification: last_verification(conn)?,
        lateness: if lookback_recorded(conn)? {
            super::lateness::load(conn, now)?
        } else {
            // An archive a writing command has not migrated yet records no lookback.
            super::lateness::Lateness::default()
        },
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

/// The last recorded verification (none on an archive no writing command has migrated to version 10 yet:
/// `status` never migrates).
fn last_verification(conn: &Connection) -> Result<Option<Verification>, StoreError> {
    if !table_exists(conn, "verifications")? {
        return Ok(None);
    }
    let mut rows = collect(
        conn,
        "SELECT verified_at, intact, complete, findings, chain_head FROM verifications ORDER BY id DESC LIMIT 1",
        |r| {
            Ok(Verification {
                verified_at: r.get(0)?,
                intact: r.get(1)?,
                complete: r.get(2)?,
                findings: r.get(3)?,
                chain_head: r.get(4)?,
            })
        },
    )?;
    Ok(rows.pop())
}

/// Whether runs record their lookback (migration 11).
fn lookback_recorded(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('runs') WHERE name = 'lookback_seconds')",
        [],
        |r| r.get(0),
    )
    .context(|| "cannot read the archive's schema".into())
}

/// Whether `table` exists.
fn table_exists(conn: &Connection, table: &str) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [table],
        |r| r.get(0),
    )
    .context(|| "cannot read the archive's schema".into())
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
    // The source a plain `sync` keeps up to date: the base URL of the latest sync.
    let base_url = coverage::primary_source(&inputs.intents).map(str::to_string);
    let primary = base_url.clone().unwrap_or_default();
    let unfiltered = coverage::covered_for(&inputs.windows, &primary, &Filters::default());
    let covered_until = unfiltered.last().map(|i| i.end);
    let mut filtered_coverage = Vec::new();
    let mut other_coverage = Vec::new();
    for (base, filters) in sources_of(&inputs.windows) {
        let ranges = coverage::covered_for(&inputs.windows, &base, &filters);
        let shown = coverage_of(&base, &filters, &ranges);
        match (base == primary, filters.is_none()) {
            (true, true) => {}
            (true, false) => filtered_coverage.push(shown),
            (false, _) => other_coverage.push(shown),
        }
    }
    let incomplete = coverage::incomplete(&inputs.windows, &inputs.pruned);
    let (events, first_event_at, last_event_at) = inputs.events;
    StatusReport {
        events,
        first_event_at,
        last_event_at,
        coverage: coverage_of(&primary, &Filters::default(), &unfiltered),
        base_url,
        filtered_coverage,
        other_coverage,
        missing: coverage::missing(&inputs.windows, &inputs.intents, &inputs.pruned),
        covered_until: covered_until.map(time::to_stored),
        freshness_seconds: covered_until.map(|end| (now - end).num_seconds()),
        incomplete_windows: incomplete.len() as i64,
        failed_windows: incomplete
            .iter()
            .take(STATUS_WINDOWS)
            .map(|w| shown_window(w))
            .collect(),
        revisions: inputs.revisions,
        rejects: inputs.rejects,
        reject_reasons: inputs.reject_reasons,
        pruned: inputs.pruned.iter().map(Range::from).collect(),
        holds: inputs.holds,
        source_changes: count_changes(&inputs.source_changes),
        runs: inputs.runs,
        event_types: inputs.event_types,
        last_verification: inputs.last_verification,
        lateness: inputs.lateness,
    }
}

/// The sources complete windows were fetched for, in a stable order (base URL, then filters).
fn sources_of(windows: &[LedgerWindow]) -> Vec<(String, Filters)> {
    let mut seen: std::collections::BTreeMap<(String, String, String), Filters> =
        Default::default();
    for w in windows
        .iter()
        .filter(|w| w.status == WindowStatus::Complete)
    {
        let (c, a) = w.filters.to_ledger();
        seen.entry((w.base_url.clone(), c, a))
            .or_insert_with(|| w.filters.clone());
    }
    seen.into_iter()
        .map(|((base, _, _), f)| (base, f))
        .collect()
}

fn shown_window(w: &LedgerWindow) -> IncompleteWindow {
    let (category_filter, action_filter) = w.filters.to_ledger();
    IncompleteWindow {
        base_url: w.base_url.clone(),
        category_filter,
        action_filter,
        from: time::to_stored(w.interval.start),
        to: time::to_stored(w.interval.end),
        status: w.status,
        error: w.error.clone(),
    }
}

fn coverage_of(base_url: &str, filters: &Filters, ranges: &[Interval]) -> Coverage {
    let (category_filter, action_filter) = filters.to_ledger();
    Coverage {
        base_url: base_url.to_string(),
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

    const PROD: &str = "https://rest.elevatebilling.com/v1";

    fn t(text: &str) -> Timestamp {
        time::parse_time_arg(text).unwrap()
    }

    fn w(from: &str, to: &str, category: Option<&str>, status: WindowStatus) -> LedgerWindow {
        LedgerWindow {
            interval: Interval::new(t(from), t(to)),
            base_url: PROD.into(),
            filters: Filters {
                category: category.map(|c| Filter::parse(c).unwrap()),
                action: None,
            },
            status,
            error: (status == WindowStatus::Failed).then(|| "gave up".to_string()),
        }
    }

    fn intent(from: &str, to: &str) -> Intent {
        Intent {
            range: Interval::new(t(from), t(to)),
            base_url: PROD.into(),
            filters: Filters::default(),
        }
    }

    #[test]
    fn the_report_is_assembled_from_what_was_read() {
        use WindowStatus::{Complete, Failed};
        let mut sandbox = w("2023-01-01", "2023-01-02", None, Complete);
        sandbox.base_url = "https://sandbox.example/v1".into();
        let inputs = StatusInputs {
            events: (3, Some("a".into()), Some("b".into())),
            windows: vec![
                sandbox,
                w("2024-01-01", "2024-01-02", None, Complete),
                w("2024-01-03", "2024-01-04", None, Complete),
                w("2024-01-04", "2024-01-05", None, Failed),
                w("2024-01-01", "2024-01-05", Some("billing"), Complete),
            ],
            intents: vec![intent("2024-01-01", "2024-01-05")],
            source_changes: vec![(ChangeKind::Late, 2), (ChangeKind::Deleted, 5)],
            ..StatusInputs::default()
        };
        let report = assemble(inputs, t("2024-01-05"));
        assert_eq!(report.events, 3);
        assert_eq!(report.base_url.as_deref(), Some(PROD));
        assert_eq!(report.coverage.ranges.len(), 2);
        assert_eq!(report.coverage.gaps.len(), 1, "the 2nd is a gap");
        assert_eq!(
            report.covered_until.as_deref(),
            Some("2024-01-04T00:00:00.000Z")
        );
        assert_eq!(report.freshness_seconds, Some(86_400));
        assert_eq!(report.incomplete_windows, 1);
        assert_eq!(report.failed_windows[0].error.as_deref(), Some("gave up"));
        assert_eq!(report.filtered_coverage.len(), 1);
        assert_eq!(report.filtered_coverage[0].category_filter, "billing");
        assert_eq!(report.other_coverage.len(), 1, "the sandbox is shown apart");
        let missing: Vec<(&str, &str)> = report
            .missing
            .iter()
            .map(|m| (m.from.as_str(), m.to.as_str()))
            .collect();
        assert_eq!(
            missing,
            vec![
                ("2024-01-02T00:00:00.000Z", "2024-01-03T00:00:00.000Z"),
                ("2024-01-04T00:00:00.000Z", "2024-01-05T00:00:00.000Z"),
            ]
        );
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
