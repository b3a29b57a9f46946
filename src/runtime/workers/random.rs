//! Random numbers for simulations: `rand()` and friends with the names and signatures of
//! the Rhai ecosystem's `rhai-rand` package, drawn from a seedable generator that each
//! worker (thread or process) has to itself.
//!
//! `rhai-rand` itself is not used: every one of its functions draws from `rand::rng()`,
//! which cannot be seeded. Here `rand_seed(n)` makes the calling worker's sequence
//! reproducible, and no worker's draws depend on how the others are scheduled.

use rand::rngs::SmallRng;
use rhai::plugin::*;
use std::cell::RefCell;

thread_local! {
    /// This thread's generator, made on first use. A forked worker process starts with
    /// none: the fork server never draws, so workers do not repeat each other's sequence.
    static GENERATOR: RefCell<Option<SmallRng>> = const { RefCell::new(None) };
}

/// Runs `draw` with the calling thread's generator, made from the OS's entropy on first
/// use.
fn with_generator<T>(draw: impl FnOnce(&mut SmallRng) -> T) -> T {
    GENERATOR.with_borrow_mut(|slot| draw(slot.get_or_insert_with(rand::make_rng)))
}

/// Replaces the calling thread's generator.
fn reseed(generator: SmallRng) {
    GENERATOR.with_borrow_mut(|slot| *slot = Some(generator));
}

#[export_module]
pub mod random_api {
    use super::{reseed, with_generator};
    use rand::rngs::SmallRng;
    use rand::seq::{IndexedRandom, SliceRandom};
    use rand::{RngExt, SeedableRng};
    use rhai::{Array, Dynamic, EvalAltResult, FLOAT, INT};
    use std::ops::{Range, RangeInclusive};

    fn empty(what: String) -> Box<EvalAltResult> {
        format!("rand: the range {what} is empty").into()
    }

    /// Seeds the calling thread's (or process's) random generator: the same seed gives the
    /// same sequence of `rand…`, `shuffle` and `sample` results, in any worker.
    ///
    /// Each thread and process has a generator of its own, started from the OS's entropy,
    /// so seeding one worker leaves the others alone. To reproduce a run with several
    /// workers, seed each one: `spawn_thread(|i| { rand_seed(1000 + i); … }, i)`.
    #[rhai_fn(name = "rand_seed", volatile)]
    pub fn rand_seed(seed: INT) {
        reseed(SmallRng::seed_from_u64(seed as u64));
    }

    /// Gives the calling worker's random generator a fresh, unpredictable start from the
    /// OS's entropy (Python's `random.seed()`).
    #[rhai_fn(name = "rand_seed", volatile)]
    pub fn rand_seed_from_entropy() {
        reseed(rand::make_rng());
    }

    /// A random integer over the whole range of integers.
    #[rhai_fn(name = "rand", volatile)]
    pub fn rand() -> INT {
        with_generator(|g| g.random())
    }

    /// A random integer in `start..end` (end excluded), e.g. `rand(0..10)`.
    #[rhai_fn(name = "rand", volatile, return_raw)]
    pub fn rand_exclusive(range: Range<INT>) -> Result<INT, Box<EvalAltResult>> {
        if range.is_empty() {
            return Err(empty(format!("{range:?}")));
        }
        Ok(with_generator(|g| g.random_range(range)))
    }

    /// A random integer in `start..=end` (end included), e.g. a die: `rand(1..=6)`
    /// (Python's `random.randint(1, 6)`).
    #[rhai_fn(name = "rand", volatile, return_raw)]
    pub fn rand_inclusive(range: RangeInclusive<INT>) -> Result<INT, Box<EvalAltResult>> {
        if range.is_empty() {
            return Err(empty(format!("{range:?}")));
        }
        Ok(with_generator(|g| g.random_range(range)))
    }

    /// A random integer from `start` to `end`, both included (Python's
    /// `random.randint(start, end)`).
    #[rhai_fn(name = "rand", volatile, return_raw)]
    pub fn rand_between(start: INT, end: INT) -> Result<INT, Box<EvalAltResult>> {
        rand_inclusive(start..=end)
    }

    /// A random float in `[0.0, 1.0)` (Python's `random.random()`).
    #[rhai_fn(name = "rand_float", volatile)]
    pub fn rand_float() -> FLOAT {
        with_generator(|g| g.random())
    }

    /// A random float from `start` to `end` (Python's `random.uniform(start, end)`).
    #[rhai_fn(name = "rand_float", volatile, return_raw)]
    pub fn rand_float_between(start: FLOAT, end: FLOAT) -> Result<FLOAT, Box<EvalAltResult>> {
        // NaN and infinite ends are refused with the empty range.
        if start >= end || !start.is_finite() || !end.is_finite() {
            return Err(empty(format!("{start}..{end}")));
        }
        Ok(with_generator(|g| g.random_range(start..=end)))
    }

    /// `true` or `false` with equal chances.
    #[rhai_fn(name = "rand_bool", volatile)]
    pub fn rand_bool() -> bool {
        with_generator(|g| g.random())
    }

    /// `true` with the given probability, from `0.0` to `1.0` (e.g. `rand_bool(0.1)`).
    #[rhai_fn(name = "rand_bool", volatile, return_raw)]
    pub fn rand_bool_with(probability: FLOAT) -> Result<bool, Box<EvalAltResult>> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(format!(
                "rand_bool: the probability must be from 0.0 to 1.0, not {probability}"
            )
            .into());
        }
        Ok(with_generator(|g| g.random_bool(probability)))
    }

    /// One element of the array picked at random, or `()` for an empty one (Python's
    /// `random.choice`).
    #[rhai_fn(global, name = "sample", volatile)]
    pub fn sample(array: &mut Array) -> Dynamic {
        with_generator(|g| array.choose(g).cloned()).unwrap_or(Dynamic::UNIT)
    }

    /// `amount` distinct elements of the array in random order; all of them, shuffled,
    /// when `amount` is at least its length (Python's `random.sample(xs, k)`).
    #[rhai_fn(global, name = "sample", volatile)]
    pub fn sample_many(array: &mut Array, amount: INT) -> Array {
        let amount = usize::try_from(amount).unwrap_or(0).min(array.len());
        with_generator(|g| {
            let mut picked: Array = array.sample(g, amount).cloned().collect();
            // The picks are random but their order is not: shuffle it too.
            picked.shuffle(g);
            picked
        })
    }

    /// Shuffles the array in place (Python's `random.shuffle`).
    #[rhai_fn(global, name = "shuffle", volatile)]
    pub fn shuffle(array: &mut Array) {
        with_generator(|g| array.shuffle(g));
    }
}
