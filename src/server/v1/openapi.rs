//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of `/v1`, generated from the handlers.

use axum::Json;
use serde::Serialize;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// The error body every `/v1` failure answers with.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    /// `authentication_error`, `permission_error`, `rate_limit_error`, `invalid_request_error`, `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `unauthorized`, `forbidden`, `rate_limited`, `not_found`, `invalid_request`, …
    pub code: String,
    pub param: Option<String>,
}

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("wj_live_ + 36 alphanumerics")
                    .description(Some("An API key from Settings > API Keys, or the wj_session cookie of a signed-in browser."))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Workjet API", description = "OpenAI-compatible LLM gateway with API key management."),
    paths(super::me::me, super::models::list, super::models::get, super::chat::chat_completions, super::keys::list, super::keys::get, super::keys::create, super::keys::revoke),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerScheme),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// The document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
