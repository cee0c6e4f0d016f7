//! The fake upstream for gateway benchmarks: an OpenAI-compatible chat completion, plain or
//! streamed, on its own single-threaded runtime.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    http::header,
    response::{IntoResponse, Response},
    routing::post,
};

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#;

/// Chunks of the streamed answer, and the gap between them.
#[derive(Clone, Copy)]
pub struct StreamShape {
    pub chunks: usize,
    pub gap: Duration,
}

async fn handle(shape: StreamShape, body: Bytes) -> Response {
    let stream = body.windows(13).any(|w| w == b"\"stream\":true");
    if !stream {
        return ([(header::CONTENT_TYPE, "application/json")], COMPLETION).into_response();
    }
    let pieces = futures::stream::unfold(0usize, move |i| async move {
        if i > shape.chunks {
            return None;
        }
        if i > 0 && !shape.gap.is_zero() {
            tokio::time::sleep(shape.gap).await;
        }
        let piece = if i == shape.chunks {
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9,\"total_tokens\":21}}\n\ndata: [DONE]\n\n".to_owned()
        } else {
            format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-model\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
            )
        };
        Some((Ok::<_, Infallible>(Bytes::from(piece)), i + 1))
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(pieces)).into_response()
}

/// Starts the fake on a thread of its own; returns its address.
pub fn start(shape: StreamShape) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let app = Router::new().route("/v1/chat/completions", post(move |body: Bytes| handle(shape, body)));
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
    });
    rx.recv().expect("fake upstream address")
}
