//! An upstream Anthropic response: the input as an SSE stream, cut into chunks of sizes
//! derived from the input, through `SseParser` and `StreamTranslator` as the relay in
//! src/domain/providers/gateway.rs does it; and the input (and every event's data) as a non-streamed
//! Messages response through `translate_response`.
//!
//! Checked: no panic; chunking never changes what is parsed (nor whether the size limit
//! trips); every JSON output serialises to JSON that parses back; re-framed events parse
//! back to themselves; the stream's bookkeeping (usage, finished) stays consistent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use workjet::domain::providers::{
    anthropic::{StreamOutput, StreamTranslator, translate_response},
    sse::{self, SseItem, SseParser},
};

/// The relay's limit (`MAX_EVENT_BYTES` in gateway.rs): far above any fuzz input.
const RELAY_MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
const MODEL: &str = "m";

/// A small deterministic generator for chunk sizes, seeded from the input.
struct Chunks(u64);

impl Chunks {
    fn new(data: &[u8]) -> Self {
        // FNV-1a of the input.
        Self(data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Splits `data` into pieces of 0 to 64 bytes (empty chunks happen on the wire too).
    fn split<'a>(&mut self, mut data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        while !data.is_empty() {
            let (piece, rest) = data.split_at(((self.next() % 65) as usize).min(data.len()));
            pieces.push(piece);
            data = rest;
        }
        pieces
    }
}

/// Feeds the pieces in order; stops at the first error, as the relay does.
fn parse(max: usize, pieces: &[&[u8]]) -> (Vec<SseItem>, bool) {
    let mut parser = SseParser::new(max);
    let mut items = Vec::new();
    for piece in pieces {
        match parser.feed(piece) {
            Ok(more) => items.extend(more),
            Err(_) => return (items, true),
        }
    }
    (items, false)
}

fn assert_valid_json(value: &Value) -> String {
    let text = value.to_string();
    if let Err(e) = serde_json::from_str::<Value>(&text) {
        // Deeper than serde_json's parser accepts (128) is still valid JSON.
        assert!(e.to_string().contains("recursion limit exceeded"), "serialised JSON does not parse ({e}): {text}");
    }
    text
}

/// What the client receives must parse back as exactly what was sent.
fn assert_frame_round_trips(event: Option<&str>, data: &str) {
    let framed = sse::frame(event, data);
    let mut parser = SseParser::new(RELAY_MAX_EVENT_BYTES);
    let items = parser.feed(&framed).expect("within the limit");
    assert_eq!(items, vec![SseItem::Event { event: event.map(str::to_owned), data: data.to_owned() }], "frame of {data:?}");
    assert!(!parser.has_partial());
}

fn check_chunk(chunk: &Value) {
    let text = assert_valid_json(chunk);
    assert_eq!(chunk["object"], "chat.completion.chunk");
    assert_eq!(chunk["model"], MODEL);
    assert!(chunk["id"].as_str().is_some_and(|id| id.starts_with("chatcmpl-")));
    assert!(chunk["choices"].is_array());
    assert_frame_round_trips(None, &text);
}

fn check_response(body: &Value) {
    let Some((response, usage)) = translate_response(body, MODEL, 0) else {
        assert!(!body.get("content").is_some_and(Value::is_array), "a body with a content array was not translated");
        return;
    };
    assert_valid_json(&response);
    assert_eq!(response["object"], "chat.completion");
    assert_eq!(response["model"], MODEL);
    let message = &response["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    assert!(message["content"].is_string() || (message["content"].is_null() && message["tool_calls"].is_array()));
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        // Arguments are a JSON text, as OpenAI clients expect.
        let arguments = call["function"]["arguments"].as_str().expect("arguments are a string");
        if let Err(e) = serde_json::from_str::<Value>(arguments) {
            assert!(e.to_string().contains("recursion limit exceeded"), "tool call arguments are not JSON: {arguments}");
        }
    }
    assert_eq!(response["usage"]["prompt_tokens"], usage.prompt_tokens);
    assert_eq!(response["usage"]["completion_tokens"], usage.completion_tokens);
}

fuzz_target!(|data: &[u8]| {
    let mut chunks = Chunks::new(data);
    let pieces = chunks.split(data);

    // Chunking changes nothing, with the relay's limit and with a small one.
    let (items, too_large) = parse(RELAY_MAX_EVENT_BYTES, &pieces);
    assert!(!too_large, "a {}-byte input broke the relay's limit", data.len());
    assert_eq!(items, parse(RELAY_MAX_EVENT_BYTES, &[data]).0, "chunking changed the parsed events");
    let small = 16 + (chunks.next() % 256) as usize;
    let (whole, whole_too_large) = parse(small, &[data]);
    let (chunked, chunked_too_large) = parse(small, &pieces);
    assert_eq!(whole_too_large, chunked_too_large, "the limit of {small} bytes trips depending on chunking");
    if !whole_too_large {
        assert_eq!(whole, chunked, "chunking changed the parsed events under a {small}-byte limit");
    }

    // The relay: every event through the translator until the stream ends.
    let mut translator = StreamTranslator::new(MODEL, 0, true);
    let mut ended = false;
    for item in items {
        let (event, data) = match item {
            SseItem::Comment(text) => {
                assert!(!text.contains(['\n', '\r']));
                let comment = sse::comment(&text);
                let mut parser = SseParser::new(RELAY_MAX_EVENT_BYTES);
                assert_eq!(parser.feed(&comment).expect("within the limit"), vec![SseItem::Comment(text)]);
                continue;
            }
            SseItem::Event { event, data } => (event, data),
        };
        if ended {
            break;
        }
        let value = serde_json::from_str::<Value>(&data).ok();
        if let Some(value) = &value {
            check_response(value);
            if let Some(message) = value.get("message") {
                check_response(message);
            }
        }
        // The event's kind: its `event:` name, else the data's `type`.
        let kind = event.clone().or_else(|| value.as_ref()?.get("type")?.as_str().map(str::to_owned));
        let before = translator.usage();
        for output in translator.translate(event.as_deref(), &data) {
            match output {
                StreamOutput::Chunk(chunk) => check_chunk(&chunk),
                StreamOutput::KeepAlive => {}
                StreamOutput::Error(error) => {
                    assert_valid_json(&error);
                    assert!(error["error"]["message"].is_string());
                    ended = true;
                }
                StreamOutput::Done => {
                    assert!(translator.finished());
                    let usage = translator.usage_chunk().expect("include_usage was asked for");
                    check_chunk(&usage);
                    let u = translator.usage();
                    assert_eq!(usage["usage"]["prompt_tokens"], u.prompt_tokens);
                    assert_eq!(usage["usage"]["completion_tokens"], u.completion_tokens);
                    ended = true;
                }
            }
        }
        if !matches!(kind.as_deref(), Some("message_start" | "message_delta")) {
            assert_eq!(translator.usage(), before, "usage changed on a {kind:?} event");
        }
    }

    // The input as a whole, as a non-streamed response body.
    if let Ok(body) = serde_json::from_slice::<Value>(data) {
        check_response(&body);
    }
});
