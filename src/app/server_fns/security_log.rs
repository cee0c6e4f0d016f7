//! Settings > Security log and the key detail page: the user's own audit events, and one
//! key's settings, usage and events.

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::wire::PageCursor;
use crate::wire::{KeyDetailView, PortalError, SecurityLogView};

/// Events on a page of the security log.
pub const LOG_PAGE: u64 = 50;
/// Events on a key's detail page.
pub const KEY_EVENTS: u64 = 20;

#[cfg(feature = "ssr")]
pub(crate) fn event_view(record: crate::domain::audit::AuditEventRecord) -> crate::wire::AuditEventView {
    crate::wire::AuditEventView {
        id: record.id,
        action: record.action,
        target: record.target,
        ip: record.ip,
        user_agent: record.user_agent,
        detail: record.detail,
        created_at: record.created_at.timestamp_millis(),
    }
}

#[cfg(feature = "ssr")]
fn bucket_view(bucket: crate::domain::usage::UsageBucket) -> crate::wire::UsageBucketView {
    crate::wire::UsageBucketView { start: bucket.start.timestamp_millis(), requests: bucket.requests, tokens: bucket.tokens }
}

/// A page of the signed-in user's security log, newest first: the newest page, or the one
/// of events older than `before`.
#[server(prefix = "/api", endpoint = "security_log")]
pub async fn security_log(before: Option<i64>) -> Result<SecurityLogView, PortalError> {
    use super::support::{signed_in, unavailable};
    let (state, me) = signed_in()?;
    // An impossible cursor is the first page rather than an error: it only comes from a URL.
    let before = before.filter(|b| *b > 0);
    let page = state.audit.page(me.user.id, before, LOG_PAGE, None).await.map_err(unavailable)?;
    let newer = match before {
        None => None,
        Some(before) => state.audit.newer_page(me.user.id, before, LOG_PAGE, None).await.map_err(unavailable)?.map(|cursor| match cursor {
            None => PageCursor::First,
            Some(id) => PageCursor::Before(id),
        }),
    };
    let older = if page.has_more { page.events.last().map(|e| e.id) } else { None };
    Ok(SecurityLogView {
        events: page.events.into_iter().map(event_view).collect(),
        older,
        newer,
        now_ms: chrono::Utc::now().timestamp_millis(),
    })
}

/// One of the signed-in user's keys with its usage (per hour for a day, per day for a month)
/// and its latest events; another user's key is not found (404).
#[server(prefix = "/api", endpoint = "api_key_detail")]
pub async fn api_key_detail(id: i64) -> Result<KeyDetailView, PortalError> {
    use super::support::{signed_in, unavailable};
    use crate::domain::usage::Granularity;
    // Owner-scoped: another user's id answers 404 (and sets the status).
    let key = super::api_keys::get_api_key(id).await?;
    let (state, me) = signed_in()?;
    let now = chrono::Utc::now();
    let hourly = state.usage.series(me.user.id, key.id, Granularity::Hour, now).await.map_err(unavailable)?;
    let daily = state.usage.series(me.user.id, key.id, Granularity::Day, now).await.map_err(unavailable)?;
    let target = format!("api_key:{}", key.id);
    let events = state.audit.list(me.user.id, None, KEY_EVENTS, Some(&target)).await.map_err(unavailable)?;
    let replaced_by_name = match key.replaced_by {
        Some(next) => state.keys.get(me.user.id, next).await.map_err(unavailable)?.map(|k| k.name),
        None => None,
    };
    Ok(KeyDetailView {
        key,
        replaced_by_name,
        hourly: hourly.into_iter().map(bucket_view).collect(),
        daily: daily.into_iter().map(bucket_view).collect(),
        events: events.into_iter().map(event_view).collect(),
        now_ms: now.timestamp_millis(),
    })
}
