//! Several instances on one PostgreSQL database and one Redis: sessions and keys work on
//! every instance, revocation is immediate everywhere (also under load), the shared budget
//! holds across instances, and a Redis outage degrades service without stopping it.

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::header;
use serde_json::{Value, json};

use crate::{
    browser::Browser,
    helpers::*,
    idp::{Behavior, TestIdp},
};

/// A `workjet` process.
struct Instance {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Instance {
    async fn start(env: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let dir = tempfile::tempdir().expect("dir");
        let mut cmd = Command::new(crate::helpers::workjet_binary());
        for (key, _) in std::env::vars() {
            if key.starts_with("WJ_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(dir.path())
            .env("WJ_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("WJ_PUBLIC_URL", &base)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn workjet");
        let instance = Self { child, base, _dir: dir };
        let client = reqwest::Client::new();
        let up = eventually(Duration::from_secs(60), || async {
            client.get(format!("{}/healthz", instance.base)).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(up, "instance at {} did not start", instance.base);
        instance
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tests here share one Redis and one of them empties it: one at a time.
static REDIS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    a: Instance,
    b: Instance,
    /// Each instance reaches Redis through its own proxy, to cut one link or both.
    redis_a: CuttableProxy,
    redis_b: CuttableProxy,
    redis_url: String,
    cookie: String,
    client: reqwest::Client,
    _db: TestDatabase,
    idp: TestIdp,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// Two instances with `extra` settings.
    async fn start_with(extra: &[(&str, String)]) -> Option<Self> {
        let redis_url = redis_url()?;
        let db = TestDatabase::create(Backend::Postgres).await?;
        let serial = REDIS.lock().await;
        let target = resolve(&redis_url, 6379).await;
        let (redis_a, redis_b) = (CuttableProxy::start(target).await, CuttableProxy::start(target).await);
        let idp = TestIdp::start().await;
        let mut env = idp.settings();
        env.extend([
            ("WJ_DATABASE_URL", db.url.clone()),
            ("WJ_REDIS_PREFIX", format!("test-{}-{}:", std::process::id(), Instant::now().elapsed().as_nanos())),
            ("WJ_AUTH_FAILURES_PER_MINUTE", "100000".into()),
            // Keys below are given up to 1,000,000 a minute (the default maximum is the default, 600).
            ("WJ_MAX_RATE_LIMIT_PER_MINUTE", "1000000".into()),
        ]);
        env.extend(extra.iter().cloned());
        let env_for = |proxy: &CuttableProxy| {
            let mut env = env.clone();
            env.push(("WJ_REDIS_URL", format!("redis://127.0.0.1:{}", proxy.addr.port())));
            env
        };
        // Both start at once: migrations must serialise (advisory lock).
        let (env_a, env_b) = (env_for(&redis_a), env_for(&redis_b));
        let (a, b) = tokio::join!(Instance::start(&env_a), Instance::start(&env_b));
        let mut browser = Browser::new();
        assert_eq!(browser.sign_in_at(&a.base, None).await, "/settings/api-keys");
        let cookie = format!("wj_session={}", browser.cookie.clone().expect("cookie"));
        Some(Self { a, b, redis_a, redis_b, redis_url, cookie, client: reqwest::Client::new(), _db: db, idp, _serial: serial })
    }

    fn cut_redis(&self) {
        self.redis_a.cut();
        self.redis_b.cut();
    }

    fn restore_redis(&self) {
        self.redis_a.restore();
        self.redis_b.restore();
    }

    /// `DELETE /v1/keys/{id}` on `instance`: the status.
    async fn revoke(&self, instance: &Instance, id: i64) -> u16 {
        self.client
            .delete(instance.url(&format!("/v1/keys/{id}")))
            .header(header::COOKIE, &self.cookie)
            .header(header::ORIGIN, &instance.base)
            .send()
            .await
            .expect("revoke")
            .status()
            .as_u16()
    }

    /// Waits until `instance` sees Redis again (its readiness says so).
    async fn wait_for_redis(&self, instance: &Instance) {
        let up = eventually(Duration::from_secs(20), || async {
            let r: Value = self.client.get(instance.url("/readyz")).send().await.expect("readyz").json().await.expect("json");
            r["redis"] == "up"
        })
        .await;
        assert!(up, "{} did not reconnect to Redis", instance.base);
    }

    async fn create_key(&self, body: Value) -> (i64, String) {
        let response = self
            .client
            .post(self.a.url("/v1/keys"))
            .header(header::COOKIE, &self.cookie)
            .header(header::ORIGIN, &self.a.base)
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.expect("json");
        (created["id"].as_i64().expect("id"), created["key"].as_str().expect("key").to_owned())
    }

    async fn revoke_on_a(&self, id: i64) {
        assert_eq!(self.revoke(&self.a, id).await, 200);
    }

    async fn me(&self, instance: &Instance, key: &str) -> u16 {
        self.client
            .get(instance.url("/v1/me"))
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .send()
            .await
            .expect("me")
            .status()
            .as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs WJ_TEST_POSTGRES_URL and WJ_TEST_REDIS_URL"]
async fn two_instances_share_sessions_keys_revocations_budgets_and_survive_redis_outages() {
    let Some(cluster) = Cluster::start().await else {
        required_env("WJ_TEST_POSTGRES_URL");
        required_env("WJ_TEST_REDIS_URL");
        unreachable!("the cluster starts whenever both are set");
    };

    // A session made on A works on B.
    let me_b = cluster.client.get(cluster.b.url("/v1/me")).header(header::COOKIE, &cluster.cookie).send().await.expect("me");
    assert_eq!(me_b.status(), 200, "a session created on A is valid on B");
    assert_eq!(me_b.json::<Value>().await.expect("json")["auth_method"], "session");

    // Signing out on A is refused by B on the very next request, each time after B had the
    // session in its cache.
    for i in 0..20 {
        let mut browser = Browser::new();
        assert_eq!(browser.sign_in_at(&cluster.a.base, None).await, "/settings/api-keys");
        let cookie = format!("wj_session={}", browser.cookie.clone().expect("cookie"));
        let me = |instance: &Instance| cluster.client.get(instance.url("/v1/me")).header(header::COOKIE, cookie.clone()).send();
        assert_eq!(me(&cluster.b).await.expect("me").status(), 200, "iteration {i}: warm B's cache");
        assert_eq!(me(&cluster.b).await.expect("me").status(), 200, "iteration {i}: served from B's cache");
        let out = browser.post(&cluster.a.url("/auth/logout"), &cluster.a.base, "").await;
        assert!(out.status().is_redirection());
        assert_eq!(me(&cluster.b).await.expect("me").status(), 401, "iteration {i}: B accepted a session signed out on A");
    }
    eprintln!("20 sign-outs on A, each refused by B on the next request");

    // A key made on A works on B.
    let (_, key) = cluster.create_key(json!({"name": "shared"})).await;
    assert_eq!(cluster.me(&cluster.b, &key).await, 200);

    // Revocation on A is refused by B on the very next request, 200 times in a row, each
    // time after B had the key in its cache.
    let started = Instant::now();
    for i in 0..200 {
        let (id, key) = cluster.create_key(json!({"name": format!("revoke-{i}")})).await;
        assert_eq!(cluster.me(&cluster.b, &key).await, 200, "iteration {i}: warm B's cache");
        assert_eq!(cluster.me(&cluster.b, &key).await, 200, "iteration {i}: served from B's cache");
        cluster.revoke_on_a(id).await;
        assert_eq!(cluster.me(&cluster.b, &key).await, 401, "iteration {i}: B accepted a key revoked on A");
    }
    eprintln!("200 revocations on A, each refused by B on the next request ({:?})", started.elapsed());

    // The same while 64 connections hammer the key on B.
    let (id, key) = cluster.create_key(json!({"name": "hammered", "rate_limit_per_minute": 1000000})).await;
    assert_eq!(cluster.me(&cluster.b, &key).await, 200);
    let hammer = Hammer::start(&cluster, &key, &[&cluster.b], 64);
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.revoke_on_a(id).await;
    hammer.revoked();
    let (total, accepted_after) = hammer.stop().await;
    eprintln!("64 connections, {total} requests on B; accepted after the revoke returned: {accepted_after}");
    assert_eq!(accepted_after, 0, "requests accepted on B after the revoke on A returned");

    // A budget of N a minute holds across both instances: 3N requests, exactly N succeed.
    let n = 20u32;
    let (_, key) = cluster.create_key(json!({"name": "budget", "rate_limit_per_minute": n})).await;
    let started = Instant::now();
    let requests = (0..3 * n).map(|i| {
        let target = if i % 2 == 0 { cluster.a.url("/v1/me") } else { cluster.b.url("/v1/me") };
        let (client, key) = (cluster.client.clone(), key.clone());
        async move { client.get(target).header(header::AUTHORIZATION, format!("Bearer {key}")).send().await.expect("me").status().as_u16() }
    });
    let statuses = futures::future::join_all(requests).await;
    let elapsed = started.elapsed();
    let ok = statuses.iter().filter(|s| **s == 200).count() as u32;
    let refilled = (elapsed.as_secs_f64() / (60.0 / f64::from(n))).floor() as u32;
    eprintln!("budget {n}/min across two instances: {ok} of {} succeeded in {elapsed:?} (refill allowance {refilled})", 3 * n);
    assert!(ok >= n && ok <= n + refilled, "{ok} succeeded for a budget of {n}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429));

    // Redis goes away: requests are still served, readiness says degraded; then it returns.
    cluster.cut_redis();
    let (id, key) = cluster.create_key(json!({"name": "during outage"})).await;
    for instance in [&cluster.a, &cluster.b] {
        assert_eq!(cluster.me(instance, &key).await, 200, "served while Redis is down");
    }
    let degraded = eventually(Duration::from_secs(10), || async {
        let r: Value = cluster.client.get(cluster.b.url("/readyz")).send().await.expect("readyz").json().await.expect("json");
        r["status"] == "degraded" && r["redis"] == "down"
    })
    .await;
    assert!(degraded, "readiness reports degraded while Redis is down");
    let text = cluster.client.get(cluster.b.url("/readyz")).send().await.expect("readyz").text().await.expect("body");
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json"),
        json!({"status": "degraded", "database": "up", "redis": "down"}),
        "which dependency, never the error: {text}"
    );
    assert_eq!(cluster.client.get(cluster.b.url("/readyz")).send().await.expect("readyz").status(), 200, "degraded is still ready");
    // A revocation that cannot be announced to every instance is refused and changes nothing.
    assert_eq!(cluster.revoke(&cluster.a, id).await, 503, "a revocation Redis cannot hear of is refused");
    assert_eq!(cluster.me(&cluster.b, &key).await, 200, "and nothing changed");
    cluster.restore_redis();
    cluster.wait_for_redis(&cluster.a).await;
    cluster.revoke_on_a(id).await;
    assert_eq!(cluster.me(&cluster.b, &key).await, 401, "once Redis is back, the revocation holds everywhere at once");
    let recovered = eventually(Duration::from_secs(15), || async {
        let r: Value = cluster.client.get(cluster.a.url("/readyz")).send().await.expect("readyz").json().await.expect("json");
        r["status"] == "ready" && r["redis"] == "up"
    })
    .await;
    assert!(recovered, "the shared limiter resumes when Redis is back");
    let (_, key) = cluster.create_key(json!({"name": "after outage"})).await;
    assert_eq!(cluster.me(&cluster.b, &key).await, 200);
}

/// A session request (`PATCH`, `POST` …) with a JSON body on `instance`: status and body.
async fn session_json(cluster: &Cluster, method: reqwest::Method, instance: &Instance, path: &str, body: Value) -> (u16, Value) {
    let response = cluster
        .client
        .request(method, instance.url(path))
        .header(header::COOKIE, &cluster.cookie)
        .header(header::ORIGIN, &instance.base)
        .json(&body)
        .send()
        .await
        .expect("request");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// `GET path` with `key` on `instance`: status and body.
async fn key_get(cluster: &Cluster, instance: &Instance, path: &str, key: &str) -> (u16, Value) {
    let response = cluster.client.get(instance.url(path)).header(header::AUTHORIZATION, format!("Bearer {key}")).send().await.expect("get");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// A chat completion with `key` on `instance`: the status.
async fn key_chat(cluster: &Cluster, instance: &Instance, key: &str) -> u16 {
    let body = json!({"model": "claude-4-sonnet", "messages": [{"role": "user", "content": "Hello, world!"}]});
    let response = cluster
        .client
        .post(instance.url("/v1/chat/completions"))
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .json(&body)
        .send()
        .await
        .expect("chat");
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs WJ_TEST_POSTGRES_URL and WJ_TEST_REDIS_URL"]
async fn two_instances_share_key_edits_rolls_and_token_budgets_also_without_redis() {
    let fake = crate::upstream::Fake::anthropic().await;
    let providers = [("ANTHROPIC_API_KEY", "sk-ant-cluster-secret".to_owned()), ("ANTHROPIC_BASE_URL", format!("http://{}", fake.addr))];
    let Some(cluster) = Cluster::start_with(&providers).await else {
        required_env("WJ_TEST_POSTGRES_URL");
        required_env("WJ_TEST_REDIS_URL");
        unreachable!("the cluster starts whenever both are set");
    };
    let (a, b) = (&cluster.a, &cluster.b);
    // Each fake completion costs 18 tokens.
    let (id, key) = cluster
        .create_key(
            json!({"name": "guarded", "permissions": ["inference", "keys:read"], "models": ["claude-4-sonnet"], "daily_token_limit": 30}),
        )
        .await;
    let names = |models: &Value| models["data"].as_array().expect("data").iter().map(|m| m["id"].clone()).collect::<Vec<_>>();
    for _ in 0..2 {
        assert_eq!(key_get(&cluster, b, "/v1/keys", &key).await.0, 200, "warm B's cache");
    }
    assert_eq!(names(&key_get(&cluster, b, "/v1/models", &key).await.1), [json!("claude-4-sonnet")]);

    // An edit on A holds on B from the very next request: permissions, then models.
    let (status, _) =
        session_json(&cluster, reqwest::Method::PATCH, a, &format!("/v1/keys/{id}"), json!({"permissions": ["inference"]})).await;
    assert_eq!(status, 200);
    assert_eq!(key_get(&cluster, b, "/v1/keys", &key).await.0, 403, "B still let the narrowed key list keys");
    let (status, _) =
        session_json(&cluster, reqwest::Method::PATCH, a, &format!("/v1/keys/{id}"), json!({"models": ["claude-4-opus"]})).await;
    assert_eq!(status, 200);
    assert_eq!(names(&key_get(&cluster, b, "/v1/models", &key).await.1), [json!("claude-4-opus")], "B served the old allow-list");
    assert_eq!(key_chat(&cluster, b, &key).await, 403);
    let (status, _) =
        session_json(&cluster, reqwest::Method::PATCH, a, &format!("/v1/keys/{id}"), json!({"models": ["claude-4-sonnet"]})).await;
    assert_eq!(status, 200);

    // One budget across both: 18 on A, 36 on B (started under 30), then refused on both.
    assert_eq!(key_chat(&cluster, a, &key).await, 200);
    assert_eq!(key_chat(&cluster, b, &key).await, 200);
    assert_eq!(key_chat(&cluster, a, &key).await, 429, "A did not see B's tokens");
    assert_eq!(key_chat(&cluster, b, &key).await, 429);
    assert_eq!(fake.requests().len(), 2);
    // Without Redis the database still counts: still refused, and a raised budget serves again.
    cluster.cut_redis();
    assert_eq!(key_chat(&cluster, b, &key).await, 429, "Redis down: the budget was forgotten");
    // An edit that cannot be announced to every instance is refused, and changes nothing.
    let (status, error) =
        session_json(&cluster, reqwest::Method::PATCH, a, &format!("/v1/keys/{id}"), json!({"daily_token_limit": 1000})).await;
    assert_eq!(status, 503, "{error}");
    cluster.restore_redis();
    cluster.wait_for_redis(a).await;
    cluster.wait_for_redis(b).await;
    let (status, _) = session_json(&cluster, reqwest::Method::PATCH, a, &format!("/v1/keys/{id}"), json!({"daily_token_limit": 100})).await;
    assert_eq!(status, 200);
    assert_eq!(key_chat(&cluster, b, &key).await, 200, "the raised budget holds on B at once");
    let shown = cluster.client.get(a.url(&format!("/v1/keys/{id}"))).header(header::COOKIE, &cluster.cookie).send().await.expect("get");
    assert_eq!(shown.json::<Value>().await.expect("json")["daily_token_limit"], 100, "the refused edit left no trace");

    // A roll on A with no grace: B refuses the old key on the next request, accepts the new.
    for _ in 0..2 {
        assert_eq!(key_get(&cluster, b, "/v1/models", &key).await.0, 200, "warm B's cache");
    }
    let (status, rolled) =
        session_json(&cluster, reqwest::Method::POST, a, &format!("/v1/keys/{id}/roll"), json!({"expire_old_in_seconds": 0})).await;
    assert_eq!(status, 201, "{rolled}");
    assert_eq!(key_get(&cluster, b, "/v1/models", &key).await.0, 401, "B accepted a key rolled on A without grace");
    let new_key = rolled["key"].as_str().expect("key");
    assert_eq!(names(&key_get(&cluster, b, "/v1/models", new_key).await.1), [json!("claude-4-sonnet")], "the new key keeps the allow-list");
    // The replacement starts with the day's tokens (54 of 100): 72, 90, 108, then refused.
    assert_eq!(key_chat(&cluster, b, new_key).await, 200);
    assert_eq!(key_chat(&cluster, a, new_key).await, 200);
    assert_eq!(key_chat(&cluster, b, new_key).await, 200);
    assert_eq!(key_chat(&cluster, a, new_key).await, 429, "rolling reset the budget");
}

/// Hammers a key on both instances and counts what was accepted after a revocation.
struct Hammer {
    stop: Arc<AtomicBool>,
    revoked_at: Arc<std::sync::Mutex<Option<Instant>>>,
    workers: Vec<tokio::task::JoinHandle<(u64, u64)>>,
}

impl Hammer {
    /// `connections` loops, spread over `targets`.
    fn start(cluster: &Cluster, key: &str, targets: &[&Instance], connections: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let revoked_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let workers = (0..connections)
            .map(|i| {
                let instance = targets[i % targets.len()];
                let (client, url, key, stop, revoked_at) =
                    (cluster.client.clone(), instance.url("/v1/me"), key.to_owned(), stop.clone(), revoked_at.clone());
                tokio::spawn(async move {
                    let (mut total, mut accepted_after) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let status = client
                            .get(&url)
                            .header(header::AUTHORIZATION, format!("Bearer {key}"))
                            .send()
                            .await
                            .map(|r| r.status().as_u16())
                            .unwrap_or(0);
                        total += 1;
                        if status == 200 && revoked_at.lock().expect("lock").is_some_and(|t| sent >= t) {
                            accepted_after += 1;
                        }
                    }
                    (total, accepted_after)
                })
            })
            .collect();
        Self { stop, revoked_at, workers }
    }

    /// The revocation just answered success.
    fn revoked(&self) {
        *self.revoked_at.lock().expect("lock") = Some(Instant::now());
    }

    /// Stops 700 ms later; (requests, accepted after the revocation answered success).
    async fn stop(self) -> (u64, u64) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        self.stop.store(true, Ordering::Relaxed);
        let (mut total, mut accepted_after) = (0, 0);
        for w in self.workers {
            let (t, a) = w.await.expect("worker");
            total += t;
            accepted_after += a;
        }
        (total, accepted_after)
    }
}

impl Cluster {
    /// A key, used twice on each instance so both serve it from their caches.
    async fn cached_key(&self, name: &str) -> (i64, String) {
        let (id, key) = self.create_key(json!({"name": name, "rate_limit_per_minute": 1000000})).await;
        for instance in [&self.a, &self.b] {
            assert_eq!(self.me(instance, &key).await, 200);
            assert_eq!(self.me(instance, &key).await, 200);
        }
        (id, key)
    }

    /// A second person signs in on A and signs out everywhere (which moves every
    /// revocation generation on).
    async fn someone_signs_out_everywhere(&self) {
        self.idp.set(|b| {
            b.sub = "someone-else".into();
            b.email = "someone@example.com".into();
        });
        let mut browser = Browser::new();
        assert_eq!(browser.sign_in_at(&self.a.base, None).await, "/settings/api-keys");
        self.idp.set(|b| {
            b.sub = Behavior::default().sub;
            b.email = Behavior::default().email;
        });
        let out = browser.post(&self.a.url("/api/sign_out_everywhere"), &self.a.base, "").await;
        assert_eq!(out.status(), 200);
    }

    async fn sign_out_everywhere_on(&self, instance: &Instance, cookie: &str) -> (u16, Duration) {
        let started = Instant::now();
        let status = self
            .client
            .post(instance.url("/api/sign_out_everywhere"))
            .header(header::COOKIE, cookie)
            .header(header::ORIGIN, &instance.base)
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .send()
            .await
            .expect("sign out everywhere")
            .status()
            .as_u16();
        (status, started.elapsed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs WJ_TEST_POSTGRES_URL and WJ_TEST_REDIS_URL"]
async fn revocations_hold_when_redis_misbehaves() {
    let Some(cluster) = Cluster::start().await else {
        required_env("WJ_TEST_POSTGRES_URL");
        required_env("WJ_TEST_REDIS_URL");
        unreachable!("the cluster starts whenever both are set");
    };

    // 1. A cannot reach Redis, B can: A's revocation is refused (it could not reach B's
    //    cache) and changes nothing; once A reaches Redis again it holds everywhere at once.
    let (id, key) = cluster.cached_key("cut from A").await;
    let hammer = Hammer::start(&cluster, &key, &[&cluster.a, &cluster.b], 16);
    cluster.redis_a.cut();
    let started = Instant::now();
    let status = cluster.revoke(&cluster.a, id).await;
    let refused_in = started.elapsed();
    assert_eq!(status, 503, "a revocation A cannot announce is refused");
    assert!(refused_in < Duration::from_secs(5), "refused in bounded time ({refused_in:?})");
    assert_eq!(cluster.me(&cluster.b, &key).await, 200, "nothing changed: the key was not revoked");
    assert_eq!(cluster.me(&cluster.a, &key).await, 200);
    cluster.redis_a.restore();
    cluster.wait_for_redis(&cluster.a).await;
    assert_eq!(cluster.revoke(&cluster.a, id).await, 200);
    hammer.revoked();
    let (total, accepted) = hammer.stop().await;
    eprintln!(
        "A cut from Redis: revoke refused in {refused_in:?}; after A reconnected and revoked: {total} requests, {accepted} accepted after success"
    );
    assert_eq!(accepted, 0);
    assert_eq!((cluster.me(&cluster.a, &key).await, cluster.me(&cluster.b, &key).await), (401, 401));

    // 2. Redis loses its data between caching and revoking (FLUSHALL: counters back at zero).
    //    Every generation was moved on first, so a counter back at 0 and bumped again would
    //    read like the cached one — were it not for the epoch.
    cluster.someone_signs_out_everywhere().await;
    let (id, key) = cluster.cached_key("flushed").await;
    let mut redis =
        redis::Client::open(cluster.redis_url.as_str()).expect("redis").get_multiplexed_async_connection().await.expect("connect");
    let _: () = redis::cmd("FLUSHALL").query_async(&mut redis).await.expect("FLUSHALL");
    let hammer = Hammer::start(&cluster, &key, &[&cluster.a, &cluster.b], 16);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cluster.revoke(&cluster.a, id).await, 200);
    hammer.revoked();
    let (total, accepted) = hammer.stop().await;
    eprintln!("Redis flushed between caching and revoking: {total} requests, {accepted} accepted after the revoke answered success");
    assert_eq!(accepted, 0);
    assert_eq!(cluster.me(&cluster.b, &key).await, 401);

    // 3. Redis down for everyone during the revoke, and back after: refused while down
    //    (nothing changed), then immediate everywhere; and down right after a success.
    let (id, key) = cluster.cached_key("redis down").await;
    cluster.cut_redis();
    assert_eq!(cluster.revoke(&cluster.a, id).await, 503);
    assert_eq!((cluster.me(&cluster.a, &key).await, cluster.me(&cluster.b, &key).await), (200, 200), "nothing changed");
    cluster.restore_redis();
    cluster.wait_for_redis(&cluster.a).await;
    cluster.wait_for_redis(&cluster.b).await;
    let hammer = Hammer::start(&cluster, &key, &[&cluster.a, &cluster.b], 16);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cluster.revoke(&cluster.a, id).await, 200);
    hammer.revoked();
    cluster.cut_redis();
    let (total, accepted) = hammer.stop().await;
    eprintln!("Redis down during a revoke, back, revoked, down again: {total} requests, {accepted} accepted after success");
    assert_eq!(accepted, 0);
    assert_eq!(cluster.me(&cluster.b, &key).await, 401, "with Redis gone the database decides");
    // Signing in needs no Redis, even for a browser that still sends a session cookie that no
    // longer exists (replacing it revokes nothing).
    let mut stale = Browser::new();
    assert_eq!(stale.sign_in_at(&cluster.a.base, None).await, "/settings/api-keys");
    let old_cookie = stale.cookie.clone().expect("cookie");
    cluster.restore_redis();
    cluster.wait_for_redis(&cluster.a).await;
    assert!(stale.post(&cluster.a.url("/auth/logout"), &cluster.a.base, "").await.status().is_redirection());
    cluster.cut_redis();
    stale.cookie = Some(old_cookie);
    assert_eq!(stale.sign_in_at(&cluster.a.base, None).await, "/settings/api-keys", "sign-in works while Redis is down");
    cluster.restore_redis();
    cluster.wait_for_redis(&cluster.a).await;
    cluster.wait_for_redis(&cluster.b).await;

    // 4. "Sign out everywhere" while A's Redis swallows every command: answered in bounded
    //    time, and nothing was signed out; then it works.
    let mut browser = Browser::new();
    assert_eq!(browser.sign_in_at(&cluster.a.base, None).await, "/settings/api-keys");
    let cookie = format!("wj_session={}", browser.cookie.clone().expect("cookie"));
    let session_on_b = || cluster.client.get(cluster.b.url("/v1/me")).header(header::COOKIE, cookie.clone()).send();
    assert_eq!(session_on_b().await.expect("me").status(), 200);
    cluster.redis_a.black_hole();
    let (status, took) = cluster.sign_out_everywhere_on(&cluster.a, &cookie).await;
    eprintln!("sign out everywhere with A's Redis black-holed: {status} in {took:?}");
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(8), "bounded: {took:?}");
    assert_eq!(session_on_b().await.expect("me").status(), 200, "nothing was signed out");
    cluster.redis_a.restore();
    cluster.wait_for_redis(&cluster.a).await;
    let (status, _) = cluster.sign_out_everywhere_on(&cluster.a, &cookie).await;
    assert_eq!(status, 200);
    assert_eq!(session_on_b().await.expect("me").status(), 401, "signed out everywhere, B included, at once");
}

/// The marks in Redis, directly: a revocation that never finishes (its instance died after
/// announcing it) keeps its scope uncached everywhere until the mark expires; Redis losing
/// the generations is seen as a change by every instance.
#[tokio::test]
#[ignore = "needs WJ_TEST_POSTGRES_URL and WJ_TEST_REDIS_URL"]
async fn redis_marks_of_unfinished_revocations_and_lost_generations_invalidate_caches() {
    use workjet::domain::{
        auth_cache::Generations,
        shared_state::{Scope, SharedState},
    };
    let url = required_env("WJ_TEST_REDIS_URL");
    let _serial = REDIS.lock().await;
    let prefix = format!("test-marks-{}-{}:", std::process::id(), Instant::now().elapsed().as_nanos());
    let shared = SharedState::connect(&url, &prefix).await.expect("redis");
    let elsewhere = Generations::new(Some(SharedState::connect(&url, &prefix).await.expect("redis")));
    let before = elsewhere.current(7).await.expect("a generation");
    assert_eq!(elsewhere.current(7).await, Some(before), "stable while nothing changes");

    shared.begin_revocation(Scope::Bucket(7), "crashed", Duration::from_millis(1500)).await.expect("begin");
    assert_eq!(elsewhere.current(7).await, None, "no cache for a bucket being revoked");
    assert!(elsewhere.current(8).await.is_some(), "other buckets are unaffected");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let after = elsewhere.current(7).await.expect("the mark expired");
    assert_ne!(after, before, "entries from before the revocation are stale");

    shared.begin_revocation(Scope::All, "everything", Duration::from_secs(30)).await.expect("begin");
    assert_eq!(elsewhere.current(8).await, None, "no cache anywhere while everything is revoked");
    shared.finish_revocation(Scope::All, "everything").await.expect("finish");
    let unmarked = elsewhere.current(7).await.expect("unmarked");
    assert_ne!(unmarked, after);

    let mut redis = redis::Client::open(url.as_str()).expect("redis").get_multiplexed_async_connection().await.expect("connect");
    let _: () = redis::cmd("DEL").arg(format!("{prefix}gens:")).query_async(&mut redis).await.expect("DEL");
    let lost = elsewhere.current(7).await.expect("a new epoch");
    assert_ne!(lost, unmarked, "generations lost by Redis are a change");
}

/// The gate script, directly: the checks of concurrent requests go to Redis in one batch, and
/// each is still its own GCRA step in order — a budget of N is spent by exactly N checks,
/// whatever else is in the batch, and "remaining" counts down one per allowed check.
#[tokio::test]
#[ignore = "needs WJ_TEST_REDIS_URL"]
async fn the_redis_gate_spends_each_batched_check_as_its_own_step() {
    use workjet::domain::{
        rate_limit::{Bucket, ClientNet, Quota},
        shared_state::SharedState,
    };
    let url = required_env("WJ_TEST_REDIS_URL");
    let _serial = REDIS.lock().await;
    let prefix = format!("test-gate-{}-{}:", std::process::id(), Instant::now().elapsed().as_nanos());
    let shared = SharedState::connect(&url, &prefix).await.expect("redis");
    let (hot, other, throttle) = (Bucket::Key(1), Bucket::Key(2), Bucket::AuthFailures(ClientNet::Unknown));
    let (hot_quota, other_quota) = (Quota { per_minute: 30 }, Quota { per_minute: 5 });
    // 45 checks of one key, 10 of another and 5 that only look at a throttle, all at once.
    let checks = (0..60).map(|i| {
        let shared = shared.clone();
        async move {
            match i % 12 {
                0..=8 => (0, shared.gate(Some((hot, hot_quota)), 3, None).await),
                9 | 10 => (1, shared.gate(Some((other, other_quota)), 4, None).await),
                _ => (2, shared.gate(None, 5, Some((throttle, Quota { per_minute: 10 }))).await),
            }
        }
    });
    let answers = futures::future::join_all(checks).await;
    let mut remaining: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let mut denied = [0, 0];
    for (which, answer) in answers {
        let gate = answer.expect("Redis answers");
        assert!(gate.generation.is_some(), "no revocation in progress");
        if which == 2 {
            assert_eq!((gate.throttled, gate.decision), (None, None), "a throttle check spends nothing");
            continue;
        }
        let decision = gate.decision.expect("a rate decision");
        if decision.allowed {
            remaining[which].push(decision.remaining);
        } else {
            denied[which] += 1;
            assert!(decision.retry_after.is_some());
        }
    }
    for (which, quota, asked) in [(0, hot_quota, 45), (1, other_quota, 10)] {
        let mut seen = remaining[which].clone();
        seen.sort_unstable();
        let expected: Vec<u32> = (0..quota.per_minute).collect();
        assert_eq!(seen, expected, "bucket {which}: each allowed check is one step of the budget");
        assert_eq!(denied[which], asked - quota.per_minute as usize, "bucket {which}: the rest are refused");
    }
    // What the batch wrote is what the next batch reads: both budgets are spent.
    let next = shared.gate(Some((hot, hot_quota)), 3, None).await.expect("Redis answers");
    assert!(!next.decision.expect("a decision").allowed);
    let next = shared.gate(Some((other, other_quota)), 4, None).await.expect("Redis answers");
    assert!(!next.decision.expect("a decision").allowed);
    // A bucket nobody spent is full.
    let fresh = shared.gate(Some((Bucket::Key(3), hot_quota)), 3, None).await.expect("Redis answers");
    assert_eq!(fresh.decision.expect("a decision").remaining, hot_quota.per_minute - 1);
}
