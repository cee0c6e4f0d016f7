//! Settings > Sessions: the user's signed-in browsers.

use leptos::prelude::*;

use crate::wire::{PortalError, SessionView};

/// The user's active sessions, this one marked `current`.
#[server(prefix = "/api", endpoint = "list_sessions")]
pub async fn list_sessions() -> Result<Vec<SessionView>, PortalError> {
    use super::support::{signed_in, unavailable};
    let (state, me) = signed_in()?;
    let sessions = state.sessions.list_for_user(me.user.id).await.map_err(unavailable)?;
    Ok(sessions
        .into_iter()
        .map(|s| SessionView {
            id: s.id,
            user_agent: s.user_agent.filter(|u| !u.is_empty()),
            ip: s.ip,
            created_at: s.created_at.timestamp_millis(),
            last_seen_at: s.last_seen_at.timestamp_millis(),
            current: s.token_hash == me.session_hash,
        })
        .collect())
}

/// Signs one of the user's sessions out. Another user's session id is "not found".
#[server(prefix = "/api", endpoint = "revoke_session")]
pub async fn revoke_session(id: i64) -> Result<(), PortalError> {
    use super::support::{audit_context, session_error, set_status, signed_in};
    let (state, me) = signed_in()?;
    if !state.sessions.sign_out_one(&audit_context(&me), me.user.id, id).await.map_err(session_error)? {
        set_status(axum::http::StatusCode::NOT_FOUND);
        return Err(PortalError::NotFound("That session does not exist or has already ended.".into()));
    }
    Ok(())
}

/// Signs the user out of every browser, this one included.
#[server(prefix = "/api", endpoint = "sign_out_everywhere")]
pub async fn sign_out_everywhere() -> Result<u64, PortalError> {
    use super::support::{audit_context, session_error, signed_in};
    let (state, me) = signed_in()?;
    let count = state.sessions.sign_out_everywhere(&audit_context(&me), me.user.id).await.map_err(session_error)?;
    Ok(count)
}
