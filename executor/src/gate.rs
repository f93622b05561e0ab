//! `mcp-guard server-gate`: the authenticating front of a server the operator deploys (see
//! [`mcp_guard_api::gate`]).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use mcp_guard_api::auth::{AuthConfig, Authenticator};
use mcp_guard_api::gate::{self, Gate};

use crate::{EXIT_INTERNAL, EXIT_USAGE};

#[derive(clap::Args, Debug)]
pub struct GateArgs {
    /// Address to serve (the pod port its Service targets).
    #[arg(long, default_value = "0.0.0.0:9443")]
    pub listen: SocketAddr,
    /// The server in this pod, `http://127.0.0.1:<port>`.
    #[arg(long)]
    pub upstream: String,
    /// The namespace of the server: only MCP Guard executors of this namespace pass.
    #[arg(long)]
    pub namespace: String,
    /// The McpServer's name; tokens must be issued for `mcpguard.io/server/<namespace>/<server>`.
    #[arg(long)]
    pub server: String,
    /// The Kubernetes API server for TokenReview (default: in-cluster, from KUBERNETES_SERVICE_HOST/PORT).
    #[arg(long)]
    pub token_review_url: Option<String>,
    /// The gate's own service-account token, for calling TokenReview.
    #[arg(long, default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token")]
    pub token_review_token_file: PathBuf,
    /// CA of the API server (default: the in-cluster service-account CA when it exists).
    #[arg(long)]
    pub token_review_ca: Option<PathBuf>,
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("mcp-guard server-gate: {message}");
    ExitCode::from(code)
}

pub fn run(args: GateArgs) -> ExitCode {
    let Some(url) = args.token_review_url.clone().or_else(crate::serve::in_cluster_api_server) else {
        return fail(
            EXIT_USAGE,
            "no API server for TokenReview: run in a cluster or give --token-review-url",
        );
    };
    let review = crate::serve::token_review_config(
        url,
        gate::server_audience(&args.namespace, &args.server),
        &args.token_review_token_file,
        args.token_review_ca.as_ref(),
    );
    let config = AuthConfig {
        token_review: Some(review),
        // Narrowed further to executor accounts by the gate itself.
        allowed_callers: Some(vec![format!("system:serviceaccount:{}:*", args.namespace)]),
        ..Default::default()
    };
    let gate =
        match Authenticator::new(config).and_then(|a| Gate::new(a, args.namespace.clone(), &args.upstream)) {
            Ok(g) => Arc::new(g),
            Err(e) => return fail(EXIT_USAGE, e),
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(EXIT_INTERNAL, format!("cannot start the runtime: {e}")),
    };
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!("{}", serde_json::json!({"gate": local.to_string(), "upstream": args.upstream}));
        tracing::info!(listen = %local, upstream = %args.upstream, namespace = %args.namespace, server = %args.server, "server gate ready");
        gate::serve(gate, listener, crate::serve::terminated()).await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_INTERNAL, e),
    }
}
