//! The `/v1` error type: every failure answers in the shape the official OpenAI SDKs parse,
//! `{"error": {"message", "type", "code", "param"}}`, with the seed's codes. Causes of 5xx
//! answers are logged with the request id, never returned.

use std::borrow::Cow;

use axum::{
    Json,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::domain::providers::{
    HOW_TO_ADD_A_PROVIDER,
    gateway::{GatewayError, UpstreamError},
};

/// An error answered by the `/v1` API. Boxed: errors are rare, and a small `Result` keeps
/// the success path cheap.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    param: Option<&'static str>,
    /// The OpenAI error `type`, when it is not the one the status implies.
    kind: Option<&'static str>,
    headers: HeaderMap,
}

/// The body of every `/v1` error, in the shape the official OpenAI SDKs parse. The same type
/// is serialised by [`ApiError::into_response`] and described in `/v1/openapi.json`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"message": "Invalid API key.", "type": "authentication_error", "code": "unauthorized", "param": null}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A human-readable explanation (never contains secrets).
    #[schema(value_type = String, example = "Invalid API key.")]
    pub message: Cow<'static, str>,
    /// The OpenAI error type, which follows the status: `authentication_error` (401),
    /// `permission_error` (403), `rate_limit_error` (429), `api_error` (5xx),
    /// `invalid_request_error` (any other 4xx).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "authentication_error")]
    pub kind: &'static str,
    /// A stable, machine-readable code: `unauthorized`, `forbidden`, `not_found`,
    /// `model_not_found`, `invalid_request`, `invalid_name`, `invalid_expiry`,
    /// `invalid_rate_limit`, `too_many_keys`, `method_not_allowed`, `payload_too_large`,
    /// `unsupported_media_type`, `request_timeout`, `headers_too_large`, `rate_limited`,
    /// `upstream_rate_limited`, `upstream_error`, `upstream_timeout`, `service_unavailable`,
    /// `internal_error`.
    #[schema(value_type = String, example = "unauthorized")]
    pub code: &'static str,
    /// The request parameter at fault, if any (always present, often `null`).
    #[schema(value_type = Option<String>, required = true, example = json!(null))]
    pub param: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self(Box::new(Inner { status, code, message: message.into(), param: None, kind: None, headers: HeaderMap::new() }))
    }

    /// 401 `unauthorized`: missing, malformed, unknown, revoked or expired key or session.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        e.0.headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"workjet\""));
        e
    }

    /// 403 `forbidden`: valid credentials without the permission the endpoint needs.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`: no such object for this caller (another user's object included).
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 404 `model_not_found`: no provider serves the requested model.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("The model `{}` does not exist or you do not have access to it.", shown_model(model)),
        )
        .with_param("model")
    }

    /// 404 `model_not_found` on a server with no provider at all: says so, and how to add one.
    pub fn no_provider_configured(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "The model `{}` does not exist: no model provider is configured on this server. To add one, {HOW_TO_ADD_A_PROVIDER}.",
                shown_model(model)
            ),
        )
        .with_param("model")
    }

    /// 400 `invalid_request`: the request is malformed.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 400 with a specific code and the offending parameter.
    pub fn invalid_param(code: &'static str, param: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message).with_param(param)
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "This method is not allowed on this endpoint.")
    }

    /// 409 `conflict`: the request conflicts with the object's state or a limit.
    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body is larger than the limit of {limit} bytes."),
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "The request body must be JSON, sent with `Content-Type: application/json`.",
        )
    }

    /// 422 `invalid_request`: well-formed JSON that does not fit the schema.
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// 429 `rate_limited`; the caller adds the rate-limit headers.
    pub fn rate_limited(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
    }

    /// 429 of type `insufficient_quota`, code `quota_exceeded` (OpenAI's answer when a budget
    /// is spent): retrying before `retry_after` is pointless, so the SDKs are told not to.
    pub fn quota_exceeded(message: impl Into<Cow<'static, str>>, retry_after: std::time::Duration) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message);
        error.0.kind = Some("insufficient_quota");
        let seconds = retry_after.as_secs().max(1);
        error
            .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
            .with_header(HeaderName::from_static("x-should-retry"), HeaderValue::from_static("false"))
    }

    /// 500 `internal_error`. Log the cause before returning this; it is never shown.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "The server had an error while processing your request. Please retry; if the error persists, contact the operator with the x-request-id header of this response.",
        )
    }

    /// 502 `upstream_error`: the model provider failed or answered garbage.
    pub fn upstream(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message)
    }

    /// 408 `request_timeout`: the request body stopped arriving.
    pub fn request_timeout() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "The request body stopped arriving before it was complete.")
    }

    /// 503 `service_unavailable`: a dependency (the database) is down; fail closed.
    pub fn unavailable() -> Self {
        Self::unavailable_because("The service is temporarily unavailable. Please retry shortly.")
    }

    /// 503 `service_unavailable` with a message saying why.
    pub fn unavailable_because(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", message)
    }

    /// 504 `upstream_timeout`: the model provider did not answer in time.
    pub fn upstream_timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", message)
    }

    /// An upstream's own status (4xx relayed), with a code of ours.
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(status, code, message)
    }

    /// Names the request parameter at fault.
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.0.param = Some(param);
        self
    }

    /// Adds a response header (rate-limit fields, `Retry-After`, …).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.insert(name, value);
        self
    }

    /// Adds every header of `headers`.
    pub fn with_headers(mut self, headers: &HeaderMap) -> Self {
        for (name, value) in headers {
            self.0.headers.insert(name.clone(), value.clone());
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn code(&self) -> &'static str {
        self.0.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The request parameter at fault, if any.
    pub fn param(&self) -> Option<&'static str> {
        self.0.param
    }

    /// The OpenAI error `type` for a status.
    pub fn error_type(status: StatusCode) -> &'static str {
        match status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            500..=599 => "api_error",
            _ => "invalid_request_error",
        }
    }
}

/// A model name as quoted in an error: at most 100 characters.
fn shown_model(model: &str) -> String {
    let mut shown: String = model.chars().take(100).collect();
    if shown.len() < model.len() {
        shown.push('…');
    }
    shown
}

/// A database failure, classified once: 503 when the database is unavailable (connection
/// lost, pool exhausted, locked, read-only), 500 otherwise. The cause is logged, never sent.
impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        let unavailable = crate::domain::is_unavailable(&error);
        tracing::error!(error = %crate::domain::describe_db_error(&error), unavailable, "request failed on the database");
        if unavailable { Self::unavailable() } else { Self::internal() }
    }
}

/// A key's guardrails refusing an inference request, classified once.
impl From<crate::domain::api_keys::guardrails::GuardrailRefusal> for ApiError {
    fn from(refusal: crate::domain::api_keys::guardrails::GuardrailRefusal) -> Self {
        use crate::domain::api_keys::guardrails::GuardrailRefusal;
        match refusal {
            GuardrailRefusal::ModelNotAllowed(ref model) => Self::forbidden(format!(
                "This API key may not use the model `{}`. Ask its owner to add it to the key's models.",
                shown_model(model)
            ))
            .with_param("model"),
            GuardrailRefusal::QuotaExceeded { retry_after, .. } => Self::quota_exceeded(refusal.to_string(), retry_after),
            GuardrailRefusal::Database(error) => error.into(),
        }
    }
}

/// The gateway's failures, classified once.
impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        match error {
            GatewayError::ModelNotFound { model, nothing_configured: false } => Self::model_not_found(&model),
            GatewayError::ModelNotFound { model, nothing_configured: true } => Self::no_provider_configured(&model),
            GatewayError::Invalid(e) => Self::invalid_param("invalid_request", e.param, e.message),
            GatewayError::WrongApi { model } => Self::invalid_param(
                "invalid_request",
                "model",
                format!(
                    "The model `{}` is served only by OpenAI-compatible providers, which do not speak the Anthropic Messages API. \
                     Call /v1/chat/completions for this model.",
                    shown_model(&model)
                ),
            ),
            GatewayError::Upstream(e) => e.into(),
        }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(error: UpstreamError) -> Self {
        match error {
            UpstreamError::TimedOut(Some(after)) => {
                Self::upstream_timeout(format!("The model provider did not answer within {} s.", after.as_secs()))
            }
            UpstreamError::TimedOut(None) => Self::upstream_timeout("The model provider did not answer in time."),
            UpstreamError::Unreachable => Self::upstream("The model provider could not be reached."),
            UpstreamError::OutOfSockets => {
                Self::unavailable_because("This server has too many connections open to reach the model provider. Please retry shortly.")
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
            UpstreamError::Broken => Self::upstream("The connection to the model provider failed."),
            UpstreamError::CredentialsRefused => {
                Self::upstream("The model provider refused this server's credentials. The operator must check the provider's API key.")
            }
            UpstreamError::RateLimited { message, retry_after, retry_after_ms } => {
                let mut error = Self::with_status(
                    StatusCode::TOO_MANY_REQUESTS,
                    "upstream_rate_limited",
                    message.unwrap_or_else(|| "The model provider is rate limiting requests.".into()),
                );
                if let Some(v) = retry_after {
                    error = error.with_header(header::RETRY_AFTER, v);
                }
                if let Some(v) = retry_after_ms {
                    error = error.with_header(HeaderName::from_static("retry-after-ms"), v);
                }
                error
            }
            UpstreamError::Refused { status, message } => Self::with_status(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                "upstream_error",
                message.unwrap_or_else(|| format!("The model provider refused the request (HTTP {status}).")),
            ),
            UpstreamError::Failed { status } => Self::upstream(format!("The model provider returned an error (HTTP {status}).")),
            UpstreamError::Stalled => Self::upstream_timeout("The model provider stopped answering."),
            UpstreamError::BodyBroken => Self::upstream("The connection to the model provider broke."),
            UpstreamError::TooLarge => Self::upstream(format!(
                "The model provider's answer was larger than {} MiB.",
                crate::domain::providers::gateway::MAX_ANSWER_BYTES / (1024 * 1024)
            )),
            UpstreamError::NotAnAnswer(what) => Self::upstream(format!("The model provider answered something that is not {what}.")),
        }
    }
}

/// Attached to every error response, so that a route answering in another API's shape
/// (`/v1/messages`: Anthropic's) can render the same error its way.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub status: StatusCode,
    pub message: Cow<'static, str>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.0.status.as_u16(), self.0.code, self.0.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let inner = *self.0;
        let rendered = Rendered { status: inner.status, message: inner.message.clone() };
        let body = ErrorBody {
            error: ErrorDetail {
                message: inner.message,
                kind: inner.kind.unwrap_or(Self::error_type(inner.status)),
                code: inner.code,
                param: inner.param,
            },
        };
        let mut response = (inner.status, Json(body)).into_response();
        response.headers_mut().extend(inner.headers);
        response.extensions_mut().insert(rendered);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        (parts.status, parts.headers, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn unauthorized_is_openai_shaped_with_www_authenticate() {
        let (status, headers, body) = body_of(ApiError::unauthorized("Invalid API key.")).await;
        assert_eq!(status, 401);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer realm=\"workjet\"");
        assert_eq!(
            body,
            serde_json::json!({"error": {"message": "Invalid API key.", "type": "authentication_error", "code": "unauthorized", "param": null}})
        );
    }

    #[tokio::test]
    async fn types_follow_status() {
        assert_eq!(body_of(ApiError::forbidden("x")).await.2["error"]["type"], "permission_error");
        assert_eq!(body_of(ApiError::rate_limited("x")).await.2["error"]["type"], "rate_limit_error");
        assert_eq!(body_of(ApiError::unavailable()).await.2["error"]["type"], "api_error");
        assert_eq!(body_of(ApiError::payload_too_large(10)).await.2["error"]["type"], "invalid_request_error");
        let (_, _, body) = body_of(ApiError::model_not_found("gpt-x")).await;
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(body["error"]["param"], "model");
    }

    /// This server out of sockets is its own shortage, said as such: 503 with a retry hint,
    /// where an unreachable provider is a 502.
    #[tokio::test]
    async fn out_of_sockets_is_this_servers_503_not_the_providers_502() {
        let (status, headers, body) = body_of(UpstreamError::OutOfSockets.into()).await;
        assert_eq!(status, 503);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(body["error"]["code"], "service_unavailable");
        assert!(body["error"]["message"].as_str().expect("message").contains("too many connections"), "{body}");
        assert_eq!(body_of(UpstreamError::Unreachable.into()).await.0, 502);
        assert_eq!(UpstreamError::OutOfSockets.status(), 503);
        assert!(!UpstreamError::OutOfSockets.moves_on(), "the next provider would fail the same way, and this one is not at fault");
        assert!(UpstreamError::Unreachable.moves_on());
    }
}
