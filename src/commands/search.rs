//! `search`: full-text search over descriptions and usernames (SQLite FTS5), newest first.

use crate::cli::SearchArgs;
use crate::error::{Error, ExitCode, Result};
use crate::store::{self, filter};
use std::path::Path;

/// Searches and prints the matching events.
pub fn run(db: &Path, args: &SearchArgs) -> Result<ExitCode> {
    let Some(fts) = filter::fts_query(&args.text) else {
        return Err(Error::Usage("give some words to search for".into()));
    };
    let conn = store::open_read_only(db)?;
    let condition = args.selection.condition();
    let sql = format!(
        "SELECT e.id, e.timestamp, e.category, e.action, e.username, e.ip_address, e.description
         FROM events_fts JOIN events e ON e.id = events_fts.rowid
         WHERE events_fts MATCH ? AND {}
         ORDER BY e.timestamp DESC, e.id DESC LIMIT {}",
        condition.sql, args.limit
    );
    let params: Vec<String> = std::iter::once(fts).chain(condition.params).collect();
    super::query::print_rows(&conn, &sql, &params, args.format)
}
