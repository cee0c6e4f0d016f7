//! Structured logging with `tracing` (`RUST_LOG` picks levels, `WJ_LOG_FORMAT` text or JSON)
//! and, when the standard `OTEL_*` variables ask for it, OpenTelemetry traces
//! ([`crate::observe::trace`]).

use std::io::IsTerminal as _;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{EnvFilter, Layer as _, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::{observe::trace, server::config::LogFormat};

/// What must be flushed before the process exits.
#[must_use = "call shutdown() before exiting, or the last spans are lost"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered (blocking: call it off the async workers).
    pub fn shutdown(self) {
        if let Some(provider) = self.traces {
            trace::shutdown(provider);
        }
    }
}

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored),
/// so tests can start several servers in one process. Fails only when the `OTEL_*`
/// variables ask for something this build cannot do.
pub fn init(format: LogFormat) -> Result<Telemetry, trace::TraceConfigError> {
    let traces = trace::start()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    // Each layer has its own filter: the log's (RUST_LOG), and the traces' (Workjet's spans).
    let logs = match format {
        // Colours only on a terminal: a log file or a collector gets plain text (escape
        // codes there are noise to grep through, and formatting them cost every request's
        // span ~3,000 instructions).
        LogFormat::Text => fmt::layer().with_target(true).with_ansi(std::io::stdout().is_terminal()).boxed(),
        LogFormat::Json => fmt::layer().json().flatten_event(true).with_current_span(true).boxed(),
    }
    .with_filter(filter);
    let result = tracing_subscriber::registry().with(logs).with(traces.as_ref().map(trace::layer)).try_init();
    drop(result);
    Ok(Telemetry { traces })
}
