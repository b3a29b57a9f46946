//! evcxr's context: runs cells and completions, one request at a time, and says how each
//! ended in the protocol's terms.

use crate::outputs::{self, CHILD_PID};
use crate::send;
use crossbeam_channel::Receiver;
use evcxr::{CommandContext, EvalCallbacks, EvalOutputs};
use rhai_kernel::interpreter::rust_cells::protocol::{Event, Failure, Found, Request};
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

/// Starts evcxr and answers requests until a shutdown (or until the kernel is gone); then
/// drops the context, so that evcxr's child exits and its cargo project is removed.
pub(crate) fn serve(requests: &Receiver<Request>, typed: &Receiver<String>) {
    let (mut context, evcxr_outputs) = match CommandContext::new() {
        Ok(started) => started,
        Err(e) => {
            send(&Event::Started(Err(format!("evcxr could not start: {e}"))));
            return;
        }
    };
    let flushers = [
        outputs::drain(evcxr_outputs.stdout, false),
        outputs::drain(evcxr_outputs.stderr, true),
    ];
    send(&Event::Started(Ok(())));
    for request in requests {
        match request {
            Request::Eval { id, code } => {
                outputs::forget_panic();
                let result = eval(&mut context, id, &code, typed);
                outputs::flush(&flushers);
                // evcxr reports a panic only on stderr and keeps the earlier variables; the
                // cell itself failed, as a Rhai `throw` does.
                let result = match (result, outputs::take_panic()) {
                    (Ok(_), Some(message)) => Err(Failure::Panic(message)),
                    (result, _) => result,
                };
                send(&Event::Done { id, result });
            }
            Request::Complete { id, code, position } => {
                let found = context.completions(&code, position).ok().map(|c| Found {
                    matches: c.completions.into_iter().map(|c| c.code).collect(),
                    start: c.start_offset,
                    end: c.end_offset,
                });
                send(&Event::Completions { id, found });
            }
            Request::Input { .. } => {}
            Request::Shutdown => break,
        }
    }
}

fn eval(
    context: &mut CommandContext,
    id: u64,
    code: &str,
    typed: &Receiver<String>,
) -> Result<Option<Map<String, Value>>, Failure> {
    let pid = context
        .process_handle()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .id();
    CHILD_PID.store(pid, Ordering::SeqCst);
    send(&Event::Running { id, pid });
    // `evcxr_input::get_string` in a Rust cell asks the frontend, as `input()` does in Rhai.
    let mut callbacks = EvalCallbacks {
        input_reader: &|request| {
            // A line typed for an earlier cell that no longer waited is not this one's.
            while typed.try_recv().is_ok() {}
            send(&Event::Input {
                prompt: request.prompt.clone(),
                password: request.is_password,
            });
            typed.recv().unwrap_or_default()
        },
    };
    match context.execute_with_callbacks(code, &mut callbacks) {
        Ok(outputs) => Ok(bundle(outputs)),
        Err(error) => Err(failure(error)),
    }
}

fn bundle(outputs: EvalOutputs) -> Option<Map<String, Value>> {
    if outputs.content_by_mime_type.is_empty() {
        return None;
    }
    Some(
        outputs
            .content_by_mime_type
            .into_iter()
            .map(|(mime, content)| (mime, Value::String(content)))
            .collect(),
    )
}

fn failure(error: evcxr::Error) -> Failure {
    match error {
        evcxr::Error::CompilationErrors(errors) => compilation_failure(&errors),
        evcxr::Error::SubprocessTerminated(message) => Failure::Terminated(message),
        other => Failure::Other(other.to_string()),
    }
}

/// evcxr's messages, one per error, each with its labels and help; and where each primary
/// span starts, so that the traceback shows the lines with a caret.
fn compilation_failure(errors: &[evcxr::CompilationError]) -> Failure {
    let mut message = String::new();
    let mut at = Vec::new();
    for error in errors {
        if !message.is_empty() {
            message.push_str("\n\n");
        }
        match error.code() {
            Some(code) => message.push_str(&format!("{}[{code}]: ", error.level())),
            None => message.push_str(&format!("{}: ", error.level())),
        }
        message.push_str(&error.message());
        for spanned in error.spanned_messages() {
            if spanned.label.is_empty() {
                continue;
            }
            match &spanned.span {
                Some(span) => message.push_str(&format!(
                    "\n  --> line {}, column {}: {}",
                    span.start_line, span.start_column, spanned.label
                )),
                None => message.push_str(&format!("\n  = {}", spanned.label)),
            }
        }
        for help in error.help() {
            message.push_str(&format!("\n  = help: {help}"));
        }
        if let Some(hint) = error.evcxr_extra_hint() {
            message.push_str(&format!("\n  = note: {hint}"));
        }
        if let Some(span) = error
            .primary_spanned_message()
            .and_then(|m| m.span.as_ref())
        {
            at.push((span.start_line, span.start_column));
        }
    }
    Failure::Compilation { message, at }
}
