//! Types that cross the wire between the portal's server functions and the browser.
//! Nothing secret is in them, except [`CreatedApiKey::secret`], sent exactly once.

use serde::{Deserialize, Serialize};

use crate::permissions::Permissions;

/// The signed-in person, as the portal shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub name: String,
    pub email: String,
    pub picture: Option<String>,
    /// An administrator (the portal shows them the Admin page).
    pub admin: bool,
}

/// One API key in the list (never the key itself).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: i64,
    pub name: String,
    /// `wj_live_abcd…wxyz`: enough to tell keys apart, useless to an attacker.
    pub hint: String,
    pub permissions: Permissions,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// Requests with this key in the last 24 hours.
    pub requests_24h: u64,
    /// Prompt + completion tokens with this key in the last 24 hours.
    pub tokens_24h: u64,
    /// The public model names the key may use; `None`: every model.
    pub models: Option<Vec<String>>,
    /// Prompt + completion tokens a UTC day; `None`: no budget.
    pub daily_token_limit: Option<u64>,
    /// Tokens counted against the budget today (UTC), when the key has one.
    pub tokens_today: Option<u64>,
    /// Requests a minute; `None`: the server's default.
    pub rate_limit_per_minute: Option<u32>,
    /// Where the key was last used from.
    pub last_used_ip: Option<String>,
    pub last_used_user_agent: Option<String>,
    /// The key that replaced this one when it was rolled (its id and name).
    pub replaced_by: Option<i64>,
}

impl ApiKeyView {
    /// Active means neither revoked nor expired at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now_ms)
    }
}

/// What the create dialog sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateApiKeyRequest {
    pub name: String,
    pub permissions: Permissions,
    /// `None`: the key never expires.
    pub expires_in_days: Option<u32>,
    /// Requests a minute; `None`: the server's default.
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
    /// The models the key may use; `None`: every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Tokens a UTC day; `None`: no budget.
    #[serde(default)]
    pub daily_token_limit: Option<u64>,
}

/// What the Edit dialog sends: the key's settings as they should be. Only what differs from
/// the key's current settings is changed (and must be allowed: permissions only narrow, the
/// expiry only moves earlier).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditApiKeyRequest {
    pub id: i64,
    pub name: String,
    pub permissions: Permissions,
    /// `None`: keep the current expiry; `Some(days)`: expire `days` days from now.
    pub expires_in_days: Option<u32>,
    /// `None`: the server's default.
    pub rate_limit_per_minute: Option<u32>,
    /// `None`: every model.
    pub models: Option<Vec<String>>,
    /// `None`: no budget.
    pub daily_token_limit: Option<u64>,
}

/// Which keys the list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyListQuery {
    /// `active`, `expired`, `revoked`; `None`: all.
    pub status: Option<String>,
    /// Name contains (any case); empty: any.
    pub search: String,
    /// From 1.
    pub page: u32,
}

/// A page of the key list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyListPage {
    pub keys: Vec<ApiKeyView>,
    /// Keys matching the query, all pages.
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
    /// All of the user's keys by state (for the tabs).
    pub active: u64,
    pub expired: u64,
    pub revoked: u64,
}

/// The answer to a create (or a roll): the listed key and, this once, the raw key.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub key: ApiKeyView,
    pub secret: String,
    /// For a roll: the id of the key it replaces.
    #[serde(default)]
    pub replaces: Option<i64>,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey").field("key", &self.key).field("secret", &"[redacted]").finish()
    }
}

/// One signed-in browser session of the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The session making this request.
    pub current: bool,
}

/// One event of the security log (never a secret: `detail` names what changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEventView {
    pub id: i64,
    /// `session.sign_in`, `api_key.create`, … (see `domain::audit::action`).
    pub action: String,
    /// `api_key:42`, `session:7`, …
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What changed (`{"name": …, "changed": […]}`), when the event says.
    pub detail: Option<serde_json::Value>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A page of the security log, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityLogView {
    pub events: Vec<AuditEventView>,
    /// The `before` of the next older page, when there is one.
    pub older: Option<i64>,
    /// The newer page; `None` on the first page.
    pub newer: Option<PageCursor>,
    /// The server's clock (Unix milliseconds), for "5 minutes ago".
    pub now_ms: i64,
}

/// Where a page of the security log starts (an enum rather than `Option<Option<i64>>`, which
/// JSON cannot tell from `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageCursor {
    /// The newest page.
    First,
    /// The page of the events older than this id.
    Before(i64),
}

/// Requests and tokens of one hour or one day (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBucketView {
    /// The bucket's start, Unix milliseconds.
    pub start: i64,
    pub requests: u64,
    pub tokens: u64,
}

/// Everything the key detail page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDetailView {
    pub key: ApiKeyView,
    /// The name of the key that replaced this one, when it was rolled.
    pub replaced_by_name: Option<String>,
    /// The last 24 hours, hour by hour, oldest first.
    pub hourly: Vec<UsageBucketView>,
    /// The last 30 days, day by day, oldest first.
    pub daily: Vec<UsageBucketView>,
    /// The key's latest audit events, newest first.
    pub events: Vec<AuditEventView>,
    /// The server's clock (Unix milliseconds).
    pub now_ms: i64,
}

/// A person, as the Admin page shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPersonView {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub disabled: bool,
    /// An administrator.
    pub admin: bool,
    /// This is the administrator looking.
    pub me: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_sign_in_at: i64,
}

/// A page of people, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPeopleView {
    pub people: Vec<AdminPersonView>,
    /// The cursor of the next (older) page, if any.
    pub older: Option<i64>,
}

/// Anyone's key with its owner, as the Admin page shows it (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminKeyView {
    pub id: i64,
    pub name: String,
    pub hint: String,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub owner: Option<AdminPersonView>,
}

/// One event of everyone's security log, with whose it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminEventView {
    pub event: AuditEventView,
    pub actor_email: Option<String>,
    pub subject_email: Option<String>,
}

/// A page of everyone's security log, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminLogView {
    pub events: Vec<AdminEventView>,
    /// The cursor of the next (older) page, if any.
    pub older: Option<i64>,
    pub now_ms: i64,
}

/// Errors the portal's server functions answer with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PortalError {
    /// Not signed in (or the session ended): go to the sign-in page.
    #[error("You are signed out. Sign in again to continue.")]
    Unauthorized,
    /// The request came from a page of another site.
    #[error("This request was refused because it did not come from the Workjet portal.")]
    Forbidden,
    /// No such object for this user.
    #[error("{0}")]
    NotFound(String),
    /// Administrators only.
    #[error("Only an administrator may do this.")]
    NotAdmin,
    /// The request contradicts the object's state (e.g. disabling oneself).
    #[error("{0}")]
    Conflict(String),
    /// A field is invalid; shown beside the field.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// A limit was reached.
    #[error("{0}")]
    Limit(String),
    /// A dependency is down; try again.
    #[error("Workjet is temporarily unavailable. Please try again in a moment.")]
    Unavailable,
    /// A fault on the server's side that retrying will not fix (logged there).
    #[error("Something went wrong on the server. If it keeps happening, tell whoever runs this Workjet.")]
    Internal,
    /// Transport or encoding failure.
    #[error("Something went wrong: {0}")]
    ServerFn(String),
}

impl leptos::server_fn::error::FromServerFnError for PortalError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        // Arguments that cannot be read are the caller's mistake: 400, not the framework's 500.
        #[cfg(feature = "ssr")]
        {
            use leptos::server_fn::error::ServerFnErrorErr as E;
            if matches!(value, E::Args(_) | E::Deserialization(_) | E::MissingArg(_))
                && let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>()
            {
                response.set_status(axum::http::StatusCode::BAD_REQUEST);
            }
        }
        PortalError::ServerFn(value.to_string())
    }
}

/// How the sign-in page should present itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInSettings {
    /// True when no Google credentials are configured and the built-in development identity
    /// provider signs people in.
    pub local_development: bool,
}

/// What the "Use a key" box shows: where the API is and which models it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickStartView {
    /// Where the API is served (`WJ_PUBLIC_URL`, no trailing slash).
    pub api_base_url: String,
    /// The public model names in the configuration's order; empty when no provider is
    /// configured.
    pub models: Vec<String>,
    /// How an operator adds a provider (shown when `models` is empty).
    pub how_to_add_a_provider: String,
}

/// Why a sign-in failed: what `/login?error=` carries, set by the sign-in routes and read by
/// the login page. Anything else in the query is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInErrorCode {
    AccessDenied,
    StateMismatch,
    ExchangeFailed,
    InvalidToken,
    EmailUnverified,
    DomainNotAllowed,
    AccountDisabled,
    ProviderUnavailable,
    ServerError,
}

impl SignInErrorCode {
    pub const ALL: [Self; 9] = [
        Self::AccessDenied,
        Self::StateMismatch,
        Self::ExchangeFailed,
        Self::InvalidToken,
        Self::EmailUnverified,
        Self::DomainNotAllowed,
        Self::AccountDisabled,
        Self::ProviderUnavailable,
        Self::ServerError,
    ];

    /// The code in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::StateMismatch => "state_mismatch",
            Self::ExchangeFailed => "exchange_failed",
            Self::InvalidToken => "invalid_token",
            Self::EmailUnverified => "email_unverified",
            Self::DomainNotAllowed => "domain_not_allowed",
            Self::AccountDisabled => "account_disabled",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ServerError => "server_error",
        }
    }

    /// The code of a query string, if it is one.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// What the login page says.
    pub fn message(self) -> &'static str {
        match self {
            Self::AccessDenied => "Sign-in was cancelled. Choose an account and allow access to continue.",
            Self::StateMismatch => "Your sign-in attempt expired or was started in another tab. Please try again.",
            Self::ExchangeFailed => "Google did not accept the sign-in code (it may have been used already or expired). Please try again.",
            Self::InvalidToken => "Google's answer could not be verified, so you were not signed in. Please try again.",
            Self::EmailUnverified => "Your Google account's email address is not verified. Verify it with Google, then try again.",
            Self::DomainNotAllowed => "This Workjet only accepts accounts from its organisation's Google Workspace domains.",
            Self::AccountDisabled => "Your Workjet account has been disabled. Contact your administrator.",
            Self::ProviderUnavailable => "Google could not be reached. Please try again in a moment.",
            Self::ServerError => "Something went wrong on our side while signing you in. Please try again.",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_debug_redacts_the_secret() {
        let view = ApiKeyView { id: 1, name: "x".into(), hint: "h".into(), ..Default::default() };
        let created = CreatedApiKey { key: view, secret: "wj_live_secret".into(), replaces: None };
        assert!(!format!("{created:?}").contains("wj_live_secret"));
    }
}

#[cfg(test)]
mod sign_in_error_tests {
    use super::*;

    #[test]
    fn only_known_error_codes_have_messages() {
        for code in SignInErrorCode::ALL {
            assert_eq!(SignInErrorCode::parse(code.as_str()), Some(code));
            assert!(!code.message().is_empty());
        }
        assert_eq!(SignInErrorCode::parse("access_denied"), Some(SignInErrorCode::AccessDenied));
        assert!(SignInErrorCode::parse("<script>alert(1)</script>").is_none());
    }
}
