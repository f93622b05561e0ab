//! Binding-proxy benchmark: a tool call from sandbox code through the executor and the binding proxy
//! (gRPC over a Unix socket) to a local upstream MCP server, against a direct rmcp client call to the same
//! upstream, in the same run. Prints the machine, p50/p99 of each, and their ratio.
//!
//!     cargo bench -p mcp-guard --bench proxy
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

use support::{machine, ms, p50_p99};

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use mcp_guard_binding_client::ProxyToolHost;
use mcp_guard_binding_proxy::{BindingProxy, audit::AuditLog, service};
use mcp_guard_crds::GuardConfig;
use mcp_guard_sandbox::{
    host::{ExecutionInfo, ToolHost},
    sandbox::Sandbox,
};
use rmcp::{
    ServiceExt,
    model::CallToolRequestParams,
    transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig},
};

fn test_server() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("mcp-test-server");
    if !bin.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--release", "-p", "mcp-guard-test-server", "--bin", "mcp-test-server"])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    bin
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut server = Command::new(test_server())
        .args(["http", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().trim_start_matches("listening on ").to_string();
    println!("machine: {}", machine());
    println!("upstream: mcp-test-server over streamable HTTP on loopback ({url}), tool `echo`\n");

    rt.block_on(async {
        const N: usize = 2000;
        // Direct: an rmcp client calling the upstream.
        let direct = ()
            .serve(StreamableHttpClientTransport::with_client(
                reqwest::Client::new(),
                StreamableHttpClientTransportConfig::with_uri(url.as_str()),
            ))
            .await
            .unwrap();
        let args = serde_json::json!({ "text": "ping" }).as_object().unwrap().clone();
        let mut direct_lat = Vec::with_capacity(N);
        for i in 0..N + 200 {
            let t = Instant::now();
            direct.call_tool(CallToolRequestParams::new("echo").with_arguments(args.clone())).await.unwrap();
            if i >= 200 {
                direct_lat.push(t.elapsed());
            }
        }

        // Through the binding proxy on a Unix socket.
        let yaml = format!("binding:\n  audit: {{ path: /dev/null }}\nlimits:\n  toolCalls: 10000\nservers:\n  - name: bench\n    url: {url}\n    allowPrivateEndpoint: true\n");
        let config = GuardConfig::from_yaml(&yaml, "bench").unwrap();
        let proxy = BindingProxy::new(config.clone(), AuditLog::open("/dev/null").unwrap());
        proxy.connect_all().await;
        let dir = std::env::temp_dir().join(format!("mcp-guard-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("proxy.sock");
        let serving = proxy.clone();
        let path = socket.clone();
        tokio::spawn(async move { service::serve_unix(serving, &path, std::future::pending()).await.unwrap() });
        let host = ProxyToolHost::connect(socket.clone()).unwrap();
        host.wait_ready(Duration::from_secs(10)).await.unwrap();

        println!("direct calls done: p50 {}", ms(p50_p99(direct_lat.clone()).0));
        let mut info = ExecutionInfo::new("bench", "bench");
        let mut hop_lat = Vec::with_capacity(N);
        for i in 0..N + 200 {
            // A fresh execution every 100 calls, as sandbox code would have.
            if i % 100 == 0 {
                info = ExecutionInfo::new("bench", &i.to_string());
                host.begin(&info).await.unwrap();
            }
            let t = Instant::now();
            host.call(&info, "bench", "echo", serde_json::json!({ "text": "ping" })).await.unwrap();
            if i >= 200 {
                hop_lat.push(t.elapsed());
            }
        }

        println!("proxy hop done: p50 {}", ms(p50_p99(hop_lat.clone()).0));
        // The floor of the hop: the same gRPC round trip, refused before any upstream work.
        let stranger = ExecutionInfo::new("bench", "never begun");
        let mut floor_lat = Vec::with_capacity(N);
        for i in 0..N + 200 {
            let t = Instant::now();
            let refused = host.call(&stranger, "bench", "echo", serde_json::json!({ "text": "ping" })).await;
            assert!(refused.is_err());
            if i >= 200 {
                floor_lat.push(t.elapsed());
            }
        }
        // From sandbox code: one execution making 100 sequential calls; per-call time.
        let catalog = mcp_guard_tools::ToolIndex::new(host.list_tools().await.unwrap()).catalog();
        let sandbox = Sandbox::new(catalog, Arc::new(host.clone()));
        let code = "for (let i = 0; i < 100; i++) { await mcp.bench.echo({ text: 'ping' }); } return 1;";
        let mut sandbox_lat = Vec::new();
        for i in 0..(N / 100) + 2 {
            let t = Instant::now();
            let o = sandbox.run(code, &config.limits).await;
            assert_eq!(o.status.kind(), "completed", "{o:?}");
            if i >= 2 {
                sandbox_lat.push(t.elapsed() / 100);
            }
        }
        // One whole execution with a single call (isolate + validation + begin/end + call).
        let mut single_lat = Vec::new();
        for i in 0..520 {
            let t = Instant::now();
            let o = sandbox.run("return await mcp.bench.echo({ text: 'ping' })", &config.limits).await;
            assert_eq!(o.status.kind(), "completed");
            if i >= 20 {
                single_lat.push(t.elapsed());
            }
        }

        let (d50, d99) = p50_p99(direct_lat);
        let (h50, h99) = p50_p99(hop_lat);
        let (f50, f99) = p50_p99(floor_lat);
        let (s50, s99) = p50_p99(sandbox_lat);
        let (e50, e99) = p50_p99(single_lat);
        println!("{:<64} {:>10} {:>10} {:>8}", "path", "p50", "p99", "p50 ratio");
        println!("{:<64} {:>10} {:>10} {:>8}", "direct rmcp client -> upstream", ms(d50), ms(d99), "1.00x");
        println!("{:<64} {:>10} {:>10} {:>8}", "executor -> proxy round trip alone (refused, no upstream)", ms(f50), ms(f99), "-");
        let ratio = |x: Duration| format!("{:.2}x", x.as_secs_f64() / d50.as_secs_f64());
        println!("{:<64} {:>10} {:>10} {:>8}", "executor tool host -> proxy (UDS gRPC) -> upstream", ms(h50), ms(h99), ratio(h50));
        println!("{:<64} {:>10} {:>10} {:>8}", "sandbox code -> executor -> proxy -> upstream (per call, 100/run)", ms(s50), ms(s99), ratio(s50));
        println!("{:<64} {:>10} {:>10} {:>8}", "whole execution with one call (fresh isolate, audit begin/end)", ms(e50), ms(e99), ratio(e50));
        println!("\ngoal: a tool call from sandbox code <= 1.15x the direct call -> {}", if s50.as_secs_f64() <= d50.as_secs_f64() * 1.15 { "met" } else { "NOT met" });
        let _ = std::fs::remove_dir_all(&dir);
    });
    let _ = server.kill();
    let _ = server.wait();
}
