//! What each kind of provider knows about its own API: how to authenticate, how to turn a
//! client's request into the upstream request, and how to turn the upstream's answer or
//! stream back into what the client asked for. One implementation per kind
//! ([`openai::OpenAi`](super::openai::OpenAi), [`anthropic::Anthropic`](super::anthropic::Anthropic));
//! the [`gateway`](super::gateway) sends, fails over and relays without knowing either.

use bytes::{Bytes, BytesMut};
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

use super::{Provider, sse};

/// Token counts of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// The client-facing API a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientApi {
    /// `POST /v1/chat/completions` (OpenAI's shape).
    ChatCompletions,
    /// `POST /v1/messages` (Anthropic's shape, relayed as is).
    Messages,
}

/// A parsed client request.
#[derive(Debug)]
pub struct Call<'a> {
    pub api: ClientApi,
    /// The JSON object the client sent.
    pub request: &'a Map<String, Value>,
    /// Its original bytes (passed on unchanged where possible).
    pub raw: &'a Bytes,
    /// The public model name it asked for.
    pub model: &'a str,
    pub stream: bool,
    /// `stream_options.include_usage` (chat completions).
    pub include_usage: bool,
    /// Headers of the client that the upstream API defines and that are safe to pass on
    /// (`anthropic-version`, `anthropic-beta` on `/v1/messages`).
    pub forward: HeaderMap,
}

/// The upstream request for one provider.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub url: url::Url,
    /// Headers besides the provider's credentials (which the gateway adds).
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a request cannot go to a provider.
#[derive(Debug, PartialEq, Eq)]
pub enum Unservable {
    /// The client's request cannot be expressed in the provider's API (400 for the client).
    Invalid(TranslateError),
    /// This kind of provider does not speak the client's API (`/v1/messages` to an
    /// OpenAI-compatible provider).
    WrongApi,
}

/// What a relay does after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    More,
    /// The stream is complete.
    Done,
    /// The upstream reported an error, already written out; the stream ends.
    Failed,
}

/// Turns one upstream stream into the client's stream, event by event, counting usage
/// (comments, the keep-alives, are passed on by the gateway itself).
pub trait EventRelay: Send {
    /// Writes what the event (`event:` name, `data:` text) becomes into `out`.
    fn relay(&mut self, event: Option<&str>, data: &str, out: &mut BytesMut) -> Flow;
    /// Whether the stream reached its proper end (an upstream that closes before is a failure).
    fn complete(&self) -> bool;
    /// Tokens counted so far.
    fn usage(&self) -> Usage;
    /// The event that ends a failed stream, in the client API's shape.
    fn error_event(&self, message: &str, code: &str) -> Bytes;
}

/// One kind of provider's API.
pub trait ProviderApi: Send + Sync {
    /// The credentials as headers (marked sensitive).
    fn auth_headers(&self, api_key: Option<&str>) -> Result<HeaderMap, NotAHeaderValue>;
    /// The upstream request for `call`, the model being `upstream_model` there.
    fn request(&self, provider: &Provider, upstream_model: &str, call: &Call<'_>) -> Result<UpstreamRequest, Unservable>;
    /// The client's answer for a complete upstream answer (`None`: not what was asked for).
    fn answer(&self, call: &Call<'_>, body: &Value, raw: Bytes) -> Option<(Bytes, Usage)>;
    /// The relay for an upstream stream.
    fn stream(&self, call: &Call<'_>) -> Box<dyn EventRelay>;
}

/// A request that cannot be translated into the provider's API; the message is for the
/// client (400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    pub message: String,
    pub param: &'static str,
}

/// An OpenAI chat-completions error event (what ends a failed `/v1/chat/completions` stream).
pub fn chat_error_event(message: &str, code: &str) -> Bytes {
    let body = serde_json::json!({"error": {"message": message, "type": "api_error", "code": code, "param": null}});
    sse::frame(None, &body.to_string())
}

/// A provider's API key that cannot be sent as an HTTP header (a control character, say).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the API key is not a valid HTTP header value")]
pub struct NotAHeaderValue;

/// A header value marked sensitive (never printed by `Debug` or logs).
pub(super) fn sensitive(value: &str) -> Result<reqwest::header::HeaderValue, NotAHeaderValue> {
    let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| NotAHeaderValue)?;
    value.set_sensitive(true);
    Ok(value)
}

/// `usage` of an OpenAI-shaped object.
pub fn openai_usage(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        prompt_tokens: usage.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        completion_tokens: usage.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
    })
}
