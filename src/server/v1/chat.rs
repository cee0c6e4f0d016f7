//! `POST /v1/chat/completions`: the gateway. The request goes to the provider configured
//! for its model — passed through to OpenAI-compatible APIs (the original bytes when the
//! model name is unchanged), translated for Anthropic — and the answer comes back as an
//! OpenAI chat completion, streamed chunk by chunk when asked. The client's credentials
//! never reach the upstream; the provider's key never reaches the client or a log.

use std::{
    convert::Infallible,
    pin::Pin,
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::BytesMut;
use futures::{Stream, StreamExt};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::{
    domain::{
        providers::{
            ProviderKind, Route,
            anthropic::{self, ANTHROPIC_VERSION, StreamOutput, StreamTranslator, Usage},
            sse::{self, SseItem, SseParser},
        },
        usage::{UsageRecord, UsageRecorder},
    },
    permissions::Permission,
    server::{
        error::ApiError,
        state::AppState,
        v1::{auth::Principal, body::JsonBody},
    },
};

/// The largest single SSE event relayed (a guard against a runaway upstream).
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// The largest upstream error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Reports one request's usage when it ends, however it ends.
struct Meter {
    recorder: UsageRecorder,
    user_id: i64,
    key_id: Option<i64>,
    model: String,
    started: Instant,
    streamed: bool,
}

impl Meter {
    fn record(self, status: u16, usage: Usage) {
        self.recorder.record(UsageRecord {
            user_id: self.user_id,
            api_key_id: self.key_id,
            model: self.model,
            status,
            latency_ms: self.started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            streamed: self.streamed,
            at: chrono::Utc::now(),
        });
    }
}

pub fn parse_request(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request("The request body must be a JSON object."));
    };
    match map.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        Some(_) => return Err(ApiError::invalid_param("invalid_request", "model", "model must be a non-empty string.")),
        None => return Err(ApiError::invalid_param("invalid_request", "model", "You must provide a model parameter.")),
    }
    if !map.get("messages").is_some_and(Value::is_array) {
        return Err(ApiError::invalid_param("invalid_request", "messages", "messages must be an array of messages."));
    }
    if map.get("stream").is_some_and(|s| !s.is_boolean() && !s.is_null()) {
        return Err(ApiError::invalid_param("invalid_request", "stream", "stream must be a boolean."));
    }
    Ok(map)
}

/// Creates a chat completion through the model's provider.
#[utoipa::path(post, path = "/v1/chat/completions", operation_id = "createChatCompletion", tag = "inference",
    request_body(content = Object, description = "An OpenAI chat-completions request; `model` and `messages` are required, \
        everything else is passed to the provider.",
        example = json!({"model": "claude-4-sonnet", "messages": [{"role": "user", "content": "Hello, world!"}]})),
    responses(
        (status = 200, description = "A chat completion (`application/json`), or with `\"stream\": true` a stream of \
            chat-completion chunks (`text/event-stream`) ending with `data: [DONE]`.",
            content((Object = "application/json"), (String = "text/event-stream"))),
        (status = 403, description = "`forbidden`: the credentials lack the `inference` permission.", body = crate::server::error::ErrorBody),
        (status = 404, description = "`model_not_found`: no provider serves this model.", body = crate::server::error::ErrorBody),
        (status = 502, description = "`upstream_error`: the provider is unreachable, failed or answered garbage.", body = crate::server::error::ErrorBody),
        (status = 504, description = "`upstream_timeout`: the provider did not answer in time.", body = crate::server::error::ErrorBody)))]
pub async fn chat_completions(State(state): State<AppState>, principal: Principal, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    principal.require(Permission::Inference)?;
    let started = Instant::now();
    let mut request = parse_request(&body)?;
    let model = request.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some(route) = state.gateway.route(&model).cloned() else {
        return Err(ApiError::model_not_found(&model));
    };
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = request.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    let meter = Meter {
        recorder: state.usage.clone(),
        user_id: principal.user_id,
        key_id: principal.key_id(),
        model: model.clone(),
        started,
        streamed: stream,
    };
    let timeouts = &state.gateway.timeouts;
    let first_byte = Duration::from_millis(timeouts.first_byte_ms);
    let idle = Duration::from_millis(timeouts.idle_ms);

    let (url, upstream_body, headers) = match route.provider.kind {
        ProviderKind::Openai => {
            let unchanged = route.upstream_model == model && (!stream || include_usage);
            let body = if unchanged {
                body
            } else {
                request.insert("model".into(), Value::String(route.upstream_model.clone()));
                if stream && !include_usage {
                    // Ask for usage anyway (for accounting); the extra chunk is not relayed.
                    request.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
                }
                Bytes::from(serde_json::to_vec(&request).expect("a JSON map serialises"))
            };
            let mut headers = HeaderMap::new();
            if let Some(key) = &route.provider.api_key {
                let value =
                    HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())).map_err(|_| provider_misconfigured(&route))?;
                headers.insert(header::AUTHORIZATION, sensitive(value));
            }
            (endpoint(&route, "chat/completions"), body, headers)
        }
        ProviderKind::Anthropic => {
            let translated = anthropic::translate_request(&request, &route.upstream_model)
                .map_err(|e| ApiError::invalid_param("invalid_request", e.param, e.message))?;
            let mut headers = HeaderMap::new();
            headers.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(ANTHROPIC_VERSION));
            if let Some(key) = &route.provider.api_key {
                let value = HeaderValue::from_str(key.expose_secret()).map_err(|_| provider_misconfigured(&route))?;
                headers.insert(HeaderName::from_static("x-api-key"), sensitive(value));
            }
            (endpoint(&route, "v1/messages"), Bytes::from(translated.to_string()), headers)
        }
    };

    let sent = route
        .provider
        .client
        .post(url)
        .headers(headers)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, if stream { "text/event-stream" } else { "application/json" })
        .body(upstream_body)
        .send();
    let response = match tokio::time::timeout(first_byte, sent).await {
        Err(_) => {
            return Err(failed(
                meter,
                ApiError::upstream_timeout(format!("The model provider did not answer within {} s.", first_byte.as_secs())),
            ));
        }
        Ok(Err(error)) => {
            let (timeout, connect) = (error.is_timeout(), error.is_connect());
            tracing::warn!(provider = %route.provider.name, error = %error.without_url(), "upstream request failed");
            let e = if timeout {
                ApiError::upstream_timeout("The model provider did not answer in time.")
            } else if connect {
                ApiError::upstream("The model provider could not be reached.")
            } else {
                ApiError::upstream("The connection to the model provider failed.")
            };
            return Err(failed(meter, e));
        }
        Ok(Ok(response)) => response,
    };
    if !response.status().is_success() {
        let error = upstream_failure(&route, response).await;
        return Err(failed(meter, error));
    }
    if stream {
        relay_stream(route, response, meter, idle, &model, include_usage)
    } else {
        relay_complete(route, response, meter, idle, &model).await
    }
}

fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

fn endpoint(route: &Route, path: &str) -> url::Url {
    let mut url = route.provider.base_url.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/{path}"));
    url
}

fn provider_misconfigured(route: &Route) -> ApiError {
    tracing::error!(provider = %route.provider.name, "the provider's API key is not a valid header value");
    ApiError::upstream("The model provider is misconfigured on this server.")
}

fn failed(meter: Meter, error: ApiError) -> ApiError {
    meter.record(error.status().as_u16(), Usage::default());
    error
}

/// Maps a non-2xx upstream answer: 4xx relayed in OpenAI's shape (429 with its
/// Retry-After), the provider refusing *our* credentials and 5xx as 502.
async fn upstream_failure(route: &Route, response: reqwest::Response) -> ApiError {
    let status = response.status();
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let retry_after_ms = response.headers().get("retry-after-ms").cloned();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ERROR_BODY {
                break;
            }
        }
    });
    let _ = read.await;
    let upstream_message =
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_owned));
    // Never echo anything that could carry the provider's key (some providers quote part of it).
    let leaks = |m: &str| {
        route.provider.api_key.as_ref().is_some_and(|k| {
            m.contains(k.expose_secret())
                || m.contains("sk-")
                || m.to_ascii_lowercase().contains("api key")
                || m.to_ascii_lowercase().contains("api-key")
        })
    };
    let message = upstream_message.filter(|m| !leaks(m)).map(|m| m.chars().take(500).collect::<String>());
    tracing::warn!(provider = %route.provider.name, status = status.as_u16(), "upstream answered an error");
    match status.as_u16() {
        401 | 403 => {
            ApiError::upstream("The model provider refused this server's credentials. The operator must check the provider's API key.")
        }
        429 => {
            let mut error = ApiError::with_status(
                StatusCode::TOO_MANY_REQUESTS,
                "upstream_rate_limited",
                message.unwrap_or_else(|| "The model provider is rate limiting requests.".into()),
            );
            if let Some(v) = retry_after {
                error = error.with_header(header::RETRY_AFTER, v);
            }
            if let Some(v) = retry_after_ms {
                error = error.with_header(HeaderName::from_static("retry-after-ms"), v);
            }
            error
        }
        400..=499 => ApiError::with_status(
            status,
            "upstream_error",
            message.unwrap_or_else(|| format!("The model provider refused the request (HTTP {}).", status.as_u16())),
        ),
        _ => ApiError::upstream(format!("The model provider returned an error (HTTP {}).", status.as_u16())),
    }
}

fn usage_of(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        prompt_tokens: usage.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        completion_tokens: usage.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
    })
}

async fn relay_complete(
    route: Route,
    response: reqwest::Response,
    meter: Meter,
    idle: Duration,
    model: &str,
) -> Result<Response, ApiError> {
    let bytes = match tokio::time::timeout(idle, response.bytes()).await {
        Err(_) => return Err(failed(meter, ApiError::upstream_timeout("The model provider stopped answering."))),
        Ok(Err(_)) => return Err(failed(meter, ApiError::upstream("The connection to the model provider broke."))),
        Ok(Ok(bytes)) => bytes,
    };
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok().filter(Value::is_object);
    let Some(parsed) = parsed else {
        return Err(failed(meter, ApiError::upstream("The model provider answered something that is not a chat completion.")));
    };
    let (body, usage) = match route.provider.kind {
        ProviderKind::Openai => {
            if parsed.get("choices").is_none() {
                return Err(failed(meter, ApiError::upstream("The model provider answered something that is not a chat completion.")));
            }
            (bytes, usage_of(&parsed).unwrap_or_default())
        }
        ProviderKind::Anthropic => match anthropic::translate_response(&parsed, model, chrono::Utc::now().timestamp()) {
            Some((translated, usage)) => (Bytes::from(translated.to_string()), usage),
            None => return Err(failed(meter, ApiError::upstream("The model provider answered something that is not a message."))),
        },
    };
    meter.record(200, usage);
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

enum Mode {
    /// Pass-through; `strip_usage` drops the usage-only chunk the client did not ask for.
    Openai {
        strip_usage: bool,
        saw_done: bool,
    },
    Anthropic(Box<StreamTranslator>),
}

/// Relays an upstream SSE stream event by event, with an idle timeout, ending with an
/// error event (never a hang) when the upstream fails mid-way.
struct Relay {
    upstream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    parser: SseParser,
    idle: Duration,
    mode: Mode,
    finished: bool,
    /// 200 unless the stream failed; 499 if the client left first.
    status: u16,
    usage: Usage,
    meter: Option<Meter>,
}

fn error_event(message: &str, code: &str) -> Bytes {
    let body = serde_json::json!({"error": {"message": message, "type": "api_error", "code": code, "param": null}});
    sse::frame(None, &body.to_string())
}

impl Relay {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.finished {
                return None;
            }
            let chunk = match tokio::time::timeout(self.idle, self.upstream.next()).await {
                Err(_) => return Some(self.fail(504, "The model provider stopped sending for too long.", "upstream_timeout")),
                Ok(Some(Err(_))) => {
                    return Some(self.fail(502, "The connection to the model provider broke mid-stream.", "upstream_error"));
                }
                Ok(None) => {
                    let complete = match &self.mode {
                        Mode::Openai { saw_done, .. } => *saw_done,
                        Mode::Anthropic(t) => t.finished(),
                    };
                    if complete {
                        self.finished = true;
                        return None;
                    }
                    return Some(self.fail(502, "The model provider ended the stream early.", "upstream_error"));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let items = match self.parser.feed(&chunk) {
                Ok(items) => items,
                Err(_) => return Some(self.fail(502, "The model provider sent an oversized stream event.", "upstream_error")),
            };
            let mut out = BytesMut::new();
            for item in items {
                self.relay_item(item, &mut out);
                if self.finished {
                    break;
                }
            }
            if !out.is_empty() {
                return Some(out.freeze());
            }
        }
    }

    fn fail(&mut self, status: u16, message: &str, code: &str) -> Bytes {
        self.finished = true;
        self.status = status;
        error_event(message, code)
    }

    fn relay_item(&mut self, item: SseItem, out: &mut BytesMut) {
        match (&mut self.mode, item) {
            (_, SseItem::Comment(text)) => out.extend_from_slice(&sse::comment(&text)),
            (Mode::Openai { strip_usage, saw_done }, SseItem::Event { event, data }) => {
                if data == "[DONE]" {
                    *saw_done = true;
                    self.finished = true;
                    out.extend_from_slice(&sse::frame(None, "[DONE]"));
                    return;
                }
                if data.contains("\"usage\"")
                    && let Ok(value) = serde_json::from_str::<Value>(&data)
                {
                    if let Some(usage) = usage_of(&value) {
                        self.usage = usage;
                    }
                    let usage_only = value.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty);
                    if *strip_usage && usage_only {
                        return;
                    }
                }
                out.extend_from_slice(&sse::frame(event.as_deref(), &data));
            }
            (Mode::Anthropic(translator), SseItem::Event { event, data }) => {
                for output in translator.translate(event.as_deref(), &data) {
                    match output {
                        StreamOutput::Chunk(chunk) => out.extend_from_slice(&sse::frame(None, &chunk.to_string())),
                        StreamOutput::KeepAlive => out.extend_from_slice(&sse::comment("ping")),
                        StreamOutput::Error(error) => {
                            out.extend_from_slice(&sse::frame(None, &error.to_string()));
                            self.status = 502;
                            self.finished = true;
                        }
                        StreamOutput::Done => {
                            if let Some(usage) = translator.usage_chunk() {
                                out.extend_from_slice(&sse::frame(None, &usage.to_string()));
                            }
                            out.extend_from_slice(&sse::frame(None, "[DONE]"));
                            self.finished = true;
                        }
                    }
                }
                self.usage = translator.usage();
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(meter) = self.meter.take() {
            let status = if self.finished { self.status } else { 499 };
            meter.record(status, self.usage);
        }
    }
}

fn relay_stream(
    route: Route,
    response: reqwest::Response,
    meter: Meter,
    idle: Duration,
    model: &str,
    include_usage: bool,
) -> Result<Response, ApiError> {
    let is_sse =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Err(failed(meter, ApiError::upstream("The model provider did not answer with an event stream.")));
    }
    let mode = match route.provider.kind {
        ProviderKind::Openai => Mode::Openai { strip_usage: !include_usage, saw_done: false },
        ProviderKind::Anthropic => Mode::Anthropic(Box::new(StreamTranslator::new(model, chrono::Utc::now().timestamp(), include_usage))),
    };
    let relay = Relay {
        upstream: Box::pin(response.bytes_stream()),
        parser: SseParser::new(MAX_EVENT_BYTES),
        idle,
        mode,
        finished: false,
        status: 200,
        usage: Usage::default(),
        meter: Some(meter),
    };
    // When the client goes away the body is dropped, and with it the upstream connection.
    let body =
        futures::stream::unfold(
            relay,
            |mut relay| async move { relay.next_chunk().await.map(|chunk| (Ok::<_, Infallible>(chunk), relay)) },
        );
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_request;

    #[test]
    fn request_validation() {
        assert!(parse_request(br#"{"model":"m","messages":[]}"#).is_ok());
        for bad in [
            &b"[]"[..],
            b"1",
            b"\"x\"",
            b"{}",
            br#"{"model":""}"#,
            br#"{"model":1,"messages":[]}"#,
            br#"{"model":"m"}"#,
            br#"{"model":"m","messages":{}}"#,
            br#"{"model":"m","messages":[],"stream":"yes"}"#,
            b"{",
            br#"{"model":"m","messages":[],"n":1e999999}"#,
        ] {
            assert_eq!(parse_request(bad).unwrap_err().status(), 400, "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_request(deep.as_bytes()).unwrap_err().status(), 400, "deep nesting is refused, not a stack overflow");
    }
}
