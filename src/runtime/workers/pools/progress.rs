//! The live progress bar of `map(f, xs, #{progress: true})`: one display in the cell's
//! output, updated in place at most every 100 ms, as text and as HTML.

use crate::runtime::sink::{self, MimeBundle, OutputSink};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A live progress bar in the output (one display, updated in place).
pub(super) struct Progress {
    sink: Option<Arc<dyn OutputSink>>,
    id: String,
    total: usize,
    start: Instant,
    last: Instant,
}

impl Progress {
    pub(super) fn new(enabled: bool, total: usize) -> Option<Progress> {
        let sink = sink::current();
        enabled.then(|| {
            let progress = Progress {
                sink,
                id: format!("progress-{}", uuid::Uuid::new_v4()),
                total,
                start: Instant::now(),
                last: Instant::now(),
            };
            progress.show(0, false);
            progress
        })
    }

    fn bundle(&self, done: usize) -> MimeBundle {
        let fraction = if self.total == 0 {
            1.0
        } else {
            done as f64 / self.total as f64
        };
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let eta = if rate > 0.0 {
            (self.total - done) as f64 / rate
        } else {
            0.0
        };
        let filled = (fraction * 30.0).round() as usize;
        let text = format!(
            "[{}{}] {done}/{} ({:.0}%) {rate:.1} items/s, ETA {eta:.1} s",
            "#".repeat(filled),
            "-".repeat(30 - filled.min(30)),
            self.total,
            fraction * 100.0
        );
        let html = format!(
            "<div style=\"font-family: monospace\"><progress value=\"{done}\" max=\"{}\" style=\"width: 20em\"></progress> {done}/{} ({:.0}%) · {rate:.1} items/s · ETA {eta:.1} s</div>",
            self.total.max(1),
            self.total,
            fraction * 100.0
        );
        let mut bundle = MimeBundle::new();
        bundle.insert("text/plain".into(), Value::String(text));
        bundle.insert("text/html".into(), Value::String(html));
        bundle
    }

    fn show(&self, done: usize, update: bool) {
        if let Some(sink) = &self.sink {
            sink.display(self.bundle(done), Some(&self.id), update);
        }
    }

    pub(super) fn tick(&mut self, done: usize) {
        if done == self.total || self.last.elapsed() >= Duration::from_millis(100) {
            self.last = Instant::now();
            self.show(done, true);
        }
    }
}
