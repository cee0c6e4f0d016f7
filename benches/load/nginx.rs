//! 4c. The gateway beside nginx: Debian's nginx as a plain `proxy_pass` reverse proxy (a
//! keep-alive pool to the upstream) in front of the same fake upstream, measured in the same
//! run as the fake alone and Workjet. nginx runs as a child process with a generated
//! configuration in a temporary directory (never the system service).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use hyper::StatusCode;

use crate::{Plan, Server, chat, measure, measure_counted, report::Row, streams::Procs};

/// The nginx binary: `WJ_BENCH_NGINX`, else `nginx` on the `PATH` or in the usual `sbin`s.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WJ_BENCH_NGINX").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

/// An nginx master process (and its workers) proxying to one upstream.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Its master and workers (one per core), for their memory and CPU. The workers start
    /// once the master listens: this waits up to a second for all of them.
    pub async fn processes(&self) -> Procs {
        let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut procs = Procs::family(self.child.id());
        for _ in 0..50 {
            if procs.count() > workers {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            procs = Procs::family(self.child.id());
        }
        procs
    }

    pub async fn start(binary: &Path, upstream: SocketAddr) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // Workers may run as another user (nginx started as root): they need to reach the
        // temporary paths.
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?.local_addr().map_err(|e| e.to_string())?.port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let d = dir.path().display();
        // As many workers as Workjet has runtime threads (one per core); a keep-alive pool of
        // 64 connections to the upstream, HTTP/1.1, no buffering (streams pass as they come).
        let conf = format!(
            "worker_processes auto;\nworker_rlimit_nofile 131072;\nerror_log {d}/error.log error;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 65536; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 1000000;\n\
             \x20 upstream fake {{ server {upstream}; keepalive 64; keepalive_requests 1000000; }}\n\
             \x20 server {{\n    listen {addr} backlog=4096;\n    location / {{\n      proxy_pass http://fake;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        for _ in 0..100 {
            if let Ok(Some(status)) = child.try_wait() {
                let log = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
                return Err(format!("nginx exited ({status}): {} {}", log("stderr.log").trim(), log("error.log").trim()));
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(Self { child, addr, dir });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        Err("nginx did not start listening in 5 s".into())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

/// A proxy's CPU time per request over a row's runs (warm-ups included), in µs.
#[derive(Clone, Copy, Default)]
pub struct CpuPerRequest {
    pub user_us: f64,
    pub system_us: f64,
}

impl CpuPerRequest {
    pub fn total_us(&self) -> f64 {
        self.user_us + self.system_us
    }
}

/// One connection count's rows: the fake upstream directly, through nginx, through Workjet,
/// and each proxy's CPU per request.
pub struct Rows {
    pub direct: Row,
    pub nginx: Row,
    pub workjet: Row,
    pub nginx_cpu: CpuPerRequest,
    pub workjet_cpu: CpuPerRequest,
}

/// `measure_counted` with the CPU that `procs` spent over its runs, per request.
async fn measure_cpu(
    plan: &Plan,
    label: &str,
    addr: SocketAddr,
    concurrency: usize,
    make: crate::client::MakeRequest,
    procs: &Procs,
) -> (Row, CpuPerRequest) {
    let (user, system) = procs.cpu_user_system();
    let (row, answered) = measure_counted(plan, label, addr, concurrency, make, StatusCode::OK).await;
    let (user_after, system_after) = procs.cpu_user_system();
    let per_request = |seconds: f64| seconds * 1e6 / answered.max(1) as f64;
    (row, CpuPerRequest { user_us: per_request(user_after - user), system_us: per_request(system_after - system) })
}

/// Per connection count (1, 64): the fake upstream directly, through nginx, through Workjet.
/// `Err` says why nginx could not be measured.
pub async fn run(plan: &Plan, fast: SocketAddr, workjet: &Server, key: &str) -> Result<Vec<Rows>, String> {
    let Some(binary) = binary() else {
        return Err("nginx not installed".into());
    };
    let nginx = Nginx::start(&binary, fast).await?;
    let nginx_procs = nginx.processes().await;
    let workjet_procs = Procs::one(workjet.pid());
    let mut rows = Vec::new();
    for c in [1, 64] {
        let direct =
            measure(plan, "fake upstream directly", fast, c, Arc::new(|_, _| chat("bench-model", false, None)), StatusCode::OK).await;
        let (proxied, nginx_cpu) =
            measure_cpu(plan, "through nginx (proxy_pass)", nginx.addr, c, Arc::new(|_, _| chat("bench-model", false, None)), &nginx_procs)
                .await;
        let k = key.to_owned();
        let (via, workjet_cpu) = measure_cpu(
            plan,
            "through Workjet",
            workjet.addr,
            c,
            Arc::new(move |_, _| chat("bench-model", false, Some(&k))),
            &workjet_procs,
        )
        .await;
        eprintln!(
            "  CPU per request, c={c}: nginx {:.1} µs (user {:.1}, system {:.1}), Workjet {:.1} µs (user {:.1}, system {:.1})",
            nginx_cpu.total_us(),
            nginx_cpu.user_us,
            nginx_cpu.system_us,
            workjet_cpu.total_us(),
            workjet_cpu.user_us,
            workjet_cpu.system_us
        );
        rows.push(Rows { direct, nginx: proxied, workjet: via, nginx_cpu, workjet_cpu });
    }
    Ok(rows)
}

/// Runs section 4c into `report`.
pub async fn section(plan: &Plan, report: &mut crate::report::Report, fast: SocketAddr, workjet: &Server, key: &str) {
    eprintln!("-- 4c. the gateway beside nginx");
    let result = run(plan, fast, workjet, key).await;
    if let Err(why) = &result {
        eprintln!("  skipped: {why}");
    }
    report.nginx(&result);
}
