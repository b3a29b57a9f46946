//! The end of a script (or of a worker process): as in Python, wait for the threads and
//! processes that are not daemons, and say which ones an interrupt stopped.

use crate::runtime::{interrupt, processes, threads};

/// Waits until every thread and process this process started with `spawn_thread` or
/// `spawn_process` (not a daemon) has finished, including those started meanwhile.
/// Returns `false` when interrupted first.
pub fn wait_for_non_daemons() -> bool {
    loop {
        if interrupt::is_requested() {
            return false;
        }
        let thread = threads::unfinished().into_iter().find(|t| !t.is_daemon());
        if let Some(thread) = thread {
            if !thread.wait_finished() {
                return false;
            }
            continue;
        }
        let process = processes::unfinished().into_iter().find(|p| !p.is_daemon());
        if let Some(process) = process {
            if !process.wait_exited() {
                return false;
            }
            continue;
        }
        return true;
    }
}

/// What is running now (daemons included): the names of the threads and of the processes.
pub fn running() -> (Vec<String>, Vec<String>) {
    let threads = threads::unfinished()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    let processes = processes::unfinished()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    (threads, processes)
}

/// "stopped 2 threads and 1 process still running: Thread-2, Thread-3, Process-1", or
/// `None` when nothing was running.
pub fn describe_stopped(threads: &[String], processes: &[String]) -> Option<String> {
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let counts = match (threads.len(), processes.len()) {
        (0, 0) => return None,
        (t, 0) => count(t, "thread", "threads"),
        (0, p) => count(p, "process", "processes"),
        (t, p) => format!(
            "{} and {}",
            count(t, "thread", "threads"),
            count(p, "process", "processes")
        ),
    };
    let names: Vec<&str> = threads
        .iter()
        .chain(processes)
        .map(String::as_str)
        .collect();
    Some(format!(
        "stopped {counts} still running: {}",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::describe_stopped;

    #[test]
    fn stopped_work_is_counted_and_named() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(describe_stopped(&[], &[]), None);
        assert_eq!(
            describe_stopped(&names(&["Thread-1"]), &[]).as_deref(),
            Some("stopped 1 thread still running: Thread-1")
        );
        assert_eq!(
            describe_stopped(
                &names(&["Thread-2", "Thread-3 (work)"]),
                &names(&["Process-1"])
            )
            .as_deref(),
            Some("stopped 2 threads and 1 process still running: Thread-2, Thread-3 (work), Process-1")
        );
        assert_eq!(
            describe_stopped(&[], &names(&["Process-1", "Process-2"])).as_deref(),
            Some("stopped 2 processes still running: Process-1, Process-2")
        );
    }
}
