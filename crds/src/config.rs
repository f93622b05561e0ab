//! The configuration file that `mcp-guard exec`/`serve` read. The operator renders the same schema into
//! a ConfigMap, so it is defined once, here.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::Limits;

/// The embedded default configuration, used when no `--config` is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../default-config.yaml");

/// MCP Guard configuration (YAML).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardConfig {
    /// Limits applied to every execution.
    #[serde(default)]
    pub limits: Limits,
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
        self.limits.validate()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ByteSize;

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
