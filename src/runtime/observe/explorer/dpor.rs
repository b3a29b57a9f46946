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

use crate::runtime::sched::{Action, Kind, Object, Op};
use std::collections::HashMap;

/// What a step touches: an object (or one element of a shared array), or the fairness
/// token of a worker that gave way (see `run.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Object(Kind, u64, u64),
    GaveWay(usize),
}

/// One thing a step does to a target: a write conflicts with everything on the same
/// target, a read only with writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub target: Target,
    pub write: bool,
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
    /// every other operation changes it (a lock's owner, a queue's items, a barrier's
    /// count). A spawn and a sleep touch nothing shared: the new worker's steps come after
    /// its spawn anyway, and a sleep only lets others run.
    pub fn of(op: &Op, number: u64) -> Option<Access> {
        let write = match (op.action, op.object.kind) {
            (Action::Spawn | Action::Sleep, _) | (_, Kind::Clock) => return None,
            (Action::Read | Action::Join, _) | (Action::Wait, Kind::Event) => false,
            _ => true,
        };
        Some(Access {
            target: Target::object(&op.object, number),
            write,
        })
    }

    /// A failed attempt (a blocked wait) looks at its object and leaves it as it was.
    pub fn attempt(op: &Op, number: u64) -> Option<Access> {
        Access::of(op, number).map(|a| Access { write: false, ..a })
    }

    fn conflicts(&self, other: &Access) -> bool {
        self.target == other.target && (self.write || other.write)
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
/// last write and the last access. An earlier conflicting step of the same worker happens
/// before that one, so it cannot race with anything that comes later.
#[derive(Default, Clone)]
struct LastAccess {
    write: Option<usize>,
    any: Option<usize>,
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
        // The conflicting earlier steps of other workers, latest first.
        let mut conflicting: Vec<usize> = Vec::new();
        for access in &step.accesses {
            if let Some(per_worker) = last.get(&access.target) {
                for (other, last) in per_worker.iter().enumerate() {
                    if other == w {
                        continue;
                    }
                    let candidate = if access.write { last.any } else { last.write };
                    conflicting.extend(candidate);
                }
            }
        }
        conflicting.sort_unstable_by(|a, b| b.cmp(a));
        conflicting.dedup();
        for j in conflicting {
            let earlier = steps[j].worker;
            if clock[earlier] <= clocks.seq[j] {
                // Nothing between them orders `j` before `i`: they race.
                races.push((j, i));
            }
            join(&mut clock, &clocks.clock[j]);
        }
        clock[w] = seq + 1;
        clocks.clock.push(clock);
        clocks.seq.push(seq);
        clocks.by_worker[w].push(i);
        for access in &step.accesses {
            let per_worker = last
                .entry(access.target)
                .or_insert_with(|| vec![LastAccess::default(); workers]);
            per_worker[w].any = Some(i);
            if access.write {
                per_worker[w].write = Some(i);
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
        Access {
            target: Target::Object(Kind::Value, id, 0),
            write,
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
