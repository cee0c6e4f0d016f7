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
//!
//! These headers are on every admitted request, so they are written without formatting
//! machinery: small numbers (and every reset of at most an hour) are static values made
//! once, the values that depend only on the limit are remembered per thread, and the rest
//! is written into a stack buffer (one allocation each for `X-RateLimit-Remaining` above
//! [`SMALL`] and for `RateLimit`).

use std::{cell::RefCell, io::Write, sync::LazyLock, time::Duration};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::{
    domain::{admission::Policy, rate_limit::Decision},
    server::error::ApiError,
};

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

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// How many headers an admitted `/v1` answer gains after its route: the five here, three
/// more on a 429, Cache-Control, Vary, the security headers and the request id.
const RESPONSE_HEADERS_ADDED: usize = 16;

/// Numbers below this are static header values (made once): every reset of at most an hour
/// and the remaining budget of ordinary limits.
pub const SMALL: u64 = 4096;

static SMALL_NUMBERS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    // One string holding them all, leaked once: each value is a static slice of it, whose
    // clones cost nothing.
    let mut all = String::new();
    let mut ends = Vec::with_capacity(SMALL as usize);
    for n in 0..SMALL {
        all.push_str(itoa::Buffer::new().format(n));
        ends.push(all.len());
    }
    let all: &'static str = Box::leak(all.into_boxed_str());
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let value = HeaderValue::from_static(&all[start..end]);
            start = end;
            value
        })
        .collect()
});

fn ceil_secs(d: Duration) -> u64 {
    d.as_micros().div_ceil(1_000_000) as u64
}

/// `n` as a header value: static below [`SMALL`], else one allocation.
fn number(n: u64) -> HeaderValue {
    match SMALL_NUMBERS.get(n as usize) {
        Some(value) => value.clone(),
        None => HeaderValue::from_str(itoa::Buffer::new().format(n)).expect("numbers are valid header values"),
    }
}

/// A value written into a stack buffer (the policy names and numbers always fit).
fn written(write: impl FnOnce(&mut &mut [u8]) -> std::io::Result<()>) -> HeaderValue {
    let mut buf = [0u8; 96];
    let mut rest = &mut buf[..];
    write(&mut rest).expect("rate-limit header values fit in 96 bytes");
    let len = 96 - rest.len();
    HeaderValue::from_bytes(&buf[..len]).expect("rate-limit header values are ASCII")
}

fn policy_value(policy: Policy, limit: u32) -> HeaderValue {
    written(|w| {
        w.write_all(b"\"")?;
        w.write_all(policy.as_str().as_bytes())?;
        w.write_all(b"\";q=")?;
        w.write_all(itoa::Buffer::new().format(limit).as_bytes())?;
        w.write_all(b";w=60")
    })
}

/// `X-RateLimit-Limit` and `RateLimit-Policy`, which depend on the policy and the limit
/// only: remembered per thread (a few limits each), so a key's requests reuse them.
fn per_limit(policy: Policy, limit: u32) -> (HeaderValue, HeaderValue) {
    const REMEMBERED: usize = 8;
    thread_local! {
        static LAST: RefCell<Vec<(Policy, u32, HeaderValue, HeaderValue)>> = const { RefCell::new(Vec::new()) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some((.., limit_value, policy_header)) = last.iter().find(|(p, l, ..)| *p == policy && *l == limit) {
            return (limit_value.clone(), policy_header.clone());
        }
        let made = (number(u64::from(limit)), policy_value(policy, limit));
        if last.len() == REMEMBERED {
            last.remove(0);
        }
        last.push((policy, limit, made.0.clone(), made.1.clone()));
        made
    })
}

/// Writes the rate-limit headers for a decision under `policy` into `headers`, replacing
/// any of the same names.
pub fn insert_headers(headers: &mut HeaderMap, decision: &Decision, policy: Policy) {
    // Room, in one growth, for these and what the layers above add (Cache-Control, Vary,
    // the security headers, the request id): the map would otherwise grow twice.
    headers.reserve(RESPONSE_HEADERS_ADDED);
    let reset = ceil_secs(decision.reset_after);
    let (limit, policy_header) = per_limit(policy, decision.limit);
    headers.insert(X_RATELIMIT_LIMIT, limit);
    headers.insert(X_RATELIMIT_REMAINING, number(u64::from(decision.remaining)));
    headers.insert(X_RATELIMIT_RESET, number(reset));
    headers.insert(RATELIMIT_POLICY, policy_header);
    headers.insert(
        RATELIMIT,
        written(|w| {
            w.write_all(b"\"")?;
            w.write_all(policy.as_str().as_bytes())?;
            w.write_all(b"\";r=")?;
            w.write_all(itoa::Buffer::new().format(decision.remaining).as_bytes())?;
            w.write_all(b";t=")?;
            w.write_all(itoa::Buffer::new().format(reset).as_bytes())
        }),
    );
    if let Some(wait) = decision.retry_after {
        headers.insert(RETRY_AFTER, number(ceil_secs(wait).max(1)));
        headers.insert(RETRY_AFTER_MS, number(wait.as_micros().div_ceil(1000).max(1) as u64));
        if wait > Duration::from_secs(60) {
            headers.insert(X_SHOULD_RETRY, HeaderValue::from_static("false"));
        }
    }
}

/// The rate-limit headers for a decision under `policy`.
pub fn headers(decision: &Decision, policy: Policy) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(8);
    insert_headers(&mut h, decision, policy);
    h
}

/// A 429 for a denied decision.
pub fn too_many(decision: &Decision, policy: Policy, message: &'static str) -> ApiError {
    ApiError::rate_limited(message).with_headers(&headers(decision, policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formatting these headers had before they were preformatted, kept as the reference.
    fn formatted(decision: &Decision, policy: &str) -> HeaderMap {
        fn value(n: impl ToString) -> HeaderValue {
            HeaderValue::from_str(&n.to_string()).expect("numbers are valid header values")
        }
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

    fn sorted(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = h.iter().map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec())).collect();
        v.sort();
        v
    }

    #[test]
    fn preformatted_headers_equal_the_formatted_ones() {
        let numbers: Vec<u32> = (0..5000)
            .chain([4095, 4096, 4097, 9999, 10_000, 60_000, 60_000_000, 59_999_999, u32::MAX - 1, u32::MAX])
            .chain((0..64).map(|i| 1u32 << (i % 32)))
            .collect();
        let waits = [
            None,
            Some(Duration::ZERO),
            Some(Duration::from_micros(1)),
            Some(Duration::from_millis(999)),
            Some(Duration::from_secs(1)),
            Some(Duration::from_micros(1_000_001)),
            Some(Duration::from_secs(60)),
            Some(Duration::from_micros(60_000_001)),
            Some(Duration::from_secs(3600)),
            Some(Duration::from_secs(86_400 * 365)),
        ];
        let mut checked = 0;
        for policy in [Policy::PerKey, Policy::PerUser, Policy::AuthFailures] {
            for (i, &limit) in numbers.iter().enumerate().step_by(7) {
                let remaining = numbers[(i * 31 + 5) % numbers.len()];
                let reset_after = Duration::from_micros(u64::from(numbers[(i * 17 + 3) % numbers.len()]) * 997);
                let retry_after = waits[i % waits.len()];
                let decision = Decision { allowed: retry_after.is_none(), limit, remaining, reset_after, retry_after };
                assert_eq!(sorted(&headers(&decision, policy)), sorted(&formatted(&decision, policy.as_str())), "{decision:?} {policy:?}");
                // The remembered per-limit values are the same the second time.
                assert_eq!(sorted(&headers(&decision, policy)), sorted(&formatted(&decision, policy.as_str())));
                checked += 1;
            }
        }
        assert!(checked > 2000);
        for n in (0..SMALL + 10).chain([u64::from(u32::MAX), u64::MAX]) {
            assert_eq!(number(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn headers_replace_earlier_values_of_the_same_names() {
        let mut h = HeaderMap::new();
        h.insert(X_RATELIMIT_LIMIT, HeaderValue::from_static("stale"));
        h.append(RATELIMIT, HeaderValue::from_static("stale"));
        h.append(RATELIMIT, HeaderValue::from_static("stale too"));
        let decision = Decision { allowed: true, limit: 60, remaining: 59, reset_after: Duration::from_secs(1), retry_after: None };
        insert_headers(&mut h, &decision, Policy::PerKey);
        assert_eq!(h.get_all(X_RATELIMIT_LIMIT).iter().collect::<Vec<_>>(), ["60"]);
        assert_eq!(h.get_all(RATELIMIT).iter().collect::<Vec<_>>(), ["\"per-key\";r=59;t=1"]);
    }
}
