"""Helpers shared by the benchmark scripts: machine description and report paths."""

import os
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
