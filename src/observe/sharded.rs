//! Counters and histograms for the per-request metrics that concurrent threads update
//! without sharing a cache line: each thread adds to its own shard (its own 128-byte
//! line), and a scrape sums the shards.
//!
//! Measured in `scripts/bench` (section 1c): one shared atomic counter per metric made the
//! recording cost 103 ns per request on one thread but 713 ns on two threads at once, the
//! line bouncing between the cores: 3.7% of a cached `/v1` request's ~19 µs of CPU.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    time::Duration,
};

/// Shards per metric: threads beyond this share (round-robin), still correct.
const SHARDS: usize = 32;

/// This thread's shard, given round-robin on its first use.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

#[repr(align(128))]
#[derive(Default)]
struct Line(AtomicU64);

/// A monotonic counter.
pub struct Counter {
    shards: [Line; SHARDS],
}

impl Default for Counter {
    fn default() -> Self {
        Self { shards: std::array::from_fn(|_| Line::default()) }
    }
}

impl Counter {
    pub fn increment(&self, n: u64) {
        self.shards[shard()].0.fetch_add(n, Relaxed);
    }

    /// The sum of every shard (a scrape's value).
    pub fn total(&self) -> u64 {
        self.shards.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}

/// The upper bounds (seconds) of a histogram's buckets, ascending; `+Inf` is implied.
pub type Bounds = &'static [f64];

/// The most bounds a histogram may have.
const MAX_BOUNDS: usize = 23;

/// One thread's part of a histogram, inline (no pointer to memory another shard's may sit
/// beside) and on lines of its own.
#[repr(align(128))]
struct HistogramShard {
    /// Observations per bucket (not cumulative); the one after the last bound is `+Inf`.
    buckets: [AtomicU64; MAX_BOUNDS + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A histogram of durations with fixed buckets.
pub struct Histogram {
    bounds: Bounds,
    shards: Box<[HistogramShard]>,
}

impl Histogram {
    pub fn new(bounds: Bounds) -> Self {
        assert!(bounds.len() <= MAX_BOUNDS, "at most {MAX_BOUNDS} bounds");
        let shards = (0..SHARDS)
            .map(|_| HistogramShard {
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                count: AtomicU64::new(0),
                sum_nanos: AtomicU64::new(0),
            })
            .collect();
        Self { bounds, shards }
    }

    pub fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = self.bounds.iter().position(|bound| seconds <= *bound).unwrap_or(self.bounds.len());
        let shard = &self.shards[shard()];
        shard.buckets[bucket].fetch_add(1, Relaxed);
        shard.count.fetch_add(1, Relaxed);
        shard.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Cumulative bucket counts (one per bound, then `+Inf`), the count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut per_bucket = vec![0u64; self.bounds.len() + 1];
        let (mut count, mut sum_nanos) = (0u64, 0u64);
        for shard in &self.shards {
            for (total, bucket) in per_bucket.iter_mut().zip(&shard.buckets[..=self.bounds.len()]) {
                *total += bucket.load(Relaxed);
            }
            count += shard.count.load(Relaxed);
            sum_nanos = sum_nanos.saturating_add(shard.sum_nanos.load(Relaxed));
        }
        let mut running = 0;
        for bucket in &mut per_bucket {
            running += *bucket;
            *bucket = running;
        }
        (per_bucket, count, sum_nanos as f64 / 1e9)
    }

    /// Appends this histogram's samples in the Prometheus text format, under `name` with
    /// the one label `label="value"`.
    pub fn render(&self, out: &mut String, name: &str, label: &str, value: &str) {
        let (cumulative, count, sum) = self.snapshot();
        let value = escape(value);
        for (bound, total) in self.bounds.iter().map(|b| format!("{b}")).chain(std::iter::once("+Inf".to_owned())).zip(cumulative) {
            let _ = writeln!(out, "{name}_bucket{{{label}=\"{value}\",le=\"{bound}\"}} {total}");
        }
        let _ = writeln!(out, "{name}_sum{{{label}=\"{value}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{{label}=\"{value}\"}} {count}");
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_their_shards_across_threads() {
        let counter = std::sync::Arc::new(Counter::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| counter.increment(1)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().expect("thread"));
        counter.increment(5);
        assert_eq!(counter.total(), 80_005);
    }

    #[test]
    fn histograms_count_cumulatively_and_render_the_text_format() {
        let histogram = Histogram::new(&[0.001, 0.01, 1.0]);
        for micros in [500, 1_000, 5_000, 20_000, 2_000_000] {
            histogram.record(Duration::from_micros(micros));
        }
        let (cumulative, count, sum) = histogram.snapshot();
        assert_eq!(cumulative, [2, 3, 4, 5], "le is inclusive; +Inf holds everything");
        assert_eq!(count, 5);
        assert!((sum - 2.0265).abs() < 1e-12, "{sum}");
        let mut text = String::new();
        histogram.render(&mut text, "x_seconds", "route", "/v1/keys/{id}");
        assert_eq!(
            text,
            "x_seconds_bucket{route=\"/v1/keys/{id}\",le=\"0.001\"} 2\n\
             x_seconds_bucket{route=\"/v1/keys/{id}\",le=\"0.01\"} 3\n\
             x_seconds_bucket{route=\"/v1/keys/{id}\",le=\"1\"} 4\n\
             x_seconds_bucket{route=\"/v1/keys/{id}\",le=\"+Inf\"} 5\n\
             x_seconds_sum{route=\"/v1/keys/{id}\"} 2.0265\n\
             x_seconds_count{route=\"/v1/keys/{id}\"} 5\n"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
