//! The mirror's decisions, pure and table-tested: where a destination stands against the ledger
//! ([`resume`]), what a run writes and drops ([`plan`]), and what `export --check` finds ([`compare`]).

use super::manifest::MirrorManifest;
use crate::store::mirror::{MirrorObject, MirrorRun, PendingSeal};
use std::collections::{BTreeMap, BTreeSet};

/// Where a destination stands against the archive's ledger, before a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Never mirrored to, and nothing there: a first run.
    Fresh,
    /// The destination's manifest is the one the ledger's last run committed.
    InSync,
    /// The destination's manifest is one run ahead of the ledger: the previous run committed its manifest and
    /// was stopped before the ledger; the ledger takes that run from the manifest.
    RollForward,
    /// The destination and the ledger disagree; nothing is written. The reason says how.
    Diverged(String),
}

/// Decides where a destination stands, from the ledger's last run and the destination's manifest (with the
/// SHA-256 of its bytes), if any.
pub fn resume(last: Option<&MirrorRun>, manifest: Option<(&MirrorManifest, &str)>) -> Resume {
    match (last, manifest) {
        (None, None) => Resume::Fresh,
        (None, Some((m, _))) => Resume::Diverged(format!(
            "it holds a mirror (export run {}) that this archive has no record of",
            m.export_run
        )),
        (Some(last), None) => Resume::Diverged(format!(
            "its manifest is gone, but this archive recorded export run {} there",
            last.number
        )),
        (Some(last), Some((m, sha))) => {
            if m.export_run == last.number {
                if sha == last.manifest_sha256 {
                    Resume::InSync
                } else {
                    Resume::Diverged(format!(
                        "its manifest (export run {}) is not the one this archive recorded",
                        m.export_run
                    ))
                }
            } else if m.export_run == last.number + 1 && m.after_seal == last.through_seal {
                Resume::RollForward
            } else {
                Resume::Diverged(format!(
                    "its manifest is export run {} (after seal {}), this archive's last is run {} (through seal {})",
                    m.export_run, m.after_seal, last.number, last.through_seal
                ))
            }
        }
    }
}

/// Whether `key` is named as the mirror names its objects:
/// `events|revisions/date=YYYY-MM-DD/part-RRRRRR-SSSSS-NNNNNNNN.parquet` (run, sequence, hex nonce).
pub fn is_mirror_object(key: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let Some((table, rest)) = key.split_once('/') else {
        return false;
    };
    let Some((day, file)) = rest.split_once('/') else {
        return false;
    };
    let date_ok = day.strip_prefix("date=").is_some_and(|d| {
        let p: Vec<&str> = d.split('-').collect();
        p.len() == 3 && digits(p[0], 4) && digits(p[1], 2) && digits(p[2], 2)
    });
    let file_ok = file
        .strip_prefix("part-")
        .and_then(|f| f.strip_suffix(".parquet"))
        .is_some_and(|f| {
            let p: Vec<&str> = f.split('-').collect();
            p.len() == 3
                && digits(p[0], 6)
                && digits(p[1], 5)
                && p[2].len() == 8
                && p[2].bytes().all(|b| b.is_ascii_hexdigit())
        });
    matches!(table, "events" | "revisions") && date_ok && file_ok
}

/// What the sweep at the start of a run does with the objects under `events/` and `revisions/` that the
/// manifest does not list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Named as the mirror names its objects: what a stopped run left; deleted.
    pub delete: Vec<String>,
    /// Named otherwise: not the mirror's, never deleted (`export --check` names them).
    pub foreign: Vec<String>,
}

/// Sorts the unlisted objects (`unlisted`) into the mirror's leftovers and objects it did not write.
pub fn sweep(unlisted: &[String]) -> Sweep {
    let (delete, foreign) = unlisted.iter().cloned().partition(|k| is_mirror_object(k));
    Sweep { delete, foreign }
}

/// What a run does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Days rewritten whole from the archive (a prune took rows from them): their live objects are dropped,
    /// and the day's rows written again (none: no object).
    pub rewrite: BTreeSet<String>,
    /// Whether window fetches were sealed: their events are appended as new objects (except on days rewritten,
    /// which hold them already).
    pub append: bool,
}

/// Plans a run from the seals pending and the days the destination holds objects of.
pub fn plan(pending: &[PendingSeal], live_days: &BTreeSet<String>) -> Plan {
    let mut plan = Plan::default();
    for seal in pending {
        match seal {
            PendingSeal::Window => plan.append = true,
            PendingSeal::Prune { ranges } => {
                for (from, to) in ranges {
                    let (from, to) = (day(from), day(to));
                    plan.rewrite.extend(live_days.range(from..=to).cloned());
                }
            }
        }
    }
    plan
}

/// The day (`YYYY-MM-DD`) of a stored timestamp (text order is time order).
fn day(stored: &str) -> String {
    stored.chars().take(10).collect()
}

/// What `export --check` finds wrong with one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Problem {
    /// The ledger says it is there; it is not.
    Missing,
    /// It is there; neither the ledger nor the manifest has it.
    Extra,
    /// Its bytes are not the ones written.
    Altered,
}

/// One finding of `export --check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The object's path, relative to the destination.
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

/// Compares what the ledger expects (`expected`: path -> SHA-256, the manifest included) with what the
/// destination holds (`found`: path -> SHA-256 of its bytes). Sorted by path.
pub fn compare(
    expected: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (path, sha) in expected {
        let problem = match found.get(path) {
            None => Some(Problem::Missing),
            Some(got) if got != sha => Some(Problem::Altered),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            findings.push(Finding {
                path: path.clone(),
                problem,
            });
        }
    }
    for path in found.keys().filter(|p| !expected.contains_key(*p)) {
        findings.push(Finding {
            path: path.clone(),
            problem: Problem::Extra,
        });
    }
    findings.sort_by(|a, b| a.path.cmp(&b.path));
    findings
}

/// The days the objects are of.
pub fn days(objects: &[MirrorObject]) -> BTreeSet<String> {
    objects.iter().map(|o| o.date.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(run: i64, after: i64) -> MirrorManifest {
        MirrorManifest {
            export_run: run,
            after_seal: after,
            ..MirrorManifest::default()
        }
    }

    fn run(number: i64, through: i64, sha: &str) -> MirrorRun {
        MirrorRun {
            number,
            through_seal: through,
            manifest_sha256: sha.into(),
        }
    }

    #[test]
    fn the_sweep_deletes_only_what_the_mirror_names_as_its_own() {
        let cases = [
            (
                "events/date=2024-01-09/part-000003-00012-deadbeef.parquet",
                true,
            ),
            (
                "revisions/date=2024-01-09/part-000001-00000-0a1b2c3d.parquet",
                true,
            ),
            ("events/date=2024-01-09/mine.parquet", false),
            ("events/date=2024-01-09/part-00000.parquet", false),
            (
                "events/date=2024-1-9/part-000003-00012-deadbeef.parquet",
                false,
            ),
            ("events/part-000003-00012-deadbeef.parquet", false),
            (
                "other/date=2024-01-09/part-000003-00012-deadbeef.parquet",
                false,
            ),
            (
                "events/date=2024-01-09/part-000003-00012-deadbeeg.parquet",
                false,
            ),
            (
                "events/date=2024-01-09/part-000003-00012-deadbeef.parquet.tmp",
                false,
            ),
            (
                "events/date=2024-01-09/sub/part-000003-00012-deadbeef.parquet",
                false,
            ),
        ];
        for (key, ours) in cases {
            assert_eq!(is_mirror_object(key), ours, "{key}");
        }
        let unlisted: Vec<String> = cases.iter().map(|(k, _)| k.to_string()).collect();
        let s = sweep(&unlisted);
        assert_eq!(s.delete.len(), 2);
        assert_eq!(s.foreign.len(), cases.len() - 2);
    }

    #[test]
    fn resume_decides_from_the_ledger_and_the_manifest() {
        let m1 = manifest(1, 0);
        let m2 = manifest(2, 7);
        let m2_elsewhere = manifest(2, 5);
        let m3 = manifest(3, 9);
        let last1 = run(1, 7, "aa");
        // (ledger's last run, manifest found, decision; None: diverged)
        type Case<'a> = (
            Option<&'a MirrorRun>,
            Option<(&'a MirrorManifest, &'a str)>,
            Option<Resume>,
        );
        let cases: [Case<'_>; 8] = [
            (None, None, Some(Resume::Fresh)),
            (None, Some((&m1, "aa")), None),
            (Some(&last1), None, None),
            (Some(&last1), Some((&m1, "aa")), Some(Resume::InSync)),
            (Some(&last1), Some((&m1, "bb")), None),
            (Some(&last1), Some((&m2, "cc")), Some(Resume::RollForward)),
            (Some(&last1), Some((&m2_elsewhere, "cc")), None),
            (Some(&last1), Some((&m3, "cc")), None),
        ];
        for (i, (last, m, want)) in cases.into_iter().enumerate() {
            let got = resume(last, m);
            match want {
                Some(want) => assert_eq!(got, want, "case {i}"),
                None => assert!(matches!(got, Resume::Diverged(_)), "case {i}: {got:?}"),
            }
        }
    }

    #[test]
    fn plan_rewrites_the_live_days_a_prune_touched_and_appends_new_windows() {
        let live: BTreeSet<String> = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-05"]
            .map(String::from)
            .into();
        let prune = |from: &str, to: &str| PendingSeal::Prune {
            ranges: vec![(from.into(), to.into())],
        };
        let days = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let cases = [
            (vec![], days(&[]), false),
            (vec![PendingSeal::Window], days(&[]), true),
            (
                vec![prune(
                    "2024-01-01T00:00:00.000Z",
                    "2024-01-02T12:00:00.000Z",
                )],
                days(&["2024-01-01", "2024-01-02"]),
                false,
            ),
            (
                vec![
                    PendingSeal::Window,
                    prune("2023-01-01T00:00:00.000Z", "2024-01-04T00:00:00.000Z"),
                ],
                days(&["2024-01-01", "2024-01-02", "2024-01-03"]),
                true,
            ),
            // A prune of days the mirror holds nothing of rewrites nothing.
            (
                vec![prune(
                    "2024-01-04T00:00:00.000Z",
                    "2024-01-04T06:00:00.000Z",
                )],
                days(&[]),
                false,
            ),
        ];
        for (i, (pending, rewrite, append)) in cases.into_iter().enumerate() {
            assert_eq!(plan(&pending, &live), Plan { rewrite, append }, "case {i}");
        }
    }

    #[test]
    fn compare_names_missing_extra_and_altered_objects() {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let expected = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let found = map(&[("a", "1"), ("b", "9"), ("d", "4")]);
        let got = compare(&expected, &found);
        let want = [
            ("b", Problem::Altered),
            ("c", Problem::Missing),
            ("d", Problem::Extra),
        ]
        .map(|(path, problem)| Finding {
            path: path.into(),
            problem,
        });
        assert_eq!(got, want);
        assert!(compare(&expected, &expected).is_empty());
    }
}
