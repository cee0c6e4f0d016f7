//! `/v1/admin/…`: what administrators (`WJ_ADMIN_EMAILS`) do — people (search, disable,
//! enable), anyone's key (by id or hint, revoke), everyone's security log. Every handler asks
//! the domain whether the caller is an administrator *first*, before reading its path or
//! query, so anyone else gets the same 403 whatever the id.

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, header},
};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        admin::{Admin, AdminError, LoggedEvent, OwnedKey, Person},
        audit::AuditContext,
        sessions::SessionError,
    },
    server::{
        error::ApiError,
        security::ClientIp,
        state::AppState,
        v1::{audit::AuditEventObject, auth::Principal, keys::KeyObject},
    },
};

/// The one translation of an administrator's failure into an API answer.
impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Forbidden => {
                ApiError::forbidden("Only an administrator may do this, signed in or with an API key that has every permission (`all`).")
            }
            AdminError::UserNotFound => ApiError::not_found("No user with that id."),
            AdminError::KeyNotFound => ApiError::not_found("No API key with that id."),
            AdminError::SelfDisable => {
                ApiError::conflict("cannot_disable_self", "You cannot disable your own account; ask another administrator.")
            }
            AdminError::InvalidSearch => ApiError::invalid_param("invalid_request", "search", format!("{}.", capitalised(&error))),
            AdminError::Key(e) => e.into(),
            AdminError::Session(SessionError::Database(e)) | AdminError::Database(e) => e.into(),
            AdminError::Session(SessionError::NotShared(_)) => ApiError::unavailable_because(
                "The change could not be made effective on every server right now; nothing was changed. Try again in a moment.",
            ),
        }
    }
}

fn capitalised(error: &AdminError) -> String {
    let text = error.to_string();
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A person, as administrators see them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserObject {
    pub id: i64,
    /// Always `user`.
    pub object: &'static str,
    /// The verified email they sign in with.
    pub email: String,
    pub name: String,
    /// `active` or `disabled`.
    pub status: &'static str,
    /// Whether they are an administrator (`WJ_ADMIN_EMAILS`).
    pub admin: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub last_sign_in_at: i64,
    pub disabled_at: Option<i64>,
}

impl From<Person> for UserObject {
    fn from(p: Person) -> Self {
        Self {
            id: p.id,
            object: "user",
            email: p.email,
            name: p.name,
            status: if p.disabled_at.is_some() { "disabled" } else { "active" },
            admin: p.admin,
            created_at: p.created_at.timestamp(),
            last_sign_in_at: p.last_sign_in_at.timestamp(),
            disabled_at: p.disabled_at.map(|t| t.timestamp()),
        }
    }
}

/// A page of people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    /// Always `list`.
    pub object: &'static str,
    /// Newest first.
    pub data: Vec<UserObject>,
    /// More match: ask again with `after` = `last_id`.
    pub has_more: bool,
    pub last_id: Option<i64>,
}

/// Anyone's key, with its owner (never the key itself; where it was last used from is its
/// owner's to see).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminKeyObject {
    #[serde(flatten)]
    pub key: KeyObject,
    /// The key's owner (`null` only if their account was deleted).
    pub owner: Option<UserObject>,
}

impl From<OwnedKey> for AdminKeyObject {
    fn from(owned: OwnedKey) -> Self {
        let mut key = KeyObject::from_record(owned.key);
        key.last_used_ip = None;
        key.last_used_user_agent = None;
        Self { key, owner: owned.owner.map(UserObject::from) }
    }
}

/// The keys a hint matches.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminKeyList {
    /// Always `list`.
    pub object: &'static str,
    /// Newest first (a hint almost always names one key).
    pub data: Vec<AdminKeyObject>,
    /// Always `false` (at most 20 keys share a hint here).
    pub has_more: bool,
    pub last_id: Option<i64>,
}

/// One event of everyone's security log, with whose it is.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminAuditEventObject {
    #[serde(flatten)]
    pub event: AuditEventObject,
    /// Who acted.
    pub actor_user_id: Option<i64>,
    pub actor_email: Option<String>,
    /// Whose account or key it concerned, when not the actor's (an administrator's action).
    pub subject_user_id: Option<i64>,
    pub subject_email: Option<String>,
}

impl From<LoggedEvent> for AdminAuditEventObject {
    fn from(e: LoggedEvent) -> Self {
        let (actor_user_id, subject_user_id) = (e.event.actor_user_id, e.event.subject_user_id);
        Self { event: e.event.into(), actor_user_id, actor_email: e.actor_email, subject_user_id, subject_email: e.subject_email }
    }
}

/// A page of everyone's events.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminAuditEventList {
    /// Always `list`.
    pub object: &'static str,
    /// Newest first.
    pub data: Vec<AdminAuditEventObject>,
    /// Older events follow: ask again with `after` = `last_id`.
    pub has_more: bool,
    pub last_id: Option<i64>,
}

/// The query of `GET /v1/admin/users`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Only people whose email or name contains this text (any case), at most 100 characters.
    pub search: Option<String>,
    /// How many to answer, 1–100 (default 100).
    pub limit: Option<String>,
    /// A cursor: only people older than the one with this id (the previous page's `last_id`).
    pub after: Option<String>,
}

/// The query of `GET /v1/admin/keys`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindKeysQuery {
    /// The key's hint as lists show it, e.g. `wj_live_a1b2…x9y8` (`...` for `…` is fine).
    pub hint: Option<String>,
}

/// The query of `GET /v1/admin/audit-events`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminEventsQuery {
    /// Events per page, 1–100 (default 20).
    pub limit: Option<String>,
    /// The `last_id` of the previous page: only older events.
    pub after: Option<String>,
}

/// The caller, if an administrator acting with every permission; 403 otherwise (first).
async fn admin(state: &AppState, principal: &Principal) -> Result<Admin, ApiError> {
    Ok(state.admin.authorize(principal.user_id, principal.permissions).await?)
}

fn audit(admin: &Admin, ip: &ClientIp, headers: &HeaderMap) -> AuditContext {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    AuditContext::new(Some(admin.user_id()), ip.0, user_agent)
}

/// An id in a path: anything but a positive number names nothing.
fn parse_id(raw: &str, not_found: AdminError) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| not_found.into())
}

fn limit_of(raw: Option<&str>, default: u64) -> Result<u64, ApiError> {
    match raw {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::invalid_param("invalid_request", "limit", "limit must be a whole number from 1 to 100.")),
    }
}

fn after_of(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|text| {
        text.trim().parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
            ApiError::invalid_param("invalid_request", "after", "after must be the `last_id` of a previous page (a positive number).")
        })
    })
    .transpose()
}

fn unreadable(_: QueryRejection) -> ApiError {
    ApiError::bad_request("The query string could not be read.")
}

const FORBIDDEN: &str = "`forbidden`: the caller is not an administrator, or calls with an API key that lacks some permission (administrators' keys need `all`). Answered before the id is looked at.";

/// People, newest first (administrators only).
#[utoipa::path(get, path = "/v1/admin/users", operation_id = "adminListUsers", tag = "admin", params(ListUsersQuery),
    responses((status = 200, description = "People whose email or name contains `search`, newest first.", body = UserList,
            example = json!({"object": "list", "data": [{"id": 7, "object": "user", "email": "ada@example.com", "name": "Ada Lovelace", "status": "active", "admin": false, "created_at": 1767225600, "last_sign_in_at": 1767312000, "disabled_at": null}], "has_more": false, "last_id": 7})),
        (status = 400, description = "`invalid_request`: `search`, `limit` or `after` is invalid (`param` names it).", body = crate::server::error::ErrorBody),
        (status = 403, description = FORBIDDEN, body = crate::server::error::ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ListUsersQuery>, QueryRejection>,
) -> Result<Json<UserList>, ApiError> {
    let admin = admin(&state, &principal).await?;
    let Query(query) = query.map_err(unreadable)?;
    let (limit, after) = (limit_of(query.limit.as_deref(), 100)?, after_of(query.after.as_deref())?);
    let page = state.admin.people(&admin, query.search.as_deref(), limit, after).await?;
    let last_id = page.people.last().map(|p| p.id);
    Ok(Json(UserList { object: "list", data: page.people.into_iter().map(UserObject::from).collect(), has_more: page.has_more, last_id }))
}

/// Disables a person: their sessions end and their keys are refused from the very next
/// request, on every instance; they cannot sign in until enabled. Not yourself (409).
#[utoipa::path(post, path = "/v1/admin/users/{id}/disable", operation_id = "adminDisableUser", tag = "admin",
    params(("id" = i64, Path, description = "The user's id.", minimum = 1)),
    responses((status = 200, description = "The person, disabled (disabling twice is fine).", body = UserObject),
        (status = 403, description = FORBIDDEN, body = crate::server::error::ErrorBody),
        (status = 404, description = "`not_found`: no user with that id.", body = crate::server::error::ErrorBody),
        (status = 409, description = "`cannot_disable_self`: administrators cannot disable their own account.", body = crate::server::error::ErrorBody)))]
pub async fn disable_user(
    State(state): State<AppState>,
    principal: Principal,
    ip: axum::Extension<ClientIp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<UserObject>, ApiError> {
    let admin = admin(&state, &principal).await?;
    let id = parse_id(&id, AdminError::UserNotFound)?;
    Ok(Json(state.admin.disable(&admin, id, &audit(&admin, &ip.0, &headers)).await?.into()))
}

/// Enables a disabled person: they can sign in again (their old sessions stay ended) and
/// their keys that are neither revoked nor expired work again.
#[utoipa::path(post, path = "/v1/admin/users/{id}/enable", operation_id = "adminEnableUser", tag = "admin",
    params(("id" = i64, Path, description = "The user's id.", minimum = 1)),
    responses((status = 200, description = "The person, enabled (enabling twice is fine).", body = UserObject),
        (status = 403, description = FORBIDDEN, body = crate::server::error::ErrorBody),
        (status = 404, description = "`not_found`: no user with that id.", body = crate::server::error::ErrorBody)))]
pub async fn enable_user(
    State(state): State<AppState>,
    principal: Principal,
    ip: axum::Extension<ClientIp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<UserObject>, ApiError> {
    let admin = admin(&state, &principal).await?;
    let id = parse_id(&id, AdminError::UserNotFound)?;
    Ok(Json(state.admin.enable(&admin, id, &audit(&admin, &ip.0, &headers)).await?.into()))
}

/// Finds anyone's keys by hint (administrators only).
#[utoipa::path(get, path = "/v1/admin/keys", operation_id = "adminFindKeys", tag = "admin", params(FindKeysQuery),
    responses((status = 200, description = "The keys with that hint and their owners (an empty list when none).", body = AdminKeyList),
        (status = 400, description = "`invalid_request`: `hint` is missing.", body = crate::server::error::ErrorBody),
        (status = 403, description = FORBIDDEN, body = crate::server::error::ErrorBody)))]
pub async fn find_keys(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<FindKeysQuery>, QueryRejection>,
) -> Result<Json<AdminKeyList>, ApiError> {
    let admin = admin(&state, &principal).await?;
    let Query(query) = query.map_err(unreadable)?;
    let hint = query.hint.filter(|h| !h.trim().is_empty() && h.chars().count() <= 100).ok_or_else(|| {
        ApiError::invalid_param("invalid_request", "hint", "hint must be a key's hint as lists show it, e.g. wj_live_a1b2…x9y8.")
    })?;
    let keys = state.admin.keys_by_hint(&admin, &hint).await?;
    let last_id = keys.last().map(|k| k.key.id);
    Ok(Json(AdminKeyList { object: "list", data: keys.into_iter().map(AdminKeyObject::from).collect(), has_more: false, last_id }))
}

/// Anyone's key by id, with its owner (administrators only).
#[utoipa::path(get, path = "/v1/admin/keys/{id}", operation_id = "adminGetKey", tag = "admin",
    params(("id" = i64, Path, description = "The key's id.", minimum = 1)),
    responses((status = 200, description = "The key (never the key itself) and its owner.", body = AdminKeyObject),
        (status = 403, description = FORBIDDEN, body = crate::server::error::ErrorBody),
        (status = 404, description = "`not_found`: no key with that id.", body = crate::server::error::ErrorBody)))]
pub async fn get_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<AdminKeyObject>, ApiError> {
    let admin = admin(&state, &principal).await?;
    let id = parse_id(&id, AdminError::KeyNotFound)?;
    Ok(Json(state.admin.key(&admin, id).await?.into()))
}

/// Revokes anyone's key, at once and on every instance (idempotent). Its owner's security
/// log says an administrator revoked it.
#[utoipa::path(delete, path = "/v1/admin/keys/{id}", operation_id = "adminRevokeKey", tag = "admin",
    params(("id" = i64, Path, description = "The key's id.", minimum = 1)),
    responses((status = 200, description = "The revoked key and its owner.", body = AdminKeyObject),
        (status = 403, description = FORBIDDEN, body = crate::server::error::ErrorBody),
        (status = 404, description = "`not_found`: no key with that id.", body = crate::server::error::ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    ip: axum::Extension<ClientIp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<AdminKeyObject>, ApiError> {
    let admin = admin(&state, &principal).await?;
    let id = parse_id(&id, AdminError::KeyNotFound)?;
    Ok(Json(state.admin.revoke_key(&admin, id, &audit(&admin, &ip.0, &headers)).await?.into()))
}

/// Everyone's security log, newest first, with whose each event is (administrators only).
#[utoipa::path(get, path = "/v1/admin/audit-events", operation_id = "adminListAuditEvents", tag = "admin", params(AdminEventsQuery),
    responses((status = 200, description = "Everyone's events, newest first.", body = AdminAuditEventList),
        (status = 400, description = "`invalid_request`: `limit` or `after` is invalid (`param` names it).", body = crate::server::error::ErrorBody),
        (status = 403, description = FORBIDDEN, body = crate::server::error::ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<AdminEventsQuery>, QueryRejection>,
) -> Result<Json<AdminAuditEventList>, ApiError> {
    let admin = admin(&state, &principal).await?;
    let Query(query) = query.map_err(unreadable)?;
    let (limit, after) = (limit_of(query.limit.as_deref(), 20)?, after_of(query.after.as_deref())?);
    let page = state.admin.events(&admin, after, limit).await?;
    let last_id = page.events.last().map(|e| e.event.id);
    Ok(Json(AdminAuditEventList {
        object: "list",
        data: page.events.into_iter().map(AdminAuditEventObject::from).collect(),
        has_more: page.has_more,
        last_id,
    }))
}
