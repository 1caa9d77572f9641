//! Seals: the archive's tamper evidence.
//!
//! Every event and revision carries the SHA-256 of its `raw`. Every window fetch that ends (complete with its
//! last page, failed or interrupted at the end of a run, or found interrupted by the next run) is sealed in
//! the same transaction: a seal is the SHA-256 of the window's canonical description ([`window_content`]),
//! chained to the previous seal: `hash = SHA-256(previous || content)`. Each event is inserted by exactly one
//! window fetch (`events.window_id`), so every archived row is under exactly one seal. A window read again
//! later is a new fetch, with a new seal; old seals are never rewritten (triggers refuse UPDATE and DELETE).
//!
//! A `prune` is sealed the same way, in the same chain ([`prune_content`]): what it removed, and the seal that
//! vouched for each window fetch it removed rows from. What a `reconcile` fetch found changed at the source
//! (`source_changes`) is part of that fetch's window content.
//!
//! The writer gathers the event lines of each window fetch it is paging as it stores its events
//! ([`OpenLines`]), so that sealing a large window hashes them rather than reading every event back; they are
//! used only when they still match the window's rows, and the seal is the same either way.
//!
//! A seal also keeps its members (each inserted event's id and the first 8 bytes of its digest), so that
//! `verify` can name the ids deleted, inserted or edited, even by someone who also rewrote the digests.
//! A chain kept in the same file can be rewritten whole by whoever can write the file: the chain head, kept
//! elsewhere and passed to `verify --anchor`, is what catches that.
//!
//! Each seal records its format ([`SealFormat`], `seals.format`), and is verified with the format it was made
//! with, so seals made by older versions keep verifying. Version 1 describes a window fetch's ledger row but
//! its `error`, its events' and revisions' ids and digests, its rejects' reasons and texts, and its changes
//! at the source. Version 2 (every seal made now) describes every column of those rows: also the ledger's
//! `error`, each event's and revision's `fetched_at`, each reject's `page` and `received_at`. It keeps per
//! event the first 8 bytes of the SHA-256 of its `fetched_at` among its members, and the lines other than
//! events ([`lines`]), so that `verify` names the row and column that changed. A version 2 prune also records,
//! per window fetch, its ledger line and the lines of the events it left there ([`ledger_text`],
//! [`kept_lines`]), and hashes them: what a prune leaves is vouched for by the chain.

pub mod lines;

use super::{SqlContext, StoreError};
use crate::model::WindowStatus;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt::Write as _;

/// The `previous` of the first seal.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Bytes per member in a version 1 seal's `members`: 8-byte big-endian id, 8-byte digest prefix.
pub const MEMBER_BYTES: usize = 16;

pub use crate::digest::sha256_hex;

/// How a seal describes what it seals (`seals.format`); see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SealFormat {
    /// The first format: the ledger row but its `error`; events', revisions' and rejects' ids and contents.
    V1,
    /// Every column of every row, `fetched_at` among the members, and the non-event lines kept.
    V2,
}

impl SealFormat {
    /// The format new seals are made with.
    pub const CURRENT: SealFormat = SealFormat::V2;
    /// Every format, oldest first.
    pub const ALL: [SealFormat; 2] = [SealFormat::V1, SealFormat::V2];

    /// The number stored in `seals.format` and written in the description's version line.
    pub const fn number(self) -> i64 {
        match self {
            SealFormat::V1 => 1,
            SealFormat::V2 => 2,
        }
    }

    /// The format numbered `n`, if there is one.
    pub fn from_number(n: i64) -> Option<SealFormat> {
        SealFormat::ALL.into_iter().find(|f| f.number() == n)
    }

    /// Bytes per member in `members`: the id and the digest prefix, then (version 2) the `fetched_at` prefix.
    pub const fn member_bytes(self) -> usize {
        match self {
            SealFormat::V1 => MEMBER_BYTES,
            SealFormat::V2 => MEMBER_BYTES + 8,
        }
    }
}

/// The hash of a seal: SHA-256 of the previous seal's hash followed by this seal's content hash.
pub fn chain_hash(previous: &str, content: &str) -> String {
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(content.as_bytes());
    hex::encode(h.finalize())
}

/// What a window fetch holds, described canonically from the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowContent {
    /// Hex SHA-256 of the canonical description.
    pub content: String,
    /// Members, [`SealFormat::member_bytes`] per inserted event, by id.
    pub members: Vec<u8>,
    /// Version 2: the description's lines other than the version line and the events, each with a newline
    /// (empty for version 1).
    pub lines: String,
    /// Events the fetch inserted.
    pub events: i64,
    /// Revisions it inserted.
    pub revisions: i64,
}

/// A canonical description being hashed, keeping (version 2) its lines other than the version line and events.
struct Description {
    /// The hash so far.
    h: Sha256,
    /// The lines kept.
    lines: String,
    /// Whether lines are kept.
    keep: bool,
}

impl Description {
    /// Starts a description with its version line `[title, format]`.
    fn new(title: &str, format: SealFormat) -> Description {
        let mut h = Sha256::new();
        line(&mut h, serde_json::json!([title, format.number()]));
        Description {
            h,
            lines: String::new(),
            keep: format >= SealFormat::V2,
        }
    }

    /// Hashes (and keeps) one line.
    fn line(&mut self, value: Value) {
        let text = value.to_string();
        self.h.update(text.as_bytes());
        self.h.update(b"\n");
        if self.keep {
            self.lines.push_str(&text);
            self.lines.push('\n');
        }
    }
}

/// The canonical description of window fetch `window_id` in `format`, as JSON lines hashed with SHA-256: a
/// version line; the ledger line ([`ledger_line`]); each inserted event's line, by id (`event_line`); then the
/// other rows it filed (`hash_other_rows`): each revision, each reject (its text as its SHA-256), each change
/// at the source a reconcile's fetch found. The rows are streamed: only the members and the kept lines grow
/// with the window.
pub fn window_content(
    conn: &Connection,
    window_id: i64,
    format: SealFormat,
) -> rusqlite::Result<WindowContent> {
    let mut d = Description::new("elevate-archive seal", format);
    d.line(ledger_line(conn, window_id, format)?);
    let (members, events) = hash_events(conn, window_id, format, &mut d.h)?;
    let revisions = hash_other_rows(conn, window_id, format, &mut d)?;
    Ok(WindowContent {
        content: hex::encode(d.h.finalize()),
        members,
        lines: d.lines,
        events,
        revisions,
    })
}

/// The event lines of a window fetch still being paged, gathered by the writer as it stores the window's
/// events, so that sealing the window hashes them instead of reading every event back (for a dense day, most
/// of the time its last transaction takes). They are the current format's lines and members, exactly as
/// [`window_content`] makes them from the rows; they are used only if every event the window inserted went
/// through [`OpenLines::push`] in ascending id order (as pages asked for `sort=id` come), and if the window's
/// rows still number as many with the same last id when it is sealed. Otherwise the window is sealed from its
/// rows, as always.
#[derive(Debug, Default)]
pub struct OpenLines {
    /// The event lines so far, in chunks of about [`OPEN_LINES_CHUNK`] bytes (no copying as they grow).
    chunks: Vec<String>,
    /// The members so far.
    members: Vec<u8>,
    /// Events pushed.
    events: i64,
    /// The last id pushed.
    last: Option<i64>,
    /// The last `fetched_at` and its prefix.
    fetched: Option<(String, [u8; 8])>,
    /// One line, reused.
    line: String,
}

/// Bytes per chunk of [`OpenLines`].
const OPEN_LINES_CHUNK: usize = 64 * 1024;

impl OpenLines {
    /// Adds an event the window inserted; false if its id does not follow the last one's (the lines can then
    /// no longer describe the window: the caller drops them).
    pub fn push(&mut self, id: i64, digest: &str, fetched_at: &str) -> bool {
        if self.last.is_some_and(|last| id <= last) {
            return false;
        }
        self.last = Some(id);
        self.events += 1;
        self.members.extend_from_slice(&id.to_be_bytes());
        event_v2(
            &mut self.line,
            &mut self.members,
            &mut self.fetched,
            id,
            digest,
            fetched_at,
        );
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() + self.line.len() <= chunk.capacity() => {
                chunk.push_str(&self.line);
            }
            _ => {
                let mut chunk = String::with_capacity(OPEN_LINES_CHUNK.max(self.line.len()));
                chunk.push_str(&self.line);
                self.chunks.push(chunk);
            }
        }
        true
    }

    /// The memory it holds, in bytes.
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(String::capacity).sum::<usize>() + self.members.capacity()
    }

    /// Whether window fetch `window_id`'s rows are still the events pushed: as many, with the same last id.
    /// (Nothing removes or edits an event while a sync holds the archive; an event inserted out of order was
    /// refused by [`OpenLines::push`]; this check is the guard against anything else.)
    fn describes(&self, conn: &Connection, window_id: i64) -> rusqlite::Result<bool> {
        let (count, last): (i64, Option<i64>) = conn
            .prepare_cached("SELECT count(*), max(id) FROM events WHERE window_id = ?1")?
            .query_row([window_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(count == self.events && last == self.last)
    }
}

/// [`window_content`] in the current format, with the event lines and members taken from `open` (which
/// [`OpenLines::describes`] the window's rows) instead of read back from the rows.
fn window_content_from(
    conn: &Connection,
    window_id: i64,
    open: OpenLines,
) -> rusqlite::Result<WindowContent> {
    let format = SealFormat::V2;
    let mut d = Description::new("elevate-archive seal", format);
    d.line(ledger_line(conn, window_id, format)?);
    for chunk in &open.chunks {
        d.h.update(chunk.as_bytes());
    }
    let revisions = hash_other_rows(conn, window_id, format, &mut d)?;
    Ok(WindowContent {
        content: hex::encode(d.h.finalize()),
        members: open.members,
        lines: d.lines,
        events: open.events,
        revisions,
    })
}

/// The ledger line of window fetch `window_id`: its `windows` row in schema order, `error` included from
/// version 2 on (`QueryReturnedNoRows` if the row is gone).
pub fn ledger_line(
    conn: &Connection,
    window_id: i64,
    format: SealFormat,
) -> rusqlite::Result<Value> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, run_id, window_start, window_end, category_filter, action_filter, created_from, created_to,
                status, pages, events_received, events_new, revisions, rejects, out_of_window, started_at,
                completed_at, error
         FROM windows WHERE id = ?1",
    )?;
    let columns = match format {
        SealFormat::V1 => 17,
        SealFormat::V2 => 18,
    };
    stmt.query_row([window_id], |r| tagged_line(r, "window", columns))
}

/// The version 2 ledger line of window fetch `window_id` as text (what a version 2 prune records).
pub fn ledger_text(conn: &Connection, window_id: i64) -> rusqlite::Result<String> {
    Ok(ledger_line(conn, window_id, SealFormat::V2)?.to_string())
}

/// A line: `tag`, then the row's first `columns` values as JSON (numbers, text, null: the bytes the typed
/// reads of version 1 made; a value of an unexpected type still makes a line, which then differs).
fn tagged_line(r: &rusqlite::Row<'_>, tag: &str, columns: usize) -> rusqlite::Result<Value> {
    let mut values = Vec::with_capacity(columns + 1);
    values.push(Value::from(tag));
    for i in 0..columns {
        values.push(match r.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::from(n),
            ValueRef::Real(x) => Value::from(x),
            ValueRef::Text(t) | ValueRef::Blob(t) => Value::from(String::from_utf8_lossy(t)),
        });
    }
    Ok(Value::Array(values))
}

/// A text cell as text (`""` for NULL; another type as its bytes or number).
fn cell_text<'r>(value: ValueRef<'r>) -> Cow<'r, str> {
    match value {
        ValueRef::Null => Cow::Borrowed(""),
        ValueRef::Integer(n) => Cow::Owned(n.to_string()),
        ValueRef::Real(x) => Cow::Owned(x.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t),
    }
}

/// Hashes the event lines of window fetch `window_id`, by id; returns its members and how many events it
/// inserted.
fn hash_events(
    conn: &Connection,
    window_id: i64,
    format: SealFormat,
    h: &mut Sha256,
) -> rusqlite::Result<(Vec<u8>, i64)> {
    let mut members = Vec::new();
    let mut events = 0;
    let mut stmt = conn.prepare_cached(
        "SELECT id, digest, fetched_at FROM events WHERE window_id = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([window_id])?;
    let mut text = String::with_capacity(128);
    let mut fetched: Option<(String, [u8; 8])> = None;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        members.extend_from_slice(&id.to_be_bytes());
        match format {
            SealFormat::V1 => {
                // A missing digest reads as "".
                let digest = r.get_ref(1)?.as_str_or_null()?.unwrap_or_default();
                members.extend_from_slice(&digest_prefix(digest));
                event_line(&mut text, id, digest);
            }
            SealFormat::V2 => {
                let (digest, fetched_at) = (cell_text(r.get_ref(1)?), cell_text(r.get_ref(2)?));
                event_v2(
                    &mut text,
                    &mut members,
                    &mut fetched,
                    id,
                    &digest,
                    &fetched_at,
                );
            }
        }
        h.update(text.as_bytes());
        events += 1;
    }
    Ok((members, events))
}

/// Writes the version 2 line of event `id` into `text` (cleared first) and appends the rest of its member
/// (after its id) to `members`; `fetched` keeps the last `fetched_at` and its prefix (events of a page share
/// their `fetched_at`: its prefix is computed once per run of equal values).
fn event_v2(
    text: &mut String,
    members: &mut Vec<u8>,
    fetched: &mut Option<(String, [u8; 8])>,
    id: i64,
    digest: &str,
    fetched_at: &str,
) {
    let prefix = match fetched {
        Some((text, prefix)) if text == fetched_at => *prefix,
        _ => {
            let prefix = text_prefix(fetched_at);
            *fetched = Some((fetched_at.to_string(), prefix));
            prefix
        }
    };
    members.extend_from_slice(&digest_prefix(digest));
    members.extend_from_slice(&prefix);
    lines::event_line_v2(text, id, digest, fetched_at);
}

/// Writes the version 1 event line of event `id` into `text` (cleared first). The hot loop of sealing: the
/// same bytes as `json!(["event", id, digest])` and a newline, without the intermediate JSON value (digests
/// are hex, so they need no escaping).
fn event_line(text: &mut String, id: i64, digest: &str) {
    text.clear();
    let _ = writeln!(text, "[\"event\",{id},\"{digest}\"]");
}

/// The version 2 lines of every row filed under window fetch `window_id` now but its ledger row: its events,
/// by id, then its revisions, rejects and changes at the source, as in its description (what a version 2
/// prune records of what it leaves, and what `verify` compares with that record). Prunes that removed a
/// window fetch's other rows whole recorded its event lines alone, which is what this gives for it.
pub fn kept_lines(conn: &Connection, window_id: i64) -> rusqlite::Result<String> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, digest, fetched_at FROM events WHERE window_id = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([window_id])?;
    let (mut out, mut text) = (String::new(), String::new());
    while let Some(r) = rows.next()? {
        let (digest, fetched_at) = (cell_text(r.get_ref(1)?), cell_text(r.get_ref(2)?));
        lines::event_line_v2(&mut text, r.get(0)?, &digest, &fetched_at);
        out.push_str(&text);
    }
    let mut others = Description::new("elevate-archive kept", SealFormat::V2);
    hash_other_rows(conn, window_id, SealFormat::V2, &mut others)?;
    out.push_str(&others.lines);
    Ok(out)
}

/// Hashes the lines of the other rows window fetch `window_id` filed, each kind by id: revisions, rejects, and
/// what a reconcile's fetch found changed at the source (none for a sync's fetch, so seals made before
/// reconciliation existed describe their windows exactly as they did). Returns how many revisions it filed.
fn hash_other_rows(
    conn: &Connection,
    window_id: i64,
    format: SealFormat,
    d: &mut Description,
) -> rusqlite::Result<i64> {
    let v2 = format >= SealFormat::V2;
    let revisions = hash_rows(
        conn,
        d,
        "SELECT id, event_id, digest, fetched_at FROM event_revisions WHERE window_id = ?1 ORDER BY id",
        window_id,
        |r| tagged_line(r, "revision", if v2 { 4 } else { 3 }),
    )?;
    hash_rows(
        conn,
        d,
        "SELECT id, reason, raw, page, received_at FROM rejects WHERE window_id = ?1 ORDER BY id",
        window_id,
        |r| {
            let mut line = tagged_line(r, "reject", if v2 { 5 } else { 3 })?;
            // The text as its SHA-256.
            line[3] = Value::from(sha256_hex(cell_text(r.get_ref(2)?).as_bytes()));
            Ok(line)
        },
    )?;
    hash_rows(
        conn,
        d,
        "SELECT id, event_id, kind, detected_at FROM source_changes WHERE window_id = ?1 ORDER BY id",
        window_id,
        |r| tagged_line(r, "source", 4),
    )?;
    Ok(revisions)
}

/// Hashes one line per row of `sql` (its `?1` bound to `key`), each built by `to_line`; returns how many.
fn hash_rows(
    conn: &Connection,
    d: &mut Description,
    sql: &str,
    key: i64,
    to_line: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<Value>,
) -> rusqlite::Result<i64> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([key])?;
    let mut count = 0;
    while let Some(r) = rows.next()? {
        d.line(to_line(r)?);
        count += 1;
    }
    Ok(count)
}

/// The canonical description of prune `prune_id` in `format`, hashed like a window's: a version line, the
/// prune row, and each window fetch it removed rows from, with the hash of the seal that vouched for them
/// and (version 2) the ledger line and the SHA-256 of the event lines it recorded for it.
pub fn prune_content(
    conn: &Connection,
    prune_id: i64,
    format: SealFormat,
) -> rusqlite::Result<String> {
    let mut d = Description::new("elevate-archive prune", format);
    let row = conn.query_row(
        "SELECT id, pruned_at, cutoff, windows, events, revisions, rejects, ranges
         FROM prunes WHERE id = ?1",
        [prune_id],
        |r| tagged_line(r, "prune", 8),
    )?;
    d.line(row);
    let mut stmt = conn.prepare_cached(
        "SELECT window_id, seal_hash, events, revisions, rejects, kept, ledger, kept_lines
         FROM pruned_windows WHERE prune_id = ?1 ORDER BY window_id",
    )?;
    let mut rows = stmt.query([prune_id])?;
    while let Some(r) = rows.next()? {
        let line = match format {
            SealFormat::V1 => tagged_line(r, "window", 6)?,
            SealFormat::V2 => {
                // Through `ledger`, then the SHA-256 of `kept_lines`.
                let mut line = tagged_line(r, "window", 7)?;
                let kept = match r.get_ref(7)? {
                    ValueRef::Null => Value::Null,
                    kept => Value::from(sha256_hex(cell_text(kept).as_bytes())),
                };
                line.as_array_mut().expect("a line is an array").push(kept);
                line
            }
        };
        d.line(line);
    }
    Ok(hex::encode(d.h.finalize()))
}

/// Seals prune `prune_id` (inside the caller's transaction, after its rows are written).
pub(crate) fn seal_prune(
    conn: &Connection,
    prune_id: i64,
    now: &str,
) -> Result<String, StoreError> {
    let ctx = || format!("cannot seal prune {prune_id}");
    let format = SealFormat::CURRENT;
    let content = prune_content(conn, prune_id, format).context(ctx)?;
    let (events, revisions): (i64, i64) = conn
        .query_row(
            "SELECT events, revisions FROM prunes WHERE id = ?1",
            [prune_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context(ctx)?;
    let previous = head(conn).context(ctx)?;
    let hash = chain_hash(&previous, &content);
    conn.execute(
        "INSERT INTO seals (prune_id, sealed_at, events, revisions, members, content, previous, hash, format)
         VALUES (?1, ?2, ?3, ?4, x'', ?5, ?6, ?7, ?8)",
        params![prune_id, now, events, revisions, content, previous, hash, format],
    )
    .context(ctx)?;
    let seal_id = conn.last_insert_rowid();
    super::tlog::append_seal(conn, crate::model::LeafKind::PruneSeal, seal_id, &hash)?;
    Ok(hash)
}

/// Hashes one line of a canonical description: the value's compact JSON and a newline.
fn line(h: &mut Sha256, value: Value) {
    h.update(value.to_string().as_bytes());
    h.update(b"\n");
}

/// The first 8 bytes of a hex digest (zeros if it is missing or malformed).
pub fn digest_prefix(hex_digest: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    if let Some(text) = hex_digest.get(..16) {
        let _ = hex::decode_to_slice(text, &mut out);
    }
    out
}

/// The first 8 bytes of the SHA-256 of a text (a version 2 member's `fetched_at`).
pub fn text_prefix(text: &str) -> [u8; 8] {
    Sha256::digest(text.as_bytes())[..8]
        .try_into()
        .expect("8 bytes")
}

/// One member of a seal: an event it sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The event's id.
    pub id: i64,
    /// The first 8 bytes of its digest.
    pub digest: [u8; 8],
    /// Version 2: the first 8 bytes of the SHA-256 of its `fetched_at`.
    pub fetched_at: Option<[u8; 8]>,
}

/// Decodes `seals.members` of a seal in `format`.
pub fn decode_members(members: &[u8], format: SealFormat) -> Vec<Member> {
    let bytes = |m: &[u8], at: usize| -> [u8; 8] { m[at..at + 8].try_into().expect("8 bytes") };
    members
        .chunks_exact(format.member_bytes())
        .map(|m| Member {
            id: i64::from_be_bytes(bytes(m, 0)),
            digest: bytes(m, 8),
            fetched_at: (format >= SealFormat::V2).then(|| bytes(m, 16)),
        })
        .collect()
}

/// The newest seal's hash, or [`GENESIS`] if there is none.
pub fn head(conn: &Connection) -> rusqlite::Result<String> {
    Ok(conn
        .query_row("SELECT hash FROM seals ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or_else(|| GENESIS.to_string()))
}

/// Seals window fetch `window_id` (inside the caller's transaction), in the current format.
pub(crate) fn seal_window(conn: &Connection, window_id: i64, now: &str) -> Result<(), StoreError> {
    seal_window_with(conn, window_id, now, None)
}

/// [`seal_window`], hashing the event lines the writer gathered in `open` when they still describe the
/// window's rows (see [`OpenLines`]), else reading them from the rows.
pub(crate) fn seal_window_with(
    conn: &Connection,
    window_id: i64,
    now: &str,
    open: Option<OpenLines>,
) -> Result<(), StoreError> {
    let ctx = || format!("cannot seal window {window_id}");
    let format = SealFormat::CURRENT;
    let open = match open {
        Some(open)
            if format == SealFormat::V2 && open.describes(conn, window_id).context(ctx)? =>
        {
            Some(open)
        }
        _ => None,
    };
    let content = match open {
        Some(open) => window_content_from(conn, window_id, open),
        None => window_content(conn, window_id, format),
    }
    .context(ctx)?;
    let previous = head(conn).context(ctx)?;
    let hash = chain_hash(&previous, &content.content);
    conn.prepare_cached(
        "INSERT INTO seals (window_id, sealed_at, events, revisions, members, content, previous, hash, format,
                            lines)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            window_id,
            now,
            content.events,
            content.revisions,
            content.members,
            content.content,
            previous,
            hash,
            format,
            content.lines
        ])
    })
    .context(ctx)?;
    let seal_id = conn.last_insert_rowid();
    super::tlog::append_seal(conn, crate::model::LeafKind::WindowSeal, seal_id, &hash)?;
    Ok(())
}

/// Seals every ended window fetch that has no seal yet, oldest first (used once, when an archive made before
/// seals existed is upgraded; afterwards windows are sealed as they end).
pub(crate) fn seal_backlog(conn: &Connection, now: &str) -> Result<usize, StoreError> {
    let ctx = || "cannot seal the archive's existing windows".to_string();
    conn.execute(
        "UPDATE events SET digest = sha256_hex(raw) WHERE digest IS NULL",
        [],
    )
    .context(ctx)?;
    conn.execute(
        "UPDATE event_revisions SET digest = sha256_hex(raw) WHERE digest IS NULL",
        [],
    )
    .context(ctx)?;
    let ids = unsealed_windows(conn).context(ctx)?;
    for id in &ids {
        seal_window(conn, *id, now)?;
    }
    Ok(ids.len())
}

/// Window fetches that have ended (complete, failed, interrupted) but have no seal, oldest first.
pub fn unsealed_windows(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    conn.prepare(
        "SELECT w.id FROM windows w LEFT JOIN seals s ON s.window_id = w.id
         WHERE s.id IS NULL AND w.status <> ?1 ORDER BY w.id",
    )?
    .query_map([WindowStatus::Running], |r| r.get(0))?
    .collect()
}

/// Registers `sha256_hex(text)` on a connection, for the backlog's digests.
pub(crate) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "sha256_hex",
        1,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            let text: String = ctx.get(0)?;
            Ok(sha256_hex(text.as_bytes()))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Event, Filters, Interval, Item, PageBatch, Reject, RejectReason, RunKind, WindowSpec,
    };
    use crate::store::Archive;
    use crate::store::write::RunStart;
    use crate::time::{self, Timestamp};
    use std::collections::HashMap;
    use std::sync::Arc;

    fn at(text: &str) -> Timestamp {
        time::parse_time_arg(text).unwrap()
    }

    fn spec() -> Arc<WindowSpec> {
        Arc::new(WindowSpec {
            interval: Interval::new(at("2024-01-01"), at("2024-01-02")),
            filters: Filters::default(),
            created_from: at("2023-12-31T23:59:59Z"),
            created_to: at("2024-01-02"),
        })
    }

    fn event(id: i64, raw: &str) -> Item {
        Item::Event(Event {
            id,
            timestamp: "2024-01-01T10:00:00.000Z".into(),
            category: "authentication".into(),
            action: "user-login-success".into(),
            description: None,
            username: None,
            ip_address: None,
            raw: raw.into(),
            digest: sha256_hex(raw.as_bytes()),
            leaf: None,
            out_of_window: false,
        })
    }

    fn page(page: u32, items: Vec<Item>, last: bool) -> PageBatch {
        PageBatch {
            window_seq: 0,
            window: spec(),
            page,
            items,
            last,
            deleted_at_source: Vec::new(),
        }
    }

    fn run(store: &mut Archive, kind: RunKind, now: Timestamp) -> i64 {
        let start = RunStart {
            range: spec().interval,
            filters: Filters::default(),
            base_url: "http://127.0.0.1/v1".into(),
            windows_planned: 1,
            kind,
            lookback: None,
        };
        store.begin_run(&start, now).unwrap()
    }

    /// Builds, through the writer, a sync's window fetch (three events over two pages, a revision, a reject),
    /// a reconcile's (a change, a late arrival, two deletions at the source) and a failed one (one page).
    fn three_sealed_windows() -> (tempfile::TempDir, Archive) {
        let dir = tempfile::tempdir().unwrap();
        let (synced, reconciled) = (at("2024-02-01"), at("2024-03-01"));
        let mut store = Archive::open(&dir.path().join("a.db"), synced).unwrap();
        let sync = run(&mut store, RunKind::Sync, synced);
        let reject = Item::Reject(Reject {
            raw: "42".into(),
            reason: RejectReason::NotAnObject("a number"),
        });
        let pages = [
            page(
                1,
                vec![event(1, r#"{"id":1}"#), event(2, r#"{"id":2}"#), reject],
                false,
            ),
            page(
                2,
                vec![event(2, r#"{"id":2,"v":2}"#), event(3, r#"{"id":3}"#)],
                true,
            ),
        ];
        let mut ledger = HashMap::new();
        for p in pages {
            store
                .commit_pages(
                    sync,
                    &[p],
                    &mut ledger,
                    synced,
                    crate::store::write::SearchIndexing::Now,
                )
                .unwrap();
        }
        let reconcile = run(&mut store, RunKind::Reconcile, reconciled);
        let mut returned = page(
            1,
            vec![event(1, r#"{"id":1,"v":2}"#), event(4, r#"{"id":4}"#)],
            true,
        );
        // Events 2 and 3, archived in the window's range and not returned, confirmed gone at the source.
        returned.deleted_at_source = vec![2, 3];
        store
            .commit_reconciled_pages(
                reconcile,
                &[returned],
                &mut HashMap::new(),
                reconciled,
                crate::store::write::SearchIndexing::Now,
            )
            .unwrap();
        let failed_at = at("2024-04-01");
        let failed = run(&mut store, RunKind::Sync, failed_at);
        let first = page(1, vec![event(5, r#"{"id":5}"#)], false);
        store
            .commit_pages(
                failed,
                &[first],
                &mut HashMap::new(),
                failed_at,
                crate::store::write::SearchIndexing::Now,
            )
            .unwrap();
        store
            .finish_run(
                failed,
                &crate::store::write::RunEnd {
                    status: crate::model::RunStatus::Failed,
                    error: Some("boom"),
                    served_fewer: None,
                },
                failed_at,
            )
            .unwrap();
        (dir, store)
    }

    /// The SHA-256 of canonical lines, each followed by a newline.
    fn hash_lines(lines: &[String]) -> String {
        sha256_hex(
            lines
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .as_bytes(),
        )
    }

    /// The canonical lines of the windows `three_sealed_windows` builds, in `format`: (window, lines, events,
    /// revisions).
    fn documented_lines(format: SealFormat) -> Vec<(i64, Vec<String>, i64, i64)> {
        let v2 = format == SealFormat::V2;
        let d = |raw: &str| sha256_hex(raw.as_bytes());
        let (synced, reconciled) = ("2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z");
        let version = format!(r#"["elevate-archive seal",{}]"#, format.number());
        let window = |id: i64, counts: &str, at: &str, completed: &str, error: &str| {
            let line = format!(
                r#"["window",{id},{id},"2024-01-01T00:00:00.000Z","2024-01-02T00:00:00.000Z","","","2023-12-31T23:59:59Z","2024-01-02T00:00:00Z",{counts},"{at}",{completed}"#
            );
            if v2 {
                format!("{line},{error}]")
            } else {
                format!("{line}]")
            }
        };
        // The rest of a line from version 2 on.
        let then = |rest: String| {
            if v2 {
                format!(",{rest}]")
            } else {
                "]".to_string()
            }
        };
        let event = |id: i64, raw: &str, at: &str| {
            format!(r#"["event",{id},"{}"{}"#, d(raw), then(format!("\"{at}\"")))
        };
        let sync = vec![
            version.clone(),
            window(
                1,
                r#""complete",2,5,3,1,1,0"#,
                synced,
                &format!("\"{synced}\""),
                "null",
            ),
            event(1, r#"{"id":1}"#, synced),
            event(2, r#"{"id":2}"#, synced),
            event(3, r#"{"id":3}"#, synced),
            format!(
                r#"["revision",1,2,"{}"{}"#,
                d(r#"{"id":2,"v":2}"#),
                then(format!("\"{synced}\""))
            ),
            format!(
                r#"["reject",1,"not a JSON object (it is a number)","{}"{}"#,
                d("42"),
                then(format!("1,\"{synced}\""))
            ),
        ];
        let reconcile = vec![
            version.clone(),
            window(
                2,
                r#""complete",1,2,1,1,0,0"#,
                reconciled,
                &format!("\"{reconciled}\""),
                "null",
            ),
            event(4, r#"{"id":4}"#, reconciled),
            format!(
                r#"["revision",2,1,"{}"{}"#,
                d(r#"{"id":1,"v":2}"#),
                then(format!("\"{reconciled}\""))
            ),
            format!(r#"["source",1,1,"changed","{reconciled}"]"#),
            format!(r#"["source",2,4,"late","{reconciled}"]"#),
            format!(r#"["source",3,2,"deleted","{reconciled}"]"#),
            format!(r#"["source",4,3,"deleted","{reconciled}"]"#),
        ];
        let failed_at = "2024-04-01T00:00:00.000Z";
        let failed = vec![
            version,
            window(3, r#""failed",1,1,1,0,0,0"#, failed_at, "null", r#""boom""#),
            event(5, r#"{"id":5}"#, failed_at),
        ];
        vec![(1, sync, 3, 1), (2, reconcile, 1, 1), (3, failed, 1, 0)]
    }

    #[test]
    fn window_content_is_the_documented_canonical_lines_in_each_format() {
        let (_dir, store) = three_sealed_windows();
        for format in SealFormat::ALL {
            for (window_id, lines, events, revisions) in documented_lines(format) {
                let now = window_content(&store.conn, window_id, format).unwrap();
                let case = format!("window {window_id}, {format:?}");
                assert_eq!(now.content, hash_lines(&lines), "{case}");
                let kept: String = match format {
                    SealFormat::V1 => String::new(),
                    SealFormat::V2 => lines[1..]
                        .iter()
                        .filter(|l| !l.starts_with(r#"["event","#))
                        .map(|l| format!("{l}\n"))
                        .collect(),
                };
                assert_eq!(now.lines, kept, "{case}: the lines kept");
                assert_eq!((now.events, now.revisions), (events, revisions));
                assert_eq!(now.members.len(), events as usize * format.member_bytes());
            }
        }
    }

    #[test]
    fn lines_gathered_as_events_are_stored_describe_a_window_as_its_rows_do() {
        let (_dir, store) = three_sealed_windows();
        let rows = |window_id: i64| -> Vec<(i64, String, String)> {
            store
                .conn
                .prepare(
                    "SELECT id, digest, fetched_at FROM events WHERE window_id = ?1 ORDER BY id",
                )
                .unwrap()
                .query_map([window_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        // Each window's events pushed as the writer pushes them (revisions, rejects and changes at the
        // source are read from their rows either way): the same content, members and lines.
        for window_id in 1..=3 {
            let mut open = OpenLines::default();
            for (id, digest, fetched_at) in rows(window_id) {
                assert!(open.push(id, &digest, &fetched_at));
            }
            assert!(open.describes(&store.conn, window_id).unwrap());
            assert_eq!(
                window_content_from(&store.conn, window_id, open).unwrap(),
                window_content(&store.conn, window_id, SealFormat::V2).unwrap(),
                "window {window_id}"
            );
        }
        // Lines that do not describe the rows are not used: an event missing, an extra one.
        let events = rows(1);
        let mut short = OpenLines::default();
        for (id, digest, fetched_at) in &events[1..] {
            assert!(short.push(*id, digest, fetched_at));
        }
        assert!(!short.describes(&store.conn, 1).unwrap());
        let mut extra = OpenLines::default();
        for (id, digest, fetched_at) in &events {
            assert!(extra.push(*id, digest, fetched_at));
        }
        assert!(extra.push(99, "d", "f"));
        assert!(!extra.describes(&store.conn, 1).unwrap());
        // An id that does not follow the last one is refused.
        let mut out_of_order = OpenLines::default();
        assert!(out_of_order.push(2, "d", "f"));
        assert!(!out_of_order.push(2, "d", "f"));
        assert!(!out_of_order.push(1, "d", "f"));
    }

    #[test]
    fn windows_are_sealed_in_the_current_format_with_their_lines() {
        let (_dir, store) = three_sealed_windows();
        for window_id in 1..=3 {
            let (content, members, lines, format): (String, Vec<u8>, Option<String>, SealFormat) =
                store
                    .conn
                    .query_row(
                        "SELECT content, members, lines, format FROM seals WHERE window_id = ?1",
                        [window_id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .unwrap();
            let now = window_content(&store.conn, window_id, SealFormat::CURRENT).unwrap();
            assert_eq!(format, SealFormat::CURRENT);
            assert_eq!(
                (content, members, lines),
                (now.content, now.members, Some(now.lines)),
                "window {window_id}"
            );
        }
    }

    #[test]
    fn the_event_line_is_the_canonical_json() {
        let digest = sha256_hex(b"x");
        let mut text = String::new();
        let _ = writeln!(text, "[\"event\",{},\"{digest}\"]", -42);
        assert_eq!(
            text,
            format!("{}\n", serde_json::json!(["event", -42, digest]))
        );
    }

    #[test]
    fn event_lines_are_the_canonical_json_for_any_id_and_digest() {
        let digest = sha256_hex(b"x");
        let mut text = String::from("left over from the previous event");
        for (id, digest) in [
            (42, digest.as_str()),
            (-42, digest.as_str()),
            (i64::MAX, digest.as_str()),
            (i64::MIN, ""),
            (0, "not hex, but no escaping needed"),
        ] {
            event_line(&mut text, id, digest);
            let json = serde_json::json!(["event", id, digest]);
            assert_eq!(text, format!("{json}\n"), "event {id}");
        }
    }

    #[test]
    fn chain_hashes_and_members() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            chain_hash(GENESIS, "ab"),
            sha256_hex(format!("{GENESIS}ab").as_bytes())
        );
        let digest = sha256_hex(b"x");
        let mut members = 42i64.to_be_bytes().to_vec();
        members.extend_from_slice(&digest_prefix(&digest));
        let member = Member {
            id: 42,
            digest: digest_prefix(&digest),
            fetched_at: None,
        };
        assert_eq!(decode_members(&members, SealFormat::V1), [member]);
        members.extend_from_slice(&text_prefix("2024-01-01T00:00:00.000Z"));
        let fetched_at = Some(text_prefix("2024-01-01T00:00:00.000Z"));
        assert_eq!(
            decode_members(&members, SealFormat::V2),
            [Member {
                fetched_at,
                ..member
            }]
        );
        assert_eq!(digest_prefix("zz"), [0; 8]);
        assert_eq!(text_prefix(""), digest_prefix(&sha256_hex(b"")));
    }
}
