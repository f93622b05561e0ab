//! Per-execution limits: their defaults, their allowed ranges, and the names of the limits an execution
//! can exceed. This module is the one place where these numbers live.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::{ByteSize, DurationSpec};

/// Hard limits for one execution of sandboxed code. The host enforces every one of them; the guest
/// cannot raise, observe or disable them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Maximum JavaScript heap of one isolate (for example `64Mi`). An allocation past it stops the
    /// execution with `limit_exceeded: memory`.
    pub memory: ByteSize,
    /// Maximum native stack the isolate may use (for example `1Mi`). Deep recursion past it stops the
    /// execution with `limit_exceeded: stack`.
    pub stack: ByteSize,
    /// Maximum CPU time the isolate may spend running JavaScript (for example `5s`). Time spent waiting
    /// for tool calls or timers does not count.
    pub cpu_time: DurationSpec,
    /// Maximum wall-clock time of the whole execution, including tool calls and timers (for example `30s`).
    pub wall_time: DurationSpec,
    /// Maximum bytes of console output plus the JSON result (for example `1Mi`).
    pub output: ByteSize,
    /// Maximum number of tool calls one execution may start.
    pub tool_calls: u32,
    /// Maximum number of discovery calls (`mcp.$search`, `mcp.$describe`) one execution may make. They
    /// are answered by the server itself, so they have a budget of their own, apart from `toolCalls`;
    /// one more stops the execution with `limit_exceeded: discovery_calls`.
    pub discovery_calls: u32,
    /// Maximum size of the submitted code (for example `256Ki`). Larger code is rejected before it runs.
    pub code_size: ByteSize,
    /// The JavaScript engine: `quickjs` (the default: starts in about a millisecond, exact per-execution
    /// memory accounting) or `v8` (V8 through the Deno runtime, in its own confined process per
    /// execution: a JIT, much faster on heavy computation, more memory per execution).
    pub engine: EngineKind,
}

/// Which engine runs the code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// QuickJS (through rquickjs), in isolate-host processes or isolate threads.
    #[default]
    Quickjs,
    /// V8, through the Deno runtime binary, one confined process per execution.
    V8,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Quickjs => "quickjs",
            EngineKind::V8 => "v8",
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: ByteSize::mib(64),
            stack: ByteSize::mib(1),
            cpu_time: DurationSpec::secs(5),
            wall_time: DurationSpec::secs(30),
            output: ByteSize::mib(1),
            tool_calls: 100,
            discovery_calls: 20,
            code_size: ByteSize::kib(256),
            engine: EngineKind::Quickjs,
        }
    }
}

/// Allowed range of each limit: `(field, min, max)` in the field's unit.
/// The CRD's CEL rules are generated from these same constants (`v1alpha1::cel`).
pub(crate) struct Range<T> {
    pub(crate) field: &'static str,
    pub(crate) min: T,
    pub(crate) max: T,
}

pub(crate) const MEMORY: Range<ByteSize> =
    Range { field: "memory", min: ByteSize::mib(1), max: ByteSize::gib(4) };
/// The isolate threads have a 32 MiB native stack; the limit stays well below it so the host's own
/// frames always have room.
pub(crate) const STACK: Range<ByteSize> =
    Range { field: "stack", min: ByteSize::kib(64), max: ByteSize::mib(16) };
pub(crate) const CPU_TIME: Range<DurationSpec> =
    Range { field: "cpuTime", min: DurationSpec::millis(1), max: DurationSpec::secs(600) };
pub(crate) const WALL_TIME: Range<DurationSpec> =
    Range { field: "wallTime", min: DurationSpec::millis(1), max: DurationSpec::secs(3600) };
pub(crate) const OUTPUT: Range<ByteSize> =
    Range { field: "output", min: ByteSize::kib(1), max: ByteSize::mib(64) };
pub(crate) const TOOL_CALLS: Range<u32> = Range { field: "toolCalls", min: 0, max: 10_000 };
pub(crate) const DISCOVERY_CALLS: Range<u32> = Range { field: "discoveryCalls", min: 0, max: 1000 };
pub(crate) const CODE_SIZE: Range<ByteSize> =
    Range { field: "codeSize", min: ByteSize::kib(1), max: ByteSize::mib(4) };

fn check<T: PartialOrd + std::fmt::Display>(r: &Range<T>, v: &T, errors: &mut Vec<String>) {
    if *v < r.min || *v > r.max {
        errors.push(format!("limits.{}: {v} is outside the allowed range {} to {}", r.field, r.min, r.max));
    }
}

impl Limits {
    /// Every out-of-range field, each as `limits.<field>: <why>`.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        check(&MEMORY, &self.memory, &mut errors);
        check(&STACK, &self.stack, &mut errors);
        check(&CPU_TIME, &self.cpu_time, &mut errors);
        check(&WALL_TIME, &self.wall_time, &mut errors);
        check(&OUTPUT, &self.output, &mut errors);
        check(&TOOL_CALLS, &self.tool_calls, &mut errors);
        check(&DISCOVERY_CALLS, &self.discovery_calls, &mut errors);
        check(&CODE_SIZE, &self.code_size, &mut errors);
        if self.cpu_time > self.wall_time {
            errors.push(format!(
                "limits.cpuTime: {} is longer than limits.wallTime {}; CPU time can never exceed wall time",
                self.cpu_time, self.wall_time
            ));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// Which limit stopped an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// The isolate's heap reached `limits.memory`.
    Memory,
    /// Recursion reached `limits.stack`.
    Stack,
    /// JavaScript ran for longer than `limits.cpuTime`.
    CpuTime,
    /// The execution took longer than `limits.wallTime`.
    WallTime,
    /// Console output plus the result exceeded `limits.output`.
    Output,
    /// The code tried to start more than `limits.toolCalls` tool calls.
    ToolCalls,
    /// The code tried to make more than `limits.discoveryCalls` discovery calls.
    DiscoveryCalls,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Memory => "memory",
            LimitKind::Stack => "stack",
            LimitKind::CpuTime => "cpu_time",
            LimitKind::WallTime => "wall_time",
            LimitKind::Output => "output",
            LimitKind::ToolCalls => "tool_calls",
            LimitKind::DiscoveryCalls => "discovery_calls",
        }
    }

    /// A one-line explanation that names the configured limit.
    pub fn describe(self, limits: &Limits) -> String {
        match self {
            LimitKind::Memory => format!("the isolate's heap reached the memory limit of {}", limits.memory),
            LimitKind::Stack => format!("the call stack reached the stack limit of {}", limits.stack),
            LimitKind::CpuTime => {
                format!("the code used more than the CPU time limit of {}", limits.cpu_time)
            }
            LimitKind::WallTime => {
                format!("the execution ran longer than the wall time limit of {}", limits.wall_time)
            }
            LimitKind::Output => {
                format!("console output and result exceeded the output limit of {}", limits.output)
            }
            LimitKind::ToolCalls => {
                format!("the code tried to make more than the limit of {} tool calls", limits.tool_calls)
            }
            LimitKind::DiscoveryCalls => format!(
                "the code tried to make more than the limit of {} discovery calls ($search/$describe)",
                limits.discovery_calls
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_within_their_ranges() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        let limits = Limits { memory: ByteSize::gib(8), tool_calls: 20_000, ..Limits::default() };
        let errors = limits.validate().unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("limits.memory: 8Gi is outside"), "{errors:?}");
        assert!(errors[1].starts_with("limits.toolCalls: 20000"), "{errors:?}");
    }

    #[test]
    fn cpu_time_longer_than_wall_time_is_refused() {
        let limits = Limits {
            cpu_time: DurationSpec::secs(60),
            wall_time: DurationSpec::secs(10),
            ..Limits::default()
        };
        assert!(limits.validate().unwrap_err()[0].contains("cpuTime"));
    }
}
