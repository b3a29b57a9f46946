//! Process pools: long-lived worker processes, each fed by a driver thread.

use super::captured::{CapturedValues, Stored, WorkerStore};
use super::executor::{
    CallContext, Chunk, ChunkResult, Executor, Handoff, Lifecycle, Pending, StartGate,
};
use crate::runtime::globals::Globals;
use crate::runtime::launch::{self, start_worker};
use crate::runtime::lifetime::{self, Held};
use crate::runtime::processes::relay_output;
use crate::runtime::sink::OutputSink;
use crate::runtime::worker_process::{describe_end, WorkerProcess};
use crate::runtime::workers::protocol::{self, Event, Job, Request};
use crate::runtime::{interrupt, transfer, INTERRUPTED};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use rhai::Dynamic;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A chunk ready for a worker process: its job and how to report the result.
struct ProcessTask {
    /// The function, encoded once for every job that carries it.
    function: Box<RawValue>,
    /// Its name on the wire (closures have internal names).
    name: String,
    /// The big captured values `function` refers to by id.
    stored: Vec<Stored>,
    items: Vec<Vec<Value>>,
    fold: bool,
    /// The caller's `global::` constants.
    globals: Arc<Globals>,
    /// The shared objects the function and items refer to, alive until the task's answer
    /// (the worker has its own references by then).
    kept: Vec<Held>,
    sink: Option<Arc<dyn OutputSink>>,
    cancelled: Arc<AtomicBool>,
    gate: Arc<StartGate>,
    reply: Box<dyn FnOnce(ChunkResult) + Send>,
    handoff: Handoff,
}

/// One worker process as its driver thread sees it.
struct Worker {
    child: WorkerProcess,
    stdin: File,
    stdout: BufReader<File>,
    busy: Arc<AtomicBool>,
    /// The function sources version this worker has compiled.
    version: Option<u64>,
    /// The version of the `global::` constants this worker has.
    globals: Option<u64>,
    /// The captured values this worker keeps.
    store: WorkerStore,
}

fn start_pool_worker() -> Result<Worker, String> {
    let (mut child, busy) = start_worker(false)?;
    let stdin = child.stdin.take().ok_or("no pipe to the worker")?;
    let stdout = BufReader::new(child.stdout.take().ok_or("no pipe from the worker")?);
    Ok(Worker {
        child,
        stdin,
        stdout,
        busy,
        version: None,
        globals: None,
        store: WorkerStore::default(),
    })
}

/// How a worker ended, for the "broken pool" message.
fn reap(worker: &mut Worker) -> String {
    let pid = worker.child.id();
    launch::forget_child(pid as i32);
    worker.child.kill();
    let code = worker.child.wait();
    lifetime::release_process(pid as i32);
    describe_end(pid, code)
}

pub(super) struct ProcessExecutor {
    pub(super) size: usize,
    tasks: Mutex<Option<Sender<ProcessTask>>>,
    pids: Arc<Mutex<Vec<i64>>>,
    pub(super) lifecycle: Lifecycle,
    captured: CapturedValues,
}

impl ProcessExecutor {
    pub(super) fn start(size: usize) -> Result<ProcessExecutor, String> {
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
                .spawn(move || drive(worker, slot, size, rx, pids, terminated, pending))
                .map_err(|e| e.to_string())?;
        }
        Ok(ProcessExecutor {
            size,
            tasks: Mutex::new(Some(tx)),
            pids,
            lifecycle,
            captured: CapturedValues::default(),
        })
    }
}

/// The most tasks a worker is handed at once.
const MAX_IN_FLIGHT: usize = 8;
/// Tasks of a function that usually takes less than this are handed out several at a time.
const SHORT_TASK: Duration = Duration::from_millis(2);
/// How many functions' typical task durations a driver remembers.
const REMEMBERED_FUNCTIONS: usize = 256;

/// How long the tasks of each function usually take on a worker (a moving average).
#[derive(Default)]
struct TaskDurations(HashMap<String, Duration>);

impl TaskDurations {
    fn key(task: &ProcessTask) -> &str {
        &task.name
    }

    /// Whether more tasks may be queued behind `task` in a worker's pipe. While tasks are
    /// short, the next job lines already wait in the pipe when the worker finishes one,
    /// so neither it nor its driver sleeps per task. Behind a task of unknown or long
    /// duration nothing is queued, so none waits behind it while a different worker is
    /// idle.
    fn may_pipeline(&self, task: &ProcessTask) -> bool {
        self.0
            .get(Self::key(task))
            .is_some_and(|typical| *typical < SHORT_TASK)
    }

    fn record(&mut self, task: &ProcessTask, took: Duration) {
        if self.0.len() >= REMEMBERED_FUNCTIONS {
            self.0.clear();
        }
        // Looked up first: the name is copied only for a function not seen before.
        match self.0.get_mut(Self::key(task)) {
            Some(typical) => *typical = (*typical * 3 + took) / 4,
            None => {
                self.0.insert(Self::key(task).to_string(), took);
            }
        }
    }
}

/// A task sent to a worker, waiting for its result.
struct Sent {
    task: ProcessTask,
    sent_at: Instant,
}

/// Runs tasks on one worker process, replacing it when it dies.
fn drive(
    first: Worker,
    slot: usize,
    workers: usize,
    tasks: Receiver<ProcessTask>,
    pids: Arc<Mutex<Vec<i64>>>,
    terminated: Arc<AtomicBool>,
    pending: Arc<Pending>,
) {
    let mut worker = Some(first);
    let mut in_flight: VecDeque<Sent> = VecDeque::new();
    let mut open = true;
    // When the previous result arrived: a pipelined task starts no earlier.
    let mut last_done = Instant::now();
    let mut durations = TaskDurations::default();
    loop {
        // Top up the worker's pipe: wait for work only when it has none. A task is taken
        // from the pool's queue only when it can start soon: behind nothing, or behind
        // tasks known to be short. (A task taken while a long one runs would wait for it
        // while another worker may be idle: Python's pool hands it to the first worker
        // that is free, and so does this one.)
        while in_flight.len() < MAX_IN_FLIGHT && open {
            if !in_flight.is_empty() {
                // No more than this worker's share of what is queued: a driver that wakes
                // first must not take the tasks its idle neighbours could run.
                if in_flight.len() * workers > tasks.len()
                    || !in_flight
                        .iter()
                        .all(|sent| durations.may_pipeline(&sent.task))
                {
                    break;
                }
            }
            let task = if in_flight.is_empty() {
                tasks.recv().ok()
            } else {
                match tasks.try_recv() {
                    Ok(task) => Some(task),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => None,
                }
            };
            let Some(task) = task else {
                open = false;
                break;
            };
            if let Some(sent) = dispatch(task, &mut worker, slot, &pids, &terminated, &pending) {
                in_flight.push_back(sent);
            }
        }
        let Some(front) = in_flight.pop_front() else {
            if open {
                continue;
            }
            break;
        };
        let Some(w) = worker.as_mut() else {
            finish(
                front.task,
                ChunkResult::Broken("broken pool: no worker".into()),
                &pending,
            );
            continue;
        };
        let result = await_result(w, &front.task);
        let started = front.sent_at.max(last_done);
        last_done = Instant::now();
        durations.record(&front.task, last_done - started);
        crate::runtime::sched::worked("task", started, || {
            let name = &front.task.name;
            let label = if name.is_empty() || name.starts_with(transfer::CLOSURE_PREFIX) {
                "closure".to_string()
            } else {
                name.clone()
            };
            (format!("pool worker {}", w.child.id()), label)
        });
        if in_flight.is_empty() {
            w.busy.store(false, Ordering::SeqCst);
        }
        let broken = matches!(result, ChunkResult::Broken(_));
        if broken {
            replace_worker(&mut worker, slot, &pids);
        }
        finish(front.task, result, &pending);
        if broken {
            // The tasks queued in the dead worker's pipe never started: hand them to its
            // replacement.
            let queued: Vec<Sent> = in_flight.drain(..).collect();
            for sent in queued {
                let resent = dispatch(sent.task, &mut worker, slot, &pids, &terminated, &pending);
                in_flight.extend(resent);
            }
        }
    }
    // The pool is closed: let the worker finish and exit.
    if let Some(mut w) = worker {
        drop(w.stdin);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match w.child.try_wait() {
                Some(_) => break,
                None if Instant::now() > deadline => {
                    w.child.kill();
                    w.child.wait();
                    break;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        lifetime::release_process(w.child.id() as i32);
        launch::forget_child(w.child.id() as i32);
    }
}

fn finish(task: ProcessTask, result: ChunkResult, pending: &Pending) {
    let ProcessTask { reply, kept, .. } = task;
    // Before the caller has its answer: what only the task referred to is freed by then.
    drop(kept);
    reply(result);
    pending.done();
}

/// Starts the replacement of a dead (already reaped) worker, so `pids` and the next call
/// see a healthy pool.
fn replace_worker(worker: &mut Option<Worker>, slot: usize, pids: &Mutex<Vec<i64>>) {
    *worker = start_pool_worker().ok();
    if let Some(w) = worker {
        pids.lock().unwrap_or_else(|e| e.into_inner())[slot] = w.child.id() as i64;
    }
}

/// Sends a task's job to the worker (starting one if needed). A task that cannot
/// be sent is answered at once and `None` returned.
fn dispatch(
    task: ProcessTask,
    worker: &mut Option<Worker>,
    slot: usize,
    pids: &Mutex<Vec<i64>>,
    terminated: &AtomicBool,
    pending: &Pending,
) -> Option<Sent> {
    if terminated.load(Ordering::SeqCst) {
        finish(
            task,
            ChunkResult::Broken("the pool was terminated".into()),
            pending,
        );
        return None;
    }
    // Once written to the worker's pipe the task can no longer be cancelled.
    if task.cancelled.load(Ordering::SeqCst) || !task.gate.start() {
        finish(task, ChunkResult::Broken("cancelled".into()), pending);
        return None;
    }
    // The map that queued it is being interrupted but may not have noticed yet: a task
    // sent now would run on after the interrupt.
    if interrupt::is_requested() {
        finish(task, ChunkResult::Broken(INTERRUPTED.into()), pending);
        return None;
    }
    if worker.is_none() {
        match start_pool_worker() {
            Ok(w) => {
                pids.lock().unwrap_or_else(|e| e.into_inner())[slot] = w.child.id() as i64;
                *worker = Some(w);
            }
            Err(e) => {
                let message = format!("broken pool: cannot start a worker: {e}");
                finish(task, ChunkResult::Broken(message), pending);
                return None;
            }
        }
    }
    let w = worker.as_mut()?;
    if let Err(message) = send_job(w, &task) {
        replace_worker(worker, slot, pids);
        finish(task, ChunkResult::Broken(message), pending);
        return None;
    }
    Some(Sent {
        task,
        sent_at: Instant::now(),
    })
}

/// Writes a task's job; the notebook's function sources and the `global::` constants go
/// along when the worker does not have this version of them yet.
fn send_job(worker: &mut Worker, task: &ProcessTask) -> Result<(), String> {
    let (version, sources) = launch::function_sources_versioned();
    let sources = (worker.version != Some(version))
        .then(|| sources.iter().map(|s| Cow::Borrowed(&**s)).collect());
    // The race detector is on: the worker passes on what happened before and after.
    let handoff = crate::runtime::sched::watching().then(|| {
        let Handoff {
            submitted,
            answered,
        } = task.handoff;
        [submitted.id, answered.id]
    });
    let globals: &RawValue = &task.globals.json;
    let (forget, store) = worker.store.send_along(&task.stored);
    let job = Request::Job(Job {
        version,
        sources,
        function: &*task.function,
        items: Cow::Borrowed(&task.items),
        fold: task.fold,
        globals: (worker.globals != Some(task.globals.version)).then_some(globals),
        name: None,
        handoff,
        forget,
        store,
    });
    let line = protocol::to_line(&job)?;
    worker.busy.store(true, Ordering::SeqCst);
    // One write per job: the pipe is unbuffered, and a worker woken per JSON token is slow.
    if worker.stdin.write_all(&line).is_err() {
        return Err(format!("broken pool: {}", reap(worker)));
    }
    worker.version = Some(version);
    worker.globals = Some(task.globals.version);
    Ok(())
}

/// Reads the worker's output until the result of its oldest task arrives, relaying what
/// the task prints.
fn await_result(worker: &mut Worker, task: &ProcessTask) -> ChunkResult {
    let mut line = String::new();
    loop {
        let Some(event) = protocol::read_event(&mut worker.stdout, &mut line) else {
            return ChunkResult::Broken(format!(
                "broken pool: {} while running a task",
                reap(worker)
            ));
        };
        match event {
            Event::Done { values } => {
                let values: Result<Vec<Dynamic>, String> =
                    values.iter().map(transfer::from_message).collect();
                return match values {
                    Ok(values) => ChunkResult::Values(values),
                    Err(e) => ChunkResult::Failed {
                        index: 0,
                        message: e,
                        worker: format!("pool worker {}", worker.child.id()),
                    },
                };
            }
            Event::Failed(error) => {
                return ChunkResult::Failed {
                    index: error.index,
                    message: error.message,
                    worker: format!("pool worker {}", worker.child.id()),
                }
            }
            output => relay_output(output, task.sink.as_ref()),
        }
    }
}

impl Executor for ProcessExecutor {
    fn size(&self) -> usize {
        self.size
    }

    fn submit(&self, chunk: Chunk, context: &CallContext) -> Result<(), String> {
        // Every chunk of a call has the same function: encoded (and its captured values
        // read) once, for all of them.
        let function = context
            .function
            .get_or_init(|| self.captured.encode(&chunk.function))
            .clone()?;
        let mut kept = function.kept;
        let items: Result<Vec<Vec<Value>>, String> = chunk
            .items
            .iter()
            .map(|args| launch::encode_args(args, &mut kept))
            .collect();
        let task = ProcessTask {
            function: function.json,
            name: function.name,
            stored: function.stored,
            items: items?,
            fold: chunk.fold,
            globals: context.globals(),
            kept,
            sink: chunk.sink,
            cancelled: chunk.cancelled,
            gate: chunk.gate,
            reply: chunk.reply,
            handoff: chunk.handoff,
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
