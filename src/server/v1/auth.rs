//! `/v1` authentication: `Authorization: Bearer <key>` (or `x-api-key: <key>`, as Anthropic's
//! API) or the `wj_session` cookie, into a
//! [`Principal`]. The decision is the domain's (`domain::admission`); this module reads the
//! credential off the request and translates the answer. Unknown, revoked and expired keys
//! get the same answer.

use std::future::Future;

use axum::{
    extract::{FromRequestParts, Request},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Response},
};
use tower_sessions::Session;

use crate::{
    domain::{
        admission::{Admitted, INVALID_KEY, Policy, Refusal, SESSION_ENDED},
        api_keys::{KeyPrincipal, guardrails::Guardrails, last_used::UseSite},
    },
    observe::{self, AuthOutcome, Credential},
    permissions::{Permission, Permissions},
    server::{
        auth::typed_session::TypedSession,
        error::ApiError,
        security::{ClientIp, cross_origin_allowed},
        state::AppState,
        v1::limits,
    },
};

/// How a request authenticated; what only a key has lives in its variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// The key: its terms (what a key it creates may not exceed) and guardrails.
    ApiKey(KeyPrincipal),
    Session,
}

/// The authenticated caller of a `/v1` request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: i64,
    pub method: AuthMethod,
    pub permissions: Permissions,
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
            AuthMethod::ApiKey(key) => Some(key.key_id),
            AuthMethod::Session => None,
        }
    }

    /// The key's guardrails (none for a session: a person has every model, no budget).
    pub fn guardrails(&self) -> Option<&Guardrails> {
        match &self.method {
            AuthMethod::ApiKey(key) => key.guardrails.as_deref(),
            AuthMethod::Session => None,
        }
    }

    /// Whether the caller may see or call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.guardrails().is_none_or(|g| g.allows_model(model))
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

/// The header Anthropic's API (and SDKs) send the key in.
pub const X_API_KEY: header::HeaderName = header::HeaderName::from_static("x-api-key");

/// Reads the API key: `Authorization: Bearer <key>` or `x-api-key: <key>` (Anthropic's
/// header). Both at once must carry the same key.
pub fn api_key(headers: &HeaderMap) -> BearerToken<'_> {
    let bearer = bearer_token(headers);
    let mut values = headers.get_all(X_API_KEY).iter();
    let Some(value) = values.next() else { return bearer };
    if values.next().is_some() {
        return BearerToken::Invalid("Send exactly one x-api-key header.");
    }
    let token = match value.to_str().map(|text| token(text, "Missing API key. Send x-api-key: wj_live_…")) {
        Ok(BearerToken::Token(token)) => token,
        Ok(invalid) => return invalid,
        Err(_) => return BearerToken::Invalid("Invalid API key."),
    };
    match bearer {
        BearerToken::Absent => BearerToken::Token(token),
        BearerToken::Token(other) if other == token => bearer,
        _ => BearerToken::Invalid("Send the API key in one header: Authorization: Bearer wj_live_… or x-api-key: wj_live_…"),
    }
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
    token(rest, "Missing API key. Send Authorization: Bearer wj_live_…")
}

/// A key header's value: surrounding blanks tolerated, then a non-empty printable-ASCII
/// token without spaces (`missing` says what to send when it is empty).
fn token<'a>(text: &'a str, missing: &'static str) -> BearerToken<'a> {
    let token = text.trim_matches(|c| c == ' ' || c == '\t');
    if token.is_empty() {
        BearerToken::Invalid(missing)
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        BearerToken::Invalid("Invalid API key.")
    } else {
        BearerToken::Token(token)
    }
}

/// The `/v1` gate: reads the credential (a key, or the session cookie), asks the domain's
/// [`Admission`](crate::domain::admission::Admission) and translates its answer; `next`
/// answers an admitted request, whose response then gets the rate-limit headers. If a key
/// header (Authorization or x-api-key) is present it alone decides. The paths of
/// [`UNAUTHENTICATED_ALLOWLIST`](crate::server::v1::UNAUTHENTICATED_ALLOWLIST) pass without
/// credentials. Run by [`V1Layer`](crate::server::v1::stack::V1Layer).
pub async fn authenticate<F, Fut>(state: &AppState, mut request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if crate::server::v1::UNAUTHENTICATED_ALLOWLIST.contains(&request.uri().path()) {
        return next(request).await;
    }
    let ip = request.extensions().get::<ClientIp>().copied().unwrap_or(ClientIp(None));
    let (credential, outcome) = match api_key(request.headers()) {
        BearerToken::Invalid(message) => (Credential::Key, Err(Refusal::Unauthorized(message))),
        BearerToken::Token(token) => {
            let user_agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok());
            (Credential::Key, state.admission.admit_key(token, UseSite { ip: ip.0, user_agent }).await)
        }
        BearerToken::Absent => (
            Credential::Session,
            match session_user(request.extensions().get::<Session>().cloned().map(TypedSession::new)).await {
                Ok(user_id) => state.admission.admit_session(user_id).await,
                Err(refusal) => Err(refusal),
            },
        ),
    };
    let admitted = match outcome {
        Ok(admitted) => {
            observe::auth_decision(credential, AuthOutcome::Ok);
            admitted
        }
        Err(refusal) => {
            observe::auth_decision(credential, refusal.outcome(credential));
            return refused(refusal).into_response();
        }
    };
    if admitted.key.is_none() && !cross_origin_allowed(request.method(), request.headers(), &state.config.allowed_origins) {
        return ApiError::forbidden("Cross-site requests authenticated by the session cookie are not allowed.").into_response();
    }
    let (decision, policy) = (admitted.decision, admitted.policy);
    request.extensions_mut().insert(principal(admitted));
    let mut response = next(request).await;
    limits::insert_headers(response.headers_mut(), &decision, policy);
    response
}

fn principal(admitted: Admitted) -> Principal {
    let method = match admitted.key {
        Some(key) => AuthMethod::ApiKey(key),
        None => AuthMethod::Session,
    };
    Principal { user_id: admitted.user_id, method, permissions: admitted.permissions }
}

/// The one translation of a refusal into HTTP.
fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Unauthorized(message) => ApiError::unauthorized(message),
        Refusal::InvalidKey(_) => ApiError::unauthorized(INVALID_KEY),
        Refusal::SessionEnded => ApiError::unauthorized(SESSION_ENDED),
        Refusal::UnknownKey(failures) => {
            ApiError::unauthorized(INVALID_KEY).with_headers(&limits::headers(&failures, Policy::AuthFailures))
        }
        Refusal::Throttled(decision) => limits::too_many(
            &decision,
            Policy::AuthFailures,
            "Too many unknown API keys from your address. Wait for the time in the Retry-After header.",
        ),
        Refusal::RateLimited(decision, policy) => limits::too_many(
            &decision,
            policy,
            "Rate limit reached for this API key. Wait for the time in the Retry-After header, or ask for a higher limit.",
        ),
        Refusal::Unavailable => ApiError::unavailable(),
        Refusal::Database(error) => error.into(),
    }
}

/// The signed-in user of the session cookie.
async fn session_user(session: Option<TypedSession>) -> Result<i64, Refusal> {
    let Some(session) = session else {
        return Err(Refusal::Unauthorized("Missing API key. Send Authorization: Bearer wj_live_…"));
    };
    match session.user_id().await {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(Refusal::Unauthorized("Missing API key or session. Send Authorization: Bearer wj_live_…")),
        Err(error) => {
            tracing::error!(%error, "session lookup failed: answering 503");
            Err(Refusal::Unavailable)
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

    #[test]
    fn x_api_key_is_read_like_anthropic_sends_it() {
        let read = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers
                    .append(header::HeaderName::from_bytes(name.as_bytes()).expect("name"), HeaderValue::from_str(value).expect("value"));
            }
            format!("{:?}", api_key(&headers))
        };
        assert_eq!(read(&[]), "Absent");
        assert_eq!(read(&[("x-api-key", "wj_live_abc")]), "Token(\"wj_live_abc\")");
        assert_eq!(read(&[("x-api-key", " wj_live_abc ")]), "Token(\"wj_live_abc\")");
        assert_eq!(read(&[("authorization", "Bearer k"), ("x-api-key", "k")]), "Token(\"k\")", "the same key twice is fine");
        for invalid in [
            &[("x-api-key", "")][..],
            &[("x-api-key", "a b")],
            &[("x-api-key", "a"), ("x-api-key", "b")],
            &[("authorization", "Bearer k"), ("x-api-key", "other")],
            &[("authorization", "Basic x"), ("x-api-key", "k")],
        ] {
            assert!(read(invalid).starts_with("Invalid"), "{invalid:?}");
        }
    }
}
