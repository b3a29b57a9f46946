//! `value(x)` and `shared_array(n, fill)`: numbers in shared memory, visible to every
//! thread and process. Each read and each write is atomic, but `v.value += 1` is a read
//! then a write, so concurrent increments lose updates, exactly like Python's
//! `multiprocessing.Value`; `add` is the atomic alternative, `get_lock()` the classic one.

use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::locks::{Lock, LockRef, LockState};
use crate::runtime::sched::{self, Action, Kind, Object, Op};
use crate::runtime::shm::{arena, kind as object_kind};
use rhai::plugin::*;
use std::sync::atomic::{AtomicU64, Ordering};

const KIND_INT: u32 = 0;
const KIND_FLOAT: u32 = 1;
const KIND_BOOL: u32 = 2;

#[repr(C)]
struct ValueState {
    lock: LockState,
    kind: u32,
    bits: AtomicU64,
}

#[repr(C)]
struct ArrayHeader {
    lock: LockState,
    kind: u32,
    len: u64,
    // followed by `len` AtomicU64 cells
}

fn encode(value: &Dynamic) -> Option<(u32, u64)> {
    if let Some(i) = value.clone().try_cast::<i64>() {
        Some((KIND_INT, i as u64))
    } else if let Some(f) = value.clone().try_cast::<f64>() {
        Some((KIND_FLOAT, f.to_bits()))
    } else {
        value
            .clone()
            .try_cast::<bool>()
            .map(|b| (KIND_BOOL, b as u64))
    }
}

fn decode(kind: u32, bits: u64) -> Dynamic {
    match kind {
        KIND_FLOAT => Dynamic::from_float(f64::from_bits(bits)),
        KIND_BOOL => Dynamic::from_bool(bits != 0),
        _ => Dynamic::from_int(bits as i64),
    }
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_FLOAT => "float",
        KIND_BOOL => "bool",
        _ => "int",
    }
}

/// Converts `value` for a cell of `kind` (ints are accepted where floats are stored).
fn bits_for(kind: u32, value: &Dynamic) -> Result<u64, Box<EvalAltResult>> {
    match (kind, encode(value)) {
        (k, Some((vk, bits))) if k == vk => Ok(bits),
        (KIND_FLOAT, Some((KIND_INT, bits))) => Ok((bits as i64 as f64).to_bits()),
        _ => Err(format!(
            "expected a {} value, got {}",
            kind_name(kind),
            value.type_name()
        )
        .into()),
    }
}

/// A number or bool in shared memory.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedValue {
    pub offset: u64,
    held: Held,
}

/// A fixed-size array of numbers in shared memory.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedArray {
    pub offset: u64,
    held: Held,
}

impl SharedValue {
    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new(initial: &Dynamic) -> Result<SharedValue, Box<EvalAltResult>> {
        let (kind, bits) = encode(initial).ok_or_else(|| {
            format!(
                "value() takes an int, float or bool, not {}",
                initial.type_name()
            )
        })?;
        let arena = arena()?;
        let size = std::mem::size_of::<ValueState>();
        let offset = arena.alloc_object(object_kind::VALUE, size, size)?;
        // SAFETY: fresh zeroed memory for a ValueState; the lock is its first field.
        unsafe {
            LockRef::init_at(offset, false)?;
            let state = arena.at::<ValueState>(offset);
            (*state).kind = kind;
            (*state).bits.store(bits, Ordering::Release);
        }
        Ok(SharedValue {
            offset,
            held: Held::created(offset),
        })
    }

    pub fn receive(offset: u64, how: Receive) -> Result<SharedValue, String> {
        let size = std::mem::size_of::<ValueState>();
        let held = how.held(offset, &[object_kind::VALUE], size)?;
        Ok(SharedValue { offset, held })
    }

    fn state(&self) -> &ValueState {
        // SAFETY: offsets come from `new`, or received offsets were checked by `Receive::held` (a live object of this kind and size).
        unsafe {
            &*arena()
                .expect("shared memory exists once a value does")
                .at::<ValueState>(self.offset)
        }
    }

    /// The value as scheduling points name it.
    pub fn object(&self) -> Object {
        let serial = LockRef {
            offset: self.offset,
        }
        .serial();
        Object::new(Kind::Value, self.offset, serial)
    }

    /// `v.value`, as a scheduling point.
    pub fn read(&self, ctx: &NativeCallContext) -> Result<Dynamic, Box<EvalAltResult>> {
        let op = || Op::new(Action::Read, self.object(), Some(ctx));
        sched::step(op, || Ok(self.get()), |v| format!("→ {v}"))
    }

    /// `v.value = x`, as a scheduling point.
    pub fn write(&self, ctx: &NativeCallContext, x: &Dynamic) -> Result<(), Box<EvalAltResult>> {
        let op = || Op::new(Action::Write, self.object(), Some(ctx));
        sched::step(op, || self.set(x), |_| format!("← {x}"))
    }

    /// `v.add(d)`, as a scheduling point.
    pub fn update(
        &self,
        ctx: &NativeCallContext,
        d: &Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let op = || Op::new(Action::Update, self.object(), Some(ctx));
        sched::step(op, || self.add(d), |v| format!("{d} → {v}"))
    }

    pub fn get(&self) -> Dynamic {
        let state = self.state();
        decode(state.kind, state.bits.load(Ordering::SeqCst))
    }

    pub fn set(&self, value: &Dynamic) -> Result<(), Box<EvalAltResult>> {
        let state = self.state();
        state
            .bits
            .store(bits_for(state.kind, value)?, Ordering::SeqCst);
        Ok(())
    }

    pub fn add(&self, delta: &Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let state = self.state();
        match state.kind {
            KIND_INT => {
                let delta = delta
                    .as_int()
                    .map_err(|t| format!("add: expected an int, got {t}"))?;
                let old = state.bits.fetch_add(delta as u64, Ordering::SeqCst) as i64;
                Ok(Dynamic::from_int(old.wrapping_add(delta)))
            }
            KIND_FLOAT => {
                let delta = f64::from_bits(bits_for(KIND_FLOAT, delta)?);
                let mut current = state.bits.load(Ordering::SeqCst);
                loop {
                    let next = (f64::from_bits(current) + delta).to_bits();
                    match state.bits.compare_exchange_weak(
                        current,
                        next,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    ) {
                        Ok(_) => return Ok(Dynamic::from_float(f64::from_bits(next))),
                        Err(actual) => current = actual,
                    }
                }
            }
            _ => Err("add: a bool value cannot be added to".into()),
        }
    }

    pub fn lock(&self) -> Lock {
        Lock(
            LockRef {
                offset: self.offset,
            },
            self.held.clone(),
        )
    }
}

impl SharedArray {
    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new(len: i64, fill: &Dynamic) -> Result<SharedArray, Box<EvalAltResult>> {
        let (kind, bits) = encode(fill)
            .filter(|(k, _)| *k != KIND_BOOL)
            .ok_or_else(|| {
                format!(
                    "shared_array() is filled with ints or floats, not {}",
                    fill.type_name()
                )
            })?;
        let len =
            usize::try_from(len).map_err(|_| format!("shared_array: invalid length {len}"))?;
        let arena = arena()?;
        let size = std::mem::size_of::<ArrayHeader>() + len * 8;
        let offset = arena.alloc_object(object_kind::SHARED_ARRAY, size, size)?;
        // SAFETY: fresh zeroed memory for the header and `len` cells.
        unsafe {
            LockRef::init_at(offset, false)?;
            let header = arena.at::<ArrayHeader>(offset);
            (*header).kind = kind;
            (*header).len = len as u64;
        }
        let array = SharedArray {
            offset,
            held: Held::created(offset),
        };
        for cell in array.cells() {
            cell.store(bits, Ordering::Relaxed);
        }
        Ok(array)
    }

    pub fn receive(offset: u64, how: Receive) -> Result<SharedArray, String> {
        let header = std::mem::size_of::<ArrayHeader>();
        let held = how.held(offset, &[object_kind::SHARED_ARRAY], header)?;
        // SAFETY: the header lies inside the mapping and the object is alive (checked).
        let len = unsafe { (*arena()?.at::<ArrayHeader>(offset)).len } as usize;
        if arena()?.contains(offset, header + len * 8) {
            Ok(SharedArray { offset, held })
        } else {
            Err(format!("invalid shared array reference {offset}"))
        }
    }

    fn header(&self) -> &ArrayHeader {
        // SAFETY: offsets come from `new`, or received offsets were checked by `Receive::held` (a live object of this kind and size).
        unsafe {
            &*arena()
                .expect("shared memory exists once an array does")
                .at::<ArrayHeader>(self.offset)
        }
    }

    fn cells(&self) -> &[AtomicU64] {
        let header = self.header();
        // SAFETY: `len` cells follow the header (allocated together).
        unsafe {
            let first = (header as *const ArrayHeader).add(1).cast::<AtomicU64>();
            std::slice::from_raw_parts(first, header.len as usize)
        }
    }

    /// Element `index` as scheduling points name it.
    pub fn object(&self, index: u64) -> Object {
        let serial = LockRef {
            offset: self.offset,
        }
        .serial();
        Object::new(Kind::Array, self.offset, serial).element(index)
    }

    fn cell(&self, index: i64) -> Result<&AtomicU64, Box<EvalAltResult>> {
        let cells = self.cells();
        let len = cells.len() as i64;
        let at = if index < 0 { index + len } else { index };
        if at < 0 || at >= len {
            return Err(EvalAltResult::ErrorArrayBounds(cells.len(), index, Position::NONE).into());
        }
        Ok(&cells[at as usize])
    }
}

#[export_module]
pub mod value_api {
    use super::*;

    pub type Value = SharedValue;
    pub type SharedArray = super::SharedArray;

    /// Creates a `Value` in shared memory holding an int, float or bool, visible to all
    /// threads and processes (Python's `multiprocessing.Value`).
    ///
    /// `v.value` reads it and `v.value = x` writes it; each is atomic, but `v.value += 1`
    /// is not (a read, then a write), so concurrent increments can be lost. Use
    /// `v.add(1)` (atomic) or `v.get_lock().hold(|| …)` to avoid that.
    #[rhai_fn(return_raw)]
    pub fn value(initial: Dynamic) -> Result<SharedValue, Box<EvalAltResult>> {
        SharedValue::new(&initial)
    }

    /// The current value.
    #[rhai_fn(get = "value", return_raw, pure)]
    pub fn get_value(
        ctx: NativeCallContext,
        v: &mut SharedValue,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        v.read(&ctx)
    }

    /// Replaces the value (of the same type; an int is accepted for a float value).
    #[rhai_fn(set = "value", return_raw, pure)]
    pub fn set_value(
        ctx: NativeCallContext,
        v: &mut SharedValue,
        x: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        v.write(&ctx, &x)
    }

    /// Atomically adds `delta` and returns the new value.
    #[rhai_fn(name = "add", return_raw, pure)]
    pub fn add(
        ctx: NativeCallContext,
        v: &mut SharedValue,
        delta: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        v.update(&ctx, &delta)
    }

    /// The lock that belongs to this value (for read-modify-write sequences).
    #[rhai_fn(name = "get_lock", pure)]
    pub fn value_lock(v: &mut SharedValue) -> Lock {
        v.lock()
    }

    /// Shows a value as `Value(42)`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn value_to_string(v: &mut SharedValue) -> String {
        format!("Value({})", v.get())
    }

    /// Creates an array of `n` ints or floats in shared memory, each set to `fill`
    /// (Python's `multiprocessing.Array`). `a[i]` reads, `a[i] = x` writes.
    #[rhai_fn(return_raw)]
    pub fn shared_array(n: i64, fill: Dynamic) -> Result<super::SharedArray, Box<EvalAltResult>> {
        super::SharedArray::new(n, &fill)
    }

    /// Reads element `i` (negative indices count from the end).
    #[rhai_fn(index_get, return_raw, pure)]
    pub fn array_get(
        ctx: NativeCallContext,
        a: &mut super::SharedArray,
        i: i64,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let kind = a.header().kind;
        let cell = a.cell(i)?;
        let index = (cell as *const AtomicU64 as usize - a.cells().as_ptr() as usize) / 8;
        let op = || Op::new(Action::Read, a.object(index as u64), Some(&ctx));
        let read = || Ok(decode(kind, cell.load(Ordering::SeqCst)));
        sched::step(op, read, |v| format!("→ {v}"))
    }

    /// Writes element `i`.
    #[rhai_fn(index_set, return_raw, pure)]
    pub fn array_set(
        ctx: NativeCallContext,
        a: &mut super::SharedArray,
        i: i64,
        x: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let bits = bits_for(a.header().kind, &x)?;
        let cell = a.cell(i)?;
        let index = (cell as *const AtomicU64 as usize - a.cells().as_ptr() as usize) / 8;
        let op = || Op::new(Action::Write, a.object(index as u64), Some(&ctx));
        let write = || {
            cell.store(bits, Ordering::SeqCst);
            Ok(())
        };
        sched::step(op, write, |_| format!("← {x}"))
    }

    /// The number of elements.
    #[rhai_fn(name = "len", pure)]
    pub fn array_len(a: &mut super::SharedArray) -> i64 {
        a.cells().len() as i64
    }

    /// A copy of the elements as an ordinary array.
    #[rhai_fn(name = "to_array", pure)]
    pub fn to_array(a: &mut super::SharedArray) -> rhai::Array {
        let kind = a.header().kind;
        a.cells()
            .iter()
            .map(|c| decode(kind, c.load(Ordering::SeqCst)))
            .collect()
    }

    /// The lock that belongs to this array.
    #[rhai_fn(name = "get_lock", pure)]
    pub fn array_lock(a: &mut super::SharedArray) -> Lock {
        Lock(LockRef { offset: a.offset }, a.held.clone())
    }

    /// Shows the array's elements, like `SharedArray[1, 2, 3]`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn array_to_string(a: &mut super::SharedArray) -> String {
        let items: Vec<String> = to_array(a).iter().map(|v| v.to_string()).collect();
        format!("SharedArray[{}]", items.join(", "))
    }
}
