//! Settings > API Keys: list (filtered, paged), create (the raw key returned once), edit,
//! roll, revoke.

use leptos::{prelude::*, server_fn::codec::Json};

use crate::wire::{ApiKeyView, CreateApiKeyRequest, CreatedApiKey, EditApiKeyRequest, KeyListPage, KeyListQuery, PortalError};

/// Keys a page of the list shows.
pub const KEYS_PER_PAGE: u32 = 50;

#[cfg(feature = "ssr")]
fn view_of(record: crate::domain::api_keys::ApiKeyRecord, usage: Option<(u64, u64)>) -> ApiKeyView {
    let (requests_24h, tokens_24h) = usage.unwrap_or_default();
    ApiKeyView {
        id: record.id,
        name: record.name,
        hint: record.hint,
        permissions: record.permissions,
        created_at: record.created_at.timestamp_millis(),
        last_used_at: record.last_used_at.map(|t| t.timestamp_millis()),
        revoked_at: record.revoked_at.map(|t| t.timestamp_millis()),
        expires_at: record.expires_at.map(|t| t.timestamp_millis()),
        requests_24h,
        tokens_24h,
        models: record.models,
        daily_token_limit: record.daily_token_limit,
        tokens_today: None,
        rate_limit_per_minute: record.rate_limit_per_minute,
        last_used_ip: record.last_used_ip,
        last_used_user_agent: record.last_used_user_agent,
        replaced_by: record.replaced_by,
    }
}

/// The one translation of a key-service error into a portal error (and its status).
#[cfg(feature = "ssr")]
impl From<crate::domain::api_keys::ApiKeyError> for PortalError {
    fn from(error: crate::domain::api_keys::ApiKeyError) -> Self {
        use axum::http::StatusCode;

        use super::support::{set_status, unavailable};
        use crate::domain::api_keys::ApiKeyError;
        match error {
            ApiKeyError::InvalidName(message) => {
                set_status(StatusCode::BAD_REQUEST);
                PortalError::Invalid { field: "name".into(), message }
            }
            ApiKeyError::InvalidExpiry => {
                set_status(StatusCode::BAD_REQUEST);
                PortalError::Invalid { field: "expires_in_days".into(), message: error.to_string() }
            }
            ApiKeyError::InvalidRateLimit => {
                set_status(StatusCode::BAD_REQUEST);
                PortalError::Invalid { field: "rate_limit_per_minute".into(), message: error.to_string() }
            }
            ApiKeyError::InvalidTokenLimit => {
                set_status(StatusCode::BAD_REQUEST);
                PortalError::Invalid { field: "daily_token_limit".into(), message: "Enter a daily token limit of at least 1 token.".into() }
            }
            ApiKeyError::InvalidModels(message) => {
                set_status(StatusCode::BAD_REQUEST);
                PortalError::Invalid { field: "models".into(), message: message.replace('`', "") }
            }
            ApiKeyError::InvalidGrace => {
                set_status(StatusCode::BAD_REQUEST);
                PortalError::Invalid {
                    field: "expire_old_in_seconds".into(),
                    message: "Choose how long the old key keeps working: up to a week.".into(),
                }
            }
            ApiKeyError::NotActive(_) | ApiKeyError::AlreadyReplaced(_) | ApiKeyError::ChangedMeanwhile => {
                set_status(StatusCode::CONFLICT);
                let text = error.to_string();
                PortalError::Limit(format!("{}{}.", text[..1].to_uppercase(), &text[1..]))
            }
            ApiKeyError::BeyondGrant(beyond) => {
                set_status(StatusCode::FORBIDDEN);
                let field = beyond.field();
                let message = match beyond {
                    crate::domain::api_keys::GrantError::RateLimit { max, .. } => {
                        format!("The rate limit can be at most {max} requests a minute on this server.")
                    }
                    other => other.to_string(),
                };
                PortalError::Invalid { field: field.into(), message }
            }
            ApiKeyError::TooManyKeys => {
                set_status(StatusCode::CONFLICT);
                PortalError::Limit(format!(
                    "You already have {} active API keys. Revoke a key you no longer use, then create a new one.",
                    crate::domain::api_keys::MAX_ACTIVE_KEYS
                ))
            }
            ApiKeyError::NotFound => {
                set_status(StatusCode::NOT_FOUND);
                PortalError::NotFound("That API key does not exist.".into())
            }
            ApiKeyError::NotShared(_) => {
                set_status(StatusCode::SERVICE_UNAVAILABLE);
                PortalError::Unavailable
            }
            ApiKeyError::Database(e) => unavailable(e),
        }
    }
}

/// The first page (50) of the signed-in user's keys, newest first: what the list page showed
/// before it had filters and paging. The page itself calls [`list_api_key_page`].
#[server(prefix = "/api", endpoint = "list_api_keys")]
pub async fn list_api_keys() -> Result<Vec<ApiKeyView>, PortalError> {
    Ok(list_api_key_page(KeyListQuery { page: 1, ..Default::default() }).await?.keys)
}

/// A page of the signed-in user's keys: filtered by state and name, newest first, with the
/// count of each state for the tabs.
#[server(prefix = "/api", endpoint = "list_api_key_page", input = Json)]
pub async fn list_api_key_page(query: KeyListQuery) -> Result<KeyListPage, PortalError> {
    use super::support::{set_status, signed_in, unavailable};
    use crate::domain::api_keys::service::{KeyQuery, KeyStatus};
    let (state, me) = signed_in()?;
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(text) => Some(KeyStatus::parse(text).ok_or_else(|| {
            set_status(axum::http::StatusCode::BAD_REQUEST);
            PortalError::Invalid { field: "status".into(), message: "Choose Active, Expired or Revoked.".into() }
        })?),
    };
    let page = query.page.max(1);
    let search = query.search.trim().chars().take(100).collect::<String>();
    let key_query = KeyQuery {
        status,
        search: (!search.is_empty()).then_some(search),
        limit: u64::from(KEYS_PER_PAGE),
        offset: u64::from(page - 1) * u64::from(KEYS_PER_PAGE),
        before_id: None,
    };
    let found = state.keys.page(me.user.id, &key_query).await.map_err(unavailable)?;
    let counts = state.keys.counts(me.user.id).await.map_err(unavailable)?;
    let usage = state.usage.per_key_last_24h(me.user.id).await;
    let mut keys = Vec::with_capacity(found.keys.len());
    for record in found.keys {
        let u = usage.get(&record.id).copied();
        keys.push(with_budget_use(&state, view_of(record, u)).await);
    }
    let count = |status: KeyStatus| counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
    Ok(KeyListPage {
        keys,
        total: found.total,
        page,
        per_page: KEYS_PER_PAGE,
        active: count(KeyStatus::Active),
        expired: count(KeyStatus::Expired),
        revoked: count(KeyStatus::Revoked),
    })
}

/// The view with today's tokens, for a key with a budget (left out if they cannot be read).
#[cfg(feature = "ssr")]
async fn with_budget_use(state: &crate::server::state::AppState, mut view: ApiKeyView) -> ApiKeyView {
    if view.daily_token_limit.is_some() {
        let budget_key = view.replaced_by.unwrap_or(view.id);
        view.tokens_today = state.budgets.used_today(budget_key).await.ok();
    }
    view
}

/// The public model names this server serves, in configuration order (for the model
/// pickers of the create and edit dialogs).
#[server(prefix = "/api", endpoint = "served_models")]
pub async fn served_models() -> Result<Vec<String>, PortalError> {
    use super::support::signed_in;
    let (state, _) = signed_in()?;
    Ok(state.gateway.models_in_configured_order().map(str::to_owned).collect())
}

/// One of the signed-in user's keys (for its detail page); another user's id is not found.
#[server(prefix = "/api", endpoint = "get_api_key")]
pub async fn get_api_key(id: i64) -> Result<ApiKeyView, PortalError> {
    use super::support::{signed_in, unavailable};
    use crate::domain::api_keys::ApiKeyError;
    let (state, me) = signed_in()?;
    let record = state.keys.get(me.user.id, id).await.map_err(unavailable)?.ok_or(ApiKeyError::NotFound)?;
    let usage = state.usage.per_key_last_24h(me.user.id).await.get(&record.id).copied();
    Ok(with_budget_use(&state, view_of(record, usage)).await)
}

/// Creates a key and returns it — the only time the raw key is ever sent.
#[server(prefix = "/api", endpoint = "create_api_key", input = Json)]
pub async fn create_api_key(request: CreateApiKeyRequest) -> Result<CreatedApiKey, PortalError> {
    use super::support::{audit_context, set_status, signed_in};
    use crate::domain::api_keys::{ApiKeyError, Grant, KeyName, MAX_EXPIRY_DAYS, NewKeyOptions};
    let (state, me) = signed_in()?;
    let name = KeyName::parse(&request.name).map_err(ApiKeyError::InvalidName)?;
    let expires_at = match request.expires_in_days {
        None => None,
        Some(days) if (1..=MAX_EXPIRY_DAYS).contains(&days) => Some(chrono::Utc::now() + chrono::Duration::days(i64::from(days))),
        Some(_) => {
            set_status(axum::http::StatusCode::BAD_REQUEST);
            return Err(PortalError::Invalid {
                field: "expires_in_days".into(),
                message: "Choose an expiry between 1 day and 10 years.".into(),
            });
        }
    };
    let asked = NewKeyOptions {
        permissions: Some(request.permissions),
        expires_at,
        rate_limit_per_minute: request.rate_limit_per_minute,
        models: request.models.map(|models| allow_list(&state, models)).transpose()?,
        daily_token_limit: request.daily_token_limit,
    };
    // The portal is the signed-in user: their whole grant, up to the server's maximum limit.
    let grant = Grant::user(state.config.rate_limits());
    let (record, key) = state.keys.create(me.user.id, &grant, name, asked, &audit_context(&me)).await?;
    Ok(CreatedApiKey { key: view_of(record, None), secret: key.into_secret(), replaces: None })
}

#[cfg(feature = "ssr")]
fn allow_list(
    state: &crate::server::state::AppState,
    models: Vec<String>,
) -> Result<crate::domain::api_keys::guardrails::ModelAllowList, crate::domain::api_keys::ApiKeyError> {
    crate::domain::api_keys::guardrails::ModelAllowList::parse(models, |m| state.gateway.owner(m).is_some())
        .map_err(crate::domain::api_keys::ApiKeyError::InvalidModels)
}

/// Edits one of the user's keys: what the dialog sends is the key's settings as they should
/// be; what differs from the key's current settings is changed.
#[server(prefix = "/api", endpoint = "edit_api_key", input = Json)]
pub async fn edit_api_key(request: EditApiKeyRequest) -> Result<ApiKeyView, PortalError> {
    use super::support::{audit_context, set_status, signed_in, unavailable};
    use crate::domain::api_keys::{ApiKeyError, Grant, KeyName, MAX_EXPIRY_DAYS, grant::KeyChanges};
    let (state, me) = signed_in()?;
    let current = state.keys.get(me.user.id, request.id).await.map_err(unavailable)?.ok_or(ApiKeyError::NotFound)?;
    let name = KeyName::parse(&request.name).map_err(ApiKeyError::InvalidName)?;
    let expires_at = match request.expires_in_days {
        None => None,
        Some(days) if (1..=MAX_EXPIRY_DAYS).contains(&days) => Some(Some(chrono::Utc::now() + chrono::Duration::days(i64::from(days)))),
        Some(_) => {
            set_status(axum::http::StatusCode::BAD_REQUEST);
            return Err(PortalError::Invalid {
                field: "expires_in_days".into(),
                message: "Choose an expiry between 1 day and 10 years.".into(),
            });
        }
    };
    let models = match request.models {
        models if models == current.models => None,
        None => Some(None),
        Some(models) => Some(Some(allow_list(&state, models)?)),
    };
    let changes = KeyChanges {
        permissions: (request.permissions != current.permissions).then_some(request.permissions),
        expires_at,
        rate_limit_per_minute: (request.rate_limit_per_minute != current.rate_limit_per_minute).then_some(request.rate_limit_per_minute),
        models,
        daily_token_limit: (request.daily_token_limit != current.daily_token_limit).then_some(request.daily_token_limit),
    };
    let grant = Grant::user(state.config.rate_limits());
    let record = state.keys.edit(me.user.id, request.id, &grant, Some(name), changes, &audit_context(&me)).await?;
    Ok(with_budget_use(&state, view_of(record, None)).await)
}

/// Rolls one of the user's keys: the new key is answered this once; the old one keeps
/// working for `expire_old_in_seconds`.
#[server(prefix = "/api", endpoint = "roll_api_key")]
pub async fn roll_api_key(id: i64, expire_old_in_seconds: u64) -> Result<CreatedApiKey, PortalError> {
    use super::support::{audit_context, signed_in};
    use crate::domain::api_keys::Grant;
    let (state, me) = signed_in()?;
    let grant = Grant::user(state.config.rate_limits());
    let rolled =
        state.keys.roll(me.user.id, id, &grant, std::time::Duration::from_secs(expire_old_in_seconds), &audit_context(&me)).await?;
    Ok(CreatedApiKey { key: view_of(rolled.new, None), secret: rolled.key.into_secret(), replaces: Some(rolled.old.id) })
}

/// Revokes one of the user's keys at once; another user's id is not found.
#[server(prefix = "/api", endpoint = "revoke_api_key")]
pub async fn revoke_api_key(id: i64) -> Result<ApiKeyView, PortalError> {
    use super::support::{audit_context, signed_in};
    let (state, me) = signed_in()?;
    let (record, _) = state.keys.revoke(me.user.id, id, &audit_context(&me)).await?;
    Ok(view_of(record, None))
}
