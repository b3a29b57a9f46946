//! The comms the kernel holds open with the frontend (the `comm_*` messages of the
//! messaging spec): the target each belongs to, the state a frontend that reloads asks
//! for again, and who handles what arrives on it. Only the kernel opens comms; one that
//! a frontend opens is closed again, as no target is registered for it.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What arrives on a comm from the frontend.
pub enum Incoming<'a> {
    /// A `comm_msg`'s `data`.
    Message(&'a Value),
    /// The frontend closed the comm.
    Closed,
}

/// Handles what arrives on one comm. Called on the shell thread, without the registry's
/// lock held, so it may open or update comms itself.
pub type Handler = Arc<dyn Fn(Incoming) + Send + Sync>;

struct Comm {
    target: String,
    /// Everything the frontend has been told of the model so far (for `request_state`).
    state: Map<String, Value>,
    handler: Option<Handler>,
}

/// The open comms by id, shared by the shell (which routes incoming messages) and the cells'
/// sinks (which open comms and send on them, from any thread).
#[derive(Clone, Default)]
pub struct Comms(Arc<Mutex<HashMap<String, Comm>>>);

impl Comms {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Comm>> {
        // A handler that panicked left nothing half-changed here: the map is still whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a comm the kernel opens, with its first state.
    pub fn open(
        &self,
        id: &str,
        target: &str,
        state: Map<String, Value>,
        handler: Option<Handler>,
    ) {
        self.lock().insert(
            id.to_string(),
            Comm {
                target: target.to_string(),
                state,
                handler,
            },
        );
    }

    /// Records a change of state sent to the frontend.
    pub fn update(&self, id: &str, change: &Map<String, Value>) {
        if let Some(comm) = self.lock().get_mut(id) {
            for (key, value) in change {
                comm.state.insert(key.clone(), value.clone());
            }
        }
    }

    /// The target and whole state of an open comm.
    pub fn state(&self, id: &str) -> Option<(String, Map<String, Value>)> {
        self.lock()
            .get(id)
            .map(|c| (c.target.clone(), c.state.clone()))
    }

    /// `comm_info_reply`'s `comms`: every open comm, or those of `target`.
    pub fn info(&self, target: Option<&str>) -> Value {
        let comms: Map<String, Value> = self
            .lock()
            .iter()
            .filter(|(_, c)| target.is_none_or(|t| t == c.target))
            .map(|(id, c)| (id.clone(), json!({ "target_name": c.target })))
            .collect();
        Value::Object(comms)
    }

    /// Hands `incoming` to the comm's handler; `false` when no such comm is open.
    pub fn deliver(&self, id: &str, incoming: Incoming) -> bool {
        let closing = matches!(incoming, Incoming::Closed);
        let handler = {
            let mut comms = self.lock();
            let Some(comm) = comms.get(id) else {
                return false;
            };
            let handler = comm.handler.clone();
            if closing {
                comms.remove(id);
            }
            handler
        };
        if let Some(handler) = handler {
            handler(incoming);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn messages_reach_the_handler_until_the_comm_closes() {
        let comms = Comms::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let handler: Handler = Arc::new(move |incoming| {
            if let Incoming::Message(_) = incoming {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        comms.open("a", "jupyter.widget", Map::new(), Some(handler));
        assert!(comms.deliver("a", Incoming::Message(&json!({}))));
        assert!(!comms.deliver("b", Incoming::Message(&json!({}))));
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert_eq!(
            comms.info(Some("jupyter.widget")),
            json!({ "a": { "target_name": "jupyter.widget" } })
        );
        assert_eq!(comms.info(Some("other")), json!({}));
        assert!(comms.deliver("a", Incoming::Closed));
        assert!(!comms.deliver("a", Incoming::Message(&json!({}))));
        assert_eq!(comms.info(None), json!({}));
    }

    #[test]
    fn the_state_keeps_every_change() {
        let comms = Comms::default();
        let mut first = Map::new();
        first.insert("value".into(), json!("a"));
        first.insert("disabled".into(), json!(false));
        comms.open("w", "jupyter.widget", first, None);
        let mut change = Map::new();
        change.insert("value".into(), json!("b"));
        comms.update("w", &change);
        let (target, state) = comms.state("w").expect("open");
        assert_eq!(target, "jupyter.widget");
        assert_eq!(
            Value::Object(state),
            json!({ "value": "b", "disabled": false })
        );
    }
}
