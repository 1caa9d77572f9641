//! `export --incremental` and `export --check`: the Parquet mirror (see [`crate::export::mirror`]).

use crate::cli::ExportArgs;
use crate::error::{Error, ExitCode, Result};
use crate::export::Format;
use crate::export::mirror::{self, destination};
use crate::store::{Archive, ArchiveReader};
use std::path::Path;

/// Mirrors what was sealed since the last export to `--out`.
pub fn run(db: &Path, format: Format, args: &ExportArgs) -> Result<ExitCode> {
    if format != Format::Parquet {
        return Err(Error::Usage(
            "--incremental mirrors a Parquet dataset: pass --format parquet".into(),
        ));
    }
    let s = &args.selection;
    if s.from.is_some() || s.to.is_some() || s.category.is_some() || s.action.is_some() {
        return Err(Error::Usage(
            "--incremental mirrors the whole archive: drop --from, --to, --category and --action"
                .into(),
        ));
    }
    let out = out_url(args.out.as_deref().expect("clap requires --out"))?;
    let dest = destination::open(&out, args.allow_http).map_err(Error::Usage)?;
    let now = super::clock()?.now();
    let mut archive = Archive::open_existing(db, now)?;
    let report = mirror::run(&mut archive, dest.as_ref(), now)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    if report.seals == 0 {
        eprintln!(
            "nothing new to mirror to {} (export run {}, {} rows)",
            report.destination, report.export_run, report.rows
        );
    } else {
        eprintln!(
            "mirrored {} seal(s) to {} as export run {}: {} rows written in {} object(s), {} object(s) dropped; the mirror holds {} events and {} revisions",
            report.seals,
            report.destination,
            report.export_run,
            report.rows_written,
            report.objects_added,
            report.objects_removed,
            report.rows,
            report.revisions
        );
    }
    Ok(ExitCode::Ok)
}

/// Re-reads the mirror at `url` and compares it with the archive: exit 7 when anything differs.
pub fn check(db: &Path, url: &str, args: &ExportArgs) -> Result<ExitCode> {
    let dest = destination::open(url, args.allow_http).map_err(Error::Usage)?;
    let archive = ArchiveReader::open(db)?;
    let report = mirror::check(&archive, dest.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for f in &report.findings {
            println!("{:?}\t{}", f.problem, f.path);
        }
    }
    if report.rows != report.archive_rows || report.revisions != report.archive_revisions {
        eprintln!(
            "the ledger says the mirror holds {} events and {} revisions; the archive holds {} and {} through the seal mirrored",
            report.rows, report.revisions, report.archive_rows, report.archive_revisions
        );
    }
    if report.intact() {
        eprintln!(
            "{}: intact ({} objects, {} rows, export run {})",
            report.destination, report.objects, report.rows, report.export_run
        );
        Ok(ExitCode::Ok)
    } else {
        eprintln!(
            "{}: {} object(s) missing, extra or altered",
            report.destination,
            report.findings.len()
        );
        Ok(ExitCode::VerifyFailed)
    }
}

/// `--out` as text (a URL or a path).
fn out_url(out: &Path) -> Result<String> {
    out.to_str()
        .map(String::from)
        .ok_or_else(|| Error::Usage(format!("{} is not valid UTF-8", out.display())))
}
