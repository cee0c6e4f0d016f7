//! The `/v1` API: authentication, permissions, errors, limits, CORS — every endpoint and
//! every status it can answer.

use std::time::Duration;

use reqwest::{Method, header};
use serde_json::{Value, json};
use workjet::{
    domain::api_keys::NewKeyOptions,
    permissions::{Permission, Permissions},
};

use crate::{
    backend_tests,
    browser::{Browser, app_with_idp},
    helpers::*,
};

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

async fn call(app: &TestApp, method: Method, path: &str, auth: Option<&str>, body: Option<Value>) -> reqwest::Response {
    app.call(method, path, auth, body).await
}

/// A well-formed key (valid checksum) that was never issued.
fn unknown_key() -> String {
    workjet::domain::api_keys::PlainApiKey::generate().into_secret()
}

backend_tests! {
    async fn every_endpoint_works_with_a_key_that_has_all_permissions(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (key_id, key) = make_key(&app, user.id).await;
        let auth = bearer(&key);

        let me = call(&app, Method::GET, "/v1/me", Some(&auth), None).await;
        assert_eq!(me.status(), 200);
        assert!(me.headers().contains_key("x-request-id"));
        assert_eq!(me.headers()["cache-control"], "no-store");
        let me: Value = me.json().await.expect("json");
        assert_eq!(me["user"]["email"], "ada@example.com");
        assert_eq!(me["auth_method"], "api_key");
        assert_eq!(me["key"]["id"], key_id);
        assert_eq!(me["permissions"], "all");

        let models = call(&app, Method::GET, "/v1/models", Some(&auth), None).await;
        assert_eq!(models.status(), 200);
        assert_eq!(models.json::<Value>().await.expect("json"), json!({"object": "list", "data": []}));

        let list: Value = call(&app, Method::GET, "/v1/keys", Some(&auth), None).await.json().await.expect("json");
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0]["id"], key_id);
        assert!(list.to_string().find(&key[8..]).is_none(), "never the key itself");

        let created = call(&app, Method::POST, "/v1/keys", Some(&auth), Some(json!({"name": "Nightly evals", "permissions": ["inference"]}))).await;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.expect("json");
        let new_key = created["key"].as_str().expect("raw key once").to_owned();
        assert!(workjet::domain::api_keys::format::validate(&new_key).is_ok());
        assert_eq!(created["permissions"], json!(["inference"]));
        assert_eq!(created["status"], "active");
        let new_id = created["id"].as_i64().expect("id");

        let one: Value = call(&app, Method::GET, &format!("/v1/keys/{new_id}"), Some(&auth), None).await.json().await.expect("json");
        assert_eq!(one["name"], "Nightly evals");
        assert!(one.get("key").is_none(), "the raw key is never shown again");

        let revoked = call(&app, Method::DELETE, &format!("/v1/keys/{new_id}"), Some(&auth), None).await;
        assert_eq!(revoked.status(), 200);
        assert_eq!(revoked.json::<Value>().await.expect("json")["status"], "revoked");
        let again = call(&app, Method::DELETE, &format!("/v1/keys/{new_id}"), Some(&auth), None).await;
        assert_eq!(again.status(), 200, "revoking twice is idempotent");
        assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&new_key)), None).await.status(), 401);

        let spec = call(&app, Method::GET, "/v1/openapi.json", Some(&auth), None).await;
        assert_eq!(spec.status(), 200);
        let spec: Value = spec.json().await.expect("json");
        assert!(spec["openapi"].as_str().expect("version").starts_with("3.1"));
        for path in ["/v1/me", "/v1/models", "/v1/chat/completions", "/v1/keys", "/v1/keys/{id}"] {
            assert!(spec["paths"].get(path).is_some(), "{path} documented");
        }
        assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        assert!(spec["components"]["schemas"].get("ErrorBody").is_some());
    }

    async fn missing_and_malformed_credentials_are_401_in_the_same_shape(backend) {
        let app = spawn_app_with(backend, &[("WJ_AUTH_FAILURES_PER_MINUTE", "1000".into())]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        let mut flipped = key.clone().into_bytes();
        flipped[20] = if flipped[20] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("missing", vec![]),
            ("empty", vec!["".into()]),
            ("bearer alone", vec!["Bearer".into()]),
            ("bearer and spaces", vec!["Bearer    ".into()]),
            ("basic scheme", vec!["Basic dXNlcjpwYXNz".into()]),
            ("token scheme", vec![format!("Token {key}")]),
            ("key without scheme", vec![key.clone()]),
            ("key plus junk", vec![format!("Bearer {key} junk")]),
            ("missing a character", vec![bearer(&key[..key.len() - 1])]),
            ("one character flipped", vec![bearer(&flipped)]),
            ("wrong prefix", vec![bearer(&key.replacen("wj_live_", "wj_test_", 1))]),
            ("openai prefix", vec![bearer(&format!("sk-{}", &key[8..]))]),
            ("prefix only", vec![bearer("wj_live_")]),
            ("8 KB key", vec![bearer(&format!("wj_live_{}", "a".repeat(8192)))]),
            ("unknown but well-formed", vec![bearer(&unknown_key())]),
            ("two headers", vec![bearer(&key), bearer(&key)]),
            ("two headers, one bad", vec![bearer("nope"), bearer(&key)]),
        ];
        for (name, headers) in cases {
            let mut request = app.client.get(app.url("/v1/me"));
            for h in &headers {
                request = request.header(header::AUTHORIZATION, h);
            }
            let (status, response_headers, body) = error_of(request.send().await.expect("request")).await;
            assert_eq!(status, 401, "{name}");
            assert_eq!(response_headers[header::WWW_AUTHENTICATE], "Bearer realm=\"workjet\"", "{name}");
            assert_eq!(body["error"]["code"], "unauthorized", "{name}");
            assert_eq!(body["error"]["type"], "authentication_error", "{name}");
            // Only what was counted against the address's failure budget says where it stands;
            // the rest cost nothing and spend nothing.
            let counted = name == "unknown but well-formed";
            assert_eq!(response_headers.contains_key("x-ratelimit-limit"), counted, "{name}: rate-limit headers only when counted");
        }
        // Non-ASCII bytes in the header value.
        let raw = reqwest::header::HeaderValue::from_bytes(b"Bearer wj_live_\xc3\xa9").expect("opaque header");
        let response = app.client.get(app.url("/v1/me")).header(header::AUTHORIZATION, raw).send().await.expect("request");
        assert_eq!(response.status(), 401);
        // Lowercase scheme and surrounding whitespace are fine.
        for ok in [format!("bearer {key}"), format!("  Bearer   {key}  "), format!("BEARER\t{key}")] {
            assert_eq!(call(&app, Method::GET, "/v1/me", Some(&ok), None).await.status(), 200, "{ok:?}");
        }
    }

    async fn unknown_revoked_and_expired_keys_answer_identically(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (revoked_id, revoked) = make_key(&app, user.id).await;
        app.state.keys.revoke(user.id, revoked_id, &Default::default()).await.expect("revoke");
        let expires = chrono::Utc::now() + chrono::Duration::seconds(1);
        let (_, expiring) = make_key_with(&app, user.id, "short", NewKeyOptions { expires_at: Some(expires), ..Default::default() }).await;
        assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&expiring)), None).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut bodies = Vec::new();
        for key in [unknown_key(), revoked, expiring] {
            let (status, _, body) = error_of(call(&app, Method::GET, "/v1/me", Some(&bearer(&key)), None).await).await;
            assert_eq!(status, 401);
            bodies.push(body);
        }
        assert_eq!(bodies[0], bodies[1], "unknown and revoked keys are indistinguishable");
        assert_eq!(bodies[1], bodies[2], "revoked and expired keys are indistinguishable");
    }

    async fn a_disabled_users_keys_stop_working(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&key)), None).await.status(), 200);
        app.state.users.disable(user.id, &app.state.sessions, &app.state.generations).await.expect("disable");
        assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&key)), None).await.status(), 401);
    }

    async fn restricted_keys_get_403_outside_their_permissions(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let restricted = |perms: Vec<Permission>| NewKeyOptions { permissions: Some(Permissions::restricted(perms)), ..Default::default() };
        let (_, inference) = make_key_with(&app, user.id, "inference", restricted(vec![Permission::Inference])).await;
        let (_, reader) = make_key_with(&app, user.id, "reader", restricted(vec![Permission::KeysRead])).await;
        let (_, writer) = make_key_with(&app, user.id, "writer", restricted(vec![Permission::KeysWrite])).await;
        let cases: Vec<(&str, Method, &str, Option<Value>)> = vec![
            (&inference, Method::GET, "/v1/keys", None),
            (&inference, Method::POST, "/v1/keys", Some(json!({"name": "x"}))),
            (&inference, Method::DELETE, "/v1/keys/1", None),
            (&reader, Method::GET, "/v1/models", None),
            (&reader, Method::POST, "/v1/chat/completions", Some(json!({"model": "m", "messages": []}))),
            (&reader, Method::POST, "/v1/keys", Some(json!({"name": "x"}))),
            (&writer, Method::GET, "/v1/keys", None),
            (&writer, Method::GET, "/v1/models", None),
        ];
        for (key, method, path, body) in cases {
            let (status, _, error) = error_of(call(&app, method.clone(), path, Some(&bearer(key)), body).await).await;
            assert_eq!(status, 403, "{method} {path}");
            assert_eq!(error["error"]["code"], "forbidden");
            assert_eq!(error["error"]["type"], "permission_error");
        }
        assert_eq!(call(&app, Method::GET, "/v1/models", Some(&bearer(&inference)), None).await.status(), 200);
        assert_eq!(call(&app, Method::GET, "/v1/keys", Some(&bearer(&reader)), None).await.status(), 200);
        // /v1/me needs no permission.
        assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&writer)), None).await.status(), 200);
        // A key cannot mint a key with more permissions than it has.
        let (status, _, _) = error_of(call(&app, Method::POST, "/v1/keys", Some(&bearer(&writer)), Some(json!({"name": "escalate", "permissions": "all"}))).await).await;
        assert_eq!(status, 403, "'all' is more than keys:write");
        let inherited = call(&app, Method::POST, "/v1/keys", Some(&bearer(&writer)), Some(json!({"name": "inherits"}))).await;
        assert_eq!(inherited.status(), 201, "without permissions, a new key gets its creator's");
        assert_eq!(inherited.json::<Value>().await.expect("json")["permissions"], json!(["keys:write"]));
        let (status, _, _) = error_of(call(&app, Method::POST, "/v1/keys", Some(&bearer(&writer)), Some(json!({"name": "escalate", "permissions": ["inference"]}))).await).await;
        assert_eq!(status, 403);
        let ok = call(&app, Method::POST, "/v1/keys", Some(&bearer(&writer)), Some(json!({"name": "same", "permissions": ["keys:write"]}))).await;
        assert_eq!(ok.status(), 201);
        let created: Value = ok.json().await.expect("json");
        assert_eq!(created["permissions"], json!(["keys:write"]));
    }

    async fn another_users_key_is_not_found_and_keeps_working(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let alice = make_user(&app, "alice@example.com").await;
        let bob = make_user(&app, "bob@example.com").await;
        let (_, alice_key) = make_key(&app, alice.id).await;
        let (bob_key_id, bob_key) = make_key(&app, bob.id).await;
        for method in [Method::GET, Method::DELETE] {
            let (status, _, body) = error_of(call(&app, method.clone(), &format!("/v1/keys/{bob_key_id}"), Some(&bearer(&alice_key)), None).await).await;
            assert_eq!(status, 404, "{method}");
            assert_eq!(body["error"]["code"], "not_found");
        }
        let list: Value = call(&app, Method::GET, "/v1/keys", Some(&bearer(&alice_key)), None).await.json().await.expect("json");
        assert!(list["data"].as_array().expect("array").iter().all(|k| k["id"] != bob_key_id));
        assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&bob_key)), None).await.status(), 200, "bob's key still works");
        let missing = i64::MAX.to_string();
        for id in ["999999", missing.as_str(), "99999999999999999999999", "-1", "0", "abc", "1.5", "%2e%2e"] {
            let (status, _, _) = error_of(call(&app, Method::DELETE, &format!("/v1/keys/{id}"), Some(&bearer(&alice_key)), None).await).await;
            assert_eq!(status, 404, "id {id}");
        }
    }

    async fn bad_bodies_answer_400_413_415_422(backend) {
        let app = spawn_app_with(backend, &[("WJ_MAX_BODY_BYTES", "4096".into())]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        let post = |content_type: &'static str, body: Vec<u8>| {
            app.client.post(app.url("/v1/keys")).header(header::AUTHORIZATION, bearer(&key)).header(header::CONTENT_TYPE, content_type).body(body).send()
        };
        let cases: Vec<(&str, &'static str, Vec<u8>, u16)> = vec![
            ("invalid JSON", "application/json", b"{\"name\":".to_vec(), 400),
            ("empty body", "application/json", vec![], 400),
            ("array at top level", "application/json", b"[]".to_vec(), 422),
            ("wrong type", "application/json", br#"{"name": 5}"#.to_vec(), 422),
            ("unknown field", "application/json", br#"{"name": "x", "user_id": 2}"#.to_vec(), 422),
            ("bad permissions", "application/json", br#"{"name": "x", "permissions": ["admin"]}"#.to_vec(), 422),
            ("text/plain", "text/plain", br#"{"name": "x"}"#.to_vec(), 415),
            ("form", "application/x-www-form-urlencoded", b"name=x".to_vec(), 415),
            ("too large", "application/json", format!("{{\"name\": \"{}\"}}", "x".repeat(5000)).into_bytes(), 413),
            ("empty name", "application/json", br#"{"name": "   "}"#.to_vec(), 400),
            ("long name", "application/json", format!("{{\"name\": \"{}\"}}", "x".repeat(101)).into_bytes(), 400),
            ("control characters", "application/json", br#"{"name": "a\u0000b"}"#.to_vec(), 400),
            ("past expiry", "application/json", br#"{"name": "x", "expires_at": 1000}"#.to_vec(), 400),
        ];
        for (name, content_type, body, expected) in cases {
            let (status, _, error) = error_of(post(content_type, body).await.expect("request")).await;
            assert_eq!(status, expected, "{name}: {error}");
            assert_eq!(error["error"]["type"], "invalid_request_error", "{name}");
        }
        let list: Value = call(&app, Method::GET, "/v1/keys", Some(&bearer(&key)), None).await.json().await.expect("json");
        assert_eq!(list["data"].as_array().expect("array").len(), 1, "nothing was created by a bad request");
    }

    async fn unknown_routes_and_wrong_methods_are_openai_shaped(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        let (status, _, body) = error_of(call(&app, Method::GET, "/v1/nope", Some(&bearer(&key)), None).await).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
        let (status, _, body) = error_of(call(&app, Method::PUT, "/v1/keys", Some(&bearer(&key)), None).await).await;
        assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")));
        let (status, _, _) = error_of(call(&app, Method::GET, "/v1/nope", None, None).await).await;
        assert_eq!(status, 401, "fail closed: no route answers without credentials");
        let (status, _, body) = error_of(call(&app, Method::POST, "/v1/chat/completions", Some(&bearer(&key)), Some(json!({"model": "claude-4-sonnet", "messages": [{"role": "user", "content": "hi"}]}))).await).await;
        assert_eq!((status, body["error"]["code"].as_str(), body["error"]["param"].as_str()), (404, Some("model_not_found"), Some("model")));
        let (status, _, body) = error_of(call(&app, Method::GET, "/v1/models/claude-4-sonnet", Some(&bearer(&key)), None).await).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("model_not_found")));
    }

    async fn the_budget_allows_exactly_n_then_429_with_retry_headers(backend) {
        let app = spawn_app_with(backend, &[("WJ_RATE_LIMIT_PER_MINUTE", "5".into())]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        let mut remaining = Vec::new();
        for _ in 0..5 {
            let response = call(&app, Method::GET, "/v1/me", Some(&bearer(&key)), None).await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["x-ratelimit-limit"], "5");
            assert_eq!(response.headers()["ratelimit-policy"], "\"per-key\";q=5;w=60");
            assert!(response.headers()["ratelimit"].to_str().expect("ascii").starts_with("\"per-key\";r="));
            remaining.push(response.headers()["x-ratelimit-remaining"].to_str().expect("ascii").parse::<u32>().expect("n"));
        }
        assert_eq!(remaining, vec![4, 3, 2, 1, 0], "remaining decreases monotonically");
        let (status, headers, body) = error_of(call(&app, Method::GET, "/v1/me", Some(&bearer(&key)), None).await).await;
        assert_eq!(status, 429);
        assert_eq!(body["error"]["code"], "rate_limited");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        let retry_after: u64 = headers["retry-after"].to_str().expect("ascii").parse().expect("secs");
        assert!((1..=12).contains(&retry_after), "{retry_after}");
        let retry_after_ms: u64 = headers["retry-after-ms"].to_str().expect("ascii").parse().expect("ms");
        assert!(retry_after_ms > 0 && retry_after_ms <= 12_000);
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        assert!(headers.get("x-should-retry").is_none(), "a wait under 60 s is worth retrying");
        // Another key of the same user has its own budget.
        let (_, other) = make_key(&app, user.id).await;
        assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&other)), None).await.status(), 200);
        // A key's own limit overrides the default.
        let (_, tight) = make_key_with(&app, user.id, "tight", NewKeyOptions { rate_limit_per_minute: Some(1), ..Default::default() }).await;
        assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&tight)), None).await.status(), 200);
        let (status, headers, _) = error_of(call(&app, Method::GET, "/v1/me", Some(&bearer(&tight)), None).await).await;
        assert_eq!(status, 429);
        assert_eq!(headers["x-ratelimit-limit"], "1");
    }

    async fn failed_authentication_is_throttled_per_ip(backend) {
        let app = spawn_app_with(backend, &[("WJ_AUTH_FAILURES_PER_MINUTE", "3".into())]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        for _ in 0..3 {
            assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&unknown_key())), None).await.status(), 401);
        }
        let (status, headers, body) = error_of(call(&app, Method::GET, "/v1/me", Some(&bearer(&unknown_key())), None).await).await;
        assert_eq!(status, 429, "the fourth failure within a minute is refused before any lookup");
        assert_eq!(body["error"]["code"], "rate_limited");
        assert!(headers.contains_key("retry-after"));
        assert_eq!(headers["ratelimit-policy"], "\"auth-failures\";q=3;w=60");
        // Even a valid key from the throttled address waits.
        assert_eq!(call(&app, Method::GET, "/v1/me", Some(&bearer(&key)), None).await.status(), 429);
    }

    async fn the_session_cookie_authenticates_v1_with_all_permissions(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let me = browser.get(&app.url("/v1/me")).await;
        assert_eq!(me.status(), 200);
        assert!(browser.last_set_cookie.is_some(), "/v1 responses roll the session too");
        let me: Value = me.json().await.expect("json");
        assert_eq!(me["auth_method"], "session");
        assert_eq!(me["permissions"], "all");
        if workjet::server::startup::cache_enabled(&app.state.config) {
            assert!(app.state.sessions.cached_len() >= 1, "the session lookup is cached");
        }
        // State-changing cookie requests need an allowed origin.
        let cookie = format!("wj_session={}", browser.cookie.clone().expect("cookie"));
        let evil = app.client.post(app.url("/v1/keys")).header("cookie", &cookie).header("origin", "https://evil.example").json(&json!({"name": "csrf"})).send().await.expect("post");
        let (status, _, _) = error_of(evil).await;
        assert_eq!(status, 403);
        let evil = app.client.post(app.url("/v1/keys")).header("cookie", &cookie).header("origin", "https://evil.example").header("sec-fetch-site", "cross-site").header("content-type", "text/plain").body("{\"name\":\"csrf\"}").send().await.expect("post");
        assert_eq!(evil.status(), 403, "the text/plain simple-request trick");
        let own = app.client.post(app.url("/v1/keys")).header("cookie", &cookie).header("origin", &app.base_url).json(&json!({"name": "from the portal"})).send().await.expect("post");
        assert_eq!(own.status(), 201);
        // A bad key decides even when a valid cookie is sent along.
        let both = app.client.get(app.url("/v1/me")).header("cookie", &cookie).header(header::AUTHORIZATION, "Bearer wj_live_nope").send().await.expect("get");
        assert_eq!(both.status(), 401);
        // After sign-out the cookie gets nothing.
        browser.post(&app.url("/auth/logout"), &app.base_url, "").await;
        let replay = app.client.get(app.url("/v1/me")).header("cookie", &cookie).send().await.expect("get");
        assert_eq!(replay.status(), 401);
    }

    async fn cors_allows_exactly_the_configured_origins_with_credentials(backend) {
        let app = spawn_app_with(backend, &[("WJ_ALLOWED_ORIGINS", "https://marketplace.workjet.dev".into())]).await.expect("app");
        let preflight = |origin: &'static str| {
            app.client
                .request(Method::OPTIONS, app.url("/v1/me"))
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .send()
        };
        let allowed = preflight("https://marketplace.workjet.dev").await.expect("preflight");
        assert!(allowed.status().is_success());
        assert_eq!(allowed.headers()["access-control-allow-origin"], "https://marketplace.workjet.dev");
        assert_eq!(allowed.headers()["access-control-allow-credentials"], "true");
        let evil = preflight("https://evil.example").await.expect("preflight");
        assert!(evil.headers().get("access-control-allow-origin").is_none(), "an arbitrary Origin is never reflected");
        let response = app.client.get(app.url("/v1/me")).header("origin", "https://marketplace.workjet.dev").send().await.expect("get");
        let exposed = response.headers()["access-control-expose-headers"].to_str().expect("ascii").to_ascii_lowercase();
        for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after", "retry-after-ms", "ratelimit", "ratelimit-policy", "x-request-id"] {
            assert!(exposed.contains(h), "{h} exposed: {exposed}");
        }
    }

    async fn a_key_creates_keys_only_within_its_own_grant(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let hour = chrono::Utc::now() + chrono::Duration::hours(1);
        let writer = |expires_at, rate_limit_per_minute| NewKeyOptions {
            permissions: Some(Permissions::restricted([Permission::KeysWrite])),
            expires_at,
            rate_limit_per_minute,
            ..Default::default()
        };
        let (_, restricted) = make_key_with(&app, user.id, "keys:write only", writer(None, None)).await;
        let (_, hourly) = make_key_with(&app, user.id, "expires in an hour", writer(Some(hour), None)).await;
        let (_, slow_a) = make_key_with(&app, user.id, "one a minute (a)", writer(None, Some(1))).await;
        let (_, slow_b) = make_key_with(&app, user.id, "one a minute (b)", writer(None, Some(1))).await;
        let stored = count_rows(&app, "api_keys").await;
        let audited = count_rows(&app, "audit_events").await;

        // Refused, naming the field, and nothing is stored.
        let refusals: Vec<(&str, &String, Value, &str)> = vec![
            ("more permissions", &restricted, json!({"name": "escalate", "permissions": ["inference"]}), "permissions"),
            ("all permissions", &restricted, json!({"name": "escalate", "permissions": "all"}), "permissions"),
            ("outlives its creator", &hourly, json!({"name": "forever", "expires_at": (hour + chrono::Duration::hours(1)).timestamp()}), "expires_at"),
            ("a higher rate limit", &slow_a, json!({"name": "fast", "rate_limit_per_minute": 60_000_000}), "rate_limit_per_minute"),
        ];
        for (name, key, body, field) in refusals {
            let (status, _, error) = error_of(call(&app, Method::POST, "/v1/keys", Some(&bearer(key)), Some(body)).await).await;
            assert_eq!(status, 403, "{name}: {error}");
            assert_eq!(error["error"]["code"], "forbidden", "{name}");
            assert_eq!(error["error"]["type"], "permission_error", "{name}");
            assert_eq!(error["error"]["param"], field, "{name}");
            assert!(error["error"]["message"].as_str().expect("message").contains(field), "{name}: the message names the field: {error}");
        }
        assert_eq!(count_rows(&app, "api_keys").await, stored, "no key stored for a refused create");
        assert_eq!(count_rows(&app, "audit_events").await, audited, "no audit event for a refused create");

        // Omitted: inherited.
        let created = call(&app, Method::POST, "/v1/keys", Some(&bearer(&hourly)), Some(json!({"name": "child"}))).await;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.expect("json");
        assert_eq!(created["expires_at"], hour.timestamp(), "a key that expires in an hour makes keys that expire with it");
        assert_eq!(created["permissions"], json!(["keys:write"]));
        let child = created["key"].as_str().expect("key").to_owned();
        let (status, _, _) = error_of(call(&app, Method::POST, "/v1/keys", Some(&bearer(&child)), Some(json!({"name": "grandchild", "expires_at": hour.timestamp() + 1}))).await).await;
        assert_eq!(status, 403, "the inherited expiry binds the child too");
        let earlier = (hour - chrono::Duration::minutes(10)).timestamp();
        let created: Value = call(&app, Method::POST, "/v1/keys", Some(&bearer(&hourly)), Some(json!({"name": "sooner", "expires_at": earlier}))).await.json().await.expect("json");
        assert_eq!(created["expires_at"], earlier, "an earlier expiry is within the grant");
        let created = call(&app, Method::POST, "/v1/keys", Some(&bearer(&slow_b)), Some(json!({"name": "also slow"}))).await;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.expect("json");
        assert_eq!(created["rate_limit_per_minute"], 1, "the creator's 1 a minute is inherited");
        let stored_child = app.state.keys.get(user.id, created["id"].as_i64().expect("id")).await.expect("get").expect("stored");
        assert_eq!(stored_child.rate_limit_per_minute, Some(1));
        assert_eq!(count_rows(&app, "api_keys").await, stored + 3, "child, sooner and also slow; not the grandchild");
    }

    async fn no_key_gets_more_than_the_server_maximum(backend) {
        let (app, _idp) = app_with_idp(backend, &[("WJ_RATE_LIMIT_PER_MINUTE", "600".into()), ("WJ_MAX_RATE_LIMIT_PER_MINUTE", "1000".into())]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let cookie = format!("wj_session={}", browser.cookie.clone().expect("cookie"));
        let with_cookie = |body: Value| {
            app.client.post(app.url("/v1/keys")).header("cookie", &cookie).header("origin", &app.base_url).json(&body).send()
        };
        let stored = count_rows(&app, "api_keys").await;
        // A session has its user's whole grant, up to the maximum.
        let (status, _, error) = error_of(with_cookie(json!({"name": "too fast", "rate_limit_per_minute": 1001})).await.expect("post")).await;
        assert_eq!((status, error["error"]["code"].as_str(), error["error"]["param"].as_str()), (403, Some("forbidden"), Some("rate_limit_per_minute")));
        assert!(error["error"]["message"].as_str().expect("message").contains("1000"), "{error}");
        assert_eq!(count_rows(&app, "api_keys").await, stored);
        let at_max = with_cookie(json!({"name": "at the maximum", "rate_limit_per_minute": 1000})).await.expect("post");
        assert_eq!(at_max.status(), 201);
        let at_max: Value = at_max.json().await.expect("json");
        assert_eq!(at_max["rate_limit_per_minute"], 1000);
        assert_eq!(at_max["permissions"], "all");
        assert_eq!(at_max["expires_at"], Value::Null, "a session's key need not expire");
        let default: Value = with_cookie(json!({"name": "default"})).await.expect("post").json().await.expect("json");
        assert_eq!(default["rate_limit_per_minute"], Value::Null, "omitted by a session: the server default");
        // An all-permissions key at the maximum can hand on the maximum, and no more.
        let all_key = at_max["key"].as_str().expect("key").to_owned();
        let (status, _, error) = error_of(call(&app, Method::POST, "/v1/keys", Some(&bearer(&all_key)), Some(json!({"name": "over", "rate_limit_per_minute": 1001}))).await).await;
        assert_eq!((status, error["error"]["param"].as_str()), (403, Some("rate_limit_per_minute")));
        let ok = call(&app, Method::POST, "/v1/keys", Some(&bearer(&all_key)), Some(json!({"name": "under", "rate_limit_per_minute": 999}))).await;
        assert_eq!(ok.status(), 201);
        // A key on the server default (600) hands on at most 600, though the maximum is higher.
        let default_key = default["key"].as_str().expect("key").to_owned();
        let (status, _, _) = error_of(call(&app, Method::POST, "/v1/keys", Some(&bearer(&default_key)), Some(json!({"name": "over", "rate_limit_per_minute": 601}))).await).await;
        assert_eq!(status, 403);
        // The portal: the same rule, shown beside the field.
        let portal = |rate: u32| {
            app.client
                .post(app.url("/api/create_api_key"))
                .header("cookie", &cookie)
                .header("origin", &app.base_url)
                .header("sec-fetch-site", "same-origin")
                .json(&json!({"request": {"name": "portal", "permissions": "all", "expires_in_days": null, "rate_limit_per_minute": rate}}))
                .send()
        };
        let before = count_rows(&app, "api_keys").await;
        let refused = portal(1001).await.expect("post");
        assert_eq!(refused.status(), 403);
        let text = refused.text().await.expect("body");
        assert!(text.contains("rate_limit_per_minute") && text.contains("1000"), "{text}");
        assert_eq!(count_rows(&app, "api_keys").await, before, "nothing stored");
        assert_eq!(portal(1000).await.expect("post").status(), 200);
        assert_eq!(count_rows(&app, "api_keys").await, before + 1);
    }

    async fn the_active_key_limit_is_enforced_with_a_clear_error(backend) {
        let app = spawn_app_with(backend, &[("WJ_RATE_LIMIT_PER_MINUTE", "1000".into())]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        for i in 1..100 {
            make_key_with(&app, user.id, &format!("k{i}"), Default::default()).await;
        }
        let (status, _, body) = error_of(call(&app, Method::POST, "/v1/keys", Some(&bearer(&key)), Some(json!({"name": "one too many"}))).await).await;
        assert_eq!(status, 409);
        assert_eq!(body["error"]["code"], "too_many_keys");
        assert!(body["error"]["message"].as_str().expect("message").contains("100"));
    }
}
