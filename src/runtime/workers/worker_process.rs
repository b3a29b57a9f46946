//! A worker process as its parent sees it, however it was started: forked by the fork
//! server (its exit status arrives from there) or started directly by executing this
//! program (reaped here).

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Where a forked worker's exit code is delivered, once: 0–255 for an exit, minus the
/// signal number when it was killed.
#[derive(Default)]
pub struct ExitSlot {
    code: Mutex<Option<i64>>,
    ended: Condvar,
}

impl ExitSlot {
    /// Records how the process ended; only the first report counts.
    pub fn set(&self, code: i64) {
        let mut slot = self.code.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(code);
            self.ended.notify_all();
        }
    }

    pub fn get(&self) -> Option<i64> {
        *self.code.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait(&self) -> i64 {
        let mut slot = self.code.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(code) = *slot {
                return code;
            }
            slot = self
                .ended
                .wait_timeout(slot, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

enum Exit {
    /// A child of this process, started by executing the program.
    Executed(Child),
    /// A child of the fork server, which reports its end.
    Forked(Arc<ExitSlot>),
}

/// A running worker: its pid, the pipe to its stdin (jobs) and from its stdout (events).
pub struct WorkerProcess {
    pid: i32,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    exit: Exit,
}

/// The exit code of a reaped child: its status, or minus the signal that killed it.
pub fn exit_code(status: std::process::ExitStatus) -> i64 {
    status
        .code()
        .map(i64::from)
        .or_else(|| status.signal().map(|s| -i64::from(s)))
        .unwrap_or(1)
}

impl WorkerProcess {
    pub fn executed(mut child: Child) -> Result<WorkerProcess, String> {
        let stdin = child.stdin.take().ok_or("no pipe to the worker")?;
        let stdout = child.stdout.take().ok_or("no pipe from the worker")?;
        Ok(WorkerProcess {
            pid: child.id() as i32,
            stdin: Some(File::from(std::os::fd::OwnedFd::from(stdin))),
            stdout: Some(File::from(std::os::fd::OwnedFd::from(stdout))),
            exit: Exit::Executed(child),
        })
    }

    pub fn forked(pid: i32, stdin: File, stdout: File, exit: Arc<ExitSlot>) -> WorkerProcess {
        WorkerProcess {
            pid,
            stdin: Some(stdin),
            stdout: Some(stdout),
            exit: Exit::Forked(exit),
        }
    }

    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Kills the worker (SIGKILL) unless it has already been reaped.
    pub fn kill(&mut self) {
        match &mut self.exit {
            Exit::Executed(child) => {
                let _ = child.kill();
            }
            Exit::Forked(slot) => {
                if slot.get().is_none() {
                    // SAFETY: signalling a process whose end has not been reported, so
                    // its pid is not free for reuse yet.
                    unsafe { libc::kill(self.pid, libc::SIGKILL) };
                }
            }
        }
    }

    /// Waits for the worker to end and returns its exit code (see [`ExitSlot`]).
    pub fn wait(&mut self) -> i64 {
        match &mut self.exit {
            Exit::Executed(child) => child.wait().map(exit_code).unwrap_or(1),
            Exit::Forked(slot) => slot.wait(),
        }
    }

    /// The exit code if the worker has ended, without waiting.
    pub fn try_wait(&mut self) -> Option<i64> {
        match &mut self.exit {
            Exit::Executed(child) => match child.try_wait() {
                Ok(status) => status.map(exit_code),
                Err(_) => Some(1),
            },
            Exit::Forked(slot) => slot.get(),
        }
    }
}

/// Describes how a worker ended, for error messages.
pub fn describe_end(pid: u32, code: i64) -> String {
    if code < 0 {
        format!("worker process {pid} was killed by signal {}", -code)
    } else {
        format!("worker process {pid} exited with code {code}")
    }
}
