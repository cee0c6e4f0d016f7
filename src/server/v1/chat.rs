//! `POST /v1/chat/completions`: the gateway, OpenAI's way. The request goes to the providers
//! configured for its model ([`Registry::call`](crate::domain::providers::Registry::call):
//! passed through to OpenAI-compatible APIs, translated for Anthropic, with failover) and the
//! answer comes back as an OpenAI chat completion, streamed chunk by chunk when asked. The
//! client's credentials never reach the upstream; the provider's key never reaches the client
//! or a log.

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value};

use crate::{
    domain::{
        providers::{
            api::{Call, ClientApi},
            gateway::Answer,
        },
        usage::Meter,
    },
    permissions::Permission,
    server::{
        error::ApiError,
        state::AppState,
        v1::{auth::Principal, body::JsonBody},
    },
};

/// Checks what every inference request needs: a JSON object with a non-empty `model`, a
/// `messages` array and, if present, a boolean `stream`; and that no object in it names a
/// key twice.
///
/// Duplicate keys are refused because the request is passed on as it came: parsers disagree
/// on which of two `"model"` keys counts (this one keeps the last, others the first), so a
/// request naming an allowed model last and another model first would pass the key's model
/// allow-list here and be served by the other model upstream; two `"include_usage"` keys
/// would hide a streamed request's tokens from its budget.
pub fn parse_request(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let Unique(value) = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            // Only [`Unique`]'s own refusal is a data error here: the text names the key.
            ApiError::bad_request(format!("The request body names a key twice in one object: {e}"))
        } else {
            ApiError::bad_request(format!("The request body is not valid JSON: {e}"))
        }
    })?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request("The request body must be a JSON object."));
    };
    match map.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        Some(_) => return Err(ApiError::invalid_param("invalid_request", "model", "model must be a non-empty string.")),
        None => return Err(ApiError::invalid_param("invalid_request", "model", "You must provide a model parameter.")),
    }
    if !map.get("messages").is_some_and(Value::is_array) {
        return Err(ApiError::invalid_param("invalid_request", "messages", "messages must be an array of messages."));
    }
    if map.get("stream").is_some_and(|s| !s.is_boolean() && !s.is_null()) {
        return Err(ApiError::invalid_param("invalid_request", "stream", "stream must be a boolean."));
    }
    Ok(map)
}

/// A JSON value whose objects name each key once (see [`parse_request`]); built in the same
/// single pass as a plain [`Value`] (serde_json's nesting limit applies as usual).
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let Unique(value) = access.next_value()?;
            match map.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    let shown: String = slot.key().chars().take(64).collect();
                    return Err(serde::de::Error::custom(format_args!("duplicate key \"{}\"", shown.escape_default())));
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// Creates a chat completion through the model's provider.
#[utoipa::path(post, path = "/v1/chat/completions", operation_id = "createChatCompletion", tag = "inference",
    request_body(content = Object, description = "An OpenAI chat-completions request; `model` and `messages` are required, \
        everything else is passed to the provider.",
        example = json!({"model": "claude-4-sonnet", "messages": [{"role": "user", "content": "Hello, world!"}]})),
    responses(
        (status = 200, description = "A chat completion (`application/json`), or with `\"stream\": true` a stream of \
            chat-completion chunks (`text/event-stream`) ending with `data: [DONE]`.",
            content((Object = "application/json"), (String = "text/event-stream"))),
        (status = 403, description = "`forbidden`: the credentials lack the `inference` permission, or the key may not use this model (`param`: `model`).", body = crate::server::error::ErrorBody),
        (status = 404, description = "`model_not_found`: no provider serves this model.", body = crate::server::error::ErrorBody),
        (status = 502, description = "`upstream_error`: the provider is unreachable, failed or answered garbage.", body = crate::server::error::ErrorBody),
        (status = 504, description = "`upstream_timeout`: the provider did not answer in time.", body = crate::server::error::ErrorBody)))]
pub async fn chat_completions(State(state): State<AppState>, principal: Principal, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    principal.require(Permission::Inference)?;
    let request = parse_request(&body)?;
    let include_usage = request.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    let call = call(ClientApi::ChatCompletions, &request, &body, include_usage, HeaderMap::new());
    let budget = state.budgets.admit(principal.guardrails(), call.model).await?.map(|key| (state.budgets.clone(), key));
    let meter = Meter::start(state.usage.clone(), principal.user_id, principal.key_id(), call.model, call.stream).with_budget(budget);
    Ok(respond(state.gateway.call(&call, meter).await?))
}

/// The gateway call for a parsed request.
pub fn call<'a>(api: ClientApi, request: &'a Map<String, Value>, raw: &'a Bytes, include_usage: bool, forward: HeaderMap) -> Call<'a> {
    Call {
        api,
        request,
        raw,
        model: request.get("model").and_then(Value::as_str).unwrap_or_default(),
        stream: request.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage,
        forward,
    }
}

/// The HTTP answer for the gateway's answer.
pub fn respond(answer: Answer) -> Response {
    match answer {
        Answer::Complete(body) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
        Answer::Stream(relay) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
            ],
            Body::from_stream(relay),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::parse_request;

    #[test]
    fn request_validation() {
        assert!(parse_request(br#"{"model":"m","messages":[]}"#).is_ok());
        for bad in [
            &b"[]"[..],
            b"1",
            b"\"x\"",
            b"{}",
            br#"{"model":""}"#,
            br#"{"model":1,"messages":[]}"#,
            br#"{"model":"m"}"#,
            br#"{"model":"m","messages":{}}"#,
            br#"{"model":"m","messages":[],"stream":"yes"}"#,
            b"{",
            br#"{"model":"m","messages":[],"n":1e999999}"#,
        ] {
            assert_eq!(parse_request(bad).unwrap_err().status(), 400, "{}", String::from_utf8_lossy(bad));
        }
        for duplicated in [
            &br#"{"model":"allowed","messages":[],"model":"other"}"#[..],
            br#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true,"include_usage":false}}"#,
            br#"{"model":"m","messages":[{"role":"user","content":"a","content":"b"}]}"#,
            br#"{"model":"m","messages":[],"stream":false,"stream":true}"#,
            br#"{"model":"m","messages":[],"m\u006fdel":"other"}"#,
        ] {
            let error = parse_request(duplicated).unwrap_err();
            assert_eq!(error.status(), 400, "{}", String::from_utf8_lossy(duplicated));
            assert!(format!("{error:?}").contains("names a key twice"), "{error:?}");
        }
        // The same key in different objects is fine, and values come through as they were.
        let request = parse_request(
            br#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}],"n":-1,"t":0.5,"u":18446744073709551615,"x":null}"#,
        )
        .expect("parses");
        assert_eq!(
            Value::Object(request),
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}],"n":-1,"t":0.5,"u":18446744073709551615u64,"x":null})
        );
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_request(deep.as_bytes()).unwrap_err().status(), 400, "deep nesting is refused, not a stack overflow");
    }
}
