//! The command line through the real binary: `run` (output, ARGS, error format, exit codes,
//! Ctrl-C), `install` (kernelspec contents) and `--version`.

mod kernel_support;

use kernel_support::group_members;
use serde_json::json;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rhai-kernel");

fn script(dir: &tempfile::TempDir, name: &str, code: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, code).unwrap();
    path
}

fn run(path: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("run")
        .arg(path)
        .args(args)
        .output()
        .unwrap()
}

/// Runs a script with `input` on its standard input.
fn run_with_input(path: &std::path::Path, input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn run_prints_to_stdout_and_sees_args() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        &dir,
        "hello.rhai",
        "fn square(x) { x * x }\nprint(`square: ${square(4)}`);\nprint(ARGS);\neprint(\"to stderr\");\n",
    );
    let out = run(&path, &["one", "--two"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "square: 16\n[\"one\", \"--two\"]\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to stderr\n");
}

#[test]
fn run_reports_errors_with_file_line_column_and_caret() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        &dir,
        "fail.rhai",
        "let x = 1;\nfn inner(v) {\n    throw `bad value ${v}`;\n}\ninner(x);\n",
    );
    let out = run(&path, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap();
    assert_eq!(
        first,
        format!("{}:3:5: ErrorRuntime: bad value 1", path.display())
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines[1], "    throw `bad value ${v}`;");
    assert_eq!(lines[2], "    ^");
    assert!(
        stderr.contains(&format!("called from {}:5:1", path.display())),
        "{stderr}"
    );
}

/// A plain variable that closures capture is one slot that every use locks: when it really
/// is contended, the error names the variable and its line and says what to use instead.
#[test]
fn a_contended_captured_variable_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let expect_race = |name: &str, code: &str, at: &str, variable: &str| {
        let path = script(&dir, name, code);
        let out = run(&path, &[]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        let expected = format!(
            "{}:{at}: ErrorDataRace: Data race detected on variable '{variable}'",
            path.display()
        );
        assert!(first.starts_with(&expected), "{stderr}");
        for instead in ["value(", "shared_array(", "queue("] {
            assert!(first.contains(instead), "{stderr}");
        }
    };
    // Another thread is inside a method call on `data` (which keeps it locked) for longer
    // than a use of the variable waits (a second), while the script reads it.
    expect_race(
        "other_thread.rhai",
        "let data = [1, 2, 3];\nlet started = value(false);\n\
         let slow = spawn_thread(|| data.map(|x| { started.value = true; sleep(1.0); x }));\n\
         while !started.value {}\nlet n = data.len();\n",
        "5:9",
        "data",
    );
    // The closure passed to `hold` uses `acct`, which the call on `acct` keeps locked (Rhai
    // reports this without a position).
    expect_race(
        "same_call.rhai",
        "let acct = #{ guard: lock(), count: 0 };\n\
         fn deposit(acct) {\n    acct.guard.hold(|| acct.count += 1);\n}\ndeposit(acct);\n",
        "3:16",
        "acct",
    );
    // The same in a thread: join() passes the thread's error on, with the line it names.
    let path = script(
        &dir,
        "in_thread.rhai",
        "let tally = #{ guard: lock(), count: 0 };\n\
         let t = spawn_thread(|| {\n    tally.guard.hold(|| tally.count += 1);\n});\nt.join();\n",
    );
    let out = run(&path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The thread's own report comes first ("Exception in thread …"); the error of join()
    // follows it.
    let joined = stderr
        .lines()
        .find(|line| line.contains("ErrorRuntime: thread 'Thread-1' failed"))
        .unwrap_or_default();
    assert!(
        joined.contains("Data race detected on variable 'tally'")
            && joined.ends_with("(line 3, column 17)"),
        "{stderr}"
    );
}

#[test]
fn run_reports_syntax_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(&dir, "syntax.rhai", "print(1);\nlet = 2;\n");
    let out = run(&path, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:2:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("ErrorParsing"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing runs when the script does not parse"
    );
}

#[test]
fn deep_recursion_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(&dir, "deep.rhai", "fn r(n) { r(n + 1) }\nr(0);\n");
    let out = run(&path, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ErrorStackOverflow"));
}

#[test]
fn input_reads_a_line_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        &dir,
        "input.rhai",
        "let name = input(\"Name: \");\nprint(`hi ${name}`);\n",
    );
    let out = run_with_input(&path, b"Ada\n");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Name: hi Ada\n");
}

/// Sends SIGINT to a running script (or, like a terminal's Ctrl-C, to its whole process
/// group) once it has printed `started`, and checks that it stops with exit code 130,
/// leaving no process behind. Waiting for the line, not for a fixed time, makes sure the
/// signal reaches the code it is meant to stop, however slow the machine.
fn interrupt_exits_130(code: &str, whole_group: bool) {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let path = script(&dir, "forever.rhai", code);
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // stdout is read on a thread that hands over its first line, so that a script that
    // never prints it fails the test after a timeout instead of hanging it.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (first_line, first_line_read) = std::sync::mpsc::channel();
    let stdout_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_line(&mut text);
        let _ = first_line.send(text.clone());
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let first = first_line_read.recv_timeout(Duration::from_secs(60));
    if first.as_deref() != Ok("started\n") {
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = child.wait();
        panic!("the script did not print \"started\": {first:?}");
    }
    let target = if whole_group { -pid } else { pid };
    assert_eq!(unsafe { libc::kill(target, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(130));
            let out = child.wait_with_output().unwrap();
            let stdout = stdout_reader.join().unwrap();
            assert_eq!(stdout, "started\n");
            // The script itself stopped (not the fallback exit for a stuck script).
            assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
            let gone = Instant::now() + Duration::from_secs(5);
            let group = pid as u32;
            while !group_members(group).is_empty() && Instant::now() < gone {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert_eq!(group_members(group), Vec::<u32>::new(), "left running");
            return;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            panic!("the script did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_stops_a_busy_loop_with_exit_code_130() {
    interrupt_exits_130("print(\"started\");\nloop {}\n", false);
}

#[test]
fn ctrl_c_stops_a_sleep_with_exit_code_130() {
    interrupt_exits_130("print(\"started\");\nsleep(1000);\n", false);
}

#[test]
fn ctrl_c_stops_a_wait_for_a_client_or_a_message() {
    interrupt_exits_130(
        "let s = listen();\nprint(\"started\");\ns.accept();\n",
        false,
    );
    interrupt_exits_130(
        "let s = listen();\nlet c = connect(s.port);\nlet d = s.accept();\nprint(\"started\");\nd.recv();\n",
        false,
    );
}

/// A script's socket talks to a program that is not Rhai: one JSON value per line, both ways;
/// a line that is not JSON is an error that shows it.
#[test]
fn a_socket_talks_json_lines_with_another_program() {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        &dir,
        "client.rhai",
        "let s = connect(parse_int(ARGS[0]));\n\
         s.send(#{ question: \"sum\", numbers: [1, 2, 3.5] });\n\
         print(s.recv());\n\
         print(s.recv());\n",
    );
    let child = Command::new(BIN)
        .arg("run")
        .arg(&path)
        .arg(&port)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let request: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        request,
        json!({"question": "sum", "numbers": [1, 2, 3.5]}),
        "{line}"
    );
    let mut writer = &stream;
    writer
        .write_all(b"{\"answer\": 6.5, \"exact\": true}\nnot json\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "#{\"answer\": 6.5, \"exact\": true}\n", "{stderr}");
    assert!(
        stderr.contains("recv: the other end sent a line that is not JSON")
            && stderr.contains("not json"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A terminal's Ctrl-C reaches the script, its workers and their fork server at once.
#[test]
fn ctrl_c_to_the_process_group_stops_a_script_waiting_for_its_processes() {
    interrupt_exits_130(
        "let p = spawn_process(|| sleep(1000));\nlet q = pool(2);\nq.map(|x| x, [1, 2]);\nprint(\"started\");\np.join();\n",
        true,
    );
}

#[test]
fn install_writes_a_complete_kernelspec() {
    let prefix = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["install", "--prefix"])
        .arg(prefix.path())
        .args(["--name", "rhai-test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dir = prefix.path().join("share/jupyter/kernels/rhai-test");
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("kernel.json")).unwrap()).unwrap();
    let exe = std::fs::canonicalize(BIN).unwrap();
    assert_eq!(spec["argv"][0], exe.to_string_lossy().as_ref());
    assert_eq!(spec["argv"][1], "kernel");
    assert_eq!(spec["argv"][3], "{connection_file}");
    assert_eq!(spec["display_name"], "Rhai");
    assert_eq!(spec["language"], "rhai");
    assert_eq!(spec["interrupt_mode"], "message");
    assert!(spec["kernel_protocol_version"]
        .as_str()
        .unwrap()
        .starts_with("5."));
    for logo in ["logo-32x32.png", "logo-64x64.png", "logo-svg.svg"] {
        assert!(
            std::fs::metadata(dir.join(logo)).unwrap().len() > 100,
            "{logo}"
        );
    }
    let png = std::fs::read(dir.join("logo-64x64.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn install_sys_prefix_needs_a_virtualenv() {
    let venv = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["install", "--sys-prefix"])
        .env("VIRTUAL_ENV", venv.path())
        .env_remove("CONDA_PREFIX")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(venv
        .path()
        .join("share/jupyter/kernels/rhai/kernel.json")
        .exists());
    let out = Command::new(BIN)
        .args(["install", "--sys-prefix"])
        .env_remove("VIRTUAL_ENV")
        .env_remove("CONDA_PREFIX")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("virtualenv"));
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("rhai-kernel {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["kernel", "install", "run"] {
        assert!(help.contains(command), "{help}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True while the process exists and is not a zombie.
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Kills the kernel a test started in the background if the test ends before it does.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if is_running(self.0) {
            // SAFETY: kill(2) on the pid of the kernel this test started.
            unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Sends `kernel_info_request` on the shell port of kernel `pid` until it answers (true),
/// or it exits or `timeout` passes (false).
fn kernel_answers(pid: u32, shell_port: u16, key: &str, timeout: Duration) -> bool {
    use rhai_kernel::protocol::message::Session;
    use rhai_kernel::protocol::{decode, encode, Signer};
    let ctx = zmq::Context::new();
    let shell = ctx.socket(zmq::DEALER).unwrap();
    shell.set_linger(0).unwrap();
    shell
        .connect(&format!("tcp://127.0.0.1:{shell_port}"))
        .unwrap();
    let signer = Signer::new(key);
    let session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        username: "test".into(),
    };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && is_running(pid) {
        let request = session.message("kernel_info_request", None, Vec::new(), json!({}));
        shell.send_multipart(encode(&request, &signer), 0).unwrap();
        // Asked again every second: a request sent before the kernel bound its port may
        // have been dropped.
        if shell.poll(zmq::POLLIN, 1000).unwrap() > 0 {
            let frames = shell.recv_multipart(0).unwrap();
            let reply = decode(frames, &signer).expect("a signed reply");
            return reply.msg_type() == "kernel_info_reply";
        }
    }
    false
}

#[test]
fn kernel_exits_when_its_launcher_dies() {
    let dir = tempfile::tempdir().unwrap();
    let connection = dir.path().join("kernel.json");
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    std::fs::write(
        &connection,
        json!({
            "transport": "tcp", "ip": "127.0.0.1", "key": "k", "signature_scheme": "hmac-sha256",
            "shell_port": ports[0], "iopub_port": ports[1], "stdin_port": ports[2],
            "control_port": ports[3], "hb_port": ports[4],
        })
        .to_string(),
    )
    .unwrap();
    // A launcher shell starts the kernel in the background, prints its pid and exits when
    // its stdin closes, like a console that is killed without shutting its kernel down.
    let mut launcher = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{BIN}' kernel --connection-file '{}' >/dev/null 2>&1 & echo $!; read line || true",
            connection.display()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pid_line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(launcher.stdout.take().unwrap()),
        &mut pid_line,
    )
    .unwrap();
    let pid: u32 = pid_line.trim().parse().unwrap();
    let _kernel = KillOnDrop(pid);
    // The kernel is up and serving before its launcher goes: a kernel that crashed at start
    // would also be gone by the end of the test, without having noticed anything.
    assert!(
        kernel_answers(pid, ports[0], "k", Duration::from_secs(30)),
        "the kernel did not answer kernel_info"
    );
    assert!(is_running(pid), "the kernel exited after kernel_info");
    drop(launcher.stdin.take());
    assert!(launcher.wait().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_running(pid) {
        if Instant::now() > deadline {
            panic!("the kernel outlived its launcher");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn play_reads_the_learners_choices_from_stdin_and_finds_a_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        &dir,
        "play.rhai",
        "fn two_locks() {\n    let a = lock();\n    let b = lock();\n\
         let t1 = spawn_thread(|| a.hold(|| b.hold(|| 1)));\n\
         let t2 = spawn_thread(|| b.hold(|| a.hold(|| 2)));\n\
         t1.join();\n    t2.join();\n    \"done\"\n}\n\
         let r = play(two_locks);\nprint(`${r.result} ${r.schedule}`);\n",
    );
    // main goes on twice; Thread-1 takes `a`; then Thread-2 (2) takes `b`; then Enter.
    let out = run_with_input(&path, b"\n\n\n2\n\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("2) Thread-2: acquire b"), "{stdout}");
    assert!(stdout.contains("Thread-2: blocked on a"), "{stdout}");
    assert!(
        stdout.contains("Result: deadlock. You broke it!"),
        "{stdout}"
    );
    assert!(stdout.ends_with("deadlock 00122\n"), "{stdout}");
}
