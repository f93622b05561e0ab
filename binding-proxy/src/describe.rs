//! The bound tools as the proxy reports them: each server's state and its tools' names and schemas.
//! Identifiers and TypeScript are derived by the executor's tool index, not here.

use mcp_guard_tools::{ServerState, ServerTools, ToolSpec};
use serde_json::Value;

use crate::BindingProxy;

impl BindingProxy {
    /// The bound servers, their state and their tools.
    pub async fn list_tools(&self) -> Vec<ServerTools> {
        let mut servers = Vec::new();
        for upstream in &self.upstreams {
            // Connected first: a session is connected only once its tools are listed, so the tools read
            // after it are that session's (read before, they could predate a handshake in progress).
            let connected = upstream.connected().await;
            let tools = upstream
                .tools()
                .iter()
                .map(|t| ToolSpec {
                    name: t.tool.name.to_string(),
                    description: t.tool.description.as_deref().unwrap_or_default().to_string(),
                    input_schema_json: Value::Object((*t.tool.input_schema).clone()).to_string(),
                    output_schema_json: t
                        .tool
                        .output_schema
                        .as_ref()
                        .map(|o| Value::Object((**o).clone()).to_string())
                        .unwrap_or_default(),
                    pinned_sha256: t.pinned.clone(),
                })
                .collect();
            let (server_name, server_version) = upstream.server_info().unwrap_or_default();
            let error =
                if connected { String::new() } else { upstream.last_error().await.unwrap_or_default() };
            let state = ServerState {
                name: upstream.name().to_string(),
                connected,
                error,
                server_name,
                server_version,
                protocol_version: upstream.protocol_version().unwrap_or_default(),
                missing_credentials: upstream.missing_credentials(),
            };
            servers.push(ServerTools { state, tools });
        }
        servers
    }
}
