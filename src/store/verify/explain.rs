//! Naming what changed. Once a window fetch's content no longer matches its seal, its seal's members name the
//! events deleted, inserted or edited (their digest, and from version 2 their `fetched_at`), and a version 2
//! seal's lines name the ledger row's, revisions', rejects' and reconcile records' rows and columns. The same
//! comparison of lines names what changed in a pruned window since a version 2 prune recorded it.
//!
//! A seal's members and lines are what `verify` explains with, so they must match the rows whenever the
//! content does ([`check_seal_body`]): a seal edited there is caught too.

use super::{Finding, IDS_SHOWN, Sample, SealHeader};
use crate::model::FindingKind;
use crate::store::seal::lines::{Change, LineChange, LineKind};
use crate::store::seal::{Member, SealFormat, WindowContent, decode_members};
use std::collections::BTreeMap;

/// What a seal keeps beside its hashes: its members and (version 2) its lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SealBody {
    /// `seals.members`.
    pub members: Vec<u8>,
    /// `seals.lines`.
    pub lines: Option<String>,
}

/// Once a window fetch's content matches its seal, its seal's members, lines and counts must match it too.
pub(super) fn check_seal_body(
    header: &SealHeader,
    format: SealFormat,
    body: &SealBody,
    now: &WindowContent,
) -> Option<Finding> {
    let lines_hold = match format {
        SealFormat::V1 => true,
        SealFormat::V2 => body.lines.as_deref() == Some(now.lines.as_str()),
    };
    let faithful = lines_hold
        && body.members == now.members
        && (header.events, header.revisions) == (now.events, now.revisions);
    (!faithful).then(|| {
        Finding::new(
            FindingKind::Chain,
            header.window_id,
            [],
            format!(
                "seal {}'s members, lines or counts do not match its window's rows, though its content does: \
                 the seal was edited",
                header.id
            ),
        )
    })
}

/// Checks a window fetch's content now (`None`: its ledger row is gone) against its seal, once the content no
/// longer matches the seal.
pub(super) fn check_window(
    window_id: i64,
    format: SealFormat,
    body: &SealBody,
    now: Option<&WindowContent>,
) -> Vec<Finding> {
    match now {
        Some(now) => explain_change(window_id, format, body, now),
        None => vec![Finding::new(
            FindingKind::Ledger,
            Some(window_id),
            decode_members(&body.members, format)
                .into_iter()
                .map(|m| m.id),
            "the ledger row of this sealed window was deleted",
        )],
    }
}

/// Names what changed in a sealed window: members deleted, inserted or edited, and (version 2) the rows and
/// columns of its other lines; or else, that its ledger row, revisions or rejects changed.
fn explain_change(
    window_id: i64,
    format: SealFormat,
    body: &SealBody,
    now: &WindowContent,
) -> Vec<Finding> {
    let mut out = member_findings(
        window_id,
        &decode_members(&body.members, format),
        &decode_members(&now.members, format),
    );
    if let Some(sealed) = body.lines.as_deref().filter(|_| format >= SealFormat::V2) {
        let changes = crate::store::seal::lines::diff_lines(sealed, &now.lines);
        out.extend(line_findings(
            window_id,
            &changes,
            "sealed in this window",
            "after it was sealed",
        ));
    }
    if out.is_empty() {
        out.push(Finding::new(
            FindingKind::Ledger,
            Some(window_id),
            [],
            "the window's ledger row, revisions or rejects changed after it was sealed",
        ));
    }
    out
}

/// The events deleted, inserted and edited between two sets of members.
fn member_findings(window_id: i64, before: &[Member], after: &[Member]) -> Vec<Finding> {
    let before: BTreeMap<i64, &Member> = before.iter().map(|m| (m.id, m)).collect();
    let after: BTreeMap<i64, &Member> = after.iter().map(|m| (m.id, m)).collect();
    let deleted = before.keys().filter(|id| !after.contains_key(id));
    let inserted = after.keys().filter(|id| !before.contains_key(id));
    let changed = |what: fn(&Member, &Member) -> bool| -> Vec<i64> {
        before
            .iter()
            .filter(|(id, m)| after.get(id).is_some_and(|n| what(m, n)))
            .map(|(id, _)| *id)
            .collect()
    };
    let mut out = Vec::new();
    for (kind, ids, what) in [
        (
            FindingKind::Deleted,
            deleted.copied().collect::<Vec<i64>>(),
            "event(s) sealed in this window are gone",
        ),
        (
            FindingKind::Inserted,
            inserted.copied().collect(),
            "event(s) were filed under this window after it was sealed",
        ),
        (
            FindingKind::Edited,
            changed(|m, n| m.digest != n.digest),
            "event(s) of this window changed, digest included",
        ),
        (
            FindingKind::Edited,
            changed(|m, n| m.digest == n.digest && m.fetched_at != n.fetched_at),
            "event(s) of this window changed after it was sealed: fetched_at",
        ),
    ] {
        if !ids.is_empty() {
            let detail = format!("{} {what}", ids.len());
            out.push(Finding::new(kind, Some(window_id), ids, detail));
        }
    }
    out
}

/// Rows of one kind changed the same way, as a finding assembles them.
#[derive(Default)]
struct Group {
    /// The event ids concerned.
    events: Sample,
    /// The rows' own ids.
    rows: Sample,
}

/// Findings naming the rows and columns that differ between recorded lines and the rows now, one per kind of
/// line and way of differing. `held` says whose rows they are ("sealed in this window"), `after` since when
/// ("after it was sealed").
pub(super) fn line_findings(
    window_id: i64,
    changes: &[LineChange],
    held: &str,
    after: &str,
) -> Vec<Finding> {
    let mut groups: BTreeMap<(LineKind, &Change), Group> = BTreeMap::new();
    for c in changes {
        let group = groups.entry((c.kind, &c.change)).or_default();
        group.rows.push(c.row);
        if let Some(id) = c.event_id {
            group.events.push(id);
        }
    }
    groups
        .into_iter()
        .map(|((kind, change), group)| {
            let finding = match (change, kind) {
                (Change::Deleted, _) => FindingKind::Deleted,
                (Change::Inserted, _) => FindingKind::Inserted,
                (Change::Columns(_), LineKind::Window | LineKind::Source) => FindingKind::Ledger,
                (Change::Columns(_), LineKind::Event | LineKind::Revision | LineKind::Reject) => {
                    FindingKind::Edited
                }
            };
            let detail = describe(kind, change, &group, held, after);
            Finding::new(finding, Some(window_id), group.events.ids, detail)
        })
        .collect()
}

/// The words of a [`line_findings`] finding.
fn describe(kind: LineKind, change: &Change, group: &Group, held: &str, after: &str) -> String {
    let n = group.rows.count;
    let noun = match kind {
        LineKind::Window => "ledger row(s)",
        LineKind::Event => "event(s)",
        LineKind::Revision => "revision(s)",
        LineKind::Reject => "reject(s)",
        LineKind::Source => "reconcile record(s)",
    };
    let rows = match kind {
        LineKind::Revision | LineKind::Reject | LineKind::Source => {
            let ids: Vec<String> = group.rows.ids.iter().map(i64::to_string).collect();
            let more = if n > IDS_SHOWN { ", ..." } else { "" };
            format!(" (row ids {}{more})", ids.join(", "))
        }
        LineKind::Window | LineKind::Event => String::new(),
    };
    match (change, kind) {
        (Change::Columns(columns), LineKind::Window) => {
            format!(
                "the window's ledger row changed {after}: {}",
                columns.join(", ")
            )
        }
        (Change::Columns(columns), _) => {
            format!(
                "{n} {noun} {held} changed {after}: {}{rows}",
                columns.join(", ")
            )
        }
        (Change::Deleted, _) => format!("{n} {noun} {held} are gone{rows}"),
        (Change::Inserted, _) => format!("{n} {noun} were filed under this window {after}{rows}"),
    }
}
