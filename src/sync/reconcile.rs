//! What a `reconcile` found: the run's counters and the ids it recorded in `source_changes`, folded into one
//! report (pure).

use super::engine::RunReport;
use crate::model::ChangeKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// Most ids listed per kind of difference.
pub const IDS_LISTED: usize = 20;

/// What a reconcile found.
#[derive(Debug, Serialize)]
pub struct ReconcileReport {
    /// Whether the source agrees with the archive over the range read (every window read; none failed).
    pub agrees: bool,
    /// Events the source has that the archive did not: archived now.
    pub late: u64,
    /// Events whose content changed at the source: kept as revisions.
    pub changed: u64,
    /// Archived events the source no longer returns: kept in the archive.
    pub deleted: u64,
    /// Of those, how many this reconcile recorded for the first time.
    pub deleted_newly_recorded: u64,
    /// Ids this reconcile recorded, by kind (at most [`IDS_LISTED`] each; all are in `source_changes`).
    pub ids: BTreeMap<ChangeKind, Vec<i64>>,
    /// The run that read the windows again.
    pub run: RunReport,
}

impl ReconcileReport {
    /// Folds a finished run and the changes its fetches recorded (kind, event id) into the report.
    pub fn new(run: RunReport, recorded: &[(ChangeKind, i64)]) -> ReconcileReport {
        let mut ids: BTreeMap<ChangeKind, Vec<i64>> = BTreeMap::new();
        for &(kind, id) in recorded {
            let list = ids.entry(kind).or_default();
            if list.len() < IDS_LISTED {
                list.push(id);
            }
        }
        let t = run.totals;
        ReconcileReport {
            agrees: t.events_new + t.revisions + t.missing_at_source == 0
                && run.failed_windows.is_empty(),
            late: t.events_new,
            changed: t.revisions,
            deleted: t.missing_at_source,
            deleted_newly_recorded: t.deletions_recorded,
            ids,
            run,
        }
    }
}
