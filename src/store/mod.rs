//! The archive: the only code that runs SQL. Two handles, and no `Connection` ever leaves this module:
//!
//! - [`Archive`], the writer (`sync`, `reconcile`, `prune`, `hold`): [`Archive::open`] creates the file private
//!   (0600), takes the exclusive lock, inspects an existing file read-only before touching it (not SQLite, not
//!   ours, or from a newer version: refused, left untouched), then sets WAL and `synchronous=FULL` and applies
//!   the embedded migrations (`migrations/`). [`write`] commits pages: each page's events, revisions, rejects
//!   and ledger update in one transaction; [`retention`] prunes and holds.
//! - [`ArchiveReader`], read-only and hardened for files that may come from elsewhere: typed answers for
//!   `status` ([`read`]), `verify` ([`verify`]), search, holds, export rows and prune plans, and one deliberate
//!   raw-SQL door for `query` ([`ArchiveReader::query`]).
//!
//! What both handles answer (coverage, pruned ranges, the chain head) is the [`ArchiveRead`] trait. States and
//! kinds are bound as the model's enums ([`kinds`]); "now" is always passed in by the caller (one clock).
//!
//! Invariant: a window's ledger row says `complete` only if the transaction that stored its last page said so.

pub mod coverage;
pub mod export;
pub mod filter;
pub mod kinds;
pub mod lateness;
pub mod mirror;
pub mod read;
pub mod reader;
pub mod retention;
pub mod seal;
pub mod tlog;
pub mod verify;
pub mod write;

pub use reader::{ArchiveRead, ArchiveReader, Cell, QueryError, RowSink};

/// Queries people are shown (by `demo`, and in hints), run through [`ArchiveReader::query`] like any other.
pub mod examples {
    /// What `demo` runs after its sync: (title, SQL).
    pub const DEMO: &[(&str, &str)] = &[
        (
            "Logins per day (last 7 days)",
            "SELECT date(timestamp) AS day, count(*) AS logins FROM events \
             WHERE action = 'user-login-success' GROUP BY day ORDER BY day DESC LIMIT 7",
        ),
        (
            "Failed logins by user (top 10)",
            "SELECT username, count(*) AS failures, max(timestamp) AS last_failure FROM events \
             WHERE action = 'user-login-failure' GROUP BY username ORDER BY failures DESC, username LIMIT 10",
        ),
    ];
    /// The items a sync could not archive.
    pub const REJECTS: &str = "SELECT * FROM rejects";
    /// Everything `reconcile` recorded.
    pub const SOURCE_CHANGES: &str = "SELECT * FROM source_changes ORDER BY id";
}

use crate::time::{self, Timestamp};
use rusqlite::{Connection, OpenFlags, config::DbConfig};
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::warn;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Marks a SQLite file as an elevate-archive archive (`PRAGMA application_id`, 'ELEV').
pub const APPLICATION_ID: i64 = 0x454C_4556;
/// Pragmas of the writing connection: every commit durable across power loss (one WAL sync per commit), and a
/// page cache large enough for the secondary indexes' working set (cache_size is in KiB when negative).
pub const WRITER_PRAGMAS: &str =
    "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768;";

/// The migration that introduced seals.
const SEALS_VERSION: i32 = 2;
/// The migration that introduced full-text search.
const SEARCH_VERSION: i32 = 3;

/// How long a connection waits for another's lock (a reader checkpointing, a backup) before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything that can go wrong with the archive file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// There is no archive at the path (read-only commands never create one).
    #[error("no archive at {path}: run `elevate-archive sync --from DATE` first, or pass --db")]
    NotFound {
        /// The path looked at.
        path: PathBuf,
    },
    /// The file is not an SQLite database, or not an archive of this tool.
    #[error(
        "{path} is not an elevate-archive archive ({detail}); it was left untouched: pass --db with another path"
    )]
    NotAnArchive {
        /// The file.
        path: PathBuf,
        /// What it looks like instead.
        detail: String,
    },
    /// The archive is damaged in a way SQLite cannot be trusted to report safely.
    #[error("{path} is damaged ({detail}); it was left untouched: restore it from a backup")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is damaged.
        detail: String,
    },
    /// The archive was written by a newer version of the tool.
    #[error(
        "{path} has schema version {found}, newer than this elevate-archive understands (up to {supported}); \
         it was left untouched: upgrade elevate-archive"
    )]
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The archive was written by an older version and has not been upgraded yet.
    #[error(
        "{path} has schema version {found}, older than this elevate-archive reads (version {supported}); it was \
         left untouched: the next `elevate-archive sync` (or `hold add`, `prune`) upgrades it in place, keeping everything"
    )]
    OlderVersion {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The version this build reads.
        supported: i64,
    },
    /// A window fetch about to be pruned no longer matches its seal.
    #[error(
        "window fetch {window_id} no longer matches its seal, so it was not pruned (nothing was): \
         run `elevate-archive verify` to see what changed"
    )]
    SealMismatch {
        /// The window fetch.
        window_id: i64,
    },
    /// Window fetches are still open (a sync running, or one that was killed): `prune` does not plan around
    /// rows that are not sealed yet.
    #[error(
        "{count} window fetch(es) are still open (a sync is running, or one was stopped before it could close \
         them); nothing was pruned: run `elevate-archive sync` (it closes and seals what a stopped sync left), \
         then prune"
    )]
    OpenWindows {
        /// How many.
        count: i64,
    },
    /// Another sync holds the archive.
    #[error(
        "another sync is already running on {path}; nothing was done (wait for it to finish, or check for a stuck process)"
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An SQLite operation failed (its description is part of the message, so it is not a separate cause).
    #[error("{context}: {}", describe_sqlite(.cause))]
    Sqlite {
        /// What was being done.
        context: String,
        /// The cause.
        cause: rusqlite::Error,
    },
    /// The schema migration failed.
    #[error("cannot bring the archive's schema up to date")]
    Migration(#[source] refinery::Error),
}

/// Words for SQLite failures a user can act on (disk full, read-only, corrupt).
fn describe_sqlite(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DiskFull) => {
            format!("{e} (the disk or the archive's size limit is full: make room, then run again)")
        }
        Some(DatabaseCorrupt) | Some(NotADatabase) => {
            format!("{e} (the archive file is damaged: restore it from a backup)")
        }
        Some(ReadOnly) => format!("{e} (the archive or its folder is not writable by this user)"),
        Some(SystemIoFailure) => format!(
            "{e} (a read or write failed: the disk may be full, over a size limit or failing; make room or check the disk, then run again)"
        ),
        Some(CannotOpen) => {
            format!("{e} (check that the file and its folder exist and are accessible)")
        }
        _ => e.to_string(),
    }
}

/// Adds context to rusqlite results.
pub(crate) trait SqlContext<T> {
    /// Wraps the error with what was being done.
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|cause| StoreError::Sqlite {
            context: what(),
            cause,
        })
    }
}

/// An archive opened for writing; holds the exclusive lock until dropped.
pub struct Archive {
    conn: Connection,
    path: PathBuf,
    _lock: File,
    /// The event lines of the window fetches being paged, for sealing them fast (see [`write::OpenWindows`]).
    open: write::OpenWindows,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive").field("path", &self.path).finish()
    }
}

impl reader::sealed::Connected for Archive {
    fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl ArchiveRead for Archive {}

impl Archive {
    /// Opens an existing archive for writing (`reconcile`, `prune`, `hold`: they never create one).
    pub fn open_existing(path: &Path, now: Timestamp) -> Result<Archive, StoreError> {
        if !path.exists() {
            return Err(StoreError::NotFound { path: path.into() });
        }
        Archive::open(path, now)
    }

    /// Opens (creating if needed) the archive for writing: private file, exclusive lock, checks, migrations.
    /// `now` dates whatever an upgrade records (the seals of windows archived before seals existed).
    pub fn open(path: &Path, now: Timestamp) -> Result<Archive, StoreError> {
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Io {
                context: format!("cannot open or create the archive {}", path.display()),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked { path: path.into() }),
            Err(TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    context: format!("cannot lock {}", path.display()),
                    source,
                });
            }
        }
        warn_if_shared(path, &lock);
        inspect(path)?;
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .context(|| format!("cannot open {}", path.display()))?;
        harden(&conn)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .context(|| format!("cannot switch {} to WAL mode", path.display()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            warn!(
                "the archive's journal mode is {mode}, not WAL (a file system without shared memory?)"
            );
        }
        conn.execute_batch(WRITER_PRAGMAS)
            .context(|| "cannot set the archive's pragmas".into())?;
        seal::register_functions(&conn)
            .context(|| "cannot register the archive's SQL functions".into())?;
        // Grouped: every pending migration and its history row commit in one transaction, so a kill while
        // upgrading leaves the archive as it was, never a schema applied but not recorded.
        let report = embedded::migrations::runner()
            .set_grouped(true)
            .run(&mut conn)
            .map_err(StoreError::Migration)?;
        let applied = |version| {
            report
                .applied_migrations()
                .iter()
                .any(|m| m.version() == version)
        };
        // The Merkle log of an archive made before it (once; before the backlog below is sealed, whose seals
        // then join the log after the rows they seal).
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .context(|| "cannot start building the Merkle log".into())?;
        let logged = tlog::build_existing(&tx)?;
        tx.commit()
            .context(|| "cannot commit the Merkle log of the existing rows".into())?;
        if logged > 0 {
            tracing::info!("built the Merkle log of the existing archive: {logged} leaves");
        }
        if applied(SEALS_VERSION) {
            // An archive from before seals: digest and seal what it already holds, once.
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .context(|| "cannot start sealing the existing windows".into())?;
            let sealed = seal::seal_backlog(&tx, &time::to_stored(now))?;
            tx.commit()
                .context(|| "cannot commit the existing windows' seals".into())?;
            if sealed > 0 {
                tracing::info!("sealed {sealed} window fetch(es) archived before seals existed");
            }
        }
        let mut archive = Archive {
            conn,
            path: path.into(),
            _lock: lock,
            open: write::OpenWindows::default(),
        };
        if applied(SEARCH_VERSION) {
            // An archive from before search: index what it already holds, once.
            archive.update_search_index()?;
        }
        Ok(archive)
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The newest schema version this build can write.
pub fn supported_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Looks at an existing file read-only and refuses anything that is not an archive this build can use.
/// An empty file (or a brand-new one) passes: it becomes an archive.
fn inspect(path: &Path) -> Result<Option<i64>, StoreError> {
    let conn = open_read_only_raw(path)?;
    let not_archive = |detail: String| StoreError::NotAnArchive {
        path: path.into(),
        detail,
    };
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| {
            not_archive(match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => "it is not an SQLite database".into(),
                _ => format!("it cannot be read as SQLite: {e}"),
            })
        })?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| not_archive(format!("its schema cannot be read: {e}")))?;
    if objects == 0 {
        return Ok(None);
    }
    // Column names come from the schema's text; damaged text must be reported here, not met later as invalid
    // UTF-8 deep inside the SQLite bindings.
    let mut schema = conn
        .prepare("SELECT name, sql FROM sqlite_schema")
        .map_err(|e| not_archive(format!("its schema cannot be read: {e}")))?;
    let mut rows = schema
        .query([])
        .map_err(|e| not_archive(format!("its schema cannot be read: {e}")))?;
    while let Some(row) = rows
        .next()
        .map_err(|e| not_archive(format!("its schema cannot be read: {e}")))?
    {
        for i in 0..2 {
            if let Ok(rusqlite::types::ValueRef::Text(text)) = row.get_ref(i)
                && std::str::from_utf8(text).is_err()
            {
                return Err(StoreError::Damaged {
                    path: path.into(),
                    detail: "its schema text is not valid UTF-8".into(),
                });
            }
        }
    }
    drop(rows);
    drop(schema);
    if app_id != APPLICATION_ID {
        return Err(not_archive(format!(
            "it is an SQLite database of another application (application_id {app_id}, {objects} schema objects)"
        )));
    }
    let found: Option<i64> = conn
        .query_row(
            "SELECT max(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .map_err(|e| not_archive(format!("its schema history cannot be read: {e}")))?;
    let supported = supported_version();
    match found {
        Some(found) if found > supported => Err(StoreError::NewerVersion {
            path: path.into(),
            found,
            supported,
        }),
        found => Ok(found),
    }
}

/// Opens a read-only connection with no checks.
fn open_read_only_raw(path: &Path) -> Result<Connection, StoreError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context(|| format!("cannot open {} read-only", path.display()))
}

/// Opens an existing archive read-only, hardened for files that may come from elsewhere.
fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::NotFound { path: path.into() });
    }
    let Some(found) = inspect(path)? else {
        return Err(StoreError::NotAnArchive {
            path: path.into(),
            detail: "it is empty: no sync has written to it yet".into(),
        });
    };
    let supported = supported_version();
    if found < supported {
        return Err(StoreError::OlderVersion {
            path: path.into(),
            found,
            supported,
        });
    }
    let conn = open_read_only_raw(path)?;
    harden(&conn)?;
    conn.execute_batch(
        "PRAGMA query_only = ON; PRAGMA cell_size_check = ON; PRAGMA mmap_size = 0;",
    )
    .context(|| "cannot set read-only pragmas".into())?;
    Ok(conn)
}

/// What `backup` copied.
#[derive(Debug)]
pub struct BackupCopy {
    /// Events in the copy.
    pub events: i64,
    /// The copy's chain head.
    pub head: String,
}

/// Writes a consistent copy of the archive at `db` to `out` (which must not exist): a snapshot taken in one
/// read transaction (`VACUUM INTO`), so a sync may keep writing meanwhile. The copy is written to a private
/// temporary file beside `out`, synced, then renamed into place, so `out` is either absent or complete.
pub fn backup(db: &Path, out: &Path) -> Result<BackupCopy, StoreError> {
    if !db.exists() {
        return Err(StoreError::NotFound { path: db.into() });
    }
    inspect(db)?;
    let conn = open_read_only_raw(db)?;
    harden(&conn)?;
    let io = |context: String| move |source| StoreError::Io { context, source };
    let copy = crate::atomic::AtomicFile::create(out)
        .map_err(io(format!("cannot create a copy beside {}", out.display())))?;
    conn.execute("VACUUM INTO ?1", [copy.path().to_string_lossy()])
        .context(|| format!("cannot copy {} to {}", db.display(), copy.path().display()))?;
    copy.commit()
        .map_err(io(format!("cannot move the copy to {}", out.display())))?;
    let copy = ArchiveReader::open(out)?;
    Ok(BackupCopy {
        events: copy.event_count()?,
        head: copy.chain_head()?,
    })
}

/// Settings every connection gets: SQL cannot corrupt the file, schema objects cannot call unsafe functions,
/// and a lock held by another connection (a reader checkpointing, a backup) is waited for, boundedly.
fn harden(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .context(|| "cannot set the busy timeout".into())?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .context(|| "cannot enable defensive mode".into())?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
        .context(|| "cannot distrust the schema".into())?;
    Ok(())
}

/// Warns when the archive can be read by other users: it holds an organisation's security events.
fn warn_if_shared(path: &Path, file: &File) {
    if let Ok(meta) = file.metadata()
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(
            "{} is readable or writable by other users (mode {:o}); consider chmod 600",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_now() -> Timestamp {
        time::parse_time_arg("2026-01-01").unwrap()
    }

    #[test]
    fn new_archive_is_private_wal_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let store = Archive::open(&path, test_now()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let jm: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(jm, "wal");
        let sync: i64 = store
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let app: i64 = store
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(app, APPLICATION_ID);
        drop(store);
        // Re-opening an up-to-date archive applies nothing and succeeds.
        Archive::open(&path, test_now()).unwrap();
        open_read_only(&path).unwrap();
    }

    #[test]
    fn second_opener_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let first = Archive::open(&path, test_now()).unwrap();
        assert!(matches!(
            Archive::open(&path, test_now()),
            Err(StoreError::Locked { .. })
        ));
        drop(first);
        Archive::open(&path, test_now()).unwrap();
    }

    #[test]
    fn foreign_files_are_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            b"these are not the events you are looking for\n".repeat(200),
        )
        .unwrap();
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
        for path in [&text, &other] {
            let before = std::fs::read(path).unwrap();
            let err = Archive::open(path, test_now()).unwrap_err();
            assert!(matches!(err, StoreError::NotAnArchive { .. }), "{err}");
            assert_eq!(
                std::fs::read(path).unwrap(),
                before,
                "{} was modified",
                path.display()
            );
            assert!(!path.with_extension("db-wal").exists());
        }
    }

    #[test]
    fn newer_archives_are_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        drop(Archive::open(&path, test_now()).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (999, 'future', '', '0')",
            [],
        )
        .unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let err = Archive::open(&path, test_now()).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerVersion { found: 999, .. }),
            "{err}"
        );
        assert!(matches!(
            open_read_only(&path),
            Err(StoreError::NewerVersion { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn an_archive_from_before_seals_and_search_is_digested_sealed_and_indexed_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            // Build a version-1 archive, as the first release wrote it.
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap();
            drop(file);
            let mut conn = Connection::open(&path).unwrap();
            embedded::migrations::runner()
                .set_target(refinery::Target::Version(1))
                .run(&mut conn)
                .unwrap();
            conn.execute(
                "INSERT INTO runs (id, started_at, status, range_from, range_to, base_url, tool_version)
                 VALUES (1, 's', ?1, 'a', 'b', 'u', '0.1.0')",
                [crate::model::RunStatus::Ok],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO windows (id, run_id, window_start, window_end, created_from, created_to, status, started_at)
                 VALUES (1, 1, '2024-01-01T00:00:00.000Z', '2024-01-02T00:00:00.000Z', 'x', 'y', ?1, 's')",
                [crate::model::WindowStatus::Complete],
            )
            .unwrap();
            conn.execute_batch(
                "INSERT INTO events (id, timestamp, category, action, raw, fetched_at, window_id)
                 VALUES (5, '2024-01-01T10:00:00.000Z', 'authentication', 'user-login-success',
                         '{\"id\":5,\"timestamp\":\"2024-01-01T10:00:00Z\",\"category\":\"authentication\",\"action\":\"user-login-success\"}',
                         'f', 1);",
            )
            .unwrap();
        }
        drop(Archive::open(&path, test_now()).unwrap());
        let reader = ArchiveReader::open(&path).unwrap();
        let conn = &reader.conn;
        let digest: String = conn
            .query_row("SELECT digest FROM events WHERE id = 5", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            digest,
            crate::digest::sha256_hex(
                br#"{"id":5,"timestamp":"2024-01-01T10:00:00Z","category":"authentication","action":"user-login-success"}"#
            )
        );
        let report = reader.verify(None).unwrap();
        assert_eq!(report.seals, 1);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        let indexed: i64 = conn
            .query_row("SELECT indexed_window_id FROM search_state", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            indexed, 1,
            "the search index caught up with the existing events"
        );
    }

    #[test]
    fn a_backup_is_a_private_complete_copy_written_through_an_atomic_file() {
        // `VACUUM INTO` writes into the AtomicFile's temporary, which exists, empty, when SQLite opens it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        drop(Archive::open(&path, test_now()).unwrap());
        let out = dir.path().join("copy.db");
        let copy = backup(&path, &out).unwrap();
        assert_eq!((copy.events, copy.head.as_str()), (0, seal::GENESIS));
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            crate::atomic::tests::names(dir.path()),
            ["a.db", "a.db-shm", "a.db-wal", "copy.db"]
                .iter()
                .filter(|n| dir.path().join(n).exists())
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
            "no temporary is left"
        );
        ArchiveReader::open(&out).unwrap().verify(None).unwrap();
    }

    #[test]
    fn read_only_commands_never_create_an_archive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        assert!(matches!(
            open_read_only(&path),
            Err(StoreError::NotFound { .. })
        ));
        assert!(!path.exists());
    }
}
