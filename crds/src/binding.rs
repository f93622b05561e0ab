//! How a policy binds tools: per-execution budgets, rate limits and audit. The binding proxy enforces
//! all of it, authoritatively, even if the executor is compromised.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::{ByteSize, DurationSpec};

/// Binding settings of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BindingSettings {
    /// Total size of the JSON arguments of all tool calls of one execution.
    pub argument_bytes: ByteSize,
    /// Total size of the results of all tool calls of one execution.
    pub result_bytes: ByteSize,
    /// Token-bucket rate limits on tool calls.
    pub rate_limits: RateLimits,
    /// The audit log.
    pub audit: AuditSettings,
}

impl Default for BindingSettings {
    fn default() -> Self {
        BindingSettings {
            argument_bytes: ByteSize::mib(1),
            result_bytes: ByteSize::mib(16),
            rate_limits: RateLimits::default(),
            audit: AuditSettings::default(),
        }
    }
}

/// Rate limits; an absent one does not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimits {
    /// Tool calls per caller (all tools together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_caller: Option<Rate>,
    /// Tool calls per tool (all callers together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_tool: Option<Rate>,
}

/// `requests` per `per`, with bursts up to `requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    pub requests: u32,
    pub per: DurationSpec,
}

/// Where audit records go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuditSettings {
    /// A file that JSON lines are appended to, or `-` for standard error.
    pub path: String,
    /// Record tool-call argument values, not only their shape. Off by default: arguments may carry
    /// personal data.
    pub include_arguments: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { path: "-".into(), include_arguments: false }
    }
}

impl BindingSettings {
    pub(crate) fn validate(&self, errors: &mut Vec<String>) {
        if self.argument_bytes.bytes() == 0 || self.result_bytes.bytes() == 0 {
            errors.push("binding: argumentBytes and resultBytes must be larger than zero".into());
        }
        for (name, rate) in
            [("perCaller", &self.rate_limits.per_caller), ("perTool", &self.rate_limits.per_tool)]
        {
            if let Some(r) = rate
                && (r.requests == 0 || r.per.duration().is_zero())
            {
                {
                    errors.push(format!(
                        "binding.rateLimits.{name}: requests and per must be larger than zero"
                    ));
                }
            }
        }
        if self.audit.path.trim().is_empty() {
            errors.push("binding.audit.path: must be a file path or `-`".into());
        }
    }
}
