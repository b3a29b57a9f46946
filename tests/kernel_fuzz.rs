//! End-to-end fuzzing of the running kernel binary: batches of random and malformed
//! multipart messages on the shell and control sockets. After every batch the kernel must
//! still beat, answer `kernel_info_request` on both channels, have run none of the forged,
//! unsigned or replayed cells, and have answered each signed request of the wrong shape
//! with an error reply. Case count: `PROPTEST_CASES` (default 48 batches).

mod kernel_support;

use kernel_support::{execute_content, stream_text, Kernel, TIMEOUT};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use rhai_kernel::protocol::wire::DELIMITER;
use rhai_kernel::protocol::{encode, Message, Signer};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// What every forged cell would do if it ran: a visible side effect checked after each batch.
const FORGED_CODE: &str = r#"fuzz_hits += 1; print("FUZZ-MARKER"); fuzz_hits"#;
const MARKER: &str = "FUZZ-MARKER";

/// How a forged message's signature is wrong.
#[derive(Debug, Clone)]
enum BadSig {
    Empty,
    /// Well-formed hex, wrong value.
    WrongHex,
    /// The right signature cut short.
    Truncated(usize),
    /// Not hex at all.
    Garbage(Vec<u8>),
    /// Signed with a key that is not the kernel's.
    OtherKey(String),
}

/// One message thrown at the kernel.
#[derive(Debug, Clone)]
enum Attack {
    /// Random frames, possibly with a delimiter somewhere.
    Frames(Vec<Vec<u8>>),
    /// A forged cell without the `<IDS|MSG>` delimiter.
    NoDelimiter,
    /// A forged cell (or a forged shutdown on control) with a bad signature.
    Forged(BadSig, bool),
    /// Correctly signed, but one of the four JSON parts is not JSON.
    BadJson { part: usize, bytes: Vec<u8> },
    /// Correctly signed, with a header whose fields have the wrong JSON types.
    BadHeader(Value),
    /// The batch's genuine cell sent again byte for byte (`true`: with its hex in capitals).
    Replay(bool),
    /// Correctly signed with a message type nobody handles.
    UnknownType(String),
    /// Correctly signed `execute_request` whose content has the wrong shape.
    BadContent(Value),
}

#[derive(Debug, Clone)]
struct Shot {
    attack: Attack,
    on_control: bool,
}

fn bad_sig() -> impl Strategy<Value = BadSig> {
    prop_oneof![
        Just(BadSig::Empty),
        Just(BadSig::WrongHex),
        (0usize..64).prop_map(BadSig::Truncated),
        prop::collection::vec(any::<u8>(), 1..80).prop_map(BadSig::Garbage),
        "[ -~]{1,20}".prop_map(BadSig::OtherKey),
    ]
}

/// Contents that are not a valid `execute_request`; the forged code is inside several of
/// them, so that one read leniently would show.
fn bad_content() -> impl Strategy<Value = Value> {
    let not_a_string = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(json!([FORGED_CODE])),
        Just(json!({"code": FORGED_CODE})),
    ];
    prop_oneof![
        not_a_string.prop_map(|code| json!({"code": code, "silent": false})),
        Just(json!([FORGED_CODE])),
        Just(json!(FORGED_CODE)),
        Just(json!(42)),
        Just(json!({})),
        Just(json!({"code": FORGED_CODE, "silent": "no"})),
        Just(json!({"code": FORGED_CODE, "user_expressions": [FORGED_CODE]})),
        Just(json!({"code": FORGED_CODE, "store_history": 1})),
    ]
}

fn attack() -> impl Strategy<Value = Attack> {
    prop_oneof![
        3 => prop::collection::vec(
            prop_oneof![
                4 => prop::collection::vec(any::<u8>(), 0..64),
                1 => Just(DELIMITER.to_vec()),
                1 => Just(b"{}".to_vec()),
            ],
            0..9,
        )
        .prop_map(Attack::Frames),
        1 => Just(Attack::NoDelimiter),
        3 => (bad_sig(), any::<bool>()).prop_map(|(sig, shutdown)| Attack::Forged(sig, shutdown)),
        2 => (0usize..4, prop::collection::vec(any::<u8>(), 0..32))
            .prop_filter("not JSON", |(_, b)| serde_json::from_slice::<Value>(b).is_err())
            .prop_map(|(part, bytes)| Attack::BadJson { part, bytes }),
        1 => prop_oneof![
            Just(json!({"msg_type": 5, "msg_id": "x"})),
            Just(json!({"msg_type": ["execute_request"]})),
            Just(json!([1, 2, 3])),
            Just(json!("execute_request")),
            Just(json!(null)),
        ]
        .prop_map(Attack::BadHeader),
        2 => any::<bool>().prop_map(Attack::Replay),
        1 => "[a-z_]{0,24}"
            .prop_filter("unknown", |t| !KNOWN_TYPES.contains(&t.as_str()))
            .prop_map(Attack::UnknownType),
        2 => bad_content().prop_map(Attack::BadContent),
    ]
}

/// Types the kernel acts on; a fuzzer must not send them correctly signed by accident.
const KNOWN_TYPES: &[&str] = &[
    "execute_request",
    "kernel_info_request",
    "complete_request",
    "inspect_request",
    "is_complete_request",
    "history_request",
    "comm_info_request",
    "comm_open",
    "comm_msg",
    "comm_close",
    "shutdown_request",
    "interrupt_request",
];

fn shot() -> impl Strategy<Value = Shot> {
    (attack(), any::<bool>()).prop_map(|(attack, on_control)| Shot { attack, on_control })
}

fn delimiter_index(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .position(|f| f.as_slice() == DELIMITER)
        .expect("encode writes a delimiter")
}

/// Signs the four JSON frames again after one was replaced.
fn resign(frames: &mut [Vec<u8>], signer: &Signer) {
    let d = delimiter_index(frames);
    let sig = signer.sign([
        &frames[d + 2],
        &frames[d + 3],
        &frames[d + 4],
        &frames[d + 5],
    ]);
    frames[d + 1] = sig.into_bytes();
}

/// One kernel for the whole run; replaced by a fresh one after a failed case so that
/// shrinking runs every smaller case against a kernel in a known state.
struct Target {
    kernel: Kernel,
    /// How many genuine `legit += 1` cells have run.
    legit: u64,
    broken: bool,
}

impl Target {
    fn start() -> Target {
        let mut kernel = Kernel::start();
        assert_eq!(
            kernel.execute("let fuzz_hits = 0; let legit = 0;").status(),
            "ok"
        );
        Target {
            kernel,
            legit: 0,
            broken: false,
        }
    }
}

/// Sends one batch and checks the kernel afterwards.
fn run_batch(target: &mut Target, shots: &[Shot]) -> Result<(), TestCaseError> {
    let k = &mut target.kernel;
    // A genuine cell to replay, if the batch replays one.
    let genuine: Option<Vec<Vec<u8>>> =
        if shots.iter().any(|s| matches!(s.attack, Attack::Replay(_))) {
            let request = k.request("execute_request", execute_content("legit += 1; legit"));
            let frames = encode(&request, &k.signer);
            Kernel::send_frames(&k.shell, frames.clone());
            let ex = k.finish_execute(request);
            prop_assert_eq!(ex.status(), "ok");
            target.legit += 1;
            Some(frames)
        } else {
            None
        };

    let mut expect_errors: Vec<(Message, bool)> = Vec::new();
    for shot in shots {
        let forged = || k.request("execute_request", execute_content(FORGED_CODE));
        let frames = match &shot.attack {
            Attack::Frames(frames) => frames.clone(),
            Attack::NoDelimiter => {
                let mut frames = encode(&forged(), &k.signer);
                frames.remove(delimiter_index(&frames));
                frames
            }
            Attack::Forged(sig, shutdown) => {
                let msg = if *shutdown {
                    k.request("shutdown_request", json!({"restart": false}))
                } else {
                    forged()
                };
                let mut frames = encode(&msg, &k.signer);
                let d = delimiter_index(&frames);
                match sig {
                    BadSig::Empty => frames[d + 1].clear(),
                    BadSig::WrongHex => frames[d + 1] = hex::encode([0x5a_u8; 32]).into_bytes(),
                    BadSig::Truncated(n) => frames[d + 1].truncate(*n),
                    BadSig::Garbage(bytes) => frames[d + 1] = bytes.clone(),
                    // The kernel's key is 32 hex digits: never one of these.
                    BadSig::OtherKey(key) => resign(&mut frames, &Signer::new(key)),
                }
                frames
            }
            Attack::BadJson { part, bytes } => {
                let mut frames = encode(&forged(), &k.signer);
                let d = delimiter_index(&frames);
                frames[d + 2 + part] = bytes.clone();
                resign(&mut frames, &k.signer);
                frames
            }
            Attack::BadHeader(header) => {
                let mut frames = encode(&forged(), &k.signer);
                let d = delimiter_index(&frames);
                frames[d + 2] = serde_json::to_vec(header).expect("serialize header");
                resign(&mut frames, &k.signer);
                frames
            }
            Attack::Replay(uppercase) => {
                let mut frames = genuine.clone().expect("the batch sent a genuine cell");
                if *uppercase {
                    let d = delimiter_index(&frames);
                    frames[d + 1] = frames[d + 1].to_ascii_uppercase();
                }
                frames
            }
            Attack::UnknownType(msg_type) => encode(
                &k.request(msg_type, json!({"code": FORGED_CODE})),
                &k.signer,
            ),
            Attack::BadContent(content) => {
                let msg = k.request("execute_request", content.clone());
                // Control serves no cells; there only a malformed shutdown gets an answer
                // (an error, and the kernel keeps running).
                let msg = if shot.on_control {
                    k.request("shutdown_request", json!({"restart": content}))
                } else {
                    msg
                };
                let frames = encode(&msg, &k.signer);
                expect_errors.push((msg, shot.on_control));
                frames
            }
        };
        // A replayed cell goes to shell, where it would run if it were accepted.
        let replay = matches!(shot.attack, Attack::Replay(_));
        let socket = if shot.on_control && !replay {
            &k.control
        } else {
            &k.shell
        };
        Kernel::send_frames(socket, frames);
    }

    for (request, on_control) in &expect_errors {
        let reply = if *on_control {
            k.control_reply(request)
        } else {
            k.shell_reply(request)
        };
        let expected = if *on_control {
            "shutdown_reply"
        } else {
            "execute_reply"
        };
        prop_assert_eq!(reply.msg_type(), expected);
        prop_assert_eq!(&reply.content["status"], "error", "{:?}", reply.content);
        prop_assert_eq!(&reply.content["ename"], "BadRequest");
    }

    // Alive: heartbeat, kernel_info on both channels.
    prop_assert!(k.is_alive(), "kernel died; stderr:\n{}", k.stderr_text());
    let echo = k.heartbeat(b"fuzz", TIMEOUT);
    prop_assert_eq!(echo.as_deref(), Some(&b"fuzz"[..]));
    let info = k.send_shell("kernel_info_request", json!({}));
    let reply = k.shell_reply(&info);
    prop_assert_eq!(reply.msg_type(), "kernel_info_reply");
    let info = k.send_control("kernel_info_request", json!({}));
    let reply = k.control_reply(&info);
    prop_assert_eq!(reply.msg_type(), "kernel_info_reply");

    // Nothing forged ran, and the genuine cell ran exactly once per batch.
    prop_assert_eq!(k.eval("fuzz_hits"), "0");
    prop_assert_eq!(k.eval("legit"), target.legit.to_string());
    let iopub = k.iopub_for(Duration::ZERO);
    let text = stream_text(&iopub, "stdout");
    prop_assert!(!text.contains(MARKER), "a forged cell printed: {text:?}");
    // Replies to rejected messages must not linger to be mistaken for later ones.
    k.shell_for(Duration::ZERO);
    Ok(())
}

fn config(cases: u32) -> Config {
    let mut config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    if let Some(n) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.cases = n;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0xf022_1e55);
    }
    config
}

#[test]
fn malformed_and_forged_messages_never_run_and_never_kill() {
    let started = Instant::now();
    let target = RefCell::new(Target::start());
    let mut runner = TestRunner::new(config(48));
    let result = runner.run(&prop::collection::vec(shot(), 1..12), |shots| {
        let mut target = target.borrow_mut();
        if target.broken {
            *target = Target::start();
        }
        target.broken = true;
        run_batch(&mut target, &shots)?;
        target.broken = false;
        Ok(())
    });
    if let Err(e) = result {
        panic!(
            "{e}; kernel stderr:\n{}",
            target.borrow().kernel.stderr_text()
        );
    }
    eprintln!("fuzz run took {:?}", started.elapsed());
}

/// Frames of 50 MB, unsigned, forged and correctly signed: none may stop the kernel, and a
/// signed request still gets its answer.
#[test]
fn huge_frames_are_survived() {
    const HUGE: usize = 50 * 1024 * 1024;
    let mut k = Kernel::start();
    assert_eq!(k.execute("let fuzz_hits = 0;").status(), "ok");
    let huge: Vec<u8> = (0..HUGE).map(|i| (i % 251) as u8).collect();

    // Unsigned junk.
    Kernel::send_frames(&k.shell, vec![huge.clone()]);
    Kernel::send_frames(
        &k.control,
        vec![DELIMITER.to_vec(), b"".to_vec(), huge.clone()],
    );
    // A forged cell with a huge content and no valid signature.
    let mut content = execute_content(FORGED_CODE);
    content["padding"] = json!("x".repeat(HUGE));
    let mut forged = encode(&k.request("execute_request", content.clone()), &k.signer);
    let d = delimiter_index(&forged);
    forged[d + 1] = hex::encode([1u8; 32]).into_bytes();
    Kernel::send_frames(&k.shell, forged);
    // Correctly signed: a huge buffer (buffers are neither signed nor parsed) ...
    let request = k.request("kernel_info_request", json!({}));
    let mut frames = encode(&request, &k.signer);
    frames.push(huge);
    Kernel::send_frames(&k.shell, frames);
    assert_eq!(k.shell_reply(&request).msg_type(), "kernel_info_reply");
    // ... and a huge content of the wrong shape.
    content["code"] = json!(5);
    let request = k.request("execute_request", content);
    k.send(&k.shell, &request);
    let reply = k.shell_reply(&request);
    assert_eq!(reply.content["status"], "error", "{:?}", reply.content);

    assert_eq!(k.heartbeat(b"big", TIMEOUT).as_deref(), Some(&b"big"[..]));
    assert_eq!(k.eval("fuzz_hits"), "0");
    assert!(k.is_alive());
}
