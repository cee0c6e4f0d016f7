//! Workjet's benchmarks: `scripts/bench` (or `cargo bench --features ssr --bench load`).
//! Starts the release binary on loopback, measures each figure against a baseline taken in
//! the same run (medians of several runs, with the spread), and writes `BENCHMARKS.md` and
//! `benchmarks.svg`. Set `WJ_BENCH_POSTGRES_URL` / `WJ_BENCH_REDIS_URL` for the PostgreSQL
//! and two-instance figures, `WJ_BENCH_QUICK=1` for a short smoke run.

mod client;
mod fake;
mod metrics_cost;
mod nginx;
mod report;
mod seed;
mod streams;
mod wrk;

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode, header};
use report::{Figure, Report, Row};

/// Run lengths.
#[derive(Clone, Copy)]
pub struct Plan {
    pub warmup: Duration,
    pub duration: Duration,
    pub repeats: usize,
    pub sizes: [usize; 3],
    pub portal_ops: usize,
    pub idle_connections: usize,
}

impl Plan {
    fn from_env() -> Self {
        if std::env::var("WJ_BENCH_QUICK").is_ok_and(|v| v == "1") {
            Self {
                warmup: Duration::from_millis(200),
                duration: Duration::from_millis(700),
                repeats: 1,
                sizes: [1_000, 10_000, 20_000],
                portal_ops: 20,
                idle_connections: 500,
            }
        } else {
            Self {
                warmup: Duration::from_millis(500),
                duration: Duration::from_secs(3),
                repeats: 3,
                sizes: [1_000, 100_000, 1_000_000],
                portal_ops: 200,
                idle_connections: 10_000,
            }
        }
    }
}

/// A `workjet` process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(env: &[(&str, String)]) -> Self {
        Self::start_binary(std::path::Path::new(env!("CARGO_BIN_EXE_workjet")), env).await
    }

    /// A server from another build of `workjet` (`WJ_BENCH_BASELINE_BINARY`).
    pub async fn start_binary(binary: &std::path::Path, env: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let base = format!("http://{addr}");
        let dir = tempfile::tempdir().expect("dir");
        let mut cmd = Command::new(binary);
        cmd.current_dir(dir.path())
            .env("WJ_LISTEN_ADDR", addr.to_string())
            .env("WJ_PUBLIC_URL", &base)
            .env("RUST_LOG", "error")
            .stdout(server_log())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn workjet");
        let server = Self { child, addr, base, _dir: dir };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if client.get(format!("{}/healthz", server.base)).send().await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("workjet did not start");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

/// Where a server's log goes: appended to the file `WJ_BENCH_SERVER_LOG` names (its errors:
/// the servers run with `RUST_LOG=error`), or nowhere.
fn server_log() -> Stdio {
    let Some(path) = std::env::var_os("WJ_BENCH_SERVER_LOG") else { return Stdio::null() };
    match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        Ok(file) => Stdio::from(file),
        Err(error) => {
            eprintln!("WJ_BENCH_SERVER_LOG {}: {error}; the server's log is dropped", path.display());
            Stdio::null()
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn get(path: &str, key: Option<&str>) -> Request<Full<Bytes>> {
    let mut r = Request::builder().method(Method::GET).uri(path).header(header::HOST, "127.0.0.1");
    if let Some(k) = key {
        r = r.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    r.body(Full::new(Bytes::new())).expect("request")
}

fn chat(model: &str, stream: bool, key: Option<&str>) -> Request<Full<Bytes>> {
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"Hello, world!"}}],"stream":{stream}}}"#);
    let mut r = Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/completions")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        r = r.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    r.body(Full::new(Bytes::from(body))).expect("request")
}

/// Median of repeated runs, with the spread of throughputs.
async fn measure(plan: &Plan, label: &str, addr: SocketAddr, concurrency: usize, make: client::MakeRequest, expect: StatusCode) -> Row {
    measure_counted(plan, label, addr, concurrency, make, expect).await.0
}

/// [`measure`], and every request answered over its runs, warm-ups included (the divisor of a
/// CPU time taken over those runs).
async fn measure_counted(
    plan: &Plan,
    label: &str,
    addr: SocketAddr,
    concurrency: usize,
    make: client::MakeRequest,
    expect: StatusCode,
) -> (Row, u64) {
    let mut samples = Vec::new();
    for _ in 0..plan.repeats {
        samples.push(client::run(addr, concurrency, plan.warmup, plan.duration, make.clone(), expect).await);
    }
    samples.sort_by(|a, b| a.throughput().total_cmp(&b.throughput()));
    let median = samples[samples.len() / 2].clone();
    let row = Row {
        label: label.to_owned(),
        concurrency,
        throughput: median.throughput(),
        min: samples.first().map(client::Sample::throughput).unwrap_or_default(),
        max: samples.last().map(client::Sample::throughput).unwrap_or_default(),
        p50_ms: median.percentile_ms(0.5),
        p99_ms: median.percentile_ms(0.99),
        unexpected: samples.iter().map(|s| s.unexpected).sum(),
    };
    eprintln!(
        "  {:<44} c={:<3} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  unexpected {}",
        row.label, concurrency, row.throughput, row.p50_ms, row.p99_ms, row.unexpected
    );
    let answered = samples.iter().map(|s| s.all_requests).sum();
    (row, answered)
}

/// Signs in through the development identity provider; returns the session cookie.
async fn sign_in(base: &str, email: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie_of = |r: &reqwest::Response, name: &str| {
        let prefix = format!("{name}=");
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(prefix.as_str()).map(|v| v.split(';').next().unwrap_or_default().to_owned()))
    };
    let start = client.get(format!("{base}/auth/google")).send().await.expect("start");
    // The sign-in in progress travels in the sealed `wj_signin` cookie, back to the callback.
    let signin = cookie_of(&start, "wj_signin").expect("sign-in cookie");
    let authorize = start.headers()["location"].to_str().expect("ascii").to_owned();
    let params: Vec<(String, String)> = url::Url::parse(&authorize).expect("url").query_pairs().into_owned().collect();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        form.append_pair(k, v);
    }
    form.append_pair("email", email).append_pair("name", "Bench").append_pair("email_verified", "true").append_pair("action", "approve");
    let approved = client
        .post(format!("{base}/_dev/idp/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", base)
        .body(form.finish())
        .send()
        .await
        .expect("approve");
    let callback = approved.headers()["location"].to_str().expect("ascii").to_owned();
    let done = client.get(callback).header("cookie", format!("wj_signin={signin}")).send().await.expect("callback");
    format!("wj_session={}", cookie_of(&done, "wj_session").expect("session cookie"))
}

/// Creates a key through the API with the session cookie.
async fn create_key(base: &str, cookie: &str, rate_limit: u32) -> (i64, String) {
    create_key_with(base, cookie, serde_json::json!({"name": "bench", "rate_limit_per_minute": rate_limit})).await
}

/// Creates a key with `body` through the API with the session cookie.
async fn create_key_with(base: &str, cookie: &str, body: serde_json::Value) -> (i64, String) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/keys"))
        .header("cookie", cookie)
        .header("origin", base)
        .json(&body)
        .send()
        .await
        .expect("create key");
    assert_eq!(response.status(), 201, "create key");
    let v: serde_json::Value = response.json().await.expect("json");
    (v["id"].as_i64().expect("id"), v["key"].as_str().expect("key").to_owned())
}

/// `bench-model` and `bench-slow` have one provider each; `bench-failover` is served by a
/// provider that refuses connections (nothing listens on its port), then by `fast`. The
/// cool-down is off, so every `bench-failover` request pays for the refused connection: the
/// worst case of failover (with the default cool-down it is paid once per 10 s).
fn workjet_toml(dir: &std::path::Path, fast: SocketAddr, slow: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("workjet.toml");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    std::fs::write(
        &path,
        format!(
            "[upstream]\ncooldown_ms = 0\n\n\
             [[providers]]\nname = \"dead\"\nkind = \"openai\"\nbase_url = \"http://{dead}/v1\"\nmodels = [\"bench-failover\"]\n\n\
             [[providers]]\nname = \"fast\"\nkind = \"openai\"\nbase_url = \"http://{fast}/v1\"\nmodels = [\"bench-model\", \"bench-failover\"]\n\n\
             [[providers]]\nname = \"slow\"\nkind = \"openai\"\nbase_url = \"http://{slow}/v1\"\nmodels = [\"bench-slow\"]\n"
        ),
    )
    .expect("write workjet.toml");
    path
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if streams::is_fake_process() {
        return streams::fake_main().await;
    }
    let plan = Plan::from_env();
    let _ = rlimit::increase_nofile_limit(1 << 16);
    let mut report = Report::new(std::env::args().skip(1).filter(|a| a != "--bench").collect::<Vec<_>>().join(" "));
    let fast = fake::start(fake::StreamShape { chunks: 10, gap: Duration::ZERO });
    let slow = fake::start(fake::StreamShape { chunks: 10, gap: Duration::from_millis(20) });
    let dir = tempfile::tempdir().expect("dir");
    let config = workjet_toml(dir.path(), fast, slow);
    let sqlite = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let common = |db: &str| -> Vec<(&'static str, String)> {
        vec![
            ("WJ_DATABASE_URL", db.to_owned()),
            ("WJ_CONFIG", config.display().to_string()),
            ("WJ_RATE_LIMIT_PER_MINUTE", "60000000".into()),
            ("WJ_AUTH_FAILURES_PER_MINUTE", "60000000".into()),
        ]
    };

    // 1 + 3 + 4 + 6 on SQLite.
    eprintln!("== SQLite server");
    let server = Server::start(&common(&sqlite)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = server.rss_kib();
    let cookie = sign_in(&server.base, "bench@example.com").await;
    let (_, hot) = create_key(&server.base, &cookie, 60_000_000).await;
    // `WJ_BENCH_ONLY=nginx|streams`: section 4c or 4d alone, into `bench-<section>.md`.
    if let Some(section) = std::env::var("WJ_BENCH_ONLY").ok().filter(|s| s == "nginx" || s == "streams") {
        if section == "nginx" {
            nginx::section(&plan, &mut report, fast, &server, &hot).await;
        } else {
            drop(server);
            streams::section_into(&mut report).await;
        }
        report.write(&format!("bench-{section}.md"), &format!("bench-{section}.svg"));
        eprintln!("wrote bench-{section}.md");
        return;
    }
    let db = sea_orm::Database::connect(&sqlite).await.expect("bench db");
    let seed_user = seed::seed_user(&db).await;
    let mut pool = seed::seed_keys(&db, seed_user.id, plan.sizes[0], plan.sizes[0].min(1_000)).await;

    // `WJ_BENCH_ONLY=auth|guardrails|metrics|redis` (redis with WJ_BENCH_REDIS_URL): that section of the cached path alone, written to
    // `bench-<section>.md` (BENCHMARKS.md is left as it is).
    let only = std::env::var("WJ_BENCH_ONLY").ok().filter(|v| !v.is_empty());
    let wants = |section: &str| only.as_deref().is_none_or(|o| o == section);

    eprintln!("-- 1. authentication overhead");
    let mut auth = Vec::new();
    let mut wrk_rows = Err(String::new());
    if wants("auth") {
        // A server of its own whose store holds plan.sizes[2] keys (1,000,000 in a full run),
        // so that the hot key and the random keys are found among as many as the issue asks.
        let stored = plan.sizes[2];
        let auth_db = format!("sqlite://{}/auth.db?mode=rwc", dir.path().display());
        let auth_server = Server::start(&common(&auth_db)).await;
        let auth_cookie = sign_in(&auth_server.base, "bench-auth@example.com").await;
        let (_, hot) = create_key(&auth_server.base, &auth_cookie, 60_000_000).await;
        let auth_store = sea_orm::Database::connect(&auth_db).await.expect("auth db");
        let owner = seed::seed_user(&auth_store).await;
        eprintln!("  seeding {stored} keys");
        let keys = Arc::new(seed::seed_keys(&auth_store, owner.id, stored - 1, 1_000).await);
        drop(auth_store);
        let random_label = format!("GET /v1/models, random keys (1,000 of {stored} stored)");
        for c in [1, 64] {
            let base = measure(
                &plan,
                "GET /healthz (no auth, baseline)",
                auth_server.addr,
                c,
                Arc::new(|_, _| get("/healthz", None)),
                StatusCode::OK,
            )
            .await;
            let hot_key = hot.clone();
            let hot_row = measure(
                &plan,
                "GET /v1/models, hot key",
                auth_server.addr,
                c,
                Arc::new(move |_, _| get("/v1/models", Some(&hot_key))),
                StatusCode::OK,
            )
            .await;
            let keys = keys.clone();
            let random = measure(
                &plan,
                &random_label,
                auth_server.addr,
                c,
                Arc::new(move |w, n| get("/v1/models", Some(&keys[((w as u64 * 7919 + n * 104_729) % keys.len() as u64) as usize]))),
                StatusCode::OK,
            )
            .await;
            auth.push((base, hot_row, random));
        }
        wrk_rows = wrk::cross_check(auth_server.addr, &hot, dir.path(), plan.repeats == 1).await;
        if let Err(why) = &wrk_rows {
            eprintln!("  wrk cross-check: {why}");
        }
    }
    if wants("auth") {
        report.auth_overhead(&auth, &wrk_rows);
    }

    eprintln!("-- 1b. guardrails on the cached path");
    let (_, guarded) = create_key_with(
        &server.base,
        &cookie,
        serde_json::json!({"name": "guarded", "rate_limit_per_minute": 60_000_000, "models": ["bench-model", "bench-slow"], "daily_token_limit": 1_000_000_000u64}),
    )
    .await;
    let mut guardrails = Vec::new();
    for c in [1, 64].into_iter().filter(|_| wants("guardrails")) {
        let plain_key = hot.clone();
        let plain = measure(
            &plan,
            "GET /v1/models, key without guardrails",
            server.addr,
            c,
            Arc::new(move |_, _| get("/v1/models", Some(&plain_key))),
            StatusCode::OK,
        )
        .await;
        let guarded_key = guarded.clone();
        let with = measure(
            &plan,
            "GET /v1/models, key with a model allow-list and a daily token budget",
            server.addr,
            c,
            Arc::new(move |_, _| get("/v1/models", Some(&guarded_key))),
            StatusCode::OK,
        )
        .await;
        guardrails.push((plain, with));
    }
    if wants("guardrails") {
        report.guardrails(&guardrails);
    }

    eprintln!("-- 1c. metrics on the cached path");
    if wants("metrics") {
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut metered_env = common(&sqlite);
        metered_env.push(("WJ_METRICS_ADDR", format!("127.0.0.1:{metrics_port}")));
        let metered = Server::start(&metered_env).await;
        // The A/A control: a third server exactly like the first (no metrics), to size what
        // merely being another process costs or gains.
        let control = Server::start(&common(&sqlite)).await;
        let arms = [
            metrics_cost::Arm {
                label: "GET /v1/models, hot key, metrics off",
                addr: server.addr,
                pid: server.pid(),
                _server: &server,
                redis: None,
            },
            metrics_cost::Arm {
                label: "GET /v1/models, hot key, WJ_METRICS_ADDR set",
                addr: metered.addr,
                pid: metered.pid(),
                _server: &metered,
                redis: None,
            },
            metrics_cost::Arm {
                label: "GET /v1/models, hot key, metrics off, another server (A/A)",
                addr: control.addr,
                pid: control.pid(),
                _server: &control,
                redis: None,
            },
        ];
        let rounds = if plan.repeats > 1 { 5 } else { 1 };
        let mut comparisons = Vec::new();
        for c in [1, 64] {
            let key = hot.clone();
            comparisons.push(metrics_cost::compare(&plan, &arms, c, rounds, Arc::new(move |_, _| get("/v1/models", Some(&key)))).await);
        }
        let scraped = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.expect("scrape").text().await.expect("text");
        let recorded: f64 = scraped
            .lines()
            .filter(|l| l.starts_with("workjet_http_requests_total{") && l.contains("route=\"/v1/models\""))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum();
        assert!(recorded > 0.0, "the metered server recorded its requests");
        let recording = metrics_cost::recording();
        eprintln!(
            "  recording alone: {:.0} ns per request on one thread, {:.0} ns on two at once",
            recording.one_thread_ns, recording.two_threads_ns
        );
        report.metrics_cost(&comparisons, recording, recorded as u64);
    }
    eprintln!("-- 1d. the Redis gate on the cached path");
    if let Some(redis) = std::env::var("WJ_BENCH_REDIS_URL").ok().filter(|v| !v.is_empty() && wants("redis")) {
        let mut env = common(&sqlite);
        env.push(("WJ_REDIS_URL", redis.clone()));
        env.push(("WJ_REDIS_PREFIX", format!("bench-gate-{}:", std::process::id())));
        let gated = Server::start(&env).await;
        let arms = [
            metrics_cost::Arm {
                label: "GET /v1/models, hot key, in-process gate (no Redis)",
                addr: server.addr,
                pid: server.pid(),
                _server: &server,
                redis: None,
            },
            metrics_cost::Arm {
                label: "GET /v1/models, hot key, Redis gate (WJ_REDIS_URL)",
                addr: gated.addr,
                pid: gated.pid(),
                _server: &gated,
                redis: Some(&redis),
            },
        ];
        let rounds = if plan.repeats > 1 { 3 } else { 1 };
        let mut comparisons = Vec::new();
        for c in [1, 64] {
            let key = hot.clone();
            comparisons.push(metrics_cost::compare(&plan, &arms, c, rounds, Arc::new(move |_, _| get("/v1/models", Some(&key)))).await);
        }
        // The worst case for batching: each of the 64 connections with a key of its own, so
        // no two checks of a batch share a bucket.
        let mut own = Vec::new();
        for _ in 0..64 {
            own.push(create_key(&server.base, &cookie, 60_000_000).await.1);
        }
        let own = Arc::new(own);
        let [in_process, through_redis] = arms;
        // The `wrk` cross-check below runs the hot key on these two servers, under their labels.
        let [wrk_in_process, wrk_gated] = [&in_process, &through_redis].map(|arm| wrk::Side {
            label: arm.label.into(),
            url: format!("http://{}/v1/models", arm.addr),
            keyed: true,
        });
        let arms = [
            metrics_cost::Arm { label: "GET /v1/models, a key per connection, in-process gate (no Redis)", ..in_process },
            metrics_cost::Arm { label: "GET /v1/models, a key per connection, Redis gate (WJ_REDIS_URL)", ..through_redis },
        ];
        let spread =
            metrics_cost::compare(&plan, &arms, 64, rounds, Arc::new(move |w, _| get("/v1/models", Some(&own[w % own.len()])))).await;
        // The cross-check with another client: the hot key on both servers, alternating.
        let wrk_rows = wrk::alternate(wrk_in_process, wrk_gated, &hot, dir.path(), plan.repeats == 1).await;
        report.redis_gate(&comparisons, &spread, &wrk_rows);
    }
    if let Some(section) = &only {
        let path = format!("bench-{section}.md");
        report.write(&path, &format!("bench-{section}.svg"));
        eprintln!("wrote {path}");
        return;
    }

    eprintln!("-- 3. junk keys");
    let junk_bad: Arc<Vec<String>> = Arc::new((0..1000).map(|_| format!("{}x", &seed::fake_key()[..43])).collect());
    let junk_unknown: Arc<Vec<String>> = Arc::new((0..1000).map(|_| seed::fake_key()).collect());
    let valid = {
        let k = hot.clone();
        measure(&plan, "valid key (cached)", server.addr, 64, Arc::new(move |_, _| get("/v1/models", Some(&k))), StatusCode::OK).await
    };
    let bad = {
        let k = junk_bad.clone();
        measure(
            &plan,
            "bad checksum (401, no lookup)",
            server.addr,
            64,
            Arc::new(move |_, n| get("/v1/models", Some(&k[n as usize % k.len()]))),
            StatusCode::UNAUTHORIZED,
        )
        .await
    };
    let unknown = {
        let k = junk_unknown.clone();
        measure(
            &plan,
            "unknown well-formed keys, 1,000 (401, remembered after the first lookup)",
            server.addr,
            64,
            Arc::new(move |_, n| get("/v1/models", Some(&k[n as usize % k.len()]))),
            StatusCode::UNAUTHORIZED,
        )
        .await
    };
    let repeated = {
        let k = junk_unknown[0].clone();
        measure(
            &plan,
            "one unknown key, repeated (401, remembered)",
            server.addr,
            64,
            Arc::new(move |_, _| get("/v1/models", Some(&k))),
            StatusCode::UNAUTHORIZED,
        )
        .await
    };
    report.junk(&valid, &bad, &unknown, &repeated);

    eprintln!("-- 4. gateway overhead");
    let mut gateway = Vec::new();
    for c in [1, 64] {
        let direct =
            measure(&plan, "fake upstream directly", fast, c, Arc::new(|_, _| chat("bench-model", false, None)), StatusCode::OK).await;
        let k = hot.clone();
        let via =
            measure(&plan, "through Workjet", server.addr, c, Arc::new(move |_, _| chat("bench-model", false, Some(&k))), StatusCode::OK)
                .await;
        let k = hot.clone();
        let failover = measure(
            &plan,
            "through Workjet, failover past a refused connection (vs through Workjet)",
            server.addr,
            c,
            Arc::new(move |_, _| chat("bench-failover", false, Some(&k))),
            StatusCode::OK,
        )
        .await;
        gateway.push((direct, via, failover));
    }
    let mut streams = Vec::new();
    for (label, model, target, key) in [
        ("direct, 10 chunks", "bench-model", fast, None),
        ("via Workjet, 10 chunks", "bench-model", server.addr, Some(hot.as_str())),
        ("direct, 20 ms gaps", "bench-slow", slow, None),
        ("via Workjet, 20 ms gaps", "bench-slow", server.addr, Some(hot.as_str())),
    ] {
        let mut timings = Vec::new();
        let runs = if model == "bench-slow" { 20 } else { 200 };
        for _ in 0..runs {
            timings.push(client::timed_stream(target, chat(model, true, key)).await);
        }
        streams.push((label.to_owned(), timings));
    }
    report.gateway(&gateway, &streams);

    // The same gateway rows through another build, alternating with this one, so that a
    // change's effect on the gateway is measured in one run (e.g. the last landed commit).
    if let Some(binary) = std::env::var_os("WJ_BENCH_BASELINE_BINARY") {
        eprintln!("-- 4b. gateway: this build against {}", std::path::Path::new(&binary).display());
        // Only what every build understands: one provider for one model.
        let plain = dir.path().join("baseline.toml");
        std::fs::write(
            &plain,
            format!("[[providers]]\nname = \"fast\"\nkind = \"openai\"\nbase_url = \"http://{fast}/v1\"\nmodels = [\"bench-model\"]\n"),
        )
        .expect("write baseline.toml");
        let env = |db: &str| {
            vec![
                ("WJ_DATABASE_URL", db.to_owned()),
                ("WJ_CONFIG", plain.display().to_string()),
                ("WJ_RATE_LIMIT_PER_MINUTE", "60000000".into()),
                ("WJ_AUTH_FAILURES_PER_MINUTE", "60000000".into()),
            ]
        };
        let baseline =
            Server::start_binary(std::path::Path::new(&binary), &env(&format!("sqlite://{}/baseline.db?mode=rwc", dir.path().display())))
                .await;
        let current = Server::start(&env(&format!("sqlite://{}/current.db?mode=rwc", dir.path().display()))).await;
        let mut pairs = Vec::new();
        for c in [1, 64] {
            let mut rows = Vec::new();
            // Alternate, three rounds each, so that drift on the machine hits both alike.
            for _ in 0..3 {
                for (label, server) in [("baseline build", &baseline), ("this build", &current)] {
                    let cookie = sign_in(&server.base, &format!("cmp-{c}-{label}@example.com").replace(' ', "-")).await;
                    let (_, key) = create_key(&server.base, &cookie, 60_000_000).await;
                    let k = key.clone();
                    let row = measure(
                        &plan,
                        &format!("chat completion through Workjet, {label}"),
                        server.addr,
                        c,
                        Arc::new(move |_, _| chat("bench-model", false, Some(&k))),
                        StatusCode::OK,
                    )
                    .await;
                    rows.push(row);
                    let row = measure(
                        &plan,
                        &format!("GET /v1/models (cached key), {label}"),
                        server.addr,
                        c,
                        Arc::new(move |_, _| get("/v1/models", Some(&key))),
                        StatusCode::OK,
                    )
                    .await;
                    rows.push(row);
                }
            }
            pairs.push(rows);
        }
        report.gateway_against_baseline(&pairs);
        drop((baseline, current));
    }

    nginx::section(&plan, &mut report, fast, &server, &hot).await;
    streams::section_into(&mut report).await;

    eprintln!("-- 6. memory");
    let conns_before = server.rss_kib();
    let mut idle = Vec::new();
    for _ in 0..plan.idle_connections {
        match tokio::net::TcpStream::connect(server.addr).await {
            Ok(mut s) => {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                idle.push(s);
            }
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let conns_after = server.rss_kib();
    report.memory(idle_rss, idle.len(), conns_before, conns_after);
    drop(idle);

    eprintln!("-- 7. revocation under load (one instance)");
    let single = revocation_under_load(&server.base, &server.base, &cookie).await;

    eprintln!("-- 2 + 5. key-store scale and portal path (SQLite)");
    let mut scale = Vec::new();
    let mut seeded = plan.sizes[0];
    for size in plan.sizes {
        if size > seeded {
            pool = seed::seed_keys(&db, seed_user.id, size - seeded, 1_000).await;
            seeded = size;
        }
        scale.push(key_store_point(&plan, &server, "SQLite", size, &pool, &db, seed_user.id).await);
    }
    let portal_sqlite = portal_path(&server.base, &cookie, plan.portal_ops).await;
    drop(server);
    let (held, grown) = cache_bytes_per_key(plan.sizes[2]);
    report.cache_memory(held, grown);

    let mut portal = vec![("SQLite".to_owned(), seeded, portal_sqlite)];
    let mut two = None;
    if let Some(pg_admin) = std::env::var("WJ_BENCH_POSTGRES_URL").ok().filter(|v| !v.is_empty()) {
        eprintln!("== PostgreSQL server");
        let pg = create_pg_database(&pg_admin).await;
        let server = Server::start(&common(&pg)).await;
        let cookie = sign_in(&server.base, "bench@example.com").await;
        let db = sea_orm::Database::connect(&pg).await.expect("pg");
        let seed_user = seed::seed_user(&db).await;
        let mut seeded = 0;
        for size in plan.sizes {
            let pool = seed::seed_keys(&db, seed_user.id, size - seeded, 1_000).await;
            seeded = size;
            scale.push(key_store_point(&plan, &server, "PostgreSQL (no Redis: no cache)", size, &pool, &db, seed_user.id).await);
        }
        portal.push(("PostgreSQL".to_owned(), seeded, portal_path(&server.base, &cookie, plan.portal_ops).await));
        drop(server);
        if let Some(redis) = std::env::var("WJ_BENCH_REDIS_URL").ok().filter(|v| !v.is_empty()) {
            eprintln!("== two instances, PostgreSQL + Redis");
            let mut env = common(&pg);
            env.push(("WJ_REDIS_URL", redis.clone()));
            env.push(("WJ_REDIS_PREFIX", format!("bench-{}:", std::process::id())));
            let a = Server::start(&env).await;
            let b = Server::start(&env).await;
            let cookie = sign_in(&a.base, "bench2@example.com").await;
            let (_, key) = create_key(&a.base, &cookie, 60_000_000).await;
            let k = key.clone();
            let redis_row = measure(
                &plan,
                "GET /v1/models via Redis gate (hot key)",
                b.addr,
                64,
                Arc::new(move |_, _| get("/v1/models", Some(&k))),
                StatusCode::OK,
            )
            .await;
            let k = key.clone();
            let redis_row_1 = measure(
                &plan,
                "GET /v1/models via Redis gate (hot key)",
                b.addr,
                1,
                Arc::new(move |_, _| get("/v1/models", Some(&k))),
                StatusCode::OK,
            )
            .await;
            two = Some((revocation_under_load(&a.base, &b.base, &cookie).await, redis_row_1, redis_row));
        }
    }
    report.key_store(&scale);
    report.portal(&portal);
    report.revocation(&single, two.as_ref());
    report.write("BENCHMARKS.md", "benchmarks.svg");
    eprintln!("wrote BENCHMARKS.md and benchmarks.svg");
}

async fn create_pg_database(admin: &str) -> String {
    use sea_orm::ConnectionTrait;
    let name = format!("wj_bench_{}", std::process::id());
    let db = sea_orm::Database::connect(admin).await.expect("postgres");
    let _ = db.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create database");
    let mut url = url::Url::parse(admin).expect("url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Throughput with `size` keys stored, and the first use of never-seen keys (cache miss).
async fn key_store_point(
    plan: &Plan,
    server: &Server,
    db_name: &str,
    size: usize,
    pool: &[String],
    _db: &sea_orm::DatabaseConnection,
    _user: i64,
) -> (String, usize, Row, f64) {
    let (warm, first_use) = pool.split_at(pool.len() / 2);
    let keys = Arc::new(warm.to_vec());
    let row = measure(
        plan,
        &format!("{db_name}: {size} keys stored"),
        server.addr,
        64,
        Arc::new(move |w, n| get("/v1/models", Some(&keys[((w as u64 * 7919 + n * 104_729) % keys.len() as u64) as usize]))),
        StatusCode::OK,
    )
    .await;
    // First use: each key once, one at a time (cache misses go to the database).
    let mut latencies = Vec::new();
    let client = reqwest::Client::new();
    for key in first_use {
        let t0 = Instant::now();
        let r = client
            .get(format!("{}/v1/models", server.base))
            .header("authorization", format!("Bearer {key}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await;
        latencies.push(t0.elapsed());
    }
    // The baseline for a first use is the same request with a cached key.
    let mut cached = Vec::new();
    for key in first_use.iter().take(200) {
        let t0 = Instant::now();
        let _ = client
            .get(format!("{}/v1/models", server.base))
            .header("authorization", format!("Bearer {key}"))
            .send()
            .await
            .expect("request")
            .bytes()
            .await;
        cached.push(t0.elapsed());
    }
    latencies.sort();
    cached.sort();
    let miss_added = latencies[latencies.len() / 2].as_secs_f64() * 1000.0 - cached[cached.len() / 2].as_secs_f64() * 1000.0;
    eprintln!(
        "  first use p50 {:.3} ms (cached p50 {:.3} ms): cache miss adds {miss_added:.3} ms",
        latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        cached[cached.len() / 2].as_secs_f64() * 1000.0
    );
    (db_name.to_owned(), size, row, miss_added)
}

/// Creates then revokes keys through the portal's server functions.
async fn portal_path(base: &str, cookie: &str, ops: usize) -> (Vec<Duration>, Vec<Duration>) {
    let client = reqwest::Client::new();
    let (mut creates, mut revokes) = (Vec::new(), Vec::new());
    for i in 0..ops {
        let t0 = Instant::now();
        let r = client
            .post(format!("{base}/api/create_api_key"))
            .header("cookie", cookie)
            .header("origin", base)
            .json(&serde_json::json!({"request": {"name": format!("portal {i}"), "permissions": "all", "expires_in_days": null}}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), 200, "create through the server function");
        let v: serde_json::Value = r.json().await.expect("json");
        creates.push(t0.elapsed());
        let id = v["key"]["id"].as_i64().expect("id");
        let t0 = Instant::now();
        let r = client
            .post(format!("{base}/api/revoke_api_key"))
            .header("cookie", cookie)
            .header("origin", base)
            .form(&[("id", id.to_string())])
            .send()
            .await
            .expect("revoke");
        assert_eq!(r.status(), 200);
        revokes.push(t0.elapsed());
    }
    creates.sort();
    revokes.sort();
    (creates, revokes)
}

/// 64 connections use a key on `use_base` while it is revoked on `revoke_base`; counts the
/// requests that were sent after the revoke returned and still accepted.
async fn revocation_under_load(revoke_base: &str, use_base: &str, cookie: &str) -> (u64, u64) {
    let (id, key) = create_key(revoke_base, cookie, 60_000_000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let revoked_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let (total, accepted_after) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = reqwest::Client::new();
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (client, url, key, stop, revoked_at, total, accepted_after) = (
            client.clone(),
            format!("{use_base}/v1/models"),
            key.clone(),
            stop.clone(),
            revoked_at.clone(),
            total.clone(),
            accepted_after.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let status = client
                    .get(&url)
                    .header("authorization", format!("Bearer {key}"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                total.fetch_add(1, Ordering::Relaxed);
                if status == 200 && revoked_at.lock().expect("lock").is_some_and(|t| sent >= t) {
                    accepted_after.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = client
        .delete(format!("{revoke_base}/v1/keys/{id}"))
        .header("cookie", cookie)
        .header("origin", revoke_base)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200);
    *revoked_at.lock().expect("lock") = Some(Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let result = (total.load(Ordering::Relaxed), accepted_after.load(Ordering::Relaxed));
    eprintln!("  {} requests, accepted after the revoke returned: {}", result.0, result.1);
    result
}

/// Bytes of memory per cached key, measured in this process with `n` entries: the resident
/// memory the cache holds once the allocator has given back what it freed (the cache's hash
/// tables double as they fill, and glibc keeps the outgrown arrays resident for reuse: that
/// slack is the allocator's, not the cache's). Returns that figure and the growth before the
/// give-back, which is reported beside it.
fn cache_bytes_per_key(n: usize) -> (Figure, f64) {
    unsafe extern "C" {
        /// glibc: returns free heap memory to the system; 1 when some was returned.
        fn malloc_trim(pad: usize) -> i32;
    }
    let cache = workjet::domain::auth_cache::KeyCache::new(n * 2);
    // SAFETY: malloc_trim only walks glibc's own free lists (the bench runs on glibc).
    unsafe { malloc_trim(0) };
    let before = rss_kib(std::process::id());
    for _ in 0..n {
        let hash = workjet::domain::api_keys::ApiKeyHash::of(&seed::fake_key());
        cache.insert(
            &hash,
            workjet::domain::auth_cache::CachedKey::new(1, 1, 0, 0, workjet::permissions::Permissions::All).expect("fits"),
            Some(0),
        );
    }
    let grown = rss_kib(std::process::id());
    // SAFETY: as above.
    unsafe { malloc_trim(0) };
    let held = rss_kib(std::process::id());
    let bytes_per_key = |kib: u64| (kib.saturating_sub(before) * 1024) as f64 / n as f64;
    let (grown, per_key) = (bytes_per_key(grown), bytes_per_key(held));
    eprintln!("  cache: {n} keys, {per_key:.1} bytes per key held ({grown:.1} grown while filling)");
    drop(cache);
    (
        Figure {
            label: format!("cache memory per key ({n} keys)"),
            value: per_key,
            unit: "bytes",
            target: Some(100.0),
            lower_is_better: true,
        },
        grown,
    )
}
