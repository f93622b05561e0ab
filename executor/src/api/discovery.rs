//! Tool discovery for running code: `mcp.$search(query, detail)` and `mcp.$describe(names)`.
//!
//! The sandbox reaches the host only through `call(server, tool, argumentsJson)`. Discovery calls use
//! the reserved server name [`DISCOVERY_SERVER`] (`$`, which no binding can have: `js_identifier` maps
//! `$` to `_` and config names are DNS-like) with the tools `search` and `describe`; this host answers
//! them from the [`ToolIndex`] and forwards every other call to the real host (the binding proxy).
//! The answers are the same as the MCP front door's `search_tools` and `describe_tools`.
//!
//! The engine side (a `$search`/`$describe` pair on the `mcp` object in the prelude, and letting the
//! `$` server past the catalog check) is not wired yet; until it is, nothing calls this path.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::tools::{ToolIndex, declarations, summary};
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

/// `search`: `{query, detail}` -> `[{binding, server, name, description?, typescript?}]`.
pub fn search(index: &ToolIndex, arguments: &Value) -> Result<Value, ToolError> {
    let query = arguments.get("query").and_then(Value::as_str).unwrap_or_default();
    let detail = arguments.get("detail").and_then(Value::as_str).unwrap_or("summaries");
    if !["names", "summaries", "full"].contains(&detail) {
        return Err(ToolError::new(format!("detail must be names, summaries or full, not `{detail}`")));
    }
    Ok(Value::Array(
        index
            .search(query)
            .into_iter()
            .map(|t| {
                let mut entry = json!({ "binding": t.binding, "server": t.server, "name": t.name });
                if detail != "names" {
                    entry["description"] = json!(summary(&t.description, 160));
                }
                if detail == "full" {
                    entry["typescript"] = json!(t.typescript);
                }
                entry
            })
            .collect(),
    ))
}

/// `describe`: `{names}` -> `{typescript, tools: [{binding, inputSchema, outputSchema, ...}], unknown}`.
pub fn describe(index: &ToolIndex, arguments: &Value) -> Result<Value, ToolError> {
    let names: Vec<String> = arguments
        .get("names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let (found, missing) =
        if names.is_empty() { (index.tools().iter().collect(), Vec::new()) } else { index.by_names(&names) };
    Ok(json!({
        "typescript": declarations(&found),
        "tools": found.iter().map(|t| json!({
            "binding": t.binding,
            "server": t.server,
            "name": t.name,
            "description": t.description,
            "inputSchema": serde_json::from_str::<Value>(&t.input_schema_json).unwrap_or(Value::Null),
            "outputSchema": serde_json::from_str::<Value>(&t.output_schema_json).unwrap_or(Value::Null),
        })).collect::<Vec<_>>(),
        "unknown": missing,
    }))
}

#[async_trait]
impl ToolHost for DiscoveryHost {
    async fn begin(&self, execution: &ExecutionInfo) -> Result<(), ToolError> {
        self.inner.begin(execution).await
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
        match tool {
            "search" => search(&index, &arguments),
            "describe" => describe(&index, &arguments),
            other => Err(ToolError::new(format!("unknown discovery function `{other}`"))),
        }
    }

    async fn end(&self, execution: &ExecutionInfo, outcome: &Outcome) {
        self.inner.end(execution, outcome).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::host::{Catalog, testing::ScriptedHost};

    #[tokio::test]
    async fn discovery_calls_are_answered_here_and_the_rest_forwarded() {
        let inner = ScriptedHost::new().tool("demo", "echo", |a| async move { Ok(a) });
        let index = ToolIndex::from_catalog(Catalog::new([("demo", vec!["echo", "other"])]));
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
