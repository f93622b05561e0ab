//! Types shared by every part of MCP Guard: the configuration that the executor and the binding proxy
//! read (rendered by the operator into a ConfigMap, written by hand for local use), and the
//! Kubernetes custom resources ([`v1alpha1`]). One place for each fact: every limit's default and range lives in
//! [`limits`].

pub mod approvals;
pub mod binding;
pub mod config;
pub mod crd_yaml;
pub mod identity;
pub mod limits;
pub mod quantity;
pub mod server_config;
pub mod v1alpha1;

pub use approvals::{ApprovalSettings, ApprovalStoreConfig, Approvers, KubernetesApprovalStore};
pub use binding::{AuditSettings, BindingSettings, Rate, RateLimits};
pub use config::{Callers, ConfigError, GuardConfig};
pub use limits::{EngineKind, LimitKind, Limits};
pub use quantity::{ByteSize, DurationSpec};
pub use server_config::{
    CredentialEntry, ServerConfig, ToolChangePolicy, ToolFilter, Transport, ValueSource,
};
