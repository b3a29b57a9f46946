//! What a step of a run touches, and how (`Access`: a target and a mode), and which two
//! uses of one target do not commute: the reduction's notion of independence.

use crate::runtime::sched::{Action, Kind, Object, Op, Part, Permits};

/// What a step touches: an object (or one element of a shared array), or the fairness
/// token of a worker that gave way (see `run.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Object(Kind, u64, u64),
    GaveWay(usize),
}

/// How a step uses a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Looks at it and leaves it as it was.
    Read,
    /// Changes it: conflicts with everything on the same target.
    Write,
    /// Adds to or takes from a count (a semaphore's permits, as `value` shows them): two
    /// of them give the same count in either order, so they commute with each other, and
    /// with nothing else. (Whether the permits were there is told by the tokens, see
    /// [`Access::of_permits`].)
    Add,
    /// Takes a plain lock (conflicts as a write).
    Take,
    /// Gives a plain lock back (conflicts as a write).
    Give,
    /// Joins a thread: reads its end, which it can only come after.
    Join,
    /// Takes what one earlier step gave and nothing else could (a semaphore's token): it
    /// comes after that step, but never races with it, which it cannot come before (it
    /// would wait instead: the same state). Its races are with what it could have taken
    /// instead (see `backtrack_points`).
    Consume,
    /// A blocked attempt: looked at it, found it taken (a held lock, an empty queue) and
    /// left it as it was. It conflicts as a read with what came before it; a later change
    /// only wakes the worker, whose retry is a step of its own (see `backtrack_points`).
    Attempt,
}

/// One thing a step does to a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub target: Target,
    pub mode: Mode,
}

impl Target {
    /// `object`, numbered `number` in the run.
    pub fn object(object: &Object, number: u64) -> Target {
        Target::Object(object.kind, number, object.slot)
    }
}

impl Access {
    /// What `op` does, for the reduction, to the object numbered `number` in the run.
    /// Only reads of data, waits for an event and joins leave their object as it was;
    /// a semaphore's acquire and release add to its count of permits (and move tokens,
    /// see [`Access::of_permits`]); every other operation changes its object (a lock's
    /// owner, a queue's items, a barrier's count). A spawn and a sleep touch nothing
    /// shared: the new worker's steps come after its spawn anyway, and a sleep only lets
    /// others run.
    pub fn of(op: &Op, number: u64) -> Option<Access> {
        Access::used(op, number, false)
    }

    fn used(op: &Op, number: u64, attempt: bool) -> Option<Access> {
        let mode = match (op.action, op.object.kind) {
            (Action::Spawn | Action::Sleep, _) | (_, Kind::Clock) => return None,
            (Action::Join, Kind::Thread) => Mode::Join,
            (Action::Read | Action::Join, _) | (Action::Wait, Kind::Event) => Mode::Read,
            // A waiting acquire says what it misses (`Permits::Missing`): it waits for a
            // token, not for a count.
            (Action::Acquire, Kind::Semaphore) if attempt => return None,
            (Action::Acquire | Action::Release, Kind::Semaphore) => Mode::Add,
            (Action::Acquire, Kind::Lock) => Mode::Take,
            (Action::Release, Kind::Lock) => Mode::Give,
            _ => Mode::Write,
        };
        Some(Access {
            target: Target::object(&op.object, number),
            mode,
        })
    }

    /// A failed attempt (a blocked wait) looks at its object and leaves it as it was.
    pub fn attempt(op: &Op, number: u64) -> Option<Access> {
        Access::used(op, number, true).map(|a| Access {
            mode: Mode::Attempt,
            ..a
        })
    }

    /// What a semaphore's step did with its permits (`sched::permits`), the semaphore
    /// numbered `number`: besides its count (see [`Access::of`]), the tokens it moved.
    /// Acquires take tokens in order (the head), releases give them in order (the tail):
    /// two acquires, or two releases, would swap their tokens in the other order, so they
    /// conflict; except two acquires of initial permits of an unbounded semaphore, which
    /// are all alike (nothing to learn, no room to make). An acquire and a release
    /// conflict only when the acquire takes a token the release gave, or (bounded) the
    /// release needs the room the acquire made; otherwise the acquire found its permit
    /// without the release, and the release its room without the acquire, in either
    /// order. A waiting acquire looks for the token it misses; a refused release, and an
    /// acquire that gave up waiting, look at the count.
    pub fn of_permits(semaphore: &Object, number: u64, what: Permits) -> Vec<Access> {
        let at = |part: Part, mode: Mode| Access {
            target: Target::object(&part.of_semaphore(*semaphore), number),
            mode,
        };
        // Which token the next acquire takes (the head) or the next release gives (the
        // tail), then the tokens and rooms themselves.
        let mut accesses = match what {
            Permits::Took {
                token,
                initial,
                bounded,
                ..
            } => {
                let alike = token < initial && !bounded;
                vec![at(Part::Head, if alike { Mode::Add } else { Mode::Write })]
            }
            Permits::Gave { .. } => vec![at(Part::Tail, Mode::Write)],
            // It could have had a token that an acquire before it took (the head), and
            // waits for the release that gives the token it misses.
            Permits::Missing { token } => {
                return vec![
                    at(Part::Head, Mode::Attempt),
                    at(Part::Token(token), Mode::Attempt),
                ]
            }
            Permits::Refused | Permits::GaveUp => {
                return vec![Access::read(Target::object(semaphore, number))]
            }
        };
        // An acquire that may give up waiting could also have come before the release
        // and timed out: then it races with it. An initial permit has no giver; it is
        // still named, so that a step that took it is never taken for one that could have
        // taken it too (sleep sets compare steps of different runs).
        let timed = matches!(what, Permits::Took { timed: true, .. });
        for step in what.moves() {
            let mode = match step.part {
                Part::Token(_) if !step.given && !step.first && !timed => Mode::Consume,
                _ => Mode::Write,
            };
            accesses.push(at(step.part, mode));
        }
        accesses
    }

    pub fn read(target: Target) -> Access {
        Access {
            target,
            mode: Mode::Read,
        }
    }

    pub fn write(target: Target) -> Access {
        Access {
            target,
            mode: Mode::Write,
        }
    }

    /// Whether it changes its target.
    pub fn changes(&self) -> bool {
        matches!(
            self.mode,
            Mode::Write | Mode::Add | Mode::Take | Mode::Give | Mode::Consume
        )
    }

    fn conflicts(&self, other: &Access) -> bool {
        self.target == other.target && conflicting(self.mode, other.mode)
    }
}

impl Mode {
    /// How it conflicts: as a read, a write or an add.
    pub(super) fn class(self) -> Mode {
        match self {
            Mode::Read | Mode::Attempt | Mode::Join => Mode::Read,
            Mode::Write | Mode::Take | Mode::Give | Mode::Consume => Mode::Write,
            Mode::Add => Mode::Add,
        }
    }
}

/// Whether two uses of one target do not commute.
pub(super) fn conflicting(a: Mode, b: Mode) -> bool {
    match (a.class(), b.class()) {
        (Mode::Write, _) | (_, Mode::Write) => true,
        (Mode::Add, Mode::Add) => false,
        (Mode::Add, _) | (_, Mode::Add) => true,
        _ => false,
    }
}

/// Whether two steps do not commute.
pub fn dependent(a: &[Access], b: &[Access]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.conflicts(y)))
}
