//! The portal's server functions: thin doors onto the domain services. Each gets the
//! `AppState` and the signed-in user, calls one domain method, and maps the result to a
//! wire type.

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod security_log;
pub mod sessions;

pub use account::*;
pub use admin::*;
pub use api_keys::*;
pub use security_log::*;
pub use sessions::*;

#[cfg(feature = "ssr")]
pub(crate) mod support {
    use leptos::prelude::*;

    use crate::{
        domain::audit::AuditContext,
        server::{auth::portal::CurrentUser, security::ClientIp, state::AppState},
        wire::PortalError,
    };

    /// Sets the HTTP status of the server function's response.
    pub fn set_status(status: axum::http::StatusCode) {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(status);
        }
    }

    /// The app state and the signed-in user, or 401 `Unauthorized`.
    pub fn signed_in() -> Result<(AppState, CurrentUser), PortalError> {
        let state = expect_context::<AppState>();
        let user = use_context::<axum::http::request::Parts>().and_then(|parts| parts.extensions.get::<CurrentUser>().cloned());
        match user {
            Some(user) => Ok((state, user)),
            None => {
                set_status(axum::http::StatusCode::UNAUTHORIZED);
                Err(PortalError::Unauthorized)
            }
        }
    }

    /// Who acts, from where: for audit events.
    pub fn audit_context(user: &CurrentUser) -> AuditContext {
        let parts = use_context::<axum::http::request::Parts>();
        let ip = parts.as_ref().and_then(|parts| parts.extensions.get::<ClientIp>().and_then(|ip| ip.0));
        let user_agent = parts.as_ref().and_then(|parts| parts.headers.get(axum::http::header::USER_AGENT)).and_then(|v| v.to_str().ok());
        AuditContext::new(Some(user.user.id), ip, user_agent)
    }

    /// Maps a database failure, as the API does: 503 `Unavailable` when the database is
    /// unavailable, 500 `Internal` otherwise; the cause is logged.
    pub fn unavailable(error: sea_orm::DbErr) -> PortalError {
        let unavailable = crate::domain::is_unavailable(&error);
        tracing::error!(error = %crate::domain::describe_db_error(&error), unavailable, "portal request failed on the database");
        if unavailable {
            set_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
            PortalError::Unavailable
        } else {
            set_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            PortalError::Internal
        }
    }

    /// A sign-out that failed: nothing was deleted (503).
    pub fn session_error(error: crate::domain::sessions::SessionError) -> PortalError {
        match error {
            crate::domain::sessions::SessionError::Database(e) => unavailable(e),
            crate::domain::sessions::SessionError::NotShared(_) => {
                set_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                PortalError::Unavailable
            }
        }
    }
}
