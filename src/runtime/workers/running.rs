//! Which script threads of this process have not finished, and which of them (or the thread
//! running the script or cell) wait without a timeout to join one that has not finished
//! either: what the end of a script waits for, and who could still act (release a lock
//! another thread asks for, see `self_wait`).

use crate::runtime::actors::current_thread_name;
use crate::runtime::holders::my_ids;
use crate::runtime::threads::ThreadHandle;
use std::sync::Mutex;

/// Who runs script code in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runner {
    /// The thread running the script, a cell, or a worker's job.
    Main,
    /// A thread started with `spawn_thread` (or a timer), by its OS thread id.
    Thread(i32),
    /// A pool's thread: its task is counted by the pool (`pools::work_pending`).
    Pool,
}

fn me() -> Runner {
    if current_thread_name().is_some() {
        return Runner::Thread(my_ids().1);
    }
    match std::thread::current().name() {
        Some(name) if name.starts_with("pool-thread-") => Runner::Pool,
        _ => Runner::Main,
    }
}

/// The threads not finished and the joins under way, under one lock, so that one look sees
/// them as they were at one moment.
struct Registry {
    unfinished: Vec<ThreadHandle>,
    /// A runner waiting (without a timeout) for a thread to finish.
    joins: Vec<(Runner, ThreadHandle)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    unfinished: Vec::new(),
    joins: Vec::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a thread that is starting.
pub(crate) fn started(thread: &ThreadHandle) {
    registry().unfinished.push(thread.clone());
}

/// Records that a thread has finished (its outcome is set).
pub(crate) fn finished(thread: &ThreadHandle) {
    registry().unfinished.retain(|t| !t.is(thread));
}

/// Script threads started by this process that are still running, oldest first.
pub fn unfinished() -> Vec<ThreadHandle> {
    registry().unfinished.clone()
}

/// The caller's wait, without a timeout, for `thread` to finish; it ends when dropped.
pub(crate) struct Joining {
    runner: Runner,
    thread: ThreadHandle,
}

pub(crate) fn joining(thread: &ThreadHandle) -> Joining {
    let runner = me();
    registry().joins.push((runner, thread.clone()));
    Joining {
        runner,
        thread: thread.clone(),
    }
}

impl Drop for Joining {
    fn drop(&mut self) {
        let mut registry = registry();
        let joins = &mut registry.joins;
        if let Some(at) = joins
            .iter()
            .position(|(runner, thread)| *runner == self.runner && thread.is(&self.thread))
        {
            joins.remove(at);
        }
    }
}

/// Whether a script thread of this process other than the caller may still run: one that
/// has not finished, or the thread running the script or cell (in the kernel, the next
/// cell), unless it waits without a timeout to join a thread that has not finished. Such a
/// join ends only when that thread does, and that thread counts itself (or is the caller,
/// or waits in turn), so whoever waits so can do nothing before the caller goes on.
pub fn others_may_run() -> bool {
    let me = me();
    let registry = registry();
    let is_unfinished = |thread: &ThreadHandle| registry.unfinished.iter().any(|t| t.is(thread));
    let blocked = |runner: Runner| {
        registry
            .joins
            .iter()
            .any(|(joiner, thread)| *joiner == runner && is_unfinished(thread))
    };
    if me != Runner::Main && !blocked(Runner::Main) {
        return true;
    }
    registry.unfinished.iter().any(|thread| {
        // Not started yet: it will run.
        let Some(tid) = thread.os_id() else {
            return true;
        };
        let runner = Runner::Thread(tid);
        runner != me && !blocked(runner)
    })
}
