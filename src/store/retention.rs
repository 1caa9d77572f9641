//! Retention: legal holds and `prune`.
//!
//! `prune --before T` removes whole window fetches that ended at or before `T`: their events, revisions,
//! rejects and reconciliation records, in one transaction with a record of what was removed (`prunes`,
//! `pruned_windows`) sealed into the chain. Ledger rows stay, so coverage stays whole, and the pruned ranges
//! are never fetched again. A window fetch is kept, whole, when:
//! - it overlaps an active hold, or any event it inserted lies inside one;
//! - an event it inserted lies at or after the cutoff (the server sent it outside the window);
//! - a kept window holds a revision of one of its events (the revision would lose its event).
//!
//! The plan is computed read-only ([`plan_prune`]), so `--dry-run` shows exactly what a prune would do.

use super::{SqlContext, Store, StoreError, read::Range, seal};
use crate::model::{Interval, merge_intervals};
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

/// One window fetch a prune empties.
#[derive(Debug, Clone, Serialize)]
pub struct PrunedWindow {
    /// The ledger row.
    pub window_id: i64,
    /// Its range.
    pub from: String,
    /// Its end.
    pub to: String,
    /// Events it inserted.
    pub events: i64,
    /// Revisions it inserted.
    pub revisions: i64,
    /// Rejects it kept.
    pub rejects: i64,
    /// The hash of its seal.
    #[serde(skip)]
    pub seal_hash: String,
    /// The content its seal vouches for.
    #[serde(skip)]
    pub seal_content: String,
}

/// Why a window fetch before the cutoff is kept.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum KeptBecause {
    /// It overlaps an active hold.
    Held,
    /// It inserted an event at or after the cutoff.
    EventAfterCutoff,
    /// A kept window holds a revision of one of its events.
    RevisionKept,
}

/// What a prune removes (or removed).
#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    /// The cutoff (stored form).
    pub cutoff: String,
    /// Window fetches emptied, by id.
    pub windows: Vec<PrunedWindow>,
    /// The merged ranges emptied.
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

impl Store {
    /// The ranges emptied by prunes (see [`pruned_ranges`]).
    pub fn pruned_ranges(&self) -> Result<Vec<Interval>, StoreError> {
        pruned_ranges(&self.conn)
    }

    /// Places a hold on `[from, to)`.
    pub fn add_hold(&mut self, range: Interval, reason: &str) -> Result<Hold, StoreError> {
        let now = time::to_stored(chrono::Utc::now());
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
    pub fn remove_hold(&mut self, id: i64) -> Result<Option<Hold>, StoreError> {
        let now = time::to_stored(chrono::Utc::now());
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

    /// Prunes what [`plan_prune`] selects for `cutoff`, in one transaction, and seals the record of it.
    pub fn prune(&mut self, cutoff: Timestamp) -> Result<PrunePlan, StoreError> {
        let ctx = || "cannot prune the archive".to_string();
        // Removed rows are overwritten, not left readable in free pages.
        self.conn
            .execute_batch("PRAGMA secure_delete = ON")
            .context(ctx)?;
        let now = time::to_stored(chrono::Utc::now());
        let tx = self.begin()?;
        let mut plan = plan_prune(&tx, cutoff)?;
        if plan.windows.is_empty() {
            return Ok(plan);
        }
        // What is removed must be what was sealed: pruning a tampered window would bury the evidence.
        for w in &plan.windows {
            let now = seal::window_content(&tx, w.window_id).context(ctx)?;
            if now.content != w.seal_content {
                return Err(StoreError::SealMismatch {
                    window_id: w.window_id,
                });
            }
        }
        let first = plan.ranges.first().map(|r| r.from.clone());
        let last = plan.ranges.last().map(|r| r.to.clone());
        tx.execute(
            "INSERT INTO prunes (pruned_at, cutoff, windows, events, revisions, rejects, range_start, range_end)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                now,
                plan.cutoff,
                plan.windows.len() as i64,
                plan.events,
                plan.revisions,
                plan.rejects,
                first,
                last
            ],
        )
        .context(ctx)?;
        let prune_id = tx.last_insert_rowid();
        let indexed: i64 = tx
            .query_row(
                "SELECT indexed_window_id FROM search_state WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .context(ctx)?;
        // Revisions first: a revision in one emptied window may be of an event in another.
        for w in &plan.windows {
            tx.prepare_cached("DELETE FROM event_revisions WHERE window_id = ?1")
                .and_then(|mut s| s.execute([w.window_id]))
                .context(ctx)?;
        }
        for w in &plan.windows {
            if w.window_id <= indexed {
                tx.prepare_cached(
                    "INSERT INTO events_fts (events_fts, rowid, description, username)
                     SELECT 'delete', id, description, username FROM events WHERE window_id = ?1",
                )
                .and_then(|mut s| s.execute([w.window_id]))
                .context(ctx)?;
            }
            for table in ["events", "rejects", "source_changes"] {
                tx.prepare_cached(&format!("DELETE FROM {table} WHERE window_id = ?1"))
                    .and_then(|mut s| s.execute([w.window_id]))
                    .context(ctx)?;
            }
            tx.prepare_cached(
                "INSERT INTO pruned_windows (window_id, prune_id, seal_hash, events, revisions, rejects)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    w.window_id,
                    prune_id,
                    w.seal_hash,
                    w.events,
                    w.revisions,
                    w.rejects
                ])
            })
            .context(ctx)?;
        }
        // Merge the index's segments so the removed words are gone from it too, not only marked deleted.
        tx.execute(
            "INSERT INTO events_fts (events_fts) VALUES ('optimize')",
            [],
        )
        .context(ctx)?;
        let head = seal::seal_prune(&tx, prune_id, &now)?;
        tx.commit().context(ctx)?;
        plan.prune_id = Some(prune_id);
        plan.chain_head = Some(head);
        Ok(plan)
    }
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

/// The ranges emptied by prunes: merged ranges of the pruned window fetches.
pub fn pruned_ranges(conn: &Connection) -> Result<Vec<Interval>, StoreError> {
    let rows: Vec<(String, String)> = conn
        .prepare(
            "SELECT w.window_start, w.window_end FROM pruned_windows p JOIN windows w ON w.id = p.window_id",
        )
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .context(|| "cannot read the pruned ranges".into())?;
    Ok(merge_intervals(
        rows.iter()
            .filter_map(|(a, b)| Some(Interval::new(time::from_stored(a)?, time::from_stored(b)?)))
            .filter(|i| i.start <= i.end)
            .collect(),
    ))
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
                    events: r.get(5)?,
                })
            })?
            .collect()
        })
        .context(|| "cannot read the prunes".into())
}

/// Which window fetches a prune at `cutoff` empties, and which it keeps and why. Read-only.
pub fn plan_prune(conn: &Connection, cutoff: Timestamp) -> Result<PrunePlan, StoreError> {
    let ctx = || "cannot plan the prune".to_string();
    let cutoff_text = time::to_stored(cutoff);
    let holds: Vec<(String, String)> = holds(conn, false)?
        .into_iter()
        .map(|h| (h.from, h.to))
        .collect();
    let overlaps_hold = |from: &str, to: &str| {
        holds
            .iter()
            .any(|(hf, ht)| from < ht.as_str() && hf.as_str() < to)
    };
    // Ended, sealed, not yet pruned window fetches that end at or before the cutoff.
    let mut stmt = conn
        .prepare(
            "SELECT w.id, w.window_start, w.window_end, s.hash, s.content,
                    (SELECT count(*) FROM events e WHERE e.window_id = w.id),
                    (SELECT min(timestamp) FROM events e WHERE e.window_id = w.id),
                    (SELECT max(timestamp) FROM events e WHERE e.window_id = w.id),
                    (SELECT count(*) FROM event_revisions r WHERE r.window_id = w.id),
                    (SELECT count(*) FROM rejects j WHERE j.window_id = w.id)
             FROM windows w JOIN seals s ON s.window_id = w.id
             LEFT JOIN pruned_windows p ON p.window_id = w.id
             WHERE p.window_id IS NULL AND w.status <> 'running' AND w.window_end <= ?1
             ORDER BY w.id",
        )
        .context(ctx)?;
    let mut rows = stmt.query([&cutoff_text]).context(ctx)?;
    let mut candidates: BTreeMap<i64, PrunedWindow> = BTreeMap::new();
    let mut kept: BTreeMap<KeptBecause, u64> = BTreeMap::new();
    while let Some(r) = rows.next().context(ctx)? {
        let w = PrunedWindow {
            window_id: r.get(0).context(ctx)?,
            from: r.get(1).context(ctx)?,
            to: r.get(2).context(ctx)?,
            seal_hash: r.get(3).context(ctx)?,
            seal_content: r.get(4).context(ctx)?,
            events: r.get(5).context(ctx)?,
            revisions: r.get(8).context(ctx)?,
            rejects: r.get(9).context(ctx)?,
        };
        let first: Option<String> = r.get(6).context(ctx)?;
        let last: Option<String> = r.get(7).context(ctx)?;
        // Held: the window's range overlaps a hold, or the span of its events does (closed at both ends).
        let events_held = match (&first, &last) {
            (Some(first), Some(last)) => holds
                .iter()
                .any(|(hf, ht)| first.as_str() < ht.as_str() && hf.as_str() <= last.as_str()),
            _ => false,
        };
        let reason = if overlaps_hold(&w.from, &w.to) || events_held {
            Some(KeptBecause::Held)
        } else if last.as_deref().is_some_and(|l| l >= cutoff_text.as_str()) {
            Some(KeptBecause::EventAfterCutoff)
        } else {
            None
        };
        match reason {
            Some(reason) => *kept.entry(reason).or_default() += 1,
            None => {
                candidates.insert(w.window_id, w);
            }
        }
    }
    drop(rows);
    drop(stmt);

    // A revision in a kept window must keep its event: keep that event's window too, until nothing changes.
    let links: Vec<(i64, i64)> = conn
        .prepare(
            "SELECT DISTINCT r.window_id, e.window_id FROM event_revisions r JOIN events e ON e.id = r.event_id
             WHERE r.window_id <> e.window_id",
        )
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .context(ctx)?;
    loop {
        let dropped: BTreeSet<i64> = links
            .iter()
            .filter(|(rev_window, event_window)| {
                !candidates.contains_key(rev_window) && candidates.contains_key(event_window)
            })
            .map(|(_, event_window)| *event_window)
            .collect();
        if dropped.is_empty() {
            break;
        }
        for id in dropped {
            candidates.remove(&id);
            *kept.entry(KeptBecause::RevisionKept).or_default() += 1;
        }
    }

    let windows: Vec<PrunedWindow> = candidates.into_values().collect();
    let ranges = merge_intervals(
        windows
            .iter()
            .filter_map(|w| {
                Some(Interval::new(
                    time::from_stored(&w.from)?,
                    time::from_stored(&w.to)?,
                ))
            })
            .collect(),
    );
    Ok(PrunePlan {
        cutoff: cutoff_text,
        events: windows.iter().map(|w| w.events).sum(),
        revisions: windows.iter().map(|w| w.revisions).sum(),
        rejects: windows.iter().map(|w| w.rejects).sum(),
        ranges: ranges.iter().map(Range::from).collect(),
        windows,
        kept,
        prune_id: None,
        chain_head: None,
    })
}
