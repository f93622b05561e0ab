//! The agent-facing API: the gRPC `mcpguard.v1.Executor` service (`proto/mcpguard/v1/executor.proto`)
//! and the MCP front door (streamable HTTP), both in front of one [`ApiState`] that authenticates
//! callers, applies the limits at the edge (code size, a bounded execution queue, the caller's deadline)
//! and runs the code in the [`Sandbox`].
//!
//! Status codes at the boundary (the outcome of the code itself is never an error; it is in the
//! response): see [`ApiError`] and the comment at the top of the proto.

pub mod admission;
pub mod auth;
pub mod convert;
pub mod discovery;
pub mod grpc;
pub mod mcp;
pub mod metrics;
pub mod server;
pub mod tls;
pub mod tools;

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use mcp_guard_crds::{DurationSpec, Limits};

use crate::{
    engine::{Engine, ExecutionEvent},
    host::{ExecutionInfo, ToolHost},
    outcome::Outcome,
    proxy::client::ProxyToolHost,
    sandbox::{Sandbox, SandboxError},
};

use self::{
    admission::Admission,
    auth::{Authenticator, Caller},
    metrics::Metrics,
    tools::ToolIndex,
};

/// Generated types of `proto/mcpguard/v1/executor.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("mcpguard.v1");

    /// The encoded descriptor set of the public API, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mcpguard_v1_descriptor");
}

/// Why a request was refused before (or instead of) running code. Each maps to one gRPC status code
/// and one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No, malformed, expired or wrong-audience credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid caller that the policy does not allow.
    #[error("{0}")]
    PermissionDenied(String),
    /// Empty code, code over the size limit, malformed fields.
    #[error("{0}")]
    InvalidArgument(String),
    /// The execution queue is full.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The deadline passed before the execution could start.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Shutting down, or the binding proxy is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// A bug in MCP Guard.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::PermissionDenied(_) => "permission_denied",
            ApiError::InvalidArgument(_) => "invalid_argument",
            ApiError::ResourceExhausted(_) => "resource_exhausted",
            ApiError::DeadlineExceeded(_) => "deadline_exceeded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn to_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            ApiError::Unauthenticated(_) => tonic::Status::unauthenticated(message),
            ApiError::PermissionDenied(_) => tonic::Status::permission_denied(message),
            ApiError::InvalidArgument(_) => tonic::Status::invalid_argument(message),
            ApiError::ResourceExhausted(_) => tonic::Status::resource_exhausted(message),
            ApiError::DeadlineExceeded(_) => tonic::Status::deadline_exceeded(message),
            ApiError::Unavailable(_) => tonic::Status::unavailable(message),
            ApiError::Internal(_) => tonic::Status::internal(message),
        }
    }

    pub fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ApiError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            ApiError::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.to_status()
    }
}

/// Per-request tightening of the policy's limits (never loosening).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub wall_time: Option<Duration>,
    pub cpu_time: Option<Duration>,
    pub tool_calls: Option<u32>,
}

/// One execution request, as a door hands it to [`ApiState::execute`].
#[derive(Debug)]
pub struct Run<'a> {
    pub caller: &'a Caller,
    pub code: &'a str,
    pub overrides: LimitOverrides,
    /// The caller's deadline: caps the queue wait and the execution's wall time.
    pub deadline: Option<Instant>,
    /// Receives console lines and tool-call events as they happen.
    pub events: Option<tokio::sync::mpsc::UnboundedSender<ExecutionEvent>>,
    pub door: Door,
    /// For logs.
    pub request_id: &'a str,
}

/// Which door a request came through, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Grpc,
    Mcp,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Grpc => "grpc",
            Door::Mcp => "mcp",
        }
    }
}

/// Least time an execution is given: with less left before the caller's deadline, the request fails
/// with DEADLINE_EXCEEDED instead of starting.
pub const MIN_RUN_TIME: Duration = Duration::from_millis(2);

/// How long before the caller's deadline a request waiting in the queue gives up.
const QUEUE_MARGIN: Duration = Duration::from_millis(5);
/// The most time kept back from a caller's deadline.
const MAX_MARGIN: Duration = Duration::from_millis(250);

/// The wall time an execution may use when the caller's deadline is `remaining` away: a margin is kept
/// so that the outcome (`limit_exceeded: wall_time`) reaches the caller before its deadline.
pub fn wall_time_for_deadline(remaining: Duration) -> Duration {
    let margin = (remaining / 10).clamp(Duration::from_millis(1), MAX_MARGIN);
    remaining.saturating_sub(margin)
}

/// Settings of the edge.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Largest request message (gRPC) or body (HTTP).
    pub max_message_bytes: usize,
    /// Executions that run at the same time.
    pub max_concurrent: usize,
    /// Executions that may wait for a slot; beyond that, RESOURCE_EXHAUSTED.
    pub max_queue: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits { max_message_bytes: 4 * 1024 * 1024, max_concurrent: 64, max_queue: 256 }
    }
}

/// Everything both doors share.
pub struct ApiState {
    engine: Arc<dyn Engine>,
    host: Arc<dyn ToolHost>,
    sandbox: RwLock<Sandbox>,
    tools: Arc<RwLock<Arc<ToolIndex>>>,
    limits: Limits,
    edge: EdgeLimits,
    admission: Admission,
    pub metrics: Metrics,
    pub auth: Authenticator,
    proxy: Option<ProxyToolHost>,
    draining: AtomicBool,
    ready: AtomicBool,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").field("limits", &self.limits).field("edge", &self.edge).finish()
    }
}

impl ApiState {
    /// State for executions on `engine` whose tool calls `host` serves and whose tools are described by
    /// `tools`; `proxy`, when present, is polled for readiness and tool changes by [`ApiState::refresh`].
    pub fn new(
        engine: Arc<dyn Engine>,
        host: Arc<dyn ToolHost>,
        tools: ToolIndex,
        limits: Limits,
        edge: EdgeLimits,
        auth: Authenticator,
        proxy: Option<ProxyToolHost>,
    ) -> anyhow::Result<Arc<Self>> {
        let ready = proxy.is_none() || tools.all_connected();
        let metrics = Metrics::new()?;
        let catalog = tools.catalog();
        let tools = Arc::new(RwLock::new(Arc::new(tools)));
        let host: Arc<dyn ToolHost> = Arc::new(discovery::DiscoveryHost::new(host, tools.clone()));
        let sandbox = Sandbox::with_engine(engine.clone(), catalog, host.clone());
        Ok(Arc::new(ApiState {
            engine,
            host,
            sandbox: RwLock::new(sandbox),
            tools,
            admission: Admission::new(edge.max_concurrent, edge.max_queue),
            limits,
            edge,
            metrics,
            auth,
            proxy,
            draining: AtomicBool::new(false),
            ready: AtomicBool::new(ready),
        }))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn edge(&self) -> &EdgeLimits {
        &self.edge
    }

    /// The bound tools as last seen.
    pub fn tools(&self) -> Arc<ToolIndex> {
        self.tools.read().map(|t| t.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    fn sandbox(&self) -> Sandbox {
        self.sandbox.read().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Whether new executions are refused because the server is shutting down.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Stop admitting executions (in-flight ones finish).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.ready.store(false, Ordering::Release);
    }

    /// Ready: not draining, the binding proxy answers and every bound server is connected.
    pub fn ready(&self) -> bool {
        !self.draining() && self.ready.load(Ordering::Acquire)
    }

    /// Executions running or waiting.
    pub fn in_flight(&self) -> usize {
        self.admission.in_flight()
    }

    /// Ask the binding proxy for the bound tools: updates readiness, and the sandbox's catalog when the
    /// tools changed. Returns the new readiness.
    pub async fn refresh(&self) -> bool {
        let Some(proxy) = &self.proxy else {
            return self.ready();
        };
        match proxy.list_tools().await {
            Ok(response) => {
                let index = ToolIndex::from_proxy(&response);
                let ready = index.all_connected();
                let current = self.tools();
                let changed = current.fingerprint() != index.fingerprint();
                if changed {
                    let sandbox =
                        Sandbox::with_engine(self.engine.clone(), index.catalog(), self.host.clone());
                    if let Ok(mut current) = self.sandbox.write() {
                        *current = sandbox;
                    }
                    tracing::info!("the bound tools changed; new executions see the new catalog");
                }
                // The servers' state (connected, handshake info) is kept current even when the tools
                // stay the same: ListTools reports it.
                if (changed || current.servers() != index.servers())
                    && let Ok(mut tools) = self.tools.write()
                {
                    *tools = Arc::new(index);
                }
                self.ready.store(ready, Ordering::Release);
            }
            Err(e) => {
                if self.ready.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %e.message(), "the binding proxy does not answer: not ready");
                }
            }
        }
        self.ready()
    }

    /// Authenticate a caller from a bearer token and/or a verified client certificate's CN.
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        client_cn: Option<String>,
        door: Door,
    ) -> Result<Caller, ApiError> {
        let result = self.auth.authenticate(bearer, client_cn).await;
        if let Err(e) = &result {
            self.metrics.auth_failures.with_label_values(&[door.as_str(), e.reason()]).inc();
        }
        result
    }

    /// Check the request, wait for a slot (at most until its deadline), and run the code for its caller.
    pub async fn execute(&self, run: Run<'_>) -> Result<(Arc<ExecutionInfo>, Outcome), ApiError> {
        let Run { caller, door, request_id, .. } = run;
        let result = self.execute_inner(run).await;
        match &result {
            Ok((execution, outcome)) => {
                self.metrics.record_outcome(door, outcome);
                tracing::info!(
                    request_id,
                    door = door.as_str(),
                    caller = %caller.name,
                    execution = %execution.id,
                    outcome = outcome.status.kind(),
                    wall_ms = outcome.metrics.wall_ms,
                    tool_calls = outcome.tool_calls.len(),
                    "execution finished"
                );
            }
            Err(e) => {
                self.metrics.refused.with_label_values(&[door.as_str(), e.reason()]).inc();
                tracing::info!(request_id, door = door.as_str(), caller = %caller.name, reason = e.reason(), error = %e, "execution refused");
            }
        }
        result
    }

    async fn execute_inner(&self, run: Run<'_>) -> Result<(Arc<ExecutionInfo>, Outcome), ApiError> {
        let Run { caller, code, overrides, deadline, events, request_id, .. } = run;
        caller.may_execute()?;
        if self.draining() {
            return Err(ApiError::Unavailable("the server is shutting down".into()));
        }
        if code.trim().is_empty() {
            return Err(ApiError::InvalidArgument("code is empty".into()));
        }
        let max_code = self.limits.code_size.as_usize();
        if code.len() > max_code {
            return Err(ApiError::InvalidArgument(format!(
                "code is {} bytes; the limit (limits.codeSize) is {} ({max_code} bytes)",
                code.len(),
                self.limits.code_size
            )));
        }
        let mut limits = self.limits.clone();
        apply_overrides(&mut limits, overrides);
        // Give up waiting a little before the deadline, so that the caller hears why.
        let queue_deadline = deadline.map(|d| {
            let margin = (d.saturating_duration_since(Instant::now()) / 10).clamp(QUEUE_MARGIN, MAX_MARGIN);
            d.checked_sub(margin).unwrap_or(d)
        });
        let _permit = self.admission.admit(queue_deadline).await?;
        if self.draining() {
            return Err(ApiError::Unavailable("the server is shutting down".into()));
        }
        if let Some(deadline) = deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < MIN_RUN_TIME {
                return Err(ApiError::DeadlineExceeded(
                    "the deadline passed before the execution could start".into(),
                ));
            }
            cap_wall_time(&mut limits, wall_time_for_deadline(remaining));
        }
        self.metrics.active.inc();
        let _active = scopeguard(|| self.metrics.active.dec());
        tracing::debug!(request_id, caller = %caller.name, "execution starts");
        self.sandbox().run_with_events(&caller.name, code, &limits, events).await.map_err(|e| match e {
            SandboxError::HostUnavailable(m) => {
                ApiError::Unavailable(format!("the binding proxy is unavailable: {m}"))
            }
        })
    }
}

/// Tighten `limits` with `overrides` (never loosen).
pub fn apply_overrides(limits: &mut Limits, overrides: LimitOverrides) {
    if let Some(wall) = overrides.wall_time {
        cap_wall_time(limits, wall);
    }
    if let Some(cpu) = overrides.cpu_time {
        let cpu = cpu.max(Duration::from_millis(1));
        if cpu < limits.cpu_time.duration() {
            limits.cpu_time = duration_spec(cpu);
        }
    }
    if let Some(calls) = overrides.tool_calls {
        limits.tool_calls = limits.tool_calls.min(calls);
    }
}

fn cap_wall_time(limits: &mut Limits, wall: Duration) {
    let wall = wall.max(Duration::from_millis(1));
    if wall < limits.wall_time.duration() {
        limits.wall_time = duration_spec(wall);
    }
    if limits.cpu_time > limits.wall_time {
        limits.cpu_time = limits.wall_time;
    }
}

fn duration_spec(d: Duration) -> DurationSpec {
    DurationSpec::millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// Runs `f` when dropped.
struct ScopeGuard<F: FnMut()>(F);

impl<F: FnMut()> Drop for ScopeGuard<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

fn scopeguard<F: FnMut()>(f: F) -> ScopeGuard<F> {
    ScopeGuard(f)
}

/// A fresh request id (for logs), or the caller's `x-request-id` when it is a sane token.
pub fn request_id(presented: Option<&str>) -> String {
    match presented {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            id.to_string()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}
