//! What the debugger tells its frontend: events, stop reasons, frames, scopes, and what
//! `debugInfo` and `setBreakpoints` answer.

/// The thread id the frontend knows the cell's own thread by (ipykernel's main thread is
/// also 1). Script threads are numbered after it.
pub const CELL_THREAD: i64 = 1;

/// What the debugger tells the frontend without being asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A thread stopped: at a breakpoint, after a step, or paused.
    Stopped {
        thread: i64,
        reason: StopReason,
        description: String,
    },
    /// A thread runs again.
    Continued { thread: i64 },
}

/// Why a thread stopped, in the protocol's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Breakpoint,
    Step,
    Pause,
    Exception,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Breakpoint => "breakpoint",
            StopReason::Step => "step",
            StopReason::Pause => "pause",
            StopReason::Exception => "exception",
        }
    }
}

/// How a stopped thread goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    Continue,
    /// The next line in this function or its callers (`next`).
    Over,
    /// The next line anywhere, into called functions (`stepIn`).
    In,
    /// The next line after this function returns (`stepOut`).
    Out,
}

/// One frame of a stopped thread, newest first.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: i64,
    pub name: String,
    /// The cell path (or file) the frame's code is in, if known.
    pub path: Option<String>,
    pub line: usize,
    pub column: usize,
}

/// A scope of a frame: its name and the reference of its variables.
#[derive(Debug, Clone)]
pub struct ScopeView {
    pub name: &'static str,
    pub reference: i64,
    pub count: usize,
}

/// What `debugInfo` reports.
#[derive(Debug, Clone)]
pub struct Info {
    pub started: bool,
    pub seed: u32,
    pub prefix: String,
    pub breakpoints: Vec<(String, Vec<usize>)>,
    pub stopped_threads: Vec<i64>,
    pub exception_filters: Vec<String>,
}

/// A breakpoint as set: the line asked for and where it stops, if anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub requested: usize,
    pub line: Option<usize>,
}
