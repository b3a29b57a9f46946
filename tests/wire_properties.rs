//! Property tests of the wire decoder and signature check (`protocol::wire`): arbitrary and
//! mutated multipart messages never panic the decoder, and nothing tampered, unsigned or
//! replayed is ever accepted. Case count: `PROPTEST_CASES` (default 256 per property).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rhai_kernel::protocol::message::Session;
use rhai_kernel::protocol::wire::DELIMITER;
use rhai_kernel::protocol::{
    decode, decode_once, encode, Header, Message, SeenSignatures, Signer, WireError,
};
use serde_json::{Map, Value};

/// A fixed seed so that a run is reproducible, unless `PROPTEST_RNG_SEED` picks another;
/// `PROPTEST_CASES` sets the number of cases for long runs.
fn config() -> Config {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x5151_7e57);
    }
    config
}

/// Arbitrary JSON without floats (a float need not survive a text round trip bit for bit,
/// which is serde_json's business, not the decoder's).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Routing identities never equal to the delimiter (a ROUTER makes them up, not a peer).
fn identities() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop::collection::vec(any::<u8>(), 0..16)
            .prop_filter("not the delimiter", |f| f.as_slice() != DELIMITER),
        0..3,
    )
}

fn message() -> impl Strategy<Value = Message> {
    (
        identities(),
        (".{0,12}", ".{0,12}", ".{0,12}", "[a-z_]{0,20}"),
        json_value(),
        json_value(),
        json_value(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 0..3),
    )
        .prop_map(
            |(
                identities,
                (msg_id, session, date, msg_type),
                parent,
                metadata,
                content,
                buffers,
            )| {
                Message {
                    identities,
                    header: Header {
                        msg_id,
                        session,
                        username: "fuzz".into(),
                        date,
                        msg_type,
                        version: "5.3".into(),
                        extra: Map::new(),
                    },
                    parent_header: parent,
                    metadata,
                    content,
                    buffers,
                }
            },
        )
}

fn delimiter_index(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .position(|f| f.as_slice() == DELIMITER)
        .expect("encode writes a delimiter")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_frames_never_panic(
        mut frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 0..10),
        delimiter_at in prop::option::of(0usize..10),
        key in prop_oneof![Just(String::new()), "[a-f0-9]{1,32}"],
    ) {
        if let Some(at) = delimiter_at {
            frames.insert(at.min(frames.len()), DELIMITER.to_vec());
        }
        let signer = Signer::new(&key);
        let seen = SeenSignatures::new(16);
        // Either outcome is fine; a panic fails the property.
        let _ = decode(frames.clone(), &signer);
        let _ = decode_once(frames, &signer, &seen);
    }

    #[test]
    fn encode_then_decode_is_identity(msg in message(), key in "[ -~]{0,40}") {
        let signer = Signer::new(&key);
        let back = decode(encode(&msg, &signer), &signer).expect("own message decodes");
        prop_assert_eq!(back.identities, msg.identities);
        prop_assert_eq!(back.header, msg.header);
        prop_assert_eq!(back.parent_header, msg.parent_header);
        prop_assert_eq!(back.metadata, msg.metadata);
        prop_assert_eq!(back.content, msg.content);
        prop_assert_eq!(back.buffers, msg.buffers);
    }

    #[test]
    fn any_change_to_a_signed_frame_is_rejected(
        msg in message(),
        part in 0usize..4,
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        append in any::<bool>(),
    ) {
        let signer = Signer::new("a key");
        let mut frames = encode(&msg, &signer);
        let d = delimiter_index(&frames);
        let frame = &mut frames[d + 2 + part];
        if append || frame.is_empty() {
            frame.push(flip);
        } else {
            let i = at.index(frame.len());
            frame[i] ^= flip;
        }
        prop_assert_eq!(decode(frames, &signer).unwrap_err(), WireError::BadSignature);
    }

    #[test]
    fn a_changed_signature_is_rejected(
        msg in message(),
        at in any::<prop::sample::Index>(),
        digit in 0u8..16,
    ) {
        let signer = Signer::new("a key");
        let mut frames = encode(&msg, &signer);
        let d = delimiter_index(&frames);
        let sig = &mut frames[d + 1];
        let i = at.index(sig.len());
        let new = b"0123456789abcdef"[usize::from(digit)];
        prop_assume!(!sig[i].eq_ignore_ascii_case(&new));
        sig[i] = new;
        prop_assert_eq!(decode(frames, &signer).unwrap_err(), WireError::BadSignature);
    }

    #[test]
    fn another_key_or_no_signature_is_rejected(msg in message(), key in "[ -~]{1,40}") {
        prop_assume!(key != "the kernel's key");
        let kernel = Signer::new("the kernel's key");
        prop_assert_eq!(
            decode(encode(&msg, &Signer::new(&key)), &kernel).unwrap_err(),
            WireError::BadSignature
        );
        prop_assert_eq!(
            decode(encode(&msg, &Signer::new("")), &kernel).unwrap_err(),
            WireError::BadSignature
        );
    }

    #[test]
    fn correctly_signed_invalid_json_is_rejected_by_part(
        msg in message(),
        part in 0usize..4,
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assume!(serde_json::from_slice::<Value>(&garbage).is_err());
        let signer = Signer::new("k");
        let mut frames = encode(&msg, &signer);
        let d = delimiter_index(&frames);
        frames[d + 2 + part] = garbage;
        let signed: Vec<&[u8]> = frames[d + 2..d + 6].iter().map(Vec::as_slice).collect();
        let sig = signer.sign([signed[0], signed[1], signed[2], signed[3]]);
        frames[d + 1] = sig.into_bytes();
        let name = ["header", "parent_header", "metadata", "content"][part];
        match decode(frames, &signer) {
            Err(WireError::BadJson { part, .. }) => prop_assert_eq!(part, name),
            other => {
                return Err(TestCaseError::fail(format!("expected BadJson in {name}, got {other:?}")))
            }
        }
    }

    #[test]
    fn a_header_that_is_not_an_object_is_rejected(
        msg in message(),
        header in json_value().prop_filter("not an object", |v| !v.is_object()),
    ) {
        let signer = Signer::new("k");
        let mut frames = encode(&msg, &signer);
        let d = delimiter_index(&frames);
        frames[d + 2] = serde_json::to_vec(&header).expect("serialize");
        let sig = signer.sign([&frames[d + 2], &frames[d + 3], &frames[d + 4], &frames[d + 5]]);
        frames[d + 1] = sig.into_bytes();
        let is_header_error =
            matches!(decode(frames, &signer), Err(WireError::BadJson { part: "header", .. }));
        prop_assert!(is_header_error);
    }

    #[test]
    fn without_the_delimiter_nothing_decodes(msg in message()) {
        let signer = Signer::new("k");
        let mut frames = encode(&msg, &signer);
        frames.remove(delimiter_index(&frames));
        prop_assert_eq!(decode(frames, &signer).unwrap_err(), WireError::MissingDelimiter);
    }

    #[test]
    fn each_signed_message_is_accepted_once(
        contents in prop::collection::vec(json_value(), 1..12),
        uppercase in any::<bool>(),
    ) {
        let signer = Signer::new("k");
        let session = Session::new();
        let seen = SeenSignatures::new(64);
        let sent: Vec<Vec<Vec<u8>>> = contents
            .into_iter()
            .map(|c| encode(&session.message("execute_request", None, vec![], c), &signer))
            .collect();
        for frames in &sent {
            prop_assert!(decode_once(frames.clone(), &signer, &seen).is_ok());
        }
        for frames in &sent {
            let mut replay = frames.clone();
            if uppercase {
                // Hex is case-insensitive: the same signature spelled differently still
                // verifies, and must still count as seen.
                let d = delimiter_index(&replay);
                replay[d + 1] = replay[d + 1].to_ascii_uppercase();
            }
            prop_assert_eq!(
                decode_once(replay, &signer, &seen).unwrap_err(),
                WireError::Replayed
            );
        }
    }

    #[test]
    fn the_history_stays_within_its_bound(
        capacity in 1usize..32,
        count in 0usize..100,
    ) {
        let seen = SeenSignatures::new(capacity);
        for i in 0..count {
            let fresh = seen.insert(format!("{i:064x}").as_bytes());
            prop_assert!(fresh);
        }
        prop_assert_eq!(seen.len(), count.min(capacity));
        if count > 0 {
            // The newest signature is always remembered.
            let newest = format!("{:064x}", count - 1);
            prop_assert!(!seen.insert(newest.as_bytes()));
        }
    }
}
