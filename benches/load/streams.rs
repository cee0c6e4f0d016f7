//! 4d. Many concurrent streams: thousands of streaming chat completions held open together
//! (the fake upstream sends 100 chunks 20 ms apart), through one Workjet and, as the
//! baseline, straight to the fake upstream.
//!
//! The fake upstream and the client are hand-written HTTP/1.1 on tokio's TCP (one connection
//! per stream, `Connection: close`, no per-chunk allocation), so that on a small machine as
//! much of the CPU as possible is left to the server measured. The fake stamps each chunk with
//! the time it was scheduled for (its start + i × 20 ms, on a clock the client shares: both run
//! in this process); the client's delay for a chunk is its arrival minus that schedule. The
//! direct run measures what the fake and the client alone add (timer granularity, the
//! machine's load); the added delay of the gateway is the same percentile through Workjet
//! minus the direct one.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::Server;

/// Chunks of each stream, and the gap between them.
pub const CHUNKS: usize = 100;
pub const GAP: Duration = Duration::from_millis(20);
/// A chunk's schedule stamp: `~T` and sixteen digits of microseconds since the Unix epoch.
const MARK: &[u8] = b"~T";
const MARK_LEN: usize = 18;
/// The longest a run may take (ten times a stream's schedule); streams unfinished by then
/// count as errors.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// Microseconds since the Unix epoch: the clock the fake upstream (a process of its own) and
/// the client share.
fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Clock ticks a second (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system) of a `/proc/…/stat` file, in seconds.
fn cpu_seconds(stat_path: &str) -> f64 {
    let (user, system) = cpu_user_system(stat_path);
    user + system
}

/// User and system CPU time of a `/proc/…/stat` file, in seconds.
fn cpu_user_system(stat_path: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64 / ticks_per_second();
    (ticks(11), ticks(12))
}

/// Set in the environment of the fake upstream's process.
const FAKE_ENV: &str = "WJ_BENCH_FAKE_STREAMS";

/// Whether this process is the fake upstream (the bench binary started again by [`Fake::start`]).
pub fn is_fake_process() -> bool {
    std::env::var_os(FAKE_ENV).is_some()
}

/// The fake upstream's process: prints its address, then serves until killed.
pub async fn fake_main() {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let listener = socket.listen(8192).expect("listen");
    println!("{}", listener.local_addr().expect("addr"));
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                tokio::spawn(serve(tcp));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The stamping fake upstream, in a process of its own (this bench binary again): each
/// process may hold only so many sockets, and a stream holds one in the fake and one in the
/// client.
pub struct Fake {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl Fake {
    pub fn start() -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().expect("bench binary"))
            .env(FAKE_ENV, "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the fake upstream");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("fake upstream address");
        Self { addr: line.trim().parse().expect("fake upstream address"), child }
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One streamed chat completion: the request is read (its body must ask for a stream), then
/// `CHUNKS` chunks on schedule, then a usage chunk and `[DONE]`; the connection is closed.
async fn serve(mut tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    let streamed = loop {
        match tcp.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let length = content_length(&buf[..end]).unwrap_or(0);
            if buf.len() >= end + 4 + length {
                break find(&buf[end + 4..end + 4 + length], b"\"stream\":true").is_some();
            }
        }
        if buf.len() > 1 << 20 {
            return;
        }
    };
    if !streamed {
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        return;
    }
    let (start, start_us) = (Instant::now(), now_us());
    let mut out = Vec::with_capacity(512);
    let mut event = Vec::with_capacity(256);
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    use std::io::Write;
    for i in 0..CHUNKS {
        let due = start + GAP * i as u32;
        if i > 0 {
            tokio::time::sleep_until(due.into()).await;
        }
        event.clear();
        let _ = write!(
            event,
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-stream\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} ~T{:016}\"}},\"finish_reason\":null}}]}}\n\n",
            start_us + GAP.as_micros() as u64 * i as u64
        );
        let _ = write!(out, "{:x}\r\n", event.len());
        out.extend_from_slice(&event);
        out.extend_from_slice(b"\r\n");
        if tcp.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
    let last: &[u8] = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench-stream\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":100,\"total_tokens\":112}}\n\ndata: [DONE]\n\n";
    let _ = write!(out, "{:x}\r\n", last.len());
    out.extend_from_slice(last);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    let _ = tcp.write_all(&out).await;
    let _ = tcp.shutdown().await;
}

/// What one stream came to: the delay of each chunk delivered (µs), and why it failed.
struct Outcome {
    delays_us: Vec<u32>,
    error: Option<&'static str>,
}

/// Open streams now, and the most seen.
#[derive(Default)]
struct Open {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// Counts a stream as open while it lives (also when the run's deadline drops it).
struct OpenGuard(Arc<Open>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends `request` on a connection of its own and reads the streamed answer to its end; each
/// chunk's delay goes to `delays_us` as it arrives (kept if the run's deadline cuts it short).
async fn one_stream(addr: SocketAddr, request: Arc<Vec<u8>>, open: Arc<Open>, delays_us: &mut Vec<u32>) -> Result<(), &'static str> {
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return Err("connect failed");
    };
    let _ = tcp.set_nodelay(true);
    if tcp.write_all(&request).await.is_err() {
        return Err("connection broken");
    }
    let n = open.now.fetch_add(1, Ordering::Relaxed) + 1;
    open.peak.fetch_max(n, Ordering::Relaxed);
    let _guard = OpenGuard(open);
    read_stream(&mut tcp, delays_us).await
}

async fn read_stream(tcp: &mut TcpStream, delays_us: &mut Vec<u32>) -> Result<(), &'static str> {
    // `raw`: bytes read and not yet decoded; `body`: the decoded body not yet scanned.
    let mut raw = Vec::with_capacity(2048);
    let mut body = Vec::with_capacity(2048);
    let mut chunks: Option<Dechunk> = None;
    let mut saw_done = false;
    loop {
        match tcp.read_buf(&mut raw).await {
            Err(_) => return Err("connection broken"),
            Ok(0) => break,
            Ok(_) => {}
        }
        let arrival = now_us();
        let dechunk = match &mut chunks {
            Some(dechunk) => dechunk,
            None => {
                let Some(end) = find(&raw, b"\r\n\r\n") else {
                    if raw.len() > 64 * 1024 {
                        return Err("response head too large");
                    }
                    continue;
                };
                if !raw.starts_with(b"HTTP/1.1 200 ") {
                    whole_answer(tcp, &mut raw, end + 4).await;
                    return Err(refusal(&raw));
                }
                if !raw[..end].to_ascii_lowercase().windows(26).any(|w| w == b"transfer-encoding: chunked") {
                    return Err("answer not chunked");
                }
                raw.drain(..end + 4);
                chunks.insert(Dechunk::default())
            }
        };
        // A proxy may cut its chunks anywhere in the upstream's (nginx does, as it reads): the
        // stamps are looked for in the decoded body, never in the framing.
        let used = dechunk.feed(&raw, &mut body)?;
        raw.drain(..used);
        let mut at = 0;
        while let Some(p) = find(&body[at..], MARK) {
            let start = at + p;
            if start + MARK_LEN > body.len() {
                break;
            }
            let digits = &body[start + MARK.len()..start + MARK_LEN];
            let Some(due) = std::str::from_utf8(digits).ok().and_then(|d| d.parse::<u64>().ok()) else {
                return Err("garbled chunk");
            };
            delays_us.push(arrival.saturating_sub(due).min(u64::from(u32::MAX)) as u32);
            at = start + MARK_LEN;
        }
        saw_done |= find(&body, b"data: [DONE]").is_some();
        // Keep what may be the start of a stamp, or of the end, cut by this read.
        let keep_from = at.max(body.len().saturating_sub(MARK_LEN - 1));
        body.drain(..keep_from);
    }
    let Some(dechunk) = chunks else {
        return Err("no response");
    };
    if delays_us.len() != CHUNKS {
        return Err("wrong chunk count");
    }
    if !saw_done || !dechunk.ended(&raw) {
        return Err("stream cut short");
    }
    Ok(())
}

/// Undoes HTTP/1.1's chunked framing as the bytes come (RFC 9112 §7.1).
#[derive(Default)]
enum Dechunk {
    /// A chunk's size line is next.
    #[default]
    Size,
    /// This many bytes of a chunk's data are still to come.
    Data(usize),
    /// The CRLF after a chunk's data is next.
    DataEnd,
    /// The last chunk (size 0) came: only trailers and the final CRLF may follow.
    Last,
}

impl Dechunk {
    /// Moves the data of the whole chunks (and the start of a partial one) in `raw` to `body`;
    /// answers how many bytes of `raw` it used (the rest: a size line or CRLF not yet whole).
    fn feed(&mut self, raw: &[u8], body: &mut Vec<u8>) -> Result<usize, &'static str> {
        let mut at = 0;
        loop {
            let rest = &raw[at..];
            match *self {
                Dechunk::Size => {
                    let Some(eol) = find(rest, b"\r\n") else {
                        return if rest.len() > 1024 { Err("garbled chunk framing") } else { Ok(at) };
                    };
                    let digits = rest[..eol].split(|b| *b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| usize::from_str_radix(d.trim(), 16).ok())
                        .ok_or("garbled chunk framing")?;
                    at += eol + 2;
                    *self = if size == 0 { Dechunk::Last } else { Dechunk::Data(size) };
                }
                Dechunk::Data(left) => {
                    let take = left.min(rest.len());
                    body.extend_from_slice(&rest[..take]);
                    at += take;
                    if take < left {
                        *self = Dechunk::Data(left - take);
                        return Ok(at);
                    }
                    *self = Dechunk::DataEnd;
                }
                Dechunk::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(at);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err("garbled chunk framing");
                    }
                    at += 2;
                    *self = Dechunk::Size;
                }
                Dechunk::Last => return Ok(at),
            }
        }
    }

    /// Whether the body ended as it must: the last chunk, then (no trailers here) the final
    /// CRLF, the last bytes of `rest` (what [`Dechunk::feed`] left).
    fn ended(&self, rest: &[u8]) -> bool {
        matches!(self, Dechunk::Last) && rest == b"\r\n"
    }
}

/// The `Content-Length` an HTTP/1.1 message's head declares, if any.
fn content_length(head: &[u8]) -> Option<usize> {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok())
}

/// Reads the rest of a refusal whose head (`body_at` bytes) is in `answer`: up to its
/// `Content-Length`, or to the end of the connection, for at most 2 s and 64 KiB (a refusal is
/// classified by its body, which need not come in the head's read).
async fn whole_answer(tcp: &mut TcpStream, answer: &mut Vec<u8>, body_at: usize) {
    let want = body_at + content_length(&answer[..body_at]).unwrap_or(64 * 1024).min(64 * 1024);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while answer.len() < want {
        match tokio::time::timeout_at(deadline, tcp.read_buf(answer)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
}

/// A refused stream's status and, from its whole answer, its error code (a gateway 502 also
/// by the failure its message names: which side of the upstream connection failed); a refusal
/// with no body at all is labelled so.
fn refusal(answer: &[u8]) -> &'static str {
    // Most specific first: a status, what the answer's body holds, the label.
    const KNOWN: [(&[u8], &str, &str); 9] = [
        (b"502", "could not be reached", "status 502 upstream_error (upstream unreachable)"),
        (b"503", "too many connections open", "status 503 service_unavailable (the server out of sockets)"),
        (b"502", "connection to the model provider failed", "status 502 upstream_error (upstream connection failed)"),
        (b"502", "returned an error", "status 502 upstream_error (upstream answered an error)"),
        (b"502", "\"code\":\"upstream_error\"", "status 502 upstream_error"),
        (b"503", "\"code\":\"service_unavailable\"", "status 503 service_unavailable"),
        (b"504", "\"code\":\"upstream_timeout\"", "status 504 upstream_timeout"),
        (b"429", "\"code\":\"rate_limited\"", "status 429 rate_limited"),
        (b"429", "\"code\":\"upstream_rate_limited\"", "status 429 upstream_rate_limited"),
    ];
    let status = answer.get(9..12).unwrap_or_default();
    let empty = find(answer, b"\r\n\r\n").is_some_and(|end| end + 4 == answer.len());
    if empty {
        return match status {
            b"502" => "status 502, no body",
            b"503" => "status 503, no body",
            b"504" => "status 504, no body",
            _ => "status not 200, no body",
        };
    }
    KNOWN.iter().find(|(s, needle, _)| *s == status && find(answer, needle.as_bytes()).is_some()).map(|(_, _, label)| *label).unwrap_or(
        match status {
            b"429" => "status 429",
            b"502" => "status 502",
            b"503" => "status 503",
            b"504" => "status 504",
            _ => "status not 200",
        },
    )
}

/// One run: `streams` streams opened over `ramp`, all read to their end.
#[derive(Clone, Debug)]
pub struct StreamRun {
    pub label: String,
    pub streams: usize,
    pub peak_open: usize,
    pub errors: BTreeMap<&'static str, usize>,
    /// Each delivered chunk's delay (arrival − schedule), µs, sorted (chunks still due when
    /// the run's deadline cut a stream are not in it).
    pub delays_us: Vec<u32>,
    pub wall: Duration,
    /// Server memory: RSS before the run, and at the sample with the most streams open (and
    /// how many were).
    pub server_rss: Option<(u64, u64, usize)>,
    /// CPU seconds during the run: the server, the fake upstream, the client.
    pub server_cpu: Option<f64>,
    pub fake_cpu: f64,
    pub client_cpu: f64,
}

impl StreamRun {
    pub fn chunks(&self) -> usize {
        self.delays_us.len()
    }

    pub fn errors_total(&self) -> usize {
        self.errors.values().sum()
    }

    pub fn delay_ms(&self, p: f64) -> f64 {
        if self.delays_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.delays_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.delays_us[i]) / 1000.0
    }

    /// KiB of server memory per open stream.
    pub fn kib_per_stream(&self) -> Option<f64> {
        self.server_rss.map(|(idle, peak, open)| peak.saturating_sub(idle) as f64 / open.max(1) as f64)
    }

    /// CPU milliseconds per 1,000 chunks delivered.
    pub fn per_1000_chunks(&self, cpu_seconds: f64) -> f64 {
        cpu_seconds * 1000.0 / (self.chunks().max(1) as f64 / 1000.0)
    }
}

/// The processes measured as a run's server (Workjet's one, or nginx's master and workers).
#[derive(Clone)]
pub struct Procs(Vec<u32>);

impl Procs {
    pub fn one(pid: u32) -> Self {
        Self(vec![pid])
    }

    /// `parent` and its children (nginx's master and its workers).
    pub fn family(parent: u32) -> Self {
        let mut pids = vec![parent];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|v| v.parse::<u32>().ok());
            if ppid == Some(parent) {
                pids.push(pid);
            }
        }
        Self(pids)
    }

    fn cpu_seconds(&self) -> f64 {
        let (user, system) = self.cpu_user_system();
        user + system
    }

    /// User and system CPU time of the processes so far, in seconds.
    pub fn cpu_user_system(&self) -> (f64, f64) {
        self.0.iter().map(|pid| cpu_user_system(&format!("/proc/{pid}/stat"))).fold((0.0, 0.0), |(u, s), (du, ds)| (u + du, s + ds))
    }

    pub fn rss_kib(&self) -> u64 {
        self.0.iter().map(|&pid| crate::rss_kib(pid)).sum()
    }

    /// How many processes are measured.
    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// Runs `streams` streams against `target`. `server`: the processes serving it (for memory
/// and CPU) and their idle RSS (KiB), the baseline of their memory per stream.
async fn run(
    label: &str,
    target: SocketAddr,
    request: Arc<Vec<u8>>,
    streams: usize,
    server: Option<(&Procs, u64)>,
    fake: &Fake,
) -> StreamRun {
    let ramp = Duration::from_secs_f64((streams as f64 / 10_000.0).clamp(0.2, 1.5));
    let open = Arc::new(Open::default());
    let idle_rss = server.map(|(_, idle)| idle);
    let server = server.map(|(procs, _)| procs.clone());
    let server_cpu_before = server.as_ref().map(Procs::cpu_seconds);
    let (fake_before, self_before) = (fake.cpu_seconds(), cpu_seconds("/proc/self/stat"));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Samples every 50 ms: the server's RSS when the most streams are open.
    let sampler = {
        let (open, done, server) = (open.clone(), done.clone(), server.clone());
        tokio::spawn(async move {
            let mut best = (0u64, 0usize);
            while !done.load(Ordering::Relaxed) {
                let now = open.now.load(Ordering::Relaxed);
                if let Some(procs) = &server
                    && now >= best.1
                {
                    best = (procs.rss_kib(), now);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            best
        })
    };
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + RUN_LIMIT);
    let mut tasks = Vec::with_capacity(streams);
    for i in 0..streams {
        let at = tokio::time::Instant::from_std(start + ramp.mul_f64(i as f64 / streams as f64));
        let (request, open) = (request.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let mut delays_us = Vec::with_capacity(CHUNKS);
            let error = match tokio::time::timeout_at(deadline, one_stream(target, request, open, &mut delays_us)).await {
                Ok(result) => result.err(),
                Err(_) => Some("not done in 20 s"),
            };
            Outcome { delays_us, error }
        }));
    }
    let mut errors = BTreeMap::new();
    let mut delays_us = Vec::with_capacity(streams * CHUNKS);
    for task in tasks {
        let outcome = task.await.unwrap_or(Outcome { delays_us: Vec::new(), error: Some("client task failed") });
        if let Some(e) = outcome.error {
            *errors.entry(e).or_default() += 1;
        }
        delays_us.extend_from_slice(&outcome.delays_us);
    }
    let wall = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let (peak_rss, open_at_peak) = sampler.await.unwrap_or_default();
    let fake_cpu = fake.cpu_seconds() - fake_before;
    let client_cpu = cpu_seconds("/proc/self/stat") - self_before;
    let server_cpu = server.as_ref().map(Procs::cpu_seconds).zip(server_cpu_before).map(|(after, before)| after - before);
    delays_us.sort_unstable();
    let run = StreamRun {
        label: label.to_owned(),
        streams,
        peak_open: open.peak.load(Ordering::Relaxed),
        errors,
        delays_us,
        wall,
        server_rss: idle_rss.map(|idle| (idle, peak_rss, open_at_peak)),
        server_cpu,
        fake_cpu,
        client_cpu,
    };
    eprintln!(
        "  {:<28} {:>6} streams: peak open {:>6}, errors {:>5} {:?}, chunk delay p50 {:.2} p99 {:.2} max {:.2} ms, {:.1} s{}{}; CPU: fake {:.2} s, client {:.2} s",
        run.label,
        streams,
        run.peak_open,
        run.errors_total(),
        run.errors,
        run.delay_ms(0.5),
        run.delay_ms(0.99),
        run.delay_ms(1.0),
        wall.as_secs_f64(),
        run.kib_per_stream().map(|k| format!(", {k:.1} KiB/stream")).unwrap_or_default(),
        run.server_cpu.map(|c| format!(", server CPU {c:.2} s ({:.2} ms per 1,000 chunks)", run.per_1000_chunks(c))).unwrap_or_default(),
        run.fake_cpu,
        run.client_cpu,
    );
    run
}

/// The request, raw.
fn request(key: Option<&str>) -> Arc<Vec<u8>> {
    let body = r#"{"model":"bench-stream","messages":[{"role":"user","content":"Hello, world!"}],"stream":true}"#;
    let auth = key.map(|k| format!("authorization: Bearer {k}\r\n")).unwrap_or_default();
    Arc::new(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// One stream count, run straight to the fake upstream, through nginx (when it is installed)
/// and through Workjet.
pub struct CountRuns {
    pub direct: StreamRun,
    pub nginx: Option<StreamRun>,
    pub via: StreamRun,
}

/// What the section measured.
pub struct Section {
    /// A light load first: one these cores can schedule with the client and the fake upstream
    /// on them too, so that what the gateway adds per chunk shows without the queueing of an
    /// overloaded machine.
    pub light: Option<CountRuns>,
    /// Per stream count asked (the first is the count to be held).
    pub runs: Vec<CountRuns>,
    /// Why a count was not run as asked.
    pub skipped: Vec<String>,
    /// Why nginx was not measured.
    pub nginx_skipped: Option<String>,
    pub nofile: u64,
    pub server_idle_kib: u64,
    pub nginx_idle_kib: Option<u64>,
}

/// Files a process keeps besides its streams' sockets (listeners, database, logs, epoll…).
const SPARE_FDS: u64 = 256;

/// Runs each count of `counts` (after the `light` one) straight to the fake upstream, through
/// nginx as a plain reverse proxy and through a Workjet of its own. Each stream holds one
/// socket in the client and one in the fake upstream (processes of their own), and two in each
/// proxy. The first count is run only as far as the server's file limit allows (it is the count
/// to be held); the others are pushed as far as the client's limit allows, past the server's if
/// need be, to show where it bends.
pub async fn section(light: Option<usize>, counts: &[usize]) -> Section {
    let want = counts.iter().copied().max().unwrap_or(0) as u64 * 2 + SPARE_FDS;
    if let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        && soft < want
        && rlimit::setrlimit(rlimit::Resource::NOFILE, want.max(soft), want.max(hard)).is_err()
    {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    }
    let nofile = rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(0);
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("streams.toml");
    std::fs::write(
        &config,
        format!(
            "[[providers]]\nname = \"stream\"\nkind = \"openai\"\nbase_url = \"http://{}/v1\"\nmodels = [\"bench-stream\"]\n",
            fake.addr
        ),
    )
    .expect("write streams.toml");
    let server = Server::start(&[
        ("WJ_DATABASE_URL", format!("sqlite://{}/streams.db?mode=rwc", dir.path().display())),
        ("WJ_CONFIG", config.display().to_string()),
        ("WJ_RATE_LIMIT_PER_MINUTE", "60000000".into()),
        ("WJ_AUTH_FAILURES_PER_MINUTE", "60000000".into()),
    ])
    .await;
    let workjet = Procs::one(server.pid());
    let cookie = crate::sign_in(&server.base, "streams@example.com").await;
    let (_, key) = crate::create_key(&server.base, &cookie, 60_000_000).await;
    let (direct_request, via_request) = (request(None), request(Some(&key)));
    // Warm-up: the key cached, the upstream client's pool and both runtimes exercised.
    let before_warm_up = server.rss_kib();
    let warm = run("warm-up through Workjet", server.addr, via_request.clone(), 200, Some((&workjet, before_warm_up)), &fake).await;
    assert_eq!(warm.errors_total(), 0, "warm-up streams through Workjet failed: {:?}", warm.errors);
    // nginx, warmed up the same way.
    let nginx = match crate::nginx::binary() {
        None => Err("nginx not installed".to_owned()),
        Some(binary) => crate::nginx::Nginx::start(&binary, fake.addr).await,
    };
    let (nginx, nginx_skipped) = match nginx {
        Ok(nginx) => {
            let warm = run("warm-up through nginx", nginx.addr, direct_request.clone(), 200, None, &fake).await;
            let procs = nginx.processes().await;
            (Some((nginx, procs)), (warm.errors_total() > 0).then(|| format!("nginx's warm-up failed: {:?}", warm.errors)))
        }
        Err(why) => {
            eprintln!("  nginx skipped: {why}");
            (None, Some(why))
        }
    };
    let nginx = nginx.filter(|_| nginx_skipped.is_none());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The baseline of every run's memory per stream (memory a run leaves with the allocator
    // counts against the next run's streams, not as idle).
    let server_idle_kib = server.rss_kib();
    let nginx_idle_kib = nginx.as_ref().map(|(_, procs)| procs.rss_kib());
    let one_count = |streams: usize| {
        let (fake, server, workjet, nginx) = (&fake, &server, &workjet, &nginx);
        let (direct_request, via_request) = (direct_request.clone(), via_request.clone());
        async move {
            let pause = || tokio::time::sleep(Duration::from_millis(500));
            let direct = run("straight to the fake upstream", fake.addr, direct_request.clone(), streams, None, fake).await;
            // Sockets of the last run close (TIME_WAIT stays on the servers' side).
            pause().await;
            let mut through_nginx = None;
            if let Some((proxy, procs)) = nginx {
                let idle = nginx_idle_kib.unwrap_or(0);
                through_nginx =
                    Some(run("through nginx (proxy_pass)", proxy.addr, direct_request, streams, Some((procs, idle)), fake).await);
                pause().await;
            }
            let via = run("through Workjet", server.addr, via_request, streams, Some((workjet, server_idle_kib)), fake).await;
            pause().await;
            CountRuns { direct, nginx: through_nginx, via }
        }
    };
    let light = match light {
        Some(streams) => Some(one_count(streams).await),
        None => None,
    };
    let mut runs = Vec::new();
    let mut capped = Vec::new();
    for (i, &asked) in counts.iter().enumerate() {
        let room = nofile.saturating_sub(SPARE_FDS) as usize;
        let streams = if i == 0 { asked.min(room / 2) } else { asked.min(room) };
        if streams < asked {
            capped.push(format!(
                "{asked} streams asked, {streams} run: RLIMIT_NOFILE is {nofile} here and {}",
                if i == 0 { "a stream holds two sockets in the server" } else { "a stream holds one socket in the client" }
            ));
        }
        runs.push(one_count(streams).await);
    }
    Section { light, runs, skipped: capped, nginx_skipped, nofile, server_idle_kib, nginx_idle_kib }
}

/// The stream counts: 10,000 then 20,000 (`WJ_BENCH_QUICK=1`: 1,000 and 2,000;
/// `WJ_BENCH_STREAMS=a,b,…` to choose), after a light load of 1,000 (quick: 100;
/// `WJ_BENCH_STREAMS_LIGHT`, 0 for none).
fn counts() -> (Option<usize>, Vec<usize>) {
    let quick = std::env::var("WJ_BENCH_QUICK").is_ok_and(|v| v == "1");
    let parse = |v: &str| v.trim().replace('_', "").parse::<usize>().ok();
    let light = match std::env::var("WJ_BENCH_STREAMS_LIGHT").ok().filter(|v| !v.is_empty()) {
        Some(v) => parse(&v).filter(|&n| n > 0),
        None => Some(if quick { 100 } else { 1_000 }),
    };
    if let Some(list) = std::env::var("WJ_BENCH_STREAMS").ok().filter(|v| !v.is_empty()) {
        return (light, list.split(',').filter_map(parse).collect());
    }
    (light, if quick { vec![1_000, 2_000] } else { vec![10_000, 20_000] })
}

/// Runs section 4d into `report`.
pub async fn section_into(report: &mut crate::report::Report) {
    let (light, counts) = counts();
    eprintln!("-- 4d. concurrent streams: {light:?} (light), then {counts:?}");
    report.streams(&section(light, &counts).await);
}
