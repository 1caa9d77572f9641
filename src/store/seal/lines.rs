//! The lines of a canonical description: what each kind of line holds, column by column, and how two sets of
//! lines differ (which rows were deleted, inserted, or changed in which columns). Version 2 seals keep their
//! lines other than events (`seals.lines`), and version 2 prune records keep a window's ledger line and the
//! lines of the events left under it, so that `verify` can name the row and the column that changed.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A kind of line, named by its first element (its tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineKind {
    /// The window fetch's ledger row (`windows`).
    Window,
    /// An event it inserted.
    Event,
    /// A revision it filed.
    Revision,
    /// A reject it filed.
    Reject,
    /// A change at the source a reconcile's fetch found (`source_changes`).
    Source,
}

impl LineKind {
    /// Every kind, in the order a description lists them.
    pub const ALL: [LineKind; 5] = [
        LineKind::Window,
        LineKind::Event,
        LineKind::Revision,
        LineKind::Reject,
        LineKind::Source,
    ];

    /// The line's tag.
    pub const fn tag(self) -> &'static str {
        match self {
            LineKind::Window => "window",
            LineKind::Event => "event",
            LineKind::Revision => "revision",
            LineKind::Reject => "reject",
            LineKind::Source => "source",
        }
    }

    /// The columns a version 2 line holds after its tag, in order (a reject's `raw` is its SHA-256).
    pub const fn columns(self) -> &'static [&'static str] {
        match self {
            LineKind::Window => &[
                "id",
                "run_id",
                "window_start",
                "window_end",
                "category_filter",
                "action_filter",
                "created_from",
                "created_to",
                "status",
                "pages",
                "events_received",
                "events_new",
                "revisions",
                "rejects",
                "out_of_window",
                "started_at",
                "completed_at",
                "error",
            ],
            LineKind::Event => &["id", "digest", "fetched_at"],
            LineKind::Revision => &["id", "event_id", "digest", "fetched_at"],
            LineKind::Reject => &["id", "reason", "raw", "page", "received_at"],
            LineKind::Source => &["id", "event_id", "kind", "detected_at"],
        }
    }

    /// The position (after the tag) of the event id the row concerns, if it concerns one.
    const fn event_id_at(self) -> Option<usize> {
        match self {
            LineKind::Event => Some(0),
            LineKind::Revision | LineKind::Source => Some(1),
            LineKind::Window | LineKind::Reject => None,
        }
    }

    fn from_tag(tag: &str) -> Option<LineKind> {
        LineKind::ALL.into_iter().find(|k| k.tag() == tag)
    }
}

/// How one row differs between two sets of lines.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// In the first set only.
    Deleted,
    /// In the second set only.
    Inserted,
    /// In both, with these columns different.
    Columns(Vec<&'static str>),
}

/// One row that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChange {
    /// Its kind.
    pub kind: LineKind,
    /// Its id (the row's own id; an event's id for an event).
    pub row: i64,
    /// The event it concerns, if any.
    pub event_id: Option<i64>,
    /// How it differs.
    pub change: Change,
}

/// Writes a JSON string: as-is when nothing in it needs escaping (the usual case: hex digests, stored times),
/// else as serde_json writes it, so the bytes are always `serde_json`'s.
pub fn push_json_str(out: &mut String, text: &str) {
    if text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&Value::from(text).to_string());
    } else {
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
}

/// Writes the version 2 line of event `id` into `text` (cleared first): the same bytes as
/// `json!(["event", id, digest, fetched_at])` and a newline.
pub fn event_line_v2(text: &mut String, id: i64, digest: &str, fetched_at: &str) {
    text.clear();
    let _ = write!(text, "[\"event\",{id},");
    push_json_str(text, digest);
    text.push(',');
    push_json_str(text, fetched_at);
    text.push_str("]\n");
}

/// How many of `lines` are of `kind`.
pub fn count_of(lines: &str, kind: LineKind) -> i64 {
    let prefix = format!("[\"{}\",", kind.tag());
    lines.lines().filter(|l| l.starts_with(&prefix)).count() as i64
}

/// The rows of a set of lines, by kind and id; lines that do not parse as a tagged array with an id are left
/// out (a set is only compared once its seal or record is known to be what was hashed).
fn rows(lines: &str) -> BTreeMap<(LineKind, i64), Vec<Value>> {
    lines
        .lines()
        .filter_map(|line| {
            let mut values: Vec<Value> = serde_json::from_str(line).ok()?;
            if values.len() < 2 {
                return None;
            }
            let kind = LineKind::from_tag(values.remove(0).as_str()?)?;
            let id = values.first()?.as_i64()?;
            Some(((kind, id), values))
        })
        .collect()
}

/// The rows that differ between the lines `before` and `now`, by kind and id.
pub fn diff_lines(before: &str, now: &str) -> Vec<LineChange> {
    let (before, now) = (rows(before), rows(now));
    let event_id = |kind: LineKind, values: &[Value]| {
        kind.event_id_at()
            .and_then(|i| values.get(i).and_then(Value::as_i64))
    };
    let mut out = Vec::new();
    for ((kind, row), was) in &before {
        let change = match now.get(&(*kind, *row)) {
            None => Change::Deleted,
            Some(is) if is == was => continue,
            Some(is) => Change::Columns(changed_columns(*kind, was, is)),
        };
        out.push(LineChange {
            kind: *kind,
            row: *row,
            event_id: event_id(*kind, was),
            change,
        });
    }
    for ((kind, row), is) in now.iter().filter(|(key, _)| !before.contains_key(key)) {
        out.push(LineChange {
            kind: *kind,
            row: *row,
            event_id: event_id(*kind, is),
            change: Change::Inserted,
        });
    }
    out.sort_by_key(|c| (c.kind, c.row));
    out
}

/// The names of the columns that differ between two lines of `kind` (a column past the known ones is named
/// by its position).
fn changed_columns(kind: LineKind, was: &[Value], is: &[Value]) -> Vec<&'static str> {
    let names = kind.columns();
    (0..was.len().max(is.len()))
        .filter(|&i| was.get(i) != is.get(i))
        .map(|i| names.get(i).copied().unwrap_or("an unknown column"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(values: &[Value]) -> String {
        values.iter().map(|v| format!("{v}\n")).collect()
    }

    #[test]
    fn json_strings_and_event_lines_are_serde_jsons_bytes() {
        let mut text = String::from("left over");
        for (id, digest, fetched_at) in [
            (1, "ab12", "2024-01-01T00:00:00.000Z"),
            (
                -7,
                "",
                "quote \" backslash \\ newline \n tab \t bell \u{7} é \u{7f}",
            ),
            (i64::MAX, "\"", "x"),
        ] {
            event_line_v2(&mut text, id, digest, fetched_at);
            assert_eq!(
                text,
                format!("{}\n", json!(["event", id, digest, fetched_at])),
                "{fetched_at:?}"
            );
        }
    }

    #[test]
    fn every_kind_names_its_columns_and_tags_round_trip() {
        for kind in LineKind::ALL {
            assert_eq!(LineKind::from_tag(kind.tag()), Some(kind));
            assert_eq!(kind.columns()[0], "id", "{kind:?}");
        }
        assert_eq!(
            LineKind::Window.columns().len(),
            18,
            "every column of windows"
        );
        assert_eq!(LineKind::from_tag("seal"), None);
    }

    #[test]
    fn changed_rows_are_named_with_their_columns() {
        let window = |end: &str, error: Value| {
            json!([
                "window",
                4,
                1,
                "2024-01-01",
                end,
                "",
                "",
                "a",
                "b",
                "complete",
                1,
                2,
                2,
                0,
                0,
                0,
                "s",
                "c",
                error
            ])
        };
        let revision = |id, fetched: &str| json!(["revision", id, 42, "d", fetched]);
        let reject = |id, page| json!(["reject", id, "no id", "h", page, "r"]);
        let source = |id, kind: &str| json!(["source", id, 43, kind, "t"]);
        let before = lines(&[
            window("2024-01-02", Value::Null),
            revision(1, "f"),
            revision(2, "f"),
            reject(3, 1),
            source(5, "deleted"),
        ]);
        let now = lines(&[
            window("2024-01-09", json!("forged")),
            revision(2, "g"),
            reject(3, 2),
            source(5, "late"),
            source(6, "late"),
        ]);
        let change = |kind, row, event_id, change| LineChange {
            kind,
            row,
            event_id,
            change,
        };
        assert_eq!(
            diff_lines(&before, &now),
            [
                change(
                    LineKind::Window,
                    4,
                    None,
                    Change::Columns(vec!["window_end", "error"])
                ),
                change(LineKind::Revision, 1, Some(42), Change::Deleted),
                change(
                    LineKind::Revision,
                    2,
                    Some(42),
                    Change::Columns(vec!["fetched_at"])
                ),
                change(LineKind::Reject, 3, None, Change::Columns(vec!["page"])),
                change(LineKind::Source, 5, Some(43), Change::Columns(vec!["kind"])),
                change(LineKind::Source, 6, Some(43), Change::Inserted),
            ]
        );
        assert_eq!(diff_lines(&before, &before), []);
        assert_eq!(diff_lines("not json\n[\"nothing\",1]\n[]\n", ""), []);
    }

    #[test]
    fn kept_event_lines_name_the_event_and_column() {
        let line = |id, digest: &str, fetched: &str| {
            let mut text = String::new();
            event_line_v2(&mut text, id, digest, fetched);
            text
        };
        let before = [line(7, "a", "f"), line(8, "b", "f"), line(9, "d", "f")].concat();
        let now = [line(7, "a", "g"), line(8, "B", "f")].concat();
        let found: Vec<(i64, Option<i64>, Change)> = diff_lines(&before, &now)
            .into_iter()
            .map(|c| (c.row, c.event_id, c.change))
            .collect();
        assert_eq!(
            found,
            [
                (7, Some(7), Change::Columns(vec!["fetched_at"])),
                (8, Some(8), Change::Columns(vec!["digest"])),
                (9, Some(9), Change::Deleted),
            ]
        );
    }
}
