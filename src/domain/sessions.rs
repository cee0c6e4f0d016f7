//! Browser sessions: a [`tower_sessions::SessionStore`] on SeaORM.
//!
//! The cookie carries tower-sessions' 128-bit random id; the database keys the row by the
//! SHA-256 of it, so a database dump exposes no live session, and the id itself is never
//! written anywhere. A deleted session is never resurrected: `save` only updates rows
//! that still exist. Rolling expiry costs at most one write per session per minute.
//!
//! Lookups are cached in process (when the key cache may be: see `WJ_AUTH_CACHE`) under the
//! same revocation generations as API keys: an entry is served only for the generation its
//! bucket had before the database read that filled it, and every deletion bumps the
//! generation before it returns — so a session signed out on one instance is refused by
//! every instance on its very next request.

use std::{
    hash::{BuildHasher, Hasher},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, sea_query::Expr};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store,
};

use crate::{
    domain::{
        audit::{self, AuditContext},
        auth_cache::{Generations, MAX_ENTRY_AGE, RevocationRefused, bucket_of},
        shared_state::Scope,
    },
    entities::sessions,
};

/// Why signing sessions out failed; nothing was deleted.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("database: {}", crate::domain::describe_db_error(.0))]
    Database(#[from] DbErr),
    /// The sign-out could not be announced to the other instances.
    #[error("{0}")]
    NotShared(#[from] RevocationRefused),
}

/// The most sessions one instance keeps in memory (beyond it, lookups go to the database).
pub const MAX_CACHED_SESSIONS: usize = 200_000;

/// A session as last read or written, valid for one generation of its bucket.
#[derive(Clone)]
struct CachedSession {
    record: Record,
    generation: u64,
    filled: Instant,
}

/// The lookup cache and the generations that invalidate it. Bounded in size
/// ([`MAX_CACHED_SESSIONS`]) and in time: an entry is served for at most `ttl` after the
/// database read that filled it ([`MAX_ENTRY_AGE`], as for keys), and older entries are
/// dropped by [`SeaOrmSessionStore::prune_cache`] even if never looked up again.
#[derive(Clone)]
struct SessionCache {
    generations: Arc<Generations>,
    entries: Arc<DashMap<[u8; 32], CachedSession>>,
    ttl: Duration,
}

impl SessionCache {
    /// The cached record, if filled under `generation`, younger than the TTL at `now` and
    /// not past its own expiry; anything else is dropped.
    fn get(&self, hash: &[u8; 32], generation: u64, now: Instant) -> Option<Record> {
        let entry = self.entries.get(hash)?;
        if entry.generation == generation
            && now.saturating_duration_since(entry.filled) < self.ttl
            && entry.record.expiry_date > OffsetDateTime::now_utc()
        {
            return Some(entry.record.clone());
        }
        drop(entry);
        self.entries.remove(hash);
        None
    }

    /// Caches `record` as read at `filled` under `generation` (unless the cache is full).
    fn insert(&self, hash: [u8; 32], record: Record, generation: u64, filled: Instant) {
        if self.entries.len() < MAX_CACHED_SESSIONS {
            self.entries.insert(hash, CachedSession { record, generation, filled });
        }
    }

    /// Drops every entry that is no longer served at `now`; returns how many remain.
    fn prune(&self, now: Instant) -> usize {
        self.entries.retain(|_, e| now.saturating_duration_since(e.filled) < self.ttl);
        self.entries.len()
    }
}

/// Session data keys. Namespaced: `auth.*` is the signed-in state, `meta.*` what the
/// sessions page shows. (A sign-in in progress is not a session: it travels in the sealed
/// `wj_signin` cookie, see `server::auth::signin_cookie`.)
pub mod keys {
    pub const USER_ID: &str = "auth.user_id";
    pub const SIGNED_IN_AT: &str = "auth.signed_in_at";
    pub const USER_AGENT: &str = "meta.user_agent";
    pub const IP: &str = "meta.ip";
}

/// How long a signed-in session lives without activity (rolling).
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The SHA-256 of a session id: what the `sessions` table stores.
pub fn token_hash(id: &Id) -> [u8; 32] {
    Sha256::digest(id.0.to_le_bytes()).into()
}

/// One row of the sessions page.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub id: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub token_hash: [u8; 32],
}

#[derive(Clone, Copy)]
struct LastWrite {
    fingerprint: u64,
    at: Instant,
}

/// The SeaORM-backed session store.
#[derive(Clone)]
pub struct SeaOrmSessionStore {
    db: DatabaseConnection,
    writes: Arc<DashMap<[u8; 32], LastWrite>>,
    hasher: std::hash::RandomState,
    touch_interval: Duration,
    cache: Option<SessionCache>,
}

impl std::fmt::Debug for SeaOrmSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaOrmSessionStore").finish_non_exhaustive()
    }
}

fn backend(e: DbErr) -> session_store::Error {
    // The message names the failure kind only; it never contains a token or its hash.
    session_store::Error::Backend(crate::domain::describe_db_error(&e))
}

fn to_offset(dt: DateTime<Utc>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(dt.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn to_chrono(dt: OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(dt.unix_timestamp(), 0).unwrap_or_default()
}

/// The session data as JSON with sorted keys, so equal data always serializes equally
/// (a `HashMap`'s iteration order differs between instances).
fn canonical_json(record: &Record) -> session_store::Result<String> {
    let sorted: std::collections::BTreeMap<&String, &serde_json::Value> = record.data.iter().collect();
    serde_json::to_string(&sorted).map_err(|e| session_store::Error::Encode(e.to_string()))
}

fn str_field(record: &Record, key: &str, max: usize) -> Option<String> {
    record.data.get(key).and_then(|v| v.as_str()).map(|s| s.chars().take(max).collect())
}

impl SeaOrmSessionStore {
    /// A store writing unchanged sessions back at most once per `touch_interval`.
    pub fn new(db: DatabaseConnection, touch_interval: Duration) -> Self {
        Self { db, writes: Arc::new(DashMap::new()), hasher: std::hash::RandomState::new(), touch_interval, cache: None }
    }

    /// Caches lookups, invalidated through `generations` (shared with the key cache).
    pub fn with_cache(self, generations: Arc<Generations>) -> Self {
        self.with_cache_ttl(generations, MAX_ENTRY_AGE)
    }

    /// Like [`SeaOrmSessionStore::with_cache`], serving an entry for at most `ttl`.
    pub fn with_cache_ttl(mut self, generations: Arc<Generations>, ttl: Duration) -> Self {
        self.cache = Some(SessionCache { generations, entries: Arc::new(DashMap::new()), ttl });
        self
    }

    /// Drops cached lookups older than the cache's TTL (run periodically by the
    /// maintenance task, so that sessions never looked up again do not stay in memory);
    /// returns how many remain.
    pub fn prune_cache(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.prune(Instant::now()))
    }

    /// Sessions held in the lookup cache.
    pub fn cached_len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.entries.len())
    }

    /// Keeps a cached session's data and rolling expiry current (its generation stays).
    fn refresh_cached(&self, hash: &[u8; 32], record: &Record) {
        if let Some(cache) = &self.cache
            && let Some(mut entry) = cache.entries.get_mut(hash)
        {
            entry.record = record.clone();
        }
    }

    /// Runs `delete`, a deletion of the sessions in `scope`, as a revocation: announced to
    /// every instance before (no cache serves the scope meanwhile; refused, with nothing
    /// deleted, when it cannot be announced) and finished after, so that no instance serves a
    /// deleted session from its cache.
    async fn revoking<T>(&self, scope: Scope, delete: impl Future<Output = Result<T, DbErr>>) -> Result<T, SessionError> {
        let Some(cache) = &self.cache else { return Ok(delete.await?) };
        let revocation = cache.generations.begin(scope).await?;
        let result = delete.await;
        cache.generations.finish(revocation).await;
        Ok(result?)
    }

    fn fingerprint(&self, data: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(data.as_bytes());
        h.finish()
    }

    /// The signed-in sessions of a user, most recently seen first.
    pub async fn list_for_user(&self, user_id: i64) -> Result<Vec<SessionInfo>, DbErr> {
        let rows = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id))
            .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
            .order_by_desc(sessions::Column::LastSeenAt)
            .limit(200)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| SessionInfo {
                id: r.id,
                user_agent: r.user_agent,
                ip: r.ip,
                created_at: r.created_at,
                last_seen_at: r.last_seen_at,
                token_hash: r.token_hash.try_into().unwrap_or([0; 32]),
            })
            .collect())
    }

    /// Deletes one of the user's sessions; `false` if the user has no such session.
    /// Records a sign-in of `ctx`'s user (the session itself is written by the session layer).
    pub async fn signed_in(&self, ctx: &AuditContext) {
        let target = ctx.actor_user_id.map(|id| format!("user:{id}"));
        audit::record_after(&self.db, ctx, audit::action::SIGN_IN, target).await;
    }

    /// Records a sign-out of `ctx`'s user (the session itself is deleted by the session layer).
    pub async fn signed_out(&self, ctx: &AuditContext) {
        let target = ctx.actor_user_id.map(|id| format!("user:{id}"));
        audit::record_after(&self.db, ctx, audit::action::SIGN_OUT, target).await;
    }

    /// Signs one of `user_id`'s sessions out, audited; `false` if it is not theirs or gone.
    pub async fn sign_out_one(&self, ctx: &AuditContext, user_id: i64, session_id: i64) -> Result<bool, SessionError> {
        let deleted = self.delete_for_user(user_id, session_id).await?;
        if deleted {
            audit::record_after(&self.db, ctx, audit::action::SESSION_REVOKE, Some(format!("session:{session_id}"))).await;
        }
        Ok(deleted)
    }

    /// Signs every session of `user_id` out, audited; returns how many there were.
    pub async fn sign_out_everywhere(&self, ctx: &AuditContext, user_id: i64) -> Result<u64, SessionError> {
        let count = self.delete_all_for_user(user_id).await?;
        audit::record_after(&self.db, ctx, audit::action::SIGN_OUT_EVERYWHERE, Some(format!("user:{user_id}"))).await;
        Ok(count)
    }

    pub async fn delete_for_user(&self, user_id: i64, session_id: i64) -> Result<bool, SessionError> {
        let row = sessions::Entity::find()
            .filter(sessions::Column::Id.eq(session_id))
            .filter(sessions::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let Ok(hash) = <[u8; 32]>::try_from(row.token_hash.as_slice()) else { return Ok(false) };
        let result = self
            .revoking(
                Scope::Bucket(bucket_of(&hash)),
                sessions::Entity::delete_many().filter(sessions::Column::Id.eq(row.id)).exec(&self.db),
            )
            .await?;
        self.forget_locally(Some(&hash));
        Ok(result.rows_affected > 0)
    }

    /// Deletes every session of the user ("sign out everywhere"); returns how many.
    pub async fn delete_all_for_user(&self, user_id: i64) -> Result<u64, SessionError> {
        // Rare (sign out everywhere, a disabled user): one revocation of everything (one Redis
        // call, however many sessions) rather than trust a list read apart from the delete.
        let result =
            self.revoking(Scope::All, sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(user_id)).exec(&self.db)).await?;
        self.forget_locally(None);
        Ok(result.rows_affected)
    }

    /// Drops cached sessions here (one, or all); other instances' entries went stale with the
    /// revocation.
    fn forget_locally(&self, hash: Option<&[u8; 32]>) {
        if let Some(cache) = &self.cache {
            match hash {
                Some(hash) => {
                    cache.entries.remove(hash);
                }
                None => cache.entries.clear(),
            }
        }
    }

    /// Deletes expired sessions; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, DbErr> {
        let result = sessions::Entity::delete_many().filter(sessions::Column::ExpiresAt.lte(Utc::now())).exec(&self.db).await?;
        let horizon = Instant::now().checked_sub(self.touch_interval * 2 + Duration::from_secs(60));
        if let Some(horizon) = horizon {
            self.writes.retain(|_, w| w.at > horizon);
        }
        Ok(result.rows_affected)
    }
}

#[async_trait]
impl SessionStore for SeaOrmSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = canonical_json(record)?;
        let now = Utc::now();
        for _ in 0..4 {
            let hash = token_hash(&record.id);
            let row = sessions::ActiveModel {
                token_hash: Set(hash.to_vec()),
                user_id: Set(record.data.get(keys::USER_ID).and_then(|v| v.as_i64())),
                data: Set(data.clone()),
                created_at: Set(now),
                expires_at: Set(to_chrono(record.expiry_date)),
                last_seen_at: Set(now),
                user_agent: Set(str_field(record, keys::USER_AGENT, 512)),
                ip: Set(str_field(record, keys::IP, 64)),
                ..Default::default()
            };
            match sessions::Entity::insert(row).exec_without_returning(&self.db).await {
                Ok(_) => {
                    self.writes.insert(hash, LastWrite { fingerprint: self.fingerprint(&data), at: Instant::now() });
                    return Ok(());
                }
                // A 128-bit collision is practically impossible; a new id is the answer anyway.
                Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => record.id = Id::default(),
                Err(e) => return Err(backend(e)),
            }
        }
        Err(session_store::Error::Backend("could not allocate a session id".into()))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let hash = token_hash(&record.id);
        let data = canonical_json(record)?;
        let fingerprint = self.fingerprint(&data);
        if let Some(last) = self.writes.get(&hash).map(|w| *w)
            && last.fingerprint == fingerprint
            && last.at.elapsed() < self.touch_interval
        {
            // Unchanged data: only the rolling expiry moved.
            self.refresh_cached(&hash, record);
            return Ok(());
        }
        let now = Utc::now();
        // UPDATE only: a session deleted meanwhile (signed out elsewhere) stays deleted.
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::Data, Expr::value(data))
            .col_expr(sessions::Column::ExpiresAt, Expr::value(to_chrono(record.expiry_date)))
            .col_expr(sessions::Column::LastSeenAt, Expr::value(now))
            .col_expr(sessions::Column::UserId, Expr::value(record.data.get(keys::USER_ID).and_then(|v| v.as_i64())))
            .col_expr(sessions::Column::UserAgent, Expr::value(str_field(record, keys::USER_AGENT, 512)))
            .col_expr(sessions::Column::Ip, Expr::value(str_field(record, keys::IP, 64)))
            .filter(sessions::Column::TokenHash.eq(hash.to_vec()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        if result.rows_affected == 0 {
            self.writes.remove(&hash);
            if let Some(cache) = &self.cache {
                cache.entries.remove(&hash);
            }
        } else {
            self.writes.insert(hash, LastWrite { fingerprint, at: Instant::now() });
            self.refresh_cached(&hash, record);
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let hash = token_hash(id);
        // The generation is read before the database: a fill can never outlive a deletion
        // that committed after this read began.
        let generation = match &self.cache {
            Some(cache) => cache.generations.current(bucket_of(&hash)).await,
            None => None,
        };
        if let (Some(cache), Some(generation)) = (&self.cache, generation)
            && let Some(record) = cache.get(&hash, generation, Instant::now())
        {
            return Ok(Some(record));
        }
        let row = sessions::Entity::find()
            .filter(sessions::Column::TokenHash.eq(hash.to_vec()))
            .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
            .one(&self.db)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let data = serde_json::from_str(&row.data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let record = Record { id: *id, data, expiry_date: to_offset(row.expires_at) };
        if let (Some(cache), Some(generation)) = (&self.cache, generation) {
            cache.insert(hash, record.clone(), generation, Instant::now());
        }
        Ok(Some(record))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let hash = token_hash(id);
        // A session that does not exist (a stale cookie replaced at sign-in) revokes nothing:
        // no announcement, so signing in does not depend on Redis.
        let exists = sessions::Entity::find().filter(sessions::Column::TokenHash.eq(hash.to_vec())).one(&self.db).await.map_err(backend)?;
        if exists.is_none() {
            self.writes.remove(&hash);
            self.forget_locally(Some(&hash));
            return Ok(());
        }
        let delete = sessions::Entity::delete_many().filter(sessions::Column::TokenHash.eq(hash.to_vec())).exec(&self.db);
        self.revoking(Scope::Bucket(bucket_of(&hash)), delete).await.map_err(|error| match error {
            SessionError::Database(e) => backend(e),
            // The message names the failure kind only.
            SessionError::NotShared(_) => session_store::Error::Backend("the sign-out could not be announced to other instances".into()),
        })?;
        self.writes.remove(&hash);
        self.forget_locally(Some(&hash));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn cache(ttl: Duration) -> SessionCache {
        SessionCache { generations: Arc::new(Generations::new(None)), entries: Arc::new(DashMap::new()), ttl }
    }

    fn record(expires_in: time::Duration) -> Record {
        Record { id: Id::default(), data: HashMap::new(), expiry_date: OffsetDateTime::now_utc() + expires_in }
    }

    #[test]
    fn an_entry_is_served_until_its_ttl_and_then_dropped() {
        let cache = cache(Duration::from_secs(60));
        let start = Instant::now();
        cache.insert([1; 32], record(time::Duration::days(7)), 3, start);
        assert!(cache.get(&[1; 32], 3, start + Duration::from_secs(59)).is_some(), "fresh");
        assert!(cache.get(&[1; 32], 4, start + Duration::from_secs(1)).is_none(), "another generation is never served");
        assert_eq!(cache.entries.len(), 0, "a stale entry is dropped when looked at");
        cache.insert([1; 32], record(time::Duration::days(7)), 3, start);
        assert!(cache.get(&[1; 32], 3, start + Duration::from_secs(60)).is_none(), "60 s after the fill: the database decides");
        assert_eq!(cache.entries.len(), 0);
    }

    #[test]
    fn an_expired_session_is_not_served_from_the_cache() {
        let cache = cache(Duration::from_secs(60));
        let now = Instant::now();
        cache.insert([2; 32], record(time::Duration::seconds(-1)), 0, now);
        assert!(cache.get(&[2; 32], 0, now).is_none());
    }

    #[test]
    fn pruning_drops_entries_nobody_looks_up_again() {
        let cache = cache(Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..10u8 {
            cache.insert([i; 32], record(time::Duration::days(7)), 0, start + Duration::from_secs(u64::from(i) * 10));
        }
        assert_eq!(cache.prune(start + Duration::from_secs(59)), 10, "all younger than 60 s");
        // At start + 100 s, the entries filled at 0..=40 s are 60 s old or more.
        assert_eq!(cache.prune(start + Duration::from_secs(100)), 5);
        assert!(cache.entries.contains_key(&[5; 32]) && !cache.entries.contains_key(&[4; 32]));
        assert_eq!(cache.prune(start + Duration::from_secs(1000)), 0, "an idle cache empties over time");
    }

    #[test]
    fn the_size_bound_still_holds() {
        let cache = cache(Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..MAX_CACHED_SESSIONS + 5 {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.insert(hash, record(time::Duration::days(7)), 0, now);
        }
        assert_eq!(cache.entries.len(), MAX_CACHED_SESSIONS);
    }
}
