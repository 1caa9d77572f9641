//! Output for people and scripts: query results as table, CSV, JSON or NDJSON (streamed where the format
//! allows), the `status` report as text, and the one-line run summary. Data goes to stdout; logs, progress
//! and warnings go to stderr.

use crate::model::{ChangeKind, RunKind};
use crate::store::coverage::MissingRange;
use crate::store::read::{Coverage, EventType, IncompleteWindow, Range, RunRow, StatusReport};
use crate::store::retention::Hold;
use crate::store::{Cell, RowSink};
use crate::sync::RunReport;
use crate::time;
use std::io::Write;

/// Table output: collects rows (a table needs every width), then prints them aligned.
pub struct TableSink<W: Write> {
    out: W,
    table: comfy_table::Table,
    rows: u64,
}

impl<W: Write> TableSink<W> {
    /// A table written to `out`.
    pub fn new(out: W) -> Self {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        TableSink {
            out,
            table,
            rows: 0,
        }
    }
}

impl<W: Write> RowSink for TableSink<W> {
    fn columns(&mut self, names: &[String]) -> std::io::Result<()> {
        self.table.set_header(names.iter().map(|n| printable(n)));
        Ok(())
    }

    fn row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        self.table
            .add_row(cells.iter().map(|c| printable(&cell_text(c))));
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        writeln!(self.out, "{}", self.table)?;
        writeln!(
            self.out,
            "({} row{})",
            self.rows,
            if self.rows == 1 { "" } else { "s" }
        )?;
        self.out.flush()
    }
}

/// CSV output with a header row, streamed.
pub struct CsvSink<W: Write> {
    out: csv::Writer<W>,
}

impl<W: Write> CsvSink<W> {
    /// CSV written to `out`.
    pub fn new(out: W) -> Self {
        CsvSink {
            out: csv::Writer::from_writer(out),
        }
    }
}

impl<W: Write> RowSink for CsvSink<W> {
    fn columns(&mut self, names: &[String]) -> std::io::Result<()> {
        self.out.write_record(names).map_err(std::io::Error::other)
    }

    fn row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        self.out
            .write_record(cells.iter().map(|c| match c {
                Cell::Null => String::new(),
                other => cell_text(other),
            }))
            .map_err(std::io::Error::other)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// JSON output (one array) or NDJSON (one object per line), streamed.
pub struct JsonSink<W: Write> {
    out: W,
    names: Vec<String>,
    lines: bool,
    rows: u64,
}

impl<W: Write> JsonSink<W> {
    /// JSON array (`lines == false`) or NDJSON (`lines == true`) written to `out`.
    pub fn new(out: W, lines: bool) -> Self {
        JsonSink {
            out,
            names: Vec::new(),
            lines,
            rows: 0,
        }
    }
}

impl<W: Write> RowSink for JsonSink<W> {
    fn columns(&mut self, names: &[String]) -> std::io::Result<()> {
        self.names = names.to_vec();
        if !self.lines {
            self.out.write_all(b"[")?;
        }
        Ok(())
    }

    fn row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        let object: serde_json::Map<String, serde_json::Value> = self
            .names
            .iter()
            .cloned()
            .zip(cells.iter().map(cell_json))
            .collect();
        if !self.lines {
            self.out
                .write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
        }
        serde_json::to_writer(&mut self.out, &object)?;
        if self.lines {
            self.out.write_all(b"\n")?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if !self.lines {
            self.out
                .write_all(if self.rows == 0 { b"]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }
}

fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Integer(v) => v.to_string(),
        Cell::Real(v) => v.to_string(),
        Cell::Text(t) => t.clone(),
        Cell::Blob(b) => hex::encode(b),
    }
}

fn cell_json(cell: &Cell) -> serde_json::Value {
    match cell {
        Cell::Null => serde_json::Value::Null,
        Cell::Integer(v) => (*v).into(),
        Cell::Real(v) => {
            serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into)
        }
        Cell::Text(t) => t.clone().into(),
        Cell::Blob(b) => hex::encode(b).into(),
    }
}

/// Makes text safe for a terminal: control characters (escape sequences, CR, LF) are shown escaped, so an
/// event's content can neither forge output lines nor drive the terminal.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Width of the label column of `status` (`Coverage     2024-...`).
const LABEL_WIDTH: usize = 13;

/// Renders `status` for people: one labelled section after another.
pub fn status_text(report: &StatusReport, db: &str) -> String {
    let sections = [
        vec![labelled("Archive", printable(db))],
        report
            .base_url
            .iter()
            .map(|b| labelled("Source", printable(b)))
            .collect(),
        vec![events_line(report)],
        coverage_lines(report),
        gap_lines(&report.coverage.gaps),
        missing_lines(&report.missing),
        filtered_lines(&report.filtered_coverage),
        other_source_lines(&report.other_coverage),
        listed(
            "Pruned",
            report
                .pruned
                .iter()
                .map(|p| format!("{}  (removed by prune, recorded and sealed)", range_text(p))),
        ),
        hold_lines(&report.holds),
        freshness_line(report).into_iter().collect(),
        verification_line(report).into_iter().collect(),
        lateness_lines(&report.lateness),
        count_lines(report),
        failed_window_lines(&report.failed_windows),
        run_lines(&report.runs),
        event_type_lines(&report.event_types),
    ];
    sections
        .concat()
        .into_iter()
        .map(|line| line + "\n")
        .collect()
}

/// How late events arrive, and a warning when a plain sync's lookback misses some (nothing if nothing measured).
fn lateness_lines(l: &crate::store::lateness::Lateness) -> Vec<String> {
    use crate::store::lateness::{ARRIVAL_DAYS, FOUND_LATER_DAYS};
    use crate::time::human_duration;
    let secs = |s: i64| human_duration(chrono::TimeDelta::seconds(s));
    let mut lines = Vec::new();
    if let Some(a) = &l.arrival {
        lines.push(format!(
            "p50 {}, p99 {}, max {} from timestamp to archive ({} events of the last {ARRIVAL_DAYS} days)",
            secs(a.p50_seconds),
            secs(a.p99_seconds),
            secs(a.max_seconds),
            thousands(a.events)
        ));
    }
    if let Some(f) = &l.found_later {
        lines.push(format!(
            "{} found by a later read, up to {} after their range was first fetched (last {FOUND_LATER_DAYS} days)",
            thousands(f.events),
            secs(f.max_seconds)
        ));
    }
    if l.beyond_lookback > 0 {
        lines.push(format!(
            "WARNING: {} arrived later than the lookback ({}): a plain sync misses such events; pass --lookback \
             auto (or longer), or schedule reconcile",
            thousands(l.beyond_lookback),
            secs(l.lookback_seconds.unwrap_or_default())
        ));
    }
    listed("Lateness", lines)
}

/// When the archive was last verified with `verify --record`, and what was found (nothing if never).
fn verification_line(report: &StatusReport) -> Option<String> {
    let v = report.last_verification.as_ref()?;
    let found = match (v.intact, v.complete) {
        (false, _) => format!("{} finding(s): tampering or damage", v.findings),
        (true, false) => "intact; ranges asked for not yet fetched".to_string(),
        (true, true) => "intact and complete".to_string(),
    };
    Some(labelled("Verified", format!("{}  {found}", v.verified_at)))
}

/// One `status` line: the label padded to the label column, then the value.
fn labelled(label: &str, value: impl std::fmt::Display) -> String {
    format!("{label:<LABEL_WIDTH$}{value}")
}

/// Lines under one label: the label on the first, the label column left blank on the others.
fn listed(label: &str, values: impl IntoIterator<Item = String>) -> Vec<String> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| labelled(if i == 0 { label } else { "" }, value))
        .collect()
}

/// `FROM .. TO`.
fn range_text(r: &Range) -> String {
    format!("{} .. {}", r.from, r.to)
}

/// The event count, and the span of their timestamps when there are any.
fn events_line(report: &StatusReport) -> String {
    let span = match (&report.first_event_at, &report.last_event_at) {
        (Some(a), Some(b)) => format!("  ({a} .. {b})"),
        _ => String::new(),
    };
    labelled("Events", format!("{}{span}", thousands(report.events)))
}

/// The unfiltered coverage, or what to run when there is none yet.
fn coverage_lines(report: &StatusReport) -> Vec<String> {
    if !report.coverage.ranges.is_empty() {
        return listed("Coverage", report.coverage.ranges.iter().map(range_text));
    }
    let hint = if report.events == 0 {
        "none yet: run `elevate-archive sync --from DATE`"
    } else {
        "no window complete yet: run `elevate-archive sync` again to finish them"
    };
    vec![labelled("Coverage", hint)]
}

/// The gaps in the unfiltered coverage.
fn gap_lines(gaps: &[Range]) -> Vec<String> {
    if gaps.is_empty() {
        return vec![labelled("Gaps", "none")];
    }
    listed("Gaps", gaps.iter().map(range_text))
}

/// Ranges some sync was asked to fetch and that are not fetched yet.
fn missing_lines(missing: &[MissingRange]) -> Vec<String> {
    listed(
        "Missing",
        missing.iter().map(|m| {
            format!(
                "{} .. {}  not yet fetched from {}{}; the next plain sync fetches it",
                m.from,
                m.to,
                printable(&m.base_url),
                filters_note(&m.category_filter, &m.action_filter)
            )
        }),
    )
}

/// Coverage of sources other than the latest sync's (another base URL).
fn other_source_lines(coverage: &[Coverage]) -> Vec<String> {
    coverage
        .iter()
        .flat_map(|c| {
            let name = printable(&format!(
                "{}{}",
                c.base_url,
                filters_note(&c.category_filter, &c.action_filter)
            ));
            c.ranges
                .iter()
                .map(move |r| labelled("Elsewhere", format!("{}  [{name}]", range_text(r))))
        })
        .collect()
}

/// The windows that ended without their last page, each with why.
fn failed_window_lines(windows: &[IncompleteWindow]) -> Vec<String> {
    windows
        .iter()
        .map(|w| {
            format!(
                "  {} .. {}  {}{}",
                w.from,
                w.to,
                w.status,
                w.error
                    .as_deref()
                    .map(|e| format!(": {}", printable(e)))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// Each range covered by a filtered sync, with its filters.
fn filtered_lines(coverage: &[Coverage]) -> Vec<String> {
    coverage
        .iter()
        .flat_map(|c| {
            let name = printable(&format!(
                "category={} action={}",
                or_any(&c.category_filter),
                or_any(&c.action_filter)
            ));
            c.ranges
                .iter()
                .map(move |r| labelled("Filtered", format!("{}  [{name}]", range_text(r))))
        })
        .collect()
}

/// The legal holds in force.
fn hold_lines(holds: &[Hold]) -> Vec<String> {
    holds
        .iter()
        .map(|h| {
            labelled(
                "Hold",
                format!("#{} {} .. {}  {}", h.id, h.from, h.to, printable(&h.reason)),
            )
        })
        .collect()
}

/// How far the coverage lags behind now, once there is coverage.
fn freshness_line(report: &StatusReport) -> Option<String> {
    let (Some(until), Some(secs)) = (&report.covered_until, report.freshness_seconds) else {
        return None;
    };
    Some(labelled(
        "Freshness",
        format!(
            "covered until {until}, {} behind now",
            time::human_duration(chrono::TimeDelta::seconds(secs))
        ),
    ))
}

/// Incomplete windows, revisions, what reconcile found (if anything), and the rejects by reason.
fn count_lines(report: &StatusReport) -> Vec<String> {
    let mut lines = vec![
        labelled(
            "Incomplete",
            format!(
                "{} window(s) failed or interrupted and not yet re-fetched",
                report.incomplete_windows
            ),
        ),
        labelled(
            "Revisions",
            format!(
                "{} (events changed at the source after archiving)",
                thousands(report.revisions)
            ),
        ),
    ];
    let sc = &report.source_changes;
    if sc.late + sc.changed + sc.deleted > 0 {
        lines.push(labelled(
            "Source",
            format!(
                "reconcile found {} late, {} changed, {} deleted at the source (table source_changes)",
                thousands(sc.late),
                thousands(sc.changed),
                thousands(sc.deleted)
            ),
        ));
    }
    lines.push(labelled("Rejects", thousands(report.rejects)));
    lines.extend(report.reject_reasons.iter().map(|r| {
        labelled(
            "",
            format!("{:>8}  {}", thousands(r.count), printable(&r.reason)),
        )
    }));
    lines
}

/// The recent runs, newest first, under a heading (nothing when there are none).
fn run_lines(runs: &[RunRow]) -> Vec<String> {
    if runs.is_empty() {
        return Vec::new();
    }
    std::iter::once(labelled("Runs", "(newest first)"))
        .chain(runs.iter().map(run_line))
        .collect()
}

/// One run: kind (unless a sync) and status, range, windows and counts, and its error on a line of its own.
fn run_line(r: &RunRow) -> String {
    let what = match r.kind {
        RunKind::Sync => r.status.to_string(),
        RunKind::Reconcile => format!("{} {}", r.kind, r.status),
    };
    let error = r
        .error
        .as_deref()
        .map(|e| format!("\n         error: {}", printable(e)))
        .unwrap_or_default();
    format!(
        "  #{:<4} {what:<11} {}  {} .. {}  windows {}/{}  new {}  received {}  revisions {}  rejects {}{error}",
        r.id,
        r.started_at,
        r.range_from,
        r.range_to,
        r.windows_completed,
        r.windows_planned,
        thousands(r.events_new),
        thousands(r.events_received),
        r.revisions,
        r.rejects,
    )
}

/// The event-type catalogue under a heading (nothing when it is empty).
fn event_type_lines(types: &[EventType]) -> Vec<String> {
    if types.is_empty() {
        return Vec::new();
    }
    let heading = labelled("Event types", "(most recently first seen first)");
    std::iter::once(heading)
        .chain(types.iter().map(|t| {
            format!(
                "  {:<45} {:>10}  first {}  archived since {}",
                printable(&format!("{}/{}", t.category, t.action)),
                thousands(t.events),
                t.first_event_at,
                t.first_archived_at
            )
        }))
        .collect()
}

fn or_any(filter: &str) -> &str {
    if filter.is_empty() { "*" } else { filter }
}

/// Renders `verify`'s report for people.
pub fn verify_text(r: &crate::store::verify::VerifyReport) -> String {
    let mut s = String::new();
    if r.ok() {
        s.push_str(&format!(
            "verify ok: {} events, {} seals, digests and chain intact, everything asked for is fetched\n",
            thousands(r.events as i64),
            r.seals
        ));
    } else if r.intact() {
        s.push_str(&format!(
            "verify INCOMPLETE: intact ({} events, {} seals checked), but {} range(s) asked for are not yet \
             fetched; the next plain `elevate-archive sync` fetches them\n",
            thousands(r.events as i64),
            r.seals,
            r.unfetched.len()
        ));
    } else {
        s.push_str(&format!(
            "verify FAILED: {} finding(s), {} range(s) not yet fetched ({} events, {} seals checked)\n",
            r.findings.len(),
            r.unfetched.len(),
            thousands(r.events as i64),
            r.seals
        ));
    }
    for f in &r.findings {
        let window = f
            .window_id
            .map(|w| format!("window {w}: "))
            .unwrap_or_default();
        let ids = if f.ids.is_empty() {
            String::new()
        } else {
            format!(
                " (ids {})",
                f.ids
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        s.push_str(&format!(
            "  {:<9} {window}{}{ids}\n",
            f.kind,
            printable(&f.detail)
        ));
    }
    for m in &r.unfetched {
        s.push_str(&format!(
            "  not yet fetched  {} .. {} from {}{}\n",
            m.from,
            m.to,
            m.base_url,
            filters_note(&m.category_filter, &m.action_filter)
        ));
    }
    for p in &r.pruned {
        s.push_str(&format!(
            "  pruned    {} .. {} was removed by prune (recorded and sealed; not a gap)\n",
            p.from, p.to
        ));
    }
    if let Some(seal) = r.anchor_found_at {
        s.push_str(&format!(
            "anchor found at seal {seal}: the chain up to it is unchanged\n"
        ));
    }
    if r.windows_in_progress > 0 {
        s.push_str(&format!(
            "{} window fetch(es) still in progress (not sealed yet)\n",
            r.windows_in_progress
        ));
    }
    s.push_str(&format!(
        "chain head {}\nkeep it outside this file and pass it later as: elevate-archive verify --anchor {}\n",
        r.head, r.head
    ));
    s
}

/// " with category X, action Y" for filtered sources, nothing for unfiltered ones.
fn filters_note(category: &str, action: &str) -> String {
    let mut parts = Vec::new();
    if !category.is_empty() {
        parts.push(format!("category {}", printable(category)));
    }
    if !action.is_empty() {
        parts.push(format!("action {}", printable(action)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" with {}", parts.join(", "))
    }
}

/// Renders what `prune` did (or, for a dry run, would do).
pub fn prune_text(p: &crate::store::retention::PrunePlan, dry_run: bool) -> String {
    use crate::store::retention::KeptBecause;
    let mut s = String::new();
    let verb = if dry_run { "would remove" } else { "removed" };
    if p.windows.is_empty() {
        s.push_str(&format!(
            "prune{}: nothing to remove: no unheld window fetch ended at or before {}\n",
            if dry_run { " --dry-run" } else { "" },
            p.cutoff
        ));
    } else {
        s.push_str(&format!(
            "prune{}: {verb} {} window fetch(es) ended at or before {}: {} events, {} revisions, {} rejects\n",
            if dry_run { " --dry-run" } else { "" },
            p.windows.len(),
            p.cutoff,
            thousands(p.events),
            thousands(p.revisions),
            thousands(p.rejects)
        ));
        for r in &p.ranges {
            s.push_str(&format!("  {} .. {}\n", r.from, r.to));
        }
    }
    for (reason, n) in &p.kept {
        let why = match reason {
            KeptBecause::Held => "under a legal hold",
        };
        s.push_str(&format!("kept {n} window fetch(es) {why}\n"));
    }
    match (&p.prune_id, &p.chain_head) {
        (Some(id), Some(head)) => s.push_str(&format!(
            "recorded as prune {id} and sealed; chain head {head}\n"
        )),
        _ if dry_run => s.push_str("nothing was changed (dry run)\n"),
        _ => {}
    }
    s
}

/// Renders what `reconcile` found for people.
pub fn reconcile_text(r: &crate::sync::reconcile::ReconcileReport) -> String {
    let mut s = String::new();
    let ids = |kind: ChangeKind| {
        r.ids
            .get(&kind)
            .filter(|ids| !ids.is_empty())
            .map(|ids| {
                format!(
                    " (ids {})",
                    ids.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .unwrap_or_default()
    };
    s.push_str(&format!(
        "reconcile {}: {} window(s) of {} .. {} read again, {} events at the source\n",
        if r.agrees { "ok" } else { "found differences" },
        r.run.windows_planned,
        r.run.from,
        r.run.to,
        thousands(r.run.totals.events_received as i64)
    ));
    s.push_str(&format!(
        "  late arrivals          {:>8}  archived now{}\n",
        thousands(r.late as i64),
        ids(ChangeKind::Late)
    ));
    s.push_str(&format!(
        "  changed at the source  {:>8}  kept as revisions beside the first version{}\n",
        thousands(r.changed as i64),
        ids(ChangeKind::Changed)
    ));
    s.push_str(&format!(
        "  deleted at the source  {:>8}  kept in the archive, {} newly recorded{}\n",
        thousands(r.deleted as i64),
        thousands(r.deleted_newly_recorded as i64),
        ids(ChangeKind::Deleted)
    ));
    if r.agrees {
        s.push_str("the source agrees with the archive\n");
    } else {
        s.push_str(&format!(
            "the source disagrees with the archive; every difference is in the table source_changes:\n  \
             elevate-archive query \"{}\"\n",
            crate::store::examples::SOURCE_CHANGES
        ));
    }
    s
}

/// Renders the one-line summary of a run.
pub fn summary_line(r: &RunReport) -> String {
    let t = &r.totals;
    let mut text = format!(
        "sync {}: {} windows of {} completed, {} pages, {} events received ({} new, {} unchanged, {} revisions, {} rejected, {} outside their window) in {:.1}s ({:.0} events/s); {} requests, {} retries",
        r.status,
        t.windows_completed,
        r.windows_planned,
        t.pages,
        thousands(t.events_received as i64),
        thousands(t.events_new as i64),
        thousands(t.events_unchanged as i64),
        t.revisions,
        t.rejects,
        t.out_of_window,
        r.elapsed_seconds,
        r.events_per_second,
        r.requests,
        r.retries,
    );
    if !r.failed_windows.is_empty() {
        text.push_str(&format!(
            "; {} window(s) failed (fetched again by the next plain sync)",
            r.failed_windows.len()
        ));
    }
    if let Some(served) = r.served_fewer {
        text.push_str(&format!(
            "; the server served {served} items for a full page: every page read until an empty one"
        ));
    }
    if r.windows_planned == 0 {
        text = format!(
            "sync {}: nothing to fetch, the archive already covers {} .. {}",
            r.status, r.from, r.to
        );
    }
    text
}

/// Formats an integer with thousands separators.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Renders the Merkle log's check (`verify --checkpoint`) for people.
pub fn log_text(r: &crate::store::verify::log::LogReport) -> String {
    let mut s = if r.holds() {
        format!(
            "log ok: {} leaves, root {}, a consistent extension of every checkpoint below\n",
            thousands(r.size as i64),
            r.root
        )
    } else {
        format!(
            "log TAMPERED: {} finding(s) ({} leaves, root {})\n",
            r.findings.len(),
            thousands(r.size as i64),
            r.root
        )
    };
    for f in &r.findings {
        let kind = serde_json::to_value(f.kind).unwrap_or_default();
        s.push_str(&format!(
            "  {:<14} {}\n",
            kind.as_str().unwrap_or_default(),
            printable(&f.detail)
        ));
    }
    for c in &r.checkpoints {
        s.push_str(&format!(
            "  {}: {} leaves, {}, {}\n",
            c.label,
            thousands(c.size as i64),
            if c.trusted {
                "signed by a trusted key"
            } else {
                "not signed by a trusted key"
            },
            if c.holds { "holds" } else { "DOES NOT HOLD" }
        ));
    }
    match &r.unsigned_tail {
        None => s.push_str("  no unsigned tail: a trusted checkpoint covers the whole log\n"),
        Some(t) => s.push_str(&format!("  {}\n", tail_warning(t))),
    }
    s
}

/// One line naming the unsigned tail by kind, and its prunes.
pub fn tail_warning(t: &crate::store::verify::log::UnsignedTail) -> String {
    let kinds = t
        .by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let prunes = if t.prunes.is_empty() {
        String::new()
    } else {
        format!(
            "; it holds prune(s) {}: check they were yours (`elevate-archive status`)",
            t.prunes
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "unsigned tail: leaves {}..{} were appended after the newest checkpoint signed by a trusted key ({kinds}){prunes}",
        t.from, t.to
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(sink: &mut dyn RowSink) {
        sink.columns(&["id".into(), "name".into(), "score".into()])
            .unwrap();
        sink.row(&[
            Cell::Integer(1),
            Cell::Text("a,\"b\"".into()),
            Cell::Real(1.5),
        ])
        .unwrap();
        sink.row(&[Cell::Integer(2), Cell::Null, Cell::Blob(vec![0xab, 0x01])])
            .unwrap();
        sink.finish().unwrap();
    }

    #[test]
    fn formats() {
        let mut csv = Vec::new();
        render(&mut CsvSink::new(&mut csv));
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "id,name,score\n1,\"a,\"\"b\"\"\",1.5\n2,,ab01\n"
        );
        let mut json = Vec::new();
        render(&mut JsonSink::new(&mut json, false));
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!([{"id":1,"name":"a,\"b\"","score":1.5},{"id":2,"name":null,"score":"ab01"}])
        );
        let mut nd = Vec::new();
        render(&mut JsonSink::new(&mut nd, true));
        let text = String::from_utf8(nd).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"id":1,"name":"a,\"b\"","score":1.5}"#
        );
        let mut table = Vec::new();
        render(&mut TableSink::new(&mut table));
        let text = String::from_utf8(table).unwrap();
        assert!(
            text.contains("a,\"b\"") && text.contains("NULL") && text.ends_with("(2 rows)\n"),
            "{text}"
        );
    }

    #[test]
    fn empty_json_is_an_empty_array() {
        let mut json = Vec::new();
        let mut sink = JsonSink::new(&mut json, false);
        sink.columns(&["x".into()]).unwrap();
        sink.finish().unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).unwrap(),
            serde_json::json!([])
        );
    }

    #[test]
    fn terminal_injection_is_neutralised() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(
            printable("a\nERROR forged\x1b[31m"),
            "a\\nERROR forged\\u{1b}[31m"
        );
    }

    #[test]
    fn thousands_separators() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234567, "1,234,567"),
            (-1000, "-1,000"),
        ] {
            assert_eq!(thousands(n), want);
        }
    }

    fn range(from: &str, to: &str) -> crate::store::read::Range {
        crate::store::read::Range {
            from: from.into(),
            to: to.into(),
        }
    }

    fn run(
        id: i64,
        kind: RunKind,
        status: crate::model::RunStatus,
        error: Option<&str>,
    ) -> crate::store::read::RunRow {
        crate::store::read::RunRow {
            id,
            started_at: "2024-03-01T00:00:00.000Z".into(),
            finished_at: Some("2024-03-01T00:01:00.000Z".into()),
            kind,
            status,
            range_from: "2024-01-01T00:00:00.000Z".into(),
            range_to: "2024-01-03T00:00:00.000Z".into(),
            windows_completed: 1,
            windows_planned: 2,
            events_new: 12_345,
            events_received: 1_234_567,
            revisions: 3,
            rejects: 4,
            out_of_window: 0,
            error: error.map(String::from),
        }
    }

    fn held() -> Hold {
        Hold {
            id: 1,
            from: "2023-01-01T00:00:00.000Z".into(),
            to: "2023-06-01T00:00:00.000Z".into(),
            reason: "case 42\x1b[31m".into(),
            created_at: "2024-03-01T00:00:00.000Z".into(),
            removed_at: None,
        }
    }

    fn elsewhere() -> Coverage {
        Coverage {
            base_url: "https://sandbox.example/v1".into(),
            category_filter: String::new(),
            action_filter: String::new(),
            ranges: vec![range(
                "2023-06-01T00:00:00.000Z",
                "2023-06-02T00:00:00.000Z",
            )],
            gaps: vec![],
        }
    }

    fn missing() -> MissingRange {
        MissingRange {
            base_url: "https://rest.elevatebilling.com/v1".into(),
            category_filter: String::new(),
            action_filter: String::new(),
            from: "2024-01-02T12:00:00.000Z".into(),
            to: "2024-01-02T13:00:00.000Z".into(),
        }
    }

    fn failed() -> IncompleteWindow {
        IncompleteWindow {
            base_url: "https://rest.elevatebilling.com/v1".into(),
            category_filter: String::new(),
            action_filter: String::new(),
            from: "2024-01-02T12:00:00.000Z".into(),
            to: "2024-01-02T13:00:00.000Z".into(),
            status: crate::model::WindowStatus::Failed,
            error: Some("gave up after 8 attempts".into()),
        }
    }

    /// A report with every section filled, and text that needs escaping where events' content is shown.
    fn full_report() -> StatusReport {
        use crate::store::read::{Coverage, EventType, RejectReason, SourceChanges};
        StatusReport {
            events: 1_234_567,
            first_event_at: Some("2024-01-01T00:00:01.000Z".into()),
            last_event_at: Some("2024-01-04T23:59:59.000Z".into()),
            coverage: Coverage {
                base_url: "https://rest.elevatebilling.com/v1".into(),
                category_filter: String::new(),
                action_filter: String::new(),
                ranges: vec![
                    range("2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z"),
                    range("2024-01-03T00:00:00.000Z", "2024-01-05T00:00:00.000Z"),
                ],
                gaps: vec![
                    range("2024-01-02T00:00:00.000Z", "2024-01-02T12:00:00.000Z"),
                    range("2024-01-02T13:00:00.000Z", "2024-01-03T00:00:00.000Z"),
                ],
            },
            filtered_coverage: vec![Coverage {
                base_url: "https://rest.elevatebilling.com/v1".into(),
                category_filter: "authentication".into(),
                action_filter: String::new(),
                ranges: vec![
                    range("2024-02-01T00:00:00.000Z", "2024-02-02T00:00:00.000Z"),
                    range("2024-02-03T00:00:00.000Z", "2024-02-04T00:00:00.000Z"),
                ],
                gaps: vec![],
            }],
            base_url: Some("https://rest.elevatebilling.com/v1".into()),
            other_coverage: vec![elsewhere()],
            missing: vec![missing()],
            covered_until: Some("2024-01-05T00:00:00.000Z".into()),
            freshness_seconds: Some(3 * 3600 + 12 * 60 + 5),
            incomplete_windows: 2,
            failed_windows: vec![failed()],
            revisions: 1_000,
            rejects: 7,
            reject_reasons: vec![
                RejectReason {
                    reason: "no id".into(),
                    count: 5_000,
                },
                RejectReason {
                    reason: "bad\ntimestamp".into(),
                    count: 2,
                },
            ],
            pruned: vec![
                range("2023-01-01T00:00:00.000Z", "2023-02-01T00:00:00.000Z"),
                range("2023-03-01T00:00:00.000Z", "2023-04-01T00:00:00.000Z"),
            ],
            holds: vec![held()],
            source_changes: SourceChanges {
                late: 1,
                changed: 2_000,
                deleted: 0,
            },
            runs: vec![
                run(3, RunKind::Reconcile, crate::model::RunStatus::Ok, None),
                run(
                    2,
                    RunKind::Sync,
                    crate::model::RunStatus::Failed,
                    Some("HTTP 500\nforged line"),
                ),
            ],
            event_types: vec![EventType {
                category: "authentication".into(),
                action: "user-login-success".into(),
                events: 1_000_000,
                first_event_at: "2024-01-01T00:00:01.000Z".into(),
                last_event_at: "2024-01-04T23:59:59.000Z".into(),
                first_archived_at: "2024-03-01T00:00:10.000Z".into(),
            }],
            last_verification: None,
            lateness: Default::default(),
        }
    }

    /// A report of an archive that holds `events` and has no complete window.
    fn empty_report(events: i64) -> StatusReport {
        use crate::store::read::{Coverage, SourceChanges};
        StatusReport {
            events,
            first_event_at: None,
            last_event_at: None,
            coverage: Coverage {
                base_url: "https://rest.elevatebilling.com/v1".into(),
                category_filter: String::new(),
                action_filter: String::new(),
                ranges: vec![],
                gaps: vec![],
            },
            filtered_coverage: vec![],
            base_url: None,
            other_coverage: vec![],
            missing: vec![],
            covered_until: None,
            freshness_seconds: None,
            incomplete_windows: 0,
            failed_windows: vec![],
            revisions: 0,
            rejects: 0,
            reject_reasons: vec![],
            pruned: vec![],
            holds: vec![],
            source_changes: SourceChanges::default(),
            runs: vec![],
            event_types: vec![],
            last_verification: None,
            lateness: Default::default(),
        }
    }

    /// `status` of [`full_report`], as printed before `status_text` was split up.
    const STATUS_FULL: &str = concat!(
        "Archive      archive\\u{7}.db\n",
        "Source       https://rest.elevatebilling.com/v1\n",
        "Events       1,234,567  (2024-01-01T00:00:01.000Z .. 2024-01-04T23:59:59.000Z)\n",
        "Coverage     2024-01-01T00:00:00.000Z .. 2024-01-02T00:00:00.000Z\n",
        "             2024-01-03T00:00:00.000Z .. 2024-01-05T00:00:00.000Z\n",
        "Gaps         2024-01-02T00:00:00.000Z .. 2024-01-02T12:00:00.000Z\n",
        "             2024-01-02T13:00:00.000Z .. 2024-01-03T00:00:00.000Z\n",
        "Missing      2024-01-02T12:00:00.000Z .. 2024-01-02T13:00:00.000Z  not yet fetched from https://rest.elevatebilling.com/v1; the next plain sync fetches it\n",
        "Filtered     2024-02-01T00:00:00.000Z .. 2024-02-02T00:00:00.000Z  [category=authentication action=*]\n",
        "Filtered     2024-02-03T00:00:00.000Z .. 2024-02-04T00:00:00.000Z  [category=authentication action=*]\n",
        "Elsewhere    2023-06-01T00:00:00.000Z .. 2023-06-02T00:00:00.000Z  [https://sandbox.example/v1]\n",
        "Pruned       2023-01-01T00:00:00.000Z .. 2023-02-01T00:00:00.000Z  (removed by prune, recorded and sealed)\n",
        "             2023-03-01T00:00:00.000Z .. 2023-04-01T00:00:00.000Z  (removed by prune, recorded and sealed)\n",
        "Hold         #1 2023-01-01T00:00:00.000Z .. 2023-06-01T00:00:00.000Z  case 42\\u{1b}[31m\n",
        "Freshness    covered until 2024-01-05T00:00:00.000Z, 3h behind now\n",
        "Incomplete   2 window(s) failed or interrupted and not yet re-fetched\n",
        "Revisions    1,000 (events changed at the source after archiving)\n",
        "Source       reconcile found 1 late, 2,000 changed, 0 deleted at the source (table source_changes)\n",
        "Rejects      7\n",
        "                5,000  no id\n",
        "                    2  bad\\ntimestamp\n",
        "  2024-01-02T12:00:00.000Z .. 2024-01-02T13:00:00.000Z  failed: gave up after 8 attempts\n",
        "Runs         (newest first)\n",
        "  #3    reconcile ok 2024-03-01T00:00:00.000Z  2024-01-01T00:00:00.000Z .. 2024-01-03T00:00:00.000Z  windows 1/2  new 12,345  received 1,234,567  revisions 3  rejects 4\n",
        "  #2    failed      2024-03-01T00:00:00.000Z  2024-01-01T00:00:00.000Z .. 2024-01-03T00:00:00.000Z  windows 1/2  new 12,345  received 1,234,567  revisions 3  rejects 4\n",
        "         error: HTTP 500\\nforged line\n",
        "Event types  (most recently first seen first)\n",
        "  authentication/user-login-success              1,000,000  first 2024-01-01T00:00:01.000Z  archived since 2024-03-01T00:00:10.000Z\n",
    );

    /// `status` of an archive that holds nothing yet.
    const STATUS_EMPTY: &str = concat!(
        "Archive      empty.db\n",
        "Events       0\n",
        "Coverage     none yet: run `elevate-archive sync --from DATE`\n",
        "Gaps         none\n",
        "Incomplete   0 window(s) failed or interrupted and not yet re-fetched\n",
        "Revisions    0 (events changed at the source after archiving)\n",
        "Rejects      0\n",
    );

    /// `status` of an archive with events but no complete window.
    const STATUS_STARTED: &str = concat!(
        "Archive      started.db\n",
        "Events       10\n",
        "Coverage     no window complete yet: run `elevate-archive sync` again to finish them\n",
        "Gaps         none\n",
        "Incomplete   0 window(s) failed or interrupted and not yet re-fetched\n",
        "Revisions    0 (events changed at the source after archiving)\n",
        "Rejects      0\n",
    );

    #[test]
    fn status_text_is_pinned() {
        let cases = [
            (full_report(), "archive\x07.db", STATUS_FULL),
            (empty_report(0), "empty.db", STATUS_EMPTY),
            (empty_report(10), "started.db", STATUS_STARTED),
        ];
        for (report, db, want) in cases {
            assert_eq!(status_text(&report, db), want, "{db}");
        }
    }
}
