//! `semaphore(n)`, `event()`, `condition()` and `barrier(n)`: synchronisation objects in
//! shared memory, for threads and processes alike (Python's `threading` and
//! `multiprocessing` versions of the same objects).

use crate::runtime::lifetime::{Held, Receive};
use crate::runtime::locks::{my_ids, Lock, LockRef};
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use crate::runtime::shm::{arena, kind, Monitor};
use rhai::plugin::*;
use rhai::FnPtr;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A deadline from a timeout in seconds (negative: none).
fn deadline(timeout: Option<f64>) -> Result<Option<Instant>, Box<EvalAltResult>> {
    match timeout {
        None => Ok(None),
        Some(t) if t < 0.0 => Ok(None),
        Some(t) => Duration::try_from_secs_f64(t)
            .map(|d| Some(Instant::now() + d))
            .map_err(|_| format!("invalid timeout {t}").into()),
    }
}

/// Waits on `monitor` until `ready` is true (then returns `Ok(true)`), the deadline passes
/// (`Ok(false)`) or an interrupt arrives (an error). `ready` runs with the monitor held and
/// may take what it waits for (a semaphore's unit, a condition's signal): it is called
/// again only after it said no. `op` says what is awaited, for the scheduling point.
pub(crate) fn wait_until(
    monitor: &Monitor,
    until: Option<Instant>,
    op: impl FnOnce() -> Op,
    ready: impl FnMut() -> bool,
) -> Result<bool, Box<EvalAltResult>> {
    let ready = RefCell::new(ready);
    // Set when `sleep` found it ready (and so took it): the next `take` reports it.
    let taken = Cell::new(false);
    let outcome = sched::wait(
        op,
        until,
        Order::ReadyFirst,
        || {
            if taken.get() {
                return Ok(Some(()));
            }
            let _guard = monitor.lock();
            Ok((ready.borrow_mut())().then_some(()))
        },
        |pause| {
            let mut guard = monitor.lock();
            if (ready.borrow_mut())() {
                taken.set(true);
            } else {
                guard.wait(pause);
            }
        },
        |_| String::new(),
    )?;
    Ok(outcome.is_some())
}

/// Allocates a zeroed `T` in shared memory and initialises its leading monitor.
fn alloc_with_monitor<T>(
    kind: u32,
    monitor_of: impl Fn(*mut T) -> *mut Monitor,
) -> Result<(u64, *mut T), String> {
    let arena = arena()?;
    let size = std::mem::size_of::<T>();
    let offset = arena.alloc_object(kind, size, size)?;
    // SAFETY: fresh, zeroed memory sized for T.
    unsafe {
        let ptr = arena.at::<T>(offset);
        Monitor::init(monitor_of(ptr));
        Ok((offset, ptr))
    }
}

/// This process's reference to a received object of `kind`, laid out as a `T`.
fn received<T>(offset: u64, kind: u32, how: Receive) -> Result<Held, String> {
    how.held(offset, &[kind], std::mem::size_of::<T>())
}

fn state<T>(offset: u64) -> &'static T {
    // SAFETY: offsets are created by the constructors below or checked by `from_offset`;
    // the shared memory stays mapped for the life of the process.
    unsafe {
        &*arena()
            .expect("shared memory exists once an object does")
            .at::<T>(offset)
    }
}

// ---- semaphore ------------------------------------------------------------------------

#[repr(C)]
struct SemaphoreState {
    monitor: Monitor,
    serial: u64,
    value: AtomicI64,
}

/// A counting semaphore (Python's `Semaphore`).
#[derive(Clone, Debug, PartialEq)]
pub struct Semaphore {
    pub offset: u64,
    held: Held,
}

impl Semaphore {
    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new(value: i64) -> Result<Semaphore, Box<EvalAltResult>> {
        if value < 0 {
            return Err("semaphore(n): n must not be negative".into());
        }
        let (offset, ptr) = alloc_with_monitor::<SemaphoreState>(kind::SEMAPHORE, |p| unsafe {
            std::ptr::addr_of_mut!((*p).monitor)
        })?;
        // SAFETY: just allocated.
        unsafe {
            (*ptr).serial = arena()?.serial();
            (*ptr).value.store(value, Relaxed);
        }
        Ok(Semaphore {
            offset,
            held: Held::created(offset),
        })
    }

    pub fn receive(offset: u64, how: Receive) -> Result<Semaphore, String> {
        let held = received::<SemaphoreState>(offset, kind::SEMAPHORE, how)?;
        Ok(Semaphore { offset, held })
    }

    fn state(&self) -> &'static SemaphoreState {
        state(self.offset)
    }

    fn op(&self, action: Action) -> Op {
        Op::new(action, self.object(), None)
    }

    /// The semaphore as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Semaphore, self.offset, self.state().serial)
    }

    fn acquire(&self, timeout: Option<f64>) -> Result<bool, Box<EvalAltResult>> {
        let s = self.state();
        let op = || self.op(Action::Acquire);
        wait_until(&s.monitor, deadline(timeout)?, op, || {
            if s.value.load(Relaxed) > 0 {
                s.value.fetch_sub(1, Relaxed);
                true
            } else {
                false
            }
        })
    }

    fn release(&self) -> Result<(), Box<EvalAltResult>> {
        let s = self.state();
        let release = || {
            let _guard = s.monitor.lock();
            s.value.fetch_add(1, Relaxed);
            s.monitor.notify_all();
            Ok(())
        };
        sched::step(|| self.op(Action::Release), release, |_| String::new())
    }
}

// ---- event ----------------------------------------------------------------------------

#[repr(C)]
struct EventState {
    monitor: Monitor,
    serial: u64,
    flag: AtomicU64,
}

/// A flag threads and processes can wait for (Python's `Event`).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub offset: u64,
    held: Held,
}

impl Event {
    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new() -> Result<Event, Box<EvalAltResult>> {
        let (offset, ptr) = alloc_with_monitor::<EventState>(kind::EVENT, |p| unsafe {
            std::ptr::addr_of_mut!((*p).monitor)
        })?;
        // SAFETY: just allocated.
        unsafe { (*ptr).serial = arena()?.serial() };
        Ok(Event {
            offset,
            held: Held::created(offset),
        })
    }

    pub fn receive(offset: u64, how: Receive) -> Result<Event, String> {
        let held = received::<EventState>(offset, kind::EVENT, how)?;
        Ok(Event { offset, held })
    }

    fn state(&self) -> &'static EventState {
        state(self.offset)
    }

    fn op(&self, action: Action) -> Op {
        Op::new(action, self.object(), None)
    }

    /// The event as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Event, self.offset, self.state().serial)
    }

    fn set(&self, on: bool) -> Result<(), Box<EvalAltResult>> {
        let s = self.state();
        let set = || {
            let _guard = s.monitor.lock();
            s.flag.store(on as u64, Relaxed);
            s.monitor.notify_all();
            Ok(())
        };
        let action = if on { Action::Set } else { Action::Clear };
        sched::step(|| self.op(action), set, |_| String::new())
    }

    fn wait(&self, timeout: Option<f64>) -> Result<bool, Box<EvalAltResult>> {
        let s = self.state();
        let op = || self.op(Action::Wait);
        wait_until(&s.monitor, deadline(timeout)?, op, || {
            s.flag.load(Relaxed) != 0
        })
    }
}

// ---- condition ------------------------------------------------------------------------

#[repr(C)]
struct ConditionState {
    monitor: Monitor,
    serial: u64,
    lock: u64,
    waiters: AtomicU64,
    /// Wake-ups granted by notify and not yet taken by a waiter.
    signals: AtomicU64,
}

/// A condition variable tied to a lock (Python's `Condition`).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub offset: u64,
    held: Held,
}

impl Condition {
    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new(lock: Lock) -> Result<Condition, Box<EvalAltResult>> {
        let (offset, ptr) = alloc_with_monitor::<ConditionState>(kind::CONDITION, |p| unsafe {
            std::ptr::addr_of_mut!((*p).monitor)
        })?;
        // SAFETY: just allocated.
        unsafe {
            (*ptr).serial = arena()?.serial();
            (*ptr).lock = lock.0.offset;
        }
        // The condition's own reference to its lock's object, released when the
        // condition is freed (see `lock_offset_of`).
        crate::runtime::lifetime::retain(lock.0.offset);
        Ok(Condition {
            offset,
            held: Held::created(offset),
        })
    }

    pub fn receive(offset: u64, how: Receive) -> Result<Condition, String> {
        let held = received::<ConditionState>(offset, kind::CONDITION, how)?;
        Ok(Condition { offset, held })
    }

    fn state(&self) -> &'static ConditionState {
        state(self.offset)
    }

    /// The offset of the lock of the condition at `offset`, which the condition holds a
    /// reference to (released by `lifetime` when the condition is freed).
    pub fn lock_offset_of(offset: u64) -> u64 {
        state::<ConditionState>(offset).lock
    }

    pub fn lock(&self) -> LockRef {
        LockRef {
            offset: self.state().lock,
        }
    }

    /// The condition as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Condition, self.offset, self.state().serial)
    }

    /// Releases the lock, waits for a notification (or the timeout), takes the lock again.
    fn wait(&self, timeout: Option<f64>) -> Result<bool, Box<EvalAltResult>> {
        let lock = self.lock();
        if lock.owner() != Some(my_ids()) {
            return Err("wait(): the condition's lock must be held by this thread".into());
        }
        let until = deadline(timeout)?;
        let s = self.state();
        {
            let _guard = s.monitor.lock();
            s.waiters.fetch_add(1, Relaxed);
        }
        lock.release()?;
        let op = || Op::new(Action::Wait, self.object(), None);
        let woken = wait_until(&s.monitor, until, op, || {
            if s.signals.load(Relaxed) > 0 {
                s.signals.fetch_sub(1, Relaxed);
                true
            } else {
                false
            }
        });
        {
            let _guard = s.monitor.lock();
            s.waiters.fetch_sub(1, Relaxed);
        }
        // Python's wait() always returns with the lock held, even when interrupted.
        let reacquired = lock.acquire(None);
        let woken = woken?;
        reacquired?;
        Ok(woken)
    }

    fn notify(&self, n: u64) -> Result<(), Box<EvalAltResult>> {
        if self.lock().owner() != Some(my_ids()) {
            return Err("notify(): the condition's lock must be held by this thread".into());
        }
        let s = self.state();
        let notify = || {
            let _guard = s.monitor.lock();
            let waiting = s
                .waiters
                .load(Relaxed)
                .saturating_sub(s.signals.load(Relaxed));
            s.signals.fetch_add(n.min(waiting), Relaxed);
            s.monitor.notify_all();
            Ok(())
        };
        let op = || Op::new(Action::Notify, self.object(), None);
        sched::step(op, notify, |_| String::new())
    }
}

// ---- barrier --------------------------------------------------------------------------

#[repr(C)]
struct BarrierState {
    monitor: Monitor,
    serial: u64,
    parties: u64,
    arrived: AtomicU64,
    generation: AtomicU64,
}

/// A meeting point for `n` threads or processes (Python's `Barrier`).
#[derive(Clone, Debug, PartialEq)]
pub struct Barrier {
    pub offset: u64,
    held: Held,
}

impl Barrier {
    /// This process's reference to the object.
    pub fn held(&self) -> &Held {
        &self.held
    }

    pub fn new(parties: i64) -> Result<Barrier, Box<EvalAltResult>> {
        if parties < 1 {
            return Err("barrier(n): n must be at least 1".into());
        }
        let (offset, ptr) = alloc_with_monitor::<BarrierState>(kind::BARRIER, |p| unsafe {
            std::ptr::addr_of_mut!((*p).monitor)
        })?;
        // SAFETY: just allocated.
        unsafe {
            (*ptr).serial = arena()?.serial();
            (*ptr).parties = parties as u64;
        }
        Ok(Barrier {
            offset,
            held: Held::created(offset),
        })
    }

    pub fn receive(offset: u64, how: Receive) -> Result<Barrier, String> {
        let held = received::<BarrierState>(offset, kind::BARRIER, how)?;
        Ok(Barrier { offset, held })
    }

    fn state(&self) -> &'static BarrierState {
        state(self.offset)
    }

    /// The barrier as scheduling points name it.
    pub fn object(&self) -> Object {
        Object::new(Kind::Barrier, self.offset, self.state().serial)
    }

    fn wait(&self, timeout: Option<f64>) -> Result<i64, Box<EvalAltResult>> {
        let s = self.state();
        let op = || Op::new(Action::Wait, self.object(), None);
        let arrive = || {
            let _guard = s.monitor.lock();
            let index = s.arrived.fetch_add(1, Relaxed);
            let generation = s.generation.load(Relaxed);
            let last = index + 1 == s.parties;
            if last {
                s.arrived.store(0, Relaxed);
                s.generation.fetch_add(1, Relaxed);
                s.monitor.notify_all();
            }
            Ok((index, generation, last))
        };
        let (index, generation, last) = sched::step(op, arrive, |_| String::new())?;
        if last {
            return Ok(index as i64);
        }
        let passed = wait_until(&s.monitor, deadline(timeout)?, op, || {
            s.generation.load(Relaxed) != generation
        });
        match passed {
            Ok(true) => Ok(index as i64),
            other => {
                // Leaving early: no longer count as arrived (unless the barrier opened).
                let _guard = s.monitor.lock();
                if s.generation.load(Relaxed) == generation {
                    s.arrived.fetch_sub(1, Relaxed);
                } else {
                    return Ok(index as i64);
                }
                match other {
                    Ok(_) => Err("barrier wait timed out".into()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

fn hold_with(
    ctx: &NativeCallContext,
    acquire: impl FnOnce() -> Result<bool, Box<EvalAltResult>>,
    release: impl FnOnce() -> Result<(), Box<EvalAltResult>>,
    f: FnPtr,
) -> Result<Dynamic, Box<EvalAltResult>> {
    acquire()?;
    let result = f.call_within_context::<Dynamic>(ctx, ());
    let released = release();
    let value = result?;
    released?;
    Ok(value)
}

#[export_module]
pub mod sync_api {
    use super::*;

    pub type Semaphore = super::Semaphore;
    pub type Event = super::Event;
    pub type Condition = super::Condition;
    pub type Barrier = super::Barrier;

    /// Creates a semaphore with `n` permits: `acquire()` takes one (waiting while there is
    /// none), `release()` gives one back. Works between threads and processes.
    #[rhai_fn(return_raw)]
    pub fn semaphore(n: i64) -> Result<Semaphore, Box<EvalAltResult>> {
        super::Semaphore::new(n)
    }

    /// Takes a permit, waiting until one is free. Interruptible.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn sem_acquire(s: &mut Semaphore) -> Result<bool, Box<EvalAltResult>> {
        s.acquire(None)
    }

    /// Takes a permit, waiting at most `timeout` seconds; returns whether it got one.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn sem_acquire_timeout(
        s: &mut Semaphore,
        timeout: f64,
    ) -> Result<bool, Box<EvalAltResult>> {
        s.acquire(Some(timeout))
    }

    /// Gives a permit back.
    #[rhai_fn(name = "release", return_raw, pure)]
    pub fn sem_release(s: &mut Semaphore) -> Result<(), Box<EvalAltResult>> {
        s.release()
    }

    /// Runs `f` holding a permit; the permit is given back even if `f` throws.
    #[rhai_fn(name = "hold", return_raw, pure)]
    pub fn sem_hold(
        ctx: NativeCallContext,
        s: &mut Semaphore,
        f: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let s = s.clone();
        hold_with(&ctx, || s.acquire(None), || s.release(), f)
    }

    /// The number of free permits.
    #[rhai_fn(get = "value", pure)]
    pub fn sem_value(s: &mut Semaphore) -> i64 {
        s.state().value.load(Relaxed)
    }

    /// Creates an event: a flag that threads and processes can wait for.
    #[rhai_fn(return_raw)]
    pub fn event() -> Result<Event, Box<EvalAltResult>> {
        super::Event::new()
    }

    /// Sets the flag and wakes everyone waiting for it.
    #[rhai_fn(name = "set", return_raw, pure)]
    pub fn event_set(e: &mut Event) -> Result<(), Box<EvalAltResult>> {
        e.set(true)
    }

    /// Clears the flag.
    #[rhai_fn(name = "clear", return_raw, pure)]
    pub fn event_clear(e: &mut Event) -> Result<(), Box<EvalAltResult>> {
        e.set(false)
    }

    /// Whether the flag is set.
    #[rhai_fn(name = "is_set", pure)]
    pub fn event_is_set(e: &mut Event) -> bool {
        e.state().flag.load(Relaxed) != 0
    }

    /// Waits until the flag is set. Interruptible.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn event_wait(e: &mut Event) -> Result<bool, Box<EvalAltResult>> {
        e.wait(None)
    }

    /// Waits at most `timeout` seconds for the flag; returns whether it is set.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn event_wait_timeout(e: &mut Event, timeout: f64) -> Result<bool, Box<EvalAltResult>> {
        e.wait(Some(timeout))
    }

    /// Creates a condition variable with its own new lock.
    ///
    /// Hold the lock (`acquire`/`hold`), then `wait()` releases it until another thread
    /// calls `notify()`, and takes it again before returning.
    #[rhai_fn(return_raw)]
    pub fn condition() -> Result<Condition, Box<EvalAltResult>> {
        super::Condition::new(Lock::new()?)
    }

    /// Creates a condition variable that uses `lock`.
    #[rhai_fn(name = "condition", return_raw)]
    pub fn condition_with(lock: Lock) -> Result<Condition, Box<EvalAltResult>> {
        super::Condition::new(lock)
    }

    /// Takes the condition's lock. Interruptible.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn cond_acquire(c: &mut Condition) -> Result<bool, Box<EvalAltResult>> {
        c.lock().acquire(None)
    }

    /// Takes the condition's lock, waiting at most `timeout` seconds.
    #[rhai_fn(name = "acquire", return_raw, pure)]
    pub fn cond_acquire_timeout(
        c: &mut Condition,
        timeout: f64,
    ) -> Result<bool, Box<EvalAltResult>> {
        c.lock()
            .acquire((timeout >= 0.0).then(|| Duration::from_secs_f64(timeout)))
    }

    /// Releases the condition's lock.
    #[rhai_fn(name = "release", return_raw, pure)]
    pub fn cond_release(c: &mut Condition) -> Result<(), Box<EvalAltResult>> {
        c.lock().release()
    }

    /// Runs `f` holding the condition's lock (released even if `f` throws).
    #[rhai_fn(name = "hold", return_raw, pure)]
    pub fn cond_hold(
        ctx: NativeCallContext,
        c: &mut Condition,
        f: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let lock = c.lock();
        hold_with(&ctx, || lock.acquire(None), || lock.release(), f)
    }

    /// Releases the lock, waits for `notify`, and takes the lock again. Interruptible.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn cond_wait(c: &mut Condition) -> Result<bool, Box<EvalAltResult>> {
        c.wait(None)
    }

    /// Like `wait()`, at most `timeout` seconds; returns whether it was notified.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn cond_wait_timeout(c: &mut Condition, timeout: f64) -> Result<bool, Box<EvalAltResult>> {
        c.wait(Some(timeout))
    }

    /// Wakes one waiting thread (the lock must be held).
    #[rhai_fn(name = "notify", return_raw, pure)]
    pub fn cond_notify(c: &mut Condition) -> Result<(), Box<EvalAltResult>> {
        c.notify(1)
    }

    /// Wakes up to `n` waiting threads (the lock must be held).
    #[rhai_fn(name = "notify", return_raw, pure)]
    pub fn cond_notify_n(c: &mut Condition, n: i64) -> Result<(), Box<EvalAltResult>> {
        c.notify(n.max(0) as u64)
    }

    /// Wakes every waiting thread (the lock must be held).
    #[rhai_fn(name = "notify_all", return_raw, pure)]
    pub fn cond_notify_all(c: &mut Condition) -> Result<(), Box<EvalAltResult>> {
        c.notify(u64::MAX)
    }

    /// Creates a barrier for `n` parties: each `wait()` blocks until `n` threads or
    /// processes have called it, then all continue.
    #[rhai_fn(return_raw)]
    pub fn barrier(n: i64) -> Result<Barrier, Box<EvalAltResult>> {
        super::Barrier::new(n)
    }

    /// Waits for all parties; returns this party's arrival index (0 to n-1). Interruptible.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn barrier_wait(b: &mut Barrier) -> Result<i64, Box<EvalAltResult>> {
        b.wait(None)
    }

    /// Waits at most `timeout` seconds for all parties; throws on timeout.
    #[rhai_fn(name = "wait", return_raw, pure)]
    pub fn barrier_wait_timeout(b: &mut Barrier, timeout: f64) -> Result<i64, Box<EvalAltResult>> {
        b.wait(Some(timeout))
    }

    /// The number of parties the barrier waits for.
    #[rhai_fn(get = "parties", pure)]
    pub fn barrier_parties(b: &mut Barrier) -> i64 {
        b.state().parties as i64
    }
}
