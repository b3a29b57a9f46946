//! `queue()` and `pipe()`: message passing between threads and processes through ring
//! buffers in shared memory. Items are encoded like `spawn_process` arguments, so data
//! is copied and shared objects (locks, values, other queues…) cross by reference.

use crate::runtime::lifetime::Held;
pub use crate::runtime::ring::Ring;
use crate::runtime::sched::{self, Kind};
use crate::runtime::time::seconds;
use crate::runtime::transfer;
use rhai::plugin::*;
use std::time::{Duration, Instant};

/// Sends `value` through `ring`; the message carries its own references to the shared
/// objects in it, released again if it cannot be sent.
fn send_item(ring: &Ring, value: &Dynamic, what: &str) -> Result<(), Box<EvalAltResult>> {
    send_item_until(ring, value, None, what).map(drop)
}

/// [`send_item`] waiting for room at most until `until`: `Ok(false)` if there was none.
fn send_item_until(
    ring: &Ring,
    value: &Dynamic,
    until: Option<Instant>,
    what: &str,
) -> Result<bool, Box<EvalAltResult>> {
    let json = transfer::to_message(value, &format!("{what}: the item"))?;
    let sent = serde_json::to_vec(&json)
        .map_err(|e| e.to_string().into())
        .and_then(|bytes| ring.push_until(&bytes, until, what));
    if !matches!(sent, Ok(true)) {
        transfer::release_message(&json);
    }
    sent
}

/// Decodes a received message, adopting the references it carries.
fn decode(bytes: &[u8]) -> Result<Dynamic, Box<EvalAltResult>> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("corrupt message: {e}"))?;
    Ok(transfer::from_message(&json)?)
}

/// A first-in first-out queue (Python's `queue.Queue` / `multiprocessing.Queue`).
#[derive(Clone, Debug, PartialEq)]
pub struct Queue(pub Ring, pub Held);

/// One end of a two-way pipe (Python's `multiprocessing.Pipe` connection), and this
/// process's references to both of its rings.
#[derive(Clone, Debug, PartialEq)]
pub struct Conn {
    pub outgoing: Ring,
    pub incoming: Ring,
    pub held: (Held, Held),
}

#[export_module]
pub mod queue_api {
    use super::*;

    pub type Queue = super::Queue;
    pub type Conn = super::Conn;

    /// Creates a queue for passing values between threads and processes.
    /// `put(x)` adds, `get()` takes the oldest (waiting while it is empty).
    #[rhai_fn(return_raw)]
    pub fn queue() -> Result<super::Queue, Box<EvalAltResult>> {
        let (ring, held) = Ring::new(0)?;
        Ok(super::Queue(ring, held))
    }

    /// Creates a queue holding at most `maxsize` items: `put` waits while it is full.
    #[rhai_fn(name = "queue", return_raw)]
    pub fn queue_bounded(maxsize: i64) -> Result<super::Queue, Box<EvalAltResult>> {
        let (ring, held) = Ring::new(maxsize.max(0) as u64)?;
        Ok(super::Queue(ring, held))
    }

    /// Adds `x` at the end (waiting while a bounded queue is full). Interruptible.
    #[rhai_fn(name = "put", return_raw, pure)]
    pub fn put(q: &mut super::Queue, x: Dynamic) -> Result<(), Box<EvalAltResult>> {
        super::send_item(&q.0, &x, "put")
    }

    /// Adds `x` at the end, waiting at most `timeout` seconds (int or float) while a
    /// bounded queue is full; throws if it stayed full (Python's `queue.Full`).
    #[rhai_fn(name = "put", return_raw, pure)]
    pub fn put_timeout(
        q: &mut super::Queue,
        x: Dynamic,
        timeout: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let seconds = seconds(&timeout, "put")?;
        let until = crate::runtime::time::until(seconds, "put")?;
        if super::send_item_until(&q.0, &x, until, "put")? {
            Ok(())
        } else {
            Err(format!("put: the queue stayed full for {seconds} s").into())
        }
    }

    /// Adds `x` if there is room now; returns whether it did (never waits).
    #[rhai_fn(name = "try_put", return_raw, pure)]
    pub fn try_put(q: &mut super::Queue, x: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        super::send_item_until(&q.0, &x, Some(Instant::now()), "try_put")
    }

    /// Marks one item taken with `get` as dealt with: `join()` returns once every item
    /// put has been (Python's `task_done`). Calling it more often than items were put is
    /// an error.
    #[rhai_fn(name = "task_done", return_raw, pure)]
    pub fn task_done(q: &mut super::Queue) -> Result<(), Box<EvalAltResult>> {
        q.0.task_done()
    }

    /// Waits until every item put has been marked done with `task_done()`. Interruptible.
    #[rhai_fn(name = "join", return_raw, pure)]
    pub fn join(q: &mut super::Queue) -> Result<(), Box<EvalAltResult>> {
        q.0.join()
    }

    /// Whether a bounded queue holds `maxsize` items (`put` would wait).
    #[rhai_fn(get = "full", pure)]
    pub fn full(q: &mut super::Queue) -> bool {
        sched::look(|| q.0.object(Kind::Queue));
        q.0.is_full()
    }

    /// Takes the oldest item, waiting while the queue is empty. Interruptible.
    #[rhai_fn(name = "get", return_raw, pure)]
    pub fn get(q: &mut super::Queue) -> Result<Dynamic, Box<EvalAltResult>> {
        match q.0.pop(None, "get")? {
            Some(bytes) => decode(&bytes),
            None => Err("get: no item".into()),
        }
    }

    /// Takes the oldest item, waiting at most `timeout` seconds (int or float); throws if
    /// none came.
    #[rhai_fn(name = "get", return_raw, pure)]
    pub fn get_timeout(
        q: &mut super::Queue,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let timeout = seconds(&timeout, "get")?;
        match q
            .0
            .pop(Some(crate::runtime::time::duration(timeout, "get")?), "get")?
        {
            Some(bytes) => decode(&bytes),
            None => Err(format!("get: the queue stayed empty for {timeout} s").into()),
        }
    }

    /// Takes the oldest item if there is one, else returns `()` at once.
    #[rhai_fn(name = "try_get", return_raw, pure)]
    pub fn try_get(q: &mut super::Queue) -> Result<Dynamic, Box<EvalAltResult>> {
        match q.0.pop(Some(Duration::ZERO), "try_get")? {
            Some(bytes) => decode(&bytes),
            None => Ok(Dynamic::UNIT),
        }
    }

    /// The number of items in the queue.
    #[rhai_fn(name = "len", pure)]
    pub fn len(q: &mut super::Queue) -> i64 {
        sched::look(|| q.0.object(Kind::Queue));
        q.0.len() as i64
    }

    /// Whether the queue is empty.
    #[rhai_fn(name = "is_empty", pure)]
    pub fn is_empty(q: &mut super::Queue) -> bool {
        sched::look(|| q.0.object(Kind::Queue));
        q.0.is_empty()
    }

    /// Closes the queue: `put` fails from now on, `get` fails once it is empty (and a
    /// `get` or `put` waiting for it wakes up and fails).
    #[rhai_fn(name = "close", return_raw, pure)]
    pub fn close(q: &mut super::Queue) -> Result<(), Box<EvalAltResult>> {
        q.0.close(Kind::Queue)
    }

    /// Shows a queue as `<Queue, 3 items>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn queue_to_string(q: &mut super::Queue) -> String {
        format!("<Queue, {} items>", q.0.len())
    }

    /// Creates a two-way pipe and returns its two ends `[a, b]`: what `a.send(x)` sends,
    /// `b.recv()` receives, and the other way round.
    #[rhai_fn(return_raw)]
    pub fn pipe() -> Result<rhai::Array, Box<EvalAltResult>> {
        let (there, held_there) = Ring::new(0)?;
        let (back, held_back) = Ring::new(0)?;
        Ok(vec![
            Dynamic::from(super::Conn {
                outgoing: there,
                incoming: back,
                held: (held_there.clone(), held_back.clone()),
            }),
            Dynamic::from(super::Conn {
                outgoing: back,
                incoming: there,
                held: (held_back, held_there),
            }),
        ])
    }

    /// Sends `x` to the other end.
    #[rhai_fn(name = "send", return_raw, pure)]
    pub fn send(c: &mut super::Conn, x: Dynamic) -> Result<(), Box<EvalAltResult>> {
        super::send_item(&c.outgoing, &x, "send")
    }

    /// Receives the next value from the other end, waiting for one. Interruptible;
    /// throws when the other end was closed and nothing is left.
    #[rhai_fn(name = "recv", return_raw, pure)]
    pub fn recv(c: &mut super::Conn) -> Result<Dynamic, Box<EvalAltResult>> {
        match c.incoming.pop(None, "recv")? {
            Some(bytes) => decode(&bytes),
            None => Err("recv: nothing received".into()),
        }
    }

    /// Whether a value is ready to `recv`, waiting at most `timeout` seconds (int or
    /// float).
    #[rhai_fn(name = "poll", return_raw, pure)]
    pub fn poll(c: &mut super::Conn, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let until = crate::runtime::time::until(seconds(&timeout, "poll")?, "poll")?;
        c.incoming.wait_ready(until)
    }

    /// Closes this end: the other end's `recv` fails once it has read what was sent.
    #[rhai_fn(name = "close", return_raw, pure)]
    pub fn close_conn(c: &mut super::Conn) -> Result<(), Box<EvalAltResult>> {
        c.outgoing.close(Kind::Pipe)
    }

    /// Shows a pipe end as `<Conn>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn conn_to_string(_c: &mut super::Conn) -> String {
        "<Conn>".to_string()
    }
}
