//! Retention: legal holds and `prune`.
//!
//! `prune --before T` removes window fetches that ended at or before `T`, in one transaction with a record of
//! what was removed (`prunes`, `pruned_windows`) sealed into the chain. The pruned ranges are the union of
//! those windows' ranges, less anything held and anything still fetched by windows that are kept. Every row
//! the pruned fetches filed is removed (events, revisions, rejects, reconciliation records), except events
//! whose timestamps lie outside the pruned ranges: a server reading `createdTo` inclusively returns an event
//! exactly on a window's end with that window, and it belongs to the next, retained range. Those stay, still
//! under their seal, and go with a later prune that reaches them. Ledger rows stay, so coverage stays whole,
//! and the pruned ranges are never fetched again.
//!
//! Never pruned: window fetches overlapping an active hold, events inside one, and (so no revision loses its
//! event) window fetches whose events have revisions in a kept window. Each window fetch is checked against
//! its seal and digests first (one an earlier prune took rows from, against what that prune recorded):
//! pruning tampered rows would bury the evidence. The record keeps, per window fetch, its ledger line and the
//! lines of the events left under it, hashed into the prune's seal: what a prune leaves, and the ledger row of
//! a pruned window, are then vouched for by the chain, not by the window's seal members alone.
//!
//! The plan is computed read-only ([`plan_prune`]), so `--dry-run` shows exactly what a prune would do. It is
//! "load, then decide": one read of what planning needs into plain structs ([`PruneInputs`]: active holds,
//! the ranges that block pruning, the window fetches that ended by the cutoff with their seals, the revision
//! links between window fetches), a pure decision ([`decide_prune`]: which window fetches go, which are kept
//! and why, the ranges pruned), a count of each pruned window fetch's rows ([`RowCounts`]), and a pure
//! assembly of the [`PrunePlan`] ([`assemble_plan`]).

use super::seal::{self, SealFormat};
use super::{Archive, SqlContext, StoreError, read::Range};
use crate::model::{Interval, WindowStatus, merge_intervals, subtract_all};
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
    /// A kept window holds a revision of one of its events.
    RevisionKept,
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
        self.conn
            .execute(
                "INSERT INTO holds (range_from, range_to, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    time::to_stored(range.start),
                    time::to_stored(range.end),
                    reason,
                    now
                ],
            )
            .context(|| "cannot record the hold".into())?;
        let id = self.conn.last_insert_rowid();
        Ok(holds(&self.conn, true)?
            .into_iter()
            .find(|h| h.id == id)
            .expect("the hold was just inserted"))
    }

    /// Lifts hold `id`; its row stays, with the time it was lifted. `None` if there is no active hold `id`.
    pub fn remove_hold(&mut self, id: i64, now: Timestamp) -> Result<Option<Hold>, StoreError> {
        let now = time::to_stored(now);
        let changed = self
            .conn
            .execute(
                "UPDATE holds SET removed_at = ?2 WHERE id = ?1 AND removed_at IS NULL",
                params![id, now],
            )
            .context(|| format!("cannot lift hold {id}"))?;
        if changed == 0 {
            return Ok(None);
        }
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

/// Appends to the Merkle log one removal leaf per row the plan removes (the removed rows' leaves stay).
fn log_removals(conn: &Connection, plan: &PrunePlan, prune_id: i64) -> Result<(), StoreError> {
    let ranges: Vec<(String, String)> = plan
        .ranges
        .iter()
        .map(|r| (r.from.clone(), r.to.clone()))
        .collect();
    let mut log = super::tlog::LogAppender::load(conn)?;
    for w in &plan.windows {
        for (leaf, kind, row) in super::tlog::leaves_of_pruned_rows(conn, w.window_id, &ranges)? {
            log.append_removal(leaf, kind, row, prune_id);
        }
        log.flush(conn)?;
    }
    Ok(())
}

/// Removes what the plan's window fetches filed: every revision first (a revision in one pruned window fetch
/// may be of an event in another), then each one's events inside the pruned ranges (and their search entries),
/// its rejects and its source changes.
fn remove_rows(conn: &Connection, plan: &PrunePlan) -> Result<(), StoreError> {
    for w in &plan.windows {
        conn.prepare_cached("DELETE FROM event_revisions WHERE window_id = ?1")
            .and_then(|mut s| s.execute([w.window_id]))
            .context(prune_ctx)?;
    }
    let indexed: i64 = conn
        .query_row(
            "SELECT indexed_window_id FROM search_state WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .context(prune_ctx)?;
    for w in &plan.windows {
        remove_events(conn, w.window_id, &plan.ranges, w.window_id <= indexed)?;
        for table in ["rejects", "source_changes"] {
            conn.prepare_cached(&format!("DELETE FROM {table} WHERE window_id = ?1"))
                .and_then(|mut s| s.execute([w.window_id]))
                .context(prune_ctx)?;
        }
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

/// A window fetch that ended at or before the cutoff (not running, sealed), as planning reads it.
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

/// A revision filed under one window fetch of an event filed under another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionLink {
    /// The window fetch the revision is filed under.
    pub revision_window: i64,
    /// The window fetch its event is filed under.
    pub event_window: i64,
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
    /// Revisions filed under another window fetch than their event's.
    pub links: Vec<RevisionLink>,
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

/// What a prune decides from its [`PruneInputs`]: which window fetches lose rows, which are kept and why, and
/// the ranges whose events go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneDecision {
    /// The window fetches rows are removed from, by id.
    pub pruned: Vec<WindowFetch>,
    /// The window fetches kept, held ones first (by id), then those kept for a revision, as found.
    pub kept: Vec<Kept>,
    /// The ranges pruned: the pruned window fetches' ranges less everything blocked, merged.
    pub ranges: Vec<Interval>,
}

/// What a pruned window fetch holds, counted against the pruned ranges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Events filed under it.
    pub events: i64,
    /// Of those, events inside the pruned ranges (removed).
    pub events_in_ranges: i64,
    /// Revisions filed under it.
    pub revisions: i64,
    /// Rejects filed under it.
    pub rejects: i64,
    /// Source changes filed under it.
    pub source_changes: i64,
}

/// What a prune at `cutoff` removes, and which window fetches it keeps and why. Read-only: loads, decides,
/// counts, then assembles.
pub fn plan_prune(conn: &Connection, cutoff: Timestamp) -> Result<PrunePlan, StoreError> {
    let cutoff = time::to_stored(cutoff);
    let decision = decide_prune(load_prune_inputs(conn, &cutoff)?);
    let counts = count_rows(conn, &decision)?;
    Ok(assemble_plan(cutoff, decision, counts))
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
    let links = conn
        .prepare(
            "SELECT DISTINCT r.window_id, e.window_id FROM event_revisions r JOIN events e ON e.id = r.event_id
             WHERE r.window_id <> e.window_id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(RevisionLink {
                    revision_window: r.get(0)?,
                    event_window: r.get(1)?,
                })
            })?
            .collect()
        })
        .context(plan_ctx)?;
    Ok(PruneInputs {
        holds: intervals(holds),
        blocking: intervals(blocking),
        fetches: fetches_ended_by(conn, cutoff)?,
        links,
    })
}

/// The sealed window fetches, not running, that ended at or before `cutoff` (stored form), by id.
fn fetches_ended_by(conn: &Connection, cutoff: &str) -> Result<Vec<WindowFetch>, StoreError> {
    type Row = (i64, String, String, String, String, bool, SealFormat);
    let rows: Vec<Row> = conn
        .prepare(
            "SELECT w.id, w.window_start, w.window_end, s.hash, s.content,
                    EXISTS (SELECT 1 FROM pruned_windows p WHERE p.window_id = w.id), s.format
             FROM windows w JOIN seals s ON s.window_id = w.id
             WHERE w.status <> ?2 AND w.window_end <= ?1
             ORDER BY w.id",
        )
        .and_then(|mut s| {
            s.query_map(params![cutoff, WindowStatus::Running], |r| {
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

/// Decides a prune: a window fetch overlapping an active hold is kept (and blocks its whole range); so is one
/// whose events have revisions in a window fetch that is not pruned, transitively ([`keep_revised`]). The
/// ranges pruned are the rest's ranges, less the holds, the blocking window fetches and the kept ones.
pub fn decide_prune(inputs: PruneInputs) -> PruneDecision {
    let held = merge_intervals(inputs.holds);
    let mut blocked = held.clone();
    blocked.extend(inputs.blocking);
    let mut kept = Vec::new();
    let mut candidates = BTreeMap::new();
    for fetch in inputs.fetches {
        if held.iter().any(|h| h.overlaps(&fetch.interval)) {
            blocked.push(fetch.interval);
            kept.push(Kept {
                window_id: fetch.id,
                because: KeptBecause::Held,
                pruned_before: fetch.pruned_before,
            });
        } else {
            candidates.insert(fetch.id, fetch);
        }
    }
    for fetch in keep_revised(&mut candidates, &inputs.links) {
        blocked.push(fetch.interval);
        kept.push(Kept {
            window_id: fetch.id,
            because: KeptBecause::RevisionKept,
            pruned_before: fetch.pruned_before,
        });
    }
    let blocked = merge_intervals(blocked);
    let ranges = merge_intervals(subtract_all(
        merge_intervals(candidates.values().map(|c| c.interval).collect()),
        &blocked,
    ));
    PruneDecision {
        pruned: candidates.into_values().collect(),
        kept,
        ranges,
    }
}

/// Takes out of `candidates` every window fetch holding an event that has a revision in a window fetch that
/// is not a candidate (so no revision loses its event), until nothing changes; returns what it took, in the
/// order taken (by id within a round).
pub fn keep_revised(
    candidates: &mut BTreeMap<i64, WindowFetch>,
    links: &[RevisionLink],
) -> Vec<WindowFetch> {
    let mut taken = Vec::new();
    loop {
        let dropped: BTreeSet<i64> = links
            .iter()
            .filter(|l| {
                !candidates.contains_key(&l.revision_window)
                    && candidates.contains_key(&l.event_window)
            })
            .map(|l| l.event_window)
            .collect();
        if dropped.is_empty() {
            return taken;
        }
        taken.extend(dropped.iter().filter_map(|id| candidates.remove(id)));
    }
}

/// Counts, for each window fetch the decision prunes, its rows and the events inside the pruned ranges.
fn count_rows(conn: &Connection, decision: &PruneDecision) -> Result<Vec<RowCounts>, StoreError> {
    let mut counts = Vec::with_capacity(decision.pruned.len());
    for w in &decision.pruned {
        let mut c: RowCounts = conn
            .query_row(
                "SELECT (SELECT count(*) FROM events WHERE window_id = ?1),
                        (SELECT count(*) FROM event_revisions WHERE window_id = ?1),
                        (SELECT count(*) FROM rejects WHERE window_id = ?1),
                        (SELECT count(*) FROM source_changes WHERE window_id = ?1)",
                [w.id],
                |r| {
                    Ok(RowCounts {
                        events: r.get(0)?,
                        events_in_ranges: 0,
                        revisions: r.get(1)?,
                        rejects: r.get(2)?,
                        source_changes: r.get(3)?,
                    })
                },
            )
            .context(plan_ctx)?;
        for r in &decision.ranges {
            c.events_in_ranges += conn
                .prepare_cached(
                    "SELECT count(*) FROM events WHERE window_id = ?1 AND timestamp >= ?2 AND timestamp < ?3",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![w.id, time::to_stored(r.start), time::to_stored(r.end)],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .context(plan_ctx)?;
        }
        counts.push(c);
    }
    Ok(counts)
}

/// Builds the plan from the decision and each pruned window fetch's [`RowCounts`] (same order). A window fetch
/// an earlier prune already took rows from, with nothing left to remove, is left out.
pub fn assemble_plan(cutoff: String, decision: PruneDecision, counts: Vec<RowCounts>) -> PrunePlan {
    let windows: Vec<PrunedWindow> = decision
        .pruned
        .into_iter()
        .zip(counts)
        .filter(|(w, c)| {
            !w.pruned_before || c.events_in_ranges + c.revisions + c.rejects + c.source_changes > 0
        })
        .map(|(w, c)| PrunedWindow {
            window_id: w.id,
            from: w.from,
            to: w.to,
            events: c.events_in_ranges,
            revisions: c.revisions,
            rejects: c.rejects,
            kept: c.events - c.events_in_ranges,
            seal_hash: w.seal_hash,
            seal_content: w.seal_content,
            seal_format: w.seal_format,
            pruned_before: w.pruned_before,
        })
        .collect();
    PrunePlan {
        cutoff,
        events: windows.iter().map(|w| w.events).sum(),
        revisions: windows.iter().map(|w| w.revisions).sum(),
        rejects: windows.iter().map(|w| w.rejects).sum(),
        ranges: decision.ranges.iter().map(Range::from).collect(),
        windows,
        kept: count_kept(&decision.kept),
        prune_id: None,
        chain_head: None,
    }
}

/// Counts the kept window fetches by reason. A held one an earlier prune already took rows from is not
/// counted; one kept for a revision is counted either way (what `prune` has always reported).
pub fn count_kept(kept: &[Kept]) -> BTreeMap<KeptBecause, u64> {
    let mut counts = BTreeMap::new();
    for k in kept {
        if k.because == KeptBecause::Held && k.pruned_before {
            continue;
        }
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
mod tests {
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

    fn link(revision_window: i64, event_window: i64) -> RevisionLink {
        RevisionLink {
            revision_window,
            event_window,
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
            let d = decide_prune(inputs);
            assert_eq!(ids(&d.pruned), pruned, "{name}: pruned");
            let got: Vec<(i64, KeptBecause)> =
                d.kept.iter().map(|k| (k.window_id, k.because)).collect();
            assert_eq!(got, kept, "{name}: kept");
            assert_eq!(d.ranges, ranges, "{name}: ranges");
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
    fn revisions_keep_windows_and_ranges_merge() {
        use KeptBecause::{Held, RevisionKept};
        check_decisions(vec![
            (
                "a revision in a kept window keeps its event's window, transitively",
                PruneInputs {
                    holds: vec![iv(50, 51)],
                    fetches: vec![day(1, 0), day(2, 1), day(3, 2), day(4, 3)],
                    links: vec![link(3, 2), link(2, 1), link(4, 1)],
                    ..PruneInputs::default()
                },
                vec![4],
                vec![(3, Held), (2, RevisionKept), (1, RevisionKept)],
                vec![iv(72, 96)],
            ),
            (
                "a revision after the cutoff keeps its event's window",
                PruneInputs {
                    fetches: vec![day(1, 0), day(2, 1)],
                    links: vec![link(9, 2)],
                    ..PruneInputs::default()
                },
                vec![1],
                vec![(2, RevisionKept)],
                vec![iv(0, 24)],
            ),
            (
                "ranges are merged, refetches included",
                PruneInputs {
                    fetches: vec![day(1, 0), day(2, 1), fetch(3, 12, 36), day(4, 3)],
                    links: vec![link(1, 2)],
                    ..PruneInputs::default()
                },
                vec![1, 2, 3, 4],
                vec![],
                vec![iv(0, 48), iv(72, 96)],
            ),
        ]);
    }

    /// Day `d` of January 2024, 0-based.
    fn jan(d: i64) -> Timestamp {
        time::parse_time_arg("2024-01-01").unwrap() + chrono::TimeDelta::days(d)
    }

    fn now() -> Timestamp {
        time::parse_time_arg("2024-02-01").unwrap()
    }

    /// A temporary archive holding one complete, sealed window fetch per day in `days` (0-based days of
    /// January 2024), each with `per_day` events at 10:00, 10:01, ...
    fn archive(days: &[i64], per_day: i64) -> (tempfile::TempDir, Archive) {
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
                .commit_pages(run, &[page], &mut ledger, now())
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
    fn revisions_keep_their_events_until_nothing_changes() {
        let cases: Vec<(&str, Vec<RevisionLink>, Vec<i64>)> = vec![
            ("no links", vec![], vec![]),
            ("between candidates", vec![link(1, 2), link(2, 3)], vec![]),
            ("from a kept window", vec![link(9, 2)], vec![2]),
            ("into a kept window", vec![link(2, 9)], vec![]),
            (
                "a chain",
                vec![link(2, 3), link(9, 1), link(1, 2)],
                vec![1, 2, 3],
            ),
            (
                "a cycle",
                vec![link(2, 3), link(3, 2), link(9, 3)],
                vec![3, 2],
            ),
        ];
        for (name, links, want) in cases {
            let mut candidates: BTreeMap<i64, WindowFetch> =
                (1..=3).map(|id| (id, fetch(id, 0, 24))).collect();
            let taken = keep_revised(&mut candidates, &links);
            assert_eq!(ids(&taken), want, "{name}");
            assert!(
                taken.iter().all(|f| !candidates.contains_key(&f.id)),
                "{name}"
            );
            assert_eq!(candidates.len() + taken.len(), 3, "{name}");
        }
    }

    #[test]
    fn assembling_skips_windows_pruned_before_with_nothing_left() {
        let counts = |in_ranges, revisions, rejects, source_changes| RowCounts {
            events: 10,
            events_in_ranges: in_ranges,
            revisions,
            rejects,
            source_changes,
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
            };
            let plan = assemble_plan("cutoff".into(), decision, vec![c]);
            assert_eq!(plan.windows.len(), usize::from(listed), "{name}");
            assert_eq!(plan.ranges.len(), 1, "{name}: ranges stay");
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
        };
        let counts = vec![
            RowCounts {
                events: 5,
                events_in_ranges: 4,
                revisions: 2,
                rejects: 1,
                source_changes: 0,
            },
            RowCounts {
                events: 3,
                events_in_ranges: 3,
                revisions: 0,
                rejects: 2,
                source_changes: 1,
            },
        ];
        let plan = assemble_plan(time::to_stored(t(48)), decision, counts);
        assert_eq!((plan.events, plan.revisions, plan.rejects), (7, 2, 3));
        let windows: Vec<(i64, i64, i64)> = plan
            .windows
            .iter()
            .map(|w| (w.window_id, w.events, w.kept))
            .collect();
        assert_eq!(windows, vec![(1, 4, 1), (2, 3, 0)]);
        assert_eq!(plan.windows[1].seal_hash, "hash2");
        assert_eq!(plan.ranges[0].from, time::to_stored(t(0)));
        assert_eq!(plan.ranges[0].to, time::to_stored(t(48)));
        assert_eq!(plan.kept, BTreeMap::from([(KeptBecause::Held, 1)]));
        assert_eq!((plan.prune_id, plan.chain_head), (None, None));
    }

    #[test]
    fn kept_windows_are_counted_by_reason() {
        let k = |because, pruned_before| Kept {
            window_id: 1,
            because,
            pruned_before,
        };
        use KeptBecause::{Held, RevisionKept};
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
            (
                "kept for a revision, pruned before: counted",
                vec![
                    k(RevisionKept, true),
                    k(RevisionKept, false),
                    k(Held, false),
                ],
                vec![(Held, 1), (RevisionKept, 2)],
            ),
        ];
        for (name, kept, want) in cases {
            assert_eq!(count_kept(&kept), BTreeMap::from_iter(want), "{name}");
        }
    }
}
