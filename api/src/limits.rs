//! The edge's limits: per-request tightening of the policy's limits, the caller's deadline turned into
//! wall time, and the sizes of the queue and of messages.

use std::time::Duration;

use mcp_guard_crds::{DurationSpec, Limits};

/// Per-request tightening of the policy's limits (never loosening).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub wall_time: Option<Duration>,
    pub cpu_time: Option<Duration>,
    pub tool_calls: Option<u32>,
}

/// Least time an execution is given: with less left before the caller's deadline, the request fails
/// with DEADLINE_EXCEEDED instead of starting.
pub const MIN_RUN_TIME: Duration = Duration::from_millis(2);

/// How long before the caller's deadline a request waiting in the queue gives up.
pub(crate) const QUEUE_MARGIN: Duration = Duration::from_millis(5);
/// The most time kept back from a caller's deadline.
pub(crate) const MAX_MARGIN: Duration = Duration::from_millis(250);

/// The wall time an execution may use when the caller's deadline is `remaining` away: a margin is kept
/// so that the outcome (`limit_exceeded: wall_time`) reaches the caller before its deadline.
pub fn wall_time_for_deadline(remaining: Duration) -> Duration {
    let margin = (remaining / 10).clamp(Duration::from_millis(1), MAX_MARGIN);
    remaining.saturating_sub(margin)
}

/// Settings of the edge.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Largest request message (gRPC) or body (HTTP).
    pub max_message_bytes: usize,
    /// Executions that run at the same time.
    pub max_concurrent: usize,
    /// Executions that may wait for a slot; beyond that, RESOURCE_EXHAUSTED.
    pub max_queue: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits { max_message_bytes: 4 * 1024 * 1024, max_concurrent: 64, max_queue: 256 }
    }
}

/// Tighten `limits` with `overrides` (never loosen).
pub fn apply_overrides(limits: &mut Limits, overrides: LimitOverrides) {
    if let Some(wall) = overrides.wall_time {
        cap_wall_time(limits, wall);
    }
    if let Some(cpu) = overrides.cpu_time {
        let cpu = cpu.max(Duration::from_millis(1));
        if cpu < limits.cpu_time.duration() {
            limits.cpu_time = duration_spec(cpu);
        }
    }
    if let Some(calls) = overrides.tool_calls {
        limits.tool_calls = limits.tool_calls.min(calls);
    }
}

pub(crate) fn cap_wall_time(limits: &mut Limits, wall: Duration) {
    let wall = wall.max(Duration::from_millis(1));
    if wall < limits.wall_time.duration() {
        limits.wall_time = duration_spec(wall);
    }
    if limits.cpu_time > limits.wall_time {
        limits.cpu_time = limits.wall_time;
    }
}

fn duration_spec(d: Duration) -> DurationSpec {
    DurationSpec::millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
}
