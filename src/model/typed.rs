//! An event's typed columns, derived from its raw JSON text: the one derivation both sides use. The sync's
//! classifier turns each item of a page into an event (or a reject) with it; `verify` derives the columns
//! again from each archived `raw` and compares them with the stored ones, so an edit of a typed column is
//! caught even though the digests cover `raw` only.
//!
//! Only what cannot be archived is refused: text that is not a JSON object, an object that does not parse
//! (a duplicate field), no usable id, or no parseable timestamp. Everything else is kept as received, even
//! when it breaks the documented constraints: a field that is not text is stored as its JSON, a null or
//! missing field as nothing (`category` and `action` as the empty text).
//!
//! The documented fields are read leniently (any JSON value) and without copying: text that needs no
//! unescaping is borrowed from the raw text, so deriving the columns of an archived event allocates only for
//! its timestamp.

use super::RejectReason;
use crate::time::{self, Timestamp};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// The typed columns of an archivable event, as derived from its raw text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedColumns<'a> {
    /// The event id (`events.id`).
    pub id: i64,
    /// The instant of its timestamp (`events.timestamp` holds it in stored form).
    pub timestamp: Timestamp,
    /// The category (empty when the server sent none).
    pub category: Cow<'a, str>,
    /// The action (empty when the server sent none).
    pub action: Cow<'a, str>,
    /// The description, if any.
    pub description: Option<Cow<'a, str>>,
    /// The username, if any.
    pub username: Option<Cow<'a, str>>,
    /// The IP address, if any, as sent.
    pub ip_address: Option<Cow<'a, str>>,
}

/// Derives the typed columns of an event from its raw JSON text, or says why it cannot be archived.
pub fn typed_columns(raw: &str) -> Result<TypedColumns<'_>, RejectReason> {
    if !raw.starts_with('{') {
        return Err(RejectReason::NotAnObject(kind_of(raw)));
    }
    let fields: Fields<'_> =
        serde_json::from_str(raw).map_err(|e| RejectReason::Unreadable(e.to_string()))?;
    let id = match fields.id {
        None | Some(Field::Json(Value::Null)) => return Err(RejectReason::NoId),
        Some(Field::Json(Value::Number(n))) if n.as_i64().is_some() => n.as_i64().expect("checked"),
        Some(Field::Text(s)) => match s.trim().parse::<i64>() {
            Ok(id) => id,
            Err(_) => return Err(RejectReason::IdNotInteger(Value::from(s).to_string())),
        },
        Some(Field::Json(other)) => return Err(RejectReason::IdNotInteger(other.to_string())),
    };
    let timestamp = match fields.timestamp {
        None | Some(Field::Json(Value::Null)) => return Err(RejectReason::NoTimestamp),
        Some(Field::Text(s)) => match time::parse_server_timestamp(&s) {
            Some(t) => t,
            None => return Err(RejectReason::UnparseableTimestamp(s.into_owned())),
        },
        Some(Field::Json(other)) => {
            return Err(RejectReason::TimestampNotString(other.to_string()));
        }
    };
    Ok(TypedColumns {
        id,
        timestamp,
        category: text_of(fields.category).unwrap_or_default(),
        action: text_of(fields.action).unwrap_or_default(),
        description: text_of(fields.description),
        username: text_of(fields.username),
        ip_address: text_of(fields.ip_address),
    })
}

/// The typed columns of an `events` row as stored, to compare with what its `raw` derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredColumns<'a> {
    /// `events.id`.
    pub id: i64,
    /// `events.timestamp`, in stored form.
    pub timestamp: &'a str,
    /// `events.category`.
    pub category: &'a str,
    /// `events.action`.
    pub action: &'a str,
    /// `events.description`.
    pub description: Option<&'a str>,
    /// `events.username`.
    pub username: Option<&'a str>,
    /// `events.ip_address`.
    pub ip_address: Option<&'a str>,
}

impl TypedColumns<'_> {
    /// The stored columns that are not what these derived columns say (exactly as the sync stores them).
    pub fn differences(&self, stored: &StoredColumns<'_>) -> ColumnSet {
        let mut set = ColumnSet::default();
        let mut check = |column, same: bool| {
            if !same {
                set.insert(column);
            }
        };
        check(EventColumn::Id, self.id == stored.id);
        check(
            EventColumn::Timestamp,
            time::to_stored(self.timestamp) == stored.timestamp,
        );
        check(EventColumn::Category, self.category == stored.category);
        check(EventColumn::Action, self.action == stored.action);
        check(
            EventColumn::Description,
            self.description.as_deref() == stored.description,
        );
        check(
            EventColumn::Username,
            self.username.as_deref() == stored.username,
        );
        check(
            EventColumn::IpAddress,
            self.ip_address.as_deref() == stored.ip_address,
        );
        set
    }
}

/// A column of `events` derived from `raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventColumn {
    /// `id`.
    Id,
    /// `timestamp`.
    Timestamp,
    /// `category`.
    Category,
    /// `action`.
    Action,
    /// `description`.
    Description,
    /// `username`.
    Username,
    /// `ip_address`.
    IpAddress,
}

impl EventColumn {
    /// Every derived column, in schema order.
    pub const ALL: [EventColumn; 7] = [
        EventColumn::Id,
        EventColumn::Timestamp,
        EventColumn::Category,
        EventColumn::Action,
        EventColumn::Description,
        EventColumn::Username,
        EventColumn::IpAddress,
    ];

    /// The column's name in `events`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventColumn::Id => "id",
            EventColumn::Timestamp => "timestamp",
            EventColumn::Category => "category",
            EventColumn::Action => "action",
            EventColumn::Description => "description",
            EventColumn::Username => "username",
            EventColumn::IpAddress => "ip_address",
        }
    }

    /// Its bit in a [`ColumnSet`].
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of derived columns (those found different), iterated in schema order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnSet(u8);

impl ColumnSet {
    /// Adds a column.
    pub fn insert(&mut self, column: EventColumn) {
        self.0 |= column.bit();
    }

    /// Whether no column is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The columns in the set, in schema order.
    pub fn iter(self) -> impl Iterator<Item = EventColumn> {
        EventColumn::ALL
            .into_iter()
            .filter(move |c| self.0 & c.bit() != 0)
    }
}

impl FromIterator<EventColumn> for ColumnSet {
    fn from_iter<I: IntoIterator<Item = EventColumn>>(columns: I) -> Self {
        let mut set = ColumnSet::default();
        columns.into_iter().for_each(|c| set.insert(c));
        set
    }
}

/// The documented event fields, read leniently: every field is any JSON value, so nothing fails to parse but
/// a duplicate field (what the API sends as JSON is already known to be JSON).
#[derive(serde::Deserialize)]
struct Fields<'a> {
    /// Event id (documented int64, not marked required).
    #[serde(default, borrow)]
    id: Option<Field<'a>>,
    /// Creation time (documented date-time, required).
    #[serde(default, borrow)]
    timestamp: Option<Field<'a>>,
    /// Category (documented `[a-zA-Z0-9_-]{1,100}`).
    #[serde(default, borrow)]
    category: Option<Field<'a>>,
    /// Action (documented `[a-zA-Z0-9_-]{1,100}`).
    #[serde(default, borrow)]
    action: Option<Field<'a>>,
    /// Description (documented up to 255 characters).
    #[serde(default, borrow)]
    description: Option<Field<'a>>,
    /// Username (documented up to 100 characters).
    #[serde(default, borrow)]
    username: Option<Field<'a>>,
    /// IP address (documented IPv4).
    #[serde(default, borrow, rename = "ipAddress")]
    ip_address: Option<Field<'a>>,
}

/// One field's value: text (borrowed from the raw text unless it had escapes), or any other JSON value.
#[derive(Debug, PartialEq)]
enum Field<'a> {
    /// A JSON string.
    Text(Cow<'a, str>),
    /// Anything else, as a JSON value.
    Json(Value),
}

/// A field as text: strings as they are, null as nothing, anything else as its JSON.
fn text_of(field: Option<Field<'_>>) -> Option<Cow<'_, str>> {
    match field? {
        Field::Text(s) => Some(s),
        Field::Json(Value::Null) => None,
        Field::Json(other) => Some(Cow::Owned(other.to_string())),
    }
}

/// What a text that is not a JSON object is instead.
fn kind_of(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

/// Reads a [`Field`]: strings as text, everything else exactly as `serde_json::Value` reads it.
struct FieldVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Field<'a>, E> {
        Ok(Field::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field<'a>, E> {
        Ok(Field::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Field<'a>, E> {
        Ok(Field::Text(Cow::Owned(v)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::from(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'a>, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Field::Json)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'a>, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Field::Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> String {
        match typed_columns(text) {
            Err(reason) => reason.to_string(),
            Ok(c) => panic!("{text} was accepted as {c:?}"),
        }
    }

    #[test]
    fn what_cannot_be_archived_says_why() {
        let cases = [
            ("42", "not a JSON object (it is a number)"),
            (r#""event""#, "not a JSON object (it is a string)"),
            ("[1]", "not a JSON object (it is an array)"),
            ("null", "not a JSON object (it is null)"),
            ("true", "not a JSON object (it is a boolean)"),
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
            (
                r#"{"id":"a\"b","timestamp":"2024-01-01T10:00:00Z"}"#,
                r#"id is not an integer: "a\"b""#,
            ),
            (
                r#"{"id":[1],"timestamp":"2024-01-01T10:00:00Z"}"#,
                "id is not an integer: [1]",
            ),
            (r#"{"id":1}"#, "no timestamp"),
            (r#"{"id":1,"timestamp":null}"#, "no timestamp"),
            (
                r#"{"id":1,"timestamp":"yesterday"}"#,
                r#"unparseable timestamp: "yesterday""#,
            ),
            (
                r#"{"id":1,"timestamp":1700000000}"#,
                "timestamp is not a string: 1700000000",
            ),
            (
                r#"{"id":1,"timestamp":{"at": 1}}"#,
                r#"timestamp is not a string: {"at":1}"#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(reason(text), want, "{text}");
        }
    }

    #[test]
    fn an_unreadable_object_is_described_as_the_parser_found_it() {
        let cases = [
            (
                r#"{"id":1,"id":2,"timestamp":"2024-01-01T10:00:00Z"}"#,
                "unreadable object: duplicate field `id` at line 1 column 12",
            ),
            (
                r#"{"id":1,"timestamp":"2024-01-01T10:00:00Z","description":"\ud800"}"#,
                "unreadable object: unexpected end of hex escape at line 1 column 65",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(reason(text), want, "{text}");
        }
    }

    #[test]
    fn fields_are_kept_as_received_text_borrowed_where_it_can_be() {
        let long = "é".repeat(400);
        let text = format!(
            r#"{{"id":" 77 ","timestamp":"2024-01-01T10:00:00.5+01:00","category":7,"action":null,"description":"{long}","username":"a\u00e9\"b","ipAddress":"2001:db8::1","new":{{"x":1}}}}"#
        );
        let c = typed_columns(&text).unwrap();
        assert_eq!(c.id, 77);
        assert_eq!(time::to_stored(c.timestamp), "2024-01-01T09:00:00.500Z");
        assert_eq!(c.category, "7");
        assert_eq!(c.action, "");
        assert_eq!(c.description.as_deref(), Some(long.as_str()));
        assert!(matches!(c.description, Some(Cow::Borrowed(_))));
        assert_eq!(c.username.as_deref(), Some("aé\"b"));
        assert!(matches!(c.username, Some(Cow::Owned(_))));
        assert_eq!(c.ip_address.as_deref(), Some("2001:db8::1"));
        let odd = typed_columns(
            r#"{"id":1,"timestamp":"2024-01-01T10:00:00Z","category":{"b": [1, 2.50, true]},"action":-3,"username":1e3}"#,
        )
        .unwrap();
        assert_eq!(odd.category, r#"{"b":[1,2.5,true]}"#);
        assert_eq!(odd.action, "-3");
        assert_eq!(odd.username.as_deref(), Some("1000.0"));
        assert_eq!((odd.description, odd.ip_address), (None, None));
    }

    #[test]
    fn stored_columns_differ_where_they_are_not_what_raw_says() {
        let raw = r#"{"id":5,"timestamp":"2024-01-01T10:00:00Z","category":"authentication","action":"user-login-success","username":"bob","ipAddress":"10.0.0.1"}"#;
        let derived = typed_columns(raw).unwrap();
        let stored = StoredColumns {
            id: 5,
            timestamp: "2024-01-01T10:00:00.000Z",
            category: "authentication",
            action: "user-login-success",
            description: None,
            username: Some("bob"),
            ip_address: Some("10.0.0.1"),
        };
        let cases = [
            ("as synced", stored, ""),
            ("id", StoredColumns { id: 6, ..stored }, "id"),
            (
                "another spelling of the same instant",
                StoredColumns {
                    timestamp: "2024-01-01T10:00:00Z",
                    ..stored
                },
                "timestamp",
            ),
            (
                "user and action",
                StoredColumns {
                    username: Some("mallory"),
                    action: "user-logout",
                    ..stored
                },
                "action, username",
            ),
            (
                "a description where raw has none, an address removed",
                StoredColumns {
                    description: Some(""),
                    ip_address: None,
                    ..stored
                },
                "description, ip_address",
            ),
            (
                "category",
                StoredColumns {
                    category: "",
                    ..stored
                },
                "category",
            ),
        ];
        for (name, stored, want) in cases {
            let found: Vec<&str> = derived
                .differences(&stored)
                .iter()
                .map(EventColumn::as_str)
                .collect();
            assert_eq!(found.join(", "), want, "{name}");
        }
        let all: ColumnSet = EventColumn::ALL.into_iter().collect();
        assert_eq!(all.iter().count(), 7);
        assert!(ColumnSet::default().is_empty() && !all.is_empty());
    }
}
