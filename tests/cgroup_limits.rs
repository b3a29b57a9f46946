//! The default limits follow the cgroup the kernel runs in (a container's `memory.max` and
//! `pids.max`), through the real binary: `rhai-kernel run` under a fake cgroup tree, named
//! by the test-only variable `RHAI_KERNEL_CGROUP_ROOT`, reports and enforces limits sized
//! from it, and the environment variables still override them.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_rhai-kernel");

/// A fake root with a cgroup v2 hierarchy in which this process's cgroup is nested two
/// levels down; `files` are written under the cgroup mount point.
fn fake_v2(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("a temporary directory");
    let write = |path: &str, text: &str| {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("proc/self/cgroup", "0::/kubepods/pod7/kernel\n");
    write(
        "proc/self/mountinfo",
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n",
    );
    for (path, text) in files {
        write(&format!("sys/fs/cgroup/{path}"), text);
    }
    root
}

fn run(root: &Path, env: &[(&str, &str)], code: &str) -> Output {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("limits.rhai");
    std::fs::write(&script, code).expect("write the script");
    Command::new(BIN)
        .arg("run")
        .arg(&script)
        .env("RHAI_KERNEL_CGROUP_ROOT", root)
        .env_remove("RHAI_KERNEL_MAX_PROCESSES")
        .env_remove("RHAI_KERNEL_MAX_MEMORY_MIB")
        .envs(env.iter().copied())
        .output()
        .expect("rhai-kernel runs")
}

/// Spawns processes that wait on an event until one is refused, then lets them finish.
const SPAWN_UNTIL_REFUSED: &str = r#"
let ps = []; let refused = ""; let start = event();
try { for i in 0..300 { ps.push(spawn_process(|| { start.wait(); 1 })); } } catch (e) { refused = `${e}`; }
start.set();
let total = 0; for p in ps { total += p.join(); }
print(`started ${total}`);
print(refused);
"#;

#[test]
fn pids_max_sizes_the_process_cap() {
    // pids.max 64 on the pod, 16 on the kernel's own cgroup: an eighth of 16 is 2.
    let root = fake_v2(&[
        ("kubepods/pod7/pids.max", "64\n"),
        ("kubepods/pod7/kernel/pids.max", "16\n"),
    ]);
    let out = run(root.path(), &[], SPAWN_UNTIL_REFUSED);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("started 2\n"), "{stdout}");
    assert!(
        stdout.contains("2 worker processes are already running")
            && stdout.contains("RHAI_KERNEL_MAX_PROCESSES"),
        "{stdout}"
    );

    // The variable overrides the cgroup.
    let out = run(
        root.path(),
        &[("RHAI_KERNEL_MAX_PROCESSES", "3")],
        SPAWN_UNTIL_REFUSED,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("started 3\n"), "{stdout}");
    assert!(
        stdout.contains("3 worker processes are already running"),
        "{stdout}"
    );
}

const RUNAWAY: &str = "let big = \"x\"; loop { big += big; }";

#[test]
fn memory_max_sizes_the_memory_limit() {
    // 256 MiB on the pod: a quarter is 64 MiB, raised to half of it, 128 MiB.
    let root = fake_v2(&[
        ("kubepods/pod7/memory.max", "268435456\n"),
        ("kubepods/pod7/kernel/memory.max", "max\n"),
    ]);
    let out = run(root.path(), &[], RUNAWAY);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("out of memory") && stderr.contains("over its limit of 128 MiB"),
        "{stderr}"
    );

    let out = run(
        root.path(),
        &[("RHAI_KERNEL_MAX_MEMORY_MIB", "200")],
        RUNAWAY,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("over its limit of 200 MiB"), "{stderr}");
}
