//! A thread asking for a plain lock it holds itself. Any thread or process may release a
//! plain lock (as in Python, where a `Lock` may serve as a binary semaphore), so this is a
//! wait for that release, like any other; it is a deadlock only when nobody else could
//! ever release the lock, and only then reported.

use crate::runtime::actors;
use crate::runtime::holders::my_ids;
use crate::runtime::lifetime::references;
use crate::runtime::locks::LockRef;
use crate::runtime::{launch, pools, running};

/// The report for the calling thread, which holds `lock` and waits for it, if nobody else
/// could release it. A release takes no monitor (see `locks`), so one may come while this
/// looks: whoever made it was still there to be counted before it, or else it is over and
/// the lock is seen released after the look, which is no deadlock. Takes no lock's
/// monitor.
pub fn deadlock(lock: LockRef) -> Option<String> {
    let (pid, tid) = my_ids();
    if others_could_release(lock) || lock.owner() != Some((pid, tid)) {
        return None;
    }
    Some(format!(
        "deadlock detected: {} waits for {} which it already holds, and no other thread or process could release it (a re-entrant rlock() lets its holder acquire it again)",
        actors::thread_label(pid, tid),
        lock.name()
    ))
}

/// Whether someone other than the caller may still release `lock`:
/// - another reference to it exists: another process holds it, or a message carries it
///   (a handle this process received separately, or a condition made with the lock,
///   counts too, which only makes this answer yes more often);
/// - a child process is busy: a job sent to it holds no reference of its own;
/// - a pool task is queued or running in this process;
/// - another script thread of this process may still run (see `running`).
fn others_could_release(lock: LockRef) -> bool {
    references(lock.offset) > 1
        || launch::any_busy_child()
        || pools::work_pending()
        || running::others_may_run()
}
