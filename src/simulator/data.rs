//! The simulator's data: event `i` of `count` is a pure function of `(seed, i)`, so ten million events cost no
//! memory until a page renders them.
//!
//! Timestamps are spread evenly over `[from, to)` with jitter and are monotone in `i`, so a time bound maps to
//! an index by binary search. Some are snapped to whole seconds and some exactly onto hour (and so day)
//! boundaries, in a way that keeps the order (see [`Dataset::millis`]). Ids ascend with gaps
//! (`ID_BASE + 2i + one random bit`). Categories, actions, users, addresses and descriptions are drawn from
//! realistic tables; the announced billing events appear only in the second half of the range, the way new
//! event types appear in a real tenant.

use serde::Serialize;

/// The first id of a dataset.
pub const ID_BASE: i64 = 100_000;
/// Milliseconds per hour.
const HOUR_MS: i64 = 3_600_000;

/// A generated dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Number of events.
    pub count: u64,
    /// Range start, ms since the epoch.
    pub from_ms: i64,
    /// Range end (exclusive), ms since the epoch.
    pub to_ms: i64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Share of events with an IPv6 address (which the docs do not allow, and real data has), in per mille.
    pub ipv6_per_mille: u64,
    /// Share of items served malformed (no id, bad timestamp, not an object), in parts per million.
    pub malformed_ppm: u64,
    /// Write offsets without a colon and UTC as `+0000` (as Java's and .NET's defaults do) instead of `Z`.
    pub compact_offsets: bool,
}

/// The parts of an event, before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventParts {
    /// Event id.
    pub id: i64,
    /// Timestamp, ms since the epoch.
    pub millis: i64,
    /// Category.
    pub category: &'static str,
    /// Action.
    pub action: &'static str,
}

/// An event as the API renders it (field order as documented).
#[derive(Debug, Serialize)]
struct Wire<'a> {
    id: i64,
    timestamp: &'a str,
    category: &'a str,
    action: &'a str,
    description: &'a str,
    username: &'a str,
    #[serde(rename = "ipAddress")]
    ip_address: &'a str,
}

/// (category, action, weight): security events dominate; billing events are the announced newcomers.
const TYPES: &[(&str, &str, u64)] = &[
    ("authentication", "user-login-success", 500),
    ("authentication", "user-login-failure", 140),
    ("authentication", "user-logout", 120),
    ("authentication", "user-locked-out", 20),
    ("authentication", "password-changed", 20),
    ("authentication", "mfa-challenge-failed", 10),
    ("authorisation", "role-created", 10),
    ("authorisation", "role-updated", 20),
    ("authorisation", "permission-granted", 20),
    ("authorisation", "permission-revoked", 10),
    ("user-management", "user-created", 20),
    ("user-management", "user-disabled", 10),
    ("user-management", "user-updated", 20),
    ("billing", "bill-run-closed", 30),
    ("invoicing", "invoices-distributed", 30),
    ("customers", "customer-created", 20),
];
/// How many of [`TYPES`] (from the end) exist only in the second half of the range.
const ANNOUNCED_TYPES: usize = 3;

const FIRST: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "zoë",
    "josé",
    "søren",
    "łukasz",
    "ana-maría",
    "李",
];
const LAST: &[&str] = &[
    "smith",
    "jones",
    "taylor",
    "brown",
    "williams",
    "wilson",
    "johnson",
    "davies",
    "patel",
    "wright",
    "müller",
    "garcía",
    "nowak",
    "o'brien",
    "dubois",
    "rossi",
    "andersson",
    "kowalski",
    "伟",
    "nakamura",
];
const ROLES: &[&str] = &[
    "Billing Admin",
    "Read Only",
    "Finance Approver",
    "Support Agent",
    "Tarifverwalter",
];
const LONG_NOTE: &str = "Überprüfung der Sitzung — contrôle de session — セッション確認 — ";

/// SplitMix64: a fast, well-mixed hash of a counter.
pub fn mix(seed: u64, i: u64, salt: u64) -> u64 {
    let mut z =
        seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Dataset {
    /// The id of event `i`.
    pub fn id(&self, i: u64) -> i64 {
        ID_BASE + 2 * i as i64 + (mix(self.seed, i, 1) & 1) as i64
    }

    /// The index of the generated event with this id, if one has it.
    pub fn index_of(&self, id: i64) -> Option<u64> {
        let i = u64::try_from((id - ID_BASE) / 2).ok()?;
        (i < self.count && self.id(i) == id).then_some(i)
    }

    /// The largest id the generated events can have.
    pub fn max_id(&self) -> i64 {
        ID_BASE + 2 * self.count as i64 + 1
    }

    /// Evenly spread timestamp of event `i` with jitter; `raw(count) == to_ms`.
    fn raw(&self, i: u64) -> i64 {
        let span = i128::from(self.to_ms - self.from_ms);
        let n = i128::from(self.count.max(1));
        let base = self.from_ms + (i128::from(i) * span / n) as i64;
        let step = (span / n) as i64;
        if i >= self.count || step <= 1 {
            return base;
        }
        base + (mix(self.seed, i, 2) % step as u64) as i64
    }

    /// The timestamp of event `i` in ms: monotone in `i`.
    ///
    /// Every third event moves up onto an hour boundary lying between it and the next event; every fourth
    /// otherwise moves down to its whole second if that does not pass the previous event. Both keep the order:
    /// a boundary `B` in `(raw(i), raw(i+1)]` is below every candidate for `i + 1`, and a whole second at or
    /// above `raw(i-1)` is above every candidate for `i - 1`.
    pub fn millis(&self, i: u64) -> i64 {
        let r = self.raw(i);
        if i.is_multiple_of(3) && i + 1 < self.count {
            let boundary = (r.div_euclid(HOUR_MS) + 1) * HOUR_MS;
            if boundary <= self.raw(i + 1) {
                return boundary;
            }
        }
        if i.is_multiple_of(4) {
            let whole = r - r.rem_euclid(1000);
            if whole >= self.from_ms && (i == 0 || whole >= self.raw(i - 1)) {
                return whole;
            }
        }
        r
    }

    /// The first index whose timestamp is at or after `ms` (`count` if none).
    pub fn first_at_or_after(&self, ms: i64) -> u64 {
        let (mut lo, mut hi) = (0u64, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.millis(mid) < ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Category and action of event `i`, without rendering it.
    pub fn kind(&self, i: u64) -> (&'static str, &'static str) {
        let second_half = i >= self.count / 2;
        let types = if second_half {
            TYPES
        } else {
            &TYPES[..TYPES.len() - ANNOUNCED_TYPES]
        };
        let total: u64 = types.iter().map(|t| t.2).sum();
        let mut pick = mix(self.seed, i, 3) % total;
        for (category, action, weight) in types {
            if pick < *weight {
                return (category, action);
            }
            pick -= weight;
        }
        unreachable!("the pick is below the total weight")
    }

    /// The parts of event `i`.
    pub fn parts(&self, i: u64) -> EventParts {
        let (category, action) = self.kind(i);
        EventParts {
            id: self.id(i),
            millis: self.millis(i),
            category,
            action,
        }
    }

    /// Whether event `i` is served malformed.
    pub fn is_malformed(&self, i: u64) -> bool {
        self.malformed_ppm > 0 && mix(self.seed, i, 9) % 1_000_000 < self.malformed_ppm
    }

    /// Event `i` as the API renders it: the archivable form, whatever the malformed setting.
    pub fn render(&self, i: u64) -> String {
        self.render_as(i, self.id(i), self.millis(i))
    }

    /// Event `i` as served: malformed if the dataset says so.
    pub fn render_served(&self, i: u64) -> String {
        if !self.is_malformed(i) {
            return self.render(i);
        }
        let id = self.id(i);
        let good = self.render(i);
        match mix(self.seed, i, 10) % 3 {
            0 => good.replacen(&format!("{{\"id\":{id},"), "{", 1),
            1 => {
                let ts = format_timestamp(self.millis(i), i, self.compact_offsets);
                good.replacen(&ts, &format!("{ts} (garbled {id})"), 1)
            }
            _ => format!("\"event {id} could not be serialised\""),
        }
    }

    /// Renders event `i`'s content with another id and time (a late arrival reuses the generator this way).
    pub fn render_as(&self, i: u64, id: i64, millis: i64) -> String {
        let (category, action) = self.kind(i);
        let h = mix(self.seed, i, 4);
        let username = username(h);
        let description = description(action, &username, h);
        let ip = ip_address(h, mix(self.seed, username_key(h), 5), self.ipv6_per_mille);
        let timestamp = format_timestamp(millis, i, self.compact_offsets);
        serde_json::to_string(&Wire {
            id,
            timestamp: &timestamp,
            category,
            action,
            description: &description,
            username: &username,
            ip_address: &ip,
        })
        .expect("events serialise")
    }
}

/// A username like `grace.nowak`, with some Unicode and some service accounts.
fn username(h: u64) -> String {
    if h.is_multiple_of(53) {
        return ["svc-billing", "api-integration", "sftp-import"][(h / 53 % 3) as usize]
            .to_string();
    }
    let first = FIRST[(h >> 8) as usize % FIRST.len()];
    let last = LAST[(h >> 16) as usize % LAST.len()];
    format!("{first}.{last}")
}

/// Which user an event's hash picks (the same bits [`username`] reads).
fn username_key(h: u64) -> u64 {
    if h.is_multiple_of(53) {
        h / 53 % 3
    } else {
        let first = (h >> 8) as usize % FIRST.len();
        let last = (h >> 16) as usize % LAST.len();
        3 + (first * LAST.len() + last) as u64
    }
}

/// An address as real tenants see them: mostly the user's home address, sometimes their second one (mobile,
/// VPN), now and then one from elsewhere; a few percent are IPv6.
fn ip_address(h: u64, user: u64, ipv6_per_mille: u64) -> String {
    if (h >> 40) % 1000 < ipv6_per_mille {
        return format!("2001:db8:{:x}::{:x}", user & 0xffff, (user >> 16) & 0xff);
    }
    let b = match (h >> 24) % 100 {
        0..75 => user,
        75..90 => user >> 20,
        _ => h >> 28,
    };
    match b % 3 {
        0 => format!(
            "10.{}.{}.{}",
            (b >> 2) & 0xff,
            (b >> 10) & 0xff,
            1 + ((b >> 18) & 0xfd)
        ),
        1 => format!("203.0.113.{}", 1 + (b >> 2) % 254),
        _ => format!("198.51.100.{}", 1 + (b >> 2) % 254),
    }
}

fn description(action: &str, user: &str, h: u64) -> String {
    let role = ROLES[(h >> 32) as usize % ROLES.len()];
    let n = (h >> 20) % 9000 + 1000;
    let text = match action {
        "user-login-success" => format!("User {user} has logged in"),
        "user-login-failure" => format!("Login failed for {user}: invalid password"),
        "user-logout" => format!("User {user} has logged out"),
        "user-locked-out" => {
            format!("User {user} has been locked out after 5 failed login attempts")
        }
        "password-changed" => format!("User {user} changed their password"),
        "mfa-challenge-failed" => format!("Multi-factor challenge failed for {user}"),
        "role-created" => format!("Role '{role}' has been created by {user}"),
        "role-updated" => format!("Role '{role}' has been updated by {user}"),
        "permission-granted" => {
            format!("Permission 'invoices:approve' granted to '{role}' by {user}")
        }
        "permission-revoked" => {
            format!("Permission 'customers:delete' revoked from '{role}' by {user}")
        }
        "user-created" => format!("User account u{n} has been created by {user}"),
        "user-disabled" => format!("User account u{n} has been disabled by {user}"),
        "user-updated" => format!("User account u{n} has been updated by {user}"),
        "bill-run-closed" => format!("Bill run BR-{n} has been closed by {user}"),
        "invoices-distributed" => format!(
            "{} invoices of bill run BR-{n} have been distributed",
            n % 500 + 1
        ),
        "customer-created" => format!("Customer C-{n} has been created by {user}"),
        _ => format!("{action} by {user}"),
    };
    if h.is_multiple_of(211) {
        // Some descriptions reach the documented limit of 255 characters, in several scripts.
        return format!("{text}: {}", LONG_NOTE.repeat(8))
            .chars()
            .take(255)
            .collect();
    }
    text
}

/// Formats a timestamp the ways real data does: whole seconds, milliseconds, microseconds, an offset; with
/// `compact` offsets, the way Java's and .NET's defaults do (`+0100`, and `+0000` for UTC).
pub fn format_timestamp(millis: i64, i: u64, compact: bool) -> String {
    let t = chrono::DateTime::from_timestamp_millis(millis).expect("timestamps are in range");
    if compact {
        let offset = chrono::FixedOffset::east_opt(if i % 50 == 7 { 3600 } else { 0 })
            .expect("valid offset");
        return t
            .with_timezone(&offset)
            .format("%Y-%m-%dT%H:%M:%S%.3f%z")
            .to_string();
    }
    if i % 50 == 7 {
        let offset = chrono::FixedOffset::east_opt(3600).expect("valid offset");
        return t
            .with_timezone(&offset)
            .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string();
    }
    if millis.rem_euclid(1000) == 0 {
        return t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    if i % 3 == 1 {
        return t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    }
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(count: u64, days: i64) -> Dataset {
        let from_ms = 1_704_067_200_000; // 2024-01-01
        Dataset {
            count,
            from_ms,
            to_ms: from_ms + days * 86_400_000,
            seed: 42,
            ipv6_per_mille: 30,
            malformed_ppm: 0,
            compact_offsets: false,
        }
    }

    #[test]
    fn timestamps_are_monotone_inside_the_range_and_hit_boundaries() {
        for (count, days) in [(100_000, 30), (5_000, 365), (50, 1), (3, 1), (200_000, 1)] {
            let d = dataset(count, days);
            let mut previous = i64::MIN;
            let (mut on_hour, mut whole) = (0, 0);
            for i in 0..count {
                let ms = d.millis(i);
                assert!(ms >= previous, "count {count}: event {i} goes back in time");
                assert!(
                    ms >= d.from_ms && ms < d.to_ms,
                    "count {count}: event {i} outside the range"
                );
                on_hour += u64::from(ms % HOUR_MS == 0);
                whole += u64::from(ms % 1000 == 0);
                previous = ms;
            }
            if count >= 5_000 {
                assert!(
                    on_hour > 10 && whole > count / 10,
                    "count {count}: {on_hour} on the hour, {whole} whole seconds"
                );
            }
        }
    }

    #[test]
    fn ids_ascend_with_gaps() {
        let d = dataset(10_000, 30);
        let ids: Vec<i64> = (0..10_000).map(|i| d.id(i)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.windows(2).any(|w| w[1] - w[0] > 1));
        assert!(*ids.last().unwrap() <= d.max_id());
    }

    #[test]
    fn time_bounds_map_to_indices() {
        let d = dataset(100_000, 30);
        for ms in [
            d.from_ms - 1,
            d.from_ms,
            d.from_ms + 86_400_000,
            d.from_ms + 86_400_000 + 1,
            d.to_ms,
        ] {
            let i = d.first_at_or_after(ms);
            assert!(i == d.count || d.millis(i) >= ms);
            assert!(i == 0 || d.millis(i - 1) < ms);
        }
    }

    #[test]
    fn rendering_is_deterministic_realistic_and_within_documented_lengths() {
        let d = dataset(20_000, 30);
        let again = dataset(20_000, 30);
        let (mut ipv6, mut long, mut billing_first_half) = (0, 0, 0);
        for i in 0..20_000 {
            let text = d.render(i);
            assert_eq!(text, again.render(i));
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["id"], d.id(i));
            let ts = crate::time::parse_server_timestamp(v["timestamp"].as_str().unwrap()).unwrap();
            assert_eq!(ts.timestamp_millis(), d.millis(i));
            let desc = v["description"].as_str().unwrap();
            assert!((1..=255).contains(&desc.chars().count()));
            assert!((1..=100).contains(&v["username"].as_str().unwrap().chars().count()));
            ipv6 += u64::from(v["ipAddress"].as_str().unwrap().contains(':'));
            long += u64::from(desc.chars().count() == 255);
            billing_first_half += u64::from(i < 10_000 && v["category"] == "billing");
        }
        assert!(
            ipv6 > 100 && long > 10,
            "{ipv6} IPv6 addresses, {long} descriptions at the limit"
        );
        assert_eq!(
            billing_first_half, 0,
            "billing events are announced for later"
        );
    }

    #[test]
    fn users_keep_to_a_few_addresses() {
        let d = Dataset {
            ipv6_per_mille: 0,
            ..dataset(50_000, 30)
        };
        let mut by_user: std::collections::HashMap<String, std::collections::HashSet<String>> =
            Default::default();
        for i in 0..50_000 {
            let v: serde_json::Value = serde_json::from_str(&d.render(i)).unwrap();
            let user = v["username"].as_str().unwrap().to_string();
            by_user
                .entry(user)
                .or_default()
                .insert(v["ipAddress"].as_str().unwrap().to_string());
        }
        let events_per_user = 50_000 / by_user.len();
        let typical = by_user.values().map(|ips| ips.len()).sum::<usize>() / by_user.len();
        assert!(
            typical < events_per_user / 3,
            "{typical} addresses per user for {events_per_user} events each"
        );
    }

    #[test]
    fn malformed_items_are_deterministic_and_unarchivable() {
        let d = Dataset {
            malformed_ppm: 50_000,
            ..dataset(2_000, 1)
        };
        let bad: Vec<u64> = (0..2_000).filter(|&i| d.is_malformed(i)).collect();
        assert!(bad.len() > 50 && bad.len() < 200);
        for i in bad {
            let raw = serde_json::value::RawValue::from_string(d.render_served(i)).unwrap();
            let item = crate::sync::classify::classify(
                &raw,
                (chrono::DateTime::UNIX_EPOCH, chrono::Utc::now()),
            );
            assert!(
                matches!(item, crate::model::Item::Reject(_)),
                "{}",
                raw.get()
            );
        }
    }
}
