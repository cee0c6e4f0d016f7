//! The OpenAI-compatible `/v1` API. Every route but the OpenAPI document is behind
//! [`auth::authenticate`] (fail closed: unknown paths too), answers errors in OpenAI's shape,
//! and never lets a response be cached.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod body;
pub mod chat;
pub mod json;
pub mod keys;
pub mod limits;
pub mod me;
pub mod messages;
pub mod models;
pub mod openapi;
pub mod schema;
pub mod stack;

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, header},
    routing::{any, delete, get, post},
};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_sessions::SessionManagerLayer;

use crate::{
    domain::sessions::SeaOrmSessionStore,
    server::{error::ApiError, state::AppState},
};

/// Routes that answer without credentials: the gate ([`auth::authenticate`]) lets exactly
/// these paths through, and nothing else decides it. Anything added here must be argued for
/// in review.
///
/// - `/v1/openapi.json`: the API's description, like most APIs publish theirs, so that client
///   generators and API tools can read it without a key. It is a constant built from the code
///   (no user, key, model or configuration in it) and costs one memory copy to serve.
pub const UNAUTHENTICATED_ALLOWLIST: &[&str] = &[openapi::PATH];

pub fn router(state: &AppState, session: SessionManagerLayer<SeaOrmSessionStore>) -> Router<AppState> {
    // One layer for the gate, the body limit, Cache-Control, CORS and the session cookie
    // (see `stack`): every layer here would be cloned per request by each layer above.
    let v1 =
        stack::V1Layer::new(state, session, cors_for(&state.config.allowed_origins), DefaultBodyLimit::max(state.config.max_body_bytes));
    // Full paths and explicit catch-alls (rather than `nest`), so that every path under /v1
    // — `/v1`, `/v1/` and anything below — is answered here, behind authentication (but
    // for UNAUTHENTICATED_ALLOWLIST).
    // Anthropic's Messages API answers its errors in Anthropic's shape, the gate's included.
    let anthropic = Router::new()
        .route(messages::PATH, post(messages::create))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(v1.anthropic());
    let all_models = models::AllModels::new(&state.gateway);
    Router::new()
        .route("/v1/me", get(me::me))
        .route("/v1/models", get(move |principal| models::list(principal, all_models.clone())))
        .route("/v1/models/{id}", get(models::get))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", delete(keys::revoke).get(keys::get).patch(keys::update))
        .route("/v1/keys/{id}/roll", post(keys::roll))
        .route("/v1/audit-events", get(audit::list))
        .route("/v1/admin/users", get(admin::list_users))
        .route("/v1/admin/users/{id}/disable", post(admin::disable_user))
        .route("/v1/admin/users/{id}/enable", post(admin::enable_user))
        .route("/v1/admin/keys", get(admin::find_keys))
        .route("/v1/admin/keys/{id}", get(admin::get_key).delete(admin::revoke_key))
        .route("/v1/admin/audit-events", get(admin::list_events))
        .route(openapi::PATH, get(openapi::openapi))
        .route("/v1", any(unknown_route))
        .route("/v1/", any(unknown_route))
        .route("/v1/{*rest}", any(unknown_route))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(v1)
        .merge(anthropic)
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("Unknown API route. See /v1/openapi.json for the routes this server offers.")
}

/// CORS for the browser apps on sibling subdomains: exactly `allowed_origins`, with
/// credentials; an arbitrary `Origin` is never reflected.
pub fn cors_for(allowed_origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers(AllowHeaders::list(
            [
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                auth::X_API_KEY,
                HeaderName::from_static("openai-organization"),
                HeaderName::from_static("openai-project"),
            ]
            .into_iter()
            .chain(messages::FORWARDED),
        ))
        .expose_headers(limits::EXPOSED_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect::<Vec<_>>())
        .max_age(Duration::from_secs(600))
}
