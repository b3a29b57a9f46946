"""Helpers shared by the benchmark scripts: machine description and report paths."""

import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model():
    """The CPU model name from /proc/cpuinfo."""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def shown_path(path):
    """A path as a report shows it: relative to the repository when inside it, so the
    report does not depend on where the repository is checked out."""
    absolute = os.path.abspath(path)
    if absolute.startswith(ROOT + os.sep):
        return os.path.relpath(absolute, ROOT)
    return os.path.basename(absolute)


def progress(message):
    """A progress line on stderr (stdout carries the results)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# Display units and their factors from seconds (or bytes, or a plain ratio for "x").
SCALE = {"us": 1e6, "ms": 1e3, "MiB": 1 / 2**20, "x": 1.0}


def summary(values, unit):
    """Median with interquartile range, e.g. '12.3 ms (IQR 11.0-14.1, n=7)'."""
    scaled = [v * SCALE[unit] for v in values]
    if len(scaled) > 1:
        q1, med, q3 = statistics.quantiles(scaled, n=4, method="inclusive")
    else:
        q1 = med = q3 = scaled[0]
    digits = 2 if unit == "x" else 1
    suffix = "x" if unit == "x" else f" {unit}"
    return f"{med:.{digits}f}{suffix} (IQR {q1:.{digits}f}-{q3:.{digits}f}, n={len(scaled)})"
