//! The internal gRPC API of the binding proxy: on a Unix socket locally (only the executor, a child of
//! the same user, can reach it), or over TCP in Kubernetes, where every request must carry the
//! executor's own credential ([`PeerAuth`]) and callers are authenticated here, not by the executor.

use std::{net::IpAddr, path::Path, sync::Arc};

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use mcp_guard_proto::internal::{
    self as pb, MAX_MESSAGE_BYTES,
    binding_proxy_server::{BindingProxy as BindingProxyApi, BindingProxyServer},
};

use crate::{BindingProxy, ExecutionEnd};

/// Who may talk to the proxy over the network, and who the callers are. The proxy defines the question;
/// the `mcp-guard` binary answers it with Kubernetes TokenReview (this crate holds no API client).
#[tonic::async_trait]
pub trait PeerAuth: Send + Sync + 'static {
    /// Admit a request from `peer` with this `authorization` value (`Bearer <token>`) only when it is
    /// the executor's own credential for this proxy. Errors are the gRPC status to answer with.
    async fn executor(&self, authorization: Option<&str>, peer: Option<IpAddr>) -> Result<(), Status>;
    /// The caller a bearer token names, and whether that caller may only discover tools. `None`: this
    /// proxy does not authenticate callers (the executor does, as locally).
    async fn caller(&self, token: &str, peer: Option<IpAddr>) -> Option<Result<(String, bool), Status>>;
    /// Whether [`PeerAuth::caller`] authenticates callers.
    fn reviews_callers(&self) -> bool;
}

#[derive(Clone)]
pub struct ProxyService {
    proxy: Arc<BindingProxy>,
    auth: Option<Arc<dyn PeerAuth>>,
}

impl std::fmt::Debug for ProxyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyService").field("authenticated", &self.auth.is_some()).finish()
    }
}

impl ProxyService {
    /// The service without peer authentication (the Unix socket).
    pub fn new(proxy: Arc<BindingProxy>) -> Self {
        Self { proxy, auth: None }
    }

    /// The service that admits only requests `auth` accepts (TCP).
    pub fn authenticated(proxy: Arc<BindingProxy>, auth: Arc<dyn PeerAuth>) -> Self {
        Self { proxy, auth: Some(auth) }
    }

    /// Refuse a request that does not carry the executor's credential (when over the network).
    async fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(auth) = &self.auth else { return Ok(()) };
        let authorization = match request.metadata().get("authorization") {
            Some(v) => Some(v.to_str().map_err(|_| Status::unauthenticated("malformed authorization"))?),
            None => None,
        };
        auth.executor(authorization, request.remote_addr().map(|a| a.ip())).await
    }

    /// A proxy that authenticates callers trusts no caller name from the executor: the token must
    /// name that caller, and the caller must be one that may execute. Failed reviews count against the
    /// executor pod that asked (see `review_caller`).
    async fn check_caller(&self, caller: &str, token: &str, executor: Option<IpAddr>) -> Result<(), Status> {
        let Some(auth) = self.auth.as_ref().filter(|a| a.reviews_callers()) else { return Ok(()) };
        let token = token.trim();
        if token.is_empty() {
            return Err(Status::unauthenticated(
                "this binding proxy authenticates callers: caller_token is required",
            ));
        }
        match auth.caller(token, executor).await {
            None => Ok(()),
            Some(Err(status)) => Err(status),
            Some(Ok((_, true))) => Err(Status::permission_denied(format!(
                "caller `{caller}` may only discover tools, not execute"
            ))),
            Some(Ok((name, false))) if name != caller => {
                tracing::warn!(claimed = %caller, token_names = %name, "the executor named another caller than the caller's token");
                Err(Status::permission_denied("the caller does not match the caller's token"))
            }
            Some(Ok(_)) => Ok(()),
        }
    }

    pub fn into_server(self) -> BindingProxyServer<Self> {
        BindingProxyServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl BindingProxyApi for ProxyService {
    async fn list_tools(
        &self,
        request: Request<pb::ListToolsRequest>,
    ) -> Result<Response<pb::ListToolsResponse>, Status> {
        self.admit(&request).await?;
        let servers = self.proxy.list_tools().await.into_iter().map(pb::BoundServer::from).collect();
        Ok(Response::new(pb::ListToolsResponse { servers }))
    }

    async fn begin_execution(
        &self,
        request: Request<pb::BeginExecutionRequest>,
    ) -> Result<Response<pb::BeginExecutionResponse>, Status> {
        self.admit(&request).await?;
        let executor = request.remote_addr().map(|a| a.ip());
        let r = request.into_inner();
        self.check_caller(&r.caller, &r.caller_token, executor).await?;
        if !r.resume_approval_id.is_empty() {
            let run =
                self.proxy.resume(&r.execution_id, &r.caller, &r.resume_approval_id).await.map_err(|e| {
                    use crate::approvals::ResumeError as E;
                    match e {
                        E::NotFound(_) => Status::not_found(e.to_string()),
                        E::OtherCaller(_) => Status::permission_denied(e.to_string()),
                        E::NotResumable(_) => Status::failed_precondition(e.to_string()),
                        E::Unavailable(_) => Status::unavailable(e.to_string()),
                    }
                })?;
            return Ok(Response::new(pb::BeginExecutionResponse {
                code: run.code,
                seed: run.seed,
                clock_ms: run.clock_ms as f64,
            }));
        }
        self.proxy
            .begin_with(&r.execution_id, &r.caller, &r.code_sha256, r.seed, r.clock_ms.max(0.0) as u64)
            .map_err(|e| match e {
                crate::ExecutionError::AuditFailed => Status::unavailable(e.to_string()),
                _ => Status::invalid_argument(e.to_string()),
            })?;
        Ok(Response::new(pb::BeginExecutionResponse::default()))
    }

    async fn call_tool(
        &self,
        request: Request<pb::CallToolRequest>,
    ) -> Result<Response<pb::CallToolResponse>, Status> {
        self.admit(&request).await?;
        let r = request.into_inner();
        let result = match self
            .proxy
            .call_at(&r.execution_id, Some(r.sequence), &r.server, &r.tool, &r.arguments_json)
            .await
        {
            Ok(value) => pb::call_tool_response::Result::ValueJson(value.to_string()),
            Err(f) => pb::call_tool_response::Result::Failure(pb::ToolFailure {
                kind: pb::tool_failure::Kind::from(f.kind) as i32,
                message: f.message,
                retry_after_ms: f.retry_after.map_or(0, |d| d.as_millis() as u64),
            }),
        };
        Ok(Response::new(pb::CallToolResponse { result: Some(result) }))
    }

    async fn end_execution(
        &self,
        request: Request<pb::EndExecutionRequest>,
    ) -> Result<Response<pb::EndExecutionResponse>, Status> {
        self.admit(&request).await?;
        let r = request.into_inner();
        let end = ExecutionEnd {
            execution_id: r.execution_id,
            outcome: r.outcome,
            limit: r.limit,
            wall_ms: r.wall_ms,
            cpu_ms: r.cpu_ms,
        };
        if end.outcome == "approval_required" {
            let record = self.proxy.end_paused(&end, &r.code).await.map_err(Status::failed_precondition)?;
            return Ok(Response::new(pb::EndExecutionResponse { approval: Some(approval_to_pb(&record)) }));
        }
        self.proxy.end(&end).map_err(|e| match e {
            crate::ExecutionError::AuditFailed => Status::unavailable(e.to_string()),
            _ => Status::not_found(e.to_string()),
        })?;
        Ok(Response::new(pb::EndExecutionResponse::default()))
    }

    async fn list_approvals(
        &self,
        request: Request<pb::ListApprovalsRequest>,
    ) -> Result<Response<pb::ListApprovalsResponse>, Status> {
        self.admit(&request).await?;
        let executor = request.remote_addr().map(|a| a.ip());
        let r = request.into_inner();
        self.check_caller(&r.caller, &r.caller_token, executor).await?;
        let records = self.proxy.list_approvals(&r.caller).await.map_err(Status::unavailable)?;
        Ok(Response::new(pb::ListApprovalsResponse {
            approvals: records.iter().map(approval_to_pb).collect(),
        }))
    }

    async fn review_caller(
        &self,
        request: Request<pb::ReviewCallerRequest>,
    ) -> Result<Response<pb::ReviewCallerResponse>, Status> {
        self.admit(&request).await?;
        // The budget of failed reviews is the asking executor pod's (its connection's address), not the
        // caller address it claims: a compromised executor could otherwise claim a new address per
        // garbage token, flood the API server with reviews from the proxy's account and fill the table
        // of tracked peers. The executor limits each caller address itself before it asks.
        let executor = request.remote_addr().map(|a| a.ip());
        let r = request.into_inner();
        let Some(auth) = &self.auth else {
            return Err(Status::failed_precondition("this binding proxy does not authenticate callers"));
        };
        if !r.peer.is_empty() {
            tracing::debug!(caller_address = %r.peer, "reviewing a caller's token");
        }
        match auth.caller(&r.token, executor).await {
            None => Err(Status::failed_precondition("this binding proxy does not authenticate callers")),
            Some(Err(status)) => Err(status),
            Some(Ok((caller, discovery_only))) => {
                Ok(Response::new(pb::ReviewCallerResponse { caller, discovery_only }))
            }
        }
    }
}

/// Serve on `listener` (TCP), admitting only requests `auth` accepts, until `shutdown` resolves.
pub async fn serve_tcp(
    proxy: Arc<BindingProxy>,
    listener: tokio::net::TcpListener,
    auth: Arc<dyn PeerAuth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(ProxyService::authenticated(proxy, auth).into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Bind `path` (owner-only permissions) and serve until `shutdown` resolves.
pub async fn serve_unix(
    proxy: Arc<BindingProxy>,
    path: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    tonic::transport::Server::builder()
        .add_service(ProxyService::new(proxy).into_server())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

fn approval_to_pb(r: &crate::approvals::ApprovalRecord) -> pb::Approval {
    use crate::approvals::ApprovalState as S;
    let (decided_by, reason) = match &r.state {
        S::Approved { by } => (by.clone(), String::new()),
        S::Denied { by, reason } => (by.clone(), reason.clone()),
        S::Used { by, .. } => (by.clone(), String::new()),
        S::Pending | S::Expired => (String::new(), String::new()),
    };
    pb::Approval {
        id: r.id.clone(),
        policy: r.policy.clone(),
        execution_id: r.execution_id.clone(),
        requester: r.requester.clone(),
        calls: r
            .calls
            .iter()
            .map(|c| pb::ApprovalCall {
                sequence: c.sequence,
                server: c.server.clone(),
                tool: c.tool.clone(),
                arguments_json: c.arguments.to_string(),
                arguments_sha256: c.arguments_sha256.clone(),
            })
            .collect(),
        created_at: r.created_at.clone(),
        expires_at: r.expires_at.clone(),
        state: r.state.name().to_string(),
        decided_by,
        reason,
    }
}
