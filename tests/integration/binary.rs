//! The `workjet` binary itself: fatal configuration errors, `workjet migrate`, SIGTERM.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn workjet() -> Command {
    let mut cmd = Command::new(crate::helpers::workjet_binary());
    // Start from a clean slate: no WJ_* from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("WJ_") || key.starts_with("LEPTOS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn configuration_errors_are_fatal_and_name_the_variable() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("WJ_LISTEN_ADDR", "localhost:http"),
        ("WJ_DATABASE_URL", "mysql://root@localhost/workjet"),
        ("WJ_RATE_LIMIT_PER_MINUTE", "lots"),
        ("WJ_PUBLIC_URL", "portal.workjet.dev"),
        ("WJ_MAX_BODY_BYTES", "12"),
        ("WJ_LOG_FORMAT", "xml"),
    ];
    for (name, value) in cases {
        let output = workjet().current_dir(dir.path()).env(name, value).output().expect("run workjet");
        assert_eq!(output.status.code(), Some(2), "{name}={value} must stop start-up with exit code 2");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "the error names {name}: {stderr}");
    }
    // Local development sign-in is refused on a public URL.
    let output = workjet().current_dir(dir.path()).env("WJ_PUBLIC_URL", "https://portal.workjet.dev").output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("WJ_GOOGLE_CLIENT_ID"));
    assert!(!dir.path().join("workjet.db").exists(), "nothing is created when the configuration is bad");
}

#[test]
fn migrate_runs_pending_migrations_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("dir");
    for _ in 0..2 {
        let output = workjet().current_dir(dir.path()).arg("migrate").output().expect("run");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stdout).contains("up to date"));
    }
    assert!(dir.path().join("workjet.db").exists(), "the default database is an SQLite file in the working directory");
}

#[test]
fn unknown_commands_are_refused() {
    let output = workjet().arg("frobnicate").output().expect("run");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().expect("dir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut child = workjet()
        .current_dir(dir.path())
        .env("WJ_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let stopping = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            break;
        }
        assert!(stopping.elapsed() < Duration::from_secs(10), "server did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The seed's cURL example, verbatim but for the server's address and the key.
const SEED_CURL: &str = r#"curl -X POST https://api.workjet.dev/v1/chat/completions \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer wj_live_a1b2c3d4..." \
  -d '{
    "model": "claude-4-sonnet",
    "messages": [
      { "role": "user", "content": "Hello, world!" }
    ]
  }'"#;

/// The seed's JavaScript (fetch) example, verbatim but for the address and the key; the last
/// line prints what came back.
const SEED_FETCH: &str = r#"const response = await fetch('https://api.workjet.dev/v1/chat/completions', {
  method: 'POST',
  headers: {
    'Content-Type': 'application/json',
    'Authorization': 'Bearer wj_live_a1b2c3d4...',
  },
  body: JSON.stringify({
    model: 'claude-4-sonnet',
    messages: [
      { role: 'user', content: 'Hello, world!' }
    ],
  }),
});
console.log(JSON.stringify({ status: response.status, body: await response.json() }));"#;

/// A running `workjet` in `dir` with `env`; its log goes to `dir/log`.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_in(dir: &std::path::Path, port: u16, env: &[(&str, String)]) -> Running {
    start_with(dir, port, env, |_| ())
}

/// [`start_in`], with `configure` applied to the command first.
fn start_with(dir: &std::path::Path, port: u16, env: &[(&str, String)], configure: impl FnOnce(&mut Command)) -> Running {
    let log = std::fs::File::create(dir.join("log")).expect("log");
    let mut cmd = workjet();
    for var in ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"] {
        cmd.env_remove(var);
    }
    configure(&mut cmd);
    let child = cmd
        .current_dir(dir)
        .env("WJ_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Running(child)
}

/// A key in the binary's own SQLite database, made as the portal would.
async fn key_in(dir: &std::path::Path) -> String {
    use std::sync::Arc;

    use workjet::domain::{
        api_keys::{ApiKeyService, Grant, KeyName, RateLimits},
        auth_cache::Generations,
        users::{UserService, VerifiedIdentity},
    };
    let db = sea_orm::Database::connect(format!("sqlite://{}/workjet.db", dir.display())).await.expect("open the database");
    let identity = VerifiedIdentity {
        issuer: "https://accounts.google.com".into(),
        subject: "sub-ada".into(),
        email: "ada@example.com".into(),
        name: "Ada".into(),
        picture: None,
    };
    let user = UserService::new(db.clone()).upsert_from_identity(&identity).await.expect("user");
    let keys = ApiKeyService::new(db, false, Arc::new(Generations::new(None)));
    let grant = Grant::user(RateLimits { default_per_minute: 600, max_per_minute: 600 });
    let (_, key) = keys
        .create(user.id, &grant, KeyName::parse("CI/CD Pipeline").expect("name"), Default::default(), &Default::default())
        .await
        .expect("key");
    key.into_secret()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WJ_TEST_NODE"]
async fn the_seeds_curl_and_fetch_examples_work_on_a_server_configured_by_one_variable() {
    let node = crate::helpers::required_env("WJ_TEST_NODE");
    let fake = crate::upstream::Fake::anthropic().await;
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    // ANTHROPIC_BASE_URL points at the fake Anthropic API; WJ_LISTEN_ADDR picks a free port.
    let env = [("ANTHROPIC_API_KEY", "sk-ant-from-the-environment".to_owned()), ("ANTHROPIC_BASE_URL", format!("http://{}", fake.addr))];
    let server = start_in(dir.path(), port, &env);
    let key = key_in(dir.path()).await;
    let address =
        |text: &str| text.replace("https://api.workjet.dev", &format!("http://127.0.0.1:{port}")).replace("wj_live_a1b2c3d4...", &key);

    let curl = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("{} -sS -w '\\n%{{http_code}}'", address(SEED_CURL)))
        .output()
        .await
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&curl.stdout);
    let (body, status) = stdout.rsplit_once('\n').expect("body and status");
    assert_eq!(status, "200", "{stdout} {}", String::from_utf8_lossy(&curl.stderr));
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from the fake.");

    let fetch =
        tokio::process::Command::new(&node).args(["--input-type=module", "-e", &address(SEED_FETCH)]).output().await.expect("node runs");
    assert!(fetch.status.success(), "{}", String::from_utf8_lossy(&fetch.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&fetch.stdout).expect("JSON");
    assert_eq!(printed["status"], 200, "{printed}");
    assert_eq!(printed["body"]["choices"][0]["message"]["content"], "Hello from the fake.");

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    for (headers, sent) in &requests {
        assert_eq!(headers["x-api-key"], "sk-ant-from-the-environment");
        assert_eq!(sent["model"], "claude-sonnet-4-20250514");
        assert!(!headers.iter().any(|(_, v)| v.to_str().unwrap_or_default().contains("wj_live_")));
    }
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert!(log.contains("providers configured from the environment") && log.contains("ANTHROPIC_API_KEY"), "{log}");
    assert!(!log.contains("sk-ant-from-the-environment") && !log.contains(&key), "no secret in the log");
    drop(server);

    // A ./workjet.toml, when present, is read without WJ_CONFIG and replaces the environment.
    std::fs::write(
        dir.path().join("workjet.toml"),
        format!(
            "[[providers]]\nname = \"from-file\"\nkind = \"anthropic\"\nbase_url = \"http://{}\"\nmodels = [\"file-model\"]\n",
            fake.addr
        ),
    )
    .expect("write");
    let _server = start_in(dir.path(), port, &env);
    let models: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("JSON");
    assert_eq!(models["data"].as_array().expect("data").iter().map(|m| m["id"].clone()).collect::<Vec<_>>(), ["file-model"]);
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert!(log.contains("providers configured from the file") && log.contains("workjet.toml"), "{log}");
}

#[test]
fn without_providers_the_start_up_log_says_how_to_add_one() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let server = start_in(dir.path(), port, &[]);
    drop(server);
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert_eq!(log.matches("no model provider is configured").count(), 1, "said once: {log}");
    assert!(log.contains("ANTHROPIC_API_KEY") && log.contains("OPENAI_API_KEY") && log.contains("workjet.toml"), "{log}");
    // Written to a file (not a terminal): plain text, no colour escape codes.
    assert!(!log.contains('\u{1b}'), "escape codes in a log file: {log:?}");
    assert!(log.contains(" WARN workjet::server::startup: no model provider is configured"), "{log}");
}

/// `LEPTOS_SITE_ROOT` names the site the binary serves, whatever its working directory (and
/// whether or not the binary embeds a site): the bundle and the public files come from there
/// with their media types, a missing bundle file is a plain 404, and nothing outside the
/// site is reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leptos_site_root_names_the_site_served_from_any_directory() {
    let parent = tempfile::tempdir().expect("site");
    std::fs::write(parent.path().join("secret.txt"), "not for the web").expect("write");
    let site = parent.path().join("site");
    std::fs::create_dir_all(site.join("pkg")).expect("mkdir");
    std::fs::write(site.join("pkg/workjet.js"), "export default function init() {}\n").expect("write");
    std::fs::write(site.join("pkg/workjet.wasm"), b"\0asm\x01\0\0\0").expect("write");
    std::fs::write(site.join("favicon.svg"), "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").expect("write");
    let dir = tempfile::tempdir().expect("working directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let _server = start_in(dir.path(), port, &[("LEPTOS_SITE_ROOT", site.display().to_string())]);
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("http://127.0.0.1:{port}{path}")).send();

    let js = get("/pkg/workjet.js").await.expect("js");
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(js.headers()["cache-control"], "no-cache");
    assert_eq!(js.headers()["x-content-type-options"], "nosniff", "the security headers apply to files too");
    assert!(js.headers().get("set-cookie").is_none(), "files get no session cookie");
    let etag = js.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(js.text().await.expect("body"), "export default function init() {}\n");
    let again = client.get(format!("http://127.0.0.1:{port}/pkg/workjet.js")).header("if-none-match", &etag).send().await.expect("again");
    assert_eq!(again.status(), 304);

    let wasm = get("/pkg/workjet.wasm").await.expect("wasm");
    assert_eq!((wasm.status().as_u16(), wasm.headers()["content-type"].to_str().expect("type")), (200, "application/wasm"));
    let favicon = get("/favicon.svg").await.expect("favicon");
    assert_eq!((favicon.status().as_u16(), favicon.headers()["content-type"].to_str().expect("type")), (200, "image/svg+xml"));

    // (Clients resolve `..` and `%2e%2e` before sending; hardening.rs sends those raw.)
    for path in ["/pkg/missing.js", "/pkg/..%2f..%2fsecret.txt", "/pkg/%2E%2E%2F%2E%2E%2Fsecret.txt", "/pkg/", "/pkg"] {
        let response = get(path).await.expect("response");
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8", "{path}: a plain 404, not the portal");
    }
    assert_eq!(get("/secret.txt").await.expect("response").status(), 404, "outside the site");
}

/// The unit in deploy/ keeps the hardening the README promises, and stops later than the
/// server's grace period.
#[test]
fn the_systemd_unit_is_hardened() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/workjet.service")).expect("deploy/workjet.service");
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    let value = |key: &str| settings.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    for (key, expected) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "workjet"),
        ("WorkingDirectory", "%S/workjet"),
        ("EnvironmentFile", "-/etc/workjet/workjet.env"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
        ("ExecStart", "/usr/local/bin/workjet serve"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(value(key), Some(expected), "{key}");
    }
    let stop: u64 = value("TimeoutStopSec").expect("TimeoutStopSec").parse().expect("seconds");
    let defaults = workjet::server::config::Config::from_vars(&Default::default()).expect("defaults");
    assert!(stop > defaults.shutdown_grace.as_secs(), "TimeoutStopSec {stop} must exceed WJ_SHUTDOWN_GRACE_SECS");
}

/// `systemd-analyze verify` accepts the unit (the binary path swapped for this build's).
#[test]
#[ignore = "needs systemd-analyze (scripts/test runs it when it is installed)"]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/workjet.service")).expect("unit");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("workjet.service");
    let binary = crate::helpers::workjet_binary();
    std::fs::write(&path, unit.replace("/usr/local/bin/workjet", &binary.display().to_string())).expect("write");
    let output = Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze (install systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

/// One HTTP/1.1 request on a kept-alive connection: the status, the head (lower-cased) and the
/// body, or `None` when no answer came within `wait`.
fn exchange(conn: &mut std::net::TcpStream, request: &str, wait: Duration) -> Option<(u16, String, String)> {
    use std::io::{BufRead, BufReader, Read, Write};
    conn.set_read_timeout(Some(wait)).expect("timeout");
    conn.write_all(request.as_bytes()).ok()?;
    let mut reader = BufReader::new(conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let status = head.get(9..12)?.parse().ok()?;
    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().expect("length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((status, head, String::from_utf8_lossy(&body).into_owned()))
}

/// `workjet serve` raises its soft open-file limit to the hard one (a shell's 1,024 would stop
/// it at ~500 streams) and warns when even that is low. When the descriptors run out anyway,
/// a chat completion that needs a new upstream connection is this server's own 503 with
/// `Retry-After`, not a 502 blaming the provider, which is never asked; the log says what to
/// raise; and once connections close, the same provider answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_is_a_503_of_this_server_and_it_recovers() {
    const HARD: u64 = 160;
    let fake = crate::upstream::Fake::anthropic().await;
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let env = [("ANTHROPIC_API_KEY", "sk-ant-limits".to_owned()), ("ANTHROPIC_BASE_URL", format!("http://{}", fake.addr))];
    let server = start_with(dir.path(), port, &env, |cmd| {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| rlimit::setrlimit(rlimit::Resource::NOFILE, 64, HARD));
        }
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.0.id())).expect("limits");
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).expect("the open-file line");
    assert_eq!(open_files.split_whitespace().skip(3).take(2).collect::<Vec<_>>(), ["160", "160"], "soft raised to hard: {open_files}");
    let key = key_in(dir.path()).await;
    let chat = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: workjet\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        CHAT.len(),
        CHAT
    );
    let healthz = "GET /healthz HTTP/1.1\r\nhost: workjet\r\n\r\n";
    let models = format!("GET /v1/models HTTP/1.1\r\nhost: workjet\r\nauthorization: Bearer {key}\r\n\r\n");

    let (held, answered) = tokio::task::spawn_blocking({
        let chat = chat.clone();
        move || {
            let mut held = Vec::new();
            // The key is looked up once (the database is open), then connections are held until
            // one is not accepted: the server has no descriptor left.
            let mut first = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            assert_eq!(exchange(&mut first, &models, Duration::from_secs(10)).expect("answered").0, 200);
            held.push(first);
            loop {
                assert!(held.len() < HARD as usize, "a server limited to {HARD} descriptors accepted {} connections", held.len());
                let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect (the backlog takes it)");
                match exchange(&mut conn, healthz, Duration::from_secs(3)) {
                    Some((status, _, _)) => {
                        assert_eq!(status, 200);
                        held.push(conn);
                    }
                    None => break,
                }
            }
            let answered = exchange(&mut held[0], &chat, Duration::from_secs(10)).expect("answered");
            (held, answered)
        }
    })
    .await
    .expect("client");
    let (status, head, body) = answered;
    assert_eq!(status, 503, "{head}{body}");
    assert!(head.contains("retry-after: 1\r\n"), "{head}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(error["error"]["code"], "service_unavailable", "{body}");
    assert!(fake.requests().is_empty(), "the provider was never asked");
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert!(log.contains("the open-file limit is low") && log.contains("ulimit -Hn"), "{log}");
    assert!(log.contains("out of sockets") && log.contains("LimitNOFILE"), "{log}");
    assert!(!log.contains(&key) && !log.contains("sk-ant-limits"), "no secret in the log");

    // Connections close: the same provider answers on the connection that was refused.
    let mut held = held;
    let mut first = held.remove(0);
    drop(held);
    let answered = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        loop {
            let answer = exchange(&mut first, &chat, Duration::from_secs(10)).expect("answered");
            if answer.0 != 503 || started.elapsed() > Duration::from_secs(10) {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .expect("client");
    assert_eq!(answered.0, 200, "{}{}", answered.1, answered.2);
    assert_eq!(fake.requests().len(), 1);
}

/// The seed's chat completion.
const CHAT: &str = r#"{"model":"claude-4-sonnet","messages":[{"role":"user","content":"Hello, world!"}]}"#;
