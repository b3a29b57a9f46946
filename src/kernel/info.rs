//! The `kernel_info_reply` content.

use crate::interpreter::LanguageInfo;
use crate::protocol::PROTOCOL_VERSION;
use serde_json::{json, Value};

pub fn kernel_info(language: &LanguageInfo) -> Value {
    json!({
        "status": "ok",
        "protocol_version": PROTOCOL_VERSION,
        "implementation": "rhai-kernel",
        "implementation_version": env!("CARGO_PKG_VERSION"),
        "language_info": {
            "name": language.name,
            "version": language.version,
            "mimetype": language.mimetype,
            "file_extension": language.file_extension,
            "pygments_lexer": language.pygments_lexer,
            "codemirror_mode": language.codemirror_mode,
            "nbconvert_exporter": "script",
        },
        "banner": format!(
            "rhai-kernel {} — Rhai {} with native threads, processes and locks.\n\
             Type `name?` for help on a function, Tab to complete.{}",
            env!("CARGO_PKG_VERSION"),
            language.version,
            RUST_CELLS_BANNER
        ),
        // The Jupyter debug protocol on the control channel (`kernel::debug`).
        "debugger": true,
        "supported_features": ["debugger"],
        "help_links": [
            { "text": "The Rhai Book", "url": "https://rhai.rs/book/" },
            { "text": "Rhai language reference", "url": "https://rhai.rs/book/language/" },
            { "text": "Rhai standard library", "url": "https://rhai.rs/book/ref/" },
        ],
    })
}

/// The banner's last line tells whether this build runs `%%rust` cells (clients and the
/// notebook tests read it).
#[cfg(feature = "rust")]
const RUST_CELLS_BANNER: &str = "\nCells whose first line is `%%rust` run Rust (evcxr).";
#[cfg(not(feature = "rust"))]
const RUST_CELLS_BANNER: &str = "";
