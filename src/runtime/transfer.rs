//! Values crossing a process boundary: plain data as JSON (ints and floats stay distinct),
//! runtime objects by reference (an offset into the shared memory both processes map),
//! function pointers by name with their curried (captured) values.

use super::locks::{Lock, LockRef, RLock};
use super::queues::{Conn, Queue};
use super::ring::Ring;
use super::sync::{Barrier, Condition, Event, Semaphore};
use super::values::{SharedArray, SharedValue};
use rhai::{Dynamic, FnPtr, Map};
use serde_json::{json, Number, Value};

/// The key marking an encoded runtime object or function pointer in JSON.
const TAG: &str = "$rhai";

/// Rhai names closures `anon$<hash>`, a name a function pointer cannot be created with.
/// A worker defines a forwarding function under this prefix for each closure, and closures
/// it receives point to their forwarder.
pub const CLOSURE_PREFIX: &str = "anon$";
pub const FORWARDER_PREFIX: &str = "__rhai_kernel_closure_";

fn wire_name(name: &str) -> String {
    match name.strip_prefix(FORWARDER_PREFIX) {
        Some(hash) => format!("{CLOSURE_PREFIX}{hash}"),
        None => name.to_string(),
    }
}

fn local_name(name: &str) -> String {
    match name.strip_prefix(CLOSURE_PREFIX) {
        Some(hash) => format!("{FORWARDER_PREFIX}{hash}"),
        None => name.to_string(),
    }
}

/// Encodes a value; `what` names it in the error (e.g. "argument 2").
pub fn to_json(value: &Dynamic, what: &str) -> Result<Value, String> {
    let value = if value.is_shared() {
        value.flatten_clone()
    } else {
        value.clone()
    };
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(f) = value.as_float() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{what}: the float {f} cannot be sent to another process"));
    }
    if value.is_string() {
        return Ok(Value::String(value.into_string().unwrap_or_default()));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Some(items) = value.read_lock::<rhai::Array>() {
        let encoded: Result<Vec<Value>, String> = items
            .iter()
            .enumerate()
            .map(|(i, item)| to_json(item, &format!("{what}[{i}]")))
            .collect();
        return encoded.map(Value::Array);
    }
    if let Some(map) = value.read_lock::<Map>() {
        let mut out = serde_json::Map::new();
        for (key, item) in map.iter() {
            out.insert(key.to_string(), to_json(item, &format!("{what}.{key}"))?);
        }
        return Ok(Value::Object(out));
    }
    if let Some(f) = value.read_lock::<FnPtr>() {
        let curry: Result<Vec<Value>, String> = f
            .iter_curry()
            .enumerate()
            .map(|(i, c)| to_json(c, &format!("{what} (captured value {})", i + 1)))
            .collect();
        return Ok(json!({ TAG: "Fn", "name": wire_name(f.fn_name()), "curry": curry? }));
    }
    if let Some(lock) = value.read_lock::<Lock>() {
        return Ok(json!({ TAG: "Lock", "offset": lock.0.offset }));
    }
    if let Some(lock) = value.read_lock::<RLock>() {
        return Ok(json!({ TAG: "RLock", "offset": lock.0.offset }));
    }
    if let Some(v) = value.read_lock::<SharedValue>() {
        return Ok(json!({ TAG: "Value", "offset": v.offset }));
    }
    if let Some(a) = value.read_lock::<SharedArray>() {
        return Ok(json!({ TAG: "SharedArray", "offset": a.offset }));
    }
    if let Some(s) = value.read_lock::<Semaphore>() {
        return Ok(json!({ TAG: "Semaphore", "offset": s.offset }));
    }
    if let Some(e) = value.read_lock::<Event>() {
        return Ok(json!({ TAG: "Event", "offset": e.offset }));
    }
    if let Some(c) = value.read_lock::<Condition>() {
        return Ok(json!({ TAG: "Condition", "offset": c.offset }));
    }
    if let Some(b) = value.read_lock::<Barrier>() {
        return Ok(json!({ TAG: "Barrier", "offset": b.offset }));
    }
    if let Some(q) = value.read_lock::<Queue>() {
        return Ok(json!({ TAG: "Queue", "offset": q.0.offset }));
    }
    if let Some(c) = value.read_lock::<Conn>() {
        return Ok(
            json!({ TAG: "Conn", "offset": c.outgoing.offset, "incoming": c.incoming.offset }),
        );
    }
    // The name a script knows the type by (`Thread`, not the Rust type's path).
    let type_name = super::threads::script_engine()
        .map(|engine| engine.map_type_name(value.type_name()).to_string())
        .unwrap_or_else(|_| value.type_name().to_string());
    Err(format!(
        "{what} is a {type_name} and cannot be sent to another process (numbers, strings, bools, (), arrays, maps, functions and shared objects such as locks and values can)"
    ))
}

/// Decodes a value produced by [`to_json`] (in this or another process).
pub fn from_json(value: &Value) -> Result<Dynamic, String> {
    Ok(match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => {
            let items: Result<rhai::Array, String> = items.iter().map(from_json).collect();
            Dynamic::from_array(items?)
        }
        Value::Object(map) => match map.get(TAG).and_then(Value::as_str) {
            Some(kind) => object_from_json(kind, map)?,
            None => {
                let mut out = Map::new();
                for (key, item) in map {
                    out.insert(key.as_str().into(), from_json(item)?);
                }
                Dynamic::from_map(out)
            }
        },
    })
}

fn object_from_json(kind: &str, map: &serde_json::Map<String, Value>) -> Result<Dynamic, String> {
    let offset = || {
        map.get("offset")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("a {kind} reference without an offset"))
    };
    Ok(match kind {
        "Fn" => {
            let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
            let mut f = FnPtr::new(local_name(name)).map_err(|e| e.to_string())?;
            if let Some(curry) = map.get("curry").and_then(Value::as_array) {
                for item in curry {
                    f.add_curry(from_json(item)?);
                }
            }
            Dynamic::from(f)
        }
        "Lock" => Dynamic::from(Lock(LockRef::from_offset(offset()?)?)),
        "RLock" => Dynamic::from(RLock(LockRef::from_offset(offset()?)?)),
        "Value" => Dynamic::from(SharedValue::from_offset(offset()?)?),
        "SharedArray" => Dynamic::from(SharedArray::from_offset(offset()?)?),
        "Semaphore" => Dynamic::from(Semaphore::from_offset(offset()?)?),
        "Event" => Dynamic::from(Event::from_offset(offset()?)?),
        "Condition" => Dynamic::from(Condition::from_offset(offset()?)?),
        "Barrier" => Dynamic::from(Barrier::from_offset(offset()?)?),
        "Queue" => Dynamic::from(Queue(Ring::from_offset(offset()?)?)),
        "Conn" => {
            let incoming = map
                .get("incoming")
                .and_then(Value::as_u64)
                .ok_or("a Conn without its incoming side")?;
            Dynamic::from(Conn {
                outgoing: Ring::from_offset(offset()?)?,
                incoming: Ring::from_offset(incoming)?,
            })
        }
        other => return Err(format!("unknown object kind {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_round_trip() {
        let mut map = Map::new();
        map.insert("a".into(), Dynamic::from_int(1));
        map.insert("b".into(), Dynamic::from_float(1.0));
        let value = Dynamic::from_array(vec![
            Dynamic::UNIT,
            Dynamic::from_bool(true),
            Dynamic::from("text"),
            Dynamic::from_map(map),
        ]);
        let json = to_json(&value, "argument 1").unwrap();
        assert_eq!(json, json!([null, true, "text", {"a": 1, "b": 1.0}]));
        let back = from_json(&json).unwrap();
        assert_eq!(back.to_string(), value.to_string());
        let b = back.into_array().unwrap()[3].clone().cast::<Map>()["b"].clone();
        assert!(b.is_float(), "a float stays a float");
    }

    #[test]
    fn unsupported_values_name_the_argument() {
        let err = to_json(&Dynamic::from(std::time::Instant::now()), "argument 2").unwrap_err();
        assert!(err.starts_with("argument 2 is a"), "{err}");
    }
}
