//! Sync: where the API client and the archive meet.
//!
//! - [`planner`] turns a range, what the ledger already covers and a window size into windows (pure);
//! - [`pager`] decides when a window's paging may stop: its end is confirmed, never assumed (pure);
//! - [`classify`] turns each raw item of a page into an archivable event or a reject (pure);
//! - [`reconcile`] folds what a `reconcile` run recorded into its report (pure);
//! - [`engine`] fetches windows concurrently, and the pages of a window ahead of the one it takes (at most
//!   `concurrency` requests in flight in all), and feeds pages in page order, through a bounded channel, to the
//!   one writer thread that owns the archive.
//!
//! Terms: a *run* is one `sync` invocation; a *window* is a slice `[start, end)` of its range, paged with
//! `page=1,2,...` until its end is confirmed (an empty page, or two 404s); the *ledger* (table `windows`) records each window fetch and
//! says it is complete only in the transaction that stored its last page.

pub mod classify;
pub mod engine;
pub mod pager;
pub mod planner;
pub mod reconcile;

pub use engine::{RunReport, SyncJob, run};
