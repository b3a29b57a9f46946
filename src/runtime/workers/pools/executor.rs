//! What every pool executor shares: chunks of work, how they end, the `Executor` trait,
//! the pool lifecycle (closed, terminated, pending work) and `run_batch`.

use super::captured::EncodedFunction;
use crate::runtime::globals::{self, Globals};
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use crate::runtime::sink::OutputSink;
use crate::runtime::{interrupt, interrupted_error};
use crossbeam_channel::{Receiver, TryRecvError};
use rhai::{Dynamic, EvalAltResult, FnPtr, NativeCallContext};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

// ---- work items -----------------------------------------------------------------------

/// What a timeline calls a task: its function's name.
pub(super) fn task_label(function: &FnPtr) -> String {
    if function.is_anonymous() {
        "closure".to_string()
    } else {
        function.fn_name().to_string()
    }
}

/// How a chunk of work ended.
#[derive(Debug)]
pub(super) enum ChunkResult {
    Values(Vec<Dynamic>),
    /// Item `index` (within the chunk) threw.
    Failed {
        index: usize,
        message: String,
        /// Where it ran, for the report of an error nobody waits for.
        worker: String,
    },
    /// The worker died or the pool was terminated.
    Broken(String),
}

/// Calls of one function on a run of items, handed to a thread or a worker process.
pub(super) struct Chunk {
    pub(super) function: FnPtr,
    /// Argument lists, one per call.
    pub(super) items: Vec<Vec<Dynamic>>,
    /// Fold instead of map (for `reduce`).
    pub(super) fold: bool,
    pub(super) sink: Option<Arc<dyn OutputSink>>,
    /// Skipped when set before the chunk starts (the caller gave up).
    pub(super) cancelled: Arc<AtomicBool>,
    /// Decides between starting the chunk and `Future.cancel()`.
    pub(super) gate: Arc<StartGate>,
    pub(super) reply: Box<dyn FnOnce(ChunkResult) + Send>,
    pub(super) handoff: Handoff,
}

/// The objects through which what happened before a task and after it is passed on (for
/// the race detector): the submitter hands over on `submitted` and the task takes it over
/// before running; the task hands over on `answered`, and whoever takes its result (a
/// future's `result()`, a map's replies) takes that over.
#[derive(Clone, Copy, Debug)]
pub(super) struct Handoff {
    pub(super) submitted: Object,
    pub(super) answered: Object,
}

impl Handoff {
    /// The calling thread submits work to the pool `pool` whose results come through
    /// `answered`: what it did so far is handed over to the task.
    pub(super) fn submit(pool: u64, answered: Object) -> Handoff {
        let handoff = Handoff {
            submitted: Object::new(Kind::Future, pool, 0),
            answered,
        };
        sched::hand_over(handoff.submitted);
        handoff
    }

    /// Runs a task: it begins with what its submitter did, and what it did is passed on
    /// with its result.
    pub(super) fn run<T>(&self, task: impl FnOnce() -> T) -> T {
        sched::take_over(self.submitted);
        let result = task();
        sched::hand_over(self.answered);
        result
    }
}

/// A fresh id for the channel a call's replies come through, as its scheduling points
/// name it (a number, not an address: the receiver moves).
pub(super) fn replies_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The object through which results with the id `id` come: a [`Kind::Results`] when the
/// explorer plays the tasks (`played`), so that waiting for them is its to schedule.
pub(super) fn results_object(id: u64, played: bool) -> Object {
    let kind = if played { Kind::Results } else { Kind::Future };
    Object::new(kind, id, 0)
}

/// Runs a chunk's calls in the context `ctx`, on the worker called `worker` (for the
/// report of an error nobody waits for).
pub(super) fn run_chunk(chunk: &Chunk, ctx: &NativeCallContext, worker: &str) -> ChunkResult {
    let call = |args: Vec<Dynamic>| chunk.function.call_within_context::<Dynamic>(ctx, args);
    match run_batch(&chunk.items, chunk.fold, call) {
        Ok(values) => ChunkResult::Values(values),
        Err((index, err)) => ChunkResult::Failed {
            index,
            message: crate::runtime::failures::describe_error(&err),
            worker: worker.to_string(),
        },
    }
}

impl Chunk {
    /// Whether the chunk may run now: it was not cancelled, and from now on cannot be.
    pub(super) fn may_start(&self) -> bool {
        !self.cancelled.load(Ordering::SeqCst) && self.gate.start()
    }
}

/// A task is queued, then either started or cancelled, never both: `Future.cancel()` and
/// the worker about to run the task race for the one change out of `QUEUED`.
#[derive(Default)]
pub(super) struct StartGate(AtomicU8);

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

impl StartGate {
    /// Marks the task started; false if it was cancelled. A task handed to a worker again
    /// (its first worker died before running it) is still started.
    pub(super) fn start(&self) -> bool {
        match self
            .0
            .compare_exchange(QUEUED, STARTED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == STARTED,
        }
    }

    /// Whether the task has started (it may have finished since).
    pub(super) fn started(&self) -> bool {
        self.0.load(Ordering::SeqCst) == STARTED
    }

    /// Cancels the task unless it has started; true if it is (now or already) cancelled.
    pub(super) fn cancel(&self) -> bool {
        match self
            .0
            .compare_exchange(QUEUED, CANCELLED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == CANCELLED,
        }
    }
}

/// Where chunks run.
pub(super) trait Executor: Send + Sync {
    fn size(&self) -> usize;
    /// Queues a chunk; errors (e.g. an argument that cannot cross) are reported at once.
    fn submit(&self, chunk: Chunk, context: &CallContext) -> Result<(), String>;
    fn lifecycle(&self) -> &Lifecycle;
    fn pids(&self) -> Vec<i64>;

    fn close(&self) {
        self.lifecycle().closed.store(true, Ordering::SeqCst);
    }
    fn is_closed(&self) -> bool {
        self.lifecycle().closed.load(Ordering::SeqCst)
    }
    /// Stops at once: queued chunks fail (worker processes are killed).
    fn terminate(&self) {
        self.close();
        self.lifecycle().terminated.store(true, Ordering::SeqCst);
    }
    /// Waits until no chunk is queued or running.
    fn wait_idle(&self) -> Result<(), Box<EvalAltResult>> {
        self.lifecycle().pending.wait_idle()
    }
}

/// Whether a pool still takes work, was terminated, and how much work it has.
#[derive(Default)]
pub(super) struct Lifecycle {
    pub(super) closed: AtomicBool,
    pub(super) terminated: Arc<AtomicBool>,
    pub(super) pending: Arc<Pending>,
}

/// What a thread needs to call script functions of the calling cell.
#[derive(Clone)]
pub(super) struct CallContext {
    #[allow(deprecated)]
    pub(super) store: Arc<rhai::NativeCallContextStore>,
    /// The caller's `global::` constants for process workers, encoded at most once per
    /// call however many chunks it has.
    globals: Arc<OnceLock<Arc<Globals>>>,
    /// The call's function for process workers, likewise encoded once per call.
    pub(super) function: Arc<OnceLock<Result<EncodedFunction, String>>>,
}

impl CallContext {
    pub(super) fn of(ctx: &NativeCallContext) -> Self {
        #[allow(deprecated)]
        let store = Arc::new(ctx.store_data());
        CallContext {
            store,
            globals: Arc::default(),
            function: Arc::default(),
        }
    }

    #[allow(deprecated)]
    pub(super) fn globals(&self) -> Arc<Globals> {
        self.globals
            .get_or_init(|| globals::of_state(&self.store.global))
            .clone()
    }
}

/// Counts queued and running chunks, so `join()` can wait for them.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) count: Mutex<usize>,
    pub(super) idle: Condvar,
}

/// Chunks queued or running in all the pools of this process.
static ALL_PENDING: AtomicUsize = AtomicUsize::new(0);

/// Whether a pool of this process has a task queued or running: such a task may still do
/// anything, such as release a lock another thread waits for.
pub fn work_pending() -> bool {
    ALL_PENDING.load(Ordering::SeqCst) > 0
}

impl Pending {
    pub(super) fn add(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        ALL_PENDING.fetch_add(1, Ordering::SeqCst);
    }
    pub(super) fn done(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        if *count > 0 {
            *count -= 1;
            ALL_PENDING.fetch_sub(1, Ordering::SeqCst);
        }
        self.idle.notify_all();
    }
    pub(super) fn wait_idle(&self) -> Result<(), Box<EvalAltResult>> {
        let object = Object::new(Kind::Future, self as *const Pending as u64, 0);
        sched::wait_for_state(
            || Op::new(Action::Join, object, None),
            None,
            Order::InterruptFirst,
            &self.count,
            &self.idle,
            |count| (*count == 0).then_some(()),
            |_| String::new(),
        )?;
        // The interrupt also stops the tasks, which may empty the pool before the loop
        // above sees the flag: `join()` must still report the interrupt, not return.
        if interrupt::is_requested() {
            return Err(interrupted_error());
        }
        Ok(())
    }
}

/// Calls a function once per argument list (map), or folds the first arguments with it
/// (`f(f(x0, x1), x2)…`, for reduce). On failure, the index of the item that failed.
/// Shared by thread pools and by worker processes.
pub fn run_batch(
    items: &[Vec<Dynamic>],
    fold: bool,
    mut call: impl FnMut(Vec<Dynamic>) -> Result<Dynamic, Box<EvalAltResult>>,
) -> Result<Vec<Dynamic>, (usize, Box<EvalAltResult>)> {
    if fold {
        let mut values = items.iter().map(|a| a.first().cloned().unwrap_or_default());
        let mut acc = values.next().unwrap_or_default();
        for (index, item) in values.enumerate() {
            acc = call(vec![acc, item]).map_err(|err| (index + 1, err))?;
        }
        return Ok(vec![acc]);
    }
    items
        .iter()
        .enumerate()
        .map(|(index, args)| call(args.clone()).map_err(|err| (index, err)))
        .collect()
}

/// Waits for the next message of a channel — a scheduling point, a `get` of `object` —
/// at most until `until`: `Ok(None)` when the time ran out or every sender is gone.
/// Interruptible.
pub(super) fn next_message<T>(
    rx: &Receiver<T>,
    object: Object,
    until: Option<Instant>,
) -> Result<Option<T>, Box<EvalAltResult>> {
    // A message `sleep` received, for the next `take`.
    let received = Cell::new(None);
    let message = sched::wait(
        || Op::new(Action::Get, object, None),
        until,
        Order::InterruptFirst,
        || {
            if let Some(message) = received.take() {
                return Ok(Some(Some(message)));
            }
            match rx.try_recv() {
                Ok(message) => Ok(Some(Some(message))),
                Err(TryRecvError::Empty) => Ok(None),
                // Nothing more will come: the wait is over.
                Err(TryRecvError::Disconnected) => Ok(Some(None)),
            }
        },
        |pause| received.set(rx.recv_timeout(pause).ok()),
        |_| String::new(),
    )?;
    Ok(message.flatten())
}

/// Waits for the next reply of a pool's tasks (on the channel `answered` names); on an
/// interrupt, cancels the tasks not started yet.
pub(super) fn receive<T>(
    rx: &Receiver<T>,
    answered: Object,
    kind: &str,
    cancelled: &AtomicBool,
) -> Result<T, Box<EvalAltResult>> {
    let reply = next_message(rx, answered, None);
    if reply
        .as_ref()
        .is_err_and(|e| matches!(**e, EvalAltResult::ErrorTerminated(..)))
    {
        cancelled.store(true, Ordering::SeqCst);
    }
    reply?.ok_or_else(|| format!("the {kind} stopped before finishing").into())
}
