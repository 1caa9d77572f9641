//! The item classifier: one raw item of a page in, an archivable [`Event`] or a [`Reject`] out.
//!
//! Only what cannot be archived is rejected: an item that is not a JSON object, has no usable id, or has no
//! parseable timestamp. Everything else is kept as received, even when it breaks the documented constraints
//! (an IPv6 address, a long description, a number where text was expected, extra fields, a timestamp outside
//! the requested window: the last is flagged and counted, never dropped).

use crate::api::wire::WireEvent;
use crate::model::{Event, Item, Reject, RejectReason};
use crate::time::{self, Timestamp};
use serde_json::Value;
use serde_json::value::RawValue;

/// Classifies one item; `requested` is the window's `(createdFrom, createdTo)`, inclusive.
pub fn classify(raw: &RawValue, requested: (Timestamp, Timestamp)) -> Item {
    let text = raw.get();
    let reject = |reason: RejectReason| {
        Item::Reject(Reject {
            raw: text.to_string(),
            reason,
        })
    };
    if !text.starts_with('{') {
        return reject(RejectReason::NotAnObject(kind_of(text)));
    }
    let wire: WireEvent = match serde_json::from_str(text) {
        Ok(w) => w,
        Err(e) => return reject(RejectReason::Unreadable(e.to_string())),
    };
    let id = match &wire.id {
        None | Some(Value::Null) => return reject(RejectReason::NoId),
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().expect("checked"),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => {
            s.trim().parse().expect("checked")
        }
        Some(other) => return reject(RejectReason::IdNotInteger(other.to_string())),
    };
    let timestamp = match &wire.timestamp {
        None | Some(Value::Null) => return reject(RejectReason::NoTimestamp),
        Some(Value::String(s)) => match time::parse_server_timestamp(s) {
            Some(t) => t,
            None => return reject(RejectReason::UnparseableTimestamp(s.clone())),
        },
        Some(other) => return reject(RejectReason::TimestampNotString(other.to_string())),
    };
    Item::Event(Event {
        id,
        timestamp: time::to_stored(timestamp),
        category: text_of(wire.category).unwrap_or_default(),
        action: text_of(wire.action).unwrap_or_default(),
        description: text_of(wire.description),
        username: text_of(wire.username),
        ip_address: text_of(wire.ip_address),
        raw: text.to_string(),
        digest: crate::digest::sha256_hex(text.as_bytes()),
        out_of_window: timestamp < requested.0 || timestamp > requested.1,
    })
}

/// A field as text: strings as they are, null as nothing, anything else as its JSON.
fn text_of(value: Option<Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

fn kind_of(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> (Timestamp, Timestamp) {
        (
            time::parse_time_arg("2024-01-01").unwrap(),
            time::parse_time_arg("2024-01-02").unwrap(),
        )
    }

    fn run(text: &str) -> Item {
        classify(&RawValue::from_string(text.to_string()).unwrap(), window())
    }

    fn reason(text: &str) -> String {
        match run(text) {
            Item::Reject(r) => {
                assert_eq!(r.raw, text, "a reject keeps the item as received");
                r.reason.to_string()
            }
            Item::Event(e) => panic!("{text} was accepted as {e:?}"),
        }
    }

    #[test]
    fn rejects() {
        let cases = [
            ("42", "not a JSON object (it is a number)"),
            (r#""event""#, "not a JSON object (it is a string)"),
            ("[1]", "not a JSON object (it is an array)"),
            ("null", "not a JSON object (it is null)"),
            (r#"{"timestamp":"2024-01-01T10:00:00Z"}"#, "no id"),
            (r#"{"id":null,"timestamp":"2024-01-01T10:00:00Z"}"#, "no id"),
            (
                r#"{"id":1.5,"timestamp":"2024-01-01T10:00:00Z"}"#,
                "id is not an integer: 1.5",
            ),
            (
                r#"{"id":"abc","timestamp":"2024-01-01T10:00:00Z"}"#,
                r#"id is not an integer: "abc""#,
            ),
            (r#"{"id":1}"#, "no timestamp"),
            (
                r#"{"id":1,"timestamp":"yesterday"}"#,
                r#"unparseable timestamp: "yesterday""#,
            ),
            (
                r#"{"id":1,"timestamp":1700000000}"#,
                "timestamp is not a string: 1700000000",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(reason(text), want, "{text}");
        }
        assert!(
            reason(r#"{"id":1,"id":2,"timestamp":"2024-01-01T10:00:00Z"}"#)
                .contains("duplicate field")
        );
    }

    #[test]
    fn irregular_but_archivable_items_are_kept_as_received() {
        let long = "é".repeat(400);
        let text = format!(
            r#"{{"id":"77","timestamp":"2024-01-01T10:00:00.5+01:00","category":7,"description":"{long}","ipAddress":"2001:db8::1","new":{{"x":1}}}}"#
        );
        let Item::Event(e) = run(&text) else {
            panic!("rejected")
        };
        assert_eq!(e.id, 77);
        assert_eq!(e.timestamp, "2024-01-01T09:00:00.500Z");
        assert_eq!(e.category, "7");
        assert_eq!(e.action, "");
        assert_eq!(e.description.as_deref(), Some(long.as_str()));
        assert_eq!(e.ip_address.as_deref(), Some("2001:db8::1"));
        assert_eq!(e.raw, text);
        assert!(!e.out_of_window);
    }

    #[test]
    fn timestamps_outside_the_requested_bounds_are_flagged() {
        let cases = [
            ("2023-12-31T23:59:59.999Z", true),
            ("2024-01-01T00:00:00Z", false),
            ("2024-01-02T00:00:00Z", false),
            ("2024-01-02T00:00:00.001Z", true),
        ];
        for (ts, out) in cases {
            let Item::Event(e) = run(&format!(r#"{{"id":1,"timestamp":"{ts}"}}"#)) else {
                panic!()
            };
            assert_eq!(e.out_of_window, out, "{ts}");
        }
    }
}
