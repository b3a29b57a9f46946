//! Encoding and decoding of multipart ZeroMQ frames: `identities… <IDS|MSG> signature header
//! parent metadata content buffers…`.

use super::message::{Header, Message};
use super::replay::SeenSignatures;
use super::signer::Signer;
use serde_json::Value;
use thiserror::Error;

pub const DELIMITER: &[u8] = b"<IDS|MSG>";

#[derive(Debug, Error, PartialEq)]
pub enum WireError {
    #[error("missing <IDS|MSG> delimiter")]
    MissingDelimiter,
    #[error("message has {0} frames after the delimiter, at least 5 are needed")]
    TooFewFrames(usize),
    #[error("invalid signature")]
    BadSignature,
    #[error("replayed message (its signature was seen before)")]
    Replayed,
    #[error("invalid JSON in {part}: {error}")]
    BadJson { part: &'static str, error: String },
}

/// Decodes and verifies a multipart message. Nothing is parsed before the signature is
/// checked, so an unsigned message never reaches the JSON parser.
pub fn decode(frames: Vec<Vec<u8>>, signer: &Signer) -> Result<Message, WireError> {
    decode_checked(frames, signer, None)
}

/// Like [`decode`], and also rejects a message whose signature is in `seen` (a replay),
/// recording the signature of every correctly signed message. This is what a kernel uses
/// for requests; [`decode`] alone suits a client reading the kernel's messages.
pub fn decode_once(
    frames: Vec<Vec<u8>>,
    signer: &Signer,
    seen: &SeenSignatures,
) -> Result<Message, WireError> {
    decode_checked(frames, signer, Some(seen))
}

fn decode_checked(
    frames: Vec<Vec<u8>>,
    signer: &Signer,
    seen: Option<&SeenSignatures>,
) -> Result<Message, WireError> {
    let split = frames
        .iter()
        .position(|f| f.as_slice() == DELIMITER)
        .ok_or(WireError::MissingDelimiter)?;
    let mut frames = frames;
    let rest = frames.split_off(split + 1);
    frames.pop(); // the delimiter itself
    let identities = frames;
    if rest.len() < 5 {
        return Err(WireError::TooFewFrames(rest.len()));
    }
    let mut rest = rest.into_iter();
    let mut next = || rest.next().unwrap_or_default();
    let signature = next();
    let (header, parent, metadata, content) = (next(), next(), next(), next());
    if !signer.verify(&signature, [&header, &parent, &metadata, &content]) {
        return Err(WireError::BadSignature);
    }
    // Recorded before the JSON is parsed, as ipykernel does: a signed message is consumed
    // once whether or not its parts turn out to be valid.
    if seen.is_some_and(|seen| !seen.insert(&signature)) {
        return Err(WireError::Replayed);
    }
    let buffers: Vec<Vec<u8>> = rest.collect();
    let json = |part: &'static str, bytes: &[u8]| -> Result<Value, WireError> {
        serde_json::from_slice(bytes).map_err(|e| WireError::BadJson {
            part,
            error: e.to_string(),
        })
    };
    let header: Header = serde_json::from_slice(&header).map_err(|e| WireError::BadJson {
        part: "header",
        error: e.to_string(),
    })?;
    Ok(Message {
        identities,
        header,
        parent_header: json("parent_header", &parent)?,
        metadata: json("metadata", &metadata)?,
        content: json("content", &content)?,
        buffers,
    })
}

/// Encodes and signs a message into multipart frames.
pub fn encode(msg: &Message, signer: &Signer) -> Vec<Vec<u8>> {
    let to_bytes = |v: &Value| serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let header = serde_json::to_vec(&msg.header).unwrap_or_else(|_| b"{}".to_vec());
    let parent = to_bytes(&msg.parent_header);
    let metadata = to_bytes(&msg.metadata);
    let content = to_bytes(&msg.content);
    let signature = signer.sign([&header, &parent, &metadata, &content]);
    let mut frames = msg.identities.clone();
    frames.push(DELIMITER.to_vec());
    frames.push(signature.into_bytes());
    frames.extend([header, parent, metadata, content]);
    frames.extend(msg.buffers.iter().cloned());
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::Session;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_identities_and_buffers() {
        let signer = Signer::new("k");
        let session = Session::new();
        let mut msg = session.message(
            "execute_request",
            None,
            vec![b"id1".to_vec()],
            json!({"code": "1"}),
        );
        msg.buffers.push(vec![0, 1, 2]);
        let frames = encode(&msg, &signer);
        let back = decode(frames, &signer).unwrap();
        assert_eq!(back.identities, vec![b"id1".to_vec()]);
        assert_eq!(back.header, msg.header);
        assert_eq!(back.content, json!({"code": "1"}));
        assert_eq!(back.buffers, vec![vec![0, 1, 2]]);
    }

    #[test]
    fn buffers_are_not_signed() {
        let signer = Signer::new("k");
        let msg = Session::new().message("x", None, vec![], json!({}));
        let mut frames = encode(&msg, &signer);
        frames.push(b"extra buffer".to_vec());
        assert!(decode(frames, &signer).is_ok());
    }

    #[test]
    fn rejects_bad_frames() {
        let signer = Signer::new("k");
        assert_eq!(
            decode(vec![b"a".to_vec()], &signer).unwrap_err(),
            WireError::MissingDelimiter
        );
        assert_eq!(
            decode(vec![DELIMITER.to_vec(), b"sig".to_vec()], &signer).unwrap_err(),
            WireError::TooFewFrames(1)
        );
        let msg = Session::new().message("x", None, vec![], json!({"code": "1"}));
        let mut frames = encode(&msg, &signer);
        let last = frames.len() - 1;
        frames[last] = b"{\"code\":\"2\"}".to_vec();
        assert_eq!(
            decode(frames, &signer).unwrap_err(),
            WireError::BadSignature
        );
        let frames = encode(&msg, &Signer::new("other key"));
        assert_eq!(
            decode(frames, &signer).unwrap_err(),
            WireError::BadSignature
        );
    }

    #[test]
    fn decode_once_rejects_a_replay() {
        let signer = Signer::new("k");
        let seen = SeenSignatures::new(8);
        let msg = Session::new().message("x", None, vec![], json!({"code": "1"}));
        let frames = encode(&msg, &signer);
        assert!(decode_once(frames.clone(), &signer, &seen).is_ok());
        assert_eq!(
            decode_once(frames.clone(), &signer, &seen).unwrap_err(),
            WireError::Replayed
        );
        // Plain decode keeps no history.
        assert!(decode(frames, &signer).is_ok());
    }
}
