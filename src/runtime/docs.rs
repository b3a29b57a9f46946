//! Documentation of functions (natives and script-defined) for `help`, Shift-Tab and `?`.

use rhai::plugin::*;
use rhai::Engine;
use std::borrow::Cow;

/// One overload of a function: its signature and doc comment.
#[derive(Debug, Clone, PartialEq)]
pub struct FnDoc {
    pub signature: String,
    pub doc: String,
}

/// Rust type names in native signatures, as a Rhai user knows them.
pub fn friendly_type(name: &str) -> Cow<'_, str> {
    let trimmed = name
        .trim()
        .trim_start_matches('&')
        .trim_start_matches("mut ");
    let short = trimmed.rsplit("::").next().unwrap_or(trimmed);
    let mapped = match short {
        "i64" | "INT" | "i32" | "u64" | "usize" => "int",
        "f64" | "FLOAT" | "f32" => "float",
        "str" | "String" | "ImmutableString" => "string",
        "char" => "char",
        "bool" => "bool",
        "Dynamic" => "?",
        "Array" | "Vec<Dynamic>" => "array",
        "Map" => "map",
        "FnPtr" => "Fn",
        "Blob" => "blob",
        "()" => "()",
        other => return Cow::Owned(other.to_string()),
    };
    Cow::Borrowed(mapped)
}

/// Turns `/// text` and `/** text */` comment lines into plain text.
pub fn clean_comments<S: AsRef<str>>(comments: &[S]) -> String {
    let mut lines = Vec::new();
    for comment in comments {
        let comment = comment.as_ref();
        if let Some(block) = comment.strip_prefix("/**") {
            let block = block.strip_suffix("*/").unwrap_or(block);
            for line in block.lines() {
                let line = line.trim();
                let line = line
                    .strip_prefix("* ")
                    .or_else(|| line.strip_prefix('*'))
                    .unwrap_or(line);
                lines.push(line.to_string());
            }
        } else {
            for line in comment.lines() {
                let line = line.trim_start();
                let line = line.strip_prefix("///").unwrap_or(line);
                lines.push(line.strip_prefix(' ').unwrap_or(line).to_string());
            }
        }
    }
    while lines.first().is_some_and(|l| l.trim().is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

/// `name(param: type, …) -> type`, with Rust types shown as Rhai types and the error
/// part of `Result<T, …>` left out.
fn native_signature(meta: &rhai::FuncMetadata) -> String {
    if let Some(property) = meta.name.strip_prefix("get$") {
        let owner = meta
            .params_info
            .first()
            .and_then(|p| p.split_once(':'))
            .map(|(_, t)| friendly_type(t).into_owned());
        let ret = friendly_type(&meta.return_type).into_owned();
        return format!(
            "{}.{property} -> {ret}",
            owner.unwrap_or_else(|| "_".into())
        );
    }
    let params: Vec<String> = if meta.params_info.is_empty() {
        (0..meta.num_params).map(|_| "_".to_string()).collect()
    } else {
        meta.params_info
            .iter()
            .map(|p| match p.split_once(':') {
                Some((name, ty)) => format!("{}: {}", name.trim(), friendly_type(ty)),
                None => p.to_string(),
            })
            .collect()
    };
    let mut ret = meta.return_type.replace(' ', "");
    for wrapper in ["Result<", "RhaiResultOf<"] {
        if let Some(inner) = ret.strip_prefix(wrapper).and_then(|r| r.strip_suffix('>')) {
            ret = inner.split(",Box<").next().unwrap_or(inner).to_string();
        }
    }
    let ret = friendly_type(&ret);
    if ret.is_empty() || ret == "()" {
        format!("{}({})", meta.name, params.join(", "))
    } else {
        format!("{}({}) -> {}", meta.name, params.join(", "), ret)
    }
}

/// Names users can call or read: identifiers, and property getters (`get$name`).
fn is_public_name(name: &str) -> bool {
    let name = name.strip_prefix("get$").unwrap_or(name);
    name.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// All native (non-script) functions of an engine with user-callable names.
/// Overloads hidden by a later registration with the same parameter types (such as Rhai's
/// own `sleep`, replaced by the interruptible one) are left out.
pub fn native_functions(engine: &Engine, ctx: Option<&NativeCallContext>) -> Vec<(String, FnDoc)> {
    let mut seen = std::collections::HashSet::new();
    let found = engine.collect_fn_metadata(
        ctx,
        |info| {
            let name = info.metadata.name.to_string();
            if !is_public_name(&name) {
                return None;
            }
            let key = (
                name.clone(),
                info.metadata.param_types.to_vec(),
                info.script.is_some(),
            );
            let doc = match &info.script {
                Some(script) => FnDoc {
                    signature: format!("fn {}({})", script.name, script.params.join(", ")),
                    doc: clean_comments(&script.comments),
                },
                None => FnDoc {
                    signature: native_signature(info.metadata),
                    doc: clean_comments(&info.metadata.comments),
                },
            };
            Some((key, doc))
        },
        true,
    );
    found
        .into_iter()
        .filter(|(key, _)| seen.insert(key.clone()))
        .map(|((name, ..), doc)| (name, doc))
        .collect()
}

/// The one signature of a variadic native's overloads: `spawn_process(f: Fn, arg1: ?,
/// arg2: ?) -> Process` is one of `spawn_process(f: Fn, args…) -> Process`. `None` for a
/// signature without trailing `argN: ?` parameters.
fn variadic_signature(signature: &str) -> Option<String> {
    let open = signature.find('(')?;
    let close = signature.rfind(')')?;
    let params: Vec<&str> = signature[open + 1..close]
        .split(", ")
        .filter(|p| !p.is_empty())
        .collect();
    let fixed = params
        .iter()
        .take_while(|p| !(p.starts_with("arg") && p.ends_with(": ?")))
        .count();
    let numbered = params[fixed..]
        .iter()
        .enumerate()
        .all(|(i, p)| **p == format!("arg{}: ?", i + 1));
    // Only a function and its arguments make a variadic native (`spawn_thread(f, …)`).
    if !numbered || !params[..fixed].iter().any(|p| p.ends_with(": Fn")) {
        return None;
    }
    let mut collapsed: Vec<&str> = params[..fixed].to_vec();
    collapsed.push("args…");
    Some(format!(
        "{}({}){}",
        &signature[..open],
        collapsed.join(", "),
        &signature[close + 1..]
    ))
}

/// The signatures to show: the overloads of a variadic native as one, the rest sorted.
fn signatures(docs: &[FnDoc]) -> Vec<String> {
    let mut shown: Vec<String> = Vec::new();
    for doc in docs {
        let variadic = variadic_signature(&doc.signature);
        let several = variadic.as_ref().is_some_and(|v| {
            docs.iter()
                .filter(|d| variadic_signature(&d.signature).as_ref() == Some(v))
                .count()
                > 1
        });
        let signature = match variadic {
            Some(v) if several => v,
            _ => doc.signature.clone(),
        };
        if !shown.contains(&signature) {
            shown.push(signature);
        }
    }
    shown.sort();
    shown
}

/// Formats every overload of `name` for a pager or an inspect reply; `None` if unknown.
pub fn format_docs(docs: &[FnDoc]) -> Option<String> {
    if docs.is_empty() {
        return None;
    }
    let mut text = String::new();
    let mut seen_docs: Vec<&str> = Vec::new();
    for signature in signatures(docs) {
        text.push_str(&signature);
        text.push('\n');
    }
    for doc in docs {
        if !doc.doc.is_empty() && !seen_docs.contains(&doc.doc.as_str()) {
            seen_docs.push(&doc.doc);
            text.push('\n');
            text.push_str(&doc.doc);
            text.push('\n');
        }
    }
    Some(text)
}

/// Documentation of `name` as seen from inside a running script (natives and the
/// script's own functions).
pub fn describe_in_context(ctx: &NativeCallContext, name: &str) -> Option<String> {
    let mut docs: Vec<FnDoc> = native_functions(ctx.engine(), Some(ctx))
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, d)| d)
        .collect();
    docs.dedup();
    format_docs(&docs)
}

#[export_module]
pub mod docs_api {
    /// Prints the documentation of the function called `name` into the cell's output, as
    /// Python's `help()` does (`name?` shows the same text in the pager).
    /// Example: `help("sleep")`.
    #[rhai_fn(return_raw)]
    pub fn help(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
        let text = super::describe_in_context(&ctx, name)
            .ok_or_else(|| format!("help: no function named '{name}'"))?;
        // Printed rather than paged: a notebook keeps printed output, and nbclient, nbconvert
        // and Notebook 7 drop pager payloads.
        crate::runtime::sink::write(crate::runtime::sink::Stream::Stdout, &format!("{text}\n"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(signature: &str) -> FnDoc {
        FnDoc {
            signature: signature.to_string(),
            doc: String::new(),
        }
    }

    #[test]
    fn a_variadic_native_shows_one_signature() {
        let docs: Vec<FnDoc> = (0..=8)
            .rev()
            .map(|n| {
                let mut params = vec!["f: Fn".to_string()];
                params.extend((1..=n).map(|i| format!("arg{i}: ?")));
                doc(&format!("spawn_process({}) -> Process", params.join(", ")))
            })
            .collect();
        assert_eq!(
            signatures(&docs),
            vec!["spawn_process(f: Fn, args…) -> Process"]
        );
        let timer = [
            doc("timer(seconds: float, f: Fn) -> Timer"),
            doc("timer(seconds: float, f: Fn, arg1: ?) -> Timer"),
        ];
        assert_eq!(
            signatures(&timer),
            vec!["timer(seconds: float, f: Fn, args…) -> Timer"]
        );
    }

    #[test]
    fn other_overloads_stay_apart_and_sorted() {
        let docs = [doc("sleep(seconds: int)"), doc("sleep(seconds: float)")];
        assert_eq!(
            signatures(&docs),
            vec!["sleep(seconds: float)", "sleep(seconds: int)"]
        );
        // One function with a function parameter is not variadic by itself.
        let single = [doc("hold(lock: Lock, f: Fn) -> ?")];
        assert_eq!(signatures(&single), vec!["hold(lock: Lock, f: Fn) -> ?"]);
    }
}
