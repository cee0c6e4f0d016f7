//! The key service: create (raw key returned once), list, revoke (soft, owner-scoped),
//! authenticate. Both doors — the portal's server functions and `/v1` — call these, so
//! the rules live here once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
    sea_query::{Expr, Func, LikeExpr},
};

use crate::{
    domain::{
        admin::Admin,
        api_keys::{
            KeyName,
            format::{ApiKeyHash, KeyFormatError, PlainApiKey},
            grant::{Grant, GrantError, KeyChanges, KeyTerms, NewKeyOptions},
            guardrails::{Guardrails, MAX_DAILY_TOKEN_LIMIT, ModelAllowList},
            last_used::{LastUsedTracker, UseSite},
        },
        audit::{self, AuditContext},
        auth_cache::{CachedKey, FinalRefusal, Generations, KeyCache, RefusedKeys, RevocationRefused, bucket_of},
        shared_state::Scope,
        token_budget::TokenBudgets,
    },
    entities::{api_keys, users},
    permissions::Permissions,
};

/// Who revokes a key: its owner, or an administrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Revoker {
    Owner,
    Admin,
}

/// The most keys a look-up by hint answers.
pub const MAX_HINT_MATCHES: u64 = 20;

/// At most this many active (neither revoked nor expired) keys per user.
pub const MAX_ACTIVE_KEYS: u64 = 100;

/// The furthest expiry a key may be given: ten years of days, from the portal or the API.
pub const MAX_EXPIRY_DAYS: u32 = 3650;

/// The longest a rolled key may keep working: a week.
pub const MAX_ROLL_GRACE_SECONDS: u64 = 604_800;
/// A rolled key's grace period when none is asked for: a day.
pub const DEFAULT_ROLL_GRACE_SECONDS: u64 = 86_400;

/// A key's state, as lists filter by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [KeyStatus::Active, KeyStatus::Expired, KeyStatus::Revoked].into_iter().find(|s| s.as_str() == text)
    }
}

/// Which of an owner's keys a list shows: newest first, `limit` of them after skipping
/// `offset`, or those older than `before_id` (a cursor).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyQuery {
    pub status: Option<KeyStatus>,
    /// Keys whose name contains this (any case).
    pub search: Option<String>,
    pub limit: u64,
    pub offset: u64,
    pub before_id: Option<i64>,
}

/// A page of keys: the keys, and whether more match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<ApiKeyRecord>,
    pub has_more: bool,
    /// How many keys match the filter (all pages).
    pub total: u64,
}

/// A rolled key: the new key (its record and, this once, the key itself) and the old one.
#[derive(Debug)]
pub struct RolledKey {
    pub new: ApiKeyRecord,
    pub key: PlainApiKey,
    pub old: ApiKeyRecord,
}

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
        self.status(now) == KeyStatus::Active
    }

    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// What the key may do: its grant to keys it creates or rolls.
    pub fn terms(&self) -> KeyTerms {
        KeyTerms {
            permissions: self.permissions,
            expires_at: self.expires_at,
            rate_limit_per_minute: self.rate_limit_per_minute,
            models: self.models.clone().map(ModelAllowList::from_stored),
            daily_token_limit: self.daily_token_limit,
        }
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

/// The absolute bounds of the values a key may be given (400 when out of them), before any
/// grant is asked (403).
fn check_bounds(
    expires_at: Option<Option<DateTime<Utc>>>,
    rate_limit: Option<Option<u32>>,
    daily_token_limit: Option<Option<u64>>,
    now: DateTime<Utc>,
) -> Result<(), ApiKeyError> {
    if let Some(Some(expires_at)) = expires_at
        && (expires_at <= now || expires_at > now + chrono::Duration::days(i64::from(MAX_EXPIRY_DAYS)))
    {
        return Err(ApiKeyError::InvalidExpiry);
    }
    if let Some(Some(rate)) = rate_limit
        && (rate == 0 || rate > 60_000_000)
    {
        return Err(ApiKeyError::InvalidRateLimit);
    }
    if let Some(Some(tokens)) = daily_token_limit
        && (tokens == 0 || tokens > MAX_DAILY_TOKEN_LIMIT)
    {
        return Err(ApiKeyError::InvalidTokenLimit);
    }
    Ok(())
}

/// The row of a new key with `terms`.
fn new_key_row(owner: i64, name: String, key: &PlainApiKey, terms: &KeyTerms, now: DateTime<Utc>) -> api_keys::ActiveModel {
    api_keys::ActiveModel {
        user_id: Set(owner),
        name: Set(name),
        key_hash: Set(key.hash().as_bytes().to_vec()),
        hint: Set(key.hint()),
        permissions: Set(terms.permissions.to_storage()),
        rate_limit_per_minute: Set(terms.rate_limit_per_minute.map(|r| r as i32)),
        created_at: Set(now),
        last_used_at: Set(None),
        revoked_at: Set(None),
        expires_at: Set(terms.expires_at),
        models: Set(terms.models.as_ref().map(ModelAllowList::to_storage)),
        daily_token_limit: Set(terms.daily_token_limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX))),
        last_used_ip: Set(None),
        last_used_user_agent: Set(None),
        replaced_by: Set(None),
        ..Default::default()
    }
}

/// The keys in `status` at `now`.
fn status_condition(status: KeyStatus, now: DateTime<Utc>) -> Condition {
    match status {
        KeyStatus::Active => Condition::all()
            .add(api_keys::Column::RevokedAt.is_null())
            .add(Condition::any().add(api_keys::Column::ExpiresAt.is_null()).add(api_keys::Column::ExpiresAt.gt(now))),
        KeyStatus::Expired => Condition::all().add(api_keys::Column::RevokedAt.is_null()).add(api_keys::Column::ExpiresAt.lte(now)),
        KeyStatus::Revoked => Condition::all().add(api_keys::Column::RevokedAt.is_not_null()),
    }
}

/// `text` with LIKE's wildcards and the escape character escaped (by `\`).
pub(crate) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
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
    #[error("the daily token limit must be between 1 and {MAX_DAILY_TOKEN_LIMIT} tokens")]
    InvalidTokenLimit,
    /// The model allow-list does not parse (the message says why).
    #[error("{0}")]
    InvalidModels(String),
    #[error("`expire_old_in_seconds` must be between 0 and {MAX_ROLL_GRACE_SECONDS} (a week)")]
    InvalidGrace,
    /// The key is revoked or expired: it can no longer be edited or rolled.
    #[error("this API key is {}; only an active key can be edited or rolled", .0.as_str())]
    NotActive(KeyStatus),
    /// The key was revoked, rolled or edited while an edit was being made: nothing changed.
    #[error("this API key changed while the edit was being made; nothing was changed: load it again and retry")]
    ChangedMeanwhile,
    /// The key was rolled already: roll its replacement instead.
    #[error("this API key was already rolled and replaced by key {0}; roll that key instead")]
    AlreadyReplaced(i64),
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
    /// Its models and token budget, when it has either.
    pub guardrails: Option<Arc<Guardrails>>,
}

impl KeyPrincipal {
    fn from_cached(entry: &CachedKey, guardrails: Option<Arc<Guardrails>>) -> Self {
        Self {
            key_id: i64::from(entry.key_id),
            user_id: i64::from(entry.user_id),
            permissions: entry.permissions(),
            rate_limit_per_minute: (entry.rate_limit() != 0).then_some(entry.rate_limit()),
            expires_at: (entry.expires_at != 0).then(|| DateTime::from_timestamp(i64::from(entry.expires_at), 0)).flatten(),
            guardrails,
        }
    }

    /// What the key may do: its grant to keys it creates.
    pub fn terms(&self) -> KeyTerms {
        KeyTerms {
            permissions: self.permissions,
            expires_at: self.expires_at,
            rate_limit_per_minute: self.rate_limit_per_minute,
            models: self.guardrails.as_ref().and_then(|g| g.models.clone()),
            daily_token_limit: self.guardrails.as_ref().and_then(|g| g.daily_token_limit),
        }
    }

    /// Whether the key may see or call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.guardrails.as_ref().is_none_or(|g| g.allows_model(model))
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
#[derive(Clone, Debug, thiserror::Error)]
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
    /// The database lookups in flight that fill the cache, by key and generation: see
    /// [`ApiKeyService::shared_lookup`].
    flights: Arc<Flights>,
}

/// A lookup in flight: its outcome, once there is one.
type Flight = tokio::sync::watch::Receiver<Option<Result<KeyPrincipal, AuthFailure>>>;
type Flights = dashmap::DashMap<([u8; 32], u64), Flight>;

/// Takes a finished or abandoned lookup off [`Flights`] (whoever waits on it then learns
/// its outcome, or, abandoned, looks the key up itself).
struct Landing<'a> {
    flights: &'a Flights,
    id: ([u8; 32], u64),
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.flights.remove(&self.id);
    }
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
            flights: Arc::default(),
        }
    }

    /// The cached principal of `hash`, if valid under `generation` (no I/O); the use, from
    /// `site`, is remembered.
    pub fn cached(&self, hash: &ApiKeyHash, generation: u64, site: UseSite<'_>) -> Option<KeyPrincipal> {
        if !self.serve_cached {
            return None;
        }
        let entry = self.cache.get(hash, generation, super::last_used::unix_now())?;
        let guardrails = self.cache.guardrails_of(&entry)?;
        self.last_used.touch(i64::from(entry.key_id), site);
        Some(KeyPrincipal::from_cached(&entry, guardrails))
    }

    /// Whether lookups may be answered from the in-process cache (`WJ_AUTH_CACHE`).
    pub fn serves_cached(&self) -> bool {
        self.serve_cached
    }

    /// What this instance knows of `hash` (no I/O).
    pub fn known(&self, hash: &ApiKeyHash) -> Known {
        if let Some(entry) = self.cache.peek(hash) {
            let guardrails = self.cache.guardrails_of(&entry).flatten();
            return Known::Valid(KeyPrincipal::from_cached(&entry, guardrails));
        }
        self.refused.get(hash).map_or(Known::Never, Known::Refused)
    }

    /// The database lookup, filling the cache under `generation_before` — the generation
    /// read *before* the lookup began, so a revocation racing with it is never masked. Keys
    /// refused for good are remembered as such.
    pub async fn lookup_and_cache(
        &self,
        hash: &ApiKeyHash,
        generation_before: Option<u64>,
        site: UseSite<'_>,
    ) -> Result<KeyPrincipal, AuthFailure> {
        let found = match generation_before.filter(|_| self.serve_cached) {
            Some(generation) => self.shared_lookup(hash, generation).await,
            None => self.lookup(hash).await,
        };
        let principal = match found {
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
            self.cache.insert_guarded(hash, entry, principal.guardrails.clone(), generation_before.filter(|_| self.serve_cached));
        }
        self.last_used.touch(principal.key_id, site);
        Ok(principal)
    }

    /// [`ApiKeyService::lookup`], shared by the requests that present the same key under the
    /// same generation while it is in flight: when a hot key's cache entry ages out, or a new
    /// key arrives on many connections at once, the database answers once, not once per
    /// request (thousands at once queued for the pool, and timed out, before). Only the same
    /// generation joins: a revocation moves the generation before it commits, so a request
    /// that read the generation after a revocation began never gets an answer read before it
    /// — the rule the cache's entries follow. If the request whose lookup is shared goes away
    /// first, the others look the key up themselves.
    async fn shared_lookup(&self, hash: &ApiKeyHash, generation: u64) -> Result<KeyPrincipal, AuthFailure> {
        let id = (*hash.as_bytes(), generation);
        let outcome = match self.flights.entry(id) {
            dashmap::Entry::Occupied(flight) => Err(flight.get().clone()),
            dashmap::Entry::Vacant(slot) => {
                let (outcome, flight) = tokio::sync::watch::channel(None);
                slot.insert(flight);
                Ok(outcome)
            }
        };
        match outcome {
            Ok(outcome) => {
                let _landing = Landing { flights: &self.flights, id };
                let found = self.lookup(hash).await;
                outcome.send_replace(Some(found.clone()));
                found
            }
            Err(mut flight) => {
                let shared = flight.wait_for(Option::is_some).await.ok().and_then(|found| found.clone());
                match shared {
                    Some(found) => found,
                    None => self.lookup(hash).await,
                }
            }
        }
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
        check_bounds(asked.expires_at.map(Some), asked.rate_limit_per_minute.map(Some), asked.daily_token_limit.map(Some), now)?;
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
        // Rolled keys in their grace period do not count: they expire within a week.
        let active = api_keys::Entity::find()
            .filter(api_keys::Column::UserId.eq(owner))
            .filter(status_condition(KeyStatus::Active, now))
            .filter(api_keys::Column::ReplacedBy.is_null())
            .count(&txn)
            .await?;
        if active >= MAX_ACTIVE_KEYS {
            return Err(ApiKeyError::TooManyKeys);
        }
        let model = new_key_row(owner, name.into_inner(), &key, &terms, now).insert(&txn).await?;
        let detail = serde_json::json!({ "name": model.name });
        audit::record_detailed(&txn, ctx, audit::action::API_KEY_CREATE, Some(format!("api_key:{}", model.id)), Some(detail)).await?;
        txn.commit().await?;
        Ok((ApiKeyRecord::from_model(model), key))
    }

    /// Edits one of the owner's active keys within `grant` (see [`Grant::edit`]): a new
    /// name and any of `changes`. Effective from the next request on every instance (the
    /// key's cache bucket moves on, as for a revocation; refused with
    /// [`ApiKeyError::NotShared`] — nothing changed — when the other instances cannot be
    /// told). An edit that changes nothing changes nothing and records nothing.
    pub async fn edit(
        &self,
        owner: i64,
        id: i64,
        grant: &Grant,
        name: Option<KeyName>,
        changes: KeyChanges,
        ctx: &AuditContext,
    ) -> Result<ApiKeyRecord, ApiKeyError> {
        let now = Utc::now();
        check_bounds(changes.expires_at, changes.rate_limit_per_minute, changes.daily_token_limit, now)?;
        let row = self.owned(owner, id).await?;
        let record = self.with_pending_use(ApiKeyRecord::from_model(row.clone()));
        match record.status(now) {
            KeyStatus::Active => {}
            other => return Err(ApiKeyError::NotActive(other)),
        }
        let mut fields = changes.fields();
        let terms = grant.edit(&record.terms(), changes)?;
        let name = name.map(KeyName::into_inner).filter(|n| *n != record.name);
        if name.is_some() {
            fields.insert(0, "name");
        }
        if fields.is_empty() {
            return Ok(record);
        }
        // Only the columns that change, and only if the key is still as read: the rules
        // above (permissions narrow, the expiry moves earlier) were checked against it, and a
        // concurrent roll or revocation must not be undone.
        let mut update = api_keys::Entity::update_many()
            .filter(api_keys::Column::Id.eq(id))
            .filter(api_keys::Column::UserId.eq(owner))
            .filter(api_keys::Column::RevokedAt.is_null())
            .filter(api_keys::Column::Permissions.eq(row.permissions.clone()))
            .filter(match row.expires_at {
                Some(at) => api_keys::Column::ExpiresAt.eq(at),
                None => api_keys::Column::ExpiresAt.is_null(),
            });
        for field in &fields {
            update = match *field {
                "name" => update.col_expr(api_keys::Column::Name, Expr::value(name.clone())),
                "permissions" => update.col_expr(api_keys::Column::Permissions, Expr::value(terms.permissions.to_storage())),
                "expires_at" => update.col_expr(api_keys::Column::ExpiresAt, Expr::value(terms.expires_at)),
                "rate_limit_per_minute" => {
                    update.col_expr(api_keys::Column::RateLimitPerMinute, Expr::value(terms.rate_limit_per_minute.map(|r| r as i32)))
                }
                "models" => update.col_expr(api_keys::Column::Models, Expr::value(terms.models.as_ref().map(ModelAllowList::to_storage))),
                _ => update.col_expr(
                    api_keys::Column::DailyTokenLimit,
                    Expr::value(terms.daily_token_limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX))),
                ),
            };
        }
        let hash = ApiKeyHash::from_slice(&row.key_hash).ok_or(ApiKeyError::NotFound)?;
        let changed = self
            .changing(&hash, async {
                let txn = self.db.begin().await?;
                if update.exec(&txn).await?.rows_affected == 0 {
                    txn.rollback().await?;
                    return Ok(None);
                }
                let model = api_keys::Entity::find_by_id(id).one(&txn).await?.ok_or(DbErr::RecordNotFound("api key".into()))?;
                let detail = serde_json::json!({ "name": model.name, "changed": fields });
                audit::record_detailed(&txn, ctx, audit::action::API_KEY_EDIT, Some(format!("api_key:{id}")), Some(detail)).await?;
                txn.commit().await?;
                Ok(Some(model))
            })
            .await?
            .ok_or(ApiKeyError::ChangedMeanwhile)?;
        Ok(self.with_pending_use(ApiKeyRecord::from_model(changed)))
    }

    /// Rolls one of the owner's active keys: a new key with the same name, permissions,
    /// expiry, rate limit and guardrails (within `grant`, the caller's own) is created and
    /// returned once; the old key keeps working for `grace`, then answers like any expired
    /// key. Both count against one token budget (the new key's, which starts the day with
    /// what the old key spent). A key is rolled once: roll its replacement next time.
    pub async fn roll(
        &self,
        owner: i64,
        id: i64,
        grant: &Grant,
        grace: std::time::Duration,
        ctx: &AuditContext,
    ) -> Result<RolledKey, ApiKeyError> {
        if grace.as_secs() > MAX_ROLL_GRACE_SECONDS {
            return Err(ApiKeyError::InvalidGrace);
        }
        let now = Utc::now();
        let row = self.owned(owner, id).await?;
        let old = ApiKeyRecord::from_model(row.clone());
        match old.status(now) {
            KeyStatus::Active => {}
            other => return Err(ApiKeyError::NotActive(other)),
        }
        if let Some(by) = old.replaced_by {
            return Err(ApiKeyError::AlreadyReplaced(by));
        }
        let current = old.terms();
        let terms = grant.narrow(NewKeyOptions {
            permissions: Some(current.permissions),
            expires_at: current.expires_at,
            rate_limit_per_minute: current.rate_limit_per_minute,
            models: current.models,
            daily_token_limit: current.daily_token_limit,
        })?;
        if terms.expires_at.is_some_and(|e| e <= now) {
            return Err(ApiKeyError::InvalidExpiry);
        }
        let grace_ends = now + chrono::Duration::seconds(grace.as_secs() as i64);
        let old_expiry = old.expires_at.map_or(grace_ends, |e| Ord::min(e, grace_ends));
        let hash = ApiKeyHash::from_slice(&row.key_hash).ok_or(ApiKeyError::NotFound)?;
        let key = PlainApiKey::generate();
        let (new, old) = self
            .changing(&hash, async {
                let txn = self.db.begin().await?;
                let new = new_key_row(owner, old.name.clone(), &key, &terms, now).insert(&txn).await?;
                let replaced = api_keys::Entity::update_many()
                    .col_expr(api_keys::Column::ExpiresAt, Expr::value(old_expiry))
                    .col_expr(api_keys::Column::ReplacedBy, Expr::value(new.id))
                    .filter(api_keys::Column::Id.eq(id))
                    .filter(api_keys::Column::UserId.eq(owner))
                    .filter(api_keys::Column::RevokedAt.is_null())
                    .filter(api_keys::Column::ReplacedBy.is_null())
                    .exec(&txn)
                    .await?;
                let old = api_keys::Entity::find_by_id(id).one(&txn).await?.ok_or(DbErr::RecordNotFound("api key".into()))?;
                if replaced.rows_affected == 0 {
                    // Rolled (or revoked) by a concurrent request: nothing of this one stays.
                    txn.rollback().await?;
                    return Ok(Err(old));
                }
                TokenBudgets::carry_over(&txn, id, new.id).await?;
                let target = |id: i64| Some(format!("api_key:{id}"));
                let rolled = serde_json::json!({ "name": old.name, "replaced_by": new.id, "expire_old_in_seconds": grace.as_secs() });
                audit::record_detailed(&txn, ctx, audit::action::API_KEY_ROLL, target(id), Some(rolled)).await?;
                let created = serde_json::json!({ "name": new.name, "replaces": id });
                audit::record_detailed(&txn, ctx, audit::action::API_KEY_CREATE, target(new.id), Some(created)).await?;
                txn.commit().await?;
                Ok(Ok((new, old)))
            })
            .await?
            .map_err(|old| match (old.replaced_by, old.revoked_at) {
                (Some(by), _) => ApiKeyError::AlreadyReplaced(by),
                (None, Some(_)) => ApiKeyError::NotActive(KeyStatus::Revoked),
                (None, None) => ApiKeyError::NotActive(KeyStatus::Expired),
            })?;
        Ok(RolledKey { new: ApiKeyRecord::from_model(new), key, old: self.with_pending_use(ApiKeyRecord::from_model(old)) })
    }

    /// One of the owner's keys, as stored; another user's id is [`ApiKeyError::NotFound`].
    async fn owned(&self, owner: i64, id: i64) -> Result<api_keys::Model, ApiKeyError> {
        let row = api_keys::Entity::find_by_id(id).filter(api_keys::Column::UserId.eq(owner)).one(&self.db).await?;
        row.ok_or(ApiKeyError::NotFound)
    }

    /// Runs `commit`, a change to the key of `hash` that a cache must not hide: announced
    /// before (no instance serves the key's bucket from a cache meanwhile; refused, with
    /// nothing changed, when the other instances cannot be told) and finished after, when
    /// entries filled before are stale everywhere.
    async fn changing<T>(&self, hash: &ApiKeyHash, commit: impl Future<Output = Result<T, DbErr>>) -> Result<T, ApiKeyError> {
        let change = self.generations.begin(Scope::Bucket(bucket_of(hash.as_bytes()))).await?;
        let committed = commit.await;
        self.cache.remove(hash);
        self.generations.finish(change).await;
        Ok(committed?)
    }

    /// The owner's keys, newest first (revoked ones included, marked).
    pub async fn list(&self, owner: i64) -> Result<Vec<ApiKeyRecord>, DbErr> {
        Ok(self.page(owner, &KeyQuery { limit: u64::MAX, ..Default::default() }).await?.keys)
    }

    /// A page of the owner's keys matching `query`, newest first.
    pub async fn page(&self, owner: i64, query: &KeyQuery) -> Result<KeyPage, DbErr> {
        let now = Utc::now();
        let mut filter = Condition::all().add(api_keys::Column::UserId.eq(owner));
        if let Some(status) = query.status {
            filter = filter.add(status_condition(status, now));
        }
        if let Some(search) = query.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
            filter = filter.add(Expr::expr(Func::lower(Expr::col(api_keys::Column::Name))).like(LikeExpr::new(pattern).escape('\\')));
        }
        let total = api_keys::Entity::find().filter(filter.clone()).count(&self.db).await?;
        if let Some(before) = query.before_id {
            filter = filter.add(api_keys::Column::Id.lt(before));
        }
        let limit = Ord::max(query.limit, 1);
        let rows = api_keys::Entity::find()
            .filter(filter)
            .order_by_desc(api_keys::Column::Id)
            .offset(query.offset)
            .limit(limit.saturating_add(1))
            .all(&self.db)
            .await?;
        let has_more = rows.len() as u64 > limit;
        let keys = rows.into_iter().take(limit as usize).map(|m| self.with_pending_use(ApiKeyRecord::from_model(m))).collect();
        Ok(KeyPage { keys, has_more, total })
    }

    /// How many of the owner's keys are active, expired and revoked.
    pub async fn counts(&self, owner: i64) -> Result<[(KeyStatus, u64); 3], DbErr> {
        let now = Utc::now();
        let mut counts = [(KeyStatus::Active, 0), (KeyStatus::Expired, 0), (KeyStatus::Revoked, 0)];
        for (status, count) in &mut counts {
            *count = api_keys::Entity::find()
                .filter(api_keys::Column::UserId.eq(owner))
                .filter(status_condition(*status, now))
                .count(&self.db)
                .await?;
        }
        Ok(counts)
    }

    /// One of the owner's keys; another user's id is simply not found.
    pub async fn get(&self, owner: i64, id: i64) -> Result<Option<ApiKeyRecord>, DbErr> {
        let row = api_keys::Entity::find_by_id(id).filter(api_keys::Column::UserId.eq(owner)).one(&self.db).await?;
        Ok(row.map(|m| self.with_pending_use(ApiKeyRecord::from_model(m))))
    }

    fn with_pending_use(&self, mut record: ApiKeyRecord) -> ApiKeyRecord {
        if let Some(pending) = self.last_used.pending(record.id)
            && record.last_used_at.is_none_or(|t| t <= pending.at)
        {
            record.last_used_at = Some(pending.at);
            record.last_used_ip = pending.ip.map(|ip| ip.to_string());
            record.last_used_user_agent = pending.user_agent.map(|ua| ua.to_string());
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
        self.revoke_as(owner, id, ctx, Revoker::Owner).await
    }

    /// Any user's key (an administrator's look-up: `admin` is the proof that the caller is one).
    pub async fn find_any(&self, _admin: &Admin, id: i64) -> Result<Option<ApiKeyRecord>, DbErr> {
        let row = api_keys::Entity::find_by_id(id).one(&self.db).await?;
        Ok(row.map(|m| self.with_pending_use(ApiKeyRecord::from_model(m))))
    }

    /// The keys, anyone's, whose hint (as lists show it: `wj_live_a1b2…x9y8`; `...` for `…`
    /// is fine) is `hint`, newest first, at most [`MAX_HINT_MATCHES`].
    pub async fn find_by_hint(&self, _admin: &Admin, hint: &str) -> Result<Vec<ApiKeyRecord>, DbErr> {
        let hint = hint.trim().replace("...", "…");
        let rows = api_keys::Entity::find()
            .filter(api_keys::Column::Hint.eq(hint))
            .order_by_desc(api_keys::Column::Id)
            .limit(MAX_HINT_MATCHES)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|m| self.with_pending_use(ApiKeyRecord::from_model(m))).collect())
    }

    /// Revokes anyone's key, as [`Self::revoke`] does for an owner; audited as the
    /// administrator's action, shown in the owner's security log too.
    pub async fn revoke_as_admin(&self, _admin: &Admin, id: i64, ctx: &AuditContext) -> Result<(ApiKeyRecord, bool), ApiKeyError> {
        let owner = api_keys::Entity::find_by_id(id).one(&self.db).await?.ok_or(ApiKeyError::NotFound)?.user_id;
        self.revoke_as(owner, id, ctx, Revoker::Admin).await
    }

    async fn revoke_as(&self, owner: i64, id: i64, ctx: &AuditContext, by: Revoker) -> Result<(ApiKeyRecord, bool), ApiKeyError> {
        let row = api_keys::Entity::find_by_id(id).filter(api_keys::Column::UserId.eq(owner)).one(&self.db).await?;
        let row = row.ok_or(ApiKeyError::NotFound)?;
        let hash = ApiKeyHash::from_slice(&row.key_hash);
        if row.revoked_at.is_some() || hash.is_none() {
            return Ok((self.with_pending_use(ApiKeyRecord::from_model(row)), false));
        }
        let hash = hash.expect("checked above");
        let name = row.name.clone();
        let (row, revoked_now) = self.changing(&hash, self.commit_revocation(owner, id, &name, ctx, by)).await?;
        self.refused.insert(&hash, FinalRefusal::Revoked);
        let record = row.map(ApiKeyRecord::from_model).ok_or(ApiKeyError::NotFound)?;
        Ok((self.with_pending_use(record), revoked_now))
    }

    async fn commit_revocation(
        &self,
        owner: i64,
        id: i64,
        name: &str,
        ctx: &AuditContext,
        by: Revoker,
    ) -> Result<(Option<api_keys::Model>, bool), DbErr> {
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
            let target = Some(format!("api_key:{id}"));
            match by {
                Revoker::Owner => {
                    let detail = serde_json::json!({ "name": name });
                    audit::record_detailed(&txn, ctx, audit::action::API_KEY_REVOKE, target, Some(detail)).await?;
                }
                Revoker::Admin => {
                    let detail = serde_json::json!({ "name": name, "owner_user_id": owner });
                    audit::record_about(&txn, ctx, audit::action::ADMIN_KEY_REVOKE, target, Some(detail), Some(owner)).await?;
                }
            }
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
        let guardrails = Guardrails {
            models: stored_models(key.models.as_deref(), key.id).map(ModelAllowList::from_stored),
            daily_token_limit: key.daily_token_limit.and_then(|l| u64::try_from(l).ok()),
            // A rolled key in its grace period spends its replacement's budget.
            budget_key_id: key.replaced_by.unwrap_or(key.id),
        };
        Ok(KeyPrincipal {
            key_id: key.id,
            user_id: key.user_id,
            permissions: stored_permissions(&key.permissions, key.id),
            rate_limit_per_minute: key.rate_limit_per_minute.and_then(|r| u32::try_from(r).ok()),
            expires_at: key.expires_at,
            guardrails: (!guardrails.is_unrestricted()).then(|| Arc::new(guardrails)),
        })
    }

    /// Writes pending `last_used_at` values.
    pub async fn flush_last_used(&self) -> Result<usize, DbErr> {
        self.last_used.flush(&self.db).await
    }
}
