//! Google sign-in (against a local OpenID Connect provider) and the `wj_session` cookie.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};

use crate::{
    backend_tests,
    browser::{Browser, app_with_idp, location},
    helpers::*,
};

async fn session_rows(app: &TestApp) -> Vec<(Vec<u8>, Option<i64>, String)> {
    let backend = app.state.db.get_database_backend();
    app.state
        .db
        .query_all_raw(Statement::from_string(backend, "SELECT token_hash, user_id, data FROM sessions ORDER BY id"))
        .await
        .expect("query")
        .into_iter()
        .map(|r| {
            (r.try_get("", "token_hash").expect("hash"), r.try_get("", "user_id").expect("user"), r.try_get("", "data").expect("data"))
        })
        .collect()
}

type BehaviorChange = Box<dyn Fn(&mut crate::idp::Behavior)>;

fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect()
}

backend_tests! {
    async fn sign_in_sets_the_exact_cookie_and_lands_on_api_keys(backend) {
        let (app, idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        let landed = browser.sign_in(&app, None).await;
        assert_eq!(landed, "/settings/api-keys");
        assert!(browser.signin.is_none(), "the callback cleared wj_signin: {:?}", browser.last_signin_set_cookie);
        let set_cookie = browser.last_set_cookie.clone().expect("cookie set at sign-in");
        let attrs = attributes(&set_cookie);
        for expected in ["httponly", "secure", "samesite=lax", "path=/", "max-age=604800"] {
            assert!(attrs.iter().any(|a| a == expected), "{expected} missing from {set_cookie}");
        }
        assert!(!attrs.iter().any(|a| a.starts_with("domain=")), "host-only without WJ_COOKIE_DOMAIN: {set_cookie}");
        let token = browser.cookie.clone().expect("token");
        assert!(token.len() >= 22, "at least 128 bits");
        // Signed in: the settings page renders with the user.
        let page = browser.get(&app.url("/settings/api-keys")).await;
        assert_eq!(page.status(), 200);
        assert!(page.text().await.expect("html").contains("ada@example.com"));
        // The provider got the PKCE verifier and the code, with client authentication.
        let token_request = idp.token_requests().pop().expect("token request");
        assert!(token_request.contains("code_verifier="));
        assert!(token_request.contains("grant_type=authorization_code"));
        // The database holds only a hash of the token.
        let rows = session_rows(&app).await;
        assert_eq!(rows.len(), 1, "one row: the signed-in session (nothing before sign-in)");
        let (hash, user_id, data) = &rows[0];
        assert!(user_id.is_some());
        assert_eq!(hash.len(), 32);
        assert!(!data.contains(&token));
        let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &token).expect("token is base64");
        assert!(!hash.windows(raw.len()).any(|w| w == raw.as_slice()));
        assert_ne!(hash.as_slice(), raw.as_slice());
    }

    async fn the_session_id_changes_at_sign_in(backend) {
        let (app, idp) = app_with_idp(backend, &[]).await;
        // An attacker signs in as themselves and plants their token in the victim's browser.
        idp.set(|b| {
            b.sub = "2000002".into();
            b.email = "mallory@example.com".into();
        });
        let mut attacker = Browser::new();
        attacker.sign_in(&app, None).await;
        let planted = attacker.cookie.clone().expect("attacker's token");
        idp.set(|b| *b = crate::idp::Behavior::default());
        let mut victim = Browser { cookie: Some(planted.clone()), ..Browser::new() };
        let callback = victim.begin_sign_in(&app).await;
        assert_eq!(victim.cookie.as_deref(), Some(planted.as_str()), "starting a sign-in leaves wj_session alone");
        let landed = location(&victim.get(&callback).await);
        assert_eq!(landed, "/settings/api-keys");
        let after = victim.cookie.clone().expect("signed-in cookie");
        assert_ne!(planted, after, "a fresh token at sign-in (no fixation)");
        // The planted token does not become the victim's session.
        let mut replay = Browser { cookie: Some(planted), ..Browser::new() };
        let response = replay.get(&app.url("/settings/api-keys")).await;
        assert!(location(&response).starts_with("/login"));
        let page = victim.get(&app.url("/settings/api-keys")).await.text().await.expect("html");
        assert!(page.contains("ada@example.com") && !page.contains("mallory@example.com"));
    }

    async fn starting_sign_in_sets_only_the_sealed_signin_cookie_and_writes_nothing(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let before = crate::hardening::dump(&app).await;
        let response = app.get("/auth/google?return_to=/settings/sessions").await;
        assert_eq!(response.status(), 303);
        let cookies: Vec<String> = response.headers().get_all("set-cookie").iter().map(|v| v.to_str().expect("ascii").to_owned()).collect();
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        assert!(cookies[0].starts_with("wj_signin="), "no wj_session before sign-in: {cookies:?}");
        let attrs = attributes(&cookies[0]);
        for expected in ["httponly", "secure", "samesite=lax", "path=/auth/google/callback", "max-age=600"] {
            assert!(attrs.iter().any(|a| a == expected), "{expected} missing from {}", cookies[0]);
        }
        assert!(!attrs.iter().any(|a| a.starts_with("domain=")), "host-only: {}", cookies[0]);
        // Sealed: nothing of the transaction is readable in the cookie.
        let to_provider = url::Url::parse(&location(&response)).expect("url");
        for (k, v) in to_provider.query_pairs() {
            if matches!(k.as_ref(), "state" | "nonce" | "code_challenge") {
                assert!(!cookies[0].contains(v.as_ref()), "{k} readable in the cookie");
            }
        }
        assert!(!cookies[0].contains("settings"), "the return path is sealed too");
        assert_eq!(crate::hardening::dump(&app).await, before, "a sign-in start writes nothing to the database");
    }

    async fn a_tampered_missing_expired_or_foreign_signin_cookie_is_refused_without_a_session(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let before = crate::hardening::dump(&app).await;
        let refused = |browser: &Browser, response: &reqwest::Response, what: &str| {
            assert_eq!(location(response), "/login?error=state_mismatch", "{what}");
            assert!(browser.cookie.is_none() && browser.last_set_cookie.is_none(), "{what}: no wj_session");
            let removal = browser.last_signin_set_cookie.clone().unwrap_or_default().to_ascii_lowercase();
            assert!(removal.starts_with("wj_signin=;") && removal.contains("max-age=0"), "{what}: wj_signin cleared: {removal}");
            assert!(browser.signin.is_none());
        };
        // Tampered: one character of the sealed value changed.
        let mut browser = Browser::new();
        let callback = browser.begin_sign_in(&app).await;
        let mut sealed = browser.signin.clone().expect("wj_signin").into_bytes();
        sealed[10] = if sealed[10] == b'A' { b'B' } else { b'A' };
        browser.signin = Some(String::from_utf8(sealed).expect("ascii"));
        let response = browser.get(&callback).await;
        refused(&browser, &response, "tampered");
        // Missing: a callback in a browser that did not start the flow (or dropped the cookie).
        let mut browser = Browser::new();
        let callback = browser.begin_sign_in(&app).await;
        browser.signin = None;
        let response = browser.get(&callback).await;
        refused(&browser, &response, "missing");
        // Expired: the genuine transaction, resealed as if started eleven minutes ago.
        let mut browser = Browser::new();
        let callback = browser.begin_sign_in(&app).await;
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("cookie", format!("wj_signin={}", browser.signin.clone().expect("cookie")).parse().expect("header"));
        let cookies = &app.state.sign_in_cookies;
        let mut transaction = cookies.open(&headers, chrono::Utc::now().timestamp()).expect("the genuine cookie opens");
        transaction.issued_at -= 11 * 60;
        let resealed = cookies.seal(&transaction);
        browser.signin = Some(resealed.to_str().expect("ascii").split(';').next().expect("pair").trim_start_matches("wj_signin=").to_owned());
        let response = browser.get(&callback).await;
        refused(&browser, &response, "expired");
        // Foreign: sealed by a deployment with another key.
        let mut browser = Browser::new();
        let callback = browser.begin_sign_in(&app).await;
        let foreign = workjet::server::auth::signin_cookie::SignInCookies::new(
            &workjet::server::config::SecretKey::parse(&"7f".repeat(32)).expect("key"),
            true,
        );
        transaction.issued_at = chrono::Utc::now().timestamp();
        let sealed = foreign.seal(&transaction);
        browser.signin = Some(sealed.to_str().expect("ascii").split(';').next().expect("pair").trim_start_matches("wj_signin=").to_owned());
        let response = browser.get(&callback).await;
        refused(&browser, &response, "foreign key");
        let after = crate::hardening::dump(&app).await;
        assert_eq!(after, before, "no session, no user, no audit event from a refused callback");
    }

    async fn instances_sharing_the_client_secret_or_secret_key_finish_each_others_sign_ins(backend) {
        // Two instances behind one public URL: a flow started on one finishes on the other.
        let idp = crate::idp::TestIdp::start().await;
        let shared_url = "https://portal.workjet.test".to_owned();
        let mut settings = idp.settings();
        settings.push(("WJ_PUBLIC_URL", shared_url.clone()));
        let first = spawn_app_with(backend, &settings).await.expect("app");
        let second = spawn_app_with(backend, &settings).await.expect("app");
        let mut with_key = settings.clone();
        with_key.push(("WJ_SECRET_KEY", "q3T8mZ1xV0cR7yN4bK2wE9sH6uJ5aL1dF0gP8oI3tQs=".into()));
        let third = spawn_app_with(backend, &with_key).await.expect("app");
        let fourth = spawn_app_with(backend, &with_key).await.expect("app");
        for (start_on, finish_on, works) in [(&first, &second, true), (&third, &fourth, true), (&first, &third, false)] {
            let mut browser = Browser::new();
            let callback = browser.begin_sign_in(start_on).await;
            let path = callback.strip_prefix(&shared_url).expect("the callback is on the public URL");
            let response = browser.get(&finish_on.url(path)).await;
            if works {
                assert_eq!(location(&response), "/settings/api-keys");
                assert!(browser.cookie.is_some());
            } else {
                assert_eq!(location(&response), "/login?error=state_mismatch", "another WJ_SECRET_KEY cannot open it");
                assert!(browser.cookie.is_none());
            }
        }
    }
    async fn return_to_is_honoured_for_paths_and_ignored_for_other_sites(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        assert_eq!(Browser::new().sign_in(&app, Some("/settings/sessions")).await, "/settings/sessions");
        for evil in ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)"] {
            assert_eq!(Browser::new().sign_in(&app, Some(evil)).await, "/settings/api-keys", "{evil}");
        }
    }

    async fn pages_need_a_session_and_send_strangers_to_login(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let mut browser = Browser::new();
        let response = browser.get(&app.url("/settings/api-keys")).await;
        assert_eq!(location(&response), "/login?return_to=/settings/api-keys");
        assert_eq!(location(&browser.get(&app.url("/")).await), "/login");
        for garbage in ["", "x", "AAAAAAAAAAAAAAAAAAAAAA", &"A".repeat(8192), "%00%0d%0a"] {
            let mut b = Browser { cookie: Some(garbage.to_owned()), ..Browser::new() };
            let response = b.get(&app.url("/settings/api-keys")).await;
            assert!(location(&response).starts_with("/login"), "garbage cookie {garbage:?}");
        }
    }

    async fn signed_in_people_skip_the_login_page(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        assert_eq!(location(&browser.get(&app.url("/login")).await), "/settings/api-keys");
        assert_eq!(location(&browser.get(&app.url("/")).await), "/settings/api-keys");
    }

    async fn every_request_renews_the_cookie_and_the_server_side_expiry(backend) {
        let (app, _idp) = app_with_idp(backend, &[("WJ_SESSION_TOUCH_SECS", "0".into())]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let expiry = |app: &TestApp| {
            let db = app.state.db.clone();
            async move {
                let backend = db.get_database_backend();
                let row = db.query_one_raw(Statement::from_string(backend, "SELECT expires_at FROM sessions")).await.expect("q").expect("row");
                row.try_get::<chrono::DateTime<chrono::Utc>>("", "expires_at").expect("expires_at")
            }
        };
        let first = expiry(&app).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        browser.last_set_cookie = None;
        let response = browser.get(&app.url("/settings/api-keys")).await;
        assert_eq!(response.status(), 200);
        let renewed = browser.last_set_cookie.clone().expect("a renewed cookie on every authenticated response");
        assert!(attributes(&renewed).contains(&"max-age=604800".to_owned()));
        let second = expiry(&app).await;
        assert!(second > first, "server-side expiry moved: {first} -> {second}");
    }

    async fn rolling_writes_are_bounded_to_one_a_minute(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let last_seen = || {
            let db = app.state.db.clone();
            async move {
                let backend = db.get_database_backend();
                let row = db.query_one_raw(Statement::from_string(backend, "SELECT last_seen_at FROM sessions")).await.expect("q").expect("row");
                row.try_get::<chrono::DateTime<chrono::Utc>>("", "last_seen_at").expect("last_seen_at")
            }
        };
        let before = last_seen().await;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(120)).await;
            browser.last_set_cookie = None;
            assert_eq!(browser.get(&app.url("/settings/api-keys")).await.status(), 200);
            assert!(browser.last_set_cookie.is_some(), "the cookie is renewed even when the row is not rewritten");
        }
        assert_eq!(last_seen().await, before, "no database write per request");
    }

    async fn sign_out_deletes_the_session_and_a_replayed_cookie_gets_nothing(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let old = browser.cookie.clone().expect("cookie");
        let response = browser.post(&app.url("/auth/logout"), &app.base_url, "").await;
        assert_eq!(location(&response), "/login");
        let removal = browser.last_set_cookie.clone().expect("removal cookie");
        let attrs = attributes(&removal);
        assert!(attrs.contains(&"path=/".to_owned()), "{removal}");
        assert!(attrs.iter().any(|a| a == "max-age=0" || a.starts_with("expires=")), "{removal}");
        assert!(browser.cookie.is_none());
        assert!(session_rows(&app).await.is_empty(), "deleted server-side at once");
        let mut replay = Browser { cookie: Some(old), ..Browser::new() };
        assert!(location(&replay.get(&app.url("/settings/api-keys")).await).starts_with("/login"));
    }

    async fn sign_out_everywhere_ends_every_session_of_the_user(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut laptop = Browser::new();
        let mut phone = Browser::new();
        laptop.sign_in(&app, None).await;
        phone.sign_in(&app, None).await;
        let response = laptop.server_fn(&app, "sign_out_everywhere", "").await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        for browser in [&mut laptop, &mut phone] {
            assert!(location(&browser.get(&app.url("/settings/api-keys")).await).starts_with("/login"));
        }
    }

    async fn sessions_are_listed_and_one_can_be_signed_out(backend) {
        let (app, idp) = app_with_idp(backend, &[]).await;
        let mut laptop = Browser::new();
        let mut phone = Browser::new();
        laptop.sign_in(&app, None).await;
        phone.sign_in(&app, None).await;
        let list: serde_json::Value = laptop.server_fn(&app, "list_sessions", "").await.json().await.expect("json");
        let list = list.as_array().expect("array").clone();
        assert_eq!(list.len(), 2);
        assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
        let other = list.iter().find(|s| s["current"] == false).expect("the phone")["id"].as_i64().expect("id");
        // Another user cannot sign the phone out: not found, and it keeps working.
        idp.set(|b| {
            b.sub = "2000002".into();
            b.email = "mallory@example.com".into();
        });
        let mut mallory = Browser::new();
        mallory.sign_in(&app, None).await;
        let response = mallory.server_fn(&app, "revoke_session", &format!("id={other}")).await;
        assert_eq!(response.status(), 404);
        assert_eq!(phone.get(&app.url("/settings/api-keys")).await.status(), 200);
        // Its owner can.
        assert_eq!(laptop.server_fn(&app, "revoke_session", &format!("id={other}")).await.status(), 200);
        assert!(location(&phone.get(&app.url("/settings/api-keys")).await).starts_with("/login"));
        assert_eq!(laptop.get(&app.url("/settings/api-keys")).await.status(), 200);
    }

    async fn cross_origin_posts_with_a_valid_cookie_are_refused(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let cookie = format!("wj_session={}", browser.cookie.clone().expect("cookie"));
        for (origin, fetch_site) in [("https://evil.example", Some("cross-site")), ("https://evil.example", None), ("null", None)] {
            for path in ["/auth/logout", "/api/sign_out_everywhere", "/api/list_sessions"] {
                let mut request = app.client.post(app.url(path)).header("cookie", &cookie).header("origin", origin).header("content-type", "text/plain").body("x");
                if let Some(site) = fetch_site {
                    request = request.header("sec-fetch-site", site);
                }
                let response = request.send().await.expect("post");
                assert_eq!(response.status(), 403, "{path} from {origin}");
            }
        }
        assert_eq!(browser.get(&app.url("/settings/api-keys")).await.status(), 200, "still signed in");
        assert_eq!(session_rows(&app).await.len(), 1);
    }

    async fn a_refused_consent_lands_on_login_with_a_message(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        let callback = browser.begin_sign_in(&app).await;
        let state = url::Url::parse(&callback).expect("url").query_pairs().find(|(k, _)| k == "state").expect("state").1.into_owned();
        let response = browser.get(&app.url(&format!("/auth/google/callback?error=access_denied&state={state}"))).await;
        assert_eq!(location(&response), "/login?error=access_denied");
        assert!(browser.cookie.is_none() && browser.signin.is_none(), "no wj_session, and wj_signin cleared");
        assert!(session_rows(&app).await.is_empty(), "no session row for a refused sign-in");
        let page = browser.get(&app.url("/login?error=access_denied")).await.text().await.expect("html");
        assert!(page.contains("Sign-in was cancelled"));
    }

    async fn a_mismatched_or_missing_state_is_refused(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        let callback = browser.begin_sign_in(&app).await;
        let tampered = callback.replace("state=", "state=x");
        assert_eq!(location(&browser.get(&tampered).await), "/login?error=state_mismatch");
        // The flow was consumed by the failed attempt: the genuine callback fails too.
        assert_eq!(location(&browser.get(&callback).await), "/login?error=state_mismatch");
        // A callback with no flow in progress at all.
        let mut stranger = Browser::new();
        assert_eq!(location(&stranger.get(&app.url("/auth/google/callback?code=abc&state=def")).await), "/login?error=state_mismatch");
        assert!(browser.cookie.is_none() && stranger.cookie.is_none(), "no wj_session");
        assert!(session_rows(&app).await.is_empty(), "no session rows");
    }

    async fn pkce_stops_a_code_injected_into_another_flow(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut victim = Browser::new();
        let victim_callback = victim.begin_sign_in(&app).await;
        let stolen_code = url::Url::parse(&victim_callback).expect("url").query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned();
        let mut attacker = Browser::new();
        let attacker_callback = attacker.begin_sign_in(&app).await;
        let state = url::Url::parse(&attacker_callback).expect("url").query_pairs().find(|(k, _)| k == "state").expect("state").1.into_owned();
        let injected = app.url(&format!("/auth/google/callback?code={stolen_code}&state={state}"));
        assert_eq!(location(&attacker.get(&injected).await), "/login?error=exchange_failed", "the provider refuses the verifier");
    }

    async fn a_replayed_code_is_refused(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        let callback = browser.begin_sign_in(&app).await;
        assert_eq!(location(&browser.get(&callback).await), "/settings/api-keys");
        let code = url::Url::parse(&callback).expect("url").query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned();
        let mut again = Browser::new();
        let fresh = again.begin_sign_in(&app).await;
        let state = url::Url::parse(&fresh).expect("url").query_pairs().find(|(k, _)| k == "state").expect("state").1.into_owned();
        assert_eq!(location(&again.get(&app.url(&format!("/auth/google/callback?code={code}&state={state}"))).await), "/login?error=exchange_failed");
    }

    async fn bad_id_tokens_are_refused(backend) {
        let (app, idp) = app_with_idp(backend, &[]).await;
        let cases: Vec<(&str, BehaviorChange)> = vec![
            ("nonce mismatch", Box::new(|b| b.nonce_override = Some("another-nonce".into()))),
            ("wrong audience", Box::new(|b| b.audience = "someone-else.apps.example".into())),
            ("wrong issuer", Box::new(|b| b.issuer_override = Some("https://evil.example".into()))),
            ("expired", Box::new(|b| b.expires_in = -3600)),
            ("unpublished key", Box::new(|b| b.signing_key = 2)),
            ("HS256 with the public key", Box::new(|b| b.sign_hs256_with_public_key = true)),
            ("no id_token", Box::new(|b| b.omit_id_token = true)),
        ];
        for (name, change) in cases {
            idp.set(|b| *b = crate::idp::Behavior::default());
            idp.set(|b| change(b));
            let landed = Browser::new().sign_in(&app, None).await;
            assert_eq!(landed, "/login?error=invalid_token", "{name}");
        }
        idp.set(|b| *b = crate::idp::Behavior::default());
        assert_eq!(Browser::new().sign_in(&app, None).await, "/settings/api-keys");
        let backend = app.state.db.get_database_backend();
        let users = app.state.db.query_one_raw(Statement::from_string(backend, "SELECT count(*) AS n FROM users")).await.expect("q").expect("row");
        assert_eq!(users.try_get::<i64>("", "n").expect("n"), 1, "no user was created by a refused token");
    }

    async fn an_unverified_email_is_refused(backend) {
        let (app, idp) = app_with_idp(backend, &[]).await;
        idp.set(|b| b.email_verified = false);
        assert_eq!(Browser::new().sign_in(&app, None).await, "/login?error=email_unverified");
    }

    async fn allowed_domains_are_enforced_on_the_hd_claim(backend) {
        let (app, idp) = app_with_idp(backend, &[("WJ_ALLOWED_DOMAINS", "workjet.dev, Example.ORG".into())]).await;
        idp.set(|b| b.hd = None);
        assert_eq!(Browser::new().sign_in(&app, None).await, "/login?error=domain_not_allowed", "no hd: a consumer account");
        idp.set(|b| b.hd = Some("other.com".into()));
        assert_eq!(Browser::new().sign_in(&app, None).await, "/login?error=domain_not_allowed");
        idp.set(|b| {
            b.hd = Some("example.org".into());
            b.email = "ada@other.com".into();
        });
        assert_eq!(Browser::new().sign_in(&app, None).await, "/settings/api-keys", "hd decides, not the email address");
    }

    async fn a_rotated_signing_key_is_fetched_once(backend) {
        let (app, idp) = app_with_idp(backend, &[]).await;
        assert_eq!(Browser::new().sign_in(&app, None).await, "/settings/api-keys");
        let fetches = idp.jwks_fetches();
        idp.set(|b| {
            b.signing_key = 1;
            b.published_keys = vec![1];
        });
        tokio::time::sleep(Duration::from_millis(5100)).await; // past the refetch rate limit
        assert_eq!(Browser::new().sign_in(&app, None).await, "/settings/api-keys");
        assert_eq!(idp.jwks_fetches(), fetches + 1, "exactly one refetch for the unknown kid");
    }

    async fn a_failing_or_slow_provider_lands_on_login(backend) {
        let (app, idp) = app_with_idp(backend, &[("WJ_OIDC_TIMEOUT_MS", "1000".into())]).await;
        idp.set(|b| b.token_status = Some(500));
        assert_eq!(Browser::new().sign_in(&app, None).await, "/login?error=provider_unavailable");
        idp.set(|b| {
            b.token_status = None;
            b.token_delay = Some(Duration::from_secs(3));
        });
        let started = std::time::Instant::now();
        assert_eq!(Browser::new().sign_in(&app, None).await, "/login?error=provider_unavailable");
        assert!(started.elapsed() < Duration::from_millis(2900), "the timeout cut the wait");
    }

    async fn a_provider_that_is_down_at_sign_in_start_lands_on_login(backend) {
        let (app, idp) = app_with_idp(backend, &[]).await;
        idp.set(|b| b.discovery_status = Some(503));
        assert_eq!(Browser::new().sign_in(&app, None).await, "/login?error=provider_unavailable");
        let page = Browser::new().get(&app.url("/login?error=provider_unavailable")).await.text().await.expect("html");
        assert!(page.contains("Google could not be reached"));
    }

    async fn a_disabled_user_cannot_sign_in_and_loses_open_sessions(backend) {
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let user = app.state.users.find_by_email("ada@example.com").await.expect("q").expect("user");
        app.state.users.disable(user.id, &app.state.sessions, &app.state.generations).await.expect("disable");
        assert!(location(&browser.get(&app.url("/settings/api-keys")).await).starts_with("/login"));
        assert_eq!(Browser::new().sign_in(&app, None).await, "/login?error=account_disabled");
    }

    async fn the_cookie_carries_the_configured_domain_and_its_removal_too(backend) {
        let (app, _idp) = app_with_idp(backend, &[("WJ_COOKIE_DOMAIN", ".workjet.test".into())]).await;
        let mut browser = Browser::new();
        browser.sign_in(&app, None).await;
        let set = browser.last_set_cookie.clone().expect("cookie");
        assert!(attributes(&set).iter().any(|a| a == "domain=workjet.test" || a == "domain=.workjet.test"), "{set}");
        browser.post(&app.url("/auth/logout"), &app.base_url, "").await;
        let removal = browser.last_set_cookie.clone().expect("removal");
        assert!(attributes(&removal).iter().any(|a| a == "domain=workjet.test" || a == "domain=.workjet.test"), "{removal}");
    }
}

/// The built-in development provider signs people in end to end over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_development_provider_signs_in() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await.expect("app");
    let mut browser = Browser::new();
    let response = browser.get(&app.url("/auth/google")).await;
    let authorize = location(&response);
    assert!(authorize.starts_with(&format!("{}/_dev/idp/authorize?", app.base_url)), "{authorize}");
    let page = browser.get(&authorize).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Local development identity provider"));
    // Submit the form as the page would.
    let params: Vec<(String, String)> = url::Url::parse(&authorize).expect("url").query_pairs().into_owned().collect();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        form.append_pair(k, v);
    }
    form.append_pair("email", "grace@example.com")
        .append_pair("name", "Grace Hopper")
        .append_pair("email_verified", "true")
        .append_pair("action", "approve");
    let response = browser.post(&app.url("/_dev/idp/authorize"), &app.base_url, &form.finish()).await;
    let callback = location(&response);
    assert!(callback.starts_with(&format!("{}/auth/google/callback?code=", app.base_url)));
    assert_eq!(location(&browser.get(&callback).await), "/settings/api-keys");
    let html = browser.get(&app.url("/settings/api-keys")).await.text().await.expect("html");
    assert!(html.contains("grace@example.com"));
    // Cancel goes back with access_denied.
    let mut other = Browser::new();
    let authorize = location(&other.get(&app.url("/auth/google")).await);
    let params: Vec<(String, String)> = url::Url::parse(&authorize).expect("url").query_pairs().into_owned().collect();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        form.append_pair(k, v);
    }
    form.append_pair("action", "deny");
    let callback = location(&other.post(&app.url("/_dev/idp/authorize"), &app.base_url, &form.finish()).await);
    assert_eq!(location(&other.get(&callback).await), "/login?error=access_denied");
}
