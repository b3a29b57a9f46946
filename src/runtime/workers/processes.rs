//! Script processes: `spawn_process(f, args…)` runs a function in a new OS process. The
//! kernel is never forked: workers are forked by the fork server (a single-threaded
//! process of this same binary in a hidden worker mode), or started by executing the
//! binary (see `launch`), and given the source of every cell that defined functions (they
//! keep only their definitions), the function and its arguments as JSON. Shared objects
//! cross by reference, and the child's output comes back over its stdout to the cell that
//! started it.

use crate::runtime::actors;
use crate::runtime::failures::{joined, report_uncaught, Failure};
use crate::runtime::globals::Globals;
use crate::runtime::launch::{
    encode_args, forget_child, function_sources_versioned, role, start_worker, Role,
};
use crate::runtime::lifetime::{self, Held};
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use crate::runtime::sink::{self, OutputSink, Stream};
use crate::runtime::threads::{self, ThreadHandle};
use crate::runtime::worker_process::WorkerProcess;
use crate::runtime::workers::protocol::{self, Event, Job, Request};
use crate::runtime::{interrupted_error, transfer};
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr, NativeCallContext};
use serde_json::value::{to_raw_value, RawValue};
use std::borrow::Cow;
use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

// ---- the parent's view of a child ---------------------------------------------------

/// What a process's function returned, or how it failed (a thread's outcome: `join`
/// tells both alike, see `failures::joined`).
type Outcome = Result<Dynamic, Failure>;

struct ProcessState {
    name: String,
    /// A daemon process is not waited for at the end of a script.
    daemon: bool,
    pid: i32,
    /// What it returned or threw: shared objects in it live as long as the state does.
    outcome: Mutex<Option<Outcome>>,
    /// Apart from the state, so that the thread that follows the child can report the
    /// end after dropping its hold on the state (see `follow_child`).
    ended: Arc<Ended>,
    reaped: AtomicBool,
    /// Inside `explore`: the thread that plays this process, scheduled like any thread.
    played_by: Option<ThreadHandle>,
}

/// How a process ended, and the signal to those waiting for it.
#[derive(Default)]
struct Ended {
    /// 0 or 1 for a normal exit, minus the signal number when killed.
    exit_code: Mutex<Option<i64>>,
    finished: Condvar,
}

/// A script process started by `spawn_process`.
#[derive(Clone)]
pub struct ProcessHandle(Arc<ProcessState>);

/// The processes started by `spawn_process` that have not exited yet, oldest first: what
/// the end of a script waits for, and what an interrupt stops.
static UNFINISHED: Mutex<Vec<ProcessHandle>> = Mutex::new(Vec::new());

/// Processes started with `spawn_process` (not pool workers) still running, oldest first.
pub fn unfinished() -> Vec<ProcessHandle> {
    UNFINISHED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl ProcessHandle {
    /// The process's name, like `Process-1 (work)`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn is_daemon(&self) -> bool {
        self.0.daemon
    }

    /// Waits until the process has exited and its output has been passed on; `false`
    /// when interrupted first.
    pub fn wait_exited(&self) -> bool {
        self.wait().is_some()
    }

    fn exit_code(&self) -> Option<i64> {
        if let Some(thread) = &self.0.played_by {
            return thread.outcome().map(|o| played_outcome(o).1);
        }
        let ended = &self.0.ended;
        *ended.exit_code.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn signal(&self, signal: i32) {
        if !self.0.reaped.load(Ordering::SeqCst) && self.0.played_by.is_none() {
            // SAFETY: the child has not been reaped, so its pid is still ours.
            unsafe { libc::kill(self.0.pid, signal) };
        }
    }

    /// Waits until the child has exited and been reaped; `None` when interrupted.
    fn wait(&self) -> Option<(Outcome, i64)> {
        self.wait_until(None).ok().flatten()
    }

    /// [`ProcessHandle::wait`] at most until `until`: `Ok(None)` if it still runs, an
    /// error when interrupted.
    fn wait_until(
        &self,
        until: Option<std::time::Instant>,
    ) -> Result<Option<(Outcome, i64)>, Box<EvalAltResult>> {
        if let Some(thread) = &self.0.played_by {
            return Ok(thread.wait_until(until)?.map(played_outcome));
        }
        let code = sched::wait_for_state(
            || Op::new(Action::Join, self.object(), None),
            until,
            Order::InterruptFirst,
            &self.0.ended.exit_code,
            &self.0.ended.finished,
            |code| *code,
            |_| self.0.name.clone(),
        )?;
        let Some(code) = code else {
            return Ok(None);
        };
        let outcome = self
            .0
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let outcome = outcome.unwrap_or_else(|| {
            Err(Failure::Error(if code < 0 {
                format!("killed by signal {}", -code)
            } else {
                format!("exited with code {code} before returning a result")
            }))
        });
        Ok(Some((outcome, code)))
    }

    /// The process as scheduling points name it.
    pub fn object(&self) -> Object {
        process_object(self.0.pid)
    }
}

/// The process `pid` as scheduling points name it (in the parent and in the child).
pub fn process_object(pid: i32) -> Object {
    Object::new(Kind::Process, pid as u64, pid as u64)
}

/// Passes an output event of a worker on to `sink` (the cell that started the work); the
/// end of a job is not output, and is left alone.
pub fn relay_output(event: Event, sink: Option<&Arc<dyn OutputSink>>) {
    let write = |stream: Stream, text: &str| match sink {
        Some(sink) => sink.write(stream, text),
        None => sink::write(stream, text),
    };
    match event {
        Event::Output { stream, text } => write(stream, &text),
        Event::Display { bundle, id, update } => {
            if let Some(sink) = sink {
                sink.display(bundle, id.as_deref(), update);
            }
        }
        Event::ClearOutput { wait } => {
            if let Some(sink) = sink {
                sink.clear_output(wait);
            }
        }
        Event::Page { text } => write(Stream::Stdout, &text),
        Event::Done { .. } | Event::Failed(_) => {}
    }
}

/// Applies one event from a spawned process.
fn apply_event(event: Event, sink: Option<&Arc<dyn OutputSink>>, state: &ProcessState) {
    let outcome = match event {
        Event::Done { values } => {
            match transfer::from_message(values.first().unwrap_or(&serde_json::Value::Null)) {
                Ok(value) => Ok(value),
                Err(e) => Err(Failure::Error(format!(
                    "its result could not be received: {e}"
                ))),
            }
        }
        Event::Failed(error) if error.interrupted => Err(Failure::Interrupted),
        Event::Failed(error) => {
            // At once, like the traceback a Python child prints: nobody may join it.
            report_uncaught(sink, &format!("process {}", state.name), &error.message);
            match error.thrown.as_ref().map(transfer::from_message) {
                Some(Ok(value)) => Err(Failure::Thrown(value, error.message)),
                _ => Err(Failure::Error(error.message)),
            }
        }
        output => return relay_output(output, sink),
    };
    *state.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
}

static PROCESS_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How the thread that played a process ended, as the process's outcome and exit code.
fn played_outcome(ended: Outcome) -> (Outcome, i64) {
    let code = if ended.is_ok() { 0 } else { 1 };
    (ended, code)
}

/// Inside `explore`: a process is played by a thread the explorer schedules, with process
/// semantics (its function's captured variables and its arguments are copies; shared
/// objects are shared), so that its steps interleave with the others'.
pub(crate) fn spawn_played(
    ctx: &NativeCallContext,
    f: FnPtr,
    args: Vec<Dynamic>,
    daemon: bool,
) -> Result<ProcessHandle, Box<EvalAltResult>> {
    let copy = |value: &Dynamic, what: &str| {
        transfer::copied_for_process(value, what).map_err(|e| format!("spawn_process: {e}"))
    };
    let f = copy(&Dynamic::from(f), "the function")?.cast::<FnPtr>();
    let args = (args.iter().enumerate())
        .map(|(i, a)| copy(a, &format!("argument {}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let thread = threads::spawn(ctx, f, args, daemon, actors::Worker::called("Process"))?;
    Ok(ProcessHandle(Arc::new(ProcessState {
        name: thread.name().to_string(),
        daemon,
        pid: std::process::id() as i32,
        outcome: Mutex::new(None),
        ended: Arc::default(),
        reaped: AtomicBool::new(true),
        played_by: Some(thread),
    })))
}

/// Starts `f(args…)` in a new worker process that sees `globals` as `global::` constants;
/// a daemon is not waited for at the end of a script.
pub fn spawn(
    f: FnPtr,
    args: Vec<Dynamic>,
    globals: &Globals,
    daemon: bool,
) -> Result<ProcessHandle, Box<EvalAltResult>> {
    let number = PROCESS_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    let name = if f.is_anonymous() {
        format!("Process-{number}")
    } else {
        format!("Process-{number} ({})", f.fn_name())
    };
    // What the job refers to stays alive until the child has ended: by then it has taken
    // references of its own, or will never need them.
    let mut kept = globals.kept.clone();
    let job = process_job(&f, &args, &name, globals, &mut kept)
        .map_err(|e| format!("spawn_process: {e}"))?;
    let (mut child, _busy) = start_worker(true)?;
    let pid = child.id() as i32;
    // The child sees what its starter did so far (it begins as this object).
    sched::hand_over(process_object(pid));
    let mut stdin = child
        .stdin
        .take()
        .ok_or("spawn_process: no pipe to the worker")?;
    let stdout = child
        .stdout
        .take()
        .ok_or("spawn_process: no pipe from the worker")?;
    let state = Arc::new(ProcessState {
        name,
        daemon,
        pid,
        outcome: Mutex::new(None),
        ended: Arc::default(),
        reaped: AtomicBool::new(false),
        played_by: None,
    });
    let sink = sink::current();
    // Registered before the reader thread can see the process end and unregister it.
    UNFINISHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ProcessHandle(state.clone()));
    let reader_state = state.clone();
    let started = std::time::Instant::now();
    let label = if f.is_anonymous() {
        "closure".to_string()
    } else {
        f.fn_name().to_string()
    };
    let reader = std::thread::Builder::new()
        .name(format!("process-{pid}"))
        .spawn(move || {
            follow_child(
                child,
                BufReader::new(stdout),
                sink,
                reader_state,
                |state| {
                    crate::runtime::sched::worked("process", started, || {
                        (state.name.clone(), label)
                    })
                },
                kept,
            );
        });
    if let Err(e) = reader {
        forget_process(&state);
        return Err(format!("spawn_process: {e}").into());
    }
    // A worker that dies before reading its job makes this write fail; the reader
    // thread then reports how it ended.
    let _ = stdin.write_all(&job);
    drop(stdin);
    Ok(ProcessHandle(state))
}

/// The job of a process named `name` that calls `f(args…)`, as the line to send it: the
/// notebook's function sources and the caller's `global::` constants go along. The handles
/// of shared objects in it go to `kept` (see `transfer::to_json`).
fn process_job(
    f: &FnPtr,
    args: &[Dynamic],
    name: &str,
    globals: &Globals,
    kept: &mut Vec<Held>,
) -> Result<Vec<u8>, String> {
    let args = encode_args(args, kept)?;
    let function = transfer::to_json(&Dynamic::from(f.clone()), "the function", kept)?;
    let function = to_raw_value(&function).map_err(|e| e.to_string())?;
    let (version, sources) = function_sources_versioned();
    let globals: &RawValue = &globals.json;
    protocol::to_line(&Request::Job(Job {
        version,
        sources: Some(sources.iter().map(|s| Cow::Borrowed(&**s)).collect()),
        function: &*function,
        items: Cow::Owned(vec![args]),
        fold: false,
        globals: Some(globals),
        // The child names itself by it where the user reads about several processes.
        name: Some(Cow::Borrowed(name)),
        handoff: None,
        forget: Vec::new(),
        store: Vec::new(),
    }))
}

/// Relays a child's events until it closes its stdout, then reaps it.
/// `kept` holds the shared objects its job refers to, until it has ended.
fn follow_child(
    mut child: WorkerProcess,
    stdout: BufReader<std::fs::File>,
    sink: Option<Arc<dyn OutputSink>>,
    state: Arc<ProcessState>,
    on_exit: impl FnOnce(&ProcessState),
    kept: Vec<Held>,
) {
    let mut stdout = stdout;
    let mut line = String::new();
    while let Some(event) = protocol::read_event(&mut stdout, &mut line) {
        apply_event(event, sink.as_ref(), &state);
    }
    let code = child.wait();
    // What it held and did not give back (it was killed, or never drops at exit).
    lifetime::release_process(state.pid);
    // Before `join` returns: what only the job referred to is freed by then.
    drop(kept);
    state.reaped.store(true, Ordering::SeqCst);
    forget_child(state.pid);
    // Before anyone waiting in `join` can go on (a timeline must see this process).
    on_exit(&state);
    // The state holds the result, and with it the shared objects the child returned or
    // threw: once `join` has returned, only the script's handles may keep it, so that
    // dropping them frees those objects at once. Neither this thread nor the list of
    // unfinished processes may still hold it then.
    forget_process(&state);
    let ended = state.ended.clone();
    drop(state);
    *ended.exit_code.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
    ended.finished.notify_all();
}

fn forget_process(state: &ProcessState) {
    UNFINISHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| !std::ptr::eq(Arc::as_ptr(&p.0), state));
}

#[export_module]
pub mod process_api {
    use super::*;

    /// A script process started with `spawn_process`.
    pub type Process = ProcessHandle;

    /// Waits for the process to finish and returns what its function returned.
    ///
    /// If the function threw (printed on stderr when it happened), `join()` throws an
    /// error with the process's name, the original message and its position; if the
    /// process was killed, the error says so.
    /// Interruptible (an interrupt also stops the child).
    #[rhai_fn(return_raw, pure)]
    pub fn join(process: &mut ProcessHandle) -> Result<Dynamic, Box<EvalAltResult>> {
        let process = process.clone();
        match process.wait() {
            None => Err(interrupted_error()),
            Some((outcome, _)) => joined(&format!("process '{}'", process.0.name), outcome),
        }
    }

    /// Waits at most `timeout` seconds (int or float) for the process. If it ended, the
    /// same as `join()`; if not, returns `()` and it runs on: as in Python, `is_alive`
    /// (or `exit_code`) tells which. Interruptible.
    #[rhai_fn(name = "join", return_raw, pure)]
    pub fn join_timeout(
        process: &mut ProcessHandle,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let process = process.clone();
        let until = crate::runtime::time::deadline(&timeout, "join")?;
        match process.wait_until(until)? {
            Some((outcome, _)) => joined(&format!("process '{}'", process.0.name), outcome),
            None => Ok(Dynamic::UNIT),
        }
    }

    /// The operating system's process id of the child.
    #[rhai_fn(get = "pid", pure)]
    pub fn pid(process: &mut ProcessHandle) -> i64 {
        process.0.pid as i64
    }

    /// The process's name, like `Process-1 (work)`.
    #[rhai_fn(get = "name", pure)]
    pub fn name(process: &mut ProcessHandle) -> String {
        process.0.name.clone()
    }

    /// `true` for a process started with `spawn_daemon_process`: the end of a script does
    /// not wait for it.
    #[rhai_fn(get = "daemon", pure)]
    pub fn daemon(process: &mut ProcessHandle) -> bool {
        process.0.daemon
    }

    /// `()` while running; then 0 (returned normally), 1 (threw an error), the code given
    /// to `exit_process`, or minus the signal number when it was killed.
    #[rhai_fn(get = "exit_code", pure)]
    pub fn exit_code(process: &mut ProcessHandle) -> Dynamic {
        process.exit_code().map_or(Dynamic::UNIT, Dynamic::from_int)
    }

    /// `true` until the process has exited.
    #[rhai_fn(get = "is_alive", pure)]
    pub fn is_alive(process: &mut ProcessHandle) -> bool {
        process.exit_code().is_none()
    }

    /// Asks the process to stop (SIGTERM); its `exit_code` becomes -15.
    #[rhai_fn(pure)]
    pub fn terminate(process: &mut ProcessHandle) {
        process.signal(libc::SIGTERM);
    }

    /// Stops the process at once (SIGKILL); its `exit_code` becomes -9.
    #[rhai_fn(pure)]
    pub fn kill(process: &mut ProcessHandle) {
        process.signal(libc::SIGKILL);
    }

    /// Shows a process as `<Process Process-1 (work), pid 1234, running>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(process: &mut ProcessHandle) -> String {
        let state = match process.exit_code() {
            None => "running".to_string(),
            Some(code) => format!("exit code {code}"),
        };
        format!(
            "<Process {}, pid {}, {state}>",
            process.0.name, process.0.pid
        )
    }

    /// The operating system's id of the calling process.
    pub fn process_id() -> i64 {
        std::process::id() as i64
    }

    /// The resident memory (RSS) of the calling process, in bytes: compare a thread (which
    /// shares its process's memory) with a process (which has its own).
    pub fn memory_usage() -> i64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<i64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// The number of CPUs this process may run on.
    pub fn cpu_count() -> i64 {
        crate::runtime::cpus() as i64
    }

    /// Ends the current worker process at once with exit code `code`, like Python's
    /// `os._exit` (locks it holds are not released: the next `acquire` recovers them).
    /// In the kernel process itself this throws instead of killing the kernel.
    #[rhai_fn(return_raw)]
    pub fn exit_process(code: i64) -> Result<(), Box<EvalAltResult>> {
        match role() {
            Role::Kernel => Err("exit_process() would end the kernel itself; it is meant for processes started with spawn_process".into()),
            Role::Script | Role::Worker => {
                let _ = std::io::stdout().flush();
                std::process::exit(code.clamp(0, 255) as i32)
            }
        }
    }
}
