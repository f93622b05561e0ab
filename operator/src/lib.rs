//! The MCP Guard operator: reconciles `McpServer` and `McpGuardPolicy` into locked-down executor
//! deployments. Each reconcile is one readable pipeline: dereference → validate → build → apply →
//! status; the builders in [`build`] are pure functions of the spec.

pub mod build;
pub mod conditions;
pub mod context;
pub mod controllers;
pub mod discovery;
pub mod http;
pub mod leader;
pub mod reconcile;
