//! The read side: coverage for the planner, the `status` report, and `query` on a read-only connection.

use super::{SqlContext, Store, StoreError};
use crate::model::{Filters, Interval, gaps_between, merge_intervals};
use crate::time::{self, Timestamp};
use rusqlite::Connection;
use serde::Serialize;

/// How many recent runs `status` lists.
pub const STATUS_RUNS: usize = 10;
/// How many reject reasons `status` lists.
const STATUS_REJECT_REASONS: usize = 10;

impl Store {
    /// The intervals already covered for `filters`: complete windows fetched with the same filters, or with
    /// none (an unfiltered window holds every event, so it covers any filtered request too).
    pub fn covered(&self, filters: &Filters) -> Result<Vec<Interval>, StoreError> {
        covered(self.conn(), filters)
    }
}

/// The intervals covered for `filters` on any connection (see [`Store::covered`]).
pub fn covered_on(conn: &Connection, filters: &Filters) -> Result<Vec<Interval>, StoreError> {
    covered(conn, filters)
}

fn covered(conn: &Connection, filters: &Filters) -> Result<Vec<Interval>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT window_start, window_end FROM windows
             WHERE status = 'complete'
               AND ((category_filter = ?1 AND action_filter = ?2) OR (category_filter = '' AND action_filter = ''))",
        )
        .context(|| "cannot read the ledger".into())?;
    let rows = stmt
        .query_map([&filters.category, &filters.action], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .context(|| "cannot read the ledger".into())?;
    let mut intervals = Vec::new();
    for row in rows {
        let (start, end) = row.context(|| "cannot read the ledger".into())?;
        if let (Some(start), Some(end)) = (time::from_stored(&start), time::from_stored(&end))
            && start <= end
        {
            intervals.push(Interval::new(start, end));
        }
    }
    Ok(merge_intervals(intervals))
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
    pub kind: String,
    /// ok, partial, failed, interrupted or running.
    pub status: String,
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

/// Builds the status report.
pub fn status(conn: &Connection, now: Timestamp) -> Result<StatusReport, StoreError> {
    let ctx = || "cannot read the archive's status".to_string();
    let (events, first_event_at, last_event_at): (i64, Option<String>, Option<String>) = conn
        .query_row(
            "SELECT count(*), min(timestamp), max(timestamp) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .context(ctx)?;
    let unfiltered = covered(conn, &Filters::default())?;
    let covered_until = unfiltered.last().map(|i| i.end);
    let mut filter_sets = conn
        .prepare(
            "SELECT DISTINCT category_filter, action_filter FROM windows
             WHERE status = 'complete' AND (category_filter <> '' OR action_filter <> '')
             ORDER BY 1, 2",
        )
        .context(ctx)?;
    let sets: Vec<(String, String)> = filter_sets
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .context(ctx)?
        .collect::<Result<_, _>>()
        .context(ctx)?;
    let mut filtered_coverage = Vec::new();
    for (category, action) in sets {
        let filters = Filters { category, action };
        let ranges = covered(conn, &filters)?;
        filtered_coverage.push(coverage(filters, &ranges));
    }
    // Coverage per filter set, computed once however many windows failed.
    let mut coverage_of: std::collections::HashMap<(String, String), Vec<Interval>> =
        Default::default();
    let mut incomplete = 0;
    let mut failed = conn
        .prepare(
            "SELECT window_start, window_end, category_filter, action_filter FROM windows
             WHERE status IN ('failed', 'interrupted', 'running')",
        )
        .context(ctx)?;
    let rows: Vec<(String, String, String, String)> = failed
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .context(ctx)?
        .collect::<Result<_, _>>()
        .context(ctx)?;
    for (start, end, category, action) in rows {
        let (Some(start), Some(end)) = (time::from_stored(&start), time::from_stored(&end)) else {
            continue;
        };
        let cover = match coverage_of.entry((category, action)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let (category, action) = e.key().clone();
                e.insert(covered(conn, &Filters { category, action })?)
            }
        };
        if !cover.iter().any(|c| c.start <= start && end <= c.end) {
            incomplete += 1;
        }
    }
    let count = |sql: &str| -> Result<i64, StoreError> {
        conn.query_row(sql, [], |r| r.get(0)).context(ctx)
    };
    let revisions = count("SELECT count(*) FROM event_revisions")?;
    let rejects = count("SELECT count(*) FROM rejects")?;
    let reject_reasons = collect(
        conn,
        &format!(
            "SELECT reason, count(*) FROM rejects GROUP BY reason ORDER BY count(*) DESC, reason LIMIT {STATUS_REJECT_REASONS}"
        ),
        |r| {
            Ok(RejectReason {
                reason: r.get(0)?,
                count: r.get(1)?,
            })
        },
    )?;
    let mut source_changes = SourceChanges::default();
    for (kind, n) in collect(
        conn,
        "SELECT kind, count(*) FROM source_changes GROUP BY kind",
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )? {
        match kind.as_str() {
            "late" => source_changes.late = n,
            "changed" => source_changes.changed = n,
            _ => source_changes.deleted += n,
        }
    }
    let runs = collect(
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
    )?;
    let event_types = collect(
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
    )?;
    Ok(StatusReport {
        events,
        first_event_at,
        last_event_at,
        coverage: coverage(Filters::default(), &unfiltered),
        filtered_coverage,
        covered_until: covered_until.map(time::to_stored),
        freshness_seconds: covered_until.map(|end| (now - end).num_seconds()),
        incomplete_windows: incomplete,
        revisions,
        rejects,
        reject_reasons,
        pruned: super::retention::pruned_ranges(conn)?
            .iter()
            .map(Range::from)
            .collect(),
        holds: super::retention::holds(conn, false)?,
        source_changes,
        runs,
        event_types,
    })
}

fn coverage(filters: Filters, ranges: &[Interval]) -> Coverage {
    Coverage {
        category_filter: filters.category,
        action_filter: filters.action,
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

/// One value of a query result.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// A blob.
    Blob(Vec<u8>),
}

/// Receives a query's result as it streams out.
pub trait RowSink {
    /// Called once with the column names, before any row.
    fn columns(&mut self, names: &[String]) -> std::io::Result<()>;
    /// Called for each row.
    fn row(&mut self, cells: &[Cell]) -> std::io::Result<()>;
    /// Called after the last row.
    fn finish(&mut self) -> std::io::Result<()>;
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL was refused or failed.
    #[error("{0}")]
    Sql(String),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write the result: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs one SQL statement on a read-only connection, streaming rows into `sink`.
pub fn run_query(conn: &Connection, sql: &str, sink: &mut dyn RowSink) -> Result<u64, QueryError> {
    run_query_with(conn, sql, &[], sink)
}

/// [`run_query`] with bound parameters.
pub fn run_query_with(
    conn: &Connection,
    sql: &str,
    params: &[String],
    sink: &mut dyn RowSink,
) -> Result<u64, QueryError> {
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| QueryError::Sql(explain_query_error(&e)))?;
    if !stmt.readonly() {
        return Err(QueryError::Sql(
            "this statement would change the archive; `query` only reads (use SELECT, WITH ... SELECT or EXPLAIN)".into(),
        ));
    }
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    sink.columns(&names)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(|e| QueryError::Sql(explain_query_error(&e)))?;
    let mut cells = Vec::with_capacity(names.len());
    let mut count = 0;
    while let Some(row) = rows
        .next()
        .map_err(|e| QueryError::Sql(explain_query_error(&e)))?
    {
        cells.clear();
        for i in 0..names.len() {
            use rusqlite::types::ValueRef;
            let cell = match row.get_ref(i).map_err(|e| QueryError::Sql(e.to_string()))? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Integer(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
            };
            cells.push(cell);
        }
        sink.row(&cells)?;
        count += 1;
    }
    sink.finish()?;
    Ok(count)
}

fn explain_query_error(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::MultipleStatement => "pass one SQL statement at a time".into(),
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ReadOnly => {
            "the archive is opened read-only for queries: `query` can never change it".into()
        }
        other => other.to_string(),
    }
}
