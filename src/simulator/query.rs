//! Parsing and checking `GET /events` parameters as the API documents them (pure, table-tested).
//!
//! - `page` >= 1 and `pageSize` 1..=1000, both required;
//! - `createdFrom` and `createdTo` required, `yyyy-MM-ddTHH:mm:ssZ` with an optional `lt:` or `gt:` prefix; a
//!   plain value is inclusive or exclusive as the simulator is configured (the docs do not say);
//! - `sort`: comma list of fields, each optionally `:desc` (or `:asc`);
//! - `fields`: comma list of fields to return;
//! - `category`, `action`: `xyz` (equals), `in:x,y`, `like:pattern` (SQL LIKE: `%` any run, `_` one character).
//!
//! Anything malformed is a [`BadRequest`] that the server answers with 400 and `{"error","message"}`.

/// The event fields that can be sorted on or selected.
pub const FIELDS: &[&str] = &[
    "id",
    "timestamp",
    "category",
    "action",
    "description",
    "username",
    "ipAddress",
];

/// Largest documented page size.
pub const MAX_PAGE_SIZE: usize = 1000;

/// A 400 answer's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

/// How a plain (prefix-less) `createdFrom`/`createdTo` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bounds {
    /// `createdFrom <= t <= createdTo`.
    Inclusive,
    /// `createdFrom < t < createdTo`.
    Exclusive,
}

/// One bound on time, in ms since the epoch, inclusive on both ends after conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Smallest timestamp included.
    pub min_ms: i64,
    /// Largest timestamp included.
    pub max_ms: i64,
}

/// A string filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringFilter {
    /// Equal to.
    Equals(String),
    /// One of.
    In(Vec<String>),
    /// SQL LIKE pattern.
    Like(String),
}

impl StringFilter {
    /// Whether `value` passes.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringFilter::Equals(v) => v == value,
            StringFilter::In(vs) => vs.iter().any(|v| v == value),
            StringFilter::Like(p) => like(p, value),
        }
    }
}

/// A sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The field.
    pub field: &'static str,
    /// Descending.
    pub desc: bool,
}

/// A checked `GET /events` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsQuery {
    /// 1-based page.
    pub page: usize,
    /// Items per page.
    pub page_size: usize,
    /// Time bounds.
    pub range: TimeRange,
    /// Sort keys; empty means the server's default order.
    pub sort: Vec<SortKey>,
    /// Fields to return; empty means all.
    pub fields: Vec<&'static str>,
    /// Category filter.
    pub category: Option<StringFilter>,
    /// Action filter.
    pub action: Option<StringFilter>,
}

/// Parses the query string pairs of a request.
pub fn parse(pairs: &[(String, String)], bounds: Bounds) -> Result<EventsQuery, BadRequest> {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let required = |name: &str| {
        get(name).ok_or_else(|| BadRequest(format!("Required parameter '{name}' is missing")))
    };
    let page = parse_int(required("page")?, "page", 1, i32::MAX as usize)?;
    let page_size = parse_int(required("pageSize")?, "pageSize", 1, MAX_PAGE_SIZE)?;
    let mut range = TimeRange {
        min_ms: i64::MIN,
        max_ms: i64::MAX,
    };
    apply_bound(
        &mut range,
        required("createdFrom")?,
        "createdFrom",
        Side::From,
        bounds,
    )?;
    apply_bound(
        &mut range,
        required("createdTo")?,
        "createdTo",
        Side::To,
        bounds,
    )?;
    let sort = match get("sort") {
        None => Vec::new(),
        Some(text) => text.split(',').map(sort_key).collect::<Result<_, _>>()?,
    };
    let fields = match get("fields") {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .map(|f| field(f.trim(), "fields"))
            .collect::<Result<_, _>>()?,
    };
    Ok(EventsQuery {
        page,
        page_size,
        range,
        sort,
        fields,
        category: get("category")
            .map(|v| string_filter(v, "category"))
            .transpose()?,
        action: get("action")
            .map(|v| string_filter(v, "action"))
            .transpose()?,
    })
}

fn parse_int(text: &str, name: &str, min: usize, max: usize) -> Result<usize, BadRequest> {
    match text.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(BadRequest(format!(
            "Parameter '{name}' must be an integer between {min} and {max}, got '{text}'"
        ))),
    }
}

#[derive(Clone, Copy)]
enum Side {
    From,
    To,
}

/// Reads one date filter and narrows the range with it.
fn apply_bound(
    range: &mut TimeRange,
    text: &str,
    name: &str,
    side: Side,
    bounds: Bounds,
) -> Result<(), BadRequest> {
    let (prefix, value) = match text.split_once(':') {
        Some((p @ ("lt" | "gt"), rest)) => (Some(p), rest),
        _ => (None, text),
    };
    let ms = parse_api_time(value)
        .ok_or_else(|| BadRequest(format!("Parameter '{name}' must be yyyy-MM-ddTHH:mm:ssZ, optionally with lt: or gt:, got '{text}'")))?;
    let inclusive = bounds == Bounds::Inclusive;
    match (prefix, side) {
        (Some("gt"), _) => range.min_ms = range.min_ms.max(ms + 1),
        (Some("lt"), _) => range.max_ms = range.max_ms.min(ms - 1),
        (_, Side::From) => range.min_ms = range.min_ms.max(if inclusive { ms } else { ms + 1 }),
        (_, Side::To) => range.max_ms = range.max_ms.min(if inclusive { ms } else { ms - 1 }),
    }
    Ok(())
}

/// Parses exactly `yyyy-MM-ddTHH:mm:ssZ` to ms since the epoch.
fn parse_api_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(&text[..19], "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

fn sort_key(text: &str) -> Result<SortKey, BadRequest> {
    let text = text.trim();
    let (name, desc) = match text.rsplit_once(':') {
        Some((name, "desc")) => (name, true),
        Some((name, "asc")) => (name, false),
        Some(_) => {
            return Err(BadRequest(format!(
                "Sort direction in '{text}' must be asc or desc"
            )));
        }
        None => (text, false),
    };
    Ok(SortKey {
        field: field(name, "sort")?,
        desc,
    })
}

fn field(name: &str, param: &str) -> Result<&'static str, BadRequest> {
    FIELDS.iter().find(|f| **f == name).copied().ok_or_else(|| {
        BadRequest(format!(
            "Unknown field '{name}' in '{param}'; known fields: {}",
            FIELDS.join(", ")
        ))
    })
}

fn string_filter(text: &str, name: &str) -> Result<StringFilter, BadRequest> {
    let empty = || BadRequest(format!("Parameter '{name}' must not be empty"));
    if let Some(list) = text.strip_prefix("in:") {
        let values: Vec<String> = list
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(empty());
        }
        return Ok(StringFilter::In(values));
    }
    if let Some(pattern) = text.strip_prefix("like:") {
        if pattern.is_empty() {
            return Err(empty());
        }
        return Ok(StringFilter::Like(pattern.to_string()));
    }
    if text.is_empty() {
        return Err(empty());
    }
    Ok(StringFilter::Equals(text.to_string()))
}

/// SQL LIKE, case-insensitive for ASCII: `%` matches any run of characters, `_` exactly one.
pub fn like(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let v: Vec<char> = value.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Iterative matcher with backtracking to the last `%`.
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    const BASE: &str =
        "page=1&pageSize=1000&createdFrom=2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z";
    const FROM: i64 = 1_704_067_200_000;
    const TO: i64 = FROM + 86_400_000;

    #[test]
    fn valid_requests() {
        let q = parse(&pairs(BASE), Bounds::Inclusive).unwrap();
        assert_eq!((q.page, q.page_size), (1, 1000));
        assert_eq!(
            q.range,
            TimeRange {
                min_ms: FROM,
                max_ms: TO
            }
        );
        let q = parse(&pairs(BASE), Bounds::Exclusive).unwrap();
        assert_eq!(
            q.range,
            TimeRange {
                min_ms: FROM + 1,
                max_ms: TO - 1
            }
        );
        let q = parse(
            &pairs("page=2&pageSize=5&createdFrom=gt:2024-01-01T00:00:00Z&createdTo=lt:2024-01-02T00:00:00Z&sort=timestamp:desc,id&fields=id,timestamp&category=in:authentication,billing&action=like:user-login-%"),
            Bounds::Inclusive,
        )
        .unwrap();
        assert_eq!(
            q.range,
            TimeRange {
                min_ms: FROM + 1,
                max_ms: TO - 1
            }
        );
        assert_eq!(
            q.sort,
            vec![
                SortKey {
                    field: "timestamp",
                    desc: true
                },
                SortKey {
                    field: "id",
                    desc: false
                }
            ]
        );
        assert_eq!(q.fields, vec!["id", "timestamp"]);
        assert_eq!(
            q.category,
            Some(StringFilter::In(vec![
                "authentication".into(),
                "billing".into()
            ]))
        );
        assert_eq!(q.action, Some(StringFilter::Like("user-login-%".into())));
    }

    #[test]
    fn malformed_requests() {
        let cases = [
            (
                "pageSize=10&createdFrom=2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z",
                "'page' is missing",
            ),
            (
                "page=0&pageSize=10&createdFrom=2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z",
                "'page' must be",
            ),
            (
                "page=1&pageSize=1001&createdFrom=2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z",
                "'pageSize' must be",
            ),
            (
                "page=1&pageSize=x&createdFrom=2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z",
                "'pageSize' must be",
            ),
            (
                "page=1&pageSize=10&createdTo=2024-01-02T00:00:00Z",
                "'createdFrom' is missing",
            ),
            (
                "page=1&pageSize=10&createdFrom=2024-01-01&createdTo=2024-01-02T00:00:00Z",
                "'createdFrom' must be",
            ),
            (
                "page=1&pageSize=10&createdFrom=2024-01-01T00:00:00.000Z&createdTo=2024-01-02T00:00:00Z",
                "'createdFrom' must be",
            ),
            (
                "page=1&pageSize=10&createdFrom=2024-01-01T00:00:00%2B01:00&createdTo=2024-01-02T00:00:00Z",
                "'createdFrom' must be",
            ),
            (
                "page=1&pageSize=10&createdFrom=ge:2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z",
                "'createdFrom' must be",
            ),
            (
                "page=1&pageSize=10&createdFrom=2024-02-30T00:00:00Z&createdTo=2024-03-02T00:00:00Z",
                "'createdFrom' must be",
            ),
            (&format!("{BASE}&sort=name"), "Unknown field 'name'"),
            (&format!("{BASE}&sort=id:down"), "must be asc or desc"),
            (
                &format!("{BASE}&fields=id,secret"),
                "Unknown field 'secret'",
            ),
            (&format!("{BASE}&category="), "'category' must not be empty"),
            (&format!("{BASE}&action=in:"), "'action' must not be empty"),
        ];
        for (query, want) in cases {
            let err = parse(&pairs(query), Bounds::Inclusive).unwrap_err();
            assert!(err.0.contains(want), "{query}: {}", err.0);
        }
    }

    #[test]
    fn like_patterns() {
        let cases = [
            ("user-login-%", "user-login-success", true),
            ("user-login-%", "user-logout", false),
            ("%login%", "user-login-failure", true),
            ("user-log_ut", "user-logout", true),
            ("USER-%", "user-created", true),
            ("%", "", true),
            ("a%b%c", "aXXbYYc", true),
            ("a%b%c", "aXXbYY", false),
            ("_", "", false),
        ];
        for (pattern, value, want) in cases {
            assert_eq!(like(pattern, value), want, "{pattern} ~ {value}");
        }
    }
}
