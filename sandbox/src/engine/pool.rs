//! A growable pool of OS threads for isolates. QuickJS runs synchronously, so each execution occupies a
//! thread for its whole life (including while it waits for tool calls); running them here keeps the async
//! runtime free, and one execution stuck in a loop never stalls another. Threads are reused (so the
//! per-thread compiler stays warm) and exit after being idle for a while. Each thread confines itself
//! with Landlock and seccomp (`confine.rs`) before it runs its first job. In an isolate host, all threads
//! are started up front ([`IsolatePool::prestart`]) by the confined main thread, whose Landlock domain
//! they inherit, and the process-wide allow list then covers them all.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Native stack of each isolate thread. QuickJS's stack limit (`limits.stack`, at most 16 MiB) is checked
/// against this thread's stack, so it must be comfortably larger; and an isolate host validates the code
/// on this thread, where any accepted nesting must fit (it can start no thread of its own). Untouched
/// pages cost nothing.
pub const ISOLATE_THREAD_STACK: usize = 64 * 1024 * 1024;
const _: () = assert!(ISOLATE_THREAD_STACK >= crate::validator::DEEP_STACK_NEEDED);
const IDLE_EXIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Shared {
    idle: AtomicUsize,
    total: AtomicUsize,
    max: usize,
    /// Set by [`IsolatePool::prestart`]: the pool never starts another thread.
    frozen: AtomicBool,
}

/// The pool. Cloning shares it.
#[derive(Clone, Debug)]
pub struct IsolatePool {
    tx: Sender<Job>,
    rx: Receiver<Job>,
    shared: Arc<Shared>,
}

impl IsolatePool {
    /// A pool of at most `max_threads` threads; jobs beyond that wait in order.
    pub fn new(max_threads: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        IsolatePool {
            tx,
            rx,
            shared: Arc::new(Shared {
                idle: AtomicUsize::new(0),
                total: AtomicUsize::new(0),
                max: max_threads.max(1),
                frozen: AtomicBool::new(false),
            }),
        }
    }

    /// Run `job` on a pool thread.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        // Cannot fail: the pool holds a receiver for as long as it exists.
        let _ = self.tx.send(Box::new(job));
        // Grow while more jobs wait than threads are idle. Comparing with "no thread idle" instead would
        // let a burst that arrives while one thread is idle queue behind that one thread (each job sees
        // it idle before it has taken any), and an execution awaiting a tool keeps its thread.
        if self.rx.len() > self.shared.idle.load(Ordering::Acquire) {
            self.grow()?;
        }
        Ok(())
    }

    /// Start every thread the pool may have now, wait until each has confined itself and waits for
    /// work, and never start another one. An isolate host does this before it confines its process:
    /// once confined it can create no thread (its allow list has no `clone`, `RLIMIT_NPROC` is 0), so
    /// the threads for all of its concurrent executions must exist first. Returns how many threads run.
    pub fn prestart(&self) -> std::io::Result<usize> {
        let shared = &self.shared;
        while shared.total.load(Ordering::Acquire) < shared.max {
            let before = shared.total.load(Ordering::Acquire);
            self.grow()?;
            if shared.total.load(Ordering::Acquire) == before {
                break; // a thread could not be started; keep what runs
            }
        }
        shared.frozen.store(true, Ordering::Release);
        let started = std::time::Instant::now();
        while shared.idle.load(Ordering::Acquire) < shared.total.load(Ordering::Acquire) {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(std::io::Error::other("isolate threads did not start in time"));
            }
            thread::sleep(Duration::from_micros(100));
        }
        Ok(shared.total.load(Ordering::Acquire))
    }

    fn grow(&self) -> std::io::Result<()> {
        let shared = &self.shared;
        if shared.frozen.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut total = shared.total.load(Ordering::Acquire);
        loop {
            if total >= shared.max {
                return Ok(());
            }
            match shared.total.compare_exchange(total, total + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => total = now,
            }
        }
        let rx = self.rx.clone();
        let worker_shared = self.shared.clone();
        let spawned = thread::Builder::new()
            .name("mcp-guard-isolate".into())
            .stack_size(ISOLATE_THREAD_STACK)
            .spawn(move || worker(rx, worker_shared));
        if let Err(e) = spawned {
            shared.total.fetch_sub(1, Ordering::AcqRel);
            // With at least one thread alive the job still runs, later.
            if shared.total.load(Ordering::Acquire) == 0 {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Threads currently alive.
    pub fn threads(&self) -> usize {
        self.shared.total.load(Ordering::Acquire)
    }
}

fn worker(rx: Receiver<Job>, shared: Arc<Shared>) {
    // Before any job: the thread gives up files, new sockets and new processes for good (layer 3, see
    // `confine.rs`). A kernel without part of it is logged once; jobs run either way.
    let _ = super::confine::confine_isolate_thread();
    // An isolate host's threads cannot be replaced once the process is confined: they never idle out.
    let idle_exit = if super::confine::is_isolate_host_process() { Duration::MAX } else { IDLE_EXIT };
    loop {
        shared.idle.fetch_add(1, Ordering::AcqRel);
        let job = rx.recv_timeout(idle_exit);
        shared.idle.fetch_sub(1, Ordering::AcqRel);
        match job {
            // A panic is a bug, never guest behaviour; keep the thread (and the pool's count) intact.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                // Exit only if no job slipped in meanwhile.
                if rx.is_empty() {
                    shared.total.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
            }
        }
    }
}
