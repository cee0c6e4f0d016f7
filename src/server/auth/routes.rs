//! `GET /auth/google`, `GET /auth/google/callback`, `POST /auth/logout`.

use axum::{
    Extension, Router,
    extract::{Query, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tower_sessions::{Expiry, Session};

use crate::{
    domain::{
        audit::{self, AuditContext},
        rate_limit::Quota,
        sessions::{SESSION_TTL, SIGN_IN_FLOW_TTL, keys},
    },
    server::{security::ClientIp, state::AppState},
    wire::{encode_query_value, safe_return_path},
};

/// Where a signed-in person lands by default.
pub const HOME: &str = "/settings/api-keys";

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/google", get(start)).route("/auth/google/callback", get(callback)).route("/auth/logout", post(logout))
}

fn to_login(code: &str) -> Response {
    Redirect::to(&format!("/login?error={}", encode_query_value(code))).into_response()
}

fn ttl(d: std::time::Duration) -> Expiry {
    Expiry::OnInactivity(time::Duration::seconds(d.as_secs() as i64))
}

#[derive(Deserialize)]
struct StartQuery {
    return_to: Option<String>,
}

/// Sign-in flows one client address may start per minute: enough for an office behind one
/// NAT address on a Monday morning, few enough that the pre-sign-in sessions (10 minutes
/// each) stay bounded.
pub const SIGN_IN_STARTS_PER_MINUTE: u32 = 120;

/// Starts the authorization-code flow: fresh `state`, `nonce` and PKCE verifier, kept in the
/// (pre-sign-in) session, then off to the provider.
async fn start(
    State(state): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    session: Session,
    Query(query): Query<StartQuery>,
) -> Response {
    // Each start stores a short-lived pre-sign-in session: bound how fast one address can
    // make them, so anonymous traffic cannot grow the sessions table at will.
    let throttle = format!("signin:{}", ip.map(|ip| ip.to_string()).unwrap_or_default());
    if !state.limits.check(&throttle, Quota { per_minute: SIGN_IN_STARTS_PER_MINUTE }).await.allowed {
        tracing::info!("sign-in start throttled for this address");
        return to_login("too_many_attempts");
    }
    let return_to = query.return_to.as_deref().and_then(safe_return_path).unwrap_or(HOME).to_owned();
    let request = match state.sign_in.authorization_request().await {
        Ok(r) => r,
        Err(error) => {
            tracing::warn!(%error, "sign-in could not start");
            return to_login(error.code());
        }
    };
    let signed_in = matches!(session.get::<i64>(keys::USER_ID).await, Ok(Some(_)));
    let stored = async {
        session.insert(keys::OAUTH_STATE, &request.state).await?;
        session.insert(keys::OAUTH_NONCE, &request.nonce).await?;
        session.insert(keys::OAUTH_PKCE_VERIFIER, &request.pkce_verifier).await?;
        session.insert(keys::OAUTH_RETURN_TO, &return_to).await?;
        Ok::<_, tower_sessions::session::Error>(())
    }
    .await;
    if let Err(error) = stored {
        tracing::error!(%error, "sign-in could not store its state");
        return to_login("server_error");
    }
    if !signed_in {
        session.set_expiry(Some(ttl(SIGN_IN_FLOW_TTL)));
    }
    Redirect::to(request.url.as_str()).into_response()
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Finishes the flow: checks `state`, exchanges the code, validates the ID token, signs the
/// user in with a brand-new session id (no fixation).
async fn callback(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ip: axum::Extension<ClientIp>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    // The flow's secrets are taken out whatever happens: a code or state is good once.
    let take = |key: &'static str| {
        let session = session.clone();
        async move { session.remove::<String>(key).await }
    };
    let (expected_state, nonce, verifier, return_to) = match (
        take(keys::OAUTH_STATE).await,
        take(keys::OAUTH_NONCE).await,
        take(keys::OAUTH_PKCE_VERIFIER).await,
        take(keys::OAUTH_RETURN_TO).await,
    ) {
        (Ok(s), Ok(n), Ok(v), Ok(r)) => (s, n, v, r),
        _ => return to_login("server_error"),
    };
    if let Some(error) = query.error.as_deref() {
        tracing::info!(provider_error = %error.chars().take(64).collect::<String>(), "sign-in refused at the provider");
        return to_login(if error == "access_denied" { "access_denied" } else { "exchange_failed" });
    }
    let (Some(expected_state), Some(nonce), Some(verifier)) = (expected_state, nonce, verifier) else {
        tracing::info!("sign-in callback without a flow in progress");
        return to_login("state_mismatch");
    };
    if !query.state.as_deref().is_some_and(|s| constant_time_eq(s, &expected_state)) {
        tracing::warn!("sign-in callback with a mismatched state");
        return to_login("state_mismatch");
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return to_login("exchange_failed");
    };
    let identity = match state.sign_in.exchange_and_verify(&code, &verifier, &nonce).await {
        Ok(identity) => identity,
        Err(error) => {
            tracing::warn!(%error, code = error.code(), "sign-in failed");
            return to_login(error.code());
        }
    };
    let user = match state.users.upsert_from_identity(&identity).await {
        Ok(user) => user,
        Err(error) => {
            tracing::error!(error = %crate::domain::describe_db_error(&error), "sign-in could not store the user");
            return to_login("server_error");
        }
    };
    if user.disabled {
        tracing::info!(user_id = user.id, "disabled user refused at sign-in");
        return to_login("account_disabled");
    }
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").chars().take(512).collect::<String>();
    let ip_text = ip.0.0.map(|ip| ip.to_string());
    let signed_in = async {
        session.cycle_id().await?;
        session.insert(keys::USER_ID, user.id).await?;
        session.insert(keys::SIGNED_IN_AT, chrono::Utc::now().timestamp()).await?;
        session.insert(keys::USER_AGENT, &user_agent).await?;
        session.insert(keys::IP, &ip_text).await?;
        Ok::<_, tower_sessions::session::Error>(())
    }
    .await;
    if let Err(error) = signed_in {
        tracing::error!(%error, "sign-in could not create the session");
        return to_login("server_error");
    }
    session.set_expiry(Some(ttl(SESSION_TTL)));
    let ctx = AuditContext { actor_user_id: Some(user.id), ip: ip_text };
    if let Err(error) = audit::record(&state.db, &ctx, audit::action::SIGN_IN, Some(format!("user:{}", user.id))).await {
        tracing::warn!(error = %crate::domain::describe_db_error(&error), "audit event not recorded");
    }
    tracing::info!(user_id = user.id, "signed in");
    Redirect::to(return_to.as_deref().and_then(safe_return_path).unwrap_or(HOME)).into_response()
}

/// Signs out: the server-side session is deleted at once and the cookie removed.
async fn logout(State(state): State<AppState>, session: Session, ip: axum::Extension<ClientIp>) -> Response {
    let user_id = session.get::<i64>(keys::USER_ID).await.ok().flatten();
    if let Err(error) = session.flush().await {
        tracing::error!(%error, "sign-out could not delete the session");
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "Signing out failed; please try again.").into_response();
    }
    if let Some(user_id) = user_id {
        let ctx = AuditContext { actor_user_id: Some(user_id), ip: ip.0.0.map(|ip| ip.to_string()) };
        let _ = audit::record(&state.db, &ctx, audit::action::SIGN_OUT, Some(format!("user:{user_id}"))).await;
    }
    Redirect::to("/login").into_response()
}
