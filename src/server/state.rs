//! `AppState`: the services shared by every request, behind cheap clones.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sea_orm::DatabaseConnection;

use crate::{
    domain::{api_keys::ApiKeyService, sessions::SeaOrmSessionStore, users::UserService},
    server::{
        auth::{oidc::OidcClient, signin_cookie::SignInCookies},
        config::Config,
    },
};

/// Everything a handler, server function or middleware may need. Every middleware and
/// extractor clones it, so a clone is one reference count (profiling showed field-by-field
/// clones of the services costing more than the authentication itself).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    pub config: Arc<Config>,
    /// The pool itself, for the health check (and tests). Reads and writes go through the
    /// services, which own them and their audit records.
    pub db: DatabaseConnection,
    pub leptos_options: LeptosOptions,
    /// The site's static files (embedded, or a directory).
    pub assets: crate::server::assets::Assets,
    pub users: UserService,
    pub keys: ApiKeyService,
    /// Who may call `/v1`, and how much.
    pub admission: crate::domain::admission::Admission,
    pub limits: crate::domain::limits::Limits,
    /// Revocation generations (shared with the caches of keys and sessions).
    pub generations: Arc<crate::domain::auth_cache::Generations>,
    /// Upstream providers by public model name.
    pub gateway: Arc<crate::domain::providers::Registry>,
    pub usage: crate::domain::usage::UsageRecorder,
    /// Daily token budgets of the keys that have one.
    pub budgets: crate::domain::token_budget::TokenBudgets,
    /// Reads the audit trail (the security log).
    pub audit: crate::domain::audit::AuditLog,
    /// Redis, when several instances share state.
    pub shared: Option<Arc<crate::domain::shared_state::SharedState>>,
    pub sessions: SeaOrmSessionStore,
    /// Administrators and what only they may do.
    pub admin: crate::domain::admin::AdminService,
    /// The OpenID Connect relying party (Google, or the development provider).
    pub sign_in: Arc<OidcClient>,
    /// Seals and opens the `wj_signin` cookie of a sign-in in progress.
    pub sign_in_cookies: SignInCookies,
}

impl AppState {
    /// Why the state shared between instances is not reachable, if it is not.
    pub async fn shared_state_problem(&self) -> Option<String> {
        self.shared.as_ref().and_then(|s| s.problem())
    }

    /// `disabled` without `WJ_REDIS_URL`, `up` or `down` otherwise.
    pub fn redis_status(&self) -> &'static str {
        match &self.shared {
            None => "disabled",
            Some(s) if s.problem().is_some() => "down",
            Some(_) => "up",
        }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
