//! The OpenAI-compatible `/v1` API. Every route is behind [`auth::authenticate`] (fail
//! closed: there is no unauthenticated route), answers errors in OpenAI's shape, and
//! never lets a response be cached.

pub mod auth;
pub mod json;
pub mod keys;
pub mod me;
pub mod openapi;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, header},
    middleware,
    routing::{delete, get},
};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::server::{error::ApiError, state::AppState};

/// Routes that answer without credentials. Empty: every `/v1` route needs a key or a
/// session. Anything added here must be argued for in review.
pub const UNAUTHENTICATED_ALLOWLIST: &[&str] = &[];

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/me", get(me::me))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}", delete(keys::revoke).get(keys::get))
        .route("/openapi.json", get(openapi::openapi))
        .fallback(|| async { ApiError::not_found("Unknown API route. See /v1/openapi.json for the routes this server offers.") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}
