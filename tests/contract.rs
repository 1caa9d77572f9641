//! Contract test: the simulator's requests and responses conform to `openapi.yaml`, the API's documented
//! contract (a copy kept in `tests/fixtures/`). Responses are validated with a JSON Schema validator against
//! the spec's own schemas; requests the spec allows are accepted, and those it forbids get 400 with the
//! documented error body. Finally the archiver's own requests are checked the same way: a full sync against
//! the simulator draws no 400.

use elevate_archive::simulator::{SimConfig, Simulator};
use elevate_archive::time::parse_time_arg;
use serde_json::{Value, json};

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openapi.yaml"
    ))
    .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// A validator for the schema at `pointer` inside the spec (the spec's own `$ref`s resolve as written).
fn validator(spec: &Value, pointer: &str) -> jsonschema::Validator {
    let mut root = spec.clone();
    root["$ref"] = Value::String(format!("#{pointer}"));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&root)
        .unwrap()
}

fn check(v: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not conform: {errors:?}\n{instance}"
    );
}

const EVENTS_200: &str = "/paths/~1events/get/responses/200/content/application~1json/schema";
const EVENT: &str = "/components/schemas/Event";
const ERROR: &str = "/components/responses/Error/content/application~1json/schema";
const AUTH_200: &str = "/paths/~1authenticate/post/responses/200/content/application~1json/schema";
const DATE_FILTER: &str = "/components/schemas/DateTimeFilter";

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn get(&self, query: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(format!("{}/events?{query}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body)
    }

    async fn events(&self, query: &str) -> (u16, Value) {
        self.get(query, Some(&self.token)).await
    }
}

const WINDOW: &str = "createdFrom=2024-01-01T00:00:00Z&createdTo=2024-01-03T00:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_honours_the_contract() {
    let spec = spec();
    let events_ok = validator(&spec, EVENTS_200);
    let event = validator(&spec, EVENT);
    let error = validator(&spec, ERROR);
    let auth_ok = validator(&spec, AUTH_200);
    let date_filter = validator(&spec, DATE_FILTER);

    // The validators have teeth: what the contract forbids fails them.
    let good = json!({"id": 1, "timestamp": "2024-01-01T00:00:00Z", "category": "authentication", "action": "user-login-success", "ipAddress": "12.34.56.78"});
    check(&event, &good, "the documented example");
    let mut broken = Vec::new();
    for (field, value) in [
        ("ipAddress", json!("2001:db8::1")),
        ("category", json!("has spaces")),
        ("timestamp", json!("yesterday")),
        ("description", json!("x".repeat(256))),
    ] {
        let mut e = good.clone();
        e[field] = value;
        broken.push(e);
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("action");
    broken.push(missing);
    for e in &broken {
        assert!(!event.is_valid(e), "the validator accepted {e}");
    }
    assert!(
        !events_ok.is_valid(&Value::Array(vec![good.clone(); 1001])),
        "more than 1000 items per page"
    );
    assert!(!error.is_valid(&json!({"error": 5})));

    // Documented data only: IPv4 addresses (the default mixes in some IPv6, as real tenants do).
    let sim = Simulator::new(SimConfig {
        ipv6_per_mille: 0,
        ..SimConfig::new(
            5_000,
            parse_time_arg("2024-01-01").unwrap(),
            parse_time_arg("2024-01-04").unwrap(),
        )
    });
    let running = sim.serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    let http = reqwest::Client::new();

    // POST /authenticate
    let auth_url = format!("{}/authenticate", running.base_url());
    let response = http
        .post(&auth_url)
        .json(&json!({"username": "demo", "password": "demo", "brand": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    check(&auth_ok, &body, "the /authenticate answer");
    let token = body["token"].as_str().unwrap().to_string();
    for (request, status) in [
        (json!({"username": "demo", "password": "wrong"}), 401),
        (json!({"username": "demo"}), 400),
        (json!("not an object"), 400),
    ] {
        let response = http.post(&auth_url).json(&request).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{request}");
        check(
            &error,
            &response.json().await.unwrap(),
            "an /authenticate error",
        );
    }
    let api = Api {
        http,
        base: running.base_url(),
        token,
    };

    // Requests the contract allows: 200 with an array of events.
    let valid = [
        format!("page=1&pageSize=1000&{WINDOW}"),
        format!("page=2&pageSize=100&{WINDOW}&sort=id"),
        format!("page=1&pageSize=50&{WINDOW}&sort=timestamp:desc,id"),
        format!("page=1&pageSize=50&{WINDOW}&sort=username,id:desc"),
        format!("page=1&pageSize=10&{WINDOW}&category=authentication"),
        format!(
            "page=1&pageSize=10&{WINDOW}&category=in:authentication,authorisation&action=like:user-%25"
        ),
        "page=1&pageSize=10&createdFrom=gt:2024-01-01T00:00:00Z&createdTo=lt:2024-01-02T00:00:00Z"
            .to_string(),
        format!("page=999&pageSize=1000&{WINDOW}"),
    ];
    let mut items = 0;
    for query in &valid {
        let (status, body) = api.events(query).await;
        assert_eq!(status, 200, "{query}: {body}");
        check(&events_ok, &body, query);
        items += body.as_array().unwrap().len();
    }
    assert!(
        items > 1_000,
        "the valid requests returned only {items} events"
    );

    // `fields` returns a subset: the chosen fields, each conforming to its property schema.
    let (status, body) = api
        .events(&format!(
            "page=1&pageSize=20&{WINDOW}&fields=id,timestamp,ipAddress"
        ))
        .await;
    assert_eq!(status, 200);
    for item in body.as_array().unwrap() {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 3, "{item}");
        let mut full = item.clone();
        full["category"] = json!("authentication");
        full["action"] = json!("user-login-success");
        check(&event, &full, "a projected event");
    }

    // Requests the contract forbids: 400 with the documented error body.
    let invalid = [
        format!("pageSize=10&{WINDOW}"),
        format!("page=1&{WINDOW}"),
        "page=1&pageSize=10&createdTo=2024-01-02T00:00:00Z".to_string(),
        "page=1&pageSize=10&createdFrom=2024-01-01T00:00:00Z".to_string(),
        format!("page=0&pageSize=10&{WINDOW}"),
        format!("page=1&pageSize=0&{WINDOW}"),
        format!("page=1&pageSize=1001&{WINDOW}"),
        format!("page=one&pageSize=10&{WINDOW}"),
        "page=1&pageSize=10&createdFrom=2024-01-01&createdTo=2024-01-02T00:00:00Z".to_string(),
        "page=1&pageSize=10&createdFrom=2024-01-01T00:00:00.000Z&createdTo=2024-01-02T00:00:00Z"
            .to_string(),
        "page=1&pageSize=10&createdFrom=ge:2024-01-01T00:00:00Z&createdTo=2024-01-02T00:00:00Z"
            .to_string(),
        format!("page=1&pageSize=10&{WINDOW}&sort=nonsense"),
        format!("page=1&pageSize=10&{WINDOW}&category="),
    ];
    for query in &invalid {
        let (status, body) = api.events(query).await;
        assert_eq!(status, 400, "{query}: {body}");
        check(&error, &body, query);
    }
    // The spec's own pattern agrees with the simulator on every date filter used above.
    for value in [
        "2024-01-01T00:00:00Z",
        "gt:2024-01-01T00:00:00Z",
        "lt:2024-01-02T00:00:00Z",
    ] {
        assert!(date_filter.is_valid(&json!(value)), "{value}");
    }
    for value in [
        "2024-01-01",
        "2024-01-01T00:00:00.000Z",
        "ge:2024-01-01T00:00:00Z",
    ] {
        assert!(!date_filter.is_valid(&json!(value)), "{value}");
    }

    // 401 for a missing, wrong or expired token, with the documented error body. The expired one is issued
    // already expired, rather than waited out.
    let other = Api {
        http: reqwest::Client::new(),
        base: api.base.clone(),
        token: sim.issue_token_expiring_at(
            std::time::SystemTime::now() - std::time::Duration::from_secs(60),
        ),
    };
    let query = format!("page=1&pageSize=10&{WINDOW}");
    for (api, token) in [
        (&api, None),
        (&api, Some("not-a-jwt")),
        (&api, Some(api.token.replace('a', "b").as_str())),
        (&other, Some(other.token.as_str())),
    ] {
        let (status, body) = api.get(&query, token).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        check(&error, &body, "a 401");
    }
    let (_, body) = other.events(&query).await;
    assert_eq!(body["message"], "The token has expired", "{body}");
}

#[test]
fn the_archivers_requests_conform_to_the_contract() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = Simulator::new(SimConfig::new(
        3_000,
        parse_time_arg("2024-01-01").unwrap(),
        parse_time_arg("2024-01-05").unwrap(),
    ));
    let running = rt.block_on(sim.serve(([127, 0, 0, 1], 0).into())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_elevate-archive"))
        .env_clear()
        .env("ELEVATE_USERNAME", "demo")
        .env("ELEVATE_PASSWORD", "demo")
        .env("ELEVATE_NOW", "2024-03-01T00:00:00Z")
        .args([
            "--db",
            dir.path().join("a.db").to_str().unwrap(),
            "sync",
            "--quiet",
            "--base-url",
            &running.base_url(),
        ])
        .args([
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-05",
            "--window",
            "6h",
            "--page-size",
            "100",
            "--category",
            "like:auth%",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let stats = sim.stats();
    assert!(
        stats
            .event_requests
            .load(std::sync::atomic::Ordering::Relaxed)
            > 16
    );
    assert_eq!(
        stats
            .bad_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the archiver sent a request the contract forbids"
    );
    assert_eq!(
        stats
            .unauthorized
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}
