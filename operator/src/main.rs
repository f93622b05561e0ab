//! `mcp-guard-operator`: reconciles McpServer and McpGuardPolicy resources into locked-down executor
//! deployments. See the crate documentation of `mcp_guard_operator`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use mcp_guard_operator::build::{EgressRules, OperatorIdentity, Settings, parse_labels};
use mcp_guard_operator::context::{Context, Metrics};
use mcp_guard_operator::http::{self, HttpState};
use mcp_guard_operator::leader::LeaderElector;
use tracing::{error, info, warn};

#[derive(Debug, Parser)]
#[command(name = "mcp-guard-operator", version, about = "The MCP Guard Kubernetes operator")]
struct Args {
    /// The `mcp-guard` image executor pods run (a policy may override it).
    #[arg(long, env = "MCP_GUARD_EXECUTOR_IMAGE", default_value = "mcp-guard.local/mcp-guard:0.1.0")]
    executor_image: String,
    /// Address of the health (`/healthz`, `/readyz`) and metrics (`/metrics`) endpoints.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Run the controllers only while holding the leader Lease (for more than one replica).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the leader Lease (default: the operator's own, from POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "mcp-guard-operator")]
    lease_name: String,
    /// The operator's own namespace (downward API `metadata.namespace`). With the service account, it
    /// lets executors admit the operator for tool discovery (ListTools only, never Execute).
    #[arg(long, env = "MCP_GUARD_OPERATOR_NAMESPACE")]
    operator_namespace: Option<String>,
    /// The operator's own service account (downward API `spec.serviceAccountName`).
    #[arg(long, env = "MCP_GUARD_OPERATOR_SERVICE_ACCOUNT")]
    operator_service_account: Option<String>,
    /// Labels of the operator's pods (`key=value,...`), which executor NetworkPolicies admit on the
    /// gRPC port for tool discovery.
    #[arg(
        long,
        env = "MCP_GUARD_OPERATOR_POD_LABELS",
        default_value = "app.kubernetes.io/name=mcp-guard-operator"
    )]
    operator_pod_labels: String,
    /// Image prefixes a policy may name in spec.executor.image besides --executor-image (comma-separated).
    #[arg(long, value_delimiter = ',')]
    allowed_executor_images: Vec<String>,
    /// Image prefixes a deployed McpServer may use (comma-separated). None: no server may be deployed.
    #[arg(long, value_delimiter = ',')]
    allowed_server_images: Vec<String>,
    /// Shortest IPv4 prefix an McpServer egress peer may have.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(8..=32))]
    min_egress_prefix_ipv4: u8,
    /// Shortest IPv6 prefix an McpServer egress peer may have.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u8).range(16..=128))]
    min_egress_prefix_ipv6: u8,
    /// The cluster's pod and Service ranges (comma-separated CIDRs), excepted from every egress peer
    /// that contains them.
    #[arg(long, value_delimiter = ',')]
    cluster_cidrs: Vec<ipnet::IpNet>,
    /// Let policies run executors without caller authentication (`callers.auth: none`).
    #[arg(long)]
    allow_unauthenticated_executors: bool,
    /// The ClusterRole (tokenreviews: create only) executors' ServiceAccounts are bound to.
    #[arg(long, default_value = "mcp-guard-tokenreview")]
    token_review_cluster_role: String,
    /// The ClusterRole (McpApprovals and their journals) a policy's binding-proxy ServiceAccount is
    /// bound to, in the policy's namespace, when the policy has `approvals`.
    #[arg(long, default_value = "mcp-guard-approvals-proxy")]
    approvals_cluster_role: String,
    /// Watch and write only in these namespaces (comma-separated); default: every namespace.
    #[arg(long, value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Namespaces the operator never creates anything in (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "kube-system,kube-public,kube-node-lease")]
    reserved_namespaces: Vec<String>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    if args.log_json {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "the operator stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let operator_pod_labels =
        parse_labels(&args.operator_pod_labels).map_err(|e| anyhow::anyhow!("--operator-pod-labels: {e}"))?;
    let client = Client::try_default().await?;
    let metrics = Metrics::new()?;
    let ready = Arc::new(AtomicBool::new(false));
    let state = HttpState { registry: metrics.registry.clone(), ready: ready.clone() };
    let http_addr = args.http_addr;
    tokio::spawn(async move {
        if let Err(e) = http::serve(http_addr, state).await {
            error!(error = %e, "health and metrics endpoints stopped");
        }
    });

    let elector = if args.leader_election {
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("mcp-guard-operator-{}", std::process::id()));
        let lease: Api<Lease> = Api::namespaced(client.clone(), &args.lease_namespace);
        let elector = LeaderElector::new(lease, &args.lease_name, &identity);
        // A standby is healthy and ready: it is doing its job by waiting.
        ready.store(true, Ordering::Relaxed);
        elector.acquire().await;
        Some(elector)
    } else {
        None
    };

    let api_server = mcp_guard_operator::context::api_server_addresses(&client).await;
    info!(?api_server, image = %args.executor_image, "starting controllers");
    let operator = OperatorIdentity::new(args.operator_namespace, args.operator_service_account);
    match &operator {
        Some(o) => info!(identity = %o.username(), "tool discovery as a discovery caller of executors"),
        None => warn!(
            "MCP_GUARD_OPERATOR_NAMESPACE / MCP_GUARD_OPERATOR_SERVICE_ACCOUNT not set: executors with \
             TokenReview auth will not admit the operator, and McpServer status will not list tools"
        ),
    }
    let settings = Settings {
        executor_image: args.executor_image,
        allowed_executor_images: args.allowed_executor_images,
        allowed_server_images: args.allowed_server_images,
        egress: EgressRules {
            min_prefix_v4: args.min_egress_prefix_ipv4,
            min_prefix_v6: args.min_egress_prefix_ipv6,
            cluster_cidrs: args.cluster_cidrs.iter().map(|n| n.trunc()).collect(),
        },
        allow_unauthenticated: args.allow_unauthenticated_executors,
        token_review_role: args.token_review_cluster_role,
        approvals_role: args.approvals_cluster_role,
        reserved_namespaces: args.reserved_namespaces,
        api_server,
        operator,
        operator_pod_labels,
    };
    if settings.allow_unauthenticated {
        warn!("policies may run executors without caller authentication (--allow-unauthenticated-executors)");
    }
    let ctx = Arc::new(Context::new(client.clone(), settings, metrics));
    ready.store(true, Ordering::Relaxed);
    let controllers = mcp_guard_operator::controllers::run_in(client, ctx, args.watch_namespaces);
    match elector {
        Some(elector) => {
            tokio::select! {
                () = controllers => Ok(()),
                () = elector.hold() => anyhow::bail!("lost leadership; exiting so that a new leader takes over"),
            }
        }
        None => {
            controllers.await;
            Ok(())
        }
    }
}
