//! The reconcilers. Each one reads as its pipeline: dereference → validate → build → apply → status.
//! What the steps of both share is here: server-side apply, the typed status apply, the Ready Event, the
//! one invalid-spec report, and [`Run`], the state of one reconcile.

pub mod mcp_approval;
pub mod mcp_guard_policy;
pub mod mcp_server;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Client, Resource, ResourceExt};
use mcp_guard_crds::v1alpha1::{McpGuardPolicyStatus, McpServerStatus};
use prometheus::HistogramTimer;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::build::{Settings, owned_by, token_review};
use crate::conditions::{
    AVAILABLE, READY, REASON_AVAILABLE, REASON_INVALID_SPEC, REASON_NOT_OWNED, REASON_PENDING,
    REASON_RESERVED_NAMESPACE, REASON_UNAVAILABLE, condition, status_of,
};
use crate::context::{Context, Error};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "mcp-guard";

/// How long a reconciled object waits before looking again when nothing it watches changes.
pub const RECHECK: Duration = Duration::from_secs(300);

/// A namespaced object this operator reads and applies: a child, a custom resource, or a
/// [`DeserializeGuard`] of one.
pub trait Object:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned
{
}

impl<K> Object for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned
{
}

/// Server-side apply a namespaced child, taking ownership of every field it sets (so a hand edit of
/// those fields is reverted on the next reconcile). A child is created only when its name is free: an
/// existing object that is not this owner's ([`owned_by`]) is never adopted ([`Error::NotOwned`]).
pub async fn apply<K>(client: &Client, obj: &K) -> Result<K, Error>
where
    K: Object + Serialize,
{
    let ns = obj.meta().namespace.as_deref().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = obj.meta().name.as_deref().ok_or(Error::MissingField("metadata.name"))?;
    let owner = obj
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .ok_or(Error::MissingField("metadata.ownerReferences"))?;
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    if let Some(existing) = api.get_metadata_opt(name).await?
        && !owned_by(&existing.metadata, &owner.uid)
    {
        return Err(Error::NotOwned { kind: K::kind(&()).into_owned(), name: name.to_string() });
    }
    Ok(api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj)).await?)
}

/// Delete a namespaced child of the owner with `owner_uid`, if it exists and is that owner's; an object
/// of the same name the operator did not make is left alone.
pub async fn delete_owned<K: Object>(
    client: &Client,
    ns: &str,
    name: &str,
    owner_uid: &str,
) -> Result<(), Error> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.get_metadata_opt(name).await? {
        Some(existing) if owned_by(&existing.metadata, owner_uid) => {}
        _ => return Ok(()),
    }
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

/// The body of a status apply: the kind's type information, then its typed status. `None` and empty
/// fields are left out (`skip_serializing_if` on the status types), so an apply drops a field this
/// manager set before and does not set now, as a partial apply should.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a, S> {
    api_version: &'a str,
    kind: &'a str,
    status: &'a S,
}

/// Delete `owner`'s TokenReview binding named `binding`, if it exists and its labels and subject say
/// it is `owner`'s. Anyone else's binding of that name stays.
pub async fn remove_binding_if_ours(
    client: &Client,
    binding: &str,
    owner: token_review::Owner<'_>,
) -> Result<(), Error> {
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    if let Some(existing) = api.get_opt(binding).await?
        && token_review::belongs_to(&existing, owner)
    {
        delete_cluster_if_present::<ClusterRoleBinding>(client, binding).await?;
    }
    Ok(())
}

/// Apply `owner`'s TokenReview binding (its `uid` set); never take over a binding of that name that is
/// not `owner`'s (`Error::NotOwned`). Its role is fixed once created, so a binding to another role (the
/// chart renamed it) is replaced.
pub async fn apply_token_review_binding(
    client: &Client,
    owner: token_review::Owner<'_>,
    settings: &Settings,
) -> Result<(), Error> {
    let binding = token_review::binding(owner, settings);
    let name = token_review::binding_name(owner.uid.unwrap_or_default());
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    if let Some(existing) = api.get_opt(&name).await? {
        if !token_review::belongs_to(&existing, owner) {
            return Err(Error::NotOwned { kind: "ClusterRoleBinding".into(), name });
        }
        if existing.role_ref != binding.role_ref {
            delete_cluster_if_present::<ClusterRoleBinding>(client, &name).await?;
        }
    }
    apply_cluster(client, &binding).await?;
    Ok(())
}

/// Apply a namespaced RoleBinding child like [`apply`]. Its role is fixed once created, so a binding of
/// this owner's to another role (the chart renamed it) is deleted first and made anew.
pub async fn apply_role_binding(client: &Client, binding: &RoleBinding) -> Result<(), Error> {
    let ns = binding.metadata.namespace.as_deref().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = binding.metadata.name.as_deref().ok_or(Error::MissingField("metadata.name"))?;
    let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    if let Some(existing) = api.get_opt(name).await? {
        let owner = binding.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true));
        let owner_uid =
            owner.map(|o| o.uid.as_str()).ok_or(Error::MissingField("metadata.ownerReferences"))?;
        if !owned_by(&existing.metadata, owner_uid) {
            return Err(Error::NotOwned { kind: "RoleBinding".into(), name: name.to_string() });
        }
        if existing.role_ref != binding.role_ref {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(binding)).await?;
    Ok(())
}

/// Server-side apply the status subresource of a custom resource.
pub async fn apply_status<K, S>(client: &Client, obj: &K, status: &S) -> Result<(), Error>
where
    K: Object,
    S: Serialize + Debug,
{
    let ns = obj.meta().namespace.as_deref().ok_or(Error::MissingField("metadata.namespace"))?;
    let name = obj.meta().name.as_deref().ok_or(Error::MissingField("metadata.name"))?;
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let body = StatusApply { api_version: &K::api_version(&()), kind: &K::kind(&()), status };
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

/// What both status types share: conditions and the generation they describe. One trait, so that one
/// helper ([`invalid_spec`]) writes the status of an invalid spec for either kind.
pub trait Conditioned: Serialize + Debug + Default {
    fn conditions(&self) -> &[Condition];
    /// A status of only these conditions: every other field is left out of the apply, so dropped.
    fn with_conditions(conditions: Vec<Condition>, observed_generation: Option<i64>) -> Self;
}

macro_rules! conditioned {
    ($($status:ty),*) => {$(
        impl Conditioned for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn with_conditions(conditions: Vec<Condition>, observed_generation: Option<i64>) -> Self {
                Self { conditions, observed_generation, ..Default::default() }
            }
        }
    )*};
}
conditioned!(McpGuardPolicyStatus, McpServerStatus);

/// How one reconcile stamps its conditions: with the object's generation and one `now`, keeping a
/// condition's `lastTransitionTime` while its status holds (hence the conditions it had).
#[derive(Debug, Clone)]
pub struct Stamp {
    pub generation: Option<i64>,
    pub previous: Vec<Condition>,
    pub now: Timestamp,
}

impl Stamp {
    pub fn condition(&self, type_: &str, ok: bool, reason: &str, message: impl Into<String>) -> Condition {
        condition(type_, ok, reason, message, self.generation, &self.previous, self.now)
    }
}

/// One reconcile of one object: what its steps share. Starting it counts the reconcile and times it
/// until it is dropped.
pub struct Run<'a, K> {
    pub ctx: &'a Context,
    pub obj: &'a K,
    pub ns: String,
    /// `Kind/namespace/name`, the key of the failure backoff (as [`error_policy`] names it).
    pub key: String,
    pub stamp: Stamp,
    _timer: HistogramTimer,
}

impl<'a, K> Run<'a, K>
where
    K: Object + HasStatus,
    K::Status: Conditioned,
{
    pub fn start(ctx: &'a Context, obj: &'a K) -> Result<Self, Error> {
        let kind = K::kind(&());
        let timer = ctx.metrics.duration.with_label_values(&[&kind]).start_timer();
        ctx.metrics.reconciliations.with_label_values(&[&kind]).inc();
        let ns = obj.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
        let key = format!("{kind}/{ns}/{}", obj.name_any());
        let stamp = Stamp {
            generation: obj.meta().generation,
            previous: obj.status().map(|s| s.conditions().to_vec()).unwrap_or_default(),
            now: Timestamp::now(),
        };
        Ok(Run { ctx, obj, ns, key, stamp, _timer: timer })
    }

    pub fn condition(&self, type_: &str, ok: bool, reason: &str, message: impl Into<String>) -> Condition {
        self.stamp.condition(type_, ok, reason, message)
    }

    /// `Available`: at least one of the `want` `pods` pods is ready (or none is wanted).
    pub fn available(&self, ready: i32, want: i32, pods: &str) -> Condition {
        let message = format!("{ready} of {want} {pods} pods ready");
        if ready >= want.min(1) {
            self.condition(AVAILABLE, true, REASON_AVAILABLE, message)
        } else {
            self.condition(AVAILABLE, false, REASON_UNAVAILABLE, message)
        }
    }

    /// Apply the status, then announce a change of its Ready condition.
    pub async fn report(&self, status: &K::Status, ready: &Condition) -> Result<(), Error> {
        apply_status(&self.ctx.client, self.obj, status).await?;
        announce(self.ctx, self.obj, &self.stamp.previous, ready).await;
        Ok(())
    }

    /// [`invalid_spec`] for this object: `held` are the conditions that still hold before `Ready`.
    pub async fn invalid_spec(&self, held: Vec<Condition>, message: String) -> Result<Action, Error> {
        invalid_spec::<_, K::Status>(self.ctx, self.obj, &self.stamp, held, message, self.stamp.generation)
            .await
    }

    /// The object is in a reserved namespace: say so and wait for a change (none will help but moving it).
    pub async fn reserved_namespace(&self) -> Option<Result<Action, Error>> {
        if !self.ctx.settings.reserved_namespaces.contains(&self.ns) {
            return None;
        }
        let message = format!(
            "namespace {} is reserved: the operator creates nothing here (chart value reservedNamespaces); \
             create this object in a namespace of your own",
            self.ns
        );
        Some(self.refuse(Vec::new(), REASON_RESERVED_NAMESPACE, message, Action::await_change()).await)
    }

    /// A child's name is taken by an object the operator did not make ([`Error::NotOwned`]): say which,
    /// and look again later (the operator does not watch objects it does not own).
    pub async fn not_owned(&self, held: Vec<Condition>, error: &Error) -> Result<Action, Error> {
        self.refuse(held, REASON_NOT_OWNED, error.to_string(), Action::requeue(RECHECK)).await
    }

    async fn refuse(
        &self,
        held: Vec<Condition>,
        reason: &str,
        message: String,
        action: Action,
    ) -> Result<Action, Error> {
        let ready = self.condition(READY, false, reason, message);
        let mut conditions = held;
        conditions.push(ready.clone());
        self.report(&K::Status::with_conditions(conditions, self.stamp.generation), &ready).await?;
        Ok(action)
    }
}

/// The one way an invalid spec is reported, for either kind and for an object that does not even parse:
/// a status of `held` and `Ready=False`/`InvalidSpec` with `message`, an Event on the transition, and no
/// requeue, as only a change of the spec can fix it.
pub async fn invalid_spec<K, S>(
    ctx: &Context,
    obj: &K,
    stamp: &Stamp,
    held: Vec<Condition>,
    message: String,
    observed_generation: Option<i64>,
) -> Result<Action, Error>
where
    K: Object,
    S: Conditioned,
{
    let ready = stamp.condition(READY, false, REASON_INVALID_SPEC, message);
    let mut conditions = held;
    conditions.push(ready.clone());
    apply_status(&ctx.client, obj, &S::with_conditions(conditions, observed_generation)).await?;
    announce(ctx, obj, &stamp.previous, &ready).await;
    Ok(Action::await_change())
}

/// A watched object that does not deserialize (written against another version of the CRD, say) is
/// reported on its own status and waits for a change; the controller keeps serving every other object.
pub async fn reconcile_guarded<K, F, Fut>(
    obj: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Object + HasStatus,
    K::Status: Conditioned,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    match &obj.0 {
        Ok(valid) => reconcile(Arc::new(valid.clone()), ctx).await,
        Err(invalid) => {
            let name = invalid.metadata.name.clone().unwrap_or_default();
            warn!(kind = %K::kind(&()), %name, error = %invalid.error, "cannot read the object");
            let stamp = Stamp {
                generation: invalid.metadata.generation,
                previous: Vec::new(),
                now: Timestamp::now(),
            };
            let message = format!("the operator cannot read this object: {}", invalid.error);
            // No observedGeneration: the operator has not read the spec of any generation.
            invalid_spec::<_, K::Status>(&ctx, obj.as_ref(), &stamp, Vec::new(), message, None).await
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
