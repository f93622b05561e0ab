//! One execution in one fresh QuickJS runtime: set up the sandbox, run the code, drive its event loop
//! (promise jobs, tool-call completions, timers) until it settles or a limit trips, and extract the
//! result. Runs on an isolate thread; everything here is synchronous.

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    rc::Rc,
    sync::{Arc, Mutex, OnceLock, mpsc},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use mcp_guard_crds::LimitKind;
use rquickjs::{
    Context, Ctx, Exception, Function, Object, Persistent, Promise, Runtime, Value, context::intrinsic,
    convert::Coerced, function::Opt, promise::PromiseState,
};

use super::{
    alloc::{HeapMeter, MeteredAllocator},
    bytecode,
    control::Control,
};
use crate::{
    engine::{Code, ExecutionEvent, ExecutionRequest},
    host::ToolError,
    outcome::{ConsoleLevel, ConsoleLine, Status, ThrownError, ToolCallRecord, ToolCallStatus},
    validator::{self, ValidateOptions},
};

/// The intrinsics of an isolate's context: everything but `Eval` (see `bytecode.rs`) and `Performance`
/// (replaced by a frozen clock).
type Intrinsics = (
    intrinsic::Date,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::Proxy,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
    intrinsic::Promise,
    intrinsic::WeakRef,
);

/// The file name the submitted code has inside the isolate; stack frames in it are kept and mapped back.
pub(crate) const SCRIPT_NAME: &str = "sandbox.js";
const PRELUDE_NAME: &str = "mcp-guard:prelude";
const PRELUDE_SOURCE: &str = include_str!("prelude.js");
const WEB_NAME: &str = "mcp-guard:web";
const WEB_SOURCE: &str = include_str!("web.js");
const INTL_NAME: &str = "mcp-guard:intl";
const INTL_SOURCE: &str = include_str!("intl.js");
/// At most this many timers may be pending at once.
const MAX_TIMERS: usize = 10_000;
/// Repeating timers fire at most once per millisecond.
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// QuickJS-ng's message for a stack overflow.
const STACK_OVERFLOW: &str = "Maximum call stack size exceeded";

/// What the isolate thread records while the code runs; the async side reads it when the execution ends,
/// even if the isolate is stuck.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub(crate) console: Vec<ConsoleLine>,
    pub(crate) output_bytes: usize,
    pub(crate) calls: Vec<CallEntry>,
    /// Tool calls and discovery calls started (both are listed in `calls`; each has its own budget).
    tool_calls_started: usize,
    discovery_calls_started: usize,
}

/// How a call ended: its duration, status and, on error, (code, message).
type Finished = (Duration, ToolCallStatus, Option<(String, String)>);

#[derive(Debug)]
pub(crate) struct CallEntry {
    server: String,
    tool: String,
    started: Instant,
    finished: Option<Finished>,
}

impl Journal {
    /// The tool calls as outcome records; calls without a result are `cancelled`.
    pub(crate) fn tool_calls(&self, now: Instant) -> Vec<ToolCallRecord> {
        (0..self.calls.len()).filter_map(|i| self.record(i, now)).collect()
    }

    /// One tool call as an outcome record.
    pub(crate) fn record(&self, index: usize, now: Instant) -> Option<ToolCallRecord> {
        let c = self.calls.get(index)?;
        let (duration, status, error) = c.finished.clone().unwrap_or((
            now.saturating_duration_since(c.started),
            ToolCallStatus::Cancelled,
            None,
        ));
        Some(ToolCallRecord {
            server: c.server.clone(),
            tool: c.tool.clone(),
            duration_ms: duration.as_secs_f64() * 1000.0,
            status,
            error_code: error.as_ref().map(|(code, _)| code.clone()),
            error: error.map(|(_, message)| message),
        })
    }
}

pub(crate) type SharedJournal = Arc<Mutex<Journal>>;

fn lock(journal: &SharedJournal) -> std::sync::MutexGuard<'_, Journal> {
    // A poisoned journal only means a panic elsewhere; its data is still the best record we have.
    journal.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything an isolate needs, owned by the isolate thread.
pub(crate) struct Isolate {
    pub(crate) request: ExecutionRequest,
    pub(crate) control: Arc<Control>,
    pub(crate) journal: SharedJournal,
    pub(crate) meter: Arc<HeapMeter>,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) prelude: Arc<Prelude>,
}

/// The sandbox's own JavaScript, compiled once per process: the setup every context runs, and the web
/// built-ins (`URL`, `TextEncoder`, `structuredClone`, `crypto`...), loaded by a context only when its
/// code first touches one of them, and `Intl` (`intl.js`), loaded the same way. Those two are also
/// compiled only when first used in the process, so that a process that never uses them (an isolate
/// host, whose start is on the path of a new caller) does not pay for them.
pub(crate) struct Prelude {
    pub(crate) setup: Vec<u8>,
    web: OnceLock<Result<Vec<u8>, String>>,
    intl: OnceLock<Result<Vec<u8>, String>>,
}

impl Prelude {
    /// The web built-ins' bytecode, compiled on first use.
    pub(crate) fn web(&self) -> Result<&[u8], IsolateError> {
        compiled_once(&self.web, WEB_SOURCE, WEB_NAME)
    }

    /// `Intl`'s bytecode, compiled on first use.
    pub(crate) fn intl(&self) -> Result<&[u8], IsolateError> {
        compiled_once(&self.intl, INTL_SOURCE, INTL_NAME)
    }
}

fn compile_named(source: &str, name: &str) -> Result<Vec<u8>, IsolateError> {
    bytecode::compile(source, name)
        .map_err(|e| IsolateError(format!("{name} does not compile: {}: {}", e.name, e.message)))
}

fn compiled_once<'a>(
    cell: &'a OnceLock<Result<Vec<u8>, String>>,
    source: &str,
    name: &str,
) -> Result<&'a [u8], IsolateError> {
    match cell.get_or_init(|| compile_named(source, name).map_err(|e| e.0)) {
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(IsolateError(e.clone())),
    }
}

/// An engine failure that is not the guest's doing.
#[derive(Debug, thiserror::Error)]
#[error("isolate failure: {0}")]
pub struct IsolateError(pub String);

/// Compile the prelude (once per process).
pub(crate) fn compile_prelude() -> Result<Prelude, IsolateError> {
    Ok(Prelude {
        setup: compile_named(PRELUDE_SOURCE, PRELUDE_NAME)?,
        web: OnceLock::new(),
        intl: OnceLock::new(),
    })
}

struct Timer {
    callback: Persistent<Function<'static>>,
    interval: Option<Duration>,
}

/// The event loop's state, shared with the host functions installed in the context.
#[derive(Default)]
struct LoopState {
    /// Resolve/reject functions of tool calls in flight, by call index.
    pending: HashMap<usize, (Persistent<Function<'static>>, Persistent<Function<'static>>)>,
    /// Timers by (due, id); `timer_due` finds a timer's key from its id.
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_due: HashMap<u64, Instant>,
    next_timer: u64,
    /// What `Date.now()` returns: frozen while code runs, advanced when the loop waits.
    clock_ms: f64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// A call needs approval: no more guest code runs; the calls in flight finish, then the execution
    /// ends as `approval_required`.
    paused: bool,
}

/// Discovery inputs past these sizes are refused (the call throws) before the host sees them.
const MAX_DISCOVERY_QUERY: usize = 256;
const MAX_DISCOVERY_NAMES: usize = 64;
const MAX_DISCOVERY_NAME: usize = 256;

type Completion = (usize, Result<serde_json::Value, ToolError>);

impl Isolate {
    /// Run the execution to its end and return its status. Console lines and tool calls are in the journal.
    pub(crate) fn run(mut self) -> Result<Status, IsolateError> {
        self.control.start_cpu_clock();
        // Source from an isolate host's job: validated here, on this confined thread and the execution's
        // clocks (the host is killed at the wall-time limit if the validator is still at it).
        if let Code::Source { source, max_code_bytes } = &self.request.code {
            let options = ValidateOptions { max_code_bytes: *max_code_bytes };
            match validator::validate_on_this_thread(source, &options) {
                Ok(prepared) => self.request.code = Code::Prepared(prepared),
                Err(rejection) => return Ok(Status::Rejected { rejection }),
            }
        }
        let Some(prepared) = self.request.code.prepared() else {
            return Err(IsolateError("the code was not validated".into()));
        };
        let limits = &self.request.limits;
        let allocator =
            MeteredAllocator::new(limits.memory.as_usize(), self.meter.clone(), self.control.clone());
        let rt = Runtime::new_with_alloc(allocator).map_err(|e| IsolateError(e.to_string()))?;
        rt.set_max_stack_size(limits.stack.as_usize());
        let control = self.control.clone();
        rt.set_interrupt_handler(Some(Box::new(move || control.should_interrupt())));
        // Compiled in this runtime, with every limit in place: QuickJS's parser never calls the interrupt
        // handler, but it allocates as it goes, and the metered allocator checks the CPU and wall-time
        // limits (see `alloc.rs`), so a program built to compile slowly stops at its limit.
        let user = match bytecode::compile_in_runtime(&rt, &prepared.script, SCRIPT_NAME) {
            Ok(b) => b,
            Err(_) if self.control.tripped().is_some() => return Ok(self.limit_status()),
            Err(e) => {
                return Ok(Status::Threw {
                    error: ThrownError { name: e.name, message: e.message, stack: String::new() },
                });
            }
        };
        if self.control.should_interrupt() {
            return Ok(self.limit_status());
        }
        let ctx = match Context::custom::<Intrinsics>(&rt) {
            Ok(ctx) => ctx,
            Err(_) if self.control.tripped().is_some() => return Ok(self.limit_status()),
            Err(e) => return Err(IsolateError(e.to_string())),
        };
        let status = ctx.with(|ctx| {
            let state =
                Rc::new(RefCell::new(LoopState { clock_ms: self.clock_ms(), ..LoopState::default() }));
            let status = self.drive(&ctx, &state, &user);
            // Handles into the context must go before the context does; tasks in flight are cancelled.
            let mut s = state.borrow_mut();
            for task in s.tasks.drain(..) {
                task.abort();
            }
            s.pending.clear();
            s.timers.clear();
            status
        });
        drop(ctx);
        drop(rt);
        Ok(status)
    }

    /// What `Date.now()` reads when the loop wakes: the execution's clock origin (its first run's,
    /// for a resume) plus the time since the isolate started.
    fn clock_ms(&self) -> f64 {
        match self.request.execution.clock_ms {
            0 => epoch_ms(),
            origin => origin as f64 + self.control.started.elapsed().as_millis() as f64,
        }
    }

    fn limit_status(&self) -> Status {
        let limit = self.control.tripped().unwrap_or(LimitKind::WallTime);
        Status::LimitExceeded { limit, message: limit.describe(&self.request.limits) }
    }

    /// The guest's error, or the limit that caused it.
    fn failure<'js>(&self, ctx: &Ctx<'js>, describe: &Function<'js>, error: Value<'js>) -> Status {
        if self.control.tripped().is_some() {
            return self.limit_status();
        }
        let parts: Vec<String> = describe.call((error,)).unwrap_or_else(|_| {
            ctx.catch();
            Vec::new()
        });
        let mut parts = parts.into_iter();
        let name = parts.next().unwrap_or_else(|| "Error".into());
        let message = parts.next().unwrap_or_else(|| "[unprintable thrown value]".into());
        let stack = parts.next().unwrap_or_default();
        if self.control.tripped().is_some() {
            return self.limit_status();
        }
        if name == "RangeError" && message == STACK_OVERFLOW {
            return Status::LimitExceeded {
                limit: LimitKind::Stack,
                message: LimitKind::Stack.describe(&self.request.limits),
            };
        }
        let stack = self.sandbox_stack(&stack);
        Status::Threw { error: ThrownError { name, message, stack } }
    }

    /// Keep only frames of the submitted code, mapped back to its source ([`map_stack`]).
    fn sandbox_stack(&self, stack: &str) -> String {
        match self.request.code.prepared() {
            Some(p) => map_stack(stack, &p.positions),
            None => String::new(),
        }
    }

    fn drive<'js>(&self, ctx: &Ctx<'js>, state: &Rc<RefCell<LoopState>>, user: &[u8]) -> Status {
        // Every call sends exactly one completion and the calls are capped by the limits, so a channel
        // with room for all of them never blocks a sender and never grows past that.
        let limits = &self.request.limits;
        let room =
            (limits.tool_calls as usize).saturating_add(limits.discovery_calls as usize).saturating_add(1);
        let (tx, rx) = mpsc::sync_channel::<Completion>(room);
        macro_rules! guest {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(_) => {
                        let err = ctx.catch();
                        if self.control.tripped().is_some() {
                            return self.limit_status();
                        }
                        return Status::Threw {
                            error: ThrownError {
                                name: "InternalError".into(),
                                message: format!(
                                    "the sandbox could not start: {}",
                                    err.as_exception().and_then(|e| e.message()).unwrap_or_default()
                                ),
                                stack: String::new(),
                            },
                        };
                    }
                }
            };
        }
        let host = guest!(self.host_object(ctx, state, tx));
        #[cfg(feature = "escape-hatch")]
        guest!(escape_hatch(ctx));
        let catalog = guest!(ctx.json_parse(self.request.catalog.json().as_bytes().to_vec()));
        let setup: Function = guest!(bytecode::load(ctx, &self.prelude.setup).and_then(|v| v.get()));
        let api: Object = guest!(setup.call((host, catalog)));
        let start: Function = guest!(api.get("start"));
        let describe: Function = guest!(api.get("describe"));
        // The submitted code: evaluating its bytecode yields the function to call.
        let user_fn = match bytecode::load(ctx, user) {
            Ok(v) => v,
            Err(_) => {
                let err = ctx.catch();
                return self.failure(ctx, &describe, err);
            }
        };
        let main: Promise = match start.call((user_fn,)) {
            Ok(p) => p,
            Err(_) => {
                let err = ctx.catch();
                return self.failure(ctx, &describe, err);
            }
        };
        loop {
            // Run every queued promise job.
            while ctx.execute_pending_job() {
                if self.control.tripped().is_some() {
                    return self.limit_status();
                }
            }
            if self.control.tripped().is_some() {
                return self.limit_status();
            }
            match main.state() {
                PromiseState::Resolved => return self.completed(ctx, &main, &describe),
                PromiseState::Rejected => {
                    // `result` throws the rejection reason into the context; `catch` takes it back.
                    let _ = main.result::<Value>();
                    let err = ctx.catch();
                    return self.failure(ctx, &describe, err);
                }
                PromiseState::Pending => {}
            }
            // Nothing runnable: wait for a tool call to finish or a timer to be due.
            let (has_calls, next_due) = {
                let s = state.borrow();
                (!s.pending.is_empty(), s.timers.keys().next().map(|(due, _)| *due))
            };
            if !has_calls && next_due.is_none() {
                return Status::Threw {
                    error: ThrownError {
                        name: "Error".into(),
                        message: "the code's promise can never settle: it awaits something that no tool call or timer will resolve".into(),
                        stack: String::new(),
                    },
                };
            }
            let wake = next_due.map_or(self.control.deadline, |d| d.min(self.control.deadline));
            let timeout = wake.saturating_duration_since(Instant::now());
            let completion = if has_calls {
                match rx.recv_timeout(timeout) {
                    Ok(c) => Some(c),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    // Cannot happen while the host object (which holds a sender) is alive.
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                }
            } else {
                std::thread::sleep(timeout);
                None
            };
            state.borrow_mut().clock_ms = self.clock_ms();
            if Instant::now() >= self.control.deadline {
                self.control.trip(LimitKind::WallTime);
                return self.limit_status();
            }
            if let Some((index, result)) = completion
                && let Err(status) = self.deliver(ctx, state, index, result, &describe)
            {
                return status;
            }
            if state.borrow().paused {
                return self.drain_paused(state, &rx);
            }
            if let Err(status) = self.fire_timers(ctx, state, &describe) {
                return status;
            }
        }
    }

    /// A call needs approval: run no more guest code, let the calls in flight finish (the binding proxy
    /// records their results in the journal, and gathers those that need approval too), until the
    /// wall-time limit at most; then end as `approval_required` (the host fills in the approval).
    fn drain_paused(&self, state: &Rc<RefCell<LoopState>>, rx: &mpsc::Receiver<Completion>) -> Status {
        loop {
            if state.borrow().pending.is_empty() {
                break;
            }
            let timeout = self.control.deadline.saturating_duration_since(Instant::now());
            let Ok((index, result)) = rx.recv_timeout(timeout) else { break };
            if state.borrow_mut().pending.remove(&index).is_none() {
                continue;
            }
            finish_call(&self.journal, index, &result);
            let journal = lock(&self.journal);
            if let Some(events) = &self.request.events
                && let Some(record) = journal.record(index, Instant::now())
            {
                let _ = events.send(ExecutionEvent::ToolCallFinished(record));
            }
        }
        Status::ApprovalRequired { approval: Box::default() }
    }

    fn completed<'js>(&self, ctx: &Ctx<'js>, main: &Promise<'js>, describe: &Function<'js>) -> Status {
        let text: String = match main.result::<String>() {
            Some(Ok(t)) => t,
            _ => {
                ctx.catch();
                return Status::Threw {
                    error: ThrownError {
                        name: "TypeError".into(),
                        message: "the result is not JSON-serialisable".into(),
                        stack: String::new(),
                    },
                };
            }
        };
        let _ = describe;
        let output = lock(&self.journal).output_bytes + text.len();
        if output > self.request.limits.output.as_usize() {
            self.control.trip(LimitKind::Output);
            return self.limit_status();
        }
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(result) => Status::Completed { result },
            Err(e) => Status::Threw {
                error: ThrownError {
                    name: "TypeError".into(),
                    message: format!(
                        "the result is not valid JSON ({e}); strings must not contain lone surrogates"
                    ),
                    stack: String::new(),
                },
            },
        }
    }

    /// Settle the promise of a finished tool call.
    fn deliver<'js>(
        &self,
        ctx: &Ctx<'js>,
        state: &Rc<RefCell<LoopState>>,
        index: usize,
        result: Result<serde_json::Value, ToolError>,
        describe: &Function<'js>,
    ) -> Result<(), Status> {
        let Some((resolve, reject)) = state.borrow_mut().pending.remove(&index) else { return Ok(()) };
        finish_call(&self.journal, index, &result);
        {
            let journal = lock(&self.journal);
            if let Some(events) = &self.request.events
                && let Some(record) = journal.record(index, Instant::now())
            {
                let _ = events.send(ExecutionEvent::ToolCallFinished(record));
            }
        }
        if let Err(e) = &result
            && e.code.ends_execution()
        {
            // Never settled: the code cannot catch it.
            if e.code == mcp_guard_tools::FailureKind::ReplayDiverged {
                return Err(Status::Threw {
                    error: ThrownError {
                        name: "ReplayDiverged".into(),
                        message: e.message.clone(),
                        stack: String::new(),
                    },
                });
            }
            state.borrow_mut().paused = true;
            return Ok(());
        }
        let settled = match result {
            Ok(value) => {
                let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
                resolve.restore(ctx).and_then(|f| f.call::<_, ()>((text,)))
            }
            Err(e) => reject.restore(ctx).and_then(|f| {
                let reason = rquickjs::Array::new(ctx.clone())?;
                reason.set(0, e.code.as_str())?;
                reason.set(1, e.message)?;
                f.call::<_, ()>((reason,))
            }),
        };
        if settled.is_err() {
            let err = ctx.catch();
            return Err(self.failure(ctx, describe, err));
        }
        Ok(())
    }

    fn fire_timers<'js>(
        &self,
        ctx: &Ctx<'js>,
        state: &Rc<RefCell<LoopState>>,
        describe: &Function<'js>,
    ) -> Result<(), Status> {
        let now = Instant::now();
        loop {
            let due = {
                let mut s = state.borrow_mut();
                match s.timers.keys().next().copied() {
                    Some(key) if key.0 <= now => s.timers.remove(&key).map(|t| (key.1, t)),
                    _ => None,
                }
            };
            let Some((id, timer)) = due else { return Ok(()) };
            let callback = match timer.callback.clone().restore(ctx) {
                Ok(f) => f,
                Err(_) => continue,
            };
            {
                let mut s = state.borrow_mut();
                s.timer_due.remove(&id);
                if let Some(every) = timer.interval {
                    let next = Instant::now() + every;
                    s.timers.insert((next, id), Timer { callback: timer.callback, interval: timer.interval });
                    s.timer_due.insert(id, next);
                }
            }
            // An exception escaping a timer callback ends the execution, as an uncaught error would.
            if callback.call::<_, ()>(()).is_err() {
                let err = ctx.catch();
                return Err(self.failure(ctx, describe, err));
            }
            if self.control.tripped().is_some() {
                return Err(self.limit_status());
            }
        }
    }

    /// The host functions the prelude receives. They are never reachable from the global object.
    fn host_object<'js>(
        &self,
        ctx: &Ctx<'js>,
        state: &Rc<RefCell<LoopState>>,
        tx: mpsc::SyncSender<Completion>,
    ) -> rquickjs::Result<Object<'js>> {
        let host = Object::new(ctx.clone())?;
        let output_limit = self.request.limits.output.as_usize();

        let journal = self.journal.clone();
        let control = self.control.clone();
        let events = self.request.events.clone();
        host.set(
            "log",
            Function::new(ctx.clone(), move |level: String, message: String| {
                let level = match level.as_str() {
                    "debug" => ConsoleLevel::Debug,
                    "info" => ConsoleLevel::Info,
                    "warn" => ConsoleLevel::Warn,
                    "error" => ConsoleLevel::Error,
                    _ => ConsoleLevel::Log,
                };
                let mut j = lock(&journal);
                j.output_bytes = j.output_bytes.saturating_add(message.len() + 1);
                if j.output_bytes > output_limit {
                    control.trip(LimitKind::Output);
                    return;
                }
                let line = ConsoleLine { level, message };
                if let Some(events) = &events {
                    let _ = events.send(ExecutionEvent::Console(line.clone()));
                }
                j.console.push(line);
            })?,
        )?;

        let s = state.clone();
        host.set("now", Function::new(ctx.clone(), move || s.borrow().clock_ms)?)?;
        // `Math.random` from the execution's seed (xorshift64*, as the engine's own, seeded through
        // splitmix64): a resumed execution draws what its first run drew. Native, so as fast as the
        // engine's.
        let rng = std::cell::Cell::new(splitmix64(self.request.execution.seed).max(1));
        host.set(
            "random",
            Function::new(ctx.clone(), move || {
                let mut x = rng.get();
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                rng.set(x);
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
            })?
            .with_name("random")?,
        )?;

        // The web built-ins' factory, loaded on first use (see `Prelude`).
        let prelude = self.prelude.clone();
        host.set(
            "web",
            Function::new(ctx.clone(), move |ctx: Ctx<'js>| -> rquickjs::Result<Value<'js>> {
                let bytes = prelude.web().map_err(|e| Exception::throw_internal(&ctx, &e.0))?;
                bytecode::load(&ctx, bytes)
            })?,
        )?;
        // WHATWG URL parsing and form encoding, for `URL` and `URLSearchParams`.
        host.set(
            "url",
            Function::new(
                ctx.clone(),
                |ctx: Ctx<'js>, op: String, a: String, b: Opt<String>, c: Opt<String>| {
                    // The host's copies are not counted by the isolate's heap meter: bound them.
                    let size =
                        a.len() + b.0.as_ref().map_or(0, String::len) + c.0.as_ref().map_or(0, String::len);
                    if size > super::web::MAX_INPUT {
                        return Err(Exception::throw_range(
                            &ctx,
                            &format!("URL input too large: {size} bytes (at most {})", super::web::MAX_INPUT),
                        ));
                    }
                    Ok(super::web::url(&op, &a, b.0.as_deref(), c.0.as_deref()))
                },
            )?,
        )?;

        // Intl's factory, loaded on first use like the web built-ins, and its operations over ICU4X. The
        // formatters it builds are cached per execution (see `intl.rs`).
        let prelude = self.prelude.clone();
        host.set(
            "intlModule",
            Function::new(ctx.clone(), move |ctx: Ctx<'js>| -> rquickjs::Result<Value<'js>> {
                let bytes = prelude.intl().map_err(|e| Exception::throw_internal(&ctx, &e.0))?;
                bytecode::load(&ctx, bytes)
            })?,
        )?;
        let services = Rc::new(super::intl::Services::default());
        host.set(
            "intl",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>,
                      op: String,
                      a: Coerced<String>,
                      b: Opt<Coerced<String>>,
                      c: Opt<Coerced<String>>| {
                    let (b, c) = (b.0.map(|v| v.0), c.0.map(|v| v.0));
                    // The host's copies are not counted by the isolate's heap meter: bound them.
                    let size =
                        a.0.len() + b.as_ref().map_or(0, String::len) + c.as_ref().map_or(0, String::len);
                    if size > super::intl::MAX_INPUT {
                        return Err(Exception::throw_range(
                            &ctx,
                            &format!(
                                "Intl input too large: {size} bytes (at most {})",
                                super::intl::MAX_INPUT
                            ),
                        ));
                    }
                    match services.call(&op, &a.0, b.as_deref(), c.as_deref()) {
                        Ok(text) => Ok(text),
                        Err(super::intl::IntlError::Range(m)) => Err(Exception::throw_range(&ctx, &m)),
                        Err(super::intl::IntlError::Type(m)) => Err(Exception::throw_type(&ctx, &m)),
                    }
                },
            )?,
        )?;

        let s = state.clone();
        host.set(
            "setTimer",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, callback: Function<'js>, delay: f64, repeat: bool| {
                    let mut st = s.borrow_mut();
                    if st.timers.len() >= MAX_TIMERS {
                        return Err(Exception::throw_range(
                            &ctx,
                            "too many pending timers in this execution",
                        ));
                    }
                    let delay = if delay.is_finite() && delay > 0.0 {
                        Duration::from_secs_f64((delay / 1000.0).min(1e9))
                    } else {
                        Duration::ZERO
                    };
                    let interval = repeat.then(|| delay.max(MIN_INTERVAL));
                    st.next_timer += 1;
                    let id = st.next_timer;
                    let due = Instant::now() + delay;
                    st.timers
                        .insert((due, id), Timer { callback: Persistent::save(&ctx, callback), interval });
                    st.timer_due.insert(id, due);
                    Ok(id as f64)
                },
            )?,
        )?;

        let s = state.clone();
        host.set(
            "clearTimer",
            Function::new(ctx.clone(), move |id: f64| {
                let mut st = s.borrow_mut();
                let id = id as u64;
                if let Some(due) = st.timer_due.remove(&id) {
                    st.timers.remove(&(due, id));
                }
            })?,
        )?;

        let s = state.clone();
        let journal = self.journal.clone();
        let control = self.control.clone();
        let catalog = self.request.catalog.clone();
        let tool_host = self.request.host.clone();
        let execution = self.request.execution.clone();
        let call_events = self.request.events.clone();
        let handle = self.handle.clone();
        let max_calls = self.request.limits.tool_calls as usize;
        let max_discovery = self.request.limits.discovery_calls as usize;
        host.set(
            "call",
            Function::new(ctx.clone(), move |ctx: Ctx<'js>, server: String, tool: String, args: String| -> rquickjs::Result<Promise<'js>> {
                let (promise, resolve, reject) = ctx.promise()?;
                let arguments = match serde_json::from_str::<serde_json::Value>(&args) {
                    Ok(v) => v,
                    Err(e) => {
                        reject.call::<_, ()>((reason(&ctx, "invalid_arguments", &format!("the arguments are not valid JSON ({e}); strings must not contain lone surrogates"))?,))?;
                        return Ok(promise);
                    }
                };
                // `$` is the host's own discovery server (mcp.$search / mcp.$describe): no side effects, but
                // host work, so it has a budget of its own and is listed among the calls.
                let discovery = server == "$" && (tool == "search" || tool == "describe");
                if discovery {
                    if let Err(message) = check_discovery(&tool, &arguments) {
                        reject.call::<_, ()>((reason(&ctx, "invalid_arguments", &message)?,))?;
                        return Ok(promise);
                    }
                    let index = {
                        let mut j = lock(&journal);
                        if j.discovery_calls_started >= max_discovery {
                            control.trip(LimitKind::DiscoveryCalls);
                            drop(j);
                            reject.call::<_, ()>((reason(&ctx, "quota_exceeded", "discovery call limit reached")?,))?;
                            return Ok(promise);
                        }
                        j.discovery_calls_started += 1;
                        j.calls.push(CallEntry { server: server.clone(), tool: tool.clone(), started: Instant::now(), finished: None });
                        if let Some(events) = &call_events {
                            let _ = events.send(ExecutionEvent::ToolCallStarted { server: server.clone(), tool: tool.clone() });
                        }
                        j.calls.len() - 1
                    };
                    // Answered here, on the isolate's thread (charged to this execution's CPU time), when
                    // the host can; otherwise like a tool call.
                    if let Some(result) = tool_host.discover(&execution, &tool, &arguments) {
                        {
                            let mut j = lock(&journal);
                            if let Some(entry) = j.calls.get_mut(index) {
                                let (status, error) = match &result {
                                    Ok(_) => (ToolCallStatus::Ok, None),
                                    Err(e) => (ToolCallStatus::Error, Some((e.code.as_str().to_string(), e.message.clone()))),
                                };
                                entry.finished = Some((entry.started.elapsed(), status, error));
                            }
                            if let Some(events) = &call_events
                                && let Some(record) = j.record(index, Instant::now())
                            {
                                let _ = events.send(ExecutionEvent::ToolCallFinished(record));
                            }
                        }
                        match result {
                            Ok(value) => {
                                let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
                                resolve.call::<_, ()>((text,))?;
                            }
                            Err(e) => reject.call::<_, ()>((reason(&ctx, e.code.as_str(), &e.message)?,))?,
                        }
                        return Ok(promise);
                    }
                    let tool_host = tool_host.clone();
                    let execution = execution.clone();
                    let tx = tx.clone();
                    let mut st = s.borrow_mut();
                    st.pending.insert(index, (Persistent::save(&ctx, resolve), Persistent::save(&ctx, reject)));
                    st.tasks.push(handle.spawn(async move {
                        let result = tool_host.call_at(&execution, index as u64, &server, &tool, arguments).await;
                        let _ = tx.try_send((index, result));
                    }));
                    return Ok(promise);
                }
                if !catalog.contains(&server, &tool) {
                    reject.call::<_, ()>((reason(&ctx, "denied", &format!("unknown tool {server}.{tool}"))?,))?;
                    return Ok(promise);
                }
                let index = {
                    let mut j = lock(&journal);
                    if j.tool_calls_started >= max_calls {
                        control.trip(LimitKind::ToolCalls);
                        drop(j);
                        reject.call::<_, ()>((reason(&ctx, "quota_exceeded", "tool call limit reached")?,))?;
                        return Ok(promise);
                    }
                    j.tool_calls_started += 1;
                    j.calls.push(CallEntry { server: server.clone(), tool: tool.clone(), started: Instant::now(), finished: None });
                    if let Some(events) = &call_events {
                        let _ = events.send(ExecutionEvent::ToolCallStarted { server: server.clone(), tool: tool.clone() });
                    }
                    j.calls.len() - 1
                };
                let mut st = s.borrow_mut();
                st.pending.insert(index, (Persistent::save(&ctx, resolve), Persistent::save(&ctx, reject)));
                let tool_host = tool_host.clone();
                let execution = execution.clone();
                let tx = tx.clone();
                let journal = journal.clone();
                st.tasks.push(handle.spawn(async move {
                    let result = tool_host.call_at(&execution, index as u64, &server, &tool, arguments).await;
                    // Recorded when the call ends, not when the isolate takes the result: a call that
                    // completed while its isolate was stuck in a native call is `ok` (or `error`) in the
                    // outcome, as in the binding proxy's audit log, not `cancelled`.
                    finish_call(&journal, index, &result);
                    let _ = tx.try_send((index, result));
                }));
                Ok(promise)
            })?,
        )?;
        Ok(host)
    }
}

/// Keep only frames of the submitted code (`sandbox.js:<line>:<column>`), with positions mapped back to
/// its source. A function name that spells a location (`{ ["mcp-guard:prelude:1:1"]() {} }`) is not
/// shown: the location is the line's last one, and a name mentioning the prelude reads `<anonymous>`.
pub(crate) fn map_stack(stack: &str, positions: &crate::validator::PositionMap) -> String {
    let marker = format!("{SCRIPT_NAME}:");
    let mut out = Vec::new();
    for line in stack.lines() {
        let Some(at) = line.rfind(&marker) else { continue };
        let rest = &line[at + marker.len()..];
        let mut nums = rest.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
        let (Some(l), Some(c)) = (nums.next(), nums.next()) else { continue };
        let (Ok(l), Ok(c)) = (l.parse::<u32>(), c.parse::<u32>()) else { continue };
        let Some((line_no, col)) = positions.original(l, c) else {
            continue;
        };
        let func = line.trim_start().strip_prefix("at ").and_then(|f| f.split(" (").next()).unwrap_or("");
        let func = if func.is_empty()
            || func.contains(&marker)
            || func.contains(PRELUDE_NAME)
            || func.contains(WEB_NAME)
            || func == "<eval>"
        {
            "<anonymous>"
        } else {
            func
        };
        out.push(format!("    at {func} (sandbox:{line_no}:{col})"));
    }
    out.join("\n")
}

/// Record how call `index` ended, once (the first record wins).
fn finish_call(journal: &SharedJournal, index: usize, result: &Result<serde_json::Value, ToolError>) {
    let mut j = lock(journal);
    if let Some(entry) = j.calls.get_mut(index)
        && entry.finished.is_none()
    {
        let (status, error) = match result {
            Ok(_) => (ToolCallStatus::Ok, None),
            Err(e) => (ToolCallStatus::Error, Some((e.code.as_str().to_string(), e.message.clone()))),
        };
        entry.finished = Some((entry.started.elapsed(), status, error));
    }
}

/// Refuse discovery inputs past the size caps, with a message the guest sees.
fn check_discovery(tool: &str, arguments: &serde_json::Value) -> Result<(), String> {
    let text = |key: &str| arguments.get(key).and_then(|v| v.as_str()).map_or(0, str::len);
    if tool == "search" {
        for (key, what) in [("query", "query"), ("detail", "detail")] {
            let len = text(key);
            if len > MAX_DISCOVERY_QUERY {
                return Err(format!(
                    "mcp.$search: the {what} is {len} bytes; at most {MAX_DISCOVERY_QUERY} bytes are allowed"
                ));
            }
        }
    } else if let Some(names) = arguments.get("names").and_then(|v| v.as_array()) {
        if names.len() > MAX_DISCOVERY_NAMES {
            return Err(format!(
                "mcp.$describe: {} names were given; at most {MAX_DISCOVERY_NAMES} are allowed",
                names.len()
            ));
        }
        if let Some(len) =
            names.iter().filter_map(|n| n.as_str()).map(str::len).find(|l| *l > MAX_DISCOVERY_NAME)
        {
            return Err(format!(
                "mcp.$describe: a name is {len} bytes; at most {MAX_DISCOVERY_NAME} bytes are allowed"
            ));
        }
    }
    Ok(())
}

/// The rejection reason of a binding's promise: `[code, message]`, turned into an `McpToolError` by the
/// prelude.
fn reason<'js>(ctx: &Ctx<'js>, code: &str, message: &str) -> rquickjs::Result<rquickjs::Array<'js>> {
    let a = rquickjs::Array::new(ctx.clone())?;
    a.set(0, code)?;
    a.set(1, message)?;
    Ok(a)
}

/// A well-mixed 64-bit value from `seed` (splitmix64's output function).
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn epoch_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64)
}

/// Test builds only (feature `escape-hatch`, never in a release): `__mcpGuardSyscall(nr, a, b, c)` makes
/// an arbitrary syscall from guest code, the stand-in for "the engine has been exploited". The isolate-host
/// tests use it to show what a compromised host can still do (nothing: each attempt kills it).
#[cfg(feature = "escape-hatch")]
fn escape_hatch(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    ctx.globals().set(
        "__mcpGuardSyscall",
        Function::new(ctx.clone(), |nr: f64, a: f64, b: f64, c: f64| -> f64 {
            // SAFETY: deliberately unsafe: this is the test stand-in for arbitrary native code.
            unsafe {
                libc::syscall(nr as libc::c_long, a as libc::c_long, b as libc::c_long, c as libc::c_long)
                    as f64
            }
        })?,
    )
}
