//! `x.guard()`: Python's `with x:` for locks, semaphores and conditions. The guard holds
//! `x` from its creation until it goes out of scope — the end of its block or function,
//! also when an error or an interrupt leaves it — so `{ let g = l.guard(); v.value += 1; }`
//! is `hold` without a closure, which costs Rhai a new scope and cold caches on every call.

use crate::runtime::locks::{Lock, RLock};
use crate::runtime::sink::{self, Stream};
use crate::runtime::sync::{Condition, Semaphore};
use rhai::plugin::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a guard holds (a handle, so the object lives at least as long as the guard).
#[derive(Debug)]
enum Guarded {
    Lock(Lock),
    RLock(RLock),
    Semaphore(Semaphore),
    Condition(Condition),
}

impl Guarded {
    /// Waits for the object (interruptible; deadlocks reported as by `acquire()`).
    fn acquire(&self) -> Result<bool, Box<EvalAltResult>> {
        match self {
            Guarded::Lock(lock) => lock.0.acquire(None),
            Guarded::RLock(lock) => lock.0.acquire(None),
            Guarded::Semaphore(s) => s.acquire(None),
            Guarded::Condition(c) => c.lock().acquire(None),
        }
    }

    fn release(&self) -> Result<(), Box<EvalAltResult>> {
        match self {
            Guarded::Lock(lock) => lock.0.release(),
            Guarded::RLock(lock) => lock.0.release(),
            Guarded::Semaphore(s) => s.release(1),
            Guarded::Condition(c) => c.lock().release(),
        }
    }

    fn name(&self) -> String {
        match self {
            Guarded::Lock(lock) => lock.0.name(),
            Guarded::RLock(lock) => lock.0.name(),
            Guarded::Semaphore(_) => "Semaphore".into(),
            Guarded::Condition(_) => "Condition".into(),
        }
    }
}

#[derive(Debug)]
struct GuardState {
    guarded: Guarded,
    released: AtomicBool,
}

impl GuardState {
    /// Releases what the guard holds, once: `Ok(false)` when that was done before.
    fn release(&self) -> Result<bool, Box<EvalAltResult>> {
        if self.released.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        self.guarded.release().map(|()| true)
    }
}

impl Drop for GuardState {
    fn drop(&mut self) {
        // Nobody is left to tell but the user: a re-entrant lock whose guard ended in
        // another thread than its holder's cannot be released there.
        if let Err(err) = self.release() {
            sink::write(
                Stream::Stderr,
                &format!("guard of {}: not released: {err}\n", self.guarded.name()),
            );
        }
    }
}

/// A held lock, semaphore permit or condition's lock, given back when the last copy of
/// the guard is dropped (copies share it: passing a guard to a function does not release
/// it twice).
#[derive(Clone, Debug)]
pub struct Guard(Arc<GuardState>);

impl Guard {
    fn take(guarded: Guarded) -> Result<Guard, Box<EvalAltResult>> {
        guarded.acquire()?;
        Ok(Guard(Arc::new(GuardState {
            guarded,
            released: AtomicBool::new(false),
        })))
    }
}

#[export_module]
pub mod guard_api {
    use super::*;

    pub type Guard = super::Guard;

    /// Takes the lock and returns a guard that releases it when it goes out of scope, as
    /// Python's `with lock:` — the end of the block, also on an error or an interrupt:
    /// `{ let g = l.guard(); v.value += 1; }`. Faster than `hold(f)`. At the top level of
    /// a cell the guard lives on with the variable: use a block there.
    #[rhai_fn(name = "guard", return_raw, pure)]
    pub fn guard_lock(lock: &mut Lock) -> Result<Guard, Box<EvalAltResult>> {
        Guard::take(Guarded::Lock(lock.clone()))
    }

    /// Takes the re-entrant lock (again, if this thread holds it) until the guard goes
    /// out of scope; release it in the thread that took it.
    #[rhai_fn(name = "guard", return_raw, pure)]
    pub fn guard_rlock(lock: &mut RLock) -> Result<Guard, Box<EvalAltResult>> {
        Guard::take(Guarded::RLock(lock.clone()))
    }

    /// Takes a permit of the semaphore until the guard goes out of scope (`with sem:`).
    #[rhai_fn(name = "guard", return_raw, pure)]
    pub fn guard_semaphore(s: &mut Semaphore) -> Result<Guard, Box<EvalAltResult>> {
        Guard::take(Guarded::Semaphore(s.clone()))
    }

    /// Takes the condition's lock until the guard goes out of scope (`with cond:`);
    /// `wait()` and `notify()` inside the block.
    #[rhai_fn(name = "guard", return_raw, pure)]
    pub fn guard_condition(c: &mut Condition) -> Result<Guard, Box<EvalAltResult>> {
        Guard::take(Guarded::Condition(c.clone()))
    }

    /// Releases what the guard holds now, before it goes out of scope; an error if it
    /// was released already.
    #[rhai_fn(name = "release", return_raw, pure)]
    pub fn guard_release(g: &mut Guard) -> Result<(), Box<EvalAltResult>> {
        if g.0.release()? {
            Ok(())
        } else {
            Err(format!(
                "release: this guard of {} was released already",
                g.0.guarded.name()
            )
            .into())
        }
    }

    /// Whether the guard still holds its lock, permit or condition.
    #[rhai_fn(get = "held", pure)]
    pub fn guard_held(g: &mut Guard) -> bool {
        !g.0.released.load(Ordering::Acquire)
    }

    /// Shows a guard as `<Guard of Lock-1>` (`, released` once released).
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn guard_to_string(g: &mut Guard) -> String {
        let released = if g.0.released.load(Ordering::Acquire) {
            ", released"
        } else {
            ""
        };
        format!("<Guard of {}{released}>", g.0.guarded.name())
    }
}
