//! `sleep`: an interruptible replacement for Rhai's built-in one.

use rhai::plugin::*;

#[export_module]
pub mod time_api {
    use crate::runtime::{interrupt, interrupted_error, sched};
    use std::time::Duration;

    /// Pauses the calling thread for `seconds` (a float, e.g. `sleep(0.2)`).
    ///
    /// The wait is interruptible: interrupting the kernel (or Ctrl-C under
    /// `rhai-kernel run`) ends it at once with an `Interrupted` error.
    /// Negative or NaN durations return immediately.
    #[rhai_fn(name = "sleep", return_raw)]
    pub fn sleep_float(seconds: f64) -> Result<(), Box<EvalAltResult>> {
        let duration = if seconds.is_finite() && seconds > 0.0 {
            Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        };
        let op = || {
            let clock = sched::Object::new(sched::Kind::Clock, 0, 0);
            sched::Op::new(sched::Action::Sleep, clock, None)
        };
        // Under the schedule explorer time is virtual: a sleep only lets others run.
        if sched::controller().is_some() {
            return sched::announce(op, || format!("{seconds}"));
        }
        let _sleeping = sched::Sleeping::start();
        if interrupt::sleep(duration) {
            Ok(())
        } else {
            Err(interrupted_error())
        }
    }

    /// Pauses the calling thread for a whole number of `seconds`.
    ///
    /// Interruptible, like `sleep(seconds: float)`.
    #[rhai_fn(name = "sleep", return_raw)]
    pub fn sleep_int(seconds: i64) -> Result<(), Box<EvalAltResult>> {
        sleep_float(seconds as f64)
    }
}
