//! `verify`: is the archive intact and complete? Exit 0 only when everything holds.

use crate::cli::{StatusFormat, VerifyArgs};
use crate::error::{Error, ExitCode, Result};
use crate::output;
use crate::store::ArchiveReader;
use std::path::Path;

/// Verifies the archive and prints what it found.
pub fn run(db: &Path, args: &VerifyArgs) -> Result<ExitCode> {
    let anchor = args
        .anchor
        .as_deref()
        .map(str::trim)
        .map(str::to_ascii_lowercase);
    if let Some(a) = &anchor
        && (a.len() != 64 || !a.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Error::Usage(format!(
            "--anchor must be a 64-digit hex chain head, got '{a}'"
        )));
    }
    let report = ArchiveReader::open(db)?.verify(anchor.as_deref())?;
    let text = match args.format {
        StatusFormat::Text => output::verify_text(&report),
        StatusFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    super::status::print_stdout(&text);
    Ok(if !report.intact() {
        ExitCode::VerifyFailed
    } else if !report.complete() {
        ExitCode::Incomplete
    } else {
        ExitCode::Ok
    })
}
