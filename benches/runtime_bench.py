"""Benchmark the concurrency runtime of `rhai-kernel run` against CPython.

Each benchmark is a pair of scripts in benches/runtime/ (NAME.rhai and NAME.py) that
time the operation inside their own process and print "key value" lines, so
interpreter startup is excluded. Both languages run in one invocation of this
script, interleaved (rhai, cpython, rhai, cpython, ...) for several rounds, so machine
noise hits both alike; only the ratios inside one run are meaningful. Measured:

1. thread start+join of a trivial function (mean per thread).
2. process start+join of a trivial function (mean per process), against CPython's
   fork, spawn and forkserver start methods.
3. lock acquire+release, uncontended (also through a guard, against `with lock`) and
   contended by 2 threads and by 2 processes.
4. the one-core loop of the CPU-bound task, per iteration; 4 CPU-bound tasks on 2 threads
   and on a thread pool of 2, with the GIL switch off and on, speedup over running them
   serially; the task is sized per language (by calibration) to take about the same time
   in both.
5. the same 4 tasks on a process pool of 2, cold (pool start included) and warm.
6. per-task dispatch cost of a warm pool of 2: imap_unordered with chunksize 1, and map
   with the default chunksize; and tasks of a closure that captures a big map.
7. 2 processes doing locked increments of one shared value, with `hold` and with a
   guard (the final count is checked), and round trips through a queue and a pipe to an
   echoing process.
8. the teaching tools: 2 threads doing unlocked increments of a shared value, plainly and
   under the race detector (`check_races`), and the time per schedule of `explore` on two
   threads doing one increment each, against CPython running that program once.
9. strong scaling: 8 CPU-bound tasks on 1, 2, 4 and 8 threads and warm process pools;
   speedup, efficiency and the Karp-Flatt serial fraction, and (with --svg) a chart of
   the measured speedups against Amdahl's law, drawn by the `scaling_chart` native.
10. the schedule explorer on textbook programs (benches/explore/classics.rhai): schedules
   and time of the partial-order reduction and of the depth-first search without a bound,
   each to completion or to a cap. These rows are rhai's only: CPython has no explorer.

Usage:
    python benches/runtime_bench.py [--quick] [--write REPORT.md] [--svg CHART.svg]
        [--binary PATH] [--explore-only]

--explore-only runs only the explorer rows and, with --write, puts their section into
REPORT.md in place of the one there (BENCHMARKS.md, say), leaving the rest as it was.

Exits nonzero if a script fails, times out, prints something unexpected, or a
count is wrong; unmet targets are reported but do not fail the run.
"""

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from report import (
    ROOT,
    binary_description,
    machine_basics,
    markdown_table,
    met_text,
    progress,
    summary,
    text_table,
    unmet_list,
)

SCRIPTS = os.path.join(ROOT, "benches", "runtime")
CLASSICS = os.path.join(ROOT, "benches", "explore", "classics.rhai")
# The most schedules the depth-first search without a bound may run per program (the
# reduction runs to completion within it, or is reported as stopped too).
CLASSICS_MAX = 50_000
CLASSICS_TIMEOUT_S = 600
EXPLORE_HEADING = "### Schedule explorer: textbook programs"
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
LOCK_KEYS = {
    "rhai": ["lock_uncontended", "lock_guard", "lock_threads", "lock_processes"],
    "cpython": ["lock_uncontended", "lock_uncontended_mp", "lock_with", "lock_threads",
                "lock_processes"],
}
# The parallel runs of the cpu scripts; each is also the key of its time for the 4 tasks.
PARALLEL_KEYS = ["threads", "threads_gil", "thread_pool", "thread_pool_gil", "pool_cold",
                 "pool_warm"]
CPU_KEYS = ["serial", *PARALLEL_KEYS]
DISPATCH_KEYS = ["dispatch", "dispatch_default", "captured"]
SHARED_KEYS = {
    "rhai": ["increments", "count", "increments_guard", "count_guard", "queue", "pipe"],
    "cpython": ["increments", "count", "queue", "pipe"],
}
OBSERVE_KEYS = {
    "rhai": ["plain", "checked", "per_schedule", "schedules"],
    "cpython": ["plain", "program_once", "schedules"],
}
# Schedules of two threads doing one increment each, with explore's default bound.
EXPLORED_SCHEDULES = 37
# Strong scaling: this many tasks on each of these worker counts (starting with 1).
SCALING_TASKS = 8
SCALING_WORKERS = [1, 2, 4, 8]
SCALING_KEYS = [f"{kind}_{k}" for k in SCALING_WORKERS for kind in ("threads", "pool")]
# (series name, language, key prefix) of the scaling table and chart.
SCALING_SERIES = [
    ("rhai threads", "rhai", "threads"),
    ("rhai process pool", "rhai", "pool"),
    ("cpython threads", "cpython", "threads"),
    ("cpython processes", "cpython", "pool"),
]


class BenchError(Exception):
    """A script failed, timed out, printed something unexpected, or miscounted."""


@dataclass(frozen=True)
class Plan:
    """How many rounds run, and how big each measurement is."""

    rounds: int
    threads: int
    processes: int
    lock_pairs: int
    task_s: float
    scaling_task_s: float
    dispatch_tasks: int
    increments: int
    round_trips: int
    observed_increments: int
    explorations: int


FULL_PLAN = Plan(
    rounds=7,
    threads=200,
    processes=20,
    lock_pairs=100_000,
    task_s=0.4,
    scaling_task_s=0.1,
    dispatch_tasks=2000,
    increments=100_000,
    round_trips=1000,
    observed_increments=100_000,
    explorations=20,
)
QUICK_PLAN = Plan(
    rounds=2,
    threads=20,
    processes=3,
    lock_pairs=2_000,
    task_s=0.05,
    scaling_task_s=0.01,
    dispatch_tasks=200,
    increments=5_000,
    round_trips=100,
    observed_increments=5_000,
    explorations=2,
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
    """Rhai (through `binary run`) and this CPython."""
    return [
        Language("rhai", (binary, "run"), ".rhai"),
        Language("cpython", (sys.executable,), ".py"),
    ]


# --- running scripts --------------------------------------------------------


def run_captured(language, script, args, env=None):
    """Run one script in its own process group (with `env` added to the environment)
    and return its stdout; it must exit with 0. Nothing it started is left running."""
    what = f"{language.name} {script}"
    process = subprocess.Popen(
        language.argv(script, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True, env={**os.environ, **(env or {})},
    )
    try:
        stdout, stderr = process.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        process.communicate()
        raise BenchError(f"{what} {args}: no exit within {SCRIPT_TIMEOUT_S} s") from None
    except BaseException:
        kill_group(process.pid)
        raise
    reap_leftovers(process.pid, what)
    if process.returncode != 0:
        raise BenchError(f"{what} {args} exited with {process.returncode}:\n{stderr}")
    return stdout


def run_script(language, script, args, keys, env=None):
    """Run one benchmark script; its "key value" lines as a dict of floats, which must
    hold `keys`."""
    stdout = run_captured(language, script, args, env)
    return parse_output(stdout, keys, f"{language.name} {script}")


def kill_group(pgid):
    """SIGKILL a process group, if it still exists."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def group_alive(pgid):
    """Whether any process of the group still exists."""
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


def calibrate(langs):
    """work(n) steps per second of each language: n for a task of s seconds is rate * s."""
    timings = {lang.name: [] for lang in langs}
    for _ in range(CALIBRATIONS):
        for lang in langs:
            n = CALIBRATION_N[lang.name]
            timings[lang.name].append(run_script(lang, "cpu", ["calibrate", n], ["task"])["task"])
    return {name: CALIBRATION_N[name] / statistics.median(secs) for name, secs in timings.items()}


def work_size(rate, seconds):
    """The work(n) argument for a task of about `seconds` at `rate` steps per second."""
    return max(1, round(rate * seconds))


def with_speedups(cpu):
    """Add per-run speedups over serial and the mean serial task time to a cpu result."""
    serial = cpu["serial"]
    return {
        **cpu,
        "task": serial / 4,
        **{f"speedup_{key}": serial / cpu[key] for key in PARALLEL_KEYS},
    }


def checked_count(shared, plan, what):
    """The shared result, after checking the locked increments lost no update."""
    expected = 2 * plan.increments
    for key in ("count", "count_guard"):
        if key in shared and shared[key] != expected:
            raise BenchError(f"{what}: final {key} {shared[key]:.0f}, expected {expected}")
    return shared


def one_round(lang, plan, rate):
    """Every benchmark script once for one language; all their values in one dict."""
    values = {}
    values.update(run_script(lang, "startup", [plan.threads, plan.processes],
                             STARTUP_KEYS[lang.name]))
    if lang.name == "rhai":
        # The same, with every worker started by executing the binary.
        executed = run_script(lang, "startup", [plan.threads, plan.processes],
                              STARTUP_KEYS[lang.name], {"RHAI_KERNEL_FORK_SERVER": "off"})
        values["process_exec"] = executed["process"]
    values.update(run_script(lang, "locks", [plan.lock_pairs], LOCK_KEYS[lang.name]))
    n = work_size(rate, plan.task_s)
    cpu = run_script(lang, "cpu", ["run", n], CPU_KEYS)
    values.update(with_speedups(cpu))
    # work(n) is one loop of n iterations: the serial run is 4 of them.
    values["loop_iteration"] = cpu["serial"] / (4 * n)
    values.update(run_script(lang, "dispatch", [plan.dispatch_tasks], DISPATCH_KEYS))
    shared = run_script(lang, "shared", [plan.increments, plan.round_trips],
                        SHARED_KEYS[lang.name])
    values.update(checked_count(shared, plan, lang.name))
    observed = run_script(lang, "observe", [plan.observed_increments, plan.explorations],
                          OBSERVE_KEYS[lang.name])
    if lang.name == "rhai" and observed["schedules"] != EXPLORED_SCHEDULES:
        raise BenchError(f"explore ran {observed['schedules']:.0f} schedules, "
                         f"expected {EXPLORED_SCHEDULES}")
    values.update({k: v for k, v in observed.items() if k != "schedules"})
    scaling_args = [work_size(rate, plan.scaling_task_s), SCALING_TASKS, *SCALING_WORKERS]
    values.update(run_script(lang, "scaling", scaling_args, SCALING_KEYS))
    return values


def run_benchmark(langs, plan):
    """({language name: {key: [one value per round]}}, {language name: work(n) steps per
    second}), the languages interleaved round by round."""
    progress("calibrating the CPU-bound task")
    rates = calibrate(langs)
    samples = {lang.name: {} for lang in langs}
    for round_no in range(plan.rounds):
        for lang in langs:
            progress(f"round {round_no + 1}/{plan.rounds}: {lang.name}")
            for key, value in one_round(lang, plan, rates[lang.name]).items():
                samples[lang.name].setdefault(key, []).append(value)
    return samples, rates


# --- metrics ----------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One table row. A "time" row compares rhai/cpython medians against `target`
    (at most); a "speedup" row compares rhai's speedup against `target` (at least).
    A row with no target is reported only."""

    name: str
    rhai_key: str
    cpython_key: str
    unit: str
    kind: str = "time"
    target: float | None = None


def metrics(plan):
    """Every row of the results table, in order."""
    start = "start+join (trivial fn)"
    pair = "lock acquire+release"
    tasks = "4 CPU tasks on"
    gil = "GIL on (rhai set_gil(true))"
    return [
        Metric(f"thread {start}, per thread", "thread", "thread", "us", target=0.6),
        Metric(f"process {start} vs fork", "process", "process_fork", "ms", target=1.0),
        Metric(f"process {start} vs spawn", "process", "process_spawn", "ms"),
        Metric(f"process {start} vs forkserver", "process", "process_forkserver", "ms"),
        Metric(f"process {start}, rhai fork server off, vs fork", "process_exec",
               "process_fork", "ms"),
        Metric(f"{pair}, uncontended (one thread) vs threading.Lock", "lock_uncontended",
               "lock_uncontended", "ns", target=2.0),
        Metric(f"{pair} by a guard (`{{ let g = l.guard(); }}`) vs `with lock: pass`",
               "lock_guard", "lock_with", "ns", target=2.0),
        Metric(f"{pair}, uncontended (one thread) vs multiprocessing.Lock", "lock_uncontended",
               "lock_uncontended_mp", "ns"),
        Metric(f"{pair}, contended by 2 threads", "lock_threads", "lock_threads", "ns"),
        Metric(f"{pair}, contended by 2 processes", "lock_processes", "lock_processes", "ns"),
        Metric("one-core loop `s += i % 7`, per iteration", "loop_iteration",
               "loop_iteration", "ns", target=3.0),
        speedup(f"{tasks} 2 threads: speedup over serial", "threads", 1.85),
        speedup(f"{tasks} 2 threads, {gil}: speedup", "threads_gil", None),
        speedup(f"{tasks} thread_pool(2): speedup", "thread_pool", None),
        speedup(f"{tasks} thread_pool(2), {gil}: speedup", "thread_pool_gil", None),
        speedup(f"{tasks} pool(2), cold (pool start included): speedup", "pool_cold", 1.8),
        speedup(f"{tasks} pool(2), warm: speedup", "pool_warm", 1.9),
        Metric("pool(2) imap_unordered dispatch, chunksize 1, per task", "dispatch", "dispatch",
               "us", target=0.25),
        Metric("pool(2) map dispatch, default chunksize, per task", "dispatch_default",
               "dispatch_default", "us"),
        Metric("pool(2) map, 16 tasks of a closure over a 100,000-entry map, per task",
               "captured", "captured", "ms"),
        Metric(f"2 processes x {plan.increments:,} locked increments with `hold`, total",
               "increments", "increments", "ms", target=1.5),
        Metric(f"2 processes x {plan.increments:,} locked increments with a guard, total",
               "increments_guard", "increments", "ms", target=1.0),
        Metric("queue round trip between processes", "queue", "queue", "us"),
        Metric("pipe round trip between processes", "pipe", "pipe", "us"),
        Metric(f"2 threads x {plan.observed_increments:,} unlocked increments of a shared "
               "value, total", "plain", "plain", "ms"),
        Metric("the same under the race detector (rhai check_races) vs plain", "checked",
               "plain", "ms"),
        Metric("explore: one schedule of 2 threads x 1 increment (detector on) vs running "
               "the program once", "per_schedule", "program_once", "us"),
    ]


def speedup(name, parallel, target):
    """A speedup row of the cpu scripts' parallel run `parallel`."""
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
    """The header and one row of cells per metric."""
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
            met_text(met),
        ))
    return header, rows


def unmet_targets(all_metrics, samples):
    """Names of the rows whose target is not met."""
    return [m.name for m in all_metrics if evaluate(m, samples)[2] is False]


def task_sizes(samples, plan, rates):
    """One line on how big the CPU-bound tasks were in each language."""
    parts = [
        f"{name} work({work_size(rates[name], plan.task_s):,}) "
        f"{statistics.median(samples[name]['task']):.2f} s"
        for name in ("rhai", "cpython")
    ]
    scaling = ", ".join(
        f"{name} work({work_size(rates[name], plan.scaling_task_s):,})"
        for name in ("rhai", "cpython")
    )
    return (f"CPU task (median serial time per task): {', '.join(parts)}; scaling task "
            f"(~{plan.scaling_task_s} s): {scaling}")


# --- strong scaling -----------------------------------------------------------------


def karp_flatt(speedup_n, n):
    """The experimentally determined serial fraction e = (1/S - 1/n) / (1 - 1/n), n > 1."""
    return (1 / speedup_n - 1 / n) / (1 - 1 / n)


def scaling_medians(samples):
    """{series name: [median seconds for each worker count of SCALING_WORKERS]}."""
    return {
        name: [statistics.median(samples[lang][f"{prefix}_{k}"]) for k in SCALING_WORKERS]
        for name, lang, prefix in SCALING_SERIES
    }


def scaling_rows(samples):
    """The header and one row per series and worker count: time, speedup T1/Tn (of the
    medians), efficiency S/n and the Karp-Flatt serial fraction."""
    header = ("series", "workers", "time", "speedup", "efficiency", "Karp-Flatt e")
    medians = scaling_medians(samples)
    rows = []
    for name, lang, prefix in SCALING_SERIES:
        t1 = medians[name][0]
        for k, tk in zip(SCALING_WORKERS, medians[name]):
            s = t1 / tk
            rows.append((
                name,
                str(k),
                summary(samples[lang][f"{prefix}_{k}"], "ms"),
                f"{s:.2f}x",
                f"{s / k:.2f}",
                "-" if k == 1 else f"{karp_flatt(s, k):.2f}",
            ))
    return header, rows


def write_chart(rhai, samples, path):
    """Draw the measured speedups against Amdahl's law with the scaling_chart native and
    write the SVG to `path`."""
    data = {
        "workers": SCALING_WORKERS,
        "series": scaling_medians(samples),
        "title": f"Strong scaling: {SCALING_TASKS} CPU-bound tasks, "
                 f"{os.cpu_count()} cores",
    }
    svg = run_captured(rhai, "chart", [json.dumps(data)])
    if not svg.lstrip().startswith("<svg"):
        raise BenchError(f"the chart script printed no SVG: {svg[:200]!r}")
    with open(path, "w") as chart:
        chart.write(svg)


# --- the schedule explorer ------------------------------------------------------------


@dataclass(frozen=True)
class Explored:
    """One program explored by one strategy."""

    program: str
    strategy: str
    schedules: int
    complete: bool
    seconds: float
    outcomes: str


def run_classics(binary, cap):
    """Every program of classics.rhai under both strategies, in one process."""
    what = "rhai classics"
    try:
        done = subprocess.run([binary, "run", CLASSICS, str(cap)], capture_output=True,
                              text=True, timeout=CLASSICS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: no exit within {CLASSICS_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise BenchError(f"{what} exited with {done.returncode}:\n{done.stderr}")
    explored = []
    for line in done.stdout.splitlines():
        try:
            program, strategy, schedules, status, seconds, *outcomes = line.split()
            explored.append(Explored(program, strategy, int(schedules),
                                     status == "complete", float(seconds),
                                     " ".join(outcomes).replace("_", " ")))
        except ValueError:
            raise BenchError(f"{what} printed an unexpected line: {line!r}") from None
    if not explored:
        raise BenchError(f"{what} printed nothing")
    return explored


def classics_rows(explored, cap):
    """The header and one row per program: schedules and time of each strategy."""
    header = ("program", "dpor schedules", "dpor time", "dfs schedules (no bound)", "dfs time",
              "outcomes (dpor)")
    by_program = {}
    for e in explored:
        by_program.setdefault(e.program, {})[e.strategy] = e

    def schedules(e):
        if e.complete:
            return f"{e.schedules:,}, complete"
        return f"{e.schedules:,}, NOT complete (stopped at the cap of {cap:,})"

    rows = []
    for program, strategies in by_program.items():
        dpor, dfs = strategies["dpor"], strategies["dfs"]
        outcomes = ", ".join(f"`{o}`" for o in dpor.outcomes.split(","))
        rows.append((program.replace("_", " "), schedules(dpor), f"{dpor.seconds:.2f} s",
                     schedules(dfs), f"{dfs.seconds:.2f} s", outcomes))
    return header, rows


def explore_section(table, cap):
    """The explorer's section of the report."""
    return "\n".join([
        EXPLORE_HEADING,
        "",
        "Generated by `benches/runtime_bench.py` from `benches/explore/classics.rhai`: "
        "`explore` on five textbook programs, with its default strategy (`dpor`, dynamic "
        "partial-order reduction: one schedule per class of schedules that differ only in "
        "the order of independent steps) and with the plain depth-first search without a "
        f"bound on preemptions (`strategy: \"dfs\", preemptions: 1000`), each stopped at "
        f"{cap:,} schedules if it has not finished by then. These rows are the explorer's "
        "only: CPython has no schedule explorer, so there is nothing to set them against. "
        "Time is one exploration's wall time in one process on this noisy machine, the "
        "race detector on in every schedule, on one core (the explorer keeps the threads of "
        "a run on one CPU); \"complete\" means every class of schedules "
        "(dpor) or every schedule (dfs) ran, so the outcomes are all there are.",
        "",
        "Programs: two increments (two threads, one unlocked `+= 1` each); Peterson's "
        "algorithm for two threads; three dining philosophers taking their forks in a "
        "global order; readers-writers with two readers and a writer; a bounded buffer "
        "of 2 slots on two semaphores and a lock, with 2 producers and 2 consumers of 2 "
        "items each.",
        "",
        markdown_table(*table),
        "",
    ])


def splice_section(path, section):
    """Puts `section` in the file at `path` in place of its explorer section (up to the
    next heading of that level or higher), or at its end."""
    try:
        with open(path) as report:
            text = report.read()
    except FileNotFoundError:
        text = ""
    start = text.find(EXPLORE_HEADING)
    if start < 0:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    else:
        rest = text[start + len(EXPLORE_HEADING):]
        ends = [i for i in (rest.find("\n## "), rest.find("\n### ")) if i >= 0]
        end = start + len(EXPLORE_HEADING) + min(ends) + 1 if ends else len(text)
        text = text[:start] + section + ("\n" + text[end:] if end < len(text) else "")
    with open(path, "w") as report:
        report.write(text)


def explore_only(args):
    """Runs only the explorer's rows; with --write, splices their section into the file."""
    try:
        explored = run_classics(args.binary, CLASSICS_MAX)
    except (BenchError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    table = classics_rows(explored, CLASSICS_MAX)
    print(text_table(*table))
    if args.write:
        splice_section(args.write, explore_section(table, CLASSICS_MAX))
        print(f"explorer section written to {args.write}")
    return 0


# --- reporting ------------------------------------------------------------------------


def machine_info(binary):
    """(key, value) lines of the report's machine section."""
    try:
        rhai = binary_description(binary)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"cannot run {binary} --version ({exc}); build it with "
                         "`cargo build --release` or pass --binary") from exc
    return [
        *machine_basics(),
        ("OS", platform.platform()),
        ("rhai-kernel", rhai),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
    ]


def plan_text(plan, mode):
    """The sizes of this run, in one sentence."""
    return (
        f"Mode: {mode} ({plan.rounds} rounds per language; {plan.threads} threads, "
        f"{plan.processes} processes, {plan.lock_pairs:,} lock pairs, CPU tasks of "
        f"~{plan.task_s} s, {plan.dispatch_tasks} dispatched tasks, 2 x "
        f"{plan.increments:,} increments, {plan.round_trips} round trips, "
        f"{SCALING_TASKS} scaling tasks of ~{plan.scaling_task_s} s per round)"
    )


@dataclass(frozen=True)
class Outcome:
    """Everything the report shows about one run."""

    table: tuple
    unmet: list
    scaling: tuple
    sizes: str
    noise: str
    elapsed_s: float
    explore: tuple


def markdown_report(outcome, info, plan, mode, chart_path):
    """The runtime section of BENCHMARKS.md; the chart, if any, is linked by its file name
    (it is written next to the report)."""
    chart = ([f"![Measured speedup against Amdahl's law]({os.path.basename(chart_path)})", ""]
             if chart_path else [])
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
        f"- other load during the run: {outcome.noise}",
        "",
        "### Results",
        "",
        f"{plan_text(plan, mode)}; took {outcome.elapsed_s:.0f} s. Values are medians over "
        "the rounds with interquartile range; the ratio is rhai / cpython of the medians "
        "(lower is better); speedup rows are serial time / parallel time within each "
        "language (higher is better) and their target applies to rhai. CPython's threads "
        "always run under its GIL, so its \"GIL on\" rows repeat the measurement. Rows "
        "without a target are reported only.",
        "",
        markdown_table(*outcome.table),
        "",
        f"{outcome.sizes}.",
        "",
        *unmet_list(outcome.unmet),
        "",
        "### Scaling",
        "",
        f"Strong scaling: the same {SCALING_TASKS} CPU-bound tasks on "
        f"{', '.join(map(str, SCALING_WORKERS))} workers, on a machine with "
        f"{os.cpu_count()} cores (more workers than cores shows oversubscription). Time is "
        "the median over the rounds; speedup S = T1 / Tn and efficiency S / n are of the "
        "medians; the Karp-Flatt serial fraction e = (1/S - 1/n) / (1 - 1/n) stays "
        "constant when the serial part limits the speedup (Amdahl) and grows with "
        "overheads such as too many workers for the cores.",
        "",
        markdown_table(*outcome.scaling),
        "",
        *chart,
        explore_section(outcome.explore, CLASSICS_MAX),
        "### What is measured",
        "",
        "- thread and process start+join: a trivial function started and joined one at a "
        "time, mean per start; one untimed warm-up start first (which also starts "
        "CPython's forkserver). CPython uses `threading.Thread` and "
        "`multiprocessing` `Process` with each start method; rhai uses "
        "`spawn_thread` and `spawn_process`, whose workers are forked by rhai's fork server "
        "(a single-threaded process that built an engine once); the \"fork server off\" "
        "row starts each worker by executing the binary instead "
        "(`RHAI_KERNEL_FORK_SERVER=off`).",
        f"- lock acquire+release: mean per `acquire()` + `release()` pair, {plan.lock_pairs:,} "
        "pairs in all. Uncontended: one thread on a `lock()`, against CPython's "
        "`threading.Lock` and `multiprocessing.Lock`; by a guard: the same pairs as "
        "`{ let g = l.guard(); }` in a loop, against `with lock: pass`. Contended: 2 threads "
        "(CPython: "
        "`threading.Lock`) or 2 processes (CPython: `multiprocessing.Lock`, fork) doing half "
        "the pairs each on one lock, timed from a barrier they pass with the main thread "
        "until both report done on a queue (starting and joining excluded).",
        "- CPU tasks: `work(n)` sums `i % 7` over `0..n`, with n calibrated per language "
        "so a task takes about the same time in both. Serial: 4 tasks in a row; "
        "threads: 2 threads of 2 tasks each; thread pool: `thread_pool(2).map(work, tasks, "
        "#{chunksize: 1})` (CPython: `concurrent.futures.ThreadPoolExecutor(2).map`), pool "
        "start and join included; \"GIL on\": the same with `set_gil(true)` before and "
        "`set_gil(false)` after; pool: `map` of the 4 tasks with chunksize "
        "1 on a pool of 2 processes (CPython: `Pool(2)` with fork), cold including "
        "the pool's start, warm on the same pool again. One-core loop: the serial time "
        "divided by the 4n iterations of the loop in `work`.",
        "- dispatch: on a warm pool of 2, `imap_unordered` of a trivial function over "
        f"{plan.dispatch_tasks} items, one task per item, consumed fully; and `map` over "
        "the same items with the default chunksize (about 4 chunks per worker, as "
        "CPython's `Pool.map`); mean per task. Captured map: `map` of a closure that "
        "captures a 100,000-entry map over 16 items, one task per item (CPython: "
        "`functools.partial` of a function and a 100,000-entry dict, which `Pool.map` "
        "pickles with every task; a lambda cannot be pickled); mean per task.",
        "- locked increments: 2 processes each do "
        f"{plan.increments:,} times `l.hold(|| v.value += 1)` on a `value(0)` and a "
        "`lock()`; CPython: `with lock: v.value += 1` on a `Value('q', 0, lock=False)` "
        "guarded by a `Lock()` (fork). The guard row does the same with "
        "`{ let g = l.guard(); v.value += 1; }` (CPython's row is its `with` again). "
        "Timed from the first start to the last join; the "
        f"final count must be exactly {2 * plan.increments:,}.",
        "- queue / pipe round trip: send a number to an echoing process and receive it "
        "back (`queue()` pair / `pipe()` vs `multiprocessing` `Queue` pair / `Pipe`).",
        "- teaching tools: 2 threads each do "
        f"{plan.observed_increments:,} times `c.value += 1` on one `value(0)` without a lock "
        "(CPython: `counter.value += 1` on a `Value('q', 0, lock=False)`, threads), plainly, "
        "and in rhai also inside `check_races` (which must report the race): the second row "
        "is the race detector's cost against CPython running the program plainly, and its "
        "ratio over the first row's is the detector's slowdown. explore: "
        f"{plan.explorations} explorations of two threads doing one increment each "
        f"({EXPLORED_SCHEDULES} schedules of `strategy: \"dfs\"` with its default bound, the detector on in every "
        "one), mean time per schedule, against CPython running that program once.",
        f"- scaling: {SCALING_TASKS} tasks of `work(n)` sized to ~{plan.scaling_task_s} s; "
        "threads: n threads, thread i running tasks i, i+n, ... (`spawn_thread` / "
        "`threading.Thread`, start and join included); process pool: `pool(n)` / "
        "`Pool(n)` (fork) started, one warm-up `map`, then `map` of the tasks with "
        "chunksize 1 timed. The chart is drawn by the `scaling_chart` native, which a "
        "notebook can call the same way.",
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
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="very few rounds, for smoke tests")
    parser.add_argument("--write", metavar="FILE", help="also write a Markdown report to FILE")
    parser.add_argument("--svg", metavar="FILE",
                        help="also draw the scaling chart to FILE (next to the report)")
    parser.add_argument("--binary", default=DEFAULT_BINARY,
                        help="rhai-kernel binary (default: target/release/rhai-kernel)")
    parser.add_argument("--explore-only", action="store_true",
                        help="only the schedule explorer's rows; --write splices them into "
                             "the file in place of its explorer section")
    return parser.parse_args(argv)


def main(argv=None):
    """Run the benchmark, print the tables, write the report and chart if asked."""
    args = parse_args(argv)
    if args.explore_only:
        return explore_only(args)
    plan, mode = (QUICK_PLAN, "quick") if args.quick else (FULL_PLAN, "full")
    started = time.perf_counter()
    cpu_at_start = cpu_seconds()
    langs = languages(args.binary)
    try:
        info = machine_info(args.binary)
        samples, rates = run_benchmark(langs, plan)
        elapsed_s = time.perf_counter() - started
        progress("the schedule explorer on textbook programs")
        explore = classics_rows(run_classics(args.binary, CLASSICS_MAX), CLASSICS_MAX)
        noise = other_load(cpu_at_start, cpu_seconds(), elapsed_s)
        if args.svg:
            write_chart(langs[0], samples, args.svg)
    except (BenchError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    all_metrics = metrics(plan)
    outcome = Outcome(
        table=table_rows(all_metrics, samples),
        unmet=unmet_targets(all_metrics, samples),
        scaling=scaling_rows(samples),
        sizes=task_sizes(samples, plan, rates),
        noise=noise,
        elapsed_s=elapsed_s,
        explore=explore,
    )
    print(text_table(*outcome.table))
    print(f"\n{outcome.sizes}.\nOther load during the run: {noise}.")
    print("Targets not met: " + ("; ".join(outcome.unmet) if outcome.unmet else "none") + ".")
    print(f"\n{text_table(*outcome.scaling)}")
    print(f"\n{text_table(*outcome.explore)}")
    if args.svg:
        print(f"scaling chart written to {args.svg}")
    print(f"{mode} mode, {elapsed_s:.0f} s; only ratios within one run are meaningful.")
    if args.write:
        with open(args.write, "w") as report:
            report.write(markdown_report(outcome, info, plan, mode, args.svg))
        print(f"report written to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
