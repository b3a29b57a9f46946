//! `global::` constants of earlier cells in the real kernel over ZeroMQ: read by functions
//! of later cells in the kernel, in threads, in processes and in pool workers, with runtime
//! objects arriving as the same object, a redefinition reaching a pool that already has
//! the old value, and a constant that cannot be sent named when a process reads it.

mod kernel_support;

use kernel_support::Kernel;

/// Runs a cell that must succeed without a value.
fn run(k: &mut Kernel, code: &str) {
    let ex = k.execute(code);
    assert_eq!(ex.status(), "ok", "{code}: {:?}", ex.error());
}

fn constants_of_earlier_cells_reach_workers(env: &[(&str, &str)]) {
    let mut k = Kernel::start_with_env(env);
    run(&mut k, "const N = 5;");
    run(&mut k, "fn times_n(x) { x * global::N }");
    // The kernel itself, a thread, a process, a closure in a process, a pool.
    assert_eq!(
        k.eval(
            "let p = pool(2);
             [times_n(1), spawn_thread(times_n, 2).join(), spawn_process(times_n, 3).join(),
              spawn_process(|x| x + global::N, 1).join()] + p.map(times_n, [4, 5, 6])
              + thread_pool(2).map(times_n, [7])"
        ),
        "[5, 10, 15, 6, 20, 25, 30, 35]"
    );
    // A process started by a process passes the constants on.
    assert_eq!(
        k.eval("spawn_process(|| spawn_process(times_n, 2).join()).join()"),
        "10"
    );

    // Runtime objects arrive as the same object: a lock the kernel holds is held in the
    // worker, and a value counts the workers' updates.
    run(&mut k, "const GUARD = lock(); const COUNT = value(0);");
    run(
        &mut k,
        "fn bump(i) { let c = global::COUNT; global::GUARD.hold(|| c.value += 1); }",
    );
    assert_eq!(
        k.eval(
            "GUARD.acquire();
             let while_held = spawn_process(|| global::GUARD.acquire(0.2)).join();
             GUARD.release();
             p.map(bump, range(0, 20));
             [while_held, COUNT.value]"
        ),
        "[false, 20]"
    );

    // A later cell's `const` replaces the value, also in a pool that has the old one.
    run(&mut k, "const N = 7;");
    assert_eq!(
        k.eval("[spawn_process(times_n, 1).join()] + p.map(times_n, [1, 2])"),
        "[7, 7, 14]"
    );

    // A constant that cannot be sent is named when a process reads it, and only then.
    run(&mut k, "const T = spawn_thread(|| 1);");
    run(&mut k, "fn uses_t() { global::T.join() }");
    let ex = k.execute("spawn_process(uses_t).join()");
    assert_eq!(ex.status(), "error");
    let evalue = ex
        .error()
        .map(|e| e["evalue"].to_string())
        .unwrap_or_default();
    assert!(
        evalue.contains("global::T is a Thread and cannot be sent to another process"),
        "{evalue}"
    );
    let ex = k.execute("p.map(|x| uses_t(), [1])");
    let evalue = ex
        .error()
        .map(|e| e["evalue"].to_string())
        .unwrap_or_default();
    assert!(
        evalue.contains("global::T is a Thread and cannot be sent"),
        "{evalue}"
    );
    assert_eq!(
        k.eval("[spawn_process(times_n, 2).join()] + p.map(times_n, [3])"),
        "[14, 21]"
    );
}

#[test]
fn constants_of_earlier_cells_reach_processes_and_pools() {
    constants_of_earlier_cells_reach_workers(&[]);
}

/// Workers executed afresh (no fork server) get the constants the same way.
#[test]
fn constants_reach_workers_without_the_fork_server() {
    constants_of_earlier_cells_reach_workers(&[("RHAI_KERNEL_FORK_SERVER", "off")]);
}
