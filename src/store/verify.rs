//! `verify`: is the archive intact and complete?
//!
//! Checks, on a read-only connection: SQLite's `integrity_check`; every event's and revision's digest against
//! its `raw`, and every event's typed columns (and a revision's `event_id`) against what its `raw` derives
//! (`columns`); the seal chain (each seal links to the one before, each hash recomputes, each window's
//! content recomputes from the rows, and each seal's members match the ids and digests now filed under its
//! window); that every ended window fetch has a seal and every row filed under one (event, revision, reject,
//! reconcile record) belongs to a sealed (or still running) one; an external anchor, if given, is in the
//! chain; and coverage gaps. Window fetches a prune removed rows from are checked against the prune's sealed
//! record instead: what is left must be what the prune kept (the event lines a version 2 prune recorded, else
//! the seal's members), and the ledger row what it recorded (version 2); every prune record must be sealed.
//! Each seal is checked with the format it was made with (`seal::SealFormat`). Findings name the window, the
//! ids and, where they can, the columns (`explain`).
//!
//! Load, then decide: [`verify`] reads what it needs into plain values (`Loaded`); pure functions turn them into
//! findings (the `check_*` functions, the `Digests`, `DerivedColumns` and `PrunedWindowCheck` folds,
//! `explain_change`); `assemble` builds the report. The one reading done while deciding is per seal
//! (`verify_sealed_rows`: that seal's members and the rows of what it seals), so that nothing held grows with
//! the events. Findings come in a fixed order: damage, edited digests, edited columns, then seal by seal (its
//! chain links, then what it vouches for), forged prunes, unsealed window fetches, orphan rows, the anchor.
//!
//! Invariant: memory stays flat however many events the archive holds. What scales with the events is never
//! loaded whole: digests and typed columns are recomputed in one streaming pass folded into `Digests` and
//! `DerivedColumns` (each `raw` parsed without copying), a seal's members and a window fetch's rows are read
//! one seal at a time, and a finding keeps at most `IDS_SHOWN` ids (with the full count). What is loaded up
//! front scales with the window fetches and prunes (one header per seal).

use super::coverage::{self, MissingRange};
use super::seal::lines::LineKind;
use super::seal::{self, GENESIS, Member, SealFormat, chain_hash, decode_members, window_content};
use super::{SqlContext, StoreError, read, retention};
use crate::model::{
    ColumnSet, EventColumn, Filters, FindingKind, Interval, StoredColumns, WindowStatus,
    gaps_between,
};
use columns::DerivedColumns;
use explain::{SealBody, check_seal_body, check_window, line_findings};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod columns;
mod explain;
pub mod ledger;
pub mod log;

/// Most ids named per finding.
const IDS_SHOWN: usize = 20;

/// One thing found wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// What kind: damaged, edited, deleted, inserted, ledger, chain, unsealed, anchor.
    pub kind: FindingKind,
    /// The window fetch concerned, if any.
    pub window_id: Option<i64>,
    /// The event ids concerned (at most `IDS_SHOWN`).
    pub ids: Vec<i64>,
    /// What it means, in words.
    pub detail: String,
}

impl Finding {
    /// A finding naming the first [`IDS_SHOWN`] of `ids`.
    fn new(
        kind: FindingKind,
        window_id: Option<i64>,
        ids: impl IntoIterator<Item = i64>,
        detail: impl Into<String>,
    ) -> Finding {
        Finding {
            kind,
            window_id,
            ids: ids.into_iter().take(IDS_SHOWN).collect(),
            detail: detail.into(),
        }
    }
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
    pub unfetched: Vec<MissingRange>,
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

/// Verifies the archive behind `conn`: load, decide seal by seal (reading one window fetch at a time), then
/// assemble the report.
/// `integrity` runs SQLite's `integrity_check` (its lines) on a thread of its own, beside every other check from
/// start to end (on a 10M-event archive it is the longest of them, about 45 s of one core), so the caller gives
/// it a connection of its own.
pub fn verify(
    conn: &Connection,
    anchor: Option<&str>,
    integrity: impl FnOnce() -> Result<Vec<String>, StoreError> + Send,
) -> Result<VerifyReport, StoreError> {
    std::thread::scope(|scope| {
        let integrity = scope.spawn(integrity);
        let checked = check(conn, anchor);
        let integrity = integrity
            .join()
            .expect("the integrity check does not panic");
        let (loaded, head, anchor_found_at, mut findings) = checked?;
        findings.splice(0..0, check_integrity(&integrity?));
        Ok(assemble(loaded, head, anchor_found_at, findings))
    })
}

/// Everything `verify` checks but SQLite's integrity check: load, then decide seal by seal. Returns what was
/// loaded, the chain head, where the anchor was found, and the findings.
fn check(
    conn: &Connection,
    anchor: Option<&str>,
) -> Result<(Loaded, String, Option<i64>, Vec<Finding>), StoreError> {
    let loaded = load(conn)?;
    let chain = check_chain(&loaded.seals, anchor);
    let mut findings = Vec::new();
    findings.extend(loaded.rows.0.findings());
    findings.extend(loaded.rows.1.findings());
    for (header, links) in loaded.seals.iter().zip(chain.links) {
        findings.extend(links);
        findings.extend(
            verify_sealed_rows(conn, header, &loaded.pruned, &loaded.pruned_ranges)
                .context(|| "cannot verify the archive".into())?,
        );
    }
    findings.extend(check_forged_prunes(
        &loaded.pruned,
        &sealed_prunes(&loaded.seals),
    ));
    findings.extend(check_unsealed(&loaded.unsealed));
    findings.extend(check_orphans(&loaded.orphans));
    findings.extend(
        ledger::check_logged_ledger(conn).context(|| "cannot verify the runs and holds".into())?,
    );
    findings.extend(check_anchor(anchor, chain.anchor_found_at));
    Ok((loaded, chain.head, chain.anchor_found_at, findings))
}

/// The chain head of an archive, for summaries.
pub fn head(conn: &Connection) -> Result<String, StoreError> {
    seal::head(conn).context(|| "cannot read the chain head".into())
}

// Load: plain values, read once (what scales with the events is folded as it streams, or read per seal).

/// What `verify` reads before deciding.
struct Loaded {
    /// The row pass, folded: digests, and the typed columns `raw` derives.
    rows: (Digests, DerivedColumns),
    /// Window fetches prunes removed rows from, with their records.
    pruned: PrunedWindows,
    /// The ranges emptied by prunes, merged.
    pruned_ranges: Vec<Interval>,
    /// Every seal's header, oldest first.
    seals: Vec<SealHeader>,
    /// Ended window fetches without a seal, oldest first.
    unsealed: Vec<i64>,
    /// Rows under no sealed or running window fetch, by table.
    orphans: Orphans,
    /// Window fetches still running.
    windows_in_progress: i64,
    /// The unfiltered coverage of the latest sync's source.
    covered: Vec<Interval>,
    /// What was asked for and is not fetched yet.
    unfetched: Vec<MissingRange>,
    /// The prunes, oldest first.
    prunes: Vec<retention::PruneRecord>,
}

/// Reads everything `verify` decides on, but the members and rows of each window fetch (read as each seal is
/// checked, see [`verify_sealed_rows`]).
fn load(conn: &Connection) -> Result<Loaded, StoreError> {
    let ctx = || "cannot verify the archive".to_string();
    let (windows, intents) = (coverage::ledger_windows(conn)?, coverage::intents(conn)?);
    let pruned_ranges = retention::pruned_ranges(conn)?;
    let primary = coverage::primary_source(&intents).unwrap_or_default();
    Ok(Loaded {
        rows: load_rows(conn).context(ctx)?,
        pruned: load_pruned(conn).context(ctx)?,
        covered: coverage::covered_for(&windows, primary, &Filters::default()),
        unfetched: coverage::missing(&windows, &intents, &pruned_ranges),
        pruned_ranges,
        seals: load_seals(conn).context(ctx)?,
        unsealed: seal::unsealed_windows(conn).context(ctx)?,
        orphans: load_orphans(conn).context(ctx)?,
        windows_in_progress: conn
            .query_row(
                "SELECT count(*) FROM windows WHERE status = ?1",
                [WindowStatus::Running],
                |r| r.get(0),
            )
            .context(ctx)?,
        prunes: retention::prunes(conn)?,
    })
}

/// The row pass: every event's and revision's digest, and the typed columns its `raw` derives, in one
/// streaming pass (a row whose `raw` no longer matches its digest is judged by its digest only).
fn load_rows(conn: &Connection) -> rusqlite::Result<(Digests, DerivedColumns)> {
    let mut digests = Digests::default();
    let mut columns = DerivedColumns::default();
    for table in Archived::ALL {
        let mut stmt = conn.prepare(table.sql())?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (id, window): (i64, Option<i64>) = (r.get(0)?, r.get(1)?);
            let raw = r.get_ref(2)?.as_str()?;
            if !digests.observe(table, id, window, raw, r.get_ref(3)?.as_str_or_null()?) {
                continue;
            }
            match table {
                Archived::Event => {
                    let (stored, not_text) = stored_columns(r, id)?;
                    columns.observe_event(window, raw, &stored, not_text);
                }
                Archived::Revision => columns.observe_revision(window, id, raw),
            }
        }
    }
    Ok((digests, columns))
}

/// The typed columns of an `events` row of [`Archived::sql`] (from its fifth column on), and those that hold
/// neither text nor NULL (a blob, which the sync never writes: it differs from anything `raw` derives).
fn stored_columns<'r>(
    r: &'r rusqlite::Row<'_>,
    id: i64,
) -> rusqlite::Result<(StoredColumns<'r>, ColumnSet)> {
    use rusqlite::types::ValueRef;
    let mut not_text = ColumnSet::default();
    let mut cell = |i: usize, column: EventColumn| -> rusqlite::Result<Option<&'r str>> {
        let text = match r.get_ref(i)? {
            ValueRef::Null => return Ok(None),
            ValueRef::Text(t) => std::str::from_utf8(t).ok(),
            ValueRef::Integer(_) | ValueRef::Real(_) | ValueRef::Blob(_) => None,
        };
        if text.is_none() {
            not_text.insert(column);
        }
        Ok(text)
    };
    let stored = StoredColumns {
        id,
        timestamp: cell(4, EventColumn::Timestamp)?.unwrap_or_default(),
        category: cell(5, EventColumn::Category)?.unwrap_or_default(),
        action: cell(6, EventColumn::Action)?.unwrap_or_default(),
        description: cell(7, EventColumn::Description)?,
        username: cell(8, EventColumn::Username)?,
        ip_address: cell(9, EventColumn::IpAddress)?,
    };
    Ok((stored, not_text))
}

/// The prune records of every window fetch prunes removed rows from, each fetch's oldest first.
fn load_pruned(conn: &Connection) -> rusqlite::Result<PrunedWindows> {
    let mut stmt = conn.prepare(
        "SELECT window_id, prune_id, seal_hash, events, revisions, kept FROM pruned_windows
         ORDER BY prune_id, window_id",
    )?;
    let mut rows = stmt.query([])?;
    let mut pruned = PrunedWindows::new();
    while let Some(r) = rows.next()? {
        let record = PrunedRow {
            prune_id: r.get(1)?,
            seal_hash: r.get(2)?,
            events: r.get(3)?,
            revisions: r.get(4)?,
            kept: r.get(5)?,
        };
        pruned.entry(r.get(0)?).or_default().push(record);
    }
    Ok(pruned)
}

/// Every seal's header (all but its members), oldest first.
fn load_seals(conn: &Connection) -> rusqlite::Result<Vec<SealHeader>> {
    conn.prepare(
        "SELECT id, window_id, prune_id, content, previous, hash, events, revisions, format
         FROM seals ORDER BY id",
    )?
    .query_map([], |r| {
        Ok(SealHeader {
            id: r.get(0)?,
            window_id: r.get(1)?,
            prune_id: r.get(2)?,
            content: r.get(3)?,
            previous: r.get(4)?,
            hash: r.get(5)?,
            events: r.get(6)?,
            revisions: r.get(7)?,
            format: r
                .get::<_, i64>(8)
                .map(|n| (n, SealFormat::from_number(n)))?,
        })
    })?
    .collect()
}

/// The members and lines of seal `seal_id`, read as the bytes and text they hold whatever their type (a seal
/// edited to hold text where a blob was is then compared, and reported, rather than failing the read).
fn load_body(conn: &Connection, seal_id: i64) -> rusqlite::Result<SealBody> {
    use rusqlite::types::ValueRef;
    let bytes = |value: ValueRef<'_>| match value {
        ValueRef::Null => None,
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
        ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
        ValueRef::Real(x) => Some(x.to_string().into_bytes()),
    };
    conn.prepare_cached("SELECT members, lines FROM seals WHERE id = ?1")?
        .query_row([seal_id], |r| {
            Ok(SealBody {
                members: bytes(r.get_ref(0)?).unwrap_or_default(),
                lines: bytes(r.get_ref(1)?).map(|b| String::from_utf8_lossy(&b).into_owned()),
            })
        })
}

/// The ledger line and event lines a (version 2) prune recorded for a window fetch, if it recorded them.
fn load_recorded_lines(
    conn: &Connection,
    prune_id: i64,
    window_id: i64,
) -> rusqlite::Result<Option<(String, String)>> {
    let (ledger, kept): (Option<String>, Option<String>) = conn
        .prepare_cached(
            "SELECT ledger, kept_lines FROM pruned_windows WHERE prune_id = ?1 AND window_id = ?2",
        )?
        .query_row([prune_id, window_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(ledger.zip(kept))
}

/// The rows filed under no sealed window fetch and no running one: events, revisions, rejects and reconcile
/// records, each by id (a revision and a reconcile record by its event's).
fn load_orphans(conn: &Connection) -> rusqlite::Result<Orphans> {
    let mut orphans = Orphans::default();
    for table in Filed::ALL {
        let sql = format!(
            "SELECT x.{} FROM {} x
             LEFT JOIN seals s ON s.window_id = x.window_id LEFT JOIN windows w ON w.id = x.window_id
             WHERE s.id IS NULL AND (w.id IS NULL OR w.status <> ?1) ORDER BY x.id",
            table.id_column(),
            table.table()
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([WindowStatus::Running])?;
        let sample = orphans.entry(table).or_default();
        while let Some(r) = rows.next()? {
            sample.push(r.get(0)?);
        }
    }
    Ok(orphans)
}

/// Checks what one seal vouches for against the rows now, with the format it was made with, reading only
/// that seal's members and lines and the rows of what it seals: a prune's record, what is left of a window
/// fetch prunes removed rows from, or a window fetch's content.
fn verify_sealed_rows(
    conn: &Connection,
    header: &SealHeader,
    pruned: &PrunedWindows,
    pruned_ranges: &[Interval],
) -> rusqlite::Result<Vec<Finding>> {
    // A format this version does not know is reported by `check_chain`.
    let Some(format) = header.format.1 else {
        return Ok(Vec::new());
    };
    let body = load_body(conn, header.id)?;
    match header.sealed() {
        Sealed::Window(window_id) => match pruned.get(&window_id) {
            Some(records) => {
                let sealed = (header, format, &body.members[..]);
                verify_pruned_rows(conn, window_id, sealed, records, pruned_ranges)
            }
            None => {
                let now = window_content(conn, window_id, format).optional()?;
                match now {
                    Some(now) if now.content == header.content => {
                        Ok(check_seal_body(header, format, &body, &now)
                            .into_iter()
                            .collect())
                    }
                    now => Ok(check_window(window_id, format, &body, now.as_ref())),
                }
            }
        },
        Sealed::Prune(prune_id) => {
            let now = seal::prune_content(conn, prune_id, format).optional()?;
            Ok(check_prune(prune_id, &header.content, now.as_deref())
                .into_iter()
                .collect())
        }
        // Reported by `check_chain`.
        Sealed::Nothing => Ok(Vec::new()),
    }
}

/// Checks a window fetch prunes removed rows from: its prune records against its seal (header, format and
/// members); its ledger row against the last record, if that prune recorded it (version 2); and what is left
/// under it (streamed through [`PrunedWindowCheck`]), against the event lines that prune recorded, or else
/// against the seal's members.
fn verify_pruned_rows(
    conn: &Connection,
    window_id: i64,
    (header, format, members): (&SealHeader, SealFormat, &[u8]),
    records: &[PrunedRow],
    pruned_ranges: &[Interval],
) -> rusqlite::Result<Vec<Finding>> {
    let mut out = Vec::new();
    let (prune_id, kept) = records.last().map_or((0, 0), |p| (p.prune_id, p.kept));
    let record = match load_recorded_lines(conn, prune_id, window_id)? {
        Some((ledger, lines)) => {
            let now = seal::ledger_text(conn, window_id).optional()?;
            out.extend(check_pruned_ledger(
                window_id,
                prune_id,
                &ledger,
                now.as_deref(),
            ));
            KeptRecord::Lines {
                recorded: lines,
                now: seal::kept_lines(conn, window_id)?,
            }
        }
        None => KeptRecord::Members {
            members: decode_members(members, format)
                .into_iter()
                .map(|m| (m.id, m))
                .collect(),
            kept,
        },
    };
    let kept_revisions = match &record {
        KeptRecord::Lines { recorded, .. } => seal::lines::count_of(recorded, LineKind::Revision),
        KeptRecord::Members { .. } => 0,
    };
    out.splice(
        0..0,
        check_pruned_counts(window_id, records, kept_revisions, header),
    );
    // Other rows left are in the recorded lines; a version 1 prune left none.
    let others_sql = match record {
        KeptRecord::Lines { .. } => None,
        KeptRecord::Members { .. } => Some(
            "SELECT (SELECT count(*) FROM event_revisions WHERE window_id = ?1)
                  + (SELECT count(*) FROM rejects WHERE window_id = ?1)
                  + (SELECT count(*) FROM source_changes WHERE window_id = ?1)",
        ),
    };
    let mut check = PrunedWindowCheck::new(window_id, prune_id, record, pruned_ranges);
    let mut stmt = conn.prepare_cached(
        "SELECT id, digest, timestamp FROM events WHERE window_id = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([window_id])?;
    while let Some(r) = rows.next()? {
        let (digest, timestamp): (Option<String>, String) = (r.get(1)?, r.get(2)?);
        check.observe(r.get(0)?, digest.as_deref(), &timestamp);
    }
    let others: i64 = match others_sql {
        Some(sql) => conn.query_row(sql, [window_id], |r| r.get(0))?,
        None => 0,
    };
    out.extend(check.findings(others));
    Ok(out)
}

// Decide: pure functions of loaded values.

/// A count of ids, and the first [`IDS_SHOWN`] of them in the order seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Sample {
    /// How many ids were seen.
    count: usize,
    /// The first of them.
    ids: Vec<i64>,
}

impl Sample {
    /// Counts `id`, keeping it if fewer than [`IDS_SHOWN`] are kept.
    fn push(&mut self, id: i64) {
        self.count += 1;
        if self.ids.len() < IDS_SHOWN {
            self.ids.push(id);
        }
    }

    /// Whether no id was seen.
    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Pages the integrity check's connection caches (in KiB, as `cache_size` takes a negative size). The check
/// looks up every row's entry in each of its table's indexes; with SQLite's default 2 MB cache those lookups
/// re-read index pages from the file again and again (on a 10M-event archive: 56 s of CPU, 22 of them in
/// reads, against 42 s and 8 with 32 MB). Bounded, so memory stays flat whatever the archive's size.
const INTEGRITY_CACHE_KIB: i64 = 32 * 1024;

/// The lines of SQLite's `PRAGMA integrity_check` on `conn` (its page cache set to [`INTEGRITY_CACHE_KIB`]).
pub fn integrity_check(conn: &Connection) -> Result<Vec<String>, StoreError> {
    conn.execute_batch(&format!("PRAGMA cache_size = -{INTEGRITY_CACHE_KIB}"))
        .context(|| "cannot size the integrity check's page cache".to_string())?;
    conn.prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .context(|| "cannot run SQLite's integrity check".to_string())
}

/// SQLite's integrity check: anything but a first line `ok` is damage.
fn check_integrity(lines: &[String]) -> Option<Finding> {
    (lines.first().map(String::as_str) != Some("ok")).then(|| {
        Finding::new(
            FindingKind::Damaged,
            None,
            [],
            format!("SQLite's integrity check failed: {}", lines.join("; ")),
        )
    })
}

/// The tables whose rows carry a digest of their `raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Archived {
    /// `events`: counted in the report.
    Event,
    /// `event_revisions`: named by their event's id.
    Revision,
}

impl Archived {
    /// Both tables, in the order they are read.
    const ALL: [Archived; 2] = [Archived::Event, Archived::Revision];

    /// The query reading (id, window, raw, digest) from the table, then an event's typed columns.
    fn sql(self) -> &'static str {
        match self {
            Archived::Event => {
                "SELECT id, window_id, raw, digest, timestamp, category, action, description, username, ip_address
                 FROM events"
            }
            Archived::Revision => "SELECT event_id, window_id, raw, digest FROM event_revisions",
        }
    }
}

/// The digest pass as a fold: every archived row's content against the digest recorded when it was archived.
#[derive(Debug, Default)]
struct Digests {
    /// Events seen (revisions are not counted).
    events: u64,
    /// Rows whose digest no longer matches, by window fetch.
    edited: BTreeMap<Option<i64>, Sample>,
}

impl Digests {
    /// Folds in one row: `id` (the event's, for a revision) filed under `window`; returns whether its `raw`
    /// still matches its digest.
    fn observe(
        &mut self,
        table: Archived,
        id: i64,
        window: Option<i64>,
        raw: &str,
        digest: Option<&str>,
    ) -> bool {
        match table {
            Archived::Event => self.events += 1,
            Archived::Revision => {}
        }
        let intact = digest == Some(crate::digest::sha256_hex(raw.as_bytes()).as_str());
        if !intact {
            self.edited.entry(window).or_default().push(id);
        }
        intact
    }

    /// One finding per window fetch with rows that no longer match their digest.
    fn findings(&self) -> Vec<Finding> {
        self.edited
            .iter()
            .map(|(window_id, edited)| {
                Finding::new(
                    FindingKind::Edited,
                    *window_id,
                    edited.ids.iter().copied(),
                    format!(
                        "{} archived item(s) no longer match the digest recorded when they were archived: raw or digest changed",
                        edited.count
                    ),
                )
            })
            .collect()
    }
}

/// A seal's header: everything but its members.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SealHeader {
    /// Its id (the chain's order).
    id: i64,
    /// The window fetch it seals, if it seals one.
    window_id: Option<i64>,
    /// The prune it seals, if it seals one.
    prune_id: Option<i64>,
    /// The hash of what it seals.
    content: String,
    /// The previous seal's hash.
    previous: String,
    /// `chain_hash(previous, content)`, as stored.
    hash: String,
    /// Events it sealed (inserted by the window fetch, or removed by the prune).
    events: i64,
    /// Revisions it sealed.
    revisions: i64,
    /// Its format, as stored and as known (`None`: a number this version does not know).
    format: (i64, Option<SealFormat>),
}

/// What a seal vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sealed {
    /// A window fetch.
    Window(i64),
    /// A prune.
    Prune(i64),
    /// Nothing: the seal was edited.
    Nothing,
}

impl SealHeader {
    /// What the seal vouches for (a window fetch if it names one).
    fn sealed(&self) -> Sealed {
        match (self.window_id, self.prune_id) {
            (Some(window_id), _) => Sealed::Window(window_id),
            (None, Some(prune_id)) => Sealed::Prune(prune_id),
            (None, None) => Sealed::Nothing,
        }
    }
}

/// What the chain's links say.
#[derive(Debug)]
struct Chain {
    /// Per seal, in order: its link and hash findings (and whether it seals anything).
    links: Vec<Vec<Finding>>,
    /// The (last) seal whose hash is the anchor, if one was given and found.
    anchor_found_at: Option<i64>,
    /// The newest seal's hash, or [`GENESIS`].
    head: String,
}

/// Checks the chain's links: each seal follows the one before, its hash recomputes, and it seals something.
fn check_chain(seals: &[SealHeader], anchor: Option<&str>) -> Chain {
    let mut previous = GENESIS;
    let mut anchor_found_at = None;
    let mut links = Vec::with_capacity(seals.len());
    for header in seals {
        let id = header.id;
        let mut found = Vec::new();
        let mut finding = |window_id, detail: String| {
            found.push(Finding::new(FindingKind::Chain, window_id, [], detail))
        };
        if header.previous != previous {
            finding(
                header.window_id,
                format!(
                    "seal {id} does not follow the seal before it: a seal was removed or reordered"
                ),
            );
        }
        if chain_hash(&header.previous, &header.content) != header.hash {
            finding(
                header.window_id,
                format!("seal {id}'s hash does not match its content: the seal was edited"),
            );
        }
        match header.sealed() {
            Sealed::Window(_) | Sealed::Prune(_) => {}
            Sealed::Nothing => finding(
                None,
                format!("seal {id} seals nothing: the seal was edited"),
            ),
        }
        if let (number, None) = header.format {
            finding(
                header.window_id,
                format!(
                    "seal {id} has format {number}, which no version made: the seal was edited"
                ),
            );
        }
        if anchor == Some(header.hash.as_str()) {
            anchor_found_at = Some(id);
        }
        previous = &header.hash;
        links.push(found);
    }
    Chain {
        links,
        anchor_found_at,
        head: previous.to_string(),
    }
}

/// Checks a prune's seal against its record now (`None`: the record is gone).
fn check_prune(prune_id: i64, sealed: &str, now: Option<&str>) -> Option<Finding> {
    let detail = match now {
        Some(now) if now == sealed => return None,
        Some(_) => format!("the record of prune {prune_id} changed after it was sealed"),
        None => format!("the record of prune {prune_id} was deleted"),
    };
    Some(Finding::new(FindingKind::Ledger, None, [], detail))
}

/// Checks a pruned window fetch's ledger row now (`None`: it is gone) against the ledger line prune
/// `prune_id` recorded, naming the columns that changed.
fn check_pruned_ledger(
    window_id: i64,
    prune_id: i64,
    recorded: &str,
    now: Option<&str>,
) -> Vec<Finding> {
    match now {
        Some(now) => line_findings(
            window_id,
            &seal::lines::diff_lines(recorded, now),
            "the prune left in this window",
            &format!("after prune {prune_id} recorded it"),
        ),
        None => vec![Finding::new(
            FindingKind::Ledger,
            Some(window_id),
            [],
            "the ledger row of this pruned window was deleted",
        )],
    }
}

/// A prune's record of one window fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PrunedRow {
    /// The prune.
    prune_id: i64,
    /// The hash of the seal that vouched for the window fetch when it was pruned.
    seal_hash: String,
    /// Events this prune removed from it.
    events: i64,
    /// Revisions this prune removed from it.
    revisions: i64,
    /// Events left under it after this prune.
    kept: i64,
}

/// Window fetch id -> the records of the prunes that removed rows from it, oldest first.
type PrunedWindows = BTreeMap<i64, Vec<PrunedRow>>;

/// Checks a pruned window fetch's records against its seal: each names the seal's hash, and what they removed
/// plus what the last one kept (its events, and `kept_revisions`, the revisions in the lines it recorded) is
/// what the seal sealed.
fn check_pruned_counts(
    window_id: i64,
    records: &[PrunedRow],
    kept_revisions: i64,
    header: &SealHeader,
) -> Option<Finding> {
    let removed: i64 = records.iter().map(|p| p.events).sum();
    let kept = records.last().map_or(0, |p| p.kept);
    let revisions: i64 = records.iter().map(|p| p.revisions).sum::<i64>() + kept_revisions;
    let faithful = records.iter().all(|p| p.seal_hash == header.hash)
        && (removed + kept, revisions) == (header.events, header.revisions);
    (!faithful).then(|| {
        Finding::new(
            FindingKind::Ledger,
            Some(window_id),
            [],
            format!(
                "prune {} records this window's rows as removed, but not as its seal describes them",
                records.last().map_or(0, |p| p.prune_id)
            ),
        )
    })
}

/// What a window fetch's last prune recorded of the events it left there.
enum KeptRecord {
    /// A version 1 prune recorded how many: they are the seal's members still there.
    Members {
        /// The seal's members, by id.
        members: HashMap<i64, Member>,
        /// How many events the prune left.
        kept: i64,
    },
    /// A version 2 prune recorded their lines, hashed into its seal.
    Lines {
        /// The lines it recorded.
        recorded: String,
        /// The lines of the events under the window fetch now ([`seal::kept_lines`]).
        now: String,
    },
}

/// What is left under a window fetch that prunes removed rows from, as a fold over its events (by id): it
/// must be exactly the events the last prune left, unchanged (by its recorded lines, or else by the seal's
/// members), none inside a pruned range, and no other rows.
struct PrunedWindowCheck<'a> {
    /// The window fetch.
    window_id: i64,
    /// The last prune that removed rows from it.
    prune_id: i64,
    /// What that prune recorded of the events it left.
    record: KeptRecord,
    /// The ranges emptied by prunes.
    pruned_ranges: &'a [Interval],
    /// Events seen.
    left: i64,
    /// Events that are not members.
    inserted: Sample,
    /// Members whose digest changed.
    edited: Sample,
    /// Events inside a pruned range.
    inside: Sample,
}

impl<'a> PrunedWindowCheck<'a> {
    /// Starts the check of `window_id`, of which prune `prune_id` (the last) left what `record` says.
    fn new(
        window_id: i64,
        prune_id: i64,
        record: KeptRecord,
        pruned_ranges: &'a [Interval],
    ) -> PrunedWindowCheck<'a> {
        PrunedWindowCheck {
            window_id,
            prune_id,
            record,
            pruned_ranges,
            left: 0,
            inserted: Sample::default(),
            edited: Sample::default(),
            inside: Sample::default(),
        }
    }

    /// Folds in one event left under the window fetch (its lines, if recorded, are compared at the end).
    fn observe(&mut self, id: i64, digest: Option<&str>, timestamp: &str) {
        self.left += 1;
        if let KeptRecord::Members { members, .. } = &self.record {
            match members.get(&id) {
                None => self.inserted.push(id),
                Some(m) if m.digest != seal::digest_prefix(digest.unwrap_or("")) => {
                    self.edited.push(id)
                }
                Some(_) => {}
            }
        }
        if crate::time::from_stored(timestamp)
            .is_some_and(|t| self.pruned_ranges.iter().any(|p| p.contains(t)))
        {
            self.inside.push(id);
        }
    }

    /// The findings, given how many other rows (revisions, rejects, source changes) are filed under it.
    fn findings(self, others: i64) -> Vec<Finding> {
        let window_id = Some(self.window_id);
        let mut out = Vec::new();
        let kept = match &self.record {
            KeptRecord::Members { kept, .. } => Some(*kept),
            KeptRecord::Lines { recorded, now } => {
                out.extend(line_findings(
                    self.window_id,
                    &seal::lines::diff_lines(recorded, now),
                    "the prune left in this window",
                    &format!("after prune {} recorded them", self.prune_id),
                ));
                None
            }
        };
        if !self.inserted.is_empty() || others > 0 {
            out.push(Finding::new(
                FindingKind::Inserted,
                window_id,
                self.inserted.ids.iter().copied(),
                format!(
                    "{} event(s) and {others} other row(s) were filed under this window after it was pruned",
                    self.inserted.count
                ),
            ));
        }
        for (kind, found, what) in [
            (
                FindingKind::Edited,
                self.edited,
                "event(s) the prune left in this window changed, digest included",
            ),
            (
                FindingKind::Ledger,
                self.inside,
                "event(s) of this window lie inside a pruned range: the prune record was altered",
            ),
        ] {
            if !found.is_empty() {
                out.push(Finding::new(kind, window_id, found.ids, what));
            }
        }
        let sealed_left = self.left - self.inserted.count as i64;
        if let Some(kept) = kept.filter(|kept| sealed_left < *kept) {
            out.push(Finding::new(
                FindingKind::Deleted,
                window_id,
                [],
                format!(
                    "{} event(s) the prune left in this window are gone",
                    kept - sealed_left
                ),
            ));
        }
        out
    }
}

/// The prunes that have a seal.
fn sealed_prunes(seals: &[SealHeader]) -> BTreeSet<i64> {
    seals
        .iter()
        .filter_map(|header| match header.sealed() {
            Sealed::Prune(prune_id) => Some(prune_id),
            Sealed::Window(_) | Sealed::Nothing => None,
        })
        .collect()
}

/// Every prune record is sealed: a forged "pruned" record would otherwise hide a deletion. One finding per
/// unsealed prune, naming its first window fetch.
fn check_forged_prunes(pruned: &PrunedWindows, sealed: &BTreeSet<i64>) -> Vec<Finding> {
    let mut forged: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (window_id, records) in pruned {
        for p in records.iter().filter(|p| !sealed.contains(&p.prune_id)) {
            forged.entry(p.prune_id).or_default().push(*window_id);
        }
    }
    forged
        .into_iter()
        .map(|(prune_id, windows)| {
            Finding::new(
                FindingKind::Unsealed,
                windows.iter().min().copied(),
                [],
                format!(
                    "{} window fetch(es) are recorded as removed by prune {prune_id}, which has no seal: \
                     the prune record was forged or its seal deleted",
                    windows.len()
                ),
            )
        })
        .collect()
}

/// Every ended window fetch is sealed.
fn check_unsealed(unsealed: &[i64]) -> Vec<Finding> {
    unsealed
        .iter()
        .map(|window_id| {
            Finding::new(
                FindingKind::Unsealed,
                Some(*window_id),
                [],
                "this window fetch ended but has no seal: its seal was deleted",
            )
        })
        .collect()
}

/// The tables whose rows are filed under a window fetch (`window_id`), and so must be under a seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Filed {
    /// `events`.
    Event,
    /// `event_revisions`.
    Revision,
    /// `rejects`.
    Reject,
    /// `source_changes`.
    Source,
}

impl Filed {
    /// Every such table, in the order findings name them.
    const ALL: [Filed; 4] = [Filed::Event, Filed::Revision, Filed::Reject, Filed::Source];

    /// The table.
    fn table(self) -> &'static str {
        match self {
            Filed::Event => "events",
            Filed::Revision => "event_revisions",
            Filed::Reject => "rejects",
            Filed::Source => "source_changes",
        }
    }

    /// The id a finding names its rows by: the event's, or a reject's own.
    fn id_column(self) -> &'static str {
        match self {
            Filed::Event => "id",
            Filed::Revision | Filed::Source => "event_id",
            Filed::Reject => "id",
        }
    }
}

/// Rows under no sealed or running window fetch, by table.
type Orphans = BTreeMap<Filed, Sample>;

/// Every row filed under a window fetch belongs to a sealed or running one: one finding per table with
/// orphans (events and revisions and reconcile records named by their event ids, rejects by theirs in words).
fn check_orphans(orphans: &Orphans) -> Vec<Finding> {
    let finding = |ids: &[i64], detail: String| {
        Finding::new(FindingKind::Inserted, None, ids.iter().copied(), detail)
    };
    orphans
        .iter()
        .filter(|(_, sample)| !sample.is_empty())
        .map(|(table, sample)| {
            let n = sample.count;
            match table {
                Filed::Event => finding(
                    &sample.ids,
                    format!("{n} event(s) belong to no sealed window fetch: inserted after sealing"),
                ),
                Filed::Revision | Filed::Source => finding(
                    &sample.ids,
                    format!(
                        "{n} row(s) of {} belong to no sealed window fetch: inserted after sealing",
                        table.table()
                    ),
                ),
                Filed::Reject => {
                    let ids: Vec<String> = sample.ids.iter().map(i64::to_string).collect();
                    finding(
                        &[],
                        format!(
                            "{n} reject(s) belong to no sealed window fetch: inserted after sealing (row ids {})",
                            ids.join(", ")
                        ),
                    )
                }
            }
        })
        .collect()
}

/// The anchor, if one was given, is in the chain.
fn check_anchor(anchor: Option<&str>, found_at: Option<i64>) -> Option<Finding> {
    match (anchor, found_at) {
        (Some(anchor), None) => Some(Finding::new(
            FindingKind::Anchor,
            None,
            [],
            format!(
                "the anchor {anchor} is not in the chain: the chain was rewritten or cut short since it was taken"
            ),
        )),
        (None, _) | (Some(_), Some(_)) => None,
    }
}

// Assemble.

/// The report: what was loaded, the chain's head and anchor, and the findings in order.
fn assemble(
    loaded: Loaded,
    head: String,
    anchor_found_at: Option<i64>,
    findings: Vec<Finding>,
) -> VerifyReport {
    VerifyReport {
        head,
        seals: loaded.seals.len() as u64,
        events: loaded.rows.0.events,
        anchor_found_at,
        windows_in_progress: loaded.windows_in_progress as u64,
        gaps: gaps_between(&loaded.covered)
            .iter()
            .map(read::Range::from)
            .collect(),
        unfetched: loaded.unfetched,
        pruned: loaded.pruned_ranges.iter().map(read::Range::from).collect(),
        prunes: loaded.prunes,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_hex;
    use crate::store::seal::WindowContent;
    use crate::time::parse_time_arg;

    /// A finding as one line: kind, window (or `-`), ids, then its detail unless `brief`.
    fn show(f: &Finding, brief: bool) -> String {
        let window = f.window_id.map_or("-".to_string(), |w| w.to_string());
        let line = format!("{} {window} {:?}", f.kind, f.ids);
        if brief {
            line
        } else {
            format!("{line}: {}", f.detail)
        }
    }

    /// Findings as lines, with their details.
    fn lines(findings: &[Finding]) -> Vec<String> {
        findings.iter().map(|f| show(f, false)).collect()
    }

    /// Findings in brief, one string: `ok` for none, else comma-separated.
    fn brief(findings: &[Finding]) -> String {
        if findings.is_empty() {
            return "ok".into();
        }
        findings
            .iter()
            .map(|f| show(f, true))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn sample(ids: impl IntoIterator<Item = i64>) -> Sample {
        let mut sample = Sample::default();
        ids.into_iter().for_each(|id| sample.push(id));
        sample
    }

    fn digest(raw: &str) -> String {
        sha256_hex(raw.as_bytes())
    }

    /// Members of the given (id, raw) events.
    fn members(events: &[(i64, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, raw) in events {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&seal::digest_prefix(&digest(raw)));
        }
        out
    }

    fn interval(from: &str, to: &str) -> Interval {
        Interval::new(parse_time_arg(from).unwrap(), parse_time_arg(to).unwrap())
    }

    /// A well-formed seal (10 events, 1 revision) of what `sealed` names, after `previous`.
    fn header(id: i64, sealed: Sealed, previous: &str, content: &str) -> SealHeader {
        let (window_id, prune_id) = match sealed {
            Sealed::Window(w) => (Some(w), None),
            Sealed::Prune(p) => (None, Some(p)),
            Sealed::Nothing => (None, None),
        };
        let hash = chain_hash(previous, content);
        let (content, previous) = (content.into(), previous.into());
        SealHeader {
            id,
            window_id,
            prune_id,
            content,
            previous,
            hash,
            events: 10,
            revisions: 1,
            format: (2, Some(SealFormat::V2)),
        }
    }

    /// Three well-formed seals: windows 1 and 2, then prune 1.
    fn good_chain() -> Vec<SealHeader> {
        let a = header(1, Sealed::Window(1), GENESIS, "c1");
        let b = header(2, Sealed::Window(2), &a.hash, "c2");
        let c = header(3, Sealed::Prune(1), &b.hash, "c3");
        vec![a, b, c]
    }

    #[test]
    fn integrity_is_ok_only_when_sqlite_says_ok_first() {
        let failed = "damaged - []: SQLite's integrity check failed:";
        let cases: [(&[&str], Option<String>); 4] = [
            (&["ok"], None),
            (
                &["*** in database main ***", "Page 5 is never used"],
                Some(format!(
                    "{failed} *** in database main ***; Page 5 is never used"
                )),
            ),
            (&[], Some(format!("{failed} "))),
            (
                &["row 3 missing", "ok"],
                Some(format!("{failed} row 3 missing; ok")),
            ),
        ];
        for (integrity, want) in cases {
            let integrity: Vec<String> = integrity.iter().map(|l| l.to_string()).collect();
            let found = check_integrity(&integrity);
            assert_eq!(found.map(|f| show(&f, false)), want, "{integrity:?}");
        }
    }

    #[test]
    fn digests_fold_counts_events_and_names_edited_rows_per_window() {
        use Archived::{Event, Revision};
        let edited = |n| {
            format!(
                "{n} archived item(s) no longer match the digest recorded when they were archived: raw or digest changed"
            )
        };
        let many: Vec<_> = (1..=25).map(|id| (Event, id, Some(9), "x", None)).collect();
        type Row<'a> = (Archived, i64, Option<i64>, &'a str, Option<&'a str>);
        let (a, b) = (digest("a"), digest("b"));
        let (a, b) = (Some(a.as_str()), Some(b.as_str()));
        let cases: Vec<(&str, Vec<Row>, u64, Vec<String>)> = vec![
            ("nothing archived", vec![], 0, vec![]),
            (
                "intact; revisions are not events",
                vec![(Event, 1, Some(1), "a", a), (Revision, 1, Some(2), "b", b)],
                1,
                vec![],
            ),
            (
                "an edited event and an edited revision, each under its window",
                vec![
                    (Event, 1, Some(1), "a", a),
                    (Event, 2, Some(1), "B", b),
                    (Revision, 1, Some(2), "B", b),
                ],
                2,
                vec![
                    format!("edited 1 [2]: {}", edited(1)),
                    format!("edited 2 [1]: {}", edited(1)),
                ],
            ),
            (
                "a missing digest is an edit; no window sorts first",
                vec![(Event, 3, Some(4), "c", None), (Event, 4, None, "d", a)],
                2,
                vec![
                    format!("edited - [4]: {}", edited(1)),
                    format!("edited 4 [3]: {}", edited(1)),
                ],
            ),
            (
                "many edits: all counted, 20 named",
                many,
                25,
                vec![format!(
                    "edited 9 {:?}: {}",
                    (1..=20).collect::<Vec<i64>>(),
                    edited(25)
                )],
            ),
        ];
        for (name, rows, events, want) in cases {
            let mut digests = Digests::default();
            for (table, id, window, raw, digest) in rows {
                digests.observe(table, id, window, raw, digest);
            }
            assert_eq!(digests.events, events, "{name}");
            assert_eq!(lines(&digests.findings()), want, "{name}");
        }
    }

    #[test]
    fn each_seal_must_follow_the_one_before_hash_its_content_and_seal_something() {
        let good = good_chain();
        let mut edited = good.clone();
        edited[1].content = "forged".into();
        let mut nothing = good.clone();
        nothing[1].window_id = None;
        let mut swapped = good.clone();
        swapped.swap(0, 1);
        let mut unknown = good.clone();
        unknown[0].format = (7, None);
        let cases = [
            ("no seal", vec![], ""),
            ("intact", good.clone(), "ok | ok | ok"),
            (
                "a seal removed",
                vec![good[0].clone(), good[2].clone()],
                "ok | chain - []",
            ),
            ("a seal's content edited", edited, "ok | chain 2 [] | ok"),
            ("a seal sealing nothing", nothing, "ok | chain - [] | ok"),
            (
                "two seals swapped",
                swapped,
                "chain 2 [] | chain 1 [] | chain - []",
            ),
            ("a format no version made", unknown, "chain 1 [] | ok | ok"),
        ];
        for (name, seals, want) in cases {
            let chain = check_chain(&seals, None);
            let got: Vec<String> = chain.links.iter().map(|l| brief(l)).collect();
            assert_eq!(got.join(" | "), want, "{name}");
        }
        let details = check_chain(&[good[1].clone()], None).links.concat();
        assert_eq!(
            details
                .iter()
                .map(|f| f.detail.as_str())
                .collect::<Vec<_>>(),
            ["seal 2 does not follow the seal before it: a seal was removed or reordered"]
        );
    }

    #[test]
    fn the_chain_head_and_where_the_anchor_is() {
        let good = good_chain();
        let cases = [
            (vec![], None, None, GENESIS),
            (good.clone(), None, None, good[2].hash.as_str()),
            (
                good.clone(),
                Some(good[1].hash.as_str()),
                Some(2),
                good[2].hash.as_str(),
            ),
            (good.clone(), Some("beef"), None, good[2].hash.as_str()),
            (
                good[..1].to_vec(),
                Some(good[2].hash.as_str()),
                None,
                good[0].hash.as_str(),
            ),
        ];
        for (seals, anchor, found_at, head) in cases {
            let chain = check_chain(&seals, anchor);
            assert_eq!(
                (chain.anchor_found_at, chain.head.as_str()),
                (found_at, head),
                "{anchor:?}"
            );
        }
    }

    #[test]
    fn what_a_seal_vouches_for_and_which_prunes_are_sealed() {
        let cases = [
            ((Some(1), None), Sealed::Window(1)),
            ((Some(1), Some(2)), Sealed::Window(1)),
            ((None, Some(2)), Sealed::Prune(2)),
            ((None, None), Sealed::Nothing),
        ];
        for ((window_id, prune_id), want) in cases {
            let mut h = header(1, Sealed::Nothing, GENESIS, "c");
            (h.window_id, h.prune_id) = (window_id, prune_id);
            assert_eq!(h.sealed(), want);
        }
        let mut seals = good_chain();
        seals.push(header(4, Sealed::Prune(7), GENESIS, "c"));
        seals.push(header(5, Sealed::Nothing, GENESIS, "c"));
        assert_eq!(sealed_prunes(&seals), BTreeSet::from([1, 7]));
    }

    #[test]
    fn a_prune_record_must_still_hash_to_its_seal() {
        let cases = [
            (Some("abc"), None),
            (
                Some("abd"),
                Some("ledger - []: the record of prune 3 changed after it was sealed"),
            ),
            (None, Some("ledger - []: the record of prune 3 was deleted")),
        ];
        for (now, want) in cases {
            let found = check_prune(3, "abc", now);
            assert_eq!(found.map(|f| show(&f, false)).as_deref(), want, "{now:?}");
        }
    }

    #[test]
    fn a_changed_window_is_explained_by_its_members() {
        let sealed = members(&[(1, "a"), (2, "b"), (3, "c")]);
        let now = |events: &[(i64, &str)]| WindowContent {
            content: "now".into(),
            members: members(events),
            lines: String::new(),
            events: events.len() as i64,
            revisions: 0,
        };
        let body = SealBody {
            members: sealed,
            lines: None,
        };
        let cases: [(&str, Option<WindowContent>, &[&str]); 4] = [
            (
                "ledger row deleted",
                None,
                &["ledger 5 [1, 2, 3]: the ledger row of this sealed window was deleted"],
            ),
            (
                "members intact",
                Some(now(&[(1, "a"), (2, "b"), (3, "c")])),
                &[
                    "ledger 5 []: the window's ledger row, revisions or rejects changed after it was sealed",
                ],
            ),
            (
                "one deleted, one inserted, one edited",
                Some(now(&[(1, "a"), (2, "B"), (4, "d")])),
                &[
                    "deleted 5 [3]: 1 event(s) sealed in this window are gone",
                    "inserted 5 [4]: 1 event(s) were filed under this window after it was sealed",
                    "edited 5 [2]: 1 event(s) of this window changed, digest included",
                ],
            ),
            (
                "all gone",
                Some(now(&[])),
                &["deleted 5 [1, 2, 3]: 3 event(s) sealed in this window are gone"],
            ),
        ];
        for (name, now, want) in cases {
            assert_eq!(
                lines(&check_window(5, SealFormat::V1, &body, now.as_ref())),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn prune_records_must_describe_the_window_as_its_seal_does() {
        let seal = header(1, Sealed::Window(4), GENESIS, "c"); // 10 events, 1 revision
        let hash = seal.hash.as_str();
        let record = |prune_id, seal_hash: &str, events, revisions, kept| PrunedRow {
            prune_id,
            seal_hash: seal_hash.into(),
            events,
            revisions,
            kept,
        };
        let cases = [
            ("all removed", vec![record(1, hash, 10, 1, 0)], 0, None),
            ("some kept", vec![record(1, hash, 7, 1, 3)], 0, None),
            (
                "some kept with the revision",
                vec![record(1, hash, 7, 0, 3)],
                1,
                None,
            ),
            (
                "the revision both kept and removed",
                vec![record(1, hash, 7, 1, 3)],
                1,
                Some(1),
            ),
            (
                "removed in turn, the last kept",
                vec![record(1, hash, 4, 0, 6), record(2, hash, 6, 1, 0)],
                0,
                None,
            ),
            (
                "another seal's hash",
                vec![record(1, "other", 10, 1, 0)],
                0,
                Some(1),
            ),
            ("too few events", vec![record(1, hash, 9, 1, 0)], 0, Some(1)),
            (
                "revisions do not add up",
                vec![record(1, hash, 4, 0, 6), record(2, hash, 6, 0, 0)],
                0,
                Some(2),
            ),
            (
                "an earlier kept count",
                vec![record(1, hash, 4, 1, 6), record(2, hash, 4, 0, 0)],
                0,
                Some(2),
            ),
        ];
        for (name, records, kept_revisions, want) in cases {
            let found = check_pruned_counts(4, &records, kept_revisions, &seal);
            let want = want.map(|p| {
                format!("ledger 4 []: prune {p} records this window's rows as removed, but not as its seal describes them")
            });
            assert_eq!(found.map(|f| show(&f, false)), want, "{name}");
        }
    }

    /// Version 2 members of (id, raw, fetched_at) events.
    fn members_v2(events: &[(i64, &str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, raw, fetched_at) in events {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&seal::digest_prefix(&digest(raw)));
            out.extend_from_slice(&seal::text_prefix(fetched_at));
        }
        out
    }

    /// Version 2 lines: the ledger line of window 5 ending at `end` with `error`, then the given others.
    fn v2_lines(end: &str, error: &str, others: &[&str]) -> String {
        let ledger = format!(
            r#"["window",5,1,"2024-01-01T00:00:00.000Z","{end}","","","a","b","complete",1,2,2,1,1,0,"s","c",{error}]"#
        );
        std::iter::once(ledger.as_str())
            .chain(others.iter().copied())
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// What `check_window` finds in window 5, sealed in version 2 with three events (one with a revision, a
    /// reject, a reconcile record), once its events are `events` and its other lines `end`, `error`, `others`.
    fn explained(
        events: &[(i64, &str, &str)],
        end: &str,
        error: &str,
        others: &[&str],
    ) -> Vec<String> {
        let sealed_events = [(1, "a", "f1"), (2, "b", "f1"), (3, "c", "f2")];
        let sealed_others = [
            r#"["revision",4,2,"d","f1"]"#,
            r#"["reject",6,"no id","h","1","f1"]"#,
            r#"["source",8,3,"changed","f2"]"#,
        ];
        let body = SealBody {
            members: members_v2(&sealed_events),
            lines: Some(v2_lines("2024-01-02T00:00:00.000Z", "null", &sealed_others)),
        };
        let now = WindowContent {
            content: "now".into(),
            members: members_v2(if events.is_empty() {
                &sealed_events
            } else {
                events
            }),
            lines: v2_lines(
                end,
                error,
                if others.is_empty() {
                    &sealed_others
                } else {
                    others
                },
            ),
            events: 3,
            revisions: 1,
        };
        lines(&check_window(5, SealFormat::V2, &body, Some(&now)))
    }

    #[test]
    fn a_version_2_seal_names_an_events_fetched_at_and_the_ledgers_columns() {
        let end = "2024-01-02T00:00:00.000Z";
        let fetched = [(1, "a", "f1"), (2, "b", "f9"), (3, "c", "f2")];
        assert_eq!(
            explained(&fetched, "2024-01-09T00:00:00.000Z", r#""x""#, &[]),
            [
                "edited 5 [2]: 1 event(s) of this window changed after it was sealed: fetched_at",
                "ledger 5 []: the window's ledger row changed after it was sealed: window_end, error",
            ]
        );
        assert_eq!(
            explained(&[], end, "null", &[]),
            [
                "ledger 5 []: the window's ledger row, revisions or rejects changed after it was sealed"
            ],
            "nothing the members or lines show"
        );
    }

    #[test]
    fn a_version_2_seal_names_the_revisions_rejects_and_reconcile_records_that_changed() {
        let end = "2024-01-02T00:00:00.000Z";
        let changed = [
            r#"["revision",4,2,"d","f9"]"#,
            r#"["reject",6,"no id","h","2","f1"]"#,
            r#"["source",8,3,"late","f2"]"#,
        ];
        assert_eq!(
            explained(&[], end, "null", &changed),
            [
                "edited 5 [2]: 1 revision(s) sealed in this window changed after it was sealed: fetched_at (row ids 4)",
                "edited 5 []: 1 reject(s) sealed in this window changed after it was sealed: page (row ids 6)",
                "ledger 5 [3]: 1 reconcile record(s) sealed in this window changed after it was sealed: kind (row ids 8)",
            ]
        );
        let moved = [
            r#"["reject",6,"no id","h","1","f1"]"#,
            r#"["reject",7,"no id","i","1","f1"]"#,
            r#"["source",8,3,"changed","f2"]"#,
        ];
        assert_eq!(
            explained(&[], end, "null", &moved),
            [
                "deleted 5 [2]: 1 revision(s) sealed in this window are gone (row ids 4)",
                "inserted 5 []: 1 reject(s) were filed under this window after it was sealed (row ids 7)",
            ]
        );
    }

    #[test]
    fn a_seal_whose_content_holds_must_keep_the_members_lines_and_counts_it_was_made_with() {
        let members = members_v2(&[(1, "a", "f")]);
        let lines_now = v2_lines("e", "null", &[]);
        let now = WindowContent {
            content: "c".into(),
            members: members.clone(),
            lines: lines_now.clone(),
            events: 1,
            revisions: 0,
        };
        let mut seal = header(3, Sealed::Window(5), GENESIS, "c");
        (seal.events, seal.revisions) = (1, 0);
        let body = |members: &[u8], lines: Option<&str>| SealBody {
            members: members.to_vec(),
            lines: lines.map(str::to_string),
        };
        let edited = "chain 5 []: seal 3's members, lines or counts do not match its window's rows, though its content does: the seal was edited";
        let other_members = members_v2(&[(1, "b", "f")]);
        let cases = [
            (
                "as made",
                SealFormat::V2,
                body(&members, Some(&lines_now)),
                1,
                None,
            ),
            (
                "members patched",
                SealFormat::V2,
                body(&other_members, Some(&lines_now)),
                1,
                Some(edited),
            ),
            (
                "lines patched",
                SealFormat::V2,
                body(&members, Some("x\n")),
                1,
                Some(edited),
            ),
            (
                "lines dropped",
                SealFormat::V2,
                body(&members, None),
                1,
                Some(edited),
            ),
            (
                "version 1 keeps no lines",
                SealFormat::V1,
                body(&members, None),
                1,
                None,
            ),
            (
                "a count edited",
                SealFormat::V2,
                body(&members, Some(&lines_now)),
                2,
                Some(edited),
            ),
        ];
        for (name, format, body, events, want) in cases {
            seal.events = events;
            let found = check_seal_body(&seal, format, &body, &now);
            assert_eq!(found.map(|f| show(&f, false)).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn a_pruned_windows_ledger_row_must_be_what_its_last_prune_recorded() {
        let recorded = v2_lines("2024-01-02T00:00:00.000Z", "null", &[]);
        let cases = [
            ("as recorded", Some(recorded.clone()), vec![]),
            (
                "its end moved",
                Some(v2_lines("2024-01-09T00:00:00.000Z", "null", &[])),
                vec!["ledger 5 []: the window's ledger row changed after prune 2 recorded it: window_end".to_string()],
            ),
            (
                "its row deleted",
                None,
                vec!["ledger 5 []: the ledger row of this pruned window was deleted".to_string()],
            ),
        ];
        for (name, now, want) in cases {
            let found = check_pruned_ledger(5, 2, &recorded, now.as_deref());
            assert_eq!(lines(&found), want, "{name}");
        }
    }

    #[test]
    fn what_a_version_2_prune_left_is_checked_line_by_line() {
        let line = |id: i64, digest: &str, fetched_at: &str| {
            let mut text = String::new();
            seal::lines::event_line_v2(&mut text, id, digest, fetched_at);
            text
        };
        let recorded = [line(1, "a", "f"), line(2, "b", "f"), line(3, "c", "f")].concat();
        let ranges = [interval("2024-01-01", "2024-01-02")];
        let cases: [(&str, String, i64, Vec<&str>); 4] = [
            ("exactly what was left", recorded.clone(), 0, vec![]),
            (
                "an event edited with its digest, another's fetched_at, members patched or not",
                [line(1, "A", "f"), line(2, "b", "g"), line(3, "c", "f")].concat(),
                0,
                vec![
                    "edited 6 [1]: 1 event(s) the prune left in this window changed after prune 2 recorded them: digest",
                    "edited 6 [2]: 1 event(s) the prune left in this window changed after prune 2 recorded them: fetched_at",
                ],
            ),
            (
                "one gone, one filed, and a revision",
                [line(1, "a", "f"), line(2, "b", "f"), line(4, "d", "f")].concat(),
                1,
                vec![
                    "deleted 6 [3]: 1 event(s) the prune left in this window are gone",
                    "inserted 6 [4]: 1 event(s) were filed under this window after prune 2 recorded them",
                    "inserted 6 []: 0 event(s) and 1 other row(s) were filed under this window after it was pruned",
                ],
            ),
            (
                "all gone",
                String::new(),
                0,
                vec!["deleted 6 [1, 2, 3]: 3 event(s) the prune left in this window are gone"],
            ),
        ];
        for (name, now, others, want) in cases {
            let record = KeptRecord::Lines {
                recorded: recorded.clone(),
                now,
            };
            let check = PrunedWindowCheck::new(6, 2, record, &ranges);
            assert_eq!(lines(&check.findings(others)), want, "{name}");
        }
    }

    #[test]
    fn what_is_left_of_a_pruned_window_is_what_the_prune_kept() {
        let sealed = members(&[(1, "a"), (2, "b"), (3, "c")]);
        let ranges = [interval("2024-01-01", "2024-01-02")];
        let filed = |ids: &[i64], others: i64| {
            let n = ids.len();
            format!(
                "inserted 6 {ids:?}: {n} event(s) and {others} other row(s) were filed under this window after it was pruned"
            )
        };
        let edited =
            "edited 6 [2]: event(s) the prune left in this window changed, digest included";
        let inside = "ledger 6 [1]: event(s) of this window lie inside a pruned range: the prune record was altered";
        let gone = "deleted 6 []: 2 event(s) the prune left in this window are gone";
        /// An event left: id, the raw its digest is of (if it has one), inside a pruned range.
        type Left = (i64, Option<&'static str>, bool);
        let kept: [Left; 3] = [
            (1, Some("a"), false),
            (2, Some("b"), false),
            (3, Some("c"), false),
        ];
        let cases: [(&str, Vec<Left>, i64, Vec<String>); 7] = [
            ("exactly what was kept", kept.to_vec(), 0, vec![]),
            (
                "an event and two other rows filed since",
                [&kept[..], &[(4, Some("d"), false)]].concat(),
                2,
                vec![filed(&[4], 2)],
            ),
            (
                "only other rows filed since",
                kept.to_vec(),
                1,
                vec![filed(&[], 1)],
            ),
            (
                "an event edited, digest included",
                vec![kept[0], (2, Some("B"), false), kept[2]],
                0,
                vec![edited.into()],
            ),
            (
                "a digest missing",
                vec![kept[0], (2, None, false), kept[2]],
                0,
                vec![edited.into()],
            ),
            (
                "an event inside a pruned range",
                vec![(1, Some("a"), true), kept[1], kept[2]],
                0,
                vec![inside.into()],
            ),
            (
                "two gone, one filed in their place",
                vec![kept[0], (9, Some("z"), false)],
                0,
                vec![filed(&[9], 0), gone.into()],
            ),
        ];
        for (name, left, others, want) in cases {
            let record = KeptRecord::Members {
                members: decode_members(&sealed, SealFormat::V1)
                    .into_iter()
                    .map(|m| (m.id, m))
                    .collect(),
                kept: 3,
            };
            let mut check = PrunedWindowCheck::new(6, 1, record, &ranges);
            for (id, raw, inside) in left {
                let at = if inside {
                    "2024-01-01T12:00:00.000Z"
                } else {
                    "2024-01-05T00:00:00.000Z"
                };
                check.observe(id, raw.map(digest).as_deref(), at);
            }
            assert_eq!(lines(&check.findings(others)), want, "{name}");
        }
    }

    #[test]
    fn every_prune_record_must_be_sealed() {
        let record = |prune_id| PrunedRow {
            prune_id,
            seal_hash: "h".into(),
            events: 1,
            revisions: 0,
            kept: 0,
        };
        let pruned: PrunedWindows = BTreeMap::from([
            (3, vec![record(1)]),
            (5, vec![record(1), record(2)]),
            (4, vec![record(2)]),
        ]);
        let forged = |window, p| {
            format!(
                "unsealed {window} []: 2 window fetch(es) are recorded as removed by prune {p}, which has no seal: \
                 the prune record was forged or its seal deleted"
            )
        };
        let cases = [
            (BTreeSet::from([1, 2]), vec![]),
            (BTreeSet::from([1]), vec![forged(4, 2)]),
            (BTreeSet::new(), vec![forged(3, 1), forged(4, 2)]),
        ];
        for (sealed, want) in cases {
            assert_eq!(
                lines(&check_forged_prunes(&pruned, &sealed)),
                want,
                "sealed {sealed:?}"
            );
        }
    }

    #[test]
    fn unsealed_windows_orphans_and_the_anchor() {
        let unsealed = "this window fetch ended but has no seal: its seal was deleted";
        let orphans = "25 event(s) belong to no sealed window fetch: inserted after sealing";
        let anchor = "the anchor ab is not in the chain: the chain was rewritten or cut short since it was taken";
        let twenty: Vec<i64> = (1..=20).collect();
        let cases: [(&str, Vec<Finding>, Vec<String>); 8] = [
            ("no unsealed window", check_unsealed(&[]), vec![]),
            (
                "two unsealed windows",
                check_unsealed(&[3, 7]),
                vec![
                    format!("unsealed 3 []: {unsealed}"),
                    format!("unsealed 7 []: {unsealed}"),
                ],
            ),
            (
                "no orphan",
                check_orphans(&Orphans::from([(Filed::Event, sample([]))])),
                vec![],
            ),
            (
                "25 orphans, 20 named",
                check_orphans(&Orphans::from([(Filed::Event, sample(1..=25))])),
                vec![format!("inserted - {twenty:?}: {orphans}")],
            ),
            (
                "revisions, rejects and reconcile records under no sealed window",
                check_orphans(&Orphans::from([
                    (Filed::Source, sample([8])),
                    (Filed::Reject, sample([3, 4])),
                    (Filed::Revision, sample([7])),
                    (Filed::Event, sample([])),
                ])),
                vec![
                    "inserted - [7]: 1 row(s) of event_revisions belong to no sealed window fetch: inserted after sealing".into(),
                    "inserted - []: 2 reject(s) belong to no sealed window fetch: inserted after sealing (row ids 3, 4)".into(),
                    "inserted - [8]: 1 row(s) of source_changes belong to no sealed window fetch: inserted after sealing".into(),
                ],
            ),
            (
                "no anchor given",
                check_anchor(None, None).into_iter().collect(),
                vec![],
            ),
            (
                "the anchor found",
                check_anchor(Some("ab"), Some(4)).into_iter().collect(),
                vec![],
            ),
            (
                "the anchor not found",
                check_anchor(Some("ab"), None).into_iter().collect(),
                vec![format!("anchor - []: {anchor}")],
            ),
        ];
        for (name, found, want) in cases {
            assert_eq!(lines(&found), want, "{name}");
        }
    }

    fn loaded(covered: Vec<Interval>, pruned_ranges: Vec<Interval>) -> Loaded {
        Loaded {
            rows: (
                Digests {
                    events: 42,
                    edited: BTreeMap::new(),
                },
                DerivedColumns::default(),
            ),
            pruned: PrunedWindows::new(),
            pruned_ranges,
            seals: good_chain(),
            unsealed: vec![],
            orphans: Orphans::new(),
            windows_in_progress: 2,
            covered,
            unfetched: vec![],
            prunes: vec![],
        }
    }

    #[test]
    fn the_report_is_ok_only_without_findings_and_unfetched_ranges() {
        let (jan1, jan3) = (
            interval("2024-01-01", "2024-01-02"),
            interval("2024-01-03", "2024-01-04"),
        );
        let finding = Finding::new(FindingKind::Chain, None, [], "x");
        let cases = [
            (
                "one covered range, nothing found",
                vec![jan1],
                vec![],
                0,
                true,
            ),
            ("a gap nobody asked for", vec![jan1, jan3], vec![], 1, true),
            ("a finding", vec![jan1], vec![finding], 0, false),
        ];
        for (name, covered, findings, gaps, ok) in cases {
            let report = assemble(
                loaded(covered, vec![jan3]),
                "head".into(),
                Some(2),
                findings,
            );
            assert_eq!(
                (report.ok(), report.gaps.len(), report.pruned.len()),
                (ok, gaps, 1),
                "{name}"
            );
            assert_eq!(
                (report.seals, report.events, report.windows_in_progress),
                (3, 42, 2)
            );
            assert_eq!(
                (report.head.as_str(), report.anchor_found_at),
                ("head", Some(2))
            );
        }
    }

    #[test]
    fn ranges_not_yet_fetched_make_the_report_incomplete_not_tampered() {
        let mut l = loaded(vec![], vec![]);
        l.unfetched = vec![MissingRange {
            base_url: "https://rest.elevatebilling.com/v1".into(),
            category_filter: String::new(),
            action_filter: String::new(),
            from: "2024-01-02T00:00:00.000Z".into(),
            to: "2024-01-03T00:00:00.000Z".into(),
        }];
        let report = assemble(l, "h".into(), None, vec![]);
        assert_eq!(
            (report.intact(), report.complete(), report.ok()),
            (true, false, false)
        );
    }

    #[test]
    fn the_json_report_keeps_its_field_names() {
        let finding = Finding::new(FindingKind::Edited, Some(1), [2], "d");
        let report = assemble(loaded(vec![], vec![]), "h".into(), None, vec![finding]);
        let json = serde_json::to_value(&report).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let fields = "anchor_found_at events findings gaps head pruned prunes seals unfetched windows_in_progress";
        assert_eq!(keys.join(" "), fields);
        let finding =
            serde_json::json!({"kind": "edited", "window_id": 1, "ids": [2], "detail": "d"});
        assert_eq!(json["findings"][0], finding);
    }
}
