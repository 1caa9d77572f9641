//! The checkpoint a writing run (`sync`, `reconcile`, `prune`, `demo`) ends with: the signing key read before
//! the run (a bad key stops it before anything is fetched), the checkpoint stored when the log changed, shipped
//! to `--checkpoint-out`, and added to the `--json` summary.

use crate::cli::CheckpointArgs;
use crate::error::{Error, Result};
use crate::store::Archive;
use crate::store::tlog::StoredCheckpoint;
use crate::time::Timestamp;
use crate::tlog::note::{self, SigningKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable naming the signing key file (the flag `--signing-key` wins).
pub const SIGNING_KEY_ENV: &str = "ELEVATE_SIGNING_KEY_FILE";

/// Reads the signing key named by the flag or by `ELEVATE_SIGNING_KEY_FILE`, if any (a usage error if it
/// cannot be used: unreadable, open to other users, not a key).
pub fn signing_key(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SigningKey>> {
    let path = flag.map(Path::to_path_buf).or_else(|| {
        env(SIGNING_KEY_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    path.map(|p| note::read_signing_key(&p).map_err(|e| Error::Usage(e.to_string())))
        .transpose()
}

/// After a run: stores a checkpoint if the log changed and writes it to `--checkpoint-out`. A signed one
/// names, in an extension line, the prunes since the last signed checkpoint that were made without the key
/// (but `own_prune`, the one this run made): the signature does not launder them, and they are named on
/// stderr.
pub fn after_run(
    db: &Path,
    args: &CheckpointArgs,
    key: Option<&SigningKey>,
    now: Timestamp,
    own_prune: Option<i64>,
) -> Result<Option<StoredCheckpoint>> {
    let mut archive = Archive::open_existing(db, now)?;
    after_run_on(&mut archive, args, key, now, own_prune)
}

/// [`after_run`] on the archive the run wrote with (`sync` and `reconcile`: the engine hands it back), which
/// it leaves with its write-ahead log folded back into the file.
pub fn after_run_on(
    archive: &mut Archive,
    args: &CheckpointArgs,
    key: Option<&SigningKey>,
    now: Timestamp,
    own_prune: Option<i64>,
) -> Result<Option<StoredCheckpoint>> {
    let step = std::time::Instant::now();
    let made = archive.make_checkpoint(key, now, own_prune)?;
    tracing::debug!(took = ?step.elapsed(), "the log's checkpoint made");
    if let Some(cp) = made.as_ref().filter(|cp| !cp.unsigned_prunes.is_empty()) {
        tracing::warn!(
            "the log holds prune(s) {:?} made without the signing key since the last signed checkpoint: the \
             signed checkpoint names them as unsigned (check they were yours: `elevate-archive status`)",
            cp.unsigned_prunes
        );
    }
    let step = std::time::Instant::now();
    if let Err(e) = archive.checkpoint() {
        tracing::debug!("the write-ahead log was not folded back after the checkpoint: {e}");
    }
    tracing::debug!(took = ?step.elapsed(), "WAL checkpoint done");
    if let (Some(cp), Some(out)) = (&made, &args.checkpoint_out) {
        write_private(out, cp.text.as_bytes())?;
    }
    if made.is_some() && key.is_none() {
        tracing::info!("the checkpoint is unsigned: pass --signing-key to sign it");
    }
    Ok(made)
}

/// Writes `bytes` to `path` atomically, mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let what = || format!("cannot write {}", path.display());
    let mut file = crate::atomic::AtomicFile::create(path).map_err(Error::io(what()))?;
    file.write_all(bytes).map_err(Error::io(what()))?;
    file.commit().map_err(Error::io(what()))
}

/// A run's JSON summary with its checkpoint (`checkpoint`: the text, or null when the log did not change).
pub fn with_checkpoint(
    summary: impl serde::Serialize,
    made: Option<&StoredCheckpoint>,
) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(summary)?;
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "checkpoint".into(),
            made.map_or(serde_json::Value::Null, |cp| cp.text.clone().into()),
        );
    }
    Ok(value)
}
