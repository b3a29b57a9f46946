//! The messages between a parent and its worker processes, for both sides: the jobs a
//! parent sends (JSON lines on the worker's stdin), the events a worker answers with (JSON
//! lines on its stdout), and the fork server's reports (fixed-size datagrams on its socket).
//!
//! A JSON message is one line, `{"t": kind, "c": contents}`, the kind first, so that it is
//! decoded in one pass. The values that cross (functions, arguments, results, constants)
//! are encoded by `transfer` and travel as plain JSON inside the typed messages.

use crate::runtime::sink::{MimeBundle, Stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::io::BufRead;

// ---- parent to worker ----------------------------------------------------------------

/// What a parent sends a worker, one line each on the worker's stdin; closing the pipe
/// tells the worker to finish and exit.
///
/// `V` is how the encoded values travel: the parent writes text it encoded once
/// ([`serde_json::value::RawValue`]), the worker reads them as [`Value`]s.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t", content = "c", rename_all = "snake_case")]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub enum Request<'a, V = Value> {
    /// Call a function: the worker answers with the job's output events, then one
    /// [`Event::Done`] or [`Event::Failed`]. A pool may send the next job before that.
    Job(Job<'a, V>),
}

/// A function to call once per item with the caller's `global::` constants, and what the
/// worker needs for it that it may not have yet.
#[derive(Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct Job<'a, V = Value> {
    /// The version of the notebook's function sources the function needs: a worker that
    /// has another version compiles `sources`.
    pub version: u64,
    /// The notebook's function sources, sent when the worker may lack this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<Cow<'a, str>>>,
    /// The function pointer, with its captured values.
    pub function: V,
    /// The argument lists, one per call.
    #[serde(default)]
    pub items: Cow<'a, [Vec<Value>]>,
    /// Fold the items with the function (`f(f(x0, x1), x2)…`) instead of mapping it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fold: bool,
    /// The caller's `global::` constants (see `globals::Globals`), sent when they changed
    /// since the worker's last job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub globals: Option<V>,
    /// The process's name (`Process-1 (work)`): sent by `spawn_process`, not by pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    /// For a pool task while the race detector is on: the ids of the objects its
    /// submitter handed over on and its result is handed over on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<[u64; 2]>,
    /// Captured values the worker kept for earlier jobs and may now give up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forget: Vec<u64>,
    /// Captured values to keep for this job and later ones, which name them by id (see
    /// `pools::captured`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub store: Vec<(u64, V)>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Decodes a line from the parent.
pub fn parse_request(line: &str) -> Result<Request<'static>, String> {
    serde_json::from_str(line).map_err(|e| format!("invalid job: {e}"))
}

// ---- worker to parent ----------------------------------------------------------------

/// What a worker sends its parent, one line each on the worker's stdout: the output of
/// the job it runs, passed on to the cell that started the work, then how the job ended.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", content = "c", rename_all = "snake_case")]
pub enum Event {
    /// Text the job printed on one of its streams.
    Output { stream: Stream, text: String },
    /// A rich display (`display(…)`), or with `update` a new version of the one shown
    /// earlier with the same `id`.
    Display {
        bundle: MimeBundle,
        id: Option<String>,
        update: bool,
    },
    /// Clears the cell's output (with `wait`, once the next output arrives).
    ClearOutput { wait: bool },
    /// Text for the pager (`help`), which a worker's parent shows as printed text.
    Page { text: String },
    /// The job ended: one result per item (a fold's single result), each carrying its own
    /// references to shared objects (see `transfer::to_message`).
    Done { values: Vec<Value> },
    /// The job failed, or could not be read or started.
    Failed(JobError),
}

/// Why a job failed.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobError {
    /// The error as the user reads it, with its position.
    pub message: String,
    /// The job was stopped by an interrupt.
    #[serde(default)]
    pub interrupted: bool,
    /// The item whose call failed.
    #[serde(default)]
    pub index: usize,
    /// A process's thrown value that is not a string (a map, a number…), encoded with its
    /// own references, for `join` to throw it again as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thrown: Option<Value>,
}

impl JobError {
    /// A failure that is not the function's: nothing was thrown, no item had run.
    pub fn new(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            interrupted: false,
            index: 0,
            thrown: None,
        }
    }
}

/// Decodes a line from a worker. A line that is not an event is text the worker wrote to
/// its stdout by other means, passed on as printed text.
pub fn parse_event(line: &str) -> Event {
    serde_json::from_str(line).unwrap_or_else(|_| {
        let text = line.strip_suffix('\n').unwrap_or(line);
        let text = text.strip_suffix('\r').unwrap_or(text);
        Event::Output {
            stream: Stream::Stdout,
            text: format!("{text}\n"),
        }
    })
}

/// Reads the next event from a worker's stdout into `line`; `None` once the pipe is
/// closed or broken.
pub fn read_event(from: &mut impl BufRead, line: &mut String) -> Option<Event> {
    line.clear();
    match from.read_line(line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(parse_event(line)),
    }
}

/// A message as one line, ready to be written at once (a reader wakes once per message).
pub fn to_line(message: &impl Serialize) -> Result<Vec<u8>, String> {
    let mut line =
        serde_json::to_vec(message).map_err(|e| format!("cannot encode a message: {e}"))?;
    line.push(b'\n');
    Ok(line)
}

// ---- the fork server -------------------------------------------------------------------

/// The length of every datagram between the fork server and its parent: three
/// native-endian `i64`s, `[kind, pid, value]`.
pub const DATAGRAM_LEN: usize = 24;

/// A request to fork a worker: the payload of the datagram whose `SCM_RIGHTS` carry the
/// worker's stdin (read end) and stdout (write end).
pub const FORK_REQUEST: [u8; DATAGRAM_LEN] = [0; DATAGRAM_LEN];

/// What the fork server reports to its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerReport {
    /// It forked a worker for the oldest request not yet answered.
    Started { pid: i32 },
    /// One of its workers ended: 0–255 for an exit, minus the signal number when killed.
    Ended { pid: i32, code: i64 },
    /// It could not fork for the oldest request not yet answered: the OS error number.
    Failed { errno: i32 },
}

const STARTED: i64 = 1;
const ENDED: i64 = 2;
const FAILED: i64 = 3;

impl ServerReport {
    pub fn encode(self) -> [u8; DATAGRAM_LEN] {
        let (kind, pid, value) = match self {
            ServerReport::Started { pid } => (STARTED, pid.into(), 0),
            ServerReport::Ended { pid, code } => (ENDED, pid.into(), code),
            ServerReport::Failed { errno } => (FAILED, 0, errno.into()),
        };
        let mut bytes = [0u8; DATAGRAM_LEN];
        for (at, word) in [kind, pid, value].into_iter().enumerate() {
            bytes[at * 8..at * 8 + 8].copy_from_slice(&word.to_ne_bytes());
        }
        bytes
    }

    /// `None` for a datagram that is not a report.
    pub fn decode(bytes: &[u8; DATAGRAM_LEN]) -> Option<ServerReport> {
        let word = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at * 8..at * 8 + 8]);
            i64::from_ne_bytes(word)
        };
        let (kind, pid, value) = (word(0), i32::try_from(word(1)).ok()?, word(2));
        match kind {
            STARTED => Some(ServerReport::Started { pid }),
            ENDED => Some(ServerReport::Ended { pid, code: value }),
            FAILED => Some(ServerReport::Failed {
                errno: i32::try_from(value).ok()?,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::value::{to_raw_value, RawValue};

    #[test]
    fn a_job_written_with_raw_parts_is_read_with_values() {
        let function = to_raw_value(&json!({"$rhai": "Fn", "name": "f", "curry": []})).unwrap();
        let big = to_raw_value(&json!([1, 2.5, "three"])).unwrap();
        let items = vec![vec![json!(1)], vec![json!(2)]];
        let sent: Request<&RawValue> = Request::Job(Job {
            version: 3,
            sources: Some(vec!["fn f(x) { x }".into()]),
            function: &function,
            items: Cow::Borrowed(&items),
            fold: true,
            globals: None,
            name: Some("Process-1 (f)".into()),
            handoff: Some([4, 5]),
            forget: vec![7],
            store: vec![(8, &big)],
        });
        let line = String::from_utf8(to_line(&sent).unwrap()).unwrap();
        assert!(
            line.starts_with(r#"{"t":"job","c":{"version":3,"#),
            "{line}"
        );
        assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
        let Request::Job(job) = parse_request(&line).unwrap();
        assert_eq!(job.version, 3);
        assert_eq!(job.sources.unwrap(), ["fn f(x) { x }"]);
        assert_eq!(job.function["name"], "f");
        assert_eq!(*job.items, items);
        assert!(job.fold);
        assert!(job.globals.is_none());
        assert_eq!(job.name.as_deref(), Some("Process-1 (f)"));
        assert_eq!(job.handoff, Some([4, 5]));
        assert_eq!(job.forget, [7]);
        assert_eq!(job.store, [(8, json!([1, 2.5, "three"]))]);
        assert!(job.store[0].1[1].is_f64());
    }

    #[test]
    fn a_malformed_job_is_an_error_that_says_so() {
        for line in ["", "{", "[1]", r#"{"t":"job"}"#, r#"{"t":"jump","c":{}}"#] {
            let error = parse_request(line).err().unwrap();
            assert!(error.starts_with("invalid job: "), "{error}");
        }
    }

    #[test]
    fn events_cross_as_they_were_sent() {
        let events = [
            Event::Output {
                stream: Stream::Stderr,
                text: "oops\n".into(),
            },
            Event::Display {
                bundle: json!({"text/plain": "1"}).as_object().unwrap().clone(),
                id: Some("d".into()),
                update: true,
            },
            Event::ClearOutput { wait: true },
            Event::Page {
                text: "help".into(),
            },
            Event::Done {
                values: vec![json!(1.0), json!(null)],
            },
            Event::Failed(JobError {
                thrown: Some(json!({"code": 3})),
                index: 2,
                ..JobError::new("bad")
            }),
        ];
        for event in events {
            let line = String::from_utf8(to_line(&event).unwrap()).unwrap();
            assert_eq!(format!("{:?}", parse_event(&line)), format!("{event:?}"));
        }
    }

    #[test]
    fn a_line_that_is_not_an_event_is_printed_text() {
        for line in ["hello\n", "{\"t\":\"nothing\"}\r\n", "[1, 2]"] {
            let Event::Output { stream, text } = parse_event(line) else {
                panic!("{line:?} was taken for an event");
            };
            assert_eq!(stream, Stream::Stdout);
            assert_eq!(text, format!("{}\n", line.trim_end()));
        }
    }

    #[test]
    fn the_fork_server_reports_cross_and_nothing_else_does() {
        for report in [
            ServerReport::Started { pid: 12 },
            ServerReport::Ended { pid: 12, code: -9 },
            ServerReport::Failed { errno: 11 },
        ] {
            assert_eq!(ServerReport::decode(&report.encode()), Some(report));
        }
        assert_eq!(ServerReport::decode(&FORK_REQUEST), None);
        let mut bogus = ServerReport::Started { pid: 1 }.encode();
        bogus[8..16].copy_from_slice(&i64::MAX.to_ne_bytes());
        assert_eq!(ServerReport::decode(&bogus), None);
    }
}
