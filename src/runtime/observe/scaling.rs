//! `scaling(f, workers)` and `scaling_chart(workers, series)`: speedup, efficiency and the
//! Karp–Flatt serial fraction of a computation run on 1, 2, 4, … workers, drawn as an SVG
//! chart of measured speedup against Amdahl's law, with a text table for terminals.

use crate::runtime::display::escape_html;
use rhai::plugin::*;
use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};
use std::time::Instant;

/// Wall times of one computation for each worker count.
#[derive(Clone, Debug)]
struct Series {
    name: String,
    seconds: Vec<f64>,
}

impl Series {
    fn speedup(&self) -> Vec<f64> {
        let serial = self.seconds[0];
        self.seconds.iter().map(|t| serial / t).collect()
    }
}

/// Measured series over the same worker counts, and the machine's core count.
#[derive(Clone, Debug)]
struct Scaling {
    title: String,
    workers: Vec<usize>,
    series: Vec<Series>,
    cores: usize,
}

/// The Karp–Flatt metric: the serial fraction implied by speedup `s` on `p` workers.
fn karp_flatt(s: f64, p: usize) -> Option<f64> {
    (p > 1).then(|| {
        let p = p as f64;
        (1.0 / s - 1.0 / p) / (1.0 - 1.0 / p)
    })
}

/// Amdahl's law: the speedup on `p` processors of a program whose serial fraction is `f`.
fn amdahl(f: f64, p: f64) -> f64 {
    1.0 / (f + (1.0 - f) / p)
}

impl Scaling {
    fn new(
        title: String,
        workers: Vec<usize>,
        series: Vec<Series>,
        cores: usize,
    ) -> Result<Self, String> {
        if workers.first() != Some(&1) {
            return Err(
                "workers must start with 1 (the serial run speedups are taken from)".into(),
            );
        }
        if workers.windows(2).any(|w| w[0] >= w[1]) {
            return Err("workers must be increasing, e.g. [1, 2, 4, 8]".into());
        }
        if series.is_empty() {
            return Err("no series to chart".into());
        }
        for s in &series {
            if s.seconds.len() != workers.len() {
                return Err(format!(
                    "series '{}' has {} times for {} worker counts",
                    s.name,
                    s.seconds.len(),
                    workers.len()
                ));
            }
            if s.seconds.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
                return Err(format!(
                    "series '{}': times must be positive seconds",
                    s.name
                ));
            }
        }
        Ok(Scaling {
            title,
            workers,
            series,
            cores: cores.max(1),
        })
    }

    /// The serial fraction Amdahl's curve is drawn with: Karp–Flatt at the largest worker
    /// count the machine has cores for (beyond that, oversubscription is not Amdahl's
    /// subject).
    fn serial_fraction(&self, series: &Series) -> Option<f64> {
        let speedup = series.speedup();
        self.workers
            .iter()
            .zip(&speedup)
            .rfind(|(p, _)| **p > 1 && **p <= self.cores)
            .or_else(|| self.workers.iter().zip(&speedup).nth(1))
            .and_then(|(p, s)| karp_flatt(*s, *p))
            .map(|f| f.clamp(0.0, 1.0))
    }

    fn summary(&self) -> String {
        let mut text = format!("{} ({} cores)\n", self.title, self.cores);
        text.push_str(&format!(
            "{:<24} {:>7} {:>10} {:>8} {:>10} {:>11}\n",
            "series", "workers", "time (s)", "speedup", "efficiency", "Karp-Flatt"
        ));
        for s in &self.series {
            for ((p, t), speedup) in self.workers.iter().zip(&s.seconds).zip(s.speedup()) {
                let kf = karp_flatt(speedup, *p).map_or("-".to_string(), |e| format!("{e:.3}"));
                text.push_str(&format!(
                    "{:<24} {:>7} {:>10.3} {:>7.2}x {:>9.0}% {:>11}\n",
                    s.name,
                    p,
                    t,
                    speedup,
                    speedup / *p as f64 * 100.0,
                    kf
                ));
            }
            if let Some(f) = self.serial_fraction(s) {
                text.push_str(&format!(
                    "{:<24} serial fraction {:.3}: Amdahl's limit {}\n",
                    "",
                    f,
                    if f > 0.0 {
                        format!("{:.1}x", 1.0 / f)
                    } else {
                        "none".to_string()
                    }
                ));
            }
        }
        text
    }

    fn svg(&self) -> String {
        const WIDTH: f64 = 720.0;
        const HEIGHT: f64 = 420.0;
        const LEFT: f64 = 60.0;
        const RIGHT: f64 = 210.0;
        const TOP: f64 = 40.0;
        const BOTTOM: f64 = 50.0;
        let max_p = *self.workers.last().unwrap_or(&1) as f64;
        let measured_max = self
            .series
            .iter()
            .flat_map(|s| s.speedup())
            .fold(1.0f64, f64::max);
        // Room for the ideal line up to the largest worker count, so no curve is clipped.
        let y_max = measured_max.max(max_p).ceil();
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        // Workers on a log2 axis: 1, 2, 4, 8 are evenly spaced.
        let x = |p: f64| LEFT + plot_w * p.log2() / max_p.log2().max(1.0);
        let y = |s: f64| TOP + plot_h * (1.0 - s.min(y_max) / y_max);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">"
        );
        svg.push_str(&format!(
            "<text x=\"10\" y=\"22\" font-size=\"14\">{}</text>",
            escape_html(&self.title)
        ));
        // Grid and axes.
        let y_step = (y_max / 5.0).ceil().max(1.0);
        let mut tick = 0.0;
        while tick <= y_max {
            svg.push_str(&format!(
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{tick}x</text>",
                LEFT + plot_w,
                LEFT - 6.0,
                y(tick) + 4.0,
                y = y(tick)
            ));
            tick += y_step;
        }
        for p in &self.workers {
            let px = x(*p as f64);
            svg.push_str(&format!(
                "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{p}</text>",
                TOP + plot_h,
                TOP + plot_h + 16.0
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">workers</text><text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">speedup</text>",
            LEFT + plot_w / 2.0,
            HEIGHT - 10.0,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0
        ));
        // The machine's cores: beyond this line, workers share cores.
        if (self.cores as f64) < max_p {
            let cx = x(self.cores as f64);
            svg.push_str(&format!(
                "<line class=\"cores\" x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#999\" stroke-dasharray=\"2 3\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666\">{} cores</text>",
                TOP + plot_h,
                cx + 4.0,
                TOP + 12.0,
                self.cores
            ));
        }
        // Ideal (linear) speedup, and each series' Amdahl curve, sampled along the axis.
        let curve = |speedup: &dyn Fn(f64) -> f64| -> String {
            (0..=40)
                .map(|k| {
                    let p = 2f64.powf(max_p.log2() * k as f64 / 40.0);
                    format!("{:.1},{:.1}", x(p), y(speedup(p)))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        svg.push_str(&format!(
            "<polyline class=\"ideal\" points=\"{}\" fill=\"none\" stroke=\"#bbb\" stroke-dasharray=\"6 4\"/>",
            curve(&|p| p)
        ));
        let mut legend_y = TOP + 6.0;
        let legend_x = LEFT + plot_w + 16.0;
        for (i, s) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            if let Some(f) = self.serial_fraction(s) {
                svg.push_str(&format!(
                    "<polyline class=\"amdahl\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-opacity=\"0.5\" stroke-dasharray=\"4 3\"/>",
                    curve(&|p| amdahl(f, p))
                ));
            }
            let measured: Vec<String> = self
                .workers
                .iter()
                .zip(s.speedup())
                .map(|(p, sp)| format!("{:.1},{:.1}", x(*p as f64), y(sp)))
                .collect();
            svg.push_str(&format!(
                "<polyline class=\"measured\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                measured.join(" ")
            ));
            for ((p, sp), t) in self.workers.iter().zip(s.speedup()).zip(&s.seconds) {
                svg.push_str(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{colour}\"><title>{}: {p} workers, {t:.3} s, {sp:.2}x</title></circle>",
                    x(*p as f64),
                    y(sp),
                    escape_html(&s.name)
                ));
            }
            svg.push_str(&format!(
                "<line x1=\"{legend_x:.1}\" x2=\"{:.1}\" y1=\"{legend_y:.1}\" y2=\"{legend_y:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                legend_x + 18.0,
                legend_x + 24.0,
                legend_y + 4.0,
                escape_html(&s.name)
            ));
            legend_y += 18.0;
            if let Some(f) = self.serial_fraction(s) {
                svg.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666\" font-size=\"11\">Amdahl, serial fraction {f:.3}</text>",
                    legend_x + 24.0,
                    legend_y + 2.0
                ));
                legend_y += 18.0;
            }
        }
        svg.push_str(&format!(
            "<text x=\"{legend_x:.1}\" y=\"{:.1}\" fill=\"#999\" font-size=\"11\">dashed grey: ideal</text>",
            legend_y + 6.0
        ));
        svg.push_str("</svg>");
        svg
    }

    fn to_map(&self) -> Map {
        let series: Array = self
            .series
            .iter()
            .map(|s| {
                let speedup = s.speedup();
                let mut m = Map::new();
                m.insert("name".into(), s.name.clone().into());
                m.insert("workers".into(), ints(&self.workers).into());
                m.insert("seconds".into(), floats(&s.seconds).into());
                m.insert(
                    "efficiency".into(),
                    floats(
                        &speedup
                            .iter()
                            .zip(&self.workers)
                            .map(|(s, p)| s / *p as f64)
                            .collect::<Vec<_>>(),
                    )
                    .into(),
                );
                let kf: Array = speedup
                    .iter()
                    .zip(&self.workers)
                    .map(|(s, p)| karp_flatt(*s, *p).map_or(Dynamic::UNIT, Dynamic::from_float))
                    .collect();
                m.insert("karp_flatt".into(), kf.into());
                m.insert("speedup".into(), floats(&speedup).into());
                m.insert(
                    "serial_fraction".into(),
                    self.serial_fraction(s)
                        .map_or(Dynamic::UNIT, Dynamic::from_float),
                );
                Dynamic::from_map(m)
            })
            .collect();
        let mut map = Map::new();
        map.insert("svg".into(), self.svg().into());
        map.insert("summary".into(), self.summary().into());
        map.insert("series".into(), series.into());
        map
    }

    fn show(&self) {
        crate::runtime::display::show_chart(self.svg(), self.summary());
    }
}

const PALETTE: [&str; 6] = [
    "#2a9d8f", "#e76f51", "#264653", "#e9c46a", "#6d597a", "#8ab17d",
];

fn machine_cores() -> usize {
    crate::runtime::processes::process_api::cpu_count().max(1) as usize
}

fn ints(values: &[usize]) -> Array {
    values
        .iter()
        .map(|v| Dynamic::from_int(*v as i64))
        .collect()
}

fn floats(values: &[f64]) -> Array {
    values.iter().map(|v| Dynamic::from_float(*v)).collect()
}

fn worker_counts(workers: &Array) -> Result<Vec<usize>, String> {
    workers
        .iter()
        .map(|w| match w.as_int() {
            Ok(n) if n >= 1 => Ok(n as usize),
            _ => Err(format!("workers must be positive ints, got {w}")),
        })
        .collect()
}

fn seconds_of(name: &str, times: &Dynamic) -> Result<Vec<f64>, String> {
    let times = times
        .clone()
        .into_array()
        .map_err(|_| format!("series '{name}' must be an array of seconds"))?;
    times
        .iter()
        .map(|t| {
            t.as_float()
                .or_else(|_| t.as_int().map(|i| i as f64))
                .map_err(|_| format!("series '{name}': {t} is not a number of seconds"))
        })
        .collect()
}

#[export_module]
pub mod scaling_api {
    use super::*;

    /// Runs `f(n)` for each worker count `n` in `workers` (which starts with 1, e.g.
    /// `[1, 2, 4, 8]`), times each run, and shows the speedup chart: measured speedup
    /// T(1)/T(n) against ideal and Amdahl's law, with efficiency and the Karp–Flatt serial
    /// fraction in a table. Returns what `scaling_chart` returns.
    /// `scaling(|n| { let p = pool(n); p.map(work, tasks); p.join(); }, [1, 2, 4, 8])`
    #[rhai_fn(return_raw)]
    pub fn scaling(
        ctx: NativeCallContext,
        f: FnPtr,
        workers: Array,
    ) -> Result<Map, Box<EvalAltResult>> {
        let counts = worker_counts(&workers)?;
        let mut seconds = Vec::with_capacity(counts.len());
        for n in &counts {
            let started = Instant::now();
            let _result = f.call_within_context::<Dynamic>(&ctx, (*n as i64,))?;
            seconds.push(started.elapsed().as_secs_f64());
        }
        let name = if f.is_anonymous() {
            "measured".to_string()
        } else {
            f.fn_name().to_string()
        };
        let scaling = Scaling::new(
            format!("Speedup of {name}"),
            counts,
            vec![Series { name, seconds }],
            machine_cores(),
        )?;
        scaling.show();
        Ok(scaling.to_map())
    }

    /// Charts speedups measured elsewhere: `workers` (starting with 1) and `series`, a map
    /// from a name to the seconds taken with each worker count. Shows the chart and table
    /// (see `scaling`) and returns `#{svg, summary, series}`, where each series has its
    /// `speedup`, `efficiency`, `karp_flatt` per worker count and the `serial_fraction`
    /// Amdahl's curve is drawn with.
    /// `scaling_chart([1, 2, 4], #{ threads: [4.0, 2.1, 2.0] })`
    #[rhai_fn(name = "scaling_chart", return_raw)]
    pub fn scaling_chart(workers: Array, series: Map) -> Result<Map, Box<EvalAltResult>> {
        scaling_chart_with(workers, series, Map::new())
    }

    /// `scaling_chart` with options: `title` (text), `cores` (default: this machine's) and
    /// `display` (default true; false only returns the chart).
    #[rhai_fn(name = "scaling_chart", return_raw)]
    pub fn scaling_chart_with(
        workers: Array,
        series: Map,
        options: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        let mut title = "Speedup".to_string();
        let mut cores = machine_cores();
        let mut display = true;
        for (key, value) in &options {
            match key.as_str() {
                "title" => title = value.to_string(),
                "cores" => {
                    cores = value
                        .as_int()
                        .ok()
                        .filter(|c| *c >= 1)
                        .ok_or("cores must be a positive int")? as usize
                }
                "display" => {
                    display = value
                        .as_bool()
                        .map_err(|_| "display must be true or false")?
                }
                other => {
                    return Err(format!("unknown option '{other}' (title, cores, display)").into())
                }
            }
        }
        let series = series
            .iter()
            .map(|(name, times)| {
                Ok(Series {
                    name: name.to_string(),
                    seconds: seconds_of(name, times)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let scaling = Scaling::new(title, worker_counts(&workers)?, series, cores)?;
        if display {
            scaling.show();
        }
        Ok(scaling.to_map())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Scaling {
        Scaling::new(
            "t".into(),
            vec![1, 2, 4, 8],
            vec![Series {
                name: "threads".into(),
                seconds: vec![4.0, 2.5, 2.4, 2.4],
            }],
            2,
        )
        .expect("valid")
    }

    #[test]
    fn karp_flatt_recovers_the_serial_fraction_amdahl_was_given() {
        for f in [0.0, 0.1, 0.25, 0.5] {
            for p in [2usize, 4, 8] {
                let s = amdahl(f, p as f64);
                let e = karp_flatt(s, p).expect("p > 1");
                assert!((e - f).abs() < 1e-9, "f={f} p={p} e={e}");
            }
        }
        assert_eq!(karp_flatt(1.0, 1), None);
    }

    #[test]
    fn serial_fraction_is_taken_at_the_core_count() {
        // Speedup 1.6 on 2 workers: e = (1/1.6 - 1/2) / (1/2) = 0.25.
        let f = example().serial_fraction(&example().series[0]).expect("f");
        assert!((f - 0.25).abs() < 1e-9, "{f}");
    }

    #[test]
    fn chart_has_a_point_per_measurement_and_the_cores_line() {
        let svg = example().svg();
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("class=\"amdahl\""));
        assert!(svg.contains("class=\"cores\""));
        assert!(svg.contains(">threads<"));
    }

    #[test]
    fn bad_input_is_refused() {
        let series = || {
            vec![Series {
                name: "s".into(),
                seconds: vec![1.0, 0.5],
            }]
        };
        assert!(Scaling::new("t".into(), vec![2, 4], series(), 2).is_err());
        assert!(Scaling::new("t".into(), vec![1, 2, 4], series(), 2).is_err());
        let zero = vec![Series {
            name: "s".into(),
            seconds: vec![1.0, 0.0],
        }];
        assert!(Scaling::new("t".into(), vec![1, 2], zero, 2).is_err());
    }
}
