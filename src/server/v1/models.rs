//! `GET /v1/models` and `GET /v1/models/{id}`: the configured public model names.

use std::sync::Arc;

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

/// The model list, serialized once (the providers do not change while the server runs):
/// the whole answer for everyone who may see every model, and each model's object for the
/// keys with a model allow-list, whose answer is the allowed objects joined.
#[derive(Clone)]
pub struct AllModels(Arc<Serialized>);

struct Serialized {
    all: Bytes,
    each: Vec<(String, Vec<u8>)>,
}

const LIST_HEAD: &[u8] = br#"{"object":"list","data":["#;
const LIST_TAIL: &[u8] = b"]}";

impl AllModels {
    pub fn new(registry: &Registry) -> Self {
        let each: Vec<(String, Vec<u8>)> = registry
            .models()
            .map(|(name, provider)| (name.to_owned(), serde_json::to_vec(&object(name, provider)).expect("a model serializes")))
            .collect();
        let all = Bytes::from(Self::join(each.iter().map(|(_, json)| json.as_slice())));
        Self(Arc::new(Serialized { all, each }))
    }

    fn join<'a>(objects: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut body = LIST_HEAD.to_vec();
        for (i, object) in objects.enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(object);
        }
        body.extend_from_slice(LIST_TAIL);
        body
    }

    /// The list of the models `allowed` lets through, as JSON.
    fn body(&self, allowed: impl Fn(&str) -> bool) -> Bytes {
        let models = &self.0;
        if models.each.iter().all(|(name, _)| allowed(name)) {
            return models.all.clone();
        }
        Bytes::from(Self::join(models.each.iter().filter(|(name, _)| allowed(name)).map(|(_, json)| json.as_slice())))
    }
}

/// Every model this gateway serves (to a key with a model allow-list: the models it may use).
#[utoipa::path(get, path = "/v1/models", operation_id = "listModels", tag = "inference",
    responses((status = 200, description = "The models this gateway serves (public names).", body = ModelList),
        (status = 403, description = "`forbidden`: the credentials lack the `inference` permission.", body = crate::server::error::ErrorBody)))]
pub async fn list(principal: Principal, models: AllModels) -> Result<Response, ApiError> {
    principal.require(Permission::Inference)?;
    let body = models.body(|name| principal.allows_model(name));
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::providers::{Source, config};

    #[test]
    fn the_lists_served_are_what_serializing_them_gives() {
        let text = "[[providers]]\nname = \"east\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodels = [\"m\", \"only-east\"]\n\
                    [[providers]]\nname = \"west\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:2/v1\"\nmodels = [\"m\", \"w\\\"quoted\"]\n";
        let registry = Registry::build(&config::parse(text).expect("valid"), Source::Nothing, |_| Some("k".into())).expect("builds");
        let models = AllModels::new(&registry);
        let expected = |allowed: &dyn Fn(&str) -> bool| {
            let data = registry.models().filter(|(name, _)| allowed(name)).map(|(name, provider)| object(name, provider)).collect();
            serde_json::to_vec(&ModelList { object: "list", data }).expect("serializes")
        };
        let filters: [&dyn Fn(&str) -> bool; 4] = [&|_| true, &|name| name == "m", &|name| name != "m", &|_| false];
        for allowed in filters {
            let body = models.body(allowed);
            assert_eq!(body.as_ref(), expected(allowed).as_slice());
            serde_json::from_slice::<serde_json::Value>(&body).expect("valid JSON");
        }
        assert_eq!(models.body(|_| false).as_ref(), br#"{"object":"list","data":[]}"#);
    }
}
