//! Upstream MCP servers, as the binding proxy reaches them. Only the binding proxy reads credential
//! values; everything else sees where they come from, never what they are.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::DurationSpec;

/// One upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerConfig {
    /// The server's name: sandboxed code calls its tools as `mcp.<name>.<tool>(...)` (the name is mapped
    /// to a JavaScript identifier). Lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// The MCP endpoint of a remote server (streamable HTTP), `http://` or `https://`. Set exactly one
    /// of `url` or `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Headers added to every request to `url`, such as `Authorization`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<CredentialEntry>,
    /// A local server: the program the binding proxy starts, speaking MCP over stdio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Arguments of `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of `command`. It inherits nothing else except `PATH`, `HOME` and `LANG`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<CredentialEntry>,
    /// Which of the server's tools are bound. Default: all of them.
    #[serde(default)]
    pub tools: ToolFilter,
    /// Timeouts for this server.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Allow a URL that resolves to a loopback, link-local, private or cloud-metadata address. Off by
    /// default: such addresses usually mean a request forgery.
    #[serde(default)]
    pub allow_private_endpoint: bool,
    /// What to do when a tool's definition changes after it was first seen (a "rug pull"): `warn`
    /// reports it in the audit log and keeps serving the new definition; `refuse` refuses calls to it.
    #[serde(default)]
    pub tool_changes: ToolChangePolicy,
}

/// How to reach a server, borrowed from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    Http { url: &'a str, headers: &'a [CredentialEntry] },
    Stdio { command: &'a str, args: &'a [String], env: &'a [CredentialEntry] },
}

/// A header or environment variable whose value may be a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialEntry {
    /// Header or variable name.
    pub name: String,
    /// A literal, non-secret value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where a secret value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueSource>,
    /// Text put before the value, for example `"Bearer "`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// The source of a secret value. Values from either source are redacted from everything that leaves the
/// binding proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueSource {
    /// Read from this file (how Kubernetes mounts a Secret key); re-read when it changes, so rotated
    /// secrets apply without a restart. Surrounding whitespace is trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Read from this environment variable of the binding proxy (local use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// Tool allow and deny lists. A name matches an entry exactly, or a `prefix*` entry by prefix. Deny wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolFilter {
    /// Only these tools are bound. Empty: all tools.
    #[serde(default)]
    pub allow: Vec<String>,
    /// These tools are never bound.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Bound tools whose every call waits for a person's approval: the binding proxy pauses the
    /// execution and resumes it once an approver decided. Needs `approvals` (on Kubernetes, the
    /// `spec.approvals` of each McpGuardPolicy binding the server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_approval: Vec<String>,
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl ToolFilter {
    pub fn allows(&self, tool: &str) -> bool {
        let allowed = self.allow.is_empty() || self.allow.iter().any(|p| matches(p, tool));
        allowed && !self.deny.iter().any(|p| matches(p, tool))
    }

    /// Whether a call of `tool` waits for approval.
    pub fn needs_approval(&self, tool: &str) -> bool {
        self.require_approval.iter().any(|p| matches(p, tool))
    }
}

/// Timeouts for one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Timeouts {
    /// Connecting and initialising the MCP session.
    pub connect: DurationSpec,
    /// One tool call, from request to result.
    pub call: DurationSpec,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: DurationSpec::secs(10), call: DurationSpec::secs(30) }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ToolChangePolicy {
    #[default]
    Warn,
    Refuse,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl CredentialEntry {
    fn validate(&self, at: &str, errors: &mut Vec<String>) {
        match (&self.value, &self.value_from) {
            (Some(_), None) => {}
            (None, Some(src)) => match (&src.file, &src.env) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => errors.push(format!("{at}.valueFrom: set exactly one of `file` or `env`")),
            },
            _ => errors.push(format!("{at}: set exactly one of `value` or `valueFrom`")),
        }
    }
}

impl ServerConfig {
    /// The transport, or `None` unless exactly one of `url` and `command` is set.
    pub fn transport(&self) -> Option<Transport<'_>> {
        match (&self.url, &self.command) {
            (Some(url), None) => Some(Transport::Http { url, headers: &self.headers }),
            (None, Some(command)) => Some(Transport::Stdio { command, args: &self.args, env: &self.env }),
            _ => None,
        }
    }

    /// Every credential entry of this server.
    pub fn credentials(&self) -> impl Iterator<Item = &CredentialEntry> {
        self.headers.iter().chain(self.env.iter())
    }

    pub(crate) fn validate(&self, at: &str, errors: &mut Vec<String>) {
        if !valid_name(&self.name) {
            errors.push(format!(
                "{at}.name: `{}` must start with a lowercase letter and contain only lowercase letters, digits, `-` and `_` (at most 63)",
                self.name
            ));
        }
        match self.transport() {
            None => errors
                .push(format!("{at}: set exactly one of `url` (a remote server) or `command` (a local one)")),
            Some(Transport::Http { url, headers }) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    errors.push(format!("{at}.url: `{url}` must start with http:// or https://"));
                }
                if !self.env.is_empty() || !self.args.is_empty() {
                    errors.push(format!(
                        "{at}: `args` and `env` apply to `command` only; use `headers` with `url`"
                    ));
                }
                for (i, h) in headers.iter().enumerate() {
                    let here = format!("{at}.headers[{i}]");
                    if !valid_header_name(&h.name) {
                        errors.push(format!("{here}.name: `{}` is not a valid HTTP header name", h.name));
                    }
                    h.validate(&here, errors);
                }
            }
            Some(Transport::Stdio { command, env, .. }) => {
                if command.trim().is_empty() {
                    errors.push(format!("{at}.command: must not be empty"));
                }
                if !self.headers.is_empty() {
                    errors.push(format!("{at}: `headers` apply to `url` only; use `env` with `command`"));
                }
                for (i, e) in env.iter().enumerate() {
                    let here = format!("{at}.env[{i}]");
                    if e.name.is_empty() || e.name.contains('=') || e.name.contains('\0') {
                        errors.push(format!(
                            "{here}.name: `{}` is not a valid environment variable name",
                            e.name
                        ));
                    }
                    e.validate(&here, errors);
                }
            }
        }
        for (list, entries) in [
            ("allow", &self.tools.allow),
            ("deny", &self.tools.deny),
            ("requireApproval", &self.tools.require_approval),
        ] {
            if entries.iter().any(|e| e.is_empty()) {
                errors.push(format!("{at}.tools.{list}: entries must not be empty"));
            }
        }
        if self.timeouts.call.duration().is_zero() || self.timeouts.connect.duration().is_zero() {
            errors.push(format!("{at}.timeouts: timeouts must be longer than zero"));
        }
    }
}

/// Check that server names are unique.
pub(crate) fn validate_servers(servers: &[ServerConfig], errors: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for (i, s) in servers.iter().enumerate() {
        let at = format!("servers[{i}]");
        s.validate(&at, errors);
        if !seen.insert(s.name.as_str()) {
            errors.push(format!("{at}.name: `{}` is used by more than one server", s.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_allow_deny_and_prefixes() {
        let f = ToolFilter {
            allow: vec!["get_*".into(), "echo".into()],
            deny: vec!["get_secret".into()],
            require_approval: Vec::new(),
        };
        assert!(f.allows("get_issue") && f.allows("echo"));
        assert!(!f.allows("get_secret") && !f.allows("delete_repo") && !f.allows("echoes"));
        assert!(ToolFilter::default().allows("anything"));
    }
}
