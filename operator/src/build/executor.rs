//! The executor of one policy: ConfigMap (shared with its binding proxy), ServiceAccount, Deployment,
//! Service, with more than one replica a PodDisruptionBudget, and optionally a HorizontalPodAutoscaler.
//! Executor pods hold no Secret and no credential: only a token for their own binding proxy (its
//! audience, nothing else), which they reach at its Service's cluster IP (they have no DNS).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort, DownwardAPIProjection,
    DownwardAPIVolumeFile, EmptyDirVolumeSource, GRPCAction, KeyToPath, ObjectFieldSelector, PodSpec,
    PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, Service, ServiceAccount,
    ServiceAccountTokenProjection, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mcp_guard_crds::Callers;
use mcp_guard_crds::v1alpha1::{CallerAuth, McpGuardPolicy};
use sha2::{Digest, Sha256};

use super::config::Rendered;
use super::{Invalid, Settings, meta, restricted_security_context, selector, token_review};

pub const GRPC_PORT: i32 = 9090;
pub const MCP_PORT: i32 = 8080;
pub const METRICS_PORT: i32 = 9091;
pub const CONFIG_DIR: &str = "/etc/mcp-guard";
pub const CONFIG_FILE: &str = "config.yaml";
pub const SA_TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const EXECUTOR_CONTAINER: &str = "executor";

/// Everything one policy runs as.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorObjects {
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub service: Service,
    pub pdb: Option<PodDisruptionBudget>,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub config_hash: String,
}

/// Where executor containers find their token for the binding proxy.
pub const PROXY_TOKEN_DIR: &str = "/var/run/secrets/mcpguard.io/proxy";

/// The name every child of a policy shares.
pub fn executor_name(policy: &str) -> String {
    format!("{policy}-mcp-guard")
}

/// The labels selecting a policy's executor pods.
pub fn executor_selector_labels(policy: &str) -> BTreeMap<String, String> {
    super::labels(&[("app.kubernetes.io/name", "mcp-guard-executor"), (super::POLICY_LABEL, policy)])
}

fn common_labels(policy: &str) -> BTreeMap<String, String> {
    let mut l = executor_selector_labels(policy);
    l.insert("app.kubernetes.io/instance".into(), policy.into());
    l.insert("app.kubernetes.io/managed-by".into(), super::MANAGER.into());
    l
}

/// Hash of the rendered config: it changes, and the pods roll, whenever the config does. A Secret that
/// changes needs no roll (the binding proxy re-reads its mounted files), and the operator cannot read
/// Secrets anyway.
pub fn config_hash(yaml: &str) -> String {
    hex::encode(Sha256::digest(yaml.as_bytes()))[..16].to_string()
}

/// The in-cluster gRPC endpoint of a policy.
pub fn endpoint(policy: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc:{GRPC_PORT}", executor_name(policy))
}

/// The audience callers' service-account tokens must be issued for.
pub fn audience(policy: &str, namespace: &str) -> String {
    format!("mcpguard.io/{namespace}/{policy}")
}

/// The identities the executor admits (rendered into its config, one entry each). With TokenReview
/// auth: the policy's service accounts or, when it names none, every service account of its own
/// namespace (never "every authenticated caller"); the operator's own identity may only discover.
pub fn callers(policy: &McpGuardPolicy, settings: &Settings) -> Callers {
    let spec = &policy.spec.callers;
    if spec.auth != CallerAuth::ServiceAccountToken {
        return Callers::default();
    }
    let ns = policy.metadata.namespace.clone().unwrap_or_default();
    // `*` as a name is the executor's prefix match: every service account of that namespace.
    let mut execute: Vec<String> = spec
        .service_accounts
        .iter()
        .map(|sa| format!("system:serviceaccount:{}:{}", sa.namespace, sa.name))
        .collect();
    if execute.is_empty() {
        execute.push(format!("system:serviceaccount:{ns}:*"));
    }
    let discover = settings.operator.iter().map(|o| o.username()).collect();
    Callers { execute, discover }
}

/// The image of a policy's executor container: the operator's, or one the admin allowed.
fn executor_image(policy: &McpGuardPolicy, settings: &Settings, errors: &mut Vec<String>) -> String {
    match &policy.spec.executor.image {
        None => settings.executor_image.clone(),
        Some(image)
            if *image == settings.executor_image
                || super::image_allowed(image, &settings.allowed_executor_images) =>
        {
            image.clone()
        }
        Some(image) => {
            errors.push(format!(
                "spec.executor.image: `{image}` is not an allowed executor image (the cluster admin lists \
                 allowed prefixes in the chart value images.executor; allowed now: {})",
                allowed_list(&settings.executor_image, &settings.allowed_executor_images)
            ));
            settings.executor_image.clone()
        }
    }
}

fn allowed_list(default: &str, prefixes: &[String]) -> String {
    let mut all = vec![format!("`{default}`")];
    all.extend(prefixes.iter().map(|p| format!("`{p}*`")));
    all.join(", ")
}

/// Build every executor object of a policy; its binding proxy is at `proxy_ip` (its Service's cluster
/// IP).
pub fn build(
    policy: &McpGuardPolicy,
    rendered: &Rendered,
    proxy_ip: &str,
    settings: &Settings,
    owner: &OwnerReference,
) -> Result<ExecutorObjects, Invalid> {
    let mut errors = Vec::new();
    let name = policy.metadata.name.clone().unwrap_or_default();
    let ns = policy.metadata.namespace.clone().unwrap_or_default();
    let child = super::child_name(&name, "mcp-guard", &mut errors);
    let image = executor_image(policy, settings, &mut errors);
    let spec = &policy.spec;
    let token_review = spec.callers.auth == CallerAuth::ServiceAccountToken;
    if !token_review && !settings.allow_unauthenticated {
        errors.push(
            "spec.callers.auth: `none` (no caller authentication) is not allowed on this cluster: the \
             cluster admin enables it with the chart value executor.allowUnauthenticated"
                .into(),
        );
    }
    if !errors.is_empty() {
        return Err(Invalid(errors));
    }
    let labels = common_labels(&name);
    let config_hash = config_hash(&rendered.yaml);

    let config_map = ConfigMap {
        metadata: meta(&child, &ns, labels.clone(), owner),
        data: Some(BTreeMap::from([(CONFIG_FILE.to_string(), rendered.yaml.clone())])),
        ..Default::default()
    };
    let service_account = ServiceAccount {
        metadata: meta(&child, &ns, labels.clone(), owner),
        automount_service_account_token: Some(false),
        ..Default::default()
    };

    let pod_labels = labels.clone();
    let config_path = format!("{CONFIG_DIR}/{CONFIG_FILE}");

    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource { name: child.clone(), ..Default::default() }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource { medium: None, size_limit: Some(Quantity("64Mi".into())) }),
            ..Default::default()
        },
    ];
    let config_mount = VolumeMount {
        name: "config".into(),
        mount_path: CONFIG_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    };
    let tmp_mount = VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..Default::default() };
    // The pod's one token: for its binding proxy's audience only (no API-server token is mounted; the
    // executor cannot reach the API server anyway), one hour, rotated by the kubelet.
    volumes.push(Volume {
        name: "proxy-token".into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    path: "token".into(),
                    expiration_seconds: Some(3600),
                    audience: Some(super::binding_proxy::proxy_audience(&name, &ns)),
                }),
                ..Default::default()
            }]),
        }),
        ..Default::default()
    });
    let executor_mounts = vec![
        config_mount,
        tmp_mount,
        VolumeMount {
            name: "proxy-token".into(),
            mount_path: PROXY_TOKEN_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    ];

    let mut executor_args: Vec<String> = [
        "serve",
        "--config",
        &config_path,
        "--proxy-url",
        &super::binding_proxy::proxy_url(proxy_ip),
        "--proxy-token-file",
        &format!("{PROXY_TOKEN_DIR}/token"),
        "--grpc-listen",
        &format!("0.0.0.0:{GRPC_PORT}"),
        "--mcp-listen",
        &format!("0.0.0.0:{MCP_PORT}"),
        "--metrics-listen",
        &format!("0.0.0.0:{METRICS_PORT}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if token_review {
        // The binding proxy reviews callers' tokens for the policy's audience (the executor pod cannot
        // reach the API server) and checks them again for each execution. Who may execute, and the
        // operator (which may only list tools, for McpServer status), are in the config's `callers`,
        // which both enforce.
        executor_args.push("--caller-review-via-proxy".into());
    } else {
        // Only where the admin allowed it (checked above): the NetworkPolicy alone guards the port.
        executor_args.push("--insecure-no-auth".into());
        executor_args.push("--insecure-no-auth-network".into());
    }
    let grpc_probe = |initial: i32| Probe {
        grpc: Some(GRPCAction { port: GRPC_PORT, service: None }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(10),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let executor = Container {
        name: EXECUTOR_CONTAINER.into(),
        image: Some(image),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(executor_args),
        ports: Some(vec![port("grpc", GRPC_PORT), port("mcp", MCP_PORT), port("metrics", METRICS_PORT)]),
        readiness_probe: Some(grpc_probe(1)),
        // Liveness must not follow upstream readiness (gRPC health does): an unreachable MCP server
        // would otherwise restart healthy executors forever. A listening gRPC port means alive.
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(GRPC_PORT), ..Default::default() }),
            initial_delay_seconds: Some(10),
            period_seconds: Some(10),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        resources: Some(spec.executor.resources.clone().unwrap_or_else(|| resources("100m", "128Mi", "1Gi"))),
        security_context: Some(restricted_security_context()),
        volume_mounts: Some(executor_mounts),
        ..Default::default()
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(super::CONFIG_HASH_ANNOTATION.to_string(), config_hash.clone());
    let deployment = Deployment {
        metadata: meta(&child, &ns, labels.clone(), owner),
        spec: Some(DeploymentSpec {
            // With an autoscaler, it owns the replica count.
            replicas: if spec.executor.autoscaling.is_some() { None } else { Some(spec.executor.replicas) },
            selector: selector(executor_selector_labels(&name)),
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
                    containers: vec![executor],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let service = Service {
        metadata: meta(&child, &ns, labels.clone(), owner),
        spec: Some(ServiceSpec {
            selector: Some(executor_selector_labels(&name)),
            ports: Some(vec![
                ServicePort {
                    name: Some("grpc".into()),
                    port: GRPC_PORT,
                    target_port: Some(IntOrString::String("grpc".into())),
                    app_protocol: Some("grpc".into()),
                    ..Default::default()
                },
                ServicePort {
                    name: Some("mcp".into()),
                    port: MCP_PORT,
                    target_port: Some(IntOrString::String("mcp".into())),
                    app_protocol: Some("http".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let min_replicas = spec.executor.autoscaling.as_ref().map_or(spec.executor.replicas, |a| a.min_replicas);
    let hpa = spec.executor.autoscaling.as_ref().map(|a| HorizontalPodAutoscaler {
        metadata: meta(&child, &ns, labels.clone(), owner),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: child.clone(),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(a.target_cpu_utilization_percentage),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            behavior: None,
        }),
        ..Default::default()
    });
    let pdb = (min_replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta(&child, &ns, labels, owner),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(selector(executor_selector_labels(&name))),
            ..Default::default()
        }),
        ..Default::default()
    });
    Ok(ExecutorObjects { config_map, service_account, deployment, service, pdb, hpa, config_hash })
}

/// The ClusterRoleBinding that lets a policy's binding proxy call TokenReview (see [`super::token_review`]).
pub fn token_review_binding(policy: &McpGuardPolicy, uid: &str, settings: &Settings) -> ClusterRoleBinding {
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let ns = policy.metadata.namespace.as_deref().unwrap_or_default();
    token_review::binding(policy_owner(ns, name, Some(uid)), settings)
}

/// A policy as the owner of a TokenReview binding.
pub fn policy_owner<'a>(namespace: &'a str, name: &'a str, uid: Option<&'a str>) -> token_review::Owner<'a> {
    token_review::Owner { kind: token_review::OwnerKind::Policy, namespace, name, uid }
}

/// The TokenReview binding's name: from the policy's UID, unique in the cluster.
pub fn token_review_binding_name(uid: &str) -> String {
    token_review::binding_name(uid)
}

/// The name older operator versions gave the binding (`<namespace>-<policy>`, which two policies could
/// share). Only removed, and only when its labels and subject say it is this policy's.
pub fn legacy_token_review_binding_name(namespace: &str, policy: &str) -> String {
    format!("mcp-guard-tokenreview-{namespace}-{policy}")
}

/// Whether an existing TokenReview binding belongs to the policy `namespace/name` with `uid`.
pub fn binding_belongs_to(
    binding: &ClusterRoleBinding,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> bool {
    token_review::belongs_to(binding, policy_owner(namespace, name, uid))
}

/// The pod's service-account token (for TokenReview only: the API server's audience, one hour), the
/// cluster CA and the namespace, as the `kube-api-access` volume; pods do not automount one, so only the
/// container that mounts this volume has a token.
pub(crate) fn kube_api_access() -> Volume {
    Volume {
        name: "kube-api-access".into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(3600),
                        audience: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "metadata.namespace".into(),
                                api_version: None,
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
        }),
        ..Default::default()
    }
}

pub(crate) fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

pub(crate) fn resources(cpu: &str, memory: &str, memory_limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), Quantity(memory_limit.into()))])),
        ..Default::default()
    }
}
