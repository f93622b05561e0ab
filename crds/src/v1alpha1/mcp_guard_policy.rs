//! `McpGuardPolicy`: which servers a sandbox may call, under which limits, for which callers. The operator
//! runs one executor Deployment per policy.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::approvals::Approvers;
use crate::quantity::DurationSpec;
use crate::{binding::BindingSettings, limits::Limits};

/// A sandbox policy: the servers whose tools are bound, the limits of every execution, rate limits and
/// audit, who may call, and how the executor runs. The operator runs it as two Deployments, each behind
/// a Service and locked down by a NetworkPolicy: the executor (where untrusted code runs: no credential,
/// no Secret, and no egress but to its own binding proxy) and the binding proxy (which holds the
/// credentials and alone reaches the bound servers).
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mcpguard.io",
    version = "v1alpha1",
    kind = "McpGuardPolicy",
    plural = "mcpguardpolicies",
    singular = "mcpguardpolicy",
    shortname = "mgp",
    namespaced,
    status = "McpGuardPolicyStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint"}"#,
    printcolumn = r#"{"name":"Servers","type":"integer","jsonPath":".status.serverCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.servers.all(s, self.servers.exists_one(o, (has(o.alias) ? o.alias : o.name) == (has(s.alias) ? s.alias : s.name)))",
        "message": "every bound server needs a distinct name in the sandbox: give one of them an alias"
    },
    {
        "rule": "!self.servers.exists(s, has(s.tools) && has(s.tools.requireApproval) && size(s.tools.requireApproval) > 0) || (has(self.approvals) && has(self.approvals.journalKey) && has(self.approvals.approvers) && ((has(self.approvals.approvers.users) && size(self.approvals.approvers.users) > 0) || (has(self.approvals.approvers.groups) && size(self.approvals.approvers.groups) > 0) || (has(self.approvals.approvers.serviceAccounts) && size(self.approvals.approvers.serviceAccounts) > 0)))",
        "message": "tools in requireApproval need spec.approvals with at least one approver (approvers.users, groups or serviceAccounts) and a journalKey"
    }
]))]
pub struct McpGuardPolicySpec {
    /// The McpServers (in this namespace) whose tools sandboxed code may call, as
    /// `mcp.<alias or name>.<tool>(...)`.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub servers: Vec<ServerBinding>,
    /// The isolate engine.
    #[serde(default)]
    pub engine: EngineKind,
    /// Hard limits of every execution, enforced by the host. Sizes are Kubernetes quantities (`64Mi`),
    /// durations read like `30s` or `250ms`.
    #[serde(default)]
    #[schemars(transform = super::cel::limits_rules)]
    pub limits: Limits,
    /// Per-execution byte budgets for tool calls, rate limits and audit, enforced by the binding proxy.
    #[serde(default)]
    pub binding: BindingSettings,
    /// Who may call the executor. Empty: the service accounts of this namespace only.
    #[serde(default)]
    pub callers: AllowedCallers,
    /// How the executor runs: replicas, autoscaling, resources, image.
    #[serde(default)]
    pub executor: ExecutorSettings,
    /// How the binding proxy runs: replicas and resources.
    #[serde(default)]
    pub binding_proxy: BindingProxySettings,
    /// Approvals of the tools listed in `servers[].tools.requireApproval`: who may decide, how long a
    /// request waits, how long decided ones are kept. Required when any server lists such a tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<PolicyApprovals>,
}

/// How calls of `requireApproval` tools are approved. The binding proxy pauses the execution and
/// records an `McpApproval` in the policy's namespace (`kubectl get mga`); an approver decides with
/// `kubectl patch`, which the API server admits only from the approvers listed here; the execution then
/// resumes (or the call is refused). The paused execution's state is kept, sealed with `journalKey`, in
/// an `McpApprovalJournal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "duration(self.ttl.replace(' ', '')) > duration('0s')",
        "message": "approvals.ttl must be longer than zero"
    },
    {
        "rule": "duration(self.retention.replace(' ', '')) >= duration(self.ttl.replace(' ', ''))",
        "message": "approvals.retention must not be shorter than approvals.ttl: a decided approval can be resumed for one more ttl"
    },
    {
        "rule": "!has(self.approvers.serviceAccounts) || self.approvers.serviceAccounts.all(s, s.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-.a-z0-9]*[a-z0-9])?$'))",
        "message": "approvals.approvers.serviceAccounts: each entry is a service account name (in the policy's namespace) or namespace/name"
    }
]))]
pub struct PolicyApprovals {
    /// Who may decide: user names (`users`), members of `groups`, and `serviceAccounts` (a name in the
    /// policy's namespace, or `namespace/name`). The API server checks the deciding user against this
    /// list, as each McpApproval carries it.
    #[serde(default)]
    pub approvers: Approvers,
    /// How long a request waits for a decision; then it is `Expired` and the call is refused.
    #[serde(default = "default_approval_ttl")]
    #[schemars(extend("default" = "1h"))]
    pub ttl: DurationSpec,
    /// How long decided, expired and used approvals are kept before the operator deletes them (counted
    /// from the last of the decision, the use and the expiry). At least `ttl`: a decided approval can be
    /// resumed for one more `ttl`.
    #[serde(default = "default_approval_retention")]
    #[schemars(extend("default" = "24h"))]
    pub retention: DurationSpec,
    /// Let the requester decide its own request. Off by default: an agent must not be able to approve
    /// what its own code asked for.
    #[serde(default)]
    pub allow_self_approval: bool,
    /// The Secret key (32 bytes as 64 hex digits) that seals the paused executions' journals. Mounted
    /// into the binding proxy only; create it before the policy, for example with
    /// `kubectl create secret generic <name> --from-literal=key=$(openssl rand -hex 32)`.
    pub journal_key: JournalKeyRef,
}

fn default_approval_ttl() -> DurationSpec {
    DurationSpec::secs(3600)
}

fn default_approval_retention() -> DurationSpec {
    DurationSpec::secs(24 * 3600)
}

/// A key of a Secret in the policy's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.key != '.' && !self.key.startsWith('..')",
    "message": "journalKey.key must be a file name: not `.`, and not starting with `..`"
}]))]
pub struct JournalKeyRef {
    /// The Secret's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: String,
    /// The key within the Secret.
    #[serde(default = "default_journal_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_journal_key() -> String {
    "key".into()
}

/// How the binding proxy runs. It always runs the operator's image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingProxySettings {
    /// Number of binding-proxy pods. With more than one, a PodDisruptionBudget keeps one available, and
    /// each enforces an equal share of `binding.rateLimits` (so together they never allow more; each
    /// rate needs at least this many requests).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 20))]
    pub replicas: i32,
    /// Compute resources of the binding-proxy container. Default: `executor.proxyResources`, else
    /// requests 50m CPU, 64Mi memory; limit 256Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for BindingProxySettings {
    fn default() -> Self {
        BindingProxySettings { replicas: 1, resources: None }
    }
}

/// A HorizontalPodAutoscaler for the executor, on CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.minReplicas <= self.maxReplicas",
    "message": "minReplicas must not be larger than maxReplicas"
}]))]
pub struct Autoscaling {
    #[schemars(range(min = 1, max = 50))]
    pub min_replicas: i32,
    #[schemars(range(min = 1, max = 50))]
    pub max_replicas: i32,
    /// Average CPU use, in percent of the executor container's CPU request, the autoscaler aims at.
    /// (Spelled as in the HorizontalPodAutoscaler API.)
    #[serde(default = "default_cpu_target", rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 10, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_cpu_target() -> i32 {
    70
}

/// One bound server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerBinding {
    /// The McpServer's name, in the policy's namespace.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The name sandboxed code uses (`mcp.<alias>.<tool>`). Default: `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z][a-z0-9_-]*$"))]
    pub alias: Option<String>,
    /// Narrows the McpServer's own tool lists for this policy.
    #[serde(default)]
    pub tools: ToolRules,
}

/// Per-policy tool rules. A name matches an entry exactly, or a `prefix*` entry by prefix. Deny wins.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.requireApproval.all(t, (size(self.allow) == 0 || self.allow.exists(a, a == t || (a.endsWith('*') && t.startsWith(a.substring(0, size(a) - 1))))) && !self.deny.exists(d, d == t || (d.endsWith('*') && t.startsWith(d.substring(0, size(d) - 1)))))",
    "message": "every tool in requireApproval must be an allowed tool: matched by allow (or allow empty) and not matched by deny"
}]))]
pub struct ToolRules {
    /// Only these tools are bound. Empty: every tool the McpServer allows.
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)))]
    pub allow: Vec<String>,
    /// These tools are never bound.
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)))]
    pub deny: Vec<String>,
    /// Tools whose every call waits for a person's approval: the binding proxy pauses the execution,
    /// records an McpApproval and resumes once an approver (`spec.approvals`) decided; a denied or
    /// expired request refuses the call. Each must be an allowed tool; needs `spec.approvals`.
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(min = 1, max = 128)))]
    pub require_approval: Vec<String>,
}

/// The isolate engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum EngineKind {
    /// A fresh QuickJS runtime per execution.
    #[default]
    #[serde(rename = "quickjs")]
    QuickJs,
}

/// Who may call the executor. A caller must pass both the NetworkPolicy (its pod's namespace) and
/// authentication (its service account).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.namespaceSelector) || (has(self.namespaceSelector.matchLabels) && size(self.namespaceSelector.matchLabels) > 0) || (has(self.namespaceSelector.matchExpressions) && size(self.namespaceSelector.matchExpressions) > 0)",
    "message": "callers.namespaceSelector must select something: an empty selector matches every namespace; leave it out to admit the namespaces of serviceAccounts"
}]))]
pub struct AllowedCallers {
    /// Service accounts allowed to call (with `auth: serviceAccountToken`, the identities the executor
    /// admits). Empty: every service account of the policy's own namespace, and no other. Their
    /// namespaces are admitted by the NetworkPolicy.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub service_accounts: Vec<ServiceAccountRef>,
    /// More namespaces whose pods may connect, at the network level only: it never admits an identity
    /// (with `auth: serviceAccountToken` callers must still be in `serviceAccounts`). Must not be empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// How callers authenticate.
    #[serde(default)]
    pub auth: CallerAuth,
}

/// A service account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountRef {
    /// Its namespace (a DNS label).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// Its name (a DNS subdomain); `*` means every service account of the namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$")
    )]
    pub name: String,
}

/// How callers authenticate to the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum CallerAuth {
    /// A service-account token for this policy's audience, checked with the TokenReview API. The
    /// executor container (only) gets its own service-account token to call TokenReview.
    #[default]
    #[serde(rename = "serviceAccountToken")]
    ServiceAccountToken,
    /// No authentication: the NetworkPolicy alone decides. For tests.
    #[serde(rename = "none")]
    None,
}

/// How the executor runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorSettings {
    /// Number of executor pods. With more than one, a PodDisruptionBudget keeps one available.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: i32,
    /// Compute resources of the executor container. Default: requests 100m CPU, 128Mi memory; limit
    /// 1Gi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Compute resources of the binding proxy, when `bindingProxy.resources` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_resources: Option<ResourceRequirements>,
    /// Scale the executor on CPU with a HorizontalPodAutoscaler between `minReplicas` and
    /// `maxReplicas` (`replicas` is then ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// The `mcp-guard` image. Default: the operator's `--executor-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
}

fn default_replicas() -> i32 {
    1
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            replicas: 1,
            resources: None,
            proxy_resources: None,
            autoscaling: None,
            image: None,
        }
    }
}

/// What the operator observed about a policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpGuardPolicyStatus {
    /// `Ready`, `ResolvedRefs` and `Available`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The executor's in-cluster gRPC endpoint, `<service>.<namespace>.svc:9090`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Executor pods ready to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The sandbox names of the bound servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound_servers: Vec<String>,
    /// Number of entries in `boundServers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_count: Option<i32>,
    /// The hash of the rendered config and referenced Secrets the pods run with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}
