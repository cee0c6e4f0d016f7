//! The gateway's one decision: which provider answers a request. The providers of its model
//! are tried in order ([`Registry::candidates`]); a connect failure, a timeout before the
//! answer's headers, a 5xx, a 429, or the provider refusing our credentials moves the request
//! to the next one — nothing has reached the client yet — and puts the failed provider on a
//! cool-down. The first answer is relayed: whole, or as a stream event by event with an idle
//! timeout, ending with an error event (never a hang) if the upstream fails mid-way. Usage is
//! recorded once per request, however it ends, naming the provider that answered.

use std::{convert::Infallible, time::Duration};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::header::{self, HeaderValue};
use http_body::Body as _;
use http_body_util::{BodyDataStream, BodyExt as _, LengthLimitError, Limited};
use serde_json::Value;
use tracing::Instrument as _;

use super::{
    Registry, Route,
    api::{Call, ClientApi, EventRelay, Flow, TranslateError, Unservable, Usage},
    client::{SendError, UpstreamBody, UpstreamResponse},
    sse::{self, SseItem, SseParser},
};
use crate::domain::usage::Meter;

/// The largest single SSE event relayed (a guard against a runaway upstream).
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// The largest upstream error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The largest complete (non-streaming) answer read: a runaway or hostile upstream must not
/// hold the server's memory. Ample for a real completion (a 128k-token answer is ~0.5 MiB;
/// with `logprobs` and several choices a few MiB).
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
const USER_AGENT: HeaderValue = HeaderValue::from_static(concat!("workjet/", env!("CARGO_PKG_VERSION")));
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// Why the gateway did not answer.
#[derive(Debug)]
pub enum GatewayError {
    /// No provider serves the model; `nothing_configured` when no provider exists at all.
    ModelNotFound { model: String, nothing_configured: bool },
    /// The request cannot be expressed in the provider's API.
    Invalid(TranslateError),
    /// The model's providers do not speak the client's API (`/v1/messages` to a model only
    /// OpenAI-compatible providers serve).
    WrongApi { model: String },
    /// The last provider tried failed.
    Upstream(UpstreamError),
}

/// How an upstream failed.
#[derive(Debug)]
pub enum UpstreamError {
    /// No answer's headers in time (`Some`: the first-byte timeout that ran out).
    TimedOut(Option<Duration>),
    /// The connection could not be made.
    Unreachable,
    /// The connection failed before an answer.
    Broken,
    /// The provider refused this server's credentials (401/403).
    CredentialsRefused,
    /// 429 from the provider, with its advice.
    RateLimited { message: Option<String>, retry_after: Option<HeaderValue>, retry_after_ms: Option<HeaderValue> },
    /// Any other 4xx: the provider refused the client's request.
    Refused { status: u16, message: Option<String> },
    /// A 5xx.
    Failed { status: u16 },
    /// A complete answer stopped arriving.
    Stalled,
    /// A complete answer's connection broke.
    BodyBroken,
    /// A complete answer larger than [`MAX_ANSWER_BYTES`].
    TooLarge,
    /// A 2xx that is not what was asked for (`what`: "a chat completion", "an event stream", …).
    NotAnAnswer(&'static str),
}

impl From<SendError> for UpstreamError {
    fn from(error: SendError) -> Self {
        match error {
            SendError::ConnectTimedOut => Self::TimedOut(None),
            SendError::Unreachable => Self::Unreachable,
            SendError::Broken => Self::Broken,
        }
    }
}

impl UpstreamError {
    /// Whether the next provider of the model should be tried.
    pub fn moves_on(&self) -> bool {
        matches!(
            self,
            Self::TimedOut(_)
                | Self::Unreachable
                | Self::Broken
                | Self::CredentialsRefused
                | Self::RateLimited { .. }
                | Self::Failed { .. }
        )
    }

    /// The status recorded in usage (what the client is answered).
    pub fn status(&self) -> u16 {
        match self {
            Self::TimedOut(_) | Self::Stalled => 504,
            Self::RateLimited { .. } => 429,
            Self::Refused { status, .. } => *status,
            _ => 502,
        }
    }
}

/// A provider's answer.
pub enum Answer {
    /// A whole answer (JSON), already in the client's shape.
    Complete(Bytes),
    /// A stream (`text/event-stream`), relayed as it arrives.
    Stream(Box<Relay>),
}

impl Registry {
    /// Sends `call` to the first provider of its model that answers, and relays the answer.
    pub async fn call(&self, call: &Call<'_>, mut meter: Meter) -> Result<Answer, GatewayError> {
        let Some(candidates) = self.candidates(call.model) else {
            return Err(GatewayError::ModelNotFound { model: call.model.to_owned(), nothing_configured: self.is_empty() });
        };
        let mut last_failure = None;
        for route in candidates {
            let request = match route.provider.api().request(&route.upstream_model, call) {
                Ok(request) => request,
                Err(Unservable::WrongApi) => continue,
                Err(Unservable::Invalid(error)) => return Err(GatewayError::Invalid(error)),
            };
            meter.provider = Some(route.provider.name.clone());
            if last_failure.is_some() {
                tracing::info!(provider = %route.provider.name, model = call.model, "failing over to the next provider");
            }
            let span = tracing::debug_span!(
                "upstream",
                otel.name = %format_args!("POST {}", route.provider.name),
                otel.kind = "client",
                provider = %route.provider.name,
                model = call.model,
                http.response.status_code = tracing::field::Empty,
            );
            match self.send(route, request, call.stream).instrument(span).await {
                Ok(response) => {
                    route.provider.answered();
                    return if call.stream {
                        self.relay_stream(route, call, response, meter)
                    } else {
                        self.relay_complete(route, call, response, meter).await
                    };
                }
                Err(error) if error.moves_on() => {
                    route.provider.failed(self.cooldown());
                    last_failure = Some(error);
                }
                Err(error) => return Err(failed(meter, error)),
            }
        }
        match last_failure {
            Some(error) => Err(failed(meter, error)),
            None => Err(GatewayError::WrongApi { model: call.model.to_owned() }),
        }
    }

    async fn send(&self, route: &Route, request: super::api::UpstreamRequest, stream: bool) -> Result<UpstreamResponse, UpstreamError> {
        let provider = &route.provider;
        let first_byte = Duration::from_millis(self.timeouts.first_byte_ms);
        let mut headers = request.headers;
        for (name, value) in &provider.auth_headers {
            headers.insert(name, value.clone());
        }
        headers.insert(header::CONTENT_TYPE, JSON);
        headers.insert(header::ACCEPT, if stream { EVENT_STREAM } else { JSON });
        headers.insert(header::USER_AGENT, USER_AGENT);
        // The upstream call's span is the provider's parent.
        crate::observe::trace::inject(&mut headers);
        let mut upstream = http::Request::new(request.body);
        *upstream.method_mut() = http::Method::POST;
        *upstream.uri_mut() = provider.endpoint.clone();
        *upstream.headers_mut() = headers;
        let started = std::time::Instant::now();
        let response = match tokio::time::timeout(first_byte, provider.client.send(upstream)).await {
            Err(_) => {
                tracing::warn!(provider = %provider.name, "upstream did not answer in time");
                return Err(UpstreamError::TimedOut(Some(first_byte)));
            }
            Ok(Err(error)) => {
                let failure = UpstreamError::from(error.kind());
                tracing::warn!(provider = %provider.name, error = %error, "upstream request failed");
                return Err(failure);
            }
            Ok(Ok(response)) => response,
        };
        crate::observe::upstream_first_byte(&provider.name, started.elapsed());
        tracing::Span::current().record("http.response.status_code", response.status().as_u16());
        if response.status().is_success() { Ok(response) } else { Err(upstream_failure(route, response).await) }
    }

    async fn relay_complete(
        &self,
        route: &Route,
        call: &Call<'_>,
        response: UpstreamResponse,
        meter: Meter,
    ) -> Result<Answer, GatewayError> {
        let idle = Duration::from_millis(self.timeouts.idle_ms);
        let body = response.into_body();
        // A declared length over the bound fails before a byte is read.
        if body.size_hint().lower() > MAX_ANSWER_BYTES as u64 {
            tracing::warn!(provider = %route.provider.name, "upstream declared an answer larger than the bound");
            return Err(failed(meter, UpstreamError::TooLarge));
        }
        let bytes = match tokio::time::timeout(idle, Limited::new(body, MAX_ANSWER_BYTES).collect()).await {
            Err(_) => return Err(failed(meter, UpstreamError::Stalled)),
            Ok(Err(error)) if error.is::<LengthLimitError>() => {
                tracing::warn!(provider = %route.provider.name, "upstream answer exceeded the bound");
                return Err(failed(meter, UpstreamError::TooLarge));
            }
            Ok(Err(_)) => return Err(failed(meter, UpstreamError::BodyBroken)),
            Ok(Ok(body)) => body.to_bytes(),
        };
        let what = match call.api {
            ClientApi::ChatCompletions => "a chat completion",
            ClientApi::Messages => "a message",
        };
        match route.provider.api().answer(call, bytes) {
            Some((body, usage)) => {
                meter.finish(200, usage).await;
                Ok(Answer::Complete(body))
            }
            None => Err(failed(meter, UpstreamError::NotAnAnswer(what))),
        }
    }

    fn relay_stream(&self, route: &Route, call: &Call<'_>, response: UpstreamResponse, meter: Meter) -> Result<Answer, GatewayError> {
        let is_sse =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(failed(meter, UpstreamError::NotAnAnswer("an event stream")));
        }
        Ok(Answer::Stream(Box::new(Relay {
            upstream: BodyDataStream::new(response.into_body()),
            parser: SseParser::new(MAX_EVENT_BYTES),
            idle: Duration::from_millis(self.timeouts.idle_ms),
            events: route.provider.api().stream(call),
            finished: false,
            status: 200,
            meter: Some(meter),
        })))
    }
}

fn failed(meter: Meter, error: UpstreamError) -> GatewayError {
    meter.record(error.status(), Usage::default());
    GatewayError::Upstream(error)
}

/// Classifies a non-2xx upstream answer; the error body is read (bounded) only for 4xx,
/// whose message may be relayed — never one that could carry the provider's key.
async fn upstream_failure(route: &Route, response: UpstreamResponse) -> UpstreamError {
    let status = response.status().as_u16();
    tracing::warn!(provider = %route.provider.name, status, "upstream answered an error");
    match status {
        401 | 403 => return UpstreamError::CredentialsRefused,
        400..=499 => {}
        _ => return UpstreamError::Failed { status },
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let retry_after_ms = response.headers().get("retry-after-ms").cloned();
    let mut body = Vec::new();
    let mut stream = BodyDataStream::new(response.into_body());
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ERROR_BODY {
                break;
            }
        }
    });
    let _ = read.await;
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_owned))
        .filter(|m| !might_leak(route, m))
        .map(|m| m.chars().take(500).collect::<String>());
    if status == 429 {
        UpstreamError::RateLimited { message, retry_after, retry_after_ms }
    } else {
        UpstreamError::Refused { status, message }
    }
}

/// Never echo anything that could carry the provider's key (some providers quote part of it).
fn might_leak(route: &Route, message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    let quotes_key = route
        .provider
        .auth_headers
        .values()
        .filter_map(|v| v.to_str().ok())
        .any(|v| !v.is_empty() && message.contains(v.trim_start_matches("Bearer ")));
    quotes_key || message.contains("sk-") || lower.contains("api key") || lower.contains("api-key") || lower.contains("x-api-key")
}

/// Relays an upstream SSE stream event by event, with an idle timeout; records usage when it
/// ends, however it ends (499 if the client left first).
pub struct Relay {
    upstream: BodyDataStream<UpstreamBody>,
    parser: SseParser,
    idle: Duration,
    events: Box<dyn EventRelay>,
    finished: bool,
    /// 200 unless the stream failed.
    status: u16,
    meter: Option<Meter>,
}

impl Relay {
    /// The client's body: when the client goes away it is dropped, and with it the upstream
    /// connection.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        futures::stream::unfold(self, |mut relay| async move { relay.next_chunk().await.map(|chunk| (Ok(chunk), relay)) })
    }

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
                    if self.events.complete() {
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
                let flow = match item {
                    SseItem::Comment(text) => {
                        out.extend_from_slice(&sse::comment(&text));
                        Flow::More
                    }
                    SseItem::Event { event, data } => self.events.relay(event.as_deref(), &data, &mut out),
                };
                match flow {
                    Flow::More => continue,
                    Flow::Done => {}
                    Flow::Failed => self.status = 502,
                }
                self.finished = true;
                break;
            }
            if !out.is_empty() {
                return Some(out.freeze());
            }
        }
    }

    fn fail(&mut self, status: u16, message: &str, code: &str) -> Bytes {
        self.finished = true;
        self.status = status;
        self.events.error_event(message, code)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(meter) = self.meter.take() {
            let status = if self.finished { self.status } else { 499 };
            meter.record(status, self.events.usage());
        }
    }
}
