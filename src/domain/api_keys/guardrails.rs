//! A key's guardrails: which models it may call and how many tokens a UTC day it may spend.
//! The decision for an inference request lives here once ([`Guardrails::admit`]); the HTTP
//! handlers only translate its refusals.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The most models one allow-list may name.
pub const MAX_ALLOWED_MODELS: usize = 64;
/// The longest model name in an allow-list.
pub const MAX_MODEL_NAME_CHARS: usize = 200;
/// The largest daily token budget (a trillion: far beyond any real day).
pub const MAX_DAILY_TOKEN_LIMIT: u64 = 1_000_000_000_000;

/// The public model names a key may use (never empty, no duplicates, in the order given).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelAllowList(Arc<[String]>);

impl ModelAllowList {
    /// Parses a list from a request; `served` says whether this server serves a model. The
    /// error is a message naming what is wrong.
    pub fn parse(names: Vec<String>, served: impl Fn(&str) -> bool) -> Result<Self, String> {
        if names.is_empty() {
            return Err("`models` must name at least one model, or be null for every model.".into());
        }
        if names.len() > MAX_ALLOWED_MODELS {
            return Err(format!("`models` may name at most {MAX_ALLOWED_MODELS} models."));
        }
        let mut unique: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            if name.is_empty() || name.chars().count() > MAX_MODEL_NAME_CHARS || name.chars().any(char::is_control) {
                return Err("Each entry of `models` must be a model name of 1 to 200 characters.".into());
            }
            if !served(&name) {
                let shown: String = name.chars().take(80).collect();
                return Err(format!("`models` names `{shown}`, which this server does not serve. See GET /v1/models."));
            }
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        Ok(Self(unique.into()))
    }

    /// A stored list, as it was validated when stored (models may have left the
    /// configuration since: they simply serve nothing).
    pub fn from_stored(names: Vec<String>) -> Self {
        Self(names.into())
    }

    pub fn allows(&self, model: &str) -> bool {
        self.0.iter().any(|m| m == model)
    }

    /// Whether every model of `other` is in this list.
    pub fn includes(&self, other: &ModelAllowList) -> bool {
        other.0.iter().all(|m| self.allows(m))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The stored form (a JSON array).
    pub fn to_storage(&self) -> String {
        serde_json::to_string(&self.0).expect("strings serialise")
    }
}

/// What limits one key beyond its permissions and rate limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guardrails {
    /// `None`: every model.
    pub models: Option<ModelAllowList>,
    /// Prompt + completion tokens a UTC day; `None`: no budget.
    pub daily_token_limit: Option<u64>,
    /// Whose day's tokens the budget counts: the key itself, or — for a rolled key still in
    /// its grace period — the key that replaced it (one budget for both).
    pub budget_key_id: i64,
}

/// Why an inference request is refused by the key's guardrails.
#[derive(Debug, thiserror::Error)]
pub enum GuardrailRefusal {
    #[error("This API key may not use the model `{0}`. Ask its owner to add it to the key's models.")]
    ModelNotAllowed(String),
    #[error("This API key has used its daily token budget of {limit} tokens. It resets at midnight UTC.")]
    QuotaExceeded {
        limit: u64,
        /// Until the next UTC midnight.
        retry_after: std::time::Duration,
    },
    /// The day's count could not be read: nobody spends an unknown budget.
    #[error("database: {}", crate::domain::describe_db_error(.0))]
    Database(#[from] sea_orm::DbErr),
}

/// A request admitted under a token budget: its tokens are counted when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetedKey {
    pub budget_key_id: i64,
}

impl Guardrails {
    /// Whether a key with these guardrails has any (else it need not carry them).
    pub fn is_unrestricted(&self) -> bool {
        self.models.is_none() && self.daily_token_limit.is_none()
    }

    /// Whether the key may see or call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|list| list.allows(model))
    }

    /// The model must be one the key may use.
    pub fn check_model(&self, model: &str) -> Result<(), GuardrailRefusal> {
        if self.allows_model(model) { Ok(()) } else { Err(GuardrailRefusal::ModelNotAllowed(model.chars().take(200).collect())) }
    }

    /// With `used_today` tokens spent, may another request start at `now`? A request that
    /// starts under the budget may finish over it by its own tokens; the next one is refused
    /// until midnight UTC.
    pub fn check_budget(&self, used_today: u64, now: DateTime<Utc>) -> Result<(), GuardrailRefusal> {
        match self.daily_token_limit {
            Some(limit) if used_today >= limit => Err(GuardrailRefusal::QuotaExceeded { limit, retry_after: until_midnight(now) }),
            _ => Ok(()),
        }
    }
}

/// The UTC day of `now`, as budgets count it (`YYYY-MM-DD`).
pub fn utc_day(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%d").to_string()
}

/// From `now` to the next UTC midnight (at least one second).
pub fn until_midnight(now: DateTime<Utc>) -> std::time::Duration {
    let midnight = (now.date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    (midnight - now).to_std().unwrap_or_default().max(std::time::Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(name: &str) -> bool {
        ["claude-4-sonnet", "gpt-4o", "gpt-4o-mini"].contains(&name)
    }

    fn list(names: &[&str]) -> ModelAllowList {
        ModelAllowList::parse(names.iter().map(|s| s.to_string()).collect(), served).expect("valid")
    }

    #[test]
    fn allow_lists_name_served_models_only_once_each() {
        assert_eq!(list(&["gpt-4o", "gpt-4o", "claude-4-sonnet"]).names(), ["gpt-4o", "claude-4-sonnet"]);
        for bad in [vec![], vec!["nope".to_owned()], vec![String::new()], vec!["gpt-4o\n".to_owned()], vec!["x".repeat(201)]] {
            assert!(ModelAllowList::parse(bad.clone(), served).is_err(), "{bad:?}");
        }
        assert!(ModelAllowList::parse(vec!["gpt-4o".to_owned(); MAX_ALLOWED_MODELS + 1], served).is_err());
        let unknown = ModelAllowList::parse(vec!["gpt-9".into()], served).unwrap_err();
        assert!(unknown.contains("gpt-9"), "{unknown}");
        assert!(list(&["gpt-4o", "gpt-4o-mini"]).includes(&list(&["gpt-4o"])));
        assert!(!list(&["gpt-4o"]).includes(&list(&["gpt-4o", "gpt-4o-mini"])));
        let stored = list(&["gpt-4o", "claude-4-sonnet"]).to_storage();
        assert_eq!(ModelAllowList::from_stored(serde_json::from_str(&stored).expect("json")), list(&["gpt-4o", "claude-4-sonnet"]));
    }

    #[test]
    fn inference_is_admitted_for_allowed_models_under_the_budget() {
        let now = "2026-11-30T23:59:30Z".parse::<DateTime<Utc>>().expect("time");
        let rails = Guardrails { models: Some(list(&["gpt-4o"])), daily_token_limit: Some(100), budget_key_id: 7 };
        assert!(matches!(rails.check_model("gpt-4o-mini"), Err(GuardrailRefusal::ModelNotAllowed(m)) if m == "gpt-4o-mini"));
        assert!(rails.check_model("gpt-4o").is_ok());
        assert!(rails.check_budget(99, now).is_ok());
        assert!(matches!(
            rails.check_budget(100, now),
            Err(GuardrailRefusal::QuotaExceeded { limit: 100, retry_after }) if retry_after == std::time::Duration::from_secs(30)
        ));
        let open = Guardrails { models: None, daily_token_limit: None, budget_key_id: 7 };
        assert!(open.is_unrestricted());
        assert!(open.check_model("anything").is_ok() && open.check_budget(u64::MAX, now).is_ok());
    }

    #[test]
    fn budgets_reset_at_midnight_utc() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        assert_eq!(utc_day(t("2026-11-30T23:59:59Z")), "2026-11-30");
        assert_eq!(utc_day(t("2026-12-01T00:00:00Z")), "2026-12-01");
        assert_eq!(until_midnight(t("2026-11-30T00:00:00Z")), std::time::Duration::from_secs(86_400));
        assert_eq!(until_midnight(t("2026-11-30T23:59:59.900Z")), std::time::Duration::from_secs(1), "at least a second");
    }
}
