//! What workers are called: the name of the script thread running on an OS thread
//! (`Thread-1 (work)`), of the calling worker whatever it is (a thread, a process, a pool
//! thread, `MainThread`), and the labels by OS thread id that messages about other threads
//! use.

use rhai::FnPtr;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// What a script thread knows about itself (for `thread_name()` and `Thread.name`).
#[derive(Clone)]
pub(crate) struct CurrentThread {
    pub(crate) name: String,
    /// Threads it starts are daemons too, as in Python.
    pub(crate) daemon: bool,
}

thread_local! {
    pub(crate) static CURRENT: RefCell<Option<CurrentThread>> = const { RefCell::new(None) };
    /// Counts the script threads this OS thread has started to run.
    pub(crate) static EPOCH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Changes whenever the OS thread it is called on starts running another script thread
/// (OS threads are reused): a cheap way to tell that the script thread changed.
pub fn script_thread_epoch() -> u64 {
    EPOCH.with(|e| e.get())
}

pub(crate) static THREAD_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Names of the running script threads of this process, by OS thread id.
static NAMES: Mutex<Option<HashMap<i32, String>>> = Mutex::new(None);

/// How a thread is called in messages: its `Thread-N` name, or `MainThread` for the
/// thread running the cell (or script) itself.
pub fn thread_label(_pid: i32, tid: i32) -> String {
    NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|names| names.get(&tid).cloned())
        .unwrap_or_else(|| "MainThread".to_string())
}

pub(crate) fn set_label(tid: i32, name: Option<String>) {
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashMap::new);
    match name {
        Some(name) => names.insert(tid, name),
        None => names.remove(&tid),
    };
}

/// The operating system's id of the calling thread.
pub(crate) fn os_thread_id() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail. Through syscall, as glibc
    // before 2.30 (the wheel's manylinux_2_28) has no wrapper.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// The name of the script thread running on the calling OS thread (`Thread-1 (work)`),
/// `None` for the cell or script itself and threads that run no script thread.
pub fn current_thread_name() -> Option<String> {
    CURRENT.with(|c| c.borrow().as_ref().map(|t| t.name.clone()))
}

/// What kind of worker a new thread is: `noun` names it (`Thread-1`, `Process-1` for
/// the thread that plays a process inside `explore`, `Timer-1`), after the function
/// `named_after` (`f` itself when `None`).
pub(crate) struct Worker {
    pub noun: &'static str,
    pub named_after: Option<FnPtr>,
}

impl Worker {
    pub(crate) fn called(noun: &'static str) -> Worker {
        Worker {
            noun,
            named_after: None,
        }
    }
}

/// What the calling worker is called (see `thread_name()`).
pub fn worker_name() -> String {
    if let Some(thread) = current_thread_name() {
        return thread;
    }
    if let Some(process) = crate::runtime::launch::process_label() {
        return process;
    }
    match std::thread::current().name() {
        Some(pool) if pool.starts_with("pool-thread-") => pool.to_string(),
        _ => "MainThread".to_string(),
    }
}
