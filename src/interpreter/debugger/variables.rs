//! Variables as the debugger shows them: a value's text and type, and the children of the
//! values that have some (array items, map entries, a runtime object's properties, and for
//! a lock whether it is held and by which thread).

use super::State;
use crate::interpreter::engine::object_text;
use crate::runtime::locks::{Lock, RLock};
use rhai::{Array, Dynamic, Engine, Map, Scope};

/// One variable of a `variables` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct VariableView {
    pub name: String,
    pub value: String,
    pub type_name: String,
    /// Non-zero when the value has children.
    pub reference: i64,
    pub count: usize,
}

/// What a variables reference points at.
#[derive(Clone)]
pub(crate) struct Container {
    /// The stopped thread it belongs to (0: not tied to a stop).
    pub thread: i64,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Scope(Vec<(String, Dynamic)>),
    Value(Dynamic),
}

impl Container {
    pub fn scope(thread: i64, entries: Vec<(String, Dynamic)>) -> Self {
        Container {
            thread,
            kind: Kind::Scope(entries),
        }
    }

    /// The named children, in order.
    pub fn children(&self, engine: &Engine) -> Vec<(String, Dynamic)> {
        match &self.kind {
            Kind::Scope(entries) => entries.clone(),
            Kind::Value(value) => children(engine, value),
        }
    }
}

fn children(engine: &Engine, value: &Dynamic) -> Vec<(String, Dynamic)> {
    if let Some(array) = value.read_lock::<Array>() {
        return array
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), v.flatten_clone()))
            .collect();
    }
    if let Some(map) = value.read_lock::<Map>() {
        return map
            .iter()
            .map(|(k, v)| (k.to_string(), v.flatten_clone()))
            .collect();
    }
    let mut fields = Vec::new();
    if let Some(lock) = value.read_lock::<Lock>() {
        fields.extend(lock_fields(lock.0.locked(), lock.0.owner()));
    } else if let Some(lock) = value.read_lock::<RLock>() {
        fields.extend(lock_fields(lock.0.locked(), lock.0.owner()));
    }
    fields.extend(properties(engine, value));
    fields
}

/// Whether a value has children to list, without reading them.
fn has_children(engine: &Engine, value: &Dynamic) -> bool {
    match () {
        _ if value.is_array() => value.read_lock::<Array>().is_some_and(|a| !a.is_empty()),
        _ if value.is_map() => value.read_lock::<Map>().is_some_and(|m| !m.is_empty()),
        _ => value.is::<Lock>() || value.is::<RLock>() || !getter_names(engine, value).is_empty(),
    }
}

/// Whether a lock is held, and by which thread (of which process).
fn lock_fields(locked: bool, owner: Option<(i32, i32)>) -> Vec<(String, Dynamic)> {
    let mut fields = vec![("locked".to_string(), Dynamic::from(locked))];
    if let Some((pid, tid)) = owner {
        let holder = crate::runtime::actors::thread_label(pid, tid);
        let holder = if pid == std::process::id() as i32 {
            holder
        } else {
            format!("{holder} of process {pid}")
        };
        fields.push(("held by".to_string(), Dynamic::from(holder)));
    }
    fields
}

/// The values of a runtime object's properties (`v.value`, `t.name`…): every getter the
/// engine has for the value's type.
fn properties(engine: &Engine, value: &Dynamic) -> Vec<(String, Dynamic)> {
    getter_names(engine, value)
        .into_iter()
        .filter_map(|name| {
            let mut scope = Scope::new();
            scope.push_dynamic("value", value.clone());
            engine
                .eval_with_scope::<Dynamic>(&mut scope, &format!("value.{name}"))
                .ok()
                .map(|v| (name, v))
        })
        .collect()
}

/// The properties the engine has getters for on a runtime object's type, sorted.
fn getter_names(engine: &Engine, value: &Dynamic) -> Vec<String> {
    if !value.is_variant() {
        return Vec::new();
    }
    let type_name = engine.map_type_name(value.type_name()).to_string();
    let mut names: Vec<String> = engine
        .gen_fn_signatures(false)
        .into_iter()
        .filter_map(|signature| getter_name(&signature, &type_name))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `get$value(value: &mut SharedValue) -> …` gives `value` for type `SharedValue`.
fn getter_name(signature: &str, type_name: &str) -> Option<String> {
    let rest = signature.split_once("get$")?.1;
    let (name, params) = rest.split_once('(')?;
    let param_type = params.split(')').next()?.split(':').nth(1)?.trim();
    let param_type = param_type.trim_start_matches("&mut ").trim();
    (param_type == type_name && !params.contains(',')).then(|| name.to_string())
}

/// How a value is shown in one line: as a cell's result shows it.
fn text(engine: &Engine, value: &Dynamic) -> String {
    object_text(engine, value).unwrap_or_else(|| crate::runtime::display::repr(value))
}

/// A view of a value, registering its children under a new reference if it has any.
pub(crate) fn view(
    state: &mut State,
    engine: &Engine,
    thread: i64,
    name: String,
    value: Dynamic,
) -> VariableView {
    let value = value.flatten_clone();
    let type_name = engine.map_type_name(value.type_name()).to_string();
    let count = match () {
        _ if value.is_array() => value.read_lock::<Array>().map_or(0, |a| a.len()),
        _ if value.is_map() => value.read_lock::<Map>().map_or(0, |m| m.len()),
        _ => 0,
    };
    let reference = if has_children(engine, &value) {
        let reference = state.reference();
        state.containers.insert(
            reference,
            Container {
                thread,
                kind: Kind::Value(value.clone()),
            },
        );
        reference
    } else {
        0
    };
    VariableView {
        name,
        value: text(engine, &value),
        type_name,
        reference,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::getter_name;

    #[test]
    fn getters_are_found_by_their_receiver_type() {
        let sig = "get$value(value: &mut SharedValue) -> ?";
        assert_eq!(getter_name(sig, "SharedValue").as_deref(), Some("value"));
        assert_eq!(getter_name(sig, "Lock"), None);
        assert_eq!(getter_name("set$value(v: &mut X, x: ?)", "X"), None);
        assert_eq!(getter_name("len(a: &mut Array) -> int", "Array"), None);
    }
}
