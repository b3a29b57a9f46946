//! `play(f)`: the learner is the scheduler, as in the game The Deadlock Empire. At every
//! point where more than one worker could move, it shows each worker's next step and
//! asks (with `input()`) which one moves; the goal is to make the program go wrong.

use super::options::{bool_option, fn_option};
use super::report::Trace;
use super::run::{Ending, Player};
use super::strategy::Strategy;
use super::{board, no_nesting, outcome, run_once, Replay, Setup};
use crate::runtime::failures::describe_error;
use crate::runtime::sink::{InputError, OutputSink, Stream};
use rhai::{Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext};
use std::sync::Arc;

/// The learner at the keyboard: steps and choices go to the cell's output, answers come
/// from its input.
pub struct Learner {
    pub sink: Arc<dyn OutputSink>,
}

impl Learner {
    fn say(&self, text: &str) {
        self.sink.write(Stream::Stdout, text);
    }
}

/// The worker an answer names: its number in the menu, or nothing for the default.
fn parse(answer: &str, choices: &[(usize, String)], default: usize) -> Option<usize> {
    let answer = answer.trim();
    if answer.is_empty() {
        return Some(default);
    }
    let n: usize = answer.parse().ok()?;
    choices.get(n.checked_sub(1)?).map(|(w, _)| *w)
}

impl Player for Learner {
    fn step(&self, number: usize, line: &str) {
        self.say(&format!("{number:>4}. {line}\n"));
    }

    fn choose(
        &self,
        choices: &[(usize, String)],
        default: usize,
        values: &str,
    ) -> Result<usize, Ending> {
        let mut menu = String::from("\n");
        if !values.is_empty() {
            menu.push_str(&format!("  [{values}]\n"));
        }
        for (i, (worker, step)) in choices.iter().enumerate() {
            let mark = if *worker == default { "   (Enter)" } else { "" };
            menu.push_str(&format!("  {}) {step}{mark}\n", i + 1));
        }
        self.say(&menu);
        loop {
            let prompt = format!("Who moves? 1-{} (q stops): ", choices.len());
            let answer = match self.sink.read_input(&prompt, false) {
                Ok(answer) => answer,
                Err(InputError::Interrupted) => return Err(Ending::Interrupted),
                Err(InputError::NotAllowed) => {
                    return Err(Ending::Unfit(
                        "play needs input, which this frontend does not allow".into(),
                    ))
                }
                Err(InputError::Closed) => {
                    return Err(Ending::Unfit("play: the input ended".into()))
                }
            };
            if matches!(answer.trim(), "q" | "quit") {
                return Err(Ending::Unfit("play: stopped".into()));
            }
            match parse(&answer, choices, default) {
                Some(worker) => return Ok(worker),
                None => self.say(&format!(
                    "  '{}' is not one of 1-{}.\n",
                    answer.trim(),
                    choices.len()
                )),
            }
        }
    }
}

/// What the learner is told at the start.
pub const RULES: &str = "You are the scheduler. The threads below take turns only where \
you say: at each step, choose which one moves. Goal: make the program go wrong — lose an \
update, break its invariant, or deadlock it.\n";

/// The verdict at the end: whether the learner broke the program.
pub fn verdict(result: &str, broken: bool, trace: &Trace) -> String {
    let how = match trace.conflict() {
        Some((a, b)) => format!(
            " Step {} read the value before step {} wrote it, so the write that follows \
             step {} puts back an old value: an update is lost.",
            a + 1,
            b + 1,
            a + 1
        ),
        None => String::new(),
    };
    if broken {
        format!(
            "\nResult: {result}. You broke it!{how} Replay it with replay(f, \"{}\").\n",
            trace.schedule
        )
    } else {
        format!(
            "\nResult: {result}. The program held this time; play again and choose \
             differently.\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_name_a_menu_entry_or_the_default() {
        let choices = vec![(0, "main".to_string()), (2, "Thread-2".to_string())];
        assert_eq!(parse("", &choices, 2), Some(2));
        assert_eq!(parse(" 1 ", &choices, 2), Some(0));
        assert_eq!(parse("2", &choices, 0), Some(2));
        assert_eq!(parse("3", &choices, 0), None);
        assert_eq!(parse("0", &choices, 0), None);
        assert_eq!(parse("two", &choices, 0), None);
    }
}

/// How `play` is played: `expect` says whether the result is right (without it, a lost
/// update or a deadlock counts as broken); `text` asks for the text game where a board of
/// live controls could be shown.
#[derive(Default)]
pub(super) struct Game {
    pub(super) expect: Option<FnPtr>,
    pub(super) text: bool,
}

impl Game {
    pub(super) fn from_options(options: &Map) -> Result<Game, Box<EvalAltResult>> {
        const KNOWN: [&str; 2] = ["expect", "text"];
        if let Some(unknown) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!(
                "play: unknown option '{unknown}' (known: {})",
                KNOWN.join(", ")
            )
            .into());
        }
        let expect = fn_option(options, "play", "expect")?;
        let text = bool_option(options, "play", "text", false)?;
        Ok(Game { expect, text })
    }
}

/// `play`: one run in which the learner chooses who moves. Where the sink can show live
/// controls (and the text game was not asked for), the board is shown, the run goes on in
/// the background and `()` comes back at once; otherwise the text game asks through
/// `input()` and returns the `Replay` of what was played.
pub(super) fn play_with(
    ctx: &NativeCallContext,
    f: &FnPtr,
    game: Game,
) -> Result<Dynamic, Box<EvalAltResult>> {
    no_nesting()?;
    let sink = crate::runtime::sink::current().ok_or("play needs an input channel")?;
    if !game.text {
        if let Some(board) = board::Board::open(sink.as_ref()) {
            play_in_background(ctx, f, game.expect, sink, board)?;
            return Ok(Dynamic::UNIT);
        }
    }
    sink.write(crate::runtime::sink::Stream::Stdout, RULES);
    let learner = Arc::new(Learner { sink: sink.clone() });
    let (replay, verdict) = play_run(ctx, f, game.expect.as_ref(), learner)?;
    sink.write(crate::runtime::sink::Stream::Stdout, &verdict);
    Ok(Dynamic::from(replay))
}

/// One run with `player` choosing: what was played, and the verdict.
fn play_run(
    ctx: &NativeCallContext,
    f: &FnPtr,
    expect: Option<&FnPtr>,
    player: Arc<dyn Player>,
) -> Result<(Replay, String), Box<EvalAltResult>> {
    let fixed = Strategy::Fixed {
        choices: Vec::new(),
    };
    let (result, record) = run_once(ctx, f, fixed, Setup::traced(10_000, Some(player)));
    let trace = record.trace();
    let (value, wrong) = outcome(&record, result)?;
    let broken = wrong
        || match expect {
            Some(expect) => !expect
                .call_within_context::<Dynamic>(ctx, (value.clone(),))?
                .as_bool()
                .unwrap_or(false),
            None => trace.conflict().is_some(),
        };
    let verdict = verdict(&value.to_string(), broken, &trace);
    Ok((
        Replay {
            result: value,
            trace,
        },
        verdict,
    ))
}

/// Runs the game of `board` on a thread of its own, as script threads run (the session's
/// engine, the cell's functions and sink), so that the cell can end while the learner
/// clicks. Whatever ends the run (the verdict, an error, an interrupt, the board closed)
/// is shown on the board.
fn play_in_background(
    ctx: &NativeCallContext,
    f: &FnPtr,
    expect: Option<FnPtr>,
    sink: Arc<dyn crate::runtime::sink::OutputSink>,
    board: board::Board,
) -> Result<(), Box<EvalAltResult>> {
    let engine = crate::runtime::engines::script_engine()?;
    // The stored call context carries the cell's function library, as for a thread.
    #[allow(deprecated)]
    let store = ctx.store_data();
    let mut f = f.clone();
    // The run uses the objects captured by `f` directly, as threads do.
    for value in f.iter_curry_mut() {
        *value = crate::runtime::threads::detach(value);
    }
    let board = Arc::new(board);
    let body = move || {
        crate::runtime::sink::with_sink(sink, || {
            #[allow(deprecated)]
            let ctx = store.create_context(&engine);
            let played = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                play_run(&ctx, &f, expect.as_ref(), board.clone())
            }));
            crate::runtime::sched::leaving();
            match played {
                Ok(Ok((replay, verdict))) => {
                    let values = replay.trace.steps.last().map_or("", |s| s.values.as_str());
                    board.finish(values, &verdict);
                }
                Ok(Err(error)) => {
                    board.finish("", &format!("play ended: {}", describe_error(&error)))
                }
                Err(_) => board.finish("", "play ended: a native function panicked"),
            }
        })
    };
    std::thread::Builder::new()
        .name("play".into())
        .stack_size(crate::runtime::SCRIPT_STACK_SIZE)
        .spawn(body)
        .map(drop)
        .map_err(|e| format!("play: cannot start the game: {e}").into())
}
