//! Tool discovery: what each McpServer offers, from a real MCP handshake, without the operator ever
//! holding a credential of the server.
//!
//! The binding proxy of a policy's executor holds the server's credentials and has done the MCP
//! `initialize` handshake; the executor's public `ListTools` reports every bound server (connected or
//! not, its `serverInfo`) and its tools. The operator asks it as a *discovery caller*: with a token of
//! its own service account for the policy's TokenReview audience (requested with the TokenRequest API,
//! short-lived, cached per audience), which the executor admits for `ListTools`/`DescribeTools` only,
//! never for `Execute`. The executor is reached at its Service's ClusterIP (no cluster DNS needed).
//!
//! The gRPC call is behind [`Transport`], so reconcile tests can stand in for an executor. How the
//! answers of several policies become one McpServer status: [`summarize`] and [`merge()`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use mcp_guard_crds::v1alpha1::{CallerAuth, McpGuardPolicy, ToolSummary};

use crate::build::config::secret_key_of;
use crate::build::executor::{GRPC_PORT, audience, executor_name, executor_selector_labels};
use crate::build::{OperatorIdentity, Settings};

mod merge;

pub(crate) use merge::discover;
pub use merge::{
    DISCOVERY_REFRESH, DISCOVERY_RETRY, Discovery, MAX_STATUS_DESCRIPTION, MAX_STATUS_NAME, MAX_STATUS_TOOLS,
    PolicyAnswer, bounded, bounded_tools, merge, summarize,
};

/// The executor's public API, `proto/mcpguard/v1/executor.proto` (the operator uses its client only).
pub use mcp_guard_proto::v1 as pb;

/// How long one ListTools call (connect included) may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The lifetime requested for discovery tokens (the API server's minimum is 10 minutes).
const TOKEN_LIFETIME_SECONDS: i64 = 600;
/// A cached token is replaced this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);

/// One bound server as a policy's executor reported it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerReport {
    /// The name in the executor's config: the binding's alias, or the McpServer's name.
    pub name: String,
    pub connected: bool,
    /// From the server's `initialize` answer; empty before the first successful handshake.
    pub server_name: String,
    pub server_version: String,
    pub protocol_version: String,
    /// Why it is not connected (redacted by the binding proxy).
    pub error: String,
    /// Its bound tools, in the executor's order.
    pub tools: Vec<ToolSummary>,
    /// Credential sources the binding proxy finds nothing at (file paths, `env:NAME`).
    pub missing_credentials: Vec<String>,
}

/// The credentials the binding proxy reports missing, each once, for a status message: `secret/key` for
/// a Secret key the operator mounts (the Secret or the key does not exist), the source otherwise.
pub fn missing_credentials<'a>(reports: impl IntoIterator<Item = &'a ServerReport>) -> BTreeSet<String> {
    reports
        .into_iter()
        .flat_map(|r| &r.missing_credentials)
        .map(|source| match secret_key_of(source) {
            Some((secret, key)) => format!("{secret}/{key}"),
            None => source.clone(),
        })
        .collect()
}

/// The status message for [`missing_credentials`] in namespace `ns`.
pub fn missing_message(ns: &str, missing: &BTreeSet<String>) -> String {
    let list: Vec<&str> = missing.iter().map(String::as_str).collect();
    format!(
        "Secret or key not found in namespace {ns} (the binding proxy has no value for it): {}",
        list.join(", ")
    )
}

/// Every bound server of one executor's `ListTools` answer, with its tools.
pub fn reports(response: &pb::ListToolsResponse) -> Vec<ServerReport> {
    response
        .servers
        .iter()
        .map(|s| ServerReport {
            name: s.name.clone(),
            connected: s.connected,
            server_name: s.server_name.clone(),
            server_version: s.server_version.clone(),
            protocol_version: s.protocol_version.clone(),
            error: s.error.clone(),
            missing_credentials: s.missing_credentials.clone(),
            tools: response
                .tools
                .iter()
                .filter(|t| t.server == s.name)
                .map(|t| ToolSummary {
                    name: t.name.clone(),
                    description: Some(t.description.clone()).filter(|d| !d.is_empty()),
                })
                .collect(),
        })
        .collect()
}

/// Calls an executor's `ListTools`.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// `endpoint` is `http://<ip>:<port>`; `token`, when given, goes out as `authorization: Bearer`.
    /// Errors are messages fit for a status condition.
    async fn list_tools(
        &self,
        endpoint: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<pb::ListToolsResponse, String>;
}

/// The real transport: tonic over plain HTTP/2 (the executor's gRPC port inside the cluster).
#[derive(Debug, Default, Clone, Copy)]
pub struct GrpcTransport;

#[async_trait::async_trait]
impl Transport for GrpcTransport {
    async fn list_tools(
        &self,
        endpoint: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<pb::ListToolsResponse, String> {
        let call = async {
            let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
                .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect()
                .await
                .map_err(|e| format!("cannot connect to {endpoint}: {}", error_chain(&e)))?;
            let mut client = pb::executor_client::ExecutorClient::new(channel);
            let mut request = tonic::Request::new(pb::ListToolsRequest {});
            request.set_timeout(timeout);
            if let Some(token) = token {
                let value = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| "the service-account token is not a valid header value".to_string())?;
                request.metadata_mut().insert("authorization", value);
            }
            client
                .list_tools(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| format!("ListTools at {endpoint} failed: {:?}: {}", s.code(), s.message()))
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| Err(format!("ListTools at {endpoint} timed out after {timeout:?}")))
    }
}

/// An error and its sources on one line (tonic's transport errors say little at the top).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Asks policies' executors about their bound servers; caches the operator's tokens per audience.
pub struct Discoverer {
    transport: Arc<dyn Transport>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    timeout: Duration,
}

impl std::fmt::Debug for Discoverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discoverer").field("timeout", &self.timeout).finish()
    }
}

impl Discoverer {
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Discoverer { transport, tokens: Mutex::new(HashMap::new()), timeout: TIMEOUT }
    }

    /// The bound servers of `policy`'s executor. Errors are messages for a status condition.
    pub async fn servers(
        &self,
        client: &Client,
        settings: &Settings,
        policy: &McpGuardPolicy,
    ) -> Result<Vec<ServerReport>, String> {
        let ns = policy.namespace().ok_or("the policy has no namespace")?;
        let name = policy.name_any();
        let service = executor_name(&name);
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        let svc = services
            .get_opt(&service)
            .await
            .map_err(|e| format!("cannot read Service {service}: {e}"))?
            .ok_or_else(|| format!("the executor Service {service} does not exist yet"))?;
        let ip = svc
            .spec
            .and_then(|s| s.cluster_ip)
            .filter(|ip| !ip.is_empty() && ip != "None")
            .ok_or_else(|| format!("the executor Service {service} has no ClusterIP yet"))?;
        self.ask(client, settings, policy, &ip).await
    }

    /// Like [`Discoverer::servers`], asking one running executor pod directly (the first by name), Ready
    /// or not: an executor whose binding proxy cannot connect a server (a Secret missing, say) is not
    /// Ready, so its Service has no endpoint, yet it can say why.
    pub async fn servers_of_a_pod(
        &self,
        client: &Client,
        settings: &Settings,
        policy: &McpGuardPolicy,
    ) -> Result<Vec<ServerReport>, String> {
        let ns = policy.namespace().ok_or("the policy has no namespace")?;
        let name = policy.name_any();
        let selector: Vec<String> =
            executor_selector_labels(&name).iter().map(|(k, v)| format!("{k}={v}")).collect();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let list = pods
            .list(&ListParams::default().labels(&selector.join(",")))
            .await
            .map_err(|e| format!("cannot list the executor pods of {name}: {e}"))?;
        let mut running: Vec<(String, String)> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| {
                let status = p.status?;
                (status.phase.as_deref() == Some("Running")).then_some(())?;
                Some((p.metadata.name.unwrap_or_default(), status.pod_ip.filter(|ip| !ip.is_empty())?))
            })
            .collect();
        running.sort();
        let (_, ip) =
            running.into_iter().next().ok_or_else(|| format!("no executor pod of {name} runs yet"))?;
        self.ask(client, settings, policy, &ip).await
    }

    /// `ListTools` of the executor at `ip`, as a discovery caller of `policy`.
    async fn ask(
        &self,
        client: &Client,
        settings: &Settings,
        policy: &McpGuardPolicy,
        ip: &str,
    ) -> Result<Vec<ServerReport>, String> {
        let (ns, name) = (policy.namespace().unwrap_or_default(), policy.name_any());
        let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
        let endpoint = format!("http://{host}:{GRPC_PORT}");
        let token = match policy.spec.callers.auth {
            CallerAuth::ServiceAccountToken => {
                let Some(operator) = &settings.operator else {
                    return Err("the operator does not know its own service account (set \
                                MCP_GUARD_OPERATOR_NAMESPACE and MCP_GUARD_OPERATOR_SERVICE_ACCOUNT)"
                        .into());
                };
                Some(self.token(client, operator, &audience(&name, &ns)).await?)
            }
            CallerAuth::None => None,
        };
        let response = self.transport.list_tools(&endpoint, token.as_deref(), self.timeout).await?;
        Ok(reports(&response))
    }

    /// A token of the operator's service account for `audience`, from the cache while it has more than
    /// [`TOKEN_MARGIN`] left.
    async fn token(
        &self,
        client: &Client,
        operator: &OperatorIdentity,
        audience: &str,
    ) -> Result<String, String> {
        if let Ok(tokens) = self.tokens.lock()
            && let Some((token, refresh_at)) = tokens.get(audience)
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &operator.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![audience.to_string()],
                expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
                bound_object_ref: None,
            },
            ..Default::default()
        };
        let answer = accounts
            .create_token_request(&operator.service_account, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                format!(
                    "cannot request a token of ServiceAccount {}/{} (needs RBAC `create` on \
                     serviceaccounts/token): {e}",
                    operator.namespace, operator.service_account
                )
            })?;
        let status = answer.status.ok_or("the TokenRequest answer has no status")?;
        if status.token.is_empty() {
            return Err("the TokenRequest answer has an empty token".into());
        }
        // Lifetime as granted (the API server may shorten or lengthen it), less the margin.
        let granted = status.expiration_timestamp.0.duration_since(k8s_openapi::jiff::Timestamp::now());
        let lifetime = Duration::try_from(granted).unwrap_or(Duration::ZERO);
        let refresh_at = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, (_, at)| Instant::now() < *at);
            tokens.insert(audience.to_string(), (status.token.clone(), refresh_at));
        }
        Ok(status.token)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reports_group_tools_by_server() {
        let tool = |server: &str, name: &str, description: &str| pb::Tool {
            server: server.into(),
            name: name.into(),
            binding: format!("mcp.{server}.{name}"),
            description: description.into(),
        };
        let response = pb::ListToolsResponse {
            tools: vec![tool("clock", "now", "The time."), tool("github", "get_issue", "")],
            servers: vec![
                pb::Server {
                    name: "clock".into(),
                    connected: true,
                    server_name: "time".into(),
                    server_version: "1.0".into(),
                    tool_count: 1,
                    error: String::new(),
                    protocol_version: "2025-06-18".into(),
                    missing_credentials: Vec::new(),
                },
                pb::Server {
                    name: "github".into(),
                    error: "refused".into(),
                    missing_credentials: vec![
                        "/var/run/secrets/mcp-guard/gh-token/token".into(),
                        "env:GH_TOKEN".into(),
                        "/var/run/secrets/mcp-guard/../etc/x/y".into(),
                    ],
                    ..Default::default()
                },
            ],
        };
        let r = reports(&response);
        let missing = missing_credentials(&r);
        assert_eq!(
            missing.iter().map(String::as_str).collect::<Vec<_>>(),
            ["/var/run/secrets/mcp-guard/../etc/x/y", "env:GH_TOKEN", "gh-token/token"]
        );
        assert_eq!(
            missing_message("team-a", &missing),
            "Secret or key not found in namespace team-a (the binding proxy has no value for it): \
             /var/run/secrets/mcp-guard/../etc/x/y, env:GH_TOKEN, gh-token/token"
        );
        assert_eq!(r[0].tools, [ToolSummary { name: "now".into(), description: Some("The time.".into()) }]);
        assert_eq!((r[0].server_name.as_str(), r[0].connected), ("time", true));
        assert_eq!(r[0].protocol_version, "2025-06-18");
        assert_eq!(r[1].tools, [ToolSummary { name: "get_issue".into(), description: None }]);
        assert_eq!((r[1].error.as_str(), r[1].connected), ("refused", false));
    }

    #[tokio::test]
    async fn an_unreachable_executor_is_an_error_within_the_timeout() {
        // A port nothing listens on (bound, then closed).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let started = Instant::now();
        let e = GrpcTransport
            .list_tools(&format!("http://127.0.0.1:{port}"), Some("t"), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
