//! The Kubernetes custom resources of MCP Guard, group `mcpguard.io`, version `v1alpha1`:
//! [`McpServer`] (how to reach one upstream MCP server) and [`McpGuardPolicy`] (which servers a
//! sandbox may call, under which limits, for which callers). The operator turns them into executor
//! deployments; the policy is rendered into the same [`crate::GuardConfig`] that local mode reads.
//! [`McpApproval`] and [`McpApprovalJournal`] are written by binding proxies: a paused execution's
//! request for approval, which a person decides, and its sealed state.
//!
//! Validation happens twice: the schema and its CEL rules (`x-kubernetes-validations`) reject bad specs at
//! `kubectl apply` time, and the operator re-checks everything it renders with
//! [`crate::GuardConfig::validate`], so an object that slipped past an older CRD still cannot produce a
//! bad config.

mod cel;
pub mod mcp_approval;
pub mod mcp_guard_policy;
pub mod mcp_server;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
pub use mcp_approval::{
    ApprovalCall, ApprovalDecision, ApprovalPhase, McpApproval, McpApprovalJournal, McpApprovalJournalSpec,
    McpApprovalSpec, McpApprovalStatus, Verdict,
};
pub use mcp_guard_policy::{
    AllowedCallers, Autoscaling, BindingProxySettings, CallerAuth, EngineKind, ExecutorSettings,
    JournalKeyRef, McpGuardPolicy, McpGuardPolicySpec, McpGuardPolicyStatus, PolicyApprovals, ServerBinding,
    ServiceAccountRef, ToolRules,
};
pub use mcp_server::{
    DeploySpec, EgressPeer, EgressPort, HeaderEntry, McpServer, McpServerSpec, McpServerStatus,
    SecretKeySelector, ServerInfo, ToolSummary,
};

/// The API group of every MCP Guard resource.
pub const GROUP: &str = "mcpguard.io";
