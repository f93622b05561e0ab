//! Layer 3 as processes: isolate hosts. Untrusted code runs in a process that holds nothing (no
//! environment, no descriptor but its channel and standard error, no file, no socket it could open) and
//! can be killed: a memory-safety bug in the engine hands an attacker a confined process with nothing in
//! it, and a guest stuck inside one long native call is ended by `SIGKILL` at the wall-time limit instead
//! of occupying a thread of the executor. A host serves one caller only; it may run several executions
//! of that caller at once (each in its own fresh runtime, on its own thread), so that executions awaiting
//! slow tools do not cost a process each. What they then share is listed in `host.rs`.
//!
//! - `host.rs`: the host process (`mcp-guard isolate-host`): confinement, then the executions of one
//!   caller.
//! - `engine.rs`: the executor's side, [`ProcessEngine`]: a warm pool of hosts, per-caller routing, the
//!   tool-call relay, the kill at the wall-time limit and the crash outcomes.
//! - `protocol.rs`: the frames on the socketpair between them.

mod engine;
pub mod host;
pub mod protocol;

pub use self::engine::{HostCommand, HostKind, HostStats, HostView, ProcessEngine, SIBLING_KILLED};
