//! Keeping the threads of a controlled run on one CPU. The explorer runs one thread at a
//! time and hands the turn from thread to thread at almost every step; handing it to a
//! thread that sleeps on another CPU takes a wakeup across CPUs (an interrupt between
//! processors, dear in a virtual machine), while on one CPU it is a switch on the spot.
//! Nothing runs in parallel under the explorer, so nothing is lost.
//!
//! A thread stays on its CPU after its run, until it next runs something else: the
//! explorer's workers come from the pool of idle script threads, and one given back its
//! CPUs at the end of every run would wake up on another CPU for the next run and have to
//! be moved back, which cost more than the pinning saved.

use std::cell::Cell;
use std::mem::{size_of, MaybeUninit};

thread_local! {
    /// The CPU the calling thread is kept on, and the CPUs it had before.
    static KEPT: Cell<Option<(usize, libc::cpu_set_t)>> = const { Cell::new(None) };
}

/// Keeps the calling thread on `cpu` from now on, or gives it back the CPUs it had
/// (`None`). Nothing happens if it is so already, or if the system refuses.
pub fn keep_on(cpu: Option<usize>) {
    let kept = KEPT.get();
    if kept.map(|(on, _)| on) == cpu {
        return;
    }
    match (cpu, kept) {
        (Some(cpu), _) if cpu >= libc::CPU_SETSIZE as usize => {}
        (Some(cpu), kept) => {
            let Some(before) = kept.map(|(_, before)| before).or_else(current) else {
                return;
            };
            let mut only = empty();
            // SAFETY: `cpu` is below CPU_SETSIZE (the arm above), so the bit is in the set.
            unsafe { libc::CPU_SET(cpu, &mut only) };
            if set(&only) {
                KEPT.set(Some((cpu, before)));
            }
        }
        (None, Some((_, before))) => {
            // A failure (a CPU that went away meanwhile) leaves it where it is.
            set(&before);
            KEPT.set(None);
        }
        (None, None) => {}
    }
}

/// The CPU the calling thread runs on now.
pub fn cpu_now() -> Option<usize> {
    // SAFETY: no arguments; returns -1 on failure.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

fn empty() -> libc::cpu_set_t {
    // SAFETY: `cpu_set_t` is plain bits; all zeroes is the empty set.
    unsafe { MaybeUninit::zeroed().assume_init() }
}

/// The calling thread's CPUs.
fn current() -> Option<libc::cpu_set_t> {
    let mut cpus = empty();
    // SAFETY: pid 0 is the calling thread; `cpus` is writable and of the size given.
    let done = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut cpus) };
    (done == 0).then_some(cpus)
}

/// Sets the calling thread's CPUs; whether it could.
fn set(cpus: &libc::cpu_set_t) -> bool {
    // SAFETY: pid 0 is the calling thread; `cpus` is a valid set of the size given.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), cpus) == 0 }
}
