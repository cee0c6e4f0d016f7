//! Hardening: a table of hostile and malformed requests across `/v1`, the sign-in routes and
//! the portal's server functions. Every row states the status it must get; the test asserts
//! it, asserts that nothing answered 5xx, and compares a dump of every table before and
//! after each row: unchanged, except for rows that expect a change (and then only the
//! change they expect). It prints `N inputs tried, 0 unexpected`.

/// Known and unknown keys at the throttle: a revoked key is 401 forever, one noisy client
/// locks nobody out.
mod admission;

use std::{collections::BTreeMap, time::Duration};

use reqwest::{Method, header};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    backend_tests,
    browser::{Browser, app_with_idp},
    helpers::*,
};

/// Every table's rows as text, by table. `api_keys.last_used_at` is left out: a valid key's
/// use is recorded (batched, in the background), which is the expected effect of using it.
pub async fn dump(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let tables_sql = match backend {
        DatabaseBackend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        _ => "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    };
    let tables: Vec<String> = db
        .query_all_raw(Statement::from_string(backend, tables_sql))
        .await
        .expect("tables")
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("name"))
        .collect();
    let mut out = BTreeMap::new();
    for table in tables {
        let columns_sql = match backend {
            DatabaseBackend::Sqlite => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
            _ => format!(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
            ),
        };
        let columns: Vec<String> = db
            .query_all_raw(Statement::from_string(backend, columns_sql))
            .await
            .expect("columns")
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).expect("column"))
            .filter(|c| !(table == "api_keys" && c == "last_used_at"))
            .collect();
        let select = columns
            .iter()
            .map(|c| match backend {
                DatabaseBackend::Sqlite => format!("quote(\"{c}\")"),
                _ => format!("COALESCE(CAST(\"{c}\" AS TEXT), 'NULL')"),
            })
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows =
            db.query_all_raw(Statement::from_string(backend, format!("SELECT {select} FROM \"{table}\" ORDER BY 1"))).await.expect("rows");
        let mut rows: Vec<String> = rows.iter().map(|r| r.try_get_by_index::<String>(0).expect("row")).collect();
        rows.sort();
        out.insert(table, rows);
    }
    out
}

/// What changed between two dumps: (table, rows added, rows removed).
fn diff(before: &BTreeMap<String, Vec<String>>, after: &BTreeMap<String, Vec<String>>) -> Vec<(String, usize, usize)> {
    let mut changes = Vec::new();
    for (table, rows) in after {
        let old = before.get(table).cloned().unwrap_or_default();
        let added = rows.iter().filter(|r| !old.contains(r)).count();
        let removed = old.iter().filter(|r| !rows.contains(r)).count();
        if added + removed > 0 {
            changes.push((table.clone(), added, removed));
        }
    }
    changes
}

/// How a request is sent.
enum Send {
    /// Through an HTTP client: method, path, headers, body.
    Http(Method, String, Vec<(String, Vec<u8>)>, Vec<u8>),
    /// Raw bytes on a fresh TCP connection (for what a client library refuses to send).
    Raw(Vec<u8>),
}

/// The change a row is allowed (and required) to make.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Change {
    None,
    /// One new key (and its audit event).
    KeyCreated,
}

struct Row {
    category: &'static str,
    name: String,
    send: Send,
    expect: u16,
    change: Change,
}

/// Recorded when the server neither answered nor closed the connection within 10 s.
const HANG: u16 = 1;

async fn send_raw(app: &TestApp, bytes: &[u8]) -> u16 {
    let stream = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    // Write on the side: the server may answer (413, 431) and stop reading long before a big
    // request has been sent.
    let bytes = bytes.to_vec();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&bytes).await;
        writer
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    writing.abort();
    if read.is_err() && buf.is_empty() {
        return HANG;
    }
    let head = String::from_utf8_lossy(&buf);
    // No answer at all (connection closed) is recorded as 0.
    head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The status, and the start of the body (for the report of an unexpected answer).
async fn send(app: &TestApp, request: &Send) -> (u16, String) {
    match request {
        Send::Http(method, path, headers, body) => {
            let mut r = app.client.request(method.clone(), app.url(path));
            for (name, value) in headers {
                r = r.header(name.as_str(), header::HeaderValue::from_bytes(value).expect("header value"));
            }
            let response = r.body(body.clone()).send().await.expect("request");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (status, text.chars().take(200).collect())
        }
        Send::Raw(bytes) => (send_raw(app, bytes).await, String::new()),
    }
}

/// Request headers, as raw bytes.
type Headers = Vec<(String, Vec<u8>)>;

fn h(name: &str, value: impl AsRef<[u8]>) -> (String, Vec<u8>) {
    (name.to_owned(), value.as_ref().to_vec())
}

fn json_body(value: &str) -> Vec<u8> {
    value.as_bytes().to_vec()
}

/// What the table needs: Alice's valid key and session cookie, Bob's key id, keys that
/// must not work (revoked; a disabled user's), and a key with a narrow grant (keys:write
/// only, expiring at `limited_expires_at`, 1,000 requests a minute).
struct Fixture {
    origin: String,
    key: String,
    limited: String,
    limited_expires_at: i64,
    cookie: String,
    bob_key_id: i64,
    revoked: String,
    disabled: String,
}

fn corpus(f: &Fixture) -> Vec<Row> {
    let mut rows = Vec::new();
    let bearer = |k: &str| format!("Bearer {k}");
    let key = f.key.clone();
    let mut push = |category: &'static str, name: &str, send: Send, expect: u16, change: Change| {
        rows.push(Row { category, name: name.to_owned(), send, expect, change });
    };
    let get = |path: &str, headers: Vec<(String, Vec<u8>)>| Send::Http(Method::GET, path.to_owned(), headers, vec![]);
    let me_with = |value: &[u8]| Send::Http(Method::GET, "/v1/me".into(), vec![h("authorization", value)], vec![]);

    // A. The Authorization header.
    let mut flipped = key.clone().into_bytes();
    flipped[20] = if flipped[20] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let unknown = workjet::domain::api_keys::PlainApiKey::generate().into_secret();
    let homoglyph = format!("{}а{}", &key[..12], &key[13..]); // Cyrillic а in place of one character
    let a_cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("Bearer alone", b"Bearer".to_vec()),
        ("Bearer and spaces", b"Bearer     ".to_vec()),
        ("spaces and tabs only", b" \t \t ".to_vec()),
        ("Basic scheme", b"Basic YWxpY2U6c2VjcmV0".to_vec()),
        ("Token scheme", format!("Token {key}").into_bytes()),
        ("key without a scheme", key.clone().into_bytes()),
        ("key plus junk", format!("Bearer {key} junk").into_bytes()),
        ("key missing its last character", bearer(&key[..key.len() - 1]).into_bytes()),
        ("one character flipped", bearer(&flipped).into_bytes()),
        ("wj_test_ prefix", bearer(&key.replacen("wj_live_", "wj_test_", 1)).into_bytes()),
        ("sk- prefix", bearer(&format!("sk-{}", &key[8..])).into_bytes()),
        ("prefix only", bearer("wj_live_").into_bytes()),
        ("too short", bearer("wj_live_abc").into_bytes()),
        ("8 KB key", bearer(&format!("wj_live_{}", "A".repeat(8192))).into_bytes()),
        ("non-ASCII bytes", b"Bearer wj_live_\xc3\xa9\xff\xfe".to_vec()),
        ("homoglyph in the key", bearer(&homoglyph).into_bytes()),
        ("percent-encoded key", bearer(&key.replace('_', "%5F")).into_bytes()),
        ("well-formed but never issued", bearer(&unknown).into_bytes()),
        ("revoked key", bearer(&f.revoked).into_bytes()),
        ("disabled user's key", bearer(&f.disabled).into_bytes()),
        ("SQL in the key", b"Bearer wj_live_' OR '1'='1".to_vec()),
        ("JSON in the key", b"Bearer {\"key\":1}".to_vec()),
    ];
    for (name, value) in a_cases {
        push("A authorization", name, me_with(&value), 401, Change::None);
    }
    push("A authorization", "no Authorization header", get("/v1/me", vec![]), 401, Change::None);
    push("A authorization", "key in the query string", get(&format!("/v1/me?api_key={key}"), vec![]), 401, Change::None);
    push(
        "A authorization",
        "two Authorization headers, valid first",
        get("/v1/me", vec![h("authorization", bearer(&key)), h("authorization", "Bearer nope")]),
        401,
        Change::None,
    );
    push(
        "A authorization",
        "two Authorization headers, valid second",
        get("/v1/me", vec![h("authorization", "Bearer nope"), h("authorization", bearer(&key))]),
        401,
        Change::None,
    );
    push(
        "A authorization",
        "two identical valid Authorization headers",
        get("/v1/me", vec![h("authorization", bearer(&key)), h("authorization", bearer(&key))]),
        401,
        Change::None,
    );
    push(
        "A authorization",
        "bad key beside a valid cookie (the key decides)",
        get("/v1/me", vec![h("authorization", "Bearer wj_live_nope"), h("cookie", format!("wj_session={}", f.cookie))]),
        401,
        Change::None,
    );
    push("A authorization", "lowercase bearer works", me_with(format!("bearer {key}").as_bytes()), 200, Change::None);
    push(
        "A authorization",
        "NUL in the header (raw)",
        Send::Raw(format!("GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\0\r\nConnection: close\r\n\r\n").into_bytes()),
        400,
        Change::None,
    );
    push(
        "A authorization",
        "CR inside the header (raw)",
        Send::Raw(format!("GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r{key}\r\nConnection: close\r\n\r\n").into_bytes()),
        400,
        Change::None,
    );
    push(
        "A authorization",
        "64 KB Authorization header (raw)",
        Send::Raw(
            format!("GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", "A".repeat(65536))
                .into_bytes(),
        ),
        431,
        Change::None,
    );
    push(
        "A authorization",
        "1 MB of headers (raw)",
        Send::Raw(
            format!(
                "GET /v1/me HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
                (0..256).map(|i| format!("X-Junk-{i}: {}\r\n", "j".repeat(4000))).collect::<String>()
            )
            .into_bytes(),
        ),
        431,
        Change::None,
    );
    push(
        "A authorization",
        "500 small headers (raw)",
        Send::Raw(
            format!(
                "GET /v1/me HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
                (0..500).map(|i| format!("X-{i}: 1\r\n")).collect::<String>()
            )
            .into_bytes(),
        ),
        431,
        Change::None,
    );
    push(
        "A authorization",
        "header folding (obsolete line continuation, raw)",
        Send::Raw(format!("GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n {key}\r\nConnection: close\r\n\r\n").into_bytes()),
        400,
        Change::None,
    );
    push(
        "A authorization",
        "non-UTF-8 User-Agent on a valid request (raw)",
        Send::Raw(
            [
                &b"GET /v1/me HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\xfe\r\n"[..],
                format!("Authorization: Bearer {key}\r\nConnection: close\r\n\r\n").as_bytes(),
            ]
            .concat(),
        ),
        200,
        Change::None,
    );

    // B. Bodies (POST /v1/keys and /v1/chat/completions with a valid key).
    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        Send::Http(Method::POST, path.to_owned(), vec![h("authorization", bearer(&key)), h("content-type", content_type)], body)
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_obj = format!("{{\"name\": \"x\", \"extra\": {}1{}}}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let body_cases: Vec<(&str, &str, &str, Vec<u8>, u16)> = vec![
        ("keys: invalid JSON", "/v1/keys", "application/json", json_body("{\"name\":"), 400),
        ("keys: empty body", "/v1/keys", "application/json", vec![], 400),
        ("keys: array at top level", "/v1/keys", "application/json", json_body("[]"), 422),
        ("keys: scalar at top level", "/v1/keys", "application/json", json_body("42"), 422),
        ("keys: string at top level", "/v1/keys", "application/json", json_body("\"name\""), 422),
        ("keys: null", "/v1/keys", "application/json", json_body("null"), 422),
        ("keys: name is a number", "/v1/keys", "application/json", json_body(r#"{"name": 5}"#), 422),
        ("keys: name is an object", "/v1/keys", "application/json", json_body(r#"{"name": {"$gt": ""}}"#), 422),
        ("keys: duplicate name field", "/v1/keys", "application/json", json_body(r#"{"name": "a", "name": "b"}"#), 422),
        ("keys: extra user_id", "/v1/keys", "application/json", json_body(r#"{"name": "x", "user_id": 2}"#), 422),
        ("keys: extra revoked", "/v1/keys", "application/json", json_body(r#"{"name": "x", "revoked": false}"#), 422),
        ("keys: extra rate_limit", "/v1/keys", "application/json", json_body(r#"{"name": "x", "rate_limit": 1000000}"#), 422),
        ("keys: 10,000-deep array", "/v1/keys", "application/json", deep.clone().into_bytes(), 422),
        ("keys: 10,000-deep object", "/v1/keys", "application/json", deep_obj.into_bytes(), 422),
        ("keys: 1e999999", "/v1/keys", "application/json", json_body(r#"{"name": "x", "expires_at": 1e999999}"#), 400),
        (
            "keys: expiry overflow",
            "/v1/keys",
            "application/json",
            json_body(r#"{"name": "x", "expires_at": 99999999999999999999999}"#),
            422,
        ),
        ("keys: negative expiry", "/v1/keys", "application/json", json_body(r#"{"name": "x", "expires_at": -1}"#), 400),
        (
            "keys: rate limit overflow",
            "/v1/keys",
            "application/json",
            json_body(r#"{"name": "x", "rate_limit_per_minute": 18446744073709551616}"#),
            422,
        ),
        (
            "keys: rate limit too large",
            "/v1/keys",
            "application/json",
            json_body(r#"{"name": "x", "rate_limit_per_minute": 4294967295}"#),
            400,
        ),
        ("keys: unknown permission", "/v1/keys", "application/json", json_body(r#"{"name": "x", "permissions": ["admin"]}"#), 422),
        ("keys: permissions as a string", "/v1/keys", "application/json", json_body(r#"{"name": "x", "permissions": "root"}"#), 422),
        ("keys: empty name", "/v1/keys", "application/json", json_body(r#"{"name": ""}"#), 400),
        ("keys: blank name", "/v1/keys", "application/json", json_body(r#"{"name": " \t "}"#), 400),
        ("keys: 10 KB name", "/v1/keys", "application/json", format!("{{\"name\": \"{}\"}}", "n".repeat(10_240)).into_bytes(), 400),
        ("keys: 101-character name", "/v1/keys", "application/json", format!("{{\"name\": \"{}\"}}", "é".repeat(101)).into_bytes(), 400),
        ("keys: NUL in the name", "/v1/keys", "application/json", json_body(r#"{"name": "a\u0000b"}"#), 400),
        ("keys: newline in the name", "/v1/keys", "application/json", json_body(r#"{"name": "a\nb"}"#), 400),
        ("keys: escape sequence in the name", "/v1/keys", "application/json", json_body(r#"{"name": "\u001b[31mred"}"#), 400),
        ("keys: C1 control in the name", "/v1/keys", "application/json", json_body(r#"{"name": "a\u0085b"}"#), 400),
        ("keys: lone surrogate in the name", "/v1/keys", "application/json", json_body(r#"{"name": "\ud800"}"#), 400),
        ("keys: invalid UTF-8 body", "/v1/keys", "application/json", b"{\"name\": \"\xff\xfe\"}".to_vec(), 400),
        ("keys: text/plain", "/v1/keys", "text/plain", json_body(r#"{"name": "x"}"#), 415),
        ("keys: form encoded", "/v1/keys", "application/x-www-form-urlencoded", b"name=x".to_vec(), 415),
        ("keys: multipart", "/v1/keys", "multipart/form-data; boundary=x", b"--x\r\n\r\nname\r\n--x--".to_vec(), 415),
        ("keys: XML", "/v1/keys", "application/xml", b"<name>x</name>".to_vec(), 415),
        ("chat: invalid JSON", "/v1/chat/completions", "application/json", json_body("{"), 400),
        ("chat: empty body", "/v1/chat/completions", "application/json", vec![], 400),
        ("chat: array at top level", "/v1/chat/completions", "application/json", json_body("[1, 2]"), 400),
        ("chat: scalar at top level", "/v1/chat/completions", "application/json", json_body("true"), 400),
        ("chat: missing model", "/v1/chat/completions", "application/json", json_body(r#"{"messages": []}"#), 400),
        ("chat: model is a number", "/v1/chat/completions", "application/json", json_body(r#"{"model": 4, "messages": []}"#), 400),
        ("chat: empty model", "/v1/chat/completions", "application/json", json_body(r#"{"model": "", "messages": []}"#), 400),
        ("chat: messages is a string", "/v1/chat/completions", "application/json", json_body(r#"{"model": "m", "messages": "hi"}"#), 400),
        (
            "chat: stream is a string",
            "/v1/chat/completions",
            "application/json",
            json_body(r#"{"model": "m", "messages": [], "stream": "yes"}"#),
            400,
        ),
        (
            "chat: 10,000-deep messages",
            "/v1/chat/completions",
            "application/json",
            format!("{{\"model\": \"m\", \"messages\": {deep}}}").into_bytes(),
            400,
        ),
        (
            "chat: 100,000-deep object",
            "/v1/chat/completions",
            "application/json",
            format!("{{\"model\": \"m\", \"messages\": [], \"x\": {}1{}}}", "{\"a\":".repeat(100_000), "}".repeat(100_000)).into_bytes(),
            400,
        ),
        (
            "chat: 1e999999 temperature",
            "/v1/chat/completions",
            "application/json",
            json_body(r#"{"model": "m", "messages": [], "temperature": 1e999999}"#),
            400,
        ),
        ("chat: unknown model", "/v1/chat/completions", "application/json", json_body(r#"{"model": "gpt-99", "messages": []}"#), 404),
        (
            "chat: path traversal model",
            "/v1/chat/completions",
            "application/json",
            json_body(r#"{"model": "../../etc/passwd", "messages": []}"#),
            404,
        ),
        ("chat: wrong content type", "/v1/chat/completions", "text/plain", json_body(r#"{"model": "m", "messages": []}"#), 415),
    ];
    for (name, path, content_type, body, expect) in body_cases {
        push("B bodies", name, post(path, content_type, body), expect, Change::None);
    }
    for (name, path, body) in [
        ("keys: 5 MB body over the size limit (raw)", "/v1/keys", format!("{{\"name\": \"{}\"}}", "x".repeat(5 * 1024 * 1024))),
        (
            "chat: 5 MB body over the size limit (raw)",
            "/v1/chat/completions",
            format!("{{\"model\": \"m\", \"messages\": [\"{}\"]}}", "x".repeat(5 * 1024 * 1024)),
        ),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        push("B bodies", name, Send::Raw([head.into_bytes(), body.into_bytes()].concat()), 413, Change::None);
    }
    let chunked_body: String = (0..6).map(|_| format!("100000\r\n{}\r\n", "x".repeat(0x100000))).collect();
    push(
        "B bodies",
        "6 MB chunked body, no length declared (raw)",
        Send::Raw(
            format!(
                "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunked_body}0\r\n\r\n"
            )
            .into_bytes(),
        ),
        413,
        Change::None,
    );
    push(
        "B bodies",
        "slow upload: the body stops arriving (raw)",
        Send::Raw(
            format!(
                "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"name\": "
            )
            .into_bytes(),
        ),
        408,
        Change::None,
    );
    push(
        "B bodies",
        "gzip-encoded body (not accepted)",
        Send::Http(
            Method::POST,
            "/v1/keys".into(),
            vec![h("authorization", bearer(&key)), h("content-type", "application/json"), h("content-encoding", "gzip")],
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff],
        ),
        415,
        Change::None,
    );
    push(
        "B bodies",
        "Content-Length and Transfer-Encoding together (raw)",
        Send::Raw(
            format!(
                "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
            )
            .into_bytes(),
        ),
        400,
        Change::None,
    );
    push(
        "B bodies",
        "bad chunked encoding (raw)",
        Send::Raw(
            format!(
                "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\n{{}}\r\n0\r\n\r\n"
            )
            .into_bytes(),
        ),
        400,
        Change::None,
    );
    push(
        "B bodies",
        "two Content-Length headers that disagree (raw)",
        Send::Raw(
            format!(
                "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{{}}"
            )
            .into_bytes(),
        ),
        400,
        Change::None,
    );
    push(
        "B bodies",
        "declared 10 GB body (raw)",
        Send::Raw(
            format!(
                "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 10737418240\r\nConnection: close\r\n\r\n{{"
            )
            .into_bytes(),
        ),
        413,
        Change::None,
    );

    // Path traversal and encoded paths.
    let path_cases: Vec<(&str, &[u8], u16)> = vec![
        ("dot-dot out of /pkg", b"GET /pkg/../../Cargo.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        ("encoded dot-dot out of /pkg", b"GET /pkg/%2e%2e/%2e%2e/Cargo.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        ("encoded slash out of /pkg", b"GET /pkg/..%2f..%2fCargo.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        ("backslash traversal", b"GET /pkg/..\\..\\Cargo.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        ("absolute /etc/passwd", b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        ("encoded NUL in the path", b"GET /pkg/workjet.js%00.png HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        ("overlong UTF-8 dot", b"GET /pkg/%c0%ae%c0%ae/Cargo.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        ("v1 traversal to the portal", b"GET /v1/../settings/api-keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 401),
        ("encoded traversal in /v1", b"GET /v1/keys/%2e%2e/%2e%2e/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 401),
        (
            "absolute-form URI to another host",
            b"GET http://evil.example/v1/me HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            401,
        ),
        ("8 KB path", format!("GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a".repeat(8192)).leak().as_bytes(), 404),
        ("100 KB path", format!("GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a".repeat(100_000)).leak().as_bytes(), 414),
        ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        ("HTTP/0.9-style request", b"GET /\r\n\r\n", 400),
        ("unknown HTTP version", b"GET / HTTP/7.1\r\nHost: x\r\n\r\n", 400),
    ];
    for (name, bytes, expect) in path_cases {
        push("paths", name, Send::Raw(bytes.to_vec()), expect, Change::None);
    }

    // I. Ids: other users' and overflowing ones, on every id-taking /v1 route.
    let ids = [
        f.bob_key_id.to_string(),
        "0".into(),
        "-1".into(),
        i64::MAX.to_string(),
        "9223372036854775808".into(),
        "99999999999999999999999".into(),
        "1e3".into(),
        "0x10".into(),
        "1%20OR%201=1".into(),
        "%00".into(),
    ];
    for id in &ids {
        for method in [Method::GET, Method::DELETE] {
            push(
                "I ids",
                &format!("{method} /v1/keys/{id}"),
                Send::Http(method.clone(), format!("/v1/keys/{id}"), vec![h("authorization", bearer(&key))], vec![]),
                404,
                Change::None,
            );
        }
    }

    // Names that are hostile but valid are stored as written (and shown escaped).
    for (name, value) in [
        ("SQL-laden name is stored as text", r#"{"name": "'; DROP TABLE api_keys; --"}"#),
        ("script-laden name is stored as text", r#"{"name": "<script>alert(document.cookie)</script>"}"#),
        ("right-to-left override name", r#"{"name": "\u202egnp.exe"}"#),
        ("emoji name", r#"{"name": "🔑 prod"}"#),
    ] {
        push("B bodies", name, post("/v1/keys", "application/json", json_body(value)), 201, Change::KeyCreated);
    }

    // Sign-in routes.
    let signin_cases: Vec<(&str, String, u16)> = vec![
        ("return_to another site", "/auth/google?return_to=https://evil.example/".into(), 303),
        ("return_to protocol-relative", "/auth/google?return_to=//evil.example/".into(), 303),
        ("return_to backslash trick", "/auth/google?return_to=/%5Cevil.example/".into(), 303),
        ("return_to javascript:", "/auth/google?return_to=javascript:alert(1)".into(), 303),
        ("return_to 10 KB", format!("/auth/google?return_to=/{}", "a".repeat(10_240)), 303),
        ("callback without parameters", "/auth/google/callback".into(), 303),
        ("callback with a forged state", "/auth/google/callback?code=abc&state=forged".into(), 303),
        ("callback with an 8 KB state", format!("/auth/google/callback?code=abc&state={}", "s".repeat(8192)), 303),
        ("callback with an error", "/auth/google/callback?error=access_denied&state=x".into(), 303),
        ("callback with a script error", "/auth/google/callback?error=%3Cscript%3Ealert(1)%3C/script%3E".into(), 303),
        ("login with a script message", "/login?error=%3Cscript%3Ealert(1)%3C%2Fscript%3E".into(), 200),
        ("GET /auth/logout", "/auth/logout".into(), 405),
    ];
    // A sign-in start writes nothing: its state travels in the sealed `wj_signin` cookie.
    for (name, path, expect) in signin_cases {
        push("sign-in", name, get(&path, vec![]), expect, Change::None);
    }
    push(
        "sign-in",
        "logout from another site",
        Send::Http(
            Method::POST,
            "/auth/logout".into(),
            vec![h("origin", "https://evil.example"), h("cookie", format!("wj_session={}", f.cookie))],
            vec![],
        ),
        403,
        Change::None,
    );

    // G. Sessions: tampered cookies.
    let mut flipped_cookie = f.cookie.clone().into_bytes();
    flipped_cookie[3] = if flipped_cookie[3] == b'A' { b'B' } else { b'A' };
    let flipped_cookie = String::from_utf8(flipped_cookie).expect("ascii");
    for (name, value) in [
        ("bit-flipped session", flipped_cookie),
        ("truncated session", f.cookie[..f.cookie.len() - 4].to_owned()),
        ("garbage session", "%%%garbage%%%".into()),
        ("8 KB session", "A".repeat(8192)),
        ("empty session", String::new()),
        ("session id with a NUL escape", "abc%00def".into()),
    ] {
        push(
            "G sessions",
            &format!("{name} on /v1/me"),
            get("/v1/me", vec![h("cookie", format!("wj_session={value}"))]),
            401,
            Change::None,
        );
        push(
            "G sessions",
            &format!("{name} on the portal"),
            get("/settings/api-keys", vec![h("cookie", format!("wj_session={value}"))]),
            303,
            Change::None,
        );
    }

    // H. CSRF with a valid cookie.
    let cookie = format!("wj_session={}", f.cookie);
    let csrf_cases: Vec<(&str, Headers)> = vec![
        ("foreign Origin", vec![h("origin", "https://evil.example")]),
        ("sibling subdomain Origin", vec![h("origin", "https://evil.workjet.dev")]),
        ("null Origin", vec![h("origin", "null")]),
        ("Sec-Fetch-Site cross-site", vec![h("sec-fetch-site", "cross-site")]),
        ("Sec-Fetch-Site same-site", vec![h("sec-fetch-site", "same-site")]),
        ("text/plain simple request", vec![h("origin", "https://evil.example"), h("content-type", "text/plain")]),
    ];
    for (name, mut headers) in csrf_cases {
        headers.push(h("cookie", &cookie));
        if !headers.iter().any(|(n, _)| n == "content-type") {
            headers.push(h("content-type", "application/json"));
        }
        push(
            "H csrf",
            &format!("/v1/keys, {name}"),
            Send::Http(Method::POST, "/v1/keys".into(), headers.clone(), json_body(r#"{"name": "csrf"}"#)),
            403,
            Change::None,
        );
        push(
            "H csrf",
            &format!("create_api_key, {name}"),
            Send::Http(Method::POST, "/api/create_api_key".into(), headers, json_body(r#"{"request": {"name": "csrf"}}"#)),
            403,
            Change::None,
        );
    }
    push(
        "H csrf",
        "GET never creates (create_api_key by GET)",
        get("/api/create_api_key?request[name]=x", vec![h("cookie", &cookie)]),
        405,
        Change::None,
    );

    // K. Grants: no key outgrows the grant it was made with; nobody exceeds the maximum
    // (WJ_MAX_RATE_LIMIT_PER_MINUTE defaults to WJ_RATE_LIMIT_PER_MINUTE, 1,000,000 here).
    let limited_post = |body: String| {
        Send::Http(
            Method::POST,
            "/v1/keys".into(),
            vec![h("authorization", bearer(&f.limited)), h("content-type", "application/json")],
            body.into_bytes(),
        )
    };
    let later = f.limited_expires_at + 3600;
    let earlier = f.limited_expires_at - 600;
    let grant_cases: Vec<(&str, String, u16, Change)> = vec![
        ("narrow key asks for inference", r#"{"name": "x", "permissions": ["inference"]}"#.into(), 403, Change::None),
        ("narrow key asks for keys:read", r#"{"name": "x", "permissions": ["keys:read", "keys:write"]}"#.into(), 403, Change::None),
        ("narrow key asks for all", r#"{"name": "x", "permissions": "all"}"#.into(), 403, Change::None),
        ("narrow key asks to outlive itself by an hour", format!(r#"{{"name": "x", "expires_at": {later}}}"#), 403, Change::None),
        (
            "narrow key asks to outlive itself by a second",
            format!(r#"{{"name": "x", "expires_at": {}}}"#, f.limited_expires_at + 1),
            403,
            Change::None,
        ),
        (
            "narrow key asks for ten years",
            format!(r#"{{"name": "x", "expires_at": {}}}"#, f.limited_expires_at + 3600 * 24 * 3600),
            403,
            Change::None,
        ),
        ("narrow key asks for 1,001 a minute", r#"{"name": "x", "rate_limit_per_minute": 1001}"#.into(), 403, Change::None),
        ("narrow key asks for 60,000,000 a minute", r#"{"name": "x", "rate_limit_per_minute": 60000000}"#.into(), 403, Change::None),
        (
            "narrow key asks for everything at once",
            format!(r#"{{"name": "x", "permissions": "all", "expires_at": {later}, "rate_limit_per_minute": 60000000}}"#),
            403,
            Change::None,
        ),
        ("narrow key asks for a zero rate limit", r#"{"name": "x", "rate_limit_per_minute": 0}"#.into(), 400, Change::None),
        ("narrow key asks for a past expiry", r#"{"name": "x", "expires_at": 1000}"#.into(), 400, Change::None),
        ("narrow key asks for nothing (inherits its grant)", r#"{"name": "inherits"}"#.into(), 201, Change::KeyCreated),
        (
            "narrow key asks for less than it has",
            format!(r#"{{"name": "less", "permissions": [], "expires_at": {earlier}, "rate_limit_per_minute": 10}}"#),
            201,
            Change::KeyCreated,
        ),
    ];
    for (name, body, expect, change) in grant_cases {
        push("K grants", name, limited_post(body), expect, change);
    }
    let session_post = |body: &str| {
        Send::Http(
            Method::POST,
            "/v1/keys".into(),
            vec![h("cookie", &cookie), h("origin", &f.origin), h("content-type", "application/json")],
            json_body(body),
        )
    };
    push(
        "K grants",
        "session asks above the maximum",
        session_post(r#"{"name": "x", "rate_limit_per_minute": 1000001}"#),
        403,
        Change::None,
    );
    push("K grants", "session asks for 60,000,000", session_post(r#"{"name": "x", "rate_limit_per_minute": 60000000}"#), 403, Change::None);
    push(
        "K grants",
        "session asks for the maximum",
        session_post(r#"{"name": "max", "rate_limit_per_minute": 1000000}"#),
        201,
        Change::KeyCreated,
    );
    push(
        "K grants",
        "all-permissions key asks above the maximum",
        post("/v1/keys", "application/json", json_body(r#"{"name": "x", "rate_limit_per_minute": 1000001}"#)),
        403,
        Change::None,
    );

    // Server functions, same origin, signed in.
    let same_origin = |body: &str, content_type: &str| {
        let _ = body;
        vec![h("cookie", &cookie), h("origin", &f.origin), h("sec-fetch-site", "same-origin"), h("content-type", content_type)]
    };
    let fn_cases: Vec<(&str, &str, &str, &str, u16, Change)> = vec![
        ("create: invalid JSON", "create_api_key", "application/json", "{\"request\":", 400, Change::None),
        ("create: missing request", "create_api_key", "application/json", "{}", 400, Change::None),
        ("create: 10 KB name", "create_api_key", "application/json", "", 400, Change::None),
        (
            "create: control characters",
            "create_api_key",
            "application/json",
            r#"{"request": {"name": "a\u0007b", "permissions": "all"}}"#,
            400,
            Change::None,
        ),
        (
            "create: expiry overflow",
            "create_api_key",
            "application/json",
            r#"{"request": {"name": "x", "permissions": "all", "expires_in_days": 99999999999}}"#,
            400,
            Change::None,
        ),
        (
            "create: zero-day expiry",
            "create_api_key",
            "application/json",
            r#"{"request": {"name": "x", "permissions": "all", "expires_in_days": 0}}"#,
            400,
            Change::None,
        ),
        (
            "create: rate limit above the maximum",
            "create_api_key",
            "application/json",
            r#"{"request": {"name": "x", "permissions": "all", "rate_limit_per_minute": 1000001}}"#,
            403,
            Change::None,
        ),
        (
            "create: zero rate limit",
            "create_api_key",
            "application/json",
            r#"{"request": {"name": "x", "permissions": "all", "rate_limit_per_minute": 0}}"#,
            400,
            Change::None,
        ),
        (
            "create: rate limit overflows",
            "create_api_key",
            "application/json",
            r#"{"request": {"name": "x", "permissions": "all", "rate_limit_per_minute": 4294967296}}"#,
            400,
            Change::None,
        ),
        (
            "create: SQL-laden name",
            "create_api_key",
            "application/json",
            r#"{"request": {"name": "x' OR 1=1; --", "permissions": "all"}}"#,
            200,
            Change::KeyCreated,
        ),
        ("revoke: another user's key", "revoke_api_key", "application/x-www-form-urlencoded", "", 404, Change::None),
        ("revoke: id is text", "revoke_api_key", "application/x-www-form-urlencoded", "id=abc", 400, Change::None),
        ("revoke: id overflows", "revoke_api_key", "application/x-www-form-urlencoded", "id=9223372036854775808", 400, Change::None),
        ("revoke: no id", "revoke_api_key", "application/x-www-form-urlencoded", "", 400, Change::None),
        ("revoke: unknown id", "revoke_api_key", "application/x-www-form-urlencoded", "id=987654321", 404, Change::None),
        ("revoke_session: unknown id", "revoke_session", "application/x-www-form-urlencoded", "id=987654321", 404, Change::None),
        (
            "revoke_session: id is SQL",
            "revoke_session",
            "application/x-www-form-urlencoded",
            "id=1%3B%20DELETE%20FROM%20sessions",
            400,
            Change::None,
        ),
        ("unknown server function", "drop_all_tables", "application/x-www-form-urlencoded", "", 404, Change::None),
    ];
    for (name, endpoint, content_type, body, expect, change) in fn_cases {
        let body = match name {
            "create: 10 KB name" => format!("{{\"request\": {{\"name\": \"{}\", \"permissions\": \"all\"}}}}", "n".repeat(10_240)),
            "revoke: another user's key" => format!("id={}", f.bob_key_id),
            "revoke: no id" => String::new(),
            _ => body.to_owned(),
        };
        let headers = same_origin(&body, content_type);
        push("server functions", name, Send::Http(Method::POST, format!("/api/{endpoint}"), headers, body.into_bytes()), expect, change);
    }
    push(
        "server functions",
        "list keys without a session",
        Send::Http(
            Method::POST,
            "/api/list_api_keys".into(),
            vec![h("origin", &f.origin), h("content-type", "application/x-www-form-urlencoded")],
            vec![],
        ),
        401,
        Change::None,
    );
    rows
}

async fn run_corpus(backend: Backend) {
    let (app, _idp) = app_with_idp(
        backend,
        &[
            ("WJ_AUTH_FAILURES_PER_MINUTE", "1000000".into()),
            ("WJ_RATE_LIMIT_PER_MINUTE", "1000000".into()),
            ("WJ_SESSION_TOUCH_SECS", "86400".into()),
            ("WJ_BODY_TIMEOUT_SECS", "1".into()),
        ],
    )
    .await;
    let mut alice = Browser::new();
    alice.sign_in(&app, None).await;
    let me: serde_json::Value = alice.get(&app.url("/v1/me")).await.json().await.expect("me");
    let alice_id = me["user"]["id"].as_i64().expect("id");
    let (_, key) = make_key(&app, alice_id).await;
    let limited_expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let narrow = workjet::domain::api_keys::NewKeyOptions {
        permissions: Some(workjet::permissions::Permissions::restricted([workjet::permissions::Permission::KeysWrite])),
        expires_at: Some(limited_expires_at),
        rate_limit_per_minute: Some(1000),
        ..Default::default()
    };
    let (_, limited) = make_key_with(&app, alice_id, "narrow grant", narrow).await;
    let bob = make_user(&app, "bob@example.com").await;
    let (bob_key_id, bob_key) = make_key(&app, bob.id).await;
    let (revoked_id, revoked) = make_key(&app, alice_id).await;
    app.state.keys.revoke(alice_id, revoked_id, &Default::default()).await.expect("revoke");
    let carol = make_user(&app, "carol@example.com").await;
    let (_, disabled) = make_key(&app, carol.id).await;
    app.state.users.disable(carol.id, &app.state.sessions, &app.state.generations).await.expect("disable");
    let fixture = Fixture {
        origin: app.base_url.clone(),
        key: key.clone(),
        limited,
        limited_expires_at: limited_expires_at.timestamp(),
        cookie: alice.cookie.clone().expect("signed in"),
        bob_key_id,
        revoked,
        disabled,
    };
    // Let the sign-in's and the keys' background writes settle.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let rows = corpus(&fixture);
    let mut unexpected = Vec::new();
    let mut per_category: BTreeMap<&str, usize> = BTreeMap::new();
    let mut before = dump(&app).await;
    for row in &rows {
        *per_category.entry(row.category).or_default() += 1;
        let (status, body) = send(&app, &row.send).await;
        let after = dump(&app).await;
        let changes = diff(&before, &after);
        let expected_changes: Vec<(String, usize, usize)> = match row.change {
            Change::None => vec![],
            Change::KeyCreated => vec![("api_keys".into(), 1, 0), ("audit_events".into(), 1, 0)],
        };
        let mut problems = Vec::new();
        if status == HANG {
            problems.push("no answer within 10 s (a hang)".into());
        } else if status != row.expect {
            problems.push(format!("status {status}, expected {} ({body})", row.expect));
        }
        if status >= 500 {
            problems.push("a 5xx answer".into());
        }
        if changes != expected_changes {
            problems.push(format!("database changes {changes:?}, expected {expected_changes:?}"));
        }
        if !problems.is_empty() {
            unexpected.push(format!("[{}] {}: {}", row.category, row.name, problems.join("; ")));
        }
        before = after;
    }
    // Everything still works afterwards: the server did not fall over and the keys are intact.
    let ok = app.client.get(app.url("/v1/me")).bearer_auth(&key).send().await.expect("me");
    assert_eq!(ok.status(), 200, "alice's key still works");
    let ok = app.client.get(app.url("/v1/me")).bearer_auth(&bob_key).send().await.expect("me");
    assert_eq!(ok.status(), 200, "bob's key still works");
    for (category, n) in &per_category {
        eprintln!("  {category}: {n} inputs");
    }
    eprintln!("{backend:?}: {} inputs tried, {} unexpected", rows.len(), unexpected.len());
    assert!(rows.len() >= 100, "at least 100 inputs");
    assert!(unexpected.is_empty(), "unexpected results:\n{}", unexpected.join("\n"));
}

backend_tests! {
    async fn hostile_and_malformed_inputs_get_their_status_and_change_nothing(backend) {
        run_corpus(backend).await;
    }

    async fn anonymous_sign_in_starts_store_nothing_and_need_no_throttle(backend) {
        // Formerly each start stored a pre-sign-in session, so starts were throttled per
        // address. Now a start writes nothing: an office behind one address is never refused.
        let (app, _idp) = app_with_idp(backend, &[]).await;
        let before = dump(&app).await;
        for _ in 0..200 {
            let response = app.get("/auth/google").await;
            assert_eq!(response.status(), 303);
            let location = response.headers()[header::LOCATION].to_str().expect("ascii").to_owned();
            assert!(!location.starts_with("/login"), "every start goes to the provider: {location}");
            let cookies: Vec<&str> = response.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().expect("ascii")).collect();
            assert!(cookies.len() == 1 && cookies[0].starts_with("wj_signin="), "only the sealed sign-in cookie: {cookies:?}");
        }
        assert_eq!(dump(&app).await, before, "200 sign-in starts changed nothing in the database");
    }
}
