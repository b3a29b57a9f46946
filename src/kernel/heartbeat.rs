//! The heartbeat: echoes every ping on its own thread, so a busy cell never looks dead.

pub fn start(socket: zmq::Socket) {
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || loop {
            match socket.recv_multipart(0) {
                Ok(frames) => {
                    if let Err(e) = socket.send_multipart(frames, 0) {
                        eprintln!("[rhai-kernel] heartbeat send failed: {e}");
                    }
                }
                Err(zmq::Error::ETERM) => break,
                Err(e) => eprintln!("[rhai-kernel] heartbeat receive failed: {e}"),
            }
        })
        .ok();
}
