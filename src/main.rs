//! The `workjet` binary: `workjet` (or `workjet serve`) runs the server, `workjet migrate`
//! runs pending database migrations and exits.

use std::{path::Path, process::ExitCode};

/// mimalloc instead of glibc's allocator: profiling the `/v1` path showed a quarter of the
/// server's CPU time in glibc `malloc`/`free`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use workjet::server::{
    config::Config,
    database, limits, site,
    startup::{Application, ShutdownSignal},
    telemetry,
};

/// `EMBEDDED_SITE`: the site cargo-leptos built, when this is a release build made with
/// `cargo leptos build --release --precompress` (see build.rs); empty otherwise.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_site.rs"));
}

const USAGE: &str = "usage: workjet [serve | migrate | --version]\n\nConfiguration comes from WJ_* environment variables; see README.md.";

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        None | Some("serve") => serve().await,
        Some("migrate") => migrate().await,
        Some("--version" | "-V") => {
            println!("workjet {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("workjet: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn load_config() -> Result<Config, ExitCode> {
    Config::from_env().map_err(|e| {
        eprintln!("workjet: configuration error: {e}");
        ExitCode::from(2)
    })
}

async fn serve() -> ExitCode {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let telemetry = match telemetry::init(config.log_format) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("workjet: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    limits::raise_and_log();
    let code = run(config).await;
    // The last spans leave before the process does.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn run(config: Config) -> ExitCode {
    let shutdown = match ShutdownSignal::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("workjet: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let site = match site::load(Path::new("Leptos.toml"), embedded::EMBEDDED_SITE) {
        Ok(site) => site,
        Err(e) => {
            eprintln!("workjet: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let app = match Application::build(config, site).await {
        Ok(app) => app,
        Err(e @ workjet::server::startup::StartupError::Providers(_)) => {
            eprintln!("workjet: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            eprintln!("workjet: {e}");
            return ExitCode::from(1);
        }
    };
    match app.run_until(shutdown.recv()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workjet: server error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn migrate() -> ExitCode {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = telemetry::init(config.log_format) {
        eprintln!("workjet: configuration error: {e}");
        return ExitCode::from(2);
    }
    let db = match database::connect(&config).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("workjet: cannot open the database: {e}");
            return ExitCode::from(1);
        }
    };
    match database::migrate(&db).await {
        Ok(()) => {
            println!("workjet: migrations are up to date");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("workjet: migration failed: {e}");
            ExitCode::from(1)
        }
    }
}
