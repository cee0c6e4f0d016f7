//! What a creator may hand on to a new key: no key outgrows the grant it was made with.
//!
//! A [`Grant`] is the creator's own reach — a key's permissions, expiry and effective rate
//! limit, or a signed-in user's (everything, no expiry, up to the operator's maximum).
//! [`Grant::narrow`] turns what was asked for into the terms of the new key: omitted fields
//! are inherited, fields beyond the grant are refused with a [`GrantError`] naming the field.
//! Every door (portal, `/v1`) creates keys through this one check.

use chrono::{DateTime, Utc};

use crate::permissions::Permissions;

/// What a new key asks for; `None` means "inherit from the creator".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewKeyOptions {
    pub permissions: Option<Permissions>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_minute: Option<u32>,
}

/// The terms a new key gets after [`Grant::narrow`]: never more than its creator's grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyTerms {
    pub permissions: Permissions,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// `None`: the server's default limit.
    pub rate_limit_per_minute: Option<u32>,
}

/// The operator's rate limits (`WJ_RATE_LIMIT_PER_MINUTE`, `WJ_MAX_RATE_LIMIT_PER_MINUTE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// What a key without a limit of its own gets.
    pub default_per_minute: u32,
    /// The most any key may be given (at least the default).
    pub max_per_minute: u32,
}

/// Where a grant's rate-limit ceiling comes from (for the error message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateCeiling {
    /// The creating key's own effective limit.
    CreatorsLimit,
    /// The operator's maximum.
    ServerMaximum,
}

/// A creator's reach: the most a key it creates may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    permissions: Permissions,
    /// The latest a new key may expire; `None`: no bound.
    expires_at: Option<DateTime<Utc>>,
    /// The highest rate limit a new key may be given.
    max_rate_limit: u32,
    ceiling: RateCeiling,
    /// The limit a new key gets when it asks for none (`None`: the server default).
    inherited_rate_limit: Option<u32>,
}

/// Why a new key was refused: it asked for more than its creator's grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error(
        "`permissions` asks for more than the creating key has itself ({}); a key can only hand on its own permissions",
        .allowed.summary()
    )]
    Permissions { allowed: Permissions },
    #[error(
        "`expires_at` is later than the creating key's own expiry ({}); a key cannot outlive the key that made it (omit `expires_at` to inherit that expiry)",
        .latest.format("%Y-%m-%dT%H:%M:%SZ")
    )]
    ExpiresAt { latest: DateTime<Utc> },
    #[error("`rate_limit_per_minute` may be at most {max} requests a minute, {}", match .ceiling {
        RateCeiling::CreatorsLimit => "the creating key's own limit",
        RateCeiling::ServerMaximum => "the most this server allows any key",
    })]
    RateLimit { max: u32, ceiling: RateCeiling },
}

impl GrantError {
    /// The request field at fault, as the API names it.
    pub fn field(&self) -> &'static str {
        match self {
            GrantError::Permissions { .. } => "permissions",
            GrantError::ExpiresAt { .. } => "expires_at",
            GrantError::RateLimit { .. } => "rate_limit_per_minute",
        }
    }
}

impl Grant {
    /// A signed-in user's own grant (the session cookie, the portal): every permission, no
    /// expiry bound, a rate limit up to the operator's maximum (the server default if omitted).
    pub fn user(limits: RateLimits) -> Self {
        Self {
            permissions: Permissions::All,
            expires_at: None,
            max_rate_limit: limits.max_per_minute,
            ceiling: RateCeiling::ServerMaximum,
            inherited_rate_limit: None,
        }
    }

    /// An API key's grant: its permissions, its expiry, and its effective rate limit (its
    /// own, or the server default), never above the operator's maximum.
    pub fn key(
        permissions: Permissions,
        expires_at: Option<DateTime<Utc>>,
        rate_limit_per_minute: Option<u32>,
        limits: RateLimits,
    ) -> Self {
        let own = rate_limit_per_minute.unwrap_or(limits.default_per_minute);
        let (max_rate_limit, ceiling) = if own <= limits.max_per_minute {
            (own, RateCeiling::CreatorsLimit)
        } else {
            // A key made before the maximum was lowered hands on no more than the maximum.
            (limits.max_per_minute, RateCeiling::ServerMaximum)
        };
        Self {
            permissions,
            expires_at,
            max_rate_limit,
            ceiling,
            // A key without a limit of its own hands on "the server default", as it has.
            inherited_rate_limit: rate_limit_per_minute.map(|r| r.min(max_rate_limit)),
        }
    }

    /// The terms of a new key asking for `asked`: omitted fields are inherited from this
    /// grant; a field beyond it is refused, naming the field (permissions first, then
    /// expiry, then rate limit).
    pub fn narrow(&self, asked: NewKeyOptions) -> Result<KeyTerms, GrantError> {
        let permissions = asked.permissions.unwrap_or(self.permissions);
        if !self.permissions.includes(permissions) {
            return Err(GrantError::Permissions { allowed: self.permissions });
        }
        let expires_at = match (asked.expires_at, self.expires_at) {
            (None, inherited) => inherited,
            (Some(asked), Some(latest)) if asked > latest => return Err(GrantError::ExpiresAt { latest }),
            (Some(asked), _) => Some(asked),
        };
        let rate_limit_per_minute = match asked.rate_limit_per_minute {
            None => self.inherited_rate_limit,
            Some(asked) if asked > self.max_rate_limit => {
                return Err(GrantError::RateLimit { max: self.max_rate_limit, ceiling: self.ceiling });
            }
            Some(asked) => Some(asked),
        };
        Ok(KeyTerms { permissions, expires_at, rate_limit_per_minute })
    }

    /// The most rate limit a new key may be given under this grant.
    pub fn max_rate_limit(&self) -> u32 {
        self.max_rate_limit
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::permissions::Permission;

    const LIMITS: RateLimits = RateLimits { default_per_minute: 600, max_per_minute: 10_000 };

    fn ask(permissions: Option<Permissions>, expires_at: Option<DateTime<Utc>>, rate: Option<u32>) -> NewKeyOptions {
        NewKeyOptions { permissions, expires_at, rate_limit_per_minute: rate }
    }

    fn writer() -> Permissions {
        Permissions::restricted([Permission::KeysWrite])
    }

    #[test]
    fn a_key_hands_on_only_its_own_permissions_and_inherits_them_when_omitted() {
        let grant = Grant::key(writer(), None, None, LIMITS);
        assert_eq!(grant.narrow(ask(None, None, None)).expect("inherits").permissions, writer());
        assert_eq!(grant.narrow(ask(Some(writer()), None, None)).expect("same").permissions, writer());
        assert_eq!(
            grant.narrow(ask(Some(Permissions::restricted([])), None, None)).expect("fewer").permissions,
            Permissions::restricted([])
        );
        let more = grant.narrow(ask(Some(Permissions::restricted([Permission::Inference])), None, None)).unwrap_err();
        assert_eq!(more.field(), "permissions");
        assert!(more.to_string().contains("keys:write"), "{more}");
        assert_eq!(grant.narrow(ask(Some(Permissions::All), None, None)).unwrap_err().field(), "permissions");
    }

    #[test]
    fn a_key_cannot_outlive_its_creator_and_inherits_its_expiry() {
        let now = Utc::now();
        let hour = now + Duration::hours(1);
        let grant = Grant::key(writer(), Some(hour), None, LIMITS);
        assert_eq!(grant.narrow(ask(None, None, None)).expect("inherits").expires_at, Some(hour), "omitted: inherits the hour");
        assert_eq!(grant.narrow(ask(None, Some(hour), None)).expect("same").expires_at, Some(hour));
        let earlier = now + Duration::minutes(5);
        assert_eq!(grant.narrow(ask(None, Some(earlier), None)).expect("earlier").expires_at, Some(earlier));
        let later = grant.narrow(ask(None, Some(hour + Duration::seconds(1)), None)).unwrap_err();
        assert_eq!(later, GrantError::ExpiresAt { latest: hour });
        assert_eq!(later.field(), "expires_at");
        // A creator that never expires bounds nothing.
        let forever = Grant::key(writer(), None, None, LIMITS);
        assert_eq!(forever.narrow(ask(None, None, None)).expect("never").expires_at, None);
        assert!(forever.narrow(ask(None, Some(now + Duration::days(3000)), None)).is_ok());
    }

    #[test]
    fn a_key_hands_on_at_most_its_own_rate_limit_and_inherits_it() {
        let one = Grant::key(writer(), None, Some(1), LIMITS);
        assert_eq!(one.narrow(ask(None, None, None)).expect("inherits").rate_limit_per_minute, Some(1));
        assert_eq!(one.narrow(ask(None, None, Some(1))).expect("same").rate_limit_per_minute, Some(1));
        let err = one.narrow(ask(None, None, Some(60_000_000))).unwrap_err();
        assert_eq!(err, GrantError::RateLimit { max: 1, ceiling: RateCeiling::CreatorsLimit });
        assert_eq!(err.field(), "rate_limit_per_minute");
        // A key on the server default may hand on up to the default, and "the default" when omitted.
        let default = Grant::key(writer(), None, None, LIMITS);
        assert_eq!(default.narrow(ask(None, None, None)).expect("default").rate_limit_per_minute, None);
        assert!(default.narrow(ask(None, None, Some(600))).is_ok());
        assert_eq!(default.narrow(ask(None, None, Some(601))).unwrap_err().field(), "rate_limit_per_minute");
    }

    #[test]
    fn no_key_gets_more_than_the_operator_maximum() {
        // A key made with 50,000 before the maximum was lowered to 10,000.
        let old = Grant::key(Permissions::All, None, Some(50_000), LIMITS);
        assert_eq!(old.max_rate_limit(), 10_000);
        assert_eq!(old.narrow(ask(None, None, None)).expect("capped").rate_limit_per_minute, Some(10_000));
        assert_eq!(
            old.narrow(ask(None, None, Some(10_001))).unwrap_err(),
            GrantError::RateLimit { max: 10_000, ceiling: RateCeiling::ServerMaximum }
        );
    }

    #[test]
    fn a_signed_in_user_has_everything_up_to_the_maximum() {
        let user = Grant::user(LIMITS);
        let terms = user.narrow(ask(None, None, None)).expect("defaults");
        assert_eq!(terms, KeyTerms { permissions: Permissions::All, expires_at: None, rate_limit_per_minute: None });
        let far = Utc::now() + Duration::days(3000);
        assert_eq!(user.narrow(ask(None, Some(far), Some(10_000))).expect("at the maximum").rate_limit_per_minute, Some(10_000));
        let err = user.narrow(ask(None, None, Some(10_001))).unwrap_err();
        assert_eq!(err, GrantError::RateLimit { max: 10_000, ceiling: RateCeiling::ServerMaximum });
        assert!(err.to_string().contains("10000"), "{err}");
    }

    #[test]
    fn permissions_are_checked_before_expiry_and_rate_limit() {
        let grant = Grant::key(writer(), Some(Utc::now() + Duration::hours(1)), Some(1), LIMITS);
        let err = grant.narrow(ask(Some(Permissions::All), Some(Utc::now() + Duration::days(9)), Some(9))).unwrap_err();
        assert_eq!(err.field(), "permissions");
        let err = grant.narrow(ask(None, Some(Utc::now() + Duration::days(9)), Some(9))).unwrap_err();
        assert_eq!(err.field(), "expires_at");
    }
}
