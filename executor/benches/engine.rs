//! Engine benchmark: fresh-isolate executions, in process, at concurrency 1 and 16, for a trivial script
//! and for a script making one host tool call. Prints the machine, then each figure beside its goal.
//!
//!     cargo bench -p mcp-guard --bench engine
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

use support::{machine, measure, ms};

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mcp_guard_crds::Limits;
use mcp_guard_sandbox::{
    engine::process::{HostCommand, ProcessEngine},
    host::testing::ScriptedHost,
    sandbox::Sandbox,
    validator::{ValidateOptions, validate},
};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("machine: {}", machine());
    println!("engine: QuickJS (rquickjs), a fresh runtime + context per execution, validation included\n");

    let host = ScriptedHost::new().tool("demo", "echo", |args| async move { Ok(args) });
    let sandbox = Sandbox::new(host.catalog(), Arc::new(host));

    // Where the time of one trivial execution goes.
    let t = Instant::now();
    let n = 5000;
    for _ in 0..n {
        validate("return 1 + 1", &ValidateOptions { max_code_bytes: 1 << 20 }).unwrap();
    }
    println!(
        "validation alone (oxc parse + checks + TS strip + codegen), trivial script: {} each\n",
        ms(t.elapsed() / n)
    );

    println!("{:<24} {:>5} {:>12} {:>12} {:>14}", "script", "conc.", "p50", "p99", "executions/s");
    let cases: [(&str, &'static str); 2] = [
        ("trivial", "return 1 + 1"),
        ("one tool call", "const r = await mcp.demo.echo({ x: 1 }); return r.x;"),
    ];
    let mut results = Vec::new();
    for (name, code) in cases {
        for (conc, total) in [(1usize, 3000usize), (16, 8000)] {
            let f = runtime.block_on(measure(
                &sandbox,
                code,
                &Limits::default(),
                (total / 10).min(200),
                conc,
                total,
            ));
            println!("{name:<24} {conc:>5} {:>12} {:>12} {:>14.0}", ms(f.p50), ms(f.p99), f.per_sec);
            results.push((name, conc, f));
        }
    }
    // The same executions in isolate-host processes (what `serve` runs by default), beside the threads.
    let command = HostCommand::isolate_host(env!("CARGO_BIN_EXE_mcp-guard").into());
    let hosts = {
        let _guard = runtime.enter();
        ProcessEngine::new(command.clone(), 64 << 20, 8)
    };
    let spawn_with = |concurrency: u32| {
        runtime.block_on(async {
            let t = Instant::now();
            let n = 20;
            for _ in 0..n {
                let engine = ProcessEngine::new(command.clone(), 64 << 20, 0)
                    .with_reuse(256, 0)
                    .with_concurrency(concurrency);
                engine.probe().await.unwrap();
            }
            t.elapsed() / n
        })
    };
    let (spawn, spawn_64) = (spawn_with(1), spawn_with(64));
    println!(
        "\nisolate hosts: starting and confining one host process (exec, runtime, warm-up, seccomp): {} each; \
         with 64 isolate threads (serve's default --host-concurrency): {} each",
        ms(spawn),
        ms(spawn_64)
    );
    let reused = ProcessEngine::new(command.clone(), 64 << 20, 8).with_reuse(32, 16);
    let shared = serve_defaults(&command);
    for (label, engine) in [
        ("a fresh host per execution", hosts),
        ("hosts reused for one caller, up to 32, one at a time", reused),
        ("hosts shared by one caller's executions, up to 64 at once (serve's defaults)", shared),
    ] {
        let host = ScriptedHost::new().tool("demo", "echo", |args| async move { Ok(args) });
        let in_hosts = Sandbox::with_engine(Arc::new(engine), host.catalog(), Arc::new(host));
        println!("isolate hosts, {label}:");
        println!("{:<24} {:>5} {:>12} {:>12} {:>14}", "script", "conc.", "p50", "p99", "executions/s");
        for (name, code) in cases {
            for (conc, total) in [(1usize, 300usize), (16, 800)] {
                let f = runtime.block_on(measure(
                    &in_hosts,
                    code,
                    &Limits::default(),
                    (total / 10).min(200),
                    conc,
                    total,
                ));
                println!("{name:<24} {conc:>5} {:>12} {:>12} {:>14.0}", ms(f.p50), ms(f.p99), f.per_sec);
            }
        }
    }
    println!(
        "isolate-host goals: p50 <= 1 ms at concurrency 1; >= 1500 executions/s trivial at concurrency 16"
    );

    println!("\ngoals (trivial): p50 <= 0.300 ms at concurrency 1; >= 3000 executions/s at concurrency 16");
    for (name, conc, f) in &results {
        if *name == "trivial" && *conc == 1 {
            println!(
                "  p50 at concurrency 1: {} -> {}",
                ms(f.p50),
                if f.p50 <= Duration::from_micros(300) { "met" } else { "NOT met" }
            );
        }
        if *name == "trivial" && *conc == 16 {
            println!(
                "  throughput at concurrency 16: {:.0}/s -> {}",
                f.per_sec,
                if f.per_sec >= 3000.0 { "met" } else { "NOT met" }
            );
        }
    }

    awaiting_memory(&runtime, &command);
}

/// Isolate hosts as `mcp-guard serve` runs them by default: `--warm-hosts 4 --host-reuse 256
/// --host-concurrency 64`, 16 idle hosts at most.
fn serve_defaults(command: &HostCommand) -> ProcessEngine {
    ProcessEngine::new(command.clone(), 64 << 20, 4).with_reuse(256, 16).with_concurrency(64)
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

/// PSS of this process and of its children (the isolate hosts).
fn pss_with_children() -> (u64, usize) {
    let me = std::process::id();
    let mut total = pss(me);
    let mut children = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            total += pss(pid);
            children += 1;
        }
    }
    (total, children)
}

/// Executions that each await a slow tool call at once: the memory of the executor and its hosts (or
/// threads), the figure the 1,000-awaiting goal is about (`MCP_GUARD_BENCH_AWAITING`, default 200).
fn awaiting_memory(runtime: &tokio::runtime::Runtime, command: &HostCommand) {
    let n: usize = std::env::var("MCP_GUARD_BENCH_AWAITING").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    println!("\n{n} executions each awaiting a 5 s tool call, at once (PSS of the executor and its hosts):");
    let engines: [(&str, Arc<dyn mcp_guard_sandbox::engine::Engine>); 3] = [
        ("threads", Arc::new(mcp_guard_sandbox::engine::quickjs::QuickJsEngine::new(n))),
        ("hosts, one execution each", Arc::new(ProcessEngine::new(command.clone(), 64 << 20, 4))),
        ("hosts, 64 executions each (serve's defaults)", Arc::new(serve_defaults(command))),
    ];
    for (label, engine) in engines {
        // How many executions await the tool right now.
        let awaiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = awaiting.clone();
        let host = ScriptedHost::new().tool("demo", "slow", move |_| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(5)).await;
                counter.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                Ok(serde_json::json!(1))
            }
        });
        let sandbox = Sandbox::with_engine(engine, host.catalog(), Arc::new(host));
        let (before, _) = pss_with_children();
        let started = Instant::now();
        let (peak, hosts, at_sample, done) = runtime.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..n {
                let sb = sandbox.clone();
                tasks.push(tokio::spawn(async move {
                    let limits = Limits::default();
                    sb.run("return await mcp.demo.slow({});", &limits).await.status.kind() == "completed"
                }));
            }
            tokio::time::sleep(Duration::from_secs(4)).await;
            let at_sample = awaiting.load(std::sync::atomic::Ordering::Relaxed);
            let (peak, hosts) = pss_with_children();
            let mut done = 0;
            for t in tasks {
                done += usize::from(t.await.unwrap_or(false));
            }
            (peak, hosts, at_sample, done)
        });
        println!(
            "  {label:<46} {done}/{n} completed in {:.1} s; at 4 s, {at_sample} awaiting: PSS {:.0} MiB ({:.0} MiB before; {hosts} child processes) -> {:.2} MiB per awaiting execution",
            started.elapsed().as_secs_f64(),
            peak as f64 / 1048576.0,
            before as f64 / 1048576.0,
            peak.saturating_sub(before) as f64 / 1048576.0 / at_sample.max(1) as f64,
        );
        drop(sandbox);
        // Let the hosts of this engine go before the next one is measured.
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    }
    println!("  goal: 1,000 awaiting executions in <= 1 GiB (about 1 MiB each)");
}
