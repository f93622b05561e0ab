//! `mcp-guard serve`: the executor as a server (gRPC Executor API and MCP front door), and the
//! credential boundary shared with `exec`: the binding proxy is started as a child with this process's
//! environment, then this process replaces itself with a copy of itself that has an empty environment.

use std::{
    ffi::OsString,
    io::Write,
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use mcp_guard_api::{
    ApiState, EdgeLimits,
    auth::{AuthConfig, Authenticator, TokenReviewConfig},
    listen::{ServeOptions, serve},
    tls::TlsFiles,
};
use mcp_guard_binding_client::ProxyToolHost;
use mcp_guard_crds::{ByteSize, GuardConfig};
use mcp_guard_sandbox::{
    engine::{
        Engine,
        confine::isolate_confinement,
        process::{HostCommand, ProcessEngine},
        quickjs::QuickJsEngine,
    },
    host::{NoTools, ToolHost},
};
use mcp_guard_tools::{Catalog, ToolIndex};

use crate::{EXIT_INTERNAL, EXIT_USAGE, fail, runtime};

/// Arguments of `mcp-guard serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Configuration file (YAML).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Address of the gRPC Executor API (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub grpc_listen: String,
    /// Address of the MCP front door, served at /mcp (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub mcp_listen: String,
    /// Address of /metrics (Prometheus), /healthz and /readyz (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub metrics_listen: String,
    /// Static bearer tokens: `<token> <caller-name>` per line; re-read when the file changes.
    #[arg(long)]
    pub auth_tokens: Option<PathBuf>,
    /// Check bearer tokens with the Kubernetes TokenReview API, for this audience.
    #[arg(long)]
    pub token_review_audience: Option<String>,
    /// The Kubernetes API server for TokenReview (default: in-cluster, from KUBERNETES_SERVICE_HOST/PORT).
    #[arg(long)]
    pub token_review_url: Option<String>,
    /// This pod's service-account token for calling TokenReview.
    #[arg(long, default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token")]
    pub token_review_token_file: PathBuf,
    /// CA of the API server (default: the in-cluster service-account CA when the URL is https).
    #[arg(long)]
    pub token_review_ca: Option<PathBuf>,
    /// TLS certificate (PEM) for both doors.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) for client certificates (mTLS): the caller is the certificate's subject CN.
    #[arg(long, requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Callers allowed to execute (comma-separated; `prefix*` matches by prefix); default: every
    /// authenticated caller.
    #[arg(long, value_delimiter = ',')]
    pub allowed_callers: Vec<String>,
    /// Callers allowed to list and describe the bound tools only, never to execute (comma-separated;
    /// `prefix*` matches by prefix). A caller on this list and not on --allowed-callers gets
    /// PERMISSION_DENIED from Execute, ExecuteStream and execute_code, even without --allowed-callers.
    #[arg(long, value_delimiter = ',')]
    pub discovery_callers: Vec<String>,
    /// Run without caller authentication. Only loopback addresses may be bound; logs a warning.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// With --insecure-no-auth, bind non-loopback addresses too: only a NetworkPolicy (or a firewall)
    /// then decides who may run code. The operator sets it only where the cluster admin allowed
    /// unauthenticated executors.
    #[arg(long, requires = "insecure_no_auth")]
    pub insecure_no_auth_network: bool,
    /// Executions that run at the same time.
    #[arg(long, default_value_t = 64)]
    pub max_concurrent: usize,
    /// Executions that may wait for a slot; more get RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 256)]
    pub max_queue: usize,
    /// Largest request message or HTTP body.
    #[arg(long, default_value = "4Mi")]
    pub max_message_size: ByteSize,
    /// Longest wait for in-flight executions at shutdown.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Where isolates run: `process` (the default: each execution in a fresh, confined isolate-host
    /// process that is killed at the wall-time limit) or `thread` (threads of this process; for
    /// development and for kernels without seccomp).
    #[arg(long, default_value = "process", value_parser = ["process", "thread"])]
    pub isolation: String,
    /// Isolate hosts kept started and confined ahead of need (`--isolation process`).
    #[arg(long, default_value_t = 4)]
    pub warm_hosts: usize,
    /// Executions of one caller an isolate host may serve in its life (at once or one after another),
    /// each in a fresh QuickJS runtime, before it is replaced; a host is never shared between callers and
    /// takes no new execution after any limit, crash or stuck call. `1`: a fresh process per execution.
    #[arg(long, default_value_t = 256)]
    pub host_reuse: u32,
    /// Executions of one caller an isolate host runs at the same time, each on its own isolate thread
    /// (all started before the host confines itself); at most `--host-reuse`. Executions awaiting slow
    /// tools then share a process. An execution stuck past its wall-time limit in a call that cannot be
    /// interrupted gets its host killed, and the other executions in it (the same caller's) end as
    /// `threw` / `IsolateCrashed`. `1`: one execution per process at a time.
    #[arg(long, default_value_t = 64)]
    pub host_concurrency: u32,
    /// Serve even when isolate hosts cannot get their seccomp allow list (development only: loud in the
    /// logs and on /metrics).
    #[arg(long)]
    pub allow_weak_confinement: bool,
    /// Log format: `json` (one object per line) or `text`.
    #[arg(long, default_value = "json")]
    pub log_format: String,
    /// Internal: the log filter (set by the first stage from RUST_LOG).
    #[arg(long, hide = true)]
    pub log_filter: Option<String>,
    /// Internal: the environment has been cleared (set by the first stage).
    #[arg(long, hide = true)]
    pub scrubbed: bool,
    /// The binding proxy's Unix socket (a proxy started elsewhere; by default `serve` starts its own).
    #[arg(long, conflicts_with = "proxy_url")]
    pub proxy_socket: Option<PathBuf>,
    /// The binding proxy over TCP, `http://IP:PORT` (in Kubernetes: the proxy's Service address, so the
    /// executor pod needs no DNS). Requires --proxy-token-file.
    #[arg(long, requires = "proxy_token_file")]
    pub proxy_url: Option<String>,
    /// This executor's token for the binding proxy (a projected service-account token with the proxy's
    /// audience), sent with every request to --proxy-url and re-read as it rotates.
    #[arg(long)]
    pub proxy_token_file: Option<PathBuf>,
    /// Have the binding proxy review callers' bearer tokens (for the policy's audience) instead of
    /// calling TokenReview from here: for executor pods that may not reach the API server.
    #[arg(long, requires = "proxy_url", conflicts_with = "token_review_audience")]
    pub caller_review_via_proxy: bool,
    /// Internal: the binding proxy's process id, stopped at shutdown.
    #[arg(long, hide = true)]
    pub proxy_pid: Option<i32>,
}

/// Set up logging for `serve`: JSON lines (or text) on stderr, filtered by `--log-filter`/RUST_LOG.
pub fn init_logging(args: &ServeArgs) {
    let filter = args
        .log_filter
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_format == "text" {
        builder.init();
    } else {
        builder.json().flatten_event(true).with_current_span(false).init();
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

/// Start `mcp-guard proxy --config CONFIG` as a child with this process's environment; returns its
/// socket and process id.
fn spawn_proxy(config: &Path) -> Result<(PathBuf, u32), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let dir = std::env::temp_dir().join(format!("mcp-guard-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    create_private_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let socket = dir.join("proxy.sock");
    let child = std::process::Command::new(&exe)
        .arg("proxy")
        .arg("--config")
        .arg(config)
        .arg("--socket")
        .arg(&socket)
        .arg("--die-with-parent")
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the binding proxy: {e}"))?;
    Ok((socket, child.id()))
}

/// Replace this process with `mcp-guard ARGS` and an empty environment. The process id stays the same,
/// so a proxy child's parent-death signal still refers to us. Returns only on failure.
fn reexec_scrubbed(args: Vec<OsString>) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(EXIT_INTERNAL, format!("cannot find my own executable: {e}")),
    };
    let err = std::process::Command::new(&exe).args(args).env_clear().exec();
    fail(EXIT_INTERNAL, format!("cannot restart without the environment: {err}"))
}

/// `exec`'s first stage: start the binding proxy, then `exec` this program again with an empty
/// environment. `/proc/<pid>/environ` of the executor shows nothing.
pub fn start_proxy_then_scrub(config: Option<&Path>, run: &[String]) -> ExitCode {
    let Some(config) = config else {
        return fail(EXIT_USAGE, "servers are only configured through --config");
    };
    let (socket, pid) = match spawn_proxy(config) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_INTERNAL, e),
    };
    let mut args: Vec<OsString> = vec![
        "exec".into(),
        "--config".into(),
        config.into(),
        "--proxy-socket".into(),
        socket.into(),
        "--proxy-pid".into(),
        pid.to_string().into(),
    ];
    args.extend(run.iter().map(OsString::from));
    reexec_scrubbed(args)
}

/// Isolate hosts that served a caller and wait for its next execution (the oldest beyond this goes).
const IDLE_HOSTS: usize = 16;

/// The isolate engine `--isolation` asks for. Isolate hosts are probed first: one is started and must
/// report its process-wide seccomp allow list, or `serve` refuses to start (unless
/// `--allow-weak-confinement`). Returns the engine and, for hosts, what confinement they got.
async fn isolate_engine(
    args: &ServeArgs,
    config: &GuardConfig,
    max_concurrent: usize,
) -> Result<(Arc<dyn Engine>, Option<String>, Option<ProcessEngine>), (u8, String)> {
    let v8 = config.limits.engine == mcp_guard_crds::EngineKind::V8;
    if args.isolation == "thread" {
        if v8 {
            return Err((
                EXIT_USAGE,
                "limits.engine v8 runs in isolate-host processes only; --isolation thread is QuickJS's"
                    .into(),
            ));
        }
        return Ok((Arc::new(QuickJsEngine::new(max_concurrent)), None, None));
    }
    let command = if v8 {
        let deno =
            mcp_guard_sandbox::engine::v8::find_deno(config.deno.as_deref()).map_err(|e| (EXIT_USAGE, e))?;
        HostCommand::v8(&deno)
    } else {
        HostCommand::current_exe()
    }
    .map_err(|e| (EXIT_INTERNAL, format!("cannot find my own executable: {e}")))?;
    let engine = ProcessEngine::new(command, config.limits.memory.bytes(), args.warm_hosts.max(1))
        .with_stack_limit(config.limits.stack.bytes())
        .with_reuse(args.host_reuse, IDLE_HOSTS)
        .with_concurrency(args.host_concurrency);
    let (report, seccomp) =
        engine.probe().await.map_err(|e| (EXIT_INTERNAL, format!("cannot start an isolate host: {e}")))?;
    if !seccomp {
        if !args.allow_weak_confinement {
            return Err((
                EXIT_INTERNAL,
                format!(
                    "isolate hosts cannot get their seccomp allow list ({report}); refusing to serve (use --allow-weak-confinement for development only)"
                ),
            ));
        }
        tracing::error!(confinement = %report, "WEAK CONFINEMENT: isolate hosts run without their seccomp allow list (--allow-weak-confinement)");
    }
    Ok((Arc::new(engine.clone()), Some(format!("isolate hosts: {report}")), Some(engine)))
}

/// Where and how to call TokenReview: `url`, this pod's `token_file`, and the API server's CA (`ca`,
/// else the in-cluster service-account CA when the URL is https and that file exists).
pub(crate) fn token_review_config(
    url: String,
    audience: String,
    token_file: &Path,
    ca: Option<&PathBuf>,
) -> TokenReviewConfig {
    let https = url.starts_with("https://");
    let mut c = TokenReviewConfig::in_cluster(url, audience);
    c.token_file = token_file.to_path_buf();
    c.ca_file = match ca {
        Some(ca) => Some(ca.clone()),
        None if https && c.ca_file.as_ref().is_some_and(|p| p.exists()) => c.ca_file,
        None => None,
    };
    c
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
    }
}

/// The in-cluster API server address, from the environment the kubelet sets.
pub(crate) fn in_cluster_api_server() -> Option<String> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    Some(format!("https://{host}:{port}"))
}

fn listen_addr(flag: &str, value: &str) -> Result<Option<SocketAddr>, String> {
    if value.is_empty() || value == "off" {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|e| format!("--{flag} {value}: {e} (expected IP:PORT or `off`)"))
}

/// `mcp-guard serve`.
pub fn run(mut args: ServeArgs) -> ExitCode {
    let config = match GuardConfig::from_file(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let addrs = match (
        listen_addr("grpc-listen", &args.grpc_listen),
        listen_addr("mcp-listen", &args.mcp_listen),
        listen_addr("metrics-listen", &args.metrics_listen),
    ) {
        (Ok(g), Ok(m), Ok(x)) => [g, m, x],
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(EXIT_USAGE, e),
    };
    if args.insecure_no_auth
        && !args.insecure_no_auth_network
        && let Some(addr) = addrs.iter().flatten().find(|a| !a.ip().is_loopback())
    {
        return fail(
            EXIT_USAGE,
            format!(
                "--insecure-no-auth only binds loopback addresses; {addr} is not one \
                 (--insecure-no-auth-network lifts this where a NetworkPolicy guards the port)"
            ),
        );
    }
    if !args.scrubbed {
        return first_stage(&args, &config);
    }
    // Second stage: no environment, the proxy (if any) is up.
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_INTERNAL, e),
    };
    let _entered = rt.enter();
    let remote_proxy = match (&args.proxy_url, &args.proxy_token_file) {
        (Some(url), Some(token)) => match ProxyToolHost::connect_tcp(url, token.clone()) {
            Ok(host) => Some(host),
            Err(e) => return fail(EXIT_USAGE, format!("--proxy-url {url}: {e}")),
        },
        _ => None,
    };
    if args.token_review_audience.is_some() && args.token_review_url.is_none() {
        return fail(
            EXIT_USAGE,
            "--token-review-audience needs the API server: run in a cluster or give --token-review-url",
        );
    }
    let auth = AuthConfig {
        token_file: args.auth_tokens.clone(),
        token_review: args.token_review_audience.clone().zip(args.token_review_url.clone()).map(
            |(audience, url)| {
                token_review_config(
                    url,
                    audience,
                    &args.token_review_token_file,
                    args.token_review_ca.as_ref(),
                )
            },
        ),
        mtls: args.client_ca.is_some(),
        // The flags and the config file's `callers` together (the operator uses the file).
        allowed_callers: {
            let mut allowed = std::mem::take(&mut args.allowed_callers);
            allowed.extend(config.callers.execute.iter().cloned());
            if allowed.is_empty() { None } else { Some(allowed) }
        },
        discovery_callers: std::mem::take(&mut args.discovery_callers)
            .into_iter()
            .chain(config.callers.discover.iter().cloned())
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
        insecure_no_auth: args.insecure_no_auth,
        proxy_review: remote_proxy.clone().filter(|_| args.caller_review_via_proxy),
    };
    let authenticator = match Authenticator::new(auth) {
        Ok(a) => a,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            match (TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: args.client_ca.clone() })
                .load()
            {
                Ok(t) => Some(t),
                Err(e) => return fail(EXIT_USAGE, e),
            }
        }
        _ => None,
    };
    let result = rt.block_on(second_stage(args.clone(), config, authenticator, tls, addrs, remote_proxy));
    if let Some(pid) = args.proxy_pid {
        // SAFETY: kill(2) with a pid we started; at worst it is already gone.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => fail(code, e),
    }
}

fn first_stage(args: &ServeArgs, config: &GuardConfig) -> ExitCode {
    let mut next: Vec<OsString> = std::env::args_os().skip(1).collect();
    next.push("--scrubbed".into());
    next.push("--log-filter".into());
    next.push(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()).into());
    if args.token_review_audience.is_some()
        && args.token_review_url.is_none()
        && let Some(url) = in_cluster_api_server()
    {
        next.push("--token-review-url".into());
        next.push(url.into());
    }
    // In a cluster the binding proxy runs in pods of its own (`--proxy-url`): start none here.
    if !config.servers.is_empty() && args.proxy_socket.is_none() && args.proxy_url.is_none() {
        let (socket, pid) = match spawn_proxy(&args.config) {
            Ok(p) => p,
            Err(e) => return fail(EXIT_INTERNAL, e),
        };
        next.push("--proxy-socket".into());
        next.push(socket.into());
        next.push("--proxy-pid".into());
        next.push(pid.to_string().into());
    }
    reexec_scrubbed(next)
}

async fn bind(addr: Option<SocketAddr>, what: &str) -> Result<Option<tokio::net::TcpListener>, (u8, String)> {
    match addr {
        None => Ok(None),
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| (EXIT_USAGE, format!("cannot listen on {addr} ({what}): {e}"))),
    }
}

async fn second_stage(
    args: ServeArgs,
    config: GuardConfig,
    auth: Authenticator,
    tls: Option<mcp_guard_api::tls::TlsMaterial>,
    addrs: [Option<SocketAddr>; 3],
    remote_proxy: Option<ProxyToolHost>,
) -> Result<(), (u8, String)> {
    let grpc = bind(addrs[0], "gRPC").await?;
    let mcp = bind(addrs[1], "MCP").await?;
    let metrics = bind(addrs[2], "metrics").await?;

    let connected = match (remote_proxy, &args.proxy_socket) {
        (Some(host), _) => Some(host),
        (None, Some(socket)) => {
            Some(ProxyToolHost::connect(socket.clone()).map_err(|e| (EXIT_INTERNAL, e.to_string()))?)
        }
        (None, None) => None,
    };
    let (host, tools, proxy): (Arc<dyn ToolHost>, ToolIndex, Option<ProxyToolHost>) = match connected {
        Some(host) if args.proxy_url.is_some() => {
            // A proxy in other pods may start later or restart: serve anyway, not ready until it
            // answers (the readiness refresh asks it every two seconds).
            let index = match host.wait_ready(Duration::from_secs(10)).await {
                Ok(()) => ToolIndex::new(host.list_tools().await.unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(error = %e.message(), "the binding proxy does not answer yet: not ready");
                    ToolIndex::new(Vec::new())
                }
            };
            (Arc::new(host.clone()), index, Some(host))
        }
        Some(host) => {
            host.wait_ready(Duration::from_secs(60))
                .await
                .map_err(|e| (EXIT_INTERNAL, format!("the binding proxy did not start: {}", e.message())))?;
            let response = host.list_tools().await.map_err(|e| (EXIT_INTERNAL, e.message().to_string()))?;
            (Arc::new(host.clone()), ToolIndex::new(response), Some(host))
        }
        None => (Arc::new(NoTools), ToolIndex::from_catalog(&Catalog::default()), None),
    };
    let edge = EdgeLimits {
        max_message_bytes: args.max_message_size.as_usize(),
        max_concurrent: args.max_concurrent.max(1),
        max_queue: args.max_queue,
    };
    let (engine, isolation, hosts) = isolate_engine(&args, &config, edge.max_concurrent).await?;
    let state = ApiState::new(engine, host, tools, config.limits.clone(), edge, auth, proxy)
        .map_err(|e| (EXIT_INTERNAL, e.to_string()))?;
    if let Some(hosts) = hosts {
        let gauges = state.metrics.isolate_hosts.clone();
        let weak = hosts.confinement().is_some_and(|(_, seccomp)| !seccomp);
        gauges.with_label_values(&["weak_confinement"]).set(i64::from(weak));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let stats = hosts.stats();
                for (event, counter) in
                    [("started", &stats.started), ("killed", &stats.killed), ("crashed", &stats.crashed)]
                {
                    let value = counter.load(std::sync::atomic::Ordering::Relaxed);
                    gauges.with_label_values(&[event]).set(i64::try_from(value).unwrap_or(i64::MAX));
                }
            }
        });
    }

    if state.auth.is_insecure() {
        tracing::warn!(
            "caller authentication is OFF (--insecure-no-auth): every local process can run code as `anonymous`"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let local = |l: &Option<tokio::net::TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let announce = serde_json::json!({
        "grpc": local(&grpc).map(|a| a.to_string()),
        "mcp": local(&mcp).map(|a| format!("{scheme}://{a}/mcp")),
        "metrics": local(&metrics).map(|a| format!("http://{a}/metrics")),
        "policy": config.policy,
        "tools": state.tools().tools().len(),
        "ready": state.ready(),
    });
    let confinement = match isolation {
        Some(host) => host,
        None => match isolate_confinement() {
            Ok(report) => format!("isolate threads: {report}"),
            Err(e) => format!("isolate threads: failed: {e}"),
        },
    };
    tracing::info!(listening = %announce, isolate_confinement = %confinement, "serving");
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{announce}");
        let _ = out.flush();
    }

    let shutdown = terminated();
    let options = ServeOptions {
        grpc,
        mcp,
        metrics,
        tls,
        shutdown_grace: args.shutdown_grace,
        refresh_interval: Duration::from_secs(2),
    };
    serve(state, options, shutdown).await.map_err(|e| (EXIT_INTERNAL, e.to_string()))
}
