//! `McpServer`: how to reach one upstream MCP server, remote (`url`) or run by the operator (`deploy`).

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::server_config::{Timeouts, ToolChangePolicy, ToolFilter};

/// How to reach one upstream MCP server. Set exactly one of `url` (a remote server) or `deploy` (the
/// operator runs the server in this namespace). McpGuardPolicies in the same namespace bind it by name.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mcpguard.io",
    version = "v1alpha1",
    kind = "McpServer",
    plural = "mcpservers",
    singular = "mcpserver",
    shortname = "mcps",
    namespaced,
    status = "McpServerStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Tools","type":"integer","jsonPath":".status.toolCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.url) != has(self.deploy)",
        "message": "set exactly one of url (a remote server) or deploy (a server the operator runs)"
    },
    {
        "rule": "!has(self.deploy) || !has(self.egress) || size(self.egress) == 0",
        "message": "egress applies to remote servers (url) only; a deployed server is reached inside the cluster"
    },
    {
        "rule": "!has(self.url) || (has(self.egress) && size(self.egress) > 0)",
        "message": "a remote server (url) needs at least one egress peer: NetworkPolicy cannot filter by host name, so state the CIDRs and ports the URL resolves to"
    }
]))]
pub struct McpServerSpec {
    /// The MCP endpoint of a remote server (streamable HTTP), `http://` or `https://`. Set exactly one
    /// of `url` or `deploy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), extend("x-kubernetes-validations" = [{
        "rule": "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",
        "message": "url must be an absolute http:// or https:// URL"
    }]))]
    pub url: Option<String>,
    /// Run the server in this namespace: the operator creates a Deployment, a Service and a
    /// NetworkPolicy that admits only the executor pods of policies that bind this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeploySpec>,
    /// Headers the binding proxy adds to every request to this server, such as `Authorization`. Values
    /// from Secrets are mounted into the binding-proxy container only, never into the executor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub headers: Vec<HeaderEntry>,
    /// Which of the server's tools may be bound. Default: all of them. A policy can narrow this further,
    /// never widen it.
    #[serde(default)]
    pub tools: ToolFilter,
    /// Connect and call timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What to do when a tool's definition changes after it was first seen: `warn` (audit and serve it)
    /// or `refuse` (refuse calls to the changed tool).
    #[serde(default)]
    pub tool_changes: ToolChangePolicy,
    /// The network peers a remote server's URL resolves to. NetworkPolicy cannot filter by host name, so
    /// the executor pods' egress is opened to exactly these CIDRs and ports. Required with `url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub egress: Vec<EgressPeer>,
    /// Allow a URL that resolves to a loopback, link-local or private address (cloud-metadata addresses
    /// are always refused). Off by default: such addresses usually mean a request forgery. A deployed
    /// server is always reached on its private in-cluster address, so this does not apply to it.
    #[serde(default)]
    pub allow_private_endpoint: bool,
}

/// A server the operator runs: one Deployment and a Service in the McpServer's namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploySpec {
    /// The container image of the MCP server; it must serve streamable HTTP on `port` at `path`.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Arguments passed to the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of the server container (its own credentials, from Secrets via `valueFrom`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// The port the server listens on.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// The HTTP path of the MCP endpoint.
    #[serde(default = "default_path")]
    #[schemars(length(max = 512), extend("x-kubernetes-validations" = [{
        "rule": "self.startsWith('/')", "message": "deploy.path must start with /"
    }]))]
    pub path: String,
    /// Number of server pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: i32,
    /// Compute resources of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_port() -> i32 {
    8080
}
fn default_path() -> String {
    "/mcp".into()
}
fn default_replicas() -> i32 {
    1
}

/// A header whose value is a literal or comes from a Secret key in the McpServer's namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.value) != has(self.secretKeyRef)",
    "message": "set exactly one of value or secretKeyRef"
}]))]
pub struct HeaderEntry {
    /// The header name, for example `Authorization`.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"))]
    pub name: String,
    /// A literal, non-secret value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A key of a Secret in this namespace. It is mounted into the binding-proxy container only and
    /// re-read when the Secret changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
    /// Text put before the value, for example `"Bearer "`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// One key of a Secret in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Network peers the executor pods may reach for a remote server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressPeer {
    /// An IP block in CIDR notation, for example `203.0.113.0/24`. At least a /8 (IPv4) or a /16
    /// (IPv6); the operator's minimum (chart value `egress.minPrefixLength`) may be longer. Link-local
    /// addresses (cloud metadata) and the cluster's own ranges are always excepted.
    #[schemars(length(max = 64), extend("x-kubernetes-validations" = [
        {"rule": "isCIDR(self)", "message": "cidr must be an IP block such as 203.0.113.0/24"},
        {
            "rule": "!isCIDR(self) || cidr(self).prefixLength() >= (cidr(self).ip().family() == 4 ? 8 : 16)",
            "message": "cidr is too broad: name the upstream's own block (at least a /8 for IPv4, a /16 for IPv6), not the whole Internet"
        }
    ]))]
    pub cidr: String,
    /// Ports on those addresses. At least one.
    #[schemars(length(min = 1, max = 16))]
    pub ports: Vec<EgressPort>,
}

/// A TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressPort {
    /// The port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// What the operator observed about a server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatus {
    /// `Ready`, `ResolvedRefs`, `Discovered` and (for deployed servers) `Available`. `Discovered` says
    /// whether `tools` and `serverInfo` come from a live handshake, through which policy, or why not
    /// (`NotBound`, `Unreachable`, `Disconnected`); it never makes the server not Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The URL the binding proxy uses: `spec.url`, or the in-cluster Service URL of a deployed server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Tools the server offered at its last handshake, as bound by the Ready McpGuardPolicies that bind
    /// it (after `spec.tools` and each policy's rules; their union, sorted by name). Reported by the
    /// policies' binding proxies, which hold the credentials; kept while discovery fails. At most 256
    /// entries, descriptions cut at 256 characters (an upstream server cannot grow this object
    /// without bound).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSummary>,
    /// Number of tools discovered (may exceed the entries listed in `tools`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_count: Option<i32>,
    /// The server's self-description (`serverInfo` of the MCP initialize answer) from its last
    /// handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<ServerInfo>,
}

/// One discovered tool.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolSummary {
    /// The tool's name.
    pub name: String,
    /// The tool's description, as the server gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An MCP server's implementation info.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// Implementation name.
    pub name: String,
    /// Implementation version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The MCP protocol version agreed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}
