//! Administrators (`WJ_ADMIN_EMAILS`): every `/v1/admin` route refuses anyone else with the
//! same 403 whatever the id; an administrator (session, or a key with every permission)
//! finds people and disables or enables them — sessions and keys dead at once, also cached,
//! also on another instance —, finds anyone's key by id or hint and revokes it; every action
//! is audited with the administrator as actor and shows in the person's own security log.

use reqwest::{Method, header};
use serde_json::{Value, json};
use workjet::{
    domain::{api_keys::NewKeyOptions, audit::action},
    entities::audit_events,
    permissions::{Permission, Permissions},
};

use crate::{
    backend_tests,
    browser::{Browser, app_with_idp, location},
    helpers::*,
    idp::TestIdp,
};

/// The administrator of these tests (configured in another case, to show it does not matter).
const ADMIN: &str = "root@example.com";

fn admin_settings() -> Vec<(&'static str, String)> {
    vec![("WJ_ADMIN_EMAILS", " Root@Example.com , other-admin@example.com".into())]
}

/// Signs `email` in through the provider, in a new browser.
async fn sign_in_as(base_url: &str, idp: &TestIdp, email: &str) -> Browser {
    let (email, sub) = (email.to_owned(), format!("sub-{email}"));
    idp.set(|b| {
        b.email = email.clone();
        b.sub = sub;
        b.name = email.split('@').next().unwrap_or("x").into();
    });
    let mut browser = Browser::new();
    assert_eq!(browser.sign_in_at(base_url, None).await, "/settings/api-keys", "{email} signs in");
    browser
}

/// A `/v1` request with the browser's session cookie (from the portal's origin).
async fn with_session(base_url: &str, browser: &Browser, method: Method, path: &str) -> (u16, Value) {
    let mut request = browser.client.request(method, format!("{base_url}{path}")).header(header::ORIGIN, base_url);
    if let Some(cookie) = &browser.cookie {
        request = request.header(header::COOKIE, format!("wj_session={cookie}"));
    }
    let response = request.send().await.expect("request");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// A `/v1` request with an API key.
async fn with_key(base_url: &str, key: &str, method: Method, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new().request(method, format!("{base_url}{path}")).bearer_auth(key).send().await.expect("request");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// Every admin route, with `id` in place of the id.
fn routes(user_id: &str, key_id: &str) -> Vec<(Method, String)> {
    vec![
        (Method::GET, "/v1/admin/users".into()),
        (Method::GET, "/v1/admin/users?search=ada&limit=5&after=3".into()),
        (Method::POST, format!("/v1/admin/users/{user_id}/disable")),
        (Method::POST, format!("/v1/admin/users/{user_id}/enable")),
        (Method::GET, "/v1/admin/keys?hint=wj_live_abcd…wxyz".into()),
        (Method::GET, format!("/v1/admin/keys/{key_id}")),
        (Method::DELETE, format!("/v1/admin/keys/{key_id}")),
        (Method::GET, "/v1/admin/audit-events".into()),
        (Method::GET, "/v1/admin/audit-events?limit=0&after=x".into()),
    ]
}

/// The admin audit events of `action`, oldest first.
async fn audit_rows(app: &TestApp, name: &str) -> Vec<audit_events::Model> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    audit_events::Entity::find()
        .filter(audit_events::Column::Action.eq(name))
        .order_by_asc(audit_events::Column::Id)
        .all(&app.state.db)
        .await
        .expect("audit rows")
}

backend_tests! {
    async fn anyone_but_an_administrator_gets_the_same_403_on_every_admin_route_whatever_the_id(backend) {
        let (app, idp) = app_with_idp(backend, &admin_settings()).await;
        let root = make_user(&app, ADMIN).await;
        let ada = make_user(&app, "ada@example.com").await;
        let (ada_key_id, ada_key) = make_key(&app, ada.id).await;
        let restricted = NewKeyOptions {
            permissions: Some(Permissions::restricted([Permission::Inference, Permission::KeysRead, Permission::KeysWrite])),
            ..Default::default()
        };
        // An administrator's key without every permission is no administrator's key.
        let (_, root_restricted) = make_key_with(&app, root.id, "restricted", restricted).await;
        let bob_browser = sign_in_as(&app.base_url, &idp, "bob@example.com").await;

        let ids = [
            (ada.id.to_string(), ada_key_id.to_string()),
            ("999999".into(), "999999".into()),
            ("-1".into(), "-1".into()),
            ("0".into(), "0".into()),
            ("abc".into(), "abc".into()),
            ("99999999999999999999".into(), "99999999999999999999".into()),
            ("%20".into(), "1.5".into()),
        ];
        let mut answers = Vec::new();
        for (user_id, key_id) in &ids {
            for (method, path) in routes(user_id, key_id) {
                for key in [&ada_key, &root_restricted] {
                    let (status, body) = with_key(&app.base_url, key, method.clone(), &path).await;
                    assert_eq!(status, 403, "{method} {path}: {body}");
                    assert_eq!(body["error"]["code"], "forbidden", "{method} {path}");
                    answers.push(body);
                }
                let (status, body) = with_session(&app.base_url, &bob_browser, method.clone(), &path).await;
                assert_eq!(status, 403, "session {method} {path}: {body}");
                answers.push(body);
                let (status, _) = with_session(&app.base_url, &Browser::new(), method.clone(), &path).await;
                assert_eq!(status, 401, "no credentials {method} {path}");
            }
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "one answer, which tells nothing about the id");

        // Nothing changed: ada is enabled, her key works, and nothing was audited.
        assert_eq!(with_key(&app.base_url, &ada_key, Method::GET, "/v1/me").await.0, 200);
        for name in [action::ADMIN_USER_DISABLE, action::ADMIN_USER_ENABLE, action::ADMIN_KEY_REVOKE] {
            assert!(audit_rows(&app, name).await.is_empty());
        }

        // The administrator (key with every permission): hostile ids are simply not found.
        let (_, root_key) = make_key(&app, root.id).await;
        for bad in ["999999", "-1", "0", "abc", "99999999999999999999"] {
            for (method, path) in [
                (Method::POST, format!("/v1/admin/users/{bad}/disable")),
                (Method::POST, format!("/v1/admin/users/{bad}/enable")),
                (Method::GET, format!("/v1/admin/keys/{bad}")),
                (Method::DELETE, format!("/v1/admin/keys/{bad}")),
            ] {
                let (status, body) = with_key(&app.base_url, &root_key, method.clone(), &path).await;
                assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{method} {path}: {body}");
            }
        }
        for (path, param) in [
            ("/v1/admin/users?limit=0", "limit"),
            ("/v1/admin/users?limit=101", "limit"),
            ("/v1/admin/users?after=-1", "after"),
            ("/v1/admin/audit-events?after=abc", "after"),
            ("/v1/admin/keys", "hint"),
        ] {
            let (status, body) = with_key(&app.base_url, &root_key, Method::GET, path).await;
            assert_eq!((status, body["error"]["param"].as_str()), (400, Some(param)), "{path}: {body}");
        }
        let long = "x".repeat(101);
        let (status, body) = with_key(&app.base_url, &root_key, Method::GET, &format!("/v1/admin/users?search={long}")).await;
        assert_eq!((status, body["error"]["param"].as_str()), (400, Some("search")), "{body}");
    }

    async fn an_administrator_searches_and_pages_people(backend) {
        let app = spawn_app_with(backend, &admin_settings()).await.expect("app");
        let root = make_user(&app, ADMIN).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(make_user(&app, &format!("person{i}@Example.org")).await.id);
        }
        make_user(&app, "under_score@example.net").await;
        let (_, key) = make_key(&app, root.id).await;
        let base = &app.base_url;

        let (status, all) = with_key(base, &key, Method::GET, "/v1/admin/users").await;
        assert_eq!(status, 200, "{all}");
        assert_eq!(all["object"], "list");
        assert_eq!(all["data"].as_array().expect("data").len(), 7);
        assert_eq!(all["data"][6]["email"], ADMIN);
        assert_eq!(all["data"][6]["admin"], true, "the administrator is marked");
        assert_eq!(all["data"][0]["admin"], false);
        assert_eq!(all["data"][0]["status"], "active");
        assert_eq!(all["data"][0]["object"], "user");

        // Email or name, any case; LIKE's wildcards are plain characters.
        let (_, found) = with_key(base, &key, Method::GET, "/v1/admin/users?search=EXAMPLE.ORG&limit=2").await;
        let page: Vec<i64> = found["data"].as_array().expect("data").iter().map(|u| u["id"].as_i64().expect("id")).collect();
        assert_eq!(page, [ids[4], ids[3]], "newest first: {found}");
        assert_eq!(found["has_more"], true);
        assert_eq!(found["last_id"], ids[3]);
        let (_, next) = with_key(base, &key, Method::GET, &format!("/v1/admin/users?search=example.org&limit=2&after={}", ids[3])).await;
        assert_eq!(next["data"][0]["id"], ids[2]);
        let (_, last) = with_key(base, &key, Method::GET, &format!("/v1/admin/users?search=example.org&after={}", ids[1])).await;
        assert_eq!(last["data"].as_array().expect("data").len(), 1);
        assert_eq!(last["has_more"], false);
        let (_, by_name) = with_key(base, &key, Method::GET, "/v1/admin/users?search=PERSON2").await;
        assert_eq!(by_name["data"].as_array().expect("data").len(), 1, "{by_name}");
        let (_, wildcard) = with_key(base, &key, Method::GET, "/v1/admin/users?search=_").await;
        assert_eq!(wildcard["data"][0]["email"], "under_score@example.net");
        assert_eq!(wildcard["data"].as_array().expect("data").len(), 1, "`_` is no wildcard: {wildcard}");
        let (_, none) = with_key(base, &key, Method::GET, "/v1/admin/users?search=%25").await;
        assert_eq!(none, json!({"object": "list", "data": [], "has_more": false, "last_id": null}));
    }

    async fn disabling_ends_sessions_and_keys_at_once_and_enabling_lets_the_person_sign_in_again(backend) {
        let (app, idp) = app_with_idp(backend, &admin_settings()).await;
        let base = app.base_url.clone();
        let mut admin = sign_in_as(&base, &idp, "ROOT@example.com").await;
        let person = sign_in_as(&base, &idp, "carol@example.com").await;
        let carol = app.state.users.find_by_email("carol@example.com").await.expect("q").expect("carol");
        let root = app.state.users.find_by_email("ROOT@example.com").await.expect("q").expect("root");
        let (_, carol_key) = make_key(&app, carol.id).await;
        // Used twice: the second time from this instance's cache (when it serves one).
        for _ in 0..2 {
            assert_eq!(with_key(&base, &carol_key, Method::GET, "/v1/me").await.0, 200);
            assert_eq!(with_session(&base, &person, Method::GET, "/v1/me").await.0, 200);
        }

        // An administrator cannot disable themselves.
        let (status, body) = with_session(&base, &admin, Method::POST, &format!("/v1/admin/users/{}/disable", root.id)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("cannot_disable_self")), "{body}");
        assert_eq!(with_session(&base, &admin, Method::GET, "/v1/me").await.0, 200, "still signed in");

        let (status, body) = with_session(&base, &admin, Method::POST, &format!("/v1/admin/users/{}/disable", carol.id)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["status"].as_str(), body["email"].as_str()), (Some("disabled"), Some("carol@example.com")));
        assert!(body["disabled_at"].is_i64());
        // At once: the session, the (cached) key, the portal, sign-in.
        assert_eq!(with_key(&base, &carol_key, Method::GET, "/v1/me").await.0, 401);
        assert_eq!(with_session(&base, &person, Method::GET, "/v1/me").await.0, 401);
        let mut old = Browser { cookie: person.cookie.clone(), ..Browser::new() };
        assert!(location(&old.get(&app.url("/settings/api-keys")).await).starts_with("/login"));
        idp.set(|b| {
            b.email = "carol@example.com".into();
            b.sub = "sub-carol@example.com".into();
        });
        assert_eq!(Browser::new().sign_in(&app, None).await, "/login?error=account_disabled");
        // Disabling twice is fine, and recorded once.
        assert_eq!(with_session(&base, &admin, Method::POST, &format!("/v1/admin/users/{}/disable", carol.id)).await.0, 200);
        let disabled = audit_rows(&app, action::ADMIN_USER_DISABLE).await;
        assert_eq!(disabled.len(), 1);
        assert_eq!(disabled[0].actor_user_id, Some(root.id), "the administrator acted");
        assert_eq!(disabled[0].subject_user_id, Some(carol.id), "about carol");
        assert_eq!(disabled[0].target.as_deref(), Some(format!("user:{}", carol.id).as_str()));
        assert!(disabled[0].detail.as_deref().expect("detail").contains("carol@example.com"));

        let (status, body) = with_session(&base, &admin, Method::POST, &format!("/v1/admin/users/{}/enable", carol.id)).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("active")), "{body}");
        assert_eq!(body["disabled_at"], Value::Null);
        assert_eq!(with_session(&base, &person, Method::GET, "/v1/me").await.0, 401, "old sessions stay ended");
        let back = sign_in_as(&base, &idp, "carol@example.com").await;
        assert_eq!(with_session(&base, &back, Method::GET, "/v1/me").await.0, 200);
        assert_eq!(with_key(&base, &carol_key, Method::GET, "/v1/me").await.0, 200, "a key neither revoked nor expired works again");
        let enabled = audit_rows(&app, action::ADMIN_USER_ENABLE).await;
        assert_eq!((enabled.len(), enabled[0].actor_user_id, enabled[0].subject_user_id), (1, Some(root.id), Some(carol.id)));

        // Carol's own security log says it, without the administrator's address or browser.
        let (_, log) = with_key(&base, &carol_key, Method::GET, "/v1/audit-events").await;
        let mine: Vec<&Value> = log["data"].as_array().expect("data").iter().filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("admin."))).collect();
        assert_eq!(mine.len(), 2, "{log}");
        assert_eq!(mine[0]["action"], "admin.user_enable");
        assert_eq!(mine[1]["action"], "admin.user_disable");
        assert!(mine.iter().all(|e| e["ip"].is_null() && e["user_agent"].is_null()), "{log}");
        let page = back_page(&app, &back).await;
        assert!(page.contains("Account carol@example.com disabled by an administrator"), "the portal's security log tells her");

        // The admin page: only for administrators.
        let admin_page = admin.get(&app.url("/admin")).await;
        assert_eq!(admin_page.status(), 200);
        let html = admin_page.text().await.expect("html");
        assert!(html.contains("carol@example.com") && html.contains("Everyone"), "server-rendered");
        assert!(html.contains(r#"href="/admin""#), "administrators have the Admin link");
        let mut carol_browser = back;
        let refused = carol_browser.get(&app.url("/admin")).await.text().await.expect("html");
        assert!(refused.contains("Only an administrator may do this."));
        assert!(!refused.contains("root@example.com"), "nobody's data for anyone else");
        let own = carol_browser.get(&app.url("/settings/api-keys")).await.text().await.expect("html");
        assert!(!own.contains(r#"href="/admin""#), "no Admin link for anyone else");
    }

    async fn the_portal_s_server_functions_ask_the_same_question_first(backend) {
        let (app, idp) = app_with_idp(backend, &admin_settings()).await;
        let mut admin = sign_in_as(&app.base_url, &idp, ADMIN).await;
        let mut gina = sign_in_as(&app.base_url, &idp, "gina@example.com").await;
        let gina_id = app.state.users.find_by_email("gina@example.com").await.expect("q").expect("gina").id;
        let root_id = app.state.users.find_by_email(ADMIN).await.expect("q").expect("root").id;
        let (gina_key_id, gina_key) = make_key(&app, gina_id).await;
        for (name, body) in [
            ("admin_people", "search=".to_owned()),
            ("admin_set_disabled", format!("user_id={root_id}&disabled=true")),
            ("admin_find_keys", format!("query={gina_key_id}")),
            ("admin_revoke_key", format!("id={gina_key_id}")),
            ("admin_log", String::new()),
        ] {
            let refused = gina.server_fn(&app, name, &body).await;
            assert_eq!(refused.status(), 403, "{name}");
            assert_eq!(refused.json::<Value>().await.expect("json"), json!("NotAdmin"), "{name}");
        }
        assert_eq!(with_key(&app.base_url, &gina_key, Method::GET, "/v1/me").await.0, 200, "nothing happened");
        let signed_out = Browser::new().get(&app.url("/admin")).await;
        assert_eq!(location(&signed_out), "/login?return_to=/admin", "signed out: sign in first");

        let people: Value = admin.server_fn(&app, "admin_people", "search=GINA").await.json().await.expect("json");
        assert_eq!(people["people"].as_array().expect("people").len(), 1, "{people}");
        assert_eq!(people["people"][0]["email"], "gina@example.com");
        let me = admin.server_fn(&app, "admin_set_disabled", &format!("user_id={root_id}&disabled=true")).await;
        assert_eq!(me.status(), 409, "not oneself");
        let found: Value = admin.server_fn(&app, "admin_find_keys", &format!("query=%23{gina_key_id}")).await.json().await.expect("json");
        assert_eq!(found[0]["owner"]["email"], "gina@example.com", "{found}");
        let revoked = admin.server_fn(&app, "admin_revoke_key", &format!("id={gina_key_id}")).await;
        assert_eq!(revoked.status(), 200);
        assert_eq!(with_key(&app.base_url, &gina_key, Method::GET, "/v1/me").await.0, 401);
        let disabled: Value = admin.server_fn(&app, "admin_set_disabled", &format!("user_id={gina_id}&disabled=true")).await.json().await.expect("json");
        assert_eq!(disabled["disabled"], true, "{disabled}");
        assert_eq!(gina.server_fn(&app, "admin_people", "search=").await.status(), 401, "gina is signed out");
        let log: Value = admin.server_fn(&app, "admin_log", "").await.json().await.expect("json");
        let actions: Vec<&str> = log["events"].as_array().expect("events").iter().map(|e| e["event"]["action"].as_str().expect("action")).collect();
        assert_eq!(&actions[..2], ["admin.user_disable", "admin.key_revoke"], "{log}");
        assert_eq!(log["events"][0]["actor_email"], ADMIN);
        assert_eq!(log["events"][0]["subject_email"], "gina@example.com");
    }

    async fn an_administrator_finds_anyones_key_by_id_or_hint_and_revokes_it(backend) {
        let app = spawn_app_with(backend, &admin_settings()).await.expect("app");
        let base = app.base_url.clone();
        let root = make_user(&app, ADMIN).await;
        let dan = make_user(&app, "dan@example.com").await;
        let (_, root_key) = make_key(&app, root.id).await;
        let (dan_key_id, dan_key) = make_key_with(&app, dan.id, "Dan's CI", Default::default()).await;
        let (_, dan_other) = make_key(&app, dan.id).await;
        for _ in 0..2 {
            assert_eq!(with_key(&base, &dan_key, Method::GET, "/v1/me").await.0, 200);
        }

        let (status, found) = with_key(&base, &root_key, Method::GET, &format!("/v1/admin/keys/{dan_key_id}")).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!((found["name"].as_str(), found["status"].as_str()), (Some("Dan's CI"), Some("active")));
        assert_eq!(found["owner"]["email"], "dan@example.com");
        assert_eq!(found["owner"]["id"], dan.id);
        assert!(found["last_used_ip"].is_null(), "where a key was used from is its owner's to see");
        let hint = found["hint"].as_str().expect("hint").to_owned();
        assert!(!found.to_string().contains(&dan_key[8..]), "never the key");
        for asked in [hint.clone(), hint.replace('…', "..."), format!("  {hint} ")] {
            let query = workjet::urls::encode_query_value(&asked);
            let (status, list) = with_key(&base, &root_key, Method::GET, &format!("/v1/admin/keys?hint={query}")).await;
            assert_eq!(status, 200, "{list}");
            assert_eq!(list["data"].as_array().expect("data").len(), 1, "{asked}: {list}");
            assert_eq!(list["data"][0]["id"], dan_key_id);
        }
        let (_, nothing) = with_key(&base, &root_key, Method::GET, "/v1/admin/keys?hint=wj_live_zzzz…zzzz").await;
        assert_eq!(nothing["data"], json!([]));

        // Revoked by the administrator: refused at once, even from the cache it was in.
        let (status, revoked) = with_key(&base, &root_key, Method::DELETE, &format!("/v1/admin/keys/{dan_key_id}")).await;
        assert_eq!(status, 200, "{revoked}");
        assert_eq!(revoked["status"], "revoked");
        assert_eq!(with_key(&base, &dan_key, Method::GET, "/v1/me").await.0, 401, "refused at once, cache or not");
        assert_eq!(with_key(&base, &dan_other, Method::GET, "/v1/me").await.0, 200, "his other key keeps working");
        assert_eq!(with_key(&base, &root_key, Method::DELETE, &format!("/v1/admin/keys/{dan_key_id}")).await.0, 200, "idempotent");
        let rows = audit_rows(&app, action::ADMIN_KEY_REVOKE).await;
        assert_eq!(rows.len(), 1, "recorded once");
        assert_eq!((rows[0].actor_user_id, rows[0].subject_user_id), (Some(root.id), Some(dan.id)));
        assert_eq!(rows[0].target.as_deref(), Some(format!("api_key:{dan_key_id}").as_str()));
        assert!(audit_rows(&app, action::API_KEY_REVOKE).await.is_empty(), "an administrator's action, not the owner's");

        // Dan's log tells him; the administrator's log of everyone says whose it was.
        let (_, log) = with_key(&base, &dan_other, Method::GET, "/v1/audit-events").await;
        assert_eq!(log["data"][0]["action"], "admin.key_revoke");
        assert_eq!(log["data"][0]["detail"]["name"], "Dan's CI");
        assert!(log["data"][0]["ip"].is_null());
        let (status, everyone) = with_key(&base, &root_key, Method::GET, "/v1/admin/audit-events?limit=1").await;
        assert_eq!(status, 200, "{everyone}");
        let event = &everyone["data"][0];
        assert_eq!((event["action"].as_str(), event["actor_email"].as_str(), event["subject_email"].as_str()), (Some("admin.key_revoke"), Some(ADMIN), Some("dan@example.com")));
        assert_eq!((event["actor_user_id"].as_i64(), event["subject_user_id"].as_i64()), (Some(root.id), Some(dan.id)));
        assert_eq!(everyone["has_more"], true);
        let after = everyone["last_id"].as_i64().expect("last_id");
        let (_, older) = with_key(&base, &root_key, Method::GET, &format!("/v1/admin/audit-events?after={after}&limit=100")).await;
        assert!(older["data"].as_array().expect("data").iter().all(|e| e["id"].as_i64().expect("id") < after));
        assert_eq!(older["has_more"], false);
    }
}

/// The portal's security log of a signed-in browser.
async fn back_page(app: &TestApp, browser: &Browser) -> String {
    let mut browser = Browser { cookie: browser.cookie.clone(), ..Browser::new() };
    browser.get(&app.url("/settings/security-log")).await.text().await.expect("html")
}

/// A second instance of the app on `db_url`, in this process; stopped when dropped.
struct SecondInstance {
    base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SecondInstance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn second_instance(db_url: &str, extra: &[(&str, String)]) -> SecondInstance {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut vars: std::collections::HashMap<String, String> = extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    vars.insert("WJ_LISTEN_ADDR".into(), base_url.trim_start_matches("http://").into());
    vars.insert("WJ_PUBLIC_URL".into(), base_url.clone());
    vars.insert("WJ_DATABASE_URL".into(), db_url.into());
    let config = workjet::server::config::Config::from_vars(&vars).expect("config");
    let app = workjet::server::startup::Application::build_with_listener(config, leptos_options(), listener).await.expect("app");
    let task = tokio::spawn(async move {
        let _ = app.run_until(std::future::pending()).await;
    });
    SecondInstance { base_url, task }
}

/// Two instances on one PostgreSQL and one Redis: what an administrator does on one is in
/// force on the other from the very next request, whatever the other had cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs WJ_TEST_POSTGRES_URL and WJ_TEST_REDIS_URL"]
async fn two_instances_on_postgres_and_redis_refuse_a_disabled_person_and_a_revoked_key_at_once() {
    let redis = required_env("WJ_TEST_REDIS_URL");
    required_env("WJ_TEST_POSTGRES_URL");
    let db = TestDatabase::create(Backend::Postgres).await.expect("database");
    let idp = TestIdp::start().await;
    let mut settings = idp.settings();
    settings.extend(admin_settings());
    settings.push(("WJ_REDIS_PREFIX", format!("admin-test-{}-{}:", std::process::id(), rand_number())));
    // A reaches Redis through a proxy the test can cut; B directly.
    let proxy = crate::helpers::CuttableProxy::start(crate::helpers::resolve(&redis, 6379).await).await;
    let mut settings_a = settings.clone();
    settings_a.push(("WJ_REDIS_URL", format!("redis://127.0.0.1:{}", proxy.addr.port())));
    settings.push(("WJ_REDIS_URL", redis));
    let db_url = db.url.clone();
    let a = spawn_app_on(db, &settings_a).await;
    let b = second_instance(&db_url, &settings).await;
    let (on_a, on_b) = (a.base_url.clone(), b.base_url.clone());

    let admin = sign_in_as(&on_a, &idp, ADMIN).await;
    let erin_browser = sign_in_as(&on_b, &idp, "erin@example.com").await;
    let erin = a.state.users.find_by_email("erin@example.com").await.expect("q").expect("erin");
    let frank = make_user(&a, "frank@example.com").await;
    let (_, erin_key) = make_key(&a, erin.id).await;
    let (frank_key_id, frank_key) = make_key(&a, frank.id).await;
    // B has seen (and caches) both keys and erin's session.
    for _ in 0..3 {
        assert_eq!(with_key(&on_b, &erin_key, Method::GET, "/v1/me").await.0, 200);
        assert_eq!(with_key(&on_b, &frank_key, Method::GET, "/v1/me").await.0, 200);
        assert_eq!(with_session(&on_b, &erin_browser, Method::GET, "/v1/me").await.0, 200);
    }

    let (status, body) = with_session(&on_a, &admin, Method::POST, &format!("/v1/admin/users/{}/disable", erin.id)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(with_key(&on_b, &erin_key, Method::GET, "/v1/me").await.0, 401, "erin's key, on B, at once");
    assert_eq!(with_session(&on_b, &erin_browser, Method::GET, "/v1/me").await.0, 401, "erin's session, on B, at once");
    assert_eq!(with_key(&on_b, &frank_key, Method::GET, "/v1/me").await.0, 200, "frank is not concerned");

    let (status, body) = with_session(&on_a, &admin, Method::DELETE, &format!("/v1/admin/keys/{frank_key_id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(with_key(&on_b, &frank_key, Method::GET, "/v1/me").await.0, 401, "frank's revoked key, on B, at once");

    // Enabled on B: erin signs in on A again; her old session stays ended.
    let (status, _) = with_session(&on_b, &admin, Method::POST, &format!("/v1/admin/users/{}/enable", erin.id)).await;
    assert_eq!(status, 200);
    let again = sign_in_as(&on_a, &idp, "erin@example.com").await;
    assert_eq!(with_session(&on_b, &again, Method::GET, "/v1/me").await.0, 200);
    assert_eq!(with_session(&on_a, &erin_browser, Method::GET, "/v1/me").await.0, 401);

    // A loses Redis: a disable A could not announce to B is refused, and changes nothing.
    proxy.cut();
    let (status, body) = with_session(&on_a, &admin, Method::POST, &format!("/v1/admin/users/{}/disable", erin.id)).await;
    assert_eq!(status, 503, "a disable B might not hear of is refused: {body}");
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
    let stored = a.state.users.find_by_email("erin@example.com").await.expect("q").expect("erin");
    assert!(!stored.disabled, "nothing changed");
    assert_eq!(with_session(&on_b, &again, Method::GET, "/v1/me").await.0, 200, "erin still works on B");
    // Redis back: the same disable holds on B at once.
    proxy.restore();
    let reconnected = crate::helpers::eventually(std::time::Duration::from_secs(10), || {
        let state = a.state.clone();
        async move { state.redis_status() == "up" }
    })
    .await;
    assert!(reconnected, "A reconnects to Redis");
    let (status, body) = with_session(&on_a, &admin, Method::POST, &format!("/v1/admin/users/{}/disable", erin.id)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(with_session(&on_b, &again, Method::GET, "/v1/me").await.0, 401, "erin's session, on B, at once");
    drop(b);
    a.stop().await;
}

fn rand_number() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}
