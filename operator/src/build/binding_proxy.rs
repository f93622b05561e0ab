//! The binding proxy of one policy, in pods of its own: ServiceAccount (bound to the TokenReview role),
//! Deployment, Service and, with more than one replica, a PodDisruptionBudget. It alone holds the
//! policy's Secrets and server tokens, and alone reaches the bound servers; it admits only requests that
//! carry a token of the policy's executor service account for its own audience (checked with
//! TokenReview), and it reviews callers' tokens for the executor, which cannot reach the API server.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, KeyToPath, PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource,
    SecretVolumeSource, Service, ServiceAccount, ServiceAccountTokenProjection, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mcp_guard_crds::identity::server_audience;
use mcp_guard_crds::v1alpha1::{CallerAuth, McpGuardPolicy};

use super::config::{APPROVALS_KEY_DIR, IDENTITY_DIR, Rendered, SECRETS_DIR};
use super::executor::{
    CONFIG_DIR, CONFIG_FILE, SA_TOKEN_DIR, audience, executor_name, kube_api_access, port, resources,
};
use super::{Invalid, Settings, meta, restricted_security_context, selector};

/// The port the binding proxy serves the internal API on.
pub const PROXY_PORT: i32 = 9443;
pub const PROXY_CONTAINER: &str = "binding-proxy";

/// Every binding-proxy object of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyObjects {
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub pdb: Option<PodDisruptionBudget>,
}

/// The name of a policy's binding-proxy Deployment, Service, ServiceAccount and NetworkPolicy.
pub fn proxy_name(policy: &str) -> String {
    format!("{policy}-binding-proxy")
}

/// The labels selecting a policy's binding-proxy pods.
pub fn proxy_selector_labels(policy: &str) -> BTreeMap<String, String> {
    super::labels(&[("app.kubernetes.io/name", PROXY_APP), (super::POLICY_LABEL, policy)])
}

/// `app.kubernetes.io/name` of binding-proxy pods.
pub const PROXY_APP: &str = "mcp-guard-binding-proxy";

/// The labels of every binding-proxy object of a policy.
pub(crate) fn common_labels(policy: &str) -> BTreeMap<String, String> {
    let mut l = proxy_selector_labels(policy);
    l.insert("app.kubernetes.io/instance".into(), policy.into());
    l.insert("app.kubernetes.io/managed-by".into(), super::MANAGER.into());
    l
}

/// The audience of the executor's token for its binding proxy.
pub fn proxy_audience(policy: &str, namespace: &str) -> String {
    format!("mcpguard.io/proxy/{namespace}/{policy}")
}

/// The URL the executor dials: the Service's cluster IP (executor pods have no DNS).
pub fn proxy_url(cluster_ip: &str) -> String {
    let host = if cluster_ip.contains(':') { format!("[{cluster_ip}]") } else { cluster_ip.to_string() };
    format!("http://{host}:{PROXY_PORT}")
}

/// The binding proxy's Service (built before the rest: the executor needs its cluster IP).
pub fn service(policy: &McpGuardPolicy, owner: &OwnerReference) -> Service {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let ns = policy.metadata.namespace.clone().unwrap_or_default();
    Service {
        metadata: meta(&proxy_name(&name), &ns, common_labels(&name), owner),
        spec: Some(ServiceSpec {
            selector: Some(proxy_selector_labels(&name)),
            ports: Some(vec![ServicePort {
                name: Some("proxy".into()),
                port: PROXY_PORT,
                target_port: Some(IntOrString::String("proxy".into())),
                app_protocol: Some("grpc".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Build the binding proxy's ServiceAccount, Deployment and PodDisruptionBudget. `config_hash` rolls
/// its pods with the executor's when the rendered config changes.
pub fn build(
    policy: &McpGuardPolicy,
    rendered: &Rendered,
    bound_servers: &[String],
    config_hash: &str,
    settings: &Settings,
    owner: &OwnerReference,
) -> Result<ProxyObjects, Invalid> {
    let mut errors = Vec::new();
    let name = policy.metadata.name.clone().unwrap_or_default();
    let ns = policy.metadata.namespace.clone().unwrap_or_default();
    let child = super::child_name(&name, "binding-proxy", &mut errors);
    let spec = &policy.spec;
    let replicas = spec.binding_proxy.replicas.max(1);
    let limits = &rendered.config.binding.rate_limits;
    for (field, rate) in [("perCaller", &limits.per_caller), ("perTool", &limits.per_tool)] {
        if let Some(rate) = rate
            && i64::from(rate.requests) < i64::from(replicas)
        {
            errors.push(format!(
                "spec.binding.rateLimits.{field}.requests: {} cannot be shared by {replicas} binding-proxy \
                 replicas (each enforces an equal share): allow at least {replicas} or lower \
                 spec.bindingProxy.replicas",
                rate.requests
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Invalid(errors));
    }
    let labels = common_labels(&name);
    let service_account = ServiceAccount {
        metadata: meta(&child, &ns, labels.clone(), owner),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let config_path = format!("{CONFIG_DIR}/{CONFIG_FILE}");
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource { name: executor_name(&name), ..Default::default() }),
            ..Default::default()
        },
        // Its token for the API server, to call TokenReview (executors' and callers' tokens).
        kube_api_access(),
    ];
    let mut proxy_mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "kube-api-access".into(),
            mount_path: SA_TOKEN_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    ];
    for (i, (secret, keys)) in rendered.secrets.iter().enumerate() {
        let vol = format!("secret-{i}");
        volumes.push(Volume {
            name: vol.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                items: Some(
                    keys.iter().map(|k| KeyToPath { key: k.clone(), path: k.clone(), mode: None }).collect(),
                ),
                default_mode: Some(0o440),
                // Optional: the pod starts while a Secret or key does not exist yet (the operator cannot
                // tell, having no access to Secrets); the binding proxy reports the missing file, the
                // operator puts it in the policy's status, and the kubelet fills the volume once the
                // Secret appears.
                optional: Some(true),
            }),
            ..Default::default()
        });
        // A directory mount (not subPath), so a rotated Secret reaches the running proxy.
        proxy_mounts.push(VolumeMount {
            name: vol,
            mount_path: format!("{SECRETS_DIR}/{secret}"),
            read_only: Some(true),
            ..Default::default()
        });
    }
    // The key that seals approval journals: one Secret key, in the binding proxy only (the executor
    // never sees a journal in the clear). Optional like the other Secret volumes: the proxy reports a
    // key it cannot read.
    if let Some((secret, key)) = &rendered.journal_key {
        volumes.push(Volume {
            name: "approvals-key".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                items: Some(vec![KeyToPath { key: key.clone(), path: key.clone(), mode: None }]),
                default_mode: Some(0o440),
                optional: Some(true),
            }),
            ..Default::default()
        });
        proxy_mounts.push(VolumeMount {
            name: "approvals-key".into(),
            mount_path: APPROVALS_KEY_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    // One token per deployed server, each for that server's gate only (its own audience), in the
    // binding proxy only: the proxy sends it to the gate; the executor container never has it.
    if !rendered.identities.is_empty() {
        volumes.push(Volume {
            name: "server-identity".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o444),
                sources: Some(
                    rendered
                        .identities
                        .iter()
                        .map(|server| VolumeProjection {
                            service_account_token: Some(ServiceAccountTokenProjection {
                                path: format!("{server}/token"),
                                expiration_seconds: Some(3600),
                                audience: Some(server_audience(&ns, server)),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
        proxy_mounts.push(VolumeMount {
            name: "server-identity".into(),
            mount_path: IDENTITY_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }

    let mut args: Vec<String> = vec![
        "proxy".into(),
        "--config".into(),
        config_path,
        "--listen".into(),
        format!("0.0.0.0:{PROXY_PORT}"),
        "--executor-audience".into(),
        proxy_audience(&name, &ns),
        "--executor-identity".into(),
        format!("system:serviceaccount:{ns}:{}", executor_name(&name)),
        "--replicas".into(),
        replicas.to_string(),
    ];
    if spec.callers.auth == CallerAuth::ServiceAccountToken {
        args.push("--caller-audience".into());
        args.push(audience(&name, &ns));
    }
    let tcp_probe = |initial: i32| Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(PROXY_PORT), ..Default::default() }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(10),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let container = Container {
        name: PROXY_CONTAINER.into(),
        // The container with the Secrets always runs the operator's image, whatever the policy says.
        image: Some(settings.executor_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        ports: Some(vec![port("proxy", PROXY_PORT)]),
        readiness_probe: Some(tcp_probe(1)),
        liveness_probe: Some(tcp_probe(10)),
        resources: Some(
            spec.binding_proxy
                .resources
                .clone()
                .or_else(|| spec.executor.proxy_resources.clone())
                .unwrap_or_else(|| resources("50m", "64Mi", "256Mi")),
        ),
        security_context: Some(restricted_security_context()),
        volume_mounts: Some(proxy_mounts),
        ..Default::default()
    };
    let mut pod_labels = proxy_selector_labels(&name);
    pod_labels.insert("app.kubernetes.io/instance".into(), name.clone());
    // A deployed server's NetworkPolicy admits the proxies of policies that bind it, by these labels.
    for s in bound_servers {
        pod_labels.insert(format!("{}{s}", super::BIND_LABEL_PREFIX), "true".into());
    }
    let annotations = BTreeMap::from([(super::CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string())]);
    let deployment = Deployment {
        metadata: meta(&child, &ns, labels.clone(), owner),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            // Never more proxies than `replicas`, even while rolling: each enforces a 1/replicas share
            // of the rate limits, and a surge pod would add a share.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            selector: selector(proxy_selector_labels(&name)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(child.clone()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(super::restricted_pod_security_context()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let pdb = (replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta(&child, &ns, labels, owner),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(selector(proxy_selector_labels(&name))),
            ..Default::default()
        }),
        ..Default::default()
    });
    Ok(ProxyObjects { service_account, deployment, pdb })
}
