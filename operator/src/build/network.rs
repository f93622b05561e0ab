//! NetworkPolicies: an executor pod may reach DNS, its bound servers and (for TokenReview) the
//! Kubernetes API, nothing else; only allowed callers reach its API ports. A deployed server admits only
//! the executor pods of policies that bind it. With TokenReview auth, the operator's own pods reach an
//! executor's gRPC port (for tool discovery; the executor lets the operator list tools, never execute).

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mcp_guard_crds::v1alpha1::{CallerAuth, McpGuardPolicy, McpServer};

use super::config::ResolvedServer;
use super::deployed_server::{server_name, server_selector_labels};
use super::executor::{GRPC_PORT, MCP_PORT, executor_name, executor_selector_labels};
use super::{BIND_LABEL_PREFIX, Settings, labels, meta, selector};

const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort { port: Some(IntOrString::Int(port)), protocol: Some("TCP".into()), end_port: None }
}

fn udp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort { port: Some(IntOrString::Int(port)), protocol: Some("UDP".into()), end_port: None }
}

fn namespaces(names: Vec<String>) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: NAMESPACE_NAME_LABEL.into(),
            operator: "In".into(),
            values: Some(names),
        }]),
        match_labels: None,
    }
}

/// The executor NetworkPolicy of a policy.
pub fn executor_policy(
    policy: &McpGuardPolicy,
    servers: &[ResolvedServer<'_>],
    settings: &Settings,
    owner: &OwnerReference,
) -> NetworkPolicy {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let ns = policy.metadata.namespace.clone().unwrap_or_default();
    let callers = &policy.spec.callers;

    // Ingress: pods of the allowed callers' namespaces (and of the policy's own namespace when no caller
    // is named), on the API ports only. The metrics port is not opened to anyone.
    let mut caller_namespaces: Vec<String> =
        callers.service_accounts.iter().map(|sa| sa.namespace.clone()).collect();
    if caller_namespaces.is_empty() && callers.namespace_selector.is_none() {
        caller_namespaces.push(ns.clone());
    }
    caller_namespaces.sort();
    caller_namespaces.dedup();
    let mut from = Vec::new();
    if !caller_namespaces.is_empty() {
        from.push(NetworkPolicyPeer {
            namespace_selector: Some(namespaces(caller_namespaces)),
            ..Default::default()
        });
    }
    if let Some(sel) = &callers.namespace_selector {
        from.push(NetworkPolicyPeer { namespace_selector: Some(sel.clone()), ..Default::default() });
    }
    let mut ingress =
        vec![NetworkPolicyIngressRule { from: Some(from), ports: Some(vec![tcp(GRPC_PORT), tcp(MCP_PORT)]) }];
    // The operator's own pods, on the gRPC port only, to list the bound servers (ListTools). With
    // TokenReview only: there the executor admits the operator as a discovery caller, which cannot
    // execute; without authentication a network peer could run code.
    if callers.auth == CallerAuth::ServiceAccountToken
        && let Some(operator) = &settings.operator
    {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(selector(labels(&[(NAMESPACE_NAME_LABEL, &operator.namespace)]))),
                pod_selector: Some(selector(settings.operator_pod_labels.clone())),
                ip_block: None,
            }]),
            ports: Some(vec![tcp(GRPC_PORT)]),
        });
    }

    // Egress: DNS in kube-system, each bound server, and the Kubernetes API for TokenReview.
    let mut egress = vec![NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(namespaces(vec!["kube-system".into()])),
            ..Default::default()
        }]),
        ports: Some(vec![udp(53), tcp(53)]),
    }];
    for r in servers {
        let spec = &r.server.spec;
        if let Some(deploy) = &spec.deploy {
            let server = r.server.metadata.name.clone().unwrap_or_default();
            egress.push(NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(selector(server_selector_labels(&server))),
                    ..Default::default()
                }]),
                ports: Some(vec![tcp(deploy.port)]),
            });
        } else {
            for peer in &spec.egress {
                egress.push(NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        ip_block: Some(IPBlock { cidr: peer.cidr.clone(), except: None }),
                        ..Default::default()
                    }]),
                    ports: Some(peer.ports.iter().map(|p| tcp(p.port)).collect()),
                });
            }
        }
    }
    if callers.auth == CallerAuth::ServiceAccountToken {
        for (ip, port) in &settings.api_server {
            let cidr = if ip.contains(':') { format!("{ip}/128") } else { format!("{ip}/32") };
            egress.push(NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    ip_block: Some(IPBlock { cidr, except: None }),
                    ..Default::default()
                }]),
                ports: Some(vec![tcp(*port)]),
            });
        }
    }

    let mut l = executor_selector_labels(&name);
    l.insert("app.kubernetes.io/managed-by".into(), super::MANAGER.into());
    NetworkPolicy {
        metadata: meta(&executor_name(&name), &ns, l, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(executor_selector_labels(&name))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    }
}

/// The NetworkPolicy of a deployed server: only executor pods whose policy binds it, on its port.
pub fn server_policy(server: &McpServer, port: i32, owner: &OwnerReference) -> NetworkPolicy {
    let name = server.metadata.name.clone().unwrap_or_default();
    let ns = server.metadata.namespace.clone().unwrap_or_default();
    let mut l = server_selector_labels(&name);
    l.insert("app.kubernetes.io/managed-by".into(), super::MANAGER.into());
    NetworkPolicy {
        metadata: meta(&server_name(&name), &ns, l, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(server_selector_labels(&name))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(selector(labels(&[
                        ("app.kubernetes.io/name", "mcp-guard-executor"),
                        (&format!("{BIND_LABEL_PREFIX}{name}"), "true"),
                    ]))),
                    ..Default::default()
                }]),
                ports: Some(vec![tcp(port)]),
            }]),
            egress: None,
        }),
    }
}
