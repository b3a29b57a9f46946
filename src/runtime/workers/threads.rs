//! Script threads: `spawn_thread(f, args…)` runs a function pointer on a new OS thread; the
//! returned `Thread` is joined for its result, like Python's `threading.Thread` but with the
//! return value (and a thrown error) coming back through `join()`.

use super::idle_threads::run_on_script_thread;
use crate::runtime::actors::{
    os_thread_id, set_label, CurrentThread, Worker, CURRENT, EPOCH, THREAD_COUNTER,
};
use crate::runtime::engines::engine_for;
use crate::runtime::failures::{describe_error, joined, report_uncaught, thrown_value, Failure};
use crate::runtime::running;
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use crate::runtime::sink::{self, OutputSink};
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr, NativeCallContext};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

struct ThreadState {
    name: String,
    /// The N of `Thread-N`.
    number: u64,
    /// A daemon thread is not waited for at the end of a script.
    daemon: bool,
    os_id: AtomicI64,
    /// `None` while running; then the return value or how the thread failed.
    outcome: Mutex<Option<Result<Dynamic, Failure>>>,
    finished: Condvar,
}

/// A script thread started by `spawn_thread`.
#[derive(Clone)]
pub struct ThreadHandle(Arc<ThreadState>);

impl ThreadHandle {
    pub(crate) fn outcome(&self) -> Option<Result<Dynamic, Failure>> {
        self.0
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The thread as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Thread, Arc::as_ptr(&self.0) as u64, self.0.number)
    }

    /// Waits for the thread; an error when interrupted (an interrupt wins over a result,
    /// as KeyboardInterrupt does in Python).
    pub(crate) fn wait(&self) -> Result<Result<Dynamic, Failure>, Box<EvalAltResult>> {
        self.wait_until(None)?
            .ok_or_else(|| "join: the thread did not finish".into())
    }

    /// [`ThreadHandle::wait`] at most until `until`: `None` if the thread is still running.
    pub(crate) fn wait_until(
        &self,
        until: Option<std::time::Instant>,
    ) -> Result<Option<Result<Dynamic, Failure>>, Box<EvalAltResult>> {
        // Whoever waits for good can do nothing else until the thread ends (see
        // `running::others_may_run`).
        let _joining = until.is_none().then(|| running::joining(self));
        sched::wait_for_state(
            || Op::new(Action::Join, self.object(), None),
            until,
            Order::InterruptFirst,
            &self.0.outcome,
            &self.0.finished,
            Option::clone,
            |_| self.0.name.clone(),
        )
    }

    fn finish(&self, outcome: Result<Dynamic, Failure>) {
        *self.0.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        self.0.finished.notify_all();
        running::finished(self);
    }

    /// Whether both handles are of the same thread.
    pub(crate) fn is(&self, other: &ThreadHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The thread's OS thread id, once it has started.
    pub(crate) fn os_id(&self) -> Option<i32> {
        match self.0.os_id.load(Ordering::Acquire) {
            0 => None,
            tid => Some(tid as i32),
        }
    }

    /// The thread's name, like `Thread-1 (work)`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn is_daemon(&self) -> bool {
        self.0.daemon
    }

    /// Waits until the thread has finished; `false` when interrupted first.
    pub fn wait_finished(&self) -> bool {
        self.wait().is_ok()
    }
}

/// Script threads started by this process that are still running, oldest first: what the
/// end of a script waits for, and what an interrupt stops.
pub use crate::runtime::running::unfinished;

/// Handles to runtime objects are shared by reference between threads; inside a closure's
/// captured variable they sit behind Rhai's own lock, which a blocking call would hold.
/// Copy them out of that slot so each thread uses the object directly.
pub(crate) fn detach(value: &Dynamic) -> Dynamic {
    if value.is_shared() {
        let inner = value.flatten_clone();
        if crate::runtime::is_handle(&inner) {
            return inner;
        }
        value.clone()
    } else {
        value.clone()
    }
}

/// Starts `f(args…)` on a new OS thread carrying the caller's output sink, as a worker
/// called `noun-N` (a thread, or inside `explore` the thread that plays a process). A
/// thread started by a daemon thread is a daemon too (Python's rule).
pub(crate) fn spawn(
    ctx: &NativeCallContext,
    f: FnPtr,
    args: Vec<Dynamic>,
    daemon: bool,
    worker: Worker,
) -> Result<ThreadHandle, Box<EvalAltResult>> {
    let named_after = worker.named_after.unwrap_or_else(|| f.clone());
    let mut f = f;
    for value in f.iter_curry_mut() {
        *value = detach(value);
    }
    let args: Vec<Dynamic> = args
        .iter()
        .map(|a| {
            if a.is_shared() {
                a.flatten_clone()
            } else {
                a.clone()
            }
        })
        .collect();
    let named = args.clone();
    start(ctx, worker.noun, &named_after, daemon, &named, move |ctx| {
        f.call_within_context::<Dynamic>(ctx, args)
    })
}

/// Starts `body` on a new OS thread carrying the caller's output sink, as a worker called
/// `noun-N` after the function `named_after` (a pool task that the explorer plays runs
/// native code of its own around the task's calls). `args` are what that function is
/// called with: they name the objects it uses in the explorer's traces.
pub(crate) fn start(
    ctx: &NativeCallContext,
    noun: &'static str,
    named_after: &FnPtr,
    daemon: bool,
    args: &[Dynamic],
    body: impl FnOnce(&NativeCallContext) -> Result<Dynamic, Box<EvalAltResult>> + Send + 'static,
) -> Result<ThreadHandle, Box<EvalAltResult>> {
    let daemon = daemon || CURRENT.with(|c| c.borrow().as_ref().is_some_and(|t| t.daemon));
    let engine = engine_for(ctx)?;
    let label = if named_after.is_anonymous() {
        "closure".to_string()
    } else {
        named_after.fn_name().to_string()
    };
    sched::announce(
        || Op::new(Action::Spawn, Object::new(Kind::Thread, 0, 0), Some(ctx)),
        || label.clone(),
    )?;
    // Under the schedule explorer the new thread is one more worker it runs, numbered by
    // the explorer so that every rerun names it alike.
    let controlled = sched::controller().map(|c| c.spawn(named_after, args, ctx, noun));
    let number = match &controlled {
        Some((_, number)) => *number,
        None => THREAD_COUNTER.fetch_add(1, Ordering::Relaxed) + 1,
    };
    let name = if named_after.is_anonymous() {
        format!("{noun}-{number}")
    } else {
        format!("{noun}-{number} ({})", named_after.fn_name())
    };
    // The stored call context carries the calling script's function library, so the
    // thread can call script functions and closures (Rhai marks this API as volatile).
    #[allow(deprecated)]
    let store = ctx.store_data();
    let sink: Option<Arc<dyn OutputSink>> = sink::current();
    let handle = ThreadHandle(Arc::new(ThreadState {
        name: name.clone(),
        number,
        daemon,
        os_id: AtomicI64::new(0),
        outcome: Mutex::new(None),
        finished: Condvar::new(),
    }));
    let thread_handle = handle.clone();
    // The new thread sees what its starter did so far.
    sched::hand_over(handle.object());
    let controller = controlled.as_ref().map(|(c, _)| c.clone());
    // An interrupt that stops the starter stops this thread too, however late it looks.
    let interrupt_baseline = crate::runtime::interrupt::baseline();
    let body = move || {
        let _interruptible = crate::runtime::interrupt::inherit(interrupt_baseline);
        let _controlled = match &controller {
            Some(controller) => Some(sched::control(controller.clone())),
            // This thread may have run an explorer's worker before, on one CPU.
            None => {
                sched::keep_on(None);
                None
            }
        };
        sched::begin(thread_handle.object(), &thread_handle.0.name);
        let tid = os_thread_id();
        thread_handle.0.os_id.store(tid, Ordering::Release);
        set_label(tid as i32, Some(thread_handle.0.name.clone()));
        EPOCH.with(|e| e.set(e.get() + 1));
        CURRENT.with(|c| {
            *c.borrow_mut() = Some(CurrentThread {
                name: thread_handle.0.name.clone(),
                daemon: thread_handle.0.daemon,
            })
        });
        // This OS thread may run other script threads later.
        struct ForgetName;
        impl Drop for ForgetName {
            fn drop(&mut self) {
                CURRENT.with(|c| c.borrow_mut().take());
            }
        }
        let _forget_name = ForgetName;
        let started = std::time::Instant::now();
        let run = || {
            #[allow(deprecated)]
            let ctx = store.create_context(&engine);
            body(&ctx)
        };
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match sink.clone() {
                Some(sink) => sink::with_sink(sink, run),
                None => run(),
            }));
        crate::runtime::sched::leaving();
        crate::runtime::sched::worked("thread", started, || (thread_handle.0.name.clone(), label));
        set_label(tid as i32, None);
        let outcome = match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) if matches!(*err, EvalAltResult::ErrorTerminated(..)) => {
                Err(Failure::Interrupted)
            }
            Ok(Err(err)) => Err(match thrown_value(&err) {
                Some(value) => Failure::Thrown(value, describe_error(&err)),
                None => Failure::Error(describe_error(&err)),
            }),
            Err(_) => Err(Failure::Error(
                "the thread panicked in a native function".into(),
            )),
        };
        // Reported now, as Python does, because nobody may ever join this thread; before
        // `finish`, so that whoever waits for the thread sees the report first.
        // (Not under the explorer: its reruns would repeat the report; it shows outcomes.)
        if let (Err(Failure::Error(message) | Failure::Thrown(_, message)), None) =
            (&outcome, &controller)
        {
            report_uncaught(
                sink.as_ref(),
                &format!("thread {}", thread_handle.0.name),
                message,
            );
        }
        // Whoever joins the thread sees what it did.
        sched::hand_over(thread_handle.object());
        thread_handle.finish(outcome);
        if let Some(controller) = &controller {
            controller.finished(thread_handle.object());
        }
    };
    running::started(&handle);
    if let Err(e) = run_on_script_thread(Box::new(body)) {
        handle.finish(Err(Failure::Error("it could not be started".into())));
        return Err(format!("spawn_thread: cannot start a thread: {e}").into());
    }
    if let Some((controller, _)) = controlled {
        controller.started()?;
    }
    Ok(handle)
}

#[export_module]
pub mod thread_api {
    use super::*;

    /// A script thread started with `spawn_thread`.
    pub type Thread = ThreadHandle;

    /// Waits for the thread to finish and returns what its function returned.
    ///
    /// If the function threw an error (already printed on stderr when it happened),
    /// `join()` throws an error naming the thread and carrying the original message; if
    /// an interrupt stopped the thread, it throws an error saying so. Joining again
    /// returns the same result. Interruptible.
    #[rhai_fn(return_raw, pure)]
    pub fn join(thread: &mut ThreadHandle) -> Result<Dynamic, Box<EvalAltResult>> {
        let thread = thread.clone();
        joined(&format!("thread '{}'", thread.0.name), thread.wait()?)
    }

    /// Waits at most `timeout` seconds (int or float) for the thread. If it finished,
    /// the same as `join()`; if not, returns `()` and the thread runs on: as in Python,
    /// `is_alive` tells which.
    ///
    /// ```rhai
    /// t.join(0.5);
    /// if t.is_alive { print("still working"); }
    /// ```
    #[rhai_fn(name = "join", return_raw, pure)]
    pub fn join_timeout(
        thread: &mut ThreadHandle,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let thread = thread.clone();
        let until = crate::runtime::time::deadline(&timeout, "join")?;
        match thread.wait_until(until)? {
            Some(ended) => joined(&format!("thread '{}'", thread.0.name), ended),
            None => Ok(Dynamic::UNIT),
        }
    }

    /// `true` until the thread's function has returned (or thrown).
    #[rhai_fn(get = "is_alive", pure)]
    pub fn is_alive(thread: &mut ThreadHandle) -> bool {
        sched::look(|| thread.object());
        thread.outcome().is_none()
    }

    /// The thread's name, like `Thread-1 (work)`.
    #[rhai_fn(get = "name", pure)]
    pub fn name(thread: &mut ThreadHandle) -> String {
        thread.0.name.clone()
    }

    /// `true` for a thread started with `spawn_daemon_thread` (or by a daemon thread): the
    /// end of a script does not wait for it.
    #[rhai_fn(get = "daemon", pure)]
    pub fn daemon(thread: &mut ThreadHandle) -> bool {
        thread.0.daemon
    }

    /// The operating system's id of the thread (as `thread_id()` returns inside it).
    #[rhai_fn(get = "id", pure)]
    pub fn id(thread: &mut ThreadHandle) -> i64 {
        loop {
            let id = thread.0.os_id.load(Ordering::Acquire);
            if id != 0 {
                return id;
            }
            std::thread::yield_now();
        }
    }

    /// Shows a thread as `<Thread Thread-1 (work), running>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(thread: &mut ThreadHandle) -> String {
        let state = match thread.outcome() {
            None => "running",
            Some(Ok(_)) => "finished",
            Some(Err(Failure::Interrupted)) => "interrupted",
            Some(Err(Failure::Error(_) | Failure::Thrown(..))) => "failed",
        };
        format!("<Thread {}, {state}>", thread.0.name)
    }

    /// The operating system's id of the calling thread (Python's `threading.get_native_id()`).
    pub fn thread_id() -> i64 {
        os_thread_id()
    }

    /// The name of the calling worker: `Thread-N (f)` inside a thread started with
    /// `spawn_thread`, `Process-N (f)` in a process's own code, `pool worker 1234` in a
    /// process pool's task, `pool-thread-N` in a thread pool's, and `MainThread` for the
    /// cell (or script) itself.
    pub fn thread_name() -> String {
        crate::runtime::actors::worker_name()
    }
}
