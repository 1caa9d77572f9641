//! `verify --checkpoint`: the Merkle log against checkpoints. One pass in leaf order recomputes every leaf from
//! its row ([`crate::tlog::leaf_data`]) and every stored hash from the leaves (a [`Frontier`]: memory O(log
//! n)), compares them with what is stored, and takes the root at each checkpoint's size. Then it decides:
//! a row changed or gone since it was logged, a log shorter than a checkpoint or inconsistent with it, is
//! tampering; what was appended after the newest checkpoint signed by a trusted key is the *unsigned tail*,
//! reported by kind (its prunes named).
//!
//! A pruned row's leaf is taken from the stored hashes, vouched for by the removal leaf that names it.

use super::super::tlog::{ChunkReader, MAX_RUN, decode_run, log_size, origin};
use super::super::{SqlContext, StoreError};
use crate::model::LeafKind;
use crate::tlog::note::hash_b64;
use crate::tlog::{Frontier, Hash, leaf_hash, removal_payload};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::collections::BTreeMap;

/// A checkpoint the log is checked against.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Where it came from (`--checkpoint FILE`, `stored checkpoint 3`).
    pub label: String,
    /// Its tree size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// Signed by a trusted key.
    pub trusted: bool,
    /// The prunes it says it was signed over though made without the key (its extension line).
    pub unsigned_prunes: Vec<i64>,
}

/// How a checkpoint fared.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClaimResult {
    /// Where it came from.
    pub label: String,
    /// Its tree size.
    pub size: u64,
    /// Signed by a trusted key.
    pub trusted: bool,
    /// The log holds it: as long, and the same root at its size.
    pub holds: bool,
}

/// What the log check found wrong, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFindingKind {
    /// A logged row no longer gives the leaf it was logged with.
    Edited,
    /// A logged row is gone and no prune removed it.
    Deleted,
    /// Stored hashes differ from the tree the leaves make (the rows hold).
    StoredHashes,
    /// The log is shorter than a checkpoint.
    Shorter,
    /// The log's root at a checkpoint's size is not the checkpoint's.
    Inconsistent,
    /// A checkpoint names another log.
    Origin,
    /// A stored checkpoint is damaged, or carries a signature by a trusted key's name that does not verify.
    Signature,
    /// Rows with no leaf in the log: written behind the archive's back, or their leaves cut from the log.
    Unlogged,
}

/// One thing the log check found wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogFinding {
    /// What kind.
    pub kind: LogFindingKind,
    /// In words, naming the leaf, row or checkpoint.
    pub detail: String,
}

/// What was appended after the newest checkpoint a trusted key signed (and the log holds).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UnsignedTail {
    /// First leaf of the tail (the trusted checkpoint's size).
    pub from: u64,
    /// The log's size.
    pub to: u64,
    /// Leaves by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// The prunes whose seals are in the tail.
    pub prunes: Vec<i64>,
}

/// The log check's report.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    /// The archive's origin line.
    pub origin: String,
    /// Leaves in the log.
    pub size: u64,
    /// The root recomputed from the rows, base64.
    pub root: String,
    /// Each checkpoint checked.
    pub checkpoints: Vec<ClaimResult>,
    /// What is wrong (empty: the log holds).
    pub findings: Vec<LogFinding>,
    /// What no trusted checkpoint covers yet (None: the whole log is covered).
    pub unsigned_tail: Option<UnsignedTail>,
    /// Prunes made without the signing key that trusted checkpoints were signed over (each says so): not
    /// hidden by the signature; as unsigned as a tail.
    pub signed_over_unsigned_prunes: Vec<i64>,
}

impl LogReport {
    /// Whether the log holds (no tampering found).
    pub fn holds(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One leaf as loaded: its row's payload if the row is there.
struct LoadedLeaf {
    idx: u64,
    kind: LeafKind,
    reference: i64,
    prune_id: Option<i64>,
    payload: Option<Vec<u8>>,
}

/// Where a leaf's hash comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum LeafSource {
    /// Recomputed from its row (or, for a removal, from the leaf it names).
    Row,
    /// The row was pruned: the stored hash, vouched for by the removal.
    Pruned,
    /// The row is gone and no prune removed it.
    Deleted,
}

/// Decides where a leaf's hash comes from: its row if present, else the stored hash if a prune removed it.
pub fn leaf_source(has_payload: bool, removed: bool) -> LeafSource {
    match (has_payload, removed) {
        (true, _) => LeafSource::Row,
        (false, true) => LeafSource::Pruned,
        (false, false) => LeafSource::Deleted,
    }
}

/// Checks the log against `claims`; `origins` holds each claim's origin by label (checked against ours).
/// `rows_counted`: the full `verify` beside this pass counts the rows without a leaf, so this pass does not.
pub fn check_log(
    conn: &Connection,
    claims: &[Claim],
    origins: &[(String, String)],
    rows_counted: bool,
) -> Result<LogReport, StoreError> {
    let ctx = || "cannot check the Merkle log".to_string();
    let our_origin = origin(conn).context(ctx)?;
    let mut findings: Vec<LogFinding> = origins
        .iter()
        .filter(|(_, o)| *o != our_origin)
        .map(|(label, o)| LogFinding {
            kind: LogFindingKind::Origin,
            detail: format!("{label} is of the log '{o}', this archive's is '{our_origin}'"),
        })
        .collect();
    let scan = scan(conn, claims)?;
    findings.extend(scan.findings);
    // Rows without a leaf; when the full `verify` runs beside this pass, it counts them (one scan, not two).
    let unlogged = if rows_counted {
        Vec::new()
    } else {
        super::ledger::unlogged_rows(conn).context(ctx)?
    };
    for u in unlogged {
        findings.push(LogFinding {
            kind: LogFindingKind::Unlogged,
            detail: format!(
                "{} row(s) have no {} leaf in the log (ids {:?}{}): written behind the archive's back, or their \
                 leaves cut",
                u.count,
                u.kind,
                u.ids,
                if u.count > u.ids.len() as i64 { ", ..." } else { "" }
            ),
        });
    }
    let mut results = Vec::new();
    for c in claims {
        let holds = match scan.roots.get(&c.size) {
            None => {
                findings.push(LogFinding {
                    kind: LogFindingKind::Shorter,
                    detail: format!(
                        "the log holds {} leaves, {} has {}: leaves were cut",
                        scan.size, c.label, c.size
                    ),
                });
                false
            }
            Some(root) if *root != c.root => {
                findings.push(LogFinding {
                    kind: LogFindingKind::Inconsistent,
                    detail: format!(
                        "the log's root at {} leaves is not the one {} signed: the log was rewritten",
                        c.size, c.label
                    ),
                });
                false
            }
            Some(_) => consistent(conn, c, scan.size, &mut findings),
        };
        results.push(ClaimResult {
            label: c.label.clone(),
            size: c.size,
            trusted: c.trusted,
            holds,
        });
    }
    let signed_to = results
        .iter()
        .filter(|r| r.trusted && r.holds)
        .map(|r| r.size)
        .max()
        .unwrap_or(0);
    let signed_over_unsigned_prunes: std::collections::BTreeSet<i64> = claims
        .iter()
        .zip(&results)
        .filter(|(c, r)| c.trusted && r.holds)
        .flat_map(|(c, _)| c.unsigned_prunes.iter().copied())
        .collect();
    let unsigned_tail = if signed_to < scan.size {
        Some(tail(conn, signed_to, scan.size)?)
    } else {
        None
    };
    Ok(LogReport {
        origin: our_origin,
        size: scan.size,
        root: hash_b64(&scan.root),
        checkpoints: results,
        findings,
        unsigned_tail,
        signed_over_unsigned_prunes: signed_over_unsigned_prunes.into_iter().collect(),
    })
}

/// The consistency proof (RFC 9162) from the claim's tree to the stored log holds.
fn consistent(conn: &Connection, c: &Claim, size: u64, findings: &mut Vec<LogFinding>) -> bool {
    if c.size == 0 || c.size == size {
        return true;
    }
    let reader = ChunkReader::new(conn);
    let holds = tlog_tiles::tree_hash(size, &reader)
        .and_then(|root| {
            let proof = tlog_tiles::prove_tree(size, c.size, &reader)?;
            tlog_tiles::check_tree(&proof, size, root, c.size, c.root)
        })
        .is_ok();
    if !holds {
        findings.push(LogFinding {
            kind: LogFindingKind::Inconsistent,
            detail: format!(
                "no consistency proof from {} to the stored log: its stored hashes were rewritten",
                c.label
            ),
        });
    }
    holds
}

/// What one pass over the leaves found.
struct Scan {
    size: u64,
    root: Hash,
    roots: BTreeMap<u64, Hash>,
    findings: Vec<LogFinding>,
}

/// The pass: every leaf recomputed, every stored hash compared, the root taken at each claim's size.
fn scan(conn: &Connection, claims: &[Claim]) -> Result<Scan, StoreError> {
    let ctx = || "cannot read the Merkle log".to_string();
    let size = log_size(conn).context(ctx)?;
    let mut stored = StoredHashes::new(conn)?;
    let mut frontier = Frontier::new();
    let mut roots = BTreeMap::new();
    let wanted: Vec<u64> = claims.iter().map(|c| c.size).collect();
    if wanted.contains(&0) {
        roots.insert(0, frontier.root());
    }
    let mut findings = Vec::new();
    let mut leaves_changed = 0u64;
    let mut nodes_changed = 0u64;
    let mut removed = conn
        .prepare_cached(
            // A removal counts only if the prune it names is sealed, and its seal is in the log.
            "SELECT 1 FROM tlog_leaves r WHERE r.kind = ?1 AND r.ref = ?2
               AND EXISTS (SELECT 1 FROM seals s JOIN tlog_leaves p ON p.kind = 'prune-seal' AND p.ref = s.id
                           WHERE s.prune_id = r.prune_id)
             LIMIT 1",
        )
        .context(ctx)?;
    let mut raw = conn
        .prepare_cached("SELECT raw FROM events WHERE id = ?1")
        .context(ctx)?;
    let mut named = conn
        .prepare_cached(
            "SELECT idx, kind, ref, count, refs FROM tlog_leaves WHERE idx <= ?1 ORDER BY idx DESC LIMIT 1",
        )
        .context(ctx)?;
    let mut stmt = conn.prepare(&leaves_sql()).context(ctx)?;
    let mut rows = stmt.query([]).context(ctx)?;
    // A row stands for one leaf, or for a run of event leaves: each run's leaves are loaded one by one. Each
    // row must start where the one before ended; a leaf's index is its place in the scan, not what its row says.
    let mut run = Vec::new().into_iter();
    let mut misplaced: (u64, Option<(u64, u64)>) = (0, None);
    loop {
        let leaf = match run.next() {
            Some((_, id)) => {
                let idx = frontier.size();
                let payload: Option<Vec<u8>> = raw
                    .query_row([id], |r| Ok(r.get_ref(0)?.as_bytes()?.to_vec()))
                    .optional()
                    .context(ctx)?;
                LoadedLeaf {
                    idx,
                    kind: LeafKind::Event,
                    reference: id,
                    prune_id: None,
                    payload,
                }
            }
            None => {
                let Some(r) = rows.next().context(ctx)? else {
                    break;
                };
                let (row_idx, due) = (r.get::<_, i64>(0).context(ctx)?, frontier.size());
                if row_idx < 0 || row_idx as u64 != due {
                    misplaced.0 += 1;
                    misplaced.1.get_or_insert((row_idx as u64, due));
                }
                match loaded_row(r, &mut named).context(ctx)? {
                    Loaded::Leaf(leaf) => LoadedLeaf { idx: due, ..leaf },
                    Loaded::Run(leaves) => {
                        run = leaves.into_iter();
                        continue;
                    }
                    Loaded::Damaged { idx, count, detail } => {
                        findings.push(LogFinding {
                            kind: LogFindingKind::Edited,
                            detail: format!(
                                "the log's row for leaves {idx} to {}: {detail}",
                                idx + count - 1
                            ),
                        });
                        leaves_changed += 1;
                        // At most a run's worth: a row claiming more is named, not walked.
                        for _ in 0..count.min(MAX_RUN as u64) {
                            let hash = stored.next()?.unwrap_or(tlog_tiles::EMPTY_HASH);
                            push(&mut frontier, &mut stored, hash, &mut nodes_changed)?;
                            if wanted.contains(&frontier.size()) {
                                roots.insert(frontier.size(), frontier.root());
                            }
                        }
                        continue;
                    }
                }
            }
        };
        let stored_leaf = stored.next()?;
        let was_removed = leaf.payload.is_none()
            && removed
                .query_row(params![LeafKind::Removal, leaf.idx as i64], |_| Ok(()))
                .optional()
                .context(ctx)?
                .is_some();
        let hash = match leaf_source(leaf.payload.is_some(), was_removed) {
            LeafSource::Row => {
                let h = leaf_hash(
                    leaf.kind,
                    leaf.reference,
                    leaf.payload.as_deref().unwrap_or_default(),
                );
                if Some(h) != stored_leaf {
                    leaves_changed += 1;
                    findings.push(edited(&leaf));
                }
                h
            }
            LeafSource::Pruned => stored_leaf.unwrap_or(tlog_tiles::EMPTY_HASH),
            LeafSource::Deleted => {
                findings.push(deleted(&leaf));
                stored_leaf.unwrap_or(tlog_tiles::EMPTY_HASH)
            }
        };
        push(&mut frontier, &mut stored, hash, &mut nodes_changed)?;
        if wanted.contains(&frontier.size()) {
            roots.insert(frontier.size(), frontier.root());
        }
    }
    if let (n, Some((found, due))) = misplaced {
        leaves_changed += 1;
        findings.push(LogFinding {
            kind: LogFindingKind::Deleted,
            detail: format!(
                "{n} of the log's rows do not start where the row before ended (the first at leaf {found}, where \
                 {due} was due): rows were moved or cut"
            ),
        });
    }
    findings.extend(structure_findings(
        frontier.size(),
        size,
        leaves_changed,
        nodes_changed,
    ));
    Ok(Scan {
        size: frontier.size(),
        root: frontier.root(),
        roots,
        findings,
    })
}

/// Pushes a leaf's hash onto the recomputed tree, comparing the stored hashes it completes.
fn push(
    frontier: &mut Frontier,
    stored: &mut StoredHashes<'_>,
    hash: Hash,
    nodes_changed: &mut u64,
) -> Result<(), StoreError> {
    for node in frontier.push(hash).into_iter().skip(1) {
        if stored.next()? != Some(node) {
            *nodes_changed += 1;
        }
    }
    Ok(())
}

/// What the pass found wrong with the log's structure: holes in the leaf indexes, or stored hashes that differ
/// from the tree the (unchanged) leaves make.
fn structure_findings(
    scanned: u64,
    size: u64,
    leaves_changed: u64,
    nodes_changed: u64,
) -> Vec<LogFinding> {
    let mut findings = Vec::new();
    if scanned != size {
        findings.push(LogFinding {
            kind: LogFindingKind::Deleted,
            detail: format!(
                "the log's leaf indexes have holes: {scanned} leaves up to index {size}"
            ),
        });
    }
    if nodes_changed > 0 && leaves_changed == 0 {
        findings.push(LogFinding {
            kind: LogFindingKind::StoredHashes,
            detail: format!("{nodes_changed} stored hash(es) differ from the tree the leaves make"),
        });
    }
    findings
}

/// Every row of the log in order, with its row's payload (NULL when the row is gone, or when the log's row is a
/// run of events: their payloads are read one by one).
fn leaves_sql() -> String {
    let ledger = |kind: LeafKind| {
        let payload = super::super::tlog::ledger_payload_sql(kind, "l.ref").expect("a ledger kind");
        format!("WHEN '{kind}' THEN {payload}")
    };
    format!(
        "SELECT l.idx, l.kind, l.ref, l.prune_id,
                CASE l.kind
                    WHEN 'event' THEN CASE WHEN l.count = 1 THEN (SELECT raw FROM events WHERE id = l.ref) END
                    WHEN 'revision' THEN (SELECT raw FROM event_revisions WHERE id = l.ref)
                    WHEN 'reject' THEN (SELECT raw FROM rejects WHERE id = l.ref)
                    WHEN 'window-seal' THEN (SELECT hash FROM seals WHERE id = l.ref AND window_id IS NOT NULL)
                    WHEN 'prune-seal' THEN (SELECT hash FROM seals WHERE id = l.ref AND prune_id IS NOT NULL)
                    {} {} {}
                END,
                l.count, l.refs, l.last
         FROM tlog_leaves l
         ORDER BY l.idx",
        ledger(LeafKind::Run),
        ledger(LeafKind::Hold),
        ledger(LeafKind::HoldLifted),
    )
}

/// One row of the log, as loaded.
enum Loaded {
    /// One leaf.
    Leaf(LoadedLeaf),
    /// A run of event leaves: each leaf's index and event id.
    Run(Vec<(u64, i64)>),
    /// A row whose list of events cannot be read: `count` leaves from `idx`.
    Damaged {
        idx: u64,
        count: u64,
        detail: String,
    },
}

/// Reads one row of [`leaves_sql`]; a removal's named leaf is looked up with `named` (the log's row holding it).
fn loaded_row(
    r: &rusqlite::Row<'_>,
    named: &mut rusqlite::Statement<'_>,
) -> rusqlite::Result<Loaded> {
    let idx = r.get::<_, i64>(0)? as u64;
    let kind: LeafKind = r.get(1)?;
    let reference: i64 = r.get(2)?;
    let prune_id: Option<i64> = r.get(3)?;
    let count = r.get::<_, i64>(5)?.max(1) as u64;
    if count > 1 || r.get_ref(6)?.data_type() != rusqlite::types::Type::Null {
        let refs = r.get_ref(6)?.as_blob_or_null().ok().flatten();
        let last: Option<i64> = r.get(7)?;
        let decoded = decode_run(reference, count, refs).and_then(|ids| match ids.last() {
            Some(l) if last == Some(*l) => Ok(ids),
            _ => Err(format!(
                "its last id is recorded as {last:?}, its list ends otherwise"
            )),
        });
        return Ok(match (kind, decoded) {
            (LeafKind::Event, Ok(ids)) => Loaded::Run(
                ids.into_iter()
                    .enumerate()
                    .map(|(k, id)| (idx + k as u64, id))
                    .collect(),
            ),
            (LeafKind::Event, Err(detail)) => Loaded::Damaged { idx, count, detail },
            (kind, _) => Loaded::Damaged {
                idx,
                count,
                detail: format!("a run of {kind} leaves (only events make runs)"),
            },
        });
    }
    let payload = match kind {
        LeafKind::Removal => removed_leaf(named, idx, reference)?
            .zip(prune_id)
            .map(|((k, id), p)| removal_payload(k, id, p).into_bytes()),
        _ => match r.get_ref(4)? {
            rusqlite::types::ValueRef::Null => None,
            v => Some(v.as_bytes()?.to_vec()),
        },
    };
    Ok(Loaded::Leaf(LoadedLeaf {
        idx,
        kind,
        reference,
        prune_id,
        payload,
    }))
}

/// What the removal at leaf `idx` names (leaf `removed`, an earlier one): the kind and row id of that leaf, from
/// the log's row holding it. None when there is no such earlier leaf, or its row is damaged.
fn removed_leaf(
    named: &mut rusqlite::Statement<'_>,
    idx: u64,
    removed: i64,
) -> rusqlite::Result<Option<(LeafKind, i64)>> {
    if removed < 0 || removed as u64 >= idx {
        return Ok(None);
    }
    let named_leaf = named
        .query_row([removed], |r| {
            let (first, kind, reference, count): (i64, LeafKind, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let refs = r.get_ref(4)?.as_blob_or_null().ok().flatten();
            let at = (removed - first) as usize;
            Ok(decode_run(reference, count.max(1) as u64, refs)
                .ok()
                .and_then(|ids| ids.get(at).copied())
                .map(|id| (kind, id)))
        })
        .optional()?;
    Ok(named_leaf.flatten())
}

/// A leaf whose row is gone, unaccounted for.
fn deleted(leaf: &LoadedLeaf) -> LogFinding {
    LogFinding {
        kind: LogFindingKind::Deleted,
        detail: format!(
            "leaf {}: {} {} is gone and no prune removed it",
            leaf.idx, leaf.kind, leaf.reference
        ),
    }
}

/// A leaf whose row no longer gives it.
fn edited(leaf: &LoadedLeaf) -> LogFinding {
    let what = match leaf.kind {
        LeafKind::Removal => format!(
            "a removal (by prune {}) of leaf {}",
            leaf.prune_id.unwrap_or_default(),
            leaf.reference
        ),
        kind => format!("{kind} {}", leaf.reference),
    };
    LogFinding {
        kind: LogFindingKind::Edited,
        detail: format!("leaf {}: {what} changed since it was logged", leaf.idx),
    }
}

/// The stored hashes in index order, chunk by chunk.
struct StoredHashes<'c> {
    stmt: rusqlite::Statement<'c>,
    next_chunk: i64,
    chunk: Vec<u8>,
    offset: usize,
}

impl<'c> StoredHashes<'c> {
    fn new(conn: &'c Connection) -> Result<StoredHashes<'c>, StoreError> {
        let stmt = conn
            .prepare("SELECT CAST(hashes AS BLOB) FROM tlog_hashes WHERE chunk = ?1")
            .context(|| "cannot read the stored hashes".into())?;
        Ok(StoredHashes {
            stmt,
            next_chunk: 0,
            chunk: Vec::new(),
            offset: 0,
        })
    }

    /// The next stored hash, or None past the end.
    fn next(&mut self) -> Result<Option<Hash>, StoreError> {
        if self.offset + 32 > self.chunk.len() {
            let chunk: Option<Vec<u8>> = self
                .stmt
                .query_row([self.next_chunk], |r| r.get(0))
                .optional()
                .context(|| "cannot read the stored hashes".into())?;
            let Some(chunk) = chunk else { return Ok(None) };
            self.chunk = chunk;
            self.offset = 0;
            self.next_chunk += 1;
        }
        let bytes = self.chunk.get(self.offset..self.offset + 32);
        self.offset += 32;
        Ok(bytes.map(|b| Hash(b.try_into().expect("32 bytes"))))
    }
}

/// The unsigned tail `[from, to)`: leaves by kind, and the prunes sealed in it.
fn tail(conn: &Connection, from: u64, to: u64) -> Result<UnsignedTail, StoreError> {
    let ctx = || "cannot read the log's unsigned tail".to_string();
    let by_kind = conn
        .prepare(
            // The rows from the one holding leaf `from` on; a run it starts inside counts from `from`.
            "SELECT kind, sum(count - max(0, ?1 - idx)) FROM tlog_leaves
             WHERE idx >= (SELECT coalesce(max(idx), 0) FROM tlog_leaves WHERE idx <= ?1)
             GROUP BY kind ORDER BY kind",
        )
        .and_then(|mut s| {
            s.query_map([from as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect()
        })
        .context(ctx)?;
    let prunes = conn
        .prepare(
            "SELECT s.prune_id FROM tlog_leaves l JOIN seals s ON s.id = l.ref
             WHERE l.idx >= ?1 AND l.kind = ?2 AND s.prune_id IS NOT NULL ORDER BY l.idx",
        )
        .and_then(|mut s| {
            s.query_map(params![from as i64, LeafKind::PruneSeal], |r| r.get(0))?
                .collect()
        })
        .context(ctx)?;
    Ok(UnsignedTail {
        from,
        to,
        by_kind,
        prunes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_comes_from_its_row_else_from_a_prune_else_it_was_deleted() {
        let cases = [
            (true, false, LeafSource::Row),
            (true, true, LeafSource::Row),
            (false, true, LeafSource::Pruned),
            (false, false, LeafSource::Deleted),
        ];
        for (payload, removed, want) in cases {
            assert_eq!(leaf_source(payload, removed), want, "{payload} {removed}");
        }
    }

    #[test]
    fn holes_and_rewritten_stored_hashes_are_named_and_an_edit_is_not_named_twice() {
        let kinds = |f: Vec<LogFinding>| f.into_iter().map(|f| f.kind).collect::<Vec<_>>();
        let cases = [
            ((5, 5, 0, 0), vec![]),
            ((4, 5, 0, 0), vec![LogFindingKind::Deleted]),
            ((5, 5, 0, 3), vec![LogFindingKind::StoredHashes]),
            ((5, 5, 1, 3), vec![]),
        ];
        for ((scanned, size, leaves, nodes), want) in cases {
            assert_eq!(
                kinds(structure_findings(scanned, size, leaves, nodes)),
                want
            );
        }
    }
}
