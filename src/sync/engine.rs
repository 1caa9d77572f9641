//! The sync engine: runs a plan of windows against the API and into the archive.
//!
//! Windows are fetched concurrently (at most `concurrency` at once) on tokio. Each fetched page is classified
//! and handed over a bounded channel to one writer thread that owns the SQLite connection; the channel's bound
//! is the back-pressure that keeps memory flat however large the range. The writer commits whatever pages are
//! queued together (group commit), never splitting a page, and marks a window complete with its last page.
//!
//! Stopping: the first failure (after the client's retries) or a signal stops the run. In-flight requests
//! are dropped; pages already handed to the writer are committed; windows left incomplete are recorded as
//! failed or interrupted, and a later run fetches them again from page 1.

use crate::api::{ApiClient, ApiError, PageQuery, PageResult};
use crate::error::Error;
use crate::model::{Filters, Interval, PageBatch, WindowSpec};
use crate::store::Store;
use crate::store::write::{PageTotals, RunStart, RunStatus};
use crate::sync::{classify::classify, planner};
use crate::time;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Default number of windows fetched at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default items per page: the documented maximum.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
/// Largest page size the API documents.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Pages queued for the writer per concurrent window: the bound that keeps memory flat.
const QUEUED_PAGES_PER_WINDOW: usize = 2;
/// Most pages the writer commits in one transaction.
const MAX_GROUP_PAGES: usize = 32;
/// A window paging past this many pages is stopped (a server ignoring `page`, or a window far too large).
pub const MAX_PAGES_PER_WINDOW: u32 = 100_000;

/// A planned run.
#[derive(Debug, Clone)]
pub struct SyncJob {
    /// The run's range.
    pub range: Interval,
    /// Server-side filters.
    pub filters: Filters,
    /// The windows to fetch, from the planner.
    pub windows: Vec<Interval>,
    /// Items per page.
    pub page_size: u32,
    /// Windows fetched at once.
    pub concurrency: usize,
    /// The API base URL, recorded with the run.
    pub base_url: String,
    /// Draw a progress bar (only ever on a terminal).
    pub progress: bool,
    /// A `reconcile`: compare what the source returns with the archive and record the differences.
    pub reconcile: bool,
}

/// What a run did, for the summary line and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run's id in the `runs` table.
    pub run_id: i64,
    /// ok, partial, failed or interrupted.
    pub status: String,
    /// Range start.
    pub from: String,
    /// Range end.
    pub to: String,
    /// Windows planned.
    pub windows_planned: usize,
    /// Counters from the committed pages.
    #[serde(flatten)]
    pub totals: PageTotals,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Retries after failures.
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Tokens obtained.
    pub token_renewals: u64,
    /// Wall time in seconds.
    pub elapsed_seconds: f64,
    /// Events received per second.
    pub events_per_second: f64,
    /// What stopped the run, if it failed.
    pub error: Option<String>,
    /// The seal chain's head after the run: keep it elsewhere, and pass it to `verify --anchor` later.
    pub chain_head: Option<String>,
}

/// Live counters for the progress bar.
struct Progress {
    bar: ProgressBar,
    received: AtomicU64,
    started: Instant,
}

impl Progress {
    fn new(windows: usize, draw: bool) -> Self {
        let target = if draw {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(windows as u64), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} windows  {msg}  {elapsed_precise} (eta {eta})",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar,
            received: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn page(&self, items: usize) {
        let total = self.received.fetch_add(items as u64, Ordering::Relaxed) + items as u64;
        let rate = total as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        self.bar
            .set_message(format!("{total} events ({rate:.0}/s)"));
    }
}

/// Runs a job: records the run, fetches and stores every window, and records how it ended.
///
/// Returns the report and, if the run did not finish cleanly, the error that stopped it.
pub async fn run(
    client: Arc<ApiClient>,
    mut store: Store,
    job: SyncJob,
    shutdown: impl Future<Output = ()>,
) -> (RunReport, Result<(), Error>) {
    let started = Instant::now();
    let mut report = RunReport {
        run_id: 0,
        status: "failed".into(),
        from: time::to_stored(job.range.start),
        to: time::to_stored(job.range.end),
        windows_planned: job.windows.len(),
        totals: PageTotals::default(),
        requests: 0,
        retries: 0,
        throttled: 0,
        token_renewals: 0,
        elapsed_seconds: 0.0,
        events_per_second: 0.0,
        error: None,
        chain_head: None,
    };
    let run_id = match store.begin_run(&RunStart {
        range_from: report.from.clone(),
        range_to: report.to.clone(),
        category_filter: job.filters.category.clone(),
        action_filter: job.filters.action.clone(),
        base_url: job.base_url.clone(),
        windows_planned: job.windows.len(),
        kind: if job.reconcile { "reconcile" } else { "sync" },
    }) {
        Ok(id) => id,
        Err(e) => {
            report.error = Some(e.to_string());
            return (report, Err(e.into()));
        }
    };
    report.run_id = run_id;
    info!(run = run_id, windows = job.windows.len(), range = %job.range, "sync started");

    let progress = Arc::new(Progress::new(job.windows.len(), job.progress));
    let concurrency = job.concurrency.max(1);
    let (tx, rx) = mpsc::channel::<PageBatch>(concurrency * QUEUED_PAGES_PER_WINDOW);
    let writer = std::thread::Builder::new()
        .name("archive-writer".into())
        .spawn({
            let reconcile = job.reconcile;
            move || write_pages(store, run_id, rx, reconcile)
        })
        .expect("the writer thread starts");

    let fetch_result = {
        let windows = job.windows.iter().enumerate().map(|(seq, interval)| {
            let (from, to) = planner::request_bounds(*interval);
            let spec = Arc::new(WindowSpec {
                interval: *interval,
                filters: job.filters.clone(),
                created_from: time::to_api(from),
                created_to: time::to_api(to),
            });
            fetch_window(&client, tx.clone(), seq, spec, job.page_size, &progress)
        });
        let mut fetches = futures::stream::iter(windows).buffer_unordered(concurrency);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                next = fetches.next() => match next {
                    None => break Ok(()),
                    Some(Ok(())) => {}
                    Some(Err(e)) => break Err(e),
                },
                () = &mut shutdown => break Err(Error::Interrupted),
            }
        }
    };
    drop(tx);
    progress.bar.finish_and_clear();

    let (mut store, totals, written) = tokio::task::spawn_blocking(move || {
        writer.join().expect("the writer thread does not panic")
    })
    .await
    .expect("joining the writer does not fail");
    report.totals = totals;
    let result = match written {
        Err(store_error) => Err(Error::Store(store_error)),
        Ok(()) => fetch_result,
    };
    let status = match &result {
        Ok(()) if report.totals.rejects > 0 => RunStatus::Partial,
        Ok(()) => RunStatus::Ok,
        Err(Error::Interrupted) => RunStatus::Interrupted,
        Err(_) => RunStatus::Failed,
    };
    report.error = result.as_ref().err().map(|e| e.to_string());
    if let Err(e) = store.finish_run(run_id, status, report.error.as_deref()) {
        warn!("could not record the end of run {run_id}: {e}");
    }
    report.chain_head = crate::store::verify::head(store.conn()).ok();
    if let Err(e) = store.update_search_index() {
        warn!("the search index was not updated ({e}); the next sync will catch up");
    }
    if let Err(e) = store.optimize() {
        debug!("refreshing planner statistics did not complete: {e}");
    }
    if let Err(e) = store.checkpoint() {
        debug!("checkpoint at the end of the run did not complete: {e}");
    }
    report.status = match status {
        RunStatus::Ok => "ok",
        RunStatus::Partial => "partial",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "interrupted",
    }
    .into();
    let stats = &client.stats;
    report.requests = stats.requests.load(Ordering::Relaxed);
    report.retries = stats.retries.load(Ordering::Relaxed);
    report.throttled = stats.throttled.load(Ordering::Relaxed);
    report.token_renewals = stats.token_renewals.load(Ordering::Relaxed);
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    report.events_per_second =
        report.totals.events_received as f64 / report.elapsed_seconds.max(0.001);
    info!(run = run_id, status = %report.status, "sync ended");
    (report, result)
}

/// Pages through one window, handing each page to the writer.
async fn fetch_window(
    client: &ApiClient,
    tx: mpsc::Sender<PageBatch>,
    seq: usize,
    spec: Arc<WindowSpec>,
    page_size: u32,
    progress: &Progress,
) -> Result<(), Error> {
    let requested = (
        time::from_stored(&spec.created_from).expect("created_from is a valid time"),
        time::from_stored(&spec.created_to).expect("created_to is a valid time"),
    );
    let mut previous: Option<u64> = None;
    let mut page = 1;
    loop {
        let query = PageQuery {
            created_from: spec.created_from.clone(),
            created_to: spec.created_to.clone(),
            page,
            page_size,
            category: spec.filters.category.clone(),
            action: spec.filters.action.clone(),
        };
        let (items, last) = match client.fetch_page(&query).await? {
            PageResult::PastTheEnd => (Vec::new(), true),
            PageResult::Page { items, fingerprint } => {
                if !items.is_empty() && previous == Some(fingerprint) {
                    return Err(ApiError::RepeatedPage {
                        window: spec.interval.to_string(),
                        page,
                        previous: page - 1,
                    }
                    .into());
                }
                previous = Some(fingerprint);
                if items.len() > page_size as usize {
                    warn!(window = %spec.interval, page, "the server sent {} items for pageSize {page_size}; all are kept", items.len());
                }
                let last = items.len() < page_size as usize;
                (
                    items
                        .iter()
                        .map(|raw| classify(raw, requested))
                        .collect::<Vec<_>>(),
                    last,
                )
            }
        };
        let count = items.len();
        let batch = PageBatch {
            window_seq: seq,
            window: Arc::clone(&spec),
            page,
            items,
            last,
        };
        if tx.send(batch).await.is_err() {
            // The writer stopped; its own error, reported by `run`, explains why.
            return Err(Error::Internal("the archive writer stopped".into()));
        }
        progress.page(count);
        if last {
            progress.bar.inc(1);
            debug!(window = %spec.interval, pages = page, "window fetched");
            return Ok(());
        }
        page += 1;
        if page > MAX_PAGES_PER_WINDOW {
            return Err(ApiError::TooManyPages {
                window: spec.interval.to_string(),
                pages: MAX_PAGES_PER_WINDOW,
            }
            .into());
        }
    }
}

/// The writer thread: commits queued pages, several at a time, until the channel closes or a commit fails.
/// Returns the store, the totals of what was committed, and the error that stopped it, if any.
fn write_pages(
    mut store: Store,
    run_id: i64,
    mut rx: mpsc::Receiver<PageBatch>,
    reconcile: bool,
) -> (Store, PageTotals, Result<(), crate::store::StoreError>) {
    let mut ledger = HashMap::new();
    let mut observed = crate::store::write::Observed::new();
    let mut totals = PageTotals::default();
    let mut group = Vec::with_capacity(MAX_GROUP_PAGES);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP_PAGES {
            match rx.try_recv() {
                Ok(batch) => group.push(batch),
                Err(_) => break,
            }
        }
        let committed = if reconcile {
            store.commit_reconciled_pages(run_id, &group, &mut ledger, &mut observed)
        } else {
            store.commit_pages(run_id, &group, &mut ledger)
        };
        match committed {
            Ok(t) => totals.add(&t),
            Err(e) => return (store, totals, Err(e)),
        }
        group.clear();
    }
    (store, totals, Ok(()))
}
