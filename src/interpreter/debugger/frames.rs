//! What a stopped thread shows: its frames, newest first, each with its code's path, line
//! and variables.

use super::evaluate::scope_entries;
use super::{Shared, CELL_THREAD};
use rhai::{Dynamic, EvalContext};

/// What a stopped thread shows of one frame.
#[derive(Debug, Clone)]
pub(crate) struct FrameData {
    pub name: String,
    pub path: Option<String>,
    pub line: usize,
    pub column: usize,
    pub locals: Vec<(String, Dynamic)>,
    pub globals: Option<Vec<(String, Dynamic)>>,
}

/// The path of the code running at this line: the defining cell of the current function,
/// else the cell itself.
pub(super) fn path_of(
    shared: &Shared,
    function: Option<&str>,
    source: Option<&str>,
) -> Option<String> {
    let state = shared.state();
    function
        .and_then(|f| state.function_paths.get(f).cloned())
        .or_else(|| source.and_then(|s| state.cell_paths.get(s).cloned()))
}

/// The frames of this thread, newest first: the current line in the current function,
/// then each caller at its call.
#[allow(clippy::too_many_arguments)]
pub(super) fn frames(
    shared: &Shared,
    ctx: &EvalContext,
    id: i64,
    base: usize,
    path: Option<String>,
    line: usize,
    column: usize,
    source: Option<&str>,
) -> Vec<FrameData> {
    let call_stack = ctx.global_runtime_state().debugger().call_stack();
    let own = &call_stack[base.min(call_stack.len())..];
    let globals = if id == CELL_THREAD && own.is_empty() {
        None
    } else {
        Some(shared.state().globals.clone())
    };
    let mut locals = scope_entries(ctx.scope());
    if let Some(this) = ctx.this_ptr() {
        locals.insert(0, ("this".to_string(), this.flatten_clone()));
    }
    let mut frames = vec![FrameData {
        name: own
            .last()
            .map_or_else(|| top_level_name(id), |f| function_name(&f.fn_name)),
        path,
        line,
        column,
        locals,
        globals: globals.clone(),
    }];
    // Frame k (from the newest) called frame k-1 at frame k-1's recorded position.
    for k in (0..own.len()).rev() {
        let callee = &own[k];
        let caller = k.checked_sub(1).map(|i| &own[i]);
        if caller.is_none() && id != CELL_THREAD {
            break; // a thread's own function is its oldest frame
        }
        let caller_name = caller.map(|f| f.fn_name.as_str());
        frames.push(FrameData {
            name: caller.map_or_else(|| top_level_name(id), |f| function_name(&f.fn_name)),
            path: path_of(shared, caller_name, callee.source.as_deref().or(source)),
            line: callee.pos.line().unwrap_or(0),
            column: callee.pos.position().unwrap_or(0),
            locals: caller
                .map(|f| arguments(ctx, f))
                .unwrap_or_else(|| globals.clone().unwrap_or_default()),
            globals: caller.and(globals.clone()),
        });
    }
    frames
}

/// A frame's arguments by parameter name (as the function defines them).
pub(super) fn arguments(
    ctx: &EvalContext,
    frame: &rhai::debugger::CallStackFrame,
) -> Vec<(String, Dynamic)> {
    let params = ctx
        .iter_namespaces()
        .find_map(|m| m.get_script_fn(&frame.fn_name, frame.args.len()))
        .map(|f| f.params.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .unwrap_or_default();
    frame
        .args
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = params
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("arg{}", i + 1));
            (name, v.clone())
        })
        .collect()
}

fn top_level_name(id: i64) -> String {
    if id == CELL_THREAD {
        "<cell>".to_string()
    } else {
        "<thread>".to_string()
    }
}

/// Closures are `anon$…` functions inside Rhai.
fn function_name(name: &str) -> String {
    if name.starts_with("anon$") {
        "<closure>".to_string()
    } else {
        name.to_string()
    }
}

/// A thread's oldest frame is named after the thread (`Thread-2 (work)`), so that the call
/// stack says which thread stopped; `work on pool-thread-0` when the thread's name does not
/// name its function.
pub(super) fn thread_frame_name(thread: &str, function: &str) -> String {
    if thread.ends_with(&format!("({function})")) {
        thread.to_string()
    } else {
        format!("{function} on {thread}")
    }
}
