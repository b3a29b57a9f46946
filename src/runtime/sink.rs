//! The one interface through which scripts' output leaves the runtime, and the
//! per-thread notion of "the cell (or script) this code is running for".

use super::panel::{OnEvent, Panel, Part};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::sync::Arc;

/// A MIME bundle: `{"text/plain": "...", "text/html": "...", ...}`.
pub type MimeBundle = Map<String, Value>;

/// Which standard stream a piece of text belongs to (`"stdout"` or `"stderr"` on the wire
/// from a worker process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Why reading input failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// The frontend does not accept input requests for this execution.
    NotAllowed,
    /// The user interrupted the wait.
    Interrupted,
    /// The input channel is gone (EOF).
    Closed,
}

/// Where output of the running code goes. The kernel implements it with IOPub messages
/// parented to the cell's request; the command-line host with stdout/stderr.
pub trait OutputSink: Send + Sync {
    /// Text written to stdout or stderr (not necessarily a whole line).
    fn write(&self, stream: Stream, text: &str);
    /// A rich display; with `display_id` it can be updated later; `update` replaces an
    /// existing display with that id instead of adding one.
    fn display(&self, bundle: MimeBundle, display_id: Option<&str>, update: bool);
    /// Clears the output area (when `wait`, only once new output arrives).
    fn clear_output(&self, wait: bool);
    /// Asks the user for a line of input.
    fn read_input(&self, prompt: &str, password: bool) -> Result<String, InputError>;
    /// Shows documentation in a pager (IPython's `?`).
    fn page(&self, text: &str);
    /// Shows `parts` as live controls that change in place and report what the user does
    /// to `on_event`, with `text` where the frontend cannot draw them. `None` where the
    /// host has no such controls (the command line): the caller falls back to text.
    fn panel(&self, parts: Vec<Part>, text: &str, on_event: OnEvent) -> Option<Arc<dyn Panel>> {
        let _ = (parts, text, on_event);
        None
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<dyn OutputSink>>> = const { RefCell::new(None) };
}

/// The sink of the code running on this thread, if any.
pub fn current() -> Option<Arc<dyn OutputSink>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with `sink` as this thread's sink, restoring the previous one afterwards.
pub fn with_sink<R>(sink: Arc<dyn OutputSink>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<dyn OutputSink>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = CURRENT.with(|c| c.borrow_mut().replace(sink));
    let _restore = Restore(previous);
    f()
}

/// Writes to the current sink, or to the process's own streams when there is none
/// (e.g. a thread that outlived its cell in a host without a sink).
pub fn write(stream: Stream, text: &str) {
    match current() {
        Some(sink) => sink.write(stream, text),
        None => {
            use std::io::Write;
            let _ = match stream {
                Stream::Stdout => std::io::stdout().write_all(text.as_bytes()),
                Stream::Stderr => std::io::stderr().write_all(text.as_bytes()),
            };
        }
    }
}
