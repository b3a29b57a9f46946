//! CurveZMQ: with `curve_publickey`/`curve_secretkey` in the connection file (as
//! jupyter_client 8.10 writes them) every socket is a CURVE server, and a client holding the
//! keys gets a full execute round trip. A build whose libzmq lacks CURVE must refuse such a
//! file rather than serve in plain text, and must not advertise encryption in its kernelspec.

mod kernel_support;

use kernel_support::{execute_content, random_key, recv_frames, Ports, TIMEOUT};
use rhai_kernel::protocol::message::Session;
use rhai_kernel::protocol::{decode, encode, Signer};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the kernel when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(
    connection: &Value,
    stderr: &tempfile::NamedTempFile,
) -> (Running, tempfile::NamedTempFile) {
    let file = tempfile::Builder::new()
        .prefix("kernel-")
        .suffix(".json")
        .tempfile()
        .expect("connection file");
    std::fs::write(file.path(), connection.to_string()).expect("write connection file");
    let child = Command::new(env!("CARGO_BIN_EXE_rhai-kernel"))
        .args(["kernel", "--connection-file"])
        .arg(file.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr.reopen().expect("stderr file")))
        .spawn()
        .expect("start kernel");
    (Running(child), file)
}

fn connection(ports: &Ports, key: &str, public: &str, secret: &str) -> Value {
    json!({
        "transport": "tcp", "ip": "127.0.0.1",
        "shell_port": ports.shell, "iopub_port": ports.iopub, "stdin_port": ports.stdin,
        "control_port": ports.control, "hb_port": ports.hb,
        "key": key, "signature_scheme": "hmac-sha256", "kernel_name": "rhai",
        "curve_publickey": public, "curve_secretkey": secret,
    })
}

#[test]
fn install_advertises_curve_exactly_when_it_works() {
    let prefix = tempfile::tempdir().expect("temp dir");
    let status = Command::new(env!("CARGO_BIN_EXE_rhai-kernel"))
        .args(["install", "--prefix"])
        .arg(prefix.path())
        .stdout(Stdio::null())
        .status()
        .expect("run install");
    assert!(status.success());
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(prefix.path().join("share/jupyter/kernels/rhai/kernel.json"))
            .expect("kernel.json"),
    )
    .expect("kernel.json is JSON");
    let advertised = spec["metadata"]["supported_encryption"] == json!(["curve"]);
    assert_eq!(
        advertised,
        zmq::has("curve").unwrap_or(false),
        "metadata: {}",
        spec["metadata"]
    );
}

#[test]
fn curve_keys_are_served_or_refused() {
    // `make curve-test` builds against a libzmq with CURVE and insists on the round trip.
    if std::env::var_os("RHAI_KERNEL_EXPECT_CURVE").is_some() {
        assert!(
            zmq::has("curve").unwrap_or(false),
            "this build's libzmq has no CURVE"
        );
    }
    if zmq::has("curve").unwrap_or(false) {
        curve_round_trip();
    } else {
        refused_without_curve();
    }
}

/// Without CURVE in libzmq the kernel exits at once with a clear message.
fn refused_without_curve() {
    // Any well-formed Z85 text will do: the kernel must stop before using it.
    let key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    let stderr = tempfile::NamedTempFile::new().expect("stderr file");
    let (mut kernel, _file) = start(
        &connection(&Ports::pick(), &random_key(), key, key),
        &stderr,
    );
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = kernel.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the kernel kept running with keys it cannot use"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(stderr.path()).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "stderr:\n{log}");
    assert!(log.contains("CURVE"), "stderr:\n{log}");
}

/// A client with the keys: kernel_info, an execute with output on IOPub, the heartbeat; a
/// client without them is not answered.
fn curve_round_trip() {
    let pair = zmq::CurveKeyPair::new().expect("curve key pair");
    let public = zmq::z85_encode(&pair.public_key).expect("z85");
    let secret = zmq::z85_encode(&pair.secret_key).expect("z85");
    let ports = Ports::pick();
    let key = random_key();
    let stderr = tempfile::NamedTempFile::new().expect("stderr file");
    let (_kernel, _file) = start(&connection(&ports, &key, &public, &secret), &stderr);
    let signer = Signer::new(&key);
    let session = Session::new();
    let ctx = zmq::Context::new();
    let socket = |kind, port: u16, curve: bool| {
        let s = ctx.socket(kind).expect("socket");
        s.set_linger(0).expect("linger");
        if curve {
            // As jupyter_client: the kernel's own pair, and its public key as server key.
            s.set_curve_serverkey(public.as_bytes()).expect("serverkey");
            s.set_curve_publickey(public.as_bytes()).expect("publickey");
            s.set_curve_secretkey(secret.as_bytes()).expect("secretkey");
        }
        s.connect(&format!("tcp://127.0.0.1:{port}"))
            .expect("connect");
        s
    };
    let shell = socket(zmq::DEALER, ports.shell, true);
    let iopub = socket(zmq::SUB, ports.iopub, true);
    iopub.set_subscribe(b"").expect("subscribe");
    let hb = socket(zmq::REQ, ports.hb, true);

    let welcome = recv_frames(&iopub, TIMEOUT).expect("iopub_welcome over CURVE");
    assert_eq!(
        decode(welcome, &signer).expect("signed").msg_type(),
        "iopub_welcome"
    );

    let request = session.message(
        "execute_request",
        None,
        vec![],
        execute_content(r#"print("sealed"); 6 * 7"#),
    );
    shell
        .send_multipart(encode(&request, &signer), 0)
        .expect("send");
    let reply = decode(
        recv_frames(&shell, TIMEOUT).expect("execute_reply"),
        &signer,
    )
    .expect("signed");
    assert_eq!(reply.msg_type(), "execute_reply");
    assert_eq!(reply.content["status"], "ok");
    let mut stdout = String::new();
    while let Some(frames) = recv_frames(&iopub, Duration::from_millis(500)) {
        let msg = decode(frames, &signer).expect("signed");
        if msg.msg_type() == "stream" {
            stdout.push_str(msg.content["text"].as_str().unwrap_or_default());
        }
    }
    assert_eq!(stdout, "sealed\n");
    hb.send(&b"ping"[..], 0).expect("hb send");
    assert_eq!(
        recv_frames(&hb, TIMEOUT).map(|f| f.concat()),
        Some(b"ping".to_vec())
    );

    // Without the server key the handshake never completes: no reply.
    let plain = socket(zmq::DEALER, ports.shell, false);
    let request = session.message("kernel_info_request", None, vec![], json!({}));
    plain
        .send_multipart(encode(&request, &signer), 0)
        .expect("send");
    assert!(recv_frames(&plain, Duration::from_secs(1)).is_none());
}
