//! Execution history for `history_request`: tail, range and glob search, with outputs.
//! Kept in a JSON-lines file shared by every kernel of the user (as IPython keeps its
//! SQLite database), so history survives restarts and stays out of the kernel's memory;
//! each kernel run is a new session number.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The environment variable naming the history file; empty or `off` keeps history in
/// memory for this kernel run only.
pub const HISTORY_ENV: &str = "RHAI_KERNEL_HISTORY";
/// Past this many entries the file is cut back to the newest `KEEP_ENTRIES` when a kernel
/// starts.
const MAX_ENTRIES: usize = 100_000;
const KEEP_ENTRIES: usize = 50_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "s")]
    session: u64,
    #[serde(rename = "n")]
    line: u64,
    #[serde(rename = "i")]
    input: String,
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    output: Option<String>,
}

/// Where entries live.
#[derive(Debug)]
enum Store {
    File { path: PathBuf, file: File },
    Memory(Vec<Entry>),
}

/// The inputs (and plain-text outputs) of the cells of this and earlier kernel runs.
#[derive(Debug)]
pub struct History {
    /// This kernel run's session number.
    session: u64,
    store: Store,
}

/// The default history file: `rhai-kernel/history.jsonl` in Jupyter's data directory.
fn default_path() -> Option<PathBuf> {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let data = env("JUPYTER_DATA_DIR")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("jupyter")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/jupyter")))?;
    Some(data.join("rhai-kernel").join("history.jsonl"))
}

fn read_entries(path: &Path) -> std::io::Result<Vec<Entry>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    // A line another kernel is writing at this moment, or a damaged one, is skipped.
    Ok(BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect())
}

/// How many entries the file holds and the newest session number in it, found without
/// parsing the entries: every line starts `{"s":N,` as `record` writes it (a line that does
/// not is skipped, as `read_entries` skips it). Runs at every kernel start, so it stays
/// a plain scan.
fn count_sessions(path: &Path) -> std::io::Result<(usize, u64)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let (mut entries, mut newest) = (0, 0);
    for line in bytes.split(|b| *b == b'\n') {
        let Some(rest) = line.strip_prefix(b"{\"s\":") else {
            continue;
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let session = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse::<u64>().ok());
        if let Some(session) = session.filter(|_| rest.get(digits) == Some(&b',')) {
            entries += 1;
            newest = newest.max(session);
        }
    }
    Ok((entries, newest))
}

/// Rewrites the file with only the newest entries (through a temporary file and a rename,
/// so a reader never sees half a file).
fn trim(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let keep = &entries[entries.len().saturating_sub(KEEP_ENTRIES)..];
    let temp = path.with_extension("jsonl.tmp");
    let mut out = std::io::BufWriter::new(File::create(&temp)?);
    for entry in keep {
        serde_json::to_writer(&mut out, entry)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    std::fs::rename(&temp, path)
}

impl History {
    /// History in memory only, for this kernel run.
    pub fn in_memory() -> Self {
        History {
            session: 1,
            store: Store::Memory(Vec::new()),
        }
    }

    /// History in the file `RHAI_KERNEL_HISTORY` names (default: in Jupyter's data
    /// directory); in memory when that is switched off or the file cannot be used.
    pub fn from_environment() -> Self {
        let path = match std::env::var(HISTORY_ENV) {
            Ok(v) if v.is_empty() || v == "off" => None,
            Ok(v) => Some(PathBuf::from(v)),
            Err(_) => default_path(),
        };
        match path.map(|p| History::open(&p).map_err(|e| (p, e))) {
            Some(Ok(history)) => history,
            Some(Err((path, e))) => {
                eprintln!(
                    "rhai-kernel: history kept in memory only: cannot use {}: {e}",
                    path.display()
                );
                History::in_memory()
            }
            None => History::in_memory(),
        }
    }

    /// History in the file at `path`, created if missing; this run is the session after
    /// the newest one in it.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let (entries, newest) = count_sessions(path)?;
        if entries > MAX_ENTRIES {
            trim(path, &read_entries(path)?)?;
        }
        let session = newest + 1;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(History {
            session,
            store: Store::File {
                path: path.to_path_buf(),
                file,
            },
        })
    }

    pub fn record(&mut self, line: u64, input: &str, output: Option<String>) {
        let entry = Entry {
            session: self.session,
            line,
            input: input.to_string(),
            output,
        };
        match &mut self.store {
            Store::Memory(entries) => entries.push(entry),
            Store::File { file, .. } => {
                // One write per entry: appends of whole lines from several kernels do not
                // interleave. A failed write loses this entry only.
                if let Ok(mut line) = serde_json::to_vec(&entry) {
                    line.push(b'\n');
                    let _ = file.write_all(&line);
                }
            }
        }
    }

    fn entries(&self) -> Cow<'_, [Entry]> {
        match &self.store {
            Store::Memory(entries) => Cow::Borrowed(entries),
            Store::File { path, .. } => Cow::Owned(read_entries(path).unwrap_or_default()),
        }
    }

    fn render(entry: &Entry, with_output: bool) -> Value {
        if with_output {
            json!([entry.session, entry.line, [entry.input, entry.output]])
        } else {
            json!([entry.session, entry.line, entry.input])
        }
    }

    /// Answers a `history_request` content with the `history` list of the reply. `tail`
    /// and `search` look at every session, newest last; `range` at one session (0 is this
    /// one, -1 the one before, …).
    pub fn query(&self, request: &Value) -> Vec<Value> {
        let with_output = request["output"].as_bool().unwrap_or(false);
        let n = request["n"].as_u64().map(|n| n as usize);
        let entries = self.entries();
        match request["hist_access_type"].as_str().unwrap_or("tail") {
            "range" => {
                let asked = request["session"].as_i64().unwrap_or(0);
                let session = if asked <= 0 {
                    self.session as i64 + asked
                } else {
                    asked
                };
                let start = request["start"].as_u64().unwrap_or(0);
                let stop = request["stop"].as_u64();
                entries
                    .iter()
                    .filter(|e| e.session as i64 == session)
                    .filter(|e| e.line >= start && stop.is_none_or(|s| e.line < s))
                    .map(|e| Self::render(e, with_output))
                    .collect()
            }
            "search" => {
                let pattern = request["pattern"].as_str().unwrap_or("*");
                let unique = request["unique"].as_bool().unwrap_or(false);
                let mut found: Vec<&Entry> = Vec::new();
                for entry in entries.iter().rev() {
                    if !glob_match(pattern, &entry.input) {
                        continue;
                    }
                    if unique && found.iter().any(|f| f.input == entry.input) {
                        continue;
                    }
                    found.push(entry);
                    if n.is_some_and(|n| found.len() >= n) {
                        break;
                    }
                }
                found.reverse();
                found
                    .into_iter()
                    .map(|e| Self::render(e, with_output))
                    .collect()
            }
            _ => {
                let n = n.unwrap_or(10);
                let skip = entries.len().saturating_sub(n);
                entries[skip..]
                    .iter()
                    .map(|e| Self::render(e, with_output))
                    .collect()
            }
        }
    }
}

/// Glob matching as IPython's history search does it: `*` any run, `?` one character,
/// matched against the whole input.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let mut h = History::in_memory();
        h.record(1, "let x = 1;", None);
        h.record(2, "x + 1", Some("2".into()));
        h.record(3, "x + 1", Some("2".into()));
        h.record(4, "print(x)", None);
        h
    }

    #[test]
    fn tail_range_search() {
        let h = sample();
        assert_eq!(
            h.query(&json!({"hist_access_type": "tail", "n": 2})).len(),
            2
        );
        assert_eq!(
            h.query(&json!({"hist_access_type": "tail", "n": 1})),
            vec![json!([1, 4, "print(x)"])]
        );
        let range = h.query(&json!({"hist_access_type": "range", "session": 0, "start": 2, "stop": 4, "output": true}));
        assert_eq!(
            range,
            vec![json!([1, 2, ["x + 1", "2"]]), json!([1, 3, ["x + 1", "2"]])]
        );
        assert_eq!(
            h.query(&json!({"hist_access_type": "search", "pattern": "x*"}))
                .len(),
            2
        );
        assert_eq!(
            h.query(&json!({"hist_access_type": "search", "pattern": "x*", "unique": true})),
            vec![json!([1, 3, "x + 1"])]
        );
        assert_eq!(
            h.query(&json!({"hist_access_type": "search", "pattern": "*", "n": 1}))
                .len(),
            1
        );
    }

    #[test]
    fn a_file_keeps_sessions_apart_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("history.jsonl");
        let mut first = History::open(&path).expect("open");
        first.record(1, "let x = 1;", None);
        first.record(2, "x", Some("1".into()));
        drop(first);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{not json\n"))
            .expect("append a damaged line");
        let mut second = History::open(&path).expect("reopen");
        second.record(1, "x + 1", Some("2".into()));
        assert_eq!(
            second.query(&json!({"hist_access_type": "tail", "n": 3})),
            vec![
                json!([1, 1, "let x = 1;"]),
                json!([1, 2, "x"]),
                json!([2, 1, "x + 1"])
            ]
        );
        assert_eq!(
            second.query(&json!({"hist_access_type": "range", "session": -1, "output": true})),
            vec![
                json!([1, 1, ["let x = 1;", null]]),
                json!([1, 2, ["x", "1"]])
            ]
        );
        assert_eq!(
            second.query(&json!({"hist_access_type": "range", "session": 0})),
            vec![json!([2, 1, "x + 1"])]
        );
    }

    #[test]
    fn a_long_file_is_cut_back_when_a_kernel_starts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.jsonl");
        let mut h = History::open(&path).expect("open");
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            h.record(i, "1", None);
        }
        drop(h);
        let h = History::open(&path).expect("reopen");
        assert_eq!(read_entries(&path).expect("read").len(), KEEP_ENTRIES);
        assert_eq!(h.session, 2);
    }

    #[test]
    fn globbing() {
        assert!(glob_match("*", ""));
        assert!(glob_match("pr?nt*", "print(x)"));
        assert!(glob_match("*x*", "let x = 1;"));
        assert!(!glob_match("x", "xy"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
    }
}
