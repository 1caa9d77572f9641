//! Settings for a sync, resolved in one place: flag defaults, then `ELEVATE_*` environment, then flags.
//!
//! Credentials come only from the environment or from private files, never from flags (argv is visible to
//! every local user). Everything is checked here, before the archive is opened, so a bad setting loses nothing.

use crate::api::{self, ApiError, Credentials, retry::RetryPolicy};
use crate::cli::{ApiArgs, ReconcileArgs, SelectionArgs, SyncArgs};
use crate::error::Error;
use crate::model::{EventSelection, Filter, Filters, Interval, Lookback};
use crate::time::{self, Clock, Timestamp};
use chrono::TimeDelta;
use secrecy::SecretString;
use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Pins "now" for deterministic runs (tests, reproducible demos): an RFC 3339 time.
pub const NOW_ENV: &str = "ELEVATE_NOW";

/// Everything a sync needs, checked.
#[derive(Debug)]
pub struct SyncSettings {
    /// API base URL, transport policy checked.
    pub base_url: reqwest::Url,
    /// The name the archive keeps this source's coverage under: the base URL (so windows fetched from a
    /// sandbox never count as covered for production), or a stable name for a source whose URL changes
    /// from run to run (the demo's simulator, on a new port each time).
    pub source: String,
    /// Where tokens come from.
    pub credentials: Credentials,
    /// Explicit range start.
    pub from: Option<Timestamp>,
    /// Range end (explicit, or now minus the lag), whole seconds.
    pub to: Timestamp,
    /// Window size.
    pub window: TimeDelta,
    /// Lookback for continuing runs.
    pub lookback: Lookback,
    /// Read complete windows again.
    pub refetch: bool,
    /// Server-side filters.
    pub filters: Filters,
    /// Items per page.
    pub page_size: u32,
    /// Requests in flight at once, across all windows.
    pub concurrency: usize,
    /// Re-read each boundary between full pages to catch events skipped by deletions (or, with pages asked
    /// for ahead, insertions) during paging.
    pub check_paging: bool,
    /// Request timeout.
    pub timeout: std::time::Duration,
    /// Requests-per-second cap.
    pub max_rps: Option<NonZeroU32>,
    /// Retry bounds.
    pub retry: RetryPolicy,
}

impl SyncSettings {
    /// The API client's options.
    pub fn client_options(&self) -> api::ClientOptions {
        api::ClientOptions {
            base_url: self.base_url.clone(),
            timeout: self.timeout,
            max_rps: self.max_rps,
            retry: self.retry,
        }
    }
}

/// The one clock of a command: the system clock, or the instant pinned by [`NOW_ENV`].
pub fn clock(env: &dyn Fn(&str) -> Option<String>) -> Result<Clock, Error> {
    match env(NOW_ENV).filter(|v| !v.trim().is_empty()) {
        Some(text) => time::parse_time_arg(&text)
            .map(Clock::Pinned)
            .map_err(|e| Error::Usage(format!("{NOW_ENV}: {e}"))),
        None => Ok(Clock::System),
    }
}

/// `[from, to)` as an interval, or a usage error saying it is empty. `what` names the range ("range", "held
/// range") and `to_label` how the end was given (`--to`, or how it was derived).
pub fn nonempty_range(
    from: Timestamp,
    to: Timestamp,
    what: &str,
    to_label: &str,
) -> Result<Interval, Error> {
    if from < to {
        return Ok(Interval::new(from, to));
    }
    let end = [to_label, &time::to_api(to)].join(" ");
    Err(Error::Usage(format!(
        "the {what} is empty: --from {} is not before {}",
        time::to_api(from),
        end.trim()
    )))
}

/// The events an `export` or `search` reads: the range (checked) and the filters (parsed).
pub fn selection(args: &SelectionArgs) -> Result<EventSelection, Error> {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        nonempty_range(from, to, "range", "--to")?;
    }
    Ok(EventSelection {
        from: args.from,
        to: args.to,
        filters: filters(args.category.as_deref(), args.action.as_deref())?,
    })
}

/// Resolves and checks a sync's settings. `env` reads environment variables (injectable for tests).
pub fn resolve_sync(
    args: &SyncArgs,
    env: &dyn Fn(&str) -> Option<String>,
    now: Timestamp,
) -> Result<SyncSettings, Error> {
    let base = args
        .api
        .base_url
        .clone()
        .unwrap_or_else(|| api::DEFAULT_BASE_URL.to_string());
    let base_url = api::parse_base_url(&base, args.api.allow_http)?;
    let credentials = resolve_credentials(&args.api, env)?;

    let latest = time::floor_second(now - time::delta(args.lag));
    let to = match args.to {
        Some(to) if to > now => {
            return Err(Error::Usage(format!(
                "--to {} is in the future; events can still arrive there. Leave --to out to sync up to now minus --lag",
                time::to_api(to)
            )));
        }
        Some(to) => time::floor_second(to),
        None => latest,
    };
    let from = args.from.map(time::floor_second);
    if let Some(from) = from {
        let label = if args.to.is_some() {
            "--to"
        } else {
            "now minus --lag,"
        };
        nonempty_range(from, to, "range", label)?;
    }
    Ok(SyncSettings {
        source: base_url.to_string(),
        base_url,
        credentials,
        from,
        to,
        window: whole_seconds(args.window, "--window")?,
        lookback: args.lookback,
        refetch: args.refetch,
        filters: filters(args.category.as_deref(), args.action.as_deref())?,
        page_size: args.api.page_size,
        concurrency: args.api.concurrency,
        check_paging: args.api.check_paging,
        timeout: args.api.timeout,
        max_rps: args.api.max_rps.and_then(NonZeroU32::new),
        retry: RetryPolicy {
            max_attempts: args.api.max_attempts,
            base_delay: args.api.retry_delay,
            ..RetryPolicy::default()
        },
    })
}

/// Resolves and checks a reconcile's settings: a sync of covered windows, read again. The range defaults to
/// the coverage (the command narrows `to` to it); only the API settings, filters and window size matter here.
pub fn resolve_reconcile(
    args: &ReconcileArgs,
    env: &dyn Fn(&str) -> Option<String>,
    now: Timestamp,
) -> Result<SyncSettings, Error> {
    let to = time::floor_second(args.to.unwrap_or(now).min(now));
    let from = args.from.map(time::floor_second);
    if let Some(from) = from {
        nonempty_range(from, to, "range", "")?;
    }
    let sync = SyncArgs {
        from,
        to: Some(to),
        window: args.window,
        category: args.category.clone(),
        action: args.action.clone(),
        api: args.api.clone(),
        lookback: Lookback::Fixed(TimeDelta::zero()),
        lag: std::time::Duration::ZERO,
        refetch: true,
        checkpoint: args.checkpoint.clone(),
        quiet: args.quiet,
        json: args.json,
        metrics_file: None,
    };
    resolve_sync(&sync, env, now)
}

/// Parses the filter flags once, into the typed filters every later step uses.
fn filters(category: Option<&str>, action: Option<&str>) -> Result<Filters, Error> {
    Ok(Filters {
        category: filter(category, "--category")?,
        action: filter(action, "--action")?,
    })
}

/// Picks the credentials: a token file, `ELEVATE_TOKEN`, or a username with a password (file or env).
fn resolve_credentials(
    args: &ApiArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ApiError> {
    let present = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(path) = &args.token_file {
        return Ok(Credentials::Token(read_secret_file(path)?));
    }
    if let Some(token) = present("ELEVATE_TOKEN") {
        return Ok(Credentials::Token(SecretString::from(
            token.trim().to_string(),
        )));
    }
    let Some(username) = present("ELEVATE_USERNAME") else {
        if args.password_file.is_some() || present("ELEVATE_PASSWORD").is_some() {
            return Err(ApiError::CredentialFile {
                path: "ELEVATE_USERNAME".into(),
                reason: "a password was given but no ELEVATE_USERNAME to go with it".into(),
            });
        }
        return Err(ApiError::NoCredentials);
    };
    let password = match &args.password_file {
        Some(path) => read_secret_file(path)?,
        None => match env("ELEVATE_PASSWORD").filter(|v| !v.is_empty()) {
            Some(p) => SecretString::from(p),
            None => {
                return Err(ApiError::CredentialFile {
                    path: "ELEVATE_PASSWORD".into(),
                    reason: format!(
                        "ELEVATE_USERNAME is set ({username}) but no password: set ELEVATE_PASSWORD or pass --password-file"
                    ),
                });
            }
        },
    };
    Ok(Credentials::Password {
        username: username.trim().to_string(),
        password,
        brand: present("ELEVATE_BRAND").map(|b| b.trim().to_string()),
    })
}

/// Reads a secret from a file that only its owner can read, as ssh does for private keys.
fn read_secret_file(path: &Path) -> Result<SecretString, ApiError> {
    let fail = |reason: String| ApiError::CredentialFile {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("it is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "it is accessible by other users (mode {mode:o}); run chmod 600 {}",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.trim().is_empty() {
        return Err(fail("it is empty".into()));
    }
    Ok(SecretString::from(secret))
}

fn whole_seconds(d: std::time::Duration, flag: &str) -> Result<TimeDelta, Error> {
    if d.subsec_nanos() != 0 || d.as_secs() == 0 {
        return Err(Error::Usage(format!(
            "{flag} must be a whole number of seconds (the API's precision), e.g. 1h or 90s"
        )));
    }
    Ok(time::delta(d))
}

fn filter(value: Option<&str>, flag: &str) -> Result<Option<Filter>, Error> {
    match value.map(str::trim) {
        None => Ok(None),
        Some("") => Err(Error::Usage(format!(
            "{flag} is empty: give xyz, in:x,y or like:xyz, or leave it out"
        ))),
        Some(v) => Filter::parse(v)
            .map(Some)
            .map_err(|e| Error::Usage(format!("{flag}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use std::collections::HashMap;

    fn args(extra: &[&str]) -> SyncArgs {
        let argv = ["elevate-archive", "sync"]
            .into_iter()
            .chain(extra.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Sync(a) => *a,
            _ => unreachable!(),
        }
    }

    fn resolve(extra: &[&str], vars: &[(&str, &str)]) -> Result<SyncSettings, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |name: &str| vars.get(name).cloned();
        resolve_sync(
            &args(extra),
            &env,
            time::parse_time_arg("2024-06-01T12:00:30.5Z").unwrap(),
        )
    }

    fn usage_message(extra: &[&str], vars: &[(&str, &str)]) -> String {
        let err = resolve(extra, vars).unwrap_err();
        assert_eq!(err.exit_code(), crate::ExitCode::Usage, "{err}");
        err.to_string()
    }

    const TOKEN: (&str, &str) = ("ELEVATE_TOKEN", "tok");

    #[test]
    fn defaults() {
        let s = resolve(&[], &[TOKEN]).unwrap();
        assert_eq!(s.base_url.as_str(), "https://rest.elevatebilling.com/v1");
        assert_eq!(
            time::to_api(s.to),
            "2024-06-01T11:58:30Z",
            "now minus 2m, whole seconds"
        );
        assert_eq!(s.window, TimeDelta::days(1));
        assert_eq!(s.lookback, Lookback::Fixed(TimeDelta::hours(1)));
        assert_eq!((s.page_size, s.concurrency), (1000, 4));
        assert!(matches!(s.credentials, Credentials::Token(_)));
    }

    #[test]
    fn credentials_resolution() {
        let s = resolve(
            &[],
            &[
                ("ELEVATE_USERNAME", "api"),
                ("ELEVATE_PASSWORD", "pw"),
                ("ELEVATE_BRAND", "acme"),
            ],
        )
        .unwrap();
        assert!(
            matches!(s.credentials, Credentials::Password { ref brand, .. } if brand.as_deref() == Some("acme"))
        );
        assert!(usage_message(&[], &[]).contains("no credentials"));
        assert!(usage_message(&[], &[("ELEVATE_USERNAME", "api")]).contains("no password"));
        assert!(usage_message(&[], &[("ELEVATE_PASSWORD", "pw")]).contains("no ELEVATE_USERNAME"));
    }

    #[test]
    fn secret_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = path.to_str().unwrap();
        assert!(usage_message(&["--token-file", p], &[]).contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = resolve(&["--token-file", p], &[]).unwrap();
        let Credentials::Token(t) = s.credentials else {
            panic!()
        };
        assert_eq!(secrecy::ExposeSecret::expose_secret(&t), "abc");
        std::fs::write(&path, "\n").unwrap();
        assert!(usage_message(&["--token-file", p], &[]).contains("empty"));
    }

    #[test]
    fn ranges_are_checked() {
        let cases: [(&[&str], &str); 5] = [
            (
                &["--from", "2024-02-01", "--to", "2024-01-01"],
                "range is empty",
            ),
            (
                &["--from", "2024-01-01", "--to", "2024-01-01"],
                "range is empty",
            ),
            (&["--from", "2024-07-01"], "range is empty"),
            (&["--to", "2025-01-01"], "in the future"),
            (&["--window", "1500ms"], "whole number of seconds"),
        ];
        for (extra, want) in cases {
            assert!(usage_message(extra, &[TOKEN]).contains(want), "{extra:?}");
        }
        assert!(usage_message(&["--category", " "], &[TOKEN]).contains("--category is empty"));
        assert!(
            usage_message(&["--base-url", "http://archive.example.com/v1"], &[TOKEN])
                .contains("--allow-http")
        );
    }
}
