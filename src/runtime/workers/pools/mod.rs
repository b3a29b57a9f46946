//! `pool(n)` (worker processes, started once and reused) and `thread_pool(n)` (rayon
//! threads): map, starmap, imap_unordered, reduce and submit/Future, in the manner of
//! Python's `multiprocessing.Pool` and `concurrent.futures` — but a task that throws or a
//! worker that dies gives an error (never a hang), and the pool stays usable.

use crate::runtime::sink;
use crate::runtime::{interrupt, interrupted_error, SCRIPT_STACK_SIZE};
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr, NativeCallContext};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod captured;
mod executor;
mod future;
mod options;
mod played;
mod process_executor;
mod progress;
mod replies;
mod results;
mod thread_executor;

use executor::{
    replies_id, results_object, task_label, CallContext, Chunk, ChunkResult, Executor, Handoff,
    Lifecycle, StartGate,
};
pub use executor::{run_batch, work_pending};
pub use future::{future_api, register_iterators, Future};
use options::{default_chunksize, items_of, options, Options};
use played::{playing, OnlyPlayed, PlayedPool, Slots};
use process_executor::ProcessExecutor;
use progress::Progress;
use replies::Replies;
pub use results::Results;
use thread_executor::ThreadExecutor;

/// A pool of worker processes or threads.
#[derive(Clone)]
pub struct Pool {
    executor: Arc<dyn Executor>,
    kind: &'static str,
    /// Its workers as the tasks the explorer plays take them.
    slots: Arc<Slots>,
}

/// Which results to wait for and how to order them.
enum Order {
    Ordered,
    Completion,
}

impl Pool {
    /// The pool as scheduling points name it.
    fn id(&self) -> u64 {
        Arc::as_ptr(&self.executor) as *const () as u64
    }

    fn new(executor: Arc<dyn Executor>, kind: &'static str) -> Pool {
        Pool {
            executor,
            kind,
            slots: Arc::default(),
        }
    }

    /// The pool as the tasks the explorer plays see it.
    fn played(&self) -> PlayedPool {
        PlayedPool {
            slots: self.slots.clone(),
            id: self.id(),
            size: self.executor.size(),
            terminated: self.executor.lifecycle().terminated.clone(),
            processes: self.kind == PROCESS_POOL,
        }
    }

    /// Hands a chunk to the pool's workers, or, inside `explore`, to a worker the explorer
    /// plays.
    fn dispatch(
        &self,
        ctx: &NativeCallContext,
        chunk: Chunk,
        context: &CallContext,
    ) -> Result<(), Box<EvalAltResult>> {
        if playing() {
            self.played().submit(ctx, chunk)
        } else {
            self.executor.submit(chunk, context).map_err(Into::into)
        }
    }

    /// Waits until the submitted work has finished (played tasks first, then the real
    /// ones).
    fn wait_idle(&self) -> Result<(), Box<EvalAltResult>> {
        if playing() {
            self.played().join()?;
        }
        self.executor.wait_idle()
    }

    fn check_open(&self) -> Result<(), Box<EvalAltResult>> {
        if self.executor.is_closed() {
            Err(format!("the {} is closed: it takes no new work", self.kind).into())
        } else {
            Ok(())
        }
    }

    /// Runs `f` over argument lists in chunks; results in item order or completion order.
    fn run(
        &self,
        ctx: &NativeCallContext,
        f: FnPtr,
        calls: Vec<Vec<Dynamic>>,
        chunksize: usize,
        order: Order,
        progress: bool,
    ) -> Result<Vec<Dynamic>, Box<EvalAltResult>> {
        self.start(ctx, f, calls, chunksize, order, progress)?
            .fail_fast()
            .collect()
    }

    /// `imap` and `imap_unordered`: one task per item, the results as they come.
    fn stream(
        &self,
        ctx: &NativeCallContext,
        f: FnPtr,
        xs: Dynamic,
        order: Order,
    ) -> Result<Results, Box<EvalAltResult>> {
        let calls: Vec<Vec<Dynamic>> = items_of(xs)?.into_iter().map(|x| vec![x]).collect();
        self.start(ctx, f, calls, 1, order, false)
    }

    /// Submits `f` over argument lists in chunks; the results come as they arrive.
    fn start(
        &self,
        ctx: &NativeCallContext,
        f: FnPtr,
        calls: Vec<Vec<Dynamic>>,
        chunksize: usize,
        order: Order,
        progress: bool,
    ) -> Result<Results, Box<EvalAltResult>> {
        self.check_open()?;
        let context = CallContext::of(ctx);
        let total = calls.len();
        let cancelled = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::unbounded::<(usize, ChunkResult)>();
        let played = playing();
        let answered = results_object(replies_id(), played);
        let ordered = matches!(order, Order::Ordered);
        let mut replies = Replies::new(rx, answered, played && ordered);
        let mut chunks = 0;
        let mut calls = calls.into_iter();
        let mut first = 0;
        loop {
            let items: Vec<Vec<Dynamic>> = calls.by_ref().take(chunksize).collect();
            if items.is_empty() {
                break;
            }
            let len = items.len();
            let tx = tx.clone();
            let start = first;
            let chunk = Chunk {
                function: f.clone(),
                items,
                fold: false,
                sink: sink::current(),
                cancelled: cancelled.clone(),
                gate: Arc::default(),
                reply: Box::new(move |result| {
                    let _ = tx.send((start, result));
                }),
                handoff: Handoff::submit(self.id(), replies.chunk(start)),
            };
            if let Err(error) = self.dispatch(ctx, chunk, &context) {
                cancelled.store(true, Ordering::SeqCst);
                return Err(format!("{error} (item {start})").into());
            }
            first += len;
            chunks += 1;
        }
        Ok(Results::new(
            replies,
            self.kind,
            cancelled,
            chunks,
            ordered,
            Progress::new(progress, total),
        ))
    }

    fn chunksize(&self, explicit: Option<usize>, items: usize) -> usize {
        explicit.unwrap_or_else(|| default_chunksize(items, self.executor.size()))
    }

    fn map(
        &self,
        ctx: &NativeCallContext,
        f: FnPtr,
        xs: Dynamic,
        opts: Options,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let calls: Vec<Vec<Dynamic>> = items_of(xs)?.into_iter().map(|x| vec![x]).collect();
        let chunksize = self.chunksize(opts.chunksize, calls.len());
        self.run(ctx, f, calls, chunksize, Order::Ordered, opts.progress)
    }

    fn reduce(
        &self,
        ctx: &NativeCallContext,
        f: FnPtr,
        xs: Dynamic,
        init: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        self.check_open()?;
        let items = items_of(xs)?;
        let chunksize = default_chunksize(items.len(), self.executor.size()).max(2);
        let context = CallContext::of(ctx);
        let cancelled = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::unbounded::<(usize, ChunkResult)>();
        let played = playing();
        // The partial results are combined in order, whichever comes first.
        let mut replies = Replies::new(rx, results_object(replies_id(), played), played);
        let mut chunks = 0;
        for (n, part) in items.chunks(chunksize).enumerate() {
            let tx = tx.clone();
            let chunk = Chunk {
                function: f.clone(),
                items: part.iter().map(|x| vec![x.clone()]).collect(),
                fold: true,
                sink: sink::current(),
                cancelled: cancelled.clone(),
                gate: Arc::default(),
                reply: Box::new(move |result| {
                    let _ = tx.send((n, result));
                }),
                handoff: Handoff::submit(self.id(), replies.chunk(n)),
            };
            self.dispatch(ctx, chunk, &context)?;
            chunks += 1;
        }
        drop(tx);
        let mut partials: Vec<(usize, Dynamic)> = Vec::with_capacity(chunks);
        while partials.len() < chunks {
            match replies.next(self.kind, &cancelled)? {
                (n, ChunkResult::Values(mut v)) => partials.push((n, v.pop().unwrap_or_default())),
                // A task that the interrupt stopped fails; the interrupt is what to report
                // (as in `run`).
                _ if interrupt::is_requested() => {
                    cancelled.store(true, Ordering::SeqCst);
                    return Err(interrupted_error());
                }
                (n, ChunkResult::Failed { index, message, .. }) => {
                    cancelled.store(true, Ordering::SeqCst);
                    return Err(
                        format!("reduce step {} failed: {message}", n * chunksize + index).into(),
                    );
                }
                (_, ChunkResult::Broken(message)) => return Err(message.into()),
            }
        }
        partials.sort_by_key(|(n, _)| *n);
        let mut acc = init;
        for (_, partial) in partials {
            acc = f.call_within_context::<Dynamic>(ctx, (acc, partial))?;
        }
        Ok(acc)
    }

    fn submit(
        &self,
        ctx: &NativeCallContext,
        f: FnPtr,
        args: Vec<Dynamic>,
    ) -> Result<Future, Box<EvalAltResult>> {
        self.check_open()?;
        let gate = Arc::new(StartGate::default());
        let played = playing();
        let future = Future::new(gate.clone(), played);
        let done = future.clone();
        let handoff = Handoff::submit(self.id(), future.object());
        let label = task_label(&f);
        let report_sink = sink::current();
        let chunk = Chunk {
            function: f,
            items: vec![args],
            fold: false,
            sink: sink::current(),
            cancelled: Arc::default(),
            gate,
            reply: Box::new(move |result| {
                let mut uncaught = None;
                let outcome = match result {
                    ChunkResult::Values(mut v) => Ok(v.pop().unwrap_or_default()),
                    ChunkResult::Failed {
                        message, worker, ..
                    } => {
                        uncaught = Some((worker, message.clone()));
                        Err(format!("the task failed: {message}"))
                    }
                    ChunkResult::Broken(message) => Err(message),
                };
                // Nobody may ever ask for an error nobody waits for now: it is reported
                // as it happens, before a later `result()` throws it too. (Not under the
                // explorer, as for threads: its reruns would repeat the report.)
                done.complete(outcome, || {
                    if let (Some((worker, message)), false) = (uncaught, played) {
                        crate::runtime::failures::report_uncaught(
                            report_sink.as_ref(),
                            &format!("pool task ({label}) on {worker}"),
                            &message,
                        );
                    }
                });
            }),
            handoff,
        };
        self.dispatch(ctx, chunk, &CallContext::of(ctx))?;
        Ok(future)
    }
}

/// What a process pool calls itself in messages (a thread pool is a "thread pool").
const PROCESS_POOL: &str = "pool";
const THREAD_POOL: &str = "thread pool";

/// A pool made inside `explore` starts no worker: its tasks are all played there.
fn only_played(size: usize, kind: &'static str) -> Pool {
    let executor = OnlyPlayed {
        size,
        lifecycle: Lifecycle::default(),
    };
    Pool::new(Arc::new(executor), kind)
}

fn thread_pool_new(size: usize) -> Result<Pool, Box<EvalAltResult>> {
    if playing() {
        return Ok(only_played(size, THREAD_POOL));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(size)
        .stack_size(SCRIPT_STACK_SIZE)
        .thread_name(|i| format!("pool-thread-{}", i + 1))
        .build()
        .map_err(|e| format!("thread_pool: {e}"))?;
    let executor = ThreadExecutor {
        pool,
        size,
        lifecycle: Lifecycle::default(),
    };
    Ok(Pool::new(Arc::new(executor), THREAD_POOL))
}

fn process_pool_new(size: usize) -> Result<Pool, Box<EvalAltResult>> {
    if playing() {
        return Ok(only_played(size, PROCESS_POOL));
    }
    Ok(Pool::new(
        Arc::new(ProcessExecutor::start(size)?),
        PROCESS_POOL,
    ))
}

fn size_arg(n: i64) -> Result<usize, Box<EvalAltResult>> {
    if (1..=1024).contains(&n) {
        Ok(n as usize)
    } else {
        Err(format!("a pool needs between 1 and 1024 workers, not {n}").into())
    }
}

const SUBMIT_DOC: &str = "\
/// Runs `f(args…)` on the pool in the background and returns a `Future` at once;
/// `future.result()` waits for the value (0 to 8 arguments).";

/// Registers `pool.submit(f, args…)` for every arity.
pub fn register_submit(module: &mut rhai::Module) {
    crate::runtime::spawners::register_variadic(
        module,
        "submit",
        SUBMIT_DOC,
        Some((std::any::TypeId::of::<Pool>(), "pool: Pool")),
        "Future",
        |ctx, pool, f, args| {
            let pool = pool.try_cast::<Pool>().ok_or("submit: expected a pool")?;
            pool.submit(ctx, f, args).map(Dynamic::from)
        },
    );
}

#[export_module]
pub mod pool_api {
    use super::*;

    pub type Results = super::Results;

    pub type Pool = super::Pool;

    /// Creates a pool of `n` worker processes, started once and reused by every call.
    /// `map(f, xs)` runs `f` on every item in parallel (results in order); see also
    /// `starmap`, `imap_unordered`, `reduce`, `submit`. A worker that dies fails its tasks
    /// with a "broken pool" error and is replaced.
    #[rhai_fn(return_raw)]
    pub fn pool(n: i64) -> Result<super::Pool, Box<EvalAltResult>> {
        process_pool_new(size_arg(n)?)
    }

    /// Creates a pool with one worker process per CPU.
    #[rhai_fn(name = "pool", return_raw)]
    pub fn pool_default() -> Result<super::Pool, Box<EvalAltResult>> {
        process_pool_new(crate::runtime::cpus())
    }

    /// Creates a pool of `n` threads (rayon) with the same methods as `pool`.
    #[rhai_fn(return_raw)]
    pub fn thread_pool(n: i64) -> Result<super::Pool, Box<EvalAltResult>> {
        thread_pool_new(size_arg(n)?)
    }

    /// Creates a pool with one thread per CPU.
    #[rhai_fn(name = "thread_pool", return_raw)]
    pub fn thread_pool_default() -> Result<super::Pool, Box<EvalAltResult>> {
        thread_pool_new(crate::runtime::cpus())
    }

    /// Applies `f` to every item of `xs` (an array or a range) in parallel; returns the
    /// results in the order of the items. A task that throws makes `map` throw with the
    /// task's index and message. Interruptible.
    #[rhai_fn(name = "map", return_raw, pure)]
    pub fn map(
        ctx: NativeCallContext,
        p: &mut super::Pool,
        f: FnPtr,
        xs: Dynamic,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        p.map(
            &ctx,
            f,
            xs,
            Options {
                chunksize: None,
                progress: false,
            },
        )
    }

    /// `map` with options: `#{chunksize: k}` items per task (default: about four tasks per
    /// worker), `#{progress: true}` shows a live progress bar.
    #[rhai_fn(name = "map", return_raw, pure)]
    pub fn map_with(
        ctx: NativeCallContext,
        p: &mut super::Pool,
        f: FnPtr,
        xs: Dynamic,
        opts: rhai::Map,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        p.map(&ctx, f, xs, options(&opts)?)
    }

    /// Like `map`, for a function of several arguments: each item of `xss` is the array
    /// of arguments of one call.
    #[rhai_fn(name = "starmap", return_raw, pure)]
    pub fn starmap(
        ctx: NativeCallContext,
        p: &mut super::Pool,
        f: FnPtr,
        xss: rhai::Array,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let calls: Result<Vec<Vec<Dynamic>>, Box<EvalAltResult>> = xss
            .into_iter()
            .enumerate()
            .map(|(i, x)| {
                x.into_array().map_err(|t| {
                    format!("starmap: item {i} is a {t}, not an array of arguments").into()
                })
            })
            .collect();
        let calls = calls?;
        let chunksize = p.chunksize(None, calls.len());
        p.run(&ctx, f, calls, chunksize, Order::Ordered, false)
    }

    /// Applies `f` to every item, one task per item, and hands out the results as the
    /// tasks finish: `for r in p.imap_unordered(f, xs) { … }` gets the first result while
    /// the slowest task still runs (`.to_array()` waits for all of them).
    #[rhai_fn(name = "imap_unordered", return_raw, pure)]
    pub fn imap_unordered(
        ctx: NativeCallContext,
        p: &mut super::Pool,
        f: FnPtr,
        xs: Dynamic,
    ) -> Result<Results, Box<EvalAltResult>> {
        p.stream(&ctx, f, xs, Order::Completion)
    }

    /// Like `imap_unordered`, in the order of the items: a `for` loop gets each result as
    /// soon as it and all before it are done (Python's `imap`).
    #[rhai_fn(name = "imap", return_raw, pure)]
    pub fn imap(
        ctx: NativeCallContext,
        p: &mut super::Pool,
        f: FnPtr,
        xs: Dynamic,
    ) -> Result<Results, Box<EvalAltResult>> {
        p.stream(&ctx, f, xs, Order::Ordered)
    }

    /// Waits for every remaining result and returns them as an array (Python's
    /// `list(pool.imap(…))`).
    #[rhai_fn(name = "to_array", return_raw)]
    pub fn results_to_array(results: Results) -> Result<rhai::Array, Box<EvalAltResult>> {
        results.collect()
    }

    /// Shows the results of an `imap` as `<results, more to come>` or `<results, all
    /// handed out>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn results_to_string(results: &mut Results) -> String {
        if results.pending() {
            "<results, more to come>".into()
        } else {
            "<results, all handed out>".into()
        }
    }

    /// Combines all items with `f` starting from `init`, in parallel: each worker folds a
    /// run of items and the partial results are combined in order, so `f` must be
    /// associative (like `+`, `max`, or merging maps).
    #[rhai_fn(name = "reduce", return_raw, pure)]
    pub fn reduce(
        ctx: NativeCallContext,
        p: &mut super::Pool,
        f: FnPtr,
        xs: Dynamic,
        init: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        p.reduce(&ctx, f, xs, init)
    }

    /// Stops accepting new work; what was submitted still runs. Call `join()` after it to
    /// wait for that work, as with Python's `Pool.close()`.
    #[rhai_fn(name = "close", pure)]
    pub fn close(p: &mut super::Pool) {
        p.executor.close();
    }

    /// Waits until all submitted work has finished. As in Python, the pool must be closed
    /// (or terminated) first: `p.close(); p.join();`. Interruptible.
    #[rhai_fn(name = "join", return_raw, pure)]
    pub fn join(p: &mut super::Pool) -> Result<(), Box<EvalAltResult>> {
        if !p.executor.is_closed() {
            return Err(format!(
                "join: the {} is still running; call close() (or terminate()) first",
                p.kind
            )
            .into());
        }
        p.wait_idle()
    }

    /// Closes the pool and waits for the submitted work to finish (Python's
    /// `Executor.shutdown()`).
    #[rhai_fn(name = "shutdown", return_raw, pure)]
    pub fn shutdown(p: &mut super::Pool) -> Result<(), Box<EvalAltResult>> {
        shutdown_waiting(p, true)
    }

    /// Closes the pool; with `wait` false returns at once while the submitted work runs on
    /// (Python's `Executor.shutdown(wait=False)`).
    #[rhai_fn(name = "shutdown", return_raw, pure)]
    pub fn shutdown_waiting(p: &mut super::Pool, wait: bool) -> Result<(), Box<EvalAltResult>> {
        p.executor.close();
        if wait {
            p.wait_idle()
        } else {
            Ok(())
        }
    }

    /// Whether the pool was closed (by `close`, `shutdown` or `terminate`): it takes no
    /// new work.
    #[rhai_fn(get = "closed", pure)]
    pub fn closed(p: &mut super::Pool) -> bool {
        p.executor.is_closed()
    }

    /// Stops the pool at once: queued tasks fail, worker processes are killed.
    #[rhai_fn(name = "terminate", pure)]
    pub fn terminate(p: &mut super::Pool) {
        p.executor.terminate();
    }

    /// The number of workers.
    #[rhai_fn(get = "size", pure)]
    pub fn size(p: &mut super::Pool) -> i64 {
        p.executor.size() as i64
    }

    /// The process ids of the workers (the kernel's own pid for a thread pool).
    #[rhai_fn(get = "pids", pure)]
    pub fn pids(p: &mut super::Pool) -> rhai::Array {
        p.executor
            .pids()
            .into_iter()
            .map(Dynamic::from_int)
            .collect()
    }

    /// Shows a pool as `<pool of 4 processes>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn pool_to_string(p: &mut super::Pool) -> String {
        let unit = if p.kind == PROCESS_POOL {
            "processes"
        } else {
            "threads"
        };
        format!("<{} of {} {unit}>", p.kind, p.executor.size())
    }
}
