//! The official OpenAI Python SDK against Workjet: models, chat (plain and streamed, both
//! provider kinds), and the errors the SDK raises for the seed's codes. Needs
//! `WJ_TEST_PYTHON` (a Python with `openai` installed; `scripts/test` creates one).

use workjet::{
    domain::api_keys::NewKeyOptions,
    permissions::{Permission, Permissions},
};

use crate::{gateway::gateway_app, helpers::*, upstream::Fake};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_works_against_workjet() {
    let Some(python) = std::env::var("WJ_TEST_PYTHON").ok().filter(|p| !p.is_empty()) else {
        eprintln!("skipped: WJ_TEST_PYTHON is not set (scripts/test sets it)");
        return;
    };
    let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
    let (app, key) = gateway_app(Backend::Sqlite, &openai, &anthropic, &[]).await.expect("app");
    let user = app.state.users.find_by_email("ada@example.com").await.expect("q").expect("user");
    let (revoked_id, revoked) = make_key(&app, user.id).await;
    app.state.keys.revoke(user.id, revoked_id, &Default::default()).await.expect("revoke");
    let (_, restricted) = make_key_with(
        &app,
        user.id,
        "keys only",
        NewKeyOptions { permissions: Some(Permissions::restricted([Permission::KeysRead])), ..Default::default() },
    )
    .await;
    let (_, limited) =
        make_key_with(&app, user.id, "one a minute", NewKeyOptions { rate_limit_per_minute: Some(1), ..Default::default() }).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk_check.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .env("WJ_SDK_BASE_URL", app.url("/v1"))
        .env("WJ_SDK_KEY", &key)
        .env("WJ_SDK_MODEL", "gpt-public")
        .env("WJ_SDK_ANTHROPIC_MODEL", "claude-4-sonnet")
        .env("WJ_SDK_REVOKED_KEY", &revoked)
        .env("WJ_SDK_RESTRICTED_KEY", &restricted)
        .env("WJ_SDK_LIMITED_KEY", &limited)
        .output()
        .await
        .expect("run python");
    assert!(output.status.success(), "SDK script failed: {}", String::from_utf8_lossy(&output.stderr));
    let results: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON results");
    eprintln!("{results:#}");
    assert_eq!(results["models"]["ok"], serde_json::json!(["claude-4-sonnet", "gpt-public", "same-name"]));
    assert_eq!(results["chat"]["ok"], "Hello from the fake.");
    assert_eq!(results["stream"]["ok"], serde_json::json!({"text": "part0 part1 part2 ", "usage": 18}));
    assert_eq!(results["anthropic_stream"]["ok"], "part0 part1 part2 ");
    assert_eq!(results["missing_model"]["error"], "NotFoundError");
    assert_eq!(results["missing_model"]["code"], "model_not_found");
    assert_eq!(results["revoked"]["error"], "AuthenticationError");
    assert_eq!(results["revoked"]["code"], "unauthorized");
    assert_eq!(results["restricted"]["error"], "PermissionDeniedError");
    assert_eq!(results["restricted"]["code"], "forbidden");
    assert!(results["limited_first"]["ok"].is_array());
    assert_eq!(results["limited_second"]["error"], "RateLimitError");
    assert_eq!(results["limited_second"]["code"], "rate_limited");
}
