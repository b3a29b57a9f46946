//! The lines the cells' code writes: evcxr hands them over on two channels, which two
//! threads forward to the kernel (evcxr blocks until stdout is drained), watching stderr
//! for a panic of the cell's own code.

use crate::send;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use rhai_kernel::interpreter::rust_cells::protocol::Event;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// A panic of the cell's own code (on the child's main thread), seen on its stderr: `None`
/// while no panic was seen, the message lines once one was.
static PANIC: Mutex<Option<String>> = Mutex::new(None);
/// Whether the next stderr line is the message of a panic just announced.
static PANIC_MESSAGE_NEXT: AtomicBool = AtomicBool::new(false);
/// The pid of evcxr's child while a cell runs: its main thread, where evcxr runs the cell's
/// code, has this thread id.
pub(crate) static CHILD_PID: AtomicU32 = AtomicU32::new(0);

/// Forgets an earlier cell's panic (before a cell runs).
pub(crate) fn forget_panic() {
    *PANIC.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// The panic of the cell that just ran, if it panicked.
pub(crate) fn take_panic() -> Option<String> {
    PANIC.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// Whether a stderr line announces a panic of the cell's own code. Rust writes
/// `thread 'NAME' (TID) panicked at FILE:LINE:COL:`; the code of a cell runs in a library
/// with its own copy of std, which knows no thread names, so the thread id tells the cell's
/// main thread from threads the cell spawned (whose panics only fail their `join()`).
fn is_cell_panic(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("thread '") else {
        return false;
    };
    let Some((name, rest)) = rest.split_once("' ") else {
        return false;
    };
    if let Some(rest) = rest.strip_prefix('(') {
        let Some((tid, rest)) = rest.split_once(") ") else {
            return false;
        };
        let child = CHILD_PID.load(Ordering::SeqCst);
        return rest.starts_with("panicked at ") && child != 0 && tid.parse() == Ok(child);
    }
    name == "main" && rest.starts_with("panicked at ")
}

/// Notes a panic of the cell's code from one line of the child's stderr.
fn watch_for_panic(line: &str) {
    if is_cell_panic(line) {
        *PANIC.lock().unwrap_or_else(PoisonError::into_inner) = Some(String::new());
        PANIC_MESSAGE_NEXT.store(true, Ordering::SeqCst);
    } else if PANIC_MESSAGE_NEXT.swap(false, Ordering::SeqCst) {
        if let Some(message) = PANIC
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            message.push_str(line);
        }
    }
}

/// Forwards the lines of one of evcxr's output channels to the kernel. A flush request (an
/// acknowledgement sender) is answered once every line already queued has been sent.
pub(crate) fn drain(lines: Receiver<String>, stderr: bool) -> Sender<Sender<()>> {
    let (flush_tx, flush_rx) = unbounded::<Sender<()>>();
    let emit = move |line: String| {
        if stderr {
            watch_for_panic(&line);
        }
        send(&Event::Output { stderr, line });
    };
    let spawned = std::thread::Builder::new()
        .name(if stderr { "stderr" } else { "stdout" }.into())
        .spawn(move || loop {
            crossbeam_channel::select! {
                recv(lines) -> line => match line {
                    Ok(line) => emit(line),
                    Err(_) => return,
                },
                recv(flush_rx) -> ack => match ack {
                    Ok(ack) => {
                        while let Ok(line) = lines.try_recv() {
                            emit(line);
                        }
                        let _ = ack.send(());
                    }
                    Err(_) => return,
                },
            }
        });
    if let Err(e) = spawned {
        eprintln!("rhai-kernel-rust: cannot drain the cells' output: {e}");
    }
    flush_tx
}

/// Waits until the output queued so far has been sent.
pub(crate) fn flush(flushers: &[Sender<Sender<()>>]) {
    for flusher in flushers {
        let (ack, done) = bounded(1);
        if flusher.send(ack).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
    }
}
