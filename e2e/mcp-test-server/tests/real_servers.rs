//! Talks to real MCP servers that nobody here wrote, installed by `scripts/setup-mcp-servers.sh` under
//! `${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/mcp-servers/`. Ignored by default because they need node
//! and python packages: run with `cargo test -p mcp-guard-test-server --test real_servers -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, process::Stdio, time::Duration};

use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, JsonObject, Tool},
    service::RunningService,
    transport::{
        ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

const TIMEOUT: Duration = Duration::from_secs(30);

fn servers_dir() -> PathBuf {
    let cache = std::env::var_os("MCP_GUARD_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/mcp-guard")
    });
    let dir = cache.join("mcp-servers");
    assert!(dir.is_dir(), "{} is missing: run scripts/setup-mcp-servers.sh first", dir.display());
    dir
}

fn everything_entry() -> PathBuf {
    servers_dir().join("everything/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

fn time_command() -> Command {
    Command::new(servers_dir().join("venv/bin/mcp-server-time")).configure(|cmd| {
        cmd.args(["--local-timezone", "UTC"]);
    })
}

fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

async fn call(client: &RunningService<RoleClient, ()>, name: &str, arguments: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(name.to_owned()).with_arguments(args(arguments));
    let result = tokio::time::timeout(TIMEOUT, client.call_tool(params))
        .await
        .unwrap_or_else(|_| panic!("{name} timed out"))
        .unwrap_or_else(|error| panic!("{name} failed: {error}"));
    println!("call {name}: {}", serde_json::to_string(&result).unwrap());
    result
}

fn text_of(result: &CallToolResult) -> &str {
    result.content.first().and_then(|content| content.as_text()).map(|text| text.text.as_str()).expect("text")
}

async fn list_and_print(client: &RunningService<RoleClient, ()>, label: &str) -> Vec<Tool> {
    let tools = tokio::time::timeout(TIMEOUT, client.list_all_tools()).await.unwrap().unwrap();
    println!("== {label}: {} tools", tools.len());
    for tool in &tools {
        println!(
            "{} | input {} | output schema: {}",
            tool.name,
            serde_json::to_string(&tool.input_schema).unwrap(),
            tool.output_schema.as_ref().map(|s| serde_json::to_string(s).unwrap()).unwrap_or("none".into()),
        );
    }
    tools
}

fn names(tools: &[Tool]) -> Vec<&str> {
    tools.iter().map(|tool| tool.name.as_ref()).collect()
}

/// The tools every server-everything transport must offer, and the calls the proxy tests rely on.
async fn check_everything(client: &RunningService<RoleClient, ()>, label: &str) {
    let tools = list_and_print(client, label).await;
    let names = names(&tools);
    for expected in ["echo", "get-sum", "get-env", "get-structured-content", "trigger-long-running-operation"]
    {
        assert!(names.contains(&expected), "{label} lacks {expected}: {names:?}");
    }
    let echo = call(client, "echo", json!({"message": "hi from rmcp"})).await;
    assert_eq!(text_of(&echo), "Echo: hi from rmcp");
    let sum = call(client, "get-sum", json!({"a": 2, "b": 3.5})).await;
    assert!(text_of(&sum).contains("5.5"), "{sum:?}");
}

#[tokio::test]
#[ignore = "needs scripts/setup-mcp-servers.sh"]
async fn everything_over_stdio() {
    let command = Command::new("node").configure(|cmd| {
        cmd.arg(everything_entry()).arg("stdio");
    });
    let transport = TokioChildProcess::builder(command).stderr(Stdio::null()).spawn().unwrap().0;
    let client = ().serve(transport).await.unwrap();
    println!("server info: {:?}", client.peer_info().unwrap().server_info);
    check_everything(&client, "everything (stdio)").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
#[ignore = "needs scripts/setup-mcp-servers.sh"]
async fn everything_over_streamable_http() {
    // Pick a free loopback port; server-everything only takes a port (env PORT).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new("node")
        .arg("--require")
        .arg(servers_dir().join("listen-loopback.cjs"))
        .arg(everything_entry())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(TIMEOUT, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("listening on port") {
                return;
            }
        }
        panic!("server-everything exited before listening");
    })
    .await
    .unwrap();

    let url = format!("http://127.0.0.1:{port}/mcp");
    let transport =
        StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url));
    let client = ().serve(transport).await.unwrap();
    check_everything(&client, "everything (streamable HTTP)").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
#[ignore = "needs scripts/setup-mcp-servers.sh"]
async fn time_over_stdio() {
    let transport = TokioChildProcess::builder(time_command()).stderr(Stdio::null()).spawn().unwrap().0;
    let client = ().serve(transport).await.unwrap();
    println!("server info: {:?}", client.peer_info().unwrap().server_info);
    let tools = list_and_print(&client, "time (stdio)").await;
    let mut names = names(&tools);
    names.sort();
    assert_eq!(names, ["convert_time", "get_current_time"]);

    let now = call(&client, "get_current_time", json!({"timezone": "UTC"})).await;
    assert_ne!(now.is_error, Some(true));
    // It answers with both a JSON text and the same object as structured content (it has an output schema).
    assert!(tools.iter().all(|tool| tool.output_schema.is_some()));
    let structured = now.structured_content.clone().expect("structured content");
    let now: Value = serde_json::from_str(text_of(&now)).unwrap();
    assert_eq!(structured, now);
    assert_eq!(now["timezone"], json!("UTC"));
    assert!(now["datetime"].as_str().is_some_and(|d| d.ends_with("+00:00")), "{now}");

    let converted = call(
        &client,
        "convert_time",
        json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
    )
    .await;
    assert_ne!(converted.is_error, Some(true));
    let converted: Value = serde_json::from_str(text_of(&converted)).unwrap();
    assert_eq!(converted["source"]["timezone"], json!("UTC"));
    assert_eq!(converted["target"]["timezone"], json!("Asia/Tokyo"));
    assert!(converted["target"]["datetime"].as_str().is_some_and(|d| d.contains("T21:00:00")), "{converted}");
    assert_eq!(converted["time_difference"], json!("+9.0h"));

    let bad = call(&client, "get_current_time", json!({"timezone": "Not/AZone"})).await;
    assert_eq!(bad.is_error, Some(true));
    client.cancel().await.unwrap();
}
