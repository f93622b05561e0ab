//! A metering allocator for one isolate: counts every byte QuickJS holds, refuses allocations past the
//! memory limit (and trips the limit, so the execution ends even if the guest catches the out-of-memory
//! error), and records the peak.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use mcp_guard_crds::LimitKind;
use rquickjs::allocator::Allocator;

use super::control::Control;

/// Heap usage of one isolate, readable after the isolate is gone.
#[derive(Debug, Default)]
pub(crate) struct HeapMeter {
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl HeapMeter {
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

/// How often (in allocations) the allocator checks the CPU and wall-time limits. A check costs a clock
/// read or two; QuickJS's parser allocates at least every few hundred tokens.
const TIME_CHECK_EVERY: u32 = 64;

pub(crate) struct MeteredAllocator {
    limit: usize,
    allocations: u32,
    meter: Arc<HeapMeter>,
    control: Arc<Control>,
}

impl MeteredAllocator {
    pub(crate) fn new(limit: usize, meter: Arc<HeapMeter>, control: Arc<Control>) -> Self {
        Self { limit, allocations: 0, meter, control }
    }

    /// Whether `extra` more bytes (after releasing `released`) fit; trips the limit when not. Also the
    /// CPU and wall-time check for code that never reaches the interrupt handler (QuickJS's parser and
    /// compiler, long native calls): every `TIME_CHECK_EVERY` allocations the limits are checked, and
    /// once a time limit has tripped every allocation fails, which ends the work with out-of-memory.
    fn admit(&mut self, extra: usize, released: usize) -> bool {
        if matches!(self.control.tripped(), Some(LimitKind::CpuTime | LimitKind::WallTime)) {
            return false;
        }
        self.allocations = self.allocations.wrapping_add(1);
        if self.allocations.is_multiple_of(TIME_CHECK_EVERY) && self.control.should_interrupt() {
            return false;
        }
        let used = self.meter.used.load(Ordering::Relaxed).saturating_sub(released);
        if used.saturating_add(extra) > self.limit {
            self.control.trip(LimitKind::Memory);
            return false;
        }
        true
    }

    fn account(&self, added: usize, released: usize) {
        // The allocator is only called from the isolate's thread; relaxed ordering is enough.
        let used = self.meter.used.load(Ordering::Relaxed).saturating_sub(released).saturating_add(added);
        self.meter.used.store(used, Ordering::Relaxed);
        if used > self.meter.peak.load(Ordering::Relaxed) {
            self.meter.peak.store(used, Ordering::Relaxed);
        }
    }
}

fn usable(ptr: *mut u8) -> usize {
    // SAFETY: only called with pointers returned by libc's malloc family (or null, which yields 0).
    unsafe { libc::malloc_usable_size(ptr.cast()) }
}

// SAFETY: every pointer comes from libc's malloc/calloc/realloc, which return memory aligned for any
// fundamental type (at least `usize`), and `usable_size` reports libc's own usable size.
unsafe impl Allocator for MeteredAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.admit(size, 0) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain malloc; a null result is passed on to QuickJS, which raises out-of-memory.
        let ptr = unsafe { libc::malloc(size.max(1)) }.cast::<u8>();
        if !ptr.is_null() {
            self.account(usable(ptr), 0);
        }
        ptr
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return std::ptr::null_mut();
        };
        if !self.admit(total, 0) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain calloc, as above.
        let ptr = unsafe { libc::calloc(count.max(1), size.max(1)) }.cast::<u8>();
        if !ptr.is_null() {
            self.account(usable(ptr), 0);
        }
        ptr
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        if ptr.is_null() {
            return;
        }
        self.account(0, usable(ptr));
        // SAFETY: the caller guarantees `ptr` came from this allocator, i.e. from libc.
        unsafe { libc::free(ptr.cast()) };
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        if ptr.is_null() {
            return self.alloc(new_size);
        }
        if new_size == 0 {
            // SAFETY: forwarded contract; mirrors QuickJS's default allocator (free, return null).
            unsafe { self.dealloc(ptr) };
            return std::ptr::null_mut();
        }
        let old = usable(ptr);
        if !self.admit(new_size, old) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from libc; on failure libc leaves it valid and we return null.
        let new = unsafe { libc::realloc(ptr.cast(), new_size) }.cast::<u8>();
        if !new.is_null() {
            self.account(usable(new), old);
        }
        new
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        usable(ptr)
    }
}
