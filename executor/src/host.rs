//! The bindings' host side: the catalog of tools the sandbox may call and the [`ToolHost`] that serves
//! the calls. In production the host forwards to the binding proxy; tests use [`testing::ScriptedHost`].

use std::{collections::BTreeSet, sync::Arc};

use async_trait::async_trait;
use serde::Serialize;

/// A tool call failed. The message is shown to the sandboxed code as the thrown error's message, so it
/// must never carry credentials or host details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    /// A stable code: `tool_error` (the tool said so), or what the binding proxy refused:
    /// `denied`, `quota_exceeded`, `budget_exceeded`, `rate_limited`, `timeout`, `unavailable`,
    /// `definition_changed`, `address_refused`.
    pub code: String,
    pub message: String,
}

impl ToolError {
    /// An error the tool itself reported.
    pub fn new(message: impl Into<String>) -> Self {
        Self { code: "tool_error".into(), message: message.into() }
    }

    /// The tool host could not be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { code: "unavailable".into(), message: message.into() }
    }
}

/// Who runs what: the identity of one execution, as the tool host and the audit log see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionInfo {
    /// Unique per execution.
    pub id: String,
    /// The authenticated caller.
    pub caller: String,
    /// sha256 of the submitted code, hex.
    pub code_sha256: String,
}

impl ExecutionInfo {
    /// A new execution of `code` by `caller`, with a fresh id.
    pub fn new(caller: &str, code: &str) -> Self {
        use sha2::Digest;
        ExecutionInfo {
            id: uuid::Uuid::new_v4().to_string(),
            caller: caller.to_string(),
            code_sha256: hex::encode(sha2::Sha256::digest(code.as_bytes())),
        }
    }
}

/// Serves tool calls for the sandbox. Implementations must be cancel-safe: when an execution ends early
/// the future of an in-flight call is dropped.
#[async_trait]
pub trait ToolHost: Send + Sync + 'static {
    /// An execution starts (before validation). A host that audits must record it before returning;
    /// an error stops the execution from running.
    async fn begin(&self, _execution: &ExecutionInfo) -> Result<(), ToolError> {
        Ok(())
    }

    async fn call(
        &self,
        execution: &ExecutionInfo,
        server: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError>;

    /// The execution ended with `outcome`.
    async fn end(&self, _execution: &ExecutionInfo, _outcome: &crate::outcome::Outcome) {}
}

/// One tool as the sandbox sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundTool {
    /// The tool's name on its server.
    pub name: String,
    /// The property name under `mcp.<server>`: a valid JavaScript identifier, unique within the server.
    pub ident: String,
}

/// One server as the sandbox sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundServer {
    pub name: String,
    /// The property name under `mcp`: a valid JavaScript identifier, unique among servers.
    pub ident: String,
    pub tools: Vec<BoundTool>,
}

/// The tools bound into every execution, with names mapped to identifiers without collisions.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    servers: Vec<BoundServer>,
    /// The catalog as JSON, built once and handed to every isolate.
    json: Arc<str>,
}

/// Property names that would change how the bindings behave (`then` makes an object awaitable) or that
/// read as prototype machinery; a tool or server with such a name gets a trailing `_`.
const RESERVED: &[&str] = &[
    "then",
    "constructor",
    "prototype",
    "__proto__",
    "toString",
    "toLocaleString",
    "valueOf",
    "toJSON",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
];

/// Map an MCP name (which may contain `-`, `.`, `/`, spaces, or start with a digit) to a JavaScript
/// identifier. Names starting with `$` are reserved for MCP Guard's own helpers.
pub fn js_identifier(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if RESERVED.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// Give each name a unique identifier. Names are processed in sorted order so the mapping does not depend
/// on the order a server lists its tools in; a collision gets `_2`, `_3`, ... appended.
fn unique_idents<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut sorted: Vec<&str> = names.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    // Names that are already identifiers keep them: `get_issue` stays `get_issue` even when `get-issue`
    // also exists.
    sorted.sort_by_key(|name| js_identifier(name) != *name);
    let mut used = BTreeSet::new();
    sorted
        .into_iter()
        .map(|name| {
            let base = js_identifier(name);
            let mut ident = base.clone();
            let mut n = 2;
            while !used.insert(ident.clone()) {
                ident = format!("{base}_{n}");
                n += 1;
            }
            (name.to_string(), ident)
        })
        .collect()
}

impl Catalog {
    /// Build a catalog from `(server, tool names)` pairs.
    pub fn new<S: AsRef<str>, T: AsRef<str>>(servers: impl IntoIterator<Item = (S, Vec<T>)>) -> Self {
        let servers: Vec<(String, Vec<String>)> = servers
            .into_iter()
            .map(|(s, tools)| {
                (s.as_ref().to_string(), tools.iter().map(|t| t.as_ref().to_string()).collect())
            })
            .collect();
        let server_idents = unique_idents(servers.iter().map(|(s, _)| s.as_str()));
        let bound: Vec<BoundServer> = server_idents
            .into_iter()
            .map(|(name, ident)| {
                let tool_names = servers
                    .iter()
                    .filter(|(s, _)| *s == name)
                    .flat_map(|(_, t)| t.iter().map(String::as_str))
                    .collect::<Vec<_>>();
                let tools = unique_idents(tool_names)
                    .into_iter()
                    .map(|(name, ident)| BoundTool { name, ident })
                    .collect();
                BoundServer { name, ident, tools }
            })
            .collect();
        let json = serde_json::to_string(&bound).unwrap_or_else(|_| "[]".to_string());
        Catalog { servers: bound, json: json.into() }
    }

    pub fn servers(&self) -> &[BoundServer] {
        &self.servers
    }

    /// The catalog as JSON (an array of servers with their tools and identifiers).
    pub fn json(&self) -> Arc<str> {
        if self.json.is_empty() { Arc::from("[]") } else { self.json.clone() }
    }

    /// Whether the catalog has this server and tool (by their MCP names).
    pub fn contains(&self, server: &str, tool: &str) -> bool {
        self.servers.iter().any(|s| s.name == server && s.tools.iter().any(|t| t.name == tool))
    }
}

/// Hosts for tests, examples and benchmarks.
pub mod testing {
    use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

    use async_trait::async_trait;

    use super::{Catalog, ExecutionInfo, ToolError, ToolHost};

    type Handler = Arc<
        dyn Fn(
                serde_json::Value,
            ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, ToolError>> + Send>>
            + Send
            + Sync,
    >;

    /// A tool host whose tools are Rust closures.
    #[derive(Default, Clone)]
    pub struct ScriptedHost {
        tools: HashMap<(String, String), Handler>,
    }

    impl ScriptedHost {
        pub fn new() -> Self {
            Self::default()
        }

        /// Add a tool whose result is computed by an async closure.
        pub fn tool<F, Fut>(mut self, server: &str, tool: &str, f: F) -> Self
        where
            F: Fn(serde_json::Value) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<serde_json::Value, ToolError>> + Send + 'static,
        {
            self.tools.insert((server.to_string(), tool.to_string()), Arc::new(move |v| Box::pin(f(v))));
            self
        }

        /// The catalog of the tools added so far.
        pub fn catalog(&self) -> Catalog {
            let mut by_server: HashMap<&str, Vec<&str>> = HashMap::new();
            for (s, t) in self.tools.keys() {
                by_server.entry(s).or_default().push(t);
            }
            Catalog::new(by_server)
        }

        pub fn into_arc(self) -> Arc<dyn ToolHost> {
            Arc::new(self)
        }
    }

    #[async_trait]
    impl ToolHost for ScriptedHost {
        async fn call(
            &self,
            _execution: &ExecutionInfo,
            server: &str,
            tool: &str,
            arguments: serde_json::Value,
        ) -> Result<serde_json::Value, ToolError> {
            let handler = self
                .tools
                .get(&(server.to_string(), tool.to_string()))
                .cloned()
                .ok_or_else(|| ToolError::new(format!("unknown tool {server}.{tool}")))?;
            handler(arguments).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_valid_and_do_not_collide() {
        let c = Catalog::new([("git-hub", vec!["get-issue", "get_issue", "get.issue", "1st", "then", ""])]);
        let s = &c.servers()[0];
        assert_eq!(s.ident, "git_hub");
        let idents: Vec<(&str, &str)> = s.tools.iter().map(|t| (t.name.as_str(), t.ident.as_str())).collect();
        assert_eq!(
            idents,
            vec![
                ("get_issue", "get_issue"),
                ("", "_"),
                ("1st", "_1st"),
                ("get-issue", "get_issue_2"),
                ("get.issue", "get_issue_3"),
                ("then", "then_"),
            ]
        );
    }

    #[test]
    fn server_names_that_collide_get_distinct_identifiers() {
        let c = Catalog::new([("a-b", vec!["x"]), ("a_b", vec!["y"])]);
        let idents: Vec<&str> = c.servers().iter().map(|s| s.ident.as_str()).collect();
        assert_eq!(idents, vec!["a_b", "a_b_2"]);
        assert!(c.contains("a_b", "y") && !c.contains("a_b", "x"));
    }
}
