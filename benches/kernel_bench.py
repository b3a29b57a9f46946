"""Benchmark the rhai-kernel against ipykernel through jupyter_client.

Both kernels are driven side by side in one run, interleaved (A B A B ...), so
that machine noise hits both alike; only the rhai/ipykernel ratios inside a
single run are meaningful, never the absolute numbers across runs. Measured:

1. launch -> ready: ``KernelManager.start_kernel()`` until the first
   ``kernel_info_reply`` (the kernel serving requests), and until
   ``wait_for_ready()`` returns (which adds jupyter_client's own 0.2 s wait).
2. trivial execute round trip: sending ``1`` until its ``status: idle`` on IOPub.
3. 10,000 printed lines: execute until idle, after checking every line arrived.
4. idle RSS (VmRSS) of the kernel process after startup and one trivial cell, and
   post-load RSS (and the peak, VmHWM) after a cell that builds and drops a large array
   and prints many lines.
5. what the debugger costs: a loop cell with the debugger started (no breakpoint) against
   the same cell before it was started, in each kernel.

Usage:
    python benches/kernel_bench.py [--quick] [--write REPORT.md]
        [--kernel-name rhai] [--python-kernel python3]

Exits nonzero if a kernel fails to start or expected output is missing; unmet
targets are reported but do not fail the run.
"""

import argparse
import contextlib
import importlib.metadata
import platform
import queue
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import KernelManager

from report import (
    binary_description,
    machine_basics,
    markdown_table,
    met_text,
    progress,
    summary,
    text_table,
    unmet_list,
)

READY_TIMEOUT_S = 60
CELL_TIMEOUT_S = 120
# Pause after the trivial cell before reading RSS, so the kernel is truly idle.
IDLE_SETTLE_S = 0.25
PRINT_LINES = 10_000
RHAI_PRINT_CODE = f"for i in 0..{PRINT_LINES} {{ print(i) }}"
PYTHON_PRINT_CODE = f"for i in range({PRINT_LINES}): print(i)"
# The load before the post-load RSS: build and drop an array of a million distinct ints
# (a block scope drops it in Rhai), then print 10,000 lines.
LOAD_ITEMS = 1_000_000
RHAI_LOAD_CODE = (
    f"{{ let a = []; for i in 0..{LOAD_ITEMS} {{ a.push(i); }} }} {RHAI_PRINT_CODE}"
)
PYTHON_LOAD_CODE = f"a = [i for i in range({LOAD_ITEMS})]\ndel a\n{PYTHON_PRINT_CODE}"
# The cell timed with the debugger off and started (no breakpoints anywhere).
DEBUG_LOOP = 300_000
RHAI_DEBUG_CODE = f"let s = 0; for i in 0..{DEBUG_LOOP} {{ s += i % 7; }} s"
PYTHON_DEBUG_CODE = f"s = 0\nfor i in range({DEBUG_LOOP}):\n    s += i % 7\ns"


class BenchError(Exception):
    """A kernel failed to start, errored, timed out, or lost output."""


@dataclass(frozen=True)
class Plan:
    """How many samples each phase takes per kernel."""

    launches: int
    round_trips: int
    round_trip_block: int
    print_runs: int
    debug_runs: int


FULL_PLAN = Plan(launches=10, round_trips=200, round_trip_block=20, print_runs=5, debug_runs=7)
QUICK_PLAN = Plan(launches=2, round_trips=20, round_trip_block=10, print_runs=1, debug_runs=1)


@dataclass
class Metric:
    """Samples of one measurement for both kernels, with its ratio target (at most), or
    None for a row that is reported only."""

    name: str
    unit: str
    target: float | None
    rhai: list = field(default_factory=list)
    python: list = field(default_factory=list)

    @property
    def ratio(self):
        return statistics.median(self.rhai) / statistics.median(self.python)

    @property
    def met(self):
        """Whether the target is met; None without a target."""
        return None if self.target is None else self.ratio <= self.target


# --- talking to kernels -----------------------------------------------------


@contextlib.contextmanager
def running_kernel(kernel_name):
    """Start a kernel, yield (manager, client, (seconds to first kernel_info_reply,
    seconds to wait_for_ready)), always shut it down."""
    km = KernelManager(kernel_name=kernel_name)
    kc = None
    try:
        try:
            start = time.perf_counter()
            km.start_kernel()
            kc = km.client()
            kc.start_channels()
            kc.kernel_info()
            reply_s = first_reply_seconds(kc, "kernel_info_reply", start)
            kc.wait_for_ready(timeout=READY_TIMEOUT_S)  # RuntimeError on death/timeout
            ready_s = (reply_s, time.perf_counter() - start)
        except (NoSuchKernel, OSError, RuntimeError) as exc:
            raise BenchError(f"kernel {kernel_name!r} failed to start: {exc!r}") from exc
        yield km, kc, ready_s
    finally:
        if kc is not None:
            kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel()


def first_reply_seconds(kc, msg_type, start):
    """Seconds from `start` until a shell reply of `msg_type` arrives."""
    deadline = time.perf_counter() + READY_TIMEOUT_S
    while time.perf_counter() < deadline:
        try:
            reply = kc.get_shell_msg(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            break
        if reply["msg_type"] == msg_type:
            return time.perf_counter() - start
    raise RuntimeError(f"no {msg_type} within {READY_TIMEOUT_S}s")


def run_cell(kc, code):
    """Execute code; return (seconds until its idle status, stdout newline count)."""
    start = time.perf_counter()
    msg_id = kc.execute(code)
    newlines = 0
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=CELL_TIMEOUT_S)
        except queue.Empty:
            raise BenchError(f"no idle status within {CELL_TIMEOUT_S}s for {code!r}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == "stdout":
            newlines += content["text"].count("\n")
        elif kind == "error":
            raise BenchError(f"{code!r} raised {content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            elapsed = time.perf_counter() - start
            break
    wait_for_reply(kc, msg_id)
    return elapsed, newlines


def wait_for_reply(kc, msg_id):
    """Drain the shell channel up to the execute_reply of msg_id."""
    while True:
        try:
            reply = kc.get_shell_msg(timeout=CELL_TIMEOUT_S)
        except queue.Empty:
            raise BenchError(f"no execute_reply within {CELL_TIMEOUT_S}s") from None
        if reply["parent_header"].get("msg_id") == msg_id:
            return


def memory_bytes(pid, name="VmRSS"):
    """A memory figure of a process from /proc/<pid>/status: VmRSS (resident set size)
    or VmHWM (its peak so far)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no {name} for pid {pid}")


# --- phases -----------------------------------------------------------------


def measure_launches(kernels, plan, first_reply, ready, rss, loaded_rss, peak_rss):
    """Launch each kernel in turn; record times to ready, idle RSS after one cell, and
    RSS and peak RSS after the load cell."""
    for round_no in range(plan.launches):
        for name, key in kernels:
            progress(f"launch {round_no + 1}/{plan.launches}: {name}")
            with running_kernel(name) as (km, kc, (reply_s, ready_s)):
                pid = km.provisioner.process.pid
                run_cell(kc, "1")
                time.sleep(IDLE_SETTLE_S)
                getattr(first_reply, key).append(reply_s)
                getattr(ready, key).append(ready_s)
                getattr(rss, key).append(memory_bytes(pid))
                _, lines = run_cell(kc, RHAI_LOAD_CODE if key == "rhai" else PYTHON_LOAD_CODE)
                if lines != PRINT_LINES:
                    raise BenchError(f"{name}: {lines} of {PRINT_LINES} printed lines arrived")
                time.sleep(IDLE_SETTLE_S)
                getattr(loaded_rss, key).append(memory_bytes(pid))
                getattr(peak_rss, key).append(memory_bytes(pid, "VmHWM"))


def measure_cells(kernels, plan, round_trip, printing):
    """With both kernels up, time trivial round trips and 10k-line prints, interleaved."""
    with contextlib.ExitStack() as stack:
        clients = []
        for name, key in kernels:
            _, kc, _ = stack.enter_context(running_kernel(name))
            run_cell(kc, "1")  # warm up: first execution is not representative
            clients.append((name, key, kc))

        for done in range(0, plan.round_trips, plan.round_trip_block):
            progress(f"round trips {done}/{plan.round_trips}")
            for _, key, kc in clients:
                for _ in range(plan.round_trip_block):
                    getattr(round_trip, key).append(run_cell(kc, "1")[0])

        for run_no in range(plan.print_runs):
            for name, key, kc in clients:
                progress(f"print run {run_no + 1}/{plan.print_runs}: {name}")
                code = RHAI_PRINT_CODE if key == "rhai" else PYTHON_PRINT_CODE
                elapsed, lines = run_cell(kc, code)
                if lines != PRINT_LINES:
                    raise BenchError(f"{name}: {lines} of {PRINT_LINES} printed lines arrived")
                getattr(printing, key).append(elapsed)


def debug_request(kc, seq, command, **arguments):
    """Sends a debug request on the control channel and returns its reply's content."""
    msg = kc.session.msg(
        "debug_request",
        {"type": "request", "seq": seq, "command": command, "arguments": arguments},
    )
    kc.control_channel.send(msg)
    deadline = time.monotonic() + CELL_TIMEOUT_S
    while time.monotonic() < deadline:
        reply = kc.control_channel.get_msg(timeout=CELL_TIMEOUT_S)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            if not reply["content"].get("success"):
                raise BenchError(f"debug request {command} failed: {reply['content']}")
            return reply["content"]
    raise BenchError(f"no reply to debug request {command}")


def measure_debugger(kernels, plan, slowdown):
    """The loop cell in each kernel, timed before the debugger starts and after (as
    JupyterLab starts it: initialize, attach, configurationDone); a run's ratio is its
    time with the debugger over its time without."""
    with contextlib.ExitStack() as stack:
        clients = []
        for name, key in kernels:
            _, kc, _ = stack.enter_context(running_kernel(name))
            code = RHAI_DEBUG_CODE if key == "rhai" else PYTHON_DEBUG_CODE
            run_cell(kc, code)  # warm up
            clients.append((name, key, kc, code))
        off = {key: [] for _, key, _, _ in clients}
        for run_no in range(plan.debug_runs):
            for name, key, kc, code in clients:
                progress(f"debugger off {run_no + 1}/{plan.debug_runs}: {name}")
                off[key].append(run_cell(kc, code)[0])
        for _, _, kc, _ in clients:
            debug_request(kc, 1, "initialize", clientID="bench", adapterID="", pathFormat="path",
                          linesStartAt1=True, columnsStartAt1=True)
            debug_request(kc, 2, "attach")
            debug_request(kc, 3, "configurationDone")
        for run_no in range(plan.debug_runs):
            for name, key, kc, code in clients:
                progress(f"debugger started {run_no + 1}/{plan.debug_runs}: {name}")
                on = run_cell(kc, code)[0]
                getattr(slowdown, key).append(on / statistics.median(off[key]))
        for _, _, kc, _ in clients:
            debug_request(kc, 4, "disconnect", restart=False, terminateDebuggee=True)


def run_benchmark(kernel_name, python_kernel, plan):
    """Every metric, measured on both kernels interleaved."""
    kernels = [(kernel_name, "rhai"), (python_kernel, "python")]
    first_reply = Metric("launch -> ready (first kernel_info_reply)", "ms", 0.1)
    ready = Metric("launch -> wait_for_ready() returns", "ms", 0.1)
    round_trip = Metric("execute `1` round trip", "ms", 0.2)
    printing = Metric(f"{PRINT_LINES:,} printed lines", "ms", 0.5)
    rss = Metric("idle RSS", "MiB", 0.3)
    load = f"{LOAD_ITEMS:,}-int array dropped, {PRINT_LINES:,} lines printed"
    loaded_rss = Metric(f"post-load RSS ({load})", "MiB", None)
    peak_rss = Metric("peak RSS during the load cell (VmHWM)", "MiB", None)
    measure_launches(kernels, plan, first_reply, ready, rss, loaded_rss, peak_rss)
    measure_cells(kernels, plan, round_trip, printing)
    slowdown = Metric(
        f"{DEBUG_LOOP:,}-iteration loop cell: debugger started (no breakpoint) / off", "x", None
    )
    measure_debugger(kernels, plan, slowdown)
    return [first_reply, ready, round_trip, printing, rss, loaded_rss, peak_rss, slowdown]


# --- reporting --------------------------------------------------------------


def table_rows(metrics):
    """The header and one row of cells per metric."""
    header = ("metric", "rhai", "ipykernel", "ratio", "target", "met?")
    rows = [
        (
            m.name,
            summary(m.rhai, m.unit),
            summary(m.python, m.unit),
            f"{m.ratio:.3f}",
            "-" if m.target is None else f"<= {m.target}",
            met_text(m.met),
        )
        for m in metrics
    ]
    return header, rows


def rhai_binary(kernel_name):
    """The binary the Rhai kernelspec launches."""
    return KernelSpecManager().get_kernel_spec(kernel_name).argv[0]


def machine_info(kernel_name):
    """(key, value) lines of the report's machine section."""
    return [
        *machine_basics(),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("jupyter_client", importlib.metadata.version("jupyter_client")),
        ("ipykernel", importlib.metadata.version("ipykernel")),
        ("rhai-kernel", binary_description(rhai_binary(kernel_name))),
    ]


def markdown_report(metrics, info, plan, mode, elapsed_s):
    """The kernel section of BENCHMARKS.md."""
    unmet = [m.name for m in metrics if m.met is False]
    lines = [
        "# rhai-kernel vs ipykernel benchmark",
        "",
        "Generated by `benches/kernel_bench.py`. Both kernels were driven through "
        "`jupyter_client` in one run, interleaved (rhai, ipykernel, rhai, ...). "
        "The machine is shared and noisy: only the ratios within this run mean "
        "anything; absolute numbers are not comparable across runs or machines.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info],
        "",
        "## Results",
        "",
        f"Mode: {mode} (per kernel: launches {plan.launches}, round trips "
        f"{plan.round_trips}, print runs {plan.print_runs}); took {elapsed_s:.0f} s. "
        "Values are medians with interquartile range; ratio is rhai / ipykernel "
        "of the medians; lower is better. Rows without a target are reported only.",
        "",
        markdown_table(*table_rows(metrics)),
        "",
        *unmet_list(unmet),
        "",
        "## What is measured",
        "",
        "- launch -> ready: from `KernelManager.start_kernel()` until the first "
        "`kernel_info_reply` arrives (the kernel is serving), and until "
        "`client.wait_for_ready()` returns; a fresh kernel each launch. "
        "`wait_for_ready()` itself ends by waiting for 0.2 s of IOPub silence "
        "(jupyter_client 8.x), so this metric has a ~0.2 s floor for any kernel.",
        "- execute `1` round trip: from sending the execute_request until its "
        "`status: idle` arrives on IOPub, in blocks of "
        f"{plan.round_trip_block} per kernel alternately.",
        f"- {PRINT_LINES:,} printed lines: `{RHAI_PRINT_CODE}` vs `{PYTHON_PRINT_CODE}`, "
        "from execute until idle; every line is checked to have arrived.",
        "- idle RSS: VmRSS from `/proc/<pid>/status` of the kernel process after "
        "startup and one trivial cell.",
        "- post-load RSS: VmRSS of the same kernel right after a cell that builds and drops "
        f"an array of {LOAD_ITEMS:,} distinct ints and prints {PRINT_LINES:,} lines: "
        f"`{RHAI_LOAD_CODE}` vs `{PYTHON_LOAD_CODE.replace(chr(10), '; ')}`. It shows how "
        "much memory a kernel keeps after a heavier cell; the peak (VmHWM) shows what the "
        "cell needed while it ran.",
        f"- debugger: `{RHAI_DEBUG_CODE}` vs "
        f"`{PYTHON_DEBUG_CODE.replace(chr(10) + '    ', ' ').replace(chr(10), '; ')}`, "
        f"{plan.debug_runs} runs before the debugger starts and {plan.debug_runs} after it is "
        "started as JupyterLab starts it (`initialize`, `attach`, `configurationDone`; no "
        "breakpoint); each value is a run with the debugger over the median without, so "
        "1.00x is free. rhai-kernel runs cells on a second engine with Rhai's debugger "
        "callback while the debugger is started, and on its usual engine otherwise; "
        "ipykernel uses debugpy.",
        "",
    ]
    return "\n".join(lines)




def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="far fewer rounds, for smoke tests")
    parser.add_argument("--write", metavar="FILE", help="also write a Markdown report to FILE")
    parser.add_argument("--kernel-name", default="rhai", help="Rhai kernelspec (default: rhai)")
    parser.add_argument("--python-kernel", default="python3", help="ipykernel kernelspec (default: python3)")
    return parser.parse_args(argv)


def main(argv=None):
    """Run the benchmark, print the table, write the report if asked."""
    args = parse_args(argv)
    plan, mode = (QUICK_PLAN, "quick") if args.quick else (FULL_PLAN, "full")
    started = time.perf_counter()
    try:
        info = machine_info(args.kernel_name)
        metrics = run_benchmark(args.kernel_name, args.python_kernel, plan)
    except (BenchError, NoSuchKernel, subprocess.SubprocessError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    elapsed_s = time.perf_counter() - started
    print(text_table(*table_rows(metrics)))
    unmet = [m.name for m in metrics if m.met is False]
    print("Targets not met: " + ("; ".join(unmet) if unmet else "none") + ".")
    print(f"\n{mode} mode, {elapsed_s:.0f} s; only ratios within one run are meaningful.")
    if args.write:
        with open(args.write, "w") as report:
            report.write(markdown_report(metrics, info, plan, mode, elapsed_s))
        print(f"report written to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
