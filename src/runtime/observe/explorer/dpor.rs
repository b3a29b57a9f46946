//! Dynamic partial-order reduction: the explorer's default strategy. Two schedules that
//! differ only in the order of independent steps (steps on different objects, or two
//! reads of one) reach the same state, so only one of them needs to run. After each run
//! the steps that conflict and could have happened the other way round (races, in the
//! algorithm's sense) say at which earlier decision another worker must be tried; sleep
//! sets keep a worker that was already tried there from being tried again in an
//! equivalent order. This is source-DPOR (Abdulla, Aronis, Jonsson and Sagonas, "Optimal
//! dynamic partial order reduction", POPL 2014, Algorithm 1), over the steps the runtime
//! announces; it explores at least one schedule of every class of equivalent schedules,
//! so no outcome, deadlock or data race that the plain depth-first search finds is missed.

use crate::runtime::sched::{Action, Kind, Object, Op, Part, Permits};
use std::collections::HashMap;

/// What a step touches: an object (or one element of a shared array), or the fairness
/// token of a worker that gave way (see `run.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Object(Kind, u64, u64),
    GaveWay(usize),
}

/// How a step uses a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Looks at it and leaves it as it was.
    Read,
    /// Changes it: conflicts with everything on the same target.
    Write,
    /// Adds to or takes from a count (a semaphore's permits, as `value` shows them): two
    /// of them give the same count in either order, so they commute with each other, and
    /// with nothing else. (Whether the permits were there is told by the tokens, see
    /// [`Access::of_permits`].)
    Add,
    /// Takes a plain lock (conflicts as a write).
    Take,
    /// Gives a plain lock back (conflicts as a write).
    Give,
    /// Joins a thread: reads its end, which it can only come after.
    Join,
    /// Takes what one earlier step gave and nothing else could (a semaphore's token): it
    /// comes after that step, but never races with it, which it cannot come before (it
    /// would wait instead: the same state). Its races are with what it could have taken
    /// instead (see `backtrack_points`).
    Consume,
    /// A blocked attempt: looked at it, found it taken (a held lock, an empty queue) and
    /// left it as it was. It conflicts as a read with what came before it; a later change
    /// only wakes the worker, whose retry is a step of its own (see `backtrack_points`).
    Attempt,
}

/// One thing a step does to a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub target: Target,
    pub mode: Mode,
}

impl Target {
    /// `object`, numbered `number` in the run.
    pub fn object(object: &Object, number: u64) -> Target {
        Target::Object(object.kind, number, object.slot)
    }
}

impl Access {
    /// What `op` does, for the reduction, to the object numbered `number` in the run.
    /// Only reads of data, waits for an event and joins leave their object as it was;
    /// a semaphore's acquire and release add to its count of permits (and move tokens,
    /// see [`Access::of_permits`]); every other operation changes its object (a lock's
    /// owner, a queue's items, a barrier's count). A spawn and a sleep touch nothing
    /// shared: the new worker's steps come after its spawn anyway, and a sleep only lets
    /// others run.
    pub fn of(op: &Op, number: u64) -> Option<Access> {
        Access::used(op, number, false)
    }

    fn used(op: &Op, number: u64, attempt: bool) -> Option<Access> {
        let mode = match (op.action, op.object.kind) {
            (Action::Spawn | Action::Sleep, _) | (_, Kind::Clock) => return None,
            (Action::Join, Kind::Thread) => Mode::Join,
            (Action::Read | Action::Join, _) | (Action::Wait, Kind::Event) => Mode::Read,
            // A waiting acquire says what it misses (`Permits::Missing`): it waits for a
            // token, not for a count.
            (Action::Acquire, Kind::Semaphore) if attempt => return None,
            (Action::Acquire | Action::Release, Kind::Semaphore) => Mode::Add,
            (Action::Acquire, Kind::Lock) => Mode::Take,
            (Action::Release, Kind::Lock) => Mode::Give,
            _ => Mode::Write,
        };
        Some(Access {
            target: Target::object(&op.object, number),
            mode,
        })
    }

    /// A failed attempt (a blocked wait) looks at its object and leaves it as it was.
    pub fn attempt(op: &Op, number: u64) -> Option<Access> {
        Access::used(op, number, true).map(|a| Access {
            mode: Mode::Attempt,
            ..a
        })
    }

    /// What a semaphore's step did with its permits (`sched::permits`), the semaphore
    /// numbered `number`: besides its count (see [`Access::of`]), the tokens it moved.
    /// Acquires take tokens in order (the head), releases give them in order (the tail):
    /// two acquires, or two releases, would swap their tokens in the other order, so they
    /// conflict; except two acquires of initial permits of an unbounded semaphore, which
    /// are all alike (nothing to learn, no room to make). An acquire and a release
    /// conflict only when the acquire takes a token the release gave, or (bounded) the
    /// release needs the room the acquire made; otherwise the acquire found its permit
    /// without the release, and the release its room without the acquire, in either
    /// order. A waiting acquire looks for the token it misses; a refused release, and an
    /// acquire that gave up waiting, look at the count.
    pub fn of_permits(semaphore: &Object, number: u64, what: Permits) -> Vec<Access> {
        let at = |part: Part, mode: Mode| Access {
            target: Target::object(&part.of_semaphore(*semaphore), number),
            mode,
        };
        match what {
            Permits::Took {
                token,
                initial,
                bounded,
                timed,
            } => {
                // An acquire that may give up waiting could also have come before the
                // release and timed out: then it races with it.
                let take = if timed { Mode::Write } else { Mode::Consume };
                let alike = token < initial && !bounded;
                let mut accesses =
                    vec![at(Part::Head, if alike { Mode::Add } else { Mode::Write })];
                // An initial permit has no giver; it is still named, so that a step that
                // took it is never taken for one that could have taken it too (sleep sets
                // compare steps of different runs).
                let take = if token < initial { Mode::Write } else { take };
                accesses.push(at(Part::Token(token), take));
                if bounded {
                    accesses.push(at(Part::Room(token), Mode::Write));
                }
                accesses
            }
            Permits::Gave {
                first,
                count,
                initial,
                bounded,
            } => {
                let mut accesses = vec![at(Part::Tail, Mode::Write)];
                for token in first..first.saturating_add(count) {
                    accesses.push(at(Part::Token(token), Mode::Write));
                    if bounded {
                        accesses.push(at(Part::Room(token.saturating_sub(initial)), Mode::Write));
                    }
                }
                accesses
            }
            // It could have had a token that an acquire before it took (the head), and
            // waits for the release that gives the token it misses.
            Permits::Missing { token } => vec![
                at(Part::Head, Mode::Attempt),
                at(Part::Token(token), Mode::Attempt),
            ],
            Permits::Refused | Permits::GaveUp => {
                vec![Access::read(Target::object(semaphore, number))]
            }
        }
    }

    pub fn read(target: Target) -> Access {
        Access {
            target,
            mode: Mode::Read,
        }
    }

    pub fn write(target: Target) -> Access {
        Access {
            target,
            mode: Mode::Write,
        }
    }

    /// Whether it changes its target.
    pub fn changes(&self) -> bool {
        matches!(
            self.mode,
            Mode::Write | Mode::Add | Mode::Take | Mode::Give | Mode::Consume
        )
    }

    fn conflicts(&self, other: &Access) -> bool {
        self.target == other.target && conflicting(self.mode, other.mode)
    }
}

impl Mode {
    /// How it conflicts: as a read, a write or an add.
    fn class(self) -> Mode {
        match self {
            Mode::Read | Mode::Attempt | Mode::Join => Mode::Read,
            Mode::Write | Mode::Take | Mode::Give | Mode::Consume => Mode::Write,
            Mode::Add => Mode::Add,
        }
    }
}

/// Whether two uses of one target do not commute.
fn conflicting(a: Mode, b: Mode) -> bool {
    match (a.class(), b.class()) {
        (Mode::Write, _) | (_, Mode::Write) => true,
        (Mode::Add, Mode::Add) => false,
        (Mode::Add, _) | (_, Mode::Add) => true,
        _ => false,
    }
}

/// Whether two steps do not commute.
pub fn dependent(a: &[Access], b: &[Access]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.conflicts(y)))
}

/// What one worker did between two scheduling points of a run (objects by their numbers in
/// the run, the same in every run of one schedule).
#[derive(Clone, Debug, Default)]
pub struct Transition {
    pub worker: usize,
    pub accesses: Vec<Access>,
    /// The decision (a point where several workers could run) taken just before it.
    pub decision: Option<usize>,
    /// For a worker's first step: the step during which it was spawned.
    pub spawned_by: Option<usize>,
    /// The run ended in the middle of it: what it touched is not all it would have.
    pub cut: bool,
}

impl Transition {
    pub fn touch(&mut self, access: Access) {
        if !self.accesses.contains(&access) {
            self.accesses.push(access);
        }
    }
}

/// A decision of the current path: who could run, who ran, what is left to try.
#[derive(Clone, Debug)]
struct Node {
    enabled: Vec<usize>,
    chosen: usize,
    /// Workers that must be tried here (source-DPOR's backtrack set).
    backtrack: Vec<usize>,
    /// Workers tried here already.
    done: Vec<usize>,
    /// Workers not to try here, with what their step touches: it was tried in an
    /// equivalent order.
    sleep: Vec<(usize, Vec<Access>)>,
    /// The workers tried here, with what their step touched (a step is its operation and
    /// the code up to the next one, which may look at objects: it is known once it ran).
    explored: Vec<(usize, Vec<Access>)>,
}

/// What the strategy says at a scheduling point.
#[derive(Debug, PartialEq, Eq)]
pub enum Pick {
    Run(usize),
    /// Every worker that could run is asleep: this run only repeats schedules already
    /// explored.
    Redundant,
    /// The program did not run as it did before under the same choices.
    Unfit,
}

#[derive(Clone, Debug, Default)]
pub struct Dpor {
    nodes: Vec<Node>,
    /// During a run: the next decision's number.
    cursor: usize,
    /// During a run: the sleep set now.
    sleep: Vec<(usize, Vec<Access>)>,
}

impl Dpor {
    /// A new run begins, following the current path as far as it goes.
    pub fn start_run(&mut self) {
        self.cursor = 0;
        self.sleep.clear();
    }

    /// A step ended: a sleeping worker wakes when the step conflicts with what it does next.
    pub fn stepped(&mut self, step: &Transition) {
        self.sleep
            .retain(|(_, next)| !dependent(next, &step.accesses));
    }

    /// Chooses at a scheduling point where `enabled` (id order, not empty) could run. A
    /// point where one worker could run is no decision, but the run is redundant if that
    /// worker sleeps.
    pub fn pick(&mut self, enabled: &[usize], default: usize) -> Pick {
        let asleep = |sleep: &[(usize, Vec<Access>)], w: usize| sleep.iter().any(|(s, _)| *s == w);
        if enabled.len() == 1 {
            return if asleep(&self.sleep, enabled[0]) {
                Pick::Redundant
            } else {
                Pick::Run(enabled[0])
            };
        }
        let index = self.cursor;
        if index == self.nodes.len() {
            let awake: Vec<usize> = enabled
                .iter()
                .copied()
                .filter(|&w| !asleep(&self.sleep, w))
                .collect();
            let Some(&first) = awake.first() else {
                return Pick::Redundant;
            };
            let chosen = if awake.contains(&default) {
                default
            } else {
                first
            };
            self.nodes.push(Node {
                enabled: enabled.to_vec(),
                chosen,
                backtrack: vec![chosen],
                done: vec![chosen],
                sleep: self.sleep.clone(),
                explored: Vec::new(),
            });
        }
        let node = &self.nodes[index];
        if !enabled.contains(&node.chosen) {
            return Pick::Unfit;
        }
        self.cursor += 1;
        // Below this decision, the workers tried here before sleep (Algorithm 1 adds each
        // explored worker to the sleep set of the workers explored after it).
        let mut sleep = node.sleep.clone();
        sleep.extend(
            node.explored
                .iter()
                .filter(|(w, _)| *w != node.chosen)
                .cloned(),
        );
        self.sleep = sleep;
        Pick::Run(node.chosen)
    }

    /// After a run that took `steps`: records where other workers must be tried, and
    /// prepares the next run. `false` when every class of schedules has been explored.
    pub fn advance(&mut self, steps: &[Transition]) -> bool {
        for step in steps.iter().filter(|s| !s.cut) {
            let Some(node) = step.decision.and_then(|d| self.nodes.get_mut(d)) else {
                continue;
            };
            if !node.explored.iter().any(|(w, _)| *w == step.worker) {
                node.explored.push((step.worker, step.accesses.clone()));
            }
        }
        for (at, worker) in backtrack_points(steps) {
            let Some(node) = self.nodes.get_mut(at) else {
                continue;
            };
            match worker {
                Some(w) if node.enabled.contains(&w) => {
                    if !node.backtrack.contains(&w) {
                        node.backtrack.push(w);
                    }
                }
                // None of the workers that could go first there was able to run then:
                // try every one.
                _ => {
                    for &w in &node.enabled {
                        if !node.backtrack.contains(&w) {
                            node.backtrack.push(w);
                        }
                    }
                }
            }
        }
        while let Some(node) = self.nodes.last_mut() {
            let next = node
                .backtrack
                .iter()
                .copied()
                .find(|w| !node.done.contains(w) && !node.sleep.iter().any(|(s, _)| s == w));
            if let Some(next) = next {
                node.chosen = next;
                node.done.push(next);
                return true;
            }
            self.nodes.pop();
        }
        false
    }
}

/// Vector clocks of a run's steps under happens-before: a worker's program order, spawns,
/// and every pair of conflicting steps in the order they ran.
struct Clocks {
    /// `clock[i][w]`: how many of worker `w`'s steps happen before step `i` or are it.
    clock: Vec<Vec<u32>>,
    /// `seq[i]`: how many steps of its worker came before step `i`.
    seq: Vec<u32>,
    /// Each worker's steps, in order.
    by_worker: Vec<Vec<usize>>,
}

impl Clocks {
    /// Whether step `a` happens before step `b` (or is it).
    fn before(&self, a: usize, steps: &[Transition], b: usize) -> bool {
        self.clock[b][steps[a].worker] > self.seq[a]
    }
}

/// Which worker's steps a step's access conflicts with last: per target and worker, the
/// last step that used it as a read, a write and an add. An earlier step of the same
/// worker that used it the same way happens before that one, so it cannot race with
/// anything that comes later.
#[derive(Default, Clone)]
struct LastAccess {
    read: Option<usize>,
    write: Option<usize>,
    add: Option<usize>,
    /// The step that took the plain lock the worker holds.
    taken: Option<usize>,
    /// When the last write gave a plain lock back: the step that had taken it.
    given_from: Option<usize>,
}

impl LastAccess {
    /// The last steps that conflict with a use of the target in `mode`.
    fn conflicting(&self, mode: Mode) -> impl Iterator<Item = usize> {
        let wants = |m: Mode| conflicting(mode, m);
        [
            self.read.filter(|_| wants(Mode::Read)),
            self.write.filter(|_| wants(Mode::Write)),
            self.add.filter(|_| wants(Mode::Add)),
        ]
        .into_iter()
        .flatten()
    }

    fn record(&mut self, mode: Mode, step: usize) {
        match mode.class() {
            // Nothing that comes later is ordered after a blocked attempt by it: the
            // attempt changed nothing, and the change that lets its worker go on is
            // ordered with the retry, which uses the object for real. Reversing the
            // attempt with that change would only run the retry without the attempt
            // first, an equivalent schedule. The attempt still races with what came
            // before it: whoever took the object could have found the worker there
            // first.
            Mode::Read if mode == Mode::Attempt => {}
            Mode::Read => self.read = Some(step),
            Mode::Add => self.add = Some(step),
            _ => {
                self.write = Some(step);
                self.given_from = None;
                match mode {
                    Mode::Take => self.taken = Some(step),
                    Mode::Give => self.given_from = self.taken.take(),
                    _ => {}
                }
            }
        }
    }

    /// The step that races with a use of the target in `mode` instead of `step` (one of
    /// this worker's last steps), if any: a plain lock cannot be taken between its
    /// taking and giving back by another worker, so taking it (or trying to) after it was
    /// given back only races with that taking; and a thread cannot be joined before it
    /// ends. `Some(None)`: no race.
    fn instead(&self, mode: Mode, step: usize) -> Option<Option<usize>> {
        match mode {
            Mode::Take | Mode::Attempt if self.write == Some(step) && self.given_from.is_some() => {
                Some(self.given_from)
            }
            Mode::Join if self.write == Some(step) => Some(None),
            _ => None,
        }
    }
}

/// The decisions where another worker must be tried, and which one (`None`: no single
/// worker is known to be enough, try them all): for every race `e' ⋖ e` of the run,
/// a worker that can start the reversed order (the initials of `notdep(e').e`).
fn backtrack_points(steps: &[Transition]) -> Vec<(usize, Option<usize>)> {
    let workers = steps.iter().map(|s| s.worker + 1).max().unwrap_or(0);
    let mut clocks = Clocks {
        clock: Vec::with_capacity(steps.len()),
        seq: Vec::with_capacity(steps.len()),
        by_worker: vec![Vec::new(); workers],
    };
    let mut last: HashMap<Target, Vec<LastAccess>> = HashMap::new();
    // The steps that changed each target, in order.
    let mut changes: HashMap<Target, Vec<usize>> = HashMap::new();
    let mut races: Vec<(usize, usize)> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let w = step.worker;
        let mut clock = match clocks.by_worker[w].last() {
            Some(&previous) => clocks.clock[previous].clone(),
            None => vec![0; workers],
        };
        if let Some(spawner) = step.spawned_by.filter(|&s| s < i) {
            join(&mut clock, &clocks.clock[spawner]);
        }
        let seq = clocks.by_worker[w].len() as u32;
        // The conflicting earlier steps of other workers, latest first, each with the step
        // that races with this one in its place (if not itself).
        let mut conflicting: Vec<(usize, Option<usize>)> = Vec::new();
        // The steps that gave what this one consumes: ordered before it, but only once
        // its races were looked for. Taking a token after its release is no race, but
        // the acquire could have come before another acquire and taken an earlier token:
        // the release must not hide that.
        let mut givers: Vec<usize> = Vec::new();
        let previous = clocks.by_worker[w].last().copied();
        for access in &step.accesses {
            let waker = previous.and_then(|p| waker(&steps[p], p, access, &changes));
            if let Some(per_worker) = last.get(&access.target) {
                for (other, last) in per_worker.iter().enumerate() {
                    if other == w {
                        continue;
                    }
                    if access.mode == Mode::Consume {
                        givers.extend(last.conflicting(access.mode));
                        continue;
                    }
                    conflicting.extend(last.conflicting(access.mode).map(|j| {
                        let racer = match last.instead(access.mode, j) {
                            Some(instead) => instead,
                            None if waker == Some(j) => None,
                            None => Some(j),
                        };
                        (j, racer)
                    }));
                }
            }
        }
        conflicting.sort_unstable_by(|a, b| b.cmp(a));
        conflicting.dedup();
        for (at, &(j, racer)) in conflicting.iter().enumerate() {
            if let Some(r) = racer {
                if clock[steps[r].worker] <= clocks.seq[r] {
                    // Nothing between them orders `r` before `i`: they race.
                    races.push((r, i));
                }
            }
            // Once every racer of `j` was looked at: what happens before `j` happens
            // before this step.
            if conflicting.get(at + 1).is_none_or(|&(next, _)| next != j) {
                join(&mut clock, &clocks.clock[j]);
            }
        }
        for giver in givers {
            join(&mut clock, &clocks.clock[giver]);
        }
        clock[w] = seq + 1;
        clocks.clock.push(clock);
        clocks.seq.push(seq);
        clocks.by_worker[w].push(i);
        for access in &step.accesses {
            let per_worker = last
                .entry(access.target)
                .or_insert_with(|| vec![LastAccess::default(); workers]);
            per_worker[w].record(access.mode, i);
            if access.changes() {
                changes.entry(access.target).or_default().push(i);
            }
        }
    }
    races
        .into_iter()
        .filter_map(|(j, i)| {
            let decision = steps[j].decision?;
            Some((decision, initial(&clocks, steps, j, i)))
        })
        .collect()
}

/// When `access` retries the blocked attempt `previous` (step number `at`) of the same
/// worker on its target, and one step alone changed the target in between: that step. The
/// target stayed as the attempt found it (taken) until that change, so the retry cannot
/// come before it: their race cannot be reversed (running the retry first only blocks
/// it again, an equivalent schedule).
fn waker(
    previous: &Transition,
    at: usize,
    access: &Access,
    changes: &HashMap<Target, Vec<usize>>,
) -> Option<usize> {
    // Another acquire may take the token a waiting acquire of a semaphore was woken
    // for: what changed its head since it waited is no waker.
    let head =
        |t: &Target| matches!(t, Target::Object(Kind::Semaphore, _, s) if *s == Part::Head.slot());
    let attempted = previous
        .accesses
        .iter()
        .any(|a| a.target == access.target && a.mode == Mode::Attempt && !head(&a.target));
    if !attempted || access.mode == Mode::Attempt {
        return None;
    }
    let since = changes.get(&access.target)?;
    let after = &since[since.partition_point(|&c| c < at)..];
    match after {
        [only] => Some(*only),
        _ => None,
    }
}

fn join(into: &mut [u32], other: &[u32]) {
    for (a, b) in into.iter_mut().zip(other) {
        *a = (*a).max(*b);
    }
}

/// A worker whose first step in `v = notdep(j).i` (the steps after `j` that do not
/// happen after it, then `i`) has nothing of `v` before it: running it at `j`'s decision
/// starts the reversed order. Prefers `i`'s own worker.
fn initial(clocks: &Clocks, steps: &[Transition], j: usize, i: usize) -> Option<usize> {
    let own = steps[i].worker;
    // Each worker's first step after `j` that is in `v` (all of `i`'s worker's steps after
    // `j` are: else one of them, and `i` after it, would happen after `j`).
    let firsts: Vec<(usize, usize)> = clocks
        .by_worker
        .iter()
        .enumerate()
        .filter_map(|(worker, theirs)| {
            let at = theirs.partition_point(|&s| s <= j);
            let first = *theirs.get(at)?;
            (first <= i && (worker == own || !clocks.before(j, steps, first)))
                .then_some((worker, first))
        })
        .collect();
    let is_initial = |(worker, first): (usize, usize)| {
        firsts
            .iter()
            .all(|&(other, f)| other == worker || !clocks.before(f, steps, first))
    };
    firsts
        .iter()
        .copied()
        .find(|&(w, _)| w == own)
        .filter(|&f| is_initial(f))
        .or_else(|| firsts.iter().copied().find(|&f| is_initial(f)))
        .map(|(w, _)| w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(id: u64, write: bool) -> Access {
        let target = Target::Object(Kind::Value, id, 0);
        if write {
            Access::write(target)
        } else {
            Access::read(target)
        }
    }

    fn step(worker: usize, accesses: &[Access], decision: Option<usize>) -> Transition {
        Transition {
            worker,
            accesses: accesses.to_vec(),
            decision,
            spawned_by: None,
            cut: false,
        }
    }

    #[test]
    fn two_reads_commute_a_read_and_a_write_do_not() {
        assert!(!dependent(&[access(1, false)], &[access(1, false)]));
        assert!(dependent(&[access(1, false)], &[access(1, true)]));
        assert!(!dependent(&[access(1, true)], &[access(2, true)]));
    }

    #[test]
    fn a_race_asks_for_the_other_worker_at_the_first_steps_decision() {
        // Worker 1 writes x, then worker 2 writes x: try worker 2 first at decision 0.
        let steps = [
            step(1, &[access(1, true)], Some(0)),
            step(2, &[access(1, true)], Some(1)),
        ];
        assert_eq!(backtrack_points(&steps), vec![(0, Some(2))]);
    }

    #[test]
    fn steps_on_different_objects_ask_for_nothing() {
        let steps = [
            step(1, &[access(1, true)], Some(0)),
            step(2, &[access(2, true)], Some(1)),
        ];
        assert!(backtrack_points(&steps).is_empty());
    }

    #[test]
    fn writes_ordered_by_a_lock_do_not_race() {
        // Worker 1 takes lock 9, writes x, releases; worker 2 takes the lock, writes x.
        // Only the release and the next acquire race; the writes are ordered through them.
        let lock = access(9, true);
        let steps = [
            step(1, &[lock], Some(0)),
            step(1, &[access(1, true)], Some(1)),
            step(1, &[lock], Some(2)),
            step(2, &[lock], Some(3)),
            step(2, &[access(1, true)], Some(4)),
        ];
        assert_eq!(backtrack_points(&steps), vec![(2, Some(2))]);
    }

    fn used(kind: Kind, id: u64, mode: Mode) -> Access {
        Access {
            target: Target::Object(kind, id, 0),
            mode,
        }
    }

    #[test]
    fn two_adds_to_a_count_commute_a_take_or_a_look_does_not() {
        let add = used(Kind::Semaphore, 1, Mode::Add);
        let take = used(Kind::Semaphore, 1, Mode::Write);
        let look = used(Kind::Semaphore, 1, Mode::Read);
        assert!(!dependent(&[add], &[add]));
        assert!(dependent(&[add], &[take]));
        assert!(dependent(&[add], &[look]));
        let steps = [step(1, &[add], Some(0)), step(2, &[add], Some(1))];
        assert!(backtrack_points(&steps).is_empty());
    }

    fn permits(what: Permits) -> Vec<Access> {
        Access::of_permits(&Object::new(Kind::Semaphore, 7, 1), 1, what)
    }

    fn took(token: u64, initial: u64, bounded: bool) -> Vec<Access> {
        permits(Permits::Took {
            token,
            initial,
            bounded,
            timed: false,
        })
    }

    fn gave(first: u64, initial: u64, bounded: bool) -> Vec<Access> {
        permits(Permits::Gave {
            first,
            count: 1,
            initial,
            bounded,
        })
    }

    #[test]
    fn permits_conflict_only_through_the_tokens_they_move() {
        // One initial permit: taking it commutes with giving token 1.
        assert!(!dependent(&took(0, 1, false), &gave(1, 1, false)));
        // Taking the token a release gave does not; nor do two releases, or two acquires
        // of released tokens (they would swap tokens).
        assert!(dependent(&took(1, 1, false), &gave(1, 1, false)));
        assert!(dependent(&gave(1, 1, false), &gave(2, 1, false)));
        assert!(dependent(&took(1, 1, false), &took(2, 1, false)));
        // Initial permits are alike, unless each makes its own room (bounded).
        assert!(!dependent(&took(0, 2, false), &took(1, 2, false)));
        assert!(dependent(&took(0, 2, true), &took(1, 2, true)));
        assert!(dependent(&took(1, 2, false), &took(2, 2, false)));
        // A bounded release needs the room the acquire of the same number made.
        assert!(dependent(&took(0, 1, true), &gave(1, 1, true)));
        assert!(!dependent(&took(1, 2, true), &gave(2, 2, true)));
        // A refused release depends on every acquire and release (the count).
        let count = [Access {
            target: Target::Object(Kind::Semaphore, 1, 0),
            mode: Mode::Add,
        }];
        assert!(dependent(&permits(Permits::Refused), &count));
    }

    #[test]
    fn taking_a_released_token_never_races_with_its_release() {
        // Worker 1 gives token 0 of a semaphore without permits, worker 2 takes it: it
        // could not have taken it first.
        let steps = [
            step(1, &gave(0, 0, false), Some(0)),
            step(2, &took(0, 0, false), Some(1)),
        ];
        assert!(backtrack_points(&steps).is_empty());
        // Unless it could have given up waiting.
        let timed = permits(Permits::Took {
            token: 0,
            initial: 0,
            bounded: false,
            timed: true,
        });
        let steps = [
            step(1, &gave(0, 0, false), Some(0)),
            step(2, &timed, Some(1)),
        ];
        assert_eq!(backtrack_points(&steps), vec![(0, Some(2))]);
    }

    #[test]
    fn a_token_released_after_an_acquire_does_not_hide_that_the_acquire_could_come_later() {
        // A semaphore of one permit as a mutex: worker 1 takes the initial permit and
        // gives token 1, which worker 2 takes. Worker 2 could have taken the first permit.
        let steps = [
            step(1, &took(0, 1, false), Some(0)),
            step(1, &gave(1, 1, false), Some(1)),
            step(2, &took(1, 1, false), Some(2)),
        ];
        assert_eq!(backtrack_points(&steps), vec![(0, Some(2))]);
    }

    #[test]
    fn taking_a_lock_after_it_was_given_back_races_with_its_taking() {
        // Worker 1 takes and gives back lock 9, then worker 2 takes it: worker 2 could
        // have taken it first (decision 0), never between (decision 1).
        let take = used(Kind::Lock, 9, Mode::Take);
        let give = used(Kind::Lock, 9, Mode::Give);
        let steps = [
            step(1, &[take], Some(0)),
            step(1, &[give], Some(1)),
            step(2, &[take], Some(2)),
        ];
        assert_eq!(backtrack_points(&steps), vec![(0, Some(2))]);
    }

    #[test]
    fn a_blocked_attempt_races_with_what_came_before_it_only() {
        // Worker 1 takes lock 9; worker 2 finds it taken; worker 1 gives it back and
        // worker 2 takes it. Only the taking and the attempt race: worker 2 first.
        let take = used(Kind::Lock, 9, Mode::Take);
        let give = used(Kind::Lock, 9, Mode::Give);
        let attempt = used(Kind::Lock, 9, Mode::Attempt);
        let steps = [
            step(1, &[take], Some(0)),
            step(2, &[attempt], Some(1)),
            step(1, &[give], None),
            step(2, &[take], None),
        ];
        assert_eq!(backtrack_points(&steps), vec![(0, Some(2))]);
    }

    #[test]
    fn a_join_comes_after_the_end_it_waits_for() {
        let end = used(Kind::Thread, 1, Mode::Write);
        let join = used(Kind::Thread, 1, Mode::Join);
        let alive = used(Kind::Thread, 1, Mode::Read);
        let steps = [step(1, &[end], Some(0)), step(0, &[join], Some(1))];
        assert!(backtrack_points(&steps).is_empty());
        // Asking whether it is alive could have come first.
        let steps = [step(1, &[end], Some(0)), step(0, &[alive], Some(1))];
        assert_eq!(backtrack_points(&steps), vec![(0, Some(0))]);
    }

    #[test]
    fn the_search_tries_both_orders_of_a_race_then_stops() {
        let mut dpor = Dpor::default();
        dpor.start_run();
        assert_eq!(dpor.pick(&[1, 2], 1), Pick::Run(1));
        let first = step(1, &[access(1, true)], Some(0));
        dpor.stepped(&first);
        let second = step(2, &[access(1, true)], None);
        assert!(dpor.advance(&[first, second]));
        dpor.start_run();
        assert_eq!(dpor.pick(&[1, 2], 1), Pick::Run(2));
        let steps = [
            step(2, &[access(1, true)], Some(0)),
            step(1, &[access(1, true)], None),
        ];
        assert!(!dpor.advance(&steps), "both orders ran");
    }

    #[test]
    fn independent_steps_run_in_one_order() {
        let mut dpor = Dpor::default();
        dpor.start_run();
        assert_eq!(dpor.pick(&[1, 2], 1), Pick::Run(1));
        let steps = [
            step(1, &[access(1, true)], Some(0)),
            step(2, &[access(2, true)], None),
        ];
        assert!(!dpor.advance(&steps));
    }
}
