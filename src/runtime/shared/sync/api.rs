//! The natives of semaphores, events, conditions and barriers.

use super::barrier::Passed;
use super::{Barrier, Condition, Event, Semaphore};
use crate::runtime::locks::Lock;
use crate::runtime::sched;
use crate::runtime::time::seconds;
use rhai::plugin::*;
use rhai::FnPtr;
use std::time::Duration;

fn hold_with(
    ctx: &NativeCallContext,
    acquire: impl FnOnce() -> Result<bool, Box<EvalAltResult>>,
    release: impl FnOnce() -> Result<(), Box<EvalAltResult>>,
    f: FnPtr,
) -> Result<Dynamic, Box<EvalAltResult>> {
    acquire()?;
    let result = f.call_within_context::<Dynamic>(ctx, ());
    let released = release();
    let value = result?;
    released?;
    Ok(value)
}

/// Python's `Condition.wait_for`: waits, at most `timeout` seconds in all, until
/// `predicate()` is truthy; its last value.
fn wait_for(
    ctx: &NativeCallContext,
    c: &Condition,
    predicate: &FnPtr,
    timeout: Option<f64>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let truthy = |v: &Dynamic| v.as_bool().unwrap_or(!v.is_unit());
    let end = match timeout {
        None => None,
        Some(t) => crate::runtime::time::until(t, "wait_for")?,
    };
    let mut result = predicate.call_within_context::<Dynamic>(ctx, ())?;
    while !truthy(&result) {
        let left = match end {
            None => None,
            Some(end) => {
                let left = end.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                Some(left.as_secs_f64())
            }
        };
        c.wait(left)?;
        result = predicate.call_within_context::<Dynamic>(ctx, ())?;
    }
    Ok(result)
}

/// A party passes the barrier: the last one of a round runs the action, then lets the
/// others go on.
fn pass(
    ctx: &NativeCallContext,
    b: &Barrier,
    timeout: Option<f64>,
) -> Result<i64, Box<EvalAltResult>> {
    match b.wait(timeout)? {
        Passed::Index(index) => Ok(index),
        Passed::Last(index, round) => {
            let ran = match &b.action {
                Some(action) => action.call_within_context::<Dynamic>(ctx, ()).map(drop),
                None => Ok(()),
            };
            b.release(round, ran.is_err());
            ran.map(|_| index)
        }
    }
}

#[export_module]
pub mod sync_api {
    use super::*;

    pub type Semaphore = super::Semaphore;
    pub type Event = super::Event;
    pub type Condition = super::Condition;
    pub type Barrier = super::Barrier;

    /// Creates a semaphore with `n` permits: `acquire()` takes one (waiting while there is
    /// none), `release()` gives one back. Works between threads and processes.
    #[rhai_fn(return_raw)]
    pub fn semaphore(n: i64) -> Result<Semaphore, Box<EvalAltResult>> {
        super::Semaphore::new(n, false)
    }

    /// Creates a semaphore with `n` permits that may never have more: a `release()`
    /// without a matching `acquire()` is an error (Python's `BoundedSemaphore`), which
    /// catches the bug of releasing twice.
    #[rhai_fn(return_raw)]
    pub fn bounded_semaphore(n: i64) -> Result<Semaphore, Box<EvalAltResult>> {
        super::Semaphore::new(n, true)
    }

    /// Takes a permit, waiting until one is free. Interruptible.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn sem_acquire(s: &mut Semaphore) -> Result<bool, Box<EvalAltResult>> {
        s.acquire(None)
    }

    /// Takes a permit, waiting at most `timeout` seconds; returns whether it got one.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn sem_acquire_timeout(
        s: &mut Semaphore,
        timeout: Dynamic,
    ) -> Result<bool, Box<EvalAltResult>> {
        s.acquire(Some(seconds(&timeout, "acquire")?))
    }

    /// Gives a permit back.
    #[rhai_fn(name = "release", return_raw, pure)]
    pub fn sem_release(s: &mut Semaphore) -> Result<(), Box<EvalAltResult>> {
        s.release(1)
    }

    /// Gives `n` permits back at once (Python's `release(n)`), waking as many waiters.
    #[rhai_fn(name = "release", return_raw, pure)]
    pub fn sem_release_n(s: &mut Semaphore, n: i64) -> Result<(), Box<EvalAltResult>> {
        s.release(n)
    }

    /// Runs `f` holding a permit; the permit is given back even if `f` throws.
    #[rhai_fn(name = "hold", return_raw, pure)]
    pub fn sem_hold(
        ctx: NativeCallContext,
        s: &mut Semaphore,
        f: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let s = s.clone();
        hold_with(&ctx, || s.acquire(None), || s.release(1), f)
    }

    /// The number of free permits.
    #[rhai_fn(get = "value", pure)]
    pub fn sem_value(s: &mut Semaphore) -> i64 {
        sched::look(|| s.object());
        s.permits()
    }

    /// Creates an event: a flag that threads and processes can wait for.
    #[rhai_fn(return_raw)]
    pub fn event() -> Result<Event, Box<EvalAltResult>> {
        super::Event::new()
    }

    /// Sets the flag and wakes everyone waiting for it.
    #[rhai_fn(name = "set", return_raw, pure)]
    pub fn event_set(e: &mut Event) -> Result<(), Box<EvalAltResult>> {
        e.set(true)
    }

    /// Clears the flag.
    #[rhai_fn(name = "clear", return_raw, pure)]
    pub fn event_clear(e: &mut Event) -> Result<(), Box<EvalAltResult>> {
        e.set(false)
    }

    /// Whether the flag is set.
    #[rhai_fn(name = "is_set", pure)]
    pub fn event_is_set(e: &mut Event) -> bool {
        sched::look(|| e.object());
        e.is_set()
    }

    /// Waits until the flag is set. Interruptible.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn event_wait(e: &mut Event) -> Result<bool, Box<EvalAltResult>> {
        e.wait(None)
    }

    /// Waits at most `timeout` seconds for the flag; returns whether it is set.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn event_wait_timeout(e: &mut Event, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        e.wait(Some(seconds(&timeout, "wait")?))
    }

    /// Creates a condition variable with its own new lock.
    ///
    /// Hold the lock (`acquire`/`hold`), then `wait()` releases it until another thread
    /// calls `notify()`, and takes it again before returning.
    #[rhai_fn(return_raw)]
    pub fn condition() -> Result<Condition, Box<EvalAltResult>> {
        super::Condition::new(Lock::new()?)
    }

    /// Creates a condition variable that uses `lock`.
    #[rhai_fn(name = "condition", return_raw)]
    pub fn condition_with(lock: Lock) -> Result<Condition, Box<EvalAltResult>> {
        super::Condition::new(lock)
    }

    /// Takes the condition's lock. Interruptible.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn cond_acquire(c: &mut Condition) -> Result<bool, Box<EvalAltResult>> {
        c.lock().acquire(None)
    }

    /// Takes the condition's lock, waiting at most `timeout` seconds.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn cond_acquire_timeout(
        c: &mut Condition,
        timeout: Dynamic,
    ) -> Result<bool, Box<EvalAltResult>> {
        let timeout = seconds(&timeout, "acquire")?;
        c.lock()
            .acquire((timeout >= 0.0).then(|| Duration::from_secs_f64(timeout)))
    }

    /// Releases the condition's lock.
    #[rhai_fn(name = "release", return_raw, pure)]
    pub fn cond_release(c: &mut Condition) -> Result<(), Box<EvalAltResult>> {
        c.lock().release()
    }

    /// Runs `f` holding the condition's lock (released even if `f` throws).
    #[rhai_fn(name = "hold", return_raw, pure)]
    pub fn cond_hold(
        ctx: NativeCallContext,
        c: &mut Condition,
        f: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let lock = c.lock();
        hold_with(&ctx, || lock.acquire(None), || lock.release(), f)
    }

    /// Releases the lock, waits for `notify`, and takes the lock again. Interruptible.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn cond_wait(c: &mut Condition) -> Result<bool, Box<EvalAltResult>> {
        c.wait(None)
    }

    /// Like `wait()`, at most `timeout` seconds; returns whether it was notified.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn cond_wait_timeout(
        c: &mut Condition,
        timeout: Dynamic,
    ) -> Result<bool, Box<EvalAltResult>> {
        c.wait(Some(seconds(&timeout, "wait")?))
    }

    /// Waits until `predicate()` is true: calls it, and while it is false waits for a
    /// notification and calls it again (the lock must be held; it is held whenever the
    /// predicate runs). Returns the predicate's last value (Python's `wait_for`).
    #[rhai_fn(name = "wait_for", return_raw, pure)]
    pub fn cond_wait_for(
        ctx: NativeCallContext,
        c: &mut Condition,
        predicate: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        wait_for(&ctx, c, &predicate, None)
    }

    /// `wait_for(predicate)` for at most `timeout` seconds (int or float) in all; returns
    /// the predicate's last value, which is false if the time ran out.
    #[rhai_fn(name = "wait_for", return_raw, pure)]
    pub fn cond_wait_for_timeout(
        ctx: NativeCallContext,
        c: &mut Condition,
        predicate: FnPtr,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let timeout = seconds(&timeout, "wait_for")?;
        wait_for(&ctx, c, &predicate, Some(timeout))
    }

    /// Wakes one waiting thread (the lock must be held).
    #[rhai_fn(name = "notify", return_raw, pure)]
    pub fn cond_notify(c: &mut Condition) -> Result<(), Box<EvalAltResult>> {
        c.notify(1)
    }

    /// Wakes up to `n` waiting threads (the lock must be held).
    #[rhai_fn(name = "notify", return_raw, pure)]
    pub fn cond_notify_n(c: &mut Condition, n: i64) -> Result<(), Box<EvalAltResult>> {
        c.notify(n.max(0) as u64)
    }

    /// Wakes every waiting thread (the lock must be held).
    #[rhai_fn(name = "notify_all", return_raw, pure)]
    pub fn cond_notify_all(c: &mut Condition) -> Result<(), Box<EvalAltResult>> {
        c.notify(u64::MAX)
    }

    /// Creates a barrier for `n` parties: each `wait()` blocks until `n` threads or
    /// processes have called it, then all continue.
    #[rhai_fn(return_raw)]
    pub fn barrier(n: i64) -> Result<Barrier, Box<EvalAltResult>> {
        super::Barrier::new(n, None)
    }

    /// A barrier whose last party to arrive runs `action()` each round, before any party
    /// goes on (Python's `Barrier(n, action)`); if the action throws, that party gets the
    /// error and the barrier breaks.
    #[rhai_fn(name = "barrier", return_raw)]
    pub fn barrier_action(n: i64, action: FnPtr) -> Result<Barrier, Box<EvalAltResult>> {
        super::Barrier::new(n, Some(action))
    }

    /// Waits for all parties; returns this party's arrival index (0 to n-1). Throws if the
    /// barrier is or becomes broken. Interruptible.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn barrier_wait(
        ctx: NativeCallContext,
        b: &mut Barrier,
    ) -> Result<i64, Box<EvalAltResult>> {
        pass(&ctx, b, None)
    }

    /// Waits at most `timeout` seconds (int or float) for all parties; a wait that times
    /// out breaks the barrier for everyone, as in Python.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn barrier_wait_timeout(
        ctx: NativeCallContext,
        b: &mut Barrier,
        timeout: Dynamic,
    ) -> Result<i64, Box<EvalAltResult>> {
        pass(&ctx, b, Some(seconds(&timeout, "wait")?))
    }

    /// How many parties wait in the current round.
    #[rhai_fn(get = "n_waiting", pure)]
    pub fn barrier_n_waiting(b: &mut Barrier) -> i64 {
        sched::look(|| b.object());
        b.n_waiting() as i64
    }

    /// `true` once a wait timed out, the action failed or `abort()` was called, until
    /// `reset()`.
    #[rhai_fn(get = "broken", pure)]
    pub fn barrier_broken(b: &mut Barrier) -> bool {
        sched::look(|| b.object());
        b.is_broken()
    }

    /// Breaks the barrier: the parties waiting now, and every later `wait()`, fail until
    /// `reset()` (Python's `abort()`: a way out when a party will never come).
    #[rhai_fn(name = "abort", pure)]
    pub fn barrier_abort(b: &mut Barrier) {
        b.abort();
    }

    /// Makes the barrier empty and unbroken again; the parties waiting now fail.
    #[rhai_fn(name = "reset", pure)]
    pub fn barrier_reset(b: &mut Barrier) {
        b.reset();
    }

    /// The number of parties the barrier waits for.
    #[rhai_fn(get = "parties", pure)]
    pub fn barrier_parties(b: &mut Barrier) -> i64 {
        b.parties() as i64
    }
}
