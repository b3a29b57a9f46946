//! The shell channel: receives requests, wraps each in busy/idle, and dispatches it to a
//! handler (the equivalent of ipykernel's `shell_handlers` table).

use super::history::History;
use super::sink::IopubSink;
use super::stdin::StdinChannel;
use super::validate;
use super::KernelContext;
use crate::interpreter::{Completeness, Interpreter, ScriptError};
use crate::protocol::{decode_once, encode, Message};
use crate::runtime::{interrupt, sink};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub struct Shell<I: Interpreter> {
    socket: zmq::Socket,
    stdin: Arc<StdinChannel>,
    ctx: KernelContext,
    interpreter: I,
    execution_count: u64,
    history: History,
    /// After a failed cell: execute requests sent before this moment are answered
    /// `aborted` (a notebook's "Run All" stops at the first error), those sent after it
    /// run. Compared with each request's header `date`, as ipykernel does.
    abort_sent_before: Option<DateTime<Utc>>,
}

type Handler<I> = fn(&mut Shell<I>, &Message);

impl<I: Interpreter> Shell<I> {
    pub fn new(
        socket: zmq::Socket,
        stdin: Arc<StdinChannel>,
        ctx: KernelContext,
        interpreter: I,
    ) -> Self {
        Shell {
            socket,
            stdin,
            ctx,
            interpreter,
            execution_count: 0,
            history: History::from_environment(),
            abort_sent_before: None,
        }
    }

    /// The handler for each shell message type.
    fn handler(msg_type: &str) -> Option<Handler<I>> {
        Some(match msg_type {
            "execute_request" => Self::execute,
            "kernel_info_request" => Self::kernel_info,
            "complete_request" => Self::complete,
            "inspect_request" => Self::inspect,
            "is_complete_request" => Self::is_complete,
            "history_request" => Self::history,
            "comm_info_request" => Self::comm_info,
            "comm_open" => Self::comm_open,
            "comm_msg" => Self::comm_msg,
            "comm_close" => Self::comm_close,
            "shutdown_request" => Self::shutdown,
            "interrupt_request" => Self::interrupt,
            _ => return None,
        })
    }

    pub fn serve(mut self) {
        loop {
            if let Some(request) = self.receive(-1) {
                self.dispatch(&request);
            }
        }
    }

    /// Receives one verified message; `None` when nothing valid arrived in time.
    fn receive(&self, timeout_ms: i64) -> Option<Message> {
        match self.socket.poll(zmq::POLLIN, timeout_ms) {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
        let frames = self.socket.recv_multipart(0).ok()?;
        match decode_once(frames, &self.ctx.signer, &self.ctx.seen) {
            Ok(msg) => Some(msg),
            Err(e) => {
                eprintln!("[rhai-kernel] dropped shell message: {e}");
                None
            }
        }
    }

    fn dispatch(&mut self, request: &Message) {
        if request.msg_type() == "execute_request" {
            // Before `busy` is published: an interrupt sent by a client that has seen
            // this request start must not be cleared away.
            interrupt::clear();
        }
        self.ctx.iopub.status("busy", Some(request));
        if request.msg_type() == "execute_request" && self.sent_before_failure(request) {
            self.abort(request);
            self.ctx.iopub.status("idle", Some(request));
            return;
        }
        match Self::handler(request.msg_type()) {
            Some(handler) => match validate::check(request.msg_type(), &request.content) {
                Ok(()) => self.run_handler(handler, request),
                Err(problem) => self.reject(request, "BadRequest", &problem),
            },
            None => eprintln!("[rhai-kernel] unknown message type: {}", request.msg_type()),
        }
        self.ctx.iopub.status("idle", Some(request));
    }

    /// Runs a handler; a panic in it (a bug reached by some odd request) becomes an error
    /// reply instead of taking the whole kernel, and the user's variables, down with it.
    fn run_handler(&mut self, handler: Handler<I>, request: &Message) {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(self, request)));
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            eprintln!(
                "[rhai-kernel] {} handler panicked: {what}",
                request.msg_type()
            );
            self.reject(request, "InternalError", &what);
        }
    }

    /// Answers a request that could not be handled with the spec's error reply (and, for a
    /// cell, an `error` on IOPub so that the notebook shows why nothing ran).
    fn reject(&mut self, request: &Message, ename: &str, evalue: &str) {
        eprintln!("[rhai-kernel] rejected {}: {evalue}", request.msg_type());
        let Some(reply_type) = validate::reply_type(request.msg_type()) else {
            return;
        };
        let mut content = validate::error_reply(ename, evalue);
        if request.msg_type() == "execute_request" {
            self.ctx.iopub.send("error", Some(request), content.clone());
            content["execution_count"] = json!(self.execution_count);
            content["user_expressions"] = json!({});
            content["payload"] = json!([]);
        }
        self.reply(request, &reply_type, content);
    }

    fn reply(&self, request: &Message, msg_type: &str, content: Value) {
        let msg = self.ctx.session.reply(request, msg_type, content);
        if let Err(e) = self
            .socket
            .send_multipart(encode(&msg, &self.ctx.signer), 0)
        {
            eprintln!("[rhai-kernel] shell send failed: {e}");
        }
    }

    fn kernel_info(&mut self, request: &Message) {
        self.reply(
            request,
            "kernel_info_reply",
            (*self.ctx.kernel_info).clone(),
        );
    }

    fn error_content(&self, error: &ScriptError) -> Value {
        json!({
            "ename": error.kind,
            "evalue": error.message,
            "traceback": self.interpreter.traceback(error, true),
        })
    }

    fn execute(&mut self, request: &Message) {
        let content = &request.content;
        let code = content["code"].as_str().unwrap_or_default().to_string();
        let silent = content["silent"].as_bool().unwrap_or(false);
        let store_history = !silent && content["store_history"].as_bool().unwrap_or(true);
        let allow_stdin = content["allow_stdin"].as_bool().unwrap_or(true);
        let stop_on_error = content["stop_on_error"].as_bool().unwrap_or(true);

        if store_history {
            self.execution_count += 1;
        }
        let count = self.execution_count;
        if !silent {
            self.ctx.iopub.send(
                "execute_input",
                Some(request),
                json!({ "code": code, "execution_count": count }),
            );
        }

        let request_arc = Arc::new(request.clone());
        let sink = Arc::new(IopubSink::new(
            request_arc,
            self.ctx.iopub.clone(),
            self.stdin.clone(),
            allow_stdin,
            self.ctx.comms.clone(),
        ));
        let source_name = if store_history {
            format!("In[{count}]")
        } else {
            "<silent>".to_string()
        };
        let interpreter = &mut self.interpreter;
        let outcome = sink::with_sink(sink.clone(), || interpreter.execute(&code, &source_name));

        let mut output_text = None;
        let mut reply = match &outcome {
            Ok(value) => {
                if let Some(bundle) = value {
                    output_text = bundle
                        .get("text/plain")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    if !silent {
                        self.ctx.iopub.send(
                            "execute_result",
                            Some(request),
                            json!({ "execution_count": count, "data": bundle, "metadata": {} }),
                        );
                    }
                }
                json!({ "status": "ok", "execution_count": count, "payload": sink.take_payloads() })
            }
            Err(error) => {
                // Taken before the client can learn of the error: whatever it sends
                // once it has seen the error reply is dated later and runs.
                if stop_on_error {
                    self.abort_sent_before = Some(Utc::now());
                }
                let mut error_content = self.error_content(error);
                self.ctx
                    .iopub
                    .send("error", Some(request), error_content.clone());
                error_content["status"] = json!("error");
                error_content["execution_count"] = json!(count);
                error_content["payload"] = json!(sink.take_payloads());
                error_content
            }
        };
        reply["user_expressions"] = self.user_expressions(&content["user_expressions"]);
        if store_history {
            self.history.record(count, &code, output_text);
        }
        self.reply(request, "execute_reply", reply);
    }

    fn user_expressions(&mut self, expressions: &Value) -> Value {
        let mut results = Map::new();
        if let Some(map) = expressions.as_object() {
            for (name, expr) in map {
                let expr = expr.as_str().unwrap_or_default();
                let result = match self.interpreter.evaluate(expr) {
                    Ok(bundle) => json!({ "status": "ok", "data": bundle, "metadata": {} }),
                    Err(error) => {
                        let mut c = self.error_content(&error);
                        c["status"] = json!("error");
                        c
                    }
                };
                results.insert(name.clone(), result);
            }
        }
        Value::Object(results)
    }

    /// Whether an execute request was sent before the last failed cell ended (a request
    /// without a readable `date` was not).
    fn sent_before_failure(&self, request: &Message) -> bool {
        let Some(failed_at) = self.abort_sent_before else {
            return false;
        };
        parse_date(&request.header.date).is_some_and(|sent| sent < failed_at)
    }

    /// Answers an execute request `aborted` without running it.
    fn abort(&mut self, request: &Message) {
        self.reply(
            request,
            "execute_reply",
            json!({
                "status": "aborted",
                "execution_count": self.execution_count,
                "user_expressions": {},
                "payload": [],
            }),
        );
    }

    fn complete(&mut self, request: &Message) {
        let code = request.content["code"].as_str().unwrap_or_default();
        let cursor = cursor_pos(request, code);
        let completion = self.interpreter.complete(code, cursor);
        self.reply(
            request,
            "complete_reply",
            json!({
                "status": "ok",
                "matches": completion.matches,
                "cursor_start": completion.cursor_start,
                "cursor_end": completion.cursor_end,
                "metadata": {},
            }),
        );
    }

    fn inspect(&mut self, request: &Message) {
        let code = request.content["code"].as_str().unwrap_or_default();
        let cursor = cursor_pos(request, code);
        let detail =
            u8::try_from(request.content["detail_level"].as_u64().unwrap_or(0)).unwrap_or(u8::MAX);
        let content = match self.interpreter.inspect(code, cursor, detail) {
            Some(text) => {
                json!({ "status": "ok", "found": true, "data": { "text/plain": text }, "metadata": {} })
            }
            None => json!({ "status": "ok", "found": false, "data": {}, "metadata": {} }),
        };
        self.reply(request, "inspect_reply", content);
    }

    fn is_complete(&mut self, request: &Message) {
        let code = request.content["code"].as_str().unwrap_or_default();
        let content = match self.interpreter.is_complete(code) {
            Completeness::Complete => json!({ "status": "complete" }),
            Completeness::Incomplete(indent) => json!({ "status": "incomplete", "indent": indent }),
            Completeness::Invalid => json!({ "status": "invalid" }),
        };
        self.reply(request, "is_complete_reply", content);
    }

    fn history(&mut self, request: &Message) {
        let history = self.history.query(&request.content);
        self.reply(
            request,
            "history_reply",
            json!({ "status": "ok", "history": history }),
        );
    }

    fn comm_info(&mut self, request: &Message) {
        let target = request.content["target_name"].as_str();
        let comms = self.ctx.comms.info(target);
        self.reply(
            request,
            "comm_info_reply",
            json!({ "status": "ok", "comms": comms }),
        );
    }

    /// A message on a comm the kernel opened (a widget's click). Handled here, between
    /// cells, like every shell message: the handler only passes it on to whoever waits
    /// for it (a `play` running in the background), so it never holds up the shell.
    fn comm_msg(&mut self, request: &Message) {
        super::widgets::comm_msg(&self.ctx.comms, &self.ctx.iopub, request);
    }

    /// The frontend closed a comm: its owner learns that nothing more will come.
    fn comm_close(&mut self, request: &Message) {
        let id = request.content["comm_id"].as_str().unwrap_or_default();
        self.ctx.comms.deliver(id, super::comms::Incoming::Closed);
    }

    /// No comm targets are registered: close every comm a frontend tries to open.
    fn comm_open(&mut self, request: &Message) {
        let comm_id = request.content["comm_id"].clone();
        self.ctx.iopub.send(
            "comm_close",
            Some(request),
            json!({ "comm_id": comm_id, "data": {} }),
        );
    }

    /// Old clients send shutdown on the shell channel.
    fn shutdown(&mut self, request: &Message) {
        let restart = request.content["restart"].as_bool().unwrap_or(false);
        let content = json!({ "status": "ok", "restart": restart });
        self.reply(request, "shutdown_reply", content.clone());
        self.ctx
            .iopub
            .send("shutdown_reply", Some(request), content);
        self.ctx.iopub.status("idle", Some(request));
        super::exit_process(&self.ctx.iopub, 0);
    }

    fn interrupt(&mut self, request: &Message) {
        self.reply(request, "interrupt_reply", json!({ "status": "ok" }));
    }
}

/// The request's cursor position (in characters), defaulting to the end of the code. A
/// position past the end (a client's mistake) is taken as the end.
fn cursor_pos(request: &Message, code: &str) -> usize {
    let end = code.chars().count();
    request.content["cursor_pos"]
        .as_u64()
        .map_or(end, |c| usize::try_from(c).unwrap_or(end).min(end))
}

/// A header date: ISO 8601 with an offset, or without one (then UTC, as jupyter_client
/// writes naive dates).
fn parse_date(date: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = DateTime::parse_from_rfc3339(date) {
        return Some(date.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(date, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}
