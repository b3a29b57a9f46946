//! The language side of the kernel: a persistent Rhai session behind a small trait, so the
//! kernel core never touches Rhai directly (the xeus split between interpreter and kernel).

pub mod completeness;
pub mod completion;
pub mod debugger;
pub mod engine;
pub mod errors;
pub mod inspection;
pub mod limits;
pub mod magics;
#[cfg(feature = "rust")]
pub mod rust_cells;
pub mod session;
pub mod shared_vars;

pub use errors::{Frame, ScriptError};
pub use session::RhaiSession;

use crate::runtime::sink::MimeBundle;

/// Result of a completion request; positions are in characters (Unicode code points).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion {
    pub matches: Vec<String>,
    pub cursor_start: usize,
    pub cursor_end: usize,
}

/// Answer to "is this code ready to run?".
#[derive(Debug, Clone, PartialEq)]
pub enum Completeness {
    Complete,
    /// More input is expected; the string is the indentation for the next line.
    Incomplete(String),
    Invalid,
}

/// What a frontend needs to know about the language.
#[derive(Debug, Clone)]
pub struct LanguageInfo {
    pub name: &'static str,
    pub version: String,
    pub mimetype: &'static str,
    pub file_extension: &'static str,
    pub pygments_lexer: &'static str,
    pub codemirror_mode: &'static str,
}

/// The operations a kernel needs from a language session.
pub trait Interpreter {
    /// Runs one cell; `source_name` (e.g. `In[3]`) names it in tracebacks.
    /// Returns the rich value of the cell's last expression, if it has one.
    fn execute(&mut self, code: &str, source_name: &str)
        -> Result<Option<MimeBundle>, ScriptError>;
    /// Evaluates an expression without side effects on the history (for `user_expressions`).
    fn evaluate(&mut self, expression: &str) -> Result<MimeBundle, ScriptError>;
    /// Completions at `cursor` (a character offset into `code`).
    fn complete(&self, code: &str, cursor: usize) -> Completion;
    /// Documentation or value of the name at `cursor`, as plain text.
    fn inspect(&self, code: &str, cursor: usize, detail_level: u8) -> Option<String>;
    /// Whether `code` is complete, needs more lines, or can never parse.
    fn is_complete(&self, code: &str) -> Completeness;
    fn language_info(&self) -> LanguageInfo;
    /// A plain-text rendering of an error (with source lines) for a traceback.
    fn traceback(&self, error: &ScriptError, colour: bool) -> Vec<String>;
}
