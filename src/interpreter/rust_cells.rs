//! Rust cells: a cell whose first line is `%%rust` is compiled and run by evcxr, next to the
//! Rhai session, so that script-level and native concurrency can be compared in one notebook.
//!
//! evcxr runs the compiled code in a child process (this same binary, turned into evcxr's
//! runtime by [`evcxr::runtime_hook`] at the start of `main`). Its `CommandContext` lives on a
//! thread of its own, created with the first Rust cell; the shell thread sends it cells and
//! completion requests. The child's stdout and stderr arrive on channels that two more threads
//! drain into the output sink of the cell that is running (evcxr blocks until stdout is
//! drained). An interrupt kills the child: evcxr starts a fresh one, so Rust variables are
//! lost while the Rhai session is untouched.

use super::errors::{Frame, ScriptError};
use super::Completion;
use crate::runtime::interrupt;
use crate::runtime::sink::{MimeBundle, OutputSink, Stream};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use evcxr::{CommandContext, EvalCallbacks, EvalOutputs};
use serde_json::Value;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Where the child's output goes: the sink of the Rust cell that ran last (output that
/// arrives after its cell ended, from a thread it left running, still lands there).
static OUTPUT: Mutex<Option<Arc<dyn OutputSink>>> = Mutex::new(None);
/// The evcxr child while a Rust cell runs, so that an interrupt can kill it.
static RUNNING: Mutex<Option<Arc<Mutex<Child>>>> = Mutex::new(None);
/// Set when an interrupt killed the child of the running cell.
static KILLED: AtomicBool = AtomicBool::new(false);
/// The evaluator thread's requests, for [`shutdown`].
static EVALUATOR: Mutex<Option<Sender<Request>>> = Mutex::new(None);

/// A panic of the cell's own code (on the child's main thread), seen on its stderr: `None`
/// while no panic was seen, the message lines once one was.
static PANIC: Mutex<Option<String>> = Mutex::new(None);
/// Whether the next stderr line is the message of a panic just announced.
static PANIC_MESSAGE_NEXT: AtomicBool = AtomicBool::new(false);
/// The pid of evcxr's child while a cell runs: its main thread, where evcxr runs the cell's
/// code, has this thread id.
static CHILD_PID: AtomicU32 = AtomicU32::new(0);

/// Whether a stderr line announces a panic of the cell's own code. Rust writes
/// `thread 'NAME' (TID) panicked at FILE:LINE:COL:`; the code of a cell runs in a library
/// with its own copy of std, which knows no thread names, so the thread id tells the cell's
/// main thread from threads the cell spawned (whose panics only fail their `join()`).
fn is_cell_panic(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("thread '") else {
        return false;
    };
    let Some((name, rest)) = rest.split_once("' ") else {
        return false;
    };
    if let Some(rest) = rest.strip_prefix('(') {
        let Some((tid, rest)) = rest.split_once(") ") else {
            return false;
        };
        let child = CHILD_PID.load(Ordering::SeqCst);
        return rest.starts_with("panicked at ") && child != 0 && tid.parse() == Ok(child);
    }
    name == "main" && rest.starts_with("panicked at ")
}

/// Notes a panic of the cell's code from one line of the child's stderr.
fn watch_for_panic(line: &str) {
    if is_cell_panic(line) {
        *PANIC.lock().unwrap_or_else(PoisonError::into_inner) = Some(String::new());
        PANIC_MESSAGE_NEXT.store(true, Ordering::SeqCst);
    } else if PANIC_MESSAGE_NEXT.swap(false, Ordering::SeqCst) {
        if let Some(message) = PANIC
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            message.push_str(line);
        }
    }
}

/// Patience for a completion from rust-analyzer.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(10);

type CellResult = Result<Option<MimeBundle>, ScriptError>;

enum Request {
    Eval {
        code: String,
        source: String,
        reply: Sender<CellResult>,
    },
    Complete {
        code: String,
        /// Byte offset into `code`.
        position: usize,
        reply: Sender<Option<evcxr::Completions>>,
    },
    /// Drop the context (its child exits, its temporary directory goes), then acknowledge.
    Shutdown(Sender<()>),
}

/// The evcxr context of a kernel, started by its first Rust cell.
#[derive(Default)]
pub struct RustCells {
    requests: Option<Sender<Request>>,
}

impl RustCells {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the body of a `%%rust` cell (the magic line already replaced by an empty line, so
    /// that line numbers are the cell's). Output goes to `sink` as it happens.
    pub fn execute(
        &mut self,
        code: &str,
        source: &str,
        sink: Option<Arc<dyn OutputSink>>,
    ) -> CellResult {
        *OUTPUT.lock().unwrap_or_else(PoisonError::into_inner) = sink;
        let requests = match &self.requests {
            Some(requests) => requests.clone(),
            None => {
                let requests = start().map_err(|message| {
                    ScriptError::other("RustCellsUnavailable", message, source)
                })?;
                self.requests = Some(requests.clone());
                requests
            }
        };
        let (reply, answer) = bounded(1);
        let request = Request::Eval {
            code: code.to_string(),
            source: source.to_string(),
            reply,
        };
        let lost = || {
            ScriptError::other(
                "RustCellsUnavailable",
                "the Rust cell evaluator stopped unexpectedly; the next Rust cell starts a \
                 new one (Rust variables are lost, Rhai state is kept)",
                source,
            )
        };
        if requests.send(request).is_err() {
            self.requests = None;
            return Err(lost());
        }
        answer.recv().unwrap_or_else(|_| {
            self.requests = None;
            Err(lost())
        })
    }

    /// evcxr's completions for the code of a `%%rust` cell (`cursor` in characters, the magic
    /// line included); `None` when the cursor is on the magic line. Empty until the first
    /// Rust cell has started the evaluator.
    pub fn complete(&self, cell: &str, cursor: usize) -> Option<Completion> {
        let empty = Completion {
            matches: Vec::new(),
            cursor_start: cursor,
            cursor_end: cursor,
        };
        // Everything up to the end of the magic line becomes blanks, byte for byte, so that
        // byte offsets stay those of the cell.
        let start = cell.len() - cell.trim_start().len();
        let magic_end = cell[start..].find('\n').map_or(cell.len(), |i| start + i);
        let position = char_to_byte(cell, cursor);
        if position <= magic_end {
            return None;
        }
        let Some(requests) = &self.requests else {
            return Some(empty);
        };
        let blanks: String = cell.as_bytes()[..magic_end]
            .iter()
            .map(|&b| if b == b'\n' { '\n' } else { ' ' })
            .collect();
        let code = format!("{blanks}{}", &cell[magic_end..]);
        let (reply, answer) = bounded(1);
        let request = Request::Complete {
            code,
            position,
            reply,
        };
        if requests.send(request).is_err() {
            return Some(empty);
        }
        Some(match answer.recv_timeout(COMPLETION_TIMEOUT) {
            Ok(Some(found)) => {
                let mut matches: Vec<String> =
                    found.completions.into_iter().map(|c| c.code).collect();
                matches.dedup();
                Completion {
                    matches,
                    cursor_start: byte_to_char(cell, found.start_offset),
                    cursor_end: byte_to_char(cell, found.end_offset),
                }
            }
            _ => empty,
        })
    }
}

fn char_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(byte, _)| byte)
}

fn byte_to_char(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].chars().count()
}

/// Whether `cargo` can be found the way evcxr looks for it (on the PATH, or next to this
/// executable).
fn cargo_available() -> bool {
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| is_executable(&dir.join("cargo")))
    });
    on_path
        || std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| is_executable(&dir.join("cargo"))))
            .unwrap_or(false)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Starts the evaluator thread and waits until evcxr is ready (it compiles a first snippet,
/// a few seconds).
fn start() -> Result<Sender<Request>, String> {
    if !cargo_available() {
        return Err(
            "Rust cells need `cargo` (a Rust toolchain, e.g. from https://rustup.rs) \
                    on the PATH of the kernel, and none was found. Install it and run the \
                    cell again; Rhai cells are not affected."
                .into(),
        );
    }
    let (ready_tx, ready_rx) = bounded::<Result<(), String>>(1);
    let (requests, incoming) = unbounded::<Request>();
    std::thread::Builder::new()
        .name("rust-cells".into())
        // rust-analyzer (completions) recurses deeply.
        .stack_size(64 << 20)
        .spawn(move || {
            let (mut context, outputs) = match CommandContext::new() {
                Ok(started) => started,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("evcxr could not start: {e}")));
                    return;
                }
            };
            let flush_stdout = drain(outputs.stdout, Stream::Stdout);
            let flush_stderr = drain(outputs.stderr, Stream::Stderr);
            interrupt::on_request(kill_running_cell);
            let _ = ready_tx.send(Ok(()));
            let done = serve(&mut context, &incoming, &[flush_stdout, flush_stderr]);
            drop(context);
            if let Some(done) = done {
                let _ = done.send(());
            }
        })
        .map_err(|e| format!("cannot start the Rust cell evaluator: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => {
            *EVALUATOR.lock().unwrap_or_else(PoisonError::into_inner) = Some(requests.clone());
            Ok(requests)
        }
        Ok(Err(message)) => Err(message),
        Err(_) => Err("the Rust cell evaluator failed while starting".into()),
    }
}

/// Answers requests until a shutdown (returned, to be acknowledged once the context is gone)
/// or until every sender is gone.
fn serve(
    context: &mut CommandContext,
    incoming: &Receiver<Request>,
    flushers: &[Sender<Sender<()>>],
) -> Option<Sender<()>> {
    for request in incoming {
        match request {
            Request::Eval {
                code,
                source,
                reply,
            } => {
                *PANIC.lock().unwrap_or_else(PoisonError::into_inner) = None;
                let result = eval(context, &code, &source);
                flush(flushers);
                // evcxr reports a panic only on stderr and keeps the earlier variables; the
                // cell itself failed, as a Rhai `throw` does.
                let panic = PANIC.lock().unwrap_or_else(PoisonError::into_inner).take();
                let result = match (result, panic) {
                    (Ok(_), Some(message)) => Err(ScriptError::other(
                        "RustPanic",
                        if message.is_empty() {
                            "the cell panicked".to_string()
                        } else {
                            format!("the cell panicked: {message}")
                        },
                        &source,
                    )),
                    (result, _) => result,
                };
                let _ = reply.send(result);
            }
            Request::Complete {
                code,
                position,
                reply,
            } => {
                let _ = reply.send(context.completions(&code, position).ok());
            }
            Request::Shutdown(done) => return Some(done),
        }
    }
    None
}

/// Ends evcxr before the kernel exits: a running Rust cell is stopped, evcxr's child process
/// exits and its temporary directory (the cells' cargo project) is removed. Waits a few
/// seconds at most.
pub fn shutdown() {
    let Some(requests) = EVALUATOR
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    else {
        return;
    };
    kill_running_cell();
    let (done, finished) = bounded(1);
    if requests.send(Request::Shutdown(done)).is_ok() {
        let _ = finished.recv_timeout(Duration::from_secs(5));
    }
}

fn eval(context: &mut CommandContext, code: &str, source: &str) -> CellResult {
    KILLED.store(false, Ordering::SeqCst);
    let child = context.process_handle();
    CHILD_PID.store(
        child.lock().unwrap_or_else(PoisonError::into_inner).id(),
        Ordering::SeqCst,
    );
    *RUNNING.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
    // An interrupt that came before the child was registered still stops the cell.
    if interrupt::is_requested() {
        kill_running_cell();
    }
    // `evcxr_input::get_string` in a Rust cell asks the frontend, as `input()` does in Rhai.
    let mut callbacks = EvalCallbacks {
        input_reader: &|request| {
            let sink = OUTPUT
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            sink.and_then(|s| s.read_input(&request.prompt, request.is_password).ok())
                .unwrap_or_default()
        },
    };
    let outcome = context.execute_with_callbacks(code, &mut callbacks);
    *RUNNING.lock().unwrap_or_else(PoisonError::into_inner) = None;
    let killed = KILLED.swap(false, Ordering::SeqCst);
    match outcome {
        Ok(outputs) => Ok(bundle(outputs)),
        Err(error) => Err(script_error(error, killed, source)),
    }
}

/// The interrupt hook: kills the child of a running Rust cell (nothing when none runs).
fn kill_running_cell() {
    let running = RUNNING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(child) = running {
        KILLED.store(true, Ordering::SeqCst);
        let _ = child.lock().unwrap_or_else(PoisonError::into_inner).kill();
    }
}

fn bundle(outputs: EvalOutputs) -> Option<MimeBundle> {
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

const STATE_LOST: &str =
    "Rust-cell variables were lost (evcxr restarted its process; definitions and :dep \
     dependencies are kept); Rhai state is kept.";

fn script_error(error: evcxr::Error, killed: bool, source: &str) -> ScriptError {
    match error {
        evcxr::Error::CompilationErrors(errors) => compilation_error(&errors, source),
        evcxr::Error::SubprocessTerminated(_) if killed => ScriptError::other(
            "Interrupted",
            format!("execution was interrupted. {STATE_LOST}"),
            source,
        ),
        evcxr::Error::SubprocessTerminated(message) => ScriptError::other(
            "RustProcessTerminated",
            format!("{}\n{STATE_LOST}", message.trim_end()),
            source,
        ),
        other => ScriptError::other("RustError", other.to_string(), source),
    }
}

/// evcxr's messages, one per error, each with its labels and help; the frames point at the
/// primary spans in the cell, so the traceback shows the lines with a caret.
fn compilation_error(errors: &[evcxr::CompilationError], source: &str) -> ScriptError {
    let mut message = String::new();
    let mut frames = Vec::new();
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
            frames.push(Frame {
                source: source.to_string(),
                function: None,
                line: Some(span.start_line),
                column: Some(span.start_column),
            });
        }
    }
    let mut error = ScriptError::other("CompilationError", message, source);
    if !frames.is_empty() {
        error.frames = frames;
    }
    error
}

/// Forwards the lines of one of evcxr's output channels to the current Rust cell's sink. A
/// flush request (an acknowledgement sender) is answered once every line already queued
/// has been written.
fn drain(lines: Receiver<String>, stream: Stream) -> Sender<Sender<()>> {
    let (flush_tx, flush_rx) = unbounded::<Sender<()>>();
    let emit = move |line: String| {
        if stream == Stream::Stderr {
            watch_for_panic(&line);
        }
        let sink = OUTPUT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let text = format!("{line}\n");
        match sink {
            Some(sink) => sink.write(stream, &text),
            None => eprint!("{text}"),
        }
    };
    let spawned = std::thread::Builder::new()
        .name(format!("rust-cells-{}", stream.name()))
        .spawn(move || loop {
            crossbeam_channel::select! {
                recv(lines) -> line => match line {
                    Ok(line) => emit(line),
                    Err(_) => return,
                },
                recv(flush_rx) -> ack => match ack {
                    Ok(ack) => {
                        while let Ok(line) = lines.try_recv() {
                            emit(line);
                        }
                        let _ = ack.send(());
                    }
                    Err(_) => return,
                },
            }
        });
    if let Err(e) = spawned {
        eprintln!(
            "[rhai-kernel] cannot drain Rust cell {}: {e}",
            stream.name()
        );
    }
    flush_tx
}

/// Waits until the output queued so far has reached the sink.
fn flush(flushers: &[Sender<Sender<()>>]) {
    for flusher in flushers {
        let (ack, done) = bounded(1);
        if flusher.send(ack).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_convert_between_chars_and_bytes() {
        let text = "é = 1;\nx";
        assert_eq!(char_to_byte(text, 1), 2);
        assert_eq!(byte_to_char(text, 2), 1);
        assert_eq!(char_to_byte(text, 100), text.len());
    }
}
