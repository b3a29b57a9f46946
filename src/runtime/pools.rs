//! `pool(n)` (worker processes, started once and reused) and `thread_pool(n)` (rayon
//! threads): map, starmap, imap_unordered, reduce and submit/Future, in the manner of
//! Python's `multiprocessing.Pool` and `concurrent.futures` — but a task that throws or a
//! worker that dies gives an error (never a hang), and the pool stays usable.

use super::processes::{self, relay_output, start_worker, worker_command};
use super::sink::{self, MimeBundle, OutputSink};
use super::threads::{describe_error, script_engine};
use super::{interrupt, interrupted_error, transfer, SCRIPT_STACK_SIZE};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr, NativeCallContext};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

// ---- work items -----------------------------------------------------------------------

/// What a timeline calls a task: its function's name.
fn task_label(function: &FnPtr) -> String {
    if function.is_anonymous() {
        "closure".to_string()
    } else {
        function.fn_name().to_string()
    }
}

/// How a chunk of work ended.
#[derive(Debug)]
enum ChunkResult {
    Values(Vec<Dynamic>),
    /// Item `index` (within the chunk) threw.
    Failed {
        index: usize,
        message: String,
    },
    /// The worker died or the pool was terminated.
    Broken(String),
}

/// Calls of one function on a run of items, handed to a thread or a worker process.
struct Chunk {
    function: FnPtr,
    /// Argument lists, one per call.
    items: Vec<Vec<Dynamic>>,
    /// Fold instead of map (for `reduce`).
    fold: bool,
    sink: Option<Arc<dyn OutputSink>>,
    /// Skipped when set before the chunk starts (the caller gave up).
    cancelled: Arc<AtomicBool>,
    reply: Box<dyn FnOnce(ChunkResult) + Send>,
}

/// Where chunks run.
trait Executor: Send + Sync {
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
struct Lifecycle {
    closed: AtomicBool,
    terminated: Arc<AtomicBool>,
    pending: Arc<Pending>,
}

/// What a thread needs to call script functions of the calling cell.
#[derive(Clone)]
struct CallContext {
    #[allow(deprecated)]
    store: Arc<rhai::NativeCallContextStore>,
}

impl CallContext {
    fn of(ctx: &NativeCallContext) -> Self {
        #[allow(deprecated)]
        let store = Arc::new(ctx.store_data());
        CallContext { store }
    }
}

/// Counts queued and running chunks, so `join()` can wait for them.
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    idle: Condvar,
}

impl Pending {
    fn add(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
    fn done(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *count = count.saturating_sub(1);
        self.idle.notify_all();
    }
    fn wait_idle(&self) -> Result<(), Box<EvalAltResult>> {
        super::gil::release_for_wait();
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count > 0 {
            if interrupt::is_requested() {
                return Err(interrupted_error());
            }
            count = self
                .idle
                .wait_timeout(count, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }
}

// ---- thread pool ----------------------------------------------------------------------

struct ThreadExecutor {
    pool: rayon::ThreadPool,
    size: usize,
    lifecycle: Lifecycle,
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

fn run_chunk_here(chunk: &Chunk, context: &CallContext) -> ChunkResult {
    let Ok(engine) = script_engine() else {
        return ChunkResult::Broken("script threads are not available".into());
    };
    #[allow(deprecated)]
    let ctx = context.store.create_context(&engine);
    let call = |args: Vec<Dynamic>| chunk.function.call_within_context::<Dynamic>(&ctx, args);
    match run_batch(&chunk.items, chunk.fold, call) {
        Ok(values) => ChunkResult::Values(values),
        Err((index, err)) => ChunkResult::Failed {
            index,
            message: describe_error(&err),
        },
    }
}

impl Executor for ThreadExecutor {
    fn size(&self) -> usize {
        self.size
    }

    fn submit(&self, chunk: Chunk, context: &CallContext) -> Result<(), String> {
        let context = context.clone();
        let terminated = self.lifecycle.terminated.clone();
        let pending = self.lifecycle.pending.clone();
        pending.add();
        self.pool.spawn(move || {
            let result = if terminated.load(Ordering::SeqCst) {
                ChunkResult::Broken("the pool was terminated".into())
            } else if chunk.cancelled.load(Ordering::SeqCst) {
                ChunkResult::Broken("cancelled".into())
            } else {
                let started = Instant::now();
                let run = || run_chunk_here(&chunk, &context);
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        match chunk.sink.clone() {
                            Some(sink) => sink::with_sink(sink, run),
                            None => run(),
                        }
                    }));
                super::gil::leave();
                if super::timeline::recording() {
                    let worker = std::thread::current()
                        .name()
                        .unwrap_or("pool thread")
                        .to_string();
                    super::timeline::record(worker, task_label(&chunk.function), "task", started);
                }
                outcome.unwrap_or_else(|_| {
                    ChunkResult::Broken("a task panicked in a native function".into())
                })
            };
            (chunk.reply)(result);
            pending.done();
        });
        Ok(())
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn pids(&self) -> Vec<i64> {
        vec![std::process::id() as i64; self.size]
    }
}

// ---- process pool ---------------------------------------------------------------------

/// A chunk ready for a worker process: its job line and how to report the result.
struct ProcessTask {
    function: Value,
    items: Vec<Vec<Value>>,
    fold: bool,
    sink: Option<Arc<dyn OutputSink>>,
    cancelled: Arc<AtomicBool>,
    reply: Box<dyn FnOnce(ChunkResult) + Send>,
}

/// One worker process as its driver thread sees it.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    busy: Arc<AtomicBool>,
    /// The function sources version this worker has compiled.
    version: Option<u64>,
}

fn start_pool_worker() -> Result<Worker, String> {
    let (mut child, busy) = start_worker(worker_command()?, false)?;
    let stdin = child.stdin.take().ok_or("no pipe to the worker")?;
    let stdout = BufReader::new(child.stdout.take().ok_or("no pipe from the worker")?);
    Ok(Worker {
        child,
        stdin,
        stdout,
        busy,
        version: None,
    })
}

/// How a worker ended, for the "broken pool" message.
fn reap(worker: &mut Worker) -> String {
    let pid = worker.child.id();
    processes::forget_child(pid as i32);
    let _ = worker.child.kill();
    match worker.child.wait() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("worker process {pid} exited with code {code}"),
            (_, Some(signal)) => format!("worker process {pid} was killed by signal {signal}"),
            _ => format!("worker process {pid} ended"),
        },
        Err(_) => format!("worker process {pid} ended"),
    }
}

struct ProcessExecutor {
    size: usize,
    tasks: Mutex<Option<Sender<ProcessTask>>>,
    pids: Arc<Mutex<Vec<i64>>>,
    lifecycle: Lifecycle,
}

impl ProcessExecutor {
    fn start(size: usize) -> Result<ProcessExecutor, String> {
        let (tx, rx) = crossbeam_channel::unbounded::<ProcessTask>();
        let pids = Arc::new(Mutex::new(vec![0i64; size]));
        let lifecycle = Lifecycle::default();
        for slot in 0..size {
            let worker = start_pool_worker()?;
            pids.lock().unwrap_or_else(|e| e.into_inner())[slot] = worker.child.id() as i64;
            let (rx, pids, terminated, pending) = (
                rx.clone(),
                pids.clone(),
                lifecycle.terminated.clone(),
                lifecycle.pending.clone(),
            );
            std::thread::Builder::new()
                .name(format!("pool-driver-{slot}"))
                .spawn(move || drive(worker, slot, rx, pids, terminated, pending))
                .map_err(|e| e.to_string())?;
        }
        Ok(ProcessExecutor {
            size,
            tasks: Mutex::new(Some(tx)),
            pids,
            lifecycle,
        })
    }
}

/// Runs tasks on one worker process, replacing it when it dies.
fn drive(
    first: Worker,
    slot: usize,
    tasks: Receiver<ProcessTask>,
    pids: Arc<Mutex<Vec<i64>>>,
    terminated: Arc<AtomicBool>,
    pending: Arc<Pending>,
) {
    let mut worker = Some(first);
    for task in tasks.iter() {
        if terminated.load(Ordering::SeqCst) {
            (task.reply)(ChunkResult::Broken("the pool was terminated".into()));
            pending.done();
            continue;
        }
        if task.cancelled.load(Ordering::SeqCst) {
            (task.reply)(ChunkResult::Broken("cancelled".into()));
            pending.done();
            continue;
        }
        if worker.is_none() {
            match start_pool_worker() {
                Ok(w) => {
                    pids.lock().unwrap_or_else(|e| e.into_inner())[slot] = w.child.id() as i64;
                    worker = Some(w);
                }
                Err(e) => {
                    (task.reply)(ChunkResult::Broken(format!(
                        "broken pool: cannot start a worker: {e}"
                    )));
                    pending.done();
                    continue;
                }
            }
        }
        let Some(w) = worker.as_mut() else { continue };
        let started = Instant::now();
        let result = run_on_worker(w, &task);
        if super::timeline::recording() {
            let label = match task.function["name"].as_str() {
                Some(name) if !name.starts_with(transfer::CLOSURE_PREFIX) => name.to_string(),
                _ => "closure".to_string(),
            };
            super::timeline::record(
                format!("pool worker {}", w.child.id()),
                label,
                "task",
                started,
            );
        }
        if let ChunkResult::Broken(_) = result {
            reap(w);
            // Replace the worker now, so `pids` and the next call see a healthy pool.
            worker = start_pool_worker().ok();
            if let Some(w) = &worker {
                pids.lock().unwrap_or_else(|e| e.into_inner())[slot] = w.child.id() as i64;
            }
        }
        (task.reply)(result);
        pending.done();
    }
    // The pool is closed: let the worker finish and exit.
    if let Some(mut w) = worker {
        drop(w.stdin);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match w.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        processes::forget_child(w.child.id() as i32);
    }
}

fn run_on_worker(worker: &mut Worker, task: &ProcessTask) -> ChunkResult {
    let (version, sources) = processes::function_sources_versioned();
    let mut job = json!({ "version": version, "function": task.function, "items": task.items, "fold": task.fold });
    if worker.version != Some(version) {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        job["sources"] = json!(sources);
    }
    worker.busy.store(true, Ordering::SeqCst);
    // One write per job: the pipe is unbuffered, and a worker woken per JSON token is slow.
    let sent = worker.stdin.write_all(format!("{job}\n").as_bytes());
    if sent.is_err() {
        return ChunkResult::Broken(format!("broken pool: {}", reap(worker)));
    }
    worker.version = Some(version);
    let mut line = String::new();
    let result = loop {
        line.clear();
        match worker.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => {
                break ChunkResult::Broken(format!(
                    "broken pool: {} while running a task",
                    reap(worker)
                ))
            }
            Ok(_) => {}
        }
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            relay_output(
                &json!({ "t": "out", "s": "stdout", "text": line }),
                task.sink.as_ref(),
            );
            continue;
        };
        if relay_output(&event, task.sink.as_ref()) {
            continue;
        }
        match event["t"].as_str() {
            Some("ok") => {
                let values: Result<Vec<Dynamic>, String> = event["value"]
                    .as_array()
                    .map(|v| v.iter().map(transfer::from_json).collect())
                    .unwrap_or_else(|| Ok(Vec::new()));
                break match values {
                    Ok(values) => ChunkResult::Values(values),
                    Err(e) => ChunkResult::Failed {
                        index: 0,
                        message: e,
                    },
                };
            }
            Some("err") => {
                break ChunkResult::Failed {
                    index: event["index"].as_u64().unwrap_or(0) as usize,
                    message: event["message"]
                        .as_str()
                        .unwrap_or("unknown error")
                        .to_string(),
                }
            }
            _ => continue,
        }
    };
    worker.busy.store(false, Ordering::SeqCst);
    result
}

impl Executor for ProcessExecutor {
    fn size(&self) -> usize {
        self.size
    }

    fn submit(&self, chunk: Chunk, _context: &CallContext) -> Result<(), String> {
        let function = transfer::to_json(&Dynamic::from(chunk.function.clone()), "the function")?;
        let items: Result<Vec<Vec<Value>>, String> = chunk
            .items
            .iter()
            .map(|args| processes::encode_args(args))
            .collect();
        let task = ProcessTask {
            function,
            items: items?,
            fold: chunk.fold,
            sink: chunk.sink,
            cancelled: chunk.cancelled,
            reply: chunk.reply,
        };
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let tx = tasks.as_ref().ok_or("the pool is closed")?;
        self.lifecycle.pending.add();
        tx.send(task).map_err(|_| {
            self.lifecycle.pending.done();
            "the pool has stopped".to_string()
        })
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn terminate(&self) {
        self.close();
        self.lifecycle.terminated.store(true, Ordering::SeqCst);
        for pid in self.pids() {
            // SAFETY: killing our own worker processes; a pid already reaped is skipped
            // by the driver before reuse is possible in practice.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn pids(&self) -> Vec<i64> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ProcessExecutor {
    /// The last handle to a pool is gone: its workers finish their task and exit.
    fn drop(&mut self) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

// ---- the script-facing pool -----------------------------------------------------------

/// A pool of worker processes or threads.
#[derive(Clone)]
pub struct Pool {
    executor: Arc<dyn Executor>,
    kind: &'static str,
}

/// A task submitted with `submit`.
#[derive(Clone)]
pub struct Future(Arc<FutureState>);

struct FutureState {
    outcome: Mutex<Option<Result<Dynamic, String>>>,
    done: Condvar,
    cancelled: Arc<AtomicBool>,
    started: AtomicBool,
}

/// Options of `map`: `#{chunksize: k, progress: true}`.
struct Options {
    chunksize: Option<usize>,
    progress: bool,
}

fn options(map: &rhai::Map) -> Result<Options, Box<EvalAltResult>> {
    let mut options = Options {
        chunksize: None,
        progress: false,
    };
    for (key, value) in map {
        match key.as_str() {
            "chunksize" => {
                let k = value.as_int().map_err(|_| "chunksize must be an int")?;
                if k < 1 {
                    return Err("chunksize must be at least 1".into());
                }
                options.chunksize = Some(k as usize);
            }
            "progress" => {
                options.progress = value
                    .as_bool()
                    .map_err(|_| "progress must be true or false")?
            }
            other => return Err(format!("unknown option '{other}' (chunksize, progress)").into()),
        }
    }
    Ok(options)
}

/// The items of an array or a range.
fn items_of(xs: Dynamic) -> Result<Vec<Dynamic>, Box<EvalAltResult>> {
    if xs.is_array() {
        return Ok(xs.into_array().unwrap_or_default());
    }
    if let Some(r) = xs.clone().try_cast::<std::ops::Range<i64>>() {
        return Ok(r.map(Dynamic::from_int).collect());
    }
    if let Some(r) = xs.clone().try_cast::<std::ops::RangeInclusive<i64>>() {
        return Ok(r.map(Dynamic::from_int).collect());
    }
    Err(format!(
        "expected an array or a range of items, got {}",
        xs.type_name()
    )
    .into())
}

/// Python's default: about four chunks per worker.
fn default_chunksize(items: usize, workers: usize) -> usize {
    items.div_ceil((workers * 4).max(1)).max(1)
}

/// A live progress bar in the output (one display, updated in place).
struct Progress {
    sink: Option<Arc<dyn OutputSink>>,
    id: String,
    total: usize,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new(enabled: bool, total: usize) -> Option<Progress> {
        let sink = sink::current();
        enabled.then(|| {
            let progress = Progress {
                sink,
                id: format!("progress-{}", uuid::Uuid::new_v4()),
                total,
                start: Instant::now(),
                last: Instant::now(),
            };
            progress.show(0, false);
            progress
        })
    }

    fn bundle(&self, done: usize) -> MimeBundle {
        let fraction = if self.total == 0 {
            1.0
        } else {
            done as f64 / self.total as f64
        };
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let eta = if rate > 0.0 {
            (self.total - done) as f64 / rate
        } else {
            0.0
        };
        let filled = (fraction * 30.0).round() as usize;
        let text = format!(
            "[{}{}] {done}/{} ({:.0}%) {rate:.1} items/s, ETA {eta:.1} s",
            "#".repeat(filled),
            "-".repeat(30 - filled.min(30)),
            self.total,
            fraction * 100.0
        );
        let html = format!(
            "<div style=\"font-family: monospace\"><progress value=\"{done}\" max=\"{}\" style=\"width: 20em\"></progress> {done}/{} ({:.0}%) · {rate:.1} items/s · ETA {eta:.1} s</div>",
            self.total.max(1),
            self.total,
            fraction * 100.0
        );
        let mut bundle = MimeBundle::new();
        bundle.insert("text/plain".into(), Value::String(text));
        bundle.insert("text/html".into(), Value::String(html));
        bundle
    }

    fn show(&self, done: usize, update: bool) {
        if let Some(sink) = &self.sink {
            sink.display(self.bundle(done), Some(&self.id), update);
        }
    }

    fn tick(&mut self, done: usize) {
        if done == self.total || self.last.elapsed() >= Duration::from_millis(100) {
            self.last = Instant::now();
            self.show(done, true);
        }
    }
}

/// Which results to wait for and how to order them.
enum Order {
    Ordered,
    Completion,
}

impl Pool {
    fn check_open(&self) -> Result<(), Box<EvalAltResult>> {
        if self.executor.is_closed() {
            Err(format!("the {} is closed", self.kind).into())
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
        self.check_open()?;
        let context = CallContext::of(ctx);
        let total = calls.len();
        let cancelled = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::unbounded::<(usize, ChunkResult)>();
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
                reply: Box::new(move |result| {
                    let _ = tx.send((start, result));
                }),
            };
            if let Err(message) = self.executor.submit(chunk, &context) {
                cancelled.store(true, Ordering::SeqCst);
                return Err(format!("{message} (item {start})").into());
            }
            first += len;
            chunks += 1;
        }
        drop(tx);
        super::gil::release_for_wait();
        let mut progress = Progress::new(progress, total);
        let mut ordered: Vec<(usize, Vec<Dynamic>)> = Vec::with_capacity(chunks);
        let mut done = 0;
        for _ in 0..chunks {
            let (start, result) = loop {
                if interrupt::is_requested() {
                    cancelled.store(true, Ordering::SeqCst);
                    return Err(interrupted_error());
                }
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(received) => break received,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(format!("the {} stopped before finishing", self.kind).into())
                    }
                }
            };
            match result {
                ChunkResult::Values(values) => {
                    done += values.len();
                    if let Some(p) = progress.as_mut() {
                        p.tick(done);
                    }
                    ordered.push((start, values));
                }
                _ if interrupt::is_requested() => {
                    cancelled.store(true, Ordering::SeqCst);
                    return Err(interrupted_error());
                }
                ChunkResult::Failed { index, message, .. } => {
                    cancelled.store(true, Ordering::SeqCst);
                    return Err(format!("task {} failed: {message}", start + index).into());
                }
                ChunkResult::Broken(message) => {
                    cancelled.store(true, Ordering::SeqCst);
                    return Err(format!("{message} (items from {start})").into());
                }
            }
        }
        if let Order::Ordered = order {
            ordered.sort_by_key(|(start, _)| *start);
        }
        Ok(ordered.into_iter().flat_map(|(_, values)| values).collect())
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
        let mut chunks = 0;
        for (n, part) in items.chunks(chunksize).enumerate() {
            let tx = tx.clone();
            let chunk = Chunk {
                function: f.clone(),
                items: part.iter().map(|x| vec![x.clone()]).collect(),
                fold: true,
                sink: sink::current(),
                cancelled: cancelled.clone(),
                reply: Box::new(move |result| {
                    let _ = tx.send((n, result));
                }),
            };
            self.executor
                .submit(chunk, &context)
                .map_err(|e| e.to_string())?;
            chunks += 1;
        }
        drop(tx);
        super::gil::release_for_wait();
        let mut partials: Vec<(usize, Dynamic)> = Vec::with_capacity(chunks);
        while partials.len() < chunks {
            if interrupt::is_requested() {
                cancelled.store(true, Ordering::SeqCst);
                return Err(interrupted_error());
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((n, ChunkResult::Values(mut v))) => {
                    partials.push((n, v.pop().unwrap_or_default()))
                }
                Ok((n, ChunkResult::Failed { index, message, .. })) => {
                    cancelled.store(true, Ordering::SeqCst);
                    return Err(
                        format!("reduce step {} failed: {message}", n * chunksize + index).into(),
                    );
                }
                Ok((_, ChunkResult::Broken(message))) => return Err(message.into()),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the pool stopped before finishing".into())
                }
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
        let cancelled = Arc::new(AtomicBool::new(false));
        let state = Arc::new(FutureState {
            outcome: Mutex::new(None),
            done: Condvar::new(),
            cancelled: cancelled.clone(),
            started: AtomicBool::new(false),
        });
        let done_state = state.clone();
        let chunk = Chunk {
            function: f,
            items: vec![args],
            fold: false,
            sink: sink::current(),
            cancelled,
            reply: Box::new(move |result| {
                done_state.started.store(true, Ordering::SeqCst);
                let outcome = match result {
                    ChunkResult::Values(mut v) => Ok(v.pop().unwrap_or_default()),
                    ChunkResult::Failed { message, .. } => {
                        Err(format!("the task failed: {message}"))
                    }
                    ChunkResult::Broken(message) => Err(message),
                };
                *done_state.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                done_state.done.notify_all();
            }),
        };
        self.executor.submit(chunk, &CallContext::of(ctx))?;
        Ok(Future(state))
    }
}

impl Future {
    fn wait(&self, timeout: Option<Duration>) -> Result<Dynamic, Box<EvalAltResult>> {
        super::gil::release_for_wait();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut outcome = self.0.outcome.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // An interrupt wins over a result that the interrupt itself caused.
            if interrupt::is_requested() {
                return Err(interrupted_error());
            }
            if let Some(done) = outcome.as_ref() {
                return done.clone().map_err(Into::into);
            }
            let pause = match deadline {
                Some(d) if Instant::now() >= d => {
                    return Err("result: the task has not finished yet (timeout)".into())
                }
                Some(d) => (d - Instant::now()).min(Duration::from_millis(50)),
                None => Duration::from_millis(50),
            };
            outcome = self
                .0
                .done
                .wait_timeout(outcome, pause)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn thread_pool_new(size: usize) -> Result<Pool, Box<EvalAltResult>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(size)
        .stack_size(SCRIPT_STACK_SIZE)
        .thread_name(|i| format!("pool-thread-{}", i + 1))
        .build()
        .map_err(|e| format!("thread_pool: {e}"))?;
    Ok(Pool {
        executor: Arc::new(ThreadExecutor {
            pool,
            size,
            lifecycle: Lifecycle::default(),
        }),
        kind: "thread pool",
    })
}

fn process_pool_new(size: usize) -> Result<Pool, Box<EvalAltResult>> {
    Ok(Pool {
        executor: Arc::new(ProcessExecutor::start(size)?),
        kind: "pool",
    })
}

fn size_arg(n: i64) -> Result<usize, Box<EvalAltResult>> {
    if (1..=1024).contains(&n) {
        Ok(n as usize)
    } else {
        Err(format!("a pool needs between 1 and 1024 workers, not {n}").into())
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

const SUBMIT_DOC: &str = "\
/// Runs `f(args…)` on the pool in the background and returns a `Future` at once;
/// `future.result()` waits for the value (0 to 8 arguments).";

pub fn register_submit(module: &mut rhai::Module) {
    fn submit(
        ctx: &NativeCallContext,
        f: FnPtr,
        mut args: Vec<Dynamic>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        // The pool is the first argument of the method call.
        let pool = args.remove(0);
        let pool = pool.try_cast::<Pool>().ok_or("submit: expected a pool")?;
        pool.submit(ctx, f, args).map(Dynamic::from)
    }
    for arity in 0..=super::threads::MAX_THREAD_ARGS {
        let mut types = vec![
            std::any::TypeId::of::<Pool>(),
            std::any::TypeId::of::<FnPtr>(),
        ];
        types.extend(std::iter::repeat_n(
            std::any::TypeId::of::<Dynamic>(),
            arity,
        ));
        let mut params = vec!["pool: Pool".to_string(), "f: Fn".to_string()];
        params.extend((1..=arity).map(|i| format!("arg{i}: ?")));
        params.push("Future".to_string());
        rhai::FuncRegistration::new("submit")
            .with_comments([SUBMIT_DOC])
            .with_params_info(params)
            .set_into_module_raw(
                module,
                types,
                rhai::RhaiFunc::Method {
                    func: rhai::Shared::new(
                        |ctx: Option<NativeCallContext>, args: &mut [&mut Dynamic]| {
                            let ctx = ctx.ok_or("submit needs a call context")?;
                            let pool = args[0].clone();
                            let f = std::mem::take(args[1]).cast::<FnPtr>();
                            let mut rest: Vec<Dynamic> = vec![pool];
                            rest.extend(args[2..].iter_mut().map(|a| std::mem::take(*a)));
                            submit(&ctx, f, rest)
                        },
                    ),
                    has_context: true,
                    is_pure: true,
                    is_volatile: true,
                },
            );
    }
}

#[export_module]
pub mod pool_api {
    use super::*;

    pub type Pool = super::Pool;
    pub type Future = super::Future;

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
        process_pool_new(cpus())
    }

    /// Creates a pool of `n` threads (rayon) with the same methods as `pool`.
    #[rhai_fn(return_raw)]
    pub fn thread_pool(n: i64) -> Result<super::Pool, Box<EvalAltResult>> {
        thread_pool_new(size_arg(n)?)
    }

    /// Creates a pool with one thread per CPU.
    #[rhai_fn(name = "thread_pool", return_raw)]
    pub fn thread_pool_default() -> Result<super::Pool, Box<EvalAltResult>> {
        thread_pool_new(cpus())
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

    /// Applies `f` to every item, one task per item, and returns the results in the order
    /// the tasks finished.
    #[rhai_fn(name = "imap_unordered", return_raw, pure)]
    pub fn imap_unordered(
        ctx: NativeCallContext,
        p: &mut super::Pool,
        f: FnPtr,
        xs: Dynamic,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let calls: Vec<Vec<Dynamic>> = items_of(xs)?.into_iter().map(|x| vec![x]).collect();
        p.run(&ctx, f, calls, 1, Order::Completion, false)
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

    /// Stops accepting new work.
    #[rhai_fn(name = "close", pure)]
    pub fn close(p: &mut super::Pool) {
        p.executor.close();
    }

    /// Closes the pool and waits until all submitted work has finished. Interruptible.
    #[rhai_fn(name = "join", return_raw, pure)]
    pub fn join(p: &mut super::Pool) -> Result<(), Box<EvalAltResult>> {
        p.executor.close();
        p.executor.wait_idle()
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
        let unit = if p.kind == "pool" {
            "processes"
        } else {
            "threads"
        };
        format!("<{} of {} {unit}>", p.kind, p.executor.size())
    }

    /// Waits for the task's value (throws its error if it failed). Interruptible.
    #[rhai_fn(name = "result", return_raw, pure)]
    pub fn result(f: &mut super::Future) -> Result<Dynamic, Box<EvalAltResult>> {
        f.wait(None)
    }

    /// Waits at most `timeout` seconds for the task's value; throws on timeout.
    #[rhai_fn(name = "result", return_raw, pure)]
    pub fn result_timeout(
        f: &mut super::Future,
        timeout: f64,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        f.wait(Some(
            Duration::try_from_secs_f64(timeout.max(0.0)).map_err(|_| "invalid timeout")?,
        ))
    }

    /// Whether the task has finished (or failed, or was cancelled).
    #[rhai_fn(get = "done", pure)]
    pub fn done(f: &mut super::Future) -> bool {
        f.0.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Cancels the task if it has not started; returns whether it was cancelled.
    #[rhai_fn(name = "cancel", pure)]
    pub fn cancel(f: &mut super::Future) -> bool {
        if f.0.started.load(Ordering::SeqCst) {
            return false;
        }
        f.0.cancelled.store(true, Ordering::SeqCst);
        true
    }

    /// Shows a future as `<Future pending>` or `<Future done>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn future_to_string(f: &mut super::Future) -> String {
        format!("<Future {}>", if done(f) { "done" } else { "pending" })
    }
}
