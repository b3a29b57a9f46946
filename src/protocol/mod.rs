//! The Jupyter wire protocol: connection files, message framing and HMAC signing.
//!
//! Nothing here knows about sockets or about Rhai; the kernel layer moves the frames.

pub mod connection;
pub mod message;
pub mod replay;
pub mod signer;
pub mod wire;

pub use connection::{ConnectionInfo, CurveKeys};
pub use message::{Header, Message};
pub use replay::SeenSignatures;
pub use signer::Signer;
pub use wire::{decode, decode_once, encode, WireError};

/// Protocol version spoken by this kernel (messaging spec).
pub const PROTOCOL_VERSION: &str = "5.3";
