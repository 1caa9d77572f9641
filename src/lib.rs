//! elevate-archive: archive the Elevate Events API into a crash-safe, indexed SQLite file.
//!
//! The map of the crate:
//! - [`cli`] the command-line types, [`config`] settings resolved from flags, environment and files;
//! - [`api`] the only code that speaks HTTP to Elevate: client, token renewal, wire types, retry policy;
//! - [`store`] the only code that runs SQL: opening and migrating the archive, the page writer, the read side;
//! - [`sync`] the pure window planner, the item classifier and the engine where `api` and `store` meet;
//! - [`simulator`] a stand-in Elevate server for demos, tests and benchmarks;
//! - [`commands`] one small module per subcommand, [`output`] tables, CSV and JSON for people and scripts,
//!   [`progress`] the bar drawn from the engine's progress values;
//! - [`tlog`] the Merkle log over everything sealed: leaves, checkpoints, keys, evidence bundles (pure);
//! - [`atomic`] files and folders that appear under their name complete or not at all (exports, backups).
//!
//! `api` and `store` never import each other. [`model`] holds the domain types both sides share (events, filters,
//! the interval algebra, every state and kind), [`digest`] the SHA-256 both sides compute, [`time`] the clock.

pub mod api;
pub mod atomic;
pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod error;
pub mod export;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod output;
pub mod progress;
pub mod simulator;
pub mod store;
pub mod sync;
pub mod time;
pub mod tlog;

pub use error::{Error, ExitCode};
