//! `sync --metrics-file`: the run's figures and the archive's state in the Prometheus text exposition format
//! (version 0.0.4), for node_exporter's textfile collector. Every metric is a gauge named `elevate_archive_*`
//! and labelled with the archive's path, so that several archives on one host do not collide. Encoded by the
//! Prometheus project's own client library; written atomically (a collector never reads half a file).

use crate::atomic::AtomicFile;
use crate::store::read::StatusReport;
use crate::sync::RunReport;
use crate::time::{self, Timestamp};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicU64;

/// One gauge: name (after the prefix), help, value.
type Figure = (&'static str, &'static str, f64);

/// The run's figures: how it ended and what it did.
fn run_figures(run: &RunReport, exit_code: u8, ended: Timestamp) -> Vec<Figure> {
    let t = &run.totals;
    vec![
        (
            "last_run_exit_code",
            "Exit code of the last sync (0: success; see the README's table).",
            f64::from(exit_code),
        ),
        (
            "last_run_success",
            "1 if the last sync exited 0, else 0.",
            f64::from(u8::from(exit_code == 0)),
        ),
        (
            "last_run_timestamp_seconds",
            "When the last sync ended, Unix time.",
            ended.timestamp() as f64,
        ),
        (
            "last_run_duration_seconds",
            "Wall time of the last sync.",
            run.elapsed_seconds,
        ),
        (
            "last_run_windows_planned",
            "Windows the last sync planned.",
            run.windows_planned as f64,
        ),
        (
            "last_run_windows_completed",
            "Windows the last sync completed.",
            t.windows_completed as f64,
        ),
        (
            "last_run_windows_failed",
            "Windows that failed in the last sync (the next plain sync fetches them).",
            run.failed_windows.len() as f64,
        ),
        (
            "last_run_events_received",
            "Events the server sent in the last sync.",
            t.events_received as f64,
        ),
        (
            "last_run_events_new",
            "Events the last sync archived for the first time.",
            t.events_new as f64,
        ),
        (
            "last_run_revisions",
            "Changed events the last sync kept as revisions.",
            t.revisions as f64,
        ),
        (
            "last_run_rejects",
            "Items the last sync could not archive.",
            t.rejects as f64,
        ),
        (
            "last_run_requests",
            "HTTP requests the last sync sent, retries included.",
            run.requests as f64,
        ),
        (
            "last_run_retries",
            "Retries in the last sync.",
            run.retries as f64,
        ),
        (
            "last_run_throttled",
            "429 answers in the last sync.",
            run.throttled as f64,
        ),
    ]
}

/// The archive's state after the run.
fn archive_figures(status: &StatusReport) -> Vec<Figure> {
    let covered_until = status
        .covered_until
        .as_deref()
        .and_then(time::from_stored)
        .map_or(f64::NAN, |t| t.timestamp() as f64);
    let verification = status.last_verification.as_ref();
    let verified_at = verification
        .and_then(|v| time::from_stored(&v.verified_at))
        .map_or(f64::NAN, |t| t.timestamp() as f64);
    vec![
        ("events", "Events the archive holds.", status.events as f64),
        (
            "revisions",
            "Revisions the archive holds.",
            status.revisions as f64,
        ),
        (
            "rejects",
            "Rejected items the archive holds.",
            status.rejects as f64,
        ),
        (
            "covered_until_timestamp_seconds",
            "End of the archive's unfiltered coverage, Unix time (NaN: none).",
            covered_until,
        ),
        (
            "freshness_seconds",
            "Seconds between the end of coverage and the end of the last sync (NaN: none).",
            status.freshness_seconds.map_or(f64::NAN, |s| s as f64),
        ),
        (
            "missing_ranges",
            "Ranges asked for but not fetched yet.",
            status.missing.len() as f64,
        ),
        (
            "incomplete_windows",
            "Windows failed or interrupted and not fetched again yet.",
            status.incomplete_windows as f64,
        ),
        ("holds", "Legal holds in force.", status.holds.len() as f64),
        (
            "last_verify_timestamp_seconds",
            "When `verify --record` last ran, Unix time (NaN: never).",
            verified_at,
        ),
        (
            "last_verify_intact",
            "1 if the last recorded verification found no tampering or damage (NaN: never).",
            verification.map_or(f64::NAN, |v| f64::from(u8::from(v.intact))),
        ),
    ]
}

/// The exposition text for a run of archive `archive` that ended at `ended` with `exit_code`, and the
/// archive's state then (`None` if it could not be read).
pub fn render(
    archive: &str,
    run: &RunReport,
    exit_code: u8,
    status: Option<&StatusReport>,
    ended: Timestamp,
) -> String {
    let mut registry = Registry::with_prefix_and_labels(
        "elevate_archive",
        [("archive".into(), archive.to_string().into())].into_iter(),
    );
    let mut figures = run_figures(run, exit_code, ended);
    figures.extend(status.map(archive_figures).unwrap_or_default());
    for (name, help, value) in figures {
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(value);
        registry.register(name, help, gauge);
    }
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

/// Writes `text` to `path` atomically, readable by the collector (mode 0644: it holds figures, no secrets).
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = AtomicFile::create_with_mode(path, 0o644)?;
    file.write_all(text.as_bytes())?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_is_a_documented_gauge_with_the_archive_label() {
        let now = time::parse_time_arg("2024-06-01T12:00:00Z").unwrap();
        let run = RunReport {
            run_id: 1,
            status: crate::model::RunStatus::Ok,
            from: "a".into(),
            to: "b".into(),
            windows_planned: 3,
            totals: crate::store::write::PageTotals {
                windows_completed: 3,
                events_received: 10,
                events_new: 9,
                ..Default::default()
            },
            requests: 4,
            retries: 0,
            throttled: 0,
            token_renewals: 1,
            elapsed_seconds: 1.5,
            events_per_second: 6.6,
            error: None,
            chain_head: None,
            failed_windows: vec![],
            served_fewer: None,
            pruned_skipped: 0,
            paging_shifts: 0,
        };
        let status = crate::store::read::assemble(Default::default(), now);
        let text = render("/var/lib/a \"b\".db", &run, 0, Some(&status), now);
        let readme = include_str!("../README.md");
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 24, "{text}");
        for sample in samples {
            let name = sample.split('{').next().unwrap();
            assert!(name.starts_with("elevate_archive_"), "{sample}");
            assert!(
                sample.contains(r#"{archive="/var/lib/a \"b\".db"}"#),
                "{sample}"
            );
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name}");
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is in the README"
            );
        }
        assert!(
            text.contains(
                "elevate_archive_last_run_success{archive=\"/var/lib/a \\\"b\\\".db\"} 1"
            )
        );
        assert!(text.contains("elevate_archive_covered_until_timestamp_seconds{"));
        assert!(text.contains("} NaN\n"), "no coverage is NaN");
    }
}
