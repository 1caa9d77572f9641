//! The sync engine: runs a plan of windows against the API and into the archive.
//!
//! Windows are fetched concurrently on tokio, and so are the pages of one window: `concurrency` bounds the
//! page requests in flight across the whole run (a semaphore: a request holds a permit from before it is sent
//! until its answer is read), and each window asks for pages ahead of the one it takes as far as its share
//! of the requests goes (see [`window_share`] and [`Pager::ahead`]: one page at a time while windows wait to
//! start, as many as the run allows for a window alone); a request that comes back with a full page makes
//! way for the next page at once, before its page is classified and taken ([`pages_to_ask`]). Each page is
//! fetched and classified by a task of its own, and taken by its window strictly in page order, so the
//! pager's end rules, the repeated-page check, `--check-paging` and the writer see exactly what paging one
//! page at a time shows them (`--check-paging` also checks a boundary from the side of the page after it
//! when that page was asked for before the one in front of it was answered, since it was perhaps served
//! first: see `reread_if_overtaken`); pages asked for past the confirmed end are abandoned (never sent if
//! not yet sent, not retried if in flight) and their answers dropped. Each taken page is handed over a bounded
//! channel to one writer thread that owns the SQLite connection; the channel's bound (with the bounded pages
//! asked for ahead) is the back-pressure that keeps memory flat however large the range. The writer commits
//! whatever pages are queued together (group commit), never splitting a page, and marks a window complete
//! with its last page.
//!
//! Failing: a window that fails (retries exhausted, a body that is not a page, a server that loops) is
//! recorded as failed, with why, and the other windows go on: one bad hour does not cost a three-year
//! backfill. The run then ends `partial` (exit 9) and names the failed windows; the next plain sync fetches
//! them again. What no window can get past (credentials refused, permission missing, the archive failing)
//! and a signal stop the whole run: in-flight requests are dropped, pages already handed to the writer are
//! committed, and windows left incomplete are recorded as failed or interrupted.
//!
//! Ends: a window is paged until its end is confirmed (see [`super::pager`]): a short page is not trusted.
//!
//! The engine draws nothing: it reports progress as [`Progress`] values to a callback the command supplies,
//! and takes every "now" from the job's one [`Clock`].

use crate::api::{ApiClient, ApiError, PageQuery, PageResult};
use crate::error::Error;
use crate::model::{
    EventSelection, Filters, Interval, Item, PageBatch, RunKind, RunStatus, WindowSpec,
};
use crate::store::write::{PageTotals, RunEnd, RunStart, SearchIndexing};
use crate::store::{Archive, ArchiveRead, ArchiveReader, StoreError};
use crate::sync::pager::{Answer, Pager, Step, pages_to_ask, window_share};
use crate::sync::{classify::classify, planner};
use crate::time::{self, Clock};
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Default number of requests in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default items per page: the documented maximum.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
/// Largest page size the API documents.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Pages queued for the writer per request allowed in flight: the bound that keeps memory flat.
const QUEUED_PAGES_PER_REQUEST: usize = 2;
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
    /// Requests in flight at once, across all windows.
    pub concurrency: usize,
    /// The source's name, recorded with the run: its API base URL (or the stable name of a source whose URL
    /// changes from run to run, see `SyncSettings::source`).
    pub base_url: String,
    /// A `sync`, or a `reconcile` (compare what the source returns with the archive, record the differences).
    pub kind: RunKind,
    /// The one clock every "now" of the run comes from.
    pub clock: Clock,
    /// Re-read each boundary between full pages (one one-item request per page, two for a page asked for
    /// before the page in front of it was answered) to catch events skipped when the source deletes events
    /// while a window is paged, or inserts some in the middle of its list while its pages are asked for ahead.
    pub check_paging: bool,
    /// The ranges `prune` emptied (sorted, disjoint): events the server returns there (a window's one-second
    /// overlap reaches back into them, or a server returns more than asked) are not archived again.
    pub retired: Vec<Interval>,
    /// The lookback a sync runs with, recorded with the run (none for a reconcile).
    pub lookback: Option<chrono::TimeDelta>,
}

/// What the engine reports while it runs, for a command to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The run starts with this many windows.
    Started {
        /// Windows planned.
        windows: usize,
    },
    /// A page of this many items was handed to the writer.
    Page {
        /// Items in the page.
        items: usize,
    },
    /// A window's last page was handed to the writer.
    WindowDone,
    /// Fetching has ended (the writer may still be committing the last pages).
    Finished,
}

/// Receives the engine's progress (called from the fetch tasks: keep it cheap).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// What a run did, for the summary line and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run's id in the `runs` table.
    pub run_id: i64,
    /// ok, partial, failed or interrupted.
    pub status: RunStatus,
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
    /// Windows that failed while the others went on; the next plain sync fetches them again.
    pub failed_windows: Vec<FailedWindow>,
    /// The size of a short page the server had more items behind (it serves fewer than `pageSize`), if seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_fewer: Option<usize>,
    /// Events the server returned inside pruned ranges, not archived again (retention holds).
    #[serde(skip_serializing_if = "is_zero")]
    pub pruned_skipped: u64,
    /// Page boundaries `--check-paging` found shifted (events deleted at the source while a window was
    /// paged, or inserted in the middle of its list while its pages were asked for ahead); the page on the
    /// side that could have skipped events was read again, so nothing was skipped.
    #[serde(skip_serializing_if = "is_zero")]
    pub paging_shifts: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What fetching one window learned besides its pages.
#[derive(Debug, Default)]
struct WindowFetch {
    /// The pager, which knows whether the server served fewer items than asked.
    pager: Pager,
    /// Events returned inside pruned ranges and not archived again.
    pruned_skipped: u64,
    /// Page boundaries found shifted by deletions or insertions at the source during paging (`--check-paging`).
    paging_shifts: u64,
}

/// A window that failed while the run went on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailedWindow {
    /// Its start (stored form).
    pub from: String,
    /// Its end (stored form).
    pub to: String,
    /// Why, in words.
    pub error: String,
}

/// What the fetch tasks hand the writer, in order.
#[derive(Debug)]
enum Handoff {
    /// A page to commit.
    Page(PageBatch),
    /// A window that failed: recorded as failed (with its committed pages kept) and sealed.
    Failed {
        /// Its position in the plan.
        window_seq: usize,
        /// The window.
        window: Arc<WindowSpec>,
        /// Why, in words.
        error: String,
    },
}

/// Runs a job: records the run, fetches and stores every window, and records how it ended.
///
/// Returns the report, the error that stopped the run if it did not finish cleanly, and the archive (the
/// caller ends the run with its checkpoint of the log on the same handle, then folds the write-ahead log back:
/// see [`crate::store::Archive::checkpoint`]).
pub async fn run(
    client: Arc<ApiClient>,
    mut archive: Archive,
    job: SyncJob,
    shutdown: impl Future<Output = ()>,
    progress: ProgressFn,
) -> (RunReport, Result<(), Error>, Archive) {
    let started = Instant::now();
    let mut report = RunReport::new(&job);
    let (run_id, reader) = match start(&mut archive, &job) {
        Ok(started) => started,
        Err(e) => {
            report.error = Some(e.to_string());
            return (report, Err(e.into()), archive);
        }
    };
    report.run_id = run_id;
    info!(run = run_id, windows = job.windows.len(), range = %job.range, "sync started");
    progress(Progress::Started {
        windows: job.windows.len(),
    });
    let concurrency = job.concurrency.max(1);
    let (tx, rx) = mpsc::channel::<Handoff>(concurrency * QUEUED_PAGES_PER_REQUEST);
    let writer = std::thread::Builder::new()
        .name("archive-writer".into())
        .spawn({
            let (kind, clock) = (job.kind, job.clock);
            move || write_pages(archive, run_id, rx, kind, clock)
        })
        .expect("the writer thread starts");
    let context = FetchContext {
        job: &job,
        reader: reader.as_ref(),
        progress: &progress,
        pages: PageFetcher {
            client: Arc::clone(&client),
            in_flight: Arc::new(Semaphore::new(concurrency)),
            retired: job.retired.iter().copied().collect(),
        },
        windows: WindowCounts::default(),
    };
    let fetched = match fetch_all(&context, tx, shutdown, &mut report).await {
        // Every window failed: nothing got past the server, so the run failed (the windows are recorded).
        Ok(Some(first)) if report.failed_windows.len() == job.windows.len() => Err(first.into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    progress(Progress::Finished);

    let (mut archive, totals, written) = tokio::task::spawn_blocking(move || {
        writer.join().expect("the writer thread does not panic")
    })
    .await
    .expect("joining the writer does not fail");
    debug!("the writer committed its last pages");
    report.totals = totals;
    let result = match written {
        Err(store_error) => Err(Error::Store(store_error)),
        Ok(()) => fetched,
    };
    report.status = ended(&result, &report);
    report.error = result.as_ref().err().map(|e| e.to_string());
    report.chain_head = finish(&mut archive, run_id, &report, job.clock);
    report.record_client_stats(&client, started);
    info!(run = run_id, status = %report.status, "sync ended");
    (report, result, archive)
}

/// Records the run's start (its intent) and, for a reconcile, opens the archive for reading: a reconcile
/// compares what the source returns with what is archived as it goes.
fn start(
    archive: &mut Archive,
    job: &SyncJob,
) -> Result<(i64, Option<Mutex<ArchiveReader>>), StoreError> {
    let start = RunStart {
        range: job.range,
        filters: job.filters.clone(),
        base_url: job.base_url.clone(),
        windows_planned: job.windows.len(),
        kind: job.kind,
        lookback: job.lookback,
    };
    let run_id = archive.begin_run(&start, job.clock.now())?;
    let reader = match job.kind {
        RunKind::Sync => None,
        RunKind::Reconcile => Some(Mutex::new(ArchiveReader::open(archive.path())?)),
    };
    Ok((run_id, reader))
}

/// How a run ended: partial when items were rejected or windows failed while the others went on.
fn ended(result: &Result<(), Error>, report: &RunReport) -> RunStatus {
    match result {
        Ok(()) if report.totals.rejects > 0 || !report.failed_windows.is_empty() => {
            RunStatus::Partial
        }
        Ok(()) => RunStatus::Ok,
        Err(Error::Interrupted) => RunStatus::Interrupted,
        Err(_) => RunStatus::Failed,
    }
}

impl RunReport {
    /// A report for a job that has not started yet.
    fn new(job: &SyncJob) -> RunReport {
        RunReport {
            run_id: 0,
            status: RunStatus::Failed,
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
            failed_windows: Vec::new(),
            served_fewer: None,
            pruned_skipped: 0,
            paging_shifts: 0,
        }
    }

    /// Copies the client's counters and the rates in.
    fn record_client_stats(&mut self, client: &ApiClient, started: Instant) {
        let stats = &client.stats;
        self.requests = stats.requests.load(Ordering::Relaxed);
        self.retries = stats.retries.load(Ordering::Relaxed);
        self.throttled = stats.throttled.load(Ordering::Relaxed);
        self.token_renewals = stats.token_renewals.load(Ordering::Relaxed);
        self.elapsed_seconds = started.elapsed().as_secs_f64();
        self.events_per_second =
            self.totals.events_received as f64 / self.elapsed_seconds.max(0.001);
    }
}

/// Fetches every window of the job, at most `concurrency` at once, until all are done, one fails in a way no
/// window can get past, or `shutdown` resolves. Windows that fail on their own are handed to the writer as
/// failed and listed in `report`; the others go on. Returns the first such failure, if any.
async fn fetch_all(
    cx: &FetchContext<'_>,
    tx: mpsc::Sender<Handoff>,
    shutdown: impl Future<Output = ()>,
    report: &mut RunReport,
) -> Result<Option<ApiError>, Error> {
    let job = cx.job;
    let mut first_failure = None;
    let windows = job.windows.iter().enumerate().map(|(seq, interval)| {
        let (from, to) = planner::request_bounds(*interval);
        let spec = Arc::new(WindowSpec {
            interval: *interval,
            filters: job.filters.clone(),
            created_from: from,
            created_to: to,
        });
        let tx = tx.clone();
        async move {
            let fetched = fetch_window(cx, &tx, seq, &spec).await;
            (seq, spec, fetched)
        }
    });
    let mut fetches = futures::stream::iter(windows).buffer_unordered(job.concurrency.max(1));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (seq, spec, fetched) = tokio::select! {
            next = fetches.next() => match next {
                None => return Ok(first_failure),
                Some(done) => done,
            },
            () = &mut shutdown => return Err(Error::Interrupted),
        };
        match fetched {
            Ok(fetch) => {
                note_served_fewer(report, fetch.pager.served_fewer, &spec, job.page_size);
                report.pruned_skipped += fetch.pruned_skipped;
                report.paging_shifts += fetch.paging_shifts;
            }
            Err(Error::Api(e)) if fails_only_its_window(&e) => {
                warn!(window = %spec.interval, "the window failed, the others go on: {e}");
                report.failed_windows.push(FailedWindow {
                    from: time::to_stored(spec.interval.start),
                    to: time::to_stored(spec.interval.end),
                    error: e.to_string(),
                });
                let failed = Handoff::Failed {
                    window_seq: seq,
                    window: spec,
                    error: e.to_string(),
                };
                if tx.send(failed).await.is_err() {
                    return Err(Error::Internal("the archive writer stopped".into()));
                }
                first_failure.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an API error is the window's own (the next window may well succeed), rather than one no window
/// can get past (credentials, permission, configuration). Exhaustive: a new kind of error must be placed.
pub fn fails_only_its_window(e: &ApiError) -> bool {
    match e {
        ApiError::RetriesExhausted { .. }
        | ApiError::BadBody { .. }
        | ApiError::RepeatedPage { .. }
        | ApiError::PageRefused { .. }
        | ApiError::TooManyPages { .. } => true,
        ApiError::BadBaseUrl { .. }
        | ApiError::UnparsableBaseUrl { .. }
        | ApiError::InsecureUrl { .. }
        | ApiError::NoCredentials
        | ApiError::CredentialFile { .. }
        | ApiError::CredentialsRefused { .. }
        | ApiError::TokenRefused { .. }
        | ApiError::Forbidden { .. }
        | ApiError::Status { .. }
        | ApiError::Setup(_) => false,
    }
}

/// Warns, once per run, that the server serves fewer items than asked, and records it.
fn note_served_fewer(report: &mut RunReport, served: Option<usize>, spec: &WindowSpec, asked: u32) {
    let Some(served) = served else { return };
    if report.served_fewer.is_none() {
        warn!(
            window = %spec.interval,
            "the server served {served} items for pageSize {asked} with more behind them: it caps or filters \
             its pages; every page is read until an empty one, so nothing is lost"
        );
    }
    report.served_fewer = Some(report.served_fewer.map_or(served, |s| s.min(served)));
}

/// Records how the run ended, adds to the search index what the writer left to index later (nothing when it
/// kept up with the fetch: see [`search_indexing`]) and refreshes the planner's statistics; returns the chain
/// head. A failure here loses nothing committed, so it is logged, not raised. (The write-ahead log is folded
/// back by the caller, after the run's checkpoint.)
fn finish(archive: &mut Archive, run_id: i64, report: &RunReport, clock: Clock) -> Option<String> {
    let end = RunEnd {
        status: report.status,
        error: report.error.as_deref(),
        served_fewer: report.served_fewer,
    };
    // Each step's time is logged (-vv): the end of a run is a fixed cost a fast fetch does not shorten.
    let step = Instant::now();
    if let Err(e) = archive.finish_run(run_id, &end, clock.now()) {
        warn!("could not record the end of run {run_id}: {e}");
    }
    let head = archive.chain_head().ok();
    debug!(took = ?step.elapsed(), "the end of the run recorded");
    let step = Instant::now();
    if let Err(e) = archive.update_search_index() {
        warn!("the search index was not brought up to date ({e}); the next sync will catch up");
    }
    debug!(took = ?step.elapsed(), "the search index brought up to date");
    let step = Instant::now();
    if let Err(e) = archive.optimize() {
        debug!("refreshing planner statistics did not complete: {e}");
    }
    debug!(took = ?step.elapsed(), "planner statistics refreshed");
    head
}

/// What every window's fetch shares.
struct FetchContext<'a> {
    job: &'a SyncJob,
    /// For a reconcile: the archive, read to find what the source no longer returns.
    reader: Option<&'a Mutex<ArchiveReader>>,
    progress: &'a ProgressFn,
    /// Every page request of the run goes through it: at most `concurrency` in flight.
    pages: PageFetcher,
    /// How many windows have started and ended, for each window's share of the requests.
    windows: WindowCounts,
}

impl FetchContext<'_> {
    /// Windows waiting to start and windows running, now.
    fn windows(&self) -> (usize, usize) {
        let started = self.windows.started.load(Ordering::Relaxed);
        let ended = self.windows.ended.load(Ordering::Relaxed);
        (
            self.job.windows.len().saturating_sub(started),
            started.saturating_sub(ended),
        )
    }

    /// Pages a window may have asked for and not yet taken, now (see [`window_share`]).
    fn share(&self) -> usize {
        let (waiting, running) = self.windows();
        window_share(self.job.concurrency, waiting, running)
    }

    /// Whether the window asking is the only one of the run left (none waiting, no other running).
    fn alone(&self) -> bool {
        self.windows() == (0, 1)
    }
}

/// Windows of the run started and ended so far.
#[derive(Debug, Default)]
struct WindowCounts {
    started: AtomicUsize,
    ended: AtomicUsize,
    /// Woken when a window ends: the windows still running may ask further ahead.
    ended_one: Notify,
}

/// Counts a window as running from its creation to its drop, whatever way it ends.
struct Running<'a>(&'a WindowCounts);

impl<'a> Running<'a> {
    fn new(counts: &'a WindowCounts) -> Self {
        counts.started.fetch_add(1, Ordering::Relaxed);
        Running(counts)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::Relaxed);
        self.0.ended_one.notify_waiters();
    }
}

/// Sends page requests, at most `concurrency` in flight across all windows: a request holds one of the
/// semaphore's permits from before it is sent until its answer is read (its retries and their waits
/// included), so the server never sees more than `--concurrency` requests of the run at once. Cheap to clone
/// into the tasks that fetch pages ahead.
#[derive(Clone)]
struct PageFetcher {
    client: Arc<ApiClient>,
    in_flight: Arc<Semaphore>,
    /// The ranges `prune` emptied (see [`SyncJob::retired`]).
    retired: Arc<[Interval]>,
}

/// One page as fetched: its items (classified, pruned ranges dropped), what the pager is told, the body's
/// fingerprint (to catch a server repeating a page), and when it was asked for and answered (to tell whether
/// an empty page was served after the page in front of it).
struct Fetched {
    items: Vec<Item>,
    answer: Answer,
    fingerprint: Option<u64>,
    pruned_skipped: u64,
    /// When its request was first sent (its permit taken): every attempt was sent at or after it.
    asked: Instant,
    /// When its answer was read.
    answered: Instant,
}

impl PageFetcher {
    /// Sends one request once a permit is free, and says when it was first sent; `None` if it stopped being
    /// wanted before it was sent.
    async fn request(
        &self,
        query: &PageQuery,
        wanted: &CancellationToken,
    ) -> Option<(Instant, Result<PageResult, ApiError>)> {
        let _permit = tokio::select! {
            biased;
            () = wanted.cancelled() => return None,
            permit = self.in_flight.acquire() => permit.expect("the semaphore is never closed"),
        };
        let sent = Instant::now();
        let answered = self.client.fetch_page_while_wanted(query, wanted).await;
        tracing::trace!(page = query.page, took = ?sent.elapsed(), "page answered");
        Some((sent, answered))
    }

    /// Fetches page `page` of a window with `page_size` items per page, and classifies its items (after the
    /// permit is given back: classifying is CPU, not a request). A page that comes back full is told to
    /// `freed` first, before it is classified. `None` if it stopped being wanted before it was sent.
    async fn fetch(
        &self,
        spec: &WindowSpec,
        page: u32,
        page_size: u32,
        wanted: &CancellationToken,
        freed: Option<&Freed>,
    ) -> Option<Result<Fetched, Error>> {
        let (category, action) = spec.filters.to_ledger();
        let query = PageQuery {
            created_from: time::to_api(spec.created_from),
            created_to: time::to_api(spec.created_to),
            page,
            page_size,
            category,
            action,
        };
        let (asked, answered) = match self.request(&query, wanted).await? {
            (asked, Ok(answered)) => (asked, answered),
            (_, Err(e)) => return Some(Err(e.into())),
        };
        let answered_at = Instant::now();
        Some(Ok(match answered {
            PageResult::PastTheEnd => Fetched {
                items: Vec::new(),
                answer: Answer::NotFound,
                fingerprint: None,
                pruned_skipped: 0,
                asked,
                answered: answered_at,
            },
            PageResult::Page { items, fingerprint } => {
                if let Some(freed) = freed {
                    freed.came_back(items.len());
                }
                if items.len() > page_size as usize {
                    warn!(window = %spec.interval, page, "the server sent {} items for pageSize {page_size}; all are kept", items.len());
                }
                let requested = (spec.created_from, spec.created_to);
                let answer = Answer::Items(items.len());
                let (kept, pruned_skipped) = outside_retired(
                    items.iter().map(|raw| classify(raw, requested)).collect(),
                    &self.retired,
                );
                Fetched {
                    items: kept,
                    answer,
                    fingerprint: Some(fingerprint),
                    pruned_skipped,
                    asked,
                    answered: answered_at,
                }
            }
        }))
    }

    /// Fetches a page the caller waits for (always wanted).
    async fn fetch_now(
        &self,
        spec: &WindowSpec,
        page: u32,
        page_size: u32,
    ) -> Result<Fetched, Error> {
        self.fetch(spec, page, page_size, &CancellationToken::new(), None)
            .await
            .expect("a page always wanted is always sent")
    }
}

/// The task fetching one page: its answer, or `None` if it was abandoned before it was sent.
type PageTask = JoinHandle<Option<Result<Fetched, Error>>>;

/// How a page's task tells its window that its request came back full (see [`pages_to_ask`]): the window's
/// next page may then be asked for, before this one is classified and taken.
#[derive(Clone)]
struct Freed {
    /// Items in a full page (the page size, or the server's cap once known).
    full: usize,
    /// Set when the request came back full.
    flag: Arc<AtomicBool>,
    /// The window's wake-up.
    wake: Arc<Notify>,
}

impl Freed {
    /// Takes the number of items the request came back with.
    fn came_back(&self, items: usize) {
        if items >= self.full {
            self.flag.store(true, Ordering::Release);
            self.wake.notify_one();
        }
    }
}

/// A page asked for and not yet taken.
struct Asked {
    page: u32,
    task: PageTask,
    /// Set once its request came back full.
    freed: Arc<AtomicBool>,
}

/// The pages of one window asked for ahead of the one being taken, in page order: each is fetched by a task
/// of its own (so answers arrive while the window waits on the writer), and taken strictly in page order, so
/// the pager and the writer see exactly what paging one page at a time would show them. A page whose request
/// came back full lets the next page go at once (see [`pages_to_ask`]). Dropping it (the
/// window ended, failed, or the run stopped) abandons every page not yet taken: one not yet sent is never
/// sent, one in flight is read to its end (the server is not left working for nobody) and not retried, and
/// its answer is dropped.
struct PagesAhead {
    fetcher: PageFetcher,
    spec: Arc<WindowSpec>,
    page_size: u32,
    /// Pages asked for and not yet taken, in page order.
    asked: VecDeque<Asked>,
    /// The next page to ask for.
    next: u32,
    /// Cancelled when the pages not yet taken are no longer wanted.
    wanted: CancellationToken,
    /// Woken when one of its requests comes back full.
    wake: Arc<Notify>,
}

impl PagesAhead {
    fn new(fetcher: &PageFetcher, spec: &Arc<WindowSpec>, page_size: u32) -> Self {
        PagesAhead {
            fetcher: fetcher.clone(),
            spec: Arc::clone(spec),
            page_size,
            asked: VecDeque::new(),
            next: 1,
            wanted: CancellationToken::new(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks for the next pages while fewer than `depth` requests are outstanding (see [`pages_to_ask`];
    /// a page of `full` items or more frees its request), never past [`MAX_PAGES_PER_WINDOW`].
    fn ask_ahead(&mut self, depth: usize, full: usize) {
        let freed = self
            .asked
            .iter()
            .filter(|a| a.freed.load(Ordering::Acquire))
            .count();
        for _ in 0..pages_to_ask(depth, self.asked.len(), freed) {
            if self.next > MAX_PAGES_PER_WINDOW {
                break;
            }
            let asked = self.spawn(self.next, full);
            self.asked.push_back(asked);
            self.next += 1;
        }
    }

    /// Asks for `page` again, before every page asked for ahead (a 404 is confirmed by asking once more).
    fn ask_again(&mut self, page: u32, full: usize) {
        let asked = self.spawn(page, full);
        self.asked.push_front(asked);
    }

    fn spawn(&self, page: u32, full: usize) -> Asked {
        let (fetcher, spec, wanted) = (
            self.fetcher.clone(),
            Arc::clone(&self.spec),
            self.wanted.clone(),
        );
        let freed = Freed {
            full,
            flag: Arc::new(AtomicBool::new(false)),
            wake: Arc::clone(&self.wake),
        };
        let flag = Arc::clone(&freed.flag);
        let page_size = self.page_size;
        let task = tokio::spawn(async move {
            fetcher
                .fetch(&spec, page, page_size, &wanted, Some(&freed))
                .await
        });
        Asked {
            page,
            task,
            freed: flag,
        }
    }

    /// Woken when one of the window's requests comes back full.
    fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Takes the first page asked for and not yet taken (there is one: [`PagesAhead::ask_ahead`] first).
    /// Cancel-safe: the page stays first until its answer is taken.
    async fn take(&mut self) -> (u32, Result<Fetched, Error>) {
        let Asked { page, task, .. } = self
            .asked
            .front_mut()
            .expect("a page is asked for before one is taken");
        let (page, answered) = (*page, task.await);
        self.asked.pop_front();
        let fetched = match answered {
            Ok(Some(fetched)) => fetched,
            // Only pages abandoned by this window go unsent, and it takes none after abandoning them.
            Ok(None) => Err(Error::Internal(format!("page {page} was abandoned"))),
            Err(e) => Err(Error::Internal(format!("fetching page {page} failed: {e}"))),
        };
        (page, fetched)
    }

    /// Abandons every page asked for and not taken (see [`PagesAhead`]).
    fn abandon(&mut self) {
        self.wanted.cancel();
        self.asked.clear();
    }
}

impl Drop for PagesAhead {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// Pages through one window until its end is confirmed, handing each page to the writer in page order. Pages
/// after the one being taken are asked for ahead, as far as the window's share of the requests allows (see
/// [`window_share`], [`Pager::ahead`]); those past the confirmed end are abandoned. A reconcile's last page
/// carries the deletions at the source, each confirmed by an unfiltered read.
async fn fetch_window(
    cx: &FetchContext<'_>,
    tx: &mpsc::Sender<Handoff>,
    seq: usize,
    spec: &Arc<WindowSpec>,
) -> Result<WindowFetch, Error> {
    let _running = Running::new(&cx.windows);
    let page_size = cx.job.page_size;
    let mut fetch = WindowFetch::default();
    let mut ahead = PagesAhead::new(&cx.pages, spec, page_size);
    let mut returned: Vec<i64> = Vec::new();
    let mut previous: Option<u64> = None;
    // The previous page's size, last event id and when it was answered (a boundary a deletion, or an
    // insertion when the pages after it were asked for ahead, can shift), and the items received before the
    // current page (where that boundary stands in the window's list).
    let mut boundary: Option<Boundary> = None;
    let mut received_before: u32 = 0;
    // When the previous page was answered, if it came back full: an empty page asked for before then (ahead)
    // shows the list as it was before that page was served, so it cannot confirm the end (see below).
    let mut full_answered: Option<Instant> = None;
    let started_alone = cx.alone();
    loop {
        // While the page is awaited, a window ending elsewhere may leave requests to this one, and a request
        // of this one coming back full lets its next page go.
        let (page, fetched) = loop {
            let depth = fetch
                .pager
                .ahead(cx.share(), page_size as usize, started_alone);
            ahead.ask_ahead(depth, fetch.pager.full_page(page_size as usize));
            let wake = ahead.wake();
            tokio::select! {
                taken = ahead.take() => break taken,
                () = cx.windows.ended_one.notified() => {}
                () = wake.notified() => {}
            }
        };
        let fetched = match fetched {
            // The same request was good for page 1: this window's paging, not the run, is refused.
            Err(Error::Api(ApiError::Status {
                status: status @ (400 | 422),
                detail,
                ..
            })) if page > 1 => {
                return Err(ApiError::PageRefused {
                    window: spec.interval.to_string(),
                    page,
                    status,
                    detail,
                }
                .into());
            }
            fetched => fetched?,
        };
        // An empty page confirms the end only if it was asked for after the full page in front of it was
        // answered, as paging one page at a time asks for it: one asked for ahead may have been served
        // before that page, and events that arrived in between (that the full page showed more of) would be
        // cut off. It is asked for again, now (its second answer is never older than that page).
        if fetched.answer == Answer::Items(0)
            && full_answered.is_some_and(|answered| fetched.asked < answered)
        {
            debug!(window = %spec.interval, page, "an empty page asked for before the full page in front of it was answered: asking again");
            ahead.ask_again(page, fetch.pager.full_page(page_size as usize));
            continue;
        }
        if fetched.fingerprint.is_some()
            && !fetched.items.is_empty()
            && fetched.fingerprint == previous
        {
            return Err(ApiError::RepeatedPage {
                window: spec.interval.to_string(),
                page,
                previous: page - 1,
            }
            .into());
        }
        previous = fetched.fingerprint.or(previous);
        fetch.pruned_skipped += fetched.pruned_skipped;
        let step = fetch.pager.after(fetched.answer, page_size as usize);
        if let Answer::Items(n) = fetched.answer {
            full_answered =
                (n >= fetch.pager.full_page(page_size as usize)).then_some(fetched.answered);
        }
        if step == Step::Again {
            debug!(window = %spec.interval, page, "404 after a full page: asking once more");
            ahead.ask_again(page, fetch.pager.full_page(page_size as usize));
            continue;
        }
        let last = step == Step::End;
        if last {
            ahead.abandon();
        }
        let (asked, answered) = (fetched.asked, fetched.answered);
        let mut items = fetched.items;
        let this_page = match fetched.answer {
            Answer::Items(n) => event_ids(&items).max().map(|last| Boundary {
                items: n,
                last,
                answered,
            }),
            Answer::NotFound => None,
        };
        let first = event_ids(&items).next();
        // A previous page as full as the server serves them (its cap, once seen) may have been shifted.
        let full = fetch.pager.full_page(page_size as usize);
        if let (true, Some(previous)) = (cx.job.check_paging, boundary)
            && previous.items >= full
        {
            let again =
                reread_if_shifted(cx, spec, page, received_before, previous.last, &mut fetch)
                    .await?;
            items.extend(again);
            // Asked for before the previous page was answered, this page was perhaps served before it: an
            // event inserted in front of the boundary in between pushed the previous page's last event past
            // both pages. Checked from this page's side (paging one page at a time never asks it).
            if let Some(first) = first
                && asked < previous.answered
            {
                let again =
                    reread_if_overtaken(cx, spec, page, received_before + 1, first, &mut fetch)
                        .await?;
                items.extend(again);
            }
        }
        if cx.reader.is_some() {
            returned.extend(event_ids(&items));
        }
        received_before += this_page.map_or(0, |b| b.items as u32);
        boundary = this_page;
        let deleted = match (last, cx.reader) {
            (true, Some(reader)) => {
                deleted_at_source(&cx.pages, reader, spec, returned.clone(), page_size).await?
            }
            _ => Vec::new(),
        };
        if !items.is_empty() || last {
            let batch = PageBatch {
                window_seq: seq,
                window: Arc::clone(spec),
                page,
                items,
                last,
                deleted_at_source: deleted,
            };
            hand_over(tx, batch, cx.progress).await?;
        }
        if last {
            (cx.progress)(Progress::WindowDone);
            debug!(window = %spec.interval, pages = page, "window fetched");
            return Ok(fetch);
        }
        if page >= MAX_PAGES_PER_WINDOW {
            return Err(ApiError::TooManyPages {
                window: spec.interval.to_string(),
                pages: MAX_PAGES_PER_WINDOW,
            }
            .into());
        }
    }
}

/// A page taken, as the next page's boundary checks see it (`--check-paging`).
#[derive(Debug, Clone, Copy)]
struct Boundary {
    /// Items the server served.
    items: usize,
    /// Its last (largest) event id.
    last: i64,
    /// When its answer was read.
    answered: Instant,
}

/// `--check-paging`: after page `page` arrived, asks for the one item at the end of the previous (full) page,
/// the `position`-th item of the window's list.
/// If it is no longer the event that ended that page, events before it were deleted at the source while the
/// window was paged, and the list shifted: the events that moved back across the boundary were skipped. The
/// previous page is then read again (and the pages before it, while they begin after that event: more
/// events were deleted than a page holds, and the skipped ones moved back further); their events (the skipped
/// ones among them) are returned to be archived.
async fn reread_if_shifted(
    cx: &FetchContext<'_>,
    spec: &WindowSpec,
    page: u32,
    position: u32,
    expected: i64,
    fetch: &mut WindowFetch,
) -> Result<Vec<Item>, Error> {
    let page_size = cx.job.page_size;
    if item_is(cx, spec, position, expected).await? {
        return Ok(Vec::new());
    }
    fetch.paging_shifts += 1;
    warn!(
        window = %spec.interval,
        page,
        "the source changed while the window was paged (events deleted before page {page}): reading page {} again",
        page - 1
    );
    let mut items = Vec::new();
    let mut reading = page - 1;
    loop {
        let again = cx.pages.fetch_now(spec, reading, page_size).await?;
        fetch.pruned_skipped += again.pruned_skipped;
        // Events are listed by id: a page holding an id up to `expected` reaches back to the boundary.
        let reached = event_ids(&again.items).any(|id| id <= expected);
        items.extend(again.items);
        if reached || reading <= 1 {
            return Ok(items);
        }
        reading -= 1;
    }
}

/// `--check-paging`, for a page `page` asked for before the previous (full) page was answered, so perhaps
/// served before it: asks for the one item after the end of the previous page, the `position`-th item of
/// the window's list. If it is no longer the event that began page `page` (`expected`), the list moved under
/// the boundary: when events were inserted in front of it after page `page` was served and before the
/// previous page was, the events that ended the previous page moved past it into page `page`, which did not
/// hold them yet, and neither page showed them. Page `page` is then read again (and the pages after it, while
/// they end before `expected`: more events were inserted than a page holds); their events (those among them)
/// are returned to be archived.
async fn reread_if_overtaken(
    cx: &FetchContext<'_>,
    spec: &WindowSpec,
    page: u32,
    position: u32,
    expected: i64,
    fetch: &mut WindowFetch,
) -> Result<Vec<Item>, Error> {
    if item_is(cx, spec, position, expected).await? {
        return Ok(Vec::new());
    }
    fetch.paging_shifts += 1;
    warn!(
        window = %spec.interval,
        page,
        "the source changed while the window was paged (page {page} was perhaps served before page {}, and the \
         list moved under their boundary): reading page {page} again",
        page - 1
    );
    // The list is read again from page `page` on until it reaches the event that began page `page` (or its
    // end): one page, unless more events than a page holds were inserted in front of the boundary.
    let full = fetch.pager.full_page(cx.job.page_size as usize);
    let mut items = Vec::new();
    let mut reading = page;
    loop {
        let again = cx.pages.fetch_now(spec, reading, cx.job.page_size).await?;
        fetch.pruned_skipped += again.pruned_skipped;
        let reached = match again.answer {
            Answer::Items(n) => n < full || event_ids(&again.items).any(|id| id >= expected),
            Answer::NotFound => true,
        };
        items.extend(again.items);
        if reached || reading >= MAX_PAGES_PER_WINDOW {
            return Ok(items);
        }
        reading += 1;
    }
}

/// `--check-paging`: whether the `position`-th item of the window's list (asked for alone) is event `expected`.
async fn item_is(
    cx: &FetchContext<'_>,
    spec: &WindowSpec,
    position: u32,
    expected: i64,
) -> Result<bool, Error> {
    let item = cx.pages.fetch_now(spec, position, 1).await?;
    Ok(event_ids(&item.items).next() == Some(expected))
}

/// Drops the events that lie inside a retired (pruned) range; returns the rest and how many were dropped.
fn outside_retired(items: Vec<Item>, retired: &[Interval]) -> (Vec<Item>, u64) {
    if retired.is_empty() {
        return (items, 0);
    }
    let before = items.len();
    let kept: Vec<Item> = items
        .into_iter()
        .filter(|item| match item {
            Item::Event(e) => time::from_stored(&e.timestamp)
                .is_none_or(|t| !retired.iter().any(|r| r.contains(t))),
            Item::Reject(_) => true,
        })
        .collect();
    let dropped = (before - kept.len()) as u64;
    (kept, dropped)
}

/// The ids of the events among `items`.
fn event_ids(items: &[Item]) -> impl Iterator<Item = i64> + '_ {
    items.iter().filter_map(|item| match item {
        Item::Event(e) => Some(e.id),
        Item::Reject(_) => None,
    })
}

/// `reconcile`: the archived events of a window's range (and filters) the source did not return, kept only
/// if an unfiltered read of their instant confirms them gone. So neither a local filter that matches more
/// than the server's (SQLite's `LIKE` ignores case), nor an event the neighbouring window archived meanwhile,
/// is ever recorded as a deletion.
async fn deleted_at_source(
    pages: &PageFetcher,
    reader: &Mutex<ArchiveReader>,
    spec: &WindowSpec,
    mut returned: Vec<i64>,
    page_size: u32,
) -> Result<Vec<i64>, Error> {
    let archived = {
        let reader = reader.lock().expect("the archive reader is not poisoned");
        reader.archived_in(&EventSelection {
            from: Some(spec.interval.start),
            to: Some(spec.interval.end),
            filters: spec.filters.clone(),
        })?
    };
    returned.sort_unstable();
    // Candidates grouped by the whole second they lie in: one unfiltered read per second.
    let mut candidates: BTreeMap<crate::time::Timestamp, Vec<i64>> = BTreeMap::new();
    for (id, at) in archived {
        if returned.binary_search(&id).is_err() {
            candidates
                .entry(time::floor_second(at))
                .or_default()
                .push(id);
        }
    }
    let mut deleted = Vec::new();
    for (second, ids) in candidates {
        let around = WindowSpec {
            interval: Interval::new(second, second + chrono::TimeDelta::seconds(1)),
            filters: Filters::default(),
            created_from: second - planner::BOUNDARY_OVERLAP,
            created_to: second + chrono::TimeDelta::seconds(1),
        };
        let present = ids_at_source(pages, &around, page_size).await?;
        deleted.extend(ids.into_iter().filter(|id| !present.contains(id)));
    }
    deleted.sort_unstable();
    Ok(deleted)
}

/// Every event id the source returns for a (small) window, paged to its confirmed end.
async fn ids_at_source(
    pages: &PageFetcher,
    spec: &WindowSpec,
    page_size: u32,
) -> Result<std::collections::HashSet<i64>, Error> {
    let mut ids = std::collections::HashSet::new();
    let mut pager = Pager::default();
    let mut page = 1;
    while page <= MAX_PAGES_PER_WINDOW {
        let query = PageQuery {
            created_from: time::to_api(spec.created_from),
            created_to: time::to_api(spec.created_to),
            page,
            page_size,
            category: String::new(),
            action: String::new(),
        };
        let answered = pages.request(&query, &CancellationToken::new()).await;
        let answer = match answered.expect("a page always wanted is always sent").1? {
            PageResult::PastTheEnd => Answer::NotFound,
            PageResult::Page { items, .. } => {
                let requested = (spec.created_from, spec.created_to);
                let classified: Vec<Item> =
                    items.iter().map(|raw| classify(raw, requested)).collect();
                ids.extend(event_ids(&classified));
                Answer::Items(items.len())
            }
        };
        match pager.after(answer, page_size as usize) {
            Step::End => return Ok(ids),
            Step::Again => {}
            Step::Next => page += 1,
        }
    }
    Err(ApiError::TooManyPages {
        window: spec.interval.to_string(),
        pages: MAX_PAGES_PER_WINDOW,
    }
    .into())
}

/// Hands one page to the writer.
async fn hand_over(
    tx: &mpsc::Sender<Handoff>,
    batch: PageBatch,
    progress: &ProgressFn,
) -> Result<(), Error> {
    let count = batch.items.len();
    if tx.send(Handoff::Page(batch)).await.is_err() {
        // The writer stopped; its own error, reported by `run`, explains why.
        return Err(Error::Internal("the archive writer stopped".into()));
    }
    progress(Progress::Page { items: count });
    Ok(())
}

/// The writer thread: commits queued pages, several at a time, and records failed windows, in the order they
/// were handed over, until the channel closes or a commit fails. Returns the archive, the totals of what was
/// committed, and the error that stopped it, if any.
fn write_pages(
    mut archive: Archive,
    run_id: i64,
    mut rx: mpsc::Receiver<Handoff>,
    kind: RunKind,
    clock: Clock,
) -> (Archive, PageTotals, Result<(), StoreError>) {
    let mut ledger = HashMap::new();
    let mut totals = PageTotals::default();
    let mut group = Vec::with_capacity(MAX_GROUP_PAGES);
    let mut next = rx.blocking_recv();
    // Whether the writer waited for the handoff it takes (it keeps up), or found it queued (it is behind).
    let mut waited = true;
    while let Some(first) = next.take() {
        let failed = match first {
            Handoff::Page(batch) => {
                group.push(batch);
                while group.len() < MAX_GROUP_PAGES {
                    match rx.try_recv() {
                        Ok(Handoff::Page(batch)) => group.push(batch),
                        Ok(failed) => {
                            next = Some(failed);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                None
            }
            failed @ Handoff::Failed { .. } => Some(failed),
        };
        let now = clock.now();
        if !group.is_empty() {
            let step = Instant::now();
            let indexing = search_indexing(waited);
            let committed = match kind {
                RunKind::Reconcile => {
                    archive.commit_reconciled_pages(run_id, &group, &mut ledger, now, indexing)
                }
                RunKind::Sync => archive.commit_pages(run_id, &group, &mut ledger, now, indexing),
            };
            match committed {
                Ok(t) => {
                    debug!(pages = group.len(), events = t.events_received, ?indexing, took = ?step.elapsed(), "committed");
                    totals.add(&t);
                }
                Err(e) => return (archive, totals, Err(e)),
            }
            group.clear();
        }
        if let Some(Handoff::Failed {
            window_seq,
            window,
            error,
        }) = failed
        {
            let recorded =
                archive.fail_window(run_id, &mut ledger, window_seq, &window, &error, now);
            if let Err(e) = recorded {
                return (archive, totals, Err(e));
            }
        }
        waited = false;
        if next.is_none() {
            next = match rx.try_recv() {
                Ok(handoff) => Some(handoff),
                Err(mpsc::error::TryRecvError::Empty) => {
                    waited = true;
                    rx.blocking_recv()
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
    }
    (archive, totals, Ok(()))
}

/// When the writer adds the pages it commits to the search index (see [`SearchIndexing`]): now if it
/// `waited` for them, since it keeps up with the fetch and its time is free (a dense day then leaves nothing
/// to index at its end); later, in bulk, if they were queued for it, since it is the bottleneck and bulk
/// indexing costs it less.
fn search_indexing(waited: bool) -> SearchIndexing {
    if waited {
        SearchIndexing::Now
    } else {
        SearchIndexing::Later
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, Reject, RejectReason};

    fn event(id: i64, timestamp: &str) -> Item {
        Item::Event(Event {
            id,
            timestamp: timestamp.into(),
            category: String::new(),
            action: String::new(),
            description: None,
            username: None,
            ip_address: None,
            raw: "{}".into(),
            digest: String::new(),
            leaf: None,
            out_of_window: false,
        })
    }

    #[test]
    fn events_inside_pruned_ranges_are_not_archived_again() {
        let t = |s: &str| time::parse_time_arg(s).unwrap();
        let retired = [Interval::new(t("2024-01-01"), t("2024-01-02"))];
        let items = vec![
            event(1, "2024-01-01T23:59:59.500Z"),
            event(2, "2024-01-02T00:00:00.000Z"),
            event(3, "2023-12-31T23:59:59.999Z"),
            Item::Reject(Reject {
                raw: "42".into(),
                reason: RejectReason::NotAnObject("a number"),
            }),
        ];
        let (kept, dropped) = outside_retired(items.clone(), &retired);
        assert_eq!(dropped, 1);
        let ids: Vec<Option<i64>> = kept
            .iter()
            .map(|i| match i {
                Item::Event(e) => Some(e.id),
                Item::Reject(_) => None,
            })
            .collect();
        assert_eq!(
            ids,
            vec![Some(2), Some(3), None],
            "the end is exclusive, rejects are kept"
        );
        assert_eq!(outside_retired(items, &[]).1, 0);
    }

    #[test]
    fn a_writer_that_waits_for_its_pages_indexes_them_now_one_that_is_behind_later() {
        // (the writer waited for the pages it commits, how it adds them to the search index)
        let cases = [(true, SearchIndexing::Now), (false, SearchIndexing::Later)];
        for (waited, want) in cases {
            assert_eq!(search_indexing(waited), want, "waited: {waited}");
        }
    }

    #[test]
    fn only_errors_of_a_window_own_let_the_others_go_on() {
        let own = ApiError::RepeatedPage {
            window: "w".into(),
            page: 2,
            previous: 1,
        };
        assert!(fails_only_its_window(&own));
        assert!(!fails_only_its_window(&ApiError::NoCredentials));
        let forbidden = ApiError::Forbidden {
            url: "u".into(),
            detail: String::new(),
        };
        assert!(!fails_only_its_window(&forbidden));
    }
}
