//! Integration tests against a real kube-apiserver (e2e/cluster, or any cluster): CRDs, CEL, and the
//! operator's controllers running in-process against it. Ignored by default; run them with
//!
//! ```sh
//! e2e/cluster/up.sh && export KUBECONFIG=/tmp/mcp-guard-cluster/admin.kubeconfig
//! cargo test -p mcp-guard-operator --test cluster -- --ignored --test-threads=1
//! ```
//!
//! Each test works in its own namespace (labelled `mcpguard.io/test`), deleted when the test passes; a
//! failing test leaves it for inspection (`kubectl get all,mcps,mgp,netpol,events -n mcpg-<test>-<pid>`).
//!
//! The approval tests also need `helm` (`$HELM`, `PATH`, or `~/.cache/mcp-guard/cluster/helm-*/bin`):
//! they install the chart's approval admission policy as `helm template` renders it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mcp_guard_crds::v1alpha1::{ApprovalPhase, McpApproval, McpApprovalJournal, McpGuardPolicy, McpServer};
use mcp_guard_operator::build::Settings;
use mcp_guard_operator::context::{Context, Metrics};
use serde_json::json;

/// How long a condition may take: a policy's status now waits for two pods (the executor and its binding
/// proxy) to start, on a node that may be unpacking their image for the first time.
const WAIT: Duration = Duration::from_secs(120);

async fn client() -> Client {
    Client::try_default().await.expect("KUBECONFIG must point at a cluster")
}

/// The tests' own TokenReview ClusterRole (the chart's is `mcp-guard-tokenreview`, installed later by
/// the e2e suite, which must find no object of that name it does not own).
const TOKEN_REVIEW_ROLE: &str = "mcp-guard-tests-tokenreview";

/// Apply the generated CRDs and wait until they are served; and a TokenReview ClusterRole
/// (`tokenreviews: create` only) like the chart's, which the operator binds each binding proxy to: a
/// proxy reviews its executor's token on every request, whatever the policy's caller auth.
async fn install_crds(client: &Client) {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role: ClusterRole = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": TOKEN_REVIEW_ROLE},
        "rules": [{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}]
    }))
    .unwrap();
    let name = role.metadata.name.clone().unwrap();
    roles.patch(&name, &PatchParams::apply("mcp-guard-tests").force(), &Patch::Apply(&role)).await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in mcp_guard_crds::crd_yaml::crds() {
        let crd = crd.unwrap();
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &PatchParams::apply("mcp-guard-tests").force(), &Patch::Apply(&crd)).await.unwrap();
        wait_for(&format!("CRD {name} established"), || async {
            let c = crds.get(&name).await.ok()?;
            c.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
        })
        .await;
    }
}

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A fresh namespace for one test.
struct TestNs {
    client: Client,
    name: String,
}

impl TestNs {
    async fn new(client: &Client, test: &str) -> Self {
        Self::named(client, test, &format!("mcpg-{test}-{}", std::process::id())).await
    }

    async fn named(client: &Client, test: &str, name: &str) -> Self {
        let name = name.to_string();
        let nss: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"mcpguard.io/test": test}}
        }))
        .unwrap();
        nss.create(&PostParams::default(), &ns).await.unwrap();
        TestNs { client: client.clone(), name }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    async fn create<K>(&self, obj: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let obj: K = serde_json::from_value(obj).unwrap();
        self.api::<K>().create(&PostParams::default(), &obj).await.unwrap()
    }

    /// Delete the policies first, while this test's operator still runs to release their finalizers, then
    /// the namespace.
    async fn delete(self) {
        let policies = self.api::<McpGuardPolicy>();
        let _ = policies.delete_collection(&DeleteParams::default(), &Default::default()).await;
        wait_for("the policies to go", || async {
            policies.list(&Default::default()).await.ok()?.items.is_empty().then_some(())
        })
        .await;
        // Deployed servers have a finalizer too (their gate's TokenReview binding).
        let servers = self.api::<McpServer>();
        let _ = servers.delete_collection(&DeleteParams::default(), &Default::default()).await;
        wait_for("the servers to go", || async {
            servers.list(&Default::default()).await.ok()?.items.is_empty().then_some(())
        })
        .await;
        let nss: Api<Namespace> = Api::all(self.client.clone());
        let _ = nss.delete(&self.name, &DeleteParams::default()).await;
    }
}

/// The tag of the images e2e/images.sh imports: `MCP_GUARD_E2E_TAG`, else the chart's appVersion.
fn image_tag() -> String {
    if let Ok(tag) = std::env::var("MCP_GUARD_E2E_TAG") {
        return tag;
    }
    let chart =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/mcp-guard/Chart.yaml"))
            .unwrap();
    chart
        .lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("appVersion in charts/mcp-guard/Chart.yaml")
}

/// Run both controllers in this test's runtime.
fn start_operator(client: &Client) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        // Binding proxies reach the API server (TokenReview of their executor's token), as the operator
        // binary finds it.
        let api_server = mcp_guard_operator::context::api_server_addresses(&client).await;
        assert!(!api_server.is_empty(), "the API server's addresses");
        start_operator_with(&client, api_server).await
    })
}

async fn start_operator_with(client: &Client, api_server: Vec<(String, i32)>) {
    let settings = Settings {
        // The image e2e/images.sh imported (a deployed server's gate runs it).
        executor_image: format!("mcp-guard.local/mcp-guard:{}", image_tag()),
        api_server,
        token_review_role: TOKEN_REVIEW_ROLE.into(),
        allowed_server_images: vec!["mcp-guard.local/".into()],
        // These tests run executors without authentication (`auth: none`), as a cluster admin may allow.
        allow_unauthenticated: true,
        ..Default::default()
    };
    let ctx = Arc::new(Context::new(client.clone(), settings, Metrics::new().unwrap()));
    mcp_guard_operator::controllers::run(client.clone(), ctx).await
}

fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    t: &str,
) -> Option<(String, String)> {
    conditions.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.reason.clone()))
}

async fn policy_condition(ns: &TestNs, name: &str, t: &str) -> Option<(String, String)> {
    let p = ns.api::<McpGuardPolicy>().get(name).await.ok()?;
    condition(&p.status?.conditions, t)
}

fn api_error(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn cel_rejects_bad_specs_with_their_messages() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNs::new(&client, "cel").await;
    let servers = ns.api::<McpServer>();
    let bad: McpServer = serde_json::from_value(json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": "bad"},
        "spec": {"url": "ftp://example.com/mcp", "deploy": {"image": "x.local/y:1"}}
    }))
    .unwrap();
    let msg = api_error(servers.create(&PostParams::default(), &bad).await.unwrap_err());
    assert!(msg.contains("set exactly one of url (a remote server) or deploy"), "{msg}");
    assert!(msg.contains("url must be an absolute http:// or https:// URL"), "{msg}");
    // Egress to the whole Internet (either family, or half of it) is refused at admission.
    for cidr in ["0.0.0.0/0", "::/0", "0.0.0.0/1"] {
        let open: McpServer = serde_json::from_value(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": "open"},
            "spec": {"url": "https://mcp.example.com/mcp", "egress": [{"cidr": cidr, "ports": [{"port": 443}]}]}
        }))
        .unwrap();
        let msg = api_error(servers.create(&PostParams::default(), &open).await.unwrap_err());
        assert!(msg.contains("cidr is too broad"), "{cidr}: {msg}");
    }

    let policies = ns.api::<McpGuardPolicy>();
    let bad: McpGuardPolicy = serde_json::from_value(json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": "bad"},
        "spec": {
            "limits": {"memory": "100Gi", "cpuTime": "2m", "wallTime": "1m", "toolCalls": 20000},
            "servers": [{"name": "a", "tools": {"allow": ["get_*"], "requireApproval": ["delete_repo"]}}]
        }
    }))
    .unwrap();
    let msg = api_error(policies.create(&PostParams::default(), &bad).await.unwrap_err());
    for expected in [
        "limits.memory must be between 1Mi and 4Gi",
        "limits.toolCalls must be between 0 and 10000",
        "limits.cpuTime must not be longer than limits.wallTime",
        "every tool in requireApproval must be an allowed tool",
        "tools in requireApproval need spec.approvals with at least one approver",
    ] {
        assert!(msg.contains(expected), "missing `{expected}` in: {msg}");
    }
    // Approvals: someone must be able to decide, a request must wait a while, approvers are names.
    let bad: McpGuardPolicy = serde_json::from_value(json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": "approvals"},
        "spec": {
            "servers": [{"name": "a", "tools": {"requireApproval": ["delete_repo"]}}],
            "approvals": {"approvers": {"serviceAccounts": ["a/b/c"]}, "ttl": "0s",
                          "journalKey": {"secretName": "k"}}
        }
    }))
    .unwrap();
    let msg = api_error(policies.create(&PostParams::default(), &bad).await.unwrap_err());
    for expected in
        ["approvals.ttl must be longer than zero", "approvals.approvers.serviceAccounts: each entry"]
    {
        assert!(msg.contains(expected), "missing `{expected}` in: {msg}");
    }
    // Kept at least as long as a decided approval can be resumed.
    let short: McpGuardPolicy = serde_json::from_value(json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": "short"},
        "spec": {"approvals": {"approvers": {"users": ["alice"]}, "ttl": "2h", "retention": "1h 30m",
                               "journalKey": {"secretName": "k"}}}
    }))
    .unwrap();
    let msg = api_error(policies.create(&PostParams::default(), &short).await.unwrap_err());
    assert!(msg.contains("approvals.retention must not be shorter than approvals.ttl"), "{msg}");
    // McpApproval: its schema, then (on an otherwise valid object) its rules.
    let approvals = ns.api::<McpApproval>();
    let mut bad = approval_json("bad", "agents", false);
    bad["spec"]["calls"][0]["argumentsSha256"] = json!("not-hex");
    bad["spec"]["expiresAt"] = json!("tomorrow");
    let bad: McpApproval = serde_json::from_value(bad).unwrap();
    let msg = api_error(approvals.create(&PostParams::default(), &bad).await.unwrap_err());
    for expected in ["spec.calls[0].argumentsSha256", "spec.expiresAt in body must be of type date-time"] {
        assert!(msg.contains(expected), "missing `{expected}` in: {msg}");
    }
    let mut bad = approval_json("bad", "agents", false);
    bad["spec"]["approvers"]["serviceAccounts"] = json!(["reviewer"]);
    let bad: McpApproval = serde_json::from_value(bad).unwrap();
    let msg = api_error(approvals.create(&PostParams::default(), &bad).await.unwrap_err());
    assert!(msg.contains("spec.approvers.serviceAccounts: each entry is namespace/name"), "{msg}");
    // Defaults apply.
    let ok: McpGuardPolicy = serde_json::from_value(json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": "ok"},
        "spec": {"limits": {"memory": "16Mi", "cpuTime": "1m 30s", "wallTime": "2m"}}
    }))
    .unwrap();
    let created = policies.create(&PostParams::default(), &ok).await.unwrap();
    assert_eq!(created.spec.limits.tool_calls, 100);
    assert_eq!(created.spec.executor.replicas, 1);
    ns.delete().await;
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn kubectl_explain_prints_the_limits_docs() {
    let client = client().await;
    install_crds(&client).await;
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        let cache = std::path::Path::new(&home).join(".cache/mcp-guard/cluster");
        std::fs::read_dir(&cache)
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path().join("bin/kubectl")).find(|p| p.exists()))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "kubectl".into())
    });
    // Discovery may lag the CRD by a moment.
    let out = wait_for("kubectl explain", || async {
        let out = std::process::Command::new(&kubectl)
            .args(["explain", "mcpguardpolicy.spec.limits"])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    assert!(out.contains("Hard limits of every execution"), "{out}");
    for field in ["memory", "cpuTime", "wallTime", "toolCalls", "codeSize"] {
        assert!(out.contains(field), "{field} missing from: {out}");
    }
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn a_policy_gets_children_and_status_recovers_from_missing_refs_and_hand_edits() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNs::new(&client, "life").await;
    start_operator(&client);

    // A deployed server whose header needs a Secret that does not exist yet, and a policy binding it. The
    // operator cannot read Secrets: the executor starts (its Secret volume is optional), its binding proxy
    // reports the missing file, and the operator (asking the executor) says which Secret key it is.
    let _: McpServer = ns
        .create(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": "time"},
            "spec": {
                "deploy": {"image": "mcp-guard.local/busybox:1.35", "args": ["httpd", "-f", "-p", "8080"]},
                "headers": [{"name": "Authorization", "prefix": "Bearer ",
                             "secretKeyRef": {"name": "time-key", "key": "bearer"}}]
            }
        }))
        .await;
    let _: McpGuardPolicy = ns
        .create(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": "agents"},
            "spec": {"servers": [{"name": "time"}], "callers": {"auth": "none"}}
        }))
        .await;
    wait_for("Ready=False SecretNotFound", || async {
        (policy_condition(&ns, "agents", "Ready").await? == ("False".into(), "SecretNotFound".into()))
            .then_some(())
    })
    .await;
    let p = ns.api::<McpGuardPolicy>().get("agents").await.unwrap();
    let ready = p.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(ready.message.contains("time-key"), "{}", ready.message);

    // The Secret appears: the kubelet fills the volume at its next sync, the binding proxy reads it, and
    // the operator's next look resolves the policy.
    let _: Secret = ns
        .create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "time-key"},
                       "stringData": {"bearer": "s3cret"}}))
        .await;
    wait_for("ResolvedRefs=True", || async {
        (policy_condition(&ns, "agents", "ResolvedRefs").await?.0 == "True").then_some(())
    })
    .await;
    let child = "agents-mcp-guard";
    let cm = wait_for("ConfigMap", || async { ns.api::<ConfigMap>().get(child).await.ok() }).await;
    let config_yaml = cm.data.unwrap()["config.yaml"].clone();
    let config = mcp_guard_crds::GuardConfig::from_yaml(&config_yaml, "configmap").unwrap();
    assert_eq!(config.servers[0].name, "time");
    assert!(config.servers[0].url.as_deref().unwrap().starts_with("http://10."));
    ns.api::<ServiceAccount>().get(child).await.unwrap();
    ns.api::<Service>().get(child).await.unwrap();
    ns.api::<NetworkPolicy>().get(child).await.unwrap();
    ns.api::<NetworkPolicy>().get("time-mcp-server").await.unwrap();
    ns.api::<Deployment>().get(child).await.unwrap();
    let status = ns.api::<McpGuardPolicy>().get("agents").await.unwrap().status.unwrap();
    assert_eq!(status.endpoint.as_deref(), Some(format!("agents-mcp-guard.{}.svc:9090", ns.name).as_str()));
    assert!(status.config_hash.is_some());

    // The pods the apiserver accepted: the executor pod has no Secret volume at all; the binding-proxy
    // pod (its own Deployment) mounts the Secret.
    let pod_of = |labels: &'static str| {
        let ns = &ns;
        async move {
            wait_for("a pod", || async {
                let pods =
                    ns.api::<Pod>().list(&kube::api::ListParams::default().labels(labels)).await.ok()?;
                pods.items.into_iter().next()
            })
            .await
        }
    };
    let executor_pod = pod_of("app.kubernetes.io/name=mcp-guard-executor,mcpguard.io/policy=agents").await;
    let spec = executor_pod.spec.unwrap();
    assert!(spec.volumes.iter().flatten().all(|v| v.secret.is_none()), "{:?}", spec.volumes);
    assert_eq!(spec.containers.len(), 1);
    assert!(spec.containers[0].env.is_none());
    let proxy_pod = pod_of("app.kubernetes.io/name=mcp-guard-binding-proxy,mcpguard.io/policy=agents").await;
    let proxy_spec = proxy_pod.spec.unwrap();
    assert!(proxy_spec.volumes.iter().flatten().any(|v| v.secret.is_some()));
    ns.api::<Deployment>().get("agents-binding-proxy").await.unwrap();
    ns.api::<Service>().get("agents-binding-proxy").await.unwrap();
    ns.api::<NetworkPolicy>().get("agents-binding-proxy").await.unwrap();

    // A rotated Secret rolls nothing (the operator cannot see Secrets; the binding proxy re-reads its
    // mounted files): the pod-template hash is the config's alone.
    let hash_of = |d: Deployment| {
        d.spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .and_then(|a| a.get("mcpguard.io/config-hash").cloned())
    };
    let before = hash_of(ns.api::<Deployment>().get(child).await.unwrap()).unwrap();
    ns.api::<Secret>()
        .patch(
            "time-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"bearer": "rotated"}})),
        )
        .await
        .unwrap();
    let rendered = mcp_guard_operator::build::executor::config_hash(&config_yaml);
    assert_eq!(before, rendered, "the hash is the config's");

    // A hand edit is reverted and a deleted child comes back.
    ns.api::<ConfigMap>()
        .patch(child, &PatchParams::default(), &Patch::Merge(json!({"data": {"config.yaml": "hacked"}})))
        .await
        .unwrap();
    ns.api::<Service>().delete(child, &DeleteParams::default()).await.unwrap();
    wait_for("the ConfigMap restored", || async {
        let cm = ns.api::<ConfigMap>().get(child).await.ok()?;
        (cm.data?.get("config.yaml")? != "hacked").then_some(())
    })
    .await;
    wait_for("the Service restored", || async { ns.api::<Service>().get(child).await.ok() }).await;

    // The McpServer disappears, then comes back.
    ns.api::<McpServer>().delete("time", &DeleteParams::default()).await.unwrap();
    wait_for("Ready=False McpServerNotFound", || async {
        (policy_condition(&ns, "agents", "Ready").await?.1 == "McpServerNotFound").then_some(())
    })
    .await;
    let _: McpServer = ns
        .create(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": "time"},
            "spec": {"deploy": {"image": "mcp-guard.local/busybox:1.35", "args": ["httpd", "-f", "-p", "8080"]}}
        }))
        .await;
    wait_for("ResolvedRefs=True again", || async {
        (policy_condition(&ns, "agents", "ResolvedRefs").await?.0 == "True").then_some(())
    })
    .await;

    // Deleting the policy removes its children (garbage collection through the owner references).
    ns.api::<McpGuardPolicy>().delete("agents", &DeleteParams::default()).await.unwrap();
    wait_for("children garbage-collected", || async {
        let gone = ns.api::<ConfigMap>().get_opt(child).await.ok()?.is_none()
            && ns.api::<Deployment>().get_opt(child).await.ok()?.is_none()
            && ns.api::<Service>().get_opt(child).await.ok()?.is_none()
            && ns.api::<NetworkPolicy>().get_opt(child).await.ok()?.is_none()
            && ns.api::<Deployment>().get_opt("agents-binding-proxy").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    ns.delete().await;
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn only_one_replica_holds_the_leader_lease() {
    use mcp_guard_operator::leader::{Attempt, LeaderElector};
    let client = client().await;
    let ns = TestNs::new(&client, "lease").await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = ns.api();
    let a = LeaderElector::new(leases.clone(), "mcp-guard-operator", "replica-a");
    let b = LeaderElector::new(leases.clone(), "mcp-guard-operator", "replica-b");
    assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leading);
    assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Following("replica-a".into()));
    assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leading, "the holder renews");
    // An expired lease is taken over.
    let mut lease = leases.get("mcp-guard-operator").await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::from_second(1_000_000_000).unwrap(),
    ));
    leases.replace("mcp-guard-operator", &PostParams::default(), &lease).await.unwrap();
    assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Leading);
    assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Following("replica-b".into()));
    let lease = leases.get("mcp-guard-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease.lease_transitions, Some(1));
    ns.delete().await;
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn a_remote_server_is_ready_and_a_deployed_one_becomes_available() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNs::new(&client, "srv").await;
    start_operator(&client);
    let _: McpServer = ns
        .create(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": "remote"},
            "spec": {"url": "https://mcp.example.com/mcp", "egress": [{"cidr": "203.0.113.0/24", "ports": [{"port": 443}]}]}
        }))
        .await;
    let _: McpServer = ns
        .create(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": "local"},
            "spec": {"deploy": {"image": "mcp-guard.local/busybox:1.35", "args": ["httpd", "-f", "-p", "8080"]}}
        }))
        .await;
    let servers = ns.api::<McpServer>();
    wait_for("remote Ready", || async {
        let s = servers.get("remote").await.ok()?.status?;
        (condition(&s.conditions, "Ready")? == ("True".into(), "RemoteServer".into())).then_some(())
    })
    .await;
    wait_for("local Available", || async {
        let s = servers.get("local").await.ok()?.status?;
        (condition(&s.conditions, "Ready")?.0 == "True" && s.url.is_some()).then_some(())
    })
    .await;
    ns.delete().await;
}

/// A pod running `script` in busybox, with `labels`.
fn busybox_pod(name: &str, labels: serde_json::Value, script: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": "mcp-guard.local/busybox:1.35",
                            "command": ["/bin/busybox", "sh", "-c", script]}]
        }
    })
}

/// The last line a pod logged.
async fn last_line(ns: &TestNs, pod: &str) -> Option<String> {
    let logs = ns.api::<Pod>().logs(pod, &Default::default()).await.ok()?;
    logs.lines().last().map(str::to_string)
}

/// The NetworkPolicies, enforced by the cluster's CNI: a pod labelled as the policy's executor reaches the
/// bound server and nothing else; a pod that is not one reaches the unbound server but not the bound one
/// (so the blocking is the policies' doing, not a broken network).
#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn network_policies_admit_the_bound_server_only() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNs::new(&client, "net").await;
    start_operator(&client);
    let httpd = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"];
    let _: McpServer = ns
        .create(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": "time"},
            "spec": {"deploy": {"image": "mcp-guard.local/busybox:1.35", "args": &httpd[1..]}}
        }))
        .await;
    let _: McpGuardPolicy = ns
        .create(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": "agents"},
            "spec": {"servers": [{"name": "time"}], "callers": {"auth": "none"}}
        }))
        .await;
    // An in-cluster HTTP server that no policy binds.
    let _: Pod = ns
        .create(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unbound", "labels": {"app": "unbound"}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "mcp-guard.local/busybox:1.35", "command": httpd}]}
        }))
        .await;
    let _: Service = ns
        .create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "unbound"},
                       "spec": {"selector": {"app": "unbound"}, "ports": [{"port": 8080}]}}))
        .await;
    let bound_url = wait_for("the bound server's URL", || async {
        let s = ns.api::<McpServer>().get("time").await.ok()?.status?;
        (condition(&s.conditions, "Ready")?.0 == "True").then_some(s.url?)
    })
    .await;
    let bound = bound_url.trim_end_matches("/mcp").to_string();
    let unbound_ip = ns.api::<Service>().get("unbound").await.unwrap().spec.unwrap().cluster_ip.unwrap();
    wait_for("the binding-proxy NetworkPolicy", || async {
        ns.api::<NetworkPolicy>().get("agents-binding-proxy").await.ok()
    })
    .await;
    // The bound server's gate answers (401: these pods have no token for it), which means reached.
    let script = format!(
        "while true; do b=blocked; u=blocked; \
         timeout 3 wget -S -O /dev/null {bound}/hostname 2>&1 | grep -q 'HTTP/1.1 401' && b=ok; \
         timeout 3 wget -q -O /dev/null http://{unbound_ip}:8080/hostname && u=ok; \
         echo \"bound=$b unbound=$u\"; sleep 1; done"
    );
    // A pod with the binding proxy's labels gets its NetworkPolicy (the bound server only); one with the
    // executor's gets the executor's (nothing but its binding proxy); an unlabelled one is the control.
    let proxy_labels = json!({
        "app.kubernetes.io/name": "mcp-guard-binding-proxy", "mcpguard.io/policy": "agents", "bind.mcpguard.io/time": "true"
    });
    let executor_labels =
        json!({"app.kubernetes.io/name": "mcp-guard-executor", "mcpguard.io/policy": "agents"});
    let _: Pod = ns.create(busybox_pod("proxy-like", proxy_labels, &script)).await;
    let _: Pod = ns.create(busybox_pod("executor-like", executor_labels, &script)).await;
    let _: Pod = ns.create(busybox_pod("outsider", json!({"app": "outsider"}), &script)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (p, e, o) = (
            last_line(&ns, "proxy-like").await,
            last_line(&ns, "executor-like").await,
            last_line(&ns, "outsider").await,
        );
        if p.as_deref() == Some("bound=ok unbound=blocked")
            && e.as_deref() == Some("bound=blocked unbound=blocked")
            && o.as_deref() == Some("bound=blocked unbound=ok")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "proxy-like: {p:?}, executor-like: {e:?}, outsider: {o:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    ns.delete().await;
}

/// TokenReview: the binding proxy's ServiceAccount is bound to the `tokenreviews: create` role by a
/// binding named from the policy's UID; deleting the policy removes it through the finalizer. Two
/// policies whose `<namespace>-<name>` read the same (`ns/a-x` and `ns-a/x`) get bindings of their own,
/// and deleting one leaves the other's.
#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn token_review_bindings_live_and_die_with_their_own_policy_only() {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let client = client().await;
    install_crds(&client).await;
    let base = format!("mcpg-crb-{}", std::process::id());
    let first = TestNs::named(&client, "crb", &base).await;
    let second = TestNs::named(&client, "crb", &format!("{base}-a")).await;
    start_operator(&client);
    let policy = |name: &str| json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": name}, "spec": {}});
    let p1: McpGuardPolicy = first.create(policy("a-x")).await;
    let p2: McpGuardPolicy = second.create(policy("x")).await;
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    let name_of = |p: &McpGuardPolicy| format!("mcp-guard-tokenreview-{}", p.metadata.uid.clone().unwrap());
    for (p, ns, executor) in [(&p1, &first.name, "a-x-binding-proxy"), (&p2, &second.name, "x-binding-proxy")]
    {
        let crb = wait_for("the ClusterRoleBinding", || async { crbs.get(&name_of(p)).await.ok() }).await;
        assert_eq!(crb.role_ref.name, TOKEN_REVIEW_ROLE, "tokenreviews: create only");
        let subjects = crb.subjects.unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!((subjects[0].name.as_str(), subjects[0].namespace.as_ref()), (executor, Some(ns)));
    }
    // The name both would have had under `<namespace>-<policy>` is nobody's.
    assert!(crbs.get_opt(&format!("mcp-guard-tokenreview-{base}-a-x")).await.unwrap().is_none());
    first.api::<McpGuardPolicy>().delete("a-x", &DeleteParams::default()).await.unwrap();
    wait_for("the first binding and policy gone", || async {
        let gone = crbs.get_opt(&name_of(&p1)).await.ok()?.is_none()
            && first.api::<McpGuardPolicy>().get_opt("a-x").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    let other = crbs.get(&name_of(&p2)).await.expect("the other tenant's binding stays");
    assert_eq!(other.subjects.unwrap()[0].namespace.as_ref(), Some(&second.name));
    first.delete().await;
    second.delete().await;
}

/// A ServiceAccount of the executor's name that the operator did not make (a tenant's, with the
/// managed-by label copied onto it) is neither adopted nor deleted: the policy says why it is not Ready.
#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn an_existing_service_account_is_not_adopted() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNs::new(&client, "adopt").await;
    start_operator(&client);
    let _: ServiceAccount = ns
        .create(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "agents-mcp-guard", "labels": {"app.kubernetes.io/managed-by": "mcp-guard-operator", "team": "mine"}}}))
        .await;
    let _: McpGuardPolicy = ns
        .create(json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
                       "metadata": {"name": "agents"}, "spec": {}}))
        .await;
    let (status, reason) = wait_for("Ready=False/ChildNotOwned", || async {
        policy_condition(&ns, "agents", "Ready").await.filter(|c| c.1 == "ChildNotOwned")
    })
    .await;
    assert_eq!(status, "False");
    let p = ns.api::<McpGuardPolicy>().get("agents").await.unwrap();
    let message = p.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap().message;
    assert!(message.contains("ServiceAccount `agents-mcp-guard` already exists"), "{reason}: {message}");
    let sa = ns.api::<ServiceAccount>().get("agents-mcp-guard").await.unwrap();
    assert!(sa.metadata.owner_references.is_none(), "not adopted: {:?}", sa.metadata.owner_references);
    assert_eq!(sa.metadata.labels.unwrap().get("team").map(String::as_str), Some("mine"));
    assert!(
        ns.api::<Deployment>().get_opt("agents-mcp-guard").await.unwrap().is_none(),
        "nothing runs as it"
    );
    // Deleting the policy leaves the tenant's ServiceAccount.
    ns.api::<McpGuardPolicy>().delete("agents", &DeleteParams::default()).await.unwrap();
    wait_for("the policy gone", || async {
        ns.api::<McpGuardPolicy>().get_opt("agents").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(ns.api::<ServiceAccount>().get_opt("agents-mcp-guard").await.unwrap().is_some());
    ns.delete().await;
}

/// The API server's process in the test cluster (e2e/cluster/up.sh keeps its pid).
fn api_server_pid() -> i32 {
    let dir = std::env::var("MCP_GUARD_CLUSTER_DIR").unwrap_or_else(|_| "/tmp/mcp-guard-cluster".into());
    let path = format!("{dir}/run/kube-apiserver.pid");
    let pid = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (this test stops the API server of e2e/cluster)"));
    pid.trim().parse().unwrap()
}

/// Stops (SIGSTOP) or resumes (SIGCONT) a process: a stopped API server accepts connections and never
/// answers, as one behind a partition does.
fn signal(pid: i32, signal: &str) {
    let status =
        std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Children of a policy, by kind: exactly one each, whatever happened to the operator.
async fn children_of(ns: &TestNs, policy: &str) -> Vec<usize> {
    let lp = kube::api::ListParams::default().labels(&format!("mcpguard.io/policy={policy}"));
    vec![
        ns.api::<Deployment>().list(&lp).await.map(|l| l.items.len()).unwrap_or(99),
        ns.api::<ConfigMap>().list(&lp).await.map(|l| l.items.len()).unwrap_or(99),
        ns.api::<Service>().list(&lp).await.map(|l| l.items.len()).unwrap_or(99),
        ns.api::<NetworkPolicy>().list(&lp).await.map(|l| l.items.len()).unwrap_or(99),
    ]
}

/// Faults on the control plane: the operator killed in the middle of reconciling a new policy and a
/// changed one, then the API server unreachable for 30 s while a new operator starts and a policy
/// changes again. When the API server is back, everything converges: each policy has exactly one of
/// each child, the last spec is what the executor's config says, and the status reports the last
/// generation.
#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn the_operator_converges_after_being_killed_and_an_api_server_outage() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNs::new(&client, "outage").await;
    let operator = start_operator(&client);
    let _: McpServer = ns
        .create(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": "remote"},
            "spec": {"url": "https://mcp.example.com/mcp", "egress": [{"cidr": "203.0.113.0/24", "ports": [{"port": 443}]}]}
        }))
        .await;
    let policy = |name: &str, tool_calls: u32| {
        json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": name},
               "spec": {"servers": [{"name": "remote"}], "callers": {"auth": "none"},
                        "executor": {"replicas": 0}, "limits": {"toolCalls": tool_calls}}})
    };
    let policies = ns.api::<McpGuardPolicy>();
    let _: McpGuardPolicy = ns.create(policy("first", 5)).await;
    wait_for("first reconciled", || async {
        let p = policies.get("first").await.ok()?;
        (p.status?.observed_generation == p.metadata.generation).then_some(())
    })
    .await;

    // Killed mid-reconcile: a new policy and a change, and the operator gone a moment later.
    let _: McpGuardPolicy = ns.create(policy("second", 6)).await;
    let patch = |n: u32| json!({"spec": {"limits": {"toolCalls": n}}});
    policies.patch("first", &PatchParams::default(), &Patch::Merge(patch(7))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    operator.abort();
    let _ = operator.await;

    // The API server stops answering; a new operator starts into the outage; 30 s later it is back.
    let pid = api_server_pid();
    signal(pid, "STOP");
    let operator = start_operator(&client);
    tokio::time::sleep(Duration::from_secs(30)).await;
    signal(pid, "CONT");
    // One more change once it is back.
    wait_for("the API server answers again", || async { policies.get("first").await.ok() }).await;
    policies.patch("second", &PatchParams::default(), &Patch::Merge(patch(8))).await.unwrap();

    for (name, calls) in [("first", 7), ("second", 8)] {
        wait_for(&format!("{name} converged on toolCalls {calls}"), || async {
            let p = policies.get(name).await.ok()?;
            let status = p.status.as_ref()?;
            let ready = condition(&status.conditions, "Ready")?;
            let config = ns.api::<ConfigMap>().get(&format!("{name}-mcp-guard")).await.ok()?;
            let yaml = config.data?.get("config.yaml")?.clone();
            (status.observed_generation == p.metadata.generation
                && ready.0 == "True"
                && yaml.contains(&format!("toolCalls: {calls}")))
            .then_some(())
        })
        .await;
        assert_eq!(
            children_of(&ns, name).await,
            [2, 1, 2, 2],
            "{name}: two Deployments (executor, binding proxy), one ConfigMap, two Services and NetworkPolicies"
        );
    }
    ns.delete().await;
    operator.abort();
}

// ---------------------------------------------------------------------------------------------------
// Approvals: the chart's admission policy and the operator's approval controller.
// ---------------------------------------------------------------------------------------------------

/// The release name the approval tests render the chart with: its objects (`mcp-guard-tests-*`) never
/// collide with the e2e suite's install of the chart (`mcp-guard-*`).
const TEST_RELEASE: &str = "mcp-guard-tests";
/// The operator identity in the tests' rendering of the chart: the one of the e2e suite's install
/// (release namespace `mcp-guard-system`, ServiceAccount `mcp-guard`), so that the tests hold whether
/// or not that install's own admission policy is on the cluster too.
const TEST_OPERATOR: &str = "system:serviceaccount:mcp-guard-system:mcp-guard";
/// The label value of the approval tests' namespaces; the tests' admission binding applies to them only.
const APPROVALS_TEST: &str = "approvals";

/// `helm`: `$HELM`, `PATH`, or the test cluster's cache (`$MCP_GUARD_CACHE`, default
/// `~/.cache/mcp-guard`: `cluster/helm-*/bin`).
fn helm() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Ok(h) = std::env::var("HELM") {
        return PathBuf::from(h);
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("helm")).find(|p| p.is_file()));
    on_path
        .or_else(|| {
            let cache = std::env::var_os("MCP_GUARD_CACHE")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mcp-guard")))?;
            let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("cluster"))
                .ok()?
                .flatten()
                .map(|e| e.path().join("bin/helm"))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            found.pop()
        })
        .expect("helm: set $HELM, put it on PATH, or build it with e2e/cluster/build.sh helm")
}

/// The chart's approval admission policy (`templates/approvals.yaml`, rendered by `helm template`), its
/// binding narrowed to the approval tests' namespaces so that it never stands in the way of anything
/// else on the cluster. The API server's admission picks a policy up a moment after it is stored, so a
/// previous run's policy is deleted first and seen to be gone, and the new one is then seen to be
/// enforced: each probe is an approval created by the cluster admin (not a binding proxy). Where the
/// e2e suite's install of the chart is on the cluster too, its own policy (the same rules, the same
/// operator identity) may be the one that answers: the API server names only the first policy that
/// refuses.
async fn install_approval_admission(client: &Client, probe_ns: &TestNs) {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/mcp-guard");
    let out = std::process::Command::new(helm())
        .args(["template", TEST_RELEASE, chart, "--namespace", "mcp-guard-system"])
        .args([
            "--set",
            &format!("fullnameOverride={TEST_RELEASE}"),
            "--set",
            "serviceAccount.name=mcp-guard",
        ])
        .args(["--show-only", "templates/approvals.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let name = format!("{TEST_RELEASE}-approval-decisions");
    // Which approval admission policy refused the probe: `Some("")` when none did.
    let refused_by = || async {
        let approvals = probe_ns.api::<McpApproval>();
        let probe: McpApproval = serde_json::from_value(approval_json("probe", "agents", false)).unwrap();
        match approvals.create(&PostParams::default(), &probe).await {
            Err(kube::Error::Api(s)) if s.message.contains("only the binding proxy") => {
                Some(s.message.split('\'').nth(1).unwrap_or_default().to_string())
            }
            Ok(_) => {
                approvals.delete("probe", &DeleteParams::default()).await.ok()?;
                Some(String::new())
            }
            Err(_) => None,
        }
    };
    let _ = bindings.delete(&name, &DeleteParams::default()).await;
    let _ = policies.delete(&name, &DeleteParams::default()).await;
    wait_for("a previous approval admission policy gone", || async {
        (refused_by().await? != name).then_some(())
    })
    .await;
    let pp = PatchParams::apply("mcp-guard-tests").force();
    for mut doc in docs.into_iter().filter(|d| d.is_object()) {
        match doc["kind"].as_str() {
            Some("ValidatingAdmissionPolicy") => {
                let policy: ValidatingAdmissionPolicy = serde_json::from_value(doc).unwrap();
                policies.patch(&name, &pp, &Patch::Apply(&policy)).await.unwrap();
            }
            Some("ValidatingAdmissionPolicyBinding") => {
                doc["spec"]["matchResources"] =
                    json!({"namespaceSelector": {"matchLabels": {"mcpguard.io/test": APPROVALS_TEST}}});
                let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(doc).unwrap();
                bindings.patch(&name, &pp, &Patch::Apply(&binding)).await.unwrap();
            }
            other => panic!("unexpected {other:?} in templates/approvals.yaml"),
        }
    }
    wait_for("the approval admission policy enforced", || async {
        refused_by().await?.ends_with("-approval-decisions").then_some(())
    })
    .await;
    // The API server type-checks every expression against the McpApproval schema (the
    // kube-controller-manager writes the result into the policy's status): none may be off.
    let status = wait_for("the approval admission policy type-checked", || async {
        let p = policies.get(&name).await.ok()?;
        let status = p.status?;
        (status.observed_generation == p.metadata.generation).then_some(status)
    })
    .await;
    let warnings = status.type_checking.and_then(|t| t.expression_warnings).unwrap_or_default();
    assert!(warnings.is_empty(), "type-checking warnings: {warnings:?}");
}

/// An approval as the binding proxy of `policy` would create it, expiring in an hour.
fn approval_json(name: &str, policy: &str, allow_self: bool) -> serde_json::Value {
    approval_expiring(name, policy, allow_self, 3600)
}

fn approval_expiring(name: &str, policy: &str, allow_self: bool, in_secs: i64) -> serde_json::Value {
    let expires =
        k8s_openapi::jiff::Timestamp::from_second(k8s_openapi::jiff::Timestamp::now().as_second() + in_secs)
            .unwrap()
            .to_string();
    json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpApproval", "metadata": {"name": name},
        "spec": {
            "policy": policy, "executionId": format!("exec-{name}"),
            "requester": "system:serviceaccount:agents:bot",
            "summary": "github.delete_repo", "expiresAt": expires, "allowSelfApproval": allow_self,
            "calls": [{"sequence": 1, "server": "github", "tool": "delete_repo",
                       "arguments": {"repo": "team/app", "options": {"force": true}},
                       "argumentsSha256": "ab".repeat(32)}],
            "approvers": {"users": ["alice"], "groups": ["mcpg-approvers"],
                          "serviceAccounts": ["agents/reviewer", "agents/bot"]}
        }
    })
}

/// A client of the cluster in `KUBECONFIG` acting as `user` (with `groups`): the cluster admin
/// impersonating them.
async fn acting_as(user: &str, groups: &[&str]) -> Client {
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups =
        (!groups.is_empty()).then(|| groups.iter().map(|g| g.to_string()).collect());
    Client::try_from(config).unwrap()
}

/// RBAC in `ns` for the identities the approval tests act as, so that what refuses them is admission and
/// not RBAC: `rules` for each of `users` and service accounts (`namespace/name`).
async fn grant(ns: &TestNs, name: &str, rules: serde_json::Value, users: &[&str], service_accounts: &[&str]) {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let role: Role = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules
    }))
    .unwrap();
    ns.api::<Role>().create(&PostParams::default(), &role).await.unwrap();
    let mut subjects: Vec<serde_json::Value> = users
        .iter()
        .map(|u| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u}))
        .collect();
    for sa in service_accounts {
        let (sa_ns, sa_name) = sa.split_once('/').unwrap();
        subjects.push(json!({"kind": "ServiceAccount", "namespace": sa_ns, "name": sa_name}));
    }
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": subjects
    }))
    .unwrap();
    ns.api::<RoleBinding>().create(&PostParams::default(), &binding).await.unwrap();
}

fn decision(verdict: &str, by: &str) -> Patch<serde_json::Value> {
    Patch::Merge(json!({"spec": {"decision": {"verdict": verdict, "by": by, "reason": "checked the repo"}}}))
}

/// What the API server says to a write that must be refused.
fn refused<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Ok(v) => panic!("admitted, but should have been refused: {v:?}"),
        Err(e) => api_error(e),
    }
}

/// Who may create, decide and update approvals, as the API server enforces it (the chart's admission
/// policy and the CRD's rules), each refusal with its reason: only the policy's binding proxy creates
/// them, undecided; only an approver decides (a user of the list, a member of a group of it, one of its
/// service accounts), in their own name, not on their own request unless the policy allows it, not once
/// expired, and only once; only the binding proxy and the operator write status; the request is
/// immutable.
#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn approval_decisions_are_admitted_from_approvers_only() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNs::new(&client, APPROVALS_TEST).await;
    install_approval_admission(&client, &ns).await;
    let n = ns.name.clone();
    let sa = |name: &str| format!("system:serviceaccount:{n}:{name}");
    let proxy_user = sa("agents-binding-proxy");
    let requester = "system:serviceaccount:agents:bot";
    grant(
        &ns,
        "approvals-everyone",
        json!([{"apiGroups": ["mcpguard.io"], "resources": ["mcpapprovals", "mcpapprovals/status"],
                "verbs": ["create", "get", "list", "watch", "update", "patch"]}]),
        &["alice", "carol", "mallory"],
        &[
            &format!("{n}/agents-binding-proxy"),
            &format!("{n}/other-binding-proxy"),
            "agents/reviewer",
            "agents/bot",
            "mcp-guard-system/mcp-guard",
        ],
    )
    .await;
    let api_as = |c: Client| Api::<McpApproval>::namespaced(c, &n);
    let proxy = api_as(acting_as(&proxy_user, &[]).await);
    let other_proxy = api_as(acting_as(&sa("other-binding-proxy"), &[]).await);
    let operator = api_as(acting_as(TEST_OPERATOR, &[]).await);
    let alice = api_as(acting_as("alice", &[]).await);
    let carol = api_as(acting_as("carol", &["mcpg-approvers"]).await);
    let mallory = api_as(acting_as("mallory", &["developers"]).await);
    let reviewer = api_as(acting_as("system:serviceaccount:agents:reviewer", &[]).await);
    let bot = api_as(acting_as(requester, &[]).await);
    let pp = PatchParams::default();
    let new = |name: &str, allow_self: bool| -> McpApproval {
        serde_json::from_value(approval_json(name, "agents", allow_self)).unwrap()
    };

    // Creation: the binding proxy of the policy the approval names, and nobody else.
    let msg = refused(mallory.create(&PostParams::default(), &new("a0", false)).await);
    assert!(
        msg.contains(&format!("only the binding proxy of McpGuardPolicy agents ({proxy_user})")),
        "{msg}"
    );
    assert!(msg.contains("not mallory"), "{msg}");
    let msg = refused(other_proxy.create(&PostParams::default(), &new("a0", false)).await);
    assert!(msg.contains("only the binding proxy of McpGuardPolicy agents"), "{msg}");
    let mut decided = new("a0", false);
    decided.spec.decision =
        Some(serde_json::from_value(json!({"verdict": "Approved", "by": "alice"})).unwrap());
    let msg = refused(proxy.create(&PostParams::default(), &decided).await);
    assert!(msg.contains("an approval is created undecided"), "{msg}");
    for name in ["a1", "a2", "a3", "a4", "a5"] {
        proxy.create(&PostParams::default(), &new(name, name == "a5")).await.unwrap();
    }

    // Status: the binding proxy and the operator, nobody else (not even an approver).
    let pending = Patch::Merge(json!({"status": {"phase": "Pending", "message": "waiting"}}));
    for who in [&mallory, &alice] {
        let msg = refused(who.patch_status("a1", &pp, &pending).await);
        assert!(msg.contains("may write its status"), "{msg}");
    }
    proxy.patch_status("a1", &pp, &pending).await.unwrap();
    operator.patch_status("a1", &pp, &pending).await.unwrap();

    // Decisions refused: not an approver; the requester itself (an approver by its service account,
    // but the policy does not allow self-approval); an approver in someone else's name.
    let msg = refused(mallory.patch("a1", &pp, &decision("Approved", "mallory")).await);
    assert!(msg.contains("mallory is not an approver of McpGuardPolicy agents"), "{msg}");
    assert!(msg.contains("users [alice], groups [mcpg-approvers]"), "{msg}");
    let msg = refused(bot.patch("a1", &pp, &decision("Approved", requester)).await);
    assert!(msg.contains(&format!("{requester} made this request and may not decide it")), "{msg}");
    let msg = refused(alice.patch("a1", &pp, &decision("Approved", "carol")).await);
    assert!(msg.contains("spec.decision.by must be your own user name, alice, not carol"), "{msg}");
    // Nobody may edit the request.
    let msg = refused(alice.patch("a1", &pp, &Patch::Merge(json!({"spec": {"summary": "harmless"}}))).await);
    assert!(msg.contains("immutable"), "{msg}");
    let msg = refused(
        alice
            .patch("a1", &pp, &Patch::Merge(json!({"spec": {"approvers": {"users": ["alice", "mallory"]}}})))
            .await,
    );
    assert!(msg.contains("immutable"), "{msg}");
    assert!(ns.api::<McpApproval>().get("a1").await.unwrap().spec.decision.is_none());

    // Decisions admitted: a member of an approver group, an approver service account, an approver user;
    // the requester where the policy allows self-approval.
    let a1 = carol.patch("a1", &pp, &decision("Approved", "carol")).await.unwrap();
    assert_eq!(a1.spec.decision.unwrap().by, "carol");
    reviewer.patch("a2", &pp, &decision("Denied", "system:serviceaccount:agents:reviewer")).await.unwrap();
    alice.patch("a3", &pp, &decision("Approved", "alice")).await.unwrap();
    bot.patch("a5", &pp, &decision("Approved", requester)).await.unwrap();

    // A decision is final: neither a second one nor withdrawing it.
    let msg = refused(alice.patch("a1", &pp, &decision("Denied", "alice")).await);
    assert!(msg.contains("already decided"), "{msg}");
    let msg = refused(carol.patch("a1", &pp, &Patch::Merge(json!({"spec": {"decision": null}}))).await);
    assert!(msg.contains("already decided"), "{msg}");

    // Expired (as the operator marks it): too late to decide.
    operator.patch_status("a4", &pp, &Patch::Merge(json!({"status": {"phase": "Expired"}}))).await.unwrap();
    let msg = refused(alice.patch("a4", &pp, &decision("Approved", "alice")).await);
    assert!(msg.contains("expired at") && msg.contains("can no longer be decided"), "{msg}");
    ns.delete().await;
}

/// The operator's approval controller, acting as the operator's own identity (so through the admission
/// policy, like the real one): a decision becomes the status (who, when), an undecided request expires
/// and loses its journal, and approvals past the policy's retention are deleted.
#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn approvals_are_decided_expired_and_collected_by_the_operator() {
    let client = client().await;
    install_crds(&client).await;
    let ns =
        TestNs::named(&client, APPROVALS_TEST, &format!("mcpg-approvals-gc-{}", std::process::id())).await;
    install_approval_admission(&client, &ns).await;
    let n = ns.name.clone();
    let proxy_user = format!("system:serviceaccount:{n}:agents-binding-proxy");
    // What the chart's ClusterRoles give the binding proxy and the operator, here.
    grant(
        &ns,
        "approvals-proxy",
        json!([{"apiGroups": ["mcpguard.io"], "resources": ["mcpapprovals"], "verbs": ["create", "get", "list", "watch"]},
               {"apiGroups": ["mcpguard.io"], "resources": ["mcpapprovals/status"], "verbs": ["get", "update", "patch"]},
               {"apiGroups": ["mcpguard.io"], "resources": ["mcpapprovaljournals"], "verbs": ["create", "get"]}]),
        &[],
        &[&format!("{n}/agents-binding-proxy")],
    )
    .await;
    grant(
        &ns,
        "approvals-operator",
        json!([{"apiGroups": ["mcpguard.io"], "resources": ["mcpapprovals"], "verbs": ["get", "list", "watch", "delete"]},
               {"apiGroups": ["mcpguard.io"], "resources": ["mcpapprovals/status"], "verbs": ["get", "update"]},
               {"apiGroups": ["mcpguard.io"], "resources": ["mcpapprovaljournals"], "verbs": ["list", "delete"]},
               {"apiGroups": ["mcpguard.io"], "resources": ["mcpguardpolicies"], "verbs": ["get", "list", "watch"]},
               {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}]),
        &["alice"],
        &["mcp-guard-system/mcp-guard"],
    )
    .await;
    grant(
        &ns,
        "approvals-alice",
        json!([{"apiGroups": ["mcpguard.io"], "resources": ["mcpapprovals"], "verbs": ["get", "patch"]}]),
        &["alice"],
        &[],
    )
    .await;
    // The policy sets the retention: 2 s (at least its ttl, which the binding proxy alone uses).
    let _: McpGuardPolicy = ns
        .create(json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": "agents"},
                       "spec": {"approvals": {"approvers": {"users": ["alice"]}, "ttl": "1s", "retention": "2s",
                                              "journalKey": {"secretName": "agents-journal-key"}}}}))
        .await;
    let operator = acting_as(TEST_OPERATOR, &[]).await;
    let ctx = Arc::new(Context::new(operator.clone(), Settings::default(), Metrics::new().unwrap()));
    let controller =
        tokio::spawn(mcp_guard_operator::controllers::run_approvals(operator, ctx, Some(n.clone())));

    let proxy_client = acting_as(&proxy_user, &[]).await;
    let proxy = Api::<McpApproval>::namespaced(proxy_client.clone(), &n);
    let journals = Api::<McpApprovalJournal>::namespaced(proxy_client, &n);
    let create = |name: &str, in_secs: i64| {
        let proxy = proxy.clone();
        let a: McpApproval =
            serde_json::from_value(approval_expiring(name, "agents", false, in_secs)).unwrap();
        async move { proxy.create(&PostParams::default(), &a).await.unwrap() }
    };
    let journal_of = |a: &McpApproval| -> McpApprovalJournal {
        serde_json::from_value(json!({
            "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpApprovalJournal",
            "metadata": {"name": a.metadata.name, "ownerReferences": [{
                "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpApproval",
                "name": a.metadata.name, "uid": a.metadata.uid}]},
            "spec": {"approval": a.metadata.name, "sealed": "c2VhbGVk"}
        }))
        .unwrap()
    };
    let approvals = ns.api::<McpApproval>();
    let phase_of = |name: &'static str| {
        let approvals = approvals.clone();
        async move { approvals.get(name).await.ok()?.status?.phase }
    };

    // Pending at once; Approved once alice decides, with who and when.
    let decided = create("decided", 30).await;
    journals.create(&PostParams::default(), &journal_of(&decided)).await.unwrap();
    wait_for("decided: Pending", || async {
        (phase_of("decided").await? == ApprovalPhase::Pending).then_some(())
    })
    .await;
    let alice = Api::<McpApproval>::namespaced(acting_as("alice", &[]).await, &n);
    alice.patch("decided", &PatchParams::default(), &decision("Approved", "alice")).await.unwrap();
    let status = wait_for("decided: Approved", || async {
        let s = approvals.get("decided").await.ok()?.status?;
        (s.phase? == ApprovalPhase::Approved).then_some(s)
    })
    .await;
    assert_eq!(status.decided_by.as_deref(), Some("alice"));
    assert!(status.decided_at.is_some());
    assert!(journals.get_opt("decided").await.unwrap().is_some(), "an approved execution keeps its journal");

    // Undecided past its expiry: Expired, and its journal is deleted.
    let late = create("late", 3).await;
    journals.create(&PostParams::default(), &journal_of(&late)).await.unwrap();
    let status = wait_for("late: Expired", || async {
        let s = approvals.get("late").await.ok()?.status?;
        (s.phase? == ApprovalPhase::Expired).then_some(s)
    })
    .await;
    assert!(status.message.unwrap().contains("without a decision"));
    wait_for("late: journal deleted", || async {
        journals.get_opt("late").await.ok()?.is_none().then_some(())
    })
    .await;

    // Retention (2 s after the last of decision, use and expiry): both approvals are deleted.
    for name in ["decided", "late"] {
        wait_for(&format!("{name}: deleted"), || async {
            approvals.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    controller.abort();
    ns.delete().await;
}

/// A policy with `approvals` gets a RoleBinding of its binding proxy to the approvals ClusterRole, and
/// the rendered config the Kubernetes store and the journal key's path; without `approvals` the
/// RoleBinding goes.
#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG (e2e/cluster/up.sh)"]
async fn a_policy_with_approvals_binds_its_proxy_to_the_approvals_role() {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNs::new(&client, "approvals-rbac").await;
    start_operator(&client);
    let _: McpGuardPolicy = ns
        .create(json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": "agents"},
                       "spec": {"callers": {"auth": "none"}, "executor": {"replicas": 0},
                                "approvals": {"approvers": {"users": ["alice"], "serviceAccounts": ["reviewer"]},
                                              "journalKey": {"secretName": "agents-journal-key"}}}}))
        .await;
    let rb = wait_for("the approvals RoleBinding", || async {
        ns.api::<RoleBinding>().get("agents-binding-proxy-approvals").await.ok()
    })
    .await;
    assert_eq!(
        (rb.role_ref.kind.as_str(), rb.role_ref.name.as_str()),
        ("ClusterRole", "mcp-guard-approvals-proxy")
    );
    let subjects = rb.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
        ("agents-binding-proxy", Some(ns.name.as_str()))
    );
    let cm = wait_for("the ConfigMap", || async { ns.api::<ConfigMap>().get("agents-mcp-guard").await.ok() })
        .await;
    let config =
        mcp_guard_crds::GuardConfig::from_yaml(&cm.data.unwrap()["config.yaml"], "configmap").unwrap();
    let approvals = config.approvals.unwrap();
    assert_eq!(approvals.store.kubernetes.unwrap().namespace, ns.name);
    assert_eq!(approvals.approvers.service_accounts, [format!("{}/reviewer", ns.name)]);
    assert_eq!(approvals.journal_key_file.as_deref(), Some("/var/run/secrets/mcpguard.io/approvals/key"));

    ns.api::<McpGuardPolicy>()
        .patch("agents", &PatchParams::default(), &Patch::Merge(json!({"spec": {"approvals": null}})))
        .await
        .unwrap();
    wait_for("the approvals RoleBinding gone", || async {
        ns.api::<RoleBinding>().get_opt("agents-binding-proxy-approvals").await.ok()?.is_none().then_some(())
    })
    .await;
    ns.delete().await;
}
