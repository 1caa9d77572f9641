//! `simulate`: serve a simulated Elevate API until stopped.

use crate::cli::SimulateArgs;
use crate::error::{Error, ExitCode, Result};
use crate::simulator::{SimConfig, Simulator};
use crate::time::{self, Timestamp};
use crate::{config, output};
use std::time::Duration;

/// Serves until SIGINT or SIGTERM.
pub async fn run(args: &SimulateArgs) -> Result<ExitCode> {
    let now = config::clock(&super::process_env)?.now();
    let (from, to) = range(args.from, args.to, now, 30)?;
    let config = SimConfig {
        seed: args.seed,
        bounds: args.bounds,
        default_order: args.default_order,
        past_end: args.past_end,
        username: args.username.clone(),
        password: args.password.clone(),
        token_ttl: args.token_ttl,
        ipv6_per_mille: percent(args.ipv6_percent, 1_000.0, "--ipv6-percent")?,
        malformed_ppm: percent(args.malformed_percent, 1_000_000.0, "--malformed-percent")?,
        faults: args.faults.clone(),
        latency: args.latency,
        retry_after_secs: args.retry_after,
        page_cap: args.page_cap.map(|n| n as usize),
        failing: args.fail_windows.clone(),
        compact_offsets: args.compact_offsets,
        delete_while_paging: args.delete_while_paging,
        ..SimConfig::new(args.events, from, to)
    };
    let sim = Simulator::new(config);
    let addr = std::net::SocketAddr::new(args.bind, args.port);
    let running = sim.serve(addr).await.map_err(|e| {
        Error::Usage(format!(
            "cannot listen on {addr}: {e} (pass another --port, or --port 0)"
        ))
    })?;
    println!(
        "Simulated Elevate API with {} events from {} to {}",
        output::thousands(args.events as i64),
        time::to_api(from),
        time::to_api(to)
    );
    println!("ELEVATE_BASE_URL={}", running.base_url());
    println!("ELEVATE_TOKEN={}", sim.issue_token());
    println!(
        "(the token lives {}; or use ELEVATE_USERNAME={} ELEVATE_PASSWORD={}, renewed automatically)",
        time::human_duration(time::delta(args.token_ttl)),
        args.username,
        args.password
    );
    println!("Stop with Ctrl-C.");
    let mut tasks = Vec::new();
    for (every, what) in [
        (args.late_every, 0),
        (args.edit_every, 1),
        (args.delete_every, 2),
    ] {
        if let Some(every) = every {
            let sim = sim.clone();
            tasks.push(tokio::spawn(mutate(sim, every, what)));
        }
    }
    super::shutdown_signal().await;
    for task in tasks {
        task.abort();
    }
    drop(running);
    Ok(ExitCode::Ok)
}

/// Changes the source every `every`: 0 inserts a late event, 1 edits one, 2 deletes one.
async fn mutate(sim: Simulator, every: Duration, what: u8) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let ids = match what {
            0 => sim.insert_late_events(1),
            1 => sim.edit_events(1),
            _ => sim.delete_events(1),
        };
        tracing::info!(
            ?ids,
            "{}",
            ["late arrival inserted", "event edited", "event deleted"][what as usize]
        );
    }
}

/// The simulated range: explicit bounds, or `days` ending today at midnight UTC.
pub fn range(
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    now: Timestamp,
    days: i64,
) -> Result<(Timestamp, Timestamp)> {
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let to = time::floor_second(to.unwrap_or(midnight));
    let from = time::floor_second(from.unwrap_or(to - chrono::TimeDelta::days(days)));
    config::nonempty_range(from, to, "range", "--to")?;
    Ok((from, to))
}

fn percent(value: f64, scale: f64, flag: &str) -> Result<u64> {
    if !(0.0..=100.0).contains(&value) {
        return Err(Error::Usage(format!("{flag} must be between 0 and 100")));
    }
    Ok((value / 100.0 * scale).round() as u64)
}
