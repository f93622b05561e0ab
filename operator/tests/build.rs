//! The pure builders, from YAML fixtures: no client, no cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use mcp_guard_crds::GuardConfig;
use mcp_guard_crds::v1alpha1::{McpGuardPolicy, McpServer};
use mcp_guard_operator::build::config::{ResolvedServer, render};
use mcp_guard_operator::build::executor::{self, EXECUTOR_CONTAINER, PROXY_CONTAINER};
use mcp_guard_operator::build::{OperatorIdentity, Settings, deployed_server, network};

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct World {
    policy: McpGuardPolicy,
    github: McpServer,
    time: McpServer,
}

fn world(policy: &str) -> World {
    World {
        policy: fixture(policy),
        github: fixture("server-remote.yaml"),
        time: fixture("server-deployed.yaml"),
    }
}

impl World {
    fn resolved(&self) -> Vec<ResolvedServer<'_>> {
        self.policy
            .spec
            .servers
            .iter()
            .map(|b| ResolvedServer {
                binding: b,
                server: if b.name == "github" { &self.github } else { &self.time },
            })
            .collect()
    }
}

fn settings() -> Settings {
    Settings {
        executor_image: "mcp-guard.local/mcp-guard:test".into(),
        api_server: vec![("10.96.0.1".into(), 443), ("192.0.2.2".into(), 6443)],
        operator: Some(OperatorIdentity {
            namespace: "mcp-guard-system".into(),
            service_account: "mcp-guard".into(),
        }),
        allowed_server_images: vec!["mcp-guard.local/".into()],
        allow_unauthenticated: true,
        ..Default::default()
    }
}

const OPERATOR: &str = "system:serviceaccount:mcp-guard-system:mcp-guard";

fn executor_objects(w: &World) -> executor::ExecutorObjects {
    let resolved = w.resolved();
    let rendered = render(&w.policy, &resolved, &settings()).unwrap();
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let bound: Vec<String> = resolved.iter().map(|r| r.server.metadata.name.clone().unwrap()).collect();
    executor::build(&w.policy, &rendered, &bound, &settings(), &owner).unwrap()
}

fn o_config(w: &World) -> String {
    executor_objects(w).config_map.data.unwrap()["config.yaml"].clone()
}

fn pod(o: &executor::ExecutorObjects) -> PodSpec {
    o.deployment.spec.clone().unwrap().template.spec.unwrap()
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn the_rendered_config_is_what_the_executor_reads() {
    let w = world("policy.yaml");
    let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
    let parsed = GuardConfig::from_yaml(&rendered.yaml, "configmap").unwrap();
    assert_eq!(parsed, rendered.config);
    assert_eq!(parsed.policy, "team-a/agents");
    assert_eq!(parsed.limits.memory.to_string(), "32Mi");
    let gh = &parsed.servers[0];
    assert_eq!(gh.name, "github");
    assert_eq!(gh.url.as_deref(), Some("https://api.githubcopilot.com/mcp/"));
    let auth = &gh.headers[0];
    assert_eq!(
        auth.value_from.as_ref().unwrap().file.as_deref(),
        Some("/var/run/secrets/mcp-guard/github-token/token")
    );
    assert_eq!(auth.prefix, "Bearer ");
    assert_eq!(gh.headers[1].value.as_deref(), Some("team-a"));
    // Server and policy deny lists add up; approval-required tools are not bound (fail closed).
    assert!(gh.tools.allows("get_issue"));
    assert!(!gh.tools.allows("delete_repo") && !gh.tools.allows("get_secret_scanning_alert"));
    assert!(!gh.tools.allows("get_admin_token"));
    assert!(!gh.tools.allows("create_issue"));
    assert!(!gh.allow_private_endpoint);
    assert!(rendered.notes.iter().any(|n| n.contains("get_admin_token")), "{:?}", rendered.notes);
    // The alias is the sandbox name; a deployed server is reached on its private Service address.
    let clock = &parsed.servers[1];
    assert_eq!(clock.name, "clock");
    assert_eq!(clock.url.as_deref(), Some("http://10.96.0.50:8080/mcp"));
    assert!(clock.allow_private_endpoint);
    assert_eq!(
        rendered.secrets.keys().collect::<Vec<_>>(),
        ["github-token", "time-key"],
        "the proxy mounts both referenced Secrets"
    );
}

#[test]
fn a_deployed_server_without_a_url_yet_is_an_error_that_names_it() {
    let mut w = world("policy.yaml");
    w.time.status = None;
    let err = render(&w.policy, &w.resolved(), &settings()).unwrap_err().to_string();
    assert!(err.contains("McpServer `time` has no URL yet"), "{err}");
}

#[test]
fn the_executor_container_never_gets_a_secret() {
    let w = world("policy.yaml");
    let o = executor_objects(&w);
    let pod = pod(&o);
    let secret_volumes: Vec<&str> =
        pod.volumes.iter().flatten().filter(|v| v.secret.is_some()).map(|v| v.name.as_str()).collect();
    assert_eq!(secret_volumes.len(), 2, "one volume per referenced Secret");
    let exec = container(&pod, EXECUTOR_CONTAINER);
    for m in exec.volume_mounts.iter().flatten() {
        assert!(!secret_volumes.contains(&m.name.as_str()), "executor mounts Secret volume {}", m.name);
        assert!(!m.mount_path.starts_with("/var/run/secrets/mcp-guard"), "{}", m.mount_path);
    }
    assert!(exec.env.is_none() && exec.env_from.is_none(), "the executor gets no environment at all");
    // The pod automounts no token; the executor's own projected token (for TokenReview) is no Secret.
    assert_eq!(pod.automount_service_account_token, Some(false));
    let proxy = container(&pod, PROXY_CONTAINER);
    let proxy_mounts: Vec<&str> = proxy.volume_mounts.iter().flatten().map(|m| m.name.as_str()).collect();
    for v in &secret_volumes {
        assert!(proxy_mounts.contains(v), "the binding proxy mounts {v}");
    }
    assert!(!proxy_mounts.contains(&"kube-api-access"), "the binding proxy has no service-account token");
    let gh = pod.volumes.iter().flatten().find(|v| v.name == "secret-0").unwrap();
    let items = gh.secret.as_ref().unwrap().items.clone().unwrap();
    assert_eq!(items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["token"], "only referenced keys");
}

#[test]
fn every_container_is_locked_down() {
    let w = world("policy.yaml");
    let pod = pod(&executor_objects(&w));
    let psc = pod.security_context.clone().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    for c in &pod.containers {
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]), "{}", c.name);
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault", "{}", c.name);
        assert!(c.resources.is_some(), "{}", c.name);
    }
    let exec = container(&pod, EXECUTOR_CONTAINER);
    assert!(exec.readiness_probe.as_ref().unwrap().grpc.is_some());
    let args = exec.args.clone().unwrap().join(" ");
    assert!(
        args.starts_with(
            "serve --config /etc/mcp-guard/config.yaml --proxy-socket /run/mcp-guard/proxy.sock"
        ),
        "{args}"
    );
    assert!(
        args.contains("--grpc-listen 0.0.0.0:9090 --mcp-listen 0.0.0.0:8080 --metrics-listen 0.0.0.0:9091"),
        "{args}"
    );
    assert!(args.contains("--token-review-audience mcpguard.io/team-a/agents"), "{args}");
    // Callers travel in the config file, one list entry each, never joined into a flag.
    assert!(!args.contains("callers"), "{args}");
    let config = GuardConfig::from_yaml(&o_config(&w), "configmap").unwrap();
    assert_eq!(config.callers.execute, ["system:serviceaccount:agents:coder"]);
    // The operator may discover tools, and is not among the callers that may execute.
    assert_eq!(config.callers.discover, [OPERATOR]);
    let proxy = container(&pod, PROXY_CONTAINER);
    assert_eq!(
        proxy.args.clone().unwrap().join(" "),
        "proxy --config /etc/mcp-guard/config.yaml --socket /run/mcp-guard/proxy.sock"
    );
}

#[test]
fn without_token_review_the_executor_gets_no_token_either() {
    let w = world("policy-open.yaml");
    let pod = pod(&executor_objects(&w));
    // The only token is the binding proxy's for the deployed server's gate (not for the API server).
    let projected: Vec<&str> =
        pod.volumes.iter().flatten().filter(|v| v.projected.is_some()).map(|v| v.name.as_str()).collect();
    assert_eq!(projected, ["server-identity"]);
    let exec = container(&pod, EXECUTOR_CONTAINER);
    assert!(exec.volume_mounts.iter().flatten().all(|m| !m.mount_path.contains("serviceaccount")));
    assert!(exec.volume_mounts.iter().flatten().all(|m| m.name != "server-identity"));
    // Without authentication there is no discovery-only caller to be.
    assert!(!exec.args.clone().unwrap().iter().any(|a| a.contains("discovery")));
}

#[test]
fn an_operator_without_a_known_identity_adds_no_discovery_caller_or_ingress() {
    let w = world("policy.yaml");
    let resolved = w.resolved();
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let anonymous = Settings { operator: None, ..settings() };
    let rendered = render(&w.policy, &resolved, &anonymous).unwrap();
    assert!(rendered.config.callers.discover.is_empty());
    assert_eq!(rendered.config.callers.execute, ["system:serviceaccount:agents:coder"]);
    executor::build(&w.policy, &rendered, &[], &anonymous, &owner).unwrap();
    let np = network::executor_policy(&w.policy, &resolved, &anonymous, &owner).unwrap();
    assert_eq!(np.spec.unwrap().ingress.unwrap().len(), 1);
}

#[test]
fn the_pod_template_hash_follows_the_config_and_secret_volumes_are_optional() {
    let w = world("policy.yaml");
    let o = executor_objects(&w);
    let ann = pod_annotations(&o);
    assert_eq!(ann.get("mcpguard.io/config-hash"), Some(&o.config_hash));
    let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
    assert_eq!(executor::config_hash(&rendered.yaml), o.config_hash);
    // The operator cannot read Secrets: a pod must start while one does not exist yet (its proxy
    // reports the missing file), and a rotated one reaches the proxy without a roll.
    let pod = o.deployment.spec.clone().unwrap().template.spec.unwrap();
    let secret_volumes: Vec<_> = pod.volumes.unwrap().into_iter().filter_map(|v| v.secret).collect();
    assert!(!secret_volumes.is_empty());
    assert!(secret_volumes.iter().all(|s| s.optional == Some(true)), "{secret_volumes:?}");
    let mut w2 = world("policy.yaml");
    w2.policy.spec.limits.tool_calls = 5;
    assert_ne!(executor_objects(&w2).config_hash, o.config_hash, "a changed config rolls the pods");
}

fn pod_annotations(o: &executor::ExecutorObjects) -> BTreeMap<String, String> {
    o.deployment.spec.clone().unwrap().template.metadata.unwrap().annotations.unwrap()
}

#[test]
fn service_children_and_pdb() {
    let w = world("policy.yaml");
    let o = executor_objects(&w);
    let ports: Vec<i32> = o.service.spec.clone().unwrap().ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [9090, 8080]);
    assert!(o.pdb.is_some(), "two replicas get a PodDisruptionBudget");
    assert_eq!(o.service_account.automount_service_account_token, Some(false));
    let owner = &o.config_map.metadata.owner_references.clone().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("McpGuardPolicy", Some(true)));
    let open = executor_objects(&world("policy-open.yaml"));
    assert!(open.pdb.is_none(), "one replica: no PodDisruptionBudget");
    let labels = open.deployment.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels.get("bind.mcpguard.io/time").map(String::as_str), Some("true"));
}

#[test]
fn the_network_policy_denies_all_egress_but_dns_and_bound_servers() {
    let w = world("policy.yaml");
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let np = network::executor_policy(&w.policy, &w.resolved(), &settings(), &owner).unwrap();
    let spec = np.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"], "both directions default-deny");
    let egress = spec.egress.unwrap();
    // Every rule names its peers and ports: no rule opens everything.
    for rule in &egress {
        assert!(rule.to.as_ref().is_some_and(|t| !t.is_empty()), "{rule:?}");
        assert!(rule.ports.as_ref().is_some_and(|p| !p.is_empty()), "{rule:?}");
    }
    let describe: Vec<String> = egress
        .iter()
        .map(|r| {
            let to = &r.to.as_ref().unwrap()[0];
            let peer = if let Some(ip) = &to.ip_block {
                ip.cidr.clone()
            } else if let Some(ps) = &to.pod_selector {
                format!(
                    "pods {:?}",
                    ps.match_labels.clone().unwrap().get("mcpguard.io/server").cloned().unwrap()
                )
            } else {
                let ns = to.namespace_selector.clone().unwrap().match_expressions.unwrap();
                format!("ns {:?}", ns[0].values)
            };
            let ports: Vec<String> = r
                .ports
                .iter()
                .flatten()
                .map(|p| format!("{}/{:?}", p.protocol.clone().unwrap(), p.port.clone().unwrap()))
                .collect();
            format!("{peer} {}", ports.join(","))
        })
        .collect();
    assert_eq!(
        describe,
        [
            r#"ns Some(["kube-system"]) UDP/Int(53),TCP/Int(53)"#,
            "140.82.112.0/20 TCP/Int(443)",
            // The deployed server's gate, never the server's own port (8080).
            r#"pods "time" TCP/Int(9443)"#,
            "10.96.0.1/32 TCP/Int(443)",
            "192.0.2.2/32 TCP/Int(6443)",
        ]
    );
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 2, "callers, and the operator for discovery");
    // The operator's pods (its namespace AND its pod labels, in one peer), on the gRPC port only.
    let operator = &ingress[1];
    let ports: Vec<String> =
        operator.ports.iter().flatten().map(|p| format!("{:?}", p.port.clone().unwrap())).collect();
    assert_eq!(ports, ["Int(9090)"], "the operator gets the gRPC port only");
    let peers = operator.from.clone().unwrap();
    assert_eq!(peers.len(), 1);
    let ns = peers[0].namespace_selector.clone().unwrap().match_labels.unwrap();
    assert_eq!(ns, BTreeMap::from([("kubernetes.io/metadata.name".into(), "mcp-guard-system".into())]));
    let pods = peers[0].pod_selector.clone().unwrap().match_labels.unwrap();
    assert_eq!(pods, BTreeMap::from([("app.kubernetes.io/name".into(), "mcp-guard-operator".into())]));
    let ports: Vec<String> =
        ingress[0].ports.iter().flatten().map(|p| format!("{:?}", p.port.clone().unwrap())).collect();
    assert_eq!(ports, ["Int(9090)", "Int(8080)"], "API ports only; metrics stay closed");
    let from = ingress[0].from.clone().unwrap();
    assert_eq!(
        from[0].namespace_selector.clone().unwrap().match_expressions.unwrap()[0].values,
        Some(vec!["agents".into()])
    );
}

#[test]
fn a_policy_without_token_review_does_not_reach_the_api_server() {
    let w = world("policy-open.yaml");
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let np = network::executor_policy(&w.policy, &w.resolved(), &settings(), &owner).unwrap();
    let spec = np.spec.unwrap();
    assert_eq!(spec.egress.unwrap().len(), 2, "DNS and the bound server only");
    let ingress = spec.ingress.unwrap();
    // The operator still asks the executor about missing credentials and tools (gRPC port only).
    assert_eq!(ingress.len(), 2, "callers, and the operator");
    assert_eq!(ingress[1].ports.clone().unwrap().len(), 1);
    let from = ingress[0].from.clone().unwrap();
    assert_eq!(
        from[0].namespace_selector.clone().unwrap().match_expressions.unwrap()[0].values,
        Some(vec!["team-a".into()])
    );
}

#[test]
fn a_deployed_server_admits_only_executors_that_bind_it() {
    let w = world("policy.yaml");
    let owner = w.time.controller_owner_ref(&()).unwrap();
    let deploy = w.time.spec.deploy.clone().unwrap();
    let objs = deployed_server::build(&w.time, &deploy, &settings(), &owner).unwrap();
    let pod = objs.deployment.spec.clone().unwrap().template.spec.unwrap();
    let c = container(&pod, "server");
    assert_eq!(c.image.as_deref(), Some("mcp-guard.local/mcp-test-server:0.1.0"));
    assert_eq!(c.env.clone().unwrap()[0].name, "API_KEY");
    assert!(
        c.volume_mounts.iter().flatten().all(|m| m.name != "kube-api-access"),
        "the server gets no token"
    );

    // The gate: the operator's image in front of the server, with the pod's token for TokenReview.
    let gate = container(&pod, deployed_server::GATE_CONTAINER);
    assert_eq!(gate.image.as_deref(), Some(settings().executor_image.as_str()));
    assert_eq!(
        gate.args.clone().unwrap().join(" "),
        "server-gate --listen 0.0.0.0:9443 --upstream http://127.0.0.1:8080 --namespace team-a --server time"
    );
    assert!(gate.volume_mounts.iter().flatten().any(|m| m.name == "kube-api-access"));
    assert_eq!(gate.security_context, c.security_context, "locked down like every container");
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.service_account_name.as_deref(), Some("time-mcp-server"));
    assert_eq!(objs.service_account.metadata.name.as_deref(), Some("time-mcp-server"));

    // The Service keeps the server's port and targets the gate.
    let port = &objs.service.spec.clone().unwrap().ports.unwrap()[0];
    assert_eq!(port.port, 8080);
    assert_eq!(port.target_port, Some(IntOrString::String("gate".into())));
    let np = network::server_policy(&w.time, deployed_server::gate_port(&deploy), &owner).spec.unwrap();
    assert_eq!(np.policy_types.unwrap(), ["Ingress"]);
    let rule = &np.ingress.unwrap()[0];
    let ports: Vec<String> =
        rule.ports.iter().flatten().map(|p| format!("{:?}", p.port.clone().unwrap())).collect();
    assert_eq!(ports, ["Int(9443)"], "only the gate's port is open; the server's own is not");
    let from = rule.from.clone().unwrap();
    let labels = from[0].pod_selector.clone().unwrap().match_labels.unwrap();
    assert_eq!(labels.get("bind.mcpguard.io/time").map(String::as_str), Some("true"));
    assert!(from[0].namespace_selector.is_none(), "same namespace only");
    assert_eq!(deployed_server::server_url(&w.time, &deploy, Some("10.96.0.9")), "http://10.96.0.9:8080/mcp");
    assert_eq!(
        deployed_server::server_url(&w.time, &deploy, None),
        "http://time-mcp-server.team-a.svc:8080/mcp"
    );
    // A server listening on the gate's usual port moves the gate, never the server.
    let mut on_gate_port = deploy.clone();
    on_gate_port.port = deployed_server::GATE_PORT;
    assert_eq!(deployed_server::gate_port(&on_gate_port), deployed_server::GATE_PORT + 1);
}

#[test]
fn binding_proxies_get_a_token_for_each_deployed_servers_gate_only() {
    let w = world("policy.yaml");
    let o = executor_objects(&w);
    let pod = pod(&o);
    let identity = pod.volumes.iter().flatten().find(|v| v.name == "server-identity").unwrap();
    let sources = identity.projected.clone().unwrap().sources.unwrap();
    let tokens: Vec<(String, Option<String>)> = sources
        .iter()
        .map(|s| {
            let t = s.service_account_token.clone().unwrap();
            (t.path, t.audience)
        })
        .collect();
    assert_eq!(tokens, [("time/token".to_string(), Some("mcpguard.io/server/team-a/time".to_string()))]);
    let proxy = container(&pod, PROXY_CONTAINER);
    assert!(proxy.volume_mounts.iter().flatten().any(|m| m.name == "server-identity"));
    // The proxy sends it to the deployed server in its own header; the remote server gets none.
    let config = GuardConfig::from_yaml(&o_config(&w), "configmap").unwrap();
    for server in &config.servers {
        let identity: Vec<_> = server.headers.iter().filter(|h| h.name == "x-mcp-guard-identity").collect();
        let deployed = server.url.as_deref().is_some_and(|u| u.contains("10.96."));
        if deployed {
            assert_eq!(identity.len(), 1, "{}", server.name);
            let file = identity[0].value_from.clone().unwrap().file.unwrap();
            assert_eq!(file, "/var/run/secrets/mcp-guard-identity/time/token");
        } else {
            assert!(identity.is_empty(), "{}", server.name);
        }
    }

    // A header of that name in an McpServer is refused, so nobody can point the token elsewhere.
    let mut w2 = world("policy.yaml");
    w2.time.spec.headers.push(
        serde_json::from_value(serde_json::json!({"name": "X-MCP-Guard-Identity", "value": "x"})).unwrap(),
    );
    let err = render(&w2.policy, &w2.resolved(), &settings()).unwrap_err().to_string();
    assert!(err.contains("X-MCP-Guard-Identity") && err.contains("reserved"), "{err}");
}

#[test]
fn names_too_long_for_children_are_refused() {
    let mut w = world("policy-open.yaml");
    w.policy.metadata.name = Some("x".repeat(60));
    let resolved = w.resolved();
    let rendered = render(&w.policy, &resolved, &settings()).unwrap();
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let err = executor::build(&w.policy, &rendered, &[], &settings(), &owner).unwrap_err();
    assert!(err.to_string().contains("too long"), "{err}");
}

#[test]
fn token_review_gets_a_binding_named_from_the_policy_uid_to_the_narrow_role() {
    let w = world("policy.yaml");
    let uid = w.policy.metadata.uid.clone().unwrap();
    let crb = executor::token_review_binding(&w.policy, &uid, &settings());
    assert_eq!(crb.metadata.name.as_deref(), Some(format!("mcp-guard-tokenreview-{uid}").as_str()));
    assert_eq!(crb.role_ref.name, "mcp-guard-tokenreview", "tokenreviews: create only, not auth-delegator");
    let subjects = crb.subjects.clone().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
        ("agents-mcp-guard", Some("team-a"))
    );
    assert!(executor::binding_belongs_to(&crb, "team-a", "agents", Some(&uid)));
    // `team-a/x` and `team/a-x` once shared a binding name; now the owner is checked before any patch
    // or delete: another policy's (or anybody's) binding is not this policy's.
    assert!(!executor::binding_belongs_to(&crb, "team-a", "agents", Some("another-uid")));
    assert!(!executor::binding_belongs_to(&crb, "team", "a-agents", None));
    let mut foreign = crb.clone();
    foreign.metadata.labels.as_mut().unwrap().remove("app.kubernetes.io/managed-by");
    assert!(!executor::binding_belongs_to(&foreign, "team-a", "agents", Some(&uid)));
    let mut more_subjects = crb;
    more_subjects.subjects.as_mut().unwrap()[0].namespace = Some("kube-system".into());
    assert!(!executor::binding_belongs_to(&more_subjects, "team-a", "agents", Some(&uid)));
}

#[test]
fn callers_default_to_the_policy_namespace_never_to_everyone() {
    let mut w = world("policy.yaml");
    w.policy.spec.callers.service_accounts.clear();
    let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
    assert_eq!(rendered.config.callers.execute, ["system:serviceaccount:team-a:*"]);
    // A namespace selector opens the network to more namespaces, never an identity.
    w.policy.spec.callers.namespace_selector =
        Some(serde_json::from_value(serde_json::json!({"matchLabels": {"team": "a"}})).unwrap());
    let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
    assert_eq!(rendered.config.callers.execute, ["system:serviceaccount:team-a:*"]);
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let np = network::executor_policy(&w.policy, &w.resolved(), &settings(), &owner).unwrap();
    let from = np.spec.unwrap().ingress.unwrap()[0].from.clone().unwrap();
    assert_eq!(
        from[0].namespace_selector.clone().unwrap().match_expressions.unwrap()[0].values,
        Some(vec!["team-a".into()]),
        "the policy's own namespace is admitted next to the selector"
    );
    // An empty selector (stored before the CRD refused it) still opens nothing.
    w.policy.spec.callers.namespace_selector = Some(Default::default());
    let err = network::executor_policy(&w.policy, &w.resolved(), &settings(), &owner).unwrap_err();
    assert!(err.to_string().contains("spec.callers.namespaceSelector"), "{err}");
    // A name with a comma is one identity entry, not two (and the config refuses it).
    w.policy.spec.callers.namespace_selector = None;
    w.policy.spec.callers.service_accounts = vec![
        serde_json::from_value(serde_json::json!({"namespace": "x", "name": "a,system:serviceaccount:*"}))
            .unwrap(),
    ];
    let err = render(&w.policy, &w.resolved(), &settings()).unwrap_err().to_string();
    assert!(err.contains("callers.execute[0]"), "{err}");
}

#[test]
fn images_come_from_the_admins_lists_and_the_proxy_image_is_never_the_policys() {
    let mut w = world("policy.yaml");
    w.policy.spec.executor.image = Some("evil.example/exfiltrate:1".into());
    let resolved = w.resolved();
    let rendered = render(&w.policy, &resolved, &settings()).unwrap();
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let err = executor::build(&w.policy, &rendered, &[], &settings(), &owner).unwrap_err();
    assert!(
        err.to_string().contains("spec.executor.image: `evil.example/exfiltrate:1` is not an allowed"),
        "{err}"
    );
    let allowing =
        Settings { allowed_executor_images: vec!["registry.example/mcp-guard:".into()], ..settings() };
    w.policy.spec.executor.image = Some("registry.example/mcp-guard:debug".into());
    let o = executor::build(&w.policy, &rendered, &[], &allowing, &owner).unwrap();
    let pod = pod(&o);
    assert_eq!(
        container(&pod, EXECUTOR_CONTAINER).image.as_deref(),
        Some("registry.example/mcp-guard:debug")
    );
    assert_eq!(
        container(&pod, PROXY_CONTAINER).image.as_deref(),
        Some("mcp-guard.local/mcp-guard:test"),
        "the container holding the Secrets runs the operator's image"
    );
    // A prefix must be a prefix of the image, not of something else; an empty prefix allows nothing.
    let empty = Settings { allowed_executor_images: vec![String::new()], ..settings() };
    assert!(executor::build(&w.policy, &rendered, &[], &empty, &owner).is_err());

    let deploy = w.time.spec.deploy.clone().unwrap();
    let owner = w.time.controller_owner_ref(&()).unwrap();
    let none = Settings { allowed_server_images: vec![], ..settings() };
    let err = deployed_server::build(&w.time, &deploy, &none, &owner).unwrap_err().to_string();
    assert!(err.contains("spec.deploy.image") && err.contains("images.servers"), "{err}");
    let other = Settings { allowed_server_images: vec!["mcp-guard.local/other".into()], ..settings() };
    assert!(deployed_server::build(&w.time, &deploy, &other, &owner).is_err());
}

#[test]
fn unauthenticated_executors_need_the_admins_consent() {
    let w = world("policy-open.yaml");
    let resolved = w.resolved();
    let strict = Settings { allow_unauthenticated: false, ..settings() };
    let rendered = render(&w.policy, &resolved, &strict).unwrap();
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let err = executor::build(&w.policy, &rendered, &[], &strict, &owner).unwrap_err();
    assert!(err.to_string().contains("executor.allowUnauthenticated"), "{err}");
    // Allowed: the executor is told it may serve the pod network without authentication.
    let o = executor::build(&w.policy, &rendered, &[], &settings(), &owner).unwrap();
    let args = container(&pod(&o), EXECUTOR_CONTAINER).args.clone().unwrap();
    assert!(
        args.contains(&"--insecure-no-auth".to_string())
            && args.contains(&"--insecure-no-auth-network".to_string())
    );
}

fn egress_of(cidrs: &[&str], settings: &Settings) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut server: McpServer = fixture("server-remote.yaml");
    server.spec.egress = cidrs
        .iter()
        .map(|c| serde_json::from_value(serde_json::json!({"cidr": c, "ports": [{"port": 443}]})).unwrap())
        .collect();
    network::remote_egress(&server, settings).map_err(|e| e.to_string()).map(|rules| {
        rules
            .into_iter()
            .map(|r| {
                let b = r.to.unwrap()[0].ip_block.clone().unwrap();
                (b.cidr, b.except.unwrap_or_default())
            })
            .collect()
    })
}

#[test]
fn egress_never_opens_the_internet_metadata_or_the_cluster() {
    let cluster = Settings {
        egress: mcp_guard_operator::build::EgressRules {
            min_prefix_v4: 8,
            min_prefix_v6: 32,
            cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap(), "10.96.0.0/12".parse().unwrap()],
        },
        ..settings()
    };
    // A narrow public block passes as it is.
    assert_eq!(egress_of(&["140.82.112.0/20"], &cluster).unwrap(), [("140.82.112.0/20".into(), vec![])]);
    // A broad private block keeps the cluster's ranges out.
    assert_eq!(
        egress_of(&["10.0.0.0/8"], &cluster).unwrap(),
        [("10.0.0.0/8".into(), vec!["10.244.0.0/16".into(), "10.96.0.0/12".into()])]
    );
    // Too broad, the default minimum.
    let err = egress_of(&["0.0.0.0/0"], &settings()).unwrap_err();
    assert!(err.contains("spec.egress[0].cidr: `0.0.0.0/0` is too broad") && err.contains("/16"), "{err}");
    let err = egress_of(&["::/0"], &settings()).unwrap_err();
    assert!(err.contains("IPv6 peers need at least a /32"), "{err}");
    // Two halves of the Internet are each too broad as well.
    assert!(egress_of(&["0.0.0.0/1", "128.0.0.0/1"], &cluster).unwrap_err().contains("spec.egress[1]"));
    // Inside what is never opened: metadata, loopback, the cluster's own ranges.
    for (cidr, what) in [
        ("169.254.169.254/32", "link-local"),
        ("127.0.0.1/32", "loopback"),
        ("10.96.0.240/32", "cluster"),
        ("10.244.0.0/16", "cluster"),
        ("fd00:ec2::254/128", "link-local"),
    ] {
        let err = egress_of(&[cidr], &cluster).unwrap_err();
        assert!(err.contains("lies inside") && err.contains(what), "{cidr}: {err}");
    }
    // A host address written with a prefix is taken as its block.
    assert_eq!(egress_of(&["140.82.112.7/20"], &cluster).unwrap()[0].0, "140.82.112.0/20");
    // The McpServer names its peer in the policy's error.
    let mut w = world("policy.yaml");
    w.github.spec.egress[0].cidr = "0.0.0.0/0".into();
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let err =
        network::executor_policy(&w.policy, &w.resolved(), &settings(), &owner).unwrap_err().to_string();
    assert!(err.contains("McpServer `github`: spec.egress[0].cidr"), "{err}");
}
