//! `McpApproval`: a person's approval of the tool calls a paused execution wants to make (the tools a
//! policy lists in `requireApproval`), and `McpApprovalJournal`, the sealed state of that execution.
//!
//! The policy's binding proxy creates both, with its own service account; a person decides with
//! `kubectl patch` (`spec.decision`); the operator turns the decision into `status` and deletes old
//! approvals. Who may do what is the API server's to enforce, not the proxy's: the chart's
//! ValidatingAdmissionPolicy `<release>-approval-decisions` lets only the policy's binding proxy create
//! an approval, only an approver in `spec.approvers` decide (in their own name, and not on their own
//! request unless `spec.allowSelfApproval`), and only the binding proxy and the operator write
//! `status`; the rules of this CRD keep the request immutable and a decision final.

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::approvals::Approvers;

/// The most tool calls one approval covers.
pub const MAX_CALLS: usize = 64;
/// The longest sealed journal, in base64 characters (under the API server's 1.5 MiB object limit).
pub const MAX_SEALED: usize = 1_400_000;

/// A pending approval of one paused execution's sensitive tool calls. Created by the policy's binding
/// proxy; decided by an approver with
/// `kubectl patch mcpapproval <name> --type merge -p '{"spec":{"decision":{"verdict":"Approved","by":"<you>"}}}'`.
/// Everything but `decision` is immutable, and a decision is final.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mcpguard.io",
    version = "v1alpha1",
    kind = "McpApproval",
    plural = "mcpapprovals",
    singular = "mcpapproval",
    shortname = "mga",
    namespaced,
    status = "McpApprovalStatus",
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".spec.policy"}"#,
    printcolumn = r#"{"name":"Tool","type":"string","jsonPath":".spec.summary"}"#,
    printcolumn = r#"{"name":"Requester","type":"string","jsonPath":".spec.requester"}"#,
    printcolumn = r#"{"name":"Decision","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.policy == oldSelf.policy && self.executionId == oldSelf.executionId && self.requester == oldSelf.requester && self.summary == oldSelf.summary && self.expiresAt == oldSelf.expiresAt && self.allowSelfApproval == oldSelf.allowSelfApproval && self.approvers == oldSelf.approvers",
        "message": "an approval's request is immutable: only spec.decision may be set, once"
    },
    {
        "rule": "self.calls == oldSelf.calls",
        "message": "spec.calls is immutable: the calls an approver sees are the calls that run"
    },
    {
        "rule": "!has(oldSelf.decision) || (has(self.decision) && self.decision == oldSelf.decision)",
        "message": "this approval is already decided: a decision cannot be changed or withdrawn"
    },
    {
        "rule": "!has(self.approvers.serviceAccounts) || self.approvers.serviceAccounts.all(s, s.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$'))",
        "message": "spec.approvers.serviceAccounts: each entry is namespace/name"
    }
]))]
pub struct McpApprovalSpec {
    /// The McpGuardPolicy (in this namespace) whose binding proxy asks.
    #[schemars(length(min = 1, max = 253))]
    pub policy: String,
    /// The paused execution.
    #[schemars(length(min = 1, max = 128))]
    pub execution_id: String,
    /// Who called the executor: the identity whose code wants to make the calls, such as
    /// `system:serviceaccount:agents:bot`.
    #[schemars(length(min = 1, max = 512))]
    pub requester: String,
    /// The calls in short, for `kubectl get`: `<server>.<tool>`, with `+N` when there are more.
    #[schemars(length(max = 256))]
    pub summary: String,
    /// The tool calls waiting, in the order the code made them.
    #[schemars(length(min = 1, max = 64))]
    pub calls: Vec<ApprovalCall>,
    /// When the approval expires without a decision (RFC 3339). The operator then marks it `Expired`,
    /// and it can no longer be decided.
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: String,
    /// The requester may decide its own approval (the policy's `approvals.allowSelfApproval`).
    #[serde(default)]
    pub allow_self_approval: bool,
    /// Who may decide: the policy's approvers, service accounts as `namespace/name`.
    #[serde(default)]
    pub approvers: Approvers,
    /// The decision, set by an approver. Final once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "decision_schema")]
    pub decision: Option<ApprovalDecision>,
}

/// One tool call waiting for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalCall {
    /// Its position among the execution's tool calls.
    pub sequence: u64,
    /// The bound server's name in the sandbox.
    #[schemars(length(min = 1, max = 63))]
    pub server: String,
    /// The tool.
    #[schemars(length(min = 1, max = 128))]
    pub tool: String,
    /// The arguments the code passes, as the tool will receive them.
    #[schemars(schema_with = "any_object")]
    pub arguments: Map<String, Value>,
    /// SHA-256 (hex) of the arguments as the binding proxy will send them; the proxy refuses to run a
    /// call whose arguments no longer match.
    #[serde(rename = "argumentsSha256")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub arguments_sha256: String,
}

/// A decision is there or not: never an explicit `null`, which would read as a decision without a
/// verdict (so not the `nullable` schema of an `Option`).
fn decision_schema(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<ApprovalDecision>()
}

fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// An approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDecision {
    /// `Approved` or `Denied`.
    pub verdict: Verdict,
    /// The approver's own user name, as the API server knows it (`kubectl auth whoami`); admission
    /// refuses any other.
    #[schemars(length(min = 1, max = 512))]
    pub by: String,
    /// Why, for the requester and the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

/// What an approver decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Verdict {
    Approved,
    Denied,
}

/// Where an approval stands. Written by the operator (the decision, expiry) and the binding proxy
/// (`Used`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpApprovalStatus {
    /// `Pending` (also when absent), `Approved`, `Denied`, `Expired` (no decision in time) or `Used`
    /// (approved, and the execution resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ApprovalPhase>,
    /// Who decided (`spec.decision.by`, which admission checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When the operator saw the decision (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub decided_at: Option<String>,
    /// The execution that used the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
    /// When it was used (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub used_at: Option<String>,
    /// What happened, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub message: Option<String>,
}

impl McpApprovalStatus {
    /// The phase, `Pending` when none is written yet.
    pub fn phase(&self) -> ApprovalPhase {
        self.phase.unwrap_or(ApprovalPhase::Pending)
    }
}

/// The phases of an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalPhase {
    Pending,
    Approved,
    Denied,
    Expired,
    Used,
}

impl ApprovalPhase {
    /// As written in `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalPhase::Pending => "Pending",
            ApprovalPhase::Approved => "Approved",
            ApprovalPhase::Denied => "Denied",
            ApprovalPhase::Expired => "Expired",
            ApprovalPhase::Used => "Used",
        }
    }
}

impl From<Verdict> for ApprovalPhase {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Approved => ApprovalPhase::Approved,
            Verdict::Denied => ApprovalPhase::Denied,
        }
    }
}

/// The sealed (encrypted and authenticated) state of the execution an approval paused, which the
/// binding proxy needs to resume it. Created by the binding proxy with an owner reference to its
/// McpApproval, so it is deleted with it. Only the binding proxy holds the key.
#[derive(CustomResource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mcpguard.io",
    version = "v1alpha1",
    kind = "McpApprovalJournal",
    plural = "mcpapprovaljournals",
    singular = "mcpapprovaljournal",
    shortname = "mgaj",
    namespaced
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self == oldSelf", "message": "a journal is immutable"}
]))]
pub struct McpApprovalJournalSpec {
    /// The McpApproval (in this namespace) this journal belongs to.
    #[schemars(length(min = 1, max = 253))]
    pub approval: String,
    /// The sealed journal, base64.
    #[schemars(length(max = 1400000), regex(pattern = r"^[A-Za-z0-9+/]*={0,2}$"))]
    pub sealed: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_match_the_schema() {
        let crd = serde_json::to_value(<McpApproval as kube::CustomResourceExt>::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["properties"]["calls"]["maxItems"], MAX_CALLS);
        let args = &spec["properties"]["calls"]["items"]["properties"]["arguments"];
        assert_eq!(args["x-kubernetes-preserve-unknown-fields"], true);
        let journal = serde_json::to_value(<McpApprovalJournal as kube::CustomResourceExt>::crd()).unwrap();
        let sealed = &journal["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["sealed"];
        assert_eq!(sealed["maxLength"], MAX_SEALED);
    }

    #[test]
    fn an_approval_reads_as_the_proxy_writes_it() {
        let a: McpApproval = serde_json::from_value(serde_json::json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpApproval",
            "metadata": {"name": "x", "namespace": "team-a"},
            "spec": {
                "policy": "agents", "executionId": "e1", "requester": "system:serviceaccount:agents:bot",
                "summary": "github.delete_repo", "expiresAt": "2030-01-01T00:00:00Z",
                "calls": [{"sequence": 3, "server": "github", "tool": "delete_repo",
                           "arguments": {"repo": "a/b", "nested": {"n": 1}}, "argumentsSha256": "00"}],
                "approvers": {"users": ["alice"], "serviceAccounts": ["ops/reviewer"]},
                "decision": {"verdict": "Approved", "by": "alice"}
            },
            "status": {"phase": "Approved", "decidedBy": "alice"}
        }))
        .unwrap();
        assert_eq!(a.spec.calls[0].arguments["nested"]["n"], 1);
        assert_eq!(a.spec.decision.as_ref().unwrap().verdict, Verdict::Approved);
        assert!(!a.spec.allow_self_approval);
        assert_eq!(a.status.unwrap().phase(), ApprovalPhase::Approved);
        assert_eq!(McpApprovalStatus::default().phase(), ApprovalPhase::Pending);
    }
}
