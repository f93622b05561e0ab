//! The executor's side of the internal API: a [`ToolHost`] that forwards every call to the binding
//! proxy, over its Unix socket locally or over TCP in Kubernetes (where each request carries the
//! executor pod's own token for the proxy, re-read as the kubelet rotates it). The executor holds no
//! credential for any upstream; this is the only way out. This crate speaks the wire types of the
//! internal API and converts at its edge; it does not depend on the proxy.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use mcp_guard_proto::internal::{self as pb, MAX_MESSAGE_BYTES};
use mcp_guard_sandbox::{
    host::{ExecutionInfo, Resumed, ToolError, ToolHost},
    outcome::{ApprovalCall, ApprovalRequest, Outcome, Status},
};
use mcp_guard_tools::{FailureKind, ServerTools};

type Client = pb::binding_proxy_client::BindingProxyClient<Channel>;

/// A tool host backed by the binding proxy.
#[derive(Debug, Clone)]
pub struct ProxyToolHost {
    client: Arc<std::sync::RwLock<Client>>,
    /// The executor's token for the proxy (TCP only).
    token: Option<Arc<TokenFile>>,
    /// Where to connect again (TCP only): see [`ProxyToolHost::reconnect`].
    endpoint: Option<Endpoint>,
}

/// How often the token file is read again (the kubelet rotates a projected token at 80% of its life,
/// at least ten minutes before it expires).
const TOKEN_REREAD: Duration = Duration::from_secs(30);

/// A token in a file, re-read every [`TOKEN_REREAD`]. `Debug` shows the path, never the token.
struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(tonic::metadata::MetadataValue<tonic::metadata::Ascii>, Instant)>>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile").field("path", &self.path).finish_non_exhaustive()
    }
}

impl TokenFile {
    fn value(&self) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>, tonic::Status> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((value, at)) = cached.as_ref()
            && at.elapsed() < TOKEN_REREAD
        {
            return Ok(value.clone());
        }
        let token = std::fs::read_to_string(&self.path).map_err(|e| {
            tonic::Status::unavailable(format!("cannot read the proxy token {}: {e}", self.path.display()))
        })?;
        let mut value: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
            format!("Bearer {}", token.trim()).parse().map_err(|_| {
                tonic::Status::unavailable(format!("the proxy token in {} is not ASCII", self.path.display()))
            })?;
        // Never indexed by HPACK, never shown by `Debug`.
        value.set_sensitive(true);
        *cached = Some((Clone::clone(&value), Instant::now()));
        Ok(value)
    }
}

impl ProxyToolHost {
    /// Connect to the proxy over TCP at `url` (`http://IP:PORT`), sending the token in `token_file`
    /// with every request (lazily: the first call connects). One HTTP/2 connection carries every
    /// request, each on its own stream; Nagle is off.
    pub fn connect_tcp(url: &str, token_file: PathBuf) -> anyhow::Result<Self> {
        let endpoint = Endpoint::try_from(url.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let client = Arc::new(std::sync::RwLock::new(Self::client_of(endpoint.connect_lazy())));
        let token = Arc::new(TokenFile { path: token_file, cached: Mutex::new(None) });
        Ok(ProxyToolHost { client, token: Some(token), endpoint: Some(endpoint) })
    }

    fn client_of(channel: Channel) -> Client {
        Client::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn client(&self) -> Client {
        self.client.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Over TCP, drop the connection and dial again on the next request. The proxy's answers are all
    /// gRPC; a non-gRPC answer (an HTTP 404 from a server the connection reached while the pod's
    /// network was still being set up, say) is not retried on the same connection.
    fn reconnect(&self, status: &tonic::Status) {
        let Some(endpoint) = &self.endpoint else { return };
        if matches!(
            status.code(),
            tonic::Code::Unknown
                | tonic::Code::Unimplemented
                | tonic::Code::Internal
                | tonic::Code::Unavailable
        ) {
            tracing::debug!(code = ?status.code(), message = %status.message(), "connecting to the binding proxy again");
            *self.client.write().unwrap_or_else(|p| p.into_inner()) =
                Self::client_of(endpoint.connect_lazy());
        }
    }

    /// A request carrying the executor's token (over TCP).
    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, tonic::Status> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("authorization", token.value()?);
        }
        Ok(request)
    }

    /// The caller a bearer token names, reviewed by the proxy: `(caller, discovery_only)`.
    pub async fn review_caller(
        &self,
        token: &str,
        peer: Option<std::net::IpAddr>,
    ) -> Result<(String, bool), tonic::Status> {
        let request = self.request(pb::ReviewCallerRequest {
            token: token.to_string(),
            peer: peer.map(|p| p.to_string()).unwrap_or_default(),
        })?;
        let r = self.client().review_caller(request).await.inspect_err(|e| self.reconnect(e))?.into_inner();
        Ok((r.caller, r.discovery_only))
    }

    /// Connect to the proxy's socket (lazily: the first call connects).
    pub fn connect(socket: PathBuf) -> anyhow::Result<Self> {
        // The URI is required by tonic but unused: the connector always dials the socket.
        let channel = Endpoint::try_from("http://binding-proxy.invalid")?
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
            }));
        let client = Arc::new(std::sync::RwLock::new(Self::client_of(channel)));
        Ok(ProxyToolHost { client, token: None, endpoint: None })
    }

    /// The bound servers, their state and their tools' names and schemas.
    pub async fn list_tools(&self) -> Result<Vec<ServerTools>, tonic::Status> {
        let response = self
            .client()
            .list_tools(self.request(pb::ListToolsRequest {})?)
            .await
            .inspect_err(|e| self.reconnect(e))?
            .into_inner();
        Ok(response.servers.into_iter().map(ServerTools::from).collect())
    }

    /// One call; `sequence` is its position in issue order (what a resumed execution is matched by).
    pub async fn call_with(
        &self,
        execution: &ExecutionInfo,
        sequence: Option<u64>,
        server: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        let request = pb::CallToolRequest {
            execution_id: execution.id.clone(),
            server: server.to_string(),
            tool: tool.to_string(),
            arguments_json: arguments.to_string(),
            sequence: sequence.unwrap_or_default(),
        };
        let request = self.request(request).map_err(|s| ToolError::unavailable(s.message()))?;
        let response = self
            .client()
            .call_tool(request)
            .await
            .inspect_err(|e| self.reconnect(e))
            .map_err(|s| ToolError::unavailable(format!("the binding proxy failed: {}", s.message())))?
            .into_inner();
        match response.result {
            Some(pb::call_tool_response::Result::ValueJson(json)) => serde_json::from_str(&json)
                .map_err(|e| ToolError::new(format!("the binding proxy returned invalid JSON: {e}"))),
            Some(pb::call_tool_response::Result::Failure(f)) => {
                let kind =
                    pb::tool_failure::Kind::try_from(f.kind).unwrap_or(pb::tool_failure::Kind::Unspecified);
                Err(ToolError::of(FailureKind::from(kind), f.message))
            }
            None => Err(ToolError::new("the binding proxy returned no result")),
        }
    }

    /// The approvals `caller` asked for, newest first (`caller_token` for a proxy that authenticates
    /// callers). Each as the outcome shows it, plus its state (`pending`, `approved`, `denied`,
    /// `expired`, `used`) and who decided.
    pub async fn list_approvals(
        &self,
        caller: &str,
        caller_token: Option<&str>,
    ) -> Result<Vec<pb::Approval>, tonic::Status> {
        let request = self.request(pb::ListApprovalsRequest {
            caller: caller.to_string(),
            caller_token: caller_token.unwrap_or_default().to_string(),
        })?;
        Ok(self
            .client()
            .list_approvals(request)
            .await
            .inspect_err(|e| self.reconnect(e))?
            .into_inner()
            .approvals)
    }

    /// Wait until the proxy answers, for at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), tonic::Status> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.list_tools().await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

#[async_trait]
impl ToolHost for ProxyToolHost {
    async fn begin(&self, execution: &ExecutionInfo) -> Result<Option<Resumed>, ToolError> {
        let request = pb::BeginExecutionRequest {
            execution_id: execution.id.clone(),
            caller: execution.caller.clone(),
            code_sha256: execution.code_sha256.clone(),
            caller_token: execution.caller_token.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
            seed: execution.seed,
            clock_ms: execution.clock_ms as f64,
            resume_approval_id: execution.resume.clone().unwrap_or_default(),
        };
        let request = self.request(request).map_err(|s| ToolError::unavailable(s.message()))?;
        let response =
            self.client().begin_execution(request).await.inspect_err(|e| self.reconnect(e)).map_err(|s| {
                match s.code() {
                    // The proxy refused this caller (not a failure of the proxy).
                    tonic::Code::PermissionDenied
                    | tonic::Code::Unauthenticated
                    | tonic::Code::InvalidArgument => ToolError::of(FailureKind::Denied, s.message()),
                    // A resume of an approval that is unknown, undecided, expired or used.
                    tonic::Code::NotFound | tonic::Code::FailedPrecondition => {
                        ToolError::of(FailureKind::ApprovalRequired, s.message())
                    }
                    _ => ToolError::unavailable(s.message()),
                }
            })?;
        let r = response.into_inner();
        Ok(execution.resume.is_some().then(|| Resumed {
            code: r.code,
            seed: r.seed,
            clock_ms: r.clock_ms.max(0.0) as u64,
        }))
    }

    async fn call(
        &self,
        execution: &ExecutionInfo,
        server: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        self.call_with(execution, None, server, tool, arguments).await
    }

    async fn call_at(
        &self,
        execution: &ExecutionInfo,
        sequence: u64,
        server: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        self.call_with(execution, Some(sequence), server, tool, arguments).await
    }

    async fn end(
        &self,
        execution: &ExecutionInfo,
        outcome: &Outcome,
        code: &str,
    ) -> Result<Option<ApprovalRequest>, ToolError> {
        let limit = match &outcome.status {
            Status::LimitExceeded { limit, .. } => limit.as_str().to_string(),
            _ => String::new(),
        };
        let paused = matches!(outcome.status, Status::ApprovalRequired { .. });
        let request = pb::EndExecutionRequest {
            execution_id: execution.id.clone(),
            outcome: outcome.status.kind().to_string(),
            limit,
            wall_ms: outcome.metrics.wall_ms,
            cpu_ms: outcome.metrics.cpu_ms,
            // The journal keeps the code for the resume; otherwise the proxy never needs it.
            code: if paused { code.to_string() } else { String::new() },
        };
        let result = match self.request(request) {
            Ok(request) => self.client().end_execution(request).await.map(|r| r.into_inner()),
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => Ok(r.approval.map(approval_from_pb)),
            Err(e) => {
                tracing::warn!(execution = %execution.id, error = %e.message(), "cannot close the execution at the binding proxy");
                Err(ToolError::unavailable(e.message()))
            }
        }
    }
}

/// An approval as the outcome shows it.
pub fn approval_from_pb(a: pb::Approval) -> ApprovalRequest {
    ApprovalRequest {
        id: a.id,
        policy: a.policy,
        requester: a.requester,
        created_at: a.created_at,
        expires_at: a.expires_at,
        calls: a
            .calls
            .into_iter()
            .map(|c| ApprovalCall {
                server: c.server,
                tool: c.tool,
                arguments: serde_json::from_str(&c.arguments_json)
                    .unwrap_or(serde_json::Value::String(c.arguments_json)),
            })
            .collect(),
    }
}
