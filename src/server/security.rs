//! Response hardening and request provenance: security headers with a per-request CSP
//! nonce, the cross-origin check for state-changing requests, and the client's IP address.

use std::net::IpAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine;
use ipnet::IpNet;
use rand::RngCore;

use crate::server::{listener::PeerAddr, state::AppState};

/// The CSP nonce of this response, given to Leptos so its hydration scripts may run.
#[derive(Clone, Debug)]
pub struct CspNonce(pub String);

/// The most header bytes (names and values) one request may carry. Browsers with many
/// cookies stay far below it; anything above is refused before any other work.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses, before any other work, what no handler should have to read: oversized headers
/// (431), a declared body over `WJ_MAX_BODY_BYTES` (413 at once, without waiting for the
/// body) and compressed request bodies (415; bodies are never decompressed, so there is no
/// decompression bomb to defuse).
pub async fn request_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    use crate::server::error::ApiError;
    let headers = request.headers();
    let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::with_status(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("The request headers are larger than the limit of {MAX_HEADER_BYTES} bytes."),
        )
        .into_response();
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.config.max_body_bytes as u64) {
        return ApiError::payload_too_large(state.config.max_body_bytes).into_response();
    }
    let encoded = headers.get_all(header::CONTENT_ENCODING).iter().any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Compressed request bodies are not accepted: send the body without Content-Encoding.",
        )
        .into_response();
    }
    next.run(request).await
}

/// Adds security headers to every response. HTML pages get a strict Content-Security-Policy
/// whose script nonce is fresh for each request.
pub async fn security_headers(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // The HTTP metrics are taken here (see `RequestTiming` for why not in a layer of their own).
    let timing = state.config.metrics_addr.is_some().then(|| crate::server::metrics::RequestTiming::start(&request));
    let is_api = request.uri().path().starts_with("/api/") || request.uri().path().starts_with("/v1/");
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let nonce = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let csp = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data: https:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'; object-src 'none'"
    );
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp).expect("ascii"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if state.config.tls.is_some() || state.config.public_url.scheme() == "https" {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
    let is_html = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    if is_html || headers.contains_key(header::SET_COOKIE) || is_api {
        // Pages show who is signed in, and may show a key; never let a cache keep them.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(timing) = timing {
        timing.finish(response.status());
    }
    response
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

/// Records the client IP in the request extensions for handlers, audit events and throttles.
pub async fn resolve_client_ip(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<PeerAddr>>().map(|c| c.0.0.ip());
    let ip = client_ip(peer, request.headers(), &state.config.trusted_proxies);
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

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
