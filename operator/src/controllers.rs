//! Wiring: which watches trigger which reconciles.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use mcp_guard_crds::v1alpha1::{McpGuardPolicy, McpServer};
use tracing::{info, warn};

use crate::build::MANAGER;
use crate::context::Context;
use crate::reconcile::{error_policy, mcp_guard_policy, mcp_server, reconcile_guarded};

fn owned() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"))
}

// Watches read objects through `DeserializeGuard`: one object that does not parse is reported on its
// own status and does not stop the watch for the others.
type Policy = DeserializeGuard<McpGuardPolicy>;
type Server = DeserializeGuard<McpServer>;

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

/// Run both controllers over `namespaces` (every namespace when empty) until shutdown. With a list, the
/// operator needs rights in those namespaces only (chart value `watchNamespaces`): one pair of
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
        .owns(scope.api::<HorizontalPodAutoscaler>(), owned());
    let policy_store = policy_controller.store();
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
    futures::join!(server_controller, policy_controller);
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
