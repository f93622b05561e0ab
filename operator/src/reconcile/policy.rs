//! `McpGuardPolicy` → ConfigMap, ServiceAccount, Deployment, Service, NetworkPolicy, PodDisruptionBudget.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use mcp_guard_crds::v1alpha1::{CallerAuth, McpGuardPolicy, McpServer};
use serde_json::json;
use tracing::{info, instrument};

use super::{announce, apply, apply_cluster, apply_status, delete_cluster_if_present, delete_if_present};
use crate::build::config::{ResolvedServer, render};
use crate::build::{Invalid, executor, network};
use crate::conditions::*;
use crate::context::{Context, Error};

/// How long a policy waits before looking again when nothing it watches changes.
const RECHECK: Duration = Duration::from_secs(300);

/// What a policy references, fetched.
#[derive(Debug, Default)]
pub struct Refs {
    pub servers: Vec<McpServer>,
    pub secret_versions: BTreeMap<String, String>,
    /// `(reason, message)` of the first kind of problem found, with every instance named.
    pub problem: Option<(&'static str, String)>,
}

/// Dereference: fetch every bound McpServer and, as metadata only, every Secret they reference. The
/// operator never reads Secret values.
pub async fn dereference(policy: &McpGuardPolicy, client: &kube::Client, ns: &str) -> Result<Refs, Error> {
    let servers_api: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut refs = Refs::default();
    let (mut missing, mut not_ready, mut missing_secrets) = (Vec::new(), Vec::new(), BTreeSet::new());
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
    let secret_names: BTreeSet<String> = refs
        .servers
        .iter()
        .flat_map(|s| s.spec.headers.iter().filter_map(|h| h.secret_key_ref.as_ref().map(|r| r.name.clone())))
        .collect();
    for name in secret_names {
        match secrets_api.get_metadata_opt(&name).await? {
            None => {
                missing_secrets.insert(name);
            }
            Some(m) => {
                refs.secret_versions.insert(name, m.metadata.resource_version.unwrap_or_default());
            }
        }
    }
    refs.problem = if !missing.is_empty() {
        Some((
            REASON_SERVER_NOT_FOUND,
            format!("McpServer not found in namespace {ns}: {}", missing.join(", ")),
        ))
    } else if !missing_secrets.is_empty() {
        let names: Vec<String> = missing_secrets.into_iter().collect();
        Some((REASON_SECRET_NOT_FOUND, format!("Secret not found in namespace {ns}: {}", names.join(", "))))
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
    let name = executor::token_review_binding_name(&ns, &policy.name_any());
    delete_cluster_if_present::<ClusterRoleBinding>(&ctx.client, &name).await?;
    Ok(Action::await_change())
}

async fn apply_policy(policy: Arc<McpGuardPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.duration.with_label_values(&["McpGuardPolicy"]).start_timer();
    ctx.metrics.reconciliations.with_label_values(&["McpGuardPolicy"]).inc();
    let ns = policy.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = policy.name_any();
    let key = format!("McpGuardPolicy/{ns}/{name}");
    let status = policy.status.clone().unwrap_or_default();
    let previous = status.conditions.clone();
    let generation = policy.metadata.generation;
    let now = Timestamp::now();
    let cond = |t: &str, ok: bool, reason: &str, msg: String| {
        condition(t, ok, reason, msg, generation, &previous, now)
    };

    // Dereference.
    let refs = dereference(&policy, &ctx.client, &ns).await?;
    if let Some((reason, message)) = &refs.problem {
        let ready = cond(READY, false, reason, message.clone());
        let conditions = vec![cond(RESOLVED_REFS, false, reason, message.clone()), ready.clone()];
        apply_status(
            &ctx.client,
            policy.as_ref(),
            json!({"conditions": conditions, "observedGeneration": generation}),
        )
        .await?;
        announce(&ctx, policy.as_ref(), &previous, &ready).await;
        ctx.succeeded(&key);
        // The McpServer and Secret watches bring the policy back as soon as the reference appears.
        return Ok(Action::requeue(RECHECK));
    }

    // Validate and build (pure).
    let resolved: Vec<ResolvedServer<'_>> = policy
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
    let owner = policy.controller_owner_ref(&()).ok_or(Error::MissingField("metadata.uid"))?;
    let bound: Vec<String> = resolved.iter().map(|r| r.binding.name.clone()).collect();
    let built = render(&policy, &resolved).and_then(|rendered| {
        let objects =
            executor::build(&policy, &rendered, &bound, &refs.secret_versions, &ctx.settings, &owner)?;
        Ok((rendered, objects))
    });
    let (rendered, objects) = match built {
        Ok(b) => b,
        Err(Invalid(errors)) => {
            let message = format!("the policy cannot be rendered: {}", errors.join("; "));
            let ready = cond(READY, false, REASON_INVALID_SPEC, message.clone());
            let conditions = vec![cond(RESOLVED_REFS, true, REASON_RESOLVED, String::new()), ready.clone()];
            apply_status(
                &ctx.client,
                policy.as_ref(),
                json!({"conditions": conditions, "observedGeneration": generation}),
            )
            .await?;
            announce(&ctx, policy.as_ref(), &previous, &ready).await;
            ctx.succeeded(&key);
            // An invalid spec waits for a change of the spec.
            return Ok(Action::await_change());
        }
    };
    let netpol = network::executor_policy(&policy, &resolved, &ctx.settings, &owner);

    // Apply.
    apply(&ctx.client, &objects.config_map).await?;
    apply(&ctx.client, &objects.service_account).await?;
    apply(&ctx.client, &netpol).await?;
    apply(&ctx.client, &objects.service).await?;
    let deployment = apply(&ctx.client, &objects.deployment).await?;
    match &objects.pdb {
        Some(pdb) => {
            apply(&ctx.client, pdb).await?;
        }
        None => {
            delete_if_present::<PodDisruptionBudget>(&ctx.client, &ns, &executor::executor_name(&name))
                .await?
        }
    }
    // TokenReview needs a cluster-scoped binding; without that auth mode, none may linger.
    if policy.spec.callers.auth == CallerAuth::ServiceAccountToken {
        apply_cluster(&ctx.client, &executor::token_review_binding(&policy)).await?;
    } else {
        let binding = executor::token_review_binding_name(&ns, &name);
        delete_cluster_if_present::<ClusterRoleBinding>(&ctx.client, &binding).await?;
    }

    // Status.
    let want = policy.spec.executor.replicas;
    let ready_replicas = deployment.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    let available = ready_replicas >= want.min(1);
    let available_cond = if available {
        cond(AVAILABLE, true, REASON_AVAILABLE, format!("{ready_replicas} of {want} executor pods ready"))
    } else {
        cond(AVAILABLE, false, REASON_UNAVAILABLE, format!("{ready_replicas} of {want} executor pods ready"))
    };
    let mut ready_message =
        if available { "the executor is serving".to_string() } else { "waiting for executor pods".into() };
    for note in &rendered.notes {
        ready_message.push_str("; ");
        ready_message.push_str(note);
    }
    let ready = cond(READY, available, if available { REASON_READY } else { REASON_PENDING }, ready_message);
    let conditions: Vec<Condition> =
        vec![cond(RESOLVED_REFS, true, REASON_RESOLVED, String::new()), available_cond, ready.clone()];
    let sandbox_names: Vec<&str> = resolved.iter().map(|r| r.sandbox_name()).collect();
    apply_status(
        &ctx.client,
        policy.as_ref(),
        json!({
            "conditions": conditions,
            "observedGeneration": generation,
            "endpoint": executor::endpoint(&name, &ns),
            "readyReplicas": ready_replicas,
            "boundServers": sandbox_names,
            "serverCount": sandbox_names.len(),
            "configHash": objects.config_hash,
        }),
    )
    .await?;
    announce(&ctx, policy.as_ref(), &previous, &ready).await;
    ctx.succeeded(&key);
    info!(ready = available, hash = %objects.config_hash, "reconciled");
    Ok(Action::requeue(RECHECK))
}
