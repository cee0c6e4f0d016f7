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

/// Every model this gateway serves.
#[utoipa::path(get, path = "/v1/models", tag = "inference", security(("bearer" = [])),
    responses((status = 200, body = ModelList), (status = 401, body = crate::server::v1::openapi::ErrorBody), (status = 403, body = crate::server::v1::openapi::ErrorBody)))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<ModelList>, ApiError> {
    principal.require(Permission::Inference)?;
    let data = state.gateway.routes.iter().map(|(name, route)| object(name, &route.provider.name)).collect();
    Ok(Json(ModelList { object: "list", data }))
}

/// One model.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "inference", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ModelObject), (status = 404, body = crate::server::v1::openapi::ErrorBody)))]
pub async fn get(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Json<ModelObject>, ApiError> {
    principal.require(Permission::Inference)?;
    match state.gateway.route(&id) {
        Some(route) => Ok(Json(object(&id, &route.provider.name))),
        None => Err(ApiError::model_not_found(&id)),
    }
}
