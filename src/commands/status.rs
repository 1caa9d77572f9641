//! `status`: what the archive holds.

use crate::cli::{StatusArgs, StatusFormat};
use crate::error::{ExitCode, Result};
use crate::output;
use crate::store::ArchiveReader;
use crate::time::Timestamp;
use std::path::Path;

/// Prints the status report.
pub fn run(db: &Path, args: &StatusArgs) -> Result<ExitCode> {
    render(db, super::clock()?.now(), args.format)?;
    Ok(ExitCode::Ok)
}

/// Prints the status report as text.
pub fn print(db: &Path, now: Timestamp) -> Result<()> {
    render(db, now, StatusFormat::Text)
}

fn render(db: &Path, now: Timestamp, format: StatusFormat) -> Result<()> {
    let report = ArchiveReader::open(db)?.status(now)?;
    let text = match format {
        StatusFormat::Text => output::status_text(&report, &db.display().to_string()),
        StatusFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    print_stdout(&text);
    Ok(())
}

/// Prints to stdout, ending quietly if stdout was closed (e.g. piped into `head`).
pub(crate) fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
