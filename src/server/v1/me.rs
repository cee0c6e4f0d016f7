//! `GET /v1/me`: who is calling, and how.

use axum::{Json, extract::State};
use serde::Serialize;

use crate::{
    permissions::Permissions,
    server::{
        error::ApiError,
        state::AppState,
        v1::auth::{AuthMethod, Principal},
    },
};

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    /// Always `me`.
    pub object: &'static str,
    pub user: MeUser,
    /// `api_key` or `session`.
    pub auth_method: &'static str,
    /// The key used, when the request authenticated with one.
    pub key: Option<MeKey>,
    #[schema(value_type = crate::server::v1::schema::PermissionsSchema)]
    pub permissions: Permissions,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeUser {
    pub id: i64,
    pub email: String,
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeKey {
    pub id: i64,
    pub name: String,
    pub hint: String,
}

/// The signed-in user behind the request.
#[utoipa::path(get, path = "/v1/me", operation_id = "getMe", tag = "account",
    responses((status = 200, description = "The caller: user, authentication method, key and permissions.", body = MeResponse)))]
pub async fn me(State(state): State<AppState>, principal: Principal) -> Result<Json<MeResponse>, ApiError> {
    let Some(user) = state.users.get(principal.user_id).await? else {
        return Err(ApiError::unauthorized("Invalid API key."));
    };
    let (auth_method, key) = match principal.method {
        AuthMethod::ApiKey(key) => {
            let record = state.keys.get(principal.user_id, key.key_id).await?;
            ("api_key", record.map(|r| MeKey { id: r.id, name: r.name, hint: r.hint }))
        }
        AuthMethod::Session => ("session", None),
    };
    Ok(Json(MeResponse {
        object: "me",
        user: MeUser { id: user.id, email: user.email, name: user.name },
        auth_method,
        key,
        permissions: principal.permissions,
    }))
}
