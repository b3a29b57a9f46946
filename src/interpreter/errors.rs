//! Script errors: their kind, message and call chain, and rendering as a Jupyter traceback
//! (ANSI-coloured like IPython's) or as `FILE:LINE:COL: message` for the command line.

use rhai::{EvalAltResult, ParseError, Position};

/// A location in the chain of calls that led to an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The cell (`In[3]`) or file the location is in.
    pub source: String,
    /// The function being executed at that point (`None` at the top level of the cell).
    pub function: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// An error raised by a cell, flattened from Rhai's nested error values.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError {
    /// The Rhai error kind (`ErrorRuntime`, `ErrorParsing`, …) or `Interrupted`.
    pub kind: String,
    pub message: String,
    /// Outermost call first; the last frame is where the error happened.
    pub frames: Vec<Frame>,
}

fn line_col(pos: Position) -> (Option<usize>, Option<usize>) {
    (pos.line(), pos.position())
}

/// The name of an error's variant, which is what users see as `ename`.
fn kind_name(err: &EvalAltResult) -> &'static str {
    use EvalAltResult::*;
    match err {
        ErrorSystem(..) => "ErrorSystem",
        ErrorParsing(..) => "ErrorParsing",
        ErrorVariableExists(..) => "ErrorVariableExists",
        ErrorForbiddenVariable(..) => "ErrorForbiddenVariable",
        ErrorVariableNotFound(..) => "ErrorVariableNotFound",
        ErrorPropertyNotFound(..) => "ErrorPropertyNotFound",
        ErrorIndexNotFound(..) => "ErrorIndexNotFound",
        ErrorFunctionNotFound(..) => "ErrorFunctionNotFound",
        ErrorModuleNotFound(..) => "ErrorModuleNotFound",
        ErrorInFunctionCall(..) => "ErrorInFunctionCall",
        ErrorInModule(..) => "ErrorInModule",
        ErrorUnboundThis(..) => "ErrorUnboundThis",
        ErrorMismatchDataType(..) => "ErrorMismatchDataType",
        ErrorMismatchOutputType(..) => "ErrorMismatchOutputType",
        ErrorIndexingType(..) => "ErrorIndexingType",
        ErrorArrayBounds(..) => "ErrorArrayBounds",
        ErrorStringBounds(..) => "ErrorStringBounds",
        ErrorBitFieldBounds(..) => "ErrorBitFieldBounds",
        ErrorFor(..) => "ErrorFor",
        ErrorDataRace(..) => "ErrorDataRace",
        ErrorNonPureMethodCallOnConstant(..) => "ErrorNonPureMethodCallOnConstant",
        ErrorAssignmentToConstant(..) => "ErrorAssignmentToConstant",
        ErrorDotExpr(..) => "ErrorDotExpr",
        ErrorArithmetic(..) => "ErrorArithmetic",
        ErrorTooManyOperations(..) => "ErrorTooManyOperations",
        ErrorTooManyVariables(..) => "ErrorTooManyVariables",
        ErrorTooManyModules(..) => "ErrorTooManyModules",
        ErrorStackOverflow(..) => "ErrorStackOverflow",
        ErrorDataTooLarge(..) => "ErrorDataTooLarge",
        err @ ErrorTerminated(..) if super::limits::is_memory_error(err) => "MemoryError",
        ErrorTerminated(..) => "Interrupted",
        ErrorCustomSyntax(..) => "ErrorCustomSyntax",
        ErrorRuntime(..) => "ErrorRuntime",
        LoopBreak(..) => "ErrorLoopBreak",
        Return(..) => "ErrorReturn",
        Exit(..) => "ErrorExit",
        _ => "Error",
    }
}

fn message_of(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => {
            if value.is_string() {
                value.clone().into_string().unwrap_or_default()
            } else {
                value.to_string()
            }
        }
        EvalAltResult::ErrorTerminated(value, _) if super::limits::is_memory_error(err) => {
            value.to_string()
        }
        EvalAltResult::ErrorTerminated(..) => "execution was interrupted".into(),
        // The variable hook's own errors name the variable; Rhai's say little.
        EvalAltResult::ErrorDataRace(detail, _) if !detail.starts_with("variable '") => {
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(" on {detail}")
            };
            super::shared_vars::rhai_race_message(&detail)
        }
        // Besides constants, the variable hook hands out read-only copies (see `shared_vars`).
        EvalAltResult::ErrorNonPureMethodCallOnConstant(..)
        | EvalAltResult::ErrorAssignmentToConstant(..) => format!(
            "{}{}",
            strip_position(err.to_string()),
            super::shared_vars::READ_ONLY_HINT
        ),
        EvalAltResult::ErrorStackOverflow(_) => {
            "stack overflow: too many nested function calls (infinite recursion?)".into()
        }
        other => strip_position(other.to_string()),
    }
}

/// Rhai appends " (line L, position C)" to its messages; the frames carry the position.
fn strip_position(text: String) -> String {
    match text.rfind(" (line ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

impl ScriptError {
    /// Flattens a runtime error. `source` names the cell being run; `origin_of` tells in
    /// which cell a function was defined, so frames inside it show the right source.
    pub fn from_eval(
        err: &EvalAltResult,
        source: &str,
        origin_of: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut frames = Vec::new();
        let mut current_source = source.to_string();
        let mut function: Option<String> = None;
        let mut err = err;
        loop {
            match err {
                EvalAltResult::ErrorInFunctionCall(name, _, inner, pos)
                | EvalAltResult::ErrorInModule(name, inner, pos) => {
                    let (line, column) = line_col(*pos);
                    frames.push(Frame {
                        source: current_source.clone(),
                        function: function.clone(),
                        line,
                        column,
                    });
                    if let Some(origin) = origin_of(name) {
                        current_source = origin;
                    }
                    function = Some(name.clone());
                    err = inner;
                }
                EvalAltResult::ErrorParsing(kind, pos) => {
                    let (line, column) = line_col(*pos);
                    frames.push(Frame {
                        source: current_source,
                        function,
                        line,
                        column,
                    });
                    return ScriptError {
                        kind: "ErrorParsing".into(),
                        message: kind.to_string(),
                        frames,
                    };
                }
                other => {
                    let (line, column) = line_col(other.position());
                    frames.push(Frame {
                        source: current_source,
                        function,
                        line,
                        column,
                    });
                    return ScriptError {
                        kind: kind_name(other).into(),
                        message: message_of(other),
                        frames,
                    };
                }
            }
        }
    }

    /// A syntax error found while compiling `source`.
    pub fn from_parse(err: &ParseError, source: &str) -> Self {
        let (line, column) = line_col(err.position());
        ScriptError {
            kind: "ErrorParsing".into(),
            message: err.err_type().to_string(),
            frames: vec![Frame {
                source: source.into(),
                function: None,
                line,
                column,
            }],
        }
    }

    /// An error that did not come from Rhai (a panic in a native, a bad magic…).
    pub fn other(kind: &str, message: impl Into<String>, source: &str) -> Self {
        ScriptError {
            kind: kind.into(),
            message: message.into(),
            frames: vec![Frame {
                source: source.into(),
                function: None,
                line: None,
                column: None,
            }],
        }
    }

    pub fn is_interrupt(&self) -> bool {
        self.kind == "Interrupted"
    }

    /// The innermost location with a known line.
    pub fn location(&self) -> Option<&Frame> {
        self.frames.iter().rev().find(|f| f.line.is_some())
    }
}

const RED: &str = "\x1b[0;31m";
const GREEN: &str = "\x1b[0;32m";
const CYAN: &str = "\x1b[0;36m";
const BOLD_RED: &str = "\x1b[1;31m";
const RESET: &str = "\x1b[0m";

/// Renders an error as traceback lines (IPython style); `source_text` gives the code of a
/// cell or file by name. Without `colour`, no ANSI escapes are used.
pub fn render_traceback(
    error: &ScriptError,
    source_text: impl Fn(&str) -> Option<String>,
    colour: bool,
) -> Vec<String> {
    let paint = |code: &'static str, text: &str| {
        if colour {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    };
    let mut lines = Vec::new();
    lines.push(paint(RED, &"-".repeat(75)));
    lines.push(format!(
        "{}{}Traceback (most recent call last)",
        paint(RED, &error.kind),
        " ".repeat(42usize.saturating_sub(error.kind.len()))
    ));
    for frame in &error.frames {
        let Some(line_no) = frame.line else {
            continue;
        };
        let column = frame.column.unwrap_or(0);
        let place = match &frame.function {
            Some(f) => format!("{}, in function {}", frame.source, f),
            None => frame.source.clone(),
        };
        let mut block = format!("{}, line {line_no}, column {column}:", paint(GREEN, &place));
        if let Some(text) = source_text(&frame.source) {
            let all: Vec<&str> = text.lines().collect();
            let first = line_no.saturating_sub(2).max(1);
            let last = (line_no + 1).min(all.len());
            for n in first..=last {
                let code = all.get(n - 1).copied().unwrap_or("");
                if n == line_no {
                    block.push_str(&format!(
                        "\n{} {code}",
                        paint(GREEN, &format!("----> {n:<3}"))
                    ));
                    if column > 0 {
                        block.push_str(&format!(
                            "\n{}{}",
                            " ".repeat(10 + column - 1),
                            paint(BOLD_RED, "^")
                        ));
                    }
                } else {
                    block.push_str(&format!(
                        "\n      {} {code}",
                        paint(CYAN, &format!("{n:<3}"))
                    ));
                }
            }
        }
        lines.push(block);
    }
    lines.push(format!("{}: {}", paint(RED, &error.kind), error.message));
    lines
}

/// The command line's format: `FILE:LINE:COL: message`, the source line and a caret,
/// then the call chain.
pub fn render_for_terminal(
    error: &ScriptError,
    source_text: impl Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::new();
    match error.location() {
        Some(frame) => {
            let line_no = frame.line.unwrap_or(0);
            let column = frame.column.unwrap_or(0);
            out.push_str(&format!(
                "{}:{line_no}:{column}: {}: {}\n",
                frame.source, error.kind, error.message
            ));
            if let Some(code) = source_text(&frame.source)
                .and_then(|t| t.lines().nth(line_no.saturating_sub(1)).map(str::to_string))
            {
                out.push_str(&format!(
                    "{code}\n{}^\n",
                    " ".repeat(column.saturating_sub(1))
                ));
            }
        }
        None => {
            let source = error
                .frames
                .first()
                .map_or("<script>", |f| f.source.as_str());
            out.push_str(&format!("{source}: {}: {}\n", error.kind, error.message));
        }
    }
    let calls: Vec<&Frame> = error
        .frames
        .iter()
        .filter(|f| f.function.is_some())
        .collect();
    if !calls.is_empty() {
        for frame in error.frames.iter().rev().skip(1) {
            out.push_str(&format!(
                "  called from {}:{}:{}{}\n",
                frame.source,
                frame.line.unwrap_or(0),
                frame.column.unwrap_or(0),
                frame
                    .function
                    .as_ref()
                    .map(|f| format!(" (in {f})"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}
