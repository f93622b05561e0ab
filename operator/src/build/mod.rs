//! Pure builders: from a spec (and what the reconciler dereferenced) to the Kubernetes objects the
//! operator applies. No client here, so every builder is unit-tested from YAML fixtures.

pub mod approvals;
pub mod binding_proxy;
pub mod config;
pub mod deployed_server;
pub mod executor;
pub mod network;
pub mod token_review;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Capabilities, SeccompProfile, SecurityContext};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

/// Every object the operator creates carries this `app.kubernetes.io/managed-by` value.
pub const MANAGER: &str = "mcp-guard-operator";
/// Label of executor pods: the policy they serve.
pub const POLICY_LABEL: &str = "mcpguard.io/policy";
/// Label of a deployed server's pods: the McpServer they run.
pub const SERVER_LABEL: &str = "mcpguard.io/server";
/// Prefix of the labels an executor pod carries for each server its policy binds
/// (`bind.mcpguard.io/<server>: "true"`); a deployed server's NetworkPolicy admits exactly those pods.
pub const BIND_LABEL_PREFIX: &str = "bind.mcpguard.io/";
/// Pod-template annotation: hash of the rendered config and the referenced Secrets' resourceVersions.
pub const CONFIG_HASH_ANNOTATION: &str = "mcpguard.io/config-hash";

/// Operator-wide settings the builders need (from the command line and the cluster). Most are what a
/// cluster admin decides for every tenant (chart values); a namespace tenant cannot change them.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The `mcp-guard` image of executor pods, and always the image of their binding-proxy container
    /// (the container that holds the Secrets: no policy chooses its image).
    pub executor_image: String,
    /// Image prefixes a policy may name in `spec.executor.image` besides `executor_image`.
    pub allowed_executor_images: Vec<String>,
    /// Image prefixes a deployed McpServer may use. Empty: no server may be deployed.
    pub allowed_server_images: Vec<String>,
    /// What egress peers may open.
    pub egress: EgressRules,
    /// Whether a policy may run its executor without caller authentication (`callers.auth: none`).
    pub allow_unauthenticated: bool,
    /// The ClusterRole (`tokenreviews: create` only) an executor's ServiceAccount is bound to for
    /// TokenReview auth.
    pub token_review_role: String,
    /// The ClusterRole (McpApprovals and their journals, for the binding proxy) a policy's binding-proxy
    /// ServiceAccount is bound to, in the policy's namespace, when the policy has `approvals`.
    pub approvals_role: String,
    /// Namespaces the operator never creates anything in.
    pub reserved_namespaces: Vec<String>,
    /// Where pods reach the Kubernetes API (for TokenReview): the `kubernetes` Service's ClusterIP and
    /// port, and its endpoints' addresses and port (NetworkPolicy sees the translated address).
    pub api_server: Vec<(String, i32)>,
    /// The operator's own service account, when known. Executors with TokenReview auth then admit it
    /// as a discovery caller (ListTools and DescribeTools only, never Execute), and their NetworkPolicy
    /// admits the operator's pods on the gRPC port.
    pub operator: Option<OperatorIdentity>,
    /// Labels of the operator's pods, for that NetworkPolicy rule.
    pub operator_pod_labels: BTreeMap<String, String>,
}

/// The limits on McpServer egress peers.
#[derive(Debug, Clone, PartialEq)]
pub struct EgressRules {
    /// Shortest IPv4 prefix a peer may have.
    pub min_prefix_v4: u8,
    /// Shortest IPv6 prefix a peer may have.
    pub min_prefix_v6: u8,
    /// The cluster's pod and Service ranges: excepted from every peer that contains them, like
    /// [`ALWAYS_EXCEPTED`].
    pub cluster_cidrs: Vec<ipnet::IpNet>,
}

impl Default for EgressRules {
    fn default() -> Self {
        EgressRules { min_prefix_v4: 16, min_prefix_v6: 32, cluster_cidrs: Vec::new() }
    }
}

/// Ranges no egress peer ever opens: link-local (which holds the cloud metadata endpoints at
/// 169.254.169.254 and fd00:ec2::254), loopback and the unspecified block.
pub const ALWAYS_EXCEPTED: &[&str] =
    &["169.254.0.0/16", "127.0.0.0/8", "0.0.0.0/8", "fe80::/10", "fd00:ec2::254/128", "::1/128"];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            executor_image: "mcp-guard.local/mcp-guard:0.1.0".into(),
            allowed_executor_images: Vec::new(),
            allowed_server_images: Vec::new(),
            egress: EgressRules::default(),
            allow_unauthenticated: false,
            token_review_role: "mcp-guard-tokenreview".into(),
            approvals_role: "mcp-guard-approvals-proxy".into(),
            reserved_namespaces: ["kube-system", "kube-public", "kube-node-lease"].map(String::from).to_vec(),
            api_server: Vec::new(),
            operator: None,
            operator_pod_labels: default_operator_pod_labels(),
        }
    }
}

/// Whether `image` starts with one of `prefixes` (an empty prefix never matches).
pub fn image_allowed(image: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| !p.is_empty() && image.starts_with(p.as_str()))
}

/// The labels the Helm chart gives the operator's pods.
pub fn default_operator_pod_labels() -> BTreeMap<String, String> {
    labels(&[("app.kubernetes.io/name", "mcp-guard-operator")])
}

/// Parse `key=value,key=value` (the `--operator-pod-labels` flag).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not key=value"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(format!("`{pair}` has an empty key"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    if out.is_empty() {
        return Err("no labels given".into());
    }
    Ok(out)
}

/// The operator's own service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorIdentity {
    pub namespace: String,
    pub service_account: String,
}

impl OperatorIdentity {
    /// Both parts, when both are set and non-empty.
    pub fn new(namespace: Option<String>, service_account: Option<String>) -> Option<Self> {
        let namespace = namespace.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())?;
        let service_account = service_account.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())?;
        Some(OperatorIdentity { namespace, service_account })
    }

    /// The user name TokenReview reports for its tokens.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.service_account)
    }
}

/// Whether an existing object is one this operator made for the owner with `owner_uid`: it carries the
/// managed-by label and an owner reference to that uid. Anything else (a ServiceAccount a tenant made
/// before the policy, say) the operator must neither adopt nor delete.
pub fn owned_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    let managed =
        meta.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/managed-by")).map(String::as_str)
            == Some(MANAGER);
    managed && meta.owner_references.iter().flatten().any(|o| o.uid == owner_uid)
}

/// A spec the builders refuse; the messages say what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Invalid(pub Vec<String>);

pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub(crate) fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector { match_labels: Some(labels), ..Default::default() }
}

/// Metadata of a child: its name, namespace, labels and the controller owner reference.
pub(crate) fn meta(
    name: &str,
    namespace: &str,
    labels: BTreeMap<String, String>,
    owner: &OwnerReference,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

/// The user every container of the operator's pods runs as (the distroless `nonroot` user).
pub(crate) const NONROOT: i64 = 65532;

/// The pod security context of executor and binding-proxy pods: non-root as [`NONROOT`], seccomp
/// RuntimeDefault.
pub(crate) fn restricted_pod_security_context() -> k8s_openapi::api::core::v1::PodSecurityContext {
    k8s_openapi::api::core::v1::PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NONROOT),
        run_as_group: Some(NONROOT),
        fs_group: Some(NONROOT),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
        ..Default::default()
    }
}

/// The restricted container security context: non-root, read-only root filesystem, no capabilities,
/// no privilege escalation, seccomp RuntimeDefault.
pub(crate) fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
        ..Default::default()
    }
}

/// Kubernetes object names derived from a resource name must stay valid DNS labels.
pub(crate) fn child_name(name: &str, suffix: &str, errors: &mut Vec<String>) -> String {
    let n = format!("{name}-{suffix}");
    if n.len() > 63 {
        errors.push(format!(
            "metadata.name: `{name}` is too long: names of the objects made from it (`{n}`) must fit in 63 characters"
        ));
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn label_flags_parse_strictly() {
        assert_eq!(parse_labels("a=b, c=d").unwrap(), labels(&[("a", "b"), ("c", "d")]));
        assert!(parse_labels("a").unwrap_err().contains("key=value"));
        assert!(parse_labels("=b").unwrap_err().contains("empty key"));
        assert!(parse_labels(" , ").is_err());
    }

    #[test]
    fn the_identity_needs_both_parts() {
        assert_eq!(OperatorIdentity::new(Some("ops".into()), Some(" ".into())), None);
        assert_eq!(OperatorIdentity::new(None, Some("op".into())), None);
        let id = OperatorIdentity::new(Some("ops".into()), Some("op".into())).unwrap();
        assert_eq!(id.username(), "system:serviceaccount:ops:op");
    }
}
