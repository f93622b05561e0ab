//! What guest code could do if it took over its isolate host: built with the test-only feature
//! `escape-hatch`, every isolate has `__mcpGuardSyscall(nr, a, b, c)`, an arbitrary syscall (the stand-in
//! for a memory-safety exploit of the engine). Each attempt to reach outside the host kills it
//! (`SECCOMP_RET_KILL_PROCESS`), the caller gets the crash outcome, and the next execution works.
//!
//!     cargo test -p mcp-guard --features escape-hatch --test isolate_escape
#![cfg(all(feature = "escape-hatch", target_arch = "x86_64"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{completed, test_host, threw};
use mcp_guard_crds::{ByteSize, DurationSpec, Limits};
use mcp_guard_sandbox::{
    engine::{
        Engine, ExecutionRequest,
        process::{HostCommand, ProcessEngine},
    },
    host::ExecutionInfo,
    outcome::Outcome,
    validator::{PositionMap, Prepared},
};
use serde_json::json;

/// Hosts as `serve` runs them: reused by one caller, several of its executions at once.
fn engine() -> ProcessEngine {
    let command = HostCommand::isolate_host(env!("CARGO_BIN_EXE_mcp-guard").into());
    ProcessEngine::new(command, 64 << 20, 1).with_reuse(64, 4).with_concurrency(4)
}

async fn run_raw(engine: &ProcessEngine, body: &str) -> Outcome {
    let host = test_host();
    let limits = Limits { memory: ByteSize::mib(64), wall_time: DurationSpec::secs(10), ..Limits::default() };
    let script = format!("\"use strict\";\n(async function () {{\n{body}\n}})");
    engine
        .execute(ExecutionRequest {
            code: Prepared { script, positions: PositionMap::default() }.into(),
            limits,
            catalog: host.catalog(),
            host: Arc::new(host),
            execution: Arc::new(ExecutionInfo::new("attacker", body)),
            events: None,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_escape_hatch_works_for_allowed_syscalls() {
    let engine = engine();
    // getpid is on the allow list: the hatch really makes syscalls (the control for the test below).
    let o = run_raw(&engine, "return __mcpGuardSyscall(39, 0, 0, 0) > 1;").await;
    assert_eq!(completed(&o), &json!(true), "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_out_kills_the_host() {
    // (what, syscall number on x86_64, arguments): arguments do not matter, seccomp decides on entry.
    let attempts: &[(&str, i64, [i64; 3])] = &[
        ("open a file", 257, [-100, 0, 0]),
        ("open a file (open)", 2, [0, 0, 0]),
        ("create a socket", 41, [2, 1, 0]),
        ("connect", 42, [3, 0, 16]),
        ("execve", 59, [0, 0, 0]),
        ("fork", 57, [0, 0, 0]),
        ("clone a process", 56, [17, 0, 0]),
        ("ptrace", 101, [16, 1, 0]),
        ("signal another process", 62, [1, 9, 0]),
        ("make memory executable", 10, [0, 4096, 4]),
        ("io_uring", 425, [1, 0, 0]),
        ("unshare", 272, [0x10000000, 0, 0]),
    ];
    let engine = engine();
    for (what, nr, [a, b, c]) in attempts {
        let o =
            run_raw(&engine, &format!("__mcpGuardSyscall({nr}, {a}, {b}, {c}); return 'still here';")).await;
        let (name, message) = threw(&o);
        assert_eq!(name, "IsolateCrashed", "{what}: {o:?}");
        assert!(message.contains("SIGSYS"), "{what}: {message}");
        // The next execution is served by a fresh host.
        let next = run_raw(&engine, "return 'next';").await;
        assert_eq!(completed(&next), &json!("next"), "after {what}");
    }
    let crashed = engine.stats().crashed.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(crashed as usize, attempts.len());
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// What executions of one caller in one host share: its fate. An escape attempt in one kills the host,
/// and the caller's other execution in it ends with the same crash outcome; the next one runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escape_attempt_ends_the_callers_other_executions_in_that_host() {
    let engine = engine();
    let sibling = {
        let engine = engine.clone();
        tokio::spawn(async move { run_raw(&engine, "await mcp.demo.slow({ ms: 5000 }); return 1;").await })
    };
    let start = std::time::Instant::now();
    while engine.hosts().iter().map(|h| h.running).sum::<usize>() < 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "the sibling never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // openat: outside the allow list.
    let o = run_raw(&engine, "__mcpGuardSyscall(257, -100, 0, 0); return 'still here';").await;
    assert_eq!(threw(&o).0, "IsolateCrashed", "{o:?}");
    let o = sibling.await.unwrap();
    let (name, message) = threw(&o);
    assert_eq!(name, "IsolateCrashed", "{o:?}");
    assert!(message.contains("SIGSYS") && message.contains("2 executions of this caller"), "{message}");
    assert_eq!(engine.stats().crashed.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(completed(&run_raw(&engine, "return 'next';").await), &json!("next"));
}
