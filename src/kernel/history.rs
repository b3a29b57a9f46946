//! Execution history for `history_request`: tail, range and glob search, with outputs.

use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Entry {
    line: u64,
    input: String,
    output: Option<String>,
}

/// The inputs (and plain-text outputs) of this kernel session's cells.
#[derive(Debug, Default)]
pub struct History {
    /// The session number reported in replies (1 for the running kernel).
    session: u64,
    entries: Vec<Entry>,
}

impl History {
    pub fn new() -> Self {
        History {
            session: 1,
            entries: Vec::new(),
        }
    }

    pub fn record(&mut self, line: u64, input: &str, output: Option<String>) {
        self.entries.push(Entry {
            line,
            input: input.to_string(),
            output,
        });
    }

    fn render(&self, entry: &Entry, with_output: bool) -> Value {
        if with_output {
            json!([self.session, entry.line, [entry.input, entry.output]])
        } else {
            json!([self.session, entry.line, entry.input])
        }
    }

    /// Answers a `history_request` content with the `history` list of the reply.
    pub fn query(&self, request: &Value) -> Vec<Value> {
        let with_output = request["output"].as_bool().unwrap_or(false);
        let n = request["n"].as_u64().map(|n| n as usize);
        match request["hist_access_type"].as_str().unwrap_or("tail") {
            "range" => {
                let session = request["session"].as_i64().unwrap_or(0);
                if session != 0 && session != self.session as i64 {
                    return Vec::new();
                }
                let start = request["start"].as_u64().unwrap_or(0);
                let stop = request["stop"].as_u64();
                self.entries
                    .iter()
                    .filter(|e| e.line >= start && stop.is_none_or(|s| e.line < s))
                    .map(|e| self.render(e, with_output))
                    .collect()
            }
            "search" => {
                let pattern = request["pattern"].as_str().unwrap_or("*");
                let unique = request["unique"].as_bool().unwrap_or(false);
                let mut found: Vec<&Entry> = Vec::new();
                for entry in self.entries.iter().rev() {
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
                    .map(|e| self.render(e, with_output))
                    .collect()
            }
            _ => {
                let n = n.unwrap_or(10);
                let skip = self.entries.len().saturating_sub(n);
                self.entries[skip..]
                    .iter()
                    .map(|e| self.render(e, with_output))
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
        let mut h = History::new();
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
    fn globbing() {
        assert!(glob_match("*", ""));
        assert!(glob_match("pr?nt*", "print(x)"));
        assert!(glob_match("*x*", "let x = 1;"));
        assert!(!glob_match("x", "xy"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
    }
}
