"""Smoke test of the runtime benchmark: `--quick` runs the Rhai and CPython scripts side by
side and writes a well-formed report. The numbers themselves are not checked here."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[2]


def test_quick_runtime_benchmark_writes_a_report(tmp_path):
    report = tmp_path / "runtime.md"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benches" / "runtime_bench.py"),
            "--quick",
            "--binary",
            str(ROOT / "target" / "release" / "rhai-kernel"),
            "--write",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    for metric in ("thread start", "process start", "locked increments", "speedup"):
        assert metric in text, f"{metric!r} missing from the report"
    assert len([line for line in text.splitlines() if line.startswith("|")]) >= 8
