//! `GET /v1/openapi.json`: public, a valid OpenAPI 3.1 document (checked by
//! `openapi-spec-validator`), true to the server (its routes, its error body, its headers),
//! and good enough to generate a working client from (`openapi-python-client`). The Python
//! tests need `WJ_TEST_PYTHON` (`scripts/test` creates a virtualenv with both tools).

use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::helpers::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

async fn document(app: &TestApp) -> Value {
    let response = app.get("/v1/openapi.json").await;
    assert_eq!(response.status(), 200, "the document is public");
    assert!(response.headers()[header::CONTENT_TYPE].to_str().expect("ascii").starts_with("application/json"));
    response.json().await.expect("json")
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            all.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_public_and_true_to_the_server() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.expect("app");
    let user = make_user(&app, "ada@example.com").await;
    let (_, key) = make_key(&app, user.id).await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));

    let mut ids: Vec<String> = operations(&doc).iter().map(|(_, _, op)| op["operationId"].as_str().expect("id").to_owned()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "adminDisableUser",
            "adminEnableUser",
            "adminFindKeys",
            "adminGetKey",
            "adminListAuditEvents",
            "adminListUsers",
            "adminRevokeKey",
            "createChatCompletion",
            "createKey",
            "createMessage",
            "getKey",
            "getMe",
            "getModel",
            "getOpenApiDocument",
            "listAuditEvents",
            "listKeys",
            "listModels",
            "revokeKey",
            "rollKey",
            "updateKey"
        ]
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        schemes["cookie"],
        json!({"type": "apiKey", "in": "cookie", "name": "wj_session", "description": schemes["cookie"]["description"]})
    );
    assert_eq!(doc["security"], json!([{"bearer": []}, {"cookie": []}]));
    let tags: Vec<&str> = doc["tags"].as_array().expect("tags").iter().map(|t| t["name"].as_str().expect("name")).collect();

    for (method, path, op) in operations(&doc) {
        assert!(tags.contains(&op["tags"][0].as_str().expect("tagged")), "{method} {path}");
        assert!(op["summary"].is_string() || op["description"].is_string(), "{method} {path} says what it does");
        let responses = op["responses"].as_object().expect("responses");
        if path == "/v1/openapi.json" {
            assert_eq!(op["security"], json!([]), "the document itself needs no credentials");
            continue;
        }
        for status in ["401", "429", "503"] {
            assert!(responses.contains_key(status), "{method} {path} documents {status}");
        }
        assert!(responses["429"]["headers"].get("Retry-After").is_some(), "{method} {path}");
        assert!(responses["401"]["headers"].get("WWW-Authenticate").is_some(), "{method} {path}");
        for (status, response) in responses {
            assert!(!response["description"].as_str().unwrap_or_default().is_empty(), "{method} {path} {status}");
            for h in ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"] {
                assert!(response["headers"].get(h).is_some(), "{method} {path} {status} documents {h}");
            }
            if !status.starts_with('2') {
                // Anthropic's Messages API answers errors in Anthropic's shape.
                let body = if path == "/v1/messages" { "AnthropicErrorBody" } else { "ErrorBody" };
                assert_eq!(response["content"]["application/json"]["schema"]["$ref"], format!("#/components/schemas/{body}"));
            }
        }

        // Every documented route exists behind authentication: without credentials, 401 in
        // the documented shape; with a key, not 404/405 (a route, not the catch-all).
        let concrete = path.replace("{id}", if path.starts_with("/v1/keys") { "999999" } else { "gpt-x" });
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let unauthenticated = app.client.request(method.clone(), app.url(&concrete)).send().await.expect("request");
        let (status, headers) = (unauthenticated.status().as_u16(), unauthenticated.headers().clone());
        assert_eq!(status, 401, "{method} {path}");
        assert!(headers.contains_key("www-authenticate"), "{method} {path}: the documented WWW-Authenticate header is sent");
        let authed =
            app.client.request(method.clone(), app.url(&concrete)).bearer_auth(&key).json(&json!({})).send().await.expect("request");
        assert_ne!(authed.status(), 405, "{method} {path}");
        // Admitted requests say where their budget stands (a refusal that cost nothing spends
        // nothing, and says nothing of a budget).
        for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
            assert!(authed.headers().contains_key(h), "{method} {path}: the documented {h} header is sent");
        }
        if authed.status() == 404 {
            let body: Value = authed.json().await.expect("json");
            assert!(!body["error"]["message"].as_str().unwrap_or_default().contains("Unknown API route"), "{method} {path}");
        }
    }

    // The error body the server sends has exactly the documented fields.
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    let mut documented: Vec<&str> = detail["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
    documented.sort();
    let (_, _, body) = error_of(app.get("/v1/me").await).await;
    let mut sent: Vec<&str> = body["error"].as_object().expect("error").keys().map(String::as_str).collect();
    sent.sort();
    assert_eq!(documented, sent);
    assert_eq!(doc["components"]["schemas"]["ErrorBody"]["required"], json!(["error"]));
    let response = app.client.post(app.url("/v1/messages")).json(&json!({})).send().await.expect("request");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&body), keys(&doc["components"]["schemas"]["AnthropicErrorBody"]["properties"]));
    assert_eq!(keys(&body["error"]), keys(&doc["components"]["schemas"]["AnthropicErrorDetail"]["properties"]));

    // Other methods on the document are refused in the usual shape.
    let (status, _, _) = error_of(app.client.post(app.url("/v1/openapi.json")).send().await.expect("request")).await;
    assert_eq!(status, 405);
}

/// The document, written to a temporary file.
async fn document_file(app: &TestApp) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("openapi.json");
    let text = app.get("/v1/openapi.json").await.text().await.expect("text");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

async fn run(command: &mut tokio::process::Command) -> String {
    let output = command.output().await.expect("run");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?} failed:\n{stdout}\n{stderr}");
    format!("{stdout}{stderr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WJ_TEST_PYTHON"]
async fn the_openapi_document_passes_openapi_spec_validator() {
    let python = required_env("WJ_TEST_PYTHON");
    let app = spawn_app_with(Backend::Sqlite, &[]).await.expect("app");
    let (_dir, path) = document_file(&app).await;
    let out = run(tokio::process::Command::new(&python).args(["-m", "openapi_spec_validator", "--schema", "3.1"]).arg(&path)).await;
    eprintln!("{out}");
    assert!(out.contains("OK"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WJ_TEST_PYTHON"]
async fn a_client_generated_from_the_document_creates_lists_gets_and_revokes_keys() {
    let python = required_env("WJ_TEST_PYTHON");
    let app = spawn_app_with(Backend::Sqlite, &[]).await.expect("app");
    let user = make_user(&app, "ada@example.com").await;
    let (_, key) = make_key(&app, user.id).await;
    let (dir, path) = document_file(&app).await;
    let out_dir = dir.path().join("workjet_api_client");
    // As the README says, but from the file: --fail-on-warning, so that every part of the
    // document is understood by the generator.
    // Its post-generation hooks run `ruff` from the virtualenv.
    let bin = std::path::Path::new(&python).parent().expect("the virtualenv's bin").to_owned();
    let path_var = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())))
        .expect("PATH");
    let out = run(tokio::process::Command::new(&python)
        .env("PATH", path_var)
        .args(["-m", "openapi_python_client", "generate", "--meta", "none", "--fail-on-warning", "--path"])
        .arg(&path)
        .arg("--output-path")
        .arg(&out_dir))
    .await;
    eprintln!("{out}");
    let output = tokio::process::Command::new(&python)
        .arg(format!("{REPO}/tests/sdk/generated_client_check.py"))
        .env("PYTHONPATH", dir.path())
        .env("WJ_BASE_URL", &app.base_url)
        .env("WJ_KEY", &key)
        .output()
        .await
        .expect("run python");
    assert!(output.status.success(), "client script failed: {}", String::from_utf8_lossy(&output.stderr));
    let results: Value = serde_json::from_slice(&output.stdout).expect("JSON results");
    eprintln!("{results:#}");
    let created_id = results["created"]["id"].as_i64().expect("created id");
    assert!(results["created"]["key"].as_str().expect("raw key").starts_with("wj_live_"));
    assert_eq!(results["created"]["permissions"], json!(["inference"]));
    assert!(results["listed"].as_array().expect("ids").contains(&json!(created_id)));
    assert_eq!(results["got"]["name"], "Generated client");
    assert_eq!(results["revoked"]["status"], "revoked");
    assert_eq!(results["missing"]["status"], 404);
    assert_eq!(results["missing"]["code"], "not_found");
    // And the server agrees: the key is revoked.
    let record = app.state.keys.get(user.id, created_id).await.expect("q").expect("key");
    assert!(record.revoked_at.is_some());
}
