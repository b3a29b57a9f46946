//! The results of a pool's `map`-like call as they arrive: collected by `map` and
//! `starmap`, handed out one by one by `imap` (in order) and `imap_unordered` (as they
//! finish), so that a `for` loop gets the first result while the slowest task still runs.

use super::executor::ChunkResult;
use super::progress::Progress;
use super::replies::Replies;
use crate::runtime::{interrupt, interrupted_error};
use rhai::{Dynamic, EvalAltResult};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The results of a call's chunks, in item order or in the order they finish.
#[derive(Clone)]
pub struct Results(Arc<Mutex<Arrivals>>);

struct Arrivals {
    replies: Replies,
    kind: &'static str,
    cancelled: Arc<AtomicBool>,
    chunks_left: usize,
    ordered: bool,
    /// Chunks that came before their turn (ordered), by their first item.
    early: BTreeMap<usize, Vec<Dynamic>>,
    next_item: usize,
    ready: VecDeque<Dynamic>,
    progress: Option<Progress>,
    received: usize,
    /// A task's error, and the item it belongs to: handed out in its turn (`imap`), or
    /// at once (`fail_fast`: `map` throws on the first failure, as Python's).
    task_error: Option<(usize, Box<EvalAltResult>)>,
    fail_fast: bool,
    /// An error was handed out: the call is over.
    failed: bool,
}

impl Results {
    pub(super) fn new(
        replies: Replies,
        kind: &'static str,
        cancelled: Arc<AtomicBool>,
        chunks: usize,
        ordered: bool,
        progress: Option<Progress>,
    ) -> Results {
        Results(Arc::new(Mutex::new(Arrivals {
            replies,
            kind,
            cancelled,
            chunks_left: chunks,
            ordered,
            early: BTreeMap::new(),
            next_item: 0,
            ready: VecDeque::new(),
            progress,
            received: 0,
            task_error: None,
            fail_fast: false,
            failed: false,
        })))
    }

    /// A task's error ends the call as soon as it arrives (for `map`, which throws).
    pub(super) fn fail_fast(self) -> Results {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).fail_fast = true;
        self
    }

    /// Whether results are still to come.
    pub fn pending(&self) -> bool {
        let arrivals = self.0.lock().unwrap_or_else(|e| e.into_inner());
        !arrivals.ready.is_empty() || arrivals.chunks_left > 0
    }
}

impl Arrivals {
    /// Waits for the next chunk and files its values; an error ends the call.
    fn receive_chunk(&mut self) -> Result<(), Box<EvalAltResult>> {
        let (start, result) = self.replies.next(self.kind, &self.cancelled)?;
        self.chunks_left -= 1;
        let values = match result {
            ChunkResult::Values(values) => values,
            // A task that the interrupt stopped fails; the interrupt is what to report.
            _ if interrupt::is_requested() => return Err(interrupted_error()),
            ChunkResult::Failed { index, message, .. } => {
                let error = format!("task {} failed: {message}", start + index).into();
                // In order, the results before it come first (as Python's `imap`).
                self.task_error = Some((start + index, error));
                return Ok(());
            }
            ChunkResult::Broken(message) => {
                return Err(format!("{message} (items from {start})").into())
            }
        };
        self.received += values.len();
        if let Some(p) = self.progress.as_mut() {
            p.tick(self.received);
        }
        if !self.ordered {
            self.ready.extend(values);
            return Ok(());
        }
        self.early.insert(start, values);
        while let Some(values) = self.early.remove(&self.next_item) {
            self.next_item += values.len();
            self.ready.extend(values);
        }
        Ok(())
    }
}

impl Iterator for Results {
    type Item = Result<Dynamic, Box<EvalAltResult>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut arrivals = self.0.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if arrivals.failed {
                return None;
            }
            if let Some(value) = arrivals.ready.pop_front() {
                return Some(Ok(value));
            }
            let turn = !arrivals.ordered || arrivals.fail_fast || arrivals.chunks_left == 0;
            let error = match arrivals.task_error.take() {
                Some((item, error)) if turn || arrivals.next_item >= item => Some(error),
                kept => {
                    arrivals.task_error = kept;
                    None
                }
            };
            let error = match error {
                Some(error) => Some(error),
                None if arrivals.chunks_left == 0 => return None,
                None => arrivals.receive_chunk().err(),
            };
            if let Some(error) = error {
                // The rest is not wanted: tasks not started yet are skipped.
                arrivals.cancelled.store(true, Ordering::SeqCst);
                arrivals.failed = true;
                return Some(Err(error));
            }
        }
    }
}
