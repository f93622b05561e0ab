//! Shared helpers for the executor's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod upstream;

use std::{sync::Arc, time::Duration};

use mcp_guard_crds::{ByteSize, DurationSpec, LimitKind, Limits};
use mcp_guard_sandbox::{
    engine::{Engine, ExecutionRequest, quickjs::QuickJsEngine},
    host::{ExecutionInfo, ToolError, testing::ScriptedHost},
    outcome::{Outcome, Status},
    sandbox::Sandbox,
    validator::{PositionMap, Prepared},
};
use serde_json::{Value, json};

/// Limits small enough that limit tests finish quickly.
pub fn fast_limits() -> Limits {
    Limits {
        memory: ByteSize::mib(32),
        cpu_time: DurationSpec::millis(500),
        wall_time: DurationSpec::secs(3),
        ..Limits::default()
    }
}

/// A host with a few tools: echo, add, fail, slow (sleeps `ms`), counter.
pub fn test_host() -> ScriptedHost {
    ScriptedHost::new()
        .tool("demo", "echo", |args| async move { Ok(args) })
        .tool("demo", "add", |args: Value| async move {
            let a = args["a"].as_f64().unwrap_or(0.0);
            let b = args["b"].as_f64().unwrap_or(0.0);
            Ok(json!({ "sum": a + b }))
        })
        .tool("demo", "fail", |_| async move { Err(ToolError::new("the tool failed on purpose")) })
        .tool("demo", "slow", |args: Value| async move {
            let ms = args["ms"].as_u64().unwrap_or(10);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({ "slept": ms }))
        })
        .tool("my-server", "get-time", |_| async move { Ok(json!("12:00")) })
}

/// The engine the suites run on: QuickJS on threads of the test process, or, with
/// `MCP_GUARD_TEST_ENGINE=process` (how `make test` runs the attack and limit suites a second time),
/// isolate-host processes of the binary under test, reused and shared by one caller's concurrent
/// executions as `serve` runs them by default (`MCP_GUARD_TEST_HOST_CONCURRENCY`, default 64; `1`: one
/// execution per host at a time).
pub fn engine() -> Arc<dyn Engine> {
    match std::env::var("MCP_GUARD_TEST_ENGINE").as_deref() {
        Ok("process") => {
            use mcp_guard_sandbox::engine::process::{HostCommand, ProcessEngine};
            let command = HostCommand::isolate_host(env!("CARGO_BIN_EXE_mcp-guard").into());
            let concurrency = std::env::var("MCP_GUARD_TEST_HOST_CONCURRENCY")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(64);
            Arc::new(
                ProcessEngine::new(command, 1 << 30, 1).with_reuse(256, 16).with_concurrency(concurrency),
            )
        }
        Ok("v8") => Arc::new(v8_engine(fast_limits().memory.bytes(), 2)),
        _ => Arc::new(QuickJsEngine::default()),
    }
}

/// Whether the suites run on the V8 engine (`MCP_GUARD_TEST_ENGINE=v8`): the few cases where the
/// engines differ by design check V8's behaviour instead (each is listed in the README's engine table).
pub fn on_v8() -> bool {
    std::env::var("MCP_GUARD_TEST_ENGINE").as_deref() == Ok("v8")
}

/// The Deno binary for the V8 suites: `MCP_GUARD_TEST_DENO`, else where `scripts/setup.sh` installs it.
pub fn deno() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("MCP_GUARD_TEST_DENO") {
        return path.into();
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    std::path::Path::new(&home).join(".cache/mcp-guard/deno/deno")
}

/// A V8 engine of the binary under test, as `serve` runs it: confined Deno processes, `warm` started
/// ahead, each serving up to 256 executions of one caller one at a time, each in a fresh isolate, with
/// V8's heap limit `memory` (bytes) for the warm ones.
pub fn v8_engine(memory: u64, warm: usize) -> mcp_guard_sandbox::engine::process::ProcessEngine {
    use mcp_guard_sandbox::engine::process::{HostCommand, ProcessEngine};
    let command = HostCommand::v8_host(env!("CARGO_BIN_EXE_mcp-guard").into(), &deno());
    ProcessEngine::new(command, memory, warm).with_reuse(256, 16)
}

pub fn sandbox() -> Sandbox {
    let host = test_host();
    Sandbox::with_engine(engine(), host.catalog(), Arc::new(host))
}

/// Validate and run with the given limits.
pub async fn run_with(code: &str, limits: &Limits) -> Outcome {
    sandbox().run(code, limits).await
}

pub async fn run(code: &str) -> Outcome {
    run_with(code, &fast_limits()).await
}

/// Run a prepared script directly on the engine, skipping validation: proves that the runtime holds even
/// when validation misses something. `body` is an async function body.
pub async fn run_unvalidated(body: &str, limits: &Limits) -> Outcome {
    run_on(engine().as_ref(), "test", body, limits).await
}

/// Run an async function body on `engine` as `caller`, skipping validation.
pub async fn run_on(engine: &dyn Engine, caller: &str, body: &str, limits: &Limits) -> Outcome {
    run_as(engine, &test_host(), caller, body, limits).await
}

/// Run an async function body on `engine` with the tools of `host`, skipping validation.
pub async fn run_on_host(engine: &dyn Engine, host: &ScriptedHost, body: &str, limits: &Limits) -> Outcome {
    run_as(engine, host, "test", body, limits).await
}

async fn run_as(
    engine: &dyn Engine,
    host: &ScriptedHost,
    caller: &str,
    body: &str,
    limits: &Limits,
) -> Outcome {
    let script = format!("\"use strict\";\n(async function () {{\n{body}\n}})");
    engine
        .execute(ExecutionRequest {
            code: Prepared { script, positions: PositionMap::default() }.into(),
            limits: limits.clone(),
            catalog: host.catalog(),
            host: Arc::new(host.clone()),
            execution: Arc::new(ExecutionInfo::new(caller, body)),
            events: None,
        })
        .await
}

#[track_caller]
pub fn completed(outcome: &Outcome) -> &Value {
    match &outcome.status {
        Status::Completed { result } => result,
        other => panic!("expected completed, got {other:?}\nconsole: {:?}", outcome.console),
    }
}

#[track_caller]
pub fn threw(outcome: &Outcome) -> (&str, &str) {
    match &outcome.status {
        Status::Threw { error } => (error.name.as_str(), error.message.as_str()),
        other => panic!("expected threw, got {other:?}"),
    }
}

#[track_caller]
pub fn limit(outcome: &Outcome) -> LimitKind {
    match &outcome.status {
        Status::LimitExceeded { limit, .. } => *limit,
        other => panic!("expected limit_exceeded, got {other:?}"),
    }
}

#[track_caller]
pub fn rejected(outcome: &Outcome) -> (&str, u32, u32) {
    match &outcome.status {
        Status::Rejected { rejection } => (rejection.rule.as_str(), rejection.line, rejection.column),
        other => panic!("expected rejected, got {other:?}"),
    }
}
