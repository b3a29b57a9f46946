//! Starting worker processes, however they are used (`spawn_process` or a pool): what
//! kind of process this is, what its jobs carry, the long-lived spawner thread,
//! the registry of live children, interrupt forwarding and the cap on how many run.

use crate::runtime::lifetime::Held;
use crate::runtime::worker_process::WorkerProcess;
use crate::runtime::{cgroup, fork_server, interrupt, shm, transfer};
use rhai::Dynamic;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

/// What kind of process this is, which decides what `exit_process` may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The Jupyter kernel: exiting would lose the session, so `exit_process` throws.
    Kernel,
    /// `rhai-kernel run`: the script owns the process.
    Script,
    /// A worker started by `spawn_process` or a pool.
    Worker,
}

static ROLE: OnceLock<Role> = OnceLock::new();

pub fn set_role(role: Role) {
    let _ = ROLE.set(role);
}

pub fn role() -> Role {
    *ROLE.get().unwrap_or(&Role::Kernel)
}

/// The name this worker's parent gave it (`Process-1 (work)`), received with its job.
static PROCESS_NAME: OnceLock<String> = OnceLock::new();

pub fn set_process_name(name: &str) {
    let _ = PROCESS_NAME.set(name.to_string());
}

/// How this process is called in messages about several processes (a deadlock between
/// them): `None` for the kernel or the script itself, `Process-1 (work)` for a process
/// started with `spawn_process`, `pool worker 1234` for a pool's worker.
pub fn process_label() -> Option<String> {
    match role() {
        Role::Kernel | Role::Script => None,
        Role::Worker => Some(
            PROCESS_NAME
                .get()
                .cloned()
                .unwrap_or_else(|| format!("pool worker {}", std::process::id())),
        ),
    }
}

/// Sources of the cells whose functions the running code can call, in the order they
/// ran, with a version number that changes whenever they do (pool workers recompile
/// only then).
static FUNCTION_SOURCES: RwLock<(u64, Vec<Arc<str>>)> = RwLock::new((0, Vec::new()));

/// Records which sources a worker must compile to have the caller's functions.
pub fn set_function_sources(sources: Vec<Arc<str>>) {
    let mut current = FUNCTION_SOURCES.write().unwrap_or_else(|e| e.into_inner());
    if current.1 != sources {
        *current = (current.0 + 1, sources);
    }
}

pub fn function_sources_versioned() -> (u64, Vec<Arc<str>>) {
    FUNCTION_SOURCES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Encodes one call's arguments, naming the culprit when one cannot cross; the handles
/// of shared objects in them go to `kept` (see `transfer::to_json`).
pub fn encode_args(args: &[Dynamic], kept: &mut Vec<Held>) -> Result<Vec<Value>, String> {
    args.iter()
        .enumerate()
        .map(|(i, a)| transfer::to_json(a, &format!("argument {}", i + 1), kept))
        .collect()
}

// ---- starting children -------------------------------------------------------------

type SpawnRequest = (Command, crossbeam_channel::Sender<std::io::Result<Child>>);

/// Children are started from one long-lived thread: `PR_SET_PDEATHSIG` fires when the
/// *thread* that started a child ends, so a short-lived script thread must not do it.
fn spawner() -> &'static crossbeam_channel::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<crossbeam_channel::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded::<SpawnRequest>();
        std::thread::Builder::new()
            .name("process-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok();
        tx
    })
}

/// A command for a worker process of this same binary that dies with this process and
/// inherits the shared memory.
pub fn worker_command() -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let shm_fd = shm::arena()?.fd();
    let mut command = Command::new(exe);
    command
        .arg("worker")
        .env(shm::FD_ENV, shm_fd.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The shared memory descriptor is close-on-exec everywhere else.
            libc::fcntl(shm_fd, libc::F_SETFD, 0);
            Ok(())
        });
    }
    Ok(command)
}

/// Runs `command` from the long-lived spawner thread (see [`spawner`]).
pub fn spawn_command(command: Command) -> std::io::Result<Child> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let stopped = || std::io::Error::other("the process spawner has stopped");
    spawner().send((command, tx)).map_err(|_| stopped())?;
    rx.recv().map_err(|_| stopped())?
}

/// Starts a worker (forked by the fork server, or else by executing this program) and
/// registers it for interrupt forwarding and cleanup. The returned flag says whether it
/// is running a job (a pool worker between jobs is not).
pub fn start_worker(busy: bool) -> Result<(WorkerProcess, Arc<AtomicBool>), String> {
    install_interrupt_forwarding();
    let limit = max_processes();
    if live_children().len() >= limit {
        return Err(format!(
            "{limit} worker processes are already running, the most allowed ({MAX_PROCESSES_ENV} changes it): join or close some first"
        ));
    }
    let worker = match fork_server::start_worker() {
        Ok(worker) => worker,
        Err(_) => {
            let child = spawn_command(worker_command()?)
                .map_err(|e| format!("cannot start a worker process: {e}"))?;
            WorkerProcess::executed(child)?
        }
    };
    let flag = Arc::new(AtomicBool::new(busy));
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(worker.id() as i32, flag.clone());
    Ok((worker, flag))
}

/// The environment variable that caps how many worker processes may run at once.
pub const MAX_PROCESSES_ENV: &str = "RHAI_KERNEL_MAX_PROCESSES";
/// The cap without it: enough for any lesson, few enough that a runaway loop of
/// `spawn_process` gets an error instead of exhausting the machine.
const DEFAULT_MAX_PROCESSES: usize = 256;
/// In a cgroup with a `pids.max`, the cap is this fraction of it: that limit counts every
/// thread of the container (the kernel's own, Jupyter's, a terminal's, and each worker's
/// main and helper threads), so a runaway loop of spawns must meet this cap well before
/// the kernel fails to start a thread.
const PIDS_SHARE: u64 = 8;

fn max_processes() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    std::env::var(MAX_PROCESSES_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| *DEFAULT.get_or_init(|| default_max_processes(cgroup::pids_limit())))
}

/// The default cap under a cgroup whose `pids.max` is `pids` (at least one worker).
pub fn default_max_processes(pids: Option<u64>) -> usize {
    match pids {
        Some(pids) => usize::try_from(pids / PIDS_SHARE)
            .unwrap_or(usize::MAX)
            .clamp(1, DEFAULT_MAX_PROCESSES),
        None => DEFAULT_MAX_PROCESSES,
    }
}

/// Live children (reaped ones are removed) and whether each is running a job.
static LIVE: Mutex<BTreeMap<i32, Arc<AtomicBool>>> = Mutex::new(BTreeMap::new());

fn busy_children() -> Vec<i32> {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, busy)| busy.load(Ordering::SeqCst))
        .map(|(pid, _)| *pid)
        .collect()
}

/// Whether a child of this process is running a job (or is about to: a job on its way
/// holds no reference of its own to the objects it names, see `lifetime`).
pub fn any_busy_child() -> bool {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .any(|busy| busy.load(Ordering::SeqCst))
}

fn live_children() -> Vec<i32> {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .copied()
        .collect()
}

pub fn forget_child(pid: i32) {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
}

/// An interrupt is passed on to every busy child as SIGINT (its script stops with an
/// `Interrupted` error); children still busy a second later are killed (pools replace
/// their workers).
fn install_interrupt_forwarding() {
    interrupt::on_request(|| {
        let pids = busy_children();
        if pids.is_empty() {
            return;
        }
        for &pid in &pids {
            // SAFETY: signalling a child we started and have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            let still = busy_children();
            for pid in pids.into_iter().filter(|p| still.contains(p)) {
                // SAFETY: a child we started that `busy_children` still lists (not reaped).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
    });
}

/// Kills every worker still running, and the fork server (kernel shutdown).
pub fn kill_all() {
    for pid in live_children() {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    fork_server::stop();
}

#[cfg(test)]
mod tests {
    use super::default_max_processes;

    #[test]
    fn the_default_cap_is_an_eighth_of_pids_max_at_most_256() {
        assert_eq!(default_max_processes(None), 256);
        assert_eq!(default_max_processes(Some(100_000)), 256);
        assert_eq!(default_max_processes(Some(1024)), 128);
        assert_eq!(default_max_processes(Some(16)), 2);
        assert_eq!(default_max_processes(Some(3)), 1);
    }
}
