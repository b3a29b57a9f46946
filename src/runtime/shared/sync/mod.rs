//! `semaphore(n)`, `event()`, `condition()` and `barrier(n)`: synchronisation objects in
//! shared memory, for threads and processes alike (Python's `threading` and
//! `multiprocessing` versions of the same objects).

use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::sched::{self, Op, Order};
use crate::runtime::shm::{arena, Monitor};
use rhai::EvalAltResult;
use std::cell::{Cell, RefCell};
use std::time::Instant;

/// A deadline from a timeout in seconds (negative: none).
pub(super) fn deadline(timeout: Option<f64>) -> Result<Option<Instant>, Box<EvalAltResult>> {
    match timeout {
        None => Ok(None),
        Some(t) if t < 0.0 => Ok(None),
        Some(t) => crate::runtime::time::until(t, "wait"),
    }
}

/// Waits on `monitor` until `ready` is true (then returns `Ok(true)`), the deadline passes
/// (`Ok(false)`) or an interrupt arrives (an error). `ready` runs with the monitor held and
/// may take what it waits for (a semaphore's unit, a condition's signal): it is called
/// again only after it said no. `op` says what is awaited, for the scheduling point.
pub(crate) fn wait_until(
    monitor: &Monitor,
    until: Option<Instant>,
    op: impl FnOnce() -> Op,
    ready: impl FnMut() -> bool,
) -> Result<bool, Box<EvalAltResult>> {
    let ready = RefCell::new(ready);
    // Set when `sleep` found it ready (and so took it): the next `take` reports it.
    let taken = Cell::new(false);
    let outcome = sched::wait(
        op,
        until,
        Order::ReadyFirst,
        || {
            if taken.get() {
                return Ok(Some(()));
            }
            let _guard = monitor.lock();
            Ok((ready.borrow_mut())().then_some(()))
        },
        |pause| {
            let mut guard = monitor.lock();
            if (ready.borrow_mut())() {
                taken.set(true);
            } else {
                guard.wait(pause);
            }
        },
        |_| String::new(),
    )?;
    Ok(outcome.is_some())
}

/// Allocates a zeroed `T` in shared memory and initialises its leading monitor.
pub(super) fn alloc_with_monitor<T>(
    kind: u32,
    monitor_of: impl Fn(*mut T) -> *mut Monitor,
) -> Result<(u64, *mut T), String> {
    let arena = arena()?;
    let size = std::mem::size_of::<T>();
    let offset = arena.alloc_object(kind, size, size)?;
    // SAFETY: fresh, zeroed memory sized for T.
    unsafe {
        let ptr = arena.at::<T>(offset);
        Monitor::init(monitor_of(ptr));
        Ok((offset, ptr))
    }
}

/// This process's reference to a received object of `kind`, laid out as a `T`.
pub(super) fn received<T>(offset: u64, kind: u32, how: Receive) -> Result<Held, String> {
    how.held(offset, &[kind], std::mem::size_of::<T>())
}

pub(super) fn state<T>(offset: u64) -> &'static T {
    // SAFETY: offsets are created by the constructors, or received offsets were checked by
    // `received` (a live object of the kind and size);
    // the shared memory stays mapped for the life of the process.
    unsafe {
        &*arena()
            .expect("shared memory exists once an object does")
            .at::<T>(offset)
    }
}

mod api;
mod barrier;
mod condition;
mod event;
mod semaphore;

pub use api::sync_api;
pub use barrier::Barrier;
pub use condition::Condition;
pub use event::Event;
pub use semaphore::Semaphore;
