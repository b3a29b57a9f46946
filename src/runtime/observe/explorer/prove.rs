//! `prove(f, expect)`: the check behind the notebooks' exercises. It explores every
//! schedule of the learner's `f` (with the reduction, so that a small program completes)
//! and answers in one line: correct in every schedule, or wrong, with the first failing
//! schedule's trace, or "not a proof" when the schedules were too many to try them all.

use super::explore_with;
use super::options::parse_options;
use crate::runtime::display::{escape_html, show_rich};
use rhai::plugin::*;
use rhai::{FnPtr, Map};

/// How many schedules `prove` tries before it gives up on a proof.
const MOST_SCHEDULES: i64 = 20_000;

/// The verdict on an exploration: what a learner reads first.
fn verdict(schedules: i64, complete: bool, failures: i64, outcomes: &str) -> (bool, String) {
    if failures > 0 {
        let text = format!(
            "✘ wrong: {failures} of the {schedules} schedules tried fail (outcomes {outcomes}); \
             the first one is below"
        );
        return (false, text);
    }
    if !complete {
        let text = format!(
            "? no schedule failed, but only the first {schedules} were tried: this is not a \
             proof (make the program smaller)"
        );
        return (false, text);
    }
    let text = format!("✔ correct in every schedule: {schedules} of them, outcomes {outcomes}");
    (true, text)
}

#[export_module]
pub mod prove_api {
    use super::*;

    /// Checks a solution: runs `f` under every schedule of its threads (as `explore`
    /// does) and says "correct in every schedule" when `expect(result)` holds in all of
    /// them, or shows the first schedule where it does not (a wrong result, an error, a
    /// deadlock). Returns whether it is proven correct.
    ///
    /// ```rhai
    /// prove(|| {
    ///     let counter = value(0);
    ///     let guard = lock();
    ///     let ts = [];
    ///     for i in 0..2 { ts.push(spawn_thread(|| guard.hold(|| counter.value += 1))); }
    ///     for t in ts { t.join(); }
    ///     counter.value
    /// }, |result| result == 2)      // ✔ correct in every schedule
    /// ```
    #[rhai_fn(return_raw)]
    pub fn prove(
        ctx: NativeCallContext,
        f: FnPtr,
        expect: FnPtr,
    ) -> Result<bool, Box<EvalAltResult>> {
        let mut options = Map::new();
        options.insert("expect".into(), Dynamic::from(expect));
        options.insert("show".into(), Dynamic::FALSE);
        options.insert("max_schedules".into(), Dynamic::from_int(MOST_SCHEDULES));
        let found = explore_with(&ctx, &f, parse_options(&options)?)?;
        let outcomes = found
            .outcomes
            .iter()
            .map(|(outcome, n)| format!("{outcome} × {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (correct, text) = verdict(found.schedules, found.complete, found.failures, &outcomes);
        let escaped = escape_html(&text);
        let color = if correct { "#1a7f37" } else { "#cf222e" };
        show_rich(
            "text/html",
            format!("<p style=\"color:{color};font-weight:bold\">{escaped}</p>"),
            text.clone(),
        );
        if found.failures > 0 {
            let summary = found.summary();
            show_rich("text/html", summary.html(), summary.text());
        }
        Ok(correct)
    }
}

#[cfg(test)]
mod tests {
    use super::verdict;

    #[test]
    fn only_a_complete_exploration_without_failures_is_a_proof() {
        assert!(verdict(12, true, 0, "2 × 12").0);
        assert!(!verdict(12, true, 3, "1 × 3, 2 × 9").0);
        let (proven, text) = verdict(20_000, false, 0, "2 × 20000");
        assert!(!proven && text.contains("not a proof"));
    }
}
