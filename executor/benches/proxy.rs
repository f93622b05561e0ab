//! Binding-proxy benchmark: a tool call from sandbox code through the executor and the binding proxy
//! (gRPC over a Unix socket) to a local upstream MCP server, against a direct rmcp client call to the same
//! upstream, in the same run. Prints the machine, p50/p99 of each, and their ratio. Also the same hop
//! over TCP with the executor's token checked on every request (as in Kubernetes, where the proxy has
//! pods of its own; TokenReview answered by a fake API server, then cached as in production), and what
//! TCP adds to a tool call over the Unix socket.
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

const EXECUTOR_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnLWJlbmNo";
const PROXY_AUDIENCE: &str = "mcpguard.io/proxy/bench/bench";
const EXECUTOR_IDENTITY: &str = "system:serviceaccount:bench:bench-mcp-guard";

/// The proxy's executor check as `mcp-guard proxy --listen` does it (TokenReview, cached).
struct ExecutorOnly(mcp_guard_api::auth::Authenticator);

#[tonic::async_trait]
impl service::PeerAuth for ExecutorOnly {
    async fn executor(
        &self,
        authorization: Option<&str>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<(), tonic::Status> {
        self.0.authenticate(authorization, None, peer).await.map(|_| ()).map_err(tonic::Status::from)
    }
    async fn caller(
        &self,
        _: &str,
        _: Option<std::net::IpAddr>,
    ) -> Option<Result<(String, bool), tonic::Status>> {
        None
    }
    fn reviews_callers(&self) -> bool {
        false
    }
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

        // The same hop over TCP, with the executor's token on every request.
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}", api.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            axum::routing::post(|axum::Json(review): axum::Json<serde_json::Value>| async move {
                let ok = review["spec"]["token"] == EXECUTOR_TOKEN;
                let status = if ok {
                    serde_json::json!({"authenticated": true, "audiences": [PROXY_AUDIENCE],
                        "user": {"username": EXECUTOR_IDENTITY}})
                } else {
                    serde_json::json!({"authenticated": false})
                };
                (axum::http::StatusCode::CREATED, axum::Json(serde_json::json!({"status": status})))
            }),
        );
        tokio::spawn(async move { axum::serve(api, app).await.unwrap() });
        std::fs::write(dir.join("own-token"), "proxy-own-token").unwrap();
        let mut review = mcp_guard_api::auth::TokenReviewConfig::in_cluster(api_url, PROXY_AUDIENCE.into());
        review.token_file = dir.join("own-token");
        review.ca_file = None;
        let executor_auth = mcp_guard_api::auth::Authenticator::new(mcp_guard_api::auth::AuthConfig {
            token_review: Some(review),
            allowed_callers: Some(vec![EXECUTOR_IDENTITY.into()]),
            ..Default::default()
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("http://{}", listener.local_addr().unwrap());
        let serving = proxy.clone();
        tokio::spawn(async move {
            service::serve_tcp(serving, listener, Arc::new(ExecutorOnly(executor_auth)), std::future::pending())
                .await
                .unwrap()
        });
        std::fs::write(dir.join("executor-token"), EXECUTOR_TOKEN).unwrap();
        let tcp_host = ProxyToolHost::connect_tcp(&proxy_url, dir.join("executor-token")).unwrap();
        tcp_host.wait_ready(Duration::from_secs(10)).await.unwrap();
        // Interleaved in rounds, so that both paths see the same machine noise.
        let (mut uds_round, mut tcp_round) = (Vec::with_capacity(N), Vec::with_capacity(N));
        for round in 0..20 {
            for (which, h) in [(0, &host), (1, &tcp_host)] {
                let info = ExecutionInfo::new("bench", &format!("{round}-{which}"));
                h.begin(&info).await.unwrap();
                for i in 0..110 {
                    let t = Instant::now();
                    h.call(&info, "bench", "echo", serde_json::json!({ "text": "ping" })).await.unwrap();
                    if i >= 10 {
                        if which == 0 { uds_round.push(t.elapsed()) } else { tcp_round.push(t.elapsed()) }
                    }
                }
            }
        }
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
        let (u50, u99) = p50_p99(uds_round);
        let (t50, t99) = p50_p99(tcp_round);
        println!("\n{:<64} {:>10} {:>10}", "executor -> proxy -> upstream, interleaved rounds", "p50", "p99");
        println!("{:<64} {:>10} {:>10}", "  Unix socket (local mode)", ms(u50), ms(u99));
        println!("{:<64} {:>10} {:>10}", "  TCP, executor token checked per request (Kubernetes)", ms(t50), ms(t99));
        let added = t50.as_secs_f64() - u50.as_secs_f64();
        println!(
            "TCP adds {:.3} ms per tool call at p50 (goal <= 0.150 ms) -> {}",
            added * 1000.0,
            if added <= 0.000_150 { "met" } else { "NOT met" }
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
    let _ = server.kill();
    let _ = server.wait();
}
