//! Checks that a correctly signed request's content has the JSON shape the messaging spec
//! gives it, so that `"code": 5` or an array for content is answered with an error reply
//! instead of being read as an empty cell.

use serde_json::{json, Value};

/// What a field must be. `null` is accepted for optional fields: several clients send
/// `None` for "not given".
#[derive(Clone, Copy)]
enum Kind {
    String,
    Bool,
    /// A non-negative integer.
    Count,
    Object,
}

impl Kind {
    fn matches(self, value: &Value) -> bool {
        match self {
            Kind::String => value.is_string(),
            Kind::Bool => value.is_boolean(),
            Kind::Count => value.is_u64(),
            Kind::Object => value.is_object(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Bool => "a boolean",
            Kind::Count => "a non-negative integer",
            Kind::Object => "an object",
        }
    }
}

/// A list of field names and what each must be.
type Fields = &'static [(&'static str, Kind)];

/// Required and optional fields of each request the kernel answers.
fn fields(msg_type: &str) -> (Fields, Fields) {
    use Kind::*;
    match msg_type {
        "execute_request" => (
            &[("code", String)],
            &[
                ("silent", Bool),
                ("store_history", Bool),
                ("allow_stdin", Bool),
                ("stop_on_error", Bool),
                ("user_expressions", Object),
            ],
        ),
        "complete_request" => (&[("code", String)], &[("cursor_pos", Count)]),
        "inspect_request" => (
            &[("code", String)],
            &[("cursor_pos", Count), ("detail_level", Count)],
        ),
        "is_complete_request" => (&[("code", String)], &[]),
        "history_request" => (
            &[],
            &[
                ("hist_access_type", String),
                ("output", Bool),
                ("raw", Bool),
                ("n", Count),
                ("start", Count),
                ("stop", Count),
                ("pattern", String),
                ("unique", Bool),
            ],
        ),
        "comm_info_request" => (&[], &[("target_name", String)]),
        "comm_open" => (&[("comm_id", String)], &[("target_name", String)]),
        "comm_msg" => (&[("comm_id", String)], &[("data", Object)]),
        "comm_close" => (&[("comm_id", String)], &[]),
        "shutdown_request" => (&[], &[("restart", Bool)]),
        "debug_request" => (
            &[("command", String)],
            &[("seq", Count), ("arguments", Object)],
        ),
        _ => (&[], &[]),
    }
}

/// `Ok` when `content` fits `msg_type`, otherwise a sentence saying what is wrong.
pub fn check(msg_type: &str, content: &Value) -> Result<(), String> {
    let Some(map) = content.as_object() else {
        return Err(format!(
            "{msg_type} content must be a JSON object, not {}",
            json_type(content)
        ));
    };
    let (required, optional) = fields(msg_type);
    for (name, kind) in required {
        match map.get(*name) {
            None => return Err(format!("{msg_type} content has no `{name}`")),
            Some(value) if !kind.matches(value) => {
                return Err(format!(
                    "`{name}` in {msg_type} must be {}, not {}",
                    kind.name(),
                    json_type(value)
                ))
            }
            Some(_) => {}
        }
    }
    for (name, kind) in optional {
        if let Some(value) = map.get(*name) {
            if !value.is_null() && !kind.matches(value) {
                return Err(format!(
                    "`{name}` in {msg_type} must be {}, not {}",
                    kind.name(),
                    json_type(value)
                ));
            }
        }
    }
    Ok(())
}

/// The reply type of a request type (`kernel_info_request` → `kernel_info_reply`); `None`
/// for messages the spec gives no reply (`comm_open`, `comm_msg`, …).
pub fn reply_type(msg_type: &str) -> Option<String> {
    msg_type
        .strip_suffix("_request")
        .map(|base| format!("{base}_reply"))
}

/// The content of an error reply for a request that could not be handled.
pub fn error_reply(ename: &str, evalue: &str) -> Value {
    json!({
        "status": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": [format!("{ename}: {evalue}")],
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a non-negative integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_requests() {
        let ok = json!({"code": "1", "silent": false, "user_expressions": {}, "allow_stdin": null});
        assert_eq!(check("execute_request", &ok), Ok(()));
        assert_eq!(
            check("complete_request", &json!({"code": "x", "cursor_pos": 1})),
            Ok(())
        );
        assert_eq!(check("kernel_info_request", &json!({})), Ok(()));
    }

    #[test]
    fn rejects_wrong_shapes_with_a_reason() {
        let err = check("execute_request", &json!({"code": 5})).unwrap_err();
        assert!(
            err.contains("`code`") && err.contains("not a non-negative integer"),
            "{err}"
        );
        assert!(check("execute_request", &json!([1, 2])).is_err());
        assert!(check("execute_request", &json!({})).is_err());
        assert!(check("execute_request", &json!({"code": "1", "silent": "yes"})).is_err());
        assert!(check("inspect_request", &json!({"code": "x", "cursor_pos": -1})).is_err());
        assert!(check("kernel_info_request", &json!("text")).is_err());
    }

    #[test]
    fn reply_types() {
        assert_eq!(
            reply_type("execute_request").as_deref(),
            Some("execute_reply")
        );
        assert_eq!(reply_type("comm_open"), None);
    }
}
