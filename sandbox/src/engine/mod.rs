//! Layer 2 of the defence: the isolate engine. An [`Engine`] runs validated code in a fresh, disposable
//! isolate under host-enforced limits and returns its [`Outcome`]. The QuickJS implementation lives in
//! [`quickjs`]; a second engine can be added behind the same trait. The OS threads that run isolates
//! ([`pool`]) confine themselves with Landlock and seccomp first ([`confine`], layer 3 in the process).

use std::sync::Arc;

use async_trait::async_trait;
use mcp_guard_crds::Limits;
use mcp_guard_tools::Catalog;

use crate::{
    host::{ExecutionInfo, ToolHost},
    outcome::Outcome,
    validator::Prepared,
};

pub mod confine;
pub mod pool;
pub mod process;
pub mod quickjs;
pub mod v8;

/// The code of an execution, as the engine receives it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Code {
    /// Validated and prepared where the engine runs (the in-process engine).
    Prepared(Prepared),
    /// The submitted source, to validate in the isolate host, with `limits.codeSize` as
    /// `max_code_bytes`: the validator's work on an input built to be slow (its parser is super-linear
    /// on some shapes) then happens in a confined process, on the execution's CPU clock, and ends with
    /// the host at the wall-time limit, like any other work the guest triggers.
    Source { source: String, max_code_bytes: usize },
}

impl From<Prepared> for Code {
    fn from(prepared: Prepared) -> Self {
        Code::Prepared(prepared)
    }
}

impl Code {
    /// The prepared code (`None` before validation).
    pub fn prepared(&self) -> Option<&Prepared> {
        match self {
            Code::Prepared(p) => Some(p),
            Code::Source { .. } => None,
        }
    }
}

/// Everything one execution needs.
#[derive(Clone)]
pub struct ExecutionRequest {
    /// The code: prepared, or the source when the engine validates ([`Engine::validates_source`]).
    pub code: Code,
    /// Limits for this execution.
    pub limits: Limits,
    /// The tools bound into the sandbox as `mcp.<server>.<tool>`.
    pub catalog: Catalog,
    /// Serves the tool calls.
    pub host: Arc<dyn ToolHost>,
    /// Who runs this execution; passed to the host with every call.
    pub execution: Arc<ExecutionInfo>,
    /// Receives console lines and tool-call events as they happen (for streaming APIs).
    pub events: Option<tokio::sync::mpsc::UnboundedSender<ExecutionEvent>>,
}

/// Something that happened during an execution, reported as it happens.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ExecutionEvent {
    Console(crate::outcome::ConsoleLine),
    ToolCallStarted { server: String, tool: String },
    ToolCallFinished(crate::outcome::ToolCallRecord),
}

/// Runs prepared code in a fresh isolate. Implementations never panic on guest behaviour, never block
/// the async runtime, and always return an outcome: limits, guest errors and engine failures all map to
/// one of its states.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// Whether this engine takes the submitted source ([`Code::Source`]) and validates it where the
    /// guest runs, rather than code the caller's process validated.
    fn validates_source(&self) -> bool {
        false
    }

    async fn execute(&self, request: ExecutionRequest) -> Outcome;
}
