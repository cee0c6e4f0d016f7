//! The `workjet` binary as a child process, for the tests that need the real thing (its
//! logs, its signals, its exporters).

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Process {
    pub child: Child,
    pub base: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Process {
    /// Starts `workjet` with `env` in a fresh directory; its stdout and stderr go to files.
    pub async fn start(env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(crate::helpers::workjet_binary());
        for (key, _) in std::env::vars() {
            if key.starts_with("WJ_") || key.starts_with("LEPTOS_") || key.starts_with("OTEL_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(dir.path())
            .env("WJ_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("WJ_PUBLIC_URL", &base)
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).expect("log"))
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("log"))
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn workjet");
        let process = Self { child, base, port, dir };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client.get(format!("{}/healthz", process.base)).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "workjet did not start: {}", process.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit status.
    pub async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(started.elapsed() < limit, "workjet did not exit within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        let mut all = String::new();
        for name in ["stdout.log", "stderr.log"] {
            let mut bytes = Vec::new();
            if let Ok(mut f) = std::fs::File::open(self.dir.path().join(name)) {
                let _ = f.read_to_end(&mut bytes);
            }
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
        all
    }

    /// The bytes of the SQLite database and its WAL.
    pub fn database_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for name in ["workjet.db", "workjet.db-wal", "workjet.db-journal"] {
            if let Ok(b) = std::fs::read(self.dir.path().join(name)) {
                bytes.extend(b);
            }
        }
        bytes
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
