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

mod access;
mod races;

pub use access::{dependent, Access, Target};
use races::backtrack_points;

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

#[cfg(test)]
mod tests {
    use super::access::Mode;
    use super::*;
    use crate::runtime::sched::{Kind, Object, Permits};

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
