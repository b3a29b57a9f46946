"""Benchmark the concurrency runtime of `rhai-kernel run` against CPython.

Each benchmark is a pair of scripts in benches/runtime/ (NAME.rhai and NAME.py) that
time the operation inside their own process and print "key value" lines, so
interpreter startup is excluded. Both languages run in one invocation of this
script, interleaved (rhai, cpython, rhai, cpython, ...) for several rounds, so machine
noise hits both alike; only the ratios inside one run are meaningful. Measured:

1. thread start+join of a trivial function (mean per thread).
2. process start+join of a trivial function (mean per process), against CPython's
   fork, spawn and forkserver start methods.
3. 4 CPU-bound tasks on 2 threads, speedup over running them serially; the task is
   sized per language (by calibration) to take about the same time in both.
4. the same 4 tasks on a process pool of 2, cold (pool start included) and warm.
5. per-task dispatch cost of a warm pool of 2 with imap_unordered, chunksize 1.
6. 2 processes doing locked increments of one shared value (the final count is
   checked), and round trips through a queue and a pipe to an echoing process.

Usage:
    python benches/runtime_bench.py [--quick] [--write REPORT.md] [--binary PATH]

Exits nonzero if a script fails, times out, prints something unexpected, or a
count is wrong; unmet targets are reported but do not fail the run.
"""

import argparse
import datetime
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from report import ROOT, cpu_model, progress, shown_path, summary

SCRIPTS = os.path.join(ROOT, "benches", "runtime")
DEFAULT_BINARY = os.path.join(ROOT, "target", "release", "rhai-kernel")
SCRIPT_TIMEOUT_S = 300
# After a script exits, how long its leftover processes (e.g. CPython's forkserver)
# may take to exit on their own before they are killed.
LEFTOVER_GRACE_S = 3.0
CALIBRATIONS = 3
# work(n) sizes timed for calibration: about a quarter of a second in each language here.
CALIBRATION_N = {"rhai": 800_000, "cpython": 6_000_000}
# What each script prints: one "key value" line per key (seconds, or a count).
STARTUP_KEYS = {
    "rhai": ["thread", "process"],
    "cpython": ["thread", "process_fork", "process_spawn", "process_forkserver"],
}
CPU_KEYS = ["serial", "threads", "threads_gil", "pool_cold", "pool_warm"]
SHARED_KEYS = ["increments", "count", "queue", "pipe"]


class BenchError(Exception):
    """A script failed, timed out, printed something unexpected, or miscounted."""


@dataclass(frozen=True)
class Plan:
    """How many rounds run, and how big each measurement is."""

    rounds: int
    threads: int
    processes: int
    task_s: float
    dispatch_tasks: int
    increments: int
    round_trips: int


FULL_PLAN = Plan(
    rounds=7,
    threads=200,
    processes=20,
    task_s=0.4,
    dispatch_tasks=2000,
    increments=100_000,
    round_trips=1000,
)
QUICK_PLAN = Plan(
    rounds=2,
    threads=20,
    processes=3,
    task_s=0.05,
    dispatch_tasks=200,
    increments=5_000,
    round_trips=100,
)


@dataclass(frozen=True)
class Language:
    """How to run one language's benchmark scripts."""

    name: str
    command: tuple
    suffix: str

    def argv(self, script, args):
        path = os.path.join(SCRIPTS, script + self.suffix)
        return [*self.command, path, *map(str, args)]


def languages(binary):
    return [
        Language("rhai", (binary, "run"), ".rhai"),
        Language("cpython", (sys.executable,), ".py"),
    ]


# --- running scripts --------------------------------------------------------


def run_script(language, script, args, keys):
    """Run one benchmark script in its own process group; return its "key value" lines
    as a dict of floats, which must hold `keys`. Nothing it started is left running."""
    argv = language.argv(script, args)
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        process.communicate()
        raise BenchError(f"{language.name} {script} {args}: no exit within {SCRIPT_TIMEOUT_S} s")
    except BaseException:
        kill_group(process.pid)
        raise
    reap_leftovers(process.pid, f"{language.name} {script}")
    if process.returncode != 0:
        raise BenchError(
            f"{language.name} {script} {args} exited with {process.returncode}:\n{stderr}"
        )
    return parse_output(stdout, keys, f"{language.name} {script}")


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def reap_leftovers(pgid, what):
    """Give processes a script left behind a grace period to exit, then kill them."""
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while group_alive(pgid):
        if time.monotonic() > deadline:
            progress(f"WARNING: {what} left processes running after it exited; killed them")
            kill_group(pgid)
            return
        time.sleep(0.02)


def parse_output(stdout, keys, what):
    """{key: float} from lines like "thread 0.00017"; other lines, and missing keys, are
    errors."""
    values = {}
    for line in stdout.splitlines():
        try:
            key, number = line.split()
            values[key] = float(number)
        except ValueError:
            raise BenchError(f"{what} printed an unexpected line: {line!r}") from None
    missing = [key for key in keys if key not in values]
    if missing:
        raise BenchError(f"{what} did not print {', '.join(missing)}")
    return values


# --- the benchmark ------------------------------------------------------------


def calibrate(langs, task_s):
    """work(n) size per language so that one task takes about task_s seconds."""
    timings = {lang.name: [] for lang in langs}
    for _ in range(CALIBRATIONS):
        for lang in langs:
            n = CALIBRATION_N[lang.name]
            timings[lang.name].append(run_script(lang, "cpu", ["calibrate", n], ["task"])["task"])
    return {
        name: max(1, round(CALIBRATION_N[name] * task_s / statistics.median(secs)))
        for name, secs in timings.items()
    }


def with_speedups(cpu):
    """Add per-run speedups over serial and the mean serial task time to a cpu result."""
    serial = cpu["serial"]
    return {
        **cpu,
        "task": serial / 4,
        "speedup_threads": serial / cpu["threads"],
        "speedup_threads_gil": serial / cpu["threads_gil"],
        "speedup_pool_cold": serial / cpu["pool_cold"],
        "speedup_pool_warm": serial / cpu["pool_warm"],
    }


def checked_count(shared, plan, what):
    expected = 2 * plan.increments
    if shared["count"] != expected:
        raise BenchError(f"{what}: final count {shared['count']:.0f}, expected {expected}")
    return shared


def one_round(lang, plan, work_n):
    """Every benchmark script once for one language; all their values in one dict."""
    values = {}
    values.update(run_script(lang, "startup", [plan.threads, plan.processes],
                             STARTUP_KEYS[lang.name]))
    cpu = run_script(lang, "cpu", ["run", work_n[lang.name]], CPU_KEYS)
    values.update(with_speedups(cpu))
    values.update(run_script(lang, "dispatch", [plan.dispatch_tasks], ["dispatch"]))
    shared = run_script(lang, "shared", [plan.increments, plan.round_trips], SHARED_KEYS)
    values.update(checked_count(shared, plan, lang.name))
    return values


def run_benchmark(langs, plan):
    """{language name: {key: [one value per round]}}, the languages interleaved."""
    progress("calibrating the CPU-bound task")
    work_n = calibrate(langs, plan.task_s)
    samples = {lang.name: {} for lang in langs}
    for round_no in range(plan.rounds):
        for lang in langs:
            progress(f"round {round_no + 1}/{plan.rounds}: {lang.name}")
            for key, value in one_round(lang, plan, work_n).items():
                samples[lang.name].setdefault(key, []).append(value)
    return samples, work_n


# --- metrics and reporting ------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One table row. A "time" row compares rhai/cpython medians against `target`
    (at most); a "speedup" row compares rhai's speedup against `target` (at least).
    A "time" row with no target is reported only."""

    name: str
    rhai_key: str
    cpython_key: str
    unit: str
    kind: str = "time"
    target: float | None = None


def metrics(plan):
    start = "start+join (trivial fn)"
    tasks = "4 CPU tasks on"
    return [
        Metric(f"thread {start}, per thread", "thread", "thread", "us", target=0.6),
        Metric(f"process {start} vs fork", "process", "process_fork", "ms", target=1.0),
        Metric(f"process {start} vs spawn", "process", "process_spawn", "ms"),
        Metric(f"process {start} vs forkserver", "process", "process_forkserver", "ms"),
        speedup(f"{tasks} 2 threads: speedup over serial", "threads", 1.85),
        speedup(f"{tasks} 2 threads, GIL on (rhai set_gil(true)): speedup", "threads_gil", None),
        speedup(f"{tasks} pool(2), cold (pool start included): speedup", "pool_cold", 1.8),
        speedup(f"{tasks} pool(2), warm: speedup", "pool_warm", 1.9),
        Metric("pool(2) imap_unordered dispatch, chunksize 1, per task", "dispatch", "dispatch",
               "us", target=0.25),
        Metric(f"2 processes x {plan.increments:,} locked increments, total", "increments",
               "increments", "ms", target=0.5),
        Metric("queue round trip between processes", "queue", "queue", "us"),
        Metric("pipe round trip between processes", "pipe", "pipe", "us"),
    ]


def speedup(name, parallel, target):
    key = f"speedup_{parallel}"
    return Metric(name, key, key, "x", "speedup", target)



def evaluate(metric, samples):
    """(ratio text, target text, met or None) of one metric."""
    rhai = statistics.median(samples["rhai"][metric.rhai_key])
    cpython = statistics.median(samples["cpython"][metric.cpython_key])
    if metric.kind == "speedup":
        if metric.target is None:
            return "-", "-", None
        return "-", f"rhai >= {metric.target}x", rhai >= metric.target
    ratio = rhai / cpython
    if metric.target is None:
        return f"{ratio:.2f}", "-", None
    return f"{ratio:.2f}", f"<= {metric.target}", ratio <= metric.target


def table_rows(all_metrics, samples):
    header = ("metric", "rhai", "cpython", "ratio rhai/cpython", "target", "met?")
    rows = []
    for metric in all_metrics:
        ratio, target, met = evaluate(metric, samples)
        rows.append((
            metric.name,
            summary(samples["rhai"][metric.rhai_key], metric.unit),
            summary(samples["cpython"][metric.cpython_key], metric.unit),
            ratio,
            target,
            "-" if met is None else "yes" if met else "NO",
        ))
    return header, rows


def unmet_targets(all_metrics, samples):
    return [m.name for m in all_metrics if evaluate(m, samples)[2] is False]


def format_text_table(header, rows):
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def task_sizes(samples, work_n):
    """One line on how big the CPU-bound task was in each language."""
    parts = [
        f"{name} work({work_n[name]:,}) {statistics.median(samples[name]['task']):.2f} s"
        for name in ("rhai", "cpython")
    ]
    return "CPU task (median serial time per task): " + ", ".join(parts)






def rhai_version(binary):
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"cannot run {binary} --version ({exc}); build it with "
                         "`cargo build --release` or pass --binary") from exc
    return done.stdout.strip()


def machine_info(binary):
    build = " (debug build)" if f"{os.sep}debug{os.sep}" in os.path.abspath(binary) else ""
    return [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{cpu_model()}, {os.cpu_count()} cores"),
        ("OS", platform.platform()),
        ("rhai-kernel", f"{rhai_version(binary)}{build}, `{shown_path(binary)}`"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
    ]


def plan_text(plan, mode):
    return (
        f"Mode: {mode} ({plan.rounds} rounds per language; {plan.threads} threads, "
        f"{plan.processes} processes, CPU tasks of ~{plan.task_s} s, "
        f"{plan.dispatch_tasks} dispatched tasks, 2 x {plan.increments:,} increments, "
        f"{plan.round_trips} round trips per round)"
    )


def markdown_report(table, unmet, info, plan, mode, sizes, noise, elapsed_s):
    header, rows = table
    return "\n".join([
        "## Concurrency runtime: `rhai-kernel run` vs CPython",
        "",
        "Generated by `benches/runtime_bench.py` from the script pairs in "
        "`benches/runtime/`. Each script times the operation inside its own process, "
        "so interpreter startup is excluded; the languages ran alternately "
        "(rhai, cpython, rhai, ...) in one run. The machine is shared and noisy: only "
        "the ratios within this run mean anything; absolute numbers are not "
        "comparable across runs or machines.",
        "",
        "### Machine",
        "",
        *[f"- {key}: {value}" for key, value in info],
        f"- other load during the run: {noise}",
        "",
        "### Results",
        "",
        f"{plan_text(plan, mode)}; took {elapsed_s:.0f} s. Values are medians over the "
        "rounds with interquartile range; the ratio is rhai / cpython of the medians "
        "(lower is better); speedup rows are serial time / parallel time within each "
        "language (higher is better) and their target applies to rhai.",
        "",
        format_markdown_table(header, rows),
        "",
        f"{sizes}.",
        "",
        "Targets not met:" if unmet else "All targets met.",
        *([""] + [f"- {name}" for name in unmet] if unmet else []),
        "",
        "### What is measured",
        "",
        "- thread and process start+join: a trivial function started and joined one at a "
        "time, mean per start; one untimed warm-up start first (which also starts "
        "CPython's forkserver). CPython uses `threading.Thread` and "
        "`multiprocessing` `Process` with each start method; rhai uses "
        "`spawn_thread` and `spawn_process` (which re-executes the binary).",
        "- CPU tasks: `work(n)` sums `i % 7` over `0..n`, with n calibrated per language "
        "so a task takes about the same time in both. Serial: 4 tasks in a row; "
        "threads: 2 threads of 2 tasks each; pool: `map` of the 4 tasks with chunksize "
        "1 on a pool of 2 processes (CPython: `Pool(2)` with fork), cold including "
        "the pool's start, warm on the same pool again.",
        "- dispatch: on a warm pool of 2, `imap_unordered` of a trivial function over "
        f"{plan.dispatch_tasks} items, one task per item, consumed fully; mean per task.",
        "- locked increments: 2 processes each do "
        f"{plan.increments:,} times `l.hold(|| v.value += 1)` on a `value(0)` and a "
        "`lock()`; CPython: `with lock: v.value += 1` on a `Value('q', 0, lock=False)` "
        "guarded by a `Lock()` (fork). Timed from the first start to the last join; the "
        f"final count must be exactly {2 * plan.increments:,}.",
        "- queue / pipe round trip: send a number to an echoing process and receive it "
        "back (`queue()` pair / `pipe()` vs `multiprocessing` `Queue` pair / `Pipe`).",
        "",
    ])


def cpu_seconds():
    """(CPU seconds the whole machine has been busy, CPU seconds used by this script and
    the processes it waited for), from /proc/stat and getrusage."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    machine = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF),
                      resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    return machine, own


def other_load(start, end, elapsed_s):
    """How many cores other work (other processes, the hypervisor's steal)
    used on average during the run: that competes with the benchmark for cores."""
    others = max(0.0, (end[0] - start[0]) - (end[1] - start[1])) / elapsed_s
    return (f"{others:.2f} of {os.cpu_count()} cores on average (busy CPU time not used by "
            "the benchmark; it hurts the speedups most)")




def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="very few rounds, for smoke tests")
    parser.add_argument("--write", metavar="FILE", help="also write a Markdown report to FILE")
    parser.add_argument("--binary", default=DEFAULT_BINARY,
                        help="rhai-kernel binary (default: target/release/rhai-kernel)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    plan, mode = (QUICK_PLAN, "quick") if args.quick else (FULL_PLAN, "full")
    started = time.perf_counter()
    cpu_at_start = cpu_seconds()
    try:
        info = machine_info(args.binary)
        samples, work_n = run_benchmark(languages(args.binary), plan)
    except (BenchError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    elapsed_s = time.perf_counter() - started
    noise = other_load(cpu_at_start, cpu_seconds(), elapsed_s)
    all_metrics = metrics(plan)
    table = table_rows(all_metrics, samples)
    unmet = unmet_targets(all_metrics, samples)
    sizes = task_sizes(samples, work_n)
    print(format_text_table(*table))
    print(f"\n{sizes}.\nOther load during the run: {noise}.")
    print("Targets not met: " + ("; ".join(unmet) if unmet else "none") + ".")
    print(f"{mode} mode, {elapsed_s:.0f} s; only ratios within one run are meaningful.")
    if args.write:
        with open(args.write, "w") as report:
            report.write(markdown_report(table, unmet, info, plan, mode, sizes, noise, elapsed_s))
        print(f"report written to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
