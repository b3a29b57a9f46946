//! A semaphore's permits as tokens, told to both tools at the moment the semaphore moves
//! them (inside its monitor). Permits are numbered from 0: first the initial ones, then
//! those that releases give, in the order they give them; acquires take them in that
//! order. The k-th acquire takes token k and learns only what the release that gave it
//! did (nothing for an initial permit): it could not happen before that release, and it
//! needs no other (the Go memory model's rule for a buffered channel used as a
//! semaphore). A bounded semaphore's release of token `initial + j` needs the room that
//! the j-th acquire made, so that acquire happens before it (the rule of a bounded queue).
//! The explorer's reduction orders exactly these steps (see `explorer::dpor`), so that the
//! races it reports are the same in every order of independent steps.

use super::{controller, observers, watching, Kind, Object};

/// What a semaphore's operation did with its permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permits {
    /// An acquire took token `token` (`timed`: it would have given up waiting at a
    /// deadline).
    Took {
        token: u64,
        initial: u64,
        bounded: bool,
        timed: bool,
    },
    /// A release gave tokens `first..first + count`.
    Gave {
        first: u64,
        count: u64,
        initial: u64,
        bounded: bool,
    },
    /// An acquire found no token `token` yet and waits for it.
    Missing { token: u64 },
    /// A bounded semaphore refused a release: it has all its permits.
    Refused,
    /// An acquire gave up waiting at its deadline: there was no permit.
    GaveUp,
}

/// The parts of a semaphore the tools tell apart, as the slot of its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Which token the next acquire takes.
    Head,
    /// Which token the next release gives.
    Tail,
    Token(u64),
    /// The room the j-th acquire made in a bounded semaphore.
    Room(u64),
}

impl Part {
    pub fn slot(self) -> u64 {
        match self {
            Part::Head => 1,
            Part::Tail => 2,
            Part::Token(k) => k.saturating_mul(2).saturating_add(3),
            Part::Room(j) => j.saturating_mul(2).saturating_add(4),
        }
    }

    /// The part of a semaphore that `object` names, if it is one (not the whole).
    pub fn of(object: &Object) -> Option<Part> {
        if object.kind != Kind::Semaphore {
            return None;
        }
        match object.slot {
            0 => None,
            1 => Some(Part::Head),
            2 => Some(Part::Tail),
            s if s % 2 == 1 => Some(Part::Token((s - 3) / 2)),
            s => Some(Part::Room((s - 4) / 2)),
        }
    }

    pub fn of_semaphore(self, semaphore: Object) -> Object {
        semaphore.element(self.slot())
    }
}

/// One token or room a step moved: `given` for a release's token or an acquire's room,
/// taken otherwise. `first`: an initial permit, which nobody gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub part: Part,
    pub given: bool,
    pub first: bool,
}

impl Permits {
    /// The tokens and rooms the step moved (the one rule that the race detector and the
    /// explorer's reduction follow): an acquire takes its token and, in a bounded
    /// semaphore, gives the room it made; a release, for each token it gives, takes the
    /// room that token fills (bounded) first.
    pub fn moves(self) -> Vec<Move> {
        let mut moves = Vec::new();
        match self {
            Permits::Took {
                token,
                initial,
                bounded,
                ..
            } => {
                moves.push(Move {
                    part: Part::Token(token),
                    given: false,
                    first: token < initial,
                });
                if bounded {
                    moves.push(Move {
                        part: Part::Room(token),
                        given: true,
                        first: false,
                    });
                }
            }
            Permits::Gave {
                first,
                count,
                initial,
                bounded,
            } => {
                for token in first..first.saturating_add(count) {
                    if bounded {
                        moves.push(Move {
                            part: Part::Room(token.saturating_sub(initial)),
                            given: false,
                            first: false,
                        });
                    }
                    moves.push(Move {
                        part: Part::Token(token),
                        given: true,
                        first: false,
                    });
                }
            }
            Permits::Missing { .. } | Permits::Refused | Permits::GaveUp => {}
        }
        moves
    }
}

/// The semaphore `object` did `what` with its permits (called with its monitor held).
pub fn permits(object: Object, what: Permits) {
    if !watching() {
        return;
    }
    let observers = observers();
    for step in what.moves() {
        let part = step.part.of_semaphore(object);
        for o in &observers {
            if step.given {
                o.hand_over(part);
            } else if !step.first {
                o.take_over(part);
            }
        }
    }
    if let Some(controller) = controller() {
        controller.permits(object, what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_told_by_its_slot_and_the_whole_is_none() {
        let semaphore = Object::new(Kind::Semaphore, 64, 3);
        for part in [
            Part::Head,
            Part::Tail,
            Part::Token(0),
            Part::Token(7),
            Part::Room(0),
            Part::Room(9),
        ] {
            assert_eq!(Part::of(&part.of_semaphore(semaphore)), Some(part));
        }
        assert_eq!(Part::of(&semaphore), None);
        assert_eq!(Part::of(&Object::new(Kind::Queue, 64, 3).element(3)), None);
    }
}
