//! `mcp-guard`: run untrusted code against MCP tools in a sandbox.

mod approval_store;
mod gate;
mod proxy_auth;
mod serve;

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::{Parser, Subcommand};
use mcp_guard_binding_client::ProxyToolHost;
use mcp_guard_binding_proxy::{BindingProxy, audit::AuditLog, service};
use mcp_guard_crds::GuardConfig;
use mcp_guard_sandbox::{
    engine::process::{HostCommand, ProcessEngine},
    host::{NoTools, ToolHost, discovery::DiscoveryHost},
    outcome::Outcome,
    sandbox::Sandbox,
};
use mcp_guard_tools::{Catalog, ToolIndex};

/// Exit codes besides the outcome's own (0 completed, 3 rejected, 4 threw, 5 limit exceeded).
const EXIT_USAGE: u8 = 2;
const EXIT_INTERNAL: u8 = 1;
/// `mcp-guard approvals approve|deny` refused: not an approver, the requester, already decided, expired
/// or unknown.
const EXIT_REFUSED: u8 = 7;

#[derive(Parser)]
#[command(
    name = "mcp-guard",
    version,
    about = "Run untrusted TypeScript/JavaScript against MCP tools in a sandbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate and run one file of code and print its outcome as JSON.
    ///
    /// When the config binds MCP servers, a binding proxy is started as a child process and given the
    /// environment (where credentials may be); this process then replaces itself with a copy of itself
    /// that has an empty environment, so the executor never holds a credential.
    ///
    /// Exit code: 0 completed, 3 rejected, 4 threw, 5 limit exceeded, 6 approval required, 7 refused (a
    /// resume that cannot run: unknown, undecided, expired, used, or another caller's), 2 bad usage or
    /// config, 1 internal error.
    /// When standard output is closed before the outcome is printed (`mcp-guard exec x.js | head -c 1`),
    /// the process ends quietly with the outcome's exit code.
    Exec {
        /// Configuration file (YAML); the embedded default applies when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The code to run: a .ts/.js file, or `-` for standard input.
        #[arg(required_unless_present = "resume")]
        file: Option<String>,
        /// Internal (`mcp-guard resume`): resume the execution paused for this approval.
        #[arg(long, hide = true, conflicts_with = "file")]
        resume: Option<String>,
        /// Internal: the binding proxy's socket (set by the first stage of `exec`).
        #[arg(long, hide = true)]
        proxy_socket: Option<PathBuf>,
        /// Internal: the binding proxy's process id, stopped when the execution ends.
        #[arg(long, hide = true)]
        proxy_pid: Option<i32>,
    },
    /// Run the binding proxy: connect to the configured MCP servers and serve the internal API on a
    /// Unix socket (locally) or over TCP (in Kubernetes, where it runs in pods of its own and admits only
    /// requests that carry its executor's token). It holds the credentials; nothing else does.
    Proxy(Box<ProxyArgs>),
    /// Serve the gRPC Executor API and the MCP front door (streamable HTTP at /mcp), with caller
    /// authentication, Prometheus metrics and graceful shutdown on SIGTERM.
    ///
    /// Like `exec`, it starts the binding proxy as a child process with the environment, then replaces
    /// itself with a copy of itself that has an empty environment. On its standard output it prints one
    /// JSON line with the addresses it serves.
    Serve(Box<serve::ServeArgs>),
    /// The authenticating front of an MCP server the operator deploys (a container in the server's pod):
    /// forwards to the server only requests that carry a token of this server's audience from an MCP
    /// Guard executor of its namespace (checked with TokenReview).
    ServerGate(gate::GateArgs),
    /// Resume an execution that ended as `approval_required`, once its approval is decided: the code runs
    /// again from the start; calls that completed are answered from the journal, the approved call runs
    /// once. Prints the outcome like `exec`, with the same exit codes.
    Resume {
        /// Configuration file (YAML): the one the paused execution ran with.
        #[arg(long, short)]
        config: PathBuf,
        /// The approval's id (`approval.id` in the outcome).
        id: String,
    },
    /// List and decide the approvals of the local store (`approvals.store.directory`). The decider is
    /// this process's user (`local:uid=N`); it must be one of `approvals.approvers.users` when any are
    /// listed, and not the requester unless `allowSelfApproval`. In Kubernetes approvals are
    /// `McpApproval` objects, decided with kubectl and checked by the API server.
    Approvals {
        /// Configuration file (YAML).
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        action: ApprovalAction,
    },
    /// Print the JSON schema of the outcome.
    OutcomeSchema,
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Internal: an isolate host, started by the executor with its channel on descriptor 3 (never by hand).
    #[command(hide = true)]
    IsolateHost {
        /// The policy's memory limit in bytes (the host's kernel data limit is set above it).
        #[arg(long)]
        memory_limit: u64,
        /// Executions of one caller this host may serve before it exits.
        #[arg(long, default_value_t = 1)]
        max_executions: u32,
        /// Executions of that caller it runs at the same time (one isolate thread each, all started
        /// before it confines itself).
        #[arg(long, default_value_t = 1)]
        concurrency: u32,
    },
    /// Internal: a V8 isolate host, started by the executor with its channel on descriptor 3 (never by
    /// hand): confines this process, then executes Deno with the host script.
    #[command(hide = true)]
    V8Host {
        /// The Deno binary: the one file the confined process may execute.
        #[arg(long)]
        deno: PathBuf,
        /// The policy's memory limit in bytes (V8's heap limit).
        #[arg(long)]
        memory_limit: u64,
        /// The policy's stack limit in bytes (V8's stack limit).
        #[arg(long)]
        stack_limit: u64,
        /// Executions of one caller this host may serve, one at a time, each in a fresh isolate.
        #[arg(long, default_value_t = 1)]
        max_executions: u32,
        /// Accepted for the engines' common command line; a V8 host runs one execution at a time.
        #[arg(long, default_value_t = 1)]
        concurrency: u32,
    },
}

#[derive(Subcommand)]
enum ApprovalAction {
    /// Every approval, newest first, as JSON.
    List,
    /// Approve a pending approval.
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Deny a pending approval: the paused call throws `McpToolError` (`approval_denied`) on resume.
    Deny {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// Arguments of `mcp-guard proxy`.
#[derive(clap::Args, Debug)]
struct ProxyArgs {
    /// Configuration file (YAML).
    #[arg(long, short)]
    config: PathBuf,
    /// Path of the Unix socket to serve.
    #[arg(long, required_unless_present = "listen", conflicts_with = "listen")]
    socket: Option<PathBuf>,
    /// Address to serve over TCP (in Kubernetes). Every request must carry a service-account token for
    /// --executor-audience that names --executor-identity, checked with TokenReview.
    #[arg(long, requires_all = ["executor_audience", "executor_identity"])]
    listen: Option<std::net::SocketAddr>,
    /// The audience of the executor's token for this proxy (`mcpguard.io/proxy/<namespace>/<policy>`).
    #[arg(long)]
    executor_audience: Option<String>,
    /// The executor's identity (`system:serviceaccount:<namespace>:<account>`).
    #[arg(long)]
    executor_identity: Option<String>,
    /// Review callers' tokens for this audience (the policy's), for an executor that cannot reach the
    /// API server; the config's `callers` apply. Each execution is then opened only for the caller its
    /// token names.
    #[arg(long, requires = "listen")]
    caller_audience: Option<String>,
    /// The Kubernetes API server for TokenReview (default: in-cluster, from KUBERNETES_SERVICE_HOST/PORT).
    #[arg(long)]
    token_review_url: Option<String>,
    /// This pod's service-account token for calling TokenReview.
    #[arg(long, default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token")]
    token_review_token_file: PathBuf,
    /// CA of the API server (default: the in-cluster service-account CA when the URL is https).
    #[arg(long)]
    token_review_ca: Option<PathBuf>,
    /// How many proxy replicas serve this policy: each enforces an equal share of the rate limits, so
    /// together they never allow more than the limit.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    replicas: u32,
    /// Exit when the parent process exits (local mode).
    #[arg(long)]
    die_with_parent: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => serve::init_logging(args),
        Command::ServerGate(_) => tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .init(),
        _ => tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_writer(std::io::stderr)
            .init(),
    }
    match cli.command {
        Command::Exec { config, file, resume, proxy_socket, proxy_pid } => {
            let what = match (file, resume) {
                (_, Some(id)) => Run::Resume(id),
                (Some(file), None) => Run::File(file),
                (None, None) => return fail(EXIT_USAGE, "give a file of code (or `-` for standard input)"),
            };
            exec(config, what, proxy_socket, proxy_pid)
        }
        Command::Resume { config, id } => exec(Some(config), Run::Resume(id), None, None),
        Command::Approvals { config, action } => approvals(&config, action),
        Command::Proxy(args) => proxy(*args),
        Command::Serve(args) => serve::run(*args),
        Command::ServerGate(args) => gate::run(args),
        Command::OutcomeSchema => print_json(&Outcome::json_schema()),
        Command::DefaultConfig => print_out(mcp_guard_crds::config::DEFAULT_CONFIG_YAML, ExitCode::SUCCESS),
        Command::IsolateHost { memory_limit, max_executions, concurrency } => ExitCode::from(
            u8::try_from(mcp_guard_sandbox::engine::process::host::main(
                memory_limit,
                max_executions,
                concurrency,
            ))
            .unwrap_or(1),
        ),
        Command::V8Host { deno, memory_limit, stack_limit, max_executions, .. } => ExitCode::from(
            u8::try_from(mcp_guard_sandbox::engine::v8::launcher_main(
                &deno,
                memory_limit,
                stack_limit,
                max_executions,
            ))
            .unwrap_or(1),
        ),
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    // A closed standard error must not turn a clean exit into a panic either.
    let _ = writeln!(std::io::stderr(), "mcp-guard: {message}");
    ExitCode::from(code)
}

/// Writes `text` to standard output and returns `code`. A reader that went away (`| head -c 1`) is
/// not worth a message or a panic: the process ends quietly with the same `code`.
fn print_out(text: &str, code: ExitCode) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => fail(EXIT_INTERNAL, format!("cannot write to standard output: {e}")),
    }
}

fn print_json(value: &serde_json::Value) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => print_out(&format!("{s}\n"), ExitCode::SUCCESS),
        Err(e) => fail(EXIT_INTERNAL, e),
    }
}

fn load_config(path: Option<&Path>) -> Result<GuardConfig, String> {
    match path {
        Some(path) => GuardConfig::from_file(path).map_err(|e| e.to_string()),
        None => Ok(GuardConfig::embedded_default()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// What `exec` runs: a file of code (its path, then its code once read), or the resume of a paused
/// execution.
enum Run {
    File(String),
    Resume(String),
}

fn exec(
    config_path: Option<PathBuf>,
    what: Run,
    proxy_socket: Option<PathBuf>,
    proxy_pid: Option<i32>,
) -> ExitCode {
    let config = match load_config(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    if matches!(what, Run::Resume(_)) && config.approvals.is_none() {
        return fail(EXIT_USAGE, "this configuration has no `approvals` section: nothing can be resumed");
    }
    // Stage one: with MCP servers bound, start the binding proxy and become a credential-free copy.
    if !config.servers.is_empty() && proxy_socket.is_none() {
        let arg = match &what {
            Run::File(file) => vec![file.clone()],
            Run::Resume(id) => vec!["--resume".to_string(), id.clone()],
        };
        return serve::start_proxy_then_scrub(config_path.as_deref(), &arg);
    }
    // From here on a file run carries its code.
    let what = match what {
        Run::File(file) => match read_code(&file) {
            Ok(code) => Run::File(code),
            Err(e) => return fail(EXIT_USAGE, e),
        },
        resume => resume,
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_INTERNAL, e),
    };
    let result = runtime.block_on(async {
        let (index, host): (ToolIndex, Arc<dyn ToolHost>) = match &proxy_socket {
            Some(socket) => {
                let host = ProxyToolHost::connect(socket.clone()).map_err(|e| (false, e.to_string()))?;
                host.wait_ready(Duration::from_secs(30))
                    .await
                    .map_err(|e| (false, format!("the binding proxy did not start: {}", e.message())))?;
                let servers = host.list_tools().await.map_err(|e| (false, e.message().to_string()))?;
                (ToolIndex::new(servers), Arc::new(host))
            }
            None => (ToolIndex::from_catalog(&Catalog::default()), Arc::new(NoTools)),
        };
        // Running code has the same discovery (`mcp.$search`, `mcp.$describe`) as under `serve`.
        let catalog = index.catalog();
        let host = Arc::new(DiscoveryHost::new(host, Arc::new(std::sync::RwLock::new(Arc::new(index)))));
        let sandbox = match config.limits.engine {
            mcp_guard_crds::EngineKind::Quickjs => Sandbox::new(catalog, host),
            mcp_guard_crds::EngineKind::V8 => {
                let deno = mcp_guard_sandbox::engine::v8::find_deno(config.deno.as_deref())
                    .map_err(|e| (false, e))?;
                let command = HostCommand::v8(&deno)
                    .map_err(|e| (false, format!("cannot find my own executable: {e}")))?;
                let engine = ProcessEngine::new(command, config.limits.memory.bytes(), 0)
                    .with_stack_limit(config.limits.stack.bytes());
                Sandbox::with_engine(Arc::new(engine), catalog, host)
            }
        };
        let run = match &what {
            Run::File(code) => {
                sandbox.run_with_events(&local_caller(), None, code, &config.limits, None).await
            }
            Run::Resume(id) => {
                sandbox.resume_with_events(&local_caller(), None, id, &config.limits, None).await
            }
        };
        run.map(|(_, outcome)| outcome).map_err(|e| {
            use mcp_guard_sandbox::sandbox::SandboxError as E;
            (matches!(e, E::NotResumable(_) | E::Refused(_)), e.to_string())
        })
    });
    if let Some(pid) = proxy_pid {
        // SAFETY: kill(2) with a pid we started; at worst it is already gone.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let outcome = match result {
        Ok(o) => o,
        Err((refused, e)) => return fail(if refused { EXIT_REFUSED } else { EXIT_INTERNAL }, e),
    };
    let code = ExitCode::from(u8::try_from(outcome.exit_code()).unwrap_or(EXIT_INTERNAL));
    match serde_json::to_string_pretty(&outcome) {
        Ok(json) => print_out(&format!("{json}\n"), code),
        Err(e) => fail(EXIT_INTERNAL, format!("cannot print the outcome: {e}")),
    }
}

/// `mcp-guard approvals`: the local store, decided as this process's user.
fn approvals(config_path: &Path, action: ApprovalAction) -> ExitCode {
    use mcp_guard_binding_proxy::approvals::{ApprovalStore, DirectoryStore, Verdict};
    let config = match load_config(Some(config_path)) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let Some(dir) = config.approvals.as_ref().and_then(|a| a.store.directory.clone()) else {
        return fail(
            EXIT_USAGE,
            "this configuration has no local approval store (approvals.store.directory); in Kubernetes decide McpApproval objects with kubectl",
        );
    };
    let store = match DirectoryStore::open(Path::new(&dir)) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_INTERNAL, e),
    };
    let decided = match action {
        ApprovalAction::List => {
            let runtime = match runtime() {
                Ok(rt) => rt,
                Err(e) => return fail(EXIT_INTERNAL, e),
            };
            return match runtime.block_on(store.list(None)) {
                Ok(records) => print_json(&serde_json::to_value(records).unwrap_or_default()),
                Err(e) => fail(EXIT_INTERNAL, e),
            };
        }
        ApprovalAction::Approve { id, reason } => {
            store.decide(&id, Verdict::Approved, &local_caller(), &reason)
        }
        ApprovalAction::Deny { id, reason } => store.decide(&id, Verdict::Denied, &local_caller(), &reason),
    };
    match decided {
        Ok(record) => {
            // On record in the policy's audit log, like everything the binding proxy does; a decision
            // that cannot be recorded still stands (the store has it), and says so.
            let by = local_caller();
            let entry = serde_json::json!({
                "approval": record.id, "policy": record.policy, "requester": record.requester,
                "state": record.state.name(), "decidedBy": by,
            });
            let audited = AuditLog::open(&config.binding.audit.path)
                .map_err(|e| e.to_string())
                .and_then(|log| log.record("approval_decided", entry).map_err(|_| "write failed".into()));
            if let Err(e) = audited {
                let _ = writeln!(
                    std::io::stderr(),
                    "mcp-guard: warning: the decision is not in the audit log ({e})"
                );
            }
            print_json(&serde_json::to_value(record).unwrap_or_default())
        }
        Err(e @ mcp_guard_binding_proxy::approvals::StoreError::Unavailable(_)) => fail(EXIT_INTERNAL, e),
        Err(e) => fail(EXIT_REFUSED, e),
    }
}

/// The local caller identity recorded in audit records.
fn local_caller() -> String {
    // SAFETY: getuid never fails.
    format!("local:uid={}", unsafe { libc::getuid() })
}

fn proxy(args: ProxyArgs) -> ExitCode {
    if args.die_with_parent {
        // SAFETY: prctl with PR_SET_PDEATHSIG and a valid signal number.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    }
    let config = match load_config(Some(&args.config)) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let peers = match (&args.listen, &args.executor_audience, &args.executor_identity) {
        (Some(_), Some(audience), Some(identity)) => {
            let Some(url) = args.token_review_url.clone().or_else(serve::in_cluster_api_server) else {
                return fail(
                    EXIT_USAGE,
                    "--listen needs the API server: run in a cluster or give --token-review-url",
                );
            };
            let setup = proxy_auth::ReviewSetup {
                api_server: url,
                token_file: args.token_review_token_file.clone(),
                ca: args.token_review_ca.clone(),
            };
            match proxy_auth::TokenReviewPeers::new(
                &setup,
                audience,
                identity,
                args.caller_audience.as_deref(),
                &config.callers,
            ) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => return fail(EXIT_USAGE, e),
            }
        }
        _ => None,
    };
    let audit = match AuditLog::open(&config.binding.audit.path) {
        Ok(a) => a,
        Err(e) => return fail(EXIT_USAGE, format!("binding.audit.path {}: {e}", config.binding.audit.path)),
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_INTERNAL, e),
    };
    let listener = match args.listen {
        Some(addr) => match runtime.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(l) => Some(l),
            Err(e) => return fail(EXIT_USAGE, format!("cannot listen on {addr}: {e}")),
        },
        None => None,
    };
    let result = runtime.block_on(async {
        let proxy = match BindingProxy::replica(config, audit, args.replicas) {
            Ok(p) => p,
            Err((e, _)) => return Err(anyhow::anyhow!("{e}")),
        };
        if let Some(k) = proxy.config().approvals.as_ref().and_then(|a| a.store.kubernetes.clone()) {
            let store = approval_store::KubeStore::in_cluster(&k.namespace, &k.policy)
                .await
                .map_err(|e| anyhow::anyhow!("the Kubernetes approval store: {e}"))?;
            proxy.set_approval_store(Arc::new(store)).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        if let Some(listener) = &listener {
            let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::warn!(listen = %addr, replicas = args.replicas, "binding proxy serving over TCP");
        }
        proxy.connect_all().await;
        let shutdown = async {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        match (listener, peers, &args.socket) {
            (Some(listener), Some(peers), _) => service::serve_tcp(proxy, listener, peers, shutdown).await,
            (_, _, Some(socket)) => service::serve_unix(proxy, socket, shutdown).await,
            _ => Err(anyhow::anyhow!("give --socket or --listen")),
        }
    });
    if let Some(socket) = &args.socket {
        let _ = std::fs::remove_file(socket);
        if let Some(dir) = socket.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_INTERNAL, format!("binding proxy: {e}")),
    }
}

/// Read the code from a file or stdin, as bytes first so invalid UTF-8 gets a clear error.
fn read_code(file: &str) -> Result<String, String> {
    let bytes = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("cannot read standard input: {e}"))?;
        buf
    } else {
        std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?
    };
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: the code is not valid UTF-8 (first invalid byte at offset {})",
            if file == "-" { "stdin" } else { file },
            e.utf8_error().valid_up_to()
        )
    })
}
