//! The fork server's own side, the hidden `rhai-kernel worker --fork-server` mode: a
//! single-threaded process that builds a worker's engine once, then forks a worker for
//! every request on its stdin (a socket from the parent, see `workers::fork_server`), reaps
//! them and reports how each one ended (see `protocol::ServerReport`). Forking is safe
//! here, unlike in the kernel, because this process never starts a thread.

use super::{serve_jobs, NewEngine, WorkerRuntime};
use crate::runtime::launch::{self, Role};
use crate::runtime::worker_process::exit_code;
use crate::runtime::workers::protocol::{ServerReport, DATAGRAM_LEN};
use std::os::fd::RawFd;
use std::os::unix::process::ExitStatusExt;

const SOCKET: RawFd = libc::STDIN_FILENO;

/// Serves spawn requests until the parent closes the socket. In a forked worker this
/// returns the worker's own exit code.
pub fn run_fork_server(new_engine: NewEngine) -> i32 {
    launch::set_role(Role::Worker);
    // Ctrl-C under `rhai-kernel run` reaches the whole process group: the server is not
    // interrupted, only the workers it forked (which set up their own handling).
    // SAFETY: ignoring a signal has no preconditions.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let Some((signals, old_mask)) = child_signals() else {
        return 1;
    };
    let mut runtime = WorkerRuntime::new(new_engine);
    runtime.warm_up();
    let mut runtime = Some(runtime);
    // SAFETY: getpid/getppid have no preconditions.
    let server = unsafe { libc::getpid() };
    let mut polled = [
        libc::pollfd {
            fd: SOCKET,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: signals,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfds.
        if unsafe { libc::poll(polled.as_mut_ptr(), 2, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return 1;
        }
        if polled[1].revents != 0 {
            drain(signals);
            reap_children();
        }
        if polled[0].revents == 0 {
            continue;
        }
        let Some(fds) = receive_request() else {
            return 0; // the parent is gone or closed the socket
        };
        // SAFETY: this process has one thread, so the child is a complete copy.
        match unsafe { libc::fork() } {
            0 => {
                become_worker(fds, signals, &old_mask, server);
                return match runtime.take() {
                    Some(runtime) => serve_jobs(runtime),
                    None => 1,
                };
            }
            pid if pid > 0 => {
                close_all(&fds);
                report(ServerReport::Started { pid });
            }
            _ => {
                let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                close_all(&fds);
                report(ServerReport::Failed { errno });
            }
        }
    }
}

/// Blocks SIGCHLD and returns a descriptor that becomes readable when a child ends, with
/// the signal mask to restore in forked workers.
fn child_signals() -> Option<(RawFd, libc::sigset_t)> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset; results are checked.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGCHLD);
        if libc::sigprocmask(libc::SIG_BLOCK, &mask, &mut old) != 0 {
            return None;
        }
        let fd = libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        (fd >= 0).then_some((fd, old))
    }
}

fn drain(signals: RawFd) {
    let mut buffer = [0u8; 1024];
    // SAFETY: reading into a local buffer from a non-blocking descriptor we own.
    while unsafe { libc::read(signals, buffer.as_mut_ptr().cast(), buffer.len()) } > 0 {}
}

/// Reaps every ended child and reports its exit code (minus the signal when killed).
fn reap_children() {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own children without blocking.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        let code = exit_code(std::process::ExitStatus::from_raw(status));
        report(ServerReport::Ended { pid, code });
    }
}

fn report(report: ServerReport) {
    let message = report.encode();
    // SAFETY: sending a local buffer on our socket. A parent that is gone is noticed by
    // the next receive.
    unsafe {
        libc::send(
            SOCKET,
            message.as_ptr().cast(),
            message.len(),
            libc::MSG_NOSIGNAL,
        )
    };
}

/// Receives one request: the worker's job pipe (read end) and event pipe (write end).
fn receive_request() -> Option<[RawFd; 2]> {
    let mut payload = [0u8; DATAGRAM_LEN];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    let fds_len = std::mem::size_of::<[RawFd; 2]>() as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fds_len) } as usize;
    let mut control = vec![0u8; space];
    loop {
        // SAFETY: a zeroed msghdr is valid; it points at live local buffers.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = space as _;
        // SAFETY: as above.
        let n = unsafe { libc::recvmsg(SOCKET, &mut message, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n != DATAGRAM_LEN as isize {
            return None;
        }
        // SAFETY: the kernel filled the control buffer; the header is checked before use.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&message);
            if header.is_null()
                || (*header).cmsg_level != libc::SOL_SOCKET
                || (*header).cmsg_type != libc::SCM_RIGHTS
                || (*header).cmsg_len as usize != libc::CMSG_LEN(fds_len) as usize
            {
                return None;
            }
            let mut fds = [0 as RawFd; 2];
            std::ptr::copy_nonoverlapping(libc::CMSG_DATA(header).cast(), fds.as_mut_ptr(), 2);
            return Some(fds);
        }
    }
}

fn close_all(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: closing descriptors received for a child, now passed on.
        unsafe { libc::close(fd) };
    }
}

/// In the forked child: take the pipes as stdin and stdout, drop the server's
/// descriptors and signal handling, and die with the server.
fn become_worker(fds: [RawFd; 2], signals: RawFd, old_mask: &libc::sigset_t, server: i32) {
    // SAFETY: plain descriptor and signal calls in a single-threaded child.
    unsafe {
        libc::close(signals);
        libc::dup2(fds[0], libc::STDIN_FILENO); // also closes the server's socket
        libc::dup2(fds[1], libc::STDOUT_FILENO);
        close_all(&fds);
        libc::sigprocmask(libc::SIG_SETMASK, old_mask, std::ptr::null_mut());
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // The server may have died before the line above: then nobody would stop us.
        if libc::getppid() != server {
            libc::_exit(1);
        }
    }
}
