//! Parquet export: a Hive-partitioned dataset, `DIR/date=YYYY-MM-DD/part-00000.parquet`, ZSTD-compressed, with
//! `timestamp` typed as a UTC timestamp (milliseconds) and the other columns as strings, readable as-is by
//! DuckDB, Spark, Trino and Athena. Rows arrive in time order, so one day's file is open at a time and memory
//! stays flat (a batch of [`BATCH_ROWS`] at most). Each file is an [`AtomicFile`]: written under a hidden name
//! (`.`-prefixed, which dataset readers skip), synced and renamed when complete. Errors are plain IO errors (the
//! Parquet writer's inside), so that rows can be pushed straight from the archive's row stream.

use super::{Hashing, ManifestFile};
use crate::atomic::{AtomicFile, DIR_MODE};
use crate::store::export::{ExportRow, RevisionRow};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows buffered before a batch is written.
pub const BATCH_ROWS: usize = 50_000;
/// The name of each day's file inside its `date=` folder.
pub const PART_FILE: &str = "part-00000.parquet";

/// The dataset's schema (the `date` partition column lives in the path).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("category", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("username", DataType::Utf8, true),
        Field::new("ip_address", DataType::Utf8, true),
        Field::new("digest", DataType::Utf8, true),
        Field::new("raw", DataType::Utf8, false),
    ]))
}

/// A table the partitioner writes: its schema, and its rows buffered column by column.
pub trait Table: Default {
    /// A row as the store streams it.
    type Row;
    /// The schema of the table's files.
    fn schema() -> SchemaRef;
    /// The row's stored timestamp, which names its day, and its id (for errors).
    fn when(row: &Self::Row) -> (&str, i64);
    /// Buffers a row; `millis` is its timestamp.
    fn push(&mut self, row: &Self::Row, millis: i64) -> io::Result<()>;
    /// The buffered rows as one batch, emptied.
    fn take_batch(&mut self, schema: &SchemaRef) -> io::Result<RecordBatch>;
}

/// The `events` table (the rows of one batch, column by column).
#[derive(Default)]
pub struct Columns {
    id: Vec<i64>,
    timestamp: Vec<i64>,
    category: Vec<String>,
    action: Vec<String>,
    description: Vec<Option<String>>,
    username: Vec<Option<String>>,
    ip_address: Vec<Option<String>>,
    digest: Vec<Option<String>>,
    raw: Vec<String>,
}

impl Table for Columns {
    type Row = ExportRow;

    fn schema() -> SchemaRef {
        schema()
    }

    fn when(row: &ExportRow) -> (&str, i64) {
        (&row.timestamp, row.id)
    }

    fn push(&mut self, row: &ExportRow, millis: i64) -> io::Result<()> {
        self.id.push(row.id);
        self.timestamp.push(millis);
        self.category.push(row.category.clone());
        self.action.push(row.action.clone());
        self.description.push(row.description.clone());
        self.username.push(row.username.clone());
        self.ip_address.push(row.ip_address.clone());
        self.digest.push(row.digest.clone());
        self.raw.push(row.raw.clone());
        Ok(())
    }

    fn take_batch(&mut self, schema: &SchemaRef) -> io::Result<RecordBatch> {
        let c = std::mem::take(self);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(c.id)),
            Arc::new(TimestampMillisecondArray::from(c.timestamp).with_timezone("UTC")),
            Arc::new(StringArray::from(c.category)),
            Arc::new(StringArray::from(c.action)),
            Arc::new(StringArray::from(c.description)),
            Arc::new(StringArray::from(c.username)),
            Arc::new(StringArray::from(c.ip_address)),
            Arc::new(StringArray::from(c.digest)),
            Arc::new(StringArray::from(c.raw)),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).map_err(io::Error::other)
    }
}

/// The schema of the mirror's `revisions` table: later versions of archived events (`event_revisions`), in
/// the day of the event they revise.
pub fn revisions_schema() -> SchemaRef {
    let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("event_id", DataType::Int64, false),
        Field::new("timestamp", utc.clone(), false),
        Field::new("fetched_at", utc, false),
        Field::new("digest", DataType::Utf8, true),
        Field::new("raw", DataType::Utf8, false),
    ]))
}

/// The `revisions` table.
#[derive(Default)]
pub struct Revisions {
    id: Vec<i64>,
    event_id: Vec<i64>,
    timestamp: Vec<i64>,
    fetched_at: Vec<i64>,
    digest: Vec<Option<String>>,
    raw: Vec<String>,
}

impl Table for Revisions {
    type Row = RevisionRow;

    fn schema() -> SchemaRef {
        revisions_schema()
    }

    fn when(row: &RevisionRow) -> (&str, i64) {
        (&row.timestamp, row.id)
    }

    fn push(&mut self, row: &RevisionRow, millis: i64) -> io::Result<()> {
        let fetched = crate::time::from_stored(&row.fetched_at).ok_or_else(|| {
            io::Error::other(format!("revision {} has an unreadable fetched_at", row.id))
        })?;
        self.id.push(row.id);
        self.event_id.push(row.event_id);
        self.timestamp.push(millis);
        self.fetched_at.push(fetched.timestamp_millis());
        self.digest.push(row.digest.clone());
        self.raw.push(row.raw.clone());
        Ok(())
    }

    fn take_batch(&mut self, schema: &SchemaRef) -> io::Result<RecordBatch> {
        let c = std::mem::take(self);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(c.id)),
            Arc::new(Int64Array::from(c.event_id)),
            Arc::new(TimestampMillisecondArray::from(c.timestamp).with_timezone("UTC")),
            Arc::new(TimestampMillisecondArray::from(c.fetched_at).with_timezone("UTC")),
            Arc::new(StringArray::from(c.digest)),
            Arc::new(StringArray::from(c.raw)),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).map_err(io::Error::other)
    }
}

/// One day's file being written.
struct Open {
    date: String,
    writer: ArrowWriter<Hashing<AtomicFile>>,
    path: PathBuf,
    rows: u64,
}

/// Names a day's file, relative to the dataset's folder, from its date (`YYYY-MM-DD`).
pub type Naming<'a> = Box<dyn FnMut(&str) -> String + 'a>;
/// Called with each file once it is complete under its final name, and its manifest entry.
pub type OnClose<'a> = Box<dyn FnMut(&Path, &ManifestFile) -> io::Result<()> + 'a>;

/// The date partition (`YYYY-MM-DD`, UTC) of a row of table `T`.
pub fn date_of<T: Table>(row: &T::Row) -> io::Result<String> {
    Ok(when::<T>(row)?.format("%Y-%m-%d").to_string())
}

/// The timestamp of a row of table `T`.
fn when<T: Table>(row: &T::Row) -> io::Result<crate::time::Timestamp> {
    let (stored, id) = T::when(row);
    crate::time::from_stored(stored)
        .ok_or_else(|| io::Error::other(format!("row {id} has an unreadable timestamp")))
}

/// Writes the dataset under `dir` from rows in time order; returns the files written.
pub struct Partitioner<'a, T: Table = Columns> {
    dir: PathBuf,
    naming: Naming<'a>,
    on_close: Option<OnClose<'a>>,
    schema: SchemaRef,
    open: Option<Open>,
    columns: T,
    pending: usize,
    /// Files written so far, with paths relative to the dataset's folder.
    pub files: Vec<ManifestFile>,
}

impl Partitioner<'_> {
    /// A dataset of `events` written into the existing, empty folder `dir` (the caller's temporary folder),
    /// one `date=YYYY-MM-DD/part-00000.parquet` per day.
    pub fn new(dir: &Path) -> Self {
        Partitioner::with(
            dir,
            Box::new(|date| format!("date={date}/{PART_FILE}")),
            None,
        )
    }
}

impl<'a, T: Table> Partitioner<'a, T> {
    /// A dataset written into the existing folder `dir`, each day's file named by `naming` (a name not in
    /// use: a day seen again after another opens a new file), and handed to `on_close` once complete.
    pub fn with(dir: &Path, naming: Naming<'a>, on_close: Option<OnClose<'a>>) -> Self {
        Partitioner {
            dir: dir.to_path_buf(),
            naming,
            on_close,
            schema: T::schema(),
            open: None,
            columns: T::default(),
            pending: 0,
            files: Vec::new(),
        }
    }

    /// Adds one row (rows must come in time order).
    pub fn push(&mut self, row: &T::Row) -> io::Result<()> {
        let at = when::<T>(row)?;
        let date = at.format("%Y-%m-%d").to_string();
        if self.open.as_ref().is_none_or(|o| o.date != date) {
            self.close_file()?;
            self.open_file(date)?;
        }
        self.columns.push(row, at.timestamp_millis())?;
        self.pending += 1;
        if self.pending >= BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    /// Writes what is buffered and closes the last file; returns the files written.
    pub fn finish(mut self) -> io::Result<Vec<ManifestFile>> {
        self.close_file()?;
        Ok(self.files)
    }

    fn open_file(&mut self, date: String) -> io::Result<()> {
        let path = self.dir.join((self.naming)(&date));
        if let Some(folder) = path.parent() {
            std::fs::DirBuilder::new()
                .mode(DIR_MODE)
                .recursive(true)
                .create(folder)?;
        }
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let sink = Hashing::new(AtomicFile::create(&path)?);
        let writer = ArrowWriter::try_new(sink, Arc::clone(&self.schema), Some(props))
            .map_err(io::Error::other)?;
        self.open = Some(Open {
            date,
            writer,
            path,
            rows: 0,
        });
        Ok(())
    }

    fn write_batch(&mut self) -> io::Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let batch = self.columns.take_batch(&self.schema)?;
        let open = self
            .open
            .as_mut()
            .expect("a file is open while rows are pending");
        open.writer.write(&batch).map_err(io::Error::other)?;
        open.rows += self.pending as u64;
        self.pending = 0;
        Ok(())
    }

    fn close_file(&mut self) -> io::Result<()> {
        self.write_batch()?;
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let sink = open.writer.into_inner().map_err(io::Error::other)?;
        let relative = open.path.strip_prefix(&self.dir).unwrap_or(&open.path);
        let (file, entry) = sink.into_entry(relative.display().to_string(), open.rows);
        file.commit()?;
        if let Some(on_close) = self.on_close.as_mut() {
            on_close(&open.path, &entry)?;
        }
        self.files.push(entry);
        Ok(())
    }
}
