//! When shared objects are freed: reference counts across processes, and what a process
//! that ends (or dies) still held.
//!
//! Every object in shared memory counts its references in its header: one for each
//! process that holds it, however many handles that process's threads have (they share
//! one [`Held`]), and one for each message carrying it (a queue item, a worker's result
//! on its way back). When the last reference goes, the object is freed, after releasing
//! what it refers to itself (a condition's lock, the items left in a queue).
//!
//! A process can end without dropping its handles (a worker that exits, one killed with
//! SIGKILL), so each process also lists the objects it holds in shared memory: a row of
//! the holders table, with pages of slots. The pages come from a region of their own,
//! reserved with the table, so they never sit between objects and split free memory.
//! Whoever sees the process end releases what its list still names: its parent when it
//! reaps it, and any process that finds memory short (or is asked for `shared_memory()`)
//! for processes that are gone.
//!
//! Who keeps an object alive while a reference to it travels:
//! - a message that may never be read back by its sender (queue items, results) holds
//!   its own reference, which the receiver adopts ([`Receive::Adopt`]);
//! - a job sent to a worker (a function, its arguments, `global::` constants) is kept
//!   alive by its sender until the worker has answered or ended, and the worker takes
//!   references of its own ([`Receive::Acquire`]).

use crate::runtime::holders::{fork_generation, my_ids, process_is_gone};
use crate::runtime::shm::{arena, kind, Arena, Monitor};
use rhai::plugin::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Rows in the holders table: far more than the processes that may run at once.
const ROWS: usize = 4096;
/// Slots in one page of a process's list (a page is 4 KiB).
const SLOTS_PER_PAGE: usize = 511;
/// `owner` of a row being released.
const CLAIMED: u64 = u64::MAX;

/// One process's row: who owns it and the first page of its list.
#[repr(C)]
struct Row {
    /// `pid << 32 | incarnation`, 0 when the row is free: the incarnation (a serial
    /// number) tells a row of a dead process from one of a new process with its pid.
    owner: AtomicU64,
    first_page: AtomicU64,
}

/// A page of a process's list: offsets of objects it holds (0: free slot). Only the
/// owner writes it while it lives; only the one who claimed its row reads it afterwards.
/// A free page in the region is linked to the next by `next` too.
#[repr(C)]
struct Page {
    next: AtomicU64,
    slots: [AtomicU64; SLOTS_PER_PAGE],
}

const PAGE_BYTES: u64 = std::mem::size_of::<Page>() as u64;
const _: () = assert!(PAGE_BYTES == 4096);

/// The start of the holders table; the rows and then the pages' region follow it.
#[repr(C)]
struct TableHeader {
    /// Guards the fields below (atomics only because every process shares them).
    monitor: Monitor,
    /// First page of the stack of freed pages (linked by `next`), 0 when empty.
    free_pages: AtomicU64,
    /// The first page never used, and the end of the region.
    unused: AtomicU64,
    end: AtomicU64,
}

/// Where the rows start, from the table's offset.
const ROWS_AT: u64 = std::mem::size_of::<TableHeader>().next_multiple_of(64) as u64;

/// Reserves the holders table and the region of its pages (an eighth of the arena, which
/// lists every object of the smallest kind twice over) in freshly created shared memory;
/// 0 when it does not fit (objects are then freed within a process, but not for a process
/// that died).
pub fn reserve_table(arena: &Arena, arena_size: u64) -> u64 {
    let rows_bytes = (ROWS * std::mem::size_of::<Row>()) as u64;
    let pages = (arena_size / 8 / PAGE_BYTES).max(16);
    let pages_at = (ROWS_AT + rows_bytes).next_multiple_of(PAGE_BYTES);
    let bytes = pages_at + pages * PAGE_BYTES;
    let Ok(table) = arena.reserve(bytes as usize, 64) else {
        return 0;
    };
    // SAFETY: the table was just reserved, zeroed, and no other process knows it yet.
    unsafe {
        let header = arena.at::<TableHeader>(table);
        Monitor::init(std::ptr::addr_of_mut!((*header).monitor));
        (*header).unused = AtomicU64::new(table + pages_at);
        (*header).end = AtomicU64::new(table + bytes);
    }
    table
}

fn table_header() -> Option<&'static TableHeader> {
    let arena = arena().ok()?;
    let table = arena.holders_table();
    // SAFETY: reserved and initialised when the arena was created; it stays.
    (table != 0).then(|| unsafe { &*arena.at::<TableHeader>(table) })
}

fn rows() -> &'static [Row] {
    let Ok(arena) = arena() else { return &[] };
    let table = arena.holders_table();
    if table == 0 {
        return &[];
    }
    // SAFETY: the rows were reserved, zeroed, when the arena was created, and stay.
    unsafe { std::slice::from_raw_parts(arena.at::<Row>(table + ROWS_AT), ROWS) }
}

/// Takes a zeroed page from the region; `None` when it is used up.
fn alloc_page() -> Option<u64> {
    let header = table_header()?;
    let offset = {
        let _guard = header.monitor.lock();
        let free = header.free_pages.load(Ordering::Relaxed);
        let unused = header.unused.load(Ordering::Relaxed);
        if free != 0 {
            let next = page(free).next.load(Ordering::Relaxed);
            header.free_pages.store(next, Ordering::Relaxed);
            free
        } else if unused + PAGE_BYTES <= header.end.load(Ordering::Relaxed) {
            header.unused.store(unused + PAGE_BYTES, Ordering::Relaxed);
            unused
        } else {
            return None;
        }
    };
    // SAFETY: the page is this caller's alone now.
    unsafe {
        std::ptr::write_bytes(arena().ok()?.at::<u8>(offset), 0, PAGE_BYTES as usize);
    }
    Some(offset)
}

/// Gives a page of a dead process's list back to the region.
fn free_page(offset: u64) {
    let Some(header) = table_header() else { return };
    let _guard = header.monitor.lock();
    let first = header.free_pages.load(Ordering::Relaxed);
    page(offset).next.store(first, Ordering::Relaxed);
    header.free_pages.store(offset, Ordering::Relaxed);
}

fn page(offset: u64) -> &'static Page {
    // SAFETY: page offsets come from `alloc_page` (for `record`) and are given back only
    // by `release_row`, after the owner is gone.
    unsafe { &*arena().expect("shared memory exists").at::<Page>(offset) }
}

fn owner_pid(word: u64) -> i32 {
    (word >> 32) as i32
}

/// This process's row and its free slots, as this process sees them.
struct Local {
    /// The fork generation these belong to: a forked child starts over.
    generation: u64,
    row: Option<usize>,
    /// Offsets of free slots in this process's pages.
    free: Vec<u64>,
}

static LOCAL: Mutex<Local> = Mutex::new(Local {
    generation: u64::MAX,
    row: None,
    free: Vec::new(),
});

/// Writes `offset` into a free slot of this process's list; returns the slot's offset,
/// or 0 when there is no list (no table, or no memory for a page).
fn record(offset: u64) -> u64 {
    let mut local = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    let generation = fork_generation();
    if local.generation != generation {
        *local = Local {
            generation,
            row: None,
            free: Vec::new(),
        };
    }
    let row = match local.row {
        Some(row) => row,
        None => match register() {
            Some(row) => {
                local.row = Some(row);
                row
            }
            None => return 0,
        },
    };
    if local.free.is_empty() {
        let Some(new_page) = alloc_page() else {
            return 0;
        };
        let first = &rows()[row].first_page;
        page(new_page)
            .next
            .store(first.load(Ordering::Relaxed), Ordering::Relaxed);
        first.store(new_page, Ordering::Release);
        let slots = new_page + std::mem::offset_of!(Page, slots) as u64;
        local
            .free
            .extend((0..SLOTS_PER_PAGE as u64).rev().map(|i| slots + i * 8));
    }
    let Some(slot) = local.free.pop() else {
        return 0;
    };
    // SAFETY: the slot lies in one of this process's pages.
    unsafe {
        (*arena().expect("shared memory exists").at::<AtomicU64>(slot))
            .store(offset, Ordering::Release)
    };
    slot
}

/// Empties a slot `record` returned (in the process that recorded it).
fn unrecord(slot: u64) {
    if slot == 0 {
        return;
    }
    let mut local = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    if local.generation != fork_generation() {
        return;
    }
    // SAFETY: as in `record`.
    unsafe {
        (*arena().expect("shared memory exists").at::<AtomicU64>(slot)).store(0, Ordering::Release)
    };
    local.free.push(slot);
}

/// Takes a row for this process. A row that names this pid belongs to a dead process
/// that had it before (only one live process has a pid): what it held is released.
fn register() -> Option<usize> {
    let rows = rows();
    let pid = my_ids().0;
    release_process(pid);
    let incarnation = arena().ok()?.incarnation() as u32 as u64;
    let word = ((pid as u32 as u64) << 32) | incarnation.max(1);
    rows.iter().position(|row| {
        row.owner
            .compare_exchange(0, word, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

/// Releases everything a dead process's row names and frees the row, unless someone
/// else claimed it first (or it changed owner).
fn release_row(index: usize, word: u64) {
    let row = &rows()[index];
    if row
        .owner
        .compare_exchange(word, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    let mut next = row.first_page.swap(0, Ordering::AcqRel);
    while next != 0 {
        let current = page(next);
        for slot in &current.slots {
            let offset = slot.load(Ordering::Acquire);
            if offset != 0 {
                release(offset);
            }
        }
        let after = current.next.load(Ordering::Relaxed);
        free_page(next);
        next = after;
    }
    row.owner.store(0, Ordering::Release);
}

/// Releases the rows of the processes `dead` says are gone.
fn release_rows_of(dead: impl Fn(i32) -> bool) {
    for (i, row) in rows().iter().enumerate() {
        let word = row.owner.load(Ordering::Acquire);
        if word != 0 && word != CLAIMED && dead(owner_pid(word)) {
            release_row(i, word);
        }
    }
}

/// Releases what process `pid` held; its parent calls this once it has reaped it.
pub fn release_process(pid: i32) {
    release_rows_of(|owner| owner == pid);
}

/// Releases what every process that is gone still held (processes whose parent died
/// before reaping them, or that were not reaped by a process of this program).
pub fn release_dead_processes() {
    let me = my_ids().0;
    release_rows_of(|owner| owner != me && process_is_gone(owner));
}

// ---- reference counts -------------------------------------------------------------------

/// Adds a reference to a live object (one its caller holds).
pub fn retain(offset: u64) {
    if let Ok(arena) = arena() {
        arena
            .object_header(offset)
            .refs
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Drops a reference; the last one frees the object, after releasing what it refers to.
pub fn release(offset: u64) {
    let Ok(arena) = arena() else { return };
    let header = arena.object_header(offset);
    let previous = header
        .refs
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    if previous != Ok(1) {
        return;
    }
    match header.kind.load(Ordering::Acquire) {
        kind::RING => crate::runtime::ring::Ring::from_freed(offset).release_contents(),
        kind::CONDITION => release(crate::runtime::sync::Condition::lock_offset_of(offset)),
        _ => {}
    }
    arena.free_object(offset);
}

/// How many references a live object has: one per process holding it (or per handle a
/// process received separately) and one per message carrying it.
pub fn references(offset: u64) -> u32 {
    arena().map_or(0, |arena| {
        arena.object_header(offset).refs.load(Ordering::Acquire)
    })
}

/// Checks that `offset` names a live object of one of `kinds`, and adds a reference when
/// `add` says so.
fn acquire_checked(offset: u64, kinds: &[u32], size: usize, add: bool) -> Result<(), String> {
    let arena = arena()?;
    let invalid = || "a reference to a shared object that no longer exists".to_string();
    if !arena.contains(offset, size) {
        return Err(invalid());
    }
    let header = arena.object_header(offset);
    if !kinds.contains(&header.kind.load(Ordering::Acquire)) {
        return Err(invalid());
    }
    if add {
        header
            .refs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 0).then_some(n + 1)
            })
            .map_err(|_| invalid())?;
    }
    Ok(())
}

/// This process's reference to a shared object: cloned with every handle, released when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Held(Arc<HeldInner>);

struct HeldInner {
    offset: u64,
    /// Where this process's list names it (0: nowhere).
    slot: u64,
    /// A handle that came through a fork belongs to the parent: the child must not
    /// release the parent's reference.
    generation: u64,
}

impl Held {
    fn new(offset: u64) -> Held {
        Held(Arc::new(HeldInner {
            offset,
            slot: record(offset),
            generation: fork_generation(),
        }))
    }

    /// Takes over the reference of an object this process just allocated.
    pub fn created(offset: u64) -> Held {
        Held::new(offset)
    }

    pub fn offset(&self) -> u64 {
        self.0.offset
    }
}

impl Drop for HeldInner {
    fn drop(&mut self) {
        if self.generation == fork_generation() {
            unrecord(self.slot);
            release(self.offset);
        }
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.offset() == other.offset()
    }
}

impl Eq for Held {}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({})", self.offset())
    }
}

#[export_module]
pub mod memory_api {
    /// How much shared memory the runtime's objects use: a map with `used` (bytes in
    /// objects), `objects` (shared objects alive; a pipe counts two, one per direction)
    /// and `size` (bytes for objects in all). Locks, values, queues and the other shared
    /// objects are freed when no thread and no process holds them any more; what a
    /// process that ended still held is released when it is reaped.
    ///
    /// ```rhai
    /// let before = shared_memory().objects;
    /// for i in 0..1000 { let q = queue(); }
    /// shared_memory().objects - before   // 0
    /// ```
    #[rhai_fn(return_raw)]
    pub fn shared_memory() -> Result<rhai::Map, Box<EvalAltResult>> {
        let arena = super::arena()?;
        super::release_dead_processes();
        let usage = arena.usage();
        let mut map = rhai::Map::new();
        map.insert("used".into(), (usage.used as rhai::INT).into());
        map.insert("objects".into(), (usage.objects as rhai::INT).into());
        map.insert("size".into(), (usage.size as rhai::INT).into());
        Ok(map)
    }
}

/// How a received reference becomes this process's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receive {
    /// A new reference to an object that someone else keeps alive meanwhile (a job's
    /// sender).
    Acquire,
    /// Takes over the reference a message carried (see [`retain`]).
    Adopt,
}

impl Receive {
    /// This process's reference to the object of one of `kinds` at `offset`, of which
    /// `size` bytes must lie in the shared memory.
    pub fn held(self, offset: u64, kinds: &[u32], size: usize) -> Result<Held, String> {
        acquire_checked(offset, kinds, size, self == Receive::Acquire)?;
        Ok(Held::new(offset))
    }
}
