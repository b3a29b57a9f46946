//! How an exploration and a replay look: a table of outcomes and the step-by-step trace
//! of a schedule (a column per worker, the shared values after each step, preemptions
//! and the two conflicting steps of a lost update marked), as HTML and as plain text.

use super::run::Step;
use crate::runtime::display::escape_html;
use std::collections::BTreeMap;

/// A trace: the steps of one schedule and the names of its workers.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub schedule: String,
    pub workers: Vec<String>,
    pub steps: Vec<Step>,
}

impl Trace {
    /// One line per step, `Thread-1: read counter.value → 0`, preemptions marked.
    pub fn lines(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| {
                let who = self.workers.get(s.worker).map_or("?", String::as_str);
                let mark = if s.preempted { " (preempts)" } else { "" };
                format!("{who}: {}{mark}", s.text)
            })
            .collect()
    }

    /// The two steps of a lost update: a worker reads an object, another one writes it,
    /// and the first then writes it from what it read. `None` when there is none.
    pub fn conflict(&self) -> Option<(usize, usize)> {
        let steps = &self.steps;
        for (i, first) in steps.iter().enumerate() {
            let Some((object, false)) = first.access else {
                continue;
            };
            for (j, second) in steps.iter().enumerate().skip(i + 1) {
                match second.access {
                    Some((o, true)) if o == object && second.worker != first.worker => {
                        let rewritten = steps[j + 1..].iter().any(|later| {
                            later.worker == first.worker && later.access == Some((object, true))
                        });
                        if rewritten {
                            return Some((i, j));
                        }
                    }
                    Some((o, true)) if o == object => break,
                    _ => {}
                }
            }
        }
        None
    }

    pub fn text(&self) -> String {
        let mut text = String::new();
        let conflict = self.conflict();
        for (i, line) in self.lines().iter().enumerate() {
            let marked = conflict.is_some_and(|(a, b)| i == a || i == b);
            let values = &self.steps[i].values;
            text.push_str(&format!(
                "{:>4}{} {line}{}\n",
                i + 1,
                if marked { " !" } else { "  " },
                if values.is_empty() {
                    String::new()
                } else {
                    format!("   [{values}]")
                }
            ));
        }
        text
    }

    pub fn html(&self) -> String {
        let conflict = self.conflict();
        let mut html = String::from(
            "<table class=\"rhai-trace\" style=\"border-collapse:collapse;font-family:monospace\"><tr><th>#</th>",
        );
        for worker in &self.workers {
            html.push_str(&format!("<th>{}</th>", escape_html(worker)));
        }
        html.push_str("<th>shared values after</th></tr>");
        for (i, step) in self.steps.iter().enumerate() {
            let marked = conflict.is_some_and(|(a, b)| i == a || i == b);
            let style = if marked {
                " style=\"background:#ffd6d6\""
            } else if step.preempted {
                " style=\"border-top:2px solid #e76f51\""
            } else {
                ""
            };
            html.push_str(&format!("<tr{style}><td>{}</td>", i + 1));
            for w in 0..self.workers.len() {
                if w == step.worker {
                    let mark = if step.preempted { "⚡ " } else { "" };
                    html.push_str(&format!("<td>{mark}{}</td>", escape_html(&step.text)));
                } else {
                    html.push_str("<td></td>");
                }
            }
            html.push_str(&format!("<td>{}</td></tr>", escape_html(&step.values)));
        }
        html.push_str("</table>");
        html
    }
}

/// The summary of an exploration, for both renderings.
pub struct Summary<'a> {
    pub schedules: i64,
    pub complete: bool,
    pub bound: String,
    pub outcomes: &'a BTreeMap<String, i64>,
    pub failures: i64,
    pub deadlocks: usize,
    pub first_failure: Option<&'a Trace>,
}

impl Summary<'_> {
    fn headline(&self) -> String {
        format!(
            "explore: {} schedules{} ({}), {} failing, {} deadlocked",
            self.schedules,
            if self.complete { ", all of them" } else { "" },
            self.bound,
            self.failures,
            self.deadlocks
        )
    }

    pub fn text(&self) -> String {
        let mut text = format!("{}\n", self.headline());
        for (outcome, count) in self.outcomes {
            text.push_str(&format!("  {count:>6} × {outcome}\n"));
        }
        if let Some(trace) = self.first_failure {
            text.push_str(&format!("first failing schedule: {:?}\n", trace.schedule));
            text.push_str(&trace.text());
        }
        text
    }

    pub fn html(&self) -> String {
        let mut html = format!(
            "<div class=\"rhai-exploration\"><p><b>{}</b></p><table><tr><th>outcome</th><th>schedules</th></tr>",
            escape_html(&self.headline())
        );
        for (outcome, count) in self.outcomes {
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{count}</td></tr>",
                escape_html(outcome)
            ));
        }
        html.push_str("</table>");
        if let Some(trace) = self.first_failure {
            html.push_str(&format!(
                "<p>First failing schedule <code>{}</code> (replay it with <code>replay(f, \"{}\")</code>):</p>",
                escape_html(&trace.schedule),
                escape_html(&trace.schedule)
            ));
            html.push_str(&trace.html());
        }
        html.push_str("</div>");
        html
    }
}
