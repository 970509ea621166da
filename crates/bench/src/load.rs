//! The load driver: N concurrent workers repeat one operation for a fixed time; latencies are
//! kept exactly (microseconds) and summarised at the end.
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One operation's outcome: the timed part of it and whether it did what it should.
pub struct Sample {
    pub micros: u64,
    pub ok: bool,
    /// Requests it made in its timed part (a pair makes two).
    pub requests: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub scenario: String,
    pub operations: u64,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub peak_rss_mib: f64,
    /// Operations per second relative to the baseline's requests per second.
    pub ratio_to_baseline: Option<f64>,
}

/// Runs `op` on `connections` workers for `duration`, printing progress every second.
pub async fn run<F, Fut>(name: &str, connections: usize, duration: Duration, server_pid: u32, op: F) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Sample> + Send,
{
    run_workers(name, connections, duration, server_pid, move |_, i| op(i)).await
}

/// [`run`], telling `op` which worker calls it (0..connections) besides the operation's
/// sequence number: for scenarios where each worker keeps state of its own.
pub async fn run_workers<F, Fut>(name: &str, connections: usize, duration: Duration, server_pid: u32, op: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Sample> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let progress = {
        let done = done.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let mut peak = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                peak = peak.max(crate::server::rss_kib(server_pid));
                n += 1;
                if n.is_multiple_of(10) {
                    let ops = done.load(Ordering::Relaxed);
                    eprintln!(
                        "  [{name}] {:>4.1}s  {ops} ops  ({:.0}/s)  rss {:.1} MiB",
                        start.elapsed().as_secs_f64(),
                        ops as f64 / start.elapsed().as_secs_f64(),
                        peak as f64 / 1024.0
                    );
                }
                if Instant::now() >= deadline {
                    return peak;
                }
            }
        })
    };
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let (op, done, seq) = (op.clone(), done.clone(), seq.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let s = op(worker, seq.fetch_add(1, Ordering::Relaxed)).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    samples.push(s);
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await.unwrap_or_default());
    }
    let seconds = start.elapsed().as_secs_f64();
    let peak = progress.await.unwrap_or(0);
    summarise(name, samples, seconds, peak)
}

fn summarise(name: &str, samples: Vec<Sample>, seconds: f64, peak_rss_kib: u64) -> Stats {
    let mut micros: Vec<u64> = samples.iter().map(|s| s.micros).collect();
    micros.sort_unstable();
    let pct = |p: f64| percentile_ms(&micros, p);
    let operations = samples.len() as u64;
    let requests: u64 = samples.iter().map(|s| s.requests).sum();
    Stats {
        scenario: name.into(),
        operations,
        requests,
        errors: samples.iter().filter(|s| !s.ok).count() as u64,
        seconds,
        ops_per_sec: operations as f64 / seconds,
        requests_per_sec: requests as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: micros.last().copied().unwrap_or(0) as f64 / 1000.0,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
        ratio_to_baseline: None,
    }
}

/// The `p` quantile (0..1) of sorted microseconds, in milliseconds (0 when there are none).
pub fn percentile_ms(sorted_micros: &[u64], p: f64) -> f64 {
    let i = ((sorted_micros.len() as f64 * p) as usize).min(sorted_micros.len().saturating_sub(1));
    sorted_micros.get(i).copied().unwrap_or(0) as f64 / 1000.0
}
