//! `verify`: is the archive intact and complete?
//!
//! Checks, on a read-only connection: SQLite's `integrity_check`; every event's and revision's digest against
//! its `raw`; the seal chain (each seal links to the one before, each hash recomputes, each window's content
//! recomputes from the rows, and each seal's members match the ids and digests now filed under its window);
//! that every ended window fetch has a seal and every event belongs to a sealed (or still running) one; an
//! external anchor, if given, is in the chain; and coverage gaps. Window fetches a prune removed rows from are
//! checked against the prune's sealed record instead (what is left must be what the prune kept), and every
//! prune record must be sealed. Findings name the window and the ids.

use super::seal::{self, GENESIS, WindowContent, chain_hash, decode_members, window_content};
use super::{SqlContext, StoreError, read, retention};
use crate::model::{FindingKind, WindowStatus, gaps_between};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Most ids named per finding.
const IDS_SHOWN: usize = 20;

/// One thing found wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// What kind: damaged, edited, deleted, inserted, ledger, chain, unsealed, anchor.
    pub kind: FindingKind,
    /// The window fetch concerned, if any.
    pub window_id: Option<i64>,
    /// The event ids concerned (at most [`IDS_SHOWN`]).
    pub ids: Vec<i64>,
    /// What it means, in words.
    pub detail: String,
}

/// Everything `verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The chain head (hash of the newest seal).
    pub head: String,
    /// Seals checked.
    pub seals: u64,
    /// Events whose digest was recomputed.
    pub events: u64,
    /// Where the anchor was found (seal id), if one was given and found.
    pub anchor_found_at: Option<i64>,
    /// Window fetches still running (a sync in progress, or a backup taken during one): not yet sealed.
    pub windows_in_progress: u64,
    /// Gaps between covered ranges (unfiltered coverage of the latest sync's source). Informational: what
    /// matters is whether what was asked for is fetched (`unfetched`).
    pub gaps: Vec<read::Range>,
    /// Ranges some sync was asked to fetch that are neither covered nor pruned: not yet fetched (the next
    /// plain `sync` fetches them). Not tampering, but the archive is not complete until they are filled.
    pub unfetched: Vec<super::coverage::MissingRange>,
    /// Ranges emptied by `prune` (covered, sealed, and deliberately removed: not gaps).
    pub pruned: Vec<read::Range>,
    /// The prunes, oldest first.
    pub prunes: Vec<retention::PruneRecord>,
    /// Tampering or damage found.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// Whether the archive is intact: no tampering, no damage.
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// Whether everything asked for is fetched.
    pub fn complete(&self) -> bool {
        self.unfetched.is_empty()
    }

    /// Whether everything holds: intact and complete.
    pub fn ok(&self) -> bool {
        self.intact() && self.complete()
    }
}

/// Verifies the archive behind `conn`.
pub fn verify(conn: &Connection, anchor: Option<&str>) -> Result<VerifyReport, StoreError> {
    let ctx = || "cannot verify the archive".to_string();
    let mut findings = Vec::new();

    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .context(ctx)?;
    if integrity.first().map(String::as_str) != Some("ok") {
        findings.push(Finding {
            kind: FindingKind::Damaged,
            window_id: None,
            ids: Vec::new(),
            detail: format!("SQLite's integrity check failed: {}", integrity.join("; ")),
        });
    }

    // Digests: every row's content against the digest recorded when it was archived.
    let mut edited: BTreeMap<Option<i64>, Vec<i64>> = BTreeMap::new();
    let mut events = 0u64;
    for (table, id_col) in [("events", "id"), ("event_revisions", "event_id")] {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {id_col}, window_id, raw, digest FROM {table}"
            ))
            .context(ctx)?;
        let mut rows = stmt.query([]).context(ctx)?;
        while let Some(r) = rows.next().context(ctx)? {
            let (id, window, raw, digest): (i64, Option<i64>, String, Option<String>) = (
                r.get(0).context(ctx)?,
                r.get(1).context(ctx)?,
                r.get(2).context(ctx)?,
                r.get(3).context(ctx)?,
            );
            events += u64::from(table == "events");
            if digest.as_deref() != Some(crate::digest::sha256_hex(raw.as_bytes()).as_str()) {
                edited.entry(window).or_default().push(id);
            }
        }
    }
    for (window_id, ids) in edited {
        findings.push(Finding {
            kind: FindingKind::Edited,
            window_id,
            detail: format!(
                "{} archived item(s) no longer match the digest recorded when they were archived",
                ids.len()
            ),
            ids: ids.into_iter().take(IDS_SHOWN).collect(),
        });
    }

    // Window fetches `prune` removed rows from: window id -> its prune records, oldest first.
    let mut pruned: HashMap<i64, Vec<PrunedRow>> = HashMap::new();
    let rows: Vec<(i64, PrunedRow)> = conn
        .prepare(
            "SELECT window_id, prune_id, seal_hash, events, revisions, kept FROM pruned_windows
             ORDER BY prune_id, window_id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    PrunedRow {
                        prune_id: r.get(1)?,
                        seal_hash: r.get(2)?,
                        events: r.get(3)?,
                        revisions: r.get(4)?,
                        kept: r.get(5)?,
                    },
                ))
            })?
            .collect()
        })
        .context(ctx)?;
    for (window_id, row) in rows {
        pruned.entry(window_id).or_default().push(row);
    }
    let pruned_ranges = retention::pruned_ranges(conn)?;
    let mut sealed_prunes = HashSet::new();

    // The chain.
    let mut previous = GENESIS.to_string();
    let mut seals = 0u64;
    let mut anchor_found_at = None;
    let mut stmt = conn
        .prepare(
            "SELECT id, window_id, prune_id, members, content, previous, hash, events, revisions
             FROM seals ORDER BY id",
        )
        .context(ctx)?;
    let mut rows = stmt.query([]).context(ctx)?;
    while let Some(r) = rows.next().context(ctx)? {
        let (seal_id, window_id, prune_id, members, content, prev, hash): (
            i64,
            Option<i64>,
            Option<i64>,
            Vec<u8>,
            String,
            String,
            String,
        ) = (
            r.get(0).context(ctx)?,
            r.get(1).context(ctx)?,
            r.get(2).context(ctx)?,
            r.get(3).context(ctx)?,
            r.get(4).context(ctx)?,
            r.get(5).context(ctx)?,
            r.get(6).context(ctx)?,
        );
        let sealed_counts: (i64, i64) = (r.get(7).context(ctx)?, r.get(8).context(ctx)?);
        seals += 1;
        if prev != previous {
            findings.push(Finding {
                kind: FindingKind::Chain,
                window_id,
                ids: Vec::new(),
                detail: format!("seal {seal_id} does not follow the seal before it: a seal was removed or reordered"),
            });
        }
        if chain_hash(&prev, &content) != hash {
            findings.push(Finding {
                kind: FindingKind::Chain,
                window_id,
                ids: Vec::new(),
                detail: format!(
                    "seal {seal_id}'s hash does not match its content: the seal was edited"
                ),
            });
        }
        if anchor == Some(hash.as_str()) {
            anchor_found_at = Some(seal_id);
        }
        previous = hash.clone();
        let window_id = match (window_id, prune_id) {
            (Some(window_id), _) => window_id,
            (None, Some(prune_id)) => {
                sealed_prunes.insert(prune_id);
                findings.extend(check_prune(conn, prune_id, &content).context(ctx)?);
                continue;
            }
            (None, None) => {
                findings.push(Finding {
                    kind: FindingKind::Chain,
                    window_id: None,
                    ids: Vec::new(),
                    detail: format!("seal {seal_id} seals nothing: the seal was edited"),
                });
                continue;
            }
        };
        if let Some(records) = pruned.get(&window_id) {
            let removed: i64 = records.iter().map(|p| p.events).sum();
            let kept = records.last().map_or(0, |p| p.kept);
            if records.iter().any(|p| p.seal_hash != hash)
                || (removed + kept, records.iter().map(|p| p.revisions).sum()) != sealed_counts
            {
                findings.push(Finding {
                    kind: FindingKind::Ledger,
                    window_id: Some(window_id),
                    ids: Vec::new(),
                    detail: format!(
                        "prune {} records this window's rows as removed, but not as its seal describes them",
                        records.last().map_or(0, |p| p.prune_id)
                    ),
                });
            }
            findings.extend(
                check_pruned_window(conn, window_id, &members, kept, &pruned_ranges)
                    .context(ctx)?,
            );
            continue;
        }
        match window_content(conn, window_id) {
            Ok(now) if now.content == content => {}
            Ok(now) => findings.extend(explain_change(window_id, &members, &now)),
            Err(rusqlite::Error::QueryReturnedNoRows) => findings.push(Finding {
                kind: FindingKind::Ledger,
                window_id: Some(window_id),
                ids: decode_members(&members)
                    .iter()
                    .take(IDS_SHOWN)
                    .map(|m| m.0)
                    .collect(),
                detail: "the ledger row of this sealed window was deleted".into(),
            }),
            Err(e) => return Err(e).context(ctx),
        }
    }

    // Every prune record is sealed: a forged "pruned" record would otherwise hide a deletion.
    let mut forged: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (window_id, records) in &pruned {
        for p in records {
            if !sealed_prunes.contains(&p.prune_id) {
                forged.entry(p.prune_id).or_default().push(*window_id);
            }
        }
    }
    for (prune_id, windows) in forged {
        findings.push(Finding {
            kind: FindingKind::Unsealed,
            window_id: windows.iter().min().copied(),
            ids: Vec::new(),
            detail: format!(
                "{} window fetch(es) are recorded as removed by prune {prune_id}, which has no seal: \
                 the prune record was forged or its seal deleted",
                windows.len()
            ),
        });
    }

    // Every ended window fetch is sealed; every event belongs to a sealed or running fetch.
    let unsealed = seal::unsealed_windows(conn).context(ctx)?;
    for window_id in unsealed {
        findings.push(Finding {
            kind: FindingKind::Unsealed,
            window_id: Some(window_id),
            ids: Vec::new(),
            detail: "this window fetch ended but has no seal: its seal was deleted".into(),
        });
    }
    let orphans: Vec<(i64, i64)> = conn
        .prepare(
            "SELECT e.id, e.window_id FROM events e
             LEFT JOIN seals s ON s.window_id = e.window_id LEFT JOIN windows w ON w.id = e.window_id
             WHERE s.id IS NULL AND (w.id IS NULL OR w.status <> ?1) ORDER BY e.id",
        )
        .and_then(|mut s| {
            s.query_map([WindowStatus::Running], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .context(ctx)?;
    if !orphans.is_empty() {
        findings.push(Finding {
            kind: FindingKind::Inserted,
            window_id: None,
            detail: format!(
                "{} event(s) belong to no sealed window fetch: inserted after sealing",
                orphans.len()
            ),
            ids: orphans.iter().take(IDS_SHOWN).map(|o| o.0).collect(),
        });
    }
    let windows_in_progress: i64 = conn
        .query_row(
            "SELECT count(*) FROM windows WHERE status = ?1",
            [WindowStatus::Running],
            |r| r.get(0),
        )
        .context(ctx)?;

    if let Some(anchor) = anchor
        && anchor_found_at.is_none()
    {
        findings.push(Finding {
            kind: FindingKind::Anchor,
            window_id: None,
            ids: Vec::new(),
            detail: format!("the anchor {anchor} is not in the chain: the chain was rewritten or cut short since it was taken"),
        });
    }
    let covered = super::coverage::primary_covered(conn)?;
    Ok(VerifyReport {
        pruned: pruned_ranges.iter().map(read::Range::from).collect(),
        prunes: retention::prunes(conn)?,
        head: previous,
        seals,
        events,
        anchor_found_at,
        windows_in_progress: windows_in_progress as u64,
        gaps: gaps_between(&covered)
            .iter()
            .map(read::Range::from)
            .collect(),
        unfetched: super::coverage::missing(
            &super::coverage::ledger_windows(conn)?,
            &super::coverage::intents(conn)?,
            &pruned_ranges,
        ),
        findings,
    })
}

/// Names what changed in a sealed window: members deleted, inserted or edited, or else its ledger row,
/// revisions or rejects.
fn explain_change(window_id: i64, sealed: &[u8], now: &WindowContent) -> Vec<Finding> {
    let before: BTreeMap<i64, [u8; 8]> = decode_members(sealed).into_iter().collect();
    let after: BTreeMap<i64, [u8; 8]> = decode_members(&now.members).into_iter().collect();
    let deleted: Vec<i64> = before
        .keys()
        .filter(|id| !after.contains_key(id))
        .copied()
        .collect();
    let inserted: Vec<i64> = after
        .keys()
        .filter(|id| !before.contains_key(id))
        .copied()
        .collect();
    let edited: Vec<i64> = before
        .iter()
        .filter(|(id, p)| after.get(id).is_some_and(|q| q != *p))
        .map(|(id, _)| *id)
        .collect();
    let mut out = Vec::new();
    for (kind, ids, what) in [
        (
            FindingKind::Deleted,
            deleted,
            "event(s) sealed in this window are gone",
        ),
        (
            FindingKind::Inserted,
            inserted,
            "event(s) were filed under this window after it was sealed",
        ),
        (
            FindingKind::Edited,
            edited,
            "event(s) of this window changed, digest included",
        ),
    ] {
        if !ids.is_empty() {
            out.push(Finding {
                kind,
                window_id: Some(window_id),
                detail: format!("{} {what}", ids.len()),
                ids: ids.into_iter().take(IDS_SHOWN).collect(),
            });
        }
    }
    if out.is_empty() {
        out.push(Finding {
            kind: FindingKind::Ledger,
            window_id: Some(window_id),
            ids: Vec::new(),
            detail: "the window's ledger row, revisions or rejects changed after it was sealed"
                .into(),
        });
    }
    out
}

/// Checks a prune's seal against its record.
fn check_prune(
    conn: &Connection,
    prune_id: i64,
    sealed: &str,
) -> rusqlite::Result<Option<Finding>> {
    let detail = match seal::prune_content(conn, prune_id) {
        Ok(now) if now == sealed => return Ok(None),
        Ok(_) => format!("the record of prune {prune_id} changed after it was sealed"),
        Err(rusqlite::Error::QueryReturnedNoRows) => {
            format!("the record of prune {prune_id} was deleted")
        }
        Err(e) => return Err(e),
    };
    Ok(Some(Finding {
        kind: FindingKind::Ledger,
        window_id: None,
        ids: Vec::new(),
        detail,
    }))
}

/// A prune's record of one window fetch.
struct PrunedRow {
    prune_id: i64,
    seal_hash: String,
    events: i64,
    revisions: i64,
    kept: i64,
}

/// Checks what is left under a window fetch that prunes removed rows from: exactly the sealed events the last
/// prune kept, unchanged, none inside a pruned range, and no other rows.
fn check_pruned_window(
    conn: &Connection,
    window_id: i64,
    sealed: &[u8],
    kept: i64,
    pruned_ranges: &[crate::model::Interval],
) -> rusqlite::Result<Vec<Finding>> {
    let members: HashMap<i64, [u8; 8]> = decode_members(sealed).into_iter().collect();
    let mut inserted = Vec::new();
    let mut edited = Vec::new();
    let mut inside = Vec::new();
    let mut left = 0i64;
    let mut stmt = conn.prepare_cached(
        "SELECT id, digest, timestamp FROM events WHERE window_id = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([window_id])?;
    while let Some(r) = rows.next()? {
        let (id, digest, ts): (i64, Option<String>, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        left += 1;
        match members.get(&id) {
            None => inserted.push(id),
            Some(prefix) if *prefix != seal::digest_prefix(digest.as_deref().unwrap_or("")) => {
                edited.push(id)
            }
            Some(_) => {}
        }
        if crate::time::from_stored(&ts)
            .is_some_and(|t| pruned_ranges.iter().any(|p| p.start <= t && t < p.end))
        {
            inside.push(id);
        }
    }
    let others: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM event_revisions WHERE window_id = ?1)
              + (SELECT count(*) FROM rejects WHERE window_id = ?1)
              + (SELECT count(*) FROM source_changes WHERE window_id = ?1)",
        [window_id],
        |r| r.get(0),
    )?;
    let mut out = Vec::new();
    let mut finding = |kind: FindingKind, ids: Vec<i64>, detail: String| {
        out.push(Finding {
            kind,
            window_id: Some(window_id),
            ids: ids.into_iter().take(IDS_SHOWN).collect(),
            detail,
        })
    };
    if !inserted.is_empty() || others > 0 {
        finding(
            FindingKind::Inserted,
            inserted.clone(),
            format!(
                "{} event(s) and {others} other row(s) were filed under this window after it was pruned",
                inserted.len()
            ),
        );
    }
    if !edited.is_empty() {
        finding(
            FindingKind::Edited,
            edited,
            "event(s) the prune left in this window changed, digest included".into(),
        );
    }
    if !inside.is_empty() {
        finding(
            FindingKind::Ledger,
            inside,
            "event(s) of this window lie inside a pruned range: the prune record was altered"
                .into(),
        );
    }
    let sealed_left = left - inserted.len() as i64;
    if sealed_left < kept {
        finding(
            FindingKind::Deleted,
            Vec::new(),
            format!(
                "{} event(s) the prune left in this window are gone",
                kept - sealed_left
            ),
        );
    }
    Ok(out)
}

/// The chain head of an archive, for summaries.
pub fn head(conn: &Connection) -> Result<String, StoreError> {
    seal::head(conn).context(|| "cannot read the chain head".into())
}
