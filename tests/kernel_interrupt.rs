//! Integration tests of interrupting running cells in the real `rhai-kernel` binary: through
//! the control channel's interrupt_request and through SIGINT to the process.

mod kernel_support;

use kernel_support::{is_status, parent_id, Execution, Kernel, TIMEOUT};
use serde_json::json;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long an interrupt may take to stop a cell (generous: only "a few seconds").
const INTERRUPT_LIMIT: Duration = Duration::from_secs(5);

/// What a cell under test prints when it (or a thread, process or task it started) is
/// about to enter the wait the test interrupts.
const STARTED: &str = "started";

/// Starts `code`, waits until it has printed [`STARTED`] once, interrupts it with
/// `interrupt`, and returns the cell's execution once it has ended.
fn run_and_interrupt(k: &mut Kernel, code: &str, interrupt: impl FnOnce(&mut Kernel)) -> Execution {
    run_and_interrupt_after(k, code, 1, interrupt)
}

/// [`run_and_interrupt`] once the cell and what it started have printed [`STARTED`]
/// `markers` times. Waiting for that instead of a while makes the test independent of
/// load: the interrupt can neither come before the cell starts (which clears the flag)
/// nor before the threads, processes or tasks it must reach are running. An interrupt
/// that lands just before the wait itself must still stop it: the flag stays set.
fn run_and_interrupt_after(
    k: &mut Kernel,
    code: &str,
    markers: usize,
    interrupt: impl FnOnce(&mut Kernel),
) -> Execution {
    assert!(code.contains(STARTED), "{code:?} never says it started");
    let request = k.send_execute(code);
    let seen = Cell::new(0);
    let mut early = k.iopub_until(&request, TIMEOUT, |m| {
        if m.msg_type() == "stream" && m.content["name"] == "stdout" {
            let text = m.content["text"].as_str().unwrap_or_default();
            seen.set(seen.get() + text.matches(STARTED).count());
        }
        seen.get() >= markers || is_status(m, "idle")
    });
    assert!(
        seen.get() >= markers && k.try_shell_reply(&request, Duration::ZERO).is_none(),
        "{code:?} finished on its own: {:?}",
        early.last().map(|m| &m.content)
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
    early.extend(k.iopub_until_idle(&request));
    Execution {
        request,
        reply,
        iopub: early,
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
    let ex = run_and_interrupt(&mut k, r#"print("started"); loop {}"#, control_interrupt);
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
    let ex = run_and_interrupt(
        &mut k,
        r#"print("started"); sleep(100); before = 2;"#,
        control_interrupt,
    );
    assert_interrupted(&ex);
    assert_eq!(k.eval("before"), "1");
}

#[test]
fn interrupt_request_stops_input_wait() {
    let mut k = Kernel::start();
    let ex = run_and_interrupt(
        &mut k,
        r#"print("started"); input("never answered: ")"#,
        |k| {
            let input_request = k.next_stdin(TIMEOUT).expect("input_request");
            assert_eq!(input_request.msg_type(), "input_request");
            control_interrupt(k);
        },
    );
    assert_interrupted(&ex);
    assert_eq!(k.eval("3 * 3"), "9");
}

#[test]
fn sigint_stops_busy_loop() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("let kept = 10;").status(), "ok");
    let ex = run_and_interrupt(&mut k, r#"print("started"); loop {}"#, sigint);
    assert_interrupted(&ex);
    assert!(k.is_alive(), "SIGINT killed the kernel");
    assert_eq!(k.eval("kept * 2"), "20");
}

#[test]
fn sigint_stops_sleep() {
    let mut k = Kernel::start();
    let ex = run_and_interrupt(&mut k, r#"print("started"); sleep(100)"#, sigint);
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
    let ex = run_and_interrupt_after(
        &mut k,
        r#"let spinner = spawn_thread(|| { print("started"); loop {} });
           let sleeper = spawn_thread(|| { print("started"); sleep(100) });
           spinner.join()"#,
        2,
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
    // The cell waits for the lock only once the thread holds it.
    let ex = run_and_interrupt(
        &mut k,
        r#"let l = lock(); let held = event();
           let holder = spawn_thread(|l, held| { l.acquire(); held.set(); sleep(100); }, l, held);
           held.wait(); print("started"); l.acquire()"#,
        control_interrupt,
    );
    assert_interrupted(&ex);
    // The lock is still held by the (interrupted) thread that never released it.
    assert_eq!(k.eval("l.locked()"), "true");
    assert_eq!(k.eval("l.release(); l.acquire(0.1)"), "true");
}

#[test]
fn interrupt_releases_what_guards_hold() {
    let mut k = Kernel::start();
    assert_eq!(
        k.execute("let l = lock(); let s = semaphore(1); let r = rlock(); let t = ();")
            .status(),
        "ok"
    );
    // A busy loop inside the guards' block, in the cell and in a thread it started.
    let ex = run_and_interrupt_after(
        &mut k,
        r#"t = spawn_thread(|| { let g = r.guard(); print("started"); loop {} });
           { let g = l.guard(); let h = s.guard(); print("started"); loop {} }"#,
        2,
        control_interrupt,
    );
    assert_interrupted(&ex);
    // The thread ended with the interrupt, which its join reports.
    assert_eq!(
        k.eval("try { t.join(5); } catch (e) { } t.is_alive"),
        "false"
    );
    assert_eq!(
        k.eval("[l.locked(), s.value, r.locked()]"),
        "[false, 1, false]"
    );
}

#[test]
fn interrupt_stops_a_process_join_and_the_child() {
    let mut k = Kernel::start();
    // The child says it started, so it is running when the interrupt comes.
    let ex = run_and_interrupt(
        &mut k,
        r#"let p = spawn_process(|| { print("started"); loop {} }); p.join()"#,
        control_interrupt,
    );
    assert_interrupted(&ex);
    // The child received the interrupt too and exits: joining it again ends (a child
    // still spinning would keep this cell busy past the time limit).
    let ex = k.execute("try { p.join() } catch (e) { } [p.is_alive, p.exit_code != ()]");
    assert_eq!(
        ex.result().as_deref(),
        Some("[false, true]"),
        "{:?}",
        ex.error()
    );
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
        let code = format!(r#"print("started"); {code}"#);
        let ex = run_and_interrupt(&mut k, &code, control_interrupt);
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
    // Each task says it started, so the pool is running it when the interrupt comes.
    for code in [
        r#"p.map(|x| { print("started"); loop {} }, 0..4)"#,
        r#"t.map(|x| { print("started"); loop {} }, 0..4)"#,
        r#"p.submit(|| { print("started"); sleep(100) }).result()"#,
        r#"t.submit(|| { print("started"); loop {} }).result()"#,
    ] {
        let ex = run_and_interrupt(&mut k, code, control_interrupt);
        assert_interrupted(&ex);
    }
    // Busy workers were stopped (or replaced): both pools still work.
    assert_eq!(k.eval("p.map(|x| x * 2, [1, 2, 3])"), "[2, 4, 6]");
    assert_eq!(k.eval("t.map(|x| x * 2, [1, 2, 3])"), "[2, 4, 6]");
}

#[test]
fn interrupt_cancels_the_tasks_queued_in_pool_workers() {
    let mut k = Kernel::start();
    assert_eq!(
        k.execute("let p = pool(2); let slow_ones = queue();")
            .status(),
        "ok"
    );
    // The first tasks are quick, so each worker is handed several at once; the later ones
    // sleep, and some of them sit in the workers' pipes when the interrupt comes. Each
    // slow task records that it started.
    let code = r#"p.map(|x| {
            if x >= 200 { slow_ones.put(x); print("started"); sleep(100); }
            x
        }, 0..400, #{ chunksize: 1 })"#;
    let ex = run_and_interrupt(&mut k, code, control_interrupt);
    assert_interrupted(&ex);
    // The workers are usable, and they have gone through what sat in their pipes.
    assert_eq!(k.eval("p.map(|x| x * 2, [1, 2, 3])"), "[2, 4, 6]");
    // The queued slow tasks were cancelled with the running ones instead of starting
    // afterwards: no more slow tasks started than there are workers (each runs one at a
    // time, and none can finish its 100 s before the interrupt).
    let started: i64 = k.eval("slow_ones.len()").parse().expect("a count");
    assert!((1..=2).contains(&started), "{started} slow tasks started");
}

#[test]
fn interrupt_stops_pool_join_and_reduce() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("let kept = 5;").status(), "ok");
    // `join()` waits for submitted tasks that spin or sleep, `reduce` for folding tasks that
    // spin: each says it started, so the wait is under way when the interrupt comes. Each
    // cell makes its own pool, since `join()` needs a closed one.
    for make in ["pool(2)", "thread_pool(2)"] {
        for code in [
            r#"q.submit(|| { print("started"); loop {} }); q.submit(|| sleep(100)); q.close(); q.join()"#,
            r#"q.reduce(|a, b| { print("started"); loop {} }, 0..8, 0)"#,
        ] {
            let code = format!("let q = {make}; {code}");
            let ex = run_and_interrupt(&mut k, &code, control_interrupt);
            assert_eq!(
                ex.reply.content["ename"], "Interrupted",
                "{code}: {:?}",
                ex.reply.content
            );
            assert_interrupted(&ex);
            assert_eq!(k.eval("kept"), "5", "after {code}");
        }
    }
    // Both kinds of pool work afterwards.
    assert_eq!(k.eval("pool(2).reduce(|a, b| a + b, 1..=10, 0)"), "55");
    assert_eq!(
        k.eval("thread_pool(2).reduce(|a, b| a + b, 1..=10, 0)"),
        "55"
    );
}

/// With the GIL on and a switch interval too long to ever come, a thread that spins keeps
/// the GIL: the cell's own code and another thread, both woken by the spinner's event,
/// wait for it. An interrupt stops the spinner and the cell waiting for the GIL, and
/// leaves no thread waiting for it.
#[test]
fn interrupt_stops_threads_waiting_for_the_gil() {
    let mut k = Kernel::start();
    let ex = run_and_interrupt(
        &mut k,
        r#"set_gil(true);
           set_gil_interval(1000000000);
           let spinning = event();
           let waiter = spawn_thread(|spinning| { spinning.wait(); "the waiter ran" }, spinning);
           let spinner = spawn_thread(|spinning| { spinning.set(); print("started"); loop {} }, spinning);
           spinning.wait();
           "the cell ran on""#,
        control_interrupt,
    );
    assert_interrupted(&ex);
    // The other waiter ends too. Whether it ends interrupted or with its value depends on
    // whether it looked at the interrupt before this next cell cleared it (the spinner
    // has let the GIL go by then), so only its end is checked.
    let ex = k.execute(
        r#"set_gil(false);
           let spinner_error = "";
           try { spinner.join(); } catch (e) { spinner_error = `${e}`; }
           try { waiter.join(); } catch (e) { }
           [spinner_error, waiter.is_alive]"#,
    );
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    assert_eq!(
        ex.result().as_deref(),
        Some("[\"thread 'Thread-2' was interrupted\", false]")
    );
    assert_eq!(k.eval("40 + 2"), "42");
}

#[test]
fn interrupt_stops_an_exploration_and_keeps_the_variables() {
    let mut k = Kernel::start();
    assert_eq!(
        k.execute("let kept = 5; let said = value(false);").status(),
        "ok"
    );
    // Four threads of three increments each have far too many schedules to finish.
    let ex = run_and_interrupt(
        &mut k,
        r#"explore(|| {
               if !said.value { said.value = true; print("started"); }
               let counter = value(0);
               let ts = [];
               for i in 0..4 { ts.push(spawn_thread(|| { for j in 0..3 { counter.value += 1; } })); }
               for t in ts { t.join(); }
               counter.value
           }, #{ preemptions: 20, max_schedules: 1000000000 })"#,
        control_interrupt,
    );
    assert_interrupted(&ex);
    assert_eq!(k.eval("kept"), "5");
    // The next exploration starts from scratch.
    assert_eq!(
        k.eval("explore(|| spawn_thread(|| 7).join(), #{ show: false }).outcomes"),
        r#"#{"7": 1}"#
    );
}
