//! Workers: what runs script code concurrently — threads, processes (forked by the fork
//! server or executed), thread and process pools — with what they need from their
//! starter (`global::` constants) and what waits for them when a script ends. A worker
//! process's own side is `child`; what it and its parent say to each other, `protocol`.

pub mod actors;
pub mod child;
pub mod engines;
pub mod failures;
pub mod fork_server;
pub mod globals;
pub(crate) mod idle_threads;
pub mod launch;
pub mod pools;
pub mod processes;
pub mod protocol;
pub mod random;
pub mod running;
pub mod shutdown;
pub mod spawners;
pub mod threads;
pub mod timers;
pub mod worker_process;
