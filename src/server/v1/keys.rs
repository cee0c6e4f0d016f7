//! `GET /v1/keys`, `POST /v1/keys`, `GET /v1/keys/{id}`, `DELETE /v1/keys/{id}`: key
//! management for scripts, on the same service as the portal.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        api_keys::{ApiKeyError, ApiKeyRecord, Grant, KeyName, NewKeyOptions, RateLimits},
        audit::AuditContext,
    },
    permissions::{Permission, Permissions},
    server::{
        error::ApiError,
        security::ClientIp,
        state::AppState,
        v1::{
            auth::{AuthMethod, Principal},
            json::ApiJson,
        },
    },
};

/// A key as the API shows it (never the key itself, except `key` in the create answer).
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyObject {
    pub id: i64,
    /// Always `api_key`.
    pub object: &'static str,
    pub name: String,
    /// `wj_live_` + first 4 + `…` + last 4 characters.
    pub hint: String,
    /// `"all"` or a list of `inference`, `keys:read`, `keys:write`.
    #[schema(value_type = crate::server::v1::schema::PermissionsSchema)]
    pub permissions: Permissions,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
    /// Unix seconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub rate_limit_per_minute: Option<u32>,
}

impl KeyObject {
    pub fn from_record(r: ApiKeyRecord) -> Self {
        let now = Utc::now();
        let status = if r.revoked_at.is_some() {
            "revoked"
        } else if r.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        Self {
            id: r.id,
            object: "api_key",
            name: r.name,
            hint: r.hint,
            permissions: r.permissions,
            status,
            created_at: r.created_at.timestamp(),
            last_used_at: r.last_used_at.map(|t| t.timestamp()),
            revoked_at: r.revoked_at.map(|t| t.timestamp()),
            expires_at: r.expires_at.map(|t| t.timestamp()),
            rate_limit_per_minute: r.rate_limit_per_minute,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<KeyObject>,
}

/// The create answer: the key object and, this once, the key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key_object: KeyObject,
    /// The raw API key. Shown only in this response: store it now.
    pub key: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// 1–100 characters, e.g. "CI/CD Pipeline".
    pub name: String,
    /// `"all"` or a list of permissions, never more than the caller has (403 otherwise).
    /// Default: the caller's own permissions (`"all"` for a session or an all-permissions key).
    #[serde(default)]
    #[schema(value_type = Option<crate::server::v1::schema::PermissionsSchema>)]
    pub permissions: Option<Permissions>,
    /// Expiry as Unix seconds, never later than the calling key's own expiry (403
    /// otherwise). Default: the calling key's expiry (none for a session or a key that
    /// never expires).
    pub expires_at: Option<i64>,
    /// Requests a minute for this key, never more than the calling key's own effective
    /// limit, nor more than the server's maximum (`WJ_MAX_RATE_LIMIT_PER_MINUTE`) for
    /// anyone (403 otherwise). Default: the calling key's own limit (the server default
    /// for a session or a key without a limit of its own).
    pub rate_limit_per_minute: Option<u32>,
}

/// The one translation of a key-service error into an API answer.
impl From<ApiKeyError> for ApiError {
    fn from(error: ApiKeyError) -> Self {
        match error {
            ApiKeyError::InvalidName(message) => ApiError::invalid_param("invalid_name", "name", message),
            ApiKeyError::InvalidExpiry => ApiError::invalid_param("invalid_expiry", "expires_at", error.to_string()),
            ApiKeyError::InvalidRateLimit => ApiError::invalid_param("invalid_rate_limit", "rate_limit_per_minute", error.to_string()),
            ApiKeyError::BeyondGrant(beyond) => {
                ApiError::forbidden(format!("{}.", upper_first(&beyond.to_string()))).with_param(beyond.field())
            }
            ApiKeyError::TooManyKeys => ApiError::conflict("too_many_keys", error.to_string()),
            ApiKeyError::NotFound => ApiError::not_found("No API key with that id."),
            ApiKeyError::NotShared(_) => ApiError::unavailable_because(
                "The revocation could not be made effective on every server right now; nothing was changed. Try again in a moment.",
            ),
            ApiKeyError::Database(e) => e.into(),
        }
    }
}

fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// What the caller may hand on: a session carries its user's whole grant, a key its own.
fn grant_of(principal: &Principal, limits: RateLimits) -> Grant {
    match principal.method {
        AuthMethod::Session => Grant::user(limits),
        AuthMethod::ApiKey { expires_at, rate_limit_per_minute, .. } => {
            Grant::key(principal.permissions, expires_at, rate_limit_per_minute, limits)
        }
    }
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    // Anything that is not one of the caller's key ids is simply not found.
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| ApiError::not_found("No API key with that id."))
}

fn audit(principal: &Principal, ip: &ClientIp) -> AuditContext {
    AuditContext::new(Some(principal.user_id), ip.0, None)
}

/// The caller's keys, newest first.
#[utoipa::path(get, path = "/v1/keys", operation_id = "listKeys", tag = "keys",
    responses((status = 200, description = "The caller's keys, newest first (revoked and expired ones included).", body = KeyList,
            example = json!({"object": "list", "data": [{"id": 42, "object": "api_key", "name": "Nightly evals", "hint": "wj_live_a1b2…x9y8", "permissions": ["inference"], "status": "active", "created_at": 1767225600, "last_used_at": null, "revoked_at": null, "expires_at": null, "rate_limit_per_minute": null}]})),
        (status = 403, description = "`forbidden`: the credentials lack the `keys:read` permission.", body = crate::server::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<KeyList>, ApiError> {
    principal.require(Permission::KeysRead)?;
    let keys = state.keys.list(principal.user_id).await?;
    Ok(Json(KeyList { object: "list", data: keys.into_iter().map(KeyObject::from_record).collect() }))
}

/// One of the caller's keys.
#[utoipa::path(get, path = "/v1/keys/{id}", operation_id = "getKey", tag = "keys",
    params(("id" = i64, Path, description = "The key's id.", minimum = 1)),
    responses((status = 200, description = "The key (never the key itself).", body = KeyObject, example = json!({"id": 42, "object": "api_key", "name": "Nightly evals", "hint": "wj_live_a1b2…x9y8", "permissions": ["inference"], "status": "active", "created_at": 1767225600, "last_used_at": null, "revoked_at": null, "expires_at": null, "rate_limit_per_minute": null})),
        (status = 403, description = "`forbidden`: the credentials lack the `keys:read` permission.", body = crate::server::error::ErrorBody),
        (status = 404, description = "`not_found`: no key with that id among the caller's keys.", body = crate::server::error::ErrorBody)))]
pub async fn get(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Json<KeyObject>, ApiError> {
    principal.require(Permission::KeysRead)?;
    let id = parse_id(&id)?;
    match state.keys.get(principal.user_id, id).await? {
        Some(record) => Ok(Json(KeyObject::from_record(record))),
        None => Err(ApiError::not_found("No API key with that id.")),
    }
}

/// Creates a key; the answer carries the raw key, once.
///
/// No key outgrows the grant it was made with. A key creates keys only within its own
/// grant: `permissions` a subset of its own, `expires_at` no later than its own expiry,
/// `rate_limit_per_minute` no higher than its own effective limit. Each omitted field is
/// inherited from the calling key (so a key that expires in an hour makes keys that expire
/// within the hour). A session (the `wj_session` cookie) has its user's whole grant: every
/// permission, no expiry bound. Nobody can give a key more than the server's maximum rate
/// limit. Beyond the grant: 403 `forbidden`, `param` naming the field, and nothing is created.
#[utoipa::path(post, path = "/v1/keys", operation_id = "createKey", tag = "keys",
    request_body(content = CreateKeyRequest, description = "The new key's name and, optionally, permissions, expiry and rate limit.",
        example = json!({"name": "Nightly evals", "permissions": ["inference"]})),
    responses((status = 201, description = "The key, with the raw key in `key`: shown this once, store it now.", body = CreatedKey,
            example = json!({"id": 42, "object": "api_key", "name": "Nightly evals", "hint": "wj_live_a1b2…x9y8", "permissions": ["inference"], "status": "active", "created_at": 1767225600, "last_used_at": null, "revoked_at": null, "expires_at": null, "rate_limit_per_minute": null, "key": "wj_live_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6x9y8"})),
        (status = 400, description = "`invalid_name`, `invalid_expiry` or `invalid_rate_limit`: a field is out of range (`param` names it).", body = crate::server::error::ErrorBody),
        (status = 403, description = "`forbidden`: the credentials lack the `keys:write` permission, or ask for more than their own grant — permissions they do not have, an expiry later than their own, a rate limit above their own or the server's maximum (`param` names the field).", body = crate::server::error::ErrorBody),
        (status = 409, description = "`too_many_keys`: the caller has 100 active keys already.", body = crate::server::error::ErrorBody),
        (status = 422, description = "`invalid_request`: well-formed JSON that does not fit the schema (e.g. an unknown field).", body = crate::server::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ip: axum::Extension<ClientIp>,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    principal.require(Permission::KeysWrite)?;
    let name = KeyName::parse(&body.name).map_err(ApiKeyError::InvalidName)?;
    let expires_at = match body.expires_at {
        None => None,
        Some(secs) => Some(
            DateTime::<Utc>::from_timestamp(secs, 0)
                .ok_or_else(|| ApiError::invalid_param("invalid_expiry", "expires_at", "expires_at is not a valid Unix time."))?,
        ),
    };
    let asked = NewKeyOptions { permissions: body.permissions, expires_at, rate_limit_per_minute: body.rate_limit_per_minute };
    let grant = grant_of(&principal, state.config.rate_limits());
    let (record, key) = state.keys.create(principal.user_id, &grant, name, asked, &audit(&principal, &ip.0)).await?;
    let created = CreatedKey { key_object: KeyObject::from_record(record), key: key.into_secret() };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revokes a key at once (idempotent).
#[utoipa::path(delete, path = "/v1/keys/{id}", operation_id = "revokeKey", tag = "keys",
    params(("id" = i64, Path, description = "The key's id.", minimum = 1)),
    responses((status = 200, description = "The revoked key; it is refused from the very next request. Revoking twice is fine.",
            body = KeyObject, example = json!({"id": 42, "object": "api_key", "name": "Nightly evals", "hint": "wj_live_a1b2…x9y8", "permissions": ["inference"], "status": "revoked", "created_at": 1767225600, "last_used_at": null, "revoked_at": 1767312000, "expires_at": null, "rate_limit_per_minute": null})),
        (status = 403, description = "`forbidden`: the credentials lack the `keys:write` permission.", body = crate::server::error::ErrorBody),
        (status = 404, description = "`not_found`: no key with that id among the caller's keys.", body = crate::server::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    ip: axum::Extension<ClientIp>,
    Path(id): Path<String>,
) -> Result<Json<KeyObject>, ApiError> {
    principal.require(Permission::KeysWrite)?;
    let id = parse_id(&id)?;
    let (record, _) = state.keys.revoke(principal.user_id, id, &audit(&principal, &ip.0)).await?;
    Ok(Json(KeyObject::from_record(record)))
}
