//! The Prometheus side of the server: the per-request HTTP timing and the `/metrics`
//! listener on `WJ_METRICS_ADDR` (a separate address, so the scrape endpoint is never on
//! the public port). The names and labels live in [`crate::observe`].

use std::{
    future::Future,
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

use crate::{observe, server::state::AppState};

/// One request being timed for the HTTP metrics: its route template (`unmatched` when no
/// route matched, never the raw path), method, and the time to its response's headers.
///
/// Started and finished by [`security_headers`](crate::server::security::security_headers),
/// a layer every request passes after routing (so [`MatchedPath`] is known), rather than by
/// a layer of its own: axum boxes every route once more per `Router::layer`, and each box
/// level is cloned per request — a separate layer cost the cached `/v1` path about 0.6 µs of
/// its ~19 µs, eight times the recording itself (`BENCHMARKS.md`, section 1c).
pub struct RequestTiming {
    route: &'static str,
    method: &'static str,
    started: Instant,
}

impl RequestTiming {
    pub fn start(request: &Request) -> Self {
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| observe::route_label(m.as_str()));
        Self { route, method: observe::method_label(request.method()), started: Instant::now() }
    }

    pub fn finish(self, status: axum::http::StatusCode) {
        observe::http_request(self.route, self.method, status.as_u16(), self.started.elapsed());
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
