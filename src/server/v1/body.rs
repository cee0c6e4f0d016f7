//! `JsonBody`: the raw bytes of a JSON request body, with OpenAI-shaped rejections (415 not
//! JSON, 413 over `WJ_MAX_BODY_BYTES`), for handlers that relay bodies without
//! re-serialising them.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{StatusCode, header},
};

use crate::server::{error::ApiError, state::AppState};

pub struct JsonBody(pub Bytes);

fn is_json(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/json") || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !is_json(content_type) {
            return Err(ApiError::unsupported_media_type());
        }
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::payload_too_large(state.config.max_body_bytes))
            }
            Err(rejection) if crate::server::v1::json::timed_out(&rejection.body_text()) => Err(ApiError::request_timeout()),
            Err(_) => Err(ApiError::bad_request("The request body could not be read.")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json(""));
    }
}
