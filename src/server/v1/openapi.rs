//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of `/v1`, generated from the handlers.
//!
//! The handlers' `#[utoipa::path]` annotations say what is particular to each operation (its
//! id, success body, the errors only it answers); [`Conventions`] adds what every operation
//! shares: the error body ([`ErrorBody`], the very type `ApiError` serialises), 401 / 429 /
//! 503 answers, the rate-limit headers, the request id and the security schemes. The document
//! itself is public (it describes routes, never data) and is built once.

use std::sync::LazyLock;

use axum::{
    body::Bytes,
    http::{HeaderValue, header},
    response::IntoResponse,
};
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        Content, Ref, RefOr, Response, ResponseBuilder,
        header::{Header, HeaderBuilder},
        schema::{ObjectBuilder, Type},
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};

use crate::server::error::{ErrorBody, ErrorDetail};

/// The path of the document (public: listed in `UNAUTHENTICATED_ALLOWLIST`).
pub const PATH: &str = "/v1/openapi.json";

fn integer_header(description: &str) -> Header {
    HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0))).description(Some(description)).build()
}

fn string_header(description: &str) -> Header {
    HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::String)).description(Some(description)).build()
}

/// The headers on every answer to an authenticated `/v1` request.
fn rate_limit_headers() -> Vec<(&'static str, Header)> {
    vec![
        ("X-RateLimit-Limit", integer_header("Requests allowed per minute for this key (or user, for a session).")),
        ("X-RateLimit-Remaining", integer_header("Requests allowed right now.")),
        ("X-RateLimit-Reset", integer_header("Seconds until the budget is full again.")),
        ("RateLimit-Policy", string_header("The policy in the IETF draft's format, e.g. `\"per-key\";q=600;w=60`.")),
        ("RateLimit", string_header("Where you stand in the IETF draft's format, e.g. `\"per-key\";r=599;t=1`.")),
        ("x-request-id", string_header("The request's id; quote it when reporting a problem.")),
    ]
}

fn error_response(description: &str, extra_headers: Vec<(&'static str, Header)>) -> Response {
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(Ref::from_schema_name(ErrorBody::name()))));
    for (name, h) in extra_headers {
        builder = builder.header(name, h);
    }
    builder.build()
}

fn unauthorized() -> Response {
    error_response(
        "`unauthorized`: missing, malformed, unknown, revoked or expired key or session. The rate-limit headers are sent only \
         when a never-seen key was counted against the address's failed-authentication budget (`auth-failures` policy).",
        vec![("WWW-Authenticate", string_header("`Bearer realm=\"workjet\"`"))],
    )
}

fn rate_limited() -> Response {
    error_response(
        "`rate_limited`: the key's (or user's) budget is spent, or too many failed authentications came from this address; \
         `upstream_rate_limited`: the model provider is rate limiting. Wait for `Retry-After`. On inference, type \
         `insufficient_quota` with code `quota_exceeded`: the key's daily token budget is spent (`Retry-After`: until \
         midnight UTC; `x-should-retry: false`).",
        vec![
            ("Retry-After", integer_header("Seconds to wait before retrying (at least 1).")),
            ("retry-after-ms", integer_header("Milliseconds to wait before retrying.")),
            ("x-should-retry", string_header("`false` when the wait is longer than the OpenAI SDKs would wait (60 s).")),
        ],
    )
}

fn unavailable() -> Response {
    error_response("`service_unavailable`: the database is unreachable (Workjet fails closed). Retry shortly.", vec![])
}

fn bad_body() -> Vec<(&'static str, Response)> {
    vec![
        ("400", error_response("`invalid_request` (or a more specific code naming `param`): the request is malformed.", vec![])),
        ("408", error_response("`request_timeout`: the request body stopped arriving.", vec![])),
        ("413", error_response("`payload_too_large`: the body is over the server's limit (`WJ_MAX_BODY_BYTES`).", vec![])),
        ("415", error_response("`unsupported_media_type`: the body is not JSON, or is compressed.", vec![])),
    ]
}

/// What every operation shares; see the module documentation.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("wj_live_ + 36 alphanumerics")
                    .description(Some("An API key from Settings > API Keys (or `POST /v1/keys`), as `Authorization: Bearer wj_live_…`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "wj_session",
                "The session cookie of a browser signed in to the portal. State-changing requests must come from an allowed origin.",
            ))),
        );
        doc.security =
            Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new()), SecurityRequirement::new("cookie", Vec::<String>::new())]);

        components.add_security_scheme(
            "x-api-key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The same API key in Anthropic's header, as Anthropic's SDKs send it.",
            ))),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = path.as_str() == PATH;
            let anthropic = path.as_str() == super::messages::PATH;
            for operation in [item.get.as_mut(), item.post.as_mut(), item.patch.as_mut(), item.delete.as_mut()].into_iter().flatten() {
                if public {
                    operation.security = Some(Vec::new());
                    continue;
                }
                // Either credential works on every route.
                operation.security = None;
                let responses = &mut operation.responses.responses;
                let mut shared: Vec<(&str, Response)> = vec![("401", unauthorized()), ("429", rate_limited()), ("503", unavailable())];
                if operation.request_body.is_some() {
                    shared.extend(bad_body());
                }
                for (status, response) in shared {
                    responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(response));
                }
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        for (name, h) in rate_limit_headers() {
                            response.headers.entry(name.to_owned()).or_insert(h);
                        }
                        if anthropic && !status.starts_with('2') {
                            // This route answers errors in Anthropic's shape.
                            response.content.insert(
                                "application/json".to_owned(),
                                Content::new(Some(Ref::from_schema_name(super::messages::AnthropicErrorBody::name()))),
                            );
                        }
                    }
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Workjet API",
        description = "OpenAI-compatible LLM gateway with API key management. Authenticate with an API key \
            (`Authorization: Bearer wj_live_…`) or the portal's `wj_session` cookie. Every error answers with \
            `ErrorBody`; every authenticated answer carries the `X-RateLimit-*` headers.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::models::list, super::models::get, super::chat::chat_completions, super::messages::create,
        super::keys::list, super::keys::create, super::keys::get, super::keys::update, super::keys::roll, super::keys::revoke,
        super::me::me, super::audit::list, super::admin::list_users, super::admin::disable_user, super::admin::enable_user,
        super::admin::find_keys, super::admin::get_key, super::admin::revoke_key, super::admin::list_events, openapi
    ),
    components(schemas(ErrorBody, ErrorDetail, super::schema::PermissionsSchema, super::messages::AnthropicErrorBody, super::messages::AnthropicErrorDetail)),
    tags(
        (name = "inference", description = "Models and chat completions, as in the OpenAI API, and messages, as in Anthropic's \
            (permission `inference`)."),
        (name = "keys", description = "Create, list, inspect and revoke your API keys (`keys:read`, `keys:write`)."),
        (name = "account", description = "Who is calling, and their security log (`keys:read`)."),
        (name = "admin", description = "For administrators (`WJ_ADMIN_EMAILS`), signed in or with a key that has every \
            permission: people, anyone's keys, everyone's security log. Anyone else gets 403 `forbidden`."),
        (name = "meta", description = "This document.")
    ),
    modifiers(&Conventions)
)]
pub struct ApiDoc;

static DOCUMENT: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises")));

/// This OpenAPI 3.1 document. Public: it describes the routes, not anyone's data.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "getOpenApiDocument", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of `/v1`.", content_type = "application/json", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], DOCUMENT.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique_and_every_response_is_described() {
        let doc: serde_json::Value = serde_json::from_slice(&DOCUMENT).expect("json");
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has an operationId"));
                assert!(ids.insert(id.to_owned()), "operationId {id} is unique");
                for (status, response) in op["responses"].as_object().expect("responses") {
                    assert!(!response["description"].as_str().unwrap_or_default().is_empty(), "{method} {path} {status} is described");
                    if status.starts_with('4') || status.starts_with('5') {
                        let body = if path == "/v1/messages" { "AnthropicErrorBody" } else { "ErrorBody" };
                        assert_eq!(response["content"]["application/json"]["schema"]["$ref"], format!("#/components/schemas/{body}"));
                    }
                }
            }
        }
        for id in [
            "listModels",
            "createChatCompletion",
            "createMessage",
            "listKeys",
            "createKey",
            "getKey",
            "revokeKey",
            "getMe",
            "listAuditEvents",
        ] {
            assert!(ids.contains(id), "{id}");
        }
    }
}
