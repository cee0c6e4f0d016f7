//! Admission at the edges: a key whose state is known is answered from it (401 for revoked,
//! expired or disabled, every time — never 429), and the failed-authentication throttle
//! counts only lookups of never-seen keys that turn out unknown, so one stale client cannot
//! lock out its address.

use reqwest::{Method, header};
use serde_json::Value;
use workjet::domain::api_keys::NewKeyOptions;

use crate::{
    backend_tests,
    browser::{Browser, app_with_idp},
    helpers::*,
};

async fn me(app: &TestApp, key: &str) -> u16 {
    app.client
        .request(Method::GET, app.url("/v1/me"))
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn me_with_session(app: &TestApp, browser: &Browser) -> u16 {
    let cookie = format!("wj_session={}", browser.cookie.clone().expect("signed in"));
    app.client.get(app.url("/v1/me")).header(header::COOKIE, cookie).send().await.expect("request").status().as_u16()
}

/// A well-formed key (valid checksum) that was never issued.
fn unknown_key() -> String {
    workjet::domain::api_keys::PlainApiKey::generate().into_secret()
}

/// Counts the statuses of `n` calls.
async fn statuses(app: &TestApp, n: usize, key: impl Fn(usize) -> String) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..n {
        *counts.entry(me(app, &key(i)).await).or_insert(0) += 1;
    }
    counts
}

backend_tests! {
    async fn known_bad_keys_get_401_every_time_and_lock_nobody_out(backend) {
        // A budget of 3 failures a minute: if any of these counted, the fourth would be 429.
        let (app, _idp) = app_with_idp(backend, &[("WJ_AUTH_FAILURES_PER_MINUTE", "3".into())]).await;
        let mut browser = Browser::new();
        assert_eq!(browser.sign_in(&app, None).await, "/settings/api-keys");
        let owner: Value = {
            let cookie = format!("wj_session={}", browser.cookie.clone().expect("cookie"));
            app.client.get(app.url("/v1/me")).header(header::COOKIE, cookie).send().await.expect("me").json().await.expect("json")
        };
        let owner_id = owner["user"]["id"].as_i64().expect("id");
        let (_, valid) = make_key(&app, owner_id).await;
        let (revoked_id, revoked) = make_key(&app, owner_id).await;
        assert_eq!(me(&app, &revoked).await, 200, "the key works (and is cached) before it is revoked");
        app.state.keys.revoke(owner_id, revoked_id, &Default::default()).await.expect("revoke");
        let expiry = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
        let (_, expiring) =
            make_key_with(&app, owner_id, "expiring", NewKeyOptions { expires_at: Some(expiry), ..Default::default() }).await;
        assert_eq!(me(&app, &expiring).await, 200);
        let other = make_user(&app, "gone@example.com").await;
        let (_, disabled) = make_key(&app, other.id).await;
        assert_eq!(me(&app, &disabled).await, 200);
        assert!(app.state.users.disable(other.id, &app.state.sessions, &app.state.generations).await.expect("disable"));
        tokio::time::sleep(std::time::Duration::from_millis(1600)).await;

        for (what, key) in [("revoked", &revoked), ("expired", &expiring), ("disabled owner's", &disabled)] {
            let counts = statuses(&app, 40, |_| key.clone()).await;
            eprintln!("40 requests with a {what} key: {counts:?}");
            assert_eq!(counts.get(&401), Some(&40), "a {what} key gets 401 every time: {counts:?}");
        }
        let malformed = statuses(&app, 40, |i| format!("wj_live_{i:0>36}")).await;
        let missing = {
            let mut counts = std::collections::BTreeMap::new();
            for _ in 0..40 {
                *counts.entry(app.get("/v1/me").await.status().as_u16()).or_insert(0) += 1;
            }
            counts
        };
        eprintln!("40 malformed keys: {malformed:?}; 40 requests without credentials: {missing:?}");
        assert_eq!(malformed.get(&401), Some(&40));
        assert_eq!(missing.get(&401), Some(&40));

        assert_eq!(me(&app, &valid).await, 200, "the owner's valid key still works from the same address");
        assert_eq!(me_with_session(&app, &browser).await, 200, "and so does their session");
    }

    async fn only_never_seen_unknown_keys_are_throttled(backend) {
        let (app, _idp) = app_with_idp(backend, &[("WJ_AUTH_FAILURES_PER_MINUTE", "30".into())]).await;
        let mut browser = Browser::new();
        assert_eq!(browser.sign_in(&app, None).await, "/settings/api-keys");
        let user = make_user(&app, "ada@example.com").await;
        let (_, valid) = make_key(&app, user.id).await;
        let (revoked_id, revoked) = make_key(&app, user.id).await;
        assert_eq!(me(&app, &valid).await, 200, "used before the flood");
        assert_eq!(me(&app, &revoked).await, 200);
        app.state.keys.revoke(user.id, revoked_id, &Default::default()).await.expect("revoke");
        assert_eq!(me(&app, &revoked).await, 401);

        // One junk key repeated is one failure: it is remembered after its first lookup.
        let junk = unknown_key();
        let repeated = statuses(&app, 50, |_| junk.clone()).await;
        eprintln!("one unknown key sent 50 times: {repeated:?}");
        assert_eq!(repeated.get(&401), Some(&50));

        // 100 different unknown keys: the budget (30 a minute, one of them spent above) in
        // 401s, then 429s for never-seen keys only.
        let mut sequence = Vec::new();
        for _ in 0..100 {
            sequence.push(me(&app, &unknown_key()).await);
        }
        let unauthorized = sequence.iter().filter(|s| **s == 401).count();
        let throttled = sequence.iter().filter(|s| **s == 429).count();
        eprintln!("100 random unknown keys: {unauthorized} × 401, then {throttled} × 429");
        assert_eq!(unauthorized + throttled, 100, "{sequence:?}");
        assert!((29..=31).contains(&unauthorized), "the budget holds: {sequence:?}");
        assert!(sequence[..29].iter().all(|s| *s == 401) && sequence[40..].iter().all(|s| *s == 429), "{sequence:?}");

        // Known keys are answered from what is known, throttled address or not.
        assert_eq!(me(&app, &valid).await, 200, "a valid key used before the flood still works");
        assert_eq!(me(&app, &revoked).await, 401, "a revoked key is still 401, not 429");
        assert_eq!(me(&app, &junk).await, 401, "a remembered unknown key is still 401");
        assert_eq!(me(&app, "wj_live_not-a-key").await, 401, "malformed keys cost nothing and are never throttled");
        assert_eq!(me_with_session(&app, &browser).await, 200, "sessions are never throttled");
        // Only a never-seen key waits.
        let (status, headers, body) = error_of(
            app.client.get(app.url("/v1/me")).header(header::AUTHORIZATION, format!("Bearer {}", unknown_key())).send().await.expect("me"),
        )
        .await;
        assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")));
        assert_eq!(headers["ratelimit-policy"], "\"auth-failures\";q=30;w=60");
        assert!(headers.contains_key("retry-after"));
    }

    async fn no_key_spends_more_than_the_current_maximum(backend) {
        // A key given 100 a minute while the maximum allowed it; the operator has since
        // lowered the maximum to 3: the key spends at most 3.
        let app = spawn_app_with(backend, &[("WJ_RATE_LIMIT_PER_MINUTE", "2".into()), ("WJ_MAX_RATE_LIMIT_PER_MINUTE", "3".into())])
            .await
            .expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let earlier = workjet::domain::api_keys::Grant::user(workjet::domain::api_keys::RateLimits {
            default_per_minute: 2,
            max_per_minute: 100,
        });
        let options = NewKeyOptions { rate_limit_per_minute: Some(100), ..Default::default() };
        let (record, key) = app
            .state
            .keys
            .create(user.id, &earlier, workjet::domain::api_keys::KeyName::parse("old").expect("name"), options, &Default::default())
            .await
            .expect("create");
        assert_eq!(record.rate_limit_per_minute, Some(100));
        let key = key.into_secret();
        let counts = statuses(&app, 5, |_| key.clone()).await;
        eprintln!("a 100/min key under a maximum of 3: {counts:?}");
        assert_eq!((counts.get(&200), counts.get(&429)), (Some(&3), Some(&2)), "{counts:?}");
    }
}
