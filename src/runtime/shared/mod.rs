//! Shared objects: what threads and processes share, in one shared memory that every
//! process of a session maps — the arena and its allocator (`shm`), when objects are
//! freed (`lifetime`), who holds them (`holders`), how references cross between processes (`transfer`), and the
//! objects themselves: locks (with deadlock detection), values and shared arrays,
//! semaphores, events, conditions and barriers, queues and pipes over a byte ring; and
//! the guards that hold a lock for a block (`guard`).

pub mod deadlock;
pub mod guard;
pub mod holders;
pub mod lifetime;
pub mod locks;
pub mod queues;
pub mod ring;
pub mod self_wait;
pub mod shm;
pub mod sync;
pub mod transfer;
pub mod values;
