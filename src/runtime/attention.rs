//! One word that says whether a script operation needs more than a glance. The engine's
//! progress hook runs before every operation; what it must look at (the GIL, an interrupt,
//! the memory after a large allocation) is almost never there, so its usual case is one
//! relaxed load of this word (plus two thread-locals of the GIL and a sampling mask)
//! instead of a look at each. Whoever makes something worth looking at raises its bit.

use std::sync::atomic::{AtomicU32, Ordering};

static WORD: AtomicU32 = AtomicU32::new(0);

/// The global interpreter lock is on.
pub const GIL: u32 = 1;
/// Some thread has an interrupt to answer (see `interrupt`).
pub const INTERRUPT: u32 = 1 << 1;
/// A large allocation was made since memory was last sampled.
pub const LARGE_ALLOCATION: u32 = 1 << 2;

/// `what` needs looking at.
pub fn raise(what: u32) {
    WORD.fetch_or(what, Ordering::SeqCst);
}

/// `what` needs looking at no more.
pub fn lower(what: u32) {
    WORD.fetch_and(!what, Ordering::SeqCst);
}

/// Whether nothing needs looking at (one relaxed load).
#[inline(always)]
pub fn calm() -> bool {
    WORD.load(Ordering::Relaxed) == 0
}

/// Whether `what` needs looking at, and from now on not (it is looked at now).
pub fn take(what: u32) -> bool {
    WORD.load(Ordering::Relaxed) & what != 0 && WORD.fetch_and(!what, Ordering::SeqCst) & what != 0
}
