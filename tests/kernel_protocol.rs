//! Wire-level integration tests of the real `rhai-kernel` binary: kernel_info, message
//! signing, the heartbeat and shutdown, spoken over ZeroMQ like a Jupyter client.

mod kernel_support;

use hmac::{Hmac, Mac};
use kernel_support::{
    execute_content, is_status, msg_types, parent_id, recv_frames, stream_text, Kernel, TIMEOUT,
};
use rhai_kernel::protocol::encode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Checks a raw reply's HMAC independently of the crate's own `Signer`.
fn assert_signed(frames: &[Vec<u8>], key: &str) {
    let delim = frames
        .iter()
        .position(|f| f.as_slice() == b"<IDS|MSG>")
        .expect("delimiter frame");
    assert!(
        frames.len() >= delim + 6,
        "too few frames after the delimiter"
    );
    let signature = std::str::from_utf8(&frames[delim + 1]).expect("hex signature");
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for frame in &frames[delim + 2..delim + 6] {
        mac.update(frame);
    }
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(signature, expected, "reply signature does not match");
}

#[test]
fn kernel_info_round_trip() {
    let mut k = Kernel::start();
    let request = k.send_shell("kernel_info_request", json!({}));

    let frames = recv_frames(&k.shell, TIMEOUT).expect("kernel_info_reply");
    assert_signed(&frames, &k.key);
    let reply = k.decode(frames);
    assert_eq!(reply.msg_type(), "kernel_info_reply");
    assert!(
        reply.header.version.starts_with("5."),
        "header version {:?}",
        reply.header.version
    );
    assert_eq!(parent_id(&reply), request.header.msg_id);
    assert_eq!(reply.parent_header["msg_type"], "kernel_info_request");
    assert_eq!(reply.parent_header["session"], json!(k.session.id));
    assert!(!reply.header.msg_id.is_empty());
    assert_ne!(reply.header.msg_id, request.header.msg_id);

    let c = &reply.content;
    assert_eq!(c["status"], "ok");
    let protocol = c["protocol_version"].as_str().expect("protocol_version");
    assert!(protocol.starts_with("5."), "protocol_version {protocol:?}");
    assert_eq!(c["language_info"]["name"], "rhai");
    assert_eq!(c["language_info"]["file_extension"], ".rhai");
    assert!(c["implementation"].is_string());
    assert!(c["banner"].is_string());

    let iopub = k.iopub_until_idle(&request);
    assert_eq!(msg_types(&iopub), ["status:busy", "status:idle"]);
    for msg in &iopub {
        assert_eq!(parent_id(msg), request.header.msg_id);
        assert!(msg.header.version.starts_with("5."));
        assert_eq!(msg.header.session, reply.header.session);
    }

    // A second request: every message the kernel sends has its own msg_id.
    let request2 = k.send_shell("kernel_info_request", json!({}));
    let reply2 = k.shell_reply(&request2);
    let iopub2 = k.iopub_until_idle(&request2);
    let ids: Vec<&str> = [&reply, &reply2]
        .into_iter()
        .chain(iopub.iter())
        .chain(iopub2.iter())
        .map(|m| m.header.msg_id.as_str())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "msg_ids repeat: {ids:?}");
    assert_eq!(parent_id(&reply2), request2.header.msg_id);
}

#[test]
fn kernel_info_on_control_channel() {
    let mut k = Kernel::start();
    let request = k.send_control("kernel_info_request", json!({}));
    let reply = k.control_reply(&request);
    assert_eq!(reply.msg_type(), "kernel_info_reply");
    assert_eq!(reply.content["language_info"]["name"], "rhai");
    let iopub = k.iopub_until_idle(&request);
    assert_eq!(msg_types(&iopub), ["status:busy", "status:idle"]);
}

/// Frames of a signed message with its signature frame replaced.
fn with_signature(k: &Kernel, msg_type: &str, content: Value, signature: &[u8]) -> Vec<Vec<u8>> {
    let msg = k.request(msg_type, content);
    let mut frames = encode(&msg, &k.signer);
    let delim = frames
        .iter()
        .position(|f| f.as_slice() == b"<IDS|MSG>")
        .unwrap();
    frames[delim + 1] = signature.to_vec();
    frames
}

#[test]
fn bad_signatures_are_ignored() {
    let mut k = Kernel::start();
    let code = execute_content(r#"print("PWNED"); 1"#);
    let wrong = hex::encode([0xab_u8; 32]);
    let mut bad = vec![
        with_signature(&k, "execute_request", code.clone(), wrong.as_bytes()),
        with_signature(&k, "execute_request", code.clone(), b""),
        with_signature(&k, "execute_request", code.clone(), b"not hex at all"),
    ];
    // Signed with a different key.
    let other = rhai_kernel::protocol::Signer::new("not the key");
    bad.push(encode(&k.request("execute_request", code.clone()), &other));
    // A correct signature over different content (the code was swapped after signing).
    let mut tampered = encode(
        &k.request("execute_request", execute_content("1")),
        &k.signer,
    );
    let last = tampered.len() - 1;
    tampered[last] = serde_json::to_vec(&code).unwrap();
    bad.push(tampered);
    for frames in bad {
        Kernel::send_frames(&k.shell, frames);
    }
    // A forged shutdown on control must not stop the kernel either.
    Kernel::send_frames(
        &k.control,
        with_signature(&k, "shutdown_request", json!({"restart": false}), b""),
    );

    let request = k.send_shell("kernel_info_request", json!({}));
    let reply = k.shell_reply(&request);
    assert_eq!(reply.msg_type(), "kernel_info_reply");
    let iopub = k.iopub_for(Duration::from_millis(500));
    assert!(
        iopub.iter().all(|m| m.msg_type() != "stream"),
        "a forged request produced output: {:?}",
        stream_text(&iopub, "stdout")
    );
    assert!(
        iopub
            .iter()
            .all(|m| is_status(m, "starting") || parent_id(m) == request.header.msg_id),
        "IOPub messages for forged requests: {:?}",
        msg_types(&iopub)
    );
    let stray = k.shell_for(Duration::from_millis(300));
    assert!(
        stray.is_empty(),
        "replies to forged requests: {:?}",
        stray.iter().map(|m| m.msg_type()).collect::<Vec<_>>()
    );

    // Nothing was executed: the first real cell gets execution count 1.
    let ex = k.execute("40 + 2");
    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.execution_count(), 1);
    assert_eq!(ex.result().as_deref(), Some("42"));
    assert!(!ex.stdout().contains("PWNED"));
    assert!(k.is_alive());
    assert!(
        k.stderr_text().contains("signature"),
        "dropped messages are logged; stderr:\n{}",
        k.stderr_text()
    );
}

#[test]
fn heartbeat_echoes() {
    let k = Kernel::start();
    for payload in [&b"ping"[..], b"", &[0u8, 255, 1, 2][..]] {
        assert_eq!(
            k.heartbeat(payload, TIMEOUT).as_deref(),
            Some(payload),
            "heartbeat did not echo {payload:?}"
        );
    }
}

#[test]
fn heartbeat_answers_while_a_cell_runs() {
    let mut k = Kernel::start();
    let request = k.send_execute("sleep(3); 7");
    k.iopub_until(&request, TIMEOUT, |m| m.msg_type() == "execute_input");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(
        k.heartbeat(b"still there?", TIMEOUT).as_deref(),
        Some(&b"still there?"[..])
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "heartbeat waited for the cell ({:?})",
        started.elapsed()
    );
    // The cell is still running: its reply has not been sent yet.
    assert!(
        k.try_shell_reply(&request, Duration::ZERO).is_none(),
        "the cell finished before the heartbeat was checked"
    );
    let ex = k.finish_execute(request);
    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.result().as_deref(), Some("7"));
}

#[test]
fn shutdown_on_control_exits_cleanly() {
    let mut k = Kernel::start();
    assert_eq!(k.eval("1 + 1"), "2");
    let request = k.send_control("shutdown_request", json!({"restart": false}));
    let reply = k.control_reply(&request);
    assert_eq!(reply.msg_type(), "shutdown_reply");
    assert_eq!(reply.content["status"], "ok");
    assert_eq!(reply.content["restart"], false);
    assert_eq!(parent_id(&reply), request.header.msg_id);
    let status = k
        .wait_exit(Duration::from_secs(5))
        .expect("kernel still running 5 s after shutdown_request");
    assert_eq!(status.code(), Some(0), "exit status {status}");
}

#[test]
fn shutdown_with_restart_echoes_restart_and_stops_a_running_cell() {
    let mut k = Kernel::start();
    let cell = k.send_execute("loop {}");
    k.iopub_until(&cell, TIMEOUT, |m| m.msg_type() == "execute_input");
    let request = k.send_control("shutdown_request", json!({"restart": true}));
    let reply = k.control_reply(&request);
    assert_eq!(reply.content["status"], "ok");
    assert_eq!(reply.content["restart"], true);
    let status = k
        .wait_exit(Duration::from_secs(5))
        .expect("kernel busy in `loop {}` did not exit after shutdown_request");
    assert_eq!(status.code(), Some(0), "exit status {status}");
}

#[test]
fn comms_are_listed_empty_and_unknown_targets_are_closed() {
    let mut k = Kernel::start();
    let request = k.send_shell("comm_info_request", json!({}));
    let reply = k.shell_reply(&request);
    assert_eq!(reply.content, json!({"status": "ok", "comms": {}}));
    k.iopub_until_idle(&request);

    let open = k.send_shell(
        "comm_open",
        json!({"comm_id": "c-1", "target_name": "no.such.target", "data": {}}),
    );
    let iopub = k.iopub_until_idle(&open);
    let close = iopub
        .iter()
        .find(|m| m.msg_type() == "comm_close")
        .expect("comm_close on IOPub");
    assert_eq!(close.content["comm_id"], "c-1");
    assert_eq!(parent_id(close), open.header.msg_id);
}

#[test]
fn history_tail_range_and_search() {
    let mut k = Kernel::start();
    for code in ["let x = 1;", "x + 1", "x + 1", "print(x)"] {
        assert_eq!(k.execute(code).status(), "ok");
    }
    let mut history = |content: Value| {
        let request = k.send_shell("history_request", content);
        let reply = k.shell_reply(&request);
        k.iopub_until_idle(&request);
        reply.content["history"].clone()
    };
    let tail = history(json!({"hist_access_type": "tail", "n": 2, "output": false, "raw": true}));
    assert_eq!(tail[0][1], 3);
    assert_eq!(tail[1][2], "print(x)");
    let range = history(
        json!({"hist_access_type": "range", "session": 0, "start": 2, "stop": 3,
        "output": true, "raw": true}),
    );
    assert_eq!(range, json!([[1, 2, ["x + 1", "2"]]]));
    let search = history(
        json!({"hist_access_type": "search", "pattern": "x*", "unique": true,
        "output": false, "raw": true}),
    );
    assert_eq!(search, json!([[1, 3, "x + 1"]]));
}

#[test]
fn history_in_a_file_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.jsonl");
    let env = [("RHAI_KERNEL_HISTORY", path.to_str().expect("utf-8 path"))];
    let history = |k: &mut Kernel, content: Value| {
        let request = k.send_shell("history_request", content);
        let reply = k.shell_reply(&request);
        k.iopub_until_idle(&request);
        reply.content["history"].clone()
    };
    let mut first = Kernel::start_with_env(&env);
    assert_eq!(first.execute("let before = 1;").status(), "ok");
    let request = first.send_control("shutdown_request", json!({"restart": true}));
    first.control_reply(&request);
    assert!(first.wait_exit(Duration::from_secs(10)).is_some());

    let mut second = Kernel::start_with_env(&env);
    assert_eq!(second.execute("let after = 2;").status(), "ok");
    let tail = history(
        &mut second,
        json!({"hist_access_type": "tail", "n": 2, "output": false, "raw": true}),
    );
    assert_eq!(
        tail,
        json!([[1, 1, "let before = 1;"], [2, 1, "let after = 2;"]])
    );
    let previous = history(
        &mut second,
        json!({"hist_access_type": "range", "session": -1, "output": false, "raw": true}),
    );
    assert_eq!(previous, json!([[1, 1, "let before = 1;"]]));
}

#[test]
fn user_expressions_are_evaluated_after_the_cell() {
    let mut k = Kernel::start();
    let mut content = execute_content("let a = 20;");
    content["user_expressions"] = json!({"double": "a * 2", "broken": "no_such_var"});
    let ex = k.execute_with(content);
    assert_eq!(ex.status(), "ok");
    let exprs = &ex.reply.content["user_expressions"];
    assert_eq!(exprs["double"]["status"], "ok");
    assert_eq!(exprs["double"]["data"]["text/plain"], "40");
    assert_eq!(exprs["broken"]["status"], "error");
    assert_eq!(exprs["broken"]["ename"], "ErrorVariableNotFound");
}

#[test]
fn help_query_returns_a_page_payload_and_help_prints() {
    let mut k = Kernel::start();
    let ex = k.execute("sleep?");
    assert_eq!(ex.status(), "ok");
    let payload = &ex.reply.content["payload"];
    assert_eq!(payload[0]["source"], "page");
    let text = payload[0]["data"]["text/plain"].as_str().unwrap();
    assert!(text.contains("sleep(seconds: float)"), "{text}");
    // help() prints, as Python's does: the text stays in the notebook.
    let ex = k.execute("help(\"sleep\")");
    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.reply.content["payload"], json!([]));
    assert!(
        ex.stdout().contains("sleep(seconds: float)"),
        "{}",
        ex.stdout()
    );
    let ex = k.execute("no_such_function?");
    assert_eq!(ex.status(), "error");
}

#[test]
fn ipc_transport_serves_every_channel() {
    let mut k = Kernel::start_ipc();
    let ex = k.execute(r#"print("over unix sockets"); 1 + 1"#);
    assert_eq!(ex.status(), "ok");
    assert_eq!(ex.stdout(), "over unix sockets\n");
    assert_eq!(ex.result().as_deref(), Some("2"));
    assert_eq!(
        k.heartbeat(b"ping", Duration::from_secs(5)).as_deref(),
        Some(&b"ping"[..])
    );
    let request = k.send_control("kernel_info_request", json!({}));
    assert_eq!(k.control_reply(&request).msg_type(), "kernel_info_reply");
    // Only the owner may connect to the sockets.
    use std::os::unix::fs::PermissionsExt;
    let sockets = k.ipc_socket_files();
    assert_eq!(sockets.len(), 5, "{sockets:?}");
    for socket in sockets {
        let mode = std::fs::metadata(&socket)
            .expect("socket file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", socket.display());
    }
}
