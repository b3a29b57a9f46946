"""Smoke test of the benchmark script: `--quick` runs both kernels and writes a well-formed
report. The numbers themselves are never checked here (they belong to `make bench`)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[2]


def test_quick_benchmark_writes_a_report(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "kernel_bench.py"), "--quick", "--write", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    for metric in ("ready", "round trip", "10,000", "idle RSS", "post-load RSS"):
        assert metric in text, f"{metric!r} missing from the report"
    table_rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table_rows) >= 8, "a header, a separator and one row per metric"
    assert "ipykernel" in text
