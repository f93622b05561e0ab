//! Approvals, end to end with the real binary: a call of a `requireApproval` tool pauses the execution
//! (`approval_required`), a person decides (`mcp-guard approvals`), the caller resumes (`mcp-guard
//! resume`, gRPC `Resume`, MCP `resume_execution`) and the code runs again with the calls that
//! completed answered from the journal. The upstream is the test server's `tally` tool, which counts
//! every call in a file (across restarts of the server and of the binding proxy), so each test checks
//! that the upstream saw each call exactly once. The proxy's own rules (divergence, exactly-once,
//! callers) are also tested directly against `BindingProxy`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use api_support::{ALICE, BOB, TempDir, authed, code, status_of, test_server_bin};
use mcp_guard_binding_proxy::{
    BindingProxy, ExecutionEnd,
    approvals::{ApprovalStore, DirectoryStore, ResumeError, Verdict},
    audit::AuditLog,
};
use mcp_guard_crds::GuardConfig;
use mcp_guard_proto::v1 as pb;
use mcp_guard_tools::FailureKind;
use serde_json::{Value, json};

/// Two servers on the same test-server binary and tally file: `counter` (free) and `guarded`, whose
/// `tally` needs approval.
fn config(dir: &Path, approvals_extra: &str) -> String {
    let bin = test_server_bin();
    let tally = dir.join("tally");
    let store = dir.join("approvals");
    format!(
        "servers:\n\
         \x20 - name: counter\n    command: {bin}\n    args: [stdio]\n    env: [{{ name: MCP_TEST_TALLY_FILE, value: {tally} }}]\n\
         \x20 - name: guarded\n    command: {bin}\n    args: [stdio]\n    env: [{{ name: MCP_TEST_TALLY_FILE, value: {tally} }}]\n    tools: {{ requireApproval: [tally] }}\n\
         binding:\n  audit: {{ path: {audit} }}\n\
         approvals:\n  store: {{ directory: {store} }}\n{approvals_extra}",
        bin = bin.display(),
        tally = tally.display(),
        store = store.display(),
        audit = dir.join("audit.log").display(),
    )
}

struct Local {
    dir: TempDir,
    config: PathBuf,
}

impl Local {
    fn new(approvals_extra: &str) -> Self {
        let dir = TempDir::new("approvals");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, config_text(dir.path(), approvals_extra)).unwrap();
        Local { dir, config }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_mcp-guard")).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `mcp-guard exec` of `code`: (exit code, outcome).
    fn exec(&self, code: &str) -> (i32, Value) {
        let file = self.dir.path().join(format!("code-{}.js", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, code).unwrap();
        let (status, out, err) = self.run(&["exec", "-c", self.cfg(), file.to_str().unwrap()]);
        let outcome = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        (status, outcome)
    }

    fn resume(&self, id: &str) -> (i32, Value, String) {
        let (status, out, err) = self.run(&["resume", "-c", self.cfg(), id]);
        (status, serde_json::from_str(&out).unwrap_or(Value::Null), err)
    }

    fn decide(&self, verdict: &str, id: &str) -> (i32, String) {
        let (status, out, err) =
            self.run(&["approvals", "-c", self.cfg(), verdict, id, "--reason", "checked"]);
        (status, format!("{out}{err}"))
    }

    fn cfg(&self) -> &str {
        self.config.to_str().unwrap()
    }

    /// How many times the upstream saw `key`.
    fn tallied(&self, key: &str) -> usize {
        tallied(self.dir.path(), key)
    }
}

fn config_text(dir: &Path, extra: &str) -> String {
    config(dir, extra)
}

fn tallied(dir: &Path, key: &str) -> usize {
    std::fs::read_to_string(dir.join("tally")).unwrap_or_default().lines().filter(|l| *l == key).count()
}

fn approval_id(outcome: &Value) -> String {
    assert_eq!(outcome["outcome"], "approval_required", "{outcome:#}");
    outcome["approval"]["id"].as_str().unwrap().to_string()
}

const SELF_OK: &str = "  allowSelfApproval: true\n";

#[test]
fn pause_approve_resume_runs_every_call_exactly_once() {
    let l = Local::new(SELF_OK);
    let code = "console.log(String(Math.random()), String(Date.now() > 0));\n\
                const before = await mcp.counter.tally({ key: 'before' });\n\
                const paid = await mcp.guarded.tally({ key: 'pay' });\n\
                const after = await mcp.counter.tally({ key: 'after' });\n\
                return { before: before.n, paid: paid.n, after: after.n, r: Math.random() };";
    let (status, first) = l.exec(code);
    assert_eq!(status, 6, "{first:#}");
    let id = approval_id(&first);
    let approval = &first["approval"];
    assert_eq!(
        approval["calls"],
        json!([{ "server": "guarded", "tool": "tally", "arguments": { "key": "pay" } }])
    );
    assert!(approval["requester"].as_str().unwrap().starts_with("local:uid="), "{approval}");
    assert!(approval["expiresAt"].as_str().unwrap() > approval["createdAt"].as_str().unwrap());
    // The call before ran, the paused one did not, the one after was never reached.
    assert_eq!((l.tallied("before"), l.tallied("pay"), l.tallied("after")), (1, 0, 0));
    assert_eq!(first["toolCalls"][1]["errorCode"], "approval_required", "{first:#}");

    // Not decided yet: the resume is refused (exit 7) and runs nothing.
    let (status, _, err) = l.resume(&id);
    assert_eq!(status, 7, "{err}");
    assert!(err.contains("waiting for a decision"), "{err}");

    let (status, out) = l.decide("approve", &id);
    assert_eq!(status, 0, "{out}");
    let (status, done, err) = l.resume(&id);
    assert_eq!(status, 0, "{done:#}\n{err}");
    // `before` came from the journal (n stayed 1), `pay` ran once, `after` ran once.
    assert_eq!(done["result"]["before"], 1, "{done:#}");
    assert_eq!(done["result"]["paid"], 1);
    assert_eq!(done["result"]["after"], 1);
    assert_eq!((l.tallied("before"), l.tallied("pay"), l.tallied("after")), (1, 1, 1));
    // Same seed: the resumed run drew the numbers the first run drew.
    assert_eq!(done["console"], first["console"], "{done:#}");
    let (_, again) = l.exec("console.log(String(Math.random()), 'true'); return 1;");
    assert_ne!(again["console"], first["console"], "each execution has its own seed");

    // Used once: a second resume is refused and runs nothing.
    let (status, _, err) = l.resume(&id);
    assert_eq!(status, 7, "{err}");
    assert!(err.contains("already resumed"), "{err}");
    assert_eq!(l.tallied("pay"), 1);

    let audit = std::fs::read_to_string(l.dir.path().join("audit.log")).unwrap();
    for event in ["approval_requested", "approval_decided", "approval_resumed", "approval_resume_refused"] {
        assert!(audit.contains(&format!("\"event\":\"{event}\"")), "{event} missing from the audit log");
    }
    assert!(audit.contains("\"replayed\":true"), "replayed calls are marked in the audit log");
}

#[test]
fn promise_all_gathers_the_calls_that_need_approval_and_lets_the_free_one_finish() {
    let l = Local::new(SELF_OK);
    let code = "const [a, b, free] = await Promise.all([\n\
                  mcp.guarded.tally({ key: 'delete-a' }),\n\
                  mcp.counter.tally({ key: 'free' }),\n\
                  mcp.guarded.tally({ key: 'delete-b' }),\n\
                ]);\n\
                return [a.n, b.n, free.n];";
    let (status, first) = l.exec(code);
    assert_eq!(status, 6, "{first:#}");
    let calls = first["approval"]["calls"].as_array().unwrap();
    let keys: Vec<&str> = calls.iter().map(|c| c["arguments"]["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["delete-a", "delete-b"], "one approval, in issue order");
    assert_eq!((l.tallied("delete-a"), l.tallied("free"), l.tallied("delete-b")), (0, 1, 0));
    let id = approval_id(&first);
    assert_eq!(l.decide("approve", &id).0, 0);
    let (status, done, err) = l.resume(&id);
    assert_eq!(status, 0, "{done:#}\n{err}");
    assert_eq!(done["result"], json!([1, 1, 1]));
    assert_eq!((l.tallied("delete-a"), l.tallied("free"), l.tallied("delete-b")), (1, 1, 1));
}

#[test]
fn a_denied_call_throws_approval_denied_which_the_code_may_handle() {
    let l = Local::new(SELF_OK);
    let code = "await mcp.counter.tally({ key: 'before' });\n\
                try {\n\
                  await mcp.guarded.tally({ key: 'pay' });\n\
                  return 'paid';\n\
                } catch (e) {\n\
                  return { name: e.name, code: e.code, message: e.message, tool: e.tool };\n\
                }";
    let (_, first) = l.exec(code);
    let id = approval_id(&first);
    let (status, out) = l.decide("deny", &id);
    assert_eq!(status, 0, "{out}");
    let (status, done, err) = l.resume(&id);
    assert_eq!(status, 0, "{done:#}\n{err}");
    assert_eq!(done["result"]["name"], "McpToolError");
    assert_eq!(done["result"]["code"], "approval_denied");
    assert_eq!(done["result"]["tool"], "tally");
    let message = done["result"]["message"].as_str().unwrap();
    assert!(message.contains("denied by local:uid=") && message.contains("checked"), "{message}");
    assert_eq!((l.tallied("before"), l.tallied("pay")), (1, 0));
    // A decided approval cannot be decided again.
    let (status, out) = l.decide("approve", &id);
    assert_eq!(status, 7, "{out}");
}

#[test]
fn an_expired_approval_can_be_neither_decided_nor_resumed() {
    let l = Local::new("  ttl: 1s\n  allowSelfApproval: true\n");
    let (_, first) = l.exec("return await mcp.guarded.tally({ key: 'pay' });");
    let id = approval_id(&first);
    std::thread::sleep(Duration::from_millis(2100));
    let (status, out) = l.decide("approve", &id);
    assert_eq!(status, 7, "{out}");
    assert!(out.contains("expired"), "{out}");
    let (status, _, err) = l.resume(&id);
    assert_eq!(status, 7, "{err}");
    assert!(err.contains("expired"), "{err}");
    assert_eq!(l.tallied("pay"), 0);
    let audit = std::fs::read_to_string(l.dir.path().join("audit.log")).unwrap();
    assert!(audit.contains("\"event\":\"approval_expired\""), "{audit}");
}

#[test]
fn the_requester_and_non_approvers_cannot_decide() {
    // Self-approval is off by default: the user that ran the code may not approve it.
    let l = Local::new("");
    let (_, first) = l.exec("return await mcp.guarded.tally({ key: 'pay' });");
    let id = approval_id(&first);
    let (status, out) = l.decide("approve", &id);
    assert_eq!(status, 7, "{out}");
    assert!(out.contains("may not decide it"), "{out}");
    // With approvers listed, anyone else is refused too.
    let l = Local::new("  allowSelfApproval: true\n  approvers: { users: [\"local:uid=424242\"] }\n");
    let (_, first) = l.exec("return await mcp.guarded.tally({ key: 'pay' });");
    let id = approval_id(&first);
    let (status, out) = l.decide("approve", &id);
    assert_eq!(status, 7, "{out}");
    assert!(out.contains("is not an approver"), "{out}");
    // Unknown ids, and ids that are paths, are refused.
    for bad in ["ap-doesnotexist", "../../etc/passwd"] {
        let (status, out) = l.decide("approve", bad);
        assert_eq!(status, 7, "{out}");
        assert!(out.contains("does not exist"), "{out}");
    }
    assert_eq!(l.tallied("pay"), 0);
}

// --- gRPC, through `mcp-guard serve` ------------------------------------------------------------------

fn serve_with(dir: &Path, extra: &str) -> api_support::Serve {
    api_support::serve(&config_text(dir, extra), &["--allowed-callers", "alice,bob"])
}

fn approval_of(r: &pb::ExecuteResponse) -> pb::ApprovalRequired {
    match status_of(r) {
        pb::outcome::Status::ApprovalRequired(a) => a.clone(),
        other => panic!("expected approval_required, got {other:?}"),
    }
}

fn approve_locally(dir: &Path, config: &str, id: &str) {
    let cfg = dir.join("decide.yaml");
    std::fs::write(&cfg, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(["approvals", "-c", cfg.to_str().unwrap(), "approve", id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_resume_is_for_the_requester_only_and_runs_the_approved_call_once() {
    let dir = TempDir::new("approvals-grpc");
    let s = serve_with(dir.path(), SELF_OK);
    let mut c = s.client().await;
    let r = c
        .execute(authed(code("const p = await mcp.guarded.tally({ key: 'pay' }); return p.n;"), ALICE))
        .await
        .unwrap()
        .into_inner();
    let approval = approval_of(&r);
    assert_eq!(approval.requester, "alice");
    assert_eq!(approval.calls.len(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(&approval.calls[0].arguments_json).unwrap(),
        json!({"key": "pay"})
    );

    // Listed for alice, not for bob.
    let mine = c.list_approvals(authed(pb::ListApprovalsRequest {}, ALICE)).await.unwrap().into_inner();
    assert_eq!(mine.approvals.len(), 1);
    assert_eq!(mine.approvals[0].state, "pending");
    let theirs = c.list_approvals(authed(pb::ListApprovalsRequest {}, BOB)).await.unwrap().into_inner();
    assert!(theirs.approvals.is_empty());

    let resume =
        |token: &str| authed(pb::ResumeRequest { approval_id: approval.id.clone(), limits: None }, token);
    // Pending: FAILED_PRECONDITION.
    let e = c.resume(resume(ALICE)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    // The approver decides (the store is shared by whoever can read the directory).
    approve_locally(dir.path(), &config_text(dir.path(), SELF_OK), &approval.id);
    // Another caller: PERMISSION_DENIED, and nothing runs.
    let e = c.resume(resume(BOB)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert_eq!(tallied(dir.path(), "pay"), 0);
    // Two concurrent resumes by alice: one runs, the other is refused; the upstream sees one call.
    let mut c2 = s.client().await;
    let (a, b) = tokio::join!(c.resume(resume(ALICE)), c2.resume(resume(ALICE)));
    let results = [a, b];
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    let refused = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert_eq!(api_support::completed(ok[0].get_ref()), json!(1));
    assert_eq!(tallied(dir.path(), "pay"), 1);
    let listed = c.list_approvals(authed(pb::ListApprovalsRequest {}, ALICE)).await.unwrap().into_inner();
    assert_eq!(listed.approvals[0].state, "used");
    // Unknown approval: NOT_FOUND-like refusal (FAILED_PRECONDITION from the executor), never a run.
    let e = c
        .resume(authed(pb::ResumeRequest { approval_id: "ap-unknown".into(), limits: None }, ALICE))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("does not exist"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_execution_resumes_after_the_binding_proxy_restarted() {
    let dir = TempDir::new("approvals-restart");
    let first = serve_with(dir.path(), SELF_OK);
    let mut c = first.client().await;
    let code_text = "const a = await mcp.counter.tally({ key: 'read' });\n\
                     const b = await mcp.guarded.tally({ key: 'pay' });\n\
                     return [a.n, b.n];";
    let r = c.execute(authed(code(code_text), ALICE)).await.unwrap().into_inner();
    let approval = approval_of(&r);
    drop(c);
    drop(first);
    approve_locally(dir.path(), &config_text(dir.path(), SELF_OK), &approval.id);
    // A new process tree: a new binding proxy with nothing in memory; the store and key are on disk.
    let second = serve_with(dir.path(), SELF_OK);
    let mut c = second.client().await;
    let done = c
        .resume(authed(pb::ResumeRequest { approval_id: approval.id.clone(), limits: None }, ALICE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(api_support::completed(&done), json!([1, 1]));
    assert_eq!((tallied(dir.path(), "read"), tallied(dir.path(), "pay")), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_front_door_answers_approval_required_and_resumes() {
    use rmcp::{
        ServiceExt,
        model::CallToolRequestParams,
        transport::{
            StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
        },
    };
    let dir = TempDir::new("approvals-mcp");
    let s = serve_with(dir.path(), SELF_OK);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(s.mcp.clone()).auth_header(ALICE),
    );
    let client = ().serve(transport).await.unwrap();
    let call = |name: &'static str, args: Value| {
        let mut params = CallToolRequestParams::new(name);
        params.arguments = args.as_object().cloned();
        params
    };
    let r = client
        .call_tool(call(
            "execute_code",
            json!({ "code": "return (await mcp.guarded.tally({ key: 'pay' })).n;" }),
        ))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false), "approval_required is a normal result: {r:?}");
    let structured = r.structured_content.clone().unwrap();
    let id = approval_id(&structured);
    let text: String = r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect();
    assert!(text.contains("resume_execution") && text.contains(&id), "{text}");
    // Pending: a clear error result.
    let pending = client.call_tool(call("resume_execution", json!({ "approvalId": id }))).await.unwrap();
    assert_eq!(pending.is_error, Some(true), "{pending:?}");
    approve_locally(dir.path(), &config_text(dir.path(), SELF_OK), &id);
    let done = client.call_tool(call("resume_execution", json!({ "approvalId": id }))).await.unwrap();
    assert_eq!(done.is_error, Some(false), "{done:?}");
    assert_eq!(done.structured_content.unwrap()["result"], 1);
    assert_eq!(tallied(dir.path(), "pay"), 1);
    client.cancel().await.unwrap();
}

// --- The binding proxy's own rules --------------------------------------------------------------------

async fn proxy(dir: &Path) -> Arc<BindingProxy> {
    let config = GuardConfig::from_yaml(&config_text(dir, SELF_OK), "test").unwrap();
    let audit = AuditLog::open(&dir.join("audit.log").display().to_string()).unwrap();
    let proxy = BindingProxy::new(config, audit);
    proxy.connect_all().await;
    proxy
}

fn code_sha(code: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(code.as_bytes()))
}

/// A first run that paused at call #1 (`guarded.tally pay`) after call #0 (`counter.tally read`).
async fn paused(proxy: &BindingProxy, caller: &str) -> String {
    let code = "the code";
    proxy.begin_with("run-1", caller, &code_sha(code), 7, 1_000).unwrap();
    proxy.call_at("run-1", Some(0), "counter", "tally", r#"{"key":"read"}"#).await.unwrap();
    let f = proxy.call_at("run-1", Some(1), "guarded", "tally", r#"{"key":"pay"}"#).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::ApprovalRequired, "{f:?}");
    let end = ExecutionEnd {
        execution_id: "run-1".into(),
        outcome: "approval_required".into(),
        ..Default::default()
    };
    let record = proxy.end_paused(&end, code).await.unwrap();
    assert_eq!(record.calls.len(), 1);
    record.id
}

fn approve(dir: &Path, id: &str) {
    DirectoryStore::open(&dir.join("approvals"))
        .unwrap()
        .decide(id, Verdict::Approved, "someone", "")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_that_takes_another_path_diverges_before_anything_reaches_the_upstream() {
    let dir = TempDir::new("approvals-diverge");
    let p = proxy(dir.path()).await;
    let id = paused(&p, "alice").await;
    approve(dir.path(), &id);
    // Another caller cannot resume it.
    assert!(matches!(p.resume("run-x", "bob", &id).await, Err(ResumeError::OtherCaller(_))));
    let run = p.resume("run-2", "alice", &id).await.unwrap();
    assert_eq!((run.code.as_str(), run.seed, run.clock_ms), ("the code", 7, 1_000));
    // Call #0 with other arguments: ReplayDiverged, naming the call; nothing sent upstream.
    let f = p.call_at("run-2", Some(0), "counter", "tally", r#"{"key":"other"}"#).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::ReplayDiverged, "{f:?}");
    assert!(f.message.contains("call #0") && f.message.contains("counter.tally"), "{}", f.message);
    // The approved position with another tool: diverged too.
    let f = p.call_at("run-2", Some(1), "counter", "tally", r#"{"key":"pay"}"#).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::ReplayDiverged, "{f:?}");
    assert_eq!(
        (tallied(dir.path(), "read"), tallied(dir.path(), "other"), tallied(dir.path(), "pay")),
        (1, 0, 0)
    );
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(audit.contains("\"event\":\"replay_diverged\""), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approved_call_runs_once_even_when_an_executor_sends_it_again() {
    let dir = TempDir::new("approvals-once");
    let p = proxy(dir.path()).await;
    let id = paused(&p, "alice").await;
    approve(dir.path(), &id);
    p.resume("run-2", "alice", &id).await.unwrap();
    // Call #0 is answered from the journal: the upstream count stays 1, the recorded answer says 1.
    let v = p.call_at("run-2", Some(0), "counter", "tally", r#"{"key":"read"}"#).await.unwrap();
    assert_eq!(v["n"], 1);
    assert_eq!(tallied(dir.path(), "read"), 1);
    let v = p.call_at("run-2", Some(1), "guarded", "tally", r#"{"key":"pay"}"#).await.unwrap();
    assert_eq!(v["n"], 1);
    // The same position again (a compromised executor): a new call, which needs approval again.
    let f = p.call_at("run-2", Some(1), "guarded", "tally", r#"{"key":"pay"}"#).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::ApprovalRequired, "{f:?}");
    // And without a position at all, a tool that needs approval is refused outright.
    let f = p.call_at("run-2", None, "guarded", "tally", r#"{"key":"pay"}"#).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Denied, "{f:?}");
    assert_eq!(tallied(dir.path(), "pay"), 1);
    // The store says used, and a second resume is refused.
    let store = DirectoryStore::open(&dir.path().join("approvals")).unwrap();
    assert_eq!(store.get(&id).await.unwrap().state.name(), "used");
    assert!(matches!(p.resume("run-3", "alice", &id).await, Err(ResumeError::NotResumable(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_recorded_only_for_calls_that_really_paused_and_for_the_same_code() {
    let dir = TempDir::new("approvals-forged");
    let p = proxy(dir.path()).await;
    // An execution that paused nothing cannot end as approval_required (a lying executor).
    p.begin_with("run-a", "alice", &code_sha("x"), 1, 1).unwrap();
    p.call_at("run-a", Some(0), "counter", "tally", r#"{"key":"read"}"#).await.unwrap();
    let end = ExecutionEnd {
        execution_id: "run-a".into(),
        outcome: "approval_required".into(),
        ..Default::default()
    };
    let e = p.end_paused(&end, "x").await.unwrap_err();
    assert!(e.contains("paused no call"), "{e}");
    // Nor with other code than it began with.
    p.begin_with("run-b", "alice", &code_sha("x"), 1, 1).unwrap();
    let _ = p.call_at("run-b", Some(0), "guarded", "tally", r#"{"key":"pay"}"#).await;
    let end = ExecutionEnd {
        execution_id: "run-b".into(),
        outcome: "approval_required".into(),
        ..Default::default()
    };
    let e = p.end_paused(&end, "y").await.unwrap_err();
    assert!(e.contains("not the code"), "{e}");
    let store = DirectoryStore::open(&dir.path().join("approvals")).unwrap();
    assert!(store.list(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_pauses_again_after_a_denial_replays_the_denial_and_asks_only_for_the_new_call() {
    let dir = TempDir::new("approvals-twice");
    let p = proxy(dir.path()).await;
    let first = paused(&p, "alice").await;
    DirectoryStore::open(&dir.path().join("approvals"))
        .unwrap()
        .decide(&first, Verdict::Denied, "someone", "no")
        .unwrap();
    // The resumed run: the denial, then another call that needs approval.
    p.resume("run-2", "alice", &first).await.unwrap();
    p.call_at("run-2", Some(0), "counter", "tally", r#"{"key":"read"}"#).await.unwrap();
    let f = p.call_at("run-2", Some(1), "guarded", "tally", r#"{"key":"pay"}"#).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::ApprovalDenied, "{f:?}");
    let f = p.call_at("run-2", Some(2), "guarded", "tally", r#"{"key":"refund"}"#).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::ApprovalRequired, "{f:?}");
    let end = ExecutionEnd {
        execution_id: "run-2".into(),
        outcome: "approval_required".into(),
        ..Default::default()
    };
    let second = p.end_paused(&end, "the code").await.unwrap();
    assert_eq!(second.calls.len(), 1, "only the new call: {second:?}");
    assert_eq!(second.calls[0].sequence, 2);
    approve(dir.path(), &second.id);
    // The third run replays the read and the denial from the journal, and runs the refund once.
    p.resume("run-3", "alice", &second.id).await.unwrap();
    assert_eq!(p.call_at("run-3", Some(0), "counter", "tally", r#"{"key":"read"}"#).await.unwrap()["n"], 1);
    let f = p.call_at("run-3", Some(1), "guarded", "tally", r#"{"key":"pay"}"#).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::ApprovalDenied, "{f:?}");
    assert_eq!(p.call_at("run-3", Some(2), "guarded", "tally", r#"{"key":"refund"}"#).await.unwrap()["n"], 1);
    assert_eq!(
        (tallied(dir.path(), "read"), tallied(dir.path(), "pay"), tallied(dir.path(), "refund")),
        (1, 0, 1)
    );
}
