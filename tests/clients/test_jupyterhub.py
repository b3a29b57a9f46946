"""A class on JupyterHub: ten students log in at the same time, each starts a server and runs
notebook 02 on the "rhai" kernel through the server's REST and WebSocket APIs.

JupyterHub comes from PyPI (tests/requirements.txt), its proxy from npm (configurable-http-proxy,
installed by the Makefile), with the local process spawner (the `simple` one, which runs every
server as the hub's own user, so no system accounts are needed) and the dummy authenticator
with a shared password. Everything listens on 127.0.0.1. After the hub stops, no process it
started (proxy, servers, kernels, their workers) may be left, nor a file in /dev/shm.

The memory of each student's kernel (with its worker processes) is written to
target/test-output/jupyterhub-memory.txt.
"""

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import nbformat
import psutil
import pytest
from client_support import EXPECTED, OUTPUT_DIR, ROOT
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

STUDENTS = [f"student{i}" for i in range(10)]
PASSWORD = "class-of-2026"
NOTEBOOK = ROOT / "notebooks" / "02-race-conditions.ipynb"
PROXY = pathlib.Path(
    os.environ.get(
        "RHAI_KERNEL_HUB_PROXY",
        ROOT / "target" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy",
    )
)
# Ten servers and ten kernels share the machine: be patient.
START_TIMEOUT = 300
CELL_TIMEOUT = 600


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_shm():
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def hub_config(tmp_path, ports, users_python):
    """The hub's configuration file: local only, dummy logins, local process spawner whose
    servers run on `users_python` (the users' environment, where their kernelspecs are)."""
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {ports["public"]}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {ports["hub"]}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports["proxy_api"]}"
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.ConfigurableHTTPProxy.pid_file = {str(tmp_path / "proxy.pid")!r}
c.JupyterHub.db_url = "sqlite:///{tmp_path / "hub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(tmp_path / "cookie_secret")!r}
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(home / "{username}")!r}
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = [{str(users_python)!r}, "-m", "jupyterhub.singleuser"]
# Jupyter refuses to run as root unless told to (containers often run as root).
c.Spawner.args = {["--allow-root"] if os.getuid() == 0 else []!r}
c.Spawner.start_timeout = {START_TIMEOUT}
c.Spawner.http_timeout = {START_TIMEOUT}
# Servers and kernels stop with the hub.
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
"""
    )
    return config


@pytest.fixture
def hub(tmp_path):
    """A running JupyterHub whose users' servers run on this venv's Python, whose
    share/jupyter has the "rhai" kernelspec; stopped (and checked to leave nothing behind)
    after the test."""
    env = dict(os.environ)
    # The proxy is a node script.
    env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), env.get("PATH", "")])
    with running_hub(tmp_path, pathlib.Path(sys.executable), env) as running:
        yield running


@contextlib.contextmanager
def running_hub(tmp_path, users_python, env):
    """A running JupyterHub (this venv's) whose users' servers run on `users_python`, with the
    environment `env`; stopped (and checked to leave nothing behind) at the end."""
    if not PROXY.exists():
        pytest.fail(f"configurable-http-proxy is not installed at {PROXY} (make python-test installs it from npm)")
    ports = {name: free_port() for name in ("public", "hub", "proxy_api")}
    config = hub_config(tmp_path, ports, users_python)
    shm_before = dev_shm()
    log = open(tmp_path / "hub.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(config), "--debug"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{ports['public']}"
    started = {"pids": set()}
    try:
        wait_until_up(f"{url}/hub/api", process, tmp_path / "hub.log")
        yield {"url": url, "process": process, "started": started, "log": tmp_path / "hub.log"}
    finally:
        descendants = set(started["pids"])
        try:
            descendants |= {p.pid for p in psutil.Process(process.pid).children(recursive=True)}
        except psutil.Error:
            pass
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail("the hub did not stop within 120 s of SIGTERM")
        log.close()
        left = alive(descendants, deadline=time.monotonic() + 30)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
        assert not left, f"processes left running after the hub stopped: {describe(left)}"
        leaked = dev_shm() - shm_before
        assert not leaked, f"files left in /dev/shm: {sorted(leaked)}"


def alive(pids, deadline):
    """The pids among `pids` still running (zombies do not count) once `deadline` passed or
    none is."""
    while True:
        running = set()
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    running.add(pid)
            except psutil.Error:
                pass
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


def describe(pids):
    parts = []
    for pid in sorted(pids):
        try:
            parts.append(f"{pid} {' '.join(psutil.Process(pid).cmdline())[:120]}")
        except psutil.Error:
            parts.append(str(pid))
    return "; ".join(parts)


def wait_until_up(url, process, log_path):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the hub exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the hub did not answer within {START_TIMEOUT} s:\n{log_path.read_text()[-4000:]}")


class Browser:
    """What one student's browser does: cookies, the XSRF token, requests."""

    def __init__(self, base):
        self.base = base
        self.cookies = {}
        self.client = AsyncHTTPClient(force_instance=True)

    def cookie_header(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def url(self, path):
        return path if path.startswith("http") else self.base + path

    async def fetch(self, path, method="GET", body=None, headers=None, follow=True, token=None):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"token {token}"
        if "_xsrf" in self.cookies and method != "GET":
            headers["X-XSRFToken"] = self.cookies["_xsrf"]
        url = self.url(path)
        for _ in range(10):
            # The cookies as they are now: a redirect may follow one that set some.
            if self.cookies:
                headers["Cookie"] = self.cookie_header()
            request = HTTPRequest(
                url,
                method=method,
                body=body,
                headers=headers,
                follow_redirects=False,
                request_timeout=START_TIMEOUT,
            )
            response = await self.client.fetch(request, raise_error=False)
            for value in response.headers.get_list("Set-Cookie"):
                for name, morsel in SimpleCookie(value).items():
                    self.cookies[name] = morsel.value
            if follow and response.code in (301, 302, 303, 307) and "Location" in response.headers:
                url = self.url(response.headers["Location"])
                method, body = "GET", None
                continue
            return response
        raise AssertionError(f"too many redirects from {path}")

    async def api(self, path, method="GET", payload=None, token=None, expect=(200, 201, 202, 204)):
        body = None if payload is None else json.dumps(payload)
        if method in ("POST", "PUT", "PATCH") and body is None:
            body = ""
        response = await self.fetch(path, method, body, {"Content-Type": "application/json"}, token=token)
        text = response.body.decode() if response.body else ""
        assert response.code in expect, f"{method} {path}: {response.code} {text[:500]}"
        return json.loads(text) if text else None


async def log_in_and_start(hub_url, name, log):
    """Logs `name` in through the login form, starts their server, and gets an API token."""
    browser = Browser(hub_url)
    page = await browser.fetch("/hub/login")
    assert page.code == 200 and "_xsrf" in browser.cookies, f"login page: {page.code}"
    form = urlencode({"username": name, "password": PASSWORD, "_xsrf": browser.cookies["_xsrf"]})
    answer = await browser.fetch("/hub/login", "POST", form, follow=False)
    assert answer.code == 302, f"{name}: login answered {answer.code}"
    await browser.api(f"/hub/api/users/{name}/server", "POST", {})
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        user = await browser.api(f"/hub/api/users/{name}")
        server = user.get("servers", {}).get("")
        if server and server.get("ready"):
            break
        if not server and not user.get("pending"):
            pytest.fail(f"{name}'s server failed to start:\n{log.read_text()[-4000:]}")
        assert time.monotonic() < deadline, f"{name}'s server did not start: {user}"
        await asyncio.sleep(0.5)
    token = (await browser.api(f"/hub/api/users/{name}/tokens", "POST", {"note": "class test"}))["token"]
    return browser, token, server["url"]


async def run_notebook(browser, token, server_url):
    """Uploads notebook 02, starts a "rhai" kernel for it and runs every code cell over the
    kernel's WebSocket; returns the outputs' text and the kernel's id."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    api = f"{server_url}api"
    await browser.api(f"{api}/contents/{NOTEBOOK.name}", "PUT",
                      {"type": "notebook", "format": "json", "content": nb}, token=token)
    session = await browser.api(f"{api}/sessions", "POST", {
        "path": NOTEBOOK.name, "type": "notebook", "name": NOTEBOOK.name,
        "kernel": {"name": "rhai"},
    }, token=token)
    kernel_id = session["kernel"]["id"]
    ws_url = browser.base.replace("http", "ws", 1) + f"{api}/kernels/{kernel_id}/channels"
    session_id = uuid.uuid4().hex
    connection = await websocket_connect(HTTPRequest(
        f"{ws_url}?session_id={session_id}",
        headers={"Authorization": f"token {token}"},
        request_timeout=START_TIMEOUT,
    ))
    texts, failures = [], []
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            outputs, status = await execute(connection, session_id, cell.source)
            texts.extend(outputs)
            if status != "ok":
                failures.append(f"cell {index}: {status}: {' '.join(outputs)[-500:]}")
    finally:
        connection.close()
    return "\n".join(texts), failures, kernel_id


async def execute(connection, session_id, code):
    """Sends one execute_request; collects its outputs until the reply and idle arrive."""
    msg_id = uuid.uuid4().hex
    connection.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": session_id,
                   "username": "student", "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    outputs, status, idle = [], None, False
    deadline = time.monotonic() + CELL_TIMEOUT
    while status is None or not idle:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no answer within {CELL_TIMEOUT} s to: {code[:200]}"
        raw = await asyncio.wait_for(connection.read_message(), remaining)
        assert raw is not None, "the kernel's WebSocket closed"
        message = json.loads(raw)
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = message["header"]["msg_type"], message["content"]
        if kind == "stream":
            outputs.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            outputs.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            outputs.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
        elif kind == "execute_reply":
            status = content["status"]
    return outputs, status


def kernel_memory(name):
    """Resident and proportional memory (MiB) of `name`'s kernel with its worker processes,
    and of their Jupyter server."""
    kernel, server = [], []
    for process in psutil.process_iter(["cmdline"]):
        try:
            environ = process.environ()
        except psutil.Error:
            continue
        if environ.get("JUPYTERHUB_USER") != name:
            continue
        cmdline = " ".join(process.info["cmdline"] or [])
        try:
            info = process.memory_full_info()
        except psutil.Error:
            continue
        (kernel if "rhai-kernel" in cmdline else server).append(info)
    mib = 1024 * 1024
    return {
        "kernel_rss": sum(i.rss for i in kernel) / mib,
        "kernel_pss": sum(i.pss for i in kernel) / mib,
        "kernel_processes": len(kernel),
        "server_pss": sum(i.pss for i in server) / mib,
    }


def students_run_notebook_02(hub, students):
    """Each of `students` logs in, starts a server and runs notebook 02 at the same time as
    the others; every cell must succeed with the expected outputs. Returns their results."""
    expected = EXPECTED[NOTEBOOK.name]

    async def student(name):
        browser, token, server_url = await log_in_and_start(hub["url"], name, hub["log"])
        text, failures, kernel_id = await run_notebook(browser, token, server_url)
        return name, browser, token, server_url, text, failures, kernel_id

    async def whole_class():
        return await asyncio.gather(*(student(name) for name in students))

    results = asyncio.run(whole_class())
    hub["started"]["pids"] |= {p.pid for p in psutil.Process(hub["process"].pid).children(recursive=True)}

    for name, _, _, _, text, failures, _ in results:
        assert not failures, f"{name}: cells failed: {failures}"
        for line in expected:
            assert line in text, f"{name}: {line!r} not in the outputs"
    return results


def shut_kernels_down(results):
    """The students shut their kernels down; the hub stops the servers when it stops."""

    async def shut_down():
        for name, browser, token, server_url, _, _, kernel_id in results:
            await browser.api(f"{server_url}api/kernels/{kernel_id}", "DELETE", token=token)

    asyncio.run(shut_down())


def test_ten_students_run_notebook_02_at_once(hub):
    results = students_run_notebook_02(hub, STUDENTS)

    memory = [kernel_memory(name) for name in STUDENTS]
    assert all(m["kernel_processes"] >= 1 for m in memory), memory
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    median = lambda key: sorted(m[key] for m in memory)[len(memory) // 2]  # noqa: E731
    (OUTPUT_DIR / "jupyterhub-memory.txt").write_text(
        f"{len(STUDENTS)} students ran {NOTEBOOK.name} at once; per student, median:\n"
        f"  kernel (with its worker processes): RSS {median('kernel_rss'):.1f} MiB, "
        f"PSS {median('kernel_pss'):.1f} MiB in {median('kernel_processes')} processes\n"
        f"  their Jupyter server: PSS {median('server_pss'):.1f} MiB\n"
    )

    shut_kernels_down(results)
