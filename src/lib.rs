//! rhai-kernel: a Jupyter kernel and scripting host for Rhai.
//!
//! Layers, from the wire inwards: [`protocol`] (frames, signing, connection files) →
//! [`kernel`] (sockets, dispatch, busy/idle, history, interrupts) → [`interpreter`] (the Rhai
//! session behind a small trait) → [`runtime`] (the natives, as a Rhai package). The
//! [`cli`] module is the command line: kernelspec installation and the script runner.

pub mod cli;
pub mod interpreter;
pub mod kernel;
pub mod protocol;
pub mod runtime;
