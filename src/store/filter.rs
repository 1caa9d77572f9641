//! Filters in the API's syntax (`xyz` equals, `in:x,y`, `like:pattern`) and time bounds, turned into SQL with
//! bound parameters (pure, table-tested). Values never become SQL text.

use crate::model::{EventSelection, Filter};
use crate::time;

/// A WHERE clause (without the keyword; `1` when empty) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where {
    /// The condition, with `?` placeholders.
    pub sql: String,
    /// The parameters, in order.
    pub params: Vec<String>,
}

/// Builds the condition for events (table alias `e`) of a selection: `[from, to)` and the filters.
pub fn events_where(selection: &EventSelection) -> Where {
    let mut parts = Vec::new();
    let mut params = Vec::new();
    if let Some(from) = selection.from {
        parts.push("e.timestamp >= ?".to_string());
        params.push(time::to_stored(from));
    }
    if let Some(to) = selection.to {
        parts.push("e.timestamp < ?".to_string());
        params.push(time::to_stored(to));
    }
    let filters = &selection.filters;
    for (column, filter) in [
        ("e.category", &filters.category),
        ("e.action", &filters.action),
    ] {
        match filter {
            None => {}
            Some(Filter::Eq(value)) => {
                parts.push(format!("{column} = ?"));
                params.push(value.clone());
            }
            Some(Filter::In(values)) => {
                parts.push(format!(
                    "{column} IN ({})",
                    vec!["?"; values.len()].join(", ")
                ));
                params.extend(values.iter().cloned());
            }
            Some(Filter::Like(pattern)) => {
                parts.push(format!("{column} LIKE ?"));
                params.push(pattern.clone());
            }
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
    use crate::model::Filters;
    use crate::time::Timestamp;

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
        ];
        for (from, to, category, action, sql, params) in cases {
            let parse = |f: Option<&str>| f.map(|f| Filter::parse(f).unwrap());
            let w = events_where(&EventSelection {
                from,
                to,
                filters: Filters {
                    category: parse(category),
                    action: parse(action),
                },
            });
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
