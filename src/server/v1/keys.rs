//! `GET /v1/keys`, `POST /v1/keys`, `GET /v1/keys/{id}`, `PATCH /v1/keys/{id}`,
//! `POST /v1/keys/{id}/roll`, `DELETE /v1/keys/{id}`: key management for scripts, on the
//! same service as the portal.

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    domain::{
        api_keys::{
            ApiKeyError, ApiKeyRecord, Grant, KeyName, NewKeyOptions, RateLimits,
            grant::KeyChanges,
            guardrails::ModelAllowList,
            service::{DEFAULT_ROLL_GRACE_SECONDS, KeyQuery, KeyStatus},
        },
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
    /// The public model names the key may use; `null`: every model.
    pub models: Option<Vec<String>>,
    /// Prompt + completion tokens the key may spend a UTC day; `null`: no budget.
    pub daily_token_limit: Option<u64>,
    /// The address the key was last used from (shown to its owner only).
    pub last_used_ip: Option<String>,
    /// The user agent of the key's last use.
    pub last_used_user_agent: Option<String>,
    /// When the key was rolled: the id of the key that replaced it.
    pub replaced_by: Option<i64>,
}

impl KeyObject {
    pub fn from_record(r: ApiKeyRecord) -> Self {
        let status = r.status(Utc::now()).as_str();
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
            models: r.models,
            daily_token_limit: r.daily_token_limit,
            last_used_ip: r.last_used_ip,
            last_used_user_agent: r.last_used_user_agent,
            replaced_by: r.replaced_by,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<KeyObject>,
    /// Whether more keys match (ask again with `after` = `last_id`).
    pub has_more: bool,
    /// The id of the last key in `data` (`null` when empty).
    pub last_id: Option<i64>,
}

/// The answer to a roll: the new key, with the raw key once, and the id of the key it
/// replaces.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RolledKey {
    #[serde(flatten)]
    pub created: CreatedKey,
    /// The id of the old key, which keeps working until its `expires_at`.
    pub replaces: i64,
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
    /// The public model names (see `GET /v1/models`) the key may use, at most 64; never
    /// models the calling key may not use itself (403). Default: the calling key's models
    /// (every model for a session).
    pub models: Option<Vec<String>>,
    /// Prompt + completion tokens the key may spend a UTC day (1 to 10^12), never more than
    /// the calling key's own budget (403). Default: the calling key's budget (none for a
    /// session).
    pub daily_token_limit: Option<u64>,
}

/// An edit: every field is optional; an absent field is left as it is, `null` clears it
/// (where that is allowed).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    /// A new name, 1–100 characters (not `null`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// Fewer permissions: an edit never widens them (403 otherwise). Not `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::server::v1::schema::PermissionsSchema>)]
    pub permissions: Option<Option<Permissions>>,
    /// An expiry (Unix seconds) earlier than the key's current one, or a first expiry for a
    /// key that never expired; never later (403). `null` is only accepted for a key that
    /// never expires.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    pub expires_at: Option<Option<i64>>,
    /// Requests a minute within the caller's grant; `null`: the server default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable)]
    pub rate_limit_per_minute: Option<Option<u32>>,
    /// The models the key may use; `null`: every model (only for a caller who has every
    /// model itself).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, nullable)]
    pub models: Option<Option<Vec<String>>>,
    /// Tokens a UTC day; `null`: no budget (only for a caller without one itself).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, nullable)]
    pub daily_token_limit: Option<Option<u64>>,
}

/// A field that is present (`null` included): absent fields stay `None` by `default`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A field that may be absent but not `null`.
fn not_null<T>(field: Option<Option<T>>, name: &'static str) -> Result<Option<T>, ApiError> {
    match field {
        Some(None) => Err(ApiError::unprocessable(format!("`{name}` cannot be null: leave it out to keep it as it is.")).with_param(name)),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

/// A roll's options.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollKeyRequest {
    /// How long the old key keeps working, in seconds: 0 (not at all) to 604800 (a week).
    /// Default: 86400 (a day).
    #[schema(minimum = 0, maximum = 604800)]
    pub expire_old_in_seconds: Option<u64>,
}

/// The query of `GET /v1/keys`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListKeysQuery {
    /// Only keys in this state: `active`, `expired` or `revoked`.
    pub status: Option<String>,
    /// Only keys whose name contains this text (any case).
    pub search: Option<String>,
    /// How many keys to answer, 1–100 (default 100).
    pub limit: Option<String>,
    /// A cursor: only keys older than the key with this id (the previous page's `last_id`).
    pub after: Option<String>,
}

/// The models of a request, checked against what this server serves.
fn allow_list(state: &AppState, models: Vec<String>) -> Result<ModelAllowList, ApiKeyError> {
    ModelAllowList::parse(models, |model| state.gateway.owner(model).is_some()).map_err(ApiKeyError::InvalidModels)
}

/// Unix seconds, as a time.
fn unix_time(secs: i64) -> Result<DateTime<Utc>, ApiError> {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .ok_or_else(|| ApiError::invalid_param("invalid_expiry", "expires_at", "expires_at is not a valid Unix time."))
}

/// The one translation of a key-service error into an API answer.
impl From<ApiKeyError> for ApiError {
    fn from(error: ApiKeyError) -> Self {
        match error {
            ApiKeyError::InvalidName(message) => ApiError::invalid_param("invalid_name", "name", message),
            ApiKeyError::InvalidExpiry => ApiError::invalid_param("invalid_expiry", "expires_at", error.to_string()),
            ApiKeyError::InvalidRateLimit => ApiError::invalid_param("invalid_rate_limit", "rate_limit_per_minute", error.to_string()),
            ApiKeyError::InvalidTokenLimit => {
                ApiError::invalid_param("invalid_token_limit", "daily_token_limit", format!("{}.", upper_first(&error.to_string())))
            }
            ApiKeyError::InvalidModels(message) => ApiError::invalid_param("invalid_models", "models", message),
            ApiKeyError::InvalidGrace => {
                ApiError::invalid_param("invalid_request", "expire_old_in_seconds", format!("{}.", upper_first(&error.to_string())))
            }
            ApiKeyError::NotActive(_) | ApiKeyError::AlreadyReplaced(_) => {
                ApiError::conflict("key_not_active", format!("{}.", upper_first(&error.to_string())))
            }
            ApiKeyError::ChangedMeanwhile => ApiError::conflict("key_changed", format!("{}.", upper_first(&error.to_string()))),
            ApiKeyError::BeyondGrant(beyond) => {
                ApiError::forbidden(format!("{}.", upper_first(&beyond.to_string()))).with_param(beyond.field())
            }
            ApiKeyError::TooManyKeys => ApiError::conflict("too_many_keys", error.to_string()),
            ApiKeyError::NotFound => ApiError::not_found("No API key with that id."),
            ApiKeyError::NotShared(_) => ApiError::unavailable_because(
                "The change (a revocation, an edit or a roll) could not be made effective on every server right now; nothing was changed. Try again in a moment.",
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
    match &principal.method {
        AuthMethod::Session => Grant::user(limits),
        AuthMethod::ApiKey(key) => Grant::key(&key.terms(), limits),
    }
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    // Anything that is not one of the caller's key ids is simply not found.
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| ApiError::not_found("No API key with that id."))
}

fn audit(principal: &Principal, ip: &ClientIp, headers: &HeaderMap) -> AuditContext {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    AuditContext::new(Some(principal.user_id), ip.0, user_agent)
}

/// The list query, read: each bad value is a 400 naming its parameter.
fn key_query(query: Result<Query<ListKeysQuery>, QueryRejection>) -> Result<KeyQuery, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::bad_request("The query string could not be read."))?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(KeyStatus::parse(text).ok_or_else(|| {
            ApiError::invalid_param("invalid_request", "status", "status must be one of `active`, `expired`, `revoked`.")
        })?),
    };
    let limit = match query.limit.as_deref() {
        None => 100,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::invalid_param("invalid_request", "limit", "limit must be a whole number from 1 to 100."))?,
    };
    let before_id =
        match query.after.as_deref() {
            None => None,
            Some(text) => Some(text.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                ApiError::invalid_param("invalid_request", "after", "after must be the id of a key (a positive number).")
            })?),
        };
    let search = query.search.filter(|s| !s.trim().is_empty());
    if search.as_ref().is_some_and(|s| s.chars().count() > 100) {
        return Err(ApiError::invalid_param("invalid_request", "search", "search may be at most 100 characters."));
    }
    Ok(KeyQuery { status, search, limit, offset: 0, before_id })
}

/// The caller's keys, newest first.
#[utoipa::path(get, path = "/v1/keys", operation_id = "listKeys", tag = "keys", params(ListKeysQuery),
    responses((status = 200, description = "The caller's keys, newest first (revoked and expired ones included unless `status` says otherwise).", body = KeyList,
            example = json!({"object": "list", "data": [{"id": 42, "object": "api_key", "name": "Nightly evals", "hint": "wj_live_a1b2…x9y8", "permissions": ["inference"], "status": "active", "created_at": 1767225600, "last_used_at": null, "revoked_at": null, "expires_at": null, "rate_limit_per_minute": null, "models": null, "daily_token_limit": null, "last_used_ip": null, "last_used_user_agent": null, "replaced_by": null}], "has_more": false, "last_id": 42})),
        (status = 400, description = "`invalid_request`: a query parameter is invalid (`param` names it).", body = crate::server::error::ErrorBody),
        (status = 403, description = "`forbidden`: the credentials lack the `keys:read` permission.", body = crate::server::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ListKeysQuery>, QueryRejection>,
) -> Result<Json<KeyList>, ApiError> {
    principal.require(Permission::KeysRead)?;
    let query = key_query(query)?;
    let page = state.keys.page(principal.user_id, &query).await?;
    let last_id = page.keys.last().map(|k| k.id);
    Ok(Json(KeyList {
        object: "list",
        data: page.keys.into_iter().map(KeyObject::from_record).collect(),
        has_more: page.has_more,
        last_id,
    }))
}

/// One of the caller's keys.
#[utoipa::path(get, path = "/v1/keys/{id}", operation_id = "getKey", tag = "keys",
    params(("id" = i64, Path, description = "The key's id.", minimum = 1)),
    responses((status = 200, description = "The key (never the key itself).", body = KeyObject, example = json!({"id": 42, "object": "api_key", "name": "Nightly evals", "hint": "wj_live_a1b2…x9y8", "permissions": ["inference"], "status": "active", "created_at": 1767225600, "last_used_at": null, "revoked_at": null, "expires_at": null, "rate_limit_per_minute": null, "models": null, "daily_token_limit": null, "last_used_ip": null, "last_used_user_agent": null, "replaced_by": null})),
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
            example = json!({"id": 42, "object": "api_key", "name": "Nightly evals", "hint": "wj_live_a1b2…x9y8", "permissions": ["inference"], "status": "active", "created_at": 1767225600, "last_used_at": null, "revoked_at": null, "expires_at": null, "rate_limit_per_minute": null, "models": null, "daily_token_limit": null, "last_used_ip": null, "last_used_user_agent": null, "replaced_by": null, "key": "wj_live_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6x9y8"})),
        (status = 400, description = "`invalid_name`, `invalid_expiry` or `invalid_rate_limit`: a field is out of range (`param` names it).", body = crate::server::error::ErrorBody),
        (status = 403, description = "`forbidden`: the credentials lack the `keys:write` permission, or ask for more than their own grant — permissions they do not have, an expiry later than their own, a rate limit above their own or the server's maximum (`param` names the field).", body = crate::server::error::ErrorBody),
        (status = 409, description = "`too_many_keys`: the caller has 100 active keys already.", body = crate::server::error::ErrorBody),
        (status = 422, description = "`invalid_request`: well-formed JSON that does not fit the schema (e.g. an unknown field).", body = crate::server::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ip: axum::Extension<ClientIp>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    principal.require(Permission::KeysWrite)?;
    let name = KeyName::parse(&body.name).map_err(ApiKeyError::InvalidName)?;
    let asked = NewKeyOptions {
        permissions: body.permissions,
        expires_at: body.expires_at.map(unix_time).transpose()?,
        rate_limit_per_minute: body.rate_limit_per_minute,
        models: body.models.map(|models| allow_list(&state, models)).transpose()?,
        daily_token_limit: body.daily_token_limit,
    };
    let grant = grant_of(&principal, state.config.rate_limits());
    let (record, key) = state.keys.create(principal.user_id, &grant, name, asked, &audit(&principal, &ip.0, &headers)).await?;
    let created = CreatedKey { key_object: KeyObject::from_record(record), key: key.into_secret() };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Edits a key: rename it, narrow its permissions, move its expiry earlier, change its rate
/// limit, models or daily token budget. Effective from the very next request, on every
/// instance.
///
/// An edit never widens a key's permissions nor moves its expiry later (403, `param` naming
/// the field); the rate limit, models and budget may move either way within the caller's
/// own grant, as for a new key (403 beyond it). Absent fields stay as they are; `null`
/// clears a field (the server's default rate limit, every model, no budget). Only active
/// keys can be edited (409 `key_not_active`). Nothing changes when any field is refused.
#[utoipa::path(patch, path = "/v1/keys/{id}", operation_id = "updateKey", tag = "keys",
    params(("id" = i64, Path, description = "The key's id.", minimum = 1)),
    request_body(content = UpdateKeyRequest, description = "The fields to change.",
        example = json!({"name": "Nightly evals (staging)", "models": ["claude-4-sonnet"], "daily_token_limit": 200000})),
    responses((status = 200, description = "The key as edited.", body = KeyObject),
        (status = 400, description = "`invalid_name`, `invalid_expiry`, `invalid_rate_limit`, `invalid_models` or `invalid_token_limit`: a field is out of range (`param` names it).", body = crate::server::error::ErrorBody),
        (status = 403, description = "`forbidden`: the credentials lack `keys:write`, or the edit would widen the key's permissions or expiry, or exceed the caller's own grant (`param` names the field).", body = crate::server::error::ErrorBody),
        (status = 404, description = "`not_found`: no key with that id among the caller's keys.", body = crate::server::error::ErrorBody),
        (status = 409, description = "`key_not_active`: the key is revoked or expired; `key_changed`: it was revoked, rolled or edited meanwhile (nothing changed: read it again).", body = crate::server::error::ErrorBody),
        (status = 422, description = "`invalid_request`: well-formed JSON that does not fit the schema (e.g. an unknown field, `null` for `name` or `permissions`).", body = crate::server::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ip: axum::Extension<ClientIp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateKeyRequest>,
) -> Result<Json<KeyObject>, ApiError> {
    principal.require(Permission::KeysWrite)?;
    let id = parse_id(&id)?;
    let name = not_null(body.name, "name")?.as_deref().map(KeyName::parse).transpose().map_err(ApiKeyError::InvalidName)?;
    let changes = KeyChanges {
        permissions: not_null(body.permissions, "permissions")?,
        expires_at: body.expires_at.map(|e| e.map(unix_time).transpose()).transpose()?,
        rate_limit_per_minute: body.rate_limit_per_minute,
        models: body.models.map(|m| m.map(|models| allow_list(&state, models)).transpose()).transpose()?,
        daily_token_limit: body.daily_token_limit,
    };
    let grant = grant_of(&principal, state.config.rate_limits());
    let record = state.keys.edit(principal.user_id, id, &grant, name, changes, &audit(&principal, &ip.0, &headers)).await?;
    Ok(Json(KeyObject::from_record(record)))
}

/// Rolls a key: a new key with the same name, permissions, expiry, rate limit, models and
/// budget is created and answered once; the old key keeps working for
/// `expire_old_in_seconds`, then is refused like any expired key.
///
/// The new key stays within the caller's own grant (403 otherwise). Both keys spend one daily
/// token budget. A key is rolled once (409 `key_not_active` for a rolled, revoked or expired
/// key): roll its replacement next time.
#[utoipa::path(post, path = "/v1/keys/{id}/roll", operation_id = "rollKey", tag = "keys",
    params(("id" = i64, Path, description = "The key's id.", minimum = 1)),
    request_body(content = Option<RollKeyRequest>, description = "Optional: how long the old key keeps working (default a day).",
        example = json!({"expire_old_in_seconds": 3600})),
    responses((status = 201, description = "The new key, with the raw key in `key` (shown this once), and `replaces`: the old key's id.", body = RolledKey),
        (status = 400, description = "`invalid_request`: `expire_old_in_seconds` is out of range.", body = crate::server::error::ErrorBody),
        (status = 403, description = "`forbidden`: the credentials lack `keys:write`, or the key has more than the caller's own grant.", body = crate::server::error::ErrorBody),
        (status = 404, description = "`not_found`: no key with that id among the caller's keys.", body = crate::server::error::ErrorBody),
        (status = 409, description = "`key_not_active`: the key is revoked, expired or already rolled.", body = crate::server::error::ErrorBody)))]
pub async fn roll(
    State(state): State<AppState>,
    principal: Principal,
    ip: axum::Extension<ClientIp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    principal.require(Permission::KeysWrite)?;
    let id = parse_id(&id)?;
    // The body is optional: none (or empty) asks for the default grace period.
    let grace = if body.iter().all(u8::is_ascii_whitespace) {
        DEFAULT_ROLL_GRACE_SECONDS
    } else {
        let request: RollKeyRequest = crate::server::v1::json::parse(&headers, &body)?;
        request.expire_old_in_seconds.unwrap_or(DEFAULT_ROLL_GRACE_SECONDS)
    };
    let grant = grant_of(&principal, state.config.rate_limits());
    let rolled =
        state.keys.roll(principal.user_id, id, &grant, std::time::Duration::from_secs(grace), &audit(&principal, &ip.0, &headers)).await?;
    let created = CreatedKey { key_object: KeyObject::from_record(rolled.new), key: rolled.key.into_secret() };
    Ok((StatusCode::CREATED, Json(RolledKey { created, replaces: rolled.old.id })).into_response())
}

/// Revokes a key at once (idempotent).
#[utoipa::path(delete, path = "/v1/keys/{id}", operation_id = "revokeKey", tag = "keys",
    params(("id" = i64, Path, description = "The key's id.", minimum = 1)),
    responses((status = 200, description = "The revoked key; it is refused from the very next request. Revoking twice is fine.",
            body = KeyObject, example = json!({"id": 42, "object": "api_key", "name": "Nightly evals", "hint": "wj_live_a1b2…x9y8", "permissions": ["inference"], "status": "revoked", "created_at": 1767225600, "last_used_at": null, "revoked_at": 1767312000, "expires_at": null, "rate_limit_per_minute": null, "models": null, "daily_token_limit": null, "last_used_ip": null, "last_used_user_agent": null, "replaced_by": null})),
        (status = 403, description = "`forbidden`: the credentials lack the `keys:write` permission.", body = crate::server::error::ErrorBody),
        (status = 404, description = "`not_found`: no key with that id among the caller's keys.", body = crate::server::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    ip: axum::Extension<ClientIp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<KeyObject>, ApiError> {
    principal.require(Permission::KeysWrite)?;
    let id = parse_id(&id)?;
    let (record, _) = state.keys.revoke(principal.user_id, id, &audit(&principal, &ip.0, &headers)).await?;
    Ok(Json(KeyObject::from_record(record)))
}
