//! The races of a run, in the algorithm's sense: pairs of conflicting steps of different
//! workers that nothing else orders (vector clocks of happens-before), and the decision
//! before the first of each where another worker must be tried.

use super::access::{conflicting, Access, Mode, Target};
use super::Transition;
use crate::runtime::sched::{Kind, Part};
use std::collections::HashMap;

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
pub(super) fn backtrack_points(steps: &[Transition]) -> Vec<(usize, Option<usize>)> {
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
