//! The clocks that messages carry. A queue's or pipe's message (`ring::Mark::Message`) is
//! handed over by its put and taken over once by its get, and a semaphore's permit by its
//! release and its acquire (`sched::Part`), so its clock is kept apart from the objects'
//! clocks and dropped once taken. When there is no room near its place, it
//! joins its ring's spill clock instead, which every message taken without a clock of its
//! own learns: a race behind such a message may be missed, none is invented.

use super::{Data, Key, VectorClock, MESSAGES};
use crate::runtime::sched::Object;

/// How far from its place a message's clock may be kept.
const PROBE: usize = 16;
/// The slot of a ring's spill clock: no message is numbered that high.
const SPILL: u64 = u64::MAX;

#[repr(C)]
pub(super) struct MessageClock {
    /// The run it belongs to; any other (0 once taken) means the place is free.
    run: u64,
    key: Key,
    clock: VectorClock,
}

/// The places where the clock of the message `key` may be.
fn places(key: &Key) -> impl Iterator<Item = usize> {
    let start = key.hash() % MESSAGES;
    (0..PROBE).map(move |i| (start + i) % MESSAGES)
}

impl Data {
    fn message_place(&self, key: &Key) -> Option<usize> {
        places(key).find(|&i| self.messages[i].run == self.run && self.messages[i].key == *key)
    }

    /// The message `object` carries `clock` too.
    pub(super) fn hand_over_message(&mut self, object: &Object, clock: &VectorClock) {
        let key = Key::of(object);
        if let Some(i) = self.message_place(&key) {
            self.messages[i].clock.join(clock);
            return;
        }
        if let Some(i) = places(&key).find(|&i| self.messages[i].run != self.run) {
            self.messages[i] = MessageClock {
                run: self.run,
                key,
                clock: *clock,
            };
            return;
        }
        self.lost.messages += 1;
        if let Some(i) = self.sync_clock(Key { slot: SPILL, ..key }, true) {
            self.sync[i].clock.join(clock);
        }
    }

    /// The clock the message `object` carries, which no one else takes after this; or,
    /// if it has none, its ring's spill clock.
    pub(super) fn take_over_message(&mut self, object: &Object) -> Option<VectorClock> {
        let key = Key::of(object);
        if let Some(i) = self.message_place(&key) {
            self.messages[i].run = 0;
            return Some(self.messages[i].clock);
        }
        let spill = self.sync_clock(Key { slot: SPILL, ..key }, false)?;
        Some(self.sync[spill].clock)
    }
}
