//! The control channel, on its own thread so that interrupt, shutdown and debug requests
//! are served while a cell is running (or stopped at a breakpoint).

use super::{validate, KernelContext};
use crate::protocol::{decode_once, encode, Message};
use crate::runtime::interrupt;
use serde_json::json;

pub fn start(socket: zmq::Socket, ctx: KernelContext) {
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || serve(socket, ctx))
        .ok();
}

fn serve(socket: zmq::Socket, ctx: KernelContext) {
    loop {
        let frames = match socket.recv_multipart(0) {
            Ok(frames) => frames,
            Err(zmq::Error::ETERM) => return,
            Err(e) => {
                eprintln!("[rhai-kernel] control receive failed: {e}");
                continue;
            }
        };
        let request = match decode_once(frames, &ctx.signer, &ctx.seen) {
            Ok(msg) => msg,
            Err(e) => {
                eprintln!("[rhai-kernel] dropped control message: {e}");
                continue;
            }
        };
        handle(&socket, &ctx, &request);
    }
}

fn reply(
    socket: &zmq::Socket,
    ctx: &KernelContext,
    request: &Message,
    msg_type: &str,
    content: serde_json::Value,
) {
    let msg = ctx.session.reply(request, msg_type, content);
    if let Err(e) = socket.send_multipart(encode(&msg, &ctx.signer), 0) {
        eprintln!("[rhai-kernel] control send failed: {e}");
    }
}

fn handle(socket: &zmq::Socket, ctx: &KernelContext, request: &Message) {
    ctx.iopub.status("busy", Some(request));
    // Only the requests this channel serves are checked; others are ignored below.
    let served = matches!(
        request.msg_type(),
        "interrupt_request" | "kernel_info_request" | "shutdown_request" | "debug_request"
    );
    let checked = if served {
        validate::check(request.msg_type(), &request.content)
    } else {
        Ok(())
    };
    if let Err(problem) = checked {
        eprintln!("[rhai-kernel] rejected {}: {problem}", request.msg_type());
        if let Some(reply_type) = validate::reply_type(request.msg_type()) {
            let content = validate::error_reply("BadRequest", &problem);
            reply(socket, ctx, request, &reply_type, content);
        }
        ctx.iopub.status("idle", Some(request));
        return;
    }
    match request.msg_type() {
        "interrupt_request" => {
            interrupt::request();
            reply(
                socket,
                ctx,
                request,
                "interrupt_reply",
                json!({ "status": "ok" }),
            );
        }
        "kernel_info_request" => {
            reply(
                socket,
                ctx,
                request,
                "kernel_info_reply",
                (*ctx.kernel_info).clone(),
            );
        }
        "shutdown_request" => {
            let restart = request.content["restart"].as_bool().unwrap_or(false);
            let content = json!({ "status": "ok", "restart": restart });
            reply(socket, ctx, request, "shutdown_reply", content.clone());
            ctx.iopub.send("shutdown_reply", Some(request), content);
            ctx.iopub.status("idle", Some(request));
            interrupt::request();
            super::exit_process(&ctx.iopub, 0);
        }
        "debug_request" => {
            let content = ctx.debug.reply(&request.content);
            reply(socket, ctx, request, "debug_reply", content);
            ctx.debug.after_reply(&request.content);
        }
        other => {
            eprintln!("[rhai-kernel] unsupported message type on control: {other}");
        }
    }
    ctx.iopub.status("idle", Some(request));
}
