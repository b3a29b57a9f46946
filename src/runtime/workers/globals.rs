//! `global::` constants for worker processes: the caller's top-level constants are sent
//! with a process's job (and to a pool worker only when they changed), so a function
//! reads `global::N` in a process as it does in the script and in threads.
//!
//! Values cross as arguments do (plain data as JSON, shared objects such as locks by
//! reference, so `const GUARD = lock();` is the same lock in every process). A constant
//! that cannot cross (a `Thread`, a `Pool`, a timestamp…) is not an error until a process
//! reads it: then the error names it and says why, instead of "Variable not found".
//!
//! Cost: the constants are encoded once per `spawn_process` and once per pool call (not
//! per task), and a pool worker is sent them only when they differ from what it has.

use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::transfer;
use rhai::{Dynamic, GlobalRuntimeState, ImmutableString, NativeCallContext};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

/// The caller's constants, encoded once for every job that needs them.
#[derive(Debug)]
pub struct Globals {
    /// Changes whenever the encoded constants do: a pool worker that has this version is
    /// not sent them again.
    pub version: u64,
    /// `{"values": {name: value…}, "unsendable": {name: why…}}`, encoded once for every
    /// job that carries it.
    pub json: Box<RawValue>,
    /// The shared objects the constants refer to, kept alive while a job that carries
    /// them is on its way (see `transfer::to_json`).
    pub kept: Vec<Held>,
}

/// The last constants encoded in this process (processes and pools started by one script
/// all see the same ones, so one is enough to keep the version steady).
static LAST: Mutex<Option<Arc<Globals>>> = Mutex::new(None);

/// The `global::` constants visible at the call site of `spawn_process` or a pool method.
pub fn of_context(ctx: &NativeCallContext) -> Arc<Globals> {
    of_state(ctx.global_runtime_state())
}

/// The `global::` constants of a call's runtime state (see [`of_context`]).
pub fn of_state(state: &GlobalRuntimeState) -> Arc<Globals> {
    let mut values = Map::new();
    let mut unsendable = Map::new();
    let mut kept = Vec::new();
    if let Some(constants) = &state.constants {
        // Rhai's own lock around the constants; a poisoned one still holds them.
        let constants = constants.read().unwrap_or_else(|e| e.into_inner());
        for (name, value) in constants.iter() {
            match transfer::to_json(value, &format!("global::{name}"), &mut kept) {
                Ok(json) => {
                    values.insert(name.to_string(), json);
                }
                Err(why) => {
                    unsendable.insert(name.to_string(), Value::String(why));
                }
            }
        }
    }
    let mut encoded = Map::new();
    encoded.insert("values".into(), Value::Object(values));
    encoded.insert("unsendable".into(), Value::Object(unsendable));
    // Encoding a `Value` does not fail; a worker would read `null` as no constants.
    let json = to_raw_value(&Value::Object(encoded)).unwrap_or_else(|_| RawValue::NULL.to_owned());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    match &*last {
        Some(globals) if globals.json.get() == json.get() => globals.clone(),
        previous => {
            let version = previous.as_ref().map_or(1, |g| g.version + 1);
            let globals = Arc::new(Globals {
                version,
                json,
                kept,
            });
            *last = Some(globals.clone());
            globals
        }
    }
}

/// Rhai's map of global constants, as a function call's runtime state holds it.
pub type Constants = Arc<RwLock<BTreeMap<ImmutableString, Dynamic>>>;

/// The constants a worker received, ready for the calls it runs.
pub struct Received {
    pub constants: Constants,
    /// Why each constant that could not be sent was not, by name.
    unsendable: BTreeMap<String, String>,
}

impl Received {
    /// Decodes the `globals` of a job (see [`Globals::json`]). A value that cannot be
    /// decoded is treated like one that could not be sent: an error only if it is read.
    pub fn decode(globals: &Value) -> Received {
        let mut unsendable: BTreeMap<String, String> = globals["unsendable"]
            .as_object()
            .map(|names| {
                names
                    .iter()
                    .map(|(name, why)| (name.clone(), why.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut constants = BTreeMap::new();
        if let Some(values) = globals["values"].as_object() {
            for (name, value) in values {
                match transfer::from_json(value, Receive::Acquire) {
                    Ok(value) => {
                        constants.insert(ImmutableString::from(name.as_str()), value);
                    }
                    Err(e) => {
                        let why = format!("global::{name} could not be received: {e}");
                        unsendable.insert(name.clone(), why);
                    }
                }
            }
        }
        Received {
            constants: Arc::new(RwLock::new(constants)),
            unsendable,
        }
    }

    /// Replaces Rhai's "Variable not found: global::X" in an error message by the reason
    /// X stayed behind, when X is a constant that could not be sent.
    pub fn explain(&self, message: &str) -> String {
        let mut message = message.to_string();
        for (name, why) in &self.unsendable {
            let missing = format!("Variable not found: global::{name}");
            let mut from = 0;
            while let Some(at) = message[from..].find(&missing).map(|i| i + from) {
                let end = at + missing.len();
                // `global::N` must not match inside `global::NAME`.
                let longer = message[end..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if longer {
                    from = end;
                    continue;
                }
                message.replace_range(at..end, why);
                from = at + why.len();
            }
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Pools send the constants only to workers without their version: the version stays
    /// while the constants do, and changes when one does.
    #[test]
    fn the_version_changes_only_with_the_constants() {
        let seen: Arc<Mutex<Vec<Arc<Globals>>>> = Arc::default();
        let record = seen.clone();
        let mut engine = rhai::Engine::new();
        engine.register_fn("record", move |ctx: NativeCallContext| {
            record.lock().unwrap().push(of_context(&ctx));
        });
        // Rhai collects top-level constants of a script that has functions.
        engine
            .run("fn f() {} const N = 5; record(); record(); const N = 6; record();")
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].version, seen[1].version);
        assert_ne!(seen[2].version, seen[1].version);
        assert!(seen[0].json.get().contains(r#""N":5"#), "{}", seen[0].json);
        assert!(seen[2].json.get().contains(r#""N":6"#), "{}", seen[2].json);
    }

    #[test]
    fn an_unsendable_constant_is_explained_by_name_only() {
        let received = Received::decode(&json!({
            "values": { "N": 5 },
            "unsendable": { "T": "global::T is a Thread and cannot be sent" },
        }));
        let n = received.constants.read().unwrap()["N"].as_int().unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            received.explain("Variable not found: global::T (line 1, column 9)"),
            "global::T is a Thread and cannot be sent (line 1, column 9)"
        );
        assert_eq!(
            received.explain("Variable not found: global::TOTAL"),
            "Variable not found: global::TOTAL"
        );
    }
}
