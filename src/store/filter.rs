//! Filters in the API's syntax (`xyz` equals, `in:x,y`, `like:pattern`) and time bounds, turned into SQL with
//! bound parameters (pure, table-tested). Values never become SQL text.

use crate::time::{self, Timestamp};

/// A WHERE clause (without the keyword; `1` when empty) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where {
    /// The condition, with `?` placeholders.
    pub sql: String,
    /// The parameters, in order.
    pub params: Vec<String>,
}

/// Builds the condition for events (table alias `e`) in `[from, to)` matching the category and action filters.
pub fn events_where(
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    category: Option<&str>,
    action: Option<&str>,
) -> Where {
    let mut parts = Vec::new();
    let mut params = Vec::new();
    if let Some(from) = from {
        parts.push("e.timestamp >= ?".to_string());
        params.push(time::to_stored(from));
    }
    if let Some(to) = to {
        parts.push("e.timestamp < ?".to_string());
        params.push(time::to_stored(to));
    }
    for (column, filter) in [("e.category", category), ("e.action", action)] {
        let Some(filter) = filter else { continue };
        if let Some(list) = filter.strip_prefix("in:") {
            let values: Vec<String> = list
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            parts.push(format!(
                "{column} IN ({})",
                vec!["?"; values.len().max(1)].join(", ")
            ));
            if values.is_empty() {
                params.push(String::new());
            }
            params.extend(values);
        } else if let Some(pattern) = filter.strip_prefix("like:") {
            parts.push(format!("{column} LIKE ?"));
            params.push(pattern.to_string());
        } else {
            parts.push(format!("{column} = ?"));
            params.push(filter.to_string());
        }
    }
    Where {
        sql: if parts.is_empty() {
            "1".into()
        } else {
            parts.join(" AND ")
        },
        params,
    }
}

/// Turns what a person types into an FTS5 query: each word a quoted phrase (so `bob.smith` or `o'brien` are
/// not read as FTS5 syntax), all of them required; a trailing `*` keeps prefix search.
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|word| {
            let (word, prefix) = match word.strip_suffix('*') {
                Some(w) if !w.is_empty() => (w, "*"),
                _ => (word, ""),
            };
            format!("\"{}\"{prefix}", word.replace('"', "\"\""))
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        time::parse_time_arg(s).unwrap()
    }

    #[test]
    fn filters_become_bound_sql() {
        /// (from, to, category, action, expected SQL, expected parameters).
        type Case<'a> = (
            Option<Timestamp>,
            Option<Timestamp>,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (None, None, None, None, "1", vec![]),
            (
                Some(t("2024-01-01")),
                Some(t("2024-02-01")),
                None,
                None,
                "e.timestamp >= ? AND e.timestamp < ?",
                vec!["2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z"],
            ),
            (
                None,
                None,
                Some("authentication"),
                None,
                "e.category = ?",
                vec!["authentication"],
            ),
            (
                None,
                None,
                Some("in:billing, invoicing"),
                None,
                "e.category IN (?, ?)",
                vec!["billing", "invoicing"],
            ),
            (
                None,
                None,
                None,
                Some("like:user-login-%"),
                "e.action LIKE ?",
                vec!["user-login-%"],
            ),
            (
                None,
                None,
                None,
                Some("x' OR '1'='1"),
                "e.action = ?",
                vec!["x' OR '1'='1"],
            ),
            (None, None, Some("in:"), None, "e.category IN (?)", vec![""]),
        ];
        for (from, to, category, action, sql, params) in cases {
            let w = events_where(from, to, category, action);
            assert_eq!(
                (
                    w.sql.as_str(),
                    w.params.iter().map(String::as_str).collect::<Vec<_>>()
                ),
                (sql, params)
            );
        }
    }

    #[test]
    fn search_text_becomes_a_safe_fts_query() {
        let cases = [
            ("bob.smith", Some(r#""bob.smith""#)),
            ("locked out", Some(r#""locked" AND "out""#)),
            ("adm*", Some(r#""adm"*"#)),
            (r#"say "hi""#, Some(r#""say" AND """hi""""#)),
            ("o'brien OR 1", Some(r#""o'brien" AND "OR" AND "1""#)),
            ("*", Some(r#""*""#)),
            ("   ", None),
        ];
        for (text, want) in cases {
            assert_eq!(fts_query(text).as_deref(), want, "{text}");
        }
    }
}
