//! The export read path: events matching a filter, streamed in time order, one row at a time.

use super::filter::Where;
use super::{SqlContext, StoreError};
use rusqlite::Connection;

/// One exported event.
#[derive(Debug)]
pub struct ExportRow {
    /// Event id.
    pub id: i64,
    /// Normalised timestamp.
    pub timestamp: String,
    /// Category.
    pub category: String,
    /// Action.
    pub action: String,
    /// Description.
    pub description: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// IP address.
    pub ip_address: Option<String>,
    /// The event's JSON exactly as received.
    pub raw: String,
    /// SHA-256 of `raw`.
    pub digest: Option<String>,
}

/// One mirrored revision: a later version of an archived event, with the event's timestamp (its day).
#[derive(Debug)]
pub struct RevisionRow {
    /// Revision id.
    pub id: i64,
    /// The event it revises.
    pub event_id: i64,
    /// The event's normalised timestamp.
    pub timestamp: String,
    /// When this version was fetched.
    pub fetched_at: String,
    /// This version's JSON exactly as received.
    pub raw: String,
    /// SHA-256 of `raw`.
    pub digest: Option<String>,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the archive failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Output(#[from] std::io::Error),
}

/// The columns of an exported event, in [`ExportRow`]'s order (table alias `e`).
const COLUMNS: &str = "e.id, e.timestamp, e.category, e.action, e.description, e.username, e.ip_address, e.raw, e.digest";

/// Streams the events matching `filter` (ordered by timestamp, then id) into `each`; returns how many.
pub fn export_rows(
    conn: &Connection,
    filter: &Where,
    each: impl FnMut(&ExportRow) -> std::io::Result<()>,
) -> Result<u64, ExportError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events e WHERE {} ORDER BY e.timestamp, e.id",
        filter.sql
    );
    stream(conn, &sql, &filter.params, each)
}

/// Runs `sql` (which selects [`COLUMNS`]; the store's own text, never a user's) with `params` and streams
/// its rows into `each`; returns how many. The one place an [`ExportRow`] is read, so that a change to how
/// `events` stores a column stays here.
pub(super) fn stream<P: rusqlite::ToSql>(
    conn: &Connection,
    sql: &str,
    params: &[P],
    each: impl FnMut(&ExportRow) -> std::io::Result<()>,
) -> Result<u64, ExportError> {
    let read = |r: &rusqlite::Row<'_>| {
        Ok(ExportRow {
            id: r.get(0)?,
            timestamp: r.get(1)?,
            category: r.get(2)?,
            action: r.get(3)?,
            description: r.get(4)?,
            username: r.get(5)?,
            ip_address: r.get(6)?,
            raw: r.get(7)?,
            digest: r.get(8)?,
        })
    };
    stream_rows(
        conn,
        sql,
        rusqlite::params_from_iter(params.iter()),
        "events",
        read,
        each,
    )
}

/// Runs `sql` with `params`, turns each row into a value with `read` and hands it to `each`; returns how many.
fn stream_rows<R>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: &str,
    read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
    mut each: impl FnMut(&R) -> std::io::Result<()>,
) -> Result<u64, ExportError> {
    let ctx = || format!("cannot read {what} for the export");
    let mut stmt = conn.prepare(sql).context(ctx)?;
    let mut rows = stmt.query(params).context(ctx)?;
    let mut count = 0;
    while let Some(r) = rows.next().context(ctx)? {
        each(&read(r).context(ctx)?)?;
        count += 1;
    }
    Ok(count)
}

/// The condition for the events a mirror holds through the seal bound as parameter `through` (`?N`): those
/// filed by window fetches sealed at or before it.
pub(super) fn sealed_through(through: &str) -> String {
    format!(
        "e.window_id IN (SELECT window_id FROM seals WHERE id <= {through} AND window_id IS NOT NULL)"
    )
}

/// The events filed by the window fetches sealed after seal `?1` up to seal `?2`, in time order. `full`
/// (nothing mirrored yet: every window is new) walks the timestamp index, which yields the order without a
/// sort; otherwise the new windows' events are looked up by window and sorted (`+` keeps SQLite from walking
/// the whole timestamp index to avoid that sort: an increment is small beside the archive).
pub(super) fn sealed_between_sql(full: bool) -> String {
    let (window, order) = if full {
        ("+e.window_id", "e.timestamp")
    } else {
        ("e.window_id", "+e.timestamp")
    };
    format!(
        "SELECT {COLUMNS} FROM events e
         WHERE {window} IN (SELECT window_id FROM seals WHERE id > ?1 AND id <= ?2 AND window_id IS NOT NULL)
         ORDER BY {order}, e.id"
    )
}

/// The events of one day (`?1` <= timestamp < `?3`) that a mirror through seal `?2` holds, in time order.
pub(super) fn day_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM events e
         WHERE e.timestamp >= ?1 AND e.timestamp < ?3 AND {}
         ORDER BY e.timestamp, e.id",
        sealed_through("?2")
    )
}

/// The columns of a mirrored revision, in [`RevisionRow`]'s order (`r` the revision, `e` its event).
const REVISION_COLUMNS: &str = "r.id, r.event_id, e.timestamp, r.fetched_at, r.raw, r.digest";

/// The revisions filed by the window fetches sealed after seal `?1` up to seal `?2`, by their event's time.
pub(super) fn revisions_between_sql() -> String {
    format!(
        "SELECT {REVISION_COLUMNS} FROM event_revisions r JOIN events e ON e.id = r.event_id
         WHERE r.window_id IN (SELECT window_id FROM seals WHERE id > ?1 AND id <= ?2 AND window_id IS NOT NULL)
         ORDER BY +e.timestamp, r.id"
    )
}

/// The revisions of one day's events (`?1` <= timestamp < `?3`) that a mirror through seal `?2` holds.
pub(super) fn revisions_of_day_sql() -> String {
    format!(
        "SELECT {REVISION_COLUMNS} FROM event_revisions r JOIN events e ON e.id = r.event_id
         WHERE e.timestamp >= ?1 AND e.timestamp < ?3
           AND r.window_id IN (SELECT window_id FROM seals WHERE id <= ?2 AND window_id IS NOT NULL)
         ORDER BY e.timestamp, r.id"
    )
}

/// The revisions a mirror through the seal bound as `?1` holds, counted.
pub(super) const REVISIONS_THROUGH_SQL: &str =
    "SELECT count(*) FROM event_revisions r JOIN events e ON e.id = r.event_id
     WHERE r.window_id IN (SELECT window_id FROM seals WHERE id <= ?1 AND window_id IS NOT NULL)";

/// Runs `sql` (which selects [`REVISION_COLUMNS`]) with `params`, streaming its rows into `each`.
pub(super) fn stream_revisions(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    each: impl FnMut(&RevisionRow) -> std::io::Result<()>,
) -> Result<u64, ExportError> {
    let read = |r: &rusqlite::Row<'_>| {
        Ok(RevisionRow {
            id: r.get(0)?,
            event_id: r.get(1)?,
            timestamp: r.get(2)?,
            fetched_at: r.get(3)?,
            raw: r.get(4)?,
            digest: r.get(5)?,
        })
    };
    stream_rows(conn, sql, params, "revisions", read, each)
}
