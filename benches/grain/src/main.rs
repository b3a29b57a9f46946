//! Rhai's Grain bytecode VM against its tree-walking evaluator, on an engine set up as the
//! kernel's is (a progress hook, a variable resolver, no-op lock natives): `grain-study
//! <script.rhai> <ast|grain> [options]`. `bench.py` counts instructions with it (docs/benchmarks.md).
//!
//! Options:
//!   --resolver=none|on_var|kernel   variable resolver (kernel = `on_shared_or_missing_var`
//!                                   with the kernel's logic: plain -> None, shared -> the
//!                                   flattened value, missing -> None). Default: kernel.
//!   --debugger                      register a debugger that steps into everything
//!   --report                        print counters (progress calls, debugger events,
//!                                   resolver names) to stderr at the end
use rhai::grain::{Compiler, Vm};
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext, Scope};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

static FLAG: AtomicBool = AtomicBool::new(false);
static PROGRESS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);
static DBG_EVENTS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
static RESOLVER_NAMES: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// A no-op lock: method calls cost what the kernel's do minus the real locking.
#[derive(Clone, Default)]
struct Lock;

/// Returned by `guard()`; dropped at scope end.
#[derive(Clone)]
struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        std::hint::black_box(());
    }
}

fn hold(ctx: NativeCallContext, _l: &mut Lock, f: FnPtr) -> Result<Dynamic, Box<EvalAltResult>> {
    f.call_within_context::<Dynamic>(&ctx, ())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: runner <script.rhai> <ast|grain> [--resolver=none|on_var|kernel] [--debugger] [--report]");
        std::process::exit(2);
    }
    let path = &args[1];
    let mode = args[2].as_str();
    let mut resolver = "kernel".to_string();
    let mut debugger = false;
    let mut report = false;
    let mut pre: Vec<(String, i64)> = Vec::new();
    for a in &args[3..] {
        if let Some(r) = a.strip_prefix("--resolver=") {
            resolver = r.to_string();
        } else if a == "--debugger" {
            debugger = true;
        } else if let Some(kv) = a.strip_prefix("--scope-var=") {
            // A variable left in the scope by an "earlier cell".
            let (k, v) = kv.split_once('=').expect("--scope-var=name=int");
            pre.push((k.to_string(), v.parse().expect("int")));
        } else if a == "--report" {
            report = true;
        } else {
            panic!("unknown option {a}");
        }
    }
    COUNTING.store(report, Relaxed);

    let mut engine = Engine::new();
    engine.set_max_strings_interned(0);
    engine.set_max_call_levels(1000);
    engine.set_max_expr_depths(512, 256);

    // on_progress: one relaxed load (plus a counter only when reporting).
    // STOP_AFTER=k: raise the flag at the k-th call (checks that an interrupt stops the run).
    let stop_after: u64 = std::env::var("STOP_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    engine.on_progress(move |_ops| {
        if FLAG.load(Relaxed) {
            return Some(Dynamic::from("interrupted"));
        }
        if COUNTING.load(Relaxed) {
            let k = PROGRESS.fetch_add(1, Relaxed) + 1;
            if stop_after != 0 && k >= stop_after {
                FLAG.store(true, Relaxed);
            }
        }
        None
    });

    engine
        .register_type_with_name::<Lock>("Lock")
        .register_fn("lock", || Lock)
        .register_fn("lock", |_l: &mut Lock| {})
        .register_fn("acquire", |_l: &mut Lock| {})
        .register_fn("release", |_l: &mut Lock| {})
        .register_type_with_name::<Guard>("Guard")
        .register_fn("guard", |_l: &mut Lock| Guard)
        .register_fn("hold", hold);
    // A native that calls a script closure given as a plain argument.
    engine.register_fn("call_it", |ctx: NativeCallContext, f: FnPtr| {
        f.call_within_context::<Dynamic>(&ctx, ())
    });

    let record = |name: &str, index: usize, kind: &str| {
        if COUNTING.load(Relaxed) {
            *RESOLVER_NAMES
                .lock()
                .unwrap()
                .entry(format!("{name} (index {index}, {kind})"))
                .or_default() += 1;
        }
    };
    match resolver.as_str() {
        "none" => {}
        "on_var" | "kernel" => {
            let f = move |name: &str, index: usize, ctx: rhai::EvalContext| {
                let scope = ctx.scope();
                // As the kernel's `variable` (src/interpreter/engine.rs:29).
                let found = if index == 0 {
                    scope.get(name)
                } else {
                    scope.iter_raw().nth(index - 1).map(|(_, _, v)| v)
                };
                match found {
                    Some(v) => {
                        if v.is_shared() {
                            record(name, index, "shared");
                            // As the kernel's `read_captured`: a runtime object is handed
                            // out by value (no lock held across the call); anything else
                            // is left to Rhai.
                            let inner = v.flatten_clone();
                            if inner.is::<Lock>() {
                                Ok(Some(inner))
                            } else {
                                Ok(None)
                            }
                        } else {
                            record(name, index, "plain");
                            Ok(None)
                        }
                    }
                    None => {
                        record(name, index, "missing");
                        Ok(None)
                    }
                }
            };
            if resolver == "kernel" {
                #[allow(deprecated)]
                engine.on_shared_or_missing_var(f);
            } else {
                #[allow(deprecated)]
                engine.on_var(f);
            }
        }
        other => panic!("unknown resolver {other}"),
    }

    if debugger {
        #[allow(deprecated)]
        engine.register_debugger(
            |_, dbg| dbg,
            |ctx, event, node, _src, pos| {
                if std::env::var_os("DBG_SCOPE").is_some() {
                    let names: Vec<String> = ctx
                        .scope()
                        .iter_raw()
                        .map(|(n, _, v)| format!("{n}={v}"))
                        .collect();
                    let depth = ctx.global_runtime_state().debugger().call_stack().len();
                    eprintln!("  dbg line {:?} depth {depth} scope {names:?}", pos.line());
                }
                use rhai::debugger::DebuggerEvent as E;
                let kind = match event {
                    E::Start => "Start".to_string(),
                    E::Step => format!(
                        "Step@{}:{}",
                        match node {
                            rhai::ASTNode::Stmt(_) => "stmt",
                            rhai::ASTNode::Expr(_) => "expr",
                            #[allow(unreachable_patterns)]
                            _ => "other",
                        },
                        pos.line().unwrap_or(0)
                    ),
                    E::BreakPoint(_) => "BreakPoint".to_string(),
                    E::FunctionExitWithValue(_) => "FunctionExitWithValue".to_string(),
                    E::FunctionExitWithError(_) => "FunctionExitWithError".to_string(),
                    E::End => "End".to_string(),
                    #[allow(unreachable_patterns)]
                    _ => "other".to_string(),
                };
                *DBG_EVENTS.lock().unwrap().entry(kind).or_default() += 1;
                Ok(rhai::debugger::DebuggerCommand::StepInto)
            },
        );
    }

    let source = std::fs::read_to_string(path).expect("read script");
    let ast = engine.compile(&source).unwrap_or_else(|e| {
        eprintln!("compile error: {e}");
        std::process::exit(1)
    });
    let mut scope = Scope::new();
    for (k, v) in pre {
        scope.push(k, v);
    }
    let result = match mode {
        "ast" => engine.eval_ast_with_scope::<Dynamic>(&mut scope, &ast),
        "grain" => {
            let program = Compiler::new().compile(&ast);
            if report {
                eprintln!(
                    "grain: residual fragments = {}, makes_fn_pointers = {}",
                    program.residual_count(),
                    program.makes_fn_pointers()
                );
            }
            let program = program.into_shared();
            Vm::new(&engine).eval_with_callbacks(&mut scope, &program)
        }
        other => panic!("unknown mode {other}"),
    };
    match result {
        Ok(v) => println!("result: {v:?}"),
        Err(e) => {
            println!("error: {e}");
        }
    }
    if report {
        eprintln!("on_progress calls: {}", PROGRESS.load(Relaxed));
        eprintln!("debugger events: {:?}", DBG_EVENTS.lock().unwrap());
        eprintln!("resolver asked: {:?}", RESOLVER_NAMES.lock().unwrap());
    }
}
