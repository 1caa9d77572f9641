//! `status`: what the archive holds.

use crate::cli::{StatusArgs, StatusFormat};
use crate::error::{Error, ExitCode, Result};
use crate::{config, output, store};
use std::path::Path;

/// Prints the status report.
pub fn run(db: &Path, args: &StatusArgs) -> Result<ExitCode> {
    let now = config::now(&super::process_env)?;
    render(db, now, args.format)?;
    Ok(ExitCode::Ok)
}

/// Prints the status report as text.
pub fn print(db: &Path, now: crate::time::Timestamp) -> Result<()> {
    render(db, now, StatusFormat::Text)
}

fn render(db: &Path, now: crate::time::Timestamp, format: StatusFormat) -> Result<()> {
    let conn = store::open_read_only(db)?;
    let report = store::read::status(&conn, now)?;
    let text = match format {
        StatusFormat::Text => output::status_text(&report, &db.display().to_string()),
        StatusFormat::Json => {
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?
                + "\n"
        }
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
