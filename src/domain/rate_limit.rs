//! Rate limiting with GCRA (the generic cell rate algorithm, a token bucket held as one
//! number: the theoretical arrival time). A limit of N per minute allows a burst of N and
//! refills one request every 60/N seconds. The in-process limiter lives here; the Redis one
//! runs the same arithmetic in a server-side script.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use dashmap::DashMap;

/// A budget: `per_minute` requests a minute, all of them usable in a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    pub per_minute: u32,
}

impl Quota {
    /// Microseconds between two requests at the sustained rate.
    pub fn emission_interval_us(self) -> u64 {
        // At least 1 µs: above 60 million a minute the budget is effectively unlimited.
        (60_000_000 / u64::from(self.per_minute.max(1))).max(1)
    }

    /// Microseconds of burst the bucket holds (the whole budget).
    pub fn capacity_us(self) -> u64 {
        self.emission_interval_us() * u64::from(self.per_minute.max(1))
    }
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Until the budget is full again.
    pub reset_after: Duration,
    /// When denied: until the next request would be allowed.
    pub retry_after: Option<Duration>,
}

/// One GCRA step. `tat` is the stored theoretical arrival time (µs, `None` for a fresh
/// bucket), `now` the current time (µs). Returns the decision and, when allowed, the new
/// `tat` to store. Pure, so the Redis script and this function can be checked against
/// each other.
pub fn gcra(tat: Option<u64>, now: u64, quota: Quota, cost: u32) -> (Decision, Option<u64>) {
    let t = quota.emission_interval_us();
    let capacity = quota.capacity_us();
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + t * u64::from(cost);
    let allow_at = new_tat.saturating_sub(capacity);
    if now < allow_at {
        let decision = Decision {
            allowed: false,
            limit: quota.per_minute,
            remaining: 0,
            reset_after: Duration::from_micros(tat - now),
            retry_after: Some(Duration::from_micros(allow_at - now)),
        };
        return (decision, None);
    }
    let remaining = (capacity - (new_tat - now)) / t;
    let decision = Decision {
        allowed: true,
        limit: quota.per_minute,
        remaining: remaining.min(u64::from(u32::MAX)) as u32,
        reset_after: Duration::from_micros(new_tat - now),
        retry_after: None,
    };
    (decision, Some(new_tat))
}

/// Looks at a bucket without spending from it: `Some(wait)` when a request now would be
/// denied.
pub fn gcra_peek(tat: Option<u64>, now: u64, quota: Quota) -> Option<Duration> {
    let (decision, _) = gcra(tat, now, quota, 1);
    decision.retry_after
}

/// A rate-limit bucket: whose budget it counts. A value, so the in-process limiter keys its
/// map without making a string per request; Redis names it by its `Display` form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// An API key's budget: `rl:key:<id>`.
    Key(i64),
    /// A person's budget, for `/v1` calls with the session cookie: `rl:user:<id>`.
    User(i64),
    /// Failed authentications from one client network: `af:authfail:<network>`.
    AuthFailures(ClientNet),
}

/// The network a failed authentication is counted against: an IPv4 address, the /64 of an
/// IPv6 address (one subscriber's usual allocation), or unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientNet {
    V4(std::net::Ipv4Addr),
    V6Net([u16; 4]),
    Unknown,
}

impl std::fmt::Display for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bucket::Key(id) => write!(f, "rl:key:{id}"),
            Bucket::User(id) => write!(f, "rl:user:{id}"),
            Bucket::AuthFailures(ClientNet::V4(v4)) => write!(f, "af:authfail:{v4}"),
            Bucket::AuthFailures(ClientNet::V6Net([a, b, c, d])) => write!(f, "af:authfail:{a:x}:{b:x}:{c:x}:{d:x}::/64"),
            Bucket::AuthFailures(ClientNet::Unknown) => f.write_str("af:authfail:unknown"),
        }
    }
}

/// Buckets in this process's memory.
#[derive(Clone)]
pub struct LocalRateLimiter {
    buckets: Arc<DashMap<Bucket, AtomicU64>>,
    epoch: Instant,
    max_buckets: usize,
}

impl Default for LocalRateLimiter {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl LocalRateLimiter {
    /// A limiter holding at most `max_buckets` non-full buckets (full ones are dropped).
    pub fn new(max_buckets: usize) -> Self {
        Self { buckets: Arc::new(DashMap::new()), epoch: Instant::now(), max_buckets }
    }

    fn now_us(&self) -> u64 {
        // Starts at one hour so that a fresh bucket is never "in the past".
        3_600_000_000 + self.epoch.elapsed().as_micros() as u64
    }

    /// Spends from a bucket (synchronous: a map entry lock, no I/O).
    pub fn check_now(&self, key: Bucket, quota: Quota) -> Decision {
        let now = self.now_us();
        // A bucket in use: a shared lock of its shard and a compare-and-swap, so concurrent
        // requests of one key do not queue for the shard. (Counting the buckets takes every
        // shard's lock, so it is done only before adding one.)
        if let Some(tat) = self.buckets.get(&key) {
            return Self::step(&tat, now, quota);
        }
        if self.buckets.len() >= self.max_buckets {
            self.prune();
        }
        let tat = self.buckets.entry(key).or_insert_with(|| AtomicU64::new(now)).downgrade();
        Self::step(&tat, now, quota)
    }

    /// One GCRA step on a stored bucket, atomically: a step that lost a race with another is
    /// taken again on the value that won.
    fn step(tat: &AtomicU64, now: u64, quota: Quota) -> Decision {
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let (decision, new_tat) = gcra(Some(current), now, quota, 1);
            let Some(new_tat) = new_tat else { return decision };
            match tat.compare_exchange_weak(current, new_tat, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }

    /// `Some(wait)` if the bucket is empty.
    pub fn blocked_now(&self, key: Bucket, quota: Quota) -> Option<Duration> {
        let now = self.now_us();
        let tat = self.buckets.get(&key).map(|t| t.load(Ordering::Acquire));
        gcra_peek(tat, now, quota)
    }

    /// Drops full buckets (their state equals "never seen").
    pub fn prune(&self) {
        let now = self.now_us();
        self.buckets.retain(|_, tat| *tat.get_mut() > now);
    }

    /// Buckets currently held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q10: Quota = Quota { per_minute: 10 };

    fn run(tat: &mut Option<u64>, now: u64, quota: Quota) -> Decision {
        let (d, new) = gcra(*tat, now, quota, 1);
        if let Some(n) = new {
            *tat = Some(n);
        }
        d
    }

    #[test]
    fn exactly_the_budget_is_allowed_in_a_burst_and_remaining_counts_down() {
        let mut tat = None;
        let now = 1_000_000_000;
        for expected_remaining in (0..10).rev() {
            let d = run(&mut tat, now, Q10);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            assert_eq!(d.limit, 10);
        }
        let denied = run(&mut tat, now, Q10);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.retry_after, Some(Duration::from_secs(6)), "one request refills every 6 s");
        assert_eq!(denied.reset_after, Duration::from_secs(60));
    }

    #[test]
    fn the_bucket_refills_at_the_sustained_rate() {
        let mut tat = None;
        let start = 1_000_000_000;
        for _ in 0..10 {
            assert!(run(&mut tat, start, Q10).allowed);
        }
        assert!(!run(&mut tat, start + 5_999_999, Q10).allowed);
        let d = run(&mut tat, start + 6_000_000, Q10);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        // After a full minute of silence the whole budget is back.
        let d = run(&mut tat, start + 6_000_000 + 60_000_000, Q10);
        assert_eq!(d.remaining, 9);
    }

    #[test]
    fn denied_requests_do_not_spend() {
        let mut tat = None;
        let now = 5_000_000_000;
        for _ in 0..10 {
            run(&mut tat, now, Q10);
        }
        let before = tat;
        for _ in 0..100 {
            assert!(!run(&mut tat, now, Q10).allowed);
        }
        assert_eq!(tat, before);
    }

    #[test]
    fn peek_does_not_spend() {
        let limiter = LocalRateLimiter::default();
        let q = Quota { per_minute: 2 };
        let ip = Bucket::AuthFailures(ClientNet::V4("203.0.113.7".parse().expect("ip")));
        assert_eq!(limiter.blocked_now(ip, q), None);
        assert!(limiter.check_now(ip, q).allowed);
        assert_eq!(limiter.blocked_now(ip, q), None);
        assert!(limiter.check_now(ip, q).allowed);
        assert!(limiter.blocked_now(ip, q).is_some());
        assert_eq!(limiter.blocked_now(Bucket::AuthFailures(ClientNet::Unknown), q), None, "another bucket");
    }

    #[test]
    fn a_concurrent_burst_never_exceeds_the_budget() {
        let limiter = LocalRateLimiter::default();
        let quota = Quota { per_minute: 100 };
        let allowed = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..64 {
                        if limiter.check_now(Bucket::Key(7), quota).allowed {
                            allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.into_inner(), 100);
    }

    #[test]
    fn huge_budgets_do_not_divide_by_zero() {
        let q = Quota { per_minute: u32::MAX };
        let (d, _) = gcra(None, 1_000_000, q, 1);
        assert!(d.allowed);
        assert!(q.emission_interval_us() >= 1);
    }

    #[test]
    fn buckets_are_named_as_redis_has_always_known_them() {
        // Instances of different versions share Redis during a rolling upgrade.
        assert_eq!(Bucket::Key(42).to_string(), "rl:key:42");
        assert_eq!(Bucket::User(7).to_string(), "rl:user:7");
        assert_eq!(Bucket::AuthFailures(ClientNet::V4("203.0.113.7".parse().expect("ip"))).to_string(), "af:authfail:203.0.113.7");
        assert_eq!(Bucket::AuthFailures(ClientNet::V6Net([0x2001, 0xdb8, 1, 0xa])).to_string(), "af:authfail:2001:db8:1:a::/64");
        assert_eq!(Bucket::AuthFailures(ClientNet::Unknown).to_string(), "af:authfail:unknown");
        assert_ne!(Bucket::Key(1), Bucket::User(1));
    }

    #[test]
    fn buckets_are_bounded() {
        let limiter = LocalRateLimiter::new(100);
        for i in 0..1000 {
            limiter.check_now(Bucket::Key(i), Quota { per_minute: 1_000_000 });
        }
        assert!(limiter.len() <= 1000);
        limiter.prune();
        assert!(limiter.len() < 1000, "full buckets are dropped");
    }
}
