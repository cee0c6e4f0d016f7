//! An incremental Server-Sent Events parser (WHATWG rules: `\n`, `\r\n` or `\r` line ends,
//! `data:` lines joined by `\n`, `:` comments, a blank line dispatches) and the writer that
//! re-frames events. Bounded: an event larger than the limit is an error, not a memory leak.

use bytes::{Buf as _, Bytes, BytesMut};

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
        let mut items = Vec::new();
        self.feed_into(chunk, &mut items)?;
        Ok(items)
    }

    /// Parses what `chunk` completes, appending the items to `items`.
    pub fn feed_into(&mut self, chunk: &[u8], items: &mut Vec<SseItem>) -> Result<(), SseTooLarge> {
        self.buffer.extend_from_slice(chunk);
        let buffer = std::mem::take(&mut self.buffer);
        let parsed = self.lines(&buffer, items);
        self.buffer = buffer;
        self.buffer.advance(parsed?);
        if self.pending + self.buffer.len() > self.max_event_bytes {
            return Err(SseTooLarge(self.max_event_bytes));
        }
        Ok(())
    }

    /// Parses the whole lines at the start of `buffer`; returns how many bytes they took.
    fn lines(&mut self, buffer: &[u8], items: &mut Vec<SseItem>) -> Result<usize, SseTooLarge> {
        let mut at = 0;
        loop {
            if self.skip_lf && at < buffer.len() {
                if buffer[at] == b'\n' {
                    at += 1;
                }
                self.skip_lf = false;
            }
            let Some(end) = memchr::memchr2(b'\n', b'\r', &buffer[at..]) else { return Ok(at) };
            let line = &buffer[at..at + end];
            self.skip_lf = buffer[at + end] == b'\r';
            at += end + 1;
            self.pending += line.len() + 1;
            if self.pending > self.max_event_bytes {
                return Err(SseTooLarge(self.max_event_bytes));
            }
            match std::str::from_utf8(line) {
                Ok(line) => self.line(line, items),
                Err(_) => self.line(&String::from_utf8_lossy(line), items),
            }
        }
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

/// An event as `event: …\n` + `data: …\n` per line + `\n`.
pub fn frame(event: Option<&str>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    frame_into(&mut out, event, data);
    out.freeze()
}

/// Appends [`frame`]`(event, data)` to `out`.
pub fn frame_into(out: &mut BytesMut, event: Option<&str>, data: &str) {
    out.reserve(data.len() + 16 + event.map_or(0, |e| e.len() + 8));
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.extend_from_slice(b"\n");
    }
    let mut rest = data.as_bytes();
    loop {
        let end = memchr::memchr(b'\n', rest);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&rest[..end.unwrap_or(rest.len())]);
        out.extend_from_slice(b"\n");
        match end {
            Some(end) => rest = &rest[end + 1..],
            None => break,
        }
    }
    out.extend_from_slice(b"\n");
}

/// A comment line (keep-alive).
pub fn comment(text: &str) -> Bytes {
    let mut out = BytesMut::new();
    comment_into(&mut out, text);
    out.freeze()
}

/// Appends [`comment`]`(text)` to `out`.
pub fn comment_into(out: &mut BytesMut, text: &str) {
    out.extend_from_slice(b": ");
    out.extend_from_slice(text.replace(['\n', '\r'], " ").as_bytes());
    out.extend_from_slice(b"\n\n");
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

    /// The parser as first written (a byte search and a lossy conversion per line), the
    /// reference the faster one must agree with.
    fn reference(chunks: &[Vec<u8>]) -> Vec<SseItem> {
        let (mut items, mut buffer, mut skip_lf) = (Vec::new(), Vec::new(), false);
        let mut p = SseParser::new(usize::MAX);
        for chunk in chunks {
            buffer.extend_from_slice(chunk);
            loop {
                if skip_lf && !buffer.is_empty() {
                    if buffer[0] == b'\n' {
                        buffer.remove(0);
                    }
                    skip_lf = false;
                }
                let Some(end) = buffer.iter().position(|b| *b == b'\n' || *b == b'\r') else { break };
                let line: Vec<u8> = buffer.drain(..=end).collect();
                skip_lf = line[end] == b'\r';
                p.line(&String::from_utf8_lossy(&line[..end]), &mut items);
            }
        }
        items
    }

    #[test]
    fn agrees_with_the_reference_on_random_streams_split_at_random() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(18);
        let pieces: [&[u8]; 12] =
            [b"data", b"event", b":", b": ", b"\n", b"\r", b"\r\n", b"x", b"{\"a\":1}", "é".as_bytes(), b"\xff", b"\xe2\x82"];
        for _ in 0..2_000 {
            let stream: Vec<u8> = (0..rng.random_range(0..60)).flat_map(|_| pieces[rng.random_range(0..pieces.len())].to_vec()).collect();
            let mut chunks = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let (head, tail) = rest.split_at(rng.random_range(1..=rest.len()));
                chunks.push(head.to_vec());
                rest = tail;
            }
            let mut p = SseParser::new(usize::MAX);
            let mut got = Vec::new();
            for chunk in &chunks {
                p.feed_into(chunk, &mut got).expect("no limit");
            }
            assert_eq!(got, reference(&chunks), "{:?} in {chunks:?}", String::from_utf8_lossy(&stream));
        }
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
    fn frames_have_one_data_line_per_line_of_data() {
        assert_eq!(&frame(None, "")[..], b"data: \n\n");
        assert_eq!(&frame(None, "a\n")[..], b"data: a\ndata: \n\n");
        assert_eq!(&frame(None, "\n\nb")[..], b"data: \ndata: \ndata: b\n\n");
    }

    #[test]
    fn frames_round_trip() {
        let framed = frame(Some("x"), "line 1\nline 2");
        assert_eq!(&framed[..], b"event: x\ndata: line 1\ndata: line 2\n\n");
        assert_eq!(parse_all(&[&framed]), vec![SseItem::Event { event: Some("x".into()), data: "line 1\nline 2".into() }]);
        assert_eq!(&comment("ping\ninjected")[..], b": ping injected\n\n");
    }
}
