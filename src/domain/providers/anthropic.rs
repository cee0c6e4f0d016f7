//! Translation between OpenAI chat completions and Anthropic's Messages API: the request
//! (system messages, roles, tools and tool results, images, sampling options,
//! `max_tokens`), the response, and the stream of events (text, tool-call deltas,
//! `finish_reason`, `usage`) — and the same API passed through as is for `/v1/messages`.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::{
    api::{
        Call, ClientApi, EventRelay, Flow, NotAHeaderValue, ProviderApi, Unservable, UpstreamRequest, Usage, chat_error_event, json_object,
        sensitive,
    },
    sse,
};

/// `max_tokens` when the client sets none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The API version Workjet speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub use super::api::TranslateError;

fn bad(param: &'static str, message: impl Into<String>) -> TranslateError {
    TranslateError { message: message.into(), param }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

fn image_block(url: &str) -> Result<Value, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| bad("messages", "an image data URL has no data"))?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| bad("messages", "image data URLs must be base64"))?;
        return Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(bad("messages", "image_url must be an http(s) URL or a base64 data URL"))
}

fn content_blocks(content: &Value) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::String(s) => Ok(if s.is_empty() { vec![] } else { vec![json!({"type": "text", "text": s})] }),
        Value::Null => Ok(vec![]),
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({"type": "text", "text": part.get("text").and_then(Value::as_str).unwrap_or_default()})),
                Some("image_url") => {
                    let url = part
                        .get("image_url")
                        .and_then(|i| i.get("url").or(Some(i)))
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("messages", "image_url needs a url"))?;
                    image_block(url)
                }
                other => Err(bad("messages", format!("unsupported content part type {other:?}"))),
            })
            .collect(),
        _ => Err(bad("messages", "message content must be a string or an array of parts")),
    }
}

/// Appends blocks to the last message if it has the same role (Anthropic wants roles to
/// alternate), else starts a new message.
fn push(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last["role"] == role
        && let Some(existing) = last["content"].as_array_mut()
    {
        existing.extend(blocks);
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

/// The Anthropic Messages request for an OpenAI chat-completions request.
pub fn translate_request(request: &Map<String, Value>, upstream_model: &str) -> Result<Value, TranslateError> {
    let messages_in = request.get("messages").and_then(Value::as_array).ok_or_else(|| bad("messages", "messages must be an array"))?;
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for m in messages_in {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| bad("messages", "every message needs a role"))?;
        let content = m.get("content").cloned().unwrap_or(Value::Null);
        match role {
            "system" | "developer" => system.push(text_of(&content)),
            "user" => push(&mut messages, "user", content_blocks(&content)?),
            "assistant" => {
                let mut blocks = content_blocks(&content)?;
                for call in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let function = call.get("function").ok_or_else(|| bad("messages", "a tool call needs a function"))?;
                    let arguments = function.get("arguments").and_then(Value::as_str).unwrap_or("{}");
                    let input: Value = serde_json::from_str(if arguments.trim().is_empty() { "{}" } else { arguments })
                        .map_err(|_| bad("messages", "tool call arguments must be JSON"))?;
                    blocks.push(json!({"type": "tool_use", "id": call.get("id").and_then(Value::as_str).unwrap_or_default(), "name": function.get("name").and_then(Value::as_str).unwrap_or_default(), "input": input}));
                }
                push(&mut messages, "assistant", blocks);
            }
            "tool" => {
                let id =
                    m.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| bad("messages", "a tool message needs tool_call_id"))?;
                push(&mut messages, "user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": text_of(&content)})]);
            }
            other => return Err(bad("messages", format!("unsupported role {other:?}"))),
        }
    }
    if messages.is_empty() {
        return Err(bad("messages", "at least one user message is required"));
    }
    let max_tokens =
        request.get("max_completion_tokens").or_else(|| request.get("max_tokens")).and_then(Value::as_u64).unwrap_or(DEFAULT_MAX_TOKENS);
    let mut out = json!({"model": upstream_model, "messages": messages, "max_tokens": max_tokens});
    if !system.is_empty() {
        out["system"] = json!(system.join("\n\n"));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = request.get(key).filter(|v| v.is_number()) {
            out[key] = v.clone();
        }
    }
    match request.get("stop") {
        Some(Value::String(s)) => out["stop_sequences"] = json!([s]),
        Some(Value::Array(list)) => out["stop_sequences"] = json!(list),
        _ => {}
    }
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        out["stream"] = json!(true);
    }
    if let Some(tools) = request.get("tools").and_then(Value::as_array) {
        let translated: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                json!({
                    "name": f.get("name").cloned().unwrap_or(json!("")),
                    "description": f.get("description").cloned().unwrap_or(json!("")),
                    "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object", "properties": {}})),
                })
            })
            .collect();
        if !translated.is_empty() {
            out["tools"] = json!(translated);
        }
    }
    match request.get("tool_choice") {
        Some(Value::String(s)) if s == "auto" => out["tool_choice"] = json!({"type": "auto"}),
        Some(Value::String(s)) if s == "required" => out["tool_choice"] = json!({"type": "any"}),
        Some(Value::String(s)) if s == "none" => out["tool_choice"] = json!({"type": "none"}),
        Some(Value::Object(o)) => {
            if let Some(name) = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
                out["tool_choice"] = json!({"type": "tool", "name": name});
            }
        }
        _ => {}
    }
    if let Some(user) = request.get("user").and_then(Value::as_str) {
        out["metadata"] = json!({"user_id": user});
    }
    Ok(out)
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> Option<&'static str> {
    stop_reason.map(|r| match r {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    })
}

/// The OpenAI chat completion for an Anthropic Messages response; `None` if the upstream
/// body is not a Messages response.
pub fn translate_response(body: &Value, public_model: &str, created: i64) -> Option<(Value, Usage)> {
    let content = body.get("content")?.as_array()?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(json!("")),
                "type": "function",
                "function": {"name": block.get("name").cloned().unwrap_or(json!("")), "arguments": block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into())},
            })),
            _ => {}
        }
    }
    let usage = Usage {
        prompt_tokens: body.pointer("/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0),
        completion_tokens: body.pointer("/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0),
    };
    let mut message =
        json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
    }
    let id = body.get("id").and_then(Value::as_str).unwrap_or("msg");
    Some((
        json!({
            "id": format!("chatcmpl-{id}"),
            "object": "chat.completion",
            "created": created,
            "model": public_model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(body.get("stop_reason").and_then(Value::as_str)), "logprobs": null}],
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.prompt_tokens.saturating_add(usage.completion_tokens)},
        }),
        usage,
    ))
}

/// What one Anthropic stream event becomes.
#[derive(Debug, PartialEq)]
pub enum StreamOutput {
    /// A `chat.completion.chunk` to send as `data:`.
    Chunk(Value),
    /// A keep-alive (Anthropic's `ping`).
    KeepAlive,
    /// The upstream reported an error: send it and end the stream.
    Error(Value),
    /// The stream is complete: send the final chunks, then `[DONE]`.
    Done,
}

/// Turns Anthropic stream events into OpenAI chunks.
#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    usage: Usage,
    /// Anthropic content-block index → OpenAI tool-call index.
    tool_indexes: Vec<(u64, usize)>,
    finished: bool,
}

impl StreamTranslator {
    pub fn new(public_model: &str, created: i64, include_usage: bool) -> Self {
        Self {
            id: "chatcmpl-stream".into(),
            model: public_model.into(),
            created,
            include_usage,
            usage: Usage::default(),
            tool_indexes: Vec::new(),
            finished: false,
        }
    }

    /// Tokens counted so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
    }

    /// The usage chunk (`stream_options.include_usage`), if asked for.
    pub fn usage_chunk(&self) -> Option<Value> {
        self.include_usage.then(|| {
            let u = self.usage;
            json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": [],
                "usage": {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.prompt_tokens.saturating_add(u.completion_tokens)}})
        })
    }

    /// Translates one event (`event:` name, `data:` JSON text).
    pub fn translate(&mut self, event: Option<&str>, data: &str) -> Vec<StreamOutput> {
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return vec![StreamOutput::Error(
                json!({"error": {"message": "The model provider sent an unreadable stream event.", "type": "api_error", "code": "upstream_error", "param": null}}),
            )];
        };
        let kind = event.map(str::to_owned).or_else(|| value.get("type").and_then(Value::as_str).map(str::to_owned)).unwrap_or_default();
        match kind.as_str() {
            "message_start" => {
                if let Some(id) = value.pointer("/message/id").and_then(Value::as_str) {
                    self.id = format!("chatcmpl-{id}");
                }
                self.usage.prompt_tokens = value.pointer("/message/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0);
                self.usage.completion_tokens = value.pointer("/message/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0);
                vec![StreamOutput::Chunk(self.chunk(json!({"role": "assistant", "content": ""}), None))]
            }
            "content_block_start" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = value.get("content_block").cloned().unwrap_or(Value::Null);
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let tool_index = self.tool_indexes.len();
                    self.tool_indexes.push((index, tool_index));
                    let call = json!({"index": tool_index, "id": block.get("id").cloned().unwrap_or(json!("")), "type": "function",
                        "function": {"name": block.get("name").cloned().unwrap_or(json!("")), "arguments": ""}});
                    return vec![StreamOutput::Chunk(self.chunk(json!({"tool_calls": [call]}), None))];
                }
                vec![]
            }
            "content_block_delta" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                match value.pointer("/delta/type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = value.pointer("/delta/text").and_then(Value::as_str).unwrap_or_default();
                        vec![StreamOutput::Chunk(self.chunk(json!({"content": text}), None))]
                    }
                    Some("input_json_delta") => {
                        let Some(&(_, tool_index)) = self.tool_indexes.iter().find(|(i, _)| *i == index) else { return vec![] };
                        let partial = value.pointer("/delta/partial_json").and_then(Value::as_str).unwrap_or_default();
                        vec![StreamOutput::Chunk(
                            self.chunk(json!({"tool_calls": [{"index": tool_index, "function": {"arguments": partial}}]}), None),
                        )]
                    }
                    _ => vec![],
                }
            }
            "message_delta" => {
                if let Some(out) = value.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.completion_tokens = out;
                }
                if let Some(input) = value.pointer("/usage/input_tokens").and_then(Value::as_u64) {
                    self.usage.prompt_tokens = input;
                }
                let reason = finish_reason(value.pointer("/delta/stop_reason").and_then(Value::as_str));
                match reason {
                    Some(reason) => vec![StreamOutput::Chunk(self.chunk(json!({}), Some(reason)))],
                    None => vec![],
                }
            }
            "message_stop" => {
                self.finished = true;
                vec![StreamOutput::Done]
            }
            "ping" => vec![StreamOutput::KeepAlive],
            "error" => {
                let message = value.pointer("/error/message").and_then(Value::as_str).unwrap_or("The model provider reported an error.");
                vec![StreamOutput::Error(
                    json!({"error": {"message": message, "type": "api_error", "code": "upstream_error", "param": null}}),
                )]
            }
            _ => vec![],
        }
    }

    /// Whether `message_stop` was seen.
    pub fn finished(&self) -> bool {
        self.finished
    }
}

/// Anthropic's Messages API.
pub struct Anthropic;

/// The API version a client asks for; passed on from `/v1/messages`, ours otherwise.
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");
/// The beta features a client asks for; passed on from `/v1/messages`.
pub const BETA_HEADER: HeaderName = HeaderName::from_static("anthropic-beta");

impl ProviderApi for Anthropic {
    fn auth_headers(&self, api_key: Option<&str>) -> Result<HeaderMap, NotAHeaderValue> {
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key {
            headers.insert(HeaderName::from_static("x-api-key"), sensitive(key)?);
        }
        Ok(headers)
    }

    fn request(&self, upstream_model: &str, call: &Call<'_>) -> Result<UpstreamRequest, Unservable> {
        let mut headers = HeaderMap::new();
        let body = match call.api {
            ClientApi::ChatCompletions => {
                headers.insert(VERSION_HEADER, HeaderValue::from_static(ANTHROPIC_VERSION));
                Bytes::from(translate_request(call.request, upstream_model).map_err(Unservable::Invalid)?.to_string())
            }
            ClientApi::Messages => {
                // The client's own API version and betas go along; the rest is ours to set.
                let version = call.forward.get(&VERSION_HEADER).cloned().unwrap_or(HeaderValue::from_static(ANTHROPIC_VERSION));
                headers.insert(VERSION_HEADER, version);
                for beta in call.forward.get_all(&BETA_HEADER) {
                    headers.append(BETA_HEADER, beta.clone());
                }
                if upstream_model == call.model {
                    call.raw.clone()
                } else {
                    let mut request = call.request.clone();
                    request.insert("model".into(), Value::String(upstream_model.to_owned()));
                    Bytes::from(serde_json::to_vec(&request).expect("a JSON map serialises"))
                }
            }
        };
        Ok(UpstreamRequest { headers, body })
    }

    fn path(&self) -> &'static str {
        "v1/messages"
    }

    fn answer(&self, call: &Call<'_>, raw: Bytes) -> Option<(Bytes, Usage)> {
        let body = &json_object(&raw)?;
        match call.api {
            ClientApi::ChatCompletions => {
                let (translated, usage) = translate_response(body, call.model, chrono::Utc::now().timestamp())?;
                Some((Bytes::from(translated.to_string()), usage))
            }
            ClientApi::Messages => {
                body.get("content")?.as_array()?;
                Some((raw, messages_usage(body)))
            }
        }
    }

    fn stream(&self, call: &Call<'_>) -> Box<dyn EventRelay> {
        match call.api {
            ClientApi::ChatCompletions => {
                Box::new(ToChat(StreamTranslator::new(call.model, chrono::Utc::now().timestamp(), call.include_usage)))
            }
            ClientApi::Messages => Box::new(PassThrough { usage: Usage::default(), stopped: false }),
        }
    }
}

/// Tokens of a Messages response (`usage.input_tokens`, `usage.output_tokens`).
fn messages_usage(body: &Value) -> Usage {
    Usage {
        prompt_tokens: body.pointer("/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0),
        completion_tokens: body.pointer("/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0),
    }
}

/// An Anthropic-shaped error event (`/v1/messages` streams).
pub fn messages_error_event(message: &str, kind: &str) -> Bytes {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    sse::frame(Some("error"), &body.to_string())
}

/// Anthropic events translated into chat-completion chunks.
struct ToChat(StreamTranslator);

impl EventRelay for ToChat {
    fn relay(&mut self, event: Option<&str>, data: &str, out: &mut BytesMut) -> Flow {
        for output in self.0.translate(event, data) {
            match output {
                StreamOutput::Chunk(chunk) => sse::frame_into(out, None, &chunk.to_string()),
                StreamOutput::KeepAlive => sse::comment_into(out, "ping"),
                StreamOutput::Error(error) => {
                    sse::frame_into(out, None, &error.to_string());
                    return Flow::Failed;
                }
                StreamOutput::Done => {
                    if let Some(usage) = self.0.usage_chunk() {
                        sse::frame_into(out, None, &usage.to_string());
                    }
                    sse::frame_into(out, None, "[DONE]");
                    return Flow::Done;
                }
            }
        }
        Flow::More
    }

    fn complete(&self) -> bool {
        self.0.finished()
    }

    fn usage(&self) -> Usage {
        self.0.usage()
    }

    fn error_event(&self, message: &str, code: &str) -> Bytes {
        chat_error_event(message, code)
    }
}

/// Anthropic events relayed as they arrive (re-framed, unchanged), counting usage.
struct PassThrough {
    usage: Usage,
    stopped: bool,
}

impl EventRelay for PassThrough {
    fn relay(&mut self, event: Option<&str>, data: &str, out: &mut BytesMut) -> Flow {
        sse::frame_into(out, event, data);
        let kind = event.unwrap_or_default();
        match kind {
            "message_start" | "message_delta" => {
                if let Ok(value) = serde_json::from_str::<Value>(data) {
                    let usage = if kind == "message_start" { value.pointer("/message/usage") } else { value.get("usage") };
                    if let Some(usage) = usage {
                        if let Some(input) = usage.get("input_tokens").and_then(Value::as_u64) {
                            self.usage.prompt_tokens = input;
                        }
                        if let Some(output) = usage.get("output_tokens").and_then(Value::as_u64) {
                            self.usage.completion_tokens = output;
                        }
                    }
                }
                Flow::More
            }
            "message_stop" => {
                self.stopped = true;
                Flow::Done
            }
            "error" => Flow::Failed,
            _ => Flow::More,
        }
    }

    fn complete(&self) -> bool {
        self.stopped
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn error_event(&self, message: &str, _code: &str) -> Bytes {
        messages_error_event(message, "api_error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn request_translation_covers_system_roles_tools_images_and_options() {
        let request = req(json!({
            "model": "claude-4-sonnet",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Answer in English."},
                {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "A cat."},
                {"role": "user", "content": "Thanks"},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}
            ],
            "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "stop": "END", "stream": true,
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
            "tool_choice": "required", "user": "u-1"
        }));
        let out = translate_request(&request, "claude-sonnet-4-20250514").expect("translates");
        assert_eq!(out["model"], "claude-sonnet-4-20250514");
        assert_eq!(out["system"], "Be brief.\n\nAnswer in English.");
        assert_eq!(out["max_tokens"], 100);
        assert_eq!(out["temperature"], 0.2);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["stream"], true);
        assert_eq!(out["tool_choice"], json!({"type": "any"}));
        assert_eq!(out["tools"][0]["input_schema"]["properties"]["q"]["type"], "string");
        assert_eq!(out["metadata"]["user_id"], "u-1");
        let messages = out["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 3, "the tool result and the next user turns merge into one user message");
        assert_eq!(messages[0]["content"][1]["source"], json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}));
        assert_eq!(messages[1]["content"][0], json!({"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "cat"}}));
        assert_eq!(messages[2]["content"][0], json!({"type": "tool_result", "tool_use_id": "call_1", "content": "A cat."}));
        assert_eq!(messages[2]["content"][1], json!({"type": "text", "text": "Thanks"}));
        assert_eq!(messages[2]["content"][2]["source"], json!({"type": "url", "url": "https://example.com/cat.png"}));
    }

    #[test]
    fn defaults_and_rejections() {
        let out = translate_request(&req(json!({"messages": [{"role": "user", "content": "hi"}]})), "m").expect("ok");
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        assert!(out.get("stream").is_none());
        assert!(translate_request(&req(json!({"messages": "hi"})), "m").is_err());
        assert!(translate_request(&req(json!({"messages": [{"role": "wizard", "content": "hi"}]})), "m").is_err());
        assert!(translate_request(&req(json!({"messages": [{"role": "system", "content": "only system"}]})), "m").is_err());
        assert!(
            translate_request(
                &req(
                    json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]})
                ),
                "m"
            )
            .is_err()
        );
        let choice = translate_request(
            &req(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function", "function": {"name": "f"}}})),
            "m",
        )
        .expect("ok");
        assert_eq!(choice["tool_choice"], json!({"type": "tool", "name": "f"}));
    }

    #[test]
    fn responses_translate_with_tool_calls_usage_and_finish_reason() {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "stop_reason": "tool_use",
            "content": [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}}],
            "usage": {"input_tokens": 12, "output_tokens": 7}});
        let (out, usage) = translate_response(&body, "claude-4-sonnet", 1700000000).expect("translates");
        assert_eq!(usage, Usage { prompt_tokens: 12, completion_tokens: 7 });
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["model"], "claude-4-sonnet");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["choices"][0]["message"]["content"], "Let me check.");
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"q\":\"cat\"}");
        assert_eq!(out["usage"]["total_tokens"], 19);
        assert_eq!(finish_reason(Some("end_turn")), Some("stop"));
        assert_eq!(finish_reason(Some("max_tokens")), Some("length"));
        assert!(translate_response(&json!({"unexpected": true}), "m", 0).is_none());
    }

    #[test]
    fn stream_events_become_chunks() {
        let mut t = StreamTranslator::new("claude-4-sonnet", 1, true);
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_9", "usage": {"input_tokens": 5, "output_tokens": 1}}}),
            ),
            ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            ("ping", json!({"type": "ping"})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}})),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"cat\"}"}}),
            ),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
            ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}})),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        let out: Vec<StreamOutput> = events.iter().flat_map(|(e, d)| t.translate(Some(e), &d.to_string())).collect();
        let chunks: Vec<&Value> = out.iter().filter_map(|o| if let StreamOutput::Chunk(c) = o { Some(c) } else { None }).collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["id"], "chatcmpl-msg_9");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hel");
        assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "lo");
        assert_eq!(chunks[3]["choices"][0]["delta"]["tool_calls"][0]["id"], "toolu_2");
        assert_eq!(chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "lookup");
        let args: String = chunks[4..6]
            .iter()
            .map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().expect("str").to_owned())
            .collect();
        assert_eq!(args, "{\"q\":\"cat\"}");
        assert_eq!(chunks[6]["choices"][0]["finish_reason"], "tool_calls");
        assert!(out.contains(&StreamOutput::KeepAlive));
        assert_eq!(out.last(), Some(&StreamOutput::Done));
        assert!(t.finished());
        assert_eq!(t.usage(), Usage { prompt_tokens: 5, completion_tokens: 9 });
        assert_eq!(t.usage_chunk().expect("asked for")["usage"]["total_tokens"], 14);
    }

    #[test]
    fn stream_errors_and_garbage_end_with_an_error_event() {
        let mut t = StreamTranslator::new("m", 1, false);
        assert!(matches!(
            t.translate(Some("error"), r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)[0],
            StreamOutput::Error(_)
        ));
        assert!(matches!(t.translate(None, "not json")[0], StreamOutput::Error(_)));
        assert!(t.usage_chunk().is_none());
    }

    #[test]
    fn huge_token_counts_saturate_instead_of_overflowing() {
        // Found by fuzzing: totals of upstream counts near u64::MAX.
        let body: Value =
            serde_json::from_str(r#"{"content":[],"usage":{"input_tokens":18446744073709551615,"output_tokens":1}}"#).expect("json");
        let (translated, _) = translate_response(&body, "m", 0).expect("translated");
        assert_eq!(translated["usage"]["total_tokens"], u64::MAX);
        let mut t = StreamTranslator::new("m", 0, true);
        t.translate(Some("message_start"), r#"{"type":"message_start","message":{"usage":{"input_tokens":18446744073709551615}}}"#);
        t.translate(Some("message_delta"), r#"{"type":"message_delta","usage":{"output_tokens":1}}"#);
        assert_eq!(t.usage_chunk().expect("usage")["usage"]["total_tokens"], u64::MAX);
    }
}
