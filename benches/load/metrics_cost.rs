//! Section 1c: what recording metrics costs the cached `/v1` path.
//!
//! Three servers of the same build and database: metrics off, metrics on (`WJ_METRICS_ADDR`),
//! and metrics off again (the A/A control: what merely being another process does). Two
//! cores shared by the servers and this client make one throughput run differ from the
//! next by several percent, more than the 2% to be shown, so the section:
//!
//! - interleaves the three servers round after round (the order rotating), and takes
//!   medians over the rounds, so that a drift of the machine falls on all three alike;
//! - measures the server's own CPU time per request (the sum of its threads' time on a CPU,
//!   from `/proc/<pid>/task/*/schedstat`, in nanoseconds, over the requests answered in
//!   the run): the cost itself, which the client's share of the cores does not blur;
//! - times the recording alone in this process (the same calls the server makes per
//!   request, on one thread and on two threads at once), and sets it against the server's
//!   CPU time per request.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use hyper::StatusCode;
use workjet::observe::{self, AuthOutcome, CacheLookup, Credential};

use crate::{Plan, client, report::Row};

/// One server in the comparison.
pub struct Arm<'a> {
    pub label: &'static str,
    pub addr: SocketAddr,
    pub pid: u32,
    pub _server: &'a crate::Server,
}

/// One server's figures over the rounds.
#[derive(Clone, Debug)]
pub struct ArmResult {
    /// Throughput and latencies: the median round, with the spread of the rounds.
    pub row: Row,
    /// The server's CPU time per request, µs, per round.
    pub cpu_us: Vec<f64>,
}

impl ArmResult {
    pub fn cpu_median(&self) -> f64 {
        median(&self.cpu_us)
    }
}

/// One concurrency: off, on, control (in that order).
#[derive(Clone, Debug)]
pub struct Comparison {
    pub concurrency: usize,
    pub rounds: usize,
    pub arms: Vec<ArmResult>,
}

/// The recording alone: ns per request.
#[derive(Clone, Copy, Debug)]
pub struct Recording {
    pub one_thread_ns: f64,
    pub two_threads_ns: f64,
}

pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// CPU time of every thread of `pid` so far, in nanoseconds.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// Runs the cached request against the arms, `rounds` times, interleaved.
pub async fn compare(plan: &Plan, arms: &[Arm<'_>], concurrency: usize, rounds: usize, make: client::MakeRequest) -> Comparison {
    let mut samples: Vec<Vec<client::Sample>> = vec![Vec::new(); arms.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); arms.len()];
    for round in 0..rounds {
        for turn in 0..arms.len() {
            let i = (turn + round) % arms.len();
            let before = cpu_ns(arms[i].pid);
            let sample = client::run(arms[i].addr, concurrency, plan.warmup, plan.duration, make.clone(), StatusCode::OK).await;
            let spent = cpu_ns(arms[i].pid).saturating_sub(before);
            cpu[i].push(spent as f64 / 1000.0 / sample.all_requests.max(1) as f64);
            samples[i].push(sample);
        }
    }
    let arms = arms
        .iter()
        .zip(samples)
        .zip(cpu)
        .map(|((arm, mut runs), cpu_us)| {
            runs.sort_by(|a, b| a.throughput().total_cmp(&b.throughput()));
            let mid = &runs[runs.len() / 2];
            let row = Row {
                label: arm.label.to_owned(),
                concurrency,
                throughput: median(&runs.iter().map(client::Sample::throughput).collect::<Vec<_>>()),
                min: runs.first().map(client::Sample::throughput).unwrap_or_default(),
                max: runs.last().map(client::Sample::throughput).unwrap_or_default(),
                p50_ms: mid.percentile_ms(0.5),
                p99_ms: mid.percentile_ms(0.99),
                unexpected: runs.iter().map(|s| s.unexpected).sum(),
            };
            let result = ArmResult { row, cpu_us };
            eprintln!(
                "  {:<44} c={:<3} {:>9.0} req/s  server CPU {:.2} µs/request (rounds {:?})",
                result.row.label,
                concurrency,
                result.row.throughput,
                result.cpu_median(),
                result.cpu_us.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>()
            );
            result
        })
        .collect();
    Comparison { concurrency, rounds, arms }
}

/// What the server records per cached `/v1` request, in this process: the two clock reads,
/// the route's handles, the request counter and duration histogram, the authentication
/// decision and the cache lookup.
fn record_one(template: &str) {
    let started = Instant::now();
    let route = observe::route_label(template);
    observe::auth_cache_lookup(CacheLookup::Hit);
    observe::auth_decision(Credential::Key, AuthOutcome::Ok);
    observe::http_request(route, "GET", 200, started.elapsed());
}

/// Times [`record_one`] on one thread, then on two at once (contending for the same
/// counters, as the server's two workers do).
pub fn recording() -> Recording {
    let _handle = observe::install();
    let template: Arc<str> = Arc::from("/v1/models");
    let per_thread = 2_000_000u32;
    let timed = |threads: usize| {
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let template = template.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        record_one(&template);
                    }
                    barrier.wait();
                    let t0 = Instant::now();
                    for _ in 0..per_thread {
                        record_one(&template);
                    }
                    t0.elapsed()
                })
            })
            .collect();
        let longest = handles.into_iter().map(|h| h.join().expect("thread")).max().unwrap_or(Duration::ZERO);
        longest.as_nanos() as f64 / f64::from(per_thread)
    };
    Recording { one_thread_ns: timed(1), two_threads_ns: timed(2) }
}
