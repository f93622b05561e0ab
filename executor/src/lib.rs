//! MCP Guard's executor: it validates untrusted TypeScript/JavaScript, runs it in a fresh, disposable
//! QuickJS isolate with hard limits, and lets it reach MCP tools only through bindings.
//!
//! The pipeline is [`validator::validate`] → [`engine::Engine::execute`] → [`outcome::Outcome`];
//! [`sandbox::Sandbox`] puts them together.

pub mod api;
pub mod engine;
pub mod host;
pub mod outcome;
pub mod proxy;
pub mod sandbox;
pub mod validator;

pub use mcp_guard_crds as config;
