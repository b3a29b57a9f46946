//! Variables captured by closures: reading runtime objects out of them without locking, and
//! data-race errors that name the variable, its line, and what to use instead.
//!
//! Rhai keeps a captured variable in one slot behind a read-write lock, shared by the code
//! around the closure and by every closure (and so every thread) that captured it. Any
//! access to the variable (`forks[0].hold(…)`, `acct.guard`, even a plain read) takes the
//! slot's write lock, for the whole expression in a chain of dots and indexing, method calls
//! and the closures they run included (Rhai's `Target::try_from` in `eval/target.rs`,
//! reached from `search_scope_only` in `eval/expr.rs`; whether a native is `pure` does not
//! matter). So `forks[0].hold(|| forks[1].hold(…))` fails before `hold` runs: the closure
//! argument captures the locked slot, which `ensure_no_data_race` in `func/func_call.rs`
//! rejects; and another thread touching `forks` meanwhile gives up after 50 ms
//! (`locked_read`/`locked_write` in `func/native.rs`). Neither error has a position.
//!
//! A runtime object (lock, value, queue, …) is itself a reference, so its variable never
//! needs that lock: the engine's variable hook answers a read of such a variable — or of an
//! array or map holding nothing but runtime objects — with a copy of the value. Rhai asks
//! the hook for every variable it reads or writes, and also when a closure captures one
//! (`Stmt::Share`, `curry`), so closures capture such copies too. It marks whatever the
//! hook returns read-only, recursively, so writes through the copy are refused loudly
//! (`Cannot modify constant`, `cannot be called on constant`) rather than lost, with one
//! exception Rhai gives no hook for: assigning a new key to such a map (`get_indexed_mut`
//! in `eval/indexing.rs` inserts it into the copy). Function-call style (`push(a, x)`) on
//! any captured variable is Rhai's own silent copy, with or without this hook.
//!
//! For any other captured variable the hook first waits until the slot is free, so that the
//! error of a slot that stays locked names the variable and has a position.

use super::errors::ScriptError;
use rhai::{ASTNode, Dynamic, EvalAltResult, Expr, Position, Scope, Stmt, AST};
use std::time::{Duration, Instant};

/// What a read of the captured variable `name` yields instead of its slot: `Some(copy)` when
/// the value needs no lock (see the module documentation), `None` to let Rhai use the slot.
/// A slot that stays locked for [`PATIENCE`] (another thread is in a long call on it, or an
/// unfinished call further up this thread holds it) is a data race: the error names the
/// variable, and Rhai adds its position.
pub fn read_captured(name: &str, scope: &mut Scope) -> Result<Option<Dynamic>, Box<EvalAltResult>> {
    let mut waiting = Waiting::default();
    // A read lock first: threads reading one container of locks at once do not wait.
    loop {
        let Some(slot) = scope.get(name) else {
            return Ok(None);
        };
        if let Some(value) = slot.read_lock::<Dynamic>() {
            if holds_only_runtime_objects(&value) {
                return Ok(Some(value.clone()));
            }
            break;
        }
        waiting.after_a_try(name)?;
    }
    // Rhai is about to lock the slot for writing, giving up after 50 ms, and its error then
    // has neither the variable's name nor a position. Once this try has had the slot (and
    // let it go at once), Rhai's fails only if another thread takes it in that instant and
    // keeps it 50 ms. (A constant has no mutable slot, and Rhai does not write to it.)
    loop {
        let Some(slot) = scope.get_mut(name) else {
            return Ok(None);
        };
        if slot.write_lock::<Dynamic>().is_some() {
            return Ok(None);
        }
        waiting.after_a_try(name)?;
    }
}

/// How long a captured variable may stay locked before using it is a data race. Rhai gives
/// up after 50 ms, which a thread holding the slot for an instant exceeds when it is
/// descheduled on a busy machine; a real conflict (a call on the variable that runs long,
/// or one further up the same thread) shows as well after a second.
const PATIENCE: Duration = Duration::from_secs(1);

/// Each failed try of Rhai's locks has already slept about 50 ms.
#[derive(Default)]
struct Waiting(Option<Instant>);

impl Waiting {
    fn after_a_try(&mut self, name: &str) -> Result<(), Box<EvalAltResult>> {
        let since = *self.0.get_or_insert_with(Instant::now);
        if since.elapsed() >= PATIENCE {
            return Err(in_use(name));
        }
        Ok(())
    }
}

fn in_use(name: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorDataRace(variable_in_use(name), Position::NONE).into()
}

/// A runtime object, or a non-empty array or map whose elements all are (nested arrays and
/// maps included). An empty container is not: what it will hold is not known yet, and a
/// `results.push(x)` in a closure must keep working.
fn holds_only_runtime_objects(value: &Dynamic) -> bool {
    // A shared value inside (another captured variable's slot) is not a runtime object, and
    // asking its type would wait for its lock, or panic in Rhai if that stays taken.
    if value.is_shared() {
        return false;
    }
    // Runtime objects are custom types: plain values are told apart without asking each type
    // (this runs with the variable's slot locked).
    if !value.is_variant() && !value.is_array() && !value.is_map() {
        return false;
    }
    if crate::runtime::is_handle(value) {
        return true;
    }
    if let Ok(items) = value.as_array_ref() {
        return !items.is_empty() && items.iter().all(holds_only_runtime_objects);
    }
    if let Ok(map) = value.as_map_ref() {
        return !map.is_empty() && map.values().all(holds_only_runtime_objects);
    }
    false
}

/// Appended to Rhai's errors for writing to a constant: a variable holding runtime objects
/// that closures capture is read as a read-only copy, so writing to it ends up there too.
pub const READ_ONLY_HINT: &str = " (unless it is a `const`, the variable holds runtime \
    objects, such as locks or an array or map of them, and a closure has captured it, which \
    makes it read-only: fill such an array or map before a closure captures it, or use a \
    queue() for a collection that changes)";

const USE_INSTEAD: &str = "share data between closures and threads through value(…), \
    shared_array(…) or queue() instead";

/// The text after Rhai's "Data race detected on " for a variable whose slot stayed locked.
fn variable_in_use(name: &str) -> String {
    format!(
        "variable '{name}': another thread, or a call on it that has not returned (such as \
         {name}.hold(…)), is using it, and a variable captured by closures is locked while in \
         use; {USE_INSTEAD}"
    )
}

/// Gives a data-race error that Rhai raised without a position (see [`explain_argument_race`])
/// the position and message of the call in `ast`, the code of `source`, that caused it. A
/// thread that failed so passes the message on to `join()`, which adds the position there.
pub fn place_argument_race(error: &mut ScriptError, ast: &AST, source: &str) {
    const RHAI_TEXT: &str = "Data race detected on argument #";
    let Some(frame) = error.frames.last_mut() else {
        return;
    };
    if frame.source != source {
        return;
    }
    if error.kind == "ErrorDataRace" && frame.line.is_none() {
        if let Some((pos, text)) = explain_argument_race(ast, &error.message) {
            frame.line = pos.line();
            frame.column = pos.position();
            error.message = format!("Data race detected on {text}");
        }
    } else if let Some(at) = error.message.find(RHAI_TEXT) {
        // Only a message that ends with Rhai's text, which has no position after it.
        let rhai_text = &error.message[at..];
        if rhai_text.ends_with('\'') && !rhai_text.contains(" (line ") {
            if let Some((pos, text)) = explain_argument_race(ast, rhai_text) {
                let line = pos.line().unwrap_or(0);
                let column = pos.position().unwrap_or(0);
                error.message = format!(
                    "{}Data race detected on {text} (line {line}, column {column})",
                    &error.message[..at]
                );
            }
        }
    }
}

/// Rhai's own data-race error for a call argument has no position and names no variable
/// ("argument #1 of function 'hold'"): the argument is a closure capturing a variable whose
/// slot is locked, nearly always by the very call it is passed to (`acct.guard.hold(||
/// acct.count += 1)`). Finds that call in `ast` and returns its position and a message that
/// names the variable.
pub fn explain_argument_race(ast: &AST, message: &str) -> Option<(Position, String)> {
    let (argument, function) = parse_argument_race(message)?;
    let mut best: Option<(Position, String, bool)> = None;
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(expr)) = path.last() else {
            return true;
        };
        let (call, pos, is_method) = match expr {
            Expr::MethodCall(call, pos) => (call, *pos, true),
            Expr::FnCall(call, pos) => (call, *pos, false),
            _ => return true,
        };
        if call.name.as_str() != function {
            return true;
        }
        // In `f(x, closure)` Rhai may pass `x` by reference and not count it.
        let candidates: &[usize] = if is_method {
            &[argument - 1]
        } else {
            &[argument - 1, argument]
        };
        let root = chain_root(path);
        for &index in candidates {
            let Some(captured) = call.args.get(index).and_then(closure_captures) else {
                continue;
            };
            let locked_by_call = root.as_ref().filter(|r| captured.contains(r)).cloned();
            let found = locked_by_call.is_some();
            if best
                .as_ref()
                .is_some_and(|(_, _, was_found)| *was_found || !found)
            {
                continue;
            }
            let name = locked_by_call.unwrap_or_else(|| captured.join("', '"));
            best = Some((pos, name, found));
        }
        true
    });
    let (pos, name, locked_by_call) = best?;
    let text = if locked_by_call {
        format!(
            "variable '{name}': the closure passed to '{function}' uses it, while the call \
             on {name} keeps it locked until '{function}' returns; {USE_INSTEAD}"
        )
    } else {
        format!(
            "variable '{name}': the closure passed to '{function}' captures it while it is \
             locked, by another thread or by a call that has not returned; {USE_INSTEAD}"
        )
    };
    Some((pos, text))
}

/// The message of a data-race error that Rhai raised itself, `detail` being its text after
/// "Data race detected" (empty, or " on argument #1 of function 'hold'"): what it means and
/// what to use instead.
pub fn rhai_race_message(detail: &str) -> String {
    if detail.contains("argument #") {
        format!(
            "Data race detected{detail}: the argument captures a variable that is locked, by \
             the call it is passed to or by another thread; {USE_INSTEAD}"
        )
    } else {
        format!(
            "Data race detected: a variable captured by closures is locked, by another thread \
             or by a call on it that has not returned; {USE_INSTEAD}"
        )
    }
}

/// `(2, "hold")` from Rhai's "Data race detected on argument #2 of function 'hold'".
fn parse_argument_race(message: &str) -> Option<(usize, &str)> {
    let rest = message.split("argument #").nth(1)?;
    let (number, rest) = rest.split_once(" of function '")?;
    let (function, _) = rest.split_once('\'')?;
    let argument: usize = number.parse().ok()?;
    (argument > 0).then_some((argument, function))
}

/// The variables a closure literal captures: Rhai compiles `|| …x…` into a block that first
/// shares `x` (`Stmt::Share`), then curries it into the function pointer.
fn closure_captures(expr: &Expr) -> Option<Vec<String>> {
    let Expr::Stmt(block) = expr else {
        return None;
    };
    match block.statements().first() {
        Some(Stmt::Share(vars)) => Some(vars.iter().map(|(v, _)| v.name.to_string()).collect()),
        _ => None,
    }
}

/// The variable a call at the end of `path` is made on, as in `acct.guard.hold(…)` or
/// `forks[0].hold(…)`: the left end of the enclosing chain of dots and indexing.
fn chain_root(path: &[ASTNode]) -> Option<String> {
    let mut root = None;
    for node in path.iter().rev().skip(1) {
        match node {
            ASTNode::Expr(Expr::Dot(chain, ..) | Expr::Index(chain, ..)) => {
                root = match &chain.lhs {
                    Expr::Variable(var, ..) => Some(var.1.to_string()),
                    _ => None,
                };
            }
            _ => break,
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rhai_argument_race_messages_are_understood() {
        let text = "Data race detected on argument #2 of function 'hold'";
        assert_eq!(parse_argument_race(text), Some((2, "hold")));
        let explained = rhai_race_message(" on argument #1 of function 'hold'");
        assert_eq!(parse_argument_race(&explained), Some((1, "hold")));
        assert_eq!(parse_argument_race("Data race detected"), None);
    }

    #[test]
    fn the_call_whose_closure_captures_its_own_variable_is_found() {
        let engine = rhai::Engine::new();
        let ast = engine
            .compile(
                "let other = #{ guard: 1 };\nother.guard.hold(|| 1);\n\
                 let acct = #{ guard: 1, n: 0 };\nacct.guard.hold(|| acct.n += 1);\n",
            )
            .unwrap();
        let (pos, text) =
            explain_argument_race(&ast, "Data race detected on argument #1 of function 'hold'")
                .unwrap();
        assert_eq!((pos.line(), pos.position()), (Some(4), Some(12)));
        assert!(text.starts_with("variable 'acct'"), "{text}");
    }
}
