//! Building the application (database, migrations, services, router) and serving it until
//! shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, header},
    middleware,
    routing::get,
};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list, render_app_to_stream_in_order_with_context};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    sensitive_headers::SetSensitiveHeadersLayer,
    trace::TraceLayer,
};

use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};
use url::Url;

use crate::{
    app::{App, shell},
    domain::{
        admission::Admission,
        api_keys::ApiKeyService,
        auth_cache::Generations,
        limits::Limits,
        providers::{HOW_TO_ADD_A_PROVIDER, Registry, Source},
        sessions::{SESSION_TTL, SeaOrmSessionStore},
        shared_state::SharedState,
        usage::UsageRecorder,
        users::UserService,
    },
    server::{
        assets,
        auth::{
            self,
            dev_idp::{self, DevIdp},
            oidc::OidcClient,
            signin_cookie::SignInCookies,
        },
        config::{CacheMode, Config, SignIn},
        database, health,
        listener::{PeerAddr, ServerListener, TlsError, tls_acceptor},
        security::{self, CspNonce},
        site::Site,
        state::{AppState, Services},
        v1,
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
    #[error("cannot use WJ_REDIS_URL: {0}")]
    Redis(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `workjet.toml` (or a provider secret it names) is wrong: a configuration error.
    #[error("configuration error: {0}")]
    Providers(String),
}

/// Builds the provider registry from the configuration.
pub fn load_providers(config: &Config) -> Result<Registry, StartupError> {
    use secrecy::ExposeSecret;
    let registry = Registry::build(&config.providers, config.providers_source.clone(), |name| {
        config.provider_secrets.get(name).map(|s| s.expose_secret().to_owned())
    })
    .map_err(StartupError::Providers)?;
    let models = registry.models().count();
    match &registry.source {
        Source::File(path) => tracing::info!(file = %path.display(), models, "providers configured from the file"),
        Source::Environment(vars) => tracing::info!(from = %vars.join(", "), models, "providers configured from the environment"),
        Source::Nothing => {}
    }
    if registry.is_empty() {
        tracing::warn!("no model provider is configured, so /v1/chat/completions answers model_not_found: {HOW_TO_ADD_A_PROVIDER}");
    }
    Ok(registry)
}

/// A built application, bound to its port, ready to serve.
pub struct Application {
    listener: ServerListener,
    router: Router,
    state: AppState,
    /// `/metrics`, when `WJ_METRICS_ADDR` is set.
    metrics: Option<(TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
}

impl Application {
    /// Connects to the database, runs pending migrations, and binds the listener. `site` is
    /// the Leptos options (the files then come from their site root on disk) or a [`Site`].
    pub async fn build(config: Config, site: impl Into<Site>) -> Result<Self, StartupError> {
        let listener =
            TcpListener::bind(config.listen_addr).await.map_err(|source| StartupError::Bind { addr: config.listen_addr, source })?;
        Self::build_with_listener(config, site, listener).await
    }

    /// Like [`Application::build`], on a listener the caller bound (tests bind port 0 first,
    /// so that `WJ_PUBLIC_URL` can name the real port).
    pub async fn build_with_listener(config: Config, site: impl Into<Site>, listener: TcpListener) -> Result<Self, StartupError> {
        let site = site.into();
        let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
        let registry = load_providers(&config)?;
        let db = database::connect(&config).await.map_err(|e| StartupError::Database(e.to_string()))?;
        database::migrate(&db).await.map_err(|e| StartupError::Migration(e.to_string()))?;
        let listener = ServerListener::new(listener, tls).map_err(|source| StartupError::Bind { addr: config.listen_addr, source })?;
        let metrics = match config.metrics_addr {
            Some(addr) => {
                Some((TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })?, crate::observe::install()))
            }
            None => None,
        };
        let shared = match &config.redis_url {
            Some(url) => Some(SharedState::connect(url, &config.redis_prefix).await.map_err(|e| StartupError::Redis(e.to_string()))?),
            None => None,
        };
        let (state, dev_idp) = build_state(config, db, site, registry, shared);
        spawn_maintenance(&state);
        let router = router(state.clone(), dev_idp);
        Ok(Self { listener, router, state, metrics })
    }

    /// The address `/metrics` is served on, if any (useful with port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        axum::serve::Listener::local_addr(&self.listener).expect("a bound listener has an address")
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
        tracing::info!(%addr, public_url = %self.state.config.public_url, tls = self.state.config.tls.is_some(), "workjet listening");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some((listener, handle)) = self.metrics {
            tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
            let mut stopped = stop_rx.clone();
            let state = self.state.clone();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                };
                if let Err(error) = crate::server::metrics::serve(listener, state, handle, shutdown).await {
                    tracing::error!(%error, "the metrics listener failed");
                }
            });
        }
        let stopping = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
        };
        let threads = self.state.config.serve_threads;
        // Held to the end of this function: serving threads' runtimes stop when it is dropped.
        let (_release, release) = tokio::sync::watch::channel(());
        let serve: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match self.listener {
            ServerListener::Plain(listener) if threads > 0 => {
                tokio::spawn(stopping);
                Box::pin(serve_per_thread(listener, self.router, threads, stop_rx.clone(), release.clone()))
            }
            listener => Box::pin(serve_connections(listener, self.router, stopping)),
        };
        let mut stop_rx_grace = stop_rx.clone();
        let keys = self.state.keys.clone();
        let result = tokio::select! {
            result = serve => result,
            () = async move {
                let _ = stop_rx_grace.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "grace period over: closing remaining connections");
                Ok(())
            }
        };
        if let Err(error) = keys.flush_last_used().await {
            tracing::warn!(error = %crate::domain::describe_db_error(&error), "last_used_at flush at shutdown failed");
        }
        result
    }
}

/// Serves the connections `listener` accepts with `router` (each request knowing its peer's
/// address) until `stop` resolves, then until they have finished.
fn serve_connections(
    listener: ServerListener,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send {
    axum::serve(listener, router.into_make_service_with_connect_info::<PeerAddr>()).with_graceful_shutdown(stop).into_future()
}

/// Serves `listener` on `threads` threads of its own (`WJ_SERVE_THREADS`), each running a
/// single-threaded runtime that accepts connections from the shared socket and keeps them: a
/// connection's reads, handlers and writes never change thread, so waking a request costs no
/// hand-over between workers. Each thread calls providers over connections of its own (see
/// `providers::client`). Background work (the usage recorder, Redis' connection, pool upkeep)
/// stays on the caller's runtime. Resolves when every thread has drained its connections after
/// `stop` turned true; dropped (the grace period is over), it closes the connections left on
/// every thread. Each thread's runtime runs on until `release`'s sender is dropped: the
/// database connections it opened into the shared pool may be serving another thread's
/// request, or the last work after serving.
async fn serve_per_thread(
    listener: TcpListener,
    router: Router,
    threads: usize,
    stop: tokio::sync::watch::Receiver<bool>,
    release: tokio::sync::watch::Receiver<()>,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    // Dropped with this future: every thread then stops at once.
    let (_abandon, abandoned) = tokio::sync::watch::channel(());
    let mut finished = Vec::with_capacity(threads);
    for n in 0..threads {
        let (listener, router, mut stop, mut abandoned) = (listener.try_clone()?, router.clone(), stop.clone(), abandoned.clone());
        let (done, finish) = tokio::sync::oneshot::channel();
        let mut release = release.clone();
        std::thread::Builder::new().name(format!("workjet-serve-{n}")).spawn(move || {
            // Its requests' provider connections are this runtime's too, not shared with the
            // other threads: a relayed stream is read and written on this thread only.
            crate::domain::providers::client::own_pools_on_this_thread();
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = done.send(Err(error));
                    return;
                }
            };
            runtime.block_on(async move {
                let served = async {
                    let listener = ServerListener::Plain(TcpListener::from_std(listener)?);
                    let serve = serve_connections(listener, router, async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    });
                    tokio::select! {
                        result = serve => result,
                        _ = abandoned.changed() => Ok(()),
                    }
                };
                let _ = done.send(served.await);
                // What this runtime started may serve every thread's requests (the database
                // connections it opened into the shared pool, their timers): it runs on until
                // the whole server is done, not only this thread's connections.
                let _ = release.changed().await;
            });
        })?;
        finished.push(finish);
    }
    // Only the threads' copies listen: the socket closes when the last of them stops accepting.
    drop(listener);
    for finish in finished {
        finish.await.unwrap_or_else(|_| Err(std::io::Error::other("a serving thread panicked")))?;
    }
    Ok(())
}

/// Whether key lookups may be cached in this process (see `WJ_AUTH_CACHE`).
pub fn cache_enabled(config: &Config) -> bool {
    match config.cache_mode {
        CacheMode::On => true,
        CacheMode::Off => false,
        // One SQLite file means one instance; with Redis, revocations reach every instance.
        // PostgreSQL without Redis may mean several instances that cannot tell each other.
        CacheMode::Auto => config.is_sqlite() || config.redis_url.is_some(),
    }
}

fn build_state(
    config: Config,
    db: DatabaseConnection,
    site: Site,
    registry: Registry,
    shared: Option<Arc<SharedState>>,
) -> (AppState, Option<Arc<DevIdp>>) {
    let public = config.public_url.as_str().trim_end_matches('/').to_owned();
    let redirect_uri = Url::parse(&format!("{public}/auth/google/callback")).expect("valid redirect URI");
    let (sign_in, dev_idp) = match &config.sign_in {
        SignIn::Oidc(oidc) => (
            OidcClient::new(
                oidc.issuer.clone(),
                oidc.client_id.clone(),
                oidc.client_secret.clone(),
                redirect_uri,
                config.allowed_domains.clone(),
                config.oidc_timeout,
            ),
            None,
        ),
        SignIn::LocalDevelopment => {
            let idp = DevIdp::new(&config.public_url);
            let client = OidcClient::new(
                idp.issuer().clone(),
                dev_idp::CLIENT_ID.to_owned(),
                idp.client_secret(),
                redirect_uri,
                config.allowed_domains.clone(),
                config.oidc_timeout,
            );
            (client, Some(Arc::new(idp)))
        }
    };
    tracing::info!(source = ?config.secret_key.source(), "sign-in cookie key ready");
    let generations = Arc::new(Generations::new(shared.clone()));
    let users = UserService::new(db.clone());
    let keys = ApiKeyService::new(db.clone(), cache_enabled(&config), generations.clone());
    let limits = Limits::new(shared.clone(), config.auth_failures_per_minute);
    let sessions = {
        let store = SeaOrmSessionStore::new(db.clone(), config.session_touch_interval);
        if cache_enabled(&config) { store.with_cache(generations.clone()) } else { store }
    };
    let admin = crate::domain::admin::AdminService::new(
        db.clone(),
        crate::domain::admin::Admins::new(&config.admin_emails),
        users.clone(),
        keys.clone(),
        sessions.clone(),
        generations.clone(),
    );
    let state = AppState::new(Services {
        admission: Admission::new(
            keys.clone(),
            users.clone(),
            limits.clone(),
            generations.clone(),
            config.rate_limit_per_minute,
            config.max_rate_limit_per_minute,
        ),
        generations: generations.clone(),
        budgets: crate::domain::token_budget::TokenBudgets::new(db.clone(), shared.clone()),
        users,
        keys,
        limits,
        shared,
        gateway: Arc::new(registry),
        usage: UsageRecorder::start(db.clone()),
        audit: crate::domain::audit::AuditLog::new(db.clone()),
        sessions,
        admin,
        sign_in: Arc::new(sign_in),
        sign_in_cookies: SignInCookies::new(&config.secret_key, config.secure_cookies()),
        config: Arc::new(config),
        db,
        leptos_options: site.options,
        assets: site.assets,
    });
    (state, dev_idp)
}

/// Periodic housekeeping: `last_used_at` is flushed and stale in-process entries (rate
/// limits, session lookups) are dropped every minute, expired sessions are purged every
/// ten minutes.
fn spawn_maintenance(state: &AppState) {
    let keys = state.keys.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(error) = keys.flush_last_used().await {
                tracing::warn!(error = %crate::domain::describe_db_error(&error), "last_used_at flush failed (will retry)");
            }
        }
    });
    let limits = state.limits.clone();
    let session_cache = state.sessions.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.prune();
            // Session lookups are served for at most a minute; drop the ones nobody asked for again.
            session_cache.prune_cache();
        }
    });
    let generations = state.generations.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            generations.retry_unsent().await;
        }
    });
    let sessions = state.sessions.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            match sessions.purge_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired sessions purged"),
                Err(error) => tracing::warn!(error = %crate::domain::describe_db_error(&error), "session purge failed"),
            }
        }
    });
}

/// The `wj_session` cookie, exactly as the contract says.
fn session_layer(state: &AppState) -> SessionManagerLayer<SeaOrmSessionStore> {
    let layer = SessionManagerLayer::new(state.sessions.clone())
        .with_name("wj_session")
        .with_http_only(true)
        .with_secure(state.config.secure_cookies())
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(SESSION_TTL.as_secs() as i64)))
        // Rolling expiry: every request renews the cookie (the store bounds the writes).
        .with_always_save(true);
    match &state.config.cookie_domain {
        Some(domain) => layer.with_domain(domain.clone()),
        None => layer,
    }
}

/// The whole HTTP surface: health, static assets, sign-in, portal pages and server functions,
/// and the built-in development identity provider when `dev_idp` is given (local development
/// only: otherwise its paths are not routes at all).
pub fn router(state: AppState, dev_idp: Option<Arc<DevIdp>>) -> Router {
    let pkg = state.leptos_options.site_pkg_dir.trim_matches('/').to_owned();
    let bundle = assets::Bundle {
        assets: state.assets.clone(),
        version: if state.leptos_options.hash_files { None } else { state.assets.bundle_version(&pkg) },
        pkg_dir: pkg.clone(),
        hashed: state.leptos_options.hash_files,
    };
    // The pages link the bundle from its content-addressed directory (`/pkg/<version>`),
    // which the browser may keep for a year; the routes below still serve `/pkg`.
    let mut leptos_options = state.leptos_options.clone();
    leptos_options.site_pkg_dir = bundle.public_dir().into();
    let routes = generate_route_list(App);
    let context = leptos_context;
    // Unknown pages: the portal's own "Page not found", rendered (never a file from disk:
    // the site's files have their own routes below).
    let not_found = render_app_to_stream_in_order_with_context(
        {
            let state = state.clone();
            move || {
                provide_context(state.clone());
                context();
            }
        },
        {
            let options = leptos_options.clone();
            move || shell(options.clone())
        },
    );
    let portal = Router::new()
        .leptos_routes_with_context(&state, routes, context, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .merge(auth::routes::router())
        .fallback(move |request: Request| not_found(request))
        .layer(middleware::from_fn_with_state(state.clone(), auth::portal::resolve_user))
        .layer(session_layer(&state));
    let api = v1::router(&state, session_layer(&state));
    let mut outer = Router::new();
    if let Some(idp) = dev_idp {
        outer = outer.nest_service(dev_idp::MOUNT, dev_idp::router(idp));
    }
    // The site's files, outside the session layer (no cookie is read or set for them): the
    // bundle under /pkg (a plain 404 for anything missing there, never the portal), and
    // each public file (favicon.svg, robots.txt, …) as a route of its own.
    outer = outer.nest_service(&format!("/{pkg}"), get(assets::serve_bundle).with_state(bundle));
    for file in state.assets.public_files(&pkg) {
        outer = outer.route(&format!("/{file}"), get(assets::serve_public).with_state(state.assets.clone()));
    }
    let outer = outer
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(api)
        .merge(portal)
        // One `Router::layer` for all of it: axum boxes every route once more per call, and a
        // request clones each box level; the layers composed here are plain values.
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::SET_COOKIE,
                    header::PROXY_AUTHORIZATION,
                ]))
                .layer(SetRequestIdLayer::new(REQUEST_ID, RandomRequestId))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(TraceLayer::new_for_http().make_span_with(request_span).on_response(
                    |response: &axum::response::Response, latency: Duration, span: &tracing::Span| {
                        tower_http::trace::OnResponse::on_response(
                            tower_http::trace::DefaultOnResponse::default(),
                            response,
                            latency,
                            span,
                        );
                        if crate::observe::trace::enabled() {
                            crate::observe::trace::record_status(span, response.status());
                        }
                    },
                ))
                // Also catches a route's panic (a 500 with the security headers).
                .layer(security::EdgeLayer::new(&state)),
        );
    outer.with_state(state)
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A random UUID (version 4) for each request without an `x-request-id`, from the thread's
/// random generator (tower-http's `MakeRequestUuid` asks the kernel for each one).
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().encode_lower(&mut text);
        Some(RequestId::new(axum::http::HeaderValue::from_str(text).expect("hex and hyphens")))
    }
}

/// The span of a request (the path only: a query string could carry a secret someone
/// pasted there); with traces exported, the OpenTelemetry server span.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
    if crate::observe::trace::enabled() {
        let route = request.extensions().get::<axum::extract::MatchedPath>().map(axum::extract::MatchedPath::as_str);
        return crate::observe::trace::server_span(request.method(), route, request.uri().path(), request_id, request.headers());
    }
    tracing::info_span!("request", id = %request_id, method = %request.method(), path = %request.uri().path())
}

/// Context for every server-side render and server function: the request's CSP nonce.
fn leptos_context() {
    if let Some(parts) = use_context::<axum::http::request::Parts>()
        && let Some(CspNonce(nonce)) = parts.extensions.get::<CspNonce>()
    {
        provide_context(leptos::nonce::Nonce::from_value(nonce.clone()));
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
