//! `status`: what the archive holds.

use crate::cli::{StatusArgs, StatusFormat};
use crate::error::{ExitCode, Result};
use crate::store::ArchiveReader;
use crate::time::Timestamp;
use crate::{monitor, output, time};
use std::path::Path;

/// Prints the status report, or with `--check` the monitoring verdict.
pub fn run(db: &Path, args: &StatusArgs) -> Result<ExitCode> {
    let now = super::clock()?.now();
    if args.check {
        return Ok(check(db, now, args));
    }
    render(db, now, args.format)?;
    Ok(ExitCode::Ok)
}

/// `status --check`: the verdict in the monitoring-plugin convention. An archive that cannot be read is
/// UNKNOWN (exit 3), with why.
fn check(db: &Path, now: Timestamp, args: &StatusArgs) -> ExitCode {
    let limits = monitor::Limits {
        max_age: time::delta(args.max_age),
        max_verify_age: time::delta(args.max_verify_age),
    };
    let report = ArchiveReader::open(db).and_then(|r| r.status(now));
    let (text, state) = match report {
        Ok(report) => {
            let problems = monitor::check(&report, now, limits);
            (
                monitor::render(&report, &problems),
                monitor::state(&problems),
            )
        }
        Err(e) => (
            monitor::render_unknown(&e.to_string()),
            monitor::CheckState::Unknown,
        ),
    };
    print_stdout(&text);
    ExitCode::Check(state)
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
