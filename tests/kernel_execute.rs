//! Integration tests of cell execution in the real `rhai-kernel` binary over ZeroMQ: IOPub
//! message order, execution counts, state across cells, stop_on_error, stdin, deep recursion
//! and large output.

mod kernel_support;

use kernel_support::{
    descendants_of, execute_content, msg_types, parent_id, workers_of, Kernel, TIMEOUT,
};
use serde_json::json;
use std::time::Duration;

#[test]
fn execute_publishes_busy_input_stream_result_idle() {
    let mut k = Kernel::start();
    let ex = k.execute(r#"print("hello"); 6 * 7"#);
    assert_eq!(
        msg_types(&ex.iopub),
        [
            "status:busy",
            "execute_input",
            "stream",
            "execute_result",
            "status:idle"
        ]
    );
    for msg in &ex.iopub {
        assert_eq!(parent_id(msg), ex.request.header.msg_id);
    }
    let input = &ex.iopub[1].content;
    assert_eq!(input["code"], r#"print("hello"); 6 * 7"#);
    assert_eq!(input["execution_count"], 1);
    let stream = &ex.iopub[2].content;
    assert_eq!(stream["name"], "stdout");
    assert_eq!(stream["text"], "hello\n");
    let result = &ex.iopub[3].content;
    assert_eq!(result["data"]["text/plain"], "42");
    assert_eq!(result["execution_count"], 1);

    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.execution_count(), 1);
    assert_eq!(parent_id(&ex.reply), ex.request.header.msg_id);
    assert!(ex.reply.content["user_expressions"].is_object());

    let ex2 = k.execute("1 + 1");
    assert_eq!(ex2.status(), "ok");
    assert_eq!(ex2.execution_count(), 2);
    assert_eq!(ex2.result().as_deref(), Some("2"));
    assert_eq!(ex2.iopub[1].content["execution_count"], 2);
}

#[test]
fn silent_and_no_history_cells_do_not_count() {
    let mut k = Kernel::start();
    let mut content = execute_content("let hidden = 3; hidden");
    content["silent"] = json!(true);
    let ex = k.execute_with(content);
    assert_eq!(ex.status(), "ok");
    assert_eq!(
        msg_types(&ex.iopub),
        ["status:busy", "status:idle"],
        "silent cells publish nothing but status"
    );
    let mut content = execute_content("hidden + 1");
    content["store_history"] = json!(false);
    let ex = k.execute_with(content);
    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.result().as_deref(), Some("4"));
    let ex = k.execute("hidden * 2");
    assert_eq!(ex.execution_count(), 1);
    assert_eq!(ex.result().as_deref(), Some("6"));
}

#[test]
fn state_survives_cells_and_errors() {
    let mut k = Kernel::start();
    let ex = k.execute("let a = 5;");
    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.result(), None, "a statement has no execute_result");

    let ex = k.execute(r#"let b = 1; throw "x""#);
    assert_eq!(ex.status(), "error");
    assert_eq!(ex.reply.content["ename"], "ErrorRuntime");
    assert_eq!(ex.reply.content["evalue"], "x");
    assert!(ex.reply.content["traceback"].is_array());
    let error = ex.error().expect("error message on IOPub");
    assert_eq!(error["ename"], "ErrorRuntime");
    assert_eq!(error["evalue"], "x");
    assert!(!error["traceback"].as_array().unwrap().is_empty());
    assert_eq!(
        msg_types(&ex.iopub),
        ["status:busy", "execute_input", "error", "status:idle"]
    );
    assert_eq!(ex.execution_count(), 2);

    assert_eq!(k.eval("a + b"), "6");

    // Functions persist too.
    k.execute("fn double(x) { x * 2 }");
    assert_eq!(k.eval("double(a)"), "10");
}

#[test]
fn parse_errors_are_reported() {
    let mut k = Kernel::start();
    let ex = k.execute("let = 5;");
    assert_eq!(ex.status(), "error");
    assert_eq!(ex.reply.content["ename"], "ErrorParsing");
    assert_eq!(k.eval("2 + 3"), "5");
}

#[test]
fn stdout_and_stderr_streams() {
    let mut k = Kernel::start();
    let ex = k.execute(r#"print("out"); eprint("err"); print("more")"#);
    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.stdout(), "out\nmore\n");
    assert_eq!(ex.stream("stderr"), "err\n");
}

/// Sends a failing cell and two more right behind it, all three made before any is sent
/// (as "Run All" does); both followers must be aborted.
fn check_stop_on_error_aborts(k: &mut Kernel, failing: &str) {
    let first = k.request("execute_request", execute_content(failing));
    let second = k.request("execute_request", execute_content(r#"print("second")"#));
    let third = k.request("execute_request", execute_content(r#"print("third")"#));
    for request in [&first, &second, &third] {
        k.send(&k.shell, request);
    }

    let r1 = k.shell_reply(&first);
    let r2 = k.shell_reply(&second);
    let r3 = k.shell_reply(&third);
    assert_eq!(r1.content["status"], "error");
    assert_eq!(r1.content["evalue"], "first");
    assert_eq!(r2.content["status"], "aborted", "second: {:?}", r2.content);
    assert_eq!(r3.content["status"], "aborted", "third: {:?}", r3.content);

    let mut output = String::new();
    for request in [&first, &second, &third] {
        let iopub = k.iopub_until_idle(request);
        assert_eq!(msg_types(&iopub)[0], "status:busy");
        output.push_str(&kernel_support::stream_text(&iopub, "stdout"));
        if parent_id(&iopub[0]) != first.header.msg_id {
            assert!(
                !msg_types(&iopub).contains(&"execute_input".to_string()),
                "an aborted cell was started"
            );
        }
    }
    assert_eq!(output, "", "aborted cells produced output");

    // The kernel goes back to normal afterwards.
    let ex = k.execute(r#"print("fourth")"#);
    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.stdout(), "fourth\n");
}

#[test]
fn stop_on_error_aborts_queued_cells() {
    let mut k = Kernel::start();
    // Queued while the first cell runs.
    check_stop_on_error_aborts(&mut k, r#"sleep(0.5); throw "first""#);
    // Sent back to back with a cell that fails at once: they may arrive just after the
    // error, and must still be aborted (as "Run All" expects).
    for _ in 0..5 {
        check_stop_on_error_aborts(&mut k, r#"throw "first""#);
    }
}

/// A cell sent as soon as the client has read an error reply was sent after the failure:
/// it runs, however quickly it follows.
#[test]
fn a_cell_sent_right_after_an_error_runs() {
    let mut k = Kernel::start();
    for round in 0..20 {
        let failing = k.send_execute(r#"throw "first""#);
        assert_eq!(k.shell_reply(&failing).content["status"], "error");
        let next = k.send_execute("1 + 1");
        let reply = k.shell_reply(&next);
        assert_eq!(
            reply.content["status"], "ok",
            "round {round}: {:?}",
            reply.content
        );
        k.iopub_until_idle(&failing);
        k.iopub_until_idle(&next);
    }
}

/// "Run, interrupt, run" in a loop: the cell after each interrupted one runs.
#[test]
fn run_interrupt_run_never_aborts_the_next_cell() {
    let mut k = Kernel::start();
    for round in 0..20 {
        let looping = k.send_execute("loop {}");
        // The cell is running once its execute_input is out; an interrupt sent after
        // that is not cleared by the cell's start.
        k.iopub_until(&looping, TIMEOUT, |m| m.msg_type() == "execute_input");
        let interrupt = k.send_control("interrupt_request", json!({}));
        k.control_reply(&interrupt);
        let reply = k.shell_reply(&looping);
        assert_eq!(reply.content["status"], "error", "round {round}");
        assert_eq!(reply.content["ename"], "Interrupted", "round {round}");
        let next = k.send_execute("1 + 1");
        k.iopub_until_idle(&looping);
        let ex = k.finish_execute(next);
        assert_eq!(ex.status(), "ok", "round {round}: {:?}", ex.reply.content);
        assert_eq!(ex.result().as_deref(), Some("2"), "round {round}");
    }
}

#[test]
fn stop_on_error_false_keeps_running() {
    let mut k = Kernel::start();
    let mut content = execute_content(r#"throw "first""#);
    content["stop_on_error"] = json!(false);
    let first = k.send_shell("execute_request", content);
    let second = k.send_execute(r#"print("second")"#);
    assert_eq!(k.shell_reply(&first).content["status"], "error");
    let ex = k.finish_execute(second);
    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.stdout(), "second\n");
}

#[test]
fn input_round_trip_over_stdin() {
    let mut k = Kernel::start();
    let request = k.send_execute(r#"let name = input("Name: "); print("hi " + name)"#);
    let input_request = k
        .next_stdin(TIMEOUT)
        .unwrap_or_else(|| panic!("no input_request; stderr:\n{}", k.stderr_text()));
    assert_eq!(input_request.msg_type(), "input_request");
    assert_eq!(input_request.content["prompt"], "Name: ");
    assert_eq!(input_request.content["password"], false);
    assert_eq!(parent_id(&input_request), request.header.msg_id);

    let answer = k.session.message(
        "input_reply",
        Some(&input_request),
        Vec::new(),
        json!({ "value": "Ada" }),
    );
    k.send(&k.stdin, &answer);
    let ex = k.finish_execute(request);
    assert_eq!(ex.status(), "ok", "{:?}", ex.reply.content);
    assert_eq!(ex.stdout(), "hi Ada\n");
    assert_eq!(k.eval("name"), "\"Ada\"");
}

#[test]
fn input_without_stdin_is_an_error() {
    let mut k = Kernel::start();
    let mut content = execute_content(r#"let name = input("Name: "); print("hi " + name)"#);
    content["allow_stdin"] = json!(false);
    let ex = k.execute_with(content);
    assert_eq!(ex.status(), "error");
    let evalue = ex.reply.content["evalue"].as_str().unwrap_or_default();
    assert!(evalue.contains("stdin"), "evalue {evalue:?}");
    assert_eq!(ex.stdout(), "");
    assert!(
        k.next_stdin(Duration::from_millis(200)).is_none(),
        "an input_request was sent although stdin is not allowed"
    );
}

#[test]
fn deep_recursion_is_an_error_not_a_crash() {
    let mut k = Kernel::start();
    let ex = k.execute("fn r(n) { r(n + 1) } r(0)");
    assert_eq!(ex.status(), "error", "{:?}", ex.reply.content);
    assert_eq!(ex.reply.content["ename"], "ErrorStackOverflow");
    assert!(k.is_alive());
    assert_eq!(k.eval("1 + 1"), "2");
}

#[test]
fn ten_thousand_prints_arrive_in_order_before_idle() {
    let mut k = Kernel::start();
    let ex = k.execute("for i in 0..10000 { print(i) }");
    assert_eq!(ex.status(), "ok");
    // iopub_until_idle stops at idle, so all of this arrived before it.
    let text = ex.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, i.to_string(), "line {i} out of order");
    }
    assert!(text.ends_with('\n'));
    let types = msg_types(&ex.iopub);
    assert_eq!(types.last().map(String::as_str), Some("status:idle"));
    assert_eq!(types[1], "execute_input");
}

#[test]
fn output_streams_while_the_cell_runs() {
    let mut k = Kernel::start();
    let ex = k.execute(r#"print("first"); sleep(1.0); print("second");"#);
    assert_eq!(ex.status(), "ok");
    let streams: Vec<&str> = ex
        .iopub
        .iter()
        .filter(|m| m.msg_type() == "stream")
        .map(|m| m.content["text"].as_str().unwrap())
        .collect();
    // Printed a second apart: the first line was sent on its own, before the cell ended.
    assert_eq!(streams, ["first\n", "second\n"]);
}

#[test]
fn displays_can_be_updated_and_cleared() {
    let mut k = Kernel::start();
    let ex =
        k.execute(r#"display("0%", "bar"); update_display("bar", [1, 2]); clear_output(true);"#);
    assert_eq!(ex.status(), "ok");
    let kinds = ex.msg_types();
    let first = ex
        .iopub
        .iter()
        .find(|m| m.msg_type() == "display_data")
        .unwrap();
    assert_eq!(first.content["transient"]["display_id"], "bar");
    assert_eq!(first.content["data"]["text/plain"], "0%");
    let update = ex
        .iopub
        .iter()
        .find(|m| m.msg_type() == "update_display_data")
        .unwrap();
    assert_eq!(update.content["transient"]["display_id"], "bar");
    assert_eq!(update.content["data"]["application/json"], json!([1, 2]));
    let clear = ex
        .iopub
        .iter()
        .find(|m| m.msg_type() == "clear_output")
        .unwrap();
    assert_eq!(clear.content["wait"], true);
    let order: Vec<usize> = ["display_data", "update_display_data", "clear_output"]
        .iter()
        .map(|t| kinds.iter().position(|k| k == t).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{kinds:?}");
}

/// A process and submitted pool tasks (of a process pool and a thread pool) started in
/// cell A print once before cell A ends and once after, while cell B waits for them: both
/// lines are stream messages of cell A, and cell B gets none.
#[test]
fn output_of_processes_and_pool_tasks_goes_to_the_cell_that_started_them() {
    let mut k = Kernel::start();
    let a = k.execute(
        r#"let resume = event();
           let printed = semaphore(0);
           fn two_lines(name, printed, resume) {
               print(`${name}: early`);
               printed.release();
               resume.wait(30.0);
               print(`${name}: late`);
           }
           let p = spawn_process(two_lines, "process", printed, resume);
           let pp = pool(1);
           let f = pp.submit(two_lines, "pool task", printed, resume);
           let tp = thread_pool(1);
           let g = tp.submit(two_lines, "thread-pool task", printed, resume);
           for i in 0..3 { printed.acquire(); }"#,
    );
    assert_eq!(a.status(), "ok", "{:?}", a.error());
    let b = k.execute("resume.set(); p.join(); f.result(); g.result(); \"joined\"");
    assert_eq!(b.result().as_deref(), Some("\"joined\""), "{:?}", b.error());
    assert_eq!(b.stdout(), "", "output leaked into the cell that waited");
    // The late lines were relayed before join() and result() returned, so they have all
    // been published by now (IOPub keeps the order of one publisher).
    let late = k.iopub_for(Duration::from_millis(300));
    let mut lines: Vec<String> = a
        .iopub
        .iter()
        .chain(late.iter())
        .filter(|m| m.msg_type() == "stream")
        .map(|m| {
            assert_eq!(parent_id(m), a.request.header.msg_id, "{:?}", m.content);
            m.content["text"].as_str().unwrap().to_string()
        })
        .collect::<String>()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "pool task: early",
            "pool task: late",
            "process: early",
            "process: late",
            "thread-pool task: early",
            "thread-pool task: late",
        ]
    );
}

#[test]
fn thread_output_goes_to_the_cell_that_started_the_thread() {
    let mut k = Kernel::start();
    let first =
        k.execute(r#"let t = spawn_thread(|| { print("early"); sleep(0.5); print("late"); 42 });"#);
    assert_eq!(first.status(), "ok");
    // The next cell waits for the thread: "late" is printed while this cell runs, but
    // belongs to the first one.
    let second = k.execute("t.join()");
    assert_eq!(second.result().as_deref(), Some("42"));
    assert_eq!(
        second.stdout(),
        "",
        "thread output leaked into the joining cell"
    );
    let mut streams = String::new();
    for m in k.iopub_for(Duration::from_millis(300)) {
        if m.msg_type() == "stream" {
            assert_eq!(parent_id(&m), first.request.header.msg_id);
            streams.push_str(m.content["text"].as_str().unwrap());
        }
    }
    let early_seen = first.stdout();
    assert_eq!(format!("{early_seen}{streams}"), "early\nlate\n");
}

#[test]
fn processes_use_functions_and_closures_from_earlier_cells() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("fn cube(x) { x * x * x }").status(), "ok");
    assert_eq!(
        k.execute("let factor = 3; let scale = |x| x * factor;")
            .status(),
        "ok"
    );
    assert_eq!(
        k.execute("let unrelated = 1; fn helper(x) { cube(x) + 1 }")
            .status(),
        "ok"
    );
    let ex = k.execute(
        r#"let a = spawn_process(cube, 4); let b = spawn_process(scale, 5); let c = spawn_process(helper, 2);
           print(`from the child: ${spawn_process(|| { print("child output"); 1 }).join()}`);
           [a.join(), b.join(), c.join()]"#,
    );
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    assert_eq!(ex.result().as_deref(), Some("[64, 15, 9]"));
    assert_eq!(ex.stdout(), "child output\nfrom the child: 1\n");
    // A function redefined later is the new one in children too.
    assert_eq!(k.execute("fn cube(x) { -x }").status(), "ok");
    assert_eq!(k.eval("spawn_process(cube, 4).join()"), "-4");
}

#[test]
fn exit_process_in_the_kernel_throws_instead_of_exiting() {
    let mut k = Kernel::start();
    let ex = k.execute("exit_process(0)");
    assert_eq!(ex.status(), "error");
    assert!(ex.reply.content["evalue"]
        .as_str()
        .unwrap()
        .contains("end the kernel"));
    assert!(k.is_alive());
    assert_eq!(k.eval("1 + 1"), "2");
}

#[test]
fn shutdown_leaves_no_worker_processes() {
    let mut k = Kernel::start();
    let ex = k.execute(
        "let ps = []; for i in 0..3 { ps.push(spawn_process(|| sleep(100))); } ps.map(|p| p.pid)",
    );
    assert_eq!(ex.status(), "ok");
    let kernel_pid = k.pid();
    assert_eq!(workers_of(kernel_pid).len(), 3);
    // The workers and the fork server that started them.
    let workers = descendants_of(kernel_pid);
    let request = k.send_control("shutdown_request", json!({"restart": false}));
    k.control_reply(&request);
    assert!(
        k.wait_exit(Duration::from_secs(10)).is_some(),
        "kernel did not exit"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let alive = |pid: &u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    while workers.iter().any(alive) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<&u32> = workers.iter().filter(|p| alive(p)).collect();
    assert!(left.is_empty(), "workers left running: {left:?}");
}

#[test]
fn killing_a_pool_worker_breaks_the_map_and_the_pool_recovers() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("let p = pool(2);").status(), "ok");
    let pids: Vec<i32> = k
        .eval("p.pids")
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|p| p.parse().unwrap())
        .collect();
    let request = k.send_execute("p.map(|x| { sleep(30); x }, 0..4, #{chunksize: 1})");
    k.iopub_until(&request, TIMEOUT, |m| m.msg_type() == "execute_input");
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(pids[0], libc::SIGKILL) };
    let reply = k
        .try_shell_reply(&request, Duration::from_secs(5))
        .expect("map did not fail after the kill");
    assert_eq!(reply.content["status"], "error");
    let evalue = reply.content["evalue"].as_str().unwrap();
    assert!(
        evalue.contains("broken pool") && evalue.contains("signal 9"),
        "{evalue}"
    );
    k.iopub_until_idle(&request);
    // The other worker is interrupted by nobody: stop it, then the pool is whole again.
    assert_eq!(
        k.execute("p.terminate(); let p = pool(2); p.map(|x| x + 1, [1, 2])")
            .result()
            .as_deref(),
        Some("[2, 3]")
    );
}

/// The `done/total` count of a progress bar's text.
fn progress_count(text: &str) -> (u32, u32) {
    let count = text
        .split_whitespace()
        .find(|w| w.contains('/'))
        .unwrap_or_else(|| panic!("no count in {text:?}"));
    let (done, total) = count.split_once('/').unwrap();
    (done.parse().unwrap(), total.parse().unwrap())
}

#[test]
fn map_progress_bar_is_one_display_updated_in_place() {
    let mut k = Kernel::start();
    // Each of the two threads runs four tasks of at least 150 ms one after the other; the
    // bar is redrawn at most every 100 ms, so it must be redrawn while a thread's last
    // task still runs, with fewer than 8 done. (The sleeps only make tasks last at least
    // that long; a slower machine makes them longer, never shorter.)
    let ex = k.execute(
        "thread_pool(2).map(|x| { sleep(0.15); x }, 0..8, #{progress: true, chunksize: 1})",
    );
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    let first = ex
        .iopub
        .iter()
        .find(|m| m.msg_type() == "display_data")
        .expect("a progress display");
    let id = first.content["transient"]["display_id"]
        .as_str()
        .unwrap()
        .to_string();
    let first_text = first.content["data"]["text/plain"].as_str().unwrap();
    assert_eq!(progress_count(first_text), (0, 8), "{first_text}");
    let updates: Vec<(u32, u32)> = ex
        .iopub
        .iter()
        .filter(|m| m.msg_type() == "update_display_data")
        .map(|m| {
            assert_eq!(m.content["transient"]["display_id"], id.as_str());
            progress_count(m.content["data"]["text/plain"].as_str().unwrap())
        })
        .collect();
    assert_eq!(updates.last(), Some(&(8, 8)), "{updates:?}");
    assert!(
        updates.iter().any(|&(done, _)| done > 0 && done < 8),
        "no update while the tasks ran: {updates:?}"
    );
    assert!(
        updates.windows(2).all(|w| w[0].0 < w[1].0),
        "counts go up: {updates:?}"
    );
}

#[test]
fn output_of_threads_and_processes_streams_while_the_cell_waits() {
    let mut k = Kernel::start();
    for spawn in ["spawn_thread", "spawn_process"] {
        let code = format!(
            r#"let w = {spawn}(|| {{ print("first"); sleep(1.0); print("second"); 7 }}); w.join()"#
        );
        let ex = k.execute(&code);
        assert_eq!(
            ex.result().as_deref(),
            Some("7"),
            "{spawn}: {:?}",
            ex.error()
        );
        let streams: Vec<&str> = ex
            .iopub
            .iter()
            .filter(|m| m.msg_type() == "stream")
            .map(|m| m.content["text"].as_str().unwrap())
            .collect();
        // A second apart, so the first line was sent on its own while the cell waited.
        assert_eq!(streams, ["first\n", "second\n"], "{spawn}");
    }
}

/// The MIME bundle of the timeline chart a cell displayed.
fn timeline_display(ex: &kernel_support::Execution) -> &serde_json::Value {
    let display = ex
        .iopub
        .iter()
        .find(|m| m.msg_type() == "display_data")
        .expect("a timeline display");
    &display.content["data"]
}

#[test]
fn timeline_draws_one_row_per_worker() {
    let mut k = Kernel::start();
    assert_eq!(k.execute("fn work(n) { sleep(n) }").status(), "ok");
    let ex = k.execute(
        "let spans = timeline(|| { let a = spawn_thread(work, 0.1); let b = spawn_thread(work, 0.1); \
         let p = spawn_process(work, 0.1); a.join(); b.join(); p.join(); }); spans.len()",
    );
    assert_eq!(ex.result().as_deref(), Some("4"), "{:?}", ex.error());
    let svg = timeline_display(&ex)["image/svg+xml"].as_str().unwrap();
    assert_eq!(svg.matches("<rect class=\"span\"").count(), 4, "{svg}");
    for row in ["MainThread", "Thread-", "Process-"] {
        assert!(svg.contains(row), "{row} row missing");
    }
    let text = timeline_display(&ex)["text/plain"].as_str().unwrap();
    assert!(
        text.contains("4 workers") && text.contains("CPU utilisation"),
        "{text}"
    );
    assert_eq!(k.eval("spans.filter(|s| s.label == \"work\").len()"), "3");

    // The same for a whole cell with %%timeline.
    let ex = k.execute("%%timeline\nthread_pool(2).map(work, [0.05, 0.05])");
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    let svg = timeline_display(&ex)["image/svg+xml"].as_str().unwrap();
    assert_eq!(
        svg.matches("<rect class=\"span\"").count(),
        3,
        "main row and two pool tasks: {svg}"
    );
}

/// A bar of a timeline's SVG: its label, its left edge and width in pixels, and the times
/// its tooltip gives.
#[derive(Debug)]
struct Bar {
    label: String,
    x: f64,
    width: f64,
    start: f64,
    end: f64,
}

fn bars(svg: &str) -> Vec<Bar> {
    let attribute = |rect: &str, name: &str| -> f64 {
        let from = rect.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        rect[from..].split('"').next().unwrap().parse().unwrap()
    };
    svg.split("<rect class=\"span\"")
        .skip(1)
        .map(|rect| {
            let title = rect.split("<title>").nth(1).unwrap();
            let title = title.split("</title>").next().unwrap();
            // "label 0.123–0.456 s"
            let (label, times) = title
                .rsplit_once(' ')
                .map_or((title, ""), |(rest, _)| rest.rsplit_once(' ').unwrap());
            let (start, end) = times.split_once('–').unwrap();
            Bar {
                label: label.to_string(),
                x: attribute(rect, "x"),
                width: attribute(rect, "width"),
                start: start.parse().unwrap(),
                end: end.parse().unwrap(),
            }
        })
        .collect()
}

/// The bars of a timeline are where the work was: two workers that met at a barrier
/// overlap, two threads run one after the other do not, in the spans' data and in the
/// chart.
#[test]
fn timeline_bars_show_when_each_worker_ran() {
    let mut k = Kernel::start();
    let code = "fn together(b) { b.wait(30.0); sleep(0.05) }
fn first() { sleep(0.05) }
fn second() { sleep(0.05) }
let spans = timeline(|| {
    let b = barrier(2);
    let t = spawn_thread(together, b);
    let p = spawn_process(together, b);
    t.join();
    p.join();
    spawn_thread(first).join();
    spawn_thread(second).join();
});
let together = spans.filter(|x| x.label == \"together\");
let a = together[0];
let b = together[1];
let f = spans.filter(|x| x.label == \"first\")[0];
let s = spans.filter(|x| x.label == \"second\")[0];
[a.start < b.end && b.start < a.end, f.end <= s.start, f.start < f.end]";
    let ex = k.execute(code);
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    assert_eq!(ex.result().as_deref(), Some("[true, true, true]"));
    let svg = timeline_display(&ex)["image/svg+xml"].as_str().unwrap();
    let bars = bars(svg);
    let find = |label: &str| -> Vec<&Bar> { bars.iter().filter(|b| b.label == label).collect() };
    let together = find("together");
    let (first, second) = (find("first"), find("second"));
    assert_eq!(together.len(), 2, "{bars:?}");
    assert_eq!((first.len(), second.len()), (1, 1), "{bars:?}");
    let (a, b) = (together[0], together[1]);
    let (f, s) = (first[0], second[0]);
    // Both had waited at the barrier for the other, then slept 50 ms: they overlap by
    // that much at least.
    assert!(
        a.start.max(b.start) + 0.04 < a.end.min(b.end),
        "overlapping workers: {a:?} {b:?}"
    );
    assert!(
        a.x.max(b.x) < (a.x + a.width).min(b.x + b.width),
        "overlapping bars: {a:?} {b:?}"
    );
    // `second` started after `first` was joined.
    assert!(f.end <= s.start, "one after the other: {f:?} {s:?}");
    // Positions are rounded to 0.1 px.
    assert!(
        f.x + f.width <= s.x + 0.2,
        "bars one after the other: {f:?} {s:?}"
    );
    // It slept 50 ms; its times are rounded to the millisecond.
    assert!(f.end - f.start > 0.0485 && f.width > 1.0, "{f:?}");
}

#[cfg(not(feature = "rust"))]
#[test]
fn rust_cells_in_a_build_without_them_say_how_to_get_them() {
    let mut k = Kernel::start();
    let ex = k.execute("%%rust\nlet x = 1;");
    assert_eq!(ex.status(), "error");
    assert_eq!(ex.reply.content["ename"], "UsageError");
    let evalue = ex.reply.content["evalue"].as_str().unwrap();
    assert!(evalue.contains("--features rust"), "{evalue}");
    assert!(evalue.contains("make lab"), "{evalue}");
    assert_eq!(k.eval("40 + 2"), "42");
}

/// Locks kept in arrays and maps work from closures in a cell; a plain variable that a
/// closure uses while a call on it keeps it locked is a data race whose error shows the line.
#[test]
fn runtime_objects_in_containers_and_data_races_in_cells() {
    let mut k = Kernel::start();
    let ex = k.execute(
        "let forks = [lock(), lock()];\n\
         let acct = #{ guard: lock(), balance: value(100) };\n\
         forks[0].hold(|| forks[1].hold(|| acct.guard.hold(|| acct.balance.value)))",
    );
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    assert_eq!(ex.result().as_deref(), Some("100"));

    let ex = k.execute(
        "let tally = #{ guard: lock(), count: 0 };\n\ntally.guard.hold(|| tally.count += 1);",
    );
    assert_eq!(ex.status(), "error");
    assert_eq!(ex.reply.content["ename"], "ErrorDataRace");
    let evalue = ex.reply.content["evalue"].as_str().unwrap_or_default();
    assert!(evalue.contains("variable 'tally'"), "{evalue}");
    let traceback = ex.reply.content["traceback"].to_string();
    assert!(traceback.contains("line 3, column 13"), "{traceback}");
}

#[test]
fn races_magic_reports_the_cells_data_races_by_variable_name() {
    let mut k = Kernel::start();
    let setup = "let counter = value(0); let guard = lock(); \
                 fn bump(c, n) { for i in 0..n { c.value += 1; } }";
    assert_eq!(k.execute(setup).status(), "ok");
    let ex = k.execute(
        "%%races\nlet a = spawn_thread(bump, counter, 50);\nlet b = spawn_process(bump, counter, 50);\na.join(); b.join();",
    );
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    let display = ex
        .iopub
        .iter()
        .find(|m| m.msg_type() == "display_data")
        .expect("a race report");
    let html = display.content["data"]["text/html"].as_str().unwrap();
    let text = display.content["data"]["text/plain"].as_str().unwrap();
    assert!(html.contains("data race on counter.value"), "{html}");
    assert!(
        text.contains("WARNING: data race on counter.value"),
        "{text}"
    );
    assert!(
        text.contains("by Thread-") && text.contains("by Process-"),
        "{text}"
    );
    assert!(
        text.contains("at line 1, column"),
        "the place in the function: {text}"
    );

    // With the lock, the same cell has no race; the session's variables are still there.
    let locked = "%%races\nfn safe(c, l, n) { for i in 0..n { l.hold(|| c.value += 1); } }\n\
                  let a = spawn_thread(safe, counter, guard, 50);\n\
                  let b = spawn_process(safe, counter, guard, 50);\na.join(); b.join();\ncounter.value";
    let ex = k.execute(locked);
    assert_eq!(ex.status(), "ok", "{:?}", ex.error());
    let display = ex
        .iopub
        .iter()
        .find(|m| m.msg_type() == "display_data")
        .expect("a report");
    let text = display.content["data"]["text/plain"].as_str().unwrap();
    assert!(text.starts_with("No data race found"), "{text}");
    assert!(ex.result().is_some(), "the cell's value is shown");
}

#[test]
fn play_asks_the_learner_who_moves_and_replays_what_they_chose() {
    let mut k = Kernel::start();
    let define = "fn two_increments() { let counter = value(0); \
                  let a = spawn_thread(|| counter.value += 1); \
                  let b = spawn_thread(|| counter.value += 1); \
                  a.join(); b.join(); counter.value }";
    assert_eq!(k.execute(define).status(), "ok");
    // In the kernel `play` shows a board (a widget) unless the text game is asked for.
    let request = k.send_execute(
        "let game = play(two_increments, #{ expect: |v| v == 2, text: true }); game.schedule",
    );
    // Let main go on twice, then let Thread-1 read, then Thread-2 read (preempting
    // Thread-1 before its write), then Enter: the default schedule from there.
    let mut prompts = Vec::new();
    for answer in ["", "", "", "2", ""] {
        let input_request = k
            .next_stdin(TIMEOUT)
            .unwrap_or_else(|| panic!("no input_request; stderr:\n{}", k.stderr_text()));
        prompts.push(
            input_request.content["prompt"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let reply = k.session.message(
            "input_reply",
            Some(&input_request),
            Vec::new(),
            json!({ "value": answer }),
        );
        k.send(&k.stdin, &reply);
    }
    let ex = k.finish_execute(request);
    assert_eq!(ex.status(), "ok", "{:?}", ex.reply.content);
    assert_eq!(prompts[1], "Who moves? 1-3 (q stops): ", "{prompts:?}");
    let out = ex.stdout();
    assert!(out.contains("You are the scheduler"), "{out}");
    assert!(out.contains("3) Thread-2: read counter.value"), "{out}");
    assert!(out.contains("Thread-2: read counter.value → 0"), "{out}");
    assert!(out.contains("Result: 1. You broke it!"), "{out}");
    // What the learner did is a schedule that `replay` runs again.
    assert_eq!(ex.result().as_deref(), Some("\"00122\""));
    assert_eq!(k.eval("replay(two_increments, game.schedule).result"), "1");

    // `q` stops the game with an error; the session goes on.
    let request = k.send_execute("play(two_increments, #{ text: true })");
    let input_request = k.next_stdin(TIMEOUT).expect("an input_request");
    let reply = k.session.message(
        "input_reply",
        Some(&input_request),
        Vec::new(),
        json!({ "value": "q" }),
    );
    k.send(&k.stdin, &reply);
    let ex = k.finish_execute(request);
    assert_eq!(ex.status(), "error");
    assert!(
        ex.reply.content["evalue"]
            .as_str()
            .unwrap()
            .contains("play: stopped"),
        "{:?}",
        ex.reply.content
    );
    assert_eq!(k.eval("game.result"), "1");
}

#[test]
fn runtime_objects_as_results_are_shown_by_their_own_to_string() {
    let mut k = Kernel::start();
    for (code, shown) in [
        ("lock()", "Lock-"),
        ("replay(|| 1, \"\")", "replay \"\" → 1"),
        ("explore(|| 1, #{ show: false })", "explore: 1 schedules"),
    ] {
        let ex = k.execute(code);
        let text = ex.result().unwrap_or_default();
        assert!(
            text.contains(shown) && !text.contains("rhai_kernel::"),
            "{code} shows {text:?}"
        );
    }
}
