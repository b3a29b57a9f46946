//! A deadlock between the cell's own thread and a process, in the real kernel over ZeroMQ:
//! the cell fails with the report naming the cycle (it used to hang for good), the
//! process's report reaches the cell's stderr, and the kernel goes on working. A thread
//! that waits for a lock it holds itself is no deadlock while a later cell may release it.

mod kernel_support;

use kernel_support::{Execution, Kernel};
use std::time::Duration;

/// Longer than a deadlock takes to be found (a fraction of a second), far shorter than
/// forever.
const CELL_TIMEOUT: Duration = Duration::from_secs(60);

fn run_cell(kernel: &mut Kernel, code: &str) -> Execution {
    let request = kernel.send_execute(code);
    let Some(reply) = kernel.try_shell_reply(&request, CELL_TIMEOUT) else {
        panic!(
            "the cell did not finish in {CELL_TIMEOUT:?} (a deadlock that hangs); kernel stderr:\n{}",
            kernel.stderr_text()
        );
    };
    let iopub = kernel.iopub_until_idle(&request);
    Execution {
        request,
        reply,
        iopub,
    }
}

#[test]
fn a_deadlock_between_the_cell_and_a_process_fails_the_cell_with_the_cycle() {
    let mut kernel = Kernel::start();
    let cell = r#"
fn take_both(first, second, meet) {
    first.hold(|| { meet.wait(); second.hold(|| ()) });
    "got both"
}
let a = lock();
let b = lock();
let meet = barrier(2);
let p = spawn_process(take_both, a, b, meet);
take_both(b, a, meet);
"#;
    let ex = run_cell(&mut kernel, cell);
    assert_eq!(ex.status(), "error", "{:?}", ex.reply.content);
    let evalue = ex
        .error()
        .and_then(|e| e["evalue"].as_str())
        .unwrap_or_default()
        .to_string();
    for part in [
        "deadlock detected: ",
        "MainThread waits for Lock-1",
        "Process-1 (take_both) waits for Lock-2",
        "Lock-1 is held by Process-1 (take_both)",
        "Lock-2 is held by MainThread",
    ] {
        assert!(
            evalue.contains(part),
            "{part:?} in the cell's error: {evalue}"
        );
    }
    // The process was told too: its error is printed on the cell's stderr, at once or
    // after the cell (the process reports it when it ends).
    let mut stderr = ex.stream("stderr");
    if !stderr.contains("Exception in process Process-1 (take_both): deadlock detected: ") {
        let late = kernel.iopub_until(&ex.request, CELL_TIMEOUT, |m| {
            m.msg_type() == "stream" && m.content["name"] == "stderr"
        });
        stderr.push_str(&kernel_support::stream_text(&late, "stderr"));
    }
    assert!(
        stderr.contains("Exception in process Process-1 (take_both): deadlock detected: "),
        "{stderr}"
    );
    // The process got the error too, both locks were released (by `hold`, as each error
    // went by), and the kernel works on.
    let after = kernel.eval(
        "let outcome = \"\"; try { p.join(); } catch (e) { outcome = `${e}`; }
         [outcome.contains(\"deadlock detected\"), a.locked(), b.locked()]",
    );
    assert_eq!(after, "[true, false, false]");
}

/// A thread acquires a plain lock twice; the next cell releases it for the thread, as any
/// thread may in Python. Between cells nothing runs, but the next cell may: the second
/// acquire waits (it was rejected at once as a deadlock).
#[test]
fn a_thread_waiting_for_its_own_lock_is_released_by_a_later_cell() {
    let mut kernel = Kernel::start();
    let first = run_cell(
        &mut kernel,
        "let l = lock(); let once = event();
let t = spawn_thread(|l, once| { l.acquire(); once.set(); l.acquire(); \"acquired twice\" }, l, once);
once.wait();",
    );
    assert_eq!(first.status(), "ok", "{:?}", first.reply.content);
    let second = run_cell(&mut kernel, "l.release(); t.join()");
    assert_eq!(second.status(), "ok", "{:?}", second.error());
    assert_eq!(second.result().as_deref(), Some("\"acquired twice\""));
}
