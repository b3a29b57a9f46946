//! Sockets, the IPC of separate programs: `listen` and `connect` over TCP on 127.0.0.1,
//! carrying one JSON value per line, so a Rhai process, a thread or a program written in
//! another language (Python's `socket` and `json`) can be either end.
//!
//! Unlike queues and pipes, a socket lives in the kernel of the machine, not in the shared
//! memory: it carries data (numbers, strings, bools, `()`, arrays, maps), never a lock or a
//! function, and a process connects on its own rather than receiving a socket.

use crate::runtime::sched::{self, Action, Kind, Object, Op, Order};
use rhai::{Dynamic, EvalAltResult};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A line longer than this is refused: a peer that never sends a newline must not fill
/// the memory.
const MAX_LINE: usize = 64 << 20;

/// A listening socket (`listen`): `accept` gives one [`Socket`] per client.
#[derive(Clone)]
pub struct Listener {
    inner: Arc<ListenerInner>,
}

struct ListenerInner {
    socket: Mutex<Option<TcpListener>>,
    port: u16,
}

/// One end of a connection (`connect`, `accept`).
#[derive(Clone)]
pub struct Socket {
    inner: Arc<SocketInner>,
}

struct SocketInner {
    stream: TcpStream,
    peer: SocketAddr,
    /// What arrived but is not a whole line yet; one reader at a time.
    received: Mutex<Vec<u8>>,
    /// One writer at a time, so two threads' lines never interleave.
    sending: Mutex<()>,
}

type Failure = Box<EvalAltResult>;

/// Sockets are outside what the explorer schedules and what the race detector follows:
/// the other end may be another program. Refused there rather than giving an answer that
/// misses the socket's orders.
fn unobserved(what: &str) -> Result<(), Failure> {
    if sched::watching() {
        return Err(format!(
            "{what}: sockets cannot be used under explore, replay, play or check_races, which \
             cannot schedule or follow the other end of a connection; use a queue or a pipe \
             there"
        )
        .into());
    }
    Ok(())
}

fn io_error(what: &str, error: std::io::Error) -> Failure {
    format!("{what}: {error}").into()
}

/// Waits until `fd` is ready for `events` (POLLIN, POLLOUT) or `pause` passes.
fn wait_ready(fd: i32, events: libc::c_short, pause: Duration) {
    let mut entry = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let millis = pause.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: `entry` is one valid pollfd that outlives the call, and the count says one.
    unsafe { libc::poll(&mut entry, 1, millis) };
}

/// The object a socket's operations name, should anybody ask (never under a watcher: see
/// [`unobserved`]).
fn op(action: Action, fd: i32) -> Op {
    Op::new(action, Object::new(Kind::Pipe, fd as u64, 0), None)
}

impl Listener {
    fn bind(port: i64) -> Result<Listener, Failure> {
        unobserved("listen")?;
        let port = u16::try_from(port)
            .map_err(|_| format!("listen: a port is a number from 0 to 65535, not {port}"))?;
        let socket = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .map_err(|e| io_error(&format!("listen on port {port}"), e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| io_error("listen", e))?;
        let port = socket
            .local_addr()
            .map_err(|e| io_error("listen", e))?
            .port();
        Ok(Listener {
            inner: Arc::new(ListenerInner {
                socket: Mutex::new(Some(socket)),
                port,
            }),
        })
    }

    fn accept(&self, until: Option<Instant>) -> Result<Option<Socket>, Failure> {
        unobserved("accept")?;
        let guard = self.inner.socket.lock().unwrap_or_else(|e| e.into_inner());
        let Some(socket) = guard.as_ref() else {
            return Err("accept: the listener is closed".into());
        };
        let fd = socket.as_raw_fd();
        sched::wait(
            || op(Action::Get, fd),
            until,
            Order::ReadyFirst,
            || match socket.accept() {
                Ok((stream, peer)) => Socket::wrap(stream, peer).map(Some),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => Ok(None),
                Err(e) => Err(io_error("accept", e)),
            },
            |pause| wait_ready(fd, libc::POLLIN, pause),
            |_| String::new(),
        )
    }

    fn close(&self) {
        self.inner
            .socket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

impl Socket {
    fn connect(host: &str, port: i64) -> Result<Socket, Failure> {
        unobserved("connect")?;
        let what = format!("connect to {host}:{port}");
        let port = u16::try_from(port)
            .map_err(|_| format!("connect: a port is a number from 0 to 65535, not {port}"))?;
        let stream = TcpStream::connect((host, port)).map_err(|e| io_error(&what, e))?;
        let peer = stream.peer_addr().map_err(|e| io_error(&what, e))?;
        Socket::wrap(stream, peer)
    }

    fn wrap(stream: TcpStream, peer: SocketAddr) -> Result<Socket, Failure> {
        stream
            .set_nonblocking(true)
            .map_err(|e| io_error("socket", e))?;
        // Small messages go out at once rather than waiting to be joined (Nagle).
        let _ = stream.set_nodelay(true);
        Ok(Socket {
            inner: Arc::new(SocketInner {
                stream,
                peer,
                received: Mutex::new(Vec::new()),
                sending: Mutex::new(()),
            }),
        })
    }

    fn fd(&self) -> i32 {
        self.inner.stream.as_raw_fd()
    }

    fn send(&self, value: &Dynamic) -> Result<(), Failure> {
        unobserved("send")?;
        let mut line =
            serde_json::to_vec(&to_json(value, "send")?).map_err(|e| format!("send: {e}"))?;
        line.push(b'\n');
        let _one_writer = self.inner.sending.lock().unwrap_or_else(|e| e.into_inner());
        let fd = self.fd();
        let mut sent = 0;
        sched::wait(
            || op(Action::Put, fd),
            None,
            Order::ReadyFirst,
            || match (&self.inner.stream).write(&line[sent..]) {
                Ok(n) => {
                    sent += n;
                    Ok((sent == line.len()).then_some(()))
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    Ok(None)
                }
                Err(e) => Err(io_error("send", e)),
            },
            |pause| wait_ready(fd, libc::POLLOUT, pause),
            |_| String::new(),
        )?;
        Ok(())
    }

    /// Takes one whole line from what arrived, reading what the kernel has. `Ok(None)`:
    /// no whole line yet; an error when the other end closed with nothing left.
    fn take_line(&self, received: &mut Vec<u8>, what: &str) -> Result<Option<Vec<u8>>, Failure> {
        loop {
            if let Some(end) = received.iter().position(|&b| b == b'\n') {
                let line = received.drain(..=end).collect();
                return Ok(Some(line));
            }
            let mut chunk = [0u8; 64 * 1024];
            match (&self.inner.stream).read(&mut chunk) {
                Ok(0) if received.is_empty() => {
                    return Err(format!("{what}: the other end closed the connection").into())
                }
                Ok(0) => {
                    return Err(format!(
                        "{what}: the other end closed the connection in the middle of a \
                         message ({} bytes without a newline)",
                        received.len()
                    )
                    .into())
                }
                Ok(n) => {
                    received.extend_from_slice(&chunk[..n]);
                    if received.len() > MAX_LINE {
                        received.clear();
                        return Err(format!(
                            "{what}: a message longer than {} MiB without a newline",
                            MAX_LINE >> 20
                        )
                        .into());
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    return Ok(None)
                }
                Err(e) => return Err(io_error(what, e)),
            }
        }
    }

    fn recv(&self, until: Option<Instant>) -> Result<Option<Dynamic>, Failure> {
        unobserved("recv")?;
        let mut received = self
            .inner
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let fd = self.fd();
        let line = sched::wait(
            || op(Action::Get, fd),
            until,
            Order::ReadyFirst,
            || self.take_line(&mut received, "recv"),
            |pause| wait_ready(fd, libc::POLLIN, pause),
            |_| String::new(),
        )?;
        line.map(|line| {
            let value: serde_json::Value = serde_json::from_slice(&line).map_err(|e| {
                format!(
                    "recv: the other end sent a line that is not JSON ({e}): {}",
                    String::from_utf8_lossy(&line).trim_end()
                )
            })?;
            Ok(from_json(value))
        })
        .transpose()
    }

    /// Whether a whole message is there to `recv`, waiting until `until`. A closed
    /// connection counts as ready, as in Python: `recv` then says it is closed.
    fn poll(&self, until: Option<Instant>) -> Result<bool, Failure> {
        unobserved("poll")?;
        let mut received = self
            .inner
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let fd = self.fd();
        let ready = sched::wait(
            || op(Action::Get, fd),
            until,
            Order::ReadyFirst,
            || match self.take_line(&mut received, "poll") {
                Ok(Some(mut line)) => {
                    // Put it back in front: poll only looks.
                    line.append(&mut received);
                    *received = line;
                    Ok(Some(()))
                }
                Ok(None) => Ok(None),
                Err(_) => Ok(Some(())),
            },
            |pause| wait_ready(fd, libc::POLLIN, pause),
            |_| String::new(),
        )?;
        Ok(ready.is_some())
    }

    fn close(&self) {
        let _ = self.inner.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A script value as JSON: data only, with an error that says what cannot travel.
fn to_json(value: &Dynamic, what: &str) -> Result<serde_json::Value, Failure> {
    use serde_json::Value;
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| {
                format!("{what}: {f} cannot be sent over a socket (JSON has no NaN or infinity)")
                    .into()
            });
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if value.is_string() {
        return Ok(Value::String(value.to_string()));
    }
    if value.is_blob() {
        let blob = value.read_lock::<rhai::Blob>().map(|b| b.clone());
        return Ok(Value::from(blob.unwrap_or_default()));
    }
    if value.is_array() {
        let items = value.read_lock::<rhai::Array>().map(|a| a.clone());
        return items
            .unwrap_or_default()
            .iter()
            .map(|item| to_json(item, what))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if value.is_map() {
        let map = value.read_lock::<rhai::Map>().map(|m| m.clone());
        let mut object = serde_json::Map::new();
        for (key, item) in map.unwrap_or_default() {
            object.insert(key.to_string(), to_json(&item, what)?);
        }
        return Ok(Value::Object(object));
    }
    Err(format!(
        "{what}: a {} cannot be sent over a socket, which carries data (numbers, strings, \
         bools, (), arrays and maps); send locks, values and functions through a queue or a \
         pipe, or as arguments of spawn_process",
        crate::runtime::engines::script_type_name(value)
    )
    .into())
}

/// JSON as a script value: integers as ints, other numbers as floats, `null` as `()`.
fn from_json(value: serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        Value::String(s) => s.into(),
        Value::Array(items) => items
            .into_iter()
            .map(from_json)
            .collect::<rhai::Array>()
            .into(),
        Value::Object(object) => object
            .into_iter()
            .map(|(k, v)| (k.into(), from_json(v)))
            .collect::<rhai::Map>()
            .into(),
    }
}

#[rhai::export_module]
pub mod socket_api {
    use crate::runtime::time::deadline;
    use rhai::plugin::*;

    pub type Listener = super::Listener;
    pub type Socket = super::Socket;

    /// Listens for connections on a free TCP port of 127.0.0.1 (this machine only); its
    /// `port` says which, for `connect(port)`. Python: `socket.create_server(("127.0.0.1", 0))`.
    /// A socket carries one JSON value per line: numbers, strings, bools, `()`, arrays, maps.
    #[rhai_fn(return_raw)]
    pub fn listen() -> Result<Listener, Box<EvalAltResult>> {
        Listener::bind(0)
    }

    /// Listens for connections on TCP `port` of 127.0.0.1 (0: a free one).
    #[rhai_fn(name = "listen", return_raw)]
    pub fn listen_on(port: i64) -> Result<Listener, Box<EvalAltResult>> {
        Listener::bind(port)
    }

    /// The TCP port the listener listens on.
    #[rhai_fn(get = "port", pure)]
    pub fn port(listener: &mut Listener) -> i64 {
        listener.inner.port.into()
    }

    /// Waits for the next client and returns its connection, a `Socket`. Interruptible.
    #[rhai_fn(name = "accept", return_raw, pure)]
    pub fn accept(listener: &mut Listener) -> Result<Socket, Box<EvalAltResult>> {
        listener
            .accept(None)?
            .ok_or_else(|| "accept: no client".into())
    }

    /// Waits at most `timeout` seconds (int or float) for the next client: its `Socket`,
    /// or `()` if none came.
    #[rhai_fn(name = "accept", return_raw, pure)]
    pub fn accept_timeout(
        listener: &mut Listener,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let until = deadline(&timeout, "accept")?;
        Ok(listener.accept(until)?.map_or(Dynamic::UNIT, Dynamic::from))
    }

    /// Stops listening: clients can no longer connect.
    #[rhai_fn(name = "close", pure)]
    pub fn close_listener(listener: &mut Listener) {
        listener.close();
    }

    /// Connects to TCP `port` on this machine (127.0.0.1), where `listen` waits.
    #[rhai_fn(return_raw)]
    pub fn connect(port: i64) -> Result<Socket, Box<EvalAltResult>> {
        Socket::connect("127.0.0.1", port)
    }

    /// Connects to TCP `port` of `host` (a name or an address).
    #[rhai_fn(name = "connect", return_raw)]
    pub fn connect_to(host: &str, port: i64) -> Result<Socket, Box<EvalAltResult>> {
        Socket::connect(host, port)
    }

    /// Sends `x` to the other end as one line of JSON: numbers, strings, bools, `()`,
    /// arrays and maps (a lock, a value or a function cannot travel over a socket).
    #[rhai_fn(name = "send", return_raw, pure)]
    pub fn send(socket: &mut Socket, x: Dynamic) -> Result<(), Box<EvalAltResult>> {
        socket.send(&x)
    }

    /// Receives the next value from the other end, waiting for it. Interruptible; throws
    /// when the other end closed the connection.
    #[rhai_fn(name = "recv", return_raw, pure)]
    pub fn recv(socket: &mut Socket) -> Result<Dynamic, Box<EvalAltResult>> {
        socket
            .recv(None)?
            .ok_or_else(|| "recv: nothing received".into())
    }

    /// Whether a value is ready to `recv` (or the other end closed), waiting at most
    /// `timeout` seconds (int or float).
    #[rhai_fn(name = "poll", return_raw, pure)]
    pub fn poll(socket: &mut Socket, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        socket.poll(deadline(&timeout, "poll")?)
    }

    /// Whether a value is ready to `recv` now.
    #[rhai_fn(name = "poll", return_raw, pure)]
    pub fn poll_now(socket: &mut Socket) -> Result<bool, Box<EvalAltResult>> {
        socket.poll(Some(std::time::Instant::now()))
    }

    /// The address of the other end, as `"127.0.0.1:54321"`.
    #[rhai_fn(get = "peer", pure)]
    pub fn peer(socket: &mut Socket) -> String {
        socket.inner.peer.to_string()
    }

    /// Closes the connection both ways: the other end's `recv` fails once it has read
    /// what was sent.
    #[rhai_fn(name = "close", pure)]
    pub fn close_socket(socket: &mut Socket) {
        socket.close();
    }

    /// Shows a listener as `<Listener 127.0.0.1:PORT>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn listener_to_string(listener: &mut Listener) -> String {
        format!("<Listener 127.0.0.1:{}>", listener.inner.port)
    }

    /// Shows a socket as `<Socket to ADDRESS>`.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn socket_to_string(socket: &mut Socket) -> String {
        format!("<Socket to {}>", socket.inner.peer)
    }
}
