//! `GET /auth/google`, `GET /auth/google/callback`, `POST /auth/logout`.

use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tower_sessions::Expiry;

use crate::{
    domain::{audit::AuditContext, sessions::SESSION_TTL},
    server::{
        auth::{signin_cookie::SignInTransaction, typed_session::TypedSession},
        security::ClientIp,
        state::AppState,
    },
    urls::{encode_query_value, safe_return_path},
    wire::SignInErrorCode,
};

/// Where a signed-in person lands by default.
pub const HOME: &str = "/settings/api-keys";

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/google", get(start)).route("/auth/google/callback", get(callback)).route("/auth/logout", post(logout))
}

fn to_login(code: SignInErrorCode) -> Response {
    Redirect::to(&format!("/login?error={}", encode_query_value(code.as_str()))).into_response()
}

fn ttl(d: std::time::Duration) -> Expiry {
    Expiry::OnInactivity(time::Duration::seconds(d.as_secs() as i64))
}

#[derive(Deserialize)]
struct StartQuery {
    return_to: Option<String>,
}

/// Starts the authorization-code flow: fresh `state`, `nonce` and PKCE verifier, sealed in
/// the short-lived `wj_signin` cookie, then off to the provider. Nothing is stored on the
/// server, so an anonymous visitor costs no database row (and needs no throttle).
async fn start(State(state): State<AppState>, Query(query): Query<StartQuery>) -> Response {
    let return_to = query.return_to.as_deref().and_then(safe_return_path).unwrap_or(HOME).to_owned();
    let request = match state.sign_in.authorization_request().await {
        Ok(r) => r,
        Err(error) => {
            tracing::warn!(%error, "sign-in could not start");
            return to_login(error.code());
        }
    };
    let transaction = SignInTransaction {
        state: request.state,
        nonce: request.nonce,
        pkce_verifier: request.pkce_verifier,
        return_to,
        issued_at: chrono::Utc::now().timestamp(),
    };
    let mut response = Redirect::to(request.url.as_str()).into_response();
    response.headers_mut().append(header::SET_COOKIE, state.sign_in_cookies.seal(&transaction));
    response
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

/// Finishes the flow: opens the `wj_signin` cookie, checks `state`, exchanges the code,
/// validates the ID token, and only then signs the user in with a brand-new session id (no
/// fixation). The `wj_signin` cookie is cleared whatever the outcome: a code or state is
/// good once.
async fn callback(
    State(state): State<AppState>,
    session: TypedSession,
    headers: HeaderMap,
    ip: axum::Extension<ClientIp>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let mut response = finish_sign_in(&state, &session, &headers, ip.0.0, query).await;
    response.headers_mut().append(header::SET_COOKIE, state.sign_in_cookies.removal());
    response
}

async fn finish_sign_in(
    state: &AppState,
    session: &TypedSession,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
    query: CallbackQuery,
) -> Response {
    let transaction = state.sign_in_cookies.open(headers, chrono::Utc::now().timestamp());
    if let Some(error) = query.error.as_deref() {
        tracing::info!(provider_error = %error.chars().take(64).collect::<String>(), "sign-in refused at the provider");
        return to_login(if error == "access_denied" { SignInErrorCode::AccessDenied } else { SignInErrorCode::ExchangeFailed });
    }
    let transaction = match transaction {
        Ok(t) => t,
        Err(error) => {
            // The cookie's content is never logged: only why it was not usable.
            tracing::info!(%error, "sign-in callback without a usable sign-in cookie");
            return to_login(SignInErrorCode::StateMismatch);
        }
    };
    if !query.state.as_deref().is_some_and(|s| constant_time_eq(s, &transaction.state)) {
        tracing::warn!("sign-in callback with a mismatched state");
        return to_login(SignInErrorCode::StateMismatch);
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return to_login(SignInErrorCode::ExchangeFailed);
    };
    let identity = match state.sign_in.exchange_and_verify(&code, &transaction.pkce_verifier, &transaction.nonce).await {
        Ok(identity) => identity,
        Err(error) => {
            tracing::warn!(%error, code = error.code().as_str(), "sign-in failed");
            return to_login(error.code());
        }
    };
    let user = match state.users.upsert_from_identity(&identity).await {
        Ok(user) => user,
        Err(error) => {
            tracing::error!(error = %crate::domain::describe_db_error(&error), "sign-in could not store the user");
            return to_login(SignInErrorCode::ServerError);
        }
    };
    if user.disabled {
        tracing::info!(user_id = user.id, "disabled user refused at sign-in");
        return to_login(SignInErrorCode::AccountDisabled);
    }
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").chars().take(512).collect::<String>();
    let ip_text = ip.map(|ip| ip.to_string());
    // The first moment anything is written for this browser.
    let signed_in = session.sign_in(user.id, &user_agent, ip_text.as_deref()).await;
    if let Err(error) = signed_in {
        tracing::error!(%error, "sign-in could not create the session");
        return to_login(SignInErrorCode::ServerError);
    }
    session.inner().set_expiry(Some(ttl(SESSION_TTL)));
    let ctx = AuditContext::new(Some(user.id), ip, Some(&user_agent));
    state.sessions.signed_in(&ctx).await;
    tracing::info!(user_id = user.id, "signed in");
    Redirect::to(safe_return_path(&transaction.return_to).unwrap_or(HOME)).into_response()
}

/// Signs out: the server-side session is deleted at once and the cookie removed.
async fn logout(State(state): State<AppState>, session: TypedSession, ip: axum::Extension<ClientIp>) -> Response {
    let user_id = session.user_id().await.ok().flatten();
    if let Err(error) = session.end().await {
        tracing::error!(%error, "sign-out could not delete the session");
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "Signing out failed; please try again.").into_response();
    }
    if let Some(user_id) = user_id {
        let ctx = AuditContext::new(Some(user_id), ip.0.0, None);
        state.sessions.signed_out(&ctx).await;
    }
    Redirect::to("/login").into_response()
}
