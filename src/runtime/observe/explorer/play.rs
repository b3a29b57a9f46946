//! `play(f)`: the learner is the scheduler, as in the game The Deadlock Empire. At every
//! point where more than one worker could move, it shows each worker's next step and
//! asks (with `input()`) which one moves; the goal is to make the program go wrong.

use super::report::Trace;
use super::run::{Ending, Player};
use crate::runtime::sink::{InputError, OutputSink, Stream};
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
