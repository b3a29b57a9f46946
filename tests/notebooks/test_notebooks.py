"""Executes every notebook shipped in notebooks/ with nbclient on the "rhai" kernel, the way
"Run All" does, and checks that no cell fails and that key outputs appear."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))

# Text that must appear in a notebook's outputs (beyond "no cell failed").
EXPECTED = {
    "00-welcome.ipynb": ["Hello from Rhai!", "144", "caught:"],
    "01-threads-vs-processes.ipynb": [
        "Square: 16",
        "Cube: 64",
        "Done with multithreading",
        "Done with multiprocessing",
        "most running at once: 1",
        "most sleeping at once: 4",
        "timeline: ",
        "Thread-",
        "Process-",
        "CPU utilisation",
    ],
    "02-race-conditions.ipynb": [
        "lost updates: ",
        "with add(): counter = 200000, lost updates: 0",
        "Person A sees $100 and withdraws $80",
        "Person B sees $100 and withdraws $80",
        "final balance: -60",
    ],
    "03-locks.ipynb": [
        "threads:   final count: 200000",
        "processes: final count: 200000",
        "balance: 20",
        "declined, only $20 left",
        "acquire(0.1) returned false",
        "died without releasing it",
        "acquire(5.0) returned true",
        "deadlock detected",
        "(take_in_order): got both locks",
        "which it already holds",
        "consumer got 42",
        "all done, free permits: 2",
    ],
    "04-pools.ipynb": [
        "squares: [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]",
        "sum of the squares of 1..=10: 385",
        "sum of the squares of 1..=1000: 333833500",
        "7837 primes",
        "result: 42",
        "task 3 failed: three is unlucky",
        "broken pool",
        "the pool works again: [0, 1, 4, 9, 16]",
        "40/40 (100%)",
        "the thread pool is closed",
    ],
    "05-ipc.ipynb": [
        "in the parent: [1, 2, 3]",
        "together: sum 5050",
        "asked for 12², got 144",
        "server: answered 3 requests",
        "worker: stopped",
        "filled by two processes: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]",
        "pipe round trip",
        "µs per round trip",
    ],
}


def output_text(nb):
    """All text of all outputs, stream and rich, concatenated."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.extend(str(v) for v in out.data.values())
            elif out.output_type == "error":
                parts.append(f"{out.ename}: {out.evalue}")
    return "\n".join(parts)


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ should ship at least the welcome notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_clean(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="rhai", timeout=120, allow_errors=False).execute()
    errors = [
        out
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]
    assert not errors, f"cells failed: {errors}"
    text = output_text(nb)
    for expected in EXPECTED.get(path.name, []):
        assert expected in text, f"{expected!r} not in the outputs of {path.name}"
    check_timelines(nb)


def check_timelines(nb):
    """Every timeline chart has one row per worker its summary lists, and a bar each."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            svg = out.get("data", {}).get("image/svg+xml") if out.output_type == "display_data" else None
            if not svg or "class=\"span\"" not in svg:
                continue
            rows = [line.split()[0] for line in out.data["text/plain"].splitlines()[1:] if line.strip()]
            assert len(rows) >= 2, out.data["text/plain"]
            for row in rows:
                assert row in svg, f"row {row} missing from the chart"
            assert svg.count("<rect class=\"span\"") >= len(rows)
