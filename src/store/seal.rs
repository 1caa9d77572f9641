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
//! A seal also keeps its members (each inserted event's id and the first 8 bytes of its digest), so that
//! `verify` can name the ids deleted, inserted or edited, even by someone who also rewrote the digests.
//! A chain kept in the same file can be rewritten whole by whoever can write the file: the chain head, kept
//! elsewhere and passed to `verify --anchor`, is what catches that.

pub mod lines;

use super::{SqlContext, StoreError};
use crate::model::WindowStatus;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The `previous` of the first seal.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Bytes per member in `seals.members`: 8-byte big-endian id, 8-byte digest prefix.
pub const MEMBER_BYTES: usize = 16;

pub use crate::digest::sha256_hex;

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
    /// Members, [`MEMBER_BYTES`] per inserted event, by id.
    pub members: Vec<u8>,
    /// Events the fetch inserted.
    pub events: i64,
    /// Revisions it inserted.
    pub revisions: i64,
}

/// The canonical description of window fetch `window_id`, as JSON lines hashed with SHA-256: a version line;
/// the ledger row (`ledger_line`); each inserted event's id and digest, by id (`event_line`); then the
/// other rows it filed (`hash_other_rows`): each revision's id, event id and digest; each reject's id, reason
/// and the SHA-256 of its text; each change at the source a reconcile's fetch found. The rows are streamed:
/// only the members grow with the window.
pub fn window_content(conn: &Connection, window_id: i64) -> rusqlite::Result<WindowContent> {
    let mut h = Sha256::new();
    line(&mut h, serde_json::json!(["elevate-archive seal", 1]));
    line(&mut h, ledger_line(conn, window_id)?);
    let (members, events) = hash_events(conn, window_id, &mut h)?;
    let revisions = hash_other_rows(conn, window_id, &mut h)?;
    Ok(WindowContent {
        content: hex::encode(h.finalize()),
        members,
        events,
        revisions,
    })
}

/// The ledger line of window fetch `window_id`: its `windows` row, every column but `error`, in schema order
/// (`QueryReturnedNoRows` if the row is gone).
fn ledger_line(conn: &Connection, window_id: i64) -> rusqlite::Result<serde_json::Value> {
    conn.query_row(
        "SELECT id, run_id, window_start, window_end, category_filter, action_filter, created_from, created_to,
                status, pages, events_received, events_new, revisions, rejects, out_of_window, started_at,
                completed_at
         FROM windows WHERE id = ?1",
        [window_id],
        |r| {
            Ok(serde_json::json!([
                "window",
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, i64>(11)?,
                r.get::<_, i64>(12)?,
                r.get::<_, i64>(13)?,
                r.get::<_, i64>(14)?,
                r.get::<_, String>(15)?,
                r.get::<_, Option<String>>(16)?,
            ]))
        },
    )
}

/// Hashes the event lines of window fetch `window_id`, by id; returns its members and how many events it
/// inserted.
fn hash_events(
    conn: &Connection,
    window_id: i64,
    h: &mut Sha256,
) -> rusqlite::Result<(Vec<u8>, i64)> {
    let mut members = Vec::new();
    let mut events = 0;
    let mut stmt =
        conn.prepare_cached("SELECT id, digest FROM events WHERE window_id = ?1 ORDER BY id")?;
    let mut rows = stmt.query([window_id])?;
    let mut text = String::with_capacity(96);
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        // A missing digest reads as "".
        let digest = r.get_ref(1)?.as_str_or_null()?.unwrap_or_default();
        members.extend_from_slice(&id.to_be_bytes());
        members.extend_from_slice(&digest_prefix(digest));
        event_line(&mut text, id, digest);
        h.update(text.as_bytes());
        events += 1;
    }
    Ok((members, events))
}

/// Writes the event line of event `id` into `text` (cleared first). The hot loop of sealing: the same bytes
/// as `json!(["event", id, digest])` and a newline, without the intermediate JSON value (digests are hex, so
/// they need no escaping).
fn event_line(text: &mut String, id: i64, digest: &str) {
    text.clear();
    let _ = writeln!(text, "[\"event\",{id},\"{digest}\"]");
}

/// Hashes the lines of the other rows window fetch `window_id` filed, each kind by id: revisions, rejects, and
/// what a reconcile's fetch found changed at the source (none for a sync's fetch, so seals made before
/// reconciliation existed describe their windows exactly as they did). Returns how many revisions it filed.
fn hash_other_rows(conn: &Connection, window_id: i64, h: &mut Sha256) -> rusqlite::Result<i64> {
    let revisions = hash_rows(
        conn,
        h,
        "SELECT id, event_id, digest FROM event_revisions WHERE window_id = ?1 ORDER BY id",
        window_id,
        |r| {
            Ok(serde_json::json!([
                "revision",
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?
            ]))
        },
    )?;
    hash_rows(
        conn,
        h,
        "SELECT id, reason, raw FROM rejects WHERE window_id = ?1 ORDER BY id",
        window_id,
        |r| {
            let raw: String = r.get(2)?;
            Ok(serde_json::json!([
                "reject",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                sha256_hex(raw.as_bytes())
            ]))
        },
    )?;
    hash_rows(
        conn,
        h,
        "SELECT id, event_id, kind, detected_at FROM source_changes WHERE window_id = ?1 ORDER BY id",
        window_id,
        |r| {
            Ok(serde_json::json!([
                "source",
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?
            ]))
        },
    )?;
    Ok(revisions)
}

/// Hashes one line per row of `sql` (its `?1` bound to `key`), each built by `to_line`; returns how many.
fn hash_rows(
    conn: &Connection,
    h: &mut Sha256,
    sql: &str,
    key: i64,
    to_line: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<serde_json::Value>,
) -> rusqlite::Result<i64> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([key])?;
    let mut count = 0;
    while let Some(r) = rows.next()? {
        line(h, to_line(r)?);
        count += 1;
    }
    Ok(count)
}

/// The canonical description of prune `prune_id`, hashed like a window's: a version line, the prune row, and
/// each window fetch it removed rows from, with the hash of the seal that vouched for them.
pub fn prune_content(conn: &Connection, prune_id: i64) -> rusqlite::Result<String> {
    let mut h = Sha256::new();
    line(&mut h, serde_json::json!(["elevate-archive prune", 1]));
    let row = conn.query_row(
        "SELECT id, pruned_at, cutoff, windows, events, revisions, rejects, ranges
         FROM prunes WHERE id = ?1",
        [prune_id],
        |r| {
            Ok(serde_json::json!([
                "prune",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
            ]))
        },
    )?;
    line(&mut h, row);
    let mut stmt = conn.prepare_cached(
        "SELECT window_id, seal_hash, events, revisions, rejects, kept FROM pruned_windows
         WHERE prune_id = ?1 ORDER BY window_id",
    )?;
    let mut rows = stmt.query([prune_id])?;
    while let Some(r) = rows.next()? {
        line(
            &mut h,
            serde_json::json!([
                "window",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?
            ]),
        );
    }
    Ok(hex::encode(h.finalize()))
}

/// Seals prune `prune_id` (inside the caller's transaction, after its rows are written).
pub(crate) fn seal_prune(
    conn: &Connection,
    prune_id: i64,
    now: &str,
) -> Result<String, StoreError> {
    let ctx = || format!("cannot seal prune {prune_id}");
    let content = prune_content(conn, prune_id).context(ctx)?;
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
        "INSERT INTO seals (prune_id, sealed_at, events, revisions, members, content, previous, hash)
         VALUES (?1, ?2, ?3, ?4, x'', ?5, ?6, ?7)",
        params![prune_id, now, events, revisions, content, previous, hash],
    )
    .context(ctx)?;
    Ok(hash)
}

/// Hashes one line of a canonical description: the value's compact JSON and a newline.
fn line(h: &mut Sha256, value: serde_json::Value) {
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

/// Decodes `seals.members` into `(id, digest prefix)` pairs.
pub fn decode_members(members: &[u8]) -> Vec<(i64, [u8; 8])> {
    members
        .chunks_exact(MEMBER_BYTES)
        .map(|m| {
            let id = i64::from_be_bytes(m[..8].try_into().expect("8 bytes"));
            (id, m[8..].try_into().expect("8 bytes"))
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

/// Seals window fetch `window_id` (inside the caller's transaction).
pub(crate) fn seal_window(conn: &Connection, window_id: i64, now: &str) -> Result<(), StoreError> {
    let ctx = || format!("cannot seal window {window_id}");
    let content = window_content(conn, window_id).context(ctx)?;
    let previous = head(conn).context(ctx)?;
    let hash = chain_hash(&previous, &content.content);
    conn.prepare_cached(
        "INSERT INTO seals (window_id, sealed_at, events, revisions, members, content, previous, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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
            hash
        ])
    })
    .context(ctx)?;
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
            store.commit_pages(sync, &[p], &mut ledger, synced).unwrap();
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
            .commit_reconciled_pages(reconcile, &[returned], &mut HashMap::new(), reconciled)
            .unwrap();
        let failed_at = at("2024-04-01");
        let failed = run(&mut store, RunKind::Sync, failed_at);
        let first = page(1, vec![event(5, r#"{"id":5}"#)], false);
        store
            .commit_pages(failed, &[first], &mut HashMap::new(), failed_at)
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

    #[test]
    fn window_content_is_the_documented_canonical_lines() {
        let (_dir, store) = three_sealed_windows();
        let d = |raw: &str| sha256_hex(raw.as_bytes());
        let window = |id: i64, counts: &str, at: &str, completed: &str| {
            format!(
                r#"["window",{id},{id},"2024-01-01T00:00:00.000Z","2024-01-02T00:00:00.000Z","","","2023-12-31T23:59:59Z","2024-01-02T00:00:00Z",{counts},"{at}",{completed}]"#
            )
        };
        let (synced, reconciled) = ("2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z");
        let sync = [
            r#"["elevate-archive seal",1]"#.to_string(),
            window(
                1,
                r#""complete",2,5,3,1,1,0"#,
                synced,
                &format!("\"{synced}\""),
            ),
            format!(r#"["event",1,"{}"]"#, d(r#"{"id":1}"#)),
            format!(r#"["event",2,"{}"]"#, d(r#"{"id":2}"#)),
            format!(r#"["event",3,"{}"]"#, d(r#"{"id":3}"#)),
            format!(r#"["revision",1,2,"{}"]"#, d(r#"{"id":2,"v":2}"#)),
            format!(
                r#"["reject",1,"not a JSON object (it is a number)","{}"]"#,
                d("42")
            ),
        ];
        let reconcile = [
            r#"["elevate-archive seal",1]"#.to_string(),
            window(
                2,
                r#""complete",1,2,1,1,0,0"#,
                reconciled,
                &format!("\"{reconciled}\""),
            ),
            format!(r#"["event",4,"{}"]"#, d(r#"{"id":4}"#)),
            format!(r#"["revision",2,1,"{}"]"#, d(r#"{"id":1,"v":2}"#)),
            format!(r#"["source",1,1,"changed","{reconciled}"]"#),
            format!(r#"["source",2,4,"late","{reconciled}"]"#),
            format!(r#"["source",3,2,"deleted","{reconciled}"]"#),
            format!(r#"["source",4,3,"deleted","{reconciled}"]"#),
        ];
        let failed = [
            r#"["elevate-archive seal",1]"#.to_string(),
            window(
                3,
                r#""failed",1,1,1,0,0,0"#,
                "2024-04-01T00:00:00.000Z",
                "null",
            ),
            format!(r#"["event",5,"{}"]"#, d(r#"{"id":5}"#)),
        ];
        let cases = [
            (1, &sync[..], 3, 1),
            (2, &reconcile[..], 1, 1),
            (3, &failed[..], 1, 0),
        ];
        for (window_id, lines, events, revisions) in cases {
            let now = window_content(&store.conn, window_id).unwrap();
            let sealed: String = store
                .conn
                .query_row(
                    "SELECT content FROM seals WHERE window_id = ?1",
                    [window_id],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(now.content, hash_lines(lines), "window {window_id}");
            assert_eq!(sealed, now.content, "window {window_id}'s seal");
            assert_eq!((now.events, now.revisions), (events, revisions));
            assert_eq!(now.members.len(), events as usize * MEMBER_BYTES);
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
        assert_eq!(decode_members(&members), vec![(42, digest_prefix(&digest))]);
        assert_eq!(digest_prefix("zz"), [0; 8]);
    }
}
