//! `McpGuardPolicy` → for the executor and for the binding proxy each: ServiceAccount, Deployment,
//! Service, NetworkPolicy, PodDisruptionBudget (with more than one replica); a shared ConfigMap; the
//! executor's HorizontalPodAutoscaler (optional); the binding proxy's TokenReview binding and, with
//! `approvals`, its RoleBinding for McpApprovals.
//!
//! One function per step, as `pipeline` reads: [`dereference`] → `validate` → `proxy_address` → `build`
//! → `apply_children` → `status`. Only dereference, proxy_address and apply talk to the API server;
//! validate and build are pure.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use mcp_guard_crds::v1alpha1::{McpGuardPolicy, McpGuardPolicyStatus, McpServer};
use tracing::{info, instrument};

use super::{
    Conditioned, RECHECK, Run, apply, apply_role_binding, apply_token_review_binding, delete_owned,
    remove_binding_if_ours,
};
use crate::build::binding_proxy::{self, ProxyObjects};
use crate::build::config::{Rendered, ResolvedServer, render};
use crate::build::executor::ExecutorObjects;
use crate::build::{Invalid, Settings, approvals, executor, network};
use crate::conditions::*;
use crate::context::{Context, Error};
use crate::discovery::{self, DISCOVERY_RETRY};

/// What a policy references, fetched.
#[derive(Debug, Default)]
pub struct Refs {
    pub servers: Vec<McpServer>,
    /// `(reason, message)` of the first kind of problem found, with every instance named.
    pub problem: Option<(&'static str, String)>,
}

/// Dereference: fetch every bound McpServer. Secrets are not looked at (the operator has no access to
/// them): the binding proxy reports a credential it cannot read, and [`status`] says which.
pub async fn dereference(policy: &McpGuardPolicy, client: &kube::Client, ns: &str) -> Result<Refs, Error> {
    let servers_api: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let mut refs = Refs::default();
    let (mut missing, mut not_ready) = (Vec::new(), Vec::new());
    for b in &policy.spec.servers {
        match servers_api.get_opt(&b.name).await? {
            None => missing.push(b.name.clone()),
            Some(s) => {
                if s.spec.deploy.is_some() && s.status.as_ref().and_then(|st| st.url.as_ref()).is_none() {
                    not_ready.push(b.name.clone());
                }
                refs.servers.push(s);
            }
        }
    }
    refs.problem = if !missing.is_empty() {
        Some((
            REASON_SERVER_NOT_FOUND,
            format!("McpServer not found in namespace {ns}: {}", missing.join(", ")),
        ))
    } else if !not_ready.is_empty() {
        Some((
            REASON_SERVER_NOT_READY,
            format!("waiting for the Service of deployed McpServer: {}", not_ready.join(", ")),
        ))
    } else {
        None
    };
    Ok(refs)
}

/// The finalizer that removes a policy's cluster-scoped TokenReview binding, which owner references
/// cannot garbage-collect.
pub const FINALIZER: &str = "mcpguard.io/cleanup";

#[instrument(skip(policy, ctx), fields(policy = %policy.name_any()))]
pub async fn reconcile(policy: Arc<McpGuardPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = policy.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<McpGuardPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, policy, |event| async {
        match event {
            FinalizerEvent::Apply(p) => apply_policy(p, ctx.clone()).await,
            FinalizerEvent::Cleanup(p) => cleanup(p, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Deletion: the namespaced children go by garbage collection; the ClusterRoleBinding goes here.
async fn cleanup(policy: Arc<McpGuardPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let uid = policy.metadata.uid.clone().ok_or(Error::MissingField("metadata.uid"))?;
    remove_token_review_bindings(&ctx.client, &ns, &policy.name_any(), &uid).await?;
    Ok(Action::await_change())
}

/// Delete this policy's TokenReview bindings: the one named from its UID and one an older operator
/// named `<namespace>-<policy>`, each only when its labels and subject say it is this policy's. Another
/// policy's binding (or anyone else's) of that name stays.
async fn remove_token_review_bindings(
    client: &kube::Client,
    ns: &str,
    name: &str,
    uid: &str,
) -> Result<(), Error> {
    let own = executor::token_review_binding_name(uid);
    remove_binding_if_ours(client, &own, executor::policy_owner(ns, name, Some(uid))).await?;
    remove_legacy_binding(client, ns, name).await
}

/// The binding an older operator named `<namespace>-<policy>` (to `system:auth-delegator`), if it is
/// this policy's.
async fn remove_legacy_binding(client: &kube::Client, ns: &str, name: &str) -> Result<(), Error> {
    let legacy = executor::legacy_token_review_binding_name(ns, name);
    remove_binding_if_ours(client, &legacy, executor::policy_owner(ns, name, None)).await
}

/// Any outcome of the pipeline but an error resets the failure backoff: the status says what is wrong.
async fn apply_policy(policy: Arc<McpGuardPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let run = Run::start(&ctx, policy.as_ref())?;
    let action = pipeline(&run, &policy).await?;
    ctx.succeeded(&run.key);
    Ok(action)
}

/// The pipeline. A missing reference and an invalid spec end it early, each with its status.
async fn pipeline(run: &Run<'_, McpGuardPolicy>, policy: &McpGuardPolicy) -> Result<Action, Error> {
    if let Some(refused) = run.reserved_namespace().await {
        return refused;
    }
    let refs = dereference(policy, &run.ctx.client, &run.ns).await?;
    if let Some((reason, message)) = &refs.problem {
        return unresolved(run, reason, message).await;
    }
    let owner = policy.controller_owner_ref(&()).ok_or(Error::MissingField("metadata.uid"))?;
    // Everything is built once before the binding proxy's Service is applied (with a placeholder for
    // its address), so a spec that cannot be rendered creates nothing.
    let valid = validate(policy, &refs, &run.ctx.settings)
        .and_then(|valid| build(run, &valid, PLACEHOLDER_IP, &owner).map(|_| valid));
    let valid = match valid {
        Ok(valid) => valid,
        Err(Invalid(errors)) => {
            let message = format!("the policy cannot be rendered: {}", errors.join("; "));
            return run.invalid_spec(vec![resolved(run)], message).await;
        }
    };
    let proxy_ip = match proxy_address(run, &owner).await {
        Ok(Some(ip)) => ip,
        Ok(None) => return Ok(Action::requeue(std::time::Duration::from_secs(2))),
        Err(e @ Error::NotOwned { .. }) => return run.not_owned(vec![resolved(run)], &e).await,
        Err(e) => return Err(e),
    };
    let built = match build(run, &valid, &proxy_ip, &owner) {
        Ok(built) => built,
        Err(Invalid(errors)) => {
            let message = format!("the policy cannot be rendered: {}", errors.join("; "));
            return run.invalid_spec(vec![resolved(run)], message).await;
        }
    };
    let deployments = match apply_children(run, &built, &owner.uid).await {
        Ok(deployments) => deployments,
        Err(e @ Error::NotOwned { .. }) => return run.not_owned(vec![resolved(run)], &e).await,
        Err(e) => return Err(e),
    };
    status(run, &built, &deployments.0, &deployments.1).await
}

/// The `ResolvedRefs` condition once every reference exists.
fn resolved(run: &Run<'_, McpGuardPolicy>) -> Condition {
    run.condition(RESOLVED_REFS, true, REASON_RESOLVED, String::new())
}

/// A reference is missing or not ready: say which, and look again (the McpServer and Secret watches
/// bring the policy back as soon as the reference appears).
async fn unresolved(run: &Run<'_, McpGuardPolicy>, reason: &str, message: &str) -> Result<Action, Error> {
    let ready = run.condition(READY, false, reason, message);
    let conditions = vec![run.condition(RESOLVED_REFS, false, reason, message), ready.clone()];
    let status = McpGuardPolicyStatus::with_conditions(conditions, run.stamp.generation);
    run.report(&status, &ready).await?;
    Ok(Action::requeue(RECHECK))
}

/// The binding proxy's address in the build that only validates.
const PLACEHOLDER_IP: &str = "192.0.2.1";

/// Apply the binding proxy's Service and return its cluster IP (the executor dials it: executor pods
/// have no DNS). `None` until the API server has assigned one.
async fn proxy_address(
    run: &Run<'_, McpGuardPolicy>,
    owner: &OwnerReference,
) -> Result<Option<String>, Error> {
    let service = apply(&run.ctx.client, &binding_proxy::service(run.obj, owner)).await?;
    Ok(service.spec.and_then(|s| s.cluster_ip).filter(|ip| !ip.is_empty() && ip != "None"))
}

/// A policy whose references all resolved, with its config rendered and validated.
struct Valid<'a> {
    servers: Vec<ResolvedServer<'a>>,
    rendered: Rendered,
}

/// Validate: pair each binding with its McpServer and render the config, which checks it as local mode
/// does ([`mcp_guard_crds::GuardConfig::validate`]).
fn validate<'a>(
    policy: &'a McpGuardPolicy,
    refs: &'a Refs,
    settings: &Settings,
) -> Result<Valid<'a>, Invalid> {
    let servers: Vec<ResolvedServer<'a>> = policy
        .spec
        .servers
        .iter()
        .filter_map(|b| {
            refs.servers
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(&b.name))
                .map(|server| ResolvedServer { binding: b, server })
        })
        .collect();
    let rendered = render(policy, &servers, settings)?;
    Ok(Valid { servers, rendered })
}

/// Everything a policy runs as, and what its status reports of it.
struct Built {
    objects: ExecutorObjects,
    network: NetworkPolicy,
    proxy: ProxyObjects,
    proxy_network: NetworkPolicy,
    /// With `approvals`: the binding proxy's RoleBinding for McpApprovals.
    approvals_binding: Option<RoleBinding>,
    /// What the user should know, for the Ready message.
    notes: Vec<String>,
    /// The names sandboxed code calls the bound servers by.
    sandbox_names: Vec<String>,
}

/// Build (pure): the executor's and the binding proxy's objects and NetworkPolicies.
fn build(
    run: &Run<'_, McpGuardPolicy>,
    valid: &Valid<'_>,
    proxy_ip: &str,
    owner: &OwnerReference,
) -> Result<Built, Invalid> {
    let (policy, settings) = (run.obj, &run.ctx.settings);
    let bound: Vec<String> = valid.servers.iter().map(|r| r.binding.name.clone()).collect();
    let objects = executor::build(policy, &valid.rendered, proxy_ip, settings, owner);
    let hash = executor::config_hash(&valid.rendered.yaml);
    let proxy = binding_proxy::build(policy, &valid.rendered, &bound, &hash, settings, owner);
    let network = network::executor_policy(policy, settings, owner);
    let proxy_network = network::proxy_policy(policy, &valid.servers, settings, owner);
    let (objects, proxy, network, proxy_network) = match (objects, proxy, network, proxy_network) {
        (Ok(o), Ok(p), Ok(n), Ok(pn)) => (o, p, n, pn),
        (o, p, n, pn) => {
            let errors = [o.err(), p.err(), n.err(), pn.err()]
                .into_iter()
                .flatten()
                .flat_map(|Invalid(e)| e)
                .collect();
            return Err(Invalid(errors));
        }
    };
    Ok(Built {
        objects,
        network,
        proxy,
        proxy_network,
        approvals_binding: approvals::role_binding(policy, settings, owner),
        notes: valid.rendered.notes.clone(),
        sandbox_names: valid.servers.iter().map(|r| r.sandbox_name().to_string()).collect(),
    })
}

/// Apply every child, and remove the optional ones the spec no longer asks for. Returns the executor's
/// and the binding proxy's Deployments as applied, for their ready replicas.
async fn apply_children(
    run: &Run<'_, McpGuardPolicy>,
    built: &Built,
    uid: &str,
) -> Result<(Deployment, Deployment), Error> {
    let (client, policy, objects) = (&run.ctx.client, run.obj, &built.objects);
    let name = policy.name_any();
    apply(client, &objects.config_map).await?;
    // The NetworkPolicies first: no pod of this policy runs a moment without them.
    apply(client, &built.network).await?;
    apply(client, &built.proxy_network).await?;
    // The binding proxy checks every executor token (and callers' tokens) with TokenReview, whatever
    // the caller auth mode.
    apply_token_review_binding(client, executor::policy_owner(&run.ns, &name, Some(uid)), &run.ctx.settings)
        .await?;
    remove_legacy_binding(client, &run.ns, &name).await?;
    apply(client, &built.proxy.service_account).await?;
    // Before the proxy runs: its rights on McpApprovals, or none once the policy has no approvals.
    match &built.approvals_binding {
        Some(binding) => apply_role_binding(client, binding).await?,
        None => delete_owned::<RoleBinding>(client, &run.ns, &approvals::binding_name(&name), uid).await?,
    }
    let proxy_deployment = apply(client, &built.proxy.deployment).await?;
    let proxy_name = binding_proxy::proxy_name(&name);
    match &built.proxy.pdb {
        Some(pdb) => {
            apply(client, pdb).await?;
        }
        None => delete_owned::<PodDisruptionBudget>(client, &run.ns, &proxy_name, uid).await?,
    }
    apply(client, &objects.service_account).await?;
    apply(client, &objects.service).await?;
    let deployment = apply(client, &objects.deployment).await?;
    let executor_name = executor::executor_name(&name);
    match &objects.pdb {
        Some(pdb) => {
            apply(client, pdb).await?;
        }
        None => delete_owned::<PodDisruptionBudget>(client, &run.ns, &executor_name, uid).await?,
    }
    match &objects.hpa {
        Some(hpa) => {
            apply(client, hpa).await?;
        }
        None => delete_owned::<HorizontalPodAutoscaler>(client, &run.ns, &executor_name, uid).await?,
    }
    Ok((deployment, proxy_deployment))
}

/// Status: Ready once enough executor pods are; the endpoint, the bound servers and the config hash the
/// pods run with.
async fn status(
    run: &Run<'_, McpGuardPolicy>,
    built: &Built,
    deployment: &Deployment,
    proxy_deployment: &Deployment,
) -> Result<Action, Error> {
    let ready_replicas = deployment.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    let proxies_ready = proxy_deployment.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    let executor = &run.obj.spec.executor;
    let wanted = executor.autoscaling.as_ref().map_or(executor.replicas, |a| a.min_replicas);
    let available_cond = run.available(ready_replicas, wanted, "executor");
    // Serving needs a binding proxy too (an executor is not Ready without one, so this mostly holds
    // already; the status says which is missing).
    let available = available_cond.status == "True" && proxies_ready > 0;
    // Credentials: only the binding proxy can see whether a Secret (or key) it is given exists. Asked
    // once a pod runs: an executor whose proxy cannot connect a server is not Ready (so not available).
    let running = ready_replicas > 0 || deployment.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0;
    let missing = if running { missing_credentials(run).await } else { BTreeSet::new() };
    let (resolved_cond, ready, requeue) = if missing.is_empty() {
        let mut ready_message = if available {
            "the executor is serving".to_string()
        } else if proxies_ready == 0 {
            "waiting for binding-proxy pods".into()
        } else {
            "waiting for executor pods".into()
        };
        for note in &built.notes {
            ready_message.push_str("; ");
            ready_message.push_str(note);
        }
        let reason = if available { REASON_READY } else { REASON_PENDING };
        // Not serving yet: look again soon. A pod that runs but never becomes Ready (its binding proxy
        // cannot connect a server, say) changes no Deployment status again, so no watch would bring
        // the policy back before the periodic recheck.
        let requeue = if available { RECHECK } else { DISCOVERY_RETRY };
        (resolved(run), run.condition(READY, available, reason, ready_message), requeue)
    } else {
        let message = discovery::missing_message(&run.ns, &missing);
        (
            run.condition(RESOLVED_REFS, false, REASON_SECRET_NOT_FOUND, message.clone()),
            run.condition(READY, false, REASON_SECRET_NOT_FOUND, message),
            DISCOVERY_RETRY,
        )
    };
    let config_hash = &built.objects.config_hash;
    let status = McpGuardPolicyStatus {
        conditions: vec![resolved_cond, available_cond, ready.clone()],
        observed_generation: run.stamp.generation,
        endpoint: Some(executor::endpoint(&run.obj.name_any(), &run.ns)),
        ready_replicas: Some(ready_replicas),
        server_count: Some(i32::try_from(built.sandbox_names.len()).unwrap_or(i32::MAX)),
        bound_servers: built.sandbox_names.clone(),
        config_hash: Some(config_hash.clone()),
    };
    run.report(&status, &ready).await?;
    info!(ready = ready.status == "True", hash = %config_hash, "reconciled");
    Ok(Action::requeue(requeue))
}

/// The credentials the policy's binding proxy has no value for, asked of a running executor pod (its
/// `ListTools`, as discovery asks). An executor that cannot be asked says nothing here: the bound
/// McpServers' `Discovered` conditions say why.
async fn missing_credentials(run: &Run<'_, McpGuardPolicy>) -> BTreeSet<String> {
    let ctx = run.ctx;
    match ctx.discovery.servers_of_a_pod(&ctx.client, &ctx.settings, run.obj).await {
        Ok(reports) => discovery::missing_credentials(&reports),
        Err(e) => {
            tracing::debug!(error = %e, "cannot ask the executor about its credentials");
            BTreeSet::new()
        }
    }
}
