//! An optional global interpreter lock, to reproduce CPython's behaviour on demand: with
//! `set_gil(true)`, script threads of a process take turns (switching every N operations,
//! like CPython's switch interval) and release the lock around every blocking call, so
//! CPU-bound threads stop scaling while I/O-bound ones still overlap. Off by default: Rhai
//! threads run truly in parallel.
//!
//! The lock is taken lazily at the next script operation after a thread starts or comes
//! back from a blocking call, and released at every wait, so no thread ever waits for the
//! GIL while holding any other lock.

use rhai::plugin::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Script operations a thread may run before it must let a waiting thread in.
static INTERVAL: AtomicU64 = AtomicU64::new(DEFAULT_INTERVAL);
const DEFAULT_INTERVAL: u64 = 10_000;

struct State {
    held: bool,
    waiting: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    held: false,
    waiting: 0,
});
static TURN: Condvar = Condvar::new();

/// Threads running script code right now (not blocked, not waiting for the GIL), and the
/// highest number seen; the same for threads inside `sleep`.
static RUNNING: AtomicI64 = AtomicI64::new(0);
static MAX_RUNNING: AtomicI64 = AtomicI64::new(0);
static SLEEPING: AtomicI64 = AtomicI64::new(0);
static MAX_SLEEPING: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static HOLDS: Cell<bool> = const { Cell::new(false) };
    static IS_RUNNING: Cell<bool> = const { Cell::new(false) };
    static LAST_SWITCH: Cell<u64> = const { Cell::new(0) };
}

fn set_running(on: bool) {
    IS_RUNNING.with(|r| {
        if r.get() != on {
            r.set(on);
            if on {
                let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                MAX_RUNNING.fetch_max(now, Ordering::SeqCst);
            } else {
                RUNNING.fetch_sub(1, Ordering::SeqCst);
            }
        }
    });
}

fn lock_state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for the GIL; gives up (returns false) when an interrupt arrives.
fn acquire() -> bool {
    let mut state = lock_state();
    state.waiting += 1;
    while state.held {
        if crate::runtime::interrupt::is_requested() {
            state.waiting -= 1;
            return false;
        }
        state = TURN
            .wait_timeout(state, Duration::from_millis(50))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    state.waiting -= 1;
    state.held = true;
    HOLDS.with(|h| h.set(true));
    true
}

fn release() {
    if HOLDS.with(|h| h.replace(false)) {
        set_running(false);
        lock_state().held = false;
        TURN.notify_all();
    }
}

/// Hands the GIL to a waiting thread, if any, and waits for the next turn.
fn switch() {
    {
        let state = lock_state();
        if state.waiting == 0 {
            return;
        }
    }
    release();
    // Let a waiter take it before competing again (CPython's forced switching).
    let mut state = lock_state();
    while !state.held && state.waiting > 0 {
        state = TURN
            .wait_timeout(state, Duration::from_millis(5))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    drop(state);
    if acquire() {
        set_running(true);
    }
}

/// Whether the calling thread is counted as running and holds no GIL: with the GIL off
/// (see `attention::GIL`), an operation then has nothing to do here.
#[inline(always)]
pub fn settled() -> bool {
    IS_RUNNING.with(Cell::get) && !HOLDS.with(Cell::get)
}

/// Called before every script operation (from the engine's progress hook). The usual case,
/// the GIL off and this thread already counted as running, is one load and two reads of
/// thread-locals, inlined into the hook.
#[inline]
pub fn on_operation(ops: u64) {
    if !ENABLED.load(Ordering::Relaxed) && IS_RUNNING.with(Cell::get) && !HOLDS.with(Cell::get) {
        return;
    }
    on_operation_slow(ops);
}

#[inline(never)]
fn on_operation_slow(ops: u64) {
    let enabled = ENABLED.load(Ordering::Relaxed);
    let holds = HOLDS.with(Cell::get);
    if !enabled {
        if holds {
            release();
        }
        set_running(true);
        return;
    }
    if !holds {
        if acquire() {
            set_running(true);
            LAST_SWITCH.with(|l| l.set(ops));
        }
        return;
    }
    let interval = INTERVAL.load(Ordering::Relaxed);
    // `ops` counts from 0 in every run of the engine; a new run on this thread restarts.
    if LAST_SWITCH.with(|l| l.get() > ops) {
        LAST_SWITCH.with(|l| l.set(ops));
    }
    if LAST_SWITCH.with(|l| ops - l.get() >= interval) {
        LAST_SWITCH.with(|l| l.set(ops));
        switch();
    }
}

/// Called at the start of every blocking wait: let other threads run meanwhile. The GIL
/// is taken back at the next script operation.
pub fn release_for_wait() {
    release();
    set_running(false);
}

/// Called when a thread stops running script code (end of a cell, thread or task).
pub fn leave() {
    release_for_wait();
}

/// Counts a thread in `sleep` (to show that sleeps overlap even under the GIL).
pub fn sleeping(starts: bool) {
    if starts {
        release_for_wait();
        let now = SLEEPING.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_SLEEPING.fetch_max(now, Ordering::SeqCst);
    } else {
        SLEEPING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[export_module]
pub mod gil_api {
    /// Turns the global interpreter lock on (`true`) or off (`false`, the default) for the
    /// script threads of this process. With it on, only one thread runs script code at a
    /// time, switching every `gil_interval()` operations and at every blocking call
    /// (`sleep`, `join`, lock and queue waits…) — CPython's behaviour: CPU-bound threads
    /// no longer speed up, I/O-bound threads still overlap.
    pub fn set_gil(on: bool) {
        super::ENABLED.store(on, super::Ordering::SeqCst);
        // Off, each thread still looks once more, to let go of the lock if it holds it
        // (see `settled`).
        if on {
            crate::runtime::attention::raise(crate::runtime::attention::GIL);
        } else {
            crate::runtime::attention::lower(crate::runtime::attention::GIL);
        }
    }

    /// Whether the global interpreter lock is on in this process.
    pub fn gil_enabled() -> bool {
        super::ENABLED.load(super::Ordering::SeqCst)
    }

    /// Sets how many script operations a thread may run before it must hand the GIL to a
    /// waiting thread (default 10000; like `sys.setswitchinterval`, counted in operations).
    #[rhai_fn(return_raw)]
    pub fn set_gil_interval(operations: i64) -> Result<(), Box<EvalAltResult>> {
        if operations < 1 {
            return Err("set_gil_interval: the interval must be at least 1 operation".into());
        }
        super::INTERVAL.store(operations as u64, super::Ordering::SeqCst);
        Ok(())
    }

    /// The number of operations between forced GIL switches.
    pub fn gil_interval() -> i64 {
        super::INTERVAL.load(super::Ordering::SeqCst) as i64
    }

    /// What the GIL instrumentation saw since the last `reset_gil_stats()`: the most script
    /// threads running at the same instant (`max_running`), the most threads sleeping at
    /// the same time (`max_sleeping`), and whether the GIL is on.
    pub fn gil_stats() -> rhai::Map {
        let mut map = rhai::Map::new();
        map.insert(
            "max_running".into(),
            Dynamic::from_int(super::MAX_RUNNING.load(super::Ordering::SeqCst)),
        );
        map.insert(
            "max_sleeping".into(),
            Dynamic::from_int(super::MAX_SLEEPING.load(super::Ordering::SeqCst)),
        );
        map.insert("enabled".into(), Dynamic::from_bool(gil_enabled()));
        map
    }

    /// Starts a new measurement for `gil_stats()`.
    pub fn reset_gil_stats() {
        super::MAX_RUNNING.store(
            super::RUNNING.load(super::Ordering::SeqCst),
            super::Ordering::SeqCst,
        );
        super::MAX_SLEEPING.store(
            super::SLEEPING.load(super::Ordering::SeqCst),
            super::Ordering::SeqCst,
        );
    }
}
