//! `semaphore(n)`: a counting semaphore in shared memory (Python's `Semaphore`).

use super::{alloc_with_monitor, deadline, received, state, wait_until};
use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::sched::{self, Action, Kind, Object, Op};
use crate::runtime::shm::{arena, kind, Monitor};
use rhai::EvalAltResult;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

#[repr(C)]
pub(super) struct SemaphoreState {
    monitor: Monitor,
    serial: u64,
    value: AtomicI64,
}

/// A counting semaphore (Python's `Semaphore`).
#[derive(Clone, Debug, PartialEq)]
pub struct Semaphore {
    pub offset: u64,
    held: Held,
}

impl Semaphore {
    /// The number of free permits.
    pub fn permits(&self) -> i64 {
        self.state().value.load(Relaxed)
    }

    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new(value: i64) -> Result<Semaphore, Box<EvalAltResult>> {
        if value < 0 {
            return Err("semaphore(n): n must not be negative".into());
        }
        let (offset, ptr) = alloc_with_monitor::<SemaphoreState>(kind::SEMAPHORE, |p| unsafe {
            std::ptr::addr_of_mut!((*p).monitor)
        })?;
        // SAFETY: just allocated.
        unsafe {
            (*ptr).serial = arena()?.serial();
            (*ptr).value.store(value, Relaxed);
        }
        Ok(Semaphore {
            offset,
            held: Held::created(offset),
        })
    }

    pub fn receive(offset: u64, how: Receive) -> Result<Semaphore, String> {
        let held = received::<SemaphoreState>(offset, kind::SEMAPHORE, how)?;
        Ok(Semaphore { offset, held })
    }

    pub(super) fn state(&self) -> &'static SemaphoreState {
        state(self.offset)
    }

    pub(super) fn op(&self, action: Action) -> Op {
        Op::new(action, self.object(), None)
    }

    /// The semaphore as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Semaphore, self.offset, self.state().serial)
    }

    pub(super) fn acquire(&self, timeout: Option<f64>) -> Result<bool, Box<EvalAltResult>> {
        let s = self.state();
        let op = || self.op(Action::Acquire);
        wait_until(&s.monitor, deadline(timeout)?, op, || {
            if s.value.load(Relaxed) > 0 {
                s.value.fetch_sub(1, Relaxed);
                true
            } else {
                false
            }
        })
    }

    pub(super) fn release(&self) -> Result<(), Box<EvalAltResult>> {
        let s = self.state();
        let release = || {
            let _guard = s.monitor.lock();
            s.value.fetch_add(1, Relaxed);
            s.monitor.notify_all();
            Ok(())
        };
        sched::step(|| self.op(Action::Release), release, |_| String::new())
    }
}
