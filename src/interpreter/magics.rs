//! Cell magics, IPython style: a first line `%%time` measures the cell, `%%timeline` draws
//! the threads, processes and pool tasks it ran, `%%races` runs it under the race
//! detector and shows the data races it found, `%%rust` runs the cell as Rust (evcxr, in
//! builds with the `rust` feature).

use crate::runtime::sink::{self, Stream};
use std::time::Instant;

/// The cell magics this kernel knows.
pub const MAGICS: &[&str] = &["%%time", "%%timeline", "%%races", "%%rust"];

/// What `%%rust` says in a build without the `rust` feature.
pub const NO_RUST_CELLS: &str = "this kernel was built without Rust cells (as the pip \
     wheel is): they need a Rust toolchain, and a kernel built from the repository with \
     `--features rust --profile rust-cells` (what `make lab` does unless RUST=0); see \
     docs/rust-cells.md and docs/install.md";

/// Splits a cell into its magic (if the first line is one) and the code after it. The code
/// keeps an empty first line so that line numbers in errors stay those of the cell.
pub fn split(code: &str) -> Option<(&str, String)> {
    let trimmed = code.trim_start_matches([' ', '\t', '\r', '\n']);
    if !trimmed.starts_with("%%") {
        return None;
    }
    let skipped_lines = code[..code.len() - trimmed.len()].matches('\n').count();
    let (first, rest) = trimmed.split_once('\n').unwrap_or((trimmed, ""));
    let magic = first.split_whitespace().next().unwrap_or(first);
    Some((magic, format!("{}\n{rest}", "\n".repeat(skipped_lines))))
}

/// Process CPU time (user, system) in seconds, all threads included, like IPython's `%%time`.
fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct; the result is checked.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

fn human(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 1e-3 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{:.0} µs", seconds * 1e6)
    }
}

/// Measures wall and CPU time of `run` and prints them as IPython's `%%time` does.
pub fn time<R>(run: impl FnOnce() -> R) -> R {
    let (user0, sys0) = cpu_times();
    let start = Instant::now();
    let result = run();
    let wall = start.elapsed().as_secs_f64();
    let (user1, sys1) = cpu_times();
    let (user, system) = (user1 - user0, sys1 - sys0);
    sink::write(
        Stream::Stdout,
        &format!(
            "CPU times: user {}, sys: {}, total: {}\nWall time: {}\n",
            human(user),
            human(system),
            human(user + system),
            human(wall)
        ),
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_magic_line_and_keeps_line_numbers() {
        assert_eq!(split("let x = 1;"), None);
        let (magic, rest) = split("%%time\nlet x = 1;\nx").unwrap();
        assert_eq!(magic, "%%time");
        assert_eq!(rest, "\nlet x = 1;\nx");
        let (magic, rest) = split("\n%%time\nx").unwrap();
        assert_eq!((magic, rest.lines().count()), ("%%time", 3));
    }
}
