//! The kernel core: binds the five channels, runs the heartbeat, IOPub, control and shell
//! threads, and routes interrupts. Language work is delegated to an [`Interpreter`].
//!
//! [`Interpreter`]: crate::interpreter::Interpreter

pub mod comms;
pub mod control;
pub mod debug;
pub mod heartbeat;
pub mod history;
pub mod info;
pub mod iopub;
pub mod shell;
pub mod sink;
pub mod stdin;
pub mod validate;
pub mod widgets;

use crate::interpreter::{engine::SCRIPT_STACK_SIZE, Interpreter, RhaiSession};
use crate::protocol::message::Session;
use crate::protocol::{ConnectionInfo, SeenSignatures, Signer};
use anyhow::Context as _;
use std::path::Path;
use std::sync::Arc;

/// Everything the request handlers of both the shell and the control thread share.
#[derive(Clone)]
pub struct KernelContext {
    pub session: Arc<Session>,
    pub signer: Signer,
    /// Signatures of the requests accepted so far, on any channel: a replay is dropped.
    pub seen: Arc<SeenSignatures>,
    pub iopub: iopub::Iopub,
    pub kernel_info: Arc<serde_json::Value>,
    /// Answers `debug_request`s from the session's debugger.
    pub debug: debug::DebugAdapter,
    /// The comms open with the frontend (widgets that cells showed).
    pub comms: comms::Comms,
}

/// Whether the linked libzmq can serve CurveZMQ (it needs a crypto library at build time).
pub fn curve_supported() -> bool {
    zmq::has("curve").unwrap_or(false)
}

fn bind(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    info: &ConnectionInfo,
    port: u16,
) -> anyhow::Result<zmq::Socket> {
    let socket = ctx.socket(kind)?;
    socket.set_linger(1000)?;
    if let Some(keys) = info.curve_keys()? {
        // Must be set before bind: the security mechanism is fixed per connection.
        socket.set_curve_server(true)?;
        socket.set_curve_publickey(keys.public.as_bytes())?;
        socket.set_curve_secretkey(keys.secret.as_bytes())?;
    }
    let endpoint = info.endpoint(port);
    let ipc_path = endpoint
        .strip_prefix("ipc://")
        .map(std::path::PathBuf::from);
    // An ipc socket is a file: only its owner may connect. The umask covers the moment
    // between bind and chmod (libzmq creates the file inside bind).
    // SAFETY: umask only swaps the process's file-creation mask.
    let old_mask = ipc_path.as_ref().map(|_| unsafe { libc::umask(0o077) });
    let bound = socket.bind(&endpoint);
    if let Some(mask) = old_mask {
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(mask) };
    }
    bound.with_context(|| format!("cannot bind {endpoint}"))?;
    if let Some(path) = ipc_path {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
    }
    Ok(socket)
}

/// Runs a kernel for the given connection file until a shutdown request arrives.
pub fn run(connection_file: &Path) -> anyhow::Result<()> {
    let info = ConnectionInfo::from_file(connection_file)?;
    if info.curve_keys()?.is_some() && !curve_supported() {
        // Serving in plain text what the client believes is encrypted is not an option.
        anyhow::bail!(
            "the connection file asks for CurveZMQ encryption, but this build's libzmq has \
             no CURVE support (see docs/hardening.md, \"Encryption\")"
        );
    }
    let zmq_ctx = zmq::Context::new();
    let shell_socket = bind(&zmq_ctx, zmq::ROUTER, &info, info.shell_port)?;
    let control_socket = bind(&zmq_ctx, zmq::ROUTER, &info, info.control_port)?;
    let stdin_socket = bind(&zmq_ctx, zmq::ROUTER, &info, info.stdin_port)?;
    let iopub_socket = bind(&zmq_ctx, zmq::XPUB, &info, info.iopub_port)?;
    // Every subscriber gets its own welcome, not only the first one to a topic.
    iopub_socket.set_xpub_verbose(true)?;
    let hb_socket = bind(&zmq_ctx, zmq::REP, &info, info.hb_port)?;

    let session = Arc::new(Session::new());
    let signer = Signer::new(&info.key);
    let iopub = iopub::Iopub::start(iopub_socket, session.clone(), signer.clone());
    heartbeat::start(hb_socket);
    route_sigint();
    exit_with_parent();

    let interpreter = RhaiSession::new();
    let kernel_info = Arc::new(info::kernel_info(&interpreter.language_info()));
    let seen = Arc::new(SeenSignatures::default());
    let debug = debug::DebugAdapter::new(interpreter.debugger(), iopub.clone());
    let ctx = KernelContext {
        session: session.clone(),
        signer: signer.clone(),
        seen: seen.clone(),
        iopub: iopub.clone(),
        kernel_info,
        debug,
        comms: comms::Comms::default(),
    };
    iopub.status("starting", None);

    control::start(control_socket, ctx.clone());
    let stdin = Arc::new(stdin::StdinChannel::new(
        stdin_socket,
        session,
        signer,
        seen,
    ));
    // Cells run on the shell thread, which gets a large stack for deep script recursion.
    let shell = std::thread::Builder::new()
        .name("shell".into())
        .stack_size(SCRIPT_STACK_SIZE)
        .spawn(move || shell::Shell::new(shell_socket, stdin, ctx, interpreter).serve())?;
    shell
        .join()
        .map_err(|_| anyhow::anyhow!("shell thread panicked"))?;
    Ok(())
}

/// SIGINT (for clients using `interrupt_mode: signal`) interrupts the running cell
/// instead of killing the kernel.
fn route_sigint() {
    match signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]) {
        Ok(mut signals) => {
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    for _ in signals.forever() {
                        crate::runtime::interrupt::request();
                    }
                })
                .ok();
        }
        Err(e) => eprintln!("[rhai-kernel] cannot handle SIGINT: {e}"),
    }
}

/// A kernel whose launcher died (a console killed, a test runner crashed) has nobody left
/// to shut it down: like ipykernel's parent poller, exit when the parent process changes.
fn exit_with_parent() {
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    if parent <= 1 {
        return; // started by init or a service manager: nothing to watch
    }
    std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(500));
            // SAFETY: as above.
            if unsafe { libc::getppid() } != parent {
                eprintln!("[rhai-kernel] parent process {parent} is gone; exiting");
                crate::runtime::interrupt::request();
                #[cfg(feature = "rust")]
                crate::interpreter::rust_cells::shutdown();
                crate::runtime::launch::kill_all();
                std::process::exit(0);
            }
        })
        .ok();
}

/// Ends the kernel process after the final messages have left.
pub fn exit_process(iopub: &iopub::Iopub, code: i32) -> ! {
    #[cfg(feature = "rust")]
    crate::interpreter::rust_cells::shutdown();
    crate::runtime::launch::kill_all();
    iopub.flush(std::time::Duration::from_secs(2));
    // ZeroMQ sends asynchronously; give its I/O thread a moment to put the last
    // replies on the wire before the process goes away.
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::process::exit(code)
}
