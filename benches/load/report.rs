//! `BENCHMARKS.md` and `benchmarks.svg`: every figure beside its baseline and target.

use std::{fmt::Write, time::Duration};

use crate::client::StreamTiming;

/// One portal run: the database, the keys stored, and the create and revoke latencies.
pub type PortalRun = (String, usize, (Vec<Duration>, Vec<Duration>));

/// One measured load (median of the runs).
#[derive(Clone, Debug)]
pub struct Row {
    pub label: String,
    pub concurrency: usize,
    pub throughput: f64,
    pub min: f64,
    pub max: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub unexpected: u64,
}

/// A single number with its target.
pub struct Figure {
    pub label: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<f64>,
    pub lower_is_better: bool,
}

struct Target {
    what: String,
    target: String,
    measured: String,
    met: bool,
    /// Not measured at all (e.g. nginx missing): neither met nor missed.
    skipped: bool,
}

/// The report being assembled.
pub struct Report {
    command: String,
    body: String,
    bars: Vec<Bar>,
    targets: Vec<Target>,
}

/// One bar of the chart: a throughput ratio, and the least ratio its target asks for (`None`:
/// a reported figure, or one whose target is not a ratio, such as added latency).
struct Bar {
    label: String,
    ratio: f64,
    target: Option<f64>,
}

fn bar(label: impl Into<String>, ratio: f64, target: Option<f64>) -> Bar {
    Bar { label: label.into(), ratio, target }
}

fn row(r: &Row, baseline: Option<&Row>) -> String {
    let ratio = baseline.map(|b| format!("{:.2}×", r.throughput / b.throughput)).unwrap_or_else(|| "baseline".into());
    format!(
        "| {} | {} | {:.0} ({:.0}–{:.0}) | {:.3} | {:.3} | {} | {} |\n",
        r.label, r.concurrency, r.throughput, r.min, r.max, r.p50_ms, r.p99_ms, ratio, r.unexpected
    )
}

const ROW_HEADER: &str =
    "| request | connections | req/s median (min–max) | p50 ms | p99 ms | vs baseline | unexpected |\n|---|---|---|---|---|---|---|\n";

const COMPARISON_HEADER: &str = "| request | connections | req/s median (min–max) | p50 ms | p99 ms | vs the first | server CPU µs/request, median (min–max) | vs the first | unexpected |\n|---|---|---|---|---|---|---|---|---|\n";

/// A row of an interleaved comparison (sections 1c and 1d), against `base`.
fn comparison_row(arm: &crate::metrics_cost::ArmResult, base: &crate::metrics_cost::ArmResult) -> String {
    let (ratio, cpu_ratio) = if std::ptr::eq(arm, base) {
        ("baseline".to_owned(), "baseline".to_owned())
    } else {
        (format!("{:.3}×", arm.row.throughput / base.row.throughput), format!("{:.3}×", arm.cpu_median() / base.cpu_median()))
    };
    let (lo, hi) = arm.cpu_us.iter().fold((f64::MAX, 0.0f64), |(lo, hi), c| (lo.min(*c), hi.max(*c)));
    let r = &arm.row;
    format!(
        "| {} | {} | {:.0} ({:.0}–{:.0}) | {:.3} | {:.3} | {ratio} | {:.2} ({lo:.2}–{hi:.2}) | {cpu_ratio} | {} |\n",
        r.label,
        r.concurrency,
        r.throughput,
        r.min,
        r.max,
        r.p50_ms,
        r.p99_ms,
        arm.cpu_median(),
        r.unexpected
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

impl Report {
    pub fn new(args: String) -> Self {
        Self {
            command: if args.is_empty() { "scripts/bench".into() } else { format!("scripts/bench {args}") },
            body: String::new(),
            bars: Vec::new(),
            targets: Vec::new(),
        }
    }

    fn target(&mut self, what: &str, target: String, measured: String, met: bool) {
        self.targets.push(Target { what: what.into(), target, measured, met, skipped: false });
    }

    fn not_measured(&mut self, what: &str, target: String, why: &str) {
        self.targets.push(Target { what: what.into(), target, measured: format!("not measured ({why})"), met: false, skipped: true });
    }

    /// `wrk`: the cross-check rows (`wrk -t2 -c64`, alternating, medians of three), or why
    /// there are none.
    pub fn auth_overhead(&mut self, runs: &[(Row, Row, Row)], wrk: &Result<(Row, Row), String>) {
        self.body.push_str("## 1. Authentication overhead\n\n`GET /v1/models` with a valid key against the same server's unauthenticated `GET /healthz`; that server's store holds the number of keys the random row names.\n\n");
        self.body.push_str(ROW_HEADER);
        for (base, hot, random) in runs {
            self.body.push_str(&row(base, None));
            self.body.push_str(&row(hot, Some(base)));
            self.body.push_str(&row(random, Some(base)));
            self.bars.push(bar(format!("auth, hot key, c={}", base.concurrency), hot.throughput / base.throughput, Some(0.9)));
            self.bars.push(bar(format!("auth, random keys, c={}", base.concurrency), random.throughput / base.throughput, Some(0.9)));
            self.target(
                &format!("authenticated throughput, hot key, c={}", base.concurrency),
                "≥ 0.90× baseline".into(),
                format!("{:.2}×", hot.throughput / base.throughput),
                hot.throughput / base.throughput >= 0.9,
            );
            self.target(
                &format!("authenticated throughput, random keys, c={}", base.concurrency),
                "≥ 0.90× baseline".into(),
                format!("{:.2}×", random.throughput / base.throughput),
                random.throughput / base.throughput >= 0.9,
            );
            if base.concurrency == 1 {
                let added = hot.p50_ms - base.p50_ms;
                self.target("p50 added by authentication, c=1", "≤ 0.05 ms".into(), format!("{added:.3} ms"), added <= 0.05);
            }
        }
        match wrk {
            Ok((base, hot)) => {
                self.body.push_str(&row(base, None));
                self.body.push_str(&row(hot, Some(base)));
                self.target(
                    "authenticated throughput, hot key, c=64, wrk",
                    "≥ 0.90× baseline".into(),
                    format!("{:.2}×", hot.throughput / base.throughput),
                    hot.throughput / base.throughput >= 0.9,
                );
                self.body.push_str("\nThe `wrk` rows: `wrk -t2 -c64 --latency`, `/healthz` and `/v1/models` alternating, three runs each, the median (min–max of the three).\n");
            }
            Err(why) if !why.is_empty() => self.body.push_str(&format!("\nThe `wrk` cross-check: {why}.\n")),
            Err(_) => {}
        }
        self.body.push('\n');
    }

    pub fn guardrails(&mut self, runs: &[(Row, Row)]) {
        self.body.push_str("### 1b. Guardrails on the cached path\n\nThe same cached request with a key that has a model allow-list and a daily token budget (the list filters `/v1/models`; the budget is only read on inference) against a key without them.\n\n");
        self.body.push_str(ROW_HEADER);
        for (plain, guarded) in runs {
            self.body.push_str(&row(plain, None));
            self.body.push_str(&row(guarded, Some(plain)));
            self.target(
                &format!("cached /v1 with guardrails set, c={}", plain.concurrency),
                "no slower (≥ 0.95×, the noise of one run)".into(),
                format!("{:.2}×", guarded.throughput / plain.throughput),
                guarded.throughput >= plain.throughput * 0.95,
            );
        }
        self.body.push('\n');
    }

    pub fn metrics_cost(&mut self, runs: &[crate::metrics_cost::Comparison], recording: crate::metrics_cost::Recording, recorded: u64) {
        let rounds = runs.first().map_or(0, |r| r.rounds);
        self.body.push_str(&format!("### 1c. Metrics on the cached path\n\nThe same cached request on three servers of this build and database: metrics off, metrics on (`WJ_METRICS_ADDR` set: every request counted by route, method and status, timed into a histogram, its authentication decision and cache lookup counted), and metrics off again (the A/A control: what merely being another process does). The three are interleaved for {rounds} rounds (the order rotating), and each row is the median round, with the spread of the rounds. *Server CPU per request* is the server's own time on a CPU (all its threads, from `/proc/<pid>/task/*/schedstat`) over the requests it answered in the round: the cost itself, which this client's share of the two cores does not blur. The metered server had recorded {recorded} `/v1/models` requests when scraped afterwards.\n\n"));
        self.body.push_str(COMPARISON_HEADER);
        for comparison in runs {
            let off = &comparison.arms[0];
            for arm in &comparison.arms {
                self.body.push_str(&comparison_row(arm, off));
            }
        }
        let c64_cpu = runs.iter().find(|r| r.concurrency == 64).map_or(0.0, |r| r.arms[0].cpu_median());
        self.body.push_str(&format!(
            "\nThe recording alone (the calls the server makes per request, timed in the benchmark's process): **{:.0} ns** per request on one thread, **{:.0} ns** on two threads at once (contending for the same counters, as the server's two workers do): {:.2}% of the {:.2} µs of CPU a cached request costs the server without metrics at 64 connections.\n\n",
            recording.one_thread_ns,
            recording.two_threads_ns,
            recording.two_threads_ns / 10.0 / c64_cpu.max(f64::MIN_POSITIVE),
            c64_cpu
        ));
        for comparison in runs {
            let [off, on, control] = [&comparison.arms[0], &comparison.arms[1], &comparison.arms[2]];
            // The baseline is both servers without metrics (the first and the A/A control):
            // two samples of "no metrics" rather than one, so one process's luck counts half.
            let base_cpu = (off.cpu_median() + control.cpu_median()) / 2.0;
            let base_throughput = (off.row.throughput + control.row.throughput) / 2.0;
            let cpu = on.cpu_median() / base_cpu;
            self.target(
                &format!("server CPU per cached /v1 request with metrics recorded, c={}", comparison.concurrency),
                "costs at most 2% (≤ 1.02× the two servers without metrics)".into(),
                format!(
                    "{cpu:.3}× (the two without metrics differ by {:.3}×; throughput {:.3}×)",
                    control.cpu_median() / off.cpu_median(),
                    on.row.throughput / base_throughput
                ),
                cpu <= 1.02,
            );
        }
        self.target(
            "the recording alone, two threads, against a cached request's server CPU (c=64)",
            "≤ 2%".into(),
            format!(
                "{:.2}% ({:.0} ns of {:.2} µs)",
                recording.two_threads_ns / 10.0 / c64_cpu.max(f64::MIN_POSITIVE),
                recording.two_threads_ns,
                c64_cpu
            ),
            recording.two_threads_ns / 1000.0 <= c64_cpu * 0.02,
        );
    }

    /// `runs`: the hot key at each concurrency (c=64 holds the target); `spread`: a key per
    /// connection at c=64 (no two checks of a batch share a bucket).
    /// `wrk`: the hot key on both servers with `wrk -t2 -c64` (alternating, medians of three),
    /// or why there are none.
    pub fn redis_gate(
        &mut self,
        runs: &[crate::metrics_cost::Comparison],
        spread: &crate::metrics_cost::Comparison,
        wrk: &Result<(Row, Row), String>,
    ) {
        let rounds = runs.first().map_or(0, |r| r.rounds);
        self.body.push_str(&format!("### 1d. The Redis gate on the cached path\n\nThe same cached request on two servers of this build and database: without Redis (the rate limit and the revocation generation decided in the process) and with `WJ_REDIS_URL` (every request's rate-limit spend and revocation check is one step of an atomic script in Redis; the checks of concurrent requests go to Redis together in one script call, and the checks of one key in it are stepped as one group). The hot key is every connection's; the last two rows give each of the 64 connections a key of its own, so that no two checks of a batch share a bucket. Interleaved for {rounds} rounds; each row is the median round, with the spread of the rounds; server CPU as in 1c (Redis' own CPU not included: it follows the table).\n\n"));
        self.body.push_str(COMPARISON_HEADER);
        for comparison in runs.iter().chain([spread]) {
            let base = &comparison.arms[0];
            for arm in &comparison.arms {
                self.body.push_str(&comparison_row(arm, base));
            }
        }
        self.body.push('\n');
        self.body.push_str("What Redis did for the gated server, per request answered (read from its `INFO commandstats` and `INFO cpu` around each run; medians of the rounds): *requests per script call* is how many gate checks a batch carried on average; *Redis CPU* is all of Redis' own CPU time, on the same two cores; *in the script* is Redis' time executing the gate's script.\n\n| request | connections | requests per script call | Redis CPU µs per request | in the script, µs per request |\n|---|---|---|---|---|\n");
        for comparison in runs.iter().chain([spread]) {
            for arm in &comparison.arms {
                if let Some([per_call, cpu, script]) = arm.redis_medians() {
                    self.body.push_str(&format!(
                        "| {} | {} | {per_call:.1} | {cpu:.2} | {script:.2} |\n",
                        arm.row.label, comparison.concurrency
                    ));
                }
            }
        }
        self.body.push('\n');
        if let Some(hot) = runs.iter().find(|c| c.concurrency == 64) {
            let ratio = hot.arms[1].row.throughput / hot.arms[0].row.throughput;
            self.bars.push(bar("Redis gate, c=64", ratio, Some(0.75)));
            self.target("cached /v1 through the Redis gate vs in-process, c=64", "≥ 0.75×".into(), format!("{ratio:.3}×"), ratio >= 0.75);
        }
        let ratio = spread.arms[1].row.throughput / spread.arms[0].row.throughput;
        self.bars.push(bar("Redis gate, a key per connection, c=64", ratio, None));
        match wrk {
            Ok((in_process, gated)) => {
                self.body.push_str("The cross-check with another client: `wrk -t2 -c64 --latency`, the hot key on the in-process server and on the gated one, alternating, three runs each, the median (min–max of the three).\n\n");
                self.body.push_str(ROW_HEADER);
                self.body.push_str(&row(in_process, None));
                self.body.push_str(&row(gated, Some(in_process)));
                self.body.push('\n');
                let ratio = gated.throughput / in_process.throughput;
                self.bars.push(bar("Redis gate, c=64, wrk", ratio, Some(0.75)));
                self.target(
                    "cached /v1 through the Redis gate vs in-process, c=64, wrk",
                    "≥ 0.75×".into(),
                    format!("{ratio:.3}×"),
                    ratio >= 0.75,
                );
            }
            Err(why) if !why.is_empty() => self.body.push_str(&format!("The `wrk` cross-check: {why}.\n\n")),
            Err(_) => {}
        }
    }

    pub fn junk(&mut self, valid: &Row, bad: &Row, unknown: &Row, repeated: &Row) {
        self.body.push_str("## 3. Junk keys\n\nThrottling disabled for the measurement (`WJ_AUTH_FAILURES_PER_MINUTE` at its maximum), so each junk request is really checked. A well-formed key that turns out unknown costs one database read, then is remembered (a bounded negative cache): repeating it costs no read. With the default throttle, an address gets 429 for never-seen keys after 30 unknown ones a minute; keys it already sent (valid, revoked, remembered unknown) are answered as before.\n\n");
        self.body.push_str(ROW_HEADER);
        self.body.push_str(&row(valid, None));
        self.body.push_str(&row(bad, Some(valid)));
        self.body.push_str(&row(unknown, Some(valid)));
        self.body.push_str(&row(repeated, Some(valid)));
        self.body.push('\n');
        self.target(
            "bad-checksum keys vs valid keys",
            "cheaper (≥ 1.0×)".into(),
            format!("{:.2}×", bad.throughput / valid.throughput),
            bad.throughput >= valid.throughput * 0.95,
        );
        self.target(
            "one repeated unknown key vs a valid key, c=64",
            "≥ 0.9×".into(),
            format!("{:.2}×", repeated.throughput / valid.throughput),
            repeated.throughput >= valid.throughput * 0.9,
        );
    }

    pub fn gateway(&mut self, runs: &[(Row, Row, Row)], streams: &[(String, Vec<StreamTiming>)]) {
        self.body.push_str("## 4. Gateway overhead\n\n`POST /v1/chat/completions` through Workjet to a local fake upstream, against the fake upstream called directly. The failover rows ask for a model whose first provider refuses connections (nothing listens on its port) and whose second is the same fake, with the cool-down off, so that every request pays for the refused connection — the worst case (with the default 10 s cool-down a dead provider costs one request per 10 s).\n\n");
        self.body.push_str(ROW_HEADER);
        let mut failover_added = Vec::new();
        for (direct, via, failover) in runs {
            self.body.push_str(&row(direct, None));
            self.body.push_str(&row(via, Some(direct)));
            self.body.push_str(&row(failover, Some(via)));
            failover_added.push(format!(
                "c={}: p50 {:+.3} ms, throughput {:.2}×",
                direct.concurrency,
                failover.p50_ms - via.p50_ms,
                failover.throughput / via.throughput
            ));
            self.bars.push(bar(format!("gateway, c={}", direct.concurrency), via.throughput / direct.throughput, None));
            if direct.concurrency == 1 {
                let added = via.p50_ms - direct.p50_ms;
                self.target("p50 added by the gateway, non-streaming, c=1", "≤ 0.3 ms".into(), format!("{added:.3} ms"), added <= 0.3);
            } else {
                self.target(
                    "non-streaming throughput through the gateway, c=64",
                    "≥ 10,000 req/s".into(),
                    format!("{:.0} req/s", via.throughput),
                    via.throughput >= 10_000.0,
                );
            }
        }
        let _ = writeln!(
            self.body,
            "\nFailover's cost over one provider (first provider refusing connections): {}.",
            failover_added.join("; ")
        );
        self.body.push_str("\nStreaming (`\"stream\": true`), one request at a time:\n\n| stream | runs | first byte p50 ms | total p50 ms | largest gap between chunks, max ms |\n|---|---|---|---|---|\n");
        for (label, timings) in streams {
            let first: Vec<Duration> = timings.iter().map(|t| t.first_byte).collect();
            let total: Vec<Duration> = timings.iter().map(|t| t.total).collect();
            let gap = timings.iter().map(|t| t.largest_gap).max().unwrap_or_default();
            let _ = writeln!(
                self.body,
                "| {label} | {} | {:.3} | {:.3} | {:.3} |",
                timings.len(),
                ms(pct(&first, 0.5)),
                ms(pct(&total, 0.5)),
                ms(gap)
            );
        }
        let first = |i: usize| ms(pct(&streams[i].1.iter().map(|t| t.first_byte).collect::<Vec<_>>(), 0.5));
        let added_ttfb = first(1) - first(0);
        self.target("p50 first byte added, streaming, c=1", "≤ 0.3 ms".into(), format!("{added_ttfb:.3} ms"), added_ttfb <= 0.3);
        let direct_gap = streams[2].1.iter().map(|t| t.largest_gap).max().unwrap_or_default();
        let via_gap = streams[3].1.iter().map(|t| t.largest_gap).max().unwrap_or_default();
        let held = ms(via_gap) - ms(direct_gap);
        self.target(
            "longest a chunk is held (largest gap via − direct, 20 ms chunks)",
            "≤ 5 ms".into(),
            format!("{held:.3} ms"),
            held <= 5.0,
        );
        self.body.push('\n');
    }

    /// Per connection count: rows of both builds, alternating (three rounds); each figure is
    /// the median over the rounds of one request kind on one build.
    pub fn gateway_against_baseline(&mut self, runs: &[Vec<Row>]) {
        self.body.push_str("### 4b. This build against a baseline build\n\nThe gateway request and the cached `/v1` path through two builds of `workjet` (`WJ_BENCH_BASELINE_BINARY`), each on its own fresh SQLite database and the same fake upstream, alternating three rounds each.\n\n");
        self.body.push_str(ROW_HEADER);
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        for rows in runs {
            let concurrency = rows[0].concurrency;
            for kind in ["chat completion through Workjet", "GET /v1/models (cached key)"] {
                let side =
                    |build: &str| -> Vec<&Row> { rows.iter().filter(|r| r.label.starts_with(kind) && r.label.ends_with(build)).collect() };
                let (baseline, current) = (side("baseline build"), side("this build"));
                for (b, c) in baseline.iter().zip(&current) {
                    self.body.push_str(&row(b, None));
                    self.body.push_str(&row(c, Some(b)));
                }
                let p50 = |rows: &[&Row]| median(rows.iter().map(|r| r.p50_ms).collect());
                let throughput = |rows: &[&Row]| median(rows.iter().map(|r| r.throughput).collect());
                let added = p50(&current) - p50(&baseline);
                let ratio = throughput(&current) / throughput(&baseline);
                let measured = format!(
                    "p50 {added:+.3} ms ({:.3} vs {:.3}); {ratio:.2}× throughput ({:.0} vs {:.0} req/s)",
                    p50(&current),
                    p50(&baseline),
                    throughput(&current),
                    throughput(&baseline)
                );
                if kind.starts_with("chat") && concurrency == 1 {
                    self.target("gateway p50 against the baseline build, c=1", "within ±0.05 ms".into(), measured, added.abs() <= 0.05);
                } else {
                    self.target(&format!("{kind} against the baseline build, c={concurrency}"), "reported".into(), measured, true);
                }
            }
        }
        self.body.push('\n');
    }

    pub fn memory(&mut self, idle_kib: u64, connections: usize, before_kib: u64, after_kib: u64) {
        let per_conn = (after_kib.saturating_sub(before_kib) * 1024) as f64 / connections.max(1) as f64;
        let _ = writeln!(
            self.body,
            "## 6. Memory\n\n| what | measured |\n|---|---|\n| RSS idle, after start-up | {:.1} MiB |\n| RSS with {connections} idle keep-alive connections | {:.1} MiB ({:.1} KiB per connection) |\n",
            idle_kib as f64 / 1024.0,
            after_kib as f64 / 1024.0,
            per_conn / 1024.0
        );
        self.target("RSS idle", "≤ 30 MB".into(), format!("{:.1} MB", idle_kib as f64 * 1024.0 / 1e6), idle_kib as f64 * 1024.0 <= 30e6);
        self.target(
            &format!("memory per idle keep-alive connection ({connections})"),
            "≤ 20 KiB".into(),
            format!("{:.1} KiB", per_conn / 1024.0),
            per_conn <= 20.0 * 1024.0,
        );
    }

    /// The key cache's memory per key: what it holds, and the growth while filling it.
    pub fn cache_memory(&mut self, figure: Figure, grown: f64) {
        let _ = writeln!(
            self.body,
            "Key cache: {} = **{:.1} {}**, the resident memory it holds once the allocator has returned what it freed ({grown:.1} {} of growth while filling it: glibc keeps the hash tables' outgrown arrays resident for reuse).\n",
            figure.label, figure.value, figure.unit, figure.unit
        );
        if let Some(t) = figure.target {
            let met = if figure.lower_is_better { figure.value <= t } else { figure.value >= t };
            self.target(&figure.label, format!("≤ {t} {}", figure.unit), format!("{:.1} {}", figure.value, figure.unit), met);
        }
    }

    pub fn key_store(&mut self, points: &[(String, usize, Row, f64)]) {
        self.body.push_str("## 2. Key-store scale\n\nThe same authenticated request with more keys stored (random keys from a pool of 500, 64 connections); first use = p50 added by a key's first request (a cache miss that reads the database) over a cached request.\n\n| database | keys stored | req/s median (min–max) | vs smallest | p50 ms | p99 ms | first use adds (p50) |\n|---|---|---|---|---|---|---|\n");
        for (db, size, r, miss) in points {
            let first = points.iter().find(|(d, ..)| d == db).map(|(_, _, r0, _)| r0.throughput).unwrap_or(r.throughput);
            let _ = writeln!(
                self.body,
                "| {db} | {size} | {:.0} ({:.0}–{:.0}) | {:.2}× | {:.3} | {:.3} | {miss:.3} ms |",
                r.throughput,
                r.min,
                r.max,
                r.throughput / first,
                r.p50_ms,
                r.p99_ms
            );
        }
        self.body.push('\n');
        for db in points.iter().map(|(d, ..)| d.clone()).collect::<std::collections::BTreeSet<_>>() {
            let of_db: Vec<_> = points.iter().filter(|(d, ..)| *d == db).collect();
            if let (Some(first), Some(last)) = (of_db.first(), of_db.last()) {
                let ratio = last.2.throughput / first.2.throughput;
                let short = db.split(" (").next().unwrap_or(&db);
                self.bars.push(bar(format!("{short}: {} vs {} keys", last.1, first.1), ratio, Some(0.9)));
                self.target(
                    &format!("{db}: {} keys vs {} keys", last.1, first.1),
                    "within 10%".into(),
                    format!("{ratio:.2}×"),
                    ratio >= 0.9,
                );
                let limit = if db.starts_with("SQLite") { 0.5 } else { 1.0 };
                let worst = of_db.iter().map(|p| p.3).fold(0.0f64, f64::max);
                self.target(
                    &format!("{db}: first use (cache miss) p50 added"),
                    format!("≤ {limit} ms"),
                    format!("{worst:.3} ms"),
                    worst <= limit,
                );
            }
        }
    }

    pub fn portal(&mut self, runs: &[PortalRun]) {
        self.body.push_str("## 5. Portal path\n\nCreate and revoke through the portal's server functions, with the keys of the previous section stored.\n\n| database | keys stored | create p50 ms | create p99 ms | revoke p50 ms | revoke p99 ms |\n|---|---|---|---|---|---|\n");
        for (db, size, (creates, revokes)) in runs {
            let _ = writeln!(
                self.body,
                "| {db} | {size} | {:.3} | {:.3} | {:.3} | {:.3} |",
                ms(pct(creates, 0.5)),
                ms(pct(creates, 0.99)),
                ms(pct(revokes, 0.5)),
                ms(pct(revokes, 0.99))
            );
            let ok = ms(pct(creates, 0.5)) <= 2.0
                && ms(pct(creates, 0.99)) <= 10.0
                && ms(pct(revokes, 0.5)) <= 2.0
                && ms(pct(revokes, 0.99)) <= 10.0;
            self.target(
                &format!("{db}: create/revoke latency"),
                "p50 ≤ 2 ms, p99 ≤ 10 ms".into(),
                format!(
                    "create {:.2}/{:.2}, revoke {:.2}/{:.2} ms",
                    ms(pct(creates, 0.5)),
                    ms(pct(creates, 0.99)),
                    ms(pct(revokes, 0.5)),
                    ms(pct(revokes, 0.99))
                ),
                ok,
            );
        }
        self.body.push('\n');
    }

    pub fn revocation(&mut self, single: &(u64, u64), two: Option<&((u64, u64), Row, Row)>) {
        let _ = writeln!(
            self.body,
            "## 7. Revocation under load\n\n64 connections use a key while it is revoked; requests sent after the revoke returned and still accepted:\n\n| setup | requests | accepted after revoke |\n|---|---|---|\n| one instance (SQLite) | {} | {} |",
            single.0, single.1
        );
        self.target("accepted after revoke, one instance", "0".into(), single.1.to_string(), single.1 == 0);
        if let Some((two, c1, c64)) = two {
            let _ = writeln!(self.body, "| two instances (PostgreSQL + Redis; revoked on A, used on B) | {} | {} |", two.0, two.1);
            self.target("accepted after revoke, two instances", "0".into(), two.1.to_string(), two.1 == 0);
            let _ = writeln!(
                self.body,
                "\nWith Redis every cached lookup also costs one script round trip (budget + generation):\n\n{ROW_HEADER}{}{}",
                row(c1, None),
                row(c64, None)
            );
        } else {
            self.body.push_str("| two instances | not measured (set WJ_BENCH_POSTGRES_URL and WJ_BENCH_REDIS_URL) | |\n");
        }
        self.body.push('\n');
    }

    /// 4c: per connection count, the fake upstream directly, through nginx, through Workjet.
    pub fn nginx(&mut self, result: &Result<Vec<crate::nginx::Rows>, String>) {
        self.body.push_str("### 4c. The gateway beside nginx\n\nThe same non-streaming chat completion to the same fake upstream: directly, through nginx as a plain reverse proxy (`proxy_pass` to an `upstream` with a keep-alive pool of 64, HTTP/1.1, `proxy_buffering off`, access log off, `worker_processes auto`), and through Workjet, which also parses the request's JSON, authenticates its key, checks its guardrails and records usage — work nginx does not do. Added p50 = p50 through the proxy − p50 directly. **CPU per request** = the proxy's utime and stime from `/proc` (nginx: its master and workers) over the row's runs, warm-ups included, ÷ the requests answered in them.\n\n");
        let rows = match result {
            Ok(rows) => rows,
            Err(why) => {
                let _ = writeln!(self.body, "Skipped ({why}): no figure.\n");
                self.not_measured("gateway throughput beside nginx, c=64", "≥ 0.8× nginx".into(), why);
                self.not_measured("p50 added by the gateway beside nginx's, c=1", "≤ nginx's + 0.05 ms".into(), why);
                return;
            }
        };
        self.body.push_str(ROW_HEADER);
        for rows in rows {
            self.body.push_str(&row(&rows.direct, None));
            self.body.push_str(&row(&rows.nginx, Some(&rows.direct)));
            self.body.push_str(&row(&rows.workjet, Some(&rows.direct)));
        }
        self.body.push_str(
            "\n| connections | nginx adds (p50) | Workjet adds (p50) | Workjet ÷ nginx throughput | nginx CPU µs per request (user + system) | Workjet CPU µs per request (user + system) | Workjet ÷ nginx CPU |\n|---|---|---|---|---|---|---|\n",
        );
        for crate::nginx::Rows { direct, nginx, workjet: via, nginx_cpu, workjet_cpu } in rows {
            let c = direct.concurrency;
            let (nginx_added, via_added) = (nginx.p50_ms - direct.p50_ms, via.p50_ms - direct.p50_ms);
            let ratio = via.throughput / nginx.throughput;
            let _ = writeln!(
                self.body,
                "| {c} | {nginx_added:.3} ms | {via_added:.3} ms | {ratio:.2}× | {:.1} ({:.1} + {:.1}) | {:.1} ({:.1} + {:.1}) | {:.2}× |",
                nginx_cpu.total_us(),
                nginx_cpu.user_us,
                nginx_cpu.system_us,
                workjet_cpu.total_us(),
                workjet_cpu.user_us,
                workjet_cpu.system_us,
                workjet_cpu.total_us() / nginx_cpu.total_us(),
            );
            self.bars.push(bar(format!("nginx, c={c}"), nginx.throughput / direct.throughput, None));
            self.bars.push(bar(format!("gateway beside nginx, c={c}"), via.throughput / direct.throughput, None));
            if c == 1 {
                self.target(
                    "p50 added by the gateway beside nginx's, c=1",
                    "≤ nginx's + 0.05 ms".into(),
                    format!("{via_added:.3} ms vs nginx {nginx_added:.3} ms ({:+.3} ms)", via_added - nginx_added),
                    via_added <= nginx_added + 0.05,
                );
            } else {
                self.target(
                    &format!("gateway throughput beside nginx, c={c}"),
                    "≥ 0.8× nginx".into(),
                    format!(
                        "{ratio:.2}× ({:.0} vs {:.0} req/s; CPU per request {:.1} vs {:.1} µs)",
                        via.throughput,
                        nginx.throughput,
                        workjet_cpu.total_us(),
                        nginx_cpu.total_us()
                    ),
                    ratio >= 0.8,
                );
            }
        }
        self.body.push('\n');
    }

    /// 4d: concurrent streams, straight to the fake upstream and through Workjet.
    pub fn streams(&mut self, section: &crate::streams::Section) {
        use crate::streams::{CHUNKS, GAP};
        let nginx_note = match (&section.nginx_skipped, section.nginx_idle_kib) {
            (Some(why), _) => format!(" nginx was not measured ({why})."),
            (None, Some(idle)) => format!(
                " nginx (the same configuration as section 4c: `proxy_pass`, `proxy_buffering off`, as many workers as cores) runs as the other proxy; its memory and CPU are its master's and workers' together, idle after its own warm-up: {:.1} MiB.",
                idle as f64 / 1024.0
            ),
            (None, None) => String::new(),
        };
        let _ = write!(
            self.body,
            "### 4d. Concurrent streams\n\nStreaming chat completions held open together, one connection each (`Connection: close`), opened over 0.2–1.5 s (10,000 a second); the fake upstream sends {CHUNKS} chunks {} ms apart, then usage and `[DONE]`. The fake upstream and the client are hand-written HTTP/1.1 on tokio's TCP (no per-chunk allocation), each in a process of its own (the bench binary, and again as the fake), on the same cores as the server. \
             **Chunk delay** = a chunk's arrival at the client − the time the fake upstream scheduled it for (its start + i × {} ms, stamped in the chunk, on the clock the client shares), so it counts the fake's own lateness, the transit and, through a proxy, the proxy; the direct run is the baseline, and **added** = through the proxy − directly, percentile by percentile. \
             The client undoes the chunked framing before it looks for the stamps (a proxy may cut its chunks anywhere in the upstream's). An error is a failed connection, a status other than 200, an answer not chunked or framed wrongly, a stream cut short or a wrong chunk count. **Memory per open stream** = (the proxy's RSS at the 50 ms sample with the most streams open − its RSS idle after the warm-up) ÷ streams open then. A stream not done within 20 s of the run's start (ten times its schedule) counts as an error; the chunks it delivered until then count in the delays and the CPU per chunk, those still due do not. **CPU** = utime + stime from `/proc` over the run (ramp to last byte), per 1,000 chunks delivered, each stream's set-up included; the client's figure is the bench process's. \
             The first count is a light load, one these cores can schedule with the client and the fake upstream on them too: what a proxy adds per chunk when the machine is not overloaded. RLIMIT_NOFILE {}; Workjet's RSS idle after a warm-up of 200 streams: {:.1} MiB.{nginx_note}\n\n\
             | run | streams | peak open | errors | chunk delay p50 ms | p99 ms | max ms | chunks/s | wall s | proxy KiB per open stream | proxy CPU ms per 1,000 chunks | fake upstream CPU ms per 1,000 | client CPU ms per 1,000 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            GAP.as_millis(),
            GAP.as_millis(),
            section.nofile,
            section.server_idle_kib as f64 / 1024.0
        );
        let dash = || "–".to_owned();
        for count in section.light.iter().chain(&section.runs) {
            for r in [Some(&count.direct), count.nginx.as_ref(), Some(&count.via)].into_iter().flatten() {
                let errors = if r.errors.is_empty() {
                    "0".to_owned()
                } else {
                    format!("{} ({})", r.errors_total(), r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))
                };
                let _ = writeln!(
                    self.body,
                    "| {} | {} | {} | {errors} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {} | {} | {:.2} | {:.2} |",
                    r.label,
                    r.streams,
                    r.peak_open,
                    r.delay_ms(0.5),
                    r.delay_ms(0.99),
                    r.delay_ms(1.0),
                    r.chunks() as f64 / r.wall.as_secs_f64(),
                    r.wall.as_secs_f64(),
                    r.kib_per_stream().map(|k| format!("{k:.1}")).unwrap_or_else(dash),
                    r.server_cpu.map(|c| format!("{:.2}", r.per_1000_chunks(c))).unwrap_or_else(dash),
                    r.per_1000_chunks(r.fake_cpu),
                    r.per_1000_chunks(r.client_cpu),
                );
            }
        }
        for line in &section.skipped {
            let _ = writeln!(self.body, "\n{line}.");
        }
        self.body.push('\n');
        // What a proxy's run adds over the direct one, at p50 and p99, and its CPU per 1,000 chunks.
        let added = |run: &crate::streams::StreamRun, direct: &crate::streams::StreamRun| {
            (
                run.delay_ms(0.5) - direct.delay_ms(0.5),
                run.delay_ms(0.99) - direct.delay_ms(0.99),
                run.server_cpu.map(|c| run.per_1000_chunks(c)).unwrap_or(f64::NAN),
            )
        };
        let beside_nginx = |count: &crate::streams::CountRuns| {
            count
                .nginx
                .as_ref()
                .map(|nginx| {
                    let (p50, p99, cpu) = added(nginx, &count.direct);
                    format!(
                        " nginx adds {p50:.2} ms at p50 and {p99:.2} ms at p99, with {} errors, {} KiB per open stream and {cpu:.2} ms of CPU per 1,000 chunks.",
                        nginx.errors_total(),
                        nginx.kib_per_stream().map(|k| format!("{k:.1}")).unwrap_or_else(|| "–".into()),
                    )
                })
                .unwrap_or_default()
        };
        if let Some(light) = &section.light {
            let (p50, p99, cpu) = added(&light.via, &light.direct);
            let n = light.via.streams;
            let _ = writeln!(
                self.body,
                "{n} streams (the light load): Workjet adds {p50:.2} ms at p50 and {p99:.2} ms at p99 per chunk, with {} errors and {cpu:.2} ms of server CPU per 1,000 chunks (the direct run's p99 is {:.2} ms).{}\n",
                light.via.errors_total(),
                light.direct.delay_ms(0.99),
                beside_nginx(light),
            );
            let nginx_p99 = light.nginx.as_ref().map(|nginx| added(nginx, &light.direct).1);
            self.target(
                &format!("p99 delay added per chunk, {n} concurrent streams (a load these cores can schedule)"),
                "reported".into(),
                match nginx_p99 {
                    Some(nginx) => format!("{p99:.2} ms (nginx: {nginx:.2} ms)"),
                    None => format!("{p99:.2} ms"),
                },
                true,
            );
        }
        for (i, count) in section.runs.iter().enumerate() {
            let (direct, via) = (&count.direct, &count.via);
            let n = via.streams;
            let (added_p50, added_p99, cpu) = added(via, direct);
            let per_stream = via.kib_per_stream().unwrap_or(f64::NAN);
            // What the schedule asks of the server alone, at the CPU cost measured.
            let demand = n as f64 * (1.0 / GAP.as_secs_f64()) * cpu / 1_000_000.0;
            let _ = writeln!(
                self.body,
                "{n} streams: Workjet adds {added_p50:.2} ms at p50 and {added_p99:.2} ms at p99 per chunk; {} errors (direct: {}); {per_stream:.1} KiB per open stream; {cpu:.2} ms of server CPU per 1,000 chunks, so the schedule ({:.0} chunks/s) asks {demand:.2} cores of the server alone.{}\n",
                via.errors_total(),
                direct.errors_total(),
                n as f64 / GAP.as_secs_f64(),
                beside_nginx(count),
            );
            let direct_rate = direct.chunks() as f64 / direct.wall.as_secs_f64();
            let via_rate = via.chunks() as f64 / via.wall.as_secs_f64();
            self.bars.push(bar(format!("streams, {n}: chunks/s vs direct"), via_rate / direct_rate, None));
            if let Some(nginx) = &count.nginx {
                let nginx_rate = nginx.chunks() as f64 / nginx.wall.as_secs_f64();
                self.bars.push(bar(format!("streams, {n}: nginx's chunks/s vs direct"), nginx_rate / direct_rate, None));
            }
            let nginx_added = count.nginx.as_ref().map(|nginx| added(nginx, direct));
            if i == 0 {
                self.target(
                    &format!("errors, {n} concurrent streams"),
                    "0".into(),
                    match &count.nginx {
                        Some(nginx) => format!("{} (nginx: {})", via.errors_total(), nginx.errors_total()),
                        None => via.errors_total().to_string(),
                    },
                    via.errors_total() == 0,
                );
                self.target(
                    &format!("p99 delay added per chunk, {n} concurrent streams"),
                    "≤ 5 ms".into(),
                    format!(
                        "{added_p99:.2} ms ({:.2} vs {:.2} ms direct{})",
                        via.delay_ms(0.99),
                        direct.delay_ms(0.99),
                        nginx_added.map(|(_, p99, _)| format!("; nginx adds {p99:.2} ms")).unwrap_or_default()
                    ),
                    added_p99 <= 5.0,
                );
                self.target(
                    &format!("server memory per open stream, {n} streams"),
                    "≤ 64 KiB".into(),
                    format!("{per_stream:.1} KiB ({} open)", via.server_rss.map(|s| s.2).unwrap_or(0)),
                    per_stream <= 64.0,
                );
                self.target(
                    &format!("server CPU per 1,000 chunks, {n} streams"),
                    "reported".into(),
                    format!(
                        "{cpu:.2} ms (fake upstream {:.2} ms, client {:.2} ms{})",
                        via.per_1000_chunks(via.fake_cpu),
                        via.per_1000_chunks(via.client_cpu),
                        nginx_added.map(|(_, _, cpu)| format!("; nginx {cpu:.2} ms")).unwrap_or_default()
                    ),
                    true,
                );
            } else {
                self.target(
                    &format!("{n} concurrent streams (where it bends)"),
                    "reported".into(),
                    format!(
                        "{} errors, p99 added {added_p99:.2} ms, {per_stream:.1} KiB per stream, {cpu:.2} ms CPU per 1,000 chunks{}",
                        via.errors_total(),
                        count.nginx.as_ref().map(|nginx| format!(" (nginx: {} errors)", nginx.errors_total())).unwrap_or_default()
                    ),
                    true,
                );
            }
        }
    }

    fn svg(&self) -> String {
        let width = 760.0;
        let bar_height = 26.0;
        let left = 300.0;
        let scale = (width - left - 60.0) / 1.2;
        let height = 60.0 + self.bars.len() as f64 * bar_height + 30.0;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"20\" y=\"28\" font-size=\"15\" font-weight=\"bold\">Throughput relative to its baseline (1.0 = no overhead)</text>\n"
        );
        let x1 = left + scale;
        let _ =
            writeln!(s, "<line x1=\"{x1}\" y1=\"44\" x2=\"{x1}\" y2=\"{}\" stroke=\"#64748b\" stroke-dasharray=\"4 3\"/>", height - 24.0);
        let x09 = left + 0.9 * scale;
        let _ = writeln!(
            s,
            "<line x1=\"{x09}\" y1=\"44\" x2=\"{x09}\" y2=\"{}\" stroke=\"#f59e0b\" stroke-dasharray=\"2 3\"/><text x=\"{x09}\" y=\"{}\" text-anchor=\"middle\" fill=\"#b45309\">0.9 target</text>",
            height - 24.0,
            height - 10.0
        );
        let _ = writeln!(
            s,
            "<text x=\"20\" y=\"{}\" fill=\"#475569\">blue: its target met · red: missed · grey: reported</text>",
            height - 10.0
        );
        for (i, Bar { label, ratio, target }) in self.bars.iter().enumerate() {
            let y = 50.0 + i as f64 * bar_height;
            let w = ratio.clamp(0.0, 1.2) * scale;
            // Blue: its target met; red: missed; grey: reported, or a target that is not a ratio
            // (the gateway's are added latency and req/s; the streams' the delay per chunk).
            let color = match target {
                None => "#64748b",
                Some(least) if ratio >= least => "#0ea5e9",
                Some(_) => "#ef4444",
            };
            let label = label.replace('&', "&amp;").replace('<', "&lt;");
            let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>", left - 8.0, y + 16.0);
            let _ = writeln!(
                s,
                "<rect x=\"{left}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{color}\" rx=\"3\"/>",
                y + 4.0,
                bar_height - 8.0
            );
            let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{}\">{ratio:.2}×</text>", left + w + 6.0, y + 16.0);
        }
        s.push_str("</svg>\n");
        s
    }

    pub fn write(&self, md_path: &str, svg_path: &str) {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
            .unwrap_or_else(|| "unknown CPU".into());
        let mut md = format!(
            "# Benchmarks\n\nMeasured with `{}` on {} ({cores} cores), {}. The load generator, the Workjet release binary and the fake upstream share these cores, so absolute numbers are pessimistic; each figure stands beside a baseline measured in the same run. The servers log at `RUST_LOG=error`: as shipped (`info`), each request also makes its log span (see the notes for its cost). Throughputs are medians of the runs, with the spread (min–max).\n\n![Throughput relative to baseline]({svg_path})\n\n## Targets\n\n| figure | target | measured | |\n|---|---|---|---|\n",
            self.command,
            cpu,
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        for t in &self.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                t.what,
                t.target,
                t.measured,
                if t.skipped {
                    "skipped"
                } else if t.met {
                    "met"
                } else {
                    "**missed**"
                }
            );
        }
        md.push('\n');
        md.push_str(&self.body);
        std::fs::write(md_path, md).expect("write BENCHMARKS.md");
        std::fs::write(svg_path, self.svg()).expect("write chart");
    }
}
