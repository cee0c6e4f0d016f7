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
    domain::{
        api_keys::{AuthFailure, KeyPrincipal, PlainApiKey},
        auth_cache::bucket_of,
        rate_limit::{Decision, Quota},
        sessions::keys,
    },
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
    ApiKey { key_id: i64 },
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
    /// The key's expiry, if it has one (what a key it creates may not outlive).
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
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

/// The `/v1` gate: who is calling (a key or the session cookie), whether their address
/// is throttled for failed authentications, and whether their budget allows the request.
///
/// A key found in the in-process cache costs no database work: with Redis, one script call
/// both spends the budget and returns the key's revocation generation, and the cached entry
/// is used only if its generation is still current. Otherwise (cache miss, stale entry,
/// Redis down) the database decides, and throttled addresses get 429 before any lookup.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let ip = request.extensions().get::<ClientIp>().copied().unwrap_or(ClientIp(None));
    let throttle = limits::auth_failure_bucket(&ip);
    let outcome = match bearer_token(request.headers()) {
        BearerToken::Invalid(message) => Err(ApiError::unauthorized(message)),
        BearerToken::Token(token) => key_gate(&state, token, &throttle).await,
        BearerToken::Absent => session_gate(&state, request.extensions().get::<Session>().cloned(), &throttle).await,
    };
    let (principal, decision, policy) = match outcome {
        Ok(admitted) => admitted,
        Err(error) if error.status() == axum::http::StatusCode::UNAUTHORIZED => {
            let decision = state.limits.spend_failure(&throttle).await;
            return error.with_headers(&limits::headers(&decision, "auth-failures")).into_response();
        }
        Err(error) => return error.into_response(),
    };
    if principal.method == AuthMethod::Session && !cross_origin_allowed(request.method(), request.headers(), &state.config.allowed_origins)
    {
        return ApiError::forbidden("Cross-site requests authenticated by the session cookie are not allowed.").into_response();
    }
    if !decision.allowed {
        return limits::too_many(
            &decision,
            policy,
            "Rate limit reached for this API key. Wait for the time in the Retry-After header, or ask for a higher limit.",
        )
        .into_response();
    }
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    response.headers_mut().extend(limits::headers(&decision, policy));
    response
}

type Admitted = (Principal, Decision, &'static str);

fn key_principal(key: KeyPrincipal) -> Principal {
    Principal {
        user_id: key.user_id,
        method: AuthMethod::ApiKey { key_id: key.key_id },
        permissions: key.permissions,
        rate_limit_per_minute: key.rate_limit_per_minute,
        expires_at: key.expires_at,
    }
}

fn budget(state: &AppState, key: &KeyPrincipal) -> (String, Quota) {
    (format!("key:{}", key.key_id), Quota { per_minute: key.rate_limit_per_minute.unwrap_or(state.config.rate_limit_per_minute) })
}

fn throttled(wait: std::time::Duration, quota: Quota) -> ApiError {
    let decision = Decision { allowed: false, limit: quota.per_minute, remaining: 0, reset_after: wait, retry_after: Some(wait) };
    limits::too_many(
        &decision,
        "auth-failures",
        "Too many failed authentication attempts from your address. Wait for the time in the Retry-After header.",
    )
}

async fn key_gate(state: &AppState, token: &str, throttle: &str) -> Result<Admitted, ApiError> {
    let key = match PlainApiKey::parse(token) {
        Ok(key) => key,
        Err(reason) => {
            // Refused without touching the database (or Redis, beyond the failure count).
            if let Some(wait) = state.limits.failure_blocked(throttle).await {
                return Err(throttled(wait, state.limits.failure_quota));
            }
            tracing::info!(%reason, "malformed API key refused");
            return Err(ApiError::unauthorized(INVALID_KEY));
        }
    };
    let hash = key.hash();
    let bucket = bucket_of(hash.as_bytes());
    let failure_quota = state.limits.failure_quota;
    // Fast path: a cached key. One check yields the throttle, the budget and the generation.
    let spent: Option<Decision>;
    let generation: Option<u64>;
    if let Some(hint) = state.keys.cached_hint(&hash) {
        let (rate_key, quota) = budget(state, &hint);
        let gate = state.limits.gate(Some((&rate_key, quota)), bucket, throttle, state.keys.generations()).await;
        if let Some(wait) = gate.throttled {
            return Err(throttled(wait, failure_quota));
        }
        spent = gate.decision;
        generation = gate.generation;
        if let Some(key) = generation.and_then(|g| state.keys.cached(&hash, g)) {
            let decision = spent.unwrap_or_else(|| state.limits.local_check(&rate_key, quota));
            return Ok((key_principal(key), decision, "per-key"));
        }
    } else {
        let gate = state.limits.gate(None, bucket, throttle, state.keys.generations()).await;
        if let Some(wait) = gate.throttled {
            return Err(throttled(wait, failure_quota));
        }
        spent = None;
        generation = gate.generation;
    }
    // Slow path: the database decides; the cache is filled under the generation read above.
    let key = match state.keys.lookup_and_cache(&hash, generation).await {
        Ok(key) => key,
        Err(AuthFailure::Unavailable(error)) => {
            tracing::error!(error = %crate::domain::describe_db_error(&error), "key lookup failed: answering 503");
            return Err(ApiError::unavailable());
        }
        Err(failure) => {
            tracing::info!(reason = %failure, "API key refused");
            return Err(ApiError::unauthorized(INVALID_KEY));
        }
    };
    let (rate_key, quota) = budget(state, &key);
    let decision = match spent {
        Some(d) => d,
        None => state.limits.check(&rate_key, quota).await,
    };
    Ok((key_principal(key), decision, "per-key"))
}

async fn session_gate(state: &AppState, session: Option<Session>, throttle: &str) -> Result<Admitted, ApiError> {
    if let Some(wait) = state.limits.failure_blocked(throttle).await {
        return Err(throttled(wait, state.limits.failure_quota));
    }
    let principal = session_principal(state, session).await?;
    let quota = Quota { per_minute: state.config.rate_limit_per_minute };
    let decision = state.limits.check(&format!("user:{}", principal.user_id), quota).await;
    Ok((principal, decision, "per-user"))
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
    match state.users.is_enabled(user_id).await {
        Ok(true) => Ok(Principal {
            user_id,
            method: AuthMethod::Session,
            permissions: Permissions::All,
            rate_limit_per_minute: None,
            expires_at: None,
        }),
        Ok(false) => Err(ApiError::unauthorized("Your session has ended. Sign in again.")),
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
