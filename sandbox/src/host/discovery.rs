//! Tool discovery for running code: `mcp.$search(query, detail)` and `mcp.$describe(names)`.
//!
//! The sandbox reaches the host only through `call(server, tool, argumentsJson)`. Discovery calls use
//! the reserved server name [`DISCOVERY_SERVER`] (`$`, which no binding can have: `js_identifier` maps
//! `$` to `_` and config names are DNS-like) with the tools `search` and `describe`; this host answers
//! them from the [`ToolIndex`] and forwards every other call to the real host (the binding proxy).
//! The answers are the same as the MCP front door's `search_tools` and `describe_tools`.
//!
//! The engine side is a `$search`/`$describe` pair on the `mcp` object (the prelude) and the isolate
//! letting the `$` server past the catalog check.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde_json::Value;

use mcp_guard_tools::{ToolIndex, discovery};

use crate::{
    host::{ExecutionInfo, ToolError, ToolHost},
    outcome::Outcome,
};

/// The reserved server name of discovery calls.
pub const DISCOVERY_SERVER: &str = "$";

/// Answers discovery calls; forwards the rest.
pub struct DiscoveryHost {
    inner: Arc<dyn ToolHost>,
    tools: Arc<RwLock<Arc<ToolIndex>>>,
}

impl DiscoveryHost {
    pub fn new(inner: Arc<dyn ToolHost>, tools: Arc<RwLock<Arc<ToolIndex>>>) -> Self {
        DiscoveryHost { inner, tools }
    }

    fn index(&self) -> Arc<ToolIndex> {
        self.tools.read().map(|t| t.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

#[async_trait]
impl ToolHost for DiscoveryHost {
    async fn begin(&self, execution: &ExecutionInfo) -> Result<Option<super::Resumed>, ToolError> {
        self.inner.begin(execution).await
    }

    async fn call_at(
        &self,
        execution: &ExecutionInfo,
        sequence: u64,
        server: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        if server != DISCOVERY_SERVER {
            return self.inner.call_at(execution, sequence, server, tool, arguments).await;
        }
        self.call(execution, server, tool, arguments).await
    }

    async fn call(
        &self,
        execution: &ExecutionInfo,
        server: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        if server != DISCOVERY_SERVER {
            return self.inner.call(execution, server, tool, arguments).await;
        }
        let index = self.index();
        // Off the async workers: the answer is computed from the local index.
        let tool = tool.to_owned();
        tokio::task::spawn_blocking(move || answer(&index, &tool, &arguments))
            .await
            .unwrap_or_else(|_| Err(ToolError::unavailable("the discovery call failed")))
    }

    fn discover(
        &self,
        _execution: &ExecutionInfo,
        tool: &str,
        arguments: &Value,
    ) -> Option<Result<Value, ToolError>> {
        Some(answer(&self.index(), tool, arguments))
    }

    async fn end(
        &self,
        execution: &ExecutionInfo,
        outcome: &Outcome,
        code: &str,
    ) -> Result<Option<crate::outcome::ApprovalRequest>, ToolError> {
        self.inner.end(execution, outcome, code).await
    }
}

fn answer(index: &ToolIndex, tool: &str, arguments: &Value) -> Result<Value, ToolError> {
    match tool {
        "search" => discovery::search(index, arguments).map_err(ToolError::new),
        "describe" => discovery::describe(index, arguments).map_err(ToolError::new),
        other => Err(ToolError::new(format!("unknown discovery function `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use mcp_guard_tools::Catalog;
    use serde_json::json;

    use super::*;
    use crate::host::testing::ScriptedHost;

    #[tokio::test]
    async fn discovery_calls_are_answered_here_and_the_rest_forwarded() {
        let inner = ScriptedHost::new().tool("demo", "echo", |a| async move { Ok(a) });
        let index = ToolIndex::from_catalog(&Catalog::new([("demo", vec!["echo", "other"])]));
        let host = DiscoveryHost::new(inner.into_arc(), Arc::new(RwLock::new(Arc::new(index))));
        let ex = ExecutionInfo::new("t", "");
        let found =
            host.call(&ex, "$", "search", json!({ "query": "echo", "detail": "names" })).await.unwrap();
        assert_eq!(found, json!([{ "binding": "mcp.demo.echo", "server": "demo", "name": "echo" }]));
        let described =
            host.call(&ex, "$", "describe", json!({ "names": ["demo.echo", "x"] })).await.unwrap();
        assert!(described["typescript"].as_str().unwrap().contains("echo("));
        assert_eq!(described["unknown"], json!(["x"]));
        assert!(host.call(&ex, "$", "search", json!({ "detail": "all" })).await.is_err());
        assert_eq!(host.call(&ex, "demo", "echo", json!({ "a": 1 })).await.unwrap(), json!({ "a": 1 }));
    }
}
