//! `condition()`: wait until notified, with a lock (Python's `Condition`).

use super::{alloc_with_monitor, deadline, received, state, wait_until};
use crate::runtime::holders::my_ids;
use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::locks::{Lock, LockRef};
use crate::runtime::sched::{self, Action, Kind, Object, Op};
use crate::runtime::shm::{arena, kind, Monitor};
use rhai::EvalAltResult;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[repr(C)]
pub(super) struct ConditionState {
    monitor: Monitor,
    serial: u64,
    lock: u64,
    waiters: AtomicU64,
    /// Wake-ups granted by notify and not yet taken by a waiter.
    signals: AtomicU64,
}

/// A condition variable tied to a lock (Python's `Condition`).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub offset: u64,
    held: Held,
}

impl Condition {
    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new(lock: Lock) -> Result<Condition, Box<EvalAltResult>> {
        // SAFETY: `p` points at the fresh, zeroed object; the closure only takes the address of
        // its monitor field, without reading or making a reference to it.
        let (offset, ptr) = alloc_with_monitor::<ConditionState>(kind::CONDITION, |p| unsafe {
            std::ptr::addr_of_mut!((*p).monitor)
        })?;
        // SAFETY: just allocated.
        unsafe {
            (*ptr).serial = arena()?.serial();
            (*ptr).lock = lock.0.offset;
        }
        // The condition's own reference to its lock's object, released when the
        // condition is freed (see `lock_offset_of`).
        crate::runtime::lifetime::retain(lock.0.offset);
        Ok(Condition {
            offset,
            held: Held::created(offset),
        })
    }

    pub fn receive(offset: u64, how: Receive) -> Result<Condition, String> {
        let held = received::<ConditionState>(offset, kind::CONDITION, how)?;
        Ok(Condition { offset, held })
    }

    pub(super) fn state(&self) -> &'static ConditionState {
        state(self.offset)
    }

    /// The offset of the lock of the condition at `offset`, which the condition holds a
    /// reference to (released by `lifetime` when the condition is freed).
    pub fn lock_offset_of(offset: u64) -> u64 {
        state::<ConditionState>(offset).lock
    }

    pub fn lock(&self) -> LockRef {
        LockRef {
            offset: self.state().lock,
        }
    }

    /// The condition as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Condition, self.offset, self.state().serial)
    }

    /// Releases the lock, waits for a notification (or the timeout), takes the lock again.
    pub(super) fn wait(&self, timeout: Option<f64>) -> Result<bool, Box<EvalAltResult>> {
        let lock = self.lock();
        if lock.owner() != Some(my_ids()) {
            return Err("wait(): the condition's lock must be held by this thread".into());
        }
        let until = deadline(timeout)?;
        let s = self.state();
        {
            let _guard = s.monitor.lock();
            s.waiters.fetch_add(1, Relaxed);
        }
        lock.release()?;
        let op = || Op::new(Action::Wait, self.object(), None);
        let woken = wait_until(&s.monitor, until, op, || {
            if s.signals.load(Relaxed) > 0 {
                s.signals.fetch_sub(1, Relaxed);
                true
            } else {
                false
            }
        });
        {
            let _guard = s.monitor.lock();
            s.waiters.fetch_sub(1, Relaxed);
        }
        // Python's wait() always returns with the lock held, even when interrupted.
        let reacquired = lock.acquire(None);
        let woken = woken?;
        reacquired?;
        Ok(woken)
    }

    pub(super) fn notify(&self, n: u64) -> Result<(), Box<EvalAltResult>> {
        if self.lock().owner() != Some(my_ids()) {
            return Err("notify(): the condition's lock must be held by this thread".into());
        }
        let s = self.state();
        let notify = || {
            let _guard = s.monitor.lock();
            let waiting = s
                .waiters
                .load(Relaxed)
                .saturating_sub(s.signals.load(Relaxed));
            s.signals.fetch_add(n.min(waiting), Relaxed);
            s.monitor.notify_all();
            Ok(())
        };
        let op = || Op::new(Action::Notify, self.object(), None);
        sched::step(op, notify, |_| String::new())
    }
}
