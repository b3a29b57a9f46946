//! Live controls that a frontend shows for a native (`play`'s board): the parts the runtime
//! asks for, the changes it makes to them in place, and what the user does with them. The
//! kernel draws a panel with the frontend's widget manager; a host without one has none.

use std::sync::Arc;

/// One part of a panel; a panel's parts stack top to bottom.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Rich text, as HTML.
    Html(String),
    /// A row of buttons.
    Buttons(Vec<Button>),
}

/// A button; `key` tells the clicks on it apart (the same key is the same button when its
/// row changes, so a frontend may keep it).
#[derive(Clone, Debug, PartialEq)]
pub struct Button {
    pub key: usize,
    pub label: String,
    pub tooltip: String,
}

/// What the user did to a panel.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The button `key` of the part `part` was clicked.
    Click { part: usize, key: usize },
    /// The frontend closed the panel: nothing more will come.
    Closed,
}

/// Called (on whatever thread the frontend's messages are handled) for every event.
pub type OnEvent = Arc<dyn Fn(Event) + Send + Sync>;

/// A panel on show. Parts are changed in place; the frontend redraws them.
pub trait Panel: Send + Sync {
    /// Part number `index` (as first given) becomes `part`.
    fn set(&self, index: usize, part: Part);
}
