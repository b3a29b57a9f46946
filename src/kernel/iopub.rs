//! The IOPub publisher: one thread owns the XPUB socket; everyone else sends it events.
//! Small stream writes are batched (like ipykernel's IOPub thread) so that thousands of
//! `print`s arrive as a few messages, while order with other messages is preserved.
//!
//! The socket is an XPUB rather than a PUB so that the kernel sees each new subscription
//! and answers it with an `iopub_welcome` message (as ipykernel 7 does): a client then
//! knows that its subscription is live and that it will miss nothing from here on, instead
//! of probing with `kernel_info_request` until some status message happens to arrive.

use crate::protocol::message::Session;
use crate::protocol::{encode, Message, Signer};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long stream text may wait for more text before it is sent.
const STREAM_FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Stream text is sent at once when a batch grows past this many bytes.
const STREAM_BATCH_LIMIT: usize = 256 * 1024;
/// How often the publisher looks for new subscriptions while it has nothing to send (the
/// socket cannot wake the thread up, as it waits on the event channel).
const SUBSCRIPTION_POLL: Duration = Duration::from_millis(20);
/// Subscription messages handled per look, so that a flood of them cannot hold up output.
const SUBSCRIPTIONS_PER_POLL: usize = 64;

enum Event {
    Message(Box<Message>),
    Stream {
        parent: Arc<Value>,
        name: &'static str,
        text: String,
    },
    Flush(Sender<()>),
}

/// A cheap, cloneable handle to the IOPub thread.
#[derive(Clone)]
pub struct Iopub {
    tx: Sender<Event>,
    session: Arc<Session>,
}

impl Iopub {
    /// Starts the publisher thread on an already-bound XPUB socket (a PUB socket works too,
    /// without welcome messages).
    pub fn start(socket: zmq::Socket, session: Arc<Session>, signer: Signer) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread_session = session.clone();
        std::thread::Builder::new()
            .name("iopub".into())
            .spawn(move || publish_loop(socket, rx, thread_session, signer))
            .ok();
        Iopub { tx, session }
    }

    /// Publishes a message with the given parent.
    pub fn send(&self, msg_type: &str, parent: Option<&Message>, content: Value) {
        let msg = self.session.message(
            msg_type,
            parent,
            vec![msg_type.as_bytes().to_vec()],
            content,
        );
        let _ = self.tx.send(Event::Message(Box::new(msg)));
    }

    /// Publishes a message whose parent header is given as JSON.
    pub fn send_with_parent_header(&self, msg_type: &str, parent_header: &Value, content: Value) {
        let mut msg =
            self.session
                .message(msg_type, None, vec![msg_type.as_bytes().to_vec()], content);
        msg.parent_header = parent_header.clone();
        let _ = self.tx.send(Event::Message(Box::new(msg)));
    }

    /// Publishes a message with a parent header and metadata of its own (comm messages
    /// carry the widget protocol's version there).
    pub fn send_with_metadata(
        &self,
        msg_type: &str,
        parent_header: &Value,
        content: Value,
        metadata: Value,
    ) {
        let mut msg =
            self.session
                .message(msg_type, None, vec![msg_type.as_bytes().to_vec()], content);
        msg.parent_header = parent_header.clone();
        msg.metadata = metadata;
        let _ = self.tx.send(Event::Message(Box::new(msg)));
    }

    pub fn status(&self, state: &str, parent: Option<&Message>) {
        self.send("status", parent, json!({ "execution_state": state }));
    }

    /// Queues stream text; it is merged with neighbouring writes to the same stream.
    pub fn stream(&self, parent: Arc<Value>, name: &'static str, text: &str) {
        let _ = self.tx.send(Event::Stream {
            parent,
            name,
            text: text.to_string(),
        });
    }

    /// Waits (up to `timeout`) until everything queued so far has been handed to ZeroMQ.
    pub fn flush(&self, timeout: Duration) {
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        if self.tx.send(Event::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(timeout);
        }
    }
}

struct PendingStream {
    parent: Arc<Value>,
    name: &'static str,
    text: String,
    deadline: Instant,
}

fn publish_loop(socket: zmq::Socket, rx: Receiver<Event>, session: Arc<Session>, signer: Signer) {
    let xpub = matches!(socket.get_socket_type(), Ok(zmq::XPUB));
    let send_now = |msg: &Message| {
        if let Err(e) = socket.send_multipart(encode(msg, &signer), 0) {
            eprintln!("[rhai-kernel] iopub send failed: {e}");
        }
    };
    let welcome_new_subscribers = || {
        if !xpub {
            return;
        }
        for topic in new_subscriptions(&socket) {
            let welcome = session.message(
                "iopub_welcome",
                None,
                // The topic as routing prefix, so that a subscriber to a topic other
                // than "" receives its welcome too.
                if topic.is_empty() {
                    Vec::new()
                } else {
                    vec![topic.clone().into_bytes()]
                },
                json!({ "subscription": topic }),
            );
            send_now(&welcome);
        }
    };
    // libzmq registers a subscription as soon as the socket is used, so the next message
    // already reaches a new subscriber: welcome it first, so that the welcome is the first
    // thing every subscriber receives.
    let send = |msg: &Message| {
        welcome_new_subscribers();
        send_now(msg);
    };
    let flush_stream = |pending: &mut Option<PendingStream>| {
        if let Some(p) = pending.take() {
            let mut msg = session.message(
                "stream",
                None,
                vec![format!("stream.{}", p.name).into_bytes()],
                json!({ "name": p.name, "text": p.text }),
            );
            msg.parent_header = (*p.parent).clone();
            send(&msg);
        }
    };
    let mut pending: Option<PendingStream> = None;
    loop {
        welcome_new_subscribers();
        let wait = match &pending {
            Some(p) => p.deadline.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        };
        let wait = if xpub {
            wait.min(SUBSCRIPTION_POLL)
        } else {
            wait
        };
        let received = if wait == Duration::MAX {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(wait)
        };
        let event = match received {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => {
                if pending
                    .as_ref()
                    .is_some_and(|p| Instant::now() >= p.deadline)
                {
                    flush_stream(&mut pending);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match event {
            Event::Stream { parent, name, text } => {
                match &mut pending {
                    Some(p) if p.name == name && Arc::ptr_eq(&p.parent, &parent) => {
                        p.text.push_str(&text)
                    }
                    _ => {
                        flush_stream(&mut pending);
                        pending = Some(PendingStream {
                            parent,
                            name,
                            text,
                            deadline: Instant::now() + STREAM_FLUSH_INTERVAL,
                        });
                    }
                }
                if pending
                    .as_ref()
                    .is_some_and(|p| p.text.len() >= STREAM_BATCH_LIMIT)
                {
                    flush_stream(&mut pending);
                }
            }
            Event::Message(msg) => {
                flush_stream(&mut pending);
                send(&msg);
            }
            Event::Flush(ack) => {
                flush_stream(&mut pending);
                let _ = ack.send(());
            }
        }
    }
    flush_stream(&mut pending);
}

/// The topics of the subscriptions that arrived since the last look. An XPUB socket
/// delivers each as one frame: byte 1 then the topic (byte 0 is an unsubscription).
/// Topics that are not UTF-8 cannot be put in a JSON welcome and are skipped, as
/// ipykernel does.
fn new_subscriptions(socket: &zmq::Socket) -> Vec<String> {
    let mut topics = Vec::new();
    for _ in 0..SUBSCRIPTIONS_PER_POLL {
        let frames = match socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => frames,
            Err(zmq::Error::EAGAIN) => break,
            Err(e) => {
                eprintln!("[rhai-kernel] iopub receive failed: {e}");
                break;
            }
        };
        for frame in frames {
            if let Some((1, topic)) = frame.split_first() {
                if let Ok(topic) = String::from_utf8(topic.to_vec()) {
                    topics.push(topic);
                }
            }
        }
    }
    topics
}
