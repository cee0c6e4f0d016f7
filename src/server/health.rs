//! `GET /healthz` (the process is up) and `GET /readyz` (its dependencies answer).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use crate::server::{database, state::AppState};

/// 200 while the process serves requests.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// 200 when the database answers, 503 otherwise. A shared rate limiter that cannot be
/// reached makes the instance `degraded` (still 200: it keeps serving). Anyone may call
/// this, so the answer says only which dependency is up or down; the error itself (which
/// can name hosts and addresses) goes to the log.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let redis = state.redis_status();
    if let Err(reason) = database::ping(&state.db, Duration::from_secs(2)).await {
        tracing::warn!(%reason, "readiness: database unavailable");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "down", "redis": redis})));
    }
    match state.shared_state_problem().await {
        None => (StatusCode::OK, Json(json!({"status": "ready", "database": "up", "redis": redis}))),
        Some(reason) => {
            tracing::warn!(%reason, "readiness: Redis unavailable (degraded: serving from the database and in-process limits)");
            (StatusCode::OK, Json(json!({"status": "degraded", "database": "up", "redis": "down"})))
        }
    }
}
