//! Fake model providers for the gateway tests: an OpenAI-compatible API and Anthropic's
//! Messages API, both written here, both scriptable.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// What the fake does with the next requests.
#[derive(Clone, Debug)]
pub enum Script {
    /// Answer normally; streams send `chunks` pieces `gap` apart.
    Normal { chunks: usize, gap: Duration },
    /// Stream: send the first piece, then wait for [`Fake::release`].
    HoldAfterFirst,
    /// Answer this status with an HTML body.
    Html(u16),
    /// Answer 429 with `Retry-After: 7`.
    RateLimited,
    /// Answer 400 with an OpenAI-style error.
    BadRequest,
    /// Answer 401 quoting part of the provider key (as some providers do).
    RejectCredentials,
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Never answer.
    Hang,
    /// Stream: one piece, then drop the connection.
    ResetMidStream,
    /// Stream: one piece, then nothing ever again.
    Stall,
    /// Answer 200 (JSON) with a body that never ends: whitespace, 64 KiB at a time.
    Endless,
    /// Answer 200 (JSON) declaring a 1 GiB body, then send a little and nothing more.
    DeclaredHuge,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<(HeaderMap, Value)>>,
    sent_at: Mutex<Vec<Instant>>,
    release: Notify,
    disconnected: AtomicBool,
    finished: AtomicBool,
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    pub anthropic: bool,
    script: Arc<Mutex<Script>>,
    inner: Arc<Inner>,
}

impl Fake {
    pub async fn openai() -> Self {
        Self::start(false).await
    }

    pub async fn anthropic() -> Self {
        Self::start(true).await
    }

    async fn start(anthropic: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let fake = Self {
            addr,
            anthropic,
            script: Arc::new(Mutex::new(Script::Normal { chunks: 3, gap: Duration::from_millis(5) })),
            inner: Arc::new(Inner::default()),
        };
        let path = if anthropic { "/v1/messages" } else { "/v1/chat/completions" };
        let app = Router::new().route(path, post(handle)).with_state(fake.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    pub fn script(&self, script: Script) {
        *self.script.lock().expect("lock") = script;
    }

    pub fn release(&self) {
        self.inner.release.notify_waiters();
    }

    pub fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.inner.requests.lock().expect("lock").clone()
    }

    pub fn sent_at(&self) -> Vec<Instant> {
        self.inner.sent_at.lock().expect("lock").clone()
    }

    /// Whether a stream's reader went away before it finished.
    pub fn disconnected(&self) -> bool {
        self.inner.disconnected.load(Ordering::SeqCst)
    }

    /// A `workjet.toml` provider table for this fake.
    pub fn provider_toml(&self, name: &str, models: &str, key_env: Option<&str>) -> String {
        let kind = if self.anthropic { "anthropic" } else { "openai" };
        let base = if self.anthropic { format!("http://{}", self.addr) } else { format!("http://{}/v1", self.addr) };
        let key = key_env.map(|k| format!("api_key_env = \"{k}\"\n")).unwrap_or_default();
        format!("[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"{base}\"\n{key}models = {models}\n")
    }
}

use axum::serve::ListenerExt;

/// Marks the stream as abandoned if dropped before its end.
struct DisconnectGuard(Arc<Inner>);

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        if !self.0.finished.load(Ordering::SeqCst) {
            self.0.disconnected.store(true, Ordering::SeqCst);
        }
    }
}

fn openai_chunk(content: Option<&str>, finish: Option<&str>) -> String {
    let delta = match content {
        Some(c) => json!({"content": c}),
        None => json!({}),
    };
    format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

fn anthropic_event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The pieces of a normal stream (one per send).
fn stream_pieces(anthropic: bool, chunks: usize, include_usage: bool) -> Vec<String> {
    let mut pieces = Vec::new();
    if anthropic {
        pieces.push(anthropic_event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "content": [],
                "model": "upstream-model", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 11, "output_tokens": 1}}}),
        ));
        pieces.push(anthropic_event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
        for i in 0..chunks {
            pieces.push(anthropic_event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!("part{i} ")}}),
            ));
        }
        pieces.push(
            anthropic_event("content_block_stop", json!({"type": "content_block_stop", "index": 0}))
                + &anthropic_event(
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}),
                )
                + &anthropic_event("message_stop", json!({"type": "message_stop"})),
        );
    } else {
        pieces.push(format!("data: {}\n\n", json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})));
        for i in 0..chunks {
            pieces.push(openai_chunk(Some(&format!("part{i} ")), None));
        }
        let mut end = openai_chunk(None, Some("stop"));
        if include_usage {
            end.push_str(&format!("data: {}\n\n", json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})));
        }
        end.push_str("data: [DONE]\n\n");
        pieces.push(end);
    }
    pieces
}

fn complete_body(anthropic: bool) -> Value {
    if anthropic {
        json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": "upstream-model", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "Hello from the fake."}], "usage": {"input_tokens": 11, "output_tokens": 7}})
    } else {
        json!({"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "upstream-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fake."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})
    }
}

async fn handle(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.inner.requests.lock().expect("lock").push((headers, parsed.clone()));
    let stream = parsed.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = parsed.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let script = fake.script.lock().expect("lock").clone();
    match script {
        Script::Html(status) => {
            return (
                StatusCode::from_u16(status).expect("status"),
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>Bad gateway</body></html>",
            )
                .into_response();
        }
        Script::RateLimited => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "7")],
                axum::Json(json!({"error": {"message": "Slow down, please.", "type": "rate_limit_error"}})),
            )
                .into_response();
        }
        Script::BadRequest => {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": "max_tokens is too large for this model.", "type": "invalid_request_error", "param": "max_tokens"}}))).into_response();
        }
        Script::RejectCredentials => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(
                    json!({"error": {"message": "Incorrect API key provided: sk-prov*********cret", "type": "invalid_request_error"}}),
                ),
            )
                .into_response();
        }
        Script::Garbage => return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "<<<not json>>>").into_response(),
        Script::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Script::Endless => {
            fake.inner.finished.store(false, Ordering::SeqCst);
            fake.inner.disconnected.store(false, Ordering::SeqCst);
            let guard = DisconnectGuard(fake.inner.clone());
            let blanks = Bytes::from(vec![b' '; 64 * 1024]);
            let body = futures::stream::unfold(guard, move |guard| {
                let blanks = blanks.clone();
                async move { Some((Ok::<_, std::io::Error>(blanks), guard)) }
            });
            return ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response();
        }
        Script::DeclaredHuge => {
            let body = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{")) }).chain(futures::stream::pending());
            return ([(header::CONTENT_TYPE, "application/json"), (header::CONTENT_LENGTH, "1073741824")], Body::from_stream(body))
                .into_response();
        }
        _ => {}
    }
    if !stream {
        return axum::Json(complete_body(fake.anthropic)).into_response();
    }
    let inner = fake.inner.clone();
    inner.finished.store(false, Ordering::SeqCst);
    inner.disconnected.store(false, Ordering::SeqCst);
    inner.sent_at.lock().expect("lock").clear();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let anthropic = fake.anthropic;
    tokio::spawn(async move {
        let pieces = match &script {
            Script::Normal { chunks, .. } => stream_pieces(anthropic, *chunks, include_usage),
            _ => stream_pieces(anthropic, 3, include_usage),
        };
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 {
                match &script {
                    Script::Normal { gap, .. } => tokio::time::sleep(*gap).await,
                    Script::HoldAfterFirst if i == 1 => inner.release.notified().await,
                    Script::ResetMidStream => {
                        let _ = tx.send(Err(std::io::Error::other("reset"))).await;
                        return;
                    }
                    Script::Stall => {
                        tx.closed().await;
                        return;
                    }
                    _ => {}
                }
            }
            inner.sent_at.lock().expect("lock").push(Instant::now());
            if tx.send(Ok(Bytes::from(piece))).await.is_err() {
                return;
            }
        }
        inner.finished.store(true, Ordering::SeqCst);
    });
    let guard = DisconnectGuard(fake.inner.clone());
    let body = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move { rx.recv().await.map(|item| (item, (rx, guard))) });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(body)).into_response()
}
