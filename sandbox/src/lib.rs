//! MCP Guard's sandbox: it validates untrusted TypeScript/JavaScript, runs it in a fresh, disposable
//! QuickJS isolate with hard limits, and lets it reach MCP tools only through bindings.
//!
//! The pipeline is [`validator::validate`] → [`engine::Engine::execute`] → [`outcome::Outcome`];
//! [`sandbox::Sandbox`] puts them together. Tool calls leave through a [`host::ToolHost`]; this crate
//! has no way to the network, no credential and no wire type (a workspace test checks that it does not
//! depend on the binding proxy).

pub mod engine;
pub mod host;
pub mod outcome;
pub mod sandbox;
pub mod validator;

pub use mcp_guard_crds as config;
