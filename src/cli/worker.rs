//! The hidden `rhai-kernel worker` mode: the child side of `spawn_process`. It reads one
//! job (function sources, the function, its arguments) from stdin, runs it, and reports
//! output and the result as JSON lines on stdout.

use crate::interpreter::engine::new_engine;
use crate::runtime::processes::{self, error_event, Role, WorkerSink};
use crate::runtime::transfer::{CLOSURE_PREFIX, FORWARDER_PREFIX};
use crate::runtime::{interrupt, sink, threads, transfer, SCRIPT_STACK_SIZE};
use rhai::{Dynamic, FnPtr, AST};
use serde_json::{json, Value};
use std::io::BufRead;
use std::sync::Arc;

/// Runs the job on stdin; returns the exit code (0 ok, 1 the function failed).
pub fn run_worker() -> i32 {
    processes::set_role(Role::Worker);
    forward_sigint();
    let sink = Arc::new(WorkerSink::default());
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim().is_empty() {
        eprintln!("rhai-kernel worker: no job on stdin");
        return 2;
    }
    let job: Value = match serde_json::from_str(&line) {
        Ok(job) => job,
        Err(e) => {
            sink.send(&json!({ "t": "err", "message": format!("invalid job: {e}") }));
            return 2;
        }
    };
    let job_sink = sink.clone();
    let worker = std::thread::Builder::new()
        .name("worker".into())
        .stack_size(SCRIPT_STACK_SIZE)
        .spawn(move || sink::with_sink(job_sink.clone(), || run_job(&job, &job_sink)));
    match worker.map(|w| w.join()) {
        Ok(Ok(code)) => code,
        _ => {
            sink.send(&json!({ "t": "err", "message": "the worker crashed" }));
            1
        }
    }
}

fn forward_sigint() {
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]) {
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    interrupt::request();
                }
            })
            .ok();
    }
}

/// Compiles the function definitions of the given sources (later ones replace earlier
/// ones, as in the notebook); top-level statements are dropped, never run. Each closure
/// gets a forwarding function with a name that function pointers can use.
pub fn function_library(engine: &rhai::Engine, sources: &[String]) -> Result<AST, String> {
    let mut library = AST::empty();
    for source in sources {
        let ast = engine
            .compile(source)
            .map_err(|e| format!("cannot compile the notebook's functions: {e}"))?;
        library = library.merge(&ast.clone_functions_only());
    }
    let mut forwarders = String::new();
    for f in library.iter_functions() {
        if let Some(hash) = f.name.strip_prefix(CLOSURE_PREFIX) {
            let params: Vec<String> = (0..f.params.len()).map(|i| format!("p{i}")).collect();
            forwarders.push_str(&format!(
                "fn {FORWARDER_PREFIX}{hash}({list}) {{ {CALL_CLOSURE}(\"{name}\", [{list}]) }}\n",
                list = params.join(", "),
                name = f.name,
            ));
        }
    }
    if !forwarders.is_empty() {
        let ast = engine
            .compile(&forwarders)
            .map_err(|e| format!("cannot prepare closures: {e}"))?;
        library = library.merge(&ast);
    }
    Ok(library)
}

/// The native through which forwarders call closures by their internal name.
const CALL_CLOSURE: &str = "__rhai_kernel_call_closure";

fn register_closure_caller(engine: &mut rhai::Engine) {
    engine.register_fn(
        CALL_CLOSURE,
        |ctx: rhai::NativeCallContext, name: &str, args: rhai::Array| {
            let mut args = args;
            let mut refs: Vec<&mut Dynamic> = args.iter_mut().collect();
            ctx.call_fn_raw(name, false, false, &mut refs)
        },
    );
}

/// Calls `function(args…)` from inside a script that has the notebook's functions, so
/// private functions (closures are private) resolve as they do in the notebook.
fn call_in_library(
    mut engine: rhai::Engine,
    library: &AST,
    function: FnPtr,
    args: Vec<Dynamic>,
) -> Result<Dynamic, Box<rhai::EvalAltResult>> {
    engine.register_fn("__rhai_kernel_job", move |ctx: rhai::NativeCallContext| {
        function.call_within_context::<Dynamic>(&ctx, args.clone())
    });
    let entry = engine.compile("__rhai_kernel_job()")?;
    engine.eval_ast::<Dynamic>(&library.merge(&entry))
}

fn run_job(job: &Value, sink: &WorkerSink) -> i32 {
    let worker_engine = || {
        let mut engine = new_engine();
        register_closure_caller(&mut engine);
        engine
    };
    let engine = worker_engine();
    threads::install_engine(worker_engine);
    let sources: Vec<String> = job["sources"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    processes::set_function_sources(sources.iter().map(|s| Arc::from(s.as_str())).collect());
    let prepared = function_library(&engine, &sources).and_then(|library| {
        let function = transfer::from_json(&job["function"])?;
        let function = function
            .try_cast::<FnPtr>()
            .ok_or("the job's function is not a function pointer")?;
        let args: Result<Vec<Dynamic>, String> = job["args"]
            .as_array()
            .map(|a| a.iter().map(transfer::from_json).collect())
            .unwrap_or_else(|| Ok(Vec::new()));
        Ok((library, function, args?))
    });
    let (library, function, args) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            sink.send(&json!({ "t": "err", "message": message }));
            return 1;
        }
    };
    match call_in_library(engine, &library, function, args) {
        Ok(value) => match transfer::to_json(&value, "the result") {
            Ok(value) => {
                sink.send(&json!({ "t": "ok", "value": value }));
                0
            }
            Err(message) => {
                sink.send(&json!({ "t": "err", "message": message }));
                1
            }
        },
        Err(err) => {
            sink.send(&error_event(&err));
            1
        }
    }
}
