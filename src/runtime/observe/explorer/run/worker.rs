//! A worker of a run, as its thread sees the run: the `Controller` its thread is under,
//! which waits for the worker's turn at every operation, records what the operation did,
//! and hands the turn on when the worker blocks or ends.

use super::{touch, wake, Run, Status, Wakeup, WorkerState, SPAWN};
use crate::runtime::observe::explorer::dpor::{Access, Target};
use crate::runtime::sched::{Action, Controller, Detail, Kind, Object, Op, Permits, Wake};
use rhai::{Dynamic, EvalAltResult, FnPtr, NativeCallContext};
use std::sync::Arc;

/// A worker of a run: the controller its thread is under.
pub struct Worker {
    pub(super) run: Arc<Run>,
    pub(super) id: usize,
}

impl Worker {
    /// Waits for this worker's turn to do `op`, choosing who runs if it is running.
    fn take_turn(&self, op: &Op) -> Result<(), Box<EvalAltResult>> {
        let run = &self.run;
        let mut state = run.lock();
        if let Some(ending) = &state.ending {
            return Err(ending.error());
        }
        let me = self.id;
        let was = state.workers[me].status;
        state.workers[me].status = Status::Ready;
        // Objects are numbered as operations first announce them: the same order in every
        // run of one schedule.
        state.names.meet(&op.object);
        if state.player.is_some() {
            state.workers[me].next = match op.action {
                Action::Spawn => format!("{SPAWN} a new worker"),
                _ => state.names.describe(op, ""),
            };
        }
        if state.running == Some(me) {
            let yielding = op.action == Action::Sleep;
            if let Err(ending) = run.decide(&mut state, me, yielding) {
                run.unlock(state);
                return Err(ending.error());
            }
        } else if was == Status::Starting {
            // The spawner waits in `started` for this.
            state.to_wake.push(Wakeup::Events);
        }
        run.await_turn(state, me).map(drop)
    }
}

impl Controller for Worker {
    fn before(&self, op: &Op) -> Result<(), Box<EvalAltResult>> {
        let outcome = self.take_turn(op);
        // Workers of a run that ended still give back what they hold as they unwind (a
        // guard, `hold`), so that nothing stays locked for the next run or cell.
        if outcome.is_err() && op.action == Action::Release && self.run.lock().ending.is_some() {
            return Ok(());
        }
        outcome
    }

    fn after(&self, op: &Op, detail: Detail) {
        let mut state = self.run.lock();
        if state.ending.is_some() {
            return;
        }
        let text = if state.traced {
            state.names.describe(op, &detail())
        } else {
            String::new()
        };
        let access = op
            .action
            .is_access()
            .then_some((op.object, op.action != Action::Read));
        self.run.push_step(&mut state, self.id, text, access);
        let number = state.names.meet(&op.object);
        touch(&mut state, self.id, Access::of(op, number));
        if op.action != Action::Read {
            wake(&mut state, &op.object);
        }
    }

    fn controls(&self, kind: Kind) -> bool {
        // Real processes and pool tasks run outside the explorer: waiting for them is a
        // real wait. (A process started inside is played by a thread, joined as a thread.)
        !matches!(kind, Kind::Process | Kind::Future)
    }

    fn blocked(&self, op: &Op, timed: bool) -> Result<Wake, Box<EvalAltResult>> {
        let run = &self.run;
        let mut state = run.lock();
        if let Some(ending) = &state.ending {
            return Err(ending.error());
        }
        let me = self.id;
        // A thread (or a played process) is called by its worker's name.
        let worker = (op.object.kind == Kind::Thread)
            .then(|| state.workers.get(op.object.serial as usize))
            .flatten();
        let awaited = match worker {
            Some(w) => w.name.clone(),
            None => state.names.name(&op.object),
        };
        let text = format!("blocked on {awaited}");
        run.push_step(&mut state, me, text, None);
        let number = state.names.meet(&op.object);
        touch(&mut state, me, Access::attempt(op, number));
        if state.player.is_some() {
            state.workers[me].next = format!("try again to {}", state.names.describe(op, ""));
        }
        let worker = &mut state.workers[me];
        worker.status = Status::Blocked;
        worker.blocked_on = Some(op.object);
        worker.woken = false;
        worker.timed = timed;
        if let Err(ending) = run.decide(&mut state, me, false) {
            run.unlock(state);
            return Err(ending.error());
        }
        let mut state = run.await_turn(state, me)?;
        let worker = &mut state.workers[me];
        let woken = worker.woken;
        worker.status = Status::Ready;
        worker.blocked_on = None;
        Ok(if woken { Wake::Retry } else { Wake::TimedOut })
    }

    fn spawn(
        &self,
        function: &FnPtr,
        args: &[Dynamic],
        ctx: &NativeCallContext,
        noun: &str,
    ) -> (Arc<dyn Controller>, u64) {
        let mut state = self.run.lock();
        let id = state.workers.len();
        let name = if function.is_anonymous() {
            format!("{noun}-{id}")
        } else {
            format!("{noun}-{id} ({})", function.fn_name())
        };
        state.names.capture(ctx, function, args);
        let mut worker = WorkerState::new(name.clone(), Status::Starting);
        worker.spawned_at = Some(state.transitions.len());
        state.workers.push(worker);
        // The spawn step (just recorded) names the new thread.
        let spawner = state.workers[self.id].name.clone();
        if let Some(step) = state.steps.last_mut().filter(|s| s.worker == self.id) {
            step.text = format!("{SPAWN} {name}");
            let line = format!("{spawner}: {}", step.text);
            if let Some(player) = &state.player {
                player.step(state.steps.len(), &line);
            }
        }
        let worker = Worker {
            run: self.run.clone(),
            id,
        };
        (Arc::new(worker), id as u64)
    }

    fn started(&self) -> Result<(), Box<EvalAltResult>> {
        let me = self.id;
        let state = self.run.lock();
        self.run
            .await_state(state, &self.run.events, |state| {
                state.workers[me].status != Status::Starting
            })
            .map(drop)
    }

    fn touched(&self, object: Object, changed: bool) {
        let mut state = self.run.lock();
        let target = Target::object(&object, state.names.meet(&object));
        // Whoever's step is under way: a new worker runs its first lines during its
        // spawner's step.
        if let Some(step) = state.open.as_mut() {
            step.touch(if changed {
                Access::write(target)
            } else {
                Access::read(target)
            });
        }
        if changed {
            wake(&mut state, &object);
        }
    }

    fn permits(&self, object: Object, what: Permits) {
        let mut state = self.run.lock();
        let number = state.names.meet(&object);
        let me = self.id;
        for access in Access::of_permits(&object, number, what) {
            touch(&mut state, me, Some(access));
        }
    }

    fn run(&self) -> u64 {
        self.run.serial
    }

    fn cpu(&self) -> Option<usize> {
        self.run.cpu
    }

    fn finished(&self, object: Object) {
        let run = &self.run;
        let mut state = run.lock();
        let me = self.id;
        state.workers[me].status = Status::Finished;
        wake(&mut state, &object);
        // Its joiners wait for this.
        let end = Access::write(Target::object(&object, state.names.meet(&object)));
        touch(&mut state, me, Some(end));
        // Once the run has ended (the reduction cut it short, an interrupt), the workers
        // only unwind: nobody is chosen any more, and the ending stays what it was (not a
        // deadlock of workers that were stopped while blocked).
        if state.running == Some(me) && state.ending.is_none() {
            // A deadlock found here is recorded in the run; nobody is left to tell.
            let _ = run.decide(&mut state, me, false);
        }
        // `finish` waits for this, and so does `started` if it ended before its first step.
        state.to_wake.push(Wakeup::Events);
        run.unlock(state);
    }
}
