//! The hidden `rhai-kernel worker` mode: a worker process, or with `--fork-server` the
//! process that forks them (see `runtime::workers::child`), on this crate's engine.

use crate::interpreter::engine::new_engine;
use crate::runtime::workers::child;

/// Runs the worker, or the fork server; returns the process's exit code.
pub fn run_worker(fork_server: bool) -> i32 {
    if fork_server {
        child::fork_server::run_fork_server(new_engine)
    } else {
        child::run_worker(new_engine)
    }
}
