//! The isolate host: the process (`mcp-guard isolate-host`, never started by hand) that runs executions
//! of one caller, each in a fresh QuickJS runtime, at most `--max-executions` of them, and then exits. It is started by the executor with an empty
//! environment, its channel on descriptor 3, standard error for its own diagnostics and nothing else.
//! Before it reads its job it gives up everything it does not need, for every thread of the process:
//!
//! - every descriptor but 0–3 closed; `RLIMIT_NOFILE` at what it holds, `RLIMIT_NPROC` 0, `RLIMIT_CORE` 0,
//!   `RLIMIT_DATA` just above the memory limit (the kernel bounds the heap too); not dumpable;
//!   `no_new_privs`; it dies with its parent (`PR_SET_PDEATHSIG`, set by the executor before `execve`);
//! - Landlock on each thread: no filesystem access at all, no TCP bind or connect, scoped signals and
//!   abstract sockets;
//! - a seccomp **allow list** on the whole process (TSYNC): memory management, futexes, clocks, reads and
//!   writes on descriptors it already holds (it can open none), the event loop's epoll, and exit. Every
//!   other syscall kills the process (`SECCOMP_RET_KILL_PROCESS`): a host serves one execution, so the kill
//!   costs nobody else anything, and the executor reports it as a crash. Memory cannot be made executable.
//!
//! Tool calls leave as messages on the channel; the executor, not the host, talks to the binding proxy.

use std::{
    collections::{BTreeMap, HashMap},
    os::fd::FromRawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};
use tokio::{
    net::UnixStream,
    sync::{mpsc, oneshot},
};

use super::protocol::{FromHost, Job, ToHost, read_frame, write_frame};
use crate::{
    engine::{Engine, ExecutionRequest, confine, quickjs::QuickJsEngine},
    host::{ExecutionInfo, ToolError, ToolHost},
    validator::{PositionMap, Prepared},
};

/// The descriptor the executor puts the host's end of the channel on.
pub const CHANNEL_FD: i32 = 3;
/// Messages the host may have queued for the executor; the isolate waits when it is full.
const OUTBOX: usize = 64;

/// Run the isolate host on descriptor [`CHANNEL_FD`]: confine the process, serve at most
/// `max_executions` jobs of one caller (the executor sends no more after a limit, a crash or a stuck
/// call: it kills the host), exit.
/// `memory_limit` is the policy's heap limit in bytes (the kernel's data limit is set above it).
/// Returns the process exit code.
pub fn main(memory_limit: u64, max_executions: u32) -> i32 {
    // SAFETY: only the executor starts this command, with the channel on CHANNEL_FD; nothing else in
    // this process owns that descriptor.
    let channel = unsafe { std::os::unix::net::UnixStream::from_raw_fd(CHANNEL_FD) };
    close_other_descriptors();
    // One malloc arena for every thread: glibc shrinks a thread arena's heap after reading
    // /proc/sys/vm/overcommit_memory, a file open that the allow list would answer with a kill.
    // SAFETY: mallopt before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        if let Err(e) = channel.set_nonblocking(true) {
            return fail(&format!("channel: {e}"));
        }
        let stream = match UnixStream::from_std(channel) {
            Ok(s) => s,
            Err(e) => return fail(&format!("channel: {e}")),
        };
        confine::set_isolate_host_process();
        let engine = QuickJsEngine::new(1);
        // Everything that needs a syscall outside the allow list happens now: the isolate thread starts
        // (and applies Landlock), the prelude compiles, one execution warms QuickJS and the allocator.
        warm_up(&engine).await;
        let report = match confine_process(memory_limit) {
            Ok(r) => r,
            Err(e) => return fail(&format!("confinement failed: {e}")),
        };
        serve(stream, engine, report, max_executions).await
    })
}

fn fail(message: &str) -> i32 {
    eprintln!("mcp-guard isolate-host: {message}");
    70
}

fn close_other_descriptors() {
    // SAFETY: close_range on descriptors this process does not use: standard input and output (the
    // executor passes /dev/null) and anything above the channel. Standard error stays for diagnostics.
    unsafe {
        libc::syscall(libc::SYS_close_range, 0u32, 1u32, 0u32);
        libc::syscall(libc::SYS_close_range, CHANNEL_FD as u32 + 1, u32::MAX, 0u32);
    }
}

async fn warm_up(engine: &QuickJsEngine) {
    let code = Prepared { script: "(async () => 1)".into(), positions: PositionMap::default() };
    let request = ExecutionRequest {
        code,
        limits: mcp_guard_crds::Limits::default(),
        catalog: mcp_guard_tools::Catalog::default(),
        host: Arc::new(crate::host::NoTools),
        execution: Arc::new(ExecutionInfo::new("isolate-host", "")),
        events: None,
    };
    let _ = engine.execute(request).await;
    let _ = engine.run_on_isolate_thread(|| ()).await;
}

/// Confine the whole process (see the module docs). Returns a one-line report.
fn confine_process(memory_limit: u64) -> Result<(String, bool), String> {
    set_limit(libc::RLIMIT_CORE, 0)?;
    // Heap limit + the isolate thread's stack + the runtime's own needs.
    let data = memory_limit.saturating_add(crate::engine::pool::ISOLATE_THREAD_STACK as u64 + (256 << 20));
    set_limit(libc::RLIMIT_DATA, data)?;
    set_limit(libc::RLIMIT_NOFILE, 16)?;
    set_limit(libc::RLIMIT_NPROC, 0)?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // The main thread: no_new_privs and Landlock (the isolate thread did the same when it started).
    let landlock = confine::confine_current_thread_with(confine::Layers { landlock: true, seccomp: false })
        .map_err(|e| e.to_string())?;
    let seccomp = match allow_list() {
        Some(Ok(program)) => {
            seccompiler::apply_filter_all_threads(&program).map_err(|e| format!("seccomp: {e}"))?;
            true
        }
        Some(Err(e)) => return Err(format!("seccomp: {e}")),
        None => false,
    };
    Ok((format!("{landlock}; process seccomp allow list {}", if seccomp { "on" } else { "off" }), seccomp))
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> Result<(), String> {
    let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: setrlimit with a valid resource and a pointer to a live struct.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(format!("setrlimit({resource}): {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The syscalls a confined host may make. Everything else kills the process.
fn allowed_syscalls() -> Vec<i64> {
    vec![
        // The channel, standard error, the runtime's eventfd and epoll: descriptors it already holds.
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_recvmsg,
        libc::SYS_sendmsg,
        libc::SYS_close,
        libc::SYS_shutdown,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_ctl,
        libc::SYS_poll,
        libc::SYS_ppoll,
        // Memory (mmap and mprotect are filtered below: never executable).
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_brk,
        // Threads that exist already, and time.
        libc::SYS_futex,
        libc::SYS_sched_yield,
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_gettimeofday,
        libc::SYS_nanosleep,
        libc::SYS_clock_nanosleep,
        libc::SYS_getrandom,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_rseq,
        libc::SYS_restart_syscall,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ]
}

fn allow_list() -> Option<Result<BpfProgram, String>> {
    if !cfg!(target_arch = "x86_64") {
        // The numbers above are x86_64's; other targets get Landlock and the rlimits only.
        return None;
    }
    let build = || -> Result<BpfProgram, seccompiler::BackendError> {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
            allowed_syscalls().into_iter().map(|nr| (nr, Vec::new())).collect();
        // Never executable memory: QuickJS has no JIT, so code that asks for it is an exploit.
        let no_exec = SeccompRule::new(vec![SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )?])?;
        rules.insert(libc::SYS_mmap, vec![no_exec.clone()]);
        rules.insert(libc::SYS_mprotect, vec![no_exec]);
        // Descriptor flags of descriptors it holds (the event loop sets and reads non-blocking mode);
        // never F_DUPFD or F_SETOWN.
        let fcntl = [libc::F_GETFD, libc::F_SETFD, libc::F_GETFL, libc::F_SETFL]
            .into_iter()
            .map(|cmd| {
                SeccompRule::new(vec![SeccompCondition::new(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    cmd as u64,
                )?])
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(libc::SYS_fcntl, fcntl);
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::KillProcess,
            SeccompAction::Allow,
            seccompiler::TargetArch::x86_64,
        )?;
        filter.try_into()
    };
    Some(build().map_err(|e| e.to_string()))
}

/// Calls sent to the executor, waiting for their results.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<serde_json::Value, ToolError>>>>>;

/// A tool host that sends each call over the channel and waits for its result.
struct ChannelHost {
    outbox: mpsc::Sender<FromHost>,
    pending: Pending,
    next: Arc<AtomicU64>,
}

#[async_trait]
impl ToolHost for ChannelHost {
    async fn call(
        &self,
        _execution: &ExecutionInfo,
        server: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        let call = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(call, tx);
        let msg = FromHost::ToolCall { call, server: server.into(), tool: tool.into(), arguments };
        if self.outbox.send(msg).await.is_err() {
            return Err(ToolError::unavailable("the executor closed the channel"));
        }
        rx.await.unwrap_or_else(|_| Err(ToolError::unavailable("the executor closed the channel")))
    }
}

async fn serve(
    stream: UnixStream,
    engine: QuickJsEngine,
    (confinement, seccomp): (String, bool),
    max_executions: u32,
) -> i32 {
    let (mut reader, mut writer) = stream.into_split();
    let (outbox, mut outgoing) = mpsc::channel::<FromHost>(OUTBOX);
    let writing = tokio::spawn(async move {
        while let Some(msg) = outgoing.recv().await {
            if write_frame(&mut writer, &msg).await.is_err() {
                return;
            }
        }
    });
    if outbox.send(FromHost::Ready { confinement, seccomp }).await.is_err() {
        return 0;
    }
    // One reader for the host's life: jobs go to the loop below, tool results to their waiting calls.
    // Call ids are unique across the host's executions, so a late result of an ended execution can
    // never answer a call of the next one.
    let pending: Pending = Arc::default();
    let next_call = Arc::new(AtomicU64::new(0));
    let (jobs, mut job_rx) = mpsc::channel::<Job>(1);
    let results = pending.clone();
    tokio::spawn(async move {
        loop {
            match read_frame(&mut reader).await {
                Ok(ToHost::Run(job)) => {
                    if jobs.send(*job).await.is_err() {
                        return;
                    }
                }
                Ok(ToHost::ToolResult { call, result }) => {
                    if let Some(tx) = results.lock().unwrap_or_else(|p| p.into_inner()).remove(&call) {
                        let _ = tx.send(result);
                    }
                }
                // The executor closed the channel (or broke it): no more jobs.
                Err(_) => return,
            }
        }
    });
    let mut caller: Option<String> = None;
    for _ in 0..max_executions.max(1) {
        let Some(job) = job_rx.recv().await else { break };
        // Defence in depth: the executor reuses a host for one caller only.
        if caller.get_or_insert_with(|| job.execution.caller.clone()) != &job.execution.caller {
            eprintln!("mcp-guard isolate-host: a job of another caller; exiting");
            break;
        }
        let host = Arc::new(ChannelHost {
            outbox: outbox.clone(),
            pending: pending.clone(),
            next: next_call.clone(),
        });
        let (events, mut event_rx) = mpsc::unbounded_channel();
        let forward = outbox.clone();
        let forwarding = tokio::spawn(async move {
            while let Some(event) = event_rx.recv().await {
                if forward.send(FromHost::Event(event)).await.is_err() {
                    return;
                }
            }
        });
        let request = ExecutionRequest {
            code: job.code,
            limits: job.limits,
            catalog: mcp_guard_tools::Catalog::new(job.catalog),
            host,
            execution: Arc::new(job.execution),
            events: Some(events),
        };
        let outcome = engine.execute(request).await;
        // Every event is sent before the outcome (an isolate stuck in a native call still holds the
        // event sender: then the executor's wall-time limit ends this process anyway).
        if tokio::time::timeout(std::time::Duration::from_millis(200), forwarding).await.is_err() {
            break;
        }
        if outbox.send(FromHost::Done(Box::new(outcome))).await.is_err() {
            break;
        }
    }
    drop(outbox);
    let _ = writing.await;
    0
}
