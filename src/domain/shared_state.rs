//! State shared by every instance through Redis (`WJ_REDIS_URL`): rate-limit buckets, the
//! failed-authentication throttle and the revocation generations — each request's check is
//! one atomic step of a server-side script, and the checks of concurrent requests share one
//! script call and one round trip ([`SharedState::gate`]). When Redis cannot be reached, callers
//! fall back to per-instance limiting and to the database for every lookup (slower, never
//! stale), and the connection is retried in the background.
//!
//! Revocations are made safe against Redis faults in Redis itself: the generations live in
//! one hash with an *epoch* (so a Redis that lost its data announces it: a new epoch), and a
//! revocation marks its scope before its database commit and unmarks it after, moving the
//! generation on both times. A marked scope is served from no cache anywhere; a mark whose
//! revocation never finished (its instance lost Redis, or died) expires by itself.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{Client, Script, aio::ConnectionManager};
use tokio::sync::RwLock;

use crate::domain::rate_limit::{Bucket, Decision, Quota, gcra};

/// The answer to one request's gate check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// `Some(wait)` when the client's failed-authentication budget is spent.
    pub throttled: Option<Duration>,
    /// The rate-limit decision, when a bucket was given and not throttled.
    pub decision: Option<Decision>,
    /// The revocation generation of the key's bucket, or `None` while a revocation in that
    /// bucket (or of everything) is in progress somewhere: then no cache may be used.
    pub generation: Option<SharedGeneration>,
}

/// A bucket's generation as Redis has it: the epoch of Redis' data (new whenever Redis
/// lost it: a restart without persistence, `FLUSHALL`, eviction) and the counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedGeneration {
    pub epoch: u64,
    pub counter: u64,
}

/// What a revocation covers: the keys and sessions of one bucket, or everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Bucket(u8),
    All,
}

/// Shared by every script: the epoch of the generations hash, created when missing. The
/// epoch and every counter live in one hash, so Redis can only lose them together (and a
/// new epoch then tells every instance that its cache is worthless).
const EPOCH: &str = r#"
local function new_epoch(gens, old)
  local t = redis.call('TIME')
  local e = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if old and e <= old then e = old + 1 end
  redis.call('HSET', gens, 'epoch', string.format('%.0f', e))
  return e
end
local function epoch_of(gens)
  local e = redis.call('HGET', gens, 'epoch')
  if e then return tonumber(e) end
  return new_epoch(gens, nil)
end
"#;

/// The gate checks of several requests, in one atomic script (one round trip for every
/// request that arrived while the previous batch was in flight). The checks come in *groups*
/// of one shape (the same buckets and quotas: the concurrent requests of one key), each group
/// with its number of checks. KEYS: the generations hash, the revoking marker of everything,
/// then for each group its rate bucket, its throttle bucket and its bucket's revoking marker.
/// ARGV, eight for each group: rate interval µs, rate capacity µs, throttle interval µs,
/// throttle capacity µs, spend ("1" spends from the rate bucket), the bucket's field,
/// throttle ("1" checks the throttle bucket), the number of checks. Time comes from Redis
/// itself, so instances with skewed clocks agree. Answers four numbers per group: {code, a,
/// epoch, counter (-1 while a revocation is in progress)}: code -1, throttled, `a` µs to
/// wait; code 2, nothing spent; code 1, spent: `a` = the bucket's theoretical arrival time
/// before the group less now (µs, ≥ 0). The checks of a group run one after another, each
/// one step of the GCRA as if alone; a step refused leaves the bucket as it was, so every
/// later step of the group is refused too: the script moves the bucket on by the steps
/// allowed, `⌊(now + capacity − tat) / interval⌋` capped at the group's size, at once, and
/// the server takes the same steps from `a` with [`gcra`] for each check's answer
/// ([`group_answers`]).
///
/// Each key is read once per batch and each spent bucket written once, at the end, with its
/// last value: nothing else runs while the script does, so the values it holds are Redis' own.
const GATE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local epoch = epoch_of(KEYS[1])
local all_marked = redis.call('EXISTS', KEYS[2]) > 0
local gens, marked, tats, spent = {}, {}, {}, {}
local function generation(field, marker)
  local m = marked[marker]
  if m == nil then
    m = all_marked or redis.call('EXISTS', marker) > 0
    marked[marker] = m
  end
  if m then return -1 end
  local g = gens[field]
  if g == nil then
    g = tonumber(redis.call('HGET', KEYS[1], field) or '0')
    gens[field] = g
  end
  return g
end
local function tat_of(key)
  local v = tats[key]
  if v == nil then
    v = tonumber(redis.call('GET', key) or '0')
    tats[key] = v
  end
  if v < now then return now end
  return v
end
local function group(rate_key, throttle_key, marker, a)
  local gen = generation(ARGV[a + 6], marker)
  if ARGV[a + 7] == '1' then
    local tallow = tat_of(throttle_key) + tonumber(ARGV[a + 3]) - tonumber(ARGV[a + 4])
    if now < tallow then return -1, tallow - now, gen end
  end
  if ARGV[a + 5] ~= '1' then return 2, 0, gen end
  local interval = tonumber(ARGV[a + 1])
  local tat = tat_of(rate_key)
  local allowed = math.floor((now + tonumber(ARGV[a + 2]) - tat) / interval)
  if allowed < 0 then allowed = 0 end
  local count = tonumber(ARGV[a + 8])
  if allowed > count then allowed = count end
  if allowed > 0 then
    tats[rate_key] = tat + allowed * interval
    spent[rate_key] = true
  end
  return 1, tat - now, gen
end
local out = {}
for i = 0, (#KEYS - 2) / 3 - 1 do
  local code, a, gen = group(KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i], 8 * i)
  out[#out + 1] = code
  out[#out + 1] = a
  out[#out + 1] = epoch
  out[#out + 1] = gen
end
for key in pairs(spent) do
  local tat = tats[key]
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return out
"#;

/// The most checks one gate script carries.
const GATE_BATCH: usize = 128;

/// What a gate check looks at; the checks of one shape in a batch are one group in the
/// script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Shape {
    /// The budget to spend from, if any.
    rate: Option<(Bucket, Quota)>,
    /// The failed-authentication throttle to look at, if any.
    throttle: Option<(Bucket, Quota)>,
    /// The generation bucket.
    bucket: u8,
}

/// One request's gate check, waiting for its batch (its keys are named there, off the
/// request's path).
struct GateCheck {
    shape: Shape,
    reply: tokio::sync::oneshot::Sender<Result<Gate, SharedError>>,
}

/// A batch's checks by shape: each shape once with its number of checks, and for each
/// check (in arrival order) its group. Kept between batches (no allocation once grown).
#[derive(Default)]
struct Groups {
    shapes: Vec<(Shape, usize)>,
    of_check: Vec<usize>,
    index: std::collections::HashMap<Shape, usize>,
}

impl Groups {
    fn gather(&mut self, batch: &[GateCheck]) {
        self.shapes.clear();
        self.of_check.clear();
        self.index.clear();
        for check in batch {
            let group = *self.index.entry(check.shape).or_insert_with(|| {
                self.shapes.push((check.shape, 0));
                self.shapes.len() - 1
            });
            self.shapes[group].1 += 1;
            self.of_check.push(group);
        }
    }
}

/// The answers of a group of `count` checks of `shape` from the script's four numbers for
/// it, in the order the checks ran: what each would have been answered had it run alone,
/// one after another — the same GCRA steps ([`gcra`]) from the bucket's time before the
/// group, relative to Redis' clock (the script's `now` is 0 here).
fn group_answers(group: [i64; 4], shape: Shape, count: usize) -> impl Iterator<Item = Gate> {
    let [code, a, epoch, counter] = group;
    let generation = shared_generation(epoch, counter);
    let mut tat = Some(a.max(0) as u64);
    (0..count).map(move |_| match (code, shape.rate) {
        (-1, _) => Gate { throttled: Some(Duration::from_micros(a.max(1) as u64)), decision: None, generation },
        (1, Some((_, quota))) => {
            let (decision, next) = gcra(tat, 0, quota, 1);
            tat = next.or(tat);
            Gate { throttled: None, decision: Some(decision), generation }
        }
        _ => Gate { throttled: None, decision: None, generation },
    })
}

/// KEYS: generations hash, the scope's revoking marker. ARGV: the bucket's field ("" for
/// everything), the revocation's token, the marker's lifetime in ms. Before a revocation is
/// committed: marks the scope (no instance uses or fills a cache for it while marked) and
/// moves its generation on. Answers the epoch.
const BEGIN: &str = r#"
local epoch = epoch_of(KEYS[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
if ARGV[1] == '' then return new_epoch(KEYS[1], epoch) end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return epoch
"#;

/// KEYS and ARGV as for BEGIN (without the lifetime). After the commit: moves the
/// generation on again (entries filled from reads before the commit become stale) and
/// unmarks. Idempotent enough to retry: unmarking twice is harmless, bumping twice too.
const FINISH: &str = r#"
local epoch = epoch_of(KEYS[1])
if ARGV[1] == '' then epoch = new_epoch(KEYS[1], epoch) else redis.call('HINCRBY', KEYS[1], ARGV[1], 1) end
redis.call('SREM', KEYS[2], ARGV[2])
return epoch
"#;

/// KEYS: generations hash, revoking marker of the bucket, of everything. ARGV: the bucket's
/// field. Answers {epoch, counter (-1 while a revocation is in progress)}.
const GENERATION: &str = r#"
local epoch = epoch_of(KEYS[1])
local gen = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then gen = -1 end
return {epoch, gen}
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

/// KEYS: counter. ARGV: value, lifetime s. Sets the counter when it is missing (from the
/// database's count) and answers its value.
const SEED: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2]))
return tonumber(redis.call('GET', KEYS[1]))
"#;

/// KEYS: counter. ARGV: amount. Adds to a counter that exists (a missing one is seeded from
/// the database at its next read): answers the new value, or -1.
const ADD: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return -1
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
    /// The gate checks waiting for the next batch ([`SharedState::gate_batches`]).
    gates: tokio::sync::mpsc::UnboundedSender<GateCheck>,
    spend: Script,
    begin: Script,
    finish: Script,
    generation: Script,
    seed: Script,
    add: Script,
    /// The gate script's fixed keys: the generations hash, the revoking marker of
    /// everything, and the placeholders of a check without a rate or a throttle bucket.
    gate_keys: [String; 4],
    prefix: String,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState").field("healthy", &self.healthy.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl SharedState {
    fn key(&self, kind: &str, name: &str) -> String {
        key_of(&self.prefix, kind, name)
    }

    /// A rate-limit bucket's key (`rl:…` budgets, `af:…` failed authentications).
    fn bucket_key(&self, bucket: Bucket) -> String {
        format!("{}{bucket}", self.prefix)
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
        let (gates, checks) = tokio::sync::mpsc::unbounded_channel();
        let state = Arc::new(Self {
            client,
            connection: RwLock::new(None),
            healthy: AtomicBool::new(false),
            last_error: Mutex::new(Some("not connected yet".into())),
            gate: Script::new(&format!("{EPOCH}{GATE}")),
            gates,
            spend: Script::new(SPEND),
            begin: Script::new(&format!("{EPOCH}{BEGIN}")),
            finish: Script::new(&format!("{EPOCH}{FINISH}")),
            generation: Script::new(&format!("{EPOCH}{GENERATION}")),
            seed: Script::new(SEED),
            add: Script::new(ADD),
            gate_keys: [
                key_of(prefix, "gens", ""),
                key_of(prefix, "revoking", &marker_name(Scope::All)),
                key_of(prefix, "rl", "none"),
                key_of(prefix, "af", "none"),
            ],
            prefix: prefix.to_owned(),
        });
        state.try_connect().await;
        tokio::spawn(Self::gate_batches(Arc::downgrade(&state), checks));
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

    fn generations_key(&self) -> &str {
        &self.gate_keys[0]
    }

    fn marker_key(&self, scope: Scope) -> String {
        self.key("revoking", &marker_name(scope))
    }

    /// One round trip: the throttle (when `throttle` is given), the rate bucket (spent when
    /// `rate` is given) and the generation of `generation_bucket`.
    #[tracing::instrument(level = "debug", name = "redis", skip_all, fields(otel.name = "redis gate", otel.kind = "client", db.system.name = "redis", db.operation.name = "EVALSHA gate"))]
    pub async fn gate(
        &self,
        rate: Option<(Bucket, Quota)>,
        generation_bucket: u8,
        throttle: Option<(Bucket, Quota)>,
    ) -> Result<Gate, SharedError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let check = GateCheck { shape: Shape { rate, throttle, bucket: generation_bucket }, reply };
        self.gates.send(check).map_err(|_| SharedError("the gate batches have stopped".into()))?;
        answer.await.map_err(|_| SharedError("the gate batches have stopped".into()))?
    }

    /// Runs the waiting gate checks in batches, one batch in flight at a time: the checks
    /// that arrive while a batch is out go together in the next, so concurrent requests
    /// share one round trip and one script call, and a lone request waits for nothing but
    /// its own. Each check is still one atomic step in Redis; the checks of one shape (one
    /// key's concurrent requests) are one group, stepped in the order they arrived.
    /// Ends when the state is dropped.
    async fn gate_batches(state: std::sync::Weak<Self>, mut checks: tokio::sync::mpsc::UnboundedReceiver<GateCheck>) {
        let mut batch = Vec::with_capacity(GATE_BATCH);
        let mut groups = Groups::default();
        while checks.recv_many(&mut batch, GATE_BATCH).await > 0 {
            // One turn of the scheduler first: the requests already able to run add their
            // checks to this batch (fewer, larger script calls; a lone request waits for
            // nothing but that turn).
            tokio::task::yield_now().await;
            while batch.len() < GATE_BATCH
                && let Ok(check) = checks.try_recv()
            {
                batch.push(check);
            }
            let Some(state) = state.upgrade() else { return };
            groups.gather(&batch);
            let answers = state.run_gates(&groups.shapes).await;
            match answers {
                Ok(values) => {
                    let mut answers: Vec<_> = groups
                        .shapes
                        .iter()
                        .zip(values.chunks_exact(4))
                        .map(|((shape, count), group)| group_answers([group[0], group[1], group[2], group[3]], *shape, *count))
                        .collect();
                    for (check, group) in batch.drain(..).zip(&groups.of_check) {
                        let answer = answers[*group].next().ok_or_else(|| SharedError("unexpected script answer".into()));
                        // A request that gave up (its client went away) no longer listens.
                        let _ = check.reply.send(answer);
                    }
                }
                Err(e) => {
                    for check in batch.drain(..) {
                        let _ = check.reply.send(Err(SharedError(e.0.clone())));
                    }
                }
            }
        }
    }

    /// One gate script for the groups of a batch: four numbers per group, in order.
    async fn run_gates(&self, groups: &[(Shape, usize)]) -> Result<Vec<i64>, SharedError> {
        let mut c = self.connection().await?;
        let mut invocation = self.gate.prepare_invoke();
        invocation.key(self.generations_key()).key(&self.gate_keys[1]);
        for (shape, _) in groups {
            invocation
                .key(shape.rate.map_or_else(|| self.gate_keys[2].clone(), |(b, _)| self.bucket_key(b)))
                .key(shape.throttle.map_or_else(|| self.gate_keys[3].clone(), |(b, _)| self.bucket_key(b)))
                .key(self.marker_key(Scope::Bucket(shape.bucket)));
        }
        for (shape, count) in groups {
            // A quota not given is never read by the script.
            let quota = shape.rate.map_or(Quota { per_minute: 1 }, |(_, quota)| quota);
            let throttle = shape.throttle.map_or(Quota { per_minute: 1 }, |(_, quota)| quota);
            invocation
                .arg(quota.emission_interval_us())
                .arg(quota.capacity_us())
                .arg(throttle.emission_interval_us())
                .arg(throttle.capacity_us())
                .arg(if shape.rate.is_some() { "1" } else { "0" })
                .arg(u64::from(shape.bucket))
                .arg(if shape.throttle.is_some() { "1" } else { "0" })
                .arg(*count);
        }
        let result: redis::RedisResult<Vec<i64>> = invocation.invoke_async(&mut c).await;
        self.answer(result, 4 * groups.len())
    }

    /// Checks a script's answer and records Redis' health from it.
    fn answer(&self, result: redis::RedisResult<Vec<i64>>, len: usize) -> Result<Vec<i64>, SharedError> {
        let values = result.map_err(|e| describe(&e));
        self.mark(values.as_ref().map(|_| ()).map_err(|e| SharedError(e.0.clone())));
        let values = values?;
        if values.len() != len {
            return Err(SharedError("unexpected script answer".into()));
        }
        Ok(values)
    }

    /// Spends one from a bucket.
    #[tracing::instrument(level = "debug", name = "redis", skip_all, fields(otel.name = "redis spend", otel.kind = "client", db.system.name = "redis", db.operation.name = "EVALSHA spend"))]
    pub async fn spend(&self, bucket: Bucket, quota: Quota) -> Result<Decision, SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<Vec<i64>> =
            self.spend.key(self.bucket_key(bucket)).arg(quota.emission_interval_us()).arg(quota.capacity_us()).invoke_async(&mut c).await;
        let values = self.answer(result, 4)?;
        Ok(decision(quota.per_minute, &values))
    }

    /// The generation of a bucket (`None` while a revocation in it is in progress).
    #[tracing::instrument(level = "debug", name = "redis", skip_all, fields(otel.name = "redis generation", otel.kind = "client", db.system.name = "redis", db.operation.name = "EVALSHA generation"))]
    pub async fn generation(&self, bucket: u8) -> Result<Option<SharedGeneration>, SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<Vec<i64>> = self
            .generation
            .key(self.generations_key())
            .key(self.marker_key(Scope::Bucket(bucket)))
            .key(self.marker_key(Scope::All))
            .arg(bucket.to_string())
            .invoke_async(&mut c)
            .await;
        let values = self.answer(result, 2)?;
        Ok(shared_generation(values[0], values[1]))
    }

    /// Before a revocation is committed: marks `scope` as being revoked for at most
    /// `lifetime` (no instance uses or fills a cache for it meanwhile) and moves its
    /// generation on. `token` names this revocation for [`SharedState::finish_revocation`].
    #[tracing::instrument(level = "debug", name = "redis", skip_all, fields(otel.name = "redis begin", otel.kind = "client", db.system.name = "redis", db.operation.name = "EVALSHA begin"))]
    pub async fn begin_revocation(&self, scope: Scope, token: &str, lifetime: Duration) -> Result<(), SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<i64> = self
            .begin
            .key(self.generations_key())
            .key(self.marker_key(scope))
            .arg(scope_field(scope))
            .arg(token)
            .arg(lifetime.as_millis().max(1) as u64)
            .invoke_async(&mut c)
            .await;
        self.done(result)
    }

    /// After the commit: moves the generation on again and removes this revocation's mark.
    #[tracing::instrument(level = "debug", name = "redis", skip_all, fields(otel.name = "redis finish", otel.kind = "client", db.system.name = "redis", db.operation.name = "EVALSHA finish"))]
    pub async fn finish_revocation(&self, scope: Scope, token: &str) -> Result<(), SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<i64> = self
            .finish
            .key(self.generations_key())
            .key(self.marker_key(scope))
            .arg(scope_field(scope))
            .arg(token)
            .invoke_async(&mut c)
            .await;
        self.done(result)
    }

    /// A counter's value (`None` when Redis does not hold it).
    #[tracing::instrument(level = "debug", name = "redis", skip_all, fields(otel.name = "redis GET", otel.kind = "client", db.system.name = "redis", db.operation.name = "GET"))]
    pub async fn counter(&self, name: &str) -> Result<Option<u64>, SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<Option<i64>> = redis::cmd("GET").arg(self.key("count", name)).query_async(&mut c).await;
        let result = result.map_err(|e| describe(&e));
        self.mark(result.as_ref().map(|_| ()).map_err(|e| SharedError(e.0.clone())));
        Ok(result?.map(|v| v.max(0) as u64))
    }

    /// Sets a missing counter to `value` (kept for `lifetime`) and answers the counter's value.
    #[tracing::instrument(level = "debug", name = "redis", skip_all, fields(otel.name = "redis seed", otel.kind = "client", db.system.name = "redis", db.operation.name = "EVALSHA seed"))]
    pub async fn seed_counter(&self, name: &str, value: u64, lifetime: Duration) -> Result<u64, SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<i64> =
            self.seed.key(self.key("count", name)).arg(value).arg(lifetime.as_secs().max(1)).invoke_async(&mut c).await;
        let result = result.map_err(|e| describe(&e));
        self.mark(result.as_ref().map(|_| ()).map_err(|e| SharedError(e.0.clone())));
        Ok(result?.max(0) as u64)
    }

    /// Adds `amount` to a counter Redis holds; `None` when it holds none (then the next read
    /// seeds it from the database).
    #[tracing::instrument(level = "debug", name = "redis", skip_all, fields(otel.name = "redis add", otel.kind = "client", db.system.name = "redis", db.operation.name = "EVALSHA add"))]
    pub async fn add_to_counter(&self, name: &str, amount: u64) -> Result<Option<u64>, SharedError> {
        let mut c = self.connection().await?;
        let result: redis::RedisResult<i64> = self.add.key(self.key("count", name)).arg(amount).invoke_async(&mut c).await;
        let result = result.map_err(|e| describe(&e));
        self.mark(result.as_ref().map(|_| ()).map_err(|e| SharedError(e.0.clone())));
        let value = result?;
        Ok((value >= 0).then_some(value as u64))
    }

    /// Records Redis' health from a script whose answer only says it ran.
    fn done(&self, result: redis::RedisResult<i64>) -> Result<(), SharedError> {
        let result = result.map(|_| ()).map_err(|e| describe(&e));
        self.mark(result.as_ref().map(|_| ()).map_err(|e| SharedError(e.0.clone())));
        result
    }
}

/// A key of this deployment's Redis (`prefix` first, so deployments can share one Redis).
fn key_of(prefix: &str, kind: &str, name: &str) -> String {
    format!("{prefix}{kind}:{name}")
}

/// The name of a scope's revoking marker.
fn marker_name(scope: Scope) -> String {
    match scope {
        Scope::Bucket(bucket) => bucket.to_string(),
        Scope::All => "all".into(),
    }
}

fn scope_field(scope: Scope) -> String {
    match scope {
        Scope::Bucket(bucket) => bucket.to_string(),
        Scope::All => String::new(),
    }
}

fn shared_generation(epoch: i64, counter: i64) -> Option<SharedGeneration> {
    (counter >= 0).then(|| SharedGeneration { epoch: epoch.max(0) as u64, counter: counter as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the script does for a group of `count` checks: the bucket's time before it less
    /// now, and the new time it stores (Lua numbers are doubles).
    fn script_group(stored: u64, now: u64, quota: Quota, count: u64) -> (u64, u64) {
        let (interval, capacity) = (quota.emission_interval_us(), quota.capacity_us());
        let tat = stored.max(now);
        let allowed = ((now + capacity) as f64 - tat as f64) / interval as f64;
        let allowed = allowed.floor().clamp(0.0, count as f64) as u64;
        (tat - now, tat + allowed * interval)
    }

    #[test]
    fn a_groups_answers_are_its_checks_run_one_after_another() {
        let now = 1_764_500_000_000_000_u64;
        for per_minute in [1_u32, 2, 7, 60, 1_000, 60_000_000] {
            let quota = Quota { per_minute };
            let (interval, capacity) = (quota.emission_interval_us(), quota.capacity_us());
            let shape = Shape { rate: Some((Bucket::Key(1), quota)), throttle: None, bucket: 3 };
            for stored in [0, now - 1, now, now + 1, now + interval / 2, now + capacity - interval, now + capacity, now + 3 * capacity] {
                for count in [1_usize, 2, 5, 64, 128] {
                    let (a, stored_after) = script_group(stored, now, quota, count as u64);
                    let grouped: Vec<Gate> = group_answers([1, a as i64, 9, 4], shape, count).collect();
                    // Each check alone, one after another, on the real clock.
                    let mut bucket = (stored > 0).then_some(stored);
                    for (step, gate) in grouped.iter().enumerate() {
                        let (alone, next) = gcra(bucket, now, quota, 1);
                        bucket = next.or(bucket);
                        assert_eq!(gate.decision, Some(alone), "{per_minute}/min, stored {stored}, step {step} of {count}");
                        assert_eq!(gate.generation, Some(SharedGeneration { epoch: 9, counter: 4 }));
                        assert_eq!(gate.throttled, None);
                    }
                    assert_eq!(bucket.unwrap_or(0).max(now), stored_after.max(now), "the script stores where the steps end");
                }
            }
        }
    }

    #[test]
    fn throttled_and_unspent_groups_answer_every_check_alike() {
        let quota = Quota { per_minute: 10 };
        let throttle =
            Shape { rate: None, throttle: Some((Bucket::AuthFailures(crate::domain::rate_limit::ClientNet::Unknown), quota)), bucket: 0 };
        let throttled: Vec<_> = group_answers([-1, 700, 3, -1], throttle, 3).collect();
        assert_eq!(throttled, vec![Gate { throttled: Some(Duration::from_micros(700)), decision: None, generation: None }; 3]);
        let unspent: Vec<_> = group_answers([2, 0, 3, 8], throttle, 2).collect();
        let generation = Some(SharedGeneration { epoch: 3, counter: 8 });
        assert_eq!(unspent, vec![Gate { throttled: None, decision: None, generation }; 2]);
    }

    #[test]
    fn a_batch_is_grouped_by_shape_in_arrival_order() {
        let quota = Quota { per_minute: 5 };
        let shape = |key: i64, bucket: u8| Shape { rate: Some((Bucket::Key(key), quota)), throttle: None, bucket };
        let batch: Vec<GateCheck> = [shape(1, 0), shape(2, 0), shape(1, 0), shape(1, 1), shape(2, 0)]
            .into_iter()
            .map(|shape| GateCheck { shape, reply: tokio::sync::oneshot::channel().0 })
            .collect();
        let mut groups = Groups::default();
        groups.gather(&batch);
        assert_eq!(groups.shapes, vec![(shape(1, 0), 2), (shape(2, 0), 2), (shape(1, 1), 1)]);
        assert_eq!(groups.of_check, vec![0, 1, 0, 2, 1]);
        groups.gather(&batch[..1]);
        assert_eq!((groups.shapes.len(), groups.of_check.len()), (1, 1), "a new batch starts afresh");
    }
}
