//! The `mcp-guard` command line: exit codes, config errors, and the local credential boundary (the
//! binding proxy child holds the credentials; the executor process's environment is empty).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use common::upstream::{TempDir, test_server_bin};
use serde_json::Value;

fn mcp_guard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
}

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn run(args: &[&str]) -> (i32, Value, String) {
    let out = mcp_guard().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), json, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn each_example_ends_in_its_outcome_with_its_exit_code() {
    for (file, kind, code) in [
        ("completed.ts", "completed", 0),
        ("rejected.js", "rejected", 3),
        ("threw.ts", "threw", 4),
        ("limit_exceeded.js", "limit_exceeded", 5),
    ] {
        let path = examples().join(file);
        let (status, json, stderr) = run(&[
            "exec",
            "--config",
            examples().join("limits.yaml").to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        assert_eq!(json["outcome"], kind, "{file}: {json} {stderr}");
        assert_eq!(status, code, "{file}");
    }
}

#[test]
fn code_from_stdin() {
    let mut child =
        mcp_guard().args(["exec", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"return 6 * 7").unwrap();
    let out = child.wait_with_output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["result"], 42);
}

#[test]
fn bad_input_is_a_clear_usage_error() {
    let dir = TempDir::new("cli");
    let bad_config = dir.path().join("bad.yaml");
    std::fs::write(&bad_config, "limits:\n  memory: lots\n").unwrap();
    let code = dir.path().join("code.js");
    std::fs::write(&code, "return 1").unwrap();
    let (status, _, stderr) =
        run(&["exec", "--config", bad_config.to_str().unwrap(), code.to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(stderr.contains("bad.yaml") && stderr.contains("lots"), "{stderr}");

    let binary = dir.path().join("binary.js");
    std::fs::write(&binary, b"return '\xff\xfe'").unwrap();
    let (status, _, stderr) = run(&["exec", binary.to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(stderr.contains("not valid UTF-8") && stderr.contains("offset 8"), "{stderr}");

    let (status, _, stderr) = run(&["exec", "/nonexistent/code.ts"]);
    assert_eq!(status, 2);
    assert!(stderr.contains("cannot read /nonexistent/code.ts"), "{stderr}");
}

fn environ(pid: u32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default()).to_string()
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        for c in std::fs::read_to_string(path).unwrap_or_default().split_whitespace() {
            out.push(c.parse().unwrap());
        }
    }
    out
}

/// The credential is in the proxy's environment (the test checks that, so it would notice a leak) and
/// in neither the executor's environment nor anything the sandbox sees.
#[test]
fn the_executor_process_holds_no_credential() {
    const SECRET: &str = "env-secret-5d1e0b7a94-for-the-upstream";
    let dir = TempDir::new("cli-proxy");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "servers:\n  - name: faults\n    command: {}\n    args: [stdio]\n    env:\n      - name: MCP_TEST_TOKEN\n        valueFrom: {{ env: UPSTREAM_TOKEN }}\nbinding:\n  audit: {{ path: {} }}\n",
            test_server_bin().display(),
            dir.path().join("audit.jsonl").display()
        ),
    )
    .unwrap();
    let code = dir.path().join("code.js");
    std::fs::write(
        &code,
        "const who = await mcp.faults.whoami(); await mcp.faults.slow({ ms: 1500 }); return who;",
    )
    .unwrap();
    let child = mcp_guard()
        .args(["exec", "--config", config.to_str().unwrap(), code.to_str().unwrap()])
        .env("UPSTREAM_TOKEN", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait for the re-exec'd executor and its proxy child to be up, then look at both environments.
    let mut proxy_env = String::new();
    let mut executor_env = String::new();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        executor_env = environ(pid);
        if let Some(proxy) = children(pid).into_iter().find(|c| environ(*c).contains("UPSTREAM_TOKEN")) {
            proxy_env = environ(proxy);
            if !executor_env.contains("UPSTREAM_TOKEN") {
                break;
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        proxy_env.contains(SECRET),
        "the proxy child must hold the credential (else this test proves nothing)"
    );
    assert!(!executor_env.contains(SECRET), "the executor's environment holds the credential");
    assert!(executor_env.is_empty(), "the executor's environment is scrubbed entirely: {executor_env:?}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["result"], "[REDACTED]", "{json}");
    assert!(!stdout.contains(SECRET));
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("execution_started") && audit.contains("execution_ended"), "{audit}");
    assert!(!audit.contains(SECRET));
}

/// A reader that goes away before the outcome is printed (`mcp-guard exec x.js | head -c 1`) ends the
/// process quietly with the outcome's exit code: no panic message, no backtrace, no abort.
#[test]
fn closed_standard_output_exits_quietly() {
    for (code, exit) in [("return 'r'.repeat(100000)", 0), ("throw new Error('boom')", 4)] {
        let mut child = mcp_guard()
            .args(["exec", "-"])
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the child can write anything.
        drop(child.stdout.take());
        child.stdin.take().unwrap().write_all(code.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{code}: {stderr}");
        assert_eq!(out.status.code(), Some(exit), "{code}: {:?} {stderr}", out.status);
    }
    // Through a real shell pipeline, too.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf %s \"return 'x'.repeat(200000)\" | RUST_BACKTRACE=1 '{}' exec - | head -c 1 >/dev/null",
            env!("CARGO_BIN_EXE_mcp-guard")
        ))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
