//! End-to-end tests of MCP Guard on a real Kubernetes cluster, through `kubectl` and KUBECONFIG.
//!
//! Gated: they do nothing unless `MCP_GUARD_E2E=1`. They expect the CRDs and the operator installed
//! (`e2e/run.sh` does both, then runs this) and the images of `e2e/images.sh` loaded in the cluster.
//!
//! ```sh
//! e2e/cluster/up.sh && e2e/images.sh && e2e/run.sh
//! ```
//!
//! One test, run as ordered phases sharing one deployment; each phase is timed and reported PASS/FAIL,
//! and the test fails if any phase failed. A failing run leaves its namespaces for inspection
//! (`kubectl get all,mcps,mgp,netpol,events -n e2e-guard`); the next run deletes them first.
//!
//! The last phase applies `examples/kubernetes/*.yaml` as they are (the documented example, into its own
//! namespace `mcp-guard-example`) and checks what its README promises.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const GUARD: &str = "e2e-guard";
const AGENTS: &str = "e2e-agents";
const OUTSIDE: &str = "e2e-outside";
const POLICY: &str = "agents";
const CHILD: &str = "agents-mcp-guard";
/// The policy's binding-proxy Deployment, Service, ServiceAccount and NetworkPolicy.
const PROXY: &str = "agents-binding-proxy";
/// The audience of an executor's token for its binding proxy.
const PROXY_AUDIENCE: &str = "mcpguard.io/proxy/e2e-guard/agents";
const SERVER: &str = "tools";
const BEARER: &str = "e2e-bearer-6f1c0d9a7b";
const AUDIENCE: &str = "mcpguard.io/e2e-guard/agents";

/// `examples/kubernetes/`: its namespace, objects, and files in the order its README applies them, the
/// agent Job last (once the policy is Ready: the Job's pod finds the executor through the Service
/// environment variables of the Services that exist when it starts).
const EXAMPLE_NS: &str = "mcp-guard-example";
const EXAMPLE_POLICY: &str = "agents";
const EXAMPLE_SERVERS: [&str; 2] = ["remote-tools", "deployed-tools"];
const EXAMPLE_JOB: &str = "example-agent";
const EXAMPLE_FILES: [&str; 6] = [
    "00-namespace.yaml",
    "10-secret.yaml",
    "20-upstream.yaml",
    "30-mcpserver-remote.yaml",
    "31-mcpserver-deployed.yaml",
    "40-policy.yaml",
];
const EXAMPLE_JOB_FILE: &str = "50-agent-job.yaml";

type R<T = ()> = Result<T, String>;
type Phase = (&'static str, fn() -> R);

fn kubectl_bin() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

fn kubectl(args: &[&str]) -> R<String> {
    let out = Command::new(kubectl_bin()).args(args).output().map_err(|e| format!("kubectl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn apply(obj: &Value) -> R {
    let mut child = Command::new(kubectl_bin())
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child.stdin.take().unwrap().write_all(obj.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("apply: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn get_json(args: &[&str]) -> R<Value> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&kubectl(&a)?).map_err(|e| e.to_string())
}

fn exists(args: &[&str]) -> R<bool> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--ignore-not-found", "-o", "name"]);
    Ok(!kubectl(&a)?.trim().is_empty())
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> R<Option<T>>) -> R<T> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e,
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what} {last}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn condition(obj: &Value, ty: &str) -> Option<(String, String, String)> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == ty).map(|c| {
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        (s("status"), s("reason"), s("message"))
    })
}

fn tag() -> String {
    std::env::var("MCP_GUARD_E2E_TAG").unwrap_or_else(|_| {
        let chart = include_str!("../../../charts/mcp-guard/Chart.yaml");
        chart
            .lines()
            .find_map(|l| l.strip_prefix("appVersion:"))
            .map(|v| v.trim().trim_matches('"').to_string())
            .expect("appVersion in Chart.yaml")
    })
}

fn cluster_ip(ns: &str, svc: &str) -> R<String> {
    kubectl(&["-n", ns, "get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}"])
}

/// The executor Deployment's pods (name, config hash), Ready ones only.
fn executor_pods() -> R<Vec<(String, String)>> {
    executor_pods_of(CHILD)
}

/// The Ready pods (name, config hash) of the executor Deployment `child` (`<policy>-mcp-guard`).
fn executor_pods_of(child: &str) -> R<Vec<(String, String)>> {
    let deploy = get_json(&["-n", GUARD, "deployment", child])?;
    let sel: Vec<String> = deploy["spec"]["selector"]["matchLabels"]
        .as_object()
        .ok_or("no selector")?
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let pods = get_json(&["-n", GUARD, "pods", "-l", &sel.join(",")])?;
    Ok(pods["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| condition(p, "Ready").is_some_and(|c| c.0 == "True"))
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let hash = p["metadata"]["annotations"]["mcpguard.io/config-hash"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (name, hash)
        })
        .collect())
}

/// A Ready binding-proxy pod of the policy.
fn proxy_pod() -> R<String> {
    wait_for("a Ready binding-proxy pod", Duration::from_secs(120), || {
        Ok(ready_proxy_pods()?.into_iter().next())
    })
}

/// The policy's binding-proxy pods that are Ready and not being deleted.
fn ready_proxy_pods() -> R<Vec<String>> {
    let selector = format!("app.kubernetes.io/name=mcp-guard-binding-proxy,mcpguard.io/policy={POLICY}");
    let pods = get_json(&["-n", GUARD, "pods", "-l", &selector])?;
    Ok(pods["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| condition(p, "Ready").is_some_and(|c| c.0 == "True"))
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect())
}

fn wait_one_executor(not: Option<&str>) -> R<(String, String)> {
    wait_for("one Ready executor pod", Duration::from_secs(180), || {
        let pods = executor_pods()?;
        let all = get_json(&["-n", GUARD, "pods"])?;
        let terminating = all["items"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|p| p["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(CHILD)))
                    .count()
            })
            .unwrap_or(0);
        Ok((pods.len() == 1 && terminating == 1 && Some(pods[0].0.as_str()) != not).then(|| pods[0].clone()))
    })
}

/// Runs the e2e agent in a pod and returns its JSON line.
fn run_agent(ns: &str, pod: &str, sa: &str, token: bool, code: &str, extra: &[&str]) -> R<Value> {
    run_agent_cmd("execute", ns, pod, sa, token, code, extra)
}

/// Like [`run_agent`], with the agent's command (`execute CODE` or `resume APPROVAL_ID`).
fn run_agent_cmd(
    cmd: &str,
    ns: &str,
    pod: &str,
    sa: &str,
    token: bool,
    code: &str,
    extra: &[&str],
) -> R<Value> {
    let mut args: Vec<String> = vec![code.into()];
    if token {
        args.extend(["--token-file".into(), "/var/run/secrets/e2e/token".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    agent_pod(POLICY, cmd, ns, pod, sa, &args)
}

/// Runs the e2e agent's `cmd` with `args` (after the endpoint) in the pod `ns/pod` as `sa`, against the
/// executor of `policy` (its Service `<policy>-mcp-guard`; the pod's projected token has that policy's
/// audience), and returns its JSON line.
fn agent_pod(policy: &str, cmd: &str, ns: &str, pod: &str, sa: &str, args: &[String]) -> R<Value> {
    let endpoint = format!("http://{}:9090", cluster_ip(GUARD, &format!("{policy}-mcp-guard"))?);
    let audience = format!("mcpguard.io/{GUARD}/{policy}");
    let args: Vec<String> = [cmd.to_string(), endpoint].into_iter().chain(args.iter().cloned()).collect();
    let _ = kubectl(&["-n", ns, "delete", "pod", pod, "--ignore-not-found", "--wait=true"]);
    apply(&json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns, "labels": {"app": "e2e-agent"}},
        "spec": {
            "restartPolicy": "Never", "serviceAccountName": sa, "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "containers": [{"name": "agent", "image": format!("mcp-guard.local/e2e-agent:{}", tag()), "args": args,
                            "volumeMounts": [{"name": "tok", "mountPath": "/var/run/secrets/e2e", "readOnly": true}]}],
            "volumes": [{"name": "tok", "projected": {"sources": [{"serviceAccountToken":
                {"audience": audience, "path": "token", "expirationSeconds": 3600}}]}}]
        }
    }))?;
    wait_for(&format!("agent pod {ns}/{pod} to finish"), Duration::from_secs(150), || {
        let p = get_json(&["-n", ns, "pod", pod])?;
        let phase = p["status"]["phase"].as_str().unwrap_or_default();
        Ok((phase == "Succeeded" || phase == "Failed").then_some(()))
    })?;
    let log = kubectl(&["-n", ns, "logs", pod])?;
    let _ = kubectl(&["-n", ns, "delete", "pod", pod, "--wait=false"]);
    let line =
        log.lines().rev().find(|l| l.starts_with('{')).ok_or(format!("no JSON in agent log: {log}"))?;
    serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))
}

/// Waits until the ephemeral container `name` of `pod` has terminated.
fn wait_ephemeral(pod: &str, name: &str) -> R {
    wait_for(&format!("ephemeral container {name}"), Duration::from_secs(90), || {
        let p = get_json(&["-n", GUARD, "pod", pod])?;
        let done = p["status"]["ephemeralContainerStatuses"]
            .as_array()
            .and_then(|v| v.iter().find(|c| c["name"] == name).map(|c| !c["state"]["terminated"].is_null()));
        Ok(done.unwrap_or(false).then_some(()))
    })
}

/// Runs a shell script in an ephemeral busybox container of `pod` (same network namespace; with
/// `target`, the same process namespace as that container) and returns its output.
fn debug_script(pod: &str, name: &str, target: Option<&str>, script: &str) -> R<String> {
    let image = "--image=mcp-guard.local/busybox:1.35";
    let container = format!("-c={name}");
    let mut args = vec!["-n", GUARD, "debug", pod, image, &container, "--profile=general"];
    let t;
    if let Some(target) = target {
        t = format!("--target={target}");
        args.push(&t);
    }
    args.extend(["--", "sh", "-c", script]);
    kubectl(&args)?;
    wait_ephemeral(pod, name)?;
    kubectl(&["-n", GUARD, "logs", pod, "-c", name])
}

fn ok_outcome(v: &Value) -> R<&str> {
    if v["status"] != "ok" {
        return Err(format!("expected an outcome, got {v}"));
    }
    Ok(v["outcome"].as_str().unwrap_or_default())
}

fn operator_scale(replicas: u32) -> R {
    let ns = std::env::var("MCP_GUARD_E2E_OPERATOR_NS").unwrap_or_else(|_| "mcp-guard-system".into());
    let selector = "app.kubernetes.io/name=mcp-guard-operator";
    let pods = |output: &str| kubectl(&["-n", &ns, "get", "pods", "-l", selector, "-o", output]);
    kubectl(&["-n", &ns, "scale", "deployment", "-l", selector, &format!("--replicas={replicas}")])?;
    if replicas == 0 {
        wait_for("operator scaled to 0", Duration::from_secs(60), || {
            Ok(pods("name")?.trim().is_empty().then_some(()))
        })
    } else {
        wait_for("operator Ready", Duration::from_secs(120), || {
            let ready = pods("jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}")?;
            Ok(ready.contains("True").then_some(()))
        })
    }
}

// ---------------------------------------------------------------------------------------------------

fn setup() -> R {
    for ns in [GUARD, AGENTS, OUTSIDE] {
        if exists(&["namespace", ns])? {
            // A policy's finalizer is removed by the operator, so delete policies first.
            let _ =
                kubectl(&["-n", ns, "delete", "mcpguardpolicies", "--all", "--wait=true", "--timeout=60s"]);
            kubectl(&["delete", "namespace", ns, "--wait=true", "--timeout=120s"])?;
        }
    }
    for ns in [GUARD, AGENTS, OUTSIDE] {
        apply(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"mcpguard.io/test": "e2e"}}}),
        )?;
    }
    for (ns, sa) in [(AGENTS, "agent"), (AGENTS, "intruder"), (OUTSIDE, "agent")] {
        apply(
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}),
        )?;
    }
    apply(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tools-key", "namespace": GUARD},
                  "stringData": {"bearer": BEARER}}),
    )?;
    apply(&json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": SERVER, "namespace": GUARD},
        "spec": {
            "deploy": {
                "image": format!("mcp-guard.local/mcp-test-server:{}", tag()),
                // The server demands the Secret as its bearer token (env from the Secret, expanded by the kubelet).
                "args": ["http", "--listen", "0.0.0.0:8080", "--path", "/mcp", "--require-bearer", "$(BEARER)"],
                "env": [{"name": "BEARER", "valueFrom": {"secretKeyRef": {"name": "tools-key", "key": "bearer"}}}]
            },
            "headers": [{"name": "Authorization", "prefix": "Bearer ", "secretKeyRef": {"name": "tools-key", "key": "bearer"}}]
        }
    }))?;
    apply(&json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": POLICY, "namespace": GUARD},
        "spec": {
            "servers": [{"name": SERVER}],
            "callers": {"serviceAccounts": [{"namespace": AGENTS, "name": "agent"}]},
            "limits": {"toolCalls": 10},
            // MCP_GUARD_E2E_EXECUTOR_IMAGE: try another mcp-guard image without reinstalling the operator.
            "executor": std::env::var("MCP_GUARD_E2E_EXECUTOR_IMAGE").ok().map(|i| json!({"image": i})).unwrap_or(json!({}))
        }
    }))?;
    // An in-cluster HTTP server no policy binds.
    apply(&json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unbound", "namespace": GUARD, "labels": {"app": "unbound"}},
        "spec": {"containers": [{"name": "httpd", "image": "mcp-guard.local/busybox:1.35", "command": ["/bin/busybox", "sh", "-c",
            "mkdir -p /tmp/www && echo hello-unbound > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]}]}
    }))?;
    apply(
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "unbound", "namespace": GUARD},
                  "spec": {"selector": {"app": "unbound"}, "ports": [{"port": 8080}]}}),
    )?;
    wait_for("McpGuardPolicy Ready=True", Duration::from_secs(240), || {
        let p = get_json(&["-n", GUARD, "mcpguardpolicy", POLICY])?;
        match condition(&p, "Ready") {
            Some((s, _, _)) if s == "True" => Ok(Some(())),
            other => Err(format!("(Ready: {other:?})")),
        }
    })?;
    wait_one_executor(None)?;
    kubectl(&["-n", GUARD, "wait", "--for=condition=Ready", "pod/unbound", "--timeout=60s"])?;
    Ok(())
}

fn server_status_lists_discovered_tools() -> R {
    let s = wait_for("McpServer Discovered=True", Duration::from_secs(120), || {
        let s = get_json(&["-n", GUARD, "mcpserver", SERVER])?;
        match condition(&s, "Discovered") {
            Some((st, reason, msg)) if st == "True" && reason == "Handshake" => {
                if !msg.contains(POLICY) {
                    return Err(format!("Discovered does not name the policy: {msg}"));
                }
                Ok(Some(s))
            }
            other => Err(format!("(Discovered: {other:?})")),
        }
    })?;
    let st = &s["status"];
    let tools: Vec<&str> =
        st["tools"].as_array().ok_or("no status.tools")?.iter().filter_map(|t| t["name"].as_str()).collect();
    for want in ["add", "echo", "slow"] {
        if !tools.contains(&want) {
            return Err(format!("status.tools lacks {want}: {tools:?}"));
        }
    }
    let mut sorted = tools.clone();
    sorted.sort();
    if sorted != tools {
        return Err(format!("status.tools is not sorted: {tools:?}"));
    }
    if st["toolCount"].as_u64() != Some(tools.len() as u64) {
        return Err(format!("toolCount {} != {}", st["toolCount"], tools.len()));
    }
    if st["serverInfo"]["name"] != "mcp-test-server"
        || st["serverInfo"]["version"].as_str().is_none_or(str::is_empty)
    {
        return Err(format!("serverInfo: {}", st["serverInfo"]));
    }
    if condition(&s, "Ready").map(|c| c.0) != Some("True".into()) {
        return Err("discovery must not change Ready".into());
    }
    let col = kubectl(&[
        "-n",
        GUARD,
        "get",
        "mcps",
        SERVER,
        "--no-headers",
        "-o",
        "custom-columns=T:.status.toolCount",
    ])?;
    if col.trim() != tools.len().to_string() {
        return Err(format!("Tools column shows {col:?}"));
    }
    // The operator is a discovery caller only: never among those who may execute. Callers travel in the
    // executor's config file (one identity per entry), not on its command line.
    let callers = rendered_callers()?;
    let discovery = callers.1.first().cloned().ok_or(format!("no discovery caller in {callers:?}"))?;
    if callers.0.iter().any(|c| discovery.starts_with(c.trim_end_matches('*'))) {
        return Err(format!("the operator ({discovery}) may execute code: {callers:?}"));
    }
    let dep = get_json(&["-n", GUARD, "deployment", CHILD])?;
    let args = dep["spec"]["template"]["spec"]["containers"].to_string();
    if args.contains("callers") {
        return Err(format!("callers on a command line: {args}"));
    }
    println!("   {} tools {tools:?} from {} (discovery caller {discovery})", tools.len(), st["serverInfo"]);
    Ok(())
}

const TWO_CALLS: &str = "const r = await mcp.tools.add({a: 2, b: 3}); const e = await mcp.tools.echo({text: 'hi'}); return {r, e};";

fn allowed_agent_calls_the_tool() -> R {
    let v = run_agent(AGENTS, "agent-ok", "agent", true, TWO_CALLS, &[])?;
    let detail = v["detail"].as_str().unwrap_or_default();
    if ok_outcome(&v)? != "completed"
        || !detail.contains('5')
        || !detail.contains("hi")
        || v["toolCalls"] != 2
    {
        return Err(format!("unexpected outcome: {v}"));
    }
    println!("   agent got: {detail} (connected after {} attempt(s))", v["connectAttempts"]);
    Ok(())
}

/// The policy of the V8 phase: `limits.engine: v8`, binding the same test server.
const V8_POLICY: &str = "v8";

/// A policy with `limits.engine: v8` gets an executor of its own whose executions run in confined Deno
/// processes (the image's `/usr/local/lib/mcp-guard/deno`): a tool call and a computation, V8's own
/// error message (QuickJS words it differently, so the engine is not silently the default), the CPU
/// limit on an endless loop, and none of the Deno runtime's globals in reach of the code.
fn v8_engine_runs_the_code() -> R {
    let child = format!("{V8_POLICY}-mcp-guard");
    apply(&json!({
        "apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": V8_POLICY, "namespace": GUARD},
        "spec": {
            "servers": [{"name": SERVER}],
            "callers": {"serviceAccounts": [{"namespace": AGENTS, "name": "agent"}]},
            "limits": {"engine": "v8"},
            "executor": std::env::var("MCP_GUARD_E2E_EXECUTOR_IMAGE").ok().map(|i| json!({"image": i})).unwrap_or(json!({}))
        }
    }))?;
    let result = (|| -> R {
        wait_for("the V8 policy Ready=True", Duration::from_secs(120), || {
            let p = get_json(&["-n", GUARD, "mcpguardpolicy", V8_POLICY])?;
            match condition(&p, "Ready") {
                Some((s, _, _)) if s == "True" => Ok(Some(())),
                other => Err(format!("(Ready: {other:?})")),
            }
        })?;
        let (pod, _) = wait_for("a Ready V8 executor pod", Duration::from_secs(120), || {
            Ok(executor_pods_of(&child)?.into_iter().next())
        })?;
        let rendered = get_json(&["-n", GUARD, "configmap", &child])?;
        let config: Value =
            serde_saphyr::from_str(rendered["data"]["config.yaml"].as_str().unwrap_or_default())
                .map_err(|e| format!("the V8 executor's config: {e}"))?;
        if config["limits"]["engine"] != "v8" {
            return Err(format!("the executor's config does not say engine v8: {}", config["limits"]));
        }
        let run = |name: &str, code: &str| {
            let args = [code.to_string(), "--token-file".into(), "/var/run/secrets/e2e/token".into()];
            agent_pod(V8_POLICY, "execute", AGENTS, name, "agent", &args)
        };

        let code = "const r = await mcp.tools.add({a: 20, b: 22});\n\
                    const echoed = await mcp.tools.echo({text: 'through V8'});\n\
                    let h = 0;\n\
                    for (let i = 0; i < 100000; i++) h = (h * 31 + i) % 1000003;\n\
                    let engine;\n\
                    try { null.x; } catch (e) { engine = e.message; }\n\
                    return {sum: r.sum, echoed, h, engine};";
        let v = run("agent-v8-tools", code)?;
        if ok_outcome(&v)? != "completed" || v["toolCalls"] != 2 {
            return Err(format!("the tool calls through V8: {v}"));
        }
        let got: Value = serde_json::from_str(v["detail"].as_str().unwrap_or_default())
            .map_err(|e| format!("the result is not JSON ({e}): {v}"))?;
        let h = (0..100_000u64).fold(0, |h, i| (h * 31 + i) % 1_000_003);
        let want = json!({"sum": 42, "echoed": "through V8", "h": h,
                          "engine": "Cannot read properties of null (reading 'x')"});
        if got != want {
            return Err(format!(
                "the V8 execution returned {got}, expected {want} (QuickJS would word the error \
                 \"cannot read property 'x' of null\")"
            ));
        }
        println!("   {pod}: tools and computation through V8: {got}");

        let v = run("agent-v8-loop", "while (true) {}")?;
        let detail = v["detail"].as_str().unwrap_or_default();
        if ok_outcome(&v)? != "limit_exceeded" || !detail.starts_with("cpu_time") {
            return Err(format!("an endless loop under V8 should exceed cpu_time: {v}"));
        }
        println!("   endless loop: {detail}");

        // The names are built at run time: the validator refuses `Deno` and `process` written out (and
        // the global object as a value), before any engine runs.
        let code = "const runtime = ['De' + 'no', 'fetch', 'WebSocket', 'Worker', 'navigator', 'pro' + 'cess', \
                    'require', 'XMLHttpRequest', 'close'];\n\
                    const language = ['JSON', 'Math', 'Promise', 'Intl'];\n\
                    const seen = (names) => names.filter((n) => typeof globalThis[n] !== 'undefined');\n\
                    return {runtime: seen(runtime), language: seen(language)};";
        let v = run("agent-v8-globals", code)?;
        let got: Value = serde_json::from_str(v["detail"].as_str().unwrap_or_default())
            .map_err(|e| format!("the result is not JSON ({e}): {v}"))?;
        // The control: the same probe sees the language's globals.
        let want = json!({"runtime": [], "language": ["JSON", "Math", "Promise", "Intl"]});
        if ok_outcome(&v)? != "completed" || got != want {
            return Err(format!("the Deno runtime's globals under V8: expected {want}, got {v}"));
        }
        println!("   globals of the Deno runtime in reach: {}", got["runtime"]);
        Ok(())
    })();
    match result {
        Ok(()) => {
            // Its executor and binding proxy are not needed by the later phases.
            kubectl(&["-n", GUARD, "delete", "mcpguardpolicy", V8_POLICY, "--wait=false"])?;
            Ok(())
        }
        Err(e) => {
            let logs = kubectl(&["-n", GUARD, "logs", &format!("deployment/{child}"), "--tail=30"])
                .unwrap_or_else(|e| e);
            Err(format!("{e}\n   the V8 executor's log:\n{logs}"))
        }
    }
}

fn auth_refuses_bad_callers() -> R {
    let v = run_agent(AGENTS, "agent-notoken", "agent", false, "return 1", &[])?;
    if v["code"] != "Unauthenticated" {
        return Err(format!("no token: expected Unauthenticated, got {v}"));
    }
    let v = run_agent(AGENTS, "agent-intruder", "intruder", true, "return 1", &[])?;
    if v["code"] != "PermissionDenied" {
        return Err(format!("service account not allowed: expected PermissionDenied, got {v}"));
    }
    Ok(())
}

fn disallowed_namespace_is_refused_by_the_network() -> R {
    let v = run_agent(
        OUTSIDE,
        "agent-outside",
        "agent",
        true,
        "return 1",
        &["--timeout-secs", "8", "--connect-retry-secs", "8"],
    )?;
    let code = v["code"].as_str().unwrap_or_default();
    // Reaching the executor would give PermissionDenied (valid token, caller not allowed).
    if !["connect", "timeout", "Unavailable", "DeadlineExceeded", "Cancelled"].contains(&code) {
        return Err(format!("expected a network refusal, got {v}"));
    }
    println!("   outside namespace: {code}");
    Ok(())
}

fn executor_container_holds_no_credential() -> R {
    let (pod, _) = wait_one_executor(None)?;
    let p = get_json(&["-n", GUARD, "pod", &pod])?;
    let spec = &p["spec"];
    let containers = spec["containers"].as_array().ok_or("no containers")?;
    if containers.len() != 1 || containers[0]["name"] != "executor" {
        return Err(format!(
            "the executor pod should run the executor container only: {}",
            spec["containers"]
        ));
    }
    let executor = &containers[0];
    if !executor["env"].is_null() || !executor["envFrom"].is_null() {
        return Err(format!("executor has env: {}", executor["env"]));
    }
    // No Secret volume at all in the pod, and no API-server token: its one token is for its proxy.
    for v in spec["volumes"].as_array().cloned().unwrap_or_default() {
        if !v["secret"].is_null() || v.to_string().contains("kube-root-ca") {
            return Err(format!("the executor pod has a Secret or API-access volume: {v}"));
        }
        for source in v["projected"]["sources"].as_array().cloned().unwrap_or_default() {
            let token = &source["serviceAccountToken"];
            if !token.is_null() && token["audience"] != PROXY_AUDIENCE {
                return Err(format!("the executor pod has a token for another audience: {source}"));
            }
        }
    }
    if spec["automountServiceAccountToken"] != false {
        return Err("the executor pod must not automount an API-server token".into());
    }
    // The control: the binding-proxy pod mounts the Secret.
    let proxy = proxy_pod()?;
    let pp = get_json(&["-n", GUARD, "pod", &proxy])?;
    let proxy_secrets =
        pp["spec"]["volumes"].as_array().is_some_and(|v| v.iter().any(|v| !v["secret"].is_null()));
    if !proxy_secrets {
        return Err("control failed: the binding-proxy pod mounts no Secret volume".into());
    }
    // Inside the running containers: an ephemeral container in each one's process namespace looks at
    // PID 1's environment and root filesystem.
    let script = format!(
        "echo uid=$(id -u); echo cmd=$(tr '\\0' ' ' < /proc/1/cmdline); \
         if env=$(tr '\\0' '\\n' < /proc/1/environ); then echo environ=readable; \
         echo \"envcount=$(printf '%s' \"$env\" | grep -c .)\"; \
         printf '%s\\n' \"$env\" | grep -q '{BEARER}' && echo ENV-HAS-SECRET; \
         echo \"envnames: $(printf '%s\\n' \"$env\" | cut -d= -f1 | tr '\\n' ' ')\"; \
         printf '%s\\n' \"$env\" | cut -d= -f1 | grep -iE 'token|secret|passw|bearer|key|auth|cred' | sed 's/^/CREDENTIAL-LIKE-ENV: /'; \
         else echo environ=unreadable; fi; \
         if ls /proc/1/root/ >/dev/null 2>&1; then echo root=readable; \
           ls -R /proc/1/root/var/run/secrets 2>/dev/null | sed 's/^/secrets: /'; \
           grep -rl '{BEARER}' /proc/1/root/var/run /proc/1/root/etc /proc/1/root/tmp /proc/1/root/run 2>/dev/null | sed 's/^/FILE-HAS-SECRET: /'; \
         else echo root=unreadable; fi"
    );
    let exec_out = debug_script(&pod, "inspect-executor", Some("executor"), &script)?;
    let proxy_out = debug_script(&proxy, "inspect-proxy", Some("binding-proxy"), &script)?;
    println!(
        "   executor container:\n{}",
        exec_out.lines().map(|l| format!("     {l}")).collect::<Vec<_>>().join("\n")
    );
    println!(
        "   binding-proxy pod (control):\n{}",
        proxy_out.lines().map(|l| format!("     {l}")).collect::<Vec<_>>().join("\n")
    );
    if !exec_out.contains("cmd=/mcp-guard serve") {
        return Err("the ephemeral container did not see the executor's process".into());
    }
    // Not vacuous: the look must have read the executor's environment, and it is empty (the executor
    // re-executes itself with no environment before it takes any input).
    if !exec_out.contains("environ=readable") {
        return Err(format!("could not read the executor's environment:\n{exec_out}"));
    }
    if !exec_out.contains("envcount=0") {
        return Err(format!("the executor's environment is not empty:\n{exec_out}"));
    }
    if exec_out.contains("ENV-HAS-SECRET") || exec_out.contains("FILE-HAS-SECRET") {
        return Err("the executor container holds the Secret".into());
    }
    if exec_out.contains("CREDENTIAL-LIKE-ENV") {
        return Err(format!("the executor's environment has a credential-like variable:\n{exec_out}"));
    }
    if !proxy_out.contains("cmd=/mcp-guard proxy") {
        return Err("the ephemeral container did not see the binding proxy's process".into());
    }
    // The control: the same look finds the Secret in the binding-proxy pod, when readable.
    if proxy_out.contains("root=readable") && !proxy_out.contains("FILE-HAS-SECRET") {
        return Err("control failed: the Secret was not found in the binding-proxy container either".into());
    }
    Ok(())
}

/// Targets of the network probes.
struct Targets {
    unbound: String,
    bound: String,
    api: String,
    dns: String,
    proxy: String,
}

fn targets() -> R<Targets> {
    Ok(Targets {
        unbound: cluster_ip(GUARD, "unbound")?,
        bound: cluster_ip(GUARD, &format!("{SERVER}-mcp-server"))?,
        api: cluster_ip("default", "kubernetes")?,
        dns: cluster_ip("kube-system", "kube-dns")?,
        proxy: cluster_ip(GUARD, PROXY)?,
    })
}

type Probes = std::collections::BTreeMap<String, String>;

/// A shell script that prints `<label>=open|blocked` for each TCP target (busybox `nc -w 3`: a connect
/// that does not complete in 3 s ends with status 1; a connected `nc` is stopped by `timeout`), and
/// `dns-udp=resolved|failed` for lookups of a name carrying `marker` (CoreDNS logs each query it gets)
/// and of the API server's Service name (resolved: an answer line with its cluster IP, not the server's
/// own `Address:` line, which names the resolver).
fn net_script(t: &Targets, marker: &str) -> String {
    let tcp = |label: &str, ip: &str, port: u16| {
        format!(
            "timeout 5 nc -w 3 {ip} {port} </dev/null >/dev/null 2>&1; rc=$?; \
             if [ $rc = 1 ]; then echo {label}=blocked; else echo {label}=open; fi; "
        )
    };
    [
        tcp("unbound", &t.unbound, 8080),
        tcp("bound-server", &t.bound, 8080),
        tcp("api-server", &t.api, 443),
        tcp("dns-tcp", &t.dns, 53),
        tcp("proxy", &t.proxy, 9443),
        format!(
            "timeout 8 nslookup {marker}.e2e-guard.svc.cluster.local {dns} >/dev/null 2>&1; \
             if timeout 8 nslookup kubernetes.default.svc.cluster.local {dns} 2>&1 | grep -qE '^Address:[[:space:]]+{api}$'; \
             then echo dns-udp=resolved; else echo dns-udp=failed; fi; ",
            dns = t.dns,
            api = t.api
        ),
    ]
    .concat()
}

fn parse_probes(out: &str) -> Probes {
    out.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Whether CoreDNS logged a query for the name [`net_script`] looks up with `marker` (the whole name:
/// one marker may be a prefix of another).
fn coredns_saw(marker: &str) -> R<bool> {
    let log = kubectl(&["-n", "kube-system", "logs", "deployment/coredns", "--since=15m"])?;
    Ok(log.contains(&format!("{marker}.e2e-guard.svc.cluster.local")))
}

/// The binding proxy's answers to ListTools from inside the executor pod (an ephemeral e2e-agent
/// container, same network namespace), once per labelled token (`None`: no `authorization`).
fn proxy_probes(pod: &str, name: &str, t: &Targets, tokens: &[(&str, Option<&str>)]) -> R<Value> {
    let image = format!("--image=mcp-guard.local/e2e-agent:{}", tag());
    let container = format!("-c={name}");
    let url = format!("http://{}:9443", t.proxy);
    let mut args: Vec<String> = [
        "-n",
        GUARD,
        "debug",
        pod,
        &image,
        &container,
        "--profile=general",
        "--",
        "/e2e-agent",
        "proxy-probe",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (label, token) in tokens {
        args.push(match token {
            Some(tok) => format!("{label}={tok}"),
            None => label.to_string(),
        });
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kubectl(&args)?;
    wait_ephemeral(pod, name)?;
    let log = kubectl(&["-n", GUARD, "logs", pod, "-c", name])?;
    let line =
        log.lines().rev().find(|l| l.starts_with('{')).ok_or(format!("no JSON from the probe: {log}"))?;
    let v: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
    Ok(v["results"].clone())
}

fn create_token(sa: &str, audience: Option<&str>) -> R<String> {
    let mut args = vec!["-n", GUARD, "create", "token", sa, "--duration=10m"];
    let a;
    if let Some(aud) = audience {
        a = format!("--audience={aud}");
        args.push(&a);
    }
    Ok(kubectl(&args)?.trim().to_string())
}

/// Runs the network probes from `pod` until `ok` accepts them (NetworkPolicy changes apply
/// asynchronously), at most 8 times.
fn net_until(pod: &str, name: &str, t: &Targets, marker: &str, ok: impl Fn(&Probes) -> bool) -> R<Probes> {
    let mut got = Probes::new();
    for i in 0..8 {
        if i > 0 {
            std::thread::sleep(Duration::from_secs(3));
        }
        got = parse_probes(&debug_script(pod, &format!("{name}-{i}"), None, &net_script(t, marker))?);
        if ok(&got) {
            return Ok(got);
        }
    }
    Err(format!("{name}: unexpected probes: {got:?}"))
}

fn is(m: &Probes, keys: &[&str], value: &str) -> bool {
    keys.iter().all(|k| m.get(*k).map(String::as_str) == Some(value))
}

const CLOSED: [&str; 4] = ["unbound", "bound-server", "api-server", "dns-tcp"];

fn executor_pod_has_no_egress() -> R {
    let (pod, _) = wait_one_executor(None)?;
    let t = targets()?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let marker = format!("exfil{stamp}");
    let blocked =
        |m: &Probes| is(m, &CLOSED, "blocked") && is(m, &["dns-udp"], "failed") && is(m, &["proxy"], "open");
    let got = net_until(&pod, "net-executor", &t, &marker, blocked)?;
    println!("   from the executor pod: {got:?}");
    // From the binding-proxy pod the same lookups work, and CoreDNS logs the marker (so the check of
    // the executor's marker below can see a query when one arrives).
    let proxy = proxy_pod()?;
    let control_marker = format!("{marker}proxy");
    let out = parse_probes(&debug_script(&proxy, "net-proxy", None, &net_script(&t, &control_marker))?);
    println!("   from the binding-proxy pod (control): {out:?}");
    if !is(&out, &["dns-udp"], "resolved") || !is(&out, &["api-server", "dns-tcp"], "open") {
        return Err(format!(
            "control failed: the binding-proxy pod cannot resolve names or reach the API server: {out:?}"
        ));
    }
    wait_for("CoreDNS logs the binding proxy's marker query", Duration::from_secs(30), || {
        Ok(coredns_saw(&control_marker)?.then_some(()))
    })?;
    if coredns_saw(&marker)? {
        return Err(format!("CoreDNS logged the executor pod's query for {marker}"));
    }
    // The binding proxy is reachable from the executor pod, and admits only the executor's own token.
    apply(
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "plain", "namespace": GUARD}}),
    )?;
    let right = create_token(CHILD, Some(PROXY_AUDIENCE))?;
    let api_audience = create_token(CHILD, None)?;
    let other_policy = create_token(CHILD, Some(&format!("mcpguard.io/proxy/{GUARD}/other")))?;
    let other_account = create_token("plain", Some(PROXY_AUDIENCE))?;
    let results = proxy_probes(
        &pod,
        "proxy-probe",
        &t,
        &[
            ("none", None),
            ("api-audience", Some(&api_audience)),
            ("other-policy-audience", Some(&other_policy)),
            ("other-account", Some(&other_account)),
            ("executor", Some(&right)),
        ],
    )?;
    println!("   the binding proxy from the executor pod: {results}");
    for (label, code) in [
        ("none", "Unauthenticated"),
        ("api-audience", "Unauthenticated"),
        ("other-policy-audience", "Unauthenticated"),
        ("other-account", "PermissionDenied"),
        ("executor", "Ok"),
    ] {
        let got = results[label].as_str().unwrap_or_default();
        if !got.eq_ignore_ascii_case(code) {
            return Err(format!("binding proxy probe {label}: expected {code}, got {results}"));
        }
    }

    // The control: without the executor NetworkPolicy (the operator is stopped so it does not restore
    // it) the same probes reach their targets.
    operator_scale(0)?;
    let result = (|| -> R {
        kubectl(&["-n", GUARD, "delete", "networkpolicy", CHILD, "--wait=true"])?;
        let open_marker = format!("{marker}open");
        // The deployed server stays closed: its own NetworkPolicy admits binding-proxy pods only (the
        // second wall, on the server's side).
        let got = net_until(&pod, "net-open", &t, &open_marker, |m| {
            is(m, &["unbound", "api-server", "dns-tcp"], "open")
                && is(m, &["dns-udp"], "resolved")
                && is(m, &["bound-server"], "blocked")
        })?;
        println!("   without the NetworkPolicy: {got:?}");
        // The second layer: with the network open, the pod of the namespace the policy does not allow
        // reaches the executor and is refused by authentication.
        let v = run_agent(
            OUTSIDE,
            "agent-outside-open",
            "agent",
            true,
            "return 1",
            &["--timeout-secs", "8", "--connect-retry-secs", "15"],
        )?;
        if v["code"] != "PermissionDenied" {
            return Err(format!(
                "without the NetworkPolicy, the outside namespace's agent should get PermissionDenied: {v}"
            ));
        }
        println!("   without the NetworkPolicy, the outside agent: {}", v["code"]);
        Ok(())
    })();
    operator_scale(1)?;
    result?;
    wait_for("the operator restores the NetworkPolicy", Duration::from_secs(120), || {
        Ok(exists(&["-n", GUARD, "networkpolicy", CHILD])?.then_some(()))
    })?;
    let got = net_until(&pod, "net-restored", &t, &format!("{marker}again"), blocked)?;
    println!("   policy restored by the operator: {got:?}");
    Ok(())
}

/// The deployed server's gate, from inside a binding-proxy pod (whose labels the server's NetworkPolicy
/// admits): only a token of the server's own audience from a binding-proxy account passes (not an
/// executor's); the server's own port is closed to other pods. Tokens are made with `kubectl create
/// token` (the test is cluster-admin); the binding proxy's own token never leaves its container.
fn deployed_server_admits_only_binding_proxies() -> R {
    let pod = proxy_pod()?;
    let svc = cluster_ip(GUARD, &format!("{SERVER}-mcp-server"))?;
    let server_pod = kubectl(&[
        "-n",
        GUARD,
        "get",
        "pods",
        "-l",
        &format!("mcpguard.io/server={SERVER}"),
        "-o",
        "jsonpath={.items[0].status.podIP}",
    ])?;
    let audience = format!("mcpguard.io/server/{GUARD}/{SERVER}");
    let token = create_token;
    let right = token(PROXY, Some(&audience))?;
    let executor_account = token(CHILD, Some(&audience))?;
    let api_audience = token(PROXY, None)?;
    let other_server = token(PROXY, Some(&format!("mcpguard.io/server/{GUARD}/other")))?;
    apply(
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "plain", "namespace": GUARD}}),
    )?;
    let plain = token("plain", Some(&audience))?;
    // Each probe prints `<label>=<status code>`, or `blocked`. Every probe sends the server's own bearer
    // token, so a 401 or 403 can only be the gate's: past the gate the server answers for itself (a GET
    // on its MCP path is not a session: 406).
    let probe = |label: &str, headers: &str, url: &str| {
        format!(
            "out=$(timeout 5 wget -S -O /dev/null {headers} {url} 2>&1); code=$(echo \"$out\" | grep -o 'HTTP/[0-9.]* [0-9]*' | tail -1 | awk '{{print $2}}'); \
             if [ -z \"$code\" ]; then echo {label}=blocked; else echo {label}=$code; fi; "
        )
    };
    let url = format!("http://{svc}:8080/mcp");
    let bearer = format!("--header 'Authorization: Bearer {BEARER}'");
    let id = |t: &str| format!("--header 'x-mcp-guard-identity: {t}' {bearer}");
    let script = [
        probe("none", &bearer, &url),
        probe("api-audience", &id(&api_audience), &url),
        probe("other-server", &id(&other_server), &url),
        probe("plain-account", &id(&plain), &url),
        probe("executor-account", &id(&executor_account), &url),
        probe("right", &id(&right), &url),
        probe("server-port", &id(&right), &format!("http://{server_pod}:8080/mcp")),
    ]
    .concat();
    let out = debug_script(&pod, "gate-probes", None, &script)?;
    let got: Vec<&str> = out.split_whitespace().collect();
    println!("   from the binding-proxy pod: {}", got.join(" "));
    let want = |label: &str, ok: &dyn Fn(&str) -> bool| -> R {
        let v = got.iter().find_map(|l| l.strip_prefix(&format!("{label}="))).unwrap_or("missing");
        if ok(v) { Ok(()) } else { Err(format!("{label}: got `{v}` in: {}", got.join(" "))) }
    };
    want("none", &|v| v == "401")?;
    want("api-audience", &|v| v == "401")?;
    want("other-server", &|v| v == "401")?;
    want("plain-account", &|v| v == "403")?;
    want("executor-account", &|v| v == "403")?;
    want("right", &|v| !["401", "403", "blocked", "missing"].contains(&v))?;
    // The server's own port, even with the right token: closed to other pods.
    want("server-port", &|v| v == "blocked")?;
    Ok(())
}

fn limits_change_rolls_the_pods() -> R {
    let three = "await mcp.tools.echo({text: 'a'}); await mcp.tools.echo({text: 'b'}); await mcp.tools.echo({text: 'c'}); return 'three';";
    let v = run_agent(AGENTS, "agent-three", "agent", true, three, &[])?;
    if ok_outcome(&v)? != "completed" {
        return Err(format!("3 tool calls under a limit of 10 should complete: {v}"));
    }
    let (old_pod, old_hash) = wait_one_executor(None)?;
    kubectl(&[
        "-n",
        GUARD,
        "patch",
        "mcpguardpolicy",
        POLICY,
        "--type=merge",
        "-p",
        r#"{"spec":{"limits":{"toolCalls":2}}}"#,
    ])?;
    let (new_pod, new_hash) = wait_one_executor(Some(&old_pod))?;
    println!("   rolled {old_pod} -> {new_pod} (config-hash {old_hash:.12} -> {new_hash:.12})");
    if new_hash == old_hash {
        return Err("the config hash did not change".into());
    }
    let v = run_agent(AGENTS, "agent-three-again", "agent", true, three, &[])?;
    if ok_outcome(&v)? != "limit_exceeded"
        || !v["detail"].as_str().unwrap_or_default().starts_with("tool_calls")
    {
        return Err(format!("expected limit_exceeded: tool_calls with the new limit of 2: {v}"));
    }
    Ok(())
}

fn killing_an_executor_mid_execution() -> R {
    let (pod, _) = wait_one_executor(None)?;
    let endpoint = format!("http://{}:9090", cluster_ip(GUARD, CHILD)?);
    let agent = "agent-killed";
    let _ = kubectl(&["-n", AGENTS, "delete", "pod", agent, "--ignore-not-found", "--wait=true"]);
    apply(&json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": agent, "namespace": AGENTS},
        "spec": {
            "restartPolicy": "Never", "serviceAccountName": "agent", "automountServiceAccountToken": false,
            "containers": [{"name": "agent", "image": format!("mcp-guard.local/e2e-agent:{}", tag()),
                "args": ["execute", endpoint, "await mcp.tools.slow({ms: 20000}); return 'finished';", "--token-file", "/var/run/secrets/e2e/token", "--timeout-secs", "100"],
                "volumeMounts": [{"name": "tok", "mountPath": "/var/run/secrets/e2e", "readOnly": true}]}],
            "volumes": [{"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"audience": AUDIENCE, "path": "token"}}]}}]
        }
    }))?;
    wait_for("the slow execution to be running", Duration::from_secs(60), || {
        let p = get_json(&["-n", AGENTS, "pod", agent])?;
        Ok((p["status"]["phase"] == "Running").then_some(()))
    })?;
    std::thread::sleep(Duration::from_secs(4));
    let killed_at = Instant::now();
    kubectl(&["-n", GUARD, "delete", "pod", &pod, "--grace-period=0", "--force", "--wait=false"])?;
    wait_for("the agent to get an answer", Duration::from_secs(90), || {
        let p = get_json(&["-n", AGENTS, "pod", agent])?;
        let phase = p["status"]["phase"].as_str().unwrap_or_default();
        Ok((phase == "Succeeded" || phase == "Failed").then_some(()))
    })?;
    let log = kubectl(&["-n", AGENTS, "logs", agent])?;
    let v: Value = serde_json::from_str(log.lines().rev().find(|l| l.starts_with('{')).ok_or(log.clone())?)
        .map_err(|e| e.to_string())?;
    println!("   caller got after {:?}: {v}", killed_at.elapsed());
    // Two clean answers, depending on which container the kill reaches first: the executor's
    // connection drops (a gRPC error), or the binding proxy goes first and the executor, still alive,
    // fails the pending tool call and answers with the outcome (the code's tool call threw). A hang,
    // the agent's own timeout, or a completed execution would be wrong.
    let code = v["code"].as_str().unwrap_or_default();
    let grpc_error = v["status"] == "error" && code != "timeout" && !code.is_empty();
    let proxy_gone = v["status"] == "ok"
        && v["outcome"] == "threw"
        && v["detail"].as_str().unwrap_or_default().contains("binding proxy");
    if !grpc_error && !proxy_gone {
        return Err(format!("the caller did not get a clean error: {v}"));
    }
    let (new_pod, _) = wait_one_executor(Some(&pod))?;
    println!("   the Deployment recovered with {new_pod}");
    let v = run_agent(
        AGENTS,
        "agent-after-kill",
        "agent",
        true,
        "return await mcp.tools.add({a: 20, b: 22});",
        &[],
    )?;
    if ok_outcome(&v)? != "completed" || !v["detail"].as_str().unwrap_or_default().contains("42") {
        return Err(format!("after recovery: {v}"));
    }
    Ok(())
}

/// `(execute, discover)` of the executor's rendered config.
fn rendered_callers() -> R<(Vec<String>, Vec<String>)> {
    let cm = get_json(&["-n", GUARD, "configmap", CHILD])?;
    let yaml = cm["data"]["config.yaml"].as_str().ok_or("no config.yaml")?;
    let config: Value = serde_saphyr::from_str(yaml).map_err(|e| format!("{e}: {yaml}"))?;
    let list = |k: &str| -> Vec<String> {
        config["callers"][k]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    Ok((list("execute"), list("discover")))
}

/// A policy that names no service account admits its own namespace's only. The network is opened to the
/// agents' namespace by a namespace selector (network only), so the agent reaches the executor and is
/// refused by identity, not by the network; naming it again lets it in.
fn empty_service_accounts_admit_only_the_policys_namespace() -> R {
    let (before, _) = wait_one_executor(None)?;
    let set_callers = |callers: Value| {
        let patch = json!({"spec": {"callers": callers}}).to_string();
        kubectl(&["-n", GUARD, "patch", "mcpguardpolicy", POLICY, "--type=merge", "-p", &patch])
    };
    set_callers(json!({"serviceAccounts": [],
                       "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": AGENTS}}}))?;
    let (during, _) = wait_one_executor(Some(&before))?;
    let execute = rendered_callers()?.0;
    if execute != [format!("system:serviceaccount:{GUARD}:*")] {
        return Err(format!("expected the policy's own namespace only, got {execute:?}"));
    }
    let v = run_agent(AGENTS, "agent-by-selector", "agent", true, "return 1", &[])?;
    set_callers(
        json!({"serviceAccounts": [{"namespace": AGENTS, "name": "agent"}], "namespaceSelector": null}),
    )?;
    wait_one_executor(Some(&during))?;
    if v["code"] != "PermissionDenied" {
        return Err(format!("a caller outside the policy's namespace, admitted by the network only: {v}"));
    }
    let again = run_agent(AGENTS, "agent-named-again", "agent", true, "return 1", &[])?;
    if ok_outcome(&again)? != "completed" {
        return Err(format!("the named caller again: {again}"));
    }
    println!("   refused by identity: {}", v["message"]);
    Ok(())
}

const APPROVAL_KEY_SECRET: &str = "agents-approvals-key";
const APPROVER: &str = "system:serviceaccount:e2e-agents:approver";
const AGENT: &str = "system:serviceaccount:e2e-agents:agent";
const INTRUDER: &str = "system:serviceaccount:e2e-agents:intruder";

/// `kubectl mcp-guard ARGS`: the plugin `examples/approvals/kubectl-mcp_guard`, with this suite's
/// kubectl first on its PATH.
fn kubectl_plugin(args: &[&str]) -> R<String> {
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/approvals/kubectl-mcp_guard");
    let kubectl = kubectl_bin();
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = Path::new(&kubectl).parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        path = std::env::join_paths(dirs).map_err(|e| e.to_string())?;
    }
    let out =
        Command::new("sh").arg(&plugin).args(args).env("PATH", path).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("kubectl mcp-guard {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `kubectl patch` of an approval's decision, as `user`, deciding in the name of `by`.
fn decide_as(user: &str, id: &str, verdict: &str, by: &str) -> R<String> {
    let patch = json!({"spec": {"decision": {"verdict": verdict, "by": by, "reason": "e2e"}}}).to_string();
    kubectl_as(user, &["-n", GUARD, "patch", "mcpapproval", id, "--type=merge", "-p", &patch], None)
}

/// The policy's `tools.tally` needs approval; an agent's execution pauses, the API server refuses the
/// requester, a non-approver and a forged name, admits the approver (impersonated, as a person would
/// use kubectl), refuses a second decision; the agent resumes and the approved call runs once.
fn approvals_pause_decide_resume() -> R {
    // The journal key (created once by the user) and an approver; every one of these service accounts
    // may patch approvals (RBAC), so what refuses them is the admission policy.
    let key: String = (0..32).map(|i| format!("{:02x}", (i * 37 + 11) % 251)).collect();
    apply(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": APPROVAL_KEY_SECRET, "namespace": GUARD},
                  "stringData": {"key": key}}),
    )?;
    apply(
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "approver", "namespace": AGENTS}}),
    )?;
    apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "approval-deciders", "namespace": GUARD},
        "rules": [{"apiGroups": ["mcpguard.io"], "resources": ["mcpapprovals"], "verbs": ["get", "list", "patch", "update"]}]}))?;
    let subjects: Vec<Value> = ["approver", "agent", "intruder"]
        .iter()
        .map(|n| json!({"kind": "ServiceAccount", "name": n, "namespace": AGENTS}))
        .collect();
    apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "approval-deciders", "namespace": GUARD},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approval-deciders"},
        "subjects": subjects}))?;
    let before = proxy_pod()?;
    let patch = json!({"spec": {
        "servers": [{"name": SERVER, "tools": {"requireApproval": ["tally"]}}],
        "approvals": {"approvers": {"serviceAccounts": [format!("{AGENTS}/approver")]}, "ttl": "10m",
                      "journalKey": {"secretName": APPROVAL_KEY_SECRET}}
    }})
    .to_string();
    kubectl(&["-n", GUARD, "patch", "mcpguardpolicy", POLICY, "--type=merge", "-p", &patch])?;
    // The binding proxy rolls (new config); the policy is Ready again once it serves.
    wait_for("a new binding-proxy pod and the policy Ready", Duration::from_secs(240), || {
        let p = get_json(&["-n", GUARD, "mcpguardpolicy", POLICY])?;
        let ready = matches!(condition(&p, "Ready"), Some((s, _, _)) if s == "True");
        let serving = ready_proxy_pods()?;
        Ok((ready && serving.len() == 1 && serving[0] != before).then_some(()))
    })?;
    let binding = get_json(&["-n", GUARD, "rolebinding", &format!("{PROXY}-approvals")])?;
    if !binding["subjects"].to_string().contains(PROXY) {
        return Err(format!("the approvals RoleBinding does not name the binding proxy: {binding}"));
    }
    let code = "const s = await mcp.tools.add({a: 1, b: 2});\n\
                const t = await mcp.tools.tally({key: 'e2e-pay'});\n\
                return {sum: s.sum, n: t.n};";
    // Until the executor has the new proxy's tools: right after the proxy rolls, its catalog can be
    // empty for a moment ("unknown tool ... available: none") while the proxy connects the server.
    let v = wait_for("the paused execution", Duration::from_secs(90), || {
        let v = run_agent(AGENTS, "agent-approval", "agent", true, code, &[])?;
        let settling =
            v["status"] != "ok" || v["detail"].as_str().is_some_and(|d| d.contains("available: none"));
        Ok((!settling).then_some(v))
    })?;
    if ok_outcome(&v)? != "approval_required" {
        return Err(format!("expected approval_required, got {v}"));
    }
    let id = v["detail"].as_str().unwrap_or_default().to_string();
    let approval = get_json(&["-n", GUARD, "mcpapproval", &id])?;
    if approval["spec"]["requester"] != AGENT
        || approval["spec"]["calls"][0]["tool"] != "tally"
        || approval["spec"]["calls"][0]["arguments"]["key"] != "e2e-pay"
        || approval["spec"]["summary"] != "tools.tally"
    {
        return Err(format!("unexpected approval: {approval}"));
    }
    let journal = get_json(&["-n", GUARD, "mcpapprovaljournal", &id])?;
    if journal["metadata"]["ownerReferences"][0]["name"] != id.as_str()
        || journal.to_string().contains("e2e-pay")
    {
        return Err(format!("the journal must be owned by its approval and sealed: {journal}"));
    }
    // Not decided: the resume is refused.
    let r = run_agent_cmd("resume", AGENTS, "agent-resume-early", "agent", true, &id, &[])?;
    if r["code"] != "FailedPrecondition" {
        return Err(format!("an undecided resume must be FAILED_PRECONDITION: {r}"));
    }
    // The API server refuses: the requester, someone not listed, and a decision in another's name.
    for (user, by, why) in [
        (AGENT, AGENT, "the requester"),
        (INTRUDER, INTRUDER, "a non-approver"),
        (APPROVER, "someone-else", "a decision in another name"),
    ] {
        match decide_as(user, &id, "Approved", by) {
            Ok(out) => return Err(format!("{why} decided: {out}")),
            Err(e) if e.contains("denied request") || e.contains("ValidatingAdmissionPolicy") => {
                println!("   refused ({why}): {}", e.lines().next().unwrap_or_default());
            }
            Err(e) => return Err(format!("{why}: unexpected error: {e}")),
        }
    }
    // The approver decides with the kubectl plugin of examples/approvals (as a person would, in their
    // own name: it asks the API server who it is).
    let out = kubectl_plugin(&[
        "approve",
        &id,
        "-n",
        GUARD,
        &format!("--as={APPROVER}"),
        "--reason",
        "e2e \"ok\"",
    ])?;
    println!("   kubectl mcp-guard approve: {}", out.trim());
    if decide_as(APPROVER, &id, "Denied", APPROVER).is_ok() {
        return Err("a second decision was admitted".into());
    }
    wait_for("status.phase Approved", Duration::from_secs(60), || {
        let a = get_json(&["-n", GUARD, "mcpapproval", &id])?;
        Ok((a["status"]["phase"] == "Approved"
            && a["status"]["decidedBy"] == APPROVER
            && a["spec"]["decision"]["reason"] == "e2e \"ok\"")
            .then_some(()))
    })?;
    // Another caller cannot resume it; the requester can, once; the approved call ran exactly once.
    let r = run_agent_cmd("resume", AGENTS, "agent-resume-intruder", "intruder", true, &id, &[])?;
    if r["code"] != "PermissionDenied" {
        return Err(format!("another caller's resume must be refused: {r}"));
    }
    let r = run_agent_cmd("resume", AGENTS, "agent-resume", "agent", true, &id, &[])?;
    if ok_outcome(&r)? != "completed" {
        return Err(format!("expected the resumed run to complete: {r}"));
    }
    let result: Value =
        serde_json::from_str(r["detail"].as_str().unwrap_or("null")).map_err(|e| e.to_string())?;
    if result != json!({"sum": 3, "n": 1}) {
        return Err(format!(
            "unexpected resumed result (n counts the upstream's calls of the approved tool): {result}"
        ));
    }
    let r = run_agent_cmd("resume", AGENTS, "agent-resume-again", "agent", true, &id, &[])?;
    if r["code"] != "FailedPrecondition" {
        return Err(format!("a second resume must be refused: {r}"));
    }
    let a = get_json(&["-n", GUARD, "mcpapproval", &id])?;
    if a["status"]["phase"] != "Used" {
        return Err(format!("the approval must be Used: {a}"));
    }
    println!(
        "   approval {id}: paused, refused 3 deciders, approved by {APPROVER}, resumed once -> {result}"
    );
    Ok(())
}

fn deleting_the_policy_removes_its_children() -> R {
    // The TokenReview binding is named from the policy's UID; it must exist before, and go with it.
    let uid = get_json(&["-n", GUARD, "mcpguardpolicy", POLICY])?["metadata"]["uid"]
        .as_str()
        .ok_or("the policy has no uid")?
        .to_string();
    let crb = format!("mcp-guard-tokenreview-{uid}");
    let binding = get_json(&["clusterrolebinding", &crb])?;
    let subjects = binding["subjects"].to_string();
    if binding["roleRef"]["name"].as_str().is_none_or(|r| !r.ends_with("-tokenreview"))
        || !subjects.contains(PROXY)
        || subjects.contains(CHILD)
    {
        return Err(format!("unexpected TokenReview binding: {binding}"));
    }
    kubectl(&["-n", GUARD, "delete", "mcpguardpolicy", POLICY, "--wait=true", "--timeout=90s"])?;
    wait_for("children garbage-collected", Duration::from_secs(120), || {
        for kind in ["configmap", "deployment", "service", "networkpolicy", "serviceaccount"] {
            if exists(&["-n", GUARD, kind, CHILD])? {
                return Err(format!("({kind} {CHILD} still there)"));
            }
        }
        for kind in ["deployment", "service", "networkpolicy", "serviceaccount"] {
            if exists(&["-n", GUARD, kind, PROXY])? {
                return Err(format!("({kind} {PROXY} still there)"));
            }
        }
        if exists(&["clusterrolebinding", &crb])? {
            return Err(format!("(clusterrolebinding {crb} still there)"));
        }
        let pods = kubectl(&["-n", GUARD, "get", "pods", "-o", "name"])?;
        if pods.contains(CHILD) || pods.contains(PROXY) {
            return Err("(executor or binding-proxy pods still there)".into());
        }
        Ok(Some(()))
    })
}

// ---------------------------------------------------------------------------------------------------
// A namespace tenant against the chart's admission policies (templates/admission.yaml).

const TENANT_NS: &str = "e2e-tenant";
const TENANT: &str = "system:serviceaccount:e2e-tenant:tenant";

/// `kubectl --as=<user> <args>` with `obj` on stdin when given: stdout, or stderr as the error.
fn kubectl_as(user: &str, args: &[&str], obj: Option<&Value>) -> R<String> {
    let mut child = Command::new(kubectl_bin())
        .arg(format!("--as={user}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().unwrap();
    if let Some(obj) = obj {
        stdin.write_all(obj.to_string().as_bytes()).map_err(|e| e.to_string())?;
    }
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The operator's command-line flags, from its Deployment: `--name=value` as (name, value).
fn operator_flags() -> R<Vec<(String, String)>> {
    let ns = std::env::var("MCP_GUARD_E2E_OPERATOR_NS").unwrap_or_else(|_| "mcp-guard-system".into());
    let d = get_json(&["-n", &ns, "deployments", "-l", "app.kubernetes.io/name=mcp-guard-operator"])?;
    let args = d["items"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .ok_or(format!("no operator Deployment with args in {ns}"))?;
    Ok(args
        .iter()
        .filter_map(Value::as_str)
        .map(|a| a.split_once('=').map_or((a.to_string(), String::new()), |(k, v)| (k.into(), v.into())))
        .collect())
}

fn tenant_pod(name: &str, labels: Value, service_account: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": TENANT_NS, "labels": labels},
           "spec": {"serviceAccountName": service_account, "automountServiceAccountToken": false,
                    "containers": [{"name": "c", "image": "mcp-guard.local/busybox:1.35", "command": ["sleep", "3600"]}]}})
}

fn tenant_deployment(name: &str, labels: Value, service_account: &str) -> Value {
    let mut template_labels = labels;
    template_labels["app"] = json!(name);
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": TENANT_NS},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": template_labels},
                                 "spec": {"serviceAccountName": service_account, "automountServiceAccountToken": false,
                                          "containers": [{"name": "c", "image": "mcp-guard.local/busybox:1.35"}]}}}})
}

fn remote_server(name: &str, cidrs: &[&str], headers: Value) -> Value {
    let egress: Vec<Value> = cidrs.iter().map(|c| json!({"cidr": c, "ports": [{"port": 443}]})).collect();
    json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": name, "namespace": TENANT_NS},
           "spec": {"url": "https://mcp.example.com/mcp", "egress": egress, "headers": headers}})
}

fn tenant_policy(name: &str, servers: &[&str], executor: Value) -> Value {
    let servers: Vec<Value> = servers.iter().map(|s| json!({"name": s})).collect();
    json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpGuardPolicy", "metadata": {"name": name, "namespace": TENANT_NS},
           "spec": {"servers": servers, "executor": executor}})
}

/// A tenant allowed only to write McpServers, McpGuardPolicies, pods, Deployments and Secrets in its
/// namespace tries to make the operator act beyond that: each try must be refused at admission with a
/// message naming what was wrong, and each control (the same thing done within its rights) accepted, so
/// the policies cannot pass by refusing everything. Controls run as `--dry-run=server` (admission runs as
/// for a real write; nothing is stored, so nothing is reconciled and no pod starts).
fn tenant_cannot_use_the_operator_as_a_deputy() -> R {
    let flags = operator_flags()?;
    let flag = |name: &str| flags.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let executor_image = flag("--executor-image").ok_or("the operator has no --executor-image")?;
    let server_image = format!("mcp-guard.local/mcp-test-server:{}", tag());
    let server_prefixes = flag("--allowed-server-images").unwrap_or_default();
    if !server_prefixes.split(',').any(|p| !p.is_empty() && server_image.starts_with(p)) {
        return Err(format!(
            "the chart allows no server image prefix matching {server_image} (--allowed-server-images={server_prefixes}): \
             install it with --set images.servers={{mcp-guard.local/}} (e2e/run.sh does)"
        ));
    }
    let min_v4: u8 = flag("--min-egress-prefix-ipv4").and_then(|v| v.parse().ok()).unwrap_or(16);
    // The release's full name, which prefixes its roles and admission policies.
    let fullname = flag("--token-review-cluster-role")
        .and_then(|r| r.strip_suffix("-tokenreview").map(String::from))
        .ok_or("the operator has no --token-review-cluster-role=<fullname>-tokenreview")?;
    for p in ["references", "protected-workloads", "protected-tokens", "operator-scope"] {
        if !exists(&["validatingadmissionpolicy", &format!("{fullname}-{p}")])? {
            return Err(format!(
                "no ValidatingAdmissionPolicy {fullname}-{p} (chart value admission.enabled)"
            ));
        }
    }

    if exists(&["namespace", TENANT_NS])? {
        let _ = kubectl(&[
            "-n",
            TENANT_NS,
            "delete",
            "mcpguardpolicies",
            "--all",
            "--wait=true",
            "--timeout=60s",
        ]);
        kubectl(&["delete", "namespace", TENANT_NS, "--wait=true", "--timeout=120s"])?;
    }
    apply(&json!({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": TENANT_NS, "labels": {"mcpguard.io/test": "e2e"}}}))?;
    for sa in ["tenant", "agents-mcp-guard"] {
        apply(
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": TENANT_NS}}),
        )?;
    }
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| json!({"apiGroups": [group], "resources": resources, "verbs": verbs});
    let all = ["create", "get", "list", "update", "patch", "delete"];
    apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
    "metadata": {"name": "tenant", "namespace": TENANT_NS},
    "rules": [
        rule("mcpguard.io", &["mcpservers", "mcpguardpolicies"], &all),
        rule("", &["pods"], &all),
        rule("apps", &["deployments"], &all),
        rule("", &["secrets"], &["create"]),
        rule("", &["serviceaccounts/token"], &["create"]),
        // The controls: one Secret, one ConfigMap and one McpServer the tenant may use.
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["readable"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["readable-settings"], "verbs": ["get"]},
        {"apiGroups": ["mcpguard.io"], "resources": ["mcpservers"], "resourceNames": ["bindable"], "verbs": ["bind"]}
    ]}))?;
    apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "tenant", "namespace": TENANT_NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
        "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": TENANT_NS}]}))?;
    for secret in ["db-token", "readable"] {
        apply(
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": TENANT_NS},
                      "stringData": {"token": format!("{secret}-value")}}),
        )?;
    }
    // The admin's objects: servers, a server using a Secret the tenant cannot read, a policy binding a
    // server the tenant may not bind (no executor pods: replicas 0).
    for s in ["bindable", "other"] {
        apply(&remote_server(s, &["203.0.113.0/24"], json!([])))?;
    }
    apply(&remote_server(
        "admin-server",
        &["203.0.113.0/24"],
        json!([{"name": "Authorization", "secretKeyRef": {"name": "db-token", "key": "token"}}]),
    ))?;
    apply(&tenant_policy("admin-policy", &["other"], json!({"replicas": 0})))?;
    wait_for("the tenant's Role to take effect", Duration::from_secs(30), || {
        let can = kubectl_as(TENANT, &["auth", "can-i", "create", "mcpservers", "-n", TENANT_NS], None);
        Ok(can.is_ok_and(|o| o.trim() == "yes").then_some(()))
    })?;

    let mut failures: Vec<String> = Vec::new();
    // The operator itself holds no Secret verb (RBAC cannot grant "metadata only"), as the API server
    // answers for its ServiceAccount; listing pods (to ask a running executor) is the control.
    let operator_ns =
        std::env::var("MCP_GUARD_E2E_OPERATOR_NS").unwrap_or_else(|_| "mcp-guard-system".into());
    let d =
        get_json(&["-n", &operator_ns, "deployments", "-l", "app.kubernetes.io/name=mcp-guard-operator"])?;
    let account = d["items"][0]["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .ok_or("the operator Deployment names no ServiceAccount")?;
    let operator = format!("system:serviceaccount:{operator_ns}:{account}");
    // `kubectl auth can-i` prints yes/no and exits 1 for no, with nothing on stderr.
    let can = |verb: &str, resource: &str| match kubectl_as(
        &operator,
        &["auth", "can-i", verb, resource, "--all-namespaces"],
        None,
    ) {
        Ok(out) => Ok(out.trim() == "yes"),
        Err(e) if e.is_empty() => Ok(false),
        Err(e) => Err(e),
    };
    for verb in ["get", "list", "watch"] {
        match can(verb, "secrets") {
            Ok(false) => println!("   refused: the operator's account cannot {verb} Secrets"),
            Ok(true) => failures.push(format!("the operator's account can {verb} Secrets")),
            Err(e) => failures.push(format!("kubectl auth can-i {verb} secrets: {e}")),
        }
    }
    match can("list", "pods") {
        Ok(true) => println!("   allowed (control): the operator's account can list pods"),
        other => failures.push(format!("control: the operator's account should list pods: {other:?}")),
    }
    let mut check = |what: &str, result: R<String>, want: Option<&[&str]>| match (result, want) {
        (Ok(_), None) => println!("   accepted (control): {what}"),
        (Err(e), None) => failures.push(format!("{what}: should be accepted: {e}")),
        (Ok(out), Some(_)) => failures.push(format!("{what}: accepted ({})", out.trim())),
        (Err(e), Some(needles)) => {
            let missing: Vec<&&str> = needles.iter().filter(|n| !e.contains(**n)).collect();
            if missing.is_empty() {
                let msg = e.rsplit_once("denied request: ").map_or(e.as_str(), |(_, m)| m);
                println!("   refused: {what}: {msg}");
            } else {
                failures.push(format!("{what}: refused, but the message lacks {missing:?}: {e}"));
            }
        }
    };
    let refuse = |obj: &Value| kubectl_as(TENANT, &["create", "-f", "-"], Some(obj));
    let control = |obj: &Value| kubectl_as(TENANT, &["create", "--dry-run=server", "-f", "-"], Some(obj));
    let vap = |policy: &str| format!("ValidatingAdmissionPolicy '{fullname}-{policy}'");
    let (refs, workloads) = (vap("references"), vap("protected-workloads"));

    // McpServer: Secrets and ConfigMaps the author cannot read.
    let header = |secret: &str| json!([{"name": "Authorization", "prefix": "Bearer ", "secretKeyRef": {"name": secret, "key": "token"}}]);
    check(
        "a header from a Secret the tenant cannot read",
        refuse(&remote_server("steal-header", &["203.0.113.0/24"], header("db-token"))),
        Some(&[&refs, "spec.headers", TENANT, "Secret(s) [db-token]", TENANT_NS]),
    );
    check(
        "a header from a Secret the tenant may get",
        control(&remote_server("own-header", &["203.0.113.0/24"], header("readable"))),
        None,
    );
    let deployed = |name: &str, image: &str, env: Value| {
        json!({"apiVersion": "mcpguard.io/v1alpha1", "kind": "McpServer", "metadata": {"name": name, "namespace": TENANT_NS},
               "spec": {"deploy": {"image": image, "env": env}}})
    };
    let secret_env =
        |s: &str| json!({"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": s, "key": "token"}}});
    let config_env =
        |c: &str| json!({"name": "SETTINGS", "valueFrom": {"configMapKeyRef": {"name": c, "key": "k"}}});
    check(
        "deploy.env from a Secret the tenant cannot read",
        refuse(&deployed(
            "steal-env",
            &server_image,
            json!([secret_env("readable"), secret_env("db-token")]),
        )),
        Some(&[&refs, "spec.deploy.env", TENANT, "Secret(s) [db-token]"]),
    );
    check(
        "deploy.env from a ConfigMap the tenant cannot read",
        refuse(&deployed("steal-config", &server_image, json!([config_env("kube-root-ca.crt")]))),
        Some(&[&refs, "spec.deploy.env", TENANT, "ConfigMap(s) [kube-root-ca.crt]"]),
    );
    check(
        "deploy.env from a Secret and a ConfigMap the tenant may get",
        control(&deployed(
            "own-env",
            &server_image,
            json!([secret_env("readable"), config_env("readable-settings")]),
        )),
        None,
    );
    // McpServer: an image outside images.servers, egress wider than egress.minPrefixLength.
    check(
        "deploy.image outside the chart's images.servers",
        refuse(&deployed("miner", "evil.example/miner:1", json!([]))),
        Some(&[&refs, "spec.deploy.image", "evil.example/miner:1", "images.servers"]),
    );
    for cidr in ["0.0.0.0/0", "10.0.0.0/4"] {
        // Below the CRD's own floor (/8): refused by the schema, before admission.
        check(
            &format!("egress {cidr}"),
            refuse(&remote_server("wide", &[cidr], json!([]))),
            Some(&["spec.egress[0].cidr", "too broad"]),
        );
    }
    if min_v4 > 8 {
        let cidr = format!("10.0.0.0/{}", min_v4 - 1);
        check(
            &format!("egress {cidr} (shorter than egress.minPrefixLength.ipv4 {min_v4})"),
            refuse(&remote_server("wide", &["203.0.113.0/24", &cidr], json!([]))),
            Some(&[&refs, "spec.egress", &cidr, &format!("/{min_v4} for IPv4"), "egress.minPrefixLength"]),
        );
        let cidr = format!("10.0.0.0/{min_v4}");
        check(&format!("egress {cidr}"), control(&remote_server("narrow", &[&cidr], json!([]))), None);
    }
    // McpGuardPolicy: executor image, servers without bind.
    check(
        "executor.image outside the chart's images",
        refuse(&tenant_policy("evil-executor", &["bindable"], json!({"image": "evil.example/x"}))),
        Some(&[&refs, "spec.executor.image", "evil.example/x", "images.executor"]),
    );
    check(
        "executor.image = the chart's executor image",
        control(&tenant_policy("chart-executor", &["bindable"], json!({"image": executor_image}))),
        None,
    );
    check(
        "a policy binding an McpServer the tenant may not bind",
        refuse(&tenant_policy("steal-server", &["bindable", "other"], json!({}))),
        Some(&[&refs, "spec.servers", TENANT, "McpServer(s) [other]", "bind"]),
    );
    check(
        "a policy binding an McpServer the tenant may bind (resourceNames)",
        control(&tenant_policy("own-server", &["bindable"], json!({}))),
        None,
    );
    // Updates of the admin's objects are checked too.
    let patch = |kind: &str, name: &str, p: Value| {
        kubectl_as(
            TENANT,
            &["-n", TENANT_NS, "patch", kind, name, "--type=merge", "-p", &p.to_string()],
            None,
        )
    };
    check(
        "adding the tenant to the callers of the admin's policy",
        patch(
            "mcpguardpolicy",
            "admin-policy",
            json!({"spec": {"callers": {"serviceAccounts": [{"namespace": TENANT_NS, "name": "tenant"}]}}}),
        ),
        Some(&[&refs, "spec.servers", TENANT, "McpServer(s) [other]"]),
    );
    check(
        "pointing the admin's server (its header from db-token) at another URL",
        patch("mcpserver", "admin-server", json!({"spec": {"url": "https://collector.example/mcp"}})),
        Some(&[&refs, "spec.headers", TENANT, "Secret(s) [db-token]"]),
    );
    check(
        "a label on the admin's policy (spec unchanged)",
        patch("mcpguardpolicy", "admin-policy", json!({"metadata": {"labels": {"team": "tenant"}}})),
        None,
    );
    // Pods and Deployments with the labels and service account the operator's objects trust.
    for (i, (what, labels, sa, needle)) in [
        (
            "a pod labelled mcpguard.io/policy",
            json!({"mcpguard.io/policy": "agents"}),
            "default",
            "mcpguard.io/policy=agents",
        ),
        (
            "a pod labelled bind.mcpguard.io/<server>",
            json!({"bind.mcpguard.io/other": "true"}),
            "default",
            "bind.mcpguard.io/other=true",
        ),
        (
            "a pod labelled mcpguard.io/server",
            json!({"mcpguard.io/server": "other"}),
            "default",
            "mcpguard.io/server=other",
        ),
        (
            "a pod labelled as an executor",
            json!({"app.kubernetes.io/name": "mcp-guard-executor"}),
            "default",
            "app.kubernetes.io/name=mcp-guard-executor",
        ),
        (
            "a pod running as an executor ServiceAccount",
            json!({"app": "x"}),
            "agents-mcp-guard",
            "serviceAccountName=agents-mcp-guard",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let pod = tenant_pod(&format!("impostor-{i}"), labels, sa);
        check(what, refuse(&pod), Some(&[&workloads, "Pod", needle, TENANT]));
    }
    let mut owned = tenant_pod("impostor-owned", json!({"mcpguard.io/policy": "agents"}), "default");
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "agents-mcp-guard-1",
        "uid": "6c7a1c1e-0000-4000-8000-000000000001", "controller": true}]);
    check(
        "a pod claiming a ReplicaSet owner",
        refuse(&owned),
        Some(&[&workloads, "mcpguard.io/policy=agents", "replicaset controller"]),
    );
    check(
        "a plain pod (other app.kubernetes.io/name)",
        control(&tenant_pod("plain", json!({"app.kubernetes.io/name": "web"}), "default")),
        None,
    );
    check(
        "a Deployment whose pods carry bind.mcpguard.io/<server>",
        refuse(&tenant_deployment("impostor-labels", json!({"bind.mcpguard.io/other": "true"}), "default")),
        Some(&[&workloads, "Deployment", "bind.mcpguard.io/other=true", TENANT]),
    );
    check(
        "a Deployment whose pods run as an executor ServiceAccount",
        refuse(&tenant_deployment("impostor-sa", json!({}), "agents-mcp-guard")),
        Some(&[&workloads, "Deployment", "serviceAccountName=agents-mcp-guard"]),
    );
    check("a plain Deployment", control(&tenant_deployment("plain", json!({}), "default")), None);
    // A long-lived token of an executor ServiceAccount.
    let token = |sa: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
               "metadata": {"name": format!("{sa}-token"), "namespace": TENANT_NS,
                            "annotations": {"kubernetes.io/service-account.name": sa}}})
    };
    check(
        "a token Secret for an executor ServiceAccount",
        refuse(&token("agents-mcp-guard")),
        Some(&[&vap("protected-tokens"), "agents-mcp-guard"]),
    );
    check("a token Secret for the tenant's own ServiceAccount", control(&token("tenant")), None);
    // A short-lived token (TokenRequest) of an executor ServiceAccount, e.g. for a deployed server's gate.
    let request = |sa: &str| {
        kubectl_as(
            TENANT,
            &[
                "-n",
                TENANT_NS,
                "create",
                "token",
                sa,
                &format!("--audience=mcpguard.io/server/{TENANT_NS}/bindable"),
            ],
            None,
        )
    };
    check(
        "a TokenRequest for an executor ServiceAccount",
        request("agents-mcp-guard"),
        Some(&[&vap("protected-tokens"), "TokenRequest", "agents-mcp-guard"]),
    );
    check("a TokenRequest for the tenant's own ServiceAccount", request("tenant"), None);

    if failures.is_empty() {
        let _ = kubectl(&[
            "-n",
            TENANT_NS,
            "delete",
            "mcpguardpolicies",
            "--all",
            "--wait=true",
            "--timeout=60s",
        ]);
        let _ = kubectl(&["delete", "namespace", TENANT_NS, "--wait=false"]);
        Ok(())
    } else {
        Err(failures.join("\n   "))
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kubernetes")
}

/// Checks, before applying anything, that the suite knows every file of `examples/kubernetes/` (a new
/// one must get its place in [`EXAMPLE_FILES`]) and that their images are the ones `e2e/images.sh` built.
fn example_files_match() -> R {
    let dir = examples_dir();
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml") || n.ends_with(".json"))
        .collect();
    found.sort();
    let mut known: Vec<String> =
        EXAMPLE_FILES.iter().chain([&EXAMPLE_JOB_FILE]).map(|s| s.to_string()).collect();
    known.sort();
    if found != known {
        return Err(format!("examples/kubernetes holds {found:?}; the suite applies {known:?}"));
    }
    let want = tag();
    for f in &found {
        let text = std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        let images = text.lines().filter_map(|l| l.trim().strip_prefix("image:")).map(str::trim);
        for image in images.filter(|i| i.starts_with("mcp-guard.local/")) {
            if image.rsplit_once(':').map(|(_, t)| t) != Some(want.as_str()) {
                return Err(format!(
                    "{f}: image {image}, but e2e/images.sh built tag {want} (charts/mcp-guard appVersion or \
                     MCP_GUARD_E2E_TAG): update the example"
                ));
            }
        }
    }
    Ok(())
}

fn example_diagnostics() -> String {
    let get = kubectl(&["-n", EXAMPLE_NS, "get", "pods,jobs,mcps,mgp", "-o", "wide"]).unwrap_or_else(|e| e);
    let logs = kubectl(&["-n", EXAMPLE_NS, "logs", "-l", "app=example-agent", "--tail=5", "--prefix"])
        .unwrap_or_else(|e| e);
    format!("\n{get}\nagent logs:\n{logs}")
}

fn kubernetes_example() -> R {
    example_files_match()?;
    if exists(&["namespace", EXAMPLE_NS])? {
        let _ = kubectl(&[
            "-n",
            EXAMPLE_NS,
            "delete",
            "mcpguardpolicies",
            "--all",
            "--wait=true",
            "--timeout=60s",
        ]);
        kubectl(&["delete", "namespace", EXAMPLE_NS, "--wait=true", "--timeout=120s"])?;
    }
    let dir = examples_dir();
    let file = |f: &str| dir.join(f).to_string_lossy().into_owned();
    for f in EXAMPLE_FILES {
        kubectl(&["apply", "-f", &file(f)])?;
    }
    wait_for("the example's McpGuardPolicy Ready=True", Duration::from_secs(240), || {
        let p = get_json(&["-n", EXAMPLE_NS, "mcpguardpolicy", EXAMPLE_POLICY])?;
        match condition(&p, "Ready") {
            Some((s, _, _)) if s == "True" => Ok(Some(())),
            other => Err(format!("(Ready: {other:?})")),
        }
    })
    .map_err(|e| format!("{e}{}", example_diagnostics()))?;
    for server in EXAMPLE_SERVERS {
        let s = get_json(&["-n", EXAMPLE_NS, "mcpserver", server])?;
        if condition(&s, "Ready").map(|c| c.0) != Some("True".into()) {
            return Err(format!("McpServer {server} is not Ready: {}", s["status"]));
        }
    }

    kubectl(&["apply", "-f", &file(EXAMPLE_JOB_FILE)])?;
    let job = wait_for("the example's agent Job to complete", Duration::from_secs(240), || {
        let j = get_json(&["-n", EXAMPLE_NS, "job", EXAMPLE_JOB])?;
        if j["status"]["succeeded"].as_u64().unwrap_or(0) >= 1 {
            return Ok(Some(Ok(())));
        }
        match condition(&j, "Failed") {
            Some((s, reason, msg)) if s == "True" => {
                Ok(Some(Err(format!("the Job failed: {reason}: {msg}"))))
            }
            _ => Ok(None),
        }
    });
    job.and_then(|j| j).map_err(|e| format!("{e}{}", example_diagnostics()))?;
    let pods = get_json(&["-n", EXAMPLE_NS, "pods", "-l", &format!("job-name={EXAMPLE_JOB}")])?;
    let pod = pods["items"]
        .as_array()
        .and_then(|v| v.iter().find(|p| p["status"]["phase"] == "Succeeded"))
        .and_then(|p| p["metadata"]["name"].as_str())
        .ok_or(format!("no Succeeded pod of Job {EXAMPLE_JOB}"))?
        .to_string();
    let log = kubectl(&["-n", EXAMPLE_NS, "logs", &pod])?;
    let line =
        log.lines().rev().find(|l| l.starts_with('{')).ok_or(format!("no JSON in the Job's log: {log}"))?;
    println!("   kubectl logs job/{EXAMPLE_JOB}: {line}");
    let v: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
    if ok_outcome(&v)? != "completed" {
        return Err(format!("the example's agent should complete: {v}"));
    }
    let result: Value = serde_json::from_str(v["detail"].as_str().unwrap_or_default())
        .map_err(|e| format!("the result is not JSON ({e}): {v}"))?;
    if result["sum"] != 42 || result["echoed"] != "hello through the binding proxy" {
        return Err(format!("the tools' results: {result}"));
    }
    // The denied tool is not bound: the sandbox's TypeError lists what the policy does bind.
    let whoami = result["whoami"].as_str().unwrap_or_default();
    let available = whoami.split_once("available: ").map(|(_, a)| a).unwrap_or_default();
    let available: Vec<&str> = available.split(", ").collect();
    if !whoami.starts_with("TypeError: unknown tool 'whoami'") || !available.contains(&"echo") {
        return Err(format!("whoami should be unknown in the sandbox: {whoami:?}"));
    }
    for denied in ["whoami", "env", "slow", "hang", "crash", "huge", "many", "mutate_tools"] {
        if available.contains(&denied) {
            return Err(format!("{denied} is bound on the remote server: {whoami:?}"));
        }
    }

    // What the README shows: both servers' tools, after each one's and the policy's rules.
    for (server, want) in
        [("deployed-tools", Some(vec!["add", "echo", "get-current-time"])), ("remote-tools", None)]
    {
        let s = wait_for(&format!("McpServer {server} Discovered=True"), Duration::from_secs(120), || {
            let s = get_json(&["-n", EXAMPLE_NS, "mcpserver", server])?;
            match condition(&s, "Discovered") {
                Some((st, _, _)) if st == "True" => Ok(Some(s)),
                other => Err(format!("(Discovered: {other:?})")),
            }
        })?;
        let tools: Vec<&str> = s["status"]["tools"]
            .as_array()
            .map(|v| v.iter().filter_map(|t| t["name"].as_str()).collect())
            .unwrap_or_default();
        let ok = match &want {
            Some(want) => &tools == want,
            None => {
                tools.contains(&"echo")
                    && !tools.iter().any(|t| ["whoami", "env", "slow", "mutate-tools"].contains(t))
            }
        };
        if !ok {
            return Err(format!("McpServer {server} lists the tools {tools:?}"));
        }
    }
    let table = kubectl(&["-n", EXAMPLE_NS, "get", "mcps,mgp"])?;
    println!("{}", table.lines().map(|l| format!("     {l}")).collect::<Vec<_>>().join("\n"));
    Ok(())
}

/// Offline, in every `cargo test`: the suite knows each file of `examples/kubernetes/`, and their images
/// carry the tag `e2e/images.sh` builds (so a version bump cannot leave the example behind unnoticed).
#[test]
fn kubernetes_example_files_are_known() {
    example_files_match().unwrap();
}

/// Needs a cluster with the CRDs, the operator and the images: run it through `e2e/run.sh`.
#[test]
#[ignore = "needs a real cluster: run e2e/run.sh"]
fn end_to_end() {
    if std::env::var("MCP_GUARD_E2E").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set MCP_GUARD_E2E=1 (and KUBECONFIG) to run the end-to-end tests; see e2e/run.sh"
        );
        return;
    }
    let phases: &[Phase] = &[
        ("setup: Secret, McpServer (test server demanding the bearer), McpGuardPolicy Ready", setup),
        (
            "McpServer status: tools and server info from the proxy's handshake, via the executor",
            server_status_lists_discovered_tools,
        ),
        ("allowed agent pod: gRPC Execute calls the tools", allowed_agent_calls_the_tool),
        (
            "V8 engine: a policy with limits.engine v8 gets its own executor; tools, the CPU limit, no Deno \
             runtime globals",
            v8_engine_runs_the_code,
        ),
        (
            "auth: no token -> UNAUTHENTICATED, other service account -> PERMISSION_DENIED",
            auth_refuses_bad_callers,
        ),
        (
            "network: a pod in a namespace the policy does not allow is refused",
            disallowed_namespace_is_refused_by_the_network,
        ),
        (
            "executor pod: one container, no Secret volume, no API token, no credential in the environment",
            executor_container_holds_no_credential,
        ),
        (
            "executor pod egress: only its binding proxy (which admits only the executor's token); no DNS \
             (CoreDNS never sees the query), no API server, no server; all reachable without the policy",
            executor_pod_has_no_egress,
        ),
        (
            "deployed server: its gate admits only a token of its audience from a binding-proxy account; its own port is closed",
            deployed_server_admits_only_binding_proxies,
        ),
        ("limits change rolls the pods and the new limit applies", limits_change_rolls_the_pods),
        (
            "callers: no service account named -> the policy's namespace only, even where the network admits more",
            empty_service_accounts_admit_only_the_policys_namespace,
        ),
        (
            "killing an executor pod mid-execution: clean error, Deployment recovers",
            killing_an_executor_mid_execution,
        ),
        (
            "approvals: a call pauses, the API server admits only the approver's decision, the agent resumes once",
            approvals_pause_decide_resume,
        ),
        ("deleting the policy removes its children", deleting_the_policy_removes_its_children),
        (
            "tenant cannot use the operator as a deputy: Secrets, images, egress, bind, protected labels refused at admission",
            tenant_cannot_use_the_operator_as_a_deputy,
        ),
        (
            "examples/kubernetes applied as they are: policy Ready, agent Job completes with the tools' results",
            kubernetes_example,
        ),
    ];
    let total = Instant::now();
    let mut failed = Vec::new();
    let mut passed = 0;
    for (i, (name, f)) in phases.iter().enumerate() {
        println!("== e2e phase {}/{}: {name}", i + 1, phases.len());
        let start = Instant::now();
        let result = f();
        let secs = start.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                passed += 1;
                println!("== PASS ({secs:.1} s): {name}");
            }
            Err(e) => {
                println!("== FAIL ({secs:.1} s): {name}\n   {e}");
                failed.push(*name);
                if i == 0 {
                    break; // nothing else can run without the setup
                }
            }
        }
    }
    println!("== e2e: {passed} passed, {} failed, {:.1} s", failed.len(), total.elapsed().as_secs_f64());
    if failed.is_empty() {
        for ns in [GUARD, AGENTS, OUTSIDE, EXAMPLE_NS] {
            let _ = kubectl(&["delete", "namespace", ns, "--wait=false"]);
        }
    }
    assert!(failed.is_empty(), "failed phases: {failed:?}");
}
