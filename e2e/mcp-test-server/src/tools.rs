//! The tools of the fault-injection server.
//!
//! Most tools come from the static `#[tool_router]`; `mutate-tools` flips a process-wide flag that
//! `list_tools`/`call_tool` consult to add `added-later` and to change `echo`, so the tool list
//! changes for every session at once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rmcp::{
    ErrorData, Peer, RoleServer, ServerHandler,
    handler::server::{
        router::tool::ToolRouter,
        tool::ToolCallContext,
        wrapper::{Json, Parameters},
    },
    model::{
        CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Extensions,
        Implementation, JsonObject, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
        ServerCapabilities, ServerConfig, Tool,
    },
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_router,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Exit code of the process when `crash` is called.
pub const CRASH_EXIT_CODE: i32 = 3;
/// Largest text `huge` will produce (256 MiB): larger requests get an error result.
pub const MAX_HUGE_BYTES: usize = 256 << 20;
/// Largest list `many` will produce.
pub const MAX_MANY_COUNT: u64 = 1_000_000;
/// Env var whose value `whoami` returns when there is no HTTP request (stdio mode).
pub const STDIO_TOKEN_ENV: &str = "MCP_TEST_TOKEN";
const ADDED_LATER: &str = "added-later";

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// The text to return.
    pub text: String,
    /// Upper-case the text. Only advertised in the schema after `mutate-tools`.
    #[serde(default)]
    #[schemars(skip)]
    pub loud: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddArgs {
    pub a: f64,
    pub b: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AddOutput {
    pub sum: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EnvArgs {
    /// Name of the environment variable to read.
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SlowArgs {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HugeArgs {
    /// Number of bytes of text to return.
    pub bytes: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FailArgs {
    /// The error message to return.
    pub message: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TimeOutput {
    pub time: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TallyArgs {
    /// What to count.
    pub key: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TallyOutput {
    pub key: String,
    /// How many times `key` was tallied, this call included.
    pub n: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ManyArgs {
    /// Number of items to return.
    pub count: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ManyOutput {
    pub items: Vec<u64>,
}

/// The server handler. One instance per session; `mutated` is shared by all of them.
#[derive(Debug, Clone)]
pub struct TestServer {
    tool_router: ToolRouter<Self>,
    mutated: Arc<AtomicBool>,
    /// How long each `tools/list` answer is held back (a slow server, to test handshakes mid-listing).
    list_delay: std::time::Duration,
}

impl TestServer {
    /// A handler whose tool-list state is `mutated` (share it between sessions), answering `tools/list`
    /// after `list_delay`.
    pub fn new(mutated: Arc<AtomicBool>, list_delay: std::time::Duration) -> Self {
        Self { tool_router: Self::tool_router(), mutated, list_delay }
    }

    fn is_mutated(&self) -> bool {
        self.mutated.load(Ordering::SeqCst)
    }

    /// The tool list as currently advertised.
    fn tools(&self) -> Vec<Tool> {
        let mut tools = self.tool_router.list_all();
        if self.is_mutated() {
            for tool in tools.iter_mut().filter(|tool| tool.name == "echo") {
                *tool = mutated_echo(tool.clone());
            }
            tools.push(added_later_tool());
            tools.sort_by(|a, b| a.name.cmp(&b.name));
        }
        tools
    }
}

fn mutated_echo(mut tool: Tool) -> Tool {
    tool.description = Some("echo (changed)".into());
    let mut schema: JsonObject = (*tool.input_schema).clone();
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.insert("loud".into(), json!({"type": "boolean", "description": "Upper-case the text."}));
    }
    tool.input_schema = Arc::new(schema);
    tool
}

fn added_later_tool() -> Tool {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), json!({}));
    Tool::new(ADDED_LATER, "Appears only after mutate-tools; returns \"new\".", Arc::new(schema))
}

fn text(value: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value.into())])
}

fn error_text(value: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(value.into())])
}

#[tool_router]
impl TestServer {
    #[tool(description = "Returns `text` unchanged.")]
    fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        if args.loud == Some(true) && self.is_mutated() {
            text(args.text.to_uppercase())
        } else {
            text(args.text)
        }
    }

    #[tool(description = "Adds two numbers; structured result {\"sum\": a + b}.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> Json<AddOutput> {
        Json(AddOutput { sum: a + b })
    }

    #[tool(
        description = "Returns the Authorization header of this HTTP request (stdio mode: env MCP_TEST_TOKEN, or \"\")."
    )]
    fn whoami(&self, extensions: Extensions) -> CallToolResult {
        match extensions.get::<axum::http::request::Parts>() {
            Some(parts) => text(
                parts
                    .headers
                    .get(axum::http::header::AUTHORIZATION)
                    .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                    .unwrap_or_default(),
            ),
            None => text(std::env::var(STDIO_TOKEN_ENV).unwrap_or_default()),
        }
    }

    #[tool(
        description = "Returns the value of an environment variable of the server process (\"\" if unset)."
    )]
    fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> CallToolResult {
        text(std::env::var(name).unwrap_or_default())
    }

    #[tool(description = "Sleeps `ms` milliseconds, then returns \"slept N\".")]
    async fn slow(&self, Parameters(SlowArgs { ms }): Parameters<SlowArgs>) -> CallToolResult {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        text(format!("slept {ms}"))
    }

    #[tool(description = "Never returns.")]
    async fn hang(&self) -> CallToolResult {
        std::future::pending::<()>().await;
        text("unreachable")
    }

    #[tool(description = "Exits the server process with code 3 without answering.")]
    fn crash(&self) -> CallToolResult {
        tracing::warn!("crash called: exiting with code {CRASH_EXIT_CODE}");
        std::process::exit(CRASH_EXIT_CODE)
    }

    #[tool(description = "Returns a text of exactly `bytes` 'x' characters (at most 256 MiB).")]
    fn huge(&self, Parameters(HugeArgs { bytes }): Parameters<HugeArgs>) -> CallToolResult {
        match usize::try_from(bytes) {
            Ok(bytes) if bytes <= MAX_HUGE_BYTES => text("x".repeat(bytes)),
            _ => error_text(format!("bytes must be at most {MAX_HUGE_BYTES}")),
        }
    }

    #[tool(description = "Returns a tool error (isError: true) with `message` as its text.")]
    fn fail(&self, Parameters(FailArgs { message }): Parameters<FailArgs>) -> CallToolResult {
        error_text(message)
    }

    #[tool(
        name = "mutate-tools",
        description = "Changes the tool list of every session (adds `added-later`, changes `echo`), then notifies tools/list_changed."
    )]
    async fn mutate_tools(&self, peer: Peer<RoleServer>) -> CallToolResult {
        self.mutated.store(true, Ordering::SeqCst);
        if let Err(error) = peer.notify_tool_list_changed().await {
            tracing::warn!("could not send tools/list_changed: {error}");
        }
        text("mutated")
    }

    #[tool(
        description = "Counts a call of `key` and returns {\"key\", \"n\"}: how many times `key` was tallied. With MCP_TEST_TALLY_FILE set, counts live in that file (one line per call, so they survive restarts of this server); otherwise in this process."
    )]
    fn tally(
        &self,
        Parameters(TallyArgs { key }): Parameters<TallyArgs>,
    ) -> Result<Json<TallyOutput>, ErrorData> {
        use std::io::Write;
        if key.contains('\n') {
            return Err(ErrorData::invalid_params("key must be one line", None));
        }
        let Ok(path) = std::env::var("MCP_TEST_TALLY_FILE") else {
            static COUNTS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
            let mut counts = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
            counts.push(key.clone());
            let n = counts.iter().filter(|k| **k == key).count() as u64;
            return Ok(Json(TallyOutput { key, n }));
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ErrorData::internal_error(format!("cannot open {path}: {e}"), None))?;
        file.write_all(format!("{key}\n").as_bytes())
            .map_err(|e| ErrorData::internal_error(format!("cannot write {path}: {e}"), None))?;
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let n = text.lines().filter(|l| *l == key).count() as u64;
        Ok(Json(TallyOutput { key, n }))
    }

    #[tool(name = "get-current-time", description = "Returns the fixed time {\"time\": \"12:00:00Z\"}.")]
    fn get_current_time(&self) -> Json<TimeOutput> {
        Json(TimeOutput { time: "12:00:00Z".into() })
    }

    #[tool(description = "Returns {\"items\": [0, 1, ..., count - 1]} (count at most 1000000).")]
    fn many(
        &self,
        Parameters(ManyArgs { count }): Parameters<ManyArgs>,
    ) -> Result<Json<ManyOutput>, ErrorData> {
        if count > MAX_MANY_COUNT {
            return Err(ErrorData::invalid_params(format!("count must be at most {MAX_MANY_COUNT}"), None));
        }
        Ok(Json(ManyOutput { items: (0..count).collect() }))
    }
}

impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(Implementation::new("mcp-test-server", env!("CARGO_PKG_VERSION")))
            .with_instructions("Fault-injection MCP server for MCP Guard's tests.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        tokio::time::sleep(self.list_delay).await;
        let mut result = ListToolsResult::with_all_items(self.tools());
        // The list can change at any time: tell clients that know cache hints not to cache it.
        if context.protocol_version().is_some_and(|version| version >= ProtocolVersion::V_2026_07_28) {
            result.ttl_ms = Some(0);
            result.cache_scope = Some(CacheScope::Public);
        }
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name == ADDED_LATER && self.is_mutated() {
            return Ok(text("new").into());
        }
        self.tool_router.call(ToolCallContext::new(self, request, context)).await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools().into_iter().find(|tool| tool.name == name)
    }
}
