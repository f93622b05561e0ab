//! What every reconcile shares: the client, the event recorder, metrics, settings, and the per-object
//! failure counts that make transient errors back off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::build::Settings;
use crate::discovery::{Discoverer, GrpcTransport, Transport};

/// Every way a reconcile can fail. Invalid specs and missing references are not errors: they are
/// reported in the status and wait for a change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the object has no {0}")]
    MissingField(&'static str),
    #[error("cannot serialize {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A child's name is taken by an object the operator did not make for this owner. Reported on the
    /// owner's status, never adopted, never deleted.
    #[error(
        "{kind} `{name}` already exists and was not created by the operator for this object; it is left \
         alone: delete or rename it, or rename this object"
    )]
    NotOwned { kind: String, name: String },
}

impl Error {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::MissingField(_) => "missing_field",
            Error::Serialize(_) => "serialize",
            Error::Finalizer(_) => "finalizer",
            Error::NotOwned { .. } => "not_owned",
        }
    }
}

/// Operator metrics, served on `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub reconciliations: IntCounterVec,
    pub failures: IntCounterVec,
    pub duration: HistogramVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciliations = IntCounterVec::new(
            Opts::new("mcp_guard_operator_reconciliations_total", "Reconciliations started"),
            &["controller"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new("mcp_guard_operator_reconcile_failures_total", "Reconciliations that failed"),
            &["controller", "error"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("mcp_guard_operator_reconcile_duration_seconds", "Reconcile duration")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
            &["controller"],
        )?;
        registry.register(Box::new(reconciliations.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Metrics { registry, reconciliations, failures, duration })
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub settings: Settings,
    /// Asks executors about their bound servers (McpServer status `tools`, `serverInfo`).
    pub discovery: Discoverer,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Metrics) -> Self {
        Self::with_transport(client, settings, metrics, Arc::new(GrpcTransport))
    }

    /// Like [`Context::new`], with another way to call executors (tests).
    pub fn with_transport(
        client: Client,
        settings: Settings,
        metrics: Metrics,
        transport: Arc<dyn Transport>,
    ) -> Self {
        let reporter =
            Reporter { controller: "mcp-guard-operator".into(), instance: std::env::var("POD_NAME").ok() };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            discovery: Discoverer::new(transport),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before retrying `key` after one more failure: 5 s doubling to 5 min.
    pub fn backoff(&self, key: &str) -> Duration {
        let Ok(mut f) = self.failures.lock() else { return Duration::from_secs(60) };
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }

    /// Forget the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }
}

/// 5 s, 10 s, 20 s, ... capped at 5 minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10));
    Duration::from_secs(secs.min(300))
}

/// Where pods reach the Kubernetes API: the `kubernetes` Service and its endpoints (NetworkPolicy is
/// applied after Service address translation on most CNIs, so both are allowed).
pub async fn api_server_addresses(client: &kube::Client) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(client.clone(), "default");
    if let Ok(svc) = services.get("kubernetes").await
        && let Some(spec) = svc.spec
        && let Some(ip) = spec.cluster_ip
    {
        for p in spec.ports.unwrap_or_default() {
            out.push((ip.clone(), p.port));
        }
    }
    let slices: kube::Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        kube::Api::namespaced(client.clone(), "default");
    match slices.list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=kubernetes")).await
    {
        Ok(list) => {
            for slice in list.items {
                let ports: Vec<i32> = slice.ports.unwrap_or_default().iter().filter_map(|p| p.port).collect();
                for ep in slice.endpoints {
                    for addr in ep.addresses {
                        for port in &ports {
                            out.push((addr.clone(), *port));
                        }
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the API server's endpoints; TokenReview egress may be blocked")
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_delay(1), Duration::from_secs(5));
        assert_eq!(backoff_delay(3), Duration::from_secs(20));
        assert_eq!(backoff_delay(40), Duration::from_secs(300));
    }
}
