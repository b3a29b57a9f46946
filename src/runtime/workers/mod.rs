//! Workers: what runs script code concurrently — threads, processes (forked by the fork
//! server or executed), thread and process pools — with what they need from their
//! starter (`global::` constants) and what waits for them when a script ends.

pub mod actors;
pub mod engines;
pub mod failures;
pub mod fork_server;
pub mod globals;
pub(crate) mod idle_threads;
pub mod launch;
pub mod pools;
pub mod processes;
pub mod random;
pub mod running;
pub mod shutdown;
pub mod spawners;
pub mod threads;
pub mod timers;
pub mod worker_process;
