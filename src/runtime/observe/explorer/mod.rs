//! The schedule explorer: `explore(f)` runs `f` — which starts threads and returns a
//! result — again and again, letting one worker run at a time and choosing who runs next
//! at every shared operation, until every schedule within a bound on preemptions has run
//! (or at random, or by PCT). `replay(f, schedule)` runs one schedule again, step for
//! step. Inside, `sleep` only lets others run (virtual time), and a deadlock is an
//! outcome with its trace, never a hang. `play(f)` lets the learner choose instead.

mod board;
mod dpor;
mod options;
mod play;
mod prove;
mod report;
mod run;
mod strategy;

use super::names::Names;
use crate::runtime::display::show_rich;
use crate::runtime::failures::describe_error;
use crate::runtime::races;
use crate::runtime::sched::{self, Kind, Object};
use options::{parse_options, Options};
use play::{play_with, Game};
pub use prove::prove_api;
use report::{Summary, Trace};
use rhai::plugin::*;
use rhai::{FnPtr, Map};
use run::{Ending, Player, Run};
use std::collections::BTreeMap;
use std::sync::Arc;
use strategy::Strategy;

/// What `explore` found.
#[derive(Clone, Debug, Default)]
pub struct Exploration {
    schedules: i64,
    complete: bool,
    bound: String,
    outcomes: BTreeMap<String, i64>,
    failures: i64,
    deadlocks: Vec<Trace>,
    first_failure: Option<Trace>,
    /// The data races the detector found over all schedules.
    races: Vec<races::Race>,
}

/// What `replay` did.
#[derive(Clone, Debug)]
pub struct Replay {
    result: Dynamic,
    trace: Trace,
}

/// How a run goes, besides its strategy.
struct Setup {
    max_steps: usize,
    /// Who chooses instead of the strategy (`play`).
    player: Option<Arc<dyn Player>>,
    /// Whether its steps are written down, for a trace (see `Run::new`).
    traced: bool,
}

impl Setup {
    /// One run that shows its steps (`replay`, `play`).
    fn traced(max_steps: usize, player: Option<Arc<dyn Player>>) -> Setup {
        Setup {
            max_steps,
            player,
            traced: true,
        }
    }
}

/// One run of `f` under `strategy`: its result and what the run recorded. Its workers run
/// on the CPU the caller is on (see `sched::keep_on`); the caller has all its CPUs between
/// runs, so the system can move it, and the next run with it, away from a busy CPU.
fn run_once(
    ctx: &NativeCallContext,
    f: &FnPtr,
    strategy: Strategy,
    setup: Setup,
) -> (Result<Dynamic, Box<EvalAltResult>>, run::Record) {
    let mut names = Names::default();
    names.capture(ctx, f, &[]);
    let run = Run::new(
        strategy,
        setup.max_steps,
        names,
        sched::cpu_now(),
        setup.traced,
    );
    if let Some(player) = setup.player {
        run.play(player);
    }
    let main = run.main();
    let result = {
        let _controlled = sched::control(main.clone());
        let result = f.call_within_context::<Dynamic>(ctx, ());
        main.finished(Object::new(Kind::Thread, 0, 0));
        result
    };
    let record = run.finish();
    // The caller's thread goes on with all its CPUs (the workers' threads keep theirs
    // until they next run something: see `sched::keep_on`).
    sched::keep_on(None);
    (result, record)
}

fn no_nesting() -> Result<(), Box<EvalAltResult>> {
    if sched::controller().is_some() {
        return Err("explore and replay cannot run inside an exploration".into());
    }
    Ok(())
}

fn explore_with(
    ctx: &NativeCallContext,
    f: &FnPtr,
    options: Options,
) -> Result<Exploration, Box<EvalAltResult>> {
    no_nesting()?;
    let mut found = Exploration {
        bound: options.bound.clone(),
        ..Exploration::default()
    };
    let mut strategy = options.strategy;
    // Every schedule runs under the race detector too: a race may not change this
    // schedule's result, yet be there.
    let check = races::Check::start()?;
    // How often the detector had seen each race after the previous run.
    let mut seen: Vec<u64> = Vec::new();
    loop {
        if found.schedules > 0 {
            check.next_run();
        }
        // Untraced: writing every step down cost a quarter of the time of a run; the few
        // schedules whose trace is shown are run again, traced (see `Exploration::count`).
        let setup = Setup {
            max_steps: options.max_steps,
            player: None,
            traced: false,
        };
        let (result, record) = run_once(ctx, f, strategy, setup);
        // A race is named after the objects of the schedule that found it first, and
        // counted once in each schedule that has it.
        // A run the reduction cut short repeats explored schedules: not one of its own.
        let redundant = record.ending == Some(Ending::Redundant);
        let (now, _) = check.races();
        let counts = u64::from(!redundant);
        for (i, mut race) in now.into_iter().enumerate() {
            let happened = race.count;
            match found.races.get_mut(i) {
                Some(known) if happened > seen[i] => known.count += counts,
                Some(_) => {}
                None => {
                    race.name_by(&record.names);
                    race.count = counts.max(1);
                    found.races.push(race);
                    seen.push(0);
                }
            }
            seen[i] = happened;
        }
        if record.ending == Some(Ending::Interrupted) || crate::runtime::interrupt::is_requested() {
            return Err(crate::runtime::interrupted_error());
        }
        if !redundant {
            let trace = || {
                check.next_run();
                let traced = traced_again(ctx, f, &record, options.max_steps);
                // The run again is no schedule of its own: its races are not counted.
                let (now, _) = check.races();
                for (count, race) in seen.iter_mut().zip(now) {
                    *count = race.count;
                }
                traced
            };
            found.count(ctx, options.expect.as_ref(), &record, result, trace)?;
        }
        strategy = record.strategy;
        if !strategy.advance(&record.decisions, &record.transitions) {
            found.complete = matches!(strategy, Strategy::Dfs { .. } | Strategy::Dpor(_));
            break;
        }
        if found.schedules >= options.max_schedules {
            break;
        }
    }
    let (_, lost) = check.races();
    drop(check);
    if options.show {
        let summary = found.summary();
        show_rich("text/html", summary.html(), summary.text());
        if !found.races.is_empty() {
            races::show(&found.races, &lost, races::Counted::Schedules);
        }
    }
    Ok(found)
}

impl Exploration {
    /// Counts a schedule that ran to its end: its outcome, and whether it failed. `trace`
    /// gives its trace, if one is kept.
    fn count(
        &mut self,
        ctx: &NativeCallContext,
        expect: Option<&FnPtr>,
        record: &run::Record,
        result: Result<Dynamic, Box<EvalAltResult>>,
        mut trace: impl FnMut() -> Result<Trace, Box<EvalAltResult>>,
    ) -> Result<(), Box<EvalAltResult>> {
        self.schedules += 1;
        let (value, wrong) = outcome(record, result)?;
        let failed = wrong
            || expect.is_some_and(|expect| {
                !expect
                    .call_within_context::<Dynamic>(ctx, (value.clone(),))
                    .is_ok_and(|ok| ok.as_bool().unwrap_or(false))
            });
        *self.outcomes.entry(value.to_string()).or_insert(0) += 1;
        let first_failure = failed && self.first_failure.is_none();
        let deadlock = record.ending == Some(Ending::Deadlock) && self.deadlocks.len() < 10;
        let traced = if first_failure || deadlock {
            Some(trace()?)
        } else {
            None
        };
        if failed {
            self.failures += 1;
        }
        if first_failure {
            self.first_failure = traced.clone();
        }
        if deadlock {
            self.deadlocks.extend(traced);
        }
        Ok(())
    }

    fn summary(&self) -> Summary<'_> {
        Summary {
            schedules: self.schedules,
            complete: self.complete,
            bound: self.bound.clone(),
            outcomes: &self.outcomes,
            failures: self.failures,
            deadlocks: self.deadlocks.len(),
            first_failure: self.first_failure.as_ref(),
        }
    }
}

/// What a run gave: its result, or what ended it (`"deadlock"`, `"more than n steps"`,
/// `"error: …"`), and whether that ending is itself a failure. An interrupt, or a
/// schedule that does not fit the program, is an error.
fn outcome(
    record: &run::Record,
    result: Result<Dynamic, Box<EvalAltResult>>,
) -> Result<(Dynamic, bool), Box<EvalAltResult>> {
    Ok(match (&record.ending, result) {
        (Some(Ending::Interrupted), _) => return Err(crate::runtime::interrupted_error()),
        (Some(Ending::Unfit(message)), _) => return Err(message.clone().into()),
        (Some(Ending::Redundant), _) => return Err(Ending::Redundant.error()),
        (Some(Ending::Deadlock), _) => (Dynamic::from("deadlock"), true),
        (Some(Ending::StepLimit(n)), _) => (Dynamic::from(format!("more than {n} steps")), true),
        (None, Err(e)) => (
            Dynamic::from(format!("error: {}", describe_error(&e))),
            true,
        ),
        (None, Ok(value)) => (value, false),
    })
}

/// The trace of a schedule explored untraced: it runs again, traced. (A schedule runs step
/// for step as it did, which is what `replay` promises too.)
fn traced_again(
    ctx: &NativeCallContext,
    f: &FnPtr,
    record: &run::Record,
    max_steps: usize,
) -> Result<Trace, Box<EvalAltResult>> {
    let choices = record.decisions.iter().map(|d| d.chosen).collect();
    let (_, again) = run_once(
        ctx,
        f,
        Strategy::Fixed { choices },
        Setup::traced(max_steps, None),
    );
    match &again.ending {
        Some(Ending::Interrupted) => Err(crate::runtime::interrupted_error()),
        Some(Ending::Unfit(message)) => Err(message.clone().into()),
        _ if again.steps.len() != record.steps.len() => {
            Err(run::unfit_rerun(record.decisions.len()).into())
        }
        _ => Ok(again.trace()),
    }
}

impl run::Record {
    /// The run's steps as a trace, with the schedule that replays them.
    fn trace(&self) -> Trace {
        Trace {
            schedule: strategy::encode(&self.decisions),
            workers: self.workers.clone(),
            steps: self.steps.clone(),
        }
    }
}

fn lines(trace: &Trace) -> rhai::Array {
    trace.lines().into_iter().map(Dynamic::from).collect()
}

#[export_module]
pub mod explorer_api {
    use super::*;

    pub type Exploration = super::Exploration;
    pub type Replay = super::Replay;

    /// Runs `f` — a function that starts threads and returns a result — under every
    /// schedule of its threads, one worker at a time, switching only at shared operations
    /// (`.value` reads and writes, lock acquire and release, queue put and get, spawn,
    /// join, sleep…); schedules that differ only in the order of independent steps run
    /// once (partial-order reduction, as Loom). Shows a table of the
    /// outcomes and the trace of the first failing schedule, and returns an `Exploration`
    /// (`schedules`, `complete`, `outcomes`, `failures`, `deadlocks`, `first_failure`,
    /// and `races`: the data races the race detector found in any schedule).
    ///
    /// ```rhai
    /// let r = explore(|| {
    ///     let counter = value(0);
    ///     let a = spawn_thread(|| counter.value += 1);
    ///     let b = spawn_thread(|| counter.value += 1);
    ///     a.join(); b.join();
    ///     counter.value
    /// });
    /// r.outcomes   // #{"1": …, "2": …}
    /// ```
    #[rhai_fn(name = "explore", return_raw)]
    pub fn explore(ctx: NativeCallContext, f: FnPtr) -> Result<Exploration, Box<EvalAltResult>> {
        explore_with(&ctx, &f, parse_options(&Map::new())?)
    }

    /// `explore(f, #{ strategy: "dpor", preemptions: 2, max_schedules: 1000, seed: 1,
    /// expect: |result| …, max_steps: 10000, show: true })`: `strategy` is `"dpor"` (the
    /// default: one schedule per class of equivalent ones), `"dfs"` (every schedule within
    /// `preemptions`; the default when `preemptions` is given), `"random"` or `"pct"` (probabilistic concurrency
    /// testing with depth `preemptions + 1`), reproducible by `seed`; a schedule whose
    /// result fails `expect` (or that throws, deadlocks or runs more than `max_steps`
    /// steps) is a failure.
    #[rhai_fn(name = "explore", return_raw)]
    pub fn explore_options(
        ctx: NativeCallContext,
        f: FnPtr,
        options: Map,
    ) -> Result<Exploration, Box<EvalAltResult>> {
        explore_with(&ctx, &f, parse_options(&options)?)
    }

    /// Runs `f` once more under `schedule` (as `first_failure` gives it) and returns a
    /// `Replay` with its `result` and `steps`, one line per step: the same schedule gives
    /// the same steps.
    #[rhai_fn(return_raw)]
    pub fn replay(
        ctx: NativeCallContext,
        f: FnPtr,
        schedule: &str,
    ) -> Result<Replay, Box<EvalAltResult>> {
        no_nesting()?;
        let choices = strategy::decode(schedule)?;
        let (result, record) = run_once(
            &ctx,
            &f,
            Strategy::Fixed { choices },
            Setup::traced(10_000, None),
        );
        let result = match &record.ending {
            Some(Ending::Interrupted) => return Err(crate::runtime::interrupted_error()),
            Some(Ending::Unfit(message)) => return Err(message.clone().into()),
            Some(Ending::Deadlock) => Dynamic::from("deadlock".to_string()),
            _ => result.unwrap_or_else(|e| Dynamic::from(format!("error: {}", describe_error(&e)))),
        };
        Ok(Replay {
            result,
            trace: record.trace(),
        })
    }

    /// You are the scheduler: runs `f` once, one worker at a time, and at every point
    /// where several workers could move lets you choose which one moves. The goal is to
    /// make the program go wrong (a lost update or a deadlock), as in the game The
    /// Deadlock Empire.
    ///
    /// In a notebook it shows a board (a widget): a button per thread that can move,
    /// labelled with its next step, the steps so far and the shared values, and the
    /// verdict at the end. The cell ends at once (so "Run All" goes on) and returns `()`;
    /// the game waits for your clicks. A frontend without a widget manager (`jupyter
    /// console`) shows a line saying so: play the text game there with
    /// `play(f, #{ text: true })`.
    ///
    /// The text game (`rhai-kernel run`, or `text: true`) shows each worker's next step and
    /// asks through `input()` which one moves — Enter lets the current one go on, `q`
    /// stops — and returns a `Replay` of what you did (`result`, `steps`, `schedule`, for
    /// `replay`).
    ///
    /// ```rhai
    /// play(two_increments, #{ expect: |v| v == 2 })   // the board; or add text: true
    /// ```
    #[rhai_fn(return_raw)]
    pub fn play(ctx: NativeCallContext, f: FnPtr) -> Result<Dynamic, Box<EvalAltResult>> {
        play_with(&ctx, &f, Game::default())
    }

    /// `play(f, expect)`: the program is broken when `expect(result)` is false.
    #[rhai_fn(name = "play", return_raw)]
    pub fn play_expect(
        ctx: NativeCallContext,
        f: FnPtr,
        expect: FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let game = Game {
            expect: Some(expect),
            text: false,
        };
        play_with(&ctx, &f, game)
    }

    /// `play(f, #{ expect: |result| …, text: false })`: the program is broken when
    /// `expect(result)` is false; `text: true` plays the text game (through `input()`)
    /// even where a board could be shown.
    #[rhai_fn(name = "play", return_raw)]
    pub fn play_options(
        ctx: NativeCallContext,
        f: FnPtr,
        options: Map,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        play_with(&ctx, &f, Game::from_options(&options)?)
    }

    /// How many schedules ran.
    #[rhai_fn(get = "schedules", pure)]
    pub fn schedules(e: &mut Exploration) -> i64 {
        e.schedules
    }

    /// `true` when every schedule within the bound ran (depth-first search finished).
    #[rhai_fn(get = "complete", pure)]
    pub fn complete(e: &mut Exploration) -> bool {
        e.complete
    }

    /// Each distinct result (as text; `"deadlock"`, `"error: …"`) and how many schedules
    /// gave it.
    #[rhai_fn(get = "outcomes", pure)]
    pub fn outcomes(e: &mut Exploration) -> Map {
        e.outcomes
            .iter()
            .map(|(k, v)| (k.as_str().into(), Dynamic::from_int(*v)))
            .collect()
    }

    /// How many schedules failed: their result failed `expect`, or they threw, deadlocked
    /// or ran too long.
    #[rhai_fn(get = "failures", pure)]
    pub fn failures(e: &mut Exploration) -> i64 {
        e.failures
    }

    /// The schedules that deadlocked (at most 10): `#{schedule, steps}` each.
    #[rhai_fn(get = "deadlocks", pure)]
    pub fn deadlocks(e: &mut Exploration) -> rhai::Array {
        e.deadlocks
            .iter()
            .map(|t| {
                let mut map = Map::new();
                map.insert("schedule".into(), Dynamic::from(t.schedule.clone()));
                map.insert("steps".into(), Dynamic::from_array(lines(t)));
                Dynamic::from_map(map)
            })
            .collect()
    }

    /// The data races that the race detector found in any schedule: an array of
    /// `#{object, first, second, count}` as `check_races` gives them (`count`: in how many
    /// schedules).
    #[rhai_fn(get = "races", pure)]
    pub fn races(e: &mut Exploration) -> rhai::Array {
        races::to_array(&e.races)
    }

    /// The first failing schedule, as a string to pass to `replay`; `()` if none failed.
    #[rhai_fn(get = "first_failure", pure)]
    pub fn first_failure(e: &mut Exploration) -> Dynamic {
        e.first_failure
            .as_ref()
            .map_or(Dynamic::UNIT, |t| Dynamic::from(t.schedule.clone()))
    }

    /// The steps of the first failing schedule, one line each; `()` if none failed.
    #[rhai_fn(get = "trace", pure)]
    pub fn trace(e: &mut Exploration) -> Dynamic {
        e.first_failure
            .as_ref()
            .map_or(Dynamic::UNIT, |t| Dynamic::from_array(lines(t)))
    }

    /// Shows the exploration's summary and outcomes.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn exploration_to_string(e: &mut Exploration) -> String {
        e.summary().text()
    }

    /// What the replayed schedule returned (`"deadlock"` or `"error: …"` if it did not).
    #[rhai_fn(get = "result", pure)]
    pub fn result(r: &mut Replay) -> Dynamic {
        r.result.clone()
    }

    /// The replayed schedule's steps, one line each (`Thread-1: read counter.value → 0`).
    #[rhai_fn(get = "steps", pure)]
    pub fn steps(r: &mut Replay) -> rhai::Array {
        lines(&r.trace)
    }

    /// The schedule that ran (the decisions taken, as `first_failure` writes them).
    #[rhai_fn(get = "schedule", pure)]
    pub fn schedule(r: &mut Replay) -> String {
        r.trace.schedule.clone()
    }

    /// Shows the replay's trace, one numbered line per step.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn replay_to_string(r: &mut Replay) -> String {
        format!(
            "replay {:?} → {}\n{}",
            r.trace.schedule,
            r.result,
            r.trace.text()
        )
    }
}
