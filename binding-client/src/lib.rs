//! The executor's side of the internal API: a [`ToolHost`] that forwards every call to the binding
//! proxy over its Unix socket. The executor holds no credential; this is the only way out. This crate
//! speaks the wire types of the internal API and converts at its edge; it does not depend on the proxy.

use std::{path::PathBuf, time::Duration};

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use mcp_guard_proto::internal::{self as pb, MAX_MESSAGE_BYTES};
use mcp_guard_sandbox::{
    host::{ExecutionInfo, ToolError, ToolHost},
    outcome::{Outcome, Status},
};
use mcp_guard_tools::{FailureKind, ServerTools};

type Client = pb::binding_proxy_client::BindingProxyClient<Channel>;

/// A tool host backed by the binding proxy.
#[derive(Debug, Clone)]
pub struct ProxyToolHost {
    client: Client,
}

impl ProxyToolHost {
    /// Connect to the proxy's socket (lazily: the first call connects).
    pub fn connect(socket: PathBuf) -> anyhow::Result<Self> {
        // The URI is required by tonic but unused: the connector always dials the socket.
        let channel = Endpoint::try_from("http://binding-proxy.invalid")?
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
            }));
        let client = Client::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(ProxyToolHost { client })
    }

    /// The bound servers, their state and their tools' names and schemas.
    pub async fn list_tools(&self) -> Result<Vec<ServerTools>, tonic::Status> {
        let response = self.client.clone().list_tools(pb::ListToolsRequest {}).await?.into_inner();
        Ok(response.servers.into_iter().map(ServerTools::from).collect())
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
    async fn begin(&self, execution: &ExecutionInfo) -> Result<(), ToolError> {
        let request = pb::BeginExecutionRequest {
            execution_id: execution.id.clone(),
            caller: execution.caller.clone(),
            code_sha256: execution.code_sha256.clone(),
        };
        self.client
            .clone()
            .begin_execution(request)
            .await
            .map_err(|s| ToolError::unavailable(s.message()))?;
        Ok(())
    }

    async fn call(
        &self,
        execution: &ExecutionInfo,
        server: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        let request = pb::CallToolRequest {
            execution_id: execution.id.clone(),
            server: server.to_string(),
            tool: tool.to_string(),
            arguments_json: arguments.to_string(),
        };
        let response = self
            .client
            .clone()
            .call_tool(request)
            .await
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

    async fn end(&self, execution: &ExecutionInfo, outcome: &Outcome) {
        let limit = match &outcome.status {
            Status::LimitExceeded { limit, .. } => limit.as_str().to_string(),
            _ => String::new(),
        };
        let request = pb::EndExecutionRequest {
            execution_id: execution.id.clone(),
            outcome: outcome.status.kind().to_string(),
            limit,
            wall_ms: outcome.metrics.wall_ms,
            cpu_ms: outcome.metrics.cpu_ms,
        };
        if let Err(e) = self.client.clone().end_execution(request).await {
            tracing::warn!(execution = %execution.id, error = %e.message(), "cannot close the execution at the binding proxy");
        }
    }
}
