//! The retry decision: given what went wrong, how many attempts were made and how long it has taken, wait how
//! long and try again, or give up. Pure, so its table of cases is tested without a server.
//!
//! Retried: 408, 425, 429, every 5xx, timeouts, refused or dropped connections, truncated or garbled bodies.
//! Not retried: other 4xx (a bad request or a permission stays bad). 401 is handled by token renewal, not here.
//! Waits grow exponentially with jitter, never shorter than the server's `Retry-After`, and the whole effort is
//! bounded both in attempts and in time.

use std::time::{Duration, SystemTime};

/// Default number of attempts per request, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Default wait before the first retry; doubles with each further attempt.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest wait between two attempts that the exponential schedule produces.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured; a server asking for more makes the request give up with a clear message.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Longest total time spent on one request, retries included.
pub const MAX_ELAPSED: Duration = Duration::from_secs(900);

/// What went wrong with one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The server answered with this status, possibly saying when to come back.
    Status {
        /// HTTP status code.
        code: u16,
        /// Parsed `Retry-After`, if the server sent one.
        retry_after: Option<Duration>,
    },
    /// The request or the body read timed out.
    Timeout,
    /// The connection was refused, reset or dropped.
    Connection,
    /// The body was truncated or not a page (possibly a proxy's page): worth another try.
    Body,
}

impl Failure {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Failure::Status { code, .. } => matches!(code, 408 | 425 | 429 | 500..=599),
            Failure::Timeout | Failure::Connection | Failure::Body => true,
        }
    }
}

/// The decision for one failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Wait this long, then try again.
    Retry(Duration),
    /// Stop: the failure is final or the budget is spent.
    GiveUp(&'static str),
}

/// Bounds on retrying.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub base_delay: Duration,
    /// Total time budget per request.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_elapsed: MAX_ELAPSED,
        }
    }
}

impl RetryPolicy {
    /// Decides after attempt number `attempt` (1-based) failed with `failure`, `elapsed` after the first try.
    /// `jitter` in `[0, 1)` spreads the wait over its upper half, so concurrent windows do not retry in step.
    pub fn decide(
        &self,
        failure: &Failure,
        attempt: u32,
        elapsed: Duration,
        jitter: f64,
    ) -> Decision {
        if !failure.is_retryable() {
            return Decision::GiveUp("the failure is not one that retrying can fix");
        }
        if attempt >= self.max_attempts {
            return Decision::GiveUp("the attempts are used up");
        }
        let exponent = attempt.saturating_sub(1).min(16);
        let backoff = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(MAX_BACKOFF);
        let jittered = backoff.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        let wait = match failure {
            Failure::Status {
                retry_after: Some(after),
                ..
            } => {
                if *after > MAX_RETRY_AFTER {
                    return Decision::GiveUp(
                        "the server asked to wait longer than the archiver will",
                    );
                }
                (*after).max(jittered)
            }
            _ => jittered,
        };
        if elapsed + wait > self.max_elapsed {
            return Decision::GiveUp("the time budget for this request is spent");
        }
        Decision::Retry(wait)
    }
}

/// Parses a `Retry-After` header: delay seconds, or an HTTP date (relative to `now`; a past date means 0).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn status(code: u16) -> Failure {
        Failure::Status {
            code,
            retry_after: None,
        }
    }

    /// (failure, attempt just made, time spent, jitter, what the policy decides)
    type Case = (Failure, u32, Duration, f64, Decision);

    fn check(policy: &RetryPolicy, cases: Vec<Case>) {
        for (failure, attempt, elapsed, jitter, want) in cases {
            let got = policy.decide(&failure, attempt, elapsed, jitter);
            assert_eq!(
                got, want,
                "{failure:?} attempt {attempt} elapsed {elapsed:?}"
            );
        }
    }

    fn after(secs: u64) -> Failure {
        Failure::Status {
            code: 429,
            retry_after: Some(S(secs)),
        }
    }

    const CANNOT_FIX: Decision = Decision::GiveUp("the failure is not one that retrying can fix");

    #[test]
    fn failures_that_retrying_cannot_fix_give_up_at_once() {
        check(
            &RetryPolicy::default(),
            vec![
                (status(400), 1, S(0), 0.0, CANNOT_FIX),
                (status(403), 1, S(0), 0.0, CANNOT_FIX),
                (status(404), 1, S(0), 0.0, CANNOT_FIX),
            ],
        );
    }

    #[test]
    fn transient_failures_are_retried_on_the_schedule() {
        check(
            &RetryPolicy::default(),
            vec![
                (status(500), 1, S(0), 0.0, Decision::Retry(MS(250))),
                (status(502), 1, S(0), 1.0, Decision::Retry(MS(500))),
                (status(503), 2, S(1), 0.0, Decision::Retry(MS(500))),
                (status(504), 3, S(2), 1.0, Decision::Retry(S(2))),
                (status(429), 1, S(0), 0.0, Decision::Retry(MS(250))),
                (status(408), 1, S(0), 0.0, Decision::Retry(MS(250))),
                (Failure::Timeout, 1, S(0), 0.0, Decision::Retry(MS(250))),
                (Failure::Connection, 1, S(0), 0.0, Decision::Retry(MS(250))),
                (Failure::Body, 1, S(0), 0.0, Decision::Retry(MS(250))),
            ],
        );
    }

    #[test]
    fn retry_after_is_a_floor_never_shortened_by_the_schedule() {
        check(
            &RetryPolicy::default(),
            vec![
                (after(7), 1, S(0), 0.0, Decision::Retry(S(7))),
                (after(0), 1, S(0), 0.0, Decision::Retry(MS(250))),
                (
                    after(3600),
                    1,
                    S(0),
                    0.0,
                    Decision::GiveUp("the server asked to wait longer than the archiver will"),
                ),
            ],
        );
    }

    #[test]
    fn retries_are_bounded_in_attempts_time_and_wait() {
        let p = RetryPolicy::default();
        check(
            &p,
            vec![
                (
                    status(503),
                    8,
                    S(10),
                    0.0,
                    Decision::GiveUp("the attempts are used up"),
                ),
                (
                    status(503),
                    2,
                    S(900),
                    0.0,
                    Decision::GiveUp("the time budget for this request is spent"),
                ),
                // The exponential schedule is capped.
                (status(503), 7, S(0), 1.0, Decision::Retry(S(32))),
            ],
        );
        let long = RetryPolicy {
            max_attempts: 40,
            ..p
        };
        check(
            &long,
            vec![(status(503), 30, S(0), 1.0, Decision::Retry(MAX_BACKOFF))],
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        let cases = [
            ("5", Some(S(5))),
            (" 120 ", Some(S(120))),
            ("Wed, 21 Oct 2026 07:28:30 GMT", Some(S(30))),
            ("Wed, 21 Oct 2026 07:27:00 GMT", Some(S(0))),
            ("-3", None),
            ("soon", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), want, "{value:?}");
        }
    }
}
