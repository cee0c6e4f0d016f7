//! The `/v1` stack as one layer: the gate ([`auth::authenticate`]), the body limit,
//! `Cache-Control: no-store`, CORS and the session cookie.
//!
//! Axum wraps each route in a boxed service per `Router::layer`, and every layer above
//! clones (deeply) everything below it on each request; five `/v1` layers under the global
//! ones made an authenticated request cost several times a `/healthz`. Here they are one
//! layer whose clone is an `Arc` and the route's own.
//!
//! Two paths, with the same answers (but for two CORS headers the common path leaves out):
//! - the common one, a request with a key header (`Authorization` or `x-api-key`), no
//!   `Origin`, no `Cookie`, not `OPTIONS`: the gate, then the headers the old layers added,
//!   made once: `Cache-Control: no-store` and the `Vary` that CORS adds to a request without
//!   `Origin` (computed at start-up by tower-http's own `CorsLayer`; its credentials and
//!   exposed-headers headers are left out: they mean something only to a browser's
//!   cross-origin request, which always carries `Origin`). No session is read or written:
//!   without a cookie there is none to read, and the key alone decides;
//! - anything else (a session cookie, a browser's `Origin`, a preflight): the layers as they
//!   always were — tower-sessions, tower-http's CORS, the `Cache-Control` layer, the gate.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderMap, HeaderValue, Method, header},
    response::Response,
};
use futures::FutureExt;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::{cors::CorsLayer, set_header::SetResponseHeaderLayer};
use tower_sessions::SessionManagerLayer;

use crate::{
    domain::sessions::SeaOrmSessionStore,
    server::{
        state::AppState,
        v1::{auth, messages},
    },
};

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// The `/v1` layer (see the module's description).
#[derive(Clone)]
pub struct V1Layer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    state: AppState,
    session: SessionManagerLayer<SeaOrmSessionStore>,
    cors: CorsLayer,
    body_limit: DefaultBodyLimit,
    /// The `Vary` values `cors` adds to the response to a request without `Origin` that is
    /// not a preflight: the same for every such request.
    plain_vary: Vec<HeaderValue>,
    /// Errors are re-rendered in Anthropic's shape ([`messages::anthropic_errors`]).
    anthropic: bool,
}

impl V1Layer {
    pub fn new(state: &AppState, session: SessionManagerLayer<SeaOrmSessionStore>, cors: CorsLayer, body_limit: DefaultBodyLimit) -> Self {
        let plain_vary = plain_vary(&cors);
        Self { shared: Arc::new(Shared { state: state.clone(), session, cors, body_limit, plain_vary, anthropic: false }) }
    }

    /// The same layer for Anthropic's routes: errors (the gate's included) in Anthropic's shape.
    pub fn anthropic(&self) -> Self {
        Self { shared: Arc::new(Shared { anthropic: true, ..Shared::clone(&self.shared) }) }
    }
}

impl<S> Layer<S> for V1Layer {
    type Service = V1Service<S>;

    fn layer(&self, inner: S) -> V1Service<S> {
        V1Service { shared: self.shared.clone(), inner }
    }
}

/// The `Vary` values that CORS (tower-http) adds to the response to a plain request: no
/// `Origin`, not `OPTIONS` (they depend on the configuration only). The credentials and
/// exposed-headers headers it also adds are for cross-origin requests, which always carry
/// `Origin`.
fn plain_vary(cors: &CorsLayer) -> Vec<HeaderValue> {
    let empty = tower::service_fn(|_: Request| async { Ok::<_, Infallible>(Response::new(Body::empty())) });
    let request = Request::get("/v1/models").body(Body::empty()).expect("a request");
    let response = cors
        .layer(empty)
        .oneshot(request)
        .now_or_never()
        .expect("CORS answers a plain request at once")
        .unwrap_or_else(|never| match never {});
    response.headers().get_all(header::VARY).iter().cloned().collect()
}

/// Adds [`plain_vary`] as tower-http's CORS does: appended to the response's own `Vary`.
fn add_plain_vary(headers: &mut HeaderMap, plain_vary: &[HeaderValue]) {
    for value in plain_vary {
        headers.append(header::VARY, value.clone());
    }
}

/// Whether a request takes the common path: a key, and nothing a browser's session or CORS
/// needs to look at.
fn plain_keyed(request: &Request) -> bool {
    let headers = request.headers();
    request.method() != Method::OPTIONS
        && !headers.contains_key(header::ORIGIN)
        && !headers.contains_key(header::COOKIE)
        && (headers.contains_key(header::AUTHORIZATION) || headers.contains_key(auth::X_API_KEY))
}

/// The service of [`V1Layer`] around one route.
#[derive(Clone)]
pub struct V1Service<S> {
    shared: Arc<Shared>,
    inner: S,
}

impl<S> Service<Request> for V1Service<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is made ready where it is called (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> BoxFuture {
        let shared = self.shared.clone();
        let inner = self.inner.clone();
        if plain_keyed(&request) {
            return Box::pin(async move {
                let mut response = gate(&shared, request, inner).await;
                // As the layers did it: Cache-Control overriding, then CORS's Vary appended.
                response.headers_mut().insert(header::CACHE_CONTROL, NO_STORE);
                add_plain_vary(response.headers_mut(), &shared.plain_vary);
                Ok(response)
            });
        }
        let service = ServiceBuilder::new()
            .layer(shared.session.clone())
            .layer(shared.cors.clone())
            .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, NO_STORE))
            .service(tower::service_fn(move |request: Request| {
                let (shared, inner) = (shared.clone(), inner.clone());
                async move { Ok::<_, Infallible>(gate(&shared, request, inner).await) }
            }));
        Box::pin(service.oneshot(request))
    }
}

/// The gate, the body limit and the route; Anthropic's routes re-render errors.
async fn gate<S>(shared: &Shared, request: Request, inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let route = shared.body_limit.layer(inner);
    let response = auth::authenticate(&shared.state, request, |request| {
        route.oneshot(request).map(|result| result.unwrap_or_else(|never| match never {}))
    })
    .await;
    if shared.anthropic { messages::anthropic_errors(response).await } else { response }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> CorsLayer {
        crate::server::v1::cors_for(&["https://portal.example".to_owned()])
    }

    fn request(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().method(method).uri("/v1/models");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).expect("request")
    }

    /// What tower-http's CORS adds to a response that already has `existing`.
    fn through_cors(request: Request, existing: &HeaderMap) -> HeaderMap {
        let existing = existing.clone();
        let service = cors().layer(tower::service_fn(move |_: Request| {
            let mut response = Response::new(Body::empty());
            *response.headers_mut() = existing.clone();
            async move { Ok::<_, Infallible>(response) }
        }));
        service.oneshot(request).now_or_never().expect("at once").expect("infallible").headers().clone()
    }

    #[test]
    fn the_common_path_is_for_plain_keyed_requests_only() {
        assert!(plain_keyed(&request(Method::GET, &[("authorization", "Bearer k")])));
        assert!(plain_keyed(&request(Method::POST, &[("x-api-key", "k")])));
        assert!(!plain_keyed(&request(Method::GET, &[])), "a session (or nothing) takes the layers");
        assert!(!plain_keyed(&request(Method::GET, &[("authorization", "Bearer k"), ("cookie", "wj_session=x")])));
        assert!(!plain_keyed(&request(Method::GET, &[("authorization", "Bearer k"), ("origin", "https://portal.example")])));
        assert!(!plain_keyed(&request(Method::OPTIONS, &[("authorization", "Bearer k")])));
    }

    #[test]
    fn precomputed_cors_headers_are_what_cors_adds_to_any_plain_request() {
        let plain = plain_vary(&cors());
        assert!(!plain.is_empty());
        let mut existing = HeaderMap::new();
        existing.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        existing.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for method in [Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::PUT, Method::HEAD] {
            for headers in [&[("authorization", "Bearer k")][..], &[("x-api-key", "k"), ("user-agent", "sdk")][..]] {
                let mut expected = through_cors(request(method.clone(), headers), &existing);
                // What only a cross-origin request (with `Origin`) has use for.
                expected.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
                expected.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
                let mut ours = existing.clone();
                add_plain_vary(&mut ours, &plain);
                assert_eq!(ours, expected, "{method} {headers:?}");
            }
        }
    }
}
