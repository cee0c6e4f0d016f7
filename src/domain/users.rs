//! Users: created or updated from a verified identity at each sign-in.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set, sea_query::OnConflict};

use crate::entities::users;

/// A verified identity from the identity provider.
#[derive(Clone, Debug)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub name: String,
    pub picture: Option<String>,
}

/// A signed-in person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub picture: Option<String>,
    pub disabled: bool,
}

impl From<users::Model> for User {
    fn from(m: users::Model) -> Self {
        Self { id: m.id, email: m.email, name: m.name, picture: m.picture, disabled: m.disabled_at.is_some() }
    }
}

/// Reads and writes users.
#[derive(Clone)]
pub struct UserService {
    db: DatabaseConnection,
    /// Users recently seen enabled, and when: cookie-authenticated requests skip the query for
    /// [`ENABLED_FOR`]. Disabling a user removes them here at once (and ends their sessions on
    /// every instance); a change made in the database by hand is seen within [`ENABLED_FOR`].
    recently_enabled: std::sync::Arc<dashmap::DashMap<i64, std::time::Instant>>,
    /// Moves on with every change of a user's state, so a read that raced with one is not
    /// remembered.
    changes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// How long a user seen enabled is believed enabled without asking the database again.
pub const ENABLED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

impl UserService {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db, recently_enabled: Default::default(), changes: Default::default() }
    }

    /// Whether the user exists and is enabled, from memory when it was checked recently.
    pub async fn is_enabled(&self, id: i64) -> Result<bool, DbErr> {
        use std::sync::atomic::Ordering;
        if self.recently_enabled.get(&id).is_some_and(|at| at.elapsed() < ENABLED_FOR) {
            return Ok(true);
        }
        let before = self.changes.load(Ordering::SeqCst);
        let enabled = self.get(id).await?.is_some_and(|u| !u.disabled);
        if enabled {
            if self.recently_enabled.len() > 100_000 {
                self.recently_enabled.retain(|_, at| at.elapsed() < ENABLED_FOR);
            }
            self.recently_enabled.insert(id, std::time::Instant::now());
            // A change committed after the read began may have removed the entry before it was
            // inserted: then it must not stay (`set_disabled` moves `changes` on before it
            // removes the entry, so one of the two removals sees the other's work).
            if self.changes.load(Ordering::SeqCst) != before {
                self.recently_enabled.remove(&id);
            }
        } else {
            self.recently_enabled.remove(&id);
        }
        Ok(enabled)
    }

    /// Creates the user on first sign-in, or refreshes email, name and picture (they can
    /// change at the provider) and the sign-in time. Keyed by (issuer, subject).
    pub async fn upsert_from_identity(&self, identity: &VerifiedIdentity) -> Result<User, DbErr> {
        let now = Utc::now();
        let name = if identity.name.trim().is_empty() { identity.email.clone() } else { identity.name.trim().chars().take(255).collect() };
        let model = users::ActiveModel {
            oidc_issuer: Set(identity.issuer.clone()),
            oidc_subject: Set(identity.subject.clone()),
            email: Set(identity.email.chars().take(320).collect()),
            name: Set(name),
            picture: Set(identity.picture.clone().filter(|p| p.starts_with("https://") && p.len() <= 2048)),
            created_at: Set(now),
            last_sign_in_at: Set(now),
            disabled_at: Set(None),
            ..Default::default()
        };
        users::Entity::insert(model)
            .on_conflict(
                OnConflict::columns([users::Column::OidcIssuer, users::Column::OidcSubject])
                    .update_columns([users::Column::Email, users::Column::Name, users::Column::Picture, users::Column::LastSignInAt])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        let user = users::Entity::find()
            .filter(users::Column::OidcIssuer.eq(&identity.issuer))
            .filter(users::Column::OidcSubject.eq(&identity.subject))
            .one(&self.db)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("user just upserted".into()))?;
        Ok(user.into())
    }

    /// The user with this id.
    pub async fn get(&self, id: i64) -> Result<Option<User>, DbErr> {
        Ok(users::Entity::find_by_id(id).one(&self.db).await?.map(User::from))
    }

    /// Disables a user: their sessions end and their keys stop working, on every instance
    /// (announced before the change, like every revocation; refused when it cannot be).
    /// `false` if there is no such user.
    pub async fn disable(
        &self,
        user_id: i64,
        sessions: &crate::domain::sessions::SeaOrmSessionStore,
        generations: &crate::domain::auth_cache::Generations,
    ) -> Result<bool, crate::domain::sessions::SessionError> {
        let revocation = generations.begin(crate::domain::shared_state::Scope::All).await?;
        let result = async {
            if !self.set_disabled(user_id, true).await? {
                return Ok(false);
            }
            sessions.delete_all_for_user(user_id).await?;
            Ok(true)
        }
        .await;
        generations.finish(revocation).await;
        result
    }

    /// Disables (or re-enables) a user: a disabled user's sessions and keys stop working.
    pub async fn set_disabled(&self, id: i64, disabled: bool) -> Result<bool, DbErr> {
        use std::sync::atomic::Ordering;
        self.recently_enabled.remove(&id);
        let Some(user) = users::Entity::find_by_id(id).one(&self.db).await? else { return Ok(false) };
        let mut active: users::ActiveModel = user.into();
        active.disabled_at = Set(disabled.then(Utc::now));
        let updated = active.update(&self.db).await;
        // Whatever the outcome: reads that raced with this change are not remembered.
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.recently_enabled.remove(&id);
        updated?;
        Ok(true)
    }

    /// The user with this email (most recently signed in, if several).
    pub async fn find_by_email(&self, email: &str) -> Result<Option<User>, DbErr> {
        use sea_orm::QueryOrder;
        Ok(users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .order_by_desc(users::Column::LastSignInAt)
            .one(&self.db)
            .await?
            .map(User::from))
    }
}
