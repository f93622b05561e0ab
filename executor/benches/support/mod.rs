//! Shared by the benchmarks: the machine's description and latency statistics.
#![allow(dead_code)]

use std::time::Duration;

/// CPU model, cores, memory and kernel, printed with every benchmark's figures.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, {:.1} GiB, Linux {}", mem_kib as f64 / 1048576.0, kernel.trim())
}

/// The `p` quantile (0..=1) of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// p50 and p99 of unsorted latencies.
pub fn p50_p99(mut latencies: Vec<Duration>) -> (Duration, Duration) {
    latencies.sort_unstable();
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Latency percentiles and throughput of a batch of executions.
pub struct Figures {
    pub p50: Duration,
    pub p99: Duration,
    pub per_sec: f64,
}

/// Run `code` `total` times on `sandbox` from `concurrency` tasks (after `warm_up` runs), each
/// execution expected to complete: p50, p99 and executions per second.
pub async fn measure(
    sandbox: &mcp_guard_sandbox::sandbox::Sandbox,
    code: &'static str,
    limits: &mcp_guard_crds::Limits,
    warm_up: usize,
    concurrency: usize,
    total: usize,
) -> Figures {
    for _ in 0..warm_up {
        let o = sandbox.run(code, limits).await;
        assert_eq!(o.status.kind(), "completed", "{o:?}");
    }
    let started = std::time::Instant::now();
    let per_task = (total / concurrency).max(1);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let sb = sandbox.clone();
        let limits = limits.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = std::time::Instant::now();
                let o = sb.run(code, &limits).await;
                lat.push(t.elapsed());
                assert_eq!(o.status.kind(), "completed", "{o:?}");
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.expect("a measuring task panicked"));
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Figures {
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        per_sec: all.len() as f64 / elapsed.as_secs_f64(),
    }
}
