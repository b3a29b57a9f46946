//! Runs every script in `tests/scripts/` with `rhai-kernel run` and as a kernel cell. Each
//! script checks its own results (throwing on failure) and prints `ok` last.

mod kernel_support;

use kernel_support::Kernel;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scripts() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    scripts
}

/// Entries of /dev/shm (shared memory must never leave files there).
fn dev_shm() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// How long one script may take (they start many processes; debug builds are slow).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a script under `rhai-kernel run` and checks that it ends with "ok" in time.
fn assert_script_passes(script: &std::path::Path, env: &[(&str, &str)]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rhai-kernel"))
        .arg("run")
        .arg(script)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes on threads, so a chatty script cannot block on a full pipe.
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!(
            "{} {env:?} did not finish in {SCRIPT_TIMEOUT:?}:\n{stdout}\n{stderr}",
            script.display()
        );
    };
    assert!(
        status.success() && stdout.trim_end().ends_with("ok"),
        "{} {env:?}: {status:?}\n{stdout}\n{stderr}",
        script.display()
    );
}

#[test]
fn scripts_pass_under_run() {
    let shm_before = dev_shm();
    for script in scripts() {
        assert_script_passes(&script, &[]);
    }
    let created: Vec<String> = dev_shm()
        .into_iter()
        .filter(|n| !shm_before.contains(n))
        .collect();
    assert!(created.is_empty(), "files left in /dev/shm: {created:?}");
}

/// Workers are normally forked by the fork server; with it off, each one executes the
/// program afresh, and everything must behave the same.
#[test]
fn process_scripts_pass_without_the_fork_server() {
    for script in scripts() {
        let name = script.file_name().unwrap_or_default().to_string_lossy();
        let with_processes = [
            "processes.rhai",
            "pools.rhai",
            "locks.rhai",
            "globals.rhai",
            "queue_closures.rhai",
            "lock_handoff.rhai",
            "sockets.rhai",
            "queue_stress.rhai",
            "deadlock_stress.rhai",
            "sync_more.rhai",
            "futures.rhai",
            "random.rhai",
        ];
        if with_processes.contains(&name.as_ref()) {
            assert_script_passes(&script, &[("RHAI_KERNEL_FORK_SERVER", "off")]);
        }
    }
}

#[test]
fn scripts_pass_as_kernel_cells() {
    for script in scripts() {
        let code = std::fs::read_to_string(&script).unwrap();
        let mut kernel = Kernel::start();
        let request = kernel.send_execute(&code);
        // The same budget as under `run`: the scripts start many processes, and debug
        // builds are slow.
        let reply = kernel.try_shell_reply(&request, SCRIPT_TIMEOUT);
        let Some(reply) = reply else {
            panic!(
                "{} did not finish as a kernel cell in {SCRIPT_TIMEOUT:?} (timeout); kernel stderr:\n{}",
                script.display(),
                kernel.stderr_text()
            );
        };
        let iopub = kernel.iopub_until_idle(&request);
        let ex = kernel_support::Execution {
            request,
            reply,
            iopub,
        };
        assert_eq!(ex.status(), "ok", "{}: {:?}", script.display(), ex.error());
        assert!(
            ex.stdout().trim_end().ends_with("ok"),
            "{}: {}",
            script.display(),
            ex.stdout()
        );
    }
}

fn memory_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/memory")
        .join(name)
}

/// Shared objects are freed when nothing holds them any more: 100,000 queues and a
/// million values, locks and semaphores go through a shared memory of 16 MiB (it holds
/// 60 queues at once), and objects handed to 200 short-lived processes (returned, sent
/// back, thrown away, killed with) are all given back.
#[test]
fn shared_memory_is_given_back() {
    let small = ("RHAI_KERNEL_SHM_MIB", "16");
    assert_script_passes(&memory_script("churn.rhai"), &[small]);
    assert_script_passes(&memory_script("processes.rhai"), &[small]);
    assert_script_passes(
        &memory_script("processes.rhai"),
        &[small, ("RHAI_KERNEL_FORK_SERVER", "off")],
    );
}
