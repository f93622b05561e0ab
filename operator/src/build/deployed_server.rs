//! A server the operator runs (`McpServer.spec.deploy`): ServiceAccount, Deployment and Service.
//!
//! The pod has two containers: the user's server, and in front of it the gate (`mcp-guard server-gate`,
//! the operator's own image), which the Service targets. The gate forwards to the server on the pod's
//! loopback only requests that carry a token of this server's audience from an MCP Guard executor of the
//! namespace (TokenReview, with the pod's ServiceAccount, mounted into the gate only); the server's own
//! port is closed to other pods by the server's NetworkPolicy. So reaching a deployed server takes the
//! token the operator projects into the binding proxies of the policies that bind it, not labels any
//! pod could copy.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    Service, ServiceAccount, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mcp_guard_crds::v1alpha1::{DeploySpec, McpServer};

use super::executor::{SA_TOKEN_DIR, kube_api_access, port, resources};
use super::{Invalid, Settings, meta, restricted_security_context, selector};

/// The objects of a deployed server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerObjects {
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub service: Service,
}

/// The port the gate listens on in the pod (the next one when the server itself uses it).
pub fn gate_port(deploy: &DeploySpec) -> i32 {
    if deploy.port == GATE_PORT { GATE_PORT + 1 } else { GATE_PORT }
}

/// The gate's usual pod port.
pub const GATE_PORT: i32 = 9443;
/// The gate's container name.
pub const GATE_CONTAINER: &str = "gate";

/// The name of a deployed server's Deployment, Service and NetworkPolicy.
pub fn server_name(server: &str) -> String {
    format!("{server}-mcp-server")
}

/// The labels selecting a deployed server's pods.
pub fn server_selector_labels(server: &str) -> BTreeMap<String, String> {
    super::labels(&[("app.kubernetes.io/name", "mcp-server"), (super::SERVER_LABEL, server)])
}

/// The URL the binding proxy uses for a deployed server, given its Service's ClusterIP (an IP needs no
/// lookup, so the binding proxy reaches the server even where cluster DNS is down) or, without one, its
/// DNS name.
pub fn server_url(server: &McpServer, deploy: &DeploySpec, cluster_ip: Option<&str>) -> String {
    let name = server.metadata.name.clone().unwrap_or_default();
    let ns = server.metadata.namespace.clone().unwrap_or_default();
    let host = match cluster_ip {
        Some(ip) if !ip.is_empty() && ip != "None" => ip.to_string(),
        _ => format!("{}.{ns}.svc", server_name(&name)),
    };
    format!("http://{host}:{}{}", deploy.port, deploy.path)
}

/// The Deployment and Service of a deployed server. Its image must start with a prefix the admin
/// allowed ([`Settings::allowed_server_images`]).
pub fn build(
    server: &McpServer,
    deploy: &DeploySpec,
    settings: &Settings,
    owner: &OwnerReference,
) -> Result<ServerObjects, Invalid> {
    let mut errors = Vec::new();
    let name = server.metadata.name.clone().unwrap_or_default();
    let ns = server.metadata.namespace.clone().unwrap_or_default();
    let child = super::child_name(&name, "mcp-server", &mut errors);
    if !super::image_allowed(&deploy.image, &settings.allowed_server_images) {
        let allowed = if settings.allowed_server_images.is_empty() {
            "none is allowed yet".to_string()
        } else {
            settings.allowed_server_images.iter().map(|p| format!("`{p}*`")).collect::<Vec<_>>().join(", ")
        };
        errors.push(format!(
            "spec.deploy.image: `{}` is not an allowed server image (the cluster admin lists allowed \
             prefixes in the chart value images.servers; {allowed})",
            deploy.image
        ));
    }
    if !errors.is_empty() {
        return Err(Invalid(errors));
    }
    let mut labels = server_selector_labels(&name);
    labels.insert("app.kubernetes.io/instance".into(), name.clone());
    labels.insert("app.kubernetes.io/managed-by".into(), super::MANAGER.into());
    let probe = |initial: i32| Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(deploy.port), host: None }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(10),
        ..Default::default()
    };
    let gate_port = gate_port(deploy);
    let gate = Container {
        name: GATE_CONTAINER.into(),
        image: Some(settings.executor_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec![
            "server-gate".into(),
            "--listen".into(),
            format!("0.0.0.0:{gate_port}"),
            "--upstream".into(),
            format!("http://127.0.0.1:{}", deploy.port),
            "--namespace".into(),
            ns.clone(),
            "--server".into(),
            name.clone(),
        ]),
        ports: Some(vec![port("gate", gate_port)]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(gate_port), host: None }),
            period_seconds: Some(10),
            ..Default::default()
        }),
        resources: Some(resources("20m", "32Mi", "128Mi")),
        security_context: Some(restricted_security_context()),
        volume_mounts: Some(vec![VolumeMount {
            name: "kube-api-access".into(),
            mount_path: SA_TOKEN_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let container = Container {
        name: "server".into(),
        image: Some(deploy.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: (!deploy.args.is_empty()).then(|| deploy.args.clone()),
        env: (!deploy.env.is_empty()).then(|| deploy.env.clone()),
        ports: Some(vec![port("mcp", deploy.port)]),
        readiness_probe: Some(probe(1)),
        liveness_probe: Some(probe(10)),
        resources: Some(deploy.resources.clone().unwrap_or_else(|| resources("50m", "64Mi", "512Mi"))),
        security_context: Some(restricted_security_context()),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let deployment = Deployment {
        metadata: meta(&child, &ns, labels.clone(), owner),
        spec: Some(DeploymentSpec {
            replicas: Some(deploy.replicas),
            selector: selector(server_selector_labels(&name)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels.clone()), ..Default::default() }),
                spec: Some(PodSpec {
                    // The gate's token (for TokenReview) is mounted into the gate only.
                    service_account_name: Some(child.clone()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container, gate],
                    volumes: Some(vec![
                        Volume {
                            name: "tmp".into(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                        kube_api_access(),
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let service_account = ServiceAccount {
        metadata: meta(&child, &ns, labels.clone(), owner),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let service = Service {
        metadata: meta(&child, &ns, labels, owner),
        spec: Some(ServiceSpec {
            selector: Some(server_selector_labels(&name)),
            ports: Some(vec![ServicePort {
                name: Some("mcp".into()),
                port: deploy.port,
                // The gate, never the server's own port.
                target_port: Some(IntOrString::String("gate".into())),
                app_protocol: Some("http".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(ServerObjects { service_account, deployment, service })
}
