//! Rhai's debugger callback, run by every script thread on the debugging engine: it turns
//! Rhai's calls (one per statement and expression) into line events, and at a breakpoint,
//! after a step or when paused, stops the thread and waits for the frontend's command.

use super::frames::path_of;
use super::stop::{stop, Place};
use super::{Resume, Shared, StopReason, CELL_THREAD};
use crate::runtime::actors;
use rhai::debugger::{DebuggerCommand, DebuggerEvent};
use rhai::{ASTNode, Engine, EvalAltResult, EvalContext, ImmutableString, Position};
use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Where a step ends: the first line event that satisfies it.
#[derive(Debug, Clone)]
pub(super) struct StepGoal {
    pub how: Resume,
    pub depth: usize,
    pub line: usize,
    pub path: Option<String>,
}

/// What the callback remembers about the script thread on this OS thread.
pub(super) struct Track {
    /// Which script thread of this OS thread this is (OS threads are reused).
    epoch: u64,
    /// The worker's name (`MainThread`, `Thread-1 (work)`, `pool-thread-0`).
    pub name: String,
    pub id: i64,
    /// The call-stack depth where this thread's own frames start (a thread's call stack
    /// begins with its starter's frames).
    pub base: usize,
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
    pub step: Option<StepGoal>,
}

thread_local! {
    pub(super) static TRACK: RefCell<Option<Track>> = const { RefCell::new(None) };
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
        let epoch = actors::script_thread_epoch();
        if slot.as_ref().is_none_or(|track| track.epoch != epoch) {
            let name = actors::worker_name();
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
            // A thread that continues keeps no goal.
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

/// Forgets the line and step of the script thread on this OS thread (a cell ended: a step
/// does not go on into the next cell).
pub(super) fn reset_thread() {
    TRACK.with(|t| t.borrow_mut().take());
}
