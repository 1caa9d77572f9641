//! The `elevate-archive` binary: parse arguments, set up logging, run one command, map the outcome to an
//! exit code. Nothing else lives here.

use clap::Parser;
use elevate_archive::{Error, cli::Cli, commands};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&Error::io("cannot start the async runtime")(e)),
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => std::process::ExitCode::from(code.code()),
        Err(e) => fail(&e),
    }
}

/// Prints an error and its causes to stderr and returns its exit code.
fn fail(e: &Error) -> std::process::ExitCode {
    let mut text = format!("error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!("\n  caused by: {cause_text}"));
        }
        source = cause.source();
    }
    eprintln!("{text}");
    std::process::ExitCode::from(e.exit_code().code())
}

/// Logs go to stderr: RUST_LOG if set, else warnings, more with each -v (for this crate only).
fn init_logging(verbose: u8) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        EnvFilter::new(format!("warn,elevate_archive={level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
