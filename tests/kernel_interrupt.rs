//! Integration tests of interrupting running cells in the real `rhai-kernel` binary: through
//! the control channel's interrupt_request and through SIGINT to the process.

mod kernel_support;

use kernel_support::{parent_id, Execution, Kernel, TIMEOUT};
use serde_json::json;
use std::time::{Duration, Instant};

/// How long an interrupt may take to stop a cell (generous: only "a few seconds").
const INTERRUPT_LIMIT: Duration = Duration::from_secs(5);

/// Starts `code`, waits until it is running, interrupts it with `interrupt`, and returns
/// the cell's execution once it has ended.
fn run_and_interrupt(k: &mut Kernel, code: &str, interrupt: impl FnOnce(&mut Kernel)) -> Execution {
    let request = k.send_execute(code);
    k.iopub_until(&request, TIMEOUT, |m| m.msg_type() == "execute_input");
    // Let the cell get going (the interrupt flag is cleared when a cell starts).
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        k.try_shell_reply(&request, Duration::ZERO).is_none(),
        "{code:?} finished on its own"
    );
    let started = Instant::now();
    interrupt(k);
    let reply = k
        .try_shell_reply(&request, INTERRUPT_LIMIT)
        .unwrap_or_else(|| {
            panic!(
                "{code:?} still running {INTERRUPT_LIMIT:?} after the interrupt; stderr:\n{}",
                k.stderr_text()
            )
        });
    let elapsed = started.elapsed();
    assert!(elapsed < INTERRUPT_LIMIT, "interrupt took {elapsed:?}");
    let iopub = k.iopub_until_idle(&request);
    Execution {
        request,
        reply,
        iopub,
    }
}

fn control_interrupt(k: &mut Kernel) {
    let request = k.send_control("interrupt_request", json!({}));
    let reply = k.control_reply(&request);
    assert_eq!(reply.msg_type(), "interrupt_reply");
    assert_eq!(reply.content["status"], "ok");
    assert_eq!(parent_id(&reply), request.header.msg_id);
}

fn sigint(k: &mut Kernel) {
    k.signal(libc::SIGINT);
}

fn assert_interrupted(ex: &Execution) {
    assert_eq!(ex.status(), "error", "{:?}", ex.reply.content);
    assert_eq!(ex.reply.content["ename"], "Interrupted");
    let error = ex.error().expect("error message on IOPub");
    assert_eq!(error["ename"], "Interrupted");
}

#[test]
fn interrupt_request_stops_busy_loop() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("let before = 41;").status(), "ok");
    let ex = run_and_interrupt(&mut k, "loop {}", control_interrupt);
    assert_interrupted(&ex);
    assert_eq!(k.eval("before + 1"), "42");
    // A stale interrupt must not hit the next cell.
    assert_eq!(
        k.eval("let s = 0; for i in 0..100000 { s += i } s"),
        "4999950000"
    );
}

#[test]
fn interrupt_request_stops_sleep() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("let before = 1;").status(), "ok");
    let ex = run_and_interrupt(&mut k, "sleep(100); before = 2;", control_interrupt);
    assert_interrupted(&ex);
    assert_eq!(k.eval("before"), "1");
}

#[test]
fn interrupt_request_stops_input_wait() {
    let mut k = Kernel::start();
    let ex = run_and_interrupt(&mut k, r#"input("never answered: ")"#, |k| {
        let input_request = k.next_stdin(TIMEOUT).expect("input_request");
        assert_eq!(input_request.msg_type(), "input_request");
        control_interrupt(k);
    });
    assert_interrupted(&ex);
    assert_eq!(k.eval("3 * 3"), "9");
}

#[test]
fn sigint_stops_busy_loop() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("let kept = 10;").status(), "ok");
    let ex = run_and_interrupt(&mut k, "loop {}", sigint);
    assert_interrupted(&ex);
    assert!(k.is_alive(), "SIGINT killed the kernel");
    assert_eq!(k.eval("kept * 2"), "20");
}

#[test]
fn sigint_stops_sleep() {
    let mut k = Kernel::start();
    let ex = run_and_interrupt(&mut k, "sleep(100)", sigint);
    assert_interrupted(&ex);
    assert_eq!(k.eval("\"alive\""), "\"alive\"");
}

#[test]
fn interrupt_while_idle_does_not_break_the_next_cell() {
    let mut k = Kernel::start();
    control_interrupt(&mut k);
    k.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    assert!(k.is_alive());
    assert_eq!(k.eval("sleep(0.1); 5"), "5");
}

#[test]
fn interrupt_stops_join_and_the_threads_it_waits_on() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("let kept = 3;").status(), "ok");
    // The joined thread spins, another one sleeps: both must stop with the cell.
    let ex = run_and_interrupt(
        &mut k,
        "let spinner = spawn_thread(|| loop {}); let sleeper = spawn_thread(|| sleep(100)); spinner.join()",
        control_interrupt,
    );
    assert_interrupted(&ex);
    // The threads were interrupted too: joining them now ends at once with a catchable
    // error saying so.
    let ex = k.execute(
        r#"let errors = [];
           for t in [spinner, sleeper] { try { t.join(); } catch (e) { errors.push(`${e}`); } }
           errors"#,
    );
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    let errors = ex.result().unwrap();
    assert_eq!(errors.matches("was interrupted").count(), 2, "{errors}");
    assert_eq!(k.eval("kept"), "3");
}

#[test]
fn interrupt_stops_a_lock_acquire() {
    let mut k = Kernel::start();
    let ex = run_and_interrupt(
        &mut k,
        "let l = lock(); let holder = spawn_thread(|l| { l.acquire(); sleep(100); }, l); sleep(0.1); l.acquire()",
        control_interrupt,
    );
    assert_interrupted(&ex);
    // The lock is still held by the (interrupted) thread that never released it.
    assert_eq!(k.eval("l.locked()"), "true");
    assert_eq!(k.eval("l.release(); l.acquire(0.1)"), "true");
}

#[test]
fn interrupt_stops_a_process_join_and_the_child() {
    let mut k = Kernel::start();
    let ex = run_and_interrupt(
        &mut k,
        "let p = spawn_process(|| loop {}); p.join()",
        control_interrupt,
    );
    assert_interrupted(&ex);
    // The child received the interrupt too and has exited.
    let deadline = Instant::now() + INTERRUPT_LIMIT;
    loop {
        let code = k.eval("p.exit_code");
        if code != "()" {
            break;
        }
        assert!(Instant::now() < deadline, "the child is still running");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(k.eval("p.is_alive"), "false");
}

#[test]
fn interrupt_stops_every_blocking_wait() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("let kept = 11;").status(), "ok");
    for code in [
        "event().wait()",
        "queue().get()",
        "pipe()[0].recv()",
        "semaphore(0).acquire()",
        "barrier(2).wait()",
        "let c = condition(); c.hold(|| c.wait())",
        "let q = queue(1); q.put(1); q.put(2)",
        "let p = spawn_process(|| sleep(100)); p.join()",
    ] {
        let ex = run_and_interrupt(&mut k, code, control_interrupt);
        assert_interrupted(&ex);
        assert_eq!(k.eval("kept"), "11", "after {code}");
    }
}

#[test]
fn interrupt_stops_pool_maps_and_futures() {
    let mut k = Kernel::start();
    assert_eq!(
        k.execute("let p = pool(2); let t = thread_pool(2);")
            .status(),
        "ok"
    );
    for code in [
        "p.map(|x| loop {}, 0..4)",
        "t.map(|x| loop {}, 0..4)",
        "p.submit(|| sleep(100)).result()",
        "t.submit(|| loop {}).result()",
    ] {
        let ex = run_and_interrupt(&mut k, code, control_interrupt);
        assert_interrupted(&ex);
    }
    // Busy workers were stopped (or replaced): both pools still work.
    assert_eq!(k.eval("p.map(|x| x * 2, [1, 2, 3])"), "[2, 4, 6]");
    assert_eq!(k.eval("t.map(|x| x * 2, [1, 2, 3])"), "[2, 4, 6]");
}

fn pool_pids(k: &mut Kernel) -> Vec<i64> {
    k.eval("p.pids")
        .trim_matches(['[', ']'])
        .split(',')
        .map(|pid| pid.trim().parse().expect("a pid"))
        .collect()
}

#[test]
fn interrupt_cancels_the_tasks_queued_in_pool_workers() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("let p = pool(2);").status(), "ok");
    let pids = pool_pids(&mut k);
    // The first tasks are quick, so each worker is handed several at once; the later ones
    // sleep, and some of them sit in the workers' pipes when the interrupt comes.
    let code = "p.map(|x| { if x >= 200 { sleep(3); } x }, 0..400, #{ chunksize: 1 })";
    let ex = run_and_interrupt(&mut k, code, control_interrupt);
    assert_interrupted(&ex);
    // The queued sleeps were cancelled with the running ones: the same workers (not
    // killed for being stuck) are free at once.
    let started = Instant::now();
    assert_eq!(k.eval("p.map(|x| x * 2, [1, 2, 3])"), "[2, 4, 6]");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the pool was busy for {took:?}"
    );
    assert_eq!(pool_pids(&mut k), pids, "workers were replaced");
}
