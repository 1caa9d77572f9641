//! Retention: legal holds and `prune`.
//!
//! `prune --before T` removes window fetches that ended at or before `T`, in one transaction with a record of
//! what was removed (`prunes`, `pruned_windows`) sealed into the chain. The pruned ranges are the union of
//! those windows' ranges, less anything held and anything still fetched by windows that are kept. Rows go by
//! their event, not by the fetch that filed them: every event whose timestamp lies inside a pruned range goes
//! (whichever window fetch filed it: the one-second overlap of a neighbouring window's request files events
//! of the range before it), with its revisions and its changes at the source; an event outside (a server
//! reading `createdTo` inclusively returns an event exactly on a window's end with that window, and it belongs
//! to the next, retained range) stays with its revisions and source changes, still under their seals, and
//! goes with a later prune that reaches it. The pruned window fetches' rejects go with them. Ledger rows stay,
//! so coverage stays whole, and the pruned ranges are never fetched again.
//!
//! Never pruned: window fetches overlapping an active hold, and events inside one. Each window fetch a prune
//! takes rows from is checked against its seal and digests first (one an earlier prune took rows from, against
//! what that prune recorded): pruning tampered rows would bury the evidence. The record keeps, per window
//! fetch, its ledger line and the lines of every row left under it, hashed into the prune's seal: what a prune
//! leaves, and the ledger row of a pruned window, are then vouched for by the chain, not by the window's seal
//! members alone.
//!
//! The plan is computed read-only ([`plan_prune`]), so `--dry-run` shows exactly what a prune would do. It is
//! "load, then decide": one read of what planning needs into plain structs ([`PruneInputs`]: active holds,
//! the ranges that block pruning, the window fetches that ended by the cutoff with their seals, the ranges
//! pruned before), a pure decision ([`decide_prune`]: which window fetches go, which are kept and why, the
//! ranges pruned, the ranges swept), a read of the other window fetches holding rows of the swept ranges, a
//! count of each one's rows ([`RowCounts`]), and a pure assembly of the [`PrunePlan`] ([`assemble_plan`]).

use super::seal::{self, SealFormat};
use super::{Archive, SqlContext, StoreError, read::Range};
use crate::model::{Interval, LeafKind, WindowStatus, merge_intervals, subtract_all};
use crate::time::{self, Timestamp};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A legal hold: a range of events that `prune` never removes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Hold {
    /// Its id, for `hold remove`.
    pub id: i64,
    /// Start of the held range.
    pub from: String,
    /// End of the held range, exclusive.
    pub to: String,
    /// Why (a case number, a request).
    pub reason: String,
    /// When it was placed.
    pub created_at: String,
    /// When it was lifted, if it was.
    pub removed_at: Option<String>,
}

/// One window fetch a prune removes rows from.
#[derive(Debug, Clone, Serialize)]
pub struct PrunedWindow {
    /// The ledger row.
    pub window_id: i64,
    /// Its range.
    pub from: String,
    /// Its end.
    pub to: String,
    /// Events removed.
    pub events: i64,
    /// Revisions removed.
    pub revisions: i64,
    /// Rejects removed.
    pub rejects: i64,
    /// Events left under it (timestamps outside the pruned ranges).
    pub kept: i64,
    /// Whether it ended by the cutoff and goes whole (its rejects too), rather than losing only the rows of
    /// events inside the pruned ranges (a kept neighbour).
    #[serde(skip)]
    pub whole: bool,
    /// The rejects that go with it, by id (chosen once, when planning).
    #[serde(skip)]
    pub reject_ids: Vec<i64>,
    /// The hash of its seal.
    #[serde(skip)]
    pub seal_hash: String,
    /// The content its seal vouches for.
    #[serde(skip)]
    pub seal_content: String,
    /// The format its seal was made with.
    #[serde(skip)]
    pub seal_format: SealFormat,
    /// Whether an earlier prune already removed rows from it (its content then differs from its seal's).
    #[serde(skip)]
    pub pruned_before: bool,
}

/// Why a window fetch that ended before the cutoff is kept.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum KeptBecause {
    /// It overlaps an active hold.
    Held,
}

/// What a prune removes (or removed).
#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    /// The cutoff (stored form).
    pub cutoff: String,
    /// Window fetches rows are removed from, by id.
    pub windows: Vec<PrunedWindow>,
    /// The ranges pruned, merged.
    pub ranges: Vec<Range>,
    /// The ranges whose events go: the ranges pruned, and what earlier prunes pruned (less what is now
    /// blocked), so that events an earlier version left there under kept window fetches go too.
    #[serde(skip)]
    pub swept: Vec<Range>,
    /// Events removed.
    pub events: i64,
    /// Revisions removed.
    pub revisions: i64,
    /// Rejects removed.
    pub rejects: i64,
    /// Window fetches ended before the cutoff but kept, by reason.
    pub kept: BTreeMap<KeptBecause, u64>,
    /// The prune's id, once applied.
    pub prune_id: Option<i64>,
    /// The chain head after the prune, once applied.
    pub chain_head: Option<String>,
}

/// A prune as recorded, for `status` and `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct PruneRecord {
    /// Its id.
    pub id: i64,
    /// When it ran.
    pub pruned_at: String,
    /// Its cutoff.
    pub cutoff: String,
    /// Window fetches emptied.
    pub windows: i64,
    /// Events removed.
    pub events: i64,
}

impl Archive {
    /// Places a hold on `[from, to)`.
    pub fn add_hold(
        &mut self,
        range: Interval,
        reason: &str,
        now: Timestamp,
    ) -> Result<Hold, StoreError> {
        let now = time::to_stored(now);
        let tx = self.begin()?;
        tx.execute(
            "INSERT INTO holds (range_from, range_to, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                time::to_stored(range.start),
                // Rounded up: an event stored truncated to the millisecond stays inside.
                time::to_stored(time::ceil_millis(range.end)),
                reason,
                now
            ],
        )
        .context(|| "cannot record the hold".into())?;
        let id = tx.last_insert_rowid();
        // Logged with the row: a hold deleted, narrowed or lifted unseen is caught by `verify`.
        super::tlog::append_ledger_row(&tx, LeafKind::Hold, id)?;
        tx.commit().context(|| "cannot record the hold".into())?;
        Ok(holds(&self.conn, true)?
            .into_iter()
            .find(|h| h.id == id)
            .expect("the hold was just inserted"))
    }

    /// Lifts hold `id`; its row stays, with the time it was lifted. `None` if there is no active hold `id`.
    pub fn remove_hold(&mut self, id: i64, now: Timestamp) -> Result<Option<Hold>, StoreError> {
        let now = time::to_stored(now);
        let tx = self.begin()?;
        let changed = tx
            .execute(
                "UPDATE holds SET removed_at = ?2 WHERE id = ?1 AND removed_at IS NULL",
                params![id, now],
            )
            .context(|| format!("cannot lift hold {id}"))?;
        if changed == 0 {
            return Ok(None);
        }
        super::tlog::append_ledger_row(&tx, LeafKind::HoldLifted, id)?;
        tx.commit().context(|| format!("cannot lift hold {id}"))?;
        Ok(holds(&self.conn, true)?.into_iter().find(|h| h.id == id))
    }

    /// Prunes what [`plan_prune`] selects for `cutoff`, in one transaction, and seals the record of it: checks
    /// each window fetch against its seal and digests, records the prune, removes the rows, records the
    /// window fetches, merges the search index and seals. Nothing is removed unless all of it is.
    pub fn prune(&mut self, cutoff: Timestamp, now: Timestamp) -> Result<PrunePlan, StoreError> {
        // Removed rows are overwritten, not left readable in free pages.
        self.conn
            .execute_batch("PRAGMA secure_delete = ON")
            .context(prune_ctx)?;
        let now = time::to_stored(now);
        let tx = self.begin()?;
        let mut plan = plan_prune(&tx, cutoff)?;
        if plan.windows.is_empty() {
            return Ok(plan);
        }
        check_sealed(&tx, &plan.windows)?;
        let prune_id = record_prune(&tx, &plan, &now)?;
        log_removals(&tx, &plan, prune_id)?;
        remove_rows(&tx, &plan)?;
        record_pruned_windows(&tx, prune_id, &plan.windows)?;
        merge_search_index(&tx)?;
        let head = seal::seal_prune(&tx, prune_id, &now)?;
        tx.commit().context(prune_ctx)?;
        plan.prune_id = Some(prune_id);
        plan.chain_head = Some(head);
        Ok(plan)
    }
}

/// Context for every write of a prune.
fn prune_ctx() -> String {
    "cannot prune the archive".to_string()
}

/// Refuses the prune if a window fetch no longer matches its seal (one an earlier prune took rows from is
/// vouched for by that prune's record instead: by its ledger and event lines, if it recorded them) or an event
/// or revision no longer matches its digest: what is removed must be what was sealed, and pruning a tampered
/// window would bury the evidence.
fn check_sealed(conn: &Connection, windows: &[PrunedWindow]) -> Result<(), StoreError> {
    for w in windows {
        let sealed = if w.pruned_before {
            matches_last_record(conn, w.window_id).context(prune_ctx)?
        } else {
            seal::window_content(conn, w.window_id, w.seal_format)
                .context(prune_ctx)?
                .content
                == w.seal_content
        };
        if !sealed || !digests_hold(conn, w.window_id).context(prune_ctx)? {
            return Err(StoreError::SealMismatch {
                window_id: w.window_id,
            });
        }
    }
    Ok(())
}

/// Whether a window fetch an earlier prune took rows from still has the ledger row and events that prune
/// recorded (a prune that recorded no lines, before version 2 of seals, vouches for nothing more here).
fn matches_last_record(conn: &Connection, window_id: i64) -> rusqlite::Result<bool> {
    let (ledger, kept): (Option<String>, Option<String>) = conn.query_row(
        "SELECT ledger, kept_lines FROM pruned_windows WHERE window_id = ?1 ORDER BY prune_id DESC LIMIT 1",
        [window_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(match ledger.zip(kept) {
        Some((ledger, kept)) => {
            ledger == seal::ledger_text(conn, window_id)?
                && kept == seal::kept_lines(conn, window_id)?
        }
        None => true,
    })
}

/// Writes the `prunes` row of `plan`, run at `now` (stored form); returns its id.
fn record_prune(conn: &Connection, plan: &PrunePlan, now: &str) -> Result<i64, StoreError> {
    let ranges_json = serde_json::to_string(
        &plan
            .ranges
            .iter()
            .map(|r| [r.from.as_str(), r.to.as_str()])
            .collect::<Vec<_>>(),
    )
    .expect("ranges serialise");
    conn.execute(
        "INSERT INTO prunes (pruned_at, cutoff, windows, events, revisions, rejects, ranges)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            now,
            plan.cutoff,
            plan.windows.len() as i64,
            plan.events,
            plan.revisions,
            plan.rejects,
            ranges_json
        ],
    )
    .context(prune_ctx)?;
    Ok(conn.last_insert_rowid())
}

/// Appends to the Merkle log one removal leaf per row the plan removes (the removed rows' leaves stay): the
/// rows [`remove_rows`] removes, chosen the same way.
fn log_removals(conn: &Connection, plan: &PrunePlan, prune_id: i64) -> Result<(), StoreError> {
    let swept: Vec<(String, String)> = plan
        .swept
        .iter()
        .map(|r| (r.from.clone(), r.to.clone()))
        .collect();
    let mut log = super::tlog::LogAppender::load(conn)?;
    for w in &plan.windows {
        let leaves =
            super::tlog::leaves_of_pruned_rows(conn, w.window_id, &swept, w.whole, &w.reject_ids)?;
        for (leaf, kind, row) in leaves {
            log.append_removal(leaf, kind, row, prune_id);
        }
        log.flush(conn)?;
    }
    Ok(())
}

/// Removes what the plan takes: first, under each of its window fetches, the revisions and changes at the
/// source of events inside the swept ranges (a revision filed under one window fetch may be of an event filed
/// under another), and under a whole one its rejects and any row whose event is not in the archive; then each
/// one's events inside the swept ranges (and their search entries).
fn remove_rows(conn: &Connection, plan: &PrunePlan) -> Result<(), StoreError> {
    for w in &plan.windows {
        for table in ["event_revisions", "source_changes"] {
            for r in &plan.swept {
                conn.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE window_id = ?1
                       AND event_id IN (SELECT id FROM events WHERE timestamp >= ?2 AND timestamp < ?3)"
                ))
                .and_then(|mut s| s.execute(params![w.window_id, r.from, r.to]))
                .context(prune_ctx)?;
            }
            if w.whole {
                conn.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE window_id = ?1
                       AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = {table}.event_id)"
                ))
                .and_then(|mut s| s.execute([w.window_id]))
                .context(prune_ctx)?;
            }
        }
        for id in &w.reject_ids {
            conn.prepare_cached("DELETE FROM rejects WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .context(prune_ctx)?;
        }
    }
    let indexed: i64 = conn
        .query_row(
            "SELECT indexed_window_id FROM search_state WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .context(prune_ctx)?;
    for w in &plan.windows {
        remove_events(conn, w.window_id, &plan.swept, w.window_id <= indexed)?;
    }
    Ok(())
}

/// Removes window fetch `window_id`'s events inside `ranges`, and first their search entries if it is
/// `indexed` (the index holds the window fetches up to `search_state.indexed_window_id`).
fn remove_events(
    conn: &Connection,
    window_id: i64,
    ranges: &[Range],
    indexed: bool,
) -> Result<(), StoreError> {
    for r in ranges {
        let bounds = params![window_id, r.from, r.to];
        if indexed {
            conn.prepare_cached(
                "INSERT INTO events_fts (events_fts, rowid, description, username)
                 SELECT 'delete', id, description, username FROM events
                 WHERE window_id = ?1 AND timestamp >= ?2 AND timestamp < ?3",
            )
            .and_then(|mut s| s.execute(bounds))
            .context(prune_ctx)?;
        }
        conn.prepare_cached(
            "DELETE FROM events WHERE window_id = ?1 AND timestamp >= ?2 AND timestamp < ?3",
        )
        .and_then(|mut s| s.execute(bounds))
        .context(prune_ctx)?;
    }
    Ok(())
}

/// Writes prune `prune_id`'s `pruned_windows` rows (after the rows are removed): each window fetch, the seal
/// that vouched for what was removed, what was removed and kept, its ledger line and the lines of the events
/// left under it (hashed into the prune's seal).
fn record_pruned_windows(
    conn: &Connection,
    prune_id: i64,
    windows: &[PrunedWindow],
) -> Result<(), StoreError> {
    for w in windows {
        let ledger = seal::ledger_text(conn, w.window_id).context(prune_ctx)?;
        let kept_lines = seal::kept_lines(conn, w.window_id).context(prune_ctx)?;
        conn.prepare_cached(
            "INSERT INTO pruned_windows (prune_id, window_id, seal_hash, events, revisions, rejects, kept, ledger,
                                         kept_lines)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                prune_id,
                w.window_id,
                w.seal_hash,
                w.events,
                w.revisions,
                w.rejects,
                w.kept,
                ledger,
                kept_lines
            ])
        })
        .context(prune_ctx)?;
    }
    Ok(())
}

/// Merges the search index's segments, so the removed words are gone from it too, not only marked deleted.
fn merge_search_index(conn: &Connection) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO events_fts (events_fts) VALUES ('optimize')",
        [],
    )
    .context(prune_ctx)?;
    Ok(())
}

/// The holds, active only or all (lifted ones too), oldest first.
pub fn holds(conn: &Connection, include_removed: bool) -> Result<Vec<Hold>, StoreError> {
    let sql = format!(
        "SELECT id, range_from, range_to, reason, created_at, removed_at FROM holds {} ORDER BY id",
        if include_removed {
            ""
        } else {
            "WHERE removed_at IS NULL"
        }
    );
    conn.prepare(&sql)
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(Hold {
                    id: r.get(0)?,
                    from: r.get(1)?,
                    to: r.get(2)?,
                    reason: r.get(3)?,
                    created_at: r.get(4)?,
                    removed_at: r.get(5)?,
                })
            })?
            .collect()
        })
        .context(|| "cannot read the holds".into())
}

/// The ranges pruned so far, merged.
pub fn pruned_ranges(conn: &Connection) -> Result<Vec<Interval>, StoreError> {
    let ctx = || "cannot read the pruned ranges".to_string();
    let rows: Vec<String> = conn
        .prepare("SELECT ranges FROM prunes")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .context(ctx)?;
    let mut intervals = Vec::new();
    for text in rows {
        // A record that does not parse is reported by `verify` (it no longer matches its seal).
        let pairs: Vec<(String, String)> = serde_json::from_str(&text).unwrap_or_default();
        intervals.extend(pairs.iter().filter_map(|(a, b)| {
            let (a, b) = (time::from_stored(a)?, time::from_stored(b)?);
            (a <= b).then(|| Interval::new(a, b))
        }));
    }
    Ok(merge_intervals(intervals))
}

/// The prunes, oldest first.
pub fn prunes(conn: &Connection) -> Result<Vec<PruneRecord>, StoreError> {
    conn.prepare("SELECT id, pruned_at, cutoff, windows, events FROM prunes ORDER BY id")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(PruneRecord {
                    id: r.get(0)?,
                    pruned_at: r.get(1)?,
                    cutoff: r.get(2)?,
                    windows: r.get(3)?,
                    events: r.get(4)?,
                })
            })?
            .collect()
        })
        .context(|| "cannot read the prunes".into())
}

/// A sealed window fetch, not running, as planning reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowFetch {
    /// The ledger row.
    pub id: i64,
    /// Its range, parsed.
    pub interval: Interval,
    /// Its start as stored.
    pub from: String,
    /// Its end as stored.
    pub to: String,
    /// The hash of its seal.
    pub seal_hash: String,
    /// The content its seal vouches for.
    pub seal_content: String,
    /// The format its seal was made with.
    pub seal_format: SealFormat,
    /// Whether an earlier prune already removed rows from it.
    pub pruned_before: bool,
}

/// Everything planning a prune reads, before anything is decided. The cutoff is applied while reading:
/// `fetches` are the window fetches that ended at or before it.
#[derive(Debug, Clone, Default)]
pub struct PruneInputs {
    /// The active holds' ranges.
    pub holds: Vec<Interval>,
    /// Ranges of window fetches that block pruning: running ones, and ones straddling the cutoff.
    pub blocking: Vec<Interval>,
    /// The candidate window fetches, by id.
    pub fetches: Vec<WindowFetch>,
    /// The ranges earlier prunes pruned, merged.
    pub pruned: Vec<Interval>,
}

/// A window fetch that ended at or before the cutoff and is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// The ledger row.
    pub window_id: i64,
    /// Why it is kept.
    pub because: KeptBecause,
    /// Whether an earlier prune already removed rows from it.
    pub pruned_before: bool,
}

/// What a prune decides from its [`PruneInputs`]: which window fetches go, which are kept and why, the ranges
/// pruned, and the ranges whose events go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneDecision {
    /// The window fetches that go (their rejects, and their rows of the swept ranges), by id.
    pub pruned: Vec<WindowFetch>,
    /// The window fetches kept, by id.
    pub kept: Vec<Kept>,
    /// The ranges pruned: the pruned window fetches' ranges less everything blocked, merged.
    pub ranges: Vec<Interval>,
    /// The ranges whose events go, from any window fetch: the ranges pruned and the ranges earlier prunes
    /// pruned, less everything blocked, merged (empty when nothing is pruned).
    pub swept: Vec<Interval>,
}

/// What a window fetch the prune takes rows from holds, counted against the swept ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Events filed under it.
    pub events: i64,
    /// Of those, events inside the swept ranges (removed).
    pub events_in_ranges: i64,
    /// Revisions removed: those of events inside the swept ranges, and (a whole one) those whose event is
    /// not in the archive.
    pub revisions: i64,
    /// Changes at the source removed, as revisions.
    pub source_changes: i64,
    /// The rejects removed (a whole one's), by id.
    pub reject_ids: Vec<i64>,
}

/// What a prune at `cutoff` removes, and which window fetches it keeps and why. Read-only: loads, decides,
/// reads which other window fetches hold rows of the swept ranges, counts, then assembles.
pub fn plan_prune(conn: &Connection, cutoff: Timestamp) -> Result<PrunePlan, StoreError> {
    let open: i64 = conn
        .query_row(
            "SELECT count(*) FROM windows WHERE status = ?1",
            [WindowStatus::Running],
            |r| r.get(0),
        )
        .context(plan_ctx)?;
    if open > 0 {
        return Err(StoreError::OpenWindows { count: open });
    }
    let cutoff = time::to_stored(cutoff);
    let decision = decide_prune(load_prune_inputs(conn, &cutoff)?);
    let neighbours = load_neighbours(conn, &decision)?;
    let taken: Vec<(&WindowFetch, bool)> = (decision.pruned.iter().map(|w| (w, true)))
        .chain(neighbours.iter().map(|w| (w, false)))
        .collect();
    let counts = count_rows(conn, &taken, &decision.swept)?;
    Ok(assemble_plan(cutoff, decision, neighbours, counts))
}

/// Context for every read of the planning.
fn plan_ctx() -> String {
    "cannot plan the prune".to_string()
}

/// Reads what planning a prune at `cutoff` (stored form) needs. Rows whose range does not parse are left out
/// (`verify` reports them).
fn load_prune_inputs(conn: &Connection, cutoff: &str) -> Result<PruneInputs, StoreError> {
    let intervals = |rows: Vec<(String, String)>| -> Vec<Interval> {
        rows.iter()
            .filter_map(|(a, b)| Interval::from_stored(a, b))
            .collect()
    };
    let holds = holds(conn, false)?
        .into_iter()
        .map(|h| (h.from, h.to))
        .collect();
    let blocking: Vec<(String, String)> = conn
        .prepare(
            "SELECT window_start, window_end FROM windows
             WHERE status = ?2 OR (window_end > ?1 AND window_start < ?1)",
        )
        .and_then(|mut s| {
            s.query_map(params![cutoff, WindowStatus::Running], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })
        .context(plan_ctx)?;
    Ok(PruneInputs {
        holds: intervals(holds),
        blocking: intervals(blocking),
        fetches: load_fetches(conn, "w.window_end <= ?1", cutoff)?,
        pruned: pruned_ranges(conn)?,
    })
}

/// The sealed window fetches, not running, that match `condition` (its `?1` bound to `value`), by id.
fn load_fetches(
    conn: &Connection,
    condition: &str,
    value: impl rusqlite::ToSql,
) -> Result<Vec<WindowFetch>, StoreError> {
    type Row = (i64, String, String, String, String, bool, SealFormat);
    let rows: Vec<Row> = conn
        .prepare_cached(&format!(
            "SELECT w.id, w.window_start, w.window_end, s.hash, s.content,
                    EXISTS (SELECT 1 FROM pruned_windows p WHERE p.window_id = w.id), s.format
             FROM windows w JOIN seals s ON s.window_id = w.id
             WHERE w.status <> ?2 AND {condition}
             ORDER BY w.id"
        ))
        .and_then(|mut s| {
            s.query_map(params![value, WindowStatus::Running], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect()
        })
        .context(plan_ctx)?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(id, from, to, seal_hash, seal_content, pruned_before, seal_format)| {
                Some(WindowFetch {
                    id,
                    interval: Interval::from_stored(&from, &to)?,
                    from,
                    to,
                    seal_hash,
                    seal_content,
                    seal_format,
                    pruned_before,
                })
            },
        )
        .collect())
}

/// The sealed window fetches, not running and not among those the decision prunes, that hold an event inside
/// the swept ranges, or a revision or change at the source of one, by id. (A running one's rows stay: they
/// are not sealed yet.)
fn load_neighbours(
    conn: &Connection,
    decision: &PruneDecision,
) -> Result<Vec<WindowFetch>, StoreError> {
    let pruned: BTreeSet<i64> = decision.pruned.iter().map(|w| w.id).collect();
    let mut ids = BTreeSet::new();
    for r in &decision.swept {
        let bounds = params![time::to_stored(r.start), time::to_stored(r.end)];
        let found: Vec<i64> = conn
            .prepare_cached(
                "SELECT window_id FROM events WHERE timestamp >= ?1 AND timestamp < ?2
                 UNION SELECT x.window_id FROM event_revisions x JOIN events e ON e.id = x.event_id
                       WHERE e.timestamp >= ?1 AND e.timestamp < ?2
                 UNION SELECT x.window_id FROM source_changes x JOIN events e ON e.id = x.event_id
                       WHERE e.timestamp >= ?1 AND e.timestamp < ?2",
            )
            .and_then(|mut s| s.query_map(bounds, |r| r.get(0))?.collect())
            .context(plan_ctx)?;
        ids.extend(found.into_iter().filter(|id| !pruned.contains(id)));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(load_fetches(conn, "w.id = ?1", id)?);
    }
    Ok(out)
}

/// Decides a prune: a window fetch overlapping an active hold is kept (and blocks its whole range). The
/// ranges pruned are the rest's ranges, less the holds, the blocking window fetches and the kept ones; the
/// ranges swept add what earlier prunes pruned, less the same.
pub fn decide_prune(inputs: PruneInputs) -> PruneDecision {
    let held = merge_intervals(inputs.holds);
    let mut blocked = held.clone();
    blocked.extend(inputs.blocking);
    let mut kept = Vec::new();
    let mut pruned = Vec::new();
    for fetch in inputs.fetches {
        if held.iter().any(|h| h.overlaps(&fetch.interval)) {
            blocked.push(fetch.interval);
            kept.push(Kept {
                window_id: fetch.id,
                because: KeptBecause::Held,
                pruned_before: fetch.pruned_before,
            });
        } else {
            pruned.push(fetch);
        }
    }
    let blocked = merge_intervals(blocked);
    let ranges = merge_intervals(subtract_all(
        merge_intervals(pruned.iter().map(|c| c.interval).collect()),
        &blocked,
    ));
    let swept = if pruned.is_empty() {
        Vec::new()
    } else {
        let mut swept = subtract_all(merge_intervals(inputs.pruned), &blocked);
        swept.extend(ranges.iter().copied());
        merge_intervals(swept)
    };
    PruneDecision {
        pruned,
        kept,
        ranges,
        swept,
    }
}

/// Counts, for each window fetch the prune takes rows from (with whether it goes whole), its rows and what
/// goes of them in the `swept` ranges.
fn count_rows(
    conn: &Connection,
    taken: &[(&WindowFetch, bool)],
    swept: &[Interval],
) -> Result<Vec<RowCounts>, StoreError> {
    let count = |sql: &str, values: &[&dyn rusqlite::ToSql]| -> Result<i64, StoreError> {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.query_row(values, |r| r.get::<_, i64>(0)))
            .context(plan_ctx)
    };
    let mut counts = Vec::with_capacity(taken.len());
    for &(w, whole) in taken {
        let mut c = RowCounts {
            events: count("SELECT count(*) FROM events WHERE window_id = ?1", &[&w.id])?,
            ..RowCounts::default()
        };
        for r in swept {
            let (from, to) = (time::to_stored(r.start), time::to_stored(r.end));
            let bounds: [&dyn rusqlite::ToSql; 3] = [&w.id, &from, &to];
            c.events_in_ranges += count(
                "SELECT count(*) FROM events WHERE window_id = ?1 AND timestamp >= ?2 AND timestamp < ?3",
                &bounds,
            )?;
            c.revisions += count(
                "SELECT count(*) FROM event_revisions x JOIN events e ON e.id = x.event_id
                 WHERE x.window_id = ?1 AND e.timestamp >= ?2 AND e.timestamp < ?3",
                &bounds,
            )?;
            c.source_changes += count(
                "SELECT count(*) FROM source_changes x JOIN events e ON e.id = x.event_id
                 WHERE x.window_id = ?1 AND e.timestamp >= ?2 AND e.timestamp < ?3",
                &bounds,
            )?;
        }
        if whole {
            c.reject_ids = rejects_going(conn, w.id, swept)?;
            c.revisions += count(
                "SELECT count(*) FROM event_revisions x WHERE x.window_id = ?1
                   AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = x.event_id)",
                &[&w.id],
            )?;
            c.source_changes += count(
                "SELECT count(*) FROM source_changes x WHERE x.window_id = ?1
                   AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = x.event_id)",
                &[&w.id],
            )?;
        }
        counts.push(c);
    }
    Ok(counts)
}

/// The rejects of window fetch `window_id` (pruned whole) that go: those whose item carries a timestamp
/// inside the `swept` ranges, and those that carry none that parses (they have nothing but their window). A
/// reject with a timestamp outside (an item exactly on the window's end, filed once under the first window
/// that saw it, belongs to the next range; one inside a hold) stays.
fn rejects_going(
    conn: &Connection,
    window_id: i64,
    swept: &[Interval],
) -> Result<Vec<i64>, StoreError> {
    let rejects: Vec<(i64, String)> = conn
        .prepare_cached("SELECT id, raw FROM rejects WHERE window_id = ?1 ORDER BY id")
        .and_then(|mut s| {
            s.query_map([window_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .context(plan_ctx)?;
    Ok(rejects
        .into_iter()
        .filter(|(_, raw)| reject_goes(raw, swept))
        .map(|(id, _)| id)
        .collect())
}

/// Whether a reject whose item is `raw` goes with a window pruned whole (see [`rejects_going`]).
pub fn reject_goes(raw: &str, swept: &[Interval]) -> bool {
    let at = serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| {
            v.get("timestamp")?
                .as_str()
                .and_then(time::parse_server_timestamp)
        });
    at.is_none_or(|t| swept.iter().any(|r| r.contains(t)))
}

/// Builds the plan from the decision, the neighbours (other window fetches holding rows of the swept
/// ranges) and each one's [`RowCounts`] (the decision's window fetches first, then the neighbours, in
/// order). A window fetch that loses nothing is left out, but one the decision prunes for the first time
/// (it is recorded as pruned, even empty).
pub fn assemble_plan(
    cutoff: String,
    decision: PruneDecision,
    neighbours: Vec<WindowFetch>,
    counts: Vec<RowCounts>,
) -> PrunePlan {
    let mut windows: Vec<PrunedWindow> = (decision.pruned.into_iter().map(|w| (w, true)))
        .chain(neighbours.into_iter().map(|w| (w, false)))
        .zip(counts)
        .filter(|((w, whole), c)| {
            (*whole && !w.pruned_before)
                || c.events_in_ranges + c.revisions + c.source_changes > 0
                || !c.reject_ids.is_empty()
        })
        .map(|((w, whole), c)| PrunedWindow {
            window_id: w.id,
            from: w.from,
            to: w.to,
            events: c.events_in_ranges,
            revisions: c.revisions,
            rejects: c.reject_ids.len() as i64,
            reject_ids: c.reject_ids,
            kept: c.events - c.events_in_ranges,
            whole,
            seal_hash: w.seal_hash,
            seal_content: w.seal_content,
            seal_format: w.seal_format,
            pruned_before: w.pruned_before,
        })
        .collect();
    windows.sort_by_key(|w| w.window_id);
    PrunePlan {
        cutoff,
        events: windows.iter().map(|w| w.events).sum(),
        revisions: windows.iter().map(|w| w.revisions).sum(),
        rejects: windows.iter().map(|w| w.rejects).sum(),
        ranges: decision.ranges.iter().map(Range::from).collect(),
        swept: decision.swept.iter().map(Range::from).collect(),
        windows,
        kept: count_kept(&decision.kept),
        prune_id: None,
        chain_head: None,
    }
}

/// Counts the kept window fetches by reason. A held one an earlier prune already took rows from is not
/// counted (it was counted by that prune).
pub fn count_kept(kept: &[Kept]) -> BTreeMap<KeptBecause, u64> {
    let mut counts = BTreeMap::new();
    for k in kept.iter().filter(|k| !k.pruned_before) {
        *counts.entry(k.because).or_default() += 1;
    }
    counts
}

/// Whether every event and revision a window fetch inserted still matches its digest.
fn digests_hold(conn: &Connection, window_id: i64) -> rusqlite::Result<bool> {
    for table in ["events", "event_revisions"] {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT raw, digest FROM {table} WHERE window_id = ?1"
        ))?;
        let mut rows = stmt.query([window_id])?;
        while let Some(r) = rows.next()? {
            let raw: String = r.get(0)?;
            let digest: Option<String> = r.get(1)?;
            if digest.as_deref() != Some(crate::digest::sha256_hex(raw.as_bytes()).as_str()) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Hour `h` of the epoch.
    fn t(h: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(h * 3600, 0).unwrap()
    }

    fn iv(a: i64, b: i64) -> Interval {
        Interval::new(t(a), t(b))
    }

    fn fetch(id: i64, a: i64, b: i64) -> WindowFetch {
        WindowFetch {
            id,
            interval: iv(a, b),
            from: time::to_stored(t(a)),
            to: time::to_stored(t(b)),
            seal_hash: format!("hash{id}"),
            seal_content: format!("content{id}"),
            seal_format: SealFormat::CURRENT,
            pruned_before: false,
        }
    }

    fn ids(fetches: &[WindowFetch]) -> Vec<i64> {
        fetches.iter().map(|f| f.id).collect()
    }

    /// A decision case: name, inputs, the window fetches pruned, those kept and why, the ranges pruned.
    type Case = (
        &'static str,
        PruneInputs,
        Vec<i64>,
        Vec<(i64, KeptBecause)>,
        Vec<Interval>,
    );

    fn check_decisions(cases: Vec<Case>) {
        for (name, inputs, pruned, kept, ranges) in cases {
            let earlier = inputs.pruned.is_empty();
            let d = decide_prune(inputs);
            assert_eq!(ids(&d.pruned), pruned, "{name}: pruned");
            let got: Vec<(i64, KeptBecause)> =
                d.kept.iter().map(|k| (k.window_id, k.because)).collect();
            assert_eq!(got, kept, "{name}: kept");
            assert_eq!(d.ranges, ranges, "{name}: ranges");
            if earlier && !d.pruned.is_empty() {
                assert_eq!(
                    d.swept, d.ranges,
                    "{name}: with no earlier prune, the ranges are swept"
                );
            }
        }
    }

    /// The fetch of day `d` (0-based), ledger row `id`.
    fn day(id: i64, d: i64) -> WindowFetch {
        fetch(id, 24 * d, 24 * (d + 1))
    }

    #[test]
    fn holds_and_blocking_windows_keep_their_ranges() {
        check_decisions(vec![
            (
                "nothing ended before the cutoff",
                PruneInputs {
                    holds: vec![iv(0, 5)],
                    blocking: vec![iv(12, 36)],
                    ..PruneInputs::default()
                },
                vec![],
                vec![],
                vec![],
            ),
            (
                "a hold overlapping a window keeps it and blocks its whole range (a refetch inside it too)",
                PruneInputs {
                    holds: vec![iv(30, 31)],
                    fetches: vec![day(1, 0), day(2, 1), fetch(3, 36, 48)],
                    ..PruneInputs::default()
                },
                vec![1, 3],
                vec![(2, KeptBecause::Held)],
                vec![iv(0, 24)],
            ),
            (
                "a hold touching a window's end does not keep it",
                PruneInputs {
                    holds: vec![iv(24, 30)],
                    fetches: vec![day(1, 0)],
                    ..PruneInputs::default()
                },
                vec![1],
                vec![],
                vec![iv(0, 24)],
            ),
            (
                "a window straddling the cutoff blocks its range",
                PruneInputs {
                    blocking: vec![iv(12, 36)],
                    fetches: vec![day(1, 0), fetch(2, 0, 12)],
                    ..PruneInputs::default()
                },
                vec![1, 2],
                vec![],
                vec![iv(0, 12)],
            ),
            (
                "a window blocked whole still loses its other rows",
                PruneInputs {
                    blocking: vec![iv(0, 24)],
                    fetches: vec![day(1, 0)],
                    ..PruneInputs::default()
                },
                vec![1],
                vec![],
                vec![],
            ),
        ]);
    }

    #[test]
    fn ranges_merge_and_earlier_prunes_are_swept_again() {
        use KeptBecause::Held;
        check_decisions(vec![(
            "ranges are merged, refetches included",
            PruneInputs {
                fetches: vec![day(1, 0), day(2, 1), fetch(3, 12, 36), day(4, 3)],
                ..PruneInputs::default()
            },
            vec![1, 2, 3, 4],
            vec![],
            vec![iv(0, 48), iv(72, 96)],
        )]);
        let cases = [
            (
                "earlier ranges are swept with the new ones, less what is held or blocked",
                PruneInputs {
                    holds: vec![iv(2, 3)],
                    blocking: vec![iv(100, 110)],
                    fetches: vec![day(1, 2), day(2, 3)],
                    pruned: vec![iv(0, 24), iv(90, 120)],
                },
                vec![iv(0, 2), iv(3, 24), iv(48, 100), iv(110, 120)],
            ),
            (
                "a held window's range is not swept",
                PruneInputs {
                    holds: vec![iv(30, 31)],
                    fetches: vec![day(1, 1), day(2, 2)],
                    pruned: vec![iv(0, 48)],
                    ..PruneInputs::default()
                },
                vec![iv(0, 24), iv(48, 72)],
            ),
            (
                "nothing pruned now, nothing swept",
                PruneInputs {
                    holds: vec![iv(0, 100)],
                    fetches: vec![day(1, 1)],
                    pruned: vec![iv(0, 48)],
                    ..PruneInputs::default()
                },
                vec![],
            ),
        ];
        for (name, inputs, swept) in cases {
            let d = decide_prune(inputs);
            assert_eq!(d.swept, swept, "{name}");
            assert!(d.kept.iter().all(|k| k.because == Held), "{name}");
        }
    }

    /// Day `d` of January 2024, 0-based.
    pub(in crate::store) fn jan(d: i64) -> Timestamp {
        time::parse_time_arg("2024-01-01").unwrap() + chrono::TimeDelta::days(d)
    }

    pub(in crate::store) fn now() -> Timestamp {
        time::parse_time_arg("2024-02-01").unwrap()
    }

    /// A temporary archive holding one complete, sealed window fetch per day in `days` (0-based days of
    /// January 2024), each with `per_day` events at 10:00, 10:01, ...
    pub(in crate::store) fn archive(days: &[i64], per_day: i64) -> (tempfile::TempDir, Archive) {
        use crate::model::{Event, Filters, Item, PageBatch, RunKind, WindowSpec};
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(&dir.path().join("a.db"), now()).unwrap();
        let run = archive
            .begin_run(
                &super::super::write::RunStart {
                    range: Interval::new(jan(0), jan(31)),
                    filters: Filters::default(),
                    base_url: "http://127.0.0.1/v1".into(),
                    windows_planned: days.len(),
                    kind: RunKind::Sync,
                    lookback: None,
                },
                now(),
            )
            .unwrap();
        let mut ledger = std::collections::HashMap::new();
        for (seq, &d) in days.iter().enumerate() {
            let items = (0..per_day)
                .map(|i| {
                    let id = 1000 * d + i;
                    let raw = format!(r#"{{"id":{id}}}"#);
                    Item::Event(Event {
                        id,
                        timestamp: time::to_stored(jan(d) + chrono::TimeDelta::minutes(600 + i)),
                        category: "authentication".into(),
                        action: "user-login-success".into(),
                        description: None,
                        username: Some("bob".into()),
                        ip_address: None,
                        digest: crate::digest::sha256_hex(raw.as_bytes()),
                        leaf: None,
                        raw,
                        out_of_window: false,
                    })
                })
                .collect();
            let window = std::sync::Arc::new(WindowSpec {
                interval: Interval::new(jan(d), jan(d + 1)),
                filters: Filters::default(),
                created_from: jan(d),
                created_to: jan(d + 1),
            });
            let page = PageBatch {
                window_seq: seq,
                window,
                page: 1,
                items,
                last: true,
                deleted_at_source: Vec::new(),
            };
            archive
                .commit_pages(
                    run,
                    &[page],
                    &mut ledger,
                    now(),
                    crate::store::write::SearchIndexing::Now,
                )
                .unwrap();
        }
        (dir, archive)
    }

    #[test]
    fn holds_are_placed_listed_and_lifted() {
        let (_dir, mut archive) = archive(&[], 0);
        let first = archive
            .add_hold(Interval::new(jan(1), jan(2)), "case 42", now())
            .unwrap();
        let second = archive
            .add_hold(Interval::new(jan(5), jan(6)), "case 43", now())
            .unwrap();
        assert_eq!(
            first,
            Hold {
                id: first.id,
                from: "2024-01-02T00:00:00.000Z".into(),
                to: "2024-01-03T00:00:00.000Z".into(),
                reason: "case 42".into(),
                created_at: "2024-02-01T00:00:00.000Z".into(),
                removed_at: None,
            }
        );
        let later = now() + chrono::TimeDelta::hours(1);
        let lifted = archive.remove_hold(first.id, later).unwrap().unwrap();
        assert_eq!(
            lifted.removed_at.as_deref(),
            Some("2024-02-01T01:00:00.000Z")
        );
        let cases = [
            ("lifting a lifted hold", first.id),
            ("lifting a hold that never was", 99),
        ];
        for (name, id) in cases {
            assert_eq!(archive.remove_hold(id, later).unwrap(), None, "{name}");
        }
        let ids = |include_removed| -> Vec<i64> {
            holds(&archive.conn, include_removed)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect()
        };
        assert_eq!(ids(false), vec![second.id], "active only");
        assert_eq!(ids(true), vec![first.id, second.id], "all, oldest first");
        assert_eq!(holds(&archive.conn, true).unwrap()[0], lifted);
    }

    #[test]
    fn a_prune_keeps_held_windows_and_its_plan_is_what_it_does() {
        let (_dir, mut archive) = archive(&[0, 1, 2, 3], 3);
        archive
            .add_hold(
                Interval::new(
                    jan(1) + chrono::TimeDelta::hours(10),
                    jan(1) + chrono::TimeDelta::hours(11),
                ),
                "case",
                now(),
            )
            .unwrap();
        let planned = plan_prune(&archive.conn, jan(3)).unwrap();
        let done = archive.prune(jan(3), now()).unwrap();
        for plan in [&planned, &done] {
            let windows: Vec<(String, i64, i64)> = plan
                .windows
                .iter()
                .map(|w| (w.from[..10].to_string(), w.events, w.kept))
                .collect();
            assert_eq!(
                windows,
                vec![("2024-01-01".into(), 3, 0), ("2024-01-03".into(), 3, 0)]
            );
            assert_eq!(plan.kept, BTreeMap::from([(KeptBecause::Held, 1)]));
            assert_eq!(plan.events, 6);
        }
        assert_eq!((planned.prune_id, done.prune_id), (None, Some(1)));
        let left: i64 = archive
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 6, "the held day and the day after the cutoff stay");
        assert_eq!(
            pruned_ranges(&archive.conn).unwrap(),
            vec![Interval::new(jan(0), jan(1)), Interval::new(jan(2), jan(3))]
        );
        let again = archive.prune(jan(3), now()).unwrap();
        assert!(again.windows.is_empty() && again.prune_id.is_none());
    }

    #[test]
    fn pruned_ranges_merge_every_prune_and_skip_records_that_do_not_parse() {
        let (_dir, mut archive) = archive(&[0, 1, 2, 4], 1);
        assert_eq!(pruned_ranges(&archive.conn).unwrap(), vec![]);
        archive.prune(jan(1), now()).unwrap();
        archive.prune(jan(3), now()).unwrap();
        let records = [
            "not json",
            r#"[["2024-01-05T00:00:00.000Z","2024-01-04T00:00:00.000Z"]]"#,
            r#"[["yesterday","2024-01-04T00:00:00.000Z"]]"#,
            r#"[["2024-01-10T00:00:00.000Z","2024-01-11T00:00:00.000Z"]]"#,
        ];
        for ranges in records {
            archive
                .conn
                .execute(
                    "INSERT INTO prunes (pruned_at, cutoff, windows, events, revisions, rejects, ranges)
                     VALUES ('2024-02-01T00:00:00.000Z', '2024-01-12T00:00:00.000Z', 0, 0, 0, 0, ?1)",
                    [ranges],
                )
                .unwrap();
        }
        assert_eq!(
            pruned_ranges(&archive.conn).unwrap(),
            vec![
                Interval::new(jan(0), jan(3)),
                Interval::new(jan(9), jan(10))
            ]
        );
        let recorded: Vec<(i64, i64)> = prunes(&archive.conn)
            .unwrap()
            .iter()
            .map(|p| (p.id, p.events))
            .collect();
        assert_eq!(
            recorded,
            vec![(1, 1), (2, 2), (3, 0), (4, 0), (5, 0), (6, 0)]
        );
    }

    #[test]
    fn assembling_skips_windows_pruned_before_with_nothing_left() {
        let counts = |in_ranges, revisions, rejects, source_changes| RowCounts {
            events: 10,
            events_in_ranges: in_ranges,
            revisions,
            source_changes,
            reject_ids: (0..rejects).collect(),
        };
        let cases = [
            (
                "pruned before, nothing left",
                true,
                counts(0, 0, 0, 0),
                false,
            ),
            ("pruned before, events left", true, counts(1, 0, 0, 0), true),
            (
                "pruned before, revisions left",
                true,
                counts(0, 1, 0, 0),
                true,
            ),
            (
                "pruned before, rejects left",
                true,
                counts(0, 0, 1, 0),
                true,
            ),
            (
                "pruned before, changes left",
                true,
                counts(0, 0, 0, 1),
                true,
            ),
            (
                "first prune, nothing in range",
                false,
                counts(0, 0, 0, 0),
                true,
            ),
        ];
        for (name, pruned_before, c, listed) in cases {
            let w = WindowFetch {
                pruned_before,
                ..fetch(7, 0, 24)
            };
            let decision = PruneDecision {
                pruned: vec![w],
                kept: vec![],
                ranges: vec![iv(0, 24)],
                swept: vec![iv(0, 24)],
            };
            let plan = assemble_plan("cutoff".into(), decision, vec![], vec![c.clone()]);
            assert_eq!(plan.windows.len(), usize::from(listed), "{name}");
            assert_eq!(plan.ranges.len(), 1, "{name}: ranges stay");
            // A neighbour is listed only when it loses something, pruned before or not.
            let decision = PruneDecision {
                swept: vec![iv(0, 24)],
                ..PruneDecision::default()
            };
            let w = WindowFetch {
                pruned_before,
                ..fetch(8, 24, 48)
            };
            let plan = assemble_plan("cutoff".into(), decision, vec![w], vec![c.clone()]);
            let loses =
                c.events_in_ranges + c.revisions + c.source_changes > 0 || !c.reject_ids.is_empty();
            assert_eq!(
                plan.windows.len(),
                usize::from(loses),
                "{name}: as a neighbour"
            );
            assert!(plan.windows.iter().all(|w| !w.whole), "{name}");
        }
    }

    #[test]
    fn assembling_sums_the_windows_and_counts_what_is_left() {
        let decision = PruneDecision {
            pruned: vec![fetch(1, 0, 24), fetch(2, 24, 48)],
            kept: vec![Kept {
                window_id: 3,
                because: KeptBecause::Held,
                pruned_before: false,
            }],
            ranges: vec![iv(0, 48)],
            swept: vec![iv(0, 48)],
        };
        let counts = vec![
            RowCounts {
                events: 5,
                events_in_ranges: 4,
                revisions: 2,
                source_changes: 0,
                reject_ids: (0..1).collect(),
            },
            RowCounts {
                events: 3,
                events_in_ranges: 3,
                revisions: 0,
                source_changes: 1,
                reject_ids: (0..2).collect(),
            },
            RowCounts {
                events: 9,
                events_in_ranges: 1,
                revisions: 1,
                source_changes: 0,
                reject_ids: (0..0).collect(),
            },
        ];
        let neighbour = vec![fetch(0, 48, 72)];
        let plan = assemble_plan(time::to_stored(t(48)), decision, neighbour, counts);
        assert_eq!((plan.events, plan.revisions, plan.rejects), (8, 3, 3));
        let windows: Vec<(i64, i64, i64, bool)> = plan
            .windows
            .iter()
            .map(|w| (w.window_id, w.events, w.kept, w.whole))
            .collect();
        assert_eq!(
            windows,
            vec![(0, 1, 8, false), (1, 4, 1, true), (2, 3, 0, true)],
            "by id, the neighbour not whole"
        );
        assert_eq!(plan.swept.len(), plan.ranges.len());
        assert_eq!(plan.windows[2].seal_hash, "hash2");
        assert_eq!(plan.ranges[0].from, time::to_stored(t(0)));
        assert_eq!(plan.ranges[0].to, time::to_stored(t(48)));
        assert_eq!(plan.kept, BTreeMap::from([(KeptBecause::Held, 1)]));
        assert_eq!((plan.prune_id, plan.chain_head), (None, None));
    }

    #[test]
    fn a_reject_goes_by_its_timestamp_if_it_has_one() {
        let swept = [iv(0, 24)];
        for (raw, goes) in [
            (r#"{"timestamp":"1970-01-01T10:00:00Z"}"#, true),
            (r#"{"timestamp":"1970-01-02T00:00:00Z"}"#, false),
            (r#"{"timestamp":"1970-01-02T05:00:00+0600"}"#, true),
            (r#"{"timestamp":"yesterday"}"#, true),
            (r#"{"id":7}"#, true),
            ("not json", true),
            ("[1,2]", true),
        ] {
            assert_eq!(reject_goes(raw, &swept), goes, "{raw}");
        }
    }

    #[test]
    fn kept_windows_are_counted_by_reason() {
        let k = |because, pruned_before| Kept {
            window_id: 1,
            because,
            pruned_before,
        };
        use KeptBecause::Held;
        let cases = [
            ("none", vec![], vec![]),
            (
                "held",
                vec![k(Held, false), k(Held, false)],
                vec![(Held, 2)],
            ),
            (
                "held, pruned before: not counted",
                vec![k(Held, true)],
                vec![],
            ),
        ];
        for (name, kept, want) in cases {
            assert_eq!(count_kept(&kept), BTreeMap::from_iter(want), "{name}");
        }
    }
}
