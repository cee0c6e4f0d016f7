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
    /// An administrator disabled a user (target `user:{id}`).
    pub const ADMIN_USER_DISABLE: &str = "admin.user_disable";
    /// An administrator enabled a disabled user again (target `user:{id}`).
    pub const ADMIN_USER_ENABLE: &str = "admin.user_enable";
    /// An administrator revoked someone's key (target `api_key:{id}`).
    pub const ADMIN_KEY_REVOKE: &str = "admin.key_revoke";
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
    record_about(db, ctx, action, target, detail, None).await
}

/// Writes one audit event that concerns `subject`, another user than the actor (their
/// account or key): it shows in the subject's security log too.
pub async fn record_about<C: ConnectionTrait>(
    db: &C,
    ctx: &AuditContext,
    action: &str,
    target: Option<String>,
    detail: Option<serde_json::Value>,
    subject: Option<i64>,
) -> Result<(), DbErr> {
    audit_events::ActiveModel {
        subject_user_id: Set(subject),
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

/// One audit event as the security log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEventRecord {
    pub id: i64,
    /// Who acted (`None`: nobody known, or a deleted user).
    pub actor_user_id: Option<i64>,
    /// Whose account or key it concerned, when not the actor's.
    pub subject_user_id: Option<i64>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What changed (JSON), when the event says.
    pub detail: Option<serde_json::Value>,
    pub created_at: chrono::DateTime<Utc>,
}

impl From<audit_events::Model> for AuditEventRecord {
    fn from(m: audit_events::Model) -> Self {
        Self {
            id: m.id,
            actor_user_id: m.actor_user_id,
            subject_user_id: m.subject_user_id,
            action: m.action,
            target: m.target,
            ip: m.ip,
            user_agent: m.user_agent,
            // A detail that is not JSON (it always is) is left out rather than failing the log.
            detail: m.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()),
            created_at: m.created_at,
        }
    }
}

/// The most events one read returns.
pub const MAX_PAGE: u64 = 100;

/// A page of events, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditEventRecord>,
    /// Older events follow.
    pub has_more: bool,
}

/// Reads the audit trail, always one user's own events: those they acted in, and those
/// that concerned their account or keys (an administrator's actions, shown without the
/// administrator's address and browser).
#[derive(Clone)]
pub struct AuditLog {
    db: sea_orm::DatabaseConnection,
}

impl AuditLog {
    pub fn new(db: sea_orm::DatabaseConnection) -> Self {
        Self { db }
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) of `user_id`'s events, newest first: only those
    /// older than `before_id` when given, only those on `target` (e.g. `api_key:42`) when given.
    pub async fn list(
        &self,
        user_id: i64,
        before_id: Option<i64>,
        limit: u64,
        target: Option<&str>,
    ) -> Result<Vec<AuditEventRecord>, DbErr> {
        self.fetch(user_id, before_id, limit.clamp(1, MAX_PAGE), target).await
    }

    /// Like [`Self::list`], and whether older events follow the page.
    pub async fn page(&self, user_id: i64, before_id: Option<i64>, limit: u64, target: Option<&str>) -> Result<AuditPage, DbErr> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut events = self.fetch(user_id, before_id, limit + 1, target).await?;
        let has_more = events.len() as u64 > limit;
        events.truncate(limit as usize);
        Ok(AuditPage { events, has_more })
    }

    async fn fetch(&self, user_id: i64, before_id: Option<i64>, limit: u64, target: Option<&str>) -> Result<Vec<AuditEventRecord>, DbErr> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
        let mut query = audit_events::Entity::find().filter(users_events(user_id));
        if let Some(before) = before_id {
            query = query.filter(audit_events::Column::Id.lt(before));
        }
        if let Some(target) = target {
            query = query.filter(audit_events::Column::Target.eq(target));
        }
        let rows = query.order_by_desc(audit_events::Column::Id).limit(limit).all(&self.db).await?;
        Ok(rows.into_iter().map(AuditEventRecord::from).map(|e| e.seen_by(user_id)).collect())
    }

    /// Where the page of `page` events just newer than the page before `before_id` starts:
    /// `None` when no event of `user_id` is newer (this is the first page), `Some(None)` when
    /// the newer page is the first one, `Some(Some(id))` when it is the page before `id`.
    pub async fn newer_page(&self, user_id: i64, before_id: i64, page: u64, target: Option<&str>) -> Result<Option<Option<i64>>, DbErr> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
        let mut query = audit_events::Entity::find()
            .select_only()
            .column(audit_events::Column::Id)
            .filter(users_events(user_id))
            .filter(audit_events::Column::Id.gte(before_id));
        if let Some(target) = target {
            query = query.filter(audit_events::Column::Target.eq(target));
        }
        let page = page.clamp(1, MAX_PAGE);
        let ids: Vec<i64> = query.order_by_asc(audit_events::Column::Id).limit(page + 1).into_tuple().all(&self.db).await?;
        Ok(newer_cursor(&ids, page))
    }
}

/// The events of `user_id`'s security log: those they acted in or that concerned them.
fn users_events(user_id: i64) -> sea_orm::Condition {
    use sea_orm::ColumnTrait;
    sea_orm::Condition::any().add(audit_events::Column::ActorUserId.eq(user_id)).add(audit_events::Column::SubjectUserId.eq(user_id))
}

impl AuditEventRecord {
    /// The event as `user_id` may see it: where someone else (an administrator) acted from
    /// is theirs, not the user's.
    fn seen_by(mut self, user_id: i64) -> Self {
        if self.actor_user_id != Some(user_id) {
            self.ip = None;
            self.user_agent = None;
        }
        self
    }
}

/// See [`AuditLog::newer_page`]: `ascending` are the ids from the current page's cursor up.
fn newer_cursor(ascending: &[i64], page: u64) -> Option<Option<i64>> {
    match ascending.len() as u64 {
        0 => None,
        n if n <= page => Some(None),
        _ => Some(Some(ascending[page as usize])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_page_starts_where_the_ids_say() {
        assert_eq!(newer_cursor(&[], 2), None, "nothing newer: this is the first page");
        assert_eq!(newer_cursor(&[7, 9], 2), Some(None), "a short newer page is the first page");
        assert_eq!(newer_cursor(&[7, 9, 12], 2), Some(Some(12)), "the page before 12 holds 7 and 9");
    }

    #[test]
    fn a_detail_that_is_not_json_is_left_out() {
        let model = audit_events::Model {
            id: 1,
            actor_user_id: Some(2),
            action: action::API_KEY_CREATE.into(),
            target: Some("api_key:3".into()),
            ip: None,
            created_at: Utc::now(),
            user_agent: None,
            detail: Some("not json".into()),
            subject_user_id: None,
        };
        assert_eq!(AuditEventRecord::from(model.clone()).detail, None);
        let with = audit_events::Model { detail: Some(r#"{"name":"CI"}"#.into()), ..model };
        assert_eq!(AuditEventRecord::from(with).detail, Some(serde_json::json!({"name": "CI"})));
    }
}
