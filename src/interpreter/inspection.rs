//! Shift-Tab and `?`: documentation of functions and the value of variables.

use super::session::RhaiSession;
use crate::runtime::display::repr;
use crate::runtime::docs::{self, clean_comments, FnDoc};

/// If the cell is just `name?` (or `name??`), the name asked about.
pub fn help_query(code: &str) -> Option<&str> {
    let code = code.trim();
    let name = code
        .strip_suffix("??")
        .or_else(|| code.strip_suffix('?'))?
        .trim();
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    valid.then_some(name)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The identifier touching character offset `cursor` (also when the cursor is just
/// after it, or inside a call's parentheses: `sleep(|` inspects `sleep`).
pub fn name_at(code: &str, cursor: usize) -> Option<String> {
    let chars: Vec<char> = code.chars().collect();
    let cursor = cursor.min(chars.len());
    let word_around = |at: usize| -> Option<String> {
        let mut start = at;
        while start > 0 && is_ident_char(chars[start - 1]) {
            start -= 1;
        }
        let mut end = at;
        while end < chars.len() && is_ident_char(chars[end]) {
            end += 1;
        }
        (start < end).then(|| chars[start..end].iter().collect())
    };
    if let Some(word) = word_around(cursor) {
        return Some(word);
    }
    // Inside an argument list: find the innermost unclosed '(' before the cursor.
    let mut depth = 0;
    for i in (0..cursor).rev() {
        match chars[i] {
            ')' => depth += 1,
            '(' if depth == 0 => return word_around(i),
            '(' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The type name users know for a value.
pub fn type_name(value: &rhai::Dynamic) -> String {
    docs::friendly_type(value.type_name()).into_owned()
}

/// Documentation of a function (native or defined in a cell), or the value of a variable.
pub fn describe(session: &RhaiSession, name: &str) -> Option<String> {
    let mut text = String::new();
    if let Some((_, _, value)) = session.scope().iter_raw().find(|(n, ..)| *n == name) {
        text.push_str(&format!(
            "{name}: {} = {}\n",
            type_name(value),
            truncate(&repr(value), 2000)
        ));
    }
    let mut overloads: Vec<FnDoc> = session
        .functions()
        .iter_functions()
        .filter(|f| f.name == name)
        .map(|f| FnDoc {
            signature: format!("fn {}({})", f.name, f.params.join(", ")),
            doc: clean_comments(&f.comments),
        })
        .collect();
    let getter = format!("get${name}");
    overloads.extend(
        docs::native_functions(session.engine(), None)
            .into_iter()
            .filter(|(n, _)| n == name || *n == getter)
            .map(|(_, d)| d),
    );
    overloads.dedup();
    if let Some(fn_text) = docs::format_docs(&overloads) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&fn_text);
    }
    (!text.is_empty()).then_some(text)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

pub fn inspect(session: &RhaiSession, code: &str, cursor: usize, _detail: u8) -> Option<String> {
    let name = name_at(code, cursor)?;
    describe(session, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names() {
        assert_eq!(name_at("sleep", 5).as_deref(), Some("sleep"));
        assert_eq!(name_at("sleep", 2).as_deref(), Some("sleep"));
        assert_eq!(name_at("sleep(1, ", 9).as_deref(), Some("sleep"));
        assert_eq!(name_at("x + ", 4), None);
        assert_eq!(help_query("sleep?"), Some("sleep"));
        assert_eq!(help_query(" print?? "), Some("print"));
        assert_eq!(help_query("x ? y"), None);
    }
}
