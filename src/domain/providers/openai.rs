//! OpenAI-compatible providers (OpenAI, Azure-style gateways, vLLM, Ollama, …): chat
//! completions are passed through — the client's original bytes when the model name is
//! unchanged — with only the model name and, for accounting, `stream_options` rewritten.

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, HeaderMap};
use serde_json::{Value, json};

use super::{
    api::{
        Call, ClientApi, EventRelay, Flow, NotAHeaderValue, ProviderApi, Unservable, UpstreamRequest, Usage, chat_error_event,
        openai_usage, peek_chat_completion, sensitive,
    },
    sse,
};

/// The OpenAI chat-completions API.
pub struct OpenAi;

impl ProviderApi for OpenAi {
    fn auth_headers(&self, api_key: Option<&str>) -> Result<HeaderMap, NotAHeaderValue> {
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key {
            headers.insert(AUTHORIZATION, sensitive(&format!("Bearer {key}"))?);
        }
        Ok(headers)
    }

    fn request(&self, upstream_model: &str, call: &Call<'_>) -> Result<UpstreamRequest, Unservable> {
        if call.api != ClientApi::ChatCompletions {
            return Err(Unservable::WrongApi);
        }
        let unchanged = upstream_model == call.model && (!call.stream || call.include_usage);
        let body = if unchanged {
            call.raw.clone()
        } else {
            let mut request = call.request.clone();
            request.insert("model".into(), Value::String(upstream_model.to_owned()));
            if call.stream && !call.include_usage {
                // Ask for usage anyway (for accounting); the extra chunk is not relayed.
                request.insert("stream_options".into(), json!({"include_usage": true}));
            }
            Bytes::from(serde_json::to_vec(&request).expect("a JSON map serialises"))
        };
        Ok(UpstreamRequest { headers: HeaderMap::new(), body })
    }

    fn path(&self) -> &'static str {
        "chat/completions"
    }

    fn answer(&self, _call: &Call<'_>, raw: Bytes) -> Option<(Bytes, Usage)> {
        let usage = peek_chat_completion(&raw)?;
        Some((raw, usage))
    }

    fn stream(&self, call: &Call<'_>) -> Box<dyn EventRelay> {
        Box::new(ChatRelay { strip_usage: !call.include_usage, saw_done: false, usage: Usage::default() })
    }
}

/// The key whose chunks are parsed for their token counts (the others pass untouched).
static USAGE_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new("\"usage\""));

/// Pass-through of chat-completion chunks; `strip_usage` drops the usage-only chunk the
/// client did not ask for.
struct ChatRelay {
    strip_usage: bool,
    saw_done: bool,
    usage: Usage,
}

impl EventRelay for ChatRelay {
    fn relay(&mut self, event: Option<&str>, data: &str, out: &mut BytesMut) -> Flow {
        if data == "[DONE]" {
            self.saw_done = true;
            sse::frame_into(out, None, "[DONE]");
            return Flow::Done;
        }
        if USAGE_KEY.find(data.as_bytes()).is_some()
            && let Ok(value) = serde_json::from_str::<Value>(data)
        {
            if let Some(usage) = openai_usage(&value) {
                self.usage = usage;
            }
            let usage_only = value.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty);
            if self.strip_usage && usage_only {
                return Flow::More;
            }
        }
        sse::frame_into(out, event, data);
        Flow::More
    }

    fn complete(&self) -> bool {
        self.saw_done
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn error_event(&self, message: &str, code: &str) -> Bytes {
        chat_error_event(message, code)
    }
}
