//! The natives that start work with any number of arguments: `spawn_thread`,
//! `spawn_daemon_thread`, `spawn_process` and `spawn_daemon_process`, registered once per
//! arity up to [`MAX_THREAD_ARGS`].

use crate::runtime::actors;
use crate::runtime::{globals, processes, sched, threads};
use rhai::{
    Dynamic, EvalAltResult, FnPtr, FuncRegistration, Module, NativeCallContext, RhaiFunc, Shared,
};
use std::any::TypeId;

/// The most arguments `spawn_thread` passes on to the function.
pub const MAX_THREAD_ARGS: usize = 8;

const SPAWN_THREAD_DOC: &str = "\
/// Starts `f(args…)` on a new OS thread and returns a `Thread` (0 to 8 arguments).
///
/// `f` is a function pointer: a function's bare name (also from an earlier cell),
/// `Fn(\"name\")`, or a closure. `print` output of the thread appears in the cell that
/// started it. Get the result with `join()`; an error the function throws is also
/// printed on stderr at once (`Exception in thread …`). At the end of a script run with
/// `rhai-kernel run`, threads not joined yet are waited for (see `spawn_daemon_thread`).
///
/// ```rhai
/// fn work(n) { sleep(0.1); n * n }
/// let t = spawn_thread(work, 7);
/// t.join()   // 49
/// ```";

const SPAWN_DAEMON_THREAD_DOC: &str = "\
/// Starts `f(args…)` on a new OS thread, like `spawn_thread`, as a *daemon*: the end of
/// a script does not wait for it (Python's `Thread(daemon=True)`); it is stopped when the
/// script's main code and its other threads and processes are done. Threads it starts are
/// daemons too. `join()` works as for any thread.
///
/// ```rhai
/// let ticker = spawn_daemon_thread(|| { loop { sleep(1.0); print(\"tick\"); } });
/// ticker.daemon   // true
/// ```";

/// Registers `spawn_thread(f, args…)` and `spawn_daemon_thread(f, args…)`.
pub fn register_spawn_thread(module: &mut Module) {
    for (name, doc, daemon) in [
        ("spawn_thread", SPAWN_THREAD_DOC, false),
        ("spawn_daemon_thread", SPAWN_DAEMON_THREAD_DOC, true),
    ] {
        register_variadic(module, name, doc, None, "Thread", move |ctx, _, f, args| {
            threads::spawn(ctx, f, args, daemon, actors::Worker::called("Thread"))
                .map(Dynamic::from)
        });
    }
}

/// A native that takes a leading value (a pool, a time), then a function and its
/// arguments.
type Variadic = dyn Fn(&NativeCallContext, Dynamic, FnPtr, Vec<Dynamic>) -> Result<Dynamic, Box<EvalAltResult>>
    + Send
    + Sync;

/// Registers `name([leading,] f, args…)` for 0 to [`MAX_THREAD_ARGS`] arguments after the
/// function. `leading` is the type and the name of a first parameter, if there is one;
/// with it, `name` is also a method of that type (`pool.submit(f, args…)`).
pub fn register_variadic(
    module: &mut Module,
    name: &str,
    doc: &str,
    leading: Option<(TypeId, &str)>,
    returns: &str,
    call: impl Fn(&NativeCallContext, Dynamic, FnPtr, Vec<Dynamic>) -> Result<Dynamic, Box<EvalAltResult>>
        + Send
        + Sync
        + 'static,
) {
    let call: Shared<Variadic> = Shared::new(call);
    let skip = usize::from(leading.is_some());
    for arity in 0..=MAX_THREAD_ARGS {
        let mut types = Vec::new();
        let mut params = Vec::new();
        if let Some((type_id, leading)) = leading {
            types.push(type_id);
            params.push(leading.to_string());
        }
        types.push(TypeId::of::<FnPtr>());
        types.extend(std::iter::repeat_n(TypeId::of::<Dynamic>(), arity));
        params.push("f: Fn".to_string());
        params.extend((1..=arity).map(|i| format!("arg{i}: ?")));
        params.push(returns.to_string());
        let call = call.clone();
        let call_name = name.to_string();
        let func = Shared::new(
            move |ctx: Option<NativeCallContext>, args: &mut [&mut Dynamic]| {
                let ctx = ctx.ok_or_else(|| format!("{call_name} needs a call context"))?;
                // A method's first argument is the caller's own value: read, not taken.
                let first = match skip {
                    0 => Dynamic::UNIT,
                    _ => args[0].clone(),
                };
                let f = std::mem::take(args[skip]).cast::<FnPtr>();
                let rest = args[skip + 1..]
                    .iter_mut()
                    .map(|a| std::mem::take(*a))
                    .collect();
                call(&ctx, first, f, rest)
            },
        );
        let registered = match leading {
            Some(_) => RhaiFunc::Method {
                func,
                has_context: true,
                is_pure: true,
                is_volatile: true,
            },
            None => RhaiFunc::Pure {
                func,
                has_context: true,
                is_pure: true,
                is_volatile: true,
            },
        };
        FuncRegistration::new(name)
            .with_comments([doc])
            .with_params_info(params)
            .set_into_module_raw(module, types, registered);
    }
}

const SPAWN_PROCESS_DOC: &str = "\
/// Starts `f(args…)` in a new OS process and returns a `Process` (0 to 8 arguments).
///
/// `f` can be a function or closure defined in any earlier cell. Arguments and the
/// result cross as data (numbers, strings, bools, `()`, arrays, maps); locks, values,
/// shared arrays and other shared objects cross by reference, so the child uses the same
/// object. Output of the child appears in the cell that started it; an error its function
/// throws is printed on stderr at once (`Exception in process …`) and thrown by `join()`.
/// `global::` constants read as they do in the caller (a constant that cannot be sent,
/// like a `Thread`, gives an error naming it when the child reads it). At the end of a
/// script run with `rhai-kernel run`, processes not joined yet are waited for (see
/// `spawn_daemon_process`).
///
/// ```rhai
/// fn work(n) { n * n }
/// let p = spawn_process(work, 7);
/// p.join()   // 49
/// ```";

const SPAWN_DAEMON_PROCESS_DOC: &str = "\
/// Starts `f(args…)` in a new OS process, like `spawn_process`, as a *daemon*: the end of
/// a script does not wait for it (Python's `Process(daemon=True)`); it is killed when the
/// script's main code and its other threads and processes are done. `join()`,
/// `terminate()` and the rest work as for any process.
///
/// ```rhai
/// let server = spawn_daemon_process(|| { loop { sleep(1.0); } });
/// server.daemon   // true
/// ```";

/// Registers `spawn_process(f, args…)` and `spawn_daemon_process(f, args…)`; inside
/// `explore` the process is played by a thread.
pub fn register_spawn_process(module: &mut Module) {
    for (name, doc, daemon) in [
        ("spawn_process", SPAWN_PROCESS_DOC, false),
        ("spawn_daemon_process", SPAWN_DAEMON_PROCESS_DOC, true),
    ] {
        register_variadic(
            module,
            name,
            doc,
            None,
            "Process",
            move |ctx, _, f, args| {
                if sched::controller().is_some() {
                    return processes::spawn_played(ctx, f, args, daemon).map(Dynamic::from);
                }
                processes::spawn(f, args, &globals::of_context(ctx), daemon).map(Dynamic::from)
            },
        );
    }
}
