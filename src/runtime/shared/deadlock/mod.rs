//! Deadlock detection between threads of any process. A thread that keeps waiting for a
//! lock (without a timeout) says in shared memory which lock it waits for, so any waiter,
//! in any process, can follow "waits for a lock → the lock is held by a thread → that
//! thread waits for a lock → …". When the path comes back to the waiter, the waiters form a
//! cycle that would hang forever: the waiter that found it gets a `deadlock detected`
//! error naming the cycle, and tells every other member, which gets the same error.
//!
//! An acquire that gets its lock at once, or at its first wake-up, never touches the table.

use crate::runtime::actors;
use crate::runtime::holders::{self, my_ids};
use crate::runtime::launch;
use crate::runtime::locks::LockRef;
use std::sync::atomic::Ordering::SeqCst;

mod table;

pub use table::reserve_table;
use table::*;

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
    let id = holders::pack((pid, tid));
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
        &actors::thread_label(pid, tid),
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
    use crate::runtime::holders::{liveness, Liveness};

    #[test]
    fn ids_round_trip() {
        for (pid, tid) in [(1, 1), (4_194_304, 4_194_303), (i32::MAX, 7)] {
            assert_eq!(holders::unpack(holders::pack((pid, tid))), (pid, tid));
        }
        assert_ne!(holders::pack((i32::MAX, i32::MAX)), RECLAIMING);
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
        let ghost = holders::pack((i32::MAX, 7));
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
