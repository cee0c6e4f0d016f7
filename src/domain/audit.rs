//! The audit trail: who did what to which object, and from where.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

use crate::entities::audit_events;

/// Actions recorded in `audit_events.action`.
pub mod action {
    pub const SIGN_IN: &str = "session.sign_in";
    pub const SIGN_OUT: &str = "session.sign_out";
    pub const SESSION_REVOKE: &str = "session.revoke";
    pub const SIGN_OUT_EVERYWHERE: &str = "session.sign_out_everywhere";
    pub const API_KEY_CREATE: &str = "api_key.create";
    pub const API_KEY_REVOKE: &str = "api_key.revoke";
    pub const API_KEY_EDIT: &str = "api_key.edit";
    pub const API_KEY_ROLL: &str = "api_key.roll";
}

/// The longest user agent kept in an audit event (or as a key's last use).
pub const MAX_USER_AGENT_CHARS: usize = 300;

/// Who acted and from where, for an audit event.
#[derive(Clone, Debug, Default)]
pub struct AuditContext {
    pub actor_user_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl AuditContext {
    /// The context of `actor` acting from `ip` with `user_agent` (cut to
    /// [`MAX_USER_AGENT_CHARS`]; an empty one is none).
    pub fn new(actor: Option<i64>, ip: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            actor_user_id: actor,
            ip: ip.map(|ip| ip.to_canonical().to_string()),
            user_agent: user_agent.map(str::trim).filter(|ua| !ua.is_empty()).map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
        }
    }
}

/// Records the event of an action that has already taken effect: a failure to record it is
/// logged, never undoes the action nor fails the request. (Actions whose event must commit
/// with them, like key creation, call [`record`] inside their transaction.)
pub async fn record_after<C: ConnectionTrait>(db: &C, ctx: &AuditContext, action: &str, target: Option<String>) {
    if let Err(error) = record(db, ctx, action, target).await {
        tracing::warn!(error = %crate::domain::describe_db_error(&error), action, "audit event not recorded");
    }
}

/// Writes one audit event (inside the caller's transaction when given one).
pub async fn record<C: ConnectionTrait>(db: &C, ctx: &AuditContext, action: &str, target: Option<String>) -> Result<(), DbErr> {
    record_detailed(db, ctx, action, target, None).await
}

/// Writes one audit event with `detail` (what changed: never a secret).
pub async fn record_detailed<C: ConnectionTrait>(
    db: &C,
    ctx: &AuditContext,
    action: &str,
    target: Option<String>,
    detail: Option<serde_json::Value>,
) -> Result<(), DbErr> {
    audit_events::ActiveModel {
        actor_user_id: Set(ctx.actor_user_id),
        action: Set(action.to_owned()),
        target: Set(target),
        ip: Set(ctx.ip.clone()),
        user_agent: Set(ctx.user_agent.clone()),
        detail: Set(detail.map(|d| d.to_string())),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
