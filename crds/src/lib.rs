//! Types shared by every part of MCP Guard: the configuration that the executor and the binding proxy
//! read (rendered by the operator into a ConfigMap, written by hand for local use), and, later, the
//! Kubernetes custom resources. One place for each fact: every limit's default and range lives in
//! [`limits`].

pub mod config;
pub mod limits;
pub mod quantity;

pub use config::{ConfigError, GuardConfig};
pub use limits::{LimitKind, Limits};
pub use quantity::{ByteSize, DurationSpec};
