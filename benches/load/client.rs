//! A lean HTTP/1.1 load generator: one keep-alive connection per worker, latencies in µs.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Builds the request for worker `w`, sequence number `n`.
pub type MakeRequest = Arc<dyn Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync>;

/// One measured run.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub requests: u64,
    /// Every request answered, the warm-up's included (for figures per request taken over
    /// the whole run, such as the server's CPU time).
    pub all_requests: u64,
    pub unexpected: u64,
    pub elapsed: Duration,
    pub latencies_us: Vec<u32>,
}

impl Sample {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        f64::from(sorted[i]) / 1000.0
    }
}

async fn connect(addr: SocketAddr) -> http1::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await.expect("handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// `concurrency` workers send requests back to back for `duration` (after `warmup`).
pub async fn run(
    addr: SocketAddr,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    make: MakeRequest,
    expect: StatusCode,
) -> Sample {
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut sample = Sample::default();
            let mut n = 0u64;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let request = make(w, n);
                n += 1;
                // HTTP/1.1: the connection takes the next request only once the last exchange is done.
                if sender.ready().await.is_err() {
                    sender = connect(addr).await;
                }
                let t0 = Instant::now();
                let response = match sender.send_request(request).await {
                    Ok(r) => r,
                    Err(_) => {
                        sender = connect(addr).await;
                        sample.unexpected += 1;
                        continue;
                    }
                };
                let status = response.status();
                let _ = response.into_body().collect().await;
                let latency = t0.elapsed();
                sample.all_requests += 1;
                if t0 >= start {
                    sample.requests += 1;
                    sample.latencies_us.push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
                    if status != expect {
                        sample.unexpected += 1;
                    }
                }
            }
            sample
        }));
    }
    let mut total = Sample { elapsed: duration, ..Default::default() };
    for w in workers {
        let s = w.await.expect("worker");
        total.requests += s.requests;
        total.all_requests += s.all_requests;
        total.unexpected += s.unexpected;
        total.latencies_us.extend(s.latencies_us);
    }
    total
}

/// A streamed response, timed: first byte, whole stream, and the largest gap between two
/// body frames.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamTiming {
    pub first_byte: Duration,
    pub total: Duration,
    pub largest_gap: Duration,
}

/// Sends `request` on a fresh connection and times its body frames.
pub async fn timed_stream(addr: SocketAddr, request: Request<Full<Bytes>>) -> StreamTiming {
    let mut sender = connect(addr).await;
    let t0 = Instant::now();
    let response = sender.send_request(request).await.expect("request");
    let mut body = response.into_body();
    let mut timing = StreamTiming::default();
    let mut last = None::<Instant>;
    while let Some(frame) = body.frame().await {
        let now = Instant::now();
        if frame.map(|f| f.is_data()).unwrap_or(false) {
            if last.is_none() {
                timing.first_byte = now - t0;
            }
            if let Some(prev) = last {
                timing.largest_gap = timing.largest_gap.max(now - prev);
            }
            last = Some(now);
        }
    }
    timing.total = t0.elapsed();
    timing
}
