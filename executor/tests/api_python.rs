//! A client in another language, written from the `.proto` alone: `clients/python/mcp_guard_client.py`
//! generates its stubs with grpcio-tools into a temporary directory and runs an execution that calls a
//! real MCP tool (`mcp-server-time`, from PyPI) through `mcp-guard serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::{path::PathBuf, process::Command};

use api_support::{ALICE, TempDir, python, serve, time_server};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_client(grpc: &str, stubs: &TempDir, extra: &[&str]) -> Vec<Value> {
    let out = Command::new(python())
        .arg(repo().join("clients/python/mcp_guard_client.py"))
        .arg("--proto")
        .arg(repo().join("proto"))
        .args(["--target", grpc, "--gen-dir"])
        .arg(stubs.path())
        .args(extra)
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "the client failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\nstderr: {stderr}")))
        .collect()
}

#[test]
fn a_python_grpc_client_runs_code_that_calls_a_real_mcp_tool() {
    let config = format!(
        "limits:\n  wallTime: 20s\nservers:\n  - name: time\n    command: {}\n    args: [--local-timezone, UTC]\n    timeouts: {{ connect: 30s }}\n",
        time_server().display()
    );
    let s = serve(&config, &[]);
    let stubs = TempDir::new("python-gen");
    let code = "const now = await mcp.time.get_current_time({ timezone: 'UTC' });\n\
                console.log('asked the time server');\n\
                return { timezone: now.timezone, hasDatetime: typeof now.datetime === 'string' };";

    let lines = run_client(&s.grpc, &stubs, &["--token", ALICE, "--code", code]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let outcome = &lines[0];
    assert_eq!(outcome["outcome"], "completed", "{outcome}");
    assert_eq!(outcome["result"]["timezone"], "UTC", "{outcome}");
    assert_eq!(outcome["result"]["hasDatetime"], true, "{outcome}");
    assert_eq!(outcome["tool_calls"][0]["server"], "time");
    assert_eq!(outcome["tool_calls"][0]["tool"], "get_current_time");
    assert_eq!(outcome["tool_calls"][0]["status"], "ok");
    assert_eq!(outcome["console"][0]["message"], "asked the time server");
    assert!(stubs.path().join("mcpguard/v1/executor_pb2_grpc.py").exists(), "stubs generated at test time");

    // Streaming from Python: events first, the outcome last.
    let events = run_client(&s.grpc, &stubs, &["--token", ALICE, "--code", code, "--stream"]);
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["tool_call_started", "tool_call_finished", "console", "outcome"], "{events:?}");
    assert_eq!(events[3]["outcome"]["outcome"], "completed");

    // ListTools, and the documented status code for a bad token.
    let tools = run_client(&s.grpc, &stubs, &["--token", ALICE, "--list-tools"]);
    assert!(tools.iter().any(|t| t["binding"] == "mcp.time.get_current_time"), "{tools:?}");
    let refused = run_client(&s.grpc, &stubs, &["--token", "wrong-token-00000000", "--code", "return 1"]);
    assert_eq!(refused[0]["grpc_error"], "UNAUTHENTICATED", "{refused:?}");
    let refused = run_client(&s.grpc, &stubs, &["--token", ALICE, "--code", ""]);
    assert_eq!(refused[0]["grpc_error"], "INVALID_ARGUMENT", "{refused:?}");
}
