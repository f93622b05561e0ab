//! The Helm chart's RBAC and admission objects, from `helm template` (no cluster needed).
//!
//! Runs wherever `helm` is found: `$HELM`, `PATH`, or the test cluster's cache
//! (`~/.cache/mcp-guard/cluster/helm-*/bin/helm`, as `e2e/run.sh` finds it). Without helm the tests
//! are skipped, unless `MCP_GUARD_E2E=1` (set by `e2e/run.sh`), where they fail.
//!
//! What they hold the chart to: the operator's rules are exactly the ones `templates/rbac.yaml`
//! explains (an allowlist of group/resource/verbs: a new permission must be added here on purpose);
//! no wildcard anywhere; no role the chart creates can touch a Secret (RBAC has no "metadata only", so
//! any Secret verb would read every value); `bind` only on the TokenReview ClusterRole, which grants
//! `tokenreviews: create` and nothing else, and on the approvals ClusterRole of binding proxies, which
//! grants McpApprovals and their journals and nothing else; with `watchNamespaces`, namespaced rules only
//! in a Role per watched namespace; the admission policies present exactly when `admission.enabled`,
//! but for the one that says who may decide an approval, which is always there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/mcp-guard");
const RELEASE: &str = "mcp-guard";
const NS: &str = "mcp-guard-system";
/// The release's full name (`mcp-guard` contains the chart name, so no suffix).
const FULLNAME: &str = "mcp-guard";
const TOKEN_REVIEW_ROLE: &str = "mcp-guard-tokenreview";
const APPROVALS_ROLE: &str = "mcp-guard-approvals-proxy";
/// The oldest Kubernetes the chart supports (`kubeVersion` in Chart.yaml).
const KUBE_VERSION: &str = "1.31.0";

fn helm() -> Option<PathBuf> {
    if let Ok(h) = std::env::var("HELM") {
        return Some(PathBuf::from(h));
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("helm")).find(|p| p.is_file()));
    on_path.or_else(|| {
        let cache = std::env::var_os("MCP_GUARD_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mcp-guard")))?;
        let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("cluster"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("helm-")))
            .map(|p| p.join("bin/helm"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

/// The helm binary, or None to skip (after saying so). Panics when the e2e run requires it.
fn helm_or_skip() -> Option<PathBuf> {
    let h = helm();
    if h.is_none() {
        assert!(
            std::env::var("MCP_GUARD_E2E").as_deref() != Ok("1"),
            "MCP_GUARD_E2E=1 but helm was not found ($HELM, PATH, ~/.cache/mcp-guard/cluster/helm-*/bin)"
        );
        eprintln!("skipped: helm not found ($HELM, PATH, ~/.cache/mcp-guard/cluster/helm-*/bin)");
    }
    h
}

fn run_helm(helm: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(helm).args(args).output().unwrap_or_else(|e| panic!("{}: {e}", helm.display()));
    assert!(out.status.success(), "helm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm template` with `--set` values: the rendered objects.
fn render(helm: &PathBuf, sets: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", NS, "--kube-version", KUBE_VERSION];
    for s in sets {
        args.extend(["--set", s]);
    }
    let yaml = run_helm(helm, &args);
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&yaml).unwrap_or_else(|e| panic!("helm template {sets:?}: {e}"));
    docs.into_iter().filter(|d| d.is_object()).collect()
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// Roles and ClusterRoles (kind, namespace, name) bound to the operator's ServiceAccount.
fn operator_roles(objs: &[Value]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for b in objs.iter().filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding") {
        let subjects = b["subjects"].as_array().cloned().unwrap_or_default();
        assert!(
            subjects
                .iter()
                .all(|s| s["kind"] == "ServiceAccount" && s["name"] == FULLNAME && s["namespace"] == NS),
            "{} {} binds someone other than the operator: {subjects:?}",
            b["kind"],
            name(b)
        );
        let ns = if b["roleRef"]["kind"] == "Role" {
            b["metadata"]["namespace"].as_str().unwrap_or_default().to_string()
        } else {
            String::new()
        };
        out.insert((
            b["roleRef"]["kind"].as_str().unwrap().to_string(),
            ns,
            b["roleRef"]["name"].as_str().unwrap().to_string(),
        ));
    }
    out
}

fn find_role<'a>(objs: &'a [Value], kind: &str, ns: &str, role: &str) -> &'a Value {
    objs.iter()
        .find(|o| {
            o["kind"] == kind
                && name(o) == role
                && o["metadata"]["namespace"].as_str().unwrap_or_default() == ns
        })
        .unwrap_or_else(|| panic!("no {kind} {ns}/{role}"))
}

/// Every (apiGroup, resource, verb) the operator may use, and the rules' resourceNames.
const OPERATOR_MAY: &[(&str, &str, &[&str])] = &[
    // patch: the finalizer of policies and deployed servers (their TokenReview bindings).
    ("mcpguard.io", "mcpservers", &["get", "list", "watch", "patch"]),
    ("mcpguard.io", "mcpguardpolicies", &["get", "list", "watch", "patch"]),
    ("mcpguard.io", "mcpservers/status", &["get", "patch", "update"]),
    ("mcpguard.io", "mcpguardpolicies/status", &["get", "patch", "update"]),
    ("mcpguard.io", "mcpservers/finalizers", &["update"]),
    ("mcpguard.io", "mcpguardpolicies/finalizers", &["update"]),
    ("", "configmaps", &["get", "list", "watch", "create", "patch"]),
    ("", "serviceaccounts", &["get", "list", "watch", "create", "patch"]),
    ("", "services", &["get", "list", "watch", "create", "patch"]),
    ("apps", "deployments", &["get", "list", "watch", "create", "patch"]),
    ("networking.k8s.io", "networkpolicies", &["get", "list", "watch", "create", "patch"]),
    ("policy", "poddisruptionbudgets", &["get", "list", "watch", "create", "patch", "delete"]),
    // spec.executor.autoscaling: the executor's HorizontalPodAutoscaler.
    ("autoscaling", "horizontalpodautoscalers", &["get", "list", "watch", "create", "patch", "delete"]),
    ("", "pods", &["list"]),
    ("events.k8s.io", "events", &["create", "patch"]),
    ("discovery.k8s.io", "endpointslices", &["list"]),
    ("rbac.authorization.k8s.io", "clusterrolebindings", &["get", "create", "patch", "delete"]),
    ("rbac.authorization.k8s.io", "clusterroles", &["bind"]),
    // Approvals: decisions into status, expiry, retention; the journals of expired ones; the binding
    // proxies' RoleBindings to the approvals role. Never an approval's spec: the operator cannot decide.
    ("mcpguard.io", "mcpapprovals", &["get", "list", "watch", "delete"]),
    ("mcpguard.io", "mcpapprovals/status", &["get", "update"]),
    ("mcpguard.io", "mcpapprovaljournals", &["list", "delete"]),
    ("rbac.authorization.k8s.io", "rolebindings", &["get", "list", "watch", "create", "patch", "delete"]),
    ("", "serviceaccounts/token", &["create"]),
    ("coordination.k8s.io", "leases", &["create", "get", "update"]),
];

/// The namespaced rules that move to a Role per watched namespace with `watchNamespaces`.
const WATCHED: &[&str] = &[
    "mcpservers",
    "mcpguardpolicies",
    "configmaps",
    "serviceaccounts",
    "services",
    "deployments",
    "networkpolicies",
    "poddisruptionbudgets",
    "horizontalpodautoscalers",
    "pods",
    "events",
    "mcpapprovals",
    "mcpapprovals/status",
    "mcpapprovaljournals",
    "rolebindings",
];

/// Checks that hold for every role the chart renders, and the operator's rules against [`OPERATOR_MAY`].
fn check_rbac(objs: &[Value]) {
    let roles: Vec<&Value> =
        objs.iter().filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole").collect();
    assert!(!roles.is_empty(), "no roles rendered");
    for role in &roles {
        let who = format!("{} {}", role["kind"], name(role));
        for rule in role["rules"].as_array().unwrap_or_else(|| panic!("{who}: no rules")) {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(!strings(&rule[field]).contains(&"*"), "{who}: `*` in {field}: {rule}");
            }
            let (resources, verbs) = (strings(&rule["resources"]), strings(&rule["verbs"]));
            for bad in ["escalate", "impersonate"] {
                assert!(!verbs.contains(&bad), "{who}: verb {bad}: {rule}");
            }
            assert!(
                !resources.iter().any(|r| *r == "secrets" || r.starts_with("secrets/")),
                "{who}: a rule on Secrets (a leaked token of this role would read every value): {rule}"
            );
            if resources.iter().any(|r| *r == "clusterroles" || *r == "roles") && verbs.contains(&"bind") {
                assert_eq!(
                    strings(&rule["resourceNames"]),
                    [TOKEN_REVIEW_ROLE, APPROVALS_ROLE],
                    "{who}: bind on roles other than {TOKEN_REVIEW_ROLE} and {APPROVALS_ROLE}: {rule}"
                );
            }
        }
    }

    let tr = find_role(objs, "ClusterRole", "", TOKEN_REVIEW_ROLE);
    let rules = tr["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{TOKEN_REVIEW_ROLE}: {rules:?}");
    assert_eq!(strings(&rules[0]["apiGroups"]), ["authentication.k8s.io"]);
    assert_eq!(strings(&rules[0]["resources"]), ["tokenreviews"]);
    assert_eq!(strings(&rules[0]["verbs"]), ["create"]);
    assert!(rules[0]["resourceNames"].is_null(), "{TOKEN_REVIEW_ROLE}: {rules:?}");

    // The binding proxies' approvals role: McpApprovals (never an update of one: no decision), their
    // status, and their journals; nothing else.
    let approvals = find_role(objs, "ClusterRole", "", APPROVALS_ROLE);
    let granted: Vec<(Vec<&str>, Vec<&str>, Vec<&str>)> = approvals["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (strings(&r["apiGroups"]), strings(&r["resources"]), strings(&r["verbs"])))
        .collect();
    assert_eq!(
        granted,
        [
            (vec!["mcpguard.io"], vec!["mcpapprovals"], vec!["create", "get", "list", "watch"]),
            (vec!["mcpguard.io"], vec!["mcpapprovals/status"], vec!["get", "update", "patch"]),
            (vec!["mcpguard.io"], vec!["mcpapprovaljournals"], vec!["create", "get"]),
        ],
        "{APPROVALS_ROLE}"
    );

    // The operator's own rules: within the allowlist, with the resourceNames that make them narrow.
    for (kind, ns, role) in operator_roles(objs) {
        let r = find_role(objs, &kind, &ns, &role);
        for rule in r["rules"].as_array().unwrap() {
            let names = strings(&rule["resourceNames"]);
            for g in strings(&rule["apiGroups"]) {
                for res in strings(&rule["resources"]) {
                    let allowed = OPERATOR_MAY
                        .iter()
                        .find(|(ag, ar, _)| *ag == g && *ar == res)
                        .map(|(_, _, v)| *v)
                        .unwrap_or_else(|| {
                            panic!("{kind} {ns}/{role}: the operator may use {g}/{res}: {rule}")
                        });
                    for v in strings(&rule["verbs"]) {
                        assert!(allowed.contains(&v), "{kind} {ns}/{role}: {v} on {g}/{res}: {rule}");
                    }
                    let must_name: Option<&[&str]> = match res {
                        "clusterroles" => Some(&[TOKEN_REVIEW_ROLE, APPROVALS_ROLE]),
                        "serviceaccounts/token" => Some(&[FULLNAME]),
                        _ => None,
                    };
                    if let Some(want) = must_name {
                        assert_eq!(names, want, "{kind} {ns}/{role}: {g}/{res} not limited to {want:?}");
                    }
                }
            }
        }
    }
}

/// The resources the operator's ClusterRole grants.
fn cluster_role_resources(objs: &[Value]) -> BTreeSet<String> {
    let cr = find_role(objs, "ClusterRole", "", FULLNAME);
    cr["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| strings(&r["resources"]).into_iter().map(String::from).collect::<Vec<_>>())
        .collect()
}

#[test]
fn rbac_default_values() {
    let Some(helm) = helm_or_skip() else { return };
    let objs = render(&helm, &[]);
    check_rbac(&objs);
    let resources = cluster_role_resources(&objs);
    for r in WATCHED {
        assert!(resources.contains(*r), "default values: the ClusterRole lacks {r}");
    }
    assert!(of_kind(&objs, "Role").iter().all(|r| {
        let ns = r["metadata"]["namespace"].as_str().unwrap_or_default();
        ns == NS || ns == "default"
    }));
    // Users: edit (aggregated into admin and edit) with bind on McpServers, view read-only.
    let edit = find_role(&objs, "ClusterRole", "", &format!("{FULLNAME}-edit"));
    let labels = &edit["metadata"]["labels"];
    assert_eq!(labels["rbac.authorization.k8s.io/aggregate-to-admin"], "true");
    assert_eq!(labels["rbac.authorization.k8s.io/aggregate-to-edit"], "true");
    assert!(
        edit["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| strings(&r["resources"]) == ["mcpservers"] && strings(&r["verbs"]) == ["bind"])
    );
    let view = find_role(&objs, "ClusterRole", "", &format!("{FULLNAME}-view"));
    assert_eq!(view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"], "true");
    for r in view["rules"].as_array().unwrap() {
        assert_eq!(strings(&r["verbs"]), ["get", "list", "watch"], "view: {r}");
    }
}

#[test]
fn rbac_with_watch_namespaces() {
    let Some(helm) = helm_or_skip() else { return };
    let objs = render(&helm, &["watchNamespaces={a,b}"]);
    check_rbac(&objs);
    // Cluster-wide, only what is cluster-scoped: the TokenReview bindings.
    let resources = cluster_role_resources(&objs);
    assert_eq!(
        resources,
        ["clusterrolebindings", "clusterroles"].map(String::from).into(),
        "with watchNamespaces the operator's ClusterRole grants {resources:?}"
    );
    let bound = operator_roles(&objs);
    for ns in ["a", "b"] {
        assert!(
            bound.contains(&("Role".into(), ns.into(), FULLNAME.into())),
            "no Role bound in {ns}: {bound:?}"
        );
        let role = find_role(&objs, "Role", ns, FULLNAME);
        let granted: BTreeSet<&str> =
            role["rules"].as_array().unwrap().iter().flat_map(|r| strings(&r["resources"])).collect();
        for r in WATCHED {
            assert!(granted.contains(r), "Role {ns}/{FULLNAME} lacks {r}");
        }
    }
}

#[test]
fn admission_policies_follow_admission_enabled() {
    let Some(helm) = helm_or_skip() else { return };
    let want: BTreeSet<String> =
        ["references", "protected-workloads", "protected-tokens", "operator-scope", "approval-decisions"]
            .iter()
            .map(|p| format!("{FULLNAME}-{p}"))
            .collect();
    let objs = render(&helm, &[]);
    let policies: BTreeSet<String> =
        of_kind(&objs, "ValidatingAdmissionPolicy").iter().map(|p| name(p).to_string()).collect();
    assert_eq!(policies, want);
    for p in of_kind(&objs, "ValidatingAdmissionPolicy") {
        assert_eq!(p["apiVersion"], "admissionregistration.k8s.io/v1");
        assert_eq!(p["spec"]["failurePolicy"], "Fail", "{}", name(p));
        // Named versions, so that the API server type-checks the expressions.
        for rule in p["spec"]["matchConstraints"]["resourceRules"].as_array().unwrap() {
            assert!(!strings(&rule["apiVersions"]).contains(&"*"), "{}: {rule}", name(p));
        }
    }
    let bindings: BTreeSet<String> = of_kind(&objs, "ValidatingAdmissionPolicyBinding")
        .iter()
        .map(|b| {
            assert_eq!(strings(&b["spec"]["validationActions"]), ["Deny"], "{}", name(b));
            b["spec"]["policyName"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(bindings, want);

    // Who may decide an approval is admission's to enforce, whatever admission.enabled says: without
    // it, anyone who may patch an McpApproval could approve it.
    let decisions = format!("{FULLNAME}-approval-decisions");
    let off = render(&helm, &["admission.enabled=false"]);
    assert_eq!(
        of_kind(&off, "ValidatingAdmissionPolicy").iter().map(|p| name(p)).collect::<Vec<_>>(),
        [&decisions]
    );
    assert_eq!(
        of_kind(&off, "ValidatingAdmissionPolicyBinding").iter().map(|b| name(b)).collect::<Vec<_>>(),
        [&decisions]
    );
    // The operator whose status writes it admits is the release's.
    let policy =
        of_kind(&objs, "ValidatingAdmissionPolicy").into_iter().find(|p| name(p) == decisions).unwrap();
    assert!(policy.to_string().contains("system:serviceaccount:mcp-guard-system:mcp-guard"), "{policy}");
    // RBAC does not depend on it.
    assert!(of_kind(&off, "ClusterRole").iter().any(|r| name(r) == TOKEN_REVIEW_ROLE));
}

#[test]
fn values_reach_the_policies_and_the_operator_flags() {
    let Some(helm) = helm_or_skip() else { return };
    let objs = render(
        &helm,
        &[
            "images.servers={mcp-guard.local/}",
            "images.executor={registry.example/mcp-guard:}",
            "egress.minPrefixLength.ipv4=20",
            "egress.clusterCIDRs={10.244.0.0/16,10.96.0.0/16}",
            "executor.allowUnauthenticated=true",
            "watchNamespaces={a,b}",
        ],
    );
    let deploy = of_kind(&objs, "Deployment")[0];
    let args = strings(&deploy["spec"]["template"]["spec"]["containers"][0]["args"]);
    for want in [
        "--executor-image=mcp-guard.local/mcp-guard:0.1.0",
        "--allowed-executor-images=registry.example/mcp-guard:",
        "--allowed-server-images=mcp-guard.local/",
        "--min-egress-prefix-ipv4=20",
        "--min-egress-prefix-ipv6=32",
        "--cluster-cidrs=10.244.0.0/16,10.96.0.0/16",
        "--allow-unauthenticated-executors",
        "--watch-namespaces=a,b",
        "--reserved-namespaces=kube-system,kube-public,kube-node-lease",
        "--token-review-cluster-role=mcp-guard-tokenreview",
        "--approvals-cluster-role=mcp-guard-approvals-proxy",
    ] {
        assert!(args.contains(&want), "operator args lack {want}: {args:?}");
    }
    let refs = of_kind(&objs, "ValidatingAdmissionPolicy")
        .into_iter()
        .find(|p| name(p) == format!("{FULLNAME}-references"))
        .unwrap()
        .to_string();
    for want in [r#"[\"mcp-guard.local/\"]"#, r#"[\"registry.example/mcp-guard:\"]"#, "? 20 : 32"] {
        assert!(refs.contains(want), "the references policy lacks {want}");
    }
    // Defaults: empty lists are left out, booleans off.
    let objs = render(&helm, &[]);
    let args = strings(&of_kind(&objs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"])
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    for absent in [
        "--allowed-executor-images",
        "--allowed-server-images",
        "--cluster-cidrs",
        "--watch-namespaces",
        "--allow-unauthenticated-executors",
    ] {
        assert!(!args.iter().any(|a| a.starts_with(absent)), "default args have {absent}: {args:?}");
    }
}

#[test]
fn helm_lint() {
    let Some(helm) = helm_or_skip() else { return };
    for sets in [
        &[][..],
        &["watchNamespaces={a,b}"],
        &["images.servers={mcp-guard.local/}"],
        &["admission.enabled=false"],
        &["rbac.create=false"],
    ] {
        let mut args = vec!["lint", CHART, "--kube-version", KUBE_VERSION];
        for s in sets {
            args.extend(["--set", s]);
        }
        run_helm(&helm, &args);
    }
}
