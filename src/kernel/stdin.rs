//! The stdin channel: asks the frontend for input on behalf of a running cell.

use crate::protocol::message::Session;
use crate::protocol::{decode_once, encode, Message, SeenSignatures, Signer};
use crate::runtime::interrupt;
use crate::runtime::sink::InputError;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// The ROUTER socket of the stdin channel, shared by every thread that may call `input`.
pub struct StdinChannel {
    socket: Mutex<zmq::Socket>,
    session: Arc<Session>,
    signer: Signer,
    seen: Arc<SeenSignatures>,
}

impl StdinChannel {
    pub fn new(
        socket: zmq::Socket,
        session: Arc<Session>,
        signer: Signer,
        seen: Arc<SeenSignatures>,
    ) -> Self {
        StdinChannel {
            socket: Mutex::new(socket),
            session,
            signer,
            seen,
        }
    }

    /// Sends `input_request` to the client that sent `parent` and waits for its
    /// `input_reply`, polling the interrupt flag so that an interrupt ends the wait.
    pub fn read_line(
        &self,
        parent: &Message,
        prompt: &str,
        password: bool,
    ) -> Result<String, InputError> {
        let socket = self.socket.lock().map_err(|_| InputError::Closed)?;
        // Replies to an earlier, abandoned request must not answer this one.
        while let Ok(true) = socket.poll(zmq::POLLIN, 0).map(|n| n > 0) {
            let _ = socket.recv_multipart(0);
        }
        let request = self.session.message(
            "input_request",
            Some(parent),
            parent.identities.clone(),
            json!({ "prompt": prompt, "password": password }),
        );
        socket
            .send_multipart(encode(&request, &self.signer), 0)
            .map_err(|_| InputError::Closed)?;
        loop {
            if interrupt::is_requested() {
                return Err(InputError::Interrupted);
            }
            match socket.poll(zmq::POLLIN, 100) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(_) => return Err(InputError::Closed),
            }
            let frames = socket.recv_multipart(0).map_err(|_| InputError::Closed)?;
            match decode_once(frames, &self.signer, &self.seen) {
                Ok(reply) if reply.msg_type() == "input_reply" => {
                    return Ok(reply.content["value"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string());
                }
                Ok(other) => {
                    eprintln!("[rhai-kernel] ignoring {} on stdin", other.msg_type());
                }
                Err(e) => eprintln!("[rhai-kernel] dropped stdin message: {e}"),
            }
        }
    }
}
