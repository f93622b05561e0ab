//! ClusterRoleBindings that let one workload the operator runs call TokenReview: a policy's binding
//! proxy (to authenticate its executor and the executor's callers) and a deployed server's gate (to
//! authenticate binding proxies). Each
//! binds one ServiceAccount to the ClusterRole that allows `tokenreviews: create` and nothing else
//! ([`Settings::token_review_role`]).
//!
//! Cluster-scoped, so they cannot be owned by their namespaced owner: the owner's finalizer deletes
//! them. Named from the owner's UID, so no two owners (`team-a/x` and `team/a-x`) can ever share a
//! name, and labelled with that UID and the owner's name and namespace, which the operator checks (with
//! the single subject) before it patches or deletes a binding.

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{MANAGER, POLICY_LABEL, SERVER_LABEL, Settings, labels};

/// What a binding is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    /// A policy's binding proxy.
    Policy,
    /// A deployed server's gate.
    Server,
}

impl OwnerKind {
    /// The labels naming the owner: its name, namespace and UID.
    fn labels(self) -> [&'static str; 3] {
        match self {
            OwnerKind::Policy => [POLICY_LABEL, POLICY_NAMESPACE_LABEL, POLICY_UID_LABEL],
            OwnerKind::Server => [SERVER_LABEL, SERVER_NAMESPACE_LABEL, SERVER_UID_LABEL],
        }
    }

    /// The ServiceAccount the owner's workload runs as.
    pub fn service_account(self, name: &str) -> String {
        match self {
            OwnerKind::Policy => super::binding_proxy::proxy_name(name),
            OwnerKind::Server => super::deployed_server::server_name(name),
        }
    }

    /// The account older operator versions bound (a policy's executor, before its binding proxy had
    /// pods of its own): a binding with it is still the owner's, to be patched or removed.
    fn former_service_account(self, name: &str) -> Option<String> {
        match self {
            OwnerKind::Policy => Some(super::executor::executor_name(name)),
            OwnerKind::Server => None,
        }
    }
}

/// The owner of a binding.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub kind: OwnerKind,
    pub namespace: &'a str,
    pub name: &'a str,
    /// `None`: any UID (bindings of older operators had no UID label).
    pub uid: Option<&'a str>,
}

/// Label of cluster-scoped children: the namespace of the policy they belong to.
pub const POLICY_NAMESPACE_LABEL: &str = "mcpguard.io/policy-namespace";
/// Label of cluster-scoped children: the UID of the policy they belong to.
pub const POLICY_UID_LABEL: &str = "mcpguard.io/policy-uid";
/// Label of cluster-scoped children: the namespace of the McpServer they belong to.
pub const SERVER_NAMESPACE_LABEL: &str = "mcpguard.io/server-namespace";
/// Label of cluster-scoped children: the UID of the McpServer they belong to.
pub const SERVER_UID_LABEL: &str = "mcpguard.io/server-uid";

/// The binding's name: from the owner's UID, unique in the cluster.
pub fn binding_name(uid: &str) -> String {
    format!("mcp-guard-tokenreview-{uid}")
}

/// The binding of `owner` (whose `uid` must be set).
pub fn binding(owner: Owner<'_>, settings: &Settings) -> ClusterRoleBinding {
    let uid = owner.uid.unwrap_or_default();
    let [name_label, ns_label, uid_label] = owner.kind.labels();
    let labels = labels(&[
        ("app.kubernetes.io/managed-by", MANAGER),
        (name_label, owner.name),
        (ns_label, owner.namespace),
        (uid_label, uid),
    ]);
    ClusterRoleBinding {
        metadata: ObjectMeta { name: Some(binding_name(uid)), labels: Some(labels), ..Default::default() },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: settings.token_review_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: owner.kind.service_account(owner.name),
            namespace: Some(owner.namespace.to_string()),
            api_group: None,
        }]),
    }
}

/// Whether an existing binding belongs to `owner`: managed by the operator, labelled with the owner's
/// name, namespace (and UID, when given), with the owner's ServiceAccount as its only subject.
pub fn belongs_to(binding: &ClusterRoleBinding, owner: Owner<'_>) -> bool {
    let labels = binding.metadata.labels.clone().unwrap_or_default();
    let label = |k: &str| labels.get(k).map(String::as_str);
    let [name_label, ns_label, uid_label] = owner.kind.labels();
    let subject_ok = binding.subjects.as_deref().is_some_and(|s| {
        s.len() == 1
            && s[0].kind == "ServiceAccount"
            && (s[0].name == owner.kind.service_account(owner.name)
                || owner.kind.former_service_account(owner.name).is_some_and(|f| s[0].name == f))
            && s[0].namespace.as_deref() == Some(owner.namespace)
    });
    label("app.kubernetes.io/managed-by") == Some(MANAGER)
        && label(ns_label) == Some(owner.namespace)
        && label(name_label) == Some(owner.name)
        && owner.uid.is_none_or(|u| label(uid_label) == Some(u))
        && subject_ok
}
