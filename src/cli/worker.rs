//! The hidden `rhai-kernel worker` mode: the child side of `spawn_process` and of process
//! pools. It reads jobs (JSON lines: the notebook's function sources, a function and a
//! batch of argument lists) from stdin until it closes, runs each, and reports output
//! and results as JSON lines on stdout.

use crate::interpreter::engine::new_engine;
use crate::runtime::engines;
use crate::runtime::launch::{self, Role};
use crate::runtime::lifetime::Receive;
use crate::runtime::pools::run_batch;
use crate::runtime::processes::{error_event, process_error_event, WorkerSink};
use crate::runtime::sched::{Kind, Object};
use crate::runtime::{globals, interrupt, processes, sched, sink, transfer, SCRIPT_STACK_SIZE};
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext, AST};
use serde_json::{json, Value};
use std::io::BufRead;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

/// Runs jobs from stdin until it closes; returns the exit code (1 if the last job failed).
pub fn run_worker() -> i32 {
    launch::set_role(Role::Worker);
    serve_jobs(WorkerRuntime::new())
}

/// Runs jobs from stdin with an engine already built (here, or by the fork server before
/// it forked this process).
pub(crate) fn serve_jobs(runtime: WorkerRuntime) -> i32 {
    let signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]);
    let sink = Arc::new(WorkerSink::default());
    let worker_sink = sink.clone();
    let worker = std::thread::Builder::new()
        .name("worker".into())
        .stack_size(SCRIPT_STACK_SIZE)
        .spawn(move || {
            let mut runtime = runtime;
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sink::with_sink(worker_sink.clone(), || serve(&mut runtime, &worker_sink))
            }));
            let code = served.unwrap_or_else(|_| {
                worker_sink.send(&json!({ "t": "err", "message": "the worker crashed" }));
                1
            });
            // Like a Python child process, and like a script: threads and processes its
            // jobs started and nobody joined finish first (daemons do not).
            crate::runtime::shutdown::wait_for_non_daemons();
            // Every event is already written and flushed. Ending here skips freeing the
            // engine piece by piece (pages shared with the fork server would be copied
            // first) and stops the thread that waits for signals.
            // SAFETY: nothing else needs to run before this process ends.
            unsafe { libc::_exit(code) }
        });
    let worker = match worker {
        Ok(worker) => worker,
        Err(_) => return 1,
    };
    // This thread turns Ctrl-C and the parent's SIGINT into an interrupt of the job.
    match signals {
        Ok(mut signals) => {
            for _ in signals.forever() {
                interrupt::request();
            }
            1
        }
        Err(_) => worker.join().unwrap_or(1),
    }
}

fn serve(runtime: &mut WorkerRuntime, sink: &WorkerSink) -> i32 {
    let mut code = 0;
    // Our own reader on the pipe (not `Stdin`'s hidden buffer), so we can see what is queued.
    let Ok(pipe) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return 1;
    };
    let mut jobs = std::io::BufReader::new(std::fs::File::from(pipe));
    loop {
        // A pool hands a worker its next job before the current one ends. An interrupt
        // that stopped the current job also cancels the one already waiting; only a job
        // the worker had to wait for starts with the interrupt forgotten.
        let queued = !jobs.buffer().is_empty() || stdin_readable();
        let mut line = String::new();
        match jobs.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        if !queued {
            interrupt::clear();
        }
        let event = match serde_json::from_str::<Job>(&line) {
            Ok(job) => runtime.run(job),
            Err(e) => json!({ "t": "err", "message": format!("invalid job: {e}") }),
        };
        code = if event["t"] == "ok" { 0 } else { 1 };
        sink.send(&event);
    }
    code
}

/// Whether a job line is already waiting in the pipe from the kernel.
fn stdin_readable() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { libc::poll(&mut fd, 1, 0) > 0 && fd.revents & libc::POLLIN != 0 }
}

/// One job line from the parent (see `launch::job_json`).
#[derive(serde::Deserialize)]
struct Job {
    #[serde(default)]
    version: u64,
    /// The notebook's function sources, sent when they changed since the last job.
    sources: Option<Vec<String>>,
    function: Value,
    #[serde(default)]
    items: Vec<Vec<Value>>,
    #[serde(default)]
    fold: bool,
    /// The caller's `global::` constants, sent when they changed since the last job.
    globals: Option<Value>,
    /// The process's name (`Process-1 (work)`), sent by `spawn_process`.
    name: Option<String>,
    /// For a pool task while the race detector is on: the ids of the objects its
    /// submitter handed over on and its result is handed over on.
    handoff: Option<[u64; 2]>,
    /// Captured values to give up, then ones to keep for this and later tasks, which
    /// name them by id (see `pools::captured`).
    #[serde(default)]
    forget: Vec<u64>,
    #[serde(default)]
    store: Vec<(u64, Value)>,
}

/// The function and argument lists of the job being run.
struct Batch {
    function: FnPtr,
    items: Vec<Vec<Dynamic>>,
    /// Fold the items with the function (`f(f(x0, x1), x2)…`) instead of mapping it.
    fold: bool,
    /// Index of the item that failed, if one did.
    failed_at: Option<usize>,
    /// What `global::` names in the calls.
    constants: Option<globals::Constants>,
}

/// A worker's engine and the compiled functions of the last sources it received.
pub(crate) struct WorkerRuntime {
    engine: Engine,
    batch: Arc<Mutex<Option<Batch>>>,
    /// The sources' version and the program that runs a batch with their functions.
    program: Option<(u64, AST)>,
    /// The last job's function, as sent and as decoded (a pool sends the same one often).
    function: Option<(Value, FnPtr)>,
    /// The last `global::` constants received (a pool worker keeps them between jobs).
    globals: Option<globals::Received>,
}

/// Name of the native that runs the current batch from inside the notebook's functions.
const RUN_BATCH: &str = "__rhai_kernel_run_batch";
impl WorkerRuntime {
    pub(crate) fn new() -> Self {
        let mut engine = new_engine();
        engines::install_engine(new_engine);
        let batch: Arc<Mutex<Option<Batch>>> = Arc::new(Mutex::new(None));
        let current = batch.clone();
        // Called from a script that has the notebook's functions, so private functions
        // (closures are private) resolve as they do in the notebook.
        engine.register_fn(
            RUN_BATCH,
            move |ctx: NativeCallContext| -> Result<rhai::Array, Box<EvalAltResult>> {
                let mut slot = current.lock().unwrap_or_else(|e| e.into_inner());
                let batch = slot.as_mut().ok_or("no batch to run")?;
                let store = with_constants(&ctx, batch.constants.clone());
                #[allow(deprecated)]
                let ctx = store.create_context(ctx.engine());
                let call =
                    |args: Vec<Dynamic>| batch.function.call_within_context::<Dynamic>(&ctx, args);
                run_batch(&batch.items, batch.fold, call).map_err(|(index, err)| {
                    batch.failed_at = Some(index);
                    err
                })
            },
        );
        WorkerRuntime {
            engine,
            batch,
            program: None,
            function: None,
            globals: None,
        }
    }

    /// Runs a small job, so that what the engine builds lazily on first use exists
    /// before the fork server forks (each worker would build its own copy otherwise).
    pub(crate) fn warm_up(&mut self) {
        let function = FnPtr::new("warm_up")
            .map_err(|e| e.to_string())
            .and_then(|f| transfer::to_json(&Dynamic::from(f), "warm_up", &mut Vec::new()));
        let Ok(function) = function else { return };
        let source = "fn warm_up(x) { let parts = [x, #{ text: `${x}` }]; parts.len() }";
        let _ = self.run(Job {
            version: 0,
            sources: Some(vec![source.to_string()]),
            function,
            items: vec![vec![json!(1)]],
            fold: false,
            globals: None,
            name: None,
            handoff: None,
            forget: Vec::new(),
            store: Vec::new(),
        });
        self.program = None;
        self.function = None;
        launch::set_function_sources(Vec::new());
    }

    /// Runs one job and returns the event reporting its outcome.
    fn run(&mut self, job: Job) -> Value {
        match self.try_run(job) {
            Ok(event) | Err(event) => event,
        }
    }

    fn try_run(&mut self, job: Job) -> Result<Value, Value> {
        let fail = |message: String| json!({ "t": "err", "message": message });
        let version = job.version;
        if let Some(name) = &job.name {
            launch::set_process_name(name);
        }
        if self.program.as_ref().is_none_or(|(v, _)| *v != version) || job.sources.is_some() {
            let sources = job.sources.unwrap_or_default();
            launch::set_function_sources(sources.iter().map(|s| Arc::from(s.as_str())).collect());
            let library = function_library(&self.engine, &sources).map_err(fail)?;
            let entry = self
                .engine
                .compile(format!("{RUN_BATCH}()"))
                .map_err(|e| fail(e.to_string()))?;
            self.program = Some((version, library.merge(&entry)));
        }
        for id in &job.forget {
            transfer::forget(*id);
        }
        for (id, value) in &job.store {
            transfer::store(
                *id,
                transfer::from_json(value, Receive::Acquire).map_err(fail)?,
            );
        }
        let function = match &self.function {
            Some((sent, decoded)) if *sent == job.function => decoded.clone(),
            _ => {
                let decoded = transfer::from_json(&job.function, Receive::Acquire)
                    .map_err(fail)?
                    .try_cast::<FnPtr>()
                    .ok_or_else(|| fail("the job's function is not a function pointer".into()))?;
                self.function = Some((job.function, decoded.clone()));
                decoded
            }
        };
        if let Some(sent) = &job.globals {
            self.globals = Some(globals::Received::decode(sent));
        }
        let mut items = Vec::with_capacity(job.items.len());
        for item in &job.items {
            let args: Result<Vec<Dynamic>, String> = item
                .iter()
                .map(|arg| transfer::from_json(arg, Receive::Acquire))
                .collect();
            items.push(args.map_err(fail)?);
        }
        *self.batch.lock().unwrap_or_else(|e| e.into_inner()) = Some(Batch {
            function,
            items,
            fold: job.fold,
            failed_at: None,
            constants: self.globals.as_ref().map(|g| g.constants.clone()),
        });
        let program = &self
            .program
            .as_ref()
            .ok_or_else(|| fail("no program".into()))?
            .1;
        // A process started while the race detector is on is one more worker of the check:
        // it begins with what its starter did, and its joiner sees what it did.
        // A pool task passes on what happened before it and after it.
        let me = processes::process_object(std::process::id() as i32);
        let (before, after) = match job.handoff {
            Some([submitted, answered]) => (
                Object::new(Kind::Future, submitted, 0),
                Object::new(Kind::Future, answered, 0),
            ),
            None => (me, me),
        };
        let followed = job.name.is_some() || job.handoff.is_some();
        let observing = followed
            .then(crate::runtime::races::attach_worker)
            .flatten();
        if observing.is_some() {
            match &job.name {
                Some(name) => sched::begin(before, name),
                None => sched::take_over(before),
            }
        }
        let outcome = self.engine.eval_ast::<rhai::Array>(program);
        if let Some(observing) = observing {
            sched::hand_over(after);
            drop(observing);
        }
        crate::runtime::sched::leaving();
        let batch = self.batch.lock().unwrap_or_else(|e| e.into_inner()).take();
        match outcome {
            Ok(results) => {
                // Results carry their own references: this worker may have ended by the
                // time its parent reads them.
                let mut encoded = Vec::with_capacity(results.len());
                for (i, result) in results.iter().enumerate() {
                    match transfer::to_message(result, &format!("the result of item {i}")) {
                        Ok(value) => encoded.push(value),
                        Err(e) => {
                            encoded.iter().for_each(transfer::release_message);
                            return Err(fail(e));
                        }
                    }
                }
                Ok(json!({ "t": "ok", "value": encoded }))
            }
            Err(err) => {
                // A process's thrown value goes to its `join`; a pool task's error is text.
                let mut event = match &job.name {
                    Some(_) => process_error_event(&err),
                    None => error_event(&err),
                };
                event["index"] = json!(batch.and_then(|b| b.failed_at).unwrap_or(0));
                if let (Some(globals), Some(message)) = (&self.globals, event["message"].as_str()) {
                    event["message"] = json!(globals.explain(message));
                }
                Err(event)
            }
        }
    }
}

/// A copy of a call's context whose functions see `constants` as `global::` constants:
/// those the caller saw (the program a worker runs has none of its own). Threads and
/// processes started from the calls inherit them.
#[allow(deprecated)]
fn with_constants(
    ctx: &NativeCallContext,
    constants: Option<globals::Constants>,
) -> rhai::NativeCallContextStore {
    let mut store = ctx.store_data();
    store.global.constants = constants;
    store
}

/// Compiles the function definitions of the given sources (later ones replace earlier
/// ones, as in the notebook); top-level statements are dropped, never run. Closures are
/// among them, so the closures this worker receives find their code here (see
/// `transfer::closure_named`).
pub fn function_library(engine: &Engine, sources: &[String]) -> Result<AST, String> {
    let mut library = AST::empty();
    for source in sources {
        let ast = engine
            .compile(source)
            .map_err(|e| format!("cannot compile the notebook's functions: {e}"))?;
        library = library.merge(&ast.clone_functions_only());
    }
    Ok(library)
}
