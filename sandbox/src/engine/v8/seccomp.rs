//! The V8 host's process-wide seccomp allow list, installed by the launcher before it executes Deno
//! (a filter survives `execve` under `no_new_privs`). It is wider than the QuickJS host's: V8 compiles
//! code (executable memory), Deno starts its threads after the filter is in place, and it opens files
//! (which Landlock refuses). Every syscall not listed kills the process; a few that Deno tries and can
//! do without fail with an error instead.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// Allowed without looking at the arguments.
#[cfg(target_arch = "x86_64")]
fn allowed() -> Vec<i64> {
    vec![
        // Descriptors it holds, and the files Landlock lets it open (the binary and its libraries).
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_lseek,
        libc::SYS_close,
        libc::SYS_close_range,
        libc::SYS_dup,
        libc::SYS_dup3,
        libc::SYS_pipe2,
        libc::SYS_socketpair,
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_recvmsg,
        libc::SYS_sendmsg,
        libc::SYS_shutdown,
        libc::SYS_openat,
        libc::SYS_access,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
        libc::SYS_stat,
        libc::SYS_lstat,
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_statfs,
        libc::SYS_fstatfs,
        libc::SYS_readlink,
        libc::SYS_readlinkat,
        libc::SYS_getcwd,
        libc::SYS_getdents64,
        // Path changes Deno tries for its caches: Landlock refuses every one.
        libc::SYS_mkdir,
        libc::SYS_mkdirat,
        libc::SYS_unlink,
        libc::SYS_unlinkat,
        libc::SYS_rename,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_symlink,
        libc::SYS_symlinkat,
        libc::SYS_fchown,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_ftruncate,
        libc::SYS_flock,
        // The event loop.
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
        libc::SYS_eventfd2,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_select,
        libc::SYS_pselect6,
        // Memory, including executable memory for V8's compilers, and its protection keys.
        libc::SYS_mmap,
        libc::SYS_mprotect,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_membarrier,
        libc::SYS_pkey_alloc,
        libc::SYS_pkey_free,
        libc::SYS_pkey_mprotect,
        libc::SYS_mlock,
        libc::SYS_munlock,
        // Threads, time, signals to itself, process facts.
        libc::SYS_futex,
        libc::SYS_set_robust_list,
        libc::SYS_get_robust_list,
        libc::SYS_set_tid_address,
        libc::SYS_rseq,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_getparam,
        libc::SYS_sched_getscheduler,
        libc::SYS_sched_setscheduler,
        libc::SYS_sched_get_priority_max,
        libc::SYS_sched_get_priority_min,
        libc::SYS_getpriority,
        libc::SYS_setpriority,
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_gettimeofday,
        libc::SYS_getrusage,
        libc::SYS_times,
        libc::SYS_sysinfo,
        libc::SYS_uname,
        libc::SYS_getrandom,
        libc::SYS_getpid,
        libc::SYS_getppid,
        libc::SYS_gettid,
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
        libc::SYS_getresuid,
        libc::SYS_getresgid,
        libc::SYS_getpgrp,
        libc::SYS_getpgid,
        libc::SYS_getsid,
        libc::SYS_prlimit64,
        libc::SYS_getrlimit,
        libc::SYS_arch_prctl,
        libc::SYS_prctl,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_tgkill,
        libc::SYS_restart_syscall,
        libc::SYS_wait4,
        libc::SYS_exit,
        libc::SYS_exit_group,
        // Once, by the launcher: Landlock leaves the Deno binary as the only thing it can execute.
        libc::SYS_execve,
    ]
}

/// Fail with `EACCES` instead of killing: Deno tries these (a name-service socket for the home
/// directory, signals), copes without them, and they would reach outside the process.
#[cfg(target_arch = "x86_64")]
fn refused() -> Vec<i64> {
    vec![libc::SYS_socket, libc::SYS_connect, libc::SYS_kill, libc::SYS_tkill]
}

/// Install the filters on this (single-threaded) process. `Ok(false)` on an architecture the list is
/// not written for.
pub(super) fn install() -> Result<bool, String> {
    #[cfg(target_arch = "x86_64")]
    {
        // seccompiler gives one match action per filter: the refused syscalls are a first filter (EACCES,
        // anything else allowed), `clone3` a second (ENOSYS), the allow list the last (anything not on
        // it kills). The kernel runs them all and takes the strictest verdict. The allow list goes in
        // last: installing a filter needs `seccomp`, which it does not have.
        for program in build().map_err(|e| e.to_string())? {
            seccompiler::apply_filter(&program).map_err(|e| e.to_string())?;
        }
        Ok(true)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Ok(false)
    }
}

#[cfg(target_arch = "x86_64")]
fn build() -> Result<[BpfProgram; 3], seccompiler::BackendError> {
    let arch = seccompiler::TargetArch::x86_64;
    let arg = |index: u8, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        allowed().into_iter().chain(refused()).map(|nr| (nr, Vec::new())).collect();
    // `clone`: threads only (CLONE_THREAD set, no namespace flags): never a new process. `clone3` passes
    // its flags in memory, where a filter cannot look: it fails with ENOSYS (refusals below) and glibc
    // falls back to `clone`.
    let namespaces = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP) as u64;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![
            arg(0, SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64), libc::CLONE_THREAD as u64)?,
            arg(0, SeccompCmpOp::MaskedEq(namespaces), 0)?,
        ])?],
    );
    rules.insert(libc::SYS_clone3, Vec::new());
    // Descriptor flags and terminal queries of descriptors it holds; never F_SETOWN or F_SETSIG.
    let fcntl = [libc::F_GETFD, libc::F_SETFD, libc::F_GETFL, libc::F_SETFL, libc::F_DUPFD_CLOEXEC]
        .into_iter()
        .map(|cmd| SeccompRule::new(vec![arg(1, SeccompCmpOp::Eq, cmd as u64)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_fcntl, fcntl);
    let ioctl = [libc::TCGETS, libc::TIOCGWINSZ, libc::FIONBIO, libc::FIOCLEX, libc::FIONCLEX]
        .into_iter()
        .map(|cmd| SeccompRule::new(vec![arg(1, SeccompCmpOp::Eq, cmd)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl);
    let allow = SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, arch)?;
    let refusals = SeccompFilter::new(
        refused().into_iter().map(|nr| (nr, Vec::new())).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )?;
    let enosys = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    Ok([refusals.try_into()?, enosys.try_into()?, allow.try_into()?])
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// In a forked child: install the filters, make one syscall, exit with what happened (0: allowed,
    /// the errno when refused). A syscall off the allow list kills the child with SIGSYS.
    fn in_child(call: impl FnOnce() -> i64) -> Result<i32, i32> {
        let programs = build().unwrap();
        // SAFETY: the child only installs the filters (seccomp and prctl), makes raw syscalls and exits.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                for p in &programs {
                    if seccompiler::apply_filter(p).is_err() {
                        libc::_exit(100);
                    }
                }
                let r = call();
                let code = if r < 0 { *libc::__errno_location() } else { 0 };
                libc::_exit(code);
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            if libc::WIFSIGNALED(status) {
                Err(libc::WTERMSIG(status))
            } else {
                Ok(libc::WEXITSTATUS(status))
            }
        }
    }

    #[test]
    fn the_allow_list_allows_refuses_and_kills() {
        // SAFETY (each closure): raw syscalls with harmless arguments, in the forked child.
        assert_eq!(in_child(|| unsafe { libc::syscall(libc::SYS_getpid) }), Ok(0));
        // Sockets: refused with EACCES (Deno copes), not allowed.
        assert_eq!(
            in_child(|| unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) }),
            Ok(libc::EACCES)
        );
        // clone3: ENOSYS, so that the C library falls back to clone, whose flags the filter can see.
        assert_eq!(in_child(|| unsafe { libc::syscall(libc::SYS_clone3, 0, 0) }), Ok(libc::ENOSYS));
        // A new process (clone without CLONE_THREAD), tracing, BPF, io_uring, mounts: the process dies.
        for (name, nr) in [
            ("fork", libc::SYS_fork),
            ("ptrace", libc::SYS_ptrace),
            ("bpf", libc::SYS_bpf),
            ("io_uring_setup", libc::SYS_io_uring_setup),
            ("mount", libc::SYS_mount),
            ("unshare", libc::SYS_unshare),
            ("process_vm_readv", libc::SYS_process_vm_readv),
        ] {
            assert_eq!(in_child(|| unsafe { libc::syscall(nr, 0, 0, 0, 0) }), Err(libc::SIGSYS), "{name}");
        }
        assert_eq!(
            in_child(|| unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) }),
            Err(libc::SIGSYS),
            "clone without CLONE_THREAD"
        );
        assert_eq!(
            in_child(|| unsafe { libc::syscall(libc::SYS_ioctl, 0, libc::TIOCSTI, 0) }),
            Err(libc::SIGSYS),
            "ioctl TIOCSTI"
        );
    }
}
