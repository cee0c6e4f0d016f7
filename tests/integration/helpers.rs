//! The test harness: the real application on port 0 against a fresh database, SQLite always
//! and PostgreSQL when `WJ_TEST_POSTGRES_URL` is set.
//!
//! A test that needs a service from outside (PostgreSQL, Redis, a Python or Node with the
//! SDKs) is marked `#[ignore = "needs WJ_TEST_…"]`, so that `cargo test` reports it as
//! ignored rather than passed, and fails (never passes) if run without it. `scripts/test`
//! runs them with `--include-ignored` and `--skip`s the ones whose service is missing, by
//! name: every test that needs PostgreSQL has `postgres` in its name, every test that needs
//! Redis (and PostgreSQL) has `redis`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use leptos::config::LeptosOptions;
use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use workjet::server::{config::Config, startup::Application, state::AppState};

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test, removed when dropped.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    pub sqlite_path: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestDatabase {
    /// A new database, or `None` (skipped) for PostgreSQL without `WJ_TEST_POSTGRES_URL`.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("workjet-test.db");
                Some(Self {
                    backend,
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    sqlite_path: Some(path),
                    _dir: Some(dir),
                    pg_name: None,
                })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let name = format!("wj_test_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), rand_suffix());
                let db = sea_orm::Database::connect(&admin).await.expect("connect to WJ_TEST_POSTGRES_URL");
                use sea_orm::ConnectionTrait;
                db.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
                db.close().await.ok();
                let url = replace_database(&admin, &name);
                Some(Self { backend, url, sqlite_path: None, _dir: None, pg_name: Some(name) })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (Some(name), Some(admin)) = (self.pg_name.take(), postgres_admin_url()) else { return };
        // Drop is synchronous: remove the database from a helper thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                use sea_orm::ConnectionTrait;
                if let Ok(db) = sea_orm::Database::connect(&admin).await {
                    let _ = db.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                    let _ = db.close().await;
                }
            });
        })
        .join();
    }
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) as u32
}

/// `WJ_TEST_POSTGRES_URL`, if set.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("WJ_TEST_POSTGRES_URL").ok().filter(|s| !s.is_empty())
}

/// The value of `name`, which an ignored test needs (it was run with `--include-ignored`).
pub fn required_env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: this test needs it (run it through scripts/test, or leave out --include-ignored)"))
}

/// `WJ_TEST_REDIS_URL`, if set.
pub fn redis_url() -> Option<String> {
    std::env::var("WJ_TEST_REDIS_URL").ok().filter(|s| !s.is_empty())
}

fn replace_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("WJ_TEST_POSTGRES_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// A running application and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub db: TestDatabase,
    shutdown: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// A request with an optional raw `Authorization` value and an optional JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    /// `POST path` with `key` as a Bearer token and a JSON body.
    pub async fn post_json(&self, path: &str, key: &str, body: serde_json::Value) -> reqwest::Response {
        self.call(reqwest::Method::POST, path, Some(&format!("Bearer {key}")), Some(body)).await
    }

    /// Stops the server (graceful shutdown) and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.notify_one();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.notify_one();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Leptos options for tests (pages render without the built bundle).
pub fn leptos_options() -> LeptosOptions {
    LeptosOptions::builder().output_name("workjet").site_root("target/site").build()
}

/// Starts the app on a fresh database of `backend` with extra `WJ_*` settings.
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, String)]) -> Option<TestApp> {
    let db = TestDatabase::create(backend).await?;
    Some(spawn_app_on(db, extra).await)
}

/// Starts the app on an existing test database.
pub async fn spawn_app_on(db: TestDatabase, extra: &[(&str, String)]) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base_url = format!("http://{addr}");
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("WJ_LISTEN_ADDR".into(), addr.to_string());
    vars.insert("WJ_PUBLIC_URL".into(), base_url.clone());
    vars.insert("WJ_DATABASE_URL".into(), db.url.clone());
    vars.insert("WJ_SHUTDOWN_GRACE_SECS".into(), "5".into());
    for (k, v) in extra {
        vars.insert((*k).to_owned(), v.clone());
    }
    let config = Config::from_vars(&vars).expect("valid test config");
    let app = Application::build_with_listener(config, leptos_options(), listener).await.expect("app builds");
    let state = app.state().clone();
    let shutdown = Arc::new(Notify::new());
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let _ = app.run_until(async move { shutdown.notified().await }).await;
        }
    });
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(30)).build().expect("client");
    TestApp { addr, base_url, client, state, db, shutdown, task: Some(task) }
}

/// Defines each test twice: `sqlite::name` and `postgres::name` (the latter ignored unless
/// run with `--include-ignored`, and then needing `WJ_TEST_POSTGRES_URL`).
#[macro_export]
macro_rules! backend_tests {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $backend = $crate::helpers::Backend::Sqlite;
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs WJ_TEST_POSTGRES_URL"]
                async fn $name() {
                    $crate::helpers::required_env("WJ_TEST_POSTGRES_URL");
                    let $backend = $crate::helpers::Backend::Postgres;
                    $body
                }
            )*
        }
    };
}

/// A TCP proxy that a test can cut and restore, to take a dependency "down" and bring it back,
/// or turn into a black hole (connections accepted, nothing answered).
pub struct CuttableProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    black_hole: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl CuttableProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let black_hole = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(Notify::new());
        tokio::spawn({
            let (up, black_hole, cut) = (up.clone(), black_hole.clone(), cut.clone());
            async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else { continue };
                    if black_hole.load(Ordering::SeqCst) {
                        // Held open, never answered, until restored.
                        let cut = cut.clone();
                        tokio::spawn(async move {
                            let mut sink = vec![0u8; 4096];
                            tokio::select! {
                                _ = async { use tokio::io::AsyncReadExt; while inbound.read(&mut sink).await.is_ok_and(|n| n > 0) {} } => {}
                                () = cut.notified() => {}
                            }
                        });
                        continue;
                    }
                    if !up.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let cut = cut.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                        tokio::select! {
                            _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                            () = cut.notified() => {}
                        }
                    });
                }
            }
        });
        Self { addr, up, black_hole, cut }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    /// Drops every open connection and swallows what new ones send, answering nothing.
    pub fn black_hole(&self) {
        self.black_hole.store(true, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    /// Accepts and forwards connections again (black-holed ones are dropped).
    pub fn restore(&self) {
        if self.black_hole.swap(false, Ordering::SeqCst) {
            self.cut.notify_waiters();
        }
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The socket address of a service URL (`postgres://…`, `redis://…`), `default_port` if none.
pub async fn resolve(url: &str, default_port: u16) -> SocketAddr {
    let u = url::Url::parse(url).expect("a service URL");
    tokio::net::lookup_host((u.host_str().unwrap_or("127.0.0.1").to_owned(), u.port().unwrap_or(default_port)))
        .await
        .expect("resolve")
        .next()
        .expect("addr")
}

/// A fresh PostgreSQL database reached through a [`CuttableProxy`], and the URL that goes
/// through the proxy; `None` (skipped) without `WJ_TEST_POSTGRES_URL`.
pub async fn postgres_behind_proxy() -> Option<(TestDatabase, CuttableProxy, String)> {
    let admin = postgres_admin_url()?;
    let db = TestDatabase::create(Backend::Postgres).await?;
    let proxy = CuttableProxy::start(resolve(&admin, 5432).await).await;
    let mut proxied = url::Url::parse(&db.url).expect("url");
    proxied.set_host(Some("127.0.0.1")).expect("host");
    proxied.set_port(Some(proxy.addr.port())).expect("port");
    Some((db, proxy, proxied.to_string()))
}

/// Polls `check` every 100 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A user created as sign-in would create them.
pub async fn make_user(app: &TestApp, email: &str) -> workjet::domain::users::User {
    let identity = workjet::domain::users::VerifiedIdentity {
        issuer: "https://accounts.google.com".into(),
        subject: format!("sub-{email}"),
        email: email.into(),
        name: email.split('@').next().unwrap_or("user").into(),
        picture: None,
    };
    app.state.users.upsert_from_identity(&identity).await.expect("user")
}

/// A key for `user` with `permissions` (and options), as its user would create it in the
/// portal (the user's whole grant), returned raw.
pub async fn make_key_with(app: &TestApp, user_id: i64, name: &str, options: workjet::domain::api_keys::NewKeyOptions) -> (i64, String) {
    let (record, key) = app
        .state
        .keys
        .create(
            user_id,
            &workjet::domain::api_keys::Grant::user(app.state.config.rate_limits()),
            workjet::domain::api_keys::KeyName::parse(name).expect("name"),
            options,
            &Default::default(),
        )
        .await
        .expect("create key");
    (record.id, key.into_secret())
}

/// A key with every permission.
pub async fn make_key(app: &TestApp, user_id: i64) -> (i64, String) {
    make_key_with(app, user_id, "test key", Default::default()).await
}

/// The parsed JSON error of a response, asserting the OpenAI shape.
pub async fn error_of(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: serde_json::Value = response.json().await.expect("an error body is JSON");
    let error = body.get("error").expect("{\"error\": …}");
    assert!(error["message"].is_string(), "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(error["code"].is_string(), "{body}");
    assert!(error.get("param").is_some(), "param is present (maybe null): {body}");
    (status, headers, body)
}

/// The `workjet` binary under test: `WJ_TEST_BINARY` when set, else the one Cargo built.
/// (Worktrees that share one `CARGO_TARGET_DIR` overwrite each other's `target/*/workjet`;
/// pointing `WJ_TEST_BINARY` at this worktree's `deps/workjet-<hash>` keeps the test honest.)
pub fn workjet_binary() -> std::path::PathBuf {
    std::env::var_os("WJ_TEST_BINARY").filter(|p| !p.is_empty()).map(Into::into).unwrap_or_else(|| env!("CARGO_BIN_EXE_workjet").into())
}

/// The number of rows in `table`.
pub async fn count_rows(app: &TestApp, table: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = app.state.db.get_database_backend();
    let row = app
        .state
        .db
        .query_one_raw(Statement::from_string(backend, format!("SELECT count(*) AS n FROM {table}")))
        .await
        .expect("query")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("count")
}
