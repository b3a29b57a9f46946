//! `rhai-kernel run FILE [ARGS…]`: runs a script with the kernel's engine and natives,
//! printing to the terminal.

use crate::interpreter::engine::SCRIPT_STACK_SIZE;
use crate::interpreter::errors::render_for_terminal;
use crate::interpreter::RhaiSession;
use crate::runtime::sink::{self, InputError, MimeBundle, OutputSink, Stream};
use crate::runtime::{interrupt, launch, shutdown};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Exit status of a script stopped by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Output straight to the process's stdout and stderr.
pub struct TerminalSink;

impl OutputSink for TerminalSink {
    fn write(&self, stream: Stream, text: &str) {
        let _ = match stream {
            Stream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|_| out.flush())
            }
            Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }

    fn display(&self, bundle: MimeBundle, _display_id: Option<&str>, _update: bool) {
        let text = bundle
            .get("text/plain")
            .and_then(|v| v.as_str())
            .unwrap_or("<display>");
        self.write(Stream::Stdout, &format!("{text}\n"));
    }

    fn clear_output(&self, _wait: bool) {}

    fn read_input(&self, prompt: &str, _password: bool) -> Result<String, InputError> {
        self.write(Stream::Stdout, prompt);
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => Err(InputError::Closed),
            Ok(_) => {
                if interrupt::is_requested() {
                    return Err(InputError::Interrupted);
                }
                Ok(line.trim_end_matches(['\n', '\r']).to_string())
            }
        }
    }

    fn page(&self, text: &str) {
        self.write(Stream::Stdout, text);
    }
}

/// The names of the threads and processes running when the first Ctrl-C arrived: the
/// interrupt stops them, and the way out says so, once.
static STOPPED: Mutex<Option<(Vec<String>, Vec<String>)>> = Mutex::new(None);

fn report_stopped() {
    let stopped = STOPPED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((threads, processes)) = stopped {
        if let Some(line) = shutdown::describe_stopped(&threads, &processes) {
            eprintln!("{line}");
        }
    }
}

/// First Ctrl-C interrupts the script (which then exits with 130); if it has not stopped
/// two seconds later, or on a second Ctrl-C, the process exits at once.
fn handle_ctrl_c() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]) else {
        return;
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if interrupt::is_requested() {
                    report_stopped();
                    std::process::exit(EXIT_INTERRUPTED);
                }
                // Before the interrupt, which makes them finish.
                *STOPPED.lock().unwrap_or_else(|e| e.into_inner()) = Some(shutdown::running());
                interrupt::request();
                std::thread::spawn(|| {
                    std::thread::sleep(Duration::from_secs(2));
                    let _ = std::io::stdout().flush();
                    report_stopped();
                    std::process::exit(EXIT_INTERRUPTED);
                });
            }
        })
        .ok();
}

/// Runs a script file and returns the process exit code.
pub fn run_file(path: &Path, args: Vec<String>) -> i32 {
    let code = match std::fs::read_to_string(path) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rhai-kernel: cannot read {}: {e}", path.display());
            return 2;
        }
    };
    // A `#!` line lets scripts be made executable.
    let code = match code.strip_prefix("#!") {
        Some(rest) => format!("//{rest}"),
        None => code,
    };
    handle_ctrl_c();
    let source_name = path.display().to_string();
    let script_name = source_name.clone();
    let worker = std::thread::Builder::new()
        .name("script".into())
        .stack_size(SCRIPT_STACK_SIZE)
        .spawn(move || run_source(&code, &script_name, args));
    let mut code = match worker.map(|w| w.join()) {
        Ok(Ok(code)) => code,
        _ => {
            eprintln!("rhai-kernel: the script thread crashed");
            1
        }
    };
    // As Python does, even after an error: the threads and processes nobody joined (but
    // not daemons) finish their work before the program ends.
    if code != EXIT_INTERRUPTED && !shutdown::wait_for_non_daemons() {
        eprintln!("{source_name}: interrupted");
        code = EXIT_INTERRUPTED;
    }
    if code == EXIT_INTERRUPTED {
        report_stopped();
    }
    // Daemon processes (and the fork server) are stopped here rather than left to die
    // with this process.
    launch::kill_all();
    code
}

/// Runs source code as a script named `source_name`; returns the exit code.
pub fn run_source(code: &str, source_name: &str, args: Vec<String>) -> i32 {
    let mut session = RhaiSession::new();
    let args: rhai::Array = args.into_iter().map(rhai::Dynamic::from).collect();
    session.scope_mut().push_constant("ARGS", args);
    let outcome = sink::with_sink(Arc::new(TerminalSink), || session.run(code, source_name));
    let _ = std::io::stdout().flush();
    match outcome {
        Ok(_) => 0,
        Err(error) if error.is_interrupt() => {
            eprintln!("{source_name}: interrupted");
            EXIT_INTERRUPTED
        }
        Err(error) => {
            eprint!(
                "{}",
                render_for_terminal(&error, |name| session.source_text(name))
            );
            1
        }
    }
}
