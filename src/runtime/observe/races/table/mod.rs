//! The race detector's state, in shared memory so that every process of a check keeps
//! it together: each worker's vector clock, the clocks that synchronisation objects and
//! queue messages (`messages`) carry, the last accesses of every shared value and array
//! element, and the races found. One process-shared mutex guards it all; it is reserved
//! once (never freed, so a late worker process can never write into memory that was
//! given to something else) and every check or explored schedule starts a new *run*,
//! which makes the entries of the previous one stale without clearing megabytes.
//!
//! The check itself is FastTrack's without its read-sharing shortcut: for each location
//! the last write, and each worker's last read, as (worker, moment, site, locks held).

mod accesses;
mod messages;

use super::clock::{VectorClock, WORKERS};
use crate::runtime::ring::Mark;
use crate::runtime::sched::{Action, Kind, Object, Op, Part, Site};
use crate::runtime::shm::{arena, Arena, Monitor};
use std::cell::{Cell as StdCell, UnsafeCell};
use std::sync::atomic::{AtomicU64, Ordering};

const SYNC: usize = 1024;
/// Queue and pipe messages followed at once (put and not yet taken).
pub const MESSAGES: usize = 2048;
const CELLS: usize = 2048;
const SITES: usize = 1024;
const LOCKS: usize = 64;
const REPORTS: usize = 128;
const NAME: usize = 48;
const SOURCE: usize = 56;
/// Locks a report remembers for each side.
const HELD: usize = 4;

/// Every kind, so that an entry can store one as a byte.
const KINDS: [Kind; 16] = [
    Kind::Value,
    Kind::Array,
    Kind::Lock,
    Kind::RLock,
    Kind::Semaphore,
    Kind::Event,
    Kind::Condition,
    Kind::Barrier,
    Kind::Queue,
    Kind::Pipe,
    Kind::Thread,
    Kind::Process,
    Kind::Future,
    Kind::Results,
    Kind::Pool,
    Kind::Clock,
];

fn kind_code(kind: Kind) -> u8 {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0) as u8 + 1
}

fn kind_of(code: u8) -> Kind {
    KINDS
        .get((code as usize).wrapping_sub(1))
        .copied()
        .unwrap_or(Kind::Value)
}

const READ: u8 = 1;
const WRITE: u8 = 2;
/// An atomic read-modify-write (`add`): two of them never race.
const UPDATE: u8 = 3;

/// An object as an entry stores it.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Key {
    kind: u8,
    id: u64,
    slot: u64,
    serial: u64,
}

impl Key {
    fn of(object: &Object) -> Key {
        Key {
            kind: kind_code(object.kind),
            id: object.id,
            slot: object.slot,
            serial: object.serial,
        }
    }

    fn object(&self) -> Object {
        Object::new(kind_of(self.kind), self.id, self.serial).element(self.slot)
    }

    fn hash(&self) -> usize {
        let mut h = (self.kind as u64) ^ self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= self.slot.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        (h ^ (h >> 29)) as usize
    }
}

/// One access: who, which of its moments, where, and the locks it held (bits of the
/// run's lock table).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Access {
    worker: u16,
    op: u8,
    time: u32,
    site: u32,
    locks: u64,
}

#[repr(C)]
struct Worker {
    name_len: u32,
    name: [u8; NAME],
    /// The locks it holds, as bits of the run's lock table.
    held: u64,
    clock: VectorClock,
}

#[repr(C)]
struct SyncClock {
    run: u64,
    key: Key,
    clock: VectorClock,
}

#[repr(C)]
struct Location {
    run: u64,
    key: Key,
    write: Access,
    reads: [Access; WORKERS],
}

#[repr(C)]
struct SiteEntry {
    hash: u64,
    line: u32,
    column: u32,
    len: u32,
    source: [u8; SOURCE],
}

#[repr(C)]
struct LockEntry {
    run: u64,
    key: Key,
}

/// One side of a stored report, with its locks resolved (the lock table is per run).
#[repr(C)]
#[derive(Clone, Copy)]
struct Side {
    op: u8,
    site: u32,
    name_len: u32,
    name: [u8; NAME],
    locks: [Key; HELD],
}

#[repr(C)]
struct Report {
    key: Key,
    first: Side,
    second: Side,
    count: u64,
}

/// What a check could not follow, for the report's footnote.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Lost {
    pub workers: u32,
    pub locations: u32,
    pub objects: u32,
    pub reports: u32,
    /// Messages whose clock went with their ring's spill clock.
    pub messages: u32,
}

#[repr(C)]
struct Data {
    /// The current run (0: none yet), and the last one handed out.
    run: u64,
    workers: u32,
    sites: u32,
    reports: u32,
    lost: Lost,
    worker: [Worker; WORKERS],
    sync: [SyncClock; SYNC],
    messages: [messages::MessageClock; MESSAGES],
    cells: [Location; CELLS],
    site: [SiteEntry; SITES],
    locks: [LockEntry; LOCKS],
    report: [Report; REPORTS],
}

#[repr(C)]
pub struct Table {
    monitor: Monitor,
    /// The run in progress, 0 when no check is on: a worker process looks here first.
    active: AtomicU64,
    data: UnsafeCell<Data>,
}

/// The slot of a worker beyond the [`WORKERS`] that a run follows.
const UNFOLLOWED: usize = usize::MAX;

// SAFETY: the data is only reached through `Table::with`, under the process-shared mutex.
unsafe impl Sync for Table {}

thread_local! {
    /// The calling thread's worker in the run it last worked in: (run, slot).
    static MINE: StdCell<(u64, usize)> = const { StdCell::new((0, 0)) };
}

/// One side of a race, as reports show it.
#[derive(Clone, Debug)]
pub struct RaceSide {
    pub op: &'static str,
    /// `add` for an atomic update, else the same as `op`.
    pub call: &'static str,
    pub worker: String,
    pub site: Site,
    pub locks: Vec<Object>,
    /// What the locks are called (their variables' names), once the race is named.
    pub held: Vec<String>,
}

/// A race: two accesses to `object`, at least one a write, that nothing orders.
#[derive(Clone, Debug)]
pub struct Race {
    pub object: Object,
    /// `value#3`: the object's label (numbered as the run that named it met it).
    pub label: String,
    /// `value#3 counter` and `counter.value`, once the race is named.
    pub name: String,
    pub target: String,
    pub first: RaceSide,
    pub second: RaceSide,
    pub count: u64,
}

fn text(bytes: &[u8], len: u32) -> String {
    String::from_utf8_lossy(&bytes[..(len as usize).min(bytes.len())]).into_owned()
}

fn store_text(into: &mut [u8], text: &str) -> u32 {
    let mut len = text.len().min(into.len());
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    into[..len].copy_from_slice(&text.as_bytes()[..len]);
    len as u32
}

fn site_hash(site: &Site) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    site.hash(&mut h);
    h.finish() | 1
}

impl Table {
    /// The table, reserved in shared memory the first time.
    pub fn get() -> Result<&'static Table, String> {
        let arena = arena()?;
        let offset = arena.reserve_races_table(std::mem::size_of::<Table>(), |offset| {
            // SAFETY: freshly reserved, zeroed memory for a Table, seen by no one yet.
            unsafe { Monitor::init(std::ptr::addr_of_mut!((*arena.at::<Table>(offset)).monitor)) }
        })?;
        // SAFETY: reserved above (or by an earlier call) for a Table, never freed.
        Ok(unsafe { &*arena.at::<Table>(offset) })
    }

    /// The table if a check is on (for worker processes, which never reserve it).
    pub fn if_active(arena: &Arena) -> Option<&'static Table> {
        let offset = arena.races_table();
        if offset == 0 {
            return None;
        }
        // SAFETY: the offset was published after the table was initialised.
        let table: &'static Table = unsafe { &*arena.at::<Table>(offset) };
        (table.active.load(Ordering::Acquire) != 0).then_some(table)
    }

    /// Runs `f` on the data under the mutex.
    fn with<R>(&self, f: impl FnOnce(&mut Data) -> R) -> R {
        let _guard = self.monitor.lock();
        // SAFETY: the data is only touched under the monitor, by one thread at a time.
        f(unsafe { &mut *self.data.get() })
    }

    /// Runs `f` on the data of the check in progress; nothing once it ended (a worker
    /// that outlives the check records nothing more).
    fn while_on(&self, f: impl FnOnce(&mut Data)) {
        self.with(|d| {
            if self.active.load(Ordering::Acquire) != 0 {
                f(d)
            }
        })
    }

    /// Starts a check: forgets the sites and races of the last one, and starts a run.
    pub fn start_check(&self) -> Result<(), String> {
        self.with(|d| {
            if self.active.load(Ordering::Acquire) != 0 {
                return Err("a race check is already running".to_string());
            }
            d.sites = 0;
            for entry in d.site.iter_mut() {
                entry.hash = 0;
            }
            d.reports = 0;
            d.lost = Lost::default();
            d.new_run();
            self.active.store(d.run, Ordering::Release);
            Ok(())
        })
    }

    /// Starts another run of the same check (the next explored schedule): new workers,
    /// clocks and accesses; the races found so far stay.
    pub fn next_run(&self) {
        self.with(|d| {
            d.new_run();
            self.active.store(d.run, Ordering::Release);
        })
    }

    /// Ends the check: from now on workers do not record anything.
    pub fn stop(&self) {
        self.with(|_| self.active.store(0, Ordering::Release));
    }

    /// The calling thread starts as a new worker called `name`, which learns what was
    /// handed over on `object` (the check's first worker inherits nothing).
    pub fn begin(&self, object: Option<&Object>, name: &str) {
        self.while_on(|d| {
            if let (Some(me), Some(object)) = (d.register(name), object) {
                d.acquire(me, object);
            }
        })
    }

    /// What the calling worker did so far goes to `object` (a release).
    pub fn hand_over(&self, object: &Object, name: impl FnOnce() -> String) {
        self.while_on(|d| {
            if let Some(me) = d.me(name) {
                d.release(me, object);
            }
        })
    }

    /// The calling worker learns what was handed over on `object` (an acquire).
    pub fn take_over(&self, object: &Object, name: impl FnOnce() -> String) {
        self.while_on(|d| {
            if let Some(me) = d.me(name) {
                d.acquire(me, object);
            }
        })
    }

    /// Before `op`: a release-like operation leaves the worker's clock on the object. (A
    /// queue's or pipe's put hands over its message itself, see `ring::Mark`.)
    pub fn before(&self, op: &Op, name: impl FnOnce() -> String) {
        let releases = matches!(
            (op.action, op.object.kind),
            (Action::Release, _)
                | (Action::Set, _)
                | (Action::Notify, _)
                | (Action::Update, _)
                | (Action::Wait, Kind::Barrier)
        );
        // A pool's worker passes on what its tasks did through its own hand-overs: a task
        // that takes any worker does not learn what every task before it did. A
        // semaphore's release hands over the permits it gives (`sched::permits`).
        if !releases || matches!(op.object.kind, Kind::Pool | Kind::Semaphore) {
            return;
        }
        self.while_on(|d| {
            let Some(me) = d.me(name) else { return };
            if matches!(op.object.kind, Kind::Lock | Kind::RLock) {
                if let Some(bit) = d.lock_bit(&op.object) {
                    d.worker[me].held &= !bit;
                }
            }
            if op.action == Action::Update {
                // An `add` both publishes and learns, as atomics do: it is recorded at the
                // moment it publishes, so that whoever learns it has seen it; it learns in
                // `after`, once the add is done.
                d.access(me, &op.object, UPDATE, &op.site);
            }
            d.release(me, &op.object);
        })
    }

    /// After `op`: an acquire-like operation learns the object's clock; an access is
    /// checked against the last ones of the other workers.
    pub fn after(&self, op: &Op, name: impl FnOnce() -> String) {
        let access = match op.action {
            Action::Read => READ,
            Action::Write => WRITE,
            // Its message is taken over by the ring itself (`ring::Mark`).
            Action::Get if matches!(op.object.kind, Kind::Queue | Kind::Pipe) => return,
            // It takes over the permit it took (`sched::permits`).
            _ if matches!(op.object.kind, Kind::Pool | Kind::Semaphore) => return,
            Action::Acquire | Action::Wait | Action::Get | Action::Join | Action::Update => 0,
            _ => return,
        };
        self.while_on(|d| {
            let Some(me) = d.me(name) else { return };
            if access == 0 {
                d.acquire(me, &op.object);
                if op.action == Action::Acquire
                    && matches!(op.object.kind, Kind::Lock | Kind::RLock)
                {
                    if let Some(bit) = d.lock_bit(&op.object) {
                        d.worker[me].held |= bit;
                    }
                }
                return;
            }
            d.access(me, &op.object, access, &op.site);
        })
    }

    /// The races found since the check started, and what it could not follow.
    pub fn races(&self) -> (Vec<Race>, Lost) {
        self.with(|d| {
            let side = |s: &Side| RaceSide {
                op: if s.op == READ { "read" } else { "write" },
                call: match s.op {
                    READ => "read",
                    UPDATE => "add",
                    _ => "write",
                },
                worker: text(&s.name, s.name_len),
                site: d.site_of(s.site),
                locks: s
                    .locks
                    .iter()
                    .filter(|k| k.kind != 0)
                    .map(Key::object)
                    .collect(),
                held: Vec::new(),
            };
            let races = d.report[..d.reports as usize]
                .iter()
                .map(|r| Race {
                    object: r.key.object(),
                    label: r.key.object().label(),
                    name: r.key.object().label(),
                    target: r.key.object().label(),
                    first: side(&r.first),
                    second: side(&r.second),
                    count: r.count,
                })
                .collect();
            (races, d.lost)
        })
    }
}

/// The key of the clock a synchronisation object carries: a ring's marks have their own,
/// any other element goes with its object.
fn sync_key(object: &Object) -> Key {
    match Mark::of(object) {
        Some(_) => Key::of(object),
        None => Key::of(&Object { slot: 0, ..*object }),
    }
}

/// Whether `object` is something handed over once and taken over once: a queue's or
/// pipe's message, a semaphore's permit or room.
fn is_message(object: &Object) -> bool {
    matches!(Mark::of(object), Some(Mark::Message(_)))
        || matches!(Part::of(object), Some(Part::Token(_) | Part::Room(_)))
}

impl Data {
    fn new_run(&mut self) {
        self.run += 1;
        self.workers = 0;
    }

    /// The calling thread's worker in this run, registered (as `name()`) if it is new.
    fn me(&mut self, name: impl FnOnce() -> String) -> Option<usize> {
        let (run, slot) = MINE.with(|m| m.get());
        if run == self.run {
            return (slot != UNFOLLOWED).then_some(slot);
        }
        self.register(&name())
    }

    fn register(&mut self, name: &str) -> Option<usize> {
        let slot = self.workers as usize;
        if slot >= WORKERS {
            self.lost.workers += 1;
            // Not followed in this run: do not ask again for every operation.
            MINE.with(|m| m.set((self.run, UNFOLLOWED)));
            return None;
        }
        self.workers += 1;
        let worker = &mut self.worker[slot];
        worker.name_len = store_text(&mut worker.name, name);
        worker.held = 0;
        worker.clock = VectorClock::default();
        worker.clock.tick(slot);
        MINE.with(|m| m.set((self.run, slot)));
        Some(slot)
    }

    /// The clock with `key` in this run, made if `create`.
    fn sync_clock(&mut self, key: Key, create: bool) -> Option<usize> {
        let start = key.hash() % SYNC;
        for i in 0..SYNC {
            let index = (start + i) % SYNC;
            let entry = &mut self.sync[index];
            if entry.run == self.run && entry.key == key {
                return Some(index);
            }
            if entry.run != self.run {
                if !create {
                    return None;
                }
                entry.run = self.run;
                entry.key = key;
                entry.clock = VectorClock::default();
                return Some(index);
            }
        }
        self.lost.objects += 1;
        None
    }

    fn release(&mut self, me: usize, object: &Object) {
        let clock = self.worker[me].clock;
        match is_message(object) {
            true => self.hand_over_message(object, &clock),
            false => {
                if let Some(index) = self.sync_clock(sync_key(object), true) {
                    self.sync[index].clock.join(&clock);
                }
            }
        }
        self.worker[me].clock.tick(me);
    }

    fn acquire(&mut self, me: usize, object: &Object) {
        let clock = match is_message(object) {
            true => self.take_over_message(object),
            false => self
                .sync_clock(sync_key(object), false)
                .map(|index| self.sync[index].clock),
        };
        if let Some(clock) = clock {
            self.worker[me].clock.join(&clock);
        }
    }

    /// The bit of a lock in this run's lock table (0 when the table is full).
    fn lock_bit(&mut self, object: &Object) -> Option<u64> {
        let key = Key::of(object);
        for (index, entry) in self.locks.iter_mut().enumerate() {
            if entry.run == self.run && entry.key == key {
                return Some(1 << index);
            }
            if entry.run != self.run {
                entry.run = self.run;
                entry.key = key;
                return Some(1 << index);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_their_code() {
        for kind in KINDS {
            assert_eq!(kind_of(kind_code(kind)), kind);
        }
    }

    #[test]
    fn the_table_fits_easily_in_shared_memory() {
        assert!(std::mem::size_of::<Table>() < 8 << 20);
    }
}
