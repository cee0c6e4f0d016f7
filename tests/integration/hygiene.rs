//! The release binary as an operator runs it: secrets never reach its logs (at TRACE) or its
//! database file in the clear, and SIGTERM lets running streams finish while refusing new
//! connections.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::header;
use serde_json::{Value, json};

use crate::{
    browser::location,
    idp::{CLIENT_SECRET, TestIdp},
    process::Process,
    upstream::{Fake, Script},
};

const PROVIDER_KEY: &str = "sk-hygiene-provider-secret-5f2a9c1e7b";
/// A `WJ_SECRET_KEY` (base64 of 32 bytes) that must appear nowhere.
const SECRET_KEY: &str = "q3T8mZ1xV0cR7yN4bK2wE9sH6uJ5aL1dF0gP8oI3tQs=";

fn provider_config(dir: &std::path::Path, fake: &Fake) -> String {
    let path = dir.join("workjet.toml");
    let toml = format!(
        "[upstream]\nconnect_ms = 500\nfirst_byte_ms = 3000\nidle_ms = 3000\n\n{}",
        fake.provider_toml("fake-openai", "{ \"gpt-public\" = \"upstream-model\" }", Some("HYGIENE_PROVIDER_KEY"))
    );
    std::fs::write(&path, toml).expect("write config");
    path.display().to_string()
}

/// Creates a key through `/v1/keys` with a session cookie; the raw key, shown this once.
async fn create_key(client: &reqwest::Client, base: &str, cookie: &str, name: &str) -> String {
    let created: Value = client
        .post(format!("{base}/v1/keys"))
        .header(header::COOKIE, cookie)
        .header(header::ORIGIN, base)
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    created["key"].as_str().expect("the raw key, once").to_owned()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_trace_logs_or_the_database_file() {
    let idp = TestIdp::start().await;
    let fake = Fake::openai().await;
    let config_dir = tempfile::tempdir().expect("dir");
    let mut env = idp.settings();
    env.extend([
        ("RUST_LOG", "trace".to_owned()),
        ("WJ_CONFIG", provider_config(config_dir.path(), &fake)),
        ("HYGIENE_PROVIDER_KEY", PROVIDER_KEY.to_owned()),
        ("WJ_SECRET_KEY", SECRET_KEY.to_owned()),
    ]);
    let mut server = Process::start(&env).await;
    let base = server.base.clone();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    // Sign in, keeping the authorization code, the sealed sign-in cookie and the session cookie.
    let start = client.get(format!("{base}/auth/google")).send().await.expect("start");
    let set_cookie_of = |r: &reqwest::Response, name: &str| -> Option<String> {
        let prefix = format!("{name}=");
        r.headers().get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
            v.strip_prefix(prefix.as_str()).map(|rest| rest.split(';').next().unwrap_or_default().to_owned()).filter(|v| !v.is_empty())
        })
    };
    assert_eq!(set_cookie_of(&start, "wj_session"), None, "no session before sign-in");
    let signin = set_cookie_of(&start, "wj_signin").expect("the sealed sign-in cookie");
    let at_provider = client.get(location(&start)).send().await.expect("authorize");
    let callback = location(&at_provider);
    let code = url::Url::parse(&callback).expect("url").query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned();
    let landed = client.get(&callback).header(header::COOKIE, format!("wj_signin={signin}")).send().await.expect("callback");
    let session = set_cookie_of(&landed, "wj_session").expect("a session cookie");
    let cookie = format!("wj_session={session}");

    // Create a key in the portal (server function) and one through /v1.
    let created: Value = client
        .post(format!("{base}/api/create_api_key"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, &base)
        .json(&json!({"request": {"name": "hygiene", "permissions": "all"}}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let portal_key = created["secret"].as_str().expect("the raw key, once").to_owned();
    let portal_key_id = created["key"]["id"].as_i64().expect("id");
    let api_key = create_key(&client, &base, &cookie, "second").await;

    // Use them: plain, through the gateway (plain and streamed), and wrongly.
    for key in [&portal_key, &api_key] {
        let me = client.get(format!("{base}/v1/me")).bearer_auth(key).send().await.expect("me");
        assert_eq!(me.status(), 200);
    }
    let chat = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&api_key)
        .json(&json!({"model": "gpt-public", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("chat");
    assert_eq!(chat.status(), 200);
    let streamed = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&api_key)
        .json(&json!({"model": "gpt-public", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("chat");
    assert!(streamed.text().await.expect("stream").contains("[DONE]"));
    assert!(fake.requests().iter().all(|(h, _)| h[header::AUTHORIZATION] == format!("Bearer {PROVIDER_KEY}")));
    let mut near_miss = api_key.clone().into_bytes();
    near_miss[12] = if near_miss[12] == b'x' { b'y' } else { b'x' };
    let near_miss = String::from_utf8(near_miss).expect("ascii");
    assert_eq!(client.get(format!("{base}/v1/me")).bearer_auth(&near_miss).send().await.expect("me").status(), 401);
    let revoked = client
        .post(format!("{base}/api/revoke_api_key"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, &base)
        .form(&[("id", portal_key_id.to_string())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    assert_eq!(client.get(format!("{base}/v1/me")).bearer_auth(&portal_key).send().await.expect("me").status(), 401);
    // Edit and roll the /v1 key (through the API and the portal): the rolled key is a secret too.
    let api_key_id = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(&api_key)
        .send()
        .await
        .expect("me")
        .json::<Value>()
        .await
        .expect("json")["key"]["id"]
        .clone();
    let edited = client
        .patch(format!("{base}/v1/keys/{api_key_id}"))
        .bearer_auth(&api_key)
        .json(&json!({"name": "second, edited", "models": ["gpt-public"], "daily_token_limit": 100000}))
        .send()
        .await
        .expect("edit");
    assert_eq!(edited.status(), 200);
    let rolled: Value = client
        .post(format!("{base}/api/roll_api_key"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, &base)
        .form(&[("id", api_key_id.to_string()), ("expire_old_in_seconds", "60".to_owned())])
        .send()
        .await
        .expect("roll")
        .json()
        .await
        .expect("json");
    let rolled_key = rolled["secret"].as_str().unwrap_or_else(|| panic!("the rolled key, once: {rolled}")).to_owned();
    assert_eq!(client.get(format!("{base}/v1/me")).bearer_auth(&rolled_key).send().await.expect("me").status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logout = client.post(format!("{base}/auth/logout")).header(header::COOKIE, &cookie).header(header::ORIGIN, &base).send().await;
    assert!(logout.expect("logout").status().is_redirection());

    server.sigterm();
    assert!(server.wait(Duration::from_secs(15)).await.success());
    let logs = server.output();
    let trace_lines = logs.lines().filter(|l| l.contains("TRACE")).count();
    assert!(trace_lines > 20, "the logs really were at TRACE ({trace_lines} TRACE lines)");
    let secrets: Vec<(&str, String)> = vec![
        ("the portal key", portal_key.clone()),
        ("the /v1 key", api_key.clone()),
        ("the rolled key", rolled_key.clone()),
        ("the random part of the /v1 key", api_key[8..40].to_owned()),
        ("a near-miss key", near_miss),
        ("the session token", session.clone()),
        ("the OAuth code", code),
        ("the OAuth client secret", CLIENT_SECRET.to_owned()),
        ("the provider key", PROVIDER_KEY.to_owned()),
        ("WJ_SECRET_KEY", SECRET_KEY.to_owned()),
        ("the sealed sign-in cookie", signin.clone()),
    ];
    for (what, secret) in &secrets {
        assert!(!logs.contains(secret.as_str()), "{what} appears in the logs");
    }
    let database = server.database_bytes();
    assert!(database.len() > 4096, "the database file was read");
    for (what, secret) in &secrets[..6] {
        assert!(!contains(&database, secret), "{what} appears in the database file");
    }
    eprintln!(
        "secret hygiene: {} log lines ({trace_lines} at TRACE) and {} database bytes searched for {} secrets: 0 found",
        logs.lines().count(),
        database.len(),
        secrets.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_streams_finish_and_refuses_new_connections() {
    let fake = Fake::openai().await;
    fake.script(Script::Normal { chunks: 15, gap: Duration::from_millis(100) });
    let config_dir = tempfile::tempdir().expect("dir");
    let idp = TestIdp::start().await;
    let mut env = idp.settings();
    env.extend([
        ("WJ_CONFIG", provider_config(config_dir.path(), &fake)),
        ("HYGIENE_PROVIDER_KEY", PROVIDER_KEY.to_owned()),
        ("WJ_SHUTDOWN_GRACE_SECS", "10".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    let mut server = Process::start(&env).await;
    let base = server.base.clone();
    // Sign in, then make a key with the session.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut browser = crate::browser::Browser::new();
    let landed = browser.sign_in_at(&base, None).await;
    assert!(landed.ends_with("/settings/api-keys"), "{landed}");
    let cookie = format!("wj_session={}", browser.cookie.clone().expect("cookie"));
    let key = create_key(&client, &base, &cookie, "shutdown").await;

    let streams: Vec<_> = (0..4)
        .map(|_| {
            let (client, base, key) = (client.clone(), base.clone(), key.clone());
            tokio::spawn(async move {
                let response = client
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&json!({"model": "gpt-public", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .expect("stream");
                assert_eq!(response.status(), 200);
                let mut body = String::new();
                let mut chunks = response.bytes_stream();
                while let Some(chunk) = chunks.next().await {
                    match chunk {
                        Ok(chunk) => body.push_str(&String::from_utf8_lossy(&chunk)),
                        Err(e) => {
                            body.push_str(&format!("\n<stream broke: {e}>"));
                            break;
                        }
                    }
                }
                body
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let signalled = Instant::now();
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.is_err();
    let mut finished = 0;
    for stream in streams {
        let body = stream.await.expect("task");
        assert!(body.contains("data: [DONE]"), "the stream finished: {body}\n--- server output:\n{}", server.output());
        assert!(body.contains("part14"), "every chunk arrived");
        finished += 1;
    }
    let status = server.wait(Duration::from_secs(12)).await;
    assert!(status.success(), "{status}");
    assert!(refused, "new connections are refused once SIGTERM arrived");
    eprintln!("SIGTERM: {finished}/4 running streams finished, exit after {:?}", signalled.elapsed());
}
