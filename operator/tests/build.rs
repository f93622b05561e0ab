//! The pure builders, from YAML fixtures: no client, no cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use mcp_guard_crds::GuardConfig;
use mcp_guard_crds::v1alpha1::{McpGuardPolicy, McpServer};
use mcp_guard_operator::build::binding_proxy::{self, PROXY_CONTAINER, PROXY_PORT};
use mcp_guard_operator::build::config::{ResolvedServer, render};
use mcp_guard_operator::build::executor::{self, EXECUTOR_CONTAINER, PROXY_TOKEN_DIR, SA_TOKEN_DIR};
use mcp_guard_operator::build::token_review;
use mcp_guard_operator::build::{Invalid, OperatorIdentity, Settings, approvals, deployed_server, network};

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

    /// The bound McpServers' names, as the reconciler passes them to the binding proxy.
    fn bound(&self) -> Vec<String> {
        self.resolved().iter().map(|r| r.binding.name.clone()).collect()
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
/// The cluster IP of the binding proxy's Service, as the reconciler reads it.
const PROXY_IP: &str = "10.96.0.77";
/// The audience of the `agents` executor's token for its binding proxy.
const PROXY_AUDIENCE: &str = "mcpguard.io/proxy/team-a/agents";

fn executor_objects(w: &World) -> executor::ExecutorObjects {
    executor_with(w, &settings()).unwrap()
}

fn executor_with(w: &World, settings: &Settings) -> Result<executor::ExecutorObjects, Invalid> {
    let rendered = render(&w.policy, &w.resolved(), settings).unwrap();
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    executor::build(&w.policy, &rendered, PROXY_IP, settings, &owner)
}

fn proxy_objects(w: &World) -> binding_proxy::ProxyObjects {
    proxy_with(w, &settings()).unwrap()
}

fn proxy_with(w: &World, settings: &Settings) -> Result<binding_proxy::ProxyObjects, Invalid> {
    let rendered = render(&w.policy, &w.resolved(), settings).unwrap();
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let hash = executor::config_hash(&rendered.yaml);
    binding_proxy::build(&w.policy, &rendered, &w.bound(), &hash, settings, &owner)
}

fn executor_network(w: &World) -> NetworkPolicy {
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    network::executor_policy(&w.policy, &settings(), &owner).unwrap()
}

fn proxy_network(w: &World) -> Result<NetworkPolicy, Invalid> {
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    network::proxy_policy(&w.policy, &w.resolved(), &settings(), &owner)
}

fn o_config(w: &World) -> String {
    executor_objects(w).config_map.data.unwrap()["config.yaml"].clone()
}

fn pod_of(d: &Deployment) -> PodSpec {
    d.spec.clone().unwrap().template.spec.unwrap()
}

fn pod(o: &executor::ExecutorObjects) -> PodSpec {
    pod_of(&o.deployment)
}

fn proxy_pod(p: &binding_proxy::ProxyObjects) -> PodSpec {
    pod_of(&p.deployment)
}

fn pod_labels(d: &Deployment) -> BTreeMap<String, String> {
    d.spec.clone().unwrap().template.metadata.unwrap().labels.unwrap()
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no container {name}"))
}

/// Whether a selector (match labels only: none of ours uses expressions) selects pods with `labels`.
fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    assert!(sel.match_expressions.is_none(), "{sel:?}");
    let m = sel.match_labels.clone().unwrap_or_default();
    assert!(!m.is_empty(), "an empty selector selects everything: {sel:?}");
    m.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn port_list(ports: &Option<Vec<NetworkPolicyPort>>) -> Vec<String> {
    ports
        .iter()
        .flatten()
        .map(|p| format!("{}/{:?}", p.protocol.clone().unwrap(), p.port.clone().unwrap()))
        .collect()
}

/// The one egress rule every executor gets: its own policy's binding-proxy pods, TCP 9443.
fn assert_executor_egress_is_its_proxy_only(np: &NetworkPolicy, policy: &str) {
    let spec = np.spec.clone().unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"], "both directions default-deny");
    assert!(selects(spec.pod_selector.as_ref().unwrap(), &executor::executor_selector_labels(policy)));
    let egress = spec.egress.unwrap();
    assert_eq!(egress.len(), 1, "{egress:?}");
    let rule = &egress[0];
    let to = rule.to.clone().unwrap();
    assert_eq!(to.len(), 1, "{to:?}");
    assert!(to[0].namespace_selector.is_none(), "same namespace only: {to:?}");
    assert!(to[0].ip_block.is_none(), "no address block: {to:?}");
    let sel = to[0].pod_selector.clone().unwrap();
    assert!(sel.match_expressions.is_none());
    assert_eq!(sel.match_labels.unwrap(), binding_proxy::proxy_selector_labels(policy));
    assert_eq!(port_list(&rule.ports), ["TCP/Int(9443)"]);
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
    // Server and policy deny lists add up; approval-required tools are bound, and wait for approval.
    assert!(gh.tools.allows("get_issue"));
    assert!(!gh.tools.allows("delete_repo") && !gh.tools.allows("get_secret_scanning_alert"));
    assert!(!gh.tools.allows("create_issue"));
    assert!(gh.tools.allows("get_admin_token") && gh.tools.needs_approval("get_admin_token"));
    assert_eq!(gh.tools.require_approval, ["get_admin_token"]);
    assert!(!gh.tools.deny.iter().any(|d| d == "get_admin_token"), "not denied: {:?}", gh.tools.deny);
    assert!(!gh.tools.needs_approval("get_issue"));
    assert!(!gh.allow_private_endpoint);
    assert!(rendered.notes.is_empty(), "{:?}", rendered.notes);
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
    // The binding proxy reads the same ConfigMap as the executor.
    let proxy = proxy_pod(&proxy_objects(&w));
    let config = proxy.volumes.iter().flatten().find(|v| v.name == "config").unwrap();
    assert_eq!(config.config_map.as_ref().unwrap().name, "agents-mcp-guard");
    assert_eq!(executor_objects(&w).config_map.metadata.name.as_deref(), Some("agents-mcp-guard"));
}

#[test]
fn approvals_render_the_kubernetes_store_with_qualified_approvers_and_the_key_file() {
    let w = world("policy.yaml");
    let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
    let parsed = GuardConfig::from_yaml(&rendered.yaml, "configmap").unwrap();
    let a = parsed.approvals.unwrap();
    let store = a.store.kubernetes.unwrap();
    assert_eq!((store.namespace.as_str(), store.policy.as_str()), ("team-a", "agents"));
    assert!(a.store.directory.is_none());
    assert_eq!(a.ttl.duration(), std::time::Duration::from_secs(30 * 60));
    assert_eq!(a.retention.duration(), std::time::Duration::from_secs(24 * 3600), "the default");
    assert!(!a.allow_self_approval);
    assert_eq!(a.approvers.users, ["alice"]);
    assert_eq!(a.approvers.groups, ["sre"]);
    // A bare name is the policy's namespace's; each approval carries namespace/name.
    assert_eq!(a.approvers.service_accounts, ["team-a/reviewer", "ops/oncall"]);
    assert_eq!(a.journal_key_file.as_deref(), Some("/var/run/secrets/mcpguard.io/approvals/key"));
    assert_eq!(rendered.journal_key, Some(("agents-journal-key".into(), "key".into())));
    // Without approvals there is nothing to render, and no key.
    let w = world("policy-open.yaml");
    let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
    assert!(rendered.config.approvals.is_none() && rendered.journal_key.is_none());
    assert!(!rendered.yaml.contains("approvals"), "{}", rendered.yaml);
}

#[test]
fn approval_required_tools_need_approvals_with_an_approver() {
    let mut w = world("policy.yaml");
    w.policy.spec.approvals = None;
    let err = render(&w.policy, &w.resolved(), &settings()).unwrap_err().to_string();
    assert!(
        err.contains("spec.servers[0]: tools [\"get_admin_token\"] of `github` require approval"),
        "{err}"
    );
    assert!(err.contains("add spec.approvals"), "{err}");
    let mut w = world("policy.yaml");
    w.policy.spec.approvals.as_mut().unwrap().approvers = Default::default();
    let err = render(&w.policy, &w.resolved(), &settings()).unwrap_err().to_string();
    assert!(err.contains("spec.approvals.approvers: name at least one approver"), "{err}");
    let mut w = world("policy.yaml");
    w.policy.spec.approvals.as_mut().unwrap().approvers.service_accounts = vec!["a/b/c".into(), "x:y".into()];
    let err = render(&w.policy, &w.resolved(), &settings()).unwrap_err().to_string();
    assert!(err.contains("serviceAccounts[0]: `a/b/c` is neither"), "{err}");
    assert!(err.contains("serviceAccounts[1]: `x:y` is neither"), "{err}");
    let mut w = world("policy.yaml");
    w.policy.spec.approvals.as_mut().unwrap().retention = "10m".parse().unwrap();
    let err = render(&w.policy, &w.resolved(), &settings()).unwrap_err().to_string();
    assert!(err.contains("spec.approvals.retention: 10m is shorter than spec.approvals.ttl (30m)"), "{err}");
    let mut w = world("policy.yaml");
    w.policy.spec.approvals.as_mut().unwrap().journal_key.key = "..data".into();
    let err = render(&w.policy, &w.resolved(), &settings()).unwrap_err().to_string();
    assert!(err.contains("spec.approvals.journalKey.key: `..data` is not a file name"), "{err}");
    // Approval the McpServer itself requires counts as much as the policy's, and needs approvals too.
    let mut w = world("policy-open.yaml");
    w.time.spec.tools.require_approval = vec!["set_*".into()];
    let err = render(&w.policy, &w.resolved(), &settings()).unwrap_err().to_string();
    assert!(err.contains("tools [\"set_*\"] of `time` require approval"), "{err}");
    let mut w = world("policy.yaml");
    w.time.spec.tools.require_approval = vec!["set_*".into()];
    let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
    assert_eq!(rendered.config.servers[1].tools.require_approval, ["set_*"]);
}

#[test]
fn the_journal_key_is_mounted_into_the_binding_proxy_only() {
    let w = world("policy.yaml");
    let pod = proxy_pod(&proxy_objects(&w));
    let volume = pod.volumes.iter().flatten().find(|v| v.name == "approvals-key").unwrap();
    let secret = volume.secret.clone().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("agents-journal-key"));
    let items = secret.items.unwrap();
    assert_eq!(items.iter().map(|i| (i.key.as_str(), i.path.as_str())).collect::<Vec<_>>(), [("key", "key")]);
    assert_eq!(secret.optional, Some(true));
    assert_eq!(secret.default_mode, Some(0o440));
    let proxy = container(&pod, PROXY_CONTAINER);
    let mount = proxy.volume_mounts.iter().flatten().find(|m| m.name == "approvals-key").unwrap();
    assert_eq!(mount.mount_path, "/var/run/secrets/mcpguard.io/approvals");
    assert_eq!(mount.read_only, Some(true));
    assert!(mount.sub_path.is_none(), "a directory mount, so a rotated key arrives");
    // The executor pod gets nothing of it (what it may hold is checked in full elsewhere).
    let executor = pod_of(&executor_objects(&w).deployment);
    assert!(executor.volumes.iter().flatten().all(|v| v.name != "approvals-key" && v.secret.is_none()));
    assert_executor_holds_no_credential(&executor_objects(&w), PROXY_AUDIENCE);
    // Without approvals, no such volume.
    let open = proxy_pod(&proxy_objects(&world("policy-open.yaml")));
    assert!(open.volumes.iter().flatten().all(|v| v.name != "approvals-key"));
}

#[test]
fn approvals_bind_the_binding_proxy_to_the_approvals_role_in_its_namespace() {
    let w = world("policy.yaml");
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let settings = Settings { approvals_role: "mcp-guard-approvals-proxy".into(), ..settings() };
    let rb = approvals::role_binding(&w.policy, &settings, &owner).unwrap();
    assert_eq!(rb.metadata.name.as_deref(), Some("agents-binding-proxy-approvals"));
    assert_eq!(approvals::binding_name("agents"), "agents-binding-proxy-approvals");
    assert_eq!(rb.metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(rb.metadata.owner_references, Some(vec![owner.clone()]), "garbage-collected with the policy");
    let labels = rb.metadata.labels.clone().unwrap();
    assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("mcp-guard-operator"));
    assert_eq!(
        (rb.role_ref.api_group.as_str(), rb.role_ref.kind.as_str(), rb.role_ref.name.as_str()),
        ("rbac.authorization.k8s.io", "ClusterRole", "mcp-guard-approvals-proxy")
    );
    let subjects = rb.subjects.unwrap();
    assert_eq!(subjects.len(), 1, "the binding proxy alone, never the executor");
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
        ("ServiceAccount", "agents-binding-proxy", Some("team-a"))
    );
    let open = world("policy-open.yaml");
    let owner = open.policy.controller_owner_ref(&()).unwrap();
    assert!(approvals::role_binding(&open.policy, &settings, &owner).is_none());
}

#[test]
fn a_deployed_server_without_a_url_yet_is_an_error_that_names_it() {
    let mut w = world("policy.yaml");
    w.time.status = None;
    let err = render(&w.policy, &w.resolved(), &settings()).unwrap_err().to_string();
    assert!(err.contains("McpServer `time` has no URL yet"), "{err}");
}

/// What an executor pod may hold, for any policy: its config, a scratch directory, and one token for
/// its own binding proxy's audience. No Secret, no API-server token, no server identity.
fn assert_executor_holds_no_credential(o: &executor::ExecutorObjects, proxy_audience: &str) {
    let pod = pod(o);
    assert_eq!(pod.containers.len(), 1, "the executor pod runs the executor alone");
    assert!(pod.init_containers.is_none() && pod.ephemeral_containers.is_none());
    assert_eq!(pod.containers[0].name, EXECUTOR_CONTAINER);
    assert!(pod.containers.iter().all(|c| c.name != PROXY_CONTAINER));
    let volumes = pod.volumes.clone().unwrap();
    let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["config", "tmp", "proxy-token"]);
    for v in &volumes {
        assert!(v.secret.is_none(), "Secret volume {}", v.name);
        assert!(v.csi.is_none() && v.host_path.is_none() && v.downward_api.is_none(), "{}", v.name);
        assert!(v.persistent_volume_claim.is_none() && v.ephemeral.is_none(), "{}", v.name);
        if let Some(p) = &v.projected {
            // Only the proxy token: no Secret, ConfigMap (CA bundle) or downward-API projection, and
            // no token without an audience (which the API server would accept).
            let sources = p.sources.clone().unwrap();
            assert_eq!(sources.len(), 1, "{}: {sources:?}", v.name);
            assert!(sources[0].secret.is_none() && sources[0].config_map.is_none(), "{}", v.name);
            assert!(sources[0].downward_api.is_none() && sources[0].cluster_trust_bundle.is_none());
            let token = sources[0].service_account_token.clone().unwrap();
            assert_eq!(token.audience.as_deref(), Some(proxy_audience), "{}", v.name);
            assert_eq!(token.path, "token");
            assert!(token.expiration_seconds.is_some_and(|s| s <= 3600));
        }
    }
    let exec = container(&pod, EXECUTOR_CONTAINER);
    assert!(exec.env.is_none() && exec.env_from.is_none(), "the executor gets no environment at all");
    for m in exec.volume_mounts.iter().flatten() {
        assert!(!m.mount_path.starts_with("/var/run/secrets/mcp-guard"), "{}", m.mount_path);
        assert!(!m.mount_path.starts_with(SA_TOKEN_DIR), "{}", m.mount_path);
        assert!(m.sub_path.is_none() && m.sub_path_expr.is_none());
        assert!(m.name != "kube-api-access" && m.name != "server-identity", "{}", m.name);
    }
    let token = exec.volume_mounts.iter().flatten().find(|m| m.name == "proxy-token").unwrap();
    assert_eq!((token.mount_path.as_str(), token.read_only), (PROXY_TOKEN_DIR, Some(true)));
    // The pod automounts no token, and neither does its ServiceAccount.
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(o.service_account.automount_service_account_token, Some(false));
    assert_eq!(pod.service_account_name, o.service_account.metadata.name);
    assert_eq!(pod.host_network, None);
    assert_eq!(pod.enable_service_links, Some(false), "no Service addresses in the environment");
}

#[test]
fn the_executor_pod_holds_no_secret_and_no_credential() {
    for (policy, audience) in
        [("policy.yaml", PROXY_AUDIENCE), ("policy-open.yaml", "mcpguard.io/proxy/team-a/open")]
    {
        let w = world(policy);
        let o = executor_objects(&w);
        assert_executor_holds_no_credential(&o, audience);
        // Whatever Secrets the config names, the executor pod mounts none of them.
        let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
        assert!(!rendered.secrets.is_empty(), "{policy}");
    }
    // An allowed custom executor image changes nothing about what the pod holds.
    let mut w = world("policy.yaml");
    w.policy.spec.executor.image = Some("registry.example/mcp-guard:debug".into());
    let allowing =
        Settings { allowed_executor_images: vec!["registry.example/mcp-guard:".into()], ..settings() };
    assert_executor_holds_no_credential(&executor_with(&w, &allowing).unwrap(), PROXY_AUDIENCE);
}

#[test]
fn the_binding_proxy_holds_the_secrets() {
    let w = world("policy.yaml");
    let p = proxy_objects(&w);
    let pod = proxy_pod(&p);
    assert_eq!(pod.containers.len(), 1);
    let secret_volumes: Vec<&str> =
        pod.volumes.iter().flatten().filter(|v| v.secret.is_some()).map(|v| v.name.as_str()).collect();
    assert_eq!(secret_volumes.len(), 3, "one volume per referenced Secret, and the approvals' journal key");
    let proxy = container(&pod, PROXY_CONTAINER);
    let proxy_mounts: Vec<&str> = proxy.volume_mounts.iter().flatten().map(|m| m.name.as_str()).collect();
    for v in &secret_volumes {
        assert!(proxy_mounts.contains(v), "the binding proxy mounts {v}");
    }
    for m in proxy.volume_mounts.iter().flatten() {
        assert_eq!(m.read_only, Some(true), "{}", m.name);
        assert!(m.sub_path.is_none(), "a directory mount, so rotated Secrets arrive: {}", m.name);
    }
    let mounted = |name: &str| proxy.volume_mounts.iter().flatten().find(|m| m.name == name).unwrap().clone();
    assert_eq!(mounted("secret-0").mount_path, "/var/run/secrets/mcp-guard/github-token");
    assert_eq!(mounted("secret-1").mount_path, "/var/run/secrets/mcp-guard/time-key");
    assert!(proxy.env.is_none() && proxy.env_from.is_none());
    let gh = pod.volumes.iter().flatten().find(|v| v.name == "secret-0").unwrap();
    let gh = gh.secret.clone().unwrap();
    assert_eq!(gh.secret_name.as_deref(), Some("github-token"));
    let items = gh.items.unwrap();
    assert_eq!(items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["token"], "only referenced keys");
    // The proxy calls TokenReview (its executor's tokens, and callers'): its own token for the API
    // server, mounted where client libraries look, in its own pod only.
    assert_eq!(mounted("kube-api-access").mount_path, SA_TOKEN_DIR);
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(p.service_account.automount_service_account_token, Some(false));
    assert_eq!(p.service_account.metadata.name.as_deref(), Some("agents-binding-proxy"));
    assert_eq!(pod.service_account_name.as_deref(), Some("agents-binding-proxy"));
    assert_ne!(pod.service_account_name, pod_of(&executor_objects(&w).deployment).service_account_name);
    // Only the executor's token for the proxy's audience opens it.
    let args = proxy.args.clone().unwrap().join(" ");
    assert!(args.contains(&format!("--executor-audience {PROXY_AUDIENCE}")), "{args}");
    assert!(args.contains("--executor-identity system:serviceaccount:team-a:agents-mcp-guard"), "{args}");
}

#[test]
fn every_container_is_locked_down() {
    let w = world("policy.yaml");
    let pod = pod(&executor_objects(&w));
    let proxy_pod = proxy_pod(&proxy_objects(&w));
    for pod in [&pod, &proxy_pod] {
        let psc = pod.security_context.clone().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(pod.automount_service_account_token, Some(false));
        for c in &pod.containers {
            let sc = c.security_context.clone().unwrap();
            assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(sc.privileged, Some(false), "{}", c.name);
            assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]), "{}", c.name);
            assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault", "{}", c.name);
            assert!(c.resources.is_some(), "{}", c.name);
            assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some(), "{}", c.name);
        }
    }
    let exec = container(&pod, EXECUTOR_CONTAINER);
    assert!(exec.readiness_probe.as_ref().unwrap().grpc.is_some());
    let args = exec.args.clone().unwrap().join(" ");
    assert!(
        args.starts_with(
            "serve --config /etc/mcp-guard/config.yaml --proxy-url http://10.96.0.77:9443 \
             --proxy-token-file /var/run/secrets/mcpguard.io/proxy/token"
        ),
        "{args}"
    );
    assert!(
        args.contains("--grpc-listen 0.0.0.0:9090 --mcp-listen 0.0.0.0:8080 --metrics-listen 0.0.0.0:9091"),
        "{args}"
    );
    // Callers' tokens are reviewed by the proxy: the executor cannot reach the API server.
    assert!(args.ends_with("--caller-review-via-proxy"), "{args}");
    assert!(!args.contains("--token-review-audience") && !args.contains("insecure"), "{args}");
    // Callers travel in the config file, one list entry each, never joined into a flag.
    assert!(!args.contains("callers"), "{args}");
    let config = GuardConfig::from_yaml(&o_config(&w), "configmap").unwrap();
    assert_eq!(config.callers.execute, ["system:serviceaccount:agents:coder"]);
    // The operator may discover tools, and is not among the callers that may execute.
    assert_eq!(config.callers.discover, [OPERATOR]);
    let proxy = container(&proxy_pod, PROXY_CONTAINER);
    assert_eq!(
        proxy.args.clone().unwrap().join(" "),
        "proxy --config /etc/mcp-guard/config.yaml --listen 0.0.0.0:9443 \
         --executor-audience mcpguard.io/proxy/team-a/agents \
         --executor-identity system:serviceaccount:team-a:agents-mcp-guard --replicas 1 \
         --caller-audience mcpguard.io/team-a/agents"
    );
    let ports: Vec<(Option<&str>, i32)> =
        proxy.ports.iter().flatten().map(|p| (p.name.as_deref(), p.container_port)).collect();
    assert_eq!(ports, [(Some("proxy"), PROXY_PORT)]);
}

#[test]
fn without_token_review_the_executor_gets_no_token_either() {
    let w = world("policy-open.yaml");
    let o = executor_objects(&w);
    let pod = pod(&o);
    // The only token is for its own binding proxy (not for the API server, nor a server's gate).
    let projected: Vec<&str> =
        pod.volumes.iter().flatten().filter(|v| v.projected.is_some()).map(|v| v.name.as_str()).collect();
    assert_eq!(projected, ["proxy-token"]);
    assert_executor_holds_no_credential(&o, "mcpguard.io/proxy/team-a/open");
    let exec = container(&pod, EXECUTOR_CONTAINER);
    assert!(exec.volume_mounts.iter().flatten().all(|m| !m.mount_path.contains("serviceaccount")));
    let args = exec.args.clone().unwrap();
    // Without authentication there is no discovery-only caller to be, and no caller to review.
    assert!(!args.iter().any(|a| a.contains("discovery")));
    assert!(!args.iter().any(|a| a == "--caller-review-via-proxy"), "{args:?}");
    // Its binding proxy reviews no caller either, yet still admits only its executor's tokens.
    let proxy = proxy_pod(&proxy_objects(&w));
    let proxy_args = container(&proxy, PROXY_CONTAINER).args.clone().unwrap().join(" ");
    assert!(!proxy_args.contains("--caller-audience"), "{proxy_args}");
    assert!(
        proxy_args.contains(
            "--executor-audience mcpguard.io/proxy/team-a/open \
             --executor-identity system:serviceaccount:team-a:open-mcp-guard"
        ),
        "{proxy_args}"
    );
}

#[test]
fn an_operator_without_a_known_identity_adds_no_discovery_caller_or_ingress() {
    let w = world("policy.yaml");
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let anonymous = Settings { operator: None, ..settings() };
    let rendered = render(&w.policy, &w.resolved(), &anonymous).unwrap();
    assert!(rendered.config.callers.discover.is_empty());
    assert_eq!(rendered.config.callers.execute, ["system:serviceaccount:agents:coder"]);
    executor::build(&w.policy, &rendered, PROXY_IP, &anonymous, &owner).unwrap();
    let np = network::executor_policy(&w.policy, &anonymous, &owner).unwrap();
    assert_eq!(np.spec.unwrap().ingress.unwrap().len(), 1);
}

#[test]
fn the_pod_template_hash_follows_the_config_and_secret_volumes_are_optional() {
    let w = world("policy.yaml");
    let o = executor_objects(&w);
    let ann = pod_annotations(&o.deployment);
    assert_eq!(ann.get("mcpguard.io/config-hash"), Some(&o.config_hash));
    let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
    assert_eq!(executor::config_hash(&rendered.yaml), o.config_hash);
    // The binding proxy reads the same config and rolls with it.
    let p = proxy_objects(&w);
    assert_eq!(pod_annotations(&p.deployment).get("mcpguard.io/config-hash"), Some(&o.config_hash));
    // The operator cannot read Secrets: a pod must start while one does not exist yet (its proxy
    // reports the missing file), and a rotated one reaches the proxy without a roll.
    let secret_volumes: Vec<_> =
        proxy_pod(&p).volumes.unwrap().into_iter().filter_map(|v| v.secret).collect();
    assert_eq!(secret_volumes.len(), 3, "two referenced Secrets and the journal key");
    assert!(secret_volumes.iter().all(|s| s.optional == Some(true)), "{secret_volumes:?}");
    assert!(secret_volumes.iter().all(|s| s.default_mode == Some(0o440)), "{secret_volumes:?}");
    let mut w2 = world("policy.yaml");
    w2.policy.spec.limits.tool_calls = 5;
    let o2 = executor_objects(&w2);
    assert_ne!(o2.config_hash, o.config_hash, "a changed config rolls the pods");
    assert_eq!(
        pod_annotations(&proxy_objects(&w2).deployment).get("mcpguard.io/config-hash"),
        Some(&o2.config_hash),
        "both Deployments roll"
    );
}

fn pod_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.spec.clone().unwrap().template.metadata.unwrap().annotations.unwrap()
}

#[test]
fn service_children_and_pdb() {
    let w = world("policy.yaml");
    let o = executor_objects(&w);
    let ports: Vec<i32> = o.service.spec.clone().unwrap().ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [9090, 8080]);
    assert!(o.pdb.is_some(), "two replicas get a PodDisruptionBudget");
    assert!(o.hpa.is_none(), "no autoscaling asked for");
    assert_eq!(o.deployment.spec.clone().unwrap().replicas, Some(2));
    assert_eq!(o.service_account.automount_service_account_token, Some(false));
    let owner = &o.config_map.metadata.owner_references.clone().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("McpGuardPolicy", Some(true)));
    let open = executor_objects(&world("policy-open.yaml"));
    assert!(open.pdb.is_none(), "one replica: no PodDisruptionBudget");

    // The binding proxy: its own Service, ServiceAccount and Deployment, owned by the policy.
    let p = proxy_objects(&w);
    let policy_owner = w.policy.controller_owner_ref(&()).unwrap();
    let svc = binding_proxy::service(&w.policy, &policy_owner);
    assert_eq!(svc.metadata.name.as_deref(), Some("agents-binding-proxy"));
    assert_eq!(binding_proxy::proxy_name("agents"), "agents-binding-proxy");
    let svc_spec = svc.spec.clone().unwrap();
    let port = &svc_spec.ports.clone().unwrap()[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (PROXY_PORT, Some(IntOrString::String("proxy".into())))
    );
    assert_eq!(svc_spec.ports.unwrap().len(), 1);
    let svc_selector = svc_spec.selector.unwrap();
    assert_eq!(svc_selector, binding_proxy::proxy_selector_labels("agents"));
    // The proxy Service selects proxy pods, never executor pods (nor the other way round).
    let sel =
        |m: &BTreeMap<String, String>| LabelSelector { match_labels: Some(m.clone()), ..Default::default() };
    assert!(selects(&sel(&svc_selector), &pod_labels(&p.deployment)));
    assert!(!selects(&sel(&svc_selector), &pod_labels(&o.deployment)));
    let exec_selector = o.service.spec.clone().unwrap().selector.unwrap();
    assert!(selects(&sel(&exec_selector), &pod_labels(&o.deployment)));
    assert!(!selects(&sel(&exec_selector), &pod_labels(&p.deployment)));
    for meta in [&p.deployment.metadata, &p.service_account.metadata, &svc.metadata] {
        assert_eq!(meta.owner_references.as_deref(), Some(std::slice::from_ref(&policy_owner)));
        assert_eq!(meta.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            meta.labels.clone().unwrap().get("app.kubernetes.io/managed-by").map(String::as_str),
            Some("mcp-guard-operator")
        );
    }
    let spec = p.deployment.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(1), "bindingProxy.replicas defaults to one");
    assert!(selects(&spec.selector, &pod_labels(&p.deployment)));
    assert!(p.pdb.is_none(), "one proxy replica: no PodDisruptionBudget");
    // More proxies: a PodDisruptionBudget keeps one, and each is told how many share the limits.
    let mut w2 = world("policy.yaml");
    w2.policy.spec.binding_proxy.replicas = 3;
    let p2 = proxy_objects(&w2);
    assert_eq!(p2.deployment.spec.clone().unwrap().replicas, Some(3));
    let pdb = p2.pdb.clone().unwrap().spec.unwrap();
    assert_eq!(pdb.min_available, Some(IntOrString::Int(1)));
    assert!(selects(&pdb.selector.unwrap(), &pod_labels(&p2.deployment)));
    let args = container(&proxy_pod(&p2), PROXY_CONTAINER).args.clone().unwrap().join(" ");
    assert!(args.contains("--replicas 3"), "{args}");
    // The executor's replica count is not the proxy's.
    assert_eq!(executor_objects(&w2).deployment.spec.unwrap().replicas, Some(2));
}

#[test]
fn the_proxy_deployment_has_the_bind_labels_and_executor_pods_none() {
    for policy in ["policy.yaml", "policy-open.yaml"] {
        let w = world(policy);
        let exec = pod_labels(&executor_objects(&w).deployment);
        assert!(
            exec.keys().all(|k| !k.starts_with("bind.mcpguard.io/")),
            "{policy}: executor pods must not look like they bind a server: {exec:?}"
        );
        assert_eq!(exec.get("app.kubernetes.io/name").map(String::as_str), Some("mcp-guard-executor"));
        let proxy = pod_labels(&proxy_objects(&w).deployment);
        let binds: Vec<&str> = proxy.keys().filter_map(|k| k.strip_prefix("bind.mcpguard.io/")).collect();
        let mut expected = w.bound();
        expected.sort();
        assert_eq!(binds, expected, "{policy}");
        assert!(
            proxy.iter().filter(|(k, _)| k.starts_with("bind.mcpguard.io/")).all(|(_, v)| v == "true"),
            "{proxy:?}"
        );
        assert_eq!(proxy.get("app.kubernetes.io/name").map(String::as_str), Some("mcp-guard-binding-proxy"));
    }
    // A policy that binds nothing gets no bind label at all.
    let mut w = world("policy-open.yaml");
    w.policy.spec.servers.clear();
    let proxy = pod_labels(&proxy_objects(&w).deployment);
    assert!(proxy.keys().all(|k| !k.starts_with("bind.mcpguard.io/")), "{proxy:?}");
}

fn describe_egress(egress: &[NetworkPolicyEgressRule]) -> Vec<String> {
    egress
        .iter()
        .map(|r| {
            let to = r.to.as_ref().unwrap();
            assert_eq!(to.len(), 1, "{r:?}");
            let to = &to[0];
            let peer = if let Some(ip) = &to.ip_block {
                match &ip.except {
                    Some(except) => format!("{} except {except:?}", ip.cidr),
                    None => ip.cidr.clone(),
                }
            } else if let Some(ps) = &to.pod_selector {
                assert!(to.namespace_selector.is_none(), "{to:?}");
                format!(
                    "pods {:?}",
                    ps.match_labels.clone().unwrap().get("mcpguard.io/server").cloned().unwrap()
                )
            } else {
                let ns = to.namespace_selector.clone().unwrap().match_expressions.unwrap();
                format!("ns {:?}", ns[0].values)
            };
            format!("{peer} {}", port_list(&r.ports).join(","))
        })
        .collect()
}

#[test]
fn the_binding_proxy_reaches_dns_its_bound_servers_and_the_api_server_only() {
    let w = world("policy.yaml");
    let np = proxy_network(&w).unwrap();
    assert_eq!(np.metadata.name.as_deref(), Some("agents-binding-proxy"));
    let spec = np.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"], "both directions default-deny");
    assert_eq!(
        spec.pod_selector.clone().unwrap().match_labels.unwrap(),
        binding_proxy::proxy_selector_labels("agents")
    );
    assert!(selects(&spec.pod_selector.unwrap(), &pod_labels(&proxy_objects(&w).deployment)));
    let egress = spec.egress.unwrap();
    // Every rule names its peers and ports: no rule opens everything.
    for rule in &egress {
        assert!(rule.to.as_ref().is_some_and(|t| !t.is_empty()), "{rule:?}");
        assert!(rule.ports.as_ref().is_some_and(|p| !p.is_empty()), "{rule:?}");
    }
    assert_eq!(
        describe_egress(&egress),
        [
            r#"ns Some(["kube-system"]) UDP/Int(53),TCP/Int(53)"#,
            "140.82.112.0/20 TCP/Int(443)",
            // The deployed server's gate, never the server's own port (8080).
            r#"pods "time" TCP/Int(9443)"#,
            "10.96.0.1/32 TCP/Int(443)",
            "192.0.2.2/32 TCP/Int(6443)",
        ]
    );
}

#[test]
fn the_executor_network_policy_admits_callers_and_the_operator_only() {
    let w = world("policy.yaml");
    let spec = executor_network(&w).spec.unwrap();
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 2, "callers, and the operator for discovery");
    // The operator's pods (its namespace AND its pod labels, in one peer), on the gRPC port only.
    let operator = &ingress[1];
    assert_eq!(port_list(&operator.ports), ["TCP/Int(9090)"], "the operator gets the gRPC port only");
    let peers = operator.from.clone().unwrap();
    assert_eq!(peers.len(), 1);
    let ns = peers[0].namespace_selector.clone().unwrap().match_labels.unwrap();
    assert_eq!(ns, BTreeMap::from([("kubernetes.io/metadata.name".into(), "mcp-guard-system".into())]));
    let pods = peers[0].pod_selector.clone().unwrap().match_labels.unwrap();
    assert_eq!(pods, BTreeMap::from([("app.kubernetes.io/name".into(), "mcp-guard-operator".into())]));
    assert_eq!(
        port_list(&ingress[0].ports),
        ["TCP/Int(9090)", "TCP/Int(8080)"],
        "API ports only; metrics stay closed"
    );
    let from = ingress[0].from.clone().unwrap();
    assert_eq!(
        from[0].namespace_selector.clone().unwrap().match_expressions.unwrap()[0].values,
        Some(vec!["agents".into()])
    );
    // No ingress rule admits the binding proxy's port, nor opens the executor to everyone.
    for rule in &ingress {
        assert!(rule.from.as_ref().is_some_and(|f| !f.is_empty()), "{rule:?}");
        assert!(!port_list(&rule.ports).contains(&"TCP/Int(9443)".to_string()), "{rule:?}");
    }
}

#[test]
fn the_executor_reaches_its_own_binding_proxy_and_nothing_else_whatever_is_bound() {
    let owner_settings = settings();
    assert!(!owner_settings.api_server.is_empty(), "API-server addresses are known, and still not opened");
    // A remote and a deployed server bound.
    let w = world("policy.yaml");
    assert_executor_egress_is_its_proxy_only(&executor_network(&w), "agents");
    // A deployed server only, without authentication.
    let w = world("policy-open.yaml");
    assert_executor_egress_is_its_proxy_only(&executor_network(&w), "open");
    // Many wide remote peers on many ports, and a remote server that would even be refused.
    let mut w = world("policy.yaml");
    w.github.spec.egress = ["10.0.0.0/8", "0.0.0.0/0", "140.82.112.0/20", "2001:db8::/32"]
        .iter()
        .map(|c| {
            serde_json::from_value(serde_json::json!({"cidr": c, "ports": [{"port": 443}, {"port": 22}]}))
                .unwrap()
        })
        .collect();
    assert_executor_egress_is_its_proxy_only(&executor_network(&w), "agents");
    // Nothing bound at all.
    w.policy.spec.servers.clear();
    assert_executor_egress_is_its_proxy_only(&executor_network(&w), "agents");
    // With callers named by a namespace selector, and no operator identity.
    let mut w = world("policy.yaml");
    w.policy.spec.callers.namespace_selector =
        Some(serde_json::from_value(serde_json::json!({"matchLabels": {"team": "a"}})).unwrap());
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let anonymous = Settings { operator: None, ..settings() };
    assert_executor_egress_is_its_proxy_only(
        &network::executor_policy(&w.policy, &anonymous, &owner).unwrap(),
        "agents",
    );
    // The rule's selector matches the policy's proxy pods, and not another policy's.
    let np = executor_network(&world("policy.yaml"));
    let sel = np.spec.unwrap().egress.unwrap()[0].to.clone().unwrap()[0].pod_selector.clone().unwrap();
    assert!(selects(&sel, &pod_labels(&proxy_objects(&world("policy.yaml")).deployment)));
    assert!(!selects(&sel, &pod_labels(&proxy_objects(&world("policy-open.yaml")).deployment)));
    assert!(!selects(&sel, &pod_labels(&executor_objects(&world("policy.yaml")).deployment)));
}

#[test]
fn the_binding_proxy_admits_its_own_policys_executors_only() {
    let w = world("policy.yaml");
    let spec = proxy_network(&w).unwrap().spec.unwrap();
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    assert_eq!(port_list(&ingress[0].ports), ["TCP/Int(9443)"]);
    let from = ingress[0].from.clone().unwrap();
    assert_eq!(from.len(), 1, "{from:?}");
    assert!(from[0].namespace_selector.is_none(), "same namespace only: {from:?}");
    assert!(from[0].ip_block.is_none(), "{from:?}");
    let sel = from[0].pod_selector.clone().unwrap();
    assert_eq!(sel.match_labels.clone().unwrap(), executor::executor_selector_labels("agents"));
    // Its executor's pods match; another policy's executors, the proxies themselves and the operator
    // (which has no business with credentials) do not.
    assert!(selects(&sel, &pod_labels(&executor_objects(&w).deployment)));
    let open = world("policy-open.yaml");
    assert!(!selects(&sel, &pod_labels(&executor_objects(&open).deployment)));
    assert!(!selects(&sel, &pod_labels(&proxy_objects(&w).deployment)));
    assert!(!selects(&sel, &settings().operator_pod_labels));
    // Whatever is bound, or how callers authenticate, the ingress stays the same.
    let open_ingress = proxy_network(&open).unwrap().spec.unwrap().ingress.unwrap();
    assert_eq!(open_ingress.len(), 1);
    assert_eq!(
        open_ingress[0].from.clone().unwrap()[0].pod_selector.clone().unwrap().match_labels.unwrap(),
        executor::executor_selector_labels("open")
    );
}

#[test]
fn no_executor_reaches_the_api_server_and_every_binding_proxy_does() {
    let w = world("policy-open.yaml");
    let spec = executor_network(&w).spec.unwrap();
    assert_eq!(spec.egress.unwrap().len(), 1, "its binding proxy only");
    let ingress = spec.ingress.unwrap();
    // The operator still asks the executor about missing credentials and tools (gRPC port only).
    assert_eq!(ingress.len(), 2, "callers, and the operator");
    assert_eq!(ingress[1].ports.clone().unwrap().len(), 1);
    let from = ingress[0].from.clone().unwrap();
    assert_eq!(
        from[0].namespace_selector.clone().unwrap().match_expressions.unwrap()[0].values,
        Some(vec!["team-a".into()])
    );
    // Without caller authentication the proxy still reviews its executor's tokens: DNS, the bound
    // server's gate and the API server.
    let egress = proxy_network(&w).unwrap().spec.unwrap().egress.unwrap();
    assert_eq!(
        describe_egress(&egress),
        [
            r#"ns Some(["kube-system"]) UDP/Int(53),TCP/Int(53)"#,
            r#"pods "time" TCP/Int(9443)"#,
            "10.96.0.1/32 TCP/Int(443)",
            "192.0.2.2/32 TCP/Int(6443)",
        ]
    );
    // An IPv6 API server is one address, too.
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let v6 = Settings { api_server: vec![("fd00:10:96::1".into(), 443)], ..settings() };
    let egress =
        network::proxy_policy(&w.policy, &w.resolved(), &v6, &owner).unwrap().spec.unwrap().egress.unwrap();
    assert_eq!(describe_egress(&egress).last().unwrap(), "fd00:10:96::1/128 TCP/Int(443)");
}

#[test]
fn a_deployed_server_admits_only_binding_proxies_that_bind_it() {
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
    let ingress = np.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let rule = &ingress[0];
    assert_eq!(
        port_list(&rule.ports),
        ["TCP/Int(9443)"],
        "only the gate's port is open; the server's own is not"
    );
    let from = rule.from.clone().unwrap();
    assert_eq!(from.len(), 1);
    assert!(from[0].namespace_selector.is_none(), "same namespace only");
    assert!(from[0].ip_block.is_none());
    let sel = from[0].pod_selector.clone().unwrap();
    let labels = sel.match_labels.clone().unwrap();
    assert_eq!(labels.get("bind.mcpguard.io/time").map(String::as_str), Some("true"));
    assert_eq!(labels.get("app.kubernetes.io/name").map(String::as_str), Some("mcp-guard-binding-proxy"));
    // The binding proxies of both policies that bind it match; no executor pod ever does, not even one
    // that carried the bind label.
    for policy in ["policy.yaml", "policy-open.yaml"] {
        let pw = world(policy);
        assert!(selects(&sel, &pod_labels(&proxy_objects(&pw).deployment)), "{policy}");
        let mut exec = pod_labels(&executor_objects(&pw).deployment);
        assert!(!selects(&sel, &exec), "{policy}");
        exec.insert("bind.mcpguard.io/time".into(), "true".into());
        assert!(!selects(&sel, &exec), "{policy}: the executor's name label keeps it out");
    }
    // A proxy whose policy does not bind the server does not match.
    let mut unbound = world("policy.yaml");
    unbound.policy.spec.servers.retain(|b| b.name != "time");
    assert!(!selects(&sel, &pod_labels(&proxy_objects(&unbound).deployment)));
    // The gate's token comes from the proxy's service account (the server audience), see below.
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
    let pod = proxy_pod(&proxy_objects(&w));
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
    let mount = proxy.volume_mounts.iter().flatten().find(|m| m.name == "server-identity").unwrap();
    assert_eq!(mount.mount_path, "/var/run/secrets/mcp-guard-identity");
    // The executor has none.
    let exec = executor_objects(&w);
    assert!(pod_of(&exec.deployment).volumes.iter().flatten().all(|v| v.name != "server-identity"));
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
    // Only remote servers bound: no identity volume at all.
    let mut remote_only = world("policy.yaml");
    remote_only.policy.spec.servers.retain(|b| b.name == "github");
    let pod = proxy_pod(&proxy_objects(&remote_only));
    assert!(pod.volumes.iter().flatten().all(|v| v.name != "server-identity"));

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
    let err = executor_with(&w, &settings()).unwrap_err();
    assert!(err.to_string().contains("too long"), "{err}");
    let err = proxy_with(&w, &settings()).unwrap_err();
    assert!(err.to_string().contains("too long"), "{err}");
    // `-binding-proxy` is longer than `-mcp-guard`: a name the executor's children fit may still be
    // too long for the proxy's.
    w.policy.metadata.name = Some("x".repeat(50));
    executor_with(&w, &settings()).unwrap();
    let err = proxy_with(&w, &settings()).unwrap_err().to_string();
    assert!(err.contains("too long") && err.contains("-binding-proxy"), "{err}");
    w.policy.metadata.name = Some("x".repeat(49));
    let p = proxy_with(&w, &settings()).unwrap();
    assert_eq!(p.deployment.metadata.name.unwrap().len(), 63);
}

#[test]
fn token_review_gets_a_binding_named_from_the_policy_uid_to_the_narrow_role() {
    let w = world("policy.yaml");
    let uid = w.policy.metadata.uid.clone().unwrap();
    let crb = executor::token_review_binding(&w.policy, &uid, &settings());
    assert_eq!(crb.metadata.name.as_deref(), Some(format!("mcp-guard-tokenreview-{uid}").as_str()));
    assert_eq!(crb.role_ref.name, "mcp-guard-tokenreview", "tokenreviews: create only, not auth-delegator");
    assert_eq!(crb.role_ref.kind, "ClusterRole");
    let subjects = crb.subjects.clone().unwrap();
    assert_eq!(subjects.len(), 1);
    // The binding proxy calls TokenReview; the executor (which cannot reach the API server) is not bound.
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
        ("ServiceAccount", "agents-binding-proxy", Some("team-a"))
    );
    assert_eq!(
        Some(subjects[0].name.as_str()),
        proxy_pod(&proxy_objects(&w)).service_account_name.as_deref(),
        "the subject is the account the proxy pods run as"
    );
    assert!(executor::binding_belongs_to(&crb, "team-a", "agents", Some(&uid)));
    // `team-a/x` and `team/a-x` once shared a binding name; now the owner is checked before any patch
    // or delete: another policy's (or anybody's) binding is not this policy's.
    assert!(!executor::binding_belongs_to(&crb, "team-a", "agents", Some("another-uid")));
    assert!(!executor::binding_belongs_to(&crb, "team", "a-agents", None));
    assert!(!executor::binding_belongs_to(&crb, "team-a", "open", None));
    let mut foreign = crb.clone();
    foreign.metadata.labels.as_mut().unwrap().remove("app.kubernetes.io/managed-by");
    assert!(!executor::binding_belongs_to(&foreign, "team-a", "agents", Some(&uid)));
    let mut more_subjects = crb.clone();
    more_subjects.subjects.as_mut().unwrap()[0].namespace = Some("kube-system".into());
    assert!(!executor::binding_belongs_to(&more_subjects, "team-a", "agents", Some(&uid)));
    let mut two = crb.clone();
    let extra = two.subjects.as_ref().unwrap()[0].clone();
    two.subjects.as_mut().unwrap().push(extra);
    assert!(!executor::binding_belongs_to(&two, "team-a", "agents", Some(&uid)));

    // An older operator bound the executor's account: that binding is still this policy's, to patch.
    let subject_named = |name: &str| {
        let mut b = crb.clone();
        b.subjects.as_mut().unwrap()[0].name = name.into();
        b
    };
    let former = subject_named("agents-mcp-guard");
    assert!(executor::binding_belongs_to(&former, "team-a", "agents", Some(&uid)));
    assert!(executor::binding_belongs_to(&former, "team-a", "agents", None));
    // ...but not another policy's account, former or current, even under this policy's labels.
    for other in ["open-mcp-guard", "open-binding-proxy", "agents-mcp-server", "agents", "default"] {
        assert!(
            !executor::binding_belongs_to(&subject_named(other), "team-a", "agents", Some(&uid)),
            "{other}"
        );
    }
    // Nor, the other way round, does another policy own this one's binding, former subject or not.
    assert!(!executor::binding_belongs_to(&former, "team-a", "open", None));
    let open_owner = executor::policy_owner("team-a", "open", None);
    assert!(!token_review::belongs_to(&former, open_owner));
    // The former subject is a policy thing: a deployed server's binding has none.
    let server_owner = token_review::Owner {
        kind: token_review::OwnerKind::Server,
        namespace: "team-a",
        name: "time",
        uid: Some("33333333-2222-3333-4444-555555555555"),
    };
    let server_binding = token_review::binding(server_owner, &settings());
    assert_eq!(server_binding.subjects.clone().unwrap()[0].name, "time-mcp-server");
    assert!(token_review::belongs_to(&server_binding, server_owner));
    let mut server_former = server_binding.clone();
    server_former.subjects.as_mut().unwrap()[0].name = "time-mcp-guard".into();
    assert!(!token_review::belongs_to(&server_former, server_owner));
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
    let np = network::executor_policy(&w.policy, &settings(), &owner).unwrap();
    let from = np.spec.unwrap().ingress.unwrap()[0].from.clone().unwrap();
    assert_eq!(
        from[0].namespace_selector.clone().unwrap().match_expressions.unwrap()[0].values,
        Some(vec!["team-a".into()]),
        "the policy's own namespace is admitted next to the selector"
    );
    // An empty selector (stored before the CRD refused it) still opens nothing.
    w.policy.spec.callers.namespace_selector = Some(Default::default());
    let err = network::executor_policy(&w.policy, &settings(), &owner).unwrap_err();
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
    let err = executor_with(&w, &settings()).unwrap_err();
    assert!(
        err.to_string().contains("spec.executor.image: `evil.example/exfiltrate:1` is not an allowed"),
        "{err}"
    );
    // The proxy never runs the policy's image, refused or allowed.
    let proxy_image = |w: &World, s: &Settings| {
        container(&proxy_pod(&proxy_with(w, s).unwrap()), PROXY_CONTAINER).image.clone().unwrap()
    };
    assert_eq!(proxy_image(&w, &settings()), "mcp-guard.local/mcp-guard:test");
    let allowing =
        Settings { allowed_executor_images: vec!["registry.example/mcp-guard:".into()], ..settings() };
    w.policy.spec.executor.image = Some("registry.example/mcp-guard:debug".into());
    let o = executor_with(&w, &allowing).unwrap();
    assert_eq!(
        container(&pod(&o), EXECUTOR_CONTAINER).image.as_deref(),
        Some("registry.example/mcp-guard:debug")
    );
    assert_eq!(
        proxy_image(&w, &allowing),
        "mcp-guard.local/mcp-guard:test",
        "the Deployment holding the Secrets runs the operator's image"
    );
    for c in proxy_pod(&proxy_with(&w, &allowing).unwrap()).containers {
        assert_eq!(c.image.as_deref(), Some("mcp-guard.local/mcp-guard:test"), "{}", c.name);
    }
    // A prefix must be a prefix of the image, not of something else; an empty prefix allows nothing.
    let empty = Settings { allowed_executor_images: vec![String::new()], ..settings() };
    assert!(executor_with(&w, &empty).is_err());

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
    let strict = Settings { allow_unauthenticated: false, ..settings() };
    let err = executor_with(&w, &strict).unwrap_err();
    assert!(err.to_string().contains("executor.allowUnauthenticated"), "{err}");
    // Allowed: the executor is told it may serve the pod network without authentication.
    let o = executor_with(&w, &settings()).unwrap();
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
}

#[test]
fn a_bound_remote_server_with_a_bad_peer_makes_the_proxy_policy_invalid() {
    for (cidr, says) in [
        ("0.0.0.0/0", "is too broad"),
        ("10.0.0.0/8", "is too broad"),
        ("::/0", "IPv6 peers need at least a /32"),
        ("169.254.169.254/32", "lies inside"),
        ("not-a-cidr", "is not an IP block"),
    ] {
        let mut w = world("policy.yaml");
        w.github.spec.egress[0].cidr = cidr.into();
        // The McpServer names its peer in the policy's error.
        let err = proxy_network(&w).unwrap_err().to_string();
        assert!(
            err.contains("McpServer `github`: spec.egress[0].cidr") && err.contains(says),
            "{cidr}: {err}"
        );
        // The executor's policy is not where servers are opened: it stays its proxy only.
        assert_executor_egress_is_its_proxy_only(&executor_network(&w), "agents");
    }
    // Each bad peer of each server is named, after the good ones.
    let mut w = world("policy.yaml");
    w.github.spec.egress = ["140.82.112.0/20", "0.0.0.0/1", "0.0.0.0/0"]
        .iter()
        .map(|c| serde_json::from_value(serde_json::json!({"cidr": c, "ports": [{"port": 443}]})).unwrap())
        .collect();
    let Invalid(errors) = proxy_network(&w).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("spec.egress[1]") && errors[1].contains("spec.egress[2]"), "{errors:?}");
    // A server that is not bound does not count.
    let mut w = world("policy-open.yaml");
    w.github.spec.egress[0].cidr = "0.0.0.0/0".into();
    proxy_network(&w).unwrap();
}

#[test]
fn rate_limits_smaller_than_the_proxy_replicas_are_refused() {
    // perCaller: 60 requests per minute in the fixture.
    let mut w = world("policy.yaml");
    w.policy.spec.binding_proxy.replicas = 61;
    let err = proxy_with(&w, &settings()).unwrap_err().to_string();
    assert!(
        err.contains("spec.binding.rateLimits.perCaller.requests")
            && err.contains("spec.bindingProxy.replicas"),
        "{err}"
    );
    assert!(!err.contains("perTool"), "{err}");
    // As many requests as replicas: each proxy allows one.
    w.policy.spec.binding_proxy.replicas = 60;
    let p = proxy_with(&w, &settings()).unwrap();
    let args = container(&proxy_pod(&p), PROXY_CONTAINER).args.clone().unwrap().join(" ");
    assert!(args.contains("--replicas 60"), "{args}");
    assert!(p.pdb.is_some());
    // Never more proxies than replicas while rolling (a surge pod would add a share of the limits).
    let strategy = p.deployment.spec.clone().unwrap().strategy.unwrap();
    let rolling = strategy.rolling_update.unwrap();
    assert_eq!(rolling.max_surge, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)));
    assert_eq!(
        rolling.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    // perTool too, and both at once.
    let mut w = world("policy.yaml");
    w.policy.spec.binding.rate_limits.per_tool =
        Some(serde_json::from_value(serde_json::json!({"requests": 2, "per": "1s"})).unwrap());
    w.policy.spec.binding_proxy.replicas = 2;
    proxy_with(&w, &settings()).unwrap();
    w.policy.spec.binding_proxy.replicas = 3;
    let err = proxy_with(&w, &settings()).unwrap_err().to_string();
    assert!(err.contains("spec.binding.rateLimits.perTool.requests: 2"), "{err}");
    assert!(err.contains("spec.bindingProxy.replicas") && !err.contains("perCaller"), "{err}");
    w.policy.spec.binding_proxy.replicas = 61;
    let Invalid(errors) = proxy_with(&w, &settings()).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    // No rate limit: any number of replicas.
    let mut w = world("policy-open.yaml");
    w.policy.spec.binding_proxy.replicas = 20;
    proxy_with(&w, &settings()).unwrap();
    // The executor's replicas have nothing to do with it (the proxies enforce the limits).
    let mut w = world("policy.yaml");
    w.policy.spec.executor.replicas = 100;
    proxy_with(&w, &settings()).unwrap();
    executor_with(&w, &settings()).unwrap();
}

#[test]
fn autoscaling_renders_an_hpa_for_the_executor_and_leaves_its_replicas_alone() {
    let mut w = world("policy.yaml");
    // The field as the CRD spells it (as the HorizontalPodAutoscaler API does).
    w.policy.spec.executor.autoscaling = Some(
        serde_json::from_value(serde_json::json!({
            "minReplicas": 2, "maxReplicas": 7, "targetCPUUtilizationPercentage": 55
        }))
        .unwrap(),
    );
    let o = executor_objects(&w);
    assert_eq!(o.deployment.spec.clone().unwrap().replicas, None, "the autoscaler owns the replica count");
    let hpa = o.hpa.clone().unwrap();
    assert_eq!(hpa.metadata.name, o.deployment.metadata.name);
    assert_eq!(hpa.metadata.owner_references, o.deployment.metadata.owner_references);
    let spec = hpa.spec.unwrap();
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    assert_eq!(spec.scale_target_ref.api_version.as_deref(), Some("apps/v1"));
    assert_eq!(Some(spec.scale_target_ref.name.as_str()), o.deployment.metadata.name.as_deref());
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 7));
    let metrics = spec.metrics.unwrap();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].type_, "Resource");
    let resource = metrics[0].resource.clone().unwrap();
    assert_eq!(resource.name, "cpu");
    assert_eq!(resource.target.type_, "Utilization");
    assert_eq!(resource.target.average_utilization, Some(55));
    assert!(o.pdb.is_some(), "at least two executors: a PodDisruptionBudget");
    // The binding proxy does not scale with it.
    assert!(proxy_objects(&w).deployment.spec.unwrap().replicas == Some(1));
    // A minimum of one: no PodDisruptionBudget, whatever `replicas` says.
    let a = w.policy.spec.executor.autoscaling.as_mut().unwrap();
    a.min_replicas = 1;
    assert_eq!(w.policy.spec.executor.replicas, 2);
    let o = executor_objects(&w);
    assert!(o.pdb.is_none());
    assert_eq!(o.deployment.spec.unwrap().replicas, None);
    assert_eq!(o.hpa.unwrap().spec.unwrap().min_replicas, Some(1));
    // From YAML, the CPU target has its default.
    let mut w = world("policy-open.yaml");
    w.policy.spec.executor.autoscaling =
        Some(serde_json::from_value(serde_json::json!({"minReplicas": 1, "maxReplicas": 3})).unwrap());
    let target = executor_objects(&w).hpa.unwrap().spec.unwrap().metrics.unwrap()[0]
        .resource
        .clone()
        .unwrap()
        .target
        .average_utilization;
    assert_eq!(target, Some(70));
    // Without autoscaling: no autoscaler, and the replicas are set.
    let o = executor_objects(&world("policy-open.yaml"));
    assert!(o.hpa.is_none());
    assert_eq!(o.deployment.spec.unwrap().replicas, Some(1));
}

#[test]
fn the_executor_dials_its_proxy_by_address() {
    assert_eq!(binding_proxy::proxy_url("10.96.0.77"), "http://10.96.0.77:9443");
    assert_eq!(binding_proxy::proxy_url("fd00:10:96::77"), "http://[fd00:10:96::77]:9443");
    assert_eq!(binding_proxy::proxy_audience("agents", "team-a"), PROXY_AUDIENCE);
    // Distinct from the callers' audience: a caller's token never opens the proxy, nor the reverse.
    assert_ne!(binding_proxy::proxy_audience("agents", "team-a"), executor::audience("agents", "team-a"));
    let w = world("policy.yaml");
    let rendered = render(&w.policy, &w.resolved(), &settings()).unwrap();
    let owner = w.policy.controller_owner_ref(&()).unwrap();
    let o = executor::build(&w.policy, &rendered, "fd00:10:96::77", &settings(), &owner).unwrap();
    let args = container(&pod(&o), EXECUTOR_CONTAINER).args.clone().unwrap().join(" ");
    assert!(args.contains("--proxy-url http://[fd00:10:96::77]:9443 "), "{args}");
}
