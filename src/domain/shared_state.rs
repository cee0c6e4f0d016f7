//! State shared by every instance through Redis (`WJ_REDIS_URL`): rate-limit buckets, the
//! failed-authentication throttle and the revocation generations — each request's check is
//! one atomic server-side script, one round trip. When Redis cannot be reached, callers
//! fall back to per-instance limiting and to the database for every lookup (slower, never
//! stale), and the connection is retried in the background.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{AsyncCommands, Client, Script, aio::ConnectionManager};
use tokio::sync::RwLock;

use crate::domain::rate_limit::{Decision, Quota};

/// The answer to one request's gate check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// `Some(wait)` when the client's failed-authentication budget is spent.
    pub throttled: Option<Duration>,
    /// The rate-limit decision, when a bucket was given and not throttled.
    pub decision: Option<Decision>,
    /// The revocation generation of the key's bucket.
    pub generation: u64,
}

/// KEYS: rate bucket, generation, throttle bucket. ARGV: rate interval µs, rate capacity
/// µs, throttle interval µs, throttle capacity µs, spend ("1" spends from the rate bucket).
/// Time comes from Redis itself, so instances with skewed clocks agree.
const GATE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local gen = tonumber(redis.call('GET', KEYS[2]) or '0')
local ttat = tonumber(redis.call('GET', KEYS[3]) or '0')
if ttat < now then ttat = now end
local tallow = ttat + tonumber(ARGV[3]) - tonumber(ARGV[4])
if now < tallow then return {-1, 0, 0, tallow - now, gen} end
if ARGV[5] ~= '1' then return {2, 0, 0, 0, gen} end
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - capacity
if now < allow_at then return {0, 0, tat - now, allow_at - now, gen} end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, math.floor((capacity - (new_tat - now)) / interval), new_tat - now, 0, gen}
"#;

/// KEYS: bucket. ARGV: interval µs, capacity µs. Spends one (GCRA), like the rate bucket.
const SPEND: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - capacity
if now < allow_at then return {0, 0, tat - now, allow_at - now} end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, math.floor((capacity - (new_tat - now)) / interval), new_tat - now, 0}
"#;

/// A Redis failure, described without the URL (it may carry a password).
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct SharedError(pub String);

fn describe(e: &redis::RedisError) -> SharedError {
    SharedError(format!("{:?}: {}", e.kind(), e.detail().unwrap_or("no detail")))
}

/// The connection to Redis and the scripts.
pub struct SharedState {
    client: Client,
    connection: RwLock<Option<ConnectionManager>>,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    gate: Script,
    spend: Script,
    prefix: String,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState").field("healthy", &self.healthy.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl SharedState {
    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.prefix)
    }
}

fn decision(limit: u32, values: &[i64]) -> Decision {
    let allowed = values[0] == 1;
    Decision {
        allowed,
        limit,
        remaining: values[1].clamp(0, i64::from(u32::MAX)) as u32,
        reset_after: Duration::from_micros(values[2].max(0) as u64),
        retry_after: (!allowed).then(|| Duration::from_micros(values[3].max(1) as u64)),
    }
}

impl SharedState {
    /// Connects (in the background if Redis is not there yet) and keeps the connection up.
    pub async fn connect(url: &str, prefix: &str) -> Result<Arc<Self>, SharedError> {
        let client = Client::open(url).map_err(|e| describe(&e))?;
        let state = Arc::new(Self {
            client,
            connection: RwLock::new(None),
            healthy: AtomicBool::new(false),
            last_error: Mutex::new(Some("not connected yet".into())),
            gate: Script::new(GATE),
            spend: Script::new(SPEND),
            prefix: prefix.to_owned(),
        });
        state.try_connect().await;
        let watcher = Arc::downgrade(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(state) = watcher.upgrade() else { return };
                state.check().await;
            }
        });
        Ok(state)
    }

    async fn try_connect(&self) {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        match tokio::time::timeout(Duration::from_secs(2), ConnectionManager::new_with_config(self.client.clone(), config)).await {
            Ok(Ok(manager)) => {
                *self.connection.write().await = Some(manager);
                self.mark(Ok(()));
                tracing::info!("connected to Redis");
            }
            Ok(Err(e)) => self.mark(Err(describe(&e))),
            Err(_) => self.mark(Err(SharedError("connection timed out".into()))),
        }
    }

    /// Pings (or reconnects) to keep the health status current without traffic.
    async fn check(&self) {
        let connection = self.connection.read().await.clone();
        match connection {
            None => self.try_connect().await,
            Some(mut c) => {
                let result: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
                self.mark(result.map(|_| ()).map_err(|e| describe(&e)));
            }
        }
    }

    fn mark(&self, result: Result<(), SharedError>) {
        match result {
            Ok(()) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    *self.last_error.lock().expect("lock") = None;
                }
            }
            Err(e) => {
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "Redis is unreachable: limiting per instance and reading the database for every lookup");
                }
                *self.last_error.lock().expect("lock") = Some(e.0);
            }
        }
    }

    /// `None` when healthy, else why not.
    pub fn problem(&self) -> Option<String> {
        if self.healthy.load(Ordering::Relaxed) {
            None
        } else {
            Some(self.last_error.lock().expect("lock").clone().unwrap_or_else(|| "unreachable".into()))
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, SharedError> {
        self.connection.read().await.clone().ok_or_else(|| SharedError("not connected".into()))
    }

    /// One round trip: the throttle, the rate bucket (spent when `rate` is given) and the
    /// generation of `generation_bucket`.
    pub async fn gate(
        &self,
        rate: Option<(&str, Quota)>,
        generation_bucket: u8,
        throttle: &str,
        throttle_quota: Quota,
    ) -> Result<Gate, SharedError> {
        let mut c = self.connection().await?;
        let (rate_key, quota) = rate.unwrap_or(("none", Quota { per_minute: 1 }));
        let result: redis::RedisResult<Vec<i64>> = self
            .gate
            .key(self.key("rl", rate_key))
            .key(self.key("gen", &generation_bucket.to_string()))
            .key(self.key("af", throttle))
            .arg(quota.emission_interval_us())
            .arg(quota.capacity_us())
            .arg(throttle_quota.emission_interval_us())
            .arg(throttle_quota.capacity_us())
            .arg(if rate.is_some() { "1" } else { "0" })
            .invoke_async(&mut c)
            .await;
        let values = result.map_err(|e| describe(&e));
        self.mark(values.as_ref().map(|_| ()).map_err(|e| SharedError(e.0.clone())));
        let values = values?;
        if values.len() != 5 {
            return Err(SharedError("unexpected script answer".into()));
        }
        let generation = values[4].max(0) as u64;
        Ok(match values[0] {
            -1 => Gate { throttled: Some(Duration::from_micros(values[3].max(1) as u64)), decision: None, generation },
            2 => Gate { throttled: None, decision: None, generation },
            _ => Gate { throttled: None, decision: Some(decision(quota.per_minute, &values)), generation },
        })
    }

    /// Spends one from a bucket (`rl` budgets, `af` failed authentications).
    pub async fn spend(&self, kind: &str, bucket: &str, quota: Quota) -> Result<Decision, SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<Vec<i64>> =
            self.spend.key(self.key(kind, bucket)).arg(quota.emission_interval_us()).arg(quota.capacity_us()).invoke_async(&mut c).await;
        let values = result.map_err(|e| describe(&e));
        self.mark(values.as_ref().map(|_| ()).map_err(|e| SharedError(e.0.clone())));
        let values = values?;
        if values.len() != 4 {
            return Err(SharedError("unexpected script answer".into()));
        }
        Ok(decision(quota.per_minute, &values))
    }

    /// The generation of a bucket.
    pub async fn generation(&self, bucket: u8) -> Result<u64, SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<Option<u64>> = c.get(self.key("gen", &bucket.to_string())).await;
        self.mark(result.as_ref().map(|_| ()).map_err(describe));
        result.map(|g| g.unwrap_or(0)).map_err(|e| describe(&e))
    }

    /// Bumps a bucket's generation (after a revocation is committed).
    pub async fn bump(&self, bucket: u8) -> Result<u64, SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<u64> = c.incr(self.key("gen", &bucket.to_string()), 1).await;
        self.mark(result.as_ref().map(|_| ()).map_err(describe));
        result.map_err(|e| describe(&e))
    }
}
