//! The process-wide interrupt: requested by the kernel's control channel, SIGINT or
//! Ctrl-C, polled by the engine's progress hook and by every blocking native.
//!
//! Requests are counted rather than flagged, because a flag cleared when the next cell
//! starts could be cleared before a busy thread of the interrupted cell had looked at it,
//! and that thread then ran on for ever. Each thread measures requests from a baseline: a
//! script thread or pool task from the one it inherited from whoever started it, any
//! other thread (the one running cells) from the last `clear`. So an interrupt stops
//! every script thread started before it, however late the thread looks.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How many interrupts were ever requested.
static REQUESTS: AtomicU64 = AtomicU64::new(0);
/// How many of them the last `clear` put behind it.
static CLEARED: AtomicU64 = AtomicU64::new(0);
/// The baselines of the script threads and tasks running now (baseline → how many), so
/// that the progress hook keeps looking while one of them has an interrupt to see.
static RUNNING: Mutex<BTreeMap<u64, usize>> = Mutex::new(BTreeMap::new());
static WAKE: Mutex<()> = Mutex::new(());
static WAKE_CV: Condvar = Condvar::new();

thread_local! {
    /// This thread's inherited baseline while it runs a script thread or a pool task.
    static BASELINE: Cell<Option<u64>> = const { Cell::new(None) };
}

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
    REQUESTS.fetch_add(1, Ordering::SeqCst);
    {
        let _running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        super::attention::raise(super::attention::INTERRUPT);
    }
    {
        let _guard = WAKE.lock().unwrap_or_else(|e| e.into_inner());
        WAKE_CV.notify_all();
    }
    let hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for hook in hooks {
        hook();
    }
}

/// Puts the interrupts so far behind (before a new cell starts). Script threads started
/// before them still see them.
pub fn clear() {
    CLEARED.fetch_max(REQUESTS.load(Ordering::SeqCst), Ordering::SeqCst);
    update_attention(&RUNNING.lock().unwrap_or_else(|e| e.into_inner()));
}

/// Whether an interrupt was requested that this thread has to answer.
pub fn is_requested() -> bool {
    REQUESTS.load(Ordering::SeqCst) > baseline()
}

/// The interrupts this thread answers are those counted after this baseline; a thread
/// or task started now inherits it.
pub fn baseline() -> u64 {
    BASELINE
        .with(Cell::get)
        .unwrap_or_else(|| CLEARED.load(Ordering::SeqCst))
}

/// While this lives, the current thread runs a script thread or task started with
/// `baseline` (from `baseline()` on the thread that started it).
pub struct Inherited {
    baseline: u64,
    before: Option<u64>,
}

pub fn inherit(baseline: u64) -> Inherited {
    *RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(baseline)
        .or_default() += 1;
    let before = BASELINE.with(|b| b.replace(Some(baseline)));
    Inherited { baseline, before }
}

impl Drop for Inherited {
    fn drop(&mut self) {
        BASELINE.with(|b| b.set(self.before));
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = running.get_mut(&self.baseline) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.baseline);
            }
        }
        update_attention(&running);
    }
}

/// The progress hook looks for interrupts while some thread has one to see. Called with
/// `RUNNING` locked, as `request` raises the bit, so that neither undoes the other.
fn update_attention(running: &BTreeMap<u64, usize>) {
    let oldest = running
        .keys()
        .next()
        .copied()
        .unwrap_or(u64::MAX)
        .min(CLEARED.load(Ordering::SeqCst));
    if REQUESTS.load(Ordering::SeqCst) > oldest {
        super::attention::raise(super::attention::INTERRUPT);
    } else {
        super::attention::lower(super::attention::INTERRUPT);
    }
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
        a_thread_sees_an_interrupt_cleared_before_it_looked();
    }

    /// (Run by the test above: both use the process-wide interrupt.)
    fn a_thread_sees_an_interrupt_cleared_before_it_looked() {
        let (started, look) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        let baseline = baseline();
        let seen = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let _inherited = inherit(baseline);
                started.wait();
                look.wait();
                let seen = is_requested();
                (seen, super::super::attention::calm())
            });
            started.wait();
            request();
            // The next cell starts before the thread looks.
            clear();
            assert!(!is_requested(), "the new cell is not interrupted");
            look.wait();
            worker.join().unwrap()
        });
        assert_eq!(seen, (true, false), "(interrupted, calm)");
        assert!(!is_requested());
    }
}
