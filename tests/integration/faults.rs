//! Faults: the database going away or locked under load, and storms of concurrent creates
//! and revokes. Nothing acknowledged is lost, nothing revoked authenticates, nobody unverified
//! gets in, and the service recovers by itself.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::{backend_tests, helpers::*};

async fn me(app: &TestApp, key: &str) -> StatusCode {
    app.client.get(app.url("/v1/me")).bearer_auth(key).send().await.map(|r| r.status()).unwrap_or(StatusCode::BAD_GATEWAY)
}

async fn create(app: &TestApp, key: &str, name: &str) -> (StatusCode, Option<(i64, String)>) {
    let Ok(response) = app.client.post(app.url("/v1/keys")).bearer_auth(key).json(&json!({ "name": name })).send().await else {
        return (StatusCode::BAD_GATEWAY, None);
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let created = body["id"].as_i64().zip(body["key"].as_str().map(str::to_owned));
    (status, created)
}

/// Every key listed, page after page (`after` = the previous page's `last_id`).
async fn listed_ids(app: &TestApp, key: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut path = "/v1/keys".to_owned();
    loop {
        let list: Value = app.client.get(app.url(&path)).bearer_auth(key).send().await.expect("list").json().await.expect("json");
        ids.extend(list["data"].as_array().expect("data").iter().map(|k| k["id"].as_i64().expect("id")));
        if list["has_more"] != Value::Bool(true) {
            return ids;
        }
        path = format!("/v1/keys?after={}", list["last_id"]);
    }
}

/// PostgreSQL is cut off (as if stopped) while clients keep calling; then it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WJ_TEST_POSTGRES_URL"]
async fn postgres_down_under_load_fails_closed_and_recovers_by_itself() {
    let Some((db, proxy, proxied)) = postgres_behind_proxy().await else {
        required_env("WJ_TEST_POSTGRES_URL");
        unreachable!("a database is created whenever WJ_TEST_POSTGRES_URL is set");
    };
    let proxy = Arc::new(proxy);
    let app = Arc::new(
        spawn_app_on(
            db,
            &[
                ("WJ_DATABASE_URL", proxied),
                ("WJ_DATABASE_TIMEOUT_MS", "1000".to_owned()),
                ("WJ_RATE_LIMIT_PER_MINUTE", "1000000".to_owned()),
                ("WJ_AUTH_FAILURES_PER_MINUTE", "1000000".to_owned()),
            ],
        )
        .await,
    );
    let user = make_user(&app, "ada@example.com").await;
    let (_, admin_key) = make_key(&app, user.id).await;
    assert_eq!(me(&app, &admin_key).await, 200);
    // Keys never used before the outage: nothing about them is cached.
    let mut unverified = Vec::new();
    for i in 0..3 {
        unverified.push(make_key_with(&app, user.id, &format!("cold {i}"), Default::default()).await.1);
    }

    let outage = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let unverified_ok_during_outage = Arc::new(AtomicU64::new(0));
    let others = Arc::new(std::sync::Mutex::new(Vec::<u16>::new()));
    let mut workers = Vec::new();
    for w in 0..8u64 {
        let (app, outage, stop, acknowledged, counts, bad) =
            (app.clone(), outage.clone(), stop.clone(), acknowledged.clone(), counts.clone(), unverified_ok_during_outage.clone());
        let admin_key = admin_key.clone();
        let unverified = unverified.clone();
        let others = others.clone();
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let status = if w.is_multiple_of(2) {
                    let (status, created) = create(&app, &admin_key, &format!("w{w}-{i}")).await;
                    if let Some((id, _)) = created {
                        acknowledged.lock().expect("lock").push(id);
                    }
                    status
                } else {
                    let key = &unverified[(i % 3) as usize];
                    let during = outage.load(Ordering::SeqCst);
                    let status = me(&app, key).await;
                    if during && outage.load(Ordering::SeqCst) && status == 200 {
                        bad.fetch_add(1, Ordering::SeqCst);
                    }
                    status
                };
                let slot = match status.as_u16() {
                    200 | 201 => 0,
                    503 => 1,
                    409 => 2,
                    other => {
                        others.lock().expect("lock").push(other);
                        3
                    }
                };
                counts[slot].fetch_add(1, Ordering::SeqCst);
                // Keep under the 100-active-keys limit: revoke some along the way.
                if w.is_multiple_of(2) && i.is_multiple_of(2) {
                    let last = acknowledged.lock().expect("lock").last().copied();
                    if let Some(id) = last {
                        let _ = app.client.delete(app.url(&format!("/v1/keys/{id}"))).bearer_auth(&admin_key).send().await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    outage.store(true, Ordering::SeqCst);
    proxy.cut();
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A clear JSON 503 while it is down, for a key nothing is known about.
    let response = app.client.get(app.url("/v1/me")).bearer_auth(&unverified[0]).send().await.expect("me");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "service_unavailable");
    let (status, _) = create(&app, &admin_key, "during the outage").await;
    assert_eq!(status, 503, "writes fail closed");
    outage.store(false, Ordering::SeqCst);
    proxy.restore();
    let restored_at = Instant::now();
    let recovered = eventually(Duration::from_secs(20), || async { me(&app, &unverified[1]).await == 200 }).await;
    assert!(recovered, "recovers without a restart");
    let recovery = restored_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let listed: BTreeSet<i64> = listed_ids(&app, &admin_key).await.into_iter().collect();
    let lost = acknowledged.iter().filter(|id| !listed.contains(id)).count();
    let [ok, unavailable, conflict, other] = [0, 1, 2, 3].map(|i| counts[i].load(Ordering::SeqCst));
    eprintln!(
        "PostgreSQL outage of {:?}: {ok} answered, {unavailable} × 503, {conflict} × 409, {other} other; unverified keys let in during the outage: {}; {} keys acknowledged, {lost} lost; recovered {:?} after restore",
        restored_at - cut_at,
        unverified_ok_during_outage.load(Ordering::SeqCst),
        acknowledged.len(),
        recovery
    );
    assert!(unavailable > 0, "the outage was felt");
    assert_eq!(other, 0, "only 2xx, 409 and 503 answers: {:?}", others.lock().expect("lock"));
    assert_eq!(unverified_ok_during_outage.load(Ordering::SeqCst), 0, "fail closed: no unverified key got in while the database was down");
    assert_eq!(lost, 0, "no acknowledged key was lost");
}

/// SQLite: another process holds the write lock. Writes wait a bounded time, then fail with a
/// clear 503 and write nothing; reads keep working; once the lock goes, writes work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_fails_writes_cleanly_and_keeps_reads_working() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.expect("app");
    let user = make_user(&app, "ada@example.com").await;
    let (_, key) = make_key(&app, user.id).await;
    let (_, cold) = make_key_with(&app, user.id, "cold", Default::default()).await;
    assert_eq!(me(&app, &key).await, 200);
    let before = crate::hardening::dump(&app).await;

    let path = app.db.sqlite_path.clone().expect("sqlite path");
    let locker = sea_orm::Database::connect(format!("sqlite://{}", path.display())).await.expect("second connection");
    let txn = sea_orm::TransactionTrait::begin(&locker).await.expect("begin");
    txn.execute_unprepared("INSERT INTO audit_events (action, created_at) VALUES ('test.lock', '2026-01-01T00:00:00Z')")
        .await
        .expect("write lock taken");

    let started = Instant::now();
    let response = app.client.post(app.url("/v1/keys")).bearer_auth(&key).json(&json!({"name": "blocked"})).send().await.expect("post");
    let waited = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.json::<Value>().await.expect("json")["error"]["code"], "service_unavailable");
    assert!(waited < Duration::from_secs(10), "a bounded wait: {waited:?}");
    // Reads keep working, including a key never seen before (a database read).
    assert_eq!(me(&app, &cold).await, 200);
    assert_eq!(listed_ids(&app, &key).await.len(), 2);

    txn.rollback().await.expect("rollback");
    locker.close().await.expect("close");
    let after = crate::hardening::dump(&app).await;
    assert_eq!(before, after, "the failed write left nothing behind");
    let (status, created) = create(&app, &key, "after the lock").await;
    assert_eq!(status, 201, "writes work again at once");
    assert!(created.is_some());
    eprintln!("SQLite write lock: write refused with 503 after {waited:?}; reads kept working; 0 rows half-written");
}

// Hundreds of concurrent creates and revokes over several users: every acknowledged key is
// listed exactly once for its owner, the active-key limit holds, and no revoked key
// authenticates afterwards.
backend_tests! {
    async fn create_and_revoke_storms_lose_nothing_and_let_nothing_revoked_in(backend) {
        let app = Arc::new(
            spawn_app_with(
                backend,
                &[("WJ_RATE_LIMIT_PER_MINUTE", "1000000".into()), ("WJ_AUTH_FAILURES_PER_MINUTE", "1000000".into())],
            )
            .await
            .expect("app"),
        );
        const USERS: usize = 6;
        const CREATES_PER_USER: usize = 120;
        let mut admins = Vec::new();
        for u in 0..USERS {
            let user = make_user(&app, &format!("user{u}@example.com")).await;
            let (_, admin) = make_key(&app, user.id).await;
            admins.push(admin);
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (u, admin) in admins.iter().enumerate() {
            for i in 0..CREATES_PER_USER {
                let (app, admin) = (app.clone(), admin.clone());
                tasks.push(tokio::spawn(async move {
                    let (status, created) = create(&app, &admin, &format!("storm {u}-{i}")).await;
                    // Every third key is revoked at once, concurrently with the other creates.
                    let revoked = match &created {
                        Some((id, _)) if i % 3 == 0 => {
                            let r = app.client.delete(app.url(&format!("/v1/keys/{id}"))).bearer_auth(&admin).send().await.expect("revoke");
                            assert_eq!(r.status(), 200);
                            true
                        }
                        _ => false,
                    };
                    (u, status, created, revoked)
                }));
            }
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.expect("task"));
        }
        let elapsed = started.elapsed();
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for (_, status, _, _) in &outcomes {
            *statuses.entry(status.as_u16()).or_default() += 1;
        }
        assert!(statuses.keys().all(|s| *s == 201 || *s == 409), "only 201 and 409 (the limit): {statuses:?}");
        let mut checked_revoked = 0;
        let mut checked_active = 0;
        for (u, admin) in admins.iter().enumerate() {
            let listed = listed_ids(&app, admin).await;
            let unique: BTreeSet<i64> = listed.iter().copied().collect();
            assert_eq!(unique.len(), listed.len(), "every key listed exactly once");
            let mine: Vec<_> = outcomes.iter().filter(|o| o.0 == u && o.2.is_some()).collect();
            for (_, _, created, _) in &mine {
                assert!(unique.contains(&created.as_ref().expect("created").0), "an acknowledged key is listed");
            }
            assert_eq!(listed.len(), mine.len() + 1, "nothing unacknowledged was stored (plus the admin key)");
            let active_created = mine.iter().filter(|o| !o.3).count();
            assert!(active_created < 100, "the 100-active-key limit held: {active_created} + the admin key");
            for (_, _, created, revoked) in &mine {
                let status = me(&app, &created.as_ref().expect("created").1).await;
                if *revoked {
                    assert_eq!(status, 401, "a revoked key never authenticates");
                    checked_revoked += 1;
                } else {
                    assert_eq!(status, 200);
                    checked_active += 1;
                }
            }
        }
        eprintln!(
            "{backend:?} storm: {} concurrent creates over {USERS} users in {elapsed:?} ({statuses:?}); {checked_active} active keys work, {checked_revoked} revoked keys refused; 0 lost, 0 duplicated",
            outcomes.len()
        );
    }
}

/// The key lookups (`api_keys` joined with `users`, whose columns are aliased `A_…`; the
/// statement's text is cut at 1 KiB, before its `FROM`) of this test database waiting for a
/// lock.
async fn waiting_lookups(monitor: &sea_orm::DatabaseConnection) -> i64 {
    let row = monitor
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            r#"SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'SELECT "api_keys"."id" AS "A_id",%'"#,
        ))
        .await
        .expect("pg_stat_activity")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

/// The most lookups seen waiting at once over `window`.
async fn most_waiting(monitor: &sea_orm::DatabaseConnection, window: Duration) -> i64 {
    let (start, mut most) = (Instant::now(), 0);
    while start.elapsed() < window {
        most = most.max(waiting_lookups(monitor).await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    most
}

/// A key arriving on many connections at once (a new key, or a hot key whose cache entry aged
/// out) costs the database one lookup, not one per request, and a failed one answers them all
/// 503 at once; a request under another generation (a revocation began) never shares a lookup
/// begun before it, and one whose shared lookup is abandoned looks the key up itself. The
/// database is held up with a table lock, so the lookups in flight can be counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WJ_TEST_POSTGRES_URL"]
async fn concurrent_lookups_of_one_key_share_one_postgres_query() {
    use sea_orm::TransactionTrait;
    use workjet::domain::api_keys::{format::ApiKeyHash, last_used::UseSite};
    let app = Arc::new(
        spawn_app_with(Backend::Postgres, &[("WJ_AUTH_CACHE", "on".into()), ("WJ_RATE_LIMIT_PER_MINUTE", "100000".into())])
            .await
            .unwrap_or_else(|| {
                required_env("WJ_TEST_POSTGRES_URL");
                unreachable!("a database is created whenever WJ_TEST_POSTGRES_URL is set")
            }),
    );
    let user = make_user(&app, "ada@example.com").await;
    let (_, key) = make_key(&app, user.id).await;
    // A connection of its own: the server's pool is what a stampede of lookups would drain.
    let monitor = sea_orm::Database::connect(&app.db.url).await.expect("monitor");
    // `n` requests with `key` at once, sent while `api_keys` is locked (the lock returned).
    let under_lock = |key: String, n: usize| {
        let app = app.clone();
        async move {
            let lock = app.state.db.begin().await.expect("begin");
            lock.execute_unprepared("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE").await.expect("lock");
            let requests: Vec<_> = (0..n)
                .map(|_| {
                    let (app, key) = (app.clone(), key.clone());
                    tokio::spawn(async move { app.client.get(app.url("/v1/me")).bearer_auth(&key).send().await.map(|r| r.status()) })
                })
                .collect();
            (lock, requests)
        }
    };

    // 32 requests at once with a key this instance has never seen.
    let (lock, requests) = under_lock(key.clone(), 32).await;
    assert!(eventually(Duration::from_secs(10), || async { waiting_lookups(&monitor).await >= 1 }).await, "a lookup waits");
    assert_eq!(most_waiting(&monitor, Duration::from_secs(2)).await, 1, "one query for 32 requests");
    assert!(requests.iter().all(|r| !r.is_finished()), "all 32 wait for that query");
    lock.rollback().await.expect("unlock");
    for request in requests {
        assert_eq!(request.await.expect("task").expect("answered"), StatusCode::OK);
    }

    // The database fails the shared lookup (its connection killed): every request that shared
    // it gets the same 503 at once, none queues a lookup of its own; the next request succeeds.
    let (_, second) = make_key(&app, user.id).await;
    let (lock, requests) = under_lock(second.clone(), 8).await;
    assert!(eventually(Duration::from_secs(10), || async { waiting_lookups(&monitor).await == 1 }).await, "a lookup waits");
    tokio::time::sleep(Duration::from_millis(300)).await;
    monitor
        .execute_unprepared(
            r#"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'SELECT "api_keys"."id" AS "A_id",%'"#,
        )
        .await
        .expect("terminate");
    for request in requests {
        let status = tokio::time::timeout(Duration::from_secs(10), request).await.expect("answered while the lock is held");
        assert_eq!(status.expect("task").expect("answered"), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(waiting_lookups(&monitor).await, 0, "nobody looked the key up again");
    lock.rollback().await.expect("unlock");
    assert_eq!(app.client.get(app.url("/v1/me")).bearer_auth(&second).send().await.expect("answered").status(), StatusCode::OK);

    // Straight at the service: the same generation joins, another does not; an abandoned
    // lookup leaves the ones that joined it to look the key up themselves.
    let hash = ApiKeyHash::of_valid(&key).expect("well-formed");
    let lookup = |generation: u64| {
        let app = app.clone();
        tokio::spawn(async move { app.state.keys.lookup_and_cache(&hash, Some(generation), UseSite { ip: None, user_agent: None }).await })
    };
    let lock = app.state.db.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    let first = lookup(1_000);
    assert!(eventually(Duration::from_secs(10), || async { waiting_lookups(&monitor).await == 1 }).await, "the first lookup waits");
    let joined = lookup(1_000);
    assert_eq!(most_waiting(&monitor, Duration::from_millis(500)).await, 1, "the same generation joins");
    let other = lookup(1_001);
    assert!(
        eventually(Duration::from_secs(10), || async { waiting_lookups(&monitor).await == 2 }).await,
        "another generation looks up itself"
    );
    first.abort();
    let _ = first.await;
    lock.rollback().await.expect("unlock");
    for task in [joined, other] {
        let found = tokio::time::timeout(Duration::from_secs(10), task).await.expect("never hangs").expect("task");
        assert_eq!(found.expect("found").user_id, user.id);
    }
}
