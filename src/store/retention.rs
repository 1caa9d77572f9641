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
//! its seal and digests first: pruning tampered rows would bury the evidence.
//!
//! The plan is computed read-only ([`plan_prune`]), so `--dry-run` shows exactly what a prune would do.

use super::{Archive, SqlContext, StoreError, read::Range, seal};
use crate::model::{Interval, WindowStatus, merge_intervals, subtract};
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

    /// Prunes what [`plan_prune`] selects for `cutoff`, in one transaction, and seals the record of it.
    pub fn prune(&mut self, cutoff: Timestamp, now: Timestamp) -> Result<PrunePlan, StoreError> {
        let ctx = || "cannot prune the archive".to_string();
        // Removed rows are overwritten, not left readable in free pages.
        self.conn
            .execute_batch("PRAGMA secure_delete = ON")
            .context(ctx)?;
        let now = time::to_stored(now);
        let tx = self.begin()?;
        let mut plan = plan_prune(&tx, cutoff)?;
        if plan.windows.is_empty() {
            return Ok(plan);
        }
        // What is removed must be what was sealed: pruning a tampered window would bury the evidence.
        for w in &plan.windows {
            let sealed = w.pruned_before
                || seal::window_content(&tx, w.window_id).context(ctx)?.content == w.seal_content;
            if !sealed || !digests_hold(&tx, w.window_id).context(ctx)? {
                return Err(StoreError::SealMismatch {
                    window_id: w.window_id,
                });
            }
        }
        let ranges_json = serde_json::to_string(
            &plan
                .ranges
                .iter()
                .map(|r| [r.from.as_str(), r.to.as_str()])
                .collect::<Vec<_>>(),
        )
        .expect("ranges serialise");
        tx.execute(
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
        .context(ctx)?;
        let prune_id = tx.last_insert_rowid();
        let indexed: i64 = tx
            .query_row(
                "SELECT indexed_window_id FROM search_state WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .context(ctx)?;
        // Revisions first: a revision in one pruned window may be of an event in another.
        for w in &plan.windows {
            tx.prepare_cached("DELETE FROM event_revisions WHERE window_id = ?1")
                .and_then(|mut s| s.execute([w.window_id]))
                .context(ctx)?;
        }
        for w in &plan.windows {
            for r in &plan.ranges {
                let bounds = params![w.window_id, r.from, r.to];
                if w.window_id <= indexed {
                    tx.prepare_cached(
                        "INSERT INTO events_fts (events_fts, rowid, description, username)
                         SELECT 'delete', id, description, username FROM events
                         WHERE window_id = ?1 AND timestamp >= ?2 AND timestamp < ?3",
                    )
                    .and_then(|mut s| s.execute(bounds))
                    .context(ctx)?;
                }
                tx.prepare_cached(
                    "DELETE FROM events WHERE window_id = ?1 AND timestamp >= ?2 AND timestamp < ?3",
                )
                .and_then(|mut s| s.execute(bounds))
                .context(ctx)?;
            }
            for table in ["rejects", "source_changes"] {
                tx.prepare_cached(&format!("DELETE FROM {table} WHERE window_id = ?1"))
                    .and_then(|mut s| s.execute([w.window_id]))
                    .context(ctx)?;
            }
            tx.prepare_cached(
                "INSERT INTO pruned_windows (prune_id, window_id, seal_hash, events, revisions, rejects, kept)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    prune_id,
                    w.window_id,
                    w.seal_hash,
                    w.events,
                    w.revisions,
                    w.rejects,
                    w.kept
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

/// A window fetch that ended before the cutoff, as the plan sees it.
struct Candidate {
    window: PrunedWindow,
    interval: Interval,
    pruned_before: bool,
}

/// What a prune at `cutoff` removes, and which window fetches it keeps and why. Read-only.
pub fn plan_prune(conn: &Connection, cutoff: Timestamp) -> Result<PrunePlan, StoreError> {
    let ctx = || "cannot plan the prune".to_string();
    let cutoff_text = time::to_stored(cutoff);
    let interval = |a: &str, b: &str| {
        let (a, b) = (time::from_stored(a)?, time::from_stored(b)?);
        (a <= b).then(|| Interval::new(a, b))
    };
    // Never pruned: active holds, and whatever window fetches that are kept were responsible for.
    let held: Vec<Interval> = merge_intervals(
        holds(conn, false)?
            .iter()
            .filter_map(|h| interval(&h.from, &h.to))
            .collect(),
    );
    let mut blocked = held.clone();
    let others: Vec<(String, String)> = conn
        .prepare(
            "SELECT window_start, window_end FROM windows
             WHERE status = ?2 OR (window_end > ?1 AND window_start < ?1)",
        )
        .and_then(|mut s| {
            s.query_map(params![&cutoff_text, WindowStatus::Running], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })
        .context(ctx)?;
    blocked.extend(others.iter().filter_map(|(a, b)| interval(a, b)));

    let mut kept: BTreeMap<KeptBecause, u64> = BTreeMap::new();
    let mut candidates: BTreeMap<i64, Candidate> = BTreeMap::new();
    let rows: Vec<(i64, String, String, String, String, bool)> = conn
        .prepare(
            "SELECT w.id, w.window_start, w.window_end, s.hash, s.content,
                    EXISTS (SELECT 1 FROM pruned_windows p WHERE p.window_id = w.id)
             FROM windows w JOIN seals s ON s.window_id = w.id
             WHERE w.status <> ?2 AND w.window_end <= ?1
             ORDER BY w.id",
        )
        .and_then(|mut s| {
            s.query_map(params![&cutoff_text, WindowStatus::Running], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect()
        })
        .context(ctx)?;
    for (id, from, to, seal_hash, seal_content, pruned_before) in rows {
        let Some(range) = interval(&from, &to) else {
            continue;
        };
        if held
            .iter()
            .any(|h| h.start < range.end && range.start < h.end)
        {
            blocked.push(range);
            if !pruned_before {
                *kept.entry(KeptBecause::Held).or_default() += 1;
            }
            continue;
        }
        candidates.insert(
            id,
            Candidate {
                window: PrunedWindow {
                    window_id: id,
                    from,
                    to,
                    events: 0,
                    revisions: 0,
                    rejects: 0,
                    kept: 0,
                    seal_hash,
                    seal_content,
                    pruned_before,
                },
                interval: range,
                pruned_before,
            },
        );
    }

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
            if let Some(c) = candidates.remove(&id) {
                blocked.push(c.interval);
                *kept.entry(KeptBecause::RevisionKept).or_default() += 1;
            }
        }
    }

    let blocked = merge_intervals(blocked);
    let ranges: Vec<Interval> = merge_intervals(
        merge_intervals(candidates.values().map(|c| c.interval).collect())
            .into_iter()
            .flat_map(|r| subtract(r, &blocked))
            .collect(),
    );
    let mut windows = Vec::new();
    for mut c in candidates.into_values() {
        let w = &mut c.window;
        let (total, revisions, rejects, changes): (i64, i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM events WHERE window_id = ?1),
                        (SELECT count(*) FROM event_revisions WHERE window_id = ?1),
                        (SELECT count(*) FROM rejects WHERE window_id = ?1),
                        (SELECT count(*) FROM source_changes WHERE window_id = ?1)",
                [w.window_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .context(ctx)?;
        let mut removed = 0;
        for r in &ranges {
            removed += conn
                .prepare_cached(
                    "SELECT count(*) FROM events WHERE window_id = ?1 AND timestamp >= ?2 AND timestamp < ?3",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![w.window_id, time::to_stored(r.start), time::to_stored(r.end)],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .context(ctx)?;
        }
        if c.pruned_before && removed + revisions + rejects + changes == 0 {
            continue;
        }
        (w.events, w.revisions, w.rejects, w.kept) = (removed, revisions, rejects, total - removed);
        windows.push(c.window);
    }
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
