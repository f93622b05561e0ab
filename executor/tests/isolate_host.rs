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
    let command = HostCommand::isolate_host(env!("CARGO_BIN_EXE_mcp-guard").into());
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
    // Every thread: the allow list (TSYNC) and no_new_privs (inherited with the main thread's Landlock).
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert!(status.lines().any(|l| l.split_whitespace().eq(["Seccomp:", "2"])), "{status}");
        assert!(status.lines().any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"])), "{status}");
    }
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

/// CPU time this process (the executor side) has used.
fn own_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// The validator's parser is super-linear on some inputs (`fuzz/known-slow/`): on isolate hosts the
/// code is validated in the host, so such an input costs the executor nothing, ends at the wall-time
/// limit like any other guest work, and takes its host with it. (On the thread engine the same input
/// costs the calling process the whole parse: the comparison below.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_built_to_slow_the_validator_is_validated_in_the_host_under_its_limits() {
    let slow = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/known-slow/validator/slow-unit-4347e5e61c343be48b24d719e1b586bd1afca85b"
    ))
    .unwrap_or_else(|_| {
        // Not UTF-8 as a whole? Then as the lossy text an API caller would have to send.
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/known-slow/validator/slow-unit-4347e5e61c343be48b24d719e1b586bd1afca85b"
        ))
        .unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    });
    // What validating it costs where it runs: the thread engine's way.
    let before = own_cpu();
    let verdict = mcp_guard_sandbox::validator::validate(
        &slow,
        &mcp_guard_sandbox::validator::ValidateOptions { max_code_bytes: 1 << 20 },
    );
    let in_process = own_cpu() - before;
    assert!(verdict.is_err(), "the slow input is not valid code");

    let engine = engine(1);
    engine.probe().await.unwrap();
    let pid = *engine.warm_pids().last().unwrap();
    // Well under the parse's cost: the limit must be what ends it.
    let wall = (in_process / 4).clamp(Duration::from_millis(50), Duration::from_millis(400));
    let before = own_cpu();
    let start = Instant::now();
    let o = sandbox(&engine).run_as("slow", &slow, &limits(wall)).await.unwrap();
    let answered = start.elapsed();
    let executor_cpu = own_cpu() - before;
    assert_eq!(limit(&o), LimitKind::WallTime, "{o:?}");
    let gone = gone_within(pid, Duration::from_secs(3)).await;
    println!(
        "validating in process: {in_process:?} of CPU; in a host: answered after {answered:?} (wall limit \
         {wall:?}), host gone {gone:?} later, executor CPU {executor_cpu:?}"
    );
    assert!(
        executor_cpu < in_process / 2,
        "the executor spent {executor_cpu:?} of CPU; validating in process costs {in_process:?}"
    );
    // A valid program still runs (validated in its host too), with positions mapped to the source.
    let o = sandbox(&engine)
        .run_as("slow", "const x = 1;\nthrow new Error('at line 2')", &limits(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(threw(&o), ("Error", "at line 2"));
    let mcp_guard_sandbox::outcome::Status::Threw { error } = &o.status else { unreachable!() };
    assert!(error.stack.contains(":2:"), "{}", error.stack);
    // And code the validator refuses is refused, from the host.
    let o = sandbox(&engine).run_as("slow", "eval('1')", &limits(Duration::from_secs(5))).await.unwrap();
    assert!(matches!(o.status, mcp_guard_sandbox::outcome::Status::Rejected { .. }), "{o:?}");
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

/// An engine whose hosts run up to `concurrency` executions of one caller at once.
fn shared_engine(warm: usize, concurrency: u32) -> ProcessEngine {
    engine(warm).with_reuse(256, 4).with_concurrency(concurrency)
}

/// Wait until the engine's hosts run `n` executions in all (each awaiting its tool), and return them.
async fn running(engine: &ProcessEngine, n: usize) -> Vec<mcp_guard_sandbox::engine::process::HostView> {
    let start = Instant::now();
    loop {
        let hosts = engine.hosts();
        if hosts.iter().map(|h| h.running).sum::<usize>() >= n {
            return hosts;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never {n} executions at once: {hosts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn_as(engine: &ProcessEngine, caller: &str, body: &str, l: Limits) -> tokio::task::JoinHandle<Outcome> {
    let (engine, caller, body) = (engine.clone(), caller.to_string(), body.to_string());
    tokio::spawn(async move { run_as(&engine, &caller, &body, &l).await })
}

/// Many executions of one caller awaiting a slow tool at once share a few hosts: at most
/// ceil(n / concurrency) processes, each confined, each with that caller only; all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_executions_of_one_caller_share_a_few_hosts() {
    let (n, concurrency) = (40usize, 8u32);
    let engine = shared_engine(1, concurrency);
    let body = "const r = await mcp.demo.slow({ ms: 2000 }); globalThis.n = (globalThis.n || 0) + 1; \
                return [r.slept, globalThis.n];";
    let tasks: Vec<_> =
        (0..n).map(|_| spawn_as(&engine, "alice", body, limits(Duration::from_secs(20)))).collect();
    let hosts = running(&engine, n).await;
    let pids: std::collections::BTreeSet<u32> = hosts.iter().map(|h| h.pid).collect();
    println!("{n} executions at once, concurrency {concurrency}: hosts {hosts:?}");
    assert!(
        pids.len() <= n.div_ceil(concurrency as usize),
        "{} hosts for {n} executions: {hosts:?}",
        pids.len()
    );
    for h in &hosts {
        assert_eq!(h.caller.as_deref(), Some("alice"), "{hosts:?}");
        assert!(h.running <= concurrency as usize, "{hosts:?}");
        assert_eq!(status_field(h.pid, "Seccomp"), "2", "a shared host is confined all the same");
        let threads: usize = status_field(h.pid, "Threads").parse().unwrap();
        assert!(
            threads > concurrency as usize,
            "one isolate thread per execution, started up front: {threads}"
        );
    }
    for t in tasks {
        // Each execution had a fresh runtime: nothing of its siblings in the same process.
        assert_eq!(completed(&t.await.unwrap()), &json!([2000, 1]));
    }
}

/// Executions of two callers at once never share a host, however many have room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_callers_never_share_a_host() {
    let engine = shared_engine(2, 16);
    let body = "await mcp.demo.slow({ ms: 1500 }); return 1;";
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            spawn_as(&engine, if i % 2 == 0 { "alice" } else { "bob" }, body, limits(Duration::from_secs(20)))
        })
        .collect();
    let hosts = running(&engine, 24).await;
    println!("alice and bob, 12 executions each: {hosts:?}");
    let of = |caller: &str| -> std::collections::BTreeSet<u32> {
        hosts.iter().filter(|h| h.caller.as_deref() == Some(caller)).map(|h| h.pid).collect()
    };
    let (alice, bob) = (of("alice"), of("bob"));
    assert!(!alice.is_empty() && !bob.is_empty(), "{hosts:?}");
    assert!(alice.is_disjoint(&bob), "a host served both callers: {hosts:?}");
    assert!(hosts.iter().all(|h| h.caller.is_some()), "{hosts:?}");
    for caller in ["alice", "bob"] {
        let n: usize = hosts.iter().filter(|h| h.caller.as_deref() == Some(caller)).map(|h| h.running).sum();
        assert_eq!(n, 12, "{caller}: {hosts:?}");
    }
    for t in tasks {
        assert_eq!(completed(&t.await.unwrap()), &json!(1));
    }
}

/// One execution stuck in a native call past its wall-time limit gets its host killed: it is answered
/// `wall_time`, the other execution of the same caller in that host gets the documented crash outcome,
/// and the caller's next execution runs in a new host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_execution_kills_its_host_and_its_sibling_is_told_why() {
    let engine = shared_engine(1, 4);
    let sibling = spawn_as(
        &engine,
        "alice",
        "await mcp.demo.slow({ ms: 8000 }); return 'sibling';",
        limits(Duration::from_secs(20)),
    );
    let before = running(&engine, 1).await;
    let stuck = spawn_as(&engine, "alice", STUCK[0].1, limits(Duration::from_millis(800)));
    let shared = running(&engine, 2).await;
    assert_eq!(shared.len(), 1, "both executions run in one host: {shared:?}");
    let pid = before[0].pid;
    assert_eq!(shared[0].pid, pid);
    assert_eq!(limit(&stuck.await.unwrap()), LimitKind::WallTime);
    let o = sibling.await.unwrap();
    let (name, message) = threw(&o);
    assert_eq!(name, "IsolateCrashed", "{o:?}");
    assert_eq!(message, mcp_guard_sandbox::engine::process::SIBLING_KILLED);
    assert!(message.contains("another execution of the same caller"), "{message}");
    assert_eq!(o.tool_calls.len(), 1, "its call in flight is listed: {o:?}");
    assert_eq!(o.tool_calls[0].status, mcp_guard_sandbox::outcome::ToolCallStatus::Cancelled, "{o:?}");
    gone_within(pid, Duration::from_secs(3)).await;
    let o = run_as(&engine, "alice", "return 'next'", &limits(Duration::from_secs(10))).await;
    assert_eq!(completed(&o), &json!("next"));
    assert!(engine.hosts().iter().all(|h| h.pid != pid));
    assert_eq!(engine.stats().killed.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(engine.stats().crashed.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A limit the isolate enforces itself (here CPU time) ends that execution only: its sibling in the
/// same host completes, and the host, retired, takes no new execution and goes once it is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_in_one_execution_retires_its_host_without_touching_its_sibling() {
    let engine = shared_engine(1, 4);
    let sibling = spawn_as(
        &engine,
        "alice",
        "await mcp.demo.slow({ ms: 1500 }); return 'sibling';",
        limits(Duration::from_secs(20)),
    );
    let pid = running(&engine, 1).await[0].pid;
    let spin = run_as(&engine, "alice", "while (true) {}", &limits(Duration::from_millis(300))).await;
    assert!(matches!(limit(&spin), LimitKind::CpuTime | LimitKind::WallTime), "{spin:?}");
    // The retired host takes no new execution: this one goes to another host.
    let next = spawn_as(
        &engine,
        "alice",
        "await mcp.demo.slow({ ms: 300 }); return 'next';",
        limits(Duration::from_secs(10)),
    );
    let hosts = running(&engine, 2).await;
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert_eq!(completed(&sibling.await.unwrap()), &json!("sibling"));
    assert_eq!(completed(&next.await.unwrap()), &json!("next"));
    gone_within(pid, Duration::from_secs(3)).await;
    assert_eq!(engine.stats().killed.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A stand-in for a compromised host (it speaks the protocol, then breaks it): Python, on descriptor 3.
/// `unknown`: a frame naming an execution it was never given; `after-done`: its execution's outcome,
/// then another frame for it.
const FAKE_HOST: &str = r#"
import json, socket, struct, sys, time
s = socket.socket(fileno=3)
def send(m):
    b = json.dumps(m).encode()
    s.sendall(struct.pack(">I", len(b)) + b)
def recv():
    n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
    return json.loads(s.recv(n, socket.MSG_WAITALL))
send({"Ready": {"confinement": "a fake host", "seccomp": True}})
run = recv()["Run"]
outcome = {"outcome": "completed", "result": "fake", "console": [], "toolCalls": [],
           "metrics": {"cpuMs": 0, "wallMs": 0, "peakHeapBytes": 0}}
if sys.argv[1] == "unknown":
    send({"ToolCall": {"id": run["id"] + 1000, "call": 0, "server": "demo", "tool": "echo", "arguments": {}}})
else:
    send({"Done": {"id": run["id"], "outcome": outcome}})
    time.sleep(0.2)
    send({"ToolCall": {"id": run["id"], "call": 0, "server": "demo", "tool": "echo", "arguments": {}}})
time.sleep(30)
"#;

fn python() -> std::path::PathBuf {
    ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .expect("this test needs python3 (for a fake isolate host)")
}

/// Frames for an execution the host does not run (never sent, or already done) are protocol errors:
/// the executor kills the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_for_an_execution_the_host_does_not_run_kills_it() {
    for mode in ["unknown", "after-done"] {
        let command = HostCommand {
            program: python(),
            args: vec!["-c".into(), FAKE_HOST.into(), mode.into()],
            kind: mcp_guard_sandbox::engine::process::HostKind::QuickJs,
        };
        // With reuse, a host that ended an execution cleanly stays, waiting for the caller's next one:
        // only the late frame can get it killed.
        let engine = ProcessEngine::new(command, 64 << 20, 0).with_reuse(8, 4);
        engine.probe().await.unwrap();
        let pid = *engine.warm_pids().last().unwrap();
        let o = run_raw(&engine, "return 1", &limits(Duration::from_secs(10))).await;
        match mode {
            "unknown" => {
                let (name, message) = threw(&o);
                assert_eq!(name, "IsolateCrashed", "{mode}: {o:?}");
                assert!(message.contains("broke the channel protocol"), "{mode}: {message}");
                assert!(message.contains("which it does not run"), "{mode}: {message}");
            }
            _ => assert_eq!(completed(&o), &json!("fake"), "{mode}: {o:?}"),
        }
        let gone = gone_within(pid, Duration::from_secs(3)).await;
        println!("{mode}: the fake host was killed {gone:?} after the execution ended");
        assert_eq!(engine.stats().crashed.load(std::sync::atomic::Ordering::Relaxed), 1, "{mode}");
    }
}

/// An execution whose caller goes away (its future is dropped) keeps running in the host until it ends
/// on its own; its sibling in the same host is not disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_execution_does_not_disturb_its_sibling() {
    let engine = shared_engine(1, 4);
    let sibling = spawn_as(
        &engine,
        "alice",
        "await mcp.demo.slow({ ms: 1500 }); return 'sibling';",
        limits(Duration::from_secs(20)),
    );
    let pid = running(&engine, 1).await[0].pid;
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        run_as(
            &engine,
            "alice",
            "await mcp.demo.slow({ ms: 5000 }); return 2;",
            &limits(Duration::from_secs(1)),
        ),
    )
    .await;
    assert!(cancelled.is_err(), "the execution was still running when its caller went away");
    assert_eq!(
        engine.hosts().iter().find(|h| h.pid == pid).map(|h| h.running),
        Some(2),
        "both still in the host"
    );
    assert_eq!(completed(&sibling.await.unwrap()), &json!("sibling"));
    // The abandoned execution ended at its own wall-time limit; the host, retired, then went.
    gone_within(pid, Duration::from_secs(3)).await;
    assert_eq!(engine.stats().killed.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(engine.stats().crashed.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A host that has served its reuse count (here 3, all at once) takes no more and goes, which is no
/// crash; the caller's next execution gets a new host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_served_its_reuse_count_goes_quietly() {
    let engine = engine(0).with_reuse(3, 4).with_concurrency(8);
    let started = || engine.stats().started.load(std::sync::atomic::Ordering::Relaxed);
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            spawn_as(
                &engine,
                "alice",
                &format!("await mcp.demo.slow({{ ms: 300 }}); return {i};"),
                limits(Duration::from_secs(10)),
            )
        })
        .collect();
    let hosts = running(&engine, 3).await;
    assert_eq!(hosts.len(), 1, "three executions, one host (concurrency within the reuse count): {hosts:?}");
    let pid = hosts[0].pid;
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(completed(&t.await.unwrap()), &json!(i));
    }
    gone_within(pid, Duration::from_secs(3)).await;
    assert_eq!(
        completed(&run_as(&engine, "alice", "return 4", &limits(Duration::from_secs(10))).await),
        &json!(4)
    );
    assert_eq!(started(), 2, "the fourth execution needed a new host");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(engine.stats().crashed.load(std::sync::atomic::Ordering::Relaxed), 0);
}
