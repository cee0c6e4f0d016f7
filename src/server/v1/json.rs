//! `ApiJson<T>`: a JSON body extractor whose every rejection is an OpenAI-shaped error
//! (400 bad JSON, 413 too large, 415 not JSON, 422 wrong shape).

use axum::{
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use crate::server::{error::ApiError, state::AppState};

/// A JSON request body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(map_rejection(rejection, state.config.max_body_bytes)),
        }
    }
}

/// Reads a JSON body already in hand (an optional body), with the same answers as
/// [`ApiJson`]: 415 when not sent as JSON, 400 bad JSON, 422 wrong shape.
pub fn parse<T: DeserializeOwned>(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let json = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let essence = v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
    });
    if !json {
        return Err(ApiError::unsupported_media_type());
    }
    axum::Json::<T>::from_bytes(body).map(|axum::Json(value)| value).map_err(|rejection| map_rejection(rejection, body.len()))
}

fn map_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::unsupported_media_type(),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("The request body is not valid JSON: {}", clean(&e.body_text())))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::unprocessable(format!("The request body does not fit the schema: {}", clean(&e.body_text())))
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(limit),
        JsonRejection::BytesRejection(e) if timed_out(&e.body_text()) => ApiError::request_timeout(),
        JsonRejection::BytesRejection(_) => ApiError::bad_request("The request body could not be read."),
        _ => ApiError::bad_request("The request body could not be read."),
    }
}

/// Whether reading the body failed because it stopped arriving (`WJ_BODY_TIMEOUT_SECS`).
pub fn timed_out(rejection_text: &str) -> bool {
    rejection_text.contains("designated timeout")
}

/// serde's message, without axum's prefix, bounded in length.
fn clean(text: &str) -> String {
    let text = text.split_once(": ").map(|(_, rest)| rest).unwrap_or(text);
    text.chars().take(300).collect()
}
