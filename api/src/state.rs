//! What both doors share: authentication, admission, the sandbox with the current tools, readiness and
//! metrics; [`ApiState::execute`] runs one request.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use mcp_guard_binding_client::ProxyToolHost;
use mcp_guard_crds::Limits;
use mcp_guard_sandbox::{
    engine::{Engine, ExecutionEvent},
    host::{ExecutionInfo, ToolHost, discovery::DiscoveryHost},
    outcome::Outcome,
    sandbox::{Sandbox, SandboxError},
};
use mcp_guard_tools::ToolIndex;

use crate::{
    admission::Admission,
    auth::{Authenticator, Caller},
    error::ApiError,
    limits::{
        EdgeLimits, LimitOverrides, MAX_MARGIN, MIN_RUN_TIME, QUEUE_MARGIN, apply_overrides, cap_wall_time,
        wall_time_for_deadline,
    },
    metrics::Metrics,
};

/// One execution request, as a door hands it to [`ApiState::execute`].
#[derive(Debug)]
pub struct Run<'a> {
    pub caller: &'a Caller,
    /// The code to run; empty for a resume.
    pub code: &'a str,
    /// Resume the execution paused for this approval (instead of running `code`).
    pub resume: Option<&'a str>,
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
        let host: Arc<dyn ToolHost> = Arc::new(DiscoveryHost::new(host, tools.clone()));
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
                let index = ToolIndex::new(response);
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

    /// The approvals `caller` asked for, newest first.
    pub async fn list_approvals(
        &self,
        caller: &Caller,
    ) -> Result<Vec<mcp_guard_proto::internal::Approval>, ApiError> {
        caller.may_execute()?;
        let Some(proxy) = &self.proxy else { return Ok(Vec::new()) };
        proxy.list_approvals(&caller.name, caller.token.as_ref().map(|t| t.0.as_str())).await.map_err(|s| {
            ApiError::Unavailable(format!("the binding proxy cannot list approvals: {}", s.message()))
        })
    }

    /// Authenticate a caller from a bearer token and/or a verified client certificate's CN; `peer` is
    /// the caller's address when known (failed token reviews are limited per peer).
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        client_cn: Option<String>,
        peer: Option<std::net::IpAddr>,
        door: Door,
    ) -> Result<Caller, ApiError> {
        let result = self.auth.authenticate(bearer, client_cn, peer).await;
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
        let Run { caller, code, resume, overrides, deadline, events, request_id, .. } = run;
        caller.may_execute()?;
        if self.draining() {
            return Err(ApiError::Unavailable("the server is shutting down".into()));
        }
        if let Some(id) = resume {
            if id.is_empty() || id.len() > 64 {
                return Err(ApiError::InvalidArgument("approval_id must be 1 to 64 characters".into()));
            }
        } else if code.trim().is_empty() {
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
        let sandbox = self.sandbox();
        let result = match resume {
            Some(id) => {
                sandbox.resume_with_events(&caller.name, caller.token.clone(), id, &limits, events).await
            }
            None => sandbox.run_with_events(&caller.name, caller.token.clone(), code, &limits, events).await,
        };
        result.map_err(|e| match e {
            SandboxError::NotResumable(m) => ApiError::FailedPrecondition(m),
            SandboxError::HostUnavailable(m) => {
                ApiError::Unavailable(format!("the binding proxy is unavailable: {m}"))
            }
            SandboxError::Refused(m) => ApiError::PermissionDenied(format!("the binding proxy refused: {m}")),
        })
    }
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
