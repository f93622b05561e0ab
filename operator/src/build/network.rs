//! NetworkPolicies. An executor pod (where untrusted code runs) may reach its own policy's binding-proxy
//! pods on the proxy port and nothing else: no DNS, no API server, no upstream. Only allowed callers
//! (and the operator, for tool discovery: the executor lets it list tools, never execute) reach its API
//! ports. A binding-proxy pod admits only its own policy's executor pods, and may reach DNS, its bound
//! servers and the Kubernetes API (TokenReview). A deployed server admits only the binding-proxy pods of
//! policies that bind it.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mcp_guard_crds::v1alpha1::{McpGuardPolicy, McpServer};

use super::binding_proxy::{PROXY_APP, PROXY_PORT, proxy_name, proxy_selector_labels};
use super::config::ResolvedServer;
use super::deployed_server::{gate_port, server_name, server_selector_labels};
use super::executor::{GRPC_PORT, MCP_PORT, executor_name, executor_selector_labels};
use super::{ALWAYS_EXCEPTED, BIND_LABEL_PREFIX, Invalid, Settings, labels, meta, selector};
use ipnet::IpNet;

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

/// The egress rules of a remote McpServer's peers, as the admin's rules allow them: each peer at least
/// the minimum prefix, never inside link-local, loopback or a cluster range, and with every such range it
/// contains excepted. `Invalid` names each peer that breaks a rule.
pub fn remote_egress(
    server: &McpServer,
    settings: &Settings,
) -> Result<Vec<NetworkPolicyEgressRule>, Invalid> {
    let rules = &settings.egress;
    let mut excepted: Vec<(IpNet, &str)> = ALWAYS_EXCEPTED
        .iter()
        .filter_map(|c| c.parse().ok())
        .map(|n| (n, "link-local, loopback or unspecified addresses"))
        .collect();
    excepted.extend(rules.cluster_cidrs.iter().map(|n| (*n, "the cluster's own pod and Service addresses")));
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, peer) in server.spec.egress.iter().enumerate() {
        let field = format!("spec.egress[{i}].cidr");
        let net: IpNet = match peer.cidr.parse() {
            Ok(n) => n,
            Err(_) => {
                errors.push(format!("{field}: `{}` is not an IP block such as 203.0.113.0/24", peer.cidr));
                continue;
            }
        };
        let (min, family) = match net {
            IpNet::V4(_) => (rules.min_prefix_v4, "IPv4"),
            IpNet::V6(_) => (rules.min_prefix_v6, "IPv6"),
        };
        if net.prefix_len() < min {
            errors.push(format!(
                "{field}: `{}` is too broad: {family} peers need at least a /{min} (chart value \
                 egress.minPrefixLength)",
                peer.cidr
            ));
            continue;
        }
        let net = net.trunc();
        if let Some((outer, what)) = excepted.iter().find(|(e, _)| e.contains(&net)) {
            errors.push(format!(
                "{field}: `{}` lies inside {outer}, {what}, which egress never opens",
                peer.cidr
            ));
            continue;
        }
        let mut except: Vec<String> =
            excepted.iter().filter(|(e, _)| net.contains(e)).map(|(e, _)| e.to_string()).collect();
        except.sort();
        except.dedup();
        out.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: net.to_string(),
                    except: (!except.is_empty()).then_some(except),
                }),
                ..Default::default()
            }]),
            ports: Some(peer.ports.iter().map(|p| tcp(p.port)).collect()),
        });
    }
    if errors.is_empty() { Ok(out) } else { Err(Invalid(errors)) }
}

/// The executor NetworkPolicy of a policy. `Invalid` when the caller selector would admit every
/// namespace.
pub fn executor_policy(
    policy: &McpGuardPolicy,
    settings: &Settings,
    owner: &OwnerReference,
) -> Result<NetworkPolicy, Invalid> {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let ns = policy.metadata.namespace.clone().unwrap_or_default();
    let callers = &policy.spec.callers;

    // Ingress: pods of the allowed callers' namespaces (and of the policy's own namespace when no caller
    // is named), on the API ports only. The metrics port is not opened to anyone.
    let mut caller_namespaces: Vec<String> =
        callers.service_accounts.iter().map(|sa| sa.namespace.clone()).collect();
    // No service account named: the policy's own namespace (whose service accounts the executor admits).
    if caller_namespaces.is_empty() {
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
    let mut errors = Vec::new();
    if let Some(sel) = &callers.namespace_selector {
        // The CRD refuses an empty selector; an object stored before that rule still must not open the
        // executor to every namespace.
        if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
        {
            errors.push("spec.callers.namespaceSelector: an empty selector matches every namespace".into());
        }
        from.push(NetworkPolicyPeer { namespace_selector: Some(sel.clone()), ..Default::default() });
    }
    let mut ingress =
        vec![NetworkPolicyIngressRule { from: Some(from), ports: Some(vec![tcp(GRPC_PORT), tcp(MCP_PORT)]) }];
    // The operator's own pods, on the gRPC port only, to list the bound servers (ListTools): tool
    // discovery, and the credentials the binding proxy has no value for (the operator cannot read
    // Secrets, so this is how a missing one reaches the policy's status). With TokenReview the executor
    // admits the operator as a discovery caller, which cannot execute. Without authentication (an admin's
    // opt-in) any admitted peer could run code, the operator too; it can create pods anyway.
    if let Some(operator) = &settings.operator {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(selector(labels(&[(NAMESPACE_NAME_LABEL, &operator.namespace)]))),
                pod_selector: Some(selector(settings.operator_pod_labels.clone())),
                ip_block: None,
            }]),
            ports: Some(vec![tcp(GRPC_PORT)]),
        });
    }

    // Egress: the policy's own binding-proxy pods on the proxy port, nothing else.
    let egress = vec![NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(selector(proxy_selector_labels(&name))),
            ..Default::default()
        }]),
        ports: Some(vec![tcp(PROXY_PORT)]),
    }];
    if !errors.is_empty() {
        return Err(Invalid(errors));
    }
    let mut l = executor_selector_labels(&name);
    l.insert("app.kubernetes.io/managed-by".into(), super::MANAGER.into());
    Ok(NetworkPolicy {
        metadata: meta(&executor_name(&name), &ns, l, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(executor_selector_labels(&name))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    })
}

/// The egress of a binding proxy: DNS in kube-system, each bound server, and the Kubernetes API for
/// TokenReview. Errors name each bound remote server whose egress breaks the admin's rules.
fn proxy_egress(
    servers: &[ResolvedServer<'_>],
    settings: &Settings,
    errors: &mut Vec<String>,
) -> Vec<NetworkPolicyEgressRule> {
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
                // The gate's port: the server's own is closed to every other pod.
                ports: Some(vec![tcp(gate_port(deploy))]),
            });
        } else {
            match remote_egress(r.server, settings) {
                Ok(rules) => egress.extend(rules),
                Err(Invalid(e)) => {
                    errors.extend(e.into_iter().map(|m| format!("McpServer `{}`: {m}", r.binding.name)))
                }
            }
        }
    }
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
    egress
}

/// The binding-proxy NetworkPolicy of a policy: ingress only from the policy's executor pods on the
/// proxy port; egress per [`proxy_egress`]. `Invalid` when a bound remote server's egress breaks the
/// admin's rules.
pub fn proxy_policy(
    policy: &McpGuardPolicy,
    servers: &[ResolvedServer<'_>],
    settings: &Settings,
    owner: &OwnerReference,
) -> Result<NetworkPolicy, Invalid> {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let ns = policy.metadata.namespace.clone().unwrap_or_default();
    let mut errors = Vec::new();
    let egress = proxy_egress(servers, settings, &mut errors);
    if !errors.is_empty() {
        return Err(Invalid(errors));
    }
    let ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(selector(executor_selector_labels(&name))),
            ..Default::default()
        }]),
        ports: Some(vec![tcp(PROXY_PORT)]),
    }];
    let mut l = proxy_selector_labels(&name);
    l.insert("app.kubernetes.io/managed-by".into(), super::MANAGER.into());
    Ok(NetworkPolicy {
        metadata: meta(&proxy_name(&name), &ns, l, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(proxy_selector_labels(&name))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    })
}

/// The NetworkPolicy of a deployed server: only binding-proxy pods whose policy binds it, on the gate's
/// port (`gate_port`); the server's own port is closed to every other pod. The labels only narrow who
/// may knock: the gate admits a request only with a token the operator gave those binding proxies.
pub fn server_policy(server: &McpServer, gate_port: i32, owner: &OwnerReference) -> NetworkPolicy {
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
                        ("app.kubernetes.io/name", PROXY_APP),
                        (&format!("{BIND_LABEL_PREFIX}{name}"), "true"),
                    ]))),
                    ..Default::default()
                }]),
                ports: Some(vec![tcp(gate_port)]),
            }]),
            egress: None,
        }),
    }
}
