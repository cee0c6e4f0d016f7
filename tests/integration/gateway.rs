//! `/v1/models` and `/v1/chat/completions` through fake upstreams: round trips both ways,
//! model mapping, translation, streaming timing, cancellation, timeouts and failures.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::header;
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::*,
    upstream::{Fake, Script},
};

pub const PROVIDER_KEY: &str = "sk-provider-secret-0123456789abcdef";

/// An app whose `workjet.toml` routes `gpt-public` → the OpenAI fake (as `upstream-model`),
/// `same-name` → the OpenAI fake unchanged, and `claude-4-sonnet` → the Anthropic fake.
pub async fn gateway_app(backend: Backend, openai: &Fake, anthropic: &Fake, extra: &[(&str, String)]) -> Option<(TestApp, String)> {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("workjet.toml");
    let toml = format!(
        "[upstream]\nconnect_ms = 500\nfirst_byte_ms = 1500\nidle_ms = 1500\n\n{}\n{}",
        openai.provider_toml(
            "fake-openai",
            "{ \"gpt-public\" = \"upstream-model\", \"same-name\" = \"same-name\" }",
            Some("FAKE_PROVIDER_KEY")
        ),
        anthropic.provider_toml("fake-anthropic", "{ \"claude-4-sonnet\" = \"claude-sonnet-4-20250514\" }", Some("FAKE_PROVIDER_KEY")),
    );
    std::fs::write(&path, toml).expect("write config");
    let mut settings: Vec<(&str, String)> = vec![
        ("WJ_CONFIG", path.display().to_string()),
        ("FAKE_PROVIDER_KEY", PROVIDER_KEY.into()),
        ("WJ_RATE_LIMIT_PER_MINUTE", "10000".into()),
    ];
    settings.extend(extra.iter().cloned());
    let app = spawn_app_with(backend, &settings).await?;
    let user = make_user(&app, "ada@example.com").await;
    let (_, key) = make_key(&app, user.id).await;
    Some((app, key))
}

async fn chat(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post_json("/v1/chat/completions", key, body).await
}

fn hello(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, world!"}], "stream": stream})
}

/// The `data:` payloads of an SSE body.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n").filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_owned)).collect()
}

fn content_of(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

async fn usage_rows(app: &TestApp) -> Vec<(String, i64, i64, i64)> {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = app.state.db.get_database_backend();
    app.state
        .db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT model, status, prompt_tokens, completion_tokens FROM usage_events ORDER BY id",
        ))
        .await
        .expect("query")
        .into_iter()
        .map(|r| {
            (
                r.try_get("", "model").expect("m"),
                i64::from(r.try_get::<i16>("", "status").expect("s")),
                r.try_get("", "prompt_tokens").expect("p"),
                r.try_get("", "completion_tokens").expect("c"),
            )
        })
        .collect()
}

async fn wait_for_usage(app: &TestApp, n: usize) -> Vec<(String, i64, i64, i64)> {
    for _ in 0..50 {
        let rows = usage_rows(app).await;
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    usage_rows(app).await
}

backend_tests! {
    async fn models_lists_the_configured_public_names(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        let models: Value = app.client.get(app.url("/v1/models")).header(header::AUTHORIZATION, format!("Bearer {key}")).send().await.expect("get").json().await.expect("json");
        let ids: Vec<&str> = models["data"].as_array().expect("array").iter().map(|m| m["id"].as_str().expect("id")).collect();
        assert_eq!(ids, vec!["claude-4-sonnet", "gpt-public", "same-name"]);
        assert_eq!(models["data"][0]["owned_by"], "fake-anthropic");
        assert_eq!(models["data"][0]["object"], "model");
    }

    async fn openai_round_trip_maps_the_model_and_never_forwards_client_credentials(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        let response = app.client.post(app.url("/v1/chat/completions"))
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::COOKIE, "wj_session=should-not-travel")
            .json(&hello("gpt-public", false)).send().await.expect("request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from the fake.");
        let (headers, sent) = openai.requests().pop().expect("the fake got the request");
        assert_eq!(sent["model"], "upstream-model", "public name mapped to the upstream id");
        assert_eq!(sent["messages"][1]["content"], "Hello, world!");
        assert_eq!(headers[header::AUTHORIZATION], format!("Bearer {PROVIDER_KEY}"));
        assert!(headers.get(header::COOKIE).is_none(), "cookies never reach the upstream");
        for (name, value) in &headers {
            assert!(!value.as_bytes().windows(key.len()).any(|w| w == key.as_bytes()), "the client's key reached the upstream in {name}");
        }
        // Unchanged model names go through byte for byte.
        let response = chat(&app, &key, json!({"model": "same-name", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5})).await;
        assert_eq!(response.status(), 200);
        let (_, sent) = openai.requests().pop().expect("request");
        assert_eq!(sent, json!({"model": "same-name", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}));
        let rows = wait_for_usage(&app, 2).await;
        assert_eq!(rows[0], ("gpt-public".to_owned(), 200, 11, 7), "usage recorded off the request path");
    }

    async fn openai_streams_relay_chunks_and_usage(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        let response = chat(&app, &key, hello("gpt-public", true)).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()[header::CONTENT_TYPE].to_str().expect("ascii").starts_with("text/event-stream"));
        assert!(response.headers().contains_key("x-ratelimit-remaining"));
        let data = events(&response.text().await.expect("body"));
        assert_eq!(content_of(&data), "part0 part1 part2 ");
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        assert!(data.iter().all(|e| !e.contains("\"usage\"")), "no usage chunk the client did not ask for");
        let (_, sent) = openai.requests().pop().expect("request");
        assert_eq!(sent["stream_options"]["include_usage"], true, "asked upstream anyway, for accounting");
        // With include_usage the usage chunk is relayed.
        let mut body = hello("gpt-public", true);
        body["stream_options"] = json!({"include_usage": true});
        let data = events(&chat(&app, &key, body).await.text().await.expect("body"));
        let usage: Value = serde_json::from_str(data.iter().find(|e| e.contains("\"usage\"")).expect("usage chunk")).expect("json");
        assert_eq!(usage["usage"]["total_tokens"], 18);
        let rows = wait_for_usage(&app, 2).await;
        assert_eq!((rows[0].2, rows[0].3), (11, 7), "streamed usage recorded");
    }

    async fn anthropic_round_trips_are_translated_both_ways(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        let mut request = hello("claude-4-sonnet", false);
        request["tools"] = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
        let response = chat(&app, &key, request).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "claude-4-sonnet");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from the fake.");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"], json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}));
        let (headers, sent) = anthropic.requests().pop().expect("request");
        assert_eq!(headers["x-api-key"], PROVIDER_KEY);
        assert_eq!(headers["anthropic-version"], "2023-06-01");
        assert!(headers.get(header::AUTHORIZATION).is_none());
        assert_eq!(sent["model"], "claude-sonnet-4-20250514");
        assert_eq!(sent["system"], "Be brief.");
        assert_eq!(sent["max_tokens"], 4096);
        assert_eq!(sent["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "Hello, world!"}]}]));
        assert_eq!(sent["tools"][0]["name"], "lookup");

        let mut streamed = hello("claude-4-sonnet", true);
        streamed["stream_options"] = json!({"include_usage": true});
        let response = chat(&app, &key, streamed).await;
        assert_eq!(response.status(), 200);
        let data = events(&response.text().await.expect("body"));
        assert_eq!(content_of(&data), "part0 part1 part2 ");
        let parsed: Vec<Value> = data.iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
        assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(parsed.iter().all(|c| c["object"] == "chat.completion.chunk"));
        assert!(parsed.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
        assert_eq!(parsed.last().expect("usage")["usage"]["total_tokens"], 18);
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    }

    async fn upstream_failures_map_to_openai_errors(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        let cases = [
            (Script::Html(500), 502, "upstream_error"),
            (Script::Html(503), 502, "upstream_error"),
            (Script::Garbage, 502, "upstream_error"),
            (Script::BadRequest, 400, "upstream_error"),
            (Script::RateLimited, 429, "upstream_rate_limited"),
            (Script::RejectCredentials, 502, "upstream_error"),
        ];
        for (script, status, code) in cases {
            openai.script(script.clone());
            let (got, headers, body) = error_of(chat(&app, &key, hello("gpt-public", false)).await).await;
            assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{script:?}: {body}");
            let text = body.to_string();
            assert!(!text.contains("sk-prov") && !text.contains(PROVIDER_KEY), "{script:?}: the provider key leaked: {text}");
            assert!(!text.contains("<html>"), "{script:?}: the upstream's HTML is not relayed");
            if matches!(script, Script::RateLimited) {
                assert_eq!(headers[header::RETRY_AFTER], "7", "the upstream's Retry-After is passed through");
            }
            if matches!(script, Script::BadRequest) {
                assert!(body["error"]["message"].as_str().expect("m").contains("max_tokens is too large"));
            }
        }
    }

    async fn an_oversized_complete_answer_is_a_502_and_the_upstream_is_dropped(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        // One declares 1 GiB and is refused before a byte is read; the other never ends and is
        // cut at the bound (32 MiB) — well inside the 1.5 s idle timeout, so not a 504.
        for script in [Script::DeclaredHuge, Script::Endless] {
            openai.script(script.clone());
            let (status, _, body) = error_of(chat(&app, &key, hello("gpt-public", false)).await).await;
            assert_eq!((status, body["error"]["code"].as_str()), (502, Some("upstream_error")), "{script:?}: {body}");
            assert_eq!(body["error"]["message"], "The model provider's answer was larger than 32 MiB.", "{script:?}");
        }
        assert!(
            eventually(Duration::from_secs(5), || async { openai.disconnected() }).await,
            "the endless answer's connection is dropped, not drained"
        );
        openai.script(Script::Normal { chunks: 3, gap: Duration::from_millis(5) });
        let response = chat(&app, &key, hello("gpt-public", false)).await;
        assert_eq!(response.status(), 200, "the provider is not put on a cool-down by a bad answer");
        let rows = wait_for_usage(&app, 3).await;
        let statuses: Vec<i64> = rows.iter().map(|r| r.1).collect();
        assert_eq!(statuses, [502, 502, 200], "each request's usage is recorded once, with the status answered");
    }

    async fn an_unreachable_upstream_is_a_fast_502(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dead_addr = dead.local_addr().expect("addr");
        drop(dead);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("workjet.toml");
        std::fs::write(&path, format!("[[providers]]\nname = \"down\"\nkind = \"openai\"\nbase_url = \"http://{dead_addr}/v1\"\nmodels = [\"down-model\"]\n")).expect("write");
        let app = spawn_app_with(backend, &[("WJ_CONFIG", path.display().to_string())]).await.expect("app");
        let user = make_user(&app, "ada@example.com").await;
        let (_, key) = make_key(&app, user.id).await;
        let started = Instant::now();
        let (status, _, body) = error_of(chat(&app, &key, hello("down-model", false)).await).await;
        assert_eq!((status, body["error"]["code"].as_str()), (502, Some("upstream_error")));
        assert!(started.elapsed() < Duration::from_secs(2), "refused connections fail fast");
        drop((openai, anthropic));
    }

    async fn a_hanging_upstream_times_out_with_504(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        openai.script(Script::Hang);
        let started = Instant::now();
        let (status, _, body) = error_of(chat(&app, &key, hello("gpt-public", false)).await).await;
        assert_eq!((status, body["error"]["code"].as_str()), (504, Some("upstream_timeout")));
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    async fn a_stalled_or_broken_stream_ends_with_an_error_event(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        for (script, code) in [(Script::Stall, "upstream_timeout"), (Script::ResetMidStream, "upstream_error")] {
            openai.script(script.clone());
            let started = Instant::now();
            let response = chat(&app, &key, hello("gpt-public", true)).await;
            assert_eq!(response.status(), 200, "{script:?}: headers were already sent");
            let body = tokio::time::timeout(Duration::from_secs(10), response.text()).await.expect("the stream ends, never hangs").expect("body");
            let data = events(&body);
            let last: Value = serde_json::from_str(data.last().expect("an event")).expect("json");
            assert_eq!(last["error"]["code"], code, "{script:?}: {body}");
            assert!(started.elapsed() < Duration::from_secs(6), "{script:?}");
        }
    }

    async fn a_client_disconnect_cancels_the_upstream_request(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        openai.script(Script::HoldAfterFirst);
        let response = chat(&app, &key, hello("gpt-public", true)).await;
        let mut stream = response.bytes_stream();
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("first chunk arrives while the rest is held back");
        assert!(first.is_some());
        assert!(!openai.disconnected());
        drop(stream);
        assert!(eventually(Duration::from_secs(5), || async { openai.disconnected() }).await, "the fake saw the gateway hang up");
        openai.release();
    }

    async fn threads_of_their_own_serve_every_request_and_drain_streams_at_shutdown(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[("WJ_SERVE_THREADS", "2".into())]).await.expect("app");
        let threads = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("tasks")
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // The serving threads start when the app's task runs, a moment after it is spawned.
        let serving = || async { ["workjet-serve-0", "workjet-serve-1"].iter().all(|name| threads().iter().any(|t| t == name)) };
        assert!(eventually(Duration::from_secs(5), serving).await, "two threads serve: {:?}", threads());
        // Many connections at once, so that both threads accept some; each is authenticated
        // (the peer address is known) and relayed.
        let answers = futures::future::join_all((0..24).map(|_| async {
            let response = reqwest::Client::new()
                .post(app.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&hello("gpt-public", false))
                .send()
                .await
                .expect("answered");
            (response.status(), response.json::<Value>().await.expect("json"))
        }))
        .await;
        for (status, body) in answers {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["object"], "chat.completion", "{body}");
        }
        assert_eq!(app.get("/v1/models").await.status(), 401, "no key, no models");

        // A stream in flight when the server is told to stop is relayed to its end; no new
        // connection is accepted meanwhile.
        openai.script(Script::HoldAfterFirst);
        let mut stream = chat(&app, &key, hello("gpt-public", true)).await.bytes_stream();
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("first chunk").expect("chunk").expect("bytes");
        let addr = app.addr;
        let stopping = tokio::spawn(app.stop());
        let refused = eventually(Duration::from_secs(5), || async { tokio::net::TcpStream::connect(addr).await.is_err() }).await;
        assert!(refused, "the listening socket closes when the server stops");
        openai.release();
        let mut text = String::from_utf8_lossy(&first).into_owned();
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("the rest comes") {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
        }
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert_eq!(content_of(&events(&text)), "part0 part1 part2 ");
        tokio::time::timeout(Duration::from_secs(15), stopping).await.expect("the server stops").expect("stopped");
    }

    async fn the_first_chunk_leaves_before_the_upstream_finishes(backend) {
        let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
        let (app, key) = gateway_app(backend, &openai, &anthropic, &[]).await.expect("app");
        openai.script(Script::HoldAfterFirst);
        let response = chat(&app, &key, hello("gpt-public", true)).await;
        let mut stream = response.bytes_stream();
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("not buffered").expect("chunk").expect("bytes");
        assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""));
        openai.release();
        let mut rest = Vec::new();
        while let Some(chunk) = stream.next().await {
            rest.extend_from_slice(&chunk.expect("bytes"));
        }
        assert_eq!(content_of(&events(&String::from_utf8_lossy(&rest))), "part0 part1 part2 ");
    }

    // The writer gathers records without being woken for each: records that come while it
    // gathers or writes are written in the same round or the next, and what is queued when
    // the last recorder goes away is still written.
    async fn usage_records_queued_while_the_writer_sleeps_are_all_written(backend) {
        use workjet::domain::usage::{UsageRecord, UsageRecorder};
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "gather@example.com").await;
        let record = |model: &str| UsageRecord { user_id: user.id, model: model.into(), status: 200, at: chrono::Utc::now(), ..Default::default() };
        let recorder = UsageRecorder::start(app.state.db.clone());
        let written = |n: i64| {
            let app = &app;
            async move { eventually(Duration::from_secs(10), || async { count_rows(app, "usage_events").await == n }).await }
        };
        // A first record starts a round; more come while it gathers, and after it.
        recorder.record(record("first"));
        for i in 0..20 {
            recorder.record(record(&format!("during-{i}")));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(written(21).await, "all records written: {}", count_rows(&app, "usage_events").await);
        // After a quiet spell, one record is written on its own.
        recorder.record(record("alone"));
        assert!(written(22).await, "the lone record written: {}", count_rows(&app, "usage_events").await);
        // Queued, then the recorder dropped at once: still written.
        for i in 0..3 {
            recorder.record(record(&format!("last-{i}")));
        }
        drop(recorder);
        assert!(
            written(25).await,
            "what was queued before the recorder went away is written: {}",
            count_rows(&app, "usage_events").await
        );
    }

    async fn usage_records_are_stored_whole_in_batches_of_any_size(backend) {
        use sea_orm::{EntityTrait, QueryOrder};
        use workjet::{domain::usage::{UsageRecord, UsageRecorder}, entities::usage_events};
        let app = spawn_app_with(backend, &[]).await.expect("app");
        let user = make_user(&app, "usage@example.com").await;
        let (key_id, _) = make_key(&app, user.id).await;
        // Whole microseconds: PostgreSQL keeps no finer.
        let base = chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros()).expect("now");
        // More than two of the writer's batches (500), so that full statements and the
        // remainder's statements are all written; every field varies from row to row.
        let records: Vec<UsageRecord> = (0..1_137u32)
            .map(|i| UsageRecord {
                user_id: user.id,
                api_key_id: (i % 3 != 0).then_some(key_id),
                model: match i % 4 { 0 => "é".repeat(250), 1 => format!("model-{i}"), _ => "gpt-4o".into() },
                provider: (i % 5 != 0).then(|| format!("provider-{}", i % 7)),
                status: [200, 429, 499, 502, 504][i as usize % 5],
                latency_ms: if i == 7 { u32::MAX } else { i },
                prompt_tokens: if i == 11 { u64::MAX } else { u64::from(i) * 3 },
                completion_tokens: u64::from(i) * 5 + 1,
                streamed: i % 2 == 0,
                at: base + chrono::Duration::microseconds(i64::from(i)),
            })
            .collect();
        let recorder = UsageRecorder::start(app.state.db.clone());
        for record in &records {
            recorder.record(record.clone());
        }
        assert!(
            eventually(Duration::from_secs(10), || async { count_rows(&app, "usage_events").await == 1_137 }).await,
            "all records written: {}",
            count_rows(&app, "usage_events").await
        );
        let stored = usage_events::Entity::find().order_by_asc(usage_events::Column::CreatedAt).all(&app.state.db).await.expect("rows");
        assert_eq!(stored.len(), records.len());
        for (row, record) in stored.iter().zip(&records) {
            let expected_model: String = record.model.chars().take(200).collect();
            assert_eq!(
                (row.user_id, row.api_key_id, &row.model, &row.provider, row.status, row.streamed, row.created_at),
                (record.user_id, record.api_key_id, &expected_model, &record.provider, record.status as i16, record.streamed, record.at),
            );
            assert_eq!(row.latency_ms, record.latency_ms.min(i32::MAX as u32) as i32);
            assert_eq!(row.prompt_tokens, record.prompt_tokens.min(i64::MAX as u64) as i64);
            assert_eq!(row.completion_tokens, record.completion_tokens as i64);
        }
    }
}

/// Each chunk leaves Workjet within 5 ms of the fake sending it (the fake spaces them 20 ms
/// apart). Timing on a shared 2-core machine is noisy, so the measurement is repeated up to
/// three times; a relay that buffers (Nagle, a missing flush) fails every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_chunk_is_relayed_within_5_ms() {
    let (openai, anthropic) = (Fake::openai().await, Fake::anthropic().await);
    let (app, key) = gateway_app(Backend::Sqlite, &openai, &anthropic, &[]).await.expect("app");
    let mut report = Vec::new();
    for attempt in 1..=3 {
        openai.script(Script::Normal { chunks: 10, gap: Duration::from_millis(20) });
        let response = chat(&app, &key, hello("gpt-public", true)).await;
        let mut stream = response.bytes_stream();
        let mut received = Vec::new();
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("bytes");
            let now = Instant::now();
            let s = String::from_utf8_lossy(&chunk).into_owned();
            // One received chunk may carry several events; each counts as received now.
            for _ in 0..s.matches("\n\n").count() {
                received.push(now);
            }
            text.push_str(&s);
        }
        let sent = openai.sent_at();
        // Pieces: role chunk, 10 content chunks, one final piece with finish + usage + [DONE].
        let sent_per_event: Vec<Instant> = sent.iter().take(11).copied().collect();
        let delays: Vec<Duration> = sent_per_event.iter().zip(&received).map(|(s, r)| r.saturating_duration_since(*s)).collect();
        let worst = delays.iter().max().copied().unwrap_or_default();
        let gaps: Vec<Duration> = received.windows(2).map(|w| w[1] - w[0]).collect();
        report.push(format!("attempt {attempt}: worst relay delay {worst:?}, largest gap {:?}", gaps.iter().max()));
        assert_eq!(content_of(&events(&text)).matches("part").count(), 10);
        if worst <= Duration::from_millis(5) {
            eprintln!("{}", report.join("\n"));
            return;
        }
    }
    panic!("chunks were held back:\n{}", report.join("\n"));
}
