//! Structured logging with `tracing` (`RUST_LOG` picks levels, `WJ_LOG_FORMAT` text or JSON)
//! and, when the standard `OTEL_*` variables ask for it, OpenTelemetry traces
//! ([`crate::observe::trace`]).

use std::io::IsTerminal as _;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, Targets},
    fmt,
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

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

/// The levels when `RUST_LOG` is unset or invalid.
const DEFAULT_LEVELS: &str = "info,sqlx=warn,sea_orm=warn";

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored),
/// so tests can start several servers in one process. Fails only when the `OTEL_*`
/// variables ask for something this build cannot do.
pub fn init(format: LogFormat) -> Result<Telemetry, trace::TraceConfigError> {
    let traces = trace::start()?;
    let levels = LogLevels::parse(std::env::var("RUST_LOG").ok().as_deref());
    let result = match (&traces, levels) {
        // Without traces the log's filter is the only one, so it filters for the whole
        // subscriber: nothing per span but the log's own work (a per-layer filter looks each
        // span up on every enter and exit of every request's span). It is the outermost
        // layer: a callsite it turns off is then off for good ("never"); under the log's
        // layer it would be asked again at every event ("sometimes").
        (None, LogLevels::Targets(targets)) => tracing_subscriber::registry().with(log_layer(format)).with(targets).try_init(),
        (None, LogLevels::Env(env)) => tracing_subscriber::registry().with(log_layer(format)).with(env).try_init(),
        // Each layer has its own filter: the log's (RUST_LOG), and the traces' (Workjet's spans).
        (Some(provider), levels) => {
            tracing_subscriber::registry().with(log_layer(format).with_filter(levels.boxed())).with(trace::layer(provider)).try_init()
        }
    };
    drop(result);
    Ok(Telemetry { traces })
}

/// The log's lines, as text or JSON.
fn log_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    match format {
        // Colours only on a terminal: a log file or a collector gets plain text (escape
        // codes there are noise to grep through, and formatting them cost every request's
        // span ~3,000 instructions).
        LogFormat::Text => fmt::layer().with_target(true).with_ansi(std::io::stdout().is_terminal()).boxed(),
        LogFormat::Json => fmt::layer().json().flatten_event(true).with_current_span(true).boxed(),
    }
}

/// `RUST_LOG`'s levels. Plain `target=level` directives (all most people write) make a
/// static filter; span and field directives (`[span{field=value}]`) need [`EnvFilter`], which
/// also tracks every span entered (a lock and a lookup on each enter and exit).
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "one value, made once at start-up")]
enum LogLevels {
    Targets(Targets),
    Env(EnvFilter),
}

impl LogLevels {
    /// `RUST_LOG`'s value; unset or invalid: [`DEFAULT_LEVELS`].
    fn parse(spec: Option<&str>) -> Self {
        let Some(spec) = spec else { return Self::default_levels() };
        if Self::is_plain(spec)
            && let Ok(targets) = spec.parse::<Targets>()
        {
            return Self::Targets(targets);
        }
        match EnvFilter::try_new(spec) {
            Ok(env) => Self::Env(env),
            Err(_) => Self::default_levels(),
        }
    }

    fn default_levels() -> Self {
        Self::Targets(DEFAULT_LEVELS.parse().expect("the default levels parse"))
    }

    /// Only `level`, `target` and `target=level` directives, in the characters both filters
    /// read the same way (where the two filters could read a directive differently, the
    /// [`EnvFilter`] reads it, as before).
    fn is_plain(spec: &str) -> bool {
        let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'-');
        // An empty value splits into one empty directive, which is not a word.
        spec.split(',').all(|directive| match directive.split_once('=') {
            Some((target, level)) => word(target) && word(level),
            None => word(directive),
        })
    }

    fn boxed<S: Subscriber + for<'span> LookupSpan<'span>>(self) -> Box<dyn tracing_subscriber::layer::Filter<S> + Send + Sync> {
        match self {
            Self::Targets(targets) => FilterExt::boxed(targets),
            Self::Env(env) => FilterExt::boxed(env),
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    fn targets(spec: Option<&str>) -> Targets {
        match LogLevels::parse(spec) {
            LogLevels::Targets(targets) => targets,
            LogLevels::Env(env) => panic!("{spec:?} read as an EnvFilter: {env}"),
        }
    }

    #[test]
    fn unset_is_info_with_the_database_crates_at_warn() {
        let levels = targets(None);
        assert!(levels.would_enable("workjet::server", &Level::INFO));
        assert!(!levels.would_enable("workjet::server", &Level::DEBUG));
        assert!(!levels.would_enable("sqlx::query", &Level::INFO));
        assert!(levels.would_enable("sqlx::query", &Level::WARN));
        assert!(!levels.would_enable("sea_orm::driver", &Level::INFO));
    }

    #[test]
    fn plain_directives_are_a_static_filter_with_the_most_specific_target_winning() {
        let levels = targets(Some("warn,workjet=debug,workjet::domain::usage=error,hyper-util=TRACE"));
        assert!(levels.would_enable("workjet::server", &Level::DEBUG));
        assert!(!levels.would_enable("workjet::domain::usage", &Level::WARN));
        assert!(levels.would_enable("tokio", &Level::WARN));
        assert!(!levels.would_enable("tokio", &Level::INFO));
        assert!(levels.would_enable("hyper-util", &Level::TRACE));
        // A bare target means everything from it.
        assert!(targets(Some("workjet")).would_enable("workjet::x", &Level::TRACE));
        assert!(!targets(Some("off")).would_enable("workjet", &Level::ERROR));
    }

    #[test]
    fn span_and_field_directives_keep_the_env_filter() {
        for spec in ["workjet[request]=debug", "info,[{id=1}]=trace", ""] {
            assert!(matches!(LogLevels::parse(Some(spec)), LogLevels::Env(_)), "{spec:?}");
        }
    }

    #[test]
    fn an_invalid_value_falls_back_to_the_default() {
        for spec in ["workjet=loud", "a=b=c", "workjet[=debug"] {
            let levels = targets(Some(spec));
            assert!(levels.would_enable("workjet", &Level::INFO), "{spec:?}");
            assert!(!levels.would_enable("sqlx", &Level::INFO), "{spec:?}");
        }
    }
}
