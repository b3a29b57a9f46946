//! Text input and output natives besides `print`/`debug`: `eprint` and `input`.

use rhai::plugin::*;

#[export_module]
pub mod io_api {
    use crate::runtime::interrupted_error;
    use crate::runtime::sink::{self, InputError, Stream};

    /// Writes `value` and a newline to standard error (shown in red in notebooks).
    #[rhai_fn(name = "eprint")]
    pub fn eprint(ctx: NativeCallContext, value: Dynamic) {
        let text = super::to_text(&ctx, value);
        sink::write(Stream::Stderr, &format!("{text}\n"));
    }

    /// Writes an empty line to standard error.
    #[rhai_fn(name = "eprint")]
    pub fn eprint_empty() {
        sink::write(Stream::Stderr, "\n");
    }

    /// Reads one line typed by the user, without the trailing newline.
    ///
    /// In a notebook this shows an input box (the frontend must allow stdin);
    /// under `rhai-kernel run` it reads a line from standard input.
    #[rhai_fn(name = "input", return_raw)]
    pub fn input() -> Result<String, Box<EvalAltResult>> {
        input_with_prompt("")
    }

    /// Shows `prompt` and reads one line typed by the user, without the trailing newline.
    ///
    /// Example: `let name = input("Your name: ");`
    #[rhai_fn(name = "input", return_raw)]
    pub fn input_with_prompt(prompt: &str) -> Result<String, Box<EvalAltResult>> {
        let Some(sink) = sink::current() else {
            return Err("input() is not available here: no input channel".into());
        };
        crate::runtime::sched::waiting();
        match sink.read_input(prompt, false) {
            Ok(line) => Ok(line),
            Err(InputError::Interrupted) => Err(interrupted_error()),
            Err(InputError::NotAllowed) => {
                Err("input() is not supported by this frontend (stdin is not allowed)".into())
            }
            Err(InputError::Closed) => Err("input(): end of input".into()),
        }
    }
}

/// Converts a value to text the way `print` does (strings as they are, others via `to_string`).
pub fn to_text(ctx: &NativeCallContext, value: Dynamic) -> String {
    if value.is_string() {
        return value.into_string().unwrap_or_default();
    }
    match ctx.call_native_fn_raw("to_string", false, &mut [&mut value.clone()]) {
        Ok(text) if text.is_string() => text.into_string().unwrap_or_default(),
        _ => value.to_string(),
    }
}
