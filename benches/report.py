"""Helpers shared by the benchmark scripts: machine description, report paths, value
summaries and the text and Markdown tables."""

import datetime
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model():
    """The CPU model name from /proc/cpuinfo."""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def machine_basics():
    """The first lines of a report's machine section: date and CPU (model, cores)."""
    return [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{cpu_model()}, {os.cpu_count()} cores"),
    ]


def binary_description(binary):
    """'rhai-kernel 0.1.0, `target/release/rhai-kernel`' for a report: the binary's
    --version, marked when it is a debug build, and where it is. Raises OSError or
    subprocess.SubprocessError when the binary cannot run."""
    done = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=30
    )
    build = " (debug build)" if f"{os.sep}debug{os.sep}" in os.path.abspath(binary) else ""
    return f"{done.stdout.strip()}{build}, `{shown_path(binary)}`"


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
SCALE = {"ns": 1e9, "us": 1e6, "ms": 1e3, "MiB": 1 / 2**20, "x": 1.0}


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


def met_text(met):
    """A table's "met?" cell: yes, NO, or - when the row has no target."""
    return "-" if met is None else "yes" if met else "NO"


def text_table(header, rows):
    """Rows of cells as aligned plain-text columns, for the terminal."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header, rows):
    """Rows of cells as a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def unmet_list(unmet):
    """The Markdown lines that list the unmet targets plainly, or say all were met."""
    if not unmet:
        return ["All targets met."]
    return ["Targets not met:", "", *[f"- {name}" for name in unmet]]
