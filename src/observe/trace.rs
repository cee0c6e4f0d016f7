//! OpenTelemetry traces, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the standard `OTEL_*` variables configure
//! the rest (headers, timeout, sampler, batching, service name, resource attributes).
//!
//! A request is one server span (a W3C `traceparent` the client sent is its parent); its
//! children are the database statements, the Redis calls and the upstream call, whose
//! `traceparent` the provider receives. Spans carry route templates, operation names,
//! provider and model names and status codes: never a key, a token, a prompt, a query's
//! values or an address.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use opentelemetry::{
    Context, KeyValue, global,
    trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The name spans are recorded under.
const TRACER: &str = "workjet";

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (cheap: checked on the request path).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why tracing cannot start as configured.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct TraceConfigError {
    pub variable: &'static str,
    pub message: String,
}

/// The exporter protocol the standard variables ask for.
fn protocol(var: impl Fn(&str) -> Option<String>) -> Result<opentelemetry_otlp::Protocol, TraceConfigError> {
    let (variable, value) = ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]
        .into_iter()
        .find_map(|name| var(name).map(|v| (name, v)))
        .unwrap_or(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()));
    match value.trim() {
        "http/protobuf" => Ok(opentelemetry_otlp::Protocol::HttpBinary),
        "http/json" => Ok(opentelemetry_otlp::Protocol::HttpJson),
        other => {
            Err(TraceConfigError { variable, message: format!("{other:?} is not supported: use http/protobuf (the default) or http/json") })
        }
    }
}

/// Whether the environment asks for traces.
fn wanted(var: &impl Fn(&str) -> Option<String>) -> bool {
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let traces_off = var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none");
    let endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")).is_some();
    endpoint && !disabled && !traces_off
}

/// Builds the exporter and the tracer provider when the environment asks for traces;
/// `None` when it does not. The global propagator (W3C trace context) and tracer provider
/// are set, and [`enabled`] turns true.
pub fn start() -> Result<Option<SdkTracerProvider>, TraceConfigError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if !wanted(&var) {
        return Ok(None);
    }
    if let Some(provider) = PROVIDER.get() {
        return Ok(Some(provider.clone()));
    }
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol(var)?)
        .build()
        .map_err(|e| TraceConfigError { variable: "OTEL_EXPORTER_OTLP_ENDPOINT", message: e.to_string() })?;
    let mut resource = Resource::builder().with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if var("OTEL_SERVICE_NAME").is_none() && !var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name=")) {
        resource = resource.with_service_name("workjet");
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    global::set_text_map_propagator(TraceContextPropagator::new());
    global::set_tracer_provider(provider.clone());
    let provider = PROVIDER.get_or_init(|| provider).clone();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(provider))
}

/// The `tracing` layer that turns Workjet's spans (not its log events) into OpenTelemetry
/// spans: the `request` span and its `debug`-level children, which are created only while
/// traces are exported.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use tracing_subscriber::{
        Layer as _,
        filter::{FilterExt as _, Targets, filter_fn},
    };
    let spans = Targets::new().with_target("workjet", tracing::Level::DEBUG).and(filter_fn(|meta| meta.is_span()));
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(TRACER))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_level(false)
        .with_filter(spans)
}

/// Sends what is still buffered, then stops the exporter (at shutdown).
pub fn shutdown(provider: SdkTracerProvider) {
    if let Err(error) = provider.shutdown() {
        eprintln!("workjet: flushing traces at shutdown failed: {error}");
    }
}

/// The span of one HTTP request: the server span, child of the client's `traceparent`.
/// `route` is the route template (never the raw path).
pub fn server_span(method: &http::Method, route: Option<&str>, path: &str, request_id: &str, headers: &http::HeaderMap) -> tracing::Span {
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %method,
        path = %path,
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %method,
        http.route = route.unwrap_or(""),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = global::get_text_map_propagator(|p| p.extract(&opentelemetry_http::HeaderExtractor(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// Records the answer's status on the request's span.
pub fn record_status(span: &tracing::Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Adds the current span's `traceparent` (and `tracestate`) to an upstream request.
pub fn inject(headers: &mut http::HeaderMap) {
    if !enabled() {
        return;
    }
    let context = Context::current();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers)));
}

/// A finished database statement becomes a child span of the current span (statements
/// outside a traced request are not recorded). Only the operation and the table are
/// recorded: never the statement's values.
pub fn db_statement(backend: &'static str, sql: &str, elapsed: std::time::Duration, failed: bool) {
    // The OpenTelemetry context active now: the innermost traced span (entering one
    // activates its context), whatever other crates' untraced spans were entered since.
    let parent = Context::current();
    if !parent.span().span_context().is_valid() {
        return;
    }
    let (operation, table) = summarize(sql);
    let end = SystemTime::now();
    let tracer = global::tracer(TRACER);
    let mut attributes = vec![KeyValue::new("db.system.name", backend), KeyValue::new("db.operation.name", operation)];
    if let Some(table) = table {
        attributes.push(KeyValue::new("db.collection.name", table.to_owned()));
    }
    let name = match table {
        Some(table) => format!("{operation} {table}"),
        None => operation.to_owned(),
    };
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .with_start_time(end.checked_sub(elapsed).unwrap_or(end))
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    if failed {
        span.set_status(Status::error("the statement failed"));
    }
    span.end_with_timestamp(end);
}

/// The statement's operation (its first keyword) and the table it names first.
fn summarize(sql: &str) -> (&'static str, Option<&str>) {
    let mut words = sql.split_whitespace();
    let operation = match words.next().map(str::to_ascii_uppercase).as_deref() {
        Some("SELECT") => "SELECT",
        Some("INSERT") => "INSERT",
        Some("UPDATE") => "UPDATE",
        Some("DELETE") => "DELETE",
        Some("WITH") => "WITH",
        Some("BEGIN") => "BEGIN",
        Some("COMMIT") => "COMMIT",
        Some("ROLLBACK") => "ROLLBACK",
        _ => "OTHER",
    };
    let after = match operation {
        "SELECT" | "DELETE" | "WITH" => "FROM",
        "INSERT" => "INTO",
        "UPDATE" => return (operation, words.next().map(unquote).filter(|t| is_identifier(t))),
        _ => return (operation, None),
    };
    let mut words = sql.split_whitespace();
    let table = words.by_ref().find(|w| w.eq_ignore_ascii_case(after)).and_then(|_| words.next()).map(unquote).filter(|t| is_identifier(t));
    (operation, table)
}

fn unquote(word: &str) -> &str {
    word.trim_matches(|c| c == '"' || c == '`' || c == ';')
}

/// A plain table name (anything else — a sub-query, a literal — is not recorded).
fn is_identifier(word: &str) -> bool {
    !word.is_empty() && word.len() <= 64 && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_summarised_without_their_values() {
        assert_eq!(summarize(r#"SELECT "api_keys"."id" FROM "api_keys" WHERE "api_keys"."key_hash" = $1"#), ("SELECT", Some("api_keys")));
        assert_eq!(summarize(r#"INSERT INTO "usage_events" ("user_id") VALUES ($1)"#), ("INSERT", Some("usage_events")));
        assert_eq!(summarize(r#"UPDATE "api_keys" SET "name" = $1"#), ("UPDATE", Some("api_keys")));
        assert_eq!(summarize("DELETE FROM sessions WHERE id = 'secret'"), ("DELETE", Some("sessions")));
        assert_eq!(summarize("select count(*) from (select 1)"), ("SELECT", None), "a sub-query is not a table");
        assert_eq!(summarize("PRAGMA foreign_keys = ON"), ("OTHER", None));
        assert_eq!(summarize(""), ("OTHER", None));
    }

    #[test]
    fn the_protocol_comes_from_the_standard_variables() {
        let none = |_: &str| None;
        assert_eq!(protocol(none).ok(), Some(opentelemetry_otlp::Protocol::HttpBinary));
        let json = |name: &str| (name == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/json".to_owned());
        assert_eq!(protocol(json).ok(), Some(opentelemetry_otlp::Protocol::HttpJson));
        let grpc = |name: &str| (name == "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").then(|| "grpc".to_owned());
        let error = protocol(grpc).expect_err("gRPC is not built in");
        assert_eq!(error.variable, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
    }

    #[test]
    fn traces_are_wanted_only_with_an_endpoint_and_not_disabled() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        assert!(!wanted(&env(&[])));
        assert!(wanted(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")])));
        assert!(wanted(&env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")])));
        assert!(!wanted(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "true")])));
        assert!(!wanted(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_TRACES_EXPORTER", "none")])));
    }
}
