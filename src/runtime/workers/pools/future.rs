//! `Future`: a task submitted with `submit`, whose result a script waits for, and the
//! functions that wait for several (`as_completed`, `wait`), as in `concurrent.futures`.

use super::executor::{next_message, replies_id, results_object, StartGate};
use crate::runtime::sched::{self, Action, Object, Op, Order};
use crate::runtime::sink::{self, OutputSink};
use crossbeam_channel::{Receiver, Sender};
use rhai::plugin::*;
use rhai::{Array, FnPtr, Map};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A task submitted with `submit`.
#[derive(Clone)]
pub struct Future(Arc<FutureState>);

/// A function to call with the future once it is done, and where it was added.
struct Callback {
    function: FnPtr,
    #[allow(deprecated)]
    context: rhai::NativeCallContextStore,
    sink: Option<Arc<dyn OutputSink>>,
}

struct FutureState {
    /// `Future-3`: unique in this process, for maps and messages.
    number: u64,
    outcome: Mutex<Option<Result<Dynamic, String>>>,
    /// How many `result()` calls are waiting; changed and read with `outcome` locked, so
    /// a failure either finds a waiter (who throws it) or is reported on stderr.
    waiting: AtomicUsize,
    done: Condvar,
    gate: Arc<StartGate>,
    /// Told (with `outcome` locked) when the future is done: `as_completed` and `wait`,
    /// each through the object its scheduling points name.
    watchers: Mutex<Vec<(Sender<usize>, usize, Object)>>,
    /// Its task is played by the explorer.
    played: bool,
    callbacks: Mutex<Vec<Callback>>,
}

static FUTURES: AtomicU64 = AtomicU64::new(0);

impl PartialEq for Future {
    fn eq(&self, other: &Future) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Future {
    pub(super) fn new(gate: Arc<StartGate>, played: bool) -> Future {
        Future(Arc::new(FutureState {
            number: FUTURES.fetch_add(1, Ordering::Relaxed) + 1,
            outcome: Mutex::new(None),
            waiting: AtomicUsize::new(0),
            done: Condvar::new(),
            gate,
            watchers: Mutex::new(Vec::new()),
            callbacks: Mutex::new(Vec::new()),
            played,
        }))
    }

    /// The future as scheduling points name it (the race detector's edge from the task).
    pub(super) fn object(&self) -> Object {
        results_object(Arc::as_ptr(&self.0) as u64, self.0.played)
    }

    fn name(&self) -> String {
        format!("Future-{}", self.0.number)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Result<Dynamic, String>>> {
        self.0.outcome.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_done(&self) -> bool {
        self.lock().is_some()
    }

    /// Sets the outcome unless one is set (a cancelled task); `unwaited` runs, with the
    /// outcome locked, when no `result()` waits (to report an error nobody would see).
    /// Then wakes the waiters and watchers and calls the done callbacks.
    pub(super) fn complete(&self, outcome: Result<Dynamic, String>, unwaited: impl FnOnce()) {
        let mut slot = self.lock();
        if slot.is_some() {
            return;
        }
        *slot = Some(outcome);
        if self.0.waiting.load(Ordering::SeqCst) == 0 {
            unwaited();
        }
        for (watcher, index, object) in self
            .0
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = watcher.send(index);
            sched::changed(|| object);
        }
        drop(slot);
        self.0.done.notify_all();
        let callbacks: Vec<Callback> =
            std::mem::take(&mut *self.0.callbacks.lock().unwrap_or_else(|e| e.into_inner()));
        for callback in callbacks {
            self.call(callback);
        }
    }

    /// Calls a done callback with this future; an error it throws is reported on stderr
    /// and otherwise ignored, as Python does.
    fn call(&self, callback: Callback) {
        let Ok(engine) = crate::runtime::engines::script_engine() else {
            return;
        };
        #[allow(deprecated)]
        let ctx = callback.context.create_context(&engine);
        let run = || {
            callback
                .function
                .call_within_context::<Dynamic>(&ctx, (Dynamic::from(self.clone()),))
        };
        let outcome = match callback.sink.clone() {
            Some(sink) => sink::with_sink(sink, run),
            None => run(),
        };
        if let Err(err) = outcome {
            crate::runtime::failures::report_uncaught(
                callback.sink.as_ref(),
                &format!("a done callback of {}", self.name()),
                &crate::runtime::failures::describe_error(&err),
            );
        }
    }

    /// Tells `watcher` (with `index`) once the future is done: at once if it is.
    fn watch(&self, watcher: &Sender<usize>, index: usize, object: Object) {
        let slot = self.lock();
        if slot.is_some() {
            let _ = watcher.send(index);
        } else {
            self.0
                .watchers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((watcher.clone(), index, object));
        }
    }

    pub(super) fn wait(&self, timeout: Option<Duration>) -> Result<Dynamic, Box<EvalAltResult>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // Counted with `outcome` locked (see `FutureState::waiting`).
        {
            let _outcome = self.lock();
            self.0.waiting.fetch_add(1, Ordering::SeqCst);
        }
        let _waiting = Waiting(&self.0.waiting);
        let done = sched::wait_for_state(
            || Op::new(Action::Join, self.object(), None),
            deadline,
            // An interrupt wins over a result that the interrupt itself caused.
            Order::InterruptFirst,
            &self.0.outcome,
            &self.0.done,
            Option::clone,
            |_| String::new(),
        )?;
        match done {
            Some(done) => done.map_err(Into::into),
            None => Err("result: the task has not finished yet (timeout)".into()),
        }
    }
}

/// The futures of `as_completed`, handed out as they finish.
#[derive(Clone)]
pub struct Completions {
    futures: Vec<Future>,
    finished: Receiver<usize>,
    left: usize,
    /// What its scheduling points call it.
    object: Object,
    until: Option<Instant>,
}

impl Completions {
    fn new(futures: Vec<Future>, until: Option<Instant>) -> Completions {
        // The same future twice is handed out once, as Python's set of futures.
        let mut unique: Vec<Future> = Vec::new();
        for f in futures {
            if !unique.contains(&f) {
                unique.push(f);
            }
        }
        let (tell, finished) = crossbeam_channel::unbounded();
        // Waiting is the explorer's to schedule when it plays one of the tasks.
        let played = unique.iter().any(|f| f.0.played);
        let object = results_object(replies_id(), played);
        for (index, f) in unique.iter().enumerate() {
            f.watch(&tell, index, object);
        }
        Completions {
            left: unique.len(),
            futures: unique,
            finished,
            object,
            until,
        }
    }
}

impl Iterator for Completions {
    type Item = Result<Future, Box<EvalAltResult>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let index = next_message(&self.finished, self.object, self.until);
        match index {
            Ok(Some(index)) => {
                self.left -= 1;
                self.futures.get(index).cloned().map(Ok)
            }
            Ok(None) => {
                self.left = 0;
                Some(Err(format!(
                    "as_completed: {} futures unfinished when the time ran out",
                    self.futures.iter().filter(|f| !f.is_done()).count()
                )
                .into()))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

fn futures_of(items: Array, what: &str) -> Result<Vec<Future>, Box<EvalAltResult>> {
    items
        .into_iter()
        .map(|item| {
            let name = item.type_name();
            item.try_cast::<Future>().ok_or_else(|| {
                format!("{what}: expected an array of futures, found a {name}").into()
            })
        })
        .collect()
}

/// `wait`: the futures done and not done once all are done or the time ran out.
fn wait_all(futures: Array, until: Option<Instant>) -> Result<Map, Box<EvalAltResult>> {
    let futures = futures_of(futures, "wait")?;
    let mut completions = Completions::new(futures.clone(), until);
    while completions.left > 0 {
        match completions.next() {
            Some(Err(e)) if crate::runtime::interrupt::is_requested() => return Err(e),
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    let (done, not_done): (Vec<Future>, Vec<Future>) =
        completions.futures.into_iter().partition(Future::is_done);
    let mut map = Map::new();
    map.insert(
        "done".into(),
        Dynamic::from_array(done.into_iter().map(Dynamic::from).collect()),
    );
    map.insert(
        "not_done".into(),
        Dynamic::from_array(not_done.into_iter().map(Dynamic::from).collect()),
    );
    Ok(map)
}

/// Registers `for f in as_completed(futures)` and `for r in p.imap(f, xs)`.
pub fn register_iterators(module: &mut rhai::Module) {
    module.set_iterator_result::<Completions, Future>();
    module.set_iterator_result::<super::Results, Dynamic>();
}

#[export_module]
pub mod future_api {
    use super::*;

    pub type Future = super::Future;
    pub type Completions = super::Completions;

    /// Waits for the task's value (throws its error if it failed). Interruptible.
    #[rhai_fn(name = "result", return_raw, pure)]
    pub fn result(f: &mut Future) -> Result<Dynamic, Box<EvalAltResult>> {
        f.wait(None)
    }

    /// Waits at most `timeout` seconds (int or float) for the task's value; throws on
    /// timeout.
    #[rhai_fn(name = "result", return_raw, pure)]
    pub fn result_timeout(f: &mut Future, timeout: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let seconds = crate::runtime::time::seconds(&timeout, "result")?;
        f.wait(Some(crate::runtime::time::duration(seconds, "result")?))
    }

    /// Waits for the task and returns its error message, or `()` if it succeeded
    /// (Python's `exception()`).
    #[rhai_fn(name = "exception", return_raw, pure)]
    pub fn exception(f: &mut Future) -> Result<Dynamic, Box<EvalAltResult>> {
        match f.wait(None) {
            Ok(_) => Ok(Dynamic::UNIT),
            // Interrupted while waiting: that is the error to throw.
            Err(e) if matches!(*e, EvalAltResult::ErrorTerminated(..)) => Err(e),
            Err(_) => match f.lock().clone() {
                Some(Err(message)) => Ok(Dynamic::from(message)),
                _ => Ok(Dynamic::UNIT),
            },
        }
    }

    /// Whether the task has finished (or failed, or was cancelled).
    #[rhai_fn(get = "done", pure)]
    pub fn done(f: &mut Future) -> bool {
        f.is_done()
    }

    /// Whether the task is running now: started and not finished.
    #[rhai_fn(get = "running", pure)]
    pub fn running(f: &mut Future) -> bool {
        f.0.gate.started() && !f.is_done()
    }

    /// `Future-3`: a name unique in this process, to use as a map key
    /// (`names[f.id] = url`), as Python uses the future itself.
    #[rhai_fn(get = "id", pure)]
    pub fn id(f: &mut Future) -> String {
        f.name()
    }

    /// Calls `g(future)` once the task is done (at once if it is): on the thread that
    /// finished it, or on the caller's. An error `g` throws is printed and ignored.
    #[rhai_fn(name = "add_done_callback", pure)]
    pub fn add_done_callback(ctx: NativeCallContext, f: &mut Future, g: FnPtr) {
        #[allow(deprecated)]
        let callback = Callback {
            function: g,
            context: ctx.store_data(),
            sink: sink::current(),
        };
        let slot = f.lock();
        if slot.is_none() {
            f.0.callbacks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(callback);
            return;
        }
        drop(slot);
        f.call(callback);
    }

    /// Cancels the task if it has not started; returns whether it was cancelled. A
    /// cancelled task is `done` at once, and its `result()` throws "cancelled".
    #[rhai_fn(name = "cancel", pure)]
    pub fn cancel(f: &mut Future) -> bool {
        if !f.0.gate.cancel() {
            return false;
        }
        f.complete(Err("cancelled".into()), || {});
        true
    }

    /// Whether two futures are the same task.
    #[rhai_fn(name = "==", pure)]
    pub fn equal(f: &mut Future, g: Future) -> bool {
        *f == g
    }

    /// Whether two futures are different tasks.
    #[rhai_fn(name = "!=", pure)]
    pub fn not_equal(f: &mut Future, g: Future) -> bool {
        *f != g
    }

    /// Shows a future as `<Future-3 pending>`, `<Future-3 running>` or `<Future-3 done>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn future_to_string(f: &mut Future) -> String {
        let state = if f.is_done() {
            "done"
        } else if running(f) {
            "running"
        } else {
            "pending"
        };
        format!("<{} {state}>", f.name())
    }

    /// Hands out the futures one by one as they finish, in a `for` loop, while the others
    /// still run (Python's `concurrent.futures.as_completed`).
    ///
    /// ```rhai
    /// let futures = urls.map(|u| p.submit(fetch, u));
    /// for f in as_completed(futures) { print(f.result()); }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn as_completed(futures: Array) -> Result<Completions, Box<EvalAltResult>> {
        Ok(Completions::new(futures_of(futures, "as_completed")?, None))
    }

    /// `as_completed` that gives up `timeout` seconds from now: the loop then throws.
    #[rhai_fn(name = "as_completed", return_raw)]
    pub fn as_completed_timeout(
        futures: Array,
        timeout: Dynamic,
    ) -> Result<Completions, Box<EvalAltResult>> {
        let until = crate::runtime::time::deadline(&timeout, "as_completed")?;
        Ok(Completions::new(
            futures_of(futures, "as_completed")?,
            until,
        ))
    }

    /// Waits until every future is done; returns `#{done: [...], not_done: [...]}`
    /// (Python's `concurrent.futures.wait`). Interruptible.
    #[rhai_fn(name = "wait", return_raw)]
    pub fn wait(futures: Array) -> Result<Map, Box<EvalAltResult>> {
        wait_all(futures, None)
    }

    /// `wait(futures)` for at most `timeout` seconds (int or float).
    #[rhai_fn(name = "wait", return_raw)]
    pub fn wait_timeout(futures: Array, timeout: Dynamic) -> Result<Map, Box<EvalAltResult>> {
        wait_all(futures, crate::runtime::time::deadline(&timeout, "wait")?)
    }
}
