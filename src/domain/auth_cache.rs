//! In-process caches of API-key lookups that never weaken revocation.
//!
//! Every cached entry remembers the *generation* of its bucket (one of 256, by the first
//! byte of the key's hash) as it was read **before** the database lookup that filled the
//! entry. Revoking a key bumps its bucket's generation after the database commit — in this
//! process and, with Redis, for every instance — so the very next request anywhere sees a
//! newer generation than the entry and goes back to the database. An entry is also never
//! used after [`MAX_ENTRY_AGE`], which bounds staleness even if a generation bump is lost.

use std::{
    hash::{BuildHasherDefault, Hasher},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use dashmap::DashMap;

use crate::{domain::api_keys::ApiKeyHash, permissions::Permissions};

/// Generation buckets (by the first byte of a hash).
pub const BUCKETS: usize = 256;
/// The oldest an entry may be and still be used.
pub const MAX_ENTRY_AGE: Duration = Duration::from_secs(60);

/// The bucket of a hash.
pub fn bucket_of(hash: &[u8; 32]) -> u8 {
    hash[0]
}

/// Generation counters of this process (the Redis ones are shared).
pub struct LocalGenerations([AtomicU64; BUCKETS]);

impl Default for LocalGenerations {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl LocalGenerations {
    pub fn current(&self, bucket: u8) -> u64 {
        self.0[bucket as usize].load(Ordering::Acquire)
    }

    pub fn bump(&self, bucket: u8) -> u64 {
        self.0[bucket as usize].fetch_add(1, Ordering::AcqRel) + 1
    }
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
    /// bytes a slot instead of 48 keep a million keys under 100 bytes each.
    pub key_id: u32,
    pub user_id: u32,
    /// Expiry in Unix seconds, 0 for none.
    pub expires_at: u32,
    /// The key's own rate limit, 0 for the default.
    pub rate_limit: u32,
    /// Generation of the bucket when the entry was read (low 32 bits are plenty).
    pub generation: u32,
    /// When the entry was filled: seconds since the cache was created, modulo 2^16 (ages
    /// are compared with wrapping arithmetic and never exceed a minute).
    pub filled: u16,
    /// 0xFF for all, else the restricted bits.
    pub permissions: u8,
}

impl CachedKey {
    pub fn permissions(&self) -> Permissions {
        if self.permissions == 0xFF { Permissions::All } else { Permissions::Restricted(self.permissions) }
    }

    pub fn encode_permissions(p: Permissions) -> u8 {
        match p {
            Permissions::All => 0xFF,
            Permissions::Restricted(bits) => bits,
        }
    }
}

/// Positive lookups of API keys, by the first 16 bytes of the key's SHA-256 (a 128-bit
/// prefix of a hash nobody can steer; the full hash was compared by the database lookup).
pub struct KeyCache {
    map: DashMap<[u8; 16], CachedKey, BuildHasherDefault<PrefixHasher>>,
    max_entries: usize,
    epoch: Instant,
    evictions: AtomicU64,
}

fn prefix(hash: &ApiKeyHash) -> [u8; 16] {
    hash.as_bytes()[..16].try_into().expect("sixteen bytes")
}

impl KeyCache {
    pub fn new(max_entries: usize) -> Self {
        Self { map: DashMap::with_hasher(BuildHasherDefault::default()), max_entries, epoch: Instant::now(), evictions: AtomicU64::new(0) }
    }

    fn now(&self) -> u16 {
        (self.epoch.elapsed().as_secs() % 65_536) as u16
    }

    /// The entry, if present, filled under `generation`, young enough and not expired.
    pub fn get(&self, hash: &ApiKeyHash, generation: u64, now_unix: i64) -> Option<CachedKey> {
        let entry = *self.map.get(&prefix(hash))?;
        let fresh = entry.generation == generation as u32 && self.now().wrapping_sub(entry.filled) < MAX_ENTRY_AGE.as_secs() as u16;
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

    /// Fills an entry read under `generation`.
    pub fn insert(&self, hash: &ApiKeyHash, mut entry: CachedKey, generation: u64) {
        if self.map.len() >= self.max_entries {
            // Bounded: drop about half, by one bit of the (random) hash — a different bit
            // each time, or survivors would all share the bit and nothing would go.
            let bit = (self.evictions.fetch_add(1, Ordering::Relaxed) % 128) as usize;
            self.map.retain(|k, _| (k[bit / 8] >> (bit % 8)) & 1 == 0);
        }
        entry.generation = generation as u32;
        entry.filled = self.now();
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

    pub fn clear(&self) {
        self.map.clear();
    }
}

/// Where generations come from: this process (one instance), or Redis (several).
pub struct Generations {
    local: LocalGenerations,
    shared: Option<std::sync::Arc<crate::domain::shared_state::SharedState>>,
    /// Buckets whose shared bump failed; retried until Redis takes them.
    unsent: std::sync::Mutex<std::collections::BTreeSet<u8>>,
}

impl Generations {
    pub fn new(shared: Option<std::sync::Arc<crate::domain::shared_state::SharedState>>) -> Self {
        Self { local: LocalGenerations::default(), shared, unsent: std::sync::Mutex::new(Default::default()) }
    }

    /// Whether generations are shared between instances.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The current generation of `bucket`, or `None` when it cannot be known (Redis down):
    /// then nothing may be served from, or put into, a cache.
    pub async fn current(&self, bucket: u8) -> Option<u64> {
        match &self.shared {
            None => Some(self.local.current(bucket)),
            Some(shared) => shared.generation(bucket).await.ok(),
        }
    }

    /// Bumps `bucket` after a revocation was committed. A failed shared bump is retried
    /// (entries elsewhere also expire after [`MAX_ENTRY_AGE`] whatever happens).
    pub async fn bump(&self, bucket: u8) {
        self.local.bump(bucket);
        if let Some(shared) = &self.shared {
            let pending: Vec<u8> = {
                let mut unsent = self.unsent.lock().expect("lock");
                unsent.insert(bucket);
                unsent.iter().copied().collect()
            };
            for b in pending {
                match shared.bump(b).await {
                    Ok(_) => {
                        self.unsent.lock().expect("lock").remove(&b);
                    }
                    Err(error) => tracing::error!(%error, bucket = b, "revocation generation not shared yet; will retry"),
                }
            }
        }
    }

    /// Retries bumps that did not reach Redis (the maintenance task calls this).
    pub async fn retry_unsent(&self) {
        let pending: Vec<u8> = self.unsent.lock().expect("lock").iter().copied().collect();
        if let (Some(shared), false) = (&self.shared, pending.is_empty()) {
            for b in pending {
                if shared.bump(b).await.is_ok() {
                    self.unsent.lock().expect("lock").remove(&b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_keys::PlainApiKey;

    fn entry() -> CachedKey {
        CachedKey { key_id: 1, user_id: 2, expires_at: 0, rate_limit: 0, generation: 0, filled: 0, permissions: 0xFF }
    }

    #[test]
    fn entries_are_valid_only_for_their_generation() {
        let cache = KeyCache::new(100);
        let key = PlainApiKey::generate().hash();
        cache.insert(&key, entry(), 7);
        assert!(cache.get(&key, 7, 0).is_some());
        assert!(cache.get(&key, 8, 0).is_none(), "a newer generation invalidates");
        assert!(cache.get(&key, 7, 0).is_none(), "and the stale entry is gone");
    }

    #[test]
    fn expired_keys_are_never_served_from_the_cache() {
        let cache = KeyCache::new(100);
        let key = PlainApiKey::generate().hash();
        cache.insert(&key, CachedKey { expires_at: 1_000, ..entry() }, 0);
        assert!(cache.get(&key, 0, 999).is_some());
        assert!(cache.get(&key, 0, 1_000).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = KeyCache::new(1_000);
        for _ in 0..10_000 {
            cache.insert(&PlainApiKey::generate().hash(), entry(), 0);
        }
        assert!(cache.len() <= 1_000, "{}", cache.len());
    }

    #[test]
    fn entries_are_compact() {
        assert_eq!(std::mem::size_of::<([u8; 16], CachedKey)>(), 40);
        let generations = LocalGenerations::default();
        assert_eq!(generations.current(3), 0);
        assert_eq!(generations.bump(3), 1);
        assert_eq!(generations.current(3), 1);
        assert_eq!(generations.current(4), 0);
    }
}
