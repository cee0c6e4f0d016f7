//! In-process caches of API-key lookups that never weaken revocation.
//!
//! Every cached entry remembers the *generation* of its bucket (one of 256, by the first
//! byte of the key's hash) as it was read **before** the database lookup that filled the
//! entry. A revocation moves its bucket's generation on — in this process and, with Redis,
//! for every instance — so the very next request anywhere sees a newer generation than the
//! entry and goes back to the database. An entry is also never used after
//! [`MAX_ENTRY_AGE`], which bounds staleness whatever else fails.
//!
//! With Redis, the generation an entry remembers is a *local stamp*: this process counts
//! every change it observes in what Redis says of a bucket (its counter, or the epoch of
//! Redis' data), so a Redis that restarted empty — counters back at 0 — still reads as a
//! change. While a revocation of a bucket is in progress (anywhere, as Redis' marks say, or
//! here), or this process could not tell Redis that its revocation finished, the bucket has
//! no generation: nothing is served from, or put into, a cache for it.
//!
//! Keys known *not* to work for good — unknown, revoked, expired: states that never change
//! back — are remembered in a bounded negative cache, so a client repeating such a key
//! costs no database read.

use std::{
    hash::{BuildHasherDefault, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use dashmap::DashMap;

use crate::{
    domain::{
        api_keys::{ApiKeyHash, guardrails::Guardrails},
        shared_state::{Scope, SharedError, SharedGeneration, SharedState},
    },
    permissions::Permissions,
};

/// Generation buckets (by the first byte of a hash).
pub const BUCKETS: usize = 256;
/// The oldest an entry may be and still be used.
pub const MAX_ENTRY_AGE: Duration = Duration::from_secs(60);
/// The longest a revocation's mark holds in Redis when its instance never unmarks it. Its
/// database commit is bounded by the database timeout, far below this.
pub const REVOCATION_MARK_LIFETIME: Duration = Duration::from_secs(60);
/// The longest one Redis call of a revocation may take before the revocation is refused
/// (before its commit) or left to the retry (after it).
pub const REVOCATION_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The bucket of a hash.
pub fn bucket_of(hash: &[u8; 32]) -> u8 {
    hash[0]
}

/// Keys are uniformly random hashes already: hash them by their first eight bytes.
#[derive(Default)]
pub struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as its bytes; keep the first eight seen.
        if self.0 == 0 && bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes"));
        }
    }

    fn write_usize(&mut self, _: usize) {}
}

/// What a cached key says (compact: the cache holds up to millions of these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedKey {
    /// Ids above `u32::MAX` are not cached (their lookups always go to the database): 40
    /// bytes a slot keep a million keys under 100 bytes each.
    pub key_id: u32,
    pub user_id: u32,
    /// Expiry in Unix seconds, 0 for none.
    pub expires_at: u32,
    /// The key's own rate limit (low 26 bits, 0 for the default), its permissions (the next
    /// 5 bits: [`ALL_PERMISSIONS`], or the restricted bits) and whether it has guardrails
    /// (the top bit: they are in [`KeyCache`]'s side table).
    limits: u32,
    /// Generation (stamp) of the bucket when the entry was read (low 32 bits are plenty).
    pub generation: u32,
    /// When the entry was filled: seconds since the cache was created.
    pub filled: u32,
}

const RATE_BITS: u32 = 26;
const RATE_MASK: u32 = (1 << RATE_BITS) - 1;
/// The permission bits' value for "all".
const ALL_PERMISSIONS: u32 = 0b1_0000;
const PERMISSION_MASK: u32 = 0b1_1111;
/// Set when the key has guardrails.
const GUARDED: u32 = 1 << 31;

impl CachedKey {
    /// An entry, or `None` when a value does not fit (such keys are simply not cached).
    pub fn new(key_id: u32, user_id: u32, expires_at: u32, rate_limit: u32, permissions: Permissions) -> Option<Self> {
        let permission_bits = match permissions {
            Permissions::All => ALL_PERMISSIONS,
            Permissions::Restricted(bits) if u32::from(bits) < ALL_PERMISSIONS => u32::from(bits),
            Permissions::Restricted(_) => return None,
        };
        if rate_limit > RATE_MASK {
            return None;
        }
        Some(Self { key_id, user_id, expires_at, limits: rate_limit | (permission_bits << RATE_BITS), generation: 0, filled: 0 })
    }

    /// Marks the entry as having guardrails (kept beside the entry, in the cache).
    pub fn guarded(mut self) -> Self {
        self.limits |= GUARDED;
        self
    }

    pub fn is_guarded(&self) -> bool {
        self.limits & GUARDED != 0
    }

    pub fn permissions(&self) -> Permissions {
        match (self.limits >> RATE_BITS) & PERMISSION_MASK {
            ALL_PERMISSIONS => Permissions::All,
            bits => Permissions::Restricted(bits as u8),
        }
    }

    /// Filled under `generation` and less than [`MAX_ENTRY_AGE`] before `now` (seconds of
    /// the cache's clock).
    fn is_fresh(&self, generation: u64, now: u32) -> bool {
        self.generation == generation as u32 && now.checked_sub(self.filled).is_some_and(|age| age < MAX_ENTRY_AGE.as_secs() as u32)
    }

    /// The key's own rate limit, 0 for the default.
    pub fn rate_limit(&self) -> u32 {
        self.limits & RATE_MASK
    }
}

/// Positive lookups of API keys, by the first 16 bytes of the key's SHA-256 (a 128-bit
/// prefix of a hash nobody can steer; the full hash was compared by the database lookup).
pub struct KeyCache {
    map: DashMap<[u8; 16], CachedKey, BuildHasherDefault<PrefixHasher>>,
    /// The guardrails of the guarded entries, by key id (few keys have them).
    guardrails: DashMap<u32, Arc<Guardrails>>,
    max_entries: usize,
    epoch: Instant,
    evictions: AtomicU64,
}

fn prefix(hash: &ApiKeyHash) -> [u8; 16] {
    hash.as_bytes()[..16].try_into().expect("sixteen bytes")
}

impl KeyCache {
    pub fn new(max_entries: usize) -> Self {
        Self {
            map: DashMap::with_hasher(BuildHasherDefault::default()),
            guardrails: DashMap::new(),
            max_entries,
            epoch: Instant::now(),
            evictions: AtomicU64::new(0),
        }
    }

    /// The guardrails of an entry: `Some(None)` for an unguarded one, `None` when a guarded
    /// entry's are no longer held (the key must then be read again).
    pub fn guardrails_of(&self, entry: &CachedKey) -> Option<Option<Arc<Guardrails>>> {
        if !entry.is_guarded() {
            return Some(None);
        }
        self.guardrails.get(&entry.key_id).map(|g| Some(Arc::clone(&g)))
    }

    /// Fills an entry with its guardrails (see [`KeyCache::insert`]).
    pub fn insert_guarded(&self, hash: &ApiKeyHash, entry: CachedKey, guardrails: Option<Arc<Guardrails>>, generation: Option<u64>) {
        match guardrails {
            Some(rails) => {
                if self.guardrails.len() >= self.max_entries {
                    self.guardrails.clear();
                }
                self.guardrails.insert(entry.key_id, rails);
                self.insert(hash, entry.guarded(), generation);
            }
            None => {
                self.guardrails.remove(&entry.key_id);
                self.insert(hash, entry, generation);
            }
        }
    }

    fn now(&self) -> u32 {
        // 136 years before this wraps.
        self.epoch.elapsed().as_secs().min(u64::from(u32::MAX)) as u32
    }

    /// The entry, if present, filled under `generation`, young enough and not expired.
    pub fn get(&self, hash: &ApiKeyHash, generation: u64, now_unix: i64) -> Option<CachedKey> {
        let entry = *self.map.get(&prefix(hash))?;
        let fresh = entry.is_fresh(generation, self.now());
        let unexpired = entry.expires_at == 0 || i64::from(entry.expires_at) > now_unix;
        if fresh && unexpired {
            Some(entry)
        } else {
            self.map.remove(&prefix(hash));
            None
        }
    }

    /// The entry whatever its generation (to learn which rate-limit bucket to check).
    pub fn peek(&self, hash: &ApiKeyHash) -> Option<CachedKey> {
        self.map.get(&prefix(hash)).map(|e| *e)
    }

    /// Fills an entry read under `generation`; with none (unknown), the entry only marks the
    /// key as seen and is never served.
    pub fn insert(&self, hash: &ApiKeyHash, mut entry: CachedKey, generation: Option<u64>) {
        if self.map.len() >= self.max_entries {
            // Bounded: drop about half, by one bit of the (random) hash — a different bit
            // each time, or survivors would all share the bit and nothing would go.
            let bit = (self.evictions.fetch_add(1, Ordering::Relaxed) % 128) as usize;
            self.map.retain(|k, _| (k[bit / 8] >> (bit % 8)) & 1 == 0);
        }
        entry.generation = generation.unwrap_or(0) as u32;
        // `u32::MAX` is never within MAX_ENTRY_AGE of the cache's clock (136 years away).
        entry.filled = if generation.is_some() { self.now() } else { u32::MAX };
        self.map.insert(prefix(hash), entry);
    }

    pub fn remove(&self, hash: &ApiKeyHash) {
        self.map.remove(&prefix(hash));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Why a key does not work, for good: the states a key never leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalRefusal {
    Unknown,
    Revoked,
    Expired,
}

/// Hashes known not to work, bounded (like [`KeyCache`]), by the same 128-bit prefix.
pub struct RefusedKeys {
    map: DashMap<[u8; 16], FinalRefusal, BuildHasherDefault<PrefixHasher>>,
    max_entries: usize,
    evictions: AtomicU64,
}

impl RefusedKeys {
    pub fn new(max_entries: usize) -> Self {
        Self { map: DashMap::with_hasher(BuildHasherDefault::default()), max_entries, evictions: AtomicU64::new(0) }
    }

    pub fn get(&self, hash: &ApiKeyHash) -> Option<FinalRefusal> {
        self.map.get(&prefix(hash)).map(|r| *r)
    }

    pub fn insert(&self, hash: &ApiKeyHash, refusal: FinalRefusal) {
        if self.map.len() >= self.max_entries {
            let bit = (self.evictions.fetch_add(1, Ordering::Relaxed) % 128) as usize;
            self.map.retain(|k, _| (k[bit / 8] >> (bit % 8)) & 1 == 0);
        }
        self.map.insert(prefix(hash), refusal);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A revocation in progress, from [`Generations::begin`] to [`Generations::finish`]: while
/// it lasts, no instance serves its scope from a cache.
#[must_use = "a revocation must be finished, or its scope stays uncached"]
pub struct Revocation {
    scope: Scope,
    token: String,
}

/// Why a revocation was refused before anything was changed.
#[derive(Debug, thiserror::Error)]
#[error("the revocation could not be announced to the other instances: {0}")]
pub struct RevocationRefused(pub SharedError);

/// Where generations come from: this process (one instance), or Redis (several).
pub struct Generations {
    shared: Option<Arc<SharedState>>,
    /// Per bucket: the generation (one instance), or the local stamp of what Redis said.
    stamps: [AtomicU64; BUCKETS],
    /// Per bucket: what Redis said last.
    seen: [Mutex<Option<SharedGeneration>>; BUCKETS],
    /// Revocations of this process in progress, or not yet finished in Redis: per bucket,
    /// and of everything. Their buckets have no generation meanwhile.
    blocked: [AtomicU32; BUCKETS],
    blocked_all: AtomicU32,
    /// Revocations committed here whose end Redis has not heard of yet.
    unsent: Mutex<Vec<Revocation>>,
}

impl Generations {
    pub fn new(shared: Option<Arc<SharedState>>) -> Self {
        Self {
            shared,
            stamps: std::array::from_fn(|_| AtomicU64::new(0)),
            seen: std::array::from_fn(|_| Mutex::new(None)),
            blocked: std::array::from_fn(|_| AtomicU32::new(0)),
            blocked_all: AtomicU32::new(0),
            unsent: Mutex::new(Vec::new()),
        }
    }

    fn is_blocked(&self, bucket: u8) -> bool {
        self.blocked_all.load(Ordering::Acquire) > 0 || self.blocked[bucket as usize].load(Ordering::Acquire) > 0
    }

    /// The current generation of `bucket`, or `None` when it cannot be known (Redis down,
    /// a revocation in progress): then nothing may be served from, or put into, a cache.
    pub async fn current(&self, bucket: u8) -> Option<u64> {
        match &self.shared {
            None => self.local(bucket),
            Some(shared) => {
                let generation = shared.generation(bucket).await.ok().flatten();
                self.observe(bucket, generation)
            }
        }
    }

    /// The generation of `bucket` in this process alone (one instance, no Redis).
    pub fn local(&self, bucket: u8) -> Option<u64> {
        (!self.is_blocked(bucket)).then(|| self.stamps[bucket as usize].load(Ordering::Acquire))
    }

    /// The stamp for what Redis just said of `bucket` (`None`: a revocation in progress).
    pub fn observe(&self, bucket: u8, generation: Option<SharedGeneration>) -> Option<u64> {
        let generation = generation?;
        if self.is_blocked(bucket) {
            return None;
        }
        let mut seen = self.seen[bucket as usize].lock().expect("lock");
        let stamp = &self.stamps[bucket as usize];
        if *seen == Some(generation) {
            return Some(stamp.load(Ordering::Acquire));
        }
        // Any change — a newer counter, an older one read late, a new epoch — moves the stamp
        // on: entries filled under the previous stamp are stale.
        *seen = Some(generation);
        Some(stamp.fetch_add(1, Ordering::AcqRel) + 1)
    }

    fn block(&self, scope: Scope, by: i32) {
        let counter = match scope {
            Scope::Bucket(bucket) => &self.blocked[bucket as usize],
            Scope::All => &self.blocked_all,
        };
        if by > 0 {
            counter.fetch_add(1, Ordering::AcqRel)
        } else {
            counter.fetch_sub(1, Ordering::AcqRel)
        };
    }

    /// Before a revocation is committed: from now until [`Generations::finish`], no instance
    /// serves `scope` from a cache. With Redis, refused (and nothing may be revoked) when
    /// Redis cannot be told within [`REVOCATION_REDIS_TIMEOUT`].
    pub async fn begin(&self, scope: Scope) -> Result<Revocation, RevocationRefused> {
        self.block(scope, 1);
        let token = {
            use rand::RngCore;
            format!("{:016x}{:016x}", rand::rng().next_u64(), rand::rng().next_u64())
        };
        if let Some(shared) = &self.shared {
            let announced =
                tokio::time::timeout(REVOCATION_REDIS_TIMEOUT, shared.begin_revocation(scope, &token, REVOCATION_MARK_LIFETIME))
                    .await
                    .unwrap_or_else(|_| Err(SharedError("timed out".into())));
            if let Err(error) = announced {
                self.block(scope, -1);
                tracing::error!(%error, ?scope, "revocation refused: Redis could not be told");
                return Err(RevocationRefused(error));
            }
        }
        Ok(Revocation { scope, token })
    }

    /// After the revocation's commit (or its failure): every cached entry of the scope is
    /// stale here at once, and everywhere once Redis hears of it. If Redis cannot be told,
    /// this process keeps the scope uncached and retries; elsewhere the mark holds until it
    /// expires.
    pub async fn finish(&self, revocation: Revocation) {
        match revocation.scope {
            Scope::Bucket(bucket) => {
                self.stamps[bucket as usize].fetch_add(1, Ordering::AcqRel);
            }
            Scope::All => self.stamps.iter().for_each(|s| {
                s.fetch_add(1, Ordering::AcqRel);
            }),
        }
        if let Some(shared) = &self.shared {
            let sent = tokio::time::timeout(REVOCATION_REDIS_TIMEOUT, shared.finish_revocation(revocation.scope, &revocation.token))
                .await
                .unwrap_or_else(|_| Err(SharedError("timed out".into())));
            if let Err(error) = sent {
                tracing::error!(%error, scope = ?revocation.scope, "revocation committed but its end not shared yet: the scope stays uncached; will retry");
                self.unsent.lock().expect("lock").push(revocation);
                return;
            }
        }
        self.block(revocation.scope, -1);
    }

    /// Retries the ends of revocations that did not reach Redis (the maintenance task).
    pub async fn retry_unsent(&self) {
        let Some(shared) = &self.shared else { return };
        let pending = std::mem::take(&mut *self.unsent.lock().expect("lock"));
        for revocation in pending {
            match shared.finish_revocation(revocation.scope, &revocation.token).await {
                Ok(()) => self.block(revocation.scope, -1),
                Err(_) => self.unsent.lock().expect("lock").push(revocation),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_keys::PlainApiKey;

    fn entry() -> CachedKey {
        CachedKey::new(1, 2, 0, 0, Permissions::All).expect("fits")
    }

    #[test]
    fn entries_are_valid_only_for_their_generation() {
        let cache = KeyCache::new(100);
        let key = PlainApiKey::generate().hash();
        cache.insert(&key, entry(), Some(7));
        assert!(cache.get(&key, 7, 0).is_some());
        assert!(cache.get(&key, 8, 0).is_none(), "a newer generation invalidates");
        assert!(cache.get(&key, 7, 0).is_none(), "and the stale entry is gone");
    }

    #[test]
    fn expired_keys_are_never_served_from_the_cache() {
        let cache = KeyCache::new(100);
        let key = PlainApiKey::generate().hash();
        cache.insert(&key, CachedKey { expires_at: 1_000, ..entry() }, Some(0));
        assert!(cache.get(&key, 0, 999).is_some());
        assert!(cache.get(&key, 0, 1_000).is_none());
    }

    #[test]
    fn old_entries_are_never_fresh_again() {
        // The fill time is kept in whole seconds for 136 years: an entry filled 18 hours ago
        // (65,536 s, where a 16-bit clock wrapped) is as stale as one filled a minute ago.
        let filled = CachedKey { filled: 5, ..entry() };
        assert!(filled.is_fresh(0, 5) && filled.is_fresh(0, 64));
        for age in [60u32, 61, 65_536, 65_536 + 10, 131_072, u32::MAX - 5] {
            assert!(!filled.is_fresh(0, 5 + age), "an entry {age} s old is fresh");
        }
        assert!(!filled.is_fresh(0, 4), "an entry from the future is not fresh");
        assert!(!filled.is_fresh(1, 5), "nor one of another generation");
        let cache = KeyCache::new(10);
        let key = PlainApiKey::generate().hash();
        cache.insert(&key, entry(), None);
        assert!(cache.peek(&key).is_some() && cache.get(&key, 0, 0).is_none(), "filled without a generation: seen, never served");
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = KeyCache::new(1_000);
        for _ in 0..10_000 {
            cache.insert(&PlainApiKey::generate().hash(), entry(), Some(0));
        }
        assert!(cache.len() <= 1_000, "{}", cache.len());
        let refused = RefusedKeys::new(1_000);
        for _ in 0..10_000 {
            refused.insert(&PlainApiKey::generate().hash(), FinalRefusal::Unknown);
        }
        assert!(refused.len() <= 1_000, "{}", refused.len());
    }

    #[test]
    fn entries_are_compact_and_keep_what_they_were_given() {
        assert_eq!(std::mem::size_of::<([u8; 16], CachedKey)>(), 40);
        let restricted = Permissions::restricted([crate::permissions::Permission::KeysRead]);
        let e = CachedKey::new(1, 2, 3, 60_000_000, restricted).expect("fits");
        assert_eq!((e.rate_limit(), e.permissions()), (60_000_000, restricted));
        let e = CachedKey::new(1, 2, 3, 0, Permissions::All).expect("fits");
        assert_eq!((e.rate_limit(), e.permissions()), (0, Permissions::All));
        assert_eq!(CachedKey::new(1, 2, 3, 0, Permissions::restricted([])).expect("fits").permissions(), Permissions::restricted([]));
        assert!(CachedKey::new(1, 2, 3, 1 << 26, Permissions::All).is_none(), "too large a limit is not cached");
        let guarded = CachedKey::new(1, 2, 3, 60_000_000, restricted).expect("fits").guarded();
        assert!(guarded.is_guarded() && !e.is_guarded());
        assert_eq!((guarded.rate_limit(), guarded.permissions()), (60_000_000, restricted), "the flag changes nothing else");
    }

    #[test]
    fn guarded_entries_are_served_with_their_guardrails_or_not_at_all() {
        let cache = KeyCache::new(100);
        let key = PlainApiKey::generate().hash();
        let rails = Arc::new(Guardrails { models: None, daily_token_limit: Some(5), budget_key_id: 1 });
        cache.insert_guarded(&key, entry(), Some(Arc::clone(&rails)), Some(0));
        let served = cache.get(&key, 0, 0).expect("fresh");
        assert_eq!(cache.guardrails_of(&served), Some(Some(rails)));
        cache.guardrails.clear();
        assert_eq!(cache.guardrails_of(&served), None, "lost guardrails: read the key again");
        cache.insert_guarded(&key, entry(), None, Some(0));
        assert_eq!(cache.guardrails_of(&cache.get(&key, 0, 0).expect("fresh")), Some(None));
    }

    #[tokio::test]
    async fn local_generations_move_on_with_each_revocation_and_block_meanwhile() {
        let generations = Generations::new(None);
        assert_eq!(generations.local(3), Some(0));
        let revocation = generations.begin(Scope::Bucket(3)).await.expect("local revocations cannot fail");
        assert_eq!(generations.local(3), None, "no cache while a revocation is in progress");
        assert_eq!(generations.local(4), Some(0), "other buckets are unaffected");
        generations.finish(revocation).await;
        assert_eq!(generations.local(3), Some(1));
        let all = generations.begin(Scope::All).await.expect("local");
        assert_eq!(generations.local(4), None, "revoking everything blocks every bucket");
        generations.finish(all).await;
        assert_eq!((generations.local(3), generations.local(4)), (Some(2), Some(1)));
    }

    #[test]
    fn any_change_redis_reports_moves_the_stamp_on() {
        let generations = Generations::new(None);
        let g = |epoch, counter| Some(SharedGeneration { epoch, counter });
        let first = generations.observe(9, g(100, 5)).expect("stamp");
        assert_eq!(generations.observe(9, g(100, 5)), Some(first), "unchanged: same stamp");
        let bumped = generations.observe(9, g(100, 6)).expect("stamp");
        assert_ne!(bumped, first);
        // Redis lost its data: the counter is back where it was, under a new epoch.
        let flushed = generations.observe(9, g(200, 5)).expect("stamp");
        assert!(flushed != first && flushed != bumped);
        // A late answer from before the change is a change too (never an old stamp again).
        let late = generations.observe(9, g(100, 6)).expect("stamp");
        assert!(![first, bumped, flushed].contains(&late));
        assert_eq!(generations.observe(9, None), None, "a revocation in progress: no generation");
    }
}
