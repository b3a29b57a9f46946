//! What the kernel and its Rust-cell evaluator (the `rhai-kernel-rust` program, which holds
//! evcxr) say to each other: one JSON message per line, requests on the evaluator's stdin and
//! events on its stdout. The evaluator is a program of its own so that a kernel that runs no
//! Rust cell never loads evcxr and rust-analyzer (about 9 MiB of memory at rest).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The kernel's requests. `id` pairs an answer with its request: a completion that took too
/// long is answered after the kernel stopped waiting, and must not answer the next one.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Runs the body of a `%%rust` cell.
    Eval { id: u64, code: String },
    /// evcxr's completions at byte `position` of `code`.
    Complete {
        id: u64,
        code: String,
        position: usize,
    },
    /// What the user typed, for the cell's `Event::Input`.
    Input { text: String },
    /// Drop evcxr's context (its child exits, its cargo project is removed), then exit.
    Shutdown,
}

/// The evaluator's events.
#[derive(Debug, Serialize, Deserialize)]
pub enum Event {
    /// evcxr is ready (it compiled a first snippet), or could not start.
    Started(Result<(), String>),
    /// The cell with this id runs in evcxr's child, whose pid this is: the kernel kills it
    /// on an interrupt.
    Running { id: u64, pid: u32 },
    /// A line the cell's code wrote.
    Output { stderr: bool, line: String },
    /// The cell asks the user for a line (`evcxr_input::get_string`): answer with
    /// `Request::Input`.
    Input { prompt: String, password: bool },
    /// The cell ended: its value as a MIME bundle (`None` when it has none), or why not.
    Done {
        id: u64,
        result: Result<Option<Map<String, Value>>, Failure>,
    },
    /// evcxr's completions (`None` when it has none).
    Completions { id: u64, found: Option<Found> },
}

/// How a Rust cell failed.
#[derive(Debug, Serialize, Deserialize)]
pub enum Failure {
    /// rustc's errors, and where in the cell each primary span starts (line, column).
    Compilation {
        message: String,
        at: Vec<(usize, usize)>,
    },
    /// The cell's own code panicked (its message, empty when none was seen).
    Panic(String),
    /// evcxr's child died (killed by an interrupt, or it crashed).
    Terminated(String),
    /// Any other error of evcxr's.
    Other(String),
}

/// Completions: the replacement texts, and the byte range of the cell they replace.
#[derive(Debug, Serialize, Deserialize)]
pub struct Found {
    pub matches: Vec<String>,
    pub start: usize,
    pub end: usize,
}
