//! Message and header types of the Jupyter messaging spec, and helpers to build replies.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A message header. Unknown fields sent by a client are kept so that a reply's
/// `parent_header` echoes the request's header exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Header {
    #[serde(default)]
    pub msg_id: String,
    #[serde(default)]
    pub session: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub msg_type: String,
    #[serde(default)]
    pub version: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A decoded message: routing identities, the four JSON parts and binary buffers.
#[derive(Debug, Clone)]
pub struct Message {
    pub identities: Vec<Vec<u8>>,
    pub header: Header,
    pub parent_header: Value,
    pub metadata: Value,
    pub content: Value,
    pub buffers: Vec<Vec<u8>>,
}

impl Message {
    pub fn msg_type(&self) -> &str {
        &self.header.msg_type
    }

    /// The header of this message as a JSON value, for use as another message's parent.
    pub fn header_value(&self) -> Value {
        serde_json::to_value(&self.header).unwrap_or_else(|_| json!({}))
    }
}

/// The kernel's identity on the wire: creates headers with a fresh `msg_id` and `date`.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub username: String,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A new session id; the kernel makes one at every start.
    pub fn new() -> Self {
        Session {
            id: uuid::Uuid::new_v4().to_string(),
            username: "kernel".into(),
        }
    }

    pub fn header(&self, msg_type: &str) -> Header {
        Header {
            msg_id: uuid::Uuid::new_v4().to_string(),
            session: self.id.clone(),
            username: self.username.clone(),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            msg_type: msg_type.to_string(),
            version: super::PROTOCOL_VERSION.to_string(),
            extra: Map::new(),
        }
    }

    /// A new message whose parent is `parent` (or none), routed to the given identities.
    pub fn message(
        &self,
        msg_type: &str,
        parent: Option<&Message>,
        identities: Vec<Vec<u8>>,
        content: Value,
    ) -> Message {
        Message {
            identities,
            header: self.header(msg_type),
            parent_header: parent.map_or_else(|| json!({}), Message::header_value),
            metadata: json!({}),
            content,
            buffers: Vec::new(),
        }
    }

    /// A reply to `request` on the same socket (same routing identities).
    pub fn reply(&self, request: &Message, msg_type: &str, content: Value) -> Message {
        self.message(msg_type, Some(request), request.identities.clone(), content)
    }
}
