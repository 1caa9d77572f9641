//! `reconcile`: read covered windows from the API again and compare. Late arrivals are archived; events
//! changed at the source are kept as revisions beside their first version; events deleted at the source stay
//! in the archive. Every difference is recorded in `source_changes`, sealed with the fetch that observed it.

use crate::api::ApiClient;
use crate::cli::ReconcileArgs;
use crate::error::{Error, ExitCode, Result};
use crate::model::Interval;
use crate::store;
use crate::sync::{self, RunReport, SyncJob, planner};
use crate::{config, output, time};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

/// Most ids listed per kind of difference.
const IDS_LISTED: usize = 20;

/// What a reconcile found.
#[derive(Debug, Serialize)]
pub struct ReconcileReport {
    /// Whether the source agrees with the archive over the range read.
    pub agrees: bool,
    /// Events the source has that the archive did not: archived now.
    pub late: u64,
    /// Events whose content changed at the source: kept as revisions.
    pub changed: u64,
    /// Archived events the source no longer returns: kept in the archive.
    pub deleted: u64,
    /// Of those, how many this reconcile recorded for the first time.
    pub deleted_newly_recorded: u64,
    /// Ids this reconcile recorded, by kind (at most 20 each; all are in `source_changes`).
    pub ids: BTreeMap<String, Vec<i64>>,
    /// The run that read the windows again.
    pub run: RunReport,
}

/// Reconciles and reports. Exit 0 when the source agrees, 8 when it does not.
pub async fn run(db: &Path, args: &ReconcileArgs) -> Result<ExitCode> {
    let env = super::process_env;
    let now = config::now(&env)?;
    let settings = config::resolve_reconcile(args, &env, now)?;
    let store = super::open_existing(db)?;
    let covered = store.covered(&settings.filters)?;
    let (Some(first), Some(last)) = (covered.first(), covered.last()) else {
        return Err(Error::Usage(format!(
            "{} has no complete window{} yet, so there is nothing to reconcile: run `elevate-archive sync` first",
            db.display(),
            if settings.filters.is_none() {
                String::new()
            } else {
                " for these filters".into()
            }
        )));
    };
    let start = settings.from.unwrap_or(first.start);
    let end = if args.to.is_some() {
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
    let range = Interval::new(start, end);
    let windows = planner::subtract_all(covered_windows, &store.pruned_ranges()?);
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
        progress: !args.quiet && !args.json && std::io::stderr().is_terminal(),
        reconcile: true,
    };
    let (run, result) = sync::run(client, store, job, super::shutdown_signal()).await;
    if let Err(e) = result {
        if !args.json {
            super::status::print_stdout(&format!("{}\n", output::summary_line(&run)));
        }
        return Err(e);
    }
    let conn = store::open_read_only(db)?;
    let mut ids: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT c.kind, c.event_id FROM source_changes c JOIN windows w ON w.id = c.window_id
             WHERE w.run_id = ?1 ORDER BY c.kind, c.event_id",
        )
        .map_err(|e| Error::Internal(format!("cannot read what the reconcile recorded: {e}")))?;
    let rows = stmt
        .query_map([run.run_id], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect::<Result<Vec<(String, i64)>, _>>())
        .map_err(|e| Error::Internal(format!("cannot read what the reconcile recorded: {e}")))?;
    for (kind, id) in rows {
        let list = ids.entry(kind).or_default();
        if list.len() < IDS_LISTED {
            list.push(id);
        }
    }
    let t = run.totals;
    let report = ReconcileReport {
        agrees: t.events_new + t.revisions + t.missing_at_source == 0,
        late: t.events_new,
        changed: t.revisions,
        deleted: t.missing_at_source,
        deleted_newly_recorded: t.deletions_recorded,
        ids,
        run,
    };
    let text = if args.json {
        serde_json::to_string(&report).map_err(|e| Error::Internal(e.to_string()))? + "\n"
    } else {
        output::reconcile_text(&report)
    };
    super::status::print_stdout(&text);
    Ok(if report.agrees {
        ExitCode::Ok
    } else {
        ExitCode::SourceDisagrees
    })
}
