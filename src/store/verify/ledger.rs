//! The ledger rows outside the seals, checked against their leaves in the Merkle log: each run's intent (what
//! it was asked to fetch, from which source: coverage and `not yet fetched` are judged against it) and each
//! hold (placed, lifted). A row edited, deleted, inserted without its leaf, or a hold lifted without its
//! lifting logged, is named. Read one leaf at a time; there are as many as runs and holds.

use super::Finding;
use crate::model::{FindingKind, LeafKind};
use crate::store::tlog::{ChunkReader, ledger_payload_sql};
use crate::tlog::leaf_hash;
use rusqlite::Connection;

/// What a ledger leaf stands for, in words.
fn what(kind: LeafKind, id: i64) -> String {
    match kind {
        LeafKind::Run => format!("run {id} (what it was asked to fetch: range, filters, source)"),
        LeafKind::Hold => format!("hold {id} (its range and reason)"),
        _ => format!("the lifting of hold {id}"),
    }
}

/// The findings: every run and hold row against its leaf. None for an archive without a log yet (a writing
/// command builds it).
pub(super) fn check_logged_ledger(conn: &Connection) -> rusqlite::Result<Vec<Finding>> {
    let has_log: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tlog_leaves')",
        [],
        |r| r.get(0),
    )?;
    if !has_log {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let hashes = ChunkReader::new(conn);
    let arms: String = [LeafKind::Run, LeafKind::Hold, LeafKind::HoldLifted]
        .iter()
        .map(|k| {
            format!(
                "WHEN '{k}' THEN {}",
                ledger_payload_sql(*k, "l.ref").expect("ledger")
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut stmt = conn.prepare(&format!(
        "SELECT l.idx, l.kind, l.ref, CASE l.kind {arms} END FROM tlog_leaves l
         WHERE l.kind IN ('run', 'hold', 'hold-lifted') ORDER BY l.idx"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (idx, kind, id): (i64, LeafKind, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let payload: Option<String> = r.get(3)?;
        let stored = hashes
            .hash(tlog_tiles::stored_hash_index(0, idx as u64))
            .ok();
        let finding = match payload {
            None if kind == LeafKind::HoldLifted => Finding::new(
                FindingKind::Ledger,
                None,
                [id],
                format!("hold {id} was lifted (logged), but is no longer recorded as lifted"),
            ),
            None => Finding::new(
                FindingKind::Deleted,
                None,
                [id],
                format!("{} is gone", what(kind, id)),
            ),
            Some(p) if Some(leaf_hash(kind, id, p.as_bytes())) != stored => Finding::new(
                FindingKind::Ledger,
                None,
                [id],
                format!("{} changed since it was logged", what(kind, id)),
            ),
            Some(_) => continue,
        };
        out.push(finding);
    }
    out.extend(unlogged(conn)?);
    Ok(out)
}

/// Runs and holds recorded without their leaf, and holds recorded as lifted without their lifting logged.
fn unlogged(conn: &Connection) -> rusqlite::Result<Vec<Finding>> {
    let mut out = Vec::new();
    for (sql, detail) in [
        (
            "SELECT id FROM runs WHERE id NOT IN (SELECT ref FROM tlog_leaves WHERE kind = 'run') ORDER BY id",
            "run(s) recorded without their intent in the log: inserted",
        ),
        (
            "SELECT id FROM holds WHERE id NOT IN (SELECT ref FROM tlog_leaves WHERE kind = 'hold') ORDER BY id",
            "hold(s) recorded without their placing in the log: inserted",
        ),
        (
            "SELECT id FROM holds WHERE removed_at IS NOT NULL
               AND id NOT IN (SELECT ref FROM tlog_leaves WHERE kind = 'hold-lifted') ORDER BY id",
            "hold(s) recorded as lifted, but no lifting was logged: a hold lifted behind the archive's back",
        ),
    ] {
        let ids: Vec<i64> = conn
            .prepare(sql)?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if !ids.is_empty() {
            let kind = if detail.contains("lifted") {
                FindingKind::Ledger
            } else {
                FindingKind::Inserted
            };
            out.push(Finding::new(kind, None, ids, detail));
        }
    }
    Ok(out)
}
