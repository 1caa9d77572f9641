//! `reconcile`: read covered windows from the API again and compare. Late arrivals are archived; events
//! changed at the source are kept as revisions beside their first version; events deleted at the source stay
//! in the archive. Every difference is recorded in `source_changes`, sealed with the fetch that observed it.

use super::sync::Reporting;
use crate::cli::ReconcileArgs;
use crate::config::SyncSettings;
use crate::error::{Error, ExitCode, Result};
use crate::model::{Interval, RunKind, subtract_all};
use crate::store::{Archive, ArchiveRead, ArchiveReader};
use crate::sync::reconcile::ReconcileReport;
use crate::sync::{self, planner};
use crate::{config, output, progress, time};
use std::path::Path;

/// Reconciles and reports. Exit 0 when the source agrees, 8 when it does not.
pub async fn run(db: &Path, args: &ReconcileArgs) -> Result<ExitCode> {
    let env = super::process_env;
    let clock = config::clock(&env)?;
    let settings = config::resolve_reconcile(args, &env, clock.now())?;
    let key = super::checkpoint::signing_key(args.checkpoint.signing_key.as_deref(), &env)?;
    let archive = Archive::open_existing(db, clock.now())?;
    let (range, windows) = plan(&archive, &settings, args.to.is_some(), db)?;
    let planned = super::sync::Planned {
        range,
        windows,
        retired: archive.pruned_ranges()?,
        lookback: None,
    };
    let (client, job) = super::sync::job(settings, planned, RunKind::Reconcile, clock)?;
    let reporting = Reporting {
        quiet: args.quiet,
        json: args.json,
        metrics_file: None,
    };
    let progress = progress::reporter(reporting.draws_progress());
    let (run, result, mut archive) =
        sync::run(client, archive, job, super::shutdown_signal(), progress).await;
    let made = super::checkpoint::after_run_on(
        &mut archive,
        &args.checkpoint,
        key.as_ref(),
        clock.now(),
        None,
    );
    drop(archive);
    if let Err(e) = result {
        if !args.json {
            super::status::print_stdout(&format!("{}\n", output::summary_line(&run)));
        }
        return Err(e);
    }
    let recorded = ArchiveReader::open(db)?.source_changes_of_run(run.run_id)?;
    let report = ReconcileReport::new(run, &recorded);
    let made = made?;
    let text = if args.json {
        super::checkpoint::with_checkpoint(&report, made.as_ref())?.to_string() + "\n"
    } else {
        output::reconcile_text(&report)
    };
    super::status::print_stdout(&text);
    let finished = super::sync::outcome(&report.run);
    Ok(if report.late + report.changed + report.deleted > 0 {
        ExitCode::SourceDisagrees
    } else {
        finished
    })
}

/// The range to read again and its windows: the covered parts of the range asked for (the whole coverage by
/// default), cut on the window grid, less the pruned ranges.
fn plan(
    archive: &Archive,
    settings: &SyncSettings,
    explicit_to: bool,
    db: &Path,
) -> Result<(Interval, Vec<Interval>)> {
    let covered = archive.covered(&settings.source, &settings.filters)?;
    let (Some(first), Some(last)) = (covered.first(), covered.last()) else {
        return Err(Error::Usage(format!(
            "{} has no complete window{} yet, so there is nothing to reconcile: run `elevate-archive sync` first",
            db.display(),
            if settings.filters.is_none() {
                ""
            } else {
                " for these filters"
            }
        )));
    };
    let start = settings.from.unwrap_or(first.start);
    let end = if explicit_to {
        settings.to
    } else {
        last.end.min(settings.to)
    };
    let covered_windows = if start < end {
        planner::plan_reconcile(Interval::new(start, end), &covered, settings.window)
    } else {
        Vec::new()
    };
    if covered_windows.is_empty() {
        return Err(Error::Usage(format!(
            "the archive covers nothing in {} .. {}: pick --from/--to inside {} .. {}",
            time::to_api(start),
            time::to_api(end),
            time::to_api(first.start),
            time::to_api(last.end)
        )));
    }
    let windows = subtract_all(covered_windows, &archive.pruned_ranges()?);
    Ok((Interval::new(start, end), windows))
}
