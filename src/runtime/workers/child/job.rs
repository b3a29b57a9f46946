//! Running one job in a worker: the engine, the notebook's functions compiled from the
//! sources the parent sent, the captured values and `global::` constants it keeps between
//! jobs, and how the job ended, as the event that reports it.

use super::NewEngine;
use crate::runtime::engines;
use crate::runtime::failures::{self, describe_error};
use crate::runtime::lifetime::Receive;
use crate::runtime::pools::run_batch;
use crate::runtime::processes;
use crate::runtime::sched::{self, Kind, Object};
use crate::runtime::workers::protocol::{Event, Job, JobError};
use crate::runtime::{globals, launch, transfer};
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext, AST};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

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
pub(super) struct WorkerRuntime {
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
    pub(super) fn new(new_engine: NewEngine) -> Self {
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
    pub(super) fn warm_up(&mut self) {
        let function = FnPtr::new("warm_up")
            .map_err(|e| e.to_string())
            .and_then(|f| transfer::to_json(&Dynamic::from(f), "warm_up", &mut Vec::new()));
        let Ok(function) = function else { return };
        let source = "fn warm_up(x) { let parts = [x, #{ text: `${x}` }]; parts.len() }";
        let _ = self.run(Job {
            version: 0,
            sources: Some(vec![Cow::Borrowed(source)]),
            function,
            items: Cow::Owned(vec![vec![Value::from(1)]]),
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
    pub(super) fn run(&mut self, job: Job) -> Event {
        match self.try_run(job) {
            Ok(values) => Event::Done { values },
            Err(error) => Event::Failed(error),
        }
    }

    /// The job's results, each carrying its own references.
    fn try_run(&mut self, job: Job) -> Result<Vec<Value>, JobError> {
        let fail = |message: String| JobError::new(message);
        let version = job.version;
        if let Some(name) = &job.name {
            launch::set_process_name(name);
        }
        if self.program.as_ref().is_none_or(|(v, _)| *v != version) || job.sources.is_some() {
            let sources = job.sources.unwrap_or_default();
            launch::set_function_sources(sources.iter().map(|s| Arc::from(&**s)).collect());
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
        for item in job.items.iter() {
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
        sched::leaving();
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
                Ok(encoded)
            }
            Err(err) => {
                // A process's thrown value goes to its `join`; a pool task's error is text.
                let mut error = job_error(&err, job.name.is_some());
                error.index = batch.and_then(|b| b.failed_at).unwrap_or(0);
                if let Some(globals) = &self.globals {
                    error.message = globals.explain(&error.message);
                }
                Err(error)
            }
        }
    }
}

/// How the job's function failed; a process's thrown value that is not a string goes
/// along (`with_thrown`), for `join` to throw it again as it was.
fn job_error(err: &EvalAltResult, with_thrown: bool) -> JobError {
    let thrown = with_thrown
        .then(|| failures::thrown_value(err))
        .flatten()
        .and_then(|value| transfer::to_message(&value, "the thrown value").ok());
    JobError {
        message: describe_error(err),
        interrupted: matches!(err, EvalAltResult::ErrorTerminated(..)),
        index: 0,
        thrown,
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
fn function_library(engine: &Engine, sources: &[Cow<str>]) -> Result<AST, String> {
    let mut library = AST::empty();
    for source in sources {
        let ast = engine
            .compile(&**source)
            .map_err(|e| format!("cannot compile the notebook's functions: {e}"))?;
        library = library.merge(&ast.clone_functions_only());
    }
    Ok(library)
}
