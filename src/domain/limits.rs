//! The limiters the server uses: a budget per key or user, and the failed-authentication
//! throttle per client address — shared through Redis when configured, per instance
//! otherwise (and whenever Redis cannot be reached).

use std::{sync::Arc, time::Duration};

use crate::domain::{
    auth_cache::Generations,
    rate_limit::{Bucket, Decision, LocalRateLimiter, Quota},
    shared_state::SharedState,
};

/// What one gate check found.
#[derive(Clone, Copy, Debug)]
pub struct GateOutcome {
    pub throttled: Option<Duration>,
    pub decision: Option<Decision>,
    /// `None` when the generation cannot be known (Redis down, a revocation in progress):
    /// no cache may be used.
    pub generation: Option<u64>,
}

/// Request budgets and the failed-authentication throttle.
#[derive(Clone)]
pub struct Limits {
    shared: Option<Arc<SharedState>>,
    local: LocalRateLimiter,
    pub failure_quota: Quota,
}

impl Limits {
    pub fn new(shared: Option<Arc<SharedState>>, failures_per_minute: u32) -> Self {
        Self { shared, local: LocalRateLimiter::default(), failure_quota: Quota { per_minute: failures_per_minute } }
    }

    /// The throttle of `throttle` (when given), the budget (spent when `rate` is given) and
    /// the generation of `bucket`: one Redis round trip, or local state.
    pub async fn gate(
        &self,
        rate: Option<(Bucket, Quota)>,
        bucket: u8,
        throttle: Option<Bucket>,
        generations: &Generations,
    ) -> GateOutcome {
        if let Some(shared) = &self.shared {
            match shared.gate(rate, bucket, throttle.map(|t| (t, self.failure_quota))).await {
                Ok(gate) => {
                    let generation = generations.observe(bucket, gate.generation);
                    return GateOutcome { throttled: gate.throttled, decision: gate.decision, generation };
                }
                Err(error) => tracing::debug!(%error, "shared gate unavailable: deciding locally, no cache"),
            }
            let throttled = throttle.and_then(|t| self.local_blocked(t));
            return GateOutcome {
                throttled,
                decision: if throttled.is_some() { None } else { rate.map(|(key, quota)| self.local_check(key, quota)) },
                generation: None,
            };
        }
        let throttled = throttle.and_then(|t| self.local_blocked(t));
        if throttled.is_some() {
            return GateOutcome { throttled, decision: None, generation: None };
        }
        GateOutcome {
            throttled: None,
            decision: rate.map(|(key, quota)| self.local_check(key, quota)),
            generation: generations.local(bucket),
        }
    }

    /// Spends from a budget.
    pub async fn check(&self, key: Bucket, quota: Quota) -> Decision {
        if let Some(shared) = &self.shared {
            match shared.spend(key, quota).await {
                Ok(decision) => return decision,
                Err(error) => tracing::debug!(%error, "shared limiter unavailable: limiting per instance"),
            }
        }
        self.local_check(key, quota)
    }

    /// Spends from a budget in this instance only.
    pub fn local_check(&self, key: Bucket, quota: Quota) -> Decision {
        self.local.check_now(key, quota)
    }

    fn local_blocked(&self, throttle: Bucket) -> Option<Duration> {
        self.local.blocked_now(throttle, self.failure_quota)
    }

    /// Counts one failed authentication from an address.
    pub async fn spend_failure(&self, throttle: Bucket) -> Decision {
        if let Some(shared) = &self.shared
            && let Ok(decision) = shared.spend(throttle, self.failure_quota).await
        {
            return decision;
        }
        self.local.check_now(throttle, self.failure_quota)
    }

    /// Drops full buckets from memory.
    pub fn prune(&self) {
        self.local.prune();
    }
}
