//! The simulator's HTTP side (axum): routes, bearer tokens, validation, faults.

use super::PastEnd;
use super::Shared;
use super::faults::FaultKind;
use super::query::{self, BadRequest};
use super::source::SelectError;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The routes: `/v1/events`, `/v1/authenticate`, and a JSON 404 for anything else.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/events", get(events))
        .route("/v1/authenticate", post(authenticate))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found", "No such resource") })
        .with_state(shared)
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    jti: u64,
}

/// Issues a token for the configured user, valid for the configured lifetime.
pub(super) fn issue_token(shared: &Shared) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    issue_token_until(shared, now + shared.config.token_ttl.as_secs().max(1))
}

/// Issues a token for the configured user that expires at `exp` (seconds since the epoch).
pub(super) fn issue_token_until(shared: &Shared, exp: u64) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let jti = shared.stats.tokens_issued.fetch_add(1, Ordering::Relaxed);
    let claims = Claims {
        sub: shared.config.username.clone(),
        iat: now.min(exp),
        exp,
        jti,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&shared.jwt_secret),
    )
    .expect("HS256 signing does not fail")
}

/// Checks the bearer token; the error is the 401 message.
fn check_token(shared: &Shared, headers: &HeaderMap) -> Result<(), &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("Full authentication is required to access this resource")?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or("Authorization must be a Bearer token")?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    match jsonwebtoken::decode::<Claims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&shared.jwt_secret),
        &validation,
    ) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
            Err("The token has expired")
        }
        Err(_) => Err("The token is invalid"),
    }
}

#[derive(Debug, Deserialize)]
struct AuthRequest {
    username: Option<String>,
    password: Option<String>,
    #[allow(dead_code)]
    brand: Option<String>,
}

async fn authenticate(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<AuthRequest>(&body) else {
        shared.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "The body must be JSON with username and password",
        );
    };
    let (Some(username), Some(password)) = (request.username, request.password) else {
        shared.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "username and password are required",
        );
    };
    if username != shared.config.username || password != shared.config.password {
        shared.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid username or password",
        );
    }
    let token = issue_token(&shared);
    json(
        StatusCode::OK,
        serde_json::json!({ "token": token, "username": username }).to_string(),
    )
}

/// `GET /events`: a fault if one is due, the bearer token, the query, and the page (broken on the way out if the
/// fault says so), answered no sooner than the configured latency after the request arrived.
async fn events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    shared.stats.event_requests.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight::enter(&shared.stats);
    // The latency is the time from the request's arrival to its answer, as a client measures an API's: the
    // page is made within it (making a page costs this process's CPU, on the machine the client runs on too,
    // and is not counted on top of it).
    let due = tokio::time::Instant::now() + shared.config.latency;
    let answer = answer_events(&shared, &headers, raw).await;
    tokio::time::sleep_until(due).await;
    answer
}

/// The answer to a `GET /events`, made at once.
async fn answer_events(shared: &Shared, headers: &HeaderMap, raw: Option<String>) -> Response {
    let fault = shared.faults.decide();
    if fault.is_some() {
        shared.stats.faults.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(response) = fault_response(shared, fault) {
        return response;
    }
    if let Err(message) = check_token(shared, headers) {
        shared.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    }
    let body = match page(shared, raw.unwrap_or_default()).await {
        Ok(items) => json_array(&items),
        Err(Refusal(status, message)) => {
            return error(
                status,
                status.canonical_reason().unwrap_or("Error"),
                message,
            );
        }
    };
    match fault {
        Some(FaultKind::Drop) => broken(body, 0),
        Some(FaultKind::Truncate) => {
            let half = body.len() / 2;
            broken(body, half)
        }
        _ => json(StatusCode::OK, body),
    }
}

/// Counts a request in flight from its arrival until its answer is made, or its client goes away (axum drops
/// the handler then).
struct InFlight<'a>(&'a super::SimStats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a super::SimStats) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The answer a fault puts in place of the page (429 or a 5xx); `None` when the page is to be served (and
/// perhaps broken on the way out).
fn fault_response(shared: &Shared, fault: Option<FaultKind>) -> Option<Response> {
    match fault {
        Some(FaultKind::Throttle) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "Rate limit exceeded",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(shared.config.retry_after_secs),
            );
            Some(r)
        }
        Some(FaultKind::Status(code)) => {
            let status = StatusCode::from_u16(code).expect("fault statuses are valid");
            Some(error(
                status,
                status.canonical_reason().unwrap_or("Error"),
                "The server encountered an error",
            ))
        }
        _ => None,
    }
}

/// `failing`: answers 500 to a request whose range covers a failing window's instant (always, or its first N);
/// `failing_pages`: the same for one page of such a window.
fn fail_on_purpose(shared: &Shared, query: &query::EventsQuery) -> Result<(), Refusal> {
    let mut failed = shared.failed.lock().expect("failure counters");
    for (rule, count) in shared.config.failing.iter().zip(failed.iter_mut()) {
        let at = rule.at.timestamp_millis();
        let covered = query.range.min_ms <= at && at <= query.range.max_ms;
        if covered && rule.times.is_none_or(|n| *count < n) {
            *count += 1;
            return Err(Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("this window fails on purpose (simulated failure {count})"),
            ));
        }
    }
    drop(failed);
    let mut failed = shared.failed_pages.lock().expect("failure counters");
    for (rule, count) in shared.config.failing_pages.iter().zip(failed.iter_mut()) {
        let at = rule.at.timestamp_millis();
        let covered = query.range.min_ms <= at && at <= query.range.max_ms;
        if covered && query.page == rule.page && rule.times.is_none_or(|n| *count < n) {
            *count += 1;
            return Err(Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "page {} fails on purpose (simulated failure {count})",
                    rule.page
                ),
            ));
        }
    }
    Ok(())
}

/// `delete_while_paging`: once per window, right after its first page (of more than one item) was served,
/// deletes the second event of that page, so that later pages shift back by one.
fn delete_while_paging(shared: &Shared, query: &query::EventsQuery, served: usize) {
    if query.page != 1 || query.page_size < 2 || served < 2 {
        return;
    }
    if !shared
        .shifted
        .lock()
        .expect("shifted windows")
        .insert(query.range.min_ms)
    {
        return;
    }
    let first = shared.data.first_at_or_after(query.range.min_ms);
    let mut overlay = shared.overlay.write().expect("overlay lock");
    let second = (first..shared.data.count)
        .filter(|i| !overlay.deleted.contains(i))
        .nth(1);
    if let Some(i) = second {
        overlay.deleted.insert(i);
        shared
            .stats
            .deleted_while_paging
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a page is not served: the status, and the message of the error body.
struct Refusal(StatusCode, String);

/// The page a query string asks for, or why not: 400 for a bad query or a window too large to sort, 404 past
/// the last page when the simulator is set to answer so.
async fn page(shared: &Shared, raw_query: String) -> Result<Vec<String>, Refusal> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let mut query = query::parse(&pairs, shared.config.bounds).map_err(|BadRequest(message)| {
        shared.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
        Refusal(StatusCode::BAD_REQUEST, message)
    })?;
    if let Some(cap) = shared.config.page_cap {
        query.page_size = query.page_size.min(cap);
    }
    fail_on_purpose(shared, &query)?;
    // A test's hold (see `Simulator::hold_covering`): wait until it is released or moved away.
    let covers = |hold: &Option<super::Hold>| {
        hold.is_some_and(|h| {
            query.range.min_ms <= h.at_ms
                && h.at_ms <= query.range.max_ms
                && query.page >= h.from_page
                && query.page <= h.to_page
        })
    };
    if covers(&shared.hold.borrow()) {
        shared.stats.held.fetch_add(1, Ordering::Relaxed);
        // The sender lives in `shared`, which outlives this request: waiting cannot fail.
        let _ = shared.hold.subscribe().wait_for(|h| !covers(h)).await;
    }
    let items = {
        let overlay = shared.overlay.read().expect("overlay lock");
        overlay.select(&shared.data, &query, &shared.default_sort())
    };
    let items = items.map_err(|SelectError::TooLarge(n)| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("{n} events match; narrow createdFrom/createdTo to sort by this field"),
        )
    })?;
    if shared.config.delete_while_paging {
        delete_while_paging(shared, &query, items.len());
    }
    if items.is_empty() && query.page > 1 && shared.config.past_end == PastEnd::NotFound {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("Page {} is past the last page", query.page),
        ));
    }
    Ok(items)
}

/// Items, each already JSON, as one JSON array.
fn json_array(items: &[String]) -> String {
    let mut body = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(item);
    }
    body.push(']');
    body
}

/// A 200 whose connection breaks after `keep` bytes of the promised body.
fn broken(body: String, keep: usize) -> Response {
    let length = body.len();
    let mut sent = body.into_bytes();
    sent.truncate(keep);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(sent)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated dropped connection",
        )),
    ];
    let mut response = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An error in the documented shape.
fn error(status: StatusCode, error: &str, message: impl Into<String>) -> Response {
    json(
        status,
        serde_json::json!({ "error": error, "message": message.into() }).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::{SimConfig, Simulator, source::MAX_SORTED_WINDOW};

    const WHOLE_DAY: &str = "createdFrom=2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z";

    /// A simulator of `events` events on 2024-01-01 that answers 404 past the last page.
    fn simulator(events: u64, faults: &[&str]) -> Simulator {
        let from = crate::time::parse_time_arg("2024-01-01").unwrap();
        let mut config = SimConfig::new(events, from, from + chrono::TimeDelta::days(1));
        config.past_end = PastEnd::NotFound;
        config.faults = faults.iter().map(|f| f.parse().unwrap()).collect();
        Simulator::new(config)
    }

    /// Calls `GET /events?{query}` with a valid token, or none; returns the status, Retry-After and body.
    async fn get(sim: &Simulator, query: &str, authorised: bool) -> (u16, Option<String>, String) {
        let mut headers = HeaderMap::new();
        if authorised {
            let bearer = format!("Bearer {}", sim.issue_token());
            headers.insert(header::AUTHORIZATION, bearer.parse().unwrap());
        }
        let raw = RawQuery(Some(query.to_string()));
        let response = events(State(Arc::clone(&sim.shared)), headers, raw).await;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            retry_after,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn error_body(error: &str, message: &str) -> String {
        serde_json::json!({ "error": error, "message": message }).to_string()
    }

    #[tokio::test]
    async fn refusals_come_in_the_documented_shape() {
        let sim = simulator(100, &[]);
        let cases = [
            (
                format!("page=1&pageSize=10&{WHOLE_DAY}"),
                false,
                401,
                error_body(
                    "Unauthorized",
                    "Full authentication is required to access this resource",
                ),
            ),
            (
                WHOLE_DAY.to_string(),
                true,
                400,
                error_body("Bad Request", "Required parameter 'page' is missing"),
            ),
            (
                format!("page=11&pageSize=10&{WHOLE_DAY}"),
                true,
                404,
                error_body("Not Found", "Page 11 is past the last page"),
            ),
        ];
        for (query, authorised, status, body) in cases {
            assert_eq!(
                get(&sim, &query, authorised).await,
                (status, None, body),
                "{query}"
            );
        }
        let (status, _, body) = get(&sim, &format!("page=10&pageSize=10&{WHOLE_DAY}"), true).await;
        let items: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        assert_eq!((status, items.len()), (200, 10), "the last page is served");
    }

    #[tokio::test]
    async fn a_window_too_large_to_sort_is_a_bad_request() {
        let events = MAX_SORTED_WINDOW as u64 + 1;
        let sim = simulator(events, &[]);
        let query = format!("page=1&pageSize=10&sort=timestamp&{WHOLE_DAY}");
        let message =
            format!("{events} events match; narrow createdFrom/createdTo to sort by this field");
        assert_eq!(
            get(&sim, &query, true).await,
            (400, None, error_body("Bad Request", &message))
        );
    }

    #[tokio::test]
    async fn faults_answer_in_place_of_the_page() {
        let sim = simulator(100, &["429:first:1", "503:every:2"]);
        let query = format!("page=1&pageSize=5&{WHOLE_DAY}");
        let throttled = get(&sim, &query, true).await;
        let want = error_body("Too Many Requests", "Rate limit exceeded");
        assert_eq!(throttled, (429, Some("1".into()), want));
        let failed = get(&sim, &query, true).await;
        let want = error_body("Service Unavailable", "The server encountered an error");
        assert_eq!(failed, (503, None, want));
        let (status, _, body) = get(&sim, &query, true).await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<Vec<serde_json::Value>>(&body)
                .unwrap()
                .len(),
            5
        );
    }
}
