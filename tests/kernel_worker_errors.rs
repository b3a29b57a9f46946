//! Errors of threads, processes and pool tasks that outlive their cell, in the real kernel
//! over ZeroMQ: each is reported as a stderr stream of the cell that started the worker,
//! with the worker's name and the line, when it happens; `join()` and `result()` still
//! throw it.

mod kernel_support;

use kernel_support::{stream_text, Kernel, TIMEOUT};

/// A function that waits for an event, then throws on its third line.
const FAIL_WHEN: &str = "fn fail_when(ready, x) {
    ready.wait();
    throw `bad ${x}`;
}
let ready = event();
";

/// Runs `start` (which starts a worker running `fail_when(ready, …)`) in cell A; cell A ends
/// while the worker waits. Cell B lets it fail and runs `collect`. Returns the stderr
/// cell A received and cell B's result; cell B itself must have printed nothing on
/// stderr.
fn error_of_a_worker_that_outlives_its_cell(start: &str, collect: &str) -> (String, String) {
    let mut k = Kernel::start();
    let a = k.execute(&format!("{FAIL_WHEN}{start}"));
    assert_eq!(a.status(), "ok", "{:?}", a.error());
    assert_eq!(a.stream("stderr"), "", "nothing failed yet");
    let b = k.execute(&format!("ready.set();\n{collect}"));
    assert_eq!(b.status(), "ok", "{:?}", b.error());
    assert_eq!(
        b.stream("stderr"),
        "",
        "the report belongs to the cell that started it"
    );
    let result = b.result().unwrap_or_default();
    let late = k.iopub_until(&a.request, TIMEOUT, |m| {
        m.msg_type() == "stream" && m.content["name"] == "stderr"
    });
    (stream_text(&late, "stderr"), result)
}

#[test]
fn a_thread_error_is_reported_in_the_cell_that_started_the_thread() {
    let (stderr, result) = error_of_a_worker_that_outlives_its_cell(
        "let t = spawn_thread(fail_when, ready, 1);",
        "let e = \"\"; try { t.join(); } catch (err) { e = err; } e",
    );
    assert_eq!(
        stderr,
        "Exception in thread Thread-1 (fail_when): bad 1 (line 3, column 5)\n"
    );
    assert_eq!(
        result,
        "\"thread 'Thread-1 (fail_when)' failed: bad 1 (line 3, column 5)\""
    );
}

#[test]
fn a_process_error_is_reported_in_the_cell_that_started_the_process() {
    let (stderr, result) = error_of_a_worker_that_outlives_its_cell(
        "let p = spawn_process(fail_when, ready, 2);",
        "let e = \"\"; try { p.join(); } catch (err) { e = err; } e",
    );
    assert_eq!(
        stderr,
        "Exception in process Process-1 (fail_when): bad 2 (line 3, column 5)\n"
    );
    assert_eq!(
        result,
        "\"process 'Process-1 (fail_when)' failed: bad 2 (line 3, column 5)\""
    );
}

/// `p.close(); p.join()` in cell B waits for the task without asking for its result, so nobody is
/// waiting for it when it fails.
#[test]
fn a_pool_task_error_is_reported_in_the_cell_that_submitted_the_task() {
    let (stderr, result) = error_of_a_worker_that_outlives_its_cell(
        "let p = pool(1); let f = p.submit(fail_when, ready, 3);",
        "let pid = p.pids[0]; p.close(); p.join(); let e = \"\"; try { f.result(); } catch (err) { e = err; } `${pid}: ${e}`",
    );
    let pid = result
        .trim_matches('"')
        .split(':')
        .next()
        .unwrap_or_default();
    assert_eq!(
        stderr,
        format!(
            "Exception in pool task (fail_when) on pool worker {pid}: bad 3 (line 3, column 5)\n"
        )
    );
    assert_eq!(
        result,
        format!("\"{pid}: the task failed: bad 3 (line 3, column 5)\"")
    );
}

/// The same for a thread pool: its task's error is reported in the cell that submitted it,
/// on the pool's thread.
#[test]
fn a_thread_pool_task_error_is_reported_in_the_cell_that_submitted_the_task() {
    let (stderr, result) = error_of_a_worker_that_outlives_its_cell(
        "let p = thread_pool(1); let f = p.submit(fail_when, ready, 4);",
        "p.close(); p.join(); let e = \"\"; try { f.result(); } catch (err) { e = err; } e",
    );
    assert_eq!(
        stderr,
        "Exception in pool task (fail_when) on pool-thread-1: bad 4 (line 3, column 5)\n"
    );
    assert_eq!(result, "\"the task failed: bad 4 (line 3, column 5)\"");
}

/// A thread or process knows the functions and closures of the cells run before it
/// started: a closure sent to it through a queue from an earlier cell works there, one
/// written in a later cell cannot run there, and the error says why (instead of "Function
/// not found: __rhai_kernel_closure_…").
#[test]
fn a_closure_from_a_cell_run_after_its_receiver_started_is_refused_with_a_reason() {
    let mut k = Kernel::start();
    let a = k.execute(
        "let queues = [queue(), queue()]; let early = |x| x + 1;
fn receive(q) { let f = q.get(); let g = q.get(); let e = \"\";
    try { g.call(1); } catch (err) { e = `${err}`; }
    [f.call(1), e] }
let t = spawn_thread(receive, queues[0]);
let p = spawn_process(receive, queues[1]);",
    );
    assert_eq!(a.status(), "ok", "{:?}", a.error());
    let b = k.execute(
        "for q in queues { q.put(early); q.put(|x| x * 100); }
[t.join(), p.join()]",
    );
    assert_eq!(b.status(), "ok", "{:?}", b.error());
    let result = b.result().unwrap_or_default();
    let reason = "the closure cannot be called here: it comes from a cell run after this thread or process started";
    assert_eq!(result.matches(reason).count(), 2, "{result}");
    assert_eq!(result.matches("[2, \"").count(), 2, "{result}");
}
