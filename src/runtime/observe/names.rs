//! What traces and race reports call things: the variable names of the shared objects a
//! worker's closure captured (`counter`, `lock_a`), the numbers of the others (`Lock-1`,
//! counted in the order the run met them, so that every run of one schedule says the same),
//! and the values of the named shared values after each step.

use crate::runtime::locks::{Lock, RLock};
use crate::runtime::queues::Queue;
use crate::runtime::sched::{Action, Kind, Object, Op};
use crate::runtime::sync::{Barrier, Condition, Event, Semaphore};
use crate::runtime::threads::ThreadHandle;
use crate::runtime::values::{SharedArray, SharedValue};
use rhai::{Dynamic, FnPtr, NativeCallContext};
use std::collections::HashMap;

#[derive(Default)]
pub struct Names {
    by_object: HashMap<(Kind, u64), String>,
    /// The objects met so far, numbered from 1 per kind in the order they were met.
    met: HashMap<(Kind, u64), u64>,
    counts: HashMap<Kind, u64>,
    /// The named shared values, in the order they were found.
    values: Vec<(String, SharedValue)>,
}

/// The object a handle refers to.
fn object_of(value: &Dynamic) -> Option<Object> {
    let value = if value.is_shared() {
        value.flatten_clone()
    } else {
        value.clone()
    };
    if let Some(v) = value.read_lock::<SharedValue>() {
        return Some(v.object());
    }
    if let Some(a) = value.read_lock::<SharedArray>() {
        return Some(a.object(0));
    }
    if let Some(l) = value.read_lock::<Lock>() {
        return Some(l.0.object());
    }
    if let Some(l) = value.read_lock::<RLock>() {
        return Some(l.0.object());
    }
    if let Some(s) = value.read_lock::<Semaphore>() {
        return Some(s.object());
    }
    if let Some(e) = value.read_lock::<Event>() {
        return Some(e.object());
    }
    if let Some(c) = value.read_lock::<Condition>() {
        return Some(c.object());
    }
    if let Some(b) = value.read_lock::<Barrier>() {
        return Some(b.object());
    }
    if let Some(q) = value.read_lock::<Queue>() {
        return Some(q.0.object(Kind::Queue));
    }
    if let Some(t) = value.read_lock::<ThreadHandle>() {
        return Some(t.object());
    }
    None
}

impl Names {
    /// Names the objects that `f` captured, and the ones passed to it as `args`, by the
    /// names of its variables and parameters.
    pub fn capture(&mut self, ctx: &NativeCallContext, f: &FnPtr, args: &[Dynamic]) {
        let values: Vec<&Dynamic> = f.curry().iter().chain(args).collect();
        if values.is_empty() {
            return;
        }
        let params = ctx.iter_namespaces().find_map(|module| {
            module
                .iter_script_fn_info()
                .find(|(_, _, name, arity, _)| *name == f.fn_name() && *arity == values.len())
                .map(|(_, _, _, _, def)| def.params.clone())
        });
        let Some(params) = params else {
            return;
        };
        for (name, value) in params.iter().zip(values) {
            self.add(name, value);
        }
    }

    /// Names the object `value` refers to, if it is a runtime object not named yet.
    pub fn add(&mut self, name: &str, value: &Dynamic) {
        let Some(object) = object_of(value) else {
            return;
        };
        let key = (object.kind, object.id);
        if self.by_object.contains_key(&key) {
            return;
        }
        self.by_object.insert(key, name.to_string());
        let value = if value.is_shared() {
            value.flatten_clone()
        } else {
            value.clone()
        };
        if let Some(v) = value.try_cast::<SharedValue>() {
            // A value's own lock (`get_lock()`) lives at the same place.
            self.by_object
                .insert((Kind::Lock, object.id), format!("{name}.get_lock()"));
            self.values.push((name.to_string(), v));
        }
    }

    /// The object's number among the objects of its kind this run met, counting it now if
    /// it is new: the same object gets the same number in every run of the same schedule,
    /// where its address and its serial number in the session differ.
    pub fn meet(&mut self, object: &Object) -> u64 {
        let counts = &mut self.counts;
        *self.met.entry((object.kind, object.id)).or_insert_with(|| {
            let count = counts.entry(object.kind).or_insert(0);
            *count += 1;
            *count
        })
    }

    /// `Lock-2`, `value#3`: the object's label, numbered as this run met it if it did.
    pub fn label(&self, object: &Object) -> String {
        match self.met.get(&(object.kind, object.id)) {
            Some(&serial) => Object { serial, ..*object }.label(),
            None => object.label(),
        }
    }

    /// A variable's name, or the object's label (`Lock-3`, `value#4`).
    pub fn name(&self, object: &Object) -> String {
        self.by_object
            .get(&(object.kind, object.id))
            .cloned()
            .unwrap_or_else(|| self.label(object))
    }

    /// One step as a trace shows it: `read counter.value → 7`, `acquire Lock-1`.
    pub fn describe(&self, op: &Op, detail: &str) -> String {
        let name = self.name(&op.object);
        let target = match op.object.kind {
            Kind::Value if self.by_object.contains_key(&(Kind::Value, op.object.id)) => {
                format!("{name}.value")
            }
            Kind::Array => format!("{name}[{}]", op.object.slot),
            Kind::Clock => String::new(),
            Kind::Thread if op.action == Action::Spawn => String::new(),
            Kind::Thread | Kind::Process if !detail.is_empty() => detail.to_string(),
            _ => name,
        };
        let detail = match op.action {
            Action::Read | Action::Write | Action::Update | Action::Sleep => detail,
            _ => "",
        };
        [op.action.verb(), &target, detail]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `counter = 1, balance = 20`: the named shared values now.
    pub fn values_now(&self) -> String {
        self.values
            .iter()
            .map(|(name, v)| format!("{name} = {}", v.get()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
