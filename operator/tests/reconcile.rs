//! Reconcile tests against a mocked API server: each scenario lists, request by request, what the
//! reconciler must send and what the "API server" answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use mcp_guard_crds::v1alpha1::{McpGuardPolicy, McpServer};
use mcp_guard_operator::build::{OperatorIdentity, Settings};
use mcp_guard_operator::context::{Context, Metrics};
use mcp_guard_operator::discovery::{Transport, pb};
use mcp_guard_operator::reconcile::{mcp_guard_policy as policy, mcp_server as server};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn context() -> (Arc<Context>, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let settings = Settings {
        executor_image: "mcp-guard.local/mcp-guard:test".into(),
        api_server: vec![],
        allowed_server_images: vec!["mcp-guard.local/".into()],
        allow_unauthenticated: true,
        ..Default::default()
    };
    (Arc::new(Context::new(client, settings, Metrics::new().unwrap())), handle)
}

/// The API server side of a scenario.
struct ApiServer(Handle);

impl ApiServer {
    /// Expect one request with this method and path; answer `status` with `body(request body)`.
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        status: u16,
        answer: impl FnOnce(Value) -> Value,
    ) -> Value {
        let (request, send) = tokio::time::timeout(Duration::from_secs(5), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
            .unwrap_or_else(|| panic!("no request; expected {method} {path}"));
        assert_eq!((request.method(), request.uri().path()), (&method, path), "unexpected request");
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        let reply = answer(body.clone());
        send.send_response(
            Response::builder().status(status).body(Body::from(serde_json::to_vec(&reply).unwrap())).unwrap(),
        );
        body
    }

    async fn not_found(&mut self, method: Method, path: &str) {
        self.expect(method, path, 404, |_| {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
        })
        .await;
    }

    /// A server-side apply: answer with what was sent, plus `extra` merged in.
    async fn apply(&mut self, path: &str, extra: Value) -> Value {
        self.expect(Method::PATCH, path, 200, |mut body| {
            merge(&mut body, extra);
            body
        })
        .await
    }

    /// A child applied where no object of its name exists yet: the operator looks (it never adopts an
    /// object it did not make), then applies.
    async fn create(&mut self, path: &str, extra: Value) -> Value {
        self.not_found(Method::GET, path).await;
        self.apply(path, extra).await
    }

    /// A status apply: answer with the object (a name is all the client needs back).
    async fn status(&mut self, path: &str) -> Value {
        let name = path.trim_end_matches("/status").rsplit('/').next().unwrap().to_string();
        self.apply(path, json!({"metadata": {"name": name, "namespace": "team-a"}, "spec": {}})).await
    }

    async fn event(&mut self, ns: &str) -> Value {
        self.expect(Method::POST, &format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"), 201, |b| b).await
    }

    async fn done(mut self) {
        let next = tokio::time::timeout(Duration::from_millis(100), self.0.next_request()).await;
        if let Ok(Some((r, _))) = next {
            panic!("unexpected extra request {} {}", r.method(), r.uri());
        }
    }
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap()
}

const POLICIES: &str = "/apis/mcpguard.io/v1alpha1/namespaces/team-a/mcpguardpolicies";
const SERVERS: &str = "/apis/mcpguard.io/v1alpha1/namespaces/team-a/mcpservers";
const CRBS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
const OPEN_UID: &str = "44444444-2222-3333-4444-555555555555";

#[tokio::test]
async fn a_missing_server_sets_ready_false_with_the_reason_and_an_event() {
    let (ctx, handle) = context();
    let policy: McpGuardPolicy = fixture("policy-open.yaml");
    let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
    let mut api = ApiServer(handle);
    api.not_found(Method::GET, &format!("{SERVERS}/time")).await;
    let status = api.status(&format!("{POLICIES}/open/status")).await;
    for t in ["ResolvedRefs", "Ready"] {
        let c = condition(&status, t);
        assert_eq!((c["status"].as_str(), c["reason"].as_str()), (Some("False"), Some("McpServerNotFound")));
        assert_eq!(c["message"], "McpServer not found in namespace team-a: time");
    }
    let event = api.event("team-a").await;
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("McpServerNotFound"))
    );
    api.done().await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(Duration::from_secs(300)));
}

/// The children of policy `open` (fixture `policy-open.yaml`) as its reconcile applies them, in order:
/// the binding proxy's Service first (the executor dials its cluster IP), then the ConfigMap, both
/// NetworkPolicies, the binding proxy's TokenReview binding (whatever the caller auth), its
/// ServiceAccount and Deployment, then the executor's; each Deployment answering with one ready
/// replica. One replica each: no PodDisruptionBudget (a stale one of its own would be removed), and no
/// autoscaler. Returns the ConfigMap, the executor's and the binding proxy's Deployments as applied.
async fn open_children_applied(api: &mut ApiServer) -> (Value, Value, Value) {
    open_children_applied_with(api, Approvals::None).await
}

const ROLE_BINDING: &str =
    "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/open-binding-proxy-approvals";

/// The binding proxy's RoleBinding for McpApprovals, as a reconcile of policy `open` finds it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Approvals {
    /// The policy has no approvals, and there is no binding.
    None,
    /// The policy has no approvals (any more), and its binding is still there: it is deleted.
    Dropped,
    /// The policy has approvals and no binding yet: it is made.
    New,
    /// The policy has approvals, and its binding names another role (the chart renamed it): the
    /// binding is deleted and made anew (a binding's role cannot change).
    OtherRole,
}

/// The RoleBinding the operator made for policy `open`, to `role`.
fn open_role_binding(role: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": "open-binding-proxy-approvals", "namespace": "team-a",
                        "labels": {"app.kubernetes.io/managed-by": "mcp-guard-operator"},
                        "ownerReferences": [{"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
                                             "name": "open", "uid": OPEN_UID, "controller": true}]},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": [{"kind": "ServiceAccount", "name": "open-binding-proxy", "namespace": "team-a"}]})
}

fn deleted() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})
}

/// [`open_children_applied`], with the approvals RoleBinding as `approvals` says.
async fn open_children_applied_with(api: &mut ApiServer, approvals: Approvals) -> (Value, Value, Value) {
    api.create(
        "/api/v1/namespaces/team-a/services/open-binding-proxy",
        json!({"spec": {"clusterIP": "10.96.0.77"}}),
    )
    .await;
    let cm = api.create("/api/v1/namespaces/team-a/configmaps/open-mcp-guard", json!({})).await;
    api.create("/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/open-mcp-guard", json!({}))
        .await;
    api.create("/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/open-binding-proxy", json!({}))
        .await;
    let crb = api.create(&format!("{CRBS}/mcp-guard-tokenreview-{OPEN_UID}"), json!({})).await;
    assert_eq!(crb["subjects"][0]["name"], "open-binding-proxy");
    api.not_found(Method::GET, &format!("{CRBS}/mcp-guard-tokenreview-team-a-open")).await;
    api.create("/api/v1/namespaces/team-a/serviceaccounts/open-binding-proxy", json!({})).await;
    match approvals {
        Approvals::None => api.not_found(Method::GET, ROLE_BINDING).await,
        Approvals::Dropped => {
            api.expect(Method::GET, ROLE_BINDING, 200, |_| open_role_binding("mcp-guard-approvals-proxy"))
                .await;
            api.expect(Method::DELETE, ROLE_BINDING, 200, |_| deleted()).await;
        }
        Approvals::New | Approvals::OtherRole => {
            if approvals == Approvals::New {
                api.not_found(Method::GET, ROLE_BINDING).await;
            } else {
                api.expect(Method::GET, ROLE_BINDING, 200, |_| open_role_binding("an-old-name")).await;
                api.expect(Method::DELETE, ROLE_BINDING, 200, |_| deleted()).await;
            }
            let rb = api.apply(ROLE_BINDING, json!({})).await;
            assert_eq!(rb["roleRef"]["name"], "mcp-guard-approvals-proxy");
            assert_eq!(
                rb["subjects"],
                json!([{"kind": "ServiceAccount", "name": "open-binding-proxy", "namespace": "team-a"}])
            );
            assert_eq!(rb["metadata"]["ownerReferences"][0]["uid"], OPEN_UID);
        }
    }
    let proxy = api
        .create(
            "/apis/apps/v1/namespaces/team-a/deployments/open-binding-proxy",
            json!({"status": {"readyReplicas": 1}}),
        )
        .await;
    api.not_found(Method::GET, "/apis/policy/v1/namespaces/team-a/poddisruptionbudgets/open-binding-proxy")
        .await;
    api.create("/api/v1/namespaces/team-a/serviceaccounts/open-mcp-guard", json!({})).await;
    api.create("/api/v1/namespaces/team-a/services/open-mcp-guard", json!({})).await;
    let dep = api
        .create(
            "/apis/apps/v1/namespaces/team-a/deployments/open-mcp-guard",
            json!({"status": {"readyReplicas": 1}}),
        )
        .await;
    // The executor dials its binding proxy at the Service's cluster IP (it has no DNS).
    let args = dep["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("http://10.96.0.77:9443"), "{args}");
    api.not_found(Method::GET, "/apis/policy/v1/namespaces/team-a/poddisruptionbudgets/open-mcp-guard").await;
    api.not_found(
        Method::GET,
        "/apis/autoscaling/v2/namespaces/team-a/horizontalpodautoscalers/open-mcp-guard",
    )
    .await;
    (cm, dep, proxy)
}

/// The operator has no access to Secrets: the executor starts (its Secret volumes are optional), its
/// binding proxy reports the file it finds nothing at, and the policy says which Secret key is missing.
#[tokio::test]
async fn a_secret_the_binding_proxy_cannot_read_is_named_and_the_policy_is_not_ready() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let settings = Settings {
        executor_image: "mcp-guard.local/mcp-guard:test".into(),
        allowed_server_images: vec!["mcp-guard.local/".into()],
        allow_unauthenticated: true,
        ..Default::default()
    };
    let executors = Arc::new(FakeExecutors::default());
    let response = pb::ListToolsResponse {
        tools: vec![],
        servers: vec![pb::Server {
            name: "time".into(),
            error: "server time: unavailable: a credential cannot be resolved".into(),
            missing_credentials: vec!["/var/run/secrets/mcp-guard/time-key/bearer".into()],
            ..Default::default()
        }],
    };
    executors.answers.lock().unwrap().push_back(Ok(response));
    let ctx = Arc::new(Context::with_transport(client, settings, Metrics::new().unwrap(), executors.clone()));
    let policy: McpGuardPolicy = fixture("policy-open.yaml");
    let time: McpServer = fixture("server-deployed.yaml");
    let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
    let mut api = ApiServer(handle);
    api.expect(Method::GET, &format!("{SERVERS}/time"), 200, |_| serde_json::to_value(&time).unwrap()).await;
    // No Secret is read: every child is applied, the Secret volume (in the binding proxy's pods, never
    // the executor's) optional.
    let (_, dep, proxy) = open_children_applied(&mut api).await;
    let executor_volumes = dep["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(executor_volumes.iter().all(|v| v.get("secret").is_none()), "{executor_volumes:?}");
    let volumes = proxy["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let secret = volumes.iter().find(|v| v.get("secret").is_some()).unwrap();
    assert_eq!(secret["secret"]["secretName"], "time-key");
    assert_eq!(secret["secret"]["optional"], true);
    // A running executor pod is asked directly (as discovery asks) what its binding proxy cannot read:
    // not Ready, it is behind no Service endpoint. A terminating one and one without an address are
    // passed over.
    api.expect(Method::GET, "/api/v1/namespaces/team-a/pods", 200, |_| {
        let pod = |name: &str, phase: &str, ip: Option<&str>, deleting: bool| {
            let mut p = json!({"metadata": {"name": name, "namespace": "team-a"},
                               "status": {"phase": phase, "podIP": ip}});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            p
        };
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
               "items": [pod("open-a", "Running", Some("10.244.0.9"), true),
                         pod("open-b", "Pending", None, false),
                         pod("open-c", "Running", Some("10.244.0.6"), false)]})
    })
    .await;
    let status = api.status(&format!("{POLICIES}/open/status")).await;
    let expected = "Secret or key not found in namespace team-a (the binding proxy has no value for it): \
                    time-key/bearer";
    for type_ in ["Ready", "ResolvedRefs"] {
        let c = condition(&status, type_);
        assert_eq!((c["status"].as_str(), c["reason"].as_str()), (Some("False"), Some("SecretNotFound")));
        assert_eq!(c["message"], expected);
    }
    assert_eq!(condition(&status, "Available")["status"], "True");
    api.event("team-a").await;
    api.done().await;
    // Asked again soon: no Secret watch brings it back when the Secret appears.
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(Duration::from_secs(15)));
    assert_eq!(executors.calls.lock().unwrap().clone(), [("http://10.244.0.6:9090".to_string(), None)]);
}

#[tokio::test]
async fn a_resolved_policy_applies_every_child_then_reports_ready() {
    let (ctx, handle) = context();
    let policy: McpGuardPolicy = fixture("policy-open.yaml");
    let time: McpServer = fixture("server-deployed.yaml");
    let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
    let mut api = ApiServer(handle);
    api.expect(Method::GET, &format!("{SERVERS}/time"), 200, |_| serde_json::to_value(&time).unwrap()).await;
    let (cm, dep, _) = open_children_applied(&mut api).await;
    let config =
        mcp_guard_crds::GuardConfig::from_yaml(cm["data"]["config.yaml"].as_str().unwrap(), "cm").unwrap();
    assert_eq!(config.servers[0].url.as_deref(), Some("http://10.96.0.50:8080/mcp"));
    assert_eq!(cm["metadata"]["ownerReferences"][0]["controller"], true);
    let hash = dep["spec"]["template"]["metadata"]["annotations"]["mcpguard.io/config-hash"].clone();
    // Its binding proxy is asked for missing credentials; an executor that cannot be asked changes
    // nothing (the servers' Discovered conditions say why).
    api.expect(
        Method::GET,
        "/api/v1/namespaces/team-a/pods",
        200,
        |_| json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}),
    )
    .await;
    let status = api.status(&format!("{POLICIES}/open/status")).await;
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(condition(&status, "Available")["status"], "True");
    assert_eq!(condition(&status, "ResolvedRefs")["status"], "True");
    assert_eq!(status["status"]["configHash"], hash);
    assert_eq!(status["status"]["endpoint"], "open-mcp-guard.team-a.svc:9090");
    assert_eq!(status["status"]["boundServers"], json!(["time"]));
    let event = api.event("team-a").await;
    assert_eq!((event["type"].as_str(), event["reason"].as_str()), (Some("Normal"), Some("Ready")));
    api.done().await;
    task.await.unwrap().unwrap();
}

/// With `approvals`, the binding proxy gets its RoleBinding for McpApprovals before it runs (made anew
/// when it names another role); without, a binding left from before is deleted.
#[tokio::test]
async fn approvals_bind_the_proxy_before_it_runs_and_unbind_it_when_dropped() {
    for approvals in [Approvals::New, Approvals::OtherRole, Approvals::Dropped] {
        let (ctx, handle) = context();
        let mut policy: McpGuardPolicy = fixture("policy-open.yaml");
        if approvals != Approvals::Dropped {
            policy.spec.approvals = Some(
                serde_json::from_value(json!({"approvers": {"users": ["alice"]},
                                              "journalKey": {"secretName": "open-journal-key"}}))
                .unwrap(),
            );
        }
        let time: McpServer = fixture("server-deployed.yaml");
        let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
        let mut api = ApiServer(handle);
        api.expect(Method::GET, &format!("{SERVERS}/time"), 200, |_| serde_json::to_value(&time).unwrap())
            .await;
        let (cm, _, proxy) = open_children_applied_with(&mut api, approvals).await;
        let config =
            mcp_guard_crds::GuardConfig::from_yaml(cm["data"]["config.yaml"].as_str().unwrap(), "cm")
                .unwrap();
        let volumes = proxy["spec"]["template"]["spec"]["volumes"].to_string();
        if approvals == Approvals::Dropped {
            assert!(config.approvals.is_none());
            assert!(!volumes.contains("approvals-key"), "{volumes}");
        } else {
            assert_eq!(config.approvals.unwrap().approvers.users, ["alice"]);
            assert!(volumes.contains("open-journal-key"), "{volumes}");
        }
        api.expect(
            Method::GET,
            "/api/v1/namespaces/team-a/pods",
            200,
            |_| json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}),
        )
        .await;
        api.status(&format!("{POLICIES}/open/status")).await;
        api.event("team-a").await;
        api.done().await;
        task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn an_unrenderable_policy_waits_for_a_change() {
    let (ctx, handle) = context();
    let mut policy: McpGuardPolicy = fixture("policy-open.yaml");
    policy.metadata.name = Some("a-name-that-is-far-too-long-for-the-children-it-would-make-xx".into());
    policy.spec.servers.clear();
    let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
    let mut api = ApiServer(handle);
    let status = api
        .status(&format!("{POLICIES}/a-name-that-is-far-too-long-for-the-children-it-would-make-xx/status"))
        .await;
    assert_eq!(condition(&status, "Ready")["reason"], "InvalidSpec");
    assert!(condition(&status, "Ready")["message"].as_str().unwrap().contains("too long"));
    api.event("team-a").await;
    api.done().await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_ready_condition_that_holds_publishes_no_new_event() {
    let (ctx, handle) = context();
    let mut policy: McpGuardPolicy = fixture("policy-open.yaml");
    policy.status = Some(
        serde_json::from_value(json!({"conditions": [{
        "type": "Ready", "status": "False", "reason": "McpServerNotFound", "message": "old",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
        .unwrap(),
    );
    let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
    let mut api = ApiServer(handle);
    api.not_found(Method::GET, &format!("{SERVERS}/time")).await;
    let status = api.status(&format!("{POLICIES}/open/status")).await;
    assert_eq!(condition(&status, "Ready")["lastTransitionTime"], "2026-01-01T00:00:00Z");
    api.done().await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_deployed_server_gets_its_children_and_a_service_url() {
    let (ctx, handle) = context();
    let mut time: McpServer = fixture("server-deployed.yaml");
    time.status = None;
    time.metadata.finalizers = Some(vec!["mcpguard.io/cleanup".into()]);
    let task = tokio::spawn(server::reconcile(Arc::new(time), ctx));
    let mut api = ApiServer(handle);
    // The gate's ServiceAccount and its TokenReview binding (named from the server's UID).
    let sa = api.create("/api/v1/namespaces/team-a/serviceaccounts/time-mcp-server", json!({})).await;
    assert_eq!(sa["automountServiceAccountToken"], false);
    let crb = api.create(&format!("{CRBS}/mcp-guard-tokenreview-{TIME_UID}"), json!({})).await;
    assert_eq!(crb["roleRef"]["name"], "mcp-guard-tokenreview");
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "time-mcp-server", "namespace": "team-a"}])
    );
    assert_eq!(crb["metadata"]["labels"]["mcpguard.io/server-uid"], TIME_UID);
    let np = api
        .create("/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/time-mcp-server", json!({}))
        .await;
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["bind.mcpguard.io/time"],
        "true"
    );
    api.create(
        "/api/v1/namespaces/team-a/services/time-mcp-server",
        json!({"spec": {"clusterIP": "10.96.7.7"}}),
    )
    .await;
    api.create("/apis/apps/v1/namespaces/team-a/deployments/time-mcp-server", json!({"status": {}})).await;
    // No policy binds it yet: nothing to discover through.
    api.expect(Method::GET, POLICIES, 200, |_| policy_list(vec![])).await;
    let status = api.status(&format!("{SERVERS}/time/status")).await;
    assert_eq!(status["status"]["url"], "http://10.96.7.7:8080/mcp");
    assert_eq!(condition(&status, "Available")["status"], "False");
    assert_eq!(condition(&status, "Ready")["reason"], "Pending");
    let discovered = condition(&status, "Discovered");
    assert_eq!(
        (discovered["status"].as_str(), discovered["reason"].as_str()),
        (Some("False"), Some("NotBound"))
    );
    assert!(status["status"].get("tools").is_none() && status["status"].get("toolCount").is_none());
    let event = api.event("team-a").await;
    assert_eq!(event["type"], "Normal", "waiting for pods is not a warning");
    api.done().await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(Duration::from_secs(300)));
}

fn policy_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicyList",
           "metadata": {"resourceVersion": "1"}, "items": items})
}

/// A policy as the API returns it: the fixture, with a Ready condition of `ready`.
fn policy_json(fixture_name: &str, name: &str, ready: &str) -> Value {
    let mut p: Value = serde_json::to_value(fixture::<McpGuardPolicy>(fixture_name)).unwrap();
    p["metadata"]["name"] = json!(name);
    p["status"] = json!({"conditions": [{"type": "Ready", "status": ready, "reason": "Ready", "message": "",
                                         "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    p
}

/// Stands in for executors: records each call and answers from a script.
#[derive(Default)]
struct FakeExecutors {
    calls: Mutex<Vec<(String, Option<String>)>>,
    answers: Mutex<VecDeque<Result<pb::ListToolsResponse, String>>>,
}

#[async_trait::async_trait]
impl Transport for FakeExecutors {
    async fn list_tools(
        &self,
        endpoint: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<pb::ListToolsResponse, String> {
        assert_eq!(timeout, Duration::from_secs(5));
        self.calls.lock().unwrap().push((endpoint.to_string(), token.map(str::to_string)));
        self.answers.lock().unwrap().pop_front().unwrap_or_else(|| Err("no scripted answer".into()))
    }
}

fn time_tools() -> pb::ListToolsResponse {
    let tool = |name: &str, description: &str| pb::Tool {
        server: "clock".into(),
        name: name.into(),
        binding: format!("mcp.clock.{name}"),
        description: description.into(),
    };
    pb::ListToolsResponse {
        tools: vec![
            tool("get-current-time", "The current time."),
            tool("convert_time", ""),
            pb::Tool { server: "github".into(), name: "get_issue".into(), ..Default::default() },
        ],
        servers: vec![
            pb::Server {
                name: "clock".into(),
                connected: true,
                server_name: "mcp-test-server".into(),
                server_version: "0.1.0".into(),
                tool_count: 2,
                error: String::new(),
                protocol_version: "2025-06-18".into(),
                missing_credentials: Vec::new(),
            },
            pb::Server {
                name: "github".into(),
                connected: false,
                error: "refused".into(),
                ..Default::default()
            },
        ],
    }
}

#[tokio::test]
async fn a_bound_server_reports_the_tools_and_server_info_its_policys_executor_discovered() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let settings = Settings {
        executor_image: "mcp-guard.local/mcp-guard:test".into(),
        operator: Some(OperatorIdentity {
            namespace: "mcp-guard-system".into(),
            service_account: "mcp-guard".into(),
        }),
        ..Default::default()
    };
    let executors = Arc::new(FakeExecutors::default());
    executors
        .answers
        .lock()
        .unwrap()
        .extend([Ok(time_tools()), Err("ListTools at http://10.96.5.5:9090 timed out after 5s".into())]);
    let ctx = Arc::new(Context::with_transport(client, settings, Metrics::new().unwrap(), executors.clone()));
    let mut time: McpServer = fixture("server-remote.yaml");
    time.metadata.name = Some("time".into());
    time.spec.headers.clear();

    let task = tokio::spawn(server::reconcile(Arc::new(time.clone()), ctx.clone()));
    let mut api = ApiServer(handle);
    // Only `agents` counts: Ready and binding `time` (as `clock`). `open` is not Ready; `other` does not
    // bind it; a policy that does not parse is skipped.
    let mut other = policy_json("policy.yaml", "other", "True");
    other["spec"]["servers"] = json!([{"name": "github"}]);
    let items = vec![
        policy_json("policy-open.yaml", "open", "False"),
        other,
        policy_json("policy.yaml", "agents", "True"),
        json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
               "metadata": {"name": "odd", "namespace": "team-a"}, "spec": {"limits": {"memory": "lots"}}}),
    ];
    api.expect(Method::GET, POLICIES, 200, move |_| policy_list(items.clone())).await;
    api.expect(Method::GET, "/api/v1/namespaces/team-a/services/agents-mcp-guard", 200, |_| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "agents-mcp-guard", "namespace": "team-a"},
               "spec": {"clusterIP": "10.96.5.5"}})
    })
    .await;
    // A short-lived token of the operator's own service account, for the policy's audience.
    let expires = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(600))
        .unwrap()
        .to_string();
    let request = api
        .expect(
            Method::POST,
            "/api/v1/namespaces/mcp-guard-system/serviceaccounts/mcp-guard/token",
            201,
            move |body| {
                let mut answer = body;
                answer["status"] = json!({"token": "operator-token", "expirationTimestamp": expires});
                answer
            },
        )
        .await;
    assert_eq!(request["spec"]["audiences"], json!(["mcpguard.io/team-a/agents"]));
    assert_eq!(request["spec"]["expirationSeconds"], 600);
    let status = api.status(&format!("{SERVERS}/time/status")).await;
    let st = &status["status"];
    assert_eq!(st["toolCount"], 2);
    assert_eq!(
        st["tools"],
        json!([{"name": "convert_time"}, {"name": "get-current-time", "description": "The current time."}])
    );
    assert_eq!(
        st["serverInfo"],
        json!({"name": "mcp-test-server", "version": "0.1.0", "protocolVersion": "2025-06-18"})
    );
    let discovered = condition(&status, "Discovered");
    assert_eq!(
        (discovered["status"].as_str(), discovered["reason"].as_str()),
        (Some("True"), Some("Handshake"))
    );
    assert!(discovered["message"].as_str().unwrap().contains("McpGuardPolicy agents"), "{discovered}");
    assert_eq!(condition(&status, "Ready")["status"], "True");
    api.event("team-a").await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(Duration::from_secs(60)));
    assert_eq!(
        executors.calls.lock().unwrap().clone(),
        [("http://10.96.5.5:9090".to_string(), Some("operator-token".to_string()))]
    );

    // Next round: the executor times out. The token comes from the cache; the last handshake's tools
    // stay, Discovered says why it is stale, and Ready does not change.
    time.status = Some(serde_json::from_value(st.clone()).unwrap());
    let task = tokio::spawn(server::reconcile(Arc::new(time), ctx));
    let items = vec![policy_json("policy.yaml", "agents", "True")];
    api.expect(Method::GET, POLICIES, 200, move |_| policy_list(items.clone())).await;
    api.expect(Method::GET, "/api/v1/namespaces/team-a/services/agents-mcp-guard", 200, |_| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "agents-mcp-guard", "namespace": "team-a"},
               "spec": {"clusterIP": "10.96.5.5"}})
    })
    .await;
    let status = api.status(&format!("{SERVERS}/time/status")).await;
    let discovered = condition(&status, "Discovered");
    assert_eq!(
        (discovered["status"].as_str(), discovered["reason"].as_str()),
        (Some("False"), Some("Unreachable"))
    );
    assert_eq!(
        discovered["message"],
        "McpGuardPolicy agents: ListTools at http://10.96.5.5:9090 timed out after 5s"
    );
    assert_eq!(status["status"]["toolCount"], 2, "the last handshake's tools stay");
    assert_eq!(status["status"]["serverInfo"]["name"], "mcp-test-server");
    assert_eq!(condition(&status, "Ready")["status"], "True", "discovery never makes a server unready");
    api.done().await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(Duration::from_secs(15)));
    assert_eq!(executors.calls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_transient_api_error_backs_off() {
    let (ctx, handle) = context();
    let policy: McpGuardPolicy = fixture("policy-open.yaml");
    let policy = Arc::new(policy);
    let task = tokio::spawn(policy::reconcile(policy.clone(), ctx.clone()));
    let mut api = ApiServer(handle);
    api.expect(Method::GET, &format!("{SERVERS}/time"), 500, |_| {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd is down"})
    })
    .await;
    let err = task.await.unwrap().unwrap_err();
    let first = mcp_guard_operator::reconcile::error_policy(policy.clone(), &err, ctx.clone());
    let second = mcp_guard_operator::reconcile::error_policy(policy, &err, ctx);
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));
    assert_eq!(second, Action::requeue(Duration::from_secs(10)));
}

#[tokio::test]
async fn an_object_that_does_not_parse_is_reported_on_its_status_and_waits() {
    let (ctx, handle) = context();
    let guard: kube::core::DeserializeGuard<McpGuardPolicy> = serde_json::from_value(json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
        "metadata": {"name": "odd", "namespace": "team-a", "uid": "u-1", "generation": 2},
        "spec": {"limits": {"memory": "lots"}}
    }))
    .unwrap();
    assert!(guard.0.is_err());
    let task = tokio::spawn(mcp_guard_operator::reconcile::reconcile_guarded(
        Arc::new(guard),
        ctx,
        policy::reconcile,
    ));
    let mut api = ApiServer(handle);
    let status = api.status(&format!("{POLICIES}/odd/status")).await;
    let ready = condition(&status, "Ready");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(ready["message"].as_str().unwrap().contains("lots"), "{ready}");
    let event = api.event("team-a").await;
    assert_eq!(event["type"], "Warning");
    api.done().await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_new_policy_first_gets_the_finalizer() {
    let (ctx, handle) = context();
    let mut policy: McpGuardPolicy = fixture("policy-open.yaml");
    policy.metadata.finalizers = None;
    let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
    let mut api = ApiServer(handle);
    let patch = api
        .expect(Method::PATCH, &format!("{POLICIES}/open"), 200, |_| {
            json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
                   "metadata": {"name": "open", "namespace": "team-a", "finalizers": ["mcpguard.io/cleanup"]}, "spec": {}})
        })
        .await;
    assert!(patch.to_string().contains("mcpguard.io/cleanup"), "{patch}");
    api.done().await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
}

#[tokio::test]
async fn deleting_a_policy_removes_its_cluster_role_binding_then_the_finalizer() {
    let (ctx, handle) = context();
    let mut policy: McpGuardPolicy = fixture("policy.yaml");
    policy.metadata.deletion_timestamp = Some(deleted_at());
    let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
    let mut api = ApiServer(handle);
    // Its own binding (named from its UID, labelled with it) goes.
    let own = format!("{CRBS}/mcp-guard-tokenreview-{AGENTS_UID}");
    api.expect(Method::GET, &own, 200, |_| binding("team-a", "agents", Some(AGENTS_UID))).await;
    api.expect(
        Method::DELETE,
        &own,
        200,
        |_| json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    )
    .await;
    // The name older versions used is shared by `team-a/agents` and `team/a-agents`: this one is the
    // other tenant's, so it stays (no DELETE follows).
    api.expect(Method::GET, &format!("{CRBS}/mcp-guard-tokenreview-team-a-agents"), 200, |_| {
        binding("team", "a-agents", None)
    })
    .await;
    let patch = api
        .expect(Method::PATCH, &format!("{POLICIES}/agents"), 200, |_| {
            json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy",
                   "metadata": {"name": "agents", "namespace": "team-a"}, "spec": {}})
        })
        .await;
    assert!(patch.to_string().contains("remove"), "the finalizer is removed: {patch}");
    api.done().await;
    task.await.unwrap().unwrap();
}

const AGENTS_UID: &str = "11111111-2222-3333-4444-555555555555";
const TIME_UID: &str = "33333333-2222-3333-4444-555555555555";

/// A deletion timestamp (the object is being deleted).
fn deleted_at() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(2_000_000_000).unwrap(),
    )
}

/// The deployed server `time`, with its finalizer, being deleted.
fn deleted_deployed_server() -> McpServer {
    let mut time: McpServer = fixture("server-deployed.yaml");
    time.metadata.finalizers = Some(vec!["mcpguard.io/cleanup".into()]);
    time.metadata.deletion_timestamp = Some(deleted_at());
    time
}

/// The PATCH that releases `time`'s finalizer; returns what the operator sent.
async fn finalizer_released(api: &mut ApiServer) -> Value {
    api.expect(Method::PATCH, &format!("{SERVERS}/time"), 200, |_| {
        json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer",
               "metadata": {"name": "time", "namespace": "team-a"}, "spec": {}})
    })
    .await
}

#[tokio::test]
async fn a_new_deployed_server_first_gets_the_finalizer_and_a_remote_one_never() {
    let (ctx, handle) = context();
    let time: McpServer = fixture("server-deployed.yaml");
    assert!(time.metadata.finalizers.is_none());
    let task = tokio::spawn(server::reconcile(Arc::new(time), ctx));
    let mut api = ApiServer(handle);
    let patch = api
        .expect(Method::PATCH, &format!("{SERVERS}/time"), 200, |_| {
            json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer",
                   "metadata": {"name": "time", "namespace": "team-a", "finalizers": ["mcpguard.io/cleanup"]}, "spec": {}})
        })
        .await;
    assert!(patch.to_string().contains("mcpguard.io/cleanup"), "{patch}");
    api.done().await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
}

#[tokio::test]
async fn deleting_a_deployed_server_removes_its_gates_binding_then_the_finalizer() {
    let (ctx, handle) = context();
    let task = tokio::spawn(server::reconcile(Arc::new(deleted_deployed_server()), ctx));
    let mut api = ApiServer(handle);
    let own = format!("{CRBS}/mcp-guard-tokenreview-{TIME_UID}");
    api.expect(Method::GET, &own, 200, |_| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "x", "labels": {"app.kubernetes.io/managed-by": "mcp-guard-operator",
                   "mcpguard.io/server": "time", "mcpguard.io/server-namespace": "team-a", "mcpguard.io/server-uid": TIME_UID}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mcp-guard-tokenreview"},
               "subjects": [{"kind": "ServiceAccount", "name": "time-mcp-server", "namespace": "team-a"}]})
    })
    .await;
    api.expect(
        Method::DELETE,
        &own,
        200,
        |_| json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    )
    .await;
    let patch = finalizer_released(&mut api).await;
    assert!(patch.to_string().contains("remove"), "the finalizer is removed: {patch}");
    api.done().await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_binding_of_the_gates_name_that_is_not_the_servers_stays() {
    let (ctx, handle) = context();
    let task = tokio::spawn(server::reconcile(Arc::new(deleted_deployed_server()), ctx));
    let mut api = ApiServer(handle);
    // Same name, but a policy's binding (labels and subject say so): no DELETE follows.
    api.expect(Method::GET, &format!("{CRBS}/mcp-guard-tokenreview-{TIME_UID}"), 200, |_| {
        binding("team-a", "time", Some(TIME_UID))
    })
    .await;
    finalizer_released(&mut api).await;
    api.done().await;
    task.await.unwrap().unwrap();
}

/// A TokenReview binding as the operator makes it for policy `ns/name`.
fn binding(ns: &str, name: &str, uid: Option<&str>) -> Value {
    let mut labels = json!({"app.kubernetes.io/managed-by": "mcp-guard-operator", "mcpguard.io/policy": name,
                            "mcpguard.io/policy-namespace": ns});
    if let Some(uid) = uid {
        labels["mcpguard.io/policy-uid"] = json!(uid);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": "x", "labels": labels},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mcp-guard-tokenreview"},
           "subjects": [{"kind": "ServiceAccount", "name": format!("{name}-mcp-guard"), "namespace": ns}]})
}

#[tokio::test]
async fn an_object_the_operator_did_not_make_is_not_adopted() {
    let (ctx, handle) = context();
    let policy: McpGuardPolicy = fixture("policy-open.yaml");
    let time: McpServer = fixture("server-deployed.yaml");
    let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
    let mut api = ApiServer(handle);
    api.expect(Method::GET, &format!("{SERVERS}/time"), 200, |_| serde_json::to_value(&time).unwrap()).await;
    api.create(
        "/api/v1/namespaces/team-a/services/open-binding-proxy",
        json!({"spec": {"clusterIP": "10.96.0.77"}}),
    )
    .await;
    api.create("/api/v1/namespaces/team-a/configmaps/open-mcp-guard", json!({})).await;
    api.create("/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/open-mcp-guard", json!({}))
        .await;
    api.create("/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/open-binding-proxy", json!({}))
        .await;
    api.create(&format!("{CRBS}/mcp-guard-tokenreview-{OPEN_UID}"), json!({})).await;
    api.not_found(Method::GET, &format!("{CRBS}/mcp-guard-tokenreview-team-a-open")).await;
    api.create("/api/v1/namespaces/team-a/serviceaccounts/open-binding-proxy", json!({})).await;
    api.not_found(Method::GET, ROLE_BINDING).await;
    api.create("/apis/apps/v1/namespaces/team-a/deployments/open-binding-proxy", json!({})).await;
    api.not_found(Method::GET, "/apis/policy/v1/namespaces/team-a/poddisruptionbudgets/open-binding-proxy")
        .await;
    // A ServiceAccount of the executor's name exists: a tenant's, with its own RoleBindings maybe. It has
    // the managed-by label (anyone can set a label) but no owner reference to this policy.
    api.expect(Method::GET, "/api/v1/namespaces/team-a/serviceaccounts/open-mcp-guard", 200, |_| {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
               "metadata": {"name": "open-mcp-guard", "namespace": "team-a",
                            "labels": {"app.kubernetes.io/managed-by": "mcp-guard-operator"}}})
    })
    .await;
    // No PATCH of it, nothing after it: the status says why.
    let status = api.status(&format!("{POLICIES}/open/status")).await;
    let ready = condition(&status, "Ready");
    assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("False"), Some("ChildNotOwned")));
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("ServiceAccount `open-mcp-guard` already exists and was not created by the operator"),
        "{ready}"
    );
    api.event("team-a").await;
    api.done().await;
    assert_eq!(task.await.unwrap().unwrap(), Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn nothing_is_made_in_a_reserved_namespace() {
    let (ctx, handle) = context();
    let mut policy: McpGuardPolicy = fixture("policy-open.yaml");
    policy.metadata.namespace = Some("kube-system".into());
    let task = tokio::spawn(policy::reconcile(Arc::new(policy), ctx));
    let mut api = ApiServer(handle);
    let status = api
        .expect(
            Method::PATCH,
            "/apis/mcpguard.io/v1alpha1/namespaces/kube-system/mcpguardpolicies/open/status",
            200,
            |mut b| {
                merge(&mut b, json!({"metadata": {"name": "open", "namespace": "kube-system"}, "spec": {}}));
                b
            },
        )
        .await;
    assert_eq!(condition(&status, "Ready")["reason"], "ReservedNamespace");
    api.event("kube-system").await;
    api.done().await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
}
