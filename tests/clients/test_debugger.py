"""The Jupyter debug protocol over a real jupyter_client: the scenarios of ipykernel's
tests/test_debugger.py, plus threads stopping at one breakpoint and continued one by one,
a lock held by a stopped thread, stepping, interrupts and restarts."""

import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel

TIMEOUT = 30

FUNCTION_CELL = """fn f(a, b) {
    let c = a + b;
    c
}

f(2, 3)"""


class Debug:
    """A kernel client speaking the debug protocol on the control channel."""

    def __init__(self, kc):
        self.kc = kc
        self.seq = 0
        self.events = []

    def request(self, command, **arguments):
        self.seq += 1
        msg = self.kc.session.msg(
            "debug_request",
            {"type": "request", "seq": self.seq, "command": command, "arguments": arguments},
        )
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            reply = self.kc.control_channel.get_msg(timeout=TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["msg_type"] == "debug_reply"
                content = reply["content"]
                assert content["request_seq"] == self.seq and content["command"] == command
                return content
        raise AssertionError(f"no reply to {command}")

    def ok(self, command, **arguments):
        reply = self.request(command, **arguments)
        assert reply["success"], reply
        return reply.get("body", {})

    def start(self):
        body = self.ok(
            "initialize",
            clientID="test-client",
            clientName="testClient",
            adapterID="rhai",
            pathFormat="path",
            linesStartAt1=True,
            columnsStartAt1=True,
            supportsVariableType=True,
            supportsVariablePaging=True,
            supportsRunInTerminalRequest=True,
            locale="en",
        )
        self.ok("attach")
        return body

    def event(self, name, timeout=TIMEOUT, **match):
        """The next IOPub debug_event `name` whose body has the given values."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["event"] == name and all(event["body"].get(k) == v for k, v in match.items()):
                    self.events.remove(event)
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} event {match}; saw {self.events}")
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            if msg["msg_type"] == "debug_event":
                self.events.append(msg["content"])

    def settle(self, msg_id):
        """Reads IOPub up to the end of the cell `msg_id` (its idle status), keeping its debug
        events: a stopped event that the cell caused is then among `events`."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timeout: the cell {msg_id} did not end")
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            if msg["msg_type"] == "debug_event":
                self.events.append(msg["content"])
            elif (
                msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                return

    def stopped_events(self):
        return [e for e in self.events if e["event"] == "stopped"]

    def breakpoints(self, code, *lines):
        path = self.ok("dumpCell", code=code)["sourcePath"]
        body = self.ok(
            "setBreakpoints",
            source={"path": path},
            breakpoints=[{"line": line} for line in lines],
            sourceModified=False,
        )
        return path, body["breakpoints"]

    def frames(self, thread):
        return self.ok("stackTrace", threadId=thread)["stackFrames"]

    def scope(self, frame, name="Locals"):
        scopes = self.ok("scopes", frameId=frame["id"])["scopes"]
        ref = next(s for s in scopes if s["name"] == name)["variablesReference"]
        return {v["name"]: v for v in self.ok("variables", variablesReference=ref)["variables"]}


def reply_to(kc, msg_id):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]
    raise AssertionError("no execute reply")


def result_of(kc, msg_id):
    """The text/plain result of an executed cell (after its reply)."""
    content = reply_to(kc, msg_id)
    assert content["status"] == "ok", content
    return content


def wait_for_output(kc, msg_id, text):
    """Reads IOPub until the cell `msg_id` has printed `text` on stdout."""
    printed = ""
    deadline = time.monotonic() + TIMEOUT
    while text not in printed:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timeout: {text!r} not printed; got {printed!r}")
        try:
            msg = kc.get_iopub_msg(timeout=left)
        except queue.Empty:
            continue
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            printed += msg["content"]["text"]


@pytest.fixture
def kernel(jupyter_env, monkeypatch):
    for key, value in jupyter_env.items():
        monkeypatch.setenv(key, value)
    km, kc = start_new_kernel(kernel_name="rhai", startup_timeout=60)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.fixture
def debug(kernel):
    _, kc = kernel
    d = Debug(kc)
    d.start()
    yield d
    d.request("disconnect", restart=False, terminateDebuggee=True)


def test_initialize_and_supported_features(kernel):
    km, kc = kernel
    body = Debug(kc).start()
    assert body["supportsConfigurationDoneRequest"]
    kc.kernel_info()
    info = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert info["debugger"] is True
    assert "debugger" in info["supported_features"]
    assert km.kernel_spec.metadata.get("debugger") is True


def test_debug_info_before_and_after_initialize(kernel):
    _, kc = kernel
    d = Debug(kc)
    before = d.ok("debugInfo")
    assert before["isStarted"] is False
    assert before["hashMethod"] == "Murmur2"
    assert before["tmpFileSuffix"] == ".rhai"
    assert before["breakpoints"] == [] and before["stoppedThreads"] == []
    for key in ("hashSeed", "tmpFilePrefix", "richRendering", "exceptionPaths", "copyToGlobals"):
        assert key in before
    d.start()
    after = d.ok("debugInfo")
    assert after["isStarted"] is True
    assert after["tmpFilePrefix"] == before["tmpFilePrefix"]


def test_cell_paths_are_murmur2_of_the_code(debug):
    info = debug.ok("debugInfo")
    code = "let é = 1;\nprint(é)"
    path = debug.ok("dumpCell", code=code)["sourcePath"]
    assert path == f"{info['tmpFilePrefix']}{murmur2(code.encode(), info['hashSeed'])}.rhai"
    assert debug.ok("source", source={"path": path})["content"] == code


def test_evaluate_while_nothing_is_stopped(kernel, debug):
    _, kc = kernel
    result_of(kc, kc.execute("let x = 20;"))
    body = debug.ok("evaluate", expression='"a" + "b"', context="repl")
    assert body["result"] == '"ab"'
    assert debug.ok("evaluate", expression="x * 2 + 2", context="repl")["result"] == "42"
    bad = debug.request("evaluate", expression="x +* 2", context="repl")
    assert not bad["success"] and bad["message"]


def test_set_breakpoints(debug):
    path, placed = debug.breakpoints(FUNCTION_CELL, 2, 5)
    assert placed[0] == {"verified": True, "line": 2, "source": {"path": path}}
    # Line 5 is blank: the breakpoint moves to the next line with code.
    assert placed[1]["verified"] and placed[1]["line"] == 6
    info = debug.ok("debugInfo")
    assert {"source": path, "breakpoints": [{"line": 2}, {"line": 6}]} in info["breakpoints"]
    debug.ok("configurationDone")


def test_stop_on_breakpoint_and_continue(kernel, debug):
    _, kc = kernel
    path, _ = debug.breakpoints(FUNCTION_CELL, 2)
    debug.ok("configurationDone")
    msg_id = kc.execute(FUNCTION_CELL)
    stopped = debug.event("stopped")
    assert stopped["body"]["reason"] == "breakpoint" and stopped["body"]["threadId"] == 1
    assert debug.ok("debugInfo")["stoppedThreads"] == [1]
    frames = debug.frames(1)
    assert [f["name"] for f in frames] == ["f", "<cell>"]
    assert frames[0]["line"] == 2 and frames[0]["source"]["path"] == path
    assert frames[1]["line"] == 6 and frames[1]["source"]["path"] == path
    local = debug.scope(frames[0])
    assert local["a"]["value"] == "2" and local["b"]["value"] == "3" and local["a"]["type"] == "int"
    debug.ok("continue", threadId=1)
    assert debug.event("continued", threadId=1)
    result_of(kc, msg_id)
    assert debug.ok("debugInfo")["stoppedThreads"] == []


def test_breakpoint_in_cell_with_leading_empty_lines(kernel, debug):
    _, kc = kernel
    code = "\n" + FUNCTION_CELL
    debug.breakpoints(code, 7)
    msg_id = kc.execute(code)
    stopped = debug.event("stopped")
    assert stopped["body"]["reason"] == "breakpoint"
    assert debug.frames(1)[0]["line"] == 7
    debug.ok("continue", threadId=1)
    result_of(kc, msg_id)


def test_a_line_stops_once_and_next_moves_one_line(kernel, debug):
    _, kc = kernel
    code = "let x = [1, 2].len() + [3].len(); let y = x * 2;\nlet z = y + 1;\nz"
    debug.breakpoints(code, 1)
    msg_id = kc.execute(code)
    debug.event("stopped", reason="breakpoint")
    debug.ok("next", threadId=1)
    debug.event("stopped", reason="step")
    frame = debug.frames(1)[0]
    assert frame["line"] == 2
    assert debug.scope(frame)["y"]["value"] == "6"
    debug.ok("continue", threadId=1)
    content = result_of(kc, msg_id)
    assert content["status"] == "ok"
    # Nothing stopped twice on line 1: every event of the cell has come by its idle status.
    debug.settle(msg_id)
    assert not debug.stopped_events()


def test_a_loop_on_one_line_stops_at_each_round(kernel, debug):
    _, kc = kernel
    code = "let x = 0;\nfor i in 0..3 { x += i; }\nx"
    debug.breakpoints(code, 2)
    msg_id = kc.execute(code)
    seen = []
    for _ in range(3):
        debug.event("stopped", reason="breakpoint")
        seen.append(debug.scope(debug.frames(1)[0]).get("i", {}).get("value"))
        debug.ok("continue", threadId=1)
    result_of(kc, msg_id)
    debug.settle(msg_id)
    assert not debug.stopped_events()
    assert seen[1:] == ["1", "2"], seen


def test_step_in_and_out(kernel, debug):
    _, kc = kernel
    code = "fn g(v) {\n    let w = v * 10;\n    w\n}\nlet r = g(4);\nr + 1"
    debug.breakpoints(code, 5)
    msg_id = kc.execute(code)
    debug.event("stopped", reason="breakpoint")
    debug.ok("stepIn", threadId=1)
    debug.event("stopped", reason="step")
    frames = debug.frames(1)
    assert frames[0]["name"] == "g" and frames[0]["line"] == 2
    debug.ok("stepOut", threadId=1)
    debug.event("stopped", reason="step")
    frames = debug.frames(1)
    assert frames[0]["name"] == "<cell>" and frames[0]["line"] == 6
    debug.ok("continue", threadId=1)
    result_of(kc, msg_id)


def test_functions_of_earlier_cells_keep_their_cells_path(kernel, debug):
    _, kc = kernel
    defining = "fn h(n) {\n    n + 1\n}"
    result_of(kc, kc.execute(defining))
    path_h, _ = debug.breakpoints(defining, 2)
    calling = "let k = 1;\nh(k)"
    msg_id = kc.execute(calling)
    debug.event("stopped", reason="breakpoint")
    frames = debug.frames(1)
    assert frames[0]["name"] == "h" and frames[0]["source"]["path"] == path_h
    assert frames[1]["source"]["path"] == debug.ok("dumpCell", code=calling)["sourcePath"]
    assert frames[1]["line"] == 2
    debug.ok("continue", threadId=1)
    result_of(kc, msg_id)


def test_functions_defined_before_the_debugger_started_keep_their_cells_path(kernel):
    # As in JupyterLab: a notebook is run, then the debugger is switched on and a breakpoint
    # set in a cell that only defines a function.
    _, kc = kernel
    defining = "fn h(n) {\n    n + 1\n}"
    result_of(kc, kc.execute(defining))
    d = Debug(kc)
    d.start()
    path_h, _ = d.breakpoints(defining, 2)
    msg_id = kc.execute("h(4)")
    d.event("stopped", reason="breakpoint")
    frames = d.frames(1)
    assert frames[0]["name"] == "h" and frames[0]["source"]["path"] == path_h
    assert frames[0]["line"] == 2
    d.ok("continue", threadId=1)
    result_of(kc, msg_id)
    d.ok("disconnect", restart=False, terminateDebuggee=True)


def test_rich_inspect_not_at_breakpoint(kernel, debug):
    _, kc = kernel
    result_of(kc, kc.execute('let text = "Hello the world";\nprint(text);'))
    names = [v["name"] for v in debug.ok("inspectVariables")["variables"]]
    assert "text" in names
    body = debug.ok("richInspectVariables", variableName="text")
    assert body["data"]["text/plain"] == '"Hello the world"'


def test_rich_inspect_at_breakpoint(kernel, debug):
    _, kc = kernel
    debug.breakpoints(FUNCTION_CELL, 2)
    msg_id = kc.execute(FUNCTION_CELL)
    debug.event("stopped")
    frame = debug.frames(1)[0]
    local = debug.scope(frame)
    body = debug.ok("richInspectVariables", variableName="a", frameId=frame["id"])
    assert body["data"]["text/plain"] == local["a"]["value"]
    # evaluate in the stopped frame sees its variables.
    assert debug.ok("evaluate", expression="a * b", frameId=frame["id"], context="repl")["result"] == "6"
    debug.ok("continue", threadId=1)
    result_of(kc, msg_id)


def test_variables_have_children(kernel, debug):
    _, kc = kernel
    code = 'let xs = [1, [2, 3]];\nlet m = #{ k: "v" };\nlet l = lock();\nl.acquire();\nlet done = 1;\nl.release();'
    debug.breakpoints(code, 5)
    msg_id = kc.execute(code)
    debug.event("stopped")
    local = debug.scope(debug.frames(1)[0])
    xs = debug.ok("variables", variablesReference=local["xs"]["variablesReference"])["variables"]
    assert [v["name"] for v in xs] == ["[0]", "[1]"] and xs[1]["variablesReference"] > 0
    m = debug.ok("variables", variablesReference=local["m"]["variablesReference"])["variables"]
    assert m == [dict(m[0], name="k", value='"v"')]
    lock = {v["name"]: v["value"] for v in debug.ok("variables", variablesReference=local["l"]["variablesReference"])["variables"]}
    assert lock["locked"] == "true" and lock["held by"] == '"MainThread"'
    debug.ok("continue", threadId=1)
    result_of(kc, msg_id)


THREADS_CELL = """fn work(v) {
    let mine = v.value;
    mine
}
let v = value(7);
let a = spawn_thread(work, v);
let b = spawn_thread(work, v);
[a.join(), b.join()]"""


def test_two_threads_stop_at_one_breakpoint_and_continue_one_by_one(kernel, debug):
    _, kc = kernel
    debug.breakpoints(THREADS_CELL, 3)
    msg_id = kc.execute(THREADS_CELL)
    first = debug.event("stopped", reason="breakpoint")["body"]["threadId"]
    second = debug.event("stopped", reason="breakpoint")["body"]["threadId"]
    assert {first, second}.isdisjoint({1}) and first != second
    assert sorted(debug.ok("debugInfo")["stoppedThreads"]) == sorted([first, second])
    names = {t["id"]: t["name"] for t in debug.ok("threads")["threads"]}
    assert names[1] == "MainThread"
    assert names[first].startswith("Thread-") and names[second].startswith("Thread-")
    for thread in (first, second):
        frames = debug.frames(thread)
        # A thread's oldest frame is named after the thread.
        assert [f["name"] for f in frames] == [names[thread]]
        assert names[thread].endswith("(work)")
        assert frames[0]["line"] == 3
        assert debug.scope(frames[0])["mine"]["value"] == "7"
    debug.ok("continue", threadId=first)
    debug.event("continued", threadId=first)
    # The frontend is shown the thread still stopped.
    assert debug.event("stopped", threadId=second)
    debug.ok("continue", threadId=second)
    content = result_of(kc, msg_id)
    assert content["status"] == "ok"


# LOCK_CELL, with each thread noting the value it found once it had the lock.
SEEN_CELL = """fn work(l, v) {
    l.acquire();
    let seen = v.value;
    v.value += 1;
    l.release();
}
let l = lock();
let v = value(0);
let a = spawn_thread(work, l, v);
let b = spawn_thread(work, l, v);
a.join();
b.join();
v.value"""


def test_a_thread_stopped_in_its_critical_section_holds_the_lock(kernel, debug):
    _, kc = kernel
    debug.breakpoints(SEEN_CELL, 4)
    msg_id = kc.execute(SEEN_CELL)
    first = debug.event("stopped", reason="breakpoint")["body"]["threadId"]
    # The other thread waits for the lock: it does not reach the breakpoint while the first
    # is stopped there (checked below by what it found: had it not waited, it would have
    # found the first thread's increment not done).
    assert debug.ok("debugInfo")["stoppedThreads"] == [first]
    frame = debug.frames(first)[0]
    holder = {t["id"]: t["name"] for t in debug.ok("threads")["threads"]}[first]
    lock = debug.scope(frame)["l"]
    fields = {v["name"]: v["value"] for v in debug.ok("variables", variablesReference=lock["variablesReference"])["variables"]}
    assert fields["locked"] == "true" and fields["held by"] == f'"{holder}"'
    # JupyterLab forgets the thread it shows before it sends `continue`, and asks for its
    # default thread (1, not stopped): the thread shown is the one resumed.
    assert debug.scope(frame)["seen"]["value"] == "0"
    debug.ok("continue", threadId=1)
    second = debug.event("stopped", reason="breakpoint")["body"]["threadId"]
    assert second != first
    assert debug.scope(debug.frames(second)[0])["seen"]["value"] == "1", "the lock let both in"
    debug.ok("continue", threadId=second)
    content = result_of(kc, msg_id)
    assert content["status"] == "ok"
    output = debug.ok("evaluate", expression="v.value", context="repl")["result"]
    assert output == "2"


def test_breakpoints_stop_thread_pool_tasks(kernel, debug):
    _, kc = kernel
    code = "fn sq(x) {\n    let y = x * x;\n    y\n}\nlet p = thread_pool(2);\np.map(sq, [1, 2, 3])"
    debug.breakpoints(code, 3)
    msg_id = kc.execute(code)
    seen = []
    while len(seen) < 3:
        thread = debug.event("stopped", reason="breakpoint")["body"]["threadId"]
        if thread not in debug.ok("debugInfo")["stoppedThreads"]:
            continue  # shown again after another thread continued, and since resumed
        frame = debug.frames(thread)[0]
        assert frame["name"].startswith("sq on pool-thread-"), frame
        local = debug.scope(frame)
        seen.append((int(local["x"]["value"]), int(local["y"]["value"])))
        debug.ok("continue", threadId=thread)
    assert sorted(seen) == [(1, 1), (2, 4), (3, 9)]
    assert result_of(kc, msg_id)["status"] == "ok"


def test_uncaught_errors_stop_where_they_happen(kernel, debug):
    _, kc = kernel
    code = 'fn risky(xs) {\n    let i = 5;\n    xs[i]\n}\nlet t = spawn_thread(risky, [1, 2]);\nlet m = "";\ntry { t.join(); } catch (e) { m = "caught"; }\nm'
    # Without the filter an error does not stop anything.
    unfiltered = kc.execute(code)
    result_of(kc, unfiltered)
    debug.settle(unfiltered)
    assert not debug.stopped_events()
    filters = debug.ok("debugInfo")
    assert filters["stoppedThreads"] == []
    debug.ok("setExceptionBreakpoints", filters=["uncaught"])
    msg_id = kc.execute(code)
    stopped = debug.event("stopped", reason="exception")["body"]
    thread = stopped["threadId"]
    assert thread != 1 and "5" in stopped["text"], stopped
    frames = debug.frames(thread)
    assert frames[0]["name"].endswith("(risky)") and frames[0]["line"] == 3
    # The function has ended: its arguments are shown.
    assert debug.scope(frames[0])["xs"]["value"] == "[1, 2]"
    debug.ok("continue", threadId=thread)
    assert result_of(kc, msg_id)["status"] == "ok"
    # An error thrown in a function the cell calls, on the cell's own thread.
    cell = 'fn fail() {\n    throw "boom";\n}\nfail()'
    msg_id = kc.execute(cell)
    stopped = debug.event("stopped", reason="exception")["body"]
    assert stopped["threadId"] == 1 and "boom" in stopped["text"]
    assert debug.frames(1)[0]["line"] == 2
    debug.ok("continue", threadId=1)
    assert reply_to(kc, msg_id)["status"] == "error"


def test_pause_stops_a_running_cell(kernel, debug):
    km, kc = kernel
    msg_id = kc.execute('let n = 0;\nloop {\n    n += 1;\n    if n == 1 { print("counting"); }\n}')
    # Paused once the loop has run (its output says so), not after a guessed delay.
    wait_for_output(kc, msg_id, "counting")
    debug.ok("pause", threadId=1)
    debug.event("stopped", reason="pause", threadId=1)
    frame = debug.frames(1)[0]
    assert frame["line"] in (2, 3, 4)
    assert int(debug.scope(frame)["n"]["value"]) > 0
    debug.ok("continue", threadId=1)
    km.interrupt_kernel()
    assert reply_to(kc, msg_id)["status"] == "error"


def test_interrupt_while_stopped_keeps_the_kernel(kernel, debug):
    km, kc = kernel
    code = "let kept = 5;\n" + FUNCTION_CELL
    debug.breakpoints(code, 3)
    msg_id = kc.execute(code)
    debug.event("stopped", reason="breakpoint")
    km.interrupt_kernel()
    content = reply_to(kc, msg_id)
    assert content["status"] == "error"
    assert debug.ok("debugInfo")["stoppedThreads"] == []
    assert debug.ok("evaluate", expression="kept", context="repl")["result"] == "5"


def test_disconnect_resumes_and_clears_breakpoints(kernel):
    _, kc = kernel
    d = Debug(kc)
    d.start()
    d.breakpoints(FUNCTION_CELL, 2)
    msg_id = kc.execute(FUNCTION_CELL)
    d.event("stopped")
    d.ok("disconnect", restart=False, terminateDebuggee=True)
    result_of(kc, msg_id)
    info = d.ok("debugInfo")
    assert info["isStarted"] is False and info["breakpoints"] == [] and info["stoppedThreads"] == []


def test_a_restarted_kernel_has_no_breakpoints(kernel):
    km, kc = kernel
    d = Debug(kc)
    d.start()
    d.breakpoints(FUNCTION_CELL, 2)
    assert d.ok("debugInfo")["breakpoints"]
    km.restart_kernel(now=True)
    kc.wait_for_ready(timeout=60)
    info = Debug(kc).ok("debugInfo")
    assert info["isStarted"] is False and info["breakpoints"] == []


def test_unknown_and_malformed_requests_are_errors(debug):
    reply = debug.request("noSuchCommand")
    assert not reply["success"] and "noSuchCommand" in reply["message"]
    assert not debug.request("stackTrace", threadId=99)["success"]
    assert not debug.request("variables", variablesReference=12345)["success"]


def murmur2(data: bytes, seed: int) -> int:
    """MurmurHash2 (32-bit), as JupyterLab computes a cell's id."""
    m = 0x5BD1E995
    h = (seed ^ len(data)) & 0xFFFFFFFF
    i = 0
    while len(data) - i >= 4:
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
        i += 4
    rest = data[i:]
    for j, byte in enumerate(rest):
        h ^= byte << (8 * j)
    if rest:
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def test_evaluate_assigns_in_a_frame_and_the_globals_scope_shows_the_session(kernel, debug):
    _, kc = kernel
    result_of(kc, kc.execute("let session = 10;"))
    debug.breakpoints(FUNCTION_CELL, 3)
    msg_id = kc.execute(FUNCTION_CELL)
    debug.event("stopped", reason="breakpoint")
    frame = debug.frames(1)[0]
    assert frame["name"] == "f" and frame["line"] == 3
    assert debug.scope(frame)["c"]["value"] == "5"
    # An assignment in the stopped frame changes what the function goes on with.
    debug.ok("evaluate", expression="c = 40", frameId=frame["id"], context="repl")
    assert debug.ok("evaluate", expression="c", frameId=frame["id"], context="repl")["result"] == "40"
    # A function's frame shows the session's variables in a scope of their own (the
    # cell's frame has them as its locals).
    scopes = [s["name"] for s in debug.ok("scopes", frameId=frame["id"])["scopes"]]
    assert scopes == ["Locals", "Globals"], scopes
    assert debug.scope(frame, "Globals")["session"]["value"] == "10"
    assert "session" not in debug.scope(frame)
    assert debug.scope(debug.frames(1)[1])["session"]["value"] == "10"
    debug.ok("continue", threadId=1)
    content = reply_to(kc, msg_id)
    assert content["status"] == "ok", content
    result = next(
        m for m in iter(lambda: kc.get_iopub_msg(timeout=TIMEOUT), None)
        if m["msg_type"] == "execute_result" and m["parent_header"].get("msg_id") == msg_id
    )
    assert result["content"]["data"]["text/plain"] == "40", "the assignment was not kept"


def test_threads_started_by_evaluate(kernel, debug):
    _, kc = kernel
    # Nothing stopped: on copies of the session's variables.
    result_of(kc, kc.execute("let base = 1;"))
    assert debug.ok("evaluate", expression="spawn_thread(|x| x + 1, base).join()", context="repl")["result"] == "2"
    # In a stopped frame.
    debug.breakpoints(FUNCTION_CELL, 3)
    msg_id = kc.execute(FUNCTION_CELL)
    debug.event("stopped", reason="breakpoint")
    frame = debug.frames(1)[0]
    joined = debug.ok("evaluate", expression="spawn_thread(|x| x * 2, c).join()", frameId=frame["id"], context="repl")
    assert joined["result"] == "10"
    debug.ok("continue", threadId=1)
    assert result_of(kc, msg_id)["status"] == "ok"


def test_modules_lists_none(debug):
    assert debug.ok("modules") == {"modules": [], "totalModules": 0}
