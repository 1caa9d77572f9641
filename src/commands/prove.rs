//! `prove`: one event's evidence bundle, checkable without the archive by `verify-proof` (or any C2SP tool).

use crate::cli::ProveArgs;
use crate::error::{Error, ExitCode, Result};
use crate::store::ArchiveReader;
use crate::store::tlog::ProveError;
use std::path::Path;

/// Writes the bundle to `--out` (atomically, 0600) or stdout.
pub fn run(db: &Path, args: &ProveArgs) -> Result<ExitCode> {
    let key = super::checkpoint::signing_key(args.signing_key.as_deref(), &super::process_env)?;
    let bundle = ArchiveReader::open(db)?
        .prove(args.event_id, key.as_ref())
        .map_err(|e| match e {
            ProveError::Store(e) => Error::Store(e),
            e @ (ProveError::NoSuchEvent(_) | ProveError::NoSignedCheckpoint { .. }) => {
                Error::Usage(e.to_string())
            }
            e @ ProveError::Unaccounted(_) => Error::Tampered(e.to_string()),
        })?;
    let text = bundle.to_text();
    match &args.out {
        Some(out) => {
            super::checkpoint::write_private(out, text.as_bytes())?;
            let status = match bundle.status {
                crate::tlog::bundle::ProofStatus::Archived => "archived",
                crate::tlog::bundle::ProofStatus::Removed => {
                    "removed by a prune: its removal is proved"
                }
            };
            eprintln!(
                "wrote the evidence bundle of event {} ({status}) to {}",
                args.event_id,
                out.display()
            );
        }
        None => super::status::print_stdout(&text),
    }
    Ok(ExitCode::Ok)
}
