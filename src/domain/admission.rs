//! Admission to `/v1`: the one decision every request goes through — whether its
//! credential works, and whether its budget allows it. The middleware only reads the
//! credential off the request and translates the answer into HTTP.
//!
//! The rules, in order of cost:
//! - a malformed key (shape or checksum) is refused at once: no I/O, never counted;
//! - a key this instance knows — seen working (cached) or refused for good (unknown,
//!   revoked, expired) — is answered from what is known: valid keys spend their budget,
//!   the others get `Unauthorized`. Known keys are never throttled and never counted;
//! - only a well-formed key never seen before costs a database read. Those are what the
//!   failed-authentication throttle counts (when they turn out unknown), and past its budget
//!   only they are refused with `Throttled`, before the read.
//! - a session (its user id read by the middleware) spends its user's budget.

use std::net::IpAddr;

use crate::{
    domain::{
        api_keys::{ApiKeyHash, ApiKeyService, AuthFailure, KeyPrincipal, Known, last_used::UseSite},
        auth_cache::{FinalRefusal, Generations, bucket_of},
        limits::Limits,
        rate_limit::{Bucket, ClientNet, Decision, Quota},
        users::UserService,
    },
    observe::{self, AuthOutcome, CacheLookup, Credential},
    permissions::Permissions,
};

/// Whose budget a request spends, as the `RateLimit-Policy` header names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    PerKey,
    PerUser,
    AuthFailures,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::PerKey => "per-key",
            Policy::PerUser => "per-user",
            Policy::AuthFailures => "auth-failures",
        }
    }
}

/// An admitted caller.
#[derive(Clone, Debug)]
pub struct Admitted {
    pub user_id: i64,
    /// The key, when the caller used one.
    pub key: Option<KeyPrincipal>,
    pub permissions: Permissions,
    pub decision: Decision,
    pub policy: Policy,
}

/// Why a request is not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The credential is missing or unusable as sent (401); the message is safe to show.
    Unauthorized(&'static str),
    /// A well-formed key that does not work (401 [`INVALID_KEY`]); why is for metrics and
    /// logs, never for the answer.
    InvalidKey(AuthOutcome),
    /// The session's person is disabled (401 [`SESSION_ENDED`]).
    SessionEnded,
    /// A never-seen key turned out unknown (401): it was counted against the address's
    /// failed-authentication budget, which `Decision` describes.
    UnknownKey(Decision),
    /// Too many unknown keys from this address (429).
    Throttled(Decision),
    /// The caller's budget is spent (429).
    RateLimited(Decision, Policy),
    /// The session store cannot answer (503): nobody is let in unverified.
    Unavailable,
    /// The database failed (503 when unavailable, else 500): nobody is let in unverified.
    Database(sea_orm::DbErr),
}

impl Refusal {
    /// How the authentication ended, for a `credential` of this kind.
    pub fn outcome(&self, credential: Credential) -> AuthOutcome {
        match self {
            Self::Unauthorized(_) if credential == Credential::Key => AuthOutcome::Malformed,
            Self::Unauthorized(_) | Self::UnknownKey(_) => AuthOutcome::Unknown,
            Self::InvalidKey(outcome) => *outcome,
            Self::SessionEnded => AuthOutcome::Disabled,
            Self::Throttled(_) => AuthOutcome::Throttled,
            Self::RateLimited(..) => AuthOutcome::RateLimited,
            Self::Unavailable | Self::Database(_) => AuthOutcome::Error,
        }
    }
}

/// The single message for keys that are well-formed but do not work (unknown, revoked,
/// expired, disabled owner): the answer never tells which.
pub const INVALID_KEY: &str = "Invalid API key. Check the key, or create a new one under Settings > API Keys.";
/// For a session whose user was disabled.
pub const SESSION_ENDED: &str = "Your session has ended. Sign in again.";

/// The throttle bucket of a client address: IPv4 addresses one by one, IPv6 by /64 (one
/// host's usual share, so hopping within it gains nothing).
pub fn failure_bucket(ip: Option<IpAddr>) -> Bucket {
    Bucket::AuthFailures(match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => ClientNet::V4(v4),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            ClientNet::V6Net([s[0], s[1], s[2], s[3]])
        }
        None => ClientNet::Unknown,
    })
}

/// The admission service.
#[derive(Clone)]
pub struct Admission {
    keys: ApiKeyService,
    users: UserService,
    limits: Limits,
    generations: std::sync::Arc<Generations>,
    default_quota: Quota,
    /// The most any key may spend (`WJ_MAX_RATE_LIMIT_PER_MINUTE`), even one whose stored
    /// limit was set before the maximum was lowered.
    max_per_minute: u32,
}

impl Admission {
    pub fn new(
        keys: ApiKeyService,
        users: UserService,
        limits: Limits,
        generations: std::sync::Arc<Generations>,
        default_per_minute: u32,
        max_per_minute: u32,
    ) -> Self {
        Self { keys, users, limits, generations, default_quota: Quota { per_minute: default_per_minute }, max_per_minute }
    }

    fn budget(&self, key: &KeyPrincipal) -> (Bucket, Quota) {
        let quota =
            key.rate_limit_per_minute.map_or(self.default_quota, |per_minute| Quota { per_minute: per_minute.min(self.max_per_minute) });
        (Bucket::Key(key.key_id), quota)
    }

    fn admitted(key: KeyPrincipal, decision: Decision) -> Result<Admitted, Refusal> {
        if !decision.allowed {
            return Err(Refusal::RateLimited(decision, Policy::PerKey));
        }
        Ok(Admitted { user_id: key.user_id, permissions: key.permissions, key: Some(key), decision, policy: Policy::PerKey })
    }

    /// Admits a request that presents an API key, from the client at `site`.
    pub async fn admit_key(&self, token: &str, site: UseSite<'_>) -> Result<Admitted, Refusal> {
        let client = site.ip;
        let hash = match ApiKeyHash::of_valid(token) {
            Ok(hash) => hash,
            Err(reason) => {
                tracing::info!(%reason, "malformed API key refused");
                return Err(Refusal::Unauthorized(INVALID_KEY));
            }
        };
        let bucket = bucket_of(hash.as_bytes());
        // `counted`: the throttle bucket, for a never-seen key (what the throttle counts).
        let (spent, generation, counted) = match self.keys.known(&hash) {
            Known::Refused(reason) => {
                observe::auth_cache_lookup(CacheLookup::Hit);
                tracing::info!(?reason, "API key refused (known)");
                return Err(Refusal::InvalidKey(match reason {
                    FinalRefusal::Unknown => AuthOutcome::Unknown,
                    FinalRefusal::Revoked => AuthOutcome::Revoked,
                    FinalRefusal::Expired => AuthOutcome::Expired,
                }));
            }
            Known::Valid(hint) => {
                // Fast path: one check spends the budget and yields the generation.
                let (rate_key, quota) = self.budget(&hint);
                let gate = self.limits.gate(Some((rate_key, quota)), bucket, None, &self.generations).await;
                if let Some(key) = gate.generation.and_then(|g| self.keys.cached(&hash, g, site)) {
                    observe::auth_cache_lookup(CacheLookup::Hit);
                    let decision = gate.decision.unwrap_or_else(|| self.limits.local_check(rate_key, quota));
                    return Self::admitted(key, decision);
                }
                // With the cache off (`WJ_AUTH_CACHE`), every lookup is a database read.
                observe::auth_cache_lookup(if self.keys.serves_cached() { CacheLookup::Stale } else { CacheLookup::Miss });
                (gate.decision, gate.generation, None)
            }
            Known::Never => {
                observe::auth_cache_lookup(CacheLookup::Miss);
                let throttle = failure_bucket(client);
                let gate = self.limits.gate(None, bucket, Some(throttle), &self.generations).await;
                if let Some(wait) = gate.throttled {
                    let decision = Decision {
                        allowed: false,
                        limit: self.limits.failure_quota.per_minute,
                        remaining: 0,
                        reset_after: wait,
                        retry_after: Some(wait),
                    };
                    return Err(Refusal::Throttled(decision));
                }
                (None, gate.generation, Some(throttle))
            }
        };
        // The database decides; the cache is filled under the generation read above.
        let key = match self.keys.lookup_and_cache(&hash, generation, site).await {
            Ok(key) => key,
            Err(AuthFailure::Unavailable(error)) => return Err(Refusal::Database(error)),
            Err(failure) => {
                tracing::info!(reason = %failure, "API key refused");
                if let (Some(throttle), AuthFailure::Unknown) = (&counted, &failure) {
                    return Err(Refusal::UnknownKey(self.limits.spend_failure(*throttle).await));
                }
                return Err(Refusal::InvalidKey(match failure {
                    AuthFailure::Revoked => AuthOutcome::Revoked,
                    AuthFailure::Expired => AuthOutcome::Expired,
                    AuthFailure::OwnerDisabled => AuthOutcome::Disabled,
                    AuthFailure::Malformed(_) => AuthOutcome::Malformed,
                    AuthFailure::Unknown | AuthFailure::Unavailable(_) => AuthOutcome::Unknown,
                }));
            }
        };
        let (rate_key, quota) = self.budget(&key);
        let decision = match spent {
            Some(decision) => decision,
            None => self.limits.check(rate_key, quota).await,
        };
        Self::admitted(key, decision)
    }

    /// Admits a request authenticated by the session of `user_id`.
    pub async fn admit_session(&self, user_id: i64) -> Result<Admitted, Refusal> {
        match self.users.is_enabled(user_id).await {
            Ok(true) => {}
            Ok(false) => return Err(Refusal::SessionEnded),
            Err(error) => return Err(Refusal::Database(error)),
        }
        let decision = self.limits.check(Bucket::User(user_id), self.default_quota).await;
        if !decision.allowed {
            return Err(Refusal::RateLimited(decision, Policy::PerUser));
        }
        Ok(Admitted { user_id, key: None, permissions: Permissions::All, decision, policy: Policy::PerUser })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_per_ipv4_address_and_per_ipv6_slash_64() {
        let bucket = |s: &str| failure_bucket(Some(s.parse().expect("ip")));
        assert_eq!(bucket("203.0.113.7").to_string(), "af:authfail:203.0.113.7");
        assert_ne!(bucket("203.0.113.7"), bucket("203.0.113.8"));
        assert_eq!(bucket("2001:db8:1:2:aaaa::1"), bucket("2001:db8:1:2:ffff:eeee:dddd:cccc"), "one /64 is one address");
        assert_ne!(bucket("2001:db8:1:2::1"), bucket("2001:db8:1:3::1"));
        assert_eq!(bucket("::ffff:203.0.113.7"), bucket("203.0.113.7"), "IPv4-mapped addresses count as IPv4");
        assert_eq!(failure_bucket(None).to_string(), "af:authfail:unknown");
        assert_eq!(bucket("2001:db8:1:2:aaaa::1").to_string(), "af:authfail:2001:db8:1:2::/64");
    }
}
