//! The item classifier: one raw item of a page in, an archivable [`Event`] or a [`Reject`] out.
//!
//! Only what cannot be archived is rejected: an item that is not a JSON object, has no usable id, or has no
//! parseable timestamp. Everything else is kept as received, even when it breaks the documented constraints
//! (an IPv6 address, a long description, a number where text was expected, extra fields, a timestamp outside
//! the requested window: the last is flagged and counted, never dropped). Which is which, and the typed
//! columns, come from [`typed_columns`]: `verify` derives them again from `raw` with the same function.

use crate::model::{Event, Item, Reject, typed_columns};
use crate::time::{self, Timestamp};
use serde_json::value::RawValue;

/// Classifies one item; `requested` is the window's `(createdFrom, createdTo)`, inclusive.
pub fn classify(raw: &RawValue, requested: (Timestamp, Timestamp)) -> Item {
    let text = raw.get();
    match typed_columns(text) {
        Err(reason) => Item::Reject(Reject {
            raw: text.to_string(),
            reason,
        }),
        Ok(c) => Item::Event(Event {
            id: c.id,
            timestamp: time::to_stored(c.timestamp),
            category: c.category.into_owned(),
            action: c.action.into_owned(),
            description: c.description.map(Into::into),
            username: c.username.map(Into::into),
            ip_address: c.ip_address.map(Into::into),
            raw: text.to_string(),
            digest: crate::digest::sha256_hex(text.as_bytes()),
            leaf: Some(
                crate::tlog::leaf_hash(crate::model::LeafKind::Event, c.id, text.as_bytes()).0,
            ),
            out_of_window: c.timestamp < requested.0 || c.timestamp > requested.1,
        }),
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
    fn rejects_keep_the_item_as_received_with_the_reason() {
        // Every reason is table-tested with the derivation (`model::typed`); here, that a reject carries it.
        let cases = [
            ("42", "not a JSON object (it is a number)"),
            (r#"{"timestamp":"2024-01-01T10:00:00Z"}"#, "no id"),
            (
                r#"{"id":1,"id":2,"timestamp":"2024-01-01T10:00:00Z"}"#,
                "unreadable object: duplicate field `id` at line 1 column 12",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(reason(text), want, "{text}");
        }
    }

    #[test]
    fn events_carry_their_columns_in_stored_form_their_raw_and_its_digest() {
        let text = r#"{"id":"77","timestamp":"2024-01-01T10:00:00.5+01:00","category":7,"username":"b\u00f6b","new":{"x":1}}"#;
        let Item::Event(e) = run(text) else {
            panic!("rejected")
        };
        let want = Event {
            id: 77,
            timestamp: "2024-01-01T09:00:00.500Z".into(),
            category: "7".into(),
            action: String::new(),
            description: None,
            username: Some("böb".into()),
            ip_address: None,
            raw: text.into(),
            digest: crate::digest::sha256_hex(text.as_bytes()),
            leaf: Some(
                crate::tlog::leaf_hash(crate::model::LeafKind::Event, 77, text.as_bytes()).0,
            ),
            out_of_window: false,
        };
        assert_eq!(e, want);
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
