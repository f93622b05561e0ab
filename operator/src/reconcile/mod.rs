//! The reconcilers. Each one reads as its pipeline: dereference → validate → build → apply → status.

pub mod policy;
pub mod server;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::conditions::{READY, REASON_PENDING, status_of};
use crate::context::{Context, Error};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "mcp-guard";

/// Server-side apply a namespaced child, taking ownership of every field it sets (so a hand edit of
/// those fields is reverted on the next reconcile).
pub async fn apply<K>(client: &Client, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let ns = obj.meta().namespace.as_deref().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = obj.meta().name.as_deref().ok_or(Error::MissingField("metadata.name"))?;
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj)).await?)
}

/// Delete a namespaced child if it exists.
pub async fn delete_if_present<K>(client: &Client, ns: &str, name: &str) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Server-side apply a cluster-scoped child.
pub async fn apply_cluster<K>(client: &Client, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let name = obj.meta().name.as_deref().ok_or(Error::MissingField("metadata.name"))?;
    let api: Api<K> = Api::all(client.clone());
    Ok(api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj)).await?)
}

/// Delete a cluster-scoped child if it exists.
pub async fn delete_cluster_if_present<K>(client: &Client, name: &str) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Server-side apply the status subresource of a custom resource.
pub async fn apply_status<K>(client: &Client, obj: &K, status: serde_json::Value) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let ns = obj.meta().namespace.as_deref().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = obj.meta().name.as_deref().ok_or(Error::MissingField("metadata.name"))?;
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

/// Publish an Event when the Ready condition changed status or reason. A failure to publish is logged,
/// not fatal: the status already says the same.
pub async fn announce<K>(ctx: &Context, obj: &K, previous: &[Condition], ready: &Condition)
where
    K: Resource<DynamicType = ()>,
{
    let before = previous.iter().find(|c| c.type_ == READY);
    if before.is_some_and(|b| b.status == ready.status && b.reason == ready.reason) {
        return;
    }
    // Waiting for pods is a normal step; anything else that is not Ready needs someone's attention.
    let normal =
        status_of(std::slice::from_ref(ready), READY) == Some("True") || ready.reason == REASON_PENDING;
    let event = Event {
        type_: if normal { EventType::Normal } else { EventType::Warning },
        reason: ready.reason.clone(),
        note: Some(ready.message.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

/// A watched object that does not deserialize (written against another version of the CRD, say) is
/// reported on its own status and waits for a change; the controller keeps serving every other object.
pub async fn reconcile_guarded<K, F, Fut>(
    obj: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    match &obj.0 {
        Ok(valid) => reconcile(Arc::new(valid.clone()), ctx).await,
        Err(invalid) => {
            let name = invalid.metadata.name.clone().unwrap_or_default();
            warn!(kind = %K::kind(&()), %name, error = %invalid.error, "cannot read the object");
            let previous: Vec<Condition> = Vec::new();
            let ready = crate::conditions::condition(
                READY,
                false,
                crate::conditions::REASON_INVALID_SPEC,
                format!("the operator cannot read this object: {}", invalid.error),
                invalid.metadata.generation,
                &previous,
                k8s_openapi::jiff::Timestamp::now(),
            );
            apply_status(&ctx.client, obj.as_ref(), serde_json::json!({"conditions": [ready.clone()]}))
                .await?;
            announce(&ctx, obj.as_ref(), &previous, &ready).await;
            Ok(Action::await_change())
        }
    }
}

/// The error policy of both controllers: count it and retry with a growing delay.
pub fn error_policy<K: Resource<DynamicType = ()> + ResourceExt>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any());
    let delay = ctx.backoff(&key);
    warn!(object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    ctx.metrics.failures.with_label_values(&[&K::kind(&()), err.kind()]).inc();
    Action::requeue(delay)
}
