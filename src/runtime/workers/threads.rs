//! Script threads: `spawn_thread(f, args…)` runs a function pointer on a new OS thread; the
//! returned `Thread` is joined for its result, like Python's `threading.Thread` but with the
//! return value (and a thrown error) coming back through `join()`.

use crate::runtime::running;
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use crate::runtime::sink::{self, OutputSink};
use crate::runtime::SCRIPT_STACK_SIZE;
use rhai::plugin::*;
use rhai::{Dynamic, Engine, FnPtr, NativeCallContext};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration;
use std::time::Instant;

static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();

/// Provides the engine that script threads run on (configured like the session's; the
/// first call wins).
pub fn install_engine(factory: impl FnOnce() -> Engine) {
    ENGINE.get_or_init(|| Arc::new(factory()));
}

/// While set, script threads start on this engine instead: the session's engine with a
/// debugger, so that breakpoints stop threads too.
static TRACED_ENGINE: RwLock<Option<Arc<Engine>>> = RwLock::new(None);

/// Sets (or, with `None`, clears) the engine script threads start on while debugging.
pub fn set_traced_engine(engine: Option<Arc<Engine>>) {
    *TRACED_ENGINE.write().unwrap_or_else(|e| e.into_inner()) = engine;
}

/// The name a script knows a value's type by (`Thread`, not the Rust type's path).
pub fn script_type_name(value: &rhai::Dynamic) -> String {
    script_engine()
        .map(|engine| engine.map_type_name(value.type_name()).to_string())
        .unwrap_or_else(|_| value.type_name().to_string())
}

pub fn script_engine() -> Result<Arc<Engine>, Box<EvalAltResult>> {
    if let Some(engine) = TRACED_ENGINE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        return Ok(engine.clone());
    }
    ENGINE
        .get()
        .cloned()
        .ok_or_else(|| "script threads are not available in this host".into())
}

/// The engine a thread started by `ctx`'s caller runs on. The traced engine only for a
/// caller that runs on it: Rhai's script calls on an engine with a debugger expect one in
/// the caller's global state, which a caller on another engine (the debugger's `evaluate`,
/// or a thread started before debugging began) does not have, and Rhai panicked.
fn engine_for(ctx: &NativeCallContext) -> Result<Arc<Engine>, Box<EvalAltResult>> {
    let traced = TRACED_ENGINE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match traced {
        Some(engine) if !std::ptr::eq(ctx.engine(), Arc::as_ptr(&engine)) => ENGINE
            .get()
            .cloned()
            .ok_or_else(|| "script threads are not available in this host".into()),
        _ => script_engine(),
    }
}

/// What a script thread knows about itself (for `thread_name()` and `Thread.name`).
#[derive(Clone)]
struct CurrentThread {
    name: String,
    /// Threads it starts are daemons too, as in Python.
    daemon: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<CurrentThread>> = const { RefCell::new(None) };
    /// Counts the script threads this OS thread has started to run.
    static EPOCH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Changes whenever the OS thread it is called on starts running another script thread
/// (OS threads are reused): a cheap way to tell that the script thread changed.
pub fn script_thread_epoch() -> u64 {
    EPOCH.with(|e| e.get())
}

static THREAD_COUNTER: AtomicU64 = AtomicU64::new(0);

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

fn set_label(tid: i32, name: Option<String>) {
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashMap::new);
    match name {
        Some(name) => names.insert(tid, name),
        None => names.remove(&tid),
    };
}

/// The operating system's id of the calling thread.
fn os_thread_id() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail. Through syscall, as glibc
    // before 2.30 (the wheel's manylinux_2_28) has no wrapper.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

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

/// Why a thread's function did not return a value.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    /// The function threw; the message and where.
    Error(String),
    /// The function threw a value that is not a string (`throw #{ code: 42 }`): `join`
    /// throws that value; the text is what the report says.
    Thrown(Dynamic, String),
    /// The user interrupted the program while the thread ran.
    Interrupted,
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
fn detach(value: &Dynamic) -> Dynamic {
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

/// The value a script threw, when it is not a string (`throw #{ code: 42 }`): what
/// `join` throws again, so that `catch (e)` gets it as it was.
pub fn thrown_value(err: &EvalAltResult) -> Option<Dynamic> {
    let mut err = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = err {
        err = inner;
    }
    match err {
        EvalAltResult::ErrorRuntime(value, _) if !value.is_string() && !value.is_unit() => {
            Some(value.clone())
        }
        _ => None,
    }
}

/// The original error of a failed thread: the innermost message and where it happened.
pub fn describe_error(err: &EvalAltResult) -> String {
    let mut err = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = err {
        err = inner;
    }
    let pos = err.position();
    let message = match err {
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => {
            value.clone().into_string().unwrap_or_default()
        }
        other => {
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(at) if text.ends_with(')') => text[..at].to_string(),
                _ => text,
            }
        }
    };
    match (pos.line(), pos.position()) {
        (Some(line), Some(column)) => format!("{message} (line {line}, column {column})"),
        (Some(line), None) => format!("{message} (line {line})"),
        _ => message,
    }
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
    let body = move || {
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

/// Writes the report of an error nobody has caught yet, like Python's "Exception in
/// thread …", on the stderr of the cell (or script) that started the worker.
pub fn report_uncaught(sink: Option<&Arc<dyn OutputSink>>, worker: &str, message: &str) {
    let text = format!("Exception in {worker}: {message}\n");
    match sink {
        Some(sink) => sink.write(sink::Stream::Stderr, &text),
        None => sink::write(sink::Stream::Stderr, &text),
    }
}

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
fn run_on_script_thread(job: Job) -> std::io::Result<()> {
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

/// What `join` gives for a thread that ended.
fn joined(
    thread: &ThreadHandle,
    ended: Result<Dynamic, Failure>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    match ended {
        Ok(value) => Ok(value),
        // Interrupted earlier (the cell that was interrupted is over): a catchable error.
        Err(Failure::Interrupted) => {
            Err(format!("thread '{}' was interrupted", thread.0.name).into())
        }
        Err(Failure::Error(message)) => {
            Err(format!("thread '{}' failed: {message}", thread.0.name).into())
        }
        // What it threw, as it threw it.
        Err(Failure::Thrown(value, _)) => {
            Err(EvalAltResult::ErrorRuntime(value, rhai::Position::NONE).into())
        }
    }
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
        joined(&thread, thread.wait()?)
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
            Some(ended) => joined(&thread, ended),
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
        super::worker_name()
    }
}
