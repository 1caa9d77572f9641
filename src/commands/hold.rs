//! `hold add|list|remove`: legal holds, the ranges `prune` never removes.

use crate::cli::{HoldArgs, HoldCommand};
use crate::error::{Error, ExitCode, Result};
use crate::model::Interval;
use crate::output::printable;
use crate::store;
use crate::time;
use std::path::Path;

/// Runs a `hold` subcommand.
pub fn run(db: &Path, args: &HoldArgs) -> Result<ExitCode> {
    match &args.command {
        HoldCommand::Add { from, to, reason } => {
            if from >= to {
                return Err(Error::Usage(format!(
                    "the held range is empty: --from {} is not before --to {}",
                    time::to_api(*from),
                    time::to_api(*to)
                )));
            }
            if reason.trim().is_empty() {
                return Err(Error::Usage(
                    "--reason is empty: say why the range is held (a case or request number)"
                        .into(),
                ));
            }
            let mut store = super::open_existing(db)?;
            let hold = store.add_hold(Interval::new(*from, *to), reason.trim())?;
            super::status::print_stdout(&format!(
                "hold {} placed on {} .. {}: {}\n",
                hold.id,
                hold.from,
                hold.to,
                printable(&hold.reason)
            ));
        }
        HoldCommand::List { all, format } => {
            let conn = store::open_read_only(db)?;
            let sql = format!(
                "SELECT id, range_from AS \"from\", range_to AS \"to\", reason, created_at, removed_at
                 FROM holds {} ORDER BY id",
                if *all { "" } else { "WHERE removed_at IS NULL" }
            );
            return super::query::print_rows(&conn, &sql, &[], *format);
        }
        HoldCommand::Remove { id } => {
            let mut store = super::open_existing(db)?;
            let Some(hold) = store.remove_hold(*id)? else {
                return Err(Error::Usage(format!(
                    "there is no hold in force with id {id}; `elevate-archive hold list` shows them"
                )));
            };
            super::status::print_stdout(&format!(
                "hold {} on {} .. {} lifted; its record stays (`hold list --all`)\n",
                hold.id, hold.from, hold.to
            ));
        }
    }
    Ok(ExitCode::Ok)
}
