//! `/v1` authentication: `Authorization: Bearer <key>` or the `wj_session` cookie, into a
//! [`Principal`]. If an Authorization header is present it alone decides. Malformed
//! credentials are refused before any database work; unknown, revoked and expired keys
//! get the same answer.

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{HeaderMap, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_sessions::Session;

use crate::{
    domain::{api_keys::AuthFailure, sessions::keys},
    permissions::{Permission, Permissions},
    server::{
        error::ApiError,
        security::{ClientIp, cross_origin_allowed},
        state::AppState,
        v1::limits,
    },
};

/// How a request authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    ApiKey { key_id: i64, name: String, hint: String },
    Session,
}

/// The authenticated caller of a `/v1` request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: i64,
    pub method: AuthMethod,
    pub permissions: Permissions,
    /// The key's own rate limit, if it has one.
    pub rate_limit_per_minute: Option<u32>,
}

impl Principal {
    /// `Ok` when the caller holds `permission`, 403 `forbidden` otherwise.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.permissions.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("This API key does not have the `{}` permission this endpoint needs.", permission.as_str())))
        }
    }

    pub fn key_id(&self) -> Option<i64> {
        match &self.method {
            AuthMethod::ApiKey { key_id, .. } => Some(*key_id),
            AuthMethod::Session => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Present on every /v1 route (the middleware runs first); fail closed if not.
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| ApiError::unauthorized("Authentication required."))
    }
}

/// What the Authorization header says.
#[derive(Debug, PartialEq, Eq)]
pub enum BearerToken<'a> {
    /// No Authorization header at all.
    Absent,
    /// A bearer token (not yet checked).
    Token(&'a str),
    /// Present but unusable; the message says why.
    Invalid(&'static str),
}

/// Parses the Authorization header(s): exactly one, scheme `Bearer` (any case), a
/// printable-ASCII token without spaces; surrounding whitespace is tolerated.
pub fn bearer_token(headers: &HeaderMap) -> BearerToken<'_> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return BearerToken::Absent };
    if values.next().is_some() {
        return BearerToken::Invalid("Send exactly one Authorization header.");
    }
    let Ok(text) = value.to_str() else {
        return BearerToken::Invalid("The Authorization header must be ASCII: Authorization: Bearer wj_live_…");
    };
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    let Some((scheme, rest)) = text.split_once([' ', '\t']) else {
        return BearerToken::Invalid("Missing API key. Send Authorization: Bearer wj_live_…");
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return BearerToken::Invalid("Use the Bearer scheme: Authorization: Bearer wj_live_…");
    }
    let token = rest.trim_matches(|c| c == ' ' || c == '\t');
    if token.is_empty() {
        return BearerToken::Invalid("Missing API key. Send Authorization: Bearer wj_live_…");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return BearerToken::Invalid("Invalid API key.");
    }
    BearerToken::Token(token)
}

/// The single message for keys that are well-formed but do not work (unknown, revoked,
/// expired, disabled owner): the answer never tells which.
pub const INVALID_KEY: &str = "Invalid API key. Check the key, or create a new one under Settings > API Keys.";

/// The `/v1` authentication middleware. A client that keeps failing is throttled per IP:
/// once its budget of failures is spent it gets 429 before any parsing, hashing or database
/// work, so guessing keys or flooding junk costs us nothing.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = request.extensions().get::<ClientIp>().copied().unwrap_or(ClientIp(None));
    let bucket = limits::auth_failure_bucket(&ip);
    let quota = state.limits.failure_quota;
    if let Some(wait) = state.limits.blocked(&bucket, quota).await {
        let decision = crate::domain::rate_limit::Decision {
            allowed: false,
            limit: quota.per_minute,
            remaining: 0,
            reset_after: wait,
            retry_after: Some(wait),
        };
        return limits::too_many(
            &decision,
            "auth-failures",
            "Too many failed authentication attempts from your address. Wait for the time in the Retry-After header.",
        )
        .into_response();
    }
    match authenticate_inner(&state, request, next).await {
        Ok(response) => response,
        Err(error) if error.status() == axum::http::StatusCode::UNAUTHORIZED => {
            let decision = state.limits.check(&bucket, quota).await;
            error.with_headers(&limits::headers(&decision, "auth-failures")).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn authenticate_inner(state: &AppState, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let principal = match bearer_token(request.headers()) {
        BearerToken::Invalid(message) => return Err(ApiError::unauthorized(message)),
        BearerToken::Token(token) => match state.keys.authenticate(token).await {
            Ok(key) => Principal {
                user_id: key.user_id,
                method: AuthMethod::ApiKey { key_id: key.key_id, name: key.name, hint: key.hint },
                permissions: key.permissions,
                rate_limit_per_minute: key.rate_limit_per_minute,
            },
            Err(AuthFailure::Unavailable(error)) => {
                tracing::error!(error = %crate::domain::describe_db_error(&error), "key lookup failed: answering 503");
                return Err(ApiError::unavailable());
            }
            Err(failure) => {
                tracing::info!(reason = %failure, "API key refused");
                return Err(ApiError::unauthorized(INVALID_KEY));
            }
        },
        BearerToken::Absent => session_principal(state, request.extensions().get::<Session>().cloned()).await?,
    };
    if principal.method == AuthMethod::Session && !cross_origin_allowed(request.method(), request.headers(), &state.config.allowed_origins)
    {
        return Err(ApiError::forbidden("Cross-site requests authenticated by the session cookie are not allowed."));
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

async fn session_principal(state: &AppState, session: Option<Session>) -> Result<Principal, ApiError> {
    let Some(session) = session else {
        return Err(ApiError::unauthorized("Missing API key. Send Authorization: Bearer wj_live_…"));
    };
    let user_id = match session.get::<i64>(keys::USER_ID).await {
        Ok(Some(id)) => id,
        Ok(None) => return Err(ApiError::unauthorized("Missing API key or session. Send Authorization: Bearer wj_live_…")),
        Err(error) => {
            tracing::error!(%error, "session lookup failed: answering 503");
            return Err(ApiError::unavailable());
        }
    };
    match state.users.get(user_id).await {
        Ok(Some(user)) if !user.disabled => {
            Ok(Principal { user_id, method: AuthMethod::Session, permissions: Permissions::All, rate_limit_per_minute: None })
        }
        Ok(_) => Err(ApiError::unauthorized("Your session has ended. Sign in again.")),
        Err(error) => {
            tracing::error!(error = %crate::domain::describe_db_error(&error), "user lookup failed: answering 503");
            Err(ApiError::unavailable())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn parse(values: &[&[u8]]) -> String {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).expect("header"));
        }
        format!("{:?}", bearer_token(&headers))
    }

    #[test]
    fn authorization_header_parsing() {
        assert_eq!(parse(&[]), "Absent");
        assert_eq!(parse(&[b"Bearer abc"]), "Token(\"abc\")");
        assert_eq!(parse(&[b"bearer abc"]), "Token(\"abc\")");
        assert_eq!(parse(&[b"BEARER   abc  "]), "Token(\"abc\")");
        assert_eq!(parse(&[b"  Bearer\tabc"]), "Token(\"abc\")");
        for invalid in [&b"Bearer"[..], b"Bearer ", b"   ", b"", b"Basic YWxhZGRpbjpvcGVu", b"Token abc", b"Bearer abc def", b"Bearerabc"] {
            assert!(parse(&[invalid]).starts_with("Invalid"), "{:?}", String::from_utf8_lossy(invalid));
        }
        assert!(parse(&[b"Bearer caf\xc3\xa9"]).starts_with("Invalid"));
        assert!(parse(&[b"Bearer a", b"Bearer b"]).starts_with("Invalid"), "two headers are refused");
    }
}
