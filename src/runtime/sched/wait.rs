//! The one blocking wait: every native that may have to wait (a lock, a queue, an event,
//! a join…) waits here, so that each wait lets the other script threads run (the GIL),
//! stops at once on an interrupt, keeps its deadline, and, under the schedule explorer,
//! becomes a turn given to another thread instead of a sleep.

use super::{controller, waiting, watching, Op, Wake};
use crate::runtime::{interrupt, interrupted_error};
use rhai::EvalAltResult;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often a blocked wait looks at the interrupt flag (and whatever else its object
/// checks: a dead lock holder, a deadlock).
pub const POLL: Duration = Duration::from_millis(50);

/// Which comes first when both are there: the awaited thing, or an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// A lock that is free, an item that is there: taken even if an interrupt came.
    ReadyFirst,
    /// A join or a result: an interrupt wins, because the interrupt is what ended the
    /// work (Python's KeyboardInterrupt).
    InterruptFirst,
}

/// Waits until `take` returns something, at most until `until`.
///
/// - `take()` takes the awaited thing if it is there (`Ok(Some)`), or says it is not
///   (`Ok(None)`), or fails;
/// - `sleep(pause)` waits at most `pause` for a change, with the object's own primitive;
///   it must look at the object under the same lock it sleeps on, so a wake-up between
///   `take` and `sleep` is not lost.
///
/// Returns `Ok(None)` when `until` passes. `op` says what is awaited (built only when
/// somebody watches); `detail` says what was taken, for traces.
pub fn wait<T>(
    op: impl FnOnce() -> Op,
    until: Option<Instant>,
    order: Order,
    mut take: impl FnMut() -> Result<Option<T>, Box<EvalAltResult>>,
    mut sleep: impl FnMut(Duration),
    detail: impl Fn(&Option<T>) -> String,
) -> Result<Option<T>, Box<EvalAltResult>> {
    if watching() {
        let op = op();
        return super::watched_step(
            op.clone(),
            || watched_wait(&op, until, order, &mut take, &mut sleep),
            detail,
        );
    }
    plain_wait(until, order, &mut take, &mut sleep)
}

fn plain_wait<T>(
    until: Option<Instant>,
    order: Order,
    take: &mut impl FnMut() -> Result<Option<T>, Box<EvalAltResult>>,
    sleep: &mut impl FnMut(Duration),
) -> Result<Option<T>, Box<EvalAltResult>> {
    let mut announced = false;
    loop {
        if order == Order::InterruptFirst && interrupt::is_requested() {
            return Err(interrupted_error());
        }
        if let Some(value) = take()? {
            return Ok(Some(value));
        }
        if interrupt::is_requested() {
            return Err(interrupted_error());
        }
        let pause = match until {
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                (deadline - now).min(POLL)
            }
            None => POLL,
        };
        if !announced {
            // Only a wait that really waits lets other threads have the GIL.
            waiting();
            announced = true;
        }
        sleep(pause);
    }
}

fn watched_wait<T>(
    op: &Op,
    until: Option<Instant>,
    order: Order,
    take: &mut impl FnMut() -> Result<Option<T>, Box<EvalAltResult>>,
    sleep: &mut impl FnMut(Duration),
) -> Result<Option<T>, Box<EvalAltResult>> {
    let controller = match controller() {
        Some(c) if c.controls(op.object.kind) => c,
        _ => return plain_wait(until, order, take, sleep),
    };
    // Under the explorer time is virtual: a wait is over when the awaited thing is there,
    // or when the explorer decides that the time ran out.
    loop {
        if let Some(value) = take()? {
            return Ok(Some(value));
        }
        if controller.blocked(op, until.is_some())? == Wake::TimedOut {
            return Ok(None);
        }
    }
}

/// [`wait`] for a state behind a mutex that changes with a notification of `changed`:
/// `ready` looks at the state and gives what is awaited once it is there (it must not
/// change the state: it is asked again before every sleep).
pub fn wait_for_state<S, T>(
    op: impl FnOnce() -> Op,
    until: Option<Instant>,
    order: Order,
    state: &Mutex<S>,
    changed: &Condvar,
    ready: impl Fn(&S) -> Option<T>,
    detail: impl Fn(&Option<T>) -> String,
) -> Result<Option<T>, Box<EvalAltResult>> {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    wait(
        op,
        until,
        order,
        || Ok(ready(&lock())),
        |pause| {
            let guard = lock();
            if ready(&guard).is_none() {
                let _ = changed.wait_timeout(guard, pause);
            }
        },
        detail,
    )
}
