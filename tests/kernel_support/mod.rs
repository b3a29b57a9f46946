//! Shared harness for the `kernel_*` integration tests: starts the real `rhai-kernel` binary on
//! free loopback ports and talks to it over ZeroMQ like a Jupyter client would.
#![allow(dead_code)] // each test binary uses a different part of the harness

use rhai_kernel::protocol::message::Session;
use rhai_kernel::protocol::{decode, encode, Message, Signer};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Default patience for anything the kernel should do "soon".
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The ports of one kernel, chosen by the OS.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub shell: u16,
    pub iopub: u16,
    pub stdin: u16,
    pub control: u16,
    pub hb: u16,
}

impl Ports {
    /// Five distinct free ports on 127.0.0.1 (all listeners are held until every port is
    /// chosen, so the five cannot collide with each other).
    pub fn pick() -> Ports {
        let listeners: Vec<TcpListener> = (0..5)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
            .collect();
        let p: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("local addr").port())
            .collect();
        Ports {
            shell: p[0],
            iopub: p[1],
            stdin: p[2],
            control: p[3],
            hb: p[4],
        }
    }
}

/// A random hex key for HMAC signing.
pub fn random_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A running kernel process plus connected client sockets. Dropping it kills the process.
pub struct Kernel {
    child: Child,
    exit_status: Option<ExitStatus>,
    pub ports: Ports,
    pub key: String,
    pub signer: Signer,
    /// The client's session (its id is also the shell/stdin socket identity).
    pub session: Session,
    pub shell: zmq::Socket,
    pub control: zmq::Socket,
    pub stdin: zmq::Socket,
    pub iopub: zmq::Socket,
    pub hb: zmq::Socket,
    /// Receives the stdin socket's handshake events; kept open so the monitor never blocks.
    stdin_monitor: zmq::Socket,
    /// IOPub messages received but not consumed yet.
    iopub_buf: VecDeque<Message>,
    /// Shell replies received but not consumed yet.
    shell_buf: VecDeque<Message>,
    /// Control replies received but not consumed yet.
    control_buf: VecDeque<Message>,
    stderr_file: tempfile::NamedTempFile,
    _connection_file: tempfile::NamedTempFile,
    _zmq: zmq::Context,
    /// Keeps an ipc kernel's socket directory alive as long as the kernel.
    _transport: Transport,
}

/// Everything one `execute_request` produced.
#[derive(Debug)]
pub struct Execution {
    pub request: Message,
    pub reply: Message,
    /// IOPub messages parented to the request, from `status: busy` to `status: idle`.
    pub iopub: Vec<Message>,
}

impl Execution {
    pub fn status(&self) -> &str {
        self.reply.content["status"].as_str().unwrap_or("<missing>")
    }

    pub fn execution_count(&self) -> i64 {
        self.reply.content["execution_count"]
            .as_i64()
            .expect("execution_count in execute_reply")
    }

    /// Concatenated text of the given stream (`stdout` or `stderr`).
    pub fn stream(&self, name: &str) -> String {
        stream_text(&self.iopub, name)
    }

    pub fn stdout(&self) -> String {
        self.stream("stdout")
    }

    /// The `text/plain` of the `execute_result`, if any.
    pub fn result(&self) -> Option<String> {
        self.iopub
            .iter()
            .find(|m| m.msg_type() == "execute_result")
            .map(|m| {
                m.content["data"]["text/plain"]
                    .as_str()
                    .expect("text/plain in execute_result")
                    .to_string()
            })
    }

    /// The content of the IOPub `error` message, if any.
    pub fn error(&self) -> Option<&Value> {
        self.iopub
            .iter()
            .find(|m| m.msg_type() == "error")
            .map(|m| &m.content)
    }

    pub fn msg_types(&self) -> Vec<String> {
        msg_types(&self.iopub)
    }
}

/// Concatenated text of all `stream` messages with the given name.
pub fn stream_text(messages: &[Message], name: &str) -> String {
    messages
        .iter()
        .filter(|m| m.msg_type() == "stream" && m.content["name"] == name)
        .map(|m| m.content["text"].as_str().unwrap_or_default())
        .collect()
}

/// The message types, with `status` messages spelled `status:<state>`.
pub fn msg_types(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            if m.msg_type() == "status" {
                format!(
                    "status:{}",
                    m.content["execution_state"].as_str().unwrap_or("?")
                )
            } else {
                m.msg_type().to_string()
            }
        })
        .collect()
}

/// The `msg_id` of a message's parent header ("" when there is none).
pub fn parent_id(msg: &Message) -> &str {
    msg.parent_header["msg_id"].as_str().unwrap_or("")
}

pub fn is_status(msg: &Message, state: &str) -> bool {
    msg.msg_type() == "status" && msg.content["execution_state"] == state
}

/// Content of an `execute_request` with the usual defaults.
pub fn execute_content(code: &str) -> Value {
    json!({
        "code": code,
        "silent": false,
        "store_history": true,
        "user_expressions": {},
        "allow_stdin": true,
        "stop_on_error": true,
    })
}

/// How the kernel's channels are reached: TCP on loopback, or Unix sockets whose paths
/// start with a prefix inside a private temporary directory.
pub enum Transport {
    Tcp,
    Ipc(tempfile::TempDir),
}

impl Transport {
    fn name(&self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ipc(_) => "ipc",
        }
    }

    /// The connection file's `ip` field: an address, or a path prefix for ipc.
    fn ip(&self) -> String {
        match self {
            Transport::Tcp => "127.0.0.1".into(),
            Transport::Ipc(dir) => dir.path().join("kernel").display().to_string(),
        }
    }

    fn endpoint(&self, port: u16) -> String {
        match self {
            Transport::Tcp => format!("tcp://127.0.0.1:{port}"),
            Transport::Ipc(_) => format!("ipc://{}-{port}", self.ip()),
        }
    }
}

fn client_socket(ctx: &zmq::Context, kind: zmq::SocketType, endpoint: &str) -> zmq::Socket {
    let socket = ctx.socket(kind).expect("create socket");
    socket.set_linger(0).expect("set linger");
    socket.connect(endpoint).expect("connect");
    socket
}

/// Waits up to `timeout` for a multipart message on `socket`.
pub fn recv_frames(socket: &zmq::Socket, timeout: Duration) -> Option<Vec<Vec<u8>>> {
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    match socket.poll(zmq::POLLIN, timeout_ms) {
        Ok(n) if n > 0 => Some(socket.recv_multipart(0).expect("recv_multipart")),
        Ok(_) => None,
        Err(e) => panic!("poll failed: {e}"),
    }
}

impl Kernel {
    /// Starts a kernel and waits until it answers on shell and publishes on IOPub.
    pub fn start() -> Kernel {
        Kernel::start_with(|| Transport::Tcp)
    }

    /// The ipc socket files of the kernel (none for tcp).
    pub fn ipc_socket_files(&self) -> Vec<std::path::PathBuf> {
        match &self._transport {
            Transport::Tcp => Vec::new(),
            Transport::Ipc(dir) => std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect(),
        }
    }

    /// Starts a kernel whose connection file says `transport: ipc`.
    pub fn start_ipc() -> Kernel {
        Kernel::start_with(|| Transport::Ipc(tempfile::tempdir().expect("temp dir")))
    }

    /// Starts a kernel with extra environment variables (e.g. lower limits).
    pub fn start_with_env(env: &[(&str, &str)]) -> Kernel {
        Kernel::start_full(|| Transport::Tcp, env)
    }

    fn start_with(transport: impl Fn() -> Transport) -> Kernel {
        Kernel::start_full(transport, &[])
    }

    fn start_full(transport: impl Fn() -> Transport, env: &[(&str, &str)]) -> Kernel {
        let mut last_error = String::new();
        // A port picked as free may be taken by someone else before the kernel binds it;
        // a kernel that exits during startup is retried on fresh ports.
        for _ in 0..3 {
            match Kernel::try_start(transport(), env) {
                Ok(kernel) => return kernel,
                Err(e) => last_error = e,
            }
        }
        panic!("kernel did not start: {last_error}");
    }

    fn try_start(transport: Transport, env: &[(&str, &str)]) -> Result<Kernel, String> {
        let ports = Ports::pick();
        let key = random_key();
        let connection = json!({
            "transport": transport.name(),
            "ip": transport.ip(),
            "shell_port": ports.shell,
            "iopub_port": ports.iopub,
            "stdin_port": ports.stdin,
            "control_port": ports.control,
            "hb_port": ports.hb,
            "key": key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": "rhai",
        });
        let connection_file = tempfile::Builder::new()
            .prefix("kernel-")
            .suffix(".json")
            .tempfile()
            .map_err(|e| e.to_string())?;
        std::fs::write(connection_file.path(), connection.to_string())
            .map_err(|e| e.to_string())?;
        let stderr_file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let stderr = stderr_file.reopen().map_err(|e| e.to_string())?;

        let mut command = Command::new(kernel_binary());
        command
            .arg("kernel")
            .arg("--connection-file")
            .arg(connection_file.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            // History in memory unless a test asks for a file: tests write nothing to HOME.
            .env("RHAI_KERNEL_HISTORY", "off")
            .envs(env.iter().copied());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt as _;
            // If the test process dies without running destructors, take the kernel along.
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = command.spawn().map_err(|e| e.to_string())?;

        let zmq_ctx = zmq::Context::new();
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            username: "test".into(),
        };
        let shell = zmq_ctx.socket(zmq::DEALER).expect("shell socket");
        shell.set_identity(session.id.as_bytes()).expect("identity");
        shell.set_linger(0).expect("linger");
        shell
            .connect(&transport.endpoint(ports.shell))
            .expect("connect shell");
        let stdin = zmq_ctx.socket(zmq::DEALER).expect("stdin socket");
        stdin.set_identity(session.id.as_bytes()).expect("identity");
        stdin.set_linger(0).expect("linger");
        // The kernel's stdin ROUTER silently drops an input_request for a client that is not
        // connected yet, and nothing on stdin answers us, so watch for the handshake.
        let monitor_endpoint = format!("inproc://stdin-monitor-{}", session.id);
        stdin
            .monitor(
                &monitor_endpoint,
                zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32,
            )
            .expect("monitor stdin");
        let stdin_monitor = zmq_ctx.socket(zmq::PAIR).expect("monitor socket");
        stdin_monitor
            .connect(&monitor_endpoint)
            .expect("connect monitor");
        stdin
            .connect(&transport.endpoint(ports.stdin))
            .expect("connect stdin");
        let control = client_socket(&zmq_ctx, zmq::DEALER, &transport.endpoint(ports.control));
        let iopub = client_socket(&zmq_ctx, zmq::SUB, &transport.endpoint(ports.iopub));
        iopub.set_subscribe(b"").expect("subscribe");
        let hb = client_socket(&zmq_ctx, zmq::REQ, &transport.endpoint(ports.hb));

        let mut kernel = Kernel {
            child,
            exit_status: None,
            ports,
            signer: Signer::new(&key),
            key,
            session,
            shell,
            control,
            stdin,
            iopub,
            hb,
            stdin_monitor,
            iopub_buf: VecDeque::new(),
            shell_buf: VecDeque::new(),
            control_buf: VecDeque::new(),
            stderr_file,
            _connection_file: connection_file,
            _transport: transport,
            _zmq: zmq_ctx,
        };
        kernel.wait_for_ready()?;
        if recv_frames(&kernel.stdin_monitor, TIMEOUT).is_none() {
            return Err(format!(
                "the stdin channel did not connect; stderr:\n{}",
                kernel.stderr_text()
            ));
        }
        Ok(kernel)
    }

    /// Like jupyter_client's `wait_for_ready`: repeats `kernel_info_request` until a reply
    /// arrives and IOPub has delivered a status message and this client's `iopub_welcome`
    /// (the SUB socket is then known to be connected), then consumes everything produced so
    /// far, so that no welcome turns up later among a test's messages.
    fn wait_for_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got_reply = false;
        let mut got_status = false;
        let mut got_welcome = false;
        while !(got_reply && got_status && got_welcome) {
            if Instant::now() > deadline {
                return Err(format!(
                    "no kernel_info_reply, IOPub status or iopub_welcome within 30 s; stderr:\n{}",
                    self.stderr_text()
                ));
            }
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "kernel exited during startup with {status}; stderr:\n{}",
                    self.stderr_text()
                ));
            }
            self.send_shell("kernel_info_request", json!({}));
            let round = Instant::now() + Duration::from_millis(200);
            while Instant::now() < round {
                if let Some(frames) = recv_frames(&self.shell, Duration::from_millis(50)) {
                    let msg = self.decode(frames);
                    got_reply |= msg.msg_type() == "kernel_info_reply";
                }
                while let Some(frames) = recv_frames(&self.iopub, Duration::ZERO) {
                    let msg = self.decode(frames);
                    got_status |= msg.msg_type() == "status";
                    got_welcome |= msg.msg_type() == "iopub_welcome";
                }
                if got_reply && got_status && got_welcome {
                    break;
                }
            }
        }
        // One more request: once its reply and its idle have arrived, everything caused by
        // the earlier ones has been received too (the shell handles requests in order).
        let last = self.send_shell("kernel_info_request", json!({}));
        self.shell_reply(&last);
        self.iopub_until_idle(&last);
        self.iopub_buf.clear();
        self.shell_buf.clear();
        Ok(())
    }

    /// Decodes and verifies a message from the kernel; a bad signature fails the test.
    pub fn decode(&self, frames: Vec<Vec<u8>>) -> Message {
        decode(frames, &self.signer).unwrap_or_else(|e| panic!("kernel sent a bad message: {e}"))
    }

    /// The kernel's standard error so far (its log).
    pub fn stderr_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = self.stderr_file.reopen() {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new signed request from this client's session.
    pub fn request(&self, msg_type: &str, content: Value) -> Message {
        self.session.message(msg_type, None, Vec::new(), content)
    }

    /// Sends already-built frames on a socket.
    pub fn send_frames(socket: &zmq::Socket, frames: Vec<Vec<u8>>) {
        socket.send_multipart(frames, 0).expect("send_multipart");
    }

    pub fn send(&self, socket: &zmq::Socket, msg: &Message) {
        Kernel::send_frames(socket, encode(msg, &self.signer));
    }

    /// Sends a new request on shell and returns it (for matching replies by parent).
    pub fn send_shell(&self, msg_type: &str, content: Value) -> Message {
        let msg = self.request(msg_type, content);
        self.send(&self.shell, &msg);
        msg
    }

    pub fn send_control(&self, msg_type: &str, content: Value) -> Message {
        let msg = self.request(msg_type, content);
        self.send(&self.control, &msg);
        msg
    }

    pub fn send_execute(&self, code: &str) -> Message {
        self.send_shell("execute_request", execute_content(code))
    }

    /// Next IOPub message (buffered first), waiting up to `timeout`.
    pub fn next_iopub(&mut self, timeout: Duration) -> Option<Message> {
        if let Some(msg) = self.iopub_buf.pop_front() {
            return Some(msg);
        }
        recv_frames(&self.iopub, timeout).map(|frames| self.decode(frames))
    }

    /// All IOPub messages that arrive within `duration` (including buffered ones).
    pub fn iopub_for(&mut self, duration: Duration) -> Vec<Message> {
        let deadline = Instant::now() + duration;
        let mut out: Vec<Message> = self.iopub_buf.drain(..).collect();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match recv_frames(&self.iopub, left) {
                Some(frames) => out.push(self.decode(frames)),
                None => return out,
            }
        }
    }

    /// Waits for an IOPub message parented to `request` matching `pred`; returns the
    /// messages with that parent received up to and including it. Messages with other
    /// parents stay buffered. Panics after [`TIMEOUT`].
    pub fn iopub_until(
        &mut self,
        request: &Message,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Vec<Message> {
        let id = request.header.msg_id.clone();
        let deadline = Instant::now() + timeout;
        let mut others = VecDeque::new();
        let mut mine = Vec::new();
        let mut buffered: VecDeque<Message> = self.iopub_buf.drain(..).collect();
        loop {
            let msg = match buffered.pop_front() {
                Some(msg) => msg,
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match recv_frames(&self.iopub, left) {
                        Some(frames) => self.decode(frames),
                        None => panic!(
                            "timed out waiting for IOPub message for {} ({}); got {:?}; \
                             kernel stderr:\n{}",
                            request.msg_type(),
                            id,
                            msg_types(&mine),
                            self.stderr_text()
                        ),
                    }
                }
            };
            if parent_id(&msg) == id {
                let done = pred(&msg);
                mine.push(msg);
                if done {
                    others.extend(buffered);
                    self.iopub_buf = others;
                    return mine;
                }
            } else {
                others.push_back(msg);
            }
        }
    }

    /// IOPub messages parented to `request`, up to and including its `status: idle`.
    pub fn iopub_until_idle(&mut self, request: &Message) -> Vec<Message> {
        self.iopub_until(request, TIMEOUT, |m| is_status(m, "idle"))
    }

    fn reply_on(&mut self, channel: &str, request: &Message, timeout: Duration) -> Option<Message> {
        let id = request.header.msg_id.clone();
        let buf = if channel == "shell" {
            &mut self.shell_buf
        } else {
            &mut self.control_buf
        };
        if let Some(at) = buf.iter().position(|m| parent_id(m) == id) {
            return buf.remove(at);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let socket = if channel == "shell" {
                &self.shell
            } else {
                &self.control
            };
            let msg = self.decode(recv_frames(socket, left)?);
            if parent_id(&msg) == id {
                return Some(msg);
            }
            if channel == "shell" {
                self.shell_buf.push_back(msg);
            } else {
                self.control_buf.push_back(msg);
            }
        }
    }

    /// The shell reply to `request`, within `timeout` (other replies stay buffered).
    pub fn try_shell_reply(&mut self, request: &Message, timeout: Duration) -> Option<Message> {
        self.reply_on("shell", request, timeout)
    }

    /// The shell reply to `request`; panics after [`TIMEOUT`].
    pub fn shell_reply(&mut self, request: &Message) -> Message {
        match self.try_shell_reply(request, TIMEOUT) {
            Some(msg) => msg,
            None => panic!(
                "no shell reply to {} within {TIMEOUT:?}; kernel stderr:\n{}",
                request.msg_type(),
                self.stderr_text()
            ),
        }
    }

    /// The control reply to `request`; panics after [`TIMEOUT`].
    pub fn control_reply(&mut self, request: &Message) -> Message {
        match self.reply_on("control", request, TIMEOUT) {
            Some(msg) => msg,
            None => panic!(
                "no control reply to {} within {TIMEOUT:?}; kernel stderr:\n{}",
                request.msg_type(),
                self.stderr_text()
            ),
        }
    }

    /// Everything the shell socket delivers within `duration` (including buffered replies).
    pub fn shell_for(&mut self, duration: Duration) -> Vec<Message> {
        let deadline = Instant::now() + duration;
        let mut out: Vec<Message> = self.shell_buf.drain(..).collect();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match recv_frames(&self.shell, left) {
                Some(frames) => out.push(self.decode(frames)),
                None => return out,
            }
        }
    }

    /// Collects the reply and IOPub output of an already-sent execute request.
    pub fn finish_execute(&mut self, request: Message) -> Execution {
        let iopub = self.iopub_until_idle(&request);
        let reply = self.shell_reply(&request);
        assert_eq!(reply.msg_type(), "execute_reply");
        Execution {
            request,
            reply,
            iopub,
        }
    }

    /// Runs a cell and waits for its reply and its `status: idle`.
    pub fn execute(&mut self, code: &str) -> Execution {
        let request = self.send_execute(code);
        self.finish_execute(request)
    }

    /// Runs a cell with a custom `execute_request` content.
    pub fn execute_with(&mut self, content: Value) -> Execution {
        let request = self.send_shell("execute_request", content);
        self.finish_execute(request)
    }

    /// Runs a cell that must succeed and returns its `text/plain` result.
    pub fn eval(&mut self, code: &str) -> String {
        let ex = self.execute(code);
        assert_eq!(
            ex.status(),
            "ok",
            "cell {code:?} failed: {:?}",
            ex.reply.content
        );
        ex.result()
            .unwrap_or_else(|| panic!("cell {code:?} produced no execute_result"))
    }

    /// Next message on the stdin channel, within `timeout`.
    pub fn next_stdin(&self, timeout: Duration) -> Option<Message> {
        recv_frames(&self.stdin, timeout).map(|frames| self.decode(frames))
    }

    /// Sends a heartbeat ping and waits for the echo.
    pub fn heartbeat(&self, payload: &[u8], timeout: Duration) -> Option<Vec<u8>> {
        self.hb.send(payload, 0).expect("heartbeat send");
        let frames = recv_frames(&self.hb, timeout)?;
        Some(frames.concat())
    }

    /// Waits up to `timeout` for the kernel process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit_status.is_some() {
            return self.exit_status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exit_status = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the kernel process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.exit_status.is_none() && self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends a signal to the kernel process.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with a pid of our own, still unreaped, child.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        if self.exit_status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every process, with the fields of its `/proc/<pid>/stat` after "pid (comm)": state,
/// ppid, pgrp, …
fn process_table() -> Vec<(u32, Vec<String>)> {
    let mut table = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let fields = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            table.push((pid, fields));
        }
    }
    table
}

/// Process ids of the children of `pid` (from /proc), zombies included.
pub fn children_of(pid: u32) -> Vec<u32> {
    let parent = pid.to_string();
    process_table()
        .into_iter()
        .filter(|(_, fields)| fields.get(1) == Some(&parent))
        .map(|(child, _)| child)
        .collect()
}

/// Live processes (not zombies) of process group `group`.
pub fn group_members(group: u32) -> Vec<u32> {
    let group = group.to_string();
    process_table()
        .into_iter()
        .filter(|(_, fields)| {
            fields.first().map(String::as_str) != Some("Z") && fields.get(2) == Some(&group)
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether `pid` is a fork server (a worker process forks its workers).
pub fn is_fork_server(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == b"--fork-server")
        })
        .unwrap_or(false)
}

/// The worker processes of a kernel: its children, except that a fork server counts by
/// the workers it forked rather than as one itself.
pub fn workers_of(kernel: u32) -> Vec<u32> {
    let mut workers = Vec::new();
    for child in children_of(kernel) {
        if is_fork_server(child) {
            workers.extend(children_of(child));
        } else {
            workers.push(child);
        }
    }
    workers
}

/// Every process below `pid`: children, grandchildren and so on.
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut found = children_of(pid);
    let mut next = 0;
    while next < found.len() {
        let more = children_of(found[next]);
        found.extend(more);
        next += 1;
    }
    found
}

/// How many file descriptors process `pid` has open (from /proc).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The environment variable naming another build of the binary to test (the Rust cells'
/// tests run the build with the `rust` feature, which `make` has built already).
pub const TEST_BINARY_ENV: &str = "RHAI_KERNEL_TEST_BINARY";

/// The binary the tests start: [`TEST_BINARY_ENV`] if set, else this build's.
pub fn kernel_binary() -> std::path::PathBuf {
    std::env::var_os(TEST_BINARY_ENV)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_rhai-kernel").into())
}
