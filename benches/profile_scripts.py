"""Profile where scripts spend their time: each script in benches/profile/ runs under
`perf record` with a build that keeps line tables, and the report says, per script, which
share of the samples is Rhai's evaluator, this product's code (natives, hooks), the C
library and the kernel, with the hottest functions of each.

This is what the performance notes in BENCHMARKS.md and docs/benchmarks.md stand on: a speed-up
is looked for where the samples are. `make profile` builds the binary and runs this;
it needs Linux `perf` (and permission to use it).

Usage:
    python benches/profile_scripts.py --binary PATH [--out DIR] [--top N] [SCRIPT.rhai ...]
"""

import argparse
import collections
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "benches", "profile")
# Owners of a symbol, by how its (demangled) name or its object file starts.
OWNERS = [
    ("Rhai", lambda sym, dso: sym.startswith(("rhai::", "<rhai::", "core::ptr::drop_in_place<rhai::"))),
    ("rhai-kernel", lambda sym, dso: "rhai_kernel::" in sym),
    ("kernel (system calls, scheduling)", lambda sym, dso: dso.startswith("[kernel")),
    ("C library (malloc, pthread)", lambda sym, dso: dso.startswith("libc")),
]
LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$")


def owner(sym, dso):
    for name, matches in OWNERS:
        if matches(sym, dso):
            return name
    return "other (std, allocator, inlined helpers)"


def record(binary, script, data):
    """Runs the script under perf; its printed timings."""
    run = subprocess.run(
        ["perf", "record", "-F", "2999", "-o", data, "--", binary, "run", script],
        capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        sys.exit(f"perf record of {script} failed:\n{run.stderr}")
    return [line for line in run.stdout.splitlines() if line.strip()]


def samples(data):
    """[(percent, dso, symbol)] of a recording, self time, hottest first."""
    report = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--stdio", "--sort", "dso,sym",
         "--percent-limit", "0.1"],
        capture_output=True, text=True, timeout=600)
    rows = []
    for line in report.stdout.splitlines():
        match = LINE.match(line)
        if match:
            rows.append((float(match.group(1)), match.group(2), match.group(3).strip()))
    return rows


def summary(name, timings, rows, top):
    shares = collections.Counter()
    hottest = collections.defaultdict(list)
    for percent, dso, sym in rows:
        who = owner(sym, dso)
        shares[who] += percent
        hottest[who].append((percent, sym))
    lines = [f"## {name}", ""]
    lines += [f"- {t}" for t in timings]
    lines += ["", "| owner | share of samples | hottest functions (self time) |", "|---|---|---|"]
    for who, share in shares.most_common():
        tops = ", ".join(f"`{shorten(sym)}` {p:.1f} %" for p, sym in hottest[who][:top])
        lines.append(f"| {who} | {share:.1f} % | {tops} |")
    return "\n".join(lines) + "\n"


def shorten(sym):
    """`rhai::func::call::<impl rhai::engine::Engine>::make_method_call` → `call::make_method_call`,
    `<smallvec::SmallVec<A> as FromIterator<T>>::from_iter` → `SmallVec::from_iter`: the
    function under its module or type, enough to find it in the source."""
    sym = re.sub(r"::\{\{closure\}\}", " (closure)", sym)
    if sym.startswith("<"):
        # `<Type as Trait>::f` is named after the type.
        depth = 0
        for i, ch in enumerate(sym):
            depth += {"<": 1, ">": -1}.get(ch, 0)
            if depth == 1 and sym.startswith(" as ", i):
                end = i
            if depth == 0:
                sym = sym[1:end] + sym[i + 1:] if " as " in sym[:i] else sym[1:i] + sym[i + 1:]
                break
    plain, depth = [], 0
    for ch in sym:
        depth += {"<": 1}.get(ch, 0)
        if depth == 0:
            plain.append(ch)
        depth -= {">": 1}.get(ch, 0)
    parts = [p for p in "".join(plain).split("::") if p]
    return "::".join(parts[-2:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "profile"))
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("scripts", nargs="*")
    args = parser.parse_args(argv)
    scripts = args.scripts or sorted(
        os.path.join(SCRIPTS, f) for f in os.listdir(SCRIPTS) if f.endswith(".rhai"))
    os.makedirs(args.out, exist_ok=True)
    report = ["# Where the time goes", ""]
    for script in scripts:
        name = os.path.splitext(os.path.basename(script))[0]
        data = os.path.join(args.out, f"{name}.data")
        timings = record(args.binary, script, data)
        report.append(summary(name, timings, samples(data), args.top))
    text = "\n".join(report)
    with open(os.path.join(args.out, "profile.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
