//! `timer(seconds, f, args…)`: a thread that waits, then calls `f(args…)` unless it was
//! cancelled first (Python's `threading.Timer`, started at once).

use crate::runtime::actors;
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use crate::runtime::spawners::register_variadic;
use crate::runtime::threads::{self, ThreadHandle};
use crate::runtime::time::{seconds, until};
use rhai::plugin::*;
use rhai::{Array, FnPtr, Module};
use std::sync::{Arc, Condvar, Mutex};

/// Whether a timer was cancelled, and the condition its thread waits on.
#[derive(Default)]
struct Cancel {
    cancelled: Mutex<bool>,
    changed: Condvar,
}

/// A timer: the thread that waits and calls, and its cancel flag.
#[derive(Clone)]
pub struct Timer {
    thread: ThreadHandle,
    cancel: Arc<Cancel>,
}

/// What the timer's thread runs: waits `seconds` (a scheduling point with a timeout, so
/// that inside `explore` time is virtual), then calls `f(args…)` unless cancelled.
fn timer_body(
    ctx: NativeCallContext,
    cancel: Arc<Cancel>,
    seconds: f64,
    f: FnPtr,
    args: Array,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let object = Object::new(Kind::Event, Arc::as_ptr(&cancel) as u64, 0);
    let cancelled = sched::wait_for_state(
        || Op::new(Action::Wait, object, None),
        until(seconds, "timer")?,
        Order::ReadyFirst,
        &cancel.cancelled,
        &cancel.changed,
        |cancelled| cancelled.then_some(()),
        |_| String::new(),
    )?;
    // Cancelled while the wait was ending is cancelled too (Python looks again).
    if cancelled.is_some() || *cancel.cancelled.lock().unwrap_or_else(|e| e.into_inner()) {
        return Ok(Dynamic::UNIT);
    }
    f.call_within_context(&ctx, args)
}

const TIMER_DOC: &str = "\
/// Calls `f(args…)` on a new thread after `seconds` (int or float), unless `cancel()` comes
/// first, and returns a `Timer` at once (0 to 8 arguments). Python's `threading.Timer`,
/// except that it starts by itself (no `start()`). `join()` waits for it and gives what
/// `f` returned (`()` if it was cancelled).
///
/// ```rhai
/// let t = timer(0.5, || print(\"half a second later\"));
/// t.cancel();   // …unless cancelled before
/// ```";

/// Registers `timer(seconds, f, args…)` for every arity.
pub fn register_timer(module: &mut Module) {
    register_variadic(
        module,
        "timer",
        TIMER_DOC,
        Some((std::any::TypeId::of::<Dynamic>(), "seconds: float")),
        "Timer",
        |ctx, delay, f, args| {
            let delay = seconds(&delay, "timer")?;
            let cancel = Arc::new(Cancel::default());
            // The thread runs the body with the delay, the function and its arguments.
            let mut body = FnPtr::new("timer_body")?;
            body.add_curry(Dynamic::from(TimerCancel(cancel.clone())));
            body.add_curry(Dynamic::from_float(delay));
            body.add_curry(Dynamic::from(f.clone()));
            body.add_curry(Dynamic::from_array(args));
            let worker = actors::Worker {
                noun: "Timer",
                named_after: Some(f),
            };
            let thread = threads::spawn(ctx, body, Vec::new(), false, worker)?;
            Ok(Dynamic::from(Timer { thread, cancel }))
        },
    );
}

/// A timer's cancel flag as its thread's body receives it.
#[derive(Clone)]
pub struct TimerCancel(Arc<Cancel>);

#[export_module]
pub mod timer_api {
    use super::*;

    pub type Timer = super::Timer;

    /// The body of a timer's thread (internal: `timer(seconds, f, args…)` starts it).
    #[rhai_fn(name = "timer_body", return_raw)]
    pub fn run_timer_body(
        ctx: NativeCallContext,
        cancel: TimerCancel,
        seconds: f64,
        f: FnPtr,
        args: Array,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        super::timer_body(ctx, cancel.0, seconds, f, args)
    }

    /// Stops the timer if it is still waiting: `f` will not be called.
    #[rhai_fn(name = "cancel", pure)]
    pub fn cancel(t: &mut Timer) {
        *t.cancel.cancelled.lock().unwrap_or_else(|e| e.into_inner()) = true;
        t.cancel.changed.notify_all();
    }

    /// Whether `cancel()` was called.
    #[rhai_fn(get = "cancelled", pure)]
    pub fn cancelled(t: &mut Timer) -> bool {
        *t.cancel.cancelled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the timer's thread and returns what `f` returned (`()` if cancelled).
    #[rhai_fn(name = "join", return_raw, pure)]
    pub fn join(t: &mut Timer) -> Result<Dynamic, Box<EvalAltResult>> {
        crate::runtime::threads::thread_api::join(&mut t.thread)
    }

    /// `true` until the timer has called `f` (or was cancelled and stopped).
    #[rhai_fn(get = "is_alive", pure)]
    pub fn is_alive(t: &mut Timer) -> bool {
        crate::runtime::threads::thread_api::is_alive(&mut t.thread)
    }

    /// Shows a timer as `<Timer Timer-3, waiting>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(t: &mut Timer) -> String {
        let state = if cancelled(t) {
            "cancelled"
        } else if is_alive(t) {
            "waiting"
        } else {
            "done"
        };
        format!("<Timer {}, {state}>", t.thread.name())
    }
}
