//! Layer 3, inside the process: confine the OS threads that run isolates with Landlock and seccomp.
//!
//! Both apply to the calling thread only (and to threads it creates later): Landlock's
//! `landlock_restrict_self` without the all-threads flag, and a seccomp filter installed without TSYNC.
//! Every isolate pool thread confines itself when it starts, before it runs any job, so untrusted code
//! never runs on an unconfined thread, while the gRPC server, the TokenReview client and the binding-proxy
//! client in the same process keep their files and sockets.
//!
//! - **Landlock**: a ruleset that handles every filesystem right of the newest ABI this crate knows, with
//!   no path rule, so the thread can open, create, remove or execute no file at all; TCP bind and connect
//!   (ABI 4+) with no allowed port; and scoping (ABI 6+) of abstract UNIX sockets and signals. Best effort:
//!   a kernel without Landlock, or with an older ABI, confines less and the [`ConfineReport`] says what.
//! - **seccomp**: a deny list of syscalls an isolate thread never makes (new sockets, file opens, process
//!   creation and execution, tracing, mounts, namespaces, module and BPF loading, keyrings, io_uring,
//!   signals to other threads or processes). Denied calls fail with `EPERM` rather than killing: the thread
//!   shares its process with the API and with every other execution, so a kill would turn one guest (or an
//!   unforeseen library path, such as glibc trying to read a locale file) into an outage for all of them,
//!   and killing just the thread would leave the pool's locks and counters in an unknown state. An `EPERM`
//!   is an ordinary I/O error that Rust and glibc code already handle; a guest that reaches a syscall at
//!   all learns nothing from it that helps.
//!
//! What this does not do: the thread still shares the process's address space and file descriptor table.
//! Code that has taken over an isolate thread could still read or write memory that unconfined threads
//! use, or write to descriptors the process already holds. This layer removes the direct routes (open a
//! file, dial out, spawn a shell); isolate-host worker processes (docs/architecture.md, layer 3) remove the
//! rest.

use std::{collections::BTreeMap, fmt, sync::OnceLock};

use landlock::{
    ABI, Access, AccessFs, AccessNet, LandlockStatus, Ruleset, RulesetAttr, RulesetStatus, Scope,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch, sock_filter,
};

/// The newest Landlock ABI the `landlock` crate knows; older kernels get the subset they support.
const NEWEST_ABI: ABI = ABI::V10;

/// What confining one thread achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfineReport {
    /// `PR_SET_NO_NEW_PRIVS` is set on the thread.
    pub no_new_privs: bool,
    /// The Landlock ABI version the kernel offers (0: no Landlock).
    pub landlock_abi: u8,
    /// A Landlock domain restricts the thread.
    pub landlock: bool,
    /// Landlock denies every filesystem access the kernel's ABI can restrict.
    pub landlock_fs: bool,
    /// Landlock denies TCP bind and connect (ABI 4+).
    pub landlock_net: bool,
    /// Landlock scopes abstract UNIX sockets and signals to the thread's domain (ABI 6+).
    pub landlock_scope: bool,
    /// The seccomp deny list is installed on the thread.
    pub seccomp: bool,
    /// Why a layer is missing, when one is (kernel errors or missing features).
    pub notes: Vec<String>,
}

impl ConfineReport {
    /// Nothing in force yet.
    fn none() -> Self {
        ConfineReport {
            no_new_privs: false,
            landlock_abi: 0,
            landlock: false,
            landlock_fs: false,
            landlock_net: false,
            landlock_scope: false,
            seccomp: false,
            notes: Vec::new(),
        }
    }

    /// Every layer this module asks for is in force.
    pub fn complete(&self) -> bool {
        self.missing().is_empty()
    }

    /// The layers that are not in force, for a warning.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.no_new_privs {
            out.push("no_new_privs");
        }
        if !self.landlock_fs {
            out.push("landlock filesystem");
        }
        if !self.landlock_net {
            out.push("landlock network (kernel ABI < 4)");
        }
        if !self.landlock_scope {
            out.push("landlock scopes (kernel ABI < 6)");
        }
        if !self.seccomp {
            out.push("seccomp");
        }
        out
    }
}

impl fmt::Display for ConfineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "on" } else { "off" };
        write!(
            f,
            "landlock(abi {}): fs {}, net {}, scope {}; seccomp {}; no_new_privs {}",
            self.landlock_abi,
            yes(self.landlock_fs),
            yes(self.landlock_net),
            yes(self.landlock_scope),
            yes(self.seccomp),
            yes(self.no_new_privs),
        )?;
        for note in &self.notes {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}

/// Confining failed in a way that is not just a kernel without the feature.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("landlock: {0}")]
    Landlock(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
}

/// Which layers to apply. Only tests turn one off, to show that each layer holds on its own.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Layers {
    pub landlock: bool,
    pub seccomp: bool,
}

impl Default for Layers {
    fn default() -> Self {
        Layers { landlock: true, seccomp: true }
    }
}

/// Confine the calling thread (and threads it creates later) with Landlock and seccomp. Irreversible.
///
/// A kernel without Landlock or seccomp is not an error: the report says what is in force. An error means
/// a layer was supported but could not be installed; layers applied before it stay applied.
pub fn confine_current_thread() -> Result<ConfineReport, ConfineError> {
    confine_current_thread_with(Layers::default())
}

#[doc(hidden)]
pub fn confine_current_thread_with(layers: Layers) -> Result<ConfineReport, ConfineError> {
    warm_process_state();
    let mut report = ConfineReport::none();
    // Required for unprivileged seccomp and Landlock; per thread, and inherited by threads it creates.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(ConfineError::NoNewPrivs(std::io::Error::last_os_error()));
    }
    report.no_new_privs = true;
    if layers.landlock {
        landlock(&mut report)?;
    }
    if layers.seccomp {
        seccomp(&mut report)?;
    }
    Ok(report)
}

/// Process-wide state that glibc fills lazily from files: fill it before any thread loses file access,
/// so a confined thread sees the same local time zone as the rest of the process.
fn warm_process_state() {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        // SAFETY: tzset only (re)reads TZ and /etc/localtime into glibc's own state.
        unsafe { tzset() };
    });
}

unsafe extern "C" {
    fn tzset();
}

fn abi_number(abi: ABI) -> u8 {
    const ALL: [ABI; 10] =
        [ABI::V1, ABI::V2, ABI::V3, ABI::V4, ABI::V5, ABI::V6, ABI::V7, ABI::V8, ABI::V9, ABI::V10];
    ALL.iter().filter(|v| **v <= abi).count() as u8
}

fn landlock_error(e: landlock::RulesetError) -> ConfineError {
    ConfineError::Landlock(e.to_string())
}

/// A Landlock ruleset that handles every filesystem and TCP right and every scope of the newest ABI:
/// with no rule added, everything handled is denied. Best-effort (the crate's default) drops what the
/// running kernel cannot restrict instead of failing.
fn landlock_ruleset() -> Result<landlock::RulesetCreated, ConfineError> {
    Ruleset::default()
        .handle_access(AccessFs::from_all(NEWEST_ABI))
        .map_err(landlock_error)?
        .handle_access(AccessNet::from_all(NEWEST_ABI))
        .map_err(landlock_error)?
        .scope(Scope::from_all(NEWEST_ABI))
        .map_err(landlock_error)?
        .create()
        .map_err(landlock_error)
}

/// What a restricted ruleset achieved, in `report`.
fn record_landlock(report: &mut ConfineReport, status: &landlock::RestrictionStatus) {
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi,
        LandlockStatus::NotEnabled => {
            report.notes.push("landlock is built into the kernel but not enabled at boot".into());
            ABI::Unsupported
        }
        LandlockStatus::NotImplemented => {
            report
                .notes
                .push("landlock is unavailable (not in the kernel, or blocked by a seccomp profile)".into());
            ABI::Unsupported
        }
        #[allow(unreachable_patterns)]
        _ => ABI::Unsupported,
    };
    report.landlock_abi = abi_number(abi);
    report.landlock =
        matches!(status.ruleset, RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced);
    report.landlock_fs = report.landlock && abi >= ABI::V1;
    report.landlock_net = report.landlock && abi >= ABI::V4;
    report.landlock_scope = report.landlock && abi >= ABI::V6;
}

fn landlock(report: &mut ConfineReport) -> Result<(), ConfineError> {
    // No path rules and no port rules: everything handled is denied.
    let status = landlock_ruleset()?.restrict_self().map_err(landlock_error)?;
    debug_assert!(!status.all_threads, "Landlock must restrict the calling thread only");
    record_landlock(report, &status);
    Ok(())
}

fn target_arch() -> Option<TargetArch> {
    if cfg!(target_arch = "x86_64") {
        Some(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(TargetArch::aarch64)
    } else if cfg!(target_arch = "riscv64") {
        Some(TargetArch::riscv64)
    } else {
        None
    }
}

/// Syscalls an isolate thread never makes. Denied without looking at their arguments.
fn denied_syscalls() -> Vec<i64> {
    #[allow(unused_mut)]
    let mut list = vec![
        // New sockets, and accepting on sockets the process already listens on.
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        // Files by path or handle.
        libc::SYS_openat,
        libc::SYS_openat2,
        libc::SYS_open_by_handle_at,
        libc::SYS_memfd_create,
        // Running programs and new processes (threads stay possible: see `clone` below).
        libc::SYS_execve,
        libc::SYS_execveat,
        // Reaching into other processes.
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_process_madvise,
        libc::SYS_kcmp,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_getfd,
        libc::SYS_pidfd_send_signal,
        // Signals: only `tgkill` to the thread itself is left (raise/abort).
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
        // Mounts, namespaces, root changes.
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_chroot,
        libc::SYS_pivot_root,
        // Kernel attack surface.
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ];
    // Legacy calls that exist on x86_64 only (newer architectures have just the *at forms).
    #[cfg(target_arch = "x86_64")]
    list.extend([libc::SYS_open, libc::SYS_creat, libc::SYS_fork, libc::SYS_vfork]);
    list
}

/// A rule matching `clone` calls whose flags (argument 0 on every supported architecture), masked by
/// `mask`, equal `value`.
fn clone_flags(mask: u64, value: u64) -> Result<SeccompRule, seccompiler::BackendError> {
    SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(mask),
        value,
    )?])
}

/// The main filter: the deny list, plus the argument check on `clone`. The same for every thread, so it is
/// compiled once per process.
fn deny_list(arch: TargetArch) -> Result<BpfProgram, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied_syscalls().into_iter().map(|nr| (nr, Vec::new())).collect();
    // `clone`: threads only. A clone without CLONE_THREAD is a new process (fork, posix_spawn); namespace
    // flags are never needed.
    let mut clone = vec![clone_flags(libc::CLONE_THREAD as u64, 0)?];
    for ns in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWCGROUP,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
    ] {
        clone.push(clone_flags(ns as u64, ns as u64)?);
    }
    rules.insert(libc::SYS_clone, clone);
    // `tgkill` is checked per thread in `thread_filter`; `tkill` and `kill` are denied outright.
    let filter =
        SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)?;
    filter.try_into()
}

/// A second, hand-written filter, built per thread, for what the first cannot say:
/// - `clone3` passes its flags in memory, which seccomp cannot read, so it answers `ENOSYS`: glibc then
///   falls back to `clone`, whose flags the first filter checks.
/// - `tgkill` may signal this very thread only (what raise() and abort() do). The kernel reads both
///   arguments as `int`, so only their low 32 bits are compared (all supported targets are
///   little-endian).
/// - On x86_64, x32 syscall numbers (bit 30 set) would slip past a deny list keyed on x86_64 numbers:
///   deny them all (an isolate thread never makes one).
fn thread_filter(arch: TargetArch, pid: u32, tid: u32) -> BpfProgram {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
    const RET_ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    // Offsets in `struct seccomp_data`.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const ARG0: u32 = 16;
    const ARG1: u32 = 24;
    let op = |code, k, jt, jf| sock_filter { code, jt, jf, k };
    // The first filter checks the architecture (and kills on a foreign one); here a wrong one just passes.
    let audit_arch = match arch {
        TargetArch::x86_64 => 0xc000_003e,
        TargetArch::aarch64 => 0xc000_00b7,
        TargetArch::riscv64 => 0xc000_00f3,
    };
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let mut prog = vec![op(LD_W_ABS, ARCH, 0, 0), op(JEQ_K, audit_arch, 1, 0), op(RET_K, RET_ALLOW, 0, 0)];
    prog.push(op(LD_W_ABS, NR, 0, 0));
    if arch == TargetArch::x86_64 {
        prog.push(op(JGE_K, X32_SYSCALL_BIT, 0, 1));
        prog.push(op(RET_K, eperm, 0, 0));
    }
    prog.extend([
        op(JEQ_K, libc::SYS_clone3 as u32, 0, 1),
        op(RET_K, RET_ERRNO | libc::ENOSYS as u32, 0, 0),
        op(JEQ_K, libc::SYS_tgkill as u32, 0, 5),
        op(LD_W_ABS, ARG0, 0, 0),
        op(JEQ_K, pid, 0, 2),
        op(LD_W_ABS, ARG1, 0, 0),
        op(JEQ_K, tid, 1, 0),
        op(RET_K, eperm, 0, 0),
        op(RET_K, RET_ALLOW, 0, 0),
    ]);
    prog
}

fn seccomp(report: &mut ConfineReport) -> Result<(), ConfineError> {
    let Some(arch) = target_arch() else {
        report.notes.push(format!("no seccomp filter for {}", std::env::consts::ARCH));
        return Ok(());
    };
    static DENY_LIST: OnceLock<Result<BpfProgram, String>> = OnceLock::new();
    let main = DENY_LIST
        .get_or_init(|| deny_list(arch).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ConfineError::Seccomp(e.clone()))?;
    // SAFETY: getpid and gettid take no arguments and cannot fail (the raw syscall, which every libc has).
    let (pid, tid) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid)) };
    let own = thread_filter(arch, pid as u32, tid as u32);
    for program in [own.as_slice(), main.as_slice()] {
        match seccompiler::apply_filter(program) {
            Ok(()) => {}
            Err(seccompiler::Error::Seccomp(e))
                if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) && !report.seccomp =>
            {
                // The first install failing this way means the kernel has no seccomp filters.
                report.notes.push(format!("the kernel has no seccomp filters ({e})"));
                return Ok(());
            }
            Err(e) => return Err(ConfineError::Seccomp(e.to_string())),
        }
        report.seccomp = true;
    }
    Ok(())
}

static ISOLATE_THREADS: OnceLock<Result<ConfineReport, String>> = OnceLock::new();

/// Set in an isolate-host process (`process::host`) before its engine starts: the whole process gets a
/// seccomp allow list (with TSYNC) once its threads exist, so isolate threads add no filter of their own
/// (a per-thread seccomp filter would keep the process-wide one from synchronising) and never exit when
/// idle (the process can create no thread once confined).
static HOST_PROCESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Mark this process as an isolate host (see [`HOST_PROCESS`]) and confine the calling thread, its main
/// thread, with `no_new_privs` and Landlock, before it starts any other thread: every thread it starts
/// afterwards (its isolate threads) inherits both, so they need not confine themselves one by one.
/// Irreversible. Call it while the process has one thread only.
pub(crate) fn confine_isolate_host_main_thread() -> Result<ConfineReport, ConfineError> {
    HOST_PROCESS.store(true, std::sync::atomic::Ordering::Release);
    confine_current_thread_with(Layers { landlock: true, seccomp: false })
}

/// Confine this (single-threaded) process before it executes `program`: `no_new_privs`, rlimits (no
/// core dumps) and Landlock that lets it execute `program` and nothing else, and read only the files in
/// `readable` (the program and the libraries it links); no other path, no TCP, scoped signals and
/// abstract sockets. Everything is inherited across `execve` and by every thread the program starts.
pub(crate) fn confine_for_exec(
    program: &std::path::Path,
    readable: &[std::path::PathBuf],
) -> Result<ConfineReport, ConfineError> {
    use landlock::{PathBeneath, PathFd, RulesetCreatedAttr};
    let mut report = ConfineReport::none();
    let core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit and prctl with valid arguments.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &core);
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(ConfineError::NoNewPrivs(std::io::Error::last_os_error()));
        }
    }
    report.no_new_privs = true;
    let mut ruleset = landlock_ruleset()?;
    for path in readable {
        // The dynamic loader is executed by the kernel as the program's interpreter.
        let is_loader = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ld-linux"));
        let access = if path == program || is_loader {
            AccessFs::ReadFile | AccessFs::Execute
        } else {
            AccessFs::ReadFile.into()
        };
        let fd = PathFd::new(path).map_err(|e| ConfineError::Landlock(format!("{}: {e}", path.display())))?;
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(landlock_error)?;
    }
    let status = ruleset.restrict_self().map_err(landlock_error)?;
    record_landlock(&mut report, &status);
    Ok(report)
}

/// Whether this process is an isolate host.
pub(crate) fn is_isolate_host_process() -> bool {
    HOST_PROCESS.load(std::sync::atomic::Ordering::Acquire)
}

/// Confine an isolate thread, as every pool thread does when it starts. The first time in the process,
/// logs what is missing (a warning) or what failed (an error); the thread runs jobs either way, since
/// layers 1 and 2 and the container's own seccomp profile still hold, and refusing every execution on an
/// older kernel would turn a missing hardening layer into an outage.
pub(crate) fn confine_isolate_thread() -> Result<ConfineReport, String> {
    if is_isolate_host_process() {
        // Started by the host's main thread after it confined itself: this thread inherited its
        // Landlock domain and `no_new_privs` (see `confine_isolate_host_main_thread`), and the allow
        // list comes for the whole process. The host reports its confinement to the executor.
        return Err("an isolate host's thread inherits its confinement".into());
    }
    let result = confine_current_thread_with(Layers::default()).map_err(|e| e.to_string());
    ISOLATE_THREADS.get_or_init(|| {
        match &result {
            Ok(report) if report.complete() => {
                tracing::debug!(confinement = %report, "isolate threads are confined");
            }
            Ok(report) => tracing::warn!(
                confinement = %report,
                missing = %report.missing().join(", "),
                "isolate threads run with partial confinement: the kernel lacks part of it"
            ),
            Err(e) => tracing::error!(error = %e, "isolate threads could not be confined"),
        }
        result.clone()
    });
    result
}

/// How isolate threads are confined in this process: the result of confining a fresh thread exactly as
/// a pool thread is (done once per process, on a short-lived thread). For the startup log and metrics.
pub fn isolate_confinement() -> Result<ConfineReport, String> {
    if let Some(known) = ISOLATE_THREADS.get() {
        return known.clone();
    }
    std::thread::Builder::new()
        .name("mcp-guard-confine-probe".into())
        .spawn(confine_isolate_thread)
        .map_err(|e| format!("cannot start a probe thread: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("the probe thread panicked".into()))
}
