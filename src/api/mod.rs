//! The Elevate API client: the only code that builds HTTP requests.
//!
//! - [`client`] pages through `GET /events` with retries, a rate cap, a body-size cap and no redirects;
//! - [`auth`] holds the bearer token and renews it before it expires (JWT `exp`) and once after a 401;
//! - [`retry`] is the pure decision "wait and retry, or give up" for each failure;
//! - [`wire`] parses bodies as the server sends them, keeping each item's exact text.
//!
//! Transport policy: HTTPS always, plain HTTP only to a loopback host (or when explicitly allowed).
//! Credentials live in [`secrecy`] types and never appear in errors, logs or `Debug` output.

pub mod auth;
pub mod client;
pub mod retry;
pub mod wire;

pub use auth::Credentials;
pub use client::{ApiClient, ClientOptions, PageQuery, PageResult};

use std::time::Duration;

/// The documented production base URL.
pub const DEFAULT_BASE_URL: &str = "https://rest.elevatebilling.com/v1";

/// How much of an error body is quoted in messages.
const BODY_EXCERPT_CHARS: usize = 300;

/// Everything that can go wrong talking to the API, worded to say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The base URL could not be parsed at all.
    #[error(
        "the base URL '{url}' is not a valid URL; pass e.g. --base-url https://rest.elevatebilling.com/v1"
    )]
    UnparsableBaseUrl {
        /// The URL as given.
        url: String,
        /// Why the parser refused it.
        #[source]
        source: url::ParseError,
    },
    /// The base URL parses but cannot serve as one.
    #[error(
        "the base URL '{url}' is not a valid URL ({reason}); pass e.g. --base-url https://rest.elevatebilling.com/v1"
    )]
    BadBaseUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// Plain HTTP to a remote host.
    #[error(
        "refusing plain http:// to {host}: credentials would cross the network unencrypted; use https://, \
         or pass --allow-http if this host is on a network you trust"
    )]
    InsecureUrl {
        /// The host that was refused.
        host: String,
    },
    /// No credentials were supplied.
    #[error(
        "no credentials: set ELEVATE_TOKEN (a bearer token) or ELEVATE_USERNAME and ELEVATE_PASSWORD \
         (optionally ELEVATE_BRAND), or pass --token-file / --password-file"
    )]
    NoCredentials,
    /// A credentials file could not be used.
    #[error("cannot use credentials file {path}: {reason}")]
    CredentialFile {
        /// The file's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server refused the credentials (401 at `/authenticate`, or a 401 that renewal did not cure).
    #[error(
        "the credentials were refused by {url} (HTTP {status}{detail}); check ELEVATE_USERNAME/ELEVATE_PASSWORD/ELEVATE_BRAND or supply a fresh ELEVATE_TOKEN"
    )]
    CredentialsRefused {
        /// The URL that refused them.
        url: String,
        /// The status received.
        status: u16,
        /// A short excerpt of the server's explanation.
        detail: String,
    },
    /// A ready-made token was refused and cannot be renewed.
    #[error(
        "the token in ELEVATE_TOKEN was refused by {url}{detail} (tokens live 15 minutes); supply a fresh one, or set ELEVATE_USERNAME and ELEVATE_PASSWORD so the archiver can renew tokens itself"
    )]
    TokenRefused {
        /// The URL that refused it.
        url: String,
        /// A short excerpt of the server's explanation.
        detail: String,
    },
    /// 403: authenticated, but not allowed to read events.
    #[error(
        "the API user lacks permission to read events at {url} (HTTP 403{detail}); ask an Elevate administrator to grant it access to events"
    )]
    Forbidden {
        /// The URL that was forbidden.
        url: String,
        /// A short excerpt of the server's explanation.
        detail: String,
    },
    /// A status that retrying cannot fix (400, 404, ...).
    #[error("{url} answered HTTP {status}{detail}; {advice}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status received.
        status: u16,
        /// A short excerpt of the server's explanation.
        detail: String,
        /// What to do about it.
        advice: &'static str,
    },
    /// A page past the first was refused with 400 or 422: the request was good for the first page, so the
    /// server limits how deep a window can be paged, or this page is broken. Only this window fails.
    #[error(
        "the server refused page {page} of window {window} with HTTP {status}{detail} after serving the pages \
         before it: it may limit how deep a window can be paged; the window is recorded as failed and the next \
         sync asks for it again (pass a smaller --window so that each window needs fewer pages)"
    )]
    PageRefused {
        /// The window.
        window: String,
        /// The page refused.
        page: u32,
        /// The status received.
        status: u16,
        /// A short excerpt of the server's explanation.
        detail: String,
    },
    /// Retries ran out.
    #[error(
        "gave up on {url} after {attempts} attempts over {elapsed:.0?}: {last}; completed windows are kept, run sync again later to resume"
    )]
    RetriesExhausted {
        /// The URL requested.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// How long was spent.
        elapsed: Duration,
        /// The last failure, in words.
        last: String,
        /// The error behind the last failure, if there was one (a transport error, a body that is not a page).
        #[source]
        cause: Option<Cause>,
    },
    /// The server answered 200 with something that is not a page of events.
    #[error("{url} answered with a body that is not a JSON array of events: {detail}")]
    BadBody {
        /// The URL requested.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// The server sent the same page again for the next page number.
    #[error(
        "the server returned the same content for page {page} as for page {previous} of window {window}; stopped that window to avoid looping"
    )]
    RepeatedPage {
        /// The window, in words.
        window: String,
        /// The repeated page number.
        page: u32,
        /// The page it repeated.
        previous: u32,
    },
    /// A window needed more pages than any real window can have.
    #[error(
        "window {window} went past {pages} pages without a short page; stopped it (use a smaller --window)"
    )]
    TooManyPages {
        /// The window, in words.
        window: String,
        /// The page limit.
        pages: u32,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client")]
    Setup(#[source] reqwest::Error),
}

/// An error behind a failed attempt, kept as the source of the error that ends the retries.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl ApiError {
    /// Whether this error comes from the configuration rather than the server (exit code "usage").
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            ApiError::BadBaseUrl { .. }
                | ApiError::UnparsableBaseUrl { .. }
                | ApiError::InsecureUrl { .. }
                | ApiError::NoCredentials
                | ApiError::CredentialFile { .. }
        )
    }
}

/// Quotes the start of an error body for a message, preferring the documented `{"error","message"}` shape.
pub fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let summary = match serde_json::from_str::<wire::ErrorBody>(text) {
        Ok(e) if e.error.is_some() || e.message.is_some() => [e.error, e.message]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": "),
        _ => text.to_string(),
    };
    let mut excerpt: String = summary
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(BODY_EXCERPT_CHARS)
        .collect();
    if summary.chars().count() > BODY_EXCERPT_CHARS {
        excerpt.push('…');
    }
    format!(": {excerpt}")
}

/// Checks the transport policy: `https` anywhere; `http` only to loopback unless `allow_http`.
pub fn check_transport(url: &reqwest::Url, allow_http: bool) -> Result<(), ApiError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err(ApiError::InsecureUrl {
            host: url.host_str().unwrap_or("").to_string(),
        }),
        other => Err(ApiError::BadBaseUrl {
            url: url.to_string(),
            reason: format!("scheme '{other}' is not http or https"),
        }),
    }
}

/// Whether the URL's host is a genuine loopback address (not merely a name that starts like one).
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Parses and checks a base URL, so that `{base}/events` and `{base}/authenticate` can be built from it.
pub fn parse_base_url(text: &str, allow_http: bool) -> Result<reqwest::Url, ApiError> {
    let url = reqwest::Url::parse(text.trim()).map_err(|source| ApiError::UnparsableBaseUrl {
        url: text.to_string(),
        source,
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::BadBaseUrl {
            url: "(hidden: it carries credentials)".into(),
            reason:
                "credentials in the URL are not accepted; use ELEVATE_USERNAME/ELEVATE_PASSWORD"
                    .into(),
        });
    }
    if url.query().is_some() || url.cannot_be_a_base() {
        return Err(ApiError::BadBaseUrl {
            url: text.to_string(),
            reason: "it must be a plain base such as https://host/v1, without a query".into(),
        });
    }
    check_transport(&url, allow_http)?;
    Ok(url)
}

/// Builds `{base}/{segment}` whether or not the base ends with a slash.
pub fn endpoint(base: &reqwest::Url, segment: &str) -> reqwest::Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("base URLs are checked to be hierarchical")
        .pop_if_empty()
        .push(segment);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_policy() {
        let cases = [
            ("https://rest.elevatebilling.com/v1", false, true),
            ("http://127.0.0.1:8080/v1", false, true),
            ("http://127.5.6.7/v1", false, true),
            ("http://[::1]:9000/v1", false, true),
            ("http://localhost:9000/v1", false, true),
            ("http://LOCALHOST:9000/v1", false, true),
            ("HTTP://127.0.0.1/v1", false, true),
            ("http://2130706433/v1", false, true),
            ("http://127.0.0.1.evil.example/v1", false, false),
            ("http://localhost.evil.example/v1", false, false),
            ("http://127.0.0.1@evil.example/v1", false, false),
            ("http://rest.elevatebilling.com/v1", false, false),
            ("http://10.0.0.5/v1", false, false),
            ("http://10.0.0.5/v1", true, true),
            ("ftp://127.0.0.1/v1", false, false),
        ];
        for (url, allow, ok) in cases {
            let got = parse_base_url(url, allow);
            assert_eq!(got.is_ok(), ok, "{url} allow_http={allow}: {got:?}");
        }
    }

    #[test]
    fn an_unparsable_base_url_keeps_the_parsers_reason() {
        let err = parse_base_url("::nope", false).unwrap_err();
        assert!(err.is_configuration(), "{err:?}");
        assert!(
            matches!(&err, ApiError::UnparsableBaseUrl { url, source }
                if url == "::nope" && *source == url::ParseError::RelativeUrlWithoutBase),
            "{err:?}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn credentials_in_url_are_refused_without_echoing_them() {
        let err = parse_base_url("https://bob:hunter2@rest.example/v1", false).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn endpoints_join_with_or_without_slash() {
        for base in ["https://h.example/v1", "https://h.example/v1/"] {
            let base = reqwest::Url::parse(base).unwrap();
            assert_eq!(
                endpoint(&base, "events").as_str(),
                "https://h.example/v1/events"
            );
        }
    }

    #[test]
    fn error_bodies_are_summarised() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"error":"Bad Request","message":"pageSize too large"}"#,
                ": Bad Request: pageSize too large",
            ),
            (b"<html>\n<b>oops</b></html>", ": <html> <b>oops</b></html>"),
            (b"", ""),
            (br#"{"status":500}"#, r#": {"status":500}"#),
        ];
        for (body, want) in cases {
            assert_eq!(body_excerpt(body), want);
        }
        assert!(body_excerpt(&[b'x'; 1000]).ends_with('…'));
    }
}
