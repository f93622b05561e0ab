//! API benchmark: `Execute` over loopback gRPC (authenticated with a static token, as callers would),
//! p50/p99 latency and throughput at concurrency 1, 16 and 64, for a trivial script and a script making
//! one tool call, on both isolation modes of `mcp-guard serve`: isolate hosts as it runs them by default
//! (`--isolation process`: confined host processes, `--warm-hosts 4 --host-reuse 256
//! --host-concurrency 64`) and isolates on threads of the API process (`--isolation thread`); beside
//! them, in the same run, a Deno subprocess per execution with all permissions denied running the same
//! snippet. Prints the machine, then each figure beside its goal.
//!
//!     cargo bench -p mcp-guard --bench api
//!
//! Deno comes from `scripts/setup-api-tests.sh` (npm `deno`); without it the baseline is skipped. The
//! tool in the one-tool-call script is an in-process host tool on the MCP Guard side and an in-script
//! async function on the Deno side: both measure the execution path, not an upstream MCP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::panic)]

mod support;

use support::{machine, ms, percentile};

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use mcp_guard_api::{
    ApiState, EdgeLimits,
    auth::{AuthConfig, Authenticator},
    listen::{ServeOptions, serve},
};
use mcp_guard_crds::Limits;
use mcp_guard_proto::v1::{self as pb, executor_client::ExecutorClient};
use mcp_guard_sandbox::{
    engine::{
        Engine,
        process::{HostCommand, ProcessEngine},
        quickjs::QuickJsEngine,
    },
    host::testing::ScriptedHost,
};
use mcp_guard_tools::ToolIndex;
use tonic::transport::Channel;

const TOKEN: &str = "bench-token-0123456789abcdef";
const TRIVIAL: &str = "return 1 + 1";
const ONE_CALL: &str = "const r = await mcp.bench.echo({ n: 1 }); return r.n";

#[derive(Clone, Copy)]
struct Figures {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

fn figures(mut latencies: Vec<Duration>, elapsed: Duration) -> Figures {
    latencies.sort_unstable();
    Figures {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
    }
}

/// The engine of `mcp-guard serve --isolation <mode>` with its default flags.
fn engine(mode: &str, max_concurrent: usize) -> Arc<dyn Engine> {
    if mode == "thread" {
        return Arc::new(QuickJsEngine::new(max_concurrent));
    }
    let command = HostCommand::isolate_host(env!("CARGO_BIN_EXE_mcp-guard").into());
    let limits = Limits::default();
    Arc::new(ProcessEngine::new(command, limits.memory.bytes(), 4).with_reuse(256, 16).with_concurrency(64))
}

async fn start_server(mode: &str) -> String {
    let host = ScriptedHost::new().tool("bench", "echo", |args| async move { Ok(args) });
    let tools = ToolIndex::from_catalog(&host.catalog());
    let dir = std::env::temp_dir().join(format!("mcp-guard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("{TOKEN} bench\n")).unwrap();
    let auth = Authenticator::new(AuthConfig { token_file: Some(tokens), ..Default::default() }).unwrap();
    let edge = EdgeLimits { max_concurrent: 64, max_queue: 1024, ..EdgeLimits::default() };
    let engine = engine(mode, edge.max_concurrent);
    let state = ApiState::new(engine, host.into_arc(), tools, Limits::default(), edge, auth, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServeOptions {
        grpc: Some(listener),
        mcp: None,
        metrics: None,
        tls: None,
        shutdown_grace: Duration::from_secs(1),
        refresh_interval: Duration::from_secs(3600),
    };
    tokio::spawn(async move { serve(state, options, std::future::pending()).await.unwrap() });
    format!("http://{addr}")
}

fn request(code: &str) -> tonic::Request<pb::ExecuteRequest> {
    let mut r = tonic::Request::new(pb::ExecuteRequest { code: code.to_string(), limits: None });
    r.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    r
}

async fn execute(client: &mut ExecutorClient<Channel>, code: &str) {
    let r = client.execute(request(code)).await.unwrap().into_inner();
    match r.outcome.and_then(|o| o.status) {
        Some(pb::outcome::Status::CompletedJson(_)) => {}
        other => panic!("not completed: {other:?}"),
    }
}

async fn measure_grpc(url: &str, code: &'static str, concurrency: usize, total: usize) -> Figures {
    // A few HTTP/2 connections, shared round-robin, as a client library would.
    let mut channels = Vec::new();
    for _ in 0..concurrency.clamp(1, 4) {
        channels.push(Channel::from_shared(url.to_string()).unwrap().connect().await.unwrap());
    }
    let mut warm = ExecutorClient::new(channels[0].clone());
    for _ in 0..200 {
        execute(&mut warm, code).await;
    }
    let per_task = total / concurrency;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let mut client = ExecutorClient::new(channels[i % channels.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = Instant::now();
                execute(&mut client, code).await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    figures(all, started.elapsed())
}

fn deno() -> Option<PathBuf> {
    let cache = std::env::var_os("MCP_GUARD_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mcp-guard")))?;
    let bin = cache.join("api-tests/node/node_modules/.bin/deno");
    bin.exists().then_some(bin)
}

/// One `deno run` per execution, with every permission denied (no --allow-* flag, --no-prompt), on the
/// same snippet wrapped the way MCP Guard runs it.
async fn measure_deno(deno: &Path, code: &str, concurrency: usize, total: usize) -> Figures {
    let dir = std::env::temp_dir().join(format!("mcp-guard-bench-deno-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join(format!("snippet-{}.js", code.len()));
    std::fs::write(
        &script,
        format!(
            "const mcp = {{ bench: {{ echo: async (args) => args }} }};\n\
             const result = await (async (mcp) => {{ {code} }})(mcp);\n\
             console.log(JSON.stringify(result));\n"
        ),
    )
    .unwrap();
    let run = {
        let deno = deno.to_path_buf();
        let script = script.clone();
        let dir = dir.clone();
        move || {
            let deno = deno.clone();
            let script = script.clone();
            let dir = dir.clone();
            async move {
                let t = Instant::now();
                let out = tokio::process::Command::new(&deno)
                    .args(["run", "--no-prompt", "--no-config", "--no-lock", "--quiet"])
                    .arg(&script)
                    .env_clear()
                    .env("DENO_DIR", dir.join("deno-dir"))
                    .env("DENO_NO_UPDATE_CHECK", "1")
                    .output()
                    .await
                    .unwrap();
                assert!(out.status.success(), "deno failed: {}", String::from_utf8_lossy(&out.stderr));
                t.elapsed()
            }
        }
    };
    for _ in 0..3 {
        run().await;
    }
    let per_task = (total / concurrency).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..per_task {
                latencies.push(run().await);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    figures(all, started.elapsed())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        println!("machine: {}", machine());
        println!("goals: p50 <= 1 ms, p99 <= 5 ms, >= 15x faster than a Deno subprocess per execution");
        let deno = deno();
        if let Some(d) = &deno {
            let v = std::process::Command::new(d).arg("--version").output().unwrap();
            println!("baseline: {}", String::from_utf8_lossy(&v.stdout).lines().next().unwrap_or("deno"));
        } else {
            println!("baseline: deno not installed (scripts/setup-api-tests.sh); skipped");
        }
        let hosts = start_server("process").await;
        let threads = start_server("thread").await;
        println!();
        println!(
            "{:<10} {:>4}  {:>9} {:>9} {:>8}   {:>9} {:>9} {:>8}   {:>9} {:>9} {:>7}   {:>8}",
            "script",
            "conc",
            "host p50",
            "host p99",
            "host/s",
            "thr p50",
            "thr p99",
            "thr/s",
            "deno p50",
            "deno p99",
            "deno/s",
            "speed-up"
        );
        for (name, code) in [("trivial", TRIVIAL), ("one-call", ONE_CALL)] {
            for concurrency in [1usize, 16, 64] {
                let total = if concurrency == 1 { 2000 } else { 6400 };
                let h = measure_grpc(&hosts, code, concurrency, total).await;
                let t = measure_grpc(&threads, code, concurrency, total).await;
                let d = match &deno {
                    Some(deno) => Some(measure_deno(deno, code, concurrency, (concurrency * 2).max(20)).await),
                    None => None,
                };
                let (dp50, dp99, dps, speed) = match d {
                    Some(d) => (
                        ms(d.p50),
                        ms(d.p99),
                        format!("{:.1}", d.per_sec),
                        format!("{:.0}x", d.p50.as_secs_f64() / h.p50.as_secs_f64().max(1e-9)),
                    ),
                    None => ("-".into(), "-".into(), "-".into(), "-".into()),
                };
                println!(
                    "{name:<10} {concurrency:>4}  {:>9} {:>9} {:>8.0}   {:>9} {:>9} {:>8.0}   {dp50:>9} {dp99:>9} {dps:>7}   {speed:>8}",
                    ms(h.p50),
                    ms(h.p99),
                    h.per_sec,
                    ms(t.p50),
                    ms(t.p99),
                    t.per_sec
                );
            }
        }
        println!();
        println!("host: isolate hosts (serve's default); thr: isolates on threads of the API process.");
        println!("speed-up: Deno p50 / MCP Guard p50 on isolate hosts at the same concurrency.");
    });
    for dir in ["mcp-guard-bench", "mcp-guard-bench-deno"] {
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("{dir}-{}", std::process::id())));
    }
}
