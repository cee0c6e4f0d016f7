//! The gateway's one decision: which provider answers a request. The providers of its model
//! are tried in order ([`Registry::candidates`]); a connect failure, a timeout before the
//! answer's headers, a 5xx, a 429, or the provider refusing our credentials moves the request
//! to the next one — nothing has reached the client yet — and puts the failed provider on a
//! cool-down. The first answer is relayed: whole, or as a stream event by event with an idle
//! timeout, ending with an error event (never a hang) if the upstream fails mid-way. Usage is
//! recorded once per request, however it ends, naming the provider that answered.

use std::{
    convert::Infallible,
    future::Future as _,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

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
/// At most this much of a stream is relayed as one piece: the chunks the upstream had ready
/// together, up to this, leave in one write.
const RELAY_BATCH: usize = 16 * 1024;
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
    /// This server could not open a socket for the connection (out of descriptors or kernel
    /// memory): the provider was never asked, and the next one would fare no better.
    OutOfSockets,
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
            SendError::OutOfSockets => Self::OutOfSockets,
            SendError::Broken => Self::Broken,
        }
    }
}

impl UpstreamError {
    /// Whether the next provider of the model should be tried (and this one rested). Not when
    /// this server is out of sockets: that is no provider's fault, and the next one's
    /// connection would fail the same way.
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
            Self::OutOfSockets => 503,
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
                if matches!(failure, UpstreamError::OutOfSockets) {
                    tracing::error!(
                        provider = %provider.name,
                        error = %error,
                        "this server is out of sockets and could not connect to the provider: raise its open-file limit (systemd LimitNOFILE=, ulimit -n)"
                    );
                } else {
                    tracing::warn!(provider = %provider.name, error = %error, "upstream request failed");
                }
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
        Ok(Answer::Stream(Box::new(Relay::new(
            response.into_body(),
            Duration::from_millis(self.timeouts.idle_ms),
            route.provider.api().stream(call),
            meter,
        ))))
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
///
/// A [`Stream`] polled in place (no future built and moved per chunk), with one timer for the
/// whole stream: it is armed once and, when it fires, moved to the end of the current wait if
/// chunks came meanwhile, so that a chunk costs a clock read, not a timer wheel insert and
/// removal. The idle time counts from the first poll that finds nothing to relay, as a timeout
/// around each wait would: a client slow to read never makes the upstream look idle.
///
/// It is the client's body: when the client goes away it is dropped, and with it the upstream
/// connection.
pub struct Relay {
    upstream: BodyDataStream<UpstreamBody>,
    parser: SseParser,
    /// Parsed items, reused from chunk to chunk.
    items: Vec<SseItem>,
    idle: Duration,
    /// When the current wait for the upstream began (`None`: not waiting).
    waiting_since: Option<tokio::time::Instant>,
    /// Fires at the idle deadline of some wait, at or before the current one's.
    timer: Pin<Box<tokio::time::Sleep>>,
    events: Box<dyn EventRelay>,
    finished: bool,
    /// 200 unless the stream failed.
    status: u16,
    meter: Option<Meter>,
}

impl Relay {
    fn new(upstream: UpstreamBody, idle: Duration, events: Box<dyn EventRelay>, meter: Meter) -> Self {
        Self {
            upstream: BodyDataStream::new(upstream),
            parser: SseParser::new(MAX_EVENT_BYTES),
            items: Vec::new(),
            idle,
            waiting_since: None,
            timer: Box::pin(tokio::time::sleep(idle)),
            events,
            finished: false,
            status: 200,
            meter: Some(meter),
        }
    }

    /// Appends what `chunk` becomes for the client to `out` (nothing yet, e.g. for a partial
    /// event).
    fn translate_into(&mut self, chunk: &[u8], out: &mut BytesMut) {
        if self.parser.feed_into(chunk, &mut self.items).is_err() {
            self.items.clear();
            let failed = self.fail(502, "The model provider sent an oversized stream event.", "upstream_error");
            out.extend_from_slice(&failed);
            return;
        }
        for item in self.items.drain(..) {
            if self.finished {
                continue;
            }
            let flow = match item {
                SseItem::Comment(text) => {
                    sse::comment_into(out, &text);
                    Flow::More
                }
                SseItem::Event { event, data } => self.events.relay(event.as_deref(), &data, out),
            };
            match flow {
                Flow::More => continue,
                Flow::Done => {}
                Flow::Failed => self.status = 502,
            }
            self.finished = true;
        }
    }

    /// Whether the upstream has been silent for the idle time (re-arming the timer for the
    /// current wait's deadline when it fired for an earlier one).
    fn idle_for_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        let started = *self.waiting_since.get_or_insert_with(tokio::time::Instant::now);
        let deadline = started + self.idle;
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if tokio::time::Instant::now() >= deadline {
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    fn fail(&mut self, status: u16, message: &str, code: &str) -> Bytes {
        self.finished = true;
        self.status = status;
        self.events.error_event(message, code)
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, Infallible>;

    /// Relays every chunk the upstream has ready (up to [`RELAY_BATCH`] bytes) as one piece:
    /// chunks that arrived together leave in one write.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut out = BytesMut::new();
        loop {
            if this.finished || out.len() >= RELAY_BATCH {
                return Poll::Ready((!out.is_empty()).then(|| Ok(out.freeze())));
            }
            let chunk = match Pin::new(&mut this.upstream).poll_next(cx) {
                Poll::Pending if !out.is_empty() => return Poll::Ready(Some(Ok(out.freeze()))),
                Poll::Pending => {
                    if this.idle_for_too_long(cx) {
                        return Poll::Ready(Some(Ok(this.fail(
                            504,
                            "The model provider stopped sending for too long.",
                            "upstream_timeout",
                        ))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(_))) => {
                    out.extend_from_slice(&this.fail(502, "The connection to the model provider broke mid-stream.", "upstream_error"));
                    continue;
                }
                Poll::Ready(None) => {
                    if this.events.complete() {
                        this.finished = true;
                    } else {
                        out.extend_from_slice(&this.fail(502, "The model provider ended the stream early.", "upstream_error"));
                    }
                    continue;
                }
                Poll::Ready(Some(Ok(chunk))) => chunk,
            };
            this.waiting_since = None;
            this.translate_into(&chunk, &mut out);
        }
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

#[cfg(test)]
mod relay_tests {
    use std::time::Duration;

    use super::super::client::UpstreamBody;
    use bytes::Bytes;
    use futures::StreamExt;
    use tokio::time::Instant;

    use super::Relay;
    use crate::domain::{
        providers::api::{Call, ClientApi, ProviderApi as _},
        usage::{Meter, UsageRecorder},
    };

    /// Real time (tokio's paused clock would need its `test-util` feature, which would slow every
    /// timer of the benchmarked server). The assertions hold however late a task runs: the
    /// relay polls the upstream before its timer, so a chunk whose time has come always wins.
    const IDLE: Duration = Duration::from_millis(300);

    fn event(i: usize) -> Bytes {
        Bytes::from(format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i}\"}}}}]}}\n\n"))
    }

    /// A relay of an OpenAI stream whose chunks come at the given times after the start (then
    /// `[DONE]` and the end, or, with `stall`, nothing more ever).
    fn relay(at: Vec<Duration>, stall: bool, recorder: UsageRecorder) -> Relay {
        let start = Instant::now();
        let chunks = futures::stream::iter(at.into_iter().enumerate()).then(move |(i, after)| async move {
            tokio::time::sleep_until(start + after).await;
            Ok::<_, std::io::Error>(event(i))
        });
        let body: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> = if stall {
            chunks.chain(futures::stream::pending()).boxed()
        } else {
            chunks.chain(futures::stream::once(async { Ok(Bytes::from_static(b"data: [DONE]\n\n")) })).boxed()
        };
        let (request, raw) = (serde_json::Map::new(), Bytes::new());
        let call = Call {
            api: ClientApi::ChatCompletions,
            request: &request,
            raw: &raw,
            model: "m",
            stream: true,
            include_usage: true,
            forward: Default::default(),
        };
        let events = crate::domain::providers::openai::OpenAi.stream(&call);
        Relay::new(UpstreamBody::Proxied(reqwest::Body::wrap_stream(body)), IDLE, events, Meter::start(recorder, 1, Some(1), "m", true))
    }

    #[tokio::test]
    async fn chunks_closer_than_the_idle_time_never_time_out_however_long_the_stream() {
        let (recorder, mut records) = UsageRecorder::for_tests();
        // Twelve chunks 0.6 idle times apart: over seven idle times in all.
        let at: Vec<Duration> = (1..=12).map(|i| IDLE * 6 * i / 10).collect();
        let out: Vec<Bytes> = relay(at, false, recorder).map(|c| c.expect("infallible")).collect().await;
        let text: String = out.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        assert_eq!(text.matches("data: {").count(), 12, "{text}");
        assert!(text.ends_with("data: [DONE]\n\n") && !text.contains("upstream_timeout"), "{text}");
        assert_eq!(records.recv().await.expect("a usage record").status, 200);
    }

    #[tokio::test]
    async fn an_upstream_silent_for_the_idle_time_ends_the_stream_with_a_timeout_event() {
        let (recorder, mut records) = UsageRecorder::for_tests();
        let mut relay = relay(vec![IDLE / 3, IDLE * 4 / 3], true, recorder);
        for _ in 0..2 {
            relay.next().await.expect("a chunk").expect("infallible");
        }
        let silent_from = Instant::now();
        let last = relay.next().await.expect("the timeout event").expect("infallible");
        assert!(String::from_utf8_lossy(&last).contains("upstream_timeout"), "{last:?}");
        // The idle time counts from the last chunk, not from the timer armed before it.
        assert!(silent_from.elapsed() >= IDLE, "{:?}", silent_from.elapsed());
        assert!(relay.next().await.is_none());
        drop(relay);
        assert_eq!(records.recv().await.expect("a usage record").status, 504);
    }

    #[tokio::test]
    async fn a_client_slow_to_read_does_not_make_the_upstream_look_idle() {
        let (recorder, mut records) = UsageRecorder::for_tests();
        let mut relay = relay(vec![IDLE / 10, IDLE / 5, IDLE * 7 / 2], false, recorder);
        relay.next().await.expect("a chunk").expect("infallible");
        // The client reads again only after three idle times; the upstream sent meanwhile.
        tokio::time::sleep(3 * IDLE).await;
        let second = relay.next().await.expect("a chunk").expect("infallible");
        assert!(String::from_utf8_lossy(&second).contains("t1"), "{second:?}");
        let rest: Vec<Bytes> = relay.map(|c| c.expect("infallible")).collect().await;
        let text: String = rest.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        assert!(text.contains("t2") && text.ends_with("data: [DONE]\n\n") && !text.contains("upstream_timeout"), "{text}");
        assert_eq!(records.recv().await.expect("a usage record").status, 200);
    }

    /// Chunks the upstream had ready together leave together: one piece, one write.
    #[tokio::test]
    async fn chunks_that_arrived_together_are_relayed_as_one_piece() {
        let (recorder, mut records) = UsageRecorder::for_tests();
        let mut relay = relay(vec![Duration::ZERO; 3], false, recorder);
        let first = relay.next().await.expect("a piece").expect("infallible");
        let text = String::from_utf8_lossy(&first);
        assert!(["t0", "t1", "t2", "[DONE]"].iter().all(|t| text.contains(t)), "{text}");
        assert!(relay.next().await.is_none());
        drop(relay);
        assert_eq!(records.recv().await.expect("a usage record").status, 200);
    }

    #[tokio::test]
    async fn a_client_that_leaves_mid_stream_is_recorded_as_499() {
        let (recorder, mut records) = UsageRecorder::for_tests();
        let mut relay = relay(vec![IDLE / 10, IDLE / 5], true, recorder);
        relay.next().await.expect("a chunk").expect("infallible");
        drop(relay);
        assert_eq!(records.recv().await.expect("a usage record").status, 499);
    }
}
