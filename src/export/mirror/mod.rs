//! `export --incremental`: an exactly-once Parquet mirror of the archive's `events` in a local folder or an
//! S3-compatible bucket, and `export --check`, which re-reads it against the archive.
//!
//! Layout at the destination's root:
//! - `events/date=YYYY-MM-DD/part-RRRRRR-SSSSS-NNNNNNNN.parquet`: the rows of one day, in the schema of
//!   [`parquet::schema`](super::parquet::schema); `R` the export run, `S` a sequence in the run, `N` a random
//!   nonce, so no object is ever overwritten;
//! - `revisions/date=YYYY-MM-DD/part-...parquet`: later versions of archived events (`event_revisions`), in
//!   the day of the event they revise, in the schema of [`parquet::revisions_schema`](super::parquet::revisions_schema);
//! - `_manifest.json` ([`manifest`]): every live object with its rows and SHA-256, the seals mirrored, the
//!   archive's chain head.
//!
//! A run: (1) reads the destination's manifest and decides against the ledger ([`plan::resume`]); rolls the
//! ledger forward if the previous run committed its manifest but not its ledger row; refuses a destination
//! that disagrees; (2) deletes the objects under `events/` and `revisions/` that the manifest does not list and
//! that are named as the mirror names its own (what a killed run left, or a rewritten day's old objects:
//! [`plan::sweep`]); any other object there is left alone, and a destination never mirrored to that holds one
//! is refused; (3) plans from the seals since the last run ([`plan::plan`]): a window
//! fetch's events and revisions are appended as new objects; a day a prune took rows from is rewritten whole, its old objects
//! dropped; (4) writes the objects, then the manifest, then the ledger row; (5) deletes the dropped objects.
//! Invariant: the manifest lists exactly the events of the window fetches sealed through its `through_seal`
//! (less what prunes removed), each once; the objects under `events/` are those of the manifest except between
//! (4) and the next run's (2).

pub mod destination;
pub mod manifest;
pub mod plan;

use super::ManifestFile;
use super::parquet::{self, Columns, Partitioner, Revisions};
use crate::store::mirror::{MirrorCommit, MirrorObject};
use crate::store::{Archive, ArchiveRead, StoreError, export::ExportError};
use crate::time::Timestamp;
use destination::Destination;
use manifest::{MANIFEST, MirrorManifest};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

/// The folder, under the destination's root, of the `events` table.
pub const EVENTS: &str = "events";
/// The folder of the `revisions` table (later versions of archived events, by their event's day).
pub const REVISIONS: &str = "revisions";
/// The mirror's tables (their folders).
pub const TABLES: [&str; 2] = [EVENTS, REVISIONS];
/// Test hook: pause (print a line on stderr and wait to be killed) after this many objects were published
/// (`objects:N`), or after the manifest is committed and before the ledger (`manifest`).
pub const PAUSE_VAR: &str = "ELEVATE_MIRROR_PAUSE";

/// Why a mirror run or check stopped.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The archive failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Talking to the destination failed.
    #[error("{context}")]
    Destination {
        /// What was being done, naming the object.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The destination and the archive's ledger disagree; nothing was written.
    #[error(
        "{url} does not match this archive's export ledger: {reason}; run `export --check {url}` to see \
         what differs, or mirror to a new destination"
    )]
    Diverged {
        /// The destination.
        url: String,
        /// How.
        reason: String,
    },
    /// Nothing was ever mirrored to the destination checked.
    #[error(
        "this archive never mirrored to {0}: run `export --format parquet --incremental --out {0}` first"
    )]
    NeverMirrored(String),
}

impl From<ExportError> for MirrorError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Store(e) => MirrorError::Store(e),
            ExportError::Output(source) => MirrorError::Destination {
                context: "cannot write the mirror's objects".into(),
                source,
            },
        }
    }
}

/// Adds what was being done to a destination's IO error.
fn at<T>(got: io::Result<T>, context: impl FnOnce() -> String) -> Result<T, MirrorError> {
    got.map_err(|source| MirrorError::Destination {
        context: context(),
        source,
    })
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MirrorReport {
    /// The destination.
    pub destination: String,
    /// The run's number at the destination (the last one's when nothing was new).
    pub export_run: i64,
    /// Whether the previous run's manifest was taken into the ledger first.
    pub rolled_forward: bool,
    /// Objects deleted before the run: left by a killed run, or dropped by the last one.
    pub swept: u64,
    /// Seals mirrored by this run.
    pub seals: u64,
    /// Rows written (new events, and the rows of rewritten days).
    pub rows_written: u64,
    /// Objects added.
    pub objects_added: u64,
    /// Objects dropped (rewritten days).
    pub objects_removed: u64,
    /// Events the mirror holds now.
    pub rows: u64,
    /// Revisions the mirror holds now.
    pub revisions: u64,
    /// The archive's chain head mirrored.
    pub chain_head: String,
}

/// Where the test hook pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// After this many objects.
    Objects(u64),
    /// After the manifest, before the ledger.
    Manifest,
}

impl Pause {
    fn from_env() -> Option<Pause> {
        let value = crate::commands::process_env(PAUSE_VAR)?;
        match value.split_once(':') {
            Some(("objects", n)) => n.parse().ok().map(Pause::Objects),
            _ if value == "manifest" => Some(Pause::Manifest),
            _ => None,
        }
    }

    /// Says where on stderr, then waits to be killed.
    fn hold(&self) -> ! {
        eprintln!("mirror paused: {self:?}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// The manifest at the destination, parsed, with the SHA-256 of its bytes.
fn read_manifest(dest: &dyn Destination) -> Result<Option<(MirrorManifest, String)>, MirrorError> {
    let url = dest.url();
    let Some(bytes) = at(dest.get(MANIFEST), || {
        format!("cannot read {url}/{MANIFEST}")
    })?
    else {
        return Ok(None);
    };
    let manifest = serde_json::from_slice(&bytes).map_err(|e| MirrorError::Diverged {
        url: url.into(),
        reason: format!("its {MANIFEST} is not a mirror manifest ({e})"),
    })?;
    Ok(Some((manifest, crate::digest::sha256_hex(&bytes))))
}

/// The ledger's objects of a manifest's files.
fn objects_of(files: &[ManifestFile]) -> Vec<MirrorObject> {
    files
        .iter()
        .map(|f| MirrorObject {
            path: f.path.clone(),
            date: day_of_path(&f.path),
            rows: f.rows,
            bytes: f.bytes,
            sha256: f.sha256.clone(),
        })
        .collect()
}

/// The day of an object's path (`events/date=YYYY-MM-DD/...`).
fn day_of_path(path: &str) -> String {
    path.split('/')
        .find_map(|part| part.strip_prefix("date="))
        .unwrap_or_default()
        .into()
}

/// Takes a committed manifest the ledger lacks into the ledger (the previous run stopped between the two).
fn roll_forward(
    archive: &mut Archive,
    url: &str,
    manifest: &MirrorManifest,
    sha: &str,
) -> Result<(), MirrorError> {
    let ledger = archive.mirror_ledger(url)?;
    let live: BTreeSet<&str> = ledger.objects.iter().map(|o| o.path.as_str()).collect();
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    let added: Vec<MirrorObject> = objects_of(&manifest.files)
        .into_iter()
        .filter(|o| !live.contains(o.path.as_str()))
        .collect();
    let removed: Vec<String> = live.difference(&listed).map(|p| p.to_string()).collect();
    archive.record_mirror_run(&MirrorCommit {
        url,
        number: manifest.export_run,
        committed_at: &manifest.created_at,
        after_seal: manifest.after_seal,
        through_seal: manifest.through_seal,
        chain_head: &manifest.chain_head,
        added: &added,
        removed: &removed,
        manifest_sha256: sha,
    })?;
    Ok(())
}

/// Mirrors what was sealed since the destination's last run. `now` dates the manifest and the ledger row.
pub fn run(
    archive: &mut Archive,
    dest: &dyn Destination,
    now: Timestamp,
) -> Result<MirrorReport, MirrorError> {
    let url = dest.url().to_string();
    let pause = Pause::from_env();
    let mut report = MirrorReport {
        destination: url.clone(),
        ..MirrorReport::default()
    };

    // (1) Where the destination stands.
    let ledger = archive.mirror_ledger(&url)?;
    let found = read_manifest(dest)?;
    match plan::resume(
        ledger.last.as_ref(),
        found.as_ref().map(|(m, sha)| (m, sha.as_str())),
    ) {
        plan::Resume::Fresh | plan::Resume::InSync => {}
        plan::Resume::RollForward => {
            let (manifest, sha) = found.as_ref().expect("a manifest to roll forward");
            roll_forward(archive, &url, manifest, sha)?;
            report.rolled_forward = true;
        }
        plan::Resume::Diverged(reason) => return Err(MirrorError::Diverged { url, reason }),
    }
    let ledger = archive.mirror_ledger(&url)?;

    // (2) What a stopped run left goes; what the mirror did not write stays, and a destination never mirrored
    // to that holds such objects is refused (it is not empty: its objects are somebody else's).
    let live: BTreeSet<&str> = ledger.objects.iter().map(|o| o.path.as_str()).collect();
    let unlisted: Vec<String> = list_tables(dest)?
        .into_iter()
        .filter(|k| !live.contains(k.as_str()))
        .collect();
    let swept = plan::sweep(&unlisted);
    if let Some(first) = swept.foreign.first() {
        if ledger.last.is_none() {
            return Err(MirrorError::Diverged {
                url,
                reason: format!(
                    "it already holds {} object(s) under events/ or revisions/ that the mirror did not write \
                     (for example {first}); nothing was written or deleted: mirror to an empty destination",
                    swept.foreign.len()
                ),
            });
        }
        tracing::warn!(
            "{} object(s) under events/ or revisions/ were not written by the mirror (for example {first}); \
             they are left as they are, and `export --check` names them",
            swept.foreign.len()
        );
    }
    for key in &swept.delete {
        at(dest.delete(key), || format!("cannot delete {url}/{key}"))?;
        report.swept += 1;
    }
    if report.swept > 0 {
        tracing::info!(
            "deleted {} object(s) the manifest does not list",
            report.swept
        );
    }

    // (3) What was sealed since.
    let after = ledger.last.as_ref().map_or(0, |r| r.through_seal);
    let number = ledger.last.as_ref().map_or(0, |r| r.number) + 1;
    let through = archive.last_seal_id()?;
    report.export_run = number - 1;
    (report.rows, report.revisions) =
        rows_by_table(ledger.objects.iter().map(|o| (o.path.as_str(), o.rows)));
    report.chain_head = archive.chain_head()?;
    if through <= after {
        return Ok(report);
    }
    let pending = archive.pending_seals(after, through)?;
    let planned = plan::plan(&pending, &plan::days(&ledger.objects));

    // (4) Objects, manifest, ledger.
    let added = write_objects(archive, dest, &planned, after, through, number, pause)?;
    let removed: Vec<String> = ledger
        .objects
        .iter()
        .filter(|o| planned.rewrite.contains(&o.date))
        .map(|o| o.path.clone())
        .collect();
    let mut files: Vec<ManifestFile> = ledger
        .objects
        .iter()
        .filter(|o| !planned.rewrite.contains(&o.date))
        .map(|o| ManifestFile {
            path: o.path.clone(),
            rows: o.rows,
            bytes: o.bytes,
            sha256: o.sha256.clone(),
        })
        .chain(added.iter().cloned())
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let chain_head = report.chain_head.clone();
    let (rows, revisions) = rows_by_table(files.iter().map(|f| (f.path.as_str(), f.rows)));
    let manifest = MirrorManifest {
        tool: format!("elevate-archive {}", env!("CARGO_PKG_VERSION")),
        created_at: crate::time::to_stored(now),
        archive: archive.path().display().to_string(),
        destination: url.clone(),
        export_run: number,
        after_seal: after,
        through_seal: through,
        chain_head: chain_head.clone(),
        rows,
        revisions,
        files,
    };
    let bytes = manifest.to_bytes();
    at(dest.put(MANIFEST, &bytes), || {
        format!("cannot write {url}/{MANIFEST}")
    })?;
    if pause == Some(Pause::Manifest) {
        Pause::Manifest.hold();
    }
    let added_objects = objects_of(&added);
    archive.record_mirror_run(&MirrorCommit {
        url: &url,
        number,
        committed_at: &manifest.created_at,
        after_seal: after,
        through_seal: through,
        chain_head: &chain_head,
        added: &added_objects,
        removed: &removed,
        manifest_sha256: &crate::digest::sha256_hex(&bytes),
    })?;

    // (5) The dropped objects go (a failure here is the next run's sweep).
    for key in &removed {
        if let Err(e) = dest.delete(key) {
            tracing::warn!("cannot delete {url}/{key} ({e}); the next run deletes it");
        }
    }
    report.export_run = number;
    report.seals = pending.len() as u64;
    report.rows_written = added.iter().map(|f| f.rows).sum();
    report.objects_added = added.len() as u64;
    report.objects_removed = removed.len() as u64;
    report.rows = manifest.rows;
    report.revisions = manifest.revisions;
    Ok(report)
}

/// Writes a run's objects: the days to rewrite, whole, then the rows of the window fetches sealed after seal
/// `after` through `through` that are not on those days; each object published as soon as it is complete.
/// Returns their manifest entries.
fn write_objects(
    archive: &Archive,
    dest: &dyn Destination,
    planned: &plan::Plan,
    after: i64,
    through: i64,
    number: i64,
    pause: Option<Pause>,
) -> Result<Vec<ManifestFile>, MirrorError> {
    let nonce = format!("{:08x}", rand::random::<u32>());
    let sequence = Cell::new(0u32);
    let published = Cell::new(0u64);
    let (sequence, nonce) = (&sequence, nonce.as_str());
    let naming = |table: &'static str| -> parquet::Naming<'_> {
        Box::new(move |date: &str| {
            let seq = sequence.get();
            sequence.set(seq + 1);
            format!("{table}/date={date}/part-{number:06}-{seq:05}-{nonce}.parquet")
        })
    };
    let staging = dest.staging().to_path_buf();
    let on_close = || -> parquet::OnClose<'_> {
        Box::new(|local: &Path, entry: &ManifestFile| {
            dest.publish(local, &entry.path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot upload {}: {e}", entry.path))
            })?;
            published.set(published.get() + 1);
            if pause == Some(Pause::Objects(published.get())) {
                Pause::Objects(published.get()).hold();
            }
            Ok(())
        })
    };
    let mut added = Vec::new();
    if !planned.rewrite.is_empty() {
        let mut days = Partitioner::<Columns>::with(&staging, naming(EVENTS), Some(on_close()));
        for day in &planned.rewrite {
            archive.mirror_day_rows(day, &next_day(day), through, |row| days.push(row))?;
        }
        added.extend(days.finish().map_err(ExportError::Output)?);
        let mut days =
            Partitioner::<Revisions>::with(&staging, naming(REVISIONS), Some(on_close()));
        for day in &planned.rewrite {
            archive.mirror_day_revisions(day, &next_day(day), through, |row| days.push(row))?;
        }
        added.extend(days.finish().map_err(ExportError::Output)?);
    }
    if planned.append {
        let mut new = Partitioner::<Columns>::with(&staging, naming(EVENTS), Some(on_close()));
        archive.mirror_new_rows(after, through, |row| {
            if planned.rewrite.contains(&parquet::date_of::<Columns>(row)?) {
                return Ok(()); // written with its day
            }
            new.push(row)
        })?;
        added.extend(new.finish().map_err(ExportError::Output)?);
        let mut new = Partitioner::<Revisions>::with(&staging, naming(REVISIONS), Some(on_close()));
        archive.mirror_new_revisions(after, through, |row| {
            if planned
                .rewrite
                .contains(&parquet::date_of::<Revisions>(row)?)
            {
                return Ok(());
            }
            new.push(row)
        })?;
        added.extend(new.finish().map_err(ExportError::Output)?);
    }
    Ok(added)
}

/// Every key under the tables' folders at the destination.
fn list_tables(dest: &dyn Destination) -> Result<Vec<String>, MirrorError> {
    let mut keys = Vec::new();
    for table in TABLES {
        let url = dest.url();
        keys.extend(at(dest.list(&format!("{table}/")), || {
            format!("cannot list {url}/{table}/")
        })?);
    }
    Ok(keys)
}

/// Rows of events and of revisions among `(path, rows)` objects.
fn rows_by_table<'a>(objects: impl Iterator<Item = (&'a str, u64)>) -> (u64, u64) {
    objects.fold((0, 0), |(events, revisions), (path, rows)| {
        if path.starts_with(&format!("{REVISIONS}/")) {
            (events, revisions + rows)
        } else {
            (events + rows, revisions)
        }
    })
}

/// The day after `day` (`YYYY-MM-DD`), in the same form.
fn next_day(day: &str) -> String {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.succ_opt())
        .map_or_else(|| format!("{day}~"), |d| d.format("%Y-%m-%d").to_string())
}

/// What `export --check` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// The destination.
    pub destination: String,
    /// The last run the ledger records there.
    pub export_run: i64,
    /// Objects the ledger expects (the manifest included).
    pub objects: u64,
    /// Events the ledger says the mirror holds.
    pub rows: u64,
    /// Events the archive holds through the seal mirrored (they must be equal).
    pub archive_rows: u64,
    /// Revisions the ledger says the mirror holds.
    pub revisions: u64,
    /// Revisions the archive holds through the seal mirrored (they must be equal).
    pub archive_revisions: u64,
    /// Objects missing, extra or altered.
    pub findings: Vec<plan::Finding>,
}

impl CheckReport {
    /// Whether the destination is exactly what the archive says it mirrored.
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
            && self.rows == self.archive_rows
            && self.revisions == self.archive_revisions
    }
}

/// Re-reads the destination (every object under `events/` and `revisions/`, hashed, and the manifest) and compares it with the
/// archive's ledger, and the ledger's row count with the archive's events.
pub fn check(
    archive: &dyn ArchiveRead,
    dest: &dyn Destination,
) -> Result<CheckReport, MirrorError> {
    let url = dest.url().to_string();
    let ledger = archive.mirror_ledger(&url)?;
    let Some(last) = ledger.last.as_ref() else {
        return Err(MirrorError::NeverMirrored(url));
    };
    let mut expected: BTreeMap<String, String> = ledger
        .objects
        .iter()
        .map(|o| (o.path.clone(), o.sha256.clone()))
        .collect();
    expected.insert(MANIFEST.into(), last.manifest_sha256.clone());
    let mut found = BTreeMap::new();
    let listed = list_tables(dest)?;
    for key in listed.into_iter().chain([MANIFEST.to_string()]) {
        if let Some(sha) = at(dest.sha256(&key), || format!("cannot read {url}/{key}"))? {
            found.insert(key, sha);
        }
    }
    let (rows, revisions) = rows_by_table(ledger.objects.iter().map(|o| (o.path.as_str(), o.rows)));
    Ok(CheckReport {
        destination: url,
        export_run: last.number,
        objects: expected.len() as u64,
        rows,
        archive_rows: archive.mirror_rows_through(last.through_seal)?,
        revisions,
        archive_revisions: archive.mirror_revisions_through(last.through_seal)?,
        findings: plan::compare(&expected, &found),
    })
}
