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
}

/// Who acted and from where, for an audit event.
#[derive(Clone, Debug, Default)]
pub struct AuditContext {
    pub actor_user_id: Option<i64>,
    pub ip: Option<String>,
}

/// Writes one audit event (inside the caller's transaction when given one).
pub async fn record<C: ConnectionTrait>(db: &C, ctx: &AuditContext, action: &str, target: Option<String>) -> Result<(), DbErr> {
    audit_events::ActiveModel {
        actor_user_id: Set(ctx.actor_user_id),
        action: Set(action.to_owned()),
        target: Set(target),
        ip: Set(ctx.ip.clone()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
