//! Soak: `mcp-guard serve` (isolate hosts, a real MCP upstream through the binding proxy) driven for a
//! set time at 80% of the throughput it measured just before, with a mix of what agents send: trivial
//! code, tool calls, code that breaks each limit (CPU, memory, output, stack), code the validator
//! rejects, clients that cancel a stream, and deadlines that expire. It reports, every interval, the
//! latency percentiles and the executor's and its children's memory, descriptors and threads, and at the
//! end the outcomes by kind.
//!
//! It fails when an outcome is not the one its request must get (any unexpected error), when the audit
//! log's executions do not balance (every started execution ended or abandoned, none lost), or when the
//! executor's descriptors or threads grow after warm-up.
//!
//! Ignored by default; `make soak` runs it for 10 minutes (`MCP_GUARD_SOAK_SECS`), `make test` for 60 s:
//!
//! ```sh
//! MCP_GUARD_SOAK_SECS=600 cargo test --profile local -p mcp-guard --test soak -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod api_support;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use api_support::{ALICE, authed, code, faults_config, serve, status_of};
use mcp_guard_proto::v1 as pb;
use tonic::{Code, transport::Channel};

type Client = pb::executor_client::ExecutorClient<Channel>;

/// What one request is and what it must end as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Trivial,
    ToolCall,
    Cpu,
    Memory,
    Output,
    Stack,
    Rejected,
    Cancelled,
    Deadline,
}

impl Kind {
    /// The mix, in parts of 100.
    const MIX: [(Kind, u32); 9] = [
        (Kind::Trivial, 45),
        (Kind::ToolCall, 20),
        (Kind::Cpu, 5),
        (Kind::Memory, 5),
        (Kind::Output, 5),
        (Kind::Stack, 5),
        (Kind::Rejected, 5),
        (Kind::Cancelled, 5),
        (Kind::Deadline, 5),
    ];

    fn pick(n: u64) -> Kind {
        let mut x = (n.wrapping_mul(2_654_435_761) % 100) as u32;
        for (k, w) in Kind::MIX {
            if x < w {
                return k;
            }
            x -= w;
        }
        Kind::Trivial
    }

    fn request(self) -> pb::ExecuteRequest {
        let src = match self {
            Kind::Trivial => "return [1, 2, 3].map((x) => x * 2)",
            Kind::ToolCall => "return await mcp.faults.echo({ text: 'soak' })",
            Kind::Cpu => "while (true) {}",
            Kind::Memory => "const a = []; while (true) a.push(new Array(100000).fill(7));",
            Kind::Output => "return 'x'.repeat(1 << 20)",
            Kind::Stack => "const f = (n) => f(n + 1) + 1; return f(0);",
            Kind::Rejected => "return eval('1')",
            Kind::Cancelled => {
                "console.log('started'); await new Promise((r) => setTimeout(r, 2000)); return 1"
            }
            Kind::Deadline => "await new Promise((r) => setTimeout(r, 5000)); return 1",
        };
        let mut req = code(src);
        if self == Kind::Cpu {
            req.limits = Some(pb::LimitOverrides { cpu_time_ms: 50, ..Default::default() });
        }
        req
    }
}

/// How a request ended, as a short label; `Ok` when it is what its kind must end as.
fn classify(kind: Kind, result: Result<pb::ExecuteResponse, tonic::Status>) -> Result<String, String> {
    use pb::outcome::Status as S;
    let label = match &result {
        Ok(r) => match status_of(r) {
            S::CompletedJson(_) => "completed".to_string(),
            S::Rejected(x) => format!("rejected:{}", x.rule),
            S::Threw(e) => format!("threw:{}", e.name),
            S::LimitExceeded(l) => format!("limit:{}", l.limit),
            S::ApprovalRequired(a) => format!("approval_required:{}", a.id),
        },
        Err(s) => format!("status:{:?}", s.code()),
    };
    let ok = match kind {
        Kind::Trivial | Kind::ToolCall => label == "completed",
        Kind::Cpu => label == "limit:cpu_time",
        Kind::Memory => label == "limit:memory",
        Kind::Output => label == "limit:output",
        // QuickJS reports its stack limit as a RangeError, or the limit when the native stack guard trips.
        Kind::Stack => {
            label == "limit:stack" || label == "threw:RangeError" || label == "threw:InternalError"
        }
        Kind::Rejected => label == "rejected:no-eval",
        Kind::Cancelled => label == "cancelled",
        // The executor shortens the wall time to the caller's deadline and answers before it, or the
        // deadline passes first: the server says DEADLINE_EXCEEDED, or the client's own timer fires.
        Kind::Deadline => {
            label == "limit:wall_time"
                || label == format!("status:{:?}", Code::DeadlineExceeded)
                || matches!(&result, Err(s) if s.code() == Code::Cancelled && s.message() == "Timeout expired")
        }
    };
    if ok { Ok(label) } else { Err(format!("{kind:?} ended as {label}: {:?}", result.err())) }
}

async fn run_one(mut c: Client, kind: Kind) -> Result<String, String> {
    match kind {
        Kind::Cancelled => {
            let mut stream = match c.execute_stream(authed(kind.request(), ALICE)).await {
                Ok(s) => s.into_inner(),
                Err(s) => return Err(format!("Cancelled: the stream did not start: {s:?}")),
            };
            // The first event (the console line), then the client goes away.
            match stream.message().await {
                Ok(Some(_)) => Ok("cancelled".into()),
                other => Err(format!("Cancelled: no first event: {other:?}")),
            }
        }
        Kind::Deadline => {
            let mut req = authed(kind.request(), ALICE);
            req.set_timeout(Duration::from_millis(300));
            classify(kind, c.execute(req).await.map(|r| r.into_inner()))
        }
        _ => classify(kind, c.execute(authed(kind.request(), ALICE)).await.map(|r| r.into_inner())),
    }
}

/// Resident memory (KiB), open descriptors and threads of `pid`; `None` once it is gone.
fn usage(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((field("VmRSS:"), fds, field("Threads:")))
}

/// Every descendant of `root` (isolate hosts, the binding proxy and its upstream).
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The parent pid is the second field after the command in parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
            parents.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &c in parents.get(&p).into_iter().flatten() {
            out.push(c);
            stack.push(c);
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Audit records: executions started, ended, abandoned.
fn audit_counts(audit: &std::path::Path) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for line in std::fs::read_to_string(audit).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        match v["event"].as_str() {
            Some("execution_started") => counts.0 += 1,
            Some("execution_ended") => counts.1 += 1,
            Some("execution_abandoned") => counts.2 += 1,
            _ => {}
        }
    }
    counts
}

/// Runs the mix as fast as `clients` (one request at a time each) can for `secs`: requests per second.
async fn max_throughput(clients: &[Client], secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let (c, done) = (c.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = i as u64 * 7919;
            while Instant::now() < until {
                let _ = run_one(c.clone(), Kind::pick(n)).await;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak: run by `make soak` (10 min) and `make test` (60 s)"]
async fn soak() {
    let secs: u64 = std::env::var("MCP_GUARD_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(600);
    let interval = Duration::from_secs((secs / 12).clamp(5, 60));
    let dir = api_support::TempDir::new("soak");
    let audit = dir.path().join("audit.jsonl");
    let config = faults_config("limits:\n  wallTime: 5s\n  memory: 32Mi\n  output: 64Ki\n  stack: 256Ki\n")
        .replace("audit: { path: \"-\" }", &format!("audit: {{ path: {} }}", audit.display()));
    let s = serve(&config, &["--max-concurrent", "32", "--max-queue", "256"]);
    let pid = s.child.id();
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(s.client().await);
    }

    let max = max_throughput(&clients, 10).await;
    // Let the measurement's last executions end, then count from here.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = audit_counts(&audit);
    let rate = (max * 0.8).max(1.0);
    println!(
        "soak: {secs} s at {rate:.1} requests/s of the mix (80% of the {max:.1}/s that 16 clients, one \
         request at a time each, got from it just before), sampled every {interval:?}"
    );
    println!(
        "{:>6} {:>7} {:>8} {:>8} {:>10} {:>10} {:>5} {:>7} {:>9}",
        "t (s)", "done", "p50 ms", "p99 ms", "exec RSS", "all RSS", "fds", "threads", "children"
    );

    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let outcomes: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let (mut samples, mut n) = (Vec::new(), 0u64);
    let start = Instant::now();
    let mut next_sample = start + interval;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while start.elapsed() < Duration::from_secs(secs) {
        ticker.tick().await;
        let kind = Kind::pick(n);
        let c = clients[(n % clients.len() as u64) as usize].clone();
        n += 1;
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (lat, out, bad) = (latencies.clone(), outcomes.clone(), unexpected.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let r = run_one(c, kind).await;
            lat.lock().unwrap().push(t.elapsed());
            match r {
                Ok(label) => *out.lock().unwrap().entry(format!("{kind:?} -> {label}")).or_default() += 1,
                Err(e) => bad.lock().unwrap().push(e),
            }
            drop(permit);
        });
        if Instant::now() >= next_sample {
            next_sample += interval;
            let mut window = std::mem::take(&mut *latencies.lock().unwrap());
            window.sort();
            let children = descendants(pid);
            let (rss, fds, threads) = usage(pid).expect("the executor is running");
            let all_rss: u64 = rss + children.iter().filter_map(|c| usage(*c)).map(|u| u.0).sum::<u64>();
            println!(
                "{:>6.0} {:>7} {:>8.2} {:>8.2} {:>7} MiB {:>7} MiB {:>5} {:>7} {:>9}",
                start.elapsed().as_secs_f64(),
                window.len(),
                percentile(&window, 0.5),
                percentile(&window, 0.99),
                rss / 1024,
                all_rss / 1024,
                fds,
                threads,
                children.len()
            );
            samples.push((rss, fds, threads, children.len() as u64));
        }
    }
    // Let the last requests end (the longest, a deadline or a wall-time limit, within 6 s).
    let _ = tokio::time::timeout(Duration::from_secs(30), in_flight.acquire_many(256)).await;
    let sent = n;

    println!("\noutcomes ({sent} requests):");
    for (k, v) in outcomes.lock().unwrap().iter() {
        println!("  {v:>8}  {k}");
    }
    let unexpected = unexpected.lock().unwrap().clone();
    println!("unexpected: {}", unexpected.len());
    for e in unexpected.iter().take(20) {
        println!("  {e}");
    }

    // The audit log balances: every execution that started ended or was abandoned (cancelled streams
    // and expired deadlines are the ones the proxy may close as abandoned, a little later).
    let mut counts = audit_counts(&audit);
    for _ in 0..40 {
        if counts.0 == counts.1 + counts.2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        counts = audit_counts(&audit);
    }
    println!(
        "audit: {} started, {} ended, {} abandoned ({} started during the soak itself)",
        counts.0,
        counts.1,
        counts.2,
        counts.0 - before.0
    );

    assert!(
        unexpected.is_empty(),
        "{} requests ended unexpectedly, e.g. {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    assert!(counts.0 > 0, "no execution reached the audit log");
    assert_eq!(counts.0, counts.1 + counts.2, "audit: executions started but never closed");
    // Every request the executor answered with an outcome was one execution on the audit log (the
    // proxy opens it before the code is validated); a request refused with a status, or given up by the
    // client first, may or may not have got that far.
    let started = (counts.0 - before.0) as u64;
    let without_outcome: u64 =
        outcomes.lock().unwrap().iter().filter(|(k, _)| k.contains("-> status:")).map(|(_, v)| v).sum();
    assert!(started <= sent, "audit: {started} executions for {sent} requests");
    assert!(
        started + without_outcome >= sent,
        "audit: {started} executions for {sent} requests ({without_outcome} without an outcome)"
    );

    // Flat after warm-up: the executor's memory, descriptors and threads in the last third of the run
    // stay within 10% (or 4 MiB, 8 descriptors or threads, for small counts) of the sample that ends the
    // first third. The isolate hosts come and go (each lives for a bounded number of executions), so
    // their memory is reported, not held to this.
    if samples.len() >= 6 {
        let base = samples[samples.len() / 3];
        // Each live isolate host holds two of the executor's descriptors (its channel and the child
        // process's handle), and how many hosts live at a sample depends on the moment (warm, idle and
        // retiring ones): descriptors are compared net of the hosts.
        let net_fds = |fds: u64, children: u64| fds.saturating_sub(2 * children);
        for &(rss, fds, threads, children) in &samples[samples.len() * 2 / 3..] {
            // Memory: 10%, or 4 MiB for a small executor.
            assert!(
                rss <= base.0 + (base.0 / 10).max(4096),
                "the executor's memory grew: {} -> {rss} KiB ({samples:?})",
                base.0
            );
            let within = |now: u64, was: u64| now <= was + (was / 10).max(8);
            assert!(
                within(net_fds(fds, children), net_fds(base.1, base.3)),
                "descriptors (net of two per isolate host) grew: {} -> {} ({samples:?})",
                net_fds(base.1, base.3),
                net_fds(fds, children)
            );
            assert!(within(threads, base.2), "threads grew: {} -> {threads} ({samples:?})", base.2);
        }
    }
    assert!(!s.stderr().contains("panicked"), "{}", s.stderr_tail(3000));
}
