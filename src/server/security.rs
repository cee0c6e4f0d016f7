//! Response hardening and request provenance: security headers with a per-request CSP
//! nonce, the cross-origin check for state-changing requests, and the client's IP address,
//! applied to every request by one layer ([`EdgeLayer`]).

use std::{
    convert::Infallible,
    future::Future,
    net::IpAddr,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use futures::FutureExt;
use ipnet::IpNet;
use rand::RngCore;
use tower::{Layer, Service};
use tower_http::timeout::TimeoutBody;

use crate::server::{listener::PeerAddr, state::AppState};

/// The CSP nonce of this response, given to Leptos so its hydration scripts may run.
#[derive(Clone, Debug)]
pub struct CspNonce(pub String);

/// The most header bytes (names and values) one request may carry. Browsers with many
/// cookies stay far below it; anything above is refused before any other work.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses, before any other work, what no handler should have to read: oversized headers
/// (431), a declared body over `max_body_bytes` (413 at once, without waiting for the body)
/// and compressed request bodies (415; bodies are never decompressed, so there is no
/// decompression bomb to defuse).
pub fn refusal(headers: &HeaderMap, max_body_bytes: usize) -> Option<Response> {
    use crate::server::error::ApiError;
    let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(
            ApiError::with_status(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("The request headers are larger than the limit of {MAX_HEADER_BYTES} bytes."),
            )
            .into_response(),
        );
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body_bytes as u64) {
        return Some(ApiError::payload_too_large(max_body_bytes).into_response());
    }
    let encoded = headers.get_all(header::CONTENT_ENCODING).iter().any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Some(
            ApiError::with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Compressed request bodies are not accepted: send the body without Content-Encoding.",
            )
            .into_response(),
        );
    }
    None
}

/// The Content-Security-Policy of a page, allowing the scripts that carry `nonce`.
fn page_policy(nonce: &str) -> HeaderValue {
    let csp = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data: https:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'; object-src 'none'"
    );
    HeaderValue::from_str(&csp).expect("ascii")
}

/// The Content-Security-Policy of every other response (JSON, files, health checks): nothing
/// may load or run from it, nothing may frame it — what OWASP advises for APIs.
const PLAIN_POLICY: HeaderValue =
    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");

/// Whether a request may be answered with a page, so needs a CSP nonce: anything but the
/// JSON API (`/v1` and below) and the health checks.
fn may_render_a_page(path: &str) -> bool {
    !(path == "/v1" || path.starts_with("/v1/") || path == "/healthz" || path == "/readyz")
}

/// A fresh CSP nonce: 16 random bytes, base64.
fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// The security headers of every response. A page (`text/html`) gets a Content-Security-Policy
/// whose script nonce is fresh for each request; pages, responses setting a cookie and the
/// APIs (`/api`, `/v1`) are never cached.
fn harden(headers: &mut HeaderMap, nonce: Option<&str>, is_api: bool, hsts: bool) {
    let is_html = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let policy = match nonce {
        Some(nonce) if is_html => page_policy(nonce),
        _ => PLAIN_POLICY,
    };
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    headers.insert(COOP, HeaderValue::from_static("same-origin"));
    if hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
    if is_html || is_api || headers.contains_key(header::SET_COOKIE) {
        // Pages show who is signed in, and may show a key; never let a cache keep them.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

const COOP: HeaderName = HeaderName::from_static("cross-origin-opener-policy");

/// The answer to a state-changing request from another site.
fn cross_site_refusal(request: &Request) -> Response {
    tracing::warn!(method = %request.method(), path = %request.uri().path(), "cross-origin state-changing request refused");
    (StatusCode::FORBIDDEN, "This request was refused because it did not come from the Workjet portal.").into_response()
}

/// Every request's own work before and after its route, as one layer (a `Router::layer`
/// costs each request a boxed clone of the stack below it, and each `from_fn` one more box
/// for its `Next`; these were four such layers). In order:
///
/// 1. the HTTP metrics ([`RequestTiming`](crate::server::metrics::RequestTiming)), taken
///    here because the route template is known (the layer runs after routing);
/// 2. [`refusal`]: oversized headers, declared oversized or compressed bodies;
/// 3. the cross-origin check for state-changing requests ([`cross_origin_allowed`]) outside
///    `/v1`, which applies it itself to cookie-authenticated requests only;
/// 4. the request body's timeout (`WJ_BODY_TIMEOUT_SECS`, tower-http's `TimeoutBody`);
/// 5. the client's IP ([`ClientIp`]) and, where a page may be rendered, the CSP nonce
///    ([`CspNonce`]) as request extensions;
/// 6. a panic in the route becomes a 500 (the request's task survives; other requests are not
///    affected);
/// 7. after the route: the security headers ([`harden`]) on every response, refusals included.
#[derive(Clone)]
pub struct EdgeLayer {
    state: AppState,
    /// Whether answers carry `Strict-Transport-Security`: when this server or its public
    /// address speaks HTTPS (decided once, at start).
    hsts: bool,
}

impl EdgeLayer {
    pub fn new(state: &AppState) -> Self {
        let config = &state.config;
        Self { state: state.clone(), hsts: config.tls.is_some() || config.public_url.scheme() == "https" }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { state: self.state.clone(), hsts: self.hsts, inner }
    }
}

/// A response at once (a refusal, a panic), or the route's.
enum Answer<F> {
    Now(Response),
    Later(F),
}

impl<F: Future<Output = Result<Response, Infallible>>> Answer<F> {
    /// Calls `service`, catching a panic in its `call`.
    fn call<S: Service<Request, Future = F>>(service: &mut S, request: Request) -> Self {
        match std::panic::catch_unwind(AssertUnwindSafe(move || service.call(request))) {
            Ok(future) => Answer::Later(future),
            Err(_) => Answer::Now(panicked()),
        }
    }

    /// The response, or [`panicked`] for a panic while it was made.
    async fn response(self) -> Response {
        match self {
            Answer::Now(response) => response,
            Answer::Later(future) => match AssertUnwindSafe(future).catch_unwind().await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => panicked(),
            },
        }
    }
}

/// The answer to a request whose handler panicked: a plain 500 (the panic itself is on
/// standard error, from the panic hook), with the security headers like any other.
fn panicked() -> Response {
    tracing::error!("a request handler panicked: answering 500");
    crate::server::error::ApiError::internal().into_response()
}

/// The service of [`EdgeLayer`].
#[derive(Clone)]
pub struct Edge<S> {
    state: AppState,
    hsts: bool,
    inner: S,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let config = &self.state.config;
        let timing = config.metrics_addr.is_some().then(|| crate::server::metrics::RequestTiming::start(&request));
        let path = request.uri().path();
        let is_api = path.starts_with("/api/") || path.starts_with("/v1/");
        let hsts = self.hsts;
        let refused = refusal(request.headers(), config.max_body_bytes).or_else(|| {
            let guarded = !path.starts_with("/v1/");
            (guarded && !cross_origin_allowed(request.method(), request.headers(), &config.allowed_origins))
                .then(|| cross_site_refusal(&request))
        });
        let mut nonce = None;
        let answer = match refused {
            Some(response) => Answer::Now(response),
            None => {
                if may_render_a_page(path) {
                    let fresh = new_nonce();
                    request.extensions_mut().insert(CspNonce(fresh.clone()));
                    nonce = Some(fresh);
                }
                let peer = request.extensions().get::<ConnectInfo<PeerAddr>>().map(|c| c.0.0.ip());
                let ip = client_ip(peer, request.headers(), &config.trusted_proxies);
                request.extensions_mut().insert(ClientIp(ip));
                let timeout = config.body_timeout;
                let request = request.map(|body| Body::new(TimeoutBody::new(timeout, body)));
                // The clone stays; the service made ready by `poll_ready` answers.
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                Answer::call(&mut inner, request)
            }
        };
        Box::pin(async move {
            let mut response = answer.response().await;
            harden(response.headers_mut(), nonce.as_deref(), is_api, hsts);
            if let Some(timing) = timing {
                timing.finish(response.status());
            }
            Ok(response)
        })
    }
}

/// Whether a request may change state on behalf of a browser session: the algorithm of
/// Go's `http.CrossOriginProtection` (Sec-Fetch-Site first, then `Origin` against the
/// allowed origins). Requests without either header do not come from a browser.
pub fn cross_origin_allowed(method: &Method, headers: &HeaderMap, allowed_origins: &[String]) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    // An Origin that is present but not text (bytes outside ASCII) is untrusted, never absent.
    let origin = headers.get(header::ORIGIN);
    let origin_trusted = origin.and_then(|v| v.to_str().ok()).is_some_and(|o| allowed_origins.iter().any(|a| a == o));
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(b"same-origin") | Some(b"none") => true,
        Some(_) => origin_trusted,
        None => match origin {
            None => true,
            Some(_) => origin_trusted,
        },
    }
}

/// The client's IP: the connecting peer, or the right-most untrusted `X-Forwarded-For`
/// entry when the peer is one of `WJ_TRUSTED_PROXIES`.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return Some(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { return Some(peer) };
        for part in value.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => chain.push(ip),
                Err(_) => return Some(peer),
            }
        }
    }
    // Walk from the nearest hop outwards, skipping our own proxies.
    Some(chain.into_iter().rev().find(|ip| !trusted.iter().any(|net| net.contains(ip))).unwrap_or(peer))
}

/// The client IP of a request, as [`client_ip`] decides it.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_origin_check() {
        let allowed = vec!["https://portal.workjet.dev".to_owned(), "https://marketplace.workjet.dev".to_owned()];
        let post = Method::POST;
        assert!(cross_origin_allowed(&Method::GET, &headers(&[("origin", "https://evil.example")]), &allowed));
        assert!(cross_origin_allowed(&post, &headers(&[("sec-fetch-site", "same-origin")]), &allowed));
        assert!(cross_origin_allowed(&post, &headers(&[]), &allowed), "non-browser clients send neither header");
        assert!(cross_origin_allowed(
            &post,
            &headers(&[("sec-fetch-site", "same-site"), ("origin", "https://marketplace.workjet.dev")]),
            &allowed
        ));
        assert!(!cross_origin_allowed(
            &post,
            &headers(&[("sec-fetch-site", "same-site"), ("origin", "https://blog.workjet.dev")]),
            &allowed
        ));
        assert!(!cross_origin_allowed(&post, &headers(&[("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")]), &allowed));
        assert!(!cross_origin_allowed(&post, &headers(&[("origin", "https://evil.example")]), &allowed));
        assert!(!cross_origin_allowed(&post, &headers(&[("origin", "null")]), &allowed));
        assert!(!cross_origin_allowed(&Method::DELETE, &headers(&[("sec-fetch-site", "cross-site")]), &allowed));
        // Found by fuzzing: an Origin that is not ASCII is present (and untrusted), not absent.
        let mut odd = HeaderMap::new();
        odd.insert(header::ORIGIN, HeaderValue::from_bytes(b"\xff").expect("opaque header"));
        assert!(!cross_origin_allowed(&post, &odd, &allowed));
    }

    #[test]
    fn pages_get_a_nonce_policy_everything_else_the_plain_one() {
        let mut page = headers(&[("content-type", "text/html; charset=utf-8")]);
        harden(&mut page, Some("abc"), false, false);
        let policy = page[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(policy.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval'"), "{policy}");
        assert_eq!(page[header::CACHE_CONTROL], "no-store", "pages are never cached");
        assert!(!page.contains_key(header::STRICT_TRANSPORT_SECURITY));

        let mut json = headers(&[("content-type", "application/json")]);
        harden(&mut json, None, true, true);
        assert_eq!(json[header::CONTENT_SECURITY_POLICY], PLAIN_POLICY);
        assert!(!PLAIN_POLICY.to_str().expect("ascii").contains("nonce"));
        assert!(PLAIN_POLICY.to_str().expect("ascii").starts_with("default-src 'none'"), "nothing loads from a non-page");
        assert_eq!(json[header::CACHE_CONTROL], "no-store", "API answers are never cached");
        assert_eq!(json[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(json[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(json[COOP], "same-origin");
        assert!(json.contains_key(header::STRICT_TRANSPORT_SECURITY));

        // A nonce with a response that is not a page is not used (nothing to run it).
        let mut file = headers(&[("content-type", "text/css"), ("cache-control", "public, max-age=31536000, immutable")]);
        harden(&mut file, Some("abc"), false, false);
        assert_eq!(file[header::CONTENT_SECURITY_POLICY], PLAIN_POLICY);
        assert_eq!(file[header::CACHE_CONTROL], "public, max-age=31536000, immutable", "files keep their caching");
        // … and a page without one gets the policy that lets no inline script run.
        let mut bare = headers(&[("content-type", "text/html")]);
        harden(&mut bare, None, false, false);
        assert_eq!(bare[header::CONTENT_SECURITY_POLICY], PLAIN_POLICY);

        for path in ["/v1", "/v1/models", "/v1/chat/completions", "/healthz", "/readyz"] {
            assert!(!may_render_a_page(path), "{path}");
        }
        for path in ["/", "/login", "/settings/api-keys", "/api/list_keys", "/v1x", "/no/such/page", "/healthz/"] {
            assert!(may_render_a_page(path), "{path}");
        }
    }

    #[tokio::test]
    async fn a_panicking_route_answers_500_and_is_caught_wherever_it_panics() {
        type Fut = std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;
        let request = || Request::get("/v1/models").body(Body::empty()).expect("request");
        let mut in_call = tower::service_fn(|_: Request| -> Fut { panic!("in call") });
        let mut in_future = tower::service_fn(|_: Request| -> Fut { Box::pin(async { panic!("in the future") }) });
        let mut fine = tower::service_fn(|_: Request| -> Fut { Box::pin(async { Ok(StatusCode::NO_CONTENT.into_response()) }) });
        assert_eq!(Answer::call(&mut in_call, request()).response().await.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(Answer::call(&mut in_future, request()).response().await.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(Answer::call(&mut fine, request()).response().await.status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        let direct: IpAddr = "198.51.100.7".parse().expect("ip");
        assert_eq!(client_ip(Some(direct), &xff, &trusted), Some(direct));
        let proxy: IpAddr = "10.0.0.2".parse().expect("ip");
        assert_eq!(client_ip(Some(proxy), &xff, &trusted), Some("203.0.113.9".parse().expect("ip")));
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(
            client_ip(Some(proxy), &spoofed, &trusted),
            Some("203.0.113.9".parse().expect("ip")),
            "the client-supplied left part is ignored"
        );
        let junk = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_ip(Some(proxy), &junk, &trusted), Some(proxy));
    }
}
