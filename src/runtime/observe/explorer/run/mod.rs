//! One controlled run of the program under the explorer: the workers (the main function
//! and the threads it starts) take turns, one at a time, and at every scheduling point
//! the strategy picks who goes next. Each worker reaches the run through its own
//! [`Worker`] handle, the [`Controller`] installed on its thread.

mod worker;

pub use worker::Worker;

use super::dpor::{Access, Pick, Target, Transition};
use super::strategy::{Decision, Strategy};
use crate::runtime::interrupted_error;
use crate::runtime::observe::names::Names;
use crate::runtime::sched::{Controller, Object, POLL};
use rhai::EvalAltResult;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Started, not at its first operation yet.
    Starting,
    /// Waiting for its turn (or running, when it is `running`).
    Ready,
    /// Its operation cannot go on until another worker acts on `blocked_on`.
    Blocked,
    Finished,
}

#[derive(Debug)]
struct WorkerState {
    name: String,
    status: Status,
    blocked_on: Option<Object>,
    /// Another worker acted on `blocked_on` since this one blocked.
    woken: bool,
    /// The blocked wait has a timeout: the explorer may let it run out.
    timed: bool,
    /// What it does when it runs next (for the player of `play`).
    next: String,
    /// Fair scheduling (as in CHESS): it yielded (slept) without having changed anything
    /// since its previous yield, so it spins; it gives way until another worker has moved.
    gave_way: bool,
    /// It yielded before.
    yielded: bool,
    /// It changed something since its previous yield.
    wrote: bool,
    /// Its next step follows the step of another worker that ended its giving way.
    follows_way: bool,
    /// The step during which it was spawned, until its first step.
    spawned_at: Option<usize>,
    /// What its thread waits on for its turn: each worker is woken alone, not the whole
    /// run at every step (that cost more than the steps themselves).
    wakeup: Arc<Condvar>,
}

impl WorkerState {
    fn new(name: String, status: Status) -> WorkerState {
        WorkerState {
            name,
            status,
            blocked_on: None,
            woken: false,
            timed: false,
            next: String::new(),
            gave_way: false,
            yielded: false,
            wrote: false,
            follows_way: false,
            spawned_at: None,
            wakeup: Arc::new(Condvar::new()),
        }
    }

    fn can_run(&self) -> bool {
        match self.status {
            Status::Ready => true,
            Status::Blocked => self.woken || self.timed,
            Status::Starting | Status::Finished => false,
        }
    }
}

/// Why a run was cut short.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// Every worker still there was blocked.
    Deadlock,
    /// The schedule took more steps than allowed (a worker that spins forever).
    StepLimit(usize),
    Interrupted,
    /// A replayed schedule names a worker that cannot run.
    Unfit(String),
    /// The reduction stopped the run: it only repeats schedules already explored.
    Redundant,
}

impl Ending {
    pub fn error(&self) -> Box<EvalAltResult> {
        match self {
            Ending::Deadlock => "deadlock: every thread is waiting for another one".into(),
            Ending::StepLimit(n) => {
                format!("explore: this schedule ran more than {n} steps").into()
            }
            Ending::Interrupted => interrupted_error(),
            Ending::Unfit(message) => message.clone().into(),
            Ending::Redundant => "explore: this schedule repeats one already explored".into(),
        }
    }
}

/// One line of a trace: what a worker did.
#[derive(Clone, Debug)]
pub struct Step {
    pub worker: usize,
    pub text: String,
    /// The worker got its turn by preempting another one.
    pub preempted: bool,
    /// A data access: the object and whether it wrote (for the race highlighted in traces).
    pub access: Option<(Object, bool)>,
    /// The named shared values after the step (`counter = 1`).
    pub values: String,
}

struct State {
    workers: Vec<WorkerState>,
    running: Option<usize>,
    strategy: Strategy,
    decisions: Vec<Decision>,
    preemptions: u32,
    steps: Vec<Step>,
    ending: Option<Ending>,
    step_limit: usize,
    /// The next step is a preemption.
    preempting: bool,
    names: Names,
    /// Who chooses instead of the strategy (`play`).
    player: Option<Arc<dyn Player>>,
    /// The steps that ended, and the one under way (for the reduction).
    transitions: Vec<Transition>,
    open: Option<Transition>,
    /// Whether steps are written down (their text and the values after them), for a trace.
    traced: bool,
    /// Who is to be woken once the state is unlocked (see [`Run::unlock`]).
    to_wake: Vec<Wakeup>,
}

/// A wakeup put off until the state is unlocked.
#[derive(Clone)]
enum Wakeup {
    Worker(Arc<Condvar>),
    /// Whoever waits in `finish` or `started`.
    Events,
}

/// How a spawn step starts (`spawn Thread-1`).
const SPAWN: &str = "spawn";

/// Someone who chooses who moves (the learner, in `play`), and sees every step.
pub trait Player: Send + Sync {
    /// Step `number` happened: `Thread-1: read counter.value → 0`.
    fn step(&self, number: usize, line: &str);
    /// Who moves next, one of `choices` (a worker and its next step, `Thread-1: write
    /// counter.value`); `default` runs when nobody is preempted; `values` are the shared
    /// values now. An `Ending` stops the run (an interrupt, the player quits).
    fn choose(
        &self,
        choices: &[(usize, String)],
        default: usize,
        values: &str,
    ) -> Result<usize, Ending>;
}

/// What a finished run leaves.
pub struct Record {
    pub strategy: Strategy,
    pub decisions: Vec<Decision>,
    pub transitions: Vec<Transition>,
    pub steps: Vec<Step>,
    pub ending: Option<Ending>,
    pub workers: Vec<String>,
    /// What the run's objects are called.
    pub names: Names,
}

pub struct Run {
    state: Mutex<State>,
    /// What `finish` and `started` wait on: a worker starts or finishes, the run ends.
    events: Condvar,
    /// New for every run (see `Controller::run`).
    serial: u64,
    /// The CPU its workers run on (see `sched::Controller::cpu`).
    cpu: Option<usize>,
}

impl Run {
    /// A run whose workers run on `cpu` (see `sched::cpu_now`); `traced`: its steps are
    /// written down (otherwise only what the reduction and the step limit need is kept).
    pub fn new(
        mut strategy: Strategy,
        step_limit: usize,
        names: Names,
        cpu: Option<usize>,
        traced: bool,
    ) -> Arc<Run> {
        if let Strategy::Dpor(dpor) = &mut strategy {
            dpor.start_run();
        }
        Arc::new(Run {
            state: Mutex::new(State {
                workers: vec![WorkerState::new("main".into(), Status::Ready)],
                running: Some(0),
                strategy,
                decisions: Vec::new(),
                preemptions: 0,
                steps: Vec::new(),
                ending: None,
                step_limit,
                preempting: false,
                names,
                player: None,
                transitions: Vec::new(),
                open: Some(Transition::default()),
                traced,
                to_wake: Vec::new(),
            }),
            events: Condvar::new(),
            serial: {
                static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
            },
            cpu,
        })
    }

    /// Lets `player` choose at every point where several workers could run.
    pub fn play(&self, player: Arc<dyn Player>) {
        self.lock().player = Some(player);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Unlocks the state and wakes whoever is to be woken. Woken with the state still
    /// locked, a worker on the same CPU may run at once, only to find the state locked
    /// and sleep again: a pair of context switches for nothing.
    fn unlock(&self, mut state: MutexGuard<'_, State>) {
        let to_wake = std::mem::take(&mut state.to_wake);
        drop(state);
        for wakeup in to_wake {
            match wakeup {
                Wakeup::Worker(condvar) => condvar.notify_one(),
                Wakeup::Events => self.events.notify_all(),
            }
        }
    }

    /// The handle of the main worker (number 0), for the thread that calls `f`.
    pub fn main(self: &Arc<Run>) -> Arc<dyn Controller> {
        Arc::new(Worker {
            run: self.clone(),
            id: 0,
        })
    }

    /// Waits until every worker has finished, and returns what the run recorded.
    pub fn finish(&self) -> Record {
        let mut state = self.lock();
        while state.workers.iter().any(|w| w.status != Status::Finished) {
            if crate::runtime::interrupt::is_requested() && state.ending.is_none() {
                state.ending = Some(Ending::Interrupted);
                self.wake_everyone(&state);
            }
            state = self
                .events
                .wait_timeout(state, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some(mut open) = state.open.take() {
            open.cut = true;
            state.transitions.push(open);
        }
        Record {
            strategy: std::mem::replace(&mut state.strategy, Strategy::dfs(0)),
            decisions: std::mem::take(&mut state.decisions),
            transitions: std::mem::take(&mut state.transitions),
            steps: std::mem::take(&mut state.steps),
            ending: state.ending.clone(),
            workers: state.workers.iter().map(|w| w.name.clone()).collect(),
            names: std::mem::take(&mut state.names),
        }
    }

    /// Waits until it is `me`'s turn.
    fn await_turn<'a>(
        &'a self,
        state: MutexGuard<'a, State>,
        me: usize,
    ) -> Result<MutexGuard<'a, State>, Box<EvalAltResult>> {
        let wakeup = state.workers[me].wakeup.clone();
        self.await_state(state, &wakeup, |state| state.running == Some(me))
    }

    /// Waits on `wakeup` until `ready` says so; an error once the run ends (an interrupt
    /// ends it).
    fn await_state<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        wakeup: &Condvar,
        ready: impl Fn(&State) -> bool,
    ) -> Result<MutexGuard<'a, State>, Box<EvalAltResult>> {
        loop {
            if !state.to_wake.is_empty() {
                self.unlock(state);
                state = self.lock();
            }
            if let Some(ending) = &state.ending {
                return Err(ending.error());
            }
            if ready(&state) {
                return Ok(state);
            }
            if crate::runtime::interrupt::is_requested() {
                state.ending = Some(Ending::Interrupted);
                self.wake_everyone(&state);
                return Err(interrupted_error());
            }
            state = wakeup
                .wait_timeout(state, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// `me` stops running (at a scheduling point, blocked or finished): picks who runs
    /// next. `yielding`: `me` sleeps, so running another worker preempts nobody.
    fn decide(&self, state: &mut State, me: usize, yielding: bool) -> Result<(), Ending> {
        close_step(state, yielding);
        let can_run = |w: &usize| state.workers[*w].can_run();
        let mut enabled: Vec<usize> = (0..state.workers.len())
            .filter(can_run)
            .filter(|&w| !state.workers[w].gave_way)
            .collect();
        if enabled.is_empty() {
            // Nobody else can move: a spinning worker goes on (and, if nothing it waits for
            // can ever happen, runs into the step limit: a livelock, reported as such).
            enabled = (0..state.workers.len()).filter(can_run).collect();
        }
        if enabled.is_empty() {
            state.running = None;
            if state.workers.iter().any(|w| w.status == Status::Blocked) {
                state.ending = Some(Ending::Deadlock);
                self.wake_everyone(state);
                return Err(Ending::Deadlock);
            }
            state.to_wake.push(Wakeup::Events);
            return Ok(());
        }
        let me_can_run = state.workers[me].can_run();
        let current = (me_can_run && !yielding).then_some(me);
        let default = match current {
            Some(me) => me,
            // After a yield, or when `me` stopped: the next worker after `me`, in turn.
            None => enabled
                .iter()
                .copied()
                .find(|&w| w > me)
                .unwrap_or(enabled[0]),
        };
        let index = state.decisions.len();
        let multiple = enabled.len() > 1;
        let chosen = match pick(state, &enabled, me, default, index) {
            Ok(chosen) => chosen,
            Err(ending) => {
                state.ending = Some(ending.clone());
                self.wake_everyone(state);
                return Err(ending);
            }
        };
        if multiple {
            state.decisions.push(Decision {
                enabled,
                chosen,
                default,
                current,
                preemptions: state.preemptions,
            });
            if current.is_some_and(|c| c != chosen) {
                state.preemptions += 1;
                state.preempting = true;
            }
        }
        self.give_turn(state, me, chosen, multiple.then_some(index));
        Ok(())
    }

    /// `chosen` runs next, after `me` (the calling worker): its step begins (after
    /// `decision`, if several could run).
    fn give_turn(&self, state: &mut State, me: usize, chosen: usize, decision: Option<usize>) {
        let worker = &mut state.workers[chosen];
        let mut step = Transition {
            worker: chosen,
            accesses: Vec::new(),
            decision,
            spawned_by: worker.spawned_at.take(),
            cut: false,
        };
        if std::mem::take(&mut worker.follows_way) {
            step.touch(gave_way(chosen, false));
        }
        state.open = Some(step);
        state.running = Some(chosen);
        if chosen != me {
            let wakeup = Wakeup::Worker(state.workers[chosen].wakeup.clone());
            state.to_wake.push(wakeup);
        }
    }

    /// The run ended: every worker unwinds, and `finish` returns once they have.
    fn wake_everyone(&self, state: &State) {
        for worker in &state.workers {
            worker.wakeup.notify_one();
        }
        self.events.notify_all();
    }

    fn push_step(
        &self,
        state: &mut State,
        worker: usize,
        text: String,
        access: Option<(Object, bool)>,
    ) {
        let preempted = std::mem::take(&mut state.preempting);
        let values = if state.traced {
            state.names.values_now()
        } else {
            String::new()
        };
        // A spawn is shown once `spawn` has named the new worker.
        if let Some(player) = state.player.as_ref().filter(|_| text != SPAWN) {
            let number = state.steps.len() + 1;
            player.step(number, &format!("{}: {text}", state.workers[worker].name));
        }
        state.steps.push(Step {
            worker,
            text,
            preempted,
            access,
            values,
        });
        if state.steps.len() > state.step_limit && state.ending.is_none() {
            state.ending = Some(Ending::StepLimit(state.step_limit));
            self.wake_everyone(state);
        }
    }
}

/// Wakes the workers blocked on `object` (another worker acted on it).
fn wake(state: &mut State, object: &Object) {
    for w in &mut state.workers {
        if w.status == Status::Blocked
            && w.blocked_on
                .is_some_and(|b| b.kind == object.kind && b.id == object.id)
        {
            w.woken = true;
        }
    }
}

/// Who runs next among `enabled`: the player's choice, or the strategy's (the reduction
/// sees every point, the other strategies only decisions between several workers).
fn pick(
    state: &mut State,
    enabled: &[usize],
    me: usize,
    default: usize,
    index: usize,
) -> Result<usize, Ending> {
    if let (Strategy::Dpor(dpor), None) = (&mut state.strategy, &state.player) {
        return match dpor.pick(enabled, default) {
            Pick::Run(w) => Ok(w),
            Pick::Redundant => Err(Ending::Redundant),
            Pick::Unfit => Err(Ending::Unfit(unfit_rerun(index))),
        };
    }
    if enabled.len() == 1 {
        return Ok(enabled[0]);
    }
    match &state.player {
        Some(player) => {
            let choices: Vec<(usize, String)> = enabled
                .iter()
                .map(|&w| {
                    let worker = &state.workers[w];
                    (w, format!("{}: {}", worker.name, worker.next))
                })
                .collect();
            player.choose(&choices, default, &state.names.values_now())
        }
        None => state
            .strategy
            .choose(index, enabled, me, default)
            .map_err(Ending::Unfit),
    }
}

/// The running worker's step touches `access`.
fn touch(state: &mut State, worker: usize, access: Option<Access>) {
    if let (Some(step), Some(access)) = (state.open.as_mut(), access) {
        if step.worker == worker {
            step.touch(access);
        }
    }
}

/// The token that orders a worker's giving way with the step that ends it.
fn gave_way(worker: usize, write: bool) -> Access {
    let target = Target::GaveWay(worker);
    if write {
        Access::write(target)
    } else {
        Access::read(target)
    }
}

/// The step under way ended (its worker `yielding` if it is about to sleep): it counts as
/// moving for the workers that gave way, and as progress for its own worker, who gives
/// way itself if it yields without progress since its previous yield.
fn close_step(state: &mut State, yielding: bool) {
    let Some(mut step) = state.open.take() else {
        return;
    };
    for (w, worker) in state.workers.iter_mut().enumerate() {
        if worker.gave_way && w != step.worker {
            worker.gave_way = false;
            worker.follows_way = true;
            step.touch(gave_way(w, true));
        }
    }
    let changed = step
        .accesses
        .iter()
        .any(|a| a.changes() && matches!(a.target, Target::Object(..)));
    let worker = &mut state.workers[step.worker];
    worker.wrote |= changed;
    if yielding {
        if worker.yielded && !worker.wrote {
            worker.gave_way = true;
            // Its step is ordered before the step that lets it run again.
            step.touch(gave_way(step.worker, true));
        }
        worker.yielded = true;
        worker.wrote = false;
    }
    if let Strategy::Dpor(dpor) = &mut state.strategy {
        dpor.stepped(&step);
    }
    state.transitions.push(step);
}

pub fn unfit_rerun(index: usize) -> String {
    format!(
        "explore: the program did not run as before at decision {}: does it depend on \
         something other than the schedule (the time, input, a process outside)?",
        index + 1
    )
}
