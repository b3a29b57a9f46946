//! `barrier(n)`: a meeting point for `n` threads or processes (Python's `Barrier`).

use super::{alloc_with_monitor, deadline, received, state, wait_until};
use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::sched::{self, Action, Kind, Object, Op};
use crate::runtime::shm::{arena, kind, Monitor};
use rhai::EvalAltResult;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[repr(C)]
pub(super) struct BarrierState {
    monitor: Monitor,
    serial: u64,
    parties: u64,
    arrived: AtomicU64,
    generation: AtomicU64,
}

/// A meeting point for `n` threads or processes (Python's `Barrier`).
#[derive(Clone, Debug, PartialEq)]
pub struct Barrier {
    pub offset: u64,
    held: Held,
}

impl Barrier {
    /// How many parties it waits for.
    pub fn parties(&self) -> u64 {
        self.state().parties
    }

    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new(parties: i64) -> Result<Barrier, Box<EvalAltResult>> {
        if parties < 1 {
            return Err("barrier(n): n must be at least 1".into());
        }
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
        })
    }

    pub fn receive(offset: u64, how: Receive) -> Result<Barrier, String> {
        let held = received::<BarrierState>(offset, kind::BARRIER, how)?;
        Ok(Barrier { offset, held })
    }

    pub(super) fn state(&self) -> &'static BarrierState {
        state(self.offset)
    }

    /// The barrier as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Barrier, self.offset, self.state().serial)
    }

    pub(super) fn wait(&self, timeout: Option<f64>) -> Result<i64, Box<EvalAltResult>> {
        let s = self.state();
        let op = || Op::new(Action::Wait, self.object(), None);
        let arrive = || {
            let _guard = s.monitor.lock();
            let index = s.arrived.fetch_add(1, Relaxed);
            let generation = s.generation.load(Relaxed);
            let last = index + 1 == s.parties;
            if last {
                s.arrived.store(0, Relaxed);
                s.generation.fetch_add(1, Relaxed);
                s.monitor.notify_all();
            }
            Ok((index, generation, last))
        };
        let (index, generation, last) = sched::step(op, arrive, |_| String::new())?;
        if last {
            return Ok(index as i64);
        }
        let passed = wait_until(&s.monitor, deadline(timeout)?, op, || {
            s.generation.load(Relaxed) != generation
        });
        match passed {
            Ok(true) => Ok(index as i64),
            other => {
                // Leaving early: no longer count as arrived (unless the barrier opened).
                let _guard = s.monitor.lock();
                if s.generation.load(Relaxed) == generation {
                    s.arrived.fetch_sub(1, Relaxed);
                } else {
                    return Ok(index as i64);
                }
                match other {
                    Ok(_) => Err("barrier wait timed out".into()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}
