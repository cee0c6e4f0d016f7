//! Settings > API Keys: list, create (the raw key returned once), revoke.

use leptos::{prelude::*, server_fn::codec::Json};

use crate::wire::{ApiKeyView, CreateApiKeyRequest, CreatedApiKey, PortalError};

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
            ApiKeyError::BeyondGrant(beyond) => {
                set_status(StatusCode::FORBIDDEN);
                let message = match beyond {
                    crate::domain::api_keys::GrantError::RateLimit { max, .. } => {
                        format!("The rate limit can be at most {max} requests a minute on this server.")
                    }
                    other => other.to_string(),
                };
                PortalError::Invalid { field: beyond.field().into(), message }
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

/// The signed-in user's keys, newest first.
#[server(prefix = "/api", endpoint = "list_api_keys")]
pub async fn list_api_keys() -> Result<Vec<ApiKeyView>, PortalError> {
    use super::support::{signed_in, unavailable};
    let (state, me) = signed_in()?;
    let keys = state.keys.list(me.user.id).await.map_err(unavailable)?;
    let usage = state.usage.per_key_last_24h(me.user.id).await;
    Ok(keys
        .into_iter()
        .map(|k| {
            let u = usage.get(&k.id).copied();
            view_of(k, u)
        })
        .collect())
}

/// One of the signed-in user's keys (for its detail page); another user's id is not found.
#[server(prefix = "/api", endpoint = "get_api_key")]
pub async fn get_api_key(id: i64) -> Result<ApiKeyView, PortalError> {
    use super::support::{signed_in, unavailable};
    use crate::domain::api_keys::ApiKeyError;
    let (state, me) = signed_in()?;
    let record = state.keys.get(me.user.id, id).await.map_err(unavailable)?.ok_or(ApiKeyError::NotFound)?;
    let usage = state.usage.per_key_last_24h(me.user.id).await.get(&record.id).copied();
    Ok(view_of(record, usage))
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
    let asked = NewKeyOptions { permissions: Some(request.permissions), expires_at, rate_limit_per_minute: request.rate_limit_per_minute };
    // The portal is the signed-in user: their whole grant, up to the server's maximum limit.
    let grant = Grant::user(state.config.rate_limits());
    let (record, key) = state.keys.create(me.user.id, &grant, name, asked, &audit_context(&me)).await?;
    Ok(CreatedApiKey { key: view_of(record, None), secret: key.into_secret() })
}

/// Revokes one of the user's keys at once; another user's id is not found.
#[server(prefix = "/api", endpoint = "revoke_api_key")]
pub async fn revoke_api_key(id: i64) -> Result<ApiKeyView, PortalError> {
    use super::support::{audit_context, signed_in};
    let (state, me) = signed_in()?;
    let (record, _) = state.keys.revoke(me.user.id, id, &audit_context(&me)).await?;
    Ok(view_of(record, None))
}
