//! `sleep`: an interruptible replacement for Rhai's built-in one.

use rhai::plugin::*;

#[export_module]
pub mod time_api {
    use crate::runtime::{interrupt, interrupted_error};
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
        let _sleeping = crate::runtime::gil::Sleeping::start();
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
