//! What a ring orders between the threads and processes that use it, told to whoever
//! follows the order of operations (the race detector) at the moment the ring makes it,
//! inside its monitor: a put happens before the get that takes its message; in a bounded
//! ring, the get of message `k` happens before the put of message `k + maxsize` (the room
//! it made); and the close happens before every get or put that fails because of it.
//! Nothing else: a get is not ordered after the puts of other messages.

use super::{Ring, RingState};
use crate::runtime::sched::{self, Kind, Object};
use std::sync::atomic::Ordering::Relaxed;

/// What a ring hands over besides itself (the ring's own object is what `task_done` hands
/// to `join`): an element of its object, whose slot says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// The close, for every get or put that fails because of it.
    Closed,
    /// Message number `n`, counting from the ring's first: the put of `n` hands over to
    /// the get that takes it, and in a bounded ring the get of `n - maxsize` hands over
    /// to the put of `n` first. Taken over once by each.
    Message(u64),
}

const CLOSED_SLOT: u64 = 1;
const FIRST_MESSAGE_SLOT: u64 = 2;

impl Mark {
    fn slot(self) -> u64 {
        match self {
            Mark::Closed => CLOSED_SLOT,
            Mark::Message(n) => n.saturating_add(FIRST_MESSAGE_SLOT),
        }
    }

    /// The mark `object` names, if it is an element of a queue or a pipe.
    pub fn of(object: &Object) -> Option<Mark> {
        if !matches!(object.kind, Kind::Queue | Kind::Pipe) {
            return None;
        }
        match object.slot {
            0 => None,
            CLOSED_SLOT => Some(Mark::Closed),
            slot => Some(Mark::Message(slot - FIRST_MESSAGE_SLOT)),
        }
    }
}

impl Ring {
    fn mark(&self, kind: Kind, mark: Mark) -> Object {
        self.object(kind).element(mark.slot())
    }

    /// A put writes the header of the next message, as `kind`. Monitor held.
    pub(super) fn order_put(&self, s: &RingState, kind: Kind) {
        if !sched::watching() {
            return;
        }
        // Every message put before was taken or still waits; one cut off unread gave its
        // number back.
        let message = self.mark(
            kind,
            Mark::Message(s.taken.load(Relaxed) + s.count.load(Relaxed)),
        );
        if s.maxsize != 0 {
            sched::take_over(message);
        }
        sched::hand_over(message);
    }

    /// A get took the header of message `number` (what the native calls itself). Monitor
    /// held.
    pub(super) fn order_get(&self, s: &RingState, number: u64, what: &str) {
        // A ring being freed is emptied by nobody's get.
        if !sched::watching() || what == super::FREEING {
            return;
        }
        let kind = Ring::kind(what);
        sched::take_over(self.mark(kind, Mark::Message(number)));
        if s.maxsize != 0 {
            let room = number.saturating_add(s.maxsize);
            sched::hand_over(self.mark(kind, Mark::Message(room)));
        }
    }

    /// The ring is closed, as `kind`. Monitor held.
    pub(super) fn order_close(&self, kind: Kind) {
        if sched::watching() {
            sched::hand_over(self.mark(kind, Mark::Closed));
        }
    }

    /// A get or put (`what`) fails because the ring is closed. Monitor held.
    pub(super) fn order_closed(&self, what: &str) {
        if sched::watching() && what != super::FREEING {
            sched::take_over(self.mark(Ring::kind(what), Mark::Closed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_told_by_its_slot_and_the_ring_itself_is_none() {
        let ring = Object::new(Kind::Queue, 4096, 7);
        for mark in [Mark::Closed, Mark::Message(0), Mark::Message(1 << 40)] {
            assert_eq!(Mark::of(&ring.element(mark.slot())), Some(mark));
        }
        assert_eq!(Mark::of(&ring), None);
        let array = Object::new(Kind::Array, 4096, 7).element(CLOSED_SLOT);
        assert_eq!(Mark::of(&array), None);
    }
}
