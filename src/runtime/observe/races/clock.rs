//! Vector clocks: for every worker, how much of each other worker's work it has seen
//! (Lamport's happens-before, as ThreadSanitizer and FastTrack track it).

/// How many workers one check can tell apart (threads and processes together).
pub const WORKERS: usize = 64;

/// `clock[w]`: how many of worker `w`'s releases this clock has seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VectorClock(pub [u32; WORKERS]);

impl Default for VectorClock {
    fn default() -> Self {
        VectorClock([0; WORKERS])
    }
}

impl VectorClock {
    /// Learns everything `other` has seen (an acquire).
    pub fn join(&mut self, other: &VectorClock) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Starts a new moment of `worker` (after a release: what it does next is not seen
    /// by whoever acquired what it released).
    pub fn tick(&mut self, worker: usize) {
        self.0[worker] = self.0[worker].saturating_add(1);
    }

    /// Whether the moment `time` of `worker` happened before whatever has this clock.
    pub fn has_seen(&self, worker: usize, time: u32) -> bool {
        time <= self.0[worker]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_then_acquire_orders_what_came_before_only() {
        let (a, b) = (0, 1);
        let mut ca = VectorClock::default();
        let mut cb = VectorClock::default();
        ca.tick(a);
        cb.tick(b);
        let write_before = ca.0[a];
        // a releases a lock: the lock's clock is a's, then a moves on.
        let lock = ca;
        ca.tick(a);
        let write_after = ca.0[a];
        // b acquires the lock.
        cb.join(&lock);
        assert!(cb.has_seen(a, write_before));
        assert!(!cb.has_seen(a, write_after));
        // Nothing of b's is seen by a.
        assert!(!ca.has_seen(b, cb.0[b]));
    }
}
