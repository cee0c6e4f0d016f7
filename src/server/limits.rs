//! The limiters the server uses: a budget per key or user, and the failed-authentication
//! throttle per client IP.

use std::{sync::Arc, time::Duration};

use crate::domain::rate_limit::{Decision, LocalRateLimiter, Quota, RateLimiter};

/// Request budgets and the failed-authentication throttle.
#[derive(Clone)]
pub struct Limits {
    shared: Option<Arc<dyn RateLimiter>>,
    local: LocalRateLimiter,
    pub failure_quota: Quota,
}

impl Limits {
    /// In-process limiting only.
    pub fn local(failures_per_minute: u32) -> Self {
        Self { shared: None, local: LocalRateLimiter::default(), failure_quota: Quota { per_minute: failures_per_minute } }
    }

    /// Spends from `bucket`; a shared limiter that fails falls back to this instance's own.
    pub async fn check(&self, bucket: &str, quota: Quota) -> Decision {
        if let Some(shared) = &self.shared {
            match shared.check(bucket, quota).await {
                Ok(decision) => return decision,
                Err(error) => tracing::warn!(%error, "shared rate limiter unavailable: limiting per instance"),
            }
        }
        self.local.check_now(bucket, quota)
    }

    /// Whether `bucket` is empty (without spending).
    pub async fn blocked(&self, bucket: &str, quota: Quota) -> Option<Duration> {
        if let Some(shared) = &self.shared {
            match shared.blocked(bucket, quota).await {
                Ok(wait) => return wait,
                Err(error) => tracing::warn!(%error, "shared rate limiter unavailable: limiting per instance"),
            }
        }
        self.local.blocked_now(bucket, quota)
    }

    /// Drops full buckets from memory.
    pub fn prune(&self) {
        self.local.prune();
    }
}
