//! The `wrk` cross-check of section 1: `wrk -t2 -c64 -d8s` on `/healthz` and on
//! `/v1/models` with the hot key, alternating, three rounds; the medians. Another client
//! than ours, so that a ratio is not an artefact of our load generator.

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use crate::report::Row;

/// One wrk run: requests/s, p50 and p99 (ms), non-2xx answers and socket errors.
struct Run {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    unexpected: u64,
}

fn parse_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn parse(output: &str) -> Option<Run> {
    let mut run = Run { throughput: f64::NAN, p50_ms: f64::NAN, p99_ms: f64::NAN, unexpected: 0 };
    for line in output.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            run.throughput = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("50%") {
            run.p50_ms = parse_ms(v)?;
        } else if let Some(v) = line.strip_prefix("99%") {
            run.p99_ms = parse_ms(v)?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.unexpected += v.trim().parse::<u64>().ok()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            run.unexpected += v.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
        }
    }
    run.throughput.is_finite().then_some(run)
}

async fn wrk(url: String, script: Option<std::path::PathBuf>, duration: Duration) -> Run {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("wrk");
        cmd.args(["-t2", "-c64", &format!("-d{}s", duration.as_secs()), "--latency"]);
        if let Some(script) = &script {
            cmd.arg("-s").arg(script);
        }
        let output = cmd.arg(&url).output().expect("run wrk");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
        parse(&text).unwrap_or_else(|| panic!("unreadable wrk output:\n{text}"))
    })
    .await
    .expect("wrk task")
}

fn median_row(label: &str, mut runs: Vec<Run>) -> Row {
    runs.sort_by(|a, b| a.throughput.total_cmp(&b.throughput));
    let median = &runs[runs.len() / 2];
    Row {
        label: label.to_owned(),
        concurrency: 64,
        throughput: median.throughput,
        min: runs.first().map_or(0.0, |r| r.throughput),
        max: runs.last().map_or(0.0, |r| r.throughput),
        p50_ms: median.p50_ms,
        p99_ms: median.p99_ms,
        unexpected: runs.iter().map(|r| r.unexpected).sum(),
    }
}

/// One side of a cross-check: its row's label and URL, and whether it sends the key.
pub struct Side {
    pub label: String,
    pub url: String,
    pub keyed: bool,
}

/// The baseline (`/healthz`) and the hot-key rows of section 1, or why there are none (wrk
/// is not installed).
pub async fn cross_check(addr: SocketAddr, key: &str, dir: &Path, quick: bool) -> Result<(Row, Row), String> {
    let base = Side { label: "GET /healthz (no auth, baseline)".into(), url: format!("http://{addr}/healthz"), keyed: false };
    let auth = Side { label: "GET /v1/models, hot key".into(), url: format!("http://{addr}/v1/models"), keyed: true };
    alternate(base, auth, key, dir, quick).await
}

/// `wrk -t2 -c64` on `base` and on `other`, alternating, three rounds: the median rows (the
/// labels prefixed with the command), or why there are none (wrk is not installed).
pub async fn alternate(base: Side, other: Side, key: &str, dir: &Path, quick: bool) -> Result<(Row, Row), String> {
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err("skipped (wrk not installed)".into());
    }
    // The key goes in a script file (readable by this user only), not on a command line
    // that `ps` shows.
    let script = dir.join("wrk-auth.lua");
    std::fs::write(&script, format!("wrk.headers[\"Authorization\"] = \"Bearer {key}\"\n")).expect("write the wrk script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o600)).expect("chmod the wrk script");
    }
    let duration = Duration::from_secs(if quick { 1 } else { 8 });
    let script_of = |side: &Side| side.keyed.then(|| script.clone());
    let (mut base_runs, mut other_runs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        base_runs.push(wrk(base.url.clone(), script_of(&base), duration).await);
        other_runs.push(wrk(other.url.clone(), script_of(&other), duration).await);
    }
    let _ = std::fs::remove_file(&script);
    let seconds = duration.as_secs();
    let base = median_row(&format!("wrk -t2 -c64 -d{seconds}s: {}", base.label), base_runs);
    let other = median_row(&format!("wrk -t2 -c64 -d{seconds}s: {}", other.label), other_runs);
    for row in [&base, &other] {
        eprintln!("  {:<44} c=64  {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms", row.label, row.throughput, row.p50_ms, row.p99_ms);
    }
    Ok((base, other))
}
