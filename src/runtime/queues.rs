//! `queue()` and `pipe()`: message passing between threads and processes through ring
//! buffers in shared memory. Items are encoded like `spawn_process` arguments, so data
//! is copied and shared objects (locks, values, other queues…) cross by reference.

use super::shm::{arena, Monitor};
use super::transfer;
use rhai::plugin::*;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Bytes of buffer behind each queue and each direction of a pipe.
pub const RING_BYTES: u64 = 256 * 1024;

#[repr(C)]
struct RingState {
    monitor: Monitor,
    serial: u64,
    capacity: u64,
    /// Most items it may hold (0: limited by bytes only).
    maxsize: u64,
    /// Total bytes ever read and written; `tail - head` bytes are in use.
    head: AtomicU64,
    tail: AtomicU64,
    count: AtomicU64,
    closed: AtomicU64,
}

/// A ring buffer of length-prefixed messages in shared memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ring {
    pub offset: u64,
}

const HEADER: usize = std::mem::size_of::<RingState>();

impl Ring {
    pub fn new(maxsize: u64) -> Result<Ring, String> {
        let arena = arena()?;
        let offset = arena.alloc(HEADER + RING_BYTES as usize, 16)?;
        // SAFETY: fresh, zeroed memory for the header and its buffer.
        unsafe {
            let state = arena.at::<RingState>(offset);
            Monitor::init(std::ptr::addr_of_mut!((*state).monitor));
            (*state).serial = arena.serial();
            (*state).capacity = RING_BYTES;
            (*state).maxsize = maxsize;
        }
        Ok(Ring { offset })
    }

    pub fn from_offset(offset: u64) -> Result<Ring, String> {
        if arena()?.contains(offset, HEADER + RING_BYTES as usize) {
            Ok(Ring { offset })
        } else {
            Err(format!("invalid queue reference {offset}"))
        }
    }

    fn state(&self) -> &'static RingState {
        // SAFETY: offsets come from `new` or were checked by `from_offset`.
        unsafe {
            &*arena()
                .expect("shared memory exists once a queue does")
                .at::<RingState>(self.offset)
        }
    }

    fn buffer(&self) -> *mut u8 {
        // SAFETY: the buffer follows the header inside the same allocation.
        unsafe {
            arena()
                .expect("shared memory exists")
                .at::<u8>(self.offset + HEADER as u64)
        }
    }

    /// Copies `bytes` into the ring at byte position `at` (wrapping around).
    fn copy_in(&self, at: u64, bytes: &[u8]) {
        let capacity = self.state().capacity;
        let start = (at % capacity) as usize;
        let first = bytes.len().min(capacity as usize - start);
        // SAFETY: both ranges lie inside the buffer; the monitor is held by the caller.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.buffer().add(start), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.buffer(),
                bytes.len() - first,
            );
        }
    }

    fn copy_out(&self, at: u64, len: usize) -> Vec<u8> {
        let capacity = self.state().capacity;
        let start = (at % capacity) as usize;
        let first = len.min(capacity as usize - start);
        let mut out = vec![0u8; len];
        // SAFETY: as in `copy_in`.
        unsafe {
            std::ptr::copy_nonoverlapping(self.buffer().add(start), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(self.buffer(), out.as_mut_ptr().add(first), len - first);
        }
        out
    }

    /// Waits until `ready` (checked with the monitor held) or the deadline; errors when
    /// interrupted. Returns whether `ready` became true.
    fn wait_for(
        &self,
        until: Option<Instant>,
        mut ready: impl FnMut(&RingState) -> bool,
    ) -> Result<bool, Box<EvalAltResult>> {
        let state = self.state();
        super::sync::wait_until(&state.monitor, until, || ready(state))
    }

    /// Adds a message, waiting while the ring is full.
    pub fn push(&self, message: &[u8], what: &str) -> Result<(), Box<EvalAltResult>> {
        let state = self.state();
        let needed = 4 + message.len() as u64;
        if needed > state.capacity {
            return Err(format!(
                "{what}: the item is {} bytes, more than the {} bytes a queue holds",
                message.len(),
                state.capacity
            )
            .into());
        }
        let mut closed = false;
        self.wait_for(None, |s| {
            closed = s.closed.load(Relaxed) != 0;
            let used = s.tail.load(Relaxed) - s.head.load(Relaxed);
            closed
                || (used + needed <= s.capacity
                    && (s.maxsize == 0 || s.count.load(Relaxed) < s.maxsize))
        })?;
        if closed {
            return Err(format!("{what}: it is closed").into());
        }
        let _guard = state.monitor.lock();
        let tail = state.tail.load(Relaxed);
        self.copy_in(tail, &(message.len() as u32).to_le_bytes());
        self.copy_in(tail + 4, message);
        state.tail.store(tail + needed, Relaxed);
        state.count.fetch_add(1, Relaxed);
        state.monitor.notify_all();
        Ok(())
    }

    /// Takes the oldest message; `Ok(None)` on timeout (or at once when `timeout` is
    /// zero and the ring is empty); an error when it is empty and closed.
    pub fn pop(
        &self,
        timeout: Option<Duration>,
        what: &str,
    ) -> Result<Option<Vec<u8>>, Box<EvalAltResult>> {
        let until = timeout.map(|t| Instant::now() + t);
        let mut closed = false;
        let ready = self.wait_for(until, |s| {
            closed = s.closed.load(Relaxed) != 0;
            s.count.load(Relaxed) > 0 || closed
        })?;
        if !ready {
            return Ok(None);
        }
        let state = self.state();
        let _guard = state.monitor.lock();
        if state.count.load(Relaxed) == 0 {
            return if closed {
                Err(format!("{what}: it is closed and empty").into())
            } else {
                Ok(None)
            };
        }
        let head = state.head.load(Relaxed);
        let len_bytes = self.copy_out(head, 4);
        let len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let message = self.copy_out(head + 4, len);
        state.head.store(head + 4 + len as u64, Relaxed);
        state.count.fetch_sub(1, Relaxed);
        state.monitor.notify_all();
        Ok(Some(message))
    }

    pub fn len(&self) -> u64 {
        self.state().count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn close(&self) {
        let state = self.state();
        let _guard = state.monitor.lock();
        state.closed.store(1, Relaxed);
        state.monitor.notify_all();
    }
}

fn encode(value: &Dynamic, what: &str) -> Result<Vec<u8>, Box<EvalAltResult>> {
    let json = transfer::to_json(value, what)?;
    Ok(serde_json::to_vec(&json).map_err(|e| e.to_string())?)
}

fn decode(bytes: &[u8]) -> Result<Dynamic, Box<EvalAltResult>> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("corrupt message: {e}"))?;
    Ok(transfer::from_json(&json)?)
}

fn timeout(seconds: f64) -> Result<Duration, Box<EvalAltResult>> {
    Duration::try_from_secs_f64(seconds.max(0.0))
        .map_err(|_| format!("invalid timeout {seconds}").into())
}

/// A first-in first-out queue (Python's `queue.Queue` / `multiprocessing.Queue`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Queue(pub Ring);

/// One end of a two-way pipe (Python's `multiprocessing.Pipe` connection).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conn {
    pub outgoing: Ring,
    pub incoming: Ring,
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
        Ok(super::Queue(Ring::new(0)?))
    }

    /// Creates a queue holding at most `maxsize` items: `put` waits while it is full.
    #[rhai_fn(name = "queue", return_raw)]
    pub fn queue_bounded(maxsize: i64) -> Result<super::Queue, Box<EvalAltResult>> {
        Ok(super::Queue(Ring::new(maxsize.max(0) as u64)?))
    }

    /// Adds `x` at the end (waiting while a bounded queue is full). Interruptible.
    #[rhai_fn(name = "put", return_raw, pure)]
    pub fn put(q: &mut super::Queue, x: Dynamic) -> Result<(), Box<EvalAltResult>> {
        q.0.push(&encode(&x, "put")?, "put")
    }

    /// Takes the oldest item, waiting while the queue is empty. Interruptible.
    #[rhai_fn(name = "get", return_raw, pure)]
    pub fn get(q: &mut super::Queue) -> Result<Dynamic, Box<EvalAltResult>> {
        match q.0.pop(None, "get")? {
            Some(bytes) => decode(&bytes),
            None => Err("get: no item".into()),
        }
    }

    /// Takes the oldest item, waiting at most `timeout` seconds; throws if none came.
    #[rhai_fn(name = "get", return_raw, pure)]
    pub fn get_timeout(q: &mut super::Queue, timeout: f64) -> Result<Dynamic, Box<EvalAltResult>> {
        match q.0.pop(Some(super::timeout(timeout)?), "get")? {
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
        q.0.len() as i64
    }

    /// Whether the queue is empty.
    #[rhai_fn(name = "is_empty", pure)]
    pub fn is_empty(q: &mut super::Queue) -> bool {
        q.0.is_empty()
    }

    /// Closes the queue: `put` fails from now on, `get` fails once it is empty.
    #[rhai_fn(name = "close", pure)]
    pub fn close(q: &mut super::Queue) {
        q.0.close();
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
        let there = Ring::new(0)?;
        let back = Ring::new(0)?;
        Ok(vec![
            Dynamic::from(super::Conn {
                outgoing: there,
                incoming: back,
            }),
            Dynamic::from(super::Conn {
                outgoing: back,
                incoming: there,
            }),
        ])
    }

    /// Sends `x` to the other end.
    #[rhai_fn(name = "send", return_raw, pure)]
    pub fn send(c: &mut super::Conn, x: Dynamic) -> Result<(), Box<EvalAltResult>> {
        c.outgoing.push(&encode(&x, "send")?, "send")
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

    /// Whether a value is ready to `recv`, waiting at most `timeout` seconds.
    #[rhai_fn(name = "poll", return_raw, pure)]
    pub fn poll(c: &mut super::Conn, timeout: f64) -> Result<bool, Box<EvalAltResult>> {
        let until = Some(Instant::now() + super::timeout(timeout)?);
        c.incoming.wait_for(until, |s| s.count.load(Relaxed) > 0)
    }

    /// Closes this end: the other end's `recv` fails once it has read what was sent.
    #[rhai_fn(name = "close", pure)]
    pub fn close_conn(c: &mut super::Conn) {
        c.outgoing.close();
    }

    /// Shows a pipe end as `<Conn>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn conn_to_string(_c: &mut super::Conn) -> String {
        "<Conn>".to_string()
    }
}
