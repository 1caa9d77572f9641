//! The read side's handle: [`ArchiveReader`], a hardened read-only connection with typed answers, and
//! [`ArchiveRead`], what both handles answer (the writer needs coverage to plan, and the chain head to report).
//!
//! `query` is the one deliberate raw-SQL door ([`ArchiveReader::query`]): a single statement, refused unless
//! SQLite itself says it only reads, on a connection SQLite opened read-only. Everything else is a typed method
//! whose SQL lives here or in the modules it delegates to.

use super::coverage::{self, MissingRange};
use super::export::{ExportError, ExportRow};
use super::filter::events_where;
use super::read::StatusReport;
use super::retention::{self, Hold, PrunePlan};
use super::verify::VerifyReport;
use super::{SqlContext, StoreError, seal};
use crate::model::{ChangeKind, EventSelection, Filters, Interval};
use crate::time::Timestamp;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

pub(super) mod sealed {
    /// Gives the store's own code the connection behind a handle; not nameable outside `store`.
    pub trait Connected {
        /// The connection.
        fn connection(&self) -> &rusqlite::Connection;
    }
}

/// What both the writer ([`super::Archive`]) and the reader ([`ArchiveReader`]) answer.
pub trait ArchiveRead: sealed::Connected {
    /// The intervals already covered for a source: complete windows fetched from `base_url` with the same
    /// filters, or with none (an unfiltered window holds every event, so it covers any filtered request too).
    /// Sorted, disjoint.
    fn covered(&self, base_url: &str, filters: &Filters) -> Result<Vec<Interval>, StoreError> {
        covered(self.connection(), base_url, filters)
    }

    /// The ranges the sync runs of a source were asked to fetch (whether or not they got them). Sorted,
    /// disjoint.
    fn wanted(&self, base_url: &str, filters: &Filters) -> Result<Vec<Interval>, StoreError> {
        Ok(coverage::wanted_for(
            &coverage::intents(self.connection())?,
            base_url,
            filters,
        ))
    }

    /// Every range some sync was asked to fetch that is neither covered nor pruned, for every source.
    fn missing(&self) -> Result<Vec<MissingRange>, StoreError> {
        let conn = self.connection();
        Ok(coverage::missing(
            &coverage::ledger_windows(conn)?,
            &coverage::intents(conn)?,
            &retention::pruned_ranges(conn)?,
        ))
    }

    /// How late events arrive, measured at `now` (see [`lateness`](super::lateness)).
    fn lateness(&self, now: Timestamp) -> Result<super::lateness::Lateness, StoreError> {
        super::lateness::load(self.connection(), now)
    }

    /// The ranges emptied by prunes, merged.
    fn pruned_ranges(&self) -> Result<Vec<Interval>, StoreError> {
        retention::pruned_ranges(self.connection())
    }

    /// The seal chain's head: the newest seal's hash (all zeros for an archive with no seal yet).
    fn chain_head(&self) -> Result<String, StoreError> {
        seal::head(self.connection()).context(|| "cannot read the chain head".into())
    }

    /// What the export ledger says destination `url` holds (see [`mirror`](super::mirror)).
    fn mirror_ledger(&self, url: &str) -> Result<super::mirror::MirrorLedger, StoreError> {
        super::mirror::ledger(self.connection(), url)
    }

    /// Events a mirror through seal `through` holds: those filed by window fetches sealed at or before it.
    fn mirror_rows_through(&self, through: i64) -> Result<u64, StoreError> {
        super::mirror::count_sealed_through(self.connection(), through)
    }

    /// Revisions a mirror through seal `through` holds: those filed by window fetches sealed at or before it.
    fn mirror_revisions_through(&self, through: i64) -> Result<u64, StoreError> {
        super::mirror::count_revisions_through(self.connection(), through)
    }

    /// The legal holds, in force only or all (lifted ones too), oldest first.
    fn holds(&self, include_lifted: bool) -> Result<Vec<Hold>, StoreError> {
        retention::holds(self.connection(), include_lifted)
    }
}

/// The covered intervals for a source (see [`ArchiveRead::covered`]). Filters are compared as parsed, so a
/// ledger row written with another spelling of the same filter counts.
pub(super) fn covered(
    conn: &Connection,
    base_url: &str,
    filters: &Filters,
) -> Result<Vec<Interval>, StoreError> {
    Ok(coverage::covered_for(
        &coverage::ledger_windows(conn)?,
        base_url,
        filters,
    ))
}

/// An archive opened read-only.
pub struct ArchiveReader {
    pub(super) conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for ArchiveReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveReader")
            .field("path", &self.path)
            .finish()
    }
}

impl sealed::Connected for ArchiveReader {
    fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl ArchiveRead for ArchiveReader {}

impl ArchiveReader {
    /// Opens an existing, up-to-date archive read-only; never creates or changes a file.
    pub fn open(path: &Path) -> Result<ArchiveReader, StoreError> {
        Ok(ArchiveReader {
            conn: super::open_read_only(path)?,
            path: path.into(),
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events held.
    pub fn event_count(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .context(|| format!("cannot count the events of {}", self.path.display()))
    }

    /// Everything `status` shows, as of `now`.
    pub fn status(&self, now: Timestamp) -> Result<StatusReport, StoreError> {
        super::read::status(&self.conn, now)
    }

    /// Checks the archive; `anchor` is a chain head kept elsewhere that must still be in the chain.
    pub fn verify(&self, anchor: Option<&str>) -> Result<VerifyReport, StoreError> {
        let path = self.path.clone();
        super::verify::verify(&self.conn, anchor, move || {
            super::verify::integrity_check(&super::open_read_only(&path)?)
        })
    }

    /// Checks the Merkle log against checkpoints (`verify --checkpoint`); `origins` are the checkpoints' origin
    /// lines by label. `rows_counted`: the rows without a leaf are counted by `verify` beside it (so not twice).
    pub fn check_log(
        &self,
        claims: &[super::verify::log::Claim],
        origins: &[(String, String)],
        rows_counted: bool,
    ) -> Result<super::verify::log::LogReport, StoreError> {
        super::verify::log::check_log(&self.conn, claims, origins, rows_counted)
    }

    /// Every checkpoint stored in the archive, oldest first.
    pub fn stored_checkpoints(&self) -> Result<Vec<super::tlog::StoredCheckpoint>, StoreError> {
        super::tlog::checkpoints(&self.conn)
    }

    /// The evidence bundle of one event (see [`crate::tlog::bundle`]).
    pub fn prove(
        &self,
        event_id: i64,
        signer: Option<&crate::tlog::note::SigningKey>,
    ) -> Result<crate::tlog::bundle::Bundle, super::tlog::ProveError> {
        super::tlog::prove_event(&self.conn, event_id, signer)
    }

    /// What a prune at `cutoff` would remove, and what it would keep and why (changes nothing).
    pub fn plan_prune(&self, cutoff: Timestamp) -> Result<PrunePlan, StoreError> {
        retention::plan_prune(&self.conn, cutoff)
    }

    /// The deliberate raw-SQL door: runs one statement that only reads, streaming its rows into `sink`.
    pub fn query(&self, sql: &str, sink: &mut dyn RowSink) -> Result<u64, QueryError> {
        run_query(&self.conn, sql, &[], sink)
    }

    /// Full-text search: events whose description or username match the FTS5 query `fts` (see
    /// [`super::filter::fts_query`]) within `selection`, newest first, at most `limit`, streamed into `sink`.
    pub fn search(
        &self,
        fts: &str,
        selection: &EventSelection,
        limit: u32,
        sink: &mut dyn RowSink,
    ) -> Result<u64, QueryError> {
        let condition = events_where(selection);
        let sql = format!(
            "SELECT e.id, e.timestamp, e.category, e.action, e.username, e.ip_address, e.description
             FROM events_fts JOIN events e ON e.id = events_fts.rowid
             WHERE events_fts MATCH ? AND {}
             ORDER BY e.timestamp DESC, e.id DESC LIMIT {limit}",
            condition.sql
        );
        let params: Vec<String> = std::iter::once(fts.to_string())
            .chain(condition.params)
            .collect();
        run_query(&self.conn, &sql, &params, sink)
    }

    /// The legal holds as rows (`id, from, to, reason, created_at, removed_at`), in force only or all.
    pub fn list_holds(
        &self,
        include_lifted: bool,
        sink: &mut dyn RowSink,
    ) -> Result<u64, QueryError> {
        let sql = format!(
            "SELECT id, range_from AS \"from\", range_to AS \"to\", reason, created_at, removed_at
             FROM holds {} ORDER BY id",
            if include_lifted {
                ""
            } else {
                "WHERE removed_at IS NULL"
            }
        );
        run_query(&self.conn, &sql, &[], sink)
    }

    /// Streams the events of `selection` (ordered by timestamp, then id) into `each`; returns how many.
    pub fn export_rows(
        &self,
        selection: &EventSelection,
        each: impl FnMut(&ExportRow) -> std::io::Result<()>,
    ) -> Result<u64, ExportError> {
        super::export::export_rows(&self.conn, &events_where(selection), each)
    }

    /// The archived events of a selection, by id: `(id, timestamp)`.
    pub fn archived_in(
        &self,
        selection: &EventSelection,
    ) -> Result<Vec<(i64, Timestamp)>, StoreError> {
        let condition = events_where(selection);
        let ctx = || "cannot list the archived events of a window".to_string();
        let rows: Vec<(i64, String)> = self
            .conn
            .prepare_cached(&format!(
                "SELECT e.id, e.timestamp FROM events e WHERE {} ORDER BY e.id",
                condition.sql
            ))
            .and_then(|mut s| {
                s.query_map(rusqlite::params_from_iter(&condition.params), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            })
            .context(ctx)?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, ts)| Some((id, crate::time::from_stored(&ts)?)))
            .collect())
    }

    /// What the fetches of run `run_id` recorded in `source_changes`, by kind then event id.
    pub fn source_changes_of_run(&self, run_id: i64) -> Result<Vec<(ChangeKind, i64)>, StoreError> {
        self.conn
            .prepare(
                "SELECT c.kind, c.event_id FROM source_changes c JOIN windows w ON w.id = c.window_id
                 WHERE w.run_id = ?1 ORDER BY c.kind, c.event_id",
            )
            .and_then(|mut s| s.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .context(|| format!("cannot read what run {run_id} recorded"))
    }
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

/// Runs one SQL statement with bound parameters on a read-only connection, streaming rows into `sink`.
fn run_query(
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
            cells.push(cell(row, i)?);
        }
        sink.row(&cells)?;
        count += 1;
    }
    sink.finish()?;
    Ok(count)
}

/// One value of a row as a [`Cell`].
fn cell(row: &rusqlite::Row<'_>, i: usize) -> Result<Cell, QueryError> {
    use rusqlite::types::ValueRef;
    Ok(
        match row.get_ref(i).map_err(|e| QueryError::Sql(e.to_string()))? {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(v) => Cell::Integer(v),
            ValueRef::Real(v) => Cell::Real(v),
            ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        },
    )
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
