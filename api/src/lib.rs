//! The agent-facing API: the gRPC `mcpguard.v1.Executor` service (`proto/mcpguard/v1/executor.proto`)
//! and the MCP front door (streamable HTTP), both in front of one [`ApiState`] that authenticates
//! callers, applies the limits at the edge (code size, a bounded execution queue, the caller's deadline)
//! and runs the code in the sandbox.
//!
//! Status codes at the boundary (the outcome of the code itself is never an error; it is in the
//! response): see [`ApiError`] and the comment at the top of the proto.
//!
//! This crate never sees a credential: it reaches tools through the binding client, and does not
//! depend on the binding proxy (a test of the workspace checks it).

pub mod admission;
pub mod auth;
pub mod convert;
pub mod error;
pub mod gate;
pub mod grpc;
pub mod limits;
pub mod listen;
pub mod mcp;
pub mod metrics;
pub mod state;
pub mod tls;

pub use self::{
    error::ApiError,
    limits::{EdgeLimits, LimitOverrides, MIN_RUN_TIME, apply_overrides, wall_time_for_deadline},
    state::{ApiState, Door, Run, request_id},
};
