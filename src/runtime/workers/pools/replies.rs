//! Where the results of a call's chunks come in: in the order they arrive, or, when the
//! explorer plays the tasks of a call that puts its results in item order anyway (`map`,
//! `starmap`, `imap`, `reduce`), the first chunk among those that are there. Each chunk
//! then hands in its result through an object of its own, so the explorer sees that two
//! tasks handing in results do not depend on each other: what the caller gets depends on
//! which chunks are there, not on the order they came in. No outcome is lost: the caller
//! can always take a chunk as soon as it is there.

use super::executor::{receive, ChunkResult};
use crate::runtime::sched::{self, Action, Object, Op, Order};
use crossbeam_channel::Receiver;
use rhai::EvalAltResult;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;

pub(super) struct Replies {
    rx: Receiver<(usize, ChunkResult)>,
    answered: Object,
    /// Played in item order: the chunks that came, and the chunks still to come, by their
    /// first item.
    by_chunk: Option<(BTreeMap<usize, ChunkResult>, BTreeSet<usize>)>,
}

impl Replies {
    /// The replies of a call through `answered`; `in_item_order` when the explorer plays
    /// its tasks and their results are put in item order.
    pub(super) fn new(
        rx: Receiver<(usize, ChunkResult)>,
        answered: Object,
        in_item_order: bool,
    ) -> Replies {
        Replies {
            rx,
            answered,
            by_chunk: in_item_order.then(Default::default),
        }
    }

    /// The object through which the chunk whose first item is `start` hands in its result.
    pub(super) fn chunk(&mut self, start: usize) -> Object {
        match &mut self.by_chunk {
            Some((_, awaited)) => {
                awaited.insert(start);
                self.answered.element(start as u64 + 1)
            }
            None => self.answered,
        }
    }

    /// The next chunk's result (its first item, and how it ended). `kind` names the pool
    /// in errors; an interrupt sets `cancelled`.
    pub(super) fn next(
        &mut self,
        kind: &str,
        cancelled: &AtomicBool,
    ) -> Result<(usize, ChunkResult), Box<EvalAltResult>> {
        let Some((arrived, awaited)) = &mut self.by_chunk else {
            return receive(&self.rx, self.answered, kind, cancelled);
        };
        let (rx, answered) = (&self.rx, self.answered);
        let arrivals = RefCell::new(std::mem::take(arrived));
        let taken = sched::wait(
            || Op::new(Action::Get, answered, None),
            None,
            Order::InterruptFirst,
            || {
                let mut arrived = arrivals.borrow_mut();
                while let Ok((start, result)) = rx.try_recv() {
                    arrived.insert(start, result);
                }
                // What is taken depends on the chunks before it (and, when none is there,
                // on all of them): the explorer orders this step with their hand-ins.
                let first = arrived.keys().next().copied();
                for start in awaited.iter().filter(|s| first.is_none_or(|f| **s <= f)) {
                    sched::look(|| answered.element(*start as u64 + 1));
                }
                Ok(first.and_then(|start| arrived.remove_entry(&start)))
            },
            |pause| {
                if let Ok((start, result)) = rx.recv_timeout(pause) {
                    arrivals.borrow_mut().insert(start, result);
                }
            },
            |_| String::new(),
        );
        *arrived = arrivals.into_inner();
        let taken = taken?;
        let (start, result) =
            taken.ok_or_else(|| format!("the {kind} stopped before finishing"))?;
        awaited.remove(&start);
        sched::take_over(answered.element(start as u64 + 1));
        Ok((start, result))
    }
}
