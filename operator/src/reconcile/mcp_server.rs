//! `McpServer` → for `deploy`: Deployment, Service, NetworkPolicy; for every server: status, including
//! its tools and `serverInfo` as the executors of the Ready policies that bind it report them (see
//! [`crate::discovery`]).
//!
//! One function per step, as [`reconcile`] reads: `dereference` → `validate` → `build` → `apply_children`
//! → `status`. Only dereference, apply and discovery talk to the cluster.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use mcp_guard_crds::v1alpha1::{DeploySpec, McpServer, McpServerStatus};
use tracing::instrument;

use super::{RECHECK, Run, apply, apply_token_review_binding, remove_binding_if_ours};
use crate::build::deployed_server::ServerObjects;
use crate::build::{Invalid, Settings, deployed_server, network, token_review};
use crate::conditions::*;
use crate::context::{Context, Error};
use crate::discovery::{self, Discovery};
// Discovery merging lives in `crate::discovery`; these paths stay for existing callers.
pub use crate::discovery::{
    DISCOVERY_REFRESH, DISCOVERY_RETRY, MAX_STATUS_DESCRIPTION, MAX_STATUS_NAME, MAX_STATUS_TOOLS,
    PolicyAnswer, bounded, bounded_tools, summarize,
};

/// Only a deployed server has a cluster-scoped child (the TokenReview binding of its gate), which owner
/// references cannot garbage-collect: such a server carries this finalizer, and keeps it until deleted.
pub const FINALIZER: &str = "mcpguard.io/cleanup";

/// A remote server that never was deployed has no finalizer: its deletion needs no operator.
#[instrument(skip(mcp, ctx), fields(server = %mcp.name_any()))]
pub async fn reconcile(mcp: Arc<McpServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    if mcp.spec.deploy.is_none() && !has_finalizer(&mcp) {
        return pipeline(mcp, ctx).await;
    }
    let ns = mcp.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<McpServer> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, mcp, |event| async {
        match event {
            FinalizerEvent::Apply(m) => pipeline(m, ctx.clone()).await,
            FinalizerEvent::Cleanup(m) => cleanup(m, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn has_finalizer(mcp: &McpServer) -> bool {
    mcp.finalizers().iter().any(|f| f == FINALIZER)
}

/// A server as the owner of its gate's TokenReview binding.
fn gate_owner<'a>(ns: &'a str, name: &'a str, uid: &'a str) -> token_review::Owner<'a> {
    token_review::Owner { kind: token_review::OwnerKind::Server, namespace: ns, name, uid: Some(uid) }
}

/// Deletion: the namespaced children go by garbage collection; the gate's binding goes here.
async fn cleanup(mcp: Arc<McpServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = mcp.namespace().unwrap_or_default();
    let uid = mcp.metadata.uid.clone().ok_or(Error::MissingField("metadata.uid"))?;
    let name = mcp.name_any();
    remove_binding_if_ours(&ctx.client, &token_review::binding_name(&uid), gate_owner(&ns, &name, &uid))
        .await?;
    Ok(Action::await_change())
}

/// The pipeline. An invalid spec ends it early with its status; discovery never does.
async fn pipeline(mcp: Arc<McpServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let run = Run::start(&ctx, mcp.as_ref())?;
    if let Some(refused) = run.reserved_namespace().await {
        return refused;
    }
    let target = match validate(&mcp, &ctx.settings) {
        Ok(target) => target,
        Err(invalid) => return run.invalid_spec(Vec::new(), invalid.to_string()).await,
    };
    let built = match build(&mcp, target, &ctx.settings)? {
        Ok(built) => built,
        Err(invalid) => return run.invalid_spec(Vec::new(), invalid.to_string()).await,
    };
    let served = match apply_children(&run, built).await {
        Ok(served) => served,
        Err(e @ Error::NotOwned { .. }) => return run.not_owned(Vec::new(), &e).await,
        Err(e) => return Err(e),
    };
    let found = discovery::discover(&ctx, &mcp, &run.ns).await;
    let refs = resolved_refs(&run, &found);
    let action = status(&run, refs, served, found).await?;
    ctx.succeeded(&run.key);
    Ok(action)
}

/// The `ResolvedRefs` condition: the Secrets of its headers exist as far as the binding proxies of the
/// policies that bind it can tell (the operator has no access to Secrets). A missing one makes the
/// server not Ready, not invalid.
fn resolved_refs(run: &Run<'_, McpServer>, found: &Discovery) -> Condition {
    if found.missing_credentials.is_empty() {
        return run.condition(RESOLVED_REFS, true, REASON_RESOLVED, String::new());
    }
    let missing = found.missing_credentials.keys().cloned().collect();
    let mut policies: Vec<&str> = found.missing_credentials.values().flatten().map(String::as_str).collect();
    policies.sort_unstable();
    policies.dedup();
    let message = format!(
        "{} (reported by McpGuardPolicy {})",
        discovery::missing_message(&run.ns, &missing),
        policies.join(", ")
    );
    run.condition(RESOLVED_REFS, false, REASON_SECRET_NOT_FOUND, message)
}

/// Where the server runs, once the spec says exactly one place.
enum Target<'a> {
    Remote(&'a str),
    Deployed(&'a DeploySpec),
}

/// Validate: exactly one of `url` and `deploy` (the CRD's CEL rule says the same; an object that slipped
/// past an older CRD still gets here); a remote server's egress within the admin's rules.
fn validate<'a>(mcp: &'a McpServer, settings: &Settings) -> Result<Target<'a>, Invalid> {
    match (&mcp.spec.url, &mcp.spec.deploy) {
        (Some(url), None) => network::remote_egress(mcp, settings).map(|_| Target::Remote(url)),
        (None, Some(deploy)) => Ok(Target::Deployed(deploy)),
        _ => Err(Invalid(vec!["set exactly one of url or deploy".into()])),
    }
}

/// A remote server as it is; a deployed one with the children it runs as.
enum Built<'a> {
    Remote(&'a str),
    Deployed(&'a DeploySpec, Box<Children>),
}

struct Children {
    objects: ServerObjects,
    network: NetworkPolicy,
}

/// Build (pure): a deployed server's Deployment, Service and NetworkPolicy. Fails only for an object
/// without a uid (nothing can own the children); `Invalid` when the builders refuse the spec.
fn build<'a>(
    mcp: &McpServer,
    target: Target<'a>,
    settings: &Settings,
) -> Result<Result<Built<'a>, Invalid>, Error> {
    Ok(match target {
        Target::Remote(url) => Ok(Built::Remote(url)),
        Target::Deployed(deploy) => {
            let owner = mcp.controller_owner_ref(&()).ok_or(Error::MissingField("metadata.uid"))?;
            let network = network::server_policy(mcp, deployed_server::gate_port(deploy), &owner);
            deployed_server::build(mcp, deploy, settings, &owner)
                .map(|objects| Built::Deployed(deploy, Box::new(Children { objects, network })))
        }
    })
}

/// What the binding proxies reach: the URL, and for a deployed server its ready and wanted pods.
struct Served {
    url: String,
    pods: Option<(i32, i32)>,
}

/// Apply a deployed server's children; its URL uses the Service's ClusterIP (no cluster DNS needed).
async fn apply_children(run: &Run<'_, McpServer>, built: Built<'_>) -> Result<Served, Error> {
    let (client, mcp) = (&run.ctx.client, run.obj);
    let name = mcp.name_any();
    let uid = mcp.metadata.uid.clone().ok_or(Error::MissingField("metadata.uid"))?;
    let owner = gate_owner(&run.ns, &name, &uid);
    match built {
        Built::Remote(url) => {
            // Deployed before: its gate's binding goes.
            if has_finalizer(mcp) {
                remove_binding_if_ours(client, &token_review::binding_name(&uid), owner).await?;
            }
            Ok(Served { url: url.to_string(), pods: None })
        }
        Built::Deployed(deploy, children) => {
            apply(client, &children.objects.service_account).await?;
            apply_token_review_binding(client, owner, &run.ctx.settings).await?;
            apply(client, &children.network).await?;
            let svc = apply(client, &children.objects.service).await?;
            let dep = apply(client, &children.objects.deployment).await?;
            let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.clone());
            let ready = dep.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
            Ok(Served {
                url: deployed_server::server_url(mcp, deploy, ip.as_deref()),
                pods: Some((ready, deploy.replicas)),
            })
        }
    }
}

/// Status: Ready from the references and the pods; Discovered, tools and `serverInfo` from discovery,
/// which is informational: never a reason for Ready=False, never a reconcile error.
async fn status(
    run: &Run<'_, McpServer>,
    refs: Condition,
    served: Served,
    found: Discovery,
) -> Result<Action, Error> {
    let available = served.pods.map(|(ready, want)| run.available(ready, want, "server"));
    let ready = match &available {
        _ if refs.status != "True" => run.condition(READY, false, &refs.reason, refs.message.clone()),
        None => run.condition(READY, true, REASON_REMOTE, "remote server; the binding proxy connects to it"),
        Some(a) if a.status == "True" => run.condition(READY, true, REASON_READY, "the server is running"),
        Some(_) => run.condition(READY, false, REASON_PENDING, "waiting for server pods"),
    };
    let discovered = run.condition(DISCOVERED, found.ok, found.reason, found.message.clone());
    let requeue = found.requeue.min(RECHECK);
    let mut status = McpServerStatus {
        conditions: [Some(refs), available, Some(ready.clone()), Some(discovered)]
            .into_iter()
            .flatten()
            .collect(),
        observed_generation: run.stamp.generation,
        url: Some(served.url),
        ..Default::default()
    };
    discovery::merge(&mut status, found, run.obj.status.as_ref());
    run.report(&status, &ready).await?;
    Ok(Action::requeue(requeue))
}
