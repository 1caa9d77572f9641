//! Command-line types (clap derive) and nothing else: parsing values happens here, deciding happens in
//! [`crate::config`] and [`crate::commands`].
//!
//! The contract scripts rely on: extend it, never rename it.

use crate::model::Lookback;
use crate::time::{self, Timestamp};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

/// Archive the Elevate Events API into a crash-safe, indexed SQLite file.
#[derive(Debug, Parser)]
#[command(name = "elevate-archive", version, about, long_about = None, max_term_width = 110)]
pub struct Cli {
    /// The archive file [default: ./elevate-events.db; ./demo.db for `demo`].
    #[arg(long, global = true, env = "ELEVATE_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

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
    #[command(
        after_help = "Credentials come from the environment (or files), never from flags:\n  \
        ELEVATE_TOKEN                        a ready bearer token\n  \
        ELEVATE_USERNAME, ELEVATE_PASSWORD   exchanged for tokens, renewed automatically\n  \
        ELEVATE_BRAND                        sent with them when set\n\n\
        Exit codes: 0 ok, 2 usage, 3 partial (rejects), 4 API or network, 5 archive, 6 another sync running, 130 interrupted"
    )]
    Sync(Box<SyncArgs>),
    /// Show what the archive holds: events, coverage and gaps, freshness, runs, rejects, event types.
    Status(StatusArgs),
    /// Run one read-only SQL statement against the archive.
    Query(QueryArgs),
    /// Check the archive is intact and complete: digests, the seal chain, coverage gaps.
    Verify(VerifyArgs),
    /// Read covered windows from the API again: archive late arrivals, record events changed or deleted at the source.
    #[command(
        after_help = "Nothing archived is ever changed or removed: a changed event is kept as a revision beside \
        its first version, a deleted one stays, and every finding is recorded in the table source_changes \
        (sealed with the window fetch that observed it). Credentials as for `sync`.\n\n\
        Exit codes: 0 the source agrees, 8 the source disagrees (late, changed or deleted events), 2 usage, \
        4 API or network, 5 archive, 6 a sync is running, 130 interrupted"
    )]
    Reconcile(Box<ReconcileArgs>),
    /// Write a consistent copy of the archive (safe while a sync runs).
    Backup(BackupArgs),
    /// Export events to NDJSON, CSV or a Parquet dataset, with a manifest (row count, SHA-256 per file).
    Export(ExportArgs),
    /// Full-text search over descriptions and usernames, newest first.
    Search(SearchArgs),
    /// Retention: remove whole sealed window fetches that ended before a cutoff; the removal is recorded and sealed.
    #[command(
        after_help = "Held ranges (see `hold`) are never pruned. Ledger rows stay: pruned ranges remain \
        covered, are shown as pruned by `status` and `verify`, and are never fetched again.\n\n\
        Exit codes: 0 ok (also when nothing was old enough), 2 usage, 5 archive, 6 a sync is running, \
        7 a window no longer matches its seal (nothing pruned)"
    )]
    Prune(PruneArgs),
    /// Legal holds: ranges of events that `prune` never removes.
    Hold(HoldArgs),
    /// Serve a simulated Elevate API (documented behaviour, switchable unknowns, faults on demand).
    Simulate(Box<SimulateArgs>),
    /// The whole job in one command: simulate an API, sync it into ./demo.db, show status and example queries.
    Demo(DemoArgs),
    /// Write a new Ed25519 signing key (mode 600) for checkpoints and print its verifier key.
    Keygen(KeygenArgs),
    /// Write a self-contained evidence bundle for one event: its raw JSON, inclusion proof, signed checkpoint.
    #[command(
        after_help = "Exit codes: 0 written, 2 usage (no such event, no signed checkpoint covers it), 5 archive"
    )]
    Prove(ProveArgs),
    /// Check an evidence bundle without the archive.
    #[command(
        after_help = "Exit codes: 0 the bundle holds, 2 usage (unreadable file, bad key), 7 the bundle does not verify"
    )]
    VerifyProof(VerifyProofArgs),
}

/// `--timeout`'s default as clap parses and shows it: the client's [`DEFAULT_REQUEST_TIMEOUT`] in whole
/// seconds (`60s`).
///
/// [`DEFAULT_REQUEST_TIMEOUT`]: crate::api::client::DEFAULT_REQUEST_TIMEOUT
static DEFAULT_TIMEOUT_ARG: LazyLock<String> =
    LazyLock::new(|| format!("{}s", crate::api::client::DEFAULT_REQUEST_TIMEOUT.as_secs()));

/// The archive path when `--db` and `ELEVATE_DB` are not given.
pub const DEFAULT_DB: &str = "./elevate-events.db";
/// The archive path of `demo` when `--db` and `ELEVATE_DB` are not given.
pub const DEFAULT_DEMO_DB: &str = "./demo.db";

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

    /// Server-side category filter: `xyz` (equals), `in:x,y` or `like:xyz`.
    #[arg(long, value_name = "FILTER")]
    pub category: Option<String>,

    /// Server-side action filter: `xyz` (equals), `in:x,y` or `like:xyz`.
    #[arg(long, value_name = "FILTER")]
    pub action: Option<String>,

    /// How to reach the API.
    #[command(flatten)]
    pub api: ApiArgs,

    /// Without --from, re-read this much of the end of the coverage to catch late-arriving events; `auto`: from
    /// how late events were found after their range was first fetched (1.5 times the latest, 1h to 7d).
    #[arg(long, value_name = "DURATION|auto", default_value = "1h", value_parser = parse_lookback)]
    pub lookback: Lookback,

    /// Without --to, stop this far behind now (events still being written are left for the next run).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub lag: Duration,

    /// Read windows that are already complete again (picks up late arrivals; changed events become revisions).
    #[arg(long)]
    pub refetch: bool,

    /// Signing the log's checkpoint and shipping it.
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,

    /// No progress bar and no summary line (errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,

    /// Print the run summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Write the run's figures and the archive's state to this file (Prometheus text format, replaced
    /// atomically), for node_exporter's textfile collector.
    #[arg(long, value_name = "PATH", env = "ELEVATE_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// How to reach and read the API: shared by `sync` and `reconcile`. Credentials are never flags.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Events per page (1..=1000).
    #[arg(long, value_name = "N", default_value_t = crate::sync::engine::DEFAULT_PAGE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::sync::engine::MAX_PAGE_SIZE)))]
    pub page_size: u32,

    /// Requests in flight at once, across all windows (a window with requests to spare asks for its next pages
    /// ahead; 1: one page at a time).
    #[arg(long, value_name = "N", default_value_t = crate::sync::engine::DEFAULT_CONCURRENCY,
          value_parser = parse_concurrency)]
    pub concurrency: usize,

    /// API base URL [default: https://rest.elevatebilling.com/v1].
    #[arg(long, value_name = "URL", env = "ELEVATE_BASE_URL")]
    pub base_url: Option<String>,

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
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT_ARG.as_str(), value_parser = parse_duration)]
    pub timeout: Duration,

    /// Attempts per request before the run gives up (429, 5xx, timeouts, dropped connections).
    #[arg(long, value_name = "N", default_value_t = crate::api::retry::DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,

    /// Re-read the boundary of each full page (one one-item request per page, two when the next page was
    /// asked for ahead) to catch events skipped when the source deletes or inserts events while a window is
    /// paged.
    #[arg(long)]
    pub check_paging: bool,

    /// Wait before the first retry; doubles with each further attempt (with jitter; Retry-After is honoured).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub retry_delay: Duration,
}

/// `reconcile` flags.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Start of the range to read again (RFC 3339 or YYYY-MM-DD) [default: where the coverage starts].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<Timestamp>,

    /// End of the range, exclusive [default: where the coverage ends].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<Timestamp>,

    /// Size of the windows the range is cut into.
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_duration)]
    pub window: Duration,

    /// Reconcile what a sync with this category filter archived (`xyz`, `in:x,y` or `like:xyz`).
    #[arg(long, value_name = "FILTER")]
    pub category: Option<String>,

    /// Reconcile what a sync with this action filter archived.
    #[arg(long, value_name = "FILTER")]
    pub action: Option<String>,

    /// How to reach the API.
    #[command(flatten)]
    pub api: ApiArgs,

    /// Signing the log's checkpoint and shipping it.
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,

    /// Check the archive for monitoring, as a monitoring plugin does (Nagios, Icinga, Sensu): one summary line
    /// first, then one line per problem; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[arg(long, conflicts_with = "format")]
    pub check: bool,

    /// With --check: coverage older than this is CRITICAL (half of it is a WARNING).
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = parse_duration, requires = "check")]
    pub max_age: Duration,

    /// With --check: an archive last verified (`verify --record`) longer ago than this, or never, is a WARNING.
    #[arg(long, value_name = "DURATION", default_value = "8d", value_parser = parse_duration, requires = "check")]
    pub max_verify_age: Duration,
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

/// `verify` flags.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A chain head kept elsewhere (printed by an earlier `verify` or `sync --json`): it must be in the chain.
    #[arg(long, value_name = "DIGEST")]
    pub anchor: Option<String>,

    /// A checkpoint kept elsewhere (written by `--checkpoint-out`): its signature must hold and the archive's
    /// log must be a consistent extension of it. Needs --key.
    #[arg(long, value_name = "FILE", requires = "keys")]
    pub checkpoint: Option<PathBuf>,

    /// A trusted verifier key (NAME+KEYHASH+BASE64, or a file holding it); repeat for several (rotation).
    #[arg(long = "key", value_name = "VERIFIER_KEY")]
    pub keys: Vec<String>,

    /// Exit 7 when anything was appended to the log after the newest checkpoint signed by a trusted key.
    #[arg(long, requires = "keys")]
    pub require_signed: bool,

    /// With --checkpoint: check only the Merkle log against the checkpoints (every row's leaf, the stored
    /// hashes, the consistency), not the seals, typed columns and coverage a plain `verify` checks.
    #[arg(long, requires = "checkpoint")]
    pub log_only: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,

    /// Record the result in the archive (`verifications`), for `status --check` and the metrics file. Without
    /// it, `verify` only reads.
    #[arg(long)]
    pub record: bool,
}

/// `backup` flags.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

/// `prune` flags.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove window fetches that ended at or before this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub before: Timestamp,

    /// Show what would be removed, and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Signing the log's checkpoint and shipping it.
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

/// `hold` subcommands.
#[derive(Debug, Args)]
pub struct HoldArgs {
    /// What to do with holds.
    #[command(subcommand)]
    pub command: HoldCommand,
}

/// What `hold` does.
#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Place a hold on the events in [--from, --to).
    Add {
        /// Start of the held range (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        from: Timestamp,
        /// End of the held range, exclusive.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        to: Timestamp,
        /// Why: a case number, a request (kept with the hold).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// List the holds in force.
    List {
        /// Include lifted holds.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
    },
    /// Lift a hold (its record stays, with the time it was lifted).
    Remove {
        /// The hold's id, as `hold list` shows it.
        #[arg(value_name = "ID")]
        id: i64,
    },
}

/// Which archived events a command reads: a time range and the API's filter syntax.
#[derive(Debug, Args)]
pub struct SelectionArgs {
    /// Events at or after this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<Timestamp>,

    /// Events before this time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<Timestamp>,

    /// Category filter: `xyz` (equals), `in:x,y` or `like:pattern`.
    #[arg(long, value_name = "FILTER")]
    pub category: Option<String>,

    /// Action filter: `xyz` (equals), `in:x,y` or `like:pattern`.
    #[arg(long, value_name = "FILTER")]
    pub action: Option<String>,
}

/// `export` flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, required_unless_present = "check")]
    pub format: Option<crate::export::Format>,

    /// Which events.
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// Write to this file (must not exist) instead of standard output; the manifest goes to FILE.manifest.json.
    /// With --incremental: the mirror's folder or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,

    /// Write the manifest here [default: FILE.manifest.json, or standard error when exporting to standard output].
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,

    /// Mirror (Parquet only): export only what was sealed since the last export to --out, exactly once;
    /// prunes since then are applied to the mirror.
    #[arg(long, requires = "out", conflicts_with = "manifest")]
    pub incremental: bool,

    /// Re-read the mirror at URL (a folder or s3://BUCKET/PREFIX) and compare it with the archive: missing,
    /// extra or altered objects are named (exit 7).
    #[arg(long, value_name = "URL", conflicts_with_all = ["format", "out", "manifest", "incremental"])]
    pub check: Option<String>,

    /// Allow plain http to an AWS_ENDPOINT_URL that is not loopback.
    #[arg(long)]
    pub allow_http: bool,

    /// With --incremental or --check: print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `search` flags.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to find (all of them; a trailing * matches a prefix), in descriptions and usernames.
    #[arg(value_name = "TEXT")]
    pub text: String,

    /// Which events.
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// Most events shown.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,

    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
}

/// `simulate` flags.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,

    /// Number of events to serve.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub events: u64,

    /// Start of the events' range [default: 30 days before --to].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<Timestamp>,

    /// End of the events' range, exclusive [default: today, midnight UTC].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<Timestamp>,

    /// Seed of the data and of random faults.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// How a plain createdFrom/createdTo is read (the docs do not say).
    #[arg(long, value_enum, default_value_t = crate::simulator::query::Bounds::Inclusive)]
    pub bounds: crate::simulator::query::Bounds,

    /// Order of events when a request has no sort (the docs do not say).
    #[arg(long, value_enum, default_value_t = crate::simulator::DefaultOrder::Id)]
    pub default_order: crate::simulator::DefaultOrder,

    /// What a page past the last one returns (the docs do not say).
    #[arg(long, value_enum, default_value_t = crate::simulator::PastEnd::Empty)]
    pub past_end: crate::simulator::PastEnd,

    /// The simulated API user.
    #[arg(long, default_value = crate::simulator::DEFAULT_USERNAME)]
    pub username: String,

    /// The simulated API user's password (a test credential, not a secret).
    #[arg(long, default_value = crate::simulator::DEFAULT_PASSWORD)]
    pub password: String,

    /// Lifetime of issued tokens (down to seconds).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub token_ttl: Duration,

    /// Percentage of events with an IPv6 address (the docs say IPv4; real data differs).
    #[arg(long, value_name = "PERCENT", default_value_t = 3.0)]
    pub ipv6_percent: f64,

    /// Percentage of items served malformed (no id, bad timestamp, not an object).
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub malformed_percent: f64,

    /// A fault rule KIND:TRIGGER (repeatable): KIND 429, 500, 502, 503, 5xx, drop, truncate; TRIGGER N%, every:N, first:N.
    #[arg(long = "fault", value_name = "RULE")]
    pub faults: Vec<crate::simulator::faults::FaultRule>,

    /// How long every GET /events takes to answer, from its arrival (its page is made within it).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = time::parse_duration_arg)]
    pub latency: Duration,

    /// Retry-After sent with 429, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 1)]
    pub retry_after: u64,

    /// Serve at most N items per page, whatever pageSize asks (a capped server).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page_cap: Option<u32>,

    /// Repeatable; answer 500 to every request covering TIME, always, or the first N times (`TIME:N`).
    #[arg(long = "fail-window", value_name = "TIME[:N]")]
    pub fail_windows: Vec<crate::simulator::FailingWindow>,

    /// Write offsets as Java's and .NET's defaults do (`+0000`, `+0100`).
    #[arg(long)]
    pub compact_offsets: bool,

    /// Delete the second event of each window's first page right after serving it (later pages shift back).
    #[arg(long)]
    pub delete_while_paging: bool,

    /// Insert one late-arriving event into a past window this often.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub late_every: Option<Duration>,

    /// Edit one served event at the source this often.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub edit_every: Option<Duration>,

    /// Delete one served event at the source this often.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub delete_every: Option<Duration>,
}

/// `demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of simulated events.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub events: u64,

    /// Days of events, ending today at midnight UTC.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,

    /// Seed of the simulated data.
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub seed: u64,

    /// Signing the log's checkpoint and shipping it.
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,
}

/// The checkpoint a writing run ends with: signed with a key read from a file (never a key in argv), and
/// written where cron can ship it.
#[derive(Debug, Clone, Default, Args)]
pub struct CheckpointArgs {
    /// Sign the run's checkpoint with the Ed25519 signing key in this file (mode 600; `keygen` writes one)
    /// [env: ELEVATE_SIGNING_KEY_FILE].
    #[arg(long, value_name = "PATH")]
    pub signing_key: Option<PathBuf>,

    /// Also write the run's new checkpoint to this file (atomically, mode 600), to ship it off the host.
    #[arg(long, value_name = "PATH")]
    pub checkpoint_out: Option<PathBuf>,
}

/// `keygen` flags.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the signing key (must not exist; written with mode 600).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,

    /// The key's name, shown in every signature line (no spaces, no '+').
    #[arg(long, value_name = "NAME", default_value = crate::tlog::note::DEFAULT_KEY_NAME)]
    pub name: String,
}

/// `prove` flags.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The event to prove (its id).
    #[arg(value_name = "EVENT_ID")]
    pub event_id: i64,

    /// Write the bundle here (atomically, mode 600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// When no stored signed checkpoint covers the event, sign one of the log as it stands with this key
    /// (mode 600) [env: ELEVATE_SIGNING_KEY_FILE].
    #[arg(long, value_name = "PATH")]
    pub signing_key: Option<PathBuf>,
}

/// `verify-proof` flags.
#[derive(Debug, Args)]
pub struct VerifyProofArgs {
    /// The bundle `prove` wrote.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// A trusted verifier key (NAME+KEYHASH+BASE64, as `keygen` prints it, or a file holding it); repeat for several.
    #[arg(long = "key", value_name = "VERIFIER_KEY", required = true)]
    pub keys: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
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

fn parse_lookback(text: &str) -> Result<Lookback, String> {
    match text {
        "auto" => Ok(Lookback::Auto),
        _ => parse_duration(text).map(|d| Lookback::Fixed(time::delta(d))),
    }
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
        assert_eq!(args.api.page_size, 1000);
    }

    #[test]
    fn the_timeout_default_is_the_client_constant() {
        let cli = Cli::try_parse_from(["elevate-archive", "sync"]).unwrap();
        let Command::Sync(args) = cli.command else {
            panic!()
        };
        assert_eq!(
            args.api.timeout,
            crate::api::client::DEFAULT_REQUEST_TIMEOUT
        );
        let mut cli = Cli::command();
        let sync = cli.find_subcommand_mut("sync").unwrap();
        let timeout = sync
            .get_arguments()
            .find(|a| a.get_id() == "timeout")
            .unwrap();
        assert_eq!(timeout.get_default_values(), ["60s"], "--help shows 60s");
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
