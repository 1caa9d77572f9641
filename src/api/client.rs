//! The HTTP client for `GET /events` and `POST /authenticate`.
//!
//! One [`ApiClient`] is shared by all concurrent windows of a run. Every request goes through
//! `Retrying`: the optional rate cap, the bearer token (renewed ahead of expiry), one attempt, and
//! the pure [`RetryPolicy`] deciding what follows a failure. A page asked for ahead that the sync no longer
//! wants ([`ApiClient::fetch_page_while_wanted`]) finishes the attempt in flight but is not retried. Bodies are read with a size cap and parsed
//! here, so a page leaves this module either as items with their exact text or as a clear error.

use super::auth::{Credentials, TokenState};
use super::retry::{Decision, Failure, RetryPolicy, parse_retry_after};
use super::wire::{self, RawPage};
use super::{ApiError, Cause, body_excerpt, endpoint};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{StatusCode, Url, header};
use secrecy::{ExposeSecret, SecretString};
use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Default time allowed for one request, body included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body accepted for one page: far above 1000 events of any plausible size.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Largest error body read for a message.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// How the client is set up.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Base URL, already checked against the transport policy.
    pub base_url: Url,
    /// Time allowed for one request, body included.
    pub timeout: Duration,
    /// Polite cap on requests per second, if any.
    pub max_rps: Option<NonZeroU32>,
    /// Retry bounds.
    pub retry: RetryPolicy,
}

/// The query for one page of `GET /events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// `createdFrom`, exactly as to be sent.
    pub created_from: String,
    /// `createdTo`, exactly as to be sent.
    pub created_to: String,
    /// 1-based page number.
    pub page: u32,
    /// Items per page (1..=1000).
    pub page_size: u32,
    /// `category` filter, empty for none.
    pub category: String,
    /// `action` filter, empty for none.
    pub action: String,
}

impl PageQuery {
    /// The query parameters, in a fixed order.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("page", self.page.to_string()),
            ("pageSize", self.page_size.to_string()),
            ("sort", "id".to_string()),
            ("createdFrom", self.created_from.clone()),
            ("createdTo", self.created_to.clone()),
        ];
        if !self.category.is_empty() {
            params.push(("category", self.category.clone()));
        }
        if !self.action.is_empty() {
            params.push(("action", self.action.clone()));
        }
        params
    }
}

/// What a page request produced.
#[derive(Debug)]
pub enum PageResult {
    /// A page of items, and a fingerprint of its body to notice a server repeating itself.
    Page {
        /// The items, each with its exact text.
        items: RawPage,
        /// Hash of the whole body.
        fingerprint: u64,
    },
    /// The server answered 404 for a page past the first: read as "no more pages".
    PastTheEnd,
}

/// Counters of what the client did, for the run summary.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Requests sent, retries included.
    pub requests: AtomicU64,
    /// Retries after a failure.
    pub retries: AtomicU64,
    /// Tokens obtained from `/authenticate`.
    pub token_renewals: AtomicU64,
    /// Answers 429 received.
    pub throttled: AtomicU64,
}

/// The outcome of one attempt (see [`Retrying::settle`]).
enum Attempt<T> {
    /// It worked.
    Done(T),
    /// It failed in a way no retry can fix.
    Fatal(ApiError),
    /// It failed; the policy decides. The string says what happened, for logs and the final error; the error
    /// behind it, if any, becomes the final error's source.
    Failed(Failure, String, Option<Cause>),
    /// Try again at once without counting an attempt (the token was just renewed after a 401).
    Again,
}

/// The retries of one request: the optional rate cap before each attempt, and the pure [`RetryPolicy`]
/// deciding what follows a failure. A request no longer `wanted` finishes its attempt in flight but is not
/// retried, and a retry's wait is cut short.
struct Retrying<'a> {
    client: &'a ApiClient,
    url: &'a Url,
    wanted: &'a CancellationToken,
    started: Instant,
    /// Attempts counted so far.
    count: u32,
}

impl<'a> Retrying<'a> {
    fn new(client: &'a ApiClient, url: &'a Url, wanted: &'a CancellationToken) -> Self {
        Retrying {
            client,
            url,
            wanted,
            started: Instant::now(),
            count: 0,
        }
    }

    /// Waits for the rate cap, and counts the attempt about to be made.
    async fn next_attempt(&mut self) {
        self.count += 1;
        if let Some(limiter) = &self.client.limiter {
            limiter.until_ready().await;
        }
        self.client.stats.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// What an attempt leads to: the request's outcome, or `None` to make another attempt (after the wait
    /// the policy asks for).
    async fn settle<T>(&mut self, attempt: Attempt<T>) -> Option<Result<T, ApiError>> {
        let (failure, what, cause) = match attempt {
            Attempt::Done(value) => return Some(Ok(value)),
            Attempt::Fatal(e) => return Some(Err(e)),
            Attempt::Again => {
                self.count -= 1;
                return None;
            }
            Attempt::Failed(failure, what, cause) => (failure, what, cause),
        };
        let stats = &self.client.stats;
        if matches!(failure, Failure::Status { code: 429, .. }) {
            stats.throttled.fetch_add(1, Ordering::Relaxed);
        }
        let (url, count, started) = (self.url, self.count, self.started);
        let why =
            match self
                .client
                .policy
                .decide(&failure, count, started.elapsed(), rand::random())
            {
                Decision::GiveUp(why) => why,
                Decision::Retry(wait) => {
                    if !self.wanted.is_cancelled() {
                        stats.retries.fetch_add(1, Ordering::Relaxed);
                        warn!(url = %url, attempt = count, "{what}; retrying in {wait:.1?}");
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = self.wanted.cancelled() => {}
                        }
                    }
                    if !self.wanted.is_cancelled() {
                        return None;
                    }
                    "no longer wanted"
                }
            };
        debug!(url = %url, "giving up: {why}");
        Some(Err(match failure {
            Failure::Status { code, .. } if !failure.is_retryable() => ApiError::Status {
                url: url.to_string(),
                status: code,
                detail: what
                    .split_once(": ")
                    .map(|(_, d)| format!(": {d}"))
                    .unwrap_or_default(),
                advice: advice_for(code),
            },
            _ => ApiError::RetriesExhausted {
                url: url.to_string(),
                attempts: count,
                elapsed: started.elapsed(),
                last: format!("{what} ({why})"),
                cause,
            },
        }))
    }
}

/// The Elevate API client.
pub struct ApiClient {
    http: reqwest::Client,
    events_url: Url,
    auth_url: Url,
    credentials: Credentials,
    token: tokio::sync::Mutex<TokenState>,
    limiter: Option<DefaultDirectRateLimiter>,
    policy: RetryPolicy,
    /// What the client has done so far.
    pub stats: ClientStats,
}

impl ApiClient {
    /// Builds a client. The base URL must already have passed [`super::parse_base_url`].
    pub fn new(options: ClientOptions, credentials: Credentials) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("elevate-archive/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(ApiError::Setup)?;
        Ok(ApiClient {
            http,
            events_url: endpoint(&options.base_url, "events"),
            auth_url: endpoint(&options.base_url, "authenticate"),
            credentials,
            token: tokio::sync::Mutex::new(TokenState::default()),
            limiter: options
                .max_rps
                .map(|rps| RateLimiter::direct(Quota::per_second(rps))),
            policy: options.retry,
            stats: ClientStats::default(),
        })
    }

    /// Fetches one page of events, retrying as the policy allows.
    pub async fn fetch_page(&self, query: &PageQuery) -> Result<PageResult, ApiError> {
        self.fetch_page_while_wanted(query, &CancellationToken::new())
            .await
    }

    /// [`ApiClient::fetch_page`] for a page that may stop being wanted (a page asked for ahead, past what
    /// turned out to be its window's end): once `wanted` is cancelled, the attempt in flight is finished (the
    /// server is not left working for a request nobody counts any more) but no retry follows, and a retry's
    /// wait is cut short; the page then ends as [`ApiError::RetriesExhausted`], an error nobody reads.
    pub async fn fetch_page_while_wanted(
        &self,
        query: &PageQuery,
        wanted: &CancellationToken,
    ) -> Result<PageResult, ApiError> {
        let mut url = self.events_url.clone();
        url.query_pairs_mut().extend_pairs(query.params());
        let mut renewed = false;
        let mut retrying = Retrying::new(self, &url, wanted);
        loop {
            retrying.next_attempt().await;
            let attempt = self.page_attempt(&url, query, &mut renewed).await;
            if let Some(done) = retrying.settle(attempt).await {
                return done;
            }
        }
    }

    /// One attempt at a page; `renewed` says whether the token was already renewed after a 401.
    async fn page_attempt(
        &self,
        url: &Url,
        query: &PageQuery,
        renewed: &mut bool,
    ) -> Attempt<PageResult> {
        let (bearer, generation) = match self.bearer().await {
            Ok(b) => b,
            Err(e) => return Attempt::Fatal(e),
        };
        let sent = self
            .http
            .get(url.clone())
            .bearer_auth(bearer.expose_secret())
            .header(header::ACCEPT, "application/json")
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return transport_failure(e),
        };
        let status = response.status();
        if status.is_success() {
            return match read_capped(response, MAX_BODY_BYTES).await {
                Ok(body) => match wire::parse_page(&body) {
                    Ok(items) => Attempt::Done(PageResult::Page {
                        items,
                        fingerprint: fingerprint(&body),
                    }),
                    Err(bad) => Attempt::Failed(
                        Failure::Body,
                        format!("bad body: {}", error_chain(&bad)),
                        Some(Box::new(bad)),
                    ),
                },
                Err(BodyError::TooLarge) => Attempt::Fatal(ApiError::BadBody {
                    url: url.to_string(),
                    detail: format!(
                        "it is larger than {} MiB, far more than a page",
                        MAX_BODY_BYTES >> 20
                    ),
                }),
                Err(BodyError::Transport(e)) => transport_failure(e),
            };
        }
        match status {
            StatusCode::UNAUTHORIZED => {
                let detail = error_body(response).await;
                if *renewed {
                    return Attempt::Fatal(self.refused(url, status, detail));
                }
                *renewed = true;
                match self.renew_after_rejection(generation, url, detail).await {
                    Ok(()) => Attempt::Again,
                    Err(e) => Attempt::Fatal(e),
                }
            }
            StatusCode::FORBIDDEN => Attempt::Fatal(ApiError::Forbidden {
                url: url.to_string(),
                detail: error_body(response).await,
            }),
            StatusCode::NOT_FOUND if query.page > 1 => {
                info!(
                    page = query.page,
                    "the server answered 404 past the first page: reading it as the end"
                );
                Attempt::Done(PageResult::PastTheEnd)
            }
            _ => status_failure(response).await,
        }
    }

    /// The bearer token to use now, renewing it first if it is missing or about to expire.
    async fn bearer(&self) -> Result<(SecretString, u64), ApiError> {
        let mut state = self.token.lock().await;
        let now = SystemTime::now();
        if state.current().is_none() || (self.credentials.can_renew() && state.renewal_due(now)) {
            self.install_new_token(&mut state).await?;
        }
        let token = state.current().expect("a token was just installed");
        Ok((token.secret.clone(), token.generation))
    }

    /// Reacts to a 401: renew once if the rejected token is still the current one.
    async fn renew_after_rejection(
        &self,
        generation: u64,
        url: &Url,
        detail: String,
    ) -> Result<(), ApiError> {
        let mut state = self.token.lock().await;
        if !state.is_current(generation) {
            return Ok(());
        }
        if !self.credentials.can_renew() {
            return Err(ApiError::TokenRefused {
                url: url.to_string(),
                detail,
            });
        }
        info!("the server refused the token (401); renewing it once");
        self.install_new_token(&mut state).await
    }

    /// Puts a token in place: the given one, or a new one from `/authenticate`.
    async fn install_new_token(&self, state: &mut TokenState) -> Result<(), ApiError> {
        let now = SystemTime::now();
        let token = match &self.credentials {
            Credentials::Token(secret) => {
                let token = state.install(secret.clone(), now, false);
                if token.expires_at.is_some_and(|t| t <= now) {
                    return Err(ApiError::TokenRefused {
                        url: self.events_url.to_string(),
                        detail: " (its JWT exp claim says it has already expired)".into(),
                    });
                }
                return Ok(());
            }
            Credentials::Password { .. } => self.authenticate().await?,
        };
        let installed = state.install(token, now, true);
        self.stats.token_renewals.fetch_add(1, Ordering::Relaxed);
        let lifetime = installed
            .expires_at
            .and_then(|t| t.duration_since(now).ok())
            .unwrap_or_default();
        debug!(lifetime = ?lifetime, "obtained a new token from /authenticate");
        Ok(())
    }

    /// Exchanges the username and password for a token.
    async fn authenticate(&self) -> Result<SecretString, ApiError> {
        let Credentials::Password {
            username,
            password,
            brand,
        } = &self.credentials
        else {
            unreachable!("authenticate is only called with a password");
        };
        let mut body =
            serde_json::json!({ "username": username, "password": password.expose_secret() });
        if let Some(brand) = brand {
            body["brand"] = serde_json::Value::String(brand.clone());
        }
        let url = &self.auth_url;
        let always = CancellationToken::new();
        let mut retrying = Retrying::new(self, url, &always);
        loop {
            retrying.next_attempt().await;
            let attempt = self.auth_attempt(url, &body).await;
            if let Some(done) = retrying.settle(attempt).await {
                return done;
            }
        }
    }

    /// One attempt at exchanging the username and password (in `body`) for a token.
    async fn auth_attempt(&self, url: &Url, body: &serde_json::Value) -> Attempt<SecretString> {
        let response = match self.http.post(url.clone()).json(body).send().await {
            Ok(r) => r,
            Err(e) => return transport_failure(e),
        };
        let status = response.status();
        if status.is_success() {
            return match read_capped(response, MAX_ERROR_BODY_BYTES).await {
                Ok(bytes) => match serde_json::from_slice::<wire::AuthResponse>(&bytes) {
                    Ok(answer) if !answer.token.is_empty() => {
                        Attempt::Done(SecretString::from(answer.token))
                    }
                    _ => Attempt::Failed(
                        Failure::Body,
                        "the /authenticate answer has no token".into(),
                        None,
                    ),
                },
                Err(BodyError::TooLarge) => Attempt::Failed(
                    Failure::Body,
                    "the /authenticate answer is far too large".into(),
                    None,
                ),
                Err(BodyError::Transport(e)) => transport_failure(e),
            };
        }
        if matches!(status.as_u16(), 400 | 401 | 403 | 404) {
            let detail = error_body(response).await;
            return Attempt::Fatal(ApiError::CredentialsRefused {
                url: url.to_string(),
                status: status.as_u16(),
                detail,
            });
        }
        status_failure(response).await
    }

    /// The error for a 401 that survived a renewal.
    fn refused(&self, url: &Url, status: StatusCode, detail: String) -> ApiError {
        if self.credentials.can_renew() {
            ApiError::CredentialsRefused {
                url: url.to_string(),
                status: status.as_u16(),
                detail,
            }
        } else {
            ApiError::TokenRefused {
                url: url.to_string(),
                detail,
            }
        }
    }
}

/// What to do about a status that retrying cannot fix.
fn advice_for(status: u16) -> &'static str {
    match status {
        400 => {
            "the server refused the request as malformed: check the --category/--action filter syntax (xyz, in:x,y, like:xyz)"
        }
        404 => "check --base-url (e.g. https://rest.elevatebilling.com/v1)",
        300..=399 => {
            "the server redirects, which the archiver never follows: point --base-url at the final address"
        }
        _ => "see the server's message",
    }
}

/// A failed attempt from a status: the policy decides whether it is worth another try.
async fn status_failure<T>(response: reqwest::Response) -> Attempt<T> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let detail = error_body(response).await;
    Attempt::Failed(
        Failure::Status {
            code: status.as_u16(),
            retry_after,
        },
        format!("HTTP {}{detail}", status.as_u16()),
        None,
    )
}

/// A failed attempt from a transport error: its whole chain on one line for the logs, the error itself kept.
fn transport_failure<T>(e: reqwest::Error) -> Attempt<T> {
    let kind = if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Connection
    };
    let what = error_chain(&e);
    Attempt::Failed(kind, what, Some(Box::new(e)))
}

/// Reads an error body for messages; never fails.
async fn error_body(response: reqwest::Response) -> String {
    match read_capped(response, MAX_ERROR_BODY_BYTES).await {
        Ok(body) => body_excerpt(&body),
        Err(_) => String::new(),
    }
}

/// Why a body could not be read.
enum BodyError {
    /// It is larger than the cap.
    TooLarge,
    /// The connection failed mid-body.
    Transport(reqwest::Error),
}

/// Reads a body, refusing to hold more than `cap` bytes.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A fingerprint of a body, to notice a server that answers every page number with the same page.
fn fingerprint(body: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    hasher.finish()
}

/// An error and its causes on one line ("a: b: c"), which reqwest's `Display` alone does not give.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_parameters_in_documented_form() {
        let query = PageQuery {
            created_from: "2024-01-01T00:00:00Z".into(),
            created_to: "2024-01-02T00:00:00Z".into(),
            page: 3,
            page_size: 1000,
            category: "in:authentication,authorisation".into(),
            action: String::new(),
        };
        let params = query.params();
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            params,
            [
                ("page", "3"),
                ("pageSize", "1000"),
                ("sort", "id"),
                ("createdFrom", "2024-01-01T00:00:00Z"),
                ("createdTo", "2024-01-02T00:00:00Z"),
                ("category", "in:authentication,authorisation"),
            ]
        );
    }

    /// A client of `base` with a token and one attempt per request.
    fn one_attempt_client(base: &str) -> ApiClient {
        let options = ClientOptions {
            base_url: super::super::parse_base_url(base, false).unwrap(),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            max_rps: None,
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
        };
        ApiClient::new(options, Credentials::Token("t".to_string().into())).unwrap()
    }

    #[tokio::test]
    async fn a_page_no_longer_wanted_is_not_retried() {
        use httpmock::{Method::GET, MockServer};
        let server = MockServer::start_async().await;
        let failing = server
            .mock_async(|when, then| {
                when.method(GET).path("/v1/events");
                then.status(503);
            })
            .await;
        let options = ClientOptions {
            base_url: super::super::parse_base_url(&server.url("/v1"), false).unwrap(),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            max_rps: None,
            retry: RetryPolicy::default(),
        };
        let client = ApiClient::new(options, Credentials::Token("t".to_string().into())).unwrap();
        let query = PageQuery {
            created_from: "2024-01-01T00:00:00Z".into(),
            created_to: "2024-01-02T00:00:00Z".into(),
            page: 9,
            page_size: 10,
            category: String::new(),
            action: String::new(),
        };
        let wanted = CancellationToken::new();
        wanted.cancel();
        let err = client
            .fetch_page_while_wanted(&query, &wanted)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no longer wanted"), "{err}");
        failing.assert_calls_async(1).await;
        assert_eq!(client.stats.retries.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_last_failure_is_kept_as_the_source_when_retries_run_out() {
        use httpmock::{Method::GET, MockServer};
        let server = MockServer::start_async().await;
        let bad_body = server
            .mock_async(|when, then| {
                when.method(GET).path("/v1/events");
                then.status(200).body("[1,2,,]");
            })
            .await;
        // A port nothing listens on any more: the connection is refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let cases = [
            (server.url("/v1"), "it is not valid JSON"),
            (format!("http://{closed}/v1"), "error sending request"),
        ];
        let query = PageQuery {
            created_from: "2024-01-01T00:00:00Z".into(),
            created_to: "2024-01-02T00:00:00Z".into(),
            page: 1,
            page_size: 10,
            category: String::new(),
            action: String::new(),
        };
        for (base, want) in cases {
            let err = one_attempt_client(&base)
                .fetch_page(&query)
                .await
                .unwrap_err();
            assert!(matches!(err, ApiError::RetriesExhausted { .. }), "{err:?}");
            let source = std::error::Error::source(&err).map(ToString::to_string);
            assert!(
                source.as_deref().is_some_and(|s| s.starts_with(want)),
                "{base}: {source:?}"
            );
        }
        bad_body.assert_calls_async(1).await;
    }

    #[test]
    fn a_setup_failure_keeps_the_reason_as_its_source() {
        let err = ApiError::Setup(
            reqwest::Client::builder()
                .user_agent("\n")
                .build()
                .unwrap_err(),
        );
        assert_eq!(err.to_string(), "cannot set up the HTTP client");
        assert!(std::error::Error::source(&err).is_some());
    }
}
