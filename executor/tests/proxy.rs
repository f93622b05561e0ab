//! The binding proxy against real MCP servers: the fault-injection server and two third-party servers.
//! Every guarantee of the proxy is tried here: credentials stay in the proxy, and each refusal (quota,
//! budget, rate limit, timeout, address guard, deny list, changed definition) is its own clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{upstream::*, *};
use mcp_guard_crds::LimitKind;
use mcp_guard_proto::internal as pb;
use mcp_guard_sandbox::outcome::ToolCallStatus;
use mcp_guard_tools::ToolIndex;
use serde_json::json;

const TOKEN: &str = "tok-3f9a71c2e8-the-upstream-bearer";

async fn run_ok(f: &ProxyFixture, code: &str) -> serde_json::Value {
    let o = f.sandbox.run(code, &f.config.limits).await;
    completed(&o).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_tools_return_plain_values_with_typed_declarations() {
    let f = proxy_fixture(&format!("servers:\n{}", stdio_server("faults", ""))).await;
    let r = run_ok(
        &f,
        "const echo = await mcp.faults.echo({ text: 'hi' });
         const sum = await mcp.faults.add({ a: 2, b: 3.5 });
         const t = await mcp.faults.get_current_time();
         const many = await mcp.faults.many({ count: 3 });
         return { echo, sum, t, many };",
    )
    .await;
    assert_eq!(
        r,
        json!({"echo": "hi", "sum": {"sum": 5.5}, "t": {"time": "12:00:00Z"}, "many": {"items": [0, 1, 2]}})
    );
    // The proxy reports names and schemas; the executor's tool index derives the declarations.
    let servers = f.host.list_tools().await.unwrap();
    let tools = ToolIndex::new(servers.clone());
    assert!(tools.typescript().contains("faults: {"), "{}", tools.typescript());
    let add = tools.tools().iter().find(|t| t.name == "add").unwrap();
    assert!(
        add.typescript.contains("add(args: {") && add.typescript.contains("a: number"),
        "{}",
        add.typescript
    );
    assert!(
        add.typescript.contains("Promise<{") && add.typescript.contains("sum: number"),
        "{}",
        add.typescript
    );
    let echo = tools.tools().iter().find(|t| t.name == "echo").unwrap();
    assert!(echo.typescript.contains("Promise<unknown>"), "{}", echo.typescript);
    let pinned = servers[0].tools.iter().find(|t| t.name == "add").unwrap();
    assert_eq!(pinned.pinned_sha256.len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_errors_and_huge_results() {
    let f = proxy_fixture(&format!("servers:\n{}", stdio_server("faults", ""))).await;
    let r = run_ok(
        &f,
        "try { await mcp.faults.fail({ message: 'no such repo' }); } catch (e) { return [e.name, e.message, e.code]; }",
    )
    .await;
    assert_eq!(r, json!(["McpToolError", "no such repo", "tool_error"]));
    let r = run_ok(&f, "const s = await mcp.faults.huge({ bytes: 200000 }); return s.length;").await;
    assert_eq!(r, json!(200000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_reaches_the_server_but_never_the_sandbox() {
    let server = http_test_server(&["--require-bearer", TOKEN]);
    let dir = TempDir::new("token");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let f = proxy_fixture(&format!(
        "servers:\n  - name: api\n    url: {}\n    allowPrivateEndpoint: true\n    headers:\n      - name: Authorization\n        prefix: 'Bearer '\n        valueFrom: {{ file: {} }}\n",
        server.url,
        token_file.display()
    ))
    .await;
    // The server demands the token, so a working call proves it arrived.
    assert_eq!(run_ok(&f, "return await mcp.api.echo({ text: 'authorised' })").await, json!("authorised"));
    // Every way the code could look for it.
    let o = f
        .sandbox
        .run(
            "const found = [];
             found.push(await mcp.api.whoami());                       // the server echoes the header back
             try { await mcp.api.fail({ message: 'token was ' + (await mcp.api.whoami()) }); } catch (e) { found.push(e.message, String(e.stack)); }
             found.push(String(mcp.api.echo), Object.keys(mcp).join(), Object.keys(mcp.api).join());
             try { mcp.api.nothing(); } catch (e) { found.push(e.message); }
             console.log(found.join('\\n'));
             return found;",
            &f.config.limits,
        )
        .await;
    let text = serde_json::to_string(&o).unwrap();
    assert!(!text.contains(TOKEN), "the token leaked into the outcome: {text}");
    assert!(text.contains("Bearer [REDACTED]"), "the echoed header must arrive redacted: {text}");
    // ... and the audit log has no token either.
    let audit = serde_json::to_string(&f.audit.all()).unwrap();
    assert!(!audit.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_applies_without_a_restart() {
    let dir = TempDir::new("rotate");
    let server_token = dir.path().join("server-token");
    let proxy_token = dir.path().join("proxy-token");
    std::fs::write(&server_token, "first-token-value").unwrap();
    std::fs::write(&proxy_token, "first-token-value").unwrap();
    let server = http_test_server(&["--require-bearer-file", server_token.to_str().unwrap()]);
    let f = proxy_fixture(&format!(
        "servers:\n  - name: api\n    url: {}\n    allowPrivateEndpoint: true\n    headers:\n      - name: Authorization\n        prefix: 'Bearer '\n        valueFrom: {{ file: {} }}\n",
        server.url,
        proxy_token.display()
    ))
    .await;
    assert_eq!(run_ok(&f, "return await mcp.api.echo({ text: 'one' })").await, json!("one"));
    // Rotate on both sides, the way a Secret update lands: a new file swapped in.
    for (path, value) in [(&server_token, "second-token-value"), (&proxy_token, "second-token-value")] {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, value).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    assert_eq!(run_ok(&f, "return await mcp.api.echo({ text: 'two' })").await, json!("two"));
    let who = run_ok(&f, "return await mcp.api.whoami()").await;
    assert_eq!(who, json!("Bearer [REDACTED]"), "old and new values are both redacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_is_its_own_clear_error() {
    let f = proxy_fixture(&format!(
        "limits:\n  toolCalls: 50\nbinding:\n  argumentBytes: 2Ki\n  resultBytes: 64Ki\n  rateLimits:\n    perTool: {{ requests: 3, per: 1m }}\nservers:\n{}",
        stdio_server("faults", "    tools:\n      deny: [env]\n    timeouts: { call: 300ms }\n")
    ))
    .await;
    let code = |call: &str| {
        format!("try {{ {call}; return 'no error'; }} catch (e) {{ return [e.code, e.message]; }}")
    };
    // Denied by the server's deny list: not even bound.
    let r = run_ok(&f, &code("await mcp.faults.env({ name: 'PATH' })")).await;
    assert!(r.to_string().contains("unknown tool 'env'"), "{r}");
    // Argument budget.
    let r = run_ok(&f, &code("await mcp.faults.echo({ text: 'x'.repeat(5000) })")).await;
    assert_eq!(r[0], "budget_exceeded", "{r}");
    // Result budget.
    let r = run_ok(&f, &code("await mcp.faults.huge({ bytes: 100000 })")).await;
    assert_eq!(r[0], "budget_exceeded", "{r}");
    // Timeout: a clean error within the deadline, and the next call works.
    let r = run_ok(&f, &code("await mcp.faults.hang()")).await;
    assert_eq!(r[0], "timeout", "{r}");
    assert!(r[1].as_str().unwrap().contains("timed out after 300ms"), "{r}");
    let r = run_ok(&f, &code("await mcp.faults.slow({ ms: 2000 })")).await;
    assert_eq!(r[0], "timeout", "{r}");
    // Rate limit per tool: 3 per minute.
    let r = run_ok(
        &f,
        "const out = []; for (let i = 0; i < 4; i++) { try { out.push(await mcp.faults.add({ a: i, b: 0 })); } catch (e) { out.push([e.code, e.message]); } } return out;",
    )
    .await;
    assert_eq!(r[3][0], "rate_limited", "{r}");
    assert!(r[3][1].as_str().unwrap().contains("retry after"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_upstream_is_a_clean_error_and_the_next_call_works() {
    let f = proxy_fixture(&format!("servers:\n{}", stdio_server("faults", ""))).await;
    let o = f
        .sandbox
        .run("try { await mcp.faults.crash(); } catch (e) { return [e.code, e.message]; }", &f.config.limits)
        .await;
    let r = completed(&o);
    assert_eq!(r[0], "unavailable", "{r}");
    assert_eq!(o.tool_calls[0].status, ToolCallStatus::Error);
    // The proxy starts a new child on the next use (after a short backoff).
    let mut last = json!(null);
    for _ in 0..50 {
        let o = f.sandbox.run("return await mcp.faults.echo({ text: 'back' })", &f.config.limits).await;
        if let mcp_guard_sandbox::outcome::Status::Completed { result } = &o.status {
            last = result.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, json!("back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_guard_refuses_private_and_metadata_endpoints() {
    let server = http_test_server(&[]);
    let port = server.url.rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
    let f = proxy_fixture(&format!(
        "servers:\n  - name: loopback\n    url: {}\n  - name: byname\n    url: http://localhost:{port}/mcp\n  - name: metadata\n    url: http://169.254.169.254/mcp\n    allowPrivateEndpoint: true\n    timeouts: {{ connect: 1s }}\n",
        server.url
    ))
    .await;
    let tools = f.host.list_tools().await.unwrap();
    let error = |name: &str| tools.iter().find(|s| s.state.name == name).unwrap().state.error.clone();
    assert!(tools.iter().all(|s| !s.state.connected && s.tools.is_empty()), "{tools:?}");
    assert!(error("loopback").contains("127.0.0.1: it is a loopback address"), "{}", error("loopback"));
    assert!(error("loopback").contains("allowPrivateEndpoint"), "{}", error("loopback"));
    assert!(
        error("byname").contains("loopback"),
        "a name resolving to loopback is refused too: {}",
        error("byname")
    );
    assert!(
        error("metadata").contains("cloud metadata"),
        "metadata is refused even when private endpoints are allowed: {}",
        error("metadata")
    );
    // A compromised executor calling anyway gets the refusal, and no connection is made.
    let mut client = raw_client(&f).await;
    client
        .begin_execution(pb::BeginExecutionRequest {
            execution_id: "x1".into(),
            caller: "evil".into(),
            code_sha256: String::new(),
            caller_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    for server in ["loopback", "metadata"] {
        let r = client
            .call_tool(pb::CallToolRequest {
                execution_id: "x1".into(),
                server: server.into(),
                tool: "echo".into(),
                arguments_json: "{}".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let Some(pb::call_tool_response::Result::Failure(failure)) = r.result else { panic!("{r:?}") };
        assert_eq!(failure.kind, pb::tool_failure::Kind::AddressRefused as i32, "{failure:?}");
    }
}

/// A raw client of the internal API: what a compromised executor could send.
async fn raw_client(
    f: &ProxyFixture,
) -> pb::binding_proxy_client::BindingProxyClient<tonic::transport::Channel> {
    let socket = f.socket.clone();
    let channel = tonic::transport::Endpoint::try_from("http://x")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let s = socket.clone();
            async move { tokio::net::UnixStream::connect(s).await.map(hyper_util::rt::TokioIo::new) }
        }))
        .await
        .unwrap();
    pb::binding_proxy_client::BindingProxyClient::new(channel)
}

/// The proxy enforces quota and bindings itself: a compromised executor that skips its own checks, or
/// invents executions, gets nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_holds_against_a_compromised_executor() {
    let f = proxy_fixture(&format!(
        "limits:\n  toolCalls: 3\nservers:\n{}",
        stdio_server("faults", "    tools:\n      deny: [env]\n")
    ))
    .await;
    let mut client = raw_client(&f).await;
    let call = |execution: &str, tool: &str, args: &str| pb::CallToolRequest {
        execution_id: execution.into(),
        server: "faults".into(),
        tool: tool.into(),
        arguments_json: args.into(),
        ..Default::default()
    };
    let kind = |r: pb::CallToolResponse| match r.result {
        Some(pb::call_tool_response::Result::Failure(f)) => pb::tool_failure::Kind::try_from(f.kind).unwrap(),
        other => panic!("expected a failure, got {other:?}"),
    };
    // No execution: refused.
    let r = client.call_tool(call("invented", "echo", r#"{"text":"x"}"#)).await.unwrap().into_inner();
    assert_eq!(kind(r), pb::tool_failure::Kind::UnknownExecution);
    client
        .begin_execution(pb::BeginExecutionRequest {
            execution_id: "e1".into(),
            caller: "c".into(),
            code_sha256: "00".into(),
            caller_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    // A denied tool: refused even though the server has it.
    let r = client.call_tool(call("e1", "env", r#"{"name":"PATH"}"#)).await.unwrap().into_inner();
    assert_eq!(kind(r), pb::tool_failure::Kind::Denied);
    // The quota: 3 calls per execution, whatever the executor thinks.
    for _ in 0..3 {
        let r = client.call_tool(call("e1", "echo", r#"{"text":"x"}"#)).await.unwrap().into_inner();
        assert!(matches!(r.result, Some(pb::call_tool_response::Result::ValueJson(_))), "{r:?}");
    }
    let r = client.call_tool(call("e1", "echo", r#"{"text":"x"}"#)).await.unwrap().into_inner();
    assert_eq!(kind(r), pb::tool_failure::Kind::QuotaExceeded);
    // An execution id cannot be reused to reset the quota.
    let again = client
        .begin_execution(pb::BeginExecutionRequest {
            execution_id: "e1".into(),
            caller: "c".into(),
            code_sha256: "00".into(),
            caller_token: String::new(),
            ..Default::default()
        })
        .await;
    assert_eq!(again.unwrap_err().code(), tonic::Code::InvalidArgument);
    // Everything is on record.
    let calls = f.audit.events("tool_call");
    assert_eq!(calls.len(), 6, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "unknown_execution");
    assert_eq!(calls[1]["outcome"], "denied");
    assert_eq!(calls[5]["outcome"], "quota_exceeded");
    assert_eq!(calls[2]["argumentShape"], json!({"text": "string"}));
    assert!(calls[2].get("arguments").is_none(), "argument values are not recorded by default");
}

/// Audit: start, calls and end of every execution; an execution the executor never ends is closed as
/// abandoned by the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_every_execution_even_abandoned_ones() {
    let f = proxy_fixture(&format!(
        "limits:\n  wallTime: 100ms\n  cpuTime: 100ms\nservers:\n{}",
        stdio_server("faults", "")
    ))
    .await;
    let o = f
        .sandbox
        .run_as("agent-7", "await mcp.faults.echo({ text: 'a' }); return 1", &f.config.limits)
        .await
        .unwrap();
    assert_eq!(completed(&o), &json!(1));
    let o = f.sandbox.run_as("agent-7", "eval('1')", &f.config.limits).await.unwrap();
    assert_eq!(rejected(&o).0, "no-eval");
    let started = f.audit.events("execution_started");
    let ended = f.audit.events("execution_ended");
    assert_eq!(started.len(), 2);
    assert_eq!(ended.len(), 2);
    assert_eq!(started[0]["caller"], "agent-7");
    assert_eq!(started[0]["codeSha256"].as_str().unwrap().len(), 64);
    assert_eq!(ended[0]["outcome"], "completed");
    assert_eq!(ended[1]["outcome"], "rejected");
    assert_eq!(f.audit.events("tool_call")[0]["tool"], "echo");
    // The executor "dies" after BeginExecution.
    let mut client = raw_client(&f).await;
    client
        .begin_execution(pb::BeginExecutionRequest {
            execution_id: "dies".into(),
            caller: "agent-7".into(),
            code_sha256: "ab".into(),
            caller_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut abandoned = Vec::new();
    for _ in 0..100 {
        abandoned = f.audit.events("execution_abandoned");
        if !abandoned.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(abandoned.len(), 1, "the proxy closes executions that never end");
    assert_eq!(abandoned[0]["execution"], "dies");
}

/// A tool whose definition changes silently: reported, or refused when the policy says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tool_definition_is_reported_or_refused() {
    let f = proxy_fixture(&format!(
        "servers:\n{}{}",
        stdio_server("strict", "    toolChanges: refuse\n"),
        stdio_server("lenient", "")
    ))
    .await;
    for server in ["strict", "lenient"] {
        assert_eq!(
            run_ok(&f, &format!("return await mcp.{server}.echo({{ text: 'before' }})")).await,
            json!("before")
        );
        run_ok(&f, &format!("return await mcp.{server}.mutate_tools()")).await;
    }
    // The list_changed notification makes the proxy refresh; give it a moment.
    let mut strict = json!(null);
    for _ in 0..50 {
        strict = run_ok(&f, "try { return await mcp.strict.echo({ text: 'after' }); } catch (e) { return [e.code, e.message]; }").await;
        if strict[0] == "definition_changed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(strict[0], "definition_changed", "{strict}");
    assert!(strict[1].as_str().unwrap().contains("changed its definition"), "{strict}");
    assert_eq!(run_ok(&f, "return await mcp.lenient.echo({ text: 'after' })").await, json!("after"));
    let changes = f.audit.events("tool_definition_changed");
    let servers: Vec<&str> = changes.iter().map(|c| c["server"].as_str().unwrap()).collect();
    assert!(servers.contains(&"strict") && servers.contains(&"lenient"), "{changes:?}");
    // The new tool is discovered.
    let tools = f.proxy.list_tools().await;
    let lenient = tools.iter().find(|s| s.state.name == "lenient").unwrap();
    assert!(lenient.tools.iter().any(|t| t.name == "added-later"));
}

/// Third-party servers nobody here wrote, installed by scripts/setup-mcp-servers.sh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_servers_everything_and_time_over_stdio() {
    let dir = real_servers_dir();
    let everything =
        dir.join("everything/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let f = proxy_fixture(&format!(
        "servers:\n  - name: everything\n    command: node\n    args: [{}, stdio]\n  - name: time\n    command: {}\n    args: [--local-timezone, UTC]\n",
        everything.display(),
        dir.join("venv/bin/mcp-server-time").display()
    ))
    .await;
    let r = run_ok(
        &f,
        "const echo = await mcp.everything.echo({ message: 'hi' });
         const sum = await mcp.everything.get_sum({ a: 2, b: 3.5 });
         const weather = await mcp.everything.get_structured_content({ location: 'Chicago' });
         const now = await mcp.time.get_current_time({ timezone: 'UTC' });
         const tokyo = await mcp.time.convert_time({ source_timezone: 'UTC', time: '12:00', target_timezone: 'Asia/Tokyo' });
         let bad; try { await mcp.time.get_current_time({ timezone: 'Not/AZone' }); } catch (e) { bad = [e.name, e.code]; }
         return { echo, sum, weatherKeys: Object.keys(weather).sort(), tz: now.timezone, dow: typeof now.day_of_week, tokyo: tokyo.target.datetime.slice(11, 16), bad };",
    )
    .await;
    assert_eq!(r["echo"], "Echo: hi");
    assert_eq!(r["sum"], "The sum of 2 and 3.5 is 5.5.");
    assert_eq!(r["weatherKeys"], json!(["conditions", "humidity", "temperature"]));
    assert_eq!(r["tz"], "UTC");
    assert_eq!(r["dow"], "string");
    assert_eq!(r["tokyo"], "21:00");
    assert_eq!(r["bad"], json!(["McpToolError", "tool_error"]));
    let tools = ToolIndex::new(f.host.list_tools().await.unwrap());
    let ts = tools.typescript();
    assert!(ts.contains("get_current_time(args: {") && ts.contains("timezone: string"), "{ts}");
    assert!(ts.contains("day_of_week"), "typed result from the output schema: {ts}");
    assert!(ts.contains("get_sum(args: {"), "{ts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_server_everything_over_streamable_http() {
    let dir = real_servers_dir();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new("node")
        .arg("--require")
        .arg(dir.join("listen-loopback.cjs"))
        .arg(dir.join("everything/node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let f = proxy_fixture(&format!(
        "servers:\n  - name: everything\n    url: {url}\n    allowPrivateEndpoint: true\n"
    ))
    .await;
    let r = run_ok(&f, "return [await mcp.everything.echo({ message: 'over http' }), await mcp.everything.get_sum({ a: 1, b: 2 })]").await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r, json!(["Echo: over http", "The sum of 1 and 2 is 3."]));
}

/// The tool-call limit of the sandbox and the proxy's quota agree: the sandbox stops first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_limit_applies_through_the_proxy() {
    let f =
        proxy_fixture(&format!("limits:\n  toolCalls: 2\nservers:\n{}", stdio_server("faults", ""))).await;
    let o = f.sandbox.run("for (;;) await mcp.faults.echo({ text: 'x' });", &f.config.limits).await;
    assert_eq!(limit(&o), LimitKind::ToolCalls);
    assert_eq!(o.tool_calls.len(), 2);
}

/// An HTTP upstream that goes away and comes back (a restarted pod): the dead session is dropped, the
/// next call after the backoff initialises a new session, and the calls in between fail cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_that_restarts_gets_a_new_session() {
    let first = http_test_server(&[]);
    let addr = first.url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let f = proxy_fixture(&format!(
        "servers:\n  - name: api\n    url: {}\n    allowPrivateEndpoint: true\n",
        first.url
    ))
    .await;
    assert_eq!(run_ok(&f, "return await mcp.api.echo({ text: 'one' })").await, json!("one"));
    drop(first);
    let down =
        run_ok(&f, "try { await mcp.api.echo({ text: 'x' }); return 'ok'; } catch (e) { return e.code; }")
            .await;
    assert_eq!(down, json!("unavailable"));
    let _second = http_test_server(&["--listen", &addr]);
    let mut last = json!(null);
    for _ in 0..60 {
        last = run_ok(&f, "try { return await mcp.api.echo({ text: 'two' }); } catch (e) { return e.code; }")
            .await;
        if last == json!("two") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last, json!("two"));
}

/// An HTTP upstream that starts answering garbage mid-session (a broken deployment, a captive proxy):
/// each call fails cleanly and quickly with a tool error, the proxy survives, and once a real server is
/// back at the address the next call works. Garbage of three shapes: invalid JSON as
/// `application/json`, an HTML page, and a 10 MB body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_speaking_garbage_is_a_clean_error_and_a_real_one_is_used_again() {
    use axum::{Router, http::header, response::IntoResponse, routing::any};
    let first = http_test_server(&[]);
    let addr = first.url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let f = proxy_fixture(&format!(
        "servers:\n  - name: api\n    url: {}\n    allowPrivateEndpoint: true\n    timeouts: {{ call: 5s }}\n",
        first.url
    ))
    .await;
    assert_eq!(run_ok(&f, "return await mcp.api.echo({ text: 'one' })").await, json!("one"));
    drop(first);
    type Garbage = (&'static str, &'static str, fn() -> Vec<u8>);
    let garbage: [Garbage; 3] = [
        ("invalid JSON", "application/json", || b"{\"jsonrpc\": \"2.0\", \"id\": ".to_vec()),
        ("an HTML page", "text/html", || b"<html><body>Please log in</body></html>".to_vec()),
        ("10 MB", "application/json", || vec![b'x'; 10 << 20]),
    ];
    for (what, content_type, body) in garbage {
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        let app = Router::new().fallback(any(move || async move {
            ([(header::CONTENT_TYPE, content_type)], body()).into_response()
        }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let started = std::time::Instant::now();
        let r = run_ok(&f, "try { await mcp.api.echo({ text: 'x' }); return 'ok'; } catch (e) { return [e.code, e.message]; }")
            .await;
        assert!(r[0] == "unavailable" || r[0] == "upstream_error", "{what}: {r}");
        assert!(!r[1].as_str().unwrap().contains(&addr), "{what}: the error names no address: {r}");
        assert!(started.elapsed() < Duration::from_secs(5), "{what}: took {:?}", started.elapsed());
        server.abort();
        let _ = server.await;
    }
    let _second = http_test_server(&["--listen", &addr]);
    let mut last = json!(null);
    for _ in 0..60 {
        last = run_ok(&f, "try { return await mcp.api.echo({ text: 'two' }); } catch (e) { return e.code; }")
            .await;
        if last == json!("two") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last, json!("two"));
}

/// Upstream transport errors name the kind of failure and the configured server, never the URL, its
/// secrets (a key in the query, userinfo) or the internal host and port; those go to the proxy's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_name_no_url_address_or_secret() {
    // A port nothing listens on: connections are refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://svcuser:PASSWORDVALUE@127.0.0.1:{port}/mcp?key=SECRETVALUE&x=1");
    let f = proxy_fixture(&format!(
        "servers:\n  - name: down\n    url: '{url}'\n    allowPrivateEndpoint: true\n    timeouts: {{ connect: 2s, call: 2s }}\n"
    ))
    .await;
    let host_port = format!("127.0.0.1:{port}");
    let leaks = |text: &str| -> Vec<&str> {
        ["SECRETVALUE", "PASSWORDVALUE", "svcuser", host_port.as_str(), "http://", "key=", "/mcp"]
            .into_iter()
            .filter(|s| text.contains(s))
            .collect()
    };
    let tools = f.host.list_tools().await.unwrap();
    let down = &tools.iter().find(|s| s.state.name == "down").unwrap().state;
    assert!(!down.connected);
    assert!(down.error.contains("down") && down.error.contains("unavailable"), "{}", down.error);
    assert!(leaks(&down.error).is_empty(), "ListTools error leaks {:?}: {}", leaks(&down.error), down.error);
    // What the sandbox sees when it calls anyway (a compromised executor calls by name).
    let mut client = raw_client(&f).await;
    client
        .begin_execution(pb::BeginExecutionRequest {
            execution_id: "x1".into(),
            caller: "c".into(),
            code_sha256: String::new(),
            caller_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..2 {
        let r = client
            .call_tool(pb::CallToolRequest {
                execution_id: "x1".into(),
                server: "down".into(),
                tool: "echo".into(),
                arguments_json: "{}".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let Some(pb::call_tool_response::Result::Failure(failure)) = r.result else { panic!("{r:?}") };
        assert_eq!(failure.kind, pb::tool_failure::Kind::Unavailable as i32, "{failure:?}");
        assert!(failure.message.contains("down"), "{failure:?}");
        assert!(
            leaks(&failure.message).is_empty(),
            "the failure leaks {:?}: {failure:?}",
            leaks(&failure.message)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let audit = serde_json::to_string(&f.audit.all()).unwrap();
    assert!(!audit.contains("SECRETVALUE") && !audit.contains("PASSWORDVALUE"), "{audit}");
}

/// A server whose tool list is slow to come: while it is being listed, the server is reported as not
/// connected, never as connected with no tools (the operator's discovery took such a report for a
/// server that has none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_is_connected_only_once_its_tools_are_listed() {
    let server = http_test_server(&["--list-tools-delay-ms", "1500"]);
    let config = mcp_guard_crds::GuardConfig::from_yaml(
        &format!(
            "servers:\n  - name: slow\n    url: {}\n    allowPrivateEndpoint: true\n    timeouts: {{ connect: 10s }}\n",
            server.url
        ),
        "test config",
    )
    .unwrap();
    let proxy = mcp_guard_binding_proxy::BindingProxy::new(
        config,
        mcp_guard_binding_proxy::audit::AuditLog::to_writer(Box::new(Records::default())),
    );
    let connecting = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.connect_all().await }
    });
    let mut seen = Vec::new();
    while !connecting.is_finished() {
        for s in proxy.list_tools().await {
            seen.push((s.state.connected, s.tools.len()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    connecting.await.unwrap();
    let last = proxy.list_tools().await;
    assert!(last[0].state.connected && !last[0].tools.is_empty(), "{last:?}");
    assert!(
        seen.iter().all(|&(connected, tools)| !connected || tools > 0),
        "reported connected with no tools while listing: {seen:?}"
    );
    assert!(!seen.is_empty());
}

/// A credential file that does not exist yet (in Kubernetes: an optional Secret volume whose Secret is
/// not created yet) is reported by path, never by value; once it appears, the server connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_credential_is_reported_until_it_appears() {
    let server = http_test_server(&["--require-bearer", TOKEN]);
    let dir = TempDir::new("missing-cred");
    let token_file = dir.path().join("token");
    let f = proxy_fixture(&format!(
        "servers:\n  - name: api\n    url: {}\n    allowPrivateEndpoint: true\n    headers:\n      - name: Authorization\n        prefix: 'Bearer '\n        valueFrom: {{ file: {} }}\n",
        server.url,
        token_file.display()
    ))
    .await;
    let state = &f.host.list_tools().await.unwrap()[0].state;
    assert!(!state.connected);
    assert_eq!(state.missing_credentials, [token_file.display().to_string()]);
    assert!(state.error.contains("credential"), "{}", state.error);
    std::fs::write(&token_file, TOKEN).unwrap();
    f.proxy.connect_all().await;
    let state = &f.host.list_tools().await.unwrap()[0].state;
    assert!(state.connected, "{state:?}");
    assert!(state.missing_credentials.is_empty(), "{state:?}");
    assert!(!format!("{state:?}").contains(TOKEN));
}
