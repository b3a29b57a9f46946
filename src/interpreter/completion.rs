//! Tab completion: keywords, natives, cell-defined functions, variables, and methods or
//! properties after a `.`.

use super::session::RhaiSession;
use super::Completion;
use std::any::TypeId;
use std::collections::BTreeSet;

/// Rhai's keywords and keyword-like functions.
pub const KEYWORDS: &[&str] = &[
    "let",
    "const",
    "if",
    "else",
    "switch",
    "do",
    "while",
    "until",
    "loop",
    "for",
    "in",
    "break",
    "continue",
    "return",
    "throw",
    "try",
    "catch",
    "fn",
    "private",
    "import",
    "export",
    "as",
    "true",
    "false",
    "this",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_fn",
    "is_def_var",
    "type_of",
    "print",
    "debug",
    "eval",
    "global",
];

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub fn complete(session: &RhaiSession, code: &str, cursor: usize) -> Completion {
    let chars: Vec<char> = code.chars().collect();
    let cursor = cursor.min(chars.len());
    let mut start = cursor;
    while start > 0 && is_ident_char(chars[start - 1]) {
        start -= 1;
    }
    let prefix: String = chars[start..cursor].iter().collect();
    let mut names = BTreeSet::new();

    // A cell magic on the first line: `%%ti` completes to `%%time`.
    let line_start = chars[..cursor]
        .iter()
        .rposition(|&c| c == '\n')
        .map_or(0, |i| i + 1);
    let typed: String = chars[line_start..cursor].iter().collect();
    if typed.starts_with("%%") && chars[..line_start].iter().all(|c| c.is_whitespace()) {
        let matches = super::magics::MAGICS
            .iter()
            .filter(|m| m.starts_with(&typed))
            .map(|m| m.to_string())
            .collect();
        return Completion {
            matches,
            cursor_start: line_start,
            cursor_end: cursor,
        };
    }

    if start > 0 && chars[start - 1] == '.' {
        // Receiver: the identifier right before the dot, if it is a known variable.
        let mut recv_start = start - 1;
        while recv_start > 0 && is_ident_char(chars[recv_start - 1]) {
            recv_start -= 1;
        }
        let receiver: String = chars[recv_start..start - 1].iter().collect();
        let value = session
            .scope()
            .iter_raw()
            .find(|(n, ..)| *n == receiver)
            .map(|(_, _, v)| v.clone());
        member_names(session, value.as_ref(), &mut names);
    } else {
        names.extend(KEYWORDS.iter().map(|k| k.to_string()));
        names.extend(
            session
                .engine()
                .collect_fn_metadata(None, |info| Some(info.metadata.name.to_string()), true)
                .into_iter()
                .filter(|n| {
                    n.chars()
                        .next()
                        .is_some_and(|c| c.is_alphabetic() || c == '_')
                })
                .filter(|n| n.chars().all(is_ident_char)),
        );
        names.extend(
            session
                .functions()
                .iter_functions()
                .map(|f| f.name.to_string()),
        );
        names.extend(session.scope().iter_raw().map(|(n, ..)| n.to_string()));
    }
    let matches = names
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    Completion {
        matches,
        cursor_start: start,
        cursor_end: cursor,
    }
}

/// Methods and properties of a value (or of any type when the value is unknown).
fn member_names(
    session: &RhaiSession,
    value: Option<&rhai::Dynamic>,
    names: &mut BTreeSet<String>,
) {
    let wanted: Option<TypeId> = value.map(|v| v.type_id());
    let members = session.engine().collect_fn_metadata(
        None,
        |info| {
            let meta = info.metadata;
            let first = *meta.param_types.first()?;
            if wanted.is_some_and(|t| t != first) {
                return None;
            }
            let name = meta.name.as_str();
            let name = name.strip_prefix("get$").unwrap_or(name);
            let plain = name
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && name.chars().all(is_ident_char);
            plain.then(|| name.to_string())
        },
        true,
    );
    names.extend(members);
    if let Some(map) = value.and_then(|v| v.read_lock::<rhai::Map>()) {
        names.extend(map.keys().map(|k| k.to_string()));
    }
    // Script functions can be called as methods on their first argument.
    names.extend(
        session
            .functions()
            .iter_functions()
            .filter(|f| !f.params.is_empty())
            .map(|f| f.name.to_string()),
    );
}
