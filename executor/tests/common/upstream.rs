//! Test upstreams: the fault-injection server (`mcp-test-server`), the real third-party servers installed
//! by `scripts/setup-mcp-servers.sh`, and an in-process binding proxy on a Unix socket.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use mcp_guard_binding_client::ProxyToolHost;
use mcp_guard_binding_proxy::{BindingProxy, audit::AuditLog, service};
use mcp_guard_crds::GuardConfig;
use mcp_guard_sandbox::sandbox::Sandbox;
use mcp_guard_tools::ToolIndex;

/// The workspace's target directory (where `cargo test` put this test binary).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/<test> -> target/debug
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Path of the `mcp-test-server` binary, built on first use when `cargo test -p` did not build it.
pub fn test_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = target_dir().join("mcp-test-server");
        if !bin.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "mcp-guard-test-server", "--bin", "mcp-test-server"])
                .status()
                .unwrap();
            assert!(status.success(), "cannot build mcp-test-server");
        }
        bin
    })
    .clone()
}

/// A child process killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `mcp-test-server http` with extra arguments; waits for its `listening on` line.
pub fn http_test_server(args: &[&str]) -> Server {
    let listen: &[&str] = if args.contains(&"--listen") { &[] } else { &["--listen", "127.0.0.1:0"] };
    let mut child = Command::new(test_server_bin())
        .arg("http")
        .args(listen)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
    Server { child, url }
}

/// The install directory of the real third-party servers.
pub fn real_servers_dir() -> PathBuf {
    let cache = std::env::var_os("MCP_GUARD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mcp-guard"));
    let dir = cache.join("mcp-servers");
    assert!(
        dir.join("venv/bin/mcp-server-time").exists(),
        "real MCP servers are not installed: run scripts/setup-mcp-servers.sh (make test does)"
    );
    dir
}

/// A unique temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mcp-guard-test-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An audit sink that tests can read.
#[derive(Clone, Default)]
pub struct Records(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Records {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Records {
    pub fn all(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.all().into_iter().filter(|r| r["event"] == event).collect()
    }
}

/// A binding proxy served on a Unix socket in this process, and a sandbox wired to it.
pub struct ProxyFixture {
    pub proxy: Arc<BindingProxy>,
    pub host: ProxyToolHost,
    pub sandbox: Sandbox,
    pub config: GuardConfig,
    pub audit: Records,
    pub socket: PathBuf,
    _dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for ProxyFixture {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Start a proxy for `yaml` (a GuardConfig) and connect a sandbox to it.
pub async fn proxy_fixture(yaml: &str) -> ProxyFixture {
    let config = GuardConfig::from_yaml(yaml, "test config").unwrap();
    let audit = Records::default();
    let proxy = BindingProxy::new(config.clone(), AuditLog::to_writer(Box::new(audit.clone())));
    proxy.connect_all().await;
    let dir = TempDir::new("proxy");
    let socket = dir.path().join("proxy.sock");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = proxy.clone();
    let path = socket.clone();
    tokio::spawn(async move {
        service::serve_unix(serving, &path, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let host = ProxyToolHost::connect(socket.clone()).unwrap();
    host.wait_ready(Duration::from_secs(10)).await.unwrap();
    let catalog = ToolIndex::new(host.list_tools().await.unwrap()).catalog();
    let sandbox = Sandbox::new(catalog, Arc::new(host.clone()));
    ProxyFixture { proxy, host, sandbox, config, audit, socket, _dir: dir, shutdown: Some(tx) }
}

/// YAML for a stdio server entry running the fault-injection server.
pub fn stdio_server(name: &str, extra: &str) -> String {
    format!("  - name: {name}\n    command: {}\n    args: [stdio]\n{extra}", test_server_bin().display())
}
