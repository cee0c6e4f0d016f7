//! Who is signed in.

use leptos::prelude::*;

use crate::wire::{PortalError, UserView};

/// The signed-in user, or `None`.
#[server(prefix = "/api", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<UserView>, PortalError> {
    Ok(None)
}

/// Whether sign-in goes through Google or the built-in development identity provider.
#[server(prefix = "/api", endpoint = "sign_in_info")]
pub async fn sign_in_info() -> Result<crate::wire::SignInInfo, PortalError> {
    use crate::server::{config::SignIn, state::AppState};
    let state = expect_context::<AppState>();
    Ok(crate::wire::SignInInfo { local_development: matches!(state.config.sign_in, SignIn::LocalDevelopment) })
}
