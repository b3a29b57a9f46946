//! The parent's side of the fork server: one small single-threaded worker process,
//! started on the first need, that has already loaded this program and built a worker's
//! engine, and forks a copy of itself for every new worker. Starting a worker then costs
//! a fork of a small process instead of executing the program and building an engine,
//! while the kernel itself (many threads) is still never forked.
//!
//! Requests and replies travel over a `SOCK_SEQPACKET` socket pair (see `protocol`): a
//! request carries the worker's two pipe ends as `SCM_RIGHTS`; the server answers with the
//! new pid, and later reports each worker's exit status, because the workers are its
//! children. The server's own side is `child::fork_server`.

use crate::runtime::launch;
use crate::runtime::worker_process::{ExitSlot, WorkerProcess};
use crate::runtime::workers::protocol::{ServerReport, DATAGRAM_LEN, FORK_REQUEST};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Set to `off` to start every worker by executing the program (slower, but each worker
/// starts from a clean process image).
pub const ENV: &str = "RHAI_KERNEL_FORK_SERVER";

fn enabled() -> bool {
    !std::env::var(ENV).is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"))
}

/// A running fork server as the parent holds it.
struct Connection {
    socket: Arc<OwnedFd>,
    /// Answers to spawn requests, in order: the new worker's pid and exit slot.
    started: crossbeam_channel::Receiver<Result<(i32, Arc<ExitSlot>), String>>,
    server: Arc<Mutex<Child>>,
}

/// The current fork server, started on the first request; `None` after it died.
static SERVER: Mutex<Option<Connection>> = Mutex::new(None);

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn pipe() -> Result<(File, File), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors; the result is checked.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe"));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { Ok((File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))) }
}

fn start_server() -> Result<Connection, String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: as in `pipe`.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(os_error("socketpair"));
    }
    // SAFETY: just created, owned here.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut command = launch::worker_command()?;
    command
        .arg("--fork-server")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null());
    let server =
        launch::spawn_command(command).map_err(|e| format!("cannot start the fork server: {e}"))?;
    let socket = Arc::new(ours);
    let server = Arc::new(Mutex::new(server));
    let (tx, rx) = crossbeam_channel::unbounded();
    let (reader_socket, reader_server) = (socket.clone(), server.clone());
    std::thread::Builder::new()
        .name("fork-server".into())
        .spawn(move || read_reports(&reader_socket, &reader_server, &tx))
        .map_err(|e| format!("cannot start the fork server's reader: {e}"))?;
    Ok(Connection {
        socket,
        started: rx,
        server,
    })
}

/// Delivers the server's messages until it closes: new pids to the requester, exit codes
/// to the workers' slots. When the server is gone, so are its workers (they die with it).
fn read_reports(
    socket: &OwnedFd,
    server: &Mutex<Child>,
    started: &crossbeam_channel::Sender<Result<(i32, Arc<ExitSlot>), String>>,
) {
    let mut slots: HashMap<i32, Arc<ExitSlot>> = HashMap::new();
    loop {
        let mut bytes = [0u8; DATAGRAM_LEN];
        // SAFETY: reading into a buffer of the given length from a socket we own.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                bytes.as_mut_ptr().cast(),
                DATAGRAM_LEN,
                0,
            )
        };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n != DATAGRAM_LEN as isize {
            break;
        }
        match ServerReport::decode(&bytes) {
            Some(ServerReport::Started { pid }) => {
                let slot = Arc::new(ExitSlot::default());
                slots.insert(pid, slot.clone());
                let _ = started.send(Ok((pid, slot)));
            }
            Some(ServerReport::Ended { pid, code }) => {
                if let Some(slot) = slots.remove(&pid) {
                    slot.set(code);
                }
            }
            Some(ServerReport::Failed { errno }) => {
                let error = std::io::Error::from_raw_os_error(errno);
                let _ = started.send(Err(format!("fork failed: {error}")));
            }
            None => {}
        }
    }
    // The server's workers get SIGKILL when it ends (their parent-death signal).
    for slot in slots.values() {
        slot.set(-i64::from(libc::SIGKILL));
    }
    let _ = server.lock().unwrap_or_else(|e| e.into_inner()).wait();
}

/// Sends the worker's pipe ends to the server.
fn send_request(socket: &OwnedFd, fds: [RawFd; 2]) -> Result<(), String> {
    let payload = FORK_REQUEST;
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let fds_len = std::mem::size_of::<[RawFd; 2]>() as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fds_len) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: a zeroed msghdr is valid; its pointers are set to live buffers below.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space as _;
    // SAFETY: the control buffer has room for one header with two descriptors.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        if header.is_null() {
            return Err("no room for the descriptors".into());
        }
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(fds_len) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(header).cast(), 2);
    }
    loop {
        // SAFETY: `message` points at live buffers for the whole call.
        let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &message, libc::MSG_NOSIGNAL) };
        if sent == payload.len() as isize {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if sent < 0 && error.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return Err(format!("the fork server is gone: {error}"));
    }
}

/// How long a healthy server takes at most to answer (it only forks).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a worker by asking the fork server (started now if need be) to fork one.
/// An error means the caller should start the worker by executing the program.
pub fn start_worker() -> Result<WorkerProcess, String> {
    if !enabled() {
        return Err(format!("{ENV} is off"));
    }
    let mut server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    // A server that died since the last request is replaced once.
    let mut attempts = 2;
    loop {
        attempts -= 1;
        if server.is_none() {
            *server = Some(start_server()?);
        }
        let connection = server.as_ref().ok_or("no fork server")?;
        match request(connection) {
            Ok(Ok(worker)) => return Ok(worker),
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                if let Some(connection) = server.take() {
                    stop_connection(connection);
                }
                if attempts == 0 {
                    return Err(e);
                }
            }
        }
    }
}

/// One spawn request: `Err` when the server is broken, `Ok(Err)` when it could not fork.
fn request(connection: &Connection) -> Result<Result<WorkerProcess, String>, String> {
    // Running out of descriptors is not the server's fault: no restart for that.
    let (job_reader, job_writer, event_reader, event_writer) = match (pipe(), pipe()) {
        (Ok((a, b)), Ok((c, d))) => (a, b, c, d),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    send_request(
        &connection.socket,
        [job_reader.as_raw_fd(), event_writer.as_raw_fd()],
    )?;
    // The server has its own copies now; the worker must hold the only write end of its
    // event pipe, so that its end is seen as end of file here.
    drop((job_reader, event_writer));
    let reply = connection
        .started
        .recv_timeout(REPLY_TIMEOUT)
        .map_err(|_| "the fork server did not answer".to_string())?;
    Ok(reply.map(|(pid, slot)| WorkerProcess::forked(pid, job_writer, event_reader, slot)))
}

fn stop_connection(connection: Connection) {
    let mut child = connection.server.lock().unwrap_or_else(|e| e.into_inner());
    let _ = child.kill();
    let _ = child.wait();
}

/// Stops the fork server (its workers die with it); the next request starts a new one.
pub fn stop() {
    let connection = SERVER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(connection) = connection {
        stop_connection(connection);
    }
}
