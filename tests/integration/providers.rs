//! Where providers come from and what happens when one fails: the environment alone
//! (`ANTHROPIC_API_KEY`) serves the seed's own example; a server without any provider says
//! how to add one; several providers of one model fail over in order, with a cool-down; and
//! Anthropic's Messages API (`/v1/messages`, `x-api-key`) is relayed as is, with errors in
//! Anthropic's shape.

use std::time::Duration;

use reqwest::header;
use serde_json::{Value, json};
use workjet::domain::api_keys::NewKeyOptions;

use crate::{
    backend_tests,
    browser::{Browser, app_with_idp},
    helpers::*,
    upstream::{Fake, Script},
};

const ANTHROPIC_KEY: &str = "sk-ant-provider-secret-0123456789";

/// The seed's example request body, verbatim.
pub const SEED_BODY: &str = r#"{
    "model": "claude-4-sonnet",
    "messages": [
      { "role": "user", "content": "Hello, world!" }
    ]
  }"#;

/// An app configured only by `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` (the fake).
async fn anthropic_from_env(backend: Backend, fake: &Fake, extra: &[(&str, String)]) -> Option<(TestApp, String)> {
    let mut settings = vec![("ANTHROPIC_API_KEY", ANTHROPIC_KEY.to_owned()), ("ANTHROPIC_BASE_URL", format!("http://{}", fake.addr))];
    settings.extend(extra.iter().cloned());
    let app = spawn_app_with(backend, &settings).await?;
    let user = make_user(&app, "ada@example.com").await;
    let (_, key) = make_key(&app, user.id).await;
    Some((app, key))
}

/// Every header value the upstream received, as text.
fn header_text(fake: &Fake) -> String {
    fake.requests()
        .iter()
        .flat_map(|(headers, _)| headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?"))))
        .collect::<Vec<_>>()
        .join("\n")
}

/// (model, provider, status) of every usage row, oldest first.
async fn usage_providers(app: &TestApp, n: usize) -> Vec<(String, Option<String>, i64)> {
    use sea_orm::{ConnectionTrait, Statement};
    let read = || async {
        let backend = app.state.db.get_database_backend();
        app.state
            .db
            .query_all_raw(Statement::from_string(backend, "SELECT model, provider, status FROM usage_events ORDER BY id"))
            .await
            .expect("query")
            .into_iter()
            .map(|r| {
                (
                    r.try_get::<String>("", "model").expect("model"),
                    r.try_get::<Option<String>>("", "provider").expect("provider"),
                    i64::from(r.try_get::<i16>("", "status").expect("status")),
                )
            })
            .collect::<Vec<_>>()
    };
    for _ in 0..50 {
        let rows = read().await;
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    read().await
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// An app whose model `m` is served by `first` then `second` (both OpenAI-compatible),
/// with `cooldown_ms`; `None` is a provider nothing listens for (a closed port).
async fn failover_app(
    backend: Backend,
    first: Option<&Fake>,
    second: Option<&Fake>,
    cooldown_ms: u64,
) -> Option<(TestApp, String, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("workjet.toml");
    let table = |name: &str, fake: Option<&Fake>| match fake {
        Some(fake) => fake.provider_toml(name, "[\"m\"]", None),
        None => format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{}/v1\"\nmodels = [\"m\"]\n",
            closed_port()
        ),
    };
    let toml = format!(
        "[upstream]\nconnect_ms = 500\nfirst_byte_ms = 700\nidle_ms = 1500\ncooldown_ms = {cooldown_ms}\n\n{}\n{}",
        table("primary", first),
        table("fallback", second)
    );
    std::fs::write(&path, toml).expect("write");
    let app = spawn_app_with(backend, &[("WJ_CONFIG", path.display().to_string()), ("WJ_RATE_LIMIT_PER_MINUTE", "10000".into())]).await?;
    let user = make_user(&app, "ada@example.com").await;
    let (_, key) = make_key(&app, user.id).await;
    Some((app, key, dir))
}

async fn post(app: &TestApp, path: &str, key: &str, body: Value) -> reqwest::Response {
    app.post_json(path, key, body).await
}

fn hello(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello, world!"}], "stream": stream})
}

/// An Anthropic Messages request.
fn message(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "Hello, world!"}], "stream": stream})
}

/// An Anthropic-shaped error: (status, error type, message).
async fn anthropic_error(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["type"], "error", "{body}");
    assert!(body["error"].as_object().is_some_and(|e| e.len() == 2), "exactly type and message: {body}");
    (status, body["error"]["type"].as_str().expect("type").to_owned(), body["error"]["message"].as_str().expect("message").to_owned())
}

backend_tests! {
    async fn the_seeds_curl_example_works_with_only_anthropic_api_key_set(backend) {
        let fake = Fake::anthropic().await;
        let (app, key) = anthropic_from_env(backend, &fake, &[]).await.expect("app");
        // The seed's request, byte for byte: its headers and its body.
        let response = app
            .client
            .post(app.url("/v1/chat/completions"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(SEED_BODY)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "claude-4-sonnet");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from the fake.");
        let (headers, sent) = fake.requests().pop().expect("the upstream was called");
        assert_eq!(sent["model"], "claude-sonnet-4-20250514", "the seed's name maps to Claude Sonnet 4's id");
        assert_eq!(headers["x-api-key"], ANTHROPIC_KEY, "the upstream sees the provider's key");
        assert!(!header_text(&fake).contains("wj_live_"), "and never the Workjet key");
        let models: Value = app.client.get(app.url("/v1/models")).bearer_auth(&key).send().await.expect("get").json().await.expect("json");
        let ids: Vec<&str> = models["data"].as_array().expect("data").iter().filter_map(|m| m["id"].as_str()).collect();
        assert!(ids.contains(&"claude-4-sonnet") && ids.contains(&"claude-sonnet-4-5") && ids.contains(&"claude-opus-4-1"), "{ids:?}");
        assert!(models["data"].as_array().expect("data").iter().all(|m| m["owned_by"] == "anthropic"));
        assert!(!ids.iter().any(|m| m.starts_with("gpt-")), "no OpenAI models without OPENAI_API_KEY");
        assert_eq!(usage_providers(&app, 1).await, [("claude-4-sonnet".to_owned(), Some("anthropic".to_owned()), 200)]);
    }

    async fn without_any_provider_the_404_says_how_to_add_one(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        let (status, _, body) = error_of(post(&app, "/v1/chat/completions", &key, hello("claude-4-sonnet", false)).await).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "model_not_found");
        let message = body["error"]["message"].as_str().expect("message");
        for needle in ["no model provider is configured", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "workjet.toml"] {
            assert!(message.contains(needle), "{message}");
        }
        let models: Value = app.client.get(app.url("/v1/models")).bearer_auth(&key).send().await.expect("get").json().await.expect("json");
        assert_eq!(models["data"], json!([]));
        let (status, _, body) = error_of(app.client.get(app.url("/v1/models/claude-4-sonnet")).bearer_auth(&key).send().await.expect("get")).await;
        assert_eq!(status, 404);
        assert!(body["error"]["message"].as_str().expect("message").contains("ANTHROPIC_API_KEY"));
        // With providers, an unknown model keeps the usual message.
        let fake = Fake::anthropic().await;
        let (app, key) = anthropic_from_env(backend, &fake, &[]).await.expect("app");
        let (_, _, body) = error_of(post(&app, "/v1/chat/completions", &key, hello("gpt-9", false)).await).await;
        assert!(!body["error"]["message"].as_str().expect("message").contains("ANTHROPIC_API_KEY"));
    }

    async fn a_failing_first_provider_hands_the_request_to_the_next(backend) {
        let second = Fake::openai().await;
        // Down: nothing listens on the first provider's port.
        let (app, key, _dir) = failover_app(backend, None, Some(&second), 0).await.expect("app");
        for stream in [false, true] {
            let response = post(&app, "/v1/chat/completions", &key, hello("m", stream)).await;
            assert_eq!(response.status(), 200, "down, stream={stream}");
            let text = response.text().await.expect("body");
            assert!(text.contains("Hello from the fake.") || text.contains("part0"), "{text}");
        }
        let rows = usage_providers(&app, 2).await;
        assert_eq!(rows.iter().map(|r| (r.1.clone(), r.2)).collect::<Vec<_>>(), [(Some("fallback".into()), 200), (Some("fallback".into()), 200)], "usage names the provider that answered");

        // Slow (no answer before first_byte_ms), 500, 429: each moves on.
        for (script, what) in [(Script::Hang, "slow"), (Script::Html(500), "500"), (Script::Html(503), "503"), (Script::RateLimited, "429")] {
            let first = Fake::openai().await;
            first.script(script);
            let second = Fake::openai().await;
            let (app, key, _dir) = failover_app(backend, Some(&first), Some(&second), 0).await.expect("app");
            let response = post(&app, "/v1/chat/completions", &key, hello("m", false)).await;
            assert_eq!(response.status(), 200, "{what}");
            assert_eq!(first.requests().len(), 1, "{what}: the first provider was tried");
            assert_eq!(second.requests().len(), 1, "{what}: the second answered");
        }

        // A 400 is the client's fault: relayed, not retried elsewhere.
        let first = Fake::openai().await;
        first.script(Script::BadRequest);
        let second = Fake::openai().await;
        let (app, key, _dir) = failover_app(backend, Some(&first), Some(&second), 0).await.expect("app");
        let (status, _, _) = error_of(post(&app, "/v1/chat/completions", &key, hello("m", false)).await).await;
        assert_eq!(status, 400);
        assert!(second.requests().is_empty(), "a client error does not fail over");
    }

    async fn when_every_provider_fails_the_answer_is_502_and_a_dead_one_cools_down(backend) {
        // Both down: nothing listens on either port.
        let (app, key, _dir) = failover_app(backend, None, None, 0).await.expect("app");
        for stream in [false, true] {
            let (status, _, body) = error_of(post(&app, "/v1/chat/completions", &key, hello("m", stream)).await).await;
            assert_eq!((status, body["error"]["code"].as_str()), (502, Some("upstream_error")), "stream={stream}: {body}");
        }
        let second = Fake::openai().await;
        second.script(Script::Html(502));
        let (app, key, _dir) = failover_app(backend, None, Some(&second), 0).await.expect("app");
        let (status, _, body) = error_of(post(&app, "/v1/chat/completions", &key, hello("m", false)).await).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["error"]["code"], "upstream_error");
        let rows = usage_providers(&app, 1).await;
        assert_eq!((rows[0].1.as_deref(), rows[0].2), (Some("fallback"), 502), "the last provider tried is named");

        // Cool-down: after one failure the first provider is skipped while the second answers.
        let first = Fake::openai().await;
        first.script(Script::Html(500));
        let second = Fake::openai().await;
        let (app, key, _dir) = failover_app(backend, Some(&first), Some(&second), 60_000).await.expect("app");
        for _ in 0..5 {
            assert_eq!(post(&app, "/v1/chat/completions", &key, hello("m", false)).await.status(), 200);
        }
        assert_eq!(first.requests().len(), 1, "a failed provider is skipped during its cool-down");
        assert_eq!(second.requests().len(), 5);
        // …but it is still the last resort when the others fail too.
        second.script(Script::Html(500));
        first.script(Script::Normal { chunks: 3, gap: Duration::from_millis(1) });
        assert_eq!(post(&app, "/v1/chat/completions", &key, hello("m", false)).await.status(), 200);
        assert_eq!(first.requests().len(), 2);
    }

    async fn anthropic_messages_are_relayed_as_is_with_either_key_header(backend) {
        let fake = Fake::anthropic().await;
        let (app, key) = anthropic_from_env(backend, &fake, &[]).await.expect("app");
        // Authorization: Bearer and x-api-key both work.
        let bearer = post(&app, "/v1/messages", &key, message("claude-4-sonnet", false)).await;
        assert_eq!(bearer.status(), 200);
        let body: Value = bearer.json().await.expect("json");
        assert_eq!(body["type"], "message", "Anthropic's own answer, untranslated: {body}");
        assert_eq!(body["content"][0]["text"], "Hello from the fake.");
        let x_api_key = app
            .client
            .post(app.url("/v1/messages"))
            .header("x-api-key", &key)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "some-beta-2025-01-01")
            .json(&message("claude-sonnet-4-20250514", false))
            .send()
            .await
            .expect("request");
        assert_eq!(x_api_key.status(), 200);
        let (headers, sent) = fake.requests().pop().expect("sent");
        assert_eq!(sent["model"], "claude-sonnet-4-20250514");
        assert_eq!(sent["max_tokens"], 64, "the request is passed on as is");
        assert_eq!(headers["x-api-key"], ANTHROPIC_KEY, "the provider's key replaces the client's");
        assert_eq!(headers["anthropic-version"], "2023-06-01");
        assert_eq!(headers["anthropic-beta"], "some-beta-2025-01-01", "the client's betas go along");
        assert!(!header_text(&fake).contains("wj_live_"));

        // Streams: Anthropic's events, as they arrive.
        let stream = post(&app, "/v1/messages", &key, message("claude-4-sonnet", true)).await;
        assert_eq!(stream.status(), 200);
        assert_eq!(stream.headers()[header::CONTENT_TYPE], "text/event-stream");
        let text = stream.text().await.expect("body");
        let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(names.first(), Some(&"message_start"));
        assert_eq!(names.last(), Some(&"message_stop"));
        assert_eq!(names.iter().filter(|n| **n == "content_block_delta").count(), 3);
        assert!(text.contains("\"text\":\"part0 \""), "{text}");
        let rows = usage_providers(&app, 3).await;
        assert!(rows.iter().all(|r| r.1.as_deref() == Some("anthropic") && r.2 == 200), "{rows:?}");
    }

    async fn anthropic_messages_errors_are_anthropic_shaped(backend) {
        let (anthropic, openai) = (Fake::anthropic().await, Fake::openai().await);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("workjet.toml");
        std::fs::write(
            &path,
            format!(
                "{}\n{}",
                anthropic.provider_toml("claude", "[\"claude-4-sonnet\"]", None),
                openai.provider_toml("gpt", "[\"gpt-4o\"]", None)
            ),
        )
        .expect("write");
        let app = spawn_app_with(backend, &[("WJ_CONFIG", path.display().to_string())]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        let limited = NewKeyOptions { rate_limit_per_minute: Some(1), ..Default::default() };
        let (_, limited) = make_key_with(&app, user.id, "limited", limited).await;

        let no_key = app.client.post(app.url("/v1/messages")).json(&message("claude-4-sonnet", false)).send().await.expect("request");
        assert_eq!(anthropic_error(no_key).await.1, "authentication_error");
        let bad_key = app
            .client
            .post(app.url("/v1/messages"))
            .header("x-api-key", "wj_live_000000000000000000000000000000000000")
            .json(&message("claude-4-sonnet", false))
            .send()
            .await
            .expect("request");
        assert_eq!(anthropic_error(bad_key).await.0, 401);
        // Two different keys in the two headers: refused, whichever is valid.
        let two_keys = app
            .client
            .post(app.url("/v1/messages"))
            .bearer_auth(&key)
            .header("x-api-key", &limited)
            .json(&message("claude-4-sonnet", false))
            .send()
            .await
            .expect("request");
        assert_eq!(anthropic_error(two_keys).await.1, "authentication_error");
        assert_eq!(post(&app, "/v1/messages", &limited, message("claude-4-sonnet", false)).await.status(), 200);
        let limited_again = post(&app, "/v1/messages", &limited, message("claude-4-sonnet", false)).await;
        assert!(limited_again.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(anthropic_error(limited_again).await.1, "rate_limit_error");
        let (status, kind, text) = anthropic_error(post(&app, "/v1/messages", &key, message("gpt-4o", false)).await).await;
        assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
        assert!(text.contains("/v1/chat/completions"), "it says where to go instead: {text}");
        assert!(openai.requests().is_empty(), "an OpenAI provider is never sent an Anthropic request");
        let (status, kind, _) = anthropic_error(post(&app, "/v1/messages", &key, message("nope", false)).await).await;
        assert_eq!((status, kind.as_str()), (404, "not_found_error"));
        let (status, kind, _) = anthropic_error(post(&app, "/v1/messages", &key, json!({"messages": []})).await).await;
        assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
        anthropic.script(Script::Html(500));
        let (status, kind, _) = anthropic_error(post(&app, "/v1/messages", &key, message("claude-4-sonnet", false)).await).await;
        assert_eq!((status, kind.as_str()), (502, "api_error"));
        // Chat completions keep OpenAI's shape.
        let (status, _, _) = error_of(post(&app, "/v1/chat/completions", &key, hello("nope", false)).await).await;
        assert_eq!(status, 404);
    }

    async fn the_portal_lists_the_models_or_says_that_none_is_configured(backend) {
        // No provider: the box says so, and how to add one.
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let info: Value = browser.server_fn(&app, "quick_start", "").await.json().await.expect("json");
        assert_eq!(info["models"], json!([]));
        assert!(info["how_to_add_a_provider"].as_str().expect("text").contains("ANTHROPIC_API_KEY"));
        assert_eq!(info["api_base_url"], app.base_url);
        let page = browser.get(&app.url("/settings/api-keys")).await.text().await.expect("page");
        assert!(page.contains("No model provider is configured on this server yet."), "the server-rendered page says so");
        // Signed out, the server function answers 401 and lists nothing.
        let mut stranger = Browser::new();
        let refused = stranger.server_fn(&app, "quick_start", "").await;
        assert_eq!(refused.status(), 401);

        // With ANTHROPIC_API_KEY: the models, and a curl for the first.
        let fake = Fake::anthropic().await;
        let env = [("ANTHROPIC_API_KEY", ANTHROPIC_KEY.to_owned()), ("ANTHROPIC_BASE_URL", format!("http://{}", fake.addr))];
        let (app, _idp) = app_with_idp(backend, &env).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let info: Value = browser.server_fn(&app, "quick_start", "").await.json().await.expect("json");
        let models: Vec<&str> = info["models"].as_array().expect("models").iter().filter_map(Value::as_str).collect();
        assert_eq!(models.first(), Some(&"claude-4-sonnet"), "in the configuration's order: {models:?}");
        let page = browser.get(&app.url("/settings/api-keys")).await.text().await.expect("page");
        assert!(page.contains("/v1/chat/completions") && page.contains(models[0]), "a curl for the first model");
        assert!(!page.contains("No model provider"));
        assert!(!page.contains(ANTHROPIC_KEY), "the provider key never reaches a page");
    }
}
