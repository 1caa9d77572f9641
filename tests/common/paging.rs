//! Helpers of the paging tests (`paging.rs`, `adversarial_paging.rs`): the simulator's dataset from
//! 2024-01-01, the arguments of a sync against it, and a sync started in the background.

use super::{SIM_CREDS, Sandbox, Served};
use elevate_archive::simulator::SimConfig;
use elevate_archive::time::{Timestamp, parse_time_arg};
use std::process::{Child, Stdio};

pub fn at(text: &str) -> Timestamp {
    parse_time_arg(text).unwrap()
}

/// `events` simulated events over `days` days from 2024-01-01.
pub fn config(events: u64, days: i64) -> SimConfig {
    let from = at("2024-01-01");
    SimConfig::new(events, from, from + chrono::TimeDelta::days(days))
}

/// The arguments of a sync from 2024-01-01 to `to` against `served`, with `extra` after them.
pub fn sync_args<'a>(served: &'a Served, to: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sync",
        "--quiet",
        "--base-url",
        &served.base,
        "--from",
        "2024-01-01",
        "--to",
        to,
        "--retry-delay",
        "1ms",
    ];
    args.extend_from_slice(extra);
    args
}

/// Starts a sync in the background (stdout and stderr piped).
pub fn start(sb: &Sandbox, args: &[&str]) -> Child {
    sb.command()
        .envs(SIM_CREDS)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}
