//! The tools that make concurrency visible: the GIL switch (CPython's global interpreter
//! lock, on demand), `timeline` (who ran when), `scaling` (speed-up against workers),
//! the schedule explorer (`explore`, `replay`: every interleaving, one at a time) and the
//! race detector (`check_races`: accesses that no synchronisation orders).

pub mod explorer;
pub mod gil;
pub mod names;
pub mod races;
pub mod scaling;
pub mod timeline;
