//! Who is signed in, and how sign-in works here.

use leptos::prelude::*;

use crate::wire::{PortalError, QuickStartView, SignInSettings, UserView};

/// The signed-in user, or `None`.
#[server(prefix = "/api", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<UserView>, PortalError> {
    use crate::server::{auth::portal::CurrentUser, state::AppState};
    let user = use_context::<axum::http::request::Parts>().and_then(|parts| parts.extensions.get::<CurrentUser>().cloned());
    let admin = user.as_ref().is_some_and(|u| expect_context::<AppState>().admin.is_admin(&u.user));
    Ok(user.map(|u| UserView { name: u.user.name, email: u.user.email, picture: u.user.picture, admin }))
}

/// Whether sign-in goes through Google or the built-in development identity provider.
#[server(prefix = "/api", endpoint = "sign_in_info")]
pub async fn sign_in_info() -> Result<SignInSettings, PortalError> {
    use crate::server::{config::SignIn, state::AppState};
    let state = expect_context::<AppState>();
    Ok(SignInSettings { local_development: matches!(state.config.sign_in, SignIn::LocalDevelopment) })
}

/// The API's address and the models it serves, for a signed-in person's "Use a key" box.
#[server(prefix = "/api", endpoint = "quick_start")]
pub async fn quick_start() -> Result<QuickStartView, PortalError> {
    use crate::domain::providers::HOW_TO_ADD_A_PROVIDER;
    let (state, _) = super::support::signed_in()?;
    Ok(QuickStartView {
        api_base_url: state.config.public_url.as_str().trim_end_matches('/').to_owned(),
        models: state.gateway.models_in_configured_order().map(str::to_owned).collect(),
        how_to_add_a_provider: HOW_TO_ADD_A_PROVIDER.to_owned(),
    })
}
