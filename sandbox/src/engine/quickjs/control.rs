//! The host's side of the limits: which limit (if any) has tripped, and the checks the interrupt handler
//! runs. Shared between the isolate thread and the async side (which may trip the wall-time limit when
//! the isolate is stuck inside one long native call).

use std::{
    sync::atomic::{AtomicU8, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use mcp_guard_crds::LimitKind;

const KINDS: [LimitKind; 7] = [
    LimitKind::Memory,
    LimitKind::Stack,
    LimitKind::CpuTime,
    LimitKind::WallTime,
    LimitKind::Output,
    LimitKind::ToolCalls,
    LimitKind::DiscoveryCalls,
];

#[derive(Debug)]
pub(crate) struct Control {
    /// 0 while nothing tripped, else 1 + index into `KINDS`. The first limit to trip wins.
    tripped: AtomicU8,
    pub(crate) started: Instant,
    pub(crate) deadline: Instant,
    cpu_limit: Duration,
    /// Thread CPU time (ns) when the isolate started; set on the isolate thread.
    cpu_start_ns: AtomicU64,
}

impl Control {
    pub(crate) fn new(wall: Duration, cpu: Duration) -> Self {
        let started = Instant::now();
        Control {
            tripped: AtomicU8::new(0),
            started,
            deadline: started + wall,
            cpu_limit: cpu,
            cpu_start_ns: AtomicU64::new(0),
        }
    }

    /// Record the isolate thread's CPU clock; call on the isolate thread before running anything.
    pub(crate) fn start_cpu_clock(&self) {
        self.cpu_start_ns.store(thread_cpu_ns(), Ordering::Relaxed);
    }

    /// CPU time used so far; only meaningful on the isolate thread.
    pub(crate) fn cpu_used(&self) -> Duration {
        Duration::from_nanos(thread_cpu_ns().saturating_sub(self.cpu_start_ns.load(Ordering::Relaxed)))
    }

    pub(crate) fn trip(&self, kind: LimitKind) {
        let code = KINDS.iter().position(|k| *k == kind).map_or(1, |i| i as u8 + 1);
        let _ = self.tripped.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
    }

    pub(crate) fn tripped(&self) -> Option<LimitKind> {
        match self.tripped.load(Ordering::Acquire) {
            0 => None,
            n => KINDS.get(usize::from(n) - 1).copied(),
        }
    }

    /// The interrupt handler: true stops the guest with an uncatchable error. QuickJS calls it every
    /// few thousand bytecode instructions and inside regular-expression matching.
    pub(crate) fn should_interrupt(&self) -> bool {
        if self.tripped().is_some() {
            return true;
        }
        if Instant::now() >= self.deadline {
            self.trip(LimitKind::WallTime);
            return true;
        }
        if self.cpu_used() >= self.cpu_limit {
            self.trip(LimitKind::CpuTime);
            return true;
        }
        false
    }
}

/// CPU time consumed by the calling thread, in nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_THREAD_CPUTIME_ID is always supported
    // on Linux. On failure the timespec stays zero, which only makes CPU accounting read as zero.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}
