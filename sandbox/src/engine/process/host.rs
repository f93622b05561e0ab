//! The isolate host: the process (`mcp-guard isolate-host`, never started by hand) that runs executions
//! of **one caller**, each in a fresh QuickJS runtime on an isolate thread of its own, up to
//! `--concurrency` of them at once and `--max-executions` in all, and then exits. It is started by the
//! executor with an empty environment, its channel on descriptor 3, standard error for its own
//! diagnostics and nothing else. Before it reads its first job it gives up everything it does not need,
//! for every thread of the process:
//!
//! - every descriptor but 0–3 closed; `RLIMIT_NOFILE` at what it holds, `RLIMIT_NPROC` 0, `RLIMIT_CORE` 0,
//!   `RLIMIT_DATA` just above what its executions may hold together (`concurrency` × (memory limit +
//!   isolate thread stack) + 256 MiB: the kernel bounds the whole process, each runtime's metering
//!   allocator bounds each execution); not dumpable; `no_new_privs`; it dies with its parent
//!   (`PR_SET_PDEATHSIG`, set by the executor before `execve`);
//! - its isolate threads, one per concurrent execution, all started before confinement (a confined host
//!   can create no thread: no `clone` on its allow list, and `RLIMIT_NPROC` 0);
//! - Landlock on each thread (the main thread's domain, which the threads it starts inherit): no
//!   filesystem access at all, no TCP bind or connect, scoped signals and abstract sockets;
//! - a seccomp **allow list** on the whole process (TSYNC): memory management, futexes, clocks, reads and
//!   writes on descriptors it already holds (it can open none), the event loop's epoll, and exit. Every
//!   other syscall kills the process (`SECCOMP_RET_KILL_PROCESS`): a host serves one caller, so the kill
//!   costs no other caller anything (the caller's other executions in this host end with it), and the
//!   executor reports it as a crash. Memory cannot be made executable.
//!
//! What executions of the same caller in one host share: the address space (so code that broke the
//! engine in one could read or change the others, which belong to the same caller), the host's
//! allocator arena, its kernel data limit, its channel and event loop, and its fate: when the process
//! dies or is killed (a seccomp kill, a stuck native call at one execution's wall-time limit), every
//! execution in it ends. Each still has its own runtime, context, heap limit, stack limit and CPU clock
//! (its thread's).
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
/// `max_executions` jobs of one caller, at most `concurrency` at a time (the executor sends no more, and
/// none after a limit or a crash: it kills the host once its executions ended), exit.
/// `memory_limit` is the policy's heap limit in bytes (the kernel's data limit is set above it, once per
/// concurrent execution). Returns the process exit code.
pub fn main(memory_limit: u64, max_executions: u32, concurrency: u32) -> i32 {
    let concurrency = concurrency.clamp(1, max_executions.max(1)) as usize;
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
        // The main thread first (no_new_privs, Landlock): every thread it starts from now on inherits it.
        let landlock = match confine::confine_isolate_host_main_thread() {
            Ok(report) => report.to_string(),
            Err(e) => return fail(&format!("confinement failed: {e}")),
        };
        let engine = QuickJsEngine::new(concurrency);
        // Everything that needs a syscall outside the allow list happens now: every isolate thread starts
        // (inheriting Landlock), the prelude compiles, one execution warms QuickJS and the allocator.
        let threads = match engine.prestart() {
            Ok(n) => n,
            Err(e) => return fail(&format!("cannot start the isolate threads: {e}")),
        };
        warm_up(&engine).await;
        let report = match confine_process(memory_limit, threads, landlock) {
            Ok(r) => r,
            Err(e) => return fail(&format!("confinement failed: {e}")),
        };
        serve(stream, engine, report, max_executions, threads).await
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
        code: code.into(),
        limits: mcp_guard_crds::Limits::default(),
        catalog: mcp_guard_tools::Catalog::default(),
        host: Arc::new(crate::host::NoTools),
        // A fixed identity: `ExecutionInfo::new` draws a random id, and in a static build the `getrandom`
        // crate reads /dev/urandom, which Landlock has closed by now (and the allow list would kill).
        execution: Arc::new(ExecutionInfo {
            id: "isolate-host-warm-up".into(),
            caller: "isolate-host".into(),
            code_sha256: String::new(),
            caller_token: None,
            seed: 1,
            clock_ms: 0,
            resume: None,
        }),
        events: None,
    };
    let _ = engine.execute(request).await;
    let _ = engine.run_on_isolate_thread(|| ()).await;
}

/// Confine the whole process (see the module docs), which runs `threads` isolate threads. Returns a
/// one-line report.
fn confine_process(memory_limit: u64, threads: usize, landlock: String) -> Result<(String, bool), String> {
    set_limit(libc::RLIMIT_CORE, 0)?;
    // Per isolate thread (one per concurrent execution): its heap limit and its stack; then the
    // runtime's own needs, once.
    let per_thread = memory_limit.saturating_add(crate::engine::pool::ISOLATE_THREAD_STACK as u64);
    let data = per_thread.saturating_mul(threads.max(1) as u64).saturating_add(256 << 20);
    set_limit(libc::RLIMIT_DATA, data)?;
    set_limit(libc::RLIMIT_NOFILE, 16)?;
    set_limit(libc::RLIMIT_NPROC, 0)?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // No_new_privs and Landlock are in force on every thread already: the main thread confined itself
    // before it started the others, which inherited it.
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

/// Calls sent to the executor, waiting for their results. Call ids are unique for the host's life, so a
/// late result of an ended execution never answers a call of another one.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<serde_json::Value, ToolError>>>>>;

/// A tool host that sends each call of execution `id` over the channel and waits for its result.
struct ChannelHost {
    id: u64,
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
        let msg =
            FromHost::ToolCall { id: self.id, call, server: server.into(), tool: tool.into(), arguments };
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
    concurrency: usize,
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
    let pending: Pending = Arc::default();
    let next_call = Arc::new(AtomicU64::new(0));
    let (jobs, mut job_rx) = mpsc::channel::<(u64, Job)>(concurrency.max(1));
    let results = pending.clone();
    tokio::spawn(async move {
        loop {
            match read_frame(&mut reader).await {
                Ok(ToHost::Run { id, job }) => {
                    if jobs.send((id, *job)).await.is_err() {
                        return;
                    }
                }
                Ok(ToHost::ToolResult { call, result, .. }) => {
                    if let Some(tx) = results.lock().unwrap_or_else(|p| p.into_inner()).remove(&call) {
                        let _ = tx.send(result);
                    }
                }
                // A job for a V8 host: never sent to this one.
                Ok(ToHost::Script { .. }) => return,
                // The executor closed the channel (or broke it): no more jobs.
                Err(_) => return,
            }
        }
    });
    // Executions of one caller, each in its own fresh runtime on its own isolate thread, at most
    // `concurrency` at a time (the executor sends no more) and `max_executions` in all.
    let mut caller: Option<String> = None;
    let mut accepted = 0u32;
    let mut running = tokio::task::JoinSet::new();
    // Executions without their `Done` sent yet: the executor may send the next job as soon as it has
    // a `Done`, before the task that sent it has been joined here.
    let active = Arc::new(AtomicU64::new(0));
    let max_executions = max_executions.max(1);
    loop {
        tokio::select! {
            job = job_rx.recv(), if accepted < max_executions => {
                // The executor closed the channel: nobody waits for an outcome any more.
                let Some((id, job)) = job else { break };
                // Defence in depth: the executor gives a host one caller only, within its bounds.
                if caller.get_or_insert_with(|| job.execution.caller.clone()) != &job.execution.caller {
                    eprintln!("mcp-guard isolate-host: a job of another caller; exiting");
                    break;
                }
                if active.load(Ordering::Acquire) >= concurrency as u64 {
                    eprintln!("mcp-guard isolate-host: more jobs at once than its concurrency; exiting");
                    break;
                }
                accepted += 1;
                let host = ChannelHost {
                    id,
                    outbox: outbox.clone(),
                    pending: pending.clone(),
                    next: next_call.clone(),
                };
                active.fetch_add(1, Ordering::AcqRel);
                running.spawn(run_one(engine.clone(), job, host, active.clone()));
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
            else => break,
        }
        if accepted >= max_executions && running.is_empty() {
            break;
        }
    }
    drop(outbox);
    running.detach_all();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writing).await;
    0
}

/// One execution: run it, forward its events, then its outcome (`Done`, its last frame).
async fn run_one(engine: QuickJsEngine, job: Job, host: ChannelHost, active: Arc<AtomicU64>) {
    let id = host.id;
    let outbox = host.outbox.clone();
    let (events, mut event_rx) = mpsc::unbounded_channel();
    let forward = outbox.clone();
    let mut forwarding = tokio::spawn(async move {
        while let Some(event) = event_rx.recv().await {
            if forward.send(FromHost::Event { id, event }).await.is_err() {
                return;
            }
        }
    });
    let request = ExecutionRequest {
        code: job.code,
        limits: job.limits,
        catalog: mcp_guard_tools::Catalog::new(job.catalog),
        host: Arc::new(host),
        execution: Arc::new(job.execution),
        events: Some(events),
    };
    let outcome = engine.execute(request).await;
    // Every event is sent before the outcome. An isolate stuck in a native call still holds its event
    // sender: its events stop here (the executor kills this process at that execution's wall-time
    // limit anyway), so that nothing of this execution can follow its `Done`.
    if tokio::time::timeout(std::time::Duration::from_millis(200), &mut forwarding).await.is_err() {
        forwarding.abort();
        let _ = forwarding.await;
    }
    active.fetch_sub(1, Ordering::AcqRel);
    let _ = outbox.send(FromHost::Done { id, outcome: Box::new(outcome) }).await;
}
