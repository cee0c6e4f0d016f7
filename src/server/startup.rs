//! Building the application (database, migrations, services, router) and serving it until
//! shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, header},
    middleware,
    routing::get,
    serve::ListenerExt,
};
use leptos::{config::LeptosOptions, prelude::*};
use leptos_axum::{LeptosRoutes, file_and_error_handler_with_context, generate_route_list};
use tokio::net::TcpListener;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    sensitive_headers::SetSensitiveHeadersLayer,
    trace::TraceLayer,
};

use crate::{
    app::{App, shell},
    server::{
        config::Config,
        database, health,
        security::{self, CspNonce},
        state::AppState,
    },
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open the database: {0}")]
    Database(String),
    #[error("database migration failed: {0}")]
    Migration(String),
}

/// A built application, bound to its port, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects to the database, runs pending migrations, and binds the listener.
    pub async fn build(config: Config, leptos_options: LeptosOptions) -> Result<Self, StartupError> {
        let listener =
            TcpListener::bind(config.listen_addr).await.map_err(|source| StartupError::Bind { addr: config.listen_addr, source })?;
        Self::build_with_listener(config, leptos_options, listener).await
    }

    /// Like [`Application::build`], on a listener the caller bound (tests bind port 0 first,
    /// so that `WJ_PUBLIC_URL` can name the real port).
    pub async fn build_with_listener(config: Config, leptos_options: LeptosOptions, listener: TcpListener) -> Result<Self, StartupError> {
        let db = database::connect(&config).await.map_err(|e| StartupError::Database(e.to_string()))?;
        database::migrate(&db).await.map_err(|e| StartupError::Migration(e.to_string()))?;
        let state = AppState { config: Arc::new(config), db, leptos_options };
        let router = router(state.clone());
        Ok(Self { listener, router, state })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The shared state (tests reach the services through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish for at most the
    /// configured grace period.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let grace = self.state.config.shutdown_grace;
        let addr = self.local_addr();
        tracing::info!(%addr, public_url = %self.state.config.public_url, "workjet listening");
        // TCP_NODELAY: without it every relayed stream stalls ~40 ms at its tail (Nagle).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let serve =
            axum::serve(listener, self.router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = stop_tx.send(true);
            });
        let mut stop_rx_grace = stop_rx.clone();
        tokio::select! {
            result = serve => result,
            () = async move {
                let _ = stop_rx_grace.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "grace period over: closing remaining connections");
                Ok(())
            }
        }
    }
}

/// The whole HTTP surface: health, portal pages and server functions, static assets.
pub fn router(state: AppState) -> Router {
    let leptos_options = state.leptos_options.clone();
    let routes = generate_route_list(App);
    let context = leptos_context;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .leptos_routes_with_context(&state, routes, context, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(file_and_error_handler_with_context::<AppState, _>(context, shell))
        .layer(middleware::from_fn_with_state(state.clone(), security::resolve_client_ip))
        .layer(middleware::from_fn_with_state(state.clone(), security::security_headers))
        .layer(CatchPanicLayer::custom(|_| axum::response::IntoResponse::into_response(crate::server::error::ApiError::internal())))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
            // The path only: a query string could carry a secret someone pasted there.
            tracing::info_span!("request", id = %request_id, method = %request.method(), path = %request.uri().path())
        }))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static("x-request-id")))
        .layer(SetRequestIdLayer::new(HeaderName::from_static("x-request-id"), MakeRequestUuid))
        .layer(SetSensitiveHeadersLayer::new([header::AUTHORIZATION, header::COOKIE, header::SET_COOKIE, header::PROXY_AUTHORIZATION]))
        .with_state(state)
}

/// Context for every server-side render and server function: the request's CSP nonce.
fn leptos_context() {
    if let Some(parts) = use_context::<axum::http::request::Parts>() {
        if let Some(CspNonce(nonce)) = parts.extensions.get::<CspNonce>() {
            provide_context(leptos::nonce::Nonce::from_value(nonce.clone()));
        }
    }
}

/// SIGINT/SIGTERM, registered when created: create it before binding the listener, so a
/// signal that arrives during start-up is not lost (nor fatal).
pub struct ShutdownSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Registers the handlers now.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    /// Resolves on the first SIGINT or SIGTERM.
    pub async fn recv(mut self) {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            self.terminate.recv().await;
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = terminate => {},
        }
    }
}
