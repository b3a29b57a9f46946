//! Stopping a thread: its frames are published, the frontend is told, and the thread waits
//! in the callback for a command (resume, step, evaluate), the debugger's end or an
//! interrupt.

use super::evaluate::scope_of;
use super::frames::{arguments, frames, thread_frame_name};
use super::hook::{StepGoal, TRACK};
use super::{Command, Event, Resume, Shared, StopReason, Stopped, CELL_THREAD};
use crate::runtime::{gil, interrupt, INTERRUPTED};
use rhai::debugger::DebuggerCommand;
use rhai::{Dynamic, EvalAltResult, EvalContext, Position};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where a thread stops: the code's path, the call-stack depth, the line and column.
pub(super) struct Place {
    pub path: Option<String>,
    pub depth: usize,
    pub line: usize,
    pub column: usize,
}

/// Stops this thread: publishes its frames, tells the frontend (with `detail`, an error's
/// message), and waits for a command.
pub(super) fn stop(
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
    if id != CELL_THREAD {
        if let Some(oldest) = frames.last_mut() {
            oldest.name = thread_frame_name(&name, &oldest.name);
        }
    }
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
            track.step = (how != Resume::Continue).then_some(StepGoal {
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
        return shared.evaluate_detached(expression, ctx.scope_mut());
    }
    let locals = shared
        .state()
        .stopped
        .get(&id)
        .and_then(|s| s.frames.get(frame))
        .map(|f| f.locals.clone())
        .unwrap_or_default();
    shared.evaluate_detached(expression, &mut scope_of(locals))
}
