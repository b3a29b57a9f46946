//! The byte ring behind `queue()` and `pipe()`: a bounded buffer of messages in shared
//! memory, used by any number of producer and consumer threads and processes. A message
//! larger than the buffer is streamed through it in pieces, so an item of any size
//! crosses while the memory a queue holds stays fixed.

mod order;

use crate::runtime::holders::{self, my_ids, process_is_gone};
use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::sched::{self, Action, Kind, Object, Op, POLL};
use crate::runtime::shm::{arena, kind, Monitor};
use crate::runtime::sync::wait_until;
use rhai::EvalAltResult;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

pub use order::Mark;

/// Bytes of buffer behind each queue and each direction of a pipe.
pub const RING_BYTES: u64 = 256 * 1024;

/// Every message starts with its payload length, as 8 bytes.
const HEADER_BYTES: u64 = 8;
/// A producer streaming a large message starts once this much is free, so that it does
/// not wake readers for a handful of bytes.
const MIN_FIRST_PIECE: u64 = 4096;
/// `reader` value meaning "nobody reads the current message any more: discard the
/// `reader_left` bytes that remain of it" (its consumer was interrupted or died).
const DISCARD: u64 = u64::MAX;
/// What [`Ring::release_contents`] calls its gets.
const FREEING: &str = "free";

/// The shared state of one ring.
///
/// Every field below `monitor` changes only with the monitor held, and every decision
/// to act (take a message, write one) is taken in the same hold as the action, so two
/// waiters woken together cannot both act on one check. The fields are atomics only so
/// that `len()` may read `count` without the monitor; `Relaxed` suffices everywhere
/// because the monitor's mutex orders all other accesses.
///
/// Invariants, true whenever the monitor is free:
/// - `head <= tail` and `tail - head <= capacity`: the bytes `head..tail` of the stream
///   are in the buffer, at `position % capacity`.
/// - The stream is a sequence of messages, each a header and its payload. When
///   `reader == 0`, `head` is at a header (or `head == tail`).
/// - `count` is the number of messages whose header is written and not yet taken by a
///   consumer; when bounded, `count <= maxsize`.
/// - At most one producer streams at a time (`writer != 0`); its message is the last
///   in the stream, its header at `writer_header`. Messages that fit in the buffer are
///   written whole in one hold.
/// - At most one consumer reads a message in pieces (`reader != 0`); `reader_left`
///   payload bytes of it are still to be read (some may not be written yet). `reader_cut`
///   says its producer gave up, so what remains is all there will be.
/// - `closed` only goes from 0 to 1.
/// - `unfinished` counts the messages put and not yet marked done (`task_done`, for
///   `join`); a message its producer abandoned is not counted.
/// - `taken` counts the headers consumers took: message `taken` is the next one to be
///   taken, `taken + count` the next one to be put (their numbers, for [`Mark`]).
#[repr(C)]
struct RingState {
    monitor: Monitor,
    serial: u64,
    capacity: u64,
    /// Most items it may hold (0: limited by bytes only).
    maxsize: u64,
    head: AtomicU64,
    tail: AtomicU64,
    count: AtomicU64,
    closed: AtomicU64,
    writer: AtomicU64,
    writer_header: AtomicU64,
    reader: AtomicU64,
    reader_left: AtomicU64,
    reader_cut: AtomicU64,
    unfinished: AtomicU64,
    taken: AtomicU64,
}

/// A ring buffer of messages in shared memory (a view: the handles that use it, `Queue`
/// and `Conn`, hold the references that keep it alive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ring {
    pub offset: u64,
}

const STATE_BYTES: usize = std::mem::size_of::<RingState>();

/// This thread as a streaming producer or consumer: process id in the high half, so a
/// waiter can tell whether the process is still alive.
fn my_token() -> u64 {
    holders::pack(my_ids())
}

fn token_pid(token: u64) -> i32 {
    holders::unpack(token).0
}

/// Looks, at most once per [`POLL`], whether the process behind a streaming token died.
struct LivenessCheck {
    last: Option<Instant>,
}

impl LivenessCheck {
    fn new() -> Self {
        LivenessCheck { last: None }
    }

    fn is_dead(&mut self, token: u64) -> bool {
        if token == 0 || token == DISCARD {
            return false;
        }
        let pid = token_pid(token);
        if pid == my_ids().0 {
            // A thread of this process always gives up its role before it returns.
            return false;
        }
        if self.last.is_some_and(|t| t.elapsed() < POLL) {
            return false;
        }
        self.last = Some(Instant::now());
        process_is_gone(pid)
    }
}

impl Ring {
    /// A new ring and this process's reference to it.
    pub fn new(maxsize: u64) -> Result<(Ring, Held), String> {
        let arena = arena()?;
        // Only the state needs zeroes: the buffer is written before it is read.
        let offset =
            arena.alloc_object(kind::RING, STATE_BYTES + RING_BYTES as usize, STATE_BYTES)?;
        // SAFETY: fresh memory for the state (zeroed) and its buffer.
        unsafe {
            let state = arena.at::<RingState>(offset);
            Monitor::init(std::ptr::addr_of_mut!((*state).monitor));
            (*state).serial = arena.serial();
            (*state).capacity = RING_BYTES;
            (*state).maxsize = maxsize;
        }
        Ok((Ring { offset }, Held::created(offset)))
    }

    /// What a ring is to the native `what` that uses it: a pipe (`send`, `recv`, `poll`)
    /// or a queue.
    fn kind(what: &str) -> Kind {
        match what {
            "send" | "recv" | "poll" => Kind::Pipe,
            _ => Kind::Queue,
        }
    }

    /// An operation of the native `what` on this ring, for the scheduling point.
    fn op(&self, action: Action, what: &str) -> Op {
        Op::new(action, self.object(Ring::kind(what)), None)
    }

    /// The ring as scheduling points name it, as a queue or a pipe.
    pub fn object(&self, kind: Kind) -> Object {
        Object::new(kind, self.offset, self.state().serial)
    }

    /// A received ring and this process's reference to it.
    pub fn receive(offset: u64, how: Receive) -> Result<(Ring, Held), String> {
        let held = how.held(offset, &[kind::RING], STATE_BYTES + RING_BYTES as usize)?;
        Ok((Ring { offset }, held))
    }

    /// The ring at `offset`, whose last reference is gone (see [`Ring::release_contents`]).
    pub fn from_freed(offset: u64) -> Ring {
        Ring { offset }
    }

    /// Releases the references that the messages still in the ring carry, before it is
    /// freed: no one can take them any more. A message cut short is only skipped.
    pub fn release_contents(&self) {
        loop {
            match self.pop(Some(Duration::ZERO), FREEING) {
                Ok(Some(message)) => {
                    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&message) {
                        crate::runtime::transfer::release_message(&json);
                    }
                }
                Ok(None) | Err(_) => return,
            }
        }
    }

    fn state(&self) -> &'static RingState {
        // SAFETY: offsets come from `new`, or received offsets were checked by `Receive::held` (a live object of this kind and size).
        unsafe {
            &*arena()
                .expect("shared memory exists once a queue does")
                .at::<RingState>(self.offset)
        }
    }

    fn buffer(&self) -> *mut u8 {
        // SAFETY: the buffer follows the state inside the same allocation.
        unsafe {
            arena()
                .expect("shared memory exists")
                .at::<u8>(self.offset + STATE_BYTES as u64)
        }
    }

    /// Copies `bytes` into the buffer at stream position `at` (wrapping around). The
    /// caller holds the monitor and has checked there is room.
    fn copy_in(&self, at: u64, bytes: &[u8]) {
        let capacity = self.state().capacity;
        let start = (at % capacity) as usize;
        let first = bytes.len().min(capacity as usize - start);
        // SAFETY: both ranges lie inside the buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.buffer().add(start), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.buffer(),
                bytes.len() - first,
            );
        }
    }

    /// Appends `len` bytes from stream position `at` to `out`; as `copy_in`.
    fn copy_out(&self, at: u64, len: usize, out: &mut Vec<u8>) {
        let capacity = self.state().capacity;
        let start = (at % capacity) as usize;
        let first = len.min(capacity as usize - start);
        // SAFETY: as in `copy_in`; the buffer holds at least `len` bytes from `at`.
        unsafe {
            let buffer = std::slice::from_raw_parts(self.buffer(), capacity as usize);
            out.extend_from_slice(&buffer[start..start + first]);
            out.extend_from_slice(&buffer[..len - first]);
        }
    }

    fn read_header(&self, at: u64) -> u64 {
        let mut bytes = Vec::with_capacity(HEADER_BYTES as usize);
        self.copy_out(at, HEADER_BYTES as usize, &mut bytes);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes);
        u64::from_le_bytes(word)
    }

    /// Repairs what a producer or consumer that gave up (or died) left behind, and
    /// discards bytes nobody will read. Runs with the monitor held, before every check.
    fn tidy(&self, s: &RingState, liveness: &mut LivenessCheck) {
        if liveness.is_dead(s.writer.load(Relaxed)) {
            self.abandon_message(s);
        }
        if liveness.is_dead(s.reader.load(Relaxed)) {
            s.reader.store(DISCARD, Relaxed);
        }
        if s.reader.load(Relaxed) == DISCARD {
            let head = s.head.load(Relaxed);
            let skip = s.reader_left.load(Relaxed).min(s.tail.load(Relaxed) - head);
            s.head.store(head + skip, Relaxed);
            let left = s.reader_left.load(Relaxed) - skip;
            s.reader_left.store(left, Relaxed);
            if left == 0 {
                s.reader.store(0, Relaxed);
                s.reader_cut.store(0, Relaxed);
            }
            if skip > 0 {
                s.monitor.notify_all();
            }
        }
    }

    /// Ends the message being streamed by `writer` where it stands. A message no
    /// consumer has taken yet is the last in the stream, so it is cut off whole; if a
    /// consumer already took it, that consumer is told the rest will not come and drops
    /// it. Monitor held.
    fn abandon_message(&self, s: &RingState) {
        let header_at = s.writer_header.load(Relaxed);
        // Abandoned, it will never be done.
        s.unfinished.fetch_sub(1, Relaxed);
        if s.head.load(Relaxed) <= header_at {
            s.tail.store(header_at, Relaxed);
            s.count.fetch_sub(1, Relaxed);
        } else {
            let unread = s.tail.load(Relaxed) - s.head.load(Relaxed);
            s.reader_left.store(unread, Relaxed);
            s.reader_cut.store(1, Relaxed);
        }
        s.writer.store(0, Relaxed);
        s.monitor.notify_all();
    }

    /// Adds a message, waiting while the ring is full (a bounded queue: while it holds
    /// `maxsize` items). A message larger than the buffer is streamed: `push` returns
    /// once a consumer has taken all but the last piece. Interruptible; an interrupted
    /// stream is dropped whole, never delivered in part.
    pub fn push(&self, message: &[u8], what: &str) -> Result<(), Box<EvalAltResult>> {
        self.push_until(message, None, what).map(drop)
    }

    /// [`Ring::push`] that waits for room at most until `until`: `Ok(false)` if the
    /// message could not begin by then. Once it began, a streamed message is finished
    /// without that limit.
    pub fn push_until(
        &self,
        message: &[u8],
        until: Option<Instant>,
        what: &str,
    ) -> Result<bool, Box<EvalAltResult>> {
        let s = self.state();
        let length = message.len() as u64;
        let whole = HEADER_BYTES + length;
        let me = my_token();
        let mut liveness = LivenessCheck::new();
        let mut closed = false;
        // Read between waits, while `step` holds the other state.
        let streaming = std::cell::Cell::new(false);
        let mut written = 0u64;
        let mut lost = false;
        let op = || self.op(Action::Put, what);
        let mut step = || {
            self.tidy(s, &mut liveness);
            let tail = s.tail.load(Relaxed);
            let free = s.capacity - (tail - s.head.load(Relaxed));
            if !streaming.get() {
                if s.closed.load(Relaxed) != 0 {
                    self.order_closed(what);
                    closed = true;
                    return true;
                }
                let room_needed = whole.min(HEADER_BYTES + MIN_FIRST_PIECE);
                if s.writer.load(Relaxed) != 0
                    || (s.maxsize != 0 && s.count.load(Relaxed) >= s.maxsize)
                    || free < room_needed
                {
                    return false;
                }
                // With its time up (`try_put`, or a timed put that got room late), a message
                // that does not fit whole is not begun: once begun it is finished without
                // a limit, which would wait for a consumer, and `try_put` never waits.
                if whole > free && until.is_some_and(|u| Instant::now() >= u) {
                    return false;
                }
                self.order_put(s, Ring::kind(what));
                self.copy_in(tail, &length.to_le_bytes());
                s.count.fetch_add(1, Relaxed);
                s.unfinished.fetch_add(1, Relaxed);
                if whole <= free {
                    self.copy_in(tail + HEADER_BYTES, message);
                    s.tail.store(tail + whole, Relaxed);
                    s.monitor.notify_all();
                    return true;
                }
                streaming.set(true);
                s.writer.store(me, Relaxed);
                s.writer_header.store(tail, Relaxed);
                s.tail.store(tail + HEADER_BYTES, Relaxed);
                return self.stream_piece(s, message, &mut written);
            }
            if s.writer.load(Relaxed) != me {
                // Only another process's repair can take the role away, and it does so
                // only once this process is gone; stop rather than write into the stream.
                lost = true;
                return true;
            }
            self.stream_piece(s, message, &mut written)
        };
        let mut deadline = until;
        let outcome = loop {
            match wait_until(&s.monitor, deadline, op, &mut step) {
                // The time ran out in the middle of the message: finish it.
                Ok(false) if streaming.get() => deadline = None,
                outcome => break outcome,
            }
        };
        match outcome {
            Err(error) => {
                if streaming.get() {
                    let _guard = s.monitor.lock();
                    if s.writer.load(Relaxed) == me {
                        self.abandon_message(s);
                    }
                }
                Err(error)
            }
            Ok(_) if closed => Err(format!("{what}: it is closed").into()),
            Ok(_) if lost => Err(format!("{what}: the item was dropped").into()),
            Ok(done) => Ok(done),
        }
    }

    /// One message taken from the ring was dealt with (`task_done`).
    pub fn task_done(&self) -> Result<(), Box<EvalAltResult>> {
        let s = self.state();
        let op = || self.op(Action::Release, "task_done");
        let done = || {
            let _guard = s.monitor.lock();
            if s.unfinished.load(Relaxed) == 0 {
                return Err("task_done() called more times than there were items".into());
            }
            s.unfinished.fetch_sub(1, Relaxed);
            s.monitor.notify_all();
            Ok(())
        };
        sched::step(op, done, |_| String::new())
    }

    /// Waits until every message put has been marked done (`join`). Interruptible.
    pub fn join(&self) -> Result<(), Box<EvalAltResult>> {
        let s = self.state();
        let op = || self.op(Action::Join, "join");
        wait_until(&s.monitor, None, op, || s.unfinished.load(Relaxed) == 0).map(drop)
    }

    /// Whether a bounded ring holds as many messages as it may.
    pub fn is_full(&self) -> bool {
        let s = self.state();
        s.maxsize != 0 && s.count.load(Relaxed) >= s.maxsize
    }

    /// Writes as much of the streamed message as fits; true once all of it is in.
    fn stream_piece(&self, s: &RingState, message: &[u8], written: &mut u64) -> bool {
        let tail = s.tail.load(Relaxed);
        let free = s.capacity - (tail - s.head.load(Relaxed));
        let piece = free.min(message.len() as u64 - *written);
        if piece > 0 {
            let from = *written as usize;
            self.copy_in(tail, &message[from..from + piece as usize]);
            s.tail.store(tail + piece, Relaxed);
            *written += piece;
            s.monitor.notify_all();
        }
        if *written == message.len() as u64 {
            s.writer.store(0, Relaxed);
            return true;
        }
        false
    }

    /// Takes the oldest message; `Ok(None)` if none began within `timeout` (at once when
    /// it is zero); an error when the ring is empty and closed. Once a message is taken,
    /// its remaining pieces are waited for without a time limit. Interruptible; an
    /// interrupted read of a streamed message drops that message.
    pub fn pop(
        &self,
        timeout: Option<Duration>,
        what: &str,
    ) -> Result<Option<Vec<u8>>, Box<EvalAltResult>> {
        let s = self.state();
        let until = timeout.and_then(|t| Instant::now().checked_add(t));
        let me = my_token();
        let mut liveness = LivenessCheck::new();
        let mut closed = false;
        let mut taken: Option<Vec<u8>> = None;
        let mut done = false;
        loop {
            // A message in pieces is finished without the deadline that bounds the wait
            // for one to begin.
            let deadline = if taken.is_some() { None } else { until };
            let op = || self.op(Action::Get, what);
            let outcome = wait_until(&s.monitor, deadline, op, || {
                self.tidy(s, &mut liveness);
                if taken.is_none() {
                    match self.take_header(s, me, what) {
                        Some(message) => taken = Some(message),
                        None => {
                            closed = s.closed.load(Relaxed) != 0
                                && s.count.load(Relaxed) == 0
                                && s.reader.load(Relaxed) == 0;
                            if closed {
                                self.order_closed(what);
                            }
                            return closed;
                        }
                    }
                }
                let Some(message) = taken.as_mut() else {
                    return false;
                };
                if s.reader.load(Relaxed) != me {
                    // The whole message was in the buffer: read in one piece.
                    done = true;
                    return true;
                }
                let head = s.head.load(Relaxed);
                let piece = s.reader_left.load(Relaxed).min(s.tail.load(Relaxed) - head);
                if piece > 0 {
                    self.copy_out(head, piece as usize, message);
                    s.head.store(head + piece, Relaxed);
                    s.reader_left.fetch_sub(piece, Relaxed);
                    s.monitor.notify_all();
                }
                if s.reader_left.load(Relaxed) > 0 {
                    return false;
                }
                let cut = s.reader_cut.load(Relaxed) != 0;
                s.reader.store(0, Relaxed);
                s.reader_cut.store(0, Relaxed);
                if cut {
                    // Its producer gave up: drop it and wait for the next message, again
                    // within the deadline.
                    taken = None;
                    return true;
                }
                done = true;
                true
            });
            match outcome {
                Err(error) => {
                    if taken.is_some() {
                        let _guard = s.monitor.lock();
                        if s.reader.load(Relaxed) == me {
                            s.reader.store(DISCARD, Relaxed);
                            self.tidy(s, &mut liveness);
                        }
                    }
                    return Err(error);
                }
                Ok(_) if done => return Ok(taken),
                Ok(_) if closed => return Err(format!("{what}: it is closed and empty").into()),
                Ok(true) => continue,
                Ok(false) if taken.is_some() => continue,
                Ok(false) => return Ok(None),
            }
        }
    }

    /// Takes the header of the oldest message if no other consumer is reading one in
    /// pieces. A message wholly in the buffer is read at once; otherwise this thread
    /// becomes the ring's `reader`. Monitor held; `what` is the native that takes it.
    fn take_header(&self, s: &RingState, me: u64, what: &str) -> Option<Vec<u8>> {
        if s.reader.load(Relaxed) != 0 || s.count.load(Relaxed) == 0 {
            return None;
        }
        self.order_get(s, s.taken.fetch_add(1, Relaxed), what);
        let head = s.head.load(Relaxed);
        let length = self.read_header(head);
        let body = head + HEADER_BYTES;
        s.count.fetch_sub(1, Relaxed);
        s.monitor.notify_all();
        let mut message = Vec::with_capacity(length as usize);
        let still_written = s.writer.load(Relaxed) != 0 && s.writer_header.load(Relaxed) == head;
        if !still_written {
            // Every byte of a message no one is writing any more is in the buffer: a
            // streamed message longer than the buffer cannot end before a consumer has
            // taken its header.
            debug_assert!(s.tail.load(Relaxed) - body >= length);
            self.copy_out(body, length as usize, &mut message);
            s.head.store(body + length, Relaxed);
            return Some(message);
        }
        s.head.store(body, Relaxed);
        s.reader.store(me, Relaxed);
        s.reader_left.store(length, Relaxed);
        s.reader_cut.store(0, Relaxed);
        Some(message)
    }

    /// Whether a message is ready to be taken, waiting at most until `until`.
    pub fn wait_ready(&self, until: Option<Instant>) -> Result<bool, Box<EvalAltResult>> {
        let s = self.state();
        let op = || self.op(Action::Wait, "poll");
        wait_until(&s.monitor, until, op, || s.count.load(Relaxed) > 0)
    }

    /// Messages waiting to be taken.
    pub fn len(&self) -> u64 {
        self.state().count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses new messages; those already in (and one being streamed) can still be
    /// taken. A scheduling point, on the ring as `kind` (a queue or a pipe): its waiters
    /// wake up.
    pub fn close(&self, kind: Kind) -> Result<(), Box<EvalAltResult>> {
        let s = self.state();
        let close = || {
            let _guard = s.monitor.lock();
            self.order_close(kind);
            s.closed.store(1, Relaxed);
            s.monitor.notify_all();
            Ok(())
        };
        let op = || Op::new(Action::Close, self.object(kind), None);
        sched::step(op, close, |_| String::new())
    }
}
