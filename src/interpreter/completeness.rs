//! `is_complete`: decides whether a console should run the code or wait for more lines.

use super::inspection::help_query;
use super::Completeness;
use rhai::{Engine, LexError, ParseErrorType};

/// Parse errors at the very end of the input mean "keep typing" (an open block, a missing
/// closing bracket, an unfinished string); errors elsewhere mean the code is invalid.
pub fn check(engine: &Engine, code: &str) -> Completeness {
    if let Some((magic, body)) = super::magics::split(code) {
        if magic == "%%rust" {
            // Rust is not parsed here: a Rust cell is run as typed.
            return Completeness::Complete;
        }
        return check(engine, &body);
    }
    if code.trim().is_empty() || help_query(code).is_some() {
        return Completeness::Complete;
    }
    let err = match engine.compile(code) {
        Ok(_) => return Completeness::Complete,
        Err(err) => err,
    };
    let at_end = match (err.position().line(), err.position().position()) {
        (Some(line), Some(col)) => is_at_or_after_end(code, line, col),
        _ => true,
    };
    let continues_at_end = matches!(
        err.err_type(),
        ParseErrorType::MissingToken(..) | ParseErrorType::ExprExpected(..)
    );
    // An unterminated string is reported where it starts, but always runs to the end.
    let always_continues = matches!(
        err.err_type(),
        ParseErrorType::UnexpectedEOF | ParseErrorType::BadInput(LexError::UnterminatedString)
    );
    if continues_at_end && at_end || always_continues {
        Completeness::Incomplete(indent_for(code))
    } else {
        Completeness::Invalid
    }
}

/// True when (line, col), 1-based, is at or past the last non-blank character of `code`.
fn is_at_or_after_end(code: &str, line: usize, col: usize) -> bool {
    let trimmed = code.trim_end();
    let last_line = trimmed.lines().count().max(1);
    let last_col = trimmed.lines().last().map_or(0, |l| l.chars().count());
    line > last_line || (line == last_line && col >= last_col)
}

/// Indentation for the next line: four spaces per unclosed bracket.
fn indent_for(code: &str) -> String {
    let mut depth: i32 = 0;
    let mut in_string = false;
    let mut escaped = false;
    for c in code.chars() {
        if in_string {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            _ => {}
        }
    }
    " ".repeat(4 * depth.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: &str) -> Completeness {
        check(&crate::interpreter::engine::new_engine(), code)
    }

    #[test]
    fn classifies_code() {
        assert_eq!(status("let x = 1;"), Completeness::Complete);
        assert_eq!(status("print(1)"), Completeness::Complete);
        assert_eq!(status("fn f(x) {"), Completeness::Incomplete("    ".into()));
        assert_eq!(
            status("fn f(x) {\n  if x {"),
            Completeness::Incomplete("        ".into())
        );
        assert_eq!(
            status("let a = [1, 2,"),
            Completeness::Incomplete("    ".into())
        );
        assert_eq!(
            status("print(\"abc"),
            Completeness::Incomplete("    ".into())
        );
        assert_eq!(status("let x = 1 +"), Completeness::Incomplete("".into()));
        assert_eq!(status("let = 5;"), Completeness::Invalid);
        assert_eq!(status("1 +* 2; let y = 3;"), Completeness::Invalid);
        assert_eq!(status("sleep?"), Completeness::Complete);
    }
}
