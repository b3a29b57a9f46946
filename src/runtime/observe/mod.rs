//! The tools that make concurrency visible: the GIL switch (CPython's global interpreter
//! lock, on demand), `timeline` (who ran when) and `scaling` (speed-up against workers).

pub mod gil;
pub mod scaling;
pub mod timeline;
