//! The key service: create (raw key returned once), list, revoke (soft, owner-scoped),
//! authenticate. Both doors — the portal's server functions and `/v1` — call these, so
//! the rules live here once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait, sea_query::Expr,
};

use crate::{
    domain::{
        api_keys::{
            KeyName,
            format::{ApiKeyHash, KeyFormatError, PlainApiKey},
            grant::{Grant, GrantError, NewKeyOptions},
            last_used::LastUsedTracker,
        },
        audit::{self, AuditContext},
        auth_cache::{CachedKey, FinalRefusal, Generations, KeyCache, RefusedKeys, RevocationRefused, bucket_of},
        shared_state::Scope,
    },
    entities::{api_keys, users},
    permissions::Permissions,
};

/// At most this many active (neither revoked nor expired) keys per user.
pub const MAX_ACTIVE_KEYS: u64 = 100;

/// The furthest expiry a key may be given: ten years of days, from the portal or the API.
pub const MAX_EXPIRY_DAYS: u32 = 3650;

/// A stored key (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub hint: String,
    pub permissions: Permissions,
    pub rate_limit_per_minute: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The public model names the key may use; `None`: every model.
    pub models: Option<Vec<String>>,
    /// Prompt + completion tokens a UTC day; `None`: no budget.
    pub daily_token_limit: Option<u64>,
    /// Where the key was last used from (shown to its owner only).
    pub last_used_ip: Option<String>,
    pub last_used_user_agent: Option<String>,
    /// The key that replaced this one when it was rolled.
    pub replaced_by: Option<i64>,
}

impl ApiKeyRecord {
    fn from_model(m: api_keys::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            permissions: stored_permissions(&m.permissions, m.id),
            name: m.name,
            hint: m.hint,
            rate_limit_per_minute: m.rate_limit_per_minute.and_then(|r| u32::try_from(r).ok()),
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            revoked_at: m.revoked_at,
            expires_at: m.expires_at,
            models: stored_models(m.models.as_deref(), m.id),
            daily_token_limit: m.daily_token_limit.and_then(|l| u64::try_from(l).ok()),
            last_used_ip: m.last_used_ip,
            last_used_user_agent: m.last_used_user_agent,
            replaced_by: m.replaced_by,
        }
    }

    /// Neither revoked nor expired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

fn stored_permissions(raw: &str, key_id: i64) -> Permissions {
    Permissions::from_storage(raw).unwrap_or_else(|| {
        // Fail closed: a value we cannot read grants nothing.
        tracing::error!(key_id, "unreadable permissions on an API key; treating it as having none");
        Permissions::restricted([])
    })
}

/// The model allow-list of a stored key. Fails closed: a value that cannot be read allows no
/// model.
fn stored_models(raw: Option<&str>, key_id: i64) -> Option<Vec<String>> {
    let raw = raw?;
    Some(serde_json::from_str::<Vec<String>>(raw).unwrap_or_else(|_| {
        tracing::error!(key_id, "unreadable model allow-list on an API key; treating it as allowing no model");
        Vec::new()
    }))
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("{0}")]
    /// The name does not parse ([`KeyName::parse`](super::KeyName::parse)'s message).
    InvalidName(String),
    #[error("the expiry must be in the future and at most {MAX_EXPIRY_DAYS} days (ten years) away")]
    InvalidExpiry,
    #[error("the rate limit must be between 1 and 60000000 requests a minute")]
    InvalidRateLimit,
    #[error("you already have {MAX_ACTIVE_KEYS} active API keys; revoke one you no longer use first")]
    TooManyKeys,
    #[error("no such API key")]
    NotFound,
    /// The revocation could not be made effective on every instance: nothing was changed.
    #[error("{0}")]
    NotShared(#[from] RevocationRefused),
    /// The new key asked for more than its creator's grant (403).
    #[error(transparent)]
    BeyondGrant(#[from] GrantError),
    #[error("database: {}", crate::domain::describe_db_error(.0))]
    Database(#[from] DbErr),
}

/// Who a valid key belongs to and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPrincipal {
    pub key_id: i64,
    pub user_id: i64,
    pub permissions: Permissions,
    pub rate_limit_per_minute: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl KeyPrincipal {
    fn from_cached(entry: &CachedKey) -> Self {
        Self {
            key_id: i64::from(entry.key_id),
            user_id: i64::from(entry.user_id),
            permissions: entry.permissions(),
            rate_limit_per_minute: (entry.rate_limit() != 0).then_some(entry.rate_limit()),
            expires_at: (entry.expires_at != 0).then(|| DateTime::from_timestamp(i64::from(entry.expires_at), 0)).flatten(),
        }
    }

    /// The compact cache entry, or `None` for values too large for it (never cached).
    fn to_cached(&self) -> Option<CachedKey> {
        CachedKey::new(
            u32::try_from(self.key_id).ok()?,
            u32::try_from(self.user_id).ok()?,
            self.expires_at.map_or(0, |e| e.timestamp().clamp(1, i64::from(u32::MAX)) as u32),
            self.rate_limit_per_minute.unwrap_or(0),
            self.permissions,
        )
    }
}

/// What this instance already knows of a presented key, without any I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// Seen working (maybe under an older generation: to be confirmed).
    Valid(KeyPrincipal),
    /// Seen refused, for good.
    Refused(FinalRefusal),
    /// Never seen.
    Never,
}

/// Why a presented key does not authenticate. Callers answer all of them with the same
/// 401 shape; the reason is for logs and metrics.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("malformed key: {0}")]
    Malformed(#[from] KeyFormatError),
    #[error("unknown key")]
    Unknown,
    #[error("revoked key")]
    Revoked,
    #[error("expired key")]
    Expired,
    #[error("the key's owner is disabled")]
    OwnerDisabled,
    #[error("database unavailable: {}", crate::domain::describe_db_error(.0))]
    Unavailable(DbErr),
}

/// The key service.
#[derive(Clone)]
pub struct ApiKeyService {
    db: DatabaseConnection,
    last_used: LastUsedTracker,
    /// Keys seen working. Served from only when `serve_cached` (see `WJ_AUTH_CACHE`); either
    /// way they tell a key seen before from one never seen (which the throttle counts).
    cache: Arc<KeyCache>,
    serve_cached: bool,
    refused: Arc<RefusedKeys>,
    generations: Arc<Generations>,
}

/// The most keys one instance caches.
pub const MAX_CACHED_KEYS: usize = 2_000_000;
/// The most refused keys one instance remembers.
pub const MAX_REFUSED_KEYS: usize = 100_000;

impl ApiKeyService {
    /// A service; `serve_cached` lets lookups be answered from the in-process cache (see
    /// [`crate::domain::auth_cache`]). Keys refused for good are remembered either way (they
    /// never work again).
    pub fn new(db: DatabaseConnection, serve_cached: bool, generations: Arc<Generations>) -> Self {
        Self {
            db,
            last_used: LastUsedTracker::default(),
            cache: Arc::new(KeyCache::new(MAX_CACHED_KEYS)),
            serve_cached,
            refused: Arc::new(RefusedKeys::new(MAX_REFUSED_KEYS)),
            generations,
        }
    }

    /// The cached principal of `hash`, if valid under `generation` (no I/O).
    pub fn cached(&self, hash: &ApiKeyHash, generation: u64) -> Option<KeyPrincipal> {
        if !self.serve_cached {
            return None;
        }
        let entry = self.cache.get(hash, generation, Utc::now().timestamp())?;
        self.last_used.touch(i64::from(entry.key_id));
        Some(KeyPrincipal::from_cached(&entry))
    }

    /// What this instance knows of `hash` (no I/O).
    pub fn known(&self, hash: &ApiKeyHash) -> Known {
        if let Some(entry) = self.cache.peek(hash) {
            return Known::Valid(KeyPrincipal::from_cached(&entry));
        }
        self.refused.get(hash).map_or(Known::Never, Known::Refused)
    }

    /// The database lookup, filling the cache under `generation_before` — the generation
    /// read *before* the lookup began, so a revocation racing with it is never masked. Keys
    /// refused for good are remembered as such.
    pub async fn lookup_and_cache(&self, hash: &ApiKeyHash, generation_before: Option<u64>) -> Result<KeyPrincipal, AuthFailure> {
        let principal = match self.lookup(hash).await {
            Ok(principal) => principal,
            Err(failure) => {
                let refusal = match failure {
                    AuthFailure::Unknown => Some(FinalRefusal::Unknown),
                    AuthFailure::Revoked => Some(FinalRefusal::Revoked),
                    AuthFailure::Expired => Some(FinalRefusal::Expired),
                    _ => None,
                };
                if let Some(refusal) = refusal {
                    self.cache.remove(hash);
                    self.refused.insert(hash, refusal);
                }
                return Err(failure);
            }
        };
        if let Some(entry) = principal.to_cached() {
            // Without a known generation (or when lookups may not be served from the cache)
            // the entry only marks the key as seen.
            self.cache.insert(hash, entry, generation_before.filter(|_| self.serve_cached));
        }
        self.last_used.touch(principal.key_id);
        Ok(principal)
    }

    /// Creates a key for `owner`, within `grant` — the creator's own reach (see
    /// [`Grant::narrow`]): what `asked` omits is inherited, what exceeds the grant is
    /// refused and nothing is stored. The returned [`PlainApiKey`] is the only copy that
    /// will ever exist; only its SHA-256 is stored.
    pub async fn create(
        &self,
        owner: i64,
        grant: &Grant,
        name: KeyName,
        asked: NewKeyOptions,
        ctx: &AuditContext,
    ) -> Result<(ApiKeyRecord, PlainApiKey), ApiKeyError> {
        let now = Utc::now();
        // Absolute bounds first (400), then the creator's grant (403).
        if let Some(expires_at) = asked.expires_at
            && (expires_at <= now || expires_at > now + chrono::Duration::days(i64::from(MAX_EXPIRY_DAYS)))
        {
            return Err(ApiKeyError::InvalidExpiry);
        }
        if asked.rate_limit_per_minute.is_some_and(|r| r == 0 || r > 60_000_000) {
            return Err(ApiKeyError::InvalidRateLimit);
        }
        let terms = grant.narrow(asked)?;
        if terms.expires_at.is_some_and(|e| e <= now) {
            // Inherited from a creator that expired meanwhile.
            return Err(ApiKeyError::InvalidExpiry);
        }
        let key = PlainApiKey::generate();
        let txn = self.db.begin().await?;
        // Serialise creates of one owner (a row lock on PostgreSQL, the write lock on
        // SQLite) so that the active-key limit holds under concurrency. A column that no
        // foreign key points at: "SET id = id" made SQLite check every child table for rows
        // referencing the user (15 ms with a large usage table, measured by the benchmark).
        let locked = users::Entity::update_many()
            .col_expr(users::Column::DisabledAt, Expr::col(users::Column::DisabledAt))
            .filter(users::Column::Id.eq(owner))
            .exec(&txn)
            .await?;
        if locked.rows_affected == 0 {
            return Err(ApiKeyError::NotFound);
        }
        let active = api_keys::Entity::find()
            .filter(api_keys::Column::UserId.eq(owner))
            .filter(api_keys::Column::RevokedAt.is_null())
            .filter(api_keys::Column::ExpiresAt.is_null().or(api_keys::Column::ExpiresAt.gt(now)))
            .count(&txn)
            .await?;
        if active >= MAX_ACTIVE_KEYS {
            return Err(ApiKeyError::TooManyKeys);
        }
        let model = api_keys::ActiveModel {
            user_id: Set(owner),
            name: Set(name.into_inner()),
            key_hash: Set(key.hash().as_bytes().to_vec()),
            hint: Set(key.hint()),
            permissions: Set(terms.permissions.to_storage()),
            rate_limit_per_minute: Set(terms.rate_limit_per_minute.map(|r| r as i32)),
            created_at: Set(now),
            last_used_at: Set(None),
            revoked_at: Set(None),
            expires_at: Set(terms.expires_at),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        audit::record(&txn, ctx, audit::action::API_KEY_CREATE, Some(format!("api_key:{}", model.id))).await?;
        txn.commit().await?;
        Ok((ApiKeyRecord::from_model(model), key))
    }

    /// The owner's keys, newest first (revoked ones included, marked).
    pub async fn list(&self, owner: i64) -> Result<Vec<ApiKeyRecord>, DbErr> {
        let rows = api_keys::Entity::find()
            .filter(api_keys::Column::UserId.eq(owner))
            .order_by_desc(api_keys::Column::CreatedAt)
            .order_by_desc(api_keys::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|m| self.with_pending_use(ApiKeyRecord::from_model(m))).collect())
    }

    /// One of the owner's keys; another user's id is simply not found.
    pub async fn get(&self, owner: i64, id: i64) -> Result<Option<ApiKeyRecord>, DbErr> {
        let row = api_keys::Entity::find_by_id(id).filter(api_keys::Column::UserId.eq(owner)).one(&self.db).await?;
        Ok(row.map(|m| self.with_pending_use(ApiKeyRecord::from_model(m))))
    }

    fn with_pending_use(&self, mut record: ApiKeyRecord) -> ApiKeyRecord {
        if let Some(pending) = self.last_used.pending(record.id) {
            record.last_used_at = Some(record.last_used_at.map_or(pending, |t| Ord::max(t, pending)));
        }
        record
    }

    /// Revokes one of the owner's keys, at once and for good, on every instance. Revoking
    /// a revoked key changes nothing and succeeds; another user's id is
    /// [`ApiKeyError::NotFound`] and changes nothing. When the revocation cannot be announced
    /// to the other instances (Redis unreachable from here), it is refused with
    /// [`ApiKeyError::NotShared`] and nothing changes. Returns the record and whether this
    /// call revoked it.
    pub async fn revoke(&self, owner: i64, id: i64, ctx: &AuditContext) -> Result<(ApiKeyRecord, bool), ApiKeyError> {
        let row = api_keys::Entity::find_by_id(id).filter(api_keys::Column::UserId.eq(owner)).one(&self.db).await?;
        let row = row.ok_or(ApiKeyError::NotFound)?;
        let hash = ApiKeyHash::from_slice(&row.key_hash);
        if row.revoked_at.is_some() || hash.is_none() {
            return Ok((self.with_pending_use(ApiKeyRecord::from_model(row)), false));
        }
        let hash = hash.expect("checked above");
        // Announced before the commit: from here until `finish`, no instance serves this
        // bucket from a cache, and entries filled before are stale afterwards.
        let revocation = self.generations.begin(Scope::Bucket(bucket_of(hash.as_bytes()))).await?;
        let committed = self.commit_revocation(owner, id, ctx).await;
        self.cache.remove(&hash);
        self.generations.finish(revocation).await;
        let (row, revoked_now) = committed?;
        self.refused.insert(&hash, FinalRefusal::Revoked);
        let record = row.map(ApiKeyRecord::from_model).ok_or(ApiKeyError::NotFound)?;
        Ok((self.with_pending_use(record), revoked_now))
    }

    async fn commit_revocation(&self, owner: i64, id: i64, ctx: &AuditContext) -> Result<(Option<api_keys::Model>, bool), DbErr> {
        let txn = self.db.begin().await?;
        let result = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(api_keys::Column::Id.eq(id))
            .filter(api_keys::Column::UserId.eq(owner))
            .filter(api_keys::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        let revoked_now = result.rows_affected > 0;
        if revoked_now {
            audit::record(&txn, ctx, audit::action::API_KEY_REVOKE, Some(format!("api_key:{id}"))).await?;
        }
        let row = api_keys::Entity::find_by_id(id).filter(api_keys::Column::UserId.eq(owner)).one(&txn).await?;
        txn.commit().await?;
        Ok((row, revoked_now))
    }

    /// The database lookup of a presented key, by hash.
    pub async fn lookup(&self, hash: &ApiKeyHash) -> Result<KeyPrincipal, AuthFailure> {
        let found = api_keys::Entity::find()
            .filter(api_keys::Column::KeyHash.eq(hash.as_bytes().to_vec()))
            .find_also_related(users::Entity)
            .one(&self.db)
            .await
            .map_err(AuthFailure::Unavailable)?;
        let Some((key, owner)) = found else { return Err(AuthFailure::Unknown) };
        if key.revoked_at.is_some() {
            return Err(AuthFailure::Revoked);
        }
        if key.expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(AuthFailure::Expired);
        }
        if owner.is_none_or(|u| u.disabled_at.is_some()) {
            return Err(AuthFailure::OwnerDisabled);
        }
        Ok(KeyPrincipal {
            key_id: key.id,
            user_id: key.user_id,
            permissions: stored_permissions(&key.permissions, key.id),
            rate_limit_per_minute: key.rate_limit_per_minute.and_then(|r| u32::try_from(r).ok()),
            expires_at: key.expires_at,
        })
    }

    /// Writes pending `last_used_at` values.
    pub async fn flush_last_used(&self) -> Result<usize, DbErr> {
        self.last_used.flush(&self.db).await
    }
}
