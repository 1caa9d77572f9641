//! The Merkle log's tables (`tlog_leaves`, `tlog_hashes`, `tlog_state`, `checkpoints`; migration V8): appending
//! leaves inside the transaction that writes what they stand for, reading stored hashes for proofs, building
//! the log of an archive made before it, and the checkpoints. The formats are [`crate::tlog`]'s.
//!
//! Invariants: leaves are appended only through [`LogAppender`], whose [`LogAppender::flush`] writes the leaf
//! rows and their stored hashes in the caller's transaction; a leaf is never removed (a prune appends a
//! removal leaf naming it); the stored hashes of a log of n leaves are exactly `stored_hash_count(n)`.

use super::{SqlContext, StoreError};
use crate::model::LeafKind;
use crate::tlog::{self, Frontier, HASH_BYTES, HASHES_PER_CHUNK, Hash, leaf_hash};
use rusqlite::{Connection, OptionalExtension, params};
use std::cell::RefCell;
use std::collections::HashMap;
use tlog_tiles::{stored_hash_count, stored_hash_index};

/// Leaves the backfill of an existing archive buffers before writing them (bounded memory).
const BACKFILL_FLUSH: usize = 20_000;

/// Most leaves one `tlog_leaves` row (a run of events) stands for: bounds what a lookup decodes.
pub const MAX_RUN: usize = 4096;

/// Context for the log's writes.
fn log_ctx() -> String {
    "cannot append to the archive's Merkle log".to_string()
}

/// Leaves in the log: the end of its last row (rows cover the leaf indexes in order, each `count` of them).
pub fn log_size(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT coalesce((SELECT idx + count FROM tlog_leaves ORDER BY idx DESC LIMIT 1), 0)",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// The `refs` of a run of event leaves whose first row is `first` and whose next ones are `more` (each greater
/// than the one before): each id's step from the one before, as an unsigned LEB128 number (migration V14).
fn encode_run(first: i64, more: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(more.len() * 2);
    let mut previous = first;
    for &id in more {
        leb128::write::unsigned(&mut out, (id - previous) as u64).expect("writing to a Vec");
        previous = id;
    }
    out
}

/// The row ids a `tlog_leaves` row stands for, in leaf order: `first` (its `ref`), then, for a run (`count` >
/// 1), the ids its `refs` steps to. Err names what is wrong with a damaged row.
pub fn decode_run(first: i64, count: u64, refs: Option<&[u8]>) -> Result<Vec<i64>, String> {
    let Some(mut bytes) = refs else {
        return match count {
            1 => Ok(vec![first]),
            n => Err(format!("it stands for {n} leaves but lists no rows")),
        };
    };
    if count < 2 || count as usize > MAX_RUN {
        return Err(format!("a run of {count} leaves"));
    }
    let mut ids = Vec::with_capacity(count as usize);
    ids.push(first);
    let mut previous = first;
    while !bytes.is_empty() {
        if ids.len() as u64 == count {
            return Err(format!("it stands for {count} leaves but lists more rows"));
        }
        let step = leb128::read::unsigned(&mut bytes).map_err(|e| format!("its row list: {e}"))?;
        let next = i64::try_from(step)
            .ok()
            .filter(|s| *s > 0)
            .and_then(|s| previous.checked_add(s))
            .ok_or_else(|| format!("its row list steps by {step}"))?;
        ids.push(next);
        previous = next;
    }
    if ids.len() as u64 != count {
        return Err(format!(
            "it stands for {count} leaves but lists {} rows",
            ids.len()
        ));
    }
    Ok(ids)
}

/// Finds the leaf of an event row (a run of `tlog_leaves` lists it, or a row of its own), keeping the last
/// run it decoded: rows looked up in id order mostly fall in the same run.
pub(crate) struct EventLeafFinder<'c> {
    conn: &'c Connection,
    /// The last run decoded: its first leaf and its ids (ascending).
    run: Option<(u64, Vec<i64>)>,
}

impl<'c> EventLeafFinder<'c> {
    pub(crate) fn new(conn: &'c Connection) -> EventLeafFinder<'c> {
        EventLeafFinder { conn, run: None }
    }

    /// The leaf of event `id`, if the log has one: its first, should the log (tampered with) list it twice. A
    /// damaged run that might hold it is an error when no other row does.
    pub(crate) fn find(&mut self, id: i64) -> Result<Option<u64>, StoreError> {
        let mut best = single_leaf(self.conn, id).context(log_ctx)?;
        // Every run that may hold it, keeping the first leaf.
        let mut stmt = runs_that_may_hold(self.conn).context(log_ctx)?;
        let mut rows = stmt.query([id]).context(log_ctx)?;
        let mut damage = None;
        while let Some(r) = rows.next().context(log_ctx)? {
            match holds(r, id).context(log_ctx)? {
                Ok(Some(leaf)) => best = Some(best.map_or(leaf, |b| b.min(leaf))),
                Ok(None) => {}
                Err(e) => {
                    damage.get_or_insert(e);
                }
            }
        }
        match (best, damage) {
            (Some(leaf), _) => Ok(Some(leaf)),
            (None, Some(d)) => Err(damaged(d)),
            (None, None) => Ok(None),
        }
    }

    /// Whether event `id` has a leaf (any, the nearest run first), and the first damaged run met on the way.
    /// Keeps the run it found: rows looked up in id order mostly fall in the same run.
    pub(crate) fn lookup(&mut self, id: i64) -> rusqlite::Result<(Option<u64>, Option<String>)> {
        if let Some((first, ids)) = &self.run
            && let Ok(at) = ids.binary_search(&id)
        {
            return Ok((Some(first + at as u64), None));
        }
        if let Some(leaf) = single_leaf(self.conn, id)? {
            return Ok((Some(leaf), None));
        }
        let mut stmt = runs_that_may_hold(self.conn)?;
        let mut rows = stmt.query([id])?;
        let mut damage = None;
        while let Some(r) = rows.next()? {
            match decode_row(r)? {
                (idx, Ok(ids)) => {
                    if let Ok(at) = ids.binary_search(&id) {
                        self.run = Some((idx, ids));
                        return Ok((Some(idx + at as u64), None));
                    }
                }
                (_, Err(e)) => {
                    damage.get_or_insert(e);
                }
            }
        }
        Ok((None, damage))
    }
}

/// Whether the log's row `r` (`idx, ref, count, refs`) holds event `id`: its leaf, or Err naming the damage.
fn holds(r: &rusqlite::Row<'_>, id: i64) -> rusqlite::Result<Result<Option<u64>, String>> {
    let (idx, ids) = decode_row(r)?;
    Ok(ids.map(|ids| ids.binary_search(&id).ok().map(|at| idx + at as u64)))
}

/// The log's row `r` (`idx, ref, count, refs`): its first leaf, and its ids, or Err naming the damage.
fn decode_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(u64, Result<Vec<i64>, String>)> {
    let (idx, first, count): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let refs = r.get_ref(3)?.as_blob_or_null().ok().flatten();
    let ids = decode_run(first, count.max(1) as u64, refs)
        .map_err(|e| format!("the run of leaves from {idx}: {e}"));
    Ok((idx as u64, ids))
}

/// The first leaf of event `id` that is a row of its own, if any.
fn single_leaf(conn: &Connection, id: i64) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached(
        "SELECT idx FROM tlog_leaves WHERE kind = ?1 AND ref = ?2 AND count = 1 ORDER BY idx LIMIT 1",
    )?
    .query_row(params![LeafKind::Event, id], |r| r.get::<_, i64>(0))
    .optional()
    .map(|idx| idx.map(|i| i as u64))
}

/// The runs that may hold an event (bound as `?1`), nearest first: through the runs' index, ordered by `ref`
/// so that it is used.
fn runs_that_may_hold(conn: &Connection) -> rusqlite::Result<rusqlite::CachedStatement<'_>> {
    conn.prepare_cached(
        "SELECT idx, ref, count, refs FROM tlog_leaves WHERE count > 1 AND ref <= ?1 AND last >= ?1
         ORDER BY ref DESC",
    )
}

/// Events without a leaf in the log: how many, and the first 20 by id. Those with a row of their own in
/// `tlog_leaves` are set aside by SQL; each other is looked up in the runs.
pub(crate) fn unlogged_events(conn: &Connection) -> rusqlite::Result<(i64, Vec<i64>)> {
    let mut finder = EventLeafFinder::new(conn);
    let mut stmt = conn.prepare(
        "SELECT id FROM events EXCEPT SELECT ref FROM tlog_leaves WHERE kind = 'event' AND count = 1 ORDER BY 1",
    )?;
    let mut rows = stmt.query([])?;
    let (mut count, mut first) = (0i64, Vec::new());
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        if finder.lookup(id)?.0.is_none() {
            count += 1;
            if first.len() < 20 {
                first.push(id);
            }
        }
    }
    Ok((count, first))
}

/// The archive's origin line.
pub fn origin(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("SELECT origin FROM tlog_state WHERE id = 1", [], |r| {
        r.get(0)
    })
}

/// Reads stored hashes from `tlog_hashes` (a [`tlog_tiles::HashReader`]), caching the chunks it read.
pub struct ChunkReader<'c> {
    conn: &'c Connection,
    cache: RefCell<HashMap<u64, Vec<u8>>>,
}

impl<'c> ChunkReader<'c> {
    /// A reader over the archive's stored hashes.
    pub fn new(conn: &'c Connection) -> ChunkReader<'c> {
        ChunkReader {
            conn,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// The stored hash at `index`.
    pub fn hash(&self, index: u64) -> Result<Hash, tlog_tiles::Error> {
        let (chunk, offset) = tlog::chunk_of(index);
        let mut cache = self.cache.borrow_mut();
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(chunk) {
            let blob: Option<Vec<u8>> = self
                .conn
                .prepare_cached("SELECT CAST(hashes AS BLOB) FROM tlog_hashes WHERE chunk = ?1")
                .and_then(|mut s| s.query_row([chunk as i64], |r| r.get(0)).optional())
                .map_err(|_| tlog_tiles::Error::IndexesNotInTree)?;
            slot.insert(blob.unwrap_or_default());
        }
        let bytes = cache[&chunk]
            .get(offset..offset + HASH_BYTES)
            .ok_or(tlog_tiles::Error::IndexesNotInTree)?;
        Ok(Hash(bytes.try_into().expect("32 bytes")))
    }
}

impl tlog_tiles::HashReader for ChunkReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes.iter().map(|&i| self.hash(i)).collect()
    }
}

/// The right edge of the stored tree of `size` leaves, read from its stored hashes.
fn load_frontier(conn: &Connection, size: u64) -> Result<Frontier, StoreError> {
    let reader = ChunkReader::new(conn);
    let mut edge = Vec::new();
    let mut start = 0u64;
    for level in (0..64u32).rev() {
        if size & (1u64 << level) != 0 {
            let index = stored_hash_index(level as u8, start >> level);
            let hash = reader
                .hash(index)
                .map_err(|_| damaged(format!("its stored hash {index} is missing")))?;
            edge.push((level, hash));
            start += 1u64 << level;
        }
    }
    Ok(Frontier::from_edge(edge, size))
}

/// A `tlog_leaves` row waiting to be written: one leaf, or a run of event leaves (`more`: the ids after the
/// first, each greater than the one before).
struct PendingLeaf {
    kind: LeafKind,
    reference: i64,
    prune_id: Option<i64>,
    more: Vec<i64>,
}

impl PendingLeaf {
    /// Whether event `id` can extend this row's run.
    fn extends(&self, id: i64) -> bool {
        self.kind == LeafKind::Event
            && self.more.len() + 1 < MAX_RUN
            && id > self.more.last().copied().unwrap_or(self.reference)
    }
}

/// Appends leaves to the log inside one transaction: [`LogAppender::load`] reads the log's right edge,
/// [`LogAppender::append`] buffers leaves and computes their stored hashes, [`LogAppender::flush`] writes them.
pub struct LogAppender {
    frontier: Frontier,
    /// Stored-hash index of the first pending hash.
    base: u64,
    /// Leaf index of the first pending leaf.
    first_leaf: u64,
    hashes: Vec<Hash>,
    leaves: Vec<PendingLeaf>,
}

impl LogAppender {
    /// Reads the log's current right edge.
    pub fn load(conn: &Connection) -> Result<LogAppender, StoreError> {
        let size = log_size(conn).context(log_ctx)?;
        Ok(LogAppender {
            frontier: load_frontier(conn, size)?,
            base: stored_hash_count(size),
            first_leaf: size,
            hashes: Vec::new(),
            leaves: Vec::new(),
        })
    }

    /// Appends a leaf whose data is [`tlog::leaf_data`]`(kind, reference, payload)`; returns its index.
    pub fn append(&mut self, kind: LeafKind, reference: i64, payload: &[u8]) -> u64 {
        self.append_hash(kind, reference, None, leaf_hash(kind, reference, payload))
    }

    /// Appends a leaf whose hash was computed beforehand (with [`tlog::leaf_hash`], off the writer); returns
    /// its index.
    pub fn append_hashed(&mut self, kind: LeafKind, reference: i64, hash: Hash) -> u64 {
        self.append_hash(kind, reference, None, hash)
    }

    /// Appends a removal by prune `prune_id` of the row behind leaf `removed` (of `kind`, row `row`).
    pub fn append_removal(&mut self, removed: u64, kind: LeafKind, row: i64, prune_id: i64) {
        let payload = tlog::removal_payload(kind, row, prune_id);
        let hash = leaf_hash(LeafKind::Removal, removed as i64, payload.as_bytes());
        self.append_hash(LeafKind::Removal, removed as i64, Some(prune_id), hash);
    }

    fn append_hash(
        &mut self,
        kind: LeafKind,
        reference: i64,
        prune_id: Option<i64>,
        hash: Hash,
    ) -> u64 {
        let index = self.frontier.size();
        self.hashes.extend(self.frontier.push(hash));
        match self.leaves.last_mut() {
            Some(run) if kind == LeafKind::Event && run.extends(reference) => {
                run.more.push(reference)
            }
            _ => self.leaves.push(PendingLeaf {
                kind,
                reference,
                prune_id,
                more: Vec::new(),
            }),
        }
        index
    }

    /// Leaves buffered and not yet written.
    pub fn pending(&self) -> usize {
        (self.frontier.size() - self.first_leaf) as usize
    }

    /// Writes the buffered leaves and their stored hashes (in the caller's transaction); the appender can go on.
    pub fn flush(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if self.leaves.is_empty() {
            return Ok(());
        }
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO tlog_leaves (idx, kind, ref, prune_id, count, refs, last)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .context(log_ctx)?;
        let mut idx = self.first_leaf;
        for leaf in &self.leaves {
            let count = 1 + leaf.more.len() as u64;
            let refs = (!leaf.more.is_empty()).then(|| encode_run(leaf.reference, &leaf.more));
            insert
                .execute(params![
                    idx as i64,
                    leaf.kind,
                    leaf.reference,
                    leaf.prune_id,
                    count as i64,
                    refs,
                    leaf.more.last()
                ])
                .context(log_ctx)?;
            idx += count;
        }
        write_hashes(conn, self.base, &self.hashes)?;
        self.first_leaf = idx;
        self.base += self.hashes.len() as u64;
        self.leaves.clear();
        self.hashes.clear();
        Ok(())
    }
}

/// Writes stored hashes starting at index `base` (the end of what is stored): completes the last chunk, then
/// adds new ones.
fn write_hashes(conn: &Connection, base: u64, hashes: &[Hash]) -> Result<(), StoreError> {
    let (mut chunk, offset) = tlog::chunk_of(base);
    let mut bytes: Vec<u8> = if offset > 0 {
        conn.prepare_cached("SELECT CAST(hashes AS BLOB) FROM tlog_hashes WHERE chunk = ?1")
            .and_then(|mut s| s.query_row([chunk as i64], |r| r.get(0)))
            .context(log_ctx)?
    } else {
        Vec::new()
    };
    bytes.truncate(offset);
    let mut put = conn
        .prepare_cached("INSERT OR REPLACE INTO tlog_hashes (chunk, hashes) VALUES (?1, ?2)")
        .context(log_ctx)?;
    let chunk_bytes = HASHES_PER_CHUNK as usize * HASH_BYTES;
    for h in hashes {
        bytes.extend_from_slice(&h.0);
        if bytes.len() == chunk_bytes {
            put.execute(params![chunk as i64, bytes]).context(log_ctx)?;
            bytes.clear();
            chunk += 1;
        }
    }
    if !bytes.is_empty() {
        put.execute(params![chunk as i64, bytes]).context(log_ctx)?;
    }
    Ok(())
}

/// Appends the leaf of seal `seal_id` (`hash` its chain hash) in the caller's transaction.
pub(crate) fn append_seal(
    conn: &Connection,
    kind: LeafKind,
    seal_id: i64,
    hash: &str,
) -> Result<(), StoreError> {
    let mut log = LogAppender::load(conn)?;
    log.append(kind, seal_id, hash.as_bytes());
    log.flush(conn)
}

/// Builds the log of an archive made before it (or whose log is empty while it holds rows): every sealed
/// window's events, revisions and rejects, then its seal, and each prune's seal, in seal order; then the rows
/// of window fetches not sealed yet. Runs in the caller's transaction; returns the leaves appended.
pub(crate) fn build_existing(conn: &Connection) -> Result<u64, StoreError> {
    let empty: bool = conn
        .query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM tlog_leaves)
                AND (EXISTS (SELECT 1 FROM seals) OR EXISTS (SELECT 1 FROM events)
                     OR EXISTS (SELECT 1 FROM rejects) OR EXISTS (SELECT 1 FROM runs)
                     OR EXISTS (SELECT 1 FROM holds))",
            [],
            |r| r.get(0),
        )
        .context(log_ctx)?;
    if !empty {
        return Ok(0);
    }
    let mut log = LogAppender::load(conn)?;
    let seals: Vec<(i64, Option<i64>, String)> = conn
        .prepare("SELECT id, window_id, hash FROM seals ORDER BY id")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .context(log_ctx)?;
    for (seal_id, window_id, hash) in seals {
        match window_id {
            Some(window_id) => {
                append_window_rows(conn, &mut log, window_id)?;
                log.append(LeafKind::WindowSeal, seal_id, hash.as_bytes());
            }
            None => {
                log.append(LeafKind::PruneSeal, seal_id, hash.as_bytes());
            }
        }
    }
    let unsealed: Vec<i64> = conn
        .prepare(
            "SELECT w.id FROM windows w WHERE NOT EXISTS (SELECT 1 FROM seals s WHERE s.window_id = w.id)
             ORDER BY w.id",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .context(log_ctx)?;
    for window_id in unsealed {
        append_window_rows(conn, &mut log, window_id)?;
    }
    log.flush(conn)?;
    append_ledger_rows(conn)?;
    log_size(conn).context(log_ctx)
}

/// Appends the leaves of the rows window fetch `window_id` filed (events, revisions, rejects, by id),
/// flushing as it goes so memory stays bounded.
fn append_window_rows(
    conn: &Connection,
    log: &mut LogAppender,
    window_id: i64,
) -> Result<(), StoreError> {
    let tables = [
        (
            LeafKind::Event,
            "SELECT id, raw FROM events WHERE window_id = ?1 ORDER BY id",
        ),
        (
            LeafKind::Revision,
            "SELECT id, raw FROM event_revisions WHERE window_id = ?1 ORDER BY id",
        ),
        (
            LeafKind::Reject,
            "SELECT id, raw FROM rejects WHERE window_id = ?1 ORDER BY id",
        ),
    ];
    for (kind, sql) in tables {
        let mut stmt = conn.prepare_cached(sql).context(log_ctx)?;
        let mut rows = stmt.query([window_id]).context(log_ctx)?;
        while let Some(r) = rows.next().context(log_ctx)? {
            let id: i64 = r.get(0).context(log_ctx)?;
            let raw = r.get_ref(1).context(log_ctx)?;
            let payload = raw.as_bytes().unwrap_or_default();
            log.append(kind, id, payload);
            if log.pending() >= BACKFILL_FLUSH {
                log.flush(conn)?;
            }
        }
    }
    Ok(())
}

/// The payload of a ledger row's leaf (a run's intent, a hold placed, a hold lifted): the row's columns that
/// must never change, as SQLite's `json_array` writes them. One definition, used to append the leaf and to
/// check the row against it (`row` is the SQL naming the row's id).
pub fn ledger_payload_sql(kind: LeafKind, row: &str) -> Option<String> {
    let (columns, table, condition) = match kind {
        LeafKind::Run => (
            "id, kind, started_at, range_from, range_to, category_filter, action_filter, base_url",
            "runs",
            "",
        ),
        LeafKind::Hold => ("id, range_from, range_to, reason, created_at", "holds", ""),
        LeafKind::HoldLifted => ("id, removed_at", "holds", " AND removed_at IS NOT NULL"),
        _ => return None,
    };
    Some(format!(
        "(SELECT json_array({columns}) FROM {table} WHERE id = {row}{condition})"
    ))
}

/// Appends the leaf of ledger row `id` of `kind` (see [`ledger_payload_sql`]), in the caller's transaction.
pub(crate) fn append_ledger_row(
    conn: &Connection,
    kind: LeafKind,
    id: i64,
) -> Result<(), StoreError> {
    let sql = ledger_payload_sql(kind, "?1").expect("a ledger kind");
    let payload: String = conn
        .query_row(&format!("SELECT {sql}"), [id], |r| r.get(0))
        .context(log_ctx)?;
    let mut log = LogAppender::load(conn)?;
    log.append(kind, id, payload.as_bytes());
    log.flush(conn)
}

/// Appends the leaves of every run and hold an archive made before the log holds (its upgrade).
fn append_ledger_rows(conn: &Connection) -> Result<(), StoreError> {
    for (kind, sql) in [
        (LeafKind::Run, "SELECT id FROM runs ORDER BY id"),
        (LeafKind::Hold, "SELECT id FROM holds ORDER BY id"),
        (
            LeafKind::HoldLifted,
            "SELECT id FROM holds WHERE removed_at IS NOT NULL ORDER BY id",
        ),
    ] {
        let ids: Vec<i64> = conn
            .prepare(sql)
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .context(log_ctx)?;
        for id in ids {
            append_ledger_row(conn, kind, id)?;
        }
    }
    Ok(())
}

/// The leaves of the rows a prune is about to remove from window fetch `window_id`: its revisions of events
/// inside the `swept` ranges (and, if it goes `whole`, those whose event is not in the archive), its events
/// inside them, and the `rejects` that go with it: `(leaf index, kind, row id)`. The same rows
/// `retention::remove_rows` removes.
pub(crate) fn leaves_of_pruned_rows(
    conn: &Connection,
    window_id: i64,
    swept: &[(String, String)],
    whole: bool,
    rejects: &[i64],
) -> Result<Vec<(u64, LeafKind, i64)>, StoreError> {
    let mut out = Vec::new();
    let collect = |out: &mut Vec<(u64, LeafKind, i64)>,
                   sql: &str,
                   p: &[&dyn rusqlite::ToSql]|
     -> Result<(), StoreError> {
        let mut stmt = conn.prepare_cached(sql).context(log_ctx)?;
        let rows = stmt
            .query_map(p, |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
            })
            .context(log_ctx)?;
        for row in rows {
            out.push(row.context(log_ctx)?);
        }
        Ok(())
    };
    for (from, to) in swept {
        collect(
            &mut out,
            "SELECT l.idx, l.kind, l.ref FROM event_revisions x JOIN tlog_leaves l ON l.kind = 'revision' AND l.ref = x.id
             WHERE x.window_id = ?1
               AND x.event_id IN (SELECT id FROM events WHERE timestamp >= ?2 AND timestamp < ?3)
             ORDER BY x.id",
            &[&window_id, from, to],
        )?;
    }
    if whole {
        collect(
            &mut out,
            "SELECT l.idx, l.kind, l.ref FROM event_revisions x JOIN tlog_leaves l ON l.kind = 'revision' AND l.ref = x.id
             WHERE x.window_id = ?1 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = x.event_id)
             ORDER BY x.id",
            &[&window_id],
        )?;
    }
    // An event's leaf may be one of a run's: found through the runs, not by a join.
    let mut finder = EventLeafFinder::new(conn);
    for (from, to) in swept {
        let ids: Vec<i64> = conn
            .prepare_cached(
                "SELECT id FROM events WHERE window_id = ?1 AND timestamp >= ?2 AND timestamp < ?3 ORDER BY id",
            )
            .and_then(|mut s| s.query_map(params![window_id, from, to], |r| r.get(0))?.collect())
            .context(log_ctx)?;
        for id in ids {
            if let Some(leaf) = finder.find(id)? {
                out.push((leaf, LeafKind::Event, id));
            }
        }
    }
    for id in rejects {
        collect(
            &mut out,
            "SELECT l.idx, l.kind, l.ref FROM tlog_leaves l WHERE l.kind = 'reject' AND l.ref = ?1",
            &[id],
        )?;
    }
    Ok(out)
}

/// A checkpoint stored in the archive.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredCheckpoint {
    /// Its row id.
    pub id: i64,
    /// When it was made.
    pub created_at: String,
    /// The tree size it commits to.
    pub tree_size: u64,
    /// Its text (a signed note when `signed_by` is set).
    pub text: String,
    /// The signing key's name, if signed.
    pub signed_by: Option<String>,
    /// Prunes it signs over that were made without the key (named in its text), if signed.
    #[serde(skip)]
    pub unsigned_prunes: Vec<i64>,
}

/// The checkpoint of the log as it stands: (origin, size, root), the root recomputed from the stored hashes.
pub fn current_tree(conn: &Connection) -> Result<(String, u64, Hash), StoreError> {
    let size = log_size(conn).context(log_ctx)?;
    let root = load_frontier(conn, size)?.root();
    Ok((origin(conn).context(log_ctx)?, size, root))
}

/// Stores a checkpoint made at `now` unless the newest one already has this tree size (a run that did not
/// change the log writes none); returns it when stored.
pub(crate) fn store_checkpoint(
    conn: &Connection,
    signer: Option<&tlog::note::SigningKey>,
    now: &str,
    own_prune: Option<i64>,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let ctx = || "cannot store the checkpoint".to_string();
    let (origin, size, root) = current_tree(conn)?;
    let newest: Option<i64> = conn
        .query_row(
            "SELECT tree_size FROM checkpoints ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .context(ctx)?;
    if newest == Some(size as i64) || (newest.is_none() && size == 0) {
        return Ok(None);
    }
    let unsigned_prunes = match signer {
        Some(_) => unsigned_prunes(conn, own_prune)?,
        None => Vec::new(),
    };
    let body = tlog::note::checkpoint_body_over(&origin, size, root, &unsigned_prunes);
    let text = signer.map_or_else(|| body.clone(), |k| k.sign(&body));
    let signed_by = signer.map(|k| k.name().to_string());
    conn.execute(
        "INSERT INTO checkpoints (created_at, tree_size, root, text, signed_by) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now, size as i64, tlog::note::hash_b64(&root), text, signed_by],
    )
    .context(ctx)?;
    Ok(Some(StoredCheckpoint {
        id: conn.last_insert_rowid(),
        created_at: now.to_string(),
        tree_size: size,
        text,
        signed_by,
        unsigned_prunes,
    }))
}

/// The prunes sealed in the log after the newest signed checkpoint (all of them if none was signed), but
/// `own_prune`: made without the key that signs now.
fn unsigned_prunes(conn: &Connection, own_prune: Option<i64>) -> Result<Vec<i64>, StoreError> {
    conn.prepare(
        "SELECT s.prune_id FROM tlog_leaves l JOIN seals s ON s.id = l.ref
         WHERE l.kind = 'prune-seal'
           AND l.idx >= coalesce((SELECT max(tree_size) FROM checkpoints WHERE signed_by IS NOT NULL), 0)
           AND s.prune_id IS NOT ?1
         ORDER BY s.prune_id",
    )
    .and_then(|mut s| s.query_map([own_prune], |r| r.get(0))?.collect())
    .context(|| "cannot read the prunes since the last signed checkpoint".into())
}

/// Every stored checkpoint, oldest first.
pub fn checkpoints(conn: &Connection) -> Result<Vec<StoredCheckpoint>, StoreError> {
    conn.prepare("SELECT id, created_at, tree_size, text, signed_by FROM checkpoints ORDER BY id")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(StoredCheckpoint {
                    id: r.get(0)?,
                    created_at: r.get(1)?,
                    tree_size: r.get::<_, i64>(2)? as u64,
                    text: r.get(3)?,
                    signed_by: r.get(4)?,
                    // Read from the text by whoever checks it (`verify`), not trusted from here.
                    unsigned_prunes: Vec::new(),
                })
            })?
            .collect()
        })
        .context(|| "cannot read the stored checkpoints".into())
}

impl super::Archive {
    /// Ends a run that may have changed the log: stores a checkpoint of the log as it stands (signed with
    /// `signer` when given) unless the newest stored one already has its size. Returns it when one was made.
    pub fn make_checkpoint(
        &mut self,
        signer: Option<&tlog::note::SigningKey>,
        now: crate::time::Timestamp,
        own_prune: Option<i64>,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let tx = self.begin()?;
        let made = store_checkpoint(&tx, signer, &crate::time::to_stored(now), own_prune)?;
        tx.commit()
            .context(|| "cannot commit the checkpoint".into())?;
        Ok(made)
    }
}

/// Why `prove` cannot make a bundle.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The archive failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event was never archived (no leaf).
    #[error("event {0} is not in the archive's log (never archived)")]
    NoSuchEvent(i64),
    /// No stored signed checkpoint covers the event's leaves, and no key was given to sign one.
    #[error(
        "no signed checkpoint covers event {event_id} ({newest}): pass --signing-key PATH to sign the log as it \
         stands, or let the next `sync --signing-key PATH` make one"
    )]
    NoSignedCheckpoint {
        /// The event.
        event_id: i64,
        /// What the newest stored checkpoint is.
        newest: String,
    },
    /// The event's row is gone but no prune removed it: tampering.
    #[error(
        "event {0} has a leaf but its row is gone and no prune removed it: the archive was tampered with \
         (run `elevate-archive verify`)"
    )]
    Unaccounted(i64),
}

/// The leaves a bundle for `event_id` proves: the event's leaf, its raw JSON if archived, else the removal.
struct EventLeaves {
    leaf: u64,
    raw: Option<String>,
    removal: Option<(u64, i64)>,
}

fn event_leaves(conn: &Connection, event_id: i64) -> Result<EventLeaves, ProveError> {
    let ctx = || format!("cannot read event {event_id}'s leaves");
    let leaf = EventLeafFinder::new(conn)
        .find(event_id)?
        .ok_or(ProveError::NoSuchEvent(event_id))? as i64;
    let raw: Option<String> = conn
        .query_row("SELECT raw FROM events WHERE id = ?1", [event_id], |r| {
            r.get(0)
        })
        .optional()
        .context(ctx)?;
    let removal: Option<(i64, i64)> = conn
        .query_row(
            "SELECT idx, prune_id FROM tlog_leaves WHERE kind = ?1 AND ref = ?2 ORDER BY idx LIMIT 1",
            params![LeafKind::Removal, leaf],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .context(ctx)?;
    // A bundle is handed out only if the stored log holds the event where its row says (a tampered log, a moved
    // run, is for `verify` to name; no bundle the checkers would refuse).
    if let Some(raw) = &raw {
        let stored = ChunkReader::new(conn)
            .hash(stored_hash_index(0, leaf as u64))
            .ok();
        if stored != Some(leaf_hash(LeafKind::Event, event_id, raw.as_bytes())) {
            return Err(ProveError::Store(damaged(format!(
                "its leaf {leaf} does not hold event {event_id} as archived (run `elevate-archive verify \
                 --checkpoint`)"
            ))));
        }
    }
    match (&raw, removal) {
        (None, None) => Err(ProveError::Unaccounted(event_id)),
        (Some(_), _) => Ok(EventLeaves {
            leaf: leaf as u64,
            raw,
            removal: None,
        }),
        (None, Some((idx, prune))) => Ok(EventLeaves {
            leaf: leaf as u64,
            raw,
            removal: Some((idx as u64, prune)),
        }),
    }
}

/// The checkpoint a bundle is proved against: the newest stored signed checkpoint whose tree holds leaf
/// `last`, else (with `signer`) a checkpoint of the log as it stands, signed now (not stored).
fn checkpoint_for(
    conn: &Connection,
    last: u64,
    event_id: i64,
    signer: Option<&tlog::note::SigningKey>,
) -> Result<String, ProveError> {
    let all = checkpoints(conn)?;
    if let Some(cp) = all
        .iter()
        .rev()
        .find(|c| c.signed_by.is_some() && c.tree_size > last)
    {
        return Ok(cp.text.clone());
    }
    if let Some(key) = signer {
        let (origin, size, root) = current_tree(conn)?;
        return Ok(key.sign(&tlog::note::checkpoint_body(&origin, size, root)));
    }
    let newest = match all.last() {
        None => "the archive has no checkpoint yet".to_string(),
        Some(c) if c.signed_by.is_none() => {
            format!(
                "the newest checkpoint, of {} leaves, is unsigned",
                c.tree_size
            )
        }
        Some(c) => format!(
            "the newest signed checkpoint holds {} leaves, the event's leaf is {last}",
            c.tree_size
        ),
    };
    Err(ProveError::NoSignedCheckpoint { event_id, newest })
}

/// The evidence bundle of event `event_id` (see [`crate::tlog::bundle`]).
pub fn prove_event(
    conn: &Connection,
    event_id: i64,
    signer: Option<&tlog::note::SigningKey>,
) -> Result<tlog::bundle::Bundle, ProveError> {
    use tlog::bundle::{Bundle, EventLeaf, FORMAT, ProofStatus, RemovalLeaf};
    let leaves = event_leaves(conn, event_id)?;
    let last = leaves.removal.map_or(leaves.leaf, |(idx, _)| idx);
    let text = checkpoint_for(conn, last, event_id, signer)?;
    let size = tlog::note::parse_checkpoint(&text)
        .map_err(|e| ProveError::Store(damaged(format!("a stored checkpoint: {e}"))))?
        .size;
    let reader = ChunkReader::new(conn);
    let proof = |index: u64| -> Result<Vec<String>, ProveError> {
        tlog_tiles::prove_record(size, index, &reader)
            .map(|p| p.iter().map(tlog::note::hash_b64).collect())
            .map_err(|e| ProveError::Store(damaged(format!("no proof for leaf {index}: {e}"))))
    };
    let leaf_hash = match leaves.raw {
        Some(_) => None,
        None => Some(tlog::note::hash_b64(
            &reader
                .hash(stored_hash_index(0, leaves.leaf))
                .map_err(|e| ProveError::Store(damaged(e.to_string())))?,
        )),
    };
    let removal = match leaves.removal {
        None => None,
        Some((idx, prune_id)) => {
            let payload = tlog::removal_payload(LeafKind::Event, event_id, prune_id);
            let data = tlog::leaf_data(LeafKind::Removal, leaves.leaf as i64, payload.as_bytes());
            Some(RemovalLeaf {
                leaf_index: idx,
                data: String::from_utf8(data).expect("a removal leaf is text"),
                proof: proof(idx)?,
            })
        }
    };
    Ok(Bundle {
        format: FORMAT.to_string(),
        event_id,
        status: if removal.is_some() {
            ProofStatus::Removed
        } else {
            ProofStatus::Archived
        },
        checkpoint: text,
        event: EventLeaf {
            leaf_index: leaves.leaf,
            raw: leaves.raw,
            leaf_hash,
            proof: proof(leaves.leaf)?,
        },
        removal,
    })
}

/// Damage to the log's tables, as a store error.
fn damaged(detail: String) -> StoreError {
    StoreError::Damaged {
        path: "the archive".into(),
        detail: format!("its Merkle log: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Archive;

    #[test]
    fn leaves_appended_over_several_transactions_make_the_tree_go_tlog_makes_and_prove() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::time::parse_time_arg("2024-01-01").unwrap();
        let mut archive = Archive::open(&dir.path().join("a.db"), now).unwrap();
        let mut independent = Frontier::new();
        let mut n = 0i64;
        // Batches of several sizes, each loaded afresh from the stored hashes, as pages and seals are.
        for batch in [1usize, 2, 255, 256, 3, 700] {
            let tx = archive.begin().unwrap();
            let mut log = LogAppender::load(&tx).unwrap();
            for _ in 0..batch {
                let payload = format!("{{\"id\":{n}}}");
                let index = log.append(LeafKind::Event, n, payload.as_bytes());
                assert_eq!(index, n as u64);
                independent.push(leaf_hash(LeafKind::Event, n, payload.as_bytes()));
                n += 1;
                if n % 100 == 0 {
                    log.flush(&tx).unwrap();
                }
            }
            log.flush(&tx).unwrap();
            tx.commit().unwrap();
        }
        let conn = &archive.conn;
        let (_, size, root) = current_tree(conn).unwrap();
        assert_eq!((size, root), (n as u64, independent.root()));
        let reader = ChunkReader::new(conn);
        assert_eq!(tlog_tiles::tree_hash(size, &reader).unwrap(), root);
        let stored: i64 = conn
            .query_row(
                "SELECT sum(length(hashes)) / 32 FROM tlog_hashes",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored as u64, stored_hash_count(size));
        for leaf in [0u64, 1, 255, 256, 600, size - 1] {
            let proof = tlog_tiles::prove_record(size, leaf, &reader).unwrap();
            let payload = format!("{{\"id\":{leaf}}}");
            let hash = leaf_hash(LeafKind::Event, leaf as i64, payload.as_bytes());
            tlog_tiles::check_record(&proof, size, root, leaf, hash).unwrap();
        }
        // Consistency from every earlier size the batches ended at.
        for old in [1u64, 3, 258, 514, 517] {
            let old_root = tlog_tiles::tree_hash(old, &reader).unwrap();
            let proof = tlog_tiles::prove_tree(size, old, &reader).unwrap();
            tlog_tiles::check_tree(&proof, size, root, old, old_root).unwrap();
        }
    }

    #[test]
    fn a_run_lists_its_events_as_steps_and_a_damaged_list_is_named() {
        let ok: [(i64, Vec<i64>); 4] = [
            (7, vec![]),
            (1, vec![2, 3, 4]),
            (100, vec![227, 228, 100_000, 1 << 40]),
            (-5, vec![0, 1]),
        ];
        for (first, more) in ok {
            let refs = (!more.is_empty()).then(|| encode_run(first, &more));
            let mut want = vec![first];
            want.extend(&more);
            let count = want.len() as u64;
            assert_eq!(decode_run(first, count, refs.as_deref()), Ok(want));
        }
        let bad: [(u64, Option<&[u8]>, &str); 7] = [
            (2, None, "lists no rows"),
            (1, Some(&[1]), "a run of 1"),
            (3, Some(&[1]), "lists 2 rows"),
            (2, Some(&[1, 1]), "lists more rows"),
            (2, Some(&[0]), "steps by 0"),
            (2, Some(&[0x80]), "row list"),
            (5000, Some(&[1]), "a run of 5000"),
        ];
        for (count, refs, want) in bad {
            let got = decode_run(10, count, refs).unwrap_err();
            assert!(got.contains(want), "{count} {refs:?}: {got}");
        }
        assert!(decode_run(i64::MAX, 2, Some(&[1])).is_err());
    }

    #[test]
    fn events_appended_in_rising_order_share_a_row_and_each_is_found_by_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::time::parse_time_arg("2024-01-01").unwrap();
        let mut archive = Archive::open(&dir.path().join("a.db"), now).unwrap();
        let tx = archive.begin().unwrap();
        let mut log = LogAppender::load(&tx).unwrap();
        // Rising ids make one run; a falling id, a leaf of another kind and a run at its cap each start a row.
        let mut leaves = Vec::new();
        let mut event = |log: &mut LogAppender, id: i64| {
            leaves.push((log.append(LeafKind::Event, id, b"{}"), id));
        };
        for id in [10, 11, 15, 300] {
            event(&mut log, id);
        }
        event(&mut log, 12);
        log.append(LeafKind::Reject, 1, b"x");
        event(&mut log, 13);
        for id in 1000..1000 + MAX_RUN as i64 + 1 {
            event(&mut log, id);
        }
        log.flush(&tx).unwrap();
        tx.commit().unwrap();
        let conn = &archive.conn;
        let rows: Vec<(i64, String, i64, i64)> = conn
            .prepare("SELECT idx, kind, ref, count FROM tlog_leaves ORDER BY idx")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let event = |idx, r, count| (idx, "event".to_string(), r, count);
        let run = MAX_RUN as i64;
        assert_eq!(
            rows,
            vec![
                event(0, 10, 4),
                event(4, 12, 1),
                (5, "reject".to_string(), 1, 1),
                event(6, 13, 1 + run - 1),
                event(6 + run, 999 + run, 2),
            ]
        );
        assert_eq!(log_size(conn).unwrap(), 8 + run as u64);
        let mut finder = EventLeafFinder::new(conn);
        for (leaf, id) in leaves {
            assert_eq!(finder.find(id).unwrap(), Some(leaf), "event {id}");
        }
        for id in [9, 14, 16, 299, 301, 999, 1000 + run + 1] {
            assert_eq!(finder.find(id).unwrap(), None, "event {id}");
        }
    }
}
