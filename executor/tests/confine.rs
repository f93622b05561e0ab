//! Layer 3 inside the process: the threads that run isolates are confined with Landlock and seccomp.
//! Every denial is checked beside the same operation on an unconfined thread (the control), so a broken
//! setup cannot make a test pass; each layer is also checked alone, with the other one off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    fs::File,
    io::{ErrorKind, Write},
    net::{TcpListener, TcpStream},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Instant,
};

use common::*;
use mcp_guard_sandbox::{
    engine::{
        Engine,
        confine::{self, ConfineReport, Layers},
        quickjs::QuickJsEngine,
    },
    sandbox::Sandbox,
};
use serde_json::json;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mcp-guard-confine-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What an operation gave: `Ok` or the error's (kind, errno).
type Res = Result<(), (ErrorKind, Option<i32>)>;

#[derive(Debug, Clone, PartialEq)]
struct Ops {
    open: Res,
    create: Res,
    mkdir: Res,
    tcp: Res,
    unix: Res,
    spawn: Res,
}

impl Ops {
    fn all(&self) -> [(&'static str, &Res); 6] {
        [
            ("open /etc/passwd", &self.open),
            ("create a file", &self.create),
            ("create a directory", &self.mkdir),
            ("TCP connect", &self.tcp),
            ("UNIX connect", &self.unix),
            ("spawn /bin/true", &self.spawn),
        ]
    }
}

/// Targets that exist before the probe: a TCP and a UNIX listener opened on the (unconfined) test thread.
struct Targets {
    dir: TempDir,
    tcp: TcpListener,
    _unix: UnixListener,
    unix_path: PathBuf,
}

impl Targets {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(name);
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let unix_path = dir.0.join("sock");
        let unix = UnixListener::bind(&unix_path).unwrap();
        Targets { dir, tcp, _unix: unix, unix_path }
    }
}

fn errno(e: std::io::Error) -> (ErrorKind, Option<i32>) {
    (e.kind(), e.raw_os_error())
}

/// Try every operation on the calling thread. `tag` keeps file names apart between calls.
fn try_ops(dir: &Path, tcp: std::net::SocketAddr, unix: &Path, tag: &str) -> Ops {
    let open = File::open("/etc/passwd").map(drop).map_err(errno);
    let create =
        File::create(dir.join(format!("created-{tag}"))).and_then(|mut f| f.write_all(b"x")).map_err(errno);
    let mkdir = std::fs::create_dir(dir.join(format!("dir-{tag}"))).map_err(errno);
    let tcp = TcpStream::connect(tcp).map(drop).map_err(errno);
    let unix = UnixStream::connect(unix).map(drop).map_err(errno);
    let spawn = Command::new("/bin/true").spawn().and_then(|mut child| child.wait().map(drop)).map_err(errno);
    Ops { open, create, mkdir, tcp, unix, spawn }
}

/// Run `try_ops` on a new thread, confined with `layers` first (or not at all).
fn ops_on_thread(targets: &Targets, layers: Option<Layers>, tag: &str) -> (Option<ConfineReport>, Ops) {
    let dir = targets.dir.0.clone();
    let tcp = targets.tcp.local_addr().unwrap();
    let unix = targets.unix_path.clone();
    let tag = tag.to_string();
    std::thread::spawn(move || {
        let report = layers.map(|l| confine::confine_current_thread_with(l).expect("confinement fails"));
        (report, try_ops(&dir, tcp, &unix, &tag))
    })
    .join()
    .unwrap()
}

fn landlock_in_kernel() -> Option<bool> {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .ok()
        .map(|l| l.split(',').any(|m| m.trim() == "landlock"))
}

fn seccomp_in_kernel() -> bool {
    std::fs::read_to_string("/proc/self/status").unwrap_or_default().contains("\nSeccomp:")
}

/// Whether the test should go on, printing why not.
fn features(report: &ConfineReport, need_landlock: bool, need_seccomp: bool) -> bool {
    if need_landlock && !report.landlock {
        eprintln!("SKIP: the kernel does not enforce Landlock here ({report})");
        return false;
    }
    if need_seccomp && !report.seccomp {
        eprintln!("SKIP: the kernel has no seccomp filters here ({report})");
        return false;
    }
    true
}

#[test]
fn the_kernel_features_are_reported_as_they_are() {
    let report = std::thread::spawn(|| confine::confine_current_thread().unwrap()).join().unwrap();
    eprintln!("confinement: {report}");
    assert!(report.no_new_privs);
    match landlock_in_kernel() {
        Some(true) => {
            assert!(report.landlock && report.landlock_fs, "{report}");
            assert!(report.landlock_abi >= 1, "{report}");
            assert_eq!(report.landlock_net, report.landlock_abi >= 4, "{report}");
            assert_eq!(report.landlock_scope, report.landlock_abi >= 6, "{report}");
        }
        Some(false) => assert!(!report.landlock && report.landlock_abi == 0, "{report}"),
        None => eprintln!("securityfs is not mounted: the Landlock part of the report is not checked"),
    }
    assert_eq!(report.seccomp, seccomp_in_kernel(), "{report}");
    assert_eq!(report.complete(), report.missing().is_empty());
}

#[test]
fn a_report_names_every_missing_layer() {
    let none = ConfineReport {
        no_new_privs: false,
        landlock_abi: 0,
        landlock: false,
        landlock_fs: false,
        landlock_net: false,
        landlock_scope: false,
        seccomp: false,
        notes: vec!["the kernel has no landlock".into()],
    };
    assert!(!none.complete());
    assert_eq!(
        none.missing(),
        vec![
            "no_new_privs",
            "landlock filesystem",
            "landlock network (kernel ABI < 4)",
            "landlock scopes (kernel ABI < 6)",
            "seccomp"
        ]
    );
    assert!(none.to_string().contains("the kernel has no landlock"), "{none}");
    // An ABI 5 kernel: files are denied, TCP too, scopes are missing.
    let abi5 = ConfineReport {
        no_new_privs: true,
        landlock_abi: 5,
        landlock: true,
        landlock_fs: true,
        landlock_net: true,
        seccomp: true,
        ..none.clone()
    };
    assert_eq!(abi5.missing(), vec!["landlock scopes (kernel ABI < 6)"]);
    let all = ConfineReport { landlock_abi: 7, landlock_scope: true, notes: vec![], ..abi5 };
    assert!(all.complete(), "{all}");
}

#[test]
fn a_confined_thread_can_open_no_file_dial_nothing_and_spawn_nothing() {
    let targets = Targets::new("both");
    let (_, control) = ops_on_thread(&targets, None, "control");
    for (what, result) in control.all() {
        assert_eq!(result, &Ok(()), "the control failed to {what}: the test setup is broken");
    }
    let (report, confined) = ops_on_thread(&targets, Some(Layers::default()), "confined");
    let report = report.unwrap();
    if !features(&report, false, true) {
        return;
    }
    for (what, result) in confined.all() {
        match result {
            Err((ErrorKind::PermissionDenied, _)) => {}
            other => panic!("a confined thread could {what}: {other:?} ({report})"),
        }
    }
    assert!(!targets.dir.0.join("created-confined").exists());
    assert!(!targets.dir.0.join("dir-confined").exists());
}

#[test]
fn landlock_alone_denies_files_tcp_and_exec() {
    let targets = Targets::new("landlock");
    let (_, control) = ops_on_thread(&targets, None, "control");
    assert_eq!(control.open, Ok(()));
    assert_eq!(control.tcp, Ok(()));
    let (report, ops) = ops_on_thread(&targets, Some(Layers { landlock: true, seccomp: false }), "ll");
    let report = report.unwrap();
    assert!(!report.seccomp);
    if !features(&report, true, false) {
        return;
    }
    let eacces = Err((ErrorKind::PermissionDenied, Some(libc::EACCES)));
    assert_eq!(ops.open, eacces, "{report}");
    assert_eq!(ops.create, eacces, "{report}");
    assert_eq!(ops.mkdir, eacces, "{report}");
    // Executing /bin/true needs the execute right on it.
    assert_eq!(ops.spawn, eacces, "{report}");
    if report.landlock_net {
        assert_eq!(ops.tcp, eacces, "{report}");
    } else {
        eprintln!("SKIP (TCP part): Landlock ABI {} has no network rules", report.landlock_abi);
    }
    // Connecting to a UNIX socket by path is a Landlock right only from a newer ABI; seccomp covers it.
}

#[test]
fn seccomp_alone_denies_files_sockets_and_processes() {
    let targets = Targets::new("seccomp");
    let (_, control) = ops_on_thread(&targets, None, "control");
    for (what, result) in control.all() {
        assert_eq!(result, &Ok(()), "the control failed to {what}");
    }
    let (report, ops) = ops_on_thread(&targets, Some(Layers { landlock: false, seccomp: true }), "sc");
    let report = report.unwrap();
    assert!(!report.landlock);
    if !features(&report, false, true) {
        return;
    }
    let eperm = Err((ErrorKind::PermissionDenied, Some(libc::EPERM)));
    assert_eq!(ops.open, eperm);
    assert_eq!(ops.create, eperm);
    assert_eq!(ops.tcp, eperm);
    assert_eq!(ops.unix, eperm);
    assert_eq!(ops.spawn, eperm);
    // mkdir is left to Landlock: an isolate thread has no path to reach it with anyway.
    assert_eq!(ops.mkdir, Ok(()));
}

fn raw(result: libc::c_long) -> Result<libc::c_long, i32> {
    if result < 0 { Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)) } else { Ok(result) }
}

#[test]
fn a_confined_thread_signals_only_itself() {
    // SAFETY: gettid/getpid take no arguments.
    let (pid, main_tid) = unsafe { (libc::getpid(), libc::gettid()) };
    // Signal 0 checks only that the signal could be sent.
    let control = std::thread::spawn(move || {
        // SAFETY: signal 0 sends nothing.
        unsafe { raw(libc::syscall(libc::SYS_tgkill, pid, main_tid, 0)) }
    })
    .join()
    .unwrap();
    assert_eq!(control, Ok(0));
    let (report, other, own, kill, tkill) = std::thread::spawn(move || {
        let report = confine::confine_current_thread().unwrap();
        // SAFETY: as above; signal 0 sends nothing.
        unsafe {
            let me = libc::gettid();
            (
                report,
                raw(libc::syscall(libc::SYS_tgkill, pid, main_tid, 0)),
                raw(libc::syscall(libc::SYS_tgkill, pid, me, 0)),
                raw(libc::syscall(libc::SYS_kill, pid, 0)),
                raw(libc::syscall(libc::SYS_tkill, main_tid, 0)),
            )
        }
    })
    .join()
    .unwrap();
    if !features(&report, false, true) {
        return;
    }
    assert_eq!(other, Err(libc::EPERM));
    assert_eq!(own, Ok(0), "raise() and abort() must keep working");
    assert_eq!(kill, Err(libc::EPERM));
    assert_eq!(tkill, Err(libc::EPERM));
}

#[test]
fn a_confined_thread_keeps_what_isolates_need_and_its_threads_inherit_the_confinement() {
    let (report, child_open) = std::thread::spawn(|| {
        let report = confine::confine_current_thread().unwrap();
        // Allocator (small and mmap-sized), clocks, randomness, sleeping, writing to stderr.
        let big = vec![7u8; 64 * 1024 * 1024];
        assert_eq!(big.iter().map(|b| *b as u64).sum::<u64>(), 7 * 64 * 1024 * 1024);
        drop(big);
        let small: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        assert_eq!(small.len(), 10_000);
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: writes into the timespec we own.
        assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
        let started = Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(started.elapsed().as_millis() >= 2);
        let mut buf = [0u8; 16];
        // SAFETY: writes into the buffer we own.
        assert_eq!(unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) }, 16);
        eprintln!("stderr still works on a confined thread");
        // Threads can still be created (clone3 answers ENOSYS, glibc falls back to clone with
        // CLONE_THREAD), and they are confined too.
        let child = std::thread::spawn(|| File::open("/etc/passwd").map(drop).map_err(errno)).join().unwrap();
        (report, child)
    })
    .join()
    .unwrap();
    if !features(&report, false, true) {
        return;
    }
    assert!(matches!(child_open, Err((ErrorKind::PermissionDenied, _))), "{child_open:?}");
}

fn status_field(tid: i32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

#[tokio::test]
async fn the_engines_isolate_threads_are_confined_and_still_run_code() {
    // One thread, so the executions and the inspection below share it.
    let engine = Arc::new(QuickJsEngine::new(1));
    let host = test_host();
    let sandbox = Sandbox::with_engine(engine.clone() as Arc<dyn Engine>, host.catalog(), Arc::new(host));
    assert_eq!(completed(&sandbox.run("return 1 + 1", &fast_limits()).await), &json!(2));
    let o = sandbox
        .run(
            "const r = await mcp.demo.add({ a: 2, b: 3 }); console.log('sum', r.sum); \
             await new Promise((ok) => setTimeout(ok, 5)); return { sum: r.sum, t: typeof Date.now() };",
            &fast_limits(),
        )
        .await;
    assert_eq!(completed(&o), &json!({"sum": 5, "t": "number"}));
    assert_eq!(o.tool_calls.len(), 1);
    assert_eq!(engine.threads(), 1);

    let dir = TempDir::new("engine");
    let target = dir.0.join("made-by-an-isolate-thread");
    let (tid, open, mkdir) = engine
        .run_on_isolate_thread(move || {
            // SAFETY: gettid takes no arguments.
            let tid = unsafe { libc::gettid() };
            (
                tid,
                File::open("/etc/passwd").map(drop).map_err(errno),
                std::fs::create_dir(&target).map_err(errno),
            )
        })
        .await
        .unwrap();
    let report = confine::isolate_confinement().unwrap();
    eprintln!("isolate threads: {report}; thread {tid}");
    // Read from this (unconfined) thread: the kernel's own view of the isolate thread.
    assert_eq!(status_field(tid, "NoNewPrivs:").as_deref(), Some("1"));
    if report.seccomp {
        assert_eq!(status_field(tid, "Seccomp:").as_deref(), Some("2"), "not in seccomp filter mode");
        // Two more filters than the rest of the process (which may have a container's own).
        let filters = |tid: i32| -> u32 { status_field(tid, "Seccomp_filters:").unwrap().parse().unwrap() };
        // SAFETY: gettid takes no arguments.
        let me = unsafe { libc::gettid() };
        assert_eq!(filters(tid), filters(me) + 2);
        assert!(matches!(open, Err((ErrorKind::PermissionDenied, Some(libc::EPERM)))), "{open:?}");
    } else {
        eprintln!("SKIP (seccomp part): {report}");
    }
    if report.landlock {
        // seccomp lets mkdir through; only Landlock stops it.
        assert_eq!(mkdir, Err((ErrorKind::PermissionDenied, Some(libc::EACCES))));
    } else {
        eprintln!("SKIP (Landlock part): {report}");
    }
    // The test thread itself is not confined: the rest of the process keeps its files.
    assert!(File::open("/etc/passwd").is_ok());
    // And the pool thread still runs code after all that.
    assert_eq!(
        completed(&sandbox.run("return [1, 2, 3].map((x) => x * 2)", &fast_limits()).await),
        &json!([2, 4, 6])
    );
}

/// The cost of confining one thread (once per pool thread, at its start), in all and per layer. Prints;
/// asserts nothing.
#[test]
#[ignore = "timing; run with --ignored --nocapture"]
fn cost_of_confining_a_thread() {
    let both = Layers::default();
    let landlock = Layers { landlock: true, seccomp: false };
    let seccomp = Layers { landlock: false, seccomp: true };
    for (name, layers) in [("both", both), ("landlock only", landlock), ("seccomp only", seccomp)] {
        let mut samples: Vec<f64> = (0..200)
            .map(|_| {
                std::thread::spawn(move || {
                    let started = Instant::now();
                    confine::confine_current_thread_with(layers).unwrap();
                    started.elapsed().as_secs_f64() * 1e6
                })
                .join()
                .unwrap()
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        eprintln!(
            "confine_current_thread ({name}): p50 {:.1} µs, p90 {:.1} µs, max {:.1} µs (200 threads)",
            p(0.5),
            p(0.9),
            p(1.0)
        );
    }
}
