//! How the explorer picks who runs next at a scheduling point where several workers
//! could: one schedule of every class of equivalent ones (dynamic partial-order
//! reduction, `dpor.rs`), every schedule in turn (depth-first, with a bound on
//! preemptions, as CHESS does), at random, by PCT (probabilistic concurrency testing), or
//! as a replay of a schedule it was given.

use super::dpor::{Dpor, Transition};

/// One point where more than one worker could run, as it happened.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Who could run, in id order.
    pub enabled: Vec<usize>,
    /// Who ran.
    pub chosen: usize,
    /// Who runs when nobody is preempted: the current worker, or after a worker yields
    /// (sleeps) or stops, the next one.
    pub default: usize,
    /// The worker that was running and could go on (choosing another one preempts it);
    /// `None` after a yield or when it blocked or ended.
    pub current: Option<usize>,
    /// Preemptions before this decision.
    pub preemptions: u32,
}

impl Decision {
    /// The order in which a depth-first search tries the workers: the default first.
    fn order(&self) -> Vec<usize> {
        let mut order = vec![self.default];
        order.extend(self.enabled.iter().copied().filter(|&a| a != self.default));
        order
    }

    fn cost(&self, choice: usize) -> u32 {
        u32::from(self.current.is_some_and(|c| c != choice))
    }
}

/// A small, seedable random number generator (SplitMix64): schedules must be the same
/// for the same seed on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How to choose.
#[derive(Clone, Debug)]
pub enum Strategy {
    /// Dynamic partial-order reduction: the run follows the reduction's current path
    /// (it chooses at every scheduling point itself, see `run.rs`).
    Dpor(Box<Dpor>),
    /// Every schedule with at most `bound` preemptions, depth first: this run follows
    /// `prefix`, then takes the defaults.
    Dfs { bound: u32, prefix: Vec<usize> },
    /// Uniformly among the workers that can run.
    Random { rng: Rng },
    /// PCT: random priorities, the highest runs; at `change_points` (decision numbers)
    /// the running worker drops to the lowest priority.
    Pct {
        rng: Rng,
        depth: u32,
        priorities: Vec<u64>,
        change_points: Vec<usize>,
        /// The most decisions a run has taken so far (where change points fall).
        longest: usize,
    },
    /// The decisions of a schedule given by the user.
    Fixed { choices: Vec<usize> },
}

impl Strategy {
    pub fn dfs(bound: u32) -> Strategy {
        Strategy::Dfs {
            bound,
            prefix: Vec::new(),
        }
    }

    pub fn pct(seed: u64, depth: u32) -> Strategy {
        let mut pct = Strategy::Pct {
            rng: Rng::new(seed),
            depth,
            priorities: Vec::new(),
            change_points: Vec::new(),
            longest: 20,
        };
        pct.start_run();
        pct
    }

    /// Chooses at decision number `index` among `enabled` (never empty, id order), where
    /// `running` is the worker that just stopped and `default` the one to run when
    /// nobody is preempted.
    pub fn choose(
        &mut self,
        index: usize,
        enabled: &[usize],
        running: usize,
        default: usize,
    ) -> Result<usize, String> {
        match self {
            // Chosen in `Dpor::pick`; not asked here.
            Strategy::Dpor(_) => Ok(default),
            Strategy::Dfs { prefix, .. } => match prefix.get(index) {
                Some(&choice) if enabled.contains(&choice) => Ok(choice),
                Some(_) => Err(unfit(index)),
                None => Ok(default),
            },
            Strategy::Random { rng } => Ok(enabled[rng.below(enabled.len() as u64) as usize]),
            Strategy::Pct {
                rng,
                depth,
                priorities,
                change_points,
                ..
            } => {
                let highest = enabled.iter().copied().max().unwrap_or(0);
                while priorities.len() <= highest {
                    // New workers get random high priorities, above every change point.
                    priorities.push(*depth as u64 + 1 + rng.below(1 << 32));
                }
                if let Some(at) = change_points.iter().position(|&p| p == index) {
                    priorities[running] = at as u64;
                }
                Ok(enabled
                    .iter()
                    .copied()
                    .max_by_key(|&a| priorities[a])
                    .unwrap_or(default))
            }
            Strategy::Fixed { choices } => match choices.get(index) {
                Some(&choice) if enabled.contains(&choice) => Ok(choice),
                Some(_) => Err(unfit(index)),
                None => Ok(default),
            },
        }
    }

    /// Prepares the next run after one that took `decisions` in `steps`; `false` when
    /// there is no schedule left to run (the search is done, or a replay).
    pub fn advance(&mut self, decisions: &[Decision], steps: &[Transition]) -> bool {
        match self {
            Strategy::Dpor(dpor) => dpor.advance(steps),
            Strategy::Dfs { bound, prefix } => {
                for (i, decision) in decisions.iter().enumerate().rev() {
                    let order = decision.order();
                    let tried = order
                        .iter()
                        .position(|&a| a == decision.chosen)
                        .unwrap_or(order.len());
                    let next = order[tried + 1..]
                        .iter()
                        .copied()
                        .find(|&a| decision.preemptions + decision.cost(a) <= *bound);
                    if let Some(next) = next {
                        *prefix = decisions[..i].iter().map(|d| d.chosen).collect();
                        prefix.push(next);
                        return true;
                    }
                }
                false
            }
            Strategy::Random { .. } => true,
            Strategy::Pct { longest, .. } => {
                *longest = (*longest).max(decisions.len());
                self.start_run();
                true
            }
            Strategy::Fixed { .. } => false,
        }
    }

    fn start_run(&mut self) {
        if let Strategy::Pct {
            rng,
            depth,
            priorities,
            change_points,
            longest,
        } = self
        {
            priorities.clear();
            change_points.clear();
            for _ in 1..*depth {
                change_points.push(1 + rng.below(*longest as u64) as usize);
            }
        }
    }
}

fn unfit(index: usize) -> String {
    format!(
        "this schedule does not fit the program: at decision {} the worker it names cannot run",
        index + 1
    )
}

/// A schedule as a user copies it: the worker chosen at each decision, one character
/// each (0–9, then a–z).
pub fn encode(decisions: &[Decision]) -> String {
    decisions
        .iter()
        .map(|d| std::char::from_digit(d.chosen as u32, 36).unwrap_or('?'))
        .collect()
}

/// The choices of a schedule written by [`encode`].
pub fn decode(schedule: &str) -> Result<Vec<usize>, String> {
    schedule
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| {
            c.to_digit(36)
                .map(|d| d as usize)
                .ok_or_else(|| format!("replay: {c:?} is not a worker in a schedule (0-9, a-z)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(enabled: &[usize], chosen: usize, current: Option<usize>, p: u32) -> Decision {
        Decision {
            enabled: enabled.to_vec(),
            chosen,
            default: current.unwrap_or(enabled[0]),
            current,
            preemptions: p,
        }
    }

    #[test]
    fn dfs_backtracks_to_the_deepest_open_decision() {
        let mut s = Strategy::dfs(2);
        let run = [
            decision(&[0, 1], 0, Some(0), 0),
            decision(&[0, 1], 0, Some(0), 0),
        ];
        assert!(s.advance(&run, &[]));
        match &s {
            Strategy::Dfs { prefix, .. } => assert_eq!(prefix, &[0, 1]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dfs_respects_the_preemption_bound() {
        let mut s = Strategy::dfs(0);
        let run = [decision(&[0, 1], 0, Some(0), 0)];
        assert!(
            !s.advance(&run, &[]),
            "a switch away from a running worker costs one"
        );
        let mut s = Strategy::dfs(0);
        let run = [decision(&[0, 1], 0, None, 0)];
        assert!(s.advance(&run, &[]), "after a yield, any worker is free");
    }

    #[test]
    fn schedules_round_trip() {
        let run = [
            decision(&[0, 1], 1, None, 0),
            decision(&[0, 11], 11, None, 0),
        ];
        assert_eq!(encode(&run), "1b");
        assert_eq!(decode("1b").unwrap(), vec![1, 11]);
        assert!(decode("1!").is_err());
    }
}
