//! `backup`: a consistent copy of the archive, safe while a sync runs.

use crate::cli::BackupArgs;
use crate::error::{Error, ExitCode, Result};
use crate::store;
use std::path::Path;

/// Writes the copy and says how to check it.
pub fn run(db: &Path, args: &BackupArgs) -> Result<ExitCode> {
    if args.out.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; pass a new path to --out",
            args.out.display()
        )));
    }
    let copy = store::backup(db, &args.out)?;
    super::status::print_stdout(&format!(
        "backup: {} events copied to {}; chain head {}\ncheck it with: elevate-archive --db {} verify --anchor {}\n",
        crate::output::thousands(copy.events),
        args.out.display(),
        copy.head,
        args.out.display(),
        copy.head
    ));
    Ok(ExitCode::Ok)
}
