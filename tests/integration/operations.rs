//! Operating Workjet: the Prometheus metrics on `WJ_METRICS_ADDR` after known traffic, and
//! the OpenTelemetry spans a small OTLP/HTTP receiver gets — the binary itself, as an
//! operator runs it.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use prost::Message as _;
use reqwest::header;
use serde_json::{Value, json};

use crate::{browser::location, idp::TestIdp, process::Process, upstream::Fake};

const PROVIDER_KEY: &str = "sk-operations-provider-secret-9d1c4e";
const PROMPT: &str = "a-prompt-that-must-never-be-exported-7f3a";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn provider_config(dir: &std::path::Path, fake: &Fake) -> String {
    let path = dir.join("workjet.toml");
    let toml = fake.provider_toml("fake-openai", "{ \"gpt-public\" = \"upstream-model\" }", Some("OPERATIONS_PROVIDER_KEY"));
    std::fs::write(&path, toml).expect("write config");
    path.display().to_string()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Signs in through the test identity provider; the session cookie.
async fn sign_in(client: &reqwest::Client, base: &str) -> String {
    let cookie_of = |r: &reqwest::Response, name: &str| -> String {
        let prefix = format!("{name}=");
        r.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(prefix.as_str()).map(|rest| rest.split(';').next().unwrap_or_default().to_owned()))
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    let start = client.get(format!("{base}/auth/google")).send().await.expect("start");
    let signin = cookie_of(&start, "wj_signin");
    let at_provider = client.get(location(&start)).send().await.expect("authorize");
    let landed = client.get(location(&at_provider)).header(header::COOKIE, format!("wj_signin={signin}")).send().await.expect("callback");
    format!("wj_session={}", cookie_of(&landed, "wj_session"))
}

/// Creates a key with the session; (id, raw key).
async fn create_key(client: &reqwest::Client, base: &str, cookie: &str, name: &str) -> (i64, String) {
    let created: Value = client
        .post(format!("{base}/v1/keys"))
        .header(header::COOKIE, cookie)
        .header(header::ORIGIN, base)
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    (created["id"].as_i64().expect("id"), created["key"].as_str().expect("the raw key").to_owned())
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the series named `name` whose labels include every `labels` pair (0 if none).
fn value(samples: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
            n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic_by_route_template_without_people_keys_or_addresses() {
    let idp = TestIdp::start().await;
    let fake = Fake::openai().await;
    let config_dir = tempfile::tempdir().expect("dir");
    let metrics_port = free_port();
    let mut env = idp.settings();
    env.extend([
        ("WJ_CONFIG", provider_config(config_dir.path(), &fake)),
        ("OPERATIONS_PROVIDER_KEY", PROVIDER_KEY.to_owned()),
        ("WJ_METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
    ]);
    let server = Process::start(&env).await;
    let base = server.base.clone();
    let client = client();
    let cookie = sign_in(&client, &base).await;
    let (key_id, key) = create_key(&client, &base, &cookie, "metrics").await;
    let (revoked_id, revoked) = create_key(&client, &base, &cookie, "to revoke").await;
    let unknown = workjet::domain::api_keys::PlainApiKey::generate().into_secret();

    // Known traffic.
    for _ in 0..3 {
        assert_eq!(client.get(format!("{base}/v1/models")).bearer_auth(&key).send().await.expect("models").status(), 200);
    }
    assert_eq!(client.get(format!("{base}/v1/keys/{key_id}")).bearer_auth(&key).send().await.expect("get").status(), 200);
    assert_eq!(client.get(format!("{base}/v1/keys/999999")).bearer_auth(&key).send().await.expect("get").status(), 404);
    assert_eq!(client.get(format!("{base}/v1/models")).bearer_auth("nope").send().await.expect("malformed").status(), 401);
    assert_eq!(client.get(format!("{base}/v1/models")).bearer_auth(&unknown).send().await.expect("unknown").status(), 401);
    let revoke = client.delete(format!("{base}/v1/keys/{revoked_id}")).bearer_auth(&key).send().await.expect("revoke");
    assert!(revoke.status().is_success(), "{}", revoke.status());
    for _ in 0..2 {
        assert_eq!(client.get(format!("{base}/v1/models")).bearer_auth(&revoked).send().await.expect("revoked").status(), 401);
    }
    for _ in 0..2 {
        let chat = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "gpt-public", "messages": [{"role": "user", "content": PROMPT}]}))
            .send()
            .await
            .expect("chat");
        assert_eq!(chat.status(), 200);
    }
    assert_eq!(client.get(format!("{base}/no/such/page/{key_id}")).send().await.expect("404").status(), 404);

    // The scrape.
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let scrape = client.get(&metrics_url).send().await.expect("scrape");
    assert_eq!(scrape.status(), 200);
    assert!(scrape.headers()[header::CONTENT_TYPE].to_str().expect("ascii").starts_with("text/plain; version=0.0.4"));
    let text = scrape.text().await.expect("text");
    let s = samples(&text);

    let requests = "workjet_http_requests_total";
    assert_eq!(value(&s, requests, &[("route", "/v1/models"), ("method", "GET"), ("status", "200")]), 3.0, "{text}");
    assert_eq!(value(&s, requests, &[("route", "/v1/models"), ("method", "GET"), ("status", "401")]), 4.0);
    assert_eq!(value(&s, requests, &[("route", "/v1/keys/{id}"), ("method", "GET"), ("status", "200")]), 1.0);
    assert_eq!(value(&s, requests, &[("route", "/v1/keys/{id}"), ("method", "GET"), ("status", "404")]), 1.0);
    assert_eq!(value(&s, requests, &[("route", "/v1/keys/{id}"), ("method", "DELETE")]), 1.0);
    assert_eq!(value(&s, requests, &[("route", "/v1/chat/completions"), ("method", "POST"), ("status", "200")]), 2.0);
    assert!(value(&s, requests, &[("route", "unmatched")]) >= 1.0, "an unknown path is counted as unmatched");
    assert_eq!(
        value(&s, "workjet_http_request_duration_seconds_count", &[("route", "/v1/models")]),
        7.0,
        "a histogram per route, every answer observed"
    );
    assert!(text.contains("workjet_http_request_duration_seconds_bucket{route=\"/v1/models\",le=\"0.001\"}"), "real buckets: {text}");

    let auth = "workjet_auth_decisions_total";
    // Key decisions: 3 models + 2 key reads + 1 revoke + 2 chats = 8 ok.
    assert_eq!(value(&s, auth, &[("method", "key"), ("outcome", "ok")]), 8.0, "{text}");
    assert_eq!(value(&s, auth, &[("method", "key"), ("outcome", "malformed")]), 1.0);
    assert_eq!(value(&s, auth, &[("method", "key"), ("outcome", "unknown")]), 1.0);
    assert_eq!(value(&s, auth, &[("method", "key"), ("outcome", "revoked")]), 2.0);
    assert_eq!(value(&s, auth, &[("method", "session"), ("outcome", "ok")]), 2.0, "the two keys created with the session");
    let cache = "workjet_auth_cache_lookups_total";
    assert!(value(&s, cache, &[("result", "hit")]) >= 6.0, "{text}");
    assert!(value(&s, cache, &[("result", "miss")]) >= 2.0, "the first use of the key and of the unknown key read the database");

    let upstream = [("provider", "fake-openai"), ("model", "gpt-public")];
    assert_eq!(value(&s, "workjet_upstream_requests_total", &[upstream[0], upstream[1], ("status", "200")]), 2.0);
    assert_eq!(value(&s, "workjet_upstream_first_byte_seconds_count", &[upstream[0]]), 2.0);
    assert_eq!(value(&s, "workjet_upstream_duration_seconds_count", &[upstream[0]]), 2.0);
    assert_eq!(value(&s, "workjet_tokens_total", &[upstream[0], upstream[1], ("kind", "prompt")]), 22.0);
    assert_eq!(value(&s, "workjet_tokens_total", &[upstream[0], upstream[1], ("kind", "completion")]), 14.0);

    assert_eq!(value(&s, "workjet_db_pool_connections", &[("state", "max")]), 16.0);
    assert!(text.contains("workjet_db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("workjet_db_pool_connections{state=\"in_use\"}"));
    assert_eq!(value(&s, "workjet_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(!text.contains("workjet_redis_up "), "no Redis gauge without Redis");
    assert!(text.contains("# HELP workjet_auth_decisions_total"), "every metric is described");

    // Nobody's key, id, address, email or path is a label.
    for secret in [key.as_str(), revoked.as_str(), unknown.as_str(), "wj_live_", "127.0.0.1", "@example", PROVIDER_KEY, PROMPT] {
        assert!(!text.contains(secret), "{secret} must not appear in the metrics");
    }
    for raw_path in [format!("/v1/keys/{key_id}"), "/v1/keys/999999".to_owned(), "/no/such/page".to_owned()] {
        assert!(!text.contains(&raw_path), "raw path {raw_path} must not be a label");
    }

    // /metrics is only on its own listener; that listener serves nothing else.
    let public = client.get(format!("{base}/metrics")).send().await.expect("public");
    assert!(!public.text().await.expect("text").contains("workjet_http_requests_total"), "the public port never serves metrics");
    let other = client.get(format!("http://127.0.0.1:{metrics_port}/")).send().await.expect("other");
    assert_eq!(other.status(), 404);
    drop(server);
}

#[test]
fn a_metrics_address_that_is_not_an_address_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("dir");
    for bad in ["9464", "localhost:metrics", "127.0.0.1:3000"] {
        let output = std::process::Command::new(crate::helpers::workjet_binary())
            .current_dir(dir.path())
            .env("WJ_LISTEN_ADDR", "127.0.0.1:3000")
            .env("WJ_METRICS_ADDR", bad)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "WJ_METRICS_ADDR={bad}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("WJ_METRICS_ADDR"));
    }
    let output = std::process::Command::new(crate::helpers::workjet_binary())
        .current_dir(dir.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "gRPC export is refused at start, not silently dropped");
    assert!(String::from_utf8_lossy(&output.stderr).contains("OTEL_EXPORTER_OTLP_PROTOCOL"));
}

/// One received span, flattened.
#[derive(Clone, Debug)]
struct ReceivedSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    attributes: BTreeMap<String, String>,
}

/// A small OTLP/HTTP receiver (protobuf, the default protocol): every span it was sent,
/// and every request body as received (to search for secrets).
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Receiver {
    async fn start() -> (Self, SocketAddr) {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().route("/v1/traces", post(receive)).with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, addr)
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("lock").clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> &'static str {
    use opentelemetry_proto::tonic::{collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value::Value as Any};
    assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/x-protobuf"));
    let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("an OTLP protobuf export");
    let mut spans = Vec::new();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                            Some(Any::StringValue(s)) => s,
                            Some(Any::IntValue(i)) => i.to_string(),
                            Some(Any::BoolValue(b)) => b.to_string(),
                            Some(Any::DoubleValue(d)) => d.to_string(),
                            other => format!("{other:?}"),
                        };
                        (kv.key.clone(), value)
                    })
                    .collect();
                spans.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes,
                });
            }
        }
    }
    receiver.spans.lock().expect("lock").extend(spans);
    receiver.bodies.lock().expect("lock").push(body.to_vec());
    ""
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// OTLP span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

async fn traces_reach_the_receiver(redis: Option<String>) {
    let (receiver, receiver_addr) = Receiver::start().await;
    let idp = TestIdp::start().await;
    let fake = Fake::openai().await;
    let config_dir = tempfile::tempdir().expect("dir");
    let mut env = idp.settings();
    env.extend([
        ("WJ_CONFIG", provider_config(config_dir.path(), &fake)),
        ("OPERATIONS_PROVIDER_KEY", PROVIDER_KEY.to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{receiver_addr}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_SERVICE_NAME", "workjet-under-test".to_owned()),
    ]);
    if let Some(url) = &redis {
        let prefix = format!("wj-otel-{}:", std::process::id());
        env.extend([("WJ_REDIS_URL", url.clone()), ("WJ_REDIS_PREFIX", prefix)]);
    }
    let server = Process::start(&env).await;
    let base = server.base.clone();
    let client = client();
    let cookie = sign_in(&client, &base).await;
    let session_token = cookie.trim_start_matches("wj_session=").to_owned();
    let (_, key) = create_key(&client, &base, &cookie, "traced").await;

    // The client's trace: its traceparent names the parent of Workjet's server span.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let chat = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&key)
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&json!({"model": "gpt-public", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .expect("chat");
    assert_eq!(chat.status(), 200);
    // A request that reads the database (the chat's key was cached when it was created).
    let list_span = "00f067aa0ba902b8";
    let list = client
        .get(format!("{base}/v1/keys"))
        .bearer_auth(&key)
        .header("traceparent", format!("00-{trace_id}-{list_span}-01"))
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), 200);

    let found = crate::helpers::eventually(Duration::from_secs(15), || {
        let spans = receiver.spans();
        async move {
            let of = |parent: &str| spans.iter().any(|s| s.trace_id == trace_id && s.kind == SERVER && s.parent_span_id == parent);
            of(client_span) && of(list_span) && spans.iter().any(|s| s.name == "POST fake-openai")
        }
    })
    .await;
    let spans = receiver.spans();
    assert!(found, "the request's spans reach the receiver: {spans:#?}\n{}", server.output());
    let ours: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == trace_id).collect();

    // The server span: child of the client's span, named by the route template.
    let server_span =
        ours.iter().find(|s| s.kind == SERVER && s.parent_span_id == client_span).expect("the incoming traceparent is the parent");
    assert_eq!(server_span.name, "POST /v1/chat/completions");
    assert_eq!(server_span.attributes.get("http.route").map(String::as_str), Some("/v1/chat/completions"));
    assert_eq!(server_span.attributes.get("http.response.status_code").map(String::as_str), Some("200"));

    // Its children: the upstream call (and Redis when configured).
    let children: Vec<&&ReceivedSpan> = ours.iter().filter(|s| s.parent_span_id == server_span.span_id).collect();
    let upstream = children.iter().find(|s| s.name == "POST fake-openai").unwrap_or_else(|| panic!("an upstream span: {children:#?}"));
    assert_eq!(upstream.kind, CLIENT);
    assert_eq!(upstream.attributes.get("model").map(String::as_str), Some("gpt-public"));
    assert_eq!(upstream.attributes.get("http.response.status_code").map(String::as_str), Some("200"));
    if redis.is_some() {
        let redis_span = children.iter().find(|s| s.attributes.get("db.system.name").map(String::as_str) == Some("redis"));
        assert!(redis_span.is_some(), "a Redis span under the request: {children:#?}");
    }

    // The list's database statements are children of its server span: operation and table.
    let list_server = ours.iter().find(|s| s.kind == SERVER && s.parent_span_id == list_span).expect("the list's server span");
    assert_eq!(list_server.name, "GET /v1/keys");
    let statements: Vec<&&ReceivedSpan> = ours
        .iter()
        .filter(|s| s.parent_span_id == list_server.span_id && s.attributes.get("db.system.name").map(String::as_str) == Some("sqlite"))
        .collect();
    assert!(statements.iter().any(|s| s.name == "SELECT api_keys" && s.kind == CLIENT), "a database span under the list: {ours:#?}");
    for statement in &statements {
        assert!(!statement.attributes.contains_key("db.query.text"), "no statement text (nor its values) is exported");
    }

    // The provider was called with the upstream span as its parent, in the same trace.
    let requests = fake.requests();
    let traceparent = requests.last().and_then(|(h, _)| h.get("traceparent")).and_then(|v| v.to_str().ok()).expect("traceparent upstream");
    assert_eq!(traceparent, format!("00-{trace_id}-{}-01", upstream.span_id));

    // No secret in anything exported.
    let bodies = receiver.bodies.lock().expect("lock").concat();
    let contains = |needle: &str| bodies.windows(needle.len()).any(|w| w == needle.as_bytes());
    for secret in [key.as_str(), session_token.as_str(), PROVIDER_KEY, PROMPT, "wj_live_", "Bearer"] {
        assert!(!contains(secret), "{secret} must not be exported");
    }
    assert!(contains("workjet-under-test"), "OTEL_SERVICE_NAME names the service");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_with_the_right_parents_and_no_secrets() {
    traces_reach_the_receiver(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis (WJ_TEST_REDIS_URL)"]
async fn spans_include_redis_calls_with_redis() {
    traces_reach_the_receiver(Some(crate::helpers::required_env("WJ_TEST_REDIS_URL"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis (WJ_TEST_REDIS_URL)"]
async fn metrics_say_whether_redis_is_up_with_redis() {
    // Redis behind a proxy the test can cut, as if Redis stopped, and restore.
    let url = crate::helpers::required_env("WJ_TEST_REDIS_URL");
    let proxy = crate::helpers::CuttableProxy::start(crate::helpers::resolve(&url, 6379).await).await;
    let mut through = url::Url::parse(&url).expect("redis url");
    through.set_port(Some(proxy.addr.port())).expect("port");
    through.set_host(Some("127.0.0.1")).expect("host");
    let metrics_port = free_port();
    let server = Process::start(&[
        ("WJ_REDIS_URL", through.to_string()),
        ("WJ_REDIS_PREFIX", format!("wj-metrics-{}:", std::process::id())),
        ("WJ_METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
    ])
    .await;
    let client = client();
    let redis_up_is = |expected: f64| {
        let client = client.clone();
        crate::helpers::eventually(Duration::from_secs(10), move || {
            let client = client.clone();
            async move {
                let Ok(response) = client.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await else { return false };
                let text = response.text().await.unwrap_or_default();
                value(&samples(&text), "workjet_redis_up", &[]) == expected
            }
        })
    };
    assert!(redis_up_is(1.0).await, "workjet_redis_up is 1 while Redis answers: {}", server.output());
    proxy.cut();
    assert!(redis_up_is(0.0).await, "workjet_redis_up falls to 0 when Redis stops answering: {}", server.output());
    proxy.restore();
    assert!(redis_up_is(1.0).await, "and is 1 again once Redis is back: {}", server.output());
}
