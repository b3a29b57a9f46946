"""Count the instructions per iteration of interpreter-bound programs, rhai-kernel against
CPython, under valgrind's callgrind.

Wall time on a shared machine moves by 10 % from one run to the next; an instruction
count does not: the same binary, input and environment give the same total, whatever
else the machine is doing. So a change of a few percent in the interpreter's hot path is
visible here when the wall-time rows of `runtime_bench.py` cannot show it.

Each program runs twice, at two sizes, and the difference of the two totals divided by
the difference of the sizes is the cost of one iteration (one call for `fib`): the
start-up of the interpreter, the same in both runs, cancels out. Instructions are not
time (a cache miss costs more than an add), so these rows complement the wall-time rows
and do not replace them.

Usage:
    python benches/instructions.py [--binary PATH] [--python PATH] [--write REPORT.md]
        [--only NAME,NAME]

--write puts the section into REPORT.md in place of the one there (BENCHMARKS.md, say),
leaving the rest as it was. Without valgrind on the PATH it says so (in the section too)
and exits 0, so `make bench` still runs the rest.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADING = "### Instructions per iteration (callgrind)"


def fib_calls(n):
    """How many calls the naive fib(n) makes: calls(n) = 1 + calls(n-1) + calls(n-2)."""
    a, b = 1, 1  # calls(0), calls(1)
    for _ in range(n - 1):
        a, b = b, a + b + 1
    return b if n >= 1 else a


# name: (what one unit is, rhai program, python program, small size, large size,
#        units of a size). Each program does its work once with size {n}.
PROGRAMS = {
    "loop": (
        "iteration of `s += i % 7`",
        "fn work(n) { let s = 0; for i in 0..n { s += i % 7; } s }\nwork({n});\n",
        "def work(n):\n    s = 0\n    for i in range(n):\n        s += i % 7\n    return s\nwork({n})\n",
        20_000,
        220_000,
        lambda n: n,
    ),
    "fib": (
        "call of a recursive `fib`",
        "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\nfib({n});\n",
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib({n})\n",
        14,
        20,
        fib_calls,
    ),
    "len": (
        "iteration of `s += a.len()`",
        "fn work(a, n) { let s = 0; for i in 0..n { s += a.len(); } s }\n"
        "work([1, 2, 3], {n});\n",
        "def work(a, n):\n    s = 0\n    for i in range(n):\n        s += len(a)\n    return s\n"
        "work([1, 2, 3], {n})\n",
        20_000,
        220_000,
        lambda n: n,
    ),
    "lock pair": (
        "uncontended `acquire()` + `release()`",
        "fn pairs(l, n) { for i in 0..n { l.acquire(); l.release(); } }\npairs(lock(), {n});\n",
        "import threading\ndef pairs(l, n):\n    for i in range(n):\n        l.acquire()\n"
        "        l.release()\npairs(threading.Lock(), {n})\n",
        10_000,
        110_000,
        lambda n: n,
    ),
    "guard pair": (
        "`{ let g = l.guard(); }` / `with l: pass`",
        "fn guards(l, n) { for i in 0..n { let g = l.guard(); } }\nguards(lock(), {n});\n",
        "import threading\ndef guards(l, n):\n    for i in range(n):\n        with l:\n"
        "            pass\nguards(threading.Lock(), {n})\n",
        10_000,
        110_000,
        lambda n: n,
    ),
}


def count(command, script_path):
    """Total instructions of `command script_path`, all threads, by callgrind."""
    with tempfile.TemporaryDirectory() as out:
        target = os.path.join(out, "callgrind.out")
        env = dict(os.environ)
        # The runtime's fork server would start a second process that callgrind then
        # follows for nothing: these programs start no process.
        env["RHAI_KERNEL_FORK_SERVER"] = "off"
        # CPython salts its string hashes per process; a fixed seed makes its counts
        # repeat too.
        env["PYTHONHASHSEED"] = "0"
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={target}"]
            + command
            + [script_path],
            capture_output=True,
            text=True,
            env=env,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command} {script_path} failed:\n{result.stderr[-2000:]}")
        total = 0
        for name in os.listdir(out):
            with open(os.path.join(out, name)) as f:
                for line in f:
                    if line.startswith("summary:") or line.startswith("totals:"):
                        total = max(total, int(line.split()[1]))
        if total == 0:
            raise RuntimeError(f"no callgrind totals for {command} {script_path}")
        return total


def per_unit(command, source, small, large, units, suffix):
    """Instructions per unit of work, the start-up cancelled by two sizes."""
    totals = []
    with tempfile.TemporaryDirectory() as d:
        for n in (small, large):
            path = os.path.join(d, f"program{suffix}")
            with open(path, "w") as f:
                f.write(source.replace("{n}", str(n)))
            totals.append(count(command, path))
    return (totals[1] - totals[0]) / (units(large) - units(small))


def section(rows, binary, python):
    version = subprocess.run(
        [python, "--version"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        HEADING,
        "",
        "Generated by `benches/instructions.py`: instructions per unit of work, counted by "
        "valgrind's callgrind (all threads), each program run at two sizes so that start-up "
        f"cancels out. `rhai-kernel run` ({os.path.relpath(binary, ROOT)}) against {version}. "
        "Counts repeat exactly from run to run, so a change of a few percent shows here when "
        "wall time cannot show it; they are not time (a cache miss costs more than an add).",
        "",
        "| program | unit | rhai-kernel | CPython | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for name, unit, rhai, cpython in rows:
        lines.append(
            f"| {name} | {unit} | {rhai:,.0f} | {cpython:,.0f} | {rhai / cpython:.2f}× |"
        )
    return "\n".join(lines) + "\n"


def write_section(report, text):
    """Put `text` in place of the section under HEADING in `report`, or append it."""
    try:
        with open(report) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    pattern = re.compile(re.escape(HEADING) + r"\n.*?(?=\n#{1,3} |\Z)", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: text.rstrip("\n") + "\n", old)
    elif old.strip():
        new = old.rstrip("\n") + "\n\n" + text
    else:
        new = text
    with open(report, "w") as f:
        f.write(new)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--binary", default=os.path.join(ROOT, "target", "release", "rhai-kernel")
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--write", metavar="REPORT.md")
    parser.add_argument("--only", help="comma-separated program names")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        note = "instructions: valgrind is not installed; the instruction counts were skipped"
        print(note)
        if args.write:
            write_section(args.write, f"{HEADING}\n\nNot measured: {note.split(': ', 1)[1]}.\n")
        return 0
    names = args.only.split(",") if args.only else list(PROGRAMS)
    rows = []
    for name in names:
        unit, rhai_src, py_src, small, large, units = PROGRAMS[name]
        rhai = per_unit([args.binary, "run"], rhai_src, small, large, units, ".rhai")
        cpython = per_unit([args.python], py_src, small, large, units, ".py")
        rows.append((name, unit, rhai, cpython))
        print(f"{name:>10}: rhai-kernel {rhai:8,.0f}  CPython {cpython:8,.0f}  "
              f"ratio {rhai / cpython:.2f}", flush=True)
    text = section(rows, args.binary, args.python)
    if args.write:
        write_section(args.write, text)
    else:
        print()
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
