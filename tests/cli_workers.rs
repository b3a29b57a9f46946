//! Threads, processes and pool tasks under `rhai-kernel run`, through the real binary: an
//! error nobody joins is printed when it happens, the end of a script waits for work that
//! is not a daemon, daemons are not waited for, and Ctrl-C says what it stopped. Every
//! script runs in a process group of its own, which must be empty after it exits.

mod kernel_support;

use kernel_support::group_members;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rhai-kernel");

/// How long a script may take (debug builds on a loaded machine are slow).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A function that throws on its second line, shared by the scripts below.
const FAILS: &str = "fn fails(x) {\n    throw `bad ${x}`;\n}\n";

/// A script started in its own process group, with its output piped.
struct Script {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Script {
    fn start(code: &str) -> Script {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.rhai");
        std::fs::write(&path, code).unwrap();
        let child = Command::new(BIN)
            .arg("run")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        Script { child, _dir: dir }
    }

    fn group(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the script to exit (killing its group after [`SCRIPT_TIMEOUT`]), reads the
    /// rest of its output and checks that nothing of its group is left running.
    fn finish(mut self, stdout_so_far: String) -> (ExitStatus, String, String) {
        let mut stdout_pipe = self.child.stdout.take();
        let mut stderr_pipe = self.child.stderr.take();
        // Read on threads, so that a chatty script cannot block on a full pipe.
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(pipe) = stdout_pipe.as_mut() {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(pipe) = stderr_pipe.as_mut() {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        });
        let deadline = Instant::now() + SCRIPT_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let group = self.group();
        let Some(status) = status else {
            kill_group(group);
            let _ = self.child.wait();
            panic!(
                "the script did not end in {SCRIPT_TIMEOUT:?}:\n{}\n{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        };
        let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
        assert_group_ends(group);
        (status, stdout_so_far + stdout.as_str(), stderr)
    }
}

fn kill_group(group: u32) {
    // SAFETY: signalling the process group of a child this test started.
    unsafe { libc::kill(-(group as libc::pid_t), libc::SIGKILL) };
}

/// The group's processes die soon after its leader exits (workers by their parent-death
/// signal); anything still there after 10 s was left running.
fn assert_group_ends(group: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !group_members(group).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = group_members(group);
    if !left.is_empty() {
        kill_group(group);
        panic!("left running after the script ended: {left:?}");
    }
}

/// Runs a script to its end: exit status, stdout, stderr.
fn run(code: &str) -> (ExitStatus, String, String) {
    Script::start(code).finish(String::new())
}

#[test]
fn an_error_of_a_thread_is_printed_when_it_happens_and_join_still_throws_it() {
    let code = format!(
        "{FAILS}let t = spawn_thread(fails, 1);
while t.is_alive {{ sleep(0.01); }}
eprint(\"the thread has ended\");
let message = \"\";
try {{ t.join(); }} catch (e) {{ message = e; }}
print(`join: ${{message}}`);
spawn_thread(fails, 2);
"
    );
    let (status, stdout, stderr) = run(&code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr,
        "Exception in thread Thread-1 (fails): bad 1 (line 2, column 5)\n\
         the thread has ended\n\
         Exception in thread Thread-2 (fails): bad 2 (line 2, column 5)\n"
    );
    assert_eq!(
        stdout,
        "join: thread 'Thread-1 (fails)' failed: bad 1 (line 2, column 5)\n"
    );
}

#[test]
fn an_error_of_a_process_is_printed_when_it_happens_and_join_still_throws_it() {
    let code = format!(
        "{FAILS}let p = spawn_process(fails, 1);
while p.is_alive {{ sleep(0.01); }}
eprint(\"the process has ended\");
let message = \"\";
try {{ p.join(); }} catch (e) {{ message = e; }}
print(`join: ${{message}}`);
spawn_process(fails, 2);
"
    );
    let (status, stdout, stderr) = run(&code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr,
        "Exception in process Process-1 (fails): bad 1 (line 2, column 5)\n\
         the process has ended\n\
         Exception in process Process-2 (fails): bad 2 (line 2, column 5)\n"
    );
    assert_eq!(
        stdout,
        "join: process 'Process-1 (fails)' failed: bad 1 (line 2, column 5)\n"
    );
}

/// A submitted task's error that nobody waits for is printed as it happens and still
/// thrown by `result()`; `map` throws a task's error instead of printing it.
#[test]
fn an_error_of_a_pool_task_nobody_waits_for_is_printed_once() {
    let code = format!(
        "{FAILS}let p = pool(1);
print(p.pids[0]);
let f = p.submit(fails, 3);
p.close();
p.join();
eprint(\"the pool is done\");
try {{ f.result(); }} catch (e) {{ print(`result: ${{e}}`); }}
let tp = thread_pool(1);
let g = tp.submit(fails, 4);
tp.close();
tp.join();
eprint(\"the thread pool is done\");
try {{ g.result(); }} catch (e) {{ print(`result: ${{e}}`); }}
try {{ pool(1).map(fails, [5]); }} catch (e) {{ print(`map: ${{e}}`); }}
try {{ thread_pool(1).map(fails, [6]); }} catch (e) {{ print(`map: ${{e}}`); }}
"
    );
    let (status, stdout, stderr) = run(&code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let pid = stdout.lines().next().unwrap();
    assert_eq!(
        stderr,
        format!(
            "Exception in pool task (fails) on pool worker {pid}: bad 3 (line 2, column 5)\n\
             the pool is done\n\
             Exception in pool task (fails) on pool-thread-1: bad 4 (line 2, column 5)\n\
             the thread pool is done\n"
        )
    );
    let rest: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(
        rest,
        [
            "result: the task failed: bad 3 (line 2, column 5)",
            "result: the task failed: bad 4 (line 2, column 5)",
            "map: task 0 failed: bad 5 (line 2, column 5)",
            "map: task 0 failed: bad 6 (line 2, column 5)",
        ]
    );
}

/// The Python documentation's Lock example: ten processes that nobody joins.
#[test]
fn the_end_of_a_script_waits_for_processes_nobody_joined() {
    let code = "fn f(l, i) {
    l.acquire();
    print(`hello world ${i}`);
    l.release();
}
let l = lock();
for num in 0..10 {
    spawn_process(f, l, num);
}
";
    let (status, stdout, stderr) = run(code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_by_key(|l| l.split(' ').nth(2).and_then(|n| n.parse::<u32>().ok()));
    let expected: Vec<String> = (0..10).map(|i| format!("hello world {i}")).collect();
    assert_eq!(lines, expected);
    // One that outlives the main code: it prints only once the main code's last
    // statement lets it, so an end that did not wait would cut it off.
    let code = "let main_done = event();
spawn_process(|e| { e.wait(); print(\"the process is done\"); }, main_done);
print(\"the main code is done\");
main_done.set();
";
    let (status, stdout, stderr) = run(code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "the main code is done\nthe process is done\n");
}

#[test]
fn the_end_of_a_script_waits_for_threads_nobody_joined() {
    // The thread prints only once the main code's last statement lets it (the event
    // orders the lines); its sleep is not a synchronisation, only what makes it outlive
    // the main code, so that an end that did not wait would cut it off.
    let code = "let main_done = event();
spawn_thread(|e| { e.wait(); sleep(0.5); print(\"the thread is done\"); }, main_done);
print(\"the main code is done\");
main_done.set();
";
    let (status, stdout, stderr) = run(code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "the main code is done\nthe thread is done\n");
}

/// A script whose main code throws still waits for the threads and processes nobody
/// joined (as Python does after an uncaught exception in the main thread), then reports
/// the error and fails.
#[test]
fn the_end_of_a_script_waits_for_its_workers_after_a_top_level_error() {
    let code = "let main_done = event();
spawn_thread(|e| { e.wait(); print(\"the thread is done\"); }, main_done);
spawn_process(|e| { e.wait(); print(\"the process is done\"); }, main_done);
main_done.set();
throw \"the main code fails\";
";
    let (status, stdout, stderr) = run(code);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["the process is done", "the thread is done"],
        "{stderr}"
    );
    assert!(stderr.contains("the main code fails"), "{stderr}");
}

/// A task's error is thrown to whoever waits for it, and not printed as well: `imap`,
/// `imap_unordered` (in a `for` loop), `starmap` and `reduce`, on both kinds of pool.
#[test]
fn no_report_is_printed_for_a_pool_task_whose_caller_waits() {
    let code = format!(
        "{FAILS}for p in [pool(1), thread_pool(1)] {{
    try {{ for r in p.imap(fails, [1]) {{ print(r); }} }} catch (e) {{ print(`imap: ${{e}}`); }}
    try {{ for r in p.imap_unordered(fails, [2]) {{ print(r); }} }} catch (e) {{ print(`imap_unordered: ${{e}}`); }}
    try {{ p.starmap(|a, b| fails(a + b), [[1, 2]]); }} catch (e) {{ print(`starmap: ${{e}}`); }}
    try {{ p.reduce(|a, b| fails(a + b), [1, 3], 0); }} catch (e) {{ print(`reduce: ${{e}}`); }}
}}
"
    );
    let (status, stdout, stderr) = run(&code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr, "",
        "a task's error was printed although its caller waited"
    );
    let once = "imap: task 0 failed: bad 1 (line 2, column 5)\n\
                imap_unordered: task 0 failed: bad 2 (line 2, column 5)\n\
                starmap: task 0 failed: bad 3 (line 2, column 5)\n\
                reduce: reduce step 1 failed: bad 4 (line 2, column 5)\n";
    assert_eq!(stdout, once.repeat(2));
}

/// A process's job is over only when the threads it started and nobody joined are done,
/// as for a Python child process.
#[test]
fn a_process_waits_for_its_own_unjoined_threads() {
    let code = "let p = spawn_process(|| {
    let returning = event();
    spawn_thread(|e| { e.wait(); print(\"the inner thread is done\"); }, returning);
    returning.set();
    \"returned\"
});
print(p.join());
print(\"joined\");
";
    let (status, stdout, stderr) = run(code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    // `join()` returns once the process has ended, so after its thread's line.
    assert_eq!(stdout, "the inner thread is done\nreturned\njoined\n");
}

/// Daemons are not waited for: the script ends while they sleep, and they are stopped.
#[test]
fn daemon_threads_and_processes_are_not_waited_for() {
    let code = "let started = event();
let t = spawn_daemon_thread(|s| { s.set(); sleep(1000); }, started);
started.wait();
let started = event();
let p = spawn_daemon_process(|s| { s.set(); sleep(1000); }, started);
started.wait();
let inherited = spawn_daemon_thread(|| spawn_thread(|| 1).daemon).join();
print(`${t.daemon} ${p.daemon} ${inherited} ${spawn_thread(|| 1).daemon} ${spawn_process(|| 1).daemon}`);
";
    let started = Instant::now();
    let (status, stdout, stderr) = run(code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "true true true false false\n");
    assert!(
        started.elapsed() < Duration::from_secs(100),
        "the script waited for its daemons"
    );
}

/// Starts `code`, waits for its "started" line, sends SIGINT to the script alone (not
/// its group) and returns how it ended.
fn interrupt_after_started(code: &str) -> (ExitStatus, String, String) {
    let mut script = Script::start(code);
    // The first line is read on a thread, so that a script that never prints it fails
    // the test after a timeout instead of hanging it.
    let Some(stdout) = script.child.stdout.take() else {
        panic!("no stdout pipe");
    };
    let (tell, first_line) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        let read = stdout.read_line(&mut first).map(|_| first);
        let _ = tell.send((read, stdout.into_inner()));
    });
    let Ok((first, stdout)) = first_line.recv_timeout(SCRIPT_TIMEOUT) else {
        kill_group(script.group());
        let _ = script.child.wait();
        panic!("timeout: the script did not print its first line in {SCRIPT_TIMEOUT:?}");
    };
    let first = first.unwrap();
    assert_eq!(first, "started\n");
    script.child.stdout = Some(stdout);
    // SAFETY: signalling our own child, not reaped yet.
    assert_eq!(
        unsafe { libc::kill(script.child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    script.finish(first)
}

#[test]
fn ctrl_c_says_which_threads_and_processes_it_stopped() {
    let code = "fn work() { sleep(1000) }
let t = spawn_thread(|| sleep(1000));
let p = spawn_process(work);
print(\"started\");
t.join();
";
    let (status, _, stderr) = interrupt_after_started(code);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stderr
            .contains("stopped 1 thread and 1 process still running: Thread-1, Process-1 (work)\n"),
        "{stderr}"
    );
}

/// Ctrl-C while the end of the script waits for its threads and processes.
#[test]
fn ctrl_c_stops_the_wait_at_the_end_of_a_script_and_says_what_it_stopped() {
    let code = "spawn_daemon_thread(|| sleep(1000));
spawn_process(|| sleep(1000));
spawn_process(|| sleep(1000));
print(\"started\");
";
    let (status, _, stderr) = interrupt_after_started(code);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(
            "stopped 1 thread and 2 processes still running: Thread-1, Process-1, Process-2\n"
        ),
        "{stderr}"
    );
}

/// What processes and pool tasks print reaches the script's stdout and stderr, in the
/// order the script waits for it.
#[test]
fn output_of_processes_and_pool_tasks_reaches_the_terminal() {
    let code =
        "spawn_process(|| { print(\"from a process\"); eprint(\"process to stderr\"); }).join();
let p = pool(1);
p.map(|x| { print(`from pool task ${x}`); x }, [1, 2], #{ chunksize: 1 });
p.submit(|| { print(\"from a submitted task\"); eprint(\"task to stderr\"); }).result();
thread_pool(1).map(|x| { print(`from thread-pool task ${x}`); x }, [3]);
let inner = spawn_process(|| pool(1).map(|x| { print(`from a pool of a process ${x}`); x }, [4]));
inner.join();
print(\"done\");
";
    let (status, stdout, stderr) = run(code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "from a process\n\
         from pool task 1\n\
         from pool task 2\n\
         from a submitted task\n\
         from thread-pool task 3\n\
         from a pool of a process 4\n\
         done\n"
    );
    assert_eq!(stderr, "process to stderr\ntask to stderr\n");
}

/// A process killed (SIGKILL) while it holds a lock or an rlock (twice) cannot release it:
/// the next `acquire` takes the lock over, says so on stderr, and the lock then works as
/// usual (one release frees the rlock, whatever depth the dead holder had).
#[test]
fn a_lock_whose_holder_was_killed_is_taken_over_by_the_next_acquire() {
    let code = "for l in [lock(), rlock()] {
    let held = event();
    let p = spawn_process(|l, held| {
        l.acquire();
        if type_of(l) == \"RLock\" { l.acquire(); }
        held.set();
        sleep(1000);
    }, l, held);
    held.wait(30.0);
    p.kill();
    let joined = \"\";
    try { p.join(); } catch (e) { joined = `${e}`; }
    if !joined.ends_with(\"killed by signal 9\") { throw `join of the killed holder: ${joined}`; }
    print(`${p.pid} ${type_of(l)} ${l.acquire(30.0)} ${l.locked()}`);
    l.release();
    let released = !l.locked();
    let other = spawn_thread(|l| l.acquire(0.0), l);
    print(`released: ${released}, taken by another thread: ${other.join()}`);
}
";
    let (status, stdout, stderr) = run(code);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for (i, kind) in ["Lock", "RLock"].iter().enumerate() {
        let (pid, rest) = lines[2 * i].split_once(' ').unwrap();
        assert_eq!(rest, format!("{kind} true true"), "{stdout}");
        assert_eq!(
            lines[2 * i + 1],
            "released: true, taken by another thread: true"
        );
        assert!(
            stderr.contains(&format!(
                ": its holder (process {pid}) died without releasing it; acquiring it anyway\n"
            )),
            "{stderr}"
        );
    }
}
