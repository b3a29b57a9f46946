//! `timeline(f)` and `%%timeline`: record every thread, process and pool task that runs
//! while `f` runs, then draw them as a Gantt chart (SVG, one row per worker) with the
//! wall time and CPU utilisation, plus a text summary for terminals.

use crate::runtime::display::escape_html;
use rhai::plugin::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One piece of work: which worker ran it, what it ran, and when.
#[derive(Clone, Debug)]
pub struct Span {
    pub worker: String,
    pub label: String,
    pub kind: &'static str,
    pub start: Instant,
    pub end: Instant,
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static SPANS: Mutex<Vec<Span>> = Mutex::new(Vec::new());

/// Whether a recording is under way (cheap; checked before building a span).
pub fn recording() -> bool {
    ACTIVE.load(Ordering::Relaxed) > 0
}

/// Adds a finished span to the current recording, if any.
pub fn record(worker: String, label: String, kind: &'static str, start: Instant) {
    if recording() {
        let span = Span {
            worker,
            label,
            kind,
            start,
            end: Instant::now(),
        };
        SPANS.lock().unwrap_or_else(|e| e.into_inner()).push(span);
    }
}

/// CPU seconds used by this process and its reaped children.
fn cpu_seconds() -> f64 {
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the zeroed struct; the result is checked.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut usage) } == 0 {
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            total += secs(usage.ru_utime) + secs(usage.ru_stime);
        }
    }
    total
}

/// A finished recording.
pub struct Recording {
    pub spans: Vec<Span>,
    pub origin: Instant,
    pub wall: f64,
    pub cpu: f64,
}

/// Runs `work` while recording, and returns its result with the recording.
pub fn capture<R>(work: impl FnOnce() -> R) -> (R, Recording) {
    if ACTIVE.fetch_add(1, Ordering::SeqCst) == 0 {
        SPANS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
    let cpu_before = cpu_seconds();
    let origin = Instant::now();
    let result = work();
    let end = Instant::now();
    let cpu = cpu_seconds() - cpu_before;
    let mut spans: Vec<Span> = SPANS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|s| s.start >= origin)
        .cloned()
        .collect();
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
    spans.push(Span {
        worker: "MainThread".into(),
        label: "timeline".into(),
        kind: "main",
        start: origin,
        end,
    });
    spans.sort_by_key(|s| s.start);
    let wall = (end - origin).as_secs_f64();
    (
        result,
        Recording {
            spans,
            origin,
            wall,
            cpu,
        },
    )
}

impl Recording {
    fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.origin).as_secs_f64()
    }

    /// Rows in order of first appearance, the main thread first.
    fn workers(&self) -> Vec<String> {
        let mut rows: Vec<String> = vec!["MainThread".into()];
        for span in &self.spans {
            if !rows.contains(&span.worker) {
                rows.push(span.worker.clone());
            }
        }
        rows
    }

    fn utilisation(&self) -> f64 {
        let cores = crate::runtime::cpus() as f64;
        if self.wall > 0.0 {
            self.cpu / (self.wall * cores)
        } else {
            0.0
        }
    }

    /// The spans as data: `[#{worker, label, kind, start, end}, …]`, times in seconds.
    pub fn to_array(&self) -> rhai::Array {
        self.spans
            .iter()
            .map(|s| {
                let mut map = rhai::Map::new();
                map.insert("worker".into(), Dynamic::from(s.worker.clone()));
                map.insert("label".into(), Dynamic::from(s.label.clone()));
                map.insert("kind".into(), Dynamic::from(s.kind.to_string()));
                map.insert("start".into(), Dynamic::from_float(self.seconds(s.start)));
                map.insert("end".into(), Dynamic::from_float(self.seconds(s.end)));
                Dynamic::from_map(map)
            })
            .collect()
    }

    pub fn summary(&self) -> String {
        let rows = self.workers();
        let mut text = format!(
            "timeline: {:.3} s wall, CPU utilisation {:.0}% of {} cores, {} workers\n",
            self.wall,
            self.utilisation() * 100.0,
            crate::runtime::cpus(),
            rows.len()
        );
        for row in &rows {
            let spans: Vec<&Span> = self.spans.iter().filter(|s| &s.worker == row).collect();
            let busy: f64 = spans.iter().map(|s| (s.end - s.start).as_secs_f64()).sum();
            text.push_str(&format!(
                "  {row:<32} {:>3} spans, {:.3} s\n",
                spans.len(),
                busy
            ));
        }
        text
    }

    pub fn svg(&self) -> String {
        const LEFT: f64 = 210.0;
        const WIDTH: f64 = 860.0;
        const ROW: f64 = 26.0;
        const TOP: f64 = 42.0;
        let rows = self.workers();
        let plot = WIDTH - LEFT - 20.0;
        let scale = if self.wall > 0.0 {
            plot / self.wall
        } else {
            0.0
        };
        let height = TOP + ROW * rows.len() as f64 + 34.0;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">"
        );
        svg.push_str(&format!(
            "<text x=\"10\" y=\"20\" font-size=\"14\">{} — wall {:.3} s, CPU utilisation {:.0}%</text>",
            escape_html(&format!("{} workers", rows.len())),
            self.wall,
            self.utilisation() * 100.0
        ));
        for (i, row) in rows.iter().enumerate() {
            let y = TOP + ROW * i as f64;
            svg.push_str(&format!(
                "<text x=\"10\" y=\"{:.1}\">{}</text><line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
                y + ROW * 0.65,
                escape_html(row),
                LEFT + plot,
                y + ROW,
                y + ROW
            ));
            for span in self.spans.iter().filter(|s| &s.worker == row) {
                let x = LEFT + self.seconds(span.start) * scale;
                let w = ((span.end - span.start).as_secs_f64() * scale).max(1.0);
                svg.push_str(&format!(
                    "<rect class=\"span\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"3\" fill=\"{}\"><title>{} {:.3}–{:.3} s</title></rect>",
                    y + 4.0,
                    ROW - 8.0,
                    colour(&span.label, span.kind),
                    escape_html(&span.label),
                    self.seconds(span.start),
                    self.seconds(span.end)
                ));
                if w > 40.0 && span.kind != "main" {
                    svg.push_str(&format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"white\" font-size=\"11\">{}</text>",
                        x + 4.0,
                        y + ROW * 0.62,
                        escape_html(&span.label)
                    ));
                }
            }
        }
        let axis_y = TOP + ROW * rows.len() as f64 + 14.0;
        for tick in 0..=5 {
            let t = self.wall * tick as f64 / 5.0;
            let x = LEFT + t * scale;
            svg.push_str(&format!(
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{axis_y:.1}\" text-anchor=\"middle\">{t:.2} s</text>",
                axis_y - 12.0
            ));
        }
        svg.push_str("</svg>");
        svg
    }

    /// Shows the chart (and the summary as plain text) in the output.
    pub fn show(&self) {
        crate::runtime::display::show_chart(self.svg(), self.summary());
    }
}

fn colour(label: &str, kind: &str) -> &'static str {
    const PALETTE: [&str; 8] = [
        "#2a9d8f", "#e76f51", "#f4a261", "#264653", "#8ab17d", "#e9c46a", "#6d597a", "#b56576",
    ];
    if kind == "main" {
        return "#c8c8c8";
    }
    let hash = label
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    PALETTE[hash as usize % PALETTE.len()]
}

#[export_module]
pub mod timeline_api {
    /// Runs `f` and then shows a timeline of every thread, process and pool task that ran
    /// meanwhile: an SVG chart with one row per worker, bars labelled with function names,
    /// a time axis, the wall time and the CPU utilisation. Returns the same data as an
    /// array of maps `#{worker, label, kind, start, end}` (times in seconds).
    #[rhai_fn(return_raw)]
    pub fn timeline(
        ctx: NativeCallContext,
        f: rhai::FnPtr,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let (result, recording) = super::capture(|| f.call_within_context::<Dynamic>(&ctx, ()));
        result.map(|_| ())?;
        recording.show();
        Ok(recording.to_array())
    }
}
