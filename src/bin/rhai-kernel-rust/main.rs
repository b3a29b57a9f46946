//! `rhai-kernel-rust`: the Rust-cell evaluator. The kernel starts it with its first `%%rust`
//! cell and speaks to it in the messages of `interpreter::rust_cells::protocol`, one JSON
//! line each, on its stdin and stdout. It holds evcxr, which compiles each cell and runs it
//! in a child process of its own (this program again, turned into evcxr's runtime by
//! [`evcxr::runtime_hook`]; it is also evcxr's rustc wrapper).

mod evaluator;
mod outputs;

use rhai_kernel::interpreter::rust_cells::protocol::{Event, Request};
use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

/// Where events go: the stdout the kernel reads. Anything else this process or evcxr prints
/// goes to stderr (the kernel's log), so that it cannot break a message.
static EVENTS: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Sends one event to the kernel (nothing once the kernel is gone).
pub(crate) fn send(event: &Event) {
    let Ok(mut line) = serde_json::to_vec(event) else {
        return;
    };
    line.push(b'\n');
    if let Some(out) = EVENTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
}

fn main() {
    // In evcxr's child or as its rustc wrapper, this call never returns.
    evcxr::runtime_hook();
    // SAFETY: fds 1 and 2 are this process's own; `dup` returns a new fd that only the
    // `OwnedFd` made from it owns, and `dup2` makes fd 1 a copy of fd 2.
    let events = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            eprintln!("rhai-kernel-rust: cannot set up its output");
            std::process::exit(2);
        }
        OwnedFd::from_raw_fd(fd)
    };
    *EVENTS.lock().unwrap_or_else(PoisonError::into_inner) = Some(events.into());
    let (requests, incoming) = crossbeam_channel::unbounded::<Request>();
    let (inputs, typed) = crossbeam_channel::unbounded::<String>();
    // Requests are read on a thread of their own, so that a cell waiting for input gets
    // the line the kernel sends while evcxr runs.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Request>(&line) {
                Ok(Request::Input { text }) => {
                    let _ = inputs.send(text);
                }
                Ok(request) => {
                    if requests.send(request).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("rhai-kernel-rust: bad request ({e}): {line}"),
            }
        }
        // The kernel is gone or closed the pipe: the evaluator ends as on a shutdown.
        let _ = requests.send(Request::Shutdown);
    });
    // rust-analyzer (completions) recurses deeply.
    let serving = std::thread::Builder::new()
        .name("evaluator".into())
        .stack_size(64 << 20)
        .spawn(move || evaluator::serve(&incoming, &typed));
    match serving.map(|thread| thread.join()) {
        Ok(Ok(())) => {}
        Ok(Err(_)) => std::process::exit(1),
        Err(e) => {
            send(&Event::Started(Err(format!(
                "cannot start the Rust cell evaluator: {e}"
            ))));
            std::process::exit(1);
        }
    }
}
