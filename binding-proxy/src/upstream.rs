//! One upstream MCP server, reached with rmcp (streamable HTTP or a stdio child process). The session is
//! initialised once and reused by every call; a failed session is replaced on the next use, with
//! exponential backoff between attempts; a changed credential (a rotated Secret) starts a new session.
//! Tools are discovered with pagination at connect, and again whenever the server announces
//! `tools/list_changed`; each tool's definition is pinned by hash the first time it is seen.

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex as StdMutex},
    time::{Duration, Instant},
};

use mcp_guard_crds::{ServerConfig, ToolChangePolicy, Transport};
use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ClientConfig, Tool},
    service::{NotificationContext, RunningService},
    transport::{
        StreamableHttpClientTransport, TokioChildProcess,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::Mutex,
};

use super::{audit::AuditLog, credentials::Credentials, redact::Redactor, ssrf};

/// Why an upstream operation failed; mapped to the internal API's failure kinds.
///
/// The message leaves the proxy (the sandbox's `Failure.message`, a server's `error` in ListTools): it
/// says what kind of failure it was and which configured server, never the URL, an address and port,
/// or a header. Address-guard refusals name the refused address and its class (the policy's own
/// rule). The detail of a transport error (the reqwest or rmcp chain) goes to the proxy's log,
/// redacted; see [`Upstream::fail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    Unavailable(String),
    Timeout(Duration),
    AddressRefused(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Unavailable(m) => write!(f, "{m}"),
            UpstreamError::Timeout(d) => {
                write!(f, "the tool call timed out after {}", humantime::format_duration(*d))
            }
            UpstreamError::AddressRefused(m) => write!(f, "{m}"),
        }
    }
}

/// A discovered tool with its pin.
#[derive(Debug, Clone)]
pub struct DiscoveredTool {
    pub tool: Tool,
    /// sha256 of the definition first seen.
    pub pinned: String,
    /// Set when the definition changed after pinning and the server refuses changed tools.
    pub changed: bool,
}

/// Tells the owner that the server announced a new tool list.
#[derive(Clone)]
struct Notifier {
    refresh: Arc<tokio::sync::Notify>,
}

impl ClientHandler for Notifier {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.client_info.name = "mcp-guard-binding-proxy".into();
        info.client_info.version = env!("CARGO_PKG_VERSION").into();
        info
    }

    fn on_tool_list_changed(
        &self,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + Send + '_ {
        self.refresh.notify_one();
        std::future::ready(())
    }
}

type Session = Arc<RunningService<RoleClient, Notifier>>;

struct Connection {
    session: Option<(Session, String)>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<UpstreamError>,
}

/// One upstream server.
pub struct Upstream {
    pub config: ServerConfig,
    credentials: Arc<Credentials>,
    redactor: Arc<Redactor>,
    audit: Arc<AuditLog>,
    conn: Mutex<Connection>,
    tools: StdMutex<BTreeMap<String, DiscoveredTool>>,
    server_info: StdMutex<Option<(String, String)>>,
    protocol_version: StdMutex<Option<String>>,
    refresh: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("server", &self.config.name).finish()
    }
}

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often a disconnected server is tried again in the background.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

/// sha256 of a tool's definition (name, description, schemas, annotations) in canonical JSON.
pub fn definition_hash(tool: &Tool) -> String {
    let canonical = json!({
        "name": tool.name,
        "description": tool.description,
        "inputSchema": tool.input_schema,
        "outputSchema": tool.output_schema,
        "annotations": tool.annotations,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

impl Upstream {
    pub fn new(
        config: ServerConfig,
        credentials: Arc<Credentials>,
        redactor: Arc<Redactor>,
        audit: Arc<AuditLog>,
    ) -> Arc<Self> {
        // The configured URL may carry secrets (a key in its query, userinfo, a token in its path):
        // they join the redaction set before anything can echo them.
        if let Some(Transport::Http { url, .. }) = config.transport() {
            redactor.add_url(url);
        }
        let upstream = Arc::new(Upstream {
            config,
            credentials,
            redactor,
            audit,
            conn: Mutex::new(Connection { session: None, failures: 0, retry_at: None, last_error: None }),
            tools: StdMutex::new(BTreeMap::new()),
            server_info: StdMutex::new(None),
            protocol_version: StdMutex::new(None),
            refresh: Arc::new(tokio::sync::Notify::new()),
        });
        // Refresh the tool list whenever the server says it changed; the task ends with the upstream.
        let weak = Arc::downgrade(&upstream);
        let refresh = upstream.refresh.clone();
        tokio::spawn(async move {
            loop {
                refresh.notified().await;
                let Some(up) = weak.upgrade() else { return };
                if let Err(e) = up.refresh_tools().await {
                    tracing::warn!(server = %up.config.name, error = %e, "cannot refresh the tool list");
                }
            }
        });
        // Keep trying a server that is not connected (it may start after us, or a NetworkPolicy may not
        // admit this pod yet); `session` applies the backoff.
        let weak = Arc::downgrade(&upstream);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECONNECT_EVERY).await;
                let Some(up) = weak.upgrade() else { return };
                if !up.connected().await {
                    let _ = up.session().await;
                }
            }
        });
        upstream
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The bound tools (after the server's allow/deny filter).
    pub fn tools(&self) -> Vec<DiscoveredTool> {
        self.tools.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    pub fn tool(&self, name: &str) -> Option<DiscoveredTool> {
        self.tools.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn server_info(&self) -> Option<(String, String)> {
        self.server_info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The MCP protocol version agreed in the last successful handshake.
    pub fn protocol_version(&self) -> Option<String> {
        self.protocol_version.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub async fn connected(&self) -> bool {
        self.conn.lock().await.session.as_ref().is_some_and(|(s, _)| !s.is_closed())
    }

    /// The credential sources that give no value now (see [`Credentials::missing`]).
    pub fn missing_credentials(&self) -> Vec<String> {
        self.credentials.missing(self.config.credentials())
    }

    pub async fn last_error(&self) -> Option<String> {
        self.conn.lock().await.last_error.as_ref().map(ToString::to_string)
    }

    /// A failure that leaves the proxy as `server <name>: <what>`, with the detail (which may name the
    /// URL, an address, a header) only in the proxy's log, redacted.
    fn fail(&self, what: &str, detail: &dyn std::fmt::Display) -> UpstreamError {
        let detail = detail.to_string();
        tracing::warn!(server = %self.config.name, error = %self.redactor.redact(&detail), "{what}");
        UpstreamError::Unavailable(format!("server {}: {what}", self.config.name))
    }

    /// Credentials as they are now; a different fingerprint than the session's means a rotation.
    fn credential_fingerprint(&self) -> Result<(Vec<(String, String)>, String), UpstreamError> {
        let entries: Vec<_> = self.config.credentials().cloned().collect();
        let resolved = self
            .credentials
            .resolve_all(&entries)
            .map_err(|e| self.fail("unavailable: a credential cannot be resolved", &e))?;
        let mut h = Sha256::new();
        for (k, v) in &resolved {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        Ok((resolved, hex::encode(h.finalize())))
    }

    /// Connect now (if not connected) and discover the tools.
    pub async fn ensure_connected(&self) -> Result<(), UpstreamError> {
        self.session().await.map(|_| ())
    }

    /// The live session, connecting (or reconnecting) when needed.
    async fn session(&self) -> Result<Session, UpstreamError> {
        let (resolved, fingerprint) = match self.credential_fingerprint() {
            Ok(c) => c,
            Err(e) => {
                // Kept as the reason ListTools (and so the operator's status) gives.
                self.conn.lock().await.last_error = Some(e.clone());
                return Err(e);
            }
        };
        let mut conn = self.conn.lock().await;
        if let Some((session, fp)) = &conn.session {
            if !session.is_closed() && *fp == fingerprint {
                return Ok(session.clone());
            }
            if *fp != fingerprint {
                tracing::info!(server = %self.config.name, "credentials changed; starting a new session");
            }
        }
        conn.session = None;
        // While backing off, answer with the last failure (its kind too) instead of trying again.
        if let (Some(at), Some(last)) = (conn.retry_at, &conn.last_error)
            && Instant::now() < at
        {
            return Err(last.clone());
        }
        let timeout = self.config.timeouts.connect.duration();
        let attempt = tokio::time::timeout(timeout, self.connect(resolved)).await;
        let connected = match attempt {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Unavailable(format!(
                "connecting to server {} timed out after {}",
                self.config.name,
                humantime::format_duration(timeout)
            ))),
        };
        // A session counts as connected only once its tools are listed: until then `connected()` stays
        // false, so nobody (discovery, the executor's catalog) takes a handshake without a tool list for
        // a server that has no tools. A failed listing is a failed connection, with its backoff.
        let result = match connected {
            Ok(session) => self.refresh_tools_with(&session).await.map(|()| session),
            Err(e) => Err(e),
        };
        match result {
            Ok(session) => {
                conn.failures = 0;
                conn.retry_at = None;
                conn.last_error = None;
                conn.session = Some((session.clone(), fingerprint));
                Ok(session)
            }
            Err(e) => {
                conn.failures = conn.failures.saturating_add(1);
                let backoff = BACKOFF_BASE.saturating_mul(1 << conn.failures.min(7)).min(BACKOFF_MAX);
                conn.retry_at = Some(Instant::now() + backoff);
                // The message is already safe to show (see `UpstreamError`); redact anyway.
                let msg = self.redactor.redact(&e.to_string()).into_owned();
                let failure = match e {
                    UpstreamError::AddressRefused(_) => UpstreamError::AddressRefused(msg),
                    _ => UpstreamError::Unavailable(msg),
                };
                conn.last_error = Some(failure.clone());
                Err(failure)
            }
        }
    }

    async fn connect(&self, resolved: Vec<(String, String)>) -> Result<Session, UpstreamError> {
        let handler = Notifier { refresh: self.refresh.clone() };
        let service = match self.config.transport() {
            Some(Transport::Http { url, .. }) => {
                let parsed =
                    url::Url::parse(url).map_err(|e| self.fail("unavailable: its url is invalid", &e))?;
                match ssrf::precheck(&parsed, self.config.allow_private_endpoint).await {
                    Ok(()) => {}
                    Err(ssrf::PrecheckError::Refused(e)) => {
                        tracing::warn!(server = %self.config.name, error = %e, "address refused");
                        return Err(UpstreamError::AddressRefused(format!(
                            "server {}: {e}",
                            self.config.name
                        )));
                    }
                    Err(ssrf::PrecheckError::Unresolved(e)) => {
                        return Err(self.fail("unavailable: its host name cannot be resolved", &e));
                    }
                }
                let mut headers = reqwest::header::HeaderMap::new();
                for (name, value) in resolved {
                    let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|e| self.fail("unavailable: a configured header name is invalid", &e))?;
                    let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                        self.fail(
                            "unavailable: a configured header value is invalid",
                            &format!("header {name}: it contains characters not allowed in headers"),
                        )
                    })?;
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                let client = http_client(
                    headers,
                    self.config.allow_private_endpoint,
                    self.config.timeouts.connect.duration(),
                )
                .map_err(|e| self.fail("unavailable: cannot build the HTTP client", &e))?;
                let transport = StreamableHttpClientTransport::with_client(
                    client,
                    StreamableHttpClientTransportConfig::with_uri(url),
                );
                handler.serve(transport).await.map_err(|e| self.connect_error(&e))?
            }
            Some(Transport::Stdio { command, args, .. }) => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear();
                for keep in ["PATH", "HOME", "LANG"] {
                    if let Some(v) = std::env::var_os(keep) {
                        cmd.env(keep, v);
                    }
                }
                cmd.envs(resolved);
                cmd.kill_on_drop(true);
                let (transport, stderr) =
                    TokioChildProcess::builder(cmd).stderr(Stdio::piped()).spawn().map_err(|e| {
                        self.fail("unavailable: cannot start its command", &format!("`{command}`: {e}"))
                    })?;
                if let Some(stderr) = stderr {
                    self.forward_stderr(stderr);
                }
                handler.serve(transport).await.map_err(|e| self.connect_error(&e))?
            }
            None => {
                return Err(UpstreamError::Unavailable(format!(
                    "server {} has no transport",
                    self.config.name
                )));
            }
        };
        if let Some(info) = service.peer_info() {
            if let Some(implementation) = &info.server_info {
                *self.server_info.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((implementation.name.clone(), implementation.version.clone()));
            }
            *self.protocol_version.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(info.protocol_version.to_string());
        }
        Ok(Arc::new(service))
    }

    fn connect_error(&self, e: &(dyn std::error::Error + 'static)) -> UpstreamError {
        if let Some(refused) = find_in_chain::<ssrf::Refused>(e) {
            // The address guard in the resolver: its message names the host and the refused address.
            tracing::warn!(server = %self.config.name, error = %self.redactor.redact(&error_chain(e)), "address refused");
            return UpstreamError::AddressRefused(format!("server {}: {refused}", self.config.name));
        }
        let kind = transport_kind(e);
        self.fail(&format!("unavailable: cannot initialise the MCP session ({kind})"), &error_chain(e))
    }

    /// A stdio server's stderr goes to our log, line by line, with secrets redacted.
    fn forward_stderr(&self, stderr: tokio::process::ChildStderr) {
        let redactor = self.redactor.clone();
        let server = self.config.name.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "upstream", server = %server, "{}", redactor.redact(&line));
            }
        });
    }

    async fn refresh_tools(&self) -> Result<(), UpstreamError> {
        let session = self.session().await?;
        self.refresh_tools_with(&session).await
    }

    /// List all tools (rmcp follows the pagination cursor), apply the filter, and compare with the pins.
    async fn refresh_tools_with(&self, session: &Session) -> Result<(), UpstreamError> {
        let listed = tokio::time::timeout(self.config.timeouts.connect.duration(), session.list_all_tools())
            .await
            .map_err(|_| {
                UpstreamError::Unavailable(format!("server {}: listing tools timed out", self.config.name))
            })?
            .map_err(|e| {
                let kind = service_error_kind(&e);
                self.fail(&format!("unavailable: cannot list tools ({kind})"), &error_chain(&e))
            })?;
        let mut tools = self.tools.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = BTreeMap::new();
        for tool in listed {
            if !self.config.tools.allows(&tool.name) {
                continue;
            }
            let hash = definition_hash(&tool);
            let entry = match tools.get(tool.name.as_ref()) {
                None => DiscoveredTool { tool, pinned: hash, changed: false },
                Some(old) if old.pinned == hash => {
                    DiscoveredTool { tool, pinned: hash, changed: old.changed }
                }
                Some(old) => {
                    let refuse = self.config.tool_changes == ToolChangePolicy::Refuse;
                    tracing::warn!(server = %self.config.name, tool = %tool.name, refuse, "a tool's definition changed after it was pinned");
                    // A failed write is logged by the audit log; calls are refused while it fails.
                    let _ = self.audit.record(
                        "tool_definition_changed",
                        json!({ "server": self.config.name, "tool": tool.name, "pinnedSha256": old.pinned, "newSha256": hash, "refused": refuse }),
                    );
                    if refuse {
                        // Keep the pin; calls are refused until the definition matches it again.
                        DiscoveredTool { tool: old.tool.clone(), pinned: old.pinned.clone(), changed: true }
                    } else {
                        DiscoveredTool { tool, pinned: hash, changed: false }
                    }
                }
            };
            next.insert(entry.tool.name.to_string(), entry);
        }
        *tools = next;
        Ok(())
    }

    /// Call a tool with the per-call timeout (capped by `budget`, the execution's remaining time).
    pub async fn call(
        &self,
        tool: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        budget: Duration,
    ) -> Result<CallToolResult, UpstreamError> {
        let timeout = self.config.timeouts.call.duration().min(budget);
        let started = Instant::now();
        let session = tokio::time::timeout(timeout, self.session())
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))??;
        let remaining = timeout.saturating_sub(started.elapsed());
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        match tokio::time::timeout(remaining, session.call_tool(params)).await {
            Err(_) => Err(UpstreamError::Timeout(timeout)),
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => {
                // Anything but an error answer from the server means the session is broken (a crashed
                // child, a dropped HTTP session): forget it so the next call starts a new one.
                if session.is_closed() || !matches!(e, rmcp::ServiceError::McpError(_)) {
                    let mut conn = self.conn.lock().await;
                    if conn.session.as_ref().is_some_and(|(s, _)| Arc::ptr_eq(s, &session)) {
                        conn.session = None;
                    }
                }
                Err(match &e {
                    // The server's own error answer (like a tool's error result): shown, redacted.
                    rmcp::ServiceError::McpError(data) => {
                        let message: String = data.message.chars().take(1024).collect();
                        let message = self.redactor.redact(&message).into_owned();
                        tracing::info!(server = %self.config.name, error = %message, "the server answered with an error");
                        UpstreamError::Unavailable(format!(
                            "server {}: the server answered with an error: {message}",
                            self.config.name
                        ))
                    }
                    other => {
                        let kind = service_error_kind(other);
                        self.fail(&format!("unavailable: the call failed ({kind})"), &error_chain(other))
                    }
                })
            }
        }
    }
}

/// The HTTP client of every upstream: the address guard in its resolver, no redirects, and no proxy.
/// Environment proxies (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are ignored: a proxy would receive
/// the traffic and its credentials, and connect to addresses the guard never sees.
pub(crate) fn http_client(
    headers: reqwest::header::HeaderMap,
    allow_private: bool,
    connect_timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .dns_resolver(ssrf::GuardedResolver::new(allow_private))
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        .build()
}

/// The first error of type `T` in `e`'s source chain.
fn find_in_chain<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// What kind of transport failure `e` is, in words that name no URL, address or header.
fn transport_kind(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return "timeout".into();
            }
            if let Some(status) = r.status() {
                return format!("HTTP status {}", status.as_u16());
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => return "connection refused".into(),
                K::TimedOut => return "timeout".into(),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    return "connection lost".into();
                }
                _ => {}
            }
        }
        current = err.source();
    }
    // Some layers keep only the text of their cause; classify by it, never echo it.
    let text = error_chain(e).to_ascii_lowercase();
    if text.contains("connection refused") {
        "connection refused".into()
    } else if text.contains("timed out") || text.contains("timeout") {
        "timeout".into()
    } else if text.contains("dns error") || text.contains("failed to lookup") {
        "host name not resolved".into()
    } else if text.contains("certificate") || text.contains("tls") {
        "TLS failure".into()
    } else if text.contains("closed") || text.contains("reset") {
        "connection lost".into()
    } else {
        "unavailable".into()
    }
}

fn service_error_kind(e: &rmcp::ServiceError) -> String {
    match e {
        rmcp::ServiceError::McpError(_) => "the server answered with an error".into(),
        rmcp::ServiceError::TransportClosed => "connection lost".into(),
        rmcp::ServiceError::Timeout { .. } => "timeout".into(),
        rmcp::ServiceError::UnexpectedResponse => "unexpected response".into(),
        other => transport_kind(other),
    }
}

/// An error and its sources, as one line: reqwest and rmcp keep the useful part (such as the address
/// guard's refusal) in the source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !message.contains(&part) {
            message.push_str(": ");
            message.push_str(&part);
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::{
        io::{Read, Write},
        net::TcpListener,
        process::Command,
        time::Duration,
    };

    use super::*;

    const CHILD: &str = "MCP_GUARD_TEST_NO_PROXY_CHILD";
    const TEST: &str = "upstream::tests::environment_proxies_are_ignored";

    /// Environment proxies are read when a client is built, and setting them would affect every test
    /// thread: the check runs in a child process (this test binary, this test) with them set.
    #[test]
    fn environment_proxies_are_ignored() {
        if std::env::var_os(CHILD).is_some() {
            return child();
        }
        let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
        proxy.set_nonblocking(true).unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", TEST, "--nocapture", "--test-threads=1"]).env(CHILD, "1");
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            cmd.env(var, &proxy_url);
        }
        for var in ["NO_PROXY", "no_proxy", "REQUEST_METHOD"] {
            cmd.env_remove(var);
        }
        let out = cmd.output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the child failed:\n{text}");
        assert!(text.contains("1 passed"), "the child did not run the test:\n{text}");
        assert!(proxy.accept().is_err(), "upstream traffic went to the environment's proxy");
    }

    /// In the child: a request through the upstream client reaches the server, not the proxy.
    fn child() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/mcp?key=SECRETVALUE", server.local_addr().unwrap());
        let accepted = std::thread::spawn(move || {
            let (mut stream, _) = server.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap();
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let status = runtime.block_on(async {
            let client =
                http_client(reqwest::header::HeaderMap::new(), true, Duration::from_secs(5)).unwrap();
            tokio::time::timeout(Duration::from_secs(10), client.get(&url).send()).await
        });
        let status = status.expect("the request timed out").expect("the request failed").status();
        assert_eq!(status.as_u16(), 204);
        let request = accepted.join().unwrap();
        // Through a proxy the request line would carry the absolute URL.
        assert!(request.starts_with("GET /mcp?key=SECRETVALUE HTTP/1.1"), "{request}");
    }
}
