//! The kernel's implementation of the runtime's output sink: IOPub messages parented to
//! the request of the cell that produced the output.

use super::comms::Comms;
use super::iopub::Iopub;
use super::stdin::StdinChannel;
use super::widgets::{Channel, WidgetPanel};
use crate::protocol::Message;
use crate::runtime::panel::{OnEvent, Panel, Part};
use crate::runtime::sink::{InputError, MimeBundle, OutputSink, Stream};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

pub struct IopubSink {
    request: Arc<Message>,
    parent_header: Arc<Value>,
    iopub: Iopub,
    stdin: Arc<StdinChannel>,
    allow_stdin: bool,
    comms: Comms,
    /// Payloads (pager text) for the execute reply.
    payloads: Mutex<Vec<Value>>,
}

impl IopubSink {
    pub fn new(
        request: Arc<Message>,
        iopub: Iopub,
        stdin: Arc<StdinChannel>,
        allow_stdin: bool,
        comms: Comms,
    ) -> Self {
        let parent_header = Arc::new(request.header_value());
        IopubSink {
            request,
            parent_header,
            iopub,
            stdin,
            allow_stdin,
            comms,
            payloads: Mutex::new(Vec::new()),
        }
    }

    pub fn take_payloads(&self) -> Vec<Value> {
        self.payloads
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

impl OutputSink for IopubSink {
    fn write(&self, stream: Stream, text: &str) {
        self.iopub
            .stream(self.parent_header.clone(), stream.name(), text);
    }

    fn display(&self, bundle: MimeBundle, display_id: Option<&str>, update: bool) {
        let transient = match display_id {
            Some(id) => json!({ "display_id": id }),
            None => json!({}),
        };
        let msg_type = if update {
            "update_display_data"
        } else {
            "display_data"
        };
        self.iopub.send_with_parent_header(
            msg_type,
            &self.parent_header,
            json!({ "data": bundle, "metadata": {}, "transient": transient }),
        );
    }

    fn clear_output(&self, wait: bool) {
        self.iopub.send_with_parent_header(
            "clear_output",
            &self.parent_header,
            json!({ "wait": wait }),
        );
    }

    fn read_input(&self, prompt: &str, password: bool) -> Result<String, InputError> {
        if !self.allow_stdin {
            return Err(InputError::NotAllowed);
        }
        // Output printed before the prompt must be visible before the frontend asks.
        self.iopub.flush(std::time::Duration::from_secs(1));
        self.stdin.read_line(&self.request, prompt, password)
    }

    /// Every Jupyter frontend gets widgets: the protocol has no way to ask whether it can
    /// draw them (ipykernel sends them all the same), and one that cannot shows `text`.
    fn panel(&self, parts: Vec<Part>, text: &str, on_event: OnEvent) -> Option<Arc<dyn Panel>> {
        let channel = Channel {
            iopub: self.iopub.clone(),
            parent: self.parent_header.clone(),
            comms: self.comms.clone(),
        };
        Some(WidgetPanel::open(channel, parts, text, on_event))
    }

    fn page(&self, text: &str) {
        if let Ok(mut payloads) = self.payloads.lock() {
            payloads.push(json!({
                "source": "page",
                "data": { "text/plain": text },
                "start": 0
            }));
        }
    }
}
