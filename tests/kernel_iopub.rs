//! IOPub as an XPUB socket: every new subscriber, raw ZeroMQ SUB clients included, gets a
//! signed `iopub_welcome` naming its subscription, even while a cell is running.

mod kernel_support;

use kernel_support::{recv_frames, Kernel, TIMEOUT};
use rhai_kernel::protocol::wire::DELIMITER;
use rhai_kernel::protocol::Message;
use serde_json::json;
use std::time::{Duration, Instant};

/// A SUB socket of its own, subscribed to `topic`, on the kernel's IOPub port.
fn subscriber(ctx: &zmq::Context, k: &Kernel, topic: &[u8]) -> zmq::Socket {
    let socket = ctx.socket(zmq::SUB).expect("SUB socket");
    socket.set_linger(0).expect("linger");
    socket
        .connect(&format!("tcp://127.0.0.1:{}", k.ports.iopub))
        .expect("connect IOPub");
    socket.set_subscribe(topic).expect("subscribe");
    socket
}

/// The next message on `socket`, with its raw frames.
fn next(k: &Kernel, socket: &zmq::Socket, timeout: Duration) -> (Vec<Vec<u8>>, Message) {
    let frames = recv_frames(socket, timeout).unwrap_or_else(|| {
        panic!(
            "nothing on IOPub within {timeout:?}; kernel stderr:\n{}",
            k.stderr_text()
        )
    });
    (frames.clone(), k.decode(frames))
}

#[test]
fn a_new_subscriber_is_welcomed_first() {
    let k = Kernel::start();
    let ctx = zmq::Context::new();
    let started = Instant::now();
    let sub = subscriber(&ctx, &k, b"");
    let (frames, welcome) = next(&k, &sub, TIMEOUT);
    assert_eq!(welcome.msg_type(), "iopub_welcome");
    assert_eq!(welcome.content, json!({"subscription": ""}));
    assert_eq!(welcome.parent_header, json!({}));
    assert!(welcome.header.version.starts_with("5."));
    // No routing prefix for the empty topic: the delimiter comes first.
    assert_eq!(frames[0], DELIMITER);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "welcome took {:?}",
        started.elapsed()
    );
    // Nothing else was pending for this subscriber.
    assert!(recv_frames(&sub, Duration::from_millis(200)).is_none());
}

#[test]
fn every_subscriber_gets_its_own_welcome_with_its_topic() {
    let mut k = Kernel::start();
    let ctx = zmq::Context::new();
    let first = subscriber(&ctx, &k, b"");
    assert_eq!(next(&k, &first, TIMEOUT).1.msg_type(), "iopub_welcome");
    // A second subscriber to the same topic: XPUB would pass on only the first
    // subscription to a topic unless it is verbose.
    let second = subscriber(&ctx, &k, b"");
    assert_eq!(next(&k, &second, TIMEOUT).1.msg_type(), "iopub_welcome");

    // A subscriber to one topic gets a welcome routed under that topic, then only
    // messages of that topic.
    let status_only = subscriber(&ctx, &k, b"status");
    let (frames, welcome) = next(&k, &status_only, TIMEOUT);
    assert_eq!(welcome.msg_type(), "iopub_welcome");
    assert_eq!(welcome.content, json!({"subscription": "status"}));
    assert_eq!(frames[0], b"status");

    let ex = k.execute(r#"print("streamed"); 1"#);
    assert_eq!(ex.stdout(), "streamed\n");
    let mut seen = Vec::new();
    while let Some(frames) = recv_frames(&status_only, Duration::from_millis(300)) {
        seen.push(k.decode(frames).msg_type().to_string());
    }
    assert!(
        seen.iter().all(|t| t == "status" || t == "iopub_welcome"),
        "a status-only subscriber got {seen:?}"
    );
    assert!(seen.iter().any(|t| t == "status"), "got {seen:?}");
}

/// The welcome comes first even while output streams out (libzmq delivers messages to a
/// subscription as soon as it registers it, which may be before the kernel has read it).
#[test]
fn a_subscriber_is_welcomed_first_while_a_cell_prints() {
    let mut k = Kernel::start();
    let cell = k.send_execute("for i in 0..40 { print(i); sleep(0.05); } 5");
    k.iopub_until(&cell, TIMEOUT, |m| m.msg_type() == "execute_input");
    let ctx = zmq::Context::new();
    let started = Instant::now();
    let sub = subscriber(&ctx, &k, b"");
    let (_, welcome) = next(&k, &sub, TIMEOUT);
    assert_eq!(welcome.msg_type(), "iopub_welcome");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the welcome waited for the cell ({:?})",
        started.elapsed()
    );
    assert!(
        k.try_shell_reply(&cell, Duration::ZERO).is_none(),
        "the cell ended before the welcome was checked"
    );
    let ex = k.finish_execute(cell);
    assert_eq!(ex.result().as_deref(), Some("5"));
}
