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
    /// The Redis the server gates through, if any: its script calls and its own CPU are read
    /// around each run (section 1d).
    pub redis: Option<&'a str>,
}

/// One server's figures over the rounds.
#[derive(Clone, Debug)]
pub struct ArmResult {
    /// Throughput and latencies: the median round, with the spread of the rounds.
    pub row: Row,
    /// The server's CPU time per request, µs, per round.
    pub cpu_us: Vec<f64>,
    /// What Redis did per round, when the arm names one.
    pub redis: Vec<RedisWork>,
}

impl ArmResult {
    pub fn cpu_median(&self) -> f64 {
        median(&self.cpu_us)
    }

    /// Requests per script call (the gate's checks per batch on the cached path), Redis' own
    /// CPU per request and its time in the script per request (µs): medians of the rounds.
    pub fn redis_medians(&self) -> Option<[f64; 3]> {
        (!self.redis.is_empty()).then(|| {
            let of = |f: fn(&RedisWork) -> f64| median(&self.redis.iter().map(f).collect::<Vec<_>>());
            [of(|w| w.requests_per_call), of(|w| w.cpu_us), of(|w| w.script_us)]
        })
    }
}

/// What Redis did over one run, per request answered.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedisWork {
    /// Requests answered per script call (`EVALSHA` and `EVAL`, from `INFO commandstats`).
    pub requests_per_call: f64,
    /// Redis' own CPU (`used_cpu_user` + `used_cpu_sys`), µs per request.
    pub cpu_us: f64,
    /// Redis' time executing the scripts (`usec` of the script calls), µs per request.
    pub script_us: f64,
}

/// Redis' counters now: script calls, µs in them, and its CPU in µs.
async fn redis_counters(url: &str) -> Option<[f64; 3]> {
    let client = redis::Client::open(url).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO").arg("commandstats").arg("cpu").query_async(&mut connection).await.ok()?;
    let mut counters = [0.0; 3];
    for line in info.lines() {
        if let Some(stats) = line.strip_prefix("cmdstat_evalsha:").or_else(|| line.strip_prefix("cmdstat_eval:")) {
            for field in stats.split(',') {
                match field.split_once('=') {
                    Some(("calls", v)) => counters[0] += v.parse::<f64>().ok()?,
                    Some(("usec", v)) => counters[1] += v.parse::<f64>().ok()?,
                    _ => {}
                }
            }
        } else if let Some(v) = line.strip_prefix("used_cpu_user:").or_else(|| line.strip_prefix("used_cpu_sys:")) {
            counters[2] += v.trim().parse::<f64>().ok()? * 1e6;
        }
    }
    Some(counters)
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
    let mut redis: Vec<Vec<RedisWork>> = vec![Vec::new(); arms.len()];
    for round in 0..rounds {
        for turn in 0..arms.len() {
            let i = (turn + round) % arms.len();
            let redis_before = match arms[i].redis {
                Some(url) => redis_counters(url).await,
                None => None,
            };
            let before = cpu_ns(arms[i].pid);
            let sample = client::run(arms[i].addr, concurrency, plan.warmup, plan.duration, make.clone(), StatusCode::OK).await;
            let spent = cpu_ns(arms[i].pid).saturating_sub(before);
            let requests = sample.all_requests.max(1) as f64;
            cpu[i].push(spent as f64 / 1000.0 / requests);
            if let (Some(url), Some(b)) = (arms[i].redis, redis_before)
                && let Some(a) = redis_counters(url).await
            {
                redis[i].push(RedisWork {
                    requests_per_call: requests / (a[0] - b[0]).max(1.0),
                    script_us: (a[1] - b[1]) / requests,
                    cpu_us: (a[2] - b[2]) / requests,
                });
            }
            samples[i].push(sample);
        }
    }
    let arms = arms
        .iter()
        .zip(samples)
        .zip(cpu)
        .zip(redis)
        .map(|(((arm, mut runs), cpu_us), redis)| {
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
            let result = ArmResult { row, cpu_us, redis };
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
