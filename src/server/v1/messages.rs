//! `POST /v1/messages`: Anthropic's Messages API, for the clients that speak it (the
//! Anthropic SDKs, coding agents). Authenticated like every `/v1` route — `Authorization:
//! Bearer` or, as Anthropic's own API, `x-api-key` — and relayed as is to the model's
//! `anthropic` providers (streams event by event), with failover and usage recorded. Errors,
//! including authentication and rate-limit refusals, answer in Anthropic's shape here.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::Response,
};
use serde::Serialize;

use crate::{
    domain::{
        providers::{anthropic, api::ClientApi},
        usage::Meter,
    },
    permissions::Permission,
    server::{
        error::{ApiError, Rendered},
        state::AppState,
        v1::{
            auth::Principal,
            body::JsonBody,
            chat::{call, parse_request, respond},
        },
    },
};

pub const PATH: &str = "/v1/messages";

/// Client headers Anthropic's API defines that go to the provider (and only those: the
/// client's own credentials never enter the gateway call).
pub const FORWARDED: [HeaderName; 2] = [anthropic::VERSION_HEADER, anthropic::BETA_HEADER];

/// Creates a message through the model's Anthropic provider.
#[utoipa::path(post, path = "/v1/messages", operation_id = "createMessage", tag = "inference",
    request_body(content = Object, description = "An Anthropic Messages request (`model`, `messages`, `max_tokens`, …), relayed \
        as is to the model's `anthropic` provider. Authenticate with `Authorization: Bearer` or `x-api-key`.",
        example = json!({"model": "claude-4-sonnet", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello, world!"}]})),
    responses(
        (status = 200, description = "A message (`application/json`), or with `\"stream\": true` Anthropic's event stream \
            (`text/event-stream`).", content((Object = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "`invalid_request_error`: a malformed request, or a model that only OpenAI-compatible providers serve.",
            body = AnthropicErrorBody),
        (status = 403, description = "`permission_error`: the credentials lack the `inference` permission, or the key may not use this model.", body = AnthropicErrorBody),
        (status = 404, description = "`not_found_error`: no provider serves this model.", body = AnthropicErrorBody),
        (status = 502, description = "`api_error`: the provider is unreachable, failed or answered garbage.", body = AnthropicErrorBody),
        (status = 504, description = "`api_error`: the provider did not answer in time.", body = AnthropicErrorBody)))]
// 401 (`authentication_error`), 429 (`rate_limit_error`) and 503 are the shared responses of
// every `/v1` route, in this route's error shape (see `openapi::Conventions`).
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    principal.require(Permission::Inference)?;
    let request = parse_request(&body)?;
    let mut forward = HeaderMap::new();
    for name in FORWARDED {
        for value in headers.get_all(&name) {
            forward.append(name.clone(), value.clone());
        }
    }
    let call = call(ClientApi::Messages, &request, &body, false, forward);
    let budget = state.budgets.admit(principal.guardrails(), call.model).await?.map(|key| (state.budgets.clone(), key));
    let meter = Meter::start(state.usage.clone(), principal.user_id, principal.key_id(), call.model, call.stream).with_budget(budget);
    Ok(respond(state.gateway.call(&call, meter).await?))
}

/// The body of every `/v1/messages` error, in the shape Anthropic's SDKs parse.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "error", "error": {"type": "authentication_error", "message": "Invalid API key."}}))]
pub struct AnthropicErrorBody {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: AnthropicErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnthropicErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `request_too_large`, `rate_limit_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
}

/// Anthropic's error `type` for a status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Re-renders any error answered on this route (by the gate, the body limits or the handler)
/// in Anthropic's shape; status and headers (`Retry-After`, rate-limit headers) stay.
pub async fn anthropic_errors(response: Response) -> Response {
    let Some(rendered) = response.extensions().get::<Rendered>().cloned() else { return response };
    let (mut parts, _) = response.into_parts();
    let body = AnthropicErrorBody {
        kind: "error",
        error: AnthropicErrorDetail { kind: error_type(rendered.status), message: rendered.message.into_owned() },
    };
    let bytes = serde_json::to_vec(&body).expect("an error body serialises");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(bytes))
}
