//! `verify`: is the archive intact and complete? Exit 0 only when everything holds.

use crate::cli::{StatusFormat, VerifyArgs};
use crate::error::{Error, ExitCode, Result};
use crate::output;
use crate::store::read::Verification;
use crate::store::verify::VerifyReport;
use crate::store::{Archive, ArchiveReader};
use crate::time;
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
    if args.record {
        record(db, &report)?;
    }
    Ok(if !report.intact() {
        ExitCode::VerifyFailed
    } else if !report.complete() {
        ExitCode::Incomplete
    } else {
        ExitCode::Ok
    })
}

/// `--record`: writes what was found into the archive (`verifications`), for `status --check` and the metrics
/// file. Takes the writer's lock: refused (exit 6) while a sync runs.
fn record(db: &Path, report: &VerifyReport) -> Result<()> {
    let now = super::clock()?.now();
    let mut archive = Archive::open_existing(db, now)?;
    archive.record_verification(&Verification {
        verified_at: time::to_stored(now),
        intact: report.intact(),
        complete: report.complete(),
        findings: report.findings.len() as i64,
        chain_head: Some(report.head.clone()),
    })?;
    Ok(())
}
