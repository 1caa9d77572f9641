//! Wire types: the API's JSON as the server sends it, kept apart from the domain types in [`crate::model`].
//!
//! A page is a bare JSON array. Each item is kept as the exact text the server sent ([`RawValue`]), so the
//! archive's `raw` column holds unknown fields, odd spellings and all. An item's documented fields are read
//! from that text by the model ([`crate::model::typed`]), leniently (any JSON type), so that a server breaking
//! the documented constraints loses nothing, and so that `verify` can derive them again from `raw`.

use serde::Deserialize;
use serde_json::value::RawValue;

/// A page of items, each the exact JSON text the server sent for it.
pub type RawPage = Vec<Box<RawValue>>;

/// Why a body is not a page, in terms a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum BadPage {
    /// A JSON object where an array was expected.
    #[error("it is a JSON object, not an array (an error message or a different API version?)")]
    Object,
    /// Markup.
    #[error("it looks like HTML (a proxy, gateway or login page?)")]
    Html,
    /// Nothing but whitespace.
    #[error("the body is empty")]
    Empty,
    /// JSON cut off.
    #[error("the JSON ends early after {bytes} bytes (a truncated response?)")]
    Truncated {
        /// The body's length.
        bytes: usize,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Anything else that is not JSON.
    #[error("it is not valid JSON")]
    Invalid(#[source] serde_json::Error),
}

/// Parses a page body: it must be a JSON array; its items may be anything.
pub fn parse_page(body: &[u8]) -> Result<RawPage, BadPage> {
    serde_json::from_slice::<RawPage>(body).map_err(|e| describe_bad_page(body, e))
}

/// Explains why a body is not a page.
fn describe_bad_page(body: &[u8], err: serde_json::Error) -> BadPage {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| body[i])
        .unwrap_or(b' ');
    match start {
        b'{' if serde_json::from_slice::<serde_json::Value>(body).is_ok() => BadPage::Object,
        b'<' => BadPage::Html,
        b' ' => BadPage::Empty,
        _ if err.is_eof() => BadPage::Truncated {
            bytes: body.len(),
            source: err,
        },
        _ => BadPage::Invalid(err),
    }
}

/// The error body the docs say a 4xx/5xx "generally includes"; its structure may vary.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// Short error name.
    #[serde(default)]
    pub error: Option<String>,
    /// Longer explanation.
    #[serde(default)]
    pub message: Option<String>,
}

/// The answer of `POST /authenticate`.
#[derive(Debug, Deserialize)]
pub struct AuthResponse {
    /// The JWT to send as a bearer token.
    pub token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_their_exact_text() {
        let body = br#"[ {"id":1,  "extra":{"a":[1,2]}} ,{"id":2,"timestamp":"2024-01-01T00:00:00Z"}, 7, "x"]"#;
        let page = parse_page(body).unwrap();
        let texts: Vec<&str> = page.iter().map(|r| r.get()).collect();
        assert_eq!(
            texts,
            [
                r#"{"id":1,  "extra":{"a":[1,2]}}"#,
                r#"{"id":2,"timestamp":"2024-01-01T00:00:00Z"}"#,
                "7",
                r#""x""#
            ]
        );
    }

    #[test]
    fn bad_pages_are_explained() {
        let cases: [(&[u8], &str); 6] = [
            (br#"{"error":"x"}"#, "JSON object, not an array"),
            (b"<!DOCTYPE html><html>", "looks like HTML"),
            (b"", "body is empty"),
            (b"  \n", "body is empty"),
            (br#"[{"id":1},{"id":"#, "ends early"),
            (b"[1,2,,]", "not valid JSON"),
        ];
        for (body, want) in cases {
            let err = parse_page(body).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [&br#"[{"id":1},{"id":"#[..], b"[1,2,,]"] {
            let err = parse_page(body).unwrap_err();
            let source = std::error::Error::source(&err).map(ToString::to_string);
            assert!(
                source.is_some_and(|s| s.contains("line 1")),
                "{err:?}: the parser's complaint is kept"
            );
        }
    }
}
