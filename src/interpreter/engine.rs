//! Construction of the Rhai engine shared by the kernel and the script runner.

use crate::runtime::sink::{self, Stream};
use crate::runtime::{interrupt, RuntimePackage, INTERRUPTED};
use rhai::packages::Package;
use rhai::{Dynamic, Engine};

pub use crate::runtime::SCRIPT_STACK_SIZE;

/// Maximum depth of nested script function calls. Script code runs on threads with
/// [`SCRIPT_STACK_SIZE`] bytes of stack, which this depth must fit in (debug builds use
/// several times more stack per call than release builds).
pub const MAX_CALL_LEVELS: usize = 1_000;

/// A function pointer to the script function `name`, if the running code has one.
fn script_function_pointer(ctx: &rhai::EvalContext, name: &str) -> Option<Dynamic> {
    let defined = ctx
        .iter_namespaces()
        .any(|module| (0..=MAX_FUNCTION_PARAMS).any(|n| module.get_script_fn(name, n).is_some()));
    if !defined {
        return None;
    }
    rhai::FnPtr::new(name).ok().map(Dynamic::from)
}

/// The variable `name` of `scope`: in the slot `index` from the end when Rhai resolved one
/// (as Rhai itself then reads it), else searched by name.
#[inline]
fn variable<'s>(scope: &'s rhai::Scope, name: &str, index: usize) -> Option<&'s Dynamic> {
    if index == 0 {
        return scope.get(name);
    }
    // A reversed iterator over two slices: `nth` steps over the entries after the slot
    // without comparing names.
    let (slot_name, _, value) = scope.iter_raw().nth(index - 1)?;
    debug_assert_eq!(
        slot_name, name,
        "Rhai's variable slot {index} is another variable"
    );
    Some(value)
}

/// How a runtime object (a lock, a thread, an exploration…) shows itself: the script-level
/// `to_string` its package gives it, which Rust's view of the value does not know. `None`
/// for other values.
pub fn object_text(engine: &Engine, value: &Dynamic) -> Option<String> {
    if !value.is_variant() {
        return None;
    }
    let mut scope = rhai::Scope::new();
    scope.push_dynamic("value", value.clone());
    engine
        .eval_with_scope::<String>(&mut scope, "to_string(value)")
        .ok()
}

/// Functions with more parameters than this are not found by their bare name.
const MAX_FUNCTION_PARAMS: usize = 16;

/// A configured engine: the runtime package, output through the current sink, the
/// interrupt flag checked at every operation, and limits that turn runaway recursion into
/// an error instead of a crash.
pub fn new_engine() -> Engine {
    let mut engine = Engine::new();
    engine.register_global_module(RuntimePackage::new().as_shared_module());
    // The string interner's lock would serialise script threads.
    engine.set_max_strings_interned(0);
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    engine.set_max_expr_depths(512, 256);
    engine.on_print(|text| sink::write(Stream::Stdout, &format!("{text}\n")));
    engine.on_debug(|text, source, pos| {
        let location = match (source, pos.line()) {
            (Some(source), Some(line)) => format!("[{source}:{line}] "),
            (None, Some(line)) => format!("[line {line}] "),
            _ => String::new(),
        };
        sink::write(Stream::Stderr, &format!("{location}{text}\n"));
    });
    // A closure's captured variable is one shared slot, and any use of it holds that slot
    // locked for the whole expression, method calls included, so `c.hold(|| c.wait())`,
    // `forks[0].hold(|| forks[1].hold(…))`, or two threads using one captured lock, would
    // fail with a data race. A runtime object is itself a reference, so reading such a
    // variable — or an array or map of nothing but runtime objects — yields the value, and
    // calls never lock (see `shared_vars`). Variables that are not captured (not shared)
    // never reach the hook: Rhai reads them from the scope itself (a patch of the vendored
    // Rhai, see vendor/README.md; asking a hook about every variable access cost 9 % of
    // a loop's instructions). A variable the compiler gave a slot (`index`, counted from
    // the scope's end) is looked at there instead of searching the scope by name.
    //
    // Also, a bare function name refers to the function (`let f = square;`). Rhai resolves
    // that only for functions of the script being compiled; functions from earlier cells
    // are found here, including inside closures.
    #[allow(deprecated)] // marked volatile, not deprecated
    engine.on_shared_or_missing_var(|name, index, mut ctx| {
        match variable(ctx.scope(), name, index) {
            Some(value) if !value.is_shared() => Ok(None),
            Some(_) => super::shared_vars::read_captured(name, ctx.scope_mut()),
            None => Ok(script_function_pointer(&ctx, name)),
        }
    });
    engine.on_progress(|ops| {
        // This closure runs before every operation: its usual case, nothing to look at
        // (see `runtime::attention`), is one load, two thread-locals and a mask.
        if crate::runtime::attention::calm()
            && crate::runtime::gil::settled()
            && !super::limits::sample_due(ops)
        {
            return None;
        }
        crate::runtime::gil::on_operation(ops);
        if interrupt::is_requested() {
            Some(Dynamic::from(INTERRUPTED))
        } else {
            super::limits::check_memory(ops)
        }
    });
    engine
}
