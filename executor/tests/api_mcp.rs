//! The MCP front door of `mcp-guard serve`: a real MCP client (rmcp) calls `execute_code`, end to end,
//! against `@modelcontextprotocol/server-everything` through the binding proxy; `search_tools` and
//! `describe_tools`; bearer authentication on HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use api_support::{ALICE, BOB, everything, serve};
use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, CallToolResult, JsonObject},
    transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig},
};
use serde_json::{Value, json};

fn everything_config() -> String {
    format!(
        "limits:\n  wallTime: 20s\nservers:\n  - name: everything\n    command: node\n    args: [{}, stdio]\n    timeouts: {{ connect: 30s }}\nbinding:\n  audit: {{ path: \"-\" }}\n",
        everything().display()
    )
}

fn transport(url: &str, token: &str) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token),
    )
}

fn args(v: Value) -> JsonObject {
    v.as_object().cloned().unwrap()
}

fn text(r: &CallToolResult) -> String {
    r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_runs_code_that_calls_server_everything() {
    let s = serve(&everything_config(), &["--allowed-callers", "alice"]);
    let client = ().serve(transport(&s.mcp, ALICE)).await.unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "mcp-guard");

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["execute_code", "search_tools", "describe_tools", "resume_execution"]);
    let description = tools[0].description.as_deref().unwrap();
    assert!(
        description.contains("mcp.everything.echo(args: { message: string }): Promise<unknown>;"),
        "{description}"
    );
    assert!(description.contains("mcp.everything.get_sum("), "{description}");
    assert!(description.contains("async function body"), "{description}");

    // execute_code, end to end through the binding proxy.
    let code = "const echo = await mcp.everything.echo({ message: 'hello from the sandbox' });\n\
                const sum = await mcp.everything.get_sum({ a: 2, b: 40 });\n\
                console.log('sum is', sum);\n\
                return { echo, sum };";
    let r = client
        .call_tool(CallToolRequestParams::new("execute_code").with_arguments(args(json!({ "code": code }))))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false), "{r:?}");
    let outcome = r.structured_content.clone().unwrap();
    assert_eq!(outcome["outcome"], "completed", "{outcome}");
    assert_eq!(outcome["result"]["echo"], "Echo: hello from the sandbox", "{outcome}");
    assert!(outcome["result"]["sum"].to_string().contains("42"), "{outcome}");
    let calls = outcome["toolCalls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c["server"] == "everything" && c["status"] == "ok"), "{calls:?}");
    assert!(outcome["executionId"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        serde_json::from_str::<Value>(&text(&r)).unwrap(),
        outcome,
        "text and structured content agree"
    );

    // An outcome other than completed is an error result the model can read.
    let r = client
        .call_tool(
            CallToolRequestParams::new("execute_code")
                .with_arguments(args(json!({ "code": "throw new Error('boom')" }))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(r.structured_content.as_ref().unwrap()["outcome"], "threw");
    assert_eq!(r.structured_content.as_ref().unwrap()["error"]["message"], "boom");
    let r = client
        .call_tool(
            CallToolRequestParams::new("execute_code")
                .with_arguments(args(json!({ "code": "require('fs')" }))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(r.structured_content.as_ref().unwrap()["rejection"]["rule"], "no-require");
    let r = client
        .call_tool(CallToolRequestParams::new("execute_code").with_arguments(args(json!({ "code": "  " }))))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("empty"), "{r:?}");
    let r = client
        .call_tool(CallToolRequestParams::new("execute_code").with_arguments(args(
            json!({ "code": "await new Promise((r) => setTimeout(r, 3000))", "timeoutMs": 200 }),
        )))
        .await
        .unwrap();
    assert_eq!(r.structured_content.as_ref().unwrap()["limit"], "wall_time", "{r:?}");
    // Malformed arguments are a protocol error.
    assert!(
        client
            .call_tool(CallToolRequestParams::new("execute_code").with_arguments(args(json!({ "code": 5 }))))
            .await
            .is_err()
    );

    // search_tools at each level of detail.
    let search = |query: &str, detail: &str| {
        client.call_tool(
            CallToolRequestParams::new("search_tools")
                .with_arguments(args(json!({ "query": query, "detail": detail }))),
        )
    };
    let r = search("sum", "names").await.unwrap();
    assert_eq!(text(&r), "mcp.everything.get_sum");
    let r = search("echo", "summaries").await.unwrap();
    assert!(text(&r).starts_with("mcp.everything.echo — "), "{}", text(&r));
    let r = search("sum", "full").await.unwrap();
    assert!(text(&r).contains("get_sum(args: {") && text(&r).contains("declare const mcp"), "{}", text(&r));
    let r = search("no such thing", "names").await.unwrap();
    assert!(text(&r).contains("No tool matches"), "{}", text(&r));

    // describe_tools.
    let r = client
        .call_tool(
            CallToolRequestParams::new("describe_tools")
                .with_arguments(args(json!({ "names": ["everything.echo", "nope"] }))),
        )
        .await
        .unwrap();
    let t = text(&r);
    assert!(t.contains("echo(args: { message: string })") && !t.contains("get_sum("), "{t}");
    assert!(t.contains("Unknown tools: nope"), "{t}");
    assert_eq!(r.structured_content.as_ref().unwrap()["tools"][0]["inputSchema"]["type"], "object");
    client.cancel().await.unwrap();

    // The caller of the front door is the token's caller (audit records carry it).
    assert!(s.stderr().contains("\"caller\":\"alice\""), "{}", s.stderr_tail(3000));
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("mcpguard_executions_total{door=\"mcp\",limit=\"\",outcome=\"completed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_need_a_valid_allowed_bearer_token() {
    let s = serve("limits:\n  wallTime: 5s\n", &["--allowed-callers", "alice"]);
    let http = reqwest::Client::new();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let send = |auth: Option<&str>| {
        let mut r =
            http.post(&s.mcp).header("accept", "application/json, text/event-stream").json(&initialize);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let r = send(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    assert_eq!(send(Some("Bearer wrong-token-0000000000")).await.unwrap().status(), 401);
    assert_eq!(send(Some("Basic YWxpY2U6eA==")).await.unwrap().status(), 401);
    assert_eq!(send(Some(&format!("Bearer {BOB}"))).await.unwrap().status(), 403);
    assert_eq!(send(Some(&format!("Bearer {ALICE}"))).await.unwrap().status(), 200);
    // The same through rmcp: no session without the token.
    assert!(().serve(transport(&s.mcp, "wrong-token-0000000000")).await.is_err());
    // A body over the size limit is refused before it reaches the handler.
    let big =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"pad": "x".repeat(5 << 20)}});
    let r = http
        .post(&s.mcp)
        .bearer_auth(ALICE)
        .header("accept", "application/json, text/event-stream")
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}
