//! `search`: full-text search over descriptions and usernames (SQLite FTS5), newest first.

use crate::cli::SearchArgs;
use crate::error::{Error, ExitCode, Result};
use crate::store::{ArchiveReader, filter};
use std::path::Path;

/// Searches and prints the matching events.
pub fn run(db: &Path, args: &SearchArgs) -> Result<ExitCode> {
    let Some(fts) = filter::fts_query(&args.text) else {
        return Err(Error::Usage("give some words to search for".into()));
    };
    let selection = crate::config::selection(&args.selection)?;
    let archive = ArchiveReader::open(db)?;
    super::query::print_rows(args.format, |sink| {
        archive.search(&fts, &selection, args.limit, sink)
    })
}
