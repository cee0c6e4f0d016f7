//! Administrators (`WJ_ADMIN_EMAILS`): who is one — decided here once, for both doors — and
//! what only they may do: find people and disable or enable them, find anyone's key by id or
//! hint and revoke it, read everyone's security log. Every operation takes an [`Admin`], the
//! proof that [`AdminService::authorize`] said yes: no admin query runs without it.

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, Func, LikeExpr},
};

use crate::{
    domain::{
        api_keys::{ApiKeyError, ApiKeyRecord, ApiKeyService, service::escape_like},
        audit::{self, AuditContext, AuditEventRecord},
        auth_cache::Generations,
        sessions::{SeaOrmSessionStore, SessionError},
        users::{User, UserService},
    },
    entities::{audit_events, users},
    permissions::Permissions,
};

/// The administrators' email addresses, as configured (compared without regard to case).
#[derive(Clone, Debug, Default)]
pub struct Admins {
    emails: HashSet<String>,
}

impl Admins {
    pub fn new<S: AsRef<str>>(emails: impl IntoIterator<Item = S>) -> Self {
        Self { emails: emails.into_iter().map(|e| e.as_ref().trim().to_lowercase()).filter(|e| !e.is_empty()).collect() }
    }

    /// The one decision: an enabled user whose verified email (the one they signed in with)
    /// is configured.
    pub fn is_admin(&self, user: &User) -> bool {
        !user.disabled && self.emails.contains(&user.email.trim().to_lowercase())
    }
}

/// Proof that the caller is an administrator acting with their whole grant (a session, or
/// a key with every permission). Only [`AdminService::authorize`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admin {
    user_id: i64,
}

impl Admin {
    /// The administrator's user id (the actor of what they do).
    pub fn user_id(&self) -> i64 {
        self.user_id
    }
}

/// Why an administrator's request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not an administrator, or not with every permission (403, before any look-up).
    #[error("only an administrator, signed in or with a key that has every permission, may do this")]
    Forbidden,
    #[error("no user with that id")]
    UserNotFound,
    #[error("no API key with that id")]
    KeyNotFound,
    /// An administrator cannot lock themselves out.
    #[error("you cannot disable your own account; ask another administrator")]
    SelfDisable,
    #[error("search may be at most {MAX_SEARCH_CHARS} characters")]
    InvalidSearch,
    #[error(transparent)]
    Key(#[from] ApiKeyError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("database: {}", crate::domain::describe_db_error(.0))]
    Database(#[from] DbErr),
}

/// The longest search text.
pub const MAX_SEARCH_CHARS: usize = 100;
/// The most rows one page answers.
pub const MAX_PAGE: u64 = 100;

/// A person as administrators see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Whether they are an administrator (by `WJ_ADMIN_EMAILS`).
    pub admin: bool,
}

/// A page of people, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeoplePage {
    pub people: Vec<Person>,
    pub has_more: bool,
}

/// Anyone's key, with its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedKey {
    pub key: ApiKeyRecord,
    /// `None` only if the owner's row is gone.
    pub owner: Option<Person>,
}

/// An event of everyone's security log, with whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    pub event: AuditEventRecord,
    pub actor_email: Option<String>,
    pub subject_email: Option<String>,
}

/// A page of everyone's events, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsPage {
    pub events: Vec<LoggedEvent>,
    pub has_more: bool,
}

/// What administrators do.
#[derive(Clone)]
pub struct AdminService {
    db: DatabaseConnection,
    admins: Arc<Admins>,
    users: UserService,
    keys: ApiKeyService,
    sessions: SeaOrmSessionStore,
    generations: Arc<Generations>,
}

impl AdminService {
    pub fn new(
        db: DatabaseConnection,
        admins: Admins,
        users: UserService,
        keys: ApiKeyService,
        sessions: SeaOrmSessionStore,
        generations: Arc<Generations>,
    ) -> Self {
        Self { db, admins: Arc::new(admins), users, keys, sessions, generations }
    }

    /// Whether `user` is an administrator (to show them the Admin page).
    pub fn is_admin(&self, user: &User) -> bool {
        self.admins.is_admin(user)
    }

    /// The proof that `user_id`, calling with `permissions`, is an administrator; anyone
    /// else — or an administrator's key without every permission — is [`AdminError::Forbidden`].
    pub async fn authorize(&self, user_id: i64, permissions: Permissions) -> Result<Admin, AdminError> {
        if permissions != Permissions::All {
            return Err(AdminError::Forbidden);
        }
        match self.users.get(user_id).await? {
            Some(user) if self.admins.is_admin(&user) => Ok(Admin { user_id }),
            _ => Err(AdminError::Forbidden),
        }
    }

    fn person(&self, m: users::Model) -> Person {
        let admin = self.admins.is_admin(&User::from(m.clone()));
        Person {
            id: m.id,
            email: m.email,
            name: m.name,
            created_at: m.created_at,
            last_sign_in_at: m.last_sign_in_at,
            disabled_at: m.disabled_at,
            admin,
        }
    }

    /// People whose email or name contains `search` (any case), newest first: `limit` (1 to
    /// [`MAX_PAGE`]) of them, older than `before_id` when given.
    pub async fn people(&self, _: &Admin, search: Option<&str>, limit: u64, before_id: Option<i64>) -> Result<PeoplePage, AdminError> {
        let mut filter = Condition::all();
        if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
            if search.chars().count() > MAX_SEARCH_CHARS {
                return Err(AdminError::InvalidSearch);
            }
            let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
            let like = |column: users::Column| Expr::expr(Func::lower(Expr::col(column))).like(LikeExpr::new(pattern.clone()).escape('\\'));
            filter = filter.add(Condition::any().add(like(users::Column::Email)).add(like(users::Column::Name)));
        }
        if let Some(before) = before_id {
            filter = filter.add(users::Column::Id.lt(before));
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = users::Entity::find().filter(filter).order_by_desc(users::Column::Id).limit(limit + 1).all(&self.db).await?;
        let has_more = rows.len() as u64 > limit;
        Ok(PeoplePage { people: rows.into_iter().take(limit as usize).map(|m| self.person(m)).collect(), has_more })
    }

    async fn person_by_id(&self, id: i64) -> Result<Option<Person>, DbErr> {
        Ok(users::Entity::find_by_id(id).one(&self.db).await?.map(|m| self.person(m)))
    }

    /// Disables `user_id`: their sessions end and their keys are refused from the very next
    /// request, on every instance; they cannot sign in until enabled. Not oneself.
    pub async fn disable(&self, admin: &Admin, user_id: i64, ctx: &AuditContext) -> Result<Person, AdminError> {
        if user_id == admin.user_id {
            return Err(AdminError::SelfDisable);
        }
        let before = self.person_by_id(user_id).await?.ok_or(AdminError::UserNotFound)?;
        if !self.users.disable(user_id, &self.sessions, &self.generations).await? {
            return Err(AdminError::UserNotFound);
        }
        if before.disabled_at.is_none() {
            self.record(ctx, audit::action::ADMIN_USER_DISABLE, &before).await;
        }
        self.person_by_id(user_id).await?.ok_or(AdminError::UserNotFound)
    }

    /// Enables `user_id` again: they can sign in (sessions ended by the disabling stay
    /// ended) and their keys that are neither revoked nor expired work again.
    pub async fn enable(&self, _: &Admin, user_id: i64, ctx: &AuditContext) -> Result<Person, AdminError> {
        let before = self.person_by_id(user_id).await?.ok_or(AdminError::UserNotFound)?;
        if before.disabled_at.is_some() {
            if !self.users.set_disabled(user_id, false).await? {
                return Err(AdminError::UserNotFound);
            }
            self.record(ctx, audit::action::ADMIN_USER_ENABLE, &before).await;
        }
        self.person_by_id(user_id).await?.ok_or(AdminError::UserNotFound)
    }

    /// The event of a change already made (a failure to record it is logged).
    async fn record(&self, ctx: &AuditContext, action: &str, person: &Person) {
        let detail = serde_json::json!({ "email": person.email });
        let target = Some(format!("user:{}", person.id));
        if let Err(error) = audit::record_about(&self.db, ctx, action, target, Some(detail), Some(person.id)).await {
            tracing::warn!(error = %crate::domain::describe_db_error(&error), action, "audit event not recorded");
        }
    }

    async fn owned(&self, key: ApiKeyRecord) -> Result<OwnedKey, AdminError> {
        let owner = self.person_by_id(key.user_id).await?;
        Ok(OwnedKey { key, owner })
    }

    /// Anyone's key by id, with its owner.
    pub async fn key(&self, admin: &Admin, id: i64) -> Result<OwnedKey, AdminError> {
        let key = self.keys.find_any(admin, id).await?.ok_or(AdminError::KeyNotFound)?;
        self.owned(key).await
    }

    /// The keys whose hint is `hint` (`wj_live_a1b2…x9y8`), with their owners.
    pub async fn keys_by_hint(&self, admin: &Admin, hint: &str) -> Result<Vec<OwnedKey>, AdminError> {
        let mut found = Vec::new();
        for key in self.keys.find_by_hint(admin, hint).await? {
            found.push(self.owned(key).await?);
        }
        Ok(found)
    }

    /// The keys `query` names: an id (`42` or `#42`; none if there is no such key), else a hint.
    pub async fn find_keys(&self, admin: &Admin, query: &str) -> Result<Vec<OwnedKey>, AdminError> {
        let query = query.trim();
        match query.trim_start_matches('#').parse::<i64>() {
            Ok(id) => match self.key(admin, id).await {
                Ok(key) => Ok(vec![key]),
                Err(AdminError::KeyNotFound) => Ok(Vec::new()),
                Err(e) => Err(e),
            },
            Err(_) => self.keys_by_hint(admin, query).await,
        }
    }

    /// Revokes anyone's key, at once and everywhere (idempotent).
    pub async fn revoke_key(&self, admin: &Admin, id: i64, ctx: &AuditContext) -> Result<OwnedKey, AdminError> {
        let (key, _) = self.keys.revoke_as_admin(admin, id, ctx).await.map_err(|e| match e {
            ApiKeyError::NotFound => AdminError::KeyNotFound,
            other => AdminError::Key(other),
        })?;
        self.owned(key).await
    }

    /// Everyone's events, newest first: `limit` (1 to [`MAX_PAGE`]), older than `before_id`.
    pub async fn events(&self, _: &Admin, before_id: Option<i64>, limit: u64) -> Result<EventsPage, AdminError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut query = audit_events::Entity::find();
        if let Some(before) = before_id {
            query = query.filter(audit_events::Column::Id.lt(before));
        }
        let rows = query.order_by_desc(audit_events::Column::Id).limit(limit + 1).all(&self.db).await?;
        let has_more = rows.len() as u64 > limit;
        let events: Vec<AuditEventRecord> = rows.into_iter().take(limit as usize).map(AuditEventRecord::from).collect();
        let ids: HashSet<i64> = events.iter().flat_map(|e| [e.actor_user_id, e.subject_user_id]).flatten().collect();
        let emails: std::collections::HashMap<i64, String> = if ids.is_empty() {
            Default::default()
        } else {
            users::Entity::find()
                .select_only()
                .column(users::Column::Id)
                .column(users::Column::Email)
                .filter(users::Column::Id.is_in(ids))
                .into_tuple::<(i64, String)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect()
        };
        let email = |id: Option<i64>| id.and_then(|id| emails.get(&id).cloned());
        let events = events
            .into_iter()
            .map(|event| LoggedEvent { actor_email: email(event.actor_user_id), subject_email: email(event.subject_user_id), event })
            .collect();
        Ok(EventsPage { events, has_more })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: &str, disabled: bool) -> User {
        User { id: 1, email: email.into(), name: "n".into(), picture: None, disabled }
    }

    #[test]
    fn admins_are_the_configured_emails_in_any_case_and_enabled() {
        let admins = Admins::new(["Root@Example.com", " ops@example.com ", ""]);
        assert!(admins.is_admin(&user("root@example.com", false)));
        assert!(admins.is_admin(&user("ROOT@EXAMPLE.COM", false)));
        assert!(admins.is_admin(&user("ops@example.com", false)));
        assert!(!admins.is_admin(&user("root@example.com", true)), "a disabled administrator is none");
        assert!(!admins.is_admin(&user("root@example.co", false)));
        assert!(!admins.is_admin(&user("", false)), "an empty entry matches nobody");
        assert!(!Admins::default().is_admin(&user("root@example.com", false)));
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("a%b_c\\"), "a\\%b\\_c\\\\");
    }
}
