//! The typed columns in `verify`'s row pass: each event's `timestamp, category, action, description,
//! username, ip_address` (and its `id`), and each revision's `event_id`, must be what its `raw` derives
//! ([`typed_columns`], the function the sync derived them with). Digests cover `raw` only; this is what covers
//! the columns auditors query.
//!
//! A row whose `raw` no longer matches its digest is not judged here: its `raw` is what changed, and the
//! digest pass names it. Findings are grouped by window fetch, table and the set of columns that differ, so
//! that each names its columns and ids, and memory stays bounded however many rows differ.

use super::{Archived, Finding, Sample};
use crate::model::{ColumnSet, EventColumn, FindingKind, StoredColumns, typed_columns};
use std::collections::BTreeMap;

/// What a row's `raw` says about its stored columns, when they are not what it derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// These columns differ.
    Differ(ColumnSet),
    /// `raw` derives no event at all (it is intact, so the archive's own derivation changed, or it was
    /// written by hand with a matching digest).
    Unarchivable,
}

/// A group of rows whose columns differ the same way: window fetch, table, verdict.
type Group = (Option<i64>, Archived, Verdict);

/// Rows whose columns differ, by window fetch, table and verdict.
#[derive(Debug, Default)]
pub(super) struct DerivedColumns {
    /// The rows of each group, and the first reject reason seen (for [`Verdict::Unarchivable`]).
    found: BTreeMap<Group, (Sample, Option<String>)>,
}

impl DerivedColumns {
    /// Folds in an event filed under `window` whose `raw` matches its digest; `not_text` are the columns that
    /// hold something other than text or NULL (which the sync never writes), and so differ whatever `raw` says.
    pub(super) fn observe_event(
        &mut self,
        window: Option<i64>,
        raw: &str,
        stored: &StoredColumns<'_>,
        not_text: ColumnSet,
    ) {
        match typed_columns(raw) {
            Ok(derived) => {
                let mut differ = derived.differences(stored);
                not_text.iter().for_each(|c| differ.insert(c));
                if !differ.is_empty() {
                    self.push(
                        window,
                        Archived::Event,
                        Verdict::Differ(differ),
                        stored.id,
                        None,
                    );
                }
            }
            Err(reason) => self.push(
                window,
                Archived::Event,
                Verdict::Unarchivable,
                stored.id,
                Some(reason.to_string()),
            ),
        }
    }

    /// Folds in a revision of `event_id` filed under `window` whose `raw` matches its digest.
    pub(super) fn observe_revision(&mut self, window: Option<i64>, event_id: i64, raw: &str) {
        match typed_columns(raw) {
            Ok(derived) if derived.id == event_id => {}
            Ok(_) => {
                let differ = ColumnSet::from_iter([EventColumn::Id]);
                self.push(
                    window,
                    Archived::Revision,
                    Verdict::Differ(differ),
                    event_id,
                    None,
                );
            }
            Err(reason) => self.push(
                window,
                Archived::Revision,
                Verdict::Unarchivable,
                event_id,
                Some(reason.to_string()),
            ),
        }
    }

    fn push(
        &mut self,
        window: Option<i64>,
        table: Archived,
        verdict: Verdict,
        id: i64,
        reason: Option<String>,
    ) {
        let (sample, first) = self.found.entry((window, table, verdict)).or_default();
        sample.push(id);
        if first.is_none() {
            *first = reason;
        }
    }

    /// One `edited` finding per window fetch, table and set of columns, naming the columns and the event ids.
    pub(super) fn findings(&self) -> Vec<Finding> {
        self.found
            .iter()
            .map(|((window, table, verdict), (sample, reason))| {
                let rows = match table {
                    Archived::Event => "event(s)",
                    Archived::Revision => "revision(s)",
                };
                let n = sample.count;
                let detail = match verdict {
                    Verdict::Differ(columns) => format!(
                        "{} changed (not what raw says) in {n} {rows}",
                        column_names(*table, *columns)
                    ),
                    Verdict::Unarchivable => format!(
                        "raw no longer derives an event ({}) in {n} {rows}",
                        reason.as_deref().unwrap_or_default()
                    ),
                };
                Finding::new(
                    FindingKind::Edited,
                    *window,
                    sample.ids.iter().copied(),
                    detail,
                )
            })
            .collect()
    }
}

/// The names of `columns` in `table`, in schema order (a revision's id is its `event_id`).
fn column_names(table: Archived, columns: ColumnSet) -> String {
    columns
        .iter()
        .map(|c| match (table, c) {
            (Archived::Revision, EventColumn::Id) => "event_id",
            (Archived::Event | Archived::Revision, c) => c.as_str(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = r#"{"id":5,"timestamp":"2024-01-01T10:00:00Z","category":"authentication","action":"user-login-success","username":"bob"}"#;

    fn stored() -> StoredColumns<'static> {
        StoredColumns {
            id: 5,
            timestamp: "2024-01-01T10:00:00.000Z",
            category: "authentication",
            action: "user-login-success",
            description: None,
            username: Some("bob"),
            ip_address: None,
        }
    }

    fn show(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .map(|f| format!("{} {:?} {:?}: {}", f.kind, f.window_id, f.ids, f.detail))
            .collect()
    }

    #[test]
    fn columns_not_what_raw_says_are_named_with_their_events() {
        let mut fold = DerivedColumns::default();
        fold.observe_event(Some(1), RAW, &stored(), ColumnSet::default());
        assert!(fold.findings().is_empty(), "as synced");
        let edited = StoredColumns {
            username: Some("mallory"),
            action: "user-logout",
            ..stored()
        };
        fold.observe_event(Some(1), RAW, &edited, ColumnSet::default());
        fold.observe_event(
            Some(1),
            RAW,
            &StoredColumns { id: 6, ..edited },
            ColumnSet::default(),
        );
        let blob = ColumnSet::from_iter([EventColumn::Description]);
        fold.observe_event(Some(2), RAW, &StoredColumns { id: 7, ..stored() }, blob);
        fold.observe_event(
            None,
            r#"{"id":8}"#,
            &StoredColumns { id: 8, ..stored() },
            blob,
        );
        fold.observe_revision(Some(3), 5, RAW);
        fold.observe_revision(Some(3), 9, RAW);
        fold.observe_revision(Some(3), 10, "[]");
        assert_eq!(
            show(&fold.findings()),
            [
                "edited None [8]: raw no longer derives an event (no timestamp) in 1 event(s)",
                "edited Some(1) [5]: action, username changed (not what raw says) in 1 event(s)",
                "edited Some(1) [6]: id, action, username changed (not what raw says) in 1 event(s)",
                "edited Some(2) [7]: id, description changed (not what raw says) in 1 event(s)",
                "edited Some(3) [9]: event_id changed (not what raw says) in 1 revision(s)",
                "edited Some(3) [10]: raw no longer derives an event (not a JSON object (it is an array)) in 1 revision(s)",
            ]
        );
    }

    #[test]
    fn many_rows_with_the_same_columns_changed_make_one_finding() {
        let mut fold = DerivedColumns::default();
        for id in 1..=25 {
            let raw = RAW.replace("\"id\":5", &format!("\"id\":{id}"));
            let stored = StoredColumns {
                id,
                username: Some("mallory"),
                ..stored()
            };
            fold.observe_event(Some(4), &raw, &stored, ColumnSet::default());
        }
        let found = fold.findings();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].ids, (1..=20).collect::<Vec<i64>>());
        assert_eq!(
            found[0].detail,
            "username changed (not what raw says) in 25 event(s)"
        );
    }
}
