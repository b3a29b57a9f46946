//! `semaphore(n)` and `bounded_semaphore(n)`: counting semaphores in shared memory
//! (Python's `Semaphore` and `BoundedSemaphore`).

use super::{alloc_with_monitor, deadline, received, state, wait_until};
use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::sched::{self, Action, Kind, Object, Op, Permits};
use crate::runtime::shm::{arena, kind, Monitor};
use rhai::EvalAltResult;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[repr(C)]
pub(super) struct SemaphoreState {
    monitor: Monitor,
    serial: u64,
    value: AtomicI64,
    /// The most permits there may be (a bounded semaphore's initial value); 0: no bound.
    bound: i64,
    /// The permits it started with, and how many were taken and given since: the
    /// numbers of the permits as tokens, for the tools that follow the order of
    /// operations (`sched::permits`).
    initial: u64,
    taken: AtomicU64,
    given: AtomicU64,
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

    /// A semaphore with `value` permits; a `bounded` one refuses a release that would
    /// make more permits than that.
    pub fn new(value: i64, bounded: bool) -> Result<Semaphore, Box<EvalAltResult>> {
        if value < 0 {
            return Err("semaphore(n): n must not be negative".into());
        }
        // SAFETY: `p` points at the fresh, zeroed object; the closure only takes the address of
        // its monitor field, without reading or making a reference to it.
        let (offset, ptr) = alloc_with_monitor::<SemaphoreState>(kind::SEMAPHORE, |p| unsafe {
            std::ptr::addr_of_mut!((*p).monitor)
        })?;
        // SAFETY: just allocated.
        unsafe {
            (*ptr).serial = arena()?.serial();
            (*ptr).value.store(value, Relaxed);
            (*ptr).initial = value as u64;
            // A bounded semaphore of 0 permits can never be released: bound it at 0 all
            // the same (-1 stands for that).
            (*ptr).bound = match (bounded, value) {
                (false, _) => 0,
                (true, 0) => -1,
                (true, n) => n,
            };
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

    pub fn acquire(&self, timeout: Option<f64>) -> Result<bool, Box<EvalAltResult>> {
        let s = self.state();
        let op = || self.op(Action::Acquire);
        let object = self.object();
        let until = deadline(timeout)?;
        let timed = until.is_some();
        let got = wait_until(&s.monitor, until, op, || {
            let token = s.taken.load(Relaxed);
            if s.value.load(Relaxed) > 0 {
                s.value.fetch_sub(1, Relaxed);
                s.taken.fetch_add(1, Relaxed);
                let (initial, bounded) = (s.initial, s.bound != 0);
                let took = Permits::Took {
                    token,
                    initial,
                    bounded,
                    timed,
                };
                sched::permits(object, took);
                true
            } else {
                sched::permits(object, Permits::Missing { token });
                false
            }
        })?;
        if !got {
            sched::permits(object, Permits::GaveUp);
        }
        Ok(got)
    }

    /// Gives `n` permits back (Python's `release(n)`).
    pub fn release(&self, n: i64) -> Result<(), Box<EvalAltResult>> {
        if n < 1 {
            return Err(format!("release(n): n must be at least 1, not {n}").into());
        }
        let s = self.state();
        let object = self.object();
        let release = || {
            let _guard = s.monitor.lock();
            let bound = s.bound.max(0);
            if s.bound != 0 && s.value.load(Relaxed) + n > bound {
                sched::permits(object, Permits::Refused);
                return Err(format!(
                    "release: a bounded semaphore of {bound} permits released too many times"
                )
                .into());
            }
            s.value.fetch_add(n, Relaxed);
            let given = s.given.fetch_add(n as u64, Relaxed);
            let gave = Permits::Gave {
                first: s.initial + given,
                count: n as u64,
                initial: s.initial,
                bounded: s.bound != 0,
            };
            sched::permits(object, gave);
            s.monitor.notify_all();
            Ok(())
        };
        sched::step(|| self.op(Action::Release), release, |_| String::new())
    }
}
