//! An incremental Server-Sent Events parser (WHATWG rules: `\n`, `\r\n` or `\r` line ends,
//! `data:` lines joined by `\n`, `:` comments, a blank line dispatches) and the writer that
//! re-frames events. Bounded: an event larger than the limit is an error, not a memory leak.

use bytes::{Bytes, BytesMut};

/// One parsed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseItem {
    /// An event (`event:` name if any, `data:` lines joined).
    Event { event: Option<String>, data: String },
    /// A comment line (keep-alive), without the leading `:`.
    Comment(String),
}

/// The stream broke the size limit.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("an SSE event exceeded {0} bytes")]
pub struct SseTooLarge(pub usize);

/// Feed it bytes as they arrive; it returns whole items.
#[derive(Debug)]
pub struct SseParser {
    buffer: BytesMut,
    event: Option<String>,
    data: String,
    has_data: bool,
    pending: usize,
    max_event_bytes: usize,
    skip_lf: bool,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self { buffer: BytesMut::new(), event: None, data: String::new(), has_data: false, pending: 0, max_event_bytes, skip_lf: false }
    }

    /// Parses what `chunk` completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseItem>, SseTooLarge> {
        self.buffer.extend_from_slice(chunk);
        let mut items = Vec::new();
        loop {
            if self.skip_lf && !self.buffer.is_empty() {
                if self.buffer[0] == b'\n' {
                    let _ = self.buffer.split_to(1);
                }
                self.skip_lf = false;
            }
            let Some(end) = self.buffer.iter().position(|b| *b == b'\n' || *b == b'\r') else { break };
            let line = self.buffer.split_to(end);
            let terminator = self.buffer.split_to(1)[0];
            if terminator == b'\r' {
                self.skip_lf = true;
            }
            self.pending += line.len() + 1;
            if self.pending > self.max_event_bytes {
                return Err(SseTooLarge(self.max_event_bytes));
            }
            self.line(&String::from_utf8_lossy(&line), &mut items);
        }
        if self.pending + self.buffer.len() > self.max_event_bytes {
            return Err(SseTooLarge(self.max_event_bytes));
        }
        Ok(items)
    }

    /// Whether bytes of an unfinished event are held back.
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty() || self.has_data || self.event.is_some()
    }

    fn line(&mut self, line: &str, items: &mut Vec<SseItem>) {
        if line.is_empty() {
            if self.has_data {
                items.push(SseItem::Event { event: self.event.take(), data: std::mem::take(&mut self.data) });
            }
            self.event = None;
            self.has_data = false;
            self.pending = 0;
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            items.push(SseItem::Comment(comment.strip_prefix(' ').unwrap_or(comment).to_owned()));
            self.pending = self.pending.saturating_sub(line.len() + 1);
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields are not relayed
        }
    }
}

/// Writes an event as `event: …\n` + `data: …\n` per line + `\n`.
pub fn frame(event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 16);
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Writes a comment line (keep-alive).
pub fn comment(text: &str) -> Bytes {
    Bytes::from(format!(": {}\n\n", text.replace(['\n', '\r'], " ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseItem> {
        let mut p = SseParser::new(1 << 20);
        chunks.iter().flat_map(|c| p.feed(c).expect("within limit")).collect()
    }

    fn ev(data: &str) -> SseItem {
        SseItem::Event { event: None, data: data.into() }
    }

    #[test]
    fn events_split_anywhere_reassemble() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n: keep-alive\n\ndata: [DONE]\n\n";
        let whole = parse_all(&[stream]);
        assert_eq!(whole, vec![ev("{\"a\":1}"), ev("{\"b\":2}"), SseItem::Comment("keep-alive".into()), ev("[DONE]")]);
        for split in 1..stream.len() {
            assert_eq!(parse_all(&[&stream[..split], &stream[split..]]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole);
    }

    #[test]
    fn line_endings_multi_line_data_and_named_events() {
        assert_eq!(parse_all(&[b"data: a\r\ndata: b\r\n\r\n"]), vec![ev("a\nb")]);
        assert_eq!(parse_all(&[b"data: a\rdata: b\r\r"]), vec![ev("a\nb")]);
        assert_eq!(parse_all(&[b"data: a\r", b"\n\r\n"]), vec![ev("a")]);
        assert_eq!(
            parse_all(&[b"event: message_start\ndata: {}\n\n"]),
            vec![SseItem::Event { event: Some("message_start".into()), data: "{}".into() }]
        );
        assert_eq!(parse_all(&[b"data:no-space\n\n"]), vec![ev("no-space")]);
        assert_eq!(parse_all(&[b"id: 7\nretry: 10\n\n"]), vec![], "no data, no event");
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut p = SseParser::new(64);
        assert!(p.feed(&[b'x'; 65]).is_err());
        let mut p = SseParser::new(64);
        let line = format!("data: {}\n", "y".repeat(40));
        assert!(p.feed(line.as_bytes()).is_ok());
        assert!(p.feed(line.as_bytes()).is_err(), "the event as a whole is bounded");
    }

    #[test]
    fn frames_round_trip() {
        let framed = frame(Some("x"), "line 1\nline 2");
        assert_eq!(&framed[..], b"event: x\ndata: line 1\ndata: line 2\n\n");
        assert_eq!(parse_all(&[&framed]), vec![SseItem::Event { event: Some("x".into()), data: "line 1\nline 2".into() }]);
        assert_eq!(&comment("ping\ninjected")[..], b": ping injected\n\n");
    }
}
