//! A soak test of one kernel: many cells (definitions, prints, errors), process spawns and
//! pool maps. After a warm-up, resident memory may grow by at most 10 % and the number of
//! open file descriptors must not grow. `SOAK_SCALE=10` gives the long run (10,000 cells,
//! 1,000 spawns, 1,000 pool maps); the default is a tenth of that. Latency is printed,
//! not asserted (timings on a shared machine are for benchmarks).

mod kernel_support;

use kernel_support::{fd_count, Kernel};
use std::time::{Duration, Instant};

fn scale() -> usize {
    std::env::var("SOAK_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(1)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The code of cell number `i`: a rotating mix of what notebooks do.
fn cell(i: usize) -> String {
    match i % 8 {
        0 => format!("let x{} = {i}; x{} * 2", i % 10, i % 10),
        1 => format!("fn f{}(a) {{ a + {i} }} f{}(1)", i % 5, i % 5),
        2 => format!("for j in 0..5 {{ print(`cell {i} line ${{j}}`); }}"),
        3 => format!(
            "let s{} = `text {i}` + \"x\".pad(100, 'y'); s{}.len()",
            i % 10,
            i % 10
        ),
        4 => "let a = []; for j in 0..200 { a.push(j * j); } a.len()".to_string(),
        5 if i % 40 == 5 => format!("throw \"planned error {i}\""),
        5 => "let m = #{ a: 1, b: [1, 2, 3] }; m.b.len()".to_string(),
        6 => "let t = spawn_thread(|x| x + 1, 41); t.join()".to_string(),
        _ => format!("display_markdown(\"**cell {i}**\");"),
    }
}

/// Median of the middle of `samples`, in microseconds.
fn median_us(samples: &mut [Duration]) -> u128 {
    samples.sort();
    samples.get(samples.len() / 2).map_or(0, |d| d.as_micros())
}

#[test]
fn one_kernel_runs_thousands_of_cells_spawns_and_maps_without_growing() {
    let scale = scale();
    let (cells, spawns, maps) = (1000 * scale, 100 * scale, 100 * scale);
    // History goes to a file, as it does by default outside tests.
    let dir = tempfile::tempdir().expect("temp dir");
    let history = dir.path().join("history.jsonl");
    let mut k = Kernel::start_with_env(&[("RHAI_KERNEL_HISTORY", history.to_str().expect("path"))]);
    assert_eq!(
        k.execute("let p = pool(2); fn inc(x) { x + 1 }").status(),
        "ok"
    );

    let mut latencies = Vec::with_capacity(cells);
    let mut baseline = None;
    let warm_up = cells / 10;
    for i in 0..cells {
        if i == warm_up {
            std::thread::sleep(Duration::from_millis(300));
            baseline = Some((rss_kib(k.pid()), fd_count(k.pid())));
        }
        let started = Instant::now();
        let ex = k.execute(&cell(i));
        latencies.push(started.elapsed());
        let planned_error = i % 8 == 5 && i % 40 == 5;
        assert_eq!(
            ex.status(),
            if planned_error { "error" } else { "ok" },
            "cell {i}: {:?}",
            ex.reply.content
        );
        // Process spawns and pool maps, spread over the cells.
        if i % (cells / spawns) == 0 {
            assert_eq!(
                k.eval(&format!("spawn_process(inc, {i}).join()")),
                (i + 1).to_string()
            );
        }
        if i % (cells / maps) == 1 {
            assert_eq!(k.eval("p.map(inc, 0..20).len()"), "20");
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let (rss_before, fds_before) = baseline.expect("a baseline after the warm-up");
    let (rss_after, fds_after) = (rss_kib(k.pid()), fd_count(k.pid()));
    let slice = (cells / 10).max(1);
    let first = median_us(&mut latencies[..slice].to_vec());
    let last = median_us(&mut latencies[cells - slice..].to_vec());
    eprintln!(
        "soak x{scale}: {cells} cells, {spawns} spawns, {maps} maps; RSS {rss_before} -> {rss_after} KiB; fds {fds_before} -> {fds_after}; median cell {first} us (first tenth) -> {last} us (last tenth)"
    );
    assert!(
        rss_after * 10 <= rss_before * 11,
        "RSS grew more than 10 %: {rss_before} -> {rss_after} KiB"
    );
    assert!(
        fds_after <= fds_before,
        "fds grew: {fds_before} -> {fds_after}"
    );
    // Variables of early cells are still there: x0 was last set by cell `cells - 40`.
    assert_eq!(k.eval("x0"), (cells - 40).to_string());
}
