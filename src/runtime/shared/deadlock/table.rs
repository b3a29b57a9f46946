//! The waits-for table of deadlock detection: a fixed array of slots in the shared memory,
//! one per thread (of any process) waiting for a lock, each saying who waits for which
//! lock; how a slot is claimed, published, read consistently and reclaimed from a dead
//! process (the invariants below).

use crate::runtime::holders::{self, liveness, my_ids, Liveness};
use crate::runtime::locks::LockRef;
use crate::runtime::shm::{arena, Arena};
use std::sync::atomic::{
    fence, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::OnceLock;

/// Longest labels and message kept in a slot (longer ones are cut at a character).
pub(super) const THREAD_LABEL: usize = 96;
pub(super) const PROCESS_LABEL: usize = 96;
pub(super) const MESSAGE: usize = 1536;
/// At most this many threads are registered as waiting at once; more wait unwatched.
pub(super) const MAX_SLOTS: usize = 512;
/// A longer path is not followed (it cannot be a cycle of this many waiters in practice).
pub(super) const MAX_CYCLE: usize = 256;
/// `waiter` of a slot being cleared after its process died.
pub(super) const RECLAIMING: u64 = u64::MAX;

/// States of `Slot::verdict` (its low two bits; the rest is the generation).
pub(super) const NONE: u64 = 0;
pub(super) const WRITING: u64 = 1;
pub(super) const READY: u64 = 2;
pub(super) const CLOSED: u64 = 3;

/// Bytes before the first slot.
pub(super) const HEADER_BYTES: usize = 64;

#[repr(C)]
pub(super) struct TableHeader {
    /// Number of slots; written once, before any worker process exists.
    pub(super) slots: AtomicU64,
    /// One more than the highest slot ever claimed (only grows): scans stop there.
    pub(super) used: AtomicU64,
}

// The waits-for table: a header and a fixed array of slots, reserved in the shared memory
// when it is created (`reserve_table`) and never moved or freed, one slot per thread (of
// any process) that is waiting for a lock. All fields are atomics: other processes read
// them at any time. Control words use SeqCst (this path runs only after a wait, so its
// cost does not matter); text bytes are Relaxed, ordered by the control words around them.
//
// Invariants:
// 1. `waiter` is 0 when the slot is free, RECLAIMING while a dead process's slot is being
//    cleared, and otherwise `pid << 32 | tid` of the one thread that owns the slot. A slot
//    is claimed only by CAS from 0 and freed only by its owner, except that anyone may CAS
//    a dead process's id to RECLAIMING, clear the slot and free it.
// 2. While a slot is free or RECLAIMING, `lock` is 0. The owner writes `lock` last, after
//    `generation`, `verdict`, `start` and the labels: a nonzero `lock` publishes the entry,
//    and the published fields do not change until the owner frees the slot (which stores
//    `lock` = 0 before `waiter` = 0).
// 3. `generation` grows by one at every claim, while `lock` is still 0, so (slot,
//    generation) names one wait and is never reused. A reader that sees the same
//    generation and waiter before and after reading the other fields, with `lock` nonzero,
//    has read one wait's published entry (`Table::read`).
// 4. While its entry is published, the owner is blocked in `acquire` of `lock`: it releases
//    nothing and can take no lock but `lock` itself (then it frees the slot). A lock it is
//    seen holding during one wait, it holds until that wait ends. This is what makes a
//    cycle seen piecewise real (see `validate`).
// 5. `verdict` is `generation << 2 | state`. The owner sets NONE when it claims and CLOSED
//    when it frees the slot; a detector moves NONE → WRITING by CAS (so one detector
//    writes `message`), writes the message, then WRITING → READY by CAS. A verdict found
//    for one wait therefore never reaches another wait, of this thread or of the slot's
//    next owner (ABA is ruled out by the generation).
// 6. `start` is the start time of the owner's process (from /proc). An entry whose process
//    is gone, or whose pid now names a process started at another time, is stale: it is
//    never followed, and its slot may be reclaimed. A thread claiming a slot first clears
//    stale slots with its own id (the same pid and tid in an earlier process).
#[repr(C, align(64))]
pub(super) struct Slot {
    pub(super) waiter: AtomicU64,
    pub(super) generation: AtomicU64,
    /// Offset of the lock waited for; 0 while nothing is published.
    pub(super) lock: AtomicU64,
    pub(super) start: AtomicU64,
    pub(super) verdict: AtomicU64,
    pub(super) thread_len: AtomicU32,
    pub(super) process_len: AtomicU32,
    pub(super) message_len: AtomicU32,
    /// How the owner is called: `Thread-2 (work)` or `MainThread` …
    pub(super) thread: [AtomicU8; THREAD_LABEL],
    /// … in `Process-1 (work)`; empty in the kernel or script itself.
    pub(super) process: [AtomicU8; PROCESS_LABEL],
    /// The deadlock report a detector left for the owner (see `verdict`).
    pub(super) message: [AtomicU8; MESSAGE],
}

/// Reserves the table in freshly created shared memory of `size` bytes (at most a 64th of
/// it); returns its offset, or 0 when it does not fit (deadlocks then hang unreported).
pub fn reserve_table(arena: &Arena, size: u64) -> u64 {
    let slot = std::mem::size_of::<Slot>();
    let slots = (size as usize / 64 / slot).min(MAX_SLOTS);
    if slots < 2 {
        return 0;
    }
    let Ok(offset) = arena.reserve(HEADER_BYTES + slots * slot, 64) else {
        return 0;
    };
    // SAFETY: `offset` was just reserved for the table, zeroed, and no one else knows it.
    unsafe {
        (*arena.at::<TableHeader>(offset))
            .slots
            .store(slots as u64, SeqCst)
    };
    offset
}

pub(super) struct Table {
    pub(super) header: &'static TableHeader,
    pub(super) slots: &'static [Slot],
}

pub(super) fn table() -> Option<&'static Table> {
    static TABLE: OnceLock<Option<Table>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let arena = arena().ok()?;
            let offset = arena.waits_for_table();
            if offset == 0 {
                return None;
            }
            // SAFETY: the creator reserved the header at `offset` and set its count before
            // any worker started; the mapping stays for the life of the process.
            let header = unsafe { &*arena.at::<TableHeader>(offset) };
            let count = header.slots.load(SeqCst) as usize;
            let bytes = HEADER_BYTES + count * std::mem::size_of::<Slot>();
            if !arena.contains(offset, bytes) {
                return None;
            }
            // SAFETY: checked to lie in the mapping; the slots are atomics, zeroed at creation.
            let slots = unsafe {
                std::slice::from_raw_parts(arena.at::<Slot>(offset + HEADER_BYTES as u64), count)
            };
            Some(Table { header, slots })
        })
        .as_ref()
}

thread_local! {
    /// This process's start time. Per thread, not per process: a forked worker must not
    /// inherit its fork server's (script threads never exist before a fork).
    static MY_START: u64 = match liveness(my_ids().0) {
        Liveness::Started(start) => start,
        Liveness::Gone | Liveness::Unknown => 0,
    };
}

pub(super) fn my_start() -> u64 {
    MY_START.with(|s| *s)
}

pub(super) fn store_text(bytes: &[AtomicU8], len: &AtomicU32, text: &str) {
    let text = cut(text, bytes.len());
    for (cell, byte) in bytes.iter().zip(text.bytes()) {
        cell.store(byte, Relaxed);
    }
    len.store(text.len() as u32, SeqCst);
}

pub(super) fn load_text(bytes: &[AtomicU8], len: &AtomicU32) -> String {
    let len = (len.load(SeqCst) as usize).min(bytes.len());
    let text: Vec<u8> = bytes[..len].iter().map(|b| b.load(Relaxed)).collect();
    String::from_utf8_lossy(&text).into_owned()
}

/// `text` cut to at most `max` bytes at a character boundary, marked with "…" if cut.
pub(super) fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

/// One published wait, as read from a slot.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) index: usize,
    pub(super) generation: u64,
    pub(super) pid: i32,
    pub(super) tid: i32,
    pub(super) lock: LockRef,
    pub(super) start: u64,
    pub(super) thread: String,
    pub(super) process: String,
}

impl Entry {
    /// Whether the entry is the wait of a running process (not a stale one, invariant 6).
    pub(super) fn is_current(&self) -> bool {
        if self.pid == my_ids().0 {
            return self.start == my_start();
        }
        match liveness(self.pid) {
            Liveness::Started(start) => start == self.start,
            Liveness::Gone => false,
            Liveness::Unknown => true,
        }
    }

    /// `Thread-2 (work)`; in a report about several processes, a worker's thread is
    /// `Thread-2 (work) in Process-1 (job)` and the thread running its job `Process-1 (job)`.
    pub(super) fn label(&self, one_process: bool) -> String {
        if one_process || self.process.is_empty() {
            self.thread.clone()
        } else if self.thread == "MainThread" {
            self.process.clone()
        } else {
            format!("{} in {}", self.thread, self.process)
        }
    }
}

impl Table {
    pub(super) fn used(&self) -> usize {
        (self.header.used.load(SeqCst) as usize).min(self.slots.len())
    }

    /// A consistent snapshot of slot `index` if it holds a published wait (invariant 3).
    pub(super) fn read(&self, index: usize) -> Option<Entry> {
        let slot = self.slots.get(index)?;
        let generation = slot.generation.load(SeqCst);
        let waiter = slot.waiter.load(SeqCst);
        let lock = slot.lock.load(SeqCst);
        if waiter == 0 || waiter == RECLAIMING || lock == 0 {
            return None;
        }
        let start = slot.start.load(SeqCst);
        let thread = load_text(&slot.thread, &slot.thread_len);
        let process = load_text(&slot.process, &slot.process_len);
        // The text was read with Relaxed loads: keep them before the second look.
        fence(SeqCst);
        if slot.generation.load(SeqCst) != generation || slot.waiter.load(SeqCst) != waiter {
            return None;
        }
        let (pid, tid) = holders::unpack(waiter);
        Some(Entry {
            index,
            generation,
            pid,
            tid,
            lock: LockRef::from_offset(lock).ok()?,
            start,
            thread,
            process,
        })
    }

    /// Whether `entry`'s wait is still going on, for the same lock.
    pub(super) fn unchanged(&self, entry: &Entry) -> bool {
        self.read(entry.index).is_some_and(|now| {
            now.generation == entry.generation
                && (now.pid, now.tid) == (entry.pid, entry.tid)
                && now.lock == entry.lock
        })
    }

    /// The current wait of thread (pid, tid), if it is waiting.
    pub(super) fn lookup(&self, pid: i32, tid: i32) -> Option<Entry> {
        let id = holders::pack((pid, tid));
        (0..self.used())
            .filter(|&i| self.slots[i].waiter.load(SeqCst) == id)
            .filter_map(|i| self.read(i))
            .find(|e| (e.pid, e.tid) == (pid, tid) && e.is_current())
    }

    /// Frees slot `index` held by `id` (a thread of a process that is gone).
    pub(super) fn clear(&self, index: usize, id: u64) {
        let slot = &self.slots[index];
        if slot
            .waiter
            .compare_exchange(id, RECLAIMING, SeqCst, SeqCst)
            .is_ok()
        {
            let generation = slot.generation.load(SeqCst);
            slot.verdict.store(generation << 2 | CLOSED, SeqCst);
            slot.lock.store(0, SeqCst);
            slot.waiter.store(0, SeqCst);
        }
    }

    /// Claims a free slot for `id`, or else the slot of a process that is gone.
    pub(super) fn claim(&self, id: u64) -> Option<usize> {
        let free = (0..self.slots.len()).find(|&i| {
            let waiter = &self.slots[i].waiter;
            waiter.load(SeqCst) == 0 && waiter.compare_exchange(0, id, SeqCst, SeqCst).is_ok()
        });
        let index = match free {
            Some(index) => index,
            None => (0..self.used()).find(|&i| {
                let waiter = self.slots[i].waiter.load(SeqCst);
                if waiter == 0 || waiter == RECLAIMING {
                    return false;
                }
                let dead = match self.read(i) {
                    Some(entry) => !entry.is_current(),
                    // Not published yet: only a process that is gone can leave it so.
                    None => liveness(holders::unpack(waiter).0) == Liveness::Gone,
                };
                if dead {
                    self.clear(i, waiter);
                }
                let waiter = &self.slots[i].waiter;
                dead && waiter.compare_exchange(0, id, SeqCst, SeqCst).is_ok()
            })?,
        };
        self.header.used.fetch_max(index as u64 + 1, SeqCst);
        Some(index)
    }
}
