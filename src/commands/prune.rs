//! `prune`: retention. Removes whole sealed window fetches that ended before the cutoff, except held ones.

use crate::cli::{PruneArgs, StatusFormat};
use crate::error::{Error, ExitCode, Result};
use crate::output;
use crate::store::{Archive, ArchiveReader};
use crate::time;
use std::path::Path;

/// Prunes (or, with `--dry-run`, shows what would be pruned) and prints the outcome.
pub fn run(db: &Path, args: &PruneArgs) -> Result<ExitCode> {
    let clock = super::clock()?;
    let now = clock.now();
    if args.before > now {
        return Err(Error::Usage(format!(
            "--before {} is in the future; give a cutoff in the past, e.g. --before {}",
            time::to_api(args.before),
            (now - chrono::TimeDelta::days(365)).format("%Y-%m-%d")
        )));
    }
    let plan = if args.dry_run {
        ArchiveReader::open(db)?.plan_prune(args.before)?
    } else {
        let mut archive = Archive::open_existing(db, now)?;
        let plan = archive.prune(args.before, now)?;
        if let Err(e) = archive.checkpoint() {
            tracing::warn!("the write-ahead log was not folded back after the prune: {e}");
        }
        plan
    };
    let text = match args.format {
        StatusFormat::Text => output::prune_text(&plan, args.dry_run),
        StatusFormat::Json => serde_json::to_string_pretty(&plan)? + "\n",
    };
    super::status::print_stdout(&text);
    Ok(ExitCode::Ok)
}
