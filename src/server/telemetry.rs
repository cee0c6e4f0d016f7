//! Structured logging with `tracing`: `RUST_LOG` picks levels, `WJ_LOG_FORMAT` picks text or JSON.

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::server::config::LogFormat;

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored),
/// so tests can start several servers in one process.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(fmt::layer().with_target(true)).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_current_span(true)).try_init(),
    };
    drop(result);
}
