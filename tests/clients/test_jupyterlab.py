"""JupyterLab in a real browser (Debian's chromium driven by Playwright): every shipped notebook
runs clean with Run All Cells, and Interrupt and Restart work from the Kernel menu."""

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
from playwright.sync_api import Error as PlaywrightError
import pytest
from client_support import (
    EXPECTED,
    LOCK_CELL,
    NOTEBOOKS,
    OUTPUT_DIR,
    kill_kernels_in,
    private_env,
    skip_reason,
    strip_outputs,
)
from lab_page import (
    ERROR_OUTPUTS,
    NOTEBOOK_READY,
    RUN_ALL_OVER,
    WATCH_RESTART,
    cell_output,
    menu,
    outputs_text,
    run_cell,
    wait_idle,
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = OUTPUT_DIR / "browser"
RUN_TIMEOUT_MS = 300_000  # a notebook takes under a minute on 2 cores

# JupyterLab user settings: every cell stays in the DOM (no windowed rendering), and no news
# toast covers the page.
SETTINGS = {
    "notebook-extension/tracker": {"windowingMode": "none"},
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

# Expected text that only an output's text/plain carries, which the browser does not show: a
# timeline's summary line sits behind the SVG chart JupyterLab displays instead.
NOT_SHOWN = {"timeline: "}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(lab, path, method="GET"):
    request = urllib.request.Request(
        f"{lab['url']}{path}", method=method, headers={"Authorization": f"token {lab['token']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`jupyter lab` on 127.0.0.1 serving a copy of notebooks/ (outputs stripped), in a private
    Jupyter environment; shut down (kernels included) at the end."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    for path in NOTEBOOKS:
        strip_outputs(path, root / path.name)
    env = private_env(base, JUPYTERLAB_SETTINGS_DIR="settings", JUPYTERLAB_WORKSPACES_DIR="workspaces")
    for plugin, values in SETTINGS.items():
        path = base / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token, port = secrets.token_hex(16), free_port()
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:
        args.append("--allow-root")
    log = open(base / "lab.log", "w")
    server = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lab = {"url": f"http://127.0.0.1:{port}", "token": token, "root": root, "log": base / "lab.log"}
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"jupyter lab exited: {lab['log'].read_text()}"
            try:
                api(lab, "/api/status")
                break
            except OSError:
                assert time.monotonic() < deadline, f"jupyter lab did not start: {lab['log'].read_text()}"
                time.sleep(0.3)
        yield lab
    finally:
        try:
            api(lab, "/api/shutdown", method="POST")  # shuts its kernels down too
            server.wait(timeout=30)
        except Exception:
            os.killpg(server.pid, 9)
            server.wait()
        kill_kernels_in(env["JUPYTER_RUNTIME_DIR"])  # none is left unless the shutdown failed
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"chromium not found at {CHROMIUM}: install Debian's package "
            "(apt-get install chromium, as .ci/run does) or set CHROMIUM to its path"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def open_notebook(browser, lab, request):
    """Opens a notebook of the served copy in a fresh page and workspace; afterwards saves a
    screenshot, closes the page and shuts down the kernels it started."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = []

    def open_(name):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        pages.append(page)
        workspace = re.sub(r"\W", "-", request.node.name)
        page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{name}?token={lab['token']}")
        cells = len(nbformat.read(lab["root"] / name, as_version=4).cells)
        page.wait_for_function(NOTEBOOK_READY, arg=cells)
        return page

    yield open_
    for i, page in enumerate(pages):
        page.screenshot(path=SCREENSHOTS / f"{request.node.name}-{i}.png")
        page.close()
    for session in api(lab, "/api/sessions"):
        api(lab, f"/api/sessions/{session['id']}", method="DELETE")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_run_all_cells(open_notebook, path):
    if reason := skip_reason(path):
        pytest.skip(reason)
    page = open_notebook(path.name)
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(RUN_ALL_OVER, timeout=RUN_TIMEOUT_MS, polling=250)
    assert page.evaluate(ERROR_OUTPUTS) == []
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_text_contents()
    assert all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts), f"cells not run: {prompts}"
    text = outputs_text(page)
    assert "Traceback (most recent call last)" not in text
    for expected in set(EXPECTED.get(path.name, [])) - NOT_SHOWN:
        assert expected in text, f"{expected!r} not in the outputs shown for {path.name}"


def test_interrupt_and_restart(lab, open_notebook):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell() for _ in range(4)])
    nb.metadata["kernelspec"] = {"name": "rhai", "display_name": "Rhai", "language": "rhai"}
    nbformat.write(nb, lab["root"] / "interrupt.ipynb")
    page = open_notebook("interrupt.ipynb")

    run_cell(page, 0, "let x = 42; x")
    cell_output(page, 0, r"^\s*42\s*$")
    # Interrupted once the loop is running: its output says so.
    run_cell(page, 1, 'print("looping"); loop {}')
    cell_output(page, 1, "looping")
    menu(page, "Kernel", "Interrupt Kernel")
    cell_output(page, 1, "execution was interrupted", timeout=30_000)
    wait_idle(page)
    assert page.evaluate(ERROR_OUTPUTS) == ["Interrupted: execution was interrupted"]
    run_cell(page, 2, "x")
    cell_output(page, 2, r"^\s*42\s*$")  # the session survived the interrupt
    wait_idle(page)

    page.evaluate(WATCH_RESTART)
    menu(page, "Kernel", "Restart Kernel…")
    page.locator(".jp-Dialog .jp-mod-accept").click()  # "Restart"
    page.wait_for_function("() => window.kernelRestarted")
    page.wait_for_function(NOTEBOOK_READY, arg=page.locator(".jp-Notebook .jp-Cell").count())
    run_cell(page, 3, "x")
    cell_output(page, 3, "Variable not found: x")
    errors = page.evaluate(ERROR_OUTPUTS)
    assert errors[1:] == ["ErrorVariableNotFound: Variable not found: x"], errors
    prompt = page.locator(".jp-Notebook .jp-Cell").nth(3).locator(".jp-InputPrompt").text_content()
    assert prompt.strip() == "[1]:", "execution counts start again after a restart"


def test_play_asks_in_the_notebook_and_the_learner_breaks_the_counter(lab, open_notebook):
    """`play`'s text game in JupyterLab: every choice is an input box under the cell;
    answering Enter, Enter, Enter, 2, Enter loses an update, and the cell says so."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell() for _ in range(2)])
    nb.metadata["kernelspec"] = {"name": "rhai", "display_name": "Rhai", "language": "rhai"}
    nbformat.write(nb, lab["root"] / "play.ipynb")
    page = open_notebook("play.ipynb")

    run_cell(
        page,
        0,
        "fn two_increments() { let counter = value(0); "
        "let a = spawn_thread(|| counter.value += 1); "
        "let b = spawn_thread(|| counter.value += 1); "
        "a.join(); b.join(); counter.value }",
    )
    wait_idle(page)
    run_cell(page, 1, "let game = play(two_increments, #{ expect: |v| v == 2, text: true }); game.schedule")
    # Each answer goes to the newest box not answered yet, which is marked before Enter; the
    # next one is looked for once JupyterLab has taken this box away (or disabled it). Boxes
    # are not found by their index: JupyterLab removes answered ones and may render the
    # outputs again meanwhile (seen under load).
    fresh = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(
        ".jp-Stdin-input:not([data-answered])"
    )
    for answer in ["", "", "", "2", ""]:
        for attempt in range(3):
            box = fresh.last
            box.wait_for(state="visible")
            try:
                handle = box.element_handle(timeout=15000)
                handle.evaluate("e => { e.dataset.answered = '1'; }")
                handle.fill(answer, timeout=15000)
                handle.press("Enter", timeout=15000)
                break
            except PlaywrightError:
                # The box was rendered again before Enter: the new one has no mark.
                if attempt == 2:
                    raise
        page.wait_for_function("e => !e.isConnected || e.disabled", arg=handle)
    text = cell_output(page, 1, "00122")
    wait_idle(page)
    assert "3) Thread-2: read counter.value" in text, text
    assert "Result: 1. You broke it!" in text, text
    assert page.evaluate(ERROR_OUTPUTS) == []


# One level of the game: two threads increment a counter; the goal is to lose an update.
LEVEL = [
    "fn two_increments() { let counter = value(0); "
    "let a = spawn_thread(|| counter.value += 1); "
    "let b = spawn_thread(|| counter.value += 1); "
    "a.join(); b.join(); counter.value }",
    "play(two_increments, |v| v == 2)",
    "\"the next cell ran\"",
]


def test_play_is_a_board_of_buttons_clicked_through_to_the_win(lab, open_notebook):
    """`play` as a widget drawn by JupyterLab's widget manager: Run All shows the board and
    goes on to the next cell; clicking the thread buttons (the running thread three times,
    then Thread-2's read before Thread-1 writes, then on to the end) loses an update, and
    the board shows the verdict."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in LEVEL])
    nb.metadata["kernelspec"] = {"name": "rhai", "display_name": "Rhai", "language": "rhai"}
    nbformat.write(nb, lab["root"] / "level.ipynb")
    page = open_notebook("level.ipynb")

    menu(page, "Run", "Run All Cells")
    page.wait_for_function(RUN_ALL_OVER, timeout=RUN_TIMEOUT_MS, polling=250)
    cell_output(page, 2, "the next cell ran")
    board = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".widget-vbox")
    board.wait_for()
    assert "You are the scheduler" in board.text_content()
    buttons = board.locator("button.widget-button")
    steps = board.locator("pre")
    buttons.first.wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "play-board.png")

    def steps_shown():
        return steps.first.text_content().count("\n") + 1 if steps.count() else 0

    for choice in ["on", "on", "on", "Thread-2: read counter.value", "on"]:
        buttons.first.wait_for()
        before = steps_shown()
        if choice == "on":
            button = board.locator("button.widget-button[title='goes on without a switch']")
        else:
            button = buttons.filter(has_text=choice)
        assert button.count() == 1, buttons.all_text_contents()
        button.click()
        # The move is made once its step shows; the next choice's buttons follow it.
        page.wait_for_function(
            "([el, n]) => { const pre = el.querySelector('pre');"
            " return pre !== null && pre.textContent.split('\\n').length > n; }",
            arg=[board.element_handle(), before],
        )
    board.get_by_text("You broke it!").wait_for()
    text = board.text_content()
    assert "Result: 1. You broke it!" in text, text
    assert 'replay(f, "00122")' in text, text
    assert "Thread-2: read counter.value → 0" in text, text
    assert buttons.count() == 0
    page.screenshot(path=SCREENSHOTS / "play-board-won.png")
    assert page.evaluate(ERROR_OUTPUTS) == []


def test_debugger_stops_a_thread_in_its_critical_section(lab, open_notebook):
    """The debugger in JupyterLab: switched on from the notebook's toolbar, a breakpoint
    clicked into the gutter of a cell whose function runs in two threads; each thread stops
    there in turn (the other waits for the lock), with its call stack and variables shown;
    a step, then continue, and the cell's output."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(LOCK_CELL)])
    nb.metadata["kernelspec"] = {"name": "rhai", "display_name": "Rhai", "language": "rhai"}
    nbformat.write(nb, lab["root"] / "debugger.ipynb")
    page = open_notebook("debugger.ipynb")

    page.locator(".jp-DebuggerBugButton").first.click()
    page.wait_for_selector(".jp-DebuggerBugButton[aria-pressed='true']")
    cell = page.locator(".jp-Notebook .jp-Cell").nth(0)
    # The gutter element of line 3 (`v.value += 1;`): line numbers and breakpoints show once
    # the debugger is on.
    gutter = cell.locator(".cm-breakpoint-gutter .cm-gutterElement").nth(3)
    gutter.click()
    page.wait_for_selector(".jp-DebuggerBreakpoint")
    cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")

    frames = page.locator(".jp-DebuggerCallstackFrame")
    frames.first.wait_for()
    names = page.locator(".jp-DebuggerCallstackFrame-name").all_text_contents()
    # The thread's own function is its oldest frame, named after the thread.
    assert re.fullmatch(r"Thread-\d \(work\)", names[0]), names
    location = page.locator(".jp-DebuggerCallstackFrame-location").first.text_content()
    assert location.strip().endswith(":3"), location
    variables = page.locator(".jp-DebuggerVariables")
    for name in ("l", "v"):
        variables.get_by_text(name, exact=True).first.wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "debugger-stopped.png")

    # The lock is held by the stopped thread; the other thread waits for it.
    variables.get_by_text("l", exact=True).first.click()
    variables.get_by_text("held by", exact=True).first.wait_for()
    variables.get_by_text(re.compile(r'^"Thread-\d \(work\)"$')).first.wait_for()
    page.screenshot(path=SCREENSHOTS / "debugger-lock-held.png")

    page.locator("[data-command='debugger:next']").first.click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-DebuggerCallstackFrame-location')]
            .some(e => e.textContent.trim().endsWith(':4'))"""
    )
    page.locator("[data-command='debugger:continue']").first.click()
    # The second thread takes the lock and stops at the same line.
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-DebuggerCallstackFrame-location')]
            .some(e => e.textContent.trim().endsWith(':3'))"""
    )
    page.locator("[data-command='debugger:continue']").first.click()
    cell_output(page, 0, r"^\s*2\s*$")
    wait_idle(page)
    assert page.evaluate(ERROR_OUTPUTS) == []
