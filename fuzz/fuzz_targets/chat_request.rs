//! `POST /v1/chat/completions` bodies: the request validation (`parse_request`), then, for
//! accepted requests, the translation into an Anthropic Messages request.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use workjet::{
    domain::providers::anthropic::{DEFAULT_MAX_TOKENS, translate_request},
    server::v1::chat::parse_request,
};

const UPSTREAM_MODEL: &str = "claude-x";

/// Serialised JSON must parse back. Nesting deeper than serde_json's own limit (128) is
/// possible when a tool call's arguments are nested inside the message structure: that is
/// still valid JSON, only too deep for the default parser, so it is not a failure here.
fn assert_valid_json(value: &Value) {
    let text = value.to_string();
    if let Err(e) = serde_json::from_str::<Value>(&text) {
        assert!(e.to_string().contains("recursion limit exceeded"), "serialised JSON does not parse ({e}): {text}");
    }
}

fn check_translation(request: &Map<String, Value>) {
    let out = match translate_request(request, UPSTREAM_MODEL) {
        Ok(out) => out,
        Err(e) => {
            assert!(!e.message.is_empty());
            assert_eq!(e.param, "messages", "unexpected param for: {}", e.message);
            return;
        }
    };
    assert_valid_json(&out);
    let out = out.as_object().expect("the translation is an object");
    assert_eq!(out["model"], UPSTREAM_MODEL);
    let max_tokens = out["max_tokens"].as_u64().expect("max_tokens is a number");
    let asked = request.get("max_completion_tokens").or_else(|| request.get("max_tokens")).and_then(Value::as_u64);
    assert_eq!(max_tokens, asked.unwrap_or(DEFAULT_MAX_TOKENS));
    if let Some(system) = out.get("system") {
        assert!(system.is_string(), "system is not a string");
    }
    if let Some(stream) = out.get("stream") {
        assert_eq!(stream, &Value::Bool(true));
    }
    // Anthropic wants non-empty messages whose roles alternate between user and assistant.
    let messages = out["messages"].as_array().expect("messages is an array");
    assert!(!messages.is_empty(), "no messages");
    let mut previous_role = None;
    for message in messages {
        let role = message["role"].as_str().expect("a role");
        assert!(role == "user" || role == "assistant", "role {role:?}");
        assert_ne!(previous_role, Some(role), "two {role} messages in a row");
        previous_role = Some(role);
        let blocks = message["content"].as_array().expect("content is an array of blocks");
        assert!(!blocks.is_empty(), "a message without content blocks");
        for block in blocks {
            let kind = block["type"].as_str().expect("a block type");
            assert!(matches!(kind, "text" | "image" | "tool_use" | "tool_result"), "block type {kind:?}");
        }
    }
    if let Some(tools) = out.get("tools") {
        assert!(tools.as_array().is_some_and(|t| !t.is_empty()), "tools present but empty");
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(request) => {
            assert!(request.get("model").and_then(Value::as_str).is_some_and(|m| !m.is_empty()), "accepted without a model");
            assert!(request.get("messages").is_some_and(Value::is_array), "accepted without messages");
            assert!(request.get("stream").is_none_or(|s| s.is_boolean() || s.is_null()), "accepted a non-boolean stream");
            // The duplicate-refusing parse builds exactly the document serde_json's own would.
            let plain = serde_json::from_slice::<Value>(data).expect("accepted, so it is JSON");
            assert_eq!(plain, Value::Object(request.clone()), "the accepted document differs from serde_json's");
            check_translation(&request);
        }
        Err(error) => assert_eq!(error.status(), 400, "a refused body is a 400"),
    }
});
