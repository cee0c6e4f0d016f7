//! What a creator may hand on to a new key: no key outgrows the grant it was made with.
//!
//! A [`Grant`] is the creator's own reach — a key's permissions, expiry and effective rate
//! limit, or a signed-in user's (everything, no expiry, up to the operator's maximum).
//! [`Grant::narrow`] turns what was asked for into the terms of the new key: omitted fields
//! are inherited, fields beyond the grant are refused with a [`GrantError`] naming the field.
//! Every door (portal, `/v1`) creates keys through this one check.

use chrono::{DateTime, Utc};

use super::guardrails::ModelAllowList;
use crate::permissions::Permissions;

/// What a new key asks for; `None` means "inherit from the creator".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewKeyOptions {
    pub permissions: Option<Permissions>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_minute: Option<u32>,
    pub models: Option<ModelAllowList>,
    pub daily_token_limit: Option<u64>,
}

/// The terms a key has (after [`Grant::narrow`], never more than its creator's grant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTerms {
    pub permissions: Permissions,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// `None`: the server's default limit.
    pub rate_limit_per_minute: Option<u32>,
    /// `None`: every model.
    pub models: Option<ModelAllowList>,
    /// `None`: no daily token budget.
    pub daily_token_limit: Option<u64>,
}

/// What an edit sets: `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyChanges {
    pub permissions: Option<Permissions>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub rate_limit_per_minute: Option<Option<u32>>,
    pub models: Option<Option<ModelAllowList>>,
    pub daily_token_limit: Option<Option<u64>>,
}

impl KeyChanges {
    /// The names of the fields this edit sets, as the API names them.
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("permissions", self.permissions.is_some()),
            ("expires_at", self.expires_at.is_some()),
            ("rate_limit_per_minute", self.rate_limit_per_minute.is_some()),
            ("models", self.models.is_some()),
            ("daily_token_limit", self.daily_token_limit.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// `None`: every model.
    models: Option<ModelAllowList>,
    /// `None`: no budget bound.
    daily_token_limit: Option<u64>,
    permissions: Permissions,
    /// The latest a new key may expire; `None`: no bound.
    expires_at: Option<DateTime<Utc>>,
    /// The highest rate limit a new key may be given.
    max_rate_limit: u32,
    ceiling: RateCeiling,
    /// The limit a new key gets when it asks for none (`None`: the server default).
    inherited_rate_limit: Option<u32>,
    /// The server default (what clearing a key's own limit gives it).
    default_rate_limit: u32,
}

/// Why a new key (or an edit) was refused: it asked for more than its creator's grant, or
/// an edit would widen what only narrows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
    #[error("`models` asks for models the creating key may not use itself; a key can only hand on its own models ({})", .allowed.names().join(", "))]
    Models { allowed: ModelAllowList },
    #[error("`daily_token_limit` may be at most {max} tokens a day, the creating key's own budget")]
    DailyTokenLimit { max: u64 },
    #[error("an edit can only narrow a key's permissions; create a new key for more")]
    WiderPermissions,
    #[error("an edit can only move a key's expiry earlier; create a new key to keep using it for longer")]
    LaterExpiry,
}

impl GrantError {
    /// The request field at fault, as the API names it.
    pub fn field(&self) -> &'static str {
        match self {
            GrantError::Permissions { .. } => "permissions",
            GrantError::ExpiresAt { .. } => "expires_at",
            GrantError::RateLimit { .. } => "rate_limit_per_minute",
            GrantError::Models { .. } => "models",
            GrantError::DailyTokenLimit { .. } => "daily_token_limit",
            GrantError::WiderPermissions => "permissions",
            GrantError::LaterExpiry => "expires_at",
        }
    }
}

impl Grant {
    /// A signed-in user's own grant (the session cookie, the portal): every permission, no
    /// expiry bound, a rate limit up to the operator's maximum (the server default if omitted).
    pub fn user(limits: RateLimits) -> Self {
        Self {
            models: None,
            daily_token_limit: None,
            permissions: Permissions::All,
            expires_at: None,
            max_rate_limit: limits.max_per_minute,
            ceiling: RateCeiling::ServerMaximum,
            inherited_rate_limit: None,
            default_rate_limit: limits.default_per_minute,
        }
    }

    /// An API key's grant: its permissions, its expiry, its effective rate limit (its own,
    /// or the server default, never above the operator's maximum), its models and its
    /// daily token budget.
    pub fn key(terms: &KeyTerms, limits: RateLimits) -> Self {
        let KeyTerms { permissions, expires_at, rate_limit_per_minute, .. } = *terms;
        let own = rate_limit_per_minute.unwrap_or(limits.default_per_minute);
        let (max_rate_limit, ceiling) = if own <= limits.max_per_minute {
            (own, RateCeiling::CreatorsLimit)
        } else {
            // A key made before the maximum was lowered hands on no more than the maximum.
            (limits.max_per_minute, RateCeiling::ServerMaximum)
        };
        Self {
            models: terms.models.clone(),
            daily_token_limit: terms.daily_token_limit,
            permissions,
            expires_at,
            max_rate_limit,
            ceiling,
            // A key without a limit of its own hands on "the server default", as it has.
            inherited_rate_limit: rate_limit_per_minute.map(|r| r.min(max_rate_limit)),
            default_rate_limit: limits.default_per_minute,
        }
    }

    /// The terms of a new key asking for `asked`: omitted fields are inherited from this
    /// grant; a field beyond it is refused, naming the field (permissions first, then
    /// expiry, rate limit, models, budget).
    pub fn narrow(&self, asked: NewKeyOptions) -> Result<KeyTerms, GrantError> {
        let permissions = asked.permissions.unwrap_or(self.permissions);
        self.check_permissions(permissions)?;
        let expires_at = match asked.expires_at {
            None => self.expires_at,
            Some(asked) => Some(self.check_expiry(asked)?),
        };
        let rate_limit_per_minute = match asked.rate_limit_per_minute {
            None => self.inherited_rate_limit,
            Some(asked) => Some(self.check_rate_limit(asked)?),
        };
        let models = match asked.models {
            None => self.models.clone(),
            Some(asked) => Some(self.check_models(asked)?),
        };
        let daily_token_limit = match asked.daily_token_limit {
            None => self.daily_token_limit,
            Some(asked) => Some(self.check_daily_token_limit(asked)?),
        };
        Ok(KeyTerms { permissions, expires_at, rate_limit_per_minute, models, daily_token_limit })
    }

    /// The terms of a key after `changes`, made by the holder of this grant: every field set
    /// within the grant; permissions only narrowed and the expiry only moved earlier (an
    /// edit never widens those two); the rest — rate limit, models, budget — may move either
    /// way within the grant. Clearing a field asks for what "none" means: the server's
    /// default rate limit, every model, no budget.
    pub fn edit(&self, current: &KeyTerms, changes: KeyChanges) -> Result<KeyTerms, GrantError> {
        let mut terms = current.clone();
        if let Some(permissions) = changes.permissions {
            if !current.permissions.includes(permissions) {
                return Err(GrantError::WiderPermissions);
            }
            self.check_permissions(permissions)?;
            terms.permissions = permissions;
        }
        if let Some(expires_at) = changes.expires_at {
            terms.expires_at = match (expires_at, current.expires_at) {
                (None, None) => None,
                (None, Some(_)) => return Err(GrantError::LaterExpiry),
                (Some(asked), Some(now)) if asked > now => return Err(GrantError::LaterExpiry),
                (Some(asked), _) => Some(self.check_expiry(asked)?),
            };
        }
        if let Some(rate_limit) = changes.rate_limit_per_minute {
            terms.rate_limit_per_minute = match rate_limit {
                None => {
                    self.check_rate_limit(self.default_rate_limit)?;
                    None
                }
                Some(asked) => Some(self.check_rate_limit(asked)?),
            };
        }
        if let Some(models) = changes.models {
            terms.models = match models {
                None => match &self.models {
                    None => None,
                    Some(allowed) => return Err(GrantError::Models { allowed: allowed.clone() }),
                },
                Some(asked) => Some(self.check_models(asked)?),
            };
        }
        if let Some(budget) = changes.daily_token_limit {
            terms.daily_token_limit = match budget {
                None => match self.daily_token_limit {
                    None => None,
                    Some(max) => return Err(GrantError::DailyTokenLimit { max }),
                },
                Some(asked) => Some(self.check_daily_token_limit(asked)?),
            };
        }
        Ok(terms)
    }

    fn check_permissions(&self, asked: Permissions) -> Result<(), GrantError> {
        if self.permissions.includes(asked) { Ok(()) } else { Err(GrantError::Permissions { allowed: self.permissions }) }
    }

    fn check_expiry(&self, asked: DateTime<Utc>) -> Result<DateTime<Utc>, GrantError> {
        match self.expires_at {
            Some(latest) if asked > latest => Err(GrantError::ExpiresAt { latest }),
            _ => Ok(asked),
        }
    }

    fn check_rate_limit(&self, asked: u32) -> Result<u32, GrantError> {
        if asked > self.max_rate_limit {
            return Err(GrantError::RateLimit { max: self.max_rate_limit, ceiling: self.ceiling });
        }
        Ok(asked)
    }

    fn check_models(&self, asked: ModelAllowList) -> Result<ModelAllowList, GrantError> {
        match &self.models {
            Some(allowed) if !allowed.includes(&asked) => Err(GrantError::Models { allowed: allowed.clone() }),
            _ => Ok(asked),
        }
    }

    fn check_daily_token_limit(&self, asked: u64) -> Result<u64, GrantError> {
        match self.daily_token_limit {
            Some(max) if asked > max => Err(GrantError::DailyTokenLimit { max }),
            _ => Ok(asked),
        }
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
        NewKeyOptions { permissions, expires_at, rate_limit_per_minute: rate, ..Default::default() }
    }

    fn terms(permissions: Permissions, expires_at: Option<DateTime<Utc>>, rate: Option<u32>) -> KeyTerms {
        KeyTerms { permissions, expires_at, rate_limit_per_minute: rate, models: None, daily_token_limit: None }
    }

    fn models(names: &[&str]) -> ModelAllowList {
        ModelAllowList::from_stored(names.iter().map(|s| s.to_string()).collect())
    }

    fn writer() -> Permissions {
        Permissions::restricted([Permission::KeysWrite])
    }

    #[test]
    fn a_key_hands_on_only_its_own_permissions_and_inherits_them_when_omitted() {
        let grant = Grant::key(&terms(writer(), None, None), LIMITS);
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
        let grant = Grant::key(&terms(writer(), Some(hour), None), LIMITS);
        assert_eq!(grant.narrow(ask(None, None, None)).expect("inherits").expires_at, Some(hour), "omitted: inherits the hour");
        assert_eq!(grant.narrow(ask(None, Some(hour), None)).expect("same").expires_at, Some(hour));
        let earlier = now + Duration::minutes(5);
        assert_eq!(grant.narrow(ask(None, Some(earlier), None)).expect("earlier").expires_at, Some(earlier));
        let later = grant.narrow(ask(None, Some(hour + Duration::seconds(1)), None)).unwrap_err();
        assert_eq!(later, GrantError::ExpiresAt { latest: hour });
        assert_eq!(later.field(), "expires_at");
        // A creator that never expires bounds nothing.
        let forever = Grant::key(&terms(writer(), None, None), LIMITS);
        assert_eq!(forever.narrow(ask(None, None, None)).expect("never").expires_at, None);
        assert!(forever.narrow(ask(None, Some(now + Duration::days(3000)), None)).is_ok());
    }

    #[test]
    fn a_key_hands_on_at_most_its_own_rate_limit_and_inherits_it() {
        let one = Grant::key(&terms(writer(), None, Some(1)), LIMITS);
        assert_eq!(one.narrow(ask(None, None, None)).expect("inherits").rate_limit_per_minute, Some(1));
        assert_eq!(one.narrow(ask(None, None, Some(1))).expect("same").rate_limit_per_minute, Some(1));
        let err = one.narrow(ask(None, None, Some(60_000_000))).unwrap_err();
        assert_eq!(err, GrantError::RateLimit { max: 1, ceiling: RateCeiling::CreatorsLimit });
        assert_eq!(err.field(), "rate_limit_per_minute");
        // A key on the server default may hand on up to the default, and "the default" when omitted.
        let default = Grant::key(&terms(writer(), None, None), LIMITS);
        assert_eq!(default.narrow(ask(None, None, None)).expect("default").rate_limit_per_minute, None);
        assert!(default.narrow(ask(None, None, Some(600))).is_ok());
        assert_eq!(default.narrow(ask(None, None, Some(601))).unwrap_err().field(), "rate_limit_per_minute");
    }

    #[test]
    fn no_key_gets_more_than_the_operator_maximum() {
        // A key made with 50,000 before the maximum was lowered to 10,000.
        let old = Grant::key(&terms(Permissions::All, None, Some(50_000)), LIMITS);
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
        assert_eq!(terms, self::terms(Permissions::All, None, None));
        let far = Utc::now() + Duration::days(3000);
        assert_eq!(user.narrow(ask(None, Some(far), Some(10_000))).expect("at the maximum").rate_limit_per_minute, Some(10_000));
        let err = user.narrow(ask(None, None, Some(10_001))).unwrap_err();
        assert_eq!(err, GrantError::RateLimit { max: 10_000, ceiling: RateCeiling::ServerMaximum });
        assert!(err.to_string().contains("10000"), "{err}");
    }

    #[test]
    fn permissions_are_checked_before_expiry_and_rate_limit() {
        let grant = Grant::key(&terms(writer(), Some(Utc::now() + Duration::hours(1)), Some(1)), LIMITS);
        let err = grant.narrow(ask(Some(Permissions::All), Some(Utc::now() + Duration::days(9)), Some(9))).unwrap_err();
        assert_eq!(err.field(), "permissions");
        let err = grant.narrow(ask(None, Some(Utc::now() + Duration::days(9)), Some(9))).unwrap_err();
        assert_eq!(err.field(), "expires_at");
    }

    #[test]
    fn models_and_budgets_are_handed_on_within_the_grant() {
        let limited = KeyTerms { models: Some(models(&["a", "b"])), daily_token_limit: Some(1000), ..terms(Permissions::All, None, None) };
        let grant = Grant::key(&limited, LIMITS);
        let inherited = grant.narrow(NewKeyOptions::default()).expect("inherits");
        assert_eq!((inherited.models, inherited.daily_token_limit), (Some(models(&["a", "b"])), Some(1000)));
        let fewer = grant.narrow(NewKeyOptions { models: Some(models(&["b"])), daily_token_limit: Some(10), ..Default::default() });
        assert_eq!(fewer.map(|t| (t.models, t.daily_token_limit)), Ok((Some(models(&["b"])), Some(10))));
        let more = grant.narrow(NewKeyOptions { models: Some(models(&["a", "c"])), ..Default::default() }).unwrap_err();
        assert_eq!(more.field(), "models");
        let bigger = grant.narrow(NewKeyOptions { daily_token_limit: Some(1001), ..Default::default() }).unwrap_err();
        assert_eq!(bigger, GrantError::DailyTokenLimit { max: 1000 });
        // A user's grant bounds neither.
        let user = Grant::user(LIMITS).narrow(NewKeyOptions {
            models: Some(models(&["z"])),
            daily_token_limit: Some(u64::MAX),
            ..Default::default()
        });
        assert!(user.is_ok());
    }

    #[test]
    fn an_edit_narrows_permissions_and_expiry_and_moves_the_rest_within_the_grant() {
        let now = Utc::now();
        let key = terms(Permissions::restricted([Permission::Inference, Permission::KeysRead]), Some(now + Duration::days(10)), Some(50));
        let user = Grant::user(LIMITS);
        let narrower = KeyChanges { permissions: Some(Permissions::restricted([Permission::Inference])), ..Default::default() };
        assert_eq!(user.edit(&key, narrower).expect("narrower").permissions, Permissions::restricted([Permission::Inference]));
        let wider = KeyChanges { permissions: Some(Permissions::All), ..Default::default() };
        assert_eq!(user.edit(&key, wider).unwrap_err(), GrantError::WiderPermissions);
        let earlier = KeyChanges { expires_at: Some(Some(now + Duration::days(1))), ..Default::default() };
        assert_eq!(user.edit(&key, earlier).expect("earlier").expires_at, Some(now + Duration::days(1)));
        for later in [Some(now + Duration::days(11)), None] {
            let change = KeyChanges { expires_at: Some(later), ..Default::default() };
            assert_eq!(user.edit(&key, change).unwrap_err(), GrantError::LaterExpiry, "{later:?}");
        }
        let never = terms(Permissions::All, None, None);
        let set = KeyChanges { expires_at: Some(Some(now + Duration::days(3))), ..Default::default() };
        assert!(user.edit(&never, set).is_ok(), "a key that never expired may be given an expiry");
        // The rate limit moves either way within the grant; clearing asks for the default.
        let higher = KeyChanges { rate_limit_per_minute: Some(Some(5_000)), ..Default::default() };
        assert_eq!(user.edit(&key, higher).expect("higher").rate_limit_per_minute, Some(5_000));
        let small = Grant::key(&terms(Permissions::All, None, Some(100)), LIMITS);
        let cleared = KeyChanges { rate_limit_per_minute: Some(None), ..Default::default() };
        assert_eq!(small.edit(&key, cleared).unwrap_err().field(), "rate_limit_per_minute", "the default (600) exceeds 100");
        // Models and budgets: within the grant; clearing is widening to "all"/"none".
        let limited = Grant::key(&KeyTerms { models: Some(models(&["a"])), daily_token_limit: Some(10), ..never.clone() }, LIMITS);
        let all = KeyChanges { models: Some(None), ..Default::default() };
        assert_eq!(limited.edit(&key, all).unwrap_err().field(), "models");
        let unbounded = KeyChanges { daily_token_limit: Some(None), ..Default::default() };
        assert_eq!(limited.edit(&key, unbounded).unwrap_err(), GrantError::DailyTokenLimit { max: 10 });
        let within = KeyChanges { models: Some(Some(models(&["a"]))), daily_token_limit: Some(Some(10)), ..Default::default() };
        let edited = limited.edit(&key, within.clone()).expect("within");
        assert_eq!((edited.models, edited.daily_token_limit), (Some(models(&["a"])), Some(10)));
        assert_eq!(within.fields(), ["models", "daily_token_limit"]);
    }
}
