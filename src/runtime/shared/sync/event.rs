//! `event()`: a flag that threads and processes wait for (Python's `Event`).

use super::{alloc_with_monitor, deadline, received, state, wait_until};
use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::sched::{self, Action, Kind, Object, Op};
use crate::runtime::shm::{arena, kind, Monitor};
use rhai::EvalAltResult;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[repr(C)]
pub(super) struct EventState {
    monitor: Monitor,
    serial: u64,
    flag: AtomicU64,
}

/// A flag threads and processes can wait for (Python's `Event`).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub offset: u64,
    held: Held,
}

impl Event {
    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.state().flag.load(Relaxed) != 0
    }

    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new() -> Result<Event, Box<EvalAltResult>> {
        // SAFETY: `p` points at the fresh, zeroed object; the closure only takes the address of
        // its monitor field, without reading or making a reference to it.
        let (offset, ptr) = alloc_with_monitor::<EventState>(kind::EVENT, |p| unsafe {
            std::ptr::addr_of_mut!((*p).monitor)
        })?;
        // SAFETY: just allocated.
        unsafe { (*ptr).serial = arena()?.serial() };
        Ok(Event {
            offset,
            held: Held::created(offset),
        })
    }

    pub fn receive(offset: u64, how: Receive) -> Result<Event, String> {
        let held = received::<EventState>(offset, kind::EVENT, how)?;
        Ok(Event { offset, held })
    }

    pub(super) fn state(&self) -> &'static EventState {
        state(self.offset)
    }

    pub(super) fn op(&self, action: Action) -> Op {
        Op::new(action, self.object(), None)
    }

    /// The event as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Event, self.offset, self.state().serial)
    }

    pub(super) fn set(&self, on: bool) -> Result<(), Box<EvalAltResult>> {
        let s = self.state();
        let set = || {
            let _guard = s.monitor.lock();
            s.flag.store(on as u64, Relaxed);
            s.monitor.notify_all();
            Ok(())
        };
        let action = if on { Action::Set } else { Action::Clear };
        sched::step(|| self.op(action), set, |_| String::new())
    }

    pub(super) fn wait(&self, timeout: Option<f64>) -> Result<bool, Box<EvalAltResult>> {
        let s = self.state();
        let op = || self.op(Action::Wait);
        wait_until(&s.monitor, deadline(timeout)?, op, || {
            s.flag.load(Relaxed) != 0
        })
    }
}
