//! `sleep`: an interruptible replacement for Rhai's built-in one; and how every native
//! reads a time in seconds.

use rhai::plugin::*;

/// A time in seconds as a script gives it: an int or a float, as Python accepts both
/// (`q.get(1)`, `event.wait(0.5)`). `what` names the native in the error.
pub fn seconds(value: &Dynamic, what: &str) -> Result<f64, Box<EvalAltResult>> {
    match (value.as_int(), value.as_float()) {
        (Ok(int), _) => Ok(int as f64),
        (_, Ok(float)) => Ok(float),
        _ => Err(format!(
            "{what}: a time in seconds must be an int or a float, not {}",
            value.type_name()
        )
        .into()),
    }
}

/// The moment a wait of `timeout` seconds (int or float) from now ends; a negative one
/// does not wait, as in Python's `join(timeout)`; `None` for one too far to represent.
pub fn deadline(
    timeout: &Dynamic,
    what: &str,
) -> Result<Option<std::time::Instant>, Box<EvalAltResult>> {
    until(seconds(timeout, what)?, what)
}

/// How long a wait of `seconds` lasts: nothing for a negative time, as long as it takes
/// (`Duration::MAX`) for one too long to represent; NaN is an error.
pub fn duration(seconds: f64, what: &str) -> Result<std::time::Duration, Box<EvalAltResult>> {
    if seconds.is_nan() {
        return Err(format!("{what}: invalid timeout {seconds}").into());
    }
    Ok(
        std::time::Duration::try_from_secs_f64(seconds.max(0.0))
            .unwrap_or(std::time::Duration::MAX),
    )
}

/// The moment `seconds` from now (now for a negative time; `None` for one too far to
/// represent, which is no limit); NaN is an error.
pub fn until(seconds: f64, what: &str) -> Result<Option<std::time::Instant>, Box<EvalAltResult>> {
    Ok(std::time::Instant::now().checked_add(duration(seconds, what)?))
}

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
