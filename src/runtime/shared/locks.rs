//! `lock()` and `rlock()`: locks in shared memory that work between threads and processes.
//! A lock whose holder process died is taken over by the next `acquire` (instead of
//! hanging forever), and a cycle of threads (of one process or several) waiting for each
//! other's locks is reported as a deadlock error instead of hanging (see `deadlock`), as is
//! a thread waiting for a plain lock it holds when nobody else could release it (see
//! `self_wait`).
//!
//! An uncontended acquire is one compare-exchange on the owner word, and a release one
//! store and one load (of the count of sleeping waiters), as in parking_lot and Linux's
//! futexes: the robust, process-shared monitor (a mutex and a condition variable) is
//! entered only by a thread that finds the lock taken, and by a release that has someone
//! to wake. A waiter counts itself and looks at the owner again with the monitor held;
//! a release frees the owner word and then looks at the count (both sequentially
//! consistent), so either the waiter sees the lock free or the release sees the waiter
//! and wakes it through the monitor.

use crate::runtime::lifetime::Held;
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order, POLL};
use crate::runtime::shared::holders::{self, my_ids, process_is_gone};
use crate::runtime::shm::{arena, kind, Monitor};
use crate::runtime::sink::{self, Stream};
use crate::runtime::time::seconds;
use crate::runtime::{deadlock, self_wait};
use rhai::plugin::*;
use rhai::FnPtr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::{Duration, Instant};

#[repr(C)]
pub struct LockState {
    monitor: Monitor,
    serial: u64,
    /// The holder's process and thread ids in one word (see [`holders::pack`]); 0 when
    /// unlocked. Taken by compare-exchange from 0, or from a dead holder with the monitor
    /// held.
    owner: AtomicU64,
    /// Threads asleep on the monitor's condition variable, waiting for the lock: counted
    /// with the monitor held, so that a release knows whether to wake anyone.
    waiters: AtomicU32,
    /// Recursion depth of a re-entrant lock: changed only by its holder.
    depth: AtomicU32,
    reentrant: u32,
}

impl LockState {
    /// Takes the lock for `me` (a [`holders::pack`]ed id) if it is free, or once more if it
    /// is a re-entrant lock that `me` holds: whether it did.
    fn try_take(&self, me: u64) -> bool {
        if self.owner.compare_exchange(0, me, SeqCst, Relaxed).is_ok() {
            self.depth.store(1, Relaxed);
            return true;
        }
        if self.reentrant != 0 && self.owner.load(Relaxed) == me {
            self.depth.fetch_add(1, Relaxed);
            return true;
        }
        false
    }
}

/// A view of a lock in shared memory (copied freely; the handles that use it, `Lock` and
/// `RLock`, hold the reference that keeps it alive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockRef {
    pub offset: u64,
}

impl LockRef {
    /// Allocates and initialises a new lock; its one reference is the caller's.
    pub fn new(reentrant: bool) -> Result<LockRef, Box<EvalAltResult>> {
        let arena = arena()?;
        let size = std::mem::size_of::<LockState>();
        let offset = arena.alloc_object(kind::LOCK, size, size)?;
        // SAFETY: fresh zeroed memory of the right size.
        unsafe { Self::init_at(offset, reentrant)? };
        Ok(LockRef { offset })
    }

    /// Initialises a lock embedded in another shared object.
    ///
    /// # Safety
    /// `offset` must point to zeroed, unused shared memory for a `LockState`.
    pub unsafe fn init_at(offset: u64, reentrant: bool) -> Result<(), String> {
        let arena = arena()?;
        let state = arena.at::<LockState>(offset);
        Monitor::init(std::ptr::addr_of_mut!((*state).monitor));
        (*state).serial = arena.serial();
        (*state).reentrant = reentrant as u32;
        Ok(())
    }

    /// Checks an offset that names a lock (in a waits-for slot).
    pub fn from_offset(offset: u64) -> Result<LockRef, String> {
        if arena()?.contains(offset, std::mem::size_of::<LockState>()) {
            Ok(LockRef { offset })
        } else {
            Err(format!("invalid lock reference {offset}"))
        }
    }

    fn state(&self) -> &LockState {
        // SAFETY: offsets are only created by `new`/`init_at` or checked by `from_offset`.
        unsafe {
            &*arena()
                .expect("shared memory exists once a lock does")
                .at::<LockState>(self.offset)
        }
    }

    /// The serial number people see (`Lock-3`; also a value's or array's number).
    pub fn serial(&self) -> u64 {
        self.state().serial
    }

    /// `<Lock-1 locked>` or `<RLock-2 unlocked>`, as scripts print it.
    pub fn describe(&self) -> String {
        let state = if self.locked() { "locked" } else { "unlocked" };
        format!("<{} {state}>", self.name())
    }

    pub fn name(&self) -> String {
        let state = self.state();
        let kind = if state.reentrant != 0 {
            "RLock"
        } else {
            "Lock"
        };
        format!("{kind}-{}", state.serial)
    }

    /// The lock as scheduling points name it.
    pub fn object(&self) -> Object {
        let state = self.state();
        let kind = if state.reentrant != 0 {
            Kind::RLock
        } else {
            Kind::Lock
        };
        Object::new(kind, self.offset, state.serial)
    }

    /// Acquires the lock, waiting at most `timeout` (forever when `None`). `Ok(false)` on
    /// timeout; errors on interrupt and deadlock.
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool, Box<EvalAltResult>> {
        let (pid, tid) = my_ids();
        let me = holders::pack((pid, tid));
        let state = self.state();
        // The fast path: a free lock (or a re-entrant one this thread holds), with nobody
        // watching operations. Anything else takes the whole way below.
        if !sched::watching() && state.try_take(me) {
            return Ok(true);
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // Set once this thread has waited and registered in the waits-for table (tried
        // once: when the table is full, the wait goes unwatched rather than rescanning it).
        let mut registration: Option<deadlock::Registration> = None;
        let mut registration_tried = false;
        let mut waited = false;
        // Looking for a dead holder reads /proc: do it only when a wait lasts, once per POLL
        // (the clock is first read when the lock is found taken, not on every acquire).
        let mut last_liveness_check: Option<Instant> = None;
        let take = || {
            let guard = state.monitor.lock();
            // Checked before the lock itself: every member of a deadlock is told, even one
            // whose lock was just freed by a member that was told first.
            if let Some(message) = registration.as_ref().and_then(|r| r.verdict()) {
                return Err(message.into());
            }
            let owner = state.owner.load(SeqCst);
            let (owner_pid, _) = holders::unpack(owner);
            let mine = owner == me;
            // A free lock may be taken meanwhile by a thread on the fast path: then this
            // one waits for it.
            let taken = if owner == 0 || (mine && state.reentrant != 0) {
                state.try_take(me)
            } else {
                let since = *last_liveness_check.get_or_insert_with(Instant::now);
                let check_liveness = owner_pid != pid && since.elapsed() >= POLL;
                if check_liveness {
                    last_liveness_check = Some(Instant::now());
                }
                // Taken over from the dead holder only if nobody released it meanwhile (any
                // thread may release a plain lock).
                if check_liveness
                    && process_is_gone(owner_pid)
                    && state
                        .owner
                        .compare_exchange(owner, me, SeqCst, Relaxed)
                        .is_ok()
                {
                    sink::write(
                        Stream::Stderr,
                        &format!(
                            "{}: its holder (process {owner_pid}) died without releasing it; acquiring it anyway\n",
                            self.name(),
                        ),
                    );
                    state.depth.store(1, Relaxed);
                    true
                } else {
                    false
                }
            };
            if taken {
                return Ok(Some(()));
            }
            // This thread holds the plain lock it asks for: another thread or process may
            // release it (as in Python), so wait for that, and look at each wake-up
            // whether anyone is left who could (see `self_wait::deadlock`). Such a wait is no cycle with others: it stays out of the waits-for
            // table. Under the schedule explorer, a deadlock is the explorer's to find.
            if mine {
                if timeout.is_none() && sched::controller().is_none() {
                    if let Some(message) = self_wait::deadlock(*self) {
                        return Err(message.into());
                    }
                }
                return Ok(None);
            }
            // Only a wait that outlasts its first wake-up is registered and checked, so a
            // briefly contended acquire never touches the shared waits-for table. Under
            // the schedule explorer, a deadlock is the explorer's to find.
            if timeout.is_none() && waited && sched::controller().is_none() {
                // The detector takes lock monitors: never call it with one held, or two
                // threads can block each other.
                drop(guard);
                if !registration_tried {
                    registration = deadlock::start_waiting(*self);
                    registration_tried = true;
                }
                if let Some(message) = registration.as_ref().and_then(deadlock::check) {
                    return Err(message.into());
                }
            }
            waited = true;
            Ok(None)
        };
        let sleep = |pause| {
            if spin_until_free(state) {
                return;
            }
            let mut guard = state.monitor.lock();
            // Counted before looking: a release that frees the lock after this look sees
            // the count and wakes this thread through the monitor (see the module's note).
            state.waiters.fetch_add(1, SeqCst);
            if state.owner.load(SeqCst) != 0 {
                guard.wait(pause);
            }
            state.waiters.fetch_sub(1, SeqCst);
        };
        let op = || Op::new(Action::Acquire, self.object(), None);
        let result = sched::wait(op, deadline, Order::ReadyFirst, take, sleep, |_| {
            String::new()
        });
        // Until this line a detector may still see this thread waiting for a lock it now
        // holds; a path through it then ends at itself, which is not a cycle.
        drop(registration);
        Ok(result?.is_some())
    }

    /// Releases the lock. A plain lock may be released by any thread (as in Python);
    /// a re-entrant one only by its owner.
    pub fn release(&self) -> Result<(), Box<EvalAltResult>> {
        sched::step(
            || Op::new(Action::Release, self.object(), None),
            || self.release_now(),
            |_| String::new(),
        )
    }

    fn release_now(&self) -> Result<(), Box<EvalAltResult>> {
        let state = self.state();
        if state.reentrant != 0 {
            if state.owner.load(Relaxed) != holders::pack(my_ids()) {
                let holder = if state.owner.load(Relaxed) == 0 {
                    "is not locked"
                } else {
                    "is held by another thread"
                };
                return Err(format!("release: {} {holder}", self.name()).into());
            }
            if state.depth.load(Relaxed) > 1 {
                state.depth.fetch_sub(1, Relaxed);
                return Ok(());
            }
            state.depth.store(0, Relaxed);
            state.owner.store(0, SeqCst);
        } else if state.owner.swap(0, SeqCst) == 0 {
            return Err(format!("release: {} is not locked", self.name()).into());
        }
        if state.waiters.load(SeqCst) != 0 {
            // Only lock waiters wait on this monitor, and one of them can take the lock.
            let _guard = state.monitor.lock();
            state.monitor.notify_one();
        }
        Ok(())
    }

    /// Wakes the threads waiting for this lock (to look at a deadlock verdict at once).
    pub fn wake_waiters(&self) {
        self.state().monitor.notify_all();
    }

    pub fn locked(&self) -> bool {
        self.state().owner.load(SeqCst) != 0
    }

    /// The holder's (pid, tid), if any.
    pub fn owner(&self) -> Option<(i32, i32)> {
        let owner = self.state().owner.load(SeqCst);
        (owner != 0).then(|| holders::unpack(owner))
    }
}

/// Watches a held lock for a few microseconds, in case its holder frees it meanwhile;
/// whether it did. A script's critical section is short (`v.value += 1` takes about a
/// microsecond), and going to sleep instead costs a context switch on both sides: the
/// holder's release must wake this thread through the kernel. Measured with 2 processes
/// incrementing one value under one lock, sleeping at once spent most of the time in the
/// kernel. Like parking_lot's `SpinWait`: a few short spins, then yielding the CPU, so a
/// holder that shares this core gets to run.
fn spin_until_free(state: &LockState) -> bool {
    for round in 0..SPIN_ROUNDS {
        if state.owner.load(Relaxed) == 0 {
            return true;
        }
        if round < SPIN_ONLY_ROUNDS {
            for _ in 0..(2 << round) {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
    }
    state.owner.load(Relaxed) == 0
}

const SPIN_ROUNDS: u32 = 10;
const SPIN_ONLY_ROUNDS: u32 = 3;

/// Calls `f` with the lock held, releasing it even when `f` throws.
fn hold(ctx: &NativeCallContext, lock: LockRef, f: FnPtr) -> Result<Dynamic, Box<EvalAltResult>> {
    lock.acquire(None)?;
    let result = f.call_within_context::<Dynamic>(ctx, ());
    let released = lock.release();
    let value = result?;
    released?;
    Ok(value)
}

/// A lock's timeout: none for a negative time (Python's `acquire(timeout=-1)`).
fn timeout_from(seconds: f64) -> Result<Option<Duration>, Box<EvalAltResult>> {
    if seconds < 0.0 {
        return Ok(None);
    }
    crate::runtime::time::duration(seconds, "acquire").map(Some)
}

/// A lock (Python's `threading.Lock` / `multiprocessing.Lock`): the lock, and this
/// process's reference to the object it lives in (a lock, or a value or shared array
/// whose lock it is).
#[derive(Clone, Debug, PartialEq)]
pub struct Lock(pub LockRef, pub Held);

/// A re-entrant lock (Python's `RLock`).
#[derive(Clone, Debug, PartialEq)]
pub struct RLock(pub LockRef, pub Held);

/// The kinds of object a `Lock` handle may point into.
pub const LOCK_HOLDERS: [u32; 3] = [kind::LOCK, kind::VALUE, kind::SHARED_ARRAY];

impl Lock {
    pub fn new() -> Result<Lock, Box<EvalAltResult>> {
        let lock = LockRef::new(false)?;
        Ok(Lock(lock, Held::created(lock.offset)))
    }
}

impl RLock {
    pub fn new() -> Result<RLock, Box<EvalAltResult>> {
        let lock = LockRef::new(true)?;
        Ok(RLock(lock, Held::created(lock.offset)))
    }
}

#[export_module]
pub mod lock_api {
    use super::*;

    pub type Lock = super::Lock;
    pub type RLock = super::RLock;

    /// Creates a lock that works between threads and processes.
    ///
    /// `acquire()` waits until it is free and takes it; `release()` frees it; `hold(f)` runs
    /// `f` with the lock held. If the process holding it dies, the next `acquire` takes it
    /// over (and says so on stderr) instead of waiting forever; a cycle of threads or
    /// processes waiting for each other's locks is reported as a deadlock error to each.
    #[rhai_fn(return_raw)]
    pub fn lock() -> Result<Lock, Box<EvalAltResult>> {
        Lock::new()
    }

    /// Creates a re-entrant lock: the thread holding it may acquire it again, and must
    /// release it as many times; only the holder may release it.
    #[rhai_fn(return_raw)]
    pub fn rlock() -> Result<RLock, Box<EvalAltResult>> {
        RLock::new()
    }

    /// Waits until the lock is free and takes it. Interruptible.
    ///
    /// A thread that already holds it waits too, for another thread or process to release
    /// it (any may, as in Python); if nobody else could, that is a deadlock error.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn acquire(lock: &mut Lock) -> Result<bool, Box<EvalAltResult>> {
        lock.0.acquire(None)
    }

    /// Waits at most `timeout` seconds (int or float; negative: no limit) for the lock;
    /// returns whether it was taken.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn acquire_timeout(lock: &mut Lock, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        lock.0.acquire(timeout_from(seconds(&timeout, "acquire")?)?)
    }

    /// Frees the lock (any thread may release a plain lock, as in Python).
    #[rhai_fn(name = "release", return_raw, pure)]
    pub fn release(lock: &mut Lock) -> Result<(), Box<EvalAltResult>> {
        lock.0.release()
    }

    /// Whether the lock is currently held.
    #[rhai_fn(name = "locked", pure)]
    pub fn locked(lock: &mut Lock) -> bool {
        sched::look(|| lock.0.object());
        lock.0.locked()
    }

    /// Runs `f` with the lock held and returns its result; the lock is released even
    /// if `f` throws. `counter_lock.hold(|| balance.value -= 80)`
    #[rhai_fn(name = "hold", return_raw, pure)]
    pub fn hold_lock(
        ctx: NativeCallContext,
        lock: &mut Lock,
        f: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        hold(&ctx, lock.0, f)
    }

    /// Shows a lock as `<Lock-1 locked>` or `<Lock-1 unlocked>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn lock_to_string(lock: &mut Lock) -> String {
        lock.0.describe()
    }

    /// Takes the re-entrant lock (again, if this thread already holds it). Interruptible.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn racquire(lock: &mut RLock) -> Result<bool, Box<EvalAltResult>> {
        lock.0.acquire(None)
    }

    /// Waits at most `timeout` seconds (int or float; negative: no limit) for the
    /// re-entrant lock; returns whether it was taken.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn racquire_timeout(
        lock: &mut RLock,
        timeout: Dynamic,
    ) -> Result<bool, Box<EvalAltResult>> {
        lock.0.acquire(timeout_from(seconds(&timeout, "acquire")?)?)
    }

    /// Releases one level of the re-entrant lock; only its holder may do that.
    #[rhai_fn(name = "release", return_raw, pure)]
    pub fn rrelease(lock: &mut RLock) -> Result<(), Box<EvalAltResult>> {
        lock.0.release()
    }

    /// Whether the re-entrant lock is currently held.
    #[rhai_fn(name = "locked", pure)]
    pub fn rlocked(lock: &mut RLock) -> bool {
        sched::look(|| lock.0.object());
        lock.0.locked()
    }

    /// Runs `f` with the re-entrant lock held; released even if `f` throws.
    #[rhai_fn(name = "hold", return_raw, pure)]
    pub fn hold_rlock(
        ctx: NativeCallContext,
        lock: &mut RLock,
        f: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        hold(&ctx, lock.0, f)
    }

    /// Shows a re-entrant lock as `<RLock-2 locked>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn rlock_to_string(lock: &mut RLock) -> String {
        lock.0.describe()
    }
}
