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
    let key = super::checkpoint::signing_key(
        args.checkpoint.signing_key.as_deref(),
        &super::process_env,
    )?;
    let (plan, made) = if args.dry_run {
        (ArchiveReader::open(db)?.plan_prune(args.before)?, None)
    } else {
        let mut archive = Archive::open_existing(db, now)?;
        let plan = archive.prune(args.before, now)?;
        drop(archive);
        let made =
            super::checkpoint::after_run(db, &args.checkpoint, key.as_ref(), now, plan.prune_id)?;
        (plan, made)
    };
    let text = match args.format {
        StatusFormat::Text => output::prune_text(&plan, args.dry_run),
        StatusFormat::Json => {
            let value = super::checkpoint::with_checkpoint(&plan, made.as_ref())?;
            serde_json::to_string_pretty(&value)? + "\n"
        }
    };
    super::status::print_stdout(&text);
    Ok(ExitCode::Ok)
}
