//! Script processes: `spawn_process(f, args…)` runs a function in a new OS process. The
//! kernel is never forked: workers are forked by the fork server (a single-threaded
//! process of this same binary in a hidden worker mode), or started by executing the
//! binary (see `launch`), and given the source of every cell that defined functions (they
//! keep only their definitions), the function and its arguments as JSON. Shared objects
//! cross by reference, and the child's output comes back over its stdout to the cell that
//! started it.

use crate::runtime::actors;
use crate::runtime::failures::{describe_error, report_uncaught, Failure};
use crate::runtime::globals::Globals;
use crate::runtime::launch::{encode_args, forget_child, job_json, role, start_worker, Role};
use crate::runtime::lifetime::{self, Held};
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use crate::runtime::sink::{self, MimeBundle, OutputSink, Stream};
use crate::runtime::threads::{self, ThreadHandle};
use crate::runtime::worker_process::WorkerProcess;
use crate::runtime::{interrupted_error, transfer};
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr, NativeCallContext};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

// ---- the parent's view of a child ---------------------------------------------------

#[derive(Clone, Debug)]
enum Outcome {
    Value(Dynamic),
    Error(String),
    /// It threw a value that is not a string: `join` throws that value.
    Thrown(Dynamic),
    Interrupted,
}

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
            Outcome::Error(if code < 0 {
                format!("killed by signal {}", -code)
            } else {
                format!("exited with code {code} before returning a result")
            })
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

/// Passes an output event of a worker on to `sink` (the cell that started the work);
/// returns false for events that are not output.
pub fn relay_output(event: &Value, sink: Option<&Arc<dyn OutputSink>>) -> bool {
    let write = |stream: Stream, text: &str| match sink {
        Some(sink) => sink.write(stream, text),
        None => sink::write(stream, text),
    };
    match event["t"].as_str().unwrap_or_default() {
        "out" => {
            let stream = if event["s"] == "stderr" {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            write(stream, event["text"].as_str().unwrap_or_default());
        }
        "display" => {
            if let (Some(sink), Some(bundle)) = (sink, event["bundle"].as_object()) {
                sink.display(
                    bundle.clone(),
                    event["id"].as_str(),
                    event["update"] == true,
                );
            }
        }
        "clear" => {
            if let Some(sink) = sink {
                sink.clear_output(event["wait"] == true);
            }
        }
        "page" => write(Stream::Stdout, event["text"].as_str().unwrap_or_default()),
        _ => return false,
    }
    true
}

/// Applies one event line from a spawned process.
fn apply_event(event: &Value, sink: Option<&Arc<dyn OutputSink>>, state: &ProcessState) {
    if relay_output(event, sink) {
        return;
    }
    match event["t"].as_str().unwrap_or_default() {
        "ok" => {
            let outcome = match transfer::from_message(&event["value"][0]) {
                Ok(value) => Outcome::Value(value),
                Err(e) => Outcome::Error(format!("its result could not be received: {e}")),
            };
            *state.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        }
        "err" => {
            let outcome = if event["interrupted"] == true {
                Outcome::Interrupted
            } else {
                let message = event["message"].as_str().unwrap_or("unknown error");
                // At once, like the traceback a Python child prints: nobody may join it.
                report_uncaught(sink, &format!("process {}", state.name), message);
                match event.get("thrown").map(transfer::from_message) {
                    Some(Ok(value)) => Outcome::Thrown(value),
                    _ => Outcome::Error(message.to_string()),
                }
            };
            *state.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        }
        _ => {}
    }
}

static PROCESS_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How the thread that played a process ended, as the process's outcome and exit code.
fn played_outcome(ended: Result<Dynamic, Failure>) -> (Outcome, i64) {
    match ended {
        Ok(value) => (Outcome::Value(value), 0),
        Err(Failure::Error(message)) => (Outcome::Error(message), 1),
        Err(Failure::Thrown(value, _)) => (Outcome::Thrown(value), 1),
        Err(Failure::Interrupted) => (Outcome::Interrupted, 1),
    }
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
    let mut job = encode_args(&args, &mut kept)
        .and_then(|args| job_json(&f, &[args], true, globals, &mut kept))
        .map_err(|e| format!("spawn_process: {e}"))?;
    // The child names itself by it where the user reads about several processes.
    job["name"] = json!(&name);
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
    let _ = stdin.write_all(format!("{job}\n").as_bytes());
    drop(stdin);
    Ok(ProcessHandle(state))
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
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Value>(&line) {
            Ok(event) => apply_event(&event, sink.as_ref(), &state),
            Err(_) => {
                let text = format!("{line}\n");
                match &sink {
                    Some(sink) => sink.write(Stream::Stdout, &text),
                    None => sink::write(Stream::Stdout, &text),
                }
            }
        }
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

/// What `join` gives for a process that ended.
fn joined(process: &ProcessHandle, outcome: Outcome) -> Result<Dynamic, Box<EvalAltResult>> {
    match outcome {
        Outcome::Value(value) => Ok(value),
        Outcome::Interrupted => Err(format!("process '{}' was interrupted", process.0.name).into()),
        Outcome::Error(message) => {
            Err(format!("process '{}' failed: {message}", process.0.name).into())
        }
        Outcome::Thrown(value) => {
            Err(EvalAltResult::ErrorRuntime(value, rhai::Position::NONE).into())
        }
    }
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
            Some((outcome, _)) => joined(&process, outcome),
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
            Some((outcome, _)) => joined(&process, outcome),
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

/// Formats an error of the worker's function for the parent.
pub fn error_event(err: &EvalAltResult) -> Value {
    let interrupted = matches!(err, EvalAltResult::ErrorTerminated(..));
    json!({ "t": "err", "message": describe_error(err), "interrupted": interrupted })
}

/// [`error_event`] of a process started with `spawn_process`: a thrown map (or number…)
/// goes along, for `join` to throw it again as it was.
pub fn process_error_event(err: &EvalAltResult) -> Value {
    let mut event = error_event(err);
    if let Some(value) = crate::runtime::failures::thrown_value(err) {
        if let Ok(value) = transfer::to_message(&value, "the thrown value") {
            event["thrown"] = value;
        }
    }
    event
}

/// Output of a worker process: JSON lines on its stdout, read by the parent.
pub struct WorkerSink {
    out: Mutex<std::io::Stdout>,
}

impl Default for WorkerSink {
    fn default() -> Self {
        WorkerSink {
            out: Mutex::new(std::io::stdout()),
        }
    }
}

impl WorkerSink {
    pub fn send(&self, event: &Value) {
        // One write of the whole line: the parent wakes once per event.
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(&line);
        let _ = out.flush();
    }
}

impl OutputSink for WorkerSink {
    fn write(&self, stream: Stream, text: &str) {
        self.send(&json!({ "t": "out", "s": stream.name(), "text": text }));
    }

    fn display(&self, bundle: MimeBundle, display_id: Option<&str>, update: bool) {
        self.send(&json!({ "t": "display", "bundle": bundle, "id": display_id, "update": update }));
    }

    fn clear_output(&self, wait: bool) {
        self.send(&json!({ "t": "clear", "wait": wait }));
    }

    fn read_input(&self, _prompt: &str, _password: bool) -> Result<String, sink::InputError> {
        Err(sink::InputError::NotAllowed)
    }

    fn page(&self, text: &str) {
        self.send(&json!({ "t": "page", "text": text }));
    }
}
