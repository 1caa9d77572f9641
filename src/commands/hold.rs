//! `hold add|list|remove`: legal holds, the ranges `prune` never removes.

use crate::cli::{HoldArgs, HoldCommand};
use crate::error::{Error, ExitCode, Result};
use crate::output::printable;
use crate::store::{Archive, ArchiveReader};
use std::path::Path;

/// Runs a `hold` subcommand.
pub fn run(db: &Path, args: &HoldArgs) -> Result<ExitCode> {
    let clock = super::clock()?;
    match &args.command {
        HoldCommand::Add { from, to, reason } => {
            let range = crate::config::nonempty_range(*from, *to, "held range", "--to")?;
            if reason.trim().is_empty() {
                return Err(Error::Usage(
                    "--reason is empty: say why the range is held (a case or request number)"
                        .into(),
                ));
            }
            let mut archive = Archive::open_existing(db, clock.now())?;
            let hold = archive.add_hold(range, reason.trim(), clock.now())?;
            super::status::print_stdout(&format!(
                "hold {} placed on {} .. {}: {}\n",
                hold.id,
                hold.from,
                hold.to,
                printable(&hold.reason)
            ));
        }
        HoldCommand::List { all, format } => {
            let archive = ArchiveReader::open(db)?;
            return super::query::print_rows(*format, |sink| archive.list_holds(*all, sink));
        }
        HoldCommand::Remove { id } => {
            let mut archive = Archive::open_existing(db, clock.now())?;
            let Some(hold) = archive.remove_hold(*id, clock.now())? else {
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
