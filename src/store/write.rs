//! The write path: runs, windows, and pages committed atomically.
//!
//! [`Store::commit_pages`] stores one or more whole pages in a single transaction: their events (insert, or
//! compare with the stored copy and keep a revision when the content changed), their rejects, the event-type
//! catalogue, the window's ledger row (created with page 1, marked complete with the last page) and the run's
//! counters, and, as [`SearchIndexing`] says, its events' entries in the search index. Several queued pages may
//! share a transaction (group commit); a page is never split across two. The event lines of each window being
//! paged are kept as its events are stored ([`OpenWindows`]), for its seal.

use super::tlog::LogAppender;
use super::{Archive, SqlContext, StoreError, seal};
use crate::model::{
    ChangeKind, Event, Filters, Interval, Item, LeafKind, PageBatch, RunKind, RunStatus,
    WindowSpec, WindowStatus,
};
use crate::time::{self, Timestamp};
use crate::tlog::Hash;
use rusqlite::{Transaction, TransactionBehavior, params};
use std::collections::HashMap;

/// What a run is, as recorded when it starts.
#[derive(Debug, Clone)]
pub struct RunStart {
    /// The requested range.
    pub range: Interval,
    /// The filters it runs with.
    pub filters: Filters,
    /// The API base URL (never carries credentials).
    pub base_url: String,
    /// How many windows the plan holds.
    pub windows_planned: usize,
    /// What kind of run.
    pub kind: RunKind,
    /// The lookback a sync runs with (none for a reconcile).
    pub lookback: Option<chrono::TimeDelta>,
}

/// How a run ended, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd<'a> {
    /// Its status.
    pub status: RunStatus,
    /// The error that stopped it, if any.
    pub error: Option<&'a str>,
    /// The size of a short page the server had more items behind, if seen.
    pub served_fewer: Option<usize>,
}

/// Counters of what committed pages did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PageTotals {
    /// Pages stored.
    pub pages: u64,
    /// Items received.
    pub events_received: u64,
    /// Events new to the archive.
    pub events_new: u64,
    /// Events already archived with identical content.
    pub events_unchanged: u64,
    /// Changed copies kept as revisions.
    pub revisions: u64,
    /// Items rejected.
    pub rejects: u64,
    /// Events whose timestamp lies outside the bounds their window asked for.
    pub out_of_window: u64,
    /// Windows completed.
    pub windows_completed: u64,
    /// `reconcile`: archived events the source no longer returns (kept in the archive).
    #[serde(skip_serializing_if = "is_zero")]
    pub missing_at_source: u64,
    /// `reconcile`: of those, how many were not recorded as deleted before.
    #[serde(skip_serializing_if = "is_zero")]
    pub deletions_recorded: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl PageTotals {
    /// Adds another set of counters to this one.
    pub fn add(&mut self, other: &PageTotals) {
        self.pages += other.pages;
        self.events_received += other.events_received;
        self.events_new += other.events_new;
        self.events_unchanged += other.events_unchanged;
        self.revisions += other.revisions;
        self.rejects += other.rejects;
        self.out_of_window += other.out_of_window;
        self.windows_completed += other.windows_completed;
        self.missing_at_source += other.missing_at_source;
        self.deletions_recorded += other.deletions_recorded;
    }
}

/// When a transaction that stores pages adds their events to the search index. Either way the index holds
/// an event exactly when its window fetch is at or before `search_state.indexed_window_id` (what `prune`
/// relies on), in every committed state: the index never claims an event it lacks, and the events it lacks
/// are those of the window fetches after the watermark, which the next transaction indexing now adds, or the
/// end of the run, or the next run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchIndexing {
    /// Now: the events of the window fetches the index lacks are added first, in bulk, then each event
    /// stored, and the watermark moves to the last window fetch. What a writer that waits for its pages does
    /// (its time is free), so that a run leaves nothing to index at its end.
    Now,
    /// Later: the events of window fetches the index already holds are added as they are stored (the
    /// watermark stays true), the others are left for the next transaction indexing now or the end of the
    /// run. What a writer behind its pages does: added in bulk, they cost it less (larger, fewer segments
    /// of the index to merge).
    Later,
}

/// Most memory the event lines of the window fetches being paged may hold in all (see [`OpenWindows`]):
/// about 140 bytes per event, so a window of up to some 90,000 events alone; a window beyond is sealed from
/// its rows.
pub const OPEN_LINES_BUDGET: usize = 12 << 20;

/// The event lines of the window fetches this writer is paging, by ledger id (see [`seal::OpenLines`]):
/// started with a window's ledger row, fed each event the window inserts, taken when it is sealed. A window
/// whose lines were given up (an event out of id order, the budget spent) keeps no lines and is sealed from
/// its rows.
#[derive(Debug, Default)]
pub(crate) struct OpenWindows {
    lines: HashMap<i64, Option<seal::OpenLines>>,
}

impl OpenWindows {
    /// Starts the lines of a window fetch whose ledger row was just created.
    fn start(&mut self, window_id: i64) {
        self.lines
            .insert(window_id, Some(seal::OpenLines::default()));
    }

    /// Adds an event window fetch `window_id` inserted, giving its lines up if the event is out of order.
    fn push(&mut self, window_id: i64, id: i64, digest: &str, fetched_at: &str) {
        if let Some(slot) = self.lines.get_mut(&window_id)
            && let Some(lines) = slot
            && !lines.push(id, digest, fetched_at)
        {
            *slot = None;
        }
    }

    /// Gives window fetch `window_id`'s lines up if all the lines held pass [`OPEN_LINES_BUDGET`].
    fn keep_within_budget(&mut self, window_id: i64) {
        let held: usize = self
            .lines
            .values()
            .flatten()
            .map(seal::OpenLines::bytes)
            .sum();
        if held > OPEN_LINES_BUDGET
            && let Some(slot) = self.lines.get_mut(&window_id)
        {
            *slot = None;
        }
    }

    /// The lines of window fetch `window_id`, as it is sealed, if it kept them.
    fn take(&mut self, window_id: i64) -> Option<seal::OpenLines> {
        self.lines.remove(&window_id).flatten()
    }

    /// Forgets window fetch `window_id` (it ended without its last page).
    fn forget(&mut self, window_id: i64) {
        self.lines.remove(&window_id);
    }
}

/// What became of one stored event.
enum Stored {
    New,
    Unchanged,
    /// Kept as the revision with this row id.
    Revised(i64),
}

/// First and last timestamps and count of new events of one (category, action) in a transaction.
struct TypeSeen {
    events: u64,
    first: String,
    last: String,
}

impl Archive {
    /// Records the start of a run, first marking runs and windows left `running` by a killed process.
    pub fn begin_run(&mut self, run: &RunStart, now: Timestamp) -> Result<i64, StoreError> {
        let now = time::to_stored(now);
        let tx = self.begin()?;
        let stale: Vec<i64> = tx
            .prepare("SELECT id FROM windows WHERE status = ?1 ORDER BY id")
            .and_then(|mut s| {
                s.query_map([WindowStatus::Running], |r| r.get(0))?
                    .collect()
            })
            .context(|| "cannot find windows of interrupted runs".into())?;
        tx.execute(
            "UPDATE windows SET status = ?2, error = 'the process ended before the window completed'
             WHERE status = ?1",
            params![WindowStatus::Running, WindowStatus::Interrupted],
        )
        .context(|| "cannot close windows of interrupted runs".into())?;
        for id in stale {
            seal::seal_window(&tx, id, &now)?;
        }
        tx.execute(
            "UPDATE runs SET status = ?2, error = coalesce(error, 'the process ended before the run finished')
             WHERE status = ?1",
            params![RunStatus::Running, RunStatus::Interrupted],
        )
        .context(|| "cannot close interrupted runs".into())?;
        let (category, action) = run.filters.to_ledger();
        tx.execute(
            "INSERT INTO runs (started_at, status, range_from, range_to, category_filter, action_filter, base_url,
                               windows_planned, tool_version, kind, lookback_seconds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                now,
                RunStatus::Running,
                time::to_stored(run.range.start),
                time::to_stored(run.range.end),
                category,
                action,
                run.base_url,
                run.windows_planned as i64,
                env!("CARGO_PKG_VERSION"),
                run.kind,
                run.lookback.map(|l| l.num_seconds()),
            ],
        )
        .context(|| "cannot record the run".into())?;
        let id = tx.last_insert_rowid();
        // The intent joins the log with the run's row: what was asked for can no longer be edited unseen.
        super::tlog::append_ledger_row(&tx, LeafKind::Run, id)?;
        // Whatever an earlier version left unindexed is searchable from the run's start, whatever its end.
        index_backlog(&tx)?;
        mark_indexed(&tx)?;
        tx.commit()
            .context(|| "cannot commit the run's start".into())?;
        Ok(id)
    }

    /// Stores whole pages in one transaction, adding their events to the search index as `indexing` says.
    /// `ledger` maps each window's plan position to its ledger row and is updated only once the transaction
    /// has committed.
    pub fn commit_pages(
        &mut self,
        run_id: i64,
        batches: &[PageBatch],
        ledger: &mut HashMap<usize, i64>,
        now: Timestamp,
        indexing: SearchIndexing,
    ) -> Result<PageTotals, StoreError> {
        self.commit(run_id, batches, ledger, false, now, indexing)
    }

    /// Stores whole pages of a `reconcile` in one transaction, as [`Archive::commit_pages`] does, and records
    /// what differs from the archive in `source_changes`: new events are late arrivals, revisions are changes
    /// at the source, and the deletions at the source a window's last page carries (confirmed by the engine;
    /// the events stay archived) are recorded once per event.
    pub fn commit_reconciled_pages(
        &mut self,
        run_id: i64,
        batches: &[PageBatch],
        ledger: &mut HashMap<usize, i64>,
        now: Timestamp,
        indexing: SearchIndexing,
    ) -> Result<PageTotals, StoreError> {
        self.commit(run_id, batches, ledger, true, now, indexing)
    }

    fn commit(
        &mut self,
        run_id: i64,
        batches: &[PageBatch],
        ledger: &mut HashMap<usize, i64>,
        reconcile: bool,
        now: Timestamp,
        indexing: SearchIndexing,
    ) -> Result<PageTotals, StoreError> {
        let mut open = std::mem::take(&mut self.open);
        let committed =
            self.commit_with(run_id, batches, ledger, reconcile, now, indexing, &mut open);
        // After a failed transaction what was gathered may describe rows rolled back: it is dropped, and
        // every window still open is sealed from its rows.
        if committed.is_ok() {
            self.open = open;
        }
        committed
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_with(
        &mut self,
        run_id: i64,
        batches: &[PageBatch],
        ledger: &mut HashMap<usize, i64>,
        reconcile: bool,
        now: Timestamp,
        indexing: SearchIndexing,
        open: &mut OpenWindows,
    ) -> Result<PageTotals, StoreError> {
        let now = time::to_stored(now);
        let tx = self.begin()?;
        // The window fetches whose events this transaction adds to the search index as it stores them: every
        // one, once the index holds all the others (indexing now), or those it already holds (later).
        let indexed_up_to = match indexing {
            SearchIndexing::Now => {
                index_backlog(&tx)?;
                None
            }
            SearchIndexing::Later => Some(indexed_window(&tx)?),
        };
        // Windows first seen in this transaction; they join `ledger` only once it has committed.
        let mut created: HashMap<usize, i64> = HashMap::new();
        let mut totals = PageTotals::default();
        let mut types: HashMap<(String, String), TypeSeen> = HashMap::new();
        for batch in batches {
            let window_id = match ledger
                .get(&batch.window_seq)
                .or(created.get(&batch.window_seq))
            {
                Some(id) => *id,
                None => {
                    let id = insert_window(&tx, run_id, &batch.window, &now)?;
                    created.insert(batch.window_seq, id);
                    open.start(id);
                    id
                }
            };
            // The page's leaves join the log before its window may be sealed (whose leaf follows them).
            let mut log = LogAppender::load(&tx)?;
            let index = indexed_up_to.is_none_or(|up_to| window_id <= up_to);
            let mut page = store_page(
                &tx, batch, window_id, &now, &mut types, reconcile, &mut log, open, index,
            )?;
            open.keep_within_budget(window_id);
            log.flush(&tx)?;
            if reconcile && batch.last {
                page.missing_at_source += batch.deleted_at_source.len() as u64;
                page.deletions_recorded +=
                    record_deleted(&tx, window_id, &batch.deleted_at_source, &now)?;
            }
            update_window(&tx, batch, window_id, &page, &now, open)?;
            totals.add(&page);
        }
        record_types(&tx, &types, run_id, &now)?;
        add_to_run(&tx, run_id, &totals)?;
        if indexing == SearchIndexing::Now {
            mark_indexed(&tx)?;
        }
        tx.commit().context(|| {
            format!(
                "cannot commit {} page(s) to {}",
                batches.len(),
                self.path.display()
            )
        })?;
        ledger.extend(created);
        Ok(totals)
    }

    /// Records what a `verify` found (`verify --record`), for monitoring.
    pub fn record_verification(
        &mut self,
        found: &super::read::Verification,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO verifications (verified_at, intact, complete, findings, chain_head)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    found.verified_at,
                    found.intact,
                    found.complete,
                    found.findings,
                    found.chain_head
                ],
            )
            .context(|| "cannot record the verification".into())?;
        Ok(())
    }

    /// Records how a run ended; windows of the run still running are closed with the same status.
    pub fn finish_run(
        &mut self,
        run_id: i64,
        end: &RunEnd<'_>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (status, error) = (end.status, end.error);
        let now = time::to_stored(now);
        let tx = self.begin()?;
        let open: Vec<i64> = tx
            .prepare("SELECT id FROM windows WHERE run_id = ?1 AND status = ?2 ORDER BY id")
            .and_then(|mut s| {
                s.query_map(params![run_id, WindowStatus::Running], |r| r.get(0))?
                    .collect()
            })
            .context(|| "cannot find the run's open windows".into())?;
        tx.execute(
            "UPDATE windows SET status = ?2, error = ?3 WHERE run_id = ?1 AND status = ?4",
            params![
                run_id,
                status.open_windows_become(),
                error.unwrap_or("the run stopped before this window completed"),
                WindowStatus::Running,
            ],
        )
        .context(|| "cannot close the run's windows".into())?;
        for id in open {
            seal::seal_window(&tx, id, &now)?;
        }
        tx.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3, error = ?4, served_fewer = ?5 WHERE id = ?1",
            params![run_id, status, now, error, end.served_fewer.map(|n| n as i64)],
        )
        .context(|| "cannot record the run's end".into())?;
        tx.commit()
            .context(|| "cannot commit the run's end".into())?;
        self.open = OpenWindows::default();
        Ok(())
    }

    /// Records that window `window_seq` of the run failed while the run went on: its ledger row (created now if
    /// no page of it was committed, so the failure leaves a trace) is marked failed, with why, and sealed.
    /// Pages it committed stay.
    pub fn fail_window(
        &mut self,
        run_id: i64,
        ledger: &mut HashMap<usize, i64>,
        window_seq: usize,
        window: &WindowSpec,
        error: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let now = time::to_stored(now);
        let tx = self.begin()?;
        let window_id = match ledger.get(&window_seq) {
            Some(id) => *id,
            None => insert_window(&tx, run_id, window, &now)?,
        };
        tx.execute(
            "UPDATE windows SET status = ?2, error = ?3 WHERE id = ?1 AND status = ?4",
            params![
                window_id,
                WindowStatus::Failed,
                error,
                WindowStatus::Running
            ],
        )
        .context(|| format!("cannot record that window {} failed", window.interval))?;
        seal::seal_window(&tx, window_id, &now)?;
        tx.commit()
            .context(|| format!("cannot record that window {} failed", window.interval))?;
        self.open.forget(window_id);
        ledger.insert(window_seq, window_id);
        Ok(())
    }

    /// Folds the WAL back into the main file at the end of a run, so the archive is one self-contained file.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .context(|| "cannot checkpoint the write-ahead log".into())
    }

    /// Adds the events of every window fetch the full-text index does not hold yet, so `search` finds them:
    /// when an archive gains the index, and at the end of a run whose writer left pages to index later (see
    /// [`SearchIndexing`]); idempotent.
    pub fn update_search_index(&mut self) -> Result<u64, StoreError> {
        let tx = self.begin()?;
        let added = index_backlog(&tx)?;
        mark_indexed(&tx)?;
        tx.commit().context(search_ctx)?;
        Ok(added)
    }

    /// Refreshes the query planner's statistics cheaply (sampled `ANALYZE` where useful), so that queries on
    /// the archive can use skip-scans of the composite indexes (e.g. counts per action over a time range).
    pub fn optimize(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            .context(|| "cannot refresh the query planner's statistics".into())
    }

    pub(super) fn begin(&mut self) -> Result<Transaction<'_>, StoreError> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(|| "cannot start a write transaction".into())
    }
}

fn search_ctx() -> String {
    "cannot update the search index".to_string()
}

/// Adds to the full-text index the events of the window fetches after `search_state.indexed_window_id`,
/// which it does not hold: none, unless the archive has just gained the index, or an earlier version of the
/// tool (which indexed at the end of each run) was stopped before the end of a run. Returns how many.
fn index_backlog(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let added = tx
        .prepare_cached(
            "INSERT INTO events_fts (rowid, description, username)
             SELECT id, description, username FROM events
             WHERE window_id > (SELECT indexed_window_id FROM search_state WHERE id = 1)",
        )
        .and_then(|mut s| s.execute([]))
        .context(search_ctx)?;
    Ok(added as u64)
}

/// The watermark: the index holds the events of the window fetches up to this one.
fn indexed_window(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    tx.prepare_cached("SELECT indexed_window_id FROM search_state WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .context(search_ctx)
}

/// Records that the full-text index holds the events of every window fetch so far. Only in a transaction
/// that indexed the backlog first and each event it stored (the index holds an event if and only if its
/// window fetch is at or before `search_state.indexed_window_id`: what `prune` relies on).
fn mark_indexed(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE search_state SET indexed_window_id = (SELECT coalesce(max(id), 0) FROM windows) WHERE id = 1",
    )
    .and_then(|mut s| s.execute([]))
    .context(search_ctx)?;
    Ok(())
}

/// Creates the ledger row of a window, at its first page.
fn insert_window(
    tx: &Transaction<'_>,
    run_id: i64,
    w: &WindowSpec,
    now: &str,
) -> Result<i64, StoreError> {
    let (category, action) = w.filters.to_ledger();
    tx.prepare_cached(
        "INSERT INTO windows (run_id, window_start, window_end, category_filter, action_filter, created_from,
                              created_to, status, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            run_id,
            time::to_stored(w.interval.start),
            time::to_stored(w.interval.end),
            category,
            action,
            time::to_api(w.created_from),
            time::to_api(w.created_to),
            WindowStatus::Running,
            now
        ])
    })
    .context(|| format!("cannot record window {}", w.interval))?;
    Ok(tx.last_insert_rowid())
}

/// Adds a page's counters to its window's ledger row; its last page marks the window complete and seals it.
fn update_window(
    tx: &Transaction<'_>,
    batch: &PageBatch,
    window_id: i64,
    page: &PageTotals,
    now: &str,
    open: &mut OpenWindows,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE windows SET pages = pages + 1, events_received = events_received + ?2,
            events_new = events_new + ?3, revisions = revisions + ?4, rejects = rejects + ?5,
            out_of_window = out_of_window + ?6,
            status = CASE WHEN ?7 THEN ?9 ELSE status END,
            completed_at = CASE WHEN ?7 THEN ?8 ELSE completed_at END
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            window_id,
            page.events_received as i64,
            page.events_new as i64,
            page.revisions as i64,
            page.rejects as i64,
            page.out_of_window as i64,
            batch.last,
            now,
            WindowStatus::Complete,
        ])
    })
    .context(|| {
        format!(
            "cannot update the ledger for window {}",
            batch.window.interval
        )
    })?;
    if batch.last {
        seal::seal_window_with(tx, window_id, now, open.take(window_id))?;
    }
    Ok(())
}

/// Adds what a transaction stored to the event-type catalogue.
fn record_types(
    tx: &Transaction<'_>,
    types: &HashMap<(String, String), TypeSeen>,
    run_id: i64,
    now: &str,
) -> Result<(), StoreError> {
    for ((category, action), seen) in types {
        tx.prepare_cached(
            "INSERT INTO event_types (category, action, events, first_event_at, last_event_at, first_archived_at,
                                      first_run_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (category, action) DO UPDATE SET
                events = events + excluded.events,
                first_event_at = min(first_event_at, excluded.first_event_at),
                last_event_at = max(last_event_at, excluded.last_event_at)",
        )
        .and_then(|mut s| {
            s.execute(params![category, action, seen.events as i64, seen.first, seen.last, now, run_id])
        })
        .context(|| "cannot update the event-type catalogue".into())?;
    }
    Ok(())
}

/// Adds a transaction's counters to its run's row.
fn add_to_run(tx: &Transaction<'_>, run_id: i64, totals: &PageTotals) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE runs SET pages = pages + ?2, events_received = events_received + ?3, events_new = events_new + ?4,
            revisions = revisions + ?5, rejects = rejects + ?6, out_of_window = out_of_window + ?7,
            windows_completed = windows_completed + ?8
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            run_id,
            totals.pages as i64,
            totals.events_received as i64,
            totals.events_new as i64,
            totals.revisions as i64,
            totals.rejects as i64,
            totals.out_of_window as i64,
            totals.windows_completed as i64,
        ])
    })
    .context(|| "cannot update the run's counters".into())?;
    Ok(())
}

/// `reconcile`: records events confirmed deleted at the source, once per event (a later reconcile counts a
/// deletion again but does not record it again). Returns how many were recorded now.
fn record_deleted(
    tx: &Transaction<'_>,
    window_id: i64,
    ids: &[i64],
    now: &str,
) -> Result<u64, StoreError> {
    let mut recorded = 0;
    for id in ids {
        recorded += tx
            .prepare_cached(
                "INSERT INTO source_changes (window_id, event_id, kind, detected_at)
                 SELECT ?1, ?2, ?4, ?3
                 WHERE NOT EXISTS (SELECT 1 FROM source_changes WHERE event_id = ?2 AND kind = ?4)",
            )
            .and_then(|mut s| s.execute(params![window_id, id, now, ChangeKind::Deleted]))
            .context(|| format!("cannot record that event {id} was deleted at the source"))?
            as u64;
    }
    Ok(recorded)
}

/// Stores one page's items; for a `reconcile`, also records late arrivals and changes at the source. Each
/// event, revision and reject stored is appended to `log`, each event inserted to the window's lines in
/// `open`, and, if `index`, to the search index.
#[allow(clippy::too_many_arguments)]
fn store_page(
    tx: &Transaction<'_>,
    batch: &PageBatch,
    window_id: i64,
    now: &str,
    types: &mut HashMap<(String, String), TypeSeen>,
    reconcile: bool,
    log: &mut LogAppender,
    open: &mut OpenWindows,
    index: bool,
) -> Result<PageTotals, StoreError> {
    let mut totals = PageTotals {
        pages: 1,
        windows_completed: u64::from(batch.last),
        ..PageTotals::default()
    };
    let context = || {
        format!(
            "cannot store page {} of window {}",
            batch.page, batch.window.interval
        )
    };
    for item in &batch.items {
        totals.events_received += 1;
        match item {
            Item::Event(event) => {
                if event.out_of_window {
                    totals.out_of_window += 1;
                }
                let stored = store_event(tx, event, window_id, now, index).context(context)?;
                let change = match stored {
                    Stored::New => Some(ChangeKind::Late),
                    Stored::Revised(_) => Some(ChangeKind::Changed),
                    Stored::Unchanged => None,
                };
                if let Some(kind) = change.filter(|_| reconcile) {
                    tx.prepare_cached(
                        "INSERT INTO source_changes (window_id, event_id, kind, detected_at) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .and_then(|mut s| s.execute(params![window_id, event.id, kind, now]))
                    .context(context)?;
                }
                match stored {
                    Stored::New => {
                        open.push(window_id, event.id, &event.digest, now);
                        match event.leaf {
                            Some(hash) => log.append_hashed(LeafKind::Event, event.id, Hash(hash)),
                            None => log.append(LeafKind::Event, event.id, event.raw.as_bytes()),
                        };
                        totals.events_new += 1;
                        let seen = types
                            .entry((event.category.clone(), event.action.clone()))
                            .or_insert_with(|| TypeSeen {
                                events: 0,
                                first: event.timestamp.clone(),
                                last: event.timestamp.clone(),
                            });
                        seen.events += 1;
                        if event.timestamp < seen.first {
                            seen.first.clone_from(&event.timestamp);
                        }
                        if event.timestamp > seen.last {
                            seen.last.clone_from(&event.timestamp);
                        }
                    }
                    Stored::Unchanged => totals.events_unchanged += 1,
                    Stored::Revised(row) => {
                        log.append(LeafKind::Revision, row, event.raw.as_bytes());
                        totals.revisions += 1;
                    }
                }
            }
            Item::Reject(reject) => {
                totals.rejects += 1;
                store_reject(tx, reject, window_id, batch.page, now, log).context(context)?;
            }
        }
    }
    Ok(totals)
}

/// Keeps a reject (once per reason and text) and appends its leaf when it is new.
fn store_reject(
    tx: &Transaction<'_>,
    reject: &crate::model::Reject,
    window_id: i64,
    page: u32,
    now: &str,
    log: &mut LogAppender,
) -> rusqlite::Result<()> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO rejects (raw, reason, window_id, page, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (reason, raw) DO NOTHING",
        )?
        .execute(params![reject.raw, reject.reason, window_id, page, now])?;
    if inserted == 1 {
        log.append(
            LeafKind::Reject,
            tx.last_insert_rowid(),
            reject.raw.as_bytes(),
        );
    }
    Ok(())
}

/// Inserts an event (and, if `index`, its search entry), or compares it with the archived copy and keeps a
/// revision if its content changed.
fn store_event(
    tx: &Transaction<'_>,
    e: &Event,
    window_id: i64,
    now: &str,
    index: bool,
) -> rusqlite::Result<Stored> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO events (id, timestamp, category, action, description, username, ip_address, raw,
                                 fetched_at, window_id, digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            e.id,
            e.timestamp,
            e.category,
            e.action,
            e.description,
            e.username,
            e.ip_address,
            e.raw,
            now,
            window_id,
            e.digest
        ])?;
    if inserted == 1 {
        // Indexed for search with the row, in the same transaction (see `SearchIndexing`).
        if index {
            tx.prepare_cached(
                "INSERT INTO events_fts (rowid, description, username) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![e.id, e.description, e.username])?;
        }
        return Ok(Stored::New);
    }
    let archived: String = tx
        .prepare_cached("SELECT raw FROM events WHERE id = ?1")?
        .query_row([e.id], |r| r.get(0))?;
    if same_content(&archived, &e.raw) {
        return Ok(Stored::Unchanged);
    }
    let mut revisions = tx.prepare_cached("SELECT raw FROM event_revisions WHERE event_id = ?1")?;
    let known: Vec<String> = revisions
        .query_map([e.id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if known.iter().any(|raw| same_content(raw, &e.raw)) {
        return Ok(Stored::Unchanged);
    }
    tx.prepare_cached(
        "INSERT INTO event_revisions (event_id, raw, fetched_at, window_id, digest) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![e.id, e.raw, now, window_id, e.digest])?;
    Ok(Stored::Revised(tx.last_insert_rowid()))
}

/// Whether two JSON texts carry the same content: byte-identical, or equal once parsed (key order and white
/// space do not make a revision).
pub fn same_content(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Filters, Interval, Reject, RejectReason};
    use rusqlite::OptionalExtension;
    use std::sync::Arc;

    fn window() -> Arc<WindowSpec> {
        let start = time::parse_time_arg("2024-01-01").unwrap();
        let end = time::parse_time_arg("2024-01-02").unwrap();
        Arc::new(WindowSpec {
            interval: Interval::new(start, end),
            filters: Filters::default(),
            created_from: time::parse_time_arg("2023-12-31T23:59:59Z").unwrap(),
            created_to: end,
        })
    }

    fn event(id: i64, raw: &str) -> Item {
        Item::Event(Event {
            id,
            timestamp: "2024-01-01T10:00:00.000Z".into(),
            category: "authentication".into(),
            action: "user-login-success".into(),
            description: None,
            username: Some("bob".into()),
            ip_address: None,
            raw: raw.into(),
            digest: crate::digest::sha256_hex(raw.as_bytes()),
            leaf: None,
            out_of_window: false,
        })
    }

    fn page(seq: usize, page: u32, items: Vec<Item>, last: bool) -> PageBatch {
        PageBatch {
            window_seq: seq,
            window: window(),
            page,
            items,
            last,
            deleted_at_source: Vec::new(),
        }
    }

    fn optional_i64(store: &Archive, sql: &str) -> Result<Option<i64>, StoreError> {
        store
            .conn
            .query_row(sql, [], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .context(|| format!("cannot run {sql}"))
    }

    fn now() -> Timestamp {
        time::parse_time_arg("2024-02-01").unwrap()
    }

    /// Commits one page, indexing it for search now.
    fn commit_now(
        store: &mut Archive,
        run: i64,
        ledger: &mut HashMap<usize, i64>,
        batch: PageBatch,
    ) -> PageTotals {
        store
            .commit_pages(run, &[batch], ledger, now(), SearchIndexing::Now)
            .unwrap()
    }

    fn open() -> (tempfile::TempDir, Archive, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Archive::open(&dir.path().join("a.db"), now()).unwrap();
        let run = store
            .begin_run(
                &RunStart {
                    range: window().interval,
                    filters: Filters::default(),
                    base_url: "http://127.0.0.1/v1".into(),
                    windows_planned: 1,
                    kind: RunKind::Sync,
                    lookback: None,
                },
                now(),
            )
            .unwrap();
        (dir, store, run)
    }

    /// The ids the search index finds for `word`.
    fn searched(store: &Archive, word: &str) -> Vec<i64> {
        store
            .conn
            .prepare("SELECT rowid FROM events_fts WHERE events_fts MATCH ?1 ORDER BY rowid")
            .unwrap()
            .query_map([word], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn each_page_is_searchable_once_committed_and_a_left_behind_index_catches_up_first() {
        let (_dir, mut store, run) = open();
        let mut ledger = HashMap::new();
        let page_1 = vec![event(1, r#"{"id":1}"#), event(2, r#"{"id":2}"#)];
        commit_now(&mut store, run, &mut ledger, page(0, 1, page_1, false));
        // Searchable with the page, while its window is still open: no step at the end of the run.
        assert_eq!(searched(&store, "bob"), vec![1, 2]);
        let indexed = "SELECT indexed_window_id FROM search_state";
        assert_eq!(optional_i64(&store, indexed).unwrap(), Some(1));
        // What an earlier version left behind when it was stopped before the end of its run: events of a
        // window fetch after the watermark, not indexed.
        store
            .conn
            .execute_batch(
                "INSERT INTO windows (run_id, window_start, window_end, created_from, created_to, status, started_at)
                 VALUES (1, 'a', 'b', 'c', 'd', 'interrupted', 'e');
                 INSERT INTO events (id, timestamp, category, action, username, raw, fetched_at, window_id, digest)
                 VALUES (7, '2024-01-01T11:00:00.000Z', 'c', 'a', 'carol', '{}', 'f', 2, 'd');",
            )
            .unwrap();
        assert!(searched(&store, "carol").is_empty());
        // The next transaction that stores events indexes them first, then its own (an event already
        // archived, then a new one): each event once.
        let page_2 = vec![event(2, r#"{"id":2}"#), event(3, r#"{"id":3}"#)];
        commit_now(&mut store, run, &mut ledger, page(0, 2, page_2, true));
        assert_eq!(searched(&store, "carol"), vec![7]);
        assert_eq!(searched(&store, "bob"), vec![1, 2, 3]);
        assert_eq!(optional_i64(&store, indexed).unwrap(), Some(2));
        store
            .conn
            .execute_batch("INSERT INTO events_fts (events_fts) VALUES ('integrity-check')")
            .unwrap();
        assert_eq!(
            store.update_search_index().unwrap(),
            0,
            "nothing left to index"
        );
    }

    /// The seal of window fetch `window_id` as stored, and its content computed from its rows now.
    fn sealed_and_recomputed(store: &Archive, window_id: i64) -> (String, String) {
        let sealed: String = store
            .conn
            .query_row(
                "SELECT content FROM seals WHERE window_id = ?1",
                [window_id],
                |r| r.get(0),
            )
            .unwrap();
        let now = seal::window_content(&store.conn, window_id, seal::SealFormat::CURRENT).unwrap();
        (sealed, now.content)
    }

    #[test]
    fn a_window_keeps_its_event_lines_while_its_ids_ascend_and_is_sealed_as_its_rows_say_either_way()
     {
        let (_dir, mut store, run) = open();
        let mut ledger = HashMap::new();
        let lines_of =
            |store: &Archive, window_id: i64| store.open.lines.get(&window_id).map(|l| l.is_some());
        // Ids ascending, an event already archived among them: the lines are kept, then taken by the seal.
        let page_1 = vec![event(1, r#"{"id":1}"#), event(2, r#"{"id":2}"#)];
        commit_now(&mut store, run, &mut ledger, page(0, 1, page_1, false));
        assert_eq!(lines_of(&store, 1), Some(true));
        let page_2 = vec![event(2, r#"{"id":2}"#), event(3, r#"{"id":3}"#)];
        commit_now(&mut store, run, &mut ledger, page(0, 2, page_2, true));
        assert_eq!(lines_of(&store, 1), None, "taken by the seal");
        let (sealed, recomputed) = sealed_and_recomputed(&store, 1);
        assert_eq!(sealed, recomputed);
        // An id out of order: the lines are given up and the window is sealed from its rows.
        let page_1 = vec![event(10, r#"{"id":10}"#), event(5, r#"{"id":5}"#)];
        commit_now(&mut store, run, &mut ledger, page(1, 1, page_1, false));
        assert_eq!(lines_of(&store, 2), Some(false));
        commit_now(&mut store, run, &mut ledger, page(1, 2, vec![], true));
        let (sealed, recomputed) = sealed_and_recomputed(&store, 2);
        assert_eq!(sealed, recomputed);
        // A failed transaction drops every window's lines: what they gathered may have been rolled back.
        let page_1 = vec![event(20, r#"{"id":20}"#)];
        commit_now(&mut store, run, &mut ledger, page(2, 1, page_1, false));
        assert_eq!(lines_of(&store, 3), Some(true));
        store.conn.execute_batch("DROP TABLE event_types").unwrap();
        let failing = vec![event(21, r#"{"id":21}"#)];
        assert!(
            store
                .commit_pages(
                    run,
                    &[page(2, 2, failing, false)],
                    &mut ledger,
                    now(),
                    SearchIndexing::Now
                )
                .is_err()
        );
        assert_eq!(lines_of(&store, 3), None);
    }

    #[test]
    fn the_lines_of_open_windows_stay_within_their_budget() {
        let mut open = OpenWindows::default();
        open.start(1);
        open.start(2);
        let digest = crate::digest::sha256_hex(b"x");
        for id in 0..1_000 {
            open.push(1, id, &digest, "2024-02-01T00:00:00.000Z");
        }
        open.keep_within_budget(1);
        assert!(
            open.take(1).is_some(),
            "a thousand events are well within it"
        );
        // More than a line's bytes per event (a line alone is over 100).
        for id in 0..(OPEN_LINES_BUDGET / 100) as i64 {
            open.push(2, id, &digest, "2024-02-01T00:00:00.000Z");
        }
        open.keep_within_budget(2);
        assert!(open.take(2).is_none(), "given up past the budget");
    }

    #[test]
    fn pages_indexed_later_join_the_index_in_bulk_and_the_watermark_never_claims_what_it_lacks() {
        let (_dir, mut store, run) = open();
        let mut ledger = HashMap::new();
        let indexed = "SELECT indexed_window_id FROM search_state";
        let mut commit = |store: &mut Archive, seq, n, ids: &[i64], last, indexing| {
            let items = ids
                .iter()
                .map(|id| event(*id, &format!(r#"{{"id":{id}}}"#)))
                .collect();
            store
                .commit_pages(
                    run,
                    &[page(seq, n, items, last)],
                    &mut ledger,
                    now(),
                    indexing,
                )
                .unwrap();
        };
        // Window fetch 1, first seen by a writer indexing now: indexed with its page, under the watermark.
        commit(&mut store, 0, 1, &[1, 2], false, SearchIndexing::Now);
        assert_eq!(searched(&store, "bob"), vec![1, 2]);
        assert_eq!(optional_i64(&store, indexed).unwrap(), Some(1));
        // Window fetch 2, first seen by a writer behind its pages: left out, and the watermark stays below it.
        commit(&mut store, 1, 1, &[5, 6], false, SearchIndexing::Later);
        assert_eq!(searched(&store, "bob"), vec![1, 2]);
        assert_eq!(optional_i64(&store, indexed).unwrap(), Some(1));
        // Window fetch 1's next page, later: the index holds window fetch 1, so its events join it now.
        commit(&mut store, 0, 2, &[3], true, SearchIndexing::Later);
        assert_eq!(searched(&store, "bob"), vec![1, 2, 3]);
        assert_eq!(optional_i64(&store, indexed).unwrap(), Some(1));
        // The next transaction indexing now adds window fetch 2's events in bulk first, then its own.
        commit(&mut store, 1, 2, &[7], true, SearchIndexing::Now);
        assert_eq!(searched(&store, "bob"), vec![1, 2, 3, 5, 6, 7]);
        assert_eq!(optional_i64(&store, indexed).unwrap(), Some(2));
        store
            .conn
            .execute_batch("INSERT INTO events_fts (events_fts) VALUES ('integrity-check')")
            .unwrap();
        // A window fetch left to be indexed later, then the end of the run.
        commit(&mut store, 2, 1, &[9], true, SearchIndexing::Later);
        assert_eq!(searched(&store, "bob"), vec![1, 2, 3, 5, 6, 7]);
        assert_eq!(store.update_search_index().unwrap(), 1);
        assert_eq!(searched(&store, "bob"), vec![1, 2, 3, 5, 6, 7, 9]);
        assert_eq!(optional_i64(&store, indexed).unwrap(), Some(3));
    }

    #[test]
    fn identical_copies_are_absorbed_and_changed_ones_kept_as_revisions() {
        let (_dir, mut store, run) = open();
        let mut ledger = HashMap::new();
        let first = vec![event(1, r#"{"id":1,"a":1,"b":2}"#), event(2, r#"{"id":2}"#)];
        let t = commit_now(&mut store, run, &mut ledger, page(0, 1, first, false));
        assert_eq!((t.events_new, t.revisions, t.events_unchanged), (2, 0, 0));
        let again = vec![
            event(1, r#"{"b":2, "id":1,"a":1}"#), // same content, other order: not a revision
            event(2, r#"{"id":2,"edited":true}"#),
            event(2, r#"{"id":2,"edited":true}"#), // the same revision again: kept once
            event(3, r#"{"id":3}"#),
        ];
        let t = commit_now(&mut store, run, &mut ledger, page(0, 2, again, true));
        assert_eq!(
            (
                t.events_new,
                t.revisions,
                t.events_unchanged,
                t.windows_completed
            ),
            (1, 1, 2, 1)
        );
        assert_eq!(
            optional_i64(&store, "SELECT count(*) FROM events").unwrap(),
            Some(3)
        );
        assert_eq!(
            optional_i64(&store, "SELECT count(*) FROM event_revisions").unwrap(),
            Some(1)
        );
        let raw: String = store
            .conn
            .query_row("SELECT raw FROM events WHERE id = 2", [], |r| r.get(0))
            .unwrap();
        assert_eq!(raw, r#"{"id":2}"#, "the first version is never overwritten");
        let status: WindowStatus = store
            .conn
            .query_row("SELECT status FROM windows", [], |r| r.get(0))
            .unwrap();
        assert_eq!(status, WindowStatus::Complete);
    }

    #[test]
    fn a_window_is_complete_only_with_its_last_page_and_rejects_are_kept_once() {
        let (_dir, mut store, run) = open();
        let mut ledger = HashMap::new();
        let bad = || {
            Item::Reject(Reject {
                raw: "42".into(),
                reason: RejectReason::NotAnObject("a number"),
            })
        };
        commit_now(
            &mut store,
            run,
            &mut ledger,
            page(0, 1, vec![bad(), event(1, "{}")], false),
        );
        let status: WindowStatus = store
            .conn
            .query_row("SELECT status FROM windows", [], |r| r.get(0))
            .unwrap();
        assert_eq!(status, WindowStatus::Running);
        commit_now(&mut store, run, &mut ledger, page(0, 2, vec![bad()], true));
        assert_eq!(
            optional_i64(&store, "SELECT count(*) FROM rejects").unwrap(),
            Some(1)
        );
        let row: (WindowStatus, i64, i64) = store
            .conn
            .query_row("SELECT status, pages, rejects FROM windows", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(row, (WindowStatus::Complete, 2, 2));
        store
            .finish_run(
                run,
                &RunEnd {
                    status: RunStatus::Partial,
                    error: None,
                    served_fewer: None,
                },
                now(),
            )
            .unwrap();
        let run_row: (RunStatus, i64, i64) = store
            .conn
            .query_row("SELECT status, rejects, events_new FROM runs", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(run_row, (RunStatus::Partial, 2, 1));
    }

    #[test]
    fn event_types_record_first_appearance() {
        let (_dir, mut store, run) = open();
        let mut ledger = HashMap::new();
        commit_now(
            &mut store,
            run,
            &mut ledger,
            page(0, 1, vec![event(5, "{}"), event(6, "{}")], true),
        );
        let row: (i64, String) = store
            .conn
            .query_row("SELECT events, first_event_at FROM event_types", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(row, (2, "2024-01-01T10:00:00.000Z".into()));
    }

    #[test]
    fn content_comparison() {
        let cases = [
            (r#"{"a":1}"#, r#"{"a":1}"#, true),
            (r#"{"a":1,"b":[1,2]}"#, r#"{ "b": [1,2], "a": 1 }"#, true),
            (r#"{"a":1}"#, r#"{"a":2}"#, false),
            (r#"{"a":1}"#, r#"{"a":1,"c":null}"#, false),
            ("not json", "not json", true),
            ("not json", "not  json", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(same_content(a, b), want, "{a} vs {b}");
        }
    }
}
