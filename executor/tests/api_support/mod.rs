//! Shared helpers of the API tests: a running `mcp-guard serve` (the real binary, with its two-stage
//! start and binding proxy), clients, and the paths of the tools `scripts/setup-api-tests.sh` installs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use mcp_guard_proto::v1::{self as pb, executor_client::ExecutorClient};
use tonic::transport::Channel;

/// Tokens of the default token file.
pub const ALICE: &str = "alice-token-0123456789";
pub const BOB: &str = "bob-token-0123456789ab";

/// Shared with the other integration tests: temporary directories, test upstreams.
#[path = "../common/upstream.rs"]
pub mod upstream;
pub use upstream::TempDir;

/// Where the test tools live.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("MCP_GUARD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mcp-guard"))
}

fn installed(path: PathBuf, what: &str) -> PathBuf {
    assert!(path.exists(), "{what} is not installed at {}: run scripts/setup-api-tests.sh", path.display());
    path
}

/// Python with grpcio and grpcio-tools.
pub fn python() -> PathBuf {
    installed(cache_dir().join("api-tests/venv/bin/python"), "the grpcio virtualenv")
}

/// Node.js >= 22 (for the conformance suite).
pub fn node22() -> PathBuf {
    installed(cache_dir().join("api-tests/node22/node"), "Node.js 22")
}

/// The conformance suite's entry point.
pub fn conformance() -> PathBuf {
    installed(
        cache_dir().join("api-tests/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"),
        "@modelcontextprotocol/conformance",
    )
}

/// `@modelcontextprotocol/server-everything`'s entry point (scripts/setup-mcp-servers.sh).
pub fn everything() -> PathBuf {
    installed(
        cache_dir().join(
            "mcp-servers/everything/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        ),
        "@modelcontextprotocol/server-everything (scripts/setup-mcp-servers.sh)",
    )
}

/// `mcp-server-time` (scripts/setup-mcp-servers.sh).
pub fn time_server() -> PathBuf {
    installed(
        cache_dir().join("mcp-servers/venv/bin/mcp-server-time"),
        "mcp-server-time (scripts/setup-mcp-servers.sh)",
    )
}

/// The fault-injection MCP server, built on first use.
pub fn test_server_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("mcp-test-server");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "mcp-guard-test-server", "--bin", "mcp-test-server"])
            .status()
            .unwrap();
        assert!(status.success(), "cannot build mcp-test-server");
    }
    bin
}

/// YAML binding the fault-injection server (stdio) as `faults`.
pub fn faults_config(extra: &str) -> String {
    format!(
        "servers:\n  - name: faults\n    command: {}\n    args: [stdio]\nbinding:\n  audit: {{ path: \"-\" }}\n{extra}",
        test_server_bin().display()
    )
}

/// A running `mcp-guard serve`; killed on drop.
pub struct Serve {
    pub child: Child,
    pub grpc: String,
    pub mcp: String,
    pub metrics: String,
    pub dir: TempDir,
    stderr: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- mcp-guard serve stderr (tail) ---\n{}", self.stderr_tail(4000));
        }
    }
}

/// Start `mcp-guard serve` with `config` (YAML) and a token file with alice and bob; `args` are added
/// (and may override the listen addresses). Waits for the announcement line.
pub fn serve(config: &str, args: &[&str]) -> Serve {
    match try_serve(config, args, true) {
        Ok(s) => s,
        Err((status, stderr)) => panic!("mcp-guard serve did not start ({status:?}):\n{stderr}"),
    }
}

/// Like [`serve`]; `Err` with the exit status and stderr when it does not start.
pub fn try_serve(
    config: &str,
    args: &[&str],
    with_tokens: bool,
) -> Result<Serve, (Option<ExitStatus>, String)> {
    try_serve_env(config, args, with_tokens, &[])
}

/// Like [`try_serve`], with extra environment variables for the first stage.
pub fn try_serve_env(
    config: &str,
    args: &[&str],
    with_tokens: bool,
    env: &[(&str, &str)],
) -> Result<Serve, (Option<ExitStatus>, String)> {
    let dir = TempDir::new("serve");
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# test callers\n{ALICE} alice\n{BOB} bob\n")).unwrap();
    let stderr = dir.path().join("stderr.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-guard"));
    cmd.arg("serve").arg("--config").arg(&config_path);
    for flag in ["--grpc-listen", "--mcp-listen", "--metrics-listen"] {
        if !args.contains(&flag) {
            cmd.args([flag, "127.0.0.1:0"]);
        }
    }
    if with_tokens {
        cmd.arg("--auth-tokens").arg(&tokens);
    }
    cmd.args(args);
    cmd.envs(env.iter().copied());
    cmd.env("RUST_LOG", "info,rmcp=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(90)).unwrap_or_default();
    let text = std::fs::read_to_string(&stderr).unwrap_or_default();
    let Ok(announce) = serde_json::from_str::<serde_json::Value>(&line) else {
        let _ = child.kill();
        let status = child.wait().ok();
        let text = std::fs::read_to_string(&stderr).unwrap_or(text);
        return Err((status, text));
    };
    let field = |k: &str| announce[k].as_str().unwrap_or_default().to_string();
    Ok(Serve { grpc: field("grpc"), mcp: field("mcp"), metrics: field("metrics"), child, dir, stderr })
}

impl Serve {
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub async fn client(&self) -> ExecutorClient<Channel> {
        let channel = Channel::from_shared(self.grpc_url()).unwrap().connect().await.unwrap();
        ExecutorClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20)
    }

    pub fn stderr_tail(&self, bytes: usize) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let start = text.len().saturating_sub(bytes);
        text.get(start..).unwrap_or(&text).to_string()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Send SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Wait for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn metrics_text(&self) -> String {
        reqwest::get(&self.metrics).await.unwrap().text().await.unwrap()
    }
}

/// A request with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn code(code: &str) -> pb::ExecuteRequest {
    pb::ExecuteRequest { code: code.to_string(), limits: None }
}

/// The outcome's status of an Execute response.
pub fn status_of(response: &pb::ExecuteResponse) -> &pb::outcome::Status {
    response.outcome.as_ref().unwrap().status.as_ref().unwrap()
}

/// The completed result as JSON, or a panic naming what happened instead.
pub fn completed(response: &pb::ExecuteResponse) -> serde_json::Value {
    match status_of(response) {
        pb::outcome::Status::CompletedJson(json) => serde_json::from_str(json).unwrap(),
        other => panic!("expected completed, got {other:?} ({response:?})"),
    }
}

/// Read a whole stream into a string (for child output).
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
