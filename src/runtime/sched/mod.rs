//! The one scheduling point. Every shared operation — a read or write of a shared value,
//! a lock's acquire and release, a queue's put and get, a spawn, a join, a sleep — is
//! announced here, and so is every blocking wait ([`wait`]). The tools that watch or
//! steer concurrency observe through it: the GIL and `timeline` through [`Hooks`], the
//! race detector as an [`Observer`], the schedule explorer as the [`Controller`] of the
//! threads it runs. With nobody watching, an announcement costs one relaxed load.
//!
//! This module imports nothing from the shared objects, the workers or the observers:
//! they all depend on it, never the other way round.

mod affinity;
mod count;
mod wait;

pub use affinity::{cpu_now, keep_on};
pub use count::{permits, Part, Permits};
pub use wait::{wait, wait_for_state, Order, POLL};

use rhai::{EvalAltResult, FnPtr, NativeCallContext};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, RwLock};

/// What a worker does to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Write,
    /// An atomic read-modify-write (`add`).
    Update,
    Acquire,
    Release,
    Set,
    Clear,
    Wait,
    Notify,
    Put,
    Get,
    /// A queue's or pipe's `close`: waiters on it wake up and fail.
    Close,
    Spawn,
    Join,
    Sleep,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Update => "add",
            Action::Acquire => "acquire",
            Action::Release => "release",
            Action::Set => "set",
            Action::Clear => "clear",
            Action::Wait => "wait",
            Action::Notify => "notify",
            Action::Put => "put",
            Action::Get => "get",
            Action::Close => "close",
            Action::Spawn => "spawn",
            Action::Join => "join",
            Action::Sleep => "sleep",
        }
    }

    /// Whether the action reads or writes data (as opposed to synchronising).
    pub fn is_access(self) -> bool {
        matches!(self, Action::Read | Action::Write | Action::Update)
    }
}

/// What kind of thing an operation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Value,
    Array,
    Lock,
    RLock,
    Semaphore,
    Event,
    Condition,
    Barrier,
    Queue,
    Pipe,
    Thread,
    Process,
    /// A pool task's result.
    Future,
    /// The results of pool tasks that the explorer plays (a map's, a future's): waits for
    /// them are the explorer's to schedule, unlike a [`Kind::Future`]'s.
    Results,
    /// A pool's workers, as tasks the explorer plays take and leave them.
    Pool,
    /// `sleep`: no object, only time.
    Clock,
}

impl Kind {
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Value => "value",
            Kind::Array => "array",
            Kind::Lock => "lock",
            Kind::RLock => "rlock",
            Kind::Semaphore => "semaphore",
            Kind::Event => "event",
            Kind::Condition => "condition",
            Kind::Barrier => "barrier",
            Kind::Queue => "queue",
            Kind::Pipe => "pipe",
            Kind::Thread => "thread",
            Kind::Process => "process",
            Kind::Future => "future",
            Kind::Results => "results",
            Kind::Pool => "pool",
            Kind::Clock => "clock",
        }
    }
}

/// An object as operations name it: its kind, an id that is unique while it lives (its
/// offset in shared memory, or its address for a thread), the element of a shared array,
/// and the serial number people see (`Lock-3`, `value#3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Object {
    pub kind: Kind,
    pub id: u64,
    pub slot: u64,
    pub serial: u64,
}

impl Object {
    pub fn new(kind: Kind, id: u64, serial: u64) -> Object {
        Object {
            kind,
            id,
            slot: 0,
            serial,
        }
    }

    pub fn element(self, slot: u64) -> Object {
        Object { slot, ..self }
    }

    /// `value#3`, `Lock-2`: how the object is called when no variable name is known.
    pub fn label(&self) -> String {
        match self.kind {
            Kind::Lock => format!("Lock-{}", self.serial),
            Kind::RLock => format!("RLock-{}", self.serial),
            Kind::Clock => "clock".into(),
            Kind::Thread => format!("Thread-{}", self.serial),
            kind => format!("{}#{}", kind.noun(), self.serial),
        }
    }
}

/// Where in the script an operation was called from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Site {
    pub source: Option<String>,
    pub line: usize,
    pub column: usize,
}

impl Site {
    pub fn of(ctx: &NativeCallContext) -> Site {
        let pos = ctx.call_position();
        Site {
            source: ctx.call_source().map(str::to_string),
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
        }
    }
}

/// One shared operation.
#[derive(Clone, Debug)]
pub struct Op {
    pub action: Action,
    pub object: Object,
    pub site: Site,
}

impl Op {
    pub fn new(action: Action, object: Object, ctx: Option<&NativeCallContext>) -> Op {
        Op {
            action,
            object,
            site: ctx.map(Site::of).unwrap_or_default(),
        }
    }
}

/// What an operation did, for traces: the value read or written, a thread's name…
pub type Detail<'a> = &'a dyn Fn() -> String;

/// A tool that watches operations of every thread of the process (the race detector).
pub trait Observer: Send + Sync {
    /// Just before `op` happens (a release publishes what its thread did before it).
    fn before(&self, op: &Op);
    /// Just after `op` happened (an acquire learns what the releaser did).
    fn after(&self, op: &Op, detail: Detail);
    /// What the calling worker did so far is there for whoever next takes `object` over:
    /// joins a thread, starts as it, takes a task's result (a release).
    fn hand_over(&self, object: Object);
    /// The calling worker learns what was handed over on `object` (an acquire).
    fn take_over(&self, object: Object);
    /// The calling thread starts running a new worker called `name`, which inherits what
    /// its starter handed over on `object`.
    fn begin(&self, object: Object, name: &str);
}

/// How a blocked wait under a [`Controller`] goes on.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// Something changed: look again.
    Retry,
    /// The controller let the time run out (a wait with a timeout).
    TimedOut,
}

/// A tool that decides when the threads it controls run (the schedule explorer): each of
/// them stops at every operation until it is its turn.
pub trait Controller: Send + Sync {
    /// Waits for this thread's turn to do `op`. An error abandons the operation (the
    /// schedule was given up, or the user interrupted).
    fn before(&self, op: &Op) -> Result<(), Box<EvalAltResult>>;
    /// `op` happened.
    fn after(&self, op: &Op, detail: Detail);
    /// Whether waits for objects of `kind` are the controller's to schedule (a worker it
    /// does not run, such as a process, is waited for as usual).
    fn controls(&self, kind: Kind) -> bool;
    /// `op` cannot go on yet: let others run, and come back when it may.
    fn blocked(&self, op: &Op, timed: bool) -> Result<Wake, Box<EvalAltResult>>;
    /// A thread this worker starts, running `function` (a `noun`: `Thread`, or `Process`
    /// for the thread that plays a process): the controller of the new worker, and its number (within the controller's run, so that reruns agree).
    /// `args` are its arguments and `ctx` the spawner's call context (the names of the
    /// function's parameters and captured variables name the objects it uses).
    fn spawn(
        &self,
        function: &FnPtr,
        args: &[rhai::Dynamic],
        ctx: &NativeCallContext,
        noun: &str,
    ) -> (Arc<dyn Controller>, u64);
    /// Called by the spawner on the new worker's controller once its thread is started:
    /// waits until that worker reaches its first operation (or ends), so that only one
    /// worker runs at a time.
    fn started(&self) -> Result<(), Box<EvalAltResult>>;
    /// The worker's code ended; `object` is what its joiners wait for.
    fn finished(&self, object: Object);
    /// The run the worker belongs to: a number new for every run, for what the runtime
    /// keeps per run (which of a pool's workers a run's tasks have used).
    fn run(&self) -> u64;
    /// The step under way looked at `object` without an operation of its own (see
    /// [`look`]), or `changed` it besides its own operation (see [`changed`]).
    fn touched(&self, object: Object, changed: bool);
    /// The step under way moved the permits of the semaphore `object` (see [`permits`]).
    fn permits(&self, object: Object, what: Permits);
    /// The one CPU its threads are kept on while under it, if any (see `affinity.rs`).
    fn cpu(&self) -> Option<usize>;
}

/// The process-wide hooks of the tools that are always there (the GIL, `timeline`),
/// installed once by the runtime package.
pub struct Hooks {
    /// At the start of every blocking wait.
    pub waiting: fn(),
    /// When a thread stops running script code (end of a cell, thread or task).
    pub leaving: fn(),
    /// A `sleep` begins (`true`) or ends (`false`).
    pub sleeping: fn(bool),
    /// Whether finished pieces of work are being recorded.
    pub recording: fn() -> bool,
    /// A worker finished a piece of work: (worker, label, kind, started).
    pub record: fn(String, String, &'static str, std::time::Instant),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the always-there hooks (the first call wins).
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// Called when a thread stops running script code.
pub fn leaving() {
    if let Some(hooks) = HOOKS.get() {
        (hooks.leaving)();
    }
}

/// Called when a blocking wait begins.
pub fn waiting() {
    if let Some(hooks) = HOOKS.get() {
        (hooks.waiting)();
    }
}

/// Counts a thread in `sleep` while the guard lives.
pub struct Sleeping(());

impl Sleeping {
    pub fn start() -> Sleeping {
        if let Some(hooks) = HOOKS.get() {
            (hooks.sleeping)(true);
        }
        Sleeping(())
    }
}

impl Drop for Sleeping {
    fn drop(&mut self) {
        if let Some(hooks) = HOOKS.get() {
            (hooks.sleeping)(false);
        }
    }
}

/// A worker finished a piece of work that began at `started` (for `timeline`);
/// `names` gives the worker's name and the work's label, asked only when recording.
pub fn worked(
    kind: &'static str,
    started: std::time::Instant,
    names: impl FnOnce() -> (String, String),
) {
    if let Some(hooks) = HOOKS.get() {
        if (hooks.recording)() {
            let (worker, label) = names();
            (hooks.record)(worker, label, kind, started);
        }
    }
}

/// How many observers and controlled threads there are: zero on the fast path.
static WATCHING: AtomicUsize = AtomicUsize::new(0);
static OBSERVERS: RwLock<Vec<Arc<dyn Observer>>> = RwLock::new(Vec::new());

thread_local! {
    static CONTROLLER: RefCell<Option<Arc<dyn Controller>>> = const { RefCell::new(None) };
}

/// Whether anybody watches operations (one relaxed load).
#[inline(always)]
pub fn watching() -> bool {
    WATCHING.load(Relaxed) != 0
}

/// Adds an observer of every thread's operations until the returned guard is dropped.
pub fn observe(observer: Arc<dyn Observer>) -> Observing {
    OBSERVERS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(observer.clone());
    WATCHING.fetch_add(1, Relaxed);
    Observing(observer)
}

/// Keeps an observer registered.
pub struct Observing(Arc<dyn Observer>);

impl Drop for Observing {
    fn drop(&mut self) {
        let mut observers = OBSERVERS.write().unwrap_or_else(|e| e.into_inner());
        observers.retain(|o| !Arc::ptr_eq(o, &self.0));
        WATCHING.fetch_sub(1, Relaxed);
    }
}

/// Puts the calling thread under `controller` until the returned guard is dropped, and on
/// the controller's CPU, if it has one, until [`keep_on`] says otherwise.
pub fn control(controller: Arc<dyn Controller>) -> Controlled {
    keep_on(controller.cpu());
    let previous = CONTROLLER.with(|c| c.borrow_mut().replace(controller));
    WATCHING.fetch_add(1, Relaxed);
    Controlled(previous)
}

/// Keeps a thread under its controller.
pub struct Controlled(Option<Arc<dyn Controller>>);

impl Drop for Controlled {
    fn drop(&mut self) {
        let previous = self.0.take();
        CONTROLLER.with(|c| *c.borrow_mut() = previous);
        WATCHING.fetch_sub(1, Relaxed);
    }
}

/// The calling thread's controller, if it has one.
pub fn controller() -> Option<Arc<dyn Controller>> {
    if !watching() {
        return None;
    }
    CONTROLLER.with(|c| c.borrow().clone())
}

fn observers() -> Vec<Arc<dyn Observer>> {
    OBSERVERS.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs one shared operation: `run` does it, `detail` says what it did (only asked when
/// somebody watches). `op` is only built when somebody watches.
#[inline]
pub fn step<T>(
    op: impl FnOnce() -> Op,
    run: impl FnOnce() -> Result<T, Box<EvalAltResult>>,
    detail: impl Fn(&T) -> String,
) -> Result<T, Box<EvalAltResult>> {
    if !watching() {
        return run();
    }
    watched_step(op(), run, detail)
}

#[inline(never)]
fn watched_step<T>(
    op: Op,
    run: impl FnOnce() -> Result<T, Box<EvalAltResult>>,
    detail: impl Fn(&T) -> String,
) -> Result<T, Box<EvalAltResult>> {
    let controller = controller();
    if let Some(c) = &controller {
        c.before(&op)?;
    }
    let observers = observers();
    for o in &observers {
        o.before(&op);
    }
    let value = run()?;
    let describe = || detail(&value);
    for o in &observers {
        o.after(&op, &describe);
    }
    if let Some(c) = &controller {
        c.after(&op, &describe);
    }
    Ok(value)
}

/// Announces an operation whose effect is somewhere else (a spawn, whose child is then
/// started by the caller): waits for the turn, tells the observers it happened.
pub fn announce(
    op: impl FnOnce() -> Op,
    detail: impl Fn() -> String,
) -> Result<(), Box<EvalAltResult>> {
    step(op, || Ok(()), |_| detail())
}

/// A query that reads `object` without being a scheduling point (`is_set()`, `locked()`,
/// `len()`): the explorer counts it in the step under way, so that it knows the step
/// depends on whoever changes the object. With nobody watching, one relaxed load.
#[inline]
pub fn look(object: impl FnOnce() -> Object) {
    if let Some(controller) = controller() {
        controller.touched(object(), false);
    }
}

/// The operation under way also changed `object` (a task's result also tells whoever waits
/// for it in `as_completed`): whoever waits for `object` looks again, and the explorer
/// orders the step with the others that touch `object`.
pub fn changed(object: impl FnOnce() -> Object) {
    if let Some(controller) = controller() {
        controller.touched(object(), true);
    }
}

/// What the calling worker did so far is there for whoever next takes `object` over (a
/// thread's start or join, a process's, a pool task's start or result).
pub fn hand_over(object: Object) {
    if watching() {
        observers().iter().for_each(|o| o.hand_over(object));
    }
}

/// The calling worker learns what was handed over on `object`.
pub fn take_over(object: Object) {
    if watching() {
        observers().iter().for_each(|o| o.take_over(object));
    }
}

/// The calling thread starts running a new worker called `name` (a thread, a process),
/// whose starter handed over on `object`.
pub fn begin(object: Object, name: &str) {
    if watching() {
        observers().iter().for_each(|o| o.begin(object, name));
    }
}
