//! Rhai's debugger callback, run by every script thread on the debugging engine: it turns
//! Rhai's calls (one per statement and expression) into line events, and at a breakpoint,
//! after a step or when paused, stops the thread and waits for the frontend's command.

use super::{Command, Event, Resume, Shared, StopReason, Stopped, CELL_THREAD};
use crate::runtime::{gil, interrupt, threads, INTERRUPTED};
use rhai::debugger::{DebuggerCommand, DebuggerEvent};
use rhai::{ASTNode, Dynamic, Engine, EvalAltResult, EvalContext, ImmutableString, Position};
use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// Where a step ends: the first line event that satisfies it.
#[derive(Debug, Clone)]
struct StepGoal {
    how: Resume,
    depth: usize,
    line: usize,
    path: Option<String>,
}

/// What the callback remembers about the script thread on this OS thread.
struct Track {
    /// Which script thread of this OS thread this is (OS threads are reused).
    epoch: u64,
    /// The worker's name (`MainThread`, `Thread-1 (work)`, `pool-thread-0`).
    name: String,
    id: i64,
    /// The call-stack depth where this thread's own frames start (a thread's call stack
    /// begins with its starter's frames).
    base: usize,
    /// The last line event: depth, function, line.
    last: Option<(usize, Option<ImmutableString>, usize)>,
    /// The breakpoints as of `breakpoints_version`, read again when it changes.
    breakpoints: Arc<super::Breakpoints>,
    breakpoints_version: u64,
    /// The path of the code of the last line event's function and source.
    path: Option<(Option<ImmutableString>, Option<String>, Option<String>)>,
    /// Column of the last statement of that line: a statement at or before it is the
    /// line run again (a loop on one line).
    last_statement_column: usize,
    step: Option<StepGoal>,
}

thread_local! {
    static TRACK: RefCell<Option<Track>> = const { RefCell::new(None) };
}

/// Ids of script threads other than the cell's.
static NEXT_THREAD_ID: AtomicI64 = AtomicI64::new(CELL_THREAD + 1);

/// Registers the callback on `engine`.
pub(super) fn install(engine: &mut Engine, shared: Arc<Shared>) {
    #[allow(deprecated)] // marked volatile, not deprecated
    engine.register_debugger(
        // The first call (`Start`) answers `StepInto`, and so does every later one: the
        // callback is called at every statement and expression, and decides itself what
        // is a new line.
        |_, debugger| debugger,
        move |mut ctx, event, node, source, pos| {
            on_node(&shared, &mut ctx, event, node, source, pos)
        },
    );
}

fn on_node(
    shared: &Shared,
    ctx: &mut EvalContext,
    event: DebuggerEvent,
    node: ASTNode,
    source: Option<&str>,
    pos: Position,
) -> Result<DebuggerCommand, Box<EvalAltResult>> {
    if !shared.active.load(Ordering::Acquire) {
        // Stopped debugging: this evaluation runs on without the callback.
        return Ok(DebuggerCommand::Continue);
    }
    match event {
        DebuggerEvent::Start | DebuggerEvent::Step | DebuggerEvent::BreakPoint(_) => {}
        DebuggerEvent::End => {
            TRACK.with(|t| {
                if let Some(track) = t.borrow_mut().as_mut() {
                    track.step = None;
                    track.last = None;
                }
            });
            return Ok(DebuggerCommand::StepInto);
        }
        DebuggerEvent::FunctionExitWithError(error) => {
            return on_error(shared, ctx, error, source, pos);
        }
        _ => return Ok(DebuggerCommand::StepInto),
    }
    // A function's entry is announced at its opening brace: the first line of its body
    // is where it starts to run.
    if matches!(node, ASTNode::Stmt(rhai::Stmt::Noop(..))) {
        return Ok(DebuggerCommand::StepInto);
    }
    let Some(line) = pos.line() else {
        return Ok(DebuggerCommand::StepInto);
    };
    let column = pos.position().unwrap_or(0);
    let call_stack = ctx.global_runtime_state().debugger().call_stack();
    let depth = call_stack.len();
    let function = call_stack.last().map(|f| &f.fn_name);
    let is_statement = node.is_stmt();

    // Is this a new line for this thread? (This runs at every node: no locks, no clones.)
    let new_line = TRACK.with(|t| {
        let mut slot = t.borrow_mut();
        let epoch = threads::script_thread_epoch();
        if slot.as_ref().is_none_or(|track| track.epoch != epoch) {
            let name = threads::worker_name();
            let id = if name == "MainThread" {
                CELL_THREAD
            } else {
                NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed)
            };
            let base = if id == CELL_THREAD {
                0
            } else {
                depth.saturating_sub(1)
            };
            shared.state().threads.insert(id, name.clone());
            *slot = Some(Track {
                epoch,
                name,
                id,
                base,
                last: None,
                last_statement_column: 0,
                step: None,
                breakpoints: Arc::default(),
                breakpoints_version: u64::MAX,
                path: None,
            });
        }
        let Some(track) = slot.as_mut() else {
            return false;
        };
        let same_line = track.last.as_ref().is_some_and(|(d, f, l)| {
            *d == depth
                && *l == line
                && f.as_ref().map(|f| f.as_str()) == function.map(|f| f.as_str())
        });
        let again = same_line && is_statement && column <= track.last_statement_column;
        if same_line && !again {
            if is_statement {
                track.last_statement_column = column;
            }
            return false;
        }
        track.last = Some((depth, function.cloned(), line));
        track.last_statement_column = if is_statement { column } else { 0 };
        true
    });
    if !new_line {
        return Ok(DebuggerCommand::StepInto);
    }
    let function = function.cloned();
    let reason = stop_reason(shared, depth, function.as_ref(), source, line);
    match reason {
        Some((reason, path)) => {
            let at = Place {
                path,
                depth,
                line,
                column,
            };
            stop(shared, ctx, reason, None, at, source)
        }
        None => Ok(DebuggerCommand::StepInto),
    }
}

/// An error leaves a function. With the `uncaught` exception filter, the thread stops where
/// the error happened when nothing in the thread can catch it any more: it leaves the
/// thread's own function, or (on the cell's thread) the function the cell called. A cell
/// that calls a function inside `try` is not seen: it is stopped at too.
fn on_error(
    shared: &Shared,
    ctx: &mut EvalContext,
    error: &EvalAltResult,
    source: Option<&str>,
    pos: Position,
) -> Result<DebuggerCommand, Box<EvalAltResult>> {
    let wanted = shared
        .state()
        .exception_filters
        .iter()
        .any(|f| f == UNCAUGHT);
    if !wanted || matches!(error, EvalAltResult::ErrorTerminated(..)) || error.is_system_exception()
    {
        return Ok(DebuggerCommand::StepInto);
    }
    let call_stack = ctx.global_runtime_state().debugger().call_stack();
    let depth = call_stack.len();
    let function = call_stack.last().map(|f| f.fn_name.clone());
    let outermost = TRACK.with(|t| {
        t.borrow()
            .as_ref()
            .is_some_and(|track| depth == track.base + 1 || (track.id == CELL_THREAD && depth == 1))
    });
    // Natives have frames too (`join` failing because its thread failed): only a script
    // function's error is where the error happened.
    let in_script = call_stack.last().is_some_and(|f| {
        ctx.iter_namespaces()
            .any(|m| m.get_script_fn(&f.fn_name, f.args.len()).is_some())
    });
    if !outermost || !in_script {
        return Ok(DebuggerCommand::StepInto);
    }
    // Where the error happened, not where the function ends.
    let at = innermost_position(error).unwrap_or(pos);
    let path = path_of(shared, function.as_deref(), source);
    let (line, column) = (at.line().unwrap_or(0), at.position().unwrap_or(0));
    let at = Place {
        path,
        depth,
        line,
        column,
    };
    stop(
        shared,
        ctx,
        StopReason::Exception,
        Some(error.to_string()),
        at,
        source,
    )
}

/// The position of the innermost error of a chain of function-call errors.
fn innermost_position(error: &EvalAltResult) -> Option<Position> {
    match error {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => {
            innermost_position(inner).or(Some(error.position()))
        }
        other => Some(other.position()).filter(|p| !p.is_none()),
    }
}

/// The exception filter this debugger offers: stop on errors nothing catches.
pub(super) const UNCAUGHT: &str = "uncaught";

/// The path of the code running at this line: the defining cell of the current function,
/// else the cell itself.
fn path_of(shared: &Shared, function: Option<&str>, source: Option<&str>) -> Option<String> {
    let state = shared.state();
    function
        .and_then(|f| state.function_paths.get(f).cloned())
        .or_else(|| source.and_then(|s| state.cell_paths.get(s).cloned()))
}

/// Whether the thread stops at this line event, and why. Locks the debugger's state only
/// when a pause is pending, the breakpoints changed, or the function or source did.
fn stop_reason(
    shared: &Shared,
    depth: usize,
    function: Option<&ImmutableString>,
    source: Option<&str>,
    line: usize,
) -> Option<(StopReason, Option<String>)> {
    let pause_pending = shared.pause_pending.load(Ordering::Acquire);
    let version = shared.breakpoints_version.load(Ordering::Acquire);
    TRACK.with(|t| {
        let mut slot = t.borrow_mut();
        let track = slot.as_mut()?;
        if track.breakpoints_version != version {
            track.breakpoints = shared.state().breakpoints.clone();
            track.breakpoints_version = version;
        }
        let cached = track.path.as_ref().filter(|(f, s, _)| {
            f.as_ref().map(|f| f.as_str()) == function.map(|f| f.as_str()) && s.as_deref() == source
        });
        let path = match cached {
            Some((_, _, path)) => path.clone(),
            None => {
                let path = path_of(shared, function.map(|f| f.as_str()), source);
                track.path = Some((function.cloned(), source.map(String::from), path.clone()));
                path
            }
        };
        let depth = depth.saturating_sub(track.base);
        if pause_pending {
            let mut state = shared.state();
            let paused = state.pause.remove(&track.id);
            if state.pause.is_empty() {
                shared.pause_pending.store(false, Ordering::Release);
            }
            if paused {
                return Some((StopReason::Pause, path));
            }
        }
        let stepped = track.step.as_ref().is_some_and(|goal| match goal.how {
            Resume::Continue => false,
            Resume::In => true,
            Resume::Over => {
                depth < goal.depth
                    || (depth == goal.depth && (line != goal.line || path != goal.path))
            }
            Resume::Out => depth < goal.depth,
        });
        if stepped {
            return Some((StopReason::Step, path));
        }
        let at_breakpoint = path
            .as_ref()
            .and_then(|p| track.breakpoints.get(p))
            .is_some_and(|lines| lines.contains(&line));
        at_breakpoint.then_some((StopReason::Breakpoint, path))
    })
}

/// Where a thread stops: the code's path, the call-stack depth, the line and column.
struct Place {
    path: Option<String>,
    depth: usize,
    line: usize,
    column: usize,
}

/// Stops this thread: publishes its frames, tells the frontend (with `detail`, an error's
/// message), and waits for a command.
fn stop(
    shared: &Shared,
    ctx: &mut EvalContext,
    reason: StopReason,
    detail: Option<String>,
    at: Place,
    source: Option<&str>,
) -> Result<DebuggerCommand, Box<EvalAltResult>> {
    let Place {
        path,
        depth,
        line,
        column,
    } = at;
    let Some((id, name, base)) =
        TRACK.with(|t| t.borrow().as_ref().map(|t| (t.id, t.name.clone(), t.base)))
    else {
        return Ok(DebuggerCommand::StepInto);
    };
    let mut frames = frames(shared, ctx, id, base, path.clone(), line, column, source);
    if reason == StopReason::Exception {
        // The function has ended: its local variables are gone, its arguments are known.
        let call_stack = ctx.global_runtime_state().debugger().call_stack();
        if let (Some(frame), Some(top)) = (call_stack.last(), frames.first_mut()) {
            top.locals = arguments(ctx, frame);
        }
    }
    let description = match detail {
        Some(detail) => format!("{name} stopped ({}): {detail}", reason.as_str()),
        None => format!("{name} stopped ({})", reason.as_str()),
    };
    {
        let mut state = shared.state();
        let mut frame_ids = Vec::with_capacity(frames.len());
        for index in 0..frames.len() {
            let frame_id = state.reference();
            state.frames.insert(frame_id, (id, index));
            frame_ids.push(frame_id);
        }
        state.stopped.insert(
            id,
            Stopped {
                reason,
                description: description.clone(),
                frames,
                frame_ids,
                command: None,
            },
        );
    }
    shared.emit(Event::Stopped {
        thread: id,
        reason,
        description,
    });
    // Other threads run meanwhile, also under the GIL switch.
    gil::release_for_wait();
    let how = wait_for_resume(shared, ctx, id)?;
    TRACK.with(|t| {
        if let Some(track) = t.borrow_mut().as_mut() {
            track.step = Some(StepGoal {
                how,
                depth: depth.saturating_sub(base),
                line,
                path,
            });
        }
    });
    Ok(DebuggerCommand::StepInto)
}

/// Waits until the frontend resumes this thread (running the expressions it asks to
/// evaluate meanwhile), the debugger stops, or an interrupt arrives.
fn wait_for_resume(
    shared: &Shared,
    ctx: &mut EvalContext,
    id: i64,
) -> Result<Resume, Box<EvalAltResult>> {
    let mut state = shared.state();
    loop {
        let command = state.stopped.get_mut(&id).and_then(|s| s.command.take());
        match command {
            Some(Command::Resume(how)) => {
                forget(&mut state, id);
                drop(state);
                after_resume(shared, id, how);
                return Ok(how);
            }
            Some(Command::Evaluate {
                frame,
                expression,
                reply,
            }) => {
                drop(state);
                let result = evaluate_in_frame(shared, ctx, id, frame, &expression);
                // The requester may have given up; nothing to do then.
                let _ = reply.send(result);
                state = shared.state();
                continue;
            }
            None => {}
        }
        if !shared.active.load(Ordering::Acquire) || !state.stopped.contains_key(&id) {
            forget(&mut state, id);
            return Ok(Resume::Continue);
        }
        if interrupt::is_requested() {
            forget(&mut state, id);
            drop(state);
            shared.emit(Event::Continued { thread: id });
            return Err(
                EvalAltResult::ErrorTerminated(Dynamic::from(INTERRUPTED), Position::NONE).into(),
            );
        }
        state = shared
            .commands
            .wait_timeout(state, Duration::from_millis(50))
            .map(|(guard, _)| guard)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// Forgets the line and step of the script thread on this OS thread (a cell ended: a step
/// does not go on into the next cell).
pub(super) fn reset_thread() {
    TRACK.with(|t| t.borrow_mut().take());
}

/// Drops what the frontend could ask about a thread that runs again.
fn forget(state: &mut super::State, id: i64) {
    state.stopped.remove(&id);
    state.frames.retain(|_, (thread, _)| *thread != id);
    state.containers.retain(|_, c| c.thread != id);
}

/// After a `continue`: the frontend shows one stopped thread at a time, so another thread
/// still stopped is shown again.
fn after_resume(shared: &Shared, id: i64, how: Resume) {
    if how != Resume::Continue {
        return;
    }
    shared.emit(Event::Continued { thread: id });
    let other = {
        let state = shared.state();
        state
            .stopped
            .iter()
            .next_back()
            .map(|(thread, s)| (*thread, s.reason, s.description.clone()))
    };
    if let Some((thread, reason, description)) = other {
        shared.emit(Event::Stopped {
            thread,
            reason,
            description,
        });
    }
}

/// Runs an expression in a frame of this stopped thread: the newest frame sees (and may
/// change) its variables; an older one sees copies of its arguments.
fn evaluate_in_frame(
    shared: &Shared,
    ctx: &mut EvalContext,
    id: i64,
    frame: usize,
    expression: &str,
) -> Result<Dynamic, String> {
    if frame == 0 {
        return shared.evaluate_detached(expression, Some(ctx.scope_mut()));
    }
    let locals = shared
        .state()
        .stopped
        .get(&id)
        .and_then(|s| s.frames.get(frame))
        .map(|f| f.locals.clone())
        .unwrap_or_default();
    let mut scope = rhai::Scope::new();
    for (name, value) in locals {
        scope.push_dynamic(name, value);
    }
    shared.evaluate_detached(expression, Some(&mut scope))
}

/// The frames of this thread, newest first: the current line in the current function,
/// then each caller at its call.
#[allow(clippy::too_many_arguments)]
fn frames(
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
    let mut locals: Vec<(String, Dynamic)> = ctx
        .scope()
        .iter_raw()
        .map(|(name, _, value)| (name.to_string(), value.flatten_clone()))
        .collect();
    locals.reverse();
    dedup_newest(&mut locals);
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
fn arguments(ctx: &EvalContext, frame: &rhai::debugger::CallStackFrame) -> Vec<(String, Dynamic)> {
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

/// Keeps the newest entry of each name (a scope may hold a shadowed one), in order.
fn dedup_newest(entries: &mut Vec<(String, Dynamic)>) {
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<(String, Dynamic)> = entries
        .drain(..)
        .rev()
        .filter(|(name, _)| seen.insert(name.clone()))
        .collect();
    kept.reverse();
    *entries = kept;
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
