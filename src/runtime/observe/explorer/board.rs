//! `play(f)` as a board of live controls (a widget in Jupyter): a button for each thread
//! that can move, labelled with its next step; the steps so far and the shared values,
//! changed in place; the verdict at the end. The run goes on in the background and waits
//! for a click at every choice, so the cell that started it ends at once.

use super::play::RULES;
use super::run::{Ending, Player};
use crate::runtime::display::escape_html;
use crate::runtime::panel::{Button, Event, OnEvent, Panel, Part};
use crate::runtime::sched::POLL;
use crate::runtime::sink::OutputSink;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};

/// The parts of the board, top to bottom.
const STEPS: usize = 1;
const VALUES: usize = 2;
const MOVES: usize = 3;
const STATUS: usize = 4;

/// What a frontend that cannot draw the board shows instead.
const NO_WIDGETS: &str = "play shows its board as a widget, and this frontend has no widget \
manager to draw it (JupyterLab with jupyterlab_widgets, Notebook 7 and VS Code have one). \
Play the text game instead: play(f, #{ text: true }).";

/// The learner at the board: steps and choices go to the panel, choices come from its
/// buttons.
pub struct Board {
    panel: Arc<dyn Panel>,
    clicks: Receiver<Event>,
    steps: Mutex<Vec<String>>,
}

impl Board {
    /// Shows an empty board through `sink`; `None` when the sink has no live controls.
    pub fn open(sink: &dyn OutputSink) -> Option<Board> {
        let (tx, clicks) = crossbeam_channel::unbounded();
        // A closed board's sender may outlive the run: sending then fails, harmlessly.
        let on_event: OnEvent = Arc::new(move |event| {
            let _ = tx.send(event);
        });
        let parts = vec![
            Part::Html(format!("<p>{}</p>", escape_html(RULES.trim_end()))),
            Part::Html(steps_html(&[])),
            Part::Html(String::new()),
            Part::Buttons(Vec::new()),
            Part::Html("<i>Starting…</i>".into()),
        ];
        let panel = sink.panel(parts, NO_WIDGETS, on_event)?;
        Some(Board {
            panel,
            clicks,
            steps: Mutex::new(Vec::new()),
        })
    }

    /// The run is over: no more moves, and the verdict (as the text game words it).
    pub fn finish(&self, values: &str, verdict: &str) {
        self.panel.set(MOVES, Part::Buttons(Vec::new()));
        self.panel.set(VALUES, Part::Html(values_html(values)));
        self.panel.set(
            STATUS,
            Part::Html(format!("<b>{}</b>", escape_html(verdict.trim()))),
        );
    }
}

fn steps_html(steps: &[String]) -> String {
    if steps.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = steps.iter().map(|s| escape_html(s)).collect();
    format!("<pre style=\"margin: 0\">{}</pre>", lines.join("\n"))
}

fn values_html(values: &str) -> String {
    if values.is_empty() {
        return String::new();
    }
    format!("Shared: <code>{}</code>", escape_html(values))
}

impl Player for Board {
    fn step(&self, number: usize, line: &str) {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        steps.push(format!("{number:>4}. {line}"));
        self.panel.set(STEPS, Part::Html(steps_html(&steps)));
    }

    fn choose(
        &self,
        choices: &[(usize, String)],
        default: usize,
        values: &str,
    ) -> Result<usize, Ending> {
        // A click meant for an earlier choice (a double click) must not make this one.
        while self.clicks.try_recv().is_ok() {}
        let buttons = choices
            .iter()
            .map(|(worker, step)| Button {
                key: *worker,
                label: step.clone(),
                tooltip: if *worker == default {
                    "goes on without a switch".into()
                } else {
                    "switch to this thread".into()
                },
            })
            .collect();
        self.panel.set(VALUES, Part::Html(values_html(values)));
        self.panel.set(MOVES, Part::Buttons(buttons));
        self.panel.set(
            STATUS,
            Part::Html("<i>Who moves? Click a thread.</i>".into()),
        );
        loop {
            match self.clicks.recv_timeout(POLL) {
                Ok(Event::Click { key, .. }) if choices.iter().any(|(w, _)| *w == key) => {
                    self.panel.set(MOVES, Part::Buttons(Vec::new()));
                    return Ok(key);
                }
                Ok(Event::Click { .. }) => {}
                Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(Ending::Unfit("play: the board was closed".into()))
                }
                Err(RecvTimeoutError::Timeout) => {
                    if crate::runtime::interrupt::is_requested() {
                        return Err(Ending::Interrupted);
                    }
                }
            }
        }
    }
}
