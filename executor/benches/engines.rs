//! The two engines side by side, as `serve` runs them: QuickJS in isolate-host processes (serve's
//! defaults: hosts shared by one caller's executions) and V8 (confined Deno processes serving one
//! caller's executions one at a time, each in a fresh isolate booted ahead), and V8 with a new process
//! per execution (what a caller's first execution, or a host retired after a limit, costs). A trivial
//! script, one tool call, a compute-heavy script (sort 200,000 numbers, JSON round-trip 1 MB) and a
//! numeric loop, at concurrency 1 and 16: p50, p99, executions/s; then trivial executions paced so that
//! each finds a warm isolate, and what a warm host holds in memory.
//!
//!     cargo bench -p mcp-guard --bench engines
//!
//! The Deno binary: `MCP_GUARD_DENO`, else `~/.cache/mcp-guard/deno/deno` (scripts/setup.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

use support::{machine, measure, ms, percentile};

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mcp_guard_crds::{DurationSpec, Limits};
use mcp_guard_sandbox::{
    engine::process::{HostCommand, ProcessEngine},
    host::testing::ScriptedHost,
    sandbox::Sandbox,
};

/// Arithmetic in a loop: where a JIT counts most.
const NUMERIC: &str =
    "let s = 0; for (let i = 0; i < 5000000; i++) { s += Math.sqrt(i) % 7; } return Math.round(s);";

const COMPUTE: &str = "
    const xs = [];
    for (let i = 0; i < 200000; i++) xs.push(Math.random());
    xs.sort((a, b) => a - b);
    const rows = [];
    for (let i = 0; i < 15000; i++) rows.push({ id: i, name: 'row-' + i, tags: ['a', 'b'], v: xs[i * 13] });
    const text = JSON.stringify(rows);
    const back = JSON.parse(text);
    return [xs.length, text.length > 1000000, back.length];";

/// Limits that the compute-heavy scripts stay well inside, even at concurrency 16.
fn long_limits() -> Limits {
    Limits { cpu_time: DurationSpec::secs(60), wall_time: DurationSpec::secs(120), ..Limits::default() }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("machine: {}", machine());
    let deno = std::env::var("MCP_GUARD_DENO").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/mcp-guard/deno/deno")
    });
    let bin: std::path::PathBuf = env!("CARGO_BIN_EXE_mcp-guard").into();
    let memory = Limits::default().memory.bytes();
    let engines: Vec<(&str, ProcessEngine)> = {
        let _guard = runtime.enter();
        vec![
            (
                "quickjs (isolate hosts, serve's defaults)",
                ProcessEngine::new(HostCommand::isolate_host(bin.clone()), memory, 4)
                    .with_reuse(256, 16)
                    .with_concurrency(64),
            ),
            (
                "v8 (Deno hosts as serve runs them)",
                ProcessEngine::new(HostCommand::v8_host(bin.clone(), &deno), memory, 4).with_reuse(256, 16),
            ),
            (
                "v8 (a new Deno host per execution, 16 warm)",
                ProcessEngine::new(HostCommand::v8_host(bin.clone(), &deno), memory, 16),
            ),
        ]
    };
    let cases: [(&str, &'static str, usize); 4] = [
        ("trivial", "return 1 + 1", 400),
        ("one tool call", "const r = await mcp.demo.echo({ x: 1 }); return r.x;", 400),
        ("sort 200k + JSON 1 MB", COMPUTE, 32),
        ("numeric loop 5M", NUMERIC, 16),
    ];
    let mut table = Vec::new();
    let mut memory_lines = Vec::new();
    let mut paced_lines = Vec::new();
    let mut paced_p50 = Vec::new();
    for (label, engine) in engines {
        // What a warm host holds, before it served anyone.
        runtime.block_on(engine.probe()).unwrap();
        let pids = engine.warm_pids();
        let pss: Vec<u64> = pids.iter().map(|p| pss(*p)).collect();
        if !pss.is_empty() {
            memory_lines.push(format!(
                "  {label}: a warm host holds {:.1} MiB PSS (mean of {})",
                pss.iter().sum::<u64>() as f64 / pss.len() as f64 / 1048576.0,
                pss.len()
            ));
        }
        let host = ScriptedHost::new().tool("demo", "echo", |args| async move { Ok(args) });
        let sandbox = Sandbox::with_engine(Arc::new(engine), host.catalog(), Arc::new(host));
        // Let the warm pool fill.
        runtime.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await });
        for (name, code, total) in cases {
            for conc in [1usize, 16] {
                let f = runtime.block_on(measure(&sandbox, code, &long_limits(), 3, conc, total));
                table.push((label, name, conc, f));
            }
        }
        // One caller's executions arriving 100 ms apart (an agent between two steps), so that each finds
        // the isolate booted ahead: the latency of a warm isolate, apart from boot throughput.
        let paced = runtime.block_on(async {
            let limits = Limits::default();
            let mut lat = Vec::new();
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let t = Instant::now();
                let o = sandbox.run("return 1 + 1", &limits).await;
                lat.push(t.elapsed());
                assert_eq!(o.status.kind(), "completed");
            }
            lat.sort_unstable();
            (percentile(&lat, 0.5), percentile(&lat, 0.99))
        });
        paced_lines.push(format!("  {label}: p50 {}, p99 {}", ms(paced.0), ms(paced.1)));
        paced_p50.push((label, paced.0));
    }
    println!(
        "\n{:<44} {:<22} {:>5} {:>12} {:>12} {:>13}",
        "engine", "script", "conc.", "p50", "p99", "executions/s"
    );
    for (label, name, conc, f) in &table {
        println!("{label:<44} {name:<22} {conc:>5} {:>12} {:>12} {:>13.1}", ms(f.p50), ms(f.p99), f.per_sec);
    }
    println!("\ntrivial executions of one caller, 100 ms apart (each finds a warm isolate):");
    for line in &paced_lines {
        println!("{line}");
    }
    println!("\nmemory (PSS, /proc/<pid>/smaps_rollup):");
    for line in &memory_lines {
        println!("{line}");
    }
    println!(
        "\ngoals (2 cores): V8 trivial p50 <= 3 ms with warm isolates; V8 faster than QuickJS on the compute-heavy script"
    );
    let paced = &paced_p50;
    let find = |engine: &str, name: &str, conc: usize| {
        table
            .iter()
            .find(|(l, n, c, _)| l.starts_with(engine) && *n == name && *c == conc)
            .map(|(_, _, _, f)| f)
    };
    if let Some((_, p50)) = paced.iter().find(|(l, _)| l.starts_with("v8 (Deno hosts")) {
        println!(
            "  V8 trivial p50 with a warm isolate (paced, above): {} -> {}",
            ms(*p50),
            if *p50 <= Duration::from_millis(3) { "met" } else { "NOT met" }
        );
    }
    if let Some(f) = find("v8 (Deno hosts", "trivial", 1) {
        println!(
            "  (V8 trivial p50 back to back at concurrency 1, each waiting for the next isolate to boot: {})",
            ms(f.p50)
        );
    }
    for name in ["sort 200k + JSON 1 MB", "numeric loop 5M"] {
        if let (Some(q), Some(v)) = (find("quickjs", name, 1), find("v8 (Deno hosts", name, 1)) {
            println!(
                "  {name}, p50 at concurrency 1: QuickJS {} vs V8 {} ({:.1}x) -> {}",
                ms(q.p50),
                ms(v.p50),
                q.p50.as_secs_f64() / v.p50.as_secs_f64().max(1e-9),
                if v.p50 < q.p50 { "met" } else { "NOT met" }
            );
        }
    }
}

/// Proportional set size of a process, from `/proc/<pid>/smaps_rollup`, in bytes.
fn pss(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}
