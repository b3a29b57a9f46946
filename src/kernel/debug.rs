//! The Jupyter debug protocol on the control channel: each `debug_request` carries a Debug
//! Adapter Protocol request (plus Jupyter's additions: `debugInfo`, `dumpCell`,
//! `inspectVariables`, `richInspectVariables`), answered from the interpreter's debugger
//! through the handler table below; the debugger's events leave on IOPub as `debug_event`.

use super::iopub::Iopub;
use crate::interpreter::debugger::{cells, Debugger, Event, Resume, VariableView};
use crate::runtime::display::mime_bundle;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A request's body on success, or the message of its failure.
type Outcome = Result<Value, String>;
type Handler = fn(&DebugAdapter, &Value) -> Outcome;

/// Requests and their handlers, as ipykernel's debugger lists them.
const HANDLERS: &[(&str, Handler)] = &[
    ("debugInfo", DebugAdapter::debug_info),
    ("initialize", DebugAdapter::initialize),
    ("attach", DebugAdapter::attach),
    ("configurationDone", DebugAdapter::nothing),
    ("disconnect", DebugAdapter::disconnect),
    ("dumpCell", DebugAdapter::dump_cell),
    ("source", DebugAdapter::source),
    ("setBreakpoints", DebugAdapter::set_breakpoints),
    (
        "setExceptionBreakpoints",
        DebugAdapter::set_exception_breakpoints,
    ),
    ("threads", DebugAdapter::threads),
    ("stackTrace", DebugAdapter::stack_trace),
    ("scopes", DebugAdapter::scopes),
    ("variables", DebugAdapter::variables),
    ("continue", DebugAdapter::resume_continue),
    ("next", DebugAdapter::resume_next),
    ("stepIn", DebugAdapter::resume_step_in),
    ("stepOut", DebugAdapter::resume_step_out),
    ("pause", DebugAdapter::pause),
    ("evaluate", DebugAdapter::evaluate),
    ("inspectVariables", DebugAdapter::inspect_variables),
    ("richInspectVariables", DebugAdapter::rich_inspect_variables),
    ("modules", DebugAdapter::modules),
];

/// Answers debug requests and publishes the debugger's events.
#[derive(Clone)]
pub struct DebugAdapter {
    debugger: Debugger,
    /// Sequence numbers of the messages this side sends (responses and events).
    seq: Arc<AtomicI64>,
    iopub: Iopub,
}

impl DebugAdapter {
    pub fn new(debugger: Debugger, iopub: Iopub) -> Self {
        let adapter = DebugAdapter {
            debugger,
            seq: Arc::new(AtomicI64::new(0)),
            iopub,
        };
        let events = adapter.clone();
        adapter
            .debugger
            .on_event(move |event| events.send_event(event));
        adapter
    }

    fn next_seq(&self) -> i64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The `debug_reply` content for a `debug_request`'s content.
    pub fn reply(&self, request: &Value) -> Value {
        let command = request["command"].as_str().unwrap_or_default();
        let arguments = request.get("arguments").cloned().unwrap_or(json!({}));
        let outcome = match HANDLERS.iter().find(|(name, _)| *name == command) {
            Some((_, handler)) => handler(self, &arguments),
            None => Err(format!("the debugger has no request `{command}`")),
        };
        // Expressions and properties may have run script code on this thread: like a
        // script thread at its end, it gives up the GIL switch's lock between requests.
        crate::runtime::sched::leaving();
        let mut response = json!({
            "type": "response",
            "seq": self.next_seq(),
            "request_seq": request["seq"].as_i64().unwrap_or(0),
            "command": command,
            "success": outcome.is_ok(),
        });
        match outcome {
            Ok(body) => response["body"] = body,
            Err(message) => response["message"] = Value::String(message),
        }
        response
    }

    /// Sent after the reply to `initialize`, as debug adapters do.
    pub fn after_reply(&self, request: &Value) {
        if request["command"] == "initialize" {
            self.event("initialized", json!({}));
        }
    }

    fn event(&self, name: &str, body: Value) {
        let content = json!({
            "type": "event",
            "seq": self.next_seq(),
            "event": name,
            "body": body,
        });
        self.iopub.send("debug_event", None, content);
    }

    fn send_event(&self, event: Event) {
        match event {
            Event::Stopped {
                thread,
                reason,
                description,
            } => self.event(
                "stopped",
                json!({
                    "reason": reason.as_str(),
                    "threadId": thread,
                    "description": description,
                    "text": description,
                    "allThreadsStopped": false,
                    "preserveFocusHint": false,
                }),
            ),
            Event::Continued { thread } => self.event(
                "continued",
                json!({ "threadId": thread, "allThreadsContinued": false }),
            ),
        }
    }

    // ---- handlers -----------------------------------------------------------------------

    fn debug_info(&self, _: &Value) -> Outcome {
        let info = self.debugger.info();
        let breakpoints: Vec<Value> = info
            .breakpoints
            .iter()
            .map(|(path, lines)| {
                json!({
                    "source": path,
                    "breakpoints": lines.iter().map(|line| json!({ "line": line })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!({
            "isStarted": info.started,
            "hashMethod": "Murmur2",
            "hashSeed": info.seed,
            "tmpFilePrefix": info.prefix,
            "tmpFileSuffix": cells::SUFFIX,
            "breakpoints": breakpoints,
            "stoppedThreads": info.stopped_threads,
            "richRendering": true,
            "exceptionPaths": [],
            "copyToGlobals": false,
        }))
    }

    fn initialize(&self, _: &Value) -> Outcome {
        self.debugger.start();
        Ok(json!({
            "supportsConfigurationDoneRequest": true,
            "supportsEvaluateForHovers": true,
            "supportsSetVariable": false,
            "supportsConditionalBreakpoints": false,
            "supportsStepBack": false,
            "supportsTerminateThreadsRequest": false,
            "supportsDelayedStackTraceLoading": false,
            "exceptionBreakpointFilters": [{
                "filter": "uncaught",
                "label": "Uncaught errors",
                "description": "Stop where an error happens that nothing in its thread catches",
                "default": false,
            }],
        }))
    }

    fn attach(&self, _: &Value) -> Outcome {
        self.debugger.start();
        Ok(json!({}))
    }

    fn nothing(&self, _: &Value) -> Outcome {
        Ok(json!({}))
    }

    fn disconnect(&self, _: &Value) -> Outcome {
        self.debugger.stop();
        Ok(json!({}))
    }

    fn dump_cell(&self, arguments: &Value) -> Outcome {
        let code = arguments["code"]
            .as_str()
            .ok_or("dumpCell needs the cell's `code`")?;
        Ok(json!({ "sourcePath": self.debugger.dump_cell(code) }))
    }

    fn source(&self, arguments: &Value) -> Outcome {
        let path = arguments["source"]["path"]
            .as_str()
            .ok_or("source needs `source.path`")?;
        let content = self
            .debugger
            .source(path)
            .ok_or_else(|| format!("no cell or file is known as {path}"))?;
        Ok(json!({ "content": content, "mimeType": "text/x-rhai" }))
    }

    fn set_breakpoints(&self, arguments: &Value) -> Outcome {
        let path = arguments["source"]["path"]
            .as_str()
            .ok_or("setBreakpoints needs `source.path`")?;
        let lines: Vec<usize> = arguments["breakpoints"]
            .as_array()
            .map(|bps| {
                bps.iter()
                    .filter_map(|bp| bp["line"].as_u64())
                    .map(|line| line as usize)
                    .collect()
            })
            .unwrap_or_default();
        let placed = self.debugger.set_breakpoints(path, &lines);
        let breakpoints: Vec<Value> = placed
            .iter()
            .map(|p| match p.line {
                Some(line) => json!({ "verified": true, "line": line, "source": { "path": path } }),
                None => json!({
                    "verified": false,
                    "line": p.requested,
                    "source": { "path": path },
                    "message": "no code at or after this line",
                }),
            })
            .collect();
        Ok(json!({ "breakpoints": breakpoints }))
    }

    fn set_exception_breakpoints(&self, arguments: &Value) -> Outcome {
        let filters: Vec<String> = arguments["filters"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        self.debugger.set_exception_filters(filters);
        Ok(json!({ "breakpoints": [] }))
    }

    fn threads(&self, _: &Value) -> Outcome {
        let threads: Vec<Value> = self
            .debugger
            .threads()
            .into_iter()
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect();
        Ok(json!({ "threads": threads }))
    }

    fn stack_trace(&self, arguments: &Value) -> Outcome {
        let thread = thread_id(arguments)?;
        let frames = self
            .debugger
            .stack_trace(thread)
            .ok_or_else(|| format!("thread {thread} is not stopped"))?;
        let total = frames.len();
        let start = arguments["startFrame"].as_u64().unwrap_or(0) as usize;
        let levels = match arguments["levels"].as_u64() {
            Some(0) | None => total,
            Some(n) => n as usize,
        };
        let frames: Vec<Value> = frames
            .into_iter()
            .skip(start)
            .take(levels)
            .map(|f| {
                let mut frame = json!({
                    "id": f.id,
                    "name": f.name,
                    "line": f.line,
                    "column": f.column.max(1),
                });
                if let Some(path) = f.path {
                    frame["source"] = json!({ "path": path });
                }
                frame
            })
            .collect();
        Ok(json!({ "stackFrames": frames, "totalFrames": total }))
    }

    fn scopes(&self, arguments: &Value) -> Outcome {
        let frame = arguments["frameId"]
            .as_i64()
            .ok_or("scopes needs a `frameId`")?;
        let scopes = self
            .debugger
            .scopes(frame)
            .ok_or_else(|| format!("no stopped frame {frame}"))?;
        let scopes: Vec<Value> = scopes
            .into_iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "variablesReference": s.reference,
                    "namedVariables": s.count,
                    "expensive": false,
                    "presentationHint": if s.name == "Locals" { "locals" } else { "globals" },
                })
            })
            .collect();
        Ok(json!({ "scopes": scopes }))
    }

    fn variables(&self, arguments: &Value) -> Outcome {
        let reference = arguments["variablesReference"]
            .as_i64()
            .ok_or("variables needs a `variablesReference`")?;
        let variables = self
            .debugger
            .variables(reference)
            .ok_or_else(|| format!("no variables are known by reference {reference}"))?;
        Ok(json!({ "variables": variables.iter().map(variable).collect::<Vec<_>>() }))
    }

    fn resume(&self, arguments: &Value, how: Resume) -> Outcome {
        let thread = thread_id(arguments)?;
        self.debugger.resume(thread, how)?;
        Ok(match how {
            Resume::Continue => json!({ "allThreadsContinued": false }),
            _ => json!({}),
        })
    }

    fn resume_continue(&self, arguments: &Value) -> Outcome {
        self.resume(arguments, Resume::Continue)
    }

    fn resume_next(&self, arguments: &Value) -> Outcome {
        self.resume(arguments, Resume::Over)
    }

    fn resume_step_in(&self, arguments: &Value) -> Outcome {
        self.resume(arguments, Resume::In)
    }

    fn resume_step_out(&self, arguments: &Value) -> Outcome {
        self.resume(arguments, Resume::Out)
    }

    fn pause(&self, arguments: &Value) -> Outcome {
        self.debugger.pause(thread_id(arguments)?);
        Ok(json!({}))
    }

    fn evaluate(&self, arguments: &Value) -> Outcome {
        let expression = arguments["expression"]
            .as_str()
            .ok_or("evaluate needs an `expression`")?;
        let value = self
            .debugger
            .evaluate(arguments["frameId"].as_i64(), expression)?;
        let view = self.debugger.view(String::new(), value);
        Ok(json!({
            "result": view.value,
            "type": shown_type(&view.type_name),
            "variablesReference": view.reference,
        }))
    }

    fn inspect_variables(&self, _: &Value) -> Outcome {
        let variables = self.debugger.inspect();
        Ok(json!({ "variables": variables.iter().map(variable).collect::<Vec<_>>() }))
    }

    fn rich_inspect_variables(&self, arguments: &Value) -> Outcome {
        let name = arguments["variableName"]
            .as_str()
            .ok_or("richInspectVariables needs a `variableName`")?;
        let value = match arguments["frameId"].as_i64() {
            Some(frame) => self.debugger.frame_variable(frame, name),
            None => self.debugger.global(name),
        }
        .ok_or_else(|| format!("no variable `{name}`"))?;
        let view = self.debugger.view(name.to_string(), value.clone());
        let mut data = serde_json::Map::new();
        for (mime, content) in mime_bundle(&value) {
            data.insert(mime, content);
        }
        // The same text the variables panel shows.
        data.insert("text/plain".into(), Value::String(view.value));
        Ok(json!({ "data": data, "metadata": {} }))
    }

    fn modules(&self, _: &Value) -> Outcome {
        Ok(json!({ "modules": [], "totalModules": 0 }))
    }
}

fn thread_id(arguments: &Value) -> Result<i64, String> {
    arguments["threadId"]
        .as_i64()
        .ok_or_else(|| "the request needs a `threadId`".to_string())
}

/// The type a frontend is told. JupyterLab's variables panel shows the value of a variable
/// whose type is Python's `int`, `float`, `bool` or `str`, and the type of any other: Rhai's
/// numbers, booleans, strings and characters are given those names.
fn shown_type(type_name: &str) -> &str {
    match type_name {
        "i64" | "i32" | "u64" | "u32" | "i16" | "u16" | "i8" | "u8" | "int" => "int",
        "f64" | "f32" | "float" => "float",
        "bool" => "bool",
        "string" | "char" => "str",
        other => other,
    }
}

fn variable(view: &VariableView) -> Value {
    let mut variable = json!({
        "name": view.name,
        "value": view.value,
        "type": shown_type(&view.type_name),
        "evaluateName": view.name,
        "variablesReference": view.reference,
    });
    if view.count > 0 {
        variable["namedVariables"] = json!(view.count);
    }
    variable
}
