//! Where a mirror goes: a local folder or an S3-compatible object store (`s3://bucket/prefix`), behind one
//! small interface ([`Destination`]): put a finished file under a key, read, list, hash and delete objects.
//!
//! A local folder is written through [`crate::atomic`] (each object appears complete under its final name or
//! not at all); an object store through `object_store` (a PUT, or a multipart upload for large objects, is
//! atomic: an object is whole or absent). Credentials come from the standard AWS environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`) and
//! never appear in a URL, a log line or an error: requests are signed in headers, and errors name the object.

use crate::atomic::{AtomicFile, DIR_MODE};
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, path::Path as Key};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Objects up to this size are uploaded in one PUT; larger ones in parts of [`PART_BYTES`].
pub const SINGLE_PUT_BYTES: u64 = 16 * 1024 * 1024;
/// The size of each part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// The buffer a local file is read through when uploaded or hashed.
const READ_BUFFER_BYTES: usize = 1024 * 1024;
/// The variable naming an S3-compatible endpoint (AWS's own when unset).
pub const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL";

/// A destination, as parsed from `--out` (pure: nothing is touched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A local folder.
    Local(PathBuf),
    /// A bucket and a key prefix (no leading or trailing `/`; empty: the bucket's root).
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix.
        prefix: String,
    },
}

/// Parses `--out`: `s3://bucket[/prefix]`, `file:///path`, or a plain path.
pub fn parse_target(out: &str) -> Result<Target, String> {
    if let Some(rest) = out.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.contains('@') {
            // Never echoed: what stands before the `@` is a key.
            return Err("--out names credentials before the bucket (s3://KEY:SECRET@BUCKET): they do not go in \
                 a URL, where they show in the process list and in shell history; pass s3://BUCKET/PREFIX and \
                 set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                .into());
        }
        if bucket.is_empty() {
            return Err(format!("{out} names no bucket: pass s3://BUCKET/PREFIX"));
        }
        return Ok(Target::S3 {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
        });
    }
    if let Some(path) = out.strip_prefix("file://") {
        return Ok(Target::Local(path.into()));
    }
    if out.contains("://") {
        return Err(format!(
            "{out}: only s3:// URLs and local folders are mirrored to"
        ));
    }
    Ok(Target::Local(out.into()))
}

/// Decides whether plain `http` may be used with `endpoint`: never needed without an endpoint or with https;
/// allowed to loopback, or anywhere with `--allow-http`. The error says what to pass.
pub fn http_allowed(endpoint: Option<&str>, allow_http: bool) -> Result<bool, String> {
    let Some(endpoint) = endpoint else {
        return Ok(false);
    };
    let url = url::Url::parse(endpoint)
        .map_err(|e| format!("{ENDPOINT_VAR} is not a URL ({e}): set it to http(s)://HOST:PORT"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{ENDPOINT_VAR} carries credentials (http(s)://USER:PASSWORD@HOST): set it to http(s)://HOST:PORT, and \
             the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ));
    }
    match url.scheme() {
        "https" => Ok(false),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback || allow_http {
                Ok(true)
            } else {
                Err(format!(
                    "{ENDPOINT_VAR} is plain http to {}, which is not loopback: use https, or pass --allow-http",
                    url.host_str().unwrap_or("?")
                ))
            }
        }
        other => Err(format!(
            "{ENDPOINT_VAR} has the scheme {other}: use https (or http to loopback)"
        )),
    }
}

/// Where a mirror's objects go. Keys are `/`-separated paths relative to the destination's root.
pub trait Destination {
    /// The destination's normalised URL (the ledger's key; never a secret).
    fn url(&self) -> &str;
    /// The local folder that files are written into before [`publish`](Self::publish).
    fn staging(&self) -> &Path;
    /// Makes the complete file `local` (under [`staging`](Self::staging)) the object `key`.
    fn publish(&self, local: &Path, key: &str) -> io::Result<()>;
    /// Replaces (or creates) the small object `key` with `bytes`, atomically.
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()>;
    /// The bytes of the small object `key`, if it exists.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Every key under `prefix` (a folder: `events/`), temporaries included.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;
    /// The hex SHA-256 of object `key`'s bytes (streamed), if it exists.
    fn sha256(&self, key: &str) -> io::Result<Option<String>>;
    /// Deletes object `key` (absent is fine).
    fn delete(&self, key: &str) -> io::Result<()>;
}

/// Opens the destination `out` names; a local folder is created if absent (private).
pub fn open(out: &str, allow_http: bool) -> Result<Box<dyn Destination>, String> {
    match parse_target(out)? {
        Target::Local(path) => Ok(Box::new(Local::open(&path).map_err(|e| {
            format!("cannot create or open the folder {}: {e}", path.display())
        })?)),
        Target::S3 { bucket, prefix } => {
            let endpoint = std::env::var(ENDPOINT_VAR).ok();
            let http = http_allowed(endpoint.as_deref(), allow_http)?;
            Ok(Box::new(S3::open(&bucket, &prefix, http)?))
        }
    }
}

/// A local folder.
pub struct Local {
    root: PathBuf,
    url: String,
}

impl Local {
    /// Opens (creating, private) the folder `path`.
    pub fn open(path: &Path) -> io::Result<Local> {
        std::fs::DirBuilder::new()
            .mode(DIR_MODE)
            .recursive(true)
            .create(path)?;
        let root = std::fs::canonicalize(path)?;
        let url = format!("file://{}", root.display());
        Ok(Local { root, url })
    }
}

/// Hex SHA-256 of what `reader` yields.
fn hash_reader(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; READ_BUFFER_BYTES];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// `NotFound` as `None`.
fn absent_is_none<T>(got: io::Result<T>) -> io::Result<Option<T>> {
    match got {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Destination for Local {
    fn url(&self) -> &str {
        &self.url
    }

    fn staging(&self) -> &Path {
        // Files are written in place: an [`AtomicFile`] appears under its final name complete.
        &self.root
    }

    fn publish(&self, local: &Path, key: &str) -> io::Result<()> {
        debug_assert_eq!(local, self.root.join(key));
        Ok(())
    }

    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let mut file = AtomicFile::create(self.root.join(key))?;
        file.write_all(bytes)?;
        file.commit()
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        absent_is_none(std::fs::read(self.root.join(key)))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut folders = vec![self.root.join(prefix)];
        while let Some(folder) = folders.pop() {
            let Some(entries) = absent_is_none(std::fs::read_dir(&folder))? else {
                continue;
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    folders.push(entry.path());
                } else if let Ok(relative) = entry.path().strip_prefix(&self.root) {
                    keys.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn sha256(&self, key: &str) -> io::Result<Option<String>> {
        match absent_is_none(std::fs::File::open(self.root.join(key)))? {
            Some(file) => hash_reader(file).map(Some),
            None => Ok(None),
        }
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        absent_is_none(std::fs::remove_file(self.root.join(key))).map(|_| ())
    }
}

/// An S3-compatible bucket, with a key prefix.
pub struct S3 {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    staging: Staging,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for S3 {
    fn drop(&mut self) {
        // A runtime dropped inside another would block, which tokio refuses; nothing is in flight here.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The start of a staging folder's name in the temporary folder (then the process id and a nonce).
const STAGING_PREFIX: &str = "elevate-archive-mirror-";

/// Removes the staging folders in `temp` of processes that are gone (a run killed before it could remove its
/// own: at most one file in it, part-written).
fn remove_stale_staging(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A private local folder files are written into before upload, removed when dropped.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl S3 {
    /// Opens bucket `bucket` from the AWS environment; `http`: plain http allowed (see [`http_allowed`]).
    pub fn open(bucket: &str, prefix: &str, http: bool) -> Result<S3, String> {
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_allow_http(http)
            .build()
            // The builder's errors name a setting, never its value.
            .map_err(|e| format!("cannot use s3://{bucket}: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        remove_stale_staging(&std::env::temp_dir());
        let staging = std::env::temp_dir().join(format!(
            "{STAGING_PREFIX}{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(&staging)
            .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        let url = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        Ok(S3 {
            store: Arc::new(store),
            prefix: prefix.into(),
            url,
            staging: Staging(staging),
            runtime: Some(runtime),
        })
    }

    /// Runs `work` on this destination's runtime, also from a thread of the command's own runtime (which
    /// then lends the thread: the commands are blocking code called from `main`'s runtime).
    fn block<F: std::future::Future>(&self, work: F) -> F::Output {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the store");
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| runtime.block_on(work))
        } else {
            runtime.block_on(work)
        }
    }

    fn key(&self, key: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(key)
        } else {
            Key::from(format!("{}/{key}", self.prefix))
        }
    }

    fn relative(&self, location: &Key) -> String {
        let full = location.as_ref();
        if self.prefix.is_empty() {
            full.into()
        } else {
            full.strip_prefix(&self.prefix)
                .map(|k| k.trim_start_matches('/'))
                .unwrap_or(full)
                .into()
        }
    }
}

/// An object store's error as an IO error (its text names the object, never a credential).
fn store_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            io::Error::new(io::ErrorKind::NotFound, e.to_string())
        }
        e => io::Error::other(e.to_string()),
    }
}

impl Destination for S3 {
    fn url(&self) -> &str {
        &self.url
    }

    fn staging(&self) -> &Path {
        &self.staging.0
    }

    fn publish(&self, local: &Path, key: &str) -> io::Result<()> {
        let location = self.key(key);
        let mut file = std::fs::File::open(local)?;
        let size = file.metadata()?.len();
        self.block(async {
            if size <= SINGLE_PUT_BYTES {
                let mut bytes = Vec::with_capacity(size as usize);
                file.read_to_end(&mut bytes)?;
                self.store
                    .put(&location, PutPayload::from(bytes))
                    .await
                    .map_err(store_error)?;
                return Ok::<_, io::Error>(());
            }
            let upload = self
                .store
                .put_multipart(&location)
                .await
                .map_err(store_error)?;
            let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut buf = vec![0; READ_BUFFER_BYTES];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                // At most two parts in flight: memory stays flat whatever the object's size.
                parts.wait_for_capacity(2).await.map_err(store_error)?;
                parts.write(&buf[..n]);
            }
            parts.finish().await.map_err(store_error)?;
            Ok(())
        })?;
        std::fs::remove_file(local)
    }

    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.block(
            self.store
                .put(&self.key(key), PutPayload::from(bytes.to_vec())),
        )
        .map(|_| ())
        .map_err(store_error)
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let got = self.block(async {
            let result = self.store.get(&self.key(key)).await?;
            result.bytes().await
        });
        absent_is_none(got.map(|b| b.to_vec()).map_err(store_error))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let location = self.key(prefix.trim_end_matches('/'));
        let mut keys: Vec<String> = self.block(async {
            let mut listing = self.store.list(Some(&location));
            let mut keys = Vec::new();
            while let Some(meta) = listing.next().await {
                keys.push(self.relative(&meta.map_err(store_error)?.location));
            }
            Ok::<_, io::Error>(keys)
        })?;
        keys.sort();
        Ok(keys)
    }

    fn sha256(&self, key: &str) -> io::Result<Option<String>> {
        let got = self.block(async {
            let result = self.store.get(&self.key(key)).await?;
            let mut stream = result.into_stream();
            let mut hasher = Sha256::new();
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk?);
            }
            Ok::<_, object_store::Error>(hex::encode(hasher.finalize()))
        });
        absent_is_none(got.map_err(store_error))
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        absent_is_none(
            self.block(self.store.delete(&self.key(key)))
                .map_err(store_error),
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let s3 = |bucket: &str, prefix: &str| {
            Ok(Target::S3 {
                bucket: bucket.into(),
                prefix: prefix.into(),
            })
        };
        let cases: [(&str, Result<Target, ()>); 8] = [
            ("s3://lake/elevate", s3("lake", "elevate")),
            ("s3://lake/a/b/", s3("lake", "a/b")),
            ("s3://lake", s3("lake", "")),
            ("s3:///x", Err(())),
            ("s3://AKIAEXAMPLE:wJalrXUtnFEMI@lake/x", Err(())),
            ("file:///srv/lake", Ok(Target::Local("/srv/lake".into()))),
            ("lake", Ok(Target::Local("lake".into()))),
            ("gs://lake/x", Err(())),
        ];
        for (out, want) in cases {
            assert_eq!(parse_target(out).map_err(|_| ()), want, "{out}");
        }
        let refused = parse_target("s3://AKIAEXAMPLE:wJalrXUtnFEMI@lake/x").unwrap_err();
        assert!(
            !refused.contains("wJalrXUtnFEMI") && !refused.contains("AKIAEXAMPLE"),
            "{refused}"
        );
    }

    #[test]
    fn plain_http_only_to_loopback_or_when_allowed() {
        let cases: [(Option<&str>, bool, Result<bool, ()>); 10] = [
            (None, false, Ok(false)),
            (Some("https://s3.example.com"), false, Ok(false)),
            (Some("http://127.0.0.1:8333"), false, Ok(true)),
            (Some("http://localhost:8333"), false, Ok(true)),
            (Some("http://[::1]:8333"), false, Ok(true)),
            (Some("http://minio.internal:9000"), false, Err(())),
            (Some("http://minio.internal:9000"), true, Ok(true)),
            (Some("ftp://127.0.0.1"), true, Err(())),
            (Some("http://key:secret@127.0.0.1:8333"), false, Err(())),
            (Some("https://key@s3.example.com"), false, Err(())),
        ];
        for (endpoint, allow, want) in cases {
            assert_eq!(
                http_allowed(endpoint, allow).map_err(|_| ()),
                want,
                "{endpoint:?} {allow}"
            );
        }
        let refused = http_allowed(Some("http://key:secret@127.0.0.1:8333"), false).unwrap_err();
        assert!(!refused.contains("secret"), "{refused}");
    }

    #[test]
    fn a_local_folder_puts_lists_hashes_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let local = Local::open(&dir.path().join("lake")).unwrap();
        assert!(local.url().starts_with("file:///"));
        assert_eq!(local.get("_manifest.json").unwrap(), None);
        assert_eq!(local.list("events/").unwrap(), Vec::<String>::new());
        std::fs::create_dir_all(local.staging().join("events/date=2024-01-01")).unwrap();
        local
            .put("events/date=2024-01-01/a.parquet", b"abc")
            .unwrap();
        local.put("_manifest.json", b"{}").unwrap();
        local
            .publish(
                &local.staging().join("events/date=2024-01-01/a.parquet"),
                "events/date=2024-01-01/a.parquet",
            )
            .unwrap();
        assert_eq!(
            local.list("events/").unwrap(),
            ["events/date=2024-01-01/a.parquet"]
        );
        assert_eq!(
            local
                .sha256("events/date=2024-01-01/a.parquet")
                .unwrap()
                .unwrap(),
            crate::digest::sha256_hex(b"abc")
        );
        assert_eq!(local.get("_manifest.json").unwrap().unwrap(), b"{}");
        local.delete("events/date=2024-01-01/a.parquet").unwrap();
        local.delete("events/date=2024-01-01/a.parquet").unwrap();
        assert_eq!(
            local.sha256("events/date=2024-01-01/a.parquet").unwrap(),
            None
        );
    }
}
