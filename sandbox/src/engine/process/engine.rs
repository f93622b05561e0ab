//! The executor's side of isolate hosts: an [`Engine`] that runs every execution in a confined host
//! process (see `host.rs`) and kills the host when one of its executions outlives its wall-time limit.
//!
//! Hosts are started ahead of need (a few wait, confined, in a warm pool) so process start-up is off the
//! critical path. A host serves executions of **one caller** only, up to `concurrency` of them at the same
//! time (each in a fresh QuickJS runtime on its own isolate thread) and `max_executions` in its life. An
//! execution goes to a host already serving its caller that has room (the fullest such host, so a
//! caller's executions pack into as few processes as they can), else to a warm host, else to a new one;
//! never to a host of another caller. After an execution that ended with a limit, and after a host
//! broke the protocol or died, the host takes no new execution and is killed once the others in it end
//! (or at once). So nothing of one caller's execution can be seen by another caller's, and what one
//! caller's code could do to its host (if it broke the engine) reaches at most that caller's other
//! executions in the same host.
//!
//! One socketpair per host carries every execution in it; frames name their execution by an id the
//! executor chose (`protocol.rs`). A reader task per host routes the host's frames to the execution they
//! name; a frame naming an execution the host is not running is a protocol error and the host is killed.
//! The executor proxies the host's tool calls to the real [`ToolHost`] and keeps its own record of them
//! per execution: the outcome's `toolCalls` come from that record, not from the host, which is
//! untrusted once guest code has run in it.
//!
//! At an execution's wall-time limit (plus [`KILL_GRACE`]) without its outcome, it is answered
//! `limit_exceeded: wall_time` and the host is killed, since a stuck native call cannot be interrupted:
//! the other executions in that host (the same caller's) end as `threw` / `IsolateCrashed` with a message
//! that says another execution of the caller exceeded its limit.

use std::{
    collections::HashMap,
    ffi::OsString,
    os::fd::AsRawFd,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use mcp_guard_crds::LimitKind;
use tokio::{
    net::{UnixStream, unix::OwnedReadHalf},
    process::Child,
    sync::{Notify, mpsc},
};

use super::protocol::{FrameError, FromHost, Job, ScriptJob, ToHost, read_frame, write_frame};
use crate::{
    engine::{Engine, ExecutionEvent, ExecutionRequest},
    host::ToolError,
    outcome::{ConsoleLine, Metrics, Outcome, Status, ThrownError, ToolCallRecord, ToolCallStatus},
};

/// How long past the wall-time limit the executor waits for an execution's outcome before it kills its
/// host.
const KILL_GRACE: Duration = Duration::from_millis(100);
/// How long a new host may take to confine itself and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Frames from a host waiting for one execution to take them (the host's reader waits when it is full).
const INBOX: usize = 64;

/// What a sibling execution is told when its host is killed because of another execution.
pub const SIBLING_KILLED: &str = "the isolate host was killed because another execution of the same caller \
     in it exceeded its wall-time limit inside a call that cannot be interrupted; this execution ran in \
     the same host and ended with it";

/// Which engine a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// `mcp-guard isolate-host`: QuickJS isolates on threads of the host.
    QuickJs,
    /// `mcp-guard v8-host`: the launcher that confines itself and executes Deno (`engine::v8`); one
    /// execution per host, in a fresh V8 isolate (a Worker).
    V8,
}

/// How to start a host: the `mcp-guard` binary and its `isolate-host` (or `v8-host`) arguments.
#[derive(Debug, Clone)]
pub struct HostCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub kind: HostKind,
}

impl HostCommand {
    /// This very binary, `isolate-host` (what `mcp-guard serve` uses).
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(HostCommand {
            program: std::env::current_exe()?,
            args: vec!["isolate-host".into()],
            kind: HostKind::QuickJs,
        })
    }

    /// `program` (an `mcp-guard` binary), `isolate-host`.
    pub fn isolate_host(program: PathBuf) -> Self {
        HostCommand { program, args: vec!["isolate-host".into()], kind: HostKind::QuickJs }
    }

    /// `program` (an `mcp-guard` binary), `v8-host` with the Deno binary at `deno`.
    pub fn v8_host(program: PathBuf, deno: &std::path::Path) -> Self {
        HostCommand {
            program,
            args: vec!["v8-host".into(), "--deno".into(), deno.as_os_str().to_owned()],
            kind: HostKind::V8,
        }
    }

    /// This very binary, `v8-host` with the Deno binary at `deno`.
    pub fn v8(deno: &std::path::Path) -> std::io::Result<Self> {
        Ok(HostCommand {
            program: std::env::current_exe()?,
            args: vec!["v8-host".into(), "--deno".into(), deno.as_os_str().to_owned()],
            kind: HostKind::V8,
        })
    }
}

/// What a V8 host's executions are told when V8 reported its heap exhausted before the process died.
const V8_OUT_OF_MEMORY: &str = "the V8 isolate reached its heap limit";

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct HostStats {
    /// Host processes started.
    pub started: AtomicU64,
    /// Hosts killed at an execution's wall-time limit.
    pub killed: AtomicU64,
    /// Hosts that died without the executor killing them (signal, seccomp kill, out of memory) or that
    /// broke the channel protocol.
    pub crashed: AtomicU64,
}

/// A host as tests see it.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    pub pid: u32,
    pub caller: Option<String>,
    /// Executions it runs now.
    pub running: usize,
    /// Executions it was given in its life.
    pub served: u32,
}

/// What a host's reader hands one execution.
enum Inbound {
    Frame(FromHost),
    /// The host is gone; why, for the execution's crash outcome.
    Gone(String),
}

/// One started, confined host process, shared by the executions of its caller that run in it.
struct Host {
    pid: u32,
    /// The limits it was started with (V8's heap and stack limits are the process's).
    limits: HostLimits,
    /// A V8 host's standard error, as it came (the last few KiB): V8 reports an exhausted heap there.
    stderr: Option<Arc<Mutex<String>>>,
    stderr_done: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Frames to the host; a writer task drains it (sending never waits on the host).
    to_host: mpsc::UnboundedSender<ToHost>,
    /// Wakes the reader task, which kills the process.
    kill: Notify,
    state: Mutex<HostState>,
}

#[derive(Default)]
struct HostState {
    /// The caller it serves, once it served one: it serves no other.
    caller: Option<String>,
    /// The executions running in it now, and where their frames go.
    executions: HashMap<u64, mpsc::Sender<Inbound>>,
    /// Executions it was given in its life.
    served: u32,
    /// Takes no new execution; killed once the last one in it ended.
    retired: bool,
    /// The process is gone (or going): its reader has ended.
    dead: bool,
    /// Why the executor killed it, when it did (the first reason wins); its executions are told.
    killed_because: Option<String>,
    /// When it last became idle (nothing running), for the bound on idle hosts.
    idle_since: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Host {
    /// Kill the process (its reader does it); `reason` is what its running executions are told.
    /// Returns whether this call decided the kill (an earlier call did not).
    fn kill(&self, reason: &str) -> bool {
        let first = {
            let mut s = lock(&self.state);
            s.retired = true;
            if s.killed_because.is_none() && !s.dead {
                s.killed_because = Some(reason.to_string());
                true
            } else {
                false
            }
        };
        self.kill.notify_one();
        first
    }

    fn view(&self) -> HostView {
        let s = lock(&self.state);
        HostView { pid: self.pid, caller: s.caller.clone(), running: s.executions.len(), served: s.served }
    }
}

#[derive(Default)]
struct Pool {
    /// Started hosts that never served anyone.
    warm: Vec<Arc<Host>>,
    /// Hosts that serve (or served) a caller, running executions or idle, oldest first.
    assigned: Vec<Arc<Host>>,
}

struct Inner {
    command: HostCommand,
    memory_limit: u64,
    /// V8's stack limit for warm V8 hosts (bytes).
    stack_limit: u64,
    warm_target: usize,
    max_executions: u32,
    concurrency: u32,
    max_idle: usize,
    pool: Mutex<Pool>,
    /// One lock per caller whose execution is looking for a host, so that only one of them starts a
    /// host at a time and the others then find room in it.
    callers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    next_id: AtomicU64,
    stats: HostStats,
    confinement: Mutex<Option<(String, bool)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let pool = std::mem::take(&mut *lock(&self.pool));
        for host in pool.warm.iter().chain(&pool.assigned) {
            host.kill("the executor's engine was dropped");
        }
    }
}

/// Runs executions in isolate-host processes. Cheap to clone.
#[derive(Clone)]
pub struct ProcessEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessEngine").field("command", &self.inner.command).finish()
    }
}

impl ProcessEngine {
    /// An engine whose hosts run `command`, with `memory_limit` (the policy's `limits.memory`, bytes) as
    /// the base of their kernel data limit, keeping `warm` hosts ready. By default a host runs one
    /// execution (see [`with_reuse`](Self::with_reuse) and [`with_concurrency`](Self::with_concurrency)).
    pub fn new(command: HostCommand, memory_limit: u64, warm: usize) -> Self {
        ProcessEngine {
            inner: Arc::new(Inner {
                command,
                memory_limit,
                stack_limit: mcp_guard_crds::Limits::default().stack.bytes(),
                warm_target: warm,
                max_executions: 1,
                concurrency: 1,
                max_idle: 0,
                pool: Mutex::default(),
                callers: Mutex::default(),
                next_id: AtomicU64::new(1),
                stats: HostStats::default(),
                confinement: Mutex::new(None),
            }),
        }
    }

    /// Let a host serve up to `max_executions` executions of the caller it first served (at once or
    /// one after another), keeping at most `max_idle` hosts with nothing running (the one idle longest
    /// is killed beyond that). `1` (the default): one execution per host.
    pub fn with_reuse(mut self, max_executions: u32, max_idle: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_executions = max_executions.max(1);
            inner.max_idle = max_idle;
        }
        self
    }

    /// Let a host run up to `concurrency` executions of its caller at the same time (bounded by the
    /// reuse count too). `1` (the default): one at a time.
    pub fn with_concurrency(mut self, concurrency: u32) -> Self {
        // A V8 host runs one execution at a time (each in an isolate of its own): its CPU clock and its
        // fate are the process's.
        if let Some(inner) = Arc::get_mut(&mut self.inner)
            && inner.command.kind == HostKind::QuickJs
        {
            inner.concurrency = concurrency.max(1);
        }
        self
    }

    /// V8's stack limit (bytes) for the V8 hosts started ahead of need: the policy's `limits.stack`.
    pub fn with_stack_limit(mut self, stack: u64) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.stack_limit = stack;
        }
        self
    }

    /// Start one host and report what confinement it got (`serve` refuses weak confinement).
    pub async fn probe(&self) -> std::io::Result<(String, bool)> {
        let host = spawn(&self.inner, self.inner.host_limits()).await?;
        lock(&self.inner.pool).warm.push(host);
        Ok(self.confinement().unwrap_or_default())
    }

    /// What the last started host reported: `(summary, process seccomp allow list in force)`.
    pub fn confinement(&self) -> Option<(String, bool)> {
        lock(&self.inner.confinement).clone()
    }

    pub fn stats(&self) -> &HostStats {
        &self.inner.stats
    }

    /// Process ids of the hosts waiting in the warm pool (for tests that inspect a host).
    #[doc(hidden)]
    pub fn warm_pids(&self) -> Vec<u32> {
        lock(&self.inner.pool).warm.iter().map(|h| h.pid).collect()
    }

    /// The hosts that serve a caller (for tests).
    #[doc(hidden)]
    pub fn hosts(&self) -> Vec<HostView> {
        let hosts: Vec<Arc<Host>> = lock(&self.inner.pool).assigned.clone();
        hosts.iter().map(|h| h.view()).collect()
    }

    /// Executions one host runs at once: the concurrency, within the reuse count.
    fn per_host(&self) -> usize {
        self.inner.concurrency.min(self.inner.max_executions).max(1) as usize
    }

    /// A place for execution `id` of `caller`: the fullest host of that caller with room, else a warm
    /// host, else a new one. Registers the execution in it (its frames go to `inbox`).
    async fn acquire(
        &self,
        caller: &str,
        id: u64,
        inbox: &mpsc::Sender<Inbound>,
        limits: HostLimits,
    ) -> std::io::Result<Arc<Host>> {
        if let Some(host) = self.reserve(caller, id, inbox, limits) {
            return Ok(host);
        }
        let caller_lock = lock(&self.inner.callers).entry(caller.to_string()).or_default().clone();
        let result = async {
            let _one_at_a_time = caller_lock.lock().await;
            if let Some(host) = self.reserve(caller, id, inbox, limits) {
                return Ok(host);
            }
            // Warm hosts have the configured limits; an execution with other V8 heap or stack limits
            // (fixed when a V8 host starts) gets a host of its own.
            let standard = limits == self.inner.host_limits();
            loop {
                let warm = if standard { lock(&self.inner.pool).warm.pop() } else { None };
                let host = match warm {
                    Some(h) => h,
                    None => spawn(&self.inner, limits).await?,
                };
                if standard {
                    self.refill();
                }
                let mut pool = lock(&self.inner.pool);
                let mut s = lock(&host.state);
                if s.dead || s.retired {
                    continue; // it died while it waited: take another
                }
                s.caller = Some(caller.to_string());
                s.served = 1;
                s.executions.insert(id, inbox.clone());
                drop(s);
                pool.assigned.push(host.clone());
                return Ok(host);
            }
        }
        .await;
        // Forget the caller's lock when nobody else holds or waits for it.
        let mut callers = lock(&self.inner.callers);
        if Arc::strong_count(&caller_lock) == 2 {
            callers.remove(caller);
        }
        result
    }

    /// Register execution `id` in the fullest host of `caller` that has room, if there is one.
    fn reserve(
        &self,
        caller: &str,
        id: u64,
        inbox: &mpsc::Sender<Inbound>,
        limits: HostLimits,
    ) -> Option<Arc<Host>> {
        let per_host = self.per_host();
        let pool = lock(&self.inner.pool);
        let mut best: Option<(usize, &Arc<Host>)> = None;
        for host in &pool.assigned {
            let s = lock(&host.state);
            let fits = s.caller.as_deref() == Some(caller)
                && host.limits == limits
                && !s.dead
                && !s.retired
                && s.executions.len() < per_host
                && s.served < self.inner.max_executions;
            // The fullest; among equals the most recent (it was idle the shortest).
            if fits && best.is_none_or(|(running, _)| s.executions.len() >= running) {
                best = Some((s.executions.len(), host));
            }
        }
        let host = best?.1.clone();
        let mut s = lock(&host.state);
        // Its reader may have found it dead, or an execution may have had it killed, meanwhile.
        if s.dead || s.retired {
            return None;
        }
        s.executions.insert(id, inbox.clone());
        s.served += 1;
        s.idle_since = None;
        drop(s);
        Some(host)
    }

    /// Execution `id` ended; `clean` when it ended with an outcome that was not a limit. A host that
    /// is retired (after a limit, or with its reuse used up) goes when its last execution ended; an idle
    /// host waits for its caller, within the bound on idle hosts.
    fn release(&self, host: &Arc<Host>, id: u64, clean: bool) {
        let mut pool = lock(&self.inner.pool);
        let retire_now = {
            let mut s = lock(&host.state);
            s.executions.remove(&id);
            if !clean || s.served >= self.inner.max_executions {
                s.retired = true;
            }
            let empty = s.executions.is_empty();
            if empty && self.inner.max_idle == 0 {
                s.retired = true; // no idle host may wait
            }
            if empty && !s.retired {
                s.idle_since = Some(Instant::now());
            }
            empty && s.retired
        };
        if retire_now {
            pool.assigned.retain(|h| !Arc::ptr_eq(h, host));
            host.kill("retired");
        }
        // The bound on idle hosts: the one idle longest goes first.
        let mut idle: Vec<(Instant, Arc<Host>)> = pool
            .assigned
            .iter()
            .filter_map(|h| {
                let s = lock(&h.state);
                let idle = s.executions.is_empty() && !s.dead && !s.retired;
                s.idle_since.filter(|_| idle).map(|since| (since, h.clone()))
            })
            .collect();
        if idle.len() > self.inner.max_idle {
            idle.sort_by_key(|(since, _)| *since);
            let excess = idle.len() - self.inner.max_idle;
            for (_, h) in idle.into_iter().take(excess) {
                pool.assigned.retain(|x| !Arc::ptr_eq(x, &h));
                h.kill("idle");
            }
        }
    }

    /// Start hosts in the background until the warm pool is full again.
    fn refill(&self) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            loop {
                let have = lock(&inner.pool).warm.len();
                if have >= inner.warm_target {
                    return;
                }
                match spawn(&inner, inner.host_limits()).await {
                    Ok(h) => lock(&inner.pool).warm.push(h),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start an isolate host");
                        return;
                    }
                }
            }
        });
    }
}

/// The limits a host is started with: V8's heap and stack limits are fixed when its process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HostLimits {
    memory: u64,
    stack: u64,
}

impl Inner {
    /// What warm hosts are started with: the configured limits.
    fn host_limits(&self) -> HostLimits {
        HostLimits { memory: self.memory_limit, stack: self.stack_limit }
    }
}

async fn spawn(inner: &Arc<Inner>, limits: HostLimits) -> std::io::Result<Arc<Host>> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let fd = theirs.as_raw_fd();
    let concurrency = inner.concurrency.min(inner.max_executions).max(1);
    let mut cmd = tokio::process::Command::new(&inner.command.program);
    cmd.args(&inner.command.args);
    if inner.command.kind == HostKind::V8 {
        cmd.arg("--stack-limit").arg(limits.stack.to_string());
    }
    cmd.arg("--memory-limit")
        .arg(limits.memory.to_string())
        .arg("--max-executions")
        .arg(inner.max_executions.to_string())
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if inner.command.kind == HostKind::V8 { Stdio::piped() } else { Stdio::inherit() })
        .kill_on_drop(true)
        .process_group(0);
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl, prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if fd == super::host::CHANNEL_FD {
                // Already in place: only clear close-on-exec.
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, super::host::CHANNEL_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The host dies with the executor.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(theirs);
    // A V8 host's standard error goes to ours, and its last few KiB are kept: V8 reports an exhausted
    // heap there just before it aborts the process.
    let (stderr, stderr_done) = match child.stderr.take() {
        Some(mut pipe) => {
            let tail = Arc::new(Mutex::new(String::new()));
            let keep = tail.clone();
            let task = tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]);
                    eprint!("{text}");
                    let mut t = lock(&keep);
                    t.push_str(&text);
                    if t.len() > 8192 {
                        let cut = t.len() - 8192;
                        let cut = (cut..t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(t.len());
                        t.drain(..cut);
                    }
                }
            });
            (Some(tail), Some(task))
        }
        None => (None, None),
    };
    inner.stats.started.fetch_add(1, Ordering::Relaxed);
    let pid = child.id().unwrap_or_default();
    ours.set_nonblocking(true)?;
    let mut stream = UnixStream::from_std(ours)?;
    let ready = tokio::time::timeout(READY_TIMEOUT, read_frame::<_, FromHost>(&mut stream)).await;
    match ready {
        Ok(Ok(FromHost::Ready { confinement, seccomp })) => {
            *lock(&inner.confinement) = Some((confinement, seccomp));
        }
        Ok(Ok(_)) => {
            return Err(std::io::Error::other("the isolate host sent something before it was ready"));
        }
        Ok(Err(e)) => return Err(std::io::Error::other(format!("the isolate host did not start: {e}"))),
        Err(_) => return Err(std::io::Error::other("the isolate host did not become ready in time")),
    }
    let (reader, mut writer) = stream.into_split();
    let (to_host, mut outgoing) = mpsc::unbounded_channel::<ToHost>();
    let host = Arc::new(Host {
        pid,
        limits,
        stderr,
        stderr_done: Mutex::new(stderr_done),
        to_host,
        kill: Notify::new(),
        state: Mutex::default(),
    });
    tokio::spawn(async move {
        while let Some(msg) = outgoing.recv().await {
            if write_frame(&mut writer, &msg).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(supervise(host.clone(), reader, child, Arc::downgrade(inner)));
    Ok(host)
}

/// A host's reader, for the host's life: routes each frame to the execution it names, kills the process
/// when asked to or when the host breaks the protocol, and when the process is gone tells every
/// execution still in it why.
async fn supervise(host: Arc<Host>, mut reader: OwnedReadHalf, mut child: Child, inner: Weak<Inner>) {
    let broke: Option<String> = loop {
        let frame = tokio::select! {
            biased;
            _ = host.kill.notified() => break None,
            frame = read_frame::<_, FromHost>(&mut reader) => frame,
        };
        let frame = match frame {
            Ok(frame) => frame,
            // The process ended (or its end of the channel did).
            Err(FrameError::Closed | FrameError::Io(_)) => break None,
            Err(e) => break Some(e.to_string()),
        };
        let Some(id) = frame.execution() else { break Some("it said it was ready a second time".into()) };
        let inbox = {
            let mut s = lock(&host.state);
            // `Done` is an execution's last frame: from here on the host does not run it. After a limit
            // the host takes no new execution (decided here, before another one could be given to it).
            if let FromHost::Done { outcome, .. } = &frame {
                if matches!(outcome.status, Status::LimitExceeded { .. }) {
                    s.retired = true;
                }
                s.executions.remove(&id)
            } else {
                s.executions.get(&id).cloned()
            }
        };
        let Some(inbox) = inbox else {
            break Some(format!("a frame for execution {id}, which it does not run"));
        };
        if inbox.send(Inbound::Frame(frame)).await.is_err() {
            break Some(format!("a frame for execution {id} after its outcome"));
        }
    };
    let stats = inner.upgrade();
    if let Some(why) = &broke {
        let reason = format!("the isolate host broke the channel protocol ({why})");
        // (When the executor had already decided to kill it, that was the reason, not this.)
        if host.kill(&reason)
            && let Some(inner) = &stats
        {
            inner.stats.crashed.fetch_add(1, Ordering::Relaxed);
        }
    }
    let killed_because = lock(&host.state).killed_because.clone();
    if killed_because.is_some() {
        let _ = child.start_kill();
    }
    // How it ended. (A host exits by itself, with 0, after its last execution's `Done`.)
    let (how, exited) = match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match status.signal() {
                Some(sig) => (format!("the isolate host was killed by {}", signal_name(sig)), false),
                None => (format!("the isolate host exited with {status}"), status.success()),
            }
        }
        _ => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            ("the isolate host stopped answering".to_string(), false)
        }
    };
    // V8 reports an exhausted heap on standard error before it aborts: read it to its end first.
    let stderr_done = lock(&host.stderr_done).take();
    if let Some(task) = stderr_done {
        let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
    }
    let out_of_memory = killed_because.is_none()
        && host.stderr.as_ref().is_some_and(|tail| {
            let tail = lock(tail);
            crate::engine::v8::OOM_MARKERS.iter().any(|m| tail.contains(m))
        });
    let (executions, reason) = {
        let mut s = lock(&host.state);
        s.dead = true;
        s.retired = true;
        let executions: Vec<_> = s.executions.drain().map(|(_, inbox)| inbox).collect();
        let reason = match (&s.killed_because, executions.len()) {
            (Some(reason), _) => reason.clone(),
            (None, _) if out_of_memory => V8_OUT_OF_MEMORY.to_string(),
            (None, 1) => how.clone(),
            (None, n) => format!("{how} while it ran {n} executions of this caller"),
        };
        (executions, reason)
    };
    if killed_because.is_none() && broke.is_none() && !out_of_memory && !(exited && executions.is_empty()) {
        if let Some(inner) = &stats {
            inner.stats.crashed.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(pid = host.pid, executions = executions.len(), "{how}");
    }
    for inbox in executions {
        let _ = inbox.send(Inbound::Gone(reason.clone())).await;
    }
    if let Some(inner) = stats {
        let mut pool = lock(&inner.pool);
        pool.warm.retain(|h| !Arc::ptr_eq(h, &host));
        pool.assigned.retain(|h| !Arc::ptr_eq(h, &host));
    }
}

/// How a proxied call ended: its duration, status and error.
type Finished = (Duration, ToolCallStatus, Option<ToolError>);

/// The executor's own record of the calls it proxied for one execution.
#[derive(Default)]
struct Calls {
    entries: Vec<(String, String, Instant, Option<Finished>)>,
    by_id: HashMap<u64, usize>,
}

impl Calls {
    fn records(&self, now: Instant) -> Vec<ToolCallRecord> {
        self.entries
            .iter()
            .map(|(server, tool, started, finished)| {
                let (duration, status, error) = finished.clone().unwrap_or((
                    now.saturating_duration_since(*started),
                    ToolCallStatus::Cancelled,
                    None,
                ));
                ToolCallRecord {
                    server: server.clone(),
                    tool: tool.clone(),
                    duration_ms: duration.as_secs_f64() * 1000.0,
                    status,
                    error_code: error.as_ref().map(|e| e.code.as_str().to_string()),
                    error: error.map(|e| e.message),
                }
            })
            .collect()
    }
}

fn thrown(name: &str, message: String) -> Status {
    Status::Threw { error: ThrownError { name: name.into(), message, stack: String::new() } }
}

/// The host's CPU time so far, from `/proc/<pid>/stat` (utime + stime), if it can be read.
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf with a valid name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_millis(ticks * 1000 / hz))
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGSYS => "SIGSYS (a syscall outside its allow list)".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV (a memory fault)".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        other => format!("signal {other}"),
    }
}

#[async_trait]
impl Engine for ProcessEngine {
    fn name(&self) -> &'static str {
        match self.inner.command.kind {
            HostKind::QuickJs => "quickjs-process",
            HostKind::V8 => "v8-process",
        }
    }

    /// QuickJS hosts validate the source themselves (confined, on the execution's clocks); the V8 host
    /// is a Deno script, so the executor validates, as the in-process engine does.
    fn validates_source(&self) -> bool {
        self.inner.command.kind == HostKind::QuickJs
    }

    async fn execute(&self, request: ExecutionRequest) -> Outcome {
        let started = Instant::now();
        let limits = request.limits.clone();
        let deadline = started + limits.wall_time.duration();
        let finish = |status: Status, console: Vec<ConsoleLine>, calls: &Calls, cpu: Duration| Outcome {
            status,
            console,
            tool_calls: calls.records(Instant::now()),
            metrics: Metrics {
                cpu_ms: cpu.as_secs_f64() * 1000.0,
                wall_ms: started.elapsed().as_secs_f64() * 1000.0,
                peak_heap_bytes: 0,
            },
        };
        let mut calls = Calls::default();
        let mut console = Vec::new();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (inbox_tx, mut inbox) = mpsc::channel::<Inbound>(INBOX);
        // V8's heap and stack limits are its process's; a QuickJS host enforces the execution's own.
        let wanted = match self.inner.command.kind {
            HostKind::V8 => HostLimits { memory: limits.memory.bytes(), stack: limits.stack.bytes() },
            HostKind::QuickJs => self.inner.host_limits(),
        };
        let host = match self.acquire(&request.execution.caller, id, &inbox_tx, wanted).await {
            Ok(h) => h,
            Err(e) => {
                let status = thrown("InternalError", format!("cannot start an isolate host: {e}"));
                return finish(status, console, &calls, Duration::ZERO);
            }
        };
        // Only the host's reader sends to this execution from now on.
        drop(inbox_tx);
        let kill_at = tokio::time::Instant::from_std(deadline + KILL_GRACE);
        let mut registration =
            Registration { engine: self.clone(), host: host.clone(), id, kill_at, ended: false };
        let pid = host.pid;
        let kind = self.inner.command.kind;
        let run = match kind {
            HostKind::QuickJs => {
                let job = Job {
                    execution: (*request.execution).clone(),
                    code: request.code.clone(),
                    limits: limits.clone(),
                    catalog: request
                        .catalog
                        .servers()
                        .iter()
                        .map(|s| (s.name.clone(), s.tools.iter().map(|t| t.name.clone()).collect()))
                        .collect(),
                };
                ToHost::Run { id, job: Box::new(job) }
            }
            HostKind::V8 => match script_job(&request) {
                Ok(job) => ToHost::Script { id, job: Box::new(job) },
                Err(message) => {
                    registration.ended = true;
                    self.release(&host, id, false);
                    return finish(thrown("InternalError", message), console, &calls, Duration::ZERO);
                }
            },
        };
        // A host that is gone by now tells this execution so through its reader.
        let _ = host.to_host.send(run);
        // Tool calls run as tasks; their results come back here. An honest host asks for at most
        // `toolCalls` + `discoveryCalls` (its isolate counts them); more is a protocol error.
        let max_calls = (limits.tool_calls as usize).saturating_add(limits.discovery_calls as usize);
        let (results, mut result_rx) = mpsc::channel::<(u64, Result<serde_json::Value, ToolError>)>(64);
        let mut tasks = tokio::task::JoinSet::new();
        let mut clean = false;
        let outcome = loop {
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(Inbound::Frame(FromHost::ToolCall { call, server, tool, arguments, .. })) => {
                        if calls.entries.len() >= max_calls {
                            host.kill("the isolate host broke the channel protocol (more tool calls than the limits allow)");
                            self.inner.stats.crashed.fetch_add(1, Ordering::Relaxed);
                            let status = thrown("IsolateCrashed", "the isolate host broke the channel protocol (more tool calls than the limits allow)".into());
                            break finish(status, console, &calls, Duration::ZERO);
                        }
                        // Its position among the execution's calls, counted here: the host sends them in
                        // the order the code issued them (one channel), and isolates count the same way.
                        let sequence = calls.entries.len() as u64;
                        calls.by_id.insert(call, calls.entries.len());
                        calls.entries.push((server.clone(), tool.clone(), Instant::now(), None));
                        let tool_host = request.host.clone();
                        let execution = request.execution.clone();
                        let results = results.clone();
                        tasks.spawn(async move {
                            let result = tool_host.call_at(&execution, sequence, &server, &tool, arguments).await;
                            let _ = results.send((call, result)).await;
                        });
                    }
                    Some(Inbound::Frame(FromHost::Event { event, .. })) => {
                        if let ExecutionEvent::Console(line) = &event {
                            console.push(line.clone());
                        }
                        if let Some(events) = &request.events {
                            let _ = events.send(event);
                        }
                    }
                    Some(Inbound::Frame(FromHost::Done { outcome, .. })) => {
                        let mut outcome = *outcome;
                        if kind == HostKind::V8 {
                            crate::engine::v8::finish_outcome(&mut outcome, request.code.prepared(), &limits);
                        }
                        outcome.tool_calls = calls.records(Instant::now());
                        clean = !matches!(outcome.status, Status::LimitExceeded { .. });
                        break outcome;
                    }
                    // The reader never routes `Ready`.
                    Some(Inbound::Frame(FromHost::Ready { .. })) => {}
                    Some(Inbound::Gone(reason)) if reason == V8_OUT_OF_MEMORY => {
                        let status = Status::LimitExceeded {
                            limit: LimitKind::Memory,
                            message: LimitKind::Memory.describe(&limits),
                        };
                        break finish(status, console, &calls, cpu_of(pid).unwrap_or_default());
                    }
                    Some(Inbound::Gone(reason)) => {
                        tracing::warn!(execution = %request.execution.id, pid, "{reason}");
                        break finish(thrown("IsolateCrashed", reason), console, &calls, cpu_of(pid).unwrap_or_default());
                    }
                    None => {
                        let status = thrown("IsolateCrashed", "the isolate host's channel closed".into());
                        break finish(status, console, &calls, cpu_of(pid).unwrap_or_default());
                    }
                },
                Some((call, result)) = result_rx.recv() => {
                    if let Some(&i) = calls.by_id.get(&call) && let Some(entry) = calls.entries.get_mut(i) {
                        let status = if result.is_ok() { ToolCallStatus::Ok } else { ToolCallStatus::Error };
                        entry.3 = Some((entry.2.elapsed(), status, result.as_ref().err().cloned()));
                    }
                    let _ = host.to_host.send(ToHost::ToolResult { id, call, result });
                }
                _ = tokio::time::sleep_until(kill_at) => {
                    // Stuck in a native call the interrupt handler cannot reach, or not answering: the
                    // process goes, whatever it was doing, with the caller's other executions in it.
                    // (Its CPU time is the process's, which other executions in it share.)
                    let cpu = cpu_of(pid).unwrap_or_default();
                    if host.kill(SIBLING_KILLED) {
                        self.inner.stats.killed.fetch_add(1, Ordering::Relaxed);
                    }
                    let status = Status::LimitExceeded {
                        limit: LimitKind::WallTime,
                        message: LimitKind::WallTime.describe(&limits),
                    };
                    break finish(status, console, &calls, cpu.min(limits.cpu_time.duration()));
                }
            }
        };
        // In-flight tool calls are cancelled (the host is cancel-safe).
        tasks.abort_all();
        registration.ended = true;
        self.release(&host, id, clean);
        outcome
    }
}

/// The job of a V8 host: the prepared code as a module, and the limits as plain numbers.
fn script_job(request: &ExecutionRequest) -> Result<ScriptJob, String> {
    let prepared = request.code.prepared().ok_or("the V8 engine runs validated code only")?;
    let module = crate::engine::v8::module_source(prepared)
        .ok_or("the prepared code does not have the shape the V8 engine imports")?;
    let catalog = serde_json::from_str(&request.catalog.json()).map_err(|e| format!("the catalog: {e}"))?;
    let limits = &request.limits;
    let messages = [
        LimitKind::WallTime,
        LimitKind::CpuTime,
        LimitKind::Output,
        LimitKind::ToolCalls,
        LimitKind::DiscoveryCalls,
    ]
    .into_iter()
    .map(|k| (k.as_str().to_string(), k.describe(limits)))
    .collect();
    Ok(ScriptJob {
        module,
        catalog,
        seed: request.execution.seed.to_string(),
        clock_ms: request.execution.clock_ms,
        wall_ms: limits.wall_time.duration().as_millis() as u64,
        cpu_ms: limits.cpu_time.duration().as_millis() as u64,
        output_bytes: limits.output.bytes(),
        tool_calls: limits.tool_calls,
        discovery_calls: limits.discovery_calls,
        messages,
    })
}

/// Execution `id` in `host`, until the executor has its outcome. If the future of
/// [`ProcessEngine::execute`] is dropped before that (the caller went away), the host still runs the
/// execution: its frames are then taken and dropped until its outcome, or the host is killed at its
/// wall-time limit as usual, and only then is its place released. (Simply forgetting the execution
/// would make its next frame a protocol error, and that would kill the caller's other executions.)
struct Registration {
    engine: ProcessEngine,
    host: Arc<Host>,
    id: u64,
    kill_at: tokio::time::Instant,
    ended: bool,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left (it is shutting down, and its tasks, host readers included, go with it).
            self.engine.release(&self.host, self.id, false);
            return;
        };
        let (tx, mut rx) = mpsc::channel::<Inbound>(INBOX);
        let swapped = match lock(&self.host.state).executions.get_mut(&self.id) {
            Some(slot) => {
                *slot = tx;
                true
            }
            None => false,
        };
        if !swapped {
            // Its outcome came already, or the host is gone.
            self.engine.release(&self.host, self.id, false);
            return;
        }
        let (engine, host, id, kill_at) = (self.engine.clone(), self.host.clone(), self.id, self.kill_at);
        runtime.spawn(async move {
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(Inbound::Frame(FromHost::Done { .. }) | Inbound::Gone(_)) | None => break,
                        // Tool calls of an abandoned execution are not made; its isolate stops waiting
                        // for them at its own wall-time limit.
                        Some(Inbound::Frame(_)) => {}
                    },
                    _ = tokio::time::sleep_until(kill_at) => {
                        if host.kill(SIBLING_KILLED) {
                            engine.inner.stats.killed.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                }
            }
            engine.release(&host, id, false);
        });
    }
}
