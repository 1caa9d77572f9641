//! Atomic writes: a file or a folder appears under its final name complete, or not at all.
//!
//! Terms: the *target* is the final path; the *temporary* is a hidden sibling of it (`.NAME.PID-N.tmp`, unique
//! per process and per call) in the target's own folder, so that the final rename never crosses file systems.
//! A write goes:
//! 1. [`AtomicFile::create`] makes the temporary, empty and private ([`FILE_MODE`]);
//! 2. the caller fills it, through [`std::io::Write`] or, by [`AtomicFile::path`], through a third party (SQLite's
//!    `VACUUM INTO` writes a backup that way);
//! 3. [`AtomicFile::commit`] syncs the temporary's data to disk, renames it over the target, and syncs the folder
//!    so that the rename itself survives a crash.
//!
//! [`AtomicDir`] does the same for a folder (a Parquet dataset): it is built under a temporary name
//! ([`DIR_MODE`]), and its commit syncs every file and folder inside before the rename.
//!
//! Invariant: until `commit` has renamed the temporary, the target is untouched (absent, or the complete file it
//! was). A writer that fails or is dropped before then removes its temporary: nothing partial is left behind.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of the files written: readable and writable by the owner only.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the folders written: usable by the owner only.
pub const DIR_MODE: u32 = 0o700;
/// The end of every temporary's name (after the process id and a per-process counter).
const TEMPORARY_SUFFIX: &str = "tmp";

/// Counts temporaries made by this process, so that two writes of one target never share a temporary.
static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// A file written under a temporary name and renamed over its target by [`AtomicFile::commit`].
///
/// Dropped without a commit (an error returned early, a panic), it removes its temporary.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    temporary: Temporary,
}

impl AtomicFile {
    /// Creates the empty, private temporary for `target`, in the target's folder. The target itself is not
    /// touched until [`commit`](Self::commit).
    pub fn create(target: impl AsRef<Path>) -> io::Result<AtomicFile> {
        AtomicFile::create_with_mode(target, FILE_MODE)
    }

    /// [`create`](Self::create), with another mode than private (a file another user's process reads, e.g. a
    /// metrics collector's).
    pub fn create_with_mode(target: impl AsRef<Path>, mode: u32) -> io::Result<AtomicFile> {
        let target = target.as_ref();
        let path = temporary_for(target)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)?;
        // Exactly `mode`, whatever the umask (a collector running as another user must read a 0644 file even
        // under a service's `UMask=0077`).
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(AtomicFile {
            file,
            temporary: Temporary::new(path, target, Kind::File),
        })
    }

    /// The temporary's path: a third party may write it (SQLite's `VACUUM INTO` needs a path, not a handle)
    /// before [`commit`](Self::commit).
    pub fn path(&self) -> &Path {
        &self.temporary.path
    }

    /// The path the file will have once committed.
    pub fn target(&self) -> &Path {
        &self.temporary.target
    }

    /// Syncs what the temporary holds (however it was written), renames it over the target, and syncs the
    /// target's folder. An error before the rename leaves the target untouched and removes the temporary; an
    /// error from the last sync leaves the complete file in place.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.flush()?;
        // Opened again by path, so that data a third party wrote through its own handle is synced too.
        File::open(&self.temporary.path)?.sync_all()?;
        self.temporary.rename_into_place()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.file.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A folder built under a temporary name and renamed over its target by [`AtomicDir::commit`].
///
/// Dropped without a commit, it removes its temporary and everything in it.
#[derive(Debug)]
pub struct AtomicDir {
    temporary: Temporary,
}

impl AtomicDir {
    /// Creates the empty, private temporary folder for `target`, beside it.
    pub fn create(target: impl AsRef<Path>) -> io::Result<AtomicDir> {
        let target = target.as_ref();
        let path = temporary_for(target)?;
        DirBuilder::new().mode(DIR_MODE).create(&path)?;
        Ok(AtomicDir {
            temporary: Temporary::new(path, target, Kind::Folder),
        })
    }

    /// The temporary folder, where the contents are written.
    pub fn path(&self) -> &Path {
        &self.temporary.path
    }

    /// The path the folder will have once committed.
    pub fn target(&self) -> &Path {
        &self.temporary.target
    }

    /// Syncs every file and folder inside, renames the folder over the target (which must be absent or an
    /// empty folder), and syncs the target's parent.
    pub fn commit(mut self) -> io::Result<()> {
        sync_tree(&self.temporary.path)?;
        self.temporary.rename_into_place()
    }
}

/// What a temporary is, which says how to remove it.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Removed with `remove_file`.
    File,
    /// Removed with everything in it.
    Folder,
}

/// A temporary that exists beside its target: renamed into place, or removed when dropped.
#[derive(Debug)]
struct Temporary {
    path: PathBuf,
    target: PathBuf,
    kind: Kind,
    renamed: bool,
}

impl Temporary {
    /// Takes charge of the temporary just created at `path`.
    fn new(path: PathBuf, target: &Path, kind: Kind) -> Self {
        Temporary {
            path,
            target: target.to_path_buf(),
            kind,
            renamed: false,
        }
    }

    /// Renames the temporary over the target, then syncs the target's folder so that the rename is durable.
    fn rename_into_place(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, &self.target)?;
        self.renamed = true;
        sync_folder(folder_of(&self.target))
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if self.renamed {
            return;
        }
        // Best effort: a temporary that cannot be removed is still hidden and never under the target's name.
        let _ = match self.kind {
            Kind::File => std::fs::remove_file(&self.path),
            Kind::Folder => std::fs::remove_dir_all(&self.path),
        };
    }
}

/// A fresh temporary path beside `target`: `.NAME.PID-N.tmp`.
fn temporary_for(target: &Path) -> io::Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", target.display()),
        )
    })?;
    let mut temporary = OsString::from(".");
    temporary.push(name);
    temporary.push(format!(
        ".{}-{}.{TEMPORARY_SUFFIX}",
        std::process::id(),
        TEMPORARIES.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(target.with_file_name(temporary))
}

/// The folder holding `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Syncs a folder's entries (the names in it, so that a rename into it is durable).
fn sync_folder(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

/// Syncs every file and folder under `folder`, then `folder` itself.
fn sync_tree(folder: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_folder(folder)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The names in `folder`, sorted: what tests look at to see that no temporary is left behind.
    pub(crate) fn names(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Writes `first`, then fails as a writer would midway (a full disk, a broken source).
    fn fail_midway(target: &Path, first: &[u8]) -> io::Result<()> {
        let mut file = AtomicFile::create(target)?;
        file.write_all(first)?;
        Err(io::Error::other("the source broke midway"))
    }

    #[test]
    fn a_committed_file_is_complete_private_and_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("events.ndjson");
        let mut file = AtomicFile::create(&target).unwrap();
        assert_eq!(file.target(), target);
        assert!(!target.exists(), "the target waits for the commit");
        file.write_all(b"one\ntwo\n").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"one\ntwo\n");
        assert_eq!(mode(&target), FILE_MODE);
        assert_eq!(names(dir.path()), ["events.ndjson"], "no temporary is left");
    }

    #[test]
    fn a_failed_or_dropped_write_leaves_the_target_as_it_was() {
        // (what the target held before, whether the writer fails or is merely dropped)
        let cases: [(Option<&[u8]>, bool); 4] = [
            (None, true),
            (None, false),
            (Some(b"the complete old copy\n"), true),
            (Some(b"the complete old copy\n"), false),
        ];
        for (before, fails) in cases {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("out.csv");
            if let Some(content) = before {
                std::fs::write(&target, content).unwrap();
            }
            if fails {
                assert!(fail_midway(&target, b"half a row,").is_err());
            } else {
                let mut file = AtomicFile::create(&target).unwrap();
                file.write_all(b"half a row,").unwrap();
                drop(file);
            }
            let case = format!("before {before:?}, fails {fails}");
            assert_eq!(std::fs::read(&target).ok().as_deref(), before, "{case}");
            let want: &[&str] = if before.is_some() { &["out.csv"] } else { &[] };
            assert_eq!(names(dir.path()), want, "no temporary is left: {case}");
        }
    }

    #[test]
    fn temporaries_are_hidden_private_unique_and_beside_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("archive.db");
        let a = AtomicFile::create(&target).unwrap();
        let b = AtomicFile::create(&target).unwrap();
        assert_ne!(a.path(), b.path(), "two writes of one target never collide");
        for file in [&a, &b] {
            assert_eq!(file.path().parent(), Some(dir.path()));
            let name = file.path().file_name().unwrap().to_string_lossy();
            assert!(name.starts_with(".archive.db."), "{name}");
            assert_eq!(mode(file.path()), FILE_MODE);
        }
    }

    #[test]
    fn a_third_party_may_write_the_temporary_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("backup.db");
        let file = AtomicFile::create(&target).unwrap();
        std::fs::write(file.path(), b"written by another handle").unwrap();
        file.commit().unwrap();
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"written by another handle"
        );
        assert_eq!(names(dir.path()), ["backup.db"]);
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let err = AtomicFile::create("/").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_folder_of_a_path() {
        let cases = [
            ("out.csv", "."),
            ("./out.csv", "."),
            ("exports/out.csv", "exports"),
            ("/tmp/out.csv", "/tmp"),
        ];
        for (path, want) in cases {
            assert_eq!(folder_of(Path::new(path)), Path::new(want), "{path}");
        }
    }

    #[test]
    fn a_committed_folder_appears_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dataset");
        let folder = AtomicDir::create(&target).unwrap();
        assert_eq!(mode(folder.path()), DIR_MODE);
        let day = folder.path().join("date=2024-01-01");
        std::fs::create_dir(&day).unwrap();
        std::fs::write(day.join("part-00000.parquet"), b"PAR1").unwrap();
        std::fs::write(folder.path().join("_manifest.json"), b"{}").unwrap();
        assert!(!target.exists(), "the target waits for the commit");
        folder.commit().unwrap();
        assert_eq!(
            std::fs::read(target.join("date=2024-01-01/part-00000.parquet")).unwrap(),
            b"PAR1"
        );
        assert_eq!(names(&target), ["_manifest.json", "date=2024-01-01"]);
        assert_eq!(mode(&target), DIR_MODE);
        assert_eq!(names(dir.path()), ["dataset"], "no temporary is left");
    }

    #[test]
    fn a_dropped_folder_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dataset");
        let folder = AtomicDir::create(&target).unwrap();
        assert_eq!(folder.target(), target);
        std::fs::create_dir(folder.path().join("date=2024-01-01")).unwrap();
        std::fs::write(folder.path().join("date=2024-01-01/part"), b"half").unwrap();
        drop(folder);
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }
}
