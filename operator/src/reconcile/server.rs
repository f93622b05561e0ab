//! `McpServer` → for `deploy`: Deployment, Service, NetworkPolicy; for every server: status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use mcp_guard_crds::v1alpha1::McpServer;
use serde_json::json;
use tracing::instrument;

use super::{announce, apply, apply_status};
use crate::build::{network, server};
use crate::conditions::*;
use crate::context::{Context, Error};

const RECHECK: Duration = Duration::from_secs(300);

#[instrument(skip(mcp, ctx), fields(server = %mcp.name_any()))]
pub async fn reconcile(mcp: Arc<McpServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.duration.with_label_values(&["McpServer"]).start_timer();
    ctx.metrics.reconciliations.with_label_values(&["McpServer"]).inc();
    let ns = mcp.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let key = format!("McpServer/{ns}/{}", mcp.name_any());
    let previous = mcp.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let generation = mcp.metadata.generation;
    let now = Timestamp::now();
    let cond = |t: &str, ok: bool, reason: &str, msg: String| {
        condition(t, ok, reason, msg, generation, &previous, now)
    };

    // Dereference: the Secrets of its headers, as metadata only.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let names: BTreeSet<&str> =
        mcp.spec.headers.iter().filter_map(|h| h.secret_key_ref.as_ref().map(|r| r.name.as_str())).collect();
    let mut missing = Vec::new();
    for n in names {
        if secrets.get_metadata_opt(n).await?.is_none() {
            missing.push(n);
        }
    }
    let refs = if missing.is_empty() {
        cond(RESOLVED_REFS, true, REASON_RESOLVED, String::new())
    } else {
        cond(
            RESOLVED_REFS,
            false,
            REASON_SECRET_NOT_FOUND,
            format!("Secret not found in namespace {ns}: {}", missing.join(", ")),
        )
    };
    let resolved = missing.is_empty();

    let (url, mut conditions, ready) = match (&mcp.spec.url, &mcp.spec.deploy) {
        (Some(url), None) => {
            let ready = if resolved {
                cond(READY, true, REASON_REMOTE, "remote server; the binding proxy connects to it".into())
            } else {
                cond(READY, false, &refs.reason, refs.message.clone())
            };
            (Some(url.clone()), vec![refs], ready)
        }
        (None, Some(deploy)) => {
            let owner = mcp.controller_owner_ref(&()).ok_or(Error::MissingField("metadata.uid"))?;
            match server::build(&mcp, deploy, &owner) {
                Err(invalid) => {
                    let ready = cond(READY, false, REASON_INVALID_SPEC, invalid.to_string());
                    apply_status(
                        &ctx.client,
                        mcp.as_ref(),
                        json!({"conditions": [refs, ready], "observedGeneration": generation}),
                    )
                    .await?;
                    announce(&ctx, mcp.as_ref(), &previous, &ready).await;
                    return Ok(Action::await_change());
                }
                Ok(objects) => {
                    apply(&ctx.client, &network::server_policy(&mcp, deploy.port, &owner)).await?;
                    let svc = apply(&ctx.client, &objects.service).await?;
                    let dep = apply(&ctx.client, &objects.deployment).await?;
                    let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.clone());
                    let url = server::server_url(&mcp, deploy, ip.as_deref());
                    let ready_replicas = dep.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
                    let ok = ready_replicas >= deploy.replicas.min(1);
                    let msg = format!("{ready_replicas} of {} server pods ready", deploy.replicas);
                    let available = if ok {
                        cond(AVAILABLE, true, REASON_AVAILABLE, msg)
                    } else {
                        cond(AVAILABLE, false, REASON_UNAVAILABLE, msg)
                    };
                    let ready = if !resolved {
                        cond(READY, false, &refs.reason, refs.message.clone())
                    } else if ok {
                        cond(READY, true, REASON_READY, "the server is running".into())
                    } else {
                        cond(READY, false, REASON_PENDING, "waiting for server pods".into())
                    };
                    (Some(url), vec![refs, available], ready)
                }
            }
        }
        _ => {
            let ready = cond(READY, false, REASON_INVALID_SPEC, "set exactly one of url or deploy".into());
            apply_status(
                &ctx.client,
                mcp.as_ref(),
                json!({"conditions": [refs, ready], "observedGeneration": generation}),
            )
            .await?;
            announce(&ctx, mcp.as_ref(), &previous, &ready).await;
            return Ok(Action::await_change());
        }
    };
    conditions.push(ready.clone());
    apply_status(
        &ctx.client,
        mcp.as_ref(),
        json!({"conditions": conditions, "observedGeneration": generation, "url": url}),
    )
    .await?;
    announce(&ctx, mcp.as_ref(), &previous, &ready).await;
    ctx.succeeded(&key);
    Ok(Action::requeue(RECHECK))
}
