//! The internal gRPC API of the binding proxy, served on a Unix socket.

use std::{path::Path, sync::Arc};

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use mcp_guard_proto::internal::{
    self as pb, MAX_MESSAGE_BYTES,
    binding_proxy_server::{BindingProxy as BindingProxyApi, BindingProxyServer},
};

use crate::{BindingProxy, ExecutionEnd};

#[derive(Debug, Clone)]
pub struct ProxyService {
    proxy: Arc<BindingProxy>,
}

impl ProxyService {
    pub fn new(proxy: Arc<BindingProxy>) -> Self {
        Self { proxy }
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
        _: Request<pb::ListToolsRequest>,
    ) -> Result<Response<pb::ListToolsResponse>, Status> {
        let servers = self.proxy.list_tools().await.into_iter().map(pb::BoundServer::from).collect();
        Ok(Response::new(pb::ListToolsResponse { servers }))
    }

    async fn begin_execution(
        &self,
        request: Request<pb::BeginExecutionRequest>,
    ) -> Result<Response<pb::BeginExecutionResponse>, Status> {
        let r = request.into_inner();
        self.proxy.begin(&r.execution_id, &r.caller, &r.code_sha256).map_err(|e| match e {
            crate::ExecutionError::AuditFailed => Status::unavailable(e.to_string()),
            _ => Status::invalid_argument(e.to_string()),
        })?;
        Ok(Response::new(pb::BeginExecutionResponse {}))
    }

    async fn call_tool(
        &self,
        request: Request<pb::CallToolRequest>,
    ) -> Result<Response<pb::CallToolResponse>, Status> {
        let r = request.into_inner();
        let result = match self.proxy.call(&r.execution_id, &r.server, &r.tool, &r.arguments_json).await {
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
        let r = request.into_inner();
        let end = ExecutionEnd {
            execution_id: r.execution_id,
            outcome: r.outcome,
            limit: r.limit,
            wall_ms: r.wall_ms,
            cpu_ms: r.cpu_ms,
        };
        self.proxy.end(&end).map_err(|e| match e {
            crate::ExecutionError::AuditFailed => Status::unavailable(e.to_string()),
            _ => Status::not_found(e.to_string()),
        })?;
        Ok(Response::new(pb::EndExecutionResponse {}))
    }
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
