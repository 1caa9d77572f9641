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
    if !has_log(conn)? {
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

/// One kind of row recorded without its leaf in the log: what, how many, the first ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlogged {
    /// The leaf kind the rows lack.
    pub kind: LeafKind,
    /// How many rows.
    pub count: i64,
    /// The first of them (at most 20), by id.
    pub ids: Vec<i64>,
}

/// Every row that must have a leaf and has none: each table the log covers, its rows against their leaves
/// (events, revisions, rejects, window and prune seals, runs, holds placed and lifted). Rows are logged in
/// the transaction that writes them, so a row without its leaf was written behind the archive's back, or its
/// leaf was cut from the log. Empty for an archive without a log yet.
pub fn unlogged_rows(conn: &Connection) -> rusqlite::Result<Vec<Unlogged>> {
    if !has_log(conn)? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let (count, ids) = crate::store::tlog::unlogged_events(conn)?;
    if count > 0 {
        out.push(Unlogged {
            kind: LeafKind::Event,
            count,
            ids,
        });
    }
    for (kind, rows) in [
        (LeafKind::Revision, "SELECT id FROM event_revisions"),
        (LeafKind::Reject, "SELECT id FROM rejects"),
        (
            LeafKind::WindowSeal,
            "SELECT id FROM seals WHERE window_id IS NOT NULL",
        ),
        (
            LeafKind::PruneSeal,
            "SELECT id FROM seals WHERE prune_id IS NOT NULL",
        ),
        (LeafKind::Run, "SELECT id FROM runs"),
        (LeafKind::Hold, "SELECT id FROM holds"),
        (
            LeafKind::HoldLifted,
            "SELECT id FROM holds WHERE removed_at IS NOT NULL",
        ),
    ] {
        let missing = format!("{rows} EXCEPT SELECT ref FROM tlog_leaves WHERE kind = '{kind}'");
        let count: i64 = conn.query_row(&format!("SELECT count(*) FROM ({missing})"), [], |r| {
            r.get(0)
        })?;
        if count > 0 {
            let ids = conn
                .prepare(&format!("{missing} ORDER BY 1 LIMIT 20"))?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            out.push(Unlogged { kind, count, ids });
        }
    }
    Ok(out)
}

/// Whether the archive has a Merkle log (built by the first writing command of a version that keeps one).
fn has_log(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tlog_leaves')",
        [],
        |r| r.get(0),
    )
}

/// [`unlogged_rows`] as findings: a hold recorded as lifted without its lifting logged was lifted behind the
/// archive's back; any other row, inserted.
fn unlogged(conn: &Connection) -> rusqlite::Result<Vec<Finding>> {
    Ok(unlogged_rows(conn)?
        .into_iter()
        .map(|u| {
            let (kind, detail) = match u.kind {
                LeafKind::HoldLifted => (
                    FindingKind::Ledger,
                    format!(
                        "{} hold(s) recorded as lifted, but no lifting was logged: lifted behind the archive's back",
                        u.count
                    ),
                ),
                kind => (
                    FindingKind::Inserted,
                    format!(
                        "{} row(s) recorded without their {kind} leaf in the log: inserted behind the archive's \
                         back, or their leaves cut",
                        u.count
                    ),
                ),
            };
            Finding::new(kind, None, u.ids, detail)
        })
        .collect())
}
