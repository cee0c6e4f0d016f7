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

use crate::{browser::Browser, helpers::*, idp::TestIdp};

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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_workjet"));
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

struct Cluster {
    a: Instance,
    b: Instance,
    redis: CuttableProxy,
    cookie: String,
    client: reqwest::Client,
    _db: TestDatabase,
    _idp: TestIdp,
}

impl Cluster {
    async fn start() -> Option<Self> {
        let redis_url = redis_url()?;
        let db = TestDatabase::create(Backend::Postgres).await?;
        let redis = CuttableProxy::start(resolve(&redis_url, 6379).await).await;
        let idp = TestIdp::start().await;
        let mut env = idp.settings();
        env.extend([
            ("WJ_DATABASE_URL", db.url.clone()),
            ("WJ_REDIS_URL", format!("redis://127.0.0.1:{}", redis.addr.port())),
            ("WJ_REDIS_PREFIX", format!("test-{}-{}:", std::process::id(), Instant::now().elapsed().as_nanos())),
            ("WJ_AUTH_FAILURES_PER_MINUTE", "100000".into()),
        ]);
        // Both start at once: migrations must serialise (advisory lock).
        let (a, b) = tokio::join!(Instance::start(&env), Instance::start(&env));
        let mut browser = Browser::new();
        assert_eq!(browser.sign_in_at(&a.base, None).await, "/settings/api-keys");
        let cookie = format!("wj_session={}", browser.cookie.clone().expect("cookie"));
        Some(Self { a, b, redis, cookie, client: reqwest::Client::new(), _db: db, _idp: idp })
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
        let response = self
            .client
            .delete(self.a.url(&format!("/v1/keys/{id}")))
            .header(header::COOKIE, &self.cookie)
            .header(header::ORIGIN, &self.a.base)
            .send()
            .await
            .expect("revoke");
        assert_eq!(response.status(), 200);
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
    let stop = Arc::new(AtomicBool::new(false));
    let revoked_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (client, url, key, stop, revoked_at) =
            (cluster.client.clone(), cluster.b.url("/v1/me"), key.clone(), stop.clone(), revoked_at.clone());
        workers.push(tokio::spawn(async move {
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
                let after_revoke = revoked_at.lock().expect("lock").is_some_and(|t| sent >= t);
                if after_revoke && status == 200 {
                    accepted_after += 1;
                }
            }
            (total, accepted_after)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.revoke_on_a(id).await;
    *revoked_at.lock().expect("lock") = Some(Instant::now());
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut total, mut accepted_after) = (0, 0);
    for w in workers {
        let (t, a) = w.await.expect("worker");
        total += t;
        accepted_after += a;
    }
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
    cluster.redis.cut();
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
    assert_eq!(cluster.client.get(cluster.b.url("/readyz")).send().await.expect("readyz").status(), 200, "degraded is still ready");
    cluster.revoke_on_a(id).await;
    assert_eq!(cluster.me(&cluster.b, &key).await, 401, "no stale cache while Redis is down: the database decides");
    cluster.redis.restore();
    let recovered = eventually(Duration::from_secs(15), || async {
        let r: Value = cluster.client.get(cluster.a.url("/readyz")).send().await.expect("readyz").json().await.expect("json");
        r["status"] == "ready" && r["redis"] == "up"
    })
    .await;
    assert!(recovered, "the shared limiter resumes when Redis is back");
    let (_, key) = cluster.create_key(json!({"name": "after outage"})).await;
    assert_eq!(cluster.me(&cluster.b, &key).await, 200);
}
