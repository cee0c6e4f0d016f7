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
