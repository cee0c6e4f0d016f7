//! Rate-limit headers on `/v1` (the limits themselves are the domain's: `domain::limits`,
//! `domain::admission`). Every admitted `/v1` response says where the caller stands:
//!
//! - `X-RateLimit-Limit`: requests allowed per minute;
//! - `X-RateLimit-Remaining`: requests allowed right now;
//! - `X-RateLimit-Reset`: seconds until the budget is full again;
//! - `RateLimit-Policy` / `RateLimit` (IETF draft): `"<policy>";q=<limit>;w=60` and
//!   `"<policy>";r=<remaining>;t=<reset>`;
//! - on 429 also `Retry-After` (seconds, at least 1), `retry-after-ms` (the official OpenAI
//!   SDKs read it first) and `x-should-retry: false` when the wait exceeds what the SDKs
//!   would honour (60 s).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::{domain::rate_limit::Decision, server::error::ApiError};

/// The headers every `/v1` response carries, for CORS `Access-Control-Expose-Headers`.
pub const EXPOSED_HEADERS: &[&str] = &[
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit-policy",
    "ratelimit",
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "x-request-id",
];

fn ceil_secs(d: Duration) -> u64 {
    d.as_micros().div_ceil(1_000_000) as u64
}

fn value(n: impl ToString) -> HeaderValue {
    HeaderValue::from_str(&n.to_string()).expect("numbers are valid header values")
}

/// The rate-limit headers for a decision under `policy` (`per-key`, `per-user`, `auth-failures`).
pub fn headers(decision: &Decision, policy: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let reset = ceil_secs(decision.reset_after);
    h.insert(HeaderName::from_static("x-ratelimit-limit"), value(decision.limit));
    h.insert(HeaderName::from_static("x-ratelimit-remaining"), value(decision.remaining));
    h.insert(HeaderName::from_static("x-ratelimit-reset"), value(reset));
    h.insert(HeaderName::from_static("ratelimit-policy"), value(format!("\"{policy}\";q={};w=60", decision.limit)));
    h.insert(HeaderName::from_static("ratelimit"), value(format!("\"{policy}\";r={};t={reset}", decision.remaining)));
    if let Some(wait) = decision.retry_after {
        h.insert(HeaderName::from_static("retry-after"), value(ceil_secs(wait).max(1)));
        h.insert(HeaderName::from_static("retry-after-ms"), value(wait.as_micros().div_ceil(1000).max(1)));
        if wait > Duration::from_secs(60) {
            h.insert(HeaderName::from_static("x-should-retry"), HeaderValue::from_static("false"));
        }
    }
    h
}

/// A 429 for a denied decision.
pub fn too_many(decision: &Decision, policy: &str, message: &'static str) -> ApiError {
    ApiError::rate_limited(message).with_headers(&headers(decision, policy))
}
