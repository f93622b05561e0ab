//! The MCP front door: MCP Guard as one MCP server (streamable HTTP at `/mcp`), so any MCP client can
//! use Code Mode. Tools:
//! - `execute_code`: run TypeScript/JavaScript against the bound tools; its description carries a
//!   compact TypeScript API of those tools and how to write the code. The result is the outcome as JSON
//!   (text and structured content); `isError` is true unless the outcome is `completed`.
//! - `search_tools`: find bound tools by words, at a chosen level of detail (names, summaries, or full
//!   TypeScript declarations).
//! - `describe_tools`: full declarations and schemas of named tools (or all).
//! - `resume_execution`: resume an execution that ended as `approval_required`, once a person decided
//!   its approval. `approval_required` itself is a normal result (not an error) that says what to do.
//!
//! Every HTTP request must carry `Authorization: Bearer <token>` (or come with a client certificate):
//! 401 without or with bad credentials, 403 for a valid caller the policy does not allow.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
#[allow(deprecated)]
use rmcp::model::SetLevelRequestParams;
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject,
        ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde_json::{Value, json};

use mcp_guard_sandbox::outcome::Status;
use mcp_guard_tools::{
    ToolIndex, declarations,
    discovery::{Detail, describe_entry, search_entry, search_line},
};

use crate::{ApiError, ApiState, Door, LimitOverrides, Run, auth::Caller, convert, request_id};

/// A verified client certificate's CN, put into request extensions by the TLS acceptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCn(pub Option<String>);

/// The request id, in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Bytes of the compact tool API in `execute_code`'s description.
const API_BUDGET: usize = 12 * 1024;

/// The MCP server handler; one per session, all sharing the state.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    state: Arc<ApiState>,
}

impl FrontDoor {
    pub fn new(state: Arc<ApiState>) -> Self {
        FrontDoor { state }
    }
}

fn schema(value: Value) -> Arc<JsonObject> {
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

/// `execute_code`'s description: how to write the code, and the API of the bound tools.
pub fn execute_code_description(index: &ToolIndex) -> String {
    format!(
        "Run TypeScript or JavaScript in a fresh, isolated sandbox that can call the MCP tools below, and \
         get back exactly what happened. Use it to chain several tool calls, filter or combine their \
         results, and return only what you need.\n\n\
         How to write the code:\n\
         - Write an async function body: top-level `await` works, and `return` gives the result (any JSON \
         value). Or write one async arrow function `async (mcp) => {{ ... }}`.\n\
         - Call tools as `await mcp.<server>.<tool>(args)` with one object argument; results are plain \
         values (structured content first, else parsed JSON text, else text).\n\
         - A failed tool call throws `McpToolError` (with `server`, `tool`, `code`); catch it to recover.\n\
         - `console.log` lines are returned with the result. There is no network, filesystem, `require`, \
         `import`, `eval`, or `process`; limits on time, memory, output and tool calls apply.\n\n\
         The result is JSON: `outcome` is `completed` (with `result`), `threw` (with `error`), \
         `rejected` (the code was refused before running, with `rejection`) or `limit_exceeded` (with \
         `limit`); `toolCalls` lists every tool call made, `console` the printed lines.\n\n\
         Use search_tools or describe_tools for full TypeScript declarations.\n\n\
         Bound tools:\n```ts\n{}```",
        index.compact_api(API_BUDGET)
    )
}

fn tools(index: &ToolIndex) -> Vec<Tool> {
    let mut execute = Tool::new(
        "execute_code",
        execute_code_description(index),
        schema(json!({
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "TypeScript or JavaScript: an async function body, or one async arrow function `async (mcp) => { ... }`."
                },
                "timeoutMs": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Optional: a wall-time limit in milliseconds, tighter than the policy's."
                }
            },
            "required": ["code"],
            "additionalProperties": false
        })),
    );
    execute.annotations = Some(ToolAnnotations::default().read_only(false).open_world(true));
    let mut search = Tool::new(
        "search_tools",
        "Find the MCP tools that code run by execute_code can call, by words in their server, name or \
         description (all words must match; empty: every tool). `detail` is `names` (bindings only), \
         `summaries` (bindings with one-line descriptions; the default) or `full` (TypeScript declarations).",
        schema(json!({
            "type": "object",
            "properties": {
                "query": { "type": "string", "description": "Words to look for; empty lists every tool." },
                "detail": { "type": "string", "enum": ["names", "summaries", "full"], "default": "summaries" }
            },
            "additionalProperties": false
        })),
    );
    search.annotations = Some(ToolAnnotations::default().read_only(true).open_world(false));
    let mut describe = Tool::new(
        "describe_tools",
        "Full TypeScript declarations and JSON schemas of the named tools (as `server.tool` or \
         `mcp.server.tool`), or of every tool when `names` is empty.",
        schema(json!({
            "type": "object",
            "properties": {
                "names": { "type": "array", "items": { "type": "string" }, "description": "Tools to describe; empty: all." }
            },
            "additionalProperties": false
        })),
    );
    describe.annotations = Some(ToolAnnotations::default().read_only(true).open_world(false));
    let mut resume = Tool::new(
        "resume_execution",
        "Resume an execution that ended with `approval_required`, after a person decided the approval.          The same code runs again from the start: tool calls that already completed are answered from a          record (not repeated), the approved call runs once, a denied one throws McpToolError with code          `approval_denied`. Fails while the approval is still pending, after it expired, or when it was          already resumed.",
        schema(json!({
            "type": "object",
            "properties": {
                "approvalId": { "type": "string", "description": "The `approval.id` of the approval_required result." },
                "timeoutMs": { "type": "integer", "minimum": 1, "description": "Optional: a wall-time limit in milliseconds, tighter than the policy's." }
            },
            "required": ["approvalId"],
            "additionalProperties": false
        })),
    );
    resume.annotations = Some(ToolAnnotations::default().read_only(false).open_world(true));
    vec![execute, search, describe, resume]
}

fn text_result(text: String, structured: Value, is_error: bool) -> CallToolResult {
    let mut result = if is_error { CallToolResult::error(vec![]) } else { CallToolResult::success(vec![]) };
    result.content = vec![ContentBlock::text(text)];
    result.structured_content = Some(structured);
    result
}

fn edge_error(e: &ApiError) -> CallToolResult {
    text_result(e.to_string(), json!({ "error": e.reason(), "message": e.to_string() }), true)
}

fn string_arg<'a>(args: &'a JsonObject, key: &str) -> Result<Option<&'a str>, ErrorData> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ErrorData::invalid_params(format!("`{key}` must be a string"), None)),
    }
}

impl FrontDoor {
    async fn execute_code(
        &self,
        caller: &Caller,
        id: &str,
        args: &JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(code) = string_arg(args, "code")? else {
            return Err(ErrorData::invalid_params("`code` is required", None));
        };
        self.run(caller, id, args, code.to_string(), None).await
    }

    async fn resume_execution(
        &self,
        caller: &Caller,
        id: &str,
        args: &JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(approval) = string_arg(args, "approvalId")? else {
            return Err(ErrorData::invalid_params("`approvalId` is required", None));
        };
        self.run(caller, id, args, String::new(), Some(approval.to_string())).await
    }

    async fn run(
        &self,
        caller: &Caller,
        id: &str,
        args: &JsonObject,
        code: String,
        resume: Option<String>,
    ) -> Result<CallToolResult, ErrorData> {
        let wall_time = match args.get("timeoutMs") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().filter(|n| *n > 0) {
                Some(ms) => Some(std::time::Duration::from_millis(ms)),
                None => {
                    return Err(ErrorData::invalid_params("`timeoutMs` must be a positive integer", None));
                }
            },
        };
        let overrides = LimitOverrides { wall_time, ..Default::default() };
        let state = self.state.clone();
        let caller = caller.clone();
        let id = id.to_string();
        // In its own task, so that a client that goes away does not cut the execution short.
        let run = tokio::spawn(async move {
            let run = Run {
                caller: &caller,
                code: &code,
                resume: resume.as_deref(),
                overrides,
                deadline: None,
                events: None,
                door: Door::Mcp,
                request_id: &id,
            };
            state.execute(run).await
        });
        match run.await {
            Ok(Ok((execution, outcome))) => {
                let json = convert::outcome_json(&execution, &outcome);
                let mut text = serde_json::to_string_pretty(&json).unwrap_or_default();
                if let Status::ApprovalRequired { approval } = &outcome.status {
                    // A normal result: the agent should wait for a person, then resume.
                    let calls: Vec<String> =
                        approval.calls.iter().map(|c| format!("{}.{}", c.server, c.tool)).collect();
                    text = format!(
                        "The execution paused: {} needs a person's approval (approval {}, policy {}, until {}). \
                         Ask an approver to decide it, then call resume_execution with approvalId \"{}\"; \
                         the code runs again and calls that already completed are not repeated.\n\n{text}",
                        calls.join(", "),
                        approval.id,
                        approval.policy,
                        approval.expires_at,
                        approval.id
                    );
                    return Ok(text_result(text, json, false));
                }
                Ok(text_result(text, json, !matches!(outcome.status, Status::Completed { .. })))
            }
            Ok(Err(e)) => Ok(edge_error(&e)),
            Err(e) => Err(ErrorData::internal_error(format!("the execution task failed: {e}"), None)),
        }
    }

    fn search_tools(&self, args: &JsonObject) -> Result<CallToolResult, ErrorData> {
        let query = string_arg(args, "query")?.unwrap_or_default();
        let detail =
            Detail::parse(string_arg(args, "detail")?).map_err(|m| ErrorData::invalid_params(m, None))?;
        let index = self.state.tools();
        let matches = index.search(query);
        let text = if matches.is_empty() {
            format!("No tool matches `{query}`. {} tools are bound.", index.tools().len())
        } else {
            match detail {
                Detail::Names => matches.iter().map(|t| t.binding.clone()).collect::<Vec<_>>().join("\n"),
                Detail::Summaries => matches.iter().map(|t| search_line(t)).collect::<Vec<_>>().join("\n"),
                Detail::Full => declarations(&matches),
            }
        };
        let structured = json!({
            "tools": matches.iter().map(|t| search_entry(t, detail)).collect::<Vec<_>>()
        });
        Ok(text_result(text, structured, false))
    }

    fn describe_tools(&self, args: &JsonObject) -> Result<CallToolResult, ErrorData> {
        let names: Vec<String> = match args.get("names") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| ErrorData::invalid_params("`names` must be an array of strings", None))?,
            Some(_) => return Err(ErrorData::invalid_params("`names` must be an array of strings", None)),
        };
        let index = self.state.tools();
        let (found, missing) = if names.is_empty() {
            (index.tools().iter().collect::<Vec<_>>(), Vec::new())
        } else {
            index.by_names(&names)
        };
        let mut text = if names.is_empty() { index.typescript().to_string() } else { declarations(&found) };
        if !missing.is_empty() {
            text.push_str(&format!("\n// Unknown tools: {}\n", missing.join(", ")));
        }
        let structured = json!({
            "typescript": text,
            "tools": found.iter().map(|t| describe_entry(t)).collect::<Vec<_>>(),
            "unknown": missing,
        });
        Ok(text_result(text, structured, false))
    }
}

impl ServerHandler for FrontDoor {
    fn get_info(&self) -> ServerConfig {
        // Logging (deprecated by SEP-2577) is advertised so that clients of earlier protocol versions can
        // call logging/setLevel; the front door sends no log notifications.
        #[allow(deprecated)]
        let capabilities = ServerCapabilities::builder().enable_tools().enable_logging().build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("mcp-guard", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "MCP Guard runs code you write against MCP tools in a sandbox (Code Mode). Write one \
                 script that makes all the tool calls a task needs and call execute_code with it; use \
                 search_tools and describe_tools to find tools and their exact TypeScript types.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools(&self.state.tools())))
    }

    /// Accepted; the front door sends no log notifications (console output is part of each outcome).
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools(&self.state.tools()).into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let parts = context.extensions.get::<axum::http::request::Parts>();
        let Some(caller) = parts.and_then(|p| p.extensions.get::<Caller>()).cloned() else {
            return Err(ErrorData::internal_error("the request carries no authenticated caller", None));
        };
        let id = parts
            .and_then(|p| p.extensions.get::<RequestId>())
            .map(|r| r.0.clone())
            .unwrap_or_else(|| request_id(None));
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "execute_code" => self.execute_code(&caller, &id, &args).await?,
            "search_tools" => self.search_tools(&args)?,
            "describe_tools" => self.describe_tools(&args)?,
            "resume_execution" => self.resume_execution(&caller, &id, &args).await?,
            other => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "unknown tool `{other}`: use execute_code, search_tools, describe_tools or resume_execution"
                    ),
                    None,
                ));
            }
        };
        Ok(result.into())
    }
}

/// Authenticates every HTTP request; on success the [`Caller`] and [`RequestId`] go into the request's
/// extensions.
async fn authenticate(State(state): State<Arc<ApiState>>, mut request: Request, next: Next) -> Response {
    let id = request_id(request.headers().get("x-request-id").and_then(|v| v.to_str().ok()));
    let authorization = match request.headers().get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v.to_string())),
        Some(Err(_)) => {
            Err(ApiError::Unauthenticated("malformed authorization: expected `Bearer <token>`".into()))
        }
    };
    let cn = request.extensions().get::<ClientCn>().and_then(|c| c.0.clone());
    // Present when the listener serves with connect info; otherwise every MCP peer shares one budget.
    let peer =
        request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let result = match authorization {
        Ok(a) => state.authenticate(a.as_deref(), cn, peer, Door::Mcp).await,
        Err(e) => {
            state.metrics.auth_failures.with_label_values(&[Door::Mcp.as_str(), e.reason()]).inc();
            Err(e)
        }
    };
    let mut response = match result {
        Ok(caller) => {
            tracing::debug!(request_id = %id, caller = %caller.name, method = %request.method(), "MCP request");
            request.extensions_mut().insert(caller);
            request.extensions_mut().insert(RequestId(id.clone()));
            next.run(request).await
        }
        Err(e) => {
            tracing::info!(request_id = %id, reason = e.reason(), error = %e, "MCP request refused");
            let mut response =
                (e.http_status(), axum::Json(json!({ "error": e.reason(), "message": e.to_string() })))
                    .into_response();
            if matches!(e, ApiError::Unauthenticated(_)) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Ends every MCP session (used at shutdown).
pub type CancelSessions = Box<dyn Fn() + Send + Sync>;

/// The HTTP router of the front door: `/mcp`, authenticated. `loopback` keeps rmcp's Host-header check
/// (DNS-rebinding protection) for servers bound to loopback. Also returns what ends every session.
pub fn router(state: Arc<ApiState>, loopback: bool) -> (Router, CancelSessions) {
    let mut config =
        StreamableHttpServerConfig::default().with_max_request_body_bytes(state.edge().max_message_bytes);
    if !loopback {
        config = config.disable_allowed_hosts();
    }
    let token = config.cancellation_token.clone();
    let door = FrontDoor::new(state.clone());
    let service: StreamableHttpService<FrontDoor, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(door.clone()), Default::default(), config);
    let router = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(state, authenticate));
    (router, Box::new(move || token.cancel()))
}
