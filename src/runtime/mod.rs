//! The Rhai package of native functions and the process-wide services they rely on (the
//! output sink, the interrupt flag, time, display, input and help), with the runtime's
//! three ideas in their own folders: `shared` objects, the `workers` that share them, and
//! the tools that `observe` them.
//!
//! Nothing in this module knows about Jupyter: output leaves through [`sink::OutputSink`],
//! which the kernel implements with IOPub and the command-line host with stdout/stderr.

pub mod cgroup;
pub mod display;
pub mod docs;
pub mod interrupt;
pub mod io;
pub mod observe;
pub mod panel;
pub mod sched;
pub mod shared;
pub mod sink;
pub mod sockets;
pub mod time;
pub mod workers;

// The modules by their short names, as the rest of the crate uses them.
pub use observe::{explorer, gil, races, scaling, timeline};
pub use shared::{
    deadlock, guard, holders, lifetime, locks, queues, ring, self_wait, shm, sync, transfer, values,
};
pub use workers::{
    fork_server, globals, launch, pools, processes, protocol, random, running, shutdown, spawners,
    threads, timers, worker_process,
};

use rhai::def_package;

def_package! {
    /// The natives this product adds to Rhai's standard library (registered after it, so
    /// its `sleep` replaces the built-in one).
    pub RuntimePackage(module) {
        install_observers();
        rhai::combine_with_exported_module!(module, "time", time::time_api);
        rhai::combine_with_exported_module!(module, "display", display::display_api);
        rhai::combine_with_exported_module!(module, "io", io::io_api);
        rhai::combine_with_exported_module!(module, "random", random::random_api);
        rhai::combine_with_exported_module!(module, "docs", docs::docs_api);
        rhai::combine_with_exported_module!(module, "threads", threads::thread_api);
        spawners::register_spawn_thread(module);
        rhai::combine_with_exported_module!(module, "timers", timers::timer_api);
        timers::register_timer(module);
        rhai::combine_with_exported_module!(module, "locks", locks::lock_api);
        rhai::combine_with_exported_module!(module, "guards", guard::guard_api);
        rhai::combine_with_exported_module!(module, "values", values::value_api);
        rhai::combine_with_exported_module!(module, "sync", sync::sync_api);
        rhai::combine_with_exported_module!(module, "queues", queues::queue_api);
        rhai::combine_with_exported_module!(module, "sockets", sockets::socket_api);
        rhai::combine_with_exported_module!(module, "memory", lifetime::memory_api);
        rhai::combine_with_exported_module!(module, "pools", pools::pool_api);
        rhai::combine_with_exported_module!(module, "futures", pools::future_api);
        pools::register_iterators(module);
        rhai::combine_with_exported_module!(module, "gil", gil::gil_api);
        rhai::combine_with_exported_module!(module, "timeline", timeline::timeline_api);
        rhai::combine_with_exported_module!(module, "scaling", scaling::scaling_api);
        rhai::combine_with_exported_module!(module, "explorer", explorer::explorer_api);
        rhai::combine_with_exported_module!(module, "prove", explorer::prove_api);
        rhai::combine_with_exported_module!(module, "races", races::races_api);
        pools::register_submit(module);
        rhai::combine_with_exported_module!(module, "processes", processes::process_api);
        spawners::register_spawn_process(module);
    }
}

/// Connects the tools that are always there, the GIL and `timeline`, to the scheduling
/// point that every primitive goes through.
fn install_observers() {
    sched::install(sched::Hooks {
        waiting: gil::release_for_wait,
        leaving: gil::leave,
        sleeping: gil::sleeping,
        recording: timeline::recording,
        record: timeline::record,
    });
}

/// The number of CPUs this process may use (affinity and cgroup quota), found once: the
/// lookup reads cgroup files, tens of microseconds, too slow for a call in a loop.
pub fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Stack size for threads that run script code (virtual memory; pages are touched lazily).
pub const SCRIPT_STACK_SIZE: usize = 1 << 30;

/// Whether a value is a handle to a runtime object (thread, lock, shared value, guard, …):
/// such handles are shared by reference between threads and processes. One look at the
/// value's type (asking `is::<T>()` of each type would ask the value each time).
pub fn is_handle(value: &rhai::Dynamic) -> bool {
    use std::any::TypeId;
    let handles = [
        TypeId::of::<threads::ThreadHandle>(),
        TypeId::of::<locks::Lock>(),
        TypeId::of::<locks::RLock>(),
        TypeId::of::<guard::Guard>(),
        TypeId::of::<values::SharedValue>(),
        TypeId::of::<values::SharedArray>(),
        TypeId::of::<processes::ProcessHandle>(),
        TypeId::of::<sync::Semaphore>(),
        TypeId::of::<sync::Event>(),
        TypeId::of::<sync::Condition>(),
        TypeId::of::<sync::Barrier>(),
        TypeId::of::<queues::Queue>(),
        TypeId::of::<queues::Conn>(),
        TypeId::of::<sockets::Listener>(),
        TypeId::of::<sockets::Socket>(),
        TypeId::of::<pools::Pool>(),
        TypeId::of::<pools::Future>(),
    ];
    handles.contains(&value.type_id())
}

/// The error message scripts see when the user interrupts them.
pub const INTERRUPTED: &str = "Interrupted";

/// The error a blocking native returns when an interrupt arrives while it waits.
pub fn interrupted_error() -> Box<rhai::EvalAltResult> {
    rhai::EvalAltResult::ErrorTerminated(INTERRUPTED.into(), rhai::Position::NONE).into()
}
