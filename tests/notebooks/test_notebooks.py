"""Executes every notebook shipped in notebooks/ with nbclient on the "rhai" kernel, the way
"Run All" does, and checks that no cell fails and that key outputs appear."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_expectations import EXPECTED, skip_reason

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


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
    if reason := skip_reason(path):
        pytest.skip(reason)
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
