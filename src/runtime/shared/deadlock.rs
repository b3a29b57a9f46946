//! Deadlock detection between threads of any process. A thread that keeps waiting for a
//! lock (without a timeout) says in shared memory which lock it waits for, so any waiter,
//! in any process, can follow "waits for a lock → the lock is held by a thread → that
//! thread waits for a lock → …". When the path comes back to the waiter, the waiters form a
//! cycle that would hang forever: the waiter that found it gets a `deadlock detected`
//! error naming the cycle, and tells every other member, which gets the same error.
//!
//! An acquire that gets its lock at once, or at its first wake-up, never touches the table.

use crate::runtime::locks::{liveness, my_ids, Liveness, LockRef};
use crate::runtime::shm::{arena, Arena};
use crate::runtime::{launch, threads};
use std::sync::atomic::{
    fence, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::OnceLock;

/// Longest labels and message kept in a slot (longer ones are cut at a character).
const THREAD_LABEL: usize = 96;
const PROCESS_LABEL: usize = 96;
const MESSAGE: usize = 1536;
/// At most this many threads are registered as waiting at once; more wait unwatched.
const MAX_SLOTS: usize = 512;
/// A longer path is not followed (it cannot be a cycle of this many waiters in practice).
const MAX_CYCLE: usize = 256;
/// `waiter` of a slot being cleared after its process died.
const RECLAIMING: u64 = u64::MAX;

/// States of `Slot::verdict` (its low two bits; the rest is the generation).
const NONE: u64 = 0;
const WRITING: u64 = 1;
const READY: u64 = 2;
const CLOSED: u64 = 3;

/// Bytes before the first slot.
const HEADER_BYTES: usize = 64;

#[repr(C)]
struct TableHeader {
    /// Number of slots; written once, before any worker process exists.
    slots: AtomicU64,
    /// One more than the highest slot ever claimed (only grows): scans stop there.
    used: AtomicU64,
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
struct Slot {
    waiter: AtomicU64,
    generation: AtomicU64,
    /// Offset of the lock waited for; 0 while nothing is published.
    lock: AtomicU64,
    start: AtomicU64,
    verdict: AtomicU64,
    thread_len: AtomicU32,
    process_len: AtomicU32,
    message_len: AtomicU32,
    /// How the owner is called: `Thread-2 (work)` or `MainThread` …
    thread: [AtomicU8; THREAD_LABEL],
    /// … in `Process-1 (work)`; empty in the kernel or script itself.
    process: [AtomicU8; PROCESS_LABEL],
    /// The deadlock report a detector left for the owner (see `verdict`).
    message: [AtomicU8; MESSAGE],
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

struct Table {
    header: &'static TableHeader,
    slots: &'static [Slot],
}

fn table() -> Option<&'static Table> {
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

fn pack(pid: i32, tid: i32) -> u64 {
    ((pid as u32 as u64) << 32) | tid as u32 as u64
}

fn unpack(id: u64) -> (i32, i32) {
    ((id >> 32) as u32 as i32, id as u32 as i32)
}

thread_local! {
    /// This process's start time. Per thread, not per process: a forked worker must not
    /// inherit its fork server's (script threads never exist before a fork).
    static MY_START: u64 = match liveness(my_ids().0) {
        Liveness::Started(start) => start,
        Liveness::Gone | Liveness::Unknown => 0,
    };
}

fn my_start() -> u64 {
    MY_START.with(|s| *s)
}

fn store_text(bytes: &[AtomicU8], len: &AtomicU32, text: &str) {
    let text = cut(text, bytes.len());
    for (cell, byte) in bytes.iter().zip(text.bytes()) {
        cell.store(byte, Relaxed);
    }
    len.store(text.len() as u32, SeqCst);
}

fn load_text(bytes: &[AtomicU8], len: &AtomicU32) -> String {
    let len = (len.load(SeqCst) as usize).min(bytes.len());
    let text: Vec<u8> = bytes[..len].iter().map(|b| b.load(Relaxed)).collect();
    String::from_utf8_lossy(&text).into_owned()
}

/// `text` cut to at most `max` bytes at a character boundary, marked with "…" if cut.
fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
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
struct Entry {
    index: usize,
    generation: u64,
    pid: i32,
    tid: i32,
    lock: LockRef,
    start: u64,
    thread: String,
    process: String,
}

impl Entry {
    /// Whether the entry is the wait of a running process (not a stale one, invariant 6).
    fn is_current(&self) -> bool {
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
    fn label(&self, one_process: bool) -> String {
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
    fn used(&self) -> usize {
        (self.header.used.load(SeqCst) as usize).min(self.slots.len())
    }

    /// A consistent snapshot of slot `index` if it holds a published wait (invariant 3).
    fn read(&self, index: usize) -> Option<Entry> {
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
        let (pid, tid) = unpack(waiter);
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
    fn unchanged(&self, entry: &Entry) -> bool {
        self.read(entry.index).is_some_and(|now| {
            now.generation == entry.generation
                && (now.pid, now.tid) == (entry.pid, entry.tid)
                && now.lock == entry.lock
        })
    }

    /// The current wait of thread (pid, tid), if it is waiting.
    fn lookup(&self, pid: i32, tid: i32) -> Option<Entry> {
        let id = pack(pid, tid);
        (0..self.used())
            .filter(|&i| self.slots[i].waiter.load(SeqCst) == id)
            .filter_map(|i| self.read(i))
            .find(|e| (e.pid, e.tid) == (pid, tid) && e.is_current())
    }

    /// Frees slot `index` held by `id` (a thread of a process that is gone).
    fn clear(&self, index: usize, id: u64) {
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
    fn claim(&self, id: u64) -> Option<usize> {
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
                    None => liveness(unpack(waiter).0) == Liveness::Gone,
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

/// A thread's registered wait; dropping it frees the slot.
pub struct Registration {
    table: &'static Table,
    index: usize,
    id: u64,
    generation: u64,
}

/// Registers the calling thread as waiting for `lock`. `None` when the table is missing
/// or full: the wait then goes unwatched.
pub fn start_waiting(lock: LockRef) -> Option<Registration> {
    let table = table()?;
    let (pid, tid) = my_ids();
    let id = pack(pid, tid);
    // This thread is not waiting, so a slot with its id was left by an earlier process
    // with the same pid and a thread with the same tid (invariant 6).
    for index in 0..table.used() {
        if table.slots[index].waiter.load(SeqCst) == id {
            table.clear(index, id);
        }
    }
    let index = table.claim(id)?;
    let slot = &table.slots[index];
    slot.lock.store(0, SeqCst);
    let generation = slot.generation.fetch_add(1, SeqCst) + 1;
    slot.verdict.store(generation << 2 | NONE, SeqCst);
    slot.start.store(my_start(), SeqCst);
    store_text(
        &slot.thread,
        &slot.thread_len,
        &threads::thread_label(pid, tid),
    );
    store_text(
        &slot.process,
        &slot.process_len,
        &launch::process_label().unwrap_or_default(),
    );
    slot.lock.store(lock.offset, SeqCst);
    Some(Registration {
        table,
        index,
        id,
        generation,
    })
}

impl Registration {
    fn slot(&self) -> &Slot {
        &self.table.slots[self.index]
    }

    /// The report of a deadlock that another waiter found this wait in.
    pub fn verdict(&self) -> Option<String> {
        let slot = self.slot();
        (slot.verdict.load(SeqCst) == self.generation << 2 | READY)
            .then(|| load_text(&slot.message, &slot.message_len))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let slot = self.slot();
        // Only a slot judged dead is taken from its owner, and a running process is never
        // judged so; still, never free a slot that someone else owns now.
        if slot.waiter.load(SeqCst) == self.id {
            slot.verdict.store(self.generation << 2 | CLOSED, SeqCst);
            slot.lock.store(0, SeqCst);
            let _ = slot.waiter.compare_exchange(self.id, 0, SeqCst, SeqCst);
        }
    }
}

/// The report if the registered wait is part of a cycle: found now (the other members are
/// told), or found earlier by another member. Must not be called with a lock's monitor
/// held: it takes lock monitors, one at a time.
pub fn check(registration: &Registration) -> Option<String> {
    if let Some(message) = registration.verdict() {
        return Some(message);
    }
    let table = registration.table;
    let me = table.read(registration.index)?;
    let cycle = find_cycle(table, me)?;
    if !validate(table, &cycle) {
        return None;
    }
    let message = describe(&cycle);
    // This thread reports the cycle unless a detector elsewhere is telling it already
    // (then its message arrives with a later check).
    if !claim_verdict(registration.slot(), registration.generation) {
        return None;
    }
    for member in &cycle[1..] {
        tell(table, member, &message);
    }
    Some(message)
}

/// Follows "waits for a lock → held by a thread → waits for a lock…" from `me`; the path
/// when it leads back to `me` through at least one other thread. (A thread waiting for a
/// lock it holds itself is never in the table: see `self_wait`.)
fn find_cycle(table: &Table, me: Entry) -> Option<Vec<Entry>> {
    let start = (me.pid, me.tid);
    let mut path = vec![me];
    loop {
        let owner = path.last()?.lock.owner()?;
        if owner == start {
            return (path.len() > 1).then_some(path);
        }
        if path.len() >= MAX_CYCLE || path.iter().any(|e| (e.pid, e.tid) == owner) {
            return None;
        }
        path.push(table.lookup(owner.0, owner.1)?);
    }
}

/// Whether the cycle that `find_cycle` saw piece by piece really exists. It read member
/// i's wait, then (later) who holds the lock member i-1 waits for; the lock may have
/// changed hands in between. So, with every wait already read: each lock is checked to
/// be held by the next member now, and then each wait to be still the same one. Each
/// member was then waiting all along, from its first read to its last, and held the lock
/// seen in between; by invariant 4 it held it for the rest of that wait. So when the last
/// loop began, every member waited for a lock that the next member held: a real cycle,
/// which nothing but an interrupt (or another thread releasing a plain lock for its
/// holder) can break.
fn validate(table: &Table, cycle: &[Entry]) -> bool {
    let n = cycle.len();
    let held_by_next = cycle.iter().enumerate().all(|(i, member)| {
        let next = &cycle[(i + 1) % n];
        member.lock.owner() == Some((next.pid, next.tid))
    });
    held_by_next && cycle.iter().all(|member| table.unchanged(member))
}

/// `deadlock detected: A waits for Lock-1; B waits for Lock-2; Lock-1 is held by B; …`,
/// starting from the thread that found it.
fn describe(cycle: &[Entry]) -> String {
    let one_process = cycle.iter().all(|e| e.pid == cycle[0].pid);
    let name = |e: &Entry| e.label(one_process);
    let mut parts: Vec<String> = cycle
        .iter()
        .map(|e| format!("{} waits for {}", name(e), e.lock.name()))
        .collect();
    for (i, member) in cycle.iter().enumerate() {
        let holder = &cycle[(i + 1) % cycle.len()];
        parts.push(format!(
            "{} is held by {}",
            member.lock.name(),
            name(holder)
        ));
    }
    format!("deadlock detected: {}", parts.join("; "))
}

/// Takes the right to write the verdict of the wait `generation` in `slot`: false when
/// another detector has it already, or the wait has ended.
fn claim_verdict(slot: &Slot, generation: u64) -> bool {
    slot.verdict
        .compare_exchange(
            generation << 2 | NONE,
            generation << 2 | WRITING,
            SeqCst,
            SeqCst,
        )
        .is_ok()
}

/// Leaves `message` for `member`'s wait, unless another detector got there first or the
/// wait has ended, and wakes it.
fn tell(table: &Table, member: &Entry, message: &str) {
    let slot = &table.slots[member.index];
    let generation = member.generation;
    if !claim_verdict(slot, generation) {
        return;
    }
    store_text(&slot.message, &slot.message_len, message);
    let _ = slot.verdict.compare_exchange(
        generation << 2 | WRITING,
        generation << 2 | READY,
        SeqCst,
        SeqCst,
    );
    member.lock.wake_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for (pid, tid) in [(1, 1), (4_194_304, 4_194_303), (i32::MAX, 7)] {
            assert_eq!(unpack(pack(pid, tid)), (pid, tid));
        }
        assert_ne!(pack(i32::MAX, i32::MAX), RECLAIMING);
    }

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcdef", 5), "ab…");
        assert_eq!(cut("ééé", 5), "é…");
    }

    #[test]
    fn own_start_time_is_known() {
        assert!(matches!(
            liveness(std::process::id() as i32),
            Liveness::Started(start) if start == my_start()
        ));
        assert_eq!(liveness(i32::MAX), Liveness::Gone);
    }

    #[test]
    fn labels_name_the_process_only_when_the_cycle_spans_several() {
        let entry = |thread: &str, process: &str| Entry {
            index: 0,
            generation: 1,
            pid: 1,
            tid: 1,
            lock: LockRef { offset: 4096 },
            start: 0,
            thread: thread.into(),
            process: process.into(),
        };
        assert_eq!(entry("MainThread", "").label(false), "MainThread");
        assert_eq!(
            entry("MainThread", "Process-1 (f)").label(false),
            "Process-1 (f)"
        );
        assert_eq!(
            entry("Thread-2 (g)", "Process-1 (f)").label(false),
            "Thread-2 (g) in Process-1 (f)"
        );
        assert_eq!(
            entry("Thread-2 (g)", "Process-1 (f)").label(true),
            "Thread-2 (g)"
        );
    }

    /// Main holds `l1`; a helper thread holds `l2` and is registered as waiting for `l1`
    /// (without blocking, so the test can go on to change things under the detector).
    struct Crossed {
        l1: LockRef,
        l2: LockRef,
        steps: std::sync::mpsc::Sender<()>,
        done: std::sync::mpsc::Receiver<Option<String>>,
        helper: std::thread::JoinHandle<()>,
    }

    /// The helper, at each step: (1) releases `l2`, (2) reports its verdict and stops waiting.
    fn crossed() -> Crossed {
        let l1 = LockRef::new(false).unwrap();
        let l2 = LockRef::new(false).unwrap();
        assert!(l1.acquire(Some(std::time::Duration::ZERO)).unwrap());
        let (steps, step) = std::sync::mpsc::channel::<()>();
        let (report, done) = std::sync::mpsc::channel();
        let helper = std::thread::spawn(move || {
            assert!(l2.acquire(Some(std::time::Duration::ZERO)).unwrap());
            let waiting = start_waiting(l1).unwrap();
            report.send(None).unwrap();
            step.recv().unwrap();
            l2.release().unwrap();
            report.send(None).unwrap();
            step.recv().unwrap();
            report.send(waiting.verdict()).unwrap();
        });
        done.recv().unwrap();
        Crossed {
            l1,
            l2,
            steps,
            done,
            helper,
        }
    }

    #[test]
    fn a_real_cycle_is_reported_to_both_members() {
        let crossed = crossed();
        let me = start_waiting(crossed.l2).unwrap();
        let message = check(&me).expect("a cycle");
        assert!(message.starts_with("deadlock detected: "), "{message}");
        assert!(
            message.contains(&format!("waits for {}", crossed.l1.name())),
            "{message}"
        );
        assert!(
            message.contains(&format!("waits for {}", crossed.l2.name())),
            "{message}"
        );
        crossed.steps.send(()).unwrap();
        crossed.done.recv().unwrap();
        crossed.steps.send(()).unwrap();
        assert_eq!(
            crossed.done.recv().unwrap().as_deref(),
            Some(message.as_str())
        );
        crossed.helper.join().unwrap();
        drop(me);
        crossed.l1.release().unwrap();
    }

    #[test]
    fn a_cycle_seen_before_a_release_is_not_reported_after_it() {
        let crossed = crossed();
        let me = start_waiting(crossed.l2).unwrap();
        let table = me.table;
        let cycle = find_cycle(table, table.read(me.index).unwrap()).expect("a cycle");
        assert!(validate(table, &cycle));
        // The helper frees `l2`: what was read a moment ago is a cycle no more.
        crossed.steps.send(()).unwrap();
        crossed.done.recv().unwrap();
        assert!(!validate(table, &cycle));
        assert_eq!(check(&me), None);
        crossed.steps.send(()).unwrap();
        assert_eq!(
            crossed.done.recv().unwrap(),
            None,
            "the helper was told nothing"
        );
        crossed.helper.join().unwrap();
        drop(me);
        crossed.l1.release().unwrap();
    }

    #[test]
    fn a_new_wait_is_not_the_old_one_even_for_the_same_lock() {
        let lock = LockRef::new(false).unwrap();
        let first = start_waiting(lock).unwrap();
        let table = first.table;
        let seen = table.read(first.index).unwrap();
        assert!(table.unchanged(&seen));
        drop(first);
        assert!(!table.unchanged(&seen));
        let second = start_waiting(lock).unwrap();
        assert!(!table.unchanged(&seen));
        // A verdict for the old wait cannot be left in the slot.
        tell(table, &seen, "stale");
        assert_eq!(second.verdict(), None);
    }

    #[test]
    fn the_wait_of_a_process_that_is_gone_is_not_followed_and_can_be_reclaimed() {
        let lock = LockRef::new(false).unwrap();
        let table = table().unwrap();
        // A slot as a killed process would leave it (no process has pid i32::MAX).
        let ghost = pack(i32::MAX, 7);
        let index = table.claim(ghost).unwrap();
        let slot = &table.slots[index];
        slot.generation.fetch_add(1, SeqCst);
        slot.start.store(1, SeqCst);
        slot.lock.store(lock.offset, SeqCst);
        let entry = table.read(index).unwrap();
        assert!(!entry.is_current());
        assert!(table.lookup(i32::MAX, 7).is_none());
        table.clear(index, ghost);
        assert!(table.read(index).is_none());
        assert_eq!(slot.waiter.load(SeqCst), 0);
    }
}
