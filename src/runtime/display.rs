//! Rich output: MIME bundles for values and the `display*`, `update_display` and
//! `clear_output` natives (the IPython.display API for Rhai).

use crate::runtime::sink::MimeBundle;
use rhai::plugin::*;
use serde_json::Value;

/// The text a REPL shows for a value: strings quoted, everything else as Rhai prints it.
pub fn repr(value: &Dynamic) -> String {
    if value.is_string() || value.is_char() || value.is_array() || value.is_map() {
        format!("{value:?}")
    } else {
        value.to_string()
    }
}

/// The MIME bundle of a value: `text/plain` always; arrays and maps also as
/// `application/json` and a readable `text/html` table.
pub fn mime_bundle(value: &Dynamic) -> MimeBundle {
    let mut bundle = MimeBundle::new();
    bundle.insert("text/plain".into(), Value::String(repr(value)));
    if value.is_array() || value.is_map() {
        if let Ok(json) = serde_json::to_value(value) {
            bundle.insert("text/html".into(), Value::String(html_table(&json)));
            bundle.insert("application/json".into(), json);
        }
    }
    bundle
}

/// Escapes text for HTML and SVG (element text and attribute values).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

fn cell_html(value: &Value) -> String {
    match value {
        Value::String(s) => escape_html(s),
        Value::Array(_) | Value::Object(_) => html_table(value),
        Value::Null => "()".into(),
        other => escape_html(&other.to_string()),
    }
}

/// An HTML table: maps as key/value rows, arrays as index/value rows, and arrays of
/// maps as one row per map with a column per key (like a data frame).
/// Shows a chart: the SVG where the frontend can draw it, `text` where it cannot (and in
/// terminals).
pub fn show_chart(svg: String, text: String) {
    show_rich("image/svg+xml", svg, text);
}

/// Shows `content` of type `mime` where the frontend can show it, `text` where it cannot
/// (and in terminals).
pub fn show_rich(mime: &str, content: String, text: String) {
    match super::sink::current() {
        Some(sink) => {
            let mut bundle = MimeBundle::new();
            bundle.insert(mime.into(), Value::String(content));
            bundle.insert("text/plain".into(), Value::String(text));
            sink.display(bundle, None, false)
        }
        None => super::sink::write(super::sink::Stream::Stdout, &text),
    }
}

pub fn html_table(value: &Value) -> String {
    let mut html = String::from("<table class=\"rhai-value\">");
    match value {
        Value::Object(map) => {
            html.push_str("<thead><tr><th>key</th><th>value</th></tr></thead><tbody>");
            for (key, item) in map {
                html.push_str(&format!(
                    "<tr><th>{}</th><td>{}</td></tr>",
                    escape_html(key),
                    cell_html(item)
                ));
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut columns: Vec<&String> = Vec::new();
            for item in items.iter().filter_map(Value::as_object) {
                for key in item.keys() {
                    if !columns.contains(&key) {
                        columns.push(key);
                    }
                }
            }
            html.push_str("<thead><tr><th></th>");
            for column in &columns {
                html.push_str(&format!("<th>{}</th>", escape_html(column)));
            }
            html.push_str("</tr></thead><tbody>");
            for (index, item) in items.iter().enumerate() {
                html.push_str(&format!("<tr><th>{index}</th>"));
                for column in &columns {
                    let cell = item.get(column.as_str()).map(cell_html).unwrap_or_default();
                    html.push_str(&format!("<td>{cell}</td>"));
                }
                html.push_str("</tr>");
            }
        }
        Value::Array(items) => {
            html.push_str("<thead><tr><th>index</th><th>value</th></tr></thead><tbody>");
            for (index, item) in items.iter().enumerate() {
                html.push_str(&format!(
                    "<tr><th>{index}</th><td>{}</td></tr>",
                    cell_html(item)
                ));
            }
        }
        other => html.push_str(&format!("<tbody><tr><td>{}</td></tr>", cell_html(other))),
    }
    html.push_str("</tbody></table>");
    html
}

/// What `display` shows: like a cell result, except that a string is shown as its text.
fn display_bundle(value: &Dynamic) -> MimeBundle {
    match value.read_lock::<rhai::ImmutableString>() {
        Some(text) => {
            let mut bundle = MimeBundle::new();
            bundle.insert("text/plain".into(), Value::String(text.to_string()));
            bundle
        }
        None => mime_bundle(value),
    }
}

fn show(bundle: MimeBundle, display_id: Option<&str>, update: bool) {
    if let Some(sink) = crate::runtime::sink::current() {
        sink.display(bundle, display_id, update);
    }
}

fn text_bundle(mime: &str, content: &str, plain: &str) -> MimeBundle {
    let mut bundle = MimeBundle::new();
    bundle.insert(mime.into(), Value::String(content.into()));
    bundle.insert("text/plain".into(), Value::String(plain.into()));
    bundle
}

#[export_module]
pub mod display_api {
    use super::*;

    /// Displays `value` as rich output (a table for arrays and maps, strings as plain
    /// text), like IPython's `display`.
    #[rhai_fn(name = "display")]
    pub fn display(value: Dynamic) {
        show(display_bundle(&value), None, false);
    }

    /// Displays `value` under the display id `id`, so that `update_display(id, new_value)`
    /// can later replace it in place.
    #[rhai_fn(name = "display")]
    pub fn display_with_id(value: Dynamic, id: &str) {
        show(display_bundle(&value), Some(id), false);
    }

    /// Replaces the output shown earlier with `display(value, id)` by `value`.
    pub fn update_display(id: &str, value: Dynamic) {
        show(display_bundle(&value), Some(id), true);
    }

    /// Displays a string of HTML, e.g. `display_html("<b>bold</b>")`.
    pub fn display_html(html: &str) {
        show(text_bundle("text/html", html, "<HTML>"), None, false);
    }

    /// Displays a string of Markdown, e.g. `display_markdown("# Title")`.
    pub fn display_markdown(markdown: &str) {
        show(
            text_bundle("text/markdown", markdown, markdown),
            None,
            false,
        );
    }

    /// Displays an SVG image given as a string of SVG markup.
    pub fn display_svg(svg: &str) {
        show(
            text_bundle("image/svg+xml", svg, "<SVG image>"),
            None,
            false,
        );
    }

    /// Displays a map (or array) as JSON: an interactive tree in JupyterLab.
    #[rhai_fn(return_raw)]
    pub fn display_json(value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let json = serde_json::to_value(&value)
            .map_err(|e| format!("display_json: value cannot be shown as JSON: {e}"))?;
        let mut bundle = MimeBundle::new();
        bundle.insert("text/plain".into(), Value::String(repr(&value)));
        bundle.insert("application/json".into(), json);
        show(bundle, None, false);
        Ok(())
    }

    /// Clears the cell's output now.
    pub fn clear_output() {
        if let Some(sink) = crate::runtime::sink::current() {
            sink.clear_output(false);
        }
    }

    /// Clears the cell's output; with `wait = true`, only when new output arrives
    /// (no flicker when redrawing in a loop).
    #[rhai_fn(name = "clear_output")]
    pub fn clear_output_wait(wait: bool) {
        if let Some(sink) = crate::runtime::sink::current() {
            sink.clear_output(wait);
        }
    }
}
