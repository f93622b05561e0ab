//! The binding proxy: the only part of MCP Guard that holds credentials and talks to upstream MCP
//! servers, and the authoritative policy enforcement point for tool calls (ARCHITECTURE.md layers 4 to
//! 7). It runs as its own process (`mcp-guard proxy`) and serves the internal API of
//! `proto/mcpguard/internal/v1/binding.proto` on a Unix socket; see [`service`].
//!
//! Every check here assumes the executor may be compromised: the executor names an execution, a server,
//! a tool and arguments, and the proxy decides, from its own configuration, whether and how much.

pub mod audit;
pub mod client;
pub mod convert;
pub mod credentials;
pub mod redact;
pub mod service;
pub mod ssrf;
pub mod typescript;
pub mod upstream;

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};
use mcp_guard_crds::{GuardConfig, Rate};
use serde_json::{Value, json};

use self::{
    audit::AuditLog,
    credentials::Credentials,
    redact::Redactor,
    upstream::{Upstream, UpstreamError},
};
use crate::host::{Catalog, js_identifier};

pub use self::service::pb;
use pb::tool_failure::Kind;

/// A refused or failed tool call, as the sandbox will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Failure {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into(), retry_after: None }
    }
}

type KeyedLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

fn limiter(rate: &Option<Rate>) -> Option<KeyedLimiter> {
    let rate = rate.as_ref()?;
    let burst = NonZeroU32::new(rate.requests)?;
    let period = rate.per.duration().checked_div(rate.requests)?;
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(RateLimiter::keyed(quota))
}

/// An open execution and what it has used.
#[derive(Debug)]
struct Execution {
    caller: String,
    code_sha256: String,
    deadline: Instant,
    calls: u32,
    argument_bytes: u64,
    result_bytes: u64,
}

/// How long after its wall-time limit an execution that was never ended is closed as abandoned.
const ABANDON_GRACE: Duration = Duration::from_secs(5);

/// The binding proxy's state.
pub struct BindingProxy {
    config: GuardConfig,
    upstreams: Vec<Arc<Upstream>>,
    redactor: Arc<Redactor>,
    audit: Arc<AuditLog>,
    executions: Mutex<HashMap<String, Execution>>,
    per_caller: Option<KeyedLimiter>,
    per_tool: Option<KeyedLimiter>,
}

impl std::fmt::Debug for BindingProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingProxy").field("policy", &self.config.policy).finish()
    }
}

impl BindingProxy {
    /// Build the proxy from its configuration; `audit` receives the records.
    pub fn new(config: GuardConfig, audit: AuditLog) -> Arc<Self> {
        let redactor = Arc::new(Redactor::default());
        let credentials = Arc::new(Credentials::new(redactor.clone()));
        let audit = Arc::new(audit);
        let upstreams = config
            .servers
            .iter()
            .map(|s| Upstream::new(s.clone(), credentials.clone(), redactor.clone(), audit.clone()))
            .collect();
        let proxy = Arc::new(BindingProxy {
            per_caller: limiter(&config.binding.rate_limits.per_caller),
            per_tool: limiter(&config.binding.rate_limits.per_tool),
            config,
            upstreams,
            redactor,
            audit,
            executions: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&proxy);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(proxy) = weak.upgrade() else { return };
                proxy.close_abandoned();
            }
        });
        proxy
    }

    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Connect to every server and discover its tools; failures are logged and retried on use.
    pub async fn connect_all(&self) {
        let attempts =
            self.upstreams.iter().map(|u| async move { (u.name().to_string(), u.ensure_connected().await) });
        for (name, result) in futures::future::join_all(attempts).await {
            if let Err(e) = result {
                tracing::warn!(server = %name, error = %e, "server not available yet");
            }
        }
    }

    fn upstream(&self, server: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name() == server)
    }

    /// The bound tools, their schemas and TypeScript declarations.
    pub async fn list_tools(&self) -> pb::ListToolsResponse {
        let catalog = self.catalog();
        let mut servers = Vec::new();
        let mut decl_servers = Vec::new();
        let discovered: Vec<_> = self.upstreams.iter().map(|u| (u.clone(), u.tools())).collect();
        for (upstream, tools) in &discovered {
            let ident = catalog.servers().iter().find(|s| s.name == upstream.name()).map(|s| s.ident.clone());
            let ident = ident.unwrap_or_else(|| js_identifier(upstream.name()));
            let bound = catalog.servers().iter().find(|s| s.name == upstream.name());
            let schemas: Vec<(String, Value, Option<Value>)> = tools
                .iter()
                .map(|t| {
                    (
                        t.tool.name.to_string(),
                        Value::Object((*t.tool.input_schema).clone()),
                        t.tool.output_schema.as_ref().map(|s| Value::Object((**s).clone())),
                    )
                })
                .collect();
            let mut pb_tools = Vec::new();
            let mut decls = Vec::new();
            for (t, (name, input, output)) in tools.iter().zip(schemas.iter()) {
                let tool_ident = bound
                    .and_then(|b| b.tools.iter().find(|bt| bt.name == *name))
                    .map(|bt| bt.ident.clone())
                    .unwrap_or_else(|| js_identifier(name));
                decls.push((
                    tool_ident,
                    name.clone(),
                    t.tool.description.as_ref().map(|d| d.to_string()),
                    input.clone(),
                    output.clone(),
                ));
                pb_tools.push(pb::BoundTool {
                    name: name.clone(),
                    description: t.tool.description.as_deref().unwrap_or_default().to_string(),
                    input_schema_json: input.to_string(),
                    output_schema_json: output.as_ref().map(|o| o.to_string()).unwrap_or_default(),
                    typescript: String::new(),
                    pinned_sha256: t.pinned.clone(),
                });
            }
            for (pb_tool, (tool_ident, name, description, input, output)) in
                pb_tools.iter_mut().zip(decls.iter())
            {
                pb_tool.typescript = typescript::tool_declaration(&typescript::ToolDecl {
                    ident: tool_ident,
                    name,
                    description: description.as_deref(),
                    input_schema: input,
                    output_schema: output.as_ref(),
                });
            }
            let (server_name, server_version) = upstream.server_info().unwrap_or_default();
            let connected = upstream.connected().await;
            servers.push(pb::BoundServer {
                name: upstream.name().to_string(),
                server_name,
                server_version,
                protocol_version: upstream.protocol_version().unwrap_or_default(),
                connected,
                tools: pb_tools,
                error: if connected {
                    String::new()
                } else {
                    upstream.last_error().await.unwrap_or_default()
                },
            });
            decl_servers.push((ident, upstream.name().to_string(), decls));
        }
        let ts_servers: Vec<typescript::ServerDecl<'_>> = decl_servers
            .iter()
            .map(|(ident, name, decls)| typescript::ServerDecl {
                ident,
                name,
                tools: decls
                    .iter()
                    .map(|(ti, n, d, i, o)| typescript::ToolDecl {
                        ident: ti,
                        name: n,
                        description: d.as_deref(),
                        input_schema: i,
                        output_schema: o.as_ref(),
                    })
                    .collect(),
            })
            .collect();
        pb::ListToolsResponse { servers, typescript: typescript::declarations(&ts_servers) }
    }

    /// The catalog of bound tools, for the sandbox's `mcp` object.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.upstreams.iter().map(|u| {
            (u.name().to_string(), u.tools().into_iter().map(|t| t.tool.name.to_string()).collect::<Vec<_>>())
        }))
    }

    /// Open an execution; its audit record is written before this returns.
    pub fn begin(&self, execution_id: &str, caller: &str, code_sha256: &str) -> Result<(), String> {
        if execution_id.is_empty() || execution_id.len() > 128 {
            return Err("execution_id must be 1 to 128 characters".into());
        }
        let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        if executions.contains_key(execution_id) {
            return Err(format!("execution {execution_id} is already open"));
        }
        // The proxy's own wall-time limit bounds the execution, whatever the executor does.
        let deadline = Instant::now() + self.config.limits.wall_time.duration();
        executions.insert(
            execution_id.to_string(),
            Execution {
                caller: caller.to_string(),
                code_sha256: code_sha256.to_string(),
                deadline,
                calls: 0,
                argument_bytes: 0,
                result_bytes: 0,
            },
        );
        self.audit.record(
            "execution_started",
            json!({ "execution": execution_id, "caller": caller, "policy": self.config.policy, "codeSha256": code_sha256 }),
        );
        Ok(())
    }

    /// Close an execution with its outcome.
    pub fn end(&self, req: &pb::EndExecutionRequest) -> Result<(), String> {
        let execution = self.executions.lock().unwrap_or_else(|p| p.into_inner()).remove(&req.execution_id);
        let Some(execution) = execution else {
            return Err(format!("execution {} is not open", req.execution_id));
        };
        self.audit.record(
            "execution_ended",
            json!({
                "execution": req.execution_id, "caller": execution.caller, "policy": self.config.policy,
                "codeSha256": execution.code_sha256, "outcome": req.outcome,
                "limit": (!req.limit.is_empty()).then_some(&req.limit),
                "wallMs": req.wall_ms, "cpuMs": req.cpu_ms, "toolCalls": execution.calls,
                "argumentBytes": execution.argument_bytes, "resultBytes": execution.result_bytes,
            }),
        );
        Ok(())
    }

    fn close_abandoned(&self) {
        let now = Instant::now();
        let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<String> = executions
            .iter()
            .filter(|(_, e)| e.deadline + ABANDON_GRACE < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(e) = executions.remove(&id) {
                self.audit.record(
                    "execution_abandoned",
                    json!({ "execution": id, "caller": e.caller, "policy": self.config.policy, "codeSha256": e.code_sha256, "toolCalls": e.calls,
                            "reason": "the executor never ended the execution (it crashed, was killed, or lost its connection)" }),
                );
            }
        }
    }

    /// One tool call, checked against the policy, forwarded upstream, converted and redacted.
    pub async fn call(
        &self,
        execution_id: &str,
        server: &str,
        tool: &str,
        arguments_json: &str,
    ) -> Result<Value, Failure> {
        let started = Instant::now();
        let arguments: Result<Value, _> = serde_json::from_str(arguments_json);
        let shape = arguments.as_ref().map(audit::shape).unwrap_or(Value::Null);
        let (caller, result) =
            self.call_checked(execution_id, server, tool, arguments, arguments_json.len()).await;
        let (outcome, error, result_bytes) = match &result {
            Ok((_, bytes)) => ("ok", None, *bytes),
            Err(f) => (kind_name(f.kind), Some(f.message.clone()), 0),
        };
        let mut record = json!({
            "execution": execution_id, "caller": caller, "policy": self.config.policy, "server": server, "tool": tool,
            "argumentShape": shape, "argumentBytes": arguments_json.len(), "resultBytes": result_bytes,
            "durationMs": started.elapsed().as_secs_f64() * 1000.0, "outcome": outcome, "error": error,
        });
        if self.config.binding.audit.include_arguments
            && let Ok(mut args) = serde_json::from_str::<Value>(arguments_json)
        {
            self.redactor.redact_json(&mut args);
            record["arguments"] = args;
        }
        self.audit.record("tool_call", record);
        result.map(|(v, _)| v)
    }

    async fn call_checked(
        &self,
        execution_id: &str,
        server: &str,
        tool: &str,
        arguments: Result<Value, serde_json::Error>,
        argument_bytes: usize,
    ) -> (String, Result<(Value, u64), Failure>) {
        // 1. The execution is open and within its quota and argument budget.
        let (caller, remaining) = {
            let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
            let Some(e) = executions.get_mut(execution_id) else {
                return (
                    String::new(),
                    Err(Failure::new(
                        Kind::UnknownExecution,
                        format!("execution {execution_id} is not open"),
                    )),
                );
            };
            let caller = e.caller.clone();
            // Refused calls that never reach an upstream do not use up the quota.
            let known = self.upstream(server).is_some_and(|u| u.tool(tool).is_some() || u.tools().is_empty());
            if !known {
                return (
                    caller,
                    Err(Failure::new(
                        Kind::Denied,
                        format!("tool {server}.{tool} is not bound by policy {}", self.config.policy),
                    )),
                );
            }
            if e.calls >= self.config.limits.tool_calls {
                return (
                    caller,
                    Err(Failure::new(
                        Kind::QuotaExceeded,
                        format!(
                            "the execution has used its quota of {} tool calls",
                            self.config.limits.tool_calls
                        ),
                    )),
                );
            }
            let budget = self.config.binding.argument_bytes.bytes();
            if e.argument_bytes + argument_bytes as u64 > budget {
                return (
                    caller,
                    Err(Failure::new(
                        Kind::BudgetExceeded,
                        format!(
                            "the execution's tool arguments would exceed the budget of {}",
                            self.config.binding.argument_bytes
                        ),
                    )),
                );
            }
            e.calls += 1;
            e.argument_bytes += argument_bytes as u64;
            (caller, e.deadline.saturating_duration_since(Instant::now()))
        };
        // 2. Rate limits, per caller and per tool.
        for (limiter, key, what) in [
            (&self.per_caller, caller.clone(), format!("caller {caller}")),
            (&self.per_tool, format!("{server}/{tool}"), format!("tool {server}.{tool}")),
        ] {
            if let Some(limiter) = limiter
                && let Err(not_until) = limiter.check_key(&key)
            {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs_f64().max(0.001);
                return (
                    caller.clone(),
                    Err(Failure {
                        kind: Kind::RateLimited,
                        message: format!("rate limited ({what}), retry after {secs:.1} s"),
                        retry_after: Some(wait),
                    }),
                );
            }
        }
        // 3. The arguments are a JSON object and the definition is still the pinned one.
        let arguments = match arguments {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return (caller, Err(Failure::new(Kind::ToolError, "tool arguments must be a JSON object")));
            }
            Err(e) => {
                return (
                    caller,
                    Err(Failure::new(Kind::ToolError, format!("tool arguments are not valid JSON: {e}"))),
                );
            }
        };
        let Some(upstream) = self.upstream(server) else {
            return (caller, Err(Failure::new(Kind::Denied, format!("server {server} is not bound"))));
        };
        // A server that was down (or refused) at startup is connected, and its tools discovered, on use.
        if upstream.tool(tool).is_none() {
            if let Err(e) = upstream.ensure_connected().await {
                return (caller, Err(upstream_failure(e, &self.redactor)));
            }
            if upstream.tool(tool).is_none() {
                return (
                    caller,
                    Err(Failure::new(
                        Kind::Denied,
                        format!("tool {server}.{tool} is not bound by policy {}", self.config.policy),
                    )),
                );
            }
        }
        if upstream.tool(tool).is_some_and(|t| t.changed) {
            return (
                caller,
                Err(Failure::new(
                    Kind::DefinitionChanged,
                    format!(
                        "tool {server}.{tool} changed its definition after it was pinned; calls are refused until an operator reviews it"
                    ),
                )),
            );
        }
        // 4. The call, within the server's timeout and the execution's remaining time.
        if remaining.is_zero() {
            return (caller, Err(Failure::new(Kind::Timeout, "the execution has no time left")));
        }
        let result = match upstream.call(tool, arguments, remaining).await {
            Ok(r) => r,
            Err(e) => return (caller, Err(upstream_failure(e, &self.redactor))),
        };
        // 5. Result budget, conversion and redaction.
        if result.is_error == Some(true) {
            let message = self.redactor.redact(&convert::error_message(&result)).into_owned();
            return (caller, Err(Failure::new(Kind::ToolError, message)));
        }
        let mut value = convert::plain_value(&result);
        self.redactor.redact_json(&mut value);
        let bytes = value.to_string().len() as u64;
        let over = {
            let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
            match executions.get_mut(execution_id) {
                Some(e) => {
                    e.result_bytes += bytes;
                    e.result_bytes > self.config.binding.result_bytes.bytes()
                }
                None => false,
            }
        };
        if over {
            return (
                caller,
                Err(Failure::new(
                    Kind::BudgetExceeded,
                    format!(
                        "the execution's tool results exceed the budget of {}",
                        self.config.binding.result_bytes
                    ),
                )),
            );
        }
        (caller, Ok((value, bytes)))
    }
}

fn upstream_failure(e: UpstreamError, redactor: &Redactor) -> Failure {
    let message = redactor.redact(&e.to_string()).into_owned();
    match e {
        UpstreamError::Timeout(_) => Failure::new(Kind::Timeout, message),
        UpstreamError::AddressRefused(_) => Failure::new(Kind::AddressRefused, message),
        UpstreamError::Unavailable(_) => Failure::new(Kind::Unavailable, message),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Unspecified => "unspecified",
        Kind::ToolError => "tool_error",
        Kind::Denied => "denied",
        Kind::QuotaExceeded => "quota_exceeded",
        Kind::BudgetExceeded => "budget_exceeded",
        Kind::RateLimited => "rate_limited",
        Kind::Timeout => "timeout",
        Kind::Unavailable => "unavailable",
        Kind::DefinitionChanged => "definition_changed",
        Kind::AddressRefused => "address_refused",
        Kind::UnknownExecution => "unknown_execution",
    }
}
