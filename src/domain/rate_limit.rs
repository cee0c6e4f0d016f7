//! Rate limiting with GCRA (the generic cell rate algorithm, a token bucket held as one
//! number: the theoretical arrival time). A limit of N per minute allows a burst of N and
//! refills one request every 60/N seconds. The in-process limiter lives here; the Redis one
//! runs the same arithmetic in a server-side script.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use dashmap::DashMap;

/// A budget: `per_minute` requests a minute, all of them usable in a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// Why a limiter could not decide (the caller falls back, it never fails open silently).
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct RateLimitError(pub String);

/// A rate limiter: in process, or shared through Redis.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Spends `cost` from the bucket `key` if it allows.
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError>;
    /// Whether the bucket is empty right now, without spending.
    async fn blocked(&self, key: &str, quota: Quota) -> Result<Option<Duration>, RateLimitError>;
}

/// Buckets in this process's memory.
#[derive(Clone)]
pub struct LocalRateLimiter {
    buckets: Arc<DashMap<String, u64>>,
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
    pub fn check_now(&self, key: &str, quota: Quota) -> Decision {
        let now = self.now_us();
        if self.buckets.len() >= self.max_buckets && !self.buckets.contains_key(key) {
            self.prune();
        }
        let mut entry = self.buckets.entry(key.to_owned()).or_insert(now);
        let current = *entry;
        let (decision, new_tat) = gcra(Some(current), now, quota, 1);
        if let Some(tat) = new_tat {
            *entry = tat;
        }
        decision
    }

    /// `Some(wait)` if the bucket is empty.
    pub fn blocked_now(&self, key: &str, quota: Quota) -> Option<Duration> {
        let now = self.now_us();
        let tat = self.buckets.get(key).map(|t| *t);
        gcra_peek(tat, now, quota)
    }

    /// Drops full buckets (their state equals "never seen").
    pub fn prune(&self) {
        let now = self.now_us();
        self.buckets.retain(|_, tat| *tat > now);
    }

    /// Buckets currently held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        Ok(self.check_now(key, quota))
    }

    async fn blocked(&self, key: &str, quota: Quota) -> Result<Option<Duration>, RateLimitError> {
        Ok(self.blocked_now(key, quota))
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
        assert_eq!(limiter.blocked_now("ip", q), None);
        assert!(limiter.check_now("ip", q).allowed);
        assert_eq!(limiter.blocked_now("ip", q), None);
        assert!(limiter.check_now("ip", q).allowed);
        assert!(limiter.blocked_now("ip", q).is_some());
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
                        if limiter.check_now("key", quota).allowed {
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
    fn buckets_are_bounded() {
        let limiter = LocalRateLimiter::new(100);
        for i in 0..1000 {
            limiter.check_now(&format!("ip-{i}"), Quota { per_minute: 1_000_000 });
        }
        assert!(limiter.len() <= 1000);
        limiter.prune();
        assert!(limiter.len() < 1000, "full buckets are dropped");
    }
}
