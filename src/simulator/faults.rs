//! Faults on demand: which requests to `GET /events` the simulator answers badly.
//!
//! A rule is `KIND:TRIGGER`: KIND is `429` (with `Retry-After`), `500`, `502`, `503`, `5xx` (one of the three),
//! `drop` (the connection closes before any byte of the body) or `truncate` (it closes half-way through the
//! body); TRIGGER is `N%` (each request with that probability), `every:N` (every Nth request) or `first:N`
//! (the first N requests). Rules are tried in order; the first that fires decides.

use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 with `Retry-After`.
    Throttle,
    /// A 5xx status.
    Status(u16),
    /// Any of 500, 502, 503, chosen at random.
    AnyServerError,
    /// The connection closes before the body.
    Drop,
    /// The connection closes half-way through the body.
    Truncate,
}

/// When it goes wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// With this probability per request.
    Rate(f64),
    /// Every Nth request.
    Every(u64),
    /// The first N requests.
    First(u64),
}

/// One fault rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRule {
    /// What goes wrong.
    pub kind: FaultKind,
    /// When.
    pub trigger: Trigger,
}

impl std::str::FromStr for FaultRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "'{text}' is not a fault: use KIND:TRIGGER, e.g. 429:10%, 5xx:every:7, drop:first:2"
            )
        };
        let (kind, trigger) = text.split_once(':').ok_or_else(bad)?;
        let kind = match kind {
            "429" => FaultKind::Throttle,
            "500" | "502" | "503" | "504" => {
                FaultKind::Status(kind.parse().expect("matched digits"))
            }
            "5xx" => FaultKind::AnyServerError,
            "drop" => FaultKind::Drop,
            "truncate" => FaultKind::Truncate,
            _ => return Err(bad()),
        };
        let trigger = if let Some(pct) = trigger.strip_suffix('%') {
            match pct.parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Trigger::Rate(p / 100.0),
                _ => return Err(bad()),
            }
        } else if let Some(n) = trigger.strip_prefix("every:") {
            Trigger::Every(n.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?)
        } else if let Some(n) = trigger.strip_prefix("first:") {
            Trigger::First(n.parse().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        Ok(FaultRule { kind, trigger })
    }
}

/// The fault state of a running simulator.
pub struct Faults {
    rules: Vec<FaultRule>,
    rng: Mutex<StdRng>,
    requests: AtomicU64,
}

impl Faults {
    /// Faults from rules, with a seeded random source.
    pub fn new(rules: Vec<FaultRule>, seed: u64) -> Self {
        Faults {
            rules,
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0xFA17)),
            requests: AtomicU64::new(0),
        }
    }

    /// Decides the fate of the next request.
    pub fn decide(&self) -> Option<FaultKind> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let mut rng = self.rng.lock().expect("the fault RNG is never poisoned");
        for rule in &self.rules {
            let fires = match rule.trigger {
                Trigger::Rate(p) => rng.random_bool(p),
                Trigger::Every(k) => n.is_multiple_of(k),
                Trigger::First(k) => n <= k,
            };
            if fires {
                return Some(match rule.kind {
                    FaultKind::AnyServerError => {
                        FaultKind::Status([500, 502, 503][rng.random_range(0..3)])
                    }
                    other => other,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        let cases = [
            (
                "429:10%",
                Some(FaultRule {
                    kind: FaultKind::Throttle,
                    trigger: Trigger::Rate(0.1),
                }),
            ),
            (
                "503:every:7",
                Some(FaultRule {
                    kind: FaultKind::Status(503),
                    trigger: Trigger::Every(7),
                }),
            ),
            (
                "5xx:first:2",
                Some(FaultRule {
                    kind: FaultKind::AnyServerError,
                    trigger: Trigger::First(2),
                }),
            ),
            (
                "drop:2.5%",
                Some(FaultRule {
                    kind: FaultKind::Drop,
                    trigger: Trigger::Rate(0.025),
                }),
            ),
            (
                "truncate:100%",
                Some(FaultRule {
                    kind: FaultKind::Truncate,
                    trigger: Trigger::Rate(1.0),
                }),
            ),
            ("418:10%", None),
            ("429", None),
            ("429:150%", None),
            ("503:every:0", None),
            ("503:sometimes", None),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<FaultRule>().ok(), want, "{text}");
        }
    }

    #[test]
    fn triggers() {
        let every = Faults::new(vec!["503:every:3".parse().unwrap()], 1);
        let fired: Vec<bool> = (0..9).map(|_| every.decide().is_some()).collect();
        assert_eq!(
            fired,
            [false, false, true, false, false, true, false, false, true]
        );
        let first = Faults::new(vec!["drop:first:2".parse().unwrap()], 1);
        let fired: Vec<bool> = (0..4).map(|_| first.decide().is_some()).collect();
        assert_eq!(fired, [true, true, false, false]);
        let rate = Faults::new(vec!["5xx:10%".parse().unwrap()], 7);
        let hits = (0..10_000).filter(|_| rate.decide().is_some()).count();
        assert!((800..1200).contains(&hits), "{hits} of 10000 at 10%");
    }
}
