//! The portal's middleware: who is signed in (from the `wj_session` cookie), which pages
//! need a signed-in user.

use crate::{
    domain::users::User,
    server::{
        auth::{routes::HOME, typed_session::TypedSession},
        state::AppState,
    },
    urls::encode_query_value,
};
use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Redirect, Response},
};

/// The signed-in user of a portal request (a request extension).
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub user: User,
    /// The SHA-256 of this browser's session token (how the sessions list marks "this one").
    pub session_hash: [u8; 32],
}

fn unavailable_page() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        Html("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Workjet is temporarily unavailable</title></head><body><h1>Workjet is temporarily unavailable</h1><p>Please try again in a moment.</p></body></html>"),
    )
        .into_response()
}

/// Finds the signed-in user, then applies the page guards: `/` and `/login` send signed-in
/// people to their keys; `/settings/*` and `/admin` send everyone else to `/login?return_to=…`.
pub async fn resolve_user(State(state): State<AppState>, session: TypedSession, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let current = match session.user_id().await {
        Ok(Some(user_id)) => match state.users.get(user_id).await {
            Ok(Some(user)) if !user.disabled => {
                let hash = session.token_hash().unwrap_or([0; 32]);
                Some(CurrentUser { user, session_hash: hash })
            }
            Ok(_) => {
                // Deleted or disabled: the session dies with the account.
                let _ = session.end().await;
                None
            }
            Err(error) => {
                tracing::error!(error = %crate::domain::describe_db_error(&error), "user lookup failed");
                return unavailable_page();
            }
        },
        Ok(None) => None,
        Err(error) => {
            tracing::error!(%error, "session lookup failed");
            return unavailable_page();
        }
    };
    let is_get = request.method() == axum::http::Method::GET;
    match (&current, path.as_str()) {
        (Some(_), "/" | "/login") if is_get => return Redirect::to(HOME).into_response(),
        (None, "/") if is_get => return Redirect::to("/login").into_response(),
        (None, p) if is_get && (p == "/settings" || p.starts_with("/settings/") || p == "/admin") => {
            let target = match request.uri().query() {
                Some(q) => format!("{p}?{q}"),
                None => p.to_owned(),
            };
            return Redirect::to(&format!("/login?return_to={}", encode_query_value(&target))).into_response();
        }
        (Some(_), "/settings" | "/settings/") if is_get => return Redirect::to(HOME).into_response(),
        _ => {}
    }
    if let Some(current) = current {
        request.extensions_mut().insert(current);
    }
    next.run(request).await
}
