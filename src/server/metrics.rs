//! The Prometheus side of the server: the per-request HTTP layer and the `/metrics`
//! listener on `WJ_METRICS_ADDR` (a separate address, so the scrape endpoint is never on
//! the public port). The names and labels live in [`crate::observe`].

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower::{Layer, Service};

use crate::{observe, server::state::AppState};

/// Records every request: its route template (`unmatched` when no route matched, never the
/// raw path), method, status and the time to its response's headers.
///
/// Added with `Router::layer`, so it runs after routing, where [`MatchedPath`] is known.
#[derive(Clone, Copy, Default)]
pub struct HttpMetricsLayer;

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics { inner }
    }
}

#[derive(Clone)]
pub struct HttpMetrics<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for HttpMetrics<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| observe::route_label(m.as_str()));
        let method = observe::method_label(request.method());
        Recorded { inner: self.inner.call(request), started: Instant::now(), route, method, done: false }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, recording the answer when it resolves.
    pub struct Recorded<F> {
        #[pin]
        inner: F,
        started: Instant,
        route: &'static str,
        method: &'static str,
        done: bool,
    }
}

impl<F, E> Future for Recorded<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), false) = (&result, *this.done) {
            *this.done = true;
            observe::http_request(this.route, this.method, response.status().as_u16(), this.started.elapsed());
        }
        Poll::Ready(result)
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves; histograms are drained
/// every five seconds meanwhile.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = handle.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            observe::upkeep(&upkeep);
        }
    });
    let router = Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "Only /metrics is served here.\n") })
        .with_state((state, handle));
    let result = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
    upkeep_task.abort();
    result
}

async fn scrape(State((state, handle)): State<(AppState, PrometheusHandle)>) -> Response {
    let (idle, in_use) = crate::server::database::pool_connections(&state.db);
    observe::db_pool(idle, in_use, state.config.database_max_connections);
    if state.shared.is_some() {
        observe::redis_up(state.redis_status() == "up");
    }
    observe::upkeep(&handle);
    let body = observe::render(&handle);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], body).into_response()
}
