//! The worker's side of worker processes: the hidden `rhai-kernel worker` mode, the child
//! of `spawn_process` and of process pools. It reads jobs from stdin until it closes, runs
//! each, and reports their output and outcome on stdout (see `protocol`). The fork server,
//! which forks such workers ready to run, is here too.

pub mod fork_server;
mod job;

use crate::runtime::launch::{self, Role};
use crate::runtime::sink::{self, MimeBundle, OutputSink, Stream};
use crate::runtime::workers::protocol::{self, Event, JobError, Request};
use crate::runtime::{interrupt, shutdown, SCRIPT_STACK_SIZE};
use job::WorkerRuntime;
use rhai::Engine;
use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

/// Builds an engine configured like the session's (the runtime does not know how).
pub type NewEngine = fn() -> Engine;

/// Runs jobs from stdin until it closes; returns the exit code (1 if the last job failed).
pub fn run_worker(new_engine: NewEngine) -> i32 {
    launch::set_role(Role::Worker);
    serve_jobs(WorkerRuntime::new(new_engine))
}

/// Runs jobs from stdin with an engine already built (here, or by the fork server before
/// it forked this process).
fn serve_jobs(runtime: WorkerRuntime) -> i32 {
    let signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]);
    let sink = Arc::new(WorkerSink::default());
    let worker_sink = sink.clone();
    let worker = std::thread::Builder::new()
        .name("worker".into())
        .stack_size(SCRIPT_STACK_SIZE)
        .spawn(move || {
            let mut runtime = runtime;
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sink::with_sink(worker_sink.clone(), || serve(&mut runtime, &worker_sink))
            }));
            let code = served.unwrap_or_else(|_| {
                worker_sink.send(&Event::Failed(JobError::new("the worker crashed")));
                1
            });
            // Like a Python child process, and like a script: threads and processes its
            // jobs started and nobody joined finish first (daemons do not).
            shutdown::wait_for_non_daemons();
            // Every event is already written and flushed. Ending here skips freeing the
            // engine piece by piece (pages shared with the fork server would be copied
            // first) and stops the thread that waits for signals.
            // SAFETY: nothing else needs to run before this process ends.
            unsafe { libc::_exit(code) }
        });
    let worker = match worker {
        Ok(worker) => worker,
        Err(_) => return 1,
    };
    // This thread turns Ctrl-C and the parent's SIGINT into an interrupt of the job.
    match signals {
        Ok(mut signals) => {
            for _ in signals.forever() {
                interrupt::request();
            }
            1
        }
        Err(_) => worker.join().unwrap_or(1),
    }
}

fn serve(runtime: &mut WorkerRuntime, sink: &WorkerSink) -> i32 {
    let mut code = 0;
    // Our own reader on the pipe (not `Stdin`'s hidden buffer), so we can see what is queued.
    let Ok(pipe) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return 1;
    };
    let mut jobs = std::io::BufReader::new(std::fs::File::from(pipe));
    loop {
        // A pool hands a worker its next job before the current one ends. An interrupt
        // that stopped the current job also cancels the one already waiting; only a job
        // the worker had to wait for starts with the interrupt forgotten.
        let queued = !jobs.buffer().is_empty() || stdin_readable();
        let mut line = String::new();
        match jobs.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        if !queued {
            interrupt::clear();
        }
        let event = match protocol::parse_request(&line) {
            Ok(Request::Job(job)) => runtime.run(job),
            Err(e) => Event::Failed(JobError::new(e)),
        };
        code = if matches!(event, Event::Done { .. }) {
            0
        } else {
            1
        };
        sink.send(&event);
    }
    code
}

/// Whether a job line is already waiting in the pipe from the parent.
fn stdin_readable() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { libc::poll(&mut fd, 1, 0) > 0 && fd.revents & libc::POLLIN != 0 }
}

/// Output of a worker process: events on its stdout, read by the parent.
struct WorkerSink {
    out: Mutex<std::io::Stdout>,
}

impl Default for WorkerSink {
    fn default() -> Self {
        WorkerSink {
            out: Mutex::new(std::io::stdout()),
        }
    }
}

impl WorkerSink {
    fn send(&self, event: &Event) {
        // Events are plain data, whose encoding does not fail.
        let Ok(line) = protocol::to_line(event) else {
            return;
        };
        // One write of the whole line: the parent wakes once per event.
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(&line);
        let _ = out.flush();
    }
}

impl OutputSink for WorkerSink {
    fn write(&self, stream: Stream, text: &str) {
        self.send(&Event::Output {
            stream,
            text: text.to_string(),
        });
    }

    fn display(&self, bundle: MimeBundle, display_id: Option<&str>, update: bool) {
        self.send(&Event::Display {
            bundle,
            id: display_id.map(str::to_string),
            update,
        });
    }

    fn clear_output(&self, wait: bool) {
        self.send(&Event::ClearOutput { wait });
    }

    fn read_input(&self, _prompt: &str, _password: bool) -> Result<String, sink::InputError> {
        Err(sink::InputError::NotAllowed)
    }

    fn page(&self, text: &str) {
        self.send(&Event::Page {
            text: text.to_string(),
        });
    }
}
