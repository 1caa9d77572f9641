//! `prune`: retention. Removes whole sealed window fetches that ended before the cutoff, except held ones.

use crate::cli::{PruneArgs, StatusFormat};
use crate::error::{Error, ExitCode, Result};
use crate::output;
use crate::store::{self, retention};
use crate::{config, time};
use std::path::Path;

/// Prunes (or, with `--dry-run`, shows what would be pruned) and prints the outcome.
pub fn run(db: &Path, args: &PruneArgs) -> Result<ExitCode> {
    let now = config::now(&super::process_env)?;
    if args.before > now {
        return Err(Error::Usage(format!(
            "--before {} is in the future; give a cutoff in the past, e.g. --before {}",
            time::to_api(args.before),
            time::to_api(now - chrono::TimeDelta::days(365))
                .split('T')
                .next()
                .unwrap_or("2024-01-01")
        )));
    }
    let plan = if args.dry_run {
        let conn = store::open_read_only(db)?;
        retention::plan_prune(&conn, args.before)?
    } else {
        let mut store = super::open_existing(db)?;
        let plan = store.prune(args.before)?;
        if let Err(e) = store.checkpoint() {
            tracing::warn!("the write-ahead log was not folded back after the prune: {e}");
        }
        plan
    };
    let text = match args.format {
        StatusFormat::Text => output::prune_text(&plan, args.dry_run),
        StatusFormat::Json => {
            serde_json::to_string_pretty(&plan).map_err(|e| Error::Internal(e.to_string()))? + "\n"
        }
    };
    super::status::print_stdout(&text);
    Ok(ExitCode::Ok)
}
