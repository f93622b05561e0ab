//! Drives the built `mcp-test-server` binary with rmcp clients, over stdio and streamable HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{process::Stdio, sync::Arc, time::Duration};

use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, JsonObject, Tool},
    service::{NotificationContext, RunningService},
    transport::{
        ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::Notify,
};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-test-server");
const TIMEOUT: Duration = Duration::from_secs(20);

const ALL_TOOLS: [&str; 13] = [
    "add",
    "crash",
    "echo",
    "env",
    "fail",
    "get-current-time",
    "hang",
    "huge",
    "many",
    "mutate-tools",
    "slow",
    "tally",
    "whoami",
];

fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

async fn call(
    client: &RunningService<RoleClient, impl ClientHandler>,
    name: &str,
    arguments: Value,
) -> CallToolResult {
    let params = CallToolRequestParams::new(name.to_owned()).with_arguments(args(arguments));
    tokio::time::timeout(TIMEOUT, client.call_tool(params))
        .await
        .unwrap_or_else(|_| panic!("{name} timed out"))
        .unwrap_or_else(|error| panic!("{name} failed: {error}"))
}

/// The only text content of a result.
fn text_of(result: &CallToolResult) -> String {
    assert_eq!(result.content.len(), 1, "expected one content block: {result:?}");
    result.content[0].as_text().map(|text| text.text.clone()).expect("text content")
}

fn tool_names(tools: &[Tool]) -> Vec<String> {
    tools.iter().map(|tool| tool.name.to_string()).collect()
}

fn stdio_client_command() -> Command {
    Command::new(BIN).configure(|cmd| {
        cmd.arg("stdio")
            .env("MCP_TEST_TOKEN", "stdio-token")
            .env("SMOKE_ENV_VALUE", "from-env")
            .env_remove("MCP_TEST_TALLY_FILE");
    })
}

/// Records `notifications/tools/list_changed`.
#[derive(Debug, Clone, Default)]
struct ListChangedWatcher {
    changed: Arc<Notify>,
}

impl ClientHandler for ListChangedWatcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }
}

#[tokio::test]
async fn stdio_tools_answer_as_specified() {
    let transport =
        TokioChildProcess::builder(stdio_client_command()).stderr(Stdio::null()).spawn().unwrap().0;
    let client = ().serve(transport).await.unwrap();

    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "mcp-test-server");
    assert_eq!(info.server_info.as_ref().unwrap().version, env!("CARGO_PKG_VERSION"));
    let tools_capability = info.capabilities.tools.clone().expect("tools capability");
    assert_eq!(tools_capability.list_changed, Some(true));

    let expected: Vec<String> = ALL_TOOLS.iter().map(|name| name.to_string()).collect();
    let tools = client.list_all_tools().await.unwrap();
    let mut names = tool_names(&tools);
    names.sort();
    assert_eq!(names, expected);
    for tool in &tools {
        assert!(
            tool.description.as_deref().is_some_and(|d| !d.is_empty()),
            "{} has no description",
            tool.name
        );
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")), "{}", tool.name);
    }
    let echo = tools.iter().find(|tool| tool.name == "echo").unwrap();
    assert_eq!(echo.input_schema["properties"]["text"]["type"], json!("string"));
    assert!(echo.input_schema["properties"].get("loud").is_none(), "loud appears only after mutate-tools");
    let add = tools.iter().find(|tool| tool.name == "add").unwrap();
    let add_output = add.output_schema.as_ref().expect("add has an output schema");
    assert!(add_output["properties"].get("sum").is_some(), "{add_output:?}");
    assert!(tools.iter().find(|tool| tool.name == "echo").unwrap().output_schema.is_none());

    let echoed = call(&client, "echo", json!({"text": "héllo wörld"})).await;
    assert_eq!(text_of(&echoed), "héllo wörld");
    assert_ne!(echoed.is_error, Some(true));

    let sum = call(&client, "add", json!({"a": 2, "b": 3.5})).await;
    assert_eq!(sum.structured_content.as_ref().and_then(|v| v["sum"].as_f64()), Some(5.5));
    let sum_text: Value = serde_json::from_str(&text_of(&sum)).unwrap();
    assert_eq!(sum_text["sum"].as_f64(), Some(5.5));

    let failed = call(&client, "fail", json!({"message": "it broke"})).await;
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text_of(&failed), "it broke");

    let huge = call(&client, "huge", json!({"bytes": 300_000})).await;
    let huge_text = text_of(&huge);
    assert_eq!(huge_text.len(), 300_000);
    assert!(huge_text.bytes().all(|b| b == b'x'));
    let too_huge = call(&client, "huge", json!({"bytes": u64::MAX})).await;
    assert_eq!(too_huge.is_error, Some(true));

    assert_eq!(text_of(&call(&client, "whoami", json!({})).await), "stdio-token");
    assert_eq!(text_of(&call(&client, "env", json!({"name": "SMOKE_ENV_VALUE"})).await), "from-env");
    assert_eq!(text_of(&call(&client, "env", json!({"name": "SMOKE_SURELY_UNSET_VAR"})).await), "");
    assert_eq!(text_of(&call(&client, "slow", json!({"ms": 30})).await), "slept 30");

    let time = call(&client, "get-current-time", json!({})).await;
    assert_eq!(time.structured_content, Some(json!({"time": "12:00:00Z"})));
    let many = call(&client, "many", json!({"count": 5})).await;
    assert_eq!(many.structured_content, Some(json!({"items": [0, 1, 2, 3, 4]})));
    // Without MCP_TEST_TALLY_FILE, tallies count in the process.
    for (key, n) in [("a", 1), ("a", 2), ("b", 1)] {
        let t = call(&client, "tally", json!({"key": key})).await;
        assert_eq!(t.structured_content, Some(json!({"key": key, "n": n})), "{t:?}");
    }
    let mut bad_key = CallToolRequestParams::new("tally");
    bad_key.arguments = Some(args(json!({"key": "two\nlines"})));
    assert!(client.call_tool(bad_key).await.is_err(), "a key is one line");

    // Bad arguments give a tool error, and the server lives on.
    let bad = call(&client, "echo", json!({"text": 42})).await;
    assert_eq!(bad.is_error, Some(true), "{bad:?}");
    let missing = call(&client, "add", json!({"a": 1})).await;
    assert_eq!(missing.is_error, Some(true), "{missing:?}");
    let unknown = client.call_tool(CallToolRequestParams::new("added-later")).await;
    assert!(unknown.is_err(), "added-later must not exist before mutate-tools: {unknown:?}");

    // `hang` never answers, but other calls still do.
    let hang = tokio::time::timeout(
        Duration::from_millis(300),
        client.call_tool(CallToolRequestParams::new("hang")),
    );
    assert!(hang.await.is_err(), "hang returned");
    assert_eq!(text_of(&call(&client, "echo", json!({"text": "still here"})).await), "still here");

    client.cancel().await.unwrap();
}

#[tokio::test]
async fn crash_exits_with_code_3_without_answering() {
    let mut child = Command::new(BIN)
        .arg("stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let transport = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client = ().serve(transport).await.unwrap();
    let result =
        tokio::time::timeout(TIMEOUT, client.call_tool(CallToolRequestParams::new("crash"))).await.unwrap();
    assert!(result.is_err(), "crash answered: {result:?}");
    let status = tokio::time::timeout(TIMEOUT, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(3));
}

#[tokio::test]
async fn mutate_tools_changes_the_list_and_notifies() {
    let transport =
        TokioChildProcess::builder(stdio_client_command()).stderr(Stdio::null()).spawn().unwrap().0;
    let watcher = ListChangedWatcher::default();
    let changed = watcher.changed.clone();
    let client = watcher.serve(transport).await.unwrap();
    assert!(!tool_names(&client.list_all_tools().await.unwrap()).contains(&"added-later".to_owned()));

    assert_eq!(text_of(&call(&client, "mutate-tools", json!({})).await), "mutated");
    tokio::time::timeout(TIMEOUT, changed.notified()).await.expect("no tools/list_changed notification");

    let tools = client.list_all_tools().await.unwrap();
    let names = tool_names(&tools);
    assert!(names.contains(&"added-later".to_owned()), "{names:?}");
    assert_eq!(names.len(), ALL_TOOLS.len() + 1);
    let echo = tools.iter().find(|tool| tool.name == "echo").unwrap();
    assert_eq!(echo.description.as_deref(), Some("echo (changed)"));
    assert_eq!(echo.input_schema["properties"]["loud"]["type"], json!("boolean"));
    assert_eq!(echo.input_schema["properties"]["text"]["type"], json!("string"));
    assert_eq!(echo.input_schema["required"], json!(["text"]));

    assert_eq!(text_of(&call(&client, "added-later", json!({})).await), "new");
    assert_eq!(text_of(&call(&client, "echo", json!({"text": "hi", "loud": true})).await), "HI");
    assert_eq!(text_of(&call(&client, "echo", json!({"text": "hi"})).await), "hi");
    client.cancel().await.unwrap();
}

/// A running `mcp-test-server http` and the URL it printed.
struct HttpServer {
    url: String,
    _child: Child,
}

async fn spawn_http(extra_args: &[&str]) -> HttpServer {
    let mut child = Command::new(BIN)
        .args(["http", "--listen", "127.0.0.1:0"])
        .args(extra_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(TIMEOUT, lines.next_line()).await.unwrap().unwrap().expect("a line");
    let url =
        line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}")).to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"), "{url}");
    HttpServer { url, _child: child }
}

fn http_transport(url: &str, token: Option<&str>) -> StreamableHttpClientTransport<reqwest::Client> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    StreamableHttpClientTransport::from_config(config)
}

#[tokio::test]
async fn http_requires_the_bearer_token_and_whoami_echoes_it() {
    let server = spawn_http(&["--require-bearer", "s3cret-token"]).await;

    let anonymous = tokio::time::timeout(TIMEOUT, ().serve(http_transport(&server.url, None))).await.unwrap();
    assert!(anonymous.is_err(), "connected without a token");
    let wrong =
        tokio::time::timeout(TIMEOUT, ().serve(http_transport(&server.url, Some("nope")))).await.unwrap();
    assert!(wrong.is_err(), "connected with a wrong token");

    let client = ().serve(http_transport(&server.url, Some("s3cret-token"))).await.unwrap();
    assert_eq!(text_of(&call(&client, "whoami", json!({})).await), "Bearer s3cret-token");
    assert_eq!(text_of(&call(&client, "echo", json!({"text": "over http"})).await), "over http");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn http_bearer_file_is_reread_on_every_request() {
    let dir = std::env::temp_dir().join(format!("mcp-test-server-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "first-token\n").unwrap();
    let server = spawn_http(&["--require-bearer-file", token_file.to_str().unwrap()]).await;

    let client = ().serve(http_transport(&server.url, Some("first-token"))).await.unwrap();
    assert_eq!(text_of(&call(&client, "whoami", json!({})).await), "Bearer first-token");

    std::fs::write(&token_file, "second-token").unwrap();
    let stale = client.call_tool(CallToolRequestParams::new("whoami")).await;
    assert!(stale.is_err(), "old token still accepted: {stale:?}");
    let rotated = ().serve(http_transport(&server.url, Some("second-token"))).await.unwrap();
    assert_eq!(text_of(&call(&rotated, "whoami", json!({})).await), "Bearer second-token");
    let old = tokio::time::timeout(TIMEOUT, ().serve(http_transport(&server.url, Some("first-token"))))
        .await
        .unwrap();
    assert!(old.is_err(), "connected with the rotated-out token");

    rotated.cancel().await.unwrap();
    drop(client);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn http_mutate_tools_changes_the_list_of_every_session() {
    let server = spawn_http(&[]).await;
    let first = ().serve(http_transport(&server.url, None)).await.unwrap();
    let second = ().serve(http_transport(&server.url, None)).await.unwrap();
    assert_eq!(second.list_all_tools().await.unwrap().len(), ALL_TOOLS.len());

    assert_eq!(text_of(&call(&first, "mutate-tools", json!({})).await), "mutated");

    let tools = second.list_all_tools().await.unwrap();
    assert!(tool_names(&tools).contains(&"added-later".to_owned()));
    let echo = tools.iter().find(|tool| tool.name == "echo").unwrap();
    assert_eq!(echo.description.as_deref(), Some("echo (changed)"));
    assert_eq!(text_of(&call(&second, "added-later", json!({})).await), "new");
    // Without a token configured, whoami reports no Authorization header.
    assert_eq!(text_of(&call(&second, "whoami", json!({})).await), "");

    first.cancel().await.unwrap();
    second.cancel().await.unwrap();
}
