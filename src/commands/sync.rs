//! `sync`: resolve settings, open the archive, plan the windows, run them, print the summary.

use crate::api::ApiClient;
use crate::cli::{CheckpointArgs, SyncArgs};
use crate::error::{Error, ExitCode, Result};
use crate::model::{Interval, Lookback, RunKind, subtract_all};
use crate::store::{Archive, ArchiveRead, ArchiveReader};
use crate::sync::{self, RunReport, SyncJob, planner};
use crate::time::Clock;
use crate::{config, metrics, output, progress};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use tracing::{info, warn};

/// How the end of a run is reported.
#[derive(Debug, Clone, Default)]
pub struct Reporting {
    /// No progress bar, no summary line.
    pub quiet: bool,
    /// The summary as JSON.
    pub json: bool,
    /// Where to write the run's figures and the archive's state for a metrics collector.
    pub metrics_file: Option<std::path::PathBuf>,
}

impl Reporting {
    /// Whether to draw a progress bar: only on a terminal, and only when a summary is printed for people.
    pub fn draws_progress(&self) -> bool {
        !self.quiet && !self.json && std::io::stderr().is_terminal()
    }
}

/// Runs a sync from the command line and reports it.
pub async fn run(db: &Path, args: &SyncArgs) -> Result<ExitCode> {
    let env = super::process_env;
    let clock = config::clock(&env)?;
    let settings = config::resolve_sync(args, &env, clock.now())?;
    execute(
        db,
        settings,
        Reporting {
            quiet: args.quiet,
            json: args.json,
            metrics_file: args.metrics_file.clone(),
        },
        clock,
        &args.checkpoint,
    )
    .await
}

/// Runs a sync with resolved settings: open, plan, fetch, make the checkpoint, summarise.
pub async fn execute(
    db: &Path,
    settings: config::SyncSettings,
    reporting: Reporting,
    clock: Clock,
    checkpoint: &CheckpointArgs,
) -> Result<ExitCode> {
    if settings.from.is_none() && !db.exists() {
        return Err(empty_archive(db, clock));
    }
    let key =
        super::checkpoint::signing_key(checkpoint.signing_key.as_deref(), &super::process_env)?;
    let archive = Archive::open(db, clock.now())?;
    let base_url = settings.source.as_str();
    let covered = archive.covered(base_url, &settings.filters)?;
    let wanted = archive.wanted(base_url, &settings.filters)?;
    let lookback = match settings.lookback {
        Lookback::Fixed(d) => d,
        Lookback::Auto => {
            let auto = archive.lateness(clock.now())?.auto_lookback();
            info!(lookback = %crate::time::human_duration(auto), "--lookback auto");
            auto
        }
    };
    // Without --from: from the earliest range asked for or covered (filling whatever a killed or failed run
    // left), re-reading the lookback at the end of the coverage.
    let Some((start, force_from)) =
        planner::start(settings.from, &covered, &wanted, settings.refetch, lookback)
    else {
        return Err(empty_archive(db, clock));
    };
    let range = Interval::new(start.min(settings.to), settings.to);
    let retired = archive.pruned_ranges()?;
    let windows = subtract_all(
        planner::plan(range, &covered, force_from, settings.window),
        &retired,
    );
    info!(range = %range, windows = windows.len(), "planned");

    let planned = Planned {
        range,
        windows,
        retired,
        lookback: Some(lookback),
    };
    let (client, job) = job(settings, planned, RunKind::Sync, clock)?;
    let progress = progress::reporter(reporting.draws_progress());
    let (report, result, mut archive) =
        sync::run(client, archive, job, super::shutdown_signal(), progress).await;
    let made =
        super::checkpoint::after_run_on(&mut archive, checkpoint, key.as_ref(), clock.now(), None);
    drop(archive);
    if reporting.json {
        let summary = super::checkpoint::with_checkpoint(
            &report,
            made.as_ref().ok().and_then(Option::as_ref),
        )?;
        super::status::print_stdout(&format!("{summary}\n"));
    } else if !reporting.quiet {
        super::status::print_stdout(&format!("{}\n", output::summary_line(&report)));
    }
    let code = match &result {
        Ok(()) => outcome(&report),
        Err(e) => e.exit_code(),
    };
    if let Some(path) = &reporting.metrics_file {
        write_metrics(path, db, &report, code, clock);
    }
    result?;
    made?;
    Ok(code)
}

/// Writes the metrics file of a run that ended with `code`. A failure to write it is reported and changes
/// nothing else (the run's own outcome stands; a collector sees the file go stale).
fn write_metrics(path: &Path, db: &Path, report: &RunReport, code: ExitCode, clock: Clock) {
    let now = clock.now();
    let status = ArchiveReader::open(db).and_then(|r| r.status(now));
    if let Err(e) = &status {
        warn!("the metrics file leaves out the archive's state: {e}");
    }
    let text = metrics::render(
        &db.display().to_string(),
        report,
        code.code(),
        status.as_ref().ok(),
        now,
    );
    if let Err(e) = metrics::write(path, &text) {
        warn!("cannot write the metrics file {}: {e}", path.display());
    }
}

/// What a run was planned to read: its range, its windows, and the pruned ranges it must not archive again.
pub(crate) struct Planned {
    /// The run's range.
    pub range: Interval,
    /// Its windows.
    pub windows: Vec<Interval>,
    /// The ranges `prune` emptied.
    pub retired: Vec<Interval>,
    /// The lookback a sync runs with (recorded with the run; none for a reconcile).
    pub lookback: Option<chrono::TimeDelta>,
}

/// The API client and the engine's job for a planned `sync` or `reconcile`.
pub(crate) fn job(
    settings: config::SyncSettings,
    planned: Planned,
    kind: RunKind,
    clock: Clock,
) -> Result<(Arc<ApiClient>, SyncJob)> {
    let client = Arc::new(ApiClient::new(
        settings.client_options(),
        settings.credentials,
    )?);
    let job = SyncJob {
        range: planned.range,
        filters: settings.filters,
        windows: planned.windows,
        page_size: settings.page_size,
        concurrency: settings.concurrency,
        base_url: settings.source,
        kind,
        check_paging: settings.check_paging,
        clock,
        retired: planned.retired,
        lookback: planned.lookback,
    };
    Ok((client, job))
}

/// The exit code of a run that finished, with a warning on stderr for what is missing or kept aside: failed
/// windows (exit 9: data still to fetch) outrank rejects (exit 3: data kept aside).
pub(crate) fn outcome(report: &RunReport) -> ExitCode {
    if report.totals.rejects > 0 {
        eprintln!(
            "warning: {} item(s) could not be archived and were kept in the rejects table: \
             elevate-archive query \"{}\"",
            report.totals.rejects,
            crate::store::examples::REJECTS
        );
    }
    if !report.failed_windows.is_empty() {
        eprintln!(
            "warning: {} window(s) failed and are not archived yet; the others are. The next plain \
             `elevate-archive sync` fetches them again:",
            report.failed_windows.len()
        );
        for w in &report.failed_windows {
            eprintln!("  {} .. {}: {}", w.from, w.to, w.error);
        }
        return ExitCode::Incomplete;
    }
    if report.totals.rejects > 0 {
        return ExitCode::Partial;
    }
    ExitCode::Ok
}

fn empty_archive(db: &Path, clock: Clock) -> Error {
    Error::Usage(format!(
        "{} holds no events yet, so there is nowhere to continue from: pass --from (e.g. --from {}) for the first sync",
        db.display(),
        (clock.now() - chrono::TimeDelta::days(30)).format("%Y-%m-%d")
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_sync_hint_names_a_date_a_month_before_now() {
        let clock =
            super::Clock::Pinned(crate::time::parse_time_arg("2026-03-31T10:00:00Z").unwrap());
        let text = super::empty_archive(std::path::Path::new("a.db"), clock).to_string();
        assert!(text.contains("--from 2026-03-01"), "{text}");
    }
}
