//! One small module per subcommand: glue between the command line and the library.

pub mod query;
pub mod status;
pub mod sync;

use crate::cli::{Cli, Command};
use crate::error::{ExitCode, Result};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sync(args) => sync::run(&cli.db, &args).await,
        Command::Status(args) => status::run(&cli.db, &args),
        Command::Query(args) => query::run(&cli.db, &args),
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
