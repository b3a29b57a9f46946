//! The runtime's panels as ipywidgets 8 models (widget protocol 2.1): each part is a stock
//! model of `@jupyter-widgets/controls` (an `HTMLModel`, or an `HBoxModel` of
//! `ButtonModel`s) inside one `VBoxModel`, so the frontend's own widget manager
//! (JupyterLab's `jupyterlab_widgets`, Notebook 7, VS Code) draws them with no extension
//! of ours. Models are opened with `comm_open` (target `jupyter.widget`), changed with
//! `update` messages, and a button's click comes back as a `custom` message.

use super::comms::{Comms, Handler, Incoming};
use super::iopub::Iopub;
use crate::protocol::Message;
use crate::runtime::panel::{Button, Event, OnEvent, Panel, Part};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};

pub const TARGET: &str = "jupyter.widget";
/// The widget protocol of ipywidgets 8, sent in every comm message's metadata.
const PROTOCOL: &str = "2.1.0";
const CONTROLS: &str = "@jupyter-widgets/controls";
const BASE: &str = "@jupyter-widgets/base";
/// The version of both JavaScript modules in ipywidgets 8.
const MODULE_VERSION: &str = "2.0.0";

/// Where a panel's messages go: IOPub, parented to the cell that opened it (so its
/// display lands under that cell), and the registry of comms.
#[derive(Clone)]
pub struct Channel {
    pub iopub: Iopub,
    pub parent: Arc<Value>,
    pub comms: Comms,
}

impl Channel {
    fn metadata() -> Value {
        json!({ "version": PROTOCOL })
    }

    /// Opens a model with its whole `state`; returns its id.
    fn open(&self, state: Map<String, Value>, handler: Option<Handler>) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.comms.open(&id, TARGET, state.clone(), handler);
        self.iopub.send_with_metadata(
            "comm_open",
            &self.parent,
            json!({
                "comm_id": id,
                "target_name": TARGET,
                "data": { "state": state, "buffer_paths": [] },
            }),
            Self::metadata(),
        );
        id
    }

    /// Sends the model `id` the keys of `change`.
    fn update(&self, id: &str, change: Map<String, Value>) {
        self.comms.update(id, &change);
        self.send_state(id, &self.parent, change);
    }

    fn send_state(&self, id: &str, parent: &Value, state: Map<String, Value>) {
        self.iopub.send_with_metadata(
            "comm_msg",
            parent,
            json!({
                "comm_id": id,
                "data": { "method": "update", "state": state, "buffer_paths": [] },
            }),
            Self::metadata(),
        );
    }

    /// A model of `module` with its view, plus `fields`.
    fn model(
        &self,
        module: &str,
        name: &str,
        view_module: &str,
        view: &str,
        fields: Value,
    ) -> Map<String, Value> {
        let mut state = Map::new();
        for (key, value) in [
            ("_model_module", module),
            ("_model_module_version", MODULE_VERSION),
            ("_model_name", name),
            ("_view_module", view_module),
            ("_view_module_version", MODULE_VERSION),
            ("_view_name", view),
        ] {
            state.insert(key.into(), json!(value));
        }
        if let Value::Object(fields) = fields {
            state.extend(fields);
        }
        state
    }

    /// A `LayoutModel` with `fields` (CSS of the widget's box); returns the reference to it.
    fn layout(&self, fields: Value) -> Value {
        let state = self.model(BASE, "LayoutModel", BASE, "LayoutView", fields);
        reference(&self.open(state, None))
    }

    /// A DOM widget of the controls module: its own layout and, if `style` names one, its
    /// own style model.
    fn control(
        &self,
        name: &str,
        view: &str,
        style: Option<&str>,
        layout: Value,
        fields: Value,
        handler: Option<Handler>,
    ) -> String {
        let mut state = self.model(CONTROLS, name, CONTROLS, view, fields);
        state.insert("layout".into(), self.layout(layout));
        state.insert("_dom_classes".into(), json!([]));
        if let Some(style) = style {
            let style = self.model(CONTROLS, style, BASE, "StyleView", json!({}));
            state.insert("style".into(), reference(&self.open(style, None)));
        }
        self.open(state, handler)
    }

    fn html(&self, html: &str) -> String {
        self.control(
            "HTMLModel",
            "HTMLView",
            Some("HTMLStyleModel"),
            json!({}),
            json!({ "value": html, "description": "", "placeholder": "" }),
            None,
        )
    }

    fn button(&self, button: &Button, handler: Handler) -> String {
        self.control(
            "ButtonModel",
            "ButtonView",
            Some("ButtonStyleModel"),
            // The label is a whole step (`Thread-1: write counter.value`): no fixed width.
            json!({ "width": "auto" }),
            json!({
                "description": button.label,
                "tooltip": button.tooltip,
                "disabled": false,
                "icon": "",
                "button_style": "",
            }),
            Some(handler),
        )
    }

    fn boxed(&self, name: &str, view: &str, children: Vec<Value>, layout: Value) -> String {
        self.control(
            name,
            view,
            None,
            layout,
            json!({ "children": children, "box_style": "" }),
            None,
        )
    }
}

fn reference(id: &str) -> Value {
    json!(format!("IPY_MODEL_{id}"))
}

/// A part as drawn: its model, and for a row of buttons the button of each key so far.
enum Drawn {
    Html(String),
    Buttons {
        row: String,
        buttons: Vec<(usize, String)>,
    },
}

impl Drawn {
    fn id(&self) -> &str {
        match self {
            Drawn::Html(id) | Drawn::Buttons { row: id, .. } => id,
        }
    }
}

/// A runtime panel drawn as ipywidgets.
pub struct WidgetPanel {
    channel: Channel,
    on_event: OnEvent,
    parts: Mutex<Vec<Drawn>>,
}

impl WidgetPanel {
    /// Opens the models of `parts` (the models a widget refers to before it, as the
    /// frontend resolves references when a model opens) and displays the panel, with
    /// `text` for frontends without a widget manager.
    pub fn open(
        channel: Channel,
        parts: Vec<Part>,
        text: &str,
        on_event: OnEvent,
    ) -> Arc<WidgetPanel> {
        let panel = Arc::new(WidgetPanel {
            channel,
            on_event,
            parts: Mutex::new(Vec::new()),
        });
        let mut drawn = Vec::new();
        for (index, part) in parts.iter().enumerate() {
            drawn.push(match part {
                Part::Html(html) => Drawn::Html(panel.channel.html(html)),
                Part::Buttons(_) => Drawn::Buttons {
                    row: panel.channel.boxed(
                        "HBoxModel",
                        "HBoxView",
                        Vec::new(),
                        json!({ "flex_flow": "row wrap" }),
                    ),
                    buttons: Vec::new(),
                },
            });
            if let Part::Buttons(buttons) = part {
                panel.draw_buttons(&mut drawn, index, buttons);
            }
        }
        let children = drawn.iter().map(|d| reference(d.id())).collect();
        let root = panel
            .channel
            .boxed("VBoxModel", "VBoxView", children, json!({}));
        *panel.parts.lock().unwrap_or_else(|e| e.into_inner()) = drawn;
        let mut bundle = Map::new();
        bundle.insert(
            "application/vnd.jupyter.widget-view+json".into(),
            json!({ "model_id": root, "version_major": 2, "version_minor": 0 }),
        );
        bundle.insert("text/plain".into(), json!(text));
        panel.channel.iopub.send_with_parent_header(
            "display_data",
            &panel.channel.parent,
            json!({ "data": bundle, "metadata": {}, "transient": {} }),
        );
        panel
    }

    /// Shows `buttons` in the row of part `index`: a key seen before keeps its button
    /// (relabelled), a new key gets a new one.
    fn draw_buttons(&self, drawn: &mut [Drawn], index: usize, buttons: &[Button]) {
        let Some(Drawn::Buttons {
            row,
            buttons: known,
        }) = drawn.get_mut(index)
        else {
            return;
        };
        let mut children = Vec::new();
        for button in buttons {
            let id = match known.iter().find(|(key, _)| *key == button.key) {
                Some((_, id)) => {
                    let mut change = Map::new();
                    change.insert("description".into(), json!(button.label));
                    change.insert("tooltip".into(), json!(button.tooltip));
                    self.channel.update(id, change);
                    id.clone()
                }
                None => {
                    let on_event = self.on_event.clone();
                    let (part, key) = (index, button.key);
                    let handler: Handler = Arc::new(move |incoming| match incoming {
                        Incoming::Message(data) if is_click(data) => {
                            on_event(Event::Click { part, key })
                        }
                        Incoming::Message(_) => {}
                        Incoming::Closed => on_event(Event::Closed),
                    });
                    let id = self.channel.button(button, handler);
                    known.push((button.key, id.clone()));
                    id
                }
            };
            children.push(reference(&id));
        }
        let mut change = Map::new();
        change.insert("children".into(), Value::Array(children));
        self.channel.update(row, change);
    }
}

impl Panel for WidgetPanel {
    fn set(&self, index: usize, part: Part) {
        let mut drawn = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        match (&part, drawn.get(index)) {
            (Part::Html(html), Some(Drawn::Html(id))) => {
                let mut change = Map::new();
                change.insert("value".into(), json!(html));
                self.channel.update(id, change);
            }
            (Part::Buttons(buttons), Some(Drawn::Buttons { .. })) => {
                self.draw_buttons(&mut drawn, index, buttons);
            }
            // A part cannot change its kind; the runtime never asks it to.
            _ => {}
        }
    }
}

/// A button's click: `{method: "custom", content: {event: "click"}}`.
fn is_click(data: &Value) -> bool {
    data["method"] == "custom" && data["content"]["event"] == "click"
}

/// A `comm_msg` from the frontend: a `request_state` (a frontend that reloaded and
/// wants the models again) is answered with the model's whole state; anything else goes to
/// the comm's handler. Malformed or unknown messages are dropped.
pub fn comm_msg(comms: &Comms, iopub: &Iopub, request: &Message) {
    let Some(id) = request.content["comm_id"].as_str() else {
        return;
    };
    let data = &request.content["data"];
    if data["method"] == "request_state" {
        if let Some((_, state)) = comms.state(id).filter(|(target, _)| target == TARGET) {
            let channel = Channel {
                iopub: iopub.clone(),
                parent: Arc::new(request.header_value()),
                comms: comms.clone(),
            };
            channel.send_state(id, &channel.parent, state);
        }
        return;
    }
    if !comms.deliver(id, Incoming::Message(data)) {
        eprintln!("[rhai-kernel] comm_msg for a comm that is not open: {id}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_custom_click_is_a_click() {
        assert!(is_click(
            &json!({"method": "custom", "content": {"event": "click"}})
        ));
        assert!(!is_click(
            &json!({"method": "custom", "content": {"event": "hover"}})
        ));
        assert!(!is_click(&json!({"method": "update", "state": {}})));
        assert!(!is_click(&json!("click")));
        assert!(!is_click(&json!(null)));
    }
}
