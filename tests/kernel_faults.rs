//! Integration tests of faults a concurrency lesson provokes, against the real kernel:
//! runaway memory, a loop of process spawns, a child flooding stdout, a child that never
//! returns, and the kernel itself killed with SIGKILL — the kernel (or, when it is the one
//! killed, the machine) is left clean and usable.

mod kernel_support;

use kernel_support::{children_of, descendants_of, fd_count, is_fork_server, workers_of, Kernel};
use std::path::Path;
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    // A zombie is not alive: it has exited and only waits to be reaped.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits up to `limit` for every process in `pids` to be gone; returns those still alive.
fn wait_gone(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Caps the kernel's address space, so that if the memory check ever failed the kernel
/// would fail an allocation instead of taking the machine's memory.
fn cap_address_space(pid: u32, bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: prlimit on our own child with a valid struct and no old-value pointer.
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_AS, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit failed");
}

#[test]
fn runaway_strings_and_arrays_hit_the_memory_limit_and_the_session_survives() {
    let mut k = Kernel::start_with_env(&[("RHAI_KERNEL_MAX_MEMORY_MIB", "300")]);
    cap_address_space(k.pid(), 8 << 30);
    assert_eq!(k.execute("let kept = 7;").status(), "ok");
    for (code, free) in [
        ("let big = \"x\"; loop { big += big; }", "big = ();"),
        ("let many = [1]; loop { many += many; }", "many = ();"),
    ] {
        let ex = k.execute(code);
        assert_eq!(ex.status(), "error", "{code}");
        assert_eq!(ex.reply.content["ename"], "MemoryError", "{code}");
        let message = ex.reply.content["evalue"].as_str().unwrap_or_default();
        assert!(
            message.contains("over its limit of 300 MiB")
                && message.contains("RHAI_KERNEL_MAX_MEMORY_MIB"),
            "{message}"
        );
        // The values stay (nothing is lost); freeing them makes room again.
        assert_eq!(k.execute(free).status(), "ok");
    }
    assert_eq!(k.eval("kept"), "7");
    assert_eq!(
        k.eval("let s = \"ab\"; for i in 0..10 { s += s; } s.len()"),
        "2048"
    );
}

#[test]
fn a_loop_of_spawns_hits_the_process_limit_and_nothing_leaks() {
    let mut k = Kernel::start_with_env(&[("RHAI_KERNEL_MAX_PROCESSES", "12")]);
    let ex = k.execute(
        "let ps = []; let refused = \"\"; let start = event();
         try { for i in 0..1000 { ps.push(spawn_process(|| { start.wait(); 1 })); } } catch (e) { refused = `${e}`; }
         start.set();
         ps.len()",
    );
    assert_eq!(ex.result().as_deref(), Some("12"), "{:?}", ex.reply.content);
    let refused = k.eval("refused");
    assert!(
        refused.contains("12 worker processes are already running"),
        "{refused}"
    );
    assert_eq!(
        k.eval("let total = 0; for p in ps { total += p.join(); } total"),
        "12"
    );
    let left = wait_gone(&workers_of(k.pid()), Duration::from_secs(5));
    assert!(left.is_empty(), "workers left: {left:?}");
    assert_eq!(k.eval("spawn_process(|| 5).join()"), "5");
}

#[test]
fn a_child_flooding_stdout_is_relayed_in_full() {
    let mut k = Kernel::start();
    let request =
        k.send_execute("spawn_process(|| { for i in 0..50000 { print(i); } \"done\" }).join()");
    // 50,000 prints from a debug build take seconds, and many more on a busy machine: this
    // test is about losing nothing, not about speed.
    let iopub = k.iopub_until(&request, Duration::from_secs(120), |m| {
        kernel_support::is_status(m, "idle")
    });
    let reply = k.shell_reply(&request);
    let ex = kernel_support::Execution {
        request,
        reply,
        iopub,
    };
    assert_eq!(ex.result().as_deref(), Some("\"done\""));
    let out = ex.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 50000);
    assert_eq!(lines.first(), Some(&"0"));
    assert_eq!(lines.last(), Some(&"49999"));
    assert_eq!(k.eval("1 + 1"), "2");
}

#[test]
fn a_child_that_never_returns_is_terminated() {
    let mut k = Kernel::start();
    let ex = k.execute(
        "let p = spawn_process(|| loop {}); sleep(0.2); p.terminate();
         let failed = \"\"; try { p.join(); } catch (e) { failed = `${e}`; }
         [p.exit_code, p.is_alive, failed]",
    );
    let result = ex.result().unwrap_or_default();
    assert!(result.starts_with("[-15, false,"), "{result}");
    assert!(result.contains("killed by signal 15"), "{result}");
    assert!(workers_of(k.pid()).is_empty());
}

#[test]
fn a_killed_fork_server_takes_its_workers_along_and_is_replaced() {
    let mut k = Kernel::start();
    assert_eq!(
        k.execute("let p = spawn_process(|| sleep(100));").status(),
        "ok"
    );
    let kernel = k.pid();
    let fork_server = || children_of(kernel).into_iter().find(|p| is_fork_server(*p));
    let server = fork_server().expect("the fork server is a child of the kernel");
    let workers = workers_of(k.pid());
    assert_eq!(workers.len(), 1, "{workers:?}");
    unsafe { libc::kill(server as i32, libc::SIGKILL) };
    let result = k.eval(
        "let failed = \"\"; try { p.join(); } catch (e) { failed = `${e}`; } [p.exit_code, failed]",
    );
    assert!(result.starts_with("[-9,"), "{result}");
    assert!(result.contains("killed by signal 9"), "{result}");
    assert!(wait_gone(&workers, Duration::from_secs(5)).is_empty());
    // The next process starts through a new fork server.
    assert_eq!(k.eval("spawn_process(|| 6 * 7).join()"), "42");
    let replacement = fork_server().expect("a new fork server");
    assert_ne!(replacement, server);
}

#[test]
fn workers_do_not_outlive_a_killed_kernel() {
    let mut k = Kernel::start();
    let ex = k.execute(
        "let p = pool(2); p.map(|x| x, [1, 2]);
         let sleeper = spawn_process(|| sleep(100));
         let t = spawn_thread(|| sleep(100));
         1",
    );
    assert_eq!(ex.status(), "ok");
    assert_eq!(workers_of(k.pid()).len(), 3);
    let workers = descendants_of(k.pid());
    k.signal(libc::SIGKILL);
    assert!(k.wait_exit(Duration::from_secs(5)).is_some());
    let left = wait_gone(&workers, Duration::from_secs(5));
    assert!(left.is_empty(), "workers outlived the kernel: {left:?}");
    // Shared memory is an anonymous memfd: nothing of ours is ever in /dev/shm.
    let ours = std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("rhai"))
        .count();
    assert_eq!(ours, 0);
}

#[test]
fn file_descriptors_return_to_their_baseline() {
    let mut k = Kernel::start();
    let round = "let p = pool(2); p.map(|x| x * 2, 0..20); p.close(); p.join();
                 for i in 0..3 { spawn_process(|| 1).join(); }
                 let q = queue(); q.put(1); q.get();
                 let ends = pipe(); ends[0].send(1); ends[1].recv();
                 spawn_thread(|| 1).join();";
    // The first round creates what lives as long as the kernel (shared memory, threads).
    assert_eq!(k.execute(round).status(), "ok");
    let settle = |k: &mut Kernel, target: Option<usize>| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = fd_count(k.pid());
            if target.is_none_or(|t| n <= t) || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    std::thread::sleep(Duration::from_millis(300));
    let baseline = settle(&mut k, None);
    for _ in 0..3 {
        assert_eq!(k.execute(round).status(), "ok");
    }
    let after = settle(&mut k, Some(baseline));
    assert!(after <= baseline, "fds: {baseline} -> {after}");
    // Every finished child was reaped: no zombies left behind.
    let zombies: Vec<u32> = descendants_of(k.pid())
        .into_iter()
        .filter(|pid| !alive(*pid))
        .collect();
    assert!(zombies.is_empty(), "zombie children: {zombies:?}");
    assert!(Path::new(&format!("/proc/{}", k.pid())).exists());
}

/// A kernel whose shared memory is small (RHAI_KERNEL_SHM_MIB=1) runs out of it: creating
/// one more shared object is a clear error, catchable and uncaught alike, the objects made
/// before still work, the kernel goes on, and dropping objects makes room again.
#[test]
fn full_shared_memory_is_a_clear_error_and_the_kernel_survives() {
    let mut k = Kernel::start_with_env(&[("RHAI_KERNEL_SHM_MIB", "1")]);
    let full = "shared memory is full (1 MiB); set RHAI_KERNEL_SHM_MIB to a larger size in MiB";
    // Every object is kept, so the arena fills however objects are freed.
    let ex = k.execute(
        "let kept = [];
         let error = ();
         loop { try { kept.push(value(kept.len())); } catch (e) { error = e; break; } }
         error",
    );
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    assert_eq!(ex.result(), Some(format!("{full:?}")));
    let made: i64 = k.eval("kept.len()").parse().unwrap();
    assert!(made > 100, "only {made} values fit in 1 MiB");
    // Uncaught, from a lock, a queue or an event: the cell fails with the same message.
    for make in ["lock()", "queue()", "event()"] {
        let ex = k.execute(&format!("kept.push({make});"));
        assert_eq!(ex.status(), "error", "{make}");
        let evalue = ex.reply.content["evalue"].as_str().unwrap();
        assert!(evalue.contains(full), "{make}: {evalue}");
    }
    assert!(k.is_alive());
    // What was made before the arena filled still works, and so does the kernel.
    assert_eq!(k.eval("kept[0].value = 41; kept[0].add(1)"), "42");
    assert_eq!(
        k.eval("spawn_process(|v| v.value, kept[kept.len() - 1]).join()"),
        (made - 1).to_string()
    );
    assert_eq!(k.eval("spawn_thread(|| 40 + 2).join()"), "42");
    // Dropping the objects gives their memory back.
    assert_eq!(
        k.eval("kept = (); let qs = []; for i in 0..3 { qs.push(queue()); } qs.len()"),
        "3"
    );
}
