//! The executor's side of isolate hosts: an [`Engine`] that runs every execution in a fresh, confined
//! host process (see `host.rs`) and kills it at the wall-time limit.
//!
//! Hosts are started ahead of need (a few wait, confined, in a warm pool) so process start-up is off the
//! critical path. A host serves executions of **one caller** only: after an execution that ended
//! normally (completed, threw or was rejected) it may serve the same caller again, each time in a fresh
//! QuickJS runtime, up to `max_executions`; after a limit, a crash, a stuck call or a protocol error it is
//! killed. So nothing of one caller's execution can be seen by another caller's, and what one caller's
//! code could do to its host (if it broke the engine) reaches at most that caller's later executions. The executor proxies the host's tool calls to the real [`ToolHost`] and
//! keeps its own record of them: the outcome's `toolCalls` come from that record, not from the host,
//! which is untrusted once guest code has run in it.

use std::{
    collections::HashMap,
    ffi::OsString,
    os::fd::AsRawFd,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use mcp_guard_crds::LimitKind;
use tokio::{net::UnixStream, process::Child, sync::mpsc};

use super::protocol::{FromHost, Job, ToHost, read_frame, write_frame};
use crate::{
    engine::{Engine, ExecutionEvent, ExecutionRequest},
    host::ToolError,
    outcome::{ConsoleLine, Metrics, Outcome, Status, ThrownError, ToolCallRecord, ToolCallStatus},
};

/// How long past the wall-time limit the executor waits for a host before it kills it.
const KILL_GRACE: Duration = Duration::from_millis(100);
/// How long a new host may take to confine itself and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How to start a host: the `mcp-guard` binary and its `isolate-host` arguments.
#[derive(Debug, Clone)]
pub struct HostCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl HostCommand {
    /// This very binary, `isolate-host` (what `mcp-guard serve` uses).
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(HostCommand { program: std::env::current_exe()?, args: vec!["isolate-host".into()] })
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct HostStats {
    /// Host processes started.
    pub started: AtomicU64,
    /// Hosts killed at the wall-time limit.
    pub killed: AtomicU64,
    /// Hosts that died without an outcome (signal, seccomp kill, out of memory).
    pub crashed: AtomicU64,
}

/// One started, confined host waiting for its job.
struct Host {
    child: Child,
    stream: UnixStream,
    pid: u32,
    /// The caller it has served, if any: it serves no other.
    caller: Option<String>,
    served: u32,
}

struct Inner {
    command: HostCommand,
    memory_limit: u64,
    warm: Mutex<Vec<Host>>,
    warm_target: usize,
    /// Hosts that served a caller and may serve it again, oldest first.
    idle: Mutex<Vec<Host>>,
    max_executions: u32,
    max_idle: usize,
    stats: HostStats,
    confinement: Mutex<Option<(String, bool)>>,
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
    /// the base of their kernel data limit, keeping `warm` hosts ready.
    pub fn new(command: HostCommand, memory_limit: u64, warm: usize) -> Self {
        ProcessEngine {
            inner: Arc::new(Inner {
                command,
                memory_limit,
                warm: Mutex::new(Vec::new()),
                warm_target: warm,
                idle: Mutex::new(Vec::new()),
                max_executions: 1,
                max_idle: 0,
                stats: HostStats::default(),
                confinement: Mutex::new(None),
            }),
        }
    }

    /// Let a host serve up to `max_executions` executions of the caller it first served, keeping at most
    /// `max_idle` such hosts waiting (the oldest is killed beyond that). `1` (the default): one
    /// execution per host.
    pub fn with_reuse(mut self, max_executions: u32, max_idle: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_executions = max_executions.max(1);
            inner.max_idle = max_idle;
        }
        self
    }

    /// Start one host and report what confinement it got (`serve` refuses weak confinement).
    pub async fn probe(&self) -> std::io::Result<(String, bool)> {
        let host = spawn(&self.inner).await?;
        self.inner.warm.lock().unwrap_or_else(|p| p.into_inner()).push(host);
        Ok(self.confinement().unwrap_or_default())
    }

    /// What the last started host reported: `(summary, process seccomp allow list in force)`.
    pub fn confinement(&self) -> Option<(String, bool)> {
        self.inner.confinement.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stats(&self) -> &HostStats {
        &self.inner.stats
    }

    /// Process ids of the hosts waiting in the warm pool (for tests that inspect a host).
    #[doc(hidden)]
    pub fn warm_pids(&self) -> Vec<u32> {
        self.inner.warm.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|h| h.pid).collect()
    }

    /// A host for `caller`: one that served it before, else a fresh one.
    async fn take(&self, caller: &str) -> std::io::Result<Host> {
        {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = idle.iter().rposition(|h| h.caller.as_deref() == Some(caller)) {
                return Ok(idle.remove(i));
            }
        }
        let warm = self.inner.warm.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let host = match warm {
            Some(h) => h,
            None => spawn(&self.inner).await?,
        };
        self.refill();
        Ok(host)
    }

    /// Keep a host that ended an execution normally for its caller's next one, if it may serve more.
    fn keep(&self, mut host: Host, caller: &str) {
        host.served += 1;
        host.caller = Some(caller.to_string());
        if host.served >= self.inner.max_executions || self.inner.max_idle == 0 {
            return; // dropped: killed and reaped (kill_on_drop)
        }
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.push(host);
        if idle.len() > self.inner.max_idle {
            idle.remove(0);
        }
    }

    /// Start hosts in the background until the warm pool is full again.
    fn refill(&self) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            loop {
                let have = inner.warm.lock().unwrap_or_else(|p| p.into_inner()).len();
                if have >= inner.warm_target {
                    return;
                }
                match spawn(&inner).await {
                    Ok(h) => inner.warm.lock().unwrap_or_else(|p| p.into_inner()).push(h),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start an isolate host");
                        return;
                    }
                }
            }
        });
    }
}

async fn spawn(inner: &Inner) -> std::io::Result<Host> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let fd = theirs.as_raw_fd();
    let mut cmd = tokio::process::Command::new(&inner.command.program);
    cmd.args(&inner.command.args)
        .arg("--memory-limit")
        .arg(inner.memory_limit.to_string())
        .arg("--max-executions")
        .arg(inner.max_executions.to_string())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
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
    let child = cmd.spawn()?;
    drop(theirs);
    inner.stats.started.fetch_add(1, Ordering::Relaxed);
    let pid = child.id().unwrap_or_default();
    ours.set_nonblocking(true)?;
    let mut stream = UnixStream::from_std(ours)?;
    let ready = tokio::time::timeout(READY_TIMEOUT, read_frame::<_, FromHost>(&mut stream)).await;
    match ready {
        Ok(Ok(FromHost::Ready { confinement, seccomp })) => {
            *inner.confinement.lock().unwrap_or_else(|p| p.into_inner()) = Some((confinement, seccomp));
            Ok(Host { child, stream, pid, caller: None, served: 0 })
        }
        Ok(Ok(_)) => Err(std::io::Error::other("the isolate host sent something before it was ready")),
        Ok(Err(e)) => Err(std::io::Error::other(format!("the isolate host did not start: {e}"))),
        Err(_) => Err(std::io::Error::other("the isolate host did not become ready in time")),
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
        "quickjs-process"
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
        let host = match self.take(&request.execution.caller).await {
            Ok(h) => h,
            Err(e) => {
                let status = thrown("InternalError", format!("cannot start an isolate host: {e}"));
                return finish(status, console, &calls, Duration::ZERO);
            }
        };
        let Host { mut child, stream, pid, caller, served } = host;
        let (mut reader, mut writer) = stream.into_split();
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
        if let Err(e) = write_frame(&mut writer, &ToHost::Run(Box::new(job))).await {
            let _ = child.start_kill();
            let status = thrown("InternalError", format!("cannot hand the job to the isolate host: {e}"));
            return finish(status, console, &calls, Duration::ZERO);
        }
        // Frames are read by a task of their own (reading is not cancel-safe, so it never races the
        // other branches below); it stops after the outcome and hands the read half back.
        let (frames, mut frame_rx) = mpsc::channel::<Result<FromHost, String>>(64);
        let reading = tokio::spawn(async move {
            loop {
                match read_frame::<_, FromHost>(&mut reader).await {
                    Ok(frame) => {
                        let done = matches!(frame, FromHost::Done(_));
                        if frames.send(Ok(frame)).await.is_err() || done {
                            return Some(reader);
                        }
                    }
                    Err(e) => {
                        let _ = frames.send(Err(e.to_string())).await;
                        return None;
                    }
                }
            }
        });
        // Tool calls run as tasks; their results come back here, bounded by the host's own quota.
        let (results, mut result_rx) = mpsc::channel::<(u64, Result<serde_json::Value, ToolError>)>(64);
        let mut tasks = tokio::task::JoinSet::new();
        let kill_at = tokio::time::Instant::from_std(deadline + KILL_GRACE);
        let mut ended_normally = false;
        let outcome = loop {
            tokio::select! {
                frame = frame_rx.recv() => match frame {
                    Some(Ok(FromHost::ToolCall { call, server, tool, arguments })) => {
                        calls.by_id.insert(call, calls.entries.len());
                        calls.entries.push((server.clone(), tool.clone(), Instant::now(), None));
                        let host = request.host.clone();
                        let execution = request.execution.clone();
                        let results = results.clone();
                        tasks.spawn(async move {
                            let result = host.call(&execution, &server, &tool, arguments).await;
                            let _ = results.send((call, result)).await;
                        });
                    }
                    Some(Ok(FromHost::Event(event))) => {
                        if let ExecutionEvent::Console(line) = &event {
                            console.push(line.clone());
                        }
                        if let Some(events) = &request.events {
                            let _ = events.send(event);
                        }
                    }
                    Some(Ok(FromHost::Done(outcome))) => {
                        let mut outcome = *outcome;
                        outcome.tool_calls = calls.records(Instant::now());
                        ended_normally = !matches!(outcome.status, Status::LimitExceeded { .. });
                        break outcome;
                    }
                    Some(Ok(FromHost::Ready { .. })) => {}
                    Some(Err(_)) | None => {
                        // The host died (or broke the protocol): find out how.
                        let status = match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
                            Ok(Ok(s)) => {
                                use std::os::unix::process::ExitStatusExt;
                                match s.signal() {
                                    Some(sig) => format!("the isolate host was killed by {}", signal_name(sig)),
                                    None => format!("the isolate host exited with {s}"),
                                }
                            }
                            _ => {
                                let _ = child.start_kill();
                                "the isolate host broke the channel protocol".to_string()
                            }
                        };
                        self.inner.stats.crashed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(execution = %request.execution.id, pid, "{status}");
                        break finish(thrown("IsolateCrashed", status), console, &calls, cpu_of(pid).unwrap_or_default());
                    }
                },
                Some((call, result)) = result_rx.recv() => {
                    if let Some(&i) = calls.by_id.get(&call) && let Some(entry) = calls.entries.get_mut(i) {
                        let status = if result.is_ok() { ToolCallStatus::Ok } else { ToolCallStatus::Error };
                        entry.3 = Some((entry.2.elapsed(), status, result.as_ref().err().cloned()));
                    }
                    // A host that stopped reading is handled by the frame branch or the deadline.
                    let _ = write_frame(&mut writer, &ToHost::ToolResult { call, result }).await;
                }
                _ = tokio::time::sleep_until(kill_at) => {
                    // Stuck in a native call the interrupt handler cannot reach, or not answering: the
                    // process goes, whatever it was doing.
                    let cpu = cpu_of(pid).unwrap_or_default();
                    let _ = child.start_kill();
                    self.inner.stats.killed.fetch_add(1, Ordering::Relaxed);
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
        if ended_normally
            && let Ok(Some(reader)) = reading.await
            && let Ok(stream) = reader.reunite(writer)
        {
            self.keep(Host { child, stream, pid, caller, served }, &request.execution.caller);
        } else {
            // Killed, crashed or done: reaped in the background.
            let _ = child.start_kill();
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        outcome
    }
}
