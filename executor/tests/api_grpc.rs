//! The gRPC Executor API of `mcp-guard serve`, driven through the real binary: authentication, the
//! limits at the edge, the documented status codes, streaming, health, reflection, metrics, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::time::{Duration, Instant};

use api_support::{ALICE, BOB, authed, code, completed, faults_config, serve, status_of, try_serve};
use mcp_guard_proto::v1 as pb;
use tonic::{Code, transport::Channel};

const NO_SERVERS: &str = "limits:\n  wallTime: 10s\n  codeSize: 1Ki\n";

#[tokio::test]
async fn execute_runs_code_for_an_authenticated_caller() {
    let s = serve(NO_SERVERS, &[]);
    let mut c = s.client().await;
    let r = c.execute(authed(code("console.log('hi'); return 6 * 7"), ALICE)).await.unwrap().into_inner();
    assert_eq!(completed(&r), 42);
    let o = r.outcome.unwrap();
    assert_eq!(o.console[0].message, "hi");
    assert_eq!(o.console[0].level, "log");
    assert!(!o.execution_id.is_empty());
    assert!(o.metrics.unwrap().wall_ms >= 0.0);

    // Every outcome kind maps into the message.
    let r = c.execute(authed(code("eval('1')"), ALICE)).await.unwrap().into_inner();
    assert!(
        matches!(status_of(&r), pb::outcome::Status::Rejected(x) if x.rule == "no-eval" && x.line == 1),
        "{r:?}"
    );
    let r = c.execute(authed(code("throw new RangeError('nope')"), ALICE)).await.unwrap().into_inner();
    assert!(
        matches!(status_of(&r), pb::outcome::Status::Threw(e) if e.name == "RangeError" && e.message == "nope")
    );
    let mut req = code("while (true) {}");
    req.limits = Some(pb::LimitOverrides { cpu_time_ms: 50, ..Default::default() });
    let r = c.execute(authed(req, ALICE)).await.unwrap().into_inner();
    assert!(matches!(status_of(&r), pb::outcome::Status::LimitExceeded(l) if l.limit == "cpu_time"), "{r:?}");
}

#[tokio::test]
async fn missing_wrong_and_malformed_credentials_are_unauthenticated() {
    let s = serve(NO_SERVERS, &[]);
    let mut c = s.client().await;
    let e = c.execute(code("return 1")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("no credentials"), "{e:?}");
    let e = c.execute(authed(code("return 1"), "not-a-known-token-at-all")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let mut req = tonic::Request::new(code("return 1"));
    req.metadata_mut().insert("authorization", "Basic YWxpY2U6cHc=".parse().unwrap());
    let e = c.execute(req).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("Bearer"), "{e:?}");
    // The other methods too.
    assert_eq!(c.list_tools(pb::ListToolsRequest {}).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(
        c.describe_tools(pb::DescribeToolsRequest::default()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("mcpguard_auth_failures_total{door=\"grpc\",reason=\"unauthenticated\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_valid_caller_that_is_not_allowed_is_permission_denied() {
    let s = serve(NO_SERVERS, &["--allowed-callers", "alice,carol"]);
    let mut c = s.client().await;
    assert_eq!(completed(&c.execute(authed(code("return 1"), ALICE)).await.unwrap().into_inner()), 1);
    let e = c.execute(authed(code("return 1"), BOB)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("bob"), "{e:?}");
}

#[tokio::test]
async fn the_token_file_is_reread_when_it_changes() {
    let s = serve(NO_SERVERS, &[]);
    let mut c = s.client().await;
    let new = "dave-token-abcdefghijklmnop";
    assert_eq!(c.execute(authed(code("return 1"), new)).await.unwrap_err().code(), Code::Unauthenticated);
    // Rotate: alice out, dave in.
    std::fs::write(s.dir.path().join("tokens"), format!("{new} dave\n")).unwrap();
    assert_eq!(completed(&c.execute(authed(code("return 2"), new)).await.unwrap().into_inner()), 2);
    assert_eq!(c.execute(authed(code("return 1"), ALICE)).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn empty_oversized_and_oversize_message_requests_get_specific_statuses() {
    let s = serve(NO_SERVERS, &["--max-message-size", "64Ki"]);
    let mut c = s.client().await;
    for empty in ["", "  \n\t "] {
        let e = c.execute(authed(code(empty), ALICE)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("empty"), "{e:?}");
    }
    // Over limits.codeSize (1Ki) but within the message limit.
    let big = format!("return '{}'", "x".repeat(2000));
    let e = c.execute(authed(code(&big), ALICE)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("codeSize"), "{e:?}");
    // Over the message limit (64Ki).
    let huge = format!("return '{}'", "x".repeat(100_000));
    let e = c.execute(authed(code(&huge), ALICE)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // The server is fine afterwards.
    assert_eq!(completed(&c.execute(authed(code("return 3"), ALICE)).await.unwrap().into_inner()), 3);
}

/// `ExecuteRequest.code` as raw bytes, to send what a conforming client never would.
#[derive(Clone, PartialEq, prost::Message)]
struct RawRequest {
    #[prost(bytes = "vec", tag = "1")]
    code: Vec<u8>,
}

/// Field 1 with the wrong wire type (varint instead of length-delimited).
#[derive(Clone, PartialEq, prost::Message)]
struct WrongType {
    #[prost(uint64, tag = "1")]
    code: u64,
}

async fn raw_execute<M: prost::Message + Default + Send + Sync + 'static>(
    channel: Channel,
    message: M,
) -> Result<pb::ExecuteResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/mcpguard.v1.Executor/Execute");
    let codec = tonic_prost::ProstCodec::<M, pb::ExecuteResponse>::default();
    grpc.unary(authed(message, ALICE), path, codec).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn invalid_utf8_and_malformed_messages_are_invalid_argument() {
    let s = serve(NO_SERVERS, &[]);
    let channel = Channel::from_shared(s.grpc_url()).unwrap().connect().await.unwrap();
    let e =
        raw_execute(channel.clone(), RawRequest { code: b"return '\xff\xfe'".to_vec() }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("malformed request") && e.message().contains("UTF-8"), "{e:?}");
    let e = raw_execute(channel.clone(), WrongType { code: 7 }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // Valid bytes through the same path work.
    let ok = raw_execute(channel, RawRequest { code: b"return 5".to_vec() }).await.unwrap();
    assert_eq!(completed(&ok), 5);
    assert!(s.stderr().contains("\"level\":\"INFO\""), "JSON logs");
    assert!(!s.stderr().contains("panicked"));
}

#[tokio::test]
async fn a_deadline_shorter_than_the_run_ends_it_as_a_wall_time_limit() {
    let s = serve(NO_SERVERS, &[]);
    let mut c = s.client().await;
    let mut req = authed(code("await new Promise((r) => setTimeout(r, 5000)); return 1"), ALICE);
    req.set_timeout(Duration::from_millis(600));
    let started = Instant::now();
    let r = c.execute(req).await.unwrap().into_inner();
    let took = started.elapsed();
    assert!(
        matches!(status_of(&r), pb::outcome::Status::LimitExceeded(l) if l.limit == "wall_time"),
        "{r:?}"
    );
    assert!(took < Duration::from_millis(600), "answered after the deadline: {took:?}");
    // Same for the streaming variant: the last event is the outcome.
    let mut req = authed(code("while (true) {}"), ALICE);
    req.set_timeout(Duration::from_millis(400));
    let mut stream = c.execute_stream(req).await.unwrap().into_inner();
    let mut last = None;
    while let Some(e) = stream.message().await.unwrap() {
        last = Some(e);
    }
    let Some(pb::ExecuteEvent { event: Some(pb::execute_event::Event::Outcome(o)) }) = last else {
        panic!("no outcome: {last:?}")
    };
    assert!(
        matches!(o.status, Some(pb::outcome::Status::LimitExceeded(l)) if ["wall_time", "cpu_time"].contains(&l.limit.as_str()))
    );
}

#[tokio::test]
async fn a_full_queue_is_resource_exhausted_and_a_deadline_in_the_queue_is_deadline_exceeded() {
    let s = serve(NO_SERVERS, &["--max-concurrent", "1", "--max-queue", "1"]);
    let slow = "await new Promise((r) => setTimeout(r, 1500)); return 'slow'";
    let mut c1 = s.client().await;
    let mut c2 = s.client().await;
    let first = tokio::spawn(async move { c1.execute(authed(code(slow), ALICE)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = tokio::spawn(async move { c2.execute(authed(code(slow), ALICE)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One runs, one waits: the third is refused at once.
    let mut c3 = s.client().await;
    let started = Instant::now();
    let e = c3.execute(authed(code("return 1"), ALICE)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(e.message().contains("queue is full"), "{e:?}");
    assert_eq!(completed(&first.await.unwrap().unwrap().into_inner()), "slow");
    assert_eq!(completed(&second.await.unwrap().unwrap().into_inner()), "slow");

    // A request whose deadline passes while it waits.
    let mut c1 = s.client().await;
    let running = tokio::spawn(async move { c1.execute(authed(code(slow), ALICE)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut req = authed(code("return 1"), ALICE);
    req.set_timeout(Duration::from_millis(300));
    let e = c3.execute(req).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(running.await.unwrap().is_ok());
    let metrics = s.metrics_text().await;
    assert!(metrics.contains("reason=\"resource_exhausted\""), "{metrics}");
}

#[tokio::test]
async fn sigterm_drains_running_executions_then_exits() {
    let mut s = serve(NO_SERVERS, &["--shutdown-grace", "20s"]);
    let slow = "await new Promise((r) => setTimeout(r, 1500)); return 'finished'";
    let mut handles = Vec::new();
    for _ in 0..2 {
        let mut c = s.client().await;
        handles.push(tokio::spawn(async move { c.execute(authed(code(slow), ALICE)).await }));
    }
    let mut late = s.client().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New work is refused while the running executions finish.
    let e = late.execute(authed(code("return 1"), ALICE)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    for h in handles {
        let r = h.await.unwrap().unwrap().into_inner();
        assert_eq!(completed(&r), "finished");
    }
    let status = s.wait_exit(Duration::from_secs(15)).expect("the server exits after draining");
    assert!(status.success(), "{status:?}\n{}", s.stderr_tail(3000));
    assert!(!s.stderr().contains("panicked"));
}

#[tokio::test]
async fn the_stream_sends_console_and_tool_events_before_the_outcome() {
    let s = serve(&faults_config(""), &[]);
    let mut c = s.client().await;
    let program = "console.log('before'); const r = await mcp.faults.slow({ ms: 400 }); console.warn('after', r); return r";
    let started = Instant::now();
    let mut stream = c.execute_stream(authed(code(program), ALICE)).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while let Some(e) = stream.message().await.unwrap() {
        seen.push((started.elapsed(), e.event.unwrap()));
    }
    use pb::execute_event::Event as E;
    let kinds: Vec<&str> = seen
        .iter()
        .map(|(_, e)| match e {
            E::Console(_) => "console",
            E::ToolCallStarted(_) => "started",
            E::ToolCallFinished(_) => "finished",
            E::Outcome(_) => "outcome",
        })
        .collect();
    assert_eq!(kinds, ["console", "started", "finished", "console", "outcome"], "{seen:?}");
    let (first_at, E::Console(first)) = &seen[0] else { panic!() };
    assert_eq!(first.message, "before");
    let (outcome_at, E::Outcome(outcome)) = &seen[4] else { panic!() };
    // Streamed as it happened, not batched at the end.
    assert!(*outcome_at - *first_at >= Duration::from_millis(300), "{first_at:?} {outcome_at:?}");
    assert!(matches!(&seen[1].1, E::ToolCallStarted(t) if t.server == "faults" && t.tool == "slow"));
    assert!(matches!(&seen[2].1, E::ToolCallFinished(t) if t.status == "ok" && t.duration_ms >= 300.0));
    assert!(matches!(&outcome.status, Some(pb::outcome::Status::CompletedJson(j)) if j == "\"slept 400\""));
    assert_eq!(outcome.tool_calls.len(), 1);
}

#[tokio::test]
async fn tools_are_listed_and_described_with_typescript() {
    let s = serve(&faults_config(""), &[]);
    let mut c = s.client().await;
    let listed = c.list_tools(authed(pb::ListToolsRequest {}, ALICE)).await.unwrap().into_inner();
    let tools = listed.tools;
    // Each bound server with its handshake: what the operator writes into McpServer status.
    assert_eq!(listed.servers.len(), 1, "{:?}", listed.servers);
    let server = &listed.servers[0];
    assert_eq!(server.name, "faults");
    assert!(server.connected, "{server:?}");
    assert_eq!(server.server_name, "mcp-test-server");
    assert!(!server.server_version.is_empty(), "{server:?}");
    assert!(server.protocol_version.starts_with("20"), "{server:?}");
    assert_eq!(server.tool_count as usize, tools.len());
    assert!(server.error.is_empty(), "{server:?}");
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(echo.server, "faults");
    assert_eq!(echo.binding, "mcp.faults.echo");
    assert!(echo.description.contains("unchanged"));
    let time = tools.iter().find(|t| t.name == "get-current-time").unwrap();
    assert_eq!(time.binding, "mcp.faults.get_current_time");

    let all =
        c.describe_tools(authed(pb::DescribeToolsRequest::default(), ALICE)).await.unwrap().into_inner();
    assert_eq!(all.tools.len(), tools.len());
    assert!(all.typescript.contains("declare const mcp"), "{}", all.typescript);
    let some = c
        .describe_tools(authed(pb::DescribeToolsRequest { query: "UNCHANGED".into() }, ALICE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(some.tools.len(), 1, "{some:?}");
    assert!(some.tools[0].input_schema_json.contains("\"text\""));
    assert!(some.tools[0].typescript.contains("echo("));
    assert!(some.typescript.contains("echo(") && !some.typescript.contains("slow("), "{}", some.typescript);
}

#[tokio::test]
async fn health_reflection_and_metrics_are_served() {
    let s = serve(&faults_config(""), &[]);
    let channel = Channel::from_shared(s.grpc_url()).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "mcpguard.v1.Executor"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    }
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else { panic!() };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"mcpguard.v1.Executor".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("internal")), "the internal API is not advertised: {names:?}");

    let mut c = s.client().await;
    let r = c.execute(authed(code("await mcp.faults.echo({ text: 'x' }); return 1"), ALICE)).await.unwrap();
    assert_eq!(completed(&r.into_inner()), 1);
    let metrics = s.metrics_text().await;
    for needle in [
        "mcpguard_executions_total{door=\"grpc\",limit=\"\",outcome=\"completed\"} 1",
        "mcpguard_execution_duration_seconds_bucket",
        "mcpguard_tool_calls_total{status=\"ok\"} 1",
        "mcpguard_active_isolates 0",
        // `serve` runs isolate hosts by default, with their seccomp allow list.
        "mcpguard_isolate_hosts{event=\"started\"}",
        "mcpguard_isolate_hosts{event=\"weak_confinement\"} 0",
    ] {
        assert!(metrics.contains(needle), "{needle} missing in\n{metrics}");
    }
    let ready = reqwest::get(s.metrics.replace("/metrics", "/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn the_caller_identity_reaches_the_audit_record() {
    let s = serve(&faults_config(""), &[]);
    let mut c = s.client().await;
    let r = c.execute(authed(code("return await mcp.faults.echo({ text: 'audited' })"), BOB)).await.unwrap();
    let id = r.into_inner().outcome.unwrap().execution_id;
    // The proxy writes audit records to stderr (`path: "-"`).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = s.stderr();
        if let Some(line) = log.lines().find(|l| l.contains(&id) && l.contains("\"caller\"")) {
            assert!(line.contains("\"caller\":\"bob\""), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "no audit record for {id}:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn startup_refuses_unsafe_or_incomplete_auth_settings() {
    // No authentication configured at all.
    let Err((status, stderr)) = try_serve(NO_SERVERS, &[], false) else { panic!("started without auth") };
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{stderr}");
    assert!(stderr.contains("no caller authentication is configured"), "{stderr}");
    // --insecure-no-auth only binds loopback.
    let Err((status, stderr)) =
        try_serve(NO_SERVERS, &["--insecure-no-auth", "--mcp-listen", "0.0.0.0:0"], false)
    else {
        panic!("bound a public address without auth")
    };
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{stderr}");
    assert!(stderr.contains("only binds loopback"), "{stderr}");
    // On loopback it starts, with a warning.
    let s = try_serve(NO_SERVERS, &["--insecure-no-auth"], false).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(s.stderr().contains("authentication is OFF"), "{}", s.stderr());
    // Beyond loopback only when asked for by name (the operator does, where the cluster admin allowed it).
    let s = try_serve(
        NO_SERVERS,
        &["--insecure-no-auth", "--insecure-no-auth-network", "--mcp-listen", "0.0.0.0:0"],
        false,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(s.stderr().contains("authentication is OFF"), "{}", s.stderr());
    // And never without --insecure-no-auth itself.
    let Err((status, stderr)) = try_serve(NO_SERVERS, &["--insecure-no-auth-network"], false) else {
        panic!("--insecure-no-auth-network alone started")
    };
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_upstream_makes_the_server_not_ready() {
    // Nothing listens on port 1; the server starts, serves, and reports NOT_SERVING.
    let config = "servers:\n  - name: gone\n    url: http://127.0.0.1:1/mcp\n    allowPrivateEndpoint: true\n    timeouts: { connect: 1s }\n";
    let s = serve(config, &[]);
    let channel = Channel::from_shared(s.grpc_url()).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = health
        .check(tonic_health::pb::HealthCheckRequest { service: "mcpguard.v1.Executor".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, tonic_health::pb::health_check_response::ServingStatus::NotServing as i32);
    let ready = reqwest::get(s.metrics.replace("/metrics", "/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    // Code that does not need the upstream still runs; a call to it fails inside the sandbox.
    let mut c = s.client().await;
    assert_eq!(completed(&c.execute(authed(code("return 1"), ALICE)).await.unwrap().into_inner()), 1);
}

/// Like `exec`, `serve` starts the binding proxy with the environment and then runs with none: the
/// credential is in the proxy's environment and in neither the server's nor anything code can reach.
#[tokio::test]
async fn the_serving_process_holds_no_credential() {
    const SECRET: &str = "serve-env-secret-9c1f42d7-for-the-upstream";
    let config = format!(
        "servers:\n  - name: faults\n    command: {}\n    args: [stdio]\n    env:\n      - name: MCP_TEST_TOKEN\n        valueFrom: {{ env: UPSTREAM_TOKEN }}\n",
        api_support::test_server_bin().display()
    );
    let s = api_support::try_serve_env(&config, &[], true, &[("UPSTREAM_TOKEN", SECRET)])
        .unwrap_or_else(|e| panic!("{e:?}"));
    let pid = s.child.id();
    let environ = |pid: u32| {
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
            .to_string()
    };
    assert_eq!(environ(pid), "", "the server's environment is empty");
    let children: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flat_map(|t| {
            std::fs::read_to_string(t.unwrap().path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .map(|c| c.parse().unwrap())
                .collect::<Vec<u32>>()
        })
        .collect();
    assert!(children.iter().any(|c| environ(*c).contains(SECRET)), "the proxy child holds it");
    let mut c = s.client().await;
    let r = c.execute(authed(code("return await mcp.faults.whoami()"), ALICE)).await.unwrap().into_inner();
    // The upstream got the credential (through the proxy); the result is redacted before it returns.
    let out = format!("{r:?}");
    assert!(!out.contains(SECRET), "{out}");
}
