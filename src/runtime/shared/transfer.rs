//! Values crossing a process boundary: plain data as JSON (ints and floats stay distinct),
//! runtime objects by reference (an offset into the shared memory both processes map),
//! function pointers by name with their curried (captured) values.
//!
//! A reference on its way must keep its object alive (see `lifetime`): a job's sender
//! keeps the handles it encoded ([`to_json`] hands them over) until the worker has its
//! own; a message that may outlive its sender (a queue item, a result) carries its own
//! references ([`to_message`]), which the receiver adopts ([`from_message`]).

use crate::runtime::lifetime::{self, Held, Receive};
use crate::runtime::locks::{Lock, LockRef, RLock, LOCK_HOLDERS};
use crate::runtime::queues::{Conn, Queue};
use crate::runtime::ring::Ring;
use crate::runtime::sync::{Barrier, Condition, Event, Semaphore};
use crate::runtime::values::{SharedArray, SharedValue};
use foldhash::quality::RandomState;
use rhai::{Dynamic, FnPtr, Map};
use serde_json::{json, Number, Value};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, OnceLock};

/// The key marking an encoded runtime object or function pointer in JSON.
const TAG: &str = "$rhai";

/// Rhai names closures `anon$<hash>` (the hash of their text), a name a function pointer
/// cannot be created with. A closure received in any process or thread is a native function
/// pointer named with `FORWARDER_PREFIX` that calls the closure by its own name (see
/// [`closure_named`]).
pub const CLOSURE_PREFIX: &str = "anon$";
const FORWARDER_PREFIX: &str = "__rhai_kernel_closure_";

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

/// A function pointer with its captured values already encoded, some of them perhaps as
/// [`stored_reference`]s.
pub fn function_json(f: &FnPtr, curry: Vec<Value>) -> Value {
    json!({ TAG: "Fn", "name": wire_name(f.fn_name()), "curry": curry })
}

/// Stands for a value sent earlier with its id and kept by the receiver (a pool worker
/// keeps the big values its tasks' closures capture; see `pools::captured`).
pub fn stored_reference(id: u64) -> Value {
    json!({ TAG: "Stored", "id": id })
}

/// The values this process was sent to keep, by id.
fn stored_values() -> std::sync::MutexGuard<'static, HashMap<u64, Dynamic>> {
    static STORED: OnceLock<Mutex<HashMap<u64, Dynamic>>> = OnceLock::new();
    STORED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Keeps a value that later messages name by `id`.
pub fn store(id: u64, value: Dynamic) {
    // Shared, as a captured variable is, so a decoding costs no copy and Rhai's calls do
    // not walk it looking for locks. A call still gets its own copy of what a function
    // pointer curries, so a task that changes the value cannot change the next task's.
    stored_values().insert(id, value.into_shared());
}

/// Gives up a value kept with [`store`].
pub fn forget(id: u64) {
    stored_values().remove(&id);
}

/// A fingerprint of plain data (what encodes to JSON without shared objects) and how many
/// values it holds: values with equal fingerprints encode alike, but for a hash collision,
/// which `keys` (random per process) keeps from being forged. `None` when `value` holds
/// anything else, or a captured variable (which another thread may change meanwhile).
/// The hash is foldhash, not the standard SipHash, which was slower on many small parts.
pub fn fingerprint(value: &Dynamic, keys: &RandomState) -> Option<(u64, usize)> {
    let mut hasher = keys.build_hasher();
    let mut count = 0;
    feed(value, &mut hasher, &mut count)?;
    Some((hasher.finish(), count))
}

fn feed(value: &Dynamic, hasher: &mut impl Hasher, count: &mut usize) -> Option<()> {
    *count += 1;
    if value.is_shared() {
        return None;
    }
    if value.is_unit() {
        hasher.write_u8(0);
    } else if let Ok(b) = value.as_bool() {
        hasher.write_u8(1);
        hasher.write_u8(b as u8);
    } else if let Ok(i) = value.as_int() {
        hasher.write_u8(2);
        hasher.write_i64(i);
    } else if let Ok(f) = value.as_float() {
        hasher.write_u8(3);
        hasher.write_u64(f.to_bits());
    } else if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        hasher.write_u8(4);
        hasher.write_usize(s.len());
        hasher.write(s.as_bytes());
    } else if let Ok(c) = value.as_char() {
        hasher.write_u8(5);
        hasher.write_u32(c as u32);
    } else if let Some(items) = value.read_lock::<rhai::Array>() {
        hasher.write_u8(6);
        hasher.write_usize(items.len());
        for item in items.iter() {
            feed(item, hasher, count)?;
        }
    } else if let Some(map) = value.read_lock::<Map>() {
        hasher.write_u8(7);
        hasher.write_usize(map.len());
        for (key, item) in map.iter() {
            hasher.write_usize(key.len());
            hasher.write(key.as_bytes());
            feed(item, hasher, count)?;
        }
    } else if let Some(f) = value.read_lock::<FnPtr>() {
        hasher.write_u8(8);
        hasher.write(f.fn_name().as_bytes());
        hasher.write_usize(f.curry().len());
        for item in f.iter_curry() {
            feed(item, hasher, count)?;
        }
    } else {
        return None;
    }
    Some(())
}

/// Encodes a value carrying its own references to the shared objects in it; the receiver
/// decodes it with [`from_message`], or [`release_message`] gives them up.
pub fn to_message(value: &Dynamic, what: &str) -> Result<Value, String> {
    let mut kept = Vec::new();
    let json = to_json(value, what, &mut kept)?;
    for held in &kept {
        lifetime::retain(held.offset());
    }
    Ok(json)
}

/// Decodes a value made by [`to_message`], taking over the references it carries.
pub fn from_message(value: &Value) -> Result<Dynamic, String> {
    from_json(value, Receive::Adopt)
}

/// Gives up the references a message made by [`to_message`] carries, when it will never
/// be decoded.
pub fn release_message(value: &Value) {
    match value {
        Value::Array(items) => items.iter().for_each(release_message),
        Value::Object(map) => match map.get(TAG).and_then(Value::as_str) {
            Some("Fn") => {
                if let Some(curry) = map.get("curry") {
                    release_message(curry);
                }
            }
            Some(_) => {
                for key in ["offset", "incoming"] {
                    if let Some(offset) = map.get(key).and_then(Value::as_u64) {
                        lifetime::release(offset);
                    }
                }
                // A barrier's action, and what it captured.
                if let Some(action) = map.get("action") {
                    release_message(action);
                }
            }
            None => map.values().for_each(release_message),
        },
        _ => {}
    }
}

/// Encodes a value; `what` names it in the error (e.g. "argument 2"). The handles of the
/// shared objects in it go to `kept`: the sender keeps them until the receiver has
/// decoded it with [`from_json`] and [`Receive::Acquire`].
pub fn to_json(value: &Dynamic, what: &str, kept: &mut Vec<Held>) -> Result<Value, String> {
    encode(value, &Path::Root(what), kept)
}

/// Where a value sits in what is being encoded (`argument 2[3].name`), written out only
/// for an error: building the text for every element made encoding a big map slow.
enum Path<'a> {
    Root(&'a str),
    Index(&'a Path<'a>, usize),
    Key(&'a Path<'a>, &'a str),
    Captured(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(what) => write!(f, "{what}"),
            Path::Index(outer, i) => write!(f, "{outer}[{i}]"),
            Path::Key(outer, key) => write!(f, "{outer}.{key}"),
            Path::Captured(outer, i) => write!(f, "{outer} (captured value {})", i + 1),
        }
    }
}

fn encode(value: &Dynamic, what: &Path, kept: &mut Vec<Held>) -> Result<Value, String> {
    if value.is_shared() {
        // A captured variable: read it in place (one lock) rather than copying it first.
        return match value.read_lock::<Dynamic>() {
            Some(inner) if !inner.is_shared() => encode(&inner, what, kept),
            _ => encode(&value.flatten_clone(), what, kept),
        };
    }
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
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return Ok(Value::String(s.to_string()));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Some(items) = value.read_lock::<rhai::Array>() {
        let encoded: Result<Vec<Value>, String> = items
            .iter()
            .enumerate()
            .map(|(i, item)| encode(item, &Path::Index(what, i), kept))
            .collect();
        return encoded.map(Value::Array);
    }
    if let Some(map) = value.read_lock::<Map>() {
        let mut out = serde_json::Map::new();
        for (key, item) in map.iter() {
            out.insert(key.to_string(), encode(item, &Path::Key(what, key), kept)?);
        }
        return Ok(Value::Object(out));
    }
    if let Some(f) = value.read_lock::<FnPtr>() {
        let curry: Result<Vec<Value>, String> = f
            .iter_curry()
            .enumerate()
            .map(|(i, c)| encode(c, &Path::Captured(what, i), kept))
            .collect();
        return Ok(function_json(&f, curry?));
    }
    let mut keep = |held: &Held, tag: &str| {
        kept.push(held.clone());
        Ok(json!({ TAG: tag, "offset": held.offset() }))
    };
    if let Some(lock) = value.read_lock::<Lock>() {
        return keep(&lock.1, "Lock");
    }
    if let Some(lock) = value.read_lock::<RLock>() {
        return keep(&lock.1, "RLock");
    }
    if let Some(v) = value.read_lock::<SharedValue>() {
        return keep(v.held(), "Value");
    }
    if let Some(a) = value.read_lock::<SharedArray>() {
        return keep(a.held(), "SharedArray");
    }
    if let Some(s) = value.read_lock::<Semaphore>() {
        return keep(s.held(), "Semaphore");
    }
    if let Some(e) = value.read_lock::<Event>() {
        return keep(e.held(), "Event");
    }
    if let Some(c) = value.read_lock::<Condition>() {
        return keep(c.held(), "Condition");
    }
    if let Some(b) = value.read_lock::<Barrier>() {
        let mut json = keep(b.held(), "Barrier")?;
        // The action goes along: whichever process arrives last runs it.
        if let Some(action) = &b.action {
            json["action"] = encode(&Dynamic::from(action.clone()), what, kept)?;
        }
        return Ok(json);
    }
    if let Some(q) = value.read_lock::<Queue>() {
        return keep(&q.1, "Queue");
    }
    if let Some(c) = value.read_lock::<Conn>() {
        kept.push(c.held.0.clone());
        kept.push(c.held.1.clone());
        return Ok(
            json!({ TAG: "Conn", "offset": c.outgoing.offset, "incoming": c.incoming.offset }),
        );
    }
    let type_name = crate::runtime::engines::script_type_name(value);
    Err(format!(
        "{what} is a {type_name} and cannot be sent to another process (numbers, strings, bools, (), arrays, maps, functions and shared objects such as locks and values can)"
    ))
}

/// Decodes a value produced by [`to_json`] (in this or another process), taking
/// references to its shared objects as `how` says.
pub fn from_json(value: &Value, how: Receive) -> Result<Dynamic, String> {
    Ok(match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => {
            let items: Result<rhai::Array, String> =
                items.iter().map(|item| from_json(item, how)).collect();
            Dynamic::from_array(items?)
        }
        Value::Object(map) => match map.get(TAG).and_then(Value::as_str) {
            Some(kind) => object_from_json(kind, map, how)?,
            None => {
                let mut out = Map::new();
                for (key, item) in map {
                    out.insert(key.as_str().into(), from_json(item, how)?);
                }
                Dynamic::from_map(out)
            }
        },
    })
}

fn object_from_json(
    kind: &str,
    map: &serde_json::Map<String, Value>,
    how: Receive,
) -> Result<Dynamic, String> {
    let offset = || {
        map.get("offset")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("a {kind} reference without an offset"))
    };
    Ok(match kind {
        "Fn" => {
            let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
            let mut f = match name.starts_with(CLOSURE_PREFIX) {
                true => closure_named(name)?,
                false => FnPtr::new(name).map_err(|e| e.to_string())?,
            };
            if let Some(curry) = map.get("curry").and_then(Value::as_array) {
                for item in curry {
                    f.add_curry(from_json(item, how)?);
                }
            }
            Dynamic::from(f)
        }
        "Stored" => {
            let id = map.get("id").and_then(Value::as_u64).unwrap_or_default();
            stored_values()
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("the stored value {id:x} did not arrive"))?
        }
        "Lock" | "RLock" => {
            let offset = offset()?;
            let size = std::mem::size_of::<crate::runtime::locks::LockState>();
            let held = how.held(offset, &LOCK_HOLDERS, size)?;
            let lock = LockRef { offset };
            if kind == "Lock" {
                Dynamic::from(Lock(lock, held))
            } else {
                Dynamic::from(RLock(lock, held))
            }
        }
        "Value" => Dynamic::from(SharedValue::receive(offset()?, how)?),
        "SharedArray" => Dynamic::from(SharedArray::receive(offset()?, how)?),
        "Semaphore" => Dynamic::from(Semaphore::receive(offset()?, how)?),
        "Event" => Dynamic::from(Event::receive(offset()?, how)?),
        "Condition" => Dynamic::from(Condition::receive(offset()?, how)?),
        "Barrier" => {
            let action = match map.get("action") {
                Some(action) => from_json(action, how)?.try_cast::<FnPtr>(),
                None => None,
            };
            Dynamic::from(Barrier::receive(offset()?, how, action)?)
        }
        "Queue" => {
            let (ring, held) = Ring::receive(offset()?, how)?;
            Dynamic::from(Queue(ring, held))
        }
        "Conn" => {
            let incoming = map
                .get("incoming")
                .and_then(Value::as_u64)
                .ok_or("a Conn without its incoming side")?;
            let (outgoing, held_out) = Ring::receive(offset()?, how)?;
            let (incoming, held_in) = Ring::receive(incoming, how)?;
            Dynamic::from(Conn {
                outgoing,
                incoming,
                held: (held_out, held_in),
            })
        }
        other => return Err(format!("unknown object kind {other:?}")),
    })
}

/// Why a received closure is not among its caller's functions: a thread keeps the
/// functions of the cells run before it started, and a process compiled those.
const CLOSURE_UNKNOWN_HERE: &str = "the closure cannot be called here: it comes from a cell run after this thread or process started, which knows only the functions and closures of the cells before (pass it to a new thread or process instead)";

/// A function pointer to the closure called `name` (`anon$<hash>`). Whoever calls it has
/// the closure among its functions when it runs code compiled from the same text: a thread
/// of the process that sent it (the cell's or script's functions), or a worker (which
/// compiled the notebook's functions); the pointer calls it there, by its name, with what
/// it captured first, as Rhai calls a closure.
fn closure_named(name: &str) -> Result<FnPtr, String> {
    let closure = rhai::ImmutableString::from(name);
    let call = move |ctx: rhai::NativeCallContext, args: &mut [&mut Dynamic]| {
        // Each call gets its own copy of what the closure captured: a value a pool worker
        // keeps for many tasks is shared (see `store`), and a task must not change it for
        // the next one.
        for arg in args.iter_mut().filter(|arg| arg.is_shared()) {
            **arg = arg.flatten_clone();
        }
        ctx.call_fn_raw(&closure, false, false, args)
            .map_err(|err| match *err {
                rhai::EvalAltResult::ErrorFunctionNotFound(ref signature, pos)
                    if signature.starts_with(&format!("{closure} (")) =>
                {
                    rhai::EvalAltResult::ErrorRuntime(CLOSURE_UNKNOWN_HERE.into(), pos).into()
                }
                _ => err,
            })
    };
    // Rhai marks `from_fn` as volatile, not as deprecated.
    #[allow(deprecated)]
    FnPtr::from_fn(local_name(name), call).map_err(|e| e.to_string())
}

/// A copy of `value` as a process receives it: shared objects stay shared, everything
/// else (captured variables included) is copied.
pub fn copied_for_process(value: &Dynamic, what: &str) -> Result<Dynamic, String> {
    let value = if value.is_shared() {
        value.flatten_clone()
    } else {
        value.clone()
    };
    if value.is_fnptr() {
        // The function itself is this session's; only what it captured is copied.
        let mut f = value.cast::<FnPtr>();
        for captured in f.iter_curry_mut() {
            *captured = copied_for_process(captured, what)?;
        }
        return Ok(Dynamic::from(f));
    }
    if value.is_array() {
        let items: Result<rhai::Array, String> = value
            .cast::<rhai::Array>()
            .iter()
            .map(|item| copied_for_process(item, what))
            .collect();
        return Ok(Dynamic::from_array(items?));
    }
    if value.is_map() {
        let mut copy = rhai::Map::new();
        for (key, item) in value.cast::<rhai::Map>() {
            copy.insert(key, copied_for_process(&item, what)?);
        }
        return Ok(Dynamic::from_map(copy));
    }
    from_message(&to_message(&value, what)?)
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
        let json = to_json(&value, "argument 1", &mut Vec::new()).unwrap();
        assert_eq!(json, json!([null, true, "text", {"a": 1, "b": 1.0}]));
        let back = from_json(&json, Receive::Acquire).unwrap();
        assert_eq!(back.to_string(), value.to_string());
        let b = back.into_array().unwrap()[3].clone().cast::<Map>()["b"].clone();
        assert!(b.is_float(), "a float stays a float");
    }

    #[test]
    fn unsupported_values_name_the_argument() {
        let err = to_json(
            &Dynamic::from(std::time::Instant::now()),
            "argument 2",
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.starts_with("argument 2 is a"), "{err}");
    }
}
