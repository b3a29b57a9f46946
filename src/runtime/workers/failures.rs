//! How a worker's failure is told: why its function returned no value, the text of an
//! error (its innermost message and where), a thrown value given back as it was, and the
//! report of an error nobody caught (Python's "Exception in thread …").

use crate::runtime::sink::{self, OutputSink};
use rhai::{Dynamic, EvalAltResult};
use std::sync::Arc;

/// Why a thread's function did not return a value.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    /// The function threw; the message and where.
    Error(String),
    /// The function threw a value that is not a string (`throw #{ code: 42 }`): `join`
    /// throws that value; the text is what the report says.
    Thrown(Dynamic, String),
    /// The user interrupted the program while the thread ran.
    Interrupted,
}

/// The value a script threw, when it is not a string (`throw #{ code: 42 }`): what
/// `join` throws again, so that `catch (e)` gets it as it was.
pub fn thrown_value(err: &EvalAltResult) -> Option<Dynamic> {
    let mut err = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = err {
        err = inner;
    }
    match err {
        EvalAltResult::ErrorRuntime(value, _) if !value.is_string() && !value.is_unit() => {
            Some(value.clone())
        }
        _ => None,
    }
}

/// The original error of a failed thread: the innermost message and where it happened.
pub fn describe_error(err: &EvalAltResult) -> String {
    let mut err = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = err {
        err = inner;
    }
    let pos = err.position();
    let message = match err {
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => {
            value.clone().into_string().unwrap_or_default()
        }
        other => {
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(at) if text.ends_with(')') => text[..at].to_string(),
                _ => text,
            }
        }
    };
    match (pos.line(), pos.position()) {
        (Some(line), Some(column)) => format!("{message} (line {line}, column {column})"),
        (Some(line), None) => format!("{message} (line {line})"),
        _ => message,
    }
}

/// Writes the report of an error nobody has caught yet, like Python's "Exception in
/// thread …", on the stderr of the cell (or script) that started the worker.
pub fn report_uncaught(sink: Option<&Arc<dyn OutputSink>>, worker: &str, message: &str) {
    let text = format!("Exception in {worker}: {message}\n");
    match sink {
        Some(sink) => sink.write(sink::Stream::Stderr, &text),
        None => sink::write(sink::Stream::Stderr, &text),
    }
}

/// What `join` gives for a worker that ended with `ended` (`worker`: `thread 'Thread-1'`,
/// `process 'Process-1 (work)'`): its value, or an error that says how it failed, or what
/// it threw, as it threw it.
pub(crate) fn joined(
    worker: &str,
    ended: Result<Dynamic, Failure>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    match ended {
        Ok(value) => Ok(value),
        // Interrupted earlier (the cell that was interrupted is over): a catchable error.
        Err(Failure::Interrupted) => Err(format!("{worker} was interrupted").into()),
        Err(Failure::Error(message)) => Err(format!("{worker} failed: {message}").into()),
        Err(Failure::Thrown(value, _)) => {
            Err(EvalAltResult::ErrorRuntime(value, rhai::Position::NONE).into())
        }
    }
}
