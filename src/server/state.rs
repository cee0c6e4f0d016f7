//! `AppState`: the services shared by every request, behind cheap clones.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sea_orm::DatabaseConnection;

use crate::server::config::Config;

/// Everything a handler, server function or middleware may need.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub leptos_options: LeptosOptions,
}

impl AppState {
    /// Why the state shared between instances is not reachable, if it is not.
    pub async fn shared_state_problem(&self) -> Option<String> {
        None
    }

    /// `disabled` without `WJ_REDIS_URL`, `up` otherwise.
    pub fn redis_status(&self) -> &'static str {
        if self.config.redis_url.is_some() { "up" } else { "disabled" }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
