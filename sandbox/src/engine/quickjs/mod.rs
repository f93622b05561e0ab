//! The QuickJS engine (rquickjs): a fresh runtime and context per execution, on a pool thread, with
//! host-enforced limits. See `isolate.rs` for one execution and `bytecode.rs` for why eval is absent.

mod alloc;
mod bytecode;
mod control;
mod intl;
mod isolate;
mod web;

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use mcp_guard_crds::LimitKind;
use tokio::sync::oneshot;

pub use self::isolate::IsolateError;
pub(crate) use self::isolate::map_stack;
use self::{
    alloc::HeapMeter,
    control::Control,
    isolate::{Isolate, Journal},
};
use super::{Engine, ExecutionRequest, pool::IsolatePool};
use crate::outcome::{Metrics, Outcome, Status};

/// How long past the wall-time limit the async side waits for an isolate that is stuck inside one long
/// native call (which the interrupt handler cannot reach) before it answers the caller without it.
const STUCK_GRACE: Duration = Duration::from_millis(200);

/// The QuickJS engine. Cheap to clone; clones share the isolate thread pool.
#[derive(Clone, Debug)]
pub struct QuickJsEngine {
    pool: IsolatePool,
}

impl Default for QuickJsEngine {
    fn default() -> Self {
        Self::new(256)
    }
}

static PRELUDE: OnceLock<Result<Arc<isolate::Prelude>, String>> = OnceLock::new();

fn prelude() -> Result<Arc<isolate::Prelude>, IsolateError> {
    PRELUDE
        .get_or_init(|| isolate::compile_prelude().map(Arc::new).map_err(|e| e.0))
        .clone()
        .map_err(IsolateError)
}

impl QuickJsEngine {
    /// An engine that runs at most `max_isolates` executions at the same time; more wait their turn.
    pub fn new(max_isolates: usize) -> Self {
        QuickJsEngine { pool: IsolatePool::new(max_isolates) }
    }

    /// Threads the engine currently keeps.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Start all of the engine's isolate threads now and never start another (see
    /// [`IsolatePool::prestart`]; for isolate hosts, before they confine themselves).
    pub fn prestart(&self) -> std::io::Result<usize> {
        self.pool.prestart()
    }

    /// Run `f` on one of the engine's isolate threads and return its result (`None` if the thread could
    /// not be started or `f` panicked). For tests that inspect an isolate thread (its confinement).
    #[doc(hidden)]
    pub async fn run_on_isolate_thread<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.pool
            .spawn(move || {
                let _ = tx.send(f());
            })
            .ok()?;
        rx.await.ok()
    }
}

#[async_trait]
impl Engine for QuickJsEngine {
    fn name(&self) -> &'static str {
        "quickjs"
    }

    async fn execute(&self, request: ExecutionRequest) -> Outcome {
        let limits = request.limits.clone();
        let control = Arc::new(Control::new(limits.wall_time.duration(), limits.cpu_time.duration()));
        let journal = Arc::new(Mutex::new(Journal::default()));
        let meter = Arc::new(HeapMeter::default());
        let finish = |status: Status, cpu: Duration, journal: &Mutex<Journal>, meter: &HeapMeter| {
            let j = journal.lock().unwrap_or_else(|p| p.into_inner());
            // A thrown error is output too: it gets what the console output left of the limit.
            let status = match status {
                Status::Threw { error } => {
                    let room = limits.output.as_usize().saturating_sub(j.output_bytes);
                    Status::Threw { error: error.fit(room, limits.output) }
                }
                status => status,
            };
            Outcome {
                status,
                console: j.console.clone(),
                tool_calls: j.tool_calls(Instant::now()),
                metrics: Metrics {
                    cpu_ms: cpu.as_secs_f64() * 1000.0,
                    wall_ms: control.started.elapsed().as_secs_f64() * 1000.0,
                    peak_heap_bytes: meter.peak() as u64,
                },
            }
        };
        let internal = |message: String| Status::Threw {
            error: crate::outcome::ThrownError {
                name: "InternalError".into(),
                message,
                stack: String::new(),
            },
        };
        let prelude = match prelude() {
            Ok(p) => p,
            Err(e) => return finish(internal(e.to_string()), Duration::ZERO, &journal, &meter),
        };
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = oneshot::channel();
        let isolate = Isolate {
            request,
            control: control.clone(),
            journal: journal.clone(),
            meter: meter.clone(),
            handle,
            prelude,
        };
        let job_control = control.clone();
        let spawned = self.pool.spawn(move || {
            let result = isolate.run();
            let cpu = job_control.cpu_used();
            let _ = tx.send((result, cpu));
        });
        if let Err(e) = spawned {
            return finish(
                internal(format!("cannot start an isolate thread: {e}")),
                Duration::ZERO,
                &journal,
                &meter,
            );
        }
        // The isolate enforces the wall-time limit itself; this outer timer only answers for an isolate
        // stuck inside a single native call, and tells it to stop at its next chance.
        let wait = control.deadline.saturating_duration_since(Instant::now()) + STUCK_GRACE;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok((Ok(status), cpu))) => finish(status, cpu, &journal, &meter),
            Ok(Ok((Err(e), cpu))) => finish(internal(e.to_string()), cpu, &journal, &meter),
            Ok(Err(_)) => finish(
                internal("the isolate thread ended without an outcome".into()),
                Duration::ZERO,
                &journal,
                &meter,
            ),
            Err(_) => {
                control.trip(LimitKind::WallTime);
                let limit = control.tripped().unwrap_or(LimitKind::WallTime);
                let status = Status::LimitExceeded { limit, message: limit.describe(&limits) };
                finish(status, limits.cpu_time.duration().min(control.started.elapsed()), &journal, &meter)
            }
        }
    }
}
