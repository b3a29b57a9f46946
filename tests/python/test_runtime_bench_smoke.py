"""Smoke test of the runtime benchmark: `--quick` runs the Rhai and CPython scripts side by
side, writes a well-formed report with every row and the scaling section, and draws the
scaling chart as well-formed SVG. The numbers themselves are not checked here."""

import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

from jupyter_client.kernelspec import KernelSpecManager

ROOT = pathlib.Path(__file__).parents[2]
SERIES = ("rhai threads", "rhai process pool", "cpython threads", "cpython processes")


def test_quick_runtime_benchmark_writes_a_report_and_a_chart(tmp_path):
    report = tmp_path / "runtime.md"
    chart = tmp_path / "scaling.svg"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benches" / "runtime_bench.py"),
            "--quick",
            "--binary",
            # The binary of the kernelspec under test (the Makefile sets JUPYTER_PATH): the
            # build `make bench` measures.
            KernelSpecManager().get_kernel_spec("rhai").argv[0],
            "--write",
            str(report),
            "--svg",
            str(chart),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    for metric in (
        "thread start",
        "process start",
        "fork server off",
        "uncontended",
        "contended by 2 threads",
        "contended by 2 processes",
        "thread_pool(2): speedup",
        "thread_pool(2), GIL on",
        "default chunksize",
        "100,000-entry map",
        "locked increments",
        "under the race detector",
        "explore: one schedule",
        "speedup",
        "### Scaling",
        "Karp-Flatt",
        "(scaling.svg)",
    ):
        assert metric in text, f"{metric!r} missing from the report"
    assert len([line for line in text.splitlines() if line.startswith("|")]) >= 8
    scaling = text.split("### Scaling", 1)[1].split("###", 1)[0]
    for series in SERIES:
        for workers in (1, 2, 4, 8):
            assert f"| {series} | {workers} |" in scaling, f"no {series} row for {workers}"

    svg = ET.parse(chart).getroot()  # well-formed XML
    assert svg.tag.rsplit("}", 1)[-1] == "svg"
    drawn = " ".join(svg.itertext())
    for series in SERIES:
        assert series in drawn, f"{series!r} missing from the chart"
