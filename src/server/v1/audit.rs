//! `GET /v1/audit-events`: the caller's security log (sign-ins, sign-outs, key changes),
//! newest first, a page at a time.

use axum::{
    Json,
    extract::{RawQuery, State},
};
use serde::Serialize;

use crate::{
    domain::audit::AuditEventRecord,
    permissions::Permission,
    server::{error::ApiError, state::AppState, v1::auth::Principal},
};

/// The page size when `limit` is not given.
pub const DEFAULT_LIMIT: u64 = 20;
/// The largest page.
pub const MAX_LIMIT: u64 = 100;

/// One event of the caller's security log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEventObject {
    pub id: i64,
    /// Always `audit_event`.
    pub object: &'static str,
    /// What happened: `session.sign_in`, `session.sign_out`, `session.revoke`,
    /// `session.sign_out_everywhere`, `api_key.create`, `api_key.edit`, `api_key.roll`,
    /// `api_key.revoke`, or an administrator's `admin.user_disable`, `admin.user_enable`,
    /// `admin.key_revoke` (about the caller's account or key: then without `ip` and
    /// `user_agent`, which are the administrator's).
    pub action: String,
    /// What it happened to, e.g. `api_key:42` or `session:7`.
    pub target: Option<String>,
    /// The address the action came from.
    pub ip: Option<String>,
    /// The User-Agent it came with.
    pub user_agent: Option<String>,
    /// What changed, when the event says (e.g. `{"name": "CI", "changed": ["models"]}`);
    /// never a secret.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<AuditEventRecord> for AuditEventObject {
    fn from(r: AuditEventRecord) -> Self {
        Self {
            id: r.id,
            object: "audit_event",
            action: r.action,
            target: r.target,
            ip: r.ip,
            user_agent: r.user_agent,
            detail: r.detail,
            created_at: r.created_at.timestamp(),
        }
    }
}

/// A page of events.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEventList {
    /// Always `list`.
    pub object: &'static str,
    /// Newest first.
    pub data: Vec<AuditEventObject>,
    /// Older events follow: ask again with `after` = `last_id`.
    pub has_more: bool,
    /// The id of the last (oldest) event of this page; `null` when the page is empty.
    pub last_id: Option<i64>,
}

/// The page asked for.
#[derive(Debug, PartialEq, Eq)]
struct PageQuery {
    limit: u64,
    after: Option<i64>,
}

/// Reads `limit` and `after` from the query string; other parameters are ignored (as
/// OpenAI's list endpoints do), a malformed, out-of-range or repeated `limit` or `after` is
/// 400 `invalid_request` naming it.
fn parse_query(raw: Option<&str>) -> Result<PageQuery, ApiError> {
    let mut limit = None;
    let mut after = None;
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "limit" => {
                let parsed = value.trim().parse::<u64>().ok().filter(|n| (1..=MAX_LIMIT).contains(n));
                let parsed = parsed.ok_or_else(|| {
                    ApiError::invalid_param("invalid_request", "limit", format!("limit must be a whole number from 1 to {MAX_LIMIT}."))
                })?;
                if limit.replace(parsed).is_some() {
                    return Err(ApiError::invalid_param("invalid_request", "limit", "limit is given more than once."));
                }
            }
            "after" => {
                let parsed = value.trim().parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                    ApiError::invalid_param("invalid_request", "after", "after must be the id of an event (a positive whole number).")
                })?;
                if after.replace(parsed).is_some() {
                    return Err(ApiError::invalid_param("invalid_request", "after", "after is given more than once."));
                }
            }
            _ => {}
        }
    }
    Ok(PageQuery { limit: limit.unwrap_or(DEFAULT_LIMIT), after })
}

/// The caller's security log, newest first.
///
/// Every sign-in, sign-out and API key change the caller made, with the address and
/// browser (User-Agent) it came from, and what an administrator did to the caller's account
/// or keys. Page with `after`: pass the previous page's `last_id` while `has_more` is true.
#[utoipa::path(get, path = "/v1/audit-events", operation_id = "listAuditEvents", tag = "account",
    params(
        ("limit" = Option<u64>, Query, description = "Events per page, 1–100 (default 20).", minimum = 1, maximum = 100),
        ("after" = Option<i64>, Query, description = "The `last_id` of the previous page: only older events are returned.", minimum = 1)
    ),
    responses((status = 200, description = "The caller's events, newest first. Unknown query parameters are ignored.", body = AuditEventList,
            example = json!({"object": "list", "data": [{"id": 118, "object": "audit_event", "action": "api_key.create", "target": "api_key:42", "ip": "203.0.113.7", "user_agent": "curl/8.5.0", "detail": {"name": "Nightly evals"}, "created_at": 1767225600}], "has_more": true, "last_id": 118})),
        (status = 400, description = "`invalid_request`: `limit` or `after` is not a number, out of range or repeated (`param` names it).", body = crate::server::error::ErrorBody),
        (status = 403, description = "`forbidden`: the credentials lack the `keys:read` permission.", body = crate::server::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditEventList>, ApiError> {
    principal.require(Permission::KeysRead)?;
    let query = parse_query(query.as_deref())?;
    let page = state.audit.page(principal.user_id, query.after, query.limit, None).await?;
    let last_id = page.events.last().map(|e| e.id);
    Ok(Json(AuditEventList {
        object: "list",
        data: page.events.into_iter().map(AuditEventObject::from).collect(),
        has_more: page.has_more,
        last_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(raw: &str) -> Option<&'static str> {
        parse_query(Some(raw)).err().map(|e| e.param().expect("a param"))
    }

    #[test]
    fn the_query_is_read_and_checked() {
        assert_eq!(parse_query(None).ok(), Some(PageQuery { limit: 20, after: None }));
        assert_eq!(parse_query(Some("limit=100&after=7&foo=bar")).ok(), Some(PageQuery { limit: 100, after: Some(7) }));
        assert_eq!(parse_query(Some("limit=1")).ok(), Some(PageQuery { limit: 1, after: None }));
        for bad in ["limit=0", "limit=101", "limit=abc", "limit=", "limit=-1", "limit=1&limit=2"] {
            assert_eq!(param_of(bad), Some("limit"), "{bad}");
        }
        for bad in ["after=0", "after=x", "after=-3", "after=", "after=1&after=2", "after=99999999999999999999"] {
            assert_eq!(param_of(bad), Some("after"), "{bad}");
        }
    }
}
