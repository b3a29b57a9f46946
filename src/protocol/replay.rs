//! A bounded memory of the signatures already accepted, so that a signed message captured on
//! the wire cannot be replayed (a replayed `execute_request` would run its code again).
//!
//! ipykernel's `Session` keeps the same kind of digest history. Every message a client signs
//! has a fresh `msg_id` and `date` in its header, so two genuine messages never share a
//! signature and remembering signatures rejects only copies.

use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// How many signatures are remembered by default, as in ipykernel (2**16); the oldest are
/// forgotten first. Each is kept as a 128-bit fingerprint, so the whole memory stays
/// around 3 MiB (64-character strings would take five times that).
pub const DEFAULT_CAPACITY: usize = 1 << 16;

/// Signatures seen so far, shared by every channel of one kernel (a message replayed on
/// another channel than the one it was first sent on is a replay too).
#[derive(Debug)]
pub struct SeenSignatures {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    set: HashSet<u128>,
    order: VecDeque<u128>,
}

/// A signature's fingerprint: the first 128 bits of its SHA-256. Hex is case-insensitive,
/// so "AB…" and "ab…" are the same signature. Two different signatures share one with
/// probability 2^-128 per pair: negligible against the 2^16 remembered.
fn fingerprint(signature: &[u8]) -> u128 {
    let digest = Sha256::digest(signature.to_ascii_lowercase());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

impl Default for SeenSignatures {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl SeenSignatures {
    /// A history that remembers up to `capacity` signatures (at least one).
    pub fn new(capacity: usize) -> Self {
        SeenSignatures {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `signature`; false when it was already recorded (the message is a replay).
    /// Empty signatures (signing switched off) are never recorded: without a key there is
    /// nothing that tells a replay from a new message.
    pub fn insert(&self, signature: &[u8]) -> bool {
        if signature.is_empty() {
            return true;
        }
        // A poisoned lock only means another thread panicked while holding it; the set
        // itself is still consistent (every mutation below is a single call).
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = fingerprint(signature);
        if inner.set.contains(&key) {
            return false;
        }
        if inner.order.len() >= self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.set.remove(&oldest);
            }
        }
        inner.set.insert(key);
        inner.order.push_back(key);
        true
    }

    /// How many signatures are remembered now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .order
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_accepted_once() {
        let seen = SeenSignatures::new(4);
        assert!(seen.insert(b"aa"));
        assert!(!seen.insert(b"aa"));
        assert!(
            !seen.insert(b"AA"),
            "hex case must not make a replay look new"
        );
        assert!(seen.insert(b"bb"));
    }

    #[test]
    fn the_oldest_are_forgotten_beyond_capacity() {
        let seen = SeenSignatures::new(3);
        for sig in [b"1", b"2", b"3", b"4"] {
            assert!(seen.insert(sig));
        }
        assert_eq!(seen.len(), 3);
        assert!(seen.insert(b"1"), "the oldest signature was forgotten");
        assert!(!seen.insert(b"4"), "a recent signature is still known");
    }

    #[test]
    fn empty_signatures_are_not_remembered() {
        let seen = SeenSignatures::new(3);
        assert!(seen.insert(b""));
        assert!(seen.insert(b""));
        assert!(seen.is_empty());
    }
}
