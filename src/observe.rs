//! What Workjet measures, in one place: every Prometheus metric's name, labels and help
//! text, and the functions the rest of the code records through. Nothing else names a
//! metric.
//!
//! Recording goes through the [`metrics`] facade: until [`install`] runs (no
//! `WJ_METRICS_ADDR`) every call is a no-op. Label values are closed sets (outcomes, route
//! templates, configured provider and model names, status codes): never a user, a key, an
//! address or a raw path.

pub mod sharded;
pub mod trace;

use std::{
    cell::RefCell,
    fmt::Write as _,
    sync::{LazyLock, OnceLock},
    time::Duration,
};

use metrics::{SharedString, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "workjet_http_requests_total";
pub const HTTP_DURATION: &str = "workjet_http_request_duration_seconds";
const HTTP_DURATION_HELP: &str = "Time to a response's headers, by route template.";
pub const AUTH_DECISIONS: &str = "workjet_auth_decisions_total";
pub const AUTH_CACHE_LOOKUPS: &str = "workjet_auth_cache_lookups_total";
pub const UPSTREAM_REQUESTS: &str = "workjet_upstream_requests_total";
pub const UPSTREAM_FIRST_BYTE: &str = "workjet_upstream_first_byte_seconds";
pub const UPSTREAM_DURATION: &str = "workjet_upstream_duration_seconds";
pub const TOKENS: &str = "workjet_tokens_total";
pub const DB_POOL_CONNECTIONS: &str = "workjet_db_pool_connections";
pub const REDIS_UP: &str = "workjet_redis_up";
pub const BUILD_INFO: &str = "workjet_build_info";

/// Latency buckets (seconds) of every histogram: sub-millisecond for the cached API,
/// up to minutes for long completions.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle, so tests
/// may start several servers in one process) and describes every metric.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder was installed first: /metrics shows nothing recorded");
            }
            describe();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route template, method and status.");
    describe_counter!(AUTH_DECISIONS, "/v1 authentication decisions, by credential (key, session) and outcome.");
    describe_counter!(AUTH_CACHE_LOOKUPS, "API key lookups in the in-process cache: hit, miss (a database read) or stale.");
    describe_counter!(UPSTREAM_REQUESTS, "Gateway requests, by the provider that answered, public model name and status.");
    describe_histogram!(UPSTREAM_FIRST_BYTE, metrics::Unit::Seconds, "Time to a provider's response headers, by provider.");
    describe_histogram!(UPSTREAM_DURATION, metrics::Unit::Seconds, "Gateway requests from start to end (the stream's end), by provider.");
    describe_counter!(TOKENS, "Tokens, by provider, public model name and kind (prompt, completion).");
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections, by state (idle, in_use, max).");
    describe_gauge!(REDIS_UP, "1 when Redis (WJ_REDIS_URL) answers, 0 when it does not; absent without Redis.");
    describe_gauge!(BUILD_INFO, "Always 1; the version label names the running build.");
}

/// The exposition text: the per-request metrics (kept in [`sharded`] counters and
/// histograms, so that threads do not contend for them) summed now, then everything the
/// recorder holds, then the request-duration histograms.
pub fn render(handle: &PrometheusHandle) -> String {
    for series in REQUESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
        counter!(HTTP_REQUESTS, "route" => series.route, "method" => series.method, "status" => status_label(series.status))
            .absolute(series.counter.total());
    }
    for (credential, counters) in [("key", &AUTH.key), ("session", &AUTH.session)] {
        for (outcome, counter) in AuthOutcome::ALL.iter().zip(counters) {
            counter!(AUTH_DECISIONS, "method" => credential, "outcome" => outcome.as_str()).absolute(counter.total());
        }
    }
    for (result, counter) in ["hit", "miss", "stale"].into_iter().zip(CACHE.iter()) {
        counter!(AUTH_CACHE_LOOKUPS, "result" => result).absolute(counter.total());
    }
    let mut text = handle.render();
    let durations = DURATIONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !durations.is_empty() {
        let _ = writeln!(text, "# HELP {HTTP_DURATION} {HTTP_DURATION_HELP}");
        let _ = writeln!(text, "# TYPE {HTTP_DURATION} histogram");
        for (route, histogram) in durations.iter() {
            histogram.render(&mut text, HTTP_DURATION, "route", route);
        }
    }
    text
}

/// Drains histogram samples into their buckets; run every few seconds (and before a render).
pub fn upkeep(handle: &PrometheusHandle) {
    handle.run_upkeep();
}

/// A route template as a `&'static str`: each distinct template is stored once for the
/// process (they are a closed set: the router's routes and `unmatched`), so a request
/// carries a plain pointer instead of a reference-counted string, and the handles below are
/// found by that pointer.
pub fn route_label(route: &str) -> &'static str {
    static INTERNED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    thread_local! {
        /// (address of the router's copy of the template, the interned template).
        static SEEN: RefCell<Vec<(usize, &'static str)>> = const { RefCell::new(Vec::new()) };
    }
    SEEN.with_borrow_mut(|seen| {
        let at = route.as_ptr() as usize;
        // The address first (the same allocation for every request of a route), then the
        // text: another router (tests start many) may reuse an address for another route.
        if let Some((_, interned)) = seen.iter().find(|(a, interned)| *a == at && *interned == route) {
            return *interned;
        }
        let interned = {
            let mut all = INTERNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match all.iter().find(|s| **s == route) {
                Some(s) => *s,
                None => {
                    let s: &'static str = Box::leak(route.into());
                    all.push(s);
                    s
                }
            }
        };
        match seen.iter_mut().find(|(_, s)| std::ptr::eq(*s, interned)) {
            Some(entry) => entry.0 = at,
            None => seen.push((at, interned)),
        }
        interned
    })
}

/// One `(route, method, status)` series of the request counter.
struct RequestSeries {
    route: &'static str,
    method: &'static str,
    status: u16,
    counter: &'static sharded::Counter,
}

/// Every request series and route histogram so far (the templates are a closed set, the
/// methods and statuses nearly so: each is made once and kept for the process).
static REQUESTS: std::sync::Mutex<Vec<RequestSeries>> = std::sync::Mutex::new(Vec::new());
static DURATIONS: std::sync::Mutex<Vec<(&'static str, &'static sharded::Histogram)>> = std::sync::Mutex::new(Vec::new());

/// The handles of one route on one thread, found on the thread's first request of the
/// route: a request then pays a pointer comparison and adds to its thread's shard of the
/// counter and the histogram — no label set built or looked up, no lock, no line shared
/// with another core.
struct RouteMetrics {
    route: &'static str,
    duration: &'static sharded::Histogram,
    /// By (method label, status).
    requests: Vec<(&'static str, u16, &'static sharded::Counter)>,
}

thread_local! {
    static ROUTES: RefCell<Vec<RouteMetrics>> = const { RefCell::new(Vec::new()) };
}

/// One answered HTTP request. `route` is the route template from [`route_label`] (never the
/// raw path).
pub fn http_request(route: &'static str, method: &'static str, status: u16, elapsed: Duration) {
    ROUTES.with_borrow_mut(|routes| {
        let index = match routes.iter().position(|r| std::ptr::eq(r.route, route)) {
            Some(index) => index,
            None => {
                let duration = {
                    let mut all = DURATIONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match all.iter().find(|(r, _)| std::ptr::eq(*r, route)) {
                        Some((_, histogram)) => *histogram,
                        None => {
                            let histogram: &'static sharded::Histogram = Box::leak(Box::new(sharded::Histogram::new(BUCKETS)));
                            all.push((route, histogram));
                            histogram
                        }
                    }
                };
                routes.push(RouteMetrics { route, duration, requests: Vec::new() });
                routes.len() - 1
            }
        };
        let metrics = &mut routes[index];
        metrics.duration.record(elapsed);
        let counter = match metrics.requests.iter().find(|(m, s, _)| *m == method && *s == status) {
            Some((_, _, counter)) => *counter,
            None => {
                let counter = {
                    let mut all = REQUESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match all.iter().find(|r| std::ptr::eq(r.route, route) && r.method == method && r.status == status) {
                        Some(series) => series.counter,
                        None => {
                            let counter: &'static sharded::Counter = Box::leak(Box::default());
                            all.push(RequestSeries { route, method, status, counter });
                            counter
                        }
                    }
                };
                metrics.requests.push((method, status, counter));
                counter
            }
        };
        counter.increment(1);
    });
}

/// The method label: the standard methods by name, anything else as `other` (a client
/// chooses the method, and must not grow the label set).
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `"100"`…`"599"` without allocating per request.
fn status_label(status: u16) -> &'static str {
    static LABELS: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| (0..600u16).map(|s| &*Box::leak(s.to_string().into_boxed_str())).collect());
    LABELS.get(usize::from(status)).copied().unwrap_or("other")
}

/// Who asked `/v1`: the credential type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    Key,
    Session,
}

/// How a `/v1` authentication ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok,
    /// No such key, no session, or a session that ended.
    Unknown,
    Revoked,
    Expired,
    /// The owner of the key (or the session's person) is disabled.
    Disabled,
    /// Not a key at all (shape, checksum, header).
    Malformed,
    /// Too many unknown keys from the address.
    Throttled,
    /// The caller's request budget is spent.
    RateLimited,
    /// The database or the session store could not answer.
    Error,
}

impl AuthOutcome {
    const ALL: [AuthOutcome; 9] = [
        Self::Ok,
        Self::Unknown,
        Self::Revoked,
        Self::Expired,
        Self::Disabled,
        Self::Malformed,
        Self::Throttled,
        Self::RateLimited,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Disabled => "disabled",
            Self::Malformed => "malformed",
            Self::Throttled => "throttled",
            Self::RateLimited => "rate_limited",
            Self::Error => "error",
        }
    }
}

/// The counters of every (credential, outcome) pair, made once: the cached `/v1` path
/// adds to its thread's shard of one, no label lookup.
struct AuthCounters {
    key: [sharded::Counter; AuthOutcome::ALL.len()],
    session: [sharded::Counter; AuthOutcome::ALL.len()],
}

static AUTH: LazyLock<AuthCounters> = LazyLock::new(|| AuthCounters {
    key: std::array::from_fn(|_| Default::default()),
    session: std::array::from_fn(|_| Default::default()),
});

/// One `/v1` authentication decision.
pub fn auth_decision(credential: Credential, outcome: AuthOutcome) {
    if HANDLE.get().is_none() {
        return;
    }
    let counters = match credential {
        Credential::Key => &AUTH.key,
        Credential::Session => &AUTH.session,
    };
    counters[outcome as usize].increment(1);
}

/// What the in-process key cache answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheLookup {
    /// Answered from memory (a working key, or one known not to work).
    Hit,
    /// Never seen: the database was read.
    Miss,
    /// Seen, but a revocation or edit since (or its age) sent it to the database.
    Stale,
}

static CACHE: LazyLock<[sharded::Counter; 3]> = LazyLock::new(|| std::array::from_fn(|_| Default::default()));

pub fn auth_cache_lookup(result: CacheLookup) {
    if HANDLE.get().is_none() {
        return;
    }
    CACHE[result as usize].increment(1);
}

/// A provider's response headers arrived after `elapsed`.
pub fn upstream_first_byte(provider: &str, elapsed: Duration) {
    if HANDLE.get().is_none() {
        return;
    }
    histogram!(UPSTREAM_FIRST_BYTE, "provider" => provider.to_owned()).record(elapsed.as_secs_f64());
}

/// A gateway request ended (however it ended) with `status`, answered by `provider` for
/// the public `model`; its duration and tokens. Only configured providers and models reach
/// here (a request for an unknown model never has a provider).
pub fn upstream_request(provider: &str, model: &str, status: u16, elapsed: Duration, prompt_tokens: u64, completion_tokens: u64) {
    if HANDLE.get().is_none() {
        return;
    }
    let provider = SharedString::from(provider.to_owned());
    let model = SharedString::from(model.to_owned());
    counter!(UPSTREAM_REQUESTS, "provider" => provider.clone(), "model" => model.clone(), "status" => status_label(status)).increment(1);
    histogram!(UPSTREAM_DURATION, "provider" => provider.clone()).record(elapsed.as_secs_f64());
    if prompt_tokens > 0 {
        counter!(TOKENS, "provider" => provider.clone(), "model" => model.clone(), "kind" => "prompt").increment(prompt_tokens);
    }
    if completion_tokens > 0 {
        counter!(TOKENS, "provider" => provider, "model" => model, "kind" => "completion").increment(completion_tokens);
    }
}

/// The database pool right now.
pub fn db_pool(idle: u32, in_use: u32, max: u32) {
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
    gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
    gauge!(DB_POOL_CONNECTIONS, "state" => "max").set(f64::from(max));
}

/// Whether Redis answers right now.
pub fn redis_up(up: bool) {
    gauge!(REDIS_UP).set(if up { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_the_numbers_and_bounded() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(503), "503");
        assert_eq!(status_label(600), "other");
        assert_eq!(status_label(u16::MAX), "other");
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        assert_eq!(method_label(&http::Method::from_bytes(b"FROBNICATE").expect("method")), "other");
    }

    #[test]
    fn the_grafana_dashboard_is_built_on_these_names() {
        let dashboard = include_str!("../deploy/grafana/workjet-dashboard.json");
        let parsed: serde_json::Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
        assert!(parsed["panels"].as_array().is_some_and(|p| p.len() >= 10));
        let known = [
            HTTP_REQUESTS,
            HTTP_DURATION,
            AUTH_DECISIONS,
            AUTH_CACHE_LOOKUPS,
            UPSTREAM_REQUESTS,
            UPSTREAM_FIRST_BYTE,
            UPSTREAM_DURATION,
            TOKENS,
            DB_POOL_CONNECTIONS,
            REDIS_UP,
            BUILD_INFO,
        ];
        let mut used = std::collections::BTreeSet::new();
        for (at, _) in dashboard.match_indices("workjet_") {
            let name: String = dashboard[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name).to_owned();
            assert!(known.contains(&base.as_str()), "the dashboard uses {name}, which Workjet does not export");
            used.insert(base);
        }
        assert_eq!(used.len(), known.len(), "every metric has a panel: {used:?}");
    }

    #[test]
    fn outcomes_index_their_counters_in_order() {
        for (i, outcome) in AuthOutcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i, "{outcome:?}");
        }
    }

    #[test]
    fn route_templates_are_interned_once_by_their_text() {
        let first = String::from("/v1/test-interning/{id}");
        let again = String::from("/v1/test-interning/{id}");
        let a = route_label(&first);
        let b = route_label(&again);
        assert!(std::ptr::eq(a, b), "one copy per template");
        assert_eq!(a, "/v1/test-interning/{id}");
        // The same address later holding another template is told apart by the text.
        drop((first, again));
        let other = String::from("/v1/test-interning/{other}");
        assert_eq!(route_label(&other), "/v1/test-interning/{other}");
        assert!(std::ptr::eq(route_label(&other), route_label("/v1/test-interning/{other}")));
    }

    #[test]
    fn outcome_labels_are_the_documented_ones() {
        let labels: Vec<&str> = AuthOutcome::ALL.iter().map(|o| o.as_str()).collect();
        for documented in ["ok", "unknown", "revoked", "expired", "malformed", "throttled", "rate_limited"] {
            assert!(labels.contains(&documented), "{documented}");
        }
    }
}
