//! The executor of one policy: ConfigMap, ServiceAccount, Deployment (executor + binding-proxy
//! containers), Service and, with more than one replica, a PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort, DownwardAPIProjection,
    DownwardAPIVolumeFile, EmptyDirVolumeSource, GRPCAction, KeyToPath, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements,
    SeccompProfile, SecretVolumeSource, Service, ServiceAccount, ServiceAccountTokenProjection, ServicePort,
    ServiceSpec, TCPSocketAction, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mcp_guard_crds::Callers;
use mcp_guard_crds::v1alpha1::{CallerAuth, McpGuardPolicy};
use sha2::{Digest, Sha256};

use super::config::{IDENTITY_DIR, Rendered, SECRETS_DIR};
use super::{Invalid, Settings, meta, restricted_security_context, selector, token_review};
use mcp_guard_crds::identity::server_audience;

pub const GRPC_PORT: i32 = 9090;
pub const MCP_PORT: i32 = 8080;
pub const METRICS_PORT: i32 = 9091;
pub const CONFIG_DIR: &str = "/etc/mcp-guard";
pub const CONFIG_FILE: &str = "config.yaml";
pub const RUN_DIR: &str = "/run/mcp-guard";
pub const SA_TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const EXECUTOR_CONTAINER: &str = "executor";
pub const PROXY_CONTAINER: &str = "binding-proxy";
/// The user every container runs as (the distroless `nonroot` user).
const NONROOT: i64 = 65532;

/// Everything one policy runs as.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorObjects {
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub service: Service,
    pub pdb: Option<PodDisruptionBudget>,
    pub config_hash: String,
}

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

/// Build every executor object of a policy.
pub fn build(
    policy: &McpGuardPolicy,
    rendered: &Rendered,
    bound_servers: &[String],
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

    let mut pod_labels = labels.clone();
    for s in bound_servers {
        pod_labels.insert(format!("{}{s}", super::BIND_LABEL_PREFIX), "true".into());
    }
    let config_path = format!("{CONFIG_DIR}/{CONFIG_FILE}");
    let socket = format!("{RUN_DIR}/proxy.sock");

    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource { name: child.clone(), ..Default::default() }),
            ..Default::default()
        },
        Volume {
            name: "run".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("1Mi".into())),
            }),
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
    let run_mount = VolumeMount { name: "run".into(), mount_path: RUN_DIR.into(), ..Default::default() };
    let tmp_mount = VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..Default::default() };

    let mut executor_mounts = vec![config_mount.clone(), run_mount.clone(), tmp_mount];
    if token_review {
        // Only the executor gets a token, and only to call TokenReview; the pod does not automount one,
        // so the binding proxy has none.
        volumes.push(kube_api_access());
        executor_mounts.push(VolumeMount {
            name: "kube-api-access".into(),
            mount_path: SA_TOKEN_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }

    let mut proxy_mounts = vec![config_mount, run_mount];
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

    let mut executor_args: Vec<String> = [
        "serve",
        "--config",
        &config_path,
        "--proxy-socket",
        &socket,
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
        executor_args.push("--token-review-audience".into());
        executor_args.push(audience(&name, &ns));
        // Who may execute, and the operator (which may only list tools, for McpServer status), are in
        // the config's `callers`.
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
    let proxy = Container {
        name: PROXY_CONTAINER.into(),
        // The container with the Secrets always runs the operator's image, whatever the policy says.
        image: Some(settings.executor_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec!["proxy".into(), "--config".into(), config_path, "--socket".into(), socket]),
        resources: Some(
            spec.executor.proxy_resources.clone().unwrap_or_else(|| resources("50m", "64Mi", "256Mi")),
        ),
        security_context: Some(restricted_security_context()),
        volume_mounts: Some(proxy_mounts),
        ..Default::default()
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(super::CONFIG_HASH_ANNOTATION.to_string(), config_hash.clone());
    let deployment = Deployment {
        metadata: meta(&child, &ns, labels.clone(), owner),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.executor.replicas),
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
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(NONROOT),
                        run_as_group: Some(NONROOT),
                        fs_group: Some(NONROOT),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    containers: vec![executor, proxy],
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
    let pdb = (spec.executor.replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta(&child, &ns, labels, owner),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(selector(executor_selector_labels(&name))),
            ..Default::default()
        }),
        ..Default::default()
    });
    Ok(ExecutorObjects { config_map, service_account, deployment, service, pdb, config_hash })
}

/// The ClusterRoleBinding that lets a policy's executor call TokenReview (see [`super::token_review`]).
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
