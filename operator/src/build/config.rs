//! Renders a policy and its resolved servers into the [`GuardConfig`] the executor and the binding
//! proxy read. Credentials become file references under the binding proxy's Secret mounts.

use std::collections::{BTreeMap, BTreeSet};

use mcp_guard_crds::identity::SERVER_IDENTITY_HEADER;
use mcp_guard_crds::server_config::{CredentialEntry, ServerConfig, ToolFilter, ValueSource};
use mcp_guard_crds::v1alpha1::{McpGuardPolicy, McpServer, ServerBinding};
use mcp_guard_crds::{ApprovalSettings, ApprovalStoreConfig, GuardConfig, KubernetesApprovalStore};

use super::{Invalid, Settings};

/// Where the binding-proxy container finds a Secret's keys.
pub const SECRETS_DIR: &str = "/var/run/secrets/mcp-guard";
/// Where the binding-proxy container finds its token for each deployed server's gate
/// (`<server>/token`, projected for the server's audience).
pub const IDENTITY_DIR: &str = "/var/run/secrets/mcp-guard-identity";
/// Where the binding-proxy container finds the key that seals approval journals
/// (`spec.approvals.journalKey`).
pub const APPROVALS_KEY_DIR: &str = "/var/run/secrets/mcpguard.io/approvals";

/// A bound server, dereferenced: the binding in the policy and the McpServer it names.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedServer<'a> {
    pub binding: &'a ServerBinding,
    pub server: &'a McpServer,
}

impl ResolvedServer<'_> {
    /// The name sandboxed code uses.
    pub fn sandbox_name(&self) -> &str {
        self.binding.alias.as_deref().unwrap_or(&self.binding.name)
    }
}

/// The rendered config and the Secret keys the binding proxy must have mounted.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub config: GuardConfig,
    pub yaml: String,
    /// Secret name → keys, for the binding-proxy container's volumes.
    pub secrets: BTreeMap<String, BTreeSet<String>>,
    /// Deployed McpServers (by name): the binding proxy gets a token for each one's gate.
    pub identities: BTreeSet<String>,
    /// The Secret and key sealing approval journals, `(secret, key)`, mounted into the binding proxy
    /// only (at [`APPROVALS_KEY_DIR`]) when the policy has `approvals`.
    pub journal_key: Option<(String, String)>,
    /// Things the user should know that do not stop the policy (shown in the Ready condition's message).
    pub notes: Vec<String>,
}

/// `namespace/name` of a resource.
/// The Secret key a credential file of the binding proxy holds, `(secret, key)`, when it is one this
/// operator mounts (`SECRETS_DIR/<secret>/<key>`).
pub fn secret_key_of(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(SECRETS_DIR)?.strip_prefix('/')?;
    let (secret, key) = rest.split_once('/')?;
    (!secret.is_empty() && !key.is_empty() && !key.contains('/')).then_some((secret, key))
}

pub fn key_of(namespace: Option<&str>, name: Option<&str>) -> String {
    format!("{}/{}", namespace.unwrap_or_default(), name.unwrap_or_default())
}

/// Render the config. Every resolved server must have a URL: a deployed server's comes from its status.
/// The callers the executor admits are part of it ([`super::executor::callers`]).
pub fn render(
    policy: &McpGuardPolicy,
    servers: &[ResolvedServer<'_>],
    settings: &Settings,
) -> Result<Rendered, Invalid> {
    let mut errors = Vec::new();
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut identities = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in servers.iter().enumerate() {
        let spec = &r.server.spec;
        let url = match (&spec.url, &spec.deploy) {
            (Some(u), None) => u.clone(),
            (None, Some(_)) => match r.server.status.as_ref().and_then(|s| s.url.clone()) {
                Some(u) => u,
                None => {
                    errors.push(format!("spec.servers[{i}]: McpServer `{}` has no URL yet", r.binding.name));
                    continue;
                }
            },
            _ => {
                errors.push(format!(
                    "spec.servers[{i}]: McpServer `{}` must set exactly one of url or deploy",
                    r.binding.name
                ));
                continue;
            }
        };
        let mut headers = Vec::new();
        if spec.deploy.is_some() {
            let server = r.server.metadata.name.clone().unwrap_or_default();
            headers.push(CredentialEntry {
                name: SERVER_IDENTITY_HEADER.into(),
                value: None,
                value_from: Some(ValueSource {
                    file: Some(format!("{IDENTITY_DIR}/{server}/token")),
                    env: None,
                }),
                prefix: String::new(),
            });
            identities.insert(server);
        }
        for h in &spec.headers {
            if h.name.eq_ignore_ascii_case(SERVER_IDENTITY_HEADER) {
                errors.push(format!(
                    "McpServer `{}`: header `{}` is reserved for MCP Guard's own token",
                    r.binding.name, h.name
                ));
                continue;
            }
            let value_from = h.secret_key_ref.as_ref().map(|s| {
                secrets.entry(s.name.clone()).or_default().insert(s.key.clone());
                ValueSource { file: Some(format!("{SECRETS_DIR}/{}/{}", s.name, s.key)), env: None }
            });
            headers.push(CredentialEntry {
                name: h.name.clone(),
                value: h.value.clone(),
                value_from,
                prefix: h.prefix.clone(),
            });
        }
        let tools = &r.binding.tools;
        let mut deny: Vec<String> = spec.tools.deny.iter().chain(&tools.deny).cloned().collect();
        // Approval is required where either the McpServer or the policy asks for it.
        let require_approval: Vec<String> =
            dedup(spec.tools.require_approval.iter().chain(&tools.require_approval).cloned().collect());
        if !require_approval.is_empty() && policy.spec.approvals.is_none() {
            errors.push(format!(
                "spec.servers[{i}]: tools {require_approval:?} of `{}` require approval: add spec.approvals \
                 (approvers and a journalKey)",
                r.sandbox_name()
            ));
        }
        let allow = intersect(&spec.tools.allow, &tools.allow);
        if allow.is_none() {
            deny = vec!["*".into()];
            notes.push(format!(
                "no tool of `{}` is both allowed by the McpServer and the policy",
                r.sandbox_name()
            ));
        }
        out.push(ServerConfig {
            name: r.sandbox_name().to_string(),
            url: Some(url),
            headers,
            command: None,
            args: Vec::new(),
            env: Vec::new(),
            tools: ToolFilter { allow: allow.unwrap_or_default(), deny: dedup(deny), require_approval },
            timeouts: spec.timeouts.clone(),
            // A deployed server lives on a pod or Service address, which is private by definition.
            allow_private_endpoint: spec.allow_private_endpoint || spec.deploy.is_some(),
            tool_changes: spec.tool_changes,
        });
    }
    let meta = &policy.metadata;
    let wanted = out.iter().any(|s| !s.tools.require_approval.is_empty());
    let approvals = approvals(policy, wanted, &mut errors);
    let journal_key = policy
        .spec
        .approvals
        .as_ref()
        .map(|a| (a.journal_key.secret_name.clone(), a.journal_key.key.clone()));
    let config = GuardConfig {
        policy: key_of(meta.namespace.as_deref(), meta.name.as_deref()),
        limits: policy.spec.limits.clone(),
        servers: out,
        binding: policy.spec.binding.clone(),
        callers: super::executor::callers(policy, settings),
        approvals,
        // The executor image has it at the default path.
        deno: None,
    };
    if let Err(e) = config.validate() {
        errors.extend(e);
    }
    if !errors.is_empty() {
        return Err(Invalid(errors));
    }
    let yaml = serde_saphyr::to_string(&config).map_err(|e| Invalid(vec![format!("cannot render: {e}")]))?;
    Ok(Rendered { config, yaml, secrets, identities, journal_key, notes })
}

/// The binding proxy's approval settings from `spec.approvals`: McpApprovals in the policy's own
/// namespace, service-account approvers as `namespace/name`, the journal key from its mounted Secret.
/// `wanted`: some bound tool requires approval, so someone must be able to decide.
fn approvals(policy: &McpGuardPolicy, wanted: bool, errors: &mut Vec<String>) -> Option<ApprovalSettings> {
    let a = policy.spec.approvals.as_ref()?;
    let namespace = policy.metadata.namespace.clone().unwrap_or_default();
    for (i, sa) in a.approvers.service_accounts.iter().enumerate() {
        let parts: Vec<&str> = sa.split('/').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty() || p.contains(':')) {
            errors.push(format!(
                "spec.approvals.approvers.serviceAccounts[{i}]: `{}` is neither a service account name nor \
                 namespace/name",
                sa.escape_debug()
            ));
        }
    }
    let key = &a.journal_key.key;
    if key.is_empty() || key == "." || key.starts_with("..") || key.contains('/') {
        errors.push(format!(
            "spec.approvals.journalKey.key: `{}` is not a file name the key could be mounted as",
            key.escape_debug()
        ));
    }
    if a.retention < a.ttl {
        errors.push(format!(
            "spec.approvals.retention: {} is shorter than spec.approvals.ttl ({}): a decided approval can be \
             resumed for one more ttl, so it must be kept at least that long",
            a.retention, a.ttl
        ));
    }
    if wanted && a.approvers.is_empty() {
        errors.push(
            "spec.approvals.approvers: name at least one approver (users, groups or serviceAccounts): \
             nobody could decide"
                .into(),
        );
    }
    Some(ApprovalSettings {
        store: ApprovalStoreConfig {
            directory: None,
            kubernetes: Some(KubernetesApprovalStore {
                namespace: namespace.clone(),
                policy: policy.metadata.name.clone().unwrap_or_default(),
            }),
        },
        ttl: a.ttl,
        retention: a.retention,
        allow_self_approval: a.allow_self_approval,
        approvers: a.approvers.qualified(&namespace),
        journal_key_file: Some(format!("{APPROVALS_KEY_DIR}/{}", a.journal_key.key)),
    })
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.into_iter().filter(|x| seen.insert(x.clone())).collect()
}

/// The allow list matching what both lists allow (an empty list allows everything). `None`: nothing.
fn intersect(a: &[String], b: &[String]) -> Option<Vec<String>> {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Some(Vec::new()),
        (true, false) => return Some(b.to_vec()),
        (false, true) => return Some(a.to_vec()),
        _ => {}
    }
    let mut out = Vec::new();
    for x in a {
        for y in b {
            if let Some(p) = meet(x, y) {
                out.push(p);
            }
        }
    }
    let out = dedup(out);
    if out.is_empty() { None } else { Some(out) }
}

/// The pattern matching exactly the names both patterns match, if any.
fn meet(x: &str, y: &str) -> Option<String> {
    match (x.strip_suffix('*'), y.strip_suffix('*')) {
        (None, None) => (x == y).then(|| x.to_string()),
        (Some(px), None) => y.starts_with(px).then(|| y.to_string()),
        (None, Some(py)) => x.starts_with(py).then(|| x.to_string()),
        (Some(px), Some(py)) => {
            if px.starts_with(py) {
                Some(x.to_string())
            } else if py.starts_with(px) {
                Some(y.to_string())
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn allow_lists_intersect_with_prefixes() {
        assert_eq!(intersect(&s(&[]), &s(&["a"])), Some(s(&["a"])));
        assert_eq!(intersect(&s(&["get_*"]), &s(&["get_issue", "list"])), Some(s(&["get_issue"])));
        assert_eq!(intersect(&s(&["get_*"]), &s(&["get_i*"])), Some(s(&["get_i*"])));
        assert_eq!(intersect(&s(&["a"]), &s(&["b"])), None);
    }
}
