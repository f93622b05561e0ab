//! The configuration file that `mcp-guard exec`/`serve` read. The operator renders the same schema into
//! a ConfigMap, so it is defined once, here.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{binding::BindingSettings, limits::Limits, server_config::ServerConfig};

/// The embedded default configuration, used when no `--config` is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../default-config.yaml");

/// MCP Guard configuration (YAML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardConfig {
    /// The policy's name, recorded in audit records. The operator sets it to the McpGuardPolicy's
    /// `namespace/name`.
    #[serde(default = "default_policy")]
    pub policy: String,
    /// Limits applied to every execution.
    #[serde(default)]
    pub limits: Limits,
    /// The upstream MCP servers whose tools are bound into the sandbox.
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
    /// Budgets, rate limits and audit for tool calls.
    #[serde(default)]
    pub binding: BindingSettings,
    /// Who may call `serve` once authenticated (in addition to `--allowed-callers` and
    /// `--discovery-callers`). The operator writes a policy's callers here, one list entry per
    /// identity, never joined into a command line.
    #[serde(default, skip_serializing_if = "Callers::is_empty")]
    pub callers: Callers,
    /// Approvals of the tools listed in a server's `tools.requireApproval`. Required when any server
    /// lists one: without it such calls could only be refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<crate::approvals::ApprovalSettings>,
    /// The Deno binary of the V8 engine (`limits.engine: v8`). When unset: `deno` next to the
    /// `mcp-guard` binary, then `/usr/local/lib/mcp-guard/deno` (where the executor image has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deno: Option<std::path::PathBuf>,
}

/// Identities allowed to call, by name: exact, or `prefix*` by prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Callers {
    /// May execute code (and list tools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub execute: Vec<String>,
    /// May only list and describe tools, never execute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discover: Vec<String>,
}

impl Callers {
    pub fn is_empty(&self) -> bool {
        self.execute.is_empty() && self.discover.is_empty()
    }

    fn validate(&self, errors: &mut Vec<String>) {
        for (list, names) in [("execute", &self.execute), ("discover", &self.discover)] {
            for (i, name) in names.iter().enumerate() {
                let star = name.find('*');
                if name.is_empty()
                    || name.chars().any(|c| c.is_whitespace() || c == ',' || c.is_control())
                    || star.is_some_and(|p| p != name.len() - 1)
                {
                    errors.push(format!(
                        "callers.{list}[{i}]: `{}` is not an identity: no spaces or commas, and `*` only at the end",
                        name.escape_debug()
                    ));
                }
            }
        }
    }
}

fn default_policy() -> String {
    "local".into()
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            policy: default_policy(),
            limits: Limits::default(),
            servers: Vec::new(),
            binding: BindingSettings::default(),
            callers: Callers::default(),
            approvals: None,
            deno: None,
        }
    }
}

/// A configuration that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: invalid configuration:\n  {}", errors.join("\n  "))]
    Invalid { origin: String, errors: Vec<String> },
}

impl GuardConfig {
    /// Parse and validate YAML; `origin` names the source in error messages (a path, or "embedded default").
    pub fn from_yaml(yaml: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: GuardConfig = serde_saphyr::from_str(yaml)
            .map_err(|e| ConfigError::Parse { origin: origin.to_string(), message: e.to_string() })?;
        config.validate().map_err(|errors| ConfigError::Invalid { origin: origin.to_string(), errors })?;
        Ok(config)
    }

    /// Read, parse and validate a YAML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let yaml = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_yaml(&yaml, &path.display().to_string())
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Self {
        // The embedded file is checked by a unit test, so this never falls back in practice; falling back
        // to the compiled-in defaults keeps this infallible.
        Self::from_yaml(DEFAULT_CONFIG_YAML, "embedded default").unwrap_or_default()
    }

    /// Every semantic error, each prefixed with the path of the field.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = self.limits.validate().err().unwrap_or_default();
        crate::server_config::validate_servers(&self.servers, &mut errors);
        self.binding.validate(&mut errors);
        self.callers.validate(&mut errors);
        match &self.approvals {
            Some(a) => a.validate(&mut errors),
            None => {
                for (i, s) in self.servers.iter().enumerate() {
                    if !s.tools.require_approval.is_empty() {
                        errors.push(format!(
                            "servers[{i}].tools.requireApproval: approvals are not configured: add an `approvals` section (a store and approvers)"
                        ));
                    }
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ByteSize;

    #[test]
    fn servers_are_checked_with_the_path_of_each_error() {
        let yaml = "servers:\n  - name: Bad Name\n    url: ftp://x\n  - name: both\n    url: http://a\n    command: b\n  - name: ok\n    command: srv\n    env:\n      - name: TOKEN\n        valueFrom: { env: A, file: /b }\n";
        let err = GuardConfig::from_yaml(yaml, "c.yaml").unwrap_err().to_string();
        assert!(err.contains("servers[0].name: `Bad Name`"), "{err}");
        assert!(err.contains("servers[0].url: `ftp://x` must start with http"), "{err}");
        assert!(err.contains("servers[1]: set exactly one of `url`"), "{err}");
        assert!(err.contains("servers[2].env[0].valueFrom: set exactly one of `file` or `env`"), "{err}");
    }

    #[test]
    fn a_full_local_config_parses() {
        let yaml = "policy: dev\nservers:\n  - name: time\n    command: mcp-server-time\n    args: [--local-timezone, UTC]\n  - name: api\n    url: https://mcp.example.com/mcp\n    headers:\n      - name: Authorization\n        prefix: 'Bearer '\n        valueFrom: { file: /run/secrets/token }\n    tools: { allow: [get_*], deny: [get_secret] }\n    timeouts: { call: 5s }\nbinding:\n  rateLimits:\n    perCaller: { requests: 60, per: 1m }\n  audit: { path: /tmp/audit.jsonl }\n";
        let c = GuardConfig::from_yaml(yaml, "c.yaml").unwrap();
        assert_eq!(c.servers.len(), 2);
        assert!(matches!(
            c.servers[0].transport(),
            Some(crate::Transport::Stdio { command: "mcp-server-time", .. })
        ));
        assert_eq!(c.servers[1].headers[0].prefix, "Bearer ");
        assert_eq!(c.binding.rate_limits.per_caller.as_ref().unwrap().requests, 60);
    }

    #[test]
    fn callers_are_identities_one_per_entry() {
        let c = GuardConfig::from_yaml(
            "callers:\n  execute: [system:serviceaccount:a:*]\n  discover: [system:serviceaccount:ops:op]\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(c.callers.execute, ["system:serviceaccount:a:*"]);
        for bad in ["a,system:serviceaccount:*", "", "a b", "system:*:x"] {
            let yaml = format!("callers:\n  execute: ['{bad}']\n");
            let err = GuardConfig::from_yaml(&yaml, "c.yaml").unwrap_err().to_string();
            assert!(err.contains("callers.execute[0]"), "{bad}: {err}");
        }
    }

    #[test]
    fn embedded_default_parses_and_matches_the_compiled_defaults() {
        let parsed = GuardConfig::from_yaml(DEFAULT_CONFIG_YAML, "embedded default").unwrap();
        assert_eq!(parsed, GuardConfig::default());
    }

    #[test]
    fn partial_limits_keep_defaults_for_the_rest() {
        let c = GuardConfig::from_yaml("limits:\n  memory: 16Mi\n", "t").unwrap();
        assert_eq!(c.limits.memory, ByteSize::mib(16));
        assert_eq!(c.limits.tool_calls, Limits::default().tool_calls);
    }

    #[test]
    fn unknown_fields_are_errors_with_a_location() {
        let err = GuardConfig::from_yaml("limits:\n  memroy: 16Mi\n", "my.yaml").unwrap_err().to_string();
        assert!(err.starts_with("my.yaml:"), "{err}");
        assert!(err.contains("memroy"), "{err}");
    }

    #[test]
    fn bad_values_are_errors_that_name_the_value() {
        let err = GuardConfig::from_yaml("limits:\n  wallTime: forever\n", "c.yaml").unwrap_err().to_string();
        assert!(err.contains("forever"), "{err}");
        let err = GuardConfig::from_yaml("limits:\n  memory: 100Gi\n", "c.yaml").unwrap_err().to_string();
        assert!(err.contains("limits.memory: 100Gi is outside"), "{err}");
    }
}
