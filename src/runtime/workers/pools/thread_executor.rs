//! Thread pools: chunks run on rayon threads of the kernel process, with the calling
//! cell's functions.

use super::executor::{
    run_chunk, task_label, CallContext, Chunk, ChunkResult, Executor, Lifecycle,
};
use crate::runtime::engines::script_engine;
use crate::runtime::sink;
use std::sync::atomic::Ordering;
use std::time::Instant;

// ---- thread pool ----------------------------------------------------------------------

pub(super) struct ThreadExecutor {
    pub(super) pool: rayon::ThreadPool,
    pub(super) size: usize,
    pub(super) lifecycle: Lifecycle,
}

fn run_chunk_here(chunk: &Chunk, context: &CallContext) -> ChunkResult {
    let Ok(engine) = script_engine() else {
        return ChunkResult::Broken("script threads are not available".into());
    };
    #[allow(deprecated)]
    let ctx = context.store.create_context(&engine);
    let worker = std::thread::current();
    run_chunk(chunk, &ctx, worker.name().unwrap_or("a pool thread"))
}

impl Executor for ThreadExecutor {
    fn size(&self) -> usize {
        self.size
    }

    fn submit(&self, chunk: Chunk, context: &CallContext) -> Result<(), String> {
        let context = context.clone();
        let terminated = self.lifecycle.terminated.clone();
        let pending = self.lifecycle.pending.clone();
        pending.add();
        // An interrupt that stops the submitter stops the task too, however late it looks.
        let interrupt_baseline = crate::runtime::interrupt::baseline();
        self.pool.spawn(move || {
            let _interruptible = crate::runtime::interrupt::inherit(interrupt_baseline);
            let result = if terminated.load(Ordering::SeqCst) {
                ChunkResult::Broken("the pool was terminated".into())
            } else if !chunk.may_start() {
                ChunkResult::Broken("cancelled".into())
            } else {
                let started = Instant::now();
                let run = || chunk.handoff.run(|| run_chunk_here(&chunk, &context));
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        match chunk.sink.clone() {
                            Some(sink) => sink::with_sink(sink, run),
                            None => run(),
                        }
                    }));
                crate::runtime::sched::leaving();
                crate::runtime::sched::worked("task", started, || {
                    let worker = std::thread::current()
                        .name()
                        .unwrap_or("pool thread")
                        .to_string();
                    (worker, task_label(&chunk.function))
                });
                outcome.unwrap_or_else(|_| {
                    ChunkResult::Broken("a task panicked in a native function".into())
                })
            };
            (chunk.reply)(result);
            pending.done();
        });
        Ok(())
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn pids(&self) -> Vec<i64> {
        vec![std::process::id() as i64; self.size]
    }
}
