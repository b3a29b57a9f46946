//! Inside `explore`: a pool's workers are played by workers the explorer schedules, as the
//! processes `spawn_process` starts there are. A task submitted while one of the pool's
//! `size` workers is free starts on it at once (one nobody used yet if there is one, else
//! the lowest-numbered free one); otherwise it waits in the pool's queue, and the first
//! worker to finish a task takes the next one, in submit order, as a real pool's workers
//! take them. A worker with nothing left to do ends. A process pool's task gets copies of
//! its function, arguments and results, as a worker process would.
//!
//! What the explorer's reduction sees: a submit and a worker that takes the next task
//! touch the pool's queue; a worker that leaves touches only itself, and a submit that
//! needs a worker that was used before looks at all of them. So tasks on workers of their
//! own do not depend on each other, and a pool of `n` explores the orders that matter.

use super::executor::{run_chunk, Chunk, ChunkResult, Executor, Lifecycle};
use crate::runtime::actors;
use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use crate::runtime::{threads, transfer};
use rhai::{Dynamic, EvalAltResult, NativeCallContext};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Whether the calling worker's pool calls are played: it runs under the explorer.
pub(super) fn playing() -> bool {
    sched::controller().is_some()
}

/// The played tasks of a pool: which workers are busy, and the tasks waiting for one.
#[derive(Default)]
pub(super) struct Slots {
    state: Mutex<SlotState>,
    changed: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// The explorer's run these tasks belong to: a run the explorer cut short leaves
    /// tasks behind, which a new run forgets.
    run: u64,
    /// The tasks waiting for a worker, in submit order.
    queue: VecDeque<Chunk>,
    /// Which workers run a task.
    busy: Vec<bool>,
    /// How many workers the run's tasks have used: a new task takes a worker nobody used
    /// yet, if there is one.
    used: usize,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn idle(&self) -> bool {
        let state = self.lock();
        state.queue.is_empty() && !state.busy.contains(&true)
    }

    fn sleep(&self, pause: Duration) {
        let state = self.lock();
        let _ = self.changed.wait_timeout(state, pause);
    }
}

/// A pool as its played tasks see it.
#[derive(Clone)]
pub(super) struct PlayedPool {
    pub(super) slots: Arc<Slots>,
    /// The pool as scheduling points name it.
    pub(super) id: u64,
    pub(super) size: usize,
    pub(super) terminated: Arc<AtomicBool>,
    /// Its workers are processes: tasks get copies.
    pub(super) processes: bool,
}

impl PlayedPool {
    /// The pool's queue (and `join`'s wait).
    fn queue(&self) -> Object {
        Object::new(Kind::Pool, self.id, 0)
    }

    /// One of its workers: each task passes on what it did to the next task on that
    /// worker (for the race detector), and its leaving frees the worker (for the
    /// explorer).
    fn worker(&self, worker: usize) -> Object {
        self.queue().element(worker as u64 + 1)
    }

    /// Runs `chunk` on a free worker, or queues it for the first worker that finishes.
    pub(super) fn submit(
        &self,
        ctx: &NativeCallContext,
        mut chunk: Chunk,
    ) -> Result<(), Box<EvalAltResult>> {
        if self.processes {
            chunk.function = copy(Dynamic::from(chunk.function), "the function")?.cast();
            for args in &mut chunk.items {
                for arg in args.iter_mut() {
                    *arg = copy(std::mem::take(arg), "an argument")?;
                }
            }
        }
        let run = sched::controller().map_or(0, |c| c.run());
        let mut state = self.slots.lock();
        if state.run != run {
            *state = SlotState {
                run,
                busy: vec![false; self.size],
                ..SlotState::default()
            };
        }
        let free = if state.used < self.size {
            state.used += 1;
            Some(state.used - 1)
        } else {
            (0..self.size).for_each(|w| sched::look(|| self.worker(w)));
            state.busy.iter().position(|busy| !busy)
        };
        sched::changed(|| self.queue());
        let Some(worker) = free else {
            state.queue.push_back(chunk);
            return Ok(());
        };
        state.busy[worker] = true;
        drop(state);
        let function = chunk.function.clone();
        let args = chunk.items.first().cloned().unwrap_or_default();
        let pool = self.clone();
        let started = threads::start(ctx, "PoolWorker", &function, false, &args, move |ctx| {
            pool.work(ctx, worker, chunk)
        });
        if started.is_err() {
            self.slots.lock().busy[worker] = false;
        }
        started.map(drop)
    }

    /// A worker's life: runs `chunk`, then the queued tasks, until there is none.
    fn work(
        &self,
        ctx: &NativeCallContext,
        worker: usize,
        chunk: Chunk,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        // It runs after the tasks the worker ran before.
        sched::take_over(self.worker(worker));
        let mut next = Some(chunk);
        while let Some(chunk) = next.take() {
            let result = self.run(ctx, &chunk);
            let Chunk { handoff, reply, .. } = chunk;
            sched::hand_over(self.worker(worker));
            // One step hands in the results and takes the next task, or leaves.
            sched::step(
                || Op::new(Action::Put, handoff.answered, None),
                || {
                    reply(result);
                    let mut state = self.slots.lock();
                    next = state.queue.pop_front();
                    if next.is_some() {
                        sched::changed(|| self.queue());
                    } else {
                        sched::look(|| self.queue());
                        state.busy[worker] = false;
                        sched::changed(|| self.worker(worker));
                    }
                    drop(state);
                    self.slots.changed.notify_all();
                    Ok(())
                },
                |_| String::new(),
            )?;
        }
        Ok(Dynamic::UNIT)
    }

    /// Runs one task's calls, unless the pool was terminated or the task cancelled.
    fn run(&self, ctx: &NativeCallContext, chunk: &Chunk) -> ChunkResult {
        if self.terminated.load(Ordering::SeqCst) {
            return ChunkResult::Broken("the pool was terminated".into());
        }
        if !chunk.may_start() {
            return ChunkResult::Broken("cancelled".into());
        }
        let name = actors::worker_name();
        chunk.handoff.run(|| match run_chunk(chunk, ctx, &name) {
            ChunkResult::Values(values) if self.processes => values
                .into_iter()
                .map(|v| copy(v, "the result"))
                .collect::<Result<Vec<_>, _>>()
                .map_or_else(|e| ChunkResult::Broken(e.to_string()), ChunkResult::Values),
            result => result,
        })
    }

    /// Waits until every played task of the pool has ended (`join`, `shutdown`): the
    /// caller then knows what they did.
    pub(super) fn join(&self) -> Result<(), Box<EvalAltResult>> {
        sched::wait(
            || Op::new(Action::Join, self.queue(), None),
            None,
            Order::InterruptFirst,
            || {
                (0..self.size).for_each(|w| sched::look(|| self.worker(w)));
                Ok(self.slots.idle().then_some(()))
            },
            |pause| self.slots.sleep(pause),
            |_| String::new(),
        )?;
        for worker in 0..self.size {
            sched::take_over(self.worker(worker));
        }
        Ok(())
    }
}

/// A process pool's task gets copies, as a worker process would.
fn copy(value: Dynamic, what: &str) -> Result<Dynamic, Box<EvalAltResult>> {
    transfer::copied_for_process(&value, what)
        .map_err(|e| format!("a pool task inside explore: {e}").into())
}

/// The executor of a pool made inside `explore`: all its tasks are played there, so it
/// starts no worker (a process pool would start processes on every schedule).
pub(super) struct OnlyPlayed {
    pub(super) size: usize,
    pub(super) lifecycle: Lifecycle,
}

impl Executor for OnlyPlayed {
    fn size(&self) -> usize {
        self.size
    }

    fn submit(&self, _chunk: Chunk, _context: &super::CallContext) -> Result<(), String> {
        Err("this pool was made inside explore: its tasks run only there".into())
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn pids(&self) -> Vec<i64> {
        // Its tasks are played by threads of the kernel, as processes inside explore are.
        vec![std::process::id() as i64; self.size]
    }
}
