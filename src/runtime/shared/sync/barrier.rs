//! `barrier(n)` and `barrier(n, action)`: a meeting point for `n` threads or processes
//! (Python's `Barrier`), which a timeout, a failed action or `abort()` breaks.

use super::{alloc_with_monitor, deadline, received, state, wait_until};
use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::sched::{self, Action, Kind, Object, Op};
use crate::runtime::shm::{arena, kind, Monitor};
use rhai::{EvalAltResult, FnPtr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[repr(C)]
pub(super) struct BarrierState {
    monitor: Monitor,
    serial: u64,
    parties: u64,
    /// How many are waiting in this round.
    arrived: AtomicU64,
    /// Rounds completed (or reset).
    generation: AtomicU64,
    /// 1 while broken: every wait fails until `reset()`.
    broken: AtomicU64,
    /// The round a `reset()` ended, plus one (0: none): its waiters fail.
    reset_round: AtomicU64,
}

/// A meeting point for `n` threads or processes (Python's `Barrier`), with the action
/// one of them runs each round before they all go on.
#[derive(Clone, Debug)]
pub struct Barrier {
    pub offset: u64,
    held: Held,
    pub action: Option<FnPtr>,
}

/// Why a party left a round.
pub(super) enum Passed {
    /// The round completed: this party's arrival index.
    Index(i64),
    /// This party completed the round and must run the action before the others go on.
    Last(i64, u64),
}

const BROKEN: &str = "the barrier is broken (a wait timed out, its action failed, or abort() \
                      was called); reset() makes it usable again";

/// Two handles are equal when they are the same barrier.
impl PartialEq for Barrier {
    fn eq(&self, other: &Barrier) -> bool {
        self.offset == other.offset
    }
}

impl Barrier {
    /// How many parties it waits for.
    pub fn parties(&self) -> u64 {
        self.state().parties
    }

    /// How many parties wait in the current round.
    pub fn n_waiting(&self) -> u64 {
        let s = self.state();
        let _guard = s.monitor.lock();
        s.arrived.load(Relaxed)
    }

    pub fn is_broken(&self) -> bool {
        self.state().broken.load(Relaxed) != 0
    }

    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new(parties: i64, action: Option<FnPtr>) -> Result<Barrier, Box<EvalAltResult>> {
        if parties < 1 {
            return Err("barrier(n): n must be at least 1".into());
        }
        // SAFETY: `p` points at the fresh, zeroed object; the closure only takes the address of
        // its monitor field, without reading or making a reference to it.
        let (offset, ptr) = alloc_with_monitor::<BarrierState>(kind::BARRIER, |p| unsafe {
            std::ptr::addr_of_mut!((*p).monitor)
        })?;
        // SAFETY: just allocated.
        unsafe {
            (*ptr).serial = arena()?.serial();
            (*ptr).parties = parties as u64;
        }
        Ok(Barrier {
            offset,
            held: Held::created(offset),
            action,
        })
    }

    pub fn receive(offset: u64, how: Receive, action: Option<FnPtr>) -> Result<Barrier, String> {
        let held = received::<BarrierState>(offset, kind::BARRIER, how)?;
        Ok(Barrier {
            offset,
            held,
            action,
        })
    }

    pub(super) fn state(&self) -> &'static BarrierState {
        state(self.offset)
    }

    /// The barrier as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Barrier, self.offset, self.state().serial)
    }

    /// Puts the barrier in the broken state: every wait fails until `reset()`.
    pub(super) fn abort(&self) {
        let s = self.state();
        let _guard = s.monitor.lock();
        s.broken.store(1, Relaxed);
        s.monitor.notify_all();
    }

    /// Back to an empty, unbroken barrier; the parties waiting now fail.
    pub(super) fn reset(&self) {
        let s = self.state();
        let _guard = s.monitor.lock();
        if s.arrived.load(Relaxed) > 0 {
            let round = s.generation.fetch_add(1, Relaxed);
            s.reset_round.store(round + 1, Relaxed);
        }
        s.arrived.store(0, Relaxed);
        s.broken.store(0, Relaxed);
        s.monitor.notify_all();
    }

    /// Arrives, and waits (at most `timeout` seconds) for the others. The last to arrive
    /// does not release the others: it gets [`Passed::Last`] and calls
    /// [`Barrier::release`] after running the action.
    pub(super) fn wait(&self, timeout: Option<f64>) -> Result<Passed, Box<EvalAltResult>> {
        let s = self.state();
        let op = || Op::new(Action::Wait, self.object(), None);
        let arrive = || {
            let _guard = s.monitor.lock();
            if s.broken.load(Relaxed) != 0 {
                return Err(BROKEN.into());
            }
            let index = s.arrived.fetch_add(1, Relaxed);
            Ok((index, s.generation.load(Relaxed), index + 1 == s.parties))
        };
        let (index, round, last) = sched::step(op, arrive, |_| String::new())?;
        if last {
            return Ok(Passed::Last(index as i64, round));
        }
        let left =
            |s: &BarrierState| s.generation.load(Relaxed) != round || s.broken.load(Relaxed) != 0;
        let passed = wait_until(&s.monitor, deadline(timeout)?, op, || left(s));
        let _guard = s.monitor.lock();
        if s.generation.load(Relaxed) != round {
            if s.reset_round.load(Relaxed) == round + 1 {
                return Err(BROKEN.into());
            }
            return Ok(Passed::Index(index as i64));
        }
        // Leaving a round that did not complete: no longer counted.
        s.arrived.fetch_sub(1, Relaxed);
        match passed {
            Err(e) => Err(e),
            Ok(true) => Err(BROKEN.into()),
            Ok(false) => {
                // As in Python, a wait that times out breaks the barrier for everyone.
                s.broken.store(1, Relaxed);
                s.monitor.notify_all();
                Err(format!("barrier wait timed out; {BROKEN}").into())
            }
        }
    }

    /// Ends round `round` (by its last party, after the action): everyone goes on. If the
    /// action failed, the barrier breaks instead.
    pub(super) fn release(&self, round: u64, action_failed: bool) {
        let s = self.state();
        let _guard = s.monitor.lock();
        if s.generation.load(Relaxed) != round {
            return; // reset meanwhile
        }
        if action_failed {
            s.arrived.fetch_sub(1, Relaxed);
            s.broken.store(1, Relaxed);
        } else {
            s.arrived.store(0, Relaxed);
            s.generation.fetch_add(1, Relaxed);
        }
        s.monitor.notify_all();
    }
}
