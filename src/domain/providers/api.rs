//! What each kind of provider knows about its own API: how to authenticate, how to turn a
//! client's request into the upstream request, and how to turn the upstream's answer or
//! stream back into what the client asked for. One implementation per kind
//! ([`openai::OpenAi`](super::openai::OpenAi), [`anthropic::Anthropic`](super::anthropic::Anthropic));
//! the [`gateway`](super::gateway) sends, fails over and relays without knowing either.

use bytes::{Bytes, BytesMut};
use http::header::HeaderMap;
use serde_json::{Map, Value};

use super::sse;

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
    fn request(&self, upstream_model: &str, call: &Call<'_>) -> Result<UpstreamRequest, Unservable>;
    /// Where this API's requests go, below the provider's base URL (its path kept).
    fn path(&self) -> &'static str;
    /// The client's answer for a complete upstream answer, its body as received (`None`:
    /// not what was asked for).
    fn answer(&self, call: &Call<'_>, raw: Bytes) -> Option<(Bytes, Usage)>;
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
pub(super) fn sensitive(value: &str) -> Result<http::header::HeaderValue, NotAHeaderValue> {
    let mut value = http::header::HeaderValue::from_str(value).map_err(|_| NotAHeaderValue)?;
    value.set_sensitive(true);
    Ok(value)
}

/// The JSON object of a complete answer, when it is one.
pub fn json_object(raw: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(raw).ok().filter(Value::is_object)
}

/// What the gateway reads of an OpenAI chat completion that it passes on as it came: that it
/// is a JSON object with `choices`, and its usage. Read without building the document: an
/// answer is mostly the model's text, which is only skipped; `usage` alone is read as a
/// value, by [`usage_of`].
pub fn peek_chat_completion(raw: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<CompletionPeek>(raw).ok().map(|peek| peek.0)
}

/// See [`peek_chat_completion`].
struct CompletionPeek(Usage);

impl<'de> serde::Deserialize<'de> for CompletionPeek {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = CompletionPeek;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a chat completion object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<CompletionPeek, A::Error> {
                let (mut choices, mut usage) = (false, None);
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Choices => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            choices = true;
                        }
                        Key::Usage => usage = Some(map.next_value::<Value>()?),
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                if !choices {
                    return Err(serde::de::Error::missing_field("choices"));
                }
                Ok(CompletionPeek(usage.as_ref().and_then(usage_of).unwrap_or_default()))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A field name of a peeked completion, without copying it.
enum Key {
    Choices,
    Usage,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "choices" => Key::Choices,
                    "usage" => Key::Usage,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

/// `usage` of an OpenAI-shaped object.
pub fn openai_usage(value: &Value) -> Option<Usage> {
    usage_of(value.get("usage")?)
}

/// An OpenAI `usage` value's token counts (`None` when it is not an object; a count that is
/// not an unsigned integer counts as 0).
fn usage_of(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    Some(Usage {
        prompt_tokens: usage.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        completion_tokens: usage.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the gateway read before the peek: the whole document, then `choices` and usage.
    fn read_whole(raw: &[u8]) -> Option<Usage> {
        let body = json_object(raw)?;
        body.get("choices")?;
        Some(openai_usage(&body).unwrap_or_default())
    }

    #[test]
    fn peeking_at_a_completion_reads_what_the_whole_document_says() {
        let answers: &[&str] = &[
            r#"{"id":"c","choices":[{"message":{"content":"hi \"there\" \u00e9"}}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#,
            r#"{"usage":{"completion_tokens":3,"prompt_tokens":4},"choices":[]}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[],"usage":null}"#,
            r#"{"choices":[],"usage":"lots"}"#,
            r#"{"choices":[],"usage":[1,{"prompt_tokens":5}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":2.5}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":"7","completion_tokens":{"n":1}}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":1e3}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":[1],"completion_tokens":true}}"#,
            r#"{"cho\u0069ces":[],"us\u0061ge":{"prompt_\u0074okens":6}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5},"extra":{"deep":[[[{"a":null}]]]}}"#,
            "  {\"choices\" : [ ] }  ",
            // Not a completion: no choices, not an object, not JSON, trailing garbage.
            r#"{"id":"c"}"#,
            r#"{"error":{"message":"no"}}"#,
            r#"[{"choices":[]}]"#,
            r#"[[],{}]"#,
            "\"choices\"",
            "null",
            "",
            "{",
            r#"{"choices":[]"#,
            r#"{"choices":[]} x"#,
            r#"{"choices":[],}"#,
        ];
        for raw in answers {
            assert_eq!(peek_chat_completion(raw.as_bytes()), read_whole(raw.as_bytes()), "{raw}");
        }
        assert_eq!(peek_chat_completion(answers[0].as_bytes()), Some(Usage { prompt_tokens: 12, completion_tokens: 9 }));
        // Skipping needs no recursion (serde_json skips with a stack of its own): a deeply
        // nested answer is passed on as it came, without overflowing this thread's stack.
        let deep = format!(r#"{{"choices":{}{},"usage":{{"prompt_tokens":1}}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(peek_chat_completion(deep.as_bytes()), Some(Usage { prompt_tokens: 1, completion_tokens: 0 }));
        let unbalanced = format!(r#"{{"choices":{}}}"#, "[".repeat(100_000));
        assert_eq!(peek_chat_completion(unbalanced.as_bytes()), None);
    }
}
