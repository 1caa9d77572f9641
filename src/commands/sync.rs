//! `sync`: resolve settings, open the archive, plan the windows, run them, print the summary.

use crate::api::ApiClient;
use crate::cli::SyncArgs;
use crate::error::{Error, ExitCode, Result};
use crate::model::Interval;
use crate::store::Store;
use crate::sync::{self, SyncJob, planner};
use crate::{config, output, time};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use tracing::info;

/// How the end of a run is reported.
#[derive(Debug, Clone, Copy)]
pub struct Reporting {
    /// No progress bar, no summary line.
    pub quiet: bool,
    /// The summary as JSON.
    pub json: bool,
}

/// Runs a sync from the command line and reports it.
pub async fn run(db: &Path, args: &SyncArgs) -> Result<ExitCode> {
    let env = super::process_env;
    let now = config::now(&env)?;
    let settings = config::resolve_sync(args, &env, now)?;
    execute(
        db,
        settings,
        Reporting {
            quiet: args.quiet,
            json: args.json,
        },
    )
    .await
}

/// Runs a sync with resolved settings: open, plan, fetch, summarise.
pub async fn execute(
    db: &Path,
    settings: config::SyncSettings,
    reporting: Reporting,
) -> Result<ExitCode> {
    if settings.from.is_none() && !db.exists() {
        return Err(empty_archive(db));
    }
    let store = Store::open_for_sync(db)?;
    let covered = store.covered(&settings.filters)?;

    // Without --from, continue where the coverage ends (re-reading the lookback) and fill any hole inside it.
    let (start, force_from) = match (settings.from, covered.first(), covered.last()) {
        (Some(from), _, _) => (from, settings.refetch.then_some(from)),
        (None, Some(first), Some(last)) => {
            let force = if settings.refetch {
                first.start
            } else {
                last.end - settings.lookback
            };
            (first.start, Some(force))
        }
        _ => return Err(empty_archive(db)),
    };
    let range = Interval::new(start.min(settings.to), settings.to);
    let retired = store.pruned_ranges()?;
    let windows = planner::subtract_all(
        planner::plan(range, &covered, force_from, settings.window),
        &retired,
    );
    info!(range = %range, windows = windows.len(), "planned");

    let client = Arc::new(ApiClient::new(
        settings.client_options(),
        settings.credentials,
    )?);
    let job = SyncJob {
        range,
        filters: settings.filters,
        windows,
        page_size: settings.page_size,
        concurrency: settings.concurrency,
        base_url: settings.base_url.to_string(),
        progress: !reporting.quiet && !reporting.json && std::io::stderr().is_terminal(),
        reconcile: false,
    };
    let (report, result) = sync::run(client, store, job, super::shutdown_signal()).await;
    if reporting.json {
        let text = serde_json::to_string(&report).map_err(|e| Error::Internal(e.to_string()))?;
        super::status::print_stdout(&format!("{text}\n"));
    } else if !reporting.quiet {
        super::status::print_stdout(&format!("{}\n", output::summary_line(&report)));
    }
    result?;
    if report.totals.rejects > 0 {
        eprintln!(
            "warning: {} item(s) could not be archived and were kept in the rejects table: \
             elevate-archive query \"SELECT * FROM rejects\"",
            report.totals.rejects
        );
        return Ok(ExitCode::Partial);
    }
    Ok(ExitCode::Ok)
}

fn empty_archive(db: &Path) -> Error {
    Error::Usage(format!(
        "{} holds no events yet, so there is nowhere to continue from: pass --from (e.g. --from {}) for the first sync",
        db.display(),
        time::to_api(chrono::Utc::now() - chrono::TimeDelta::days(30))
            .split('T')
            .next()
            .unwrap_or("2024-01-01")
    ))
}
