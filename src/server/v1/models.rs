//! `GET /v1/models` and `GET /v1/models/{id}`: the configured public model names.

use axum::{
    Json,
    extract::{Path, State},
};
use serde::Serialize;

use crate::{
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

/// Every model this gateway serves (to a key with a model allow-list: the models it may use).
#[utoipa::path(get, path = "/v1/models", operation_id = "listModels", tag = "inference",
    responses((status = 200, description = "The models this gateway serves (public names).", body = ModelList),
        (status = 403, description = "`forbidden`: the credentials lack the `inference` permission.", body = crate::server::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<ModelList>, ApiError> {
    principal.require(Permission::Inference)?;
    let data =
        state.gateway.models().filter(|(name, _)| principal.allows_model(name)).map(|(name, provider)| object(name, provider)).collect();
    Ok(Json(ModelList { object: "list", data }))
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
