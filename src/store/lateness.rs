//! How late events arrive: measured from what the archive holds, for `status` (`lateness`), `status --check`
//! and `sync --lookback auto`.
//!
//! Two measures. *Arrival*: for each event archived with a timestamp in the last [`ARRIVAL_DAYS`], when it was
//! first archived minus its timestamp (the schedule's delay and the source's together). *Found later*: for
//! each event a later read of an already covered range found (the lookback of a plain sync, `--refetch`,
//! `reconcile`) in the last [`FOUND_LATER_DAYS`], how long after the first complete fetch of its range it was
//! archived: the events a sync would have missed without that re-read. Those later than the lookback of the
//! latest sync are only found by `--refetch` or `reconcile`: `status` warns about them.

use super::{SqlContext, StoreError};
use crate::time::Timestamp;
use chrono::TimeDelta;
use rusqlite::{Connection, params};
use serde::Serialize;

/// Days of events the arrival figures cover.
pub const ARRIVAL_DAYS: i64 = 7;
/// Days of re-reads the found-later figures cover.
pub const FOUND_LATER_DAYS: i64 = 30;
/// `--lookback auto` never goes below this (the default lookback).
pub const AUTO_FLOOR: TimeDelta = TimeDelta::hours(1);
/// `--lookback auto` never goes above this (re-reading more each run costs more than a weekly `reconcile`).
pub const AUTO_CEILING: TimeDelta = TimeDelta::days(7);

/// How a set of delays spreads, in seconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Spread {
    /// How many events.
    pub events: i64,
    /// The median delay.
    pub p50_seconds: i64,
    /// The 99th percentile.
    pub p99_seconds: i64,
    /// The longest.
    pub max_seconds: i64,
}

/// How late events arrive (`status`'s `lateness`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Lateness {
    /// First archived minus timestamp, for events of the last [`ARRIVAL_DAYS`] (none if there are none).
    pub arrival: Option<Spread>,
    /// For events found by a later read of a covered range in the last [`FOUND_LATER_DAYS`]: how long after
    /// the first complete fetch of their range they were archived.
    pub found_later: Option<Spread>,
    /// The lookback of the latest sync, in seconds.
    pub lookback_seconds: Option<i64>,
    /// Found-later events later than that lookback: a plain sync misses them; `--refetch` or `reconcile`
    /// found them.
    pub beyond_lookback: i64,
}

impl Lateness {
    /// The lookback `--lookback auto` uses: one and a half times the latest any event was found after its
    /// range was first fetched, in whole minutes, within [`AUTO_FLOOR`] and [`AUTO_CEILING`].
    pub fn auto_lookback(&self) -> TimeDelta {
        let observed = self.found_later.map_or(0, |s| s.max_seconds);
        let minutes = (observed * 3 / 2 + 59) / 60;
        TimeDelta::minutes(minutes).clamp(AUTO_FLOOR, AUTO_CEILING)
    }
}

/// The spread of `delays` (sorted ascending); `None` if empty. Percentiles are nearest-rank.
pub fn spread(sorted: &[i64]) -> Option<Spread> {
    let n = sorted.len();
    let rank = |p: usize| sorted[(n * p).div_ceil(100).max(1) - 1];
    (n > 0).then(|| Spread {
        events: n as i64,
        p50_seconds: rank(50),
        p99_seconds: rank(99),
        max_seconds: sorted[n - 1],
    })
}

fn ctx() -> String {
    "cannot measure how late events arrive".to_string()
}

/// Measures lateness at `now`.
pub fn load(conn: &Connection, now: Timestamp) -> Result<Lateness, StoreError> {
    let since = |days| crate::time::to_stored(now - TimeDelta::days(days));
    let arrival = arrival(conn, &since(ARRIVAL_DAYS))?;
    let mut found: Vec<i64> = conn
        .prepare(
            "SELECT max(0, CAST(round((julianday(e.fetched_at) - julianday(min(f.completed_at))) * 86400) AS INTEGER))
             FROM windows w
             JOIN runs rw ON rw.id = w.run_id
             JOIN windows f ON f.status = 'complete' AND f.id < w.id AND f.completed_at IS NOT NULL
                  AND f.category_filter = w.category_filter AND f.action_filter = w.action_filter
                  AND f.window_start < w.window_end AND w.window_start < f.window_end
             JOIN runs rf ON rf.id = f.run_id AND rf.base_url = rw.base_url
             JOIN events e ON e.window_id = w.id AND e.timestamp >= f.window_start AND e.timestamp < f.window_end
             WHERE w.started_at >= ?1 AND e.fetched_at > f.completed_at
             GROUP BY e.id",
        )
        .and_then(|mut s| s.query_map([since(FOUND_LATER_DAYS)], |r| r.get(0))?.collect())
        .context(ctx)?;
    found.sort_unstable();
    let lookback_seconds: Option<i64> = conn
        .query_row(
            "SELECT lookback_seconds FROM runs WHERE kind = 'sync' AND lookback_seconds IS NOT NULL
             ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .context(ctx)?;
    let beyond_lookback =
        lookback_seconds.map_or(0, |l| found.iter().filter(|&&d| d > l).count()) as i64;
    Ok(Lateness {
        arrival,
        found_later: spread(&found),
        lookback_seconds,
        beyond_lookback,
    })
}

/// The arrival spread of events with timestamps at or after `since` (stored form), read by the sorter in
/// SQLite (bounded memory): a count, then each percentile by rank.
fn arrival(conn: &Connection, since: &str) -> Result<Option<Spread>, StoreError> {
    const DELAY: &str = "SELECT max(0, CAST(round((julianday(fetched_at) - julianday(timestamp)) * 86400) AS INTEGER)) AS d
                         FROM events WHERE timestamp >= ?1";
    let (n, max): (i64, Option<i64>) = conn
        .query_row(
            &format!("SELECT count(*), max(d) FROM ({DELAY})"),
            [since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context(ctx)?;
    let Some(max) = max.filter(|_| n > 0) else {
        return Ok(None);
    };
    let at_rank = |p: i64| -> Result<i64, StoreError> {
        let offset = ((n * p + 99) / 100).max(1) - 1;
        conn.query_row(
            &format!("SELECT d FROM ({DELAY}) ORDER BY d LIMIT 1 OFFSET ?2"),
            params![since, offset],
            |r| r.get(0),
        )
        .context(ctx)
    };
    Ok(Some(Spread {
        events: n,
        p50_seconds: at_rank(50)?,
        p99_seconds: at_rank(99)?,
        max_seconds: max,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_use_nearest_rank_percentiles() {
        assert_eq!(spread(&[]), None);
        let one = spread(&[7]).unwrap();
        assert_eq!(
            (one.p50_seconds, one.p99_seconds, one.max_seconds),
            (7, 7, 7)
        );
        let hundred: Vec<i64> = (1..=100).collect();
        let s = spread(&hundred).unwrap();
        assert_eq!(
            (s.events, s.p50_seconds, s.p99_seconds, s.max_seconds),
            (100, 50, 99, 100)
        );
        let skewed: Vec<i64> = std::iter::repeat_n(60, 199).chain([86_400]).collect();
        let s = spread(&skewed).unwrap();
        assert_eq!(
            (s.p50_seconds, s.p99_seconds, s.max_seconds),
            (60, 60, 86_400)
        );
    }

    #[test]
    fn auto_lookback_is_one_and_a_half_times_the_latest_find_within_bounds() {
        let with = |max_seconds| Lateness {
            found_later: Some(Spread {
                events: 1,
                p50_seconds: max_seconds,
                p99_seconds: max_seconds,
                max_seconds,
            }),
            ..Lateness::default()
        };
        for (lateness, want) in [
            (Lateness::default(), TimeDelta::hours(1)),
            (with(600), TimeDelta::hours(1)),
            (with(3 * 3600), TimeDelta::minutes(270)),
            (with(3 * 3600 + 1), TimeDelta::minutes(271)),
            (with(30 * 86_400), TimeDelta::days(7)),
        ] {
            assert_eq!(lateness.auto_lookback(), want, "{lateness:?}");
        }
    }
}
