//! The process-wide interrupt flag: set by the kernel's control channel, SIGINT or Ctrl-C,
//! polled by the engine's progress hook and by every blocking native.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static WAKE: Mutex<()> = Mutex::new(());
static WAKE_CV: Condvar = Condvar::new();

/// Functions called on every interrupt request (e.g. to pass it on to child processes).
static HOOKS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Registers `hook` to run on every interrupt request (once per distinct function).
pub fn on_request(hook: fn()) {
    let mut hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    if !hooks.contains(&hook) {
        hooks.push(hook);
    }
}

/// Asks the running code to stop; wakes every interruptible wait.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
    super::attention::raise(super::attention::INTERRUPT);
    {
        let _guard = WAKE.lock().unwrap_or_else(|e| e.into_inner());
        WAKE_CV.notify_all();
    }
    let hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for hook in hooks {
        hook();
    }
}

/// Clears a pending interrupt (before a new cell starts).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
    super::attention::lower(super::attention::INTERRUPT);
}

pub fn is_requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Sleeps for `duration` unless interrupted; returns `false` when interrupted.
pub fn sleep(duration: Duration) -> bool {
    // A sleep too long to have an end is one that only an interrupt ends.
    let deadline = Instant::now().checked_add(duration);
    let mut guard = WAKE.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if is_requested() {
            return false;
        }
        let now = Instant::now();
        let left = deadline.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(now)
        });
        if left.is_zero() {
            return true;
        }
        guard = WAKE_CV
            .wait_timeout(guard, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_is_cut_short_by_request() {
        clear();
        assert!(sleep(Duration::from_millis(5)));
        let waker = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            request();
        });
        let start = Instant::now();
        assert!(!sleep(Duration::from_secs(30)));
        assert!(start.elapsed() < Duration::from_secs(10));
        waker.join().unwrap();
        clear();
        assert!(!is_requested());
    }
}
