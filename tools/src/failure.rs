//! What can go wrong with one tool call, as a closed set: the binding proxy decides it, the sandbox
//! shows it to the code (`McpToolError.code`), the outcome and the audit log record it.

use std::fmt;

/// Why a tool call did not return a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The tool said so (`isError`), or the call failed upstream.
    ToolError,
    /// The server or tool is not bound by the policy.
    Denied,
    /// The execution used up its tool-call quota.
    QuotaExceeded,
    /// The execution used up its argument or result byte budget.
    BudgetExceeded,
    /// A rate limit applies.
    RateLimited,
    /// The call took longer than the server's call timeout or the execution's remaining time.
    Timeout,
    /// The server (or the binding proxy) cannot be reached.
    Unavailable,
    /// The tool's definition changed after it was pinned and the policy refuses changed tools.
    DefinitionChanged,
    /// The upstream address is refused (loopback, link-local, metadata, private, or not allowed).
    AddressRefused,
    /// The execution id is unknown to the binding proxy, or already closed.
    UnknownExecution,
    /// The tool needs a person's approval: the execution pauses (the code never sees this failure;
    /// the execution ends as `approval_required`).
    ApprovalRequired,
    /// The approval of this call was denied; the code sees it as an `McpToolError` it may handle.
    ApprovalDenied,
    /// A resumed execution issued a call that does not match the recorded one: it ends (the code
    /// never sees this failure) as `threw` with a `ReplayDiverged` error.
    ReplayDiverged,
}

impl FailureKind {
    /// Every kind, for tests and exhaustive mappings.
    pub const ALL: [FailureKind; 13] = [
        FailureKind::ToolError,
        FailureKind::Denied,
        FailureKind::QuotaExceeded,
        FailureKind::BudgetExceeded,
        FailureKind::RateLimited,
        FailureKind::Timeout,
        FailureKind::Unavailable,
        FailureKind::DefinitionChanged,
        FailureKind::AddressRefused,
        FailureKind::UnknownExecution,
        FailureKind::ApprovalRequired,
        FailureKind::ApprovalDenied,
        FailureKind::ReplayDiverged,
    ];

    /// The stable code shown to code, callers and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ToolError => "tool_error",
            FailureKind::Denied => "denied",
            FailureKind::QuotaExceeded => "quota_exceeded",
            FailureKind::BudgetExceeded => "budget_exceeded",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Timeout => "timeout",
            FailureKind::Unavailable => "unavailable",
            FailureKind::DefinitionChanged => "definition_changed",
            FailureKind::AddressRefused => "address_refused",
            FailureKind::UnknownExecution => "unknown_execution",
            FailureKind::ApprovalRequired => "approval_required",
            FailureKind::ApprovalDenied => "approval_denied",
            FailureKind::ReplayDiverged => "replay_diverged",
        }
    }

    /// Failures that end the execution instead of reaching the code.
    pub fn ends_execution(self) -> bool {
        matches!(self, FailureKind::ApprovalRequired | FailureKind::ReplayDiverged)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
