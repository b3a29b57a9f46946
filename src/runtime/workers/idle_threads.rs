//! The idle script threads: a finished script thread waits a while for its next job
//! before it exits, because script threads have huge stacks (for deep recursion) that the
//! C library cannot cache.

use crate::runtime::SCRIPT_STACK_SIZE;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

/// Where an idle script thread waits for its next job. (A slot and a condition variable,
/// not a channel: a channel's receiver spins and yields before it sleeps, which under the
/// schedule explorer took the one CPU from the worker that had the turn.)
#[derive(Default)]
struct Slot {
    job: Mutex<Option<Job>>,
    given: Condvar,
}

/// Idle script threads waiting for their next job (most recently idle last). A thread
/// leaves the list itself when it stops waiting, so a slot found here always has a thread.
static IDLE: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());

/// How long a finished script thread waits for a new job before it exits.
const IDLE_LIFETIME: Duration = Duration::from_secs(30);

/// Runs `job` on an idle script thread, or on a new one. Script threads have huge stacks
/// (for deep recursion) that the C library cannot cache, so creating one per
/// `spawn_thread` would map and unmap a gigabyte each time; reusing them is much faster.
pub(crate) fn run_on_script_thread(job: Job) -> std::io::Result<()> {
    let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
    if let Some(slot) = idle {
        *slot.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        slot.given.notify_one();
        return Ok(());
    }
    std::thread::Builder::new()
        .name("script-thread".into())
        .stack_size(SCRIPT_STACK_SIZE)
        .spawn(move || script_thread_loop(job))
        .map(|_| ())
}

fn script_thread_loop(first: Job) {
    let slot = Arc::new(Slot::default());
    let mut job = first;
    loop {
        job();
        IDLE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slot.clone());
        let deadline = Instant::now() + IDLE_LIFETIME;
        let mut given = slot.job.lock().unwrap_or_else(|e| e.into_inner());
        job = loop {
            if let Some(next) = given.take() {
                break next;
            }
            let now = Instant::now();
            if now >= deadline {
                // Leave the idle list; if someone took this thread meanwhile, its job is
                // on the way, so wait for it.
                let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(at) = idle.iter().position(|s| Arc::ptr_eq(s, &slot)) {
                    idle.remove(at);
                    return;
                }
            }
            let wait = deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            given = slot
                .given
                .wait_timeout(given, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
    }
}
