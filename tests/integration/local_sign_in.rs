//! The built-in development sign-in never leaves the machine: configuration allows it only on
//! a loopback listen address reached through a loopback URL, the binary refuses to start
//! otherwise, and with Google configured its routes do not exist.

use std::collections::HashMap;

use workjet::server::config::{Config, ConfigError, SecretKeySource, SignIn};

use crate::{browser::app_with_idp, helpers::*};

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Config::from_vars(&vars)
}

const GOOGLE: [(&str, &str); 2] = [("WJ_GOOGLE_CLIENT_ID", "id.apps.example"), ("WJ_GOOGLE_CLIENT_SECRET", "a-google-client-secret")];

#[test]
fn local_sign_in_needs_a_loopback_listen_address_and_a_loopback_public_url() {
    let refused: [&[(&str, &str)]; 6] = [
        &[("WJ_LISTEN_ADDR", "0.0.0.0:3000")],
        &[("WJ_LISTEN_ADDR", "[::]:3000")],
        &[("WJ_LISTEN_ADDR", "192.168.1.20:3000")],
        &[("WJ_LISTEN_ADDR", "0.0.0.0:3000"), ("WJ_PUBLIC_URL", "http://127.0.0.1:3000")],
        &[("WJ_PUBLIC_URL", "https://portal.workjet.dev")],
        &[("WJ_LISTEN_ADDR", "127.0.0.1:3000"), ("WJ_PUBLIC_URL", "http://192.168.1.20:3000")],
    ];
    for vars in refused {
        let error = config(vars).expect_err(&format!("{vars:?} must be refused"));
        assert_eq!(error.name, "WJ_GOOGLE_CLIENT_ID", "{vars:?}");
        let text = error.to_string();
        assert!(text.contains("WJ_GOOGLE_CLIENT_ID") && text.contains("WJ_GOOGLE_CLIENT_SECRET"), "{text}");
    }
    let allowed: [&[(&str, &str)]; 4] = [
        &[],
        &[("WJ_LISTEN_ADDR", "127.0.0.1:8080")],
        &[("WJ_LISTEN_ADDR", "[::1]:3000")],
        &[("WJ_LISTEN_ADDR", "127.0.0.1:3000"), ("WJ_PUBLIC_URL", "http://localhost:3000")],
    ];
    for vars in allowed {
        let c = config(vars).unwrap_or_else(|e| panic!("{vars:?}: {e}"));
        assert!(matches!(c.sign_in, SignIn::LocalDevelopment), "{vars:?}");
        assert_eq!(c.secret_key.source(), SecretKeySource::Random, "local development: a key per process");
    }
    // With Google credentials, any address will do.
    let mut vars = GOOGLE.to_vec();
    vars.extend([("WJ_LISTEN_ADDR", "0.0.0.0:3000"), ("WJ_PUBLIC_URL", "https://portal.workjet.dev")]);
    let c = config(&vars).expect("valid");
    assert!(matches!(c.sign_in, SignIn::Oidc(_)));
    assert_eq!(c.secret_key.source(), SecretKeySource::DerivedFromClientSecret);
}

#[test]
fn the_secret_key_is_32_bytes_or_more_of_hex_or_base64_and_never_printed() {
    let base64_32 = "q3T8mZ1xV0cR7yN4bK2wE9sH6uJ5aL1dF0gP8oI3tQs=";
    let accepted =
        [base64_32, "q3T8mZ1xV0cR7yN4bK2wE9sH6uJ5aL1dF0gP8oI3tQs", &"0a".repeat(32), "q3T8mZ1xV0cR7yN4bK2wE9sH6uJ5aL1dF0gP8o-_tQs"];
    for key in accepted {
        let mut vars = GOOGLE.to_vec();
        vars.push(("WJ_SECRET_KEY", key));
        let c = config(&vars).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(c.secret_key.source(), SecretKeySource::Configured);
        assert!(!format!("{c:?}").contains(key), "Debug never prints WJ_SECRET_KEY");
    }
    let short = "c2hvcnQ="; // "short"
    let refused = [short, &"0a".repeat(31), "not base64 at all!", "q3T8mZ1xV0cR7yN4bK2wE9sH6uJ5aL1d"];
    for key in refused {
        let mut vars = GOOGLE.to_vec();
        vars.push(("WJ_SECRET_KEY", key));
        let error = config(&vars).expect_err(key);
        assert_eq!(error.name, "WJ_SECRET_KEY");
        assert!(!error.to_string().contains(key), "the error does not repeat the value: {error}");
    }
}

/// Runs the binary to its exit (at most 30 s: a server that starts instead is killed and fails
/// the test rather than hanging it).
fn run_to_exit(cmd: &mut std::process::Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run workjet");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("workjet started serving instead of refusing its configuration");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    (status.code(), stderr)
}

#[test]
fn the_binary_refuses_the_local_sign_in_on_all_interfaces() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut cmd = std::process::Command::new(crate::helpers::workjet_binary());
    for (key, _) in std::env::vars() {
        if key.starts_with("WJ_") || key.starts_with("LEPTOS_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir.path()).env("WJ_LISTEN_ADDR", format!("0.0.0.0:{port}"));
    let (code, stderr) = run_to_exit(&mut cmd);
    assert_eq!(code, Some(2), "exit code 2, like every configuration error: {stderr}");
    assert!(stderr.contains("WJ_GOOGLE_CLIENT_ID") && stderr.contains("WJ_GOOGLE_CLIENT_SECRET"), "{stderr}");
    assert!(stderr.contains("WJ_LISTEN_ADDR"), "says which setting made it refuse: {stderr}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens");
    assert!(!dir.path().join("workjet.db").exists(), "nothing was created");
    // A short WJ_SECRET_KEY stops start-up the same way, without repeating it.
    let mut cmd = std::process::Command::new(crate::helpers::workjet_binary());
    cmd.current_dir(dir.path()).env_clear().env("WJ_LISTEN_ADDR", format!("127.0.0.1:{port}")).env("WJ_SECRET_KEY", "dG9vIHNob3J0");
    let (code, stderr) = run_to_exit(&mut cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("WJ_SECRET_KEY") && !stderr.contains("dG9vIHNob3J0"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_google_configured_the_development_provider_routes_do_not_exist() {
    let (app, _idp) = app_with_idp(Backend::Sqlite, &[]).await;
    for path in ["/_dev/idp/.well-known/openid-configuration", "/_dev/idp/authorize?client_id=workjet-local-development", "/_dev/idp/jwks"]
    {
        assert_eq!(app.get(path).await.status(), 404, "GET {path}");
    }
    for path in ["/_dev/idp/authorize", "/_dev/idp/token"] {
        let response = app
            .client
            .post(app.url(path))
            .header("origin", &app.base_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=authorization_code&code=x&action=approve&email=eve%40example.com")
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 404, "POST {path}");
    }
    // … while in local development they do.
    let local = spawn_app_with(Backend::Sqlite, &[]).await.expect("app");
    assert_eq!(local.get("/_dev/idp/.well-known/openid-configuration").await.status(), 200);
}
