//! One small module per subcommand: glue between the command line and the library.

pub mod backup;
pub mod checkpoint;
pub mod demo;
pub mod export;
pub mod hold;
pub mod keygen;
pub mod mirror;
pub mod prove;
pub mod prune;
pub mod query;
pub mod reconcile;
pub mod search;
pub mod simulate;
pub mod status;
pub mod sync;
pub mod verify;
pub mod verify_proof;

use crate::cli::{Cli, Command, DEFAULT_DB, DEFAULT_DEMO_DB};
use crate::error::{ExitCode, Result};
use std::path::PathBuf;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let db = |default: &str| cli.db.clone().unwrap_or_else(|| PathBuf::from(default));
    match &cli.command {
        Command::Sync(args) => sync::run(&db(DEFAULT_DB), args).await,
        Command::Status(args) => status::run(&db(DEFAULT_DB), args),
        Command::Query(args) => query::run(&db(DEFAULT_DB), args),
        Command::Verify(args) => verify::run(&db(DEFAULT_DB), args),
        Command::Reconcile(args) => reconcile::run(&db(DEFAULT_DB), args).await,
        Command::Backup(args) => backup::run(&db(DEFAULT_DB), args),
        Command::Export(args) => export::run(&db(DEFAULT_DB), args),
        Command::Search(args) => search::run(&db(DEFAULT_DB), args),
        Command::Prune(args) => prune::run(&db(DEFAULT_DB), args),
        Command::Hold(args) => hold::run(&db(DEFAULT_DB), args),
        Command::Simulate(args) => simulate::run(args).await,
        Command::Demo(args) => demo::run(&db(DEFAULT_DEMO_DB), args).await,
        Command::Keygen(args) => keygen::run(args),
        Command::Prove(args) => prove::run(&db(DEFAULT_DB), args),
        Command::VerifyProof(args) => verify_proof::run(args),
    }
}

/// Reads the process environment (the production implementation of the injectable `env` lookups).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Resolves when the process is asked to stop (SIGINT, SIGTERM).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::warn!("stop requested: finishing the pages in hand, then stopping");
}

/// The command's one clock: the system clock, or the instant `ELEVATE_NOW` pins.
pub(crate) fn clock() -> Result<crate::time::Clock> {
    crate::config::clock(&process_env)
}
