//! The big values a process pool task's closure captures, sent to each worker once: a
//! closure over a 100,000-entry map used to be encoded and sent again with every task.
//!
//! The pool knows a captured value by a fingerprint of its contents, so a value changed
//! between two tasks is sent again, and an unchanged one is encoded once. Each worker
//! keeps what it was sent (up to [`WORKER_BUDGET`] bytes, oldest given up first, the pool
//! mirroring what it holds); a task names those values by fingerprint, and every call gets
//! its own copy, as if the value had been sent with it.

use crate::runtime::lifetime::Held;
use crate::runtime::transfer;
use foldhash::quality::RandomState;
use rhai::{Dynamic, FnPtr};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Captured values with fewer parts than this are sent with every task: encoding them
/// costs about what fingerprinting them would.
const MIN_PARTS: usize = 256;

/// How many bytes of encoded values a worker keeps.
const WORKER_BUDGET: usize = 64 << 20;

/// How many encodings the pool keeps for the next tasks.
const POOL_ENTRIES: usize = 16;

/// A captured value a task refers to by id, with its encoding for a worker that lacks it.
#[derive(Clone)]
pub(super) struct Stored {
    id: u64,
    json: Arc<RawValue>,
}

/// A task's function, encoded for the job, with the handles of the shared objects
/// it captured (each task keeps its own copy of them until it is answered).
#[derive(Clone)]
pub(super) struct EncodedFunction {
    pub(super) json: Box<RawValue>,
    pub(super) name: String,
    pub(super) stored: Vec<Stored>,
    pub(super) kept: Vec<Held>,
}

/// The pool's side: recent encodings by fingerprint.
#[derive(Default)]
pub(super) struct CapturedValues {
    keys: RandomState,
    recent: Mutex<VecDeque<Stored>>,
}

impl CapturedValues {
    /// Encodes `f` with its captured values; big plain ones become references to values
    /// a worker keeps.
    pub(super) fn encode(&self, f: &FnPtr) -> Result<EncodedFunction, String> {
        let mut kept = Vec::new();
        let mut stored = Vec::new();
        let mut curry = Vec::with_capacity(f.curry().len());
        for (i, captured) in f.iter_curry().enumerate() {
            let what = format!("the function (captured value {})", i + 1);
            // One reading for the fingerprint and the encoding, so both see the same
            // contents even if another thread changes the variable meanwhile.
            let snapshot = captured.read_lock::<Dynamic>();
            let big = snapshot.as_ref().and_then(|value| {
                transfer::fingerprint(value, &self.keys)
                    .filter(|(_, parts)| *parts >= MIN_PARTS)
                    .map(|(id, _)| (id, value))
            });
            match big {
                Some((id, value)) => {
                    let json = match self.find(id) {
                        Some(json) => json,
                        None => self.remember(id, &transfer::to_json(value, &what, &mut kept)?)?,
                    };
                    curry.push(transfer::stored_reference(id));
                    stored.push(Stored { id, json });
                }
                None => {
                    drop(snapshot);
                    curry.push(transfer::to_json(captured, &what, &mut kept)?);
                }
            }
        }
        let json = transfer::function_json(f, curry);
        Ok(EncodedFunction {
            name: json["name"].as_str().unwrap_or_default().to_string(),
            json: encoded(&json)?,
            stored,
            kept,
        })
    }

    fn find(&self, id: u64) -> Option<Arc<RawValue>> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        touch(&mut recent, |s| s.id == id).map(|s| s.json.clone())
    }

    fn remember(&self, id: u64, value: &Value) -> Result<Arc<RawValue>, String> {
        let json: Arc<RawValue> = Arc::from(encoded(value)?);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // Another thread's call may have encoded the same value meanwhile.
        if let Some(known) = recent.iter().find(|s| s.id == id) {
            return Ok(known.json.clone());
        }
        if recent.len() >= POOL_ENTRIES {
            recent.pop_front();
        }
        recent.push_back(Stored {
            id,
            json: json.clone(),
        });
        Ok(json)
    }
}

/// A value's JSON text, written once for every job that carries it.
fn encoded(value: &Value) -> Result<Box<RawValue>, String> {
    to_raw_value(value).map_err(|e| e.to_string())
}

/// Finds the entry of a least-recently-used list that `matches` and marks it used now (moves
/// it to the back).
fn touch<T>(list: &mut VecDeque<T>, matches: impl Fn(&T) -> bool) -> Option<&T> {
    let at = list.iter().position(matches)?;
    let entry = list.remove(at)?;
    list.push_back(entry);
    list.back()
}

/// What one worker keeps, as the pool mirrors it: ids in the order of last use.
#[derive(Default)]
pub(super) struct WorkerStore {
    held: VecDeque<(u64, usize)>,
    bytes: usize,
}

impl WorkerStore {
    /// The job's `forget` and `store` parts for a task that refers to `stored`; the mirror
    /// is updated as if the worker got the job.
    pub(super) fn send_along<'a>(&mut self, stored: &'a [Stored]) -> SentAlong<'a> {
        self.send_within(stored, WORKER_BUDGET)
    }

    fn send_within<'a>(&mut self, stored: &'a [Stored], budget: usize) -> SentAlong<'a> {
        let mut to_send = Vec::new();
        for s in stored {
            let held = touch(&mut self.held, |(id, _)| *id == s.id).is_some();
            if !held && !to_send.iter().any(|t: &&Stored| t.id == s.id) {
                to_send.push(s);
            }
        }
        let mut forget = Vec::new();
        if to_send.is_empty() {
            return (forget, Vec::new());
        }
        let arriving: usize = to_send.iter().map(|s| s.json.get().len()).sum();
        // Make room, but never give up a value this task uses.
        while self.bytes + arriving > budget {
            let Some(at) = self
                .held
                .iter()
                .position(|(id, _)| !stored.iter().any(|s| s.id == *id))
            else {
                break;
            };
            if let Some((id, size)) = self.held.remove(at) {
                self.bytes -= size;
                forget.push(id);
            }
        }
        let mut store = Vec::with_capacity(to_send.len());
        for s in to_send {
            let json: &RawValue = &s.json;
            store.push((s.id, json));
            self.held.push_back((s.id, json.get().len()));
            self.bytes += json.get().len();
        }
        (forget, store)
    }
}

/// The values a worker gives up (by id), and those it keeps from now on (id and JSON).
pub(super) type SentAlong<'a> = (Vec<u64>, Vec<(u64, &'a RawValue)>);

#[cfg(test)]
mod tests {
    use super::*;

    fn value(id: u64, json: &str) -> Stored {
        Stored {
            id,
            json: Arc::from(RawValue::from_string(json.to_string()).unwrap()),
        }
    }

    /// The `forget` and `store` parts `send_within` gives for one task, as a job's JSON has
    /// them.
    fn parts(store: &mut WorkerStore, stored: &[Stored], budget: usize) -> String {
        let (forget, kept) = store.send_within(stored, budget);
        let mut job = String::new();
        if !forget.is_empty() {
            job.push_str(&format!(",\"forget\":{forget:?}"));
        }
        if !kept.is_empty() {
            job.push_str(&format!(
                ",\"store\":{}",
                serde_json::to_string(&kept).unwrap()
            ));
        }
        job
    }

    #[test]
    fn a_value_goes_to_a_worker_once() {
        let mut store = WorkerStore::default();
        let a = value(1, "[1,2,3]");
        assert_eq!(
            parts(&mut store, std::slice::from_ref(&a), 100),
            ",\"store\":[[1,[1,2,3]]]"
        );
        assert_eq!(parts(&mut store, &[a.clone(), a], 100), "");
    }

    #[test]
    fn the_least_recently_used_value_is_forgotten_first() {
        let mut store = WorkerStore::default();
        let (a, b, c) = (
            value(1, "[11111]"),
            value(2, "[22222]"),
            value(3, "[33333]"),
        );
        parts(&mut store, std::slice::from_ref(&a), 20);
        parts(&mut store, std::slice::from_ref(&b), 20);
        // `a` was used again, so `b` is the older one.
        assert_eq!(parts(&mut store, std::slice::from_ref(&a), 20), "");
        assert_eq!(
            parts(&mut store, &[c], 20),
            ",\"forget\":[2],\"store\":[[3,[33333]]]"
        );
        assert_eq!(parts(&mut store, &[a], 20), "");
        assert_eq!(store.bytes, 14);
    }

    #[test]
    fn a_value_the_task_uses_is_never_forgotten_for_it() {
        let mut store = WorkerStore::default();
        let (a, b) = (value(1, "[11111]"), value(2, "[22222]"));
        parts(&mut store, std::slice::from_ref(&a), 10);
        // Both are needed: the budget gives way.
        assert_eq!(parts(&mut store, &[a, b], 10), ",\"store\":[[2,[22222]]]");
        assert_eq!(store.held.len(), 2);
    }
}
