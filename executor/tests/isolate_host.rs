//! Isolate hosts (layer 3 as processes): executions run in confined, killable processes that hold
//! nothing. These tests start real hosts (`mcp-guard isolate-host`, the binary under test) and look at
//! them from the outside: `/proc/<pid>/status`, `environ`, `fd`; a stuck native call is killed at the
//! wall-time limit; a host that dies gives a clear outcome and the next execution works.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::{completed, limit, test_host, threw};
use mcp_guard_crds::{ByteSize, DurationSpec, LimitKind, Limits};
use mcp_guard_sandbox::{
    engine::process::{HostCommand, ProcessEngine},
    outcome::Outcome,
    sandbox::Sandbox,
};
use serde_json::json;

fn engine(warm: usize) -> ProcessEngine {
    let command =
        HostCommand { program: env!("CARGO_BIN_EXE_mcp-guard").into(), args: vec!["isolate-host".into()] };
    ProcessEngine::new(command, 64 << 20, warm)
}

fn limits(wall: Duration) -> Limits {
    Limits {
        memory: ByteSize::mib(64),
        wall_time: DurationSpec::millis(wall.as_millis() as u64),
        cpu_time: DurationSpec::millis(wall.as_millis() as u64),
        ..Limits::default()
    }
}

fn sandbox(engine: &ProcessEngine) -> Sandbox {
    let host = test_host();
    Sandbox::with_engine(Arc::new(engine.clone()), host.catalog(), Arc::new(host))
}

/// Run an async function body on the engine without validation (the engine must hold on its own).
async fn run_raw(engine: &ProcessEngine, body: &str, limits: &Limits) -> Outcome {
    run_as(engine, "test", body, limits).await
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn alive(pid: u32) -> bool {
    // A reaped or zombie host counts as gone: it runs nothing any more.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

async fn gone_within(pid: u32, limit: Duration) -> Duration {
    let start = Instant::now();
    while alive(pid) {
        assert!(start.elapsed() < limit, "host {pid} still runs {limit:?} after its execution ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_and_tool_calls_run_in_a_host() {
    let engine = engine(1);
    let s = sandbox(&engine);
    let o = s
        .run(
            "const r = await mcp.demo.add({ a: 2, b: 3 }); console.log('sum', r.sum); return r.sum;",
            &limits(Duration::from_secs(10)),
        )
        .await;
    assert_eq!(completed(&o), &json!(5), "{o:?}");
    assert_eq!(o.console[0].message, "sum 5");
    assert_eq!(o.tool_calls.len(), 1);
    let o = s
        .run(
            "try { await mcp.demo.fail({}); } catch (e) { return [e.name, e.code]; }",
            &limits(Duration::from_secs(10)),
        )
        .await;
    assert_eq!(completed(&o), &json!(["McpToolError", "tool_error"]), "{o:?}");
    let o = s.run("throw new TypeError('nope')", &limits(Duration::from_secs(10))).await;
    assert_eq!(threw(&o).0, "TypeError");
    assert!(engine.stats().started.load(std::sync::atomic::Ordering::Relaxed) >= 3, "one host per execution");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_is_confined_and_holds_nothing() {
    let engine = engine(1);
    let (report, seccomp) = engine.probe().await.unwrap();
    println!("isolate host confinement: {report}");
    let pid = *engine.warm_pids().last().unwrap();
    assert!(seccomp, "the seccomp allow list is in force: {report}");
    assert_eq!(status_field(pid, "Seccomp"), "2", "seccomp filter mode");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "PPid"), std::process::id().to_string(), "the executor is its parent");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(environ.is_empty(), "empty environment: {:?}", String::from_utf8_lossy(&environ));
    let mut fds = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let target = std::fs::read_link(entry.path()).unwrap().to_string_lossy().into_owned();
        fds.push((entry.file_name().to_string_lossy().into_owned(), target));
    }
    // Besides standard error and the channel: only the event loop's own kernel objects, all made before
    // confinement (epoll, eventfd, and the socketpair of its signal driver, which never leaves the
    // process). No file, no /dev/null, no pipe but stderr, nothing inherited.
    let mut runtime_sockets = 0;
    for (fd, target) in &fds {
        let fd: u32 = fd.parse().unwrap();
        let runtime_socket = fd > 3 && target.starts_with("socket:");
        runtime_sockets += usize::from(runtime_socket);
        let allowed = fd == 2
            || (fd == 3 && target.starts_with("socket:"))
            || target.starts_with("anon_inode:")
            || runtime_socket;
        assert!(allowed, "host holds fd {fd} -> {target}; all: {fds:?}");
    }
    assert!(runtime_sockets <= 3, "the runtime's signal pair only: {fds:?}");
    // (Standard error is whatever the executor's is: a terminal, a pipe or a log file.)
    assert!(!fds.iter().any(|(fd, t)| fd != "2" && t.starts_with('/')), "no file is open: {fds:?}");
    assert!(fds.iter().any(|(fd, t)| fd == "3" && t.starts_with("socket:")), "{fds:?}");
    // Not dumpable: another process of the same user cannot read its memory.
    let mem = std::fs::read(format!("/proc/{pid}/mem"));
    assert!(mem.is_err(), "the host's memory is not readable");
    // It runs an execution all the same.
    let o = sandbox(&engine).run("return 1 + 1", &limits(Duration::from_secs(10))).await;
    assert_eq!(completed(&o), &json!(2));
}

/// Native calls the interrupt handler never reaches: each occupies its isolate until the process goes.
const STUCK: &[(&str, &str)] = &[
    (
        "quadratic indexOf",
        "const h = 'a'.repeat(1 << 20); const n = 'a'.repeat(1 << 19) + 'b'; return h.indexOf(n);",
    ),
    ("join over a huge array-like", "return Array.prototype.join.call({ length: 2 ** 32 - 2 }, '').length;"),
    ("indexOf over a huge array-like", "return Array.prototype.indexOf.call({ length: 2 ** 40 }, 1);"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_native_call_is_killed_at_the_wall_time_limit() {
    for (kind, body) in STUCK {
        let engine = engine(1);
        engine.probe().await.unwrap();
        let pid = *engine.warm_pids().last().unwrap();
        let wall = Duration::from_millis(800);
        let start = Instant::now();
        let o = run_raw(&engine, body, &limits(wall)).await;
        let answered = start.elapsed();
        assert_eq!(limit(&o), LimitKind::WallTime, "{kind}: {o:?}");
        let gone = gone_within(pid, Duration::from_secs(3)).await;
        println!("{kind}: answered after {answered:?} (wall limit {wall:?}); host gone {gone:?} later");
        assert!(answered < wall + Duration::from_secs(2), "{kind}: answered after {answered:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_dies_gives_a_crash_outcome_and_the_next_execution_works() {
    let engine = engine(1);
    engine.probe().await.unwrap();
    let pid = *engine.warm_pids().last().unwrap();
    let run = {
        let engine = engine.clone();
        tokio::spawn(async move {
            sandbox(&engine)
                .run("await mcp.demo.slow({ ms: 5000 }); return 1;", &limits(Duration::from_secs(10)))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SAFETY: kill(2) on the host this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let o = run.await.unwrap();
    let (name, message) = threw(&o);
    assert_eq!(name, "IsolateCrashed", "{o:?}");
    assert!(message.contains("SIGKILL"), "{message}");
    assert_eq!(o.tool_calls.len(), 1, "the call in flight is listed: {o:?}");
    assert_eq!(engine.stats().crashed.load(std::sync::atomic::Ordering::Relaxed), 1);
    let o = sandbox(&engine).run("return 'after'", &limits(Duration::from_secs(10))).await;
    assert_eq!(completed(&o), &json!("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_survives_from_one_callers_execution_to_anothers() {
    let engine = engine(2);
    let l = limits(Duration::from_secs(10));
    let o =
        run_raw(&engine, "Object.prototype.leak = 'from caller a'; globalThis.kept = 1; return 1;", &l).await;
    assert_eq!(completed(&o), &json!(1));
    let o = run_raw(&engine, "return [typeof ({}).leak, typeof globalThis.kept];", &l).await;
    assert_eq!(completed(&o), &json!(["undefined", "undefined"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_executions_do_not_starve_another_caller() {
    let engine = engine(2);
    engine.probe().await.unwrap();
    let wall = Duration::from_secs(3);
    let stuck: Vec<_> = (0..20)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move { run_raw(&engine, STUCK[i % STUCK.len()].1, &limits(wall)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    let o = sandbox(&engine).run("return 'prompt'", &limits(Duration::from_secs(10))).await;
    let took = start.elapsed();
    println!("a trivial execution beside 20 stuck ones took {took:?}");
    assert_eq!(completed(&o), &json!("prompt"));
    assert!(took < wall, "the trivial execution waited for the stuck ones ({took:?})");
    for s in stuck {
        assert_eq!(limit(&s.await.unwrap()), LimitKind::WallTime);
    }
}

/// The escape hatch of the isolate-escape tests (feature `escape-hatch`) is never in a normal build.
#[cfg(not(feature = "escape-hatch"))]
#[test]
fn the_binary_has_no_escape_hatch() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_mcp-guard")).unwrap();
    let needle = b"__mcpGuardSyscall";
    assert!(!binary.windows(needle.len()).any(|w| w == needle), "the escape hatch is compiled in");
}

/// Run an async function body without validation, as `caller`.
async fn run_as(engine: &ProcessEngine, caller: &str, body: &str, limits: &Limits) -> Outcome {
    common::run_on(engine, caller, body, limits).await
}

/// With reuse, a host serves one caller several times (each execution in a fresh runtime), never
/// another caller, and is replaced after a limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_host_serves_one_caller_only_and_goes_after_a_limit() {
    let engine = engine(0).with_reuse(8, 4);
    let started = || engine.stats().started.load(std::sync::atomic::Ordering::Relaxed);
    let l = limits(Duration::from_secs(10));
    let pid = "globalThis.__n = (globalThis.__n || 0) + 1; return globalThis.__n;";
    for _ in 0..3 {
        // Each execution starts from a fresh runtime: the counter never grows.
        assert_eq!(completed(&run_as(&engine, "alice", pid, &l).await), &json!(1));
    }
    assert_eq!(started(), 1, "alice's three executions share one host");
    assert_eq!(completed(&run_as(&engine, "bob", pid, &l).await), &json!(1));
    assert_eq!(started(), 2, "bob never gets alice's host");
    let o = run_as(&engine, "alice", "while (true) {}", &limits(Duration::from_millis(300))).await;
    assert!(matches!(limit(&o), LimitKind::CpuTime | LimitKind::WallTime), "{o:?}");
    assert_eq!(completed(&run_as(&engine, "alice", pid, &l).await), &json!(1));
    assert_eq!(started(), 3, "after a limit, alice's host is replaced");
}
