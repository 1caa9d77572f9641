//! `export`: the archive's events out to NDJSON, CSV or a Parquet dataset, streamed (flat memory), with a
//! manifest that lets the copy be checked later: the range and filters, the row count, the archive's chain head,
//! and the SHA-256 of every file written.
//!
//! NDJSON lines are the events' JSON exactly as received. CSV has a header row and the columns `id, timestamp,
//! category, action, description, username, ip_address, digest, raw`. Every file (the export, its manifest,
//! each Parquet part) is written through [`AtomicFile`] and a dataset through [`AtomicDir`]: private, synced,
//! renamed into place and the folder synced, so whatever is under its final name is complete.

pub mod mirror;
pub mod parquet;

use crate::atomic::{AtomicDir, AtomicFile};
use crate::model::EventSelection;
use crate::store::ArchiveReader;
use crate::store::export::{ExportError, ExportRow};
use crate::time::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One event per line, as received.
    Ndjson,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// A Hive-partitioned Parquet dataset (`date=YYYY-MM-DD/`), ZSTD-compressed, typed.
    Parquet,
}

/// What an export was asked for, recorded in its manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// Range start (stored form), if any.
    pub from: Option<String>,
    /// Range end (stored form, exclusive), if any.
    pub to: Option<String>,
    /// Category filter, if any.
    pub category: Option<String>,
    /// Action filter, if any.
    pub action: Option<String>,
}

/// One file of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ManifestFile {
    /// Its path, as written (`-` for standard output).
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
}

/// The manifest of an export.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The tool and version that wrote it.
    pub tool: String,
    /// When (UTC).
    pub created_at: String,
    /// The archive exported.
    pub archive: String,
    /// The archive's seal-chain head at export time (check the archive with `verify --anchor`).
    pub chain_head: String,
    /// The format.
    pub format: Format,
    /// What was selected.
    pub selection: Selection,
    /// Rows exported in all.
    pub rows: u64,
    /// The files written.
    pub files: Vec<ManifestFile>,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The manifest entry for what passed through (`rows` of it, written to `path`), and the inner writer back.
    fn into_entry(self, path: String, rows: u64) -> (W, ManifestFile) {
        let entry = ManifestFile {
            path,
            rows,
            bytes: self.bytes,
            sha256: hex::encode(self.hasher.finalize()),
        };
        (self.inner, entry)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The CSV header: the columns of an exported event.
const CSV_HEADER: [&str; 9] = [
    "id",
    "timestamp",
    "category",
    "action",
    "description",
    "username",
    "ip_address",
    "digest",
    "raw",
];

/// Where exported events come from: streamed in time order (timestamp, then id) into `each`.
pub trait Rows {
    /// Streams the rows into `each`; returns how many.
    fn each(
        &self,
        each: &mut dyn FnMut(&ExportRow) -> std::io::Result<()>,
    ) -> Result<u64, ExportError>;
}

/// The events of an archive that a selection picks.
pub struct Selected<'a> {
    /// The archive.
    pub archive: &'a ArchiveReader,
    /// What is picked.
    pub selection: &'a EventSelection,
}

impl Rows for Selected<'_> {
    fn each(
        &self,
        each: &mut dyn FnMut(&ExportRow) -> std::io::Result<()>,
    ) -> Result<u64, ExportError> {
        self.archive.export_rows(self.selection, each)
    }
}

/// Buffer between the row stream and the output.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Writes the selected events in `format` to `out`; returns the manifest entry for them under the name `path`.
fn write_events(
    rows: &dyn Rows,
    format: Format,
    out: impl Write,
    path: String,
) -> Result<ManifestFile, ExportError> {
    let mut sink = Hashing::new(std::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, out));
    let written = match format {
        Format::Parquet => unreachable!("Parquet is written by the partitioner"),
        Format::Ndjson => rows.each(&mut |row| {
            sink.write_all(row.raw.as_bytes())?;
            sink.write_all(b"\n")
        })?,
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut sink);
            csv.write_record(CSV_HEADER)
                .map_err(std::io::Error::other)?;
            let count = rows.each(&mut |row: &ExportRow| {
                csv.write_record([
                    row.id.to_string().as_str(),
                    &row.timestamp,
                    &row.category,
                    &row.action,
                    row.description.as_deref().unwrap_or(""),
                    row.username.as_deref().unwrap_or(""),
                    row.ip_address.as_deref().unwrap_or(""),
                    row.digest.as_deref().unwrap_or(""),
                    &row.raw,
                ])
                .map_err(std::io::Error::other)
            })?;
            csv.flush()?;
            count
        }
    };
    sink.flush()?;
    Ok(sink.into_entry(path, written).1)
}

/// Exports to a file or, for Parquet, a dataset folder (either appears complete or not at all, private), or,
/// without `out`, to standard output. `chain_head` is the archive's when the rows were read; `now` is the
/// manifest's `created_at` (the command's one clock).
#[allow(clippy::too_many_arguments)]
pub fn export(
    rows: &dyn Rows,
    chain_head: String,
    archive: &Path,
    selection: Selection,
    format: Format,
    out: Option<&Path>,
    now: Timestamp,
) -> Result<Manifest, ExportError> {
    let manifest = |files: Vec<ManifestFile>| Manifest {
        tool: format!("elevate-archive {}", env!("CARGO_PKG_VERSION")),
        created_at: crate::time::to_stored(now),
        archive: archive.display().to_string(),
        chain_head,
        format,
        selection,
        rows: files.iter().map(|f| f.rows).sum(),
        files,
    };
    match (format, out) {
        (Format::Parquet, Some(dir)) => export_dataset(rows, dir, manifest),
        (Format::Parquet, None) => Err(ExportError::Output(std::io::Error::other(
            "a Parquet dataset is a folder: pass --out DIR",
        ))),
        (_, Some(path)) => {
            let mut file = AtomicFile::create(path)?;
            let written = write_events(rows, format, &mut file, path.display().to_string())?;
            file.commit()?;
            Ok(manifest(vec![written]))
        }
        (_, None) => {
            let written = write_events(rows, format, std::io::stdout().lock(), "-".into())?;
            Ok(manifest(vec![written]))
        }
    }
}

/// Writes the Parquet dataset, its manifest inside, into a temporary folder renamed to `dir` when complete.
fn export_dataset(
    rows: &dyn Rows,
    dir: &Path,
    manifest: impl FnOnce(Vec<ManifestFile>) -> Manifest,
) -> Result<Manifest, ExportError> {
    let folder = AtomicDir::create(dir)?;
    let mut dataset = parquet::Partitioner::new(folder.path());
    rows.each(&mut |row| dataset.push(row))?;
    let manifest = manifest(dataset.finish()?);
    write_manifest(&manifest, &folder.path().join(DATASET_MANIFEST))?;
    folder.commit()?;
    Ok(manifest)
}

/// Writes a manifest as JSON to `path`, atomically and privately.
pub fn write_manifest(manifest: &Manifest, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(manifest).map_err(std::io::Error::other)? + "\n";
    let mut file = AtomicFile::create(path)?;
    file.write_all(text.as_bytes())?;
    file.commit()
}

/// The manifest inside a Parquet dataset (`_`-prefixed files are skipped by dataset readers).
pub const DATASET_MANIFEST: &str = "_manifest.json";

/// Where an export's manifest goes: `FILE.manifest.json`, or `DIR/_manifest.json` for a Parquet dataset.
pub fn manifest_path_for(out: &Path, format: Format) -> PathBuf {
    match format {
        Format::Parquet => out.join(DATASET_MANIFEST),
        _ => manifest_path(out),
    }
}

/// The manifest path for an export file: `FILE.manifest.json`.
pub fn manifest_path(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".manifest.json");
    out.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::tests::names;

    /// Bytes of padding in each event, so that a failing export has already flushed part of its file.
    const PADDING: usize = 2_000;

    /// A stand-in for an archive: `days` days of `per_day` events, and, if `broken`, a read that fails after
    /// the last of them (as a damaged archive would, midway through the stream).
    struct Archive {
        rows: Vec<ExportRow>,
        broken: bool,
    }

    impl Rows for Archive {
        fn each(
            &self,
            each: &mut dyn FnMut(&ExportRow) -> std::io::Result<()>,
        ) -> Result<u64, ExportError> {
            for row in &self.rows {
                each(row)?;
            }
            if self.broken {
                return Err(ExportError::Store(crate::store::StoreError::Io {
                    context: "cannot read events for the export".into(),
                    source: std::io::Error::other("a damaged page"),
                }));
            }
            Ok(self.rows.len() as u64)
        }
    }

    fn archive(days: u32, per_day: u32, broken: bool) -> Archive {
        let mut rows = Vec::new();
        for day in 1..=days {
            for n in 0..per_day {
                let id = rows.len() as i64 + 1;
                rows.push(ExportRow {
                    id,
                    timestamp: format!("2024-01-{day:02}T00:00:{:02}.000Z", n % 60),
                    category: "authentication".into(),
                    action: "user-logout".into(),
                    description: None,
                    username: Some("bob".into()),
                    ip_address: None,
                    raw: format!(r#"{{"id":{id},"note":"{}"}}"#, "x".repeat(PADDING)),
                    digest: None,
                });
            }
        }
        Archive { rows, broken }
    }

    /// The clock the tests pin.
    const NOW: &str = "2024-06-01T12:00:00.000Z";

    /// Exports every event of `rows` to `out`.
    fn export_all(rows: &Archive, format: Format, out: &Path) -> Result<Manifest, ExportError> {
        let selection = Selection {
            from: None,
            to: None,
            category: None,
            action: None,
        };
        let now = crate::time::from_stored(NOW).unwrap();
        export(
            rows,
            crate::store::seal::GENESIS.into(),
            Path::new("a.db"),
            selection,
            format,
            Some(out),
            now,
        )
    }

    const FORMATS: [(Format, &str); 3] = [
        (Format::Ndjson, "out.ndjson"),
        (Format::Csv, "out.csv"),
        (Format::Parquet, "dataset"),
    ];

    #[test]
    fn an_export_appears_complete_and_alone() {
        for (format, name) in FORMATS {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join(name);
            let conn = archive(3, 50, false);
            let m = export_all(&conn, format, &out).unwrap();
            assert_eq!(m.rows, 150, "{format:?}");
            assert_eq!(
                names(dir.path()),
                [name],
                "{format:?}: no temporary is left"
            );
            if format == Format::Parquet {
                assert_eq!(m.files.len(), 3, "one file per day");
                for f in &m.files {
                    let bytes = std::fs::read(out.join(&f.path)).unwrap();
                    assert_eq!(crate::digest::sha256_hex(&bytes), f.sha256);
                }
                assert!(out.join(DATASET_MANIFEST).exists());
                let days: Vec<String> = names(&out);
                assert_eq!(
                    days,
                    [
                        "_manifest.json",
                        "date=2024-01-01",
                        "date=2024-01-02",
                        "date=2024-01-03"
                    ]
                );
                assert_eq!(names(&out.join("date=2024-01-02")), [parquet::PART_FILE]);
            } else {
                let bytes = std::fs::read(&out).unwrap();
                assert_eq!(m.files[0].bytes, bytes.len() as u64, "{format:?}");
                assert_eq!(crate::digest::sha256_hex(&bytes), m.files[0].sha256);
            }
        }
    }

    #[test]
    fn an_export_failing_midway_leaves_nothing() {
        for (format, name) in FORMATS {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join(name);
            let conn = archive(3, 200, true);
            let got = export_all(&conn, format, &out);
            assert!(
                matches!(got, Err(ExportError::Store(_))),
                "{format:?}: {got:?}"
            );
            assert!(
                names(dir.path()).is_empty(),
                "{format:?}: {:?}",
                names(dir.path())
            );
        }
    }

    #[test]
    fn a_manifest_is_written_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        let conn = archive(1, 3, false);
        let m = export_all(&conn, Format::Csv, &out).unwrap();
        let path = manifest_path(&out);
        write_manifest(&m, &path).unwrap();
        let read: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read["rows"], 3);
        assert_eq!(
            read["created_at"], NOW,
            "the manifest's time is the command's clock"
        );
        assert_eq!(read["files"][0]["sha256"], m.files[0].sha256.as_str());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, crate::atomic::FILE_MODE);
        assert_eq!(names(dir.path()), ["out.csv", "out.csv.manifest.json"]);
    }
}
