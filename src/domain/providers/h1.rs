//! The client for a provider reached over plain HTTP (`http://`: a model server on the same
//! host or network, such as vLLM, Ollama or llama.cpp): HTTP/1.1 over pooled TCP connections,
//! with no task of its own. The request is written and the answer's head read by the task that
//! awaits [`Connections::send`], and the answer's body by the task that polls the [`Body`]:
//! for a relayed stream, the caller's connection. So a chunk is read from the provider and
//! written to the caller in one turn of one task, and chunks that arrived together are read
//! together. (hyper's client drives each connection from a task of its own and hands every
//! chunk to the reader over a channel that holds one chunk: two tasks woken per chunk, and a
//! backlog of chunks passed on one at a time.)
//!
//! What it speaks: a request whose body has a known length (`content-length`); an answer
//! framed by `content-length`, by `transfer-encoding: chunked` (extensions and trailers
//! skipped) or by the connection's end; interim (1xx) answers skipped. A connection goes back
//! to its pool only when its answer was read to the end, with nothing after it, from an HTTP/1.1
//! server that did not say `connection: close`. One the provider closed while it sat idle is
//! seen closed when it is taken (tokio's reactor has marked it readable) and dropped.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version, header, uri::Authority};
use http_body::{Frame, SizeHint};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// The longest answer head read (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// The most headers an answer may have.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line, and the most trailer bytes.
const MAX_LINE: usize = 4096;
/// How much room a read is given.
const READ_SIZE: usize = 8 * 1024;
/// A request body up to this size is written with its head in one write.
const ONE_WRITE: usize = 64 * 1024;
/// Idle connections kept per pool, and for how long.
const MAX_IDLE: usize = 512;
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Why a request or an answer's body failed. No URL in it, nor anything the provider sent.
#[derive(Debug)]
pub enum Error {
    /// The request's URI is not `http://` with a host.
    NotPlainHttp,
    /// The connection could not be made.
    Connect(std::io::Error),
    /// The connection was not made within the connect timeout.
    ConnectTimedOut,
    /// Writing the request or reading the answer failed.
    Io(std::io::Error),
    /// The connection ended before the answer did.
    Closed,
    /// The answer does not follow HTTP/1.1.
    Malformed(&'static str),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotPlainHttp => f.write_str("the request's URI is not http:// with a host"),
            Self::Connect(_) => f.write_str("cannot connect"),
            Self::ConnectTimedOut => f.write_str("the connection was not made within the connect timeout"),
            Self::Io(_) => f.write_str("the connection failed"),
            Self::Closed => f.write_str("the connection closed before the answer ended"),
            Self::Malformed(what) => write!(f, "the answer is not HTTP/1.1: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(error) | Self::Io(error) => Some(error),
            _ => None,
        }
    }
}

/// One pool of connections (in practice to one provider: each has pools of its own).
pub struct Connections {
    connect_timeout: Duration,
    /// Oldest first.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    authority: Authority,
    stream: TcpStream,
    since: Instant,
}

/// Takes the connections idle for `IDLE_FOR` or longer out of `idle` (oldest first), for the
/// caller to close once it has let go of the lock.
fn expired(idle: &mut Vec<Idle>, now: Instant) -> Vec<Idle> {
    let is_expired = |c: &Idle| now.duration_since(c.since) >= IDLE_FOR;
    // Mostly none: the oldest alone tells.
    if !idle.first().is_some_and(is_expired) {
        return Vec::new();
    }
    let expired = idle.partition_point(is_expired);
    idle.drain(..expired).collect()
}

impl Connections {
    /// An empty pool whose connections are made within `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        Self { connect_timeout, idle: Mutex::new(Vec::new()) }
    }

    /// Sends `request`; answers when the answer's head has been read. Its body is read as the
    /// [`Body`] is polled, after which the connection comes back to this pool.
    pub async fn send(self: &Arc<Self>, request: Request<Bytes>) -> Result<Response<Body>, Error> {
        let (parts, body) = request.into_parts();
        let authority = match (parts.uri.scheme_str(), parts.uri.authority()) {
            (Some("http"), Some(authority)) if !authority.host().is_empty() => authority.clone(),
            _ => return Err(Error::NotPlainHttp),
        };
        let mut message = request_head(&parts.method, &parts.uri, &authority, &parts.headers, body.len());
        let mut stream = match self.take(&authority) {
            Some(stream) => stream,
            None => self.connect(&authority).await?,
        };
        if body.len() <= ONE_WRITE {
            message.extend_from_slice(&body);
            stream.write_all(&message).await.map_err(Error::Io)?;
        } else {
            stream.write_all(&message).await.map_err(Error::Io)?;
            stream.write_all(&body).await.map_err(Error::Io)?;
        }
        let mut buffer = BytesMut::with_capacity(READ_SIZE);
        let head = loop {
            if !buffer.is_empty()
                && let Some(head) = parse_head(&mut buffer, parts.method == Method::HEAD)?
            {
                break head;
            }
            if buffer.len() > MAX_HEAD {
                return Err(Error::Malformed("its head is longer than 64 KiB"));
            }
            buffer.reserve(READ_SIZE);
            if stream.read_buf(&mut buffer).await.map_err(Error::Io)? == 0 {
                return Err(Error::Closed);
            }
        };
        let Head { mut response, framing, keep_alive } = head;
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = Body { stream: Some(stream), buffer, state, keep_alive, back_to: Some((Arc::clone(self), authority)) };
        if matches!(body.state, State::Done) {
            body.finish();
        }
        *response.body_mut() = body;
        Ok(response)
    }

    /// An idle connection to `authority` that is still open, newest first.
    fn take(&self, authority: &Authority) -> Option<TcpStream> {
        let (found, dropped) = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let mut dropped = expired(&mut idle, Instant::now());
            let mut found = None;
            while let Some(at) = idle.iter().rposition(|c| c.authority == *authority) {
                let candidate = idle.remove(at);
                // Readable while idle: closed by the provider (or it sent what nobody asked for).
                match candidate.stream.try_read(&mut [0u8; 1]) {
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        found = Some(candidate.stream);
                        break;
                    }
                    _ => dropped.push(candidate),
                }
            }
            (found, dropped)
        };
        drop(dropped);
        found
    }

    /// Keeps `stream`, whose last answer was read to its end, for the next request (and lets
    /// go of those idle for too long).
    fn put(&self, authority: Authority, stream: TcpStream) {
        let stale = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let stale = expired(&mut idle, now);
            if idle.len() < MAX_IDLE {
                idle.push(Idle { authority, stream, since: now });
            }
            stale
        };
        drop(stale);
    }

    async fn connect(&self, authority: &Authority) -> Result<TcpStream, Error> {
        // An IPv6 literal's brackets are the URI's, not the address's.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port))).await {
            Err(_) => return Err(Error::ConnectTimedOut),
            Ok(connected) => connected.map_err(Error::Connect)?,
        };
        stream.set_nodelay(true).map_err(Error::Connect)?;
        Ok(stream)
    }
}

/// The request's line and headers, `content-length` included, with room for the body.
fn request_head(method: &Method, uri: &http::Uri, authority: &Authority, headers: &HeaderMap, body: usize) -> Vec<u8> {
    let mut head = Vec::with_capacity(256 + headers.len() * 64 + if body <= ONE_WRITE { body } else { 0 });
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    // Without any user:password@ the URI may carry.
    head.extend_from_slice(authority.host().as_bytes());
    if let Some(port) = authority.port() {
        head.push(b':');
        head.extend_from_slice(port.as_str().as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if is_framing_or_hop(name) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"content-length: ");
    head.extend_from_slice(body.to_string().as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
    head
}

/// The headers this client writes itself, or that concern one connection only.
fn is_framing_or_hop(name: &HeaderName) -> bool {
    matches!(
        *name,
        header::HOST
            | header::CONTENT_LENGTH
            | header::TRANSFER_ENCODING
            | header::CONNECTION
            | header::TE
            | header::UPGRADE
            | header::PROXY_AUTHORIZATION
    ) || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// How an answer's body is delimited.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

struct Head {
    response: Response<Body>,
    framing: Framing,
    /// Whether the connection may carry another request after this answer.
    keep_alive: bool,
}

/// Parses a complete answer head at the start of `buffer` and takes it off (`None`: not all
/// there yet; an interim answer is taken off and parsing goes on).
fn parse_head(buffer: &mut BytesMut, to_head: bool) -> Result<Option<Head>, Error> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let length = match parsed.parse(buffer) {
            Ok(httparse::Status::Complete(length)) if length <= MAX_HEAD => length,
            Ok(httparse::Status::Complete(_)) => return Err(Error::Malformed("its head is longer than 64 KiB")),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Error::Malformed("it has more than 100 headers")),
            Err(_) => return Err(Error::Malformed("its head does not parse")),
        };
        let status = parsed.code.and_then(|code| StatusCode::from_u16(code).ok()).ok_or(Error::Malformed("its status"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Error::Malformed("it switches protocols, which nobody asked for"));
        }
        if status.is_informational() {
            buffer.advance(length);
            continue;
        }
        let version = if parsed.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
        let mut headers = HeaderMap::with_capacity(parsed.headers.len());
        for field in parsed.headers.iter() {
            let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| Error::Malformed("a header's name"))?;
            let value = HeaderValue::from_bytes(field.value).map_err(|_| Error::Malformed("a header's value"))?;
            headers.append(name, value);
        }
        buffer.advance(length);

        let chunked = headers.get_all(header::TRANSFER_ENCODING).iter().next_back().map(|last| {
            last.as_bytes().rsplit(|b| *b == b',').next().is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        });
        let length = content_length(&headers)?;
        let framing = if to_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else {
            match (chunked, length) {
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) | (None, None) => Framing::UntilClose,
                (None, Some(n)) => Framing::Length(n),
            }
        };
        let says_close = headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|value| value.as_bytes().split(|b| *b == b',').any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close")));
        // Both framings at once is a smuggling attempt or a broken server: read this answer
        // as the chunked one it says it is, then close.
        let keep_alive =
            version == Version::HTTP_11 && !says_close && framing != Framing::UntilClose && !(chunked.is_some() && length.is_some());
        let mut response = Response::new(Body::empty());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Some(Head { response, framing, keep_alive }));
    }
}

/// The answer's `content-length`: every value the same number, or an error.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(Error::Malformed("its content-length"));
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if length.is_some_and(|seen| seen != n) {
                return Err(Error::Malformed("it has two different content-lengths"));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// An answer's body, read from its connection as it is polled.
pub struct Body {
    stream: Option<TcpStream>,
    /// Read and not yet handed out.
    buffer: BytesMut,
    state: State,
    keep_alive: bool,
    /// The pool the connection goes back to, and where it leads.
    back_to: Option<(Arc<Connections>, Authority)>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").field("state", &self.state).field("buffered", &self.buffer.len()).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes still to come.
    Length(u64),
    /// Everything until the connection ends.
    UntilClose,
    /// A chunk-size line is next.
    ChunkSize,
    /// This many bytes of the current chunk still to come.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines, until an empty one; this many bytes of them seen.
    Trailers(usize),
    Done,
}

impl Body {
    fn empty() -> Self {
        Self { stream: None, buffer: BytesMut::new(), state: State::Done, keep_alive: false, back_to: None }
    }

    /// The next piece of data in the buffer (`None`: none yet, or the body is done).
    fn decode(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Length(left) | State::ChunkData(left) => {
                    if self.buffer.is_empty() {
                        return Ok(None);
                    }
                    let n = self.buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let left = left - n as u64;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    return Ok(Some(self.buffer.split_to(n).freeze()));
                }
                State::UntilClose => return Ok((!self.buffer.is_empty()).then(|| self.buffer.split().freeze())),
                State::ChunkSize => {
                    let Some(line) = self.line()? else { return Ok(None) };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 { State::Trailers(0) } else { State::ChunkData(size) };
                }
                State::ChunkEnd => {
                    let Some(line) = self.line()? else { return Ok(None) };
                    if !line.is_empty() {
                        return Err(Error::Malformed("a chunk is longer than its size"));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let Some(line) = self.line()? else { return Ok(None) };
                    let seen = seen + line.len() + 2;
                    if seen > MAX_LINE {
                        return Err(Error::Malformed("its trailers are too long"));
                    }
                    self.state = if line.is_empty() { State::Done } else { State::Trailers(seen) };
                }
            }
        }
    }

    /// The next whole line in the buffer, taken off without its line end.
    fn line(&mut self) -> Result<Option<Bytes>, Error> {
        let Some(end) = memchr::memchr(b'\n', &self.buffer) else {
            return if self.buffer.len() > MAX_LINE { Err(Error::Malformed("a chunk-size line is too long")) } else { Ok(None) };
        };
        if end > MAX_LINE {
            return Err(Error::Malformed("a chunk-size line is too long"));
        }
        let mut line = self.buffer.split_to(end + 1);
        line.truncate(end);
        if line.last() == Some(&b'\r') {
            line.truncate(end - 1);
        }
        Ok(Some(line.freeze()))
    }

    /// The body is done: its connection goes back to the pool if it can carry another answer.
    fn finish(&mut self) {
        self.state = State::Done;
        let stream = self.stream.take();
        if let (Some(stream), Some((pool, authority))) = (stream, self.back_to.take())
            && self.keep_alive
            && self.buffer.is_empty()
        {
            pool.put(authority, stream);
        }
    }

    /// The body failed: its connection is closed.
    fn fail(&mut self, error: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.state = State::Done;
        self.stream = None;
        Poll::Ready(Some(Err(error)))
    }
}

/// A chunk-size line's size (any `;extension` after it ignored).
fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(Error::Malformed("a chunk's size"));
    }
    Ok(digits.iter().fold(0u64, |n, d| n * 16 + u64::from(char::from(*d).to_digit(16).unwrap_or_default())))
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            match this.decode() {
                Err(error) => return this.fail(error),
                Ok(Some(data)) => {
                    if this.state == State::Done {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(None) if this.state == State::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            let Some(stream) = this.stream.as_mut() else { return Poll::Ready(None) };
            if this.buffer.capacity() - this.buffer.len() < READ_SIZE / 4 {
                this.buffer.reserve(READ_SIZE);
            }
            match ready!(tokio_util::io::poll_read_buf(Pin::new(stream), cx, &mut this.buffer)) {
                Err(error) => return this.fail(Error::Io(error)),
                Ok(0) if this.state == State::UntilClose => {
                    this.state = State::Done;
                    this.stream = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(Error::Closed),
                Ok(_) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(left) => SizeHint::with_exact(left),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt as _;
    use tokio::{net::TcpListener, sync::mpsc};

    use super::*;

    /// What a test provider saw of one request.
    #[derive(Debug)]
    struct Seen {
        /// The client port of the connection it came on.
        port: u16,
        head: String,
        body: usize,
    }

    /// A provider that answers each request (the `n`th, from 0) with `answer(n)`'s bytes,
    /// closing the connection after it when told to, and reports what it saw.
    async fn provider(answer: impl Fn(usize) -> (Vec<u8>, bool) + Send + Sync + 'static) -> (String, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        let answer = Arc::new(answer);
        let count = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((mut socket, peer)) = listener.accept().await {
                let (tx, answer, count) = (tx.clone(), Arc::clone(&answer), Arc::clone(&count));
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let head_end = loop {
                            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                            let mut more = [0u8; 4096];
                            match socket.read(&mut more).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&more[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
                        let length: usize =
                            head.lines().find_map(|l| l.strip_prefix("content-length: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                        while buffer.len() < head_end + length {
                            let mut more = [0u8; 65536];
                            match socket.read(&mut more).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&more[..n]),
                            }
                        }
                        buffer.drain(..head_end + length);
                        let _ = tx.send(Seen { port: peer.port(), head, body: length });
                        let (bytes, close) = answer(count.fetch_add(1, Ordering::SeqCst));
                        if socket.write_all(&bytes).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/v1/chat/completions?x=1"), rx)
    }

    fn request(uri: &str, body: &'static [u8]) -> Request<Bytes> {
        Request::post(uri)
            .header("authorization", "Bearer upstream-key")
            .header("content-type", "application/json")
            .header("connection", "upgrade")
            .header("transfer-encoding", "gzip")
            .header("content-length", "999")
            .body(Bytes::from_static(body))
            .expect("request")
    }

    /// Sends a request; answers with the status, the whole body, or the error.
    async fn call(pool: &Arc<Connections>, uri: &str) -> Result<(StatusCode, Bytes), Error> {
        let response = pool.send(request(uri, b"{}")).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    fn pool() -> Arc<Connections> {
        Arc::new(Connections::new(Duration::from_secs(5)))
    }

    fn ok(body: &str) -> (Vec<u8>, bool) {
        (format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes(), false)
    }

    #[tokio::test]
    async fn a_request_is_written_as_http_1_1_and_its_connection_reused() {
        let (uri, mut seen) = provider(|n| ok(&format!("{{\"n\":{n}}}"))).await;
        let pool = pool();
        for n in 0..3 {
            let (status, body) = call(&pool, &uri).await.expect("answered");
            assert_eq!(status, 200);
            assert_eq!(body, format!("{{\"n\":{n}}}"));
        }
        let seen: Vec<Seen> = (0..3).map(|_| seen.try_recv().expect("seen")).collect();
        assert!(seen.iter().all(|s| s.port == seen[0].port), "one connection carries all three: {seen:?}");
        let head = &seen[0].head;
        let addr = uri.trim_start_matches("http://").split('/').next().expect("authority");
        assert!(head.starts_with("POST /v1/chat/completions?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("\r\nhost: {addr}\r\n")), "{head}");
        assert!(head.contains("\r\nauthorization: Bearer upstream-key\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-length: 2\r\n"), "the body's own length, not the one given: {head}");
        for hop in ["connection", "transfer-encoding", "content-length: 999"] {
            assert!(!head.contains(hop), "{hop} is not passed on: {head}");
        }
        assert_eq!(seen[0].body, 2);
    }

    #[tokio::test]
    async fn a_large_request_body_arrives_whole() {
        let (uri, mut seen) = provider(|_| ok("{}")).await;
        static LARGE: [u8; 200_000] = [b'a'; 200_000];
        let response = pool().send(request(&uri, &LARGE)).await.expect("answered");
        assert_eq!(response.status(), 200);
        assert_eq!(seen.recv().await.expect("seen").body, LARGE.len());
    }

    /// A chunked answer's chunks are handed out as they arrive, not when the answer ends;
    /// extensions and trailers are skipped and the connection is reused after the last chunk.
    #[tokio::test]
    async fn a_chunked_answer_is_read_as_it_arrives() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let uri = format!("http://{}/v1/chat/completions", listener.local_addr().expect("addr"));
        let (go_on, mut told) = mpsc::unbounded_channel::<()>();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            for _ in 0..2 {
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") || !head.ends_with(b"{}") {
                    let mut more = [0u8; 4096];
                    let n = socket.read(&mut more).await.expect("read");
                    assert!(n > 0, "the connection stays open");
                    head.extend_from_slice(&more[..n]);
                }
                socket.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n").await.expect("write");
                told.recv().await.expect("told to go on");
                socket.write_all(b"6;ext=\"1\"\r\n world\r\n0\r\ntrailer: x\r\n\r\n").await.expect("write");
            }
        });
        let pool = pool();
        for _ in 0..2 {
            let response = pool.send(request(&uri, b"{}")).await.expect("answered");
            assert_eq!(response.headers()["transfer-encoding"], "chunked");
            let mut body = response.into_body();
            let first = body.frame().await.expect("a frame").expect("data").into_data().expect("data");
            assert_eq!(first, "hello", "the first chunk comes before the rest is sent");
            go_on.send(()).expect("server waits");
            let second = body.frame().await.expect("a frame").expect("data").into_data().expect("data");
            assert_eq!(second, " world");
            assert!(body.frame().await.is_none(), "the answer ends after the last chunk");
            assert!(http_body::Body::is_end_stream(&body));
        }
        server.await.expect("both requests on one connection");
    }

    /// A connection is not reused when the answer says `close`, is HTTP/1.0, ends with the
    /// connection, or was closed by the provider while idle; nor when the body was dropped
    /// before its end, or more bytes came after it.
    #[tokio::test]
    async fn a_connection_that_cannot_carry_another_answer_is_not_reused() {
        type Case = (&'static str, fn(usize) -> (Vec<u8>, bool));
        let cases: [Case; 5] = [
            ("connection: close", |_| (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok".to_vec(), false)),
            ("HTTP/1.0", |_| (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(), false)),
            ("until the end", |_| (b"HTTP/1.1 200 OK\r\n\r\nok".to_vec(), true)),
            ("closed while idle", |_| (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(), true)),
            ("bytes after the answer", |_| (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n".to_vec(), false)),
        ];
        for (case, answer) in cases {
            let (uri, mut seen) = provider(answer).await;
            let pool = pool();
            for _ in 0..2 {
                let (status, body) = call(&pool, &uri).await.unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]), "{case}");
                // Time for the provider's close to reach this side.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let (a, b) = (seen.recv().await.expect("seen"), seen.recv().await.expect("seen"));
            assert_ne!(a.port, b.port, "{case}: a new connection for the second request");
        }

        let (uri, mut seen) =
            provider(|_| (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(), false)).await;
        let pool = pool();
        drop(pool.send(request(&uri, b"{}")).await.expect("answered"));
        assert_eq!(call(&pool, &uri).await.expect("answered").1, "ok");
        let (a, b) = (seen.recv().await.expect("seen"), seen.recv().await.expect("seen"));
        assert_ne!(a.port, b.port, "an answer dropped unread closes its connection");
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_an_empty_answer_keeps_its_connection() {
        let (uri, mut seen) = provider(|n| match n {
            0 => (b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(), false),
            _ => (b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), false),
        })
        .await;
        let pool = pool();
        assert_eq!(call(&pool, &uri).await.expect("answered"), (StatusCode::OK, Bytes::from_static(b"ok")));
        assert_eq!(call(&pool, &uri).await.expect("answered"), (StatusCode::NO_CONTENT, Bytes::new()));
        assert_eq!(call(&pool, &uri).await.expect("answered"), (StatusCode::NO_CONTENT, Bytes::new()));
        let ports: Vec<u16> = (0..3).map(|_| seen.try_recv().expect("seen").port).collect();
        assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
    }

    /// Whatever a provider sends that is not HTTP/1.1 is an error, never a hang or a panic,
    /// and a declared length is the size hint a reader can refuse early.
    #[tokio::test]
    async fn an_answer_that_breaks_http_is_an_error() {
        let long_header = format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "a".repeat(70_000));
        let many_headers = format!("HTTP/1.1 200 OK\r\n{}\r\n", "x: y\r\n".repeat(101));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not HTTP", b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()),
            ("a status not a number", b"HTTP/1.1 2x0 OK\r\n\r\n".to_vec()),
            ("a head longer than 64 KiB", long_header.into_bytes()),
            ("more than 100 headers", many_headers.into_bytes()),
            ("two lengths", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok".to_vec()),
            ("a length not a number", b"HTTP/1.1 200 OK\r\ncontent-length: -2\r\n\r\nok".to_vec()),
            ("a switch of protocols", b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n".to_vec()),
            ("a chunk size not hex", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n".to_vec()),
            ("a chunk size too large", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\nok".to_vec()),
            ("a chunk longer than its size", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nok\r\n0\r\n\r\n".to_vec()),
            (
                "a chunk-size line without end",
                format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{}", "1".repeat(5000)).into_bytes(),
            ),
            ("a body shorter than its length", b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok".to_vec()),
            ("a chunked body cut short", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n".to_vec()),
            ("no answer at all", Vec::new()),
            ("half a head", b"HTTP/1.1 200 OK\r\ncontent-len".to_vec()),
        ];
        for (case, bytes) in cases {
            let bytes = Arc::new(bytes);
            let (uri, _seen) = provider(move |_| (bytes.to_vec(), true)).await;
            let result = tokio::time::timeout(Duration::from_secs(5), call(&pool(), &uri)).await.expect("no hang");
            assert!(result.is_err(), "{case}: {result:?}");
        }

        let (uri, _seen) = provider(|_| (b"HTTP/1.1 200 OK\r\ncontent-length: 40000000\r\n\r\n".to_vec(), false)).await;
        let response = pool().send(request(&uri, b"{}")).await.expect("head");
        assert_eq!(http_body::Body::size_hint(response.body()).lower(), 40_000_000);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error_and_a_https_uri_is_refused() {
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
        let error = call(&pool(), &format!("http://{closed}/v1")).await.expect_err("refused");
        assert!(matches!(error, Error::Connect(_)), "{error:?}");
        let error = call(&pool(), "https://127.0.0.1:9/v1").await.expect_err("not plain");
        assert!(matches!(error, Error::NotPlainHttp), "{error:?}");
    }

    #[tokio::test]
    async fn connections_idle_too_long_are_let_go_oldest_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let authority: Authority = addr.to_string().parse().expect("authority");
        let start = Instant::now();
        let mut idle = Vec::new();
        for age in [0, 30, 60] {
            let stream = TcpStream::connect(addr).await.expect("connect");
            idle.push(Idle { authority: authority.clone(), stream, since: start + Duration::from_secs(age) });
        }
        assert!(expired(&mut idle, start + IDLE_FOR - Duration::from_secs(1)).is_empty(), "none idle long enough");
        assert_eq!(idle.len(), 3);
        assert_eq!(expired(&mut idle, start + IDLE_FOR + Duration::from_secs(30)).len(), 2, "the two oldest");
        assert_eq!(idle.len(), 1);
        assert_eq!(idle[0].since, start + Duration::from_secs(60), "the newest stays");
        assert_eq!(expired(&mut idle, start + IDLE_FOR * 2).len(), 1);
        assert!(idle.is_empty());
        assert!(expired(&mut idle, start + IDLE_FOR * 2).is_empty(), "an empty pool");
    }

    #[test]
    fn chunk_sizes_parse_as_hex_with_extensions_ignored() {
        assert_eq!(chunk_size(b"1a").expect("size"), 26);
        assert_eq!(chunk_size(b"FF ; name=value").expect("size"), 255);
        assert_eq!(chunk_size(b"0").expect("size"), 0);
        for bad in [&b""[..], b"-1", b"0x10", b"1 2", b"1000000000000000"] {
            assert!(chunk_size(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
