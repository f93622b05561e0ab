//! The V8 engine's own guarantees, beyond the suites every engine runs (`MCP_GUARD_TEST_ENGINE=v8`):
//! the Deno process is confined before it runs (seccomp allow list, `no_new_privs`, Landlock, an empty
//! environment, no file open), the guest's global scope is QuickJS's (nothing of Deno's), code
//! generation fails in the engine itself, and an exhausted heap is the memory limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use mcp_guard_crds::{ByteSize, LimitKind, Limits};
use mcp_guard_sandbox::engine::{Engine, quickjs::QuickJsEngine};
use serde_json::json;

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_default().trim().to_string()
}

/// A warm V8 host, inspected from outside: its confinement report, its kernel state, its environment
/// and its open descriptors.
#[tokio::test]
async fn a_v8_host_is_confined_before_deno_runs() {
    let engine = v8_engine(64 << 20, 0);
    let (report, seccomp) = engine.probe().await.unwrap();
    assert!(seccomp, "{report}");
    assert!(report.contains("landlock") && report.contains("fs on"), "{report}");
    assert!(report.contains("no_new_privs on"), "{report}");
    let pid = engine.warm_pids()[0];
    assert_eq!(status_field(pid, "Seccomp"), "2", "seccomp filter mode");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    // The process is Deno itself (the launcher executed it), with nothing in its environment but the
    // three settings the launcher gives it.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, std::fs::canonicalize(deno()).unwrap());
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut vars: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into())
        .collect();
    vars.sort();
    assert_eq!(vars, ["DENO_DIR=/nonexistent/mcp-guard-deno", "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1"]);
    // No file is open: its descriptors are the channel, standard error, and Deno's own pipes, sockets,
    // event and epoll descriptors.
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let target = std::fs::read_link(fd.path()).map(|t| t.display().to_string()).unwrap_or_default();
        assert!(
            target.starts_with("socket:") || target.starts_with("pipe:") || target.starts_with("anon_inode:"),
            "descriptor {:?} is {target}",
            fd.file_name()
        );
    }
}

/// Guest code that reaches for files, the network, subprocesses or the Deno namespace finds nothing:
/// the bootstrap removed Deno's globals from the scope and its prototype chain, so the names the
/// validator refuses are not there either (checked without the validator).
#[tokio::test]
async fn deno_globals_are_not_reachable_without_the_validator() {
    let engine = v8_engine(64 << 20, 0);
    let body = r#"
        const names = new Set();
        for (let o = globalThis; o !== null; o = Object.getPrototypeOf(o)) {
            for (const k of Reflect.ownKeys(o)) names.add(String(k));
        }
        const wanted = ["Deno", "fetch", "Request", "Response", "WebSocket", "Worker", "postMessage",
            "addEventListener", "close", "navigator", "location", "process", "Buffer", "require", "self",
            "caches", "BroadcastChannel", "Blob", "File", "FileReader", "onmessage", "importScripts",
            "reportError", "SharedArrayBuffer", "Atomics", "WebAssembly", "eval"];
        const object = new URL("https://a.example/").constructor.createObjectURL;
        return { present: wanted.filter((n) => names.has(n)), object: typeof object };
    "#;
    let o = run_on(&engine, "test", body, &fast_limits()).await;
    assert_eq!(completed(&o), &json!({ "present": [], "object": "undefined" }), "{o:?}");
}

/// The global scope is QuickJS's: the same names, so code that runs on one engine finds on the other
/// what it found (the language's built-ins differ only where V8 is ahead).
#[tokio::test]
async fn the_global_scope_is_the_same_as_quickjs() {
    let body = "return Reflect.ownKeys(globalThis).map(String).sort();";
    let v8 = run_on(&v8_engine(64 << 20, 0), "test", body, &fast_limits()).await;
    let quickjs = run_on(&QuickJsEngine::default() as &dyn Engine, "test", body, &fast_limits()).await;
    let names = |o: &mcp_guard_sandbox::outcome::Outcome| -> Vec<String> {
        completed(o).as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let (v8, quickjs) = (names(&v8), names(&quickjs));
    let only_v8: Vec<&String> = v8.iter().filter(|n| !quickjs.contains(n)).collect();
    let only_quickjs: Vec<&String> = quickjs.iter().filter(|n| !v8.contains(n)).collect();
    // QuickJS's own error class, and the global object's tag (V8 keeps it on the scope's prototype,
    // which the bootstrap removed).
    let quickjs_own = ["InternalError", "Symbol(Symbol.toStringTag)"];
    assert!(
        only_quickjs.iter().all(|n| quickjs_own.contains(&n.as_str())),
        "names QuickJS has and V8 lacks: {only_quickjs:?}"
    );
    // Language built-ins newer than QuickJS-ng's (listed in the README's engine table), and the
    // function through which Deno reports unhandled rejections (it only marks them handled).
    // Deno's two symbols on the global object hold no object (the bootstrap checks it).
    let newer = ["Float16Array", "Iterator", "dispatchEvent", "Symbol()", "Symbol([[webidl.brand]])"];
    assert!(only_v8.iter().all(|n| newer.contains(&n.as_str())), "names only V8 has: {only_v8:?}");
}

/// A rejection nobody handles does not end the execution (as in QuickJS): the code's own promise is
/// what counts.
#[tokio::test]
async fn unhandled_rejections_do_not_end_the_execution() {
    let engine = v8_engine(64 << 20, 0);
    let body = "Promise.reject(new Error('ignored')); (async () => { throw new Error('also') })();                 await new Promise((r) => setTimeout(r, 20)); return 'done'";
    let o = run_on(&engine, "test", body, &fast_limits()).await;
    assert_eq!(completed(&o), &json!("done"), "{o:?}");
}

/// A stack limit above what a Worker thread has is capped: deep recursion, in JavaScript or in V8's
/// own native recursion (JSON of a deeply nested value), is the stack limit, never a crashed process.
#[tokio::test]
async fn deep_recursion_under_the_largest_stack_limit_is_the_stack_limit() {
    let limits = Limits { stack: ByteSize::mib(16), memory: ByteSize::mib(256), ..fast_limits() };
    let engine = v8_engine(64 << 20, 0);
    let o = run_on(&engine, "test", "function r(n) { return r(n + 1) + 1; } return r(0);", &limits).await;
    assert_eq!(limit(&o), LimitKind::Stack, "{o:?}");
    // V8's own recursion over deep values: done without recursing, or stopped at the stack limit.
    for body in [
        "let o = {}; for (let i = 0; i < 300000; i++) o = { o }; return JSON.stringify(o).length;",
        "const a = []; let x = a; for (let i = 0; i < 300000; i++) { const y = []; x.push(y); x = y; } return String(a).length;",
        "let o = {}; for (let i = 0; i < 300000; i++) o = { o }; return structuredClone(o) !== o;",
    ] {
        let o = run_on(&engine, "test", body, &limits).await;
        let fine = matches!(&o.status, mcp_guard_sandbox::outcome::Status::Completed { .. })
            || matches!(
                &o.status,
                mcp_guard_sandbox::outcome::Status::LimitExceeded { limit: LimitKind::Stack, .. }
            );
        assert!(fine, "{body}: {o:?}");
    }
}

/// A host serves its caller's next execution in a fresh isolate: nothing the first left behind (a
/// global it wrote, a changed built-in, a timer) is there, and the same process served both.
#[tokio::test]
async fn a_reused_host_gives_each_execution_a_fresh_isolate() {
    let engine = v8_engine(64 << 20, 0);
    let first = "globalThis.left = 1; Array.prototype.extra = 2; setTimeout(() => { console.log('late'); }, 30); \
                 return 'first'";
    let o = run_on(&engine, "alice", first, &fast_limits()).await;
    assert_eq!(completed(&o), &json!("first"));
    let pid = engine.hosts()[0].pid;
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let o =
        run_on(&engine, "alice", "return [typeof globalThis.left, typeof [].extra]", &fast_limits()).await;
    assert_eq!(completed(&o), &json!(["undefined", "undefined"]));
    assert!(o.console.is_empty(), "a timer of the first execution printed into the second: {:?}", o.console);
    let hosts = engine.hosts();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!((hosts[0].pid, hosts[0].served), (pid, 2));
    // Another caller never gets that host.
    let o = run_on(&engine, "bob", "return 1", &fast_limits()).await;
    assert_eq!(completed(&o), &json!(1));
    assert!(engine.hosts().iter().any(|h| h.caller.as_deref() == Some("bob") && h.pid != pid));
}

/// Code that keeps its isolate busy after its result (a loop of promise jobs nothing awaits) cannot
/// ride into the caller's next execution: the isolate does not confirm it stopped, so its host exits,
/// and the next execution runs in a new host, unharmed.
#[tokio::test]
async fn an_isolate_still_busy_after_its_execution_ends_its_host() {
    let engine = v8_engine(64 << 20, 0);
    let busy = "(async () => { for (;;) await null; })(); return 'answered'";
    let o = run_on(&engine, "alice", busy, &fast_limits()).await;
    assert_eq!(completed(&o), &json!("answered"));
    let pid = engine.hosts()[0].pid;
    let o = run_on(&engine, "alice", "return 2", &fast_limits()).await;
    assert_eq!(completed(&o), &json!(2));
    assert!(engine.hosts().iter().all(|h| h.pid != pid || h.running == 0), "{:?}", engine.hosts());
    // The busy host is gone.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the busy host {pid} still runs");
}

/// `Math.random` draws the same numbers for a seed on both engines (xorshift64* seeded through
/// splitmix64): an execution paused for an approval resumes with the same draws whichever engine runs it.
#[tokio::test]
async fn the_seeded_random_is_the_same_on_both_engines() {
    use mcp_guard_sandbox::{
        engine::ExecutionRequest,
        host::ExecutionInfo,
        validator::{PositionMap, Prepared},
    };
    let draws = |engine: Arc<dyn Engine>, seed: u64| async move {
        let script = "\"use strict\";\n(async function () {\nreturn Array.from({ length: 1000 }, () => Math.random());\n})".to_string();
        let host = test_host();
        let o = engine
            .execute(ExecutionRequest {
                code: Prepared { script, positions: PositionMap::default() }.into(),
                limits: fast_limits(),
                catalog: host.catalog(),
                host: Arc::new(host),
                execution: Arc::new(ExecutionInfo { seed, ..ExecutionInfo::new("test", "") }),
                events: None,
            })
            .await;
        completed(&o).clone()
    };
    for seed in [1u64, 42, u64::MAX, 0x9E37_79B9_7F4A_7C15] {
        let v8 = draws(Arc::new(v8_engine(64 << 20, 0)), seed).await;
        let quickjs = draws(Arc::new(QuickJsEngine::default()), seed).await;
        assert_eq!(v8, quickjs, "seed {seed}");
    }
}

/// eval and Function fail in V8 itself (`--disallow-code-generation-from-strings`), not only through
/// the prelude's stubs: the constructor chains the stubs replace lead nowhere either.
#[tokio::test]
async fn code_generation_fails_in_the_engine() {
    let engine = v8_engine(64 << 20, 0);
    for body in [
        "return Function('return 1')()",
        "return (async function () {}).constructor('return 1')",
        "return Object.getPrototypeOf(function* () {}).constructor('yield 1')",
        "return [].map.constructor('return 1')()",
        "return Reflect.construct(Function, ['return 1'])()",
    ] {
        let o = run_on(&engine, "test", body, &fast_limits()).await;
        let (name, message) = threw(&o);
        assert_eq!(name, "EvalError", "{body}: {message}");
    }
}

/// A heap that reaches V8's limit makes V8 abort the process; the executor reads V8's report and
/// answers `limit_exceeded: memory`, and the next execution (a new process) runs.
#[tokio::test]
async fn an_exhausted_heap_is_the_memory_limit() {
    let engine = Arc::new(v8_engine(32 << 20, 1));
    let limits = Limits { memory: ByteSize::mib(32), ..fast_limits() };
    for body in [
        "const big = []; while (true) { big.push(new Array(1000000).fill('x')); }",
        "const m = new Map(); for (let i = 0; ; i++) m.set(i, { i });",
    ] {
        let o = run_on(engine.as_ref(), "test", body, &limits).await;
        assert_eq!(limit(&o), LimitKind::Memory, "{body}: {o:?}");
        let next = run_on(engine.as_ref(), "test", "return 1 + 1", &limits).await;
        assert_eq!(completed(&next), &json!(2));
    }
    // A crash is not counted as one: V8 reported what happened.
    assert_eq!(engine.stats().crashed.load(std::sync::atomic::Ordering::Relaxed), 0);
}
