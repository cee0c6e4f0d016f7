//! The security log (`GET /v1/audit-events`, Settings > Security log) and a key's detail page
//! (its usage per hour and per day, its events): paging, privacy between users, permissions,
//! bad input, and the usage buckets.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use workjet::{
    domain::{
        api_keys::{Grant, KeyName, NewKeyOptions},
        audit::{self, AuditContext, action},
        usage::Granularity,
    },
    entities::{audit_events, usage_events},
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

async fn events(app: &TestApp, key: &str, query: &str) -> (u16, Value) {
    let response = app.call(Method::GET, &format!("/v1/audit-events{query}"), Some(&bearer(key)), None).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// `n` events of `user_id`, detailed as key creations named `{prefix}{i}`.
async fn record_events(app: &TestApp, user_id: i64, prefix: &str, n: usize) {
    let ctx = AuditContext::new(Some(user_id), Some("203.0.113.7".parse().expect("ip")), Some("curl/8.5.0"));
    for i in 0..n {
        audit::record_detailed(
            &app.state.db,
            &ctx,
            action::API_KEY_CREATE,
            Some(format!("api_key:{}", 1000 + i)),
            Some(json!({"name": format!("{prefix}{i}")})),
        )
        .await
        .expect("event");
    }
}

async fn usage_at(app: &TestApp, user_id: i64, key_id: Option<i64>, at: DateTime<Utc>, prompt: i64, completion: i64) {
    usage_events::ActiveModel {
        user_id: Set(user_id),
        api_key_id: Set(key_id),
        model: Set("gpt-test".into()),
        provider: Set(Some("stub".into())),
        status: Set(200),
        latency_ms: Set(12),
        prompt_tokens: Set(prompt),
        completion_tokens: Set(completion),
        streamed: Set(false),
        created_at: Set(at),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .expect("usage row");
}

backend_tests! {
    async fn audit_events_page_newest_first_and_each_user_sees_only_their_own(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let ada = make_user(&app, "ada@example.com").await;
        let bob = make_user(&app, "bob@example.com").await;
        let (_, ada_key) = make_key(&app, ada.id).await;
        let (_, bob_key) = make_key(&app, bob.id).await;
        record_events(&app, ada.id, "ada-", 13).await;
        record_events(&app, bob.id, "bob-", 3).await;
        record_events(&app, ada.id, "ada-late-", 12).await;
        // And one through the API itself: it is ada's, with her address.
        let created = app.post_json("/v1/keys", &ada_key, json!({"name": "From the API"})).await;
        assert_eq!(created.status(), 201);
        let raw_created = created.json::<Value>().await.expect("json")["key"].as_str().expect("raw").to_owned();

        let (status, first) = events(&app, &ada_key, "").await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["object"], "list");
        let data = first["data"].as_array().expect("data");
        assert_eq!(data.len(), 20, "20 by default");
        assert_eq!(first["has_more"], true);
        assert_eq!(first["last_id"], data[19]["id"]);
        assert_eq!(data[0]["action"], "api_key.create");
        assert_eq!(data[0]["object"], "audit_event");
        assert!(data[0]["created_at"].is_i64());
        assert_eq!(data[1]["detail"], json!({"name": "ada-late-11"}));
        assert_eq!(data[1]["ip"], "203.0.113.7");
        assert_eq!(data[1]["user_agent"], "curl/8.5.0");
        assert_eq!(data[1]["target"], "api_key:1011");
        let ids: Vec<i64> = data.iter().map(|e| e["id"].as_i64().expect("id")).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

        let after = first["last_id"].as_i64().expect("last_id");
        let (status, second) = events(&app, &ada_key, &format!("?after={after}&unknown=ignored")).await;
        assert_eq!(status, 200);
        let rest = second["data"].as_array().expect("data");
        assert_eq!(rest.len(), 6, "26 events of ada's in all: {second}");
        assert_eq!(second["has_more"], false);
        assert_eq!(second["last_id"], rest[5]["id"]);
        assert!(rest.iter().all(|e| e["id"].as_i64().expect("id") < after));

        let (_, past_the_end) = events(&app, &ada_key, &format!("?after={}", rest[5]["id"])).await;
        assert_eq!(past_the_end, json!({"object": "list", "data": [], "has_more": false, "last_id": null}));

        let (_, small) = events(&app, &ada_key, "?limit=26").await;
        assert_eq!(small["data"].as_array().expect("data").len(), 26);
        assert_eq!(small["has_more"], false, "exactly 26: nothing more");
        let (_, all) = events(&app, &ada_key, "?limit=100").await;
        let text = all.to_string();
        assert!(!text.contains("bob-"), "never another user's events");
        assert!(!text.contains(&raw_created[8..]) && !text.contains(&ada_key[8..]), "never a raw key");

        let (_, bobs) = events(&app, &bob_key, "?limit=100").await;
        let bobs = bobs["data"].as_array().expect("data").clone();
        assert_eq!(bobs.len(), 3);
        assert!(bobs.iter().all(|e| e["detail"]["name"].as_str().expect("name").starts_with("bob-")));
        // Bob's cursor pointing into ada's events shows nothing of hers.
        let (_, cursor) = events(&app, &bob_key, &format!("?after={}", ids[0] + 1)).await;
        assert!(cursor["data"].as_array().expect("data").iter().all(|e| e["detail"]["name"].as_str().expect("name").starts_with("bob-")));
    }

    async fn audit_events_need_keys_read_and_refuse_bad_input_naming_the_param(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let ada = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, ada.id).await;
        let inference = NewKeyOptions { permissions: Some(Permissions::restricted([Permission::Inference])), ..Default::default() };
        let (_, inference_key) = make_key_with(&app, ada.id, "inference only", inference).await;

        let refused = app.call(Method::GET, "/v1/audit-events", Some(&bearer(&inference_key)), None).await;
        let (status, _, body) = error_of(refused).await;
        assert_eq!(status, 403);
        assert_eq!(body["error"]["code"], "forbidden");
        let anonymous = app.call(Method::GET, "/v1/audit-events", None, None).await;
        assert_eq!(anonymous.status(), 401);

        for (query, param) in [
            ("?limit=0", "limit"),
            ("?limit=101", "limit"),
            ("?limit=ten", "limit"),
            ("?limit=", "limit"),
            ("?limit=-5", "limit"),
            ("?limit=5&limit=6", "limit"),
            ("?after=0", "after"),
            ("?after=abc", "after"),
            ("?after=-1", "after"),
            ("?after=1.5", "after"),
        ] {
            let response = app.call(Method::GET, &format!("/v1/audit-events{query}"), Some(&bearer(&key)), None).await;
            let (status, _, body) = error_of(response).await;
            assert_eq!(status, 400, "{query}: {body}");
            assert_eq!(body["error"]["code"], "invalid_request", "{query}");
            assert_eq!(body["error"]["param"], param, "{query}");
        }
        let (status, ok) = events(&app, &key, "?limit=1&after=999999").await;
        assert_eq!(status, 200, "an unknown id is only a cursor: {ok}");
    }

    async fn the_audit_log_filters_by_target_and_pages_back(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let ada = make_user(&app, "ada@example.com").await;
        let ctx = AuditContext::new(Some(ada.id), None, None);
        let (record, _) = app
            .state
            .keys
            .create(ada.id, &Grant::user(app.state.config.rate_limits()), KeyName::parse("CI").expect("name"), NewKeyOptions::default(), &ctx)
            .await
            .expect("key");
        record_events(&app, ada.id, "other-", 4).await;
        app.state.keys.revoke(ada.id, record.id, &ctx).await.expect("revoke");
        let target = format!("api_key:{}", record.id);

        let mine = app.state.audit.list(ada.id, None, 10, Some(&target)).await.expect("list");
        let actions: Vec<&str> = mine.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["api_key.revoke", "api_key.create"], "only the key's events, newest first");
        let older = app.state.audit.list(ada.id, Some(mine[0].id), 10, Some(&target)).await.expect("list");
        assert_eq!(older.len(), 1);
        assert_eq!(older[0].id, mine[1].id);
        assert!(app.state.audit.list(ada.id + 1, None, 10, None).await.expect("list").is_empty(), "another user has none of them");

        let all = app.state.audit.list(ada.id, None, 100, None).await.expect("list");
        assert_eq!(all.len(), 6);
        // Pages of 4: the newest page has nothing newer; the next one's newer page is the first.
        let first = app.state.audit.page(ada.id, None, 4, None).await.expect("page");
        assert!(first.has_more);
        let cursor = first.events.last().expect("event").id;
        assert_eq!(app.state.audit.newer_page(ada.id, cursor, 4, None).await.expect("newer"), Some(None));
        let second = app.state.audit.page(ada.id, Some(cursor), 4, None).await.expect("page");
        assert_eq!(second.events.len(), 2);
        assert!(!second.has_more);
        assert_eq!(app.state.audit.newer_page(ada.id, all[0].id + 1, 4, None).await.expect("newer"), None);
        // Before the oldest event (an empty page), the newer page holds the 4 oldest: the page before all[1].
        assert_eq!(app.state.audit.newer_page(ada.id, all[5].id, 4, None).await.expect("newer"), Some(Some(all[1].id)));
    }

    async fn usage_is_bucketed_per_hour_and_day_for_one_key_of_one_owner(backend) {
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let ada = make_user(&app, "ada@example.com").await;
        let bob = make_user(&app, "bob@example.com").await;
        let (key, _) = make_key(&app, ada.id).await;
        let (other_key, _) = make_key(&app, ada.id).await;
        // 45 minutes past an hour, so that "15 minutes ago" is this hour.
        let now = DateTime::from_timestamp(Utc::now().timestamp().div_euclid(3_600) * 3_600 + 45 * 60, 0).expect("now");
        usage_at(&app, ada.id, Some(key), now - Duration::minutes(15), 10, 5).await;
        usage_at(&app, ada.id, Some(key), now - Duration::minutes(15), 20, 0).await;
        usage_at(&app, ada.id, Some(key), now - Duration::hours(5), 1, 1).await;
        usage_at(&app, ada.id, Some(key), now - Duration::hours(25), 100, 0).await;
        usage_at(&app, ada.id, Some(key), now - Duration::days(40), 7, 7).await;
        usage_at(&app, ada.id, Some(key), now + Duration::hours(2), 7, 7).await;
        usage_at(&app, ada.id, Some(other_key), now - Duration::minutes(15), 50, 50).await;
        usage_at(&app, ada.id, None, now - Duration::minutes(15), 50, 50).await;
        usage_at(&app, bob.id, Some(key), now - Duration::minutes(15), 60, 60).await;

        let hourly = app.state.usage.series(ada.id, key, Granularity::Hour, now).await.expect("hourly");
        assert_eq!(hourly.len(), 24);
        assert_eq!(hourly[23].start.timestamp(), now.timestamp() - 45 * 60, "the last bucket is this hour");
        assert_eq!((hourly[23].requests, hourly[23].tokens), (2, 35));
        assert_eq!((hourly[18].requests, hourly[18].tokens), (1, 2));
        assert_eq!(hourly.iter().map(|b| b.requests).sum::<u64>(), 3, "{hourly:?}");

        let daily = app.state.usage.series(ada.id, key, Granularity::Day, now).await.expect("daily");
        assert_eq!(daily.len(), 30);
        assert_eq!(daily[29].start.timestamp(), now.timestamp().div_euclid(86_400) * 86_400, "the last bucket is today (UTC)");
        let first_day = now.timestamp().div_euclid(86_400) - 29;
        let mut expected = [(0u64, 0u64); 30];
        for (at, tokens) in [(now - Duration::minutes(15), 15), (now - Duration::minutes(15), 20), (now - Duration::hours(5), 2), (now - Duration::hours(25), 100)] {
            let slot = &mut expected[(at.timestamp().div_euclid(86_400) - first_day) as usize];
            slot.0 += 1;
            slot.1 += tokens;
        }
        assert_eq!(daily.iter().map(|b| (b.requests, b.tokens)).collect::<Vec<_>>(), expected.to_vec());

        let bobs = app.state.usage.series(bob.id, key, Granularity::Day, now).await.expect("bob");
        assert_eq!((bobs.iter().map(|b| b.requests).sum::<u64>(), bobs.iter().map(|b| b.tokens).sum::<u64>()), (1, 120), "bob's own rows only");
        let none = app.state.usage.series(ada.id, key + 1000, Granularity::Hour, now).await.expect("none");
        assert!(none.iter().all(|b| b.requests == 0 && b.tokens == 0));
    }

    async fn the_portal_shows_the_log_and_a_key_only_to_its_owner(backend) {
        let (app, idp) = app_with_idp(backend, &[]).await;
        let mut ada = Browser::new();
        ada.sign_in(&app, None).await;
        let me: Value = ada.get(&app.url("/v1/me")).await.json().await.expect("me");
        let ada_id = me["user"]["id"].as_i64().expect("id");
        let ctx = AuditContext::new(Some(ada_id), Some("198.51.100.4".parse().expect("ip")), Some("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"));
        let (record, raw) = app
            .state
            .keys
            .create(ada_id, &Grant::user(app.state.config.rate_limits()), KeyName::parse("Nightly evals").expect("name"), NewKeyOptions::default(), &ctx)
            .await
            .expect("key");
        let raw = raw.into_secret();
        usage_at(&app, ada_id, Some(record.id), Utc::now() - Duration::minutes(1), 40, 2).await;

        let log = ada.server_fn(&app, "security_log", "").await;
        assert_eq!(log.status(), 200);
        let log: Value = log.json().await.expect("json");
        let actions: Vec<&str> = log["events"].as_array().expect("events").iter().map(|e| e["action"].as_str().expect("action")).collect();
        assert_eq!(actions, ["api_key.create", "session.sign_in"]);
        assert_eq!(log["newer"], Value::Null);
        assert_eq!(log["older"], Value::Null);
        // The page before the newest event: the sign-in, and a way back to the first page.
        let newest = log["events"][0]["id"].as_i64().expect("id");
        let back: Value = ada.server_fn(&app, "security_log", &format!("before={newest}")).await.json().await.expect("json");
        assert_eq!(back["events"].as_array().expect("events").len(), 1);
        assert_eq!(back["newer"], json!("First"), "{back}");

        let detail = ada.server_fn(&app, "api_key_detail", &format!("id={}", record.id)).await;
        assert_eq!(detail.status(), 200);
        let detail: Value = detail.json().await.expect("json");
        assert_eq!(detail["key"]["name"], "Nightly evals");
        assert_eq!(detail["hourly"].as_array().expect("hourly").len(), 24);
        assert_eq!(detail["daily"].as_array().expect("daily").len(), 30);
        assert_eq!(detail["hourly"][23]["requests"].as_u64().unwrap_or(0) + detail["hourly"][22]["requests"].as_u64().unwrap_or(0), 1);
        assert_eq!(detail["events"][0]["action"], "api_key.create");
        assert!(!detail.to_string().contains(&raw[8..]), "never the raw key");

        let page = ada.get(&app.url(&format!("/settings/api-keys/{}", record.id))).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.expect("html");
        assert!(html.contains("Nightly evals") && html.contains("All models"), "settings shown");
        assert_eq!(html.matches(r#"role="img""#).count(), 2, "two charts");
        assert!(html.contains("<title>"), "bar tooltips");
        let log_page = ada.get(&app.url("/settings/security-log")).await;
        assert_eq!(log_page.status(), 200);
        let html = log_page.text().await.expect("html");
        assert!(html.contains("Signed in") && html.contains("Security log"), "the log page lists the sign-in");

        // Malformed arguments are the caller's mistake; a path that is no id is not found.
        assert_eq!(ada.server_fn(&app, "api_key_detail", "id=abc").await.status(), 400);
        assert_eq!(ada.server_fn(&app, "api_key_detail", "id=9223372036854775808").await.status(), 400);
        assert_eq!(ada.server_fn(&app, "security_log", "before=abc").await.status(), 400);
        assert_eq!(ada.get(&app.url("/settings/api-keys/abc")).await.status(), 404);
        assert_eq!(ada.server_fn(&app, "api_key_detail", "id=987654321").await.status(), 404);

        // Mallory gets nothing of ada's.
        idp.set(|b| {
            b.sub = "2000002".into();
            b.email = "mallory@example.com".into();
        });
        let mut mallory = Browser::new();
        mallory.sign_in(&app, None).await;
        let refused = mallory.server_fn(&app, "api_key_detail", &format!("id={}", record.id)).await;
        assert_eq!(refused.status(), 404);
        assert!(refused.text().await.expect("text").contains("That API key does not exist."));
        let page = mallory.get(&app.url(&format!("/settings/api-keys/{}", record.id))).await;
        assert_eq!(page.status(), 404);
        let html = page.text().await.expect("html");
        assert!(html.contains("That API key does not exist.") && !html.contains("Nightly evals"));
        let theirs: Value = mallory.server_fn(&app, "security_log", "").await.json().await.expect("json");
        assert_eq!(theirs["events"].as_array().expect("events").len(), 1, "only mallory's sign-in: {theirs}");
        let stored = audit_events::Entity::find().filter(audit_events::Column::ActorUserId.eq(ada_id)).all(&app.state.db).await.expect("rows");
        assert!(stored.iter().all(|e| !e.detail.clone().unwrap_or_default().contains(&raw[8..])));
    }
}
