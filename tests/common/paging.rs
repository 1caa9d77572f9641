//! Helpers of the paging tests (`paging.rs`, `adversarial_paging.rs`): the simulator's dataset from
//! 2024-01-01, the arguments of a sync against it, and a sync started in the background.

use super::{HANG_GUARD, POLL, SIM_CREDS, Sandbox, Served};
use elevate_archive::simulator::SimConfig;
use elevate_archive::time::{Timestamp, parse_time_arg};
use std::process::{Child, Stdio};
use std::time::Instant;

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
    range_args("sync", served, to, extra)
}

/// The arguments of `command` (`sync` or `reconcile`) from 2024-01-01 to `to` against `served`, quiet and
/// retrying at once, with `extra` after them.
pub fn range_args<'a>(
    command: &'a str,
    served: &'a Served,
    to: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        command,
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

/// Waits, while `child` runs, until `ready` holds of the simulator; fails if the child exits first, and
/// after the hang guard.
pub fn wait_on_sim(
    served: &Served,
    child: &mut Child,
    what: &str,
    ready: impl Fn(&Served) -> bool,
) {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        if ready(served) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            panic!("the sync exited ({status}) before {what}: {stderr}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hung: not {what} after {HANG_GUARD:?}");
        }
        std::thread::sleep(POLL);
    }
}
