//! The bindings' host side: the [`ToolHost`] that serves the sandbox's tool calls. In production the
//! host forwards to the binding proxy (`mcp-guard-binding-client`); [`NoTools`] serves a sandbox with
//! nothing bound; [`discovery::DiscoveryHost`] answers `mcp.$search`/`mcp.$describe` in front of either.
//! Tests use `testing::ScriptedHost` (feature `testing`).

pub mod discovery;

use async_trait::async_trait;
pub use mcp_guard_tools::FailureKind;

/// A tool call failed. The message is shown to the sandboxed code as the thrown error's message, so it
/// must never carry credentials or host details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct ToolError {
    /// What happened: the tool said so, or what the binding proxy refused.
    pub code: FailureKind,
    pub message: String,
}

impl ToolError {
    /// An error the tool itself reported.
    pub fn new(message: impl Into<String>) -> Self {
        Self { code: FailureKind::ToolError, message: message.into() }
    }

    /// The tool host could not be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { code: FailureKind::Unavailable, message: message.into() }
    }

    /// A failure of a given kind.
    pub fn of(code: FailureKind, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Who runs what: the identity of one execution, as the tool host and the audit log see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecutionInfo {
    /// Unique per execution.
    pub id: String,
    /// The authenticated caller.
    pub caller: String,
    /// sha256 of the submitted code, hex.
    pub code_sha256: String,
    /// The caller's bearer token, for a binding proxy that authenticates callers itself. Never
    /// serialised: it does not travel to an isolate host.
    #[serde(skip)]
    pub caller_token: Option<CallerToken>,
    /// Seeds the isolate's `Math.random`: a resumed execution gets its first run's seed, so the code
    /// takes the same path.
    #[serde(default)]
    pub seed: u64,
    /// The isolate's clock at the start, ms since the epoch (a resumed execution: its first run's).
    #[serde(default)]
    pub clock_ms: u64,
    /// The approval this execution resumes, if it is a resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

/// What the tool host answers when an execution resumes: the code to run again and its first run's
/// seed and clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub code: String,
    pub seed: u64,
    pub clock_ms: u64,
}

/// A caller's bearer token; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct CallerToken(pub String);

impl std::fmt::Debug for CallerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerToken(..)")
    }
}

impl ExecutionInfo {
    /// A new execution of `code` by `caller`, with a fresh id.
    pub fn new(caller: &str, code: &str) -> Self {
        use sha2::Digest;
        ExecutionInfo {
            id: uuid::Uuid::new_v4().to_string(),
            caller: caller.to_string(),
            code_sha256: hex::encode(sha2::Sha256::digest(code.as_bytes())),
            caller_token: None,
            seed: rand_seed(),
            clock_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
            resume: None,
        }
    }

    /// A resume of the execution paused for `approval`, by `caller`: its code, seed and clock come
    /// from the tool host ([`ToolHost::begin`]).
    pub fn resume(caller: &str, approval: &str) -> Self {
        ExecutionInfo {
            resume: Some(approval.to_string()),
            code_sha256: String::new(),
            ..Self::new(caller, "")
        }
    }
}

/// A random seed (a v4 UUID's randomness).
fn rand_seed() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[8], bytes[9]])
}

impl ExecutionInfo {
    /// The identity of the resumed run once the host answered: `code`'s digest, the first run's seed
    /// and clock.
    pub fn resumed(&self, resumed: &Resumed) -> Self {
        use sha2::Digest;
        ExecutionInfo {
            code_sha256: hex::encode(sha2::Sha256::digest(resumed.code.as_bytes())),
            seed: resumed.seed,
            clock_ms: resumed.clock_ms,
            ..self.clone()
        }
    }
}

/// Serves tool calls for the sandbox. Implementations must be cancel-safe: when an execution ends early
/// the future of an in-flight call is dropped.
#[async_trait]
pub trait ToolHost: Send + Sync + 'static {
    /// An execution starts (before validation). A host that audits must record it before returning;
    /// an error stops the execution from running. For a resume (`execution.resume`), the host answers
    /// with the code to run again; a host without approvals refuses resumes.
    async fn begin(&self, execution: &ExecutionInfo) -> Result<Option<Resumed>, ToolError> {
        match &execution.resume {
            Some(id) => Err(ToolError::of(
                FailureKind::Denied,
                format!("approval {id} is unknown: this tool host keeps no approvals"),
            )),
            None => Ok(None),
        }
    }

    /// A tool call that is the `sequence`-th call (0-based, in the order the code issued them) of the
    /// execution. Hosts that match calls by position (a binding proxy replaying a journal) override
    /// this; the default ignores the position.
    async fn call_at(
        &self,
        execution: &ExecutionInfo,
        sequence: u64,
        server: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        let _ = sequence;
        self.call(execution, server, tool, arguments).await
    }

    async fn call(
        &self,
        execution: &ExecutionInfo,
        server: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError>;

    /// Answer a discovery call (`tool` is `search` or `describe` on the reserved server `$`) right away,
    /// on the calling thread, when the host can do so cheaply from local data. The engine calls this on
    /// the isolate's thread, so the work is charged to the execution's CPU and wall-time limits and never
    /// occupies the async runtime. `None` (the default) sends the call through [`ToolHost::call`].
    fn discover(
        &self,
        _execution: &ExecutionInfo,
        _tool: &str,
        _arguments: &serde_json::Value,
    ) -> Option<Result<serde_json::Value, ToolError>> {
        None
    }

    /// The execution of `code` ended with `outcome`. For `approval_required`, the host records the
    /// approval and answers with it; an error then means no approval was recorded.
    async fn end(
        &self,
        _execution: &ExecutionInfo,
        _outcome: &crate::outcome::Outcome,
        _code: &str,
    ) -> Result<Option<crate::outcome::ApprovalRequest>, ToolError> {
        Ok(None)
    }
}

/// The host of a sandbox with no MCP server bound: every call is refused as `denied`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTools;

#[async_trait]
impl ToolHost for NoTools {
    async fn call(
        &self,
        _execution: &ExecutionInfo,
        server: &str,
        tool: &str,
        _arguments: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        Err(ToolError::of(
            FailureKind::Denied,
            format!("tool {server}.{tool} is not bound: no MCP server is configured"),
        ))
    }
}

/// Hosts for tests, examples and benchmarks (feature `testing`; never in the `mcp-guard` binary).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

    use async_trait::async_trait;

    use mcp_guard_tools::Catalog;

    use super::{ExecutionInfo, ToolError, ToolHost};

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
