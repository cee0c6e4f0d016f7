//! The official OpenAI SDKs against Workjet: models, chat (plain and streamed, both provider
//! kinds), and the errors the SDKs raise for the seed's codes. The Python test needs
//! `WJ_TEST_PYTHON` (a Python with `openai` installed; `scripts/test` creates one), the Node
//! test `WJ_TEST_NODE` (a `node` with the top-level `npm ci` done; `scripts/test` sets it).
//! Without them the tests are ignored, not passed.

use serde_json::json;
use workjet::{
    domain::api_keys::NewKeyOptions,
    permissions::{Permission, Permissions},
};

use crate::{gateway::gateway_app, helpers::*, upstream::Fake};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The gateway on fake upstreams and the keys an SDK check uses: one with every permission,
/// a revoked one, one restricted to `keys:read`, one limited to `limit` requests a minute.
struct SdkFixture {
    app: TestApp,
    key: String,
    revoked: String,
    restricted: String,
    limited: String,
    _upstreams: (Fake, Fake),
}

impl SdkFixture {
    async fn start(limit: u32) -> Self {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(Backend::Sqlite, &openai, &anthropic, &[]).await.expect("app");
        let user = app.state.users.find_by_email("ada@example.com").await.expect("q").expect("user");
        let (revoked_id, revoked) = make_key(&app, user.id).await;
        app.state.keys.revoke(user.id, revoked_id, &Default::default()).await.expect("revoke");
        let restricted = NewKeyOptions { permissions: Some(Permissions::restricted([Permission::KeysRead])), ..Default::default() };
        let (_, restricted) = make_key_with(&app, user.id, "keys only", restricted).await;
        let limited = NewKeyOptions { rate_limit_per_minute: Some(limit), ..Default::default() };
        let (_, limited) = make_key_with(&app, user.id, "limited", limited).await;
        Self { app, key, revoked, restricted, limited, _upstreams: (openai, anthropic) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WJ_TEST_PYTHON"]
async fn the_official_openai_python_sdk_works_against_workjet() {
    let python = required_env("WJ_TEST_PYTHON");
    let SdkFixture { app, key, revoked, restricted, limited, .. } = SdkFixture::start(1).await;
    let env = [
        ("WJ_SDK_BASE_URL", app.url("/v1")),
        ("WJ_SDK_KEY", key),
        ("WJ_SDK_MODEL", "gpt-public".to_owned()),
        ("WJ_SDK_ANTHROPIC_MODEL", "claude-4-sonnet".to_owned()),
        ("WJ_SDK_REVOKED_KEY", revoked),
        ("WJ_SDK_RESTRICTED_KEY", restricted),
        ("WJ_SDK_LIMITED_KEY", limited),
    ];
    let results = run_python(&python, "openai_sdk_check.py", &env).await;
    assert_common_results(&results);
    assert!(results["limited_first"]["ok"].is_array());
    assert_eq!(results["limited_second"]["error"], "RateLimitError");
    assert_eq!(results["limited_second"]["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WJ_TEST_PYTHON"]
async fn the_official_anthropic_python_sdk_works_against_workjet() {
    let python = required_env("WJ_TEST_PYTHON");
    let SdkFixture { app, key, revoked, restricted, limited, .. } = SdkFixture::start(1).await;
    let env = [
        // Anthropic's SDK appends /v1/messages itself.
        ("WJ_SDK_BASE_URL", app.base_url.clone()),
        ("WJ_SDK_KEY", key),
        ("WJ_SDK_ANTHROPIC_MODEL", "claude-4-sonnet".to_owned()),
        ("WJ_SDK_OPENAI_MODEL", "gpt-public".to_owned()),
        ("WJ_SDK_REVOKED_KEY", revoked),
        ("WJ_SDK_RESTRICTED_KEY", restricted),
        ("WJ_SDK_LIMITED_KEY", limited),
    ];
    let results = run_python(&python, "anthropic_sdk_check.py", &env).await;
    assert_eq!(results["message"]["ok"], json!({"text": "Hello from the fake.", "input_tokens": 11, "output_tokens": 7}));
    assert_eq!(results["stream"]["ok"], json!({"text": "part0 part1 part2 ", "output_tokens": 7}));
    for (case, error, status, kind) in [
        ("bad_key", "AuthenticationError", 401, "authentication_error"),
        ("revoked", "AuthenticationError", 401, "authentication_error"),
        ("restricted", "PermissionDeniedError", 403, "permission_error"),
        ("limited_second", "RateLimitError", 429, "rate_limit_error"),
        ("openai_only_model", "BadRequestError", 400, "invalid_request_error"),
    ] {
        assert_eq!(results[case], json!({"error": error, "status": status, "type": kind}), "{case}");
    }
    assert!(results["limited_first"]["ok"].is_string());
}

/// Runs `tests/sdk/<script>` with `env` (keys travel in the environment, never on a command
/// line) and returns the JSON object it prints.
async fn run_python(python: &str, script: &str, env: &[(&str, String)]) -> serde_json::Value {
    let output = tokio::process::Command::new(python)
        .arg(format!("{REPO}/tests/sdk/{script}"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("run python");
    assert!(output.status.success(), "{script} failed: {}", String::from_utf8_lossy(&output.stderr));
    let results: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON results");
    eprintln!("{results:#}");
    results
}

/// What both SDK checks report alike: models, chat, streams (both provider kinds), and the
/// SDK's error classes for a missing model, a revoked key and a restricted key.
fn assert_common_results(results: &serde_json::Value) {
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
}

/// The README's ```js block that starts with `start`, verbatim.
fn readme_snippet(start: &str) -> String {
    let readme = std::fs::read_to_string(format!("{REPO}/README.md")).expect("README.md");
    readme
        .split("```js\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(code, _)| code))
        .find(|code| code.starts_with(start))
        .unwrap_or_else(|| panic!("README.md has a ```js block starting with {start:?}"))
        .to_owned()
}

/// Runs `code` as an ES module with `node`, from `end2end/sdk` (so `import "openai"` resolves
/// to the top-level node_modules), and returns its standard output.
async fn run_node(node: &str, args: &[&str], code: Option<&str>, env: &[(&str, String)]) -> String {
    let mut command = tokio::process::Command::new(node);
    command.current_dir(format!("{REPO}/end2end/sdk")).args(args);
    if let Some(code) = code {
        command.args(["--input-type=module", "--eval", code]);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("run node");
    assert!(
        output.status.success(),
        "node failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WJ_TEST_NODE"]
async fn the_official_openai_node_sdk_and_the_readme_examples_work_against_workjet() {
    let node = required_env("WJ_TEST_NODE");
    // 60 a minute: a burst of 60, then one more every second.
    let SdkFixture { app, key, revoked, restricted, limited, .. } = SdkFixture::start(60).await;
    let env = [
        ("WJ_SDK_BASE_URL", app.url("/v1")),
        ("WJ_SDK_KEY", key.clone()),
        ("WJ_SDK_MODEL", "gpt-public".to_owned()),
        ("WJ_SDK_ANTHROPIC_MODEL", "claude-4-sonnet".to_owned()),
        ("WJ_SDK_REVOKED_KEY", revoked),
        ("WJ_SDK_RESTRICTED_KEY", restricted),
        ("WJ_SDK_LIMITED_KEY", limited),
    ];
    let stdout = run_node(&node, &["openai_sdk_check.mjs"], None, &env).await;
    let results: serde_json::Value = serde_json::from_str(&stdout).expect("JSON results");
    eprintln!("{results:#}");
    let installed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{REPO}/node_modules/openai/package.json")).expect("npm ci was run"))
            .expect("json");
    let pinned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{REPO}/package.json")).expect("package.json")).expect("json");
    assert_eq!(installed["version"], pinned["devDependencies"]["openai"], "the pinned SDK is the one installed");
    assert_common_results(&results);
    assert!(results["limited_spent"].as_u64().expect("count") >= 59, "the burst is the whole budget");
    assert_eq!(results["limited_refused"]["error"], "RateLimitError");
    assert_eq!(results["limited_refused"]["code"], "rate_limited");
    // The SDK's own retry: refused with Retry-After, waited, retried, succeeded.
    let attempts = results["limited_attempts"].as_array().expect("attempts");
    assert!(attempts.len() >= 2, "the SDK retried: {attempts:?}");
    assert_eq!(attempts[0]["status"], 429);
    assert!(attempts[0]["retry_after"].as_str().is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)));
    assert!(attempts[0]["retry_after_ms"].as_str().is_some_and(|s| s.parse::<u64>().is_ok()));
    assert_eq!(attempts.last().expect("last")["status"], 200);
    assert!(attempts.last().expect("last")["retry_count"].as_str().is_some_and(|n| n != "0"), "marked as a retry");
    assert_eq!(results["limited_retried"]["ok"], 3, "the retried call answered the model list");
    assert!(results["limited_retried_ms"].as_u64().expect("ms") >= 300, "the SDK waited before retrying");

    // The README's `fetch` example, verbatim but for the address and the key.
    let fetch = readme_snippet("const response = await fetch(")
        .replace("http://127.0.0.1:3000", &app.base_url)
        .replace("wj_live_a1b2c3d4...", &key);
    let code = format!("{fetch}\nconsole.log(JSON.stringify({{ status: response.status, body: await response.json() }}));\n");
    let out: serde_json::Value = serde_json::from_str(&run_node(&node, &[], Some(&code), &[]).await).expect("json");
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"]["object"], "chat.completion", "{out}");
    assert!(out["body"]["choices"][0]["message"]["content"].as_str().is_some_and(|c| !c.is_empty()), "{out}");

    // The README's SDK example, verbatim but for the address.
    let sdk = readme_snippet("import OpenAI from \"openai\";").replace("http://127.0.0.1:3000", &app.base_url);
    let printed = run_node(&node, &[], Some(&sdk), &[("WORKJET_API_KEY", key.clone())]).await;
    assert!(!printed.trim().is_empty(), "the README example printed the reply");
}
