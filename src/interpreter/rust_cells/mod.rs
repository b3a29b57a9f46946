//! Rust cells: a cell whose first line is `%%rust` is compiled and run by evcxr, next to the
//! Rhai session, so that script-level and native concurrency can be compared in one notebook.
//!
//! evcxr lives in a program of its own, `rhai-kernel-rust` (installed next to this one),
//! started with the first Rust cell: a kernel that runs none never loads evcxr and
//! rust-analyzer. The shell thread sends it cells and completion requests
//! ([`protocol`]); a reader thread writes the lines the cells print into the output sink of
//! the cell that is running, answers their requests for input, and hands each answer to the
//! request waiting for it. evcxr runs the compiled code in a child process of its own; an
//! interrupt kills that child: evcxr starts a fresh one, so Rust variables are lost while
//! the Rhai session is untouched.

pub mod protocol;

use super::errors::{Frame, ScriptError};
use super::Completion;
use crate::runtime::interrupt;
use crate::runtime::sink::{MimeBundle, OutputSink, Stream};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use protocol::{Event, Failure, Request};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The evaluator program, next to this one.
const EVALUATOR_PROGRAM: &str = "rhai-kernel-rust";

/// Where the cells' output goes: the sink of the Rust cell that ran last (output that
/// arrives after its cell ended, from a thread it left running, still lands there).
static OUTPUT: Mutex<Option<Arc<dyn OutputSink>>> = Mutex::new(None);
/// The pid of evcxr's child while a Rust cell runs (0: none), so that an interrupt can kill
/// it.
static RUNNING: AtomicU32 = AtomicU32::new(0);
/// Set when an interrupt killed the child of the running cell.
static KILLED: AtomicBool = AtomicBool::new(false);
/// The running evaluator, for [`shutdown`].
static EVALUATOR: Mutex<Option<Arc<Evaluator>>> = Mutex::new(None);
/// Numbers requests, so that a late answer is not taken for the next one's.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Patience for a completion from rust-analyzer.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(10);
/// Patience for the evaluator to end after a shutdown request.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

type CellResult = Result<Option<MimeBundle>, ScriptError>;

/// A running `rhai-kernel-rust`.
struct Evaluator {
    child: Mutex<Child>,
    requests: Mutex<ChildStdin>,
    /// Its answers (`Started`, `Done`, `Completions`); closed when it exits.
    answers: Receiver<Event>,
}

impl Evaluator {
    fn send(&self, request: &Request) -> Result<(), String> {
        let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests
            .write_all(&line)
            .and_then(|()| requests.flush())
            .map_err(|e| e.to_string())
    }

    /// Ends the program: asks it to (it removes evcxr's project), then kills it if it has
    /// not ended in time.
    fn end(&self) {
        let _ = self.send(&Request::Shutdown);
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The evcxr evaluator of a kernel, started by its first Rust cell.
#[derive(Default)]
pub struct RustCells {
    evaluator: Option<Arc<Evaluator>>,
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
        let evaluator = match &self.evaluator {
            Some(evaluator) => evaluator.clone(),
            None => {
                let evaluator = start().map_err(|message| {
                    ScriptError::other("RustCellsUnavailable", message, source)
                })?;
                self.evaluator = Some(evaluator.clone());
                evaluator
            }
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        KILLED.store(false, Ordering::SeqCst);
        let answer = evaluator
            .send(&Request::Eval {
                id,
                code: code.to_string(),
            })
            .ok()
            .and_then(|()| answer_to(&evaluator, id, None));
        RUNNING.store(0, Ordering::SeqCst);
        let killed = KILLED.swap(false, Ordering::SeqCst);
        match answer {
            Some(Event::Done { result, .. }) => {
                result.map_err(|failure| script_error(failure, killed, source))
            }
            _ => {
                // The evaluator died: the next Rust cell starts a new one.
                self.evaluator = None;
                evaluator.end();
                Err(ScriptError::other(
                    "RustCellsUnavailable",
                    "the Rust cell evaluator stopped unexpectedly; the next Rust cell starts a \
                     new one (Rust variables are lost, Rhai state is kept)",
                    source,
                ))
            }
        }
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
        let Some(evaluator) = &self.evaluator else {
            return Some(empty);
        };
        let blanks: String = cell.as_bytes()[..magic_end]
            .iter()
            .map(|&b| if b == b'\n' { '\n' } else { ' ' })
            .collect();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let request = Request::Complete {
            id,
            code: format!("{blanks}{}", &cell[magic_end..]),
            position,
        };
        if evaluator.send(&request).is_err() {
            return Some(empty);
        }
        Some(match answer_to(evaluator, id, Some(COMPLETION_TIMEOUT)) {
            Some(Event::Completions {
                found: Some(found), ..
            }) => {
                let mut matches = found.matches;
                matches.dedup();
                Completion {
                    matches,
                    cursor_start: byte_to_char(cell, found.start),
                    cursor_end: byte_to_char(cell, found.end),
                }
            }
            _ => empty,
        })
    }
}

/// The answer to request `id` (earlier requests' late answers are dropped); `None` when the
/// evaluator exited or `patience` ran out.
fn answer_to(evaluator: &Evaluator, id: u64, patience: Option<Duration>) -> Option<Event> {
    let deadline = patience.map(|p| Instant::now() + p);
    loop {
        let answer = match deadline {
            Some(deadline) => match evaluator.answers.recv_deadline(deadline) {
                Ok(answer) => answer,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            },
            None => evaluator.answers.recv().ok()?,
        };
        match &answer {
            Event::Done { id: of, .. } | Event::Completions { id: of, .. } if *of == id => {
                return Some(answer)
            }
            _ => {}
        }
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

/// The evaluator program: next to this one (where `make` and `cargo install` put both).
fn evaluator_program() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let program = exe.with_file_name(EVALUATOR_PROGRAM);
    if is_executable(&program) {
        Ok(program)
    } else {
        Err(format!(
            "Rust cells need the program `{EVALUATOR_PROGRAM}` next to this kernel ({}), and \
             it is not there: build and install both with the `rust` feature (docs/rust-cells.md). \
             Rhai cells are not affected.",
            exe.display()
        ))
    }
}

/// Starts the evaluator and waits until evcxr is ready (it compiles a first snippet, a few
/// seconds).
fn start() -> Result<Arc<Evaluator>, String> {
    if !cargo_available() {
        return Err(
            "Rust cells need `cargo` (a Rust toolchain, e.g. from https://rustup.rs) \
                    on the PATH of the kernel, and none was found. Install it and run the \
                    cell again; Rhai cells are not affected."
                .into(),
        );
    }
    let mut child = Command::new(evaluator_program()?)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the Rust cell evaluator: {e}"))?;
    let (Some(requests), Some(events)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("cannot talk to the Rust cell evaluator".into());
    };
    let (answers_tx, answers) = unbounded();
    let evaluator = Arc::new(Evaluator {
        child: Mutex::new(child),
        requests: Mutex::new(requests),
        answers,
    });
    let reading = {
        let evaluator = Arc::downgrade(&evaluator);
        std::thread::Builder::new()
            .name("rust-cells".into())
            .spawn(move || read_events(BufReader::new(events), &answers_tx, &evaluator))
    };
    if let Err(e) = reading {
        evaluator.end();
        return Err(format!("cannot read the Rust cell evaluator: {e}"));
    }
    interrupt::on_request(kill_running_cell);
    match evaluator.answers.recv() {
        Ok(Event::Started(Ok(()))) => {
            *EVALUATOR.lock().unwrap_or_else(PoisonError::into_inner) = Some(evaluator.clone());
            Ok(evaluator)
        }
        Ok(Event::Started(Err(message))) => {
            evaluator.end();
            Err(message)
        }
        _ => {
            evaluator.end();
            Err("the Rust cell evaluator failed while starting".into())
        }
    }
}

/// The reader thread: output and input requests are handled here, as they come; answers go
/// to whoever waits for them.
fn read_events(
    events: impl BufRead,
    answers: &Sender<Event>,
    evaluator: &std::sync::Weak<Evaluator>,
) {
    for line in events.lines() {
        let Ok(line) = line else { break };
        let event = match serde_json::from_str::<Event>(&line) {
            Ok(event) => event,
            Err(e) => {
                eprintln!("[rhai-kernel] bad message from the Rust cell evaluator ({e}): {line}");
                continue;
            }
        };
        match event {
            Event::Output { stderr, line } => {
                let sink = OUTPUT
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let text = format!("{line}\n");
                let stream = if stderr {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                };
                match sink {
                    Some(sink) => sink.write(stream, &text),
                    None => eprint!("{text}"),
                }
            }
            Event::Input { prompt, password } => {
                let sink = OUTPUT
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let text = sink
                    .and_then(|s| s.read_input(&prompt, password).ok())
                    .unwrap_or_default();
                if let Some(evaluator) = evaluator.upgrade() {
                    let _ = evaluator.send(&Request::Input { text });
                }
            }
            Event::Running { pid, .. } => {
                RUNNING.store(pid, Ordering::SeqCst);
                // An interrupt that came before the child was known still stops the cell.
                if interrupt::is_requested() {
                    kill_running_cell();
                }
            }
            answer => {
                if matches!(answer, Event::Done { .. }) {
                    // The cell is over: an interrupt from now on has no child to kill.
                    RUNNING.store(0, Ordering::SeqCst);
                }
                if answers.send(answer).is_err() {
                    break;
                }
            }
        }
    }
}

/// Ends evcxr before the kernel exits: a running Rust cell is stopped, evcxr's child process
/// exits and its temporary directory (the cells' cargo project) is removed. Waits a few
/// seconds at most.
pub fn shutdown() {
    let evaluator = EVALUATOR
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(evaluator) = evaluator {
        kill_running_cell();
        evaluator.end();
    }
}

/// The interrupt hook: kills evcxr's child while a Rust cell runs (nothing when none runs).
fn kill_running_cell() {
    let pid = RUNNING.load(Ordering::SeqCst);
    if pid != 0 {
        KILLED.store(true, Ordering::SeqCst);
        // SAFETY: kill(2) has no memory effects; the pid is evcxr's child, which lives until
        // the cell's answer arrives (RUNNING is cleared then).
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
}

const STATE_LOST: &str =
    "Rust-cell variables were lost (evcxr restarted its process; definitions and :dep \
     dependencies are kept); Rhai state is kept.";

fn script_error(failure: Failure, killed: bool, source: &str) -> ScriptError {
    match failure {
        Failure::Compilation { message, at } => {
            let mut error = ScriptError::other("CompilationError", message, source);
            if !at.is_empty() {
                error.frames = at
                    .into_iter()
                    .map(|(line, column)| Frame {
                        source: source.to_string(),
                        function: None,
                        line: Some(line),
                        column: Some(column),
                    })
                    .collect();
            }
            error
        }
        Failure::Panic(message) => ScriptError::other(
            "RustPanic",
            if message.is_empty() {
                "the cell panicked".to_string()
            } else {
                format!("the cell panicked: {message}")
            },
            source,
        ),
        Failure::Terminated(_) if killed => ScriptError::other(
            "Interrupted",
            format!("execution was interrupted. {STATE_LOST}"),
            source,
        ),
        Failure::Terminated(message) => ScriptError::other(
            "RustProcessTerminated",
            format!("{}\n{STATE_LOST}", message.trim_end()),
            source,
        ),
        Failure::Other(message) => ScriptError::other("RustError", message, source),
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
