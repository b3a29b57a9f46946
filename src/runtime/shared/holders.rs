//! Who holds a shared object: a thread's process and thread ids (as locks, queues' streams
//! and deadlock slots record their holders), packed into one word where one atomic must
//! hold them, and whether a process still lives (so that what a dead holder held can be
//! taken over or freed).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Once;

/// Counts the forks this process came out of: the fork server forks workers from its
/// main thread, which may have looked up its ids before, so a cached pair is only good
/// for the generation it was taken in.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static COUNT_FORKS: Once = Once::new();

extern "C" fn count_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Relaxed);
}

thread_local! {
    /// (fork generation, pid, tid) of this thread, looked up once per generation.
    static IDS: Cell<(u64, i32, i32)> = const { Cell::new((u64::MAX, 0, 0)) };
}

/// How many forks this process came out of since it started counting (a value cached
/// by a thread of the parent is stale in the child when this differs).
pub fn fork_generation() -> u64 {
    COUNT_FORKS.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic, which is allowed in a
        // child between fork and exec.
        unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
    });
    FORK_GENERATION.load(Relaxed)
}

/// This thread's process and thread ids, as lock owners and waiters record them.
pub fn my_ids() -> (i32, i32) {
    let generation = fork_generation();
    IDS.with(|ids| {
        let (taken_in, pid, tid) = ids.get();
        if taken_in == generation {
            return (pid, tid);
        }
        // SAFETY: getpid and gettid cannot fail. gettid through syscall: glibc has its
        // wrapper only since 2.30, and the wheel is built for older ones (manylinux_2_28).
        let (pid, tid) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid) as i32) };
        ids.set((generation, pid, tid));
        (pid, tid)
    })
}

/// What /proc says about a process.
#[derive(Debug, PartialEq)]
pub enum Liveness {
    /// Running, started at this time (clock ticks after boot).
    Started(u64),
    /// Exited (or a zombie).
    Gone,
    /// /proc could not be read (out of file descriptors…): assume it runs.
    Unknown,
}

pub fn liveness(pid: i32) -> Liveness {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Liveness::Gone,
        Err(_) => return Liveness::Unknown,
    };
    let mut fields = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace();
    match fields.next() {
        // Field 3, the state.
        Some("Z" | "X") => Liveness::Gone,
        // Field 22, the start time.
        Some(_) => fields
            .nth(18)
            .and_then(|start| start.parse().ok())
            .map_or(Liveness::Unknown, Liveness::Started),
        None => Liveness::Unknown,
    }
}

/// True when process `pid` has exited (also when it is a zombie not yet reaped). When
/// /proc cannot be read, the process is taken to be running: whoever asks would otherwise
/// take its lock, drop its message or free its objects.
pub fn process_is_gone(pid: i32) -> bool {
    liveness(pid) == Liveness::Gone
}

/// A thread's (pid, tid) in one word, the process id in the high half: never 0 (a thread
/// id is never 0).
pub fn pack((pid, tid): (i32, i32)) -> u64 {
    (u64::from(pid as u32) << 32) | u64::from(tid as u32)
}

/// The (pid, tid) of a word made by [`pack`].
pub fn unpack(word: u64) -> (i32, i32) {
    ((word >> 32) as u32 as i32, word as u32 as i32)
}
