//! Keys people can live with, through `/v1/keys`: edit (`PATCH`), roll with a grace period,
//! model allow-lists and daily token budgets on inference, filtered and paged lists, and the
//! address and agent of a key's last use. Every field is checked with good and bad input:
//! a refused change changes nothing, and nobody reaches another person's key.

use std::time::Duration;

use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::{backend_tests, helpers::*, upstream::Fake};

const PROVIDER_KEY: &str = "sk-ant-provider-secret-lifecycle";

/// An app whose only provider is the fake Anthropic upstream (from the environment), a user,
/// and that user's all-permissions key (the caller of the tests).
async fn app_with_provider(backend: Backend, fake: &Fake) -> Option<(TestApp, String)> {
    let settings = [("ANTHROPIC_API_KEY", PROVIDER_KEY.to_owned()), ("ANTHROPIC_BASE_URL", format!("http://{}", fake.addr))];
    let app = spawn_app_with(backend, &settings).await?;
    let user = make_user(&app, "ada@example.com").await;
    let (_, key) = make_key(&app, user.id).await;
    Some((app, key))
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /v1/keys` with `body` by `caller`: the created key's object.
async fn create(app: &TestApp, caller: &str, body: Value) -> Value {
    let (status, created) = json_of(app.post_json("/v1/keys", caller, body).await).await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn patch(app: &TestApp, caller: &str, id: &Value, body: Value) -> (u16, Value) {
    json_of(app.call(Method::PATCH, &format!("/v1/keys/{id}"), Some(&bearer(caller)), Some(body)).await).await
}

async fn get_key(app: &TestApp, caller: &str, id: &Value) -> Value {
    let (status, key) = json_of(app.call(Method::GET, &format!("/v1/keys/{id}"), Some(&bearer(caller)), None).await).await;
    assert_eq!(status, 200, "{key}");
    key
}

async fn status_of(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> u16 {
    app.call(method, path, Some(&bearer(key)), body).await.status().as_u16()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello, world!"}]})
}

/// The audit events of `action` on `target`.
async fn audit_events(app: &TestApp, action: &str, target: &str) -> Vec<Option<String>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    use workjet::entities::audit_events;
    audit_events::Entity::find()
        .order_by_asc(audit_events::Column::Id)
        .filter(audit_events::Column::Action.eq(action))
        .filter(audit_events::Column::Target.eq(target))
        .all(&app.state.db)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.detail)
        .collect()
}

backend_tests! {
    async fn an_edit_changes_each_field_within_the_rules_and_a_refused_one_changes_nothing(backend) {
        let fake = Fake::anthropic().await;
        let (app, caller) = app_with_provider(backend, &fake).await.expect("app");
        let in_ten_days = chrono::Utc::now().timestamp() + 10 * 86_400;
        let created = create(&app, &caller, json!({
            "name": "Nightly evals", "permissions": ["inference", "keys:read"], "expires_at": in_ten_days, "rate_limit_per_minute": 100
        })).await;
        let (id, key) = (created["id"].clone(), created["key"].as_str().expect("key").to_owned());
        assert_eq!((created["models"].clone(), created["daily_token_limit"].clone()), (Value::Null, Value::Null));
        // Warm every cache with the key before each change: the next request must see it.
        assert_eq!(status_of(&app, Method::GET, "/v1/keys", &key, None).await, 200);

        // Rename.
        let (status, edited) = patch(&app, &caller, &id, json!({"name": "Nightly evals (staging)"})).await;
        assert_eq!((status, edited["name"].as_str()), (200, Some("Nightly evals (staging)")), "{edited}");

        // Narrow the permissions: keys:read is gone on the very next request.
        let (status, edited) = patch(&app, &caller, &id, json!({"permissions": ["inference"]})).await;
        assert_eq!((status, edited["permissions"].clone()), (200, json!(["inference"])), "{edited}");
        assert_eq!(status_of(&app, Method::GET, "/v1/keys", &key, None).await, 403, "the narrowed key still listed keys");

        // The expiry moves earlier, never later, and is never removed.
        let (status, edited) = patch(&app, &caller, &id, json!({"expires_at": in_ten_days - 86_400})).await;
        assert_eq!((status, edited["expires_at"].as_i64()), (200, Some(in_ten_days - 86_400)), "{edited}");

        // The rate limit moves either way within the caller's grant, effective at once.
        let (status, _) = patch(&app, &caller, &id, json!({"rate_limit_per_minute": 5})).await;
        assert_eq!(status, 200);
        let response = app.call(Method::GET, "/v1/models", Some(&bearer(&key)), None).await;
        assert_eq!(response.headers()["x-ratelimit-limit"], "5", "the new limit applies to the next request");

        // Models and a budget.
        let (status, edited) = patch(&app, &caller, &id, json!({"models": ["claude-4-sonnet", "claude-4-sonnet"], "daily_token_limit": 1000})).await;
        assert_eq!((status, edited["models"].clone(), edited["daily_token_limit"].clone()), (200, json!(["claude-4-sonnet"]), json!(1000)), "{edited}");
        let models: Value = app.call(Method::GET, "/v1/models", Some(&bearer(&key)), None).await.json().await.expect("json");
        assert_eq!(models["data"].as_array().map(|d| d.iter().map(|m| m["id"].clone()).collect::<Vec<_>>()), Some(vec![json!("claude-4-sonnet")]));

        let before = get_key(&app, &caller, &id).await;
        // Each refusal names its field and changes nothing.
        let refused: Vec<(Value, u16, &str, Option<&str>)> = vec![
            (json!({"permissions": ["inference", "keys:write"]}), 403, "forbidden", Some("permissions")),
            (json!({"permissions": "all"}), 403, "forbidden", Some("permissions")),
            (json!({"expires_at": in_ten_days}), 403, "forbidden", Some("expires_at")),
            (json!({"expires_at": null}), 403, "forbidden", Some("expires_at")),
            (json!({"expires_at": 1}), 400, "invalid_expiry", Some("expires_at")),
            (json!({"expires_at": 99_999_999_999i64}), 400, "invalid_expiry", Some("expires_at")),
            (json!({"rate_limit_per_minute": 601}), 403, "forbidden", Some("rate_limit_per_minute")),
            (json!({"rate_limit_per_minute": 0}), 400, "invalid_rate_limit", Some("rate_limit_per_minute")),
            (json!({"daily_token_limit": 0}), 400, "invalid_token_limit", Some("daily_token_limit")),
            (json!({"daily_token_limit": 1_000_000_000_001u64}), 400, "invalid_token_limit", Some("daily_token_limit")),
            (json!({"models": []}), 400, "invalid_models", Some("models")),
            (json!({"models": ["gpt-9"]}), 400, "invalid_models", Some("models")),
            (json!({"models": [""]}), 400, "invalid_models", Some("models")),
            (json!({"name": ""}), 400, "invalid_name", Some("name")),
            (json!({"name": "x".repeat(101)}), 400, "invalid_name", Some("name")),
            (json!({"name": null}), 422, "invalid_request", Some("name")),
            (json!({"permissions": null}), 422, "invalid_request", Some("permissions")),
            (json!({"permissions": ["root"]}), 422, "invalid_request", None),
            (json!({"rate_limit_per_minute": -1}), 422, "invalid_request", None),
            (json!({"models": "claude-4-sonnet"}), 422, "invalid_request", None),
            (json!({"owner": 2}), 422, "invalid_request", None),
            // The whole edit is refused when any field is: the valid name is not applied.
            (json!({"name": "sneaky", "rate_limit_per_minute": 0}), 400, "invalid_rate_limit", Some("rate_limit_per_minute")),
            (json!({"name": "sneaky", "permissions": "all"}), 403, "forbidden", Some("permissions")),
        ];
        for (body, status, code, param) in refused {
            let (got, error) = patch(&app, &caller, &id, body.clone()).await;
            assert_eq!(got, status, "{body} → {error}");
            assert_eq!(error["error"]["code"], code, "{body} → {error}");
            assert_eq!(error["error"]["param"].as_str(), param, "{body} → {error}");
        }
        let not_json = app.client.patch(app.url(&format!("/v1/keys/{id}"))).header(header::AUTHORIZATION, bearer(&caller)).body("{").header(header::CONTENT_TYPE, "application/json").send().await.expect("patch");
        assert_eq!(not_json.status(), 400);
        let no_type = app.client.patch(app.url(&format!("/v1/keys/{id}"))).header(header::AUTHORIZATION, bearer(&caller)).body("{}").send().await.expect("patch");
        assert_eq!(no_type.status(), 415);
        assert_eq!(get_key(&app, &caller, &id).await, before, "a refused edit changed the key");

        // An empty edit changes nothing and records nothing.
        let edits = audit_events(&app, "api_key.edit", &format!("api_key:{id}")).await;
        assert_eq!(patch(&app, &caller, &id, json!({})).await.0, 200);
        assert_eq!(audit_events(&app, "api_key.edit", &format!("api_key:{id}")).await.len(), edits.len());
        // Each edit is audited with the fields it changed (and no secret).
        assert_eq!(edits.len(), 5, "{edits:?}");
        let details: Vec<Value> = edits.iter().map(|d| serde_json::from_str(d.as_deref().expect("detail")).expect("json")).collect();
        assert_eq!(details[1]["changed"], json!(["permissions"]));
        assert_eq!(details[4]["changed"], json!(["models", "daily_token_limit"]));
        assert!(edits.iter().all(|d| !d.as_deref().unwrap_or_default().contains("wj_live_")));

        // Who may edit: keys:write is needed; other people's keys and odd ids are not found.
        let (_, reader) = {
            let reader = create(&app, &caller, json!({"name": "reader", "permissions": ["keys:read"]})).await;
            (reader["id"].clone(), reader["key"].as_str().expect("key").to_owned())
        };
        assert_eq!(patch(&app, &reader, &id, json!({"name": "x"})).await.0, 403);
        let bob = make_user(&app, "bob@example.com").await;
        let (_, bob_key) = make_key(&app, bob.id).await;
        let (status, error) = patch(&app, &bob_key, &id, json!({"name": "mine now"})).await;
        assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
        for odd in ["0", "-1", "abc", "99999999999999999999"] {
            let response = app.call(Method::PATCH, &format!("/v1/keys/{odd}"), Some(&bearer(&caller)), Some(json!({"name": "x"}))).await;
            assert_eq!(response.status(), 404, "{odd}");
        }
        assert_eq!(get_key(&app, &caller, &id).await, before, "bob's and the reader's attempts changed the key");

        // A revoked key is no longer edited.
        assert_eq!(status_of(&app, Method::DELETE, &format!("/v1/keys/{id}"), &caller, None).await, 200);
        let (status, error) = patch(&app, &caller, &id, json!({"name": "again"})).await;
        assert_eq!((status, error["error"]["code"].as_str()), (409, Some("key_not_active")), "{error}");
    }

    async fn a_key_edits_and_creates_only_within_its_own_models_and_budget(backend) {
        let fake = Fake::anthropic().await;
        let (app, caller) = app_with_provider(backend, &fake).await.expect("app");
        let limited = create(&app, &caller, json!({
            "name": "limited writer", "permissions": ["keys:write", "keys:read"], "models": ["claude-4-sonnet", "claude-4-opus"], "daily_token_limit": 500
        })).await;
        let writer = limited["key"].as_str().expect("key").to_owned();
        // Omitted: inherited. Narrower: fine. Wider: 403 naming the field, nothing created.
        let child = create(&app, &writer, json!({"name": "child", "permissions": ["keys:read"]})).await;
        assert_eq!((child["models"].clone(), child["daily_token_limit"].clone()), (json!(["claude-4-sonnet", "claude-4-opus"]), json!(500)));
        let narrower = create(&app, &writer, json!({"name": "narrower", "permissions": [], "models": ["claude-4-opus"], "daily_token_limit": 10})).await;
        assert_eq!(narrower["models"], json!(["claude-4-opus"]));
        let keys_before = count_rows(&app, "api_keys").await;
        for (body, param) in [
            (json!({"name": "wider", "models": ["claude-4-sonnet", "claude-opus-4-1"]}), "models"),
            (json!({"name": "wider", "daily_token_limit": 501}), "daily_token_limit"),
        ] {
            let (status, error) = json_of(app.post_json("/v1/keys", &writer, body.clone()).await).await;
            assert_eq!((status, error["error"]["param"].as_str()), (403, Some(param)), "{body} → {error}");
        }
        assert_eq!(count_rows(&app, "api_keys").await, keys_before);
        // Out-of-range guardrails on create: 400 (or 422 for the wrong type), naming the field.
        for (body, status, param) in [
            (json!({"name": "bad", "models": []}), 400, Some("models")),
            (json!({"name": "bad", "models": ["no-such-model"]}), 400, Some("models")),
            (json!({"name": "bad", "models": vec!["claude-4-sonnet"; 65]}), 400, Some("models")),
            (json!({"name": "bad", "daily_token_limit": 0}), 400, Some("daily_token_limit")),
            (json!({"name": "bad", "daily_token_limit": -5}), 422, None),
            (json!({"name": "bad", "models": [1]}), 422, None),
        ] {
            let (got, error) = json_of(app.post_json("/v1/keys", &caller, body.clone()).await).await;
            assert_eq!((got, error["error"]["param"].as_str()), (status, param), "{body} → {error}");
        }
        assert_eq!(count_rows(&app, "api_keys").await, keys_before);
        // Editing the child: models and budget may move within the writer's grant only, and
        // clearing them (every model, no budget) is wider than the writer has.
        let id = child["id"].clone();
        for (body, param) in [
            (json!({"models": null}), "models"),
            (json!({"models": ["claude-opus-4-1"]}), "models"),
            (json!({"daily_token_limit": null}), "daily_token_limit"),
            (json!({"daily_token_limit": 501}), "daily_token_limit"),
        ] {
            let (status, error) = patch(&app, &writer, &id, body.clone()).await;
            assert_eq!((status, error["error"]["param"].as_str()), (403, Some(param)), "{body} → {error}");
        }
        let (status, edited) = patch(&app, &writer, &id, json!({"models": ["claude-4-opus"], "daily_token_limit": 499})).await;
        assert_eq!((status, edited["models"].clone(), edited["daily_token_limit"].clone()), (200, json!(["claude-4-opus"]), json!(499)));
        // The writer may not widen its own child's models back beyond its grant, but the
        // person (an all-permissions key) may clear them.
        let (status, edited) = patch(&app, &caller, &id, json!({"models": null, "daily_token_limit": null})).await;
        assert_eq!((status, edited["models"].clone(), edited["daily_token_limit"].clone()), (200, Value::Null, Value::Null));
    }

    async fn a_rolled_key_works_through_its_grace_then_is_refused_and_the_new_one_keeps_its_settings(backend) {
        let fake = Fake::anthropic().await;
        let (app, caller) = app_with_provider(backend, &fake).await.expect("app");
        let old = create(&app, &caller, json!({
            "name": "CI/CD Pipeline", "permissions": ["inference"], "rate_limit_per_minute": 50, "models": ["claude-4-sonnet"], "daily_token_limit": 100000
        })).await;
        let (id, old_key) = (old["id"].clone(), old["key"].as_str().expect("key").to_owned());
        for _ in 0..2 {
            assert_eq!(status_of(&app, Method::GET, "/v1/models", &old_key, None).await, 200, "warm the cache");
        }
        let rolled_at = chrono::Utc::now().timestamp();
        let response = app.post_json(&format!("/v1/keys/{id}/roll"), &caller, json!({"expire_old_in_seconds": 3})).await;
        let (status, rolled) = json_of(response).await;
        assert_eq!(status, 201, "{rolled}");
        assert_eq!(rolled["replaces"], id);
        let new_key = rolled["key"].as_str().expect("the new key, once").to_owned();
        assert!(new_key.starts_with("wj_live_") && new_key != old_key);
        for field in ["name", "permissions", "rate_limit_per_minute", "models", "daily_token_limit", "expires_at"] {
            assert_eq!(rolled[field], old[field], "the new key's {field}");
        }
        assert_ne!(rolled["id"], id);
        // The old key works until its grace ends, and says who replaced it.
        let old_now = get_key(&app, &caller, &id).await;
        assert_eq!(old_now["replaced_by"], rolled["id"]);
        let expires = old_now["expires_at"].as_i64().expect("an expiry now");
        assert!((rolled_at + 2..=rolled_at + 4).contains(&expires), "{expires} vs {rolled_at}");
        assert_eq!(status_of(&app, Method::GET, "/v1/models", &old_key, None).await, 200, "the old key still works");
        // Its grace cannot be stretched by an edit.
        let (status, error) = patch(&app, &caller, &id, json!({"expires_at": rolled_at + 3600})).await;
        assert_eq!((status, error["error"]["param"].as_str()), (403, Some("expires_at")), "{error}");
        assert_eq!(status_of(&app, Method::GET, "/v1/models", &new_key, None).await, 200);
        // Rolled once: roll the replacement instead.
        let (status, error) = json_of(app.post_json(&format!("/v1/keys/{id}/roll"), &caller, json!({})).await).await;
        assert_eq!((status, error["error"]["code"].as_str()), (409, Some("key_not_active")), "{error}");
        let refused = eventually(Duration::from_secs(10), || async {
            status_of(&app, Method::GET, "/v1/models", &old_key, None).await == 401
        })
        .await;
        assert!(refused, "the old key still worked after its grace");
        assert!(chrono::Utc::now().timestamp() >= expires, "refused before its grace ended");
        assert_eq!(status_of(&app, Method::GET, "/v1/models", &new_key, None).await, 200);
        let (status, error) = json_of(app.post_json(&format!("/v1/keys/{id}/roll"), &caller, json!({})).await).await;
        assert_eq!((status, error["error"]["code"].as_str()), (409, Some("key_not_active")));

        // Rolled with no grace: refused on the very next request, though cached.
        let second = rolled["id"].clone();
        for _ in 0..2 {
            assert_eq!(status_of(&app, Method::GET, "/v1/models", &new_key, None).await, 200);
        }
        let (status, third) = json_of(app.post_json(&format!("/v1/keys/{second}/roll"), &caller, json!({"expire_old_in_seconds": 0})).await).await;
        assert_eq!(status, 201);
        assert_eq!(status_of(&app, Method::GET, "/v1/models", &new_key, None).await, 401, "a key rolled with no grace still worked");
        let newest = third["key"].as_str().expect("key").to_owned();
        assert_eq!(status_of(&app, Method::GET, "/v1/models", &newest, None).await, 200);

        // No body: a day's grace. Bad grace values are refused, naming the field.
        let spare = create(&app, &caller, json!({"name": "spare"})).await;
        let spare_id = spare["id"].clone();
        for (body, status) in [(json!({"expire_old_in_seconds": 604_801}), 400), (json!({"expire_old_in_seconds": -1}), 422), (json!({"grace": 5}), 422)] {
            let (got, error) = json_of(app.post_json(&format!("/v1/keys/{spare_id}/roll"), &caller, body.clone()).await).await;
            assert_eq!(got, status, "{body} → {error}");
        }
        assert_eq!(get_key(&app, &caller, &spare_id).await["replaced_by"], Value::Null, "a refused roll rolled");
        let bare = app.client.post(app.url(&format!("/v1/keys/{spare_id}/roll"))).header(header::AUTHORIZATION, bearer(&caller)).send().await.expect("roll");
        assert_eq!(bare.status(), 201);
        let day = get_key(&app, &caller, &spare_id).await["expires_at"].as_i64().expect("expiry");
        assert!((day - chrono::Utc::now().timestamp() - 86_400).abs() < 10, "the default grace is a day");

        // Rolling needs keys:write and the caller's grant covers the new key; other people's
        // keys are not found.
        let narrow = create(&app, &caller, json!({"name": "narrow writer", "permissions": ["keys:write"]})).await;
        let wide = create(&app, &caller, json!({"name": "wide"})).await;
        let (status, error) = json_of(app.post_json(&format!("/v1/keys/{}/roll", wide["id"]), narrow["key"].as_str().expect("key"), json!({})).await).await;
        assert_eq!((status, error["error"]["param"].as_str()), (403, Some("permissions")), "{error}");
        let bob = make_user(&app, "bob@example.com").await;
        let (_, bob_key) = make_key(&app, bob.id).await;
        assert_eq!(json_of(app.post_json(&format!("/v1/keys/{}/roll", wide["id"]), &bob_key, json!({})).await).await.0, 404);
        assert_eq!(get_key(&app, &caller, &wide["id"]).await["replaced_by"], Value::Null);
        // Audited: the roll on the old key, the creation of the new one (never the key).
        let rolls = audit_events(&app, "api_key.roll", &format!("api_key:{id}")).await;
        assert_eq!(rolls.len(), 1);
        let detail: Value = serde_json::from_str(rolls[0].as_deref().expect("detail")).expect("json");
        assert_eq!((detail["replaced_by"].clone(), detail["expire_old_in_seconds"].clone()), (rolled["id"].clone(), json!(3)));
    }

    async fn a_model_allow_list_and_a_daily_token_budget_guard_inference(backend) {
        let fake = Fake::anthropic().await;
        let (app, caller) = app_with_provider(backend, &fake).await.expect("app");
        // Each fake completion costs 11 + 7 = 18 tokens.
        let created = create(&app, &caller, json!({"name": "budgeted", "models": ["claude-4-sonnet"], "daily_token_limit": 30})).await;
        let (id, key) = (created["id"].clone(), created["key"].as_str().expect("key").to_owned());

        // Only its models are listed and served; another is refused, naming it, never sent.
        let models: Value = app.call(Method::GET, "/v1/models", Some(&bearer(&key)), None).await.json().await.expect("json");
        assert_eq!(models["data"].as_array().expect("data").len(), 1, "{models}");
        assert_eq!(status_of(&app, Method::GET, "/v1/models/claude-4-sonnet", &key, None).await, 200);
        assert_eq!(status_of(&app, Method::GET, "/v1/models/claude-4-opus", &key, None).await, 403);
        let (status, error) = json_of(app.post_json("/v1/chat/completions", &key, chat("claude-4-opus")).await).await;
        assert_eq!((status, error["error"]["code"].as_str(), error["error"]["param"].as_str()), (403, Some("forbidden"), Some("model")));
        assert!(error["error"]["message"].as_str().expect("message").contains("claude-4-opus"), "{error}");
        let anthropic = app.client.post(app.url("/v1/messages")).header("x-api-key", &key).header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "claude-4-opus", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})).send().await.expect("messages");
        assert_eq!(anthropic.status(), 403);
        assert_eq!(anthropic.json::<Value>().await.expect("json")["error"]["type"], "permission_error");
        assert!(fake.requests().is_empty(), "a refused model reached the provider");
        // Naming the model twice (the allowed one last, where this server reads it; the other
        // first, where some providers' parsers read it) is refused at either door, never sent.
        for (path, auth, body) in [
            ("/v1/chat/completions", "authorization", r#"{"model":"claude-4-opus","messages":[{"role":"user","content":"hi"}],"model":"claude-4-sonnet"}"#),
            ("/v1/messages", "x-api-key", r#"{"model":"claude-4-opus","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"model":"claude-4-sonnet"}"#),
        ] {
            let value = if auth == "authorization" { bearer(&key) } else { key.clone() };
            let response = app.client.post(app.url(path)).header(auth, value).header("anthropic-version", "2023-06-01")
                .header(header::CONTENT_TYPE, "application/json").body(body).send().await.expect("send");
            assert_eq!(response.status(), 400, "{path}");
            let error: Value = response.json().await.expect("json");
            assert!(error["error"]["message"].as_str().expect("message").contains("names a key twice"), "{path}: {error}");
        }
        assert!(fake.requests().is_empty(), "a request naming its model twice reached the provider");

        // Under the budget: served. The request that crosses it finishes; the next is refused.
        assert_eq!(json_of(app.post_json("/v1/chat/completions", &key, chat("claude-4-sonnet")).await).await.0, 200);
        assert_eq!(app.state.budgets.used_today(id.as_i64().expect("id")).await.expect("used"), 18);
        assert_eq!(json_of(app.post_json("/v1/chat/completions", &key, chat("claude-4-sonnet")).await).await.0, 200, "18 < 30: starts, ends at 36");
        let response = app.post_json("/v1/chat/completions", &key, chat("claude-4-sonnet")).await;
        let (status, headers, error) = error_of(response).await;
        assert_eq!(status, 429, "{error}");
        assert_eq!((error["error"]["type"].as_str(), error["error"]["code"].as_str()), (Some("insufficient_quota"), Some("quota_exceeded")), "{error}");
        assert_eq!(headers["x-should-retry"], "false");
        let retry_after: u64 = headers[header::RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
        let until_midnight = 86_400 - (chrono::Utc::now().timestamp() % 86_400) as u64;
        assert!(retry_after >= 1 && retry_after.abs_diff(until_midnight) <= 2, "Retry-After {retry_after} vs midnight in {until_midnight}");
        assert_eq!(fake.requests().len(), 2, "the refused request reached the provider");
        // Streams count too (when they end), and the Anthropic door is refused alike.
        let messages = app.client.post(app.url("/v1/messages")).header("x-api-key", &key).header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "claude-4-sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})).send().await.expect("messages");
        assert_eq!(messages.status(), 429);
        assert_eq!(messages.json::<Value>().await.expect("json")["error"]["type"], "rate_limit_error");

        // Raising the budget takes effect on the next request; a stream is counted when it ends.
        assert_eq!(patch(&app, &caller, &id, json!({"daily_token_limit": 1000})).await.0, 200);
        let stream = app.post_json("/v1/chat/completions", &key, json!({"model": "claude-4-sonnet", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(stream.status(), 200);
        assert!(stream.text().await.expect("stream").contains("[DONE]"));
        let counted = eventually(Duration::from_secs(5), || async {
            app.state.budgets.used_today(id.as_i64().expect("id")).await.expect("used") == 54
        })
        .await;
        assert!(counted, "the stream's tokens were not counted: {}", app.state.budgets.used_today(id.as_i64().expect("id")).await.expect("used"));

        // A key without guardrails sees every model and is never counted.
        let models: Value = app.call(Method::GET, "/v1/models", Some(&bearer(&caller)), None).await.json().await.expect("json");
        assert!(models["data"].as_array().expect("data").len() > 1);
        assert_eq!(count_rows(&app, "api_key_daily_tokens").await, 1, "only the budgeted key is counted");
    }

    async fn lists_filter_by_state_and_name_and_page_with_a_cursor(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, caller) = make_key(&app, user.id).await;
        for i in 0..60 {
            let name = if i % 10 == 0 { format!("CI runner {i}") } else { format!("laptop {i}") };
            create(&app, &caller, json!({"name": name})).await;
        }
        create(&app, &caller, json!({"name": "100%_literal"})).await;
        let revoked = create(&app, &caller, json!({"name": "old ci"})).await;
        assert_eq!(status_of(&app, Method::DELETE, &format!("/v1/keys/{}", revoked["id"]), &caller, None).await, 200);
        let expired = create(&app, &caller, json!({"name": "expired one"})).await;
        {
            use sea_orm::{ConnectionTrait, Statement};
            let backend = app.state.db.get_database_backend();
            let sql = format!("UPDATE api_keys SET expires_at = created_at WHERE id = {}", expired["id"]);
            app.state.db.execute_raw(Statement::from_string(backend, sql)).await.expect("expire");
        }
        let list = |query: &'static str| {
            let (app, caller) = (&app, caller.clone());
            async move { json_of(app.call(Method::GET, &format!("/v1/keys{query}"), Some(&bearer(&caller)), None).await).await }
        };
        let names = |page: &Value| page["data"].as_array().expect("data").iter().map(|k| k["name"].as_str().expect("name").to_owned()).collect::<Vec<_>>();

        let (_, all) = list("").await;
        assert_eq!((all["data"].as_array().expect("data").len(), all["has_more"].clone()), (64, json!(false)), "63 made + the caller");
        let (_, revoked_only) = list("?status=revoked").await;
        assert_eq!(names(&revoked_only), ["old ci"]);
        let (_, expired_only) = list("?status=expired").await;
        assert_eq!(names(&expired_only), ["expired one"]);
        assert_eq!(expired_only["data"][0]["status"], "expired");
        let (_, active) = list("?status=active&limit=100").await;
        assert_eq!(active["data"].as_array().expect("data").len(), 62);
        let (_, ci) = list("?search=ci").await;
        assert_eq!(names(&ci), ["old ci", "CI runner 50", "CI runner 40", "CI runner 30", "CI runner 20", "CI runner 10", "CI runner 0"], "any case, newest first");
        let (_, active_ci) = list("?search=CI&status=active").await;
        assert_eq!(active_ci["data"].as_array().expect("data").len(), 6);
        let (_, literal) = list("?search=%25_").await;
        assert_eq!(names(&literal), ["100%_literal"], "% and _ are literal");
        // Pages of 25 through a cursor: every key once, newest first.
        let mut seen = Vec::new();
        let mut after: Option<i64> = None;
        loop {
            let path = match after { Some(id) => format!("/v1/keys?limit=25&after={id}"), None => "/v1/keys?limit=25".to_owned() };
            let (status, page) = json_of(app.call(Method::GET, &path, Some(&bearer(&caller)), None).await).await;
            assert_eq!(status, 200);
            seen.extend(page["data"].as_array().expect("data").iter().map(|k| k["id"].as_i64().expect("id")));
            if page["has_more"] != json!(true) {
                break;
            }
            after = page["last_id"].as_i64();
        }
        assert_eq!(seen.len(), 64);
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats");
        for (query, param) in [("?status=gone", "status"), ("?limit=0", "limit"), ("?limit=101", "limit"), ("?limit=x", "limit"), ("?after=-3", "after"), ("?after=x", "after")] {
            let (status, error) = list(query).await;
            assert_eq!((status, error["error"]["param"].as_str()), (400, Some(param)), "{query} → {error}");
        }
        // Another person sees none of these.
        let bob = make_user(&app, "bob@example.com").await;
        let (_, bob_key) = make_key(&app, bob.id).await;
        let (_, bobs) = json_of(app.call(Method::GET, "/v1/keys?search=ci", Some(&bearer(&bob_key)), None).await).await;
        assert_eq!(bobs["data"], json!([]));
    }

    async fn a_key_remembers_the_address_and_agent_of_its_last_use(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (id, key) = make_key(&app, user.id).await;
        // Read through another key of the same person: a read with `key` would be its last use.
        let (_, reader) = make_key(&app, user.id).await;
        for agent in ["first-agent/1.0", "OpenAI/Python 2.8.1"] {
            let response = app.client.get(app.url("/v1/models")).header(header::AUTHORIZATION, bearer(&key)).header(header::USER_AGENT, agent).send().await.expect("models");
            assert_eq!(response.status(), 200);
        }
        let shown = get_key(&app, &reader, &json!(id)).await;
        assert_eq!((shown["last_used_ip"].as_str(), shown["last_used_user_agent"].as_str()), (Some("127.0.0.1"), Some("OpenAI/Python 2.8.1")), "{shown}");
        // Written to the database by the periodic flush, and still there after it.
        app.state.keys.flush_last_used().await.expect("flush");
        let stored = app.state.keys.get(user.id, id).await.expect("get").expect("key");
        assert_eq!((stored.last_used_ip.as_deref(), stored.last_used_user_agent.as_deref()), (Some("127.0.0.1"), Some("OpenAI/Python 2.8.1")));
        // Only its owner sees it.
        let bob = make_user(&app, "bob@example.com").await;
        let (_, bob_key) = make_key(&app, bob.id).await;
        assert_eq!(status_of(&app, Method::GET, &format!("/v1/keys/{id}"), &bob_key, None).await, 404);
    }
}
