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

/// Streams the events matching `filter` (ordered by timestamp, then id) into `each`; returns how many.
pub fn export_rows(
    conn: &Connection,
    filter: &Where,
    mut each: impl FnMut(&ExportRow) -> std::io::Result<()>,
) -> Result<u64, ExportError> {
    let ctx = || "cannot read events for the export".to_string();
    let sql = format!(
        "SELECT e.id, e.timestamp, e.category, e.action, e.description, e.username, e.ip_address, e.raw, e.digest
         FROM events e WHERE {} ORDER BY e.timestamp, e.id",
        filter.sql
    );
    let mut stmt = conn.prepare(&sql).context(ctx)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(filter.params.iter()))
        .context(ctx)?;
    let mut count = 0;
    while let Some(r) = rows.next().context(ctx)? {
        let row = ExportRow {
            id: r.get(0).context(ctx)?,
            timestamp: r.get(1).context(ctx)?,
            category: r.get(2).context(ctx)?,
            action: r.get(3).context(ctx)?,
            description: r.get(4).context(ctx)?,
            username: r.get(5).context(ctx)?,
            ip_address: r.get(6).context(ctx)?,
            raw: r.get(7).context(ctx)?,
            digest: r.get(8).context(ctx)?,
        };
        each(&row)?;
        count += 1;
    }
    Ok(count)
}
