//! Serving basics: health, readiness, pages, headers, migrations.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use workjet::server::database;

use crate::{backend_tests, helpers::*};

backend_tests! {
    async fn healthz_answers_ok(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let response = app.get("/healthz").await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-request-id"), "every response carries a request id");
        // A random UUID (version 4, RFC 9562 variant), new for every request.
        let id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
        assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
        assert!(groups[2].starts_with('4') && matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "{id}");
        assert_ne!(app.get("/healthz").await.headers()["x-request-id"], id.as_str());
        // One the client sent is kept.
        let mine = app.client.get(app.url("/healthz")).header("x-request-id", "trace-me-42").send().await.expect("request");
        assert_eq!(mine.headers()["x-request-id"], "trace-me-42");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["status"], "ok");
    }

    async fn readyz_reports_the_database(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let response = app.get("/readyz").await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["status"], "ready");
        assert_eq!(body["database"], "up");
        assert_eq!(body["redis"], "disabled");
    }

    async fn migrations_create_the_schema_and_are_idempotent_on_restart(backend) {
        let db = TestDatabase::create(backend).await.expect("db");
        let url = db.url.clone();
        let app = spawn_app_on(db, &[]).await;
        let tables = ["users", "sessions", "api_keys", "audit_events"];
        for table in tables {
            let count = count_rows(&app, table).await;
            assert_eq!(count, 0, "{table} exists and is empty");
        }
        let applied = count_rows(&app, "seaql_migrations").await;
        assert!(applied >= 1);
        // A second start on the same database applies nothing and keeps the schema.
        let config = workjet::server::config::Config::from_vars(&[("WJ_DATABASE_URL".to_owned(), url)].into_iter().collect()).expect("config");
        let db2 = database::connect(&config).await.expect("connect");
        database::migrate(&db2).await.expect("second migration run succeeds");
        database::migrate(&db2).await.expect("third migration run succeeds");
        assert_eq!(count_rows(&app, "seaql_migrations").await, applied);
    }

    async fn pages_render_on_the_server(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let response = app.get("/login").await;
        assert_eq!(response.status(), 200);
        let csp = response.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let html = response.text().await.expect("html");
        assert!(html.contains("Sign in with Google"));
        assert!(html.contains("/pkg/workjet.js") || html.contains("/pkg/workjet"), "hydration scripts are linked");
        // The hydration script carries the nonce the CSP allows.
        let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("nonce in CSP");
        assert!(html.contains(&format!("nonce=\"{nonce}\"")), "scripts carry the CSP nonce");
        assert!(html.contains("Local development sign-in"), "the dev sign-in notice is rendered on the server");
        let again = app.get("/login").await;
        let csp_again = again.headers()["content-security-policy"].to_str().expect("ascii");
        assert!(!csp_again.contains(&format!("'nonce-{nonce}'")), "a fresh nonce for every page");
        // JSON and health checks: every security header, and a policy without a nonce.
        for path in ["/healthz", "/v1/models"] {
            let response = app.get(path).await;
            let headers = response.headers();
            let csp = headers["content-security-policy"].to_str().expect("ascii");
            assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{path}: {csp}");
            assert!(!csp.contains("nonce"), "{path}: no page, no nonce: {csp}");
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(headers["x-frame-options"], "DENY", "{path}");
            assert!(headers.contains_key("x-request-id"), "{path}");
        }
    }

    async fn unknown_pages_are_404_with_the_portal_frame(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let response = app.get("/no/such/page").await;
        assert_eq!(response.status(), 404);
        let html = response.text().await.expect("html");
        assert!(html.contains("Page not found"));
        assert!(html.contains("Workjet"));
    }
}

/// SQLite: another process holding the write lock does not make the instance unready:
/// reads (authentication, listing) keep working in WAL mode. Down-and-back-up recovery is
/// shown on PostgreSQL below, where the server can really go away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_stays_ready_while_another_process_holds_the_sqlite_write_lock() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.expect("app");
    let path = app.db.sqlite_path.clone().expect("sqlite path");
    let locker = sea_orm::Database::connect(format!("sqlite://{}", path.display())).await.expect("second connection");
    let txn = sea_orm::TransactionTrait::begin(&locker).await.expect("begin");
    txn.execute_unprepared("INSERT INTO audit_events (action, created_at) VALUES ('test.lock', '2026-01-01T00:00:00Z')")
        .await
        .expect("write lock taken");
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    txn.rollback().await.expect("rollback");
    locker.close().await.expect("close");
}

/// PostgreSQL: the connection to the server is cut (as if it were stopped) and restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WJ_TEST_POSTGRES_URL"]
async fn readyz_goes_503_while_postgres_is_unreachable_and_recovers() {
    let Some((db, proxy, proxied)) = postgres_behind_proxy().await else {
        required_env("WJ_TEST_POSTGRES_URL");
        unreachable!("a database is created whenever WJ_TEST_POSTGRES_URL is set");
    };
    let app = spawn_app_on(db, &[("WJ_DATABASE_URL", proxied.clone()), ("WJ_DATABASE_TIMEOUT_MS", "1000".to_owned())]).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    proxy.cut();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("json");
    // Anonymous callers learn which dependency is down, never the error (it names hosts).
    assert_eq!(body, serde_json::json!({"status": "unavailable", "database": "down", "redis": "disabled"}), "{text}");
    let host = proxied.split('@').nth(1).and_then(|rest| rest.split('/').next()).expect("host:port in the URL").to_owned();
    let error = database::ping(&app.state.db, Duration::from_secs(2)).await.expect_err("the database is down");
    for secret in [host.as_str(), error.as_str(), "127.0.0.1", "postgres", "error", "timed out", "connection"] {
        assert!(!text.contains(secret), "the readiness answer leaks {secret:?}: {text}");
    }
    proxy.restore();
    assert!(
        eventually(Duration::from_secs(15), || async { app.get("/readyz").await.status() == 200 }).await,
        "readiness recovers without a restart"
    );
}
