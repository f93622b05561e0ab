//! The outcome of one execution: one type, serialised as JSON with a stable schema
//! (`sandbox/outcome.schema.json`, checked by a test). Every execution ends in exactly one of four
//! states, and whenever code ran the outcome lists the tool calls it made, so a caller knows which side
//! effects may have happened.

use mcp_guard_crds::LimitKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::validator::Rejection;

/// What happened to one submitted piece of code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// How the execution ended.
    #[serde(flatten)]
    pub status: Status,
    /// Console lines the code printed, in order.
    pub console: Vec<ConsoleLine>,
    /// Every tool call the code started, in the order it started them.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Resource use of the execution.
    pub metrics: Metrics,
}

/// How an execution ended. Serialised with an `outcome` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Status {
    /// Validation refused the code; it did not run.
    Rejected { rejection: Rejection },
    /// The code ran and returned this JSON value (`null` when it returned nothing).
    Completed { result: serde_json::Value },
    /// The code ran and threw (or returned a value that is not JSON).
    Threw { error: ThrownError },
    /// The host stopped the code because it exceeded a limit.
    LimitExceeded {
        limit: LimitKind,
        /// One line naming the limit and its configured value.
        message: String,
    },
    /// The code called a tool that needs a person's approval. The execution stopped there (calls
    /// already in flight were let finish and recorded); once the approval is decided, the same caller
    /// resumes it with the approval's id and the code runs again from the start, with the calls that
    /// completed answered from the binding proxy's journal.
    ApprovalRequired { approval: Box<ApprovalRequest> },
}

impl Status {
    /// The outcome tag as it appears in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Status::Rejected { .. } => "rejected",
            Status::Completed { .. } => "completed",
            Status::Threw { .. } => "threw",
            Status::LimitExceeded { .. } => "limit_exceeded",
            Status::ApprovalRequired { .. } => "approval_required",
        }
    }
}

/// A pending approval, as the binding proxy recorded it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    /// The approval's id: what an approver decides and what the caller resumes.
    pub id: String,
    /// The policy whose approvers decide.
    pub policy: String,
    /// The caller whose code asked (the only one that may resume).
    pub requester: String,
    /// When it was requested and until when it can be decided (RFC 3339).
    pub created_at: String,
    pub expires_at: String,
    /// The calls waiting for approval: calls the code issued together (`Promise.all`) are in one approval.
    pub calls: Vec<ApprovalCall>,
}

/// One call waiting for approval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalCall {
    /// Server name as configured.
    pub server: String,
    pub tool: String,
    /// The arguments, as the approver sees them (secrets the binding proxy holds are redacted).
    pub arguments: serde_json::Value,
}

/// An error thrown by sandboxed code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThrownError {
    /// The error's `name` (`TypeError`, `McpToolError`, ...), or `NonError` when a non-Error value was thrown.
    pub name: String,
    /// The error's message.
    pub message: String,
    /// Stack frames inside the submitted code only, as `at fn (sandbox:line:column)` lines that refer to
    /// the submitted source. Never contains host paths.
    pub stack: String,
}

impl ThrownError {
    /// The error cut to fit in `room` bytes (what the output limit leaves after the console output):
    /// name, message and stack together, each cut part ending in a marker naming `limit`. The name
    /// gets at most a quarter of the room, the message what the name leaves, the stack the rest.
    /// Cuts fall on char boundaries; an error that fits is returned unchanged.
    pub fn fit(mut self, room: usize, limit: impl std::fmt::Display) -> Self {
        if self.name.len() + self.message.len() + self.stack.len() <= room {
            return self;
        }
        let marker = format!("… (cut: the output limit is {limit})");
        cut(&mut self.name, room / 4, &marker);
        let mut left = room - self.name.len();
        cut(&mut self.message, left, &marker);
        left -= self.message.len();
        cut(&mut self.stack, left, &marker);
        self
    }
}

/// Cuts `s` to at most `room` bytes on a char boundary, ending in `marker` when it fits.
fn cut(s: &mut String, room: usize, marker: &str) {
    if s.len() <= room {
        return;
    }
    let keep = room.checked_sub(marker.len());
    let mut end = keep.unwrap_or(room);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    if keep.is_some() {
        s.push_str(marker);
    }
}

/// One console line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleLine {
    pub level: ConsoleLevel,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleLevel {
    Debug,
    Log,
    Info,
    Warn,
    Error,
}

/// One tool call the code started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallRecord {
    /// Server name as configured (not the JavaScript identifier).
    pub server: String,
    /// Tool name as the server reports it.
    pub tool: String,
    /// Time from the call until its result arrived (or until it was cancelled).
    pub duration_ms: f64,
    pub status: ToolCallStatus,
    /// The error message, when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the call failed: `tool_error` (the tool said so) or what the binding proxy refused
    /// (`denied`, `quota_exceeded`, `budget_exceeded`, `rate_limited`, `timeout`, `unavailable`,
    /// `definition_changed`, `address_refused`, `approval_required`, `approval_denied`,
    /// `replay_diverged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallStatus {
    /// The tool returned a result.
    Ok,
    /// The tool (or the binding) returned an error.
    Error,
    /// The execution ended before the result arrived; the call may or may not have taken effect.
    Cancelled,
}

/// Resource use of one execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// CPU time the isolate spent, in milliseconds.
    pub cpu_ms: f64,
    /// Wall-clock time of the execution, in milliseconds.
    pub wall_ms: f64,
    /// Highest heap size of the isolate, in bytes.
    pub peak_heap_bytes: u64,
}

impl Outcome {
    /// An outcome for code that was rejected before it ran.
    pub fn rejected(rejection: Rejection) -> Self {
        Outcome {
            status: Status::Rejected { rejection },
            console: Vec::new(),
            tool_calls: Vec::new(),
            metrics: Metrics::default(),
        }
    }

    /// An execution that could not start because the host failed (not the code's doing).
    pub fn host_failure(message: String) -> Self {
        Outcome {
            status: Status::Threw {
                error: ThrownError { name: "InternalError".into(), message, stack: String::new() },
            },
            console: Vec::new(),
            tool_calls: Vec::new(),
            metrics: Metrics::default(),
        }
    }

    /// Exit code of `mcp-guard exec` for this outcome: 0 only for `completed`; 3 rejected, 4 threw,
    /// 5 limit_exceeded, 6 approval_required.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            Status::Completed { .. } => 0,
            Status::Rejected { .. } => 3,
            Status::Threw { .. } => 4,
            Status::LimitExceeded { .. } => 5,
            Status::ApprovalRequired { .. } => 6,
        }
    }

    /// The JSON schema of the outcome.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Outcome)).unwrap_or_default()
    }
}
