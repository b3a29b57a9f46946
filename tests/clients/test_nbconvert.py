"""`jupyter nbconvert --to html --execute` on a shipped notebook (its saved outputs stripped first,
so only a fresh run can produce them) writes an HTML page with the expected outputs."""

import subprocess
import sys
from html.parser import HTMLParser

from client_support import EXPECTED, ROOT, strip_outputs

NOTEBOOK = ROOT / "notebooks" / "00-welcome.ipynb"


class OutputText(HTMLParser):
    """Collects the text inside the page's output areas (not the cells' source code)."""

    def __init__(self):
        super().__init__()
        self.depth, self.parts = 0, []  # depth: open <div>s inside an output area

    def handle_starttag(self, tag, attrs):
        if tag == "div" and (self.depth or "jp-OutputArea-output" in (dict(attrs).get("class") or "")):
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1
            if not self.depth:
                self.parts.append("\n")

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


def test_nbconvert_executes_to_html(jupyter_env, tmp_path):
    source = tmp_path / NOTEBOOK.name
    strip_outputs(NOTEBOOK, source)
    result = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", "--execute", str(source),
         "--output-dir", str(tmp_path / "html"), "--ExecutePreprocessor.timeout=120"],
        env=jupyter_env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parser = OutputText()
    parser.feed((tmp_path / "html" / "00-welcome.html").read_text())
    outputs = "".join(parser.parts)
    for expected in EXPECTED[NOTEBOOK.name]:
        assert expected in outputs, f"{expected!r} not in the outputs of the HTML page"
    assert "Traceback (most recent call last)" not in outputs
