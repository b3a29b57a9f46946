//! `Future`: a task submitted with `submit`, whose result a script waits for.

use super::executor::StartGate;
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use rhai::{Dynamic, EvalAltResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A task submitted with `submit`.
#[derive(Clone)]
pub struct Future(pub(super) Arc<FutureState>);

pub(super) struct FutureState {
    pub(super) outcome: Mutex<Option<Result<Dynamic, String>>>,
    /// How many `result()` calls are waiting; changed and read with `outcome` locked, so
    /// a failure either finds a waiter (who throws it) or is reported on stderr.
    pub(super) waiting: AtomicUsize,
    pub(super) done: Condvar,
    pub(super) gate: Arc<StartGate>,
}

impl Future {
    pub(super) fn wait(&self, timeout: Option<Duration>) -> Result<Dynamic, Box<EvalAltResult>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let outcome = || self.0.outcome.lock().unwrap_or_else(|e| e.into_inner());
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // Counted with `outcome` locked (see `FutureState::waiting`).
        {
            let _outcome = outcome();
            self.0.waiting.fetch_add(1, Ordering::SeqCst);
        }
        let _waiting = Waiting(&self.0.waiting);
        let object = Object::new(Kind::Future, Arc::as_ptr(&self.0) as u64, 0);
        let done = sched::wait_for_state(
            || Op::new(Action::Join, object, None),
            deadline,
            // An interrupt wins over a result that the interrupt itself caused.
            Order::InterruptFirst,
            &self.0.outcome,
            &self.0.done,
            Option::clone,
            |_| String::new(),
        )?;
        match done {
            Some(done) => done.map_err(Into::into),
            None => Err("result: the task has not finished yet (timeout)".into()),
        }
    }
}
