//! Time: parsing what users type, normalising what the server sends, and formatting what the API expects.
//!
//! Three forms of time meet here:
//! - a user's TIME argument: RFC 3339 (`2024-01-01T00:00:00Z`, offsets allowed) or a date (`2024-01-01`, midnight
//!   UTC), and a DURATION (`90s`, `15m`, `1h`, `1d`);
//! - the archive's stored form, `YYYY-MM-DDTHH:MM:SS.sssZ` in UTC, whose text order is time order;
//! - the API's filter form, `yyyy-MM-ddTHH:mm:ssZ`: whole seconds with a literal `Z`.
//!
//! Everything here is pure and table-tested; "now" is passed in, never read, so callers can pin it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use std::time::Duration;

/// A point in time, always UTC inside the tool.
pub type Timestamp = DateTime<Utc>;

/// Parses a TIME argument: RFC 3339 with any offset, or a plain date meaning midnight UTC.
pub fn parse_time_arg(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(format!(
        "'{text}' is not a time: use RFC 3339 (2024-01-01T00:00:00Z, an offset such as +02:00 is fine) \
         or a date (2024-01-01, meaning midnight UTC)"
    ))
}

/// Parses a DURATION argument such as `90s`, `15m`, `1h`, `1d` or `1h 30m`.
pub fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("'{text}' is not a duration ({e}): use forms such as 90s, 15m, 1h, 1d")
    })
}

/// Formats a timestamp in the archive's stored form: UTC, milliseconds, literal `Z`.
pub fn to_stored(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats a timestamp as the API documents its filters: whole seconds, literal `Z`.
pub fn to_api(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a timestamp previously written by [`to_stored`] (or any RFC 3339 text).
pub fn from_stored(text: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Normalises a timestamp as the server sent it.
///
/// Accepts RFC 3339 (with or without fractions, any offset), the same with a space instead of `T`, the offset
/// forms other platforms emit (`+0000` from Java's and .NET's defaults, `+05`, `+05:30`, and up to nine
/// fractional digits, Go's and Python's), and a timestamp with no offset at all, read as UTC (the API documents
/// only `Z` timestamps).
pub fn parse_server_timestamp(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let with_t = text.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&with_t) {
        return Some(t.with_timezone(&Utc));
    }
    // `%#z` takes `Z`, `+hh`, `+hhmm` and `+hh:mm`.
    if let Ok(t) = DateTime::parse_from_str(&with_t, "%Y-%m-%dT%H:%M:%S%.f%#z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&with_t, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// Truncates a timestamp to whole seconds (the API's filter precision).
pub fn floor_second(t: Timestamp) -> Timestamp {
    t - TimeDelta::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
}

/// Rounds a timestamp up to whole milliseconds (the stored precision): the stored end of a range that must
/// still contain every instant before it (a hold's end; events are stored truncated).
pub fn ceil_millis(t: Timestamp) -> Timestamp {
    match t.timestamp_subsec_nanos() % 1_000_000 {
        0 => t,
        rest => t + TimeDelta::nanoseconds(i64::from(1_000_000 - rest)),
    }
}

/// Converts a std duration to a chrono delta, saturating at chrono's limit.
pub fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Renders a duration for people: `3h 12m`, `45s`, `2d 4h`.
pub fn human_duration(d: TimeDelta) -> String {
    let secs = d.num_seconds().max(0) as u64;
    let rounded = match secs {
        0..=119 => secs,
        120..=7199 => secs / 60 * 60,
        _ => secs / 3600 * 3600,
    };
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn time_args() {
        let cases = [
            ("2024-01-01", Some("2024-01-01T00:00:00Z")),
            ("2024-01-01T00:00:00Z", Some("2024-01-01T00:00:00Z")),
            ("2024-01-01T02:00:00+02:00", Some("2024-01-01T00:00:00Z")),
            ("2024-02-29T23:59:59.250Z", Some("2024-02-29T23:59:59.250Z")),
            (" 2024-01-01 ", Some("2024-01-01T00:00:00Z")),
            ("2023-02-29", None),
            ("yesterday", None),
            ("2024-01-01T00:00:00", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = parse_time_arg(input).ok();
            assert_eq!(got, want.map(utc), "input {input:?}");
        }
    }

    #[test]
    fn duration_args() {
        let cases = [
            ("90s", Some(90)),
            ("15m", Some(900)),
            ("1h", Some(3600)),
            ("1d", Some(86_400)),
            ("1h 30m", Some(5400)),
            ("soon", None),
            ("-1h", None),
        ];
        for (input, want) in cases {
            let got = parse_duration_arg(input).ok().map(|d| d.as_secs());
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn server_timestamps_normalise_to_stored_form() {
        let cases = [
            ("2019-08-24T14:15:22Z", Some("2019-08-24T14:15:22.000Z")),
            ("2019-08-24T14:15:22.5Z", Some("2019-08-24T14:15:22.500Z")),
            (
                "2019-08-24T14:15:22.123456789Z",
                Some("2019-08-24T14:15:22.123Z"),
            ),
            (
                "2019-08-24T16:15:22+02:00",
                Some("2019-08-24T14:15:22.000Z"),
            ),
            (
                "2019-08-24T09:15:22.1-05:00",
                Some("2019-08-24T14:15:22.100Z"),
            ),
            ("2019-08-24 14:15:22Z", Some("2019-08-24T14:15:22.000Z")),
            ("2019-08-24T14:15:22", Some("2019-08-24T14:15:22.000Z")),
            ("2019-08-24T14:15:22.75", Some("2019-08-24T14:15:22.750Z")),
            // Offsets as Java (`+0000`), .NET, Go and Python write them, and every fraction length.
            ("2019-08-24T14:15:22+0000", Some("2019-08-24T14:15:22.000Z")),
            (
                "2019-08-24T14:15:22.123+0000",
                Some("2019-08-24T14:15:22.123Z"),
            ),
            ("2019-08-24T19:45:22+0530", Some("2019-08-24T14:15:22.000Z")),
            (
                "2019-08-24T19:45:22.1+05:30",
                Some("2019-08-24T14:15:22.100Z"),
            ),
            ("2019-08-24T09:15:22-0500", Some("2019-08-24T14:15:22.000Z")),
            ("2019-08-24T16:15:22+02", Some("2019-08-24T14:15:22.000Z")),
            (
                "2019-08-24T14:15:22.123456789-0000",
                Some("2019-08-24T14:15:22.123Z"),
            ),
            (
                "2019-08-24 14:15:22.5+0000",
                Some("2019-08-24T14:15:22.500Z"),
            ),
            (
                "2019-08-24T14:15:22.1234567Z",
                Some("2019-08-24T14:15:22.123Z"),
            ),
            ("2019-08-24T14:15:22+25:00", None),
            ("2019-08-24T14:15:22+00000", None),
            // A leap second is valid RFC 3339 and is kept, not rejected.
            ("2016-12-31T23:59:60Z", Some("2016-12-31T23:59:60.000Z")),
            ("24/08/2019", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = parse_server_timestamp(input).map(to_stored);
            assert_eq!(got.as_deref(), want, "input {input:?}");
        }
    }

    #[test]
    fn stored_form_sorts_as_time() {
        let earlier = to_stored(utc("2024-01-01T09:59:59.999Z"));
        let later = to_stored(utc("2024-01-01T10:00:00Z"));
        assert!(earlier < later);
        assert_eq!(from_stored(&later), Some(utc("2024-01-01T10:00:00Z")));
    }

    #[test]
    fn api_form_is_whole_seconds_with_z() {
        assert_eq!(
            to_api(utc("2024-03-05T06:07:08.900Z")),
            "2024-03-05T06:07:08Z"
        );
        assert_eq!(
            floor_second(utc("2024-03-05T06:07:08.900Z")),
            utc("2024-03-05T06:07:08Z")
        );
    }

    #[test]
    fn ceil_millis_keeps_whole_milliseconds_and_rounds_the_rest_up() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        for (t, want) in [
            ("2024-01-01T12:00:00Z", "2024-01-01T12:00:00.000Z"),
            ("2024-01-01T12:00:00.0005Z", "2024-01-01T12:00:00.001Z"),
            ("2024-01-01T12:00:00.999000001Z", "2024-01-01T12:00:01.000Z"),
            ("2024-01-01T12:00:00.123Z", "2024-01-01T12:00:00.123Z"),
        ] {
            assert_eq!(to_stored(ceil_millis(at(t))), want, "{t}");
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(TimeDelta::seconds(45)), "45s");
        assert_eq!(human_duration(TimeDelta::seconds(3 * 3600 + 700)), "3h");
        assert_eq!(human_duration(TimeDelta::seconds(600 + 7)), "10m");
        assert_eq!(human_duration(TimeDelta::seconds(-5)), "0s");
    }
}

/// The one clock: every "now" a command uses comes from here, taken by the command and passed down, so that
/// `ELEVATE_NOW` pins all of them at once (tests, reproducible demos).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// A pinned instant: `now` always returns it.
    Pinned(Timestamp),
}

impl Clock {
    /// The current time on this clock.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Utc::now(),
            Clock::Pinned(t) => *t,
        }
    }
}
