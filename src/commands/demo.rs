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
use crate::store::{ArchiveReader, QueryError};
use crate::time::Timestamp;
use crate::{config, time};
use std::path::Path;
use std::time::Duration;

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
    let settings = settings(&sim, &running.base_url(), from, to)?;
    let code = execute(db, settings, Reporting::default(), clock, &args.checkpoint).await?;
    drop(running);

    println!();
    super::status::print(db, now)?;
    show_examples(db)?;
    Ok(code)
}

/// The demo's sync: the whole simulated range, default windows and pages, quick first retries.
fn settings(
    sim: &Simulator,
    base_url: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<SyncSettings> {
    Ok(SyncSettings {
        // The simulator listens on a new port each time; its data depends only on these settings.
        source: format!(
            "simulator: seed {}, {} events",
            sim.config().seed,
            sim.config().events
        ),
        base_url: crate::api::parse_base_url(base_url, false)?,
        credentials: Credentials::Password {
            username: sim.config().username.clone(),
            password: sim.config().password.clone().into(),
            brand: None,
        },
        from: Some(from),
        to,
        window: chrono::TimeDelta::days(1),
        lookback: crate::model::Lookback::Fixed(chrono::TimeDelta::hours(1)),
        refetch: false,
        filters: Filters::default(),
        page_size: crate::sync::engine::DEFAULT_PAGE_SIZE,
        concurrency: crate::sync::engine::DEFAULT_CONCURRENCY,
        check_paging: false,
        timeout: crate::api::client::DEFAULT_REQUEST_TIMEOUT,
        max_rps: None,
        retry: RetryPolicy {
            base_delay: Duration::from_millis(200),
            ..RetryPolicy::default()
        },
    })
}

/// Runs the example queries and prints each with the command that runs it.
fn show_examples(db: &Path) -> Result<()> {
    let archive = ArchiveReader::open(db)?;
    for (title, sql) in crate::store::examples::DEMO {
        println!(
            "\n{title}:\n  elevate-archive --db {} query \"{sql}\"",
            db.display()
        );
        let mut sink = TableSink::new(std::io::stdout().lock());
        archive.query(sql, &mut sink).map_err(|e| match e {
            QueryError::Output(io) => Error::io("cannot print the example query's result")(io),
            QueryError::Sql(message) => {
                Error::Internal(format!("the example query failed: {message}"))
            }
        })?;
    }
    println!(
        "\nThe archive is an ordinary SQLite file: open it with `sqlite3 {}`, Datasette or DuckDB.",
        db.display()
    );
    Ok(())
}
