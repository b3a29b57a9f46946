"""`play` as a widget over a real jupyter_client: the ipywidgets 8 models arrive as comm_opens
(target jupyter.widget, protocol 2.1), the board is displayed, clicks sent as `custom` comm
messages choose who moves, the board changes in place through `update` messages, and the
verdict comes at the end, while other cells run in between."""

import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel

TIMEOUT = 30

TWO_INCREMENTS = (
    "fn two_increments() { let counter = value(0); "
    "let a = spawn_thread(|| counter.value += 1); "
    "let b = spawn_thread(|| counter.value += 1); "
    "a.join(); b.join(); counter.value }"
)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def kernel(jupyter_env, monkeypatch):
    for key, value in jupyter_env.items():
        monkeypatch.setenv(key, value)
    km, kc = start_new_kernel(kernel_name="rhai", startup_timeout=60)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


class Frontend:
    """What a widget manager keeps: every model's state, from comm_opens and updates."""

    def __init__(self, kc):
        self.kc = kc
        self.models = {}
        self.opens = []
        self.updates = 0

    def take(self, msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_open":
            assert content["target_name"] == "jupyter.widget", content
            assert msg["metadata"] == {"version": "2.1.0"}, msg["metadata"]
            assert content["data"]["buffer_paths"] == []
            state = content["data"]["state"]
            # A model refers only to models opened before it (the manager resolves
            # references as each model opens).
            for value in state.values():
                for ref in value if isinstance(value, list) else [value]:
                    if isinstance(ref, str) and ref.startswith("IPY_MODEL_"):
                        assert ref[len("IPY_MODEL_") :] in self.models, ref
            self.models[content["comm_id"]] = dict(state)
            self.opens.append(content["comm_id"])
        elif kind == "comm_msg":
            data = content["data"]
            assert data["method"] == "update", data
            assert msg["metadata"] == {"version": "2.1.0"}, msg["metadata"]
            self.models[content["comm_id"]].update(data["state"])
            self.updates += 1

    def drain(self, until, timeout=TIMEOUT):
        """Takes IOPub messages until `until()` holds."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"timed out; models: {self.board()}"
            try:
                self.take(self.kc.get_iopub_msg(timeout=0.2))
            except queue.Empty:
                pass

    def children(self, model_id):
        return [ref[len("IPY_MODEL_") :] for ref in self.models[model_id]["children"]]

    def board(self):
        """The root VBox's parts: rules, steps, values, moves (an HBox), status."""
        roots = [m for m, s in self.models.items() if s.get("_model_name") == "VBoxModel"]
        return self.children(roots[-1]) if roots else []

    def html(self, part):
        return self.models[self.board()[part]]["value"]

    def buttons(self):
        return [(b, self.models[b]) for b in self.children(self.board()[3])]

    def click(self, button):
        msg = self.kc.session.msg(
            "comm_msg", {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}
        )
        self.kc.shell_channel.send(msg)


def execute(kc, code, frontend):
    """Runs a cell; returns its reply and the IOPub messages other than comm ones (which go to
    `frontend`)."""
    msg_id = kc.execute(code)
    others = []
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["msg_type"] in ("comm_open", "comm_msg"):
            frontend.take(msg)
        elif msg["parent_header"].get("msg_id") == msg_id:
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            others.append(msg)
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    return reply, others


def test_play_is_a_board_the_learner_clicks_through_to_a_lost_update(kernel):
    kc = kernel
    ui = Frontend(kc)
    reply, _ = execute(kc, TWO_INCREMENTS, ui)
    assert reply["content"]["status"] == "ok"

    reply, outputs = execute(kc, "play(two_increments, |v| v == 2)", ui)
    # The cell ends at once, with the board displayed and no value of its own.
    assert reply["content"]["status"] == "ok", reply["content"]
    displays = [m for m in outputs if m["msg_type"] == "display_data"]
    assert len(displays) == 1, outputs
    assert not [m for m in outputs if m["msg_type"] in ("execute_result", "error")], outputs
    data = displays[0]["content"]["data"]
    view = data[WIDGET_VIEW]
    assert view["version_major"] == 2 and view["version_minor"] == 0
    root = view["model_id"]
    assert "text: true" in data["text/plain"], data["text/plain"]
    # Every model the display needs was opened before it, the root last.
    assert ui.opens[-1] == root
    state = ui.models[root]
    assert (state["_model_name"], state["_model_module"], state["_model_module_version"]) == (
        "VBoxModel",
        "@jupyter-widgets/controls",
        "2.0.0",
    )
    for model in ui.models.values():
        assert model["_model_module_version"] == model["_view_module_version"] == "2.0.0"
        if model["_model_name"] != "LayoutModel" and "layout" in model:
            assert ui.models[model["layout"][len("IPY_MODEL_") :]]["_model_name"] == "LayoutModel"
    assert "You are the scheduler" in ui.html(0)

    # comm_info lists the open widget comms (what a reloaded page restores).
    kc.comm_info(target_name="jupyter.widget")
    info = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert info["status"] == "ok"
    assert root in info["comms"] and info["comms"][root] == {"target_name": "jupyter.widget"}

    # The schedule "00122" of the text game, by clicks: the thread that goes on three times,
    # then the second button (Thread-2 reads before Thread-1 writes), then on to the end.
    labels = []
    for choice in ["on", "on", "on", 1, "on"]:
        ui.drain(lambda: len(ui.buttons()) > 1)
        buttons = ui.buttons()
        labels.append([b["description"] for _, b in buttons])
        if choice == "on":
            (button,) = [b for b, s in buttons if s["tooltip"] == "goes on without a switch"]
        else:
            button = buttons[choice][0]
        before = ui.updates
        ui.click(button)
        # The click hides the buttons at once: the next ones are those of the next choice.
        ui.drain(lambda: ui.updates > before and not ui.buttons())
        if choice == "on" and len(labels) == 2:
            # Another cell runs while the game waits for a click ("Run All" goes on).
            reply, outputs = execute(kc, "40 + 2", ui)
            results = [m for m in outputs if m["msg_type"] == "execute_result"]
            assert results and results[0]["content"]["data"]["text/plain"] == "42"
    assert "Thread-2: read counter.value" in labels[3], labels

    ui.drain(lambda: "Result:" in ui.html(4))
    verdict = ui.html(4)
    assert "Result: 1. You broke it!" in verdict, verdict
    assert 'replay(f, &quot;00122&quot;)' in verdict, verdict
    steps = ui.html(1)
    assert "Thread-2: read counter.value → 0" in steps, steps
    assert "counter = 1" in ui.html(2), ui.html(2)
    assert ui.buttons() == []

    # A frontend that reloads asks each model for its state again.
    msg = kc.session.msg("comm_msg", {"comm_id": ui.board()[4], "data": {"method": "request_state"}})
    kc.shell_channel.send(msg)
    again = ui.models[ui.board()[4]]["value"]
    ui.models[ui.board()[4]]["value"] = ""
    ui.drain(lambda: ui.models[ui.board()[4]]["value"] == again)


def test_malformed_comm_messages_are_ignored(kernel):
    kc = kernel
    ui = Frontend(kc)
    execute(kc, TWO_INCREMENTS, ui)
    execute(kc, "play(two_increments)", ui)
    ui.drain(lambda: len(ui.buttons()) > 1)
    button = ui.buttons()[0][0]
    for content in [
        {"comm_id": button},
        {"comm_id": button, "data": "click"},
        {"comm_id": button, "data": {"method": "custom"}},
        {"comm_id": button, "data": {"method": "custom", "content": [1, 2]}},
        {"comm_id": button, "data": {"method": "update", "state": {"description": "x"}}},
        {"comm_id": "no-such-comm", "data": {"method": "custom", "content": {"event": "click"}}},
        {"comm_id": 5, "data": {}},
        {"data": {}},
    ]:
        kc.shell_channel.send(kc.session.msg("comm_msg", content))
    kc.shell_channel.send(kc.session.msg("comm_close", {"data": {}}))
    reply, outputs = execute(kc, "1 + 1", ui)
    assert reply["content"]["status"] == "ok"
    # Still waiting for a real click: nothing moved.
    assert len(ui.buttons()) > 1
    # The frontend closing a button's comm ends the game, and says so on the board.
    kc.shell_channel.send(kc.session.msg("comm_close", {"comm_id": button, "data": {}}))
    ui.drain(lambda: "closed" in ui.html(4))


def test_the_text_game_on_request(kernel):
    """`text: true` plays through input(), as in a terminal: no comm is opened, and the
    answers Enter, Enter, Enter, 2, Enter give the schedule "00122"."""
    kc = kernel
    ui = Frontend(kc)
    execute(kc, TWO_INCREMENTS, ui)
    msg_id = kc.execute("play(two_increments, #{ text: true, expect: |v| v == 2 }).schedule", allow_stdin=True)
    for answer in ["", "", "", "2", ""]:
        request = kc.get_stdin_msg(timeout=TIMEOUT)
        assert request["content"]["prompt"].startswith("Who moves?")
        kc.input(answer)
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok", reply["content"]
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        assert msg["msg_type"] not in ("comm_open", "comm_msg"), msg
        if msg["msg_type"] == "execute_result":
            assert msg["content"]["data"]["text/plain"] == '"00122"'
            break
