//! Wiring: which watches trigger which reconciles.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use mcp_guard_crds::v1alpha1::{McpApproval, McpGuardPolicy, McpServer};
use tracing::{debug, info, warn};

use crate::build::MANAGER;
use crate::context::Context;
use crate::reconcile::{error_policy, mcp_approval, mcp_guard_policy, mcp_server, reconcile_guarded};

fn owned() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"))
}

// Watches read objects through `DeserializeGuard`: one object that does not parse is reported on its
// own status and does not stop the watch for the others.
type Policy = DeserializeGuard<McpGuardPolicy>;
type Server = DeserializeGuard<McpServer>;
type Approval = DeserializeGuard<McpApproval>;

/// Policies in `ns` that bind server `name`.
pub fn policies_binding(store: &Store<Policy>, ns: &str, name: &str) -> Vec<ObjectRef<Policy>> {
    store
        .state()
        .iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(ns)
                && p.0.as_ref().is_ok_and(|p| p.spec.servers.iter().any(|s| s.name == name))
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// The servers a policy binds (by name, in its namespace; they may not exist).
pub fn servers_bound_by(policy: Policy) -> Vec<ObjectRef<Server>> {
    let ns = policy.namespace().unwrap_or_default();
    match &policy.0 {
        Ok(p) => p.spec.servers.iter().map(|b| ObjectRef::new(&b.name).within(&ns)).collect(),
        Err(_) => Vec::new(),
    }
}

/// The approvals in `ns` of policy `name`.
pub fn approvals_of(store: &Store<Approval>, ns: &str, name: &str) -> Vec<ObjectRef<Approval>> {
    store
        .state()
        .iter()
        .filter(|a| a.namespace().as_deref() == Some(ns) && a.0.as_ref().is_ok_and(|a| a.spec.policy == name))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// The retention each policy had when last seen, so that only a change of it brings the policy's
/// approvals back (each is otherwise looked at again at its own deadline).
#[derive(Default)]
pub struct Retentions(Mutex<HashMap<(String, String), Option<String>>>);

impl Retentions {
    /// Whether `policy`'s approval retention differs from the last one seen (a first sight is no change:
    /// every approval is reconciled when the operator starts).
    pub fn changed(&self, policy: &Policy) -> bool {
        let key = (policy.namespace().unwrap_or_default(), policy.name_any());
        let retention = match &policy.0 {
            Ok(p) => p.spec.approvals.as_ref().map(|a| a.retention.to_string()),
            Err(_) => None,
        };
        let Ok(mut seen) = self.0.lock() else { return true };
        match seen.insert(key, retention.clone()) {
            None => false,
            Some(before) => before != retention,
        }
    }
}

/// Run the controllers over `namespaces` (every namespace when empty) until shutdown. With a list, the
/// operator needs rights in those namespaces only (chart value `watchNamespaces`): one set of
/// controllers per namespace.
pub async fn run_in(client: Client, ctx: Arc<Context>, namespaces: Vec<String>) {
    if namespaces.is_empty() {
        return run_scoped(client, ctx, None).await;
    }
    let all = namespaces.into_iter().map(|ns| run_scoped(client.clone(), ctx.clone(), Some(ns)));
    futures::future::join_all(all).await;
}

/// Run both controllers over every namespace until shutdown.
pub async fn run(client: Client, ctx: Arc<Context>) {
    run_scoped(client, ctx, None).await
}

/// Where the watches of one pair of controllers look: one namespace or all.
struct Scope {
    client: Client,
    namespace: Option<String>,
}

impl Scope {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }
}

/// Run the approvals controller alone over `namespace` (every namespace when `None`) until shutdown:
/// for an operator identity that has rights on McpApprovals only (tests).
pub async fn run_approvals(client: Client, ctx: Arc<Context>, namespace: Option<String>) {
    approval_controller(&Scope { client, namespace }, ctx).await
}

/// Approvals: decisions into status, expiry, retention. A policy whose retention changes brings its
/// approvals back for their new deadline.
fn approval_controller(scope: &Scope, ctx: Arc<Context>) -> impl Future<Output = ()> + Send + use<> {
    let approvals: Api<Approval> = scope.api();
    let policies: Api<Policy> = scope.api();
    let controller = Controller::new(approvals, watcher::Config::default());
    let store = controller.store();
    let retentions = Retentions::default();
    controller
        .watches(policies, watcher::Config::default(), move |p: Policy| {
            if retentions.changed(&p) {
                approvals_of(&store, &p.namespace().unwrap_or_default(), &p.name_any())
            } else {
                Vec::new()
            }
        })
        .shutdown_on_signal()
        .run(mcp_approval::reconcile, error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => debug!(approval = %obj, "reconciled McpApproval"),
                Err(e) => warn!(error = %e, "McpApproval controller"),
            }
        })
}

async fn run_scoped(client: Client, ctx: Arc<Context>, namespace: Option<String>) {
    let scope = Scope { client, namespace };
    let policies: Api<Policy> = scope.api();
    let servers: Api<Server> = scope.api();
    // Secrets are not watched: the operator has no access to them. A missing one is reported by the
    // binding proxy, and the status rechecks ask it again until the Secret is there.
    let server_controller = Controller::new(servers.clone(), watcher::Config::default())
        .owns(scope.api::<Deployment>(), owned())
        .owns(scope.api::<Service>(), owned())
        .owns(scope.api::<NetworkPolicy>(), owned());
    let server_controller = server_controller
        // A policy that changes (becomes Ready, binds or unbinds a server) brings its servers back for
        // tool discovery at once, rather than at their next periodic recheck.
        .watches(policies.clone(), watcher::Config::default(), servers_bound_by)
        .shutdown_on_signal()
        .run(|obj, ctx| reconcile_guarded(obj, ctx, mcp_server::reconcile), error_policy, ctx.clone())
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => info!(server = %obj, "reconciled McpServer"),
                Err(e) => warn!(error = %e, "McpServer controller"),
            }
        });

    let policy_controller = Controller::new(policies, watcher::Config::default())
        .owns(scope.api::<ConfigMap>(), owned())
        .owns(scope.api::<ServiceAccount>(), owned())
        .owns(scope.api::<Deployment>(), owned())
        .owns(scope.api::<Service>(), owned())
        .owns(scope.api::<NetworkPolicy>(), owned())
        .owns(scope.api::<PodDisruptionBudget>(), owned())
        .owns(scope.api::<HorizontalPodAutoscaler>(), owned())
        .owns(scope.api::<RoleBinding>(), owned());
    let policy_store = policy_controller.store();
    let approval_controller = approval_controller(&scope, ctx.clone());

    let policy_controller = policy_controller
        .watches(servers, watcher::Config::default(), {
            let store = policy_store.clone();
            move |s: Server| policies_binding(&store, &s.namespace().unwrap_or_default(), &s.name_any())
        })
        .shutdown_on_signal()
        .run(|obj, ctx| reconcile_guarded(obj, ctx, mcp_guard_policy::reconcile), error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => info!(policy = %obj, "reconciled McpGuardPolicy"),
                Err(e) => warn!(error = %e, "McpGuardPolicy controller"),
            }
        });
    futures::join!(server_controller, policy_controller, approval_controller);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kube::runtime::reflector;
    use serde_json::json;

    use super::*;

    fn guard<K: serde::de::DeserializeOwned + kube::Resource>(v: serde_json::Value) -> DeserializeGuard<K> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn server_changes_map_to_the_policies_that_bind_them() {
        let (policies, mut pw) = reflector::store::<Policy>();
        for (ns, name, server) in [("a", "p1", "time"), ("a", "p2", "other"), ("b", "p3", "time")] {
            pw.apply_watcher_event(&watcher::Event::Apply(guard(json!({
                "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
                "metadata": {"name": name, "namespace": ns}, "spec": {"servers": [{"name": server}]}
            }))));
        }
        // A policy that does not parse is skipped, not fatal.
        pw.apply_watcher_event(&watcher::Event::Apply(guard(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
            "metadata": {"name": "broken", "namespace": "a"}, "spec": {"limits": {"memory": "lots"}}
        }))));
        let names = |refs: Vec<ObjectRef<Policy>>| refs.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(policies_binding(&policies, "a", "time")), ["p1"]);
        assert_eq!(names(policies_binding(&policies, "b", "time")), ["p3"]);
        assert!(policies_binding(&policies, "a", "nothing").is_empty());
    }

    fn policy(ns: &str, name: &str, retention: Option<&str>) -> Policy {
        let mut spec = json!({});
        if let Some(r) = retention {
            spec = json!({"approvals": {"approvers": {"users": ["alice"]}, "retention": r,
                                        "journalKey": {"secretName": "k"}}});
        }
        guard(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec
        }))
    }

    #[test]
    fn only_a_retention_change_brings_a_policys_approvals_back() {
        let (approvals, mut aw) = reflector::store::<Approval>();
        for (ns, name, policy) in [("a", "x1", "p"), ("a", "x2", "other"), ("b", "x3", "p")] {
            aw.apply_watcher_event(&watcher::Event::Apply(guard(json!({
                "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpApproval",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"policy": policy, "executionId": "e", "requester": "r", "summary": "s",
                         "expiresAt": "2030-01-01T00:00:00Z", "calls": []}
            }))));
        }
        let names = |refs: Vec<ObjectRef<Approval>>| refs.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(approvals_of(&approvals, "a", "p")), ["x1"]);
        let seen = Retentions::default();
        assert!(!seen.changed(&policy("a", "p", Some("24h"))), "first sight");
        assert!(!seen.changed(&policy("a", "p", Some("24h"))), "same retention");
        assert!(seen.changed(&policy("a", "p", Some("1h"))));
        assert!(seen.changed(&policy("a", "p", None)), "approvals removed: the default applies");
        assert!(!seen.changed(&policy("b", "p", None)), "another namespace's policy");
    }

    #[test]
    fn a_policy_change_maps_to_the_servers_it_binds() {
        let p: Policy = guard(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
            "metadata": {"name": "p", "namespace": "a"},
            "spec": {"servers": [{"name": "time", "alias": "clock"}, {"name": "github"}]}
        }));
        let refs = servers_bound_by(p);
        let names: Vec<(String, Option<String>)> = refs.into_iter().map(|r| (r.name, r.namespace)).collect();
        assert_eq!(names, [("time".into(), Some("a".into())), ("github".into(), Some("a".into()))]);
        let broken: Policy = guard(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
            "metadata": {"name": "b", "namespace": "a"}, "spec": {"limits": {"memory": "lots"}}
        }));
        assert!(servers_bound_by(broken).is_empty());
    }
}
