//! `demo`: the whole job in one command, without credentials. A simulated API on a free loopback port, a full
//! sync into `./demo.db`, then `status` and two example queries.

use super::sync::{Reporting, execute};
use crate::api::{Credentials, retry::RetryPolicy};
use crate::cli::DemoArgs;
use crate::config::SyncSettings;
use crate::error::{Error, ExitCode, Result};
use crate::model::Filters;
use crate::output::{self, TableSink};
use crate::simulator::{SimConfig, Simulator, faults::FaultRule};
use crate::store::ArchiveReader;
use crate::{config, time};
use std::path::Path;
use std::time::Duration;

/// Example queries shown after the sync: (title, SQL).
const EXAMPLES: &[(&str, &str)] = &[
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

/// Runs the demo.
pub async fn run(db: &Path, args: &DemoArgs) -> Result<ExitCode> {
    let clock = config::clock(&super::process_env)?;
    let now = clock.now();
    let (from, to) = super::simulate::range(None, None, now, i64::from(args.days))?;
    // A little throttling and a few server errors, so the run shows its retries.
    let faults: Vec<FaultRule> = ["429:1%", "5xx:1%"]
        .iter()
        .map(|r| r.parse().expect("valid rule"))
        .collect();
    let sim = Simulator::new(SimConfig {
        seed: args.seed,
        faults,
        ..SimConfig::new(args.events, from, to)
    });
    let running = sim
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(Error::io("cannot start the simulator on loopback"))?;
    eprintln!(
        "Simulated Elevate API at {} serving {} events from {} to {}",
        running.base_url(),
        output::thousands(args.events as i64),
        time::to_api(from),
        time::to_api(to)
    );
    eprintln!("Archiving them into {} ...", db.display());
    let settings = SyncSettings {
        base_url: crate::api::parse_base_url(&running.base_url(), false)?,
        credentials: Credentials::Password {
            username: sim.config().username.clone(),
            password: sim.config().password.clone().into(),
            brand: None,
        },
        from: Some(from),
        to,
        window: chrono::TimeDelta::days(1),
        lookback: chrono::TimeDelta::hours(1),
        refetch: false,
        filters: Filters::default(),
        page_size: crate::sync::engine::DEFAULT_PAGE_SIZE,
        concurrency: crate::sync::engine::DEFAULT_CONCURRENCY,
        timeout: Duration::from_secs(60),
        max_rps: None,
        retry: RetryPolicy {
            base_delay: Duration::from_millis(200),
            ..RetryPolicy::default()
        },
    };
    let code = execute(
        db,
        settings,
        Reporting {
            quiet: false,
            json: false,
        },
        clock,
    )
    .await?;
    drop(running);

    println!();
    super::status::print(db, now)?;
    let archive = ArchiveReader::open(db)?;
    for (title, sql) in EXAMPLES {
        println!(
            "\n{title}:\n  elevate-archive --db {} query \"{sql}\"",
            db.display()
        );
        let mut sink = TableSink::new(std::io::stdout().lock());
        archive
            .query(sql, &mut sink)
            .map_err(|e| Error::Internal(format!("the example query failed: {e}")))?;
    }
    println!(
        "\nThe archive is an ordinary SQLite file: open it with `sqlite3 {}`, Datasette or DuckDB.",
        db.display()
    );
    Ok(code)
}
