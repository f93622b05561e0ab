//! What a policy with `spec.approvals` adds: a RoleBinding, in the policy's namespace, of its
//! binding-proxy ServiceAccount to the chart's approvals ClusterRole
//! ([`Settings::approvals_role`]: `mcpapprovals` create/get/list/watch, their `status`
//! get/update/patch, `mcpapprovaljournals` create/get), so the proxy records pending approvals and
//! their sealed journals there and reads the decisions. Owned by the policy (garbage-collected with it)
//! and removed when the policy drops `approvals`.
//!
//! Who may decide is not the proxy's to say: the chart's admission policy checks each decision against
//! the approvers the approval carries.

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use mcp_guard_crds::v1alpha1::McpGuardPolicy;

use super::binding_proxy::{common_labels, proxy_name};
use super::{Settings, meta};

/// The RoleBinding's name: `<policy>-binding-proxy-approvals`.
pub fn binding_name(policy: &str) -> String {
    format!("{}-approvals", proxy_name(policy))
}

/// The RoleBinding of a policy with `approvals`; `None` without.
pub fn role_binding(
    policy: &McpGuardPolicy,
    settings: &Settings,
    owner: &OwnerReference,
) -> Option<RoleBinding> {
    policy.spec.approvals.as_ref()?;
    let name = policy.metadata.name.clone().unwrap_or_default();
    let ns = policy.metadata.namespace.clone().unwrap_or_default();
    Some(RoleBinding {
        metadata: meta(&binding_name(&name), &ns, common_labels(&name), owner),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: settings.approvals_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: proxy_name(&name),
            namespace: Some(ns),
            api_group: None,
        }]),
    })
}
