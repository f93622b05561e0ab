//! Fault injection through the real binary: a part fails at the worst moment, and whoever was waiting
//! gets a clean error, nothing is lost, and the next request works (or, where it cannot, the failure is
//! the documented fail-closed answer).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use api_support::{ALICE, TempDir, authed, code, completed, faults_config, serve, status_of};
use mcp_guard_proto::v1 as pb;

/// `mcp-guard proxy` on `socket`, as the binding-proxy container runs it; waits for the socket.
fn start_proxy(config: &Path, socket: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .arg("proxy")
        .arg("--config")
        .arg(config)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the binding proxy did not create {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// The binding proxy is its own container in a pod: killed in the middle of a tool call, the execution
/// gets a clean tool error (not a hang until the wall-time limit, not a crash of the executor), and once
/// the proxy is back (the kubelet restarts the container) the next execution works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_proxy_killed_mid_call_is_a_clean_error_and_its_restart_serves_the_next() {
    let dir = TempDir::new("faults-proxy");
    let config = dir.path().join("config.yaml");
    let yaml = faults_config("limits:\n  wallTime: 20s\n");
    std::fs::write(&config, &yaml).unwrap();
    let socket = dir.path().join("proxy.sock");
    let mut proxy = start_proxy(&config, &socket);
    let s = serve(&yaml, &["--proxy-socket", socket.to_str().unwrap()]);

    let mut c = s.client().await;
    let program = "try { await mcp.faults.slow({ ms: 10000 }); return 'not interrupted'; } \
                   catch (e) { return [e.code, e.message]; }";
    let call = tokio::spawn(async move {
        let started = Instant::now();
        let r = c.execute(authed(code(program), ALICE)).await;
        (started.elapsed(), r)
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.kill().unwrap();
    proxy.wait().unwrap();
    let (took, r) = call.await.unwrap();
    let r = r.expect("the execution still gets an outcome").into_inner();
    let caught = completed(&r);
    assert_eq!(caught[0], "unavailable", "{caught}");
    assert!(took < Duration::from_secs(9), "the caller waited {took:?}: the failure was not noticed");
    let o = r.outcome.unwrap();
    assert_eq!(o.tool_calls.len(), 1);
    assert_eq!(o.tool_calls[0].status, "error", "{:?}", o.tool_calls);

    // The container restarts: same socket, a new process.
    let mut proxy = start_proxy(&config, &socket);
    let mut c = s.client().await;
    let mut last;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.execute(authed(code("return await mcp.faults.echo({ text: 'back' })"), ALICE)).await {
            Ok(r) if matches!(status_of(r.get_ref()), pb::outcome::Status::CompletedJson(_)) => {
                assert_eq!(completed(r.get_ref()), "back");
                break;
            }
            other => last = format!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "no execution worked after the proxy restarted: {last}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(!s.stderr().contains("panicked"), "{}", s.stderr_tail(3000));
}

/// The audit log's disk is full (`/dev/full` answers every write with ENOSPC): the proxy fails closed.
/// No execution is opened without its audit record (so no tool can be reached unrecorded), and the
/// caller is told why: `UNAVAILABLE`, naming the audit log. The executor stays up and answers each
/// request the same way; it does not crash or hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_on_a_full_disk_fails_closed() {
    let yaml = faults_config("").replace("audit: { path: \"-\" }", "audit: { path: /dev/full }");
    assert!(yaml.contains("/dev/full"), "{yaml}");
    let s = serve(&yaml, &[]);
    let mut c = s.client().await;
    for program in ["return await mcp.faults.echo({ text: 'x' })", "return 1 + 1"] {
        let status = c.execute(authed(code(program), ALICE)).await.expect_err("refused, never run unaudited");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("cannot write its audit log"), "{status:?}");
    }
    assert!(!s.stderr().contains("panicked"), "{}", s.stderr_tail(3000));
}
