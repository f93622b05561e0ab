//! The binding proxy: the only part of MCP Guard that holds credentials and talks to upstream MCP
//! servers, and the authoritative policy enforcement point for tool calls (docs/architecture.md, layers
//! 4 to 7). It runs as its own process (`mcp-guard proxy`) and serves the internal API of
//! `proto/mcpguard/internal/v1/binding.proto` on a Unix socket; see [`service`], the one module that
//! speaks the wire types.
//!
//! Every check here assumes the executor may be compromised: the executor names an execution, a server,
//! a tool and arguments, and the proxy decides, from its own configuration, whether and how much.
//!
//! No crate that runs guest code or faces agents depends on this one (a workspace test checks it).

pub mod approvals;
pub mod audit;
pub mod convert;
pub mod credentials;
mod describe;
mod enforce;
mod executions;
mod proxy;
pub mod redact;
pub mod service;
pub mod ssrf;
pub mod upstream;

pub use self::{
    enforce::Failure,
    executions::{ExecutionEnd, ExecutionError},
    proxy::BindingProxy,
};
