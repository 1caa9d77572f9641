//! Command-line types (clap derive) and nothing else: parsing values happens here, deciding happens in
//! [`crate::config`] and [`crate::commands`].
//!
//! The contract scripts rely on: extend it, never rename it.

use crate::time::{self, Timestamp};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Archive the Elevate Events API into a crash-safe, indexed SQLite file.
#[derive(Debug, Parser)]
#[command(name = "elevate-archive", version, about, long_about = None, max_term_width = 110)]
pub struct Cli {
    /// The archive file.
    #[arg(
        long,
        global = true,
        env = "ELEVATE_DB",
        default_value = "./elevate-events.db",
        value_name = "PATH"
    )]
    pub db: PathBuf,

    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch events from the API into the archive.
    Sync(Box<SyncArgs>),
    /// Show what the archive holds: events, coverage and gaps, freshness, runs, rejects, event types.
    Status(StatusArgs),
    /// Run one read-only SQL statement against the archive.
    Query(QueryArgs),
}

/// `sync` flags. Credentials are never flags: see ELEVATE_TOKEN, ELEVATE_USERNAME/ELEVATE_PASSWORD.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Start of the range (RFC 3339 or YYYY-MM-DD). Default: where the archive's coverage ends, minus --lookback.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<Timestamp>,

    /// End of the range, exclusive. Default: now minus --lag.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<Timestamp>,

    /// Size of the windows the range is cut into.
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_duration)]
    pub window: Duration,

    /// Events per page (1..=1000).
    #[arg(long, value_name = "N", default_value_t = crate::sync::engine::DEFAULT_PAGE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::sync::engine::MAX_PAGE_SIZE)))]
    pub page_size: u32,

    /// Windows fetched at once.
    #[arg(long, value_name = "N", default_value_t = crate::sync::engine::DEFAULT_CONCURRENCY,
          value_parser = parse_concurrency)]
    pub concurrency: usize,

    /// Server-side category filter: `xyz` (equals), `in:x,y` or `like:xyz`.
    #[arg(long, value_name = "FILTER")]
    pub category: Option<String>,

    /// Server-side action filter: `xyz` (equals), `in:x,y` or `like:xyz`.
    #[arg(long, value_name = "FILTER")]
    pub action: Option<String>,

    /// API base URL [default: https://rest.elevatebilling.com/v1].
    #[arg(long, value_name = "URL", env = "ELEVATE_BASE_URL")]
    pub base_url: Option<String>,

    /// Without --from, re-read this much of the end of the coverage to catch late-arriving events.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub lookback: Duration,

    /// Without --to, stop this far behind now (events still being written are left for the next run).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub lag: Duration,

    /// Read windows that are already complete again (picks up late, changed and deleted events).
    #[arg(long)]
    pub refetch: bool,

    /// Polite cap on requests per second.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rps: Option<u32>,

    /// Read the bearer token from this file (private: mode 600 or stricter).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Read the password for ELEVATE_USERNAME from this file (private: mode 600 or stricter).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Allow plain http:// to a host that is not loopback (credentials then cross the network unencrypted).
    #[arg(long)]
    pub allow_http: bool,

    /// Time allowed for one request, body included.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Attempts per request before the run gives up (429, 5xx, timeouts, dropped connections).
    #[arg(long, value_name = "N", default_value_t = crate::api::retry::DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,

    /// Wait before the first retry; doubles with each further attempt (with jitter; Retry-After is honoured).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub retry_delay: Duration,

    /// No progress bar and no summary line (errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,

    /// Print the run summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

/// Formats of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// For people.
    Text,
    /// One JSON object for scripts and monitoring.
    Json,
}

/// `query` flags.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// One SQL statement (SELECT, WITH ... SELECT, EXPLAIN ...). The archive is opened read-only.
    #[arg(value_name = "SQL")]
    pub sql: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
}

/// Formats of `query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// An aligned table for people.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

fn parse_concurrency(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 1..=64) => Ok(n),
        _ => Err(format!("'{text}' is not a number from 1 to 64")),
    }
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    time::parse_time_arg(text)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = time::parse_duration_arg(text)?;
    if d.is_zero() {
        return Err(format!("'{text}' is zero; give a positive duration"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn page_size_outside_the_documented_range_is_refused() {
        for bad in ["0", "1001", "-5", "many"] {
            assert!(
                Cli::try_parse_from(["elevate-archive", "sync", "--page-size", bad]).is_err(),
                "{bad}"
            );
        }
        let cli = Cli::try_parse_from(["elevate-archive", "sync", "--page-size", "1000"]).unwrap();
        let Command::Sync(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.page_size, 1000);
    }

    #[test]
    fn times_and_durations_are_checked_when_parsed() {
        let bad = [
            vec!["sync", "--from", "yesterday"],
            vec!["sync", "--to", "2024-13-01"],
            vec!["sync", "--window", "0s"],
            vec!["sync", "--window", "a while"],
            vec!["sync", "--lookback", "-1h"],
        ];
        for args in bad {
            let argv = std::iter::once("elevate-archive").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
    }
}
