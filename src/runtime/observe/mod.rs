//! The tools that make concurrency visible: the GIL switch (CPython's global interpreter
//! lock, on demand), `timeline` (who ran when), `scaling` (speed-up against workers) and
//! the schedule explorer (`explore`, `replay`: every interleaving, one at a time).

pub mod explorer;
pub mod gil;
pub mod scaling;
pub mod timeline;
