//! `GET /v1/models` and `GET /v1/models/{id}`: the configured public model names.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    domain::providers::Registry,
    permissions::Permission,
    server::{error::ApiError, state::AppState, v1::auth::Principal},
};

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelObject {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    pub created: i64,
    /// The provider serving it.
    pub owned_by: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

fn object(id: &str, provider: &str) -> ModelObject {
    ModelObject { id: id.to_owned(), object: "model", created: 0, owned_by: provider.to_owned() }
}

/// The models of `registry` that `allowed` lets through.
fn list_of(registry: &Registry, allowed: impl Fn(&str) -> bool) -> ModelList {
    let data = registry.models().filter(|(name, _)| allowed(name)).map(|(name, provider)| object(name, provider)).collect();
    ModelList { object: "list", data }
}

/// The answer to everyone who may see every model, serialized once: the providers do not
/// change while the server runs.
#[derive(Clone)]
pub struct AllModels(Bytes);

impl AllModels {
    pub fn new(registry: &Registry) -> Self {
        Self(Bytes::from(serde_json::to_vec(&list_of(registry, |_| true)).expect("a model list serializes")))
    }
}

/// Every model this gateway serves (to a key with a model allow-list: the models it may use).
#[utoipa::path(get, path = "/v1/models", operation_id = "listModels", tag = "inference",
    responses((status = 200, description = "The models this gateway serves (public names).", body = ModelList),
        (status = 403, description = "`forbidden`: the credentials lack the `inference` permission.", body = crate::server::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, principal: Principal, all: AllModels) -> Result<Response, ApiError> {
    principal.require(Permission::Inference)?;
    if principal.guardrails().is_none() {
        return Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], all.0).into_response());
    }
    Ok(Json(list_of(&state.gateway, |name| principal.allows_model(name))).into_response())
}

/// One model.
#[utoipa::path(get, path = "/v1/models/{id}", operation_id = "getModel", tag = "inference",
    params(("id" = String, Path, description = "A public model name, e.g. `claude-4-sonnet`.")),
    responses((status = 200, description = "The model.", body = ModelObject),
        (status = 403, description = "`forbidden`: the credentials lack the `inference` permission, or the key may not use this model.", body = crate::server::error::ErrorBody),
        (status = 404, description = "`model_not_found`: no provider serves this model.", body = crate::server::error::ErrorBody)))]
pub async fn get(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Json<ModelObject>, ApiError> {
    principal.require(Permission::Inference)?;
    if !principal.allows_model(&id) {
        return Err(crate::domain::api_keys::guardrails::GuardrailRefusal::ModelNotAllowed(id).into());
    }
    match state.gateway.owner(&id) {
        Some(provider) => Ok(Json(object(&id, provider))),
        None if state.gateway.is_empty() => Err(ApiError::no_provider_configured(&id)),
        None => Err(ApiError::model_not_found(&id)),
    }
}
