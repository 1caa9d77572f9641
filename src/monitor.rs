//! `status --check`: the archive's state judged for monitoring, as a monitoring plugin does (the Nagios plugin
//! convention, also read by Icinga, Sensu and Checkmk): one summary line first, then one line per problem,
//! and an exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Pure: a function of the status report and the
//! limits.

use crate::store::read::StatusReport;
use crate::time::{self, Timestamp};
use chrono::TimeDelta;

/// A check's state, in rising order of severity but for `Unknown` (the archive could not be read at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckState {
    /// Nothing to do.
    Ok,
    /// Someone should look, not urgently.
    Warning,
    /// The archive is not doing its job.
    Critical,
    /// The archive could not be judged (not found, not readable).
    Unknown,
}

impl CheckState {
    /// The plugin convention's exit code.
    pub const fn code(self) -> u8 {
        match self {
            CheckState::Ok => 0,
            CheckState::Warning => 1,
            CheckState::Critical => 2,
            CheckState::Unknown => 3,
        }
    }

    /// The plugin convention's word.
    pub const fn word(self) -> &'static str {
        match self {
            CheckState::Ok => "OK",
            CheckState::Warning => "WARNING",
            CheckState::Critical => "CRITICAL",
            CheckState::Unknown => "UNKNOWN",
        }
    }
}

/// What `--check` holds the archive to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Coverage older than this is critical; older than half of it, a warning.
    pub max_age: TimeDelta,
    /// A verification older than this, or none, is a warning.
    pub max_verify_age: TimeDelta,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// How bad.
    pub state: CheckState,
    /// What, and what to do.
    pub text: String,
}

fn problem(state: CheckState, text: String) -> Problem {
    Problem { state, text }
}

/// The problems of the archive `report` describes at `now`, worst first.
pub fn check(report: &StatusReport, now: Timestamp, limits: Limits) -> Vec<Problem> {
    use CheckState::{Critical, Warning};
    let mut out = Vec::new();
    match report.freshness_seconds {
        None => out.push(problem(
            Critical,
            "no window has been archived yet: run a first sync with --from".into(),
        )),
        Some(age) => {
            let age = TimeDelta::seconds(age);
            let state = if age > limits.max_age {
                Some(Critical)
            } else if age > limits.max_age / 2 {
                Some(Warning)
            } else {
                None
            };
            if let Some(state) = state {
                out.push(problem(
                    state,
                    format!(
                        "coverage ends {} ago (at {}), more than {} allows: is the scheduled sync running?",
                        time::human_duration(age),
                        report.covered_until.as_deref().unwrap_or("?"),
                        if state == Critical { "--max-age" } else { "half of --max-age" },
                    ),
                ));
            }
        }
    }
    if !report.missing.is_empty() {
        out.push(problem(
            Warning,
            format!(
                "{} range(s) asked for are not fetched yet ({} window(s) failed or interrupted): the next plain \
                 sync fetches them; `status` says why they failed",
                report.missing.len(),
                report.incomplete_windows
            ),
        ));
    }
    if report.rejects > 0 {
        out.push(problem(
            Warning,
            format!(
                "{} item(s) the server sent could not be archived: see the rejects table",
                report.rejects
            ),
        ));
    }
    let late = &report.lateness;
    if late.beyond_lookback > 0 {
        out.push(problem(
            Warning,
            format!(
                "{} event(s) arrived later than the lookback ({}s) and a plain sync misses such events: pass \
                 --lookback auto (or longer), or schedule reconcile",
                late.beyond_lookback,
                late.lookback_seconds.unwrap_or_default()
            ),
        ));
    }
    out.extend(check_verification(report, now, limits));
    out.sort_by_key(|p| std::cmp::Reverse(p.state));
    out
}

/// The last recorded verification: tampering found is critical; none, or too old, or incomplete, a warning.
fn check_verification(report: &StatusReport, now: Timestamp, limits: Limits) -> Option<Problem> {
    use CheckState::{Critical, Warning};
    let Some(v) = &report.last_verification else {
        return Some(problem(
            Warning,
            "never verified: schedule `verify --record`".into(),
        ));
    };
    if !v.intact {
        return Some(problem(
            Critical,
            format!(
                "the last verification ({}) found {} sign(s) of tampering or damage: run `verify` and investigate",
                v.verified_at, v.findings
            ),
        ));
    }
    let age = time::from_stored(&v.verified_at).map(|at| now - at);
    match age {
        Some(age) if age <= limits.max_verify_age => None,
        _ => Some(problem(
            Warning,
            format!(
                "last verified at {}, longer ago than --max-verify-age: schedule `verify --record`",
                v.verified_at
            ),
        )),
    }
}

/// The state of a check with these problems: the worst of them, OK if none.
pub fn state(problems: &[Problem]) -> CheckState {
    problems
        .iter()
        .map(|p| p.state)
        .max()
        .unwrap_or(CheckState::Ok)
}

/// The plugin output: the summary line (with performance data after `|`), then one line per problem.
pub fn render(report: &StatusReport, problems: &[Problem]) -> String {
    let state = state(problems);
    let headline = match problems.first() {
        Some(p) => p.text.clone(),
        None => format!(
            "{} events, coverage until {}",
            report.events,
            report.covered_until.as_deref().unwrap_or("-")
        ),
    };
    let mut out = format!(
        "ELEVATE-ARCHIVE {} - {headline} | events={} freshness={}s;;; missing={} rejects={}\n",
        state.word(),
        report.events,
        report
            .freshness_seconds
            .map_or_else(|| "U".to_string(), |s| s.to_string()),
        report.missing.len(),
        report.rejects,
    );
    for p in problems {
        out.push_str(&format!("{}: {}\n", p.state.word(), p.text));
    }
    out
}

/// The plugin output when the archive cannot be read at all.
pub fn render_unknown(error: &str) -> String {
    format!("ELEVATE-ARCHIVE UNKNOWN - {error}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::coverage::MissingRange;
    use crate::store::read::Verification;

    fn now() -> Timestamp {
        time::parse_time_arg("2024-06-01T12:00:00Z").unwrap()
    }

    fn limits() -> Limits {
        Limits {
            max_age: TimeDelta::hours(2),
            max_verify_age: TimeDelta::days(8),
        }
    }

    fn verified(days_ago: i64, intact: bool) -> Option<Verification> {
        Some(Verification {
            verified_at: time::to_stored(now() - TimeDelta::days(days_ago)),
            intact,
            complete: true,
            findings: i64::from(!intact),
            chain_head: None,
        })
    }

    /// A healthy report: fresh for `age_minutes`, verified a day ago.
    fn report(age_minutes: Option<i64>) -> StatusReport {
        let mut r = crate::store::read::assemble(Default::default(), now());
        r.freshness_seconds = age_minutes.map(|m| m * 60);
        r.covered_until = age_minutes.map(|m| time::to_stored(now() - TimeDelta::minutes(m)));
        r.last_verification = verified(1, true);
        r
    }

    #[test]
    fn states_follow_the_plugin_convention() {
        use CheckState::{Critical, Ok, Warning};
        let missing = MissingRange {
            from: "2024-05-01T00:00:00.000Z".into(),
            to: "2024-05-02T00:00:00.000Z".into(),
            base_url: "https://x/v1".into(),
            category_filter: String::new(),
            action_filter: String::new(),
        };
        let cases: Vec<(&str, StatusReport, CheckState, usize)> = vec![
            ("fresh and verified", report(Some(10)), Ok, 0),
            ("older than half the max age", report(Some(90)), Warning, 1),
            ("older than the max age", report(Some(121)), Critical, 1),
            ("never synced", report(None), Critical, 1),
            (
                "a failed window",
                StatusReport {
                    missing: vec![missing],
                    incomplete_windows: 1,
                    ..report(Some(10))
                },
                Warning,
                1,
            ),
            (
                "rejects",
                StatusReport {
                    rejects: 3,
                    ..report(Some(10))
                },
                Warning,
                1,
            ),
            (
                "never verified",
                StatusReport {
                    last_verification: None,
                    ..report(Some(10))
                },
                Warning,
                1,
            ),
            (
                "verified too long ago",
                StatusReport {
                    last_verification: verified(9, true),
                    ..report(Some(10))
                },
                Warning,
                1,
            ),
            (
                "tampering found, and stale",
                StatusReport {
                    last_verification: verified(1, false),
                    ..report(Some(200))
                },
                Critical,
                2,
            ),
        ];
        for (name, r, want, count) in cases {
            let found = check(&r, now(), limits());
            assert_eq!(state(&found), want, "{name}: {found:?}");
            assert_eq!(found.len(), count, "{name}: {found:?}");
            assert!(
                found.windows(2).all(|w| w[0].state >= w[1].state),
                "{name}: worst first"
            );
            let text = render(&r, &found);
            assert!(
                text.starts_with(&format!("ELEVATE-ARCHIVE {} - ", want.word())),
                "{name}: {text}"
            );
            assert_eq!(text.lines().count(), 1 + count, "{name}: {text}");
        }
        assert_eq!(
            (
                Ok.code(),
                Warning.code(),
                Critical.code(),
                CheckState::Unknown.code()
            ),
            (0, 1, 2, 3)
        );
    }
}
