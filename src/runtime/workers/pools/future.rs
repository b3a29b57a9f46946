//! `Future`: a task submitted with `submit`, whose result a script waits for.

use super::executor::StartGate;
use crate::runtime::{interrupt, interrupted_error};
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
        crate::runtime::gil::release_for_wait();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut outcome = self.0.outcome.lock().unwrap_or_else(|e| e.into_inner());
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // Counted with `outcome` locked (see `FutureState::waiting`).
        self.0.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.0.waiting);
        loop {
            // An interrupt wins over a result that the interrupt itself caused.
            if interrupt::is_requested() {
                return Err(interrupted_error());
            }
            if let Some(done) = outcome.as_ref() {
                return done.clone().map_err(Into::into);
            }
            let pause = match deadline {
                Some(d) if Instant::now() >= d => {
                    return Err("result: the task has not finished yet (timeout)".into())
                }
                Some(d) => (d - Instant::now()).min(Duration::from_millis(50)),
                None => Duration::from_millis(50),
            };
            outcome = self
                .0
                .done
                .wait_timeout(outcome, pause)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
