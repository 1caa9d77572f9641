//! `export`: the archive's events out to NDJSON, CSV or a Parquet dataset, streamed (flat memory), with a
//! manifest that lets the
//! copy be checked later: the range and filters, the row count, the archive's chain head, and the SHA-256 of
//! every file written.
//!
//! NDJSON lines are the events' JSON exactly as received. CSV has a header row and the columns `id, timestamp,
//! category, action, description, username, ip_address, digest, raw`. Files are written to a private
//! temporary name, synced, and renamed into place, so a file under its final name is always complete.

pub mod parquet;

use crate::model::EventSelection;
use crate::store::export::{ExportError, ExportRow};
use crate::store::{ArchiveRead, ArchiveReader};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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
#[derive(Debug, Clone, Serialize)]
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

/// Writes the selected events in `format` to `out`; returns rows, bytes and the SHA-256 of what was written.
fn write_events(
    archive: &ArchiveReader,
    selection: &EventSelection,
    format: Format,
    out: impl Write,
) -> Result<(u64, u64, String), ExportError> {
    let mut sink = Hashing {
        inner: std::io::BufWriter::with_capacity(256 * 1024, out),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let rows = match format {
        Format::Parquet => unreachable!("Parquet is written by the partitioner"),
        Format::Ndjson => archive.export_rows(selection, |row| {
            sink.write_all(row.raw.as_bytes())?;
            sink.write_all(b"\n")
        })?,
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut sink);
            csv.write_record([
                "id",
                "timestamp",
                "category",
                "action",
                "description",
                "username",
                "ip_address",
                "digest",
                "raw",
            ])
            .map_err(std::io::Error::other)?;
            let rows = archive.export_rows(selection, |row: &ExportRow| {
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
            rows
        }
    };
    sink.flush()?;
    Ok((rows, sink.bytes, hex::encode(sink.hasher.finalize())))
}

/// Exports to a file (atomically, mode 0600) or, without `out`, to standard output.
pub fn export(
    reader: &ArchiveReader,
    archive: &Path,
    events: &EventSelection,
    selection: Selection,
    format: Format,
    out: Option<&Path>,
) -> Result<Manifest, ExportError> {
    let chain_head = reader.chain_head()?;
    let manifest = |rows, files| Manifest {
        tool: format!("elevate-archive {}", env!("CARGO_PKG_VERSION")),
        created_at: crate::time::to_stored(chrono::Utc::now()),
        archive: archive.display().to_string(),
        chain_head: chain_head.clone(),
        format,
        selection: selection.clone(),
        rows,
        files,
    };
    if format == Format::Parquet {
        let dir = out.ok_or_else(|| {
            ExportError::Output(std::io::Error::other(
                "a Parquet dataset is a folder: pass --out DIR",
            ))
        })?;
        let tmp = partial_name(dir);
        let written = (|| {
            let mut dataset = parquet::Partitioner::create(&tmp)?;
            reader.export_rows(events, |row| {
                dataset.push(row).map_err(|e| match e {
                    ExportError::Output(io) => io,
                    other => std::io::Error::other(other.to_string()),
                })
            })?;
            let files = dataset.finish()?;
            let rows = files.iter().map(|f| f.rows).sum();
            let m = manifest(rows, files);
            write_manifest(&m, &tmp.join(DATASET_MANIFEST))?;
            std::fs::rename(&tmp, dir)?;
            Ok(m)
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        return written;
    }
    let (path, (rows, bytes, sha256)) = match out {
        None => (
            "-".to_string(),
            write_events(reader, events, format, std::io::stdout().lock())?,
        ),
        Some(out) => {
            let tmp = partial_name(out);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let written = write_events(reader, events, format, &file).and_then(|w| {
                file.sync_all()?;
                std::fs::rename(&tmp, out)?;
                Ok(w)
            });
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            (out.display().to_string(), written?)
        }
    };
    Ok(manifest(
        rows,
        vec![ManifestFile {
            path,
            rows,
            bytes,
            sha256,
        }],
    ))
}

/// Writes a manifest as JSON to `path`, atomically and privately.
pub fn write_manifest(manifest: &Manifest, path: &Path) -> std::io::Result<()> {
    let tmp = partial_name(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let text = serde_json::to_string_pretty(manifest).map_err(std::io::Error::other)? + "\n";
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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

fn partial_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}
